//! The fake Webex API: BroadWorks enterprises, partner-managed orgs and the OAuth token
//! endpoint.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};

use super::{
    apply_fault, broadworks, garble, webex_error, Fault, OAuthOptions, RequestKind, SimState,
    Simulator,
};

/// Person ids starting with this answer like a Partner Full Admin.
pub(crate) const FULL_ADMIN_PREFIX: &str = "FULL-ADMIN";

pub(crate) struct WebexState {
    tokens: Mutex<Tokens>,
    /// Person ids whose managed-org lists answer 400 until further notice.
    failing_admins: Mutex<Vec<String>>,
}

struct Tokens {
    refresh: String,
    generation: u64,
    /// Issued access tokens and when they expire.
    access: Vec<(String, Instant)>,
    /// Authorization codes not yet exchanged, with the redirect URI and scopes each was
    /// issued for.
    codes: Vec<(String, String, Vec<String>)>,
    /// The scopes the user granted at `/authorize`; `None` until then (the start refresh
    /// token carries every scope).
    granted: Option<Vec<String>>,
    /// Access tokens issued under a grant, with its scopes.
    scoped: Vec<(String, Vec<String>)>,
}

/// The scopes the fake integration may ask for; like Webex, `/authorize` refuses others.
const INTEGRATION_SCOPES: [&str; 3] = [
    "spark-admin:broadworks_enterprises_read",
    "spark-admin:organizations_read",
    "spark:kms",
];

impl WebexState {
    pub(crate) fn new(o: &OAuthOptions) -> Self {
        WebexState {
            tokens: Mutex::new(Tokens {
                refresh: o.refresh_token.clone(),
                generation: 0,
                access: Vec::new(),
                codes: Vec::new(),
                granted: None,
                scoped: Vec::new(),
            }),
            failing_admins: Mutex::new(Vec::new()),
        }
    }
}

impl Simulator {
    /// The refresh token the fake token endpoint accepts now.
    pub fn current_refresh_token(&self) -> String {
        self.state
            .webex
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .refresh
            .clone()
    }

    /// Makes the managed-org list of `person_id` fail (HTTP 400) until `heal_admin`.
    pub fn fail_admin(&self, person_id: &str) {
        self.state
            .webex
            .failing_admins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(person_id.to_string());
    }

    pub fn heal_admin(&self, person_id: &str) {
        self.state
            .webex
            .failing_admins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|p| p != person_id);
    }

    /// Revokes every issued access token, as an admin revoking the integration's sessions
    /// would: the next API call answers 401.
    pub fn revoke_access_tokens(&self) {
        self.state
            .webex
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .access
            .clear();
    }
}

pub(super) fn routes() -> Router<Arc<SimState>> {
    Router::new()
        .route("/v1/broadworks/enterprises", get(list_enterprises))
        .route("/v1/partner/organizations", get(partner_organizations))
        .route("/v1/access_token", post(access_token))
        .route("/v1/authorize", get(authorize))
}

/// Whether the bearer token may use `scope`: tokens issued after a user granted fewer scopes
/// at `/authorize` may not use the others, and Webex answers 403 as below.
fn scope_ok(state: &SimState, headers: &HeaderMap, scope: &str) -> bool {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let tokens = state.webex.tokens.lock().unwrap_or_else(|e| e.into_inner());
    tokens
        .scoped
        .iter()
        .find(|(t, _)| t == token)
        .is_none_or(|(_, scopes)| scopes.iter().any(|s| s == scope))
}

const MISSING_SCOPE: &str = "The server understood the request, but refused to fulfill it \
    because the access token is missing required scopes or the user is missing required roles \
    or licenses.";

/// The partner whose token the request carries: partner 0 for the static token and for an
/// access token issued by the fake token endpoint and not expired, partner `k` for the
/// static token followed by `-k` (see `Options::webex_partners`).
fn partner(state: &SimState, headers: &HeaderMap) -> Option<usize> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))?;
    if token == state.opts.webex_token {
        return Some(0);
    }
    if let Some(k) = token
        .strip_prefix(state.opts.webex_token.as_str())
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|k| k.parse::<usize>().ok())
        .filter(|k| (1..state.opts.webex_partners).contains(k))
    {
        return Some(k);
    }
    let now = Instant::now();
    let tokens = state.webex.tokens.lock().unwrap_or_else(|e| e.into_inner());
    tokens
        .access
        .iter()
        .any(|(t, exp)| t == token && *exp > now)
        .then_some(0)
}

