//! The Webex OAuth integration and the partner-managed orgs collector, end to end: the real
//! binary against the simulator over real sockets.

use std::time::Duration;

use crate::common::*;
use tenant_exporter::simulator::{Fault, OAuthOptions, Options, RequestKind, Simulator};

const ACCESS_EXPIRY: &str =
    "tenant_exporter_credential_expiry_timestamp_seconds{target=\"sp1\",credential=\"access_token\"}";
const REFRESH_EXPIRY: &str =
    "tenant_exporter_credential_expiry_timestamp_seconds{target=\"sp1\",credential=\"refresh_token\"}";
const ACCESS_REFRESHES: &str =
    "tenant_exporter_credential_refreshes_total{target=\"sp1\",credential=\"access_token\"}";
const ROTATIONS: &str =
    "tenant_exporter_credential_refreshes_total{target=\"sp1\",credential=\"refresh_token\"}";
const REFRESH_FAILURES: &str =
    "tenant_exporter_credential_refresh_failures_total{target=\"sp1\",credential=\"access_token\"}";
const ORGS_SUCCESS: &str =
    "tenant_exporter_collector_success{collector=\"webex_managed_orgs\",target=\"sp1\"}";

async fn simulator() -> Simulator {
    Simulator::start(Options {
        oauth: OAuthOptions {
            access_token_lifetime: Duration::from_secs(86_400),
            ..OAuthOptions::default()
        },
        ..Options::default()
    })
    .await
    .expect("start simulator")
}

/// `sp1` with the simulator's OAuth integration, its refresh token in `dir/refresh-token`.
fn oauth_config(sim: &Simulator, client_secret: &str, admins: &str) -> String {
    let o = &sim.options().oauth;
    format!(
        "global: {{interval: 1s, timeout: 5s, stale_after: 30s}}\n\
         webex:\n\
         \x20 - name: sp1\n\
         \x20   base_url: {}\n\
         \x20   oauth: {{client_id: {}, client_secret: {client_secret}, refresh_token_file: refresh-token}}\n\
         \x20   broadworks_enterprises: {{page_size: 10}}\n\
         \x20   managed_orgs: {{admins: [{admins}]}}\n",
        sim.webex_base_url(),
        o.client_id,
    )
}

const ADMINS: &str = "{name: alice, person_id: alice-id}, {name: bob, person_id: bob-id}";

