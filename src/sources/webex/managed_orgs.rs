//! Customer orgs managed by partner admins (collector `webex_managed_orgs`).
//!
//! `GET {base}/partner/organizations?managedBy=<personId>` for each configured admin,
//! following `Link: rel="next"` if the API ever pages.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use prometheus_client::encoding::MetricEncoder;
use serde::Deserialize;
use url::Url;

use super::WebexAuth;
use crate::config::Admin;
use crate::snapshot::{gauge, Family, SampleSet};
use crate::sources::{help, Collect, CollectError, Collected};
use crate::upstream::{display_url, sanitize, Client, RequestCtx, UpstreamError};

pub const COLLECTOR: &str = "webex_managed_orgs";
const MAX_PAGES: usize = 1000;

static FAMILIES: [Family; 2] = [
    Family {
        name: "webex_partner_managed_orgs",
        help: help!("Webex", "Customer orgs managed by this partner admin."),
    },
    Family {
        name: "webex_partner_managed_org_info",
        help: help!(
            "Webex",
            "A customer org managed by this partner admin, with the admin's role id, value 1."
        ),
    },
];

#[derive(Debug, Clone, PartialEq)]
pub struct Org {
    pub org_id: Box<str>,
    pub role: Box<str>,
}

/// Orgs per admin, in config order.
#[derive(Debug, Default)]
pub struct ManagedOrgSet {
    pub admins: Vec<(Box<str>, Vec<Org>)>,
}

impl SampleSet for ManagedOrgSet {
    fn families(&self) -> &'static [Family] {
        &FAMILIES
    }

    fn objects(&self) -> usize {
        self.admins.iter().map(|(_, orgs)| orgs.len()).sum()
    }

    fn encode(&self, family: usize, target: &str, enc: &mut MetricEncoder<'_>) -> fmt::Result {
        for (admin, orgs) in &self.admins {
            match family {
                0 => gauge(
                    enc,
                    &[("target", target), ("admin", admin)],
                    orgs.len() as f64,
                )?,
                _ => {
                    for o in orgs {
                        let labels = [
                            ("target", target),
                            ("admin", admin),
                            ("org_id", &o.org_id),
                            ("role", &o.role),
                        ];
                        gauge(enc, &labels, 1.0)?;
                    }
                }
            }
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

/// Adds one page's orgs to `out`, skipping items without an org id and repeats.
pub fn parse_page(
    body: &[u8],
    out: &mut Vec<Org>,
    seen: &mut HashSet<Box<str>>,
) -> Result<(), String> {
    let page: Page = serde_json::from_slice(body).map_err(|e| e.to_string())?;
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
    Ok(())
}

/// The API's answer for a Partner Full Admin, who manages every customer implicitly.
fn is_full_admin_error(e: &CollectError) -> bool {
    matches!(e, CollectError::Upstream(UpstreamError::Status { message: Some(m), .. })
        if m.to_ascii_lowercase().contains("access to all customers"))
}

pub struct ManagedOrgs {
    pub base_url: Url,
    pub auth: Arc<WebexAuth>,
    pub admins: Vec<Admin>,
    /// The last good orgs of each admin, served again while that admin's request fails.
    last_good: Mutex<HashMap<String, Vec<Org>>>,
}

impl ManagedOrgs {
    pub fn new(base_url: Url, auth: Arc<WebexAuth>, admins: Vec<Admin>) -> Self {
        ManagedOrgs {
            base_url,
            auth,
            admins,
            last_good: Mutex::new(HashMap::new()),
        }
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
        let mut visited = HashSet::new();
        let max_pages = MAX_PAGES.min(client.policy().max_pages);
        for _ in 0..max_pages {
            visited.insert(url.to_string());
            let resp = self.auth.get(client, ctx, &url).await?;
            parse_page(&resp.body, &mut orgs, &mut seen).map_err(|e| {
                CollectError::Payload(format!(
                    "{}: invalid organization list: {e}",
                    display_url(&resp.url)
                ))
            })?;
            let max_objects = client.policy().max_objects;
            if orgs.len() > max_objects {
                return Err(CollectError::Payload(format!(
                    "more than {max_objects} organizations for one admin (limits.max_objects)"
                )));
            }
            match resp.next_link() {
                None => return Ok(orgs),
                Some(mut next) => {
                    if !next.query_pairs().any(|(k, _)| k == "managedBy") {
                        next.query_pairs_mut()
                            .append_pair("managedBy", &admin.person_id);
                    }
                    if visited.contains(next.as_str()) {
                        return Err(CollectError::Payload(
                            "next link points back to a page already read".into(),
                        ));
                    }
                    url = next;
                }
            }
        }
        Err(CollectError::Payload(format!(
            "more than {max_pages} pages of organizations (limits.max_pages)"
        )))
    }

    async fn fetch(&self, client: &Client, ctx: &RequestCtx) -> Result<Collected, CollectError> {
        let mut admins = Vec::with_capacity(self.admins.len());
        let mut problems = Vec::new();
        let mut last_error = None;
        for admin in &self.admins {
            match self.admin_orgs(client, ctx, admin).await {
                Ok(orgs) => {
                    self.remember(&admin.name, &orgs);
                    admins.push((admin.name.as_str().into(), orgs));
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
                    if let Some(orgs) = self.recall(&admin.name) {
                        admins.push((admin.name.as_str().into(), orgs));
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

    fn remember(&self, admin: &str, orgs: &[Org]) {
        let mut last = self.last_good.lock().unwrap_or_else(|e| e.into_inner());
        last.insert(admin.to_string(), orgs.to_vec());
    }

    fn recall(&self, admin: &str) -> Option<Vec<Org>> {
        let last = self.last_good.lock().unwrap_or_else(|e| e.into_inner());
        last.get(admin).cloned()
    }
}

impl Collect for ManagedOrgs {
    fn collect<'a>(
        &'a self,
        client: &'a Client,
        ctx: &'a RequestCtx,
    ) -> BoxFuture<'a, Result<Collected, CollectError>> {
        Box::pin(self.fetch(client, ctx))
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
            admins: vec![("alice".into(), orgs), ("bob".into(), vec![])],
        };
        let text = exposition_of(COLLECTOR, "partner-eu", Arc::new(set));
        assert_eq!(
            samples(&text),
            [
                r#"webex_partner_managed_orgs{target="partner-eu",admin="alice"} 1.0"#,
                r#"webex_partner_managed_orgs{target="partner-eu",admin="bob"} 0.0"#,
                r#"webex_partner_managed_org_info{target="partner-eu",admin="alice",org_id="Y2LZY29ZCGFYAZOVL3VZL1BFT1BMRS9MNWIZNJE4NY1JOGRKLTQ3MJCTOGIYZI1MOWM0NDDMMJKWNDY",role="YXRSYXMTCG9YDGFSLNBHCNRUZXIUC2FSZXNMDWXSYWRTAW4="} 1.0"#,
            ]
        );
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
