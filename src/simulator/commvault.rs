//! The fake Commvault web service (`/commandcenter/api`): login sessions that expire when
//! idle, renewal and logout, the organization list and each organization's details in the
//! vendor's shape, with counts that grow as time passes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use serde_json::json;

use super::{apply_fault, garble, RequestKind, SimState, Simulator};

#[derive(Debug, Clone)]
pub struct CommvaultOptions {
    pub organizations: usize,
    /// The account the fake web service accepts.
    pub username: String,
    pub password: String,
    /// A session unused for this long is gone: requests with its token get 401.
    pub idle_timeout: Duration,
    /// How often the organizations' counts grow.
    pub change_period: Duration,
}

impl Default for CommvaultOptions {
    fn default() -> Self {
        CommvaultOptions {
            organizations: 6,
            username: "monitor".into(),
            password: "demo-commvault-password".into(),
            idle_timeout: Duration::from_secs(30 * 60),
            change_period: Duration::from_secs(60),
        }
    }
}

/// Tokens issued that tests may look for in logs; older ones are forgotten.
const ISSUED_LOG: usize = 1000;

#[derive(Default)]
pub(crate) struct CommvaultState {
    sessions: Mutex<Sessions>,
    /// Replaces `CommvaultOptions::organizations` when set.
    organizations: Mutex<Option<usize>>,
    /// The organization whose details answer with an error.
    failing: Mutex<Option<u64>>,
    logins: AtomicU64,
    failed_logins: AtomicU64,
    renewals: AtomicU64,
    logouts: AtomicU64,
}

#[derive(Default)]
struct Sessions {
    /// Live tokens and when each was last used.
    live: HashMap<String, Instant>,
    issued: Vec<String>,
}

impl Sessions {
    fn issue(&mut self) -> String {
        let hex: String = (0..8)
            .map(|_| format!("{:016x}", fastrand::u64(..)))
            .collect();
        let token = format!("QSDK {hex}");
        self.live.insert(token.clone(), Instant::now());
        if self.issued.len() >= ISSUED_LOG {
            self.issued.drain(..ISSUED_LOG / 2);
        }
        self.issued.push(token.clone());
        token
    }

    /// Whether `token` is live, marking it used; an idle-expired token is dropped.
    fn touch(&mut self, token: &str, idle_timeout: Duration) -> bool {
        match self.live.get_mut(token) {
            Some(used) if used.elapsed() < idle_timeout => {
                *used = Instant::now();
                true
            }
            Some(_) => {
                self.live.remove(token);
                false
            }
            None => false,
        }
    }
}

/// What the fake Commvault has counted, for assertions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommvaultCounters {
    pub logins: u64,
    pub failed_logins: u64,
    pub renewals: u64,
    /// Logouts of live sessions.
    pub logouts: u64,
}

impl Simulator {
    fn commvault(&self) -> &CommvaultState {
        &self.state.commvault
    }

    /// Makes the details of organization `id` answer `{"errorCode": 5, "errorMessage":
    /// "Access denied"}`; `None` ends that.
    pub fn fail_commvault_organization(&self, id: Option<u64>) {
        *lock(&self.commvault().failing) = id;
    }

    /// Ends every session, as the idle timeout would: the next request with a token gets
    /// 401 and renewing it fails.
    pub fn expire_commvault_tokens(&self) {
        lock(&self.commvault().sessions).live.clear();
    }

    /// Changes how many organizations exist; those past the new count vanish.
    pub fn set_commvault_organizations(&self, n: usize) {
        *lock(&self.commvault().organizations) = Some(n);
    }

    /// The ids of the organizations that exist now.
    pub fn commvault_organization_ids(&self) -> Vec<u64> {
        (0..organizations(&self.state))
            .map(organization_id)
            .collect()
    }

    pub fn commvault_counters(&self) -> CommvaultCounters {
        let c = self.commvault();
        CommvaultCounters {
            logins: c.logins.load(Ordering::Relaxed),
            failed_logins: c.failed_logins.load(Ordering::Relaxed),
            renewals: c.renewals.load(Ordering::Relaxed),
            logouts: c.logouts.load(Ordering::Relaxed),
        }
    }

    /// Every session token issued (the latest thousand or so), live or not.
    pub fn commvault_tokens_issued(&self) -> Vec<String> {
        lock(&self.commvault().sessions).issued.clone()
    }

