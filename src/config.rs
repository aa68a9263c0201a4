//! Configuration: the YAML schema, read in two phases.
//!
//! Phase one deserializes into `Raw*` structs that keep every value's position, setting aside
//! each entry serde rejects so one unknown key or wrong type does not hide the rest
//! (`yaml.rs`). Phase two validates into the types the program runs on, collecting every
//! problem and warning before reporting, so `--config.check` shows all mistakes at once and
//! an invalid config cannot be represented.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;
use url::Url;

mod yaml;
use crate::sources::families::{self, FamilySelection};

pub const DEFAULT_WEBEX_BASE_URL: &str = "https://webexapis.com/v1";
const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(3600);
/// The Webex API returns at most 1000 enterprises a page.
const MAX_BROADWORKS_PAGE_SIZE: u32 = 1000;
const DEFAULT_VOSS_PAGE_SIZE: u32 = 500;
/// VOSS reports `maximum_limit: 2000`.
const MAX_VOSS_PAGE_SIZE: u32 = 2000;
const DEFAULT_COMMVAULT_CONCURRENCY: usize = 4;
/// Longer durations are mistakes, and would overflow deadline arithmetic.
const MAX_DURATION: Duration = Duration::from_secs(30 * 86_400);

/// A credential. It has no `Display` and its `Debug` is redacted, so it cannot reach a log
/// line or an error message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub global: Global,
    /// In file order within a section; sections in the order `webex`, `voss`, `commvault`.
    pub targets: Vec<Target>,
}

/// One configured target of any source.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Webex(WebexTarget),
    Voss(VossTarget),
    Commvault(CommvaultTarget),
}

