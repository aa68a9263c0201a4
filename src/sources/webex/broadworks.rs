//! Webex BroadWorks enterprises and their directory-sync status (collector `webex_broadworks`).
//!
//! `GET {base}/broadworks/enterprises?max=N[&startsWith=..]`, following `Link: rel="next"`.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use prometheus_client::encoding::MetricEncoder;
use serde::Deserialize;
use serde_json::value::RawValue;
use url::Url;

use super::WebexAuth;
use crate::snapshot::{counter, gauge, FamilyOf, Samples};
use crate::sources::webex::config::BroadworksConfig;
use crate::sources::{
    help, lenient, parse_timestamp, Collect, CollectError, Collected, Objects, PayloadError,
};
use crate::upstream::{display_url, Client, RequestCtx};

pub(crate) const COLLECTOR: &str = "webex_broadworks";

/// Statuses always exposed (0 unless current); any other upstream value is passed through.
pub(crate) const KNOWN_STATUSES: [&str; 4] = ["COMPLETE", "IN_PROGRESS", "NOT_SYNCED", "FAILED"];

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

/// The families, in exposition order, each with the encoder of its samples. The default
/// ones keep an enterprise whose last sync had no error at 11 series; the per-enterprise
/// detail families are opt-in.
pub(crate) static FAMILIES: [FamilyOf<Enterprises>; 16] = [
    FamilyOf {
        name: "webex_broadworks_enterprise_info",
        help: help!("Webex", "BroadWorks enterprise identifiers, value 1."),
        encode: |s, target, enc| {
            for e in &s.items {
                let labels = [
                    ("target", target),
                    ("sp_enterprise_id", &*e.sp_enterprise_id),
                    ("enterprise_id", &e.id),
                    ("org_id", &e.org_id),
                    ("provisioning_id", &e.provisioning_id),
                ];
                gauge(enc, &labels, 1.0)?;
            }
            Ok(())
        },
    },
    FamilyOf {
        name: "webex_broadworks_enterprises",
        help: help!(
            "Webex",
            "BroadWorks enterprises provisioned for this target."
        ),
        encode: |s, target, enc| gauge(enc, &[("target", target)], s.items.len() as f64),
    },
    FamilyOf {
        name: "webex_broadworks_directory_sync_enabled",
        help: help!(
            "Webex",
            "Whether directory sync is enabled for the enterprise (1) or not (0)."
        ),
        encode: |s, target, enc| {
            s.each(target, enc, |e| e.sync_enabled.map(|v| if v { 1.0 } else { 0.0 }))
        },
    },
    FamilyOf {
        name: "webex_broadworks_directory_sync_status",
        help: help!(
            "Webex",
            "Directory sync status: 1 for the current status, 0 for the other known ones."
        ),
        encode: Enterprises::encode_status,
    },
    FamilyOf {
        name: "webex_broadworks_directory_sync_last_start_timestamp_seconds",
        help: help!("Webex", "Unix time the last directory sync started."),
        encode: |s, target, enc| s.each(target, enc, Enterprise::last_start),
    },
    FamilyOf {
        name: "webex_broadworks_directory_sync_last_end_timestamp_seconds",
        help: help!("Webex", "Unix time the last directory sync ended."),
        encode: |s, target, enc| s.each(target, enc, Enterprise::last_end),
    },
    FamilyOf {
        name: "webex_broadworks_directory_sync_last_success_timestamp_seconds",
        help: help!(
            "Webex",
            "Unix time of the last successful directory sync: lastSuccessfulSyncTime, or the end time of a last sync that is COMPLETE without errors when Webex leaves lastSuccessfulSyncTime out."
        ),
        encode: |s, target, enc| s.each(target, enc, Enterprise::last_success),
    },
    FamilyOf {
        name: "webex_broadworks_directory_sync_error_info",
        help: help!(
            "Webex",
            "Errors of the last directory sync, one per error code, with the first description (at most 200 characters) and the sync's lastSyncTrackingId; value 1."
        ),
        encode: Enterprises::encode_error_info,
    },
    FamilyOf {
        name: "webex_broadworks_directory_syncs_total",
        help: help!(
            "Webex",
            "Finished directory syncs seen by this exporter, counted once per lastSyncTrackingId; failed when the sync reported errors, is FAILED, or ended after the last success. The sync already finished when an enterprise is first seen is not counted."
        ),
        encode: |s, target, enc| {
            for e in &s.items {
                for (result, v) in [("success", e.syncs[0]), ("failed", e.syncs[1])] {
                    let l = [
                        ("target", target),
                        ("sp_enterprise_id", &*e.sp_enterprise_id),
                        ("result", result),
                    ];
                    counter(enc, &l, v)?;
                }
            }
            Ok(())
        },
    },
    FamilyOf {
        name: "webex_broadworks_directory_sync_changes_total",
        help: help!(
            "Webex",
            "Objects changed by the directory syncs counted in webex_broadworks_directory_syncs_total, summed over the target's enterprises."
        ),
        encode: |s, target, enc| {
            for ((object, action), v) in CHANGE_KINDS.iter().zip(s.changes_total) {
                let l = [("target", target), ("object", object), ("action", action)];
                counter(enc, &l, v)?;
            }
            Ok(())
        },
    },
    FamilyOf {
        name: "webex_broadworks_target_external_identities",
        help: help!(
            "Webex",
            "External users and machines in Webex Common Identity, summed over the target's enterprises."
        ),
        encode: |s, target, enc| {
            s.target_sums(
                target,
                enc,
                [
                    ("user", |e| e.count(count::EXTERNAL_USERS)),
                    ("machine", |e| e.count(count::EXTERNAL_MACHINES)),
                ],
            )
        },
    },
    FamilyOf {
        name: "webex_broadworks_target_contacts",
        help: help!(
            "Webex",
            "User and org contacts in the Webex contact service, summed over the target's enterprises."
        ),
        encode: |s, target, enc| {
            s.target_sums(
                target,
                enc,
                [
                    ("user", |e| e.count(count::USER_CONTACTS)),
                    ("org", |e| e.count(count::ORG_CONTACTS)),
                ],
            )
        },
    },
    FamilyOf {
        name: "webex_broadworks_directory_sync_errors",
        help: help!(
            "Webex",
            "Errors reported for the last directory sync attempt; absent when Webex sends no errors field."
        ),
        encode: |s, target, enc| {
            s.each(target, enc, |e| {
                e.errors.as_ref().map(|_| f64::from(e.error_count))
            })
        },
    },
    FamilyOf {
        name: "webex_broadworks_directory_sync_last_changes",
        help: help!(
            "Webex",
            "Objects changed by the last directory sync, by object and action."
        ),
        encode: Enterprises::encode_last_changes,
    },
    FamilyOf {
        name: "webex_broadworks_external_identities",
        help: help!(
            "Webex",
            "External users and machines in Webex Common Identity across all syncs."
        ),
        encode: |s, target, enc| {
            s.each_object(target, enc, |e| {
                [
                    ("user", e.count(count::EXTERNAL_USERS)),
                    ("machine", e.count(count::EXTERNAL_MACHINES)),
                ]
            })
        },
    },
    FamilyOf {
        name: "webex_broadworks_contacts",
        help: help!(
            "Webex",
            "User and org contacts in the Webex contact service."
        ),
        encode: |s, target, enc| {
            s.each_object(target, enc, |e| {
                [
                    ("user", e.count(count::USER_CONTACTS)),
                    ("org", e.count(count::ORG_CONTACTS)),
                ]
            })
        },
    },
];

