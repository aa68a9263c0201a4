//! Encoding cost of the cached exposition at 10,000 BroadWorks enterprises.
//!
//! Run with `cargo bench --bench snapshot`; see `benches/README.md` for what the numbers mean.
//! The figures that matter are:
//!
//! - `encode_10k`: `Snapshot::encode`, i.e. a full encode (text encoding and deflate level 6
//!   of every (target, family) piece).
//! - `update_failed_10k`: `Snapshot::update` after a failed collection (the same sample set
//!   again): nothing is encoded.
//! - `update_same_values_10k`: `Snapshot::update` after a collection that returned the same
//!   values: text is encoded and hashed, nothing is compressed.
//! - `update_small_beside_50k`: a poll of a 25-enterprise target in a process that also
//!   holds a 50,000-enterprise target.
//!
//! Printed once before the benchmarks: sizes per compression level, series per family
//! selection, a full encode at 50,000 enterprises, and at 100,000 over 20 targets with the
//! update after one target's poll.
//! - `gzip_with_tail`: the per-scrape work of a gzip scrape (compress the live self-metrics
//!   and splice them after the cached deflate stream).
//! - `parse_page_1000`: parsing one 1000-item page of the Webex enterprise list.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::{json, Value};

use tenant_exporter::metrics::{collector_labels, SelfMetrics};
use tenant_exporter::snapshot::{Exposition, Snapshot, TargetSamples};
use tenant_exporter::sources::families::{FamilySelection, Selected};
use tenant_exporter::sources::webex::broadworks::{
    count, parse_page, Enterprise, Enterprises, Skips, SyncError,
};
use tenant_exporter::sources::Objects;

const ENTERPRISES: usize = 10_000;
const PAGE: usize = 1_000;
/// A fixed "now" (2025-06-01T00:00:00Z) so every run encodes the same bytes.
const NOW: u64 = 1_748_736_000;