impl Target {
    /// The `target` label, unique across every source.
    pub fn name(&self) -> &str {
        match self {
            Target::Webex(t) => &t.name,
            Target::Voss(t) => &t.name,
            Target::Commvault(t) => &t.name,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Global {
    /// How often each collector polls its target, unless the collector overrides it.
    pub interval: Duration,
    /// Per upstream request.
    pub timeout: Duration,
    /// A target's samples are dropped after this long without a successful collection.
    pub stale_after: Duration,
    pub limits: Limits,
}

/// Bounds on what upstreams can make the exporter hold (`global.limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest response body read.
    pub max_body_bytes: usize,
    /// Response bytes held at once across all targets.
    pub max_body_bytes_in_flight: usize,
    /// Pages one collection reads at most.
    pub max_pages: usize,
    /// Objects one collection reads at most.
    pub max_objects: usize,
}

impl Default for Limits {
    fn default() -> Self {
        use crate::upstream as u;
        Limits {
            max_body_bytes: u::DEFAULT_MAX_BODY_BYTES,
            max_body_bytes_in_flight: u::DEFAULT_MAX_BODY_BYTES_IN_FLIGHT,
            max_pages: u::DEFAULT_MAX_PAGES,
            max_objects: u::DEFAULT_MAX_OBJECTS,
        }
    }
}

/// Largest accepted byte limit: the in-flight budget is counted in 32-bit permits.
const MAX_BYTE_LIMIT: u64 = 1 << 30;

impl Default for Global {
    fn default() -> Self {
        Global {
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            stale_after: DEFAULT_STALE_AFTER,
            limits: Limits::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct WebexTarget {
    pub name: String,
    pub base_url: Url,
    /// Extra trusted CAs (a TLS-inspecting proxy) and the proxy to go through.
    pub tls: TlsConfig,
    pub credentials: WebexCredentials,
    pub broadworks: Option<BroadworksConfig>,
    pub managed_orgs: Option<ManagedOrgsConfig>,
    /// The metric families this target exposes (`metrics:`).
    pub metrics: FamilySelection,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WebexCredentials {
    /// A personal or bot access token, used as it is.
    AccessToken(Secret),
    /// An integration's refresh token, rotated and persisted by the exporter.
    OAuth(OAuthConfig),
}

#[derive(Debug, Clone, PartialEq)]
pub struct OAuthConfig {
    pub client_id: String,
    pub client_secret: Secret,
    /// Holds the current refresh token; rewritten atomically when Webex rotates it.
    pub refresh_token_file: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BroadworksConfig {
    pub starts_with: Option<String>,
    pub interval: Duration,
    pub page_size: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ManagedOrgsConfig {
    pub admins: Vec<Admin>,
    pub interval: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Admin {
    /// The `admin` label.
    pub name: String,
    pub person_id: String,
}

/// How to trust an upstream's TLS certificate.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TlsConfig {
    /// PEM bundle of extra trusted CAs, for self-signed appliances.
    pub ca_file: Option<PathBuf>,
    pub insecure_skip_verify: bool,
    /// The proxy this target is reached through, instead of HTTPS_PROXY/HTTP_PROXY.
    pub proxy_url: Option<ProxyUrl>,
}

/// A proxy URL (http, https, socks5, socks5h). It may carry credentials, so its `Debug`
/// shows only scheme, host and port.
#[derive(Clone, PartialEq)]
pub struct ProxyUrl(Url);

impl ProxyUrl {
    pub fn url(&self) -> &Url {
        &self.0
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let u = &self.0;
        write!(
            f,
            "ProxyUrl({}://{}:{})",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port_or_known_default().unwrap_or(0)
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct VossTarget {
    pub name: String,
    pub base_url: Url,
    pub username: String,
    pub password: Secret,
    /// Dotted hierarchy path or pkid.
    pub hierarchy: String,
    pub page_size: u32,
    pub interval: Duration,
    pub tls: TlsConfig,
    /// The metric families this target exposes (`metrics:`).
    pub metrics: FamilySelection,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CommvaultTarget {
    pub name: String,
    pub base_url: Url,
    pub credentials: CommvaultCredentials,
    /// Sent at `Login` and `RenewLoginToken`: the CommServe renews a session only for the
    /// device that opened it.
    pub device_id: String,
    /// `None` means every organization the account sees.
    pub organizations: Option<Vec<u64>>,
    pub interval: Duration,
    /// Organization detail requests in flight at once.
    pub concurrency: usize,
    pub tls: TlsConfig,
    /// An organization whose details keep failing is dropped after this long (global).
    pub stale_after: Duration,
    /// The metric families this target exposes (`metrics:`).
    pub metrics: FamilySelection,
}

/// How the exporter gets a Commvault session.
#[derive(Debug, Clone, PartialEq)]
pub enum CommvaultCredentials {
    /// `POST /Login` with the user's password.
    Password { username: String, password: Secret },
    /// An API access token (Commvault Cloud, SSO- or MFA-only accounts), sent in `Authtoken`.
    AccessToken {
        access_token: Secret,
        /// Holds the refresh token (and, once rotated, the matching access token on a second
        /// line); rewritten atomically before a rotated token is used. Without it the access
        /// token is used until it expires.
        refresh_token_file: Option<PathBuf>,
    },
}

/// This replica's part of the targets when several replicas split them (`--shard=i/n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// `INDEX/COUNT`, where INDEX may be a StatefulSet pod name (`tenant-exporter-2`) whose
    /// trailing ordinal is the index.
    fn from_str(s: &str) -> Result<Shard, String> {
        let (index, count) = s.rsplit_once('/').ok_or("expected INDEX/COUNT, e.g. 0/3")?;
        let index = match index.rsplit_once('-') {
            Some((pod, ordinal)) if !pod.is_empty() => ordinal,
            _ => index,
        };
        let index: u32 = index
            .parse()
            .map_err(|_| format!("index {index:?} is not a number"))?;
        let count: u32 = count
            .parse()
            .map_err(|_| format!("count {count:?} is not a number"))?;
        if count == 0 || index >= count {
            return Err(format!("index must be below count, got {index}/{count}"));
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// Whether this shard collects `target`. Stable across processes and versions: FNV-1a of
    /// the name, so every replica agrees on who owns what.
    pub fn owns(&self, target: &str) -> bool {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in target.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h % u64::from(self.count) == u64::from(self.index)
    }
}

/// One problem found in a config file, with its position when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: Option<u64>,
    pub column: Option<u64>,
    pub message: String,
}

/// Every problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub origin: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match (p.line, p.column) {
                (Some(line), Some(col)) => {
                    write!(f, "{}:{line}:{col}: {}", self.origin, p.message)?
                }
                _ => write!(f, "{}: {}", self.origin, p.message)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// What `--config.check` reports: the errors that make the file unusable and the warnings
/// about settings that work but are probably not meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics {
    pub origin: String,
    pub errors: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

impl fmt::Display for Diagnostics {
    /// One line each, in file order, warnings marked as such.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut all: Vec<(&Problem, bool)> = self
            .errors
            .iter()
            .map(|p| (p, false))
            .chain(self.warnings.iter().map(|p| (p, true)))
            .collect();
        all.sort_by_key(|(p, _)| (p.line, p.column));
        for (i, (p, warning)) in all.into_iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:", self.origin)?;
            if let (Some(line), Some(col)) = (p.line, p.column) {
                write!(f, "{line}:{col}:")?;
            }
            let kind = if warning { "warning: " } else { "" };
            write!(f, " {kind}{}", p.message)?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    global: Option<RawGlobal>,
    webex: Option<Vec<RawWebex>>,
    voss: Option<Vec<RawVoss>>,
    commvault: Option<Vec<RawCommvault>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGlobal {
    interval: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    stale_after: Option<Spanned<String>>,
    limits: Option<RawLimits>,
    metrics: Option<RawMetrics>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_body_bytes: Option<Spanned<RawSize>>,
    max_body_bytes_in_flight: Option<Spanned<RawSize>>,
    max_pages: Option<Spanned<u64>>,
    max_objects: Option<Spanned<u64>>,
}

/// A byte size: a number of bytes, or a number with a `KiB`, `MiB` or `GiB` suffix.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawSize {
    Bytes(u64),
    Text(String),
}

/// Reads `64MiB`, `512 KiB`, `1GiB` or a plain number of bytes.
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    let scale = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// `metrics: {enable: [...], disable: [...]}`: metric families added to or dropped from
/// the defaults.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    enable: Option<Vec<Spanned<String>>>,
    disable: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebex {
    name: Spanned<String>,
    base_url: Option<Spanned<String>>,
    access_token: Option<Spanned<String>>,
    access_token_file: Option<Spanned<String>>,
    oauth: Option<Spanned<RawOAuth>>,
    ca_file: Option<Spanned<String>>,
    proxy_url: Option<Spanned<String>>,
    broadworks_enterprises: Option<Spanned<RawBroadworks>>,
    managed_orgs: Option<Spanned<RawManagedOrgs>>,
    metrics: Option<RawMetrics>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOAuth {
    client_id: Option<Spanned<String>>,
    client_secret: Option<Spanned<String>>,
    client_secret_file: Option<Spanned<String>>,
    refresh_token_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBroadworks {
    enabled: Option<bool>,
    starts_with: Option<String>,
    interval: Option<Spanned<String>>,
    page_size: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManagedOrgs {
    enabled: Option<bool>,
    admins: Option<Vec<RawAdmin>>,
    interval: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    name: Spanned<String>,
    person_id: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVoss {
    name: Spanned<String>,
    base_url: Option<Spanned<String>>,
    username: Option<Spanned<String>>,
    password: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
    hierarchy: Option<Spanned<String>>,
    page_size: Option<Spanned<u32>>,
    interval: Option<Spanned<String>>,
    ca_file: Option<Spanned<String>>,
    insecure_skip_verify: Option<bool>,
    proxy_url: Option<Spanned<String>>,
    metrics: Option<RawMetrics>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommvault {
    name: Spanned<String>,
    base_url: Option<Spanned<String>>,
    username: Option<Spanned<String>>,
    password: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
    access_token: Option<Spanned<String>>,
    access_token_file: Option<Spanned<String>>,
    refresh_token_file: Option<Spanned<String>>,
    device_id: Option<Spanned<String>>,
    organizations: Option<Spanned<RawOrganizations>>,
    interval: Option<Spanned<String>>,
    concurrency: Option<Spanned<u32>>,
    ca_file: Option<Spanned<String>>,
    insecure_skip_verify: Option<bool>,
    proxy_url: Option<Spanned<String>>,
    metrics: Option<RawMetrics>,
}

/// `organizations: all` or a list of ids.
enum RawOrganizations {
    Keyword(String),
    Ids(Vec<u64>),
}

/// By hand rather than `untagged`, whose only message is "data did not match any variant".
impl<'de> Deserialize<'de> for RawOrganizations {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        const EXPECTED: &str = "`all` or a list of organization ids such as [12, 34]";
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawOrganizations;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(EXPECTED)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawOrganizations::Keyword(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Err(E::custom(format!(
                    "expected {EXPECTED}, got the single number {v}; write [{v}]"
                )))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut ids = Vec::new();
                loop {
                    match seq.next_element::<serde_json::Value>() {
                        Ok(None) => return Ok(RawOrganizations::Ids(ids)),
                        Ok(Some(v)) => match v.as_u64() {
                            Some(id) => ids.push(id),
                            None => {
                                return Err(serde::de::Error::custom(format!(
                                    "item {} is {v}, not an organization id (a whole number such as 12)",
                                    ids.len() + 1
                                )))
                            }
                        },
                        Err(_) => {
                            return Err(serde::de::Error::custom(format!(
                                "item {} is not an organization id (a whole number such as 12)",
                                ids.len() + 1
                            )))
                        }
                    }
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Collects problems while validating, so one pass reports all of them.
struct Checker<'a> {
    base_dir: &'a Path,
    env: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
    /// `oauth-login` is about to create the refresh token files.
    refresh_tokens_may_be_missing: bool,
}

impl Checker<'_> {
    fn report<T>(&mut self, at: &Spanned<T>, message: impl Into<String>) {
        self.problems.push(Problem {
            line: Some(at.referenced.line()),
            column: Some(at.referenced.column()),
            message: message.into(),
        });
    }

    fn warn<T>(&mut self, at: &Spanned<T>, message: impl Into<String>) {
        self.warnings.push(Problem {
            line: Some(at.referenced.line()),
            column: Some(at.referenced.column()),
            message: message.into(),
        });
    }

    /// A poll that cannot finish one request before the next poll is due.
    fn interval_vs_timeout(
        &mut self,
        field: &str,
        raw: &Option<Spanned<String>>,
        interval: Duration,
        timeout: Duration,
    ) {
        if raw.is_some() && timeout >= interval {
            let message = format!(
                "{field} ({}) is not longer than global.timeout ({}): a slow request can outlast the poll",
                humantime::format_duration(interval),
                humantime::format_duration(timeout)
            );
            if let Some(r) = raw {
                self.warn(r, message);
            }
        }
    }

    /// Warnings about a base URL that works but is probably not what is meant: secrets in
    /// clear text, or a path the collector appends again.
    fn base_url_warnings(
        &mut self,
        raw: &Option<Spanned<String>>,
        url: &Option<Url>,
        repeats: &[&str],
    ) {
        let (Some(raw), Some(url)) = (raw, url) else {
            return;
        };
        let loopback = match url.host() {
            Some(url::Host::Ipv4(a)) => a.is_loopback(),
            Some(url::Host::Ipv6(a)) => a.is_loopback(),
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => false,
        };
        if url.scheme() == "http" && !loopback {
            self.warn(
                raw,
                "base_url uses http://: credentials would cross the network unencrypted; use https://",
            );
        }
        let path = url.path().trim_end_matches('/').to_ascii_lowercase();
        if let Some(r) = repeats.iter().find(|r| {
            let r = r.trim_end_matches('/').to_ascii_lowercase();
            path.ends_with(&r) || path.contains(&format!("{r}/"))
        }) {
            self.warn(
                raw,
                format!("base_url path {} already contains {r}, which the collector appends itself; drop it from base_url", url.path()),
            );
        }
    }

    fn duration(
        &mut self,
        field: &str,
        raw: &Option<Spanned<String>>,
        default: Duration,
    ) -> Duration {
        let Some(raw) = raw else { return default };
        match humantime::parse_duration(raw.value.trim()) {
            Ok(d) if d.is_zero() => {
                self.report(raw, format!("{field}: must be greater than zero"));
                default
            }
            Ok(d) if d > MAX_DURATION => {
                self.report(raw, format!("{field}: must not be longer than 30 days"));
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.report(
                    raw,
                    format!("{field}: invalid duration {:?}: {e}", raw.value),
                );
                default
            }
        }
    }

    /// A target name: non-empty and unique across every source, since it becomes the
    /// `target` label.
    fn target_name<'r>(
        &mut self,
        name: &'r Spanned<String>,
        seen: &mut Vec<&'r Spanned<String>>,
    ) -> String {
        let trimmed = name.value.trim();
        if trimmed.is_empty() {
            self.report(name, "name must not be empty");
        } else if seen.iter().any(|n| n.value.trim() == trimmed) {
            self.report(
                name,
                format!("duplicate target name {trimmed:?}: names become the `target` label and must be unique"),
            );
        }
        seen.push(name);
        trimmed.to_string()
    }

    fn required(
        &mut self,
        owner: &Spanned<String>,
        field: &str,
        v: &Option<Spanned<String>>,
    ) -> Option<String> {
        match v {
            Some(v) if !v.value.trim().is_empty() => Some(v.value.trim().to_string()),
            Some(v) => {
                self.report(v, format!("{field} must not be empty"));
                None
            }
            None => {
                self.report(owner, format!("{field} is required"));
                None
            }
        }
    }

    fn page_size(&mut self, field: &str, v: &Option<Spanned<u32>>, default: u32, max: u32) -> u32 {
        match v {
            None => default,
            Some(p) if p.value == 0 || p.value > max => {
                self.report(p, format!("{field} must be between 1 and {max}"));
                default
            }
            Some(p) => p.value,
        }
    }

    fn limits(&mut self, raw: &RawLimits) -> Limits {
        let d = Limits::default();
        let mut size = |field: &str, v: &Option<Spanned<RawSize>>, default: usize| -> usize {
            let Some(v) = v else { return default };
            let bytes = match &v.value {
                RawSize::Bytes(n) => Some(*n),
                RawSize::Text(t) => parse_size(t),
            };
            match bytes {
                Some(b) if (1024..=MAX_BYTE_LIMIT).contains(&b) => b as usize,
                Some(_) => {
                    self.report(
                        v,
                        format!("global.limits.{field} must be between 1KiB and 1GiB"),
                    );
                    default
                }
                None => {
                    self.report(
                        v,
                        format!("global.limits.{field}: expected bytes, e.g. 33554432 or 32MiB"),
                    );
                    default
                }
            }
        };
        let max_body_bytes = size("max_body_bytes", &raw.max_body_bytes, d.max_body_bytes);
        let max_body_bytes_in_flight = size(
            "max_body_bytes_in_flight",
            &raw.max_body_bytes_in_flight,
            d.max_body_bytes_in_flight.max(max_body_bytes),
        );
        if let Some(v) = &raw.max_body_bytes_in_flight {
            if max_body_bytes_in_flight < max_body_bytes {
                self.report(
                    v,
                    "global.limits.max_body_bytes_in_flight must not be smaller than max_body_bytes",
                );
            }
        }
        let mut count = |field: &str, v: &Option<Spanned<u64>>, default: usize| match v {
            None => default,
            Some(n) if n.value == 0 || n.value > 100_000_000 => {
                self.report(
                    n,
                    format!("global.limits.{field} must be between 1 and 100000000"),
                );
                default
            }
            Some(n) => n.value as usize,
        };
        Limits {
            max_body_bytes,
            max_body_bytes_in_flight,
            max_pages: count("max_pages", &raw.max_pages, d.max_pages),
            max_objects: count("max_objects", &raw.max_objects, d.max_objects),
        }
    }

    fn oauth(&mut self, raw: &Spanned<RawOAuth>) -> Option<OAuthConfig> {
        let o = &raw.value;
        let owner = Spanned::new(String::new(), raw.referenced, raw.defined);
        let client_id = self.required(&owner, "oauth.client_id", &o.client_id);
        let client_secret = self.secret(
            &owner,
            "oauth.client_secret",
            &o.client_secret,
            &o.client_secret_file,
        );
        let file = match &o.refresh_token_file {
            None => {
                self.report(raw, "oauth.refresh_token_file is required: the exporter keeps the rotated refresh token there");
                None
            }
            Some(f) if self.refresh_tokens_may_be_missing => Some(self.base_dir.join(&f.value)),
            Some(f) => {
                let path = self.base_dir.join(&f.value);
                let readable = std::fs::read_to_string(&path);
                match readable {
                    Ok(s) if s.trim().is_empty() => {
                        self.report(f, format!("oauth.refresh_token_file {}: file is empty; put the integration's refresh token in it", path.display()));
                    }
                    Ok(_) => {
                        // Rotated tokens are written next to the file and renamed over it.
                        let dir = path.parent().unwrap_or(Path::new("."));
                        // Creating a file is the only true test: permission bits say
                        // nothing of who owns the directory, nor of read-only mounts.
                        let writable = dir_accepts_new_files(dir)
                            && std::fs::OpenOptions::new().append(true).open(&path).is_ok();
                        if !writable {
                            self.report(f, format!("oauth.refresh_token_file {}: not writable; the exporter must persist rotated refresh tokens", path.display()));
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.report(
                        f,
                        format!(
                            "oauth.refresh_token_file {}: cannot read: {e}; `tenant-exporter oauth-login` creates it",
                            path.display()
                        ),
                    ),
                    Err(e) => self.report(
                        f,
                        format!(
                            "oauth.refresh_token_file {}: cannot read: {e}",
                            path.display()
                        ),
                    ),
                }
                Some(path)
            }
        };
        Some(OAuthConfig {
            client_id: client_id?,
            client_secret: client_secret?,
            refresh_token_file: file?,
        })
    }

    /// A password login, or an API access token with an optional refresh token file.
    fn commvault_credentials(&mut self, cv: &RawCommvault) -> Option<CommvaultCredentials> {
        let password = cv.password.is_some() || cv.password_file.is_some();
        let token = cv.access_token.is_some() || cv.access_token_file.is_some();
        if password && token {
            self.report(
                &cv.name,
                "password(_file) and access_token(_file) are mutually exclusive: use one way to log in",
            );
            return None;
        }
        if !token {
            if let Some(f) = &cv.refresh_token_file {
                self.report(
                    f,
                    "refresh_token_file needs access_token or access_token_file",
                );
            }
            if !password {
                self.report(
                    &cv.name,
                    "one of password, password_file (with username), access_token or access_token_file is required",
                );
                return None;
            }
            let username = self.required(&cv.name, "username", &cv.username);
            let password = self.secret(&cv.name, "password", &cv.password, &cv.password_file);
            return Some(CommvaultCredentials::Password {
                username: username?,
                password: password?,
            });
        }
        if let Some(u) = &cv.username {
            self.report(u, "username is not used with an access token; remove it");
        }
        let access_token = self.secret(
            &cv.name,
            "access_token",
            &cv.access_token,
            &cv.access_token_file,
        );
        let refresh_token_file = match &cv.refresh_token_file {
            None => None,
            Some(f) => {
                let path = self.base_dir.join(&f.value);
                match std::fs::read_to_string(&path) {
                    Ok(s) if s.trim().is_empty() => self.report(f, format!("refresh_token_file {}: file is empty; put the access token's refresh token in it", path.display())),
                    Ok(_) => {
                        let dir = path.parent().unwrap_or(Path::new("."));
                        let writable = std::fs::metadata(dir)
                            .map(|m| !m.permissions().readonly())
                            .unwrap_or(false)
                            && std::fs::OpenOptions::new().append(true).open(&path).is_ok();
                        if !writable {
                            self.report(f, format!("refresh_token_file {}: not writable; the exporter must persist rotated refresh tokens", path.display()));
                        }
                    }
                    Err(e) => self.report(f, format!("refresh_token_file {}: cannot read: {e}", path.display())),
                }
                Some(path)
            }
        };
        Some(CommvaultCredentials::AccessToken {
            access_token: access_token?,
            refresh_token_file,
        })
    }

    fn managed_orgs(
        &mut self,
        raw: &Spanned<RawManagedOrgs>,
        interval: Duration,
    ) -> Option<ManagedOrgsConfig> {
        let m = &raw.value;
        let interval = self.duration("managed_orgs.interval", &m.interval, interval);
        let mut admins: Vec<Admin> = Vec::new();
        for a in m.admins.iter().flatten() {
            let name = a.name.value.trim();
            if name.is_empty() {
                self.report(&a.name, "managed_orgs.admins[].name must not be empty");
            } else if admins.iter().any(|x| x.name == name) {
                self.report(&a.name, format!("duplicate admin name {name:?}"));
            }
            if a.person_id.value.trim().is_empty() {
                self.report(
                    &a.person_id,
                    "managed_orgs.admins[].person_id must not be empty",
                );
            }
            admins.push(Admin {
                name: name.to_string(),
                person_id: a.person_id.value.trim().to_string(),
            });
        }
        if admins.is_empty() {
            self.report(
                raw,
                "managed_orgs.admins: list at least one partner admin (name, person_id)",
            );
            return None;
        }
        Some(ManagedOrgsConfig { admins, interval })
    }

    /// A target's `proxy_url`. The value is never echoed: it may carry a password.
    fn proxy_url(&mut self, raw: &Option<Spanned<String>>) -> Option<ProxyUrl> {
        let raw = raw.as_ref()?;
        match Url::parse(raw.value.trim()) {
            Ok(u) if !matches!(u.scheme(), "http" | "https" | "socks5" | "socks5h") => {
                self.report(
                    raw,
                    "proxy_url: scheme must be http, https, socks5 or socks5h, e.g. http://proxy.example.com:3128",
                );
                None
            }
            Ok(u) if u.host().is_none() => {
                self.report(raw, "proxy_url: has no host");
                None
            }
            Ok(u) => Some(ProxyUrl(u)),
            Err(_) => {
                self.report(
                    raw,
                    "proxy_url: not a URL; expected e.g. http://proxy.example.com:3128 or socks5://10.0.0.1:1080",
                );
                None
            }
        }
    }

    fn tls(&mut self, ca_file: &Option<Spanned<String>>, insecure: Option<bool>) -> TlsConfig {
        let ca_file = ca_file.as_ref().and_then(|f| {
            let path = self.base_dir.join(&f.value);
            match std::fs::read(&path) {
                Ok(pem)
                    if reqwest::Certificate::from_pem_bundle(&pem).is_ok_and(|c| !c.is_empty()) =>
                {
                    Some(path)
                }
                Ok(_) => {
                    self.report(
                        f,
                        format!("ca_file {}: no PEM certificate in it", path.display()),
                    );
                    None
                }
                Err(e) => {
                    self.report(f, format!("ca_file {}: cannot read: {e}", path.display()));
                    None
                }
            }
        });
        TlsConfig {
            ca_file,
            insecure_skip_verify: insecure.unwrap_or(false),
            proxy_url: None,
        }
    }

    /// Resolves a secret given inline (optionally as `${ENV_VAR}`) or as `<field>_file`.
    fn secret(
        &mut self,
        owner: &Spanned<String>,
        field: &str,
        inline: &Option<Spanned<String>>,
        file: &Option<Spanned<String>>,
    ) -> Option<Secret> {
        match (inline, file) {
            (Some(_), Some(f)) => {
                self.report(
                    f,
                    format!("{field} and {field}_file are mutually exclusive"),
                );
                None
            }
            (None, None) => {
                self.report(owner, format!("one of {field} or {field}_file is required"));
                None
            }
            (Some(v), None) => {
                let value = v.value.trim();
                if let Some(var) = value.strip_prefix("${").and_then(|s| s.strip_suffix('}')) {
                    match (self.env)(var) {
                        Some(s) if !s.trim().is_empty() => Some(Secret::new(s.trim())),
                        _ => {
                            self.report(
                                v,
                                format!("{field}: environment variable {var} is not set or empty"),
                            );
                            None
                        }
                    }
                } else if value.is_empty() {
                    self.report(v, format!("{field} is empty"));
                    None
                } else {
                    Some(Secret::new(value))
                }
            }
            (None, Some(f)) => {
                let path = self.base_dir.join(&f.value);
                match std::fs::read_to_string(&path) {
                    Ok(s) if !s.trim().is_empty() => Some(Secret::new(s.trim())),
                    Ok(_) => {
                        self.report(f, format!("{field}_file {}: file is empty", path.display()));
                        None
                    }
                    Err(e) => {
                        self.report(
                            f,
                            format!("{field}_file {}: cannot read: {e}", path.display()),
                        );
                        None
                    }
                }
            }
        }
    }

    /// The overrides of one `metrics:` block, in order: unknown names, names of families
    /// the target's collectors do not expose, and a name both enabled and disabled are
    /// errors.
    fn metric_overrides(
        &mut self,
        field: &str,
        raw: Option<&RawMetrics>,
        collectors: &[&str],
    ) -> Vec<(String, bool)> {
        let Some(raw) = raw else { return Vec::new() };
        let mut out: Vec<(String, bool)> = Vec::new();
        for (list, on) in [(&raw.disable, false), (&raw.enable, true)] {
            let key = if on { "enable" } else { "disable" };
            for name in list.iter().flatten() {
                let n = name.value.trim();
                match families::collector_of(n) {
                    None => self.report(
                        name,
                        format!("{field}.{key}: unknown metric family {n:?}; the README's Metrics section lists them"),
                    ),
                    Some(c) if !collectors.contains(&c) => self.report(
                        name,
                        format!("{field}.{key}: {n:?} is a family of {c}, which this target does not run"),
                    ),
                    Some(_) if out.iter().any(|(o, v)| o == n && *v != on) => self.report(
                        name,
                        format!("{field}: {n:?} is both enabled and disabled"),
                    ),
                    Some(_) => out.push((n.to_string(), on)),
                }
            }
        }
        out
    }

    /// A base URL; required unless a default is given.
    fn base_url(
        &mut self,
        owner: &Spanned<String>,
        raw: &Option<Spanned<String>>,
        default: Option<&str>,
    ) -> Option<Url> {
        let Some(raw) = raw else {
            return match default {
                Some(d) => Some(Url::parse(d).expect("default base URL is valid")),
                None => {
                    self.report(owner, "base_url is required");
                    None
                }
            };
        };
        match Url::parse(raw.value.trim()) {
            Ok(u) if !matches!(u.scheme(), "http" | "https") => {
                self.report(raw, "base_url: scheme must be http or https");
                None
            }
            Ok(u) if u.host().is_none() => {
                self.report(raw, "base_url: has no host");
                None
            }
            Ok(u) if !u.username().is_empty() || u.password().is_some() => {
                self.report(
                    raw,
                    "base_url: must not carry credentials; use the credential fields",
                );
                None
            }
            Ok(u) => Some(u),
            Err(url::ParseError::RelativeUrlWithoutBase) => {
                // The value is not echoed: a mistyped URL may carry credentials.
                self.report(
                    raw,
                    "base_url: not an absolute URL; write the scheme and host, e.g. https://host.example.com:8443/path",
                );
                None
            }
            Err(e) => {
                self.report(
                    raw,
                    format!("base_url: {e}; expected e.g. https://host.example.com:8443/path"),
                );
                None
            }
        }
    }
}

/// Whether a file can be created in `dir`: creates and removes a probe file.
fn dir_accepts_new_files(dir: &Path) -> bool {
    let probe = dir.join(format!(".tenant-exporter-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            true
        }
        // Left over by a process with the same id that died: the directory is writable.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let _ = std::fs::remove_file(&probe);
            true
        }
        Err(_) => false,
    }
}

impl Config {
    /// Keeps only the targets `shard` owns.
    pub fn sharded(mut self, shard: Option<Shard>) -> Config {
        if let Some(shard) = shard {
            self.targets.retain(|t| shard.owns(t.name()));
        }
        self
    }

    /// Reads and validates a config file. Relative `*_file` paths resolve against the
    /// config file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: origin.clone(),
            problems: vec![Problem {
                line: None,
                column: None,
                message: format!("cannot read config file: {e}"),
            }],
        })?;
        let base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Config::parse(&text, &origin, &base_dir, &|var| std::env::var(var).ok())
    }

    /// Reads and checks a config file for `--config.check`: the config when it is usable,
    /// and every error and warning.
    pub fn check(path: &Path) -> (Option<Config>, Diagnostics) {
        let origin = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                let problem = Problem {
                    line: None,
                    column: None,
                    message: format!("cannot read config file: {e}"),
                };
                return (
                    None,
                    Diagnostics {
                        origin,
                        errors: vec![problem],
                        warnings: Vec::new(),
                    },
                );
            }
        };
        let base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Config::parse_checked(&text, &origin, &base_dir, &|var| std::env::var(var).ok())
    }

    /// Parses and validates YAML text. `env` resolves `${VAR}` references.
    pub fn parse(
        text: &str,
        origin: &str,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let (config, d) = Config::parse_checked(text, origin, base_dir, env);
        for w in &d.warnings {
            let at = match (w.line, w.column) {
                (Some(l), Some(c)) => format!("{origin}:{l}:{c}"),
                _ => origin.to_string(),
            };
            tracing::warn!(at = %at, "config: {}", w.message);
        }
        config.ok_or(ConfigError {
            origin: d.origin,
            problems: d.errors,
        })
    }

    /// Parses and validates YAML text, returning the config when it has no error, and every
    /// error and warning in file order.
    pub fn parse_checked(
        text: &str,
        origin: &str,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> (Option<Config>, Diagnostics) {
        Config::parse_with(text, origin, base_dir, env, false)
    }

    /// Reads a config for `oauth-login`, which writes the refresh token files, so they need
    /// not exist yet.
    pub fn load_for_oauth_login(path: &Path) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: origin.clone(),
            problems: vec![Problem {
                line: None,
                column: None,
                message: format!("cannot read config file: {e}"),
            }],
        })?;
        let base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let (config, d) =
            Config::parse_with(&text, &origin, &base_dir, &|v| std::env::var(v).ok(), true);
        config.ok_or(ConfigError {
            origin: d.origin,
            problems: d.errors,
        })
    }

    fn parse_with(
        text: &str,
        origin: &str,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
        refresh_tokens_may_be_missing: bool,
    ) -> (Option<Config>, Diagnostics) {
        let diagnostics = |mut errors: Vec<Problem>, mut warnings: Vec<Problem>| {
            errors.sort_by_key(|p| (p.line, p.column));
            warnings.sort_by_key(|p| (p.line, p.column));
            Diagnostics {
                origin: origin.to_string(),
                errors,
                warnings,
            }
        };
        // An empty file is a valid config with nothing to collect.
        let (raw, structural): (RawConfig, Vec<Problem>) = if text.trim().is_empty() {
            let raw = RawConfig {
                global: None,
                webex: None,
                voss: None,
                commvault: None,
            };
            (raw, Vec::new())
        } else {
            match yaml::deserialize_all(text) {
                (Some(raw), problems) => (raw, problems),
                (None, problems) => return (None, diagnostics(problems, Vec::new())),
            }
        };

        let mut c = Checker {
            base_dir,
            env,
            problems: structural,
            warnings: Vec::new(),
            refresh_tokens_may_be_missing,
        };
        if raw.webex.iter().flatten().next().is_none()
            && raw.voss.iter().flatten().next().is_none()
            && raw.commvault.iter().flatten().next().is_none()
        {
            c.warnings.push(Problem {
                line: None,
                column: None,
                message: "no webex, voss or commvault targets: the exporter will collect nothing"
                    .into(),
            });
        }
        let all_collectors = families::tables().map(|(c, _)| c);
        let global_metrics = c.metric_overrides(
            "global.metrics",
            raw.global.as_ref().and_then(|g| g.metrics.as_ref()),
            &all_collectors,
        );
        // Global lists first, then the target's: the target's win.
        let selection = |target: Vec<(String, bool)>| {
            FamilySelection::new(global_metrics.iter().cloned().chain(target).collect())
        };
        let global = match &raw.global {
            None => Global::default(),
            Some(g) => Global {
                interval: c.duration("global.interval", &g.interval, DEFAULT_INTERVAL),
                timeout: c.duration("global.timeout", &g.timeout, DEFAULT_TIMEOUT),
                stale_after: c.duration("global.stale_after", &g.stale_after, DEFAULT_STALE_AFTER),
                limits: match &g.limits {
                    Some(l) => c.limits(l),
                    None => Limits::default(),
                },
            },
        };
        if let Some(g) = &raw.global {
            let at = g.timeout.as_ref().or(g.interval.as_ref()).cloned();
            c.interval_vs_timeout("global.interval", &at, global.interval, global.timeout);
        }
        if let Some(stale) = raw.global.as_ref().and_then(|g| g.stale_after.as_ref()) {
            if global.stale_after < global.interval {
                c.report(
                    stale,
                    "global.stale_after must not be shorter than global.interval",
                );
            }
        }

        let mut names: Vec<&Spanned<String>> = Vec::new();
        let mut targets = Vec::new();
        let mut refresh_files: Vec<PathBuf> = Vec::new();
        for w in raw.webex.iter().flatten() {
            let name = c.target_name(&w.name, &mut names);
            let base_url = c.base_url(&w.name, &w.base_url, Some(DEFAULT_WEBEX_BASE_URL));
            c.base_url_warnings(
                &w.base_url,
                &base_url,
                &[
                    "/broadworks/enterprises",
                    "/partner/organizations",
                    "/access_token",
                ],
            );
            let credentials = match (&w.oauth, &w.access_token, &w.access_token_file) {
                (Some(o), None, None) => c.oauth(o).map(WebexCredentials::OAuth),
                (Some(o), _, _) => {
                    c.report(o, "oauth and access_token(_file) are mutually exclusive");
                    None
                }
                (None, t, f) => c
                    .secret(&w.name, "access_token", t, f)
                    .map(WebexCredentials::AccessToken),
            };
            if let (Some(WebexCredentials::OAuth(o)), Some(raw)) = (&credentials, &w.oauth) {
                if refresh_files.contains(&o.refresh_token_file) {
                    c.report(raw, "oauth.refresh_token_file is used by another target: each integration needs its own");
                }
                refresh_files.push(o.refresh_token_file.clone());
            }
            let broadworks = match &w.broadworks_enterprises {
                Some(b) if b.value.enabled == Some(false) => None,
                Some(b) => {
                    let interval = c.duration(
                        "broadworks_enterprises.interval",
                        &b.value.interval,
                        global.interval,
                    );
                    c.interval_vs_timeout(
                        "broadworks_enterprises.interval",
                        &b.value.interval,
                        interval,
                        global.timeout,
                    );
                    let page_size = c.page_size(
                        "broadworks_enterprises.page_size",
                        &b.value.page_size,
                        MAX_BROADWORKS_PAGE_SIZE,
                        MAX_BROADWORKS_PAGE_SIZE,
                    );
                    let starts_with = b.value.starts_with.clone().filter(|s| !s.is_empty());
                    Some(BroadworksConfig {
                        starts_with,
                        interval,
                        page_size,
                    })
                }
                None => None,
            };
            let mut tls = c.tls(&w.ca_file, None);
            tls.proxy_url = c.proxy_url(&w.proxy_url);
            let managed_orgs = match &w.managed_orgs {
                Some(m) if m.value.enabled == Some(false) => None,
                Some(m) => c.managed_orgs(m, global.interval),
                None => None,
            };
            let enabled = |on: Option<bool>| on != Some(false);
            let wants_broadworks = w
                .broadworks_enterprises
                .as_ref()
                .is_some_and(|b| enabled(b.value.enabled));
            let wants_managed_orgs = w
                .managed_orgs
                .as_ref()
                .is_some_and(|m| enabled(m.value.enabled));
            if !wants_broadworks && !wants_managed_orgs {
                c.report(
                    &w.name,
                    "nothing to collect: enable broadworks_enterprises or managed_orgs",
                );
            }
            let metrics = c.metric_overrides(
                "metrics",
                w.metrics.as_ref(),
                &[
                    crate::sources::webex::broadworks::COLLECTOR,
                    crate::sources::webex::managed_orgs::COLLECTOR,
                ],
            );
            if let (Some(base_url), Some(credentials)) = (base_url, credentials) {
                targets.push(Target::Webex(WebexTarget {
                    name,
                    base_url,
                    tls,
                    credentials,
                    broadworks,
                    managed_orgs,
                    metrics: selection(metrics),
                }));
            }
        }

        for v in raw.voss.iter().flatten() {
            let name = c.target_name(&v.name, &mut names);
            let base_url = c.base_url(&v.name, &v.base_url, None);
            c.base_url_warnings(&v.base_url, &base_url, &["/api"]);
            let username = c.required(&v.name, "username", &v.username);
            let password = c.secret(&v.name, "password", &v.password, &v.password_file);
            let hierarchy = c.required(&v.name, "hierarchy", &v.hierarchy);
            let page_size = c.page_size(
                "page_size",
                &v.page_size,
                DEFAULT_VOSS_PAGE_SIZE,
                MAX_VOSS_PAGE_SIZE,
            );
            let interval = c.duration("interval", &v.interval, global.interval);
            c.interval_vs_timeout("interval", &v.interval, interval, global.timeout);
            let mut tls = c.tls(&v.ca_file, v.insecure_skip_verify);
            tls.proxy_url = c.proxy_url(&v.proxy_url);
            let metrics = c.metric_overrides(
                "metrics",
                v.metrics.as_ref(),
                &[crate::sources::voss::COLLECTOR],
            );
            if let (Some(base_url), Some(username), Some(password), Some(hierarchy)) =
                (base_url, username, password, hierarchy)
            {
                targets.push(Target::Voss(VossTarget {
                    name,
                    base_url,
                    username,
                    password,
                    hierarchy,
                    page_size,
                    interval,
                    tls,
                    metrics: selection(metrics),
                }));
            }
        }

        for cv in raw.commvault.iter().flatten() {
            let name = c.target_name(&cv.name, &mut names);
            let base_url = c.base_url(&cv.name, &cv.base_url, None);
            c.base_url_warnings(&cv.base_url, &base_url, &["/Login", "/Organization"]);
            let credentials = c.commvault_credentials(cv);
            let device_id = match &cv.device_id {
                Some(d) if d.value.trim().is_empty() => {
                    c.report(d, "device_id is empty; leave it out for the default");
                    String::new()
                }
                Some(d) => d.value.trim().to_string(),
                None => default_device_id(&name, base_url.as_ref()),
            };
            let organizations = match &cv.organizations {
                None => None,
                Some(o) => match &o.value {
                    RawOrganizations::Keyword(k) if k == "all" => None,
                    RawOrganizations::Keyword(k) => {
                        c.report(
                            o,
                            format!("organizations: expected `all` or a list of ids, got {k:?}"),
                        );
                        None
                    }
                    RawOrganizations::Ids(ids) if ids.is_empty() => {
                        c.report(o, "organizations: the list is empty; use `all` or ids");
                        None
                    }
                    RawOrganizations::Ids(ids) => Some(ids.clone()),
                },
            };
            let interval = c.duration("interval", &cv.interval, global.interval);
            c.interval_vs_timeout("interval", &cv.interval, interval, global.timeout);
            let concurrency = match &cv.concurrency {
                None => DEFAULT_COMMVAULT_CONCURRENCY,
                Some(n) if n.value == 0 || n.value > 64 => {
                    c.report(n, "concurrency must be between 1 and 64");
                    DEFAULT_COMMVAULT_CONCURRENCY
                }
                Some(n) => n.value as usize,
            };
            let mut tls = c.tls(&cv.ca_file, cv.insecure_skip_verify);
            tls.proxy_url = c.proxy_url(&cv.proxy_url);
            let metrics = c.metric_overrides(
                "metrics",
                cv.metrics.as_ref(),
                &[crate::sources::commvault::COLLECTOR],
            );
            if let (Some(base_url), Some(credentials)) = (base_url, credentials) {
                targets.push(Target::Commvault(CommvaultTarget {
                    name,
                    base_url,
                    credentials,
                    device_id,
                    organizations,
                    interval,
                    concurrency,
                    tls,
                    stale_after: global.stale_after,
                    metrics: selection(metrics),
                }));
            }
        }

        let config = c.problems.is_empty().then_some(Config { global, targets });
        (config, diagnostics(c.problems, c.warnings))
    }
}

/// The Commvault `deviceId` when the config names none: stable for a target, so a restart
/// or another replica of the same target presents the same device.
fn default_device_id(target: &str, base_url: Option<&Url>) -> String {
    let host = base_url.and_then(Url::host_str).unwrap_or("");
    let id: String = format!("tenant-exporter-{target}-{host}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    id
}

fn yaml_problem(e: &serde_saphyr::Error) -> Problem {
    let loc = e.location();
    // The rendered error repeats the position and a source snippet; keep the first line,
    // which carries the message itself.
    let rendered = e.to_string();
    let mut message = rendered.lines().next().unwrap_or("invalid YAML").trim();
    message = message
        .strip_prefix("error:")
        .unwrap_or(message)
        .trim_start();
    // Drop the "line L column C:" prefix; the position is printed in front already.
    if let (Some(rest), Some(_)) = (message.strip_prefix("line "), loc) {
        if let Some((_, msg)) = rest.split_once(": ") {
            message = msg;
        }
    }
    let message = message.to_string();
    Problem {
        line: loc.map(|l| l.line()),
        column: loc.map(|l| l.column()),
        message,
    }
}

#[cfg(test)]
mod tests;
