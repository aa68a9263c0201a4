//! Commvault organizations (collector `commvault_organizations`).
//!
//! `GET <ws>/Organization` lists the organizations (unless the config names their ids), then
//! `GET <ws>/Organization/{id}` reads each one's details, `concurrency` at a time. An
//! organization whose details cannot be read keeps its last good series and is reported as a
//! problem; the others are published fresh.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use futures_util::{stream, StreamExt as _};
use prometheus_client::encoding::MetricEncoder;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::auth::Session;
use super::{api_error, COLLECTOR};
use crate::snapshot::{gauge, Family, SampleSet};
use crate::sources::{endpoint, help, lenient, Collect, CollectError, Collected};
use crate::upstream::{display_url, sanitize, Client, RequestCtx};

/// Failed organizations named one by one in a collection's problems; the rest are counted.
const MAX_PROBLEMS: usize = 5;

static FAMILIES: [Family; 12] = [
    Family {
        name: "commvault_organization_info",
        help: help!(
            "Commvault",
            "Commvault organization (company) with its description, value 1."
        ),
    },
    Family {
        name: "commvault_organizations",
        help: help!(
            "Commvault",
            "Organizations listed by the target, or named in the config."
        ),
    },
    Family {
        name: "commvault_organization_enabled",
        help: help!(
            "Commvault",
            "Whether the organization is enabled (1) or not (0)."
        ),
    },
    Family {
        name: "commvault_organization_users",
        help: help!("Commvault", "Users of the organization."),
    },
    Family {
        name: "commvault_organization_devices",
        help: help!("Commvault", "Devices of the organization."),
    },
    Family {
        name: "commvault_organization_physical_devices",
        help: help!("Commvault", "Physical devices of the organization."),
    },
    Family {
        name: "commvault_organization_servers",
        help: help!("Commvault", "Servers of the organization."),
    },
    Family {
        name: "commvault_organization_vms",
        help: help!("Commvault", "Virtual machines of the organization."),
    },
    Family {
        name: "commvault_organization_hypervisors",
        help: help!("Commvault", "Hypervisors of the organization."),
    },
    Family {
        name: "commvault_organization_machines",
        help: help!("Commvault", "Machines of the organization, all kinds."),
    },
    Family {
        name: "commvault_organization_misc_machines",
        help: help!(
            "Commvault",
            "Machines of the organization of no other kind."
        ),
    },
    Family {
        name: "commvault_organization_created_timestamp_seconds",
        help: help!("Commvault", "Unix time the organization was created."),
    },
];

/// The family index of the first count; counts follow in the order of `Organization::counts`.
const FIRST_COUNT: usize = 3;

/// One organization, reduced to what the metrics need.
#[derive(Debug, Clone, PartialEq)]
pub struct Organization {
    pub id: u64,
    /// `shortName.domainName`.
    pub name: Box<str>,
    pub description: Box<str>,
    pub enabled: Option<bool>,
    /// users, devices, physical devices, servers, VMs, hypervisors, machines, misc machines.
    pub counts: [Option<f64>; 8],
    pub created: Option<f64>,
}

/// An organization as the list (or the config) names it.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub id: u64,
    pub name: Option<Box<str>>,
    pub enabled: Option<bool>,
}

/// One collection's organizations, by id.
#[derive(Debug, Default)]
pub struct OrganizationSet {
    /// Organizations listed upstream (or configured), whether or not their details were read.
    pub listed: usize,
    pub items: Vec<Arc<Organization>>,
}

impl OrganizationSet {
    pub fn new(listed: usize, mut items: Vec<Arc<Organization>>) -> Self {
        items.sort_by_key(|o| o.id);
        items.dedup_by_key(|o| o.id);
        OrganizationSet { listed, items }
    }
}

