//! End-to-end tests: the real binary against the in-process simulator over real sockets.
//!
//! Each test starts its own simulator (on this test's runtime) and its own exporter process,
//! so tests are independent and can run in parallel. Every wait is bounded (see
//! `common::DEADLINE`).

mod common;

use std::time::Duration;

use common::*;
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
        "global: {interval: 1s, timeout: 5s, stale_after: 4s}\n\
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
    let text = "global: {interval: 1s, timeout: 5s, stale_after: 4s}\n\
                webex:\n\
                \x20 - name: sp1\n\
                \x20   base_url: http://127.0.0.1:1/v1\n\
                \x20   access_token: x\n\
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
        lines[0].contains("unknown field `bogus_key`"),
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
    assert!(
        has_line(&out.stdout, &format!("{SUCCESS_SP1} 1")),
        "{}",
        out.stdout
    );
    assert!(
        has_line(
            &out.stdout,
            "# TYPE tenant_exporter_collections_total counter"
        ),
        "{}",
        out.stdout
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
