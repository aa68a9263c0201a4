//! A Commvault web service session.
//!
//! With a password: `POST /Login` (base64 password and a stable `deviceId`), the returned
//! `token` sent verbatim as `Authtoken`; `POST /RenewLoginToken` with the same `deviceId`
//! before the ~30 minute idle timeout and after a 401; a fresh login when renewing fails;
//! `POST /Logout` for every session given up and on shutdown. A Commvault Cloud login answers
//! `data.authToken`, sent as `Authtoken: Bearer ...`.
//!
//! With an API access token (Commvault Cloud, SSO- or MFA-only accounts): the token is sent
//! in `Authtoken`; with a refresh token file it is renewed by `POST V4/AccessToken/Renew`, and
//! the rotated pair is written to the file before it is used.
//!
//! `POST /Login` is never retried automatically and never sent while the CommServe reports
//! the account locked: failed logins lock it. A collection replaces its session at most once,
//! whatever the number of 401s.
//!
//! Every exchange runs in a task of its own holding the session lock, so one that has been
//! sent completes and is recorded (and a rotated token saved) even when the collection around
//! it is cancelled by a timeout, a reload or a shutdown.
//!
//! Passwords and tokens are `Secret`s: they reach request headers and bodies only. Upstream
//! text is scrubbed of every secret the session has held before it reaches a log line or an
//! error message.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::OwnedMutexGuard;
use url::Url;

use super::api_error;
use crate::config::Secret;
use crate::metrics::{credential_labels, SelfMetrics};
use crate::sources::commvault::config::{CommvaultCredentials, CommvaultTarget};
use crate::sources::lenient::First;
use crate::sources::token_file::write_token_file;
use crate::sources::{endpoint, lenient, CollectError};
use crate::upstream::{Client, Request, RequestCtx, Response, UpstreamError};

/// The `credential` label of the session token's self-metrics.
pub(crate) const CREDENTIAL: &str = "session_token";
/// Commvault ends a session after this long without a request.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// A token idle for this long is renewed before it is used, well ahead of `IDLE_TIMEOUT`.
pub(crate) const RENEW_AFTER: Duration = Duration::from_secs(20 * 60);
/// An access token with a known expiry is renewed this long before it.
const ACCESS_RENEW_MARGIN: Duration = Duration::from_secs(300);

/// No retry of the logout request starts after this long.
const LOGOUT_TIMEOUT: Duration = Duration::from_secs(5);
/// Secrets remembered for scrubbing upstream text.
const SCRUB_MEMORY: usize = 16;

const AUTHTOKEN: HeaderName = HeaderName::from_static("authtoken");

pub(crate) struct Session {
    inner: Arc<Inner>,
    state: Arc<tokio::sync::Mutex<State>>,
}

struct Inner {
    target: String,
    device_id: String,
    credentials: CommvaultCredentials,
    login_url: Url,
    renew_url: Url,
    logout_url: Url,
    access_renew_url: Url,
    metrics: Arc<SelfMetrics>,
    /// Tokens this session has held, newest last.
    seen: Mutex<VecDeque<String>>,
}

#[derive(Default)]
struct State {
    token: Option<Token>,
    /// Access-token mode: the current refresh token, once the file was read.
    refresh: Option<Secret>,
    /// Access-token mode: the token file has been read.
    loaded: bool,
    /// A rotated pair that could not be written to the token file yet: not used until it is.
    unsaved: bool,
    /// Why the last attempt to get a session failed, until the next collection starts: the
    /// concurrent requests of one collection then fail at once instead of each logging in
    /// again (repeated failed logins lock the account).
    failed: Option<String>,
    /// This collection already replaced its session after a 401.
    replaced: bool,
    /// The CommServe reported the account locked until then: no login before.
    locked_until: Option<Instant>,
}

struct Token {
    /// The `Authtoken` header value.
    header: Secret,
    /// The token as issued (access-token mode), for the renewal body.
    raw: Secret,
    last_used: Instant,
    /// Access-token mode: when the CommServe said the token expires.
    expires: Option<SystemTime>,
}

