//! `--web.config.file` in the exporter-toolkit format: TLS (with optional client
//! certificates), basic auth with bcrypt hashes, and extra response headers.
//!
//! The file and the files it names are watched; a good change applies without a restart
//! (certificate rotation), a broken one is logged and the last good configuration stays.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashSet};
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use axum::http::{header, HeaderName, HeaderValue};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use serde::Deserialize;

/// How often the web config and its files are checked for changes.
pub(crate) const WATCH_INTERVAL: Duration = Duration::from_secs(2);
/// Response headers operators may set, as in exporter-toolkit, with the names the
/// documentation uses.
const ALLOWED_HEADERS: [(&str, HeaderName); 5] = [
    (
        "Strict-Transport-Security",
        header::STRICT_TRANSPORT_SECURITY,
    ),
    ("X-Content-Type-Options", header::X_CONTENT_TYPE_OPTIONS),
    ("X-Frame-Options", header::X_FRAME_OPTIONS),
    ("X-XSS-Protection", header::X_XSS_PROTECTION),
    ("Content-Security-Policy", header::CONTENT_SECURITY_POLICY),
];
/// Successful credential checks remembered, so a scrape does not pay bcrypt every time.
const AUTH_CACHE_SIZE: usize = 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: Option<String>,
    key_file: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    min_version: Option<String>,
    max_version: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    headers: Option<BTreeMap<String, String>>,
    http2: Option<bool>,
}

/// Why a web config cannot be used: every problem, each naming its field.
#[derive(Debug, thiserror::Error)]
#[error("{}: {}", path.display(), problems.join("; "))]
pub struct WebConfigError {
    pub(crate) path: PathBuf,
    pub(crate) problems: Vec<String>,
}

/// A validated web configuration.
pub struct WebConfig {
    pub(crate) tls: Option<Arc<ServerConfig>>,
    /// Client certificates are required: the TLS layer authenticates every client.
    pub(crate) requires_client_cert: bool,
    pub(crate) auth: Auth,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    /// Every file it was built from, to watch for changes.
    files: Vec<PathBuf>,
}

impl WebConfig {
    /// Reads and validates `path`; every problem is reported, each naming its field.
    /// Blocking (file reads, bcrypt).
    ///
    /// A file that configures neither TLS nor users is an error: a web config exists to
    /// protect the endpoints, and one that silently protects nothing (empty, or
    /// half-written) must not look like it does.
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let fail = |problem: String| WebConfigError {
            path: path.to_path_buf(),
            problems: vec![problem],
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        let raw: RawWebConfig = if text.trim().is_empty() {
            RawWebConfig {
                tls_server_config: None,
                http_server_config: None,
                basic_auth_users: None,
            }
        } else {
            serde_saphyr::from_str(&text).map_err(|e| {
                let first = e.to_string();
                let first = first
                    .lines()
                    .next()
                    .unwrap_or("invalid YAML")
                    .trim_start_matches("error: ")
                    .to_string();
                fail(first)
            })?
        };
        if raw.tls_server_config.is_none()
            && raw.basic_auth_users.as_ref().is_none_or(|u| u.is_empty())
        {
            return Err(fail(
                "configures neither tls_server_config nor basic_auth_users, so it would protect \
                 nothing; add them, or drop --web.config.file to serve plain HTTP without auth"
                    .into(),
            ));
        }
        let requires_client_cert = raw
            .tls_server_config
            .as_ref()
            .is_some_and(|t| t.client_auth_type.as_deref() == Some("RequireAndVerifyClientCert"));
        let base = path.parent().unwrap_or(Path::new("."));
        let mut problems = Vec::new();
        let mut files = vec![path.to_path_buf()];
        let tls =
            raw.tls_server_config
                .as_ref()
                .and_then(|t| match tls_config(t, base, &mut files) {
                    Ok(c) => Some(Arc::new(c)),
                    Err(p) => {
                        problems.extend(p);
                        None
                    }
                });
        let mut users = BTreeMap::new();
        for (user, hash) in raw.basic_auth_users.unwrap_or_default() {
            match hash.parse::<bcrypt::HashParts>() {
                Ok(parts) => {
                    users.insert(user, (hash, parts.get_cost()));
                }
                Err(_) => problems.push(format!("basic_auth_users.{user}: not a bcrypt hash")),
            }
        }
        let mut headers = Vec::new();
        if let Some(h) = &raw.http_server_config {
            if h.http2 == Some(false) {
                problems.push("http_server_config.http2: false is not supported".into());
            }
            for (name, value) in h.headers.iter().flatten() {
                let Some((_, allowed)) = ALLOWED_HEADERS
                    .iter()
                    .find(|(a, _)| a.eq_ignore_ascii_case(name))
                else {
                    let names: Vec<&str> = ALLOWED_HEADERS.iter().map(|(n, _)| *n).collect();
                    problems.push(format!(
                        "http_server_config.headers.{name}: not allowed; allowed are {}",
                        names.join(", ")
                    ));
                    continue;
                };
                match HeaderValue::from_str(value) {
                    Ok(v) => headers.push((allowed.clone(), v)),
                    Err(_) => problems.push(format!(
                        "http_server_config.headers.{name}: invalid header value"
                    )),
                }
            }
        }
        if !problems.is_empty() {
            return Err(WebConfigError {
                path: path.to_path_buf(),
                problems,
            });
        }
        Ok(WebConfig {
            tls,
            requires_client_cert,
            auth: Auth::new(users.into_iter().map(|(u, (h, c))| (u, h, c)).collect()),
            headers,
            files,
        })
    }

