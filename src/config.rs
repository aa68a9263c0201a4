//! Configuration: the YAML schema, read in two phases.
//!
//! Phase one deserializes into `Raw*` structs that keep every value's position, setting aside
//! each entry serde rejects so one unknown key or wrong type does not hide the rest
//! (`yaml.rs`). Phase two validates into the types the program runs on, collecting every
//! problem and warning before reporting, so `--config.check` shows all mistakes at once and
//! an invalid config cannot be represented.
//!
//! This file holds the file as a whole and `global:`; each source's section, raw and checked,
//! lives with the source (`sources/<source>/config.rs`), on the helpers of `check.rs`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;
use url::Url;

pub(crate) mod check;
mod yaml;
use crate::sources::commvault::config::{CommvaultTarget, RawCommvault};
use crate::sources::families;
use crate::sources::voss::config::{RawVoss, VossTarget};
use crate::sources::webex::config::{RawWebex, WebexTarget};
use crate::sources::{commvault, voss, webex};
use check::{Checker, Context};

const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(3600);

/// A credential. It has no `Display` and its `Debug` is redacted, so it cannot reach a log
/// line or an error message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub(crate) fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub(crate) fn expose(&self) -> &str {
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
    pub(crate) global: Global,
    /// In file order within a section; sections in the order `webex`, `voss`, `commvault`.
    pub(crate) targets: Vec<Target>,
}

/// One configured target of any source.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Target {
    Webex(WebexTarget),
    Voss(VossTarget),
    Commvault(CommvaultTarget),
}

impl Target {
    /// The `target` label, unique across every source.
    pub(crate) fn name(&self) -> &str {
        match self {
            Target::Webex(t) => &t.name,
            Target::Voss(t) => &t.name,
            Target::Commvault(t) => &t.name,
        }
    }
}

impl Config {
    /// The targets counted by source, as `--config.check` prints them:
    /// `2 webex, 0 voss, 1 commvault targets`.
    pub(crate) fn summary(&self) -> String {
        let (mut webex, mut voss, mut commvault) = (0, 0, 0);
        for t in &self.targets {
            match t {
                Target::Webex(_) => webex += 1,
                Target::Voss(_) => voss += 1,
                Target::Commvault(_) => commvault += 1,
            }
        }
        format!("{webex} webex, {voss} voss, {commvault} commvault targets")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Global {
    /// How often each collector polls its target, unless the collector overrides it.
    pub(crate) interval: Duration,
    /// Per upstream request.
    pub(crate) timeout: Duration,
    /// A target's samples are dropped after this long without a successful collection.
    pub(crate) stale_after: Duration,
    pub(crate) limits: Limits,
}

/// Bounds on what upstreams can make the exporter hold (`global.limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Largest response body read.
    pub(crate) max_body_bytes: usize,
    /// Response bytes held at once across all targets.
    pub(crate) max_body_bytes_in_flight: usize,
    /// Pages one collection reads at most.
    pub(crate) max_pages: usize,
    /// Objects one collection reads at most.
    pub(crate) max_objects: usize,
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

/// How to trust an upstream's TLS certificate.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct TlsConfig {
    /// PEM bundle of extra trusted CAs, for self-signed appliances.
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) insecure_skip_verify: bool,
    /// The proxy this target is reached through, instead of HTTPS_PROXY/HTTP_PROXY.
    pub(crate) proxy_url: Option<ProxyUrl>,
}

/// A proxy URL (http, https, socks5, socks5h). It may carry credentials, so its `Debug`
/// shows only scheme, host and port.
#[derive(Clone, PartialEq)]
pub(crate) struct ProxyUrl(Url);

impl ProxyUrl {
    pub(crate) fn url(&self) -> &Url {
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

/// This replica's part of the targets when several replicas split them (`--shard=i/n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub(crate) index: u32,
    pub(crate) count: u32,
}

/// What is wrong with a `--shard` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("expected INDEX/COUNT, e.g. 0/3")]
    Form,
    #[error("index {0:?} is not a number")]
    Index(String),
    #[error("count {0:?} is not a number")]
    Count(String),
    #[error("index must be below count, got {index}/{count}")]
    OutOfRange { index: u32, count: u32 },
}

impl std::str::FromStr for Shard {
    type Err = ShardError;