    /// Whether `token` is a live session.
    pub fn commvault_token_live(&self, token: &str) -> bool {
        lock(&self.commvault().sessions).live.contains_key(token)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(super) fn routes() -> Router<Arc<SimState>> {
    Router::new()
        .route("/commandcenter/api/Login", post(login))
        .route("/commandcenter/api/RenewLoginToken", post(renew))
        .route("/commandcenter/api/Logout", post(logout))
        .route("/commandcenter/api/Organization", get(list))
        .route("/commandcenter/api/Organization/{id}", get(details))
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A Commvault error body.
fn cv_error(status: StatusCode, code: u32, message: &str) -> Response {
    json_response(
        status,
        json!({"errorCode": code, "errorMessage": message}).to_string(),
    )
}

fn unauthorized() -> Response {
    cv_error(
        StatusCode::UNAUTHORIZED,
        1,
        "Access denied: the session token is invalid or has expired",
    )
}

/// Runs the fault set for `kind`, if any: `Err` holds the answer to send instead.
async fn fault(
    state: &SimState,
    kind: RequestKind,
    what: &str,
) -> Result<Option<super::Fault>, Response> {
    let fault = state.take_fault(kind, what);
    if let Some(f) = &fault {
        if let Some(r) = apply_fault(f).await {
            return Err(r);
        }
    }
    Ok(fault)
}

fn authorized(state: &SimState, headers: &HeaderMap) -> bool {
    let Some(token) = headers.get("authtoken").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    lock(&state.commvault.sessions).touch(token, state.opts.commvault.idle_timeout)
}

async fn login(State(state): State<Arc<SimState>>, body: Bytes) -> Response {
    let fault = match fault(&state, RequestKind::CommvaultLogin, "").await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let Ok(req) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return cv_error(StatusCode::BAD_REQUEST, 2, "Invalid request body");
    };
    let o = &state.opts.commvault;
    let field = |k: &str| req.get(k).and_then(|v| v.as_str()).unwrap_or("");
    let password = base64::engine::general_purpose::STANDARD
        .decode(field("password"))
        .ok()
        .and_then(|p| String::from_utf8(p).ok());
    let c = &state.commvault;
    if field("username") != o.username || password.as_deref() != Some(o.password.as_str()) {
        c.failed_logins.fetch_add(1, Ordering::Relaxed);
        // Like the real web service: HTTP 200 with the error in the body.
        let body = json!({
            "loginAttempts": c.failed_logins.load(Ordering::Relaxed),
            "remainingLockTime": 0,
            "errList": [{"errLogMessage": "Username/Password are incorrect", "errorCode": 5}],
        });
        return json_response(StatusCode::OK, body.to_string());
    }
    let token = lock(&c.sessions).issue();
    c.logins.fetch_add(1, Ordering::Relaxed);
    let body = json!({
        "aliasName": "1",
        "userGUID": "5A4E2F8B-0C1D-4E7A-9B3C-6D2E1F0A9B8C",
        "loginAttempts": 0,
        "remainingLockTime": 0,
        "smtpAddress": "monitor@example.com",
        "userName": o.username,
        "providerType": 1,
        "ccn": 0,
        "token": token,
        "capability": 4328650366975u64,
        "forcePasswordChange": false,
        "isAccountLocked": false,
        "errList": [],
    });
    json_response(StatusCode::OK, garble(fault.as_ref(), body.to_string()))
}

async fn renew(State(state): State<Arc<SimState>>, body: Bytes) -> Response {
    let fault = match fault(&state, RequestKind::CommvaultRenew, "").await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let session = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("sessionId")?.as_str().map(str::to_string));
    let Some(session) = session else {
        return cv_error(StatusCode::BAD_REQUEST, 2, "sessionId is required");
    };
    let c = &state.commvault;
    let token = {
        let mut sessions = lock(&c.sessions);
        if !sessions.touch(&session, state.opts.commvault.idle_timeout) {
            return unauthorized();
        }
        sessions.live.remove(&session);
        sessions.issue()
    };
    c.renewals.fetch_add(1, Ordering::Relaxed);
    let body = json!({"token": token}).to_string();
    json_response(StatusCode::OK, garble(fault.as_ref(), body))
}

async fn logout(State(state): State<Arc<SimState>>, headers: HeaderMap) -> Response {
    if let Err(r) = fault(&state, RequestKind::CommvaultLogout, "").await {
        return r;
    }
    let token = headers.get("authtoken").and_then(|v| v.to_str().ok());
    let c = &state.commvault;
    if token.is_some_and(|t| lock(&c.sessions).live.remove(t).is_some()) {
        c.logouts.fetch_add(1, Ordering::Relaxed);
    }
    (StatusCode::OK, "User logged out").into_response()
}

fn organizations(state: &SimState) -> usize {
    lock(&state.commvault.organizations).unwrap_or(state.opts.commvault.organizations)
}

/// Organization ids are sparse, as they are once companies come and go.
fn organization_id(i: usize) -> u64 {
    12 + 3 * i as u64
}

const NAMES: [(&str, &str); 8] = [
    ("acme", "Acme Corporation"),
    ("globex", "Globex"),
    ("initech", "Initech"),
    ("umbrella", "Umbrella Health"),
    ("hooli", "Hooli"),
    ("stark", "Stark Industries"),
    ("wayne", "Wayne Enterprises"),
    ("wonka", "Wonka Foods"),
];

fn names(i: usize) -> (String, String) {
    match NAMES.get(i) {
        Some((short, long)) => (short.to_string(), long.to_string()),
        None => (format!("tenant{i}"), format!("Tenant {i}")),
    }
}

async fn list(State(state): State<Arc<SimState>>, headers: HeaderMap) -> Response {
    let fault = match fault(&state, RequestKind::CommvaultOrganizations, "").await {
        Ok(f) => f,
        Err(r) => return r,
    };
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let providers: Vec<serde_json::Value> = (0..organizations(&state))
        .map(|i| {
            let (short, long) = names(i);
            json!({
                "shortName": {"id": organization_id(i), "domainName": short},
                "connectName": long,
                "enabled": i % 5 != 4,
                "flags": 0,
            })
        })
        .collect();
    let body = json!({ "providers": providers }).to_string();
    json_response(StatusCode::OK, garble(fault.as_ref(), body))
}

async fn details(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let fault = match fault(
        &state,
        RequestKind::CommvaultOrganization,
        &format!("id={id}"),
    )
    .await
    {
        Ok(f) => f,
        Err(r) => return r,
    };
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let index = id
        .parse::<u64>()
        .ok()
        .and_then(|id| (0..organizations(&state)).find(|&i| organization_id(i) == id));
    let Some(i) = index else {
        return cv_error(StatusCode::NOT_FOUND, 2, "Organization not found");
    };
    if *lock(&state.commvault.failing) == Some(organization_id(i)) {
        // Like the real web service: HTTP 200 with the error in the body.
        return cv_error(StatusCode::OK, 5, "Access denied");
    }
    let body = organization_json(&state, i).to_string();
    json_response(StatusCode::OK, garble(fault.as_ref(), body))
}

/// One organization's details, shaped like the vendor's example. Counts start from a base
/// of their own and grow every `change_period`.
fn organization_json(state: &SimState, i: usize) -> serde_json::Value {
    let (short, long) = names(i);
    let id = organization_id(i);
    let n = i as u64;
    let period = state
        .opts
        .commvault
        .change_period
        .max(Duration::from_millis(1));
    let grow = (SystemTime::now()
        .duration_since(state.epoch)
        .unwrap_or_default()
        .as_millis()
        / period.as_millis()) as u64;
    let users = 5 + (n * 37) % 120 + grow * (1 + n % 3);
    let servers = 2 + (n * 7) % 20 + grow / 3;
    let physical = servers + (n * 5) % 9;
    let vms = 3 + (n * 13) % 50 + grow / 2;
    let misc = n % 3;
    let devices = physical + vms + misc;
    json!({
        "organizationInfo": {
            "organization": {
                "serviceType": 5,
                "flags": 0,
                "description": format!("{long} (managed backup)"),
                "login": "",
                "enabled": if i % 5 == 4 { 0 } else { 1 },
                "useSecureLdap": 0,
                "connectName": long,
                "port": 0,
                "tppm": {"enable": false, "tppmType": 4, "proxyInformation": {"portNumber": 0, "proxyEntity": {"clientName": "0", "clientId": 0, "_type_": 3}}},
                "emailDomainNames": [format!("{short}.example.com")],
                "resourceProvider": {"domainName": "Simulated CommCell", "id": 0},
                "shortName": {"domainName": short, "id": id},
            },
            "organizationProperties": {
                "physicalDeviceCount": physical,
                "authCode": "",
                "deviceCount": devices,
                "orgCreationDateTime": 1_507_659_390 + n * 37 * 86_400,
                "hypervisiorCount": 1 + n % 4,
                "totalMachineCount": devices,
                "enableAuthCodeGen": false,
                "miscMachineCount": misc,
                "serverCount": servers,
                "userCount": users,
                "vmCount": vms,
                "primaryContacts": [{"fullName": format!("{long} admin"), "user": {"_type_": 13, "userName": format!("{short}\\admin"), "userId": 100 + id}}],
            },
        },
    })
}