/// What to do with the current token before a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    Use,
    Renew,
    Login,
}

/// The plan for a session token idle for `idle` (`None`: there is no token).
pub(crate) fn plan(idle: Option<Duration>) -> Plan {
    match idle {
        Some(idle) if idle < RENEW_AFTER => Plan::Use,
        Some(idle) if idle < IDLE_TIMEOUT => Plan::Renew,
        _ => Plan::Login,
    }
}

/// Why a login gave no session.
#[derive(Debug, PartialEq)]
pub enum LoginFailure {
    /// `isAccountLocked`, with `remainingLockTime` when the CommServe gave one.
    Locked {
        remaining: Option<Duration>,
        message: Option<String>,
    },
    Refused(String),
}

/// Why a session answer (RenewLoginToken, V4/AccessToken/Renew) gives no token.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error("invalid JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// The error the answer reports, as `api_error` words it.
    #[error("{0}")]
    Refused(String),
    #[error("the answer has no token")]
    NoToken,
    #[error("the answer has no accessToken")]
    NoAccessToken,
}

/// Why there is no session or access token to send: the collection's error. Upstream text in
/// it has been scrubbed of the session's secrets.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("{}", locked_message(user, *remaining, message.clone()))]
    Locked {
        user: String,
        remaining: Option<Duration>,
        message: Option<String>,
    },
    #[error("logging in to Commvault as {user:?} failed: {reason}")]
    Login { user: String, reason: String },
    #[error(transparent)]
    Upstream(UpstreamError),
    #[error("renewing the session failed: {0}")]
    Renewal(String),
    #[error("reading the refresh token file failed: {0}")]
    Join(#[source] tokio::task::JoinError),
    #[error("cannot read refresh_token_file {}: {source}", path.display())]
    ReadTokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("refresh_token_file {} is empty", .0.display())]
    EmptyTokenFile(PathBuf),
    #[error("no access token")]
    NoAccessToken,
    #[error("the Commvault access token was refused (HTTP 401) or has expired, and no refresh_token_file is configured to renew it: create a new access token")]
    NoRefreshTokenFile,
    #[error("renewing the Commvault access token failed: {0}")]
    AccessRenewal(String),
    #[error("cannot save the rotated Commvault access token to {}: {source}; it is kept in memory and not used until saved", path.display())]
    Save {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The keys of a session answer (Login, RenewLoginToken, V4/AccessToken/Renew) that are read.
/// Typed, so the rest of a large answer is skipped rather than built into a tree.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    error_code: Option<Value>,
    error_message: Option<Value>,
    err_list: Option<First<Value>>,
    error: Option<Value>,
    response: Option<First<Value>>,
    token: Option<Value>,
    data: Option<AnswerData>,
    is_account_locked: Option<Value>,
    remaining_lock_time: Option<Value>,
    access_token: Option<Value>,
    refresh_token: Option<Value>,
    token_expiry_timestamp: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnswerData {
    auth_token: Option<Value>,
}

/// The answer's keys that matter, as a small JSON object; `Null` for an answer of another
/// shape (it has neither a token nor an error).
fn parse_json(body: &[u8]) -> Result<Value, AnswerError> {
    let a: Answer = match serde_json::from_slice(body) {
        Ok(a) => a,
        Err(e) if e.classify() == serde_json::error::Category::Data => return Ok(Value::Null),
        Err(e) => return Err(AnswerError::Json(e)),
    };
    let mut obj = serde_json::Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            obj.insert(k.into(), v);
        }
    };
    put("errorCode", a.error_code);
    put("errorMessage", a.error_message);
    put(
        "errList",
        a.err_list.and_then(|f| f.0).map(|v| Value::Array(vec![v])),
    );
    put("error", a.error);
    put(
        "response",
        a.response.and_then(|f| f.0).map(|v| Value::Array(vec![v])),
    );
    put("token", a.token);
    put(
        "data",
        a.data
            .and_then(|d| d.auth_token)
            .map(|t| serde_json::json!({ "authToken": t })),
    );
    put("isAccountLocked", a.is_account_locked);
    put("remainingLockTime", a.remaining_lock_time);
    put("accessToken", a.access_token);
    put("refreshToken", a.refresh_token);
    put("tokenExpiryTimestamp", a.token_expiry_timestamp);
    Ok(Value::Object(obj))
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

