//! HTTP endpoints: `/metrics`, the landing page, health, readiness and reload; and the
//! one server stack (plain HTTP or TLS) with its timeouts and connection cap.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_server::accept::{Accept, NoDelayAcceptor};
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::metrics::SelfMetrics;
use crate::scheduler::Applied;
use crate::snapshot::{openmetrics_to_prometheus_text, Exposition};
use crate::store::{Health, Store};
use crate::web;

pub(crate) const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub(crate) const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How a reload ended; the same answer goes to every request it served.
pub type ReloadResult = Result<Applied, Arc<dyn std::error::Error + Send + Sync>>;
/// A reload request: answered with the new config's problems, if any.
pub type ReloadRequest = oneshot::Sender<ReloadResult>;

/// Waits for a reload request and takes every other one already queued, so that one apply
/// answers them all: requests that arrive while a reload is applied cost one more apply,
/// not one each. `None` once every sender is gone.
pub async fn next_reloads(
    requests: &mut mpsc::Receiver<ReloadRequest>,
) -> Option<Vec<ReloadRequest>> {
    let mut batch = vec![requests.recv().await?];
    while let Ok(more) = requests.try_recv() {
        batch.push(more);
    }
    Some(batch)
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub telemetry_path: String,
    pub reload: mpsc::Sender<ReloadRequest>,
    /// From `--web.config.file`.
    pub web: Option<Arc<web::Live>>,
    /// Serve /-/healthy and /-/ready without basic auth.
    pub auth_exempt_probes: bool,
}

/// Password checks running at once.
static BCRYPT_SLOTS: std::sync::LazyLock<Semaphore> = std::sync::LazyLock::new(|| {
    Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
});

/// Open files kept free of HTTP connections, for upstream sockets, config and token files.
const RESERVED_FILES: u64 = 128;
/// How long scrapes in flight may take to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// At most one log line about rejected connections in this long.
const REJECT_LOG_EVERY: Duration = Duration::from_secs(10);

/// What one client may hold of the server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once, across every listener.
    pub(crate) max_connections: usize,
    /// From accepting a connection to its first complete request head (TLS handshake
    /// included).
    pub(crate) read_header_timeout: Duration,
    /// Longest wait for the next request head on an open connection (keep-alive idle time
    /// and slow headers after the first request).
    pub(crate) idle_timeout: Duration,
}

impl Limits {
    /// The limits the flags ask for; the connection cap is lowered to fit the open-file
    /// limit, since a process out of file descriptors can no longer reach its upstreams.
    pub fn from_flags(
        max_connections: usize,
        read_header_timeout: Duration,
        idle_timeout: Duration,
    ) -> Limits {
        let mut max = max_connections.max(1);
        if let Some(files) = crate::metrics::max_open_files() {
            let fits = files.saturating_sub(RESERVED_FILES).max(1) as usize;
            if fits < max {
                tracing::warn!(
                    requested = max,
                    max_connections = fits,
                    open_file_limit = files,
                    "--web.max-connections lowered to fit the open-file limit; raise LimitNOFILE (ulimit -n)"
                );
                max = fits;
            }
        }
        Limits {
            max_connections: max,
            read_header_timeout,
            idle_timeout,
        }
    }
}

/// Serves `app` on every listener until `stop` turns true; with TLS when the web config
/// says so. While the web config exists, it is watched and changes are applied. Plain
/// HTTP and TLS share one stack: the same timeouts, connection cap and shutdown.
pub fn spawn(
    listeners: Vec<tokio::net::TcpListener>,
    app: Router,
    web: Option<Arc<web::Live>>,
    limits: Limits,
    metrics: Arc<SelfMetrics>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> io::Result<Vec<tokio::task::JoinHandle<()>>> {
    let tls = web
        .as_ref()
        .and_then(|w| w.current().tls.clone())
        .map(RustlsConfig::from_config);
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
    let cap = Capped {
        slots: Arc::new(Semaphore::new(limits.max_connections)),
        metrics,
        last_log: Arc::new(AtomicU64::new(0)),
        inner: NoDelayAcceptor::new(),
    };
    for listener in listeners {
        let local = listener.local_addr()?.to_string();
        let mut server = axum_server::from_tcp(listener.into_std()?)?;
        let builder = server.http_builder();
        // hyper starts this timer whenever it waits for a request head: between keep-alive
        // requests as much as during a slow one.
        builder.http1().header_read_timeout(limits.idle_timeout);
        builder
            .http2()
            .keep_alive_interval(limits.idle_timeout / 2)
            .keep_alive_timeout(limits.read_header_timeout);
        let server = server.first_request_timeout(limits.read_header_timeout);
        let handle = axum_server::Handle::new();
        let server = server.handle(handle.clone());
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let _ = stop.wait_for(|s| *s).await;
            handle.graceful_shutdown(Some(SHUTDOWN_GRACE));
        });
        tracing::info!(
            address = %local,
            tls = tls.is_some(),
            max_connections = limits.max_connections,
            version = crate::VERSION,
            "listening"
        );
        let service = app.clone().into_make_service();
        let serving = match &tls {
            None => Box::pin(server.acceptor(cap.clone()).serve(service))
                as BoxFuture<'static, io::Result<()>>,
            Some(tls) => {
                let acceptor = RustlsAcceptor::new(tls.clone())
                    .handshake_timeout(limits.read_header_timeout)
                    .acceptor(NoDelayAcceptor::new());
                Box::pin(server.acceptor(cap.wrap(acceptor)).serve(service))
            }
        };
        tasks.push(tokio::spawn(async move {
            if let Err(e) = serving.await {
                tracing::error!(address = %local, error = %e, "HTTP server failed");
            }
        }));
    }
    Ok(tasks)
}

