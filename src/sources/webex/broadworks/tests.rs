use std::sync::Arc;

use super::*;
use crate::snapshot::SampleSet as _;
use crate::sources::families::{FamilySelection, Selected};
use crate::sources::testing::*;

const SEED: &str =
    include_str!("../../../../tests/fixtures/webex-list-broadworks-enterprises.json");

fn parse(body: &str) -> (Vec<Enterprise>, Skips) {
    let mut items = Vec::new();
    let mut skipped = Skips::default();
    parse_page(
        body.as_bytes(),
        &mut items,
        &mut skipped,
        &mut Objects::new(usize::MAX),
    )
    .expect("page parses");
    (items, skipped)
}

/// The source's families, as the exposition describes them.
fn families() -> Vec<crate::snapshot::Family> {
    FAMILIES.iter().map(|f| f.family()).collect()
}

fn exposition(items: Vec<Enterprise>) -> String {
    exposition_of(COLLECTOR, "sp1", Arc::new(Enterprises::new(items)))
}

/// The exposition with every family enabled, opt-in ones included.
fn exposition_all(items: Vec<Enterprise>) -> String {
    let all = FamilySelection::new(OPT_IN.iter().map(|f| (f.to_string(), true)).collect());
    let set = Selected::new(Arc::new(Enterprises::new(items)), &all);
    exposition_of(COLLECTOR, "sp1", Arc::new(set))
}

/// The counters of the target's changes, all 0 but the given ones.
fn changes_lines(nonzero: &[(&str, &str, u64)]) -> Vec<String> {
    CHANGE_KINDS
        .iter()
        .map(|(object, action)| {
            let v = nonzero
                .iter()
                .find(|(o, a, _)| o == object && a == action)
                .map_or(0, |(_, _, v)| *v);
            format!(
                r#"webex_broadworks_directory_sync_changes_total{{target="sp1",object="{object}",action="{action}"}} {v}"#
            )
        })
        .collect()
}

