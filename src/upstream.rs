//! The HTTP client every source uses: connection reuse, per-request timeout, retries with
//! `Retry-After` and capped exponential backoff with jitter, a response size cap, `Link`
//! paging and per-request self-metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use url::Url;

use crate::config::TlsConfig;
use crate::metrics::{collector_labels, SelfMetrics};

/// Retry policy and limits. Tests shorten the waits.
#[derive(Debug, Clone)]
pub struct Policy {
    pub timeout: Duration,
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Longest honoured `Retry-After`.
    pub retry_after_cap: Duration,
    /// Wait after a 429/423 that came without `Retry-After` (Webex SDKs use 5 to 15 s).
    pub retry_after_default: Duration,
    pub max_body_bytes: usize,
}

impl Policy {
    pub fn new(timeout: Duration) -> Self {
        Policy {
            timeout,
            max_attempts: 5,
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(30),
            retry_after_cap: Duration::from_secs(60),
            retry_after_default: Duration::from_secs(5),
            max_body_bytes: 64 << 20,
        }
    }

    /// Full-jitter exponential backoff: a random wait in [cap/2, cap] of `base * 2^attempt`.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .backoff_base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.backoff_cap);
        exp.mul_f64(0.5 + fastrand::f64() * 0.5)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
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
        reason: String,
        tracking_id: Option<String>,
    },
    #[error("{url}: response body larger than {limit} bytes")]
    TooLarge { url: String, limit: usize },
    #[error("{url}: invalid JSON: {reason}")]
    Json { url: String, reason: String },
    #[error("{url}: {reason}")]
    Protocol { url: String, reason: String },
}

