//! Webex BroadWorks enterprises and their directory-sync status (collector `webex_broadworks`).
//!
//! `GET {base}/broadworks/enterprises?max=N[&startsWith=..]`, following `Link: rel="next"`.

use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use prometheus_client::encoding::MetricEncoder;
use serde::Deserialize;
use serde_json::value::RawValue;
use url::Url;

use super::WebexAuth;
use crate::config::BroadworksConfig;
use crate::snapshot::{gauge, Family, SampleSet};
use crate::sources::{help, lenient, parse_timestamp, Collect, CollectError, Collected, Objects};
use crate::upstream::{display_url, Client, RequestCtx};

pub const COLLECTOR: &str = "webex_broadworks";

/// Statuses always exposed (0 unless current); any other upstream value is passed through.
pub const KNOWN_STATUSES: [&str; 4] = ["COMPLETE", "IN_PROGRESS", "NOT_SYNCED", "FAILED"];

const CHANGE_KINDS: [(&str, &str); 12] = [
    ("user", "added"),
    ("user", "updated"),
    ("user", "deleted"),
    ("machine", "added"),
    ("machine", "updated"),
    ("machine", "deleted"),
    ("user_contact", "added"),
    ("user_contact", "updated"),
    ("user_contact", "deleted"),
    ("org_contact", "added"),
    ("org_contact", "updated"),
    ("org_contact", "deleted"),
];

static FAMILIES: [Family; 12] = [
    Family {
        name: "webex_broadworks_enterprise_info",
        help: help!("Webex", "BroadWorks enterprise identifiers, value 1."),
    },
    Family {
        name: "webex_broadworks_enterprises",
        help: help!(
            "Webex",
            "BroadWorks enterprises provisioned for this target."
        ),
    },
    Family {
        name: "webex_broadworks_directory_sync_enabled",
        help: help!(
            "Webex",
            "Whether directory sync is enabled for the enterprise (1) or not (0)."
        ),
    },
    Family {
        name: "webex_broadworks_directory_sync_status",
        help: help!(
            "Webex",
            "Directory sync status: 1 for the current status, 0 for the other known ones."
        ),
    },
    Family {
        name: "webex_broadworks_directory_sync_last_start_timestamp_seconds",
        help: help!("Webex", "Unix time the last directory sync started."),
    },
    Family {
        name: "webex_broadworks_directory_sync_last_end_timestamp_seconds",
        help: help!("Webex", "Unix time the last directory sync ended."),
    },
    Family {
        name: "webex_broadworks_directory_sync_last_success_timestamp_seconds",
        help: help!("Webex", "Unix time of the last successful directory sync."),
    },
    Family {
        name: "webex_broadworks_directory_sync_last_changes",
        help: help!(
            "Webex",
            "Objects changed by the last directory sync, by object and action."
        ),
    },
    Family {
        name: "webex_broadworks_directory_sync_errors",
        help: help!(
            "Webex",
            "Errors reported for the last directory sync attempt."
        ),
    },
    Family {
        name: "webex_broadworks_directory_sync_error_info",
        help: help!(
            "Webex",
            "Error codes reported for the last directory sync attempt, value 1."
        ),
    },
    Family {
        name: "webex_broadworks_external_identities",
        help: help!(
            "Webex",
            "External users and machines in Webex Common Identity across all syncs."
        ),
    },
    Family {
        name: "webex_broadworks_contacts",
        help: help!(
            "Webex",
            "User and org contacts in the Webex contact service."
        ),
    },
];

/// One enterprise, reduced to what the metrics need.
#[derive(Debug, Clone, PartialEq)]
pub struct Enterprise {
    pub sp_enterprise_id: Box<str>,
    pub id: Box<str>,
    pub org_id: Box<str>,
    pub provisioning_id: Box<str>,
    pub sync_enabled: Option<bool>,
    pub status: Option<Box<str>>,
    pub last_start: Option<f64>,
    pub last_end: Option<f64>,
    pub last_success: Option<f64>,
    /// In the order of `CHANGE_KINDS`.
    pub changes: [Option<f64>; 12],
    /// Distinct error codes of the last attempt; `None` when there is no sync status at all.
    pub errors: Option<Vec<Box<str>>>,
    /// Errors of the last attempt, duplicates included.
    pub error_count: usize,
    pub external_users: Option<f64>,
    pub external_machines: Option<f64>,
    pub user_contacts: Option<f64>,
    pub org_contacts: Option<f64>,
}

#[derive(Debug, Default)]
pub struct Enterprises {
    pub items: Vec<Enterprise>,
}

