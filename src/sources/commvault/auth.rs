//! A Commvault web service session: `POST /Login` with the base64 password, the returned
//! `token` sent verbatim as `Authtoken`, `POST /RenewLoginToken` before the ~30 minute idle
//! timeout and after a 401, a fresh login when renewing fails, `POST /Logout` on shutdown.
//!
//! The password and the token are `Secret`s: they reach request headers and bodies only, never
//! a log line, an error message or a label.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::StatusFields;
use crate::config::Secret;
use crate::metrics::{credential_labels, SelfMetrics};
use crate::sources::endpoint;
use crate::sources::lenient::First;
use crate::sources::{lenient, CollectError};
use crate::upstream::{Client, Request, RequestCtx, Response, UpstreamError};

/// The `credential` label of the session token's self-metrics.
pub const CREDENTIAL: &str = "session_token";
/// Commvault ends a session after this long without a request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// A token idle for this long is renewed before it is used, well ahead of `IDLE_TIMEOUT`.
pub const RENEW_AFTER: Duration = Duration::from_secs(20 * 60);

/// No retry of the logout request starts after this long.
const LOGOUT_TIMEOUT: Duration = Duration::from_secs(5);

const AUTHTOKEN: HeaderName = HeaderName::from_static("authtoken");

pub struct Session {
    target: String,
    username: String,
    password: Secret,
    login_url: Url,
    renew_url: Url,
    logout_url: Url,
    metrics: Arc<SelfMetrics>,
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    token: Option<Token>,
    /// Why the last attempt to get a session failed, until the next collection starts: the
    /// concurrent requests of one collection then fail at once instead of each logging in
    /// again (repeated failed logins can lock the account).
    failed: Option<String>,
}

struct Token {
    value: Secret,
    last_used: Instant,
}

/// What to do with the current token before a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    Use,
    Renew,
    Login,
}

/// The plan for a token idle for `idle` (`None`: there is no token).
pub fn plan(idle: Option<Duration>) -> Plan {
    match idle {
        Some(idle) if idle < RENEW_AFTER => Plan::Use,
        Some(idle) if idle < IDLE_TIMEOUT => Plan::Renew,
        _ => Plan::Login,
    }
}

/// The answer to `Login` and `RenewLoginToken`. Typed, so the rest of a large answer is
/// skipped rather than built into a tree.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenResponse {
    #[serde(default, deserialize_with = "lenient::de::text")]
    token: Option<String>,
    #[serde(default)]
    error_code: Option<Value>,
    #[serde(default)]
    error_message: Option<Value>,
    #[serde(default)]
    err_list: Option<First<Value>>,
}

/// Reads a `Login` or `RenewLoginToken` answer: the token, `None` when the body has none,
/// or the error the body reports (Commvault reports a failed login with HTTP 200).
pub fn parse_token(body: &[u8]) -> Result<Option<Secret>, String> {
    let t: TokenResponse = serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => format!("unexpected answer: {e}"),
        _ => format!("invalid JSON: {e}"),
    })?;
    let status = StatusFields {
        error_code: t.error_code,
        error_message: t.error_message,
        err_list: t.err_list,
    };
    if let Some(e) = status.api_error() {
        return Err(e);
    }
    Ok(t.token
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .map(Secret::new))
}

impl Session {
    pub fn new(
        target: &str,
        base_url: &Url,
        username: &str,
        password: Secret,
        metrics: Arc<SelfMetrics>,
    ) -> Self {
        Session {
            target: target.to_string(),
            username: username.to_string(),
            password,
            login_url: endpoint(base_url, "Login"),
            renew_url: endpoint(base_url, "RenewLoginToken"),
            logout_url: endpoint(base_url, "Logout"),
            metrics,
            state: tokio::sync::Mutex::new(State::default()),
        }
    }

    /// Marks the start of a collection: a session that could not be had before may be tried
    /// again.
    pub async fn begin(&self) {
        self.state.lock().await.failed = None;
    }

    /// `GET url` in the session. A 401 renews the session (or logs in again) and tries once
    /// more.
    pub async fn get(
        &self,
        client: &Client,
        ctx: &RequestCtx,
        url: &Url,
    ) -> Result<Response, CollectError> {
        let token = self.token(client, ctx).await?;
        match client
            .send(ctx, self.request(Method::GET, url, &token, None))
            .await
        {
            Err(UpstreamError::Status { status: 401, .. }) => {
                tracing::info!(collector = ctx.collector, target = %ctx.target, "session token rejected; renewing the session");
                let token = self.reestablish(client, ctx, &token).await?;
                Ok(client
                    .send(ctx, self.request(Method::GET, url, &token, None))
                    .await?)
            }
            other => Ok(other?),
        }
    }

