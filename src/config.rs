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

pub const DEFAULT_WEBEX_BASE_URL: &str = "https://webexapis.com/v1";
const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(3600);
/// The Webex API returns at most 1000 enterprises a page.
const MAX_BROADWORKS_PAGE_SIZE: u32 = 1000;

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
    pub access_token: Secret,
    pub broadworks: Option<BroadworksConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BroadworksConfig {
    pub starts_with: Option<String>,
    pub interval: Duration,
    pub page_size: u32,
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
    #[serde(default)]
    global: Option<RawGlobal>,
    #[serde(default)]
    webex: Option<Vec<RawWebex>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGlobal {
    interval: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    stale_after: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebex {
    name: Spanned<String>,
    base_url: Option<Spanned<String>>,
    access_token: Option<Spanned<String>>,
    access_token_file: Option<Spanned<String>>,
    broadworks_enterprises: Option<Spanned<RawBroadworks>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBroadworks {
    enabled: Option<bool>,
    starts_with: Option<String>,
    interval: Option<Spanned<String>>,
    page_size: Option<Spanned<u32>>,
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

    fn base_url(&mut self, raw: &Option<Spanned<String>>, default: &str) -> Option<Url> {
        let Some(raw) = raw else {
            return Some(Url::parse(default).expect("default base URL is valid"));
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
            }
        } else {
            serde_saphyr::from_str(text).map_err(|e| fail(vec![yaml_problem(&e)]))?
        };

        let mut c = Checker {
            base_dir,
            env,
            problems: Vec::new(),
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

        let mut webex = Vec::new();
        let mut names: Vec<&Spanned<String>> = Vec::new();
        for (i, w) in raw.webex.iter().flatten().enumerate() {
            let name = w.name.value.trim();
            if name.is_empty() {
                c.report(&w.name, format!("webex[{i}].name must not be empty"));
            } else if names.iter().any(|n| n.value.trim() == name) {
                c.report(&w.name, format!("duplicate target name {name:?}: names become the `target` label and must be unique"));
            }
            names.push(&w.name);

            let base_url = c.base_url(&w.base_url, DEFAULT_WEBEX_BASE_URL);
            let token = c.secret(
                &w.name,
                "access_token",
                &w.access_token,
                &w.access_token_file,
            );
            let broadworks = match &w.broadworks_enterprises {
                Some(b) if b.value.enabled == Some(false) => None,
                Some(b) => {
                    let interval = c.duration(
                        "broadworks_enterprises.interval",
                        &b.value.interval,
                        global.interval,
                    );
                    let page_size = match &b.value.page_size {
                        None => MAX_BROADWORKS_PAGE_SIZE,
                        Some(p) if p.value == 0 || p.value > MAX_BROADWORKS_PAGE_SIZE => {
                            c.report(p, format!("broadworks_enterprises.page_size must be between 1 and {MAX_BROADWORKS_PAGE_SIZE}"));
                            MAX_BROADWORKS_PAGE_SIZE
                        }
                        Some(p) => p.value,
                    };
                    let starts_with = b.value.starts_with.clone().filter(|s| !s.is_empty());
                    Some(BroadworksConfig {
                        starts_with,
                        interval,
                        page_size,
                    })
                }
                None => None,
            };
            if let (Some(base_url), Some(access_token)) = (base_url, token) {
                webex.push(WebexTarget {
                    name: name.to_string(),
                    base_url,
                    access_token,
                    broadworks,
                });
            }
        }

        if c.problems.is_empty() {
            Ok(Config { global, webex })
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
