//! The VOSS SparkCustomer collector end to end: the real binary against the in-process
//! simulator over real sockets, with paging, retries, bad payloads, rejected credentials,
//! and a check that no secret reaches the exposition, the logs or the landing page.

use std::time::{Duration, Instant};

use crate::common::*;
use base64::Engine as _;
use tenant_exporter::simulator::voss::{VossOptions, SECRET_MARKER};
use tenant_exporter::simulator::{Fault, Options, RequestKind, Simulator};

const PASSWORD: &str = "demo-voss-password";
const WRONG_PASSWORD: &str = "wrong-pw-7c1e9a";

fn config(sim: &Simulator, targets: &[(&str, &str)]) -> String {
    let mut c = String::from("global: {interval: 1s, timeout: 5s, stale_after: 30s}\nvoss:\n");
    for (name, password) in targets {
        c.push_str(&format!(
            "  - name: {name}\n    base_url: {}\n    username: monitor\n    password: {password}\n    hierarchy: sys.hcs.CS-P\n    page_size: 5\n",
            sim.voss_base_url()
        ));
    }
    c
}

fn success(target: &str, v: u8) -> String {
    format!(
        "tenant_exporter_collector_success{{collector=\"voss_spark_customers\",target=\"{target}\"}} {v}\n"
    )
}

fn customers(target: &str, n: usize) -> String {
    format!("voss_spark_customers{{target=\"{target}\"}} {n}.0\n")
}

/// The exporter polling `sim` as target voss1 (interval 1 s, page size 5).
async fn exporter_for(dir: &TempDir, sim: &Simulator) -> Exporter {
    Exporter::with_config(dir, &config(sim, &[("voss1", PASSWORD)]), &[]).await
}

/// Waits for a successful collection of voss1 with all 12 customers published.
async fn wait_good_collection(exporter: &Exporter, what: &str) -> String {
    exporter
        .wait_metrics(what, |t| {
            t.contains(&customers("voss1", 12)) && t.contains(&success("voss1", 1))
        })
        .await
}

