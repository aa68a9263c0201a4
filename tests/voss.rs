//! The VOSS SparkCustomer collector end to end: the real binary against the in-process
//! simulator over real sockets, with paging, retries, bad payloads, rejected credentials,
//! and a check that no secret reaches the exposition, the logs or the landing page.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use tenant_exporter::simulator::voss::{VossOptions, SECRET_MARKER};
use tenant_exporter::simulator::{Fault, Options, RequestKind, Simulator};

/// The longest any single wait in these tests may take.
const DEADLINE: Duration = Duration::from_secs(30);
const PASSWORD: &str = "demo-voss-password";
const WRONG_PASSWORD: &str = "wrong-pw-7c1e9a";

/// A running exporter; killed, and its temp dir removed, when dropped.
struct Exporter {
    child: Child,
    addr: String,
    logs: Arc<Mutex<Vec<String>>>,
    dir: PathBuf,
    http: reqwest::Client,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The address in `... msg=listening address=127.0.0.1:PORT ...`.
fn listening_address(line: &str) -> Option<String> {
    if !line.contains("msg=listening") {
        return None;
    }
    line.split(' ')
        .find_map(|f| f.strip_prefix("address="))
        .map(str::to_string)
}

impl Exporter {
    fn start(config: &str, args: &[&str]) -> Exporter {
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tenant-exporter-voss-{}-{}",
            std::process::id(),
            RUNS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("tenant-exporter.yml");
        std::fs::write(&path, config).expect("config written");
        let mut child = Command::new(env!("CARGO_BIN_EXE_tenant-exporter"))
            .arg(format!("--config.file={}", path.display()))
            .arg("--web.listen-address=127.0.0.1:0")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the exporter starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(addr) = listening_address(&line) {
                        let _ = tx.send(addr);
                    }
                    logs.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            });
        }
        let mut exporter = Exporter {
            child,
            addr: String::new(),
            logs,
            dir,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("client"),
        };
        match rx.recv_timeout(DEADLINE) {
            Ok(addr) => exporter.addr = addr,
            Err(_) => panic!(
                "the exporter did not log its address within {DEADLINE:?}; logs:\n{}",
                exporter.logs()
            ),
        }
        exporter
    }

    fn logs(&self) -> String {
        self.logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }

    async fn get(&self, path: &str) -> Result<String, reqwest::Error> {
        self.http
            .get(format!("http://{}{path}", self.addr))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await
    }

    /// Polls `/metrics` until `ready` holds, and returns that exposition.
    async fn wait_for(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        let mut last = String::new();
        loop {
            if let Ok(text) = self.get("/metrics").await {
                if ready(&text) {
                    return text;
                }
                last = text;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out waiting for {what}; last /metrics:\n{last}\nlogs:\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

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

fn lines_starting<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.starts_with(prefix)).collect()
}

async fn simulator() -> Simulator {
    Simulator::start(Options::default())
        .await
        .expect("simulator starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_through_every_customer() {
    let sim = simulator().await;
    let exporter = Exporter::start(&config(&sim, &[("voss1", PASSWORD)]), &[]);
    let text = exporter
        .wait_for("12 customers", |t| {
            t.contains(&customers("voss1", 12)) && t.contains(&success("voss1", 1))
        })
        .await;
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
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
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
        .wait_for("7 customers", |t| t.contains(&customers("voss1", 7)))
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
    let exporter = Exporter::start(&config(&sim, &[("voss1", PASSWORD)]), &[]);
    let text = exporter
        .wait_for("a success after the 429", |t| {
            t.contains(&customers("voss1", 12)) && t.contains(&success("voss1", 1))
        })
        .await;
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
    let exporter = Exporter::start(&config(&sim, &[("voss1", PASSWORD)]), &[]);
    let text = exporter
        .wait_for("a success after two 502s", |t| {
            t.contains(&customers("voss1", 12)) && t.contains(&success("voss1", 1))
        })
        .await;
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
    let exporter = Exporter::start(&config(&sim, &[("voss1", PASSWORD)]), &[]);
    exporter
        .wait_for("a first success", |t| {
            t.contains(&customers("voss1", 12)) && t.contains(&success("voss1", 1))
        })
        .await;
    for fault in [Fault::Malformed, Fault::Truncated] {
        sim.set_fault(RequestKind::VossSparkCustomers, fault.clone(), None);
        let text = exporter
            .wait_for("a failed collection", |t| t.contains(&success("voss1", 0)))
            .await;
        assert!(text.contains(&customers("voss1", 12)), "{fault:?}: {text}");
        assert_eq!(lines_starting(&text, "voss_spark_customer_info{").len(), 12);
        let page = exporter.get("/").await.expect("landing page");
        assert!(page.contains("invalid SparkCustomer list"), "{page}");
        sim.clear_faults();
        exporter
            .wait_for("a recovery", |t| t.contains(&success("voss1", 1)))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_a_clear_error() {
    let sim = simulator().await;
    let exporter = Exporter::start(&config(&sim, &[("voss1", WRONG_PASSWORD)]), &[]);
    let text = exporter
        .wait_for("a failed collection", |t| t.contains(&success("voss1", 0)))
        .await;
    assert!(!text.contains("voss_spark_customers{"), "{text}");
    assert!(
        text.contains("tenant_exporter_upstream_requests_total{collector=\"voss_spark_customers\",target=\"voss1\",code=\"401\"}"),
        "{text}"
    );
    assert!(
        !text.contains("tenant_exporter_upstream_retries_total{collector=\"voss_spark_customers\""),
        "a 401 is not retried: {text}"
    );
    let page = exporter.get("/").await.expect("landing page");
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
    let exporter = Exporter::start(
        &config(&sim, &[("voss1", PASSWORD), ("voss2", WRONG_PASSWORD)]),
        &["--log.level=debug"],
    );
    // One bad page too, so the error paths log as well.
    sim.set_fault(RequestKind::VossSparkCustomers, Fault::Malformed, Some(1));
    let text = exporter
        .wait_for("one good and one rejected target", |t| {
            t.contains(&customers("voss1", 12))
                && t.contains(&success("voss1", 1))
                && t.contains(&success("voss2", 0))
        })
        .await;
    let page = exporter.get("/").await.expect("landing page");
    let logs = exporter.logs();
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
    for (name, out) in [("/metrics", &text), ("/", &page), ("logs", &logs)] {
        for s in &secrets {
            assert!(
                !out.contains(s.as_str()),
                "{name} contains the secret {s:?}"
            );
        }
    }
}

#[test]
fn simulator_defaults_match_the_tests() {
    let o = VossOptions::default();
    assert_eq!(
        (o.customers, o.username.as_str(), o.password.as_str()),
        (12, "monitor", PASSWORD)
    );
}