/// Reads a `Login` answer: the `Authtoken` value (`token` verbatim, or a Commvault Cloud
/// `data.authToken` as a Bearer token), or why there is none. Commvault reports a failed
/// login with HTTP 200, so the body decides.
pub fn parse_login(body: &[u8]) -> Result<Secret, LoginFailure> {
    let v = parse_json(body).map_err(|e| LoginFailure::Refused(e.to_string()))?;
    let locked = v
        .get("isAccountLocked")
        .is_some_and(|l| lenient::boolean(l) == Some(true));
    let remaining = v
        .get("remainingLockTime")
        .and_then(lenient::number)
        .filter(|s| s.is_finite() && *s > 0.0 && *s < 366.0 * 86_400.0)
        .map(|s| Duration::from_secs(s.ceil() as u64));
    if locked || remaining.is_some() {
        return Err(LoginFailure::Locked {
            remaining,
            message: api_error(&v),
        });
    }
    if let Some(e) = api_error(&v) {
        return Err(LoginFailure::Refused(e));
    }
    if let Some(t) = text(&v, "token") {
        return Ok(Secret::new(t));
    }
    if let Some(t) = v.get("data").and_then(|d| text(d, "authToken")) {
        return Ok(Secret::new(if t.starts_with("Bearer ") {
            t
        } else {
            format!("Bearer {t}")
        }));
    }
    Err(LoginFailure::Refused(
        "the answer has neither a token nor an error".into(),
    ))
}

/// Reads a `RenewLoginToken` answer. A refusal comes as HTTP 200 with an `error` object and
/// no token; an answer without a token is a failure, never "the old token still works".
pub fn parse_renewal(body: &[u8]) -> Result<Secret, AnswerError> {
    let v = parse_json(body)?;
    if let Some(e) = api_error(&v) {
        return Err(AnswerError::Refused(e));
    }
    text(&v, "token")
        .map(Secret::new)
        .ok_or(AnswerError::NoToken)
}

/// A renewed access token.
pub struct AccessRenewal {
    pub(crate) access_token: Secret,
    /// `None` when the CommServe did not rotate it.
    pub(crate) refresh_token: Option<Secret>,
    pub(crate) expires: Option<SystemTime>,
}

/// Reads a `V4/AccessToken/Renew` answer.
pub fn parse_access_renewal(body: &[u8]) -> Result<AccessRenewal, AnswerError> {
    let v = parse_json(body)?;
    if let Some(e) = api_error(&v) {
        return Err(AnswerError::Refused(e));
    }
    let access_token = text(&v, "accessToken")
        .map(Secret::new)
        .ok_or(AnswerError::NoAccessToken)?;
    Ok(AccessRenewal {
        access_token,
        refresh_token: text(&v, "refreshToken").map(Secret::new),
        expires: v
            .get("tokenExpiryTimestamp")
            .and_then(lenient::number)
            .and_then(unix_time),
    })
}

/// A Unix time from upstream data; absurd values are unknown.
fn unix_time(s: f64) -> Option<SystemTime> {
    if !(s.is_finite() && s > 0.0 && s < 1e11) {
        return None;
    }
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(s as u64))
}

/// The `Authtoken` value of an access token: as given when it names its kind, else with the
/// `QSDK ` prefix the web service expects (as Commvault's SDK does).
fn access_header(token: &str) -> String {
    if ["QSDK ", "SAML ", "Bearer "]
        .iter()
        .any(|p| token.starts_with(p))
    {
        token.to_string()
    } else {
        format!("QSDK {token}")
    }
}

