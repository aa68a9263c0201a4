//! Hostile upstreams against the real binary, with its peak memory measured: a 20 MB page of
//! unreadable items, 20 MB Commvault details fetched concurrently, a VOSS list that repeats
//! one page under a huge total, and Webex next links that never end. Each must end in a
//! failed (or bounded) collection with the exporter's peak RSS (VmHWM) well inside the
//! shipped Kubernetes memory limit, and `/metrics` must keep answering meanwhile.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use bytes::Bytes;

use crate::common::*;

/// The shipped Kubernetes limit is 256 MiB; keep a margin for the allocator and the runtime.
const RSS_BUDGET_KIB: u64 = 200 * 1024;
const BOMB_BYTES: usize = 20 << 20;

struct Bodies {
    /// `{"items":[0,0,...]}`, 20 MB.
    items_bomb: Bytes,
    /// One VOSS page of 500 customers claiming a total of a trillion.
    voss_page: Bytes,
    /// Commvault organization details padded to 20 MB.
    cv_details: Bytes,
}

fn bodies() -> Bodies {
    let mut bomb = Vec::with_capacity(BOMB_BYTES + 16);
    bomb.extend_from_slice(b"{\"items\":[");
    while bomb.len() < BOMB_BYTES {
        bomb.extend_from_slice(b"0,");
    }
    bomb.extend_from_slice(b"0]}");

    let customers: Vec<String> = (0..500)
        .map(|i| {
            format!(
                r#"{{"pkid":"p{i}","data":{{"name":"customer {i}","hierarchy_path":"sys.sp.c{i}","account_number":"{i}","token":"t","access_token_expires":"2030-01-01T00:00:00Z"}}}}"#
            )
        })
        .collect();
    let voss = format!(
        r#"{{"pagination":{{"skip":0,"limit":500,"total":1000000000000}},"resources":[{}]}}"#,
        customers.join(",")
    );

    let mut cv = br#"{"organizationInfo":{"organization":{"shortName":{"id":1,"domainName":"acme"},"description":"d","enabled":true},"organizationProperties":{"userCount":3}},"junk":""#.to_vec();
    cv.resize(BOMB_BYTES, b'x');
    cv.extend_from_slice(b"\"}");
    Bodies {
        items_bomb: Bytes::from(bomb),
        voss_page: Bytes::from(voss),
        cv_details: Bytes::from(cv),
    }
}

fn json(body: impl Into<Body>) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap()
}

