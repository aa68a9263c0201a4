//! The fake VOSS Automate API: `GET /api/relation/SparkCustomer/` with HTTP Basic auth and
//! `skip`/`limit` paging, in the body shape of the vendor's list example.
//!
//! Customers are derived from their index and the wall clock. Their Webex access and refresh
//! tokens count down to an expiry and are renewed when they reach it (a new expiry and new
//! token strings), except one access token that VOSS failed to refresh and that stays
//! expired. Some customers were never authorized (no expiry fields) or have blank ones.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use serde_json::{json, Value};

use super::{apply_fault, garble, RequestKind, SimState, Simulator};

/// Every `token` and `refresh_token` the fake serves starts with this (base64 of
/// `demo-voss-secret`), so tests can look for leaks of any of them.
pub const SECRET_MARKER: &str = "ZGVtby12b3NzLXNlY3JldA";
/// `limit` when a request has none (unconfirmed for the real API).
pub(crate) const DEFAULT_LIMIT: usize = 50;

#[derive(Debug, Clone)]
pub struct VossOptions {
    /// SparkCustomers under `hierarchy`.
    pub customers: usize,
    /// The HTTP Basic credentials the fake accepts.
    pub username: String,
    pub password: String,
    /// The provider hierarchy node the customers live under (dotted path).
    pub hierarchy: String,
    /// The largest `limit` honoured; VOSS reports 2000.
    pub maximum_limit: usize,
}

impl Default for VossOptions {
    fn default() -> Self {
        VossOptions {
            customers: 12,
            username: "monitor".into(),
            password: "demo-voss-password".into(),
            hierarchy: "sys.hcs.CS-P".into(),
            maximum_limit: 2000,
        }
    }
}

pub(crate) struct VossState {
    /// Overrides `VossOptions::customers` once set; `usize::MAX` while unset.
    customers: AtomicUsize,
}

impl Default for VossState {
    fn default() -> Self {
        VossState {
            customers: AtomicUsize::new(usize::MAX),
        }
    }
}

impl Simulator {
    /// Changes how many SparkCustomers exist; the ones past the new count vanish.
    pub fn set_voss_customers(&self, n: usize) {
        self.state.voss.customers.store(n, Ordering::Relaxed);
    }

    /// Every non-empty `token` and `refresh_token` value served now, for leak tests.
    pub fn voss_secrets(&self) -> Vec<String> {
        let now = SystemTime::now();
        (0..customer_count(&self.state))
            .flat_map(|i| {
                let c = customer(&self.state, i, now);
                [c.token, c.refresh_token]
            })
            .filter(|s| !s.is_empty())
            .collect()
    }
}

pub(super) fn routes() -> Router<Arc<SimState>> {
    Router::new()
        .route("/api/relation/SparkCustomer/", get(list_customers))
        .route("/api/relation/SparkCustomer", get(list_customers))
}

fn customer_count(state: &SimState) -> usize {
    match state.voss.customers.load(Ordering::Relaxed) {
        usize::MAX => state.opts.voss.customers,
        n => n,
    }
}

/// A stable pseudo-random number for `(a, b)` (splitmix64).
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_add(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const NAMES: [&str; 12] = [
    "AAAGlobal",
    "AB_Group",
    "Acme Corp",
    "Zürich \"Nord\" AG",
    "Bäckerei Müller",
    "Contoso",
    "Globex",
    "Initech",
    "Umbrella Health",
    "Stark Industries",
    "Wayne Enterprises",
    "Tyrell",
];
const RESELLERS: [&str; 3] = ["CS-NB", "CS-AB", "CS-EU"];

fn name(i: usize) -> String {
    match i / NAMES.len() {
        0 => NAMES[i % NAMES.len()].to_string(),
        n => format!("{} {}", NAMES[i % NAMES.len()], n + 1),
    }
}

/// A 24-hex-digit object id, like VOSS pkids.
fn object_id(i: usize, salt: u64) -> String {
    format!(
        "65e0{:012x}{:08x}",
        mix(i as u64, salt) >> 16,
        mix(i as u64, salt + 1) as u32
    )
}

fn ts(secs: u64, micros: u64) -> String {
    humantime::format_rfc3339_micros(
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros),
    )
    .to_string()
}

