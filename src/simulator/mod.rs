//! An in-process fake of the upstream APIs on 127.0.0.1, for `--demo`, tests and benchmarks.
//!
//! Data is derived from the enterprise index and the wall clock, so it changes like the real
//! thing (syncs start, run, finish, fail) without any state to keep. Faults can be injected
//! per request kind.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::task::JoinHandle;

mod broadworks;
pub mod commvault;
pub mod voss;
mod webex;

/// The kinds of upstream request a fault can be set for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    BroadworksEnterprises,
    PartnerOrganizations,
    /// `POST /v1/access_token`, the OAuth refresh.
    AccessToken,
    VossSparkCustomers,
    CommvaultLogin,
    CommvaultRenew,
    CommvaultLogout,
    CommvaultOrganizations,
    CommvaultOrganization,
    /// `POST V4/AccessToken/Renew`.
    CommvaultAccessTokenRenew,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// 429 with `Retry-After` (seconds) when given.
    RateLimited { retry_after: Option<u64> },
    /// 423 with `Retry-After`.
    Locked { retry_after: Option<u64> },
    /// Any status with a Webex-style error body.
    Status(u16),
    /// 401, as for an expired token.
    Unauthorized,
    /// The normal answer, late.
    Slow(Duration),
    /// The normal answer cut in half.
    Truncated,
    /// A 200 whose body is not the expected JSON.
    Malformed,
    /// A redirect (302, 307, ...) to `location`, an absolute URL (another origin in tests).
    Redirect { status: u16, location: String },
    /// Webex token endpoint: the normal answer, with its effects (a rotated refresh token),
    /// held back this long before it is sent.
    Held(Duration),
    /// Webex token endpoint: `expires_in` is this instead of the real lifetime.
    ExpiresIn(u64),
    /// Webex: a 400 whose message quotes the request's credentials (bearer token, client
    /// secret, refresh token), as some gateways do.
    EchoCredentials,
    /// Webex lists: the page's `Link: rel="next"` points to this origin (`http://host:port`).
    NextLinkOrigin(String),
    /// Webex lists: an empty page that still links to a next one.
    EmptyPageWithNext,
    /// Webex lists: the next link carries a stray `max=null`.
    MaxNullInNext,
    /// Webex lists: 504 when `max` is larger than this, as the API answers pages it cannot
    /// assemble in time.
    GatewayTimeoutAbove(usize),
}

#[derive(Debug, Clone)]
pub struct Options {
    pub enterprises: usize,
    /// A static bearer token the fake Webex API accepts, besides the OAuth-issued ones.
    pub webex_token: String,
    /// Webex partners with `enterprises` BroadWorks enterprises each. Partner 0 answers to
    /// `webex_token` (and the OAuth tokens); partner `k` to `webex_token-k`. Their
    /// enterprises are distinct, as two partners' are, so a many-target estate can be
    /// measured against one process.
    pub webex_partners: usize,
    /// How long one directory-sync cycle lasts.
    pub sync_period: Duration,
    pub oauth: OAuthOptions,
    pub voss: voss::VossOptions,
    pub commvault: commvault::CommvaultOptions,
}

/// The fake Webex integration.
#[derive(Debug, Clone)]
pub struct OAuthOptions {
    pub client_id: String,
    pub client_secret: String,
    /// The refresh token valid at start.
    pub refresh_token: String,
    pub access_token_lifetime: Duration,
    pub refresh_token_lifetime: Duration,
    /// Issue a new refresh token on every refresh, revoking the old one, so a client that
    /// does not persist the rotated token loses access.
    pub rotate: bool,
}

impl Default for OAuthOptions {
    fn default() -> Self {
        OAuthOptions {
            client_id: "demo-client-id".into(),
            client_secret: "demo-client-secret".into(),
            refresh_token: "demo-refresh-token-0".into(),
            access_token_lifetime: Duration::from_secs(14 * 86_400),
            refresh_token_lifetime: Duration::from_secs(90 * 86_400),
            rotate: true,
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            enterprises: 25,
            webex_token: "demo-webex-token".to_string(),
            webex_partners: 1,
            sync_period: Duration::from_secs(600),
            oauth: OAuthOptions::default(),
            voss: voss::VossOptions::default(),
            commvault: commvault::CommvaultOptions::default(),
        }
    }
}

struct Injected {
    fault: Fault,
    remaining: Option<u32>,
}

pub(crate) struct SimState {
    opts: Options,
    epoch: SystemTime,
    enterprises: AtomicUsize,
    faults: Mutex<HashMap<RequestKind, Injected>>,
    requests: Mutex<Vec<(RequestKind, String)>>,
    webex: webex::WebexState,
    voss: voss::VossState,
    commvault: commvault::CommvaultState,
}

/// Requests kept for tests to inspect; older ones are forgotten.
const REQUEST_LOG: usize = 10_000;