#[test]
fn vendor_example_gives_exact_exposition() {
    let (items, skipped) = parse(SEED);
    assert!(skipped.is_empty(), "{skipped:?}");
    let text = exposition(items);
    // COMPLETE without errors and without lastSuccessfulSyncTime: the end is the success.
    insta::assert_snapshot!(text, @r#"
    # HELP webex_broadworks_enterprise_info BroadWorks enterprise identifiers, value 1. Cached from the Webex API; refreshed every collection interval.
    # TYPE webex_broadworks_enterprise_info gauge
    webex_broadworks_enterprise_info{target="sp1",sp_enterprise_id="Reseller1+acme",enterprise_id="Y2lzY29zcGFyazovL3VzL0VOVEVSUFJJU0UvOTZhYmMyYWEtM2RjYy0xMWU1LWExNTItZmUzNDgxOWNkYzlh",org_id="Y2lzY29zcGFyazovL3VzL09SR0FOSVpBVElPTi85NmFiYzJhYS0zZGNjLTExZTUtYTE1Mi1mZTM0ODE5Y2RjOWE",provisioning_id="ZjViMzYxODctYzhkZC00NzI3LThiMmYtZjljNDQ3ZjI5MDQ2OjQyODVmNTk0LTViNTEtNDdiZS05Mzk2LTZjMzZlMmFkODNhNQ"} 1.0
    # HELP webex_broadworks_enterprises BroadWorks enterprises provisioned for this target. Cached from the Webex API; refreshed every collection interval.
    # TYPE webex_broadworks_enterprises gauge
    webex_broadworks_enterprises{target="sp1"} 1.0
    # HELP webex_broadworks_directory_sync_enabled Whether directory sync is enabled for the enterprise (1) or not (0). Cached from the Webex API; refreshed every collection interval.
    # TYPE webex_broadworks_directory_sync_enabled gauge
    webex_broadworks_directory_sync_enabled{target="sp1",sp_enterprise_id="Reseller1+acme"} 1.0
    # HELP webex_broadworks_directory_sync_status Directory sync status: 1 for the current status, 0 for the other known ones. Cached from the Webex API; refreshed every collection interval.
    # TYPE webex_broadworks_directory_sync_status gauge
    webex_broadworks_directory_sync_status{target="sp1",sp_enterprise_id="Reseller1+acme",status="COMPLETE"} 1.0
    webex_broadworks_directory_sync_status{target="sp1",sp_enterprise_id="Reseller1+acme",status="IN_PROGRESS"} 0.0
    webex_broadworks_directory_sync_status{target="sp1",sp_enterprise_id="Reseller1+acme",status="NOT_SYNCED"} 0.0
    webex_broadworks_directory_sync_status{target="sp1",sp_enterprise_id="Reseller1+acme",status="FAILED"} 0.0
    # HELP webex_broadworks_directory_sync_last_start_timestamp_seconds Unix time the last directory sync started. Cached from the Webex API; refreshed every collection interval.
    # TYPE webex_broadworks_directory_sync_last_start_timestamp_seconds gauge
    webex_broadworks_directory_sync_last_start_timestamp_seconds{target="sp1",sp_enterprise_id="Reseller1+acme"} 1617809200.704911
    # HELP webex_broadworks_directory_sync_last_end_timestamp_seconds Unix time the last directory sync ended. Cached from the Webex API; refreshed every collection interval.
    # TYPE webex_broadworks_directory_sync_last_end_timestamp_seconds gauge
    webex_broadworks_directory_sync_last_end_timestamp_seconds{target="sp1",sp_enterprise_id="Reseller1+acme"} 1617809202.69506
    # HELP webex_broadworks_directory_sync_last_success_timestamp_seconds Unix time of the last successful directory sync: lastSuccessfulSyncTime, or the end time of a last sync that is COMPLETE without errors when Webex leaves lastSuccessfulSyncTime out. Cached from the Webex API; refreshed every collection interval.
    # TYPE webex_broadworks_directory_sync_last_success_timestamp_seconds gauge
    webex_broadworks_directory_sync_last_success_timestamp_seconds{target="sp1",sp_enterprise_id="Reseller1+acme"} 1617809202.69506
    # HELP webex_broadworks_directory_sync_error_info Errors of the last directory sync, one per error code, with the first description (at most 200 characters) and the sync's lastSyncTrackingId; value 1. Cached from the Webex API; refreshed every collection interval.
    # TYPE webex_broadworks_directory_sync_error_info gauge
    # HELP webex_broadworks_directory_syncs Finished directory syncs seen by this exporter, counted once per lastSyncTrackingId; failed when the sync reported errors, is FAILED, or ended after the last success. The sync already finished when an enterprise is first seen is not counted. Cached from the Webex API; refreshed every collection interval.
    # TYPE webex_broadworks_directory_syncs counter
    webex_broadworks_directory_syncs_total{target="sp1",sp_enterprise_id="Reseller1+acme",result="success"} 0
    webex_broadworks_directory_syncs_total{target="sp1",sp_enterprise_id="Reseller1+acme",result="failed"} 0
    # HELP webex_broadworks_directory_sync_changes Objects changed by the directory syncs counted in webex_broadworks_directory_syncs_total, summed over the target's enterprises. Cached from the Webex API; refreshed every collection interval.
    # TYPE webex_broadworks_directory_sync_changes counter
    webex_broadworks_directory_sync_changes_total{target="sp1",object="user",action="added"} 0
    webex_broadworks_directory_sync_changes_total{target="sp1",object="user",action="updated"} 0
    webex_broadworks_directory_sync_changes_total{target="sp1",object="user",action="deleted"} 0
    webex_broadworks_directory_sync_changes_total{target="sp1",object="machine",action="added"} 0
    webex_broadworks_directory_sync_changes_total{target="sp1",object="machine",action="updated"} 0
    webex_broadworks_directory_sync_changes_total{target="sp1",object="machine",action="deleted"} 0
    webex_broadworks_directory_sync_changes_total{target="sp1",object="user_contact",action="added"} 0
    webex_broadworks_directory_sync_changes_total{target="sp1",object="user_contact",action="updated"} 0
    webex_broadworks_directory_sync_changes_total{target="sp1",object="user_contact",action="deleted"} 0
    webex_broadworks_directory_sync_changes_total{target="sp1",object="org_contact",action="added"} 0
    webex_broadworks_directory_sync_changes_total{target="sp1",object="org_contact",action="updated"} 0
    webex_broadworks_directory_sync_changes_total{target="sp1",object="org_contact",action="deleted"} 0
    # HELP webex_broadworks_target_external_identities External users and machines in Webex Common Identity, summed over the target's enterprises. Cached from the Webex API; refreshed every collection interval.
    # TYPE webex_broadworks_target_external_identities gauge
    webex_broadworks_target_external_identities{target="sp1",object="user"} 2.0
    webex_broadworks_target_external_identities{target="sp1",object="machine"} 1.0
    # HELP webex_broadworks_target_contacts User and org contacts in the Webex contact service, summed over the target's enterprises. Cached from the Webex API; refreshed every collection interval.
    # TYPE webex_broadworks_target_contacts gauge
    webex_broadworks_target_contacts{target="sp1",object="user"} 0.0
    webex_broadworks_target_contacts{target="sp1",object="org"} 0.0
    "#);
    // At most 12 series for an enterprise whose last sync had no error, by default.
    assert_eq!(
        samples(&text)
            .iter()
            .filter(|l| l.contains("sp_enterprise_id="))
            .count(),
        11
    );
    // Every family is described once, with a HELP that says the values are cached.
    assert_cached_families(&text, &families(), |i| Enterprises::default().enabled(i));
}

#[test]
fn vendor_example_with_every_family_has_no_errors_sample() {
    let (items, _) = parse(SEED);
    let text = exposition_all(items);
    let opt_in: Vec<&str> = samples(&text)
        .into_iter()
        .filter(|l| OPT_IN.iter().any(|f| l.starts_with(&format!("{f}{{"))))
        .collect();
    // Webex sent no `errors` field: no errors sample rather than a made-up 0.
    insta::assert_snapshot!(opt_in.join("\n"), @r#"
    webex_broadworks_directory_sync_last_changes{target="sp1",sp_enterprise_id="Reseller1+acme",object="user",action="added"} 0.0
    webex_broadworks_directory_sync_last_changes{target="sp1",sp_enterprise_id="Reseller1+acme",object="user",action="updated"} 0.0
    webex_broadworks_directory_sync_last_changes{target="sp1",sp_enterprise_id="Reseller1+acme",object="user",action="deleted"} 0.0
    webex_broadworks_directory_sync_last_changes{target="sp1",sp_enterprise_id="Reseller1+acme",object="machine",action="added"} 0.0
    webex_broadworks_directory_sync_last_changes{target="sp1",sp_enterprise_id="Reseller1+acme",object="machine",action="updated"} 0.0
    webex_broadworks_directory_sync_last_changes{target="sp1",sp_enterprise_id="Reseller1+acme",object="machine",action="deleted"} 0.0
    webex_broadworks_external_identities{target="sp1",sp_enterprise_id="Reseller1+acme",object="user"} 2.0
    webex_broadworks_external_identities{target="sp1",sp_enterprise_id="Reseller1+acme",object="machine"} 1.0
    "#);
    assert_cached_families(&text, &families(), |_| true);
}

#[test]
fn counters_are_described_per_format() {
    let (items, _) = parse(SEED);
    let snap = crate::snapshot::Snapshot::encode(vec![crate::snapshot::TargetSamples {
        collector: COLLECTOR,
        target: "sp1".into(),
        samples: Arc::new(Enterprises::new(items)),
    }]);
    let om = snap.text_of(crate::snapshot::Exposition::OpenMetrics);
    let text = snap.text_of(crate::snapshot::Exposition::Text);
    assert!(om.contains("# TYPE webex_broadworks_directory_syncs counter\nwebex_broadworks_directory_syncs_total{"), "{om}");
    assert!(text.contains("# TYPE webex_broadworks_directory_syncs_total counter\nwebex_broadworks_directory_syncs_total{"), "{text}");
    assert!(om.contains("# HELP webex_broadworks_directory_sync_changes Objects"));
    assert!(text.contains("# HELP webex_broadworks_directory_sync_changes_total Objects"));
    // Only the counters' descriptors differ.
    assert_eq!(samples(&om), samples(&text));
}

#[test]
fn missing_fields_produce_no_samples_rather_than_zeros() {
    let (items, skipped) = parse(r#"{"items":[{"spEnterpriseId":"bare"}]}"#);
    assert!(skipped.is_empty());
    let text = exposition_all(items);
    // Counters exist from the start, so the first sync shows in increase().
    insta::assert_snapshot!(samples(&text).join("\n"), @r#"
    webex_broadworks_enterprise_info{target="sp1",sp_enterprise_id="bare",enterprise_id="",org_id="",provisioning_id=""} 1.0
    webex_broadworks_enterprises{target="sp1"} 1.0
    webex_broadworks_directory_sync_status{target="sp1",sp_enterprise_id="bare",status="COMPLETE"} 0.0
    webex_broadworks_directory_sync_status{target="sp1",sp_enterprise_id="bare",status="IN_PROGRESS"} 0.0
    webex_broadworks_directory_sync_status{target="sp1",sp_enterprise_id="bare",status="NOT_SYNCED"} 0.0
    webex_broadworks_directory_sync_status{target="sp1",sp_enterprise_id="bare",status="FAILED"} 0.0
    webex_broadworks_directory_syncs_total{target="sp1",sp_enterprise_id="bare",result="success"} 0
    webex_broadworks_directory_syncs_total{target="sp1",sp_enterprise_id="bare",result="failed"} 0
    webex_broadworks_directory_sync_changes_total{target="sp1",object="user",action="added"} 0
    webex_broadworks_directory_sync_changes_total{target="sp1",object="user",action="updated"} 0
    webex_broadworks_directory_sync_changes_total{target="sp1",object="user",action="deleted"} 0
    webex_broadworks_directory_sync_changes_total{target="sp1",object="machine",action="added"} 0
    webex_broadworks_directory_sync_changes_total{target="sp1",object="machine",action="updated"} 0
    webex_broadworks_directory_sync_changes_total{target="sp1",object="machine",action="deleted"} 0
    webex_broadworks_directory_sync_changes_total{target="sp1",object="user_contact",action="added"} 0
    webex_broadworks_directory_sync_changes_total{target="sp1",object="user_contact",action="updated"} 0
    webex_broadworks_directory_sync_changes_total{target="sp1",object="user_contact",action="deleted"} 0
    webex_broadworks_directory_sync_changes_total{target="sp1",object="org_contact",action="added"} 0
    webex_broadworks_directory_sync_changes_total{target="sp1",object="org_contact",action="updated"} 0
    webex_broadworks_directory_sync_changes_total{target="sp1",object="org_contact",action="deleted"} 0
    webex_broadworks_target_external_identities{target="sp1",object="user"} 0.0
    webex_broadworks_target_external_identities{target="sp1",object="machine"} 0.0
    webex_broadworks_target_contacts{target="sp1",object="user"} 0.0
    webex_broadworks_target_contacts{target="sp1",object="org"} 0.0
    "#);
}

#[test]
fn errors_carry_code_description_and_tracking_id() {
    let long = "x".repeat(300);
    let (items, _) = parse(&format!(
        r#"{{"items":[{{"spEnterpriseId":"e1","broadworksDirectorySync":{{"directorySyncStatus":{{
            "syncStatus":"FAILED","lastSuccessfulSyncTime":"2021-04-01T00:00:00Z",
            "lastSyncTrackingId":"BROADWORKS_1f2e_7",
            "errors":[{{"errorCode":6003,"description":"Failure connecting\nto \"cluster\""}},
                      {{"errorCode":6003,"description":"again"}},
                      {{"errorCode":"6011","description":"{long}"}},
                      {{"description":"no code"}}]}}}}}}]}}"#
    ));
    let text = exposition_all(items);
    let id = r#"target="sp1",sp_enterprise_id="e1""#;
    let capped = format!("{}…", "x".repeat(199));
    assert_eq!(capped.chars().count(), 200);
    assert_eq!(
        samples_starting(&text, "webex_broadworks_directory_sync_error"),
        [
            format!(
                r#"webex_broadworks_directory_sync_error_info{{{id},error_code="6003",description="Failure connecting to \"cluster\"",tracking_id="BROADWORKS_1f2e_7"}} 1.0"#
            ),
            format!(
                r#"webex_broadworks_directory_sync_error_info{{{id},error_code="6011",description="{capped}",tracking_id="BROADWORKS_1f2e_7"}} 1.0"#
            ),
            format!(
                r#"webex_broadworks_directory_sync_error_info{{{id},error_code="unknown",description="no code",tracking_id="BROADWORKS_1f2e_7"}} 1.0"#
            ),
            format!("webex_broadworks_directory_sync_errors{{{id}}} 4.0"),
        ]
    );
    assert_eq!(
        samples_starting(&text, "webex_broadworks_directory_sync_last_success"),
        [format!(
            "webex_broadworks_directory_sync_last_success_timestamp_seconds{{{id}}} 1617235200.0"
        )]
    );
}

