//! A bounded soak, run by `.ci/soak.sh` (ignored by plain `cargo test`): the real binary
//! polls the simulator's Webex, VOSS and Commvault APIs while random faults come and go,
//! 64 scrapers hit `/metrics` without pause and the config is reloaded every few seconds.
//! It passes with no panic, every scrape answered, no request to another origin (redirects
//! and next links to one are among the faults), and peak RSS under the budget.
//!
//! `SOAK_SECONDS` sets the length (default 60).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tenant_exporter::simulator::{self, Fault, RequestKind, Simulator};

use crate::common::*;

const SCRAPERS: usize = 64;
const RELOAD_EVERY: Duration = Duration::from_secs(3);
const RSS_BUDGET_KIB: u64 = 200 * 1024;

const KINDS: [RequestKind; 8] = [
    RequestKind::BroadworksEnterprises,
    RequestKind::PartnerOrganizations,
    RequestKind::VossSparkCustomers,
    RequestKind::CommvaultLogin,
    RequestKind::CommvaultRenew,
    RequestKind::CommvaultLogout,
    RequestKind::CommvaultOrganizations,
    RequestKind::CommvaultOrganization,
];

/// A fault for any request kind; the last two send the exporter to another origin (`trap`),
/// which must never see a request.
fn random_fault(trap: &str) -> Fault {
    match fastrand::u8(0..10) {
        0 => Fault::RateLimited {
            retry_after: Some(fastrand::u64(0..3)),
        },
        1 => Fault::Locked { retry_after: None },
        2 => Fault::Status([500, 502, 503, 404, 400][fastrand::usize(0..5)]),
        3 => Fault::Unauthorized,
        4 => Fault::Slow(Duration::from_millis(fastrand::u64(0..1500))),
        5 => Fault::Truncated,
        6 | 7 => Fault::Malformed,
        8 => Fault::Redirect {
            status: [302, 307, 308][fastrand::usize(0..3)],
            location: format!("{trap}/elsewhere"),
        },
        _ => Fault::NextLinkOrigin(trap.to_string()),
    }
}

fn config(sim: &Simulator, interval: &str) -> String {
    let o = sim.options();
    format!(
        "global: {{interval: {interval}, timeout: 3s, stale_after: 1h}}\n\
         webex:\n  - name: sp1\n    base_url: {webex}\n    access_token: {token}\n    \
         broadworks_enterprises: {{page_size: 7}}\n    \
         managed_orgs: {{admins: [{{name: alice, person_id: p1}}]}}\n\
         voss:\n  - name: voss1\n    base_url: {voss}\n    username: {vu}\n    password: {vp}\n    \
         hierarchy: {vh}\n    page_size: 5\n\
         commvault:\n  - name: cs1\n    base_url: {cv}\n    username: {cu}\n    password: {cp}\n",
        webex = sim.webex_base_url(),
        token = sim.webex_token(),
        voss = sim.voss_base_url(),
        vu = o.voss.username,
        vp = o.voss.password,
        vh = o.voss.hierarchy,
        cv = sim.commvault_base_url(),
        cu = o.commvault.username,
        cp = o.commvault.password,
    )
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .expect("VmHWM in /proc/<pid>/status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a soak of about a minute; run by .ci/soak.sh"]
async fn soak_with_random_faults_scrapers_and_reloads() {
    let seconds: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let sim = Arc::new(
        Simulator::start(simulator::Options {
            enterprises: 200,
            ..simulator::Options::default()
        })
        .await
        .expect("start the simulator"),
    );
    let dir = TempDir::new("soak");
    let e = Arc::new(Exporter::with_config(&dir, &config(&sim, "1s"), &[]).await);
    let until = Instant::now() + Duration::from_secs(seconds);

    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..SCRAPERS {
        let (e, ok, failed) = (e.clone(), ok.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let accept = if i % 2 == 0 {
                "text/plain; version=0.0.4"
            } else {
                "application/openmetrics-text; version=1.0.0"
            };
            while Instant::now() < until {
                let r = http
                    .get(e.url("/metrics"))
                    .header("Accept", accept)
                    .send()
                    .await;
                let answered = match r {
                    Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if answered {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }

    let trap = Trap::start().await;
    let faults = {
        let sim = sim.clone();
        let trap = trap.origin();
        tokio::spawn(async move {
            while Instant::now() < until {
                let kind = KINDS[fastrand::usize(..KINDS.len())];
                sim.set_fault(kind, random_fault(&trap), Some(fastrand::u32(1..4)));
                if fastrand::u8(0..10) == 0 {
                    sim.clear_faults();
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };

    let mut reloads = 0;
    let mut peak = 0;
    while Instant::now() < until {
        tokio::time::sleep(RELOAD_EVERY).await;
        // Alternate between two configs so each reload changes something.
        let interval = if reloads % 2 == 0 { "2s" } else { "1s" };
        dir.write("config.yml", &config(&sim, interval));
        if reloads % 3 == 0 {
            e.signal("HUP");
        } else {
            let r = e.post("/-/reload").await;
            assert_eq!(r.status, 200, "reload: {}", r.text());
        }
        reloads += 1;
        peak = peak.max(peak_rss_kib(e.pid()));
    }
    for t in tasks {
        t.await.unwrap();
    }
    faults.await.unwrap();

    let healthy = e.get("/-/healthy").await;
    assert_eq!(healthy.status, 200);
    let log = e.log();
    assert!(!log.contains("panicked"), "a panic was logged:\n{log}");
    let peak = peak.max(peak_rss_kib(e.pid()));
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!(
        "soak: {seconds}s, {reloads} reloads, {ok} scrapes answered, {failed} failed, peak RSS {} MiB",
        peak / 1024
    );
    assert_eq!(failed, 0, "scrapes failed");
    // Redirects and next links to another origin came and went: no request followed them.
    trap.assert_untouched();
    assert!(ok > 0);
    assert!(
        peak < RSS_BUDGET_KIB,
        "peak RSS {} MiB is over {} MiB",
        peak / 1024,
        RSS_BUDGET_KIB / 1024
    );
}
