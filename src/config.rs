//! Configuration: the YAML schema, read in two phases.
//!
//! Phase one deserializes into `Raw*` structs that keep every value's position. Phase two
//! validates into the types the program runs on, collecting every problem before reporting,
//! so `--config.check` shows all mistakes at once and an invalid config cannot be represented.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;
use url::Url;

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
    pub webex: Vec<WebexTarget>,
    pub voss: Vec<VossTarget>,
    pub commvault: Vec<CommvaultTarget>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Global {
    /// How often each collector polls its target, unless the collector overrides it.
    pub interval: Duration,
    /// Per upstream request.
    pub timeout: Duration,
    /// A target's samples are dropped after this long without a successful collection.
    pub stale_after: Duration,
}

impl Default for Global {
    fn default() -> Self {
        Global {
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            stale_after: DEFAULT_STALE_AFTER,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct WebexTarget {
    pub name: String,
    pub base_url: Url,
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
    pub username: String,
    pub password: Secret,
    /// `None` means every organization the account sees.
    pub organizations: Option<Vec<u64>>,
    pub interval: Duration,
    /// Organization detail requests in flight at once.
    pub concurrency: usize,
    pub tls: TlsConfig,
    /// The metric families this target exposes (`metrics:`).
    pub metrics: FamilySelection,
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
    metrics: Option<RawMetrics>,
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
    organizations: Option<Spanned<RawOrganizations>>,
    interval: Option<Spanned<String>>,
    concurrency: Option<Spanned<u32>>,
    ca_file: Option<Spanned<String>>,
    insecure_skip_verify: Option<bool>,
    metrics: Option<RawMetrics>,
}

/// `organizations: all` or a list of ids.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawOrganizations {
    Keyword(String),
    Ids(Vec<u64>),
}

/// Collects problems while validating, so one pass reports all of them.
struct Checker<'a> {
    base_dir: &'a Path,
    env: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn report<T>(&mut self, at: &Spanned<T>, message: impl Into<String>) {
        self.problems.push(Problem {
            line: Some(at.referenced.line()),
            column: Some(at.referenced.column()),
            message: message.into(),
        });
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
                        let writable = std::fs::metadata(dir)
                            .map(|m| !m.permissions().readonly())
                            .unwrap_or(false)
                            && std::fs::OpenOptions::new().append(true).open(&path).is_ok();
                        if !writable {
                            self.report(f, format!("oauth.refresh_token_file {}: not writable; the exporter must persist rotated refresh tokens", path.display()));
                        }
                    }
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
    fn base_url(&mut self, raw: &Option<Spanned<String>>, default: Option<&str>) -> Option<Url> {
        let Some(raw) = raw else {
            return match default {
                Some(d) => Some(Url::parse(d).expect("default base URL is valid")),
                None => {
                    self.problems.push(Problem {
                        line: None,
                        column: None,
                        message: "base_url is required".into(),
                    });
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
            Err(e) => {
                // The value is not echoed: a mistyped URL may carry credentials.
                self.report(raw, format!("base_url: {e}"));
                None
            }
        }
    }
}

impl Config {
    /// Keeps only the targets `shard` owns.
    pub fn sharded(mut self, shard: Option<Shard>) -> Config {
        if let Some(shard) = shard {
            self.webex.retain(|t| shard.owns(&t.name));
            self.voss.retain(|t| shard.owns(&t.name));
            self.commvault.retain(|t| shard.owns(&t.name));
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

    /// Parses and validates YAML text. `env` resolves `${VAR}` references.
    pub fn parse(
        text: &str,
        origin: &str,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let fail = |problems| ConfigError {
            origin: origin.to_string(),
            problems,
        };
        // An empty file is a valid config with nothing to collect.
        let raw: RawConfig = if text.trim().is_empty() {
            RawConfig {
                global: None,
                webex: None,
                voss: None,
                commvault: None,
            }
        } else {
            serde_saphyr::from_str(text).map_err(|e| fail(vec![yaml_problem(&e)]))?
        };

        let mut c = Checker {
            base_dir,
            env,
            problems: Vec::new(),
        };
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
            },
        };
        if let Some(stale) = raw.global.as_ref().and_then(|g| g.stale_after.as_ref()) {
            if global.stale_after < global.interval {
                c.report(
                    stale,
                    "global.stale_after must not be shorter than global.interval",
                );
            }
        }

        let mut names: Vec<&Spanned<String>> = Vec::new();
        let mut webex = Vec::new();
        let mut refresh_files: Vec<PathBuf> = Vec::new();
        for w in raw.webex.iter().flatten() {
            let name = c.target_name(&w.name, &mut names);
            let base_url = c.base_url(&w.base_url, Some(DEFAULT_WEBEX_BASE_URL));
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
                webex.push(WebexTarget {
                    name,
                    base_url,
                    credentials,
                    broadworks,
                    managed_orgs,
                    metrics: selection(metrics),
                });
            }
        }

        let mut voss = Vec::new();
        for v in raw.voss.iter().flatten() {
            let name = c.target_name(&v.name, &mut names);
            let base_url = c.base_url(&v.base_url, None);
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
            let tls = c.tls(&v.ca_file, v.insecure_skip_verify);
            let metrics = c.metric_overrides(
                "metrics",
                v.metrics.as_ref(),
                &[crate::sources::voss::COLLECTOR],
            );
            if let (Some(base_url), Some(username), Some(password), Some(hierarchy)) =
                (base_url, username, password, hierarchy)
            {
                voss.push(VossTarget {
                    name,
                    base_url,
                    username,
                    password,
                    hierarchy,
                    page_size,
                    interval,
                    tls,
                    metrics: selection(metrics),
                });
            }
        }

        let mut commvault = Vec::new();
        for cv in raw.commvault.iter().flatten() {
            let name = c.target_name(&cv.name, &mut names);
            let base_url = c.base_url(&cv.base_url, None);
            let username = c.required(&cv.name, "username", &cv.username);
            let password = c.secret(&cv.name, "password", &cv.password, &cv.password_file);
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
            let concurrency = match &cv.concurrency {
                None => DEFAULT_COMMVAULT_CONCURRENCY,
                Some(n) if n.value == 0 || n.value > 64 => {
                    c.report(n, "concurrency must be between 1 and 64");
                    DEFAULT_COMMVAULT_CONCURRENCY
                }
                Some(n) => n.value as usize,
            };
            let tls = c.tls(&cv.ca_file, cv.insecure_skip_verify);
            let metrics = c.metric_overrides(
                "metrics",
                cv.metrics.as_ref(),
                &[crate::sources::commvault::COLLECTOR],
            );
            if let (Some(base_url), Some(username), Some(password)) = (base_url, username, password)
            {
                commvault.push(CommvaultTarget {
                    name,
                    base_url,
                    username,
                    password,
                    organizations,
                    interval,
                    concurrency,
                    tls,
                    metrics: selection(metrics),
                });
            }
        }

        if c.problems.is_empty() {
            Ok(Config {
                global,
                webex,
                voss,
                commvault,
            })
        } else {
            Err(fail(c.problems))
        }
    }
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