fn refresh_token_on_disk(dir: &TempDir) -> String {
    std::fs::read_to_string(dir.path().join("refresh-token"))
        .expect("refresh token file")
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_refresh_token_is_persisted_and_survives_a_restart() {
    let sim = simulator().await;
    let dir = TempDir::new("oauth-rotate");
    let first = sim.options().oauth.refresh_token.clone();
    dir.write("refresh-token", &format!("{first}\n"));
    let config = oauth_config(&sim, &sim.options().oauth.client_secret, ADMINS);

    let exp = Exporter::with_config(&dir, &config, &[]).await;
    let body = exp
        .wait_metrics("collections with a refreshed token", |b| {
            has_line(b, &format!("{SUCCESS_SP1} 1")) && has_line(b, &format!("{ORGS_SUCCESS} 1"))
        })
        .await;
    // The simulator revoked the first refresh token when it issued the second; the exporter
    // saved the second one, privately.
    let saved = refresh_token_on_disk(&dir);
    assert_ne!(saved, first);
    assert_eq!(saved, sim.current_refresh_token());
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("refresh-token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // One refresh served both collectors: they share the target's credentials.
    assert_eq!(value(&body, ACCESS_REFRESHES), Some(1.0), "{body}");
    assert_eq!(value(&body, ROTATIONS), Some(1.0), "{body}");
    let now = unix_now();
    let access = value(&body, ACCESS_EXPIRY).expect("access token expiry");
    let refresh = value(&body, REFRESH_EXPIRY).expect("refresh token expiry");
    assert!(
        (access - (now + 86_400.0)).abs() < 60.0,
        "{access} vs {now}"
    );
    assert!(
        (refresh - (now + 90.0 * 86_400.0)).abs() < 60.0,
        "{refresh} vs {now}"
    );
    drop(exp);

    // A new process starts from the saved token: the old one would be refused.
    let exp = Exporter::with_config(&dir, &config, &[]).await;
    exp.wait_line(&format!("{SUCCESS_SP1} 1")).await;
    assert_eq!(refresh_token_on_disk(&dir), sim.current_refresh_token());
    assert!(
        !exp.log().contains("refreshing the access token failed"),
        "{}",
        exp.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_access_token_is_refreshed_and_the_request_retried() {
    let sim = simulator().await;
    let dir = TempDir::new("oauth-401");
    dir.write("refresh-token", &sim.options().oauth.refresh_token);
    let exp = Exporter::with_config(
        &dir,
        &oauth_config(&sim, &sim.options().oauth.client_secret, ADMINS),
        &[],
    )
    .await;
    exp.wait_line(&format!("{ACCESS_REFRESHES} 1")).await;
    exp.wait_line(&format!("{SUCCESS_SP1} 1")).await;

    sim.revoke_access_tokens();
    let body = exp
        .wait_metrics("a second refresh after the 401", |b| {
            value(b, ACCESS_REFRESHES) == Some(2.0) && has_line(b, &format!("{SUCCESS_SP1} 1"))
        })
        .await;
    // The 401 was answered by refreshing, not by failing the collection.
    assert_eq!(count(&body, FAILURES_SP1), 0.0, "{body}");
    assert!(
        body.contains("tenant_exporter_upstream_requests_total{collector=\"webex_broadworks\",target=\"sp1\",code=\"401\"}")
            || body.contains("tenant_exporter_upstream_requests_total{collector=\"webex_managed_orgs\",target=\"sp1\",code=\"401\"}"),
        "{body}"
    );
    assert_eq!(refresh_token_on_disk(&dir), sim.current_refresh_token());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_refresh_is_a_clear_error_without_secrets() {
    let sim = simulator().await;
    let dir = TempDir::new("oauth-bad-secret");
    let refresh = sim.options().oauth.refresh_token.clone();
    dir.write("refresh-token", &refresh);
    let wrong_secret = "wrong-client-secret-value";
    let exp = Exporter::with_config(
        &dir,
        &oauth_config(&sim, wrong_secret, ADMINS),
        &["--log.level=debug"],
    )
    .await;
    let body = exp.wait_line(&format!("{SUCCESS_SP1} 0")).await;
    assert!(
        value(&body, REFRESH_FAILURES).is_some_and(|v| v >= 1.0),
        "{body}"
    );
    let landing = exp.get("/").await.text();
    assert!(
        landing.contains("refreshing the access token failed"),
        "{landing}"
    );
    assert!(landing.contains("HTTP 401"), "{landing}");
    // The token file is untouched and no secret shows anywhere.
    assert_eq!(refresh_token_on_disk(&dir), refresh);
    for secret in [wrong_secret, refresh.as_str()] {
        assert!(!exp.log().contains(secret), "secret in log");
        assert!(!landing.contains(secret), "secret on landing page");
        assert!(!exp.metrics().await.contains(secret), "secret in metrics");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_full_admin_is_a_config_error_and_the_other_admins_keep_working() {
    let sim = simulator().await;
    let dir = TempDir::new("managed-orgs");
    dir.write("refresh-token", &sim.options().oauth.refresh_token);
    let admins = format!("{ADMINS}, {{name: root, person_id: FULL-ADMIN-1}}");
    let exp = Exporter::with_config(
        &dir,
        &oauth_config(&sim, &sim.options().oauth.client_secret, &admins),
        &[],
    )
    .await;
    let body = exp
        .wait_metrics("alice's and bob's orgs", |b| {
            b.contains("webex_partner_managed_orgs{target=\"sp1\",admin=\"alice\"}")
                && b.contains("webex_partner_managed_orgs{target=\"sp1\",admin=\"bob\"}")
                && has_line(b, &format!("{ORGS_SUCCESS} 0"))
        })
        .await;
    let alice = value(
        &body,
        "webex_partner_managed_orgs{target=\"sp1\",admin=\"alice\"}",
    )
    .unwrap();
    let alice_info = lines_starting(
        &body,
        "webex_partner_managed_org_info{target=\"sp1\",admin=\"alice\",",
    )
    .len();
    assert!(alice >= 3.0 && alice_info as f64 == alice, "{body}");
    assert!(!body.contains("admin=\"root\""), "{body}");
    // The BroadWorks collector of the same target is unaffected.
    exp.wait_line(&format!("{SUCCESS_SP1} 1")).await;
    let landing = exp.get("/").await.text();
    assert!(
        landing.contains("admin &quot;root&quot;: configuration error"),
        "{landing}"
    );
    assert!(landing.contains("Partner Full Admin"), "{landing}");
    exp.wait_log("Partner Full Admin").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_orgs_follow_next_links_and_survive_retries() {
    let sim = simulator().await;
    let dir = TempDir::new("managed-orgs-retry");
    dir.write("refresh-token", &sim.options().oauth.refresh_token);
    sim.set_fault(
        RequestKind::PartnerOrganizations,
        Fault::RateLimited {
            retry_after: Some(1),
        },
        Some(1),
    );
    sim.set_fault(RequestKind::AccessToken, Fault::Status(503), Some(1));
    let exp = Exporter::with_config(
        &dir,
        &oauth_config(&sim, &sim.options().oauth.client_secret, ADMINS),
        &[],
    )
    .await;
    let body = exp.wait_line(&format!("{ORGS_SUCCESS} 1")).await;
    assert!(
        body.contains(
            "tenant_exporter_upstream_retries_total{collector=\"webex_managed_orgs\",target=\"sp1\",reason=\"rate_limited\"} 1"
        ),
        "{body}"
    );
    assert!(body.contains("reason=\"unavailable\"} 1"), "{body}");
    // Every page of every admin was asked with its managedBy, and at least one admin's list
    // took more than one page.
    let requests = sim.requests(RequestKind::PartnerOrganizations);
    assert!(
        requests.iter().all(|q| q.contains("managedBy=")),
        "{requests:?}"
    );
    assert!(
        requests.iter().any(|q| q.contains("cursor=")),
        "{requests:?}"
    );
    let orgs = |admin: &str| {
        let n = value(
            &body,
            &format!("webex_partner_managed_orgs{{target=\"sp1\",admin=\"{admin}\"}}"),
        )
        .unwrap();
        let info = lines_starting(
            &body,
            &format!("webex_partner_managed_org_info{{target=\"sp1\",admin=\"{admin}\","),
        )
        .len();
        assert_eq!(n, info as f64, "{body}");
    };
    orgs("alice");
    orgs("bob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_during_a_refresh_leaves_a_usable_token_file() {
    let sim = simulator().await;
    let dir = TempDir::new("oauth-kill");
    let first = sim.options().oauth.refresh_token.clone();
    dir.write("refresh-token", &first);
    let config = oauth_config(&sim, &sim.options().oauth.client_secret, ADMINS);

    // The token endpoint hangs; the process is killed (SIGKILL, no clean-up) while its
    // refresh is in flight.
    sim.set_fault(
        RequestKind::AccessToken,
        Fault::Slow(Duration::from_secs(30)),
        Some(1),
    );
    let mut exp = Exporter::with_config(&dir, &config, &[]).await;
    wait_until("the refresh request to arrive", || {
        !sim.requests(RequestKind::AccessToken).is_empty()
    })
    .await;
    exp.signal("KILL");
    exp.wait_exit(DEADLINE).await;
    assert_eq!(
        refresh_token_on_disk(&dir),
        first,
        "the file is whole and unchanged"
    );

    // A new process refreshes with it and saves the rotated token.
    let exp = Exporter::with_config(&dir, &config, &[]).await;
    exp.wait_line(&format!("{SUCCESS_SP1} 1")).await;
    assert_eq!(refresh_token_on_disk(&dir), sim.current_refresh_token());
    assert_ne!(refresh_token_on_disk(&dir), first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_during_a_refresh_keeps_the_rotated_token() {
    let sim = simulator().await;
    let dir = TempDir::new("oauth-reload");
    let first = sim.options().oauth.refresh_token.clone();
    dir.write("refresh-token", &first);
    let config = oauth_config(&sim, &sim.options().oauth.client_secret, ADMINS);
    // The token endpoint rotates the refresh token at once but holds its answer, so the
    // reload lands while the rotated token is only on the wire.
    sim.set_fault(
        RequestKind::AccessToken,
        Fault::Held(Duration::from_secs(2)),
        Some(1),
    );
    let exp = Exporter::with_config(&dir, &config, &[]).await;
    wait_until("the refresh request to arrive", || {
        !sim.requests(RequestKind::AccessToken).is_empty()
    })
    .await;
    let reload = exp.post("/-/reload").await;
    assert_eq!(reload.status, 200, "{}", reload.text());
    wait_until("the rotated token on disk", || {
        refresh_token_on_disk(&dir) == sim.current_refresh_token()
    })
    .await;
    assert_ne!(refresh_token_on_disk(&dir), first);
    let body = exp
        .wait_metrics("collections after the reload", |b| {
            has_line(b, &format!("{SUCCESS_SP1} 1")) && has_line(b, &format!("{ORGS_SUCCESS} 1"))
        })
        .await;
    // One refresh, one rotation: the collectors after the reload used its result.
    assert_eq!(sim.requests(RequestKind::AccessToken).len(), 1, "{body}");
    assert_eq!(count(&body, REFRESH_FAILURES), 0.0, "{body}");
    assert!(!exp.log().contains("invalid or revoked"), "{}", exp.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_expires_in_is_unknown_not_a_panic() {
    let sim = simulator().await;
    let dir = TempDir::new("oauth-expires-in");
    dir.write("refresh-token", &sim.options().oauth.refresh_token);
    sim.set_fault(
        RequestKind::AccessToken,
        Fault::ExpiresIn(u64::MAX),
        Some(1),
    );
    let exp = Exporter::with_config(
        &dir,
        &oauth_config(&sim, &sim.options().oauth.client_secret, ADMINS),
        &[],
    )
    .await;
    let body = exp.wait_line(&format!("{SUCCESS_SP1} 1")).await;
    exp.wait_log("absurd lifetime").await;
    assert_eq!(value(&body, ACCESS_EXPIRY), None, "{body}");
    // The process and its collector live on.
    let before = count(&body, COLLECTIONS_SP1);
    exp.wait_metrics("another collection", |b| count(b, COLLECTIONS_SP1) > before)
        .await;
    assert!(!exp.log().contains("panicked"), "{}", exp.log());
}

/// `sp1` with a static token and BroadWorks pages of `page_size`, polled every `interval`.
fn static_config(sim: &Simulator, interval: &str, page_size: u32) -> String {
    format!(
        "global: {{interval: {interval}, timeout: 5s, stale_after: 60s}}\n\
         webex:\n\
         \x20 - name: sp1\n\
         \x20   base_url: {}\n\
         \x20   access_token: {}\n\
         \x20   broadworks_enterprises: {{page_size: {page_size}}}\n",
        sim.webex_base_url(),
        sim.webex_token(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_zero_waits_a_second() {
    let sim = simulator().await;
    let dir = TempDir::new("retry-after-zero");
    sim.set_fault(
        RequestKind::BroadworksEnterprises,
        Fault::RateLimited {
            retry_after: Some(0),
        },
        Some(1),
    );
    // One collection only: its duration is the one measured.
    let exp = Exporter::with_config(&dir, &static_config(&sim, "60s", 10), &[]).await;
    let body = exp.wait_line(&format!("{SUCCESS_SP1} 1")).await;
    assert!(
        body.contains("reason=\"rate_limited\"} 1"),
        "the 429 was retried: {body}"
    );
    let took = value(
        &body,
        "tenant_exporter_collector_duration_seconds{collector=\"webex_broadworks\",target=\"sp1\"}",
    )
    .expect("collection duration");
    assert!(took >= 1.0, "Retry-After: 0 was retried after {took} s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_504_on_a_large_page_is_asked_again_with_smaller_pages() {
    let sim = simulator().await;
    let dir = TempDir::new("webex-504");
    sim.set_fault(
        RequestKind::BroadworksEnterprises,
        Fault::GatewayTimeoutAbove(30),
        None,
    );
    let exp = Exporter::with_config(&dir, &static_config(&sim, "60s", 100), &[]).await;
    // The samples are published just after the collection's self-metrics: wait for both.
    let body = exp
        .wait_metrics("all 25 enterprises", |b| {
            has_line(b, &format!("{SUCCESS_SP1} 1")) && value(b, ENTERPRISES_SP1) == Some(25.0)
        })
        .await;
    let requests = sim.requests(RequestKind::BroadworksEnterprises);
    let max_of = |q: &String| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("max="))
            .map(str::to_string)
    };
    let sizes: Vec<_> = requests.iter().filter_map(max_of).collect();
    assert_eq!(sizes[..3], ["100", "50", "25"], "{requests:?}");
    assert!(sizes[3..].iter().all(|m| m == "25"), "{requests:?}");
    // The 504s were answered by smaller pages, not by retrying the same page.
    assert!(!body.contains("reason=\"server_error\"} 1"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_page_ends_the_list_even_with_a_next_link() {
    let sim = simulator().await;
    let dir = TempDir::new("webex-empty-page");
    sim.set_fault(
        RequestKind::BroadworksEnterprises,
        Fault::EmptyPageWithNext,
        Some(1),
    );
    let exp = Exporter::with_config(&dir, &static_config(&sim, "60s", 10), &[]).await;
    exp.wait_metrics("a collection of 0 enterprises", |b| {
        has_line(b, &format!("{SUCCESS_SP1} 1")) && value(b, ENTERPRISES_SP1) == Some(0.0)
    })
    .await;
    let requests = sim.requests(RequestKind::BroadworksEnterprises);
    assert_eq!(
        requests.len(),
        1,
        "the next link was followed: {requests:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stray_max_null_in_next_links_is_dropped() {
    let sim = simulator().await;
    let dir = TempDir::new("webex-max-null");
    sim.set_fault(
        RequestKind::BroadworksEnterprises,
        Fault::MaxNullInNext,
        None,
    );
    sim.set_fault(
        RequestKind::PartnerOrganizations,
        Fault::MaxNullInNext,
        None,
    );
    dir.write("refresh-token", &sim.options().oauth.refresh_token);
    let exp = Exporter::with_config(
        &dir,
        &oauth_config(&sim, &sim.options().oauth.client_secret, ADMINS),
        &[],
    )
    .await;
    exp.wait_metrics("both collectors, all 25 enterprises", |b| {
        has_line(b, &format!("{SUCCESS_SP1} 1"))
            && has_line(b, &format!("{ORGS_SUCCESS} 1"))
            && value(b, ENTERPRISES_SP1) == Some(25.0)
    })
    .await;
    for kind in [
        RequestKind::BroadworksEnterprises,
        RequestKind::PartnerOrganizations,
    ] {
        let requests = sim.requests(kind);
        assert!(
            requests.iter().any(|q| q.contains("cursor=")),
            "{requests:?}"
        );
        assert!(
            !requests.iter().any(|q| q.contains("max=null")),
            "{requests:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_echoed_by_the_upstream_are_scrubbed() {
    let sim = simulator().await;
    let o = sim.options().oauth.clone();

    // The token endpoint quotes the client secret and the refresh token.
    let dir = TempDir::new("echo-oauth");
    dir.write("refresh-token", &o.refresh_token);
    sim.set_fault(RequestKind::AccessToken, Fault::EchoCredentials, None);
    let exp = Exporter::with_config(
        &dir,
        &oauth_config(&sim, &o.client_secret, ADMINS),
        &["--log.level=debug"],
    )
    .await;
    exp.wait_line(&format!("{SUCCESS_SP1} 0")).await;
    let landing = exp
        .wait_get("/", "the echoed error", |r| {
            r.text().contains("client_secret")
        })
        .await
        .text();
    assert!(landing.contains("&lt;redacted&gt;"), "{landing}");
    assert_no_secrets(
        &[
            ("/", &landing),
            ("log", &exp.log()),
            ("/metrics", &exp.metrics().await),
        ],
        &[o.client_secret.as_str(), o.refresh_token.as_str()],
    );
    drop(exp);

    // An API call quotes the bearer token.
    sim.clear_faults();
    sim.set_fault(
        RequestKind::BroadworksEnterprises,
        Fault::EchoCredentials,
        None,
    );
    let dir = TempDir::new("echo-static");
    let exp = Exporter::with_config(&dir, &config_for(&sim, "sp1"), &["--log.level=debug"]).await;
    exp.wait_line(&format!("{SUCCESS_SP1} 0")).await;
    let landing = exp
        .wait_get("/", "the echoed error", |r| {
            r.text().contains("authorization")
        })
        .await
        .text();
    assert!(landing.contains("&lt;redacted&gt;"), "{landing}");
    assert_no_secrets(
        &[
            ("/", &landing),
            ("log", &exp.log()),
            ("/metrics", &exp.metrics().await),
        ],
        &[sim.webex_token()],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_admin_keeps_its_last_good_series_until_stale_after() {
    let sim = simulator().await;
    let dir = TempDir::new("admin-freshness");
    dir.write("refresh-token", &sim.options().oauth.refresh_token);
    let config = oauth_config(&sim, &sim.options().oauth.client_secret, ADMINS)
        .replace("stale_after: 30s", "stale_after: 4s");
    let exp = Exporter::with_config(&dir, &config, &[]).await;
    let ts = |admin: &str| {
        format!(
            "webex_partner_admin_last_success_timestamp_seconds{{target=\"sp1\",admin=\"{admin}\"}}"
        )
    };
    let orgs =
        |admin: &str| format!("webex_partner_managed_orgs{{target=\"sp1\",admin=\"{admin}\"}}");
    let body = exp
        .wait_metrics("both admins read", |b| {
            value(b, &ts("alice")).is_some() && value(b, &ts("bob")).is_some()
        })
        .await;
    let now = unix_now();
    let alice_first = value(&body, &ts("alice")).unwrap();
    assert!((alice_first - now).abs() < 30.0, "{alice_first} vs {now}");

    sim.fail_admin("bob-id");
    let body = exp
        .wait_metrics("bob failing while alice is read again", |b| {
            // In a published collection where bob failed, his time is older than alice's
            // (when both are read, bob comes second).
            let alice = value(b, &ts("alice")).unwrap_or(0.0);
            has_line(b, &format!("{ORGS_SUCCESS} 0"))
                && alice > alice_first + 1.5
                && value(b, &ts("bob")).is_some_and(|t| t < alice)
        })
        .await;
    // bob's last good list and its time are still served.
    let bob_last = value(&body, &ts("bob")).expect("bob's timestamp kept");
    assert!(value(&body, &orgs("bob")).is_some(), "{body}");
    assert!(bob_last < value(&body, &ts("alice")).unwrap(), "{body}");

    // After stale_after without a good read, bob's series go; alice's stay.
    let body = exp
        .wait_metrics("bob's series dropped", |b| value(b, &ts("bob")).is_none())
        .await;
    assert!(value(&body, &orgs("bob")).is_none(), "{body}");
    assert!(value(&body, &orgs("alice")).is_some(), "{body}");
    assert!(unix_now() - bob_last >= 4.0);

    sim.heal_admin("bob-id");
    exp.wait_metrics("bob back", |b| {
        value(b, &ts("bob")).is_some_and(|t| t > bob_last)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_token_is_flagged_as_lasting_12_hours() {
    let sim = simulator().await;
    let dir = TempDir::new("static-token-note");
    let exp = Exporter::with_config(&dir, &config_for(&sim, "sp1"), &[]).await;
    exp.wait_line(&format!("{SUCCESS_SP1} 1")).await;
    exp.wait_log("a personal access token lasts 12 hours").await;
    let landing = exp.get("/").await.text();
    assert!(
        landing.contains("a personal access token lasts 12 hours"),
        "{landing}"
    );
    assert!(!landing.contains(sim.webex_token()), "{landing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_during_a_refresh_saves_the_rotated_token() {
    let sim = simulator().await;
    let dir = TempDir::new("oauth-term");
    let first = sim.options().oauth.refresh_token.clone();
    dir.write("refresh-token", &first);
    let config = oauth_config(&sim, &sim.options().oauth.client_secret, ADMINS);
    sim.set_fault(
        RequestKind::AccessToken,
        Fault::Held(Duration::from_secs(2)),
        Some(1),
    );
    let mut exp = Exporter::with_config(&dir, &config, &[]).await;
    wait_until("the refresh request to arrive", || {
        !sim.requests(RequestKind::AccessToken).is_empty()
    })
    .await;
    exp.signal("TERM");
    let status = exp.wait_exit(DEADLINE).await;
    assert!(status.success(), "{status}: {}", exp.log());
    assert_ne!(refresh_token_on_disk(&dir), first);
    assert_eq!(refresh_token_on_disk(&dir), sim.current_refresh_token());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_orgs_refuse_a_next_link_to_another_origin() {
    let sim = simulator().await;
    let trap = Trap::start().await;
    let dir = TempDir::new("orgs-next-link");
    dir.write("refresh-token", &sim.options().oauth.refresh_token);
    sim.set_fault(
        RequestKind::PartnerOrganizations,
        Fault::NextLinkOrigin(trap.origin()),
        None,
    );
    let exp = Exporter::with_config(
        &dir,
        &oauth_config(&sim, &sim.options().oauth.client_secret, ADMINS),
        &[],
    )
    .await;
    exp.wait_line(&format!("{ORGS_SUCCESS} 0")).await;
    let expected = format!("next link to another origin ({}) refused", trap.origin());
    exp.wait_get("/", &expected, |r| r.text().contains(&expected))
        .await;
    // The OAuth access token never reached the other origin.
    trap.assert_untouched();
}
