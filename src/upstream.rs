//! The HTTP client every source uses: connection reuse, per-request timeout, retries with
//! `Retry-After` and capped exponential backoff with jitter, a response size cap, `Link`
//! paging and per-request self-metrics.

use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use url::Url;

use crate::config::TlsConfig;
use crate::metrics::{collector_labels, SelfMetrics};

/// Retry policy and limits. Tests shorten the waits.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub(crate) timeout: Duration,
    pub(crate) max_attempts: u32,
    pub(crate) backoff_base: Duration,
    pub(crate) backoff_cap: Duration,
    /// Longest honoured `Retry-After`.
    pub(crate) retry_after_cap: Duration,
    /// Wait after a 429/423 that came without `Retry-After` (Webex SDKs use 5 to 15 s).
    pub(crate) retry_after_default: Duration,
    /// Largest response body read; a larger one fails the request.
    pub(crate) max_body_bytes: usize,
    /// Response bytes held at once by the whole process (all targets): a response waits for
    /// its share before its body is read, so concurrent large bodies cannot add up past this.
    pub(crate) max_body_bytes_in_flight: usize,
    /// Pages one collection reads at most.
    pub(crate) max_pages: usize,
    /// Objects (items, readable or not) one collection reads at most.
    pub(crate) max_objects: usize,
}

/// Bodies up to this size are parsed on the async worker; larger ones on a blocking thread,
/// so a large or hostile payload cannot stall `/metrics`.
pub(crate) const PARSE_INLINE_MAX: usize = 64 << 10;
/// Error bodies are only read for their message: the rest is dropped unread.
const MAX_ERROR_BODY_BYTES: usize = 64 << 10;

pub(crate) const DEFAULT_MAX_BODY_BYTES: usize = 32 << 20;
pub(crate) const DEFAULT_MAX_BODY_BYTES_IN_FLIGHT: usize = 64 << 20;
pub(crate) const DEFAULT_MAX_PAGES: usize = 10_000;
pub(crate) const DEFAULT_MAX_OBJECTS: usize = 100_000;

impl Policy {
    pub(crate) fn new(timeout: Duration) -> Self {
        Policy {
            timeout,
            max_attempts: 5,
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(30),
            retry_after_cap: Duration::from_secs(60),
            retry_after_default: Duration::from_secs(5),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_body_bytes_in_flight: DEFAULT_MAX_BODY_BYTES_IN_FLIGHT,
            max_pages: DEFAULT_MAX_PAGES,
            max_objects: DEFAULT_MAX_OBJECTS,
        }
    }

    /// Equal-jitter exponential backoff: half of `base * 2^attempt` (capped) plus a random
    /// part of up to the other half, so retries spread out yet never come back at once.
    /// `jitter` is in [0, 1).
    fn backoff(&self, attempt: u32, jitter: f64) -> Duration {
        let exp = self
            .backoff_base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.backoff_cap);
        exp.mul_f64(0.5 + jitter.clamp(0.0, 1.0) * 0.5)
    }
}

/// An upstream that says "retry after 0 seconds" is retried after this long at least, so a
/// misbehaving rate limiter cannot turn the exporter into a tight loop.
pub(crate) const MIN_RETRY_AFTER: Duration = Duration::from_secs(1);

/// What a failed attempt of a request ended with, as far as retrying is concerned (a 2xx
/// answer is returned at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Any other HTTP status, with the `Retry-After` it came with.
    Status {
        status: u16,
        retry_after: Option<Duration>,
    },
    Transport(TransportKind),
    /// A body over the size cap: asking again gives the same body.
    TooLarge,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Decision {
    Fail,
    Retry {
        wait: Duration,
        /// The `reason` label of `tenant_exporter_upstream_retries_total`.
        reason: &'static str,
    },
}

/// The `reason` label values of `tenant_exporter_upstream_retries_total`.
pub(crate) const RETRY_REASONS: [&str; 6] = [
    "rate_limited",
    "locked",
    "unavailable",
    "server_error",
    "timeout",
    "network",
];

