//! Commvault organizations (collector `commvault_organizations`).
//!
//! `GET <ws>/Organization` lists the organizations (unless the config names their ids), then
//! `GET <ws>/Organization/{id}` reads each one's details, `concurrency` at a time. An
//! organization whose details cannot be read keeps its last good series (and the time they
//! were read, `commvault_organization_last_success_timestamp_seconds`) and is reported as a
//! problem, until `stale_after` has passed; the others are published fresh.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;
use futures_util::{stream, StreamExt as _};
use prometheus_client::encoding::MetricEncoder;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use url::Url;

use super::auth::Session;
use super::StatusFields;
use crate::snapshot::{gauge, FamilyOf, Samples};
use crate::sources::lenient::{Count, First, Skips};
use crate::sources::{
    endpoint, help, lenient, Collect, CollectError, Collected, Objects, PayloadError,
};
use crate::upstream::{display_url, sanitize, Client, RequestCtx};

/// Failed organizations named one by one in a collection's problems; the rest are counted.
const MAX_PROBLEMS: usize = 5;

static FAMILIES: [FamilyOf<OrganizationSet>; 13] = [
    FamilyOf {
        name: "commvault_organization_info",
        help: help!(
            "Commvault",
            "Commvault organization with its description and company (connect) name, value 1."
        ),
        encode: |s, target, enc| {
            for o in &s.items {
                let id = o.id.to_string();
                let labels = [
                    ("target", target),
                    ("organization_id", id.as_str()),
                    ("organization", &*o.name),
                    ("description", &*o.description),
                    ("company", &*o.company),
                ];
                gauge(enc, &labels, 1.0)?;
            }
            Ok(())
        },
    },
    FamilyOf {
        name: "commvault_organizations",
        help: help!(
            "Commvault",
            "Organizations listed by the target, or named in the config."
        ),
        encode: |s, target, enc| gauge(enc, &[("target", target)], s.listed as f64),
    },
    FamilyOf {
        name: "commvault_organization_enabled",
        help: help!(
            "Commvault",
            "Whether the organization is enabled (1) or not (0)."
        ),
        encode: |s, target, enc| {
            s.each(target, enc, |o| {
                o.enabled.map(|e| if e { 1.0 } else { 0.0 })
            })
        },
    },
    FamilyOf {
        name: "commvault_organization_users",
        help: help!("Commvault", "Users of the organization."),
        encode: |s, target, enc| s.each(target, enc, |o| o.counts[0]),
    },
    FamilyOf {
        name: "commvault_organization_devices",
        help: help!("Commvault", "Devices of the organization."),
        encode: |s, target, enc| s.each(target, enc, |o| o.counts[1]),
    },
    FamilyOf {
        name: "commvault_organization_physical_devices",
        help: help!("Commvault", "Physical devices of the organization."),
        encode: |s, target, enc| s.each(target, enc, |o| o.counts[2]),
    },
    FamilyOf {
        name: "commvault_organization_servers",
        help: help!("Commvault", "Servers of the organization."),
        encode: |s, target, enc| s.each(target, enc, |o| o.counts[3]),
    },
    FamilyOf {
        name: "commvault_organization_vms",
        help: help!("Commvault", "Virtual machines of the organization."),
        encode: |s, target, enc| s.each(target, enc, |o| o.counts[4]),
    },
    FamilyOf {
        name: "commvault_organization_hypervisors",
        help: help!("Commvault", "Hypervisors of the organization."),
        encode: |s, target, enc| s.each(target, enc, |o| o.counts[5]),
    },
    FamilyOf {
        name: "commvault_organization_machines",
        help: help!("Commvault", "Machines of the organization, all kinds."),
        encode: |s, target, enc| s.each(target, enc, |o| o.counts[6]),
    },
    FamilyOf {
        name: "commvault_organization_misc_machines",
        help: help!(
            "Commvault",
            "Machines of the organization of no other kind."
        ),
        encode: |s, target, enc| s.each(target, enc, |o| o.counts[7]),
    },
    FamilyOf {
        name: "commvault_organization_created_timestamp_seconds",
        help: help!("Commvault", "Unix time the organization was created."),
        encode: |s, target, enc| s.each(target, enc, |o| o.created),
    },
    FamilyOf {
        name: "commvault_organization_last_success_timestamp_seconds",
        help: help!(
            "Commvault",
            "Unix time the organization's details were last read successfully."
        ),
        encode: |s, target, enc| s.each(target, enc, |o| Some(o.read_at).filter(|t| *t > 0.0)),
    },
];