/// A stable pseudo-random number for `(a, b)` (splitmix64), as the simulator uses.
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_add(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Unix seconds with microseconds, as the Webex API's RFC 3339 timestamps parse.
fn at(i: usize, secs: u64) -> f64 {
    (Duration::from_secs(secs) + Duration::from_micros(mix(i as u64, secs) % 1_000_000))
        .as_secs_f64()
}

/// Enterprise `i`, in the mix the simulator serves: mostly healthy, one in twenty never
/// synced, failing, or complete with errors; a few with statuses outside the known four,
/// several error codes, or counts the API left out.
fn enterprise(i: usize) -> Enterprise {
    let h = mix(i as u64, 1);
    let sp_enterprise_id: std::sync::Arc<str> = if i == 0 {
        // Characters that need escaping in the exposition, as real customer names have.
        "Reseller1+\"Zürich\" Ost\\Süd".into()
    } else {
        format!("Reseller{}+tenant-{i:05}", 1 + i % 3).into()
    };
    let mut e = Enterprise::new(
        sp_enterprise_id,
        format!("Y2lzY29zcGFyazovL3VzL0VOVEVSUFJJU0Uv{h:016x}").into(),
        format!(
            "Y2lzY29zcGFyazovL3VzL09SR0FOSVpBVElPTi8{:016x}",
            mix(i as u64, 2)
        )
        .into(),
        format!("ZjViMzYxODctYzhkZC00NzI3LThiMmYt{:016x}", mix(i as u64, 3)).into(),
    );
    e.sync_enabled = Some(true);
    e.status = Some("COMPLETE".into());
    e.errors = Some(Box::default());
    let totals = [
        (count::EXTERNAL_USERS, 20 + h % 500),
        (count::EXTERNAL_MACHINES, 2 + h % 40),
        (count::USER_CONTACTS, 50 + h % 900),
        (count::ORG_CONTACTS, 5 + h % 60),
    ];
    for (k, v) in totals {
        e.set_count(k, Some(v as f64));
    }
    if i % 20 == 7 {
        // Never synced: the status object holds only the status.
        e.sync_enabled = Some(false);
        e.status = Some("NOT_SYNCED".into());
        for (k, _) in totals {
            e.set_count(k, None);
        }
        return e;
    }
    let period = 600;
    let phase = h % period;
    let start = (NOW - phase) / period * period + phase;
    let run = 20 + h % 40;
    e.set_times(
        Some(at(i, start)),
        Some(at(i, start + run)),
        Some(at(i, start + run)),
    );
    e.tracking_id = Some(format!("BROADWORKS_SIM_{:.8}_2914", &*e.id).into());
    let maxima = [4, 12, 2, 2, 3, 2, 3, 5, 2, 2, 2, 1];
    for (k, max) in maxima.into_iter().enumerate() {
        e.set_count(
            k,
            Some((mix(i as u64 ^ ((k as u64 + 1) << 32), start) % max) as f64),
        );
    }
    match i % 20 {
        2 => {
            e.status = Some("FAILED".into());
            e.set_times(
                e.last_start(),
                Some(at(i, start + 8)),
                Some((NOW - 3 * 86_400) as f64),
            );
            e.errors = Some(vec![error("6003")].into());
            e.error_count = 1;
            for k in 0..6 {
                e.set_count(k, Some(0.0));
            }
        }
        12 => {
            e.errors = Some(vec![error("6011")].into());
            e.error_count = 1;
        }
        4 => e.status = Some("IN_PROGRESS".into()),
        _ => {}
    }
    match i % 500 {
        // Statuses the exporter passes through as an extra series.
        99 => e.status = Some("PENDING_RETRY".into()),
        199 => e.status = Some("PARTIALLY_COMPLETE".into()),
        // Several error codes, one of them repeated.
        299 => {
            e.status = Some("FAILED".into());
            e.errors = Some(vec![error("6003"), error("6011"), error("unknown")].into());
            e.error_count = 4;
        }
        // An old API version without the contact-service counts.
        399 => {
            for k in (6..12).chain([count::USER_CONTACTS, count::ORG_CONTACTS]) {
                e.set_count(k, None);
            }
        }
        _ => {}
    }
    e
}

/// An error as the simulator reports it.
fn error(code: &str) -> SyncError {
    SyncError {
        code: code.into(),
        description: if code == "unknown" {
            "No error code."
        } else {
            "Simulated failure."
        }
        .into(),
    }
}

fn rfc3339(t: f64) -> String {
    let d = Duration::from_micros((t * 1e6).round() as u64);
    humantime::format_rfc3339_micros(SystemTime::UNIX_EPOCH + d).to_string()
}

/// The Webex API's JSON for `e`.
fn enterprise_json(e: &Enterprise) -> Value {
    let mut item = json!({
        "id": &*e.id,
        "orgId": &*e.org_id,
        "spEnterpriseId": &*e.sp_enterprise_id,
        "provisioningId": &*e.provisioning_id,
    });
    let mut status = json!({ "syncStatus": e.status.as_deref() });
    if let Some(id) = &e.tracking_id {
        status["lastSyncTrackingId"] = json!(&**id);
    }
    let times = [
        ("lastSyncStartTime", e.last_start()),
        ("lastSyncEndTime", e.last_end()),
        ("lastSuccessfulSyncTime", e.last_success()),
    ];
    for (name, t) in times {
        if let Some(t) = t {
            status[name] = json!(rfc3339(t));
        }
    }
    let changes = [
        "usersAdded",
        "usersUpdated",
        "usersDeleted",
        "machinesAdded",
        "machinesUpdated",
        "machinesDeleted",
        "userContactsAdded",
        "userContactsUpdated",
        "userContactsDeleted",
        "orgContactsAdded",
        "orgContactsUpdated",
        "orgContactsDeleted",
    ];
    for (name, v) in changes.iter().zip(e.changes()) {
        if let Some(v) = v {
            status[*name] = json!(v as u64);
        }
    }
    let counts = [
        ("totalExternalUsersInCI", e.count(count::EXTERNAL_USERS)),
        (
            "totalExternalMachinesInCI",
            e.count(count::EXTERNAL_MACHINES),
        ),
        (
            "totalUserContactsInContactService",
            e.count(count::USER_CONTACTS),
        ),
        (
            "totalOrgContactsInContactService",
            e.count(count::ORG_CONTACTS),
        ),
    ];
    for (name, v) in counts {
        if let Some(v) = v {
            status[name] = json!(v as u64);
        }
    }
    if let Some(codes) = &e.errors {
        if !codes.is_empty() {
            // Every distinct code, then the first one again for the duplicates.
            let errors: Vec<Value> = codes
                .iter()
                .chain(std::iter::repeat_n(
                    &codes[0],
                    e.error_count as usize - codes.len(),
                ))
                .map(|c| match c.code.parse::<u64>() {
                    Ok(n) => json!({"errorCode": n, "description": &*c.description}),
                    Err(_) => json!({"description": &*c.description}),
                })
                .collect();
            status["errors"] = json!(errors);
        } else {
            status["errors"] = json!([]);
        }
    }
    item["broadworksDirectorySync"] = json!({
        "enableDirSync": e.sync_enabled,
        "directorySyncStatus": status,
    });
    item
}

fn enterprises() -> Vec<Enterprise> {
    (0..ENTERPRISES).map(enterprise).collect()
}

fn target(name: &str, samples: Arc<dyn tenant_exporter::snapshot::SampleSet>) -> TargetSamples {
    TargetSamples {
        collector: "webex_broadworks",
        target: name.into(),
        samples,
    }
}

/// Sizes of the cached body against gzip of the whole text at fixed levels.
fn levels(snapshot: &Snapshot) {
    use std::io::Write as _;
    let text = snapshot.text_of(Exposition::Text);
    let mut line = format!(
        "compression: text {} bytes; cached pieces {} bytes",
        text.len(),
        snapshot.compressed_len()
    );
    let mut level6 = 0;
    for level in [1, 4, 5, 6, 9] {
        let started = std::time::Instant::now();
        let mut enc =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(level));
        enc.write_all(text.as_bytes()).expect("in memory");
        let n = enc.finish().expect("in memory").len();
        if level == 6 {
            level6 = n;
        }
        line += &format!(
            "; whole text level {level}: {n} bytes in {} ms",
            started.elapsed().as_millis()
        );
    }
    eprintln!(
        "{line}; cached / level 6 = {:.3}",
        snapshot.compressed_len() as f64 / level6 as f64
    );
}