impl SimState {
    /// Takes the fault to apply to this request, if any.
    pub(crate) fn take_fault(&self, kind: RequestKind, query: &str) -> Option<Fault> {
        {
            let mut log = self.requests.lock().unwrap_or_else(|e| e.into_inner());
            if log.len() >= REQUEST_LOG {
                log.drain(..REQUEST_LOG / 2);
            }
            log.push((kind, query.to_string()));
        }
        let mut faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        let injected = faults.get_mut(&kind)?;
        let fault = injected.fault.clone();
        if let Some(n) = &mut injected.remaining {
            *n -= 1;
            if *n == 0 {
                faults.remove(&kind);
            }
        }
        Some(fault)
    }
}

/// A running simulator. Stops when dropped.
pub struct Simulator {
    addr: SocketAddr,
    state: Arc<SimState>,
    task: JoinHandle<()>,
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Simulator {
    /// Starts on 127.0.0.1 on an ephemeral port.
    pub async fn start(opts: Options) -> std::io::Result<Simulator> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(SimState {
            enterprises: AtomicUsize::new(opts.enterprises),
            epoch: SystemTime::now(),
            faults: Mutex::new(HashMap::new()),
            requests: Mutex::new(Vec::new()),
            webex: webex::WebexState::new(&opts.oauth),
            voss: voss::VossState::default(),
            commvault: commvault::CommvaultState::default(),
            opts,
        });
        let app = webex::routes()
            .merge(voss::routes())
            .merge(commvault::routes())
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "simulator stopped");
            }
        });
        Ok(Simulator { addr, state, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The VOSS Automate base URL, `http://127.0.0.1:PORT`.
    pub fn voss_base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The Commvault web service base URL, `http://127.0.0.1:PORT/commandcenter/api`.
    pub fn commvault_base_url(&self) -> String {
        format!("http://{}/commandcenter/api", self.addr)
    }

    /// The simulator's options, with the credentials it accepts.
    pub fn options(&self) -> &Options {
        &self.state.opts
    }

    /// The Webex API base URL, `http://127.0.0.1:PORT/v1`.
    pub fn webex_base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn webex_token(&self) -> &str {
        &self.state.opts.webex_token
    }

    /// Applies `fault` to the next `times` requests of `kind` (every one when `None`).
    pub fn set_fault(&self, kind: RequestKind, fault: Fault, times: Option<u32>) {
        let mut faults = self.state.faults.lock().unwrap_or_else(|e| e.into_inner());
        if times == Some(0) {
            faults.remove(&kind);
        } else {
            faults.insert(
                kind,
                Injected {
                    fault,
                    remaining: times,
                },
            );
        }
    }

    pub fn clear_faults(&self) {
        self.state
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Changes how many enterprises exist; the ones past the new count vanish.
    pub fn set_enterprises(&self, n: usize) {
        self.state.enterprises.store(n, Ordering::Relaxed);
    }

    /// The query strings of the requests received so far, oldest first.
    pub fn requests(&self, kind: RequestKind) -> Vec<String> {
        let log = self
            .state
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        log.iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, q)| q.clone())
            .collect()
    }
}

pub(crate) fn webex_error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({
        "message": message,
        "errors": [{"description": message}],
        "trackingId": format!("SIMULATOR_{:08x}", fastrand::u32(..)),
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Answers with `fault`, or returns `None` when the normal answer should follow (late, cut
/// or garbled as the fault says).
pub(crate) async fn apply_fault(fault: &Fault) -> Option<Response> {
    let with_retry_after = |status, retry_after: &Option<u64>, message| {
        let mut r = webex_error(status, message);
        if let Some(s) = retry_after {
            r.headers_mut().insert(
                header::RETRY_AFTER,
                s.to_string().parse().expect("digits are a valid header"),
            );
        }
        r
    };
    match fault {
        Fault::RateLimited { retry_after } => Some(with_retry_after(
            StatusCode::TOO_MANY_REQUESTS,
            retry_after,
            "Too many requests",
        )),
        Fault::Locked { retry_after } => Some(with_retry_after(
            StatusCode::LOCKED,
            retry_after,
            "Resource locked",
        )),
        Fault::Status(code) => {
            let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Some(webex_error(status, "Simulated failure"))
        }
        Fault::Unauthorized => Some(webex_error(
            StatusCode::UNAUTHORIZED,
            "The request requires a valid access token set in the Authorization request header.",
        )),
        Fault::Slow(d) => {
            tokio::time::sleep(*d).await;
            None
        }
        Fault::Redirect { status, location } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::FOUND);
            let mut r = (status, "redirected").into_response();
            if let Ok(v) = location.parse() {
                r.headers_mut().insert(header::LOCATION, v);
            }
            Some(r)
        }
        Fault::Truncated
        | Fault::Malformed
        | Fault::Held(_)
        | Fault::ExpiresIn(_)
        | Fault::EchoCredentials
        | Fault::NextLinkOrigin(_)
        | Fault::EmptyPageWithNext
        | Fault::MaxNullInNext
        | Fault::GatewayTimeoutAbove(_) => None,
    }
}

pub(crate) fn garble(fault: Option<&Fault>, body: String) -> String {
    match fault {
        Some(Fault::Truncated) => {
            let mut cut = body.len() / 2;
            while !body.is_char_boundary(cut) {
                cut -= 1;
            }
            body[..cut].to_string()
        }
        Some(Fault::Malformed) => "{\"items\": \"<html>502 Bad Gateway</html>\"".to_string(),
        _ => body,
    }
}