/// An acceptor that refuses connections beyond the cap: closed at once, counted, and
/// logged at most every [`REJECT_LOG_EVERY`]. The cap is checked before any TLS work.
#[derive(Clone)]
struct Capped<A> {
    inner: A,
    slots: Arc<Semaphore>,
    metrics: Arc<SelfMetrics>,
    /// Unix seconds of the last log line about a rejection.
    last_log: Arc<AtomicU64>,
}

impl<A> Capped<A> {
    fn wrap<B>(&self, inner: B) -> Capped<B> {
        Capped {
            inner,
            slots: self.slots.clone(),
            metrics: self.metrics.clone(),
            last_log: self.last_log.clone(),
        }
    }

    fn reject(&self) {
        self.metrics.http_connections_rejected.inc();
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let last = self.last_log.load(Ordering::Relaxed);
        if now >= last + REJECT_LOG_EVERY.as_secs()
            && self
                .last_log
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                rejected_total = self.metrics.http_connections_rejected.get(),
                "HTTP connection limit reached (--web.max-connections); closing new connections"
            );
        }
    }
}

impl<A, I, S> Accept<I, S> for Capped<A>
where
    A: Accept<I, S>,
    A::Future: Send + 'static,
    A::Stream: Unpin + Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = Counted<A::Stream>;
    type Service = A::Service;
    type Future = BoxFuture<'static, io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            self.reject();
            drop(stream);
            return Box::pin(std::future::ready(Err(io::Error::other(
                "connection limit reached",
            ))));
        };
        let accepted = self.inner.accept(stream, service);
        Box::pin(async move {
            let (stream, service) = accepted.await?;
            Ok((
                Counted {
                    inner: stream,
                    _slot: permit,
                },
                service,
            ))
        })
    }
}

/// A connection holding one of the capped slots until it closes.
pub(crate) struct Counted<S> {
    inner: S,
    _slot: OwnedSemaphorePermit,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

pub fn router(state: AppState) -> Router {
    let path = state.telemetry_path.clone();
    let guarded = state.clone();
    Router::new()
        .route("/", get(landing))
        .route(&path, get(metrics))
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .route("/-/reload", post(reload))
        .fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found\n") })
        .layer(axum::middleware::from_fn_with_state(guarded, guard))
        .with_state(state)
}

/// The user and password of a `Basic` Authorization header.
pub(crate) fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
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
                // bcrypt is deliberately slow: keep it off the async workers, and run no
                // more checks at once than there are cores, so a flood of wrong passwords
                // queues here instead of filling the blocking pool that reloads and snapshot
                // encoding need.
                match BCRYPT_SLOTS.acquire().await {
                    // The slot goes with the check: a client that hangs up does not free it
                    // while bcrypt still runs.
                    Ok(slot) => tokio::task::spawn_blocking(move || {
                        let _slot = slot;
                        web.auth.check(&user, &password)
                    })
                    .await
                    .unwrap_or(false),
                    Err(_) => false,
                }
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
pub(crate) enum Format {
    OpenMetrics,
    Text,
}

/// Picks the exposition format from `Accept`, as client_golang does: OpenMetrics when the
/// client accepts `application/openmetrics-text` (version 1.0.0 or unversioned) at least as
/// much as anything else it accepts, the Prometheus text format otherwise.
pub(crate) fn negotiate(accept: Option<&str>) -> Format {
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
pub(crate) fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
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
    let snapshot = state.store.snapshot();
    let live = state.store.metrics.encode();
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
    let (len, body) = if gzip {
        builder = builder.header(header::CONTENT_ENCODING, "gzip");
        let parts = snapshot.gzip_of(exposition, &tail);
        let len: usize = parts.iter().map(Bytes::len).sum();
        let stream = futures_util::stream::iter(parts.into_iter().map(Ok::<_, std::io::Error>));
        (len as u64, Body::from_stream(stream))
    } else {
        // Decompress off the async workers, a chunk at a time and only when the client
        // has taken the previous one: a large identity scrape neither blocks other
        // requests nor holds the whole text, and a client that stops reading holds one
        // chunk and no thread (a blocking thread per slow reader would let a few hundred
        // of them starve config reloads and snapshot encoding).
        let len = snapshot.text_len_of(exposition) + tail.len() as u64;
        let chunks = snapshot.text_chunks_of(exposition, 256 << 10);
        let stream = futures_util::stream::unfold(Some((chunks, Some(tail))), |state| async move {
            let (mut chunks, tail) = state?;
            let next = tokio::task::spawn_blocking(move || {
                let chunk = chunks.next();
                (chunks, chunk)
            })
            .await;
            match next {
                Ok((chunks, Some(chunk))) => Some((chunk, Some((chunks, tail)))),
                Ok((_, None)) => tail.map(|t| (Ok(Bytes::from(t)), None)),
                Err(e) => Some((Err(io::Error::other(e)), None)),
            }
        });
        (len, Body::from_stream(stream))
    };
    builder
        .header(header::CONTENT_LENGTH, len)
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Healthy while every job has a task collecting it.
async fn healthy(State(state): State<AppState>) -> Response {
    let dead = state.store.dead_jobs();
    if dead.is_empty() {
        return (StatusCode::OK, "Healthy\n").into_response();
    }
    let names: Vec<String> = dead.iter().map(|(c, t)| format!("{c}/{t}")).collect();
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "Unhealthy: no task collects {}; see the log\n",
            names.join(", ")
        ),
    )
        .into_response()
}

