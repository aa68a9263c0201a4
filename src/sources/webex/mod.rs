//! Cisco Webex sources and the credentials they share.

use std::collections::HashSet;
use std::sync::Arc;

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION};
use url::Url;

use crate::config::{Global, Secret};
use crate::metrics::SelfMetrics;
use crate::snapshot::{SampleSet as _, Table};
use crate::sources::families::select;
use crate::sources::{endpoint, CollectError, Job};
use crate::upstream::{
    display_url, Client, Request, RequestCtx, Response, SendOptions, UpstreamError,
};

pub mod broadworks;
pub(crate) mod config;
pub mod managed_orgs;
pub(crate) mod oauth;

use config::{WebexCredentials, WebexTarget};

use broadworks::Broadworks;
use managed_orgs::ManagedOrgs;
use oauth::OAuth;

/// The `credential` label values of this source's self-metrics: an OAuth integration's
/// tokens.
pub(crate) const CREDENTIALS: &[&str] = &["access_token", "refresh_token"];

/// This source's metric families, by collector.
pub(crate) fn families() -> [(&'static str, Table); 2] {
    [
        (
            broadworks::COLLECTOR,
            broadworks::Enterprises::default().families(),
        ),
        (
            managed_orgs::COLLECTOR,
            managed_orgs::ManagedOrgSet::default().families(),
        ),
    ]
}

/// A Webex target's jobs, one per enabled collector. They share the target's credentials,
/// so an OAuth refresh token is rotated by one owner.
pub(crate) fn jobs(w: &WebexTarget, global: &Global, metrics: &Arc<SelfMetrics>) -> Vec<Job> {
    let auth = Arc::new(WebexAuth::new(
        &w.name,
        &w.base_url,
        &w.credentials,
        metrics.clone(),
    ));
    let credentials: &'static [&'static str] = match w.credentials {
        WebexCredentials::AccessToken(_) => &[],
        WebexCredentials::OAuth(_) => CREDENTIALS,
    };
    let mut jobs = Vec::new();
    if let Some(b) = &w.broadworks {
        jobs.push(Job {
            collector: broadworks::COLLECTOR,
            interval: b.interval,
            tls: w.tls.clone(),
            source: select(
                Arc::new(Broadworks::new(w.base_url.clone(), auth.clone(), b.clone())),
                &w.metrics,
            ),
            credentials,
            credential_kinds: CREDENTIALS,
        });
    }
    if let Some(m) = &w.managed_orgs {
        jobs.push(Job {
            collector: managed_orgs::COLLECTOR,
            interval: m.interval,
            tls: w.tls.clone(),
            source: select(
                Arc::new(
                    ManagedOrgs::new(w.base_url.clone(), auth.clone(), m.admins.clone())
                        .with_stale_after(global.stale_after),
                ),
                &w.metrics,
            ),
            credentials,
            credential_kinds: CREDENTIALS,
        });
    }
    jobs
}

/// How requests to one Webex target authenticate: a static bearer token, or an OAuth
/// integration whose tokens the exporter refreshes. One per target, shared by its collectors.
pub(crate) struct WebexAuth {
    kind: AuthKind,
}

enum AuthKind {
    Static(Secret),
    OAuth(Box<OAuth>),
}

impl WebexAuth {
    pub(crate) fn new(
        target: &str,
        base_url: &Url,
        credentials: &WebexCredentials,
        metrics: Arc<SelfMetrics>,
    ) -> Self {
        let kind = match credentials {
            WebexCredentials::AccessToken(t) => {
                tracing::warn!(
                    target = %target,
                    "{STATIC_TOKEN_WARNING}"
                );
                AuthKind::Static(t.clone())
            }
            WebexCredentials::OAuth(cfg) => AuthKind::OAuth(Box::new(OAuth::new(
                target,
                endpoint(base_url, "access_token"),
                cfg.clone(),
                metrics,
            ))),
        };
        WebexAuth { kind }
    }

    #[cfg(test)]
    pub(crate) fn bearer(token: Secret) -> Self {
        WebexAuth {
            kind: AuthKind::Static(token),
        }
    }

    /// The configured secrets, to be blanked from upstream errors.
    pub(crate) fn secrets(&self) -> Vec<String> {
        match &self.kind {
            AuthKind::Static(t) => vec![t.expose().to_string()],
            AuthKind::OAuth(o) => o.secrets(),
        }
    }

    /// What the landing page should say about these credentials, if anything.
    pub(crate) fn note(&self) -> Option<&'static str> {
        match &self.kind {
            AuthKind::Static(_) => Some(STATIC_TOKEN_WARNING),
            AuthKind::OAuth(_) => None,
        }
    }

    /// Waits for a token refresh in flight, so that a target being stopped does not lose
    /// a rotated refresh token.
    pub(crate) async fn settle(&self) {
        if let AuthKind::OAuth(o) = &self.kind {
            o.settle().await;
        }
    }

    /// The current access token, refreshed first when it is about to expire.
    async fn token(&self, client: &Client, ctx: &RequestCtx) -> Result<Secret, CollectError> {
        match &self.kind {
            AuthKind::Static(t) => Ok(t.clone()),
            AuthKind::OAuth(o) => o.access_token(client, ctx).await,
        }
    }

    /// GET `url` with the target's credentials and `opts` for the requests. A 401 with an
    /// OAuth integration refreshes the access token and tries once more.
    pub(crate) async fn get_with(
        &self,
        client: &Client,
        ctx: &RequestCtx,
        url: &Url,
        opts: SendOptions<'_>,
    ) -> Result<Response, CollectError> {
        let token = self.token(client, ctx).await?;
        match client.send_with(ctx, get_request(url, &token), opts).await {
            Err(e @ UpstreamError::Status { status: 401, .. }) => match &self.kind {
                AuthKind::OAuth(o) => {
                    tracing::info!(target = %ctx.target, "access token rejected; refreshing it");
                    o.invalidate(&token).await;
                    let token = self.token(client, ctx).await?;
                    Ok(client
                        .send_with(ctx, get_request(url, &token), opts)
                        .await?)
                }
                AuthKind::Static(_) => Err(e.into()),
            },
            other => Ok(other?),
        }
    }
}