/// A token that is renewed whenever it would expire: its expiry stays fixed within a cycle
/// of `lo..hi` seconds and the time left cycles from `hi` down to `lo`. Returns the expiry
/// (Unix seconds) and the cycle number.
fn renewed(now: u64, seed: u64, lo: u64, hi: u64) -> (u64, u64) {
    let span = hi - lo;
    let phase = seed % span;
    let cycle = (now + phase) / span;
    ((cycle + 1) * span - phase + lo, cycle)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    /// Fields absent: the customer was never authorized.
    Missing,
    /// Fields present but empty.
    Blank,
    Set,
}

struct SimCustomer {
    pkid: String,
    name: String,
    data: Value,
    token: String,
    refresh_token: String,
}

const HOUR: u64 = 3600;
const DAY: u64 = 86_400;

fn customer(state: &SimState, i: usize, now: SystemTime) -> SimCustomer {
    let o = &state.opts.voss;
    let unix = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let seed = mix(i as u64, 11);
    let name = name(i);
    let node: String = name
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { '_' })
        .collect();
    let hierarchy_path = format!("{}.{}.{node}", o.hierarchy, RESELLERS[i % RESELLERS.len()]);
    let org = format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        mix(seed, 1) as u32,
        mix(seed, 2) as u16,
        mix(seed, 3) % 0x1000,
        mix(seed, 4) % 0x1000,
        mix(seed, 5) >> 16
    );
    // Webex ids: unpadded base64 of `ciscospark://us/ORGANIZATION/<uuid>`.
    let account_number = base64::engine::general_purpose::STANDARD_NO_PAD
        .encode(format!("ciscospark://us/ORGANIZATION/{org}"));
    let expiry = match i % 6 {
        4 => Expiry::Missing,
        5 => Expiry::Blank,
        _ => Expiry::Set,
    };
    // Access tokens: one already expired (VOSS failed to refresh it), some due within a day,
    // the rest within two weeks. Refresh tokens: some due within 3 days, some within 14.
    let (access, access_cycle) = match i % 6 {
        _ if i == 1 => {
            let epoch = state
                .epoch
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            (epoch.saturating_sub(3 * HOUR + 17 * 60), 0)
        }
        2 => renewed(unix, seed, 30 * 60, 23 * HOUR),
        1 => renewed(unix, seed, DAY, 7 * DAY),
        _ => renewed(unix, seed, 2 * DAY, 14 * DAY),
    };
    let (refresh, refresh_cycle) = match i % 6 {
        1 => renewed(unix, seed >> 7, 8 * DAY, 14 * DAY),
        2 => renewed(unix, seed >> 7, DAY, 3 * DAY),
        _ => renewed(unix, seed >> 7, 30 * DAY, 90 * DAY),
    };
    let secret = |kind: u64, cycle: u64| {
        format!(
            "{SECRET_MARKER}{:016x}{:016x}_P0A1_{org}",
            mix(seed ^ kind, cycle),
            mix(seed, cycle ^ kind)
        )
    };
    let (token, refresh_token) = match expiry {
        Expiry::Set => (secret(1, access_cycle), secret(2, refresh_cycle)),
        _ => (String::new(), String::new()),
    };
    let mut data = json!({
        "name": name,
        "account_email": format!("webex-admin@{}.example.com", node.to_lowercase()),
        "pkid": object_id(i, 3),
        "account_number_external": account_number,
        "token": token,
        "account_number": account_number,
        "hierarchy_friendly_name": format!("{name} (Customer)"),
        "refresh_token": refresh_token,
        "hierarchy_path": hierarchy_path,
        "default_calling_behaviour": "Calling in Webex App",
    });
    match expiry {
        Expiry::Set => {
            data["access_token_expires"] = ts(access, mix(seed, 21) % 1_000_000).into();
            data["refresh_token_expires"] = ts(refresh, mix(seed, 22) % 1_000_000).into();
        }
        Expiry::Blank => {
            data["access_token_expires"] = "".into();
            data["refresh_token_expires"] = "".into();
        }
        Expiry::Missing => {}
    }
    if expiry != Expiry::Missing {
        data["dirsync_enabled"] = (i % 3 != 1).into();
    }
    SimCustomer {
        pkid: object_id(i, 1),
        name,
        data,
        token,
        refresh_token,
    }
}

