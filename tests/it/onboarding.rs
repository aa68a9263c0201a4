//! From the demo to real credentials: the checks a new user meets first.

use std::process::Command;

/// `rust-version` in Cargo.toml is what the locked dependency tree really needs: the highest
/// `rust-version` among the lockfile's packages (those built on this platform).
#[test]
fn rust_version_is_what_the_locked_dependencies_need() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let host = Command::new(&rustc).arg("-vV").output().expect("rustc -vV");
    let host = String::from_utf8_lossy(&host.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .expect("rustc -vV names the host");
    let out = Command::new(&cargo)
        .args(["metadata", "--locked", "--offline", "--format-version", "1"])
        .args(["--filter-platform", &host])
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let parse = |v: &str| -> (u32, u32) {
        let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap());
        (parts.next().unwrap(), parts.next().unwrap_or(0))
    };
    let mut ours = None;
    let mut needed = ((0, 0), String::new());
    for p in meta["packages"].as_array().unwrap() {
        let Some(v) = p["rust_version"].as_str() else {
            continue;
        };
        if p["name"] == "tenant-exporter" {
            ours = Some(parse(v));
        } else if parse(v) > needed.0 {
            needed = (parse(v), format!("{} {}", p["name"], p["version"]));
        }
    }
    let ours = ours.expect("Cargo.toml sets rust-version");
    assert_eq!(
        ours, needed.0,
        "Cargo.toml rust-version {ours:?}, but {} needs {:?}",
        needed.1, needed.0
    );
}

use std::sync::Arc;

use crate::common::{run, TempDir, DEADLINE};
use tenant_exporter::config::Config;
use tenant_exporter::simulator::{Fault, Options, RequestKind, Simulator};