/// Families left out unless the config enables them: per-enterprise detail that the
/// dashboards only sum per target (see the `target_*` and `_changes_total` families).
pub const OPT_IN: [&str; 4] = [
    "webex_broadworks_directory_sync_errors",
    "webex_broadworks_directory_sync_last_changes",
    "webex_broadworks_external_identities",
    "webex_broadworks_contacts",
];

/// The longest error description exposed, in characters.
const DESCRIPTION_MAX: usize = 200;

/// One enterprise, reduced to what the metrics need. About 100,000 of them can be held
/// per target, so the layout is compact: times are `f64` with NaN for "absent", and the 16
/// counts whole numbers in 4 bytes each (see `Counts`).
#[derive(Debug, Clone, PartialEq)]
pub struct Enterprise {
    /// Shared with the collector's `SyncTracker`, which keys its counts by it.
    pub sp_enterprise_id: Arc<str>,
    pub id: Box<str>,
    pub org_id: Box<str>,
    pub provisioning_id: Box<str>,
    /// A known status borrows its static spelling, so it costs no allocation.
    pub status: Option<Cow<'static, str>>,
    /// Shared with the collector's `SyncTracker`, which remembers the last sync by it.
    pub tracking_id: Option<Arc<str>>,
    /// Distinct error codes of the last attempt with their first description; `None` when
    /// Webex sent no `errors` field.
    pub errors: Option<Box<[SyncError]>>,
    /// Last sync start, end and success.
    times: Times,
    counts: Counts,
    /// Counted syncs: successful, failed. Set by the collector's `SyncTracker`.
    pub(crate) syncs: [u64; 2],
    /// Errors of the last attempt, duplicates included.
    pub error_count: u32,
    pub sync_enabled: Option<bool>,
}

