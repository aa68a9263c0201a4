//! The `webex:` section of the config: its schema and its checks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;
use url::Url;

use crate::config::check::{dir_accepts_new_files, Checker, Context};
use crate::config::{RawMetrics, Secret, TlsConfig};
use crate::sources::families::FamilySelection;

pub(crate) const DEFAULT_WEBEX_BASE_URL: &str = "https://webexapis.com/v1";
/// The Webex API returns at most 1000 enterprises a page.
const MAX_BROADWORKS_PAGE_SIZE: u32 = 1000;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WebexTarget {
    pub(crate) name: String,
    pub(crate) base_url: Url,
    /// Extra trusted CAs (a TLS-inspecting proxy) and the proxy to go through.
    pub(crate) tls: TlsConfig,
    pub(crate) credentials: WebexCredentials,
    pub(crate) broadworks: Option<BroadworksConfig>,
    pub(crate) managed_orgs: Option<ManagedOrgsConfig>,
    /// The metric families this target exposes (`metrics:`).
    pub(crate) metrics: FamilySelection,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WebexCredentials {
    /// A personal or bot access token, used as it is.
    AccessToken(Secret),
    /// An integration's refresh token, rotated and persisted by the exporter.
    OAuth(OAuthConfig),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OAuthConfig {
    pub(crate) client_id: String,
    pub(crate) client_secret: Secret,
    /// Holds the current refresh token; rewritten atomically when Webex rotates it.
    pub(crate) refresh_token_file: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BroadworksConfig {
    pub(crate) starts_with: Option<String>,
    pub(crate) interval: Duration,
    pub(crate) page_size: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ManagedOrgsConfig {
    pub(crate) admins: Vec<Admin>,
    pub(crate) interval: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Admin {
    /// The `admin` label.
    pub(crate) name: String,
    pub(crate) person_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWebex {
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

/// Checks the `webex:` targets, in file order.
pub(crate) fn check(c: &mut Checker<'_>, cx: &Context, raws: &[RawWebex]) -> Vec<WebexTarget> {
    let mut targets = Vec::new();
    let mut refresh_files: Vec<PathBuf> = Vec::new();
    for w in raws {
        let name = c.target_name(&w.name);
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
            (Some(o), None, None) => oauth(c, o).map(WebexCredentials::OAuth),
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
                    cx.global.interval,
                );
                c.interval_vs_timeout(
                    "broadworks_enterprises.interval",
                    &b.value.interval,
                    interval,
                    cx.global.timeout,
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
            Some(m) => managed_orgs(c, m, cx.global.interval),
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
            targets.push(WebexTarget {
                name,
                base_url,
                tls,
                credentials,
                broadworks,
                managed_orgs,
                metrics: cx.selection(metrics),
            });
        }
    }
    targets
}

fn oauth(c: &mut Checker<'_>, raw: &Spanned<RawOAuth>) -> Option<OAuthConfig> {
    let o = &raw.value;
    let owner = Spanned::new(String::new(), raw.referenced, raw.defined);
    let client_id = c.required(&owner, "oauth.client_id", &o.client_id);
    let client_secret = c.secret(
        &owner,
        "oauth.client_secret",
        &o.client_secret,
        &o.client_secret_file,
    );
    let file = match &o.refresh_token_file {
        None => {
            c.report(raw, "oauth.refresh_token_file is required: the exporter keeps the rotated refresh token there");
            None
        }
        Some(f) if c.refresh_tokens_may_be_missing => Some(c.base_dir.join(&f.value)),
        Some(f) => {
            let path = c.base_dir.join(&f.value);
            let readable = std::fs::read_to_string(&path);
            match readable {
                Ok(s) if s.trim().is_empty() => {
                    c.report(f, format!("oauth.refresh_token_file {}: file is empty; put the integration's refresh token in it", path.display()));
                }
                Ok(_) => {
                    // Rotated tokens are written next to the file and renamed over it.
                    let dir = path.parent().unwrap_or(Path::new("."));
                    // Creating a file is the only true test: permission bits say
                    // nothing of who owns the directory, nor of read-only mounts.
                    let writable = dir_accepts_new_files(dir)
                        && std::fs::OpenOptions::new().append(true).open(&path).is_ok();
                    if !writable {
                        c.report(f, format!("oauth.refresh_token_file {}: not writable; the exporter must persist rotated refresh tokens", path.display()));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => c.report(
                    f,
                    format!(
                        "oauth.refresh_token_file {}: cannot read: {e}; `tenant-exporter oauth-login` creates it",
                        path.display()
                    ),
                ),
                Err(e) => c.report(
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
    c: &mut Checker<'_>,
    raw: &Spanned<RawManagedOrgs>,
    interval: Duration,
) -> Option<ManagedOrgsConfig> {
    let m = &raw.value;
    let interval = c.duration("managed_orgs.interval", &m.interval, interval);
    let mut admins: Vec<Admin> = Vec::new();
    for a in m.admins.iter().flatten() {
        let name = a.name.value.trim();
        if name.is_empty() {
            c.report(&a.name, "managed_orgs.admins[].name must not be empty");
        } else if admins.iter().any(|x| x.name == name) {
            c.report(&a.name, format!("duplicate admin name {name:?}"));
        }
        if a.person_id.value.trim().is_empty() {
            c.report(
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
        c.report(
            raw,
            "managed_orgs.admins: list at least one partner admin (name, person_id)",
        );
        return None;
    }
    Some(ManagedOrgsConfig { admins, interval })
}