    fn fingerprint(&self) -> Vec<Option<(SystemTime, u64)>> {
        fingerprint(&self.files)
    }
}

impl WebConfig {
    /// Anyone who can connect may scrape and reload: no users and no client certificates.
    pub fn is_open(&self) -> bool {
        !self.auth.enabled() && !self.requires_client_cert
    }
}

fn fingerprint(files: &[PathBuf]) -> Vec<Option<(SystemTime, u64)>> {
    files
        .iter()
        .map(|f| {
            std::fs::metadata(f)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

fn tls_config(
    t: &RawTls,
    base: &Path,
    files: &mut Vec<PathBuf>,
) -> Result<ServerConfig, Vec<String>> {
    let mut problems = Vec::new();
    let mut path = |field: &str, v: &Option<String>| -> Option<PathBuf> {
        match v.as_deref().filter(|v| !v.is_empty()) {
            Some(v) => {
                let p = base.join(v);
                files.push(p.clone());
                Some(p)
            }
            None => {
                problems.push(format!("tls_server_config.{field} is required"));
                None
            }
        }
    };
    let cert_file = path("cert_file", &t.cert_file);
    let key_file = path("key_file", &t.key_file);
    let mut problems_after = Vec::new();
    let certs = cert_file.and_then(|p| {
        match CertificateDer::pem_file_iter(&p).and_then(|i| i.collect::<Result<Vec<_>, _>>()) {
            Ok(c) if !c.is_empty() => Some(c),
            Ok(_) => {
                problems_after.push(format!(
                    "tls_server_config.cert_file {}: no certificate in it",
                    p.display()
                ));
                None
            }
            Err(e) => {
                problems_after.push(format!("tls_server_config.cert_file {}: {e}", p.display()));
                None
            }
        }
    });
    let key = key_file.and_then(|p| match PrivateKeyDer::from_pem_file(&p) {
        Ok(k) => Some(k),
        Err(e) => {
            problems_after.push(format!("tls_server_config.key_file {}: {e}", p.display()));
            None
        }
    });
    problems.append(&mut problems_after);

    let versions: Vec<&'static rustls::SupportedProtocolVersion> = {
        let parse = |field: &str, v: &Option<String>, problems: &mut Vec<String>| match v.as_deref()
        {
            None | Some("") => None,
            Some("TLS12") => Some(12),
            Some("TLS13") => Some(13),
            Some(other) => {
                problems.push(format!(
                    "tls_server_config.{field} {other:?}: supported are TLS12 and TLS13"
                ));
                None
            }
        };
        let min = parse("min_version", &t.min_version, &mut problems).unwrap_or(12);
        let max = parse("max_version", &t.max_version, &mut problems).unwrap_or(13);
        let mut v = Vec::new();
        if min <= 12 && max >= 12 {
            v.push(&rustls::version::TLS12);
        }
        if max >= 13 {
            v.push(&rustls::version::TLS13);
        }
        if v.is_empty() {
            problems.push("tls_server_config: min_version is above max_version".into());
        }
        v
    };

    let client_ca = match t.client_ca_file.as_deref().filter(|v| !v.is_empty()) {
        None => None,
        Some(f) => {
            let p = base.join(f);
            files.push(p.clone());
            let mut roots = rustls::RootCertStore::empty();
            match CertificateDer::pem_file_iter(&p).and_then(|i| i.collect::<Result<Vec<_>, _>>()) {
                Ok(certs) if !certs.is_empty() => {
                    for c in certs {
                        if let Err(e) = roots.add(c) {
                            problems.push(format!(
                                "tls_server_config.client_ca_file {}: {e}",
                                p.display()
                            ));
                        }
                    }
                    Some(Arc::new(roots))
                }
                Ok(_) => {
                    problems.push(format!(
                        "tls_server_config.client_ca_file {}: no certificate in it",
                        p.display()
                    ));
                    None
                }
                Err(e) => {
                    problems.push(format!(
                        "tls_server_config.client_ca_file {}: {e}",
                        p.display()
                    ));
                    None
                }
            }
        }
    };
    let auth_type = t.client_auth_type.as_deref().unwrap_or("");
    let verifier = match (auth_type, &client_ca) {
        ("" | "NoClientCert", _) => None,
        ("RequireAndVerifyClientCert" | "VerifyClientCertIfGiven", None) => {
            problems.push(format!(
                "tls_server_config.client_auth_type {auth_type} needs client_ca_file"
            ));
            None
        }
        ("RequireAndVerifyClientCert", Some(roots)) => {
            Some(WebPkiClientVerifier::builder(roots.clone()).build())
        }
        ("VerifyClientCertIfGiven", Some(roots)) => Some(
            WebPkiClientVerifier::builder(roots.clone())
                .allow_unauthenticated()
                .build(),
        ),
        (other, _) => {
            problems.push(format!(
                "tls_server_config.client_auth_type {other:?}: supported are NoClientCert, \
                 VerifyClientCertIfGiven and RequireAndVerifyClientCert"
            ));
            None
        }
    };
    let verifier = match verifier.transpose() {
        Ok(v) => v,
        Err(e) => {
            problems.push(format!("tls_server_config.client_ca_file: {e}"));
            None
        }
    };
    let (Some(certs), Some(key), true) = (certs, key, problems.is_empty()) else {
        return Err(problems);
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| vec![format!("tls_server_config: {e}")])?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        vec![format!(
            "tls_server_config: certificate and key do not match or are unusable: {e}"
        )]
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Basic auth users and the cache of successful checks.
pub(crate) struct Auth {
    users: BTreeMap<String, String>,
    /// A hash of the same cost as the users', checked for unknown users so that an unknown
    /// user and a wrong password take the same time.
    dummy: Option<String>,
    cache: Mutex<HashSet<u64>>,
    /// Keys the cache's hashes with per-process randomness, so the cache holds no passwords
    /// and its entries cannot be precomputed.
    keys: RandomState,
}

impl Auth {
    fn new(users: Vec<(String, String, u32)>) -> Auth {
        let cost = users.iter().map(|(_, _, c)| *c).max();
        let dummy = cost.and_then(|c| bcrypt::hash("tenant-exporter-dummy", c).ok());
        Auth {
            users: users.into_iter().map(|(u, h, _)| (u, h)).collect(),
            dummy,
            cache: Mutex::new(HashSet::new()),
            keys: RandomState::new(),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        !self.users.is_empty()
    }

    /// Checks a user and password. Blocking (bcrypt): call from a blocking thread.
    pub(crate) fn check(&self, user: &str, password: &str) -> bool {
        let hash = self.users.get(user);
        let key = self.keys.hash_one((user, password, hash));
        if hash.is_some() && crate::lock(&self.cache).contains(&key) {
            return true;
        }
        let (ok, against) = match (hash, &self.dummy) {
            (Some(h), _) => (true, h.as_str()),
            (None, Some(d)) => (false, d.as_str()),
            (None, None) => return false,
        };
        let verified = bcrypt::verify(password, against).unwrap_or(false) && ok;
        if verified {
            let mut cache = crate::lock(&self.cache);
            if cache.len() >= AUTH_CACHE_SIZE {
                cache.clear();
            }
            cache.insert(key);
        }
        verified
    }
}

/// The web configuration in force, swapped when the file changes.
pub struct Live {
    path: PathBuf,
    current: ArcSwap<WebConfig>,
    fingerprint: Mutex<Vec<Option<(SystemTime, u64)>>>,
}

impl Live {
    pub fn new(path: PathBuf, config: WebConfig) -> Arc<Live> {
        let fp = config.fingerprint();
        Arc::new(Live {
            path,
            current: ArcSwap::from_pointee(config),
            fingerprint: Mutex::new(fp),
        })
    }

    pub(crate) fn current(&self) -> Arc<WebConfig> {
        self.current.load_full()
    }

    /// Re-reads the web config if it or a file it names changed. Returns the new TLS config
    /// to install when one was loaded.
    pub(crate) fn refresh(&self) -> Option<Option<Arc<ServerConfig>>> {
        let files = self.current.load().files.clone();
        let now = fingerprint(&files);
        {
            let mut last = crate::lock(&self.fingerprint);
            if *last == now {
                return None;
            }
            *last = now;
        }
        match WebConfig::load(&self.path) {
            Ok(new) => {
                let had_tls = self.current.load().tls.is_some();
                if had_tls != new.tls.is_some() {
                    tracing::error!(
                        file = %self.path.display(),
                        "web config changed between TLS and plain HTTP; restart to apply, keeping the running one"
                    );
                    return None;
                }
                if new.is_open() && !self.current.load().is_open() {
                    tracing::error!(
                        file = %self.path.display(),
                        "web config would turn authentication off; restart to apply, keeping the running one"
                    );
                    return None;
                }
                *crate::lock(&self.fingerprint) = new.fingerprint();
                let tls = new.tls.clone();
                self.current.store(Arc::new(new));
                tracing::info!(file = %self.path.display(), "web config reloaded");
                Some(tls)
            }
            Err(e) => {
                tracing::error!(error = %e, "web config reload failed; keeping the running one");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unknown user is checked against a hash of the users' own cost, so it costs as much
    /// as a wrong password (the timing is not measured: it is noisy on a loaded machine).
    #[test]
    fn unknown_users_run_bcrypt_at_the_users_cost() {
        let cost = |h: &str| h.split('$').nth(2).map(str::to_string);
        let low = bcrypt::hash("a", 4).unwrap();
        let high = bcrypt::hash("b", 6).unwrap();
        let auth = Auth::new(vec![
            ("alice".into(), low.clone(), 4),
            ("bob".into(), high.clone(), 6),
        ]);
        let dummy = auth.dummy.clone().expect("a dummy hash");
        assert_eq!(cost(&dummy), cost(&high), "{dummy}");
        assert!(!auth.check("mallory", "b"));
        assert!(!auth.check("bob", "a"));
        assert!(auth.check("bob", "b"));
        // Without users there is nothing to compare against, and nothing is accepted.
        assert!(Auth::new(Vec::new()).dummy.is_none());
    }

    #[test]
    fn basic_auth_checks_and_caches() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let auth = Auth::new(vec![("alice".into(), hash, 4)]);
        assert!(auth.enabled());
        assert!(auth.check("alice", "s3cret"));
        assert!(auth.check("alice", "s3cret"), "cached");
        assert!(!auth.check("alice", "wrong"));
        assert!(!auth.check("mallory", "s3cret"));
        assert!(!auth.check("", ""));
    }

    #[test]
    fn every_problem_is_reported() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("web.yml");
        std::fs::write(
            &p,
            "tls_server_config:\n  cert_file: missing.crt\n  client_auth_type: RequireAnyClientCert\n  min_version: TLS10\n\
             basic_auth_users:\n  alice: plaintext\nhttp_server_config:\n  headers:\n    X-Powered-By: me\n",
        )
        .unwrap();
        let e = WebConfig::load(&p).err().expect("invalid").to_string();
        for needle in [
            "tls_server_config.key_file is required",
            "tls_server_config.cert_file",
            "RequireAnyClientCert",
            "TLS10",
            "basic_auth_users.alice: not a bcrypt hash",
            "X-Powered-By: not allowed",
        ] {
            assert!(e.contains(needle), "{needle} missing in {e}");
        }
        std::fs::write(&p, "basic_auth: {}\n").unwrap();
        assert!(WebConfig::load(&p)
            .err()
            .unwrap()
            .to_string()
            .contains("unknown field"));
    }

    #[test]
    fn a_file_that_protects_nothing_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("web.yml");
        for text in [
            "",
            "basic_auth_users: {}\n",
            "http_server_config:\n  headers:\n    X-Frame-Options: deny\n",
        ] {
            std::fs::write(&p, text).unwrap();
            let e = WebConfig::load(&p).err().expect(text).to_string();
            assert!(
                e.contains("neither tls_server_config nor basic_auth_users"),
                "{e}"
            );
        }
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        std::fs::write(
            &p,
            format!("basic_auth_users: {{alice: '{hash}'}}\nhttp_server_config:\n  headers:\n    x-frame-options: deny\n"),
        )
        .unwrap();
        let c = WebConfig::load(&p).unwrap();
        assert!(!c.is_open());
        assert_eq!(c.headers[0].0, header::X_FRAME_OPTIONS);
    }
}