async fn list_enterprises(
    State(state): State<Arc<SimState>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let fault = state.take_fault(
        RequestKind::BroadworksEnterprises,
        uri.query().unwrap_or(""),
    );
    if let Some(f) = &fault {
        if let Some(r) = apply_fault(f).await {
            return r;
        }
    }
    if let Some(Fault::EchoCredentials) = &fault {
        return echo_credentials(&headers, None);
    }
    let Some(partner) = partner(&state, &headers) else {
        return webex_error(StatusCode::UNAUTHORIZED, "Invalid access token");
    };
    if !scope_ok(&state, &headers, "spark-admin:broadworks_enterprises_read") {
        return webex_error(StatusCode::FORBIDDEN, MISSING_SCOPE);
    }
    let max = match q.get("max").map(|m| m.parse::<usize>()) {
        None => 100,
        Some(Ok(m)) if (1..=1000).contains(&m) => m,
        Some(_) => return webex_error(StatusCode::BAD_REQUEST, "max must be between 1 and 1000"),
    };
    if let Some(Fault::GatewayTimeoutAbove(limit)) = &fault {
        if max > *limit {
            return webex_error(StatusCode::GATEWAY_TIMEOUT, "Gateway Timeout");
        }
    }
    let cursor: usize = q.get("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
    let prefix = q.get("startsWith").map(String::as_str).unwrap_or("");
    let now = SystemTime::now();
    let total = state.enterprises.load(Ordering::Relaxed);
    let ids: Vec<usize> = (partner * total..(partner + 1) * total)
        .filter(|&i| prefix.is_empty() || broadworks::sp_enterprise_id(i).starts_with(prefix))
        .collect();
    let empty = matches!(fault, Some(Fault::EmptyPageWithNext));
    let page = ids.iter().skip(cursor).take(if empty { 0 } else { max });
    let items: Vec<String> = page
        .map(|&i| broadworks::enterprise_json(&state, i, now))
        .collect();
    // Like the real API as reported by SDK authors, the next link carries only the cursor,
    // not the first request's other parameters.
    let next = (cursor + max < ids.len())
        .then(|| format!("/v1/broadworks/enterprises?cursor={}", cursor + max));
    items_page(fault.as_ref(), &items, &headers, next)
}

/// A 400 quoting the credentials the request carried.
fn echo_credentials(headers: &HeaderMap, form: Option<&HashMap<String, String>>) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let field = |k: &str| {
        form.and_then(|f| f.get(k))
            .map(String::as_str)
            .unwrap_or("")
    };
    webex_error(
        StatusCode::BAD_REQUEST,
        &format!(
            "Rejected request with authorization '{bearer}', client_secret '{}', refresh_token '{}'",
            field("client_secret"),
            field("refresh_token")
        ),
    )
}

