//! End-to-end tests: the real binary against the in-process simulator over real sockets.
//!
//! Each test starts its own simulator (on this test's runtime) and its own exporter process,
//! so tests are independent and can run in parallel. Every wait is bounded (see
//! `common::DEADLINE`).

use std::time::Duration;

use crate::common::*;
use tenant_exporter::simulator::{Fault, Options, RequestKind, Simulator};

const KIND: RequestKind = RequestKind::BroadworksEnterprises;

async fn simulator() -> Simulator {
    Simulator::start(Options::default())
        .await
        .expect("start simulator")
}

/// The exporter polling `sim` as target `sp1` (interval 1 s, stale_after 4 s, page size 10).
async fn exporter_for(dir: &TempDir, sim: &Simulator) -> Exporter {
    Exporter::with_config(dir, &config_for(sim, "sp1"), &[]).await
}

/// Waits for a successful collection of `sp1` with its samples published. The success gauge
/// is live while the samples come with the next published snapshot a moment later, so a
/// scrape can show one without the other; wait for both.
async fn wait_good_collection(exp: &Exporter) -> String {
    exp.wait_metrics("a good collection of sp1", |b| {
        has_line(b, &format!("{SUCCESS_SP1} 1"))
            && has_line(b, "webex_broadworks_enterprises{target=\"sp1\"} 25.0")
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_through_every_enterprise_keeping_the_page_size() {
    let sim = simulator().await;
    let dir = TempDir::new("paging");
    let exp = exporter_for(&dir, &sim).await;

    let body = exp
        .wait_line("webex_broadworks_enterprises{target=\"sp1\"} 25.0")
        .await;
    assert_eq!(
        lines_starting(&body, "webex_broadworks_enterprise_info{target=\"sp1\",").len(),
        25,
        "{body}"
    );
    // The landing page shows the target's series: its sample lines in the exposition.
    let series = body
        .lines()
        .filter(|l| l.starts_with("webex_broadworks") && l.contains("target=\"sp1\""))
        .count();
    let landing = exp.get("/").await.text();
    assert!(
        landing.contains(&format!("<td>25</td><td>{series}</td>")),
        "{series} series: {landing}"
    );

    let requests = sim.requests(KIND);
    assert!(requests.len() >= 3, "{requests:?}");
    for q in &requests {
        assert!(
            q.split('&').any(|p| p == "max=10"),
            "request without max=10: {q:?} (all: {requests:?})"
        );
    }
    // One collection is three pages: the first without a cursor, then cursors 10 and 20.
    let mut cursors: Vec<&str> = requests[..3]
        .iter()
        .map(|q| {
            q.split('&')
                .find_map(|p| p.strip_prefix("cursor="))
                .unwrap_or("")
        })
        .collect();
    cursors.sort();
    assert_eq!(cursors, ["", "10", "20"], "{requests:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_requests_are_retried_after_retry_after() {
    let sim = simulator().await;
    sim.set_fault(
        KIND,
        Fault::RateLimited {
            retry_after: Some(1),
        },
        Some(2),
    );
    let dir = TempDir::new("ratelimit");
    let exp = exporter_for(&dir, &sim).await;

    let body = wait_good_collection(&exp).await;
    let retries = value(
        &body,
        "tenant_exporter_upstream_retries_total{collector=\"webex_broadworks\",target=\"sp1\",reason=\"rate_limited\"}",
    );
    assert!(
        retries.is_some_and(|r| r >= 2.0),
        "retries {retries:?}\n{body}"
    );
    assert!(
        has_line(
            &body,
            "tenant_exporter_upstream_requests_total{collector=\"webex_broadworks\",target=\"sp1\",code=\"429\"} 2"
        ),
        "{body}"
    );
    // The first collection succeeded despite the 429s: no failure was recorded.
    assert_eq!(value(&body, FAILURES_SP1), Some(0.0), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_with_backoff() {
    let sim = simulator().await;
    sim.set_fault(KIND, Fault::Status(500), Some(2));
    let dir = TempDir::new("5xx");
    let exp = exporter_for(&dir, &sim).await;

    let body = wait_good_collection(&exp).await;
    assert!(
        has_line(
            &body,
            "tenant_exporter_upstream_retries_total{collector=\"webex_broadworks\",target=\"sp1\",reason=\"server_error\"} 2"
        ),
        "{body}"
    );
    assert!(
        has_line(
            &body,
            "tenant_exporter_upstream_requests_total{collector=\"webex_broadworks\",target=\"sp1\",code=\"500\"} 2"
        ),
        "{body}"
    );
    assert_eq!(value(&body, FAILURES_SP1), Some(0.0), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_keeps_last_good_samples_until_stale_then_recovers() {
    let sim = simulator().await;
    let dir = TempDir::new("malformed");
    let exp = exporter_for(&dir, &sim).await;
    let enterprises = "webex_broadworks_enterprises{target=\"sp1\"} 25.0";
    let body = wait_good_collection(&exp).await;
    // The last success is at most an interval before this.
    let good_seen = std::time::Instant::now();
    let failures_before = count(&body, FAILURES_SP1);

    sim.set_fault(KIND, Fault::Malformed, None);
    // The first failure: success drops to 0 while the last good samples are still served
    // (stale_after is 4 s, the interval 1 s).
    let body = exp.wait_line(&format!("{SUCCESS_SP1} 0")).await;
    assert!(has_line(&body, enterprises), "{body}");
    assert!(has_line(&body, &format!("{STALE_SP1} 0")), "{body}");
    let failures = count(&body, FAILURES_SP1);
    assert!(
        failures > failures_before,
        "{failures} <= {failures_before}\n{body}"
    );

    // stale_after without success: every webex_broadworks_* sample is dropped. (The stale
    // gauge is live and the samples leave with the next published snapshot; wait for both.)
    let body = exp
        .wait_metrics("the samples of sp1 dropped as stale", |b| {
            has_line(b, &format!("{STALE_SP1} 1"))
                && !b.lines().any(|l| l.starts_with("webex_broadworks"))
        })
        .await;
    // Not before stale_after (4 s) from the last success, which was at most about an
    // interval (1 s) before `good_seen`.
    let waited = good_seen.elapsed();
    assert!(
        waited >= Duration::from_millis(2500),
        "dropped after {waited:?}"
    );
    assert!(has_line(&body, &format!("{SUCCESS_SP1} 0")), "{body}");
    let landing = exp.get("/").await.text();
    assert!(landing.contains("<tr class=\"stale\">"), "{landing}");

    sim.clear_faults();
    let body = exp
        .wait_metrics("recovery", |b| {
            has_line(b, &format!("{SUCCESS_SP1} 1")) && has_line(b, enterprises)
        })
        .await;
    assert!(has_line(&body, &format!("{STALE_SP1} 0")), "{body}");
    exp.wait_log("collection recovered").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_json_fails_the_collection_with_an_error_on_the_landing_page() {
    let sim = simulator().await;
    sim.set_fault(KIND, Fault::Truncated, None);
    let dir = TempDir::new("truncated");
    let exp = exporter_for(&dir, &sim).await;

    let body = exp.wait_line(&format!("{SUCCESS_SP1} 0")).await;
    assert!(
        !body.lines().any(|l| l.starts_with("webex_broadworks")),
        "{body}"
    );
    let landing = exp
        .wait_get("/", "an error on the landing page", |r| {
            r.text().contains("<td class=\"err\">http")
        })
        .await
        .text();
    let row = landing
        .lines()
        .find(|l| l.contains("<td>sp1</td>"))
        .unwrap_or_else(|| panic!("no row for sp1: {landing}"));
    assert!(row.starts_with("<tr class=\"down\">"), "{row}");
    assert!(row.contains("invalid"), "{row}");
    // /-/ready only waits for a first attempt, failed or not.
    assert_eq!(exp.get("/-/ready").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiates_format_and_gzip_and_serves_the_other_endpoints() {
    let sim = simulator().await;
    // The first request is slow, so readiness can be seen before the first collection.
    sim.set_fault(KIND, Fault::Slow(Duration::from_millis(1500)), Some(1));
    let dir = TempDir::new("negotiation");
    // A long interval keeps the exposition still between the scrapes compared below.
    let config = config_with(
        "{interval: 60s, timeout: 5s, stale_after: 120s}",
        "sp1",
        &sim.webex_base_url(),
        sim.webex_token(),
    );
    let exp = Exporter::with_config(&dir, &config, &[]).await;

    let r = exp.get("/-/ready").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().starts_with("Not ready"), "{}", r.text());
    let r = exp.get("/-/healthy").await;
    assert_eq!((r.status, r.text().as_str()), (200, "Healthy\n"));
    exp.wait_get("/-/ready", "readiness", |r| r.status == 200)
        .await;
    wait_good_collection(&exp).await;

    // OpenMetrics.
    let om_accept = [("Accept", "application/openmetrics-text;version=1.0.0")];
    let om = exp.get_with("/metrics", &om_accept).await;
    assert_eq!(om.status, 200);
    assert_eq!(
        om.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert_eq!(om.header("content-encoding"), None);
    let om_text = om.text();
    assert!(om_text.ends_with("\n# EOF\n"), "{om_text}");
    assert_eq!(om_text.matches("# EOF").count(), 1, "{om_text}");
    assert!(
        has_line(&om_text, "# TYPE tenant_exporter_collections counter"),
        "{om_text}"
    );
    assert!(
        has_line(
            &om_text,
            "tenant_exporter_collections_total{collector=\"webex_broadworks\",target=\"sp1\"} 1"
        ),
        "{om_text}"
    );
    assert!(
        has_line(
            &om_text,
            "webex_broadworks_enterprises{target=\"sp1\"} 25.0"
        ),
        "{om_text}"
    );

    // The Prometheus text format, asked for or by default (a request without Accept).
    let text_accept = [("Accept", "text/plain")];
    let plain = exp.get_with("/metrics", &text_accept).await;
    let bare = raw_get(exp.addr, "/metrics", &[]).await;
    for (what, r) in [("Accept: text/plain", &plain), ("no Accept", &bare)] {
        assert_eq!(r.status, 200, "{what}");
        assert_eq!(
            r.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8"),
            "{what}"
        );
        assert_eq!(r.header("content-encoding"), None, "{what}");
        let t = r.text();
        assert!(!t.contains("# EOF"), "{what}: {t}");
        assert!(
            has_line(&t, "# TYPE tenant_exporter_collections_total counter"),
            "{what}: {t}"
        );
        assert!(
            !has_line(&t, "# TYPE tenant_exporter_collections counter"),
            "{what}: {t}"
        );
        validate_prometheus_text(&t).unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    assert_eq!(stable_lines(&plain.text()), stable_lines(&bare.text()));
    assert_eq!(
        plain.header("content-length"),
        Some(plain.body.len().to_string().as_str())
    );

    // gzip: one member, the same series as the identity response.
    for (accept, identity) in [(text_accept[0], &plain), (om_accept[0], &om)] {
        let gz = exp
            .get_with("/metrics", &[accept, ("Accept-Encoding", "gzip")])
            .await;
        assert_eq!(gz.status, 200);
        assert_eq!(gz.header("content-encoding"), Some("gzip"), "{accept:?}");
        assert_eq!(gz.header("content-type"), identity.header("content-type"));
        assert_eq!(gz.header("vary"), Some("Accept, Accept-Encoding"));
        let text = gunzip_single_member(&gz.body);
        let identity = identity.text();
        assert_eq!(
            stable_lines(&text),
            stable_lines(&identity),
            "{accept:?}\n--- gzip:\n{text}\n--- identity:\n{identity}"
        );
        assert_eq!(text.ends_with("# EOF\n"), identity.ends_with("# EOF\n"));
    }
    // gzip;q=0 refuses gzip.
    let r = exp
        .get_with("/metrics", &[("Accept-Encoding", "gzip;q=0")])
        .await;
    assert_eq!(r.header("content-encoding"), None);

    // The other endpoints.
    let r = exp.get("/nope").await;
    assert_eq!((r.status, r.text().as_str()), (404, "404 page not found\n"));
    let r = exp.request(reqwest::Method::HEAD, "/nope", &[]).await;
    assert_eq!(r.status, 404);
    let r = exp.request(reqwest::Method::HEAD, "/-/healthy", &[]).await;
    assert_eq!(r.status, 200);
    let r = exp.get("/-/reload").await;
    assert_eq!(r.status, 405);
    let r = exp.get("/").await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/html")));
    let landing = r.text();
    assert!(
        landing.contains("<a href=\"/metrics\">/metrics</a>"),
        "{landing}"
    );
    assert!(
        landing.contains("<tr class=\"up\"><td>webex_broadworks</td><td>sp1</td>"),
        "{landing}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_accepts_a_good_file() {
    let dir = TempDir::new("check-good");
    dir.write("token.txt", "file-token\n");
    let path = dir.write(
        "good.yml",
        "global: {interval: 10s, timeout: 5s, stale_after: 40s}\n\
         webex:\n\
         \x20 - name: sp1\n\
         \x20   base_url: http://127.0.0.1:1/v1\n\
         \x20   access_token: inline-token\n\
         \x20   broadworks_enterprises: {page_size: 10}\n\
         \x20 - name: sp2\n\
         \x20   access_token_file: token.txt\n\
         \x20   managed_orgs: {admins: [{name: alice, person_id: p1}]}\n",
    );
    let file = format!("--config.file={}", path.display());
    let out = run(&["--config.check", &file], DEADLINE).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        out.stdout,
        format!(
            "{}: config is valid (2 webex, 0 voss, 0 commvault targets)\n",
            path.display()
        )
    );
    assert_eq!(out.stderr, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_reports_every_semantic_problem_with_its_location() {
    let dir = TempDir::new("check-bad");
    let text = "global:\n\
                \x20 interval: 5 parsecs\n\
                webex:\n\
                \x20 - name: sp1\n\
                \x20   base_url: ftp://x\n\
                \x20   access_token: abc\n\
                \x20   broadworks_enterprises: {}\n\
                \x20 - name: sp1\n\
                \x20   access_token_file: /nonexistent\n\
                \x20   broadworks_enterprises: {}\n";
    let path = dir.write("bad.yml", text);
    let file = format!("--config.file={}", path.display());
    let out = run(&["--config.check", &file], DEADLINE).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(out.stdout, "");

    let at = |needle: &str| {
        let (line, col) = position(text, needle);
        format!("{}:{line}:{col}: ", path.display())
    };
    let lines: Vec<&str> = out.stderr.lines().collect();
    // Each problem: its exact location, then fragments its message must contain.
    let expected: [(String, &[&str]); 4] = [
        (
            at("5 parsecs"),
            &["global.interval", "invalid duration", "\"5 parsecs\""],
        ),
        (at("ftp://x"), &["base_url", "scheme must be http or https"]),
        (
            // The second `sp1`, on line 8.
            format!("{}:8:{}: ", path.display(), position(text, "sp1").1),
            &["duplicate target name \"sp1\""],
        ),
        (
            at("/nonexistent"),
            &["access_token_file", "/nonexistent", "cannot read"],
        ),
    ];
    assert_eq!(lines.len(), expected.len(), "{}", out.stderr);
    for (prefix, fragments) in &expected {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(prefix.as_str()) && fragments.iter().all(|f| l.contains(f))),
            "no line starting with `{prefix}` containing {fragments:?} in:\n{}",
            out.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_reports_an_unknown_key_with_its_location() {
    let dir = TempDir::new("check-unknown");
    let text = "global: {interval: 10s, timeout: 5s, stale_after: 40s}\n\
                webex:\n\
                \x20 - name: sp1\n\
                \x20   base_url: http://127.0.0.1:1/v1\n\
                \x20   access_token: x\n\
                \x20   broadworks_enterprises: {}\n\
                \x20   bogus_key: 1\n";
    let path = dir.write("unknown.yml", text);
    let file = format!("--config.file={}", path.display());
    let out = run(&["--config.check", &file], DEADLINE).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let (line, col) = position(text, "bogus_key");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    assert!(
        lines[0].starts_with(&format!("{}:{line}:{col}: ", path.display())),
        "{}",
        out.stderr
    );
    assert!(
        lines[0].contains("unknown key `bogus_key`"),
        "{}",
        out.stderr
    );

    // A file that is not even YAML.
    let path = dir.write("broken.yml", "webex: [\n  - name: x\n   bad");
    let file = format!("--config.file={}", path.display());
    let out = run(&["--config.check", &file], DEADLINE).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        out.stderr.starts_with(&format!("{}:", path.display())),
        "{}",
        out.stderr
    );

    // A missing file.
    let missing = dir.path().join("missing.yml");
    let file = format!("--config.file={}", missing.display());
    let out = run(&["--config.check", &file], DEADLINE).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("cannot read config file"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_flag_is_an_error() {
    let out = run(&["--web.konfig.file=x"], DEADLINE).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        out.stderr
            .contains("unexpected argument '--web.konfig.file'"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_by_sighup_and_http_keeps_the_old_config_when_the_new_one_is_bad() {
    let sim = simulator().await;
    let dir = TempDir::new("reload");
    let exp = exporter_for(&dir, &sim).await;
    let sp1 = "webex_broadworks_enterprises{target=\"sp1\"} 25.0";
    let body = wait_good_collection(&exp).await;
    let collections = value(&body, COLLECTIONS_SP1).expect("collections of sp1");

    // Invalid YAML and SIGHUP: the reload fails and sp1 keeps being collected.
    dir.write("config.yml", "global: [unclosed\nwebex: {\n");
    exp.signal("HUP");
    exp.wait_log("configuration reload failed").await;
    let body = exp
        .wait_metrics("sp1 collected twice more after the failed reload", |b| {
            value(b, COLLECTIONS_SP1).is_some_and(|c| c >= collections + 2.0)
        })
        .await;
    assert!(has_line(&body, sp1), "{body}");
    assert!(has_line(&body, &format!("{SUCCESS_SP1} 1")), "{body}");

    // The same through POST /-/reload, with a file that parses but does not validate.
    let bad = config_for(&sim, "sp2").replace("interval: 1s", "interval: 5 parsecs");
    dir.write("config.yml", &bad);
    let r = exp.post("/-/reload").await;
    assert_eq!(r.status, 400, "{}", r.text());
    let text = r.text();
    assert!(text.contains("the old one keeps running"), "{text}");
    assert!(text.contains("invalid duration \"5 parsecs\""), "{text}");
    assert!(text.contains("config.yml:1:"), "{text}");
    let body = exp.metrics().await;
    assert!(has_line(&body, sp1), "{body}");
    assert!(!body.contains("target=\"sp2\""), "{body}");

    // A good config with another target name: sp2 replaces sp1.
    dir.write("config.yml", &config_for(&sim, "sp2"));
    let r = exp.post("/-/reload").await;
    assert_eq!((r.status, r.text().as_str()), (200, "config reloaded\n"));
    let body = exp
        .wait_line("webex_broadworks_enterprises{target=\"sp2\"} 25.0")
        .await;
    assert!(
        has_line(
            &body,
            "tenant_exporter_collector_success{collector=\"webex_broadworks\",target=\"sp2\"} 1"
        ),
        "{body}"
    );
    // Every series of sp1 is gone but the upstream request counters; see
    // `removed_target_leaves_no_series_behind` for those.
    let leftovers: Vec<&str> = body
        .lines()
        .filter(|l| l.contains("target=\"sp1\""))
        .filter(|l| {
            !l.starts_with("tenant_exporter_upstream_requests_total{")
                && !l.starts_with("tenant_exporter_upstream_retries_total{")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:#?}");
    let landing = exp.get("/").await.text();
    assert!(landing.contains("<td>sp2</td>"), "{landing}");
    assert!(!landing.contains("<td>sp1</td>"), "{landing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_target_leaves_no_series_behind() {
    let sim = simulator().await;
    sim.set_fault(KIND, Fault::Status(500), Some(1));
    let dir = TempDir::new("reload-leftovers");
    let exp = exporter_for(&dir, &sim).await;
    wait_good_collection(&exp).await;

    dir.write("config.yml", &config_for(&sim, "sp2"));
    let r = exp.post("/-/reload").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = exp
        .wait_line("webex_broadworks_enterprises{target=\"sp2\"} 25.0")
        .await;
    let leftovers: Vec<&str> = body
        .lines()
        .filter(|l| l.contains("target=\"sp1\""))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enterprises_that_vanish_upstream_vanish_from_the_exposition() {
    let sim = simulator().await;
    let dir = TempDir::new("vanish");
    let exp = exporter_for(&dir, &sim).await;
    // Index 4 and 5 in the simulator.
    let fifth = "sp_enterprise_id=\"Reseller2+tenant-00004\"";
    let sixth = "sp_enterprise_id=\"Reseller3+tenant-00005\"";

    let body = exp
        .wait_line("webex_broadworks_enterprises{target=\"sp1\"} 25.0")
        .await;
    assert!(body.contains(sixth), "{body}");

    sim.set_enterprises(5);
    let body = exp
        .wait_line("webex_broadworks_enterprises{target=\"sp1\"} 5.0")
        .await;
    assert!(!body.contains(sixth), "{body}");
    assert!(body.contains(fifth), "{body}");
    assert_eq!(
        lines_starting(&body, "webex_broadworks_enterprise_info{").len(),
        5,
        "{body}"
    );
    assert!(has_line(&body, &format!("{SUCCESS_SP1} 1")), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_prints_valid_prometheus_text_and_exits_zero() {
    let sim = simulator().await;
    let dir = TempDir::new("once");
    let path = dir.write("config.yml", &config_for(&sim, "sp1"));
    let file = format!("--config.file={}", path.display());
    let out = run(&["--once", &file], DEADLINE).await;
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    validate_prometheus_text(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{}", out.stdout));
    assert!(
        has_line(
            &out.stdout,
            "webex_broadworks_enterprises{target=\"sp1\"} 25.0"
        ),
        "{}",
        out.stdout
    );
    // The exporter's own families after one good collection of three pages.
    insta::assert_snapshot!(
        families_for_snapshot(&out.stdout, &["tenant_exporter_", "process_"]),
        @r#"
    # HELP tenant_exporter_collector_success Whether the last collection of this collector and target succeeded (1) or failed (0).
    # TYPE tenant_exporter_collector_success gauge
    tenant_exporter_collector_success{collector="webex_broadworks",target="sp1"} 1
    # HELP tenant_exporter_collector_stale 1 when this target's samples were dropped after stale_after without a successful collection.
    # TYPE tenant_exporter_collector_stale gauge
    tenant_exporter_collector_stale{collector="webex_broadworks",target="sp1"} 0
    # HELP tenant_exporter_collector_last_success_timestamp_seconds Unix time of the last successful collection of this collector and target.
    # TYPE tenant_exporter_collector_last_success_timestamp_seconds gauge
    tenant_exporter_collector_last_success_timestamp_seconds{collector="webex_broadworks",target="sp1"} <unix time>
    # HELP tenant_exporter_collector_duration_seconds Duration of the last collection of this collector and target.
    # TYPE tenant_exporter_collector_duration_seconds gauge
    tenant_exporter_collector_duration_seconds{collector="webex_broadworks",target="sp1"} <seconds>
    # HELP tenant_exporter_collector_interval_seconds How often this collector polls this target.
    # TYPE tenant_exporter_collector_interval_seconds gauge
    tenant_exporter_collector_interval_seconds{collector="webex_broadworks",target="sp1"} 1.0
    # HELP tenant_exporter_collections_total Collections attempted for this collector and target.
    # TYPE tenant_exporter_collections_total counter
    tenant_exporter_collections_total{collector="webex_broadworks",target="sp1"} 1
    # HELP tenant_exporter_collection_failures_total Collections of this collector and target that failed.
    # TYPE tenant_exporter_collection_failures_total counter
    tenant_exporter_collection_failures_total{collector="webex_broadworks",target="sp1"} 0
    # HELP tenant_exporter_upstream_requests_total Upstream HTTP requests by response status code ("error" when no response arrived).
    # TYPE tenant_exporter_upstream_requests_total counter
    tenant_exporter_upstream_requests_total{collector="webex_broadworks",target="sp1",code="200"} 3
    # HELP tenant_exporter_upstream_request_duration_seconds Duration of upstream HTTP requests, each attempt counted separately.
    # TYPE tenant_exporter_upstream_request_duration_seconds histogram
    tenant_exporter_upstream_request_duration_seconds_bucket{le="+Inf",collector="webex_broadworks",target="sp1"} 3
    tenant_exporter_upstream_request_duration_seconds_count{collector="webex_broadworks",target="sp1"} 3
    tenant_exporter_upstream_request_duration_seconds_sum{collector="webex_broadworks",target="sp1"} <seconds>
    # HELP tenant_exporter_upstream_retries_total Upstream HTTP requests retried, by reason.
    # TYPE tenant_exporter_upstream_retries_total counter
    tenant_exporter_upstream_retries_total{collector="webex_broadworks",target="sp1",reason="locked"} 0
    tenant_exporter_upstream_retries_total{collector="webex_broadworks",target="sp1",reason="network"} 0
    tenant_exporter_upstream_retries_total{collector="webex_broadworks",target="sp1",reason="rate_limited"} 0
    tenant_exporter_upstream_retries_total{collector="webex_broadworks",target="sp1",reason="server_error"} 0
    tenant_exporter_upstream_retries_total{collector="webex_broadworks",target="sp1",reason="timeout"} 0
    tenant_exporter_upstream_retries_total{collector="webex_broadworks",target="sp1",reason="unavailable"} 0
    # HELP tenant_exporter_collector_panics_total Collections of this collector and target that panicked (each also counts as a failed collection).
    # TYPE tenant_exporter_collector_panics_total counter
    tenant_exporter_collector_panics_total{collector="webex_broadworks",target="sp1"} 0
    # HELP tenant_exporter_http_connections_rejected_total HTTP connections closed at once because --web.max-connections were open.
    # TYPE tenant_exporter_http_connections_rejected_total counter
    tenant_exporter_http_connections_rejected_total 0
    # HELP tenant_exporter_build_info Version and git revision of tenant-exporter, value 1.
    # TYPE tenant_exporter_build_info gauge
    tenant_exporter_build_info{version="<version>",revision="<revision>"} 1
    # HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
    # TYPE process_cpu_seconds_total counter
    process_cpu_seconds_total <varies>
    # HELP process_resident_memory_bytes Resident memory size in bytes.
    # TYPE process_resident_memory_bytes gauge
    process_resident_memory_bytes <varies>
    # HELP process_virtual_memory_bytes Virtual memory size in bytes.
    # TYPE process_virtual_memory_bytes gauge
    process_virtual_memory_bytes <varies>
    # HELP process_open_fds Number of open file descriptors.
    # TYPE process_open_fds gauge
    process_open_fds <varies>
    # HELP process_max_fds Maximum number of open file descriptors.
    # TYPE process_max_fds gauge
    process_max_fds <varies>
    # HELP process_start_time_seconds Start time of the process since unix epoch in seconds.
    # TYPE process_start_time_seconds gauge
    process_start_time_seconds <unix time>
    "#
    );
    // --once does not listen.
    assert!(!out.stderr.contains("msg=listening"), "{}", out.stderr);
    assert_eq!(sim.requests(KIND).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_fails_naming_the_target_and_the_status() {
    let sim = simulator().await;
    sim.set_fault(KIND, Fault::Status(401), None);
    let dir = TempDir::new("once-401");
    let path = dir.write("config.yml", &config_for(&sim, "sp1"));
    let file = format!("--config.file={}", path.display());
    let out = run(&["--once", &file], DEADLINE).await;
    assert!(!out.status.success(), "{out:?}");
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with("webex_broadworks/sp1: "))
        .unwrap_or_else(|| panic!("no line for the target in:\n{}", out.stderr));
    assert!(line.contains("HTTP 401"), "{line}");
    // 401 is not retried.
    assert_eq!(sim.requests(KIND).len(), 1);
    validate_prometheus_text(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{}", out.stdout));
    assert!(
        has_line(&out.stdout, &format!("{SUCCESS_SP1} 0")),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_texts_do_not_end_in_two_periods() {
    let sim = simulator().await;
    let dir = TempDir::new("help");
    let path = dir.write("config.yml", &config_for(&sim, "sp1"));
    let file = format!("--config.file={}", path.display());
    let out = run(&["--once", &file], DEADLINE).await;
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    let doubled: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("# HELP ") && l.ends_with(".."))
        .collect();
    assert!(doubled.is_empty(), "{doubled:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_token_never_leaks() {
    let token = "it-s3cr3t-T0KEN-7f3a9c";
    let sim = Simulator::start(Options {
        webex_token: token.to_string(),
        ..Options::default()
    })
    .await
    .expect("start simulator");
    // A 429 first, so the debug log of a retry is covered too.
    sim.set_fault(
        KIND,
        Fault::RateLimited {
            retry_after: Some(1),
        },
        Some(1),
    );
    let dir = TempDir::new("secrets");
    let exp = Exporter::with_config(&dir, &config_for(&sim, "sp1"), &["--log.level=debug"]).await;

    let body = wait_good_collection(&exp).await;
    assert!(!body.contains(token));
    assert!(!exp.get("/").await.text().contains(token));
    let log = exp.wait_log("msg=\"collection succeeded\"").await;
    assert!(log.contains("msg=\"retrying upstream request\""), "{log}");
    assert!(!log.contains(token), "{log}");

    // Upstream answers 401 from now on.
    sim.set_fault(KIND, Fault::Unauthorized, None);
    let body = exp.wait_line(&format!("{SUCCESS_SP1} 0")).await;
    assert!(!body.contains(token), "{body}");
    let om = exp
        .get_with(
            "/metrics",
            &[("Accept", "application/openmetrics-text;version=1.0.0")],
        )
        .await
        .text();
    assert!(!om.contains(token), "{om}");
    let landing = exp
        .wait_get("/", "the 401 on the landing page", |r| {
            r.text().contains("HTTP 401")
        })
        .await
        .text();
    assert!(!landing.contains(token), "{landing}");
    let log = exp.wait_log("msg=\"collection failed\"").await;
    assert!(log.contains("level=debug"), "{log}");
    assert!(log.contains("HTTP 401"), "{log}");
    assert!(!log.contains(token), "{log}");

    // --once with debug logging, failing on the 401.
    let path = dir.write("once.yml", &config_for(&sim, "sp1"));
    let file = format!("--config.file={}", path.display());
    let out = run(&["--once", "--log.level=debug", &file], DEADLINE).await;
    assert!(!out.status.success(), "{out:?}");
    assert!(out.stderr.contains("HTTP 401"), "{}", out.stderr);
    assert!(!out.stderr.contains(token), "{}", out.stderr);
    assert!(!out.stdout.contains(token), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_mode_serves_simulated_estate_and_exits_cleanly_on_sigterm() {
    let mut exp = Exporter::start(&["--demo", "--web.listen-address=127.0.0.1:0"]).await;
    let is_failed = |l: &str| {
        l.starts_with("webex_broadworks_directory_sync_status{target=\"demo\",")
            && l.ends_with(",status=\"FAILED\"} 1.0")
    };
    let is_6003 = |l: &str| {
        l.starts_with("webex_broadworks_directory_sync_error_info{target=\"demo\",")
            && l.contains(",error_code=\"6003\",")
            && l.ends_with("} 1.0")
    };
    let body = exp
        .wait_metrics("the demo's enterprises", |b| {
            has_line(b, "webex_broadworks_enterprises{target=\"demo\"} 25.0")
        })
        .await;
    assert!(body.lines().any(is_failed), "{body}");
    assert!(body.lines().any(is_6003), "{body}");
    assert!(
        body.contains(r#"sp_enterprise_id="Reseller1+\"Zürich\" Ost\\Süd""#),
        "{body}"
    );
    validate_prometheus_text(&body).unwrap_or_else(|e| panic!("{e}\n{body}"));
    assert!(exp.log().contains("msg=\"demo simulator started\""));

    exp.signal("TERM");
    let status = exp.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "{}", exp.log());
    assert!(exp.log().contains("msg=\"shutting down\""), "{}", exp.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_text_format_validator_rejects_what_prometheus_rejects() {
    let ok = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"q\\\"\\\\\\n\"} 1\n\
              # TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 0.5\nh_count 1\n";
    validate_prometheus_text(ok).unwrap();
    for bad in [
        "# TYPE a gauge\na 1\n# EOF\n",
        "a 1\n",
        "# TYPE a gauge\na{x=\"1} 1\n",
        "# TYPE a gauge\na{x=\"1\"} one\n",
        "# TYPE a gauge\na 1\na 2\n",
        "# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na 2\n",
        "# TYPE a gauge\na{x=\"\\t\"} 1\n",
        "# TYPE a gauge\na 1",
    ] {
        assert!(validate_prometheus_text(bad).is_err(), "{bad:?}");
    }
}

/// One target of each kind against `sim`: Webex `sp1` with the OAuth integration (its
/// refresh token in `dir/refresh-token`), VOSS `vs1` and Commvault `cs1`. `cs1_extra` is
/// appended to cs1's settings, so a test can change that target alone.
fn three_vendor_config(sim: &Simulator, interval: &str, cs1_extra: &str) -> String {
    let o = &sim.options().oauth;
    let v = &sim.options().voss;
    let c = &sim.options().commvault;
    format!(
        "global: {{interval: {interval}, timeout: 5s, stale_after: 2h}}\n\
         webex:\n\
         \x20 - name: sp1\n\
         \x20   base_url: {webex}\n\
         \x20   oauth: {{client_id: {client_id}, client_secret: {client_secret}, refresh_token_file: refresh-token}}\n\
         \x20   broadworks_enterprises: {{page_size: 10}}\n\
         voss:\n\
         \x20 - {{name: vs1, base_url: '{voss}', username: {vu}, password: {vp}, hierarchy: {vh}}}\n\
         commvault:\n\
         \x20 - name: cs1\n\
         \x20   base_url: {cv}\n\
         \x20   username: {cu}\n\
         \x20   password: {cp}\n\
         {cs1_extra}",
        webex = sim.webex_base_url(),
        client_id = o.client_id,
        client_secret = o.client_secret,
        voss = sim.voss_base_url(),
        vu = v.username,
        vp = v.password,
        vh = v.hierarchy,
        cv = sim.commvault_base_url(),
        cu = c.username,
        cp = c.password,
    )
}

const COLLECTORS: [(&str, &str); 3] = [
    ("webex_broadworks", "sp1"),
    ("voss_spark_customers", "vs1"),
    ("commvault_organizations", "cs1"),
];

fn success_line(collector: &str, target: &str) -> String {
    format!("tenant_exporter_collector_success{{collector=\"{collector}\",target=\"{target}\"}} 1")
}

/// The upstream requests that a restarted job or session would repeat.
fn session_counts(sim: &Simulator) -> [usize; 5] {
    [
        sim.requests(RequestKind::AccessToken).len(),
        sim.requests(RequestKind::CommvaultLogin).len(),
        sim.requests(RequestKind::CommvaultLogout).len(),
        sim.requests(RequestKind::VossSparkCustomers).len(),
        sim.requests(RequestKind::BroadworksEnterprises).len(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_unchanged_reloads_restart_nothing_and_a_changed_target_restarts_alone() {
    let sim = simulator().await;
    let dir = TempDir::new("reload-storm");
    dir.write("refresh-token", &sim.options().oauth.refresh_token);
    // An hour's interval: every request after the first collections comes from a restart.
    let config = three_vendor_config(&sim, "1h", "");
    let mut exp = Exporter::with_config(&dir, &config, &[]).await;
    exp.wait_metrics("a first collection of every target", |b| {
        COLLECTORS
            .iter()
            .all(|(c, t)| has_line(b, &success_line(c, t)))
    })
    .await;
    let before = session_counts(&sim);
    assert_eq!(before[..3], [1, 1, 0], "token refresh, login, logout");

    // 10 reloads one after the other, 10 by SIGHUP and 10 at once over HTTP.
    for _ in 0..10 {
        let r = exp.post("/-/reload").await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    for _ in 0..10 {
        exp.signal("HUP");
    }
    let concurrent = futures_util::future::join_all((0..10).map(|_| exp.post("/-/reload"))).await;
    for r in &concurrent {
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // The SIGHUPs are answered to nobody; wait until the last of them is applied too.
    wait_until("every reload applied", || {
        exp.log()
            .lines()
            .filter(|l| l.contains("msg=\"configuration reloaded\""))
            .filter_map(|l| {
                l.split(' ')
                    .find_map(|kv| kv.strip_prefix("requests="))
                    .and_then(|n| n.parse::<usize>().ok())
            })
            .sum::<usize>()
            >= 21
    })
    .await;
    let log = exp.log();
    let applies = log
        .lines()
        .filter(|l| l.contains("msg=\"configuration reloaded\""))
        .collect::<Vec<_>>();
    eprintln!(
        "30 reload requests (10 sequential, 10 SIGHUP, 10 concurrent): {} applies",
        applies.len()
    );
    assert!(
        applies
            .iter()
            .all(|l| l.contains(" started=0 stopped=0 kept=3")),
        "{applies:#?}"
    );
    // Every request was answered; signals may coalesce in the kernel, so count at least 21.
    assert_eq!(
        session_counts(&sim),
        before,
        "token refreshes, logins, logouts, VOSS and BroadWorks pages after 30 unchanged reloads"
    );

    // cs1 changes: it alone restarts, logging out of its old session.
    dir.write(
        "config.yml",
        &three_vendor_config(&sim, "1h", "    concurrency: 2\n"),
    );
    let r = exp.post("/-/reload").await;
    assert_eq!(r.status, 200, "{}", r.text());
    wait_until("cs1's new login and old session's logout", || {
        let now = session_counts(&sim);
        now[1] == before[1] + 1 && now[2] == before[2] + 1
    })
    .await;
    let after = session_counts(&sim);
    assert_eq!(
        [after[0], after[3], after[4]],
        [before[0], before[3], before[4]],
        "the Webex and VOSS targets were not restarted"
    );
    exp.wait_log("started=1 stopped=1 kept=2").await;

    // At shutdown, the session cs1 opened after the reload logs out too.
    exp.signal("TERM");
    assert_eq!(exp.wait_exit(Duration::from_secs(10)).await.code(), Some(0));
    assert_eq!(session_counts(&sim)[2], before[2] + 2, "logouts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_or_half_written_config_is_refused_on_reload() {
    let sim = simulator().await;
    let dir = TempDir::new("reload-empty");
    let exp = exporter_for(&dir, &sim).await;
    wait_good_collection(&exp).await;

    for (what, text) in [
        ("empty", String::new()),
        (
            "half-written",
            "global: {interval: 1s}\nwebex:\n".to_string(),
        ),
    ] {
        dir.write("config.yml", &text);
        let r = exp.post("/-/reload").await;
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        assert!(r.text().contains("has no targets"), "{what}: {}", r.text());
        assert!(
            r.text().contains("the old one keeps running"),
            "{what}: {}",
            r.text()
        );
    }
    let body = exp.metrics().await;
    assert!(has_line(&body, &format!("{SUCCESS_SP1} 1")), "{body}");

    // At start, an empty config is allowed, with a warning.
    let dir = TempDir::new("start-empty");
    let exp = Exporter::with_config(&dir, "", &[]).await;
    exp.wait_log("the configuration has no targets").await;
    assert_eq!(exp.get("/-/ready").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_start_at_zero_for_every_target() {
    let sim = simulator().await;
    let dir = TempDir::new("zero-counters");
    dir.write("refresh-token", &sim.options().oauth.refresh_token);
    let path = dir.write("config.yml", &three_vendor_config(&sim, "1h", ""));
    let file = format!("--config.file={}", path.display());
    let out = run(&["--once", &file], DEADLINE).await;
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    // Every counter of every target is there from the first collection, at 0 where nothing
    // happened; a target without a refreshable credential (vs1) gets no credential series.
    let families = [
        "tenant_exporter_collection_failures_total",
        "tenant_exporter_collector_panics_total",
        "tenant_exporter_upstream_retries_total",
        "tenant_exporter_credential_",
    ];
    insta::assert_snapshot!(families_for_snapshot(&out.stdout, &families), @r#"
    # HELP tenant_exporter_collection_failures_total Collections of this collector and target that failed.
    # TYPE tenant_exporter_collection_failures_total counter
    tenant_exporter_collection_failures_total{collector="commvault_organizations",target="cs1"} 0
    tenant_exporter_collection_failures_total{collector="voss_spark_customers",target="vs1"} 0
    tenant_exporter_collection_failures_total{collector="webex_broadworks",target="sp1"} 0
    # HELP tenant_exporter_upstream_retries_total Upstream HTTP requests retried, by reason.
    # TYPE tenant_exporter_upstream_retries_total counter
    tenant_exporter_upstream_retries_total{collector="commvault_organizations",target="cs1",reason="locked"} 0
    tenant_exporter_upstream_retries_total{collector="commvault_organizations",target="cs1",reason="network"} 0
    tenant_exporter_upstream_retries_total{collector="commvault_organizations",target="cs1",reason="rate_limited"} 0
    tenant_exporter_upstream_retries_total{collector="commvault_organizations",target="cs1",reason="server_error"} 0
    tenant_exporter_upstream_retries_total{collector="commvault_organizations",target="cs1",reason="timeout"} 0
    tenant_exporter_upstream_retries_total{collector="commvault_organizations",target="cs1",reason="unavailable"} 0
    tenant_exporter_upstream_retries_total{collector="voss_spark_customers",target="vs1",reason="locked"} 0
    tenant_exporter_upstream_retries_total{collector="voss_spark_customers",target="vs1",reason="network"} 0
    tenant_exporter_upstream_retries_total{collector="voss_spark_customers",target="vs1",reason="rate_limited"} 0
    tenant_exporter_upstream_retries_total{collector="voss_spark_customers",target="vs1",reason="server_error"} 0
    tenant_exporter_upstream_retries_total{collector="voss_spark_customers",target="vs1",reason="timeout"} 0
    tenant_exporter_upstream_retries_total{collector="voss_spark_customers",target="vs1",reason="unavailable"} 0
    tenant_exporter_upstream_retries_total{collector="webex_broadworks",target="sp1",reason="locked"} 0
    tenant_exporter_upstream_retries_total{collector="webex_broadworks",target="sp1",reason="network"} 0
    tenant_exporter_upstream_retries_total{collector="webex_broadworks",target="sp1",reason="rate_limited"} 0
    tenant_exporter_upstream_retries_total{collector="webex_broadworks",target="sp1",reason="server_error"} 0
    tenant_exporter_upstream_retries_total{collector="webex_broadworks",target="sp1",reason="timeout"} 0
    tenant_exporter_upstream_retries_total{collector="webex_broadworks",target="sp1",reason="unavailable"} 0
    # HELP tenant_exporter_credential_expiry_timestamp_seconds Unix time at which the exporter's own credential for this target expires.
    # TYPE tenant_exporter_credential_expiry_timestamp_seconds gauge
    tenant_exporter_credential_expiry_timestamp_seconds{target="sp1",credential="access_token"} <unix time>
    tenant_exporter_credential_expiry_timestamp_seconds{target="sp1",credential="refresh_token"} <unix time>
    # HELP tenant_exporter_credential_refreshes_total Successful refreshes or logins of the exporter's own credential for this target.
    # TYPE tenant_exporter_credential_refreshes_total counter
    tenant_exporter_credential_refreshes_total{target="cs1",credential="session_token"} 1
    tenant_exporter_credential_refreshes_total{target="sp1",credential="access_token"} 1
    tenant_exporter_credential_refreshes_total{target="sp1",credential="refresh_token"} 1
    # HELP tenant_exporter_credential_refresh_failures_total Failed refreshes or logins of the exporter's own credential for this target.
    # TYPE tenant_exporter_credential_refresh_failures_total counter
    tenant_exporter_credential_refresh_failures_total{target="cs1",credential="session_token"} 0
    tenant_exporter_credential_refresh_failures_total{target="sp1",credential="access_token"} 0
    tenant_exporter_credential_refresh_failures_total{target="sp1",credential="refresh_token"} 0
    # HELP tenant_exporter_credential_locked 1 while the upstream reports the account of the exporter's credential for this target locked.
    # TYPE tenant_exporter_credential_locked gauge
    tenant_exporter_credential_locked{target="cs1",credential="session_token"} 0
    # HELP tenant_exporter_collector_panics_total Collections of this collector and target that panicked (each also counts as a failed collection).
    # TYPE tenant_exporter_collector_panics_total counter
    tenant_exporter_collector_panics_total{collector="commvault_organizations",target="cs1"} 0
    tenant_exporter_collector_panics_total{collector="voss_spark_customers",target="vs1"} 0
    tenant_exporter_collector_panics_total{collector="webex_broadworks",target="sp1"} 0
    "#);
}

/// The families of `text` (Prometheus text format) whose names start with one of `prefixes`,
/// ready for a snapshot: HELP and TYPE lines as they are, each family's samples sorted (the
/// exporter writes them in hash map order), and what differs from run to run replaced by
/// what it stands for: timestamps, durations, the process' own figures, the histogram's
/// buckets short of `+Inf` (how fast the simulator answered), the build's version and
/// revision.
fn families_for_snapshot(text: &str, prefixes: &[&str]) -> String {
    fn flush(out: &mut String, samples: &mut Vec<String>) {
        samples.sort();
        for s in samples.drain(..) {
            out.push_str(&s);
            out.push('\n');
        }
    }
    let mut out = String::new();
    let mut samples = Vec::new();
    let (mut family, mut keep) = (String::new(), false);
    for line in text.lines() {
        let meta = line
            .strip_prefix("# HELP ")
            .or_else(|| line.strip_prefix("# TYPE "));
        if let Some(rest) = meta {
            let name = rest.split(' ').next().unwrap_or_default();
            if name != family {
                flush(&mut out, &mut samples);
                family = name.to_string();
                keep = prefixes.iter().any(|p| name.starts_with(p));
            }
            if keep {
                out.push_str(line);
                out.push('\n');
            }
        } else if keep {
            samples.extend(redacted_sample(line));
        }
    }
    flush(&mut out, &mut samples);
    out
}

/// `line` with a value that varies per run replaced by a placeholder, `None` when the whole
/// sample varies (a histogram bucket other than `+Inf`).
fn redacted_sample(line: &str) -> Option<String> {
    let (series, value) = line.rsplit_once(' ')?;
    let name = series.split('{').next().unwrap_or(series);
    if name.ends_with("_bucket") && !series.contains("le=\"+Inf\"") {
        return None;
    }
    let value = if name.ends_with("_timestamp_seconds") || name == "process_start_time_seconds" {
        "<unix time>"
    } else if name.ends_with("_duration_seconds") || name.ends_with("_duration_seconds_sum") {
        "<seconds>"
    } else if name.starts_with("process_") {
        "<varies>"
    } else {
        value
    };
    let mut series = series.replace(
        &format!("version=\"{}\"", env!("CARGO_PKG_VERSION")),
        "version=\"<version>\"",
    );
    if let Some(start) = series.find("revision=\"").map(|i| i + "revision=\"".len()) {
        let end = start + series[start..].find('"').unwrap_or(0);
        series.replace_range(start..end, "<revision>");
    }
    Some(format!("{series} {value}"))
}

#[test]
fn the_snapshot_normaliser_sorts_samples_and_redacts_what_varies() {
    let text = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"2\"} 5\na_total{x=\"1\"} 7\n\
                # HELP b_timestamp_seconds B.\n# TYPE b_timestamp_seconds gauge\nb_timestamp_seconds 1796147080.29\n\
                # HELP c_duration_seconds C.\n# TYPE c_duration_seconds histogram\n\
                c_duration_seconds_sum 0.02\nc_duration_seconds_count 2\n\
                c_duration_seconds_bucket{le=\"0.01\"} 1\nc_duration_seconds_bucket{le=\"+Inf\"} 2\n\
                # HELP d_info D.\n# TYPE d_info gauge\nd_info{version=\"VERSION\",revision=\"0123abc\"} 1\n\
                # HELP process_open_fds E.\n# TYPE process_open_fds gauge\nprocess_open_fds 13.0\n\
                # HELP other F.\n# TYPE other gauge\nother 1\n"
        .replace("VERSION", env!("CARGO_PKG_VERSION"));
    insta::assert_snapshot!(
        families_for_snapshot(&text, &["a_", "b_", "c_", "d_", "process_"]),
        @r#"
    # HELP a_total A.
    # TYPE a_total counter
    a_total{x="1"} 7
    a_total{x="2"} 5
    # HELP b_timestamp_seconds B.
    # TYPE b_timestamp_seconds gauge
    b_timestamp_seconds <unix time>
    # HELP c_duration_seconds C.
    # TYPE c_duration_seconds histogram
    c_duration_seconds_bucket{le="+Inf"} 2
    c_duration_seconds_count 2
    c_duration_seconds_sum <seconds>
    # HELP d_info D.
    # TYPE d_info gauge
    d_info{version="<version>",revision="<revision>"} 1
    # HELP process_open_fds E.
    # TYPE process_open_fds gauge
    process_open_fds <varies>
    "#
    );
}

/// Opens `n` connections that each send part of a request head and then nothing.
async fn partial_header_sockets(
    addr: std::net::SocketAddr,
    n: usize,
) -> Vec<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    let mut socks = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connect a slow socket");
        let _ = s
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await;
        socks.push(s);
    }
    socks
}

/// Whether the server closed `s` (EOF or reset) within `limit`.
async fn closed_within(s: &mut tokio::net::TcpStream, limit: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 256];
    matches!(
        tokio::time::timeout(limit, s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_are_answered_during_a_flood_of_slow_header_sockets() {
    let sim = simulator().await;
    let dir = TempDir::new("slowloris");
    let exp = Exporter::with_config(
        &dir,
        &config_for(&sim, "sp1"),
        &["--web.read-header-timeout=3s"],
    )
    .await;
    let rss = |body: &str| value(body, "process_resident_memory_bytes").unwrap_or(0.0) / 1048576.0;
    let rss_before = rss(&wait_good_collection(&exp).await);

    let flood_started = std::time::Instant::now();
    let mut socks = partial_header_sockets(exp.addr, 1100).await;
    let opened = flood_started.elapsed();
    let mut latencies = Vec::new();
    let mut rss_during: f64 = 0.0;
    for _ in 0..10 {
        let started = std::time::Instant::now();
        let r = raw_get(exp.addr, "/metrics", &[]).await;
        latencies.push(started.elapsed());
        assert_eq!(r.status, 200);
        assert!(has_line(&r.text(), &format!("{SUCCESS_SP1} 1")));
        rss_during = rss_during.max(rss(&r.text()));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    latencies.sort();
    eprintln!(
        "1100 partial-header sockets opened in {opened:?}; /metrics latency during the flood: \
         min {:?}, median {:?}, max {:?}; RSS {rss_before:.1} MiB before, {rss_during:.1} MiB during",
        latencies[0], latencies[5], latencies[9]
    );
    // Generous: the point is an answer, not a speed.
    assert!(latencies[9] < Duration::from_secs(5), "{latencies:?}");

    // The header timeout (3 s) closes them.
    for s in socks.iter_mut().take(20) {
        assert!(
            closed_within(s, Duration::from_secs(10)).await,
            "a slow socket stays open"
        );
    }
    assert!(
        !exp.log().contains("connection limit reached"),
        "{}",
        exp.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_closed_counted_and_logged() {
    let sim = simulator().await;
    let dir = TempDir::new("conn-cap");
    let exp = Exporter::with_config(
        &dir,
        &config_for(&sim, "sp1"),
        &["--web.max-connections=20", "--web.read-header-timeout=5s"],
    )
    .await;
    assert!(exp.log().contains("max_connections=20"), "{}", exp.log());
    // The test client's idle keep-alive connection is one of the 20.
    wait_good_collection(&exp).await;
    let mut socks = partial_header_sockets(exp.addr, 40).await;
    let closed_at_once = futures_util::future::join_all(
        socks
            .iter_mut()
            // Well within the 5 s header timeout, which closes the accepted ones.
            .map(|s| closed_within(s, Duration::from_secs(2))),
    )
    .await
    .into_iter()
    .filter(|closed| *closed)
    .count();
    assert!(
        (20..=21).contains(&closed_at_once),
        "{closed_at_once} closed at once"
    );
    exp.wait_log("HTTP connection limit reached").await;
    // Closing the slow ones frees their slots.
    drop(socks);
    let body = exp
        .wait_metrics("the rejections counted", |b| {
            value(b, "tenant_exporter_http_connections_rejected_total").is_some_and(|v| v >= 20.0)
        })
        .await;
    assert!(
        has_line(
            &body,
            "# TYPE tenant_exporter_http_connections_rejected_total counter"
        ),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_probes_the_refresh_token_directory_by_creating_a_file() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = TempDir::new("check-token-dir");
    let tokens = dir.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    std::fs::write(tokens.join("refresh-token"), "rt\n").unwrap();
    // Read-only by its mode bits. Whether a file can be created still depends on who asks
    // (root can): the check must agree with what actually happens.
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o555)).unwrap();
    let creatable = std::fs::File::create(tokens.join("probe")).is_ok();
    let _ = std::fs::remove_file(tokens.join("probe"));
    let path = dir.write(
        "config.yml",
        "webex:\n\
         \x20 - name: sp1\n\
         \x20   base_url: http://127.0.0.1:1/v1\n\
         \x20   oauth: {client_id: c, client_secret: s, refresh_token_file: tokens/refresh-token}\n\
         \x20   broadworks_enterprises: {}\n",
    );
    let file = format!("--config.file={}", path.display());
    let out = run(&["--config.check", &file], DEADLINE).await;
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o755)).unwrap();
    if creatable {
        assert_eq!(out.status.code(), Some(0), "{out:?}");
    } else {
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(out.stderr.contains("not writable"), "{out:?}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(&tokens)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["refresh-token"], "the probe file is removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exp = Exporter::start(&[
        "--demo",
        "--web.listen-address=127.0.0.1:0",
        "--web.idle-timeout=1s",
    ])
    .await;
    let mut s = tokio::net::TcpStream::connect(exp.addr).await.unwrap();
    s.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).contains("Healthy\n") {
        let n = tokio::time::timeout(DEADLINE, s.read(&mut buf))
            .await
            .expect("a response")
            .unwrap();
        assert!(n > 0, "closed before answering");
        got.extend_from_slice(&buf[..n]);
    }
    let started = std::time::Instant::now();
    assert!(
        closed_within(&mut s, Duration::from_secs(10)).await,
        "kept open"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_identity_scrape_streams_every_chunk_in_order() {
    let exp = Exporter::start(&[
        "--demo",
        "--demo.enterprises=1000",
        "--web.listen-address=127.0.0.1:0",
    ])
    .await;
    exp.wait_metrics("the demo's 1000 enterprises", |b| {
        has_line(b, "webex_broadworks_enterprises{target=\"demo\"} 1000.0")
    })
    .await;
    // Clients that stop reading a large response hold no thread: the others are served.
    let mut stalled = Vec::new();
    for _ in 0..20 {
        use tokio::io::AsyncWriteExt;
        let mut s = tokio::net::TcpStream::connect(exp.addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        stalled.push(s);
    }
    let plain = raw_get(exp.addr, "/metrics", &[]).await;
    let text = plain.text();
    assert!(
        text.len() > 1 << 20,
        "{} bytes: more than four chunks",
        text.len()
    );
    assert_eq!(
        plain.header("content-length"),
        Some(text.len().to_string().as_str())
    );
    validate_prometheus_text(&text).unwrap_or_else(|e| panic!("{e}"));
    let gz = exp
        .get_with("/metrics", &[("Accept-Encoding", "gzip")])
        .await;
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    let unzipped = gunzip_single_member(&gz.body);
    let series = |t: &str| {
        t.lines()
            .filter(|l| l.starts_with("webex_broadworks_"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(series(&text), series(&unzipped));
    drop(stalled);
}
