//! No credential, and no request body carrying one, leaves the origin of a target's
//! configured `base_url`: next links and redirects (302, 307) to another origin are refused,
//! for every source. A second listener stands for the other origin and fails the test if any
//! connection reaches it.

use crate::common::*;
use tenant_exporter::simulator::{Fault, OAuthOptions, Options, RequestKind, Simulator};

const REDIRECTS: [u16; 2] = [302, 307];

fn success(collector: &str, target: &str) -> String {
    format!("tenant_exporter_collector_success{{collector=\"{collector}\",target=\"{target}\"}}")
}

/// Starts the exporter on `config`, waits for a failed collection of `collector/target` whose
/// error on the landing page names `refusal` and the trap's origin, and checks that nothing
/// reached the trap and no secret shows.
async fn assert_refused(
    tag: &str,
    config: &str,
    collector: &str,
    target: &str,
    trap: &Trap,
    refusal: &str,
    secrets: &[&str],
) {
    let dir = TempDir::new(tag);
    let exp = Exporter::with_config(&dir, config, &["--log.level=debug"]).await;
    exp.wait_line(&format!("{} 0", success(collector, target)))
        .await;
    let expected = format!("{refusal} ({})", trap.origin());
    let landing = exp
        .wait_get("/", &expected, |r| r.text().contains(&expected))
        .await
        .text();
    // The error names the origin only, never the path or query of the link.
    assert!(!landing.contains("/trap-path"), "{landing}");
    trap.assert_untouched();
    assert_no_secrets(
        &[
            ("/", &landing),
            ("log", &exp.log()),
            ("/metrics", &exp.metrics().await),
        ],
        secrets,
    );
}

fn webex_static(sim: &Simulator) -> String {
    config_with(
        "{interval: 1s, timeout: 5s, stale_after: 30s}",
        "sp1",
        &sim.webex_base_url(),
        sim.webex_token(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webex_next_link_to_another_origin_is_refused() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let trap = Trap::start().await;
    sim.set_fault(
        RequestKind::BroadworksEnterprises,
        Fault::NextLinkOrigin(trap.origin()),
        None,
    );
    assert_refused(
        "next-link",
        &webex_static(&sim),
        "webex_broadworks",
        "sp1",
        &trap,
        "next link to another origin",
        &[sim.webex_token()],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webex_get_redirect_to_another_origin_is_refused() {
    for status in REDIRECTS {
        let sim = Simulator::start(Options::default()).await.unwrap();
        let trap = Trap::start().await;
        sim.set_fault(
            RequestKind::BroadworksEnterprises,
            Fault::Redirect {
                status,
                location: format!("{}/trap-path?cursor=1", trap.origin()),
            },
            None,
        );
        assert_refused(
            &format!("webex-get-{status}"),
            &webex_static(&sim),
            "webex_broadworks",
            "sp1",
            &trap,
            "redirect to another origin",
            &[sim.webex_token()],
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webex_token_refresh_redirect_to_another_origin_is_refused() {
    for status in REDIRECTS {
        let sim = Simulator::start(Options::default()).await.unwrap();
        let trap = Trap::start().await;
        sim.set_fault(
            RequestKind::AccessToken,
            Fault::Redirect {
                status,
                location: format!("{}/trap-path", trap.origin()),
            },
            None,
        );
        let o: &OAuthOptions = &sim.options().oauth;
        let dir = TempDir::new("webex-token-redirect");
        let token_file = dir.write("refresh-token", &o.refresh_token);
        let config = format!(
            "global: {{interval: 1s, timeout: 5s, stale_after: 30s}}\n\
             webex:\n\
             \x20 - name: sp1\n\
             \x20   base_url: {}\n\
             \x20   oauth: {{client_id: {}, client_secret: {}, refresh_token_file: {}}}\n\
             \x20   broadworks_enterprises: {{page_size: 10}}\n",
            sim.webex_base_url(),
            o.client_id,
            o.client_secret,
            token_file.display(),
        );
        assert_refused(
            &format!("webex-token-{status}"),
            &config,
            "webex_broadworks",
            "sp1",
            &trap,
            "redirect to another origin",
            &[o.client_secret.as_str(), o.refresh_token.as_str()],
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voss_redirect_to_another_origin_is_refused() {
    for status in REDIRECTS {
        let sim = Simulator::start(Options::default()).await.unwrap();
        let trap = Trap::start().await;
        sim.set_fault(
            RequestKind::VossSparkCustomers,
            Fault::Redirect {
                status,
                location: format!("{}/trap-path?skip=0", trap.origin()),
            },
            None,
        );
        let v = &sim.options().voss;
        let config = format!(
            "global: {{interval: 1s, timeout: 5s, stale_after: 30s}}\nvoss:\n  - name: voss1\n    base_url: {}\n    username: {}\n    password: {}\n    hierarchy: {}\n",
            sim.voss_base_url(),
            v.username,
            v.password,
            v.hierarchy
        );
        assert_refused(
            &format!("voss-{status}"),
            &config,
            "voss_spark_customers",
            "voss1",
            &trap,
            "redirect to another origin",
            &[v.password.as_str()],
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commvault_redirects_to_another_origin_are_refused() {
    for kind in [
        RequestKind::CommvaultLogin,
        RequestKind::CommvaultOrganizations,
    ] {
        for status in REDIRECTS {
            let sim = Simulator::start(Options::default()).await.unwrap();
            let trap = Trap::start().await;
            sim.set_fault(
                kind,
                Fault::Redirect {
                    status,
                    location: format!("{}/trap-path", trap.origin()),
                },
                None,
            );
            let c = &sim.options().commvault;
            let config = format!(
                "global: {{interval: 1s, timeout: 5s, stale_after: 30s}}\ncommvault:\n  - name: cs1\n    base_url: {}\n    username: {}\n    password: {}\n",
                sim.commvault_base_url(),
                c.username,
                c.password
            );
            use base64::Engine as _;
            let encoded = base64::engine::general_purpose::STANDARD.encode(&c.password);
            assert_refused(
                &format!("commvault-{kind:?}-{status}"),
                &config,
                "commvault_organizations",
                "cs1",
                &trap,
                "redirect to another origin",
                &[c.password.as_str(), encoded.as_str()],
            )
            .await;
        }
    }
}
