//! The fake Commvault web service (`/commandcenter/api`): login sessions that expire when
//! idle, renewal and logout, the organization list and each organization's details in the
//! vendor's shape, with counts that grow as time passes.
//!
//! Sessions behave as on a real CommServe: `RenewLoginToken` needs the `deviceId` sent at
//! login and refuses with HTTP 200, an `error` object and no token; failed logins lock the
//! account (`isAccountLocked`, `remainingLockTime`); an admin can end every session. Switches
//! add the Commvault Cloud login shape (`data.authToken`, used as a Bearer token) and API
//! access tokens renewed by `V4/AccessToken/Renew` with a rotating refresh token.

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
    /// Failed logins in a row that lock the account (0: never locks).
    pub lock_after: u32,
    /// How long a lock lasts.
    pub lock_time: Duration,
    /// Answer a login as Commvault Cloud does: `{"data": {"authToken": ...}}`, the token sent
    /// back as `Authtoken: Bearer ...`.
    pub saas_login: bool,
    /// The API access token and refresh token valid at start; sent as `Authtoken: QSDK
    /// <access token>`, renewed by `V4/AccessToken/Renew`.
    pub access_token: String,
    pub refresh_token: String,
}

impl Default for CommvaultOptions {
    fn default() -> Self {
        CommvaultOptions {
            organizations: 6,
            username: "monitor".into(),
            password: "demo-commvault-password".into(),
            idle_timeout: Duration::from_secs(30 * 60),
            change_period: Duration::from_secs(60),
            lock_after: 5,
            lock_time: Duration::from_secs(15 * 60),
            saas_login: false,
            access_token: "demo-commvault-access-token-0".into(),
            refresh_token: "demo-commvault-refresh-token-0".into(),
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
    /// Error messages quote the credentials they were sent, as careless servers do.
    echo_secrets: std::sync::atomic::AtomicBool,
    logins: AtomicU64,
    failed_logins: AtomicU64,
    renewals: AtomicU64,
    refused_renewals: AtomicU64,
    logouts: AtomicU64,
    access_renewals: AtomicU64,
    /// Failed logins since the last good one, and when the lock (if any) ends.
    lockout: Mutex<(u32, Option<Instant>)>,
    /// The access token and refresh token valid now, once the options' were replaced.
    access: Mutex<Option<(String, String)>>,
}

struct Live {
    used: Instant,
    device_id: String,
}

#[derive(Default)]
struct Sessions {
    /// Live tokens, when each was last used and the device that opened it.
    live: HashMap<String, Live>,
    issued: Vec<String>,
}

impl Sessions {
    fn issue(&mut self, device_id: &str, bearer: bool) -> String {
        let hex: String = (0..8)
            .map(|_| format!("{:016x}", fastrand::u64(..)))
            .collect();
        let token = if bearer {
            format!("Bearer eyJ{hex}")
        } else {
            format!("QSDK {hex}")
        };
        self.live.insert(
            token.clone(),
            Live {
                used: Instant::now(),
                device_id: device_id.to_string(),
            },
        );
        if self.issued.len() >= ISSUED_LOG {
            self.issued.drain(..ISSUED_LOG / 2);
        }
        self.issued.push(token.clone());
        token
    }

    /// Whether `token` is live, marking it used; an idle-expired token is dropped.
    fn touch(&mut self, token: &str, idle_timeout: Duration) -> bool {
        match self.live.get_mut(token) {
            Some(s) if s.used.elapsed() < idle_timeout => {
                s.used = Instant::now();
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
    /// Renewals refused (HTTP 200 with an `error` object).
    pub refused_renewals: u64,
    /// Logouts of live sessions.
    pub logouts: u64,
    /// `V4/AccessToken/Renew` calls that issued a new pair.
    pub access_renewals: u64,
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

    /// Makes error answers quote the credential of the request (the password at login, the
    /// `Authtoken` elsewhere), so tests can check that the exporter scrubs upstream text.
    pub fn echo_commvault_secrets(&self, on: bool) {
        self.commvault().echo_secrets.store(on, Ordering::Relaxed);
    }

    /// Ends every session, as the idle timeout, a web server restart or an admin would: the
    /// next request with a token gets 401 and renewing it is refused.
    pub fn expire_commvault_tokens(&self) {
        lock(&self.commvault().sessions).live.clear();
    }

    /// The number of live sessions.
    pub fn commvault_live_sessions(&self) -> usize {
        lock(&self.commvault().sessions).live.len()
    }

    /// Ends the current API access token, as its expiry would: requests with it get 401
    /// until it is renewed.
    pub fn expire_commvault_access_token(&self) {
        let c = self.commvault();
        let mut access = lock(&c.access);
        let (_, refresh) = current_access(&self.state, &access);
        *access = Some((String::new(), refresh));
    }

    /// The access token and refresh token valid now.
    pub fn commvault_access_tokens(&self) -> (String, String) {
        current_access(&self.state, &lock(&self.commvault().access))
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
            refused_renewals: c.refused_renewals.load(Ordering::Relaxed),
            logouts: c.logouts.load(Ordering::Relaxed),
            access_renewals: c.access_renewals.load(Ordering::Relaxed),
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
        .route(
            "/commandcenter/api/V4/AccessToken/Renew",
            post(renew_access),
        )
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
    if let Some(access) = token.strip_prefix("QSDK ") {
        let (current, _) = current_access(state, &lock(&state.commvault.access));
        if !current.is_empty() && access == current {
            return true;
        }
    }
    lock(&state.commvault.sessions).touch(token, state.opts.commvault.idle_timeout)
}

fn current_access(state: &SimState, access: &Option<(String, String)>) -> (String, String) {
    access.clone().unwrap_or_else(|| {
        let o = &state.opts.commvault;
        (o.access_token.clone(), o.refresh_token.clone())
    })
}

/// Renews an API access token: both the access token and the refresh token must be the
/// current ones (an expired access token is accepted); both are replaced.
async fn renew_access(State(state): State<Arc<SimState>>, body: Bytes) -> Response {
    let fault = match fault(&state, RequestKind::CommvaultAccessTokenRenew, "").await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let req = serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default();
    let field = |k: &str| {
        req.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    let c = &state.commvault;
    let mut access = lock(&c.access);
    let (_, refresh) = current_access(&state, &access);
    if field("refreshToken") != refresh || refresh.is_empty() {
        return cv_error(StatusCode::OK, 5, "Invalid or expired refresh token");
    }
    let n = c.access_renewals.fetch_add(1, Ordering::Relaxed) + 1;
    let new = (
        format!("sim-access-{n}-{:016x}", fastrand::u64(..)),
        format!("sim-refresh-{n}-{:016x}", fastrand::u64(..)),
    );
    *access = Some(new.clone());
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let body = json!({
        "accessToken": new.0,
        "refreshToken": new.1,
        "tokenExpiryTimestamp": now + 1800,
        "refreshTokenExpiryTimestamp": now + 30 * 86_400,
    });
    json_response(StatusCode::OK, garble(fault.as_ref(), body.to_string()))
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
    {
        let mut lockout = lock(&c.lockout);
        if let Some(until) = lockout.1 {
            let now = Instant::now();
            if until > now {
                c.failed_logins.fetch_add(1, Ordering::Relaxed);
                let body = json!({
                    "loginAttempts": lockout.0,
                    "isAccountLocked": true,
                    "remainingLockTime": (until - now).as_secs().max(1),
                    "errList": [{"errLogMessage": "User account is locked", "errorCode": 1116}],
                });
                return json_response(StatusCode::OK, body.to_string());
            }
            *lockout = (0, None);
        }
        if field("username") != o.username || password.as_deref() != Some(o.password.as_str()) {
            c.failed_logins.fetch_add(1, Ordering::Relaxed);
            lockout.0 += 1;
            let locks = o.lock_after > 0 && lockout.0 >= o.lock_after;
            if locks {
                lockout.1 = Instant::now().checked_add(o.lock_time);
            }
            let mut message = "Username/Password are incorrect".to_string();
            if c.echo_secrets.load(Ordering::Relaxed) {
                message = format!(
                    "{message} for {} with password {}",
                    field("username"),
                    field("password")
                );
            }
            // Like the real web service: HTTP 200 with the error in the body.
            let body = json!({
                "loginAttempts": lockout.0,
                "isAccountLocked": locks,
                "remainingLockTime": if locks { o.lock_time.as_secs() } else { 0 },
                "errList": [{"errLogMessage": message, "errorCode": 5}],
            });
            return json_response(StatusCode::OK, body.to_string());
        }
        *lockout = (0, None);
    }
    let device_id = field("deviceId");
    let token = lock(&c.sessions).issue(device_id, o.saas_login);
    c.logins.fetch_add(1, Ordering::Relaxed);
    if o.saas_login {
        let jwt = token.trim_start_matches("Bearer ");
        let body = json!({"data": {"authToken": jwt, "userName": o.username}});
        return json_response(StatusCode::OK, garble(fault.as_ref(), body.to_string()));
    }
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
    let req = serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default();
    let field = |k: &str| req.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let Some(session) = field("sessionId") else {
        return cv_error(StatusCode::BAD_REQUEST, 2, "sessionId is required");
    };
    let device_id = field("deviceId").unwrap_or_default();
    let c = &state.commvault;
    // Like the real web service: a refusal is HTTP 200 with an `error` object and no token.
    let refuse = |why: &str| {
        c.refused_renewals.fetch_add(1, Ordering::Relaxed);
        json_response(
            StatusCode::OK,
            json!({"error": {"errorCode": 1, "errLogMessage": why}}).to_string(),
        )
    };
    let token = {
        let mut sessions = lock(&c.sessions);
        if !sessions.touch(&session, state.opts.commvault.idle_timeout) {
            return refuse("Session is invalid or has expired");
        }
        if sessions.live.get(&session).map(|s| s.device_id.as_str()) != Some(device_id.as_str()) {
            return refuse("Token renewal failed: the device id does not match the session's");
        }
        sessions.live.remove(&session);
        sessions.issue(&device_id, false)
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
        let mut message = "Access denied".to_string();
        if state.commvault.echo_secrets.load(Ordering::Relaxed) {
            let token = headers.get("authtoken").and_then(|v| v.to_str().ok());
            message = format!("{message} for session {}", token.unwrap_or(""));
        }
        // Like the real web service: HTTP 200 with the error in the body.
        return cv_error(StatusCode::OK, 5, &message);
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