/// The retry policy as a pure function: after attempt number `attempt` (0-based) failed with
/// `outcome`, with `time_left` before the collection's deadline and `jitter` a random number
/// in [0, 1), does the request fail, or is it retried after a wait?
pub(crate) fn decide(
    policy: &Policy,
    attempt: u32,
    outcome: Outcome,
    time_left: Duration,
    jitter: f64,
) -> Decision {
    let (wait, reason) = match outcome {
        Outcome::TooLarge | Outcome::Transport(TransportKind::Redirect) => return Decision::Fail,
        Outcome::Status {
            status: status @ (429 | 423 | 503),
            retry_after,
        } => {
            let wait = match retry_after {
                Some(d) => d.clamp(MIN_RETRY_AFTER, policy.retry_after_cap.max(MIN_RETRY_AFTER)),
                None if status == 503 => policy.backoff(attempt, jitter),
                None => policy
                    .retry_after_default
                    .mul_f64(1.0 + jitter.clamp(0.0, 1.0) * 2.0),
            };
            let reason = match status {
                429 => "rate_limited",
                423 => "locked",
                _ => "unavailable",
            };
            (wait, reason)
        }
        Outcome::Status {
            status: 500..=599, ..
        } => (policy.backoff(attempt, jitter), "server_error"),
        Outcome::Status { .. } => return Decision::Fail,
        Outcome::Transport(TransportKind::Timeout) => (policy.backoff(attempt, jitter), "timeout"),
        Outcome::Transport(_) => (policy.backoff(attempt, jitter), "network"),
    };
    if attempt + 1 >= policy.max_attempts || wait > time_left {
        return Decision::Fail;
    }
    Decision::Retry { wait, reason }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    #[error("{method} {url}: HTTP {status}{}{}", fmt_message(.message), fmt_tracking(.tracking_id))]
    Status {
        method: Method,
        url: String,
        status: u16,
        message: Option<String>,
        tracking_id: Option<String>,
    },
    #[error("{method} {url}: {reason}{}", fmt_tracking(.tracking_id))]
    Transport {
        method: Method,
        url: String,
        kind: TransportKind,
        reason: String,
        tracking_id: Option<String>,
    },
    #[error("{url}: response body larger than {limit} bytes (limits.max_body_bytes)")]
    TooLarge { url: String, limit: usize },
    #[error("{url}: waited {} for room in limits.max_body_bytes_in_flight", humantime::format_duration(*.waited))]
    Budget { url: String, waited: Duration },
    #[error("{url}: invalid JSON: {reason}")]
    Json { url: String, reason: String },
    #[error("{url}: {reason}")]
    Protocol { url: String, reason: String },
}

/// What went wrong below HTTP, decided where the reqwest error is described.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TransportKind {
    Timeout,
    Connect,
    /// Reading or decoding the response body.
    Body,
    /// A redirect that was refused (to another origin, or too many).
    Redirect,
    Other,
}

impl UpstreamError {
    /// The same error with every known secret blanked from the text the upstream supplied.
    fn redacted(self, r: &Redactor) -> UpstreamError {
        self.map_upstream_text(|t| r.scrub(t))
    }

    /// The same error with `f` applied to every piece of text the upstream supplied (its
    /// message, tracking id and the reasons built from its answer), for scrubbing secrets.
    pub(crate) fn map_upstream_text(self, f: impl Fn(&str) -> String) -> UpstreamError {
        match self {
            UpstreamError::Status {
                method,
                url,
                status,
                message,
                tracking_id,
            } => UpstreamError::Status {
                method,
                url,
                status,
                message: message.map(|m| f(&m)),
                tracking_id: tracking_id.map(|t| f(&t)),
            },
            UpstreamError::Transport {
                method,
                url,
                kind,
                reason,
                tracking_id,
            } => UpstreamError::Transport {
                method,
                url,
                kind,
                reason: f(&reason),
                tracking_id,
            },
            UpstreamError::Json { url, reason } => UpstreamError::Json {
                url,
                reason: f(&reason),
            },
            UpstreamError::Protocol { url, reason } => UpstreamError::Protocol {
                url,
                reason: f(&reason),
            },
            e @ (UpstreamError::TooLarge { .. } | UpstreamError::Budget { .. }) => e,
        }
    }
}

/// Placed where a secret was in upstream text.
pub(crate) const REDACTED: &str = "<redacted>";
/// Shorter values are not secrets worth the name, and blanking them would garble messages.
const MIN_SECRET_LEN: usize = 6;

/// Blanks known secrets from upstream text before it reaches an error, a log line or the
/// landing page: the target's configured secrets, and the credentials of the request that
/// the text answers (bearer and session tokens, Basic passwords, secret form and JSON fields).
#[derive(Debug, Clone, Default)]
pub(crate) struct Redactor {
    secrets: Arc<[String]>,
}