/// Indexes of an enterprise's counts ([`Enterprise::count`]): the changes of the last sync
/// in the order of `CHANGE_KINDS` (0 to 11), then the totals.
pub mod count {
    pub const EXTERNAL_USERS: usize = 12;
    pub const EXTERNAL_MACHINES: usize = 13;
    pub const USER_CONTACTS: usize = 14;
    pub const ORG_CONTACTS: usize = 15;
}

/// Sixteen optional counts in 4 bytes each. The API's counts are whole numbers; a value
/// that is not one, or does not fit, is kept exactly in a side table instead, so no exposed
/// value changes.
#[derive(Debug, Clone, PartialEq)]
struct Counts {
    small: [u32; 16],
    exact: Option<Box<[Option<f64>; 16]>>,
}

const ABSENT: u32 = u32::MAX;
const IN_EXACT: u32 = u32::MAX - 1;

impl Default for Counts {
    fn default() -> Self {
        Counts {
            small: [ABSENT; 16],
            exact: None,
        }
    }
}

impl Counts {
    fn get(&self, k: usize) -> Option<f64> {
        match *self.small.get(k)? {
            ABSENT => None,
            IN_EXACT => self.exact.as_ref()?[k],
            n => Some(f64::from(n)),
        }
    }

    fn set(&mut self, k: usize, v: Option<f64>) {
        let Some(slot) = self.small.get_mut(k) else {
            return;
        };
        *slot = match v {
            None => ABSENT,
            // Exact round trip, sign included: -0.0 is not stored as 0.
            Some(v) if v < f64::from(IN_EXACT) && f64::from(v as u32).to_bits() == v.to_bits() => {
                v as u32
            }
            Some(v) => {
                self.exact.get_or_insert_with(|| Box::new([None; 16]))[k] = Some(v);
                IN_EXACT
            }
        };
    }
}

/// Unix seconds, NaN when absent; equal when their bits are, so two enterprises without a
/// time compare equal.
#[derive(Debug, Clone, Copy)]
struct Times([f64; 3]);

impl PartialEq for Times {
    fn eq(&self, other: &Times) -> bool {
        self.0.map(f64::to_bits) == other.0.map(f64::to_bits)
    }
}

fn present(t: f64) -> Option<f64> {
    (!t.is_nan()).then_some(t)
}

#[derive(Debug, Clone, PartialEq)]
pub struct SyncError {
    pub code: Box<str>,
    pub description: Box<str>,
}

impl Enterprise {
    /// An enterprise with its identifiers and nothing else known.
    pub fn new(
        sp_enterprise_id: Arc<str>,
        id: Box<str>,
        org_id: Box<str>,
        provisioning_id: Box<str>,
    ) -> Enterprise {
        Enterprise {
            sp_enterprise_id,
            id,
            org_id,
            provisioning_id,
            status: None,
            tracking_id: None,
            errors: None,
            times: Times([f64::NAN; 3]),
            counts: Counts::default(),
            syncs: [0; 2],
            error_count: 0,
            sync_enabled: None,
        }
    }