impl SampleSet for OrganizationSet {
    fn families(&self) -> &'static [Family] {
        &FAMILIES
    }

    fn objects(&self) -> usize {
        self.items.len()
    }

    fn encode(&self, family: usize, target: &str, enc: &mut MetricEncoder<'_>) -> fmt::Result {
        if family == 1 {
            return gauge(enc, &[("target", target)], self.listed as f64);
        }
        for o in &self.items {
            let id = o.id.to_string();
            let base = [
                ("target", target),
                ("organization_id", id.as_str()),
                ("organization", &*o.name),
            ];
            let value = match family {
                0 => {
                    let [t, i, n] = base;
                    gauge(enc, &[t, i, n, ("description", &*o.description)], 1.0)?;
                    continue;
                }
                2 => o.enabled.map(|e| if e { 1.0 } else { 0.0 }),
                11 => o.created,
                f => o.counts.get(f - FIRST_COUNT).copied().flatten(),
            };
            if let Some(v) = value {
                gauge(enc, &base, v)?;
            }
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawProvider {
    short_name: Option<RawShortName>,
    #[serde(default, deserialize_with = "lenient::de::boolean")]
    enabled: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawShortName {
    #[serde(default, deserialize_with = "lenient::de::unsigned")]
    id: Option<u64>,
    #[serde(default, deserialize_with = "lenient::de::text")]
    domain_name: Option<String>,
}

/// Keys an answer may have besides `providers` and still mean "no organizations": Commvault
/// leaves out empty lists.
const STATUS_KEYS: [&str; 3] = ["errorCode", "errorMessage", "errList"];

/// Parses `GET /Organization`. Items without a usable `shortName.id` are skipped and
/// described in the second vector; repeated ids are kept once.
pub fn parse_list(body: &[u8]) -> Result<(Vec<Listed>, Vec<String>), String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    if let Some(e) = api_error(&v) {
        return Err(e);
    }
    let Value::Object(obj) = v else {
        return Err("the answer is not a JSON object".into());
    };
    let providers = match obj.get("providers") {
        Some(Value::Array(items)) => items.as_slice(),
        Some(Value::Null) => &[],
        None if obj.keys().all(|k| STATUS_KEYS.contains(&k.as_str())) => &[],
        None => return Err("the answer has no providers list".into()),
        Some(_) => return Err("providers is not a list".into()),
    };
    let mut out = Vec::with_capacity(providers.len());
    let mut skipped = Vec::new();
    let mut seen = HashSet::with_capacity(providers.len());
    for (i, item) in providers.iter().enumerate() {
        let p = match RawProvider::deserialize(item) {
            Ok(p) => p,
            Err(e) => {
                skipped.push(format!("providers[{i}]: {e}"));
                continue;
            }
        };
        let short = p.short_name;
        let Some(id) = short.as_ref().and_then(|s| s.id) else {
            skipped.push(format!("providers[{i}]: no shortName.id"));
            continue;
        };
        if seen.insert(id) {
            out.push(Listed {
                id,
                name: short.and_then(|s| s.domain_name).map(Into::into),
                enabled: p.enabled,
            });
        }
    }
    Ok((out, skipped))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDetails {
    organization_info: Option<RawInfo>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawInfo {
    organization: Option<RawOrganization>,
    organization_properties: Option<RawProperties>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawOrganization {
    #[serde(default, deserialize_with = "lenient::de::text")]
    description: Option<String>,
    #[serde(default, deserialize_with = "lenient::de::boolean")]
    enabled: Option<bool>,
    short_name: Option<RawShortName>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawProperties {
    #[serde(default, deserialize_with = "lenient::de::number")]
    user_count: Option<f64>,
    #[serde(default, deserialize_with = "lenient::de::number")]
    device_count: Option<f64>,
    #[serde(default, deserialize_with = "lenient::de::number")]
    physical_device_count: Option<f64>,
    #[serde(default, deserialize_with = "lenient::de::number")]
    server_count: Option<f64>,
    #[serde(default, deserialize_with = "lenient::de::number")]
    vm_count: Option<f64>,
    /// The API's spelling.
    #[serde(default, deserialize_with = "lenient::de::number")]
    hypervisior_count: Option<f64>,
    #[serde(default, deserialize_with = "lenient::de::number")]
    hypervisor_count: Option<f64>,
    #[serde(default, deserialize_with = "lenient::de::number")]
    total_machine_count: Option<f64>,
    #[serde(default, deserialize_with = "lenient::de::number")]
    misc_machine_count: Option<f64>,
    #[serde(default, deserialize_with = "lenient::de::number")]
    org_creation_date_time: Option<f64>,
}

/// Parses `GET /Organization/{id}`. Missing values stay absent rather than becoming zeros.
pub fn parse_organization(id: u64, body: &[u8]) -> Result<Organization, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    if let Some(e) = api_error(&v) {
        return Err(e);
    }
    let raw = RawDetails::deserialize(&v).map_err(|e| format!("unexpected answer: {e}"))?;
    let info = raw
        .organization_info
        .ok_or("the answer has no organizationInfo")?;
    let org = info.organization;
    let (name, description, enabled) = match org {
        Some(o) => (
            o.short_name.and_then(|s| s.domain_name),
            o.description,
            o.enabled,
        ),
        None => (None, None, None),
    };
    let (counts, created) = match info.organization_properties {
        Some(p) => (
            [
                p.user_count,
                p.device_count,
                p.physical_device_count,
                p.server_count,
                p.vm_count,
                p.hypervisior_count.or(p.hypervisor_count),
                p.total_machine_count,
                p.misc_machine_count,
            ],
            // 0 is how an unknown time reads, not 1970.
            p.org_creation_date_time.filter(|t| *t > 0.0),
        ),
        None => ([None; 8], None),
    };
    Ok(Organization {
        id,
        name: name.unwrap_or_default().into(),
        description: description.unwrap_or_default().into(),
        enabled,
        counts,
        created,
    })
}

/// The last good details of each organization, served again while its details fail.
#[derive(Default)]
struct LastGood(Mutex<HashMap<u64, Arc<Organization>>>);

impl LastGood {
    /// Remembers the organizations just read, stands in the last good copy for those that
    /// failed and forgets organizations no longer listed. Returns the organizations to
    /// publish and a description of each failure, by id.
    fn merge(
        &self,
        results: Vec<(Listed, Result<Organization, CollectError>)>,
    ) -> (Vec<Arc<Organization>>, Vec<String>) {
        let mut last = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let listed: HashSet<u64> = results.iter().map(|(l, _)| l.id).collect();
        last.retain(|id, _| listed.contains(id));
        let mut items = Vec::with_capacity(results.len());
        let mut failures = Vec::new();
        for (l, result) in results {
            match result {
                Ok(o) => {
                    let o = Arc::new(o);
                    last.insert(o.id, o.clone());
                    items.push(o);
                }
                Err(e) => {
                    let kept = last.get(&l.id).cloned();
                    let name = l
                        .name
                        .or_else(|| kept.as_ref().map(|o| o.name.clone()))
                        .filter(|n| !n.is_empty());
                    let what = match name {
                        Some(n) => format!("organization {} ({:?})", l.id, sanitize(&n, 64)),
                        None => format!("organization {}", l.id),
                    };
                    failures.push((l.id, format!("{what}: {e}")));
                    items.extend(kept);
                }
            }
        }
        failures.sort();
        (items, failures.into_iter().map(|(_, f)| f).collect())
    }
}

/// The first failures one by one, then how many more.
fn summarize(failures: &[String]) -> Vec<String> {
    let mut out: Vec<String> = failures.iter().take(MAX_PROBLEMS).cloned().collect();
    if failures.len() > MAX_PROBLEMS {
        out.push(format!(
            "and {} more organizations failed",
            failures.len() - MAX_PROBLEMS
        ));
    }
    out
}

/// Polls one Commvault target's organizations.
pub struct Organizations {
    base_url: Url,
    /// Configured ids; `None` lists every organization.
    ids: Option<Vec<u64>>,
    concurrency: usize,
    session: Session,
    last_good: LastGood,
}

impl Organizations {
    pub fn new(base_url: Url, ids: Option<Vec<u64>>, concurrency: usize, session: Session) -> Self {
        Organizations {
            base_url,
            ids,
            concurrency: concurrency.max(1),
            session,
            last_good: LastGood::default(),
        }
    }

    async fn list(&self, client: &Client, ctx: &RequestCtx) -> Result<Vec<Listed>, CollectError> {
        let resp = self
            .session
            .get(client, ctx, &endpoint(&self.base_url, "Organization"))
            .await?;
        let (listed, skipped) = parse_list(&resp.body).map_err(|e| {
            CollectError::Payload(format!(
                "{}: invalid organization list: {e}",
                display_url(&resp.url)
            ))
        })?;
        if let Some(first) = skipped.first() {
            tracing::warn!(
                collector = COLLECTOR,
                target = %ctx.target,
                skipped = skipped.len(),
                first = %first,
                "skipped unreadable organizations in the list"
            );
        }
        Ok(listed)
    }

    async fn details(
        &self,
        client: &Client,
        ctx: &RequestCtx,
        listed: &Listed,
    ) -> Result<Organization, CollectError> {
        let url = endpoint(&self.base_url, &format!("Organization/{}", listed.id));
        let resp = self.session.get(client, ctx, &url).await?;
        let mut o = parse_organization(listed.id, &resp.body)
            .map_err(|e| CollectError::Payload(format!("{}: {e}", display_url(&resp.url))))?;
        if o.name.is_empty() {
            if let Some(name) = &listed.name {
                o.name = name.clone();
            }
        }
        o.enabled = o.enabled.or(listed.enabled);
        Ok(o)
    }

    async fn fetch(&self, client: &Client, ctx: &RequestCtx) -> Result<Collected, CollectError> {
        self.session.begin().await;
        let mut listed = match &self.ids {
            Some(ids) => ids
                .iter()
                .map(|&id| Listed {
                    id,
                    name: None,
                    enabled: None,
                })
                .collect(),
            None => self.list(client, ctx).await?,
        };
        listed.sort_by_key(|l| l.id);
        listed.dedup_by_key(|l| l.id);
        let total = listed.len();
        let results: Vec<(Listed, Result<Organization, CollectError>)> = stream::iter(listed)
            .map(|l| async move {
                let r = self.details(client, ctx, &l).await;
                (l, r)
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let (items, failures) = self.last_good.merge(results);
        if total > 0 && failures.len() == total {
            let what = if total == 1 {
                String::new()
            } else {
                format!("all {total} organizations failed: ")
            };
            return Err(CollectError::Payload(format!(
                "{what}{}",
                summarize(&failures).join("; ")
            )));
        }
        Ok(Collected {
            samples: Arc::new(OrganizationSet::new(total, items)),
            problems: summarize(&failures),
        })
    }
}

impl Collect for Organizations {
    fn collect<'a>(
        &'a self,
        client: &'a Client,
        ctx: &'a RequestCtx,
    ) -> BoxFuture<'a, Result<Collected, CollectError>> {
        Box::pin(self.fetch(client, ctx))
    }

    fn shutdown<'a>(&'a self, client: &'a Client) -> BoxFuture<'a, ()> {
        Box::pin(self.session.logout(client))
    }

    fn secrets(&self) -> Vec<String> {
        self.session.secrets()
    }
}

#[cfg(test)]
mod tests;
