//! The exporter's own metrics: live counters and gauges encoded on every scrape (they are
//! small), plus `process_*` read from `/proc` at scrape time.

use std::fmt;
use std::sync::atomic::AtomicU64;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

pub(crate) type CollectorLabels = [(&'static str, String); 2];
pub(crate) type CodeLabels = [(&'static str, String); 3];
pub(crate) type CredentialLabels = [(&'static str, String); 2];

pub(crate) fn credential_labels(target: &str, credential: &str) -> CredentialLabels {
    [
        ("target", target.to_string()),
        ("credential", credential.to_string()),
    ]
}

pub fn collector_labels(collector: &str, target: &str) -> CollectorLabels {
    [
        ("collector", collector.to_string()),
        ("target", target.to_string()),
    ]
}

type FloatGauge = Gauge<f64, AtomicU64>;

fn request_duration_histogram() -> Histogram {
    // 10 ms to about 41 s: loopback mocks to slow vendor pages.
    Histogram::new(exponential_buckets(0.01, 2.0, 13))
}

/// Handles to every self-metric, shared by the scheduler and the upstream client.
///
/// Help texts registered here have no final period: the registry adds one.
#[derive(Debug)]
pub struct SelfMetrics {
    registry: Registry,
    pub collector_success: Family<CollectorLabels, Gauge>,
    pub collector_stale: Family<CollectorLabels, Gauge>,
    pub last_success: Family<CollectorLabels, FloatGauge>,
    pub duration: Family<CollectorLabels, FloatGauge>,
    pub(crate) interval: Family<CollectorLabels, FloatGauge>,
    pub collections: Family<CollectorLabels, Counter>,
    pub(crate) failures: Family<CollectorLabels, Counter>,
    pub(crate) requests: Family<CodeLabels, Counter>,
    pub request_duration: Family<CollectorLabels, Histogram, fn() -> Histogram>,
    pub(crate) retries: Family<CodeLabels, Counter>,
    pub(crate) credential_expiry: Family<CredentialLabels, FloatGauge>,
    pub(crate) credential_refreshes: Family<CredentialLabels, Counter>,
    pub(crate) credential_refresh_failures: Family<CredentialLabels, Counter>,
    pub(crate) credential_locked: Family<CredentialLabels, Gauge>,
    pub(crate) collector_panics: Family<CollectorLabels, Counter>,
    pub(crate) http_connections_rejected: Counter,
    /// The code and reason label sets created so far, so a removed target's can be found.
    code_labels: std::sync::Mutex<std::collections::HashSet<CodeLabels>>,
}

impl Default for SelfMetrics {
    fn default() -> Self {
        SelfMetrics::new()
    }
}

impl SelfMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let m = SelfMetrics {
            collector_success: Family::default(),
            collector_stale: Family::default(),
            last_success: Family::default(),
            duration: Family::default(),
            interval: Family::default(),
            collections: Family::default(),
            failures: Family::default(),
            requests: Family::default(),
            request_duration: Family::new_with_constructor(request_duration_histogram),
            retries: Family::default(),
            credential_expiry: Family::default(),
            credential_refreshes: Family::default(),
            credential_refresh_failures: Family::default(),
            credential_locked: Family::default(),
            collector_panics: Family::default(),
            http_connections_rejected: Counter::default(),
            code_labels: Default::default(),
            registry: Registry::default(),
        };
        let build_info = ConstGauge::new(1i64);
        registry.register_collector(Box::new(BuildInfo(build_info)));
        let r = &mut registry;
        r.register(
            "tenant_exporter_collector_success",
            "Whether the last collection of this collector and target succeeded (1) or failed (0)",
            m.collector_success.clone(),
        );
        r.register(
            "tenant_exporter_collector_stale",
            "1 when this target's samples were dropped after stale_after without a successful collection",
            m.collector_stale.clone(),
        );
        r.register(
            "tenant_exporter_collector_last_success_timestamp_seconds",
            "Unix time of the last successful collection of this collector and target",
            m.last_success.clone(),
        );
        r.register(
            "tenant_exporter_collector_duration_seconds",
            "Duration of the last collection of this collector and target",
            m.duration.clone(),
        );
        r.register(
            "tenant_exporter_collector_interval_seconds",
            "How often this collector polls this target",
            m.interval.clone(),
        );
        r.register(
            "tenant_exporter_collections",
            "Collections attempted for this collector and target",
            m.collections.clone(),
        );
        r.register(
            "tenant_exporter_collection_failures",
            "Collections of this collector and target that failed",
            m.failures.clone(),
        );
        r.register(
            "tenant_exporter_upstream_requests",
            "Upstream HTTP requests by response status code (\"error\" when no response arrived)",
            m.requests.clone(),
        );
        r.register(
            "tenant_exporter_upstream_request_duration_seconds",
            "Duration of upstream HTTP requests, each attempt counted separately",
            m.request_duration.clone(),
        );
        r.register(
            "tenant_exporter_upstream_retries",
            "Upstream HTTP requests retried, by reason",
            m.retries.clone(),
        );
        r.register(
            "tenant_exporter_credential_expiry_timestamp_seconds",
            "Unix time at which the exporter's own credential for this target expires",
            m.credential_expiry.clone(),
        );
        r.register(
            "tenant_exporter_credential_refreshes",
            "Successful refreshes or logins of the exporter's own credential for this target",
            m.credential_refreshes.clone(),
        );
        r.register(
            "tenant_exporter_credential_refresh_failures",
            "Failed refreshes or logins of the exporter's own credential for this target",
            m.credential_refresh_failures.clone(),
        );
        r.register(
            "tenant_exporter_credential_locked",
            "1 while the upstream reports the account of the exporter's credential for this target locked",
            m.credential_locked.clone(),
        );
        r.register(
            "tenant_exporter_collector_panics",
            "Collections of this collector and target that panicked (each also counts as a failed collection)",
            m.collector_panics.clone(),
        );
        r.register(
            "tenant_exporter_http_connections_rejected",
            "HTTP connections closed at once because --web.max-connections were open",
            m.http_connections_rejected.clone(),
        );
        registry.register_collector(Box::new(ProcessCollector));
        SelfMetrics { registry, ..m }
    }

    /// The live part of the exposition in OpenMetrics text, with the closing `# EOF`.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8192);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Creates a scheduled target's series, counters at 0, so the first failure is an increase
    /// that `rate()` and `increase()` see: collections, failures, panics, retries for every
    /// reason, and refreshes and refresh failures of the `credentials` the target has.
    pub(crate) fn register_target(
        &self,
        collector: &str,
        target: &str,
        interval: std::time::Duration,
        credentials: &[&str],
    ) {
        let l = collector_labels(collector, target);
        self.interval.get_or_create(&l).set(interval.as_secs_f64());
        let _ = self.collections.get_or_create(&l);
        let _ = self.failures.get_or_create(&l);
        let _ = self.collector_panics.get_or_create(&l);
        // Each reason is created at 0 for every target, so the first retry is an increase.
        for reason in crate::upstream::RETRY_REASONS {
            let _ = self
                .retries
                .get_or_create(&self.code_labels(collector, target, "reason", reason));
        }
        for c in credentials {
            let l = credential_labels(target, c);
            let _ = self.credential_refreshes.get_or_create(&l);
            let _ = self.credential_refresh_failures.get_or_create(&l);
        }
    }

    /// Counts an upstream request; `code` is the HTTP status or `error`.
    pub(crate) fn count_request(&self, collector: &str, target: &str, code: &str) {
        self.requests
            .get_or_create(&self.code_labels(collector, target, "code", code))
            .inc();
    }

    /// Counts a retry for `reason`.
    pub(crate) fn count_retry(&self, collector: &str, target: &str, reason: &str) {
        self.retries
            .get_or_create(&self.code_labels(collector, target, "reason", reason))
            .inc();
    }

    fn code_labels(
        &self,
        collector: &str,
        target: &str,
        key: &'static str,
        value: &str,
    ) -> CodeLabels {
        let l = [
            ("collector", collector.to_string()),
            ("target", target.to_string()),
            (key, value.to_string()),
        ];
        let mut seen = crate::lock(&self.code_labels);
        if !seen.contains(&l) {
            seen.insert(l.clone());
        }
        l
    }

    /// Forgets the per-target series of a target that left the config.
    pub(crate) fn remove_target(&self, collector: &str, target: &str) {
        let mut seen = crate::lock(&self.code_labels);
        seen.retain(|l| {
            let ours = l[0].1 == collector && l[1].1 == target;
            if ours {
                self.requests.remove(l);
                self.retries.remove(l);
            }
            !ours
        });
        drop(seen);
        let l = collector_labels(collector, target);
        self.collector_success.remove(&l);
        self.collector_stale.remove(&l);
        self.last_success.remove(&l);
        self.duration.remove(&l);
        self.interval.remove(&l);
        self.collections.remove(&l);
        self.failures.remove(&l);
        self.collector_panics.remove(&l);
        self.request_duration.remove(&l);
    }

    /// Forgets the credential series of a target that left the config: `kinds` are the
    /// `credential` label values its source may write.
    pub(crate) fn remove_credentials(&self, target: &str, kinds: &[&str]) {
        for c in kinds {
            let l = credential_labels(target, c);
            self.credential_expiry.remove(&l);
            self.credential_refreshes.remove(&l);
            self.credential_refresh_failures.remove(&l);
            self.credential_locked.remove(&l);
        }
    }
}

#[derive(Debug)]
struct BuildInfo(ConstGauge);

impl Collector for BuildInfo {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let labels = [("version", crate::VERSION), ("revision", crate::REVISION)];
        let mut m = encoder.encode_descriptor(
            "tenant_exporter_build_info",
            "Version and git revision of tenant-exporter, value 1.",
            None,
            self.0.metric_type(),
        )?;
        self.0.encode(m.encode_family(&labels)?)
    }
}

/// Linux process metrics in the names every Prometheus client library uses.
#[derive(Debug)]
struct ProcessCollector;

/// `/proc` reports CPU times in USER_HZ, which is 100 on every Linux architecture's ABI.
const USER_HZ: f64 = 100.0;

#[derive(Debug, Default, PartialEq)]
pub(crate) struct ProcessStats {
    pub(crate) cpu_seconds: f64,
    pub(crate) start_time_seconds: Option<f64>,
    pub(crate) resident_bytes: u64,
    pub(crate) virtual_bytes: u64,
    pub(crate) open_fds: Option<u64>,
    pub(crate) max_fds: Option<u64>,
}

/// Parses `/proc/self/stat`; the command name may contain spaces and parentheses, so fields
/// are counted from the last `)`.
pub(crate) fn parse_proc_stat(
    stat: &str,
    boot_time: Option<f64>,
    page_size: u64,
) -> Option<ProcessStats> {
    let after = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // after the name: state(0) ... utime(11) stime(12) ... starttime(19) vsize(20) rss(21)
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    let cpu_seconds = (num(11)? + num(12)?) as f64 / USER_HZ;
    Some(ProcessStats {
        cpu_seconds,
        start_time_seconds: boot_time.map(|b| b + num(19).unwrap_or(0) as f64 / USER_HZ),
        virtual_bytes: num(20)?,
        resident_bytes: num(21)? * page_size,
        open_fds: None,
        max_fds: None,
    })
}

fn read_process_stats() -> Option<ProcessStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let boot_time = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    });
    // RSS in /proc/self/stat is in pages; /proc/self/status gives kB, which needs no page size.
    let mut stats = parse_proc_stat(&stat, boot_time, 4096)?;
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        if let Some(kb) = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            stats.resident_bytes = kb * 1024;
        }
    }
    stats.open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64);
    stats.max_fds = max_open_files();
    Some(stats)
}

