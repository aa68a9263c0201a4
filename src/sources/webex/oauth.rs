//! Webex integration tokens: refresh before expiry and on 401, and persist a rotated refresh
//! token to disk before it is used, so a crash or restart never loses access.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE};
use serde::Deserialize;
use url::Url;

use crate::config::{OAuthConfig, Secret};
use crate::metrics::{credential_labels, SelfMetrics};
use crate::sources::CollectError;
// Shared with the Commvault access-token refresh; re-exported so callers keep their paths.
pub use crate::sources::token_file::{read_token_file, write_token_file, Step};
use crate::upstream::{Client, Request, RequestCtx};

/// Never refresh earlier than this before expiry, however long the token lives.
const MIN_REFRESH_MARGIN: Duration = Duration::from_secs(300);

pub struct OAuth {
    target: String,
    token_url: Url,
    config: OAuthConfig,
    metrics: Arc<SelfMetrics>,
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The refresh token in force; read from the file on first use.
    refresh: Option<Secret>,
    access: Option<Access>,
    /// A rotated refresh token that could not be written yet: nothing is used until it is.
    unsaved: bool,
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

impl OAuth {
    pub fn new(
        target: &str,
        token_url: Url,
        config: OAuthConfig,
        metrics: Arc<SelfMetrics>,
    ) -> Self {
        OAuth {
            target: target.to_string(),
            token_url,
            config,
            metrics,
            state: tokio::sync::Mutex::new(State::default()),
        }
    }

    /// A valid access token, refreshing it first when it expires soon.
    pub async fn access_token(
        &self,
        client: &Client,
        ctx: &RequestCtx,
    ) -> Result<Secret, CollectError> {
        let mut state = self.state.lock().await;
        if state.unsaved {
            self.save(&mut state)?;
        }
        if let Some(a) = &state.access {
            let margin = (a.lifetime / 10).max(MIN_REFRESH_MARGIN);
            if SystemTime::now() + margin < a.expires_at {
                return Ok(a.token.clone());
            }
        }
        self.refresh(&mut state, client, ctx).await
    }

    /// Forgets `used` after the API rejected it, so the next call refreshes.
    pub async fn invalidate(&self, used: &Secret) {
        let mut state = self.state.lock().await;
        if state.access.as_ref().is_some_and(|a| &a.token == used) {
            state.access = None;
        }
    }

    async fn refresh(
        &self,
        state: &mut State,
        client: &Client,
        ctx: &RequestCtx,
    ) -> Result<Secret, CollectError> {
        let refresh = match &state.refresh {
            Some(r) => r.clone(),
            None => {
                let r = read_token_file(&self.config.refresh_token_file)
                    .map_err(CollectError::Credential)?;
                state.refresh = Some(r.clone());
                r
            }
        };
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
        let lifetime = Duration::from_secs(t.expires_in.unwrap_or(3600));
        state.access = Some(Access {
            token: Secret::new(t.access_token),
            expires_at: now + lifetime,
            lifetime,
        });
        self.metrics
            .credential_refreshes
            .get_or_create(&labels("access_token"))
            .inc();
        self.metrics
            .credential_expiry
            .get_or_create(&labels("access_token"))
            .set(unix(now + lifetime));
        if let Some(secs) = t.refresh_token_expires_in {
            self.metrics
                .credential_expiry
                .get_or_create(&labels("refresh_token"))
                .set(unix(now + Duration::from_secs(secs)));
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
            self.save(state)?;
            tracing::info!(target = %self.target, file = %self.config.refresh_token_file.display(), "saved the rotated refresh token");
        }
        Ok(state
            .access
            .as_ref()
            .map(|a| a.token.clone())
            .unwrap_or_else(|| Secret::new("")))
    }

    fn save(&self, state: &mut State) -> Result<(), CollectError> {
        let Some(token) = &state.refresh else {
            return Ok(());
        };
        match write_token_file(&self.config.refresh_token_file, token.expose(), &mut |_| {
            Ok(())
        }) {
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
