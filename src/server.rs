//! HTTP endpoints: `/metrics`, the landing page, health, readiness and reload.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt as _;
use axum::Router;
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::scheduler::{Health, Shared};
use crate::snapshot::{openmetrics_to_prometheus_text, Exposition};
use crate::web;

pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A reload request: answered with the new config's problems, if any.
pub type ReloadRequest = oneshot::Sender<Result<(), String>>;

#[derive(Clone)]
pub struct AppState {
    pub shared: Arc<Shared>,
    pub telemetry_path: String,
    pub reload: mpsc::Sender<ReloadRequest>,
    /// From `--web.config.file`.
    pub web: Option<Arc<web::Live>>,
    /// Serve /-/healthy and /-/ready without basic auth.
    pub auth_exempt_probes: bool,
}

/// Serves `app` on every listener until `stop` turns true; with TLS when the web config
/// says so. While the web config exists, it is watched and changes are applied.
pub fn spawn(
    listeners: Vec<tokio::net::TcpListener>,
    app: Router,
    web: Option<Arc<web::Live>>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let tls = web
        .as_ref()
        .and_then(|w| w.current().tls.clone())
        .map(axum_server::tls_rustls::RustlsConfig::from_config);
    let mut tasks = Vec::new();
    if let Some(web) = web {
        let tls = tls.clone();
        let mut stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(web::WATCH_INTERVAL) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                let web = web.clone();
                let refreshed = tokio::task::spawn_blocking(move || web.refresh())
                    .await
                    .ok()
                    .flatten();
                if let (Some(Some(new)), Some(tls)) = (refreshed, &tls) {
                    tls.reload_from_config(new);
                }
            }
        }));
    }
    for listener in listeners {
        let local = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        tracing::info!(address = %local, tls = tls.is_some(), version = crate::VERSION, "listening");
        let mut stop = stop.clone();
        let app = app.clone();
        let tls = tls.clone();
        tasks.push(tokio::spawn(async move {
            let result = match tls {
                None => {
                    let graceful = async move {
                        let _ = stop.wait_for(|s| *s).await;
                    };
                    // Without TCP_NODELAY the last small writes of a response wait for the
                    // client's delayed ACK, adding ~40 ms to one scrape in ten.
                    let listener = listener.tap_io(|tcp| {
                        let _ = tcp.set_nodelay(true);
                    });
                    axum::serve(listener, app)
                        .with_graceful_shutdown(graceful)
                        .await
                }
                Some(tls) => {
                    let handle = axum_server::Handle::new();
                    let on_stop = handle.clone();
                    tokio::spawn(async move {
                        let _ = stop.wait_for(|s| *s).await;
                        on_stop.graceful_shutdown(Some(std::time::Duration::from_secs(5)));
                    });
                    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls)
                        .acceptor(axum_server::accept::NoDelayAcceptor::new());
                    match listener.into_std().and_then(axum_server::from_tcp) {
                        Ok(server) => {
                            server
                                .acceptor(acceptor)
                                .handle(handle)
                                .serve(app.into_make_service())
                                .await
                        }
                        Err(e) => Err(e),
                    }
                }
            };
            if let Err(e) = result {
                tracing::error!(address = %local, error = %e, "HTTP server failed");
            }
        }));
    }
    tasks
}

pub fn router(state: AppState) -> Router {
    let path = state.telemetry_path.clone();
    let guarded = state.clone();
    Router::new()
        .route("/", get(landing))
        .route(&path, get(metrics))
        .route("/-/healthy", get(|| async { "Healthy\n" }))
        .route("/-/ready", get(ready))
        .route("/-/reload", post(reload))
        .fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found\n") })
        .layer(axum::middleware::from_fn_with_state(guarded, guard))
        .with_state(state)
}

/// The user and password of a `Basic` Authorization header.
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine as _;
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Basic auth and the configured response headers, from the web config in force.
async fn guard(
    State(state): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(web) = state.web.as_ref().map(|w| w.current()) else {
        return next.run(req).await;
    };
    let probe = matches!(req.uri().path(), "/-/healthy" | "/-/ready");
    if web.auth.enabled() && !(probe && state.auth_exempt_probes) {
        let allowed = match basic_credentials(req.headers()) {
            Some((user, password)) => {
                let web = web.clone();
                // bcrypt is deliberately slow: keep it off the async workers.
                tokio::task::spawn_blocking(move || web.auth.check(&user, &password))
                    .await
                    .unwrap_or(false)
            }
            None => false,
        };
        if !allowed {
            let mut resp = (StatusCode::UNAUTHORIZED, "401 Unauthorized\n").into_response();
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tenant-exporter\""),
            );
            add_headers(&mut resp, &web.headers);
            return resp;
        }
    }
    let mut resp = next.run(req).await;
    add_headers(&mut resp, &web.headers);
    resp
}