/// The resource as the list shows it, with the usual metadata.
fn resource(c: SimCustomer, provider_pkid: &str) -> Value {
    let href = format!("/api/relation/SparkCustomer/{}/", c.pkid);
    let action = |key: &str, class: &str, method: &str, title: &str, path: &str| {
        json!({ key: {
            "support_async": method != "GET",
            "class": class,
            "href": format!("{href}{path}"),
            "method": method,
            "title": title,
        }})
    };
    json!({
        "pkid": c.pkid,
        "meta": {
            "tags": [],
            "cached": true,
            "title": c.name,
            "business_key": {},
            "schema_version": "2.4",
            "summary": "false",
            "references": {
                "device": [{"pkid": "", "href": ""}],
                "owner": [{"pkid": ""}],
                "self": [{"pkid": c.pkid, "href": href}],
                "parent": [{"pkid": provider_pkid, "href": format!("/api/data/HierarchyNode/{provider_pkid}")}],
                "foreign_key": [],
            },
            "actions": [
                action("update", "update", "PUT", "Modify", ""),
                action("remove", "delete", "DELETE", "Delete", ""),
                action("get", "get", "GET", "Get", ""),
                action("RefreshAccessToken", "custom", "POST", "Refresh Access Token", "+RefreshAccessToken/"),
            ],
            "model_type": "relation/SparkCustomer",
            "path": [provider_pkid, c.pkid],
            "api_version": "21.2",
            "tagged_versions": [],
        },
        "data": c.data,
    })
}

/// Whether `path` is `node` or below it.
fn at_or_below(path: &str, node: &str) -> bool {
    path == node
        || path
            .strip_prefix(node)
            .is_some_and(|rest| rest.starts_with('.'))
}

fn basic_auth_ok(state: &SimState, headers: &HeaderMap) -> bool {
    let Some((scheme, credentials)) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
    else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(credentials.trim()) else {
        return false;
    };
    let o = &state.opts.voss;
    decoded == format!("{}:{}", o.username, o.password).as_bytes()
}

