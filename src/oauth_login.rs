//! `tenant-exporter oauth-login`: the OAuth authorization-code flow of a Webex integration,
//! from the command line. It prints the authorize URL with the scopes the target's collectors
//! need, receives the browser's redirect on a loopback listener, exchanges the code and writes
//! the refresh token where the exporter reads it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::response::Html;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE};
use tokio::sync::mpsc;
use url::Url;

use crate::config::{Config, ConfigError, Target};
use crate::metrics::SelfMetrics;
use crate::sources::endpoint;
use crate::sources::webex::broadworks;
use crate::sources::webex::config::{OAuthConfig, WebexCredentials, WebexTarget};
use crate::sources::webex::oauth::write_token_file;
use crate::upstream::{Client, Policy, Request, RequestCtx, TlsError, UpstreamError};

pub const DEFAULT_REDIRECT_URI: &str = "http://localhost:8921/callback";

/// Flags of `oauth-login`.
#[derive(Debug, Clone, clap::Args)]
pub struct OauthLoginArgs {
    /// The Webex target (its `name`) to authorize. Needed when more than one target has an
    /// `oauth` block.
    #[arg(long, value_name = "NAME")]
    pub(crate) target: Option<String>,

    /// The redirect URI registered in the Webex integration: http:// on localhost or a
    /// loopback address, with a port. The command listens there for the browser.
    #[arg(long = "redirect-uri", value_name = "URI", default_value = DEFAULT_REDIRECT_URI)]
    pub(crate) redirect_uri: String,

    /// How long to wait for the browser to come back.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    pub(crate) wait: Duration,
}

/// Why `oauth-login` stopped, as it tells the user.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoginError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("no webex target {name:?} with an oauth block (targets with one: {with_oauth})")]
    NoSuchTarget { name: String, with_oauth: String },
    #[error("no webex target has an oauth block (client_id, client_secret, refresh_token_file)")]
    NoTarget,
    #[error("several webex targets have an oauth block; choose one with --target ({0})")]
    SeveralTargets(String),
    #[error("webex target {0:?} enables no collector, so it needs no scope")]
    NoScope(String),
    #[error("--redirect-uri: {0}")]
    RedirectUri(#[from] RedirectUriError),
    /// Each address with why it could not be bound, `; `-separated.
    #[error("cannot listen for the redirect: {0}")]
    Listen(String),
    /// Webex's `error` and `error_description`, sanitized.
    #[error("Webex refused the authorization: {0}")]
    Refused(String),
    #[error("the redirect carried neither a code nor an error")]
    NoCode,
    #[error("the redirect listener stopped")]
    ListenerStopped,
    #[error("no redirect within {}; run the command again", humantime::format_duration(*.0))]
    NoRedirect(Duration),
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("exchanging the code failed: {0}")]
    Exchange(#[source] UpstreamError),
    #[error(transparent)]
    Answer(UpstreamError),
    #[error("the token endpoint answered without a refresh token")]
    NoRefreshToken,
    #[error("writing {}: {source}", path.display())]
    Write {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// What is wrong with `--redirect-uri`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RedirectUriError {
    #[error(transparent)]
    Parse(#[from] url::ParseError),
    #[error("must start with http:// (a loopback listener)")]
    NotHttp,
    #[error("no port")]
    NoPort,
    #[error(
        "the host must be localhost, 127.0.0.1 or [::1]: the code must not leave this machine"
    )]
    NotLoopback,
}

/// The scopes a target's configured collectors need, and no more.
pub(crate) fn scopes(target: &WebexTarget) -> Vec<&'static str> {
    let mut s = Vec::new();
    if target.broadworks.is_some() {
        s.push("spark-admin:broadworks_enterprises_read");
    }
    if target.managed_orgs.is_some() {
        s.push("spark-admin:organizations_read");
    }
    s
}

