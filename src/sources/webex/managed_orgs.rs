//! Customer orgs managed by partner admins (collector `webex_managed_orgs`).
//!
//! `GET {base}/partner/organizations?managedBy=<personId>` for each configured admin,
//! following `Link: rel="next"` if the API ever pages.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::BoxFuture;
use prometheus_client::encoding::MetricEncoder;
use serde::Deserialize;
use url::Url;

use super::WebexAuth;
use crate::snapshot::{gauge, FamilyOf, Samples};
use crate::sources::webex::config::Admin;
use crate::sources::{help, Collect, CollectError, Collected, PayloadError};
use crate::upstream::{display_url, sanitize, Client, RequestCtx, UpstreamError};

pub(crate) const COLLECTOR: &str = "webex_managed_orgs";
const MAX_PAGES: usize = 1000;

static FAMILIES: [FamilyOf<ManagedOrgSet>; 3] = [
    FamilyOf {
        name: "webex_partner_managed_orgs",
        help: help!("Webex", "Customer orgs managed by this partner admin."),
        encode: |s, target, enc| s.per_admin(target, enc, |a| a.orgs.len() as f64),
    },
    FamilyOf {
        name: "webex_partner_managed_org_info",
        help: help!(
            "Webex",
            "A customer org managed by this partner admin, with the admin's role id, value 1."
        ),
        encode: |s, target, enc| {
            for a in &s.admins {
                for o in &a.orgs {
                    let labels = [
                        ("target", target),
                        ("admin", &*a.admin),
                        ("org_id", &o.org_id),
                        ("role", &o.role),
                    ];
                    gauge(enc, &labels, 1.0)?;
                }
            }
            Ok(())
        },
    },
    FamilyOf {
        name: "webex_partner_admin_last_success_timestamp_seconds",
        help: help!(
            "Webex",
            "Unix time this admin's managed-org list was last read successfully."
        ),
        encode: |s, target, enc| s.per_admin(target, enc, |a| a.read_at),
    },
];

#[derive(Debug, Clone, PartialEq)]
pub struct Org {
    pub(crate) org_id: Box<str>,
    pub(crate) role: Box<str>,
}

/// One admin's orgs as last read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AdminOrgs {
    pub(crate) admin: Box<str>,
    pub(crate) orgs: Vec<Org>,
    /// Unix time of the read.
    pub(crate) read_at: f64,
}

/// Orgs per admin, in config order.
#[derive(Debug, Default)]
pub(crate) struct ManagedOrgSet {
    pub(crate) admins: Vec<AdminOrgs>,
}

impl Samples for ManagedOrgSet {
    const FAMILIES: &'static [FamilyOf<Self>] = &FAMILIES;

    fn count(&self) -> usize {
        self.admins.iter().map(|a| a.orgs.len()).sum()
    }
}