/// The token file's content: the refresh token, then the access token it goes with.
fn token_file_text(refresh: &Secret, access: &Secret) -> String {
    format!("{}\n{}", refresh.expose(), access.expose())
}

/// Reads a token file: the refresh token on the first line, the matching access token (once
/// the exporter has rotated them) on the second.
fn read_pair(path: &std::path::Path) -> Result<(Secret, Option<Secret>), SessionError> {
    let s = std::fs::read_to_string(path).map_err(|source| SessionError::ReadTokenFile {
        path: path.to_path_buf(),
        source,
    })?;
    let mut lines = s.lines().map(str::trim).filter(|l| !l.is_empty());
    let refresh = lines
        .next()
        .ok_or_else(|| SessionError::EmptyTokenFile(path.to_path_buf()))?;
    Ok((Secret::new(refresh), lines.next().map(Secret::new)))
}

impl Session {
    /// The configured secrets, for the client to blank from upstream errors.
    pub(crate) fn secrets(&self) -> Vec<String> {
        self.inner.secrets()
    }

    pub(crate) fn new(target: &CommvaultTarget, metrics: Arc<SelfMetrics>) -> Self {
        let base = &target.base_url;
        // 0 from the start, so an alert can tell "not locked" from "no data".
        metrics
            .credential_locked
            .get_or_create(&credential_labels(&target.name, CREDENTIAL))
            .set(0);
        Session {
            inner: Arc::new(Inner {
                target: target.name.clone(),
                device_id: target.device_id.clone(),
                credentials: target.credentials.clone(),
                login_url: endpoint(base, "Login"),
                renew_url: endpoint(base, "RenewLoginToken"),
                logout_url: endpoint(base, "Logout"),
                access_renew_url: endpoint(base, "V4/AccessToken/Renew"),
                metrics,
                seen: Mutex::new(VecDeque::new()),
            }),
            state: Arc::new(tokio::sync::Mutex::new(State::default())),
        }
    }

    /// Marks the start of a collection: a session that could not be had before may be tried
    /// again, and a 401 may replace the session once more.
    pub(crate) async fn begin(&self) {
        let mut s = self.state.lock().await;
        s.failed = None;
        s.replaced = false;
    }

    /// `GET url` in the session. A 401 replaces the session (at most once per collection)
    /// and tries once more.
    pub(crate) async fn get(
        &self,
        client: &Client,
        ctx: &RequestCtx,
        url: &Url,
    ) -> Result<Response, CollectError> {
        let token = self.token(client, ctx).await?;
        let first = client
            .send(ctx, self.inner.request(Method::GET, url, &token, None))
            .await;
        let result = match first {
            Err(UpstreamError::Status { status: 401, .. }) => {
                let token = self.after_rejection(client, ctx, &token).await?;
                client
                    .send(ctx, self.inner.request(Method::GET, url, &token, None))
                    .await
            }
            other => other,
        };
        result.map_err(|e| CollectError::Upstream(self.inner.scrub_error(e)))
    }

    /// Upstream text with every secret of this session blanked.
    pub(crate) fn scrub(&self, s: &str) -> String {
        self.inner.scrub(s)
    }

    /// Ends the session upstream, if there is one. Waits for an exchange in flight, so a
    /// login that was sent is logged out too. An API access token is kept: logging out would
    /// revoke it.
    pub(crate) async fn logout(&self, client: &Client) {
        if matches!(
            self.inner.credentials,
            CommvaultCredentials::AccessToken { .. }
        ) {
            return;
        }
        let Some(token) = self.state.lock().await.token.take() else {
            return;
        };
        self.inner
            .logout(client, &token.header, "logged out of Commvault")
            .await;
    }