impl Redactor {
    pub(crate) fn new<I, S>(secrets: I) -> Redactor
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut v: Vec<String> = Vec::new();
        for s in secrets {
            push_secret(&mut v, s.as_ref());
        }
        // Longest first, so a secret that contains another is blanked whole.
        v.sort_by_key(|s| std::cmp::Reverse(s.len()));
        v.dedup();
        Redactor { secrets: v.into() }
    }

    /// This redactor's secrets plus those `req` carries.
    fn with_request(&self, req: &Request<'_>) -> Redactor {
        let mut v: Vec<String> = self.secrets.to_vec();
        for (name, value) in &req.headers {
            if !value.is_sensitive() {
                continue;
            }
            let Ok(value) = value.to_str() else { continue };
            push_secret(&mut v, value);
            let mut words = value.splitn(2, ' ');
            match (words.next(), words.next()) {
                (Some(scheme), Some(cred)) if scheme.eq_ignore_ascii_case("basic") => {
                    push_secret(&mut v, cred);
                    use base64::Engine as _;
                    if let Ok(plain) = base64::engine::general_purpose::STANDARD.decode(cred.trim())
                    {
                        if let Some((_, password)) = String::from_utf8_lossy(&plain).split_once(':')
                        {
                            push_secret(&mut v, password);
                        }
                    }
                }
                (Some(_), Some(cred)) if name == reqwest::header::AUTHORIZATION => {
                    push_secret(&mut v, cred)
                }
                _ => {}
            }
        }
        if let Some(body) = &req.body {
            body_secrets(body, &mut v);
        }
        Redactor::new(v)
    }

    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in self.secrets.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), REDACTED);
            }
        }
        out
    }
}

fn push_secret(v: &mut Vec<String>, s: &str) {
    let s = s.trim();
    if s.len() >= MIN_SECRET_LEN {
        v.push(s.to_string());
        // Form-encoded echoes quote the value as it was sent.
        let encoded: String = url::form_urlencoded::byte_serialize(s.as_bytes()).collect();
        if encoded != s {
            v.push(encoded);
        }
    }
}

/// Whether a form or JSON field of that name carries a credential.
fn is_secret_field(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["secret", "token", "password", "sessionid", "code"]
        .iter()
        .any(|k| n.contains(k))
}

/// The credential fields of a form-encoded or JSON request body.
fn body_secrets(body: &[u8], v: &mut Vec<String>) {
    if let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(body) {
        for (k, value) in fields {
            if let (true, Some(s)) = (is_secret_field(&k), value.as_str()) {
                push_secret(v, s);
            }
        }
        return;
    }
    if body.contains(&b'=') && !body.contains(&b'{') {
        for (k, value) in url::form_urlencoded::parse(body) {
            if is_secret_field(&k) {
                push_secret(v, &value);
            }
        }
    }
}

fn fmt_message(m: &Option<String>) -> String {
    m.as_ref().map(|m| format!(": {m}")).unwrap_or_default()
}

fn fmt_tracking(t: &Option<String>) -> String {
    t.as_ref()
        .map(|t| format!(" (trackingId {t})"))
        .unwrap_or_default()
}

/// A URL as it may appear in logs and on the landing page: no query string (it may carry
/// customer identifiers or, with some vendors, tokens) and no user info.
pub(crate) fn display_url(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

/// Makes upstream text safe to show: printable, one line, bounded.
pub(crate) fn sanitize(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

/// The shared client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    policy: Arc<Policy>,
    metrics: Arc<SelfMetrics>,
    /// The target's configured secrets, blanked from every upstream error.
    secrets: Redactor,
    /// `max_body_bytes_in_flight` permits, one per byte, shared by every clone.
    budget: Arc<Semaphore>,
}

/// How one call of [`Client::send_with`] differs from the usual retrying.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SendOptions<'a> {
    /// Statuses returned at once as errors, without the usual retries: the caller has a
    /// better answer (a 504 on a large page is asked again with a smaller page).
    pub(crate) no_retry: &'a [u16],
}

/// Who a request is for: labels its self-metrics and bounds its retries.
#[derive(Debug, Clone)]
pub(crate) struct RequestCtx {
    pub(crate) collector: &'static str,
    pub(crate) target: String,
    /// No retry is started that would end after this instant.
    pub(crate) deadline: Instant,
}

pub(crate) struct Request<'a> {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<Bytes>,
    /// For Webex: the header that carries a tracking id, logged with failures.
    pub(crate) tracking_header: Option<&'a str>,
}

#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) url: Url,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Body,
    /// The secrets of the request, for errors about this body.
    redactor: Redactor,
}

/// A response body, holding its share of the in-flight budget until it is dropped.
#[derive(Debug)]
pub(crate) struct Body {
    bytes: Bytes,
    _budget: Option<OwnedSemaphorePermit>,
}

