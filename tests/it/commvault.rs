//! The Commvault collector end to end: the real binary, started with a config file, polls the
//! in-process simulator over real sockets. Every wait polls for a condition and is bounded by
//! a deadline.

use std::time::Duration;

use crate::common::*;
use base64::Engine as _;
use tenant_exporter::simulator::commvault::CommvaultOptions;
use tenant_exporter::simulator::{Fault, Options, RequestKind, Simulator};

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

async fn simulator() -> Simulator {
    simulator_with(CommvaultOptions::default()).await
}

async fn simulator_with(opts: CommvaultOptions) -> Simulator {
    Simulator::start(Options {
        commvault: CommvaultOptions {
            // Counts grow every second, so fresh and kept values can be told apart.
            change_period: Duration::from_secs(1),
            ..opts
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

/// The exporter polling `config`, logging at debug level.
async fn start(dir: &TempDir, config: &str) -> Exporter {
    Exporter::with_config(dir, config, &["--log.level=debug"]).await
}

/// Waits for a successful collection of cs1, and returns the exposition.
async fn wait_success(exporter: &Exporter) -> String {
    exporter
        .wait_metrics("a successful collection", |m| {
            value(m, SUCCESS) == Some(1.0)
        })
        .await
}

/// Waits for a successful collection of cs1 that started after this call.
async fn wait_next_success(exporter: &Exporter) -> String {
    let done = count(&exporter.metrics().await, COLLECTIONS);
    exporter
        .wait_metrics("a later successful collection", |m| {
            count(m, COLLECTIONS) >= done + 2.0 && value(m, SUCCESS) == Some(1.0)
        })
        .await
}

/// Sends SIGTERM and waits for the process to exit.
async fn terminate(exporter: &mut Exporter) -> std::process::ExitStatus {
    exporter.signal("TERM");
    exporter.wait_exit(DEADLINE).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collects_every_organization_and_drops_vanished_ones() {
    let sim = simulator().await;
    let dir = TempDir::new("commvault-list");
    let exporter = start(&dir, &config(&sim)).await;
    let m = wait_success(&exporter).await;

    assert_eq!(value(&m, ORGANIZATIONS), Some(6.0));
    let ids = sim.commvault_organization_ids();
    assert_eq!(ids, [12, 15, 18, 21, 24, 27]);
    for id in &ids {
        let info = format!(r#"commvault_organization_info{{target="cs1",organization_id="{id}","#);
        assert_eq!(lines_starting(&m, &info).len(), 1, "{id}:\n{m}");
    }
    assert_eq!(
        value(
            &m,
            r#"commvault_organization_info{target="cs1",organization_id="12",organization="acme",description="Acme Corporation (managed backup)",company="Acme Corporation"}"#
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
    assert_eq!(lines_starting(&m, "commvault_organization_info{").len(), 4);
    assert!(!m.contains(r#"organization_id="24""#), "{m}");
    assert!(!m.contains(r#"organization_id="27""#), "{m}");
    assert_eq!(value(&m, SUCCESS), Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_organizations_are_read_without_the_list() {
    let sim = simulator().await;
    let config = format!("{}    organizations: [18, 15, 99]\n", config(&sim));
    let dir = TempDir::new("commvault-configured");
    let exporter = start(&dir, &config).await;
    let m = exporter
        .wait_metrics("a collection", |m| value(m, ORGANIZATIONS).is_some())
        .await;
    assert_eq!(value(&m, ORGANIZATIONS), Some(3.0));
    let ids: Vec<&str> = lines_starting(&m, "commvault_organization_info{")
        .into_iter()
        .filter_map(|l| l.split("organization_id=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(ids, ["15", "18"]);
    // The id that does not exist is the collection's problem.
    assert_eq!(value(&m, SUCCESS), Some(0.0));
    let landing = exporter.get_text("/").await;
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
    let dir = TempDir::new("commvault-session");
    let exporter = start(&dir, &config(&sim)).await;
    let m = wait_success(&exporter).await;
    assert_eq!(value(&m, REFRESHES), Some(1.0));

    // Every session ends upstream: the next request gets 401, the renewal is refused with
    // HTTP 200 and an `error` object, a new login follows and the request is sent again, all
    // within one collection.
    sim.expire_commvault_tokens();
    wait_until("a second login", || sim.commvault_counters().logins == 2).await;
    let m = wait_next_success(&exporter).await;
    assert_eq!(sim.commvault_counters().refused_renewals, 1);
    assert_eq!(value(&m, REFRESHES), Some(2.0));
    assert_eq!(count(&m, REFRESH_FAILURES), 0.0);
    assert_eq!(count(&m, FAILURES), 0.0, "{m}");

    // A 401 while the session is still alive upstream: renewing it is enough, because the
    // renewal carries the deviceId the login sent.
    sim.set_fault(
        RequestKind::CommvaultOrganizations,
        Fault::Unauthorized,
        Some(1),
    );
    wait_until("a renewal", || sim.commvault_counters().renewals == 1).await;
    let m = wait_next_success(&exporter).await;
    assert_eq!(value(&m, REFRESHES), Some(3.0));
    assert_eq!(count(&m, FAILURES), 0.0, "{m}");
    let c = sim.commvault_counters();
    assert_eq!((c.logins, c.refused_renewals), (2, 1), "{c:?}");
    assert_eq!(sim.commvault_live_sessions(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_server_errors_are_retried() {
    let sim = simulator().await;
    let dir = TempDir::new("commvault-retries");
    let exporter = start(&dir, &config(&sim)).await;
    wait_success(&exporter).await;

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
    let m = wait_next_success(&exporter).await;
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
    let m = wait_next_success(&exporter).await;
    assert_eq!(count(&m, FAILURES), 0.0, "{m}");
    assert_eq!(value(&m, ORGANIZATIONS), Some(6.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_list_fails_the_collection_and_keeps_the_last_good_series() {
    let sim = simulator().await;
    let dir = TempDir::new("commvault-malformed");
    let exporter = start(&dir, &config(&sim)).await;
    wait_success(&exporter).await;

    sim.set_fault(RequestKind::CommvaultOrganizations, Fault::Malformed, None);
    let m = exporter
        .wait_metrics("a failed collection", |m| value(m, SUCCESS) == Some(0.0))
        .await;
    assert_eq!(value(&m, ORGANIZATIONS), Some(6.0));
    assert_eq!(lines_starting(&m, "commvault_organization_users{").len(), 6);
    let landing = exporter.get_text("/").await;
    assert!(
        landing.contains("invalid organization list: invalid JSON"),
        "{landing}"
    );

    sim.clear_faults();
    let m = wait_success(&exporter).await;
    assert_eq!(value(&m, ORGANIZATIONS), Some(6.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_organization_keeps_its_last_good_series() {
    let sim = simulator().await;
    let dir = TempDir::new("commvault-partial");
    let exporter = start(&dir, &config(&sim)).await;
    wait_success(&exporter).await;
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
    let landing = exporter.get_text("/").await;
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
    assert_eq!(lines_starting(&m, "commvault_organization_info{").len(), 6);

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
    let dir = TempDir::new("commvault-logout");
    let mut exporter = start(&dir, &config(&sim)).await;
    wait_success(&exporter).await;
    let token = sim.commvault_tokens_issued().pop().expect("a token");
    assert!(sim.commvault_token_live(&token));
    assert_eq!(sim.commvault_counters().logouts, 0);

    let status = terminate(&mut exporter).await;
    assert!(status.success(), "{status}\n{}", exporter.log());
    assert_eq!(sim.commvault_counters().logouts, 1);
    assert!(!sim.commvault_token_live(&token));
    assert!(exporter.log().contains("msg=\"logged out of Commvault\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_logs_metrics_or_the_landing_page() {
    // cs2's wrong password must not lock the account cs1 shares with it.
    let sim = simulator_with(CommvaultOptions {
        lock_after: 0,
        ..Default::default()
    })
    .await;
    let password = sim.options().commvault.password.clone();
    let wrong = "not-the-password-7f3a9c";
    // cs2 names its organizations: their concurrent requests must not each try to log in.
    let config = format!(
        "{}{}    organizations: [12, 15, 18, 21]\n",
        config(&sim),
        target("cs2", &sim.commvault_base_url(), wrong)
    );
    let dir = TempDir::new("commvault-secrets");
    // Error answers quote the password and the session token they were sent.
    sim.echo_commvault_secrets(true);
    sim.fail_commvault_organization(Some(15));
    let mut exporter = start(&dir, &config).await;
    exporter
        .wait_metrics("a collection of cs1", |m| {
            value(m, &org_series("commvault_organization_users", 12, "acme")).is_some()
        })
        .await;
    exporter
        .wait_get("/", "the echoed token scrubbed on the landing page", |r| {
            r.text()
                .contains("Access denied for session &lt;redacted&gt;")
        })
        .await;
    sim.fail_commvault_organization(None);
    wait_success(&exporter).await;
    let cs2_failed =
        r#"tenant_exporter_collector_success{collector="commvault_organizations",target="cs2"} 0"#;
    exporter
        .wait_metrics("cs2 failing", |m| m.contains(cs2_failed))
        .await;
    let landing = exporter
        .wait_get("/", "the login failure on the landing page", |r| {
            r.status == 200
                && r.text().contains(
                    "Username/Password are incorrect for monitor with password &lt;redacted&gt;",
                )
        })
        .await
        .text();
    assert!(
        landing.contains("logging in to Commvault as &quot;monitor&quot; failed"),
        "{landing}"
    );

    // Renewals and new logins happen too.
    sim.expire_commvault_tokens();
    wait_until("a new login", || sim.commvault_counters().logins >= 2).await;
    // Until a renewal is seen: a single 401 can land in a collection that has already
    // replaced its session once, which then fails instead of renewing.
    sim.set_fault(
        RequestKind::CommvaultOrganization,
        Fault::Unauthorized,
        None,
    );
    wait_until("a renewal", || sim.commvault_counters().renewals >= 1).await;
    sim.set_fault(
        RequestKind::CommvaultOrganization,
        Fault::Unauthorized,
        Some(0),
    );
    let metrics = wait_next_success(&exporter).await;
    let landing = exporter.get_text("/").await;

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

    let status = terminate(&mut exporter).await;
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
    let texts = [("log", &*log), ("/metrics", &*metrics), ("/", &*landing)];
    assert_no_secrets(&texts, &secrets);
    for (name, text) in texts {
        assert!(!text.contains("QSDK"), "{name} mentions a token:\n{text}");
    }
}

/// 100 organizations read 8 at a time: enough concurrent requests to see a storm.
fn config_100(sim: &Simulator, extra: &str) -> String {
    format!("{}    concurrency: 8\n{extra}", config(sim))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_ending_every_session_costs_one_login() {
    let sim = simulator().await;
    sim.set_commvault_organizations(100);
    let dir = TempDir::new("commvault-kill-sessions");
    let exporter = start(&dir, &config_100(&sim, "")).await;
    let m = wait_success(&exporter).await;
    assert_eq!(value(&m, ORGANIZATIONS), Some(100.0));
    assert_eq!(sim.commvault_counters().logins, 1);

    // An admin ends every session mid-run: the 8 requests in flight all get 401.
    sim.expire_commvault_tokens();
    let m = wait_next_success(&exporter).await;
    let c = sim.commvault_counters();
    println!("sessions killed over 100 organizations: {c:?}");
    assert_eq!(c.logins, 2, "one login for the whole collection: {c:?}");
    assert_eq!(c.refused_renewals, 1, "{c:?}");
    assert_eq!(count(&m, FAILURES), 0.0, "{m}");
    assert_eq!(sim.commvault_live_sessions(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_storm_replaces_the_session_at_most_once_per_collection() {
    let sim = simulator().await;
    sim.set_commvault_organizations(100);
    let dir = TempDir::new("commvault-401-storm");
    let exporter = start(&dir, &config_100(&sim, "")).await;
    wait_success(&exporter).await;
    let before = sim.commvault_counters();
    let collections_before = count(&exporter.metrics().await, COLLECTIONS);

    // Every organization's details answer 401, whatever the token.
    sim.set_fault(
        RequestKind::CommvaultOrganization,
        Fault::Unauthorized,
        None,
    );
    let m = exporter
        .wait_metrics("three failed collections", |m| count(m, FAILURES) >= 3.0)
        .await;
    sim.clear_faults();
    let c = sim.commvault_counters();
    let collections = count(&m, COLLECTIONS) - collections_before;
    let replaced = (c.logins - before.logins) + (c.renewals - before.renewals);
    println!(
        "401 storm over 100 organizations: {} logins, {} renewals in {collections} collections",
        c.logins - before.logins,
        c.renewals - before.renewals
    );
    // The collection in flight may have replaced its session without being counted yet.
    assert!(
        replaced as f64 <= collections + 1.0,
        "{replaced} session replacements in {collections} collections: {c:?}"
    );
    assert_eq!(
        c.logins, before.logins,
        "the session was alive: no login needed"
    );
    // No session piles up on the CommServe.
    assert!(sim.commvault_live_sessions() <= 1);
    let landing = exporter.get_text("/").await;
    assert!(
        landing.contains("all 100 organizations failed") && landing.contains("HTTP 401"),
        "{landing}"
    );
    wait_next_success(&exporter).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_given_up_is_logged_out() {
    let sim = simulator().await;
    let dir = TempDir::new("commvault-replaced-logout");
    let exporter = start(&dir, &config(&sim)).await;
    wait_success(&exporter).await;
    let first = sim.commvault_tokens_issued().pop().expect("a token");

    // A 401 and a renewal that fails: the exporter logs in again and ends the session it
    // gave up, which is still open upstream.
    sim.set_fault(RequestKind::CommvaultRenew, Fault::Status(400), Some(1));
    sim.set_fault(
        RequestKind::CommvaultOrganizations,
        Fault::Unauthorized,
        Some(1),
    );
    wait_until("a second login", || sim.commvault_counters().logins == 2).await;
    let m = wait_next_success(&exporter).await;
    assert_eq!(count(&m, FAILURES), 0.0, "{m}");
    assert!(!sim.commvault_token_live(&first));
    assert_eq!(sim.commvault_counters().logouts, 1);
    assert_eq!(sim.commvault_live_sessions(), 1);
    exporter
        .wait_log("logged out of the replaced Commvault session")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_account_is_reported_and_not_logged_in_to_again() {
    let sim = simulator_with(CommvaultOptions {
        lock_after: 3,
        lock_time: Duration::from_secs(600),
        ..Default::default()
    })
    .await;
    let config = format!(
        "global: {{interval: 1s, timeout: 5s, stale_after: 30s}}\ncommvault:\n{}",
        target("cs1", &sim.commvault_base_url(), "wrong-password-4d2f")
    );
    let dir = TempDir::new("commvault-lockout");
    let exporter = start(&dir, &config).await;
    let locked = r#"tenant_exporter_credential_locked{target="cs1",credential="session_token"}"#;
    let m = exporter
        .wait_metrics("the lock reported", |m| value(m, locked) == Some(1.0))
        .await;
    assert_eq!(value(&m, SUCCESS), Some(0.0));
    // One login per collection, never retried: the third failure locked the account.
    assert_eq!(sim.commvault_counters().failed_logins, 3);
    let landing = exporter.get_text("/").await;
    assert!(
        landing.contains(
            "account &quot;monitor&quot; is locked for another 10m (remainingLockTime 600 s)"
        ),
        "{landing}"
    );
    assert!(exporter.log().contains("is locked for another"));

    // Later collections fail at once, without a login that would extend the lock.
    let done = count(&m, COLLECTIONS);
    exporter
        .wait_metrics("three more collections", |m| {
            count(m, COLLECTIONS) >= done + 3.0
        })
        .await;
    assert_eq!(sim.commvault_counters().failed_logins, 3);
    assert!(!exporter.log().contains("wrong-password-4d2f"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_commvault_cloud_login_answer_gives_a_bearer_token() {
    let sim = simulator_with(CommvaultOptions {
        saas_login: true,
        ..Default::default()
    })
    .await;
    let dir = TempDir::new("commvault-saas");
    let mut exporter = start(&dir, &config(&sim)).await;
    let m = wait_success(&exporter).await;
    assert_eq!(value(&m, ORGANIZATIONS), Some(6.0));
    let token = sim.commvault_tokens_issued().pop().expect("a token");
    assert!(token.starts_with("Bearer "), "{token}");

    // A Bearer token cannot be renewed: a session lost upstream means a new login.
    sim.expire_commvault_tokens();
    wait_until("a second login", || sim.commvault_counters().logins == 2).await;
    wait_next_success(&exporter).await;
    assert_eq!(sim.commvault_counters().renewals, 0);

    assert!(terminate(&mut exporter).await.success());
    let log = exporter.log();
    for t in sim.commvault_tokens_issued() {
        assert!(!log.contains(t.trim_start_matches("Bearer ")), "{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_tokens_are_renewed_rotated_saved_and_survive_a_restart() {
    let sim = simulator().await;
    let (access, refresh) = sim.commvault_access_tokens();
    let dir = TempDir::new("commvault-access-token");
    let refresh_file = dir.write("cv-refresh", &format!("{refresh}\n"));
    let config = format!(
        "global: {{interval: 1s, timeout: 5s, stale_after: 30s}}\ncommvault:\n  - name: cs1\n    base_url: {}\n    access_token: {access}\n    refresh_token_file: {}\n",
        sim.commvault_base_url(),
        refresh_file.display()
    );
    let mut exporter = start(&dir, &config).await;
    wait_success(&exporter).await;
    assert_eq!(sim.commvault_counters().logins, 0);

    // The access token expires: one renewal, the rotated pair saved before it is used.
    sim.expire_commvault_access_token();
    wait_until("a renewal", || {
        sim.commvault_counters().access_renewals == 1
    })
    .await;
    let m = wait_next_success(&exporter).await;
    assert_eq!(count(&m, FAILURES), 0.0, "{m}");
    let (access1, refresh1) = sim.commvault_access_tokens();
    let saved = std::fs::read_to_string(&refresh_file).unwrap();
    assert_eq!(saved, format!("{refresh1}\n{access1}\n"));
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&refresh_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // An access token is not logged out on shutdown: that would revoke it.
    assert!(terminate(&mut exporter).await.success());
    assert_eq!(sim.commvault_counters().logouts, 0);
    let log = exporter.log();

    // A restart continues from the saved pair: the configured access token is stale now.
    let mut exporter = start(&dir, &config).await;
    wait_success(&exporter).await;
    assert_eq!(sim.commvault_counters().access_renewals, 1);
    sim.expire_commvault_access_token();
    wait_until("a second renewal", || {
        sim.commvault_counters().access_renewals == 2
    })
    .await;
    let m = wait_next_success(&exporter).await;
    assert_eq!(count(&m, FAILURES), 0.0, "{m}");
    let (access2, refresh2) = sim.commvault_access_tokens();
    assert_eq!(
        std::fs::read_to_string(&refresh_file).unwrap(),
        format!("{refresh2}\n{access2}\n")
    );
    let landing = exporter.get_text("/").await;
    assert!(terminate(&mut exporter).await.success());
    let log = format!("{log}{}", exporter.log());
    let secrets = [access, refresh, access1, refresh1, access2, refresh2];
    assert_no_secrets(
        &[("log", &*log), ("/metrics", &*m), ("/", &*landing)],
        &secrets,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_organization_keeps_its_time_and_is_dropped_after_stale_after() {
    let sim = simulator().await;
    let config = config(&sim).replace("stale_after: 30s", "stale_after: 4s");
    let dir = TempDir::new("commvault-org-freshness");
    let exporter = start(&dir, &config).await;
    wait_success(&exporter).await;
    let fresh = |id, name| {
        org_series(
            "commvault_organization_last_success_timestamp_seconds",
            id,
            name,
        )
    };
    let m = wait_next_success(&exporter).await;
    let globex_read = value(&m, &fresh(15, "globex")).expect("globex read");
    assert!((unix_now() - globex_read).abs() < 10.0, "{globex_read}");

    sim.fail_commvault_organization(Some(15));
    let m = exporter
        .wait_metrics("a partly failed collection", |m| {
            value(m, SUCCESS) == Some(0.0)
        })
        .await;
    let kept = value(&m, &fresh(15, "globex")).expect("globex kept");
    let acme = value(&m, &fresh(12, "acme")).expect("acme");
    let m = exporter
        .wait_metrics("acme read again", |m| {
            value(m, &fresh(12, "acme")).is_some_and(|t| t > acme)
        })
        .await;
    assert_eq!(value(&m, &fresh(15, "globex")), Some(kept));

    // Past stale_after, globex's series go; the others stay.
    let m = exporter
        .wait_metrics("globex dropped", |m| !m.contains(r#"organization_id="15""#))
        .await;
    assert_eq!(lines_starting(&m, "commvault_organization_info{").len(), 5);
    assert_eq!(value(&m, ORGANIZATIONS), Some(6.0));
    assert_eq!(value(&m, SUCCESS), Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_out_on_shutdown_after_a_reload() {
    let sim = simulator().await;
    let dir = TempDir::new("commvault-reload-logout");
    let mut exporter = start(&dir, &config(&sim)).await;
    wait_success(&exporter).await;

    // A reload that changes the target's settings, then shutdown: every session opened is
    // closed again.
    dir.write(
        "config.yml",
        &format!("{}    concurrency: 2\n", config(&sim)),
    );
    exporter.signal("HUP");
    exporter.wait_log("configuration reloaded").await;
    wait_next_success(&exporter).await;
    assert!(terminate(&mut exporter).await.success());
    assert_eq!(
        sim.commvault_live_sessions(),
        0,
        "{:?}\n{}",
        sim.commvault_counters(),
        exporter.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_login_is_not_retried_within_the_collection() {
    let sim = simulator().await;
    // A 503 would be retried for any other request.
    sim.set_fault(RequestKind::CommvaultLogin, Fault::Status(503), Some(1));
    let dir = TempDir::new("commvault-login-once");
    let exporter = start(&dir, &config(&sim)).await;
    let m = exporter
        .wait_metrics("a failed collection", |m| count(m, FAILURES) >= 1.0)
        .await;
    assert_eq!(sim.requests(RequestKind::CommvaultLogin).len(), 1);
    let retries = r#"tenant_exporter_upstream_retries_total{collector="commvault_organizations",target="cs1",reason="unavailable"}"#;
    assert_eq!(count(&m, retries), 0.0, "{m}");
    // The next collection logs in.
    wait_success(&exporter).await;
    assert_eq!(sim.commvault_counters().logins, 1);
}