/// One organization, reduced to what the metrics need.
#[derive(Debug, Clone, PartialEq)]
pub struct Organization {
    pub(crate) id: u64,
    /// `shortName.domainName`.
    pub(crate) name: Box<str>,
    pub(crate) description: Box<str>,
    /// `connectName`, the company name a NOC searches by.
    pub(crate) company: Box<str>,
    /// False when the organization is disabled or deactivated (backup, restore or login
    /// disabled).
    pub(crate) enabled: Option<bool>,
    /// users, devices, physical devices, servers, VMs, hypervisors, machines, misc machines.
    pub(crate) counts: [Option<f64>; 8],
    pub(crate) created: Option<f64>,
    /// Unix time the details were read.
    pub(crate) read_at: f64,
}

/// An organization as the list (or the config) names it.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub(crate) id: u64,
    pub(crate) name: Option<Box<str>>,
    pub(crate) company: Option<Box<str>>,
    pub(crate) enabled: Option<bool>,
}

/// One collection's organizations, by id.
#[derive(Debug, Default)]
pub(crate) struct OrganizationSet {
    /// Organizations listed upstream (or configured), whether or not their details were read.
    pub(crate) listed: usize,
    pub(crate) items: Vec<Arc<Organization>>,
}

impl OrganizationSet {
    pub(crate) fn new(listed: usize, mut items: Vec<Arc<Organization>>) -> Self {
        items.sort_by_key(|o| o.id);
        items.dedup_by_key(|o| o.id);
        OrganizationSet { listed, items }
    }
}

impl Samples for OrganizationSet {
    const FAMILIES: &'static [FamilyOf<Self>] = &FAMILIES;

    fn count(&self) -> usize {
        self.items.len()
    }
}

impl OrganizationSet {
    /// One gauge per organization with a value.
    fn each(
        &self,
        target: &str,
        enc: &mut MetricEncoder<'_>,
        value: fn(&Organization) -> Option<f64>,
    ) -> fmt::Result {
        for o in &self.items {
            if let Some(v) = value(o) {
                let id = o.id.to_string();
                let labels = [
                    ("target", target),
                    ("organization_id", id.as_str()),
                    ("organization", &*o.name),
                ];
                gauge(enc, &labels, v)?;
            }
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawProvider {
    #[serde(default, deserialize_with = "lenient::de::object")]
    short_name: Option<RawShortName>,
    #[serde(default, deserialize_with = "lenient::de::text")]
    connect_name: Option<String>,
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

/// Parses `GET /Organization`. Items without a usable `shortName.id` are skipped and
/// counted; repeated ids are kept once.
pub fn parse_list(body: &[u8]) -> Result<(Vec<Listed>, Skips), PayloadError> {
    parse_list_limited(body, &mut Objects::new(usize::MAX))
}

/// [`parse_list`] counting the providers against the collection's object limit. The list is
/// read element by element, so its memory is the body plus the organizations kept.
pub(crate) fn parse_list_limited(
    body: &[u8],
    objects: &mut Objects,
) -> Result<(Vec<Listed>, Skips), PayloadError> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            Err(e) => Err(PayloadError::Unreadable(format!("invalid JSON: {e}"))),
            Ok(_) => Err("the answer is not a JSON object".into()),
        };
    }
    let mut out = Vec::new();
    let mut skipped = Skips::default();
    let mut seen = HashSet::new();
    let mut status = StatusFields::default();
    let mut other_keys: Vec<String> = Vec::new();
    let mut stop = None;
    let visited = lenient::visit_list(
        body,
        "providers",
        &mut |i, raw: &RawValue| {
            if let Err(e) = objects.take() {
                stop = Some(e);
                return Err(String::new());
            }
            let p = match serde_json::from_str::<RawProvider>(raw.get()) {
                Ok(p) => p,
                Err(e) => {
                    skipped.note(|| format!("providers[{i}]: {e}"));
                    return Ok(());
                }
            };
            let short = p.short_name;
            let Some(id) = short.as_ref().and_then(|s| s.id) else {
                skipped.note(|| format!("providers[{i}]: no shortName.id"));
                return Ok(());
            };
            if seen.insert(id) {
                out.push(Listed {
                    id,
                    name: short.and_then(|s| s.domain_name).map(Into::into),
                    company: p.connect_name.map(Into::into),
                    enabled: p.enabled,
                });
            }
            Ok(())
        },
        &mut |key, raw| {
            if !status.capture(key, raw) && other_keys.len() < 5 {
                other_keys.push(key.to_string());
            }
        },
    );
    if let Some(e) = stop {
        return Err(e);
    }
    if let Some(e) = status.api_error() {
        return Err(e.into());
    }
    let visited = visited.map_err(|e| match e.classify() {
        serde_json::error::Category::Data => "providers is not a list".to_string(),
        _ => format!("invalid JSON: {e}"),
    })?;
    if !visited.present && !other_keys.is_empty() {
        return Err(PayloadError::Unreadable(format!(
            "the answer has no providers list (keys: {}); the account may lack the permission to view organizations",
            sanitize(&other_keys.join(", "), 120)
        )));
    }
    if visited.items > 0 && out.is_empty() {
        return Err(PayloadError::Unreadable(format!(
            "none of the {} providers in the list could be read{}",
            visited.items,
            skipped
                .first()
                .map(|s| format!(" (first: {})", s.what))
                .unwrap_or_default()
        )));
    }
    out.shrink_to_fit();
    Ok((out, skipped))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDetails {
    // Not `#[serde(flatten)]`: that would buffer every other field of the body.
    #[serde(default)]
    error_code: Option<Value>,
    #[serde(default)]
    error_message: Option<Value>,
    #[serde(default)]
    err_list: Option<First<Value>>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    response: Option<First<Value>>,
    organization_info: Option<Box<RawValue>>,
}

/// Each part is read on its own, so one of the wrong shape leaves the other.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawInfo {
    #[serde(default, deserialize_with = "lenient::de::object")]
    organization: Option<RawOrganization>,
    #[serde(default, deserialize_with = "lenient::de::object")]
    organization_properties: Option<RawProperties>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawOrganization {
    #[serde(default, deserialize_with = "lenient::de::text")]
    description: Option<String>,
    #[serde(default, deserialize_with = "lenient::de::text")]
    connect_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::de::boolean")]
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "lenient::de::object")]
    short_name: Option<RawShortName>,
    deactivate_options: Option<RawDeactivate>,
}