    pub fn last_start(&self) -> Option<f64> {
        present(self.times.0[0])
    }

    pub fn last_end(&self) -> Option<f64> {
        present(self.times.0[1])
    }

    pub fn last_success(&self) -> Option<f64> {
        present(self.times.0[2])
    }

    /// Sets the last sync's start, end and success times.
    pub fn set_times(&mut self, start: Option<f64>, end: Option<f64>, success: Option<f64>) {
        self.times = Times([start, end, success].map(|t| t.unwrap_or(f64::NAN)));
    }

    /// Count `k`: a change of the last sync (`0..12`, in the order of `CHANGE_KINDS`) or a
    /// total ([`count`]).
    pub fn count(&self, k: usize) -> Option<f64> {
        self.counts.get(k)
    }

    pub fn set_count(&mut self, k: usize, v: Option<f64>) {
        self.counts.set(k, v);
    }

    /// The changes of the last sync, in the order of `CHANGE_KINDS`.
    pub fn changes(&self) -> [Option<f64>; 12] {
        std::array::from_fn(|k| self.count(k))
    }

    /// A finished sync that did not succeed: it reported errors, is FAILED, or ended after
    /// the last success.
    fn last_sync_failed(&self) -> bool {
        self.errors.as_ref().is_some_and(|e| !e.is_empty())
            || self.status.as_deref() == Some("FAILED")
            || matches!((self.last_end(), self.last_success()), (Some(end), Some(ok)) if end > ok)
    }

    /// What identifies the last sync: its tracking id, else its end time.
    fn sync_key(&self) -> Option<SyncKey> {
        match (&self.tracking_id, self.last_end()) {
            (Some(id), _) => Some(SyncKey::Tracking(id.clone())),
            (None, Some(end)) => Some(SyncKey::End(end.to_bits())),
            (None, None) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SyncKey {
    Tracking(Arc<str>),
    End(u64),
}

#[derive(Debug, Default)]
pub struct Enterprises {
    pub items: Vec<Enterprise>,
    /// Changes of the counted syncs per `CHANGE_KINDS`, summed over enterprises.
    pub(crate) changes_total: [u64; 12],
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
    last_sync_tracking_id: Option<String>,
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
    description: Option<serde_json::Value>,
}

/// Parses one page. An item that cannot be read is skipped and counted; a page that is not
/// `{"items": [...]}`, a page whose items are all unreadable, and a page that takes the
/// collection past its object limit are errors.
pub fn parse_page(
    body: &[u8],
    out: &mut Vec<Enterprise>,
    skipped: &mut Skips,
    objects: &mut Objects,
) -> Result<(), PayloadError> {
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
        return Err(PayloadError::Unreadable(format!(
            "none of the {} items on the page could be read{}",
            seen.items,
            skipped
                .first()
                .map(|s| format!(" (first: {})", s.what))
                .unwrap_or_default()
        )));
    }
    Ok(())
}

/// A status, borrowing the static spelling of a known one.
fn status_name(s: String) -> Cow<'static, str> {
    match KNOWN_STATUSES.iter().find(|k| **k == s) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(s),
    }
}