use crate::sources::lenient::Count;
pub use crate::sources::lenient::{Skipped, Skips};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEnterprise {
    #[serde(default, deserialize_with = "lenient::de::text")]
    id: Option<String>,
    #[serde(default, deserialize_with = "lenient::de::text")]
    org_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::de::text")]
    provisioning_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::de::text")]
    sp_enterprise_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::de::object")]
    broadworks_directory_sync: Option<RawDirSync>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDirSync {
    #[serde(default, deserialize_with = "lenient::de::boolean")]
    enable_dir_sync: Option<bool>,
    #[serde(default, deserialize_with = "lenient::de::object")]
    directory_sync_status: Option<RawSyncStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSyncStatus {
    #[serde(default, deserialize_with = "lenient::de::text")]
    last_sync_start_time: Option<String>,
    #[serde(default, deserialize_with = "lenient::de::text")]
    last_sync_end_time: Option<String>,
    #[serde(default, deserialize_with = "lenient::de::text")]
    last_successful_sync_time: Option<String>,
    #[serde(default, deserialize_with = "lenient::de::text")]
    sync_status: Option<String>,
    #[serde(default, deserialize_with = "lenient::de::count")]
    users_added: Count,
    #[serde(default, deserialize_with = "lenient::de::count")]
    users_updated: Count,
    #[serde(default, deserialize_with = "lenient::de::count")]
    users_deleted: Count,
    #[serde(default, deserialize_with = "lenient::de::count")]
    machines_added: Count,
    #[serde(default, deserialize_with = "lenient::de::count")]
    machines_updated: Count,
    #[serde(default, deserialize_with = "lenient::de::count")]
    machines_deleted: Count,
    #[serde(
        default,
        deserialize_with = "lenient::de::count",
        rename = "totalExternalUsersInCI"
    )]
    total_external_users: Count,
    #[serde(
        default,
        deserialize_with = "lenient::de::count",
        rename = "totalExternalMachinesInCI"
    )]
    total_external_machines: Count,
    #[serde(default, deserialize_with = "lenient::de::count")]
    user_contacts_added: Count,
    #[serde(default, deserialize_with = "lenient::de::count")]
    user_contacts_updated: Count,
    #[serde(default, deserialize_with = "lenient::de::count")]
    user_contacts_deleted: Count,
    #[serde(default, deserialize_with = "lenient::de::count")]
    org_contacts_added: Count,
    #[serde(default, deserialize_with = "lenient::de::count")]
    org_contacts_updated: Count,
    #[serde(default, deserialize_with = "lenient::de::count")]
    org_contacts_deleted: Count,
    #[serde(default, deserialize_with = "lenient::de::count")]
    total_user_contacts_in_contact_service: Count,
    #[serde(default, deserialize_with = "lenient::de::count")]
    total_org_contacts_in_contact_service: Count,
    #[serde(default, deserialize_with = "lenient::de::object")]
    errors: Option<Vec<RawError>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawError {
    error_code: Option<serde_json::Value>,
}

/// Parses one page. An item that cannot be read is skipped and counted; a page that is not
/// `{"items": [...]}`, a page whose items are all unreadable, and a page that takes the
/// collection past its object limit are errors.
pub fn parse_page(
    body: &[u8],
    out: &mut Vec<Enterprise>,
    skipped: &mut Skips,
    objects: &mut Objects,
) -> Result<(), String> {
    let before = out.len();
    let mut stop = None;
    let seen = lenient::visit_list(
        body,
        "items",
        &mut |i, raw: &RawValue| {
            if let Err(e) = objects.take() {
                stop = Some(e);
                return Err(String::new());
            }
            match serde_json::from_str::<RawEnterprise>(raw.get()) {
                Ok(item) => match convert(item, skipped) {
                    Some(e) => out.push(e),
                    None => skipped.note(|| format!("items[{i}]: no spEnterpriseId")),
                },
                Err(e) => skipped.note(|| format!("items[{i}]: {e}")),
            }
            Ok(())
        },
        &mut |_, _| {},
    );
    if let Some(e) = stop {
        return Err(e);
    }
    let seen = seen.map_err(|e| e.to_string())?;
    if !seen.present {
        return Err("no items list".into());
    }
    if seen.items > 0 && out.len() == before {
        return Err(format!(
            "none of the {} items on the page could be read{}",
            seen.items,
            skipped
                .first()
                .map(|s| format!(" (first: {})", s.what))
                .unwrap_or_default()
        ));
    }
    Ok(())
}