impl Deref for Body {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Response {
    pub(crate) fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, UpstreamError> {
        serde_json::from_slice(&self.body).map_err(|e| UpstreamError::Json {
            url: display_url(&self.url),
            reason: self.redactor.scrub(&e.to_string()),
        })
    }

    /// Blanks the secrets of the request that got this response (and the target's) from
    /// `text`, for errors about the body that the caller words itself.
    pub(crate) fn scrub(&self, text: &str) -> String {
        self.redactor.scrub(text)
    }

    /// Runs `parse` on the response: inline for a small body, on a blocking thread for a
    /// large one. The body's budget share is released when the parse is done.
    pub(crate) async fn parse<T, F>(self, parse: F) -> Result<T, UpstreamError>
    where
        T: Send + 'static,
        F: FnOnce(&Response) -> T + Send + 'static,
    {
        if self.body.len() <= PARSE_INLINE_MAX {
            return Ok(parse(&self));
        }
        let url = display_url(&self.url);
        match tokio::task::spawn_blocking(move || parse(&self)).await {
            Ok(t) => Ok(t),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(UpstreamError::Protocol {
                url,
                reason: "parsing the response was cancelled".into(),
            }),
        }
    }

    /// The `rel="next"` target of the `Link` header, resolved against the request URL.
    pub(crate) fn next_link(&self) -> Option<Url> {
        self.headers
            .get_all(reqwest::header::LINK)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(parse_next_link)
            .and_then(|href| self.url.join(&href).ok())
    }
}

/// Finds the `rel="next"` URI in one `Link` header value (RFC 8288), which may list several
/// links separated by commas.
pub fn parse_next_link(value: &str) -> Option<String> {
    let mut rest = value;
    while let Some(start) = rest.find('<') {
        let end = start + rest[start..].find('>')?;
        let uri = &rest[start + 1..end];
        let params_end = rest[end..].find('<').map(|i| end + i).unwrap_or(rest.len());
        let params = &rest[end + 1..params_end];
        let is_next = params.split(';').any(|p| {
            let p = p.trim().trim_end_matches(',').trim();
            let Some((k, v)) = p.split_once('=') else {
                return false;
            };
            k.trim().eq_ignore_ascii_case("rel")
                && v.trim()
                    .trim_matches('"')
                    .split_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(uri.to_string());
        }
        rest = &rest[params_end..];
    }
    None
}

/// The seconds form of `Retry-After` (the HTTP-date form is rare in APIs and treated as
/// absent).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    v.parse::<u64>().ok().map(Duration::from_secs)
}

/// Why a target's own trust settings (`tls`, `proxy_url`) give no client. reqwest's messages
/// do not repeat the proxy URL and its credentials.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    #[error("proxy_url: {0}")]
    Proxy(#[source] reqwest::Error),
    #[error("ca_file {}: {source}", path.display())]
    CaFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("ca_file {}: {source}", path.display())]
    CaPem {
        path: std::path::PathBuf,
        source: reqwest::Error,
    },
    #[error("TLS settings: {0}")]
    Build(#[source] reqwest::Error),
}

/// A redirect that `same_origin_redirects` refused.
#[derive(Debug, thiserror::Error)]
enum RedirectRefused {
    #[error("redirect to another origin ({0}) refused: credentials are only sent to the configured base_url")]
    OffOrigin(String),
    #[error("more than {0} redirects")]
    TooMany(usize),
}

const MAX_REDIRECTS: usize = 3;

/// Follows redirects within the origin of the first request only. reqwest would follow a
/// redirect to another host with every header but `Authorization` (Commvault's `Authtoken`
/// would go along), and a 307/308 would post the same body (a password, a client secret) to
/// it; refusing them is the only way to be sure no credential leaves its origin.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let origin = attempt.previous().first().map(Url::origin);
        if origin.as_ref() != Some(&attempt.url().origin()) {
            let to = attempt.url().origin().ascii_serialization();
            return attempt.error(RedirectRefused::OffOrigin(to));
        }
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(RedirectRefused::TooMany(MAX_REDIRECTS));
        }
        attempt.follow()
    })
}

impl Client {
    pub(crate) fn new(policy: Policy, metrics: Arc<SelfMetrics>) -> Result<Client, reqwest::Error> {
        let http = Self::builder(&policy).build()?;
        // The budget must hold one largest body, or such a body would wait forever.
        let budget = policy
            .max_body_bytes_in_flight
            .max(policy.max_body_bytes)
            .min(MAX_BUDGET);
        Ok(Client {
            http,
            policy: Arc::new(policy),
            metrics,
            secrets: Redactor::default(),
            budget: Arc::new(Semaphore::new(budget)),
        })
    }