/// What a deactivation disabled.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDeactivate {
    #[serde(default, deserialize_with = "lenient::de::boolean")]
    disable_backup: Option<bool>,
    #[serde(default, deserialize_with = "lenient::de::boolean")]
    disable_restore: Option<bool>,
    #[serde(default, deserialize_with = "lenient::de::boolean")]
    disable_login: Option<bool>,
}

impl RawDeactivate {
    fn deactivated(&self) -> bool {
        [
            self.disable_backup,
            self.disable_restore,
            self.disable_login,
        ]
        .contains(&Some(true))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawProperties {
    #[serde(default, deserialize_with = "lenient::de::count")]
    user_count: Count,
    #[serde(default, deserialize_with = "lenient::de::count")]
    device_count: Count,
    #[serde(default, deserialize_with = "lenient::de::count")]
    physical_device_count: Count,
    #[serde(default, deserialize_with = "lenient::de::count")]
    server_count: Count,
    #[serde(default, deserialize_with = "lenient::de::count")]
    vm_count: Count,
    /// The API's spelling.
    #[serde(default, deserialize_with = "lenient::de::count")]
    hypervisior_count: Count,
    #[serde(default, deserialize_with = "lenient::de::count")]
    hypervisor_count: Count,
    #[serde(default, deserialize_with = "lenient::de::count")]
    total_machine_count: Count,
    #[serde(default, deserialize_with = "lenient::de::count")]
    misc_machine_count: Count,
    #[serde(default, deserialize_with = "lenient::de::number")]
    org_creation_date_time: Option<f64>,
}

/// Parses `GET /Organization/{id}`. Missing values stay absent rather than becoming zeros.
pub fn parse_organization(id: u64, body: &[u8]) -> Result<Organization, PayloadError> {
    parse_organization_with(id, body, &mut Skips::default())
}

/// [`parse_organization`], counting unusable values (a negative count) in `skipped`.
pub(crate) fn parse_organization_with(
    id: u64,
    body: &[u8],
    skipped: &mut Skips,
) -> Result<Organization, PayloadError> {
    let raw: RawDetails = serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => format!("unexpected answer: {e}"),
        _ => format!("invalid JSON: {e}"),
    })?;
    let status = StatusFields {
        error_code: raw.error_code,
        error_message: raw.error_message,
        err_list: raw.err_list,
        error: raw.error,
        response: raw.response,
    };
    if let Some(e) = status.api_error() {
        return Err(e.into());
    }
    let info = raw
        .organization_info
        .ok_or("the answer has no organizationInfo")?;
    let info: RawInfo =
        serde_json::from_str(info.get()).map_err(|e| format!("unexpected answer: {e}"))?;
    let org = info.organization;
    let (name, description, company, enabled) = match org {
        Some(o) => {
            let deactivated = o
                .deactivate_options
                .as_ref()
                .is_some_and(|d| d.deactivated());
            let enabled = match o.enabled {
                Some(e) => Some(e && !deactivated),
                None if deactivated => Some(false),
                None => None,
            };
            (
                o.short_name.and_then(|s| s.domain_name),
                o.description,
                o.connect_name,
                enabled,
            )
        }
        None => (None, None, None, None),
    };
    let who = format!("organization {id}");
    let (counts, created) = match info.organization_properties {
        Some(p) => {
            let mut count = |c: Count, field: &str| c.take(skipped, &who, field);
            let hypervisors = count(p.hypervisior_count, "hypervisiorCount")
                .or(count(p.hypervisor_count, "hypervisorCount"));
            (
                [
                    count(p.user_count, "userCount"),
                    count(p.device_count, "deviceCount"),
                    count(p.physical_device_count, "physicalDeviceCount"),
                    count(p.server_count, "serverCount"),
                    count(p.vm_count, "vmCount"),
                    hypervisors,
                    count(p.total_machine_count, "totalMachineCount"),
                    count(p.misc_machine_count, "miscMachineCount"),
                ],
                // 0 is how an unknown time reads, not 1970.
                p.org_creation_date_time.filter(|t| *t > 0.0),
            )
        }
        None => ([None; 8], None),
    };
    Ok(Organization {
        id,
        name: name.unwrap_or_default().into(),
        description: description.unwrap_or_default().into(),
        company: company.unwrap_or_default().into(),
        enabled,
        counts,
        created,
        read_at: 0.0,
    })
}