/// A Webex list page, `{"items": [...]}`, garbled as `fault` says, with a `Link` to `next`
/// (a path and query on this host) when there is one.
fn items_page(
    fault: Option<&Fault>,
    items: &[String],
    headers: &HeaderMap,
    next: Option<String>,
) -> Response {
    let next = match fault {
        // A next link even on the last page: the client must not follow it anyway.
        Some(Fault::NextLinkOrigin(_)) => {
            Some(next.unwrap_or_else(|| "/v1/broadworks/enterprises?cursor=0".into()))
        }
        Some(Fault::MaxNullInNext) => next.map(|n| format!("{n}&max=null")),
        _ => next,
    };
    let body = garble(fault, format!("{{\"items\":[{}]}}", items.join(",")));
    let mut resp = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    if let Some(next) = next {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1");
        let origin = match fault {
            Some(Fault::NextLinkOrigin(o)) => o.clone(),
            _ => format!("http://{host}"),
        };
        if let Ok(v) = format!("<{origin}{next}>; rel=\"next\"").parse() {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    resp
}

fn mix(a: u64, b: u64) -> u64 {
    let mut z = a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

async fn partner_organizations(
    State(state): State<Arc<SimState>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let fault = state.take_fault(RequestKind::PartnerOrganizations, uri.query().unwrap_or(""));
    if let Some(f) = &fault {
        if let Some(r) = apply_fault(f).await {
            return r;
        }
    }
    if let Some(Fault::EchoCredentials) = &fault {
        return echo_credentials(&headers, None);
    }
    if partner(&state, &headers).is_none() {
        return webex_error(StatusCode::UNAUTHORIZED, "Invalid access token");
    }
    if !scope_ok(&state, &headers, "spark-admin:organizations_read") {
        return webex_error(StatusCode::FORBIDDEN, MISSING_SCOPE);
    }
    let Some(person) = q.get("managedBy").filter(|p| !p.is_empty()) else {
        return webex_error(StatusCode::BAD_REQUEST, "managedBy is required");
    };
    let failing = state
        .webex
        .failing_admins
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(person);
    if failing {
        return webex_error(StatusCode::BAD_REQUEST, "Simulated failure for this admin");
    }
    if person.starts_with(FULL_ADMIN_PREFIX) {
        return webex_error(
            StatusCode::BAD_REQUEST,
            "User is a Partner Full Admin and already has access to all customers.",
        );
    }
    // Each admin manages a stable set of 5 to 44 customer orgs; an org joins or leaves
    // every hour.
    let seed = person.bytes().fold(7u64, |h, b| mix(h, b as u64));
    let hour = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        / 3600;
    let count = 5 + (seed % 40) as usize + (hour % 2) as usize;
    let max: usize = q
        .get("max")
        .and_then(|m| m.parse().ok())
        .filter(|m| *m > 0)
        // Small pages, so clients meet the paging the API may use.
        .unwrap_or(4);
    let cursor: usize = q.get("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
    let end = if matches!(fault, Some(Fault::EmptyPageWithNext)) {
        cursor
    } else {
        count.min(cursor + max)
    };
    let items: Vec<String> = (cursor..end)
        .map(|i| {
            let org = format!(
                "Y2lzY29zcGFyazovL3VzL09SR0FOSVpBVElPTi9{:016x}",
                mix(seed, i as u64)
            );
            let role = if i % 5 == 0 {
                "cGFydG5lcl9mdWxsX2FkbWlu"
            } else {
                "aWQ6cGFydG5lcl9hZG1pbg"
            };
            format!("{{\"orgId\":\"{org}\",\"role\":\"{role}\"}}")
        })
        .collect();
    let next = (cursor + max < count).then(|| {
        format!(
            "/v1/partner/organizations?managedBy={}&max={max}&cursor={}",
            url::form_urlencoded::byte_serialize(person.as_bytes()).collect::<String>(),
            cursor + max
        )
    });
    items_page(fault.as_ref(), &items, &headers, next)
}

/// The consent page, already approved: redirects the browser back to the client with a code,
/// or with `error` as Webex does for a bad request.
async fn authorize(
    State(state): State<Arc<SimState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let o = &state.opts.oauth;
    let field = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    let Ok(mut redirect) = url::Url::parse(field("redirect_uri")) else {
        return webex_error(
            StatusCode::BAD_REQUEST,
            "redirect_uri is missing or invalid",
        );
    };
    if field("client_id") != o.client_id {
        return webex_error(StatusCode::BAD_REQUEST, "unknown client_id");
    }
    let scopes: Vec<&str> = field("scope").split_whitespace().collect();
    let error = if field("response_type") != "code" {
        Some("unsupported_response_type")
    } else if scopes.is_empty() || scopes.iter().any(|s| !INTEGRATION_SCOPES.contains(s)) {
        Some("invalid_scope")
    } else {
        None
    };
    match error {
        Some(e) => {
            redirect.query_pairs_mut().append_pair("error", e);
        }
        None => {
            let code = format!("sim-code-{:016x}", fastrand::u64(..));
            let mut tokens = state.webex.tokens.lock().unwrap_or_else(|e| e.into_inner());
            let scopes = scopes.iter().map(|s| s.to_string()).collect();
            tokens
                .codes
                .push((code.clone(), field("redirect_uri").to_string(), scopes));
            redirect.query_pairs_mut().append_pair("code", &code);
        }
    }
    redirect
        .query_pairs_mut()
        .append_pair("state", field("state"));
    (
        StatusCode::FOUND,
        [(header::LOCATION, redirect.to_string())],
    )
        .into_response()
}

async fn access_token(
    State(state): State<Arc<SimState>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let fault = state.take_fault(RequestKind::AccessToken, uri.query().unwrap_or(""));
    if let Some(f) = &fault {
        if let Some(r) = apply_fault(f).await {
            return r;
        }
    }
    if let Some(Fault::EchoCredentials) = &fault {
        return echo_credentials(&headers, Some(&form));
    }
    let o = &state.opts.oauth;
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let grant = field("grant_type");
    if grant != "refresh_token" && grant != "authorization_code" {
        return webex_error(StatusCode::BAD_REQUEST, "unsupported grant_type");
    }
    if field("client_id") != o.client_id || field("client_secret") != o.client_secret {
        return webex_error(StatusCode::UNAUTHORIZED, "invalid client credentials");
    }
    // The token lock is released before any wait below.
    let body = 'issue: {
        let mut tokens = state.webex.tokens.lock().unwrap_or_else(|e| e.into_inner());
        if grant == "authorization_code" {
            // A code works once, and only with the redirect URI it was issued for.
            let issued = tokens
                .codes
                .iter()
                .position(|(c, r, _)| c == field("code") && r == field("redirect_uri"));
            match issued {
                Some(i) => {
                    let (_, _, scopes) = tokens.codes.remove(i);
                    tokens.granted = Some(scopes);
                }
                None => {
                    break 'issue Err(webex_error(
                        StatusCode::BAD_REQUEST,
                        "invalid authorization code or redirect_uri",
                    ))
                }
            }
        } else if field("refresh_token") != tokens.refresh {
            break 'issue Err(webex_error(
                StatusCode::BAD_REQUEST,
                "invalid or revoked refresh token",
            ));
        }
        tokens.generation += 1;
        let generation = tokens.generation;
        if o.rotate || grant == "authorization_code" {
            tokens.refresh = format!("sim-refresh-{generation}-{:016x}", fastrand::u64(..));
        }
        let access = format!("sim-access-{generation}-{:016x}", fastrand::u64(..));
        let now = Instant::now();
        tokens.access.retain(|(_, exp)| *exp > now);
        tokens
            .access
            .push((access.clone(), now + o.access_token_lifetime));
        if let Some(granted) = tokens.granted.clone() {
            tokens.scoped.push((access.clone(), granted));
        }
        let Tokens {
            access: live,
            scoped,
            ..
        } = &mut *tokens;
        scoped.retain(|(t, _)| live.iter().any(|(l, _)| l == t));
        let expires_in = match &fault {
            Some(Fault::ExpiresIn(s)) => *s,
            _ => o.access_token_lifetime.as_secs(),
        };
        Ok(serde_json::json!({
            "access_token": access,
            "expires_in": expires_in,
            "refresh_token": tokens.refresh,
            "refresh_token_expires_in": o.refresh_token_lifetime.as_secs(),
            "token_type": "Bearer",
            "scope": "spark-admin:broadworks_enterprises_read spark-admin:organizations_read",
        }))
    };
    let body = match body {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Some(Fault::Held(d)) = &fault {
        tokio::time::sleep(*d).await;
    }
    let body = garble(fault.as_ref(), body.to_string());
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use crate::simulator::{Options, Simulator};

    /// The `spEnterpriseId`s of every enterprise the token lists, or the HTTP status.
    async fn enterprises(sim: &Simulator, token: &str) -> Result<Vec<String>, u16> {
        let resp = reqwest::Client::new()
            .get(format!(
                "{}/broadworks/enterprises?max=1000",
                sim.webex_base_url()
            ))
            .bearer_auth(token)
            .send()
            .await
            .expect("simulator answers");
        if !resp.status().is_success() {
            return Err(resp.status().as_u16());
        }
        let body = resp.text().await.expect("body arrives");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
        Ok(v["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|e| e["spEnterpriseId"].as_str().expect("id").to_string())
            .collect())
    }

    #[tokio::test]
    async fn each_partner_token_lists_its_own_enterprises() {
        let sim = Simulator::start(Options {
            enterprises: 7,
            webex_partners: 3,
            ..Options::default()
        })
        .await
        .unwrap();
        let token = sim.webex_token().to_string();
        let mut seen = std::collections::HashSet::new();
        for t in [token.clone(), format!("{token}-1"), format!("{token}-2")] {
            let ids = enterprises(&sim, &t).await.unwrap();
            assert_eq!(ids.len(), 7, "{t}: {ids:?}");
            for id in ids {
                assert!(seen.insert(id.clone()), "{id} listed for two partners");
            }
        }
        // Only the configured partners exist.
        for t in [
            format!("{token}-3"),
            format!("{token}-0"),
            format!("{token}-x"),
        ] {
            assert_eq!(enterprises(&sim, &t).await, Err(401), "{t}");
        }
    }
}