    fn builder(policy: &Policy) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .user_agent(concat!("tenant-exporter/", env!("CARGO_PKG_VERSION")))
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(90))
            .redirect(same_origin_redirects())
    }

    /// A client for an upstream with its own trust settings (extra CA, or none at all).
    pub(crate) fn with_tls(&self, target: &str, tls: &TlsConfig) -> Result<Client, TlsError> {
        if tls.ca_file.is_none() && !tls.insecure_skip_verify && tls.proxy_url.is_none() {
            return Ok(self.clone());
        }
        let mut builder = Self::builder(&self.policy);
        if let Some(proxy) = &tls.proxy_url {
            let proxy = reqwest::Proxy::all(proxy.url().as_str()).map_err(TlsError::Proxy)?;
            builder = builder.proxy(proxy);
        }
        if let Some(path) = &tls.ca_file {
            let pem = std::fs::read(path).map_err(|source| TlsError::CaFile {
                path: path.clone(),
                source,
            })?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| TlsError::CaPem {
                    path: path.clone(),
                    source,
                })?;
            builder = builder.tls_certs_merge(certs);
        }
        if tls.insecure_skip_verify {
            tracing::warn!(
                target = %target,
                "insecure_skip_verify is set: the upstream's TLS certificate is not verified"
            );
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let http = builder.build().map_err(TlsError::Build)?;
        Ok(Client {
            http,
            policy: self.policy.clone(),
            metrics: self.metrics.clone(),
            secrets: self.secrets.clone(),
            budget: self.budget.clone(),
        })
    }

    /// The same client, blanking `secrets` (a target's configured credentials) from every
    /// upstream error it returns.
    pub(crate) fn with_secrets<I, S>(&self, secrets: I) -> Client
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Client {
            secrets: Redactor::new(secrets),
            ..self.clone()
        }
    }

    pub(crate) fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Sends a request, retrying what is worth retrying, and returns a 2xx response.
    pub(crate) async fn send(
        &self,
        ctx: &RequestCtx,
        req: Request<'_>,
    ) -> Result<Response, UpstreamError> {
        self.send_with(ctx, req, SendOptions::default()).await
    }

    /// `send`, with `opts`.
    pub(crate) async fn send_with(
        &self,
        ctx: &RequestCtx,
        req: Request<'_>,
        opts: SendOptions<'_>,
    ) -> Result<Response, UpstreamError> {
        let labels = collector_labels(ctx.collector, &ctx.target);
        let redactor = self.secrets.with_request(&req);
        let mut attempt = 0u32;
        loop {
            let tracking_id = req.tracking_header.map(|_| new_tracking_id());
            let mut builder = self
                .http
                .request(req.method.clone(), req.url.clone())
                .headers(req.headers.clone());
            if let (Some(h), Some(id)) = (req.tracking_header, &tracking_id) {
                builder = builder.header(h, id.as_str());
            }
            if let Some(body) = &req.body {
                builder = builder.body(body.clone());
            }
            let started = Instant::now();
            let result = self.attempt(builder, &req, tracking_id.clone()).await;
            self.metrics
                .request_duration
                .get_or_create(&labels)
                .observe(started.elapsed().as_secs_f64());
            let code = match &result {
                Ok(r) => r.0.as_u16().to_string(),
                Err(_) => "error".to_string(),
            };
            self.metrics
                .count_request(ctx.collector, &ctx.target, &code);

            let (outcome, err) = match result {
                Ok((status, headers, body)) if status.is_success() => {
                    return Ok(Response {
                        url: req.url,
                        headers,
                        body,
                        redactor,
                    })
                }
                Ok((status, headers, body)) => {
                    let err = status_error(&req, status, &body, tracking_id, &headers)
                        .redacted(&redactor);
                    if opts.no_retry.contains(&status.as_u16()) {
                        return Err(err);
                    }
                    let outcome = Outcome::Status {
                        status: status.as_u16(),
                        retry_after: retry_after(&headers),
                    };
                    (outcome, err)
                }
                Err(e) => {
                    let outcome = match &e {
                        UpstreamError::Transport { kind, .. } => Outcome::Transport(*kind),
                        UpstreamError::TooLarge { .. } | UpstreamError::Budget { .. } => {
                            Outcome::TooLarge
                        }
                        _ => Outcome::Transport(TransportKind::Other),
                    };
                    (outcome, e.redacted(&redactor))
                }
            };
            let time_left = ctx.deadline.saturating_duration_since(Instant::now());
            let (wait, reason) =
                match decide(&self.policy, attempt, outcome, time_left, fastrand::f64()) {
                    Decision::Retry { wait, reason } => (wait, reason),
                    Decision::Fail => return Err(err),
                };
            attempt += 1;
            tracing::debug!(
                collector = ctx.collector,
                target = %ctx.target,
                error = %err,
                wait = %humantime::format_duration(Duration::from_millis(wait.as_millis() as u64)),
                "retrying upstream request"
            );
            self.metrics.count_retry(ctx.collector, &ctx.target, reason);
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(
        &self,
        builder: reqwest::RequestBuilder,
        req: &Request<'_>,
        tracking_id: Option<String>,
    ) -> Result<(StatusCode, HeaderMap, Body), UpstreamError> {
        let transport = |e: reqwest::Error, tracking_id: Option<String>| {
            let (kind, reason) = describe_reqwest_error(&e);
            UpstreamError::Transport {
                method: req.method.clone(),
                url: display_url(&req.url),
                kind,
                reason,
                tracking_id,
            }
        };
        let mut resp = builder
            .send()
            .await
            .map_err(|e| transport(e, tracking_id.clone()))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let too_large = || UpstreamError::TooLarge {
            url: display_url(&req.url),
            limit: self.policy.max_body_bytes,
        };
        // An error body is only read for its message, so it is cut rather than refused.
        let (limit, cut) = if status.is_success() {
            (self.policy.max_body_bytes, false)
        } else {
            (self.policy.max_body_bytes.min(MAX_ERROR_BODY_BYTES), true)
        };
        let declared = resp.content_length();
        if !cut && declared.is_some_and(|l| l > limit as u64) {
            return Err(too_large());
        }
        // Reserve what the body may take before reading it: the declared length, or the
        // whole limit when none is declared. One reservation per response, all at once, so
        // responses waiting for budget never hold part of it.
        let reserve = declared.map_or(limit, |l| (l as usize).min(limit));
        let mut permit = self.reserve(reserve, &req.url).await?;
        let mut body = Vec::with_capacity(reserve.min(1 << 20));
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| transport(e, tracking_id.clone()))?
        {
            if body.len() + chunk.len() > limit {
                if cut {
                    body.extend_from_slice(&chunk[..limit - body.len()]);
                    break;
                }
                return Err(too_large());
            }
            if body.len() + chunk.len() > reserve {
                // More than declared: the upstream lied about its length.
                return Err(UpstreamError::Protocol {
                    url: display_url(&req.url),
                    reason: "the body is longer than its Content-Length".into(),
                });
            }
            body.extend_from_slice(&chunk);
        }
        // Keep the budget for what was read, give back the rest of the reservation.
        if let Some(p) = permit.as_mut() {
            drop(p.split(p.num_permits().saturating_sub(body.len())));
        }
        Ok((
            status,
            headers,
            Body {
                bytes: Bytes::from(body),
                _budget: permit,
            },
        ))
    }

    /// Waits for `bytes` of the in-flight budget, at most one request timeout.
    async fn reserve(
        &self,
        bytes: usize,
        url: &Url,
    ) -> Result<Option<OwnedSemaphorePermit>, UpstreamError> {
        if bytes == 0 {
            return Ok(None);
        }
        let n = u32::try_from(bytes.min(MAX_BUDGET)).unwrap_or(u32::MAX);
        let wait = self.policy.timeout;
        match tokio::time::timeout(wait, self.budget.clone().acquire_many_owned(n)).await {
            Ok(Ok(p)) => Ok(Some(p)),
            // The semaphore is never closed; treat it as unlimited if it were.
            Ok(Err(_)) => Ok(None),
            Err(_) => Err(UpstreamError::Budget {
                url: display_url(url),
                waited: wait,
            }),
        }
    }
}

