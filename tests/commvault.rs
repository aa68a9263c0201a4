//! The Commvault collector end to end: the real binary, started with a config file, polls the
//! in-process simulator over real sockets. Every wait polls for a condition and is bounded by
//! a deadline.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use tenant_exporter::simulator::commvault::CommvaultOptions;
use tenant_exporter::simulator::{Fault, Options, RequestKind, Simulator};

/// The longest any single wait may take.
const DEADLINE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

const SUCCESS: &str =
    r#"tenant_exporter_collector_success{collector="commvault_organizations",target="cs1"}"#;
const COLLECTIONS: &str =
    r#"tenant_exporter_collections_total{collector="commvault_organizations",target="cs1"}"#;
const FAILURES: &str = r#"tenant_exporter_collection_failures_total{collector="commvault_organizations",target="cs1"}"#;
const REFRESHES: &str =
    r#"tenant_exporter_credential_refreshes_total{target="cs1",credential="session_token"}"#;
const REFRESH_FAILURES: &str =
    r#"tenant_exporter_credential_refresh_failures_total{target="cs1",credential="session_token"}"#;
const ORGANIZATIONS: &str = r#"commvault_organizations{target="cs1"}"#;

/// The series of `family` for organization `id` of target cs1 (the simulator names it).
fn org_series(family: &str, id: u64, name: &str) -> String {
    format!(r#"{family}{{target="cs1",organization_id="{id}",organization="{name}"}}"#)
}

/// The value of the sample `series` (name and labels exactly as exposed).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .split(' ')
            .next()?
            .parse()
            .ok()
    })
}

/// A counter that was never incremented is absent: read it as 0.
fn count(text: &str, series: &str) -> f64 {
    value(text, series).unwrap_or(0.0)
}