async fn ready(State(state): State<AppState>) -> Response {
    let statuses = state.store.statuses();
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
        Ok(Ok(_)) => (StatusCode::OK, "config reloaded\n").into_response(),
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
    let statuses = state.store.statuses();
    let snapshot = state.store.snapshot();
    for s in &statuses {
        rows.push_str(&format!(
            "<tr class=\"{health}\"><td>{collector}</td><td>{target}</td><td><span class=\"badge\">{health}</span></td>\
             <td>{objects}</td><td>{series}</td><td>{last_success}</td><td>{duration}</td><td>{next}</td><td class=\"err\">{error}</td></tr>\n",
            health = s.health.as_str(),
            collector = html_escape(s.collector),
            target = html_escape(&s.target),
            objects = s.objects.map(|o| o.to_string()).unwrap_or_else(|| "–".into()),
            series = snapshot
                .series(s.collector, &s.target)
                .map(|n| n.to_string())
                .unwrap_or_else(|| "–".into()),
            last_success = html_escape(&fmt_time(s.last_success)),
            duration = s
                .last_duration
                .map(|d| format!("{:.3} s", d.as_secs_f64()))
                .unwrap_or_else(|| "–".into()),
            next = html_escape(&fmt_time(s.next_run)),
            error = html_escape(
                &[s.last_error.as_deref(), s.note.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" · ")
            ),
        ));
    }
    if statuses.is_empty() {
        rows.push_str("<tr><td colspan=\"9\">No targets configured.</td></tr>\n");
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
<p>Version {version} (revision {revision}, {demo}). Metrics: <a href="{path}">{path}</a> · <a href="/-/healthy">/-/healthy</a> · <a href="/-/ready">/-/ready</a></p>
<h2>Targets</h2>
<table>
<thead><tr><th>Collector</th><th>Target</th><th>Health</th><th>Objects</th><th>Series</th><th>Last success</th><th>Duration</th><th>Next run</th><th>Last error</th></tr></thead>
<tbody>
{rows}</tbody>
</table>
</body>
</html>
"#,
        version = crate::VERSION,
        revision = crate::REVISION,
        demo = if crate::DEMO_BUILT_IN {
            "demo built in"
        } else {
            "without the demo"
        },
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

    #[tokio::test]
    async fn queued_reloads_are_taken_together() {
        let (tx, mut rx) = mpsc::channel(8);
        let mut answers = Vec::new();
        for _ in 0..5 {
            let (reply, answer) = oneshot::channel();
            tx.send(reply).await.unwrap();
            answers.push(answer);
        }
        let batch = next_reloads(&mut rx).await.unwrap();
        assert_eq!(batch.len(), 5);
        for reply in batch {
            reply.send(Ok(Applied::default())).unwrap();
        }
        for answer in answers {
            assert_eq!(answer.await.unwrap().unwrap(), Applied::default());
        }
        drop(tx);
        assert!(next_reloads(&mut rx).await.is_none());
    }

    #[test]
    fn escapes_html() {
        assert_eq!(
            html_escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