/// The in-flight budget is counted in semaphore permits, which a single request can take at
/// most `u32::MAX` of.
const MAX_BUDGET: usize = 1 << 30;

/// What kind of failure a reqwest error is, and its description: reqwest's errors nest
/// their causes, and the innermost says what actually happened.
fn describe_reqwest_error(e: &reqwest::Error) -> (TransportKind, String) {
    let (kind, what) = if e.is_timeout() {
        (TransportKind::Timeout, "timed out")
    } else if e.is_redirect() {
        (TransportKind::Redirect, "redirect not followed")
    } else if e.is_connect() {
        (TransportKind::Connect, "connection failed")
    } else if e.is_body() || e.is_decode() {
        (TransportKind::Body, "reading the response failed")
    } else {
        (TransportKind::Other, "request failed")
    };
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let detail = cause.to_string();
    let reason = if detail.is_empty() || kind == TransportKind::Timeout {
        what.to_string()
    } else {
        format!("{what}: {}", sanitize(&detail, 200))
    };
    (kind, reason)
}

/// Builds the error for a non-2xx answer, taking the message and tracking id from a Webex-
/// or Commvault-style JSON error body when there is one.
fn status_error(
    req: &Request<'_>,
    status: StatusCode,
    body: &[u8],
    sent_tracking_id: Option<String>,
    headers: &HeaderMap,
) -> UpstreamError {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ErrorBody {
        message: Option<String>,
        error_message: Option<String>,
        tracking_id: Option<String>,
    }
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|b| b.message.clone().or_else(|| b.error_message.clone()))
        .map(|m| sanitize(&m, 300));
    let tracking_id = parsed
        .and_then(|b| b.tracking_id)
        .or_else(|| {
            headers
                .get("trackingid")
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_string)
        })
        .or(sent_tracking_id)
        .map(|t| sanitize(&t, 120));
    UpstreamError::Status {
        method: req.method.clone(),
        url: display_url(&req.url),
        status: status.as_u16(),
        message,
        tracking_id,
    }
}