async fn simulator() -> Simulator {
    Simulator::start(Options::default())
        .await
        .expect("simulator starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_through_every_customer() {
    let sim = simulator().await;
    let dir = TempDir::new("voss-paging");
    let exporter = exporter_for(&dir, &sim).await;
    let text = wait_good_collection(&exporter, "12 customers").await;
    let requests = sim.requests(RequestKind::VossSparkCustomers);
    assert!(requests.len() >= 3, "{requests:?}");
    assert_eq!(
        requests[..3],
        [
            "hierarchy=sys.hcs.CS-P&format=json&skip=0&limit=5",
            "hierarchy=sys.hcs.CS-P&format=json&skip=5&limit=5",
            "hierarchy=sys.hcs.CS-P&format=json&skip=10&limit=5",
        ]
    );
    assert_eq!(lines_starting(&text, "voss_spark_customer_info{").len(), 12);
    // 8 customers have expiry times, one access token of which has already expired.
    let now = unix_now();
    let access = lines_starting(
        &text,
        "voss_spark_customer_access_token_expiry_timestamp_seconds{",
    );
    assert_eq!(access.len(), 8, "{text}");
    let expired = access
        .iter()
        .filter(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() < now)
        .count();
    assert_eq!(expired, 1);
    assert_eq!(
        lines_starting(
            &text,
            "voss_spark_customer_refresh_token_expiry_timestamp_seconds{"
        )
        .len(),
        8
    );
    assert_eq!(
        lines_starting(&text, "voss_spark_customer_dirsync_enabled{").len(),
        10
    );
    assert!(
        text.contains(r#"customer_name="Zürich \"Nord\" AG""#),
        "{text}"
    );

    // Customers that disappear upstream disappear from /metrics.
    sim.set_voss_customers(7);
    let text = exporter
        .wait_metrics("7 customers", |t| t.contains(&customers("voss1", 7)))
        .await;
    assert_eq!(lines_starting(&text, "voss_spark_customer_info{").len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honours_retry_after_then_succeeds() {
    let sim = simulator().await;
    sim.set_fault(
        RequestKind::VossSparkCustomers,
        Fault::RateLimited {
            retry_after: Some(1),
        },
        Some(1),
    );
    let started = Instant::now();
    let dir = TempDir::new("voss-429");
    let exporter = exporter_for(&dir, &sim).await;
    let text = wait_good_collection(&exporter, "a success after the 429").await;
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(text.contains(
        "tenant_exporter_upstream_retries_total{collector=\"voss_spark_customers\",target=\"voss1\",reason=\"rate_limited\"} 1\n"
    ), "{text}");
    assert!(text.contains(
        "tenant_exporter_upstream_requests_total{collector=\"voss_spark_customers\",target=\"voss1\",code=\"429\"} 1\n"
    ), "{text}");
    assert!(
        !text.contains("tenant_exporter_collection_failures_total{collector=\"voss_spark_customers\",target=\"voss1\"} 1"),
        "the retry happened within the collection: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_server_errors_then_succeeds() {
    let sim = simulator().await;
    sim.set_fault(RequestKind::VossSparkCustomers, Fault::Status(502), Some(2));
    let dir = TempDir::new("voss-5xx");
    let exporter = exporter_for(&dir, &sim).await;
    let text = wait_good_collection(&exporter, "a success after two 502s").await;
    assert!(text.contains(
        "tenant_exporter_upstream_retries_total{collector=\"voss_spark_customers\",target=\"voss1\",reason=\"server_error\"} 2\n"
    ), "{text}");
    assert!(text.contains(
        "tenant_exporter_upstream_requests_total{collector=\"voss_spark_customers\",target=\"voss1\",code=\"502\"} 2\n"
    ), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_payloads_keep_the_last_good_samples() {
    let sim = simulator().await;
    let dir = TempDir::new("voss-bad-payloads");
    let exporter = exporter_for(&dir, &sim).await;
    wait_good_collection(&exporter, "a first success").await;
    for fault in [Fault::Malformed, Fault::Truncated] {
        sim.set_fault(RequestKind::VossSparkCustomers, fault.clone(), None);
        let text = exporter
            .wait_metrics("a failed collection", |t| t.contains(&success("voss1", 0)))
            .await;
        assert!(text.contains(&customers("voss1", 12)), "{fault:?}: {text}");
        assert_eq!(lines_starting(&text, "voss_spark_customer_info{").len(), 12);
        let page = exporter.get_text("/").await;
        assert!(page.contains("invalid SparkCustomer list"), "{page}");
        sim.clear_faults();
        exporter
            .wait_metrics("a recovery", |t| t.contains(&success("voss1", 1)))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_a_clear_error() {
    let sim = simulator().await;
    let dir = TempDir::new("voss-wrong-password");
    let exporter =
        Exporter::with_config(&dir, &config(&sim, &[("voss1", WRONG_PASSWORD)]), &[]).await;
    let text = exporter
        .wait_metrics("a failed collection", |t| t.contains(&success("voss1", 0)))
        .await;
    assert!(!text.contains("voss_spark_customers{"), "{text}");
    assert!(
        text.contains("tenant_exporter_upstream_requests_total{collector=\"voss_spark_customers\",target=\"voss1\",code=\"401\"}"),
        "{text}"
    );
    // The retry counters exist from the start, at 0 for every reason.
    let retries = lines_starting(
        &text,
        "tenant_exporter_upstream_retries_total{collector=\"voss_spark_customers\"",
    );
    assert!(
        !retries.is_empty() && retries.iter().all(|l| l.ends_with(" 0")),
        "a 401 is not retried: {text}"
    );
    let page = exporter.get_text("/").await;
    assert!(
        page.contains(
            "target &quot;voss1&quot;: VOSS rejected the credentials of user &quot;monitor&quot; (HTTP 401 from"
        ),
        "{page}"
    );
    assert!(!page.contains(WRONG_PASSWORD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_leak() {
    let sim = simulator().await;
    let dir = TempDir::new("voss-secrets");
    let config = config(&sim, &[("voss1", PASSWORD), ("voss2", WRONG_PASSWORD)]);
    let exporter = Exporter::with_config(&dir, &config, &["--log.level=debug"]).await;
    // One bad page too, so the error paths log as well.
    sim.set_fault(RequestKind::VossSparkCustomers, Fault::Malformed, Some(1));
    let text = exporter
        .wait_metrics("one good and one rejected target", |t| {
            t.contains(&customers("voss1", 12))
                && t.contains(&success("voss1", 1))
                && t.contains(&success("voss2", 0))
        })
        .await;
    let page = exporter.get_text("/").await;
    let logs = exporter.log();
    assert!(logs.contains("read a SparkCustomer page"), "{logs}");
    assert!(logs.contains("VOSS rejected the credentials"), "{logs}");

    let b64 = |p: &str| base64::engine::general_purpose::STANDARD.encode(format!("monitor:{p}"));
    let mut secrets = sim.voss_secrets();
    assert_eq!(secrets.len(), 16);
    secrets.extend([
        SECRET_MARKER.to_string(),
        PASSWORD.to_string(),
        WRONG_PASSWORD.to_string(),
        b64(PASSWORD),
        b64(WRONG_PASSWORD),
    ]);
    assert_no_secrets(
        &[("/metrics", &text), ("/", &page), ("logs", &logs)],
        &secrets,
    );
}

#[test]
fn simulator_defaults_match_the_tests() {
    let o = VossOptions::default();
    assert_eq!(
        (o.customers, o.username.as_str(), o.password.as_str()),
        (12, "monitor", PASSWORD)
    );
}
