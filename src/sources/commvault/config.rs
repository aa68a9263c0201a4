//! The `commvault:` section of the config: its schema and its checks.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;
use url::Url;

use crate::config::check::{Checker, Context};
use crate::config::{RawMetrics, Secret, TlsConfig};
use crate::sources::families::FamilySelection;

const DEFAULT_COMMVAULT_CONCURRENCY: usize = 4;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CommvaultTarget {
    pub(crate) name: String,
    pub(crate) base_url: Url,
    pub(crate) credentials: CommvaultCredentials,
    /// Sent at `Login` and `RenewLoginToken`: the CommServe renews a session only for the
    /// device that opened it.
    pub(crate) device_id: String,
    /// `None` means every organization the account sees.
    pub(crate) organizations: Option<Vec<u64>>,
    pub(crate) interval: Duration,
    /// Organization detail requests in flight at once.
    pub(crate) concurrency: usize,
    pub(crate) tls: TlsConfig,
    /// An organization whose details keep failing is dropped after this long (global).
    pub(crate) stale_after: Duration,
    /// The metric families this target exposes (`metrics:`).
    pub(crate) metrics: FamilySelection,
}

/// How the exporter gets a Commvault session.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CommvaultCredentials {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCommvault {
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

/// Checks the `commvault:` targets, in file order.
pub(crate) fn check(
    c: &mut Checker<'_>,
    cx: &Context,
    raws: &[RawCommvault],
) -> Vec<CommvaultTarget> {
    let mut targets = Vec::new();
    for cv in raws {
        let name = c.target_name(&cv.name);
        let base_url = c.base_url(&cv.name, &cv.base_url, None);
        c.base_url_warnings(&cv.base_url, &base_url, &["/Login", "/Organization"]);
        let credentials = credentials(c, cv);
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
        let interval = c.duration("interval", &cv.interval, cx.global.interval);
        c.interval_vs_timeout("interval", &cv.interval, interval, cx.global.timeout);
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
            targets.push(CommvaultTarget {
                name,
                base_url,
                credentials,
                device_id,
                organizations,
                interval,
                concurrency,
                tls,
                stale_after: cx.global.stale_after,
                metrics: cx.selection(metrics),
            });
        }
    }
    targets
}

/// A password login, or an API access token with an optional refresh token file.
fn credentials(c: &mut Checker<'_>, cv: &RawCommvault) -> Option<CommvaultCredentials> {
    let password = cv.password.is_some() || cv.password_file.is_some();
    let token = cv.access_token.is_some() || cv.access_token_file.is_some();
    if password && token {
        c.report(
            &cv.name,
            "password(_file) and access_token(_file) are mutually exclusive: use one way to log in",
        );
        return None;
    }
    if !token {
        if let Some(f) = &cv.refresh_token_file {
            c.report(
                f,
                "refresh_token_file needs access_token or access_token_file",
            );
        }
        if !password {
            c.report(
                &cv.name,
                "one of password, password_file (with username), access_token or access_token_file is required",
            );
            return None;
        }
        let username = c.required(&cv.name, "username", &cv.username);
        let password = c.secret(&cv.name, "password", &cv.password, &cv.password_file);
        return Some(CommvaultCredentials::Password {
            username: username?,
            password: password?,
        });
    }
    if let Some(u) = &cv.username {
        c.report(u, "username is not used with an access token; remove it");
    }
    let access_token = c.secret(
        &cv.name,
        "access_token",
        &cv.access_token,
        &cv.access_token_file,
    );
    let refresh_token_file = match &cv.refresh_token_file {
        None => None,
        Some(f) => {
            let path = c.base_dir.join(&f.value);
            match std::fs::read_to_string(&path) {
                Ok(s) if s.trim().is_empty() => c.report(f, format!("refresh_token_file {}: file is empty; put the access token's refresh token in it", path.display())),
                Ok(_) => {
                    let dir = path.parent().unwrap_or(Path::new("."));
                    let writable = std::fs::metadata(dir)
                        .map(|m| !m.permissions().readonly())
                        .unwrap_or(false)
                        && std::fs::OpenOptions::new().append(true).open(&path).is_ok();
                    if !writable {
                        c.report(f, format!("refresh_token_file {}: not writable; the exporter must persist rotated refresh tokens", path.display()));
                    }
                }
                Err(e) => c.report(f, format!("refresh_token_file {}: cannot read: {e}", path.display())),
            }
            Some(path)
        }
    };
    Some(CommvaultCredentials::AccessToken {
        access_token: access_token?,
        refresh_token_file,
    })
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