fn convert(raw: RawEnterprise, skipped: &mut Skips) -> Option<Enterprise> {
    let sp_enterprise_id: Box<str> = raw.sp_enterprise_id.filter(|s| !s.is_empty())?.into();
    let sync = raw.broadworks_directory_sync;
    let sync_enabled = sync.as_ref().and_then(|s| s.enable_dir_sync);
    let status = sync.and_then(|s| s.directory_sync_status);
    let mut time = |field: &str, v: &Option<String>| -> Option<f64> {
        let v = v.as_deref().filter(|v| !v.trim().is_empty())?;
        let t = parse_timestamp(v);
        if t.is_none() {
            skipped.push(Skipped {
                what: format!(
                    "enterprise {:?}: {field} {:?} is not an RFC 3339 timestamp",
                    sp_enterprise_id,
                    crate::upstream::sanitize(v, 64)
                ),
            });
        }
        t
    };
    let (last_start, last_end, last_success) = match &status {
        Some(s) => (
            time("lastSyncStartTime", &s.last_sync_start_time),
            time("lastSyncEndTime", &s.last_sync_end_time),
            time("lastSuccessfulSyncTime", &s.last_successful_sync_time),
        ),
        None => (None, None, None),
    };
    let mut e = Enterprise {
        sp_enterprise_id,
        id: raw.id.unwrap_or_default().into(),
        org_id: raw.org_id.unwrap_or_default().into(),
        provisioning_id: raw.provisioning_id.unwrap_or_default().into(),
        sync_enabled,
        status: None,
        last_start,
        last_end,
        last_success,
        changes: [None; 12],
        errors: None,
        error_count: 0,
        external_users: None,
        external_machines: None,
        user_contacts: None,
        org_contacts: None,
    };
    if let Some(s) = status {
        e.status = s.sync_status.filter(|v| !v.is_empty()).map(Into::into);
        let who = format!("enterprise {:?}", e.sp_enterprise_id);
        let mut count = |c: Count, field: &str| c.take(skipped, &who, field);
        e.changes = [
            count(s.users_added, "usersAdded"),
            count(s.users_updated, "usersUpdated"),
            count(s.users_deleted, "usersDeleted"),
            count(s.machines_added, "machinesAdded"),
            count(s.machines_updated, "machinesUpdated"),
            count(s.machines_deleted, "machinesDeleted"),
            count(s.user_contacts_added, "userContactsAdded"),
            count(s.user_contacts_updated, "userContactsUpdated"),
            count(s.user_contacts_deleted, "userContactsDeleted"),
            count(s.org_contacts_added, "orgContactsAdded"),
            count(s.org_contacts_updated, "orgContactsUpdated"),
            count(s.org_contacts_deleted, "orgContactsDeleted"),
        ];
        let mut codes: Vec<Box<str>> = s
            .errors
            .unwrap_or_default()
            .into_iter()
            .map(|err| match err.error_code {
                Some(serde_json::Value::Number(n)) => n.to_string().into(),
                Some(serde_json::Value::String(s)) if !s.is_empty() => s.into(),
                _ => "unknown".into(),
            })
            .collect();
        e.error_count = codes.len();
        codes.sort();
        codes.dedup();
        e.errors = Some(codes);
        e.external_users = count(s.total_external_users, "totalExternalUsersInCI");
        e.external_machines = count(s.total_external_machines, "totalExternalMachinesInCI");
        e.user_contacts = count(
            s.total_user_contacts_in_contact_service,
            "totalUserContactsInContactService",
        );
        e.org_contacts = count(
            s.total_org_contacts_in_contact_service,
            "totalOrgContactsInContactService",
        );
    }
    Some(e)
}

impl Enterprises {
    /// Builds the set from parsed items: a spEnterpriseId seen twice (pages that overlap
    /// while the list changes) is kept once, the later item winning, so the exposition never
    /// repeats a series.
    pub fn new(mut items: Vec<Enterprise>) -> Enterprises {
        // In place, to keep the peak memory of a 10,000-enterprise collection low: reversed
        // and stably sorted, the later of two repeats comes first and `dedup_by` keeps it.
        items.reverse();
        items.sort_by(|a, b| a.sp_enterprise_id.cmp(&b.sp_enterprise_id));
        items.dedup_by(|dup, kept| dup.sp_enterprise_id == kept.sp_enterprise_id);
        items.shrink_to_fit();
        Enterprises { items }
    }
}

