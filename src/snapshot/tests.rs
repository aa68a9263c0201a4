use std::io::Read as _;

use super::*;

/// A minimal source: one family, one sample per (name, value).
#[derive(Debug)]
struct Fake(Vec<(&'static str, f64)>);

static FAKE_FAMILIES: [FamilyOf<Fake>; 3] = [
    FamilyOf {
        name: "fake_value",
        help: "A value.",
        encode: |s, target, enc| {
            for (name, v) in &s.0 {
                enc.encode_family(&[("target", target), ("name", *name)])?
                    .encode_gauge(v)?;
            }
            Ok(())
        },
    },
    FamilyOf {
        name: "fake_items",
        help: "How many.",
        encode: |s, target, enc| {
            enc.encode_family(&[("target", target)])?
                .encode_gauge(&(s.0.len() as i64))
        },
    },
    FamilyOf {
        name: "fake_events_total",
        help: "Events seen.",
        encode: |s, target, enc| counter(enc, &[("target", target)], 7 * s.0.len() as u64),
    },
];

impl Samples for Fake {
    const FAMILIES: &'static [FamilyOf<Self>] = &FAKE_FAMILIES;
    fn count(&self) -> usize {
        self.0.len()
    }
}

fn set(collector: &'static str, target: &str, samples: Vec<(&'static str, f64)>) -> TargetSamples {
    TargetSamples {
        collector,
        target: target.into(),
        samples: Arc::new(Fake(samples)),
    }
}

fn gunzip(parts: &[Bytes]) -> String {
    let joined: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
    // GzDecoder reads exactly one member and checks its CRC and length.
    let mut out = String::new();
    flate2::read::GzDecoder::new(&joined[..])
        .read_to_string(&mut out)
        .expect("valid gzip");
    out
}

#[test]
fn families_are_grouped_across_targets_and_labels_escaped() {
    let snap = Snapshot::encode(vec![
        set("fake", "b", vec![("x", 2.5)]),
        set(
            "fake",
            "a",
            vec![("quote\"back\\slash\nnewline Zürich", 1.0), ("y", -3.0)],
        ),
    ]);
    let text = snap.text();
    assert_eq!(snap.text_len(), text.len() as u64);
    insta::assert_snapshot!(text, @r#"
    # HELP fake_value A value.
    # TYPE fake_value gauge
    fake_value{target="a",name="quote\"back\\slash\nnewline Zürich"} 1.0
    fake_value{target="a",name="y"} -3.0
    fake_value{target="b",name="x"} 2.5
    # HELP fake_items How many.
    # TYPE fake_items gauge
    fake_items{target="a"} 2
    fake_items{target="b"} 1
    # HELP fake_events Events seen.
    # TYPE fake_events counter
    fake_events_total{target="a"} 14
    fake_events_total{target="b"} 7
    "#);
}

#[test]
fn gzip_body_is_one_valid_member_of_cached_part_and_tail() {
    let snap = Snapshot::encode(vec![set("fake", "t", vec![("x", 1.0)])]);
    let tail = "# HELP up_total x\n# TYPE up_total counter\nup_total 1\n# EOF\n";
    let parts = snap.gzip_with(tail);
    assert_eq!(gunzip(&parts), snap.text() + tail);
}

#[test]
fn gzip_of_a_large_snapshot_round_trips() {
    // Enough data for several deflate blocks and write-buffer drains.
    let names: Vec<&'static str> = (0..30_000)
        .map(|i| &*Box::leak(format!("n{i}").into_boxed_str()))
        .collect();
    let snap = Snapshot::encode(vec![set(
        "fake",
        "t",
        names.iter().map(|n| (*n, 1.0)).collect(),
    )]);
    assert!(snap.text_len() > 4 * WRITE_BUFFER as u64);
    assert!((snap.compressed_len() as u64) < snap.text_len() / 4);
    let text = snap.text();
    assert_eq!(text.len() as u64, snap.text_len());
    assert_eq!(gunzip(&snap.gzip_with("# EOF\n")), text + "# EOF\n");
    // Chunked decompression gives the same bytes, in bounded chunks.
    let chunks: Vec<Bytes> = snap.text_chunks(10_000).map(|c| c.unwrap()).collect();
    assert!(chunks.iter().all(|c| c.len() <= 10_000));
    assert_eq!(
        chunks.iter().map(Bytes::len).sum::<usize>() as u64,
        snap.text_len()
    );
}

#[test]
fn empty_snapshot_serves_only_the_tail() {
    let snap = Snapshot::default();
    assert_eq!(snap.text(), "");
    assert_eq!(gunzip(&snap.gzip_with("# EOF\n")), "# EOF\n");
}

#[test]
fn prometheus_text_names_counters_with_total_and_has_no_eof() {
    let om =
        "# HELP a_requests Requests.\n# TYPE a_requests counter\na_requests_total{x=\"1\"} 3\n\
              # HELP b Gauge.\n# TYPE b gauge\nb 1\n# EOF\n";
    assert_eq!(
        openmetrics_to_prometheus_text(om),
        "# HELP a_requests_total Requests.\n# TYPE a_requests_total counter\na_requests_total{x=\"1\"} 3\n\
         # HELP b Gauge.\n# TYPE b gauge\nb 1\n"
    );
}

#[test]
fn counters_differ_between_formats_only_in_their_descriptors() {
    let snap = Snapshot::encode(vec![
        set("fake", "a", vec![("x", 1.0)]),
        set("fake", "b", vec![("y", 2.0)]),
    ]);
    let om = snap.text_of(Exposition::OpenMetrics);
    let text = snap.text_of(Exposition::Text);
    assert_eq!(
        text,
        om.replace(
            "# HELP fake_events Events seen.\n# TYPE fake_events counter\n",
            "# HELP fake_events_total Events seen.\n# TYPE fake_events_total counter\n"
        )
    );
    assert_ne!(om, text);
    assert_eq!(snap.text_len_of(Exposition::Text), text.len() as u64);
    for (format, expected) in [(Exposition::OpenMetrics, &om), (Exposition::Text, &text)] {
        assert_eq!(
            gunzip(&snap.gzip_of(format, "# EOF\n")),
            expected.clone() + "# EOF\n"
        );
        let chunks: String = snap
            .text_chunks_of(format, 100)
            .map(|c| String::from_utf8(c.unwrap().to_vec()).unwrap())
            .collect();
        assert_eq!(&chunks, expected);
    }
}

/// `promtool check metrics` accepts both formats (it reads the 0.0.4 text; OpenMetrics is
/// checked with its counter descriptors renamed as Prometheus would parse them). Skipped
/// without promtool; CI installs it.
#[test]
fn promtool_accepts_both_formats() {
    let Ok(out) = std::process::Command::new("promtool")
        .arg("--version")
        .output()
    else {
        eprintln!("promtool not installed; skipped");
        return;
    };
    assert!(out.status.success());
    let snap = Snapshot::encode(vec![set("fake", "a", vec![("x", 1.0)])]);
    let check = |body: String| {
        use std::io::Write as _;
        let mut child = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(body.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, msg) = check(snap.text_of(Exposition::Text));
    assert!(ok, "{msg}");
    // The OpenMetrics descriptor of a counter is not valid 0.0.4: promtool can tell them
    // apart, so this check could fail.
    let (ok, _) = check(snap.text_of(Exposition::OpenMetrics));
    assert!(!ok);
}

#[test]
fn series_are_counted_per_target() {
    let snap = Snapshot::encode(vec![
        set("fake", "a", vec![("x", 1.0), ("y", 2.0)]),
        set("fake", "b", vec![]),
    ]);
    assert_eq!(snap.series("fake", "a"), Some(4));
    assert_eq!(snap.series("fake", "b"), Some(2));
    assert_eq!(snap.series("fake", "c"), None);
}

/// A set that counts how often it is encoded, to see what an update re-encodes.
#[derive(Debug)]
struct Counting {
    inner: Fake,
    calls: Arc<std::sync::atomic::AtomicUsize>,
}

impl SampleSet for Counting {
    fn families(&self) -> Table {
        self.inner.families()
    }
    fn objects(&self) -> usize {
        self.inner.objects()
    }
    fn encode(&self, family: usize, target: &str, enc: &mut MetricEncoder<'_>) -> fmt::Result {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.encode(family, target, enc)
    }
}

fn counting(
    target: &str,
    samples: Vec<(&'static str, f64)>,
) -> (TargetSamples, Arc<std::sync::atomic::AtomicUsize>) {
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let set = TargetSamples {
        collector: "fake",
        target: target.into(),
        samples: Arc::new(Counting {
            inner: Fake(samples),
            calls: calls.clone(),
        }),
    };
    (set, calls)
}

fn calls(c: &std::sync::atomic::AtomicUsize) -> usize {
    c.load(std::sync::atomic::Ordering::Relaxed)
}

/// The deflate data of a target's family piece, to see whether it was compressed again.
fn piece_ptr(snap: &Snapshot, target: &str, family: usize) -> *const u8 {
    let t = snap.targets.iter().find(|t| t.target == target).unwrap();
    t.pieces[family].as_ref().unwrap().deflate.as_ptr()
}

#[test]
fn incremental_update_equals_a_full_encode() {
    let (a, a_calls) = counting("a", vec![("x", 1.0), ("y", 2.0)]);
    let (b, b_calls) = counting("b", vec![("x", 3.0)]);
    let other = set("other", "c", vec![("z", 4.0)]);
    let first = Snapshot::encode(vec![a.clone(), b.clone(), other.clone()]);
    let after_first = (calls(&a_calls), calls(&b_calls));

    // A failed collection of every target: the same sets again. Nothing is encoded.
    let same = first.update(vec![b.clone(), other.clone(), a.clone()]);
    assert_eq!((calls(&a_calls), calls(&b_calls)), after_first);
    assert_eq!(same.text(), first.text());

    // Target b collected again: new values for fake_value, the same fake_items. Only b is
    // encoded, and only its changed families are compressed again.
    let (b2, b2_calls) = counting("b", vec![("x", 5.0)]);
    let updated = same.update(vec![a.clone(), b2.clone(), other.clone()]);
    assert_eq!(calls(&a_calls), after_first.0);
    assert!(calls(&b2_calls) > 0);
    assert_eq!(piece_ptr(&updated, "a", 0), piece_ptr(&first, "a", 0));
    assert_eq!(piece_ptr(&updated, "b", 1), piece_ptr(&first, "b", 1));
    assert_ne!(piece_ptr(&updated, "b", 0), piece_ptr(&first, "b", 0));

    // A target left, one came.
    let (d, _) = counting("d", vec![("w", 6.0)]);
    let updated = updated.update(vec![a.clone(), b2.clone(), d.clone(), other.clone()]);
    let updated = updated.update(vec![b2.clone(), d.clone(), other.clone()]);

    let full = Snapshot::encode(vec![b2, d, other]);
    for format in [Exposition::OpenMetrics, Exposition::Text] {
        let text = updated.text_of(format);
        assert_eq!(text, full.text_of(format));
        assert_eq!(
            gunzip(&updated.gzip_of(format, "# EOF\n")),
            gunzip(&full.gzip_of(format, "# EOF\n"))
        );
        // Each family once, all its samples together.
        let mut described: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .collect();
        let n = described.len();
        described.sort();
        described.dedup();
        assert_eq!(described.len(), n, "{text}");
        let mut current = "";
        let mut seen = Vec::new();
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            if name != current {
                assert!(!seen.contains(&name), "{name} split:\n{text}");
                seen.push(name);
                current = name;
            }
        }
    }
    assert_eq!(updated.series("fake", "a"), None);
    assert_eq!(updated.series("fake", "d"), Some(3));
}

#[test]
fn a_family_left_out_everywhere_is_not_described() {
    #[derive(Debug)]
    struct NoItems(Fake);
    impl SampleSet for NoItems {
        fn families(&self) -> Table {
            self.0.families()
        }
        fn objects(&self) -> usize {
            self.0.objects()
        }
        fn encode(&self, f: usize, t: &str, enc: &mut MetricEncoder<'_>) -> fmt::Result {
            self.0.encode(f, t, enc)
        }
        fn enabled(&self, family: usize) -> bool {
            family != 1
        }
    }
    let snap = Snapshot::encode(vec![TargetSamples {
        collector: "fake",
        target: "a".into(),
        samples: Arc::new(NoItems(Fake(vec![("x", 1.0)]))),
    }]);
    let text = snap.text();
    assert!(!text.contains("fake_items"), "{text}");
    assert!(text.contains("fake_value{"), "{text}");
}