/// The URL the user opens to approve the integration.
pub(crate) fn authorize_url(
    target: &WebexTarget,
    oauth: &OAuthConfig,
    redirect_uri: &str,
    state: &str,
) -> Url {
    let mut url = endpoint(&target.base_url, "authorize");
    // Webex documents the scope list with %20 between scopes; form encoding would use `+`.
    let enc = |s: &str| {
        url::form_urlencoded::byte_serialize(s.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    };
    url.set_query(Some(&format!(
        "client_id={}&response_type=code&redirect_uri={}&scope={}&state={}",
        enc(&oauth.client_id),
        enc(redirect_uri),
        enc(&scopes(target).join(" ")),
        enc(state)
    )));
    url
}

/// The addresses to listen on for `redirect_uri`, which must be plain http on a loopback
/// host: the browser delivers the code there, so it must not leave the machine.
fn listen_addresses(redirect_uri: &Url) -> Result<Vec<SocketAddr>, RedirectUriError> {
    if redirect_uri.scheme() != "http" {
        return Err(RedirectUriError::NotHttp);
    }
    let port = redirect_uri
        .port_or_known_default()
        .ok_or(RedirectUriError::NoPort)?;
    let ips: Vec<IpAddr> = match redirect_uri.host() {
        Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => {
            vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()]
        }
        Some(url::Host::Ipv4(a)) if a.is_loopback() => vec![a.into()],
        Some(url::Host::Ipv6(a)) if a.is_loopback() => vec![a.into()],
        _ => return Err(RedirectUriError::NotLoopback),
    };
    Ok(ips
        .into_iter()
        .map(|ip| SocketAddr::new(ip, port))
        .collect())
}

