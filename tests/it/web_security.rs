//! `--web.config.file`: TLS, client certificates and basic auth over real sockets, with
//! certificates made for the test.

use std::time::{Duration, Instant};

use crate::common::*;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

/// A CA and certificates it issued, as PEM.
struct Pki {
    ca_pem: String,
    ca: CertifiedIssuer<'static, KeyPair>,
}

struct Leaf {
    cert: String,
    key: String,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(vec![]).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Pki {
            ca_pem: ca.pem(),
            ca,
        }
    }

    fn leaf(&self, names: &[&str], client: bool, expired: bool) -> Leaf {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.extended_key_usages = vec![if client {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        }];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// `$2b$04$...` for "s3cret": a low cost keeps the test fast.
fn hash(password: &str) -> String {
    bcrypt::hash(password, 4).unwrap()
}

fn client(ca: &str, identity: Option<&Leaf>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(ca.as_bytes()).unwrap());
    if let Some(id) = identity {
        b = b.identity(
            reqwest::Identity::from_pem(format!("{}{}", id.cert, id.key).as_bytes()).unwrap(),
        );
    }
    b.build().unwrap()
}

async fn start(dir: &TempDir, web: &str, extra: &[&str]) -> Exporter {
    let web_path = dir.write("web.yml", web);
    let demo_web = format!("--web.config.file={}", web_path.display());
    let mut args = vec![
        "--demo",
        "--web.listen-address=127.0.0.1:0",
        demo_web.as_str(),
    ];
    args.extend_from_slice(extra);
    Exporter::start(&args).await
}