fn convert(raw: RawEnterprise, skipped: &mut Skips) -> Option<Enterprise> {
    let sp_enterprise_id: Arc<str> = raw.sp_enterprise_id.filter(|s| !s.is_empty())?.into();
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
    let mut e = Enterprise::new(
        sp_enterprise_id,
        raw.id.unwrap_or_default().into(),
        raw.org_id.unwrap_or_default().into(),
        raw.provisioning_id.unwrap_or_default().into(),
    );
    e.sync_enabled = sync_enabled;
    let mut last_success = last_success;
    if let Some(s) = status {
        e.status = s.sync_status.filter(|v| !v.is_empty()).map(status_name);
        let who = format!("enterprise {:?}", e.sp_enterprise_id);
        let mut count = |c: Count, field: &str| c.take(skipped, &who, field);
        e.tracking_id = s
            .last_sync_tracking_id
            .filter(|v| !v.is_empty())
            .map(Into::into);
        let counts = [
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
            count(s.total_external_users, "totalExternalUsersInCI"),
            count(s.total_external_machines, "totalExternalMachinesInCI"),
            count(
                s.total_user_contacts_in_contact_service,
                "totalUserContactsInContactService",
            ),
            count(
                s.total_org_contacts_in_contact_service,
                "totalOrgContactsInContactService",
            ),
        ];
        for (k, v) in counts.into_iter().enumerate() {
            e.set_count(k, v);
        }
        e.errors = s.errors.map(|raw| {
            e.error_count = u32::try_from(raw.len()).unwrap_or(u32::MAX);
            let mut errors: Vec<SyncError> = Vec::new();
            for err in raw {
                let code: Box<str> = match err.error_code {
                    Some(serde_json::Value::Number(n)) => n.to_string().into(),
                    Some(serde_json::Value::String(s)) if !s.is_empty() => s.into(),
                    _ => "unknown".into(),
                };
                if errors.iter().any(|e| e.code == code) {
                    continue;
                }
                let description = match err.description {
                    Some(serde_json::Value::String(d)) => {
                        crate::upstream::sanitize(d.trim(), DESCRIPTION_MAX - 1).into()
                    }
                    _ => "".into(),
                };
                errors.push(SyncError { code, description });
            }
            errors.sort_by(|a, b| a.code.cmp(&b.code));
            errors.into_boxed_slice()
        });
        // Webex's own example of a good sync has no lastSuccessfulSyncTime: a sync that
        // completed without errors is the last success.
        if last_success.is_none()
            && e.status.as_deref() == Some("COMPLETE")
            && e.errors.as_ref().is_none_or(|v| v.is_empty())
        {
            last_success = last_end;
        }
    }
    e.set_times(last_start, last_end, last_success);
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
        Enterprises {
            items,
            changes_total: [0; 12],
        }
    }
}

/// Counts directory syncs across collections: the last sync seen per enterprise, and what
/// has been counted so far.
#[derive(Debug, Default)]
pub(crate) struct SyncTracker {
    enterprises: std::collections::HashMap<Arc<str>, Tracked>,
    changes: [u64; 12],
}

#[derive(Debug)]
struct Tracked {
    last: Option<SyncKey>,
    syncs: [u64; 2],
}

impl SyncTracker {
    /// Counts the syncs that finished since the last collection and writes the totals into
    /// `set`. An enterprise seen for the first time starts at 0 with its current sync taken
    /// as already seen, so a restart never invents syncs; an IN_PROGRESS sync is counted
    /// once it has finished. Enterprises that left the list are forgotten.
    pub(crate) fn observe(&mut self, set: &mut Enterprises) {
        let mut next = std::collections::HashMap::with_capacity(set.items.len());
        for e in &mut set.items {
            let key = e.sync_key();
            let tracked = match self.enterprises.remove(&e.sp_enterprise_id) {
                None => Tracked {
                    last: key,
                    syncs: [0; 2],
                },
                Some(mut t) => {
                    let finished = e.status.as_deref() != Some("IN_PROGRESS");
                    if finished && key.is_some() && key != t.last {
                        t.syncs[usize::from(e.last_sync_failed())] += 1;
                        for (total, v) in self.changes.iter_mut().zip(e.changes()) {
                            // Counts of objects; anything else (negative, fractional,
                            // not a number) adds nothing.
                            if let Some(v) = v.filter(|v| v.is_finite() && *v >= 0.0) {
                                *total = total.saturating_add(v.round() as u64);
                            }
                        }
                        t.last = key;
                    }
                    t
                }
            };
            e.syncs = tracked.syncs;
            next.insert(e.sp_enterprise_id.clone(), tracked);
        }
        self.enterprises = next;
        set.changes_total = self.changes;
    }
}

impl Samples for Enterprises {
    const FAMILIES: &'static [FamilyOf<Self>] = &FAMILIES;

    fn count(&self) -> usize {
        self.items.len()
    }

    /// The defaults; the config's selection wraps the set (`sources::families`).
    fn on_by_default(name: &str) -> bool {
        !OPT_IN.contains(&name)
    }
}