/// The soft limit on open files (`ulimit -n`), from `/proc/self/limits`.
pub(crate) fn max_open_files() -> Option<u64> {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok())
        })
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let Some(s) = read_process_stats() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(s.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            cpu.metric_type(),
        )?)?;
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                Some(s.resident_bytes as f64),
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                Some(s.virtual_bytes as f64),
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                s.open_fds.map(|v| v as f64),
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                s.max_fds.map(|v| v as f64),
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                s.start_time_seconds,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(v) = value {
                let g = ConstGauge::new(v);
                g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_with_spaces_in_name() {
        let stat = "4242 (tenant (x) exp) S 1 4242 4242 0 -1 4194560 1200 0 0 0 250 50 0 0 20 0 6 0 1000 123456789 3000 18446744073709551615";
        let s = parse_proc_stat(stat, Some(1_700_000_000.0), 4096).unwrap();
        assert_eq!(s.cpu_seconds, 3.0);
        assert_eq!(s.start_time_seconds, Some(1_700_000_010.0));
        assert_eq!(s.virtual_bytes, 123456789);
        assert_eq!(s.resident_bytes, 3000 * 4096);
    }

    #[test]
    fn garbage_proc_stat_is_none_not_a_panic() {
        assert_eq!(parse_proc_stat("", None, 4096), None);
        assert_eq!(parse_proc_stat("1 (x) S 1 2", None, 4096), None);
    }

    #[test]
    fn live_part_has_build_info_process_metrics_and_eof() {
        let m = SelfMetrics::new();
        m.collections
            .get_or_create(&collector_labels("webex_broadworks", "t"))
            .inc();
        let text = m.encode();
        assert!(
            text.contains("tenant_exporter_build_info{version=\""),
            "{text}"
        );
        assert!(text.contains(
            "tenant_exporter_collections_total{collector=\"webex_broadworks\",target=\"t\"} 1\n"
        ));
        assert!(text.contains("# TYPE process_cpu_seconds counter\n"));
        assert!(text.contains("process_resident_memory_bytes "));
        assert!(text.ends_with("# EOF\n"));
    }
}