    /// The token to send now: the current one, renewed first when it is about to lapse, or a
    /// new session.
    async fn token(&self, client: &Client, ctx: &RequestCtx) -> Result<Secret, CollectError> {
        let mut state = self.state.clone().lock_owned().await;
        let access = matches!(
            self.inner.credentials,
            CommvaultCredentials::AccessToken { .. }
        );
        if let Some(t) = &mut state.token {
            let due = if access {
                t.expires.is_some_and(|e| {
                    SystemTime::now() + ACCESS_RENEW_MARGIN >= e && state.refresh.is_some()
                })
            } else {
                match plan(Some(t.last_used.elapsed())) {
                    Plan::Use => false,
                    Plan::Renew => true,
                    Plan::Login => {
                        // Gone upstream after the idle timeout: renewing cannot work.
                        let old = state.token.take().map(|t| t.header);
                        return self.exchange(state, client, ctx, None, old).await;
                    }
                }
            };
            if !due && !state.unsaved {
                if let Some(t) = &mut state.token {
                    t.last_used = Instant::now();
                    return Ok(t.header.clone());
                }
            }
        }
        if let Some(failed) = &state.failed {
            return Err(CollectError::Credential(failed.clone()));
        }
        let current = state.token.as_ref().map(|t| t.header.clone());
        self.exchange(state, client, ctx, current.clone(), current)
            .await
    }

    /// A working token after `rejected` got a 401: the one a concurrent request already got,
    /// or a replacement unless this collection has had one already.
    async fn after_rejection(
        &self,
        client: &Client,
        ctx: &RequestCtx,
        rejected: &Secret,
    ) -> Result<Secret, CollectError> {
        let mut state = self.state.clone().lock_owned().await;
        let st = &mut *state;
        if let Some(t) = &mut st.token {
            if t.header != *rejected && !st.unsaved {
                t.last_used = Instant::now();
                return Ok(t.header.clone());
            }
        }
        if let Some(failed) = &state.failed {
            return Err(CollectError::Credential(failed.clone()));
        }
        if state.replaced {
            return Err(CollectError::Credential(
                "the Commvault session was refused (HTTP 401) again after it was replaced in this collection; not logging in again before the next collection".into(),
            ));
        }
        state.replaced = true;
        tracing::info!(collector = ctx.collector, target = %ctx.target, "Commvault refused the session token (HTTP 401); renewing the session");
        let current = state.token.as_ref().map(|t| t.header.clone());
        self.exchange(state, client, ctx, current.clone(), current)
            .await
    }

    /// Runs one credential exchange in a task of its own, which holds the session lock until
    /// the outcome is recorded, whatever happens to the caller.
    async fn exchange(
        &self,
        state: OwnedMutexGuard<State>,
        client: &Client,
        ctx: &RequestCtx,
        renew: Option<Secret>,
        replaced: Option<Secret>,
    ) -> Result<Secret, CollectError> {
        let inner = self.inner.clone();
        let client = client.clone();
        let ctx = ctx.clone();
        let task = tokio::spawn(async move {
            let mut state = state;
            inner
                .exchange(&mut state, &client, &ctx, renew, replaced)
                .await
        });
        match task.await {
            Ok(r) => r,
            Err(e) => Err(CollectError::Credential(format!(
                "getting a Commvault session failed: {e}"
            ))),
        }
    }
}

impl Inner {
    async fn exchange(
        &self,
        state: &mut State,
        client: &Client,
        ctx: &RequestCtx,
        renew: Option<Secret>,
        replaced: Option<Secret>,
    ) -> Result<Secret, CollectError> {
        let labels = credential_labels(&self.target, CREDENTIAL);
        let result = match &self.credentials {
            CommvaultCredentials::Password { username, password } => {
                self.password_session(state, client, ctx, username, password, renew, replaced)
                    .await
            }
            CommvaultCredentials::AccessToken {
                access_token,
                refresh_token_file,
            } => {
                self.access_session(
                    state,
                    client,
                    ctx,
                    access_token,
                    refresh_token_file.as_ref(),
                    renew.is_some(),
                )
                .await
            }
        };
        match result {
            Ok((token, counted)) => {
                if counted {
                    self.metrics
                        .credential_refreshes
                        .get_or_create(&labels)
                        .inc();
                }
                Ok(token)
            }
            Err(e) => {
                self.metrics
                    .credential_refresh_failures
                    .get_or_create(&labels)
                    .inc();
                let e = e.to_string();
                tracing::warn!(target = %self.target, error = %e, "no Commvault session");
                state.failed = Some(e.clone());
                Err(CollectError::Credential(e))
            }
        }
    }