fn sets(samples: &Arc<Enterprises>) -> Vec<TargetSamples> {
    vec![TargetSamples {
        collector: "webex_broadworks",
        target: "bench".into(),
        samples: samples.clone(),
    }]
}

/// Self-metrics as after some collections, so the tail has its usual size.
fn self_metrics() -> SelfMetrics {
    let m = SelfMetrics::new();
    let labels = collector_labels("webex_broadworks", "bench");
    m.collections.get_or_create(&labels).inc_by(12);
    m.collector_success.get_or_create(&labels).set(1);
    m.collector_stale.get_or_create(&labels).set(0);
    m.duration.get_or_create(&labels).set(0.412);
    m.last_success.get_or_create(&labels).set(1_748_736_000.0);
    for v in [0.02, 0.03, 0.05, 0.04, 0.08] {
        m.request_duration.get_or_create(&labels).observe(v);
    }
    m
}

fn bench(c: &mut Criterion) {
    let samples = Arc::new(Enterprises::new(enterprises()));
    let snapshot = Snapshot::encode(sets(&samples));
    let text = snapshot.text();
    let series = text.lines().filter(|l| !l.starts_with('#')).count();
    let metrics = self_metrics();
    let tail = metrics.encode();
    let body: usize = snapshot
        .gzip_with(&tail)
        .iter()
        .map(bytes::Bytes::len)
        .sum();
    eprintln!(
        "snapshot: {ENTERPRISES} enterprises, {series} samples, text {} bytes ({:.1} MB), \
         cached gzip {} bytes ({:.2} MB, {:.1}x); tail {} bytes; gzip scrape body {} bytes",
        snapshot.text_len(),
        snapshot.text_len() as f64 / 1e6,
        snapshot.compressed_len(),
        snapshot.compressed_len() as f64 / 1e6,
        snapshot.text_len() as f64 / snapshot.compressed_len() as f64,
        tail.len(),
        body,
    );

    let strings: usize = samples
        .items
        .iter()
        .map(|e| {
            let fixed = [&*e.sp_enterprise_id, &e.id, &e.org_id, &e.provisioning_id];
            fixed.iter().map(|s| s.len()).sum::<usize>()
                + e.status.as_ref().map_or(0, |s| s.len())
                + e.errors
                    .iter()
                    .flatten()
                    .map(|c| c.code.len() + c.description.len() + 32)
                    .sum::<usize>()
        })
        .sum();
    eprintln!(
        "sample set: Enterprise is {} bytes; {ENTERPRISES} of them {:.1} MB plus {:.1} MB of \
         strings (before allocator overhead)",
        std::mem::size_of::<Enterprise>(),
        (std::mem::size_of::<Enterprise>() * samples.items.len()) as f64 / 1e6,
        strings as f64 / 1e6,
    );

    let page_items: Vec<Value> = samples.items[..PAGE].iter().map(enterprise_json).collect();
    let page = serde_json::to_vec(&json!({ "items": page_items })).expect("JSON");
    {
        let (mut out, mut skipped) = (Vec::new(), Skips::default());
        let mut objects = Objects::new(usize::MAX);
        parse_page(&page, &mut out, &mut skipped, &mut objects).expect("the page parses");
        assert_eq!(out.len(), PAGE, "{skipped:?}");
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(out, samples.items[..PAGE], "JSON round trip");
        eprintln!("page: {PAGE} items, {} bytes of JSON", page.len());
    }

    levels(&snapshot);
    let all = FamilySelection::new(
        tenant_exporter::sources::webex::broadworks::OPT_IN
            .iter()
            .map(|f| (f.to_string(), true))
            .collect(),
    );
    let every = Snapshot::encode(vec![target(
        "bench",
        Arc::new(Selected::new(samples.clone(), &all)),
    )]);
    eprintln!(
        "series: {} with the default families, {} with every family ({ENTERPRISES} enterprises)",
        snapshot
            .series("webex_broadworks", "bench")
            .unwrap_or_default(),
        every
            .series("webex_broadworks", "bench")
            .unwrap_or_default(),
    );

    // 50,000 enterprises in one target beside a 25-enterprise one.
    let big: Arc<Enterprises> = Arc::new(Enterprises::new((0..50_000).map(enterprise).collect()));
    let small = || Arc::new(Enterprises::new((0..25).map(enterprise).collect()));
    let started = std::time::Instant::now();
    let with_big = Snapshot::encode(vec![target("big", big.clone()), target("small", small())]);
    eprintln!(
        "50k: full encode {} ms, text {} bytes, cached {} bytes",
        started.elapsed().as_millis(),
        with_big.text_len(),
        with_big.compressed_len()
    );

    // 100,000 enterprises over 20 targets: a full encode, then one target's poll.
    let targets: Vec<Arc<Enterprises>> = (0..20)
        .map(|t| {
            Arc::new(Enterprises::new(
                (t * 5_000..(t + 1) * 5_000).map(enterprise).collect(),
            ))
        })
        .collect();
    let estate = |targets: &[Arc<Enterprises>]| -> Vec<TargetSamples> {
        targets
            .iter()
            .enumerate()
            .map(|(i, s)| target(&format!("t{i:02}"), s.clone()))
            .collect()
    };
    let started = std::time::Instant::now();
    let full = Snapshot::encode(estate(&targets));
    let full_ms = started.elapsed().as_millis();
    let mut polled = targets.clone();
    let mut items = polled[7].items.clone();
    for e in &mut items {
        // A new sync everywhere: new end times, so every time family changes.
        e.set_times(
            e.last_start(),
            e.last_end().map(|t| t + 600.0),
            e.last_success(),
        );
    }
    polled[7] = Arc::new(Enterprises::new(items));
    let started = std::time::Instant::now();
    let after_poll = full.update(estate(&polled));
    eprintln!(
        "100k over 20 targets: full encode {full_ms} ms, text {} bytes, cached {} bytes; \
         one 5,000-enterprise target polled with new end times: update {} ms",
        full.text_len(),
        full.compressed_len(),
        started.elapsed().as_millis(),
    );
    drop((full, after_poll, targets, polled));

    let mut g = c.benchmark_group("snapshot");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));

    g.throughput(Throughput::Bytes(snapshot.text_len()));
    g.bench_function("encode_10k", |b| {
        b.iter(|| Snapshot::encode(black_box(sets(&samples))))
    });

    g.bench_function("update_failed_10k", |b| {
        b.iter(|| black_box(&snapshot).update(black_box(sets(&samples))))
    });
    g.bench_function("update_same_values_10k", |b| {
        b.iter(|| {
            // A new set with the same values, as a collection that saw no change returns.
            let again = Arc::new(Enterprises::new(samples.items.clone()));
            black_box(&snapshot).update(black_box(sets(&again)))
        })
    });
    g.bench_function("update_small_beside_50k", |b| {
        b.iter(|| {
            let sets = vec![target("big", big.clone()), target("small", small())];
            black_box(&with_big).update(black_box(sets))
        })
    });

    g.throughput(Throughput::Bytes(tail.len() as u64));
    g.measurement_time(Duration::from_secs(2));
    g.bench_function("gzip_with_tail", |b| {
        b.iter(|| black_box(&snapshot).gzip_with(black_box(&tail)))
    });
    g.bench_function("self_metrics_encode", |b| b.iter(|| metrics.encode()));

    g.throughput(Throughput::Bytes(page.len() as u64));
    g.measurement_time(Duration::from_secs(4));
    g.bench_function("parse_page_1000", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(PAGE);
            let mut skipped = Skips::default();
            let mut objects = Objects::new(usize::MAX);
            parse_page(black_box(&page), &mut out, &mut skipped, &mut objects)
                .expect("the page parses");
            out
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