async fn simulator() -> Simulator {
    Simulator::start(Options {
        commvault: CommvaultOptions {
            // Counts grow every second, so fresh and kept values can be told apart.
            change_period: Duration::from_secs(1),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .expect("start the simulator")
}

fn target(name: &str, base_url: &str, password: &str) -> String {
    format!(
        "  - name: {name}\n    base_url: {base_url}\n    username: monitor\n    password: {password}\n"
    )
}

fn config(sim: &Simulator) -> String {
    format!(
        "global: {{interval: 1s, timeout: 5s, stale_after: 30s}}\ncommvault:\n{}",
        target(
            "cs1",
            &sim.commvault_base_url(),
            &sim.options().commvault.password
        )
    )
}

/// The exporter as a child process, killed on drop.
struct Exporter {
    child: Child,
    base: String,
    log: Arc<Mutex<String>>,
    dir: PathBuf,
    http: reqwest::Client,
}

impl Exporter {
    /// Starts the binary with `config` and waits until it logs the address it listens on.
    async fn start(config: &str) -> Exporter {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tenant-exporter-commvault-it-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create the temp dir");
        let config_file = dir.join("tenant-exporter.yml");
        std::fs::write(&config_file, config).expect("write the config");
        let mut command = Command::new(env!("CARGO_BIN_EXE_tenant-exporter"));
        command
            .arg(format!("--config.file={}", config_file.display()))
            .arg("--web.listen-address=127.0.0.1:0")
            .arg("--log.level=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // The simulator is on loopback: no proxy must come between.
        for var in ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"] {
            command.env_remove(var);
        }
        command.env_remove("ALL_PROXY").env_remove("all_proxy");
        let mut child = command.spawn().expect("spawn tenant-exporter");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { return };
                    if line.contains("msg=listening") {
                        if let Some(addr) = line
                            .split(' ')
                            .find_map(|field| field.strip_prefix("address="))
                        {
                            let _ = tx.send(addr.to_string());
                        }
                    }
                    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("HTTP client");
        let mut exporter = Exporter {
            child,
            base: String::new(),
            log,
            dir,
            http,
        };
        let started = Instant::now();
        loop {
            if let Ok(addr) = rx.try_recv() {
                exporter.base = format!("http://{addr}");
                return exporter;
            }
            if let Ok(Some(status)) = exporter.child.try_wait() {
                panic!(
                    "the exporter exited ({status}) before listening:\n{}",
                    exporter.log()
                );
            }
            assert!(
                started.elapsed() < DEADLINE,
                "the exporter did not log its address:\n{}",
                exporter.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn get(&self, path: &str) -> String {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.text().await.expect("a text body")
    }

    async fn metrics(&self) -> String {
        self.get("/metrics").await
    }

    /// Polls `path` until `ok` holds for its body, and returns that body.
    async fn wait_for(&self, path: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let body = self.get(path).await;
            if ok(&body) {
                return body;
            }
            if started.elapsed() > DEADLINE {
                panic!(
                    "timed out waiting for {what}; {path}:\n{body}\nlog:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn wait_metrics(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        self.wait_for("/metrics", what, ok).await
    }

    /// Waits for the first successful collection, and returns the exposition.
    async fn wait_success(&self) -> String {
        self.wait_metrics("a successful collection", |m| {
            value(m, SUCCESS) == Some(1.0)
        })
        .await
    }

    /// Waits for a successful collection that started after this call.
    async fn wait_next_success(&self) -> String {
        let done = count(&self.metrics().await, COLLECTIONS);
        self.wait_metrics("a later successful collection", |m| {
            count(m, COLLECTIONS) >= done + 2.0 && value(m, SUCCESS) == Some(1.0)
        })
        .await
    }

    /// Sends SIGTERM and waits for the process to exit.
    async fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "the exporter did not exit after SIGTERM:\n{}",
                self.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls the simulator until `ok` holds.
async fn wait_sim(what: &str, ok: impl Fn() -> bool) {
    let started = Instant::now();
    while !ok() {
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collects_every_organization_and_drops_vanished_ones() {
    let sim = simulator().await;
    let exporter = Exporter::start(&config(&sim)).await;
    let m = exporter.wait_success().await;

    assert_eq!(value(&m, ORGANIZATIONS), Some(6.0));
    let ids = sim.commvault_organization_ids();
    assert_eq!(ids, [12, 15, 18, 21, 24, 27]);
    for id in &ids {
        let info = format!(r#"commvault_organization_info{{target="cs1",organization_id="{id}","#);
        assert_eq!(
            m.lines().filter(|l| l.starts_with(&info)).count(),
            1,
            "{id}:\n{m}"
        );
    }
    assert_eq!(
        value(
            &m,
            r#"commvault_organization_info{target="cs1",organization_id="12",organization="acme",description="Acme Corporation (managed backup)"}"#
        ),
        Some(1.0)
    );
    let acme = |family| org_series(family, 12, "acme");
    assert_eq!(
        value(&m, &acme("commvault_organization_enabled")),
        Some(1.0)
    );
    assert_eq!(
        value(&m, &acme("commvault_organization_hypervisors")),
        Some(1.0)
    );
    assert_eq!(
        value(
            &m,
            &acme("commvault_organization_created_timestamp_seconds")
        ),
        Some(1_507_659_390.0)
    );
    for family in [
        "commvault_organization_users",
        "commvault_organization_devices",
        "commvault_organization_physical_devices",
        "commvault_organization_servers",
        "commvault_organization_vms",
        "commvault_organization_machines",
        "commvault_organization_misc_machines",
    ] {
        assert!(value(&m, &acme(family)).is_some(), "{family}:\n{m}");
    }
    // The fifth organization is disabled.
    assert_eq!(
        value(
            &m,
            &org_series("commvault_organization_enabled", 24, "hooli")
        ),
        Some(0.0)
    );
    // One login, counted as a refresh of the session token.
    assert_eq!(value(&m, REFRESHES), Some(1.0));
    assert_eq!(sim.commvault_counters().logins, 1);

    // Organizations that leave disappear from the exposition.
    sim.set_commvault_organizations(4);
    let m = exporter
        .wait_metrics("4 organizations", |m| value(m, ORGANIZATIONS) == Some(4.0))
        .await;
    assert_eq!(
        m.lines()
            .filter(|l| l.starts_with("commvault_organization_info{"))
            .count(),
        4
    );
    assert!(!m.contains(r#"organization_id="24""#), "{m}");
    assert!(!m.contains(r#"organization_id="27""#), "{m}");
    assert_eq!(value(&m, SUCCESS), Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_organizations_are_read_without_the_list() {
    let sim = simulator().await;
    let config = format!("{}    organizations: [18, 15, 99]\n", config(&sim));
    let exporter = Exporter::start(&config).await;
    let m = exporter
        .wait_metrics("a collection", |m| value(m, ORGANIZATIONS).is_some())
        .await;
    assert_eq!(value(&m, ORGANIZATIONS), Some(3.0));
    let ids: Vec<&str> = m
        .lines()
        .filter(|l| l.starts_with("commvault_organization_info{"))
        .filter_map(|l| l.split("organization_id=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(ids, ["15", "18"]);
    // The id that does not exist is the collection's problem.
    assert_eq!(value(&m, SUCCESS), Some(0.0));
    let landing = exporter.get("/").await;
    assert!(
        landing.contains("organization 99: GET ")
            && landing.contains("/Organization/99: HTTP 404: Organization not found"),
        "{landing}"
    );
    assert!(sim.requests(RequestKind::CommvaultOrganizations).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_session_is_renewed_or_replaced_and_the_request_retried() {
    let sim = simulator().await;
    let exporter = Exporter::start(&config(&sim)).await;
    let m = exporter.wait_success().await;
    assert_eq!(value(&m, REFRESHES), Some(1.0));

    // Every session ends upstream: the next request gets 401, renewing fails, a new login
    // follows and the request is sent again, all within one collection.
    sim.expire_commvault_tokens();
    wait_sim("a second login", || sim.commvault_counters().logins == 2).await;
    let m = exporter.wait_next_success().await;
    assert_eq!(value(&m, REFRESHES), Some(2.0));
    assert_eq!(count(&m, REFRESH_FAILURES), 0.0);
    assert_eq!(count(&m, FAILURES), 0.0, "{m}");

    // A 401 while the session is still alive upstream: renewing it is enough.
    sim.set_fault(
        RequestKind::CommvaultOrganizations,
        Fault::Unauthorized,
        Some(1),
    );
    wait_sim("a renewal", || sim.commvault_counters().renewals == 1).await;
    let m = exporter.wait_next_success().await;
    assert_eq!(value(&m, REFRESHES), Some(3.0));
    assert_eq!(count(&m, FAILURES), 0.0, "{m}");
    assert_eq!(sim.commvault_counters().logins, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_server_errors_are_retried() {
    let sim = simulator().await;
    let exporter = Exporter::start(&config(&sim)).await;
    exporter.wait_success().await;

    let retries = |reason: &str| {
        format!(
            r#"tenant_exporter_upstream_retries_total{{collector="commvault_organizations",target="cs1",reason="{reason}"}}"#
        )
    };
    sim.set_fault(
        RequestKind::CommvaultOrganizations,
        Fault::RateLimited {
            retry_after: Some(1),
        },
        Some(1),
    );
    let m = exporter
        .wait_metrics("a retry after 429", |m| {
            count(m, &retries("rate_limited")) >= 1.0
        })
        .await;
    assert_eq!(
        value(
            &m,
            r#"tenant_exporter_upstream_requests_total{collector="commvault_organizations",target="cs1",code="429"}"#
        ),
        Some(1.0)
    );
    let m = exporter.wait_next_success().await;
    assert_eq!(count(&m, FAILURES), 0.0, "{m}");

    sim.set_fault(
        RequestKind::CommvaultOrganization,
        Fault::Status(500),
        Some(1),
    );
    exporter
        .wait_metrics("a retry after 500", |m| {
            count(m, &retries("server_error")) >= 1.0
        })
        .await;
    let m = exporter.wait_next_success().await;
    assert_eq!(count(&m, FAILURES), 0.0, "{m}");
    assert_eq!(value(&m, ORGANIZATIONS), Some(6.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_list_fails_the_collection_and_keeps_the_last_good_series() {
    let sim = simulator().await;
    let exporter = Exporter::start(&config(&sim)).await;
    exporter.wait_success().await;

    sim.set_fault(RequestKind::CommvaultOrganizations, Fault::Malformed, None);
    let m = exporter
        .wait_metrics("a failed collection", |m| value(m, SUCCESS) == Some(0.0))
        .await;
    assert_eq!(value(&m, ORGANIZATIONS), Some(6.0));
    assert_eq!(
        m.lines()
            .filter(|l| l.starts_with("commvault_organization_users{"))
            .count(),
        6
    );
    let landing = exporter.get("/").await;
    assert!(
        landing.contains("invalid organization list: invalid JSON"),
        "{landing}"
    );

    sim.clear_faults();
    let m = exporter.wait_success().await;
    assert_eq!(value(&m, ORGANIZATIONS), Some(6.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_organization_keeps_its_last_good_series() {
    let sim = simulator().await;
    let exporter = Exporter::start(&config(&sim)).await;
    exporter.wait_success().await;
    let users_globex = org_series("commvault_organization_users", 15, "globex");
    let users_acme = org_series("commvault_organization_users", 12, "acme");

    sim.fail_commvault_organization(Some(15));
    let m = exporter
        .wait_metrics("a partly failed collection", |m| {
            value(m, SUCCESS) == Some(0.0)
        })
        .await;
    let kept = value(&m, &users_globex).expect("globex kept");
    let acme = value(&m, &users_acme).expect("acme");
    let landing = exporter.get("/").await;
    assert!(
        landing.contains("partly failed: organization 15 (&quot;globex&quot;)")
            && landing.contains("errorCode 5: Access denied"),
        "{landing}"
    );

    // The others keep being updated while globex keeps its last good values.
    let m = exporter
        .wait_metrics("acme updated", |m| {
            value(m, &users_acme).is_some_and(|v| v > acme)
        })
        .await;
    assert_eq!(value(&m, &users_globex), Some(kept));
    assert_eq!(value(&m, SUCCESS), Some(0.0));
    assert_eq!(value(&m, ORGANIZATIONS), Some(6.0));
    assert_eq!(
        m.lines()
            .filter(|l| l.starts_with("commvault_organization_info{"))
            .count(),
        6
    );

    sim.fail_commvault_organization(None);
    exporter
        .wait_metrics("globex updated", |m| {
            value(m, SUCCESS) == Some(1.0) && value(m, &users_globex).is_some_and(|v| v > kept)
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_out_on_sigterm() {
    let sim = simulator().await;
    let mut exporter = Exporter::start(&config(&sim)).await;
    exporter.wait_success().await;
    let token = sim.commvault_tokens_issued().pop().expect("a token");
    assert!(sim.commvault_token_live(&token));
    assert_eq!(sim.commvault_counters().logouts, 0);

    let status = exporter.terminate().await;
    assert!(status.success(), "{status}\n{}", exporter.log());
    assert_eq!(sim.commvault_counters().logouts, 1);
    assert!(!sim.commvault_token_live(&token));
    assert!(exporter.log().contains("msg=\"logged out of Commvault\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_logs_metrics_or_the_landing_page() {
    let sim = simulator().await;
    let password = sim.options().commvault.password.clone();
    let wrong = "not-the-password-7f3a9c";
    // cs2 names its organizations: their concurrent requests must not each try to log in.
    let config = format!(
        "{}{}    organizations: [12, 15, 18, 21]\n",
        config(&sim),
        target("cs2", &sim.commvault_base_url(), wrong)
    );
    let mut exporter = Exporter::start(&config).await;
    exporter.wait_success().await;
    let cs2_failed =
        r#"tenant_exporter_collector_success{collector="commvault_organizations",target="cs2"} 0"#;
    exporter
        .wait_metrics("cs2 failing", |m| m.contains(cs2_failed))
        .await;
    let landing = exporter
        .wait_for("/", "the login failure on the landing page", |l| {
            l.contains("Username/Password are incorrect")
        })
        .await;
    assert!(
        landing.contains("logging in to Commvault as &quot;monitor&quot; failed"),
        "{landing}"
    );

    // Renewals and new logins happen too.
    sim.expire_commvault_tokens();
    wait_sim("a new login", || sim.commvault_counters().logins >= 2).await;
    sim.set_fault(
        RequestKind::CommvaultOrganization,
        Fault::Unauthorized,
        Some(1),
    );
    wait_sim("a renewal", || sim.commvault_counters().renewals >= 1).await;
    let metrics = exporter.wait_next_success().await;
    let landing = exporter.get("/").await;

    // A wrong password is tried once per collection, never once per request.
    let failed_logins = sim.commvault_counters().failed_logins;
    let cs2_collections = count(
        &exporter.metrics().await,
        r#"tenant_exporter_collections_total{collector="commvault_organizations",target="cs2"}"#,
    );
    assert!(failed_logins >= 1);
    // The collection in flight may have tried already without being counted yet.
    assert!(
        failed_logins as f64 <= cs2_collections + 1.0,
        "{failed_logins} failed logins in {cs2_collections} collections"
    );

    let status = exporter.terminate().await;
    assert!(status.success());
    let log = exporter.log();
    assert!(log.contains("level=debug"), "not a debug log:\n{log}");

    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut secrets = vec![
        password.clone(),
        b64(&password),
        wrong.to_string(),
        b64(wrong),
    ];
    let tokens = sim.commvault_tokens_issued();
    assert!(tokens.len() >= 3, "{tokens:?}");
    for t in tokens {
        secrets.push(t.trim_start_matches("QSDK ").to_string());
        secrets.push(t);
    }
    for (name, text) in [("log", &log), ("/metrics", &metrics), ("/", &landing)] {
        for s in &secrets {
            assert!(
                !text.contains(s.as_str()),
                "{name} contains a secret:\n{text}"
            );
        }
        assert!(!text.contains("QSDK"), "{name} mentions a token:\n{text}");
    }
}
