//! Fake BroadWorks enterprises whose directory syncs complete, run and fail over time.

use std::time::{Duration, SystemTime};

use serde_json::json;

use super::SimState;

/// A stable pseudo-random number for `(a, b)` (splitmix64).
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_add(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The enterprise's identifier. Index 0 carries the characters that need escaping in the
/// exposition, as real customer names do.
pub(crate) fn sp_enterprise_id(i: usize) -> String {
    if i == 0 {
        "Reseller1+\"Zürich\" Ost\\Süd".to_string()
    } else {
        format!("Reseller{}+tenant-{i:05}", 1 + i % 3)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Directory sync never enabled nor run.
    NeverSynced,
    /// Every attempt fails to reach the BroadWorks cluster.
    Failing,
    /// Syncs complete but report an error for some users.
    CompleteWithErrors,
    Healthy,
}

fn kind(i: usize) -> Kind {
    match i % 20 {
        7 => Kind::NeverSynced,
        2 => Kind::Failing,
        12 => Kind::CompleteWithErrors,
        _ => Kind::Healthy,
    }
}

fn ts(t: SystemTime) -> String {
    humantime::format_rfc3339_micros(t).to_string()
}

/// The enterprise as the Webex API shows it at `now`.
pub(crate) fn enterprise_json(state: &SimState, i: usize, now: SystemTime) -> String {
    let h = mix(i as u64, 1);
    let id = format!("Y2lzY29zcGFyazovL3VzL0VOVEVSUFJJU0Uv{:016x}", h);
    let org_id = format!(
        "Y2lzY29zcGFyazovL3VzL09SR0FOSVpBVElPTi8{:016x}",
        mix(i as u64, 2)
    );
    let provisioning_id = format!("ZjViMzYxODctYzhkZC00NzI3LThiMmYt{:016x}", mix(i as u64, 3));
    let kind = kind(i);
    let mut item = json!({
        "id": id,
        "orgId": org_id,
        "spEnterpriseId": sp_enterprise_id(i),
        "provisioningId": provisioning_id,
    });
    if kind == Kind::NeverSynced {
        item["broadworksDirectorySync"] =
            json!({"enableDirSync": false, "directorySyncStatus": {"syncStatus": "NOT_SYNCED"}});
        return item.to_string();
    }

    // Syncs start every period at a per-enterprise phase and run for 20 to 60 seconds.
    let period = state.opts.sync_period.as_secs().max(60);
    let unix = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let phase = h % period;
    let cycle = unix.saturating_sub(phase) / period;
    let run = 20 + h % 40;
    let at = |secs: u64| {
        SystemTime::UNIX_EPOCH
            + Duration::from_secs(secs)
            + Duration::from_micros(mix(i as u64, secs) % 1_000_000)
    };
    let start = cycle * period + phase;
    let (status, last_start, last_end) = if unix < start + run {
        let prev = start.saturating_sub(period);
        ("IN_PROGRESS", start, prev + run)
    } else {
        ("COMPLETE", start, start + run)
    };
    let changes = |salt: u64, max: u64| mix(i as u64 ^ (salt << 32), cycle) % max;
    let mut status_json = json!({
        "lastSyncStartTime": ts(at(last_start)),
        "lastSyncEndTime": ts(at(last_end)),
        "syncStatus": status,
        "usersAdded": changes(1, 4),
        "usersUpdated": changes(2, 12),
        "usersDeleted": changes(3, 2),
        "machinesAdded": changes(4, 2),
        "machinesUpdated": changes(5, 3),
        "machinesDeleted": changes(6, 2),
        "totalExternalUsersInCI": 20 + h % 500 + cycle % 7,
        "totalExternalMachinesInCI": 2 + h % 40,
        "lastSyncTrackingId": format!("BROADWORKS_SIM_{:08x}_{cycle}", h as u32),
        "userContactsAdded": changes(7, 3),
        "userContactsUpdated": changes(8, 5),
        "userContactsDeleted": changes(9, 2),
        "orgContactsAdded": changes(10, 2),
        "orgContactsUpdated": changes(11, 2),
        "orgContactsDeleted": 0,
        "totalUserContactsInContactService": 50 + h % 900,
        "totalOrgContactsInContactService": 5 + h % 60,
    });
    match kind {
        Kind::Failing => {
            // The last success was three days before the simulator started.
            let last_ok = state.epoch - Duration::from_secs(3 * 86_400);
            status_json["syncStatus"] = json!("FAILED");
            // The failed attempt ends 8 s after it started, and not in the future.
            status_json["lastSyncEndTime"] = json!(ts(at((last_start + 8).min(unix))));
            status_json["lastSuccessfulSyncTime"] = json!(ts(last_ok));
            status_json["errors"] = json!([
                {"errorCode": 6003, "description": "Failure connecting to the BroadWorks cluster."}
            ]);
            for f in [
                "usersAdded",
                "usersUpdated",
                "usersDeleted",
                "machinesAdded",
                "machinesUpdated",
                "machinesDeleted",
            ] {
                status_json[f] = json!(0);
            }
        }
        Kind::CompleteWithErrors if status == "COMPLETE" => {
            status_json["lastSuccessfulSyncTime"] = json!(ts(at(last_end)));
            status_json["errors"] = json!([
                {"errorCode": 6011, "description": "User could not be synced: duplicate email address."}
            ]);
        }
        _ => {
            status_json["lastSuccessfulSyncTime"] = json!(ts(at(last_end)));
            status_json["errors"] = json!([]);
        }
    }
    item["broadworksDirectorySync"] =
        json!({"enableDirSync": true, "directorySyncStatus": status_json});
    item.to_string()
}