fn new_tracking_id() -> String {
    format!("TENANT-EXPORTER_{:016x}", fastrand::u64(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_link_among_several() {
        let v = r#"<https://x/v1/a?cursor=1>; rel="prev", <https://x/v1/a?cursor=3>; rel="next""#;
        assert_eq!(
            parse_next_link(v).as_deref(),
            Some("https://x/v1/a?cursor=3")
        );
        assert_eq!(
            parse_next_link(r#"</v1/a?c=2>; rel=next"#).as_deref(),
            Some("/v1/a?c=2")
        );
        assert_eq!(parse_next_link(r#"<https://x/>; rel="first""#), None);
        assert_eq!(parse_next_link("garbage <unterminated"), None);
        assert_eq!(parse_next_link(""), None);
    }

    /// Arbitrary header values, biased towards the characters the parsers look at: no panic,
    /// and a next link is always a substring of the value.
    #[test]
    fn link_and_retry_after_parsers_take_any_input() {
        let alphabet: Vec<char> = "<>;,=\"rel next NEXT prev 0123456789 :/?&é\u{0}\u{7f}"
            .chars()
            .collect();
        let mut rng = fastrand::Rng::with_seed(10);
        for _ in 0..20_000 {
            let len = rng.usize(0..64);
            let s: String = (0..len)
                .map(|_| {
                    if rng.u8(..) < 16 {
                        char::from_u32(rng.u32(0..0x11_0000)).unwrap_or('x')
                    } else {
                        alphabet[rng.usize(..alphabet.len())]
                    }
                })
                .collect();
            if let Some(uri) = parse_next_link(&s) {
                assert!(s.contains(&uri), "{s:?} -> {uri:?}");
            }
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&s) {
                h.insert(RETRY_AFTER, v);
                if let Some(d) = retry_after(&h) {
                    let p = Policy::new(Duration::from_secs(1));
                    let outcome = Outcome::Status {
                        status: 429,
                        retry_after: Some(d),
                    };
                    let _ = decide(&p, 0, outcome, Duration::MAX, rng.f64());
                }
            }
        }
    }

    #[test]
    fn display_url_drops_query_and_user_info() {
        let u = Url::parse("https://user:pw@example.com/v1/x?token=abc#f").unwrap();
        assert_eq!(display_url(&u), "https://example.com/v1/x");
    }

    #[test]
    fn sanitize_bounds_and_flattens() {
        assert_eq!(sanitize("a\nb", 10), "a b");
        assert_eq!(sanitize("abcdef", 3), "abc…");
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let p = Policy::new(Duration::from_secs(1));
        for attempt in 0..40 {
            for jitter in [0.0, 0.5, 0.999] {
                let d = p.backoff(attempt, jitter);
                assert!(d <= p.backoff_cap, "{d:?}");
                assert!(d >= p.backoff_base.mul_f64(0.5).min(p.backoff_cap / 2));
            }
        }
        // Equal jitter: half fixed, half random.
        assert_eq!(p.backoff(0, 0.0), Duration::from_millis(250));
        assert_eq!(p.backoff(0, 1.0), Duration::from_millis(500));
    }

    fn status(status: u16, retry_after: Option<u64>) -> Outcome {
        Outcome::Status {
            status,
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    const LOTS: Duration = Duration::from_secs(3600);

    #[test]
    fn retry_decisions() {
        let p = Policy::new(Duration::from_secs(10));
        let d = |attempt, outcome| decide(&p, attempt, outcome, LOTS, 0.0);
        for fail in [
            status(400, None),
            status(401, None),
            status(404, None),
            Outcome::TooLarge,
            Outcome::Transport(TransportKind::Redirect),
        ] {
            assert_eq!(d(0, fail), Decision::Fail, "{fail:?}");
        }
        let retry = |outcome| match d(0, outcome) {
            Decision::Retry { wait, reason } => (wait, reason),
            other => panic!("{outcome:?}: {other:?}"),
        };
        assert_eq!(
            retry(status(429, Some(7))),
            (Duration::from_secs(7), "rate_limited")
        );
        assert_eq!(
            retry(status(423, Some(2))),
            (Duration::from_secs(2), "locked")
        );
        assert_eq!(
            retry(status(503, Some(3))),
            (Duration::from_secs(3), "unavailable")
        );
        assert_eq!(retry(status(502, None)).1, "server_error");
        assert_eq!(retry(status(504, None)).1, "server_error");
        assert_eq!(
            retry(Outcome::Transport(TransportKind::Timeout)).1,
            "timeout"
        );
        for kind in [
            TransportKind::Connect,
            TransportKind::Body,
            TransportKind::Other,
        ] {
            assert_eq!(retry(Outcome::Transport(kind)).1, "network");
        }
        // Without Retry-After: the default wait for 429 and 423, backoff for 503.
        assert_eq!(retry(status(429, None)).0, p.retry_after_default);
        assert_eq!(retry(status(503, None)).0, p.backoff(0, 0.0));
        for (_, reason) in [retry(status(429, None)), retry(status(500, None))] {
            assert!(RETRY_REASONS.contains(&reason));
        }
    }

    #[test]
    fn retry_after_zero_waits_a_second_and_huge_is_capped() {
        let p = Policy::new(Duration::from_secs(10));
        let wait = |s| match decide(&p, 0, status(429, Some(s)), LOTS, 0.5) {
            Decision::Retry { wait, .. } => wait,
            other => panic!("{other:?}"),
        };
        assert_eq!(wait(0), MIN_RETRY_AFTER);
        assert_eq!(wait(u64::MAX), p.retry_after_cap);
    }

    #[test]
    fn no_retry_past_the_attempts_or_the_deadline() {
        let p = Policy::new(Duration::from_secs(10));
        let outcome = status(500, None);
        assert!(matches!(
            decide(&p, p.max_attempts - 2, outcome, LOTS, 0.0),
            Decision::Retry { .. }
        ));
        assert_eq!(
            decide(&p, p.max_attempts - 1, outcome, LOTS, 0.0),
            Decision::Fail
        );
        assert_eq!(
            decide(&p, 0, status(429, Some(30)), Duration::from_secs(29), 0.0),
            Decision::Fail
        );
    }

    fn request(headers: HeaderMap, body: Option<&str>) -> Request<'static> {
        Request {
            method: Method::POST,
            url: Url::parse("https://x/v1/access_token").unwrap(),
            headers,
            body: body.map(|b| Bytes::from(b.to_string())),
            tracking_header: None,
        }
    }

    #[test]
    fn redactor_blanks_request_and_target_secrets() {
        let mut h = HeaderMap::new();
        let mut v = HeaderValue::from_static("Bearer access-token-123");
        v.set_sensitive(true);
        h.insert(reqwest::header::AUTHORIZATION, v);
        let req = request(
            h,
            Some("grant_type=refresh_token&client_id=id&client_secret=s3cr%2Bt-value&refresh_token=refresh-456"),
        );
        let r = Redactor::new(["configured-secret"]).with_request(&req);
        let text = "bad access-token-123, s3cr+t-value, s3cr%2Bt-value, refresh-456, configured-secret; refresh_token";
        assert_eq!(
            r.scrub(text),
            "bad <redacted>, <redacted>, <redacted>, <redacted>, <redacted>; refresh_token"
        );
        // Basic auth: the password, plain; JSON bodies: the secret fields only.
        let mut h = HeaderMap::new();
        let mut v = HeaderValue::from_static("Basic YWRtaW46cGFzc3dvcmQtOTk=");
        v.set_sensitive(true);
        h.insert(reqwest::header::AUTHORIZATION, v);
        let req = request(
            h,
            Some(r#"{"username":"operator","password":"cGFzc3dvcmQ="}"#),
        );
        let r = Redactor::default().with_request(&req);
        assert_eq!(
            r.scrub("operator password-99 cGFzc3dvcmQ="),
            "operator <redacted> <redacted>"
        );
    }
}