#[test]
fn last_success_falls_back_to_the_end_only_for_a_clean_complete_sync() {
    let end = "2021-04-07T15:26:42Z";
    for (status, errors, expected) in [
        ("COMPLETE", "", Some(1617809202.0)),
        ("COMPLETE", r#","errors":[]"#, Some(1617809202.0)),
        ("COMPLETE", r#","errors":[{"errorCode":6011}]"#, None),
        ("FAILED", "", None),
        ("IN_PROGRESS", "", None),
    ] {
        let (items, _) = parse(&format!(
            r#"{{"items":[{{"spEnterpriseId":"e1","broadworksDirectorySync":{{"directorySyncStatus":{{
                "syncStatus":"{status}","lastSyncEndTime":"{end}"{errors}}}}}}}]}}"#
        ));
        assert_eq!(items[0].last_success(), expected, "{status} {errors}");
    }
}

/// One collection through the tracker, as `Broadworks::samples` does it.
fn observe(tracker: &mut SyncTracker, pages: &[&str]) -> String {
    let mut items = Vec::new();
    let mut skipped = Skips::default();
    for page in pages {
        parse_page(
            page.as_bytes(),
            &mut items,
            &mut skipped,
            &mut Objects::new(usize::MAX),
        )
        .expect("page parses");
    }
    let mut set = Enterprises::new(items);
    tracker.observe(&mut set);
    exposition_of(COLLECTOR, "sp1", Arc::new(set))
}