fn voss_error(status: StatusCode, message: &str) -> Response {
    let body = json!({"success": false, "code": status.as_u16(), "message": message});
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn list_customers(
    State(state): State<Arc<SimState>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let fault = state.take_fault(RequestKind::VossSparkCustomers, uri.query().unwrap_or(""));
    if let Some(f) = &fault {
        if let Some(r) = apply_fault(f).await {
            return r;
        }
    }
    if !basic_auth_ok(&state, &headers) {
        let mut r = voss_error(
            StatusCode::UNAUTHORIZED,
            "Authentication credentials were not provided or are invalid.",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"VOSS Automate\""),
        );
        return r;
    }
    let o = &state.opts.voss;
    let Some(hierarchy) = q.get("hierarchy").filter(|h| !h.is_empty()) else {
        return voss_error(
            StatusCode::BAD_REQUEST,
            "The hierarchy parameter is required.",
        );
    };
    // Known nodes: the provider node, its ancestors and everything below it.
    if !at_or_below(hierarchy, o.hierarchy.as_str()) && !at_or_below(&o.hierarchy, hierarchy) {
        return voss_error(
            StatusCode::NOT_FOUND,
            &format!("Hierarchy node not found: {hierarchy}"),
        );
    }
    let number = |key: &str, default: usize| match q.get(key) {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| format!("{key} must be a non-negative integer")),
    };
    let (skip, limit) = match (number("skip", 0), number("limit", DEFAULT_LIMIT)) {
        (Ok(skip), Ok(0)) => (skip, DEFAULT_LIMIT),
        (Ok(skip), Ok(limit)) => (skip, limit.min(o.maximum_limit.max(1))),
        (Err(e), _) | (_, Err(e)) => return voss_error(StatusCode::BAD_REQUEST, &e),
    };

    let now = SystemTime::now();
    let mut customers: Vec<SimCustomer> = (0..customer_count(&state))
        .map(|i| customer(&state, i, now))
        .filter(|c| {
            c.data["hierarchy_path"]
                .as_str()
                .is_some_and(|p| at_or_below(p, hierarchy))
        })
        .collect();
    customers.sort_by(|a, b| a.name.cmp(&b.name));
    let total = customers.len();
    let provider_pkid = object_id(usize::MAX, 9);
    let resources: Vec<Value> = customers
        .into_iter()
        .skip(skip)
        .take(limit)
        .map(|c| resource(c, &provider_pkid))
        .collect();
    let body = json!({
        "operations": [
            "field_display_policy", "configuration_template", "help", "get",
            "export_bulkload_template", "move", "list", "update", "remove", "add",
            "bulk_update", "export"
        ],
        "pagination": {
            "direction": "asc",
            "order_by": "name",
            "maximum_limit": o.maximum_limit,
            "skip": skip,
            "current": format!(
                "/api/relation/SparkCustomer/?skip={skip}&limit={limit}&order_by=name&direction=asc&traversal=default"
            ),
            "limit": limit,
            "total_limit": null,
            "total": total,
        },
        "meta": {
            "tags": [],
            "cached": true,
            "title": "",
            "business_key": {},
            "schema_version": "1.2.7",
            "references": {
                "self": [{"pkid": null, "href": "/api/relation/SparkCustomer/None/"}],
                "children": [],
                "parent": [{"pkid": provider_pkid, "href": format!("/api/data/HierarchyNode/{provider_pkid}")}],
                "foreign_key": [],
            },
            "model_type": "relation/SparkCustomer",
            "summary_attrs": [
                {"name": "name", "title": "Customer Name"},
                {"name": "account_number_external", "title": "Organization Account Number"},
                {"name": "account_email", "title": "Admin Account Email"},
                {"name": "dirsync_enabled", "title": "Directory Synchronization Enabled"},
                {"allow_filtering": true, "name": "hierarchy_friendly_name", "title": "Located At"},
            ],
            "api_version": "21.2",
            "tagged_versions": [],
        },
        "resources": resources,
    });
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
    use super::*;
    use crate::simulator::{Fault, Options};

    fn unix(s: &str) -> f64 {
        crate::sources::parse_timestamp(s).expect("timestamp")
    }

    async fn get(sim: &Simulator, query: &str, auth: Option<(&str, &str)>) -> (u16, String) {
        let mut req = reqwest::Client::new().get(format!(
            "{}/api/relation/SparkCustomer/?{query}",
            sim.voss_base_url()
        ));
        if let Some((u, p)) = auth {
            req = req.basic_auth(u, Some(p));
        }
        let resp = req.send().await.expect("simulator answers");
        (
            resp.status().as_u16(),
            resp.text().await.expect("body arrives"),
        )
    }

    const AUTH: Option<(&str, &str)> = Some(("monitor", "demo-voss-password"));

    #[tokio::test]
    async fn demo_data_covers_every_expiry_case() {
        let sim = Simulator::start(Options::default()).await.unwrap();
        let (status, body) = get(&sim, "hierarchy=sys.hcs.CS-P&format=json", AUTH).await;
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["pagination"]["total"], 12);
        let resources = v["resources"].as_array().unwrap();
        assert_eq!(resources.len(), 12);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let field = |r: &Value, k: &str| r["data"][k].as_str().map(str::to_string);
        let access: Vec<f64> = resources
            .iter()
            .filter_map(|r| field(r, "access_token_expires"))
            .filter(|s| !s.is_empty())
            .map(|s| unix(&s))
            .collect();
        let refresh: Vec<f64> = resources
            .iter()
            .filter_map(|r| field(r, "refresh_token_expires"))
            .filter(|s| !s.is_empty())
            .map(|s| unix(&s))
            .collect();
        let day = 86_400.0;
        assert_eq!(access.iter().filter(|t| **t < now).count(), 1, "{access:?}");
        assert!(access.iter().any(|t| *t > now && *t < now + day));
        assert!(access
            .iter()
            .any(|t| *t > now + day && *t < now + 14.0 * day));
        assert!(refresh.iter().all(|t| *t > now));
        assert!(refresh.iter().any(|t| *t < now + 3.0 * day));
        assert!(refresh
            .iter()
            .any(|t| *t > now + 3.0 * day && *t < now + 14.0 * day));
        assert!(refresh.iter().any(|t| *t > now + 14.0 * day));
        // Never authorized (fields absent) and blank fields both occur.
        assert!(resources
            .iter()
            .any(|r| r["data"].get("access_token_expires").is_none()));
        assert!(resources
            .iter()
            .any(|r| r["data"]["access_token_expires"] == ""));
        let dirsync: Vec<&Value> = resources
            .iter()
            .map(|r| &r["data"]["dirsync_enabled"])
            .collect();
        assert!(dirsync.contains(&&Value::Bool(true)) && dirsync.contains(&&Value::Bool(false)));
        // Sorted by name, resource pkid differs from data.pkid, secrets are served.
        let names: Vec<&str> = resources
            .iter()
            .map(|r| r["data"]["name"].as_str().unwrap())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert!(resources.iter().all(|r| r["pkid"] != r["data"]["pkid"]));
        let secrets = sim.voss_secrets();
        assert_eq!(secrets.len(), 2 * 8);
        assert!(secrets
            .iter()
            .all(|s| s.starts_with(SECRET_MARKER) && body.contains(s.as_str())));
    }

    #[tokio::test]
    async fn pages_by_skip_and_limit_capped_at_maximum_limit() {
        let sim = Simulator::start(Options {
            voss: VossOptions {
                customers: 30,
                maximum_limit: 8,
                ..Default::default()
            },
            ..Default::default()
        })
        .await
        .unwrap();
        let mut seen = Vec::new();
        for skip in [0, 8, 16, 24] {
            let (_, body) = get(
                &sim,
                &format!("hierarchy=sys.hcs.CS-P&skip={skip}&limit=100"),
                AUTH,
            )
            .await;
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["pagination"]["limit"], 8);
            assert_eq!(v["pagination"]["total"], 30);
            for r in v["resources"].as_array().unwrap() {
                seen.push(r["pkid"].as_str().unwrap().to_string());
            }
        }
        assert_eq!(seen.len(), 30);
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 30);
        // Below a reseller node only its customers; unknown nodes are not found.
        let (_, body) = get(&sim, "hierarchy=sys.hcs.CS-P.CS-NB", AUTH).await;
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["pagination"]["total"], 10);
        assert_eq!(get(&sim, "hierarchy=sys.other", AUTH).await.0, 404);
        assert_eq!(get(&sim, "format=json", AUTH).await.0, 400);
        sim.set_voss_customers(3);
        let (_, body) = get(&sim, "hierarchy=sys", AUTH).await;
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["pagination"]["total"], 3);
    }

    #[tokio::test]
    async fn wrong_credentials_are_refused_and_faults_apply() {
        let sim = Simulator::start(Options::default()).await.unwrap();
        let q = "hierarchy=sys.hcs.CS-P";
        assert_eq!(get(&sim, q, None).await.0, 401);
        assert_eq!(get(&sim, q, Some(("monitor", "wrong"))).await.0, 401);
        assert_eq!(
            get(&sim, q, Some(("other", "demo-voss-password"))).await.0,
            401
        );
        sim.set_fault(RequestKind::VossSparkCustomers, Fault::Truncated, Some(1));
        let (status, body) = get(&sim, q, AUTH).await;
        assert_eq!(status, 200);
        assert!(serde_json::from_str::<Value>(&body).is_err());
        assert_eq!(get(&sim, q, AUTH).await.0, 200);
        assert_eq!(
            sim.requests(RequestKind::VossSparkCustomers).len(),
            5,
            "every request is logged"
        );
    }
}