impl UpstreamError {
    pub fn status(&self) -> Option<u16> {
        match self {
            UpstreamError::Status { status, .. } => Some(*status),
            _ => None,
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
pub fn display_url(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

/// Makes upstream text safe to show: printable, one line, bounded.
pub fn sanitize(s: &str, max: usize) -> String {
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
}

/// Who a request is for: labels its self-metrics and bounds its retries.
#[derive(Debug, Clone)]
pub struct RequestCtx {
    pub collector: &'static str,
    pub target: String,
    /// No retry is started that would end after this instant.
    pub deadline: Instant,
}

pub struct Request<'a> {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Option<Bytes>,
    /// For Webex: the header that carries a tracking id, logged with failures.
    pub tracking_header: Option<&'a str>,
}

#[derive(Debug)]
pub struct Response {
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Response {
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, UpstreamError> {
        serde_json::from_slice(&self.body).map_err(|e| UpstreamError::Json {
            url: display_url(&self.url),
            reason: e.to_string(),
        })
    }

    /// The `rel="next"` target of the `Link` header, resolved against the request URL.
    pub fn next_link(&self) -> Option<Url> {
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

impl Client {
    pub fn new(policy: Policy, metrics: Arc<SelfMetrics>) -> Result<Client, reqwest::Error> {
        let http = Self::builder(&policy).build()?;
        Ok(Client {
            http,
            policy: Arc::new(policy),
            metrics,
        })
    }

    fn builder(policy: &Policy) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .user_agent(concat!("tenant-exporter/", env!("CARGO_PKG_VERSION")))
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(90))
            .redirect(reqwest::redirect::Policy::limited(3))
    }

    /// A client for an upstream with its own trust settings (extra CA, or none at all).
    pub fn with_tls(&self, target: &str, tls: &TlsConfig) -> Result<Client, String> {
        if tls.ca_file.is_none() && !tls.insecure_skip_verify && tls.proxy_url.is_none() {
            return Ok(self.clone());
        }
        let mut builder = Self::builder(&self.policy);
        if let Some(proxy) = &tls.proxy_url {
            // The message is reqwest's, which does not repeat the URL and its credentials.
            let proxy =
                reqwest::Proxy::all(proxy.url().as_str()).map_err(|e| format!("proxy_url: {e}"))?;
            builder = builder.proxy(proxy);
        }
        if let Some(path) = &tls.ca_file {
            let pem =
                std::fs::read(path).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            builder = builder.tls_certs_merge(certs);
        }
        if tls.insecure_skip_verify {
            tracing::warn!(
                target = %target,
                "insecure_skip_verify is set: the upstream's TLS certificate is not verified"
            );
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let http = builder.build().map_err(|e| format!("TLS settings: {e}"))?;
        Ok(Client {
            http,
            policy: self.policy.clone(),
            metrics: self.metrics.clone(),
        })
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Sends a request, retrying what is worth retrying, and returns a 2xx response.
    pub async fn send(
        &self,
        ctx: &RequestCtx,
        req: Request<'_>,
    ) -> Result<Response, UpstreamError> {
        let labels = collector_labels(ctx.collector, &ctx.target);
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
            let outcome = self.attempt(builder, &req, tracking_id.clone()).await;
            self.metrics
                .request_duration
                .get_or_create(&labels)
                .observe(started.elapsed().as_secs_f64());
            let code = match &outcome {
                Ok(r) => r.0.as_u16().to_string(),
                Err(_) => "error".to_string(),
            };
            self.metrics
                .count_request(ctx.collector, &ctx.target, &code);

            let (wait, reason, err) = match outcome {
                Ok((status, headers, body)) if status.is_success() => {
                    return Ok(Response {
                        url: req.url,
                        headers,
                        body,
                    })
                }
                Ok((status, headers, body)) => {
                    let err = status_error(&req, status, &body, tracking_id, &headers);
                    match status.as_u16() {
                        429 | 423 | 503 => {
                            let wait = retry_after(&headers)
                                .map(|d| d.min(self.policy.retry_after_cap))
                                .unwrap_or_else(|| {
                                    if status.as_u16() == 503 {
                                        self.policy.backoff(attempt)
                                    } else {
                                        self.policy
                                            .retry_after_default
                                            .mul_f64(1.0 + fastrand::f64() * 2.0)
                                    }
                                });
                            let reason = match status.as_u16() {
                                429 => "rate_limited",
                                423 => "locked",
                                _ => "unavailable",
                            };
                            (wait, reason, err)
                        }
                        500..=599 => (self.policy.backoff(attempt), "server_error", err),
                        _ => return Err(err),
                    }
                }
                Err(e) => {
                    let reason = if matches!(&e, UpstreamError::Transport { reason, .. } if reason.contains("timed out"))
                    {
                        "timeout"
                    } else if matches!(e, UpstreamError::TooLarge { .. }) {
                        return Err(e);
                    } else {
                        "network"
                    };
                    (self.policy.backoff(attempt), reason, e)
                }
            };
            attempt += 1;
            if attempt >= self.policy.max_attempts || Instant::now() + wait > ctx.deadline {
                return Err(err);
            }
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
    ) -> Result<(StatusCode, HeaderMap, Bytes), UpstreamError> {
        let transport = |e: reqwest::Error, tracking_id: Option<String>| UpstreamError::Transport {
            method: req.method.clone(),
            url: display_url(&req.url),
            reason: describe_reqwest_error(&e),
            tracking_id,
        };
        let mut resp = builder
            .send()
            .await
            .map_err(|e| transport(e, tracking_id.clone()))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let limit = self.policy.max_body_bytes;
        if resp.content_length().is_some_and(|l| l > limit as u64) {
            return Err(UpstreamError::TooLarge {
                url: display_url(&req.url),
                limit,
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| transport(e, tracking_id.clone()))?
        {
            if body.len() + chunk.len() > limit {
                return Err(UpstreamError::TooLarge {
                    url: display_url(&req.url),
                    limit,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, headers, Bytes::from(body)))
    }
}

/// reqwest's errors nest their causes; the innermost says what actually happened.
fn describe_reqwest_error(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "reading the response failed"
    } else {
        "request failed"
    };
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let detail = cause.to_string();
    if detail.is_empty() || e.is_timeout() {
        kind.to_string()
    } else {
        format!("{kind}: {}", sanitize(&detail, 200))
    }
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
            let d = p.backoff(attempt);
            assert!(d <= p.backoff_cap, "{d:?}");
            assert!(d >= p.backoff_base.mul_f64(0.5).min(p.backoff_cap / 2));
        }
    }
}