fn sync_page(id: &str, tracking: &str, status: &str, errors: &str, users_added: u32) -> String {
    format!(
        r#"{{"items":[{{"spEnterpriseId":"{id}","broadworksDirectorySync":{{"directorySyncStatus":{{
            "syncStatus":"{status}","lastSyncTrackingId":"{tracking}","usersAdded":{users_added},
            "lastSyncEndTime":"2021-04-07T15:26:42Z","errors":[{errors}]}}}}}}]}}"#
    )
}

fn syncs(text: &str, id: &str) -> Vec<String> {
    samples_starting(text, "webex_broadworks_directory_syncs_total")
        .into_iter()
        .filter(|l| l.contains(&format!(r#"sp_enterprise_id="{id}""#)))
        .map(|l| l.rsplit_once('{').unwrap().1.to_string())
        .collect()
}

#[test]
fn syncs_are_counted_once_per_tracking_id() {
    let mut t = SyncTracker::default();
    let counts = |s: u64, f: u64| {
        vec![
            format!(r#"target="sp1",sp_enterprise_id="e1",result="success"}} {s}"#),
            format!(r#"target="sp1",sp_enterprise_id="e1",result="failed"}} {f}"#),
        ]
    };
    // First sight: the sync that already happened is not counted.
    let text = observe(&mut t, &[&sync_page("e1", "T1", "COMPLETE", "", 5)]);
    assert_eq!(syncs(&text, "e1"), counts(0, 0));
    assert_eq!(
        samples_starting(&text, "webex_broadworks_directory_sync_changes_total"),
        changes_lines(&[])
    );
    // The same sync again: nothing new.
    let text = observe(&mut t, &[&sync_page("e1", "T1", "COMPLETE", "", 5)]);
    assert_eq!(syncs(&text, "e1"), counts(0, 0));
    // A new sync still running is counted once it has finished.
    let text = observe(&mut t, &[&sync_page("e1", "T2", "IN_PROGRESS", "", 1)]);
    assert_eq!(syncs(&text, "e1"), counts(0, 0));
    // The same enterprise on two pages (the list moved while paging) is counted once.
    let page = sync_page("e1", "T2", "COMPLETE", "", 3);
    let text = observe(&mut t, &[&page, &page]);
    assert_eq!(syncs(&text, "e1"), counts(1, 0));
    assert_eq!(
        samples_starting(&text, "webex_broadworks_directory_sync_changes_total"),
        changes_lines(&[("user", "added", 3)])
    );
    // A sync with errors is a failure; its changes count too.
    let text = observe(
        &mut t,
        &[&sync_page(
            "e1",
            "T3",
            "COMPLETE",
            r#"{"errorCode":6011}"#,
            2,
        )],
    );
    assert_eq!(syncs(&text, "e1"), counts(1, 1));
    assert_eq!(
        samples_starting(&text, "webex_broadworks_directory_sync_changes_total"),
        changes_lines(&[("user", "added", 5)])
    );
    let text = observe(&mut t, &[&sync_page("e1", "T4", "FAILED", "", 0)]);
    assert_eq!(syncs(&text, "e1"), counts(1, 2));
    // An enterprise that leaves and comes back starts again at 0, its current sync uncounted.
    observe(&mut t, &[r#"{"items":[]}"#]);
    let text = observe(&mut t, &[&sync_page("e1", "T5", "COMPLETE", "", 9)]);
    assert_eq!(syncs(&text, "e1"), counts(0, 0));
}

#[test]
fn a_sync_ending_after_the_last_success_is_a_failure() {
    let mut t = SyncTracker::default();
    let page = |tracking: &str, success: &str| {
        format!(
            r#"{{"items":[{{"spEnterpriseId":"e1","broadworksDirectorySync":{{"directorySyncStatus":{{
                "syncStatus":"COMPLETE","lastSyncTrackingId":"{tracking}",
                "lastSyncEndTime":"2021-04-07T15:26:42Z","lastSuccessfulSyncTime":"{success}"}}}}}}]}}"#
        )
    };
    observe(&mut t, &[&page("T1", "2021-04-07T15:26:42Z")]);
    let text = observe(&mut t, &[&page("T2", "2021-04-01T00:00:00Z")]);
    assert_eq!(
        syncs(&text, "e1"),
        [
            r#"target="sp1",sp_enterprise_id="e1",result="success"} 0"#,
            r#"target="sp1",sp_enterprise_id="e1",result="failed"} 1"#
        ]
    );
}