    /// Ends the session upstream, if there is one.
    pub async fn logout(&self, client: &Client) {
        let Some(token) = self.state.lock().await.token.take() else {
            return;
        };
        let ctx = RequestCtx {
            collector: super::COLLECTOR,
            target: self.target.clone(),
            deadline: Instant::now() + LOGOUT_TIMEOUT,
        };
        let req = self.request(Method::POST, &self.logout_url, &token.value, None);
        match client.send(&ctx, req).await {
            Ok(_) => tracing::info!(target = %self.target, "logged out of Commvault"),
            Err(e) => {
                tracing::warn!(target = %self.target, error = %e, "logging out of Commvault failed")
            }
        }
    }

    /// The token to send now: the current one, renewed first when it has been idle long, or
    /// a new login.
    async fn token(&self, client: &Client, ctx: &RequestCtx) -> Result<Secret, CollectError> {
        let mut state = self.state.lock().await;
        let renew = match &mut state.token {
            Some(t) => match plan(Some(t.last_used.elapsed())) {
                Plan::Use => {
                    t.last_used = Instant::now();
                    return Ok(t.value.clone());
                }
                Plan::Renew => Some(t.value.clone()),
                Plan::Login => None,
            },
            None => None,
        };
        if let Some(failed) = &state.failed {
            return Err(CollectError::Credential(failed.clone()));
        }
        self.refresh(&mut state, client, ctx, renew).await
    }

    /// A working token after `rejected` got a 401, unless a concurrent request already got
    /// one.
    async fn reestablish(
        &self,
        client: &Client,
        ctx: &RequestCtx,
        rejected: &Secret,
    ) -> Result<Secret, CollectError> {
        let mut state = self.state.lock().await;
        let renew = match &mut state.token {
            Some(t) if t.value != *rejected => {
                t.last_used = Instant::now();
                return Ok(t.value.clone());
            }
            Some(t) => Some(t.value.clone()),
            None => None,
        };
        if let Some(failed) = &state.failed {
            return Err(CollectError::Credential(failed.clone()));
        }
        self.refresh(&mut state, client, ctx, renew).await
    }

    /// Renews `renew` when given, else (or when renewing fails) logs in. Counts one refresh
    /// per success and one failure when no session could be had.
    async fn refresh(
        &self,
        state: &mut State,
        client: &Client,
        ctx: &RequestCtx,
        renew: Option<Secret>,
    ) -> Result<Secret, CollectError> {
        let labels = credential_labels(&self.target, CREDENTIAL);
        state.token = None;
        let renewed = match renew {
            Some(token) => match self.renew(client, ctx, &token).await {
                Ok(token) => Some(token),
                Err(e) => {
                    tracing::info!(target = %self.target, error = %e, "renewing the Commvault session failed; logging in again");
                    None
                }
            },
            None => None,
        };
        let result = match renewed {
            Some(token) => Ok(token),
            None => self.login(client, ctx).await,
        };
        match result {
            Ok(token) => {
                self.metrics
                    .credential_refreshes
                    .get_or_create(&labels)
                    .inc();
                state.token = Some(Token {
                    value: token.clone(),
                    last_used: Instant::now(),
                });
                Ok(token)
            }
            Err(e) => {
                self.metrics
                    .credential_refresh_failures
                    .get_or_create(&labels)
                    .inc();
                state.failed = Some(e.clone());
                Err(CollectError::Credential(e))
            }
        }
    }

    async fn login(&self, client: &Client, ctx: &RequestCtx) -> Result<Secret, String> {
        let password = base64::engine::general_purpose::STANDARD.encode(self.password.expose());
        let body = serde_json::json!({"username": self.username, "password": password});
        let req = Request {
            method: Method::POST,
            url: self.login_url.clone(),
            headers: json_headers(true),
            body: Some(Bytes::from(body.to_string())),
            tracking_header: None,
        };
        let outcome = match client.send(ctx, req).await {
            Ok(resp) => parse_token(&resp.body)
                .and_then(|t| t.ok_or_else(|| "the answer has no token".to_string())),
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(token) => {
                tracing::info!(target = %self.target, user = %self.username, "logged in to Commvault");
                Ok(token)
            }
            Err(e) => Err(format!(
                "logging in to Commvault as {:?} failed: {}",
                self.username,
                self.scrub(&e)
            )),
        }
    }

