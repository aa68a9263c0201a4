//! Webex integration tokens: refresh before expiry and on 401, and persist a rotated refresh
//! token to disk before it is used.
//!
//! A refresh runs in a task of its own: once sent, it completes and its rotated token is
//! saved even when the collection that asked for it is aborted (a reload, a shutdown, the
//! collection timeout). Only a kill while the answer is in flight can still lose a rotation.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE};
use serde::Deserialize;
use url::Url;

use crate::config::Secret;
use crate::metrics::{credential_labels, SelfMetrics};
pub(crate) use crate::sources::token_file::{read_token_file, write_token_file};
use crate::sources::webex::config::OAuthConfig;
use crate::sources::CollectError;
use crate::upstream::{Client, Request, RequestCtx};

/// Never refresh earlier than this before expiry, however long the token lives.
const MIN_REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// Assumed when the token endpoint gives no usable `expires_in`.
const DEFAULT_ACCESS_LIFETIME: Duration = Duration::from_secs(3600);
/// Longer token lifetimes are nonsense (Webex issues 14 days and 90 days) and are treated as
/// unknown: they would overflow time arithmetic or never refresh.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86_400);

pub(crate) struct OAuth {
    inner: Arc<Inner>,
}

struct Inner {
    target: String,
    token_url: Url,
    config: OAuthConfig,
    metrics: Arc<SelfMetrics>,
    /// Held by a refresh from start to end, also across the abort of the collection that
    /// asked for it.
    state: Arc<tokio::sync::Mutex<State>>,
}

#[derive(Default)]
struct State {
    /// The refresh token in force; read from the file before each refresh.
    refresh: Option<Secret>,
    access: Option<Access>,
    /// A rotated refresh token that could not be written yet: nothing is used until it is.
    unsaved: bool,
}

impl State {
    /// The access token, unless it expires soon or a rotated refresh token awaits saving.
    fn fresh_access(&self) -> Option<Secret> {
        let a = self.access.as_ref().filter(|_| !self.unsaved)?;
        let margin = (a.lifetime / 10).max(MIN_REFRESH_MARGIN);
        SystemTime::now()
            .checked_add(margin)
            .is_some_and(|t| t < a.expires_at)
            .then(|| a.token.clone())
    }
}

struct Access {
    token: Secret,
    expires_at: SystemTime,
    lifetime: Duration,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
    refresh_token: Option<String>,
    refresh_token_expires_in: Option<u64>,
}

/// The live integrations, so that a reload rebuilding a target's collectors reuses the
/// state (and waits for the refresh in flight) instead of racing it with the old refresh
/// token.
static LIVE: Mutex<Vec<Weak<Inner>>> = Mutex::new(Vec::new());

/// A token lifetime from the token endpoint, or `None` when absent or absurd (with a
/// warning).
pub(crate) fn token_lifetime(target: &str, field: &str, secs: Option<u64>) -> Option<Duration> {
    let secs = secs?;
    let d = Duration::from_secs(secs);
    if secs == 0 || d > MAX_TOKEN_LIFETIME {
        tracing::warn!(
            target = %target,
            field,
            value = secs,
            "the token endpoint sent an absurd lifetime; treating it as unknown"
        );
        return None;
    }
    Some(d)
}

impl OAuth {
    pub(crate) fn new(
        target: &str,
        token_url: Url,
        config: OAuthConfig,
        metrics: Arc<SelfMetrics>,
    ) -> Self {
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|w| w.strong_count() > 0);
        let same = live.iter().filter_map(Weak::upgrade).find(|i| {
            i.target == target
                && i.token_url == token_url
                && i.config == config
                && Arc::ptr_eq(&i.metrics, &metrics)
        });
        if let Some(inner) = same {
            return OAuth { inner };
        }
        let inner = Arc::new(Inner {
            target: target.to_string(),
            token_url,
            config,
            metrics,
            state: Arc::new(tokio::sync::Mutex::new(State::default())),
        });
        live.push(Arc::downgrade(&inner));
        OAuth { inner }
    }

    /// The configured secrets.
    pub(crate) fn secrets(&self) -> Vec<String> {
        vec![self.inner.config.client_secret.expose().to_string()]
    }

    /// Returns once no refresh is in flight.
    pub(crate) async fn settle(&self) {
        drop(self.inner.state.lock().await);
    }

    /// A valid access token, refreshing it first when it expires soon.
    pub(crate) async fn access_token(
        &self,
        client: &Client,
        ctx: &RequestCtx,
    ) -> Result<Secret, CollectError> {
        let mut state = self.inner.state.clone().lock_owned().await;
        if let Some(token) = state.fresh_access() {
            return Ok(token);
        }
        let inner = self.inner.clone();
        let client = client.clone();
        let ctx = ctx.clone();
        // Dropping this await (the collection aborted) leaves the task running: it holds the
        // state until the refresh is done and saved, and the next caller gets its result.
        tokio::spawn(async move {
            if state.unsaved {
                inner.save(&mut state).await?;
                if let Some(token) = state.fresh_access() {
                    return Ok(token);
                }
            }
            inner.refresh(&mut state, &client, &ctx).await
        })
        .await
        .unwrap_or_else(|e| {
            Err(CollectError::Credential(format!(
                "the token refresh task failed: {e}"
            )))
        })
    }

    /// Forgets `used` after the API rejected it, so the next call refreshes.
    pub(crate) async fn invalidate(&self, used: &Secret) {
        let mut state = self.inner.state.lock().await;
        if state.access.as_ref().is_some_and(|a| &a.token == used) {
            state.access = None;
        }
    }
}