#[test]
fn unknown_status_is_passed_through_as_data() {
    let (items, _) = parse(
        r#"{"items":[{"spEnterpriseId":"e1","broadworksDirectorySync":{"enableDirSync":true,
            "directorySyncStatus":{"syncStatus":"PARTIALLY_SYNCED"}}}]}"#,
    );
    let text = exposition(items);
    let status = samples_starting(&text, "webex_broadworks_directory_sync_status");
    assert_eq!(
        status,
        [
            r#"webex_broadworks_directory_sync_status{target="sp1",sp_enterprise_id="e1",status="COMPLETE"} 0.0"#,
            r#"webex_broadworks_directory_sync_status{target="sp1",sp_enterprise_id="e1",status="IN_PROGRESS"} 0.0"#,
            r#"webex_broadworks_directory_sync_status{target="sp1",sp_enterprise_id="e1",status="NOT_SYNCED"} 0.0"#,
            r#"webex_broadworks_directory_sync_status{target="sp1",sp_enterprise_id="e1",status="FAILED"} 0.0"#,
            r#"webex_broadworks_directory_sync_status{target="sp1",sp_enterprise_id="e1",status="PARTIALLY_SYNCED"} 1.0"#,
        ]
    );
}

#[test]
fn bad_timestamps_skip_the_sample_and_are_reported() {
    let (items, skipped) = parse(
        r#"{"items":[{"spEnterpriseId":"e1","broadworksDirectorySync":{"directorySyncStatus":{
            "lastSyncStartTime":"07/04/2021 15:26","lastSyncEndTime":"",
            "lastSuccessfulSyncTime":"2021-04-07T15:26:42.695060Z","syncStatus":"COMPLETE"}}}]}"#,
    );
    assert_eq!(skipped.len(), 1);
    assert!(
        skipped[0].what.contains("lastSyncStartTime"),
        "{:?}",
        skipped[0]
    );
    let text = exposition(items);
    assert!(!text.contains("webex_broadworks_directory_sync_last_start_timestamp_seconds{"));
    assert!(!text.contains("webex_broadworks_directory_sync_last_end_timestamp_seconds{"));
    assert!(text.contains(
        "webex_broadworks_directory_sync_last_success_timestamp_seconds{target=\"sp1\",sp_enterprise_id=\"e1\"} 1617809202.69506\n"
    ));
}