fn add_headers(resp: &mut Response, headers: &[(header::HeaderName, HeaderValue)]) {
    for (name, value) in headers {
        resp.headers_mut().insert(name.clone(), value.clone());
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    Text,
}

/// Picks the exposition format from `Accept`, as client_golang does: OpenMetrics when the
/// client accepts `application/openmetrics-text` (version 1.0.0 or unversioned) at least as
/// much as anything else it accepts, the Prometheus text format otherwise.
pub fn negotiate(accept: Option<&str>) -> Format {
    let Some(accept) = accept else {
        return Format::Text;
    };
    let mut best: Option<(f32, Format)> = None;
    for part in accept.split(',') {
        let mut params = part.split(';').map(str::trim);
        let media = params.next().unwrap_or("").to_ascii_lowercase();
        let mut q = 1.0f32;
        let mut version = None;
        for p in params {
            if let Some((k, v)) = p.split_once('=') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "q" => q = v.trim().parse().unwrap_or(0.0),
                    "version" => version = Some(v.trim().trim_matches('"').to_string()),
                    _ => {}
                }
            }
        }
        let format = match media.as_str() {
            "application/openmetrics-text" if version.as_deref().is_none_or(|v| v == "1.0.0") => {
                Format::OpenMetrics
            }
            "application/openmetrics-text" => continue,
            "text/plain" | "text/*" | "*/*" => Format::Text,
            _ => continue,
        };
        if q > 0.0
            && best.is_none_or(|(bq, bf)| {
                q > bq || (q == bq && format == Format::OpenMetrics && bf != format)
            })
        {
            best = Some((q, format));
        }
    }
    best.map(|(_, f)| f).unwrap_or(Format::Text)
}

/// Whether `Accept-Encoding` allows gzip.
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    accept_encoding.is_some_and(|v| {
        v.split(',').any(|part| {
            let mut it = part.split(';').map(str::trim);
            let coding = it.next().unwrap_or("");
            let q = it
                .find_map(|p| p.strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && q > 0.0
        })
    })
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let header_str = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let format = negotiate(header_str(header::ACCEPT));
    let gzip = accepts_gzip(header_str(header::ACCEPT_ENCODING));
    let snapshot = state.shared.snapshot();
    let live = state.shared.metrics.encode();
    let (content_type, tail, exposition) = match format {
        Format::OpenMetrics => (OPENMETRICS_CONTENT_TYPE, live, Exposition::OpenMetrics),
        Format::Text => (
            TEXT_CONTENT_TYPE,
            openmetrics_to_prometheus_text(&live),
            Exposition::Text,
        ),
    };
    let mut builder = Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::VARY, "Accept, Accept-Encoding");
    let (len, body) =
        if gzip {
            builder = builder.header(header::CONTENT_ENCODING, "gzip");
            let parts = snapshot.gzip_of(exposition, &tail);
            let len: usize = parts.iter().map(Bytes::len).sum();
            let stream = futures_util::stream::iter(parts.into_iter().map(Ok::<_, std::io::Error>));
            (len as u64, Body::from_stream(stream))
        } else {
            // Decompress off the async workers, a chunk at a time, so a large identity scrape
            // neither blocks other requests nor holds the whole text in memory.
            let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
            let len = snapshot.text_len_of(exposition) + tail.len() as u64;
            tokio::task::spawn_blocking(move || {
                for chunk in snapshot.text_chunks_of(exposition, 256 << 10) {
                    if tx.blocking_send(chunk).is_err() {
                        return;
                    }
                }
                let _ = tx.blocking_send(Ok(Bytes::from(tail)));
            });
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|c| (c, rx))
            });
            (len, Body::from_stream(stream))
        };
    builder
        .header(header::CONTENT_LENGTH, len)
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn ready(State(state): State<AppState>) -> Response {
    let statuses = state.shared.statuses();
    let pending = statuses
        .iter()
        .filter(|s| s.health == Health::Pending)
        .count();
    if pending == 0 {
        (StatusCode::OK, "Ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "Not ready: {pending} of {} targets have not finished their first collection\n",
                statuses.len()
            ),
        )
            .into_response()
    }
}