impl Inner {
    /// The refresh token to use: the file's (another process or a person may have put a new
    /// one there), else the one in memory.
    async fn current_refresh_token(&self, state: &mut State) -> Result<Secret, CollectError> {
        let path = self.config.refresh_token_file.clone();
        let read = tokio::task::spawn_blocking(move || read_token_file(&path))
            .await
            .map_err(|e| format!("reading the refresh token file failed: {e}"))
            .and_then(|r| r.map_err(|e| e.to_string()));
        match (read, &state.refresh) {
            (Ok(r), _) => {
                state.refresh = Some(r.clone());
                Ok(r)
            }
            (Err(e), Some(r)) => {
                tracing::warn!(target = %self.target, error = %e, "using the refresh token in memory");
                Ok(r.clone())
            }
            (Err(e), None) => Err(CollectError::Credential(e)),
        }
    }

    async fn refresh(
        &self,
        state: &mut State,
        client: &Client,
        ctx: &RequestCtx,
    ) -> Result<Secret, CollectError> {
        let refresh = self.current_refresh_token(state).await?;
        let labels = |c: &str| credential_labels(&self.target, c);
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "refresh_token")
            .append_pair("client_id", &self.config.client_id)
            .append_pair("client_secret", self.config.client_secret.expose())
            .append_pair("refresh_token", refresh.expose())
            .finish();
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let request = Request {
            method: reqwest::Method::POST,
            url: self.token_url.clone(),
            headers,
            body: Some(Bytes::from(body)),
            tracking_header: Some("TrackingID"),
        };
        let result = async {
            let resp = client.send(ctx, request).await?;
            let t: TokenResponse = resp.json()?;
            Ok::<_, CollectError>(t)
        }
        .await;
        let t = match result {
            Ok(t) if !t.access_token.is_empty() => t,
            Ok(_) => {
                self.metrics
                    .credential_refresh_failures
                    .get_or_create(&labels("access_token"))
                    .inc();
                return Err(CollectError::Credential(
                    "token endpoint returned an empty access token".into(),
                ));
            }
            Err(e) => {
                self.metrics
                    .credential_refresh_failures
                    .get_or_create(&labels("access_token"))
                    .inc();
                return Err(CollectError::Credential(format!(
                    "refreshing the access token failed: {e}"
                )));
            }
        };
        let now = SystemTime::now();
        let lifetime = token_lifetime(&self.target, "expires_in", t.expires_in);
        let expires_at = lifetime.and_then(|l| now.checked_add(l));
        let assumed = DEFAULT_ACCESS_LIFETIME;
        state.access = Some(Access {
            token: Secret::new(t.access_token),
            expires_at: expires_at.unwrap_or(now + assumed),
            lifetime: lifetime.unwrap_or(assumed),
        });
        self.metrics
            .credential_refreshes
            .get_or_create(&labels("access_token"))
            .inc();
        if let Some(at) = expires_at {
            self.metrics
                .credential_expiry
                .get_or_create(&labels("access_token"))
                .set(unix(at));
        }
        let refresh_lifetime = token_lifetime(
            &self.target,
            "refresh_token_expires_in",
            t.refresh_token_expires_in,
        );
        if let Some(at) = refresh_lifetime.and_then(|l| now.checked_add(l)) {
            self.metrics
                .credential_expiry
                .get_or_create(&labels("refresh_token"))
                .set(unix(at));
        }
        if let Some(new) = t
            .refresh_token
            .filter(|r| !r.is_empty() && r != refresh.expose())
        {
            state.refresh = Some(Secret::new(new));
            state.unsaved = true;
            self.metrics
                .credential_refreshes
                .get_or_create(&labels("refresh_token"))
                .inc();
            self.save(state).await?;
            tracing::info!(target = %self.target, file = %self.config.refresh_token_file.display(), "saved the rotated refresh token");
        }
        Ok(state
            .access
            .as_ref()
            .map(|a| a.token.clone())
            .unwrap_or_else(|| Secret::new("")))
    }

    async fn save(&self, state: &mut State) -> Result<(), CollectError> {
        let Some(token) = state.refresh.clone() else {
            return Ok(());
        };
        let path = self.config.refresh_token_file.clone();
        let written = tokio::task::spawn_blocking(move || {
            write_token_file(&path, token.expose(), &mut |_| Ok(()))
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        match written {
            Ok(()) => {
                state.unsaved = false;
                Ok(())
            }
            Err(e) => {
                self.metrics
                    .credential_refresh_failures
                    .get_or_create(&credential_labels(&self.target, "refresh_token"))
                    .inc();
                Err(CollectError::Credential(format!(
                    "cannot save the rotated refresh token to {}: {e}; it is kept in memory and not used until saved",
                    self.config.refresh_token_file.display()
                )))
            }
        }
    }
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_lifetimes_are_unknown() {
        assert_eq!(token_lifetime("t", "expires_in", Some(u64::MAX)), None);
        assert_eq!(token_lifetime("t", "expires_in", Some(0)), None);
        assert_eq!(token_lifetime("t", "expires_in", None), None);
        assert_eq!(
            token_lifetime("t", "expires_in", Some(1_209_600)),
            Some(Duration::from_secs(1_209_600))
        );
    }
}