#[test]
fn unreadable_items_are_skipped_and_the_rest_kept() {
    let (items, skipped) = parse(
        r#"{"items":[{"spEnterpriseId":42},{"id":"no-sp-id"},{"spEnterpriseId":"ok",
            "broadworksDirectorySync":{"directorySyncStatus":{"usersAdded":"3","usersUpdated":-1,"usersDeleted":true}}}]}"#,
    );
    // A number where text is expected is read as its digits; negative and non-numeric
    // counts are no sample and are counted.
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    assert_eq!(items.len(), 2);
    assert_eq!(&*items[0].sp_enterprise_id, "42");
    assert_eq!(items[1].count(0), Some(3.0));
    assert_eq!(items[1].count(1), None);
    assert_eq!(items[1].count(2), None);
    assert!(skipped[1].what.contains("usersUpdated"), "{skipped:?}");
}

#[test]
fn one_wrong_typed_field_keeps_the_rest_of_the_enterprise() {
    let (items, skipped) = parse(
        r#"{"items":[{"spEnterpriseId":"e1","id":["x"],"orgId":"o1",
            "broadworksDirectorySync":{"enableDirSync":"yes","directorySyncStatus":{
              "syncStatus":{"x":1},"lastSyncEndTime":"2021-04-07T17:26:42+02:00",
              "usersAdded":"NaN","machinesAdded":2,"errors":"none"}}},
          {"spEnterpriseId":"e2","broadworksDirectorySync":"broken"}]}"#,
    );
    assert_eq!(items.len(), 2);
    let e = &items[0];
    assert_eq!((&*e.id, &*e.org_id), ("", "o1"));
    assert_eq!(e.sync_enabled, Some(true));
    assert_eq!(e.status, None);
    assert_eq!(e.last_end(), Some(1617809202.0));
    assert_eq!(e.count(0), None);
    assert_eq!(e.count(3), Some(2.0));
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(items[1].sync_enabled, None);
}

#[test]
fn a_page_of_only_unreadable_items_is_an_error() {
    let mut skipped = Skips::default();
    let e = parse_page(
        br#"{"items":[0,0,{"id":"no-sp-id"}]}"#,
        &mut Vec::new(),
        &mut skipped,
        &mut Objects::new(usize::MAX),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("none of the 3 items on the page could be read"),
        "{e}"
    );
    // An empty page is not an error: the list is empty.
    parse_page(
        br#"{"items":[]}"#,
        &mut Vec::new(),
        &mut skipped,
        &mut Objects::new(0),
    )
    .unwrap();
}

#[test]
fn a_page_past_the_object_limit_is_an_error() {
    let mut items = Vec::new();
    let mut objects = Objects::new(3);
    let page = br#"{"items":[{"spEnterpriseId":"a"},{"spEnterpriseId":"b"}]}"#;
    parse_page(page, &mut items, &mut Skips::default(), &mut objects).unwrap();
    let e = parse_page(page, &mut items, &mut Skips::default(), &mut objects)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "more than 3 objects in one collection (limits.max_objects)"
    );
}

#[test]
fn pages_that_are_not_an_item_list_are_errors() {
    for body in [
        "",
        "{",
        r#"{"items": "<html>"}"#,
        r#"[1,2]"#,
        r#"{"message":"x"}"#,
    ] {
        let mut items = Vec::new();
        let mut skipped = Skips::default();
        assert!(
            parse_page(
                body.as_bytes(),
                &mut items,
                &mut skipped,
                &mut Objects::new(usize::MAX)
            )
            .is_err(),
            "{body}"
        );
    }
}

#[test]
fn a_repeated_enterprise_is_exposed_once() {
    let (items, _) = parse(
        r#"{"items":[{"spEnterpriseId":"dup","id":"old"},{"spEnterpriseId":"x"},{"spEnterpriseId":"dup","id":"new"}]}"#,
    );
    let set = Enterprises::new(items);
    assert_eq!(set.items.len(), 2);
    assert_eq!(&*set.items[0].id, "new");
}