async fn reload(State(state): State<AppState>) -> Response {
    let (tx, rx) = oneshot::channel();
    if state.reload.send(tx).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "reload is not available\n").into_response();
    }
    match rx.await {
        Ok(Ok(())) => (StatusCode::OK, "config reloaded\n").into_response(),
        Ok(Err(e)) => (
            StatusCode::BAD_REQUEST,
            format!("config not reloaded, the old one keeps running:\n{e}\n"),
        )
            .into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "reload was interrupted\n").into_response(),
    }
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn fmt_time(t: Option<SystemTime>) -> String {
    let Some(t) = t else {
        return "never".to_string();
    };
    let now = SystemTime::now();
    let rel = match now.duration_since(t) {
        Ok(ago) => format!(
            "{} ago",
            humantime::format_duration(std::time::Duration::from_secs(ago.as_secs()))
        ),
        Err(e) => format!(
            "in {}",
            humantime::format_duration(std::time::Duration::from_secs(e.duration().as_secs()))
        ),
    };
    format!("{} ({rel})", humantime::format_rfc3339_seconds(t))
}

async fn landing(State(state): State<AppState>) -> Html<String> {
    let mut rows = String::new();
    let statuses = state.shared.statuses();
    for s in &statuses {
        rows.push_str(&format!(
            "<tr class=\"{health}\"><td>{collector}</td><td>{target}</td><td><span class=\"badge\">{health}</span></td>\
             <td>{objects}</td><td>{last_success}</td><td>{duration}</td><td>{next}</td><td class=\"err\">{error}</td></tr>\n",
            health = s.health.as_str(),
            collector = html_escape(s.collector),
            target = html_escape(&s.target),
            objects = s.objects.map(|o| o.to_string()).unwrap_or_else(|| "–".into()),
            last_success = html_escape(&fmt_time(s.last_success)),
            duration = s
                .last_duration
                .map(|d| format!("{:.3} s", d.as_secs_f64()))
                .unwrap_or_else(|| "–".into()),
            next = html_escape(&fmt_time(s.next_run)),
            error = html_escape(s.last_error.as_deref().unwrap_or("")),
        ));
    }
    if statuses.is_empty() {
        rows.push_str("<tr><td colspan=\"8\">No targets configured.</td></tr>\n");
    }
    let path = html_escape(&state.telemetry_path);
    Html(format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tenant-exporter</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #1f2328; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #d0d7de; vertical-align: top; }}
th {{ background: #f6f8fa; }}
.badge {{ padding: .1rem .5rem; border-radius: 1rem; font-size: .85em; background: #eaeef2; }}
tr.up .badge {{ background: #dafbe1; color: #116329; }}
tr.down .badge, tr.stale .badge {{ background: #ffebe9; color: #a40e26; }}
td.err {{ color: #a40e26; font-family: ui-monospace, monospace; font-size: .85em; word-break: break-word; }}
</style>
</head>
<body>
<h1>tenant-exporter</h1>
<p>Version {version} (revision {revision}). Metrics: <a href="{path}">{path}</a> · <a href="/-/healthy">/-/healthy</a> · <a href="/-/ready">/-/ready</a></p>
<h2>Targets</h2>
<table>
<thead><tr><th>Collector</th><th>Target</th><th>Health</th><th>Objects</th><th>Last success</th><th>Duration</th><th>Next run</th><th>Last error</th></tr></thead>
<tbody>
{rows}</tbody>
</table>
</body>
</html>
"#,
        version = crate::VERSION,
        revision = crate::REVISION,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        // Prometheus 2.x and 3.x defaults.
        assert_eq!(
            negotiate(Some("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")),
            Format::OpenMetrics
        );
        assert_eq!(
            negotiate(Some("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8,text/plain;version=1.0.0;q=0.9,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")),
            Format::OpenMetrics
        );
        assert_eq!(negotiate(Some("text/plain;version=0.0.4")), Format::Text);
        assert_eq!(negotiate(Some("*/*")), Format::Text);
        assert_eq!(negotiate(None), Format::Text);
        assert_eq!(
            negotiate(Some("application/openmetrics-text;version=0.0.1")),
            Format::Text
        );
        assert_eq!(
            negotiate(Some("text/plain;q=0.9, application/openmetrics-text;q=0.5")),
            Format::Text
        );
        assert_eq!(
            negotiate(Some("application/openmetrics-text;q=0")),
            Format::Text
        );
        assert_eq!(negotiate(Some(";;;,=,q=x")), Format::Text);
    }

    #[test]
    fn gzip_acceptance() {
        assert!(accepts_gzip(Some("gzip")));
        assert!(accepts_gzip(Some("deflate, gzip;q=0.5")));
        assert!(accepts_gzip(Some("*")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("identity")));
        assert!(!accepts_gzip(None));
    }

    #[test]
    fn escapes_html() {
        assert_eq!(
            html_escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