    async fn renew(
        &self,
        client: &Client,
        ctx: &RequestCtx,
        token: &Secret,
    ) -> Result<Secret, String> {
        let body = serde_json::json!({"sessionId": token.expose()});
        let req = self.request(
            Method::POST,
            &self.renew_url,
            token,
            Some(Bytes::from(body.to_string())),
        );
        let resp = client
            .send(ctx, req)
            .await
            .map_err(|e| self.scrub(&e.to_string()))?;
        // An answer without a token extends the current one.
        let renewed = parse_token(&resp.body)
            .map_err(|e| format!("renewing the session failed: {}", self.scrub(&e)))?
            .unwrap_or_else(|| token.clone());
        tracing::debug!(target = %self.target, "renewed the Commvault session");
        Ok(renewed)
    }

    fn request(
        &self,
        method: Method,
        url: &Url,
        token: &Secret,
        body: Option<Bytes>,
    ) -> Request<'static> {
        let mut headers = json_headers(body.is_some());
        if let Ok(mut v) = HeaderValue::from_str(token.expose()) {
            v.set_sensitive(true);
            headers.insert(AUTHTOKEN, v);
        }
        Request {
            method,
            url: url.clone(),
            headers,
            body,
            tracking_header: None,
        }
    }

    /// Upstream text with the password (plain or base64) blanked, in case an error echoes it.
    fn scrub(&self, s: &str) -> String {
        let password = self.password.expose();
        if password.len() < 4 {
            return s.to_string();
        }
        let encoded = base64::engine::general_purpose::STANDARD.encode(password);
        s.replace(password, "<redacted>")
            .replace(&encoded, "<redacted>")
    }
}

/// `Accept: application/json`, and the content type of a JSON body when there is one.
fn json_headers(with_body: bool) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(ACCEPT, HeaderValue::from_static("application/json"));
    if with_body {
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_failure_reported_with_http_200_is_an_error() {
        let body = br#"{"errList":[{"errLogMessage":"Username/Password are incorrect","errorCode":5}],"loginAttempts":1}"#;
        assert_eq!(
            parse_token(body).unwrap_err(),
            "errorCode 5: Username/Password are incorrect"
        );
        let body = br#"{"errorCode": 1116, "errorMessage": "Account is locked"}"#;
        assert_eq!(
            parse_token(body).unwrap_err(),
            "errorCode 1116: Account is locked"
        );
        assert!(parse_token(b"<html>").unwrap_err().contains("invalid JSON"));
    }

    #[test]
    fn login_success_gives_the_token_verbatim() {
        let body = br#"{"aliasName":"1","userName":"monitor","token":"QSDK 3856abc","errList":[],"loginAttempts":0}"#;
        assert_eq!(parse_token(body).unwrap().unwrap().expose(), "QSDK 3856abc");
        assert_eq!(parse_token(br#"{"userName":"monitor"}"#).unwrap(), None);
        assert_eq!(parse_token(br#"{"token":""}"#).unwrap(), None);
    }

    #[test]
    fn idle_tokens_are_renewed_before_the_idle_timeout() {
        assert_eq!(plan(None), Plan::Login);
        assert_eq!(plan(Some(Duration::from_secs(60))), Plan::Use);
        assert_eq!(plan(Some(RENEW_AFTER)), Plan::Renew);
        assert_eq!(
            plan(Some(IDLE_TIMEOUT - Duration::from_secs(1))),
            Plan::Renew
        );
        // Past the idle timeout the session is gone upstream: renewing cannot work.
        assert_eq!(plan(Some(IDLE_TIMEOUT)), Plan::Login);
    }

    fn session(password: &str) -> Session {
        Session::new(
            "cs1",
            &Url::parse("https://cs.example.com/commandcenter/api").unwrap(),
            "monitor",
            Secret::new(password),
            Arc::new(SelfMetrics::new()),
        )
    }

    #[test]
    fn endpoints_and_sensitive_authtoken() {
        let s = session("pw-1234");
        assert_eq!(
            s.login_url.as_str(),
            "https://cs.example.com/commandcenter/api/Login"
        );
        assert_eq!(
            s.renew_url.as_str(),
            "https://cs.example.com/commandcenter/api/RenewLoginToken"
        );
        let req = s.request(
            Method::GET,
            &s.logout_url,
            &Secret::new("QSDK 0123abcd"),
            None,
        );
        assert_eq!(req.headers["authtoken"], "QSDK 0123abcd");
        assert!(req.headers["authtoken"].is_sensitive());
        assert_eq!(req.headers[ACCEPT], "application/json");
        assert!(!format!("{:?}", req.headers).contains("0123abcd"));
    }

    #[test]
    fn upstream_text_never_carries_the_password() {
        let s = session("hunter2-secret");
        let encoded = base64::engine::general_purpose::STANDARD.encode("hunter2-secret");
        let msg = format!("bad password hunter2-secret ({encoded})");
        assert_eq!(s.scrub(&msg), "bad password <redacted> (<redacted>)");
    }
}