#[test]
fn label_values_are_escaped() {
    let (items, _) =
        parse(r#"{"items":[{"spEnterpriseId":"Reseller \"Nord\"\\Süd\nZürich 東京"}]}"#);
    let text = exposition(items);
    assert!(
        text.contains(r#"webex_broadworks_enterprises{target="sp1"} 1.0"#)
            && text.contains(
                r#"sp_enterprise_id="Reseller \"Nord\"\\Süd\nZürich 東京",enterprise_id="""#
            ),
        "{text}"
    );
}

#[test]
fn next_links_get_back_the_dropped_parameters() {
    let b = Broadworks::new(
        "https://webexapis.com/v1".parse().unwrap(),
        Arc::new(super::super::WebexAuth::bearer(crate::config::Secret::new(
            "t",
        ))),
        BroadworksConfig {
            starts_with: Some("Reseller1+".into()),
            interval: std::time::Duration::from_secs(60),
            page_size: 500,
        },
    );
    assert_eq!(
        b.first_url().as_str(),
        "https://webexapis.com/v1/broadworks/enterprises?max=500&startsWith=Reseller1%2B"
    );
    let mut next: Url = "https://webexapis.com/v1/broadworks/enterprises?cursor=abc"
        .parse()
        .unwrap();
    b.ensure_params(&mut next);
    assert_eq!(next.as_str(), "https://webexapis.com/v1/broadworks/enterprises?cursor=abc&max=500&startsWith=Reseller1%2B");
    let mut kept: Url = "https://webexapis.com/v1/broadworks/enterprises?max=20&cursor=abc"
        .parse()
        .unwrap();
    b.ensure_params(&mut kept);
    assert_eq!(
        kept.as_str(),
        "https://webexapis.com/v1/broadworks/enterprises?max=20&cursor=abc&startsWith=Reseller1%2B"
    );
}

/// An estate of `n` enterprises shaped like the simulator's, as one page.
fn estate(n: u64) -> String {
    let mix = |a: u64, b: u64| {
        let mut z = a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_add(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let items: Vec<String> = (0..n)
        .map(|i| {
            let (h, t) = (mix(i, 1), 1_748_736_000 + mix(i, 2) % 600);
            let (status, errors) = match i % 20 {
                2 => ("FAILED", r#"{"errorCode":6003,"description":"Failure connecting."}"#),
                12 => ("COMPLETE", r#"{"errorCode":6011,"description":"Duplicate email."}"#),
                _ => ("COMPLETE", ""),
            };
            format!(
                r#"{{"id":"Y2lzY29zcGFyazovL3VzL0VOVEVSUFJJU0Uv{h:016x}","orgId":"Y2lzY29zcGFyazovL3VzL09SR0FOSVpBVElPTi8{:016x}",
                "spEnterpriseId":"Reseller{}+tenant-{i:05}","provisioningId":"ZjViMzYxODctYzhkZC00NzI3LThiMmYt{:016x}",
                "broadworksDirectorySync":{{"enableDirSync":true,"directorySyncStatus":{{
                "lastSyncStartTime":"{}","lastSyncEndTime":"{}","lastSuccessfulSyncTime":"{}",
                "syncStatus":"{status}","usersAdded":{},"usersUpdated":{},"totalExternalUsersInCI":{},
                "totalExternalMachinesInCI":{},"lastSyncTrackingId":"BROADWORKS_SIM_{:08x}_2914","errors":[{errors}]}}}}}}"#,
                mix(i, 3),
                1 + i % 3,
                mix(i, 4),
                humantime::format_rfc3339_micros(std::time::UNIX_EPOCH + std::time::Duration::from_micros(t * 1_000_000 + h % 1_000_000)),
                humantime::format_rfc3339_micros(std::time::UNIX_EPOCH + std::time::Duration::from_micros((t + 30) * 1_000_000 + h % 999_983)),
                humantime::format_rfc3339_micros(std::time::UNIX_EPOCH + std::time::Duration::from_micros((t + 30) * 1_000_000 + h % 999_983)),
                h % 4,
                h % 12,
                20 + h % 500,
                2 + h % 40,
                h as u32,
            )
        })
        .collect();
    format!(r#"{{"items":[{}]}}"#, items.join(","))
}

#[test]
fn cached_gzip_is_within_5_percent_of_level_6() {
    use std::io::Write as _;
    let (items, skipped) = parse(&estate(2_000));
    assert!(skipped.is_empty(), "{skipped:?}");
    let snap = crate::snapshot::Snapshot::encode(vec![crate::snapshot::TargetSamples {
        collector: COLLECTOR,
        target: "sp1".into(),
        samples: Arc::new(Enterprises::new(items)),
    }]);
    let text = snap.text();
    let mut level6 = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
    level6.write_all(text.as_bytes()).unwrap();
    let level6 = level6.finish().unwrap().len();
    let ratio = snap.compressed_len() as f64 / level6 as f64;
    assert!(
        ratio <= 1.05,
        "cached {} bytes, level 6 {level6} bytes: {ratio:.3}",
        snap.compressed_len()
    );
}

/// Page `round` of an estate of `n` enterprises that uses every field in every shape the
/// parser accepts: all statuses, errors with and without codes, missing counts and times,
/// and tracking ids that change between rounds so syncs are counted.
fn varied_page(n: u64, round: u64) -> String {
    let items: Vec<String> = (0..n)
        .map(|i| {
            let id = if i == 0 {
                r#"Reseller1+\"Zürich\" Ost\\Süd"#.to_string()
            } else {
                format!("Reseller{}+tenant-{i:04}", i % 3)
            };
            let status = ["COMPLETE", "IN_PROGRESS", "NOT_SYNCED", "FAILED", "PENDING_RETRY"]
                [(i % 5) as usize];
            let errors = match i % 7 {
                0 => r#","errors":[]"#.to_string(),
                1 => format!(
                    r#","errors":[{{"errorCode":6003,"description":" Failure {i} "}},{{"errorCode":"6011"}},{{"errorCode":6003}}]"#
                ),
                2 => r#","errors":[{"description":"no code"}]"#.to_string(),
                _ => String::new(),
            };
            let tracking = if i % 4 == 0 {
                String::new()
            } else {
                format!(r#","lastSyncTrackingId":"T{i}-{}""#, round / (1 + i % 2))
            };
            let counts: Vec<String> = [
                "usersAdded",
                "usersUpdated",
                "usersDeleted",
                "machinesAdded",
                "machinesUpdated",
                "machinesDeleted",
                "userContactsAdded",
                "userContactsUpdated",
                "userContactsDeleted",
                "orgContactsAdded",
                "orgContactsUpdated",
                "orgContactsDeleted",
                "totalExternalUsersInCI",
                "totalExternalMachinesInCI",
                "totalUserContactsInContactService",
                "totalOrgContactsInContactService",
            ]
            .iter()
            .enumerate()
            .filter(|(k, _)| !(i + *k as u64).is_multiple_of(9))
            .map(|(k, f)| format!(r#","{f}":{}"#, (i * 7 + k as u64 * 3 + round) % 50))
            .collect();
            let end = 1_617_809_200 + i * 60 + round * 600;
            let success = if i % 6 == 0 { end - 3600 } else { end };
            let time = |t: u64| {
                humantime::format_rfc3339_micros(
                    std::time::UNIX_EPOCH + std::time::Duration::from_micros(t * 1_000_000 + i),
                )
            };
            let times = if i % 11 == 5 {
                String::new()
            } else {
                format!(
                    r#","lastSyncStartTime":"{}","lastSyncEndTime":"{}","lastSuccessfulSyncTime":"{}""#,
                    time(end - 30),
                    time(end),
                    time(success)
                )
            };
            format!(
                r#"{{"id":"E{i}","orgId":"O{i}","provisioningId":"P{i}","spEnterpriseId":"{id}",
                "broadworksDirectorySync":{{"enableDirSync":{},"directorySyncStatus":{{
                "syncStatus":"{status}"{tracking}{times}{}{errors}}}}}}}"#,
                i % 3 != 1,
                counts.concat(),
            )
        })
        .collect();
    format!(r#"{{"items":[{}]}}"#, items.join(","))
}

/// The exposition of a varied estate, every family enabled, after two collections: the
/// exact bytes (length and CRC-32 in both formats) recorded before the families became
/// typed, so moving or rewriting a family's encoder cannot change a byte unnoticed.
#[test]
fn varied_estate_gives_the_same_bytes_as_before() {
    let mut tracker = SyncTracker::default();
    let all = FamilySelection::new(OPT_IN.iter().map(|f| (f.to_string(), true)).collect());
    let mut set = None;
    for round in 0..3 {
        let (items, _) = parse(&varied_page(300, round));
        let mut s = Enterprises::new(items);
        tracker.observe(&mut s);
        set = Some(s);
    }
    let set = Selected::new(Arc::new(set.unwrap()), &all);
    let set = Arc::new(set);
    let got = crate::snapshot::fingerprint(vec![crate::snapshot::TargetSamples {
        collector: COLLECTOR,
        target: "sp1".into(),
        samples: set,
    }]);
    assert_eq!(got, [(998_085, 1_712_824_684), (998_109, 3_493_328_334)]);
}

#[test]
fn counts_keep_their_exact_value_however_they_are_stored() {
    let mut e = Enterprise::new("e".into(), "".into(), "".into(), "".into());
    let values = [
        Some(0.0),
        Some(-0.0),
        Some(3.0),
        Some(2.5),
        Some(f64::from(u32::MAX - 2)),
        Some(f64::from(u32::MAX - 1)),
        Some(f64::from(u32::MAX)),
        Some(5e9),
        Some(1e300),
        None,
    ];
    for (k, v) in values.iter().enumerate() {
        e.set_count(k, *v);
    }
    for (k, v) in values.iter().enumerate() {
        assert_eq!(e.count(k).map(f64::to_bits), v.map(f64::to_bits), "{k}");
    }
    // Equal with the same values, absent times included.
    assert_eq!(e, e.clone());
    // A count stored small again after an exact one reads as the small one.
    e.set_count(3, Some(4.0));
    assert_eq!(e.count(3), Some(4.0));
    assert_eq!(e.count(16), None);
}

#[test]
fn fractional_and_huge_counts_are_exposed_unchanged() {
    let (items, skipped) = parse(
        r#"{"items":[{"spEnterpriseId":"e1","broadworksDirectorySync":{"directorySyncStatus":{
            "usersAdded":2.5,"totalExternalUsersInCI":5000000000,"totalExternalMachinesInCI":7}}}]}"#,
    );
    assert!(skipped.is_empty(), "{skipped:?}");
    let text = exposition_all(items);
    let lines: Vec<&str> = samples(&text)
        .into_iter()
        .filter(|l| {
            l.contains(r#"object="user",action="added""#) || l.contains("external_identities{")
        })
        .collect();
    insta::assert_snapshot!(lines.join("\n"), @r#"
    webex_broadworks_directory_sync_changes_total{target="sp1",object="user",action="added"} 0
    webex_broadworks_target_external_identities{target="sp1",object="user"} 5000000000.0
    webex_broadworks_target_external_identities{target="sp1",object="machine"} 7.0
    webex_broadworks_directory_sync_last_changes{target="sp1",sp_enterprise_id="e1",object="user",action="added"} 2.5
    webex_broadworks_external_identities{target="sp1",sp_enterprise_id="e1",object="user"} 5000000000.0
    webex_broadworks_external_identities{target="sp1",sp_enterprise_id="e1",object="machine"} 7.0
    "#);
}

/// 100,000 enterprises per target must fit in about 1 KiB each of RSS (issue 12); the struct
/// is most of it.
#[test]
fn an_enterprise_stays_small() {
    let size = std::mem::size_of::<Enterprise>();
    eprintln!("Enterprise is {size} bytes");
    assert!(size <= 240, "Enterprise is {size} bytes");
}