fn https(exp: &Exporter, path: &str) -> String {
    format!("https://localhost:{}{path}", exp.addr.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_over_tls() {
    let pki = Pki::new("test CA");
    let server = pki.leaf(&["localhost", "127.0.0.1"], false, false);
    let dir = TempDir::new("web-basic");
    dir.write("server.crt", &server.cert);
    dir.write("server.key", &server.key);
    let web = format!(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS12\n\
         basic_auth_users:\n  prometheus: '{}'\n\
         http_server_config:\n  headers:\n    X-Frame-Options: deny\n",
        hash("s3cret")
    );
    let exp = start(&dir, &web, &[]).await;
    let c = client(&pki.ca_pem, None);

    // Right password: the metrics, with the configured header.
    let ok = c
        .get(https(&exp, "/metrics"))
        .basic_auth("prometheus", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["x-frame-options"], "deny");
    // Again, served from the cache of successful checks.
    let again = c
        .get(https(&exp, "/"))
        .basic_auth("prometheus", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);

    // Wrong password, unknown user, no credentials, garbage: 401 with a challenge.
    for (user, password) in [
        ("prometheus", Some("wrong")),
        ("mallory", Some("s3cret")),
        ("", None),
    ] {
        let mut req = c.get(https(&exp, "/metrics"));
        if !user.is_empty() {
            req = req.basic_auth(user, password);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{user}");
        assert_eq!(
            r.headers()["www-authenticate"],
            "Basic realm=\"tenant-exporter\""
        );
        assert_eq!(r.headers()["x-frame-options"], "deny");
    }
    let r = c
        .post(https(&exp, "/-/reload"))
        .header("Authorization", "Basic !!!not-base64")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Probes stay reachable without credentials.
    assert_eq!(
        c.get(https(&exp, "/-/healthy"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // An unknown user is refused like a wrong password (that both cost one bcrypt check is
    // the unit test web::tests::unknown_users_run_bcrypt_at_the_users_cost).
    for user in ["mallory", "prometheus"] {
        let r = c
            .get(https(&exp, "/metrics"))
            .basic_auth(user, Some("nope"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{user}");
    }

    // Plain HTTP to the HTTPS port gets no HTTP answer.
    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    assert!(plain
        .get(format!("http://127.0.0.1:{}/-/healthy", exp.addr.port()))
        .send()
        .await
        .is_err());
    // And the password never reaches the log.
    assert!(!exp.log().contains("s3cret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_can_require_auth_too() {
    let dir = TempDir::new("web-probes");
    let web = format!("basic_auth_users:\n  prometheus: '{}'\n", hash("s3cret"));
    let exp = start(&dir, &web, &["--web.auth-exempt-probes=false"]).await;
    assert_eq!(exp.get("/-/healthy").await.status, 401);
    assert_eq!(exp.get("/metrics").await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_verified() {
    let pki = Pki::new("test CA");
    let rogue = Pki::new("rogue CA");
    let server = pki.leaf(&["localhost"], false, false);
    let good_client = pki.leaf(&["scraper"], true, false);
    let bad_client = rogue.leaf(&["scraper"], true, false);
    let dir = TempDir::new("web-mtls");
    dir.write("server.crt", &server.cert);
    dir.write("server.key", &server.key);
    dir.write("ca.crt", &pki.ca_pem);
    let web = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
               client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n";
    let exp = start(&dir, web, &[]).await;

    let ok = client(&pki.ca_pem, Some(&good_client))
        .get(https(&exp, "/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(client(&pki.ca_pem, Some(&bad_client))
        .get(https(&exp, "/metrics"))
        .send()
        .await
        .is_err());
    assert!(client(&pki.ca_pem, None)
        .get(https(&exp, "/metrics"))
        .send()
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_replaced_without_a_restart() {
    let pki = Pki::new("test CA");
    let expired = pki.leaf(&["localhost"], false, true);
    let fresh = pki.leaf(&["localhost"], false, false);
    let dir = TempDir::new("web-rotate");
    dir.write("server.crt", &expired.cert);
    dir.write("server.key", &expired.key);
    let exp = start(
        &dir,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
        &[],
    )
    .await;
    let c = client(&pki.ca_pem, None);
    let err = c.get(https(&exp, "/-/healthy")).send().await.unwrap_err();
    assert!(
        format!("{err:?}").to_lowercase().contains("expired"),
        "{err:?}"
    );

    // A broken edit is logged and the running certificate stays.
    dir.write("server.key", "not a key\n");
    exp.wait_log("web config reload failed").await;

    dir.write("server.crt", &fresh.cert);
    dir.write("server.key", &fresh.key);
    exp.wait_log("web config reloaded").await;
    let deadline = Instant::now() + DEADLINE;
    loop {
        match c.get(https(&exp, "/-/healthy")).send().await {
            Ok(r) if r.status() == 200 => break,
            other => assert!(Instant::now() < deadline, "still failing: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_web_config_is_a_startup_error() {
    let dir = TempDir::new("web-broken");
    let web = dir.write("web.yml", "tls_server_config:\n  cert_file: missing.crt\n");
    let arg = format!("--web.config.file={}", web.display());
    let out = run(
        &["--demo", "--web.listen-address=127.0.0.1:0", &arg],
        DEADLINE,
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        out.stderr.contains("key_file is required"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("missing.crt"), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_config_that_protects_nothing_is_a_startup_error() {
    let dir = TempDir::new("web-empty");
    // Empty, or cut off before its users: either would have served without auth.
    for text in ["", "basic_auth_users:\n"] {
        let web = dir.write("web.yml", text);
        let arg = format!("--web.config.file={}", web.display());
        let out = run(
            &["--demo", "--web.listen-address=127.0.0.1:0", &arg],
            DEADLINE,
        )
        .await;
        assert_eq!(out.status.code(), Some(1), "{text:?}: {out:?}");
        assert!(
            out.stderr
                .contains("neither tls_server_config nor basic_auth_users"),
            "{text:?}: {}",
            out.stderr
        );
        assert!(!out.stderr.contains("msg=listening"), "{}", out.stderr);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_without_users_warns_that_anyone_may_scrape() {
    let dir = TempDir::new("web-tls-open");
    let pki = Pki::new("tls-open");
    let server = pki.leaf(&["localhost", "127.0.0.1"], false, false);
    dir.write("server.crt", &server.cert);
    dir.write("server.key", &server.key);
    let exp = start(
        &dir,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
        &[],
    )
    .await;
    exp.wait_log("anyone who can connect may scrape and reload")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_tls_handshake_is_cut_and_counts_against_the_cap() {
    use tokio::io::AsyncReadExt;
    let dir = TempDir::new("web-tls-slow");
    let pki = Pki::new("tls-slow");
    let server = pki.leaf(&["localhost", "127.0.0.1"], false, false);
    dir.write("server.crt", &server.cert);
    dir.write("server.key", &server.key);
    let web = format!(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  prometheus: '{}'\n",
        hash("s3cret")
    );
    let exp = start(
        &dir,
        &web,
        &["--web.read-header-timeout=1s", "--web.max-connections=1"],
    )
    .await;
    // Holds the only slot without ever starting the handshake.
    let mut stalled = tokio::net::TcpStream::connect(exp.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut second = tokio::net::TcpStream::connect(exp.addr).await.unwrap();
    let mut buf = [0u8; 64];
    let refused = tokio::time::timeout(Duration::from_secs(1), second.read(&mut buf)).await;
    assert!(matches!(refused, Ok(Ok(0)) | Ok(Err(_))), "{refused:?}");
    let cut = tokio::time::timeout(Duration::from_secs(5), stalled.read(&mut buf)).await;
    assert!(matches!(cut, Ok(Ok(0)) | Ok(Err(_))), "{cut:?}");
    // The slot is free again: an authenticated scrape over TLS works.
    let r = client(&pki.ca_pem, None)
        .get(https(&exp, "/metrics"))
        .basic_auth("prometheus", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("tenant_exporter_http_connections_rejected_total 1"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_that_would_turn_auth_off_is_refused_until_a_restart() {
    let pki = Pki::new("auth-off CA");
    let server = pki.leaf(&["localhost", "127.0.0.1"], false, false);
    let dir = TempDir::new("web-auth-off");
    dir.write("server.crt", &server.cert);
    dir.write("server.key", &server.key);
    let tls = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
    let web = format!(
        "{tls}basic_auth_users:\n  prometheus: '{}'\n",
        hash("s3cret")
    );
    let exp = start(&dir, &web, &[]).await;
    let c = client(&pki.ca_pem, None);
    let status = |r: reqwest::Response| r.status().as_u16();

    // The users vanish from the file (a bad merge, a half-written edit).
    dir.write("web.yml", tls);
    exp.wait_log("web config would turn authentication off")
        .await;
    let anonymous = c.get(https(&exp, "/metrics")).send().await.unwrap();
    assert_eq!(status(anonymous), 401);
    let authed = c
        .get(https(&exp, "/metrics"))
        .basic_auth("prometheus", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(status(authed), 200);
}