    /// Renews `renew` when given, else (or when renewing fails) logs in. Returns the token and
    /// whether it counts as a refresh.
    #[allow(clippy::too_many_arguments)]
    async fn password_session(
        &self,
        state: &mut State,
        client: &Client,
        ctx: &RequestCtx,
        username: &str,
        password: &Secret,
        renew: Option<Secret>,
        replaced: Option<Secret>,
    ) -> Result<(Secret, bool), SessionError> {
        state.token = None;
        // A Commvault Cloud Bearer token cannot be renewed: log in again.
        if let Some(old) = renew.filter(|t| !t.expose().starts_with("Bearer ")) {
            match self.renew(client, ctx, &old).await {
                Ok(token) => {
                    tracing::debug!(target = %self.target, "renewed the Commvault session");
                    self.store(state, token.clone(), None);
                    return Ok((token, true));
                }
                Err(e) => {
                    tracing::info!(target = %self.target, error = %e, "renewing the Commvault session failed; logging in again")
                }
            }
        }
        if let Some(until) = state.locked_until {
            let now = Instant::now();
            if until > now {
                return Err(SessionError::Locked {
                    user: username.to_string(),
                    remaining: Some(until - now),
                    message: None,
                });
            }
            state.locked_until = None;
        }
        let token = self.login(client, ctx, username, password, state).await?;
        self.store(state, token.clone(), None);
        // The session given up may still be open upstream: close it, so sessions do not
        // pile up on the CommServe.
        if let Some(old) = replaced.filter(|o| *o != token) {
            self.logout(client, &old, "logged out of the replaced Commvault session")
                .await;
        }
        Ok((token, true))
    }