impl ManagedOrgSet {
    /// One gauge per admin.
    fn per_admin(
        &self,
        target: &str,
        enc: &mut MetricEncoder<'_>,
        value: fn(&AdminOrgs) -> f64,
    ) -> fmt::Result {
        for a in &self.admins {
            gauge(enc, &[("target", target), ("admin", &a.admin)], value(a))?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct Page {
    items: Vec<RawOrg>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawOrg {
    org_id: Option<String>,
    role: Option<String>,
}

/// Adds one page's orgs to `out`, skipping items without an org id and repeats; returns
/// how many items the page held.
pub fn parse_page(
    body: &[u8],
    out: &mut Vec<Org>,
    seen: &mut HashSet<Box<str>>,
) -> Result<usize, PayloadError> {
    let page: Page = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let n = page.items.len();
    for item in page.items {
        let Some(org_id) = item.org_id.filter(|o| !o.is_empty()) else {
            continue;
        };
        let org_id: Box<str> = org_id.into();
        if seen.insert(org_id.clone()) {
            out.push(Org {
                org_id,
                role: item.role.unwrap_or_default().into(),
            });
        }
    }
    Ok(n)
}

/// The API's answer for a Partner Full Admin, who manages every customer implicitly.
fn is_full_admin_error(e: &CollectError) -> bool {
    matches!(e, CollectError::Upstream(UpstreamError::Status { message: Some(m), .. })
        if m.to_ascii_lowercase().contains("access to all customers"))
}

pub(crate) struct ManagedOrgs {
    pub(crate) base_url: Url,
    pub(crate) auth: Arc<WebexAuth>,
    pub(crate) admins: Vec<Admin>,
    /// How long an admin's last good orgs are served while its requests fail.
    stale_after: Duration,
    /// The last good orgs of each admin, and when they were read.
    last_good: Mutex<HashMap<String, (AdminOrgs, Instant)>>,
}

impl ManagedOrgs {
    pub(crate) fn new(base_url: Url, auth: Arc<WebexAuth>, admins: Vec<Admin>) -> Self {
        ManagedOrgs {
            base_url,
            auth,
            admins,
            stale_after: Duration::from_secs(3600),
            last_good: Mutex::new(HashMap::new()),
        }
    }

    /// Serves an admin's last good orgs for at most `stale_after` while its requests fail.
    pub(crate) fn with_stale_after(mut self, stale_after: Duration) -> Self {
        self.stale_after = stale_after;
        self
    }

    async fn admin_orgs(
        &self,
        client: &Client,
        ctx: &RequestCtx,
        admin: &Admin,
    ) -> Result<Vec<Org>, CollectError> {
        let mut url = crate::sources::endpoint(&self.base_url, "partner/organizations");
        url.query_pairs_mut()
            .append_pair("managedBy", &admin.person_id);
        let mut orgs = Vec::new();
        let mut seen = HashSet::new();
        let pages = super::Pages {
            what: "organizations",
            base_url: &self.base_url,
            page_size: None,
            max_pages: MAX_PAGES.min(client.policy().max_pages),
        };
        let person_id = &admin.person_id;
        pages
            .read(
                &self.auth,
                client,
                ctx,
                url,
                |next| {
                    if !next.query_pairs().any(|(k, _)| k == "managedBy") {
                        next.query_pairs_mut().append_pair("managedBy", person_id);
                    }
                },
                |resp| {
                    let n = parse_page(&resp.body, &mut orgs, &mut seen).map_err(|e| {
                        CollectError::Payload(format!(
                            "{}: invalid organization list: {}",
                            display_url(&resp.url),
                            resp.scrub(&e.to_string())
                        ))
                    })?;
                    let max_objects = client.policy().max_objects;
                    if orgs.len() > max_objects {
                        return Err(CollectError::Payload(format!(
                            "more than {max_objects} organizations for one admin (limits.max_objects)"
                        )));
                    }
                    Ok(n)
                },
            )
            .await?;
        Ok(orgs)
    }

    async fn fetch(&self, client: &Client, ctx: &RequestCtx) -> Result<Collected, CollectError> {
        let mut admins = Vec::with_capacity(self.admins.len());
        let mut problems = Vec::new();
        let mut last_error = None;
        for admin in &self.admins {
            match self.admin_orgs(client, ctx, admin).await {
                Ok(orgs) => {
                    let read = AdminOrgs {
                        admin: admin.name.as_str().into(),
                        orgs,
                        read_at: unix_now(),
                    };
                    self.remember(&admin.name, &read);
                    admins.push(read);
                }
                Err(e) => {
                    let problem = if is_full_admin_error(&e) {
                        format!(
                            "admin {:?}: configuration error: this person is a Partner Full Admin, who \
                             already has access to all customers, so the API lists no managed orgs; \
                             configure a partner admin with assigned customers instead",
                            sanitize(&admin.name, 64)
                        )
                    } else {
                        format!("admin {:?}: {e}", sanitize(&admin.name, 64))
                    };
                    tracing::warn!(collector = COLLECTOR, target = %ctx.target, problem = %problem, "managed orgs of an admin not collected");
                    problems.push(problem);
                    if let Some(last) = self.recall(&admin.name) {
                        admins.push(last);
                    }
                    last_error = Some(e);
                }
            }
        }
        if problems.len() == self.admins.len() {
            if let (1, Some(e)) = (problems.len(), last_error) {
                if !is_full_admin_error(&e) {
                    return Err(e);
                }
            }
            return Err(CollectError::Payload(problems.join("; ")));
        }
        Ok(Collected {
            samples: Arc::new(ManagedOrgSet { admins }),
            problems,
        })
    }

    fn remember(&self, admin: &str, read: &AdminOrgs) {
        let mut last = self.last_good.lock().unwrap_or_else(|e| e.into_inner());
        last.insert(admin.to_string(), (read.clone(), Instant::now()));
    }

    /// The admin's last good orgs, unless they are older than `stale_after` (then they are
    /// forgotten, with a warning).
    fn recall(&self, admin: &str) -> Option<AdminOrgs> {
        let mut last = self.last_good.lock().unwrap_or_else(|e| e.into_inner());
        match last.get(admin) {
            Some((read, at)) if at.elapsed() < self.stale_after => Some(read.clone()),
            Some(_) => {
                tracing::warn!(
                    collector = COLLECTOR,
                    admin = %sanitize(admin, 64),
                    "no successful read of this admin's managed orgs within stale_after; dropping them"
                );
                last.remove(admin);
                None
            }
            None => None,
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

impl Collect for ManagedOrgs {
    fn collect<'a>(
        &'a self,
        client: &'a Client,
        ctx: &'a RequestCtx,
    ) -> BoxFuture<'a, Result<Collected, CollectError>> {
        Box::pin(self.fetch(client, ctx))
    }

    fn secrets(&self) -> Vec<String> {
        self.auth.secrets()
    }

    fn note(&self) -> Option<String> {
        self.auth.note().map(str::to_string)
    }

    fn shutdown<'a>(&'a self, _client: &'a Client) -> BoxFuture<'a, ()> {
        Box::pin(self.auth.settle())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::testing::*;

    const SEED: &str = include_str!("../../../tests/fixtures/webex-partner-managed-orgs.json");

    #[test]
    fn vendor_example_gives_exact_exposition() {
        let mut orgs = Vec::new();
        parse_page(SEED.as_bytes(), &mut orgs, &mut HashSet::new()).unwrap();
        let set = ManagedOrgSet {
            admins: vec![
                AdminOrgs {
                    admin: "alice".into(),
                    orgs,
                    read_at: 1_700_000_000.0,
                },
                AdminOrgs {
                    admin: "bob".into(),
                    orgs: vec![],
                    read_at: 1_700_000_060.0,
                },
            ],
        };
        let text = exposition_of(COLLECTOR, "partner-eu", Arc::new(set));
        insta::assert_snapshot!(text, @r#"
        # HELP webex_partner_managed_orgs Customer orgs managed by this partner admin. Cached from the Webex API; refreshed every collection interval.
        # TYPE webex_partner_managed_orgs gauge
        webex_partner_managed_orgs{target="partner-eu",admin="alice"} 1.0
        webex_partner_managed_orgs{target="partner-eu",admin="bob"} 0.0
        # HELP webex_partner_managed_org_info A customer org managed by this partner admin, with the admin's role id, value 1. Cached from the Webex API; refreshed every collection interval.
        # TYPE webex_partner_managed_org_info gauge
        webex_partner_managed_org_info{target="partner-eu",admin="alice",org_id="Y2LZY29ZCGFYAZOVL3VZL1BFT1BMRS9MNWIZNJE4NY1JOGRKLTQ3MJCTOGIYZI1MOWM0NDDMMJKWNDY",role="YXRSYXMTCG9YDGFSLNBHCNRUZXIUC2FSZXNMDWXSYWRTAW4="} 1.0
        # HELP webex_partner_admin_last_success_timestamp_seconds Unix time this admin's managed-org list was last read successfully. Cached from the Webex API; refreshed every collection interval.
        # TYPE webex_partner_admin_last_success_timestamp_seconds gauge
        webex_partner_admin_last_success_timestamp_seconds{target="partner-eu",admin="alice"} 1700000000.0
        webex_partner_admin_last_success_timestamp_seconds{target="partner-eu",admin="bob"} 1700000060.0
        "#);
    }

    /// Several admins with and without orgs, exactly as encoded before the families became
    /// typed (length and CRC-32 of both formats).
    #[test]
    fn varied_admins_give_the_same_bytes_as_before() {
        let admins = (0..20u64)
            .map(|a| AdminOrgs {
                admin: format!("admin \"{a}\"").into(),
                orgs: (0..a * 3)
                    .map(|o| Org {
                        org_id: format!("Y2lz{a}-{o}").into(),
                        role: if o % 4 == 0 {
                            "".into()
                        } else {
                            format!("role{o}").into()
                        },
                    })
                    .collect(),
                read_at: 1_700_000_000.5 + a as f64,
            })
            .collect();
        let got = crate::snapshot::fingerprint(vec![crate::snapshot::TargetSamples {
            collector: COLLECTOR,
            target: "partner-eu".into(),
            samples: Arc::new(ManagedOrgSet { admins }),
        }]);
        assert_eq!(got, [(65_468, 2_295_173_766); 2]);
    }

    #[test]
    fn repeats_and_items_without_org_id_are_skipped() {
        let mut orgs = Vec::new();
        let mut seen = HashSet::new();
        parse_page(
            br#"{"items":[{"orgId":"a","role":"r"},{"role":"x"},{"orgId":"a"},{"orgId":"b"}]}"#,
            &mut orgs,
            &mut seen,
        )
        .unwrap();
        parse_page(
            br#"{"items":[{"orgId":"b"},{"orgId":"c"}]}"#,
            &mut orgs,
            &mut seen,
        )
        .unwrap();
        let ids: Vec<&str> = orgs.iter().map(|o| &*o.org_id).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert!(parse_page(b"{\"items\": 3}", &mut orgs, &mut seen).is_err());
        assert!(parse_page(b"", &mut orgs, &mut seen).is_err());
    }

    #[test]
    fn full_admin_error_is_recognised() {
        let e = CollectError::Upstream(UpstreamError::Status {
            method: reqwest::Method::GET,
            url: "https://webexapis.com/v1/partner/organizations".into(),
            status: 400,
            message: Some(
                "User is a Partner Full Admin and already has access to all customers.".into(),
            ),
            tracking_id: None,
        });
        assert!(is_full_admin_error(&e));
        assert!(!is_full_admin_error(&CollectError::Payload("x".into())));
    }
}