async fn handle(State(b): State<Arc<Bodies>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    match path.as_str() {
        "/bomb/v1/broadworks/enterprises" => json(b.items_bomb.clone()),
        "/endless/v1/broadworks/enterprises" => {
            let cursor: u64 = query
                .split('&')
                .find_map(|p| p.strip_prefix("cursor="))
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            let items: Vec<String> = (0..1000)
                .map(|i| format!(r#"{{"spEnterpriseId":"e{cursor}-{i}","orgId":"o"}}"#))
                .collect();
            let mut r = json(format!(r#"{{"items":[{}]}}"#, items.join(",")));
            let next = format!(
                "</endless/v1/broadworks/enterprises?max=1000&cursor={}>; rel=\"next\"",
                cursor + 1
            );
            r.headers_mut().insert(header::LINK, next.parse().unwrap());
            r
        }
        "/endless/v1/partner/organizations" => {
            let cursor: u64 = query
                .split('&')
                .find_map(|p| p.strip_prefix("cursor="))
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            let items: Vec<String> = (0..1000)
                .map(|i| format!(r#"{{"orgId":"org-{cursor}-{i}","role":"r"}}"#))
                .collect();
            let mut r = json(format!(r#"{{"items":[{}]}}"#, items.join(",")));
            let next = format!(
                "</endless/v1/partner/organizations?managedBy=p&cursor={}>; rel=\"next\"",
                cursor + 1
            );
            r.headers_mut().insert(header::LINK, next.parse().unwrap());
            r
        }
        "/voss/api/relation/SparkCustomer/" => json(b.voss_page.clone()),
        "/cv/api/Login" => json(r#"{"token":"QSDK hostile","userName":"u"}"#),
        "/cv/api/Logout" | "/cv/api/RenewLoginToken" => json("{}"),
        "/cv/api/Organization" => {
            let providers: Vec<String> = (1..=8)
                .map(|i| format!(r#"{{"shortName":{{"id":{i},"domainName":"org{i}"}}}}"#))
                .collect();
            json(format!(r#"{{"providers":[{}]}}"#, providers.join(",")))
        }
        p if p.starts_with("/cv/api/Organization/") => json(b.cv_details.clone()),
        _ => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Body::from("{}"))
            .unwrap(),
    }
}

async fn hostile_server() -> SocketAddr {
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(Arc::new(bodies()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Peak resident set size of `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

const GLOBAL: &str = "{interval: 2s, timeout: 15s, stale_after: 1h}";

fn webex_config(addr: SocketAddr, prefix: &str, extra: &str) -> String {
    format!(
        "global: {GLOBAL}\n\
         webex:\n  - name: {prefix}\n    base_url: http://{addr}/{prefix}/v1\n    \
         access_token: hostile-token\n    broadworks_enterprises: {{page_size: 1000}}\n{extra}"
    )
}

fn collections(body: &str, collector: &str, target: &str) -> f64 {
    count(
        body,
        &format!(
            "tenant_exporter_collections_total{{collector=\"{collector}\",target=\"{target}\"}}"
        ),
    )
}

/// Scrapes `/metrics` until `rounds` collections of `collector/target` have finished, each
/// scrape within a few seconds however busy the collection is. Returns the slowest scrape.
async fn scrape_through(e: &Exporter, collector: &str, target: &str, rounds: f64) -> Duration {
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    loop {
        let t = Instant::now();
        let body = tokio::time::timeout(Duration::from_secs(5), e.metrics())
            .await
            .unwrap_or_else(|_| panic!("/metrics did not answer within 5s; stderr:\n{}", e.log()));
        slowest = slowest.max(t.elapsed());
        if collections(&body, collector, target) >= rounds {
            return slowest;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{collector}/{target}: fewer than {rounds} collections in 90s\n{body}\n{}",
            e.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn check_rss(e: &Exporter, scenario: &str, slowest: Duration) -> u64 {
    check_rss_under(e, scenario, slowest, RSS_BUDGET_KIB)
}

fn check_rss_under(e: &Exporter, scenario: &str, slowest: Duration, budget_kib: u64) -> u64 {
    let peak = peak_rss_kib(e.pid());
    eprintln!(
        "{scenario}: peak RSS {} MiB, slowest /metrics {slowest:?}",
        peak / 1024
    );
    assert!(
        peak < budget_kib,
        "{scenario}: peak RSS {} MiB is over {} MiB\n{}",
        peak / 1024,
        budget_kib / 1024,
        e.log()
    );
    peak
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20mb_page_of_unreadable_items_fails_in_bounded_memory() {
    let addr = hostile_server().await;
    let dir = TempDir::new("hostile-bomb");
    let e = Exporter::with_config(&dir, &webex_config(addr, "bomb", ""), &[]).await;
    let slowest = scrape_through(&e, "webex_broadworks", "bomb", 3.0).await;
    let body = e.metrics().await;
    assert_eq!(
        count(
            &body,
            "tenant_exporter_collection_failures_total{collector=\"webex_broadworks\",target=\"bomb\"}"
        ),
        collections(&body, "webex_broadworks", "bomb")
    );
    e.wait_log("limits.max_objects").await;
    check_rss(&e, "20 MB items bomb", slowest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_webex_next_links_stop_at_the_object_limit() {
    let addr = hostile_server().await;
    let dir = TempDir::new("hostile-endless");
    // Both Webex collectors at once, each following next links that never end.
    let admins = "    managed_orgs: {admins: [{name: a, person_id: p}]}\n";
    let e = Exporter::with_config(&dir, &webex_config(addr, "endless", admins), &[]).await;
    let slowest = scrape_through(&e, "webex_broadworks", "endless", 1.0).await;
    let slowest = slowest.max(scrape_through(&e, "webex_managed_orgs", "endless", 1.0).await);
    e.wait_log("more than 100000 objects in one collection (limits.max_objects)")
        .await;
    e.wait_log("more than 100000 organizations for one admin (limits.max_objects)")
        .await;
    check_rss(
        &e,
        "Webex endless next links (BroadWorks and managed orgs)",
        slowest,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voss_page_repeated_under_a_huge_total_stops_at_the_object_limit() {
    let addr = hostile_server().await;
    let dir = TempDir::new("hostile-voss");
    let config = format!(
        "global: {GLOBAL}\n\
         voss:\n  - name: voss\n    base_url: http://{addr}/voss\n    username: u\n    \
         password: p\n    hierarchy: sys.sp\n"
    );
    let e = Exporter::with_config(&dir, &config, &[]).await;
    let slowest = scrape_through(&e, "voss_spark_customers", "voss", 1.0).await;
    e.wait_log("limits.max_objects").await;
    check_rss(&e, "VOSS endless repeated page", slowest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_20mb_commvault_details_share_the_body_budget() {
    let addr = hostile_server().await;
    let dir = TempDir::new("hostile-commvault");
    // Eight 20 MB bodies pass through a 64 MiB budget a few at a time: a long interval keeps
    // a slow (debug, shared CPU) run from timing the collection out.
    let config = format!(
        "global: {{interval: 60s, timeout: 60s, stale_after: 1h}}\n\
         commvault:\n  - name: cv\n    base_url: http://{addr}/cv/api\n    username: u\n    \
         password: p\n    concurrency: 8\n"
    );
    let e = Exporter::with_config(&dir, &config, &[]).await;
    let slowest = scrape_through(&e, "commvault_organizations", "cv", 1.0).await;
    let users =
        "commvault_organization_users{target=\"cv\",organization_id=\"3\",organization=\"acme\"}";
    // The collection is counted at once; its samples are published a moment later.
    let body = e
        .wait_metrics("the organizations published", |m| value(m, users).is_some())
        .await;
    // The details are large but valid: every organization is read.
    assert_eq!(value(&body, users), Some(3.0), "{body}");
    // 160 MB of bodies at once without the 64 MiB in-flight budget (measured: 186 MiB).
    check_rss_under(
        &e,
        "8 concurrent 20 MB Commvault details",
        slowest,
        128 * 1024,
    );
}