/// An HTTPS server whose self-signed certificate nobody trusts.
async fn untrusted_tls_server() -> std::net::SocketAddr {
    let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = rustls::pki_types::CertificateDer::from(key.cert.der().to_vec());
    let private =
        rustls::pki_types::PrivateKeyDer::try_from(key.signing_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], private)
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let config = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(tls));
    let server = axum_server::from_tcp_rustls(listener, config).unwrap();
    tokio::spawn(server.serve(axum::Router::new().into_make_service()));
    addr
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Good and broken targets of each kind, against two simulators (the second answers every
/// BroadWorks request with 403, as Webex does for a token without the scope).
async fn probe_config() -> (Simulator, Simulator, String) {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let no_scope = Simulator::start(Options::default()).await.unwrap();
    no_scope.set_fault(RequestKind::BroadworksEnterprises, Fault::Status(403), None);
    let tls = untrusted_tls_server().await;
    let o = sim.options();
    let webex = sim.webex_base_url();
    let voss = sim.voss_base_url();
    let cv = sim.commvault_base_url();
    let text = format!(
        "global: {{interval: 1m, timeout: 5s}}\n\
         webex:\n\
         \x20 - {{name: wx-good, base_url: '{webex}', access_token: {token}, broadworks_enterprises: {{}}, managed_orgs: {{admins: [{{name: alice, person_id: P1}}]}}}}\n\
         \x20 - {{name: wx-expired, base_url: '{webex}', access_token: not-a-token, broadworks_enterprises: {{}}}}\n\
         \x20 - {{name: wx-no-scope, base_url: '{no_scope}', access_token: {token}, broadworks_enterprises: {{}}}}\n\
         \x20 - {{name: wx-full-admin, base_url: '{webex}', access_token: {token}, managed_orgs: {{admins: [{{name: boss, person_id: FULL-ADMIN-1}}]}}}}\n\
         voss:\n\
         \x20 - {{name: voss-good, base_url: '{voss}', username: {vu}, password: {vp}, hierarchy: {vh}}}\n\
         \x20 - {{name: voss-bad-password, base_url: '{voss}', username: {vu}, password: wrong, hierarchy: {vh}}}\n\
         \x20 - {{name: voss-down, base_url: 'http://127.0.0.1:{closed}', username: {vu}, password: {vp}, hierarchy: {vh}}}\n\
         \x20 - {{name: voss-self-signed, base_url: 'https://{tls}', username: {vu}, password: {vp}, hierarchy: {vh}}}\n\
         commvault:\n\
         \x20 - {{name: cv-good, base_url: '{cv}', username: {cu}, password: {cp}}}\n\
         \x20 - {{name: cv-bad-password, base_url: '{cv}', username: {cu}, password: wrong}}\n",
        token = sim.webex_token(),
        no_scope = no_scope.webex_base_url(),
        vu = o.voss.username,
        vp = o.voss.password,
        vh = o.voss.hierarchy,
        cu = o.commvault.username,
        cp = o.commvault.password,
        closed = closed_port(),
    );
    (sim, no_scope, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_says_what_is_wrong_with_each_target() {
    let (sim, _no_scope, text) = probe_config().await;
    let config = Config::parse(&text, "t.yml", std::path::Path::new("."), &|_| None).unwrap();
    let outcomes = tenant_exporter::probe::run(&config).await;
    let lines: Vec<String> = outcomes.iter().map(|o| o.to_string()).collect();
    // The closing note's figure: one broken target of each kind.
    println!("{}", lines.join("\n"));
    let expect: &[(&str, &str, &[&str])] = &[
        ("webex_broadworks", "wx-good", &["OK", "25 objects"]),
        ("webex_managed_orgs", "wx-good", &["OK"]),
        (
            "webex_broadworks",
            "wx-expired",
            &["FAIL", "access token was refused", "HTTP 401"],
        ),
        (
            "webex_broadworks",
            "wx-no-scope",
            &[
                "FAIL",
                "lacks scope spark-admin:broadworks_enterprises_read",
                "HTTP 403",
            ],
        ),
        (
            "webex_managed_orgs",
            "wx-full-admin",
            &["FAIL", "Partner Full Admin"],
        ),
        ("voss_spark_customers", "voss-good", &["OK", "12 objects"]),
        (
            "voss_spark_customers",
            "voss-bad-password",
            &["FAIL", "wrong username or password"],
        ),
        (
            "voss_spark_customers",
            "voss-down",
            &["FAIL", "connection refused"],
        ),
        (
            "voss_spark_customers",
            "voss-self-signed",
            &["FAIL", "certificate is not trusted", "ca_file"],
        ),
        ("commvault_organizations", "cv-good", &["OK", "6 objects"]),
        (
            "commvault_organizations",
            "cv-bad-password",
            &["FAIL", "wrong username or password"],
        ),
    ];
    assert_eq!(outcomes.len(), expect.len(), "{lines:#?}");
    for (collector, target, fragments) in expect {
        let line = lines
            .iter()
            .find(|l| l.contains(&format!(" {collector} {target}:")))
            .unwrap_or_else(|| panic!("no line for {collector} {target} in {lines:#?}"));
        for f in *fragments {
            assert!(line.contains(f), "{line:?} lacks {f:?}");
        }
    }
    let o = sim.options();
    for secret in [
        sim.webex_token(),
        o.voss.password.as_str(),
        o.commvault.password.as_str(),
    ] {
        assert!(!lines.iter().any(|l| l.contains(secret)), "{lines:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_exits_zero_only_when_every_line_is_ok() {
    let (sim, _no_scope, text) = probe_config().await;
    let dir = TempDir::new("probe");
    let bad = dir.write("bad.yml", &text);
    let out = run(
        &["--probe", &format!("--config.file={}", bad.display())],
        DEADLINE,
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(out.stdout.lines().count(), 11, "{}", out.stdout);
    let o = sim.options();
    for secret in [sim.webex_token(), &o.voss.password, &o.commvault.password] {
        assert!(!out.stdout.contains(secret) && !out.stderr.contains(secret));
    }
    let good: String = text
        .lines()
        .filter(|l| !l.starts_with("  - ") || l.contains("-good,"))
        .map(|l| format!("{l}\n"))
        .collect();
    let good = dir.write("good.yml", &good);
    let out = run(
        &["--probe", &format!("--config.file={}", good.display())],
        DEADLINE,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout.lines().count(), 4, "{}", out.stdout);
    assert!(
        out.stdout.lines().all(|l| l.starts_with("OK ")),
        "{}",
        out.stdout
    );
}

/// `oauth-login` end to end: the test plays the browser (opens the printed URL, follows the
/// redirect to the command's loopback listener), then the exporter collects with the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_login_writes_a_working_refresh_token() {
    use std::io::BufRead;
    use std::os::unix::fs::PermissionsExt;

    let sim = Simulator::start(Options::default()).await.unwrap();
    let o = &sim.options().oauth;
    let dir = TempDir::new("oauth-login");
    let config = dir.write(
        "c.yml",
        &format!(
            "webex:\n  - name: partner\n    base_url: {}\n    oauth:\n      client_id: {}\n      \
             client_secret: {}\n      refresh_token_file: state/refresh-token\n    \
             broadworks_enterprises: {{}}\n    managed_orgs: {{admins: [{{name: alice, person_id: P1}}]}}\n",
            sim.webex_base_url(),
            o.client_id,
            o.client_secret
        ),
    );
    std::fs::create_dir(dir.path().join("state")).unwrap();
    // Before the login the config is incomplete, and says what completes it.
    let err = Config::load(&config).unwrap_err().to_string();
    assert!(
        err.contains("`tenant-exporter oauth-login` creates it"),
        "{err}"
    );
    let port = closed_port();
    let redirect = format!("http://127.0.0.1:{port}/callback");
    let mut child = crate::common::command(&[
        "oauth-login",
        &format!("--config.file={}", config.display()),
        &format!("--redirect-uri={redirect}"),
        "--wait=20s",
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut printed = Vec::new();
    let authorize = loop {
        let line = rx
            .recv_timeout(DEADLINE)
            .expect("the command prints the URL");
        printed.push(line.clone());
        if line.starts_with("http://") {
            break url::Url::parse(&line).unwrap();
        }
    };
    let q: std::collections::HashMap<String, String> =
        authorize.query_pairs().into_owned().collect();
    assert_eq!(authorize.path(), "/v1/authorize");
    assert_eq!(
        q["scope"],
        "spark-admin:broadworks_enterprises_read spark-admin:organizations_read"
    );
    assert!(authorize
        .as_str()
        .contains("scope=spark-admin%3Abroadworks_enterprises_read%20"));
    assert_eq!(q["redirect_uri"], redirect);
    assert_eq!(q["client_id"], o.client_id);

    let browser = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // A redirect that this run did not start is turned away, and the command keeps waiting.
    let forged = browser
        .get(format!("{redirect}?code=stolen&state=not-ours"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);
    let consent = browser.get(authorize.as_str()).send().await.unwrap();
    assert_eq!(consent.status(), 302);
    let back = consent.headers()["location"].to_str().unwrap().to_string();
    assert!(back.starts_with(&redirect), "{back}");
    let page = browser.get(&back).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("authorized"));

    let deadline = std::time::Instant::now() + DEADLINE;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "oauth-login did not exit"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    reader.join().unwrap();
    printed.extend(rx.try_iter());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{printed:#?}\n{stderr}");

    let file = dir.path().join("state/refresh-token");
    let token = sim.current_refresh_token();
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        format!("{token}\n")
    );
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let all = printed.join("\n") + &stderr;
    assert!(
        !all.contains(&token) && !all.contains(&o.client_secret),
        "{all}"
    );

    // The exporter now collects with it.
    let config = Config::load(&config).unwrap();
    let outcomes = tenant_exporter::probe::run(&config).await;
    assert!(
        outcomes.iter().all(|o| o.problem.is_none()) && outcomes.len() == 2,
        "{outcomes:#?}"
    );
}

/// A small proxy for the tests: HTTP CONNECT tunnels, absolute-form forwarding, and SOCKS5,
/// counting what went through it; or refusing everything with 403.
struct TestProxy {
    addr: std::net::SocketAddr,
    connects: Arc<std::sync::atomic::AtomicUsize>,
    forwards: Arc<std::sync::atomic::AtomicUsize>,
    socks: Arc<std::sync::atomic::AtomicUsize>,
}

impl TestProxy {
    async fn start(refuse: bool) -> TestProxy {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counters = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let (connects, forwards, socks) = counters.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let (connects, forwards, socks) =
                    (connects.clone(), forwards.clone(), socks.clone());
                tokio::spawn(async move {
                    let mut first = [0u8; 1];
                    if client.peek(&mut first).await.is_err() {
                        return;
                    }
                    if first[0] == 5 {
                        // SOCKS5, no authentication, CONNECT to an IPv4 address or a name.
                        let mut greeting = [0u8; 2];
                        client.read_exact(&mut greeting).await.unwrap();
                        let mut methods = vec![0u8; greeting[1] as usize];
                        client.read_exact(&mut methods).await.unwrap();
                        client.write_all(&[5, 0]).await.unwrap();
                        let mut req = [0u8; 4];
                        client.read_exact(&mut req).await.unwrap();
                        let host = match req[3] {
                            1 => {
                                let mut a = [0u8; 4];
                                client.read_exact(&mut a).await.unwrap();
                                std::net::Ipv4Addr::from(a).to_string()
                            }
                            3 => {
                                let mut n = [0u8; 1];
                                client.read_exact(&mut n).await.unwrap();
                                let mut name = vec![0u8; n[0] as usize];
                                client.read_exact(&mut name).await.unwrap();
                                String::from_utf8(name).unwrap()
                            }
                            _ => return,
                        };
                        let mut port = [0u8; 2];
                        client.read_exact(&mut port).await.unwrap();
                        let port = u16::from_be_bytes(port);
                        if refuse {
                            let _ = client.write_all(&[5, 2, 0, 1, 0, 0, 0, 0, 0, 0]).await;
                            return;
                        }
                        socks.fetch_add(1, Ordering::SeqCst);
                        let mut upstream = tokio::net::TcpStream::connect((host.as_str(), port))
                            .await
                            .unwrap();
                        client
                            .write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0])
                            .await
                            .unwrap();
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                        return;
                    }
                    // HTTP: read the request head.
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
                        if client.read_exact(&mut byte).await.is_err() {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    let text = String::from_utf8_lossy(&head).to_string();
                    let mut words = text.split_whitespace();
                    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                    if refuse {
                        let _ = client
                            .write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
                            .await;
                        return;
                    }
                    if method == "CONNECT" {
                        connects.fetch_add(1, Ordering::SeqCst);
                        let mut upstream = tokio::net::TcpStream::connect(target).await.unwrap();
                        client
                            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                            .await
                            .unwrap();
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    } else {
                        // Absolute-form request: the upstream (hyper) accepts it as it is.
                        forwards.fetch_add(1, Ordering::SeqCst);
                        let url = url::Url::parse(target).unwrap();
                        let mut upstream = tokio::net::TcpStream::connect((
                            url.host_str().unwrap(),
                            url.port_or_known_default().unwrap(),
                        ))
                        .await
                        .unwrap();
                        upstream.write_all(&head).await.unwrap();
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
        });
        let (connects, forwards, socks) = counters;
        TestProxy {
            addr,
            connects,
            forwards,
            socks,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_target_goes_through_its_own_proxy() {
    use std::sync::atomic::Ordering;
    let sim = Simulator::start(Options::default()).await.unwrap();
    let proxy = TestProxy::start(false).await;
    let refusing = TestProxy::start(true).await;
    let tls = untrusted_tls_server().await;
    let o = sim.options();
    let p = proxy.addr;
    let text = format!(
        "global: {{interval: 1m, timeout: 5s}}\n\
         webex:\n\
         \x20 - {{name: wx-socks, base_url: '{webex}', access_token: {token}, proxy_url: 'socks5://{p}', broadworks_enterprises: {{}}}}\n\
         voss:\n\
         \x20 - {{name: voss-http-proxy, base_url: '{voss}', username: {vu}, password: {vp}, hierarchy: {vh}, proxy_url: 'http://{p}'}}\n\
         \x20 - {{name: voss-tunnel, base_url: 'https://{tls}', username: {vu}, password: {vp}, hierarchy: {vh}, proxy_url: 'http://{p}'}}\n\
         commvault:\n\
         \x20 - {{name: cv-refused, base_url: 'https://{tls}/commandcenter/api', username: {cu}, password: {cp}, proxy_url: 'http://{refused}'}}\n\
         \x20 - {{name: cv-direct, base_url: '{cv}', username: {cu}, password: {cp}}}\n",
        webex = sim.webex_base_url(),
        token = sim.webex_token(),
        voss = sim.voss_base_url(),
        cv = sim.commvault_base_url(),
        vu = o.voss.username,
        vp = o.voss.password,
        vh = o.voss.hierarchy,
        cu = o.commvault.username,
        cp = o.commvault.password,
        refused = refusing.addr,
    );
    let config = Config::parse(&text, "t.yml", std::path::Path::new("."), &|_| None).unwrap();
    let outcomes = tenant_exporter::probe::run(&config).await;
    let line = |target: &str| {
        outcomes
            .iter()
            .find(|o| o.target == target)
            .map(|o| o.to_string())
            .unwrap()
    };
    assert!(line("wx-socks").starts_with("OK "), "{}", line("wx-socks"));
    assert!(
        line("voss-http-proxy").starts_with("OK "),
        "{}",
        line("voss-http-proxy")
    );
    assert!(
        line("voss-tunnel").contains("certificate is not trusted"),
        "{}",
        line("voss-tunnel")
    );
    assert!(
        line("cv-refused").contains("proxy refused"),
        "{}",
        line("cv-refused")
    );
    assert!(
        line("cv-direct").starts_with("OK "),
        "{}",
        line("cv-direct")
    );
    assert!(proxy.socks.load(Ordering::SeqCst) >= 1);
    assert!(proxy.forwards.load(Ordering::SeqCst) >= 1);
    assert_eq!(proxy.connects.load(Ordering::SeqCst), 1);
}

/// The example through the binary: a misspelt key, a bad duration and a missing
/// password file are three lines with file:line:col, and the check fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_reports_three_mistakes_in_one_run() {
    let dir = TempDir::new("check-three");
    let text = "global: {interval: 10m, timeout: 30s}\n\
                voss:\n\
                \x20 - name: v\n\
                \x20   base_url: https://voss.example.com\n\
                \x20   usernme: monitor\n\
                \x20   username: monitor\n\
                \x20   password_file: missing-password\n\
                \x20   hierarchy: sys.hcs\n\
                \x20   interval: 5 mintues\n";
    let path = dir.write("three.yml", text);
    let out = run(
        &[
            "--config.check",
            &format!("--config.file={}", path.display()),
        ],
        DEADLINE,
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(out.stdout, "");
    let at = |needle: &str| {
        let (line, col) = crate::common::position(text, needle);
        format!("{}:{line}:{col}: ", path.display())
    };
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stderr);
    assert!(
        lines[0].starts_with(&(at("usernme") + "unknown key `usernme`")),
        "{}",
        out.stderr
    );
    assert!(
        lines[1].starts_with(&(at("missing-password") + "password_file")),
        "{}",
        out.stderr
    );
    assert!(
        lines[2].starts_with(&(at("5 mintues") + "interval: invalid duration")),
        "{}",
        out.stderr
    );
}

/// A user who granted fewer scopes than the collectors need: the simulator answers 403 as
/// Webex does, and --probe names the missing scope.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_names_the_scope_the_user_did_not_grant() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let o = &sim.options().oauth;
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect = "http://127.0.0.1:1/callback";
    let mut authorize = url::Url::parse(&format!("{}/authorize", sim.webex_base_url())).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("client_id", &o.client_id)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", redirect)
        .append_pair("scope", "spark-admin:broadworks_enterprises_read")
        .append_pair("state", "s1");
    let consent = http.get(authorize.as_str()).send().await.unwrap();
    let back = url::Url::parse(consent.headers()["location"].to_str().unwrap()).unwrap();
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.to_string())
        .expect("a code");
    let tokens: serde_json::Value = http
        .post(format!("{}/access_token", sim.webex_base_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "authorization_code")
                .append_pair("client_id", &o.client_id)
                .append_pair("client_secret", &o.client_secret)
                .append_pair("code", &code)
                .append_pair("redirect_uri", redirect)
                .finish(),
        )
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap();
    let dir = TempDir::new("scope");
    dir.write("refresh", tokens["refresh_token"].as_str().unwrap());
    let text = format!(
        "webex:\n  - name: partner\n    base_url: {}\n    oauth: {{client_id: {}, client_secret: {}, refresh_token_file: refresh}}\n    \
         broadworks_enterprises: {{}}\n    managed_orgs: {{admins: [{{name: alice, person_id: P1}}]}}\n",
        sim.webex_base_url(),
        o.client_id,
        o.client_secret
    );
    let config = Config::parse(&text, "t.yml", dir.path(), &|_| None).unwrap();
    let outcomes = tenant_exporter::probe::run(&config).await;
    let lines: Vec<String> = outcomes.iter().map(|o| o.to_string()).collect();
    assert!(
        lines[0].starts_with("OK    webex_broadworks partner"),
        "{lines:#?}"
    );
    assert!(
        lines[1].starts_with("FAIL  webex_managed_orgs partner: ")
            && lines[1].contains("lacks scope spark-admin:organizations_read"),
        "{lines:#?}"
    );
}