/// The target to authorize: the named one, or the only one with an `oauth` block.
fn pick<'a>(
    config: &'a Config,
    name: Option<&str>,
) -> Result<(&'a WebexTarget, &'a OAuthConfig), LoginError> {
    let with_oauth: Vec<(&WebexTarget, &OAuthConfig)> = config
        .targets
        .iter()
        .filter_map(|t| match t {
            Target::Webex(t) => match &t.credentials {
                WebexCredentials::OAuth(o) => Some((t, o)),
                WebexCredentials::AccessToken(_) => None,
            },
            _ => None,
        })
        .collect();
    let names = || {
        with_oauth
            .iter()
            .map(|(t, _)| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match name {
        Some(n) => with_oauth
            .iter()
            .find(|(t, _)| t.name == n)
            .copied()
            .ok_or_else(|| LoginError::NoSuchTarget {
                name: n.to_string(),
                with_oauth: names(),
            }),
        None => match with_oauth.as_slice() {
            [one] => Ok(*one),
            [] => Err(LoginError::NoTarget),
            _ => Err(LoginError::SeveralTargets(names())),
        },
    }
}

struct Callback {
    path: String,
    state: String,
    done: mpsc::Sender<Result<String, LoginError>>,
}

const PAGE_DONE: &str = "<!doctype html><title>tenant-exporter</title><p>tenant-exporter is authorized. You can close this window.</p>";

async fn callback(
    State(cb): State<Arc<Callback>>,
    uri: axum::http::Uri,
    Query(q): Query<HashMap<String, String>>,
) -> (axum::http::StatusCode, Html<String>) {
    use axum::http::StatusCode;
    if uri.path() != cb.path {
        return (StatusCode::NOT_FOUND, Html("not found".into()));
    }
    // A redirect that does not carry our `state` was not started by this run (or is forged):
    // ignore it and keep waiting.
    if q.get("state").map(String::as_str) != Some(cb.state.as_str()) {
        eprintln!("ignored a request to the redirect URI whose state does not match");
        return (
            StatusCode::BAD_REQUEST,
            Html(
                "state does not match this login; start again from the URL the command printed"
                    .into(),
            ),
        );
    }
    let outcome = match (q.get("code"), q.get("error")) {
        (_, Some(e)) => Err(LoginError::Refused(format!(
            "{}{}",
            crate::upstream::sanitize(e, 100),
            q.get("error_description")
                .map(|d| format!(": {}", crate::upstream::sanitize(d, 200)))
                .unwrap_or_default()
        ))),
        (Some(code), None) if !code.is_empty() => Ok(code.clone()),
        _ => Err(LoginError::NoCode),
    };
    let page = match &outcome {
        Ok(_) => PAGE_DONE.to_string(),
        Err(e) => format!(
            "<!doctype html><title>tenant-exporter</title><p>{}</p>",
            html_escape(&e.to_string())
        ),
    };
    let _ = cb.done.send(outcome).await;
    (StatusCode::OK, Html(page))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Exchanges `code` for tokens and returns the refresh token and its lifetime.
async fn exchange(
    target: &WebexTarget,
    oauth: &OAuthConfig,
    redirect_uri: &str,
    code: &str,
) -> Result<(String, Option<u64>), LoginError> {
    let mut policy = Policy::new(Duration::from_secs(30));
    // A code works once.
    policy.max_attempts = 1;
    let client = Client::new(policy, Arc::new(SelfMetrics::new()))
        .map_err(LoginError::Client)?
        .with_tls(&target.name, &target.tls)?;
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("client_id", &oauth.client_id)
        .append_pair("client_secret", oauth.client_secret.expose())
        .append_pair("code", code)
        .append_pair("redirect_uri", redirect_uri)
        .finish();
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    let ctx = RequestCtx {
        collector: broadworks::COLLECTOR,
        target: target.name.clone(),
        deadline: Instant::now() + Duration::from_secs(30),
    };
    let req = Request {
        method: reqwest::Method::POST,
        url: endpoint(&target.base_url, "access_token"),
        headers,
        body: Some(Bytes::from(body)),
        tracking_header: Some("TrackingID"),
    };
    #[derive(serde::Deserialize)]
    struct Tokens {
        refresh_token: Option<String>,
        refresh_token_expires_in: Option<u64>,
    }
    let resp = client.send(&ctx, req).await.map_err(LoginError::Exchange)?;
    let t: Tokens = resp.json().map_err(LoginError::Answer)?;
    match t.refresh_token.filter(|r| !r.trim().is_empty()) {
        Some(r) => Ok((r.trim().to_string(), t.refresh_token_expires_in)),
        None => Err(LoginError::NoRefreshToken),
    }
}

/// Runs the flow for `args`; returns what to tell the user at the end.
pub(crate) async fn login(config_path: &Path, args: &OauthLoginArgs) -> Result<String, LoginError> {
    let config = Config::load_for_oauth_login(config_path)?;
    let (target, oauth) = pick(&config, args.target.as_deref())?;
    if scopes(target).is_empty() {
        return Err(LoginError::NoScope(target.name.clone()));
    }
    let redirect = Url::parse(&args.redirect_uri).map_err(RedirectUriError::from)?;
    let state = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let (tx, mut rx) = mpsc::channel(1);
    let cb = Arc::new(Callback {
        path: redirect.path().to_string(),
        state: state.clone(),
        done: tx,
    });
    let app = axum::Router::new().fallback(callback).with_state(cb);
    let mut servers = Vec::new();
    let mut bind_errors = Vec::new();
    for addr in listen_addresses(&redirect)? {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                let app = app.clone();
                servers.push(tokio::spawn(async move {
                    let _ = axum::serve(l, app).await;
                }));
            }
            Err(e) => bind_errors.push(format!("{addr}: {e}")),
        }
    }
    if servers.is_empty() {
        return Err(LoginError::Listen(bind_errors.join("; ")));
    }
    println!(
        "Open this URL in a browser and sign in as the Webex partner administrator the exporter \
         should act as (scopes: {}):\n\n{}\n\nWaiting for the redirect to {} ...",
        scopes(target).join(" "),
        authorize_url(target, oauth, &args.redirect_uri, &state),
        args.redirect_uri
    );
    let outcome = tokio::select! {
        r = rx.recv() => r.unwrap_or(Err(LoginError::ListenerStopped)),
        _ = tokio::time::sleep(args.wait) => Err(LoginError::NoRedirect(args.wait)),
    };
    let result = async {
        let code = outcome?;
        let (refresh, lifetime) = exchange(target, oauth, &args.redirect_uri, &code).await?;
        let path = &oauth.refresh_token_file;
        write_token_file(path, &refresh, &mut |_| Ok(())).map_err(|source| LoginError::Write {
            path: path.clone(),
            source,
        })?;
        let days = lifetime
            .map(|s| format!(", valid for {} days unless used", s / 86_400))
            .unwrap_or_default();
        Ok(format!(
            "Wrote the refresh token of target {:?} to {} (mode 0600{days}); the exporter \
             renews it from now on. Check with: tenant-exporter --probe --config.file={}",
            target.name,
            path.display(),
            config_path.display()
        ))
    }
    .await;
    for s in servers {
        s.abort();
    }
    result
}

/// The subcommand's entry point.
pub async fn main(config_path: &Path, args: &OauthLoginArgs) -> ExitCode {
    match login(config_path, args).await {
        Ok(done) => {
            println!("{done}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("oauth-login: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_http_redirects_are_listened_on() {
        let addrs = |u: &str| listen_addresses(&Url::parse(u).unwrap());
        assert_eq!(
            addrs("http://127.0.0.1:8921/cb").unwrap(),
            [SocketAddr::from(([127, 0, 0, 1], 8921))]
        );
        assert_eq!(addrs(DEFAULT_REDIRECT_URI).unwrap().len(), 2);
        for bad in [
            "https://localhost:8921/cb",
            "http://example.com:8921/cb",
            "http://10.0.0.1:8921/cb",
        ] {
            assert!(addrs(bad).is_err(), "{bad}");
        }
    }
}
