//! The `voss:` section of the config: its schema and its checks.

use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;
use url::Url;

use crate::config::check::{Checker, Context};
use crate::config::{RawMetrics, Secret, TlsConfig};
use crate::sources::families::FamilySelection;

const DEFAULT_VOSS_PAGE_SIZE: u32 = 500;
/// VOSS reports `maximum_limit: 2000`.
const MAX_VOSS_PAGE_SIZE: u32 = 2000;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VossTarget {
    pub(crate) name: String,
    pub(crate) base_url: Url,
    pub(crate) username: String,
    pub(crate) password: Secret,
    /// Dotted hierarchy path or pkid.
    pub(crate) hierarchy: String,
    pub(crate) page_size: u32,
    pub(crate) interval: Duration,
    pub(crate) tls: TlsConfig,
    /// The metric families this target exposes (`metrics:`).
    pub(crate) metrics: FamilySelection,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVoss {
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

/// Checks the `voss:` targets, in file order.
pub(crate) fn check(c: &mut Checker<'_>, cx: &Context, raws: &[RawVoss]) -> Vec<VossTarget> {
    let mut targets = Vec::new();
    for v in raws {
        let name = c.target_name(&v.name);
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
        let interval = c.duration("interval", &v.interval, cx.global.interval);
        c.interval_vs_timeout("interval", &v.interval, interval, cx.global.timeout);
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
            targets.push(VossTarget {
                name,
                base_url,
                username,
                password,
                hierarchy,
                page_size,
                interval,
                tls,
                metrics: cx.selection(metrics),
            });
        }
    }
    targets
}
