//! Cisco Webex sources and the credentials they share.

use std::sync::Arc;

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION};
use url::Url;

use crate::config::{Secret, WebexCredentials};
use crate::metrics::SelfMetrics;
use crate::sources::{endpoint, CollectError};
use crate::upstream::{Client, Request, RequestCtx, Response, UpstreamError};

pub mod broadworks;
pub mod managed_orgs;
pub mod oauth;

use oauth::OAuth;

/// How requests to one Webex target authenticate: a static bearer token, or an OAuth
/// integration whose tokens the exporter refreshes. One per target, shared by its collectors.
pub struct WebexAuth {
    kind: AuthKind,
}

enum AuthKind {
    Static(Secret),
    OAuth(Box<OAuth>),
}

impl WebexAuth {
    pub fn new(
        target: &str,
        base_url: &Url,
        credentials: &WebexCredentials,
        metrics: Arc<SelfMetrics>,
    ) -> Self {
        let kind = match credentials {
            WebexCredentials::AccessToken(t) => AuthKind::Static(t.clone()),
            WebexCredentials::OAuth(cfg) => AuthKind::OAuth(Box::new(OAuth::new(
                target,
                endpoint(base_url, "access_token"),
                cfg.clone(),
                metrics,
            ))),
        };
        WebexAuth { kind }
    }

    pub fn bearer(token: Secret) -> Self {
        WebexAuth {
            kind: AuthKind::Static(token),
        }
    }

    /// The current access token, refreshed first when it is about to expire.
    async fn token(&self, client: &Client, ctx: &RequestCtx) -> Result<Secret, CollectError> {
        match &self.kind {
            AuthKind::Static(t) => Ok(t.clone()),
            AuthKind::OAuth(o) => o.access_token(client, ctx).await,
        }
    }

    /// GET `url` with the target's credentials. A 401 with an OAuth integration refreshes
    /// the access token and tries once more.
    pub async fn get(
        &self,
        client: &Client,
        ctx: &RequestCtx,
        url: &Url,
    ) -> Result<Response, CollectError> {
        let token = self.token(client, ctx).await?;
        match client.send(ctx, get_request(url, &token)).await {
            Err(e @ UpstreamError::Status { status: 401, .. }) => match &self.kind {
                AuthKind::OAuth(o) => {
                    tracing::info!(target = %ctx.target, "access token rejected; refreshing it");
                    o.invalidate(&token).await;
                    let token = self.token(client, ctx).await?;
                    Ok(client.send(ctx, get_request(url, &token)).await?)
                }
                AuthKind::Static(_) => Err(e.into()),
            },
            other => Ok(other?),
        }
    }
}

fn get_request<'a>(url: &Url, token: &Secret) -> Request<'a> {
    Request {
        method: reqwest::Method::GET,
        url: url.clone(),
        headers: bearer_headers(token),
        body: None,
        tracking_header: Some("TrackingID"),
    }
}

fn bearer_headers(token: &Secret) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(ACCEPT, HeaderValue::from_static("application/json"));
    if let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {}", token.expose())) {
        v.set_sensitive(true);
        h.insert(AUTHORIZATION, v);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_keeps_the_base_path() {
        let base = Url::parse("https://webexapis.com/v1").unwrap();
        assert_eq!(
            endpoint(&base, "broadworks/enterprises").as_str(),
            "https://webexapis.com/v1/broadworks/enterprises"
        );
        let base = Url::parse("http://127.0.0.1:8080/v1/").unwrap();
        assert_eq!(
            endpoint(&base, "broadworks/enterprises").as_str(),
            "http://127.0.0.1:8080/v1/broadworks/enterprises"
        );
    }

    #[test]
    fn auth_header_is_sensitive_and_not_in_debug() {
        let h = bearer_headers(&Secret::new("s3cr3t-token"));
        assert!(h[AUTHORIZATION].is_sensitive());
        assert!(!format!("{h:?}").contains("s3cr3t"));
    }
}