/// Logged, and shown on the landing page, for targets with a static access token.
pub(crate) const STATIC_TOKEN_WARNING: &str =
    "a static access_token is configured: a personal access \
     token lasts 12 hours, after which collection fails; use an OAuth integration (oauth:) for \
     unattended collection";

/// The smallest `max` a list is asked with after 504s on larger pages.
pub(crate) const MIN_PAGE_SIZE: usize = 10;

/// A Webex list read page by page along its `Link: rel="next"` headers.
pub(crate) struct Pages<'a> {
    /// What the list holds, for errors ("enterprises").
    pub(crate) what: &'a str,
    /// The target's configured base URL: next links must stay on its origin.
    pub(crate) base_url: &'a Url,
    /// The `max` to ask for, when the list takes one: halved after a 504 (the API's
    /// documented answer to "page too large") down to `MIN_PAGE_SIZE`.
    pub(crate) page_size: Option<usize>,
    pub(crate) max_pages: usize,
}

impl Pages<'_> {
    /// Reads the list from `first`. `fix` puts back query parameters a next link dropped;
    /// `on_page` takes one page and returns how many items it held. An empty page ends the
    /// list whatever its links say (the API has been seen to link past the end).
    pub(crate) async fn read(
        &self,
        auth: &WebexAuth,
        client: &Client,
        ctx: &RequestCtx,
        first: Url,
        fix: impl Fn(&mut Url),
        mut on_page: impl FnMut(&Response) -> Result<usize, CollectError>,
    ) -> Result<(), CollectError> {
        let origin = self.base_url.origin();
        let mut size = self.page_size;
        let mut url = first;
        fix(&mut url);
        set_page_size(&mut url, size);
        let mut seen = HashSet::new();
        for _ in 0..self.max_pages {
            seen.insert(url.to_string());
            let shrinkable = size.is_some_and(|s| s > MIN_PAGE_SIZE);
            let opts = SendOptions {
                no_retry: if shrinkable { &[504] } else { &[] },
            };
            let resp = match auth.get_with(client, ctx, &url, opts).await {
                Err(CollectError::Upstream(UpstreamError::Status { status: 504, .. }))
                    if shrinkable =>
                {
                    let smaller = size.map(|s| (s / 2).max(MIN_PAGE_SIZE));
                    tracing::info!(
                        collector = ctx.collector,
                        target = %ctx.target,
                        max = smaller.unwrap_or_default(),
                        "HTTP 504 on a page of {}; asking again for smaller pages",
                        self.what
                    );
                    size = smaller;
                    set_page_size(&mut url, size);
                    continue;
                }
                other => other?,
            };
            if on_page(&resp)? == 0 {
                return Ok(());
            }
            let Some(mut next) = resp.next_link() else {
                return Ok(());
            };
            if next.origin() != origin {
                return Err(CollectError::Payload(format!(
                    "{}: next link to another origin ({}) refused: credentials are only sent \
                     to the configured base_url ({})",
                    display_url(&resp.url),
                    next.origin().ascii_serialization(),
                    origin.ascii_serialization()
                )));
            }
            fix(&mut next);
            set_page_size(&mut next, size);
            if seen.contains(next.as_str()) {
                return Err(CollectError::Payload(format!(
                    "{}: next link points back to a page already read",
                    display_url(&next)
                )));
            }
            url = next;
        }
        Err(CollectError::Payload(format!(
            "more than {} pages of {}",
            self.max_pages, self.what
        )))
    }
}

/// Sets `max` to `size` when given; drops a `max=null` some next links carry either way.
fn set_page_size(url: &mut Url, size: Option<usize>) {
    let has_null = url.query_pairs().any(|(k, v)| k == "max" && v == "null");
    if size.is_none() && !has_null {
        return;
    }
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, v)| k != "max" || (size.is_none() && v != "null"))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut q = url.query_pairs_mut();
    q.clear();
    for (k, v) in &pairs {
        q.append_pair(k, v);
    }
    if let Some(size) = size {
        q.append_pair("max", &size.to_string());
    }
    drop(q);
    if url.query() == Some("") {
        url.set_query(None);
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
    fn page_size_replaces_max_and_drops_max_null() {
        let mut u = Url::parse("https://x/v1/l?cursor=abc&max=null").unwrap();
        set_page_size(&mut u, None);
        assert_eq!(u.as_str(), "https://x/v1/l?cursor=abc");
        let mut u = Url::parse("https://x/v1/l?max=null&cursor=abc&max=100").unwrap();
        set_page_size(&mut u, Some(50));
        assert_eq!(u.as_str(), "https://x/v1/l?cursor=abc&max=50");
        let mut u = Url::parse("https://x/v1/l?max=null").unwrap();
        set_page_size(&mut u, None);
        assert_eq!(u.as_str(), "https://x/v1/l");
        let mut u = Url::parse("https://x/v1/l?max=7").unwrap();
        set_page_size(&mut u, None);
        assert_eq!(u.as_str(), "https://x/v1/l?max=7");
    }

    #[test]
    fn auth_header_is_sensitive_and_not_in_debug() {
        let h = bearer_headers(&Secret::new("s3cr3t-token"));
        assert!(h[AUTHORIZATION].is_sensitive());
        assert!(!format!("{h:?}").contains("s3cr3t"));
    }
}