    /// `INDEX/COUNT`, where INDEX may be a StatefulSet pod name (`tenant-exporter-2`) whose
    /// trailing ordinal is the index.
    fn from_str(s: &str) -> Result<Shard, ShardError> {
        let (index, count) = s.rsplit_once('/').ok_or(ShardError::Form)?;
        let index = match index.rsplit_once('-') {
            Some((pod, ordinal)) if !pod.is_empty() => ordinal,
            _ => index,
        };
        let index: u32 = index
            .parse()
            .map_err(|_| ShardError::Index(index.to_string()))?;
        let count: u32 = count
            .parse()
            .map_err(|_| ShardError::Count(count.to_string()))?;
        if count == 0 || index >= count {
            return Err(ShardError::OutOfRange { index, count });
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// Whether this shard collects `target`. Stable across processes and versions: FNV-1a of
    /// the name, so every replica agrees on who owns what.
    pub(crate) fn owns(&self, target: &str) -> bool {
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
    pub(crate) line: Option<u64>,
    pub(crate) column: Option<u64>,
    pub message: String,
}

/// Every problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub(crate) origin: String,
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
    pub(crate) origin: String,
    pub(crate) errors: Vec<Problem>,
    pub(crate) warnings: Vec<Problem>,
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

/// The whole file. Each source's section is its own schema (`sources/<source>/config.rs`);
/// a new source adds its field here and its check to [`check_targets`].
#[derive(Deserialize, Default)]
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
pub(crate) struct RawMetrics {
    enable: Option<Vec<Spanned<String>>>,
    disable: Option<Vec<Spanned<String>>>,
}

impl Checker<'_> {
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
        let (origin, text, base_dir) = read(path)?;
        Config::parse(&text, &origin, &base_dir, &|var| std::env::var(var).ok())
    }

    /// Reads and checks a config file for `--config.check`: the config when it is usable,
    /// and every error and warning.
    pub(crate) fn check(path: &Path) -> (Option<Config>, Diagnostics) {
        match read(path) {
            Ok((origin, text, base_dir)) => {
                Config::parse_checked(&text, &origin, &base_dir, &|var| std::env::var(var).ok())
            }
            Err(e) => (
                None,
                Diagnostics {
                    origin: e.origin,
                    errors: e.problems,
                    warnings: Vec::new(),
                },
            ),
        }
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
    pub(crate) fn load_for_oauth_login(path: &Path) -> Result<Config, ConfigError> {
        let (origin, text, base_dir) = read(path)?;
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
            (RawConfig::default(), Vec::new())
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
            names: Vec::new(),
        };
        let all_collectors: Vec<&str> = families::tables().into_iter().map(|(c, _)| c).collect();
        let global_metrics = c.metric_overrides(
            "global.metrics",
            raw.global.as_ref().and_then(|g| g.metrics.as_ref()),
            &all_collectors,
        );
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

        let cx = Context {
            global,
            global_metrics,
        };
        let targets = check_targets(&raw, &mut c, &cx);
        if c.names.is_empty() {
            c.warnings.insert(
                0,
                Problem {
                    line: None,
                    column: None,
                    message: format!("no {SECTIONS} targets: the exporter will collect nothing"),
                },
            );
        }
        let config = c.problems.is_empty().then_some(Config {
            global: cx.global,
            targets,
        });
        (config, diagnostics(c.problems, c.warnings))
    }
}

/// The target sections, in the words of the "nothing to collect" warning.
const SECTIONS: &str = "webex, voss or commvault";

/// Checks every source's section. The order is that of the jobs, and decides which of two
/// targets of the same name is reported as the duplicate.
fn check_targets(raw: &RawConfig, c: &mut Checker<'_>, cx: &Context) -> Vec<Target> {
    // Destructured, so that a new section cannot be left unchecked.
    let RawConfig {
        global: _,
        webex,
        voss,
        commvault,
    } = raw;
    let mut targets = Vec::new();
    let webex = webex::config::check(c, cx, webex.as_deref().unwrap_or_default());
    targets.extend(webex.into_iter().map(Target::Webex));
    let voss = voss::config::check(c, cx, voss.as_deref().unwrap_or_default());
    targets.extend(voss.into_iter().map(Target::Voss));
    let commvault = commvault::config::check(c, cx, commvault.as_deref().unwrap_or_default());
    targets.extend(commvault.into_iter().map(Target::Commvault));
    targets
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

/// A config file's name for messages, its text, and the directory relative `*_file` paths
/// resolve against.
fn read(path: &Path) -> Result<(String, String, PathBuf), ConfigError> {
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
    Ok((origin, text, base_dir))
}

#[cfg(test)]
mod tests;
