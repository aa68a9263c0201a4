//! The checks every section of the config shares: positions, durations, URLs, secrets,
//! TLS files, metric overrides and target names.

use std::path::Path;
use std::time::Duration;

use serde_saphyr::Spanned;
use url::Url;

use super::{Global, Problem, ProxyUrl, RawMetrics, Secret, TlsConfig};
use crate::sources::families;

/// Longer durations are mistakes, and would overflow deadline arithmetic.
const MAX_DURATION: Duration = Duration::from_secs(30 * 86_400);

/// What a source's checks need of the rest of the config.
pub(crate) struct Context {
    pub(crate) global: Global,
    /// `global.metrics`, applied before the target's own `metrics:`.
    pub(crate) global_metrics: Vec<(String, bool)>,
}

impl Context {
    /// A target's family selection: the global lists first, then the target's, which win.
    pub(crate) fn selection(&self, target: Vec<(String, bool)>) -> families::FamilySelection {
        families::FamilySelection::new(self.global_metrics.iter().cloned().chain(target).collect())
    }
}

/// Collects problems while validating, so one pass reports all of them.
pub(crate) struct Checker<'a> {
    pub(crate) base_dir: &'a Path,
    pub(crate) env: &'a dyn Fn(&str) -> Option<String>,
    pub(crate) problems: Vec<Problem>,
    pub(crate) warnings: Vec<Problem>,
    /// `oauth-login` is about to create the refresh token files.
    pub(crate) refresh_tokens_may_be_missing: bool,
    /// The target names seen so far, trimmed, across every source.
    pub(crate) names: Vec<String>,
}

impl Checker<'_> {
    pub(crate) fn report<T>(&mut self, at: &Spanned<T>, message: impl Into<String>) {
        self.problems.push(Problem {
            line: Some(at.referenced.line()),
            column: Some(at.referenced.column()),
            message: message.into(),
        });
    }

    pub(crate) fn warn<T>(&mut self, at: &Spanned<T>, message: impl Into<String>) {
        self.warnings.push(Problem {
            line: Some(at.referenced.line()),
            column: Some(at.referenced.column()),
            message: message.into(),
        });
    }

    /// A poll that cannot finish one request before the next poll is due.
    pub(crate) fn interval_vs_timeout(
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
    pub(crate) fn base_url_warnings(
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

    pub(crate) fn duration(
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
    pub(crate) fn target_name(&mut self, name: &Spanned<String>) -> String {
        let trimmed = name.value.trim();
        if trimmed.is_empty() {
            self.report(name, "name must not be empty");
        } else if self.names.iter().any(|n| n == trimmed) {
            self.report(
                name,
                format!("duplicate target name {trimmed:?}: names become the `target` label and must be unique"),
            );
        }
        self.names.push(trimmed.to_string());
        trimmed.to_string()
    }

    pub(crate) fn required(
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

    pub(crate) fn page_size(
        &mut self,
        field: &str,
        v: &Option<Spanned<u32>>,
        default: u32,
        max: u32,
    ) -> u32 {
        match v {
            None => default,
            Some(p) if p.value == 0 || p.value > max => {
                self.report(p, format!("{field} must be between 1 and {max}"));
                default
            }
            Some(p) => p.value,
        }
    }

    /// A target's `proxy_url`. The value is never echoed: it may carry a password.
    pub(crate) fn proxy_url(&mut self, raw: &Option<Spanned<String>>) -> Option<ProxyUrl> {
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

    pub(crate) fn tls(
        &mut self,
        ca_file: &Option<Spanned<String>>,
        insecure: Option<bool>,
    ) -> TlsConfig {
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
    pub(crate) fn secret(
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
    pub(crate) fn metric_overrides(
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
    pub(crate) fn base_url(
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
pub(crate) fn dir_accepts_new_files(dir: &Path) -> bool {
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
