use std::io::Read as _;

use super::*;

/// A minimal source: one family, one sample per (name, value).
#[derive(Debug)]
struct Fake(Vec<(&'static str, f64)>);

static FAKE_FAMILIES: [Family; 2] = [
    Family {
        name: "fake_value",
        help: "A value.",
    },
    Family {
        name: "fake_count",
        help: "How many.",
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
# HELP fake_count How many.
# TYPE fake_count gauge
fake_count{target="a"} 2
fake_count{target="b"} 1
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
