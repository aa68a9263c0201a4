use std::io::Read as _;

use super::*;

/// A minimal source: one family, one sample per (name, value).
#[derive(Debug)]
struct Fake(Vec<(&'static str, f64)>);

static FAKE_FAMILIES: [Family; 3] = [
    Family {
        name: "fake_value",
        help: "A value.",
    },
    Family {
        name: "fake_items",
        help: "How many.",
    },
    Family {
        name: "fake_events_total",
        help: "Events seen.",
    },
];

impl SampleSet for Fake {
    fn families(&self) -> &'static [Family] {
        &FAKE_FAMILIES
    }
    fn objects(&self) -> usize {
        self.0.len()
    }
    fn encode(&self, family: usize, target: &str, enc: &mut MetricEncoder<'_>) -> fmt::Result {
        if family == 1 {
            return enc
                .encode_family(&[("target", target)])?
                .encode_gauge(&(self.0.len() as i64));
        }
        if family == 2 {
            return counter(enc, &[("target", target)], 7 * self.0.len() as u64);
        }
        for (name, v) in &self.0 {
            enc.encode_family(&[("target", target), ("name", *name)])?
                .encode_gauge(v)?;
        }
        Ok(())
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
    let expected = r#"# HELP fake_value A value.
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
"#;
    assert_eq!(snap.text(), expected);
    assert_eq!(snap.text_len(), expected.len() as u64);
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