    async fn login(
        &self,
        client: &Client,
        ctx: &RequestCtx,
        username: &str,
        password: &Secret,
        state: &mut State,
    ) -> Result<Secret, SessionError> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(password.expose());
        let body = serde_json::json!({
            "username": username,
            "password": encoded,
            "deviceId": self.device_id,
        });
        let req = Request {
            method: Method::POST,
            url: self.login_url.clone(),
            headers: json_headers(true),
            body: Some(Bytes::from(body.to_string())),
            tracking_header: None,
        };
        // A deadline that has already passed: the client starts no retry. Every failed
        // login counts towards the account lockout.
        let once = RequestCtx {
            deadline: Instant::now(),
            ..ctx.clone()
        };
        let locked = |v: i64| {
            self.metrics
                .credential_locked
                .get_or_create(&credential_labels(&self.target, CREDENTIAL))
                .set(v)
        };
        let outcome = match client.send(&once, req).await {
            Ok(resp) => parse_login(&resp.body),
            Err(e) => Err(LoginFailure::Refused(self.scrub_error(e).to_string())),
        };
        match outcome {
            Ok(token) => {
                locked(0);
                self.remember(&token);
                tracing::info!(target = %self.target, user = %username, "logged in to Commvault");
                Ok(token)
            }
            Err(LoginFailure::Locked { remaining, message }) => {
                locked(1);
                state.locked_until = remaining.and_then(|r| Instant::now().checked_add(r));
                let e = SessionError::Locked {
                    user: username.to_string(),
                    remaining,
                    message: message.map(|m| self.scrub(&m)),
                };
                tracing::error!(target = %self.target, user = %username, remaining_lock_seconds = remaining.map(|r| r.as_secs()), "{e}");
                Err(e)
            }
            Err(LoginFailure::Refused(e)) => {
                locked(0);
                Err(SessionError::Login {
                    user: username.to_string(),
                    reason: self.scrub(&e),
                })
            }
        }
    }

    async fn renew(
        &self,
        client: &Client,
        ctx: &RequestCtx,
        token: &Secret,
    ) -> Result<Secret, SessionError> {
        let body = serde_json::json!({"sessionId": token.expose(), "deviceId": self.device_id});
        let req = self.request(
            Method::POST,
            &self.renew_url,
            token,
            Some(Bytes::from(body.to_string())),
        );
        let resp = client
            .send(ctx, req)
            .await
            .map_err(|e| SessionError::Upstream(self.scrub_error(e)))?;
        let token = parse_renewal(&resp.body)
            .map_err(|e| SessionError::Renewal(self.scrub(&e.to_string())))?;
        self.remember(&token);
        Ok(token)
    }

    /// The access token to use: from the config or the token file at first, renewed with the
    /// refresh token when asked and possible.
    async fn access_session(
        &self,
        state: &mut State,
        client: &Client,
        ctx: &RequestCtx,
        configured: &Secret,
        file: Option<&PathBuf>,
        renew: bool,
    ) -> Result<(Secret, bool), SessionError> {
        if !state.loaded {
            let mut access = configured.clone();
            if let Some(path) = file {
                let path = path.clone();
                let (refresh, saved) = tokio::task::spawn_blocking(move || read_pair(&path))
                    .await
                    .map_err(SessionError::Join)??;
                self.remember(&refresh);
                state.refresh = Some(refresh);
                if let Some(saved) = saved {
                    access = saved;
                }
            }
            self.remember(&access);
            state.loaded = true;
            let header = Secret::new(access_header(access.expose()));
            self.store(state, header.clone(), Some(access));
            if !renew {
                return Ok((header, false));
            }
        }
        if state.unsaved {
            self.save(state, file).await?;
            let t = state.token.as_ref().ok_or(SessionError::NoAccessToken)?;
            return Ok((t.header.clone(), false));
        }
        if !renew {
            let t = state.token.as_ref().ok_or(SessionError::NoAccessToken)?;
            return Ok((t.header.clone(), false));
        }
        let (Some(refresh), Some(current)) = (state.refresh.clone(), state.token.as_ref()) else {
            return Err(SessionError::NoRefreshTokenFile);
        };
        let (raw, header) = (current.raw.clone(), current.header.clone());
        let body = serde_json::json!({
            "accessToken": raw.expose(),
            "refreshToken": refresh.expose(),
        });
        // With the current token in `Authtoken` too, as Commvault's SDK sends it.
        let req = self.request(
            Method::POST,
            &self.access_renew_url,
            &header,
            Some(Bytes::from(body.to_string())),
        );
        let renewed = match client.send(ctx, req).await {
            Ok(resp) => parse_access_renewal(&resp.body).map_err(|e| e.to_string()),
            Err(e) => Err(self.scrub_error(e).to_string()),
        }
        .map_err(|e| SessionError::AccessRenewal(self.scrub(&e)))?;
        self.remember(&renewed.access_token);
        let header = Secret::new(access_header(renewed.access_token.expose()));
        if let Some(r) = &renewed.refresh_token {
            self.remember(r);
            state.refresh = Some(r.clone());
        }
        self.store(state, header.clone(), Some(renewed.access_token));
        if let Some(t) = &mut state.token {
            t.expires = renewed.expires;
        }
        if let Some(e) = renewed.expires {
            let unix = e
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            self.metrics
                .credential_expiry
                .get_or_create(&credential_labels(&self.target, "access_token"))
                .set(unix);
        }
        // Persisted before use: the old refresh token is dead once the CommServe rotated it.
        state.unsaved = true;
        self.save(state, file).await?;
        tracing::info!(target = %self.target, "renewed the Commvault access token");
        Ok((header, true))
    }

    /// Writes the current refresh and access token to the token file, atomically.
    async fn save(&self, state: &mut State, file: Option<&PathBuf>) -> Result<(), SessionError> {
        let (Some(path), Some(refresh), Some(token)) =
            (file, state.refresh.as_ref(), state.token.as_ref())
        else {
            state.unsaved = false;
            return Ok(());
        };
        let text = token_file_text(refresh, &token.raw);
        let p = path.clone();
        let written =
            tokio::task::spawn_blocking(move || write_token_file(&p, &text, &mut |_| Ok(())))
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r);
        match written {
            Ok(()) => {
                state.unsaved = false;
                tracing::info!(target = %self.target, file = %path.display(), "saved the rotated Commvault access token");
                Ok(())
            }
            Err(source) => Err(SessionError::Save {
                path: path.clone(),
                source,
            }),
        }
    }

    fn store(&self, state: &mut State, header: Secret, raw: Option<Secret>) {
        state.token = Some(Token {
            raw: raw.unwrap_or_else(|| header.clone()),
            header,
            last_used: Instant::now(),
            expires: None,
        });
    }

    async fn logout(&self, client: &Client, token: &Secret, done: &str) {
        let ctx = RequestCtx {
            collector: super::COLLECTOR,
            target: self.target.clone(),
            deadline: Instant::now() + LOGOUT_TIMEOUT,
        };
        let req = self.request(Method::POST, &self.logout_url, token, None);
        match client.send(&ctx, req).await {
            Ok(_) => tracing::info!(target = %self.target, "{done}"),
            Err(e) => {
                tracing::warn!(target = %self.target, error = %self.scrub_error(e), "logging out of Commvault failed")
            }
        }
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

    /// The configured secrets, plain and as sent (a password also base64), for the client to
    /// blank from upstream errors.
    fn secrets(&self) -> Vec<String> {
        match &self.credentials {
            CommvaultCredentials::Password { password, .. } => {
                let password = password.expose();
                let encoded = base64::engine::general_purpose::STANDARD.encode(password);
                vec![password.to_string(), encoded]
            }
            CommvaultCredentials::AccessToken { access_token, .. } => {
                vec![access_token.expose().to_string()]
            }
        }
    }

    /// Remembers a secret so upstream text echoing it is scrubbed.
    fn remember(&self, token: &Secret) {
        let mut seen = lock(&self.seen);
        if seen.len() >= SCRUB_MEMORY {
            seen.pop_front();
        }
        seen.push_back(token.expose().to_string());
    }

    /// Upstream text with the password (plain or base64) and every token this session has
    /// held (with or without its `QSDK `/`Bearer ` prefix) blanked.
    fn scrub(&self, s: &str) -> String {
        let mut secrets: Vec<String> = Vec::new();
        if let CommvaultCredentials::Password { password, .. } = &self.credentials {
            secrets.push(password.expose().to_string());
            secrets.push(base64::engine::general_purpose::STANDARD.encode(password.expose()));
        }
        if let CommvaultCredentials::AccessToken { access_token, .. } = &self.credentials {
            secrets.push(access_token.expose().to_string());
        }
        for t in lock(&self.seen).iter() {
            secrets.push(t.clone());
            if let Some((_, bare)) = t.split_once(' ') {
                secrets.push(bare.to_string());
            }
        }
        // Longest first, so a token's bare part does not leave its prefix behind half-done.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let mut out = s.to_string();
        for secret in secrets.iter().filter(|s| s.len() >= 4) {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "<redacted>");
            }
        }
        out
    }

    fn scrub_error(&self, e: UpstreamError) -> UpstreamError {
        e.map_upstream_text(|t| self.scrub(t))
    }
}

fn locked_message(username: &str, remaining: Option<Duration>, message: Option<String>) -> String {
    let how_long = match remaining {
        Some(r) => format!(
            "for another {} (remainingLockTime {} s)",
            humantime::format_duration(Duration::from_secs(r.as_secs().div_ceil(60) * 60)),
            r.as_secs()
        ),
        None => "(no remainingLockTime given)".into(),
    };
    let detail = message.map(|m| format!(": {m}")).unwrap_or_default();
    format!(
        "the Commvault account {username:?} is locked {how_long} after repeated failed logins{detail}; the exporter does not log in until it unlocks: check the password, or ask a CommServe admin to unlock the account"
    )
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
mod tests;