impl SampleSet for Enterprises {
    fn families(&self) -> &'static [Family] {
        &FAMILIES
    }

    fn objects(&self) -> usize {
        self.items.len()
    }

    fn encode(&self, family: usize, target: &str, enc: &mut MetricEncoder<'_>) -> fmt::Result {
        if family == 1 {
            return gauge(enc, &[("target", target)], self.items.len() as f64);
        }
        for e in &self.items {
            let id = &*e.sp_enterprise_id;
            let base = [("target", target), ("sp_enterprise_id", id)];
            match family {
                0 => gauge(
                    enc,
                    &[
                        ("target", target),
                        ("sp_enterprise_id", id),
                        ("enterprise_id", &e.id),
                        ("org_id", &e.org_id),
                        ("provisioning_id", &e.provisioning_id),
                    ],
                    1.0,
                )?,
                2 => {
                    if let Some(v) = e.sync_enabled {
                        gauge(enc, &base, if v { 1.0 } else { 0.0 })?
                    }
                }
                3 => {
                    let current = e.status.as_deref();
                    for s in KNOWN_STATUSES {
                        let v = if current == Some(s) { 1.0 } else { 0.0 };
                        gauge(
                            enc,
                            &[("target", target), ("sp_enterprise_id", id), ("status", s)],
                            v,
                        )?;
                    }
                    if let Some(s) = current.filter(|s| !KNOWN_STATUSES.contains(s)) {
                        gauge(
                            enc,
                            &[("target", target), ("sp_enterprise_id", id), ("status", s)],
                            1.0,
                        )?;
                    }
                }
                4..=6 => {
                    let v = [e.last_start, e.last_end, e.last_success][family - 4];
                    if let Some(v) = v {
                        gauge(enc, &base, v)?
                    }
                }
                7 => {
                    for ((object, action), v) in CHANGE_KINDS.iter().zip(e.changes) {
                        if let Some(v) = v {
                            let l = [
                                ("target", target),
                                ("sp_enterprise_id", id),
                                ("object", object),
                                ("action", action),
                            ];
                            gauge(enc, &l, v)?;
                        }
                    }
                }
                8 if e.errors.is_some() => gauge(enc, &base, e.error_count as f64)?,
                9 => {
                    for code in e.errors.iter().flatten() {
                        gauge(
                            enc,
                            &[
                                ("target", target),
                                ("sp_enterprise_id", id),
                                ("error_code", code),
                            ],
                            1.0,
                        )?;
                    }
                }
                10 => {
                    for (object, v) in
                        [("user", e.external_users), ("machine", e.external_machines)]
                    {
                        if let Some(v) = v {
                            gauge(
                                enc,
                                &[
                                    ("target", target),
                                    ("sp_enterprise_id", id),
                                    ("object", object),
                                ],
                                v,
                            )?;
                        }
                    }
                }
                11 => {
                    for (object, v) in [("user", e.user_contacts), ("org", e.org_contacts)] {
                        if let Some(v) = v {
                            gauge(
                                enc,
                                &[
                                    ("target", target),
                                    ("sp_enterprise_id", id),
                                    ("object", object),
                                ],
                                v,
                            )?;
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Polls one Webex target's BroadWorks enterprises.
pub struct Broadworks {
    pub base_url: Url,
    pub auth: Arc<WebexAuth>,
    pub config: BroadworksConfig,
}

impl Broadworks {
    fn first_url(&self) -> Url {
        let mut url = crate::sources::endpoint(&self.base_url, "broadworks/enterprises");
        self.ensure_params(&mut url);
        url
    }

    /// Next links may drop the first request's query parameters; put back the ones that
    /// shape the result.
    fn ensure_params(&self, url: &mut Url) {
        let has = |url: &Url, key: &str| url.query_pairs().any(|(k, _)| k == key);
        let missing_max = !has(url, "max");
        let missing_starts_with = self.config.starts_with.is_some() && !has(url, "startsWith");
        let mut q = url.query_pairs_mut();
        if missing_max {
            q.append_pair("max", &self.config.page_size.to_string());
        }
        if let (true, Some(prefix)) = (missing_starts_with, &self.config.starts_with) {
            q.append_pair("startsWith", prefix);
        }
    }

    async fn fetch(&self, client: &Client, ctx: &RequestCtx) -> Result<Collected, CollectError> {
        let mut items = Vec::new();
        let mut skipped = Skips::default();
        let mut objects = Objects::new(client.policy().max_objects);
        let pages = super::Pages {
            what: "enterprises",
            base_url: &self.base_url,
            page_size: Some(self.config.page_size as usize),
            max_pages: client.policy().max_pages,
        };
        pages
            .read(
                &self.auth,
                client,
                ctx,
                self.first_url(),
                |url| self.ensure_params(url),
                |resp| {
                    let before = items.len() + skipped.len();
                    parse_page(&resp.body, &mut items, &mut skipped, &mut objects).map_err(
                        |e| {
                            CollectError::Payload(format!(
                                "{}: invalid enterprise list: {}",
                                display_url(&resp.url),
                                resp.scrub(&e.to_string())
                            ))
                        },
                    )?;
                    Ok(items.len() + skipped.len() - before)
                },
            )
            .await?;
        if !skipped.is_empty() {
            tracing::warn!(
                collector = COLLECTOR,
                target = %ctx.target,
                skipped = skipped.len(),
                first = %skipped[0].what,
                "skipped unreadable values in the enterprise list"
            );
        }
        Ok(Collected::complete(Arc::new(Enterprises::new(items))))
    }
}

impl Collect for Broadworks {
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
mod tests;