/// A value read from an enterprise.
type Value = fn(&Enterprise) -> Option<f64>;

/// What the encoders of `FAMILIES` share.
impl Enterprises {
    /// One gauge per enterprise with a value.
    fn each(
        &self,
        target: &str,
        enc: &mut MetricEncoder<'_>,
        value: impl Fn(&Enterprise) -> Option<f64>,
    ) -> fmt::Result {
        for e in &self.items {
            if let Some(v) = value(e) {
                let l = [
                    ("target", target),
                    ("sp_enterprise_id", &*e.sp_enterprise_id),
                ];
                gauge(enc, &l, v)?;
            }
        }
        Ok(())
    }

    /// Per enterprise, one gauge per object with a value.
    fn each_object(
        &self,
        target: &str,
        enc: &mut MetricEncoder<'_>,
        values: impl Fn(&Enterprise) -> [(&'static str, Option<f64>); 2],
    ) -> fmt::Result {
        for e in &self.items {
            for (object, v) in values(e) {
                if let Some(v) = v {
                    let l = [
                        ("target", target),
                        ("sp_enterprise_id", &*e.sp_enterprise_id),
                        ("object", object),
                    ];
                    gauge(enc, &l, v)?;
                }
            }
        }
        Ok(())
    }

    /// One gauge per object: its values summed over the enterprises that have one.
    fn target_sums(
        &self,
        target: &str,
        enc: &mut MetricEncoder<'_>,
        objects: [(&str, Value); 2],
    ) -> fmt::Result {
        for (object, value) in objects {
            // Folded from +0.0: an empty f64 `sum()` is -0.0.
            let sum = self.items.iter().filter_map(value).fold(0.0, |a, b| a + b);
            gauge(enc, &[("target", target), ("object", object)], sum)?;
        }
        Ok(())
    }

    fn encode_status(&self, target: &str, enc: &mut MetricEncoder<'_>) -> fmt::Result {
        for e in &self.items {
            let id = &*e.sp_enterprise_id;
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
        Ok(())
    }

    fn encode_error_info(&self, target: &str, enc: &mut MetricEncoder<'_>) -> fmt::Result {
        for e in &self.items {
            for err in e.errors.iter().flatten() {
                gauge(
                    enc,
                    &[
                        ("target", target),
                        ("sp_enterprise_id", &e.sp_enterprise_id),
                        ("error_code", &err.code),
                        ("description", &err.description),
                        ("tracking_id", e.tracking_id.as_deref().unwrap_or("")),
                    ],
                    1.0,
                )?;
            }
        }
        Ok(())
    }

    fn encode_last_changes(&self, target: &str, enc: &mut MetricEncoder<'_>) -> fmt::Result {
        for e in &self.items {
            for ((object, action), v) in CHANGE_KINDS.iter().zip(e.changes()) {
                if let Some(v) = v {
                    let l = [
                        ("target", target),
                        ("sp_enterprise_id", &*e.sp_enterprise_id),
                        ("object", object),
                        ("action", action),
                    ];
                    gauge(enc, &l, v)?;
                }
            }
        }
        Ok(())
    }
}

/// Polls one Webex target's BroadWorks enterprises.
pub(crate) struct Broadworks {
    pub(crate) base_url: Url,
    pub(crate) auth: Arc<WebexAuth>,
    pub(crate) config: BroadworksConfig,
    syncs: std::sync::Mutex<SyncTracker>,
}

impl Broadworks {
    pub(crate) fn new(base_url: Url, auth: Arc<WebexAuth>, config: BroadworksConfig) -> Broadworks {
        Broadworks {
            base_url,
            auth,
            config,
            syncs: Default::default(),
        }
    }

    /// The sample set of a complete enterprise list, with the syncs counted.
    fn samples(&self, items: Vec<Enterprise>) -> Enterprises {
        let mut set = Enterprises::new(items);
        // A panic while counting leaves at worst one collection's counts half applied.
        self.syncs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(&mut set);
        set
    }

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
        skipped.warn(ctx, "unreadable values in the enterprise list");
        Ok(Collected::complete(Arc::new(self.samples(items))))
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