/// The last good details of each organization, served again while its details fail.
#[derive(Default)]
struct LastGood(Mutex<HashMap<u64, Arc<Organization>>>);

impl LastGood {
    /// Remembers the organizations just read, stands in the last good copy for those that
    /// failed and forgets organizations no longer listed. Returns the organizations to
    /// publish and a description of each failure, by id.
    /// A kept copy read longer than `stale_after` before `now` is dropped.
    fn merge(
        &self,
        results: Vec<(Listed, Result<Organization, CollectError>)>,
        now: f64,
        stale_after: Duration,
    ) -> (Vec<Arc<Organization>>, Vec<String>) {
        let mut last = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let listed: HashSet<u64> = results.iter().map(|(l, _)| l.id).collect();
        let oldest = now - stale_after.as_secs_f64();
        last.retain(|id, o| listed.contains(id) && o.read_at >= oldest);
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

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
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
pub(crate) struct Organizations {
    base_url: Url,
    /// Configured ids; `None` lists every organization.
    ids: Option<Vec<u64>>,
    concurrency: usize,
    stale_after: Duration,
    session: Session,
    last_good: LastGood,
}

impl Organizations {
    pub(crate) fn new(
        base_url: Url,
        ids: Option<Vec<u64>>,
        concurrency: usize,
        stale_after: Duration,
        session: Session,
    ) -> Self {
        Organizations {
            base_url,
            ids,
            concurrency: concurrency.max(1),
            stale_after,
            session,
            last_good: LastGood::default(),
        }
    }

    async fn list(&self, client: &Client, ctx: &RequestCtx) -> Result<Vec<Listed>, CollectError> {
        let resp = self
            .session
            .get(client, ctx, &endpoint(&self.base_url, "Organization"))
            .await?;
        let shown = display_url(&resp.url);
        let mut objects = Objects::new(client.policy().max_objects);
        let (listed, skipped) = resp
            .parse(move |resp| parse_list_limited(&resp.body, &mut objects))
            .await?
            .map_err(|e| {
                CollectError::Payload(format!(
                    "{shown}: invalid organization list: {}",
                    self.session.scrub(&e.to_string())
                ))
            })?;
        skipped.warn(ctx, "unreadable organizations in the list");
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
        let shown = display_url(&resp.url);
        let id = listed.id;
        let (mut o, skipped) = resp
            .parse(move |resp| {
                let mut skipped = Skips::default();
                parse_organization_with(id, &resp.body, &mut skipped).map(|o| (o, skipped))
            })
            .await?
            .map_err(|e| {
                CollectError::Payload(format!("{shown}: {}", self.session.scrub(&e.to_string())))
            })?;
        skipped.warn(ctx, "unusable values in an organization's details");
        if o.name.is_empty() {
            if let Some(name) = &listed.name {
                o.name = name.clone();
            }
        }
        if o.company.is_empty() {
            if let Some(company) = &listed.company {
                o.company = company.clone();
            }
        }
        o.enabled = o.enabled.or(listed.enabled);
        o.read_at = unix_now();
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
                    company: None,
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
        let (items, failures) = self.last_good.merge(results, unix_now(), self.stale_after);
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
