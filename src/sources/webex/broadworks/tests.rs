use std::sync::Arc;

use super::*;
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

fn exposition(items: Vec<Enterprise>) -> String {
    exposition_of(COLLECTOR, "sp1", Arc::new(Enterprises::new(items)))
}

#[test]
fn vendor_example_gives_exact_exposition() {
    let (items, skipped) = parse(SEED);
    assert!(skipped.is_empty(), "{skipped:?}");
    let text = exposition(items);
    let id = r#"target="sp1",sp_enterprise_id="Reseller1+acme""#;
    let expected = format!(
        r#"webex_broadworks_enterprise_info{{{id},enterprise_id="Y2lzY29zcGFyazovL3VzL0VOVEVSUFJJU0UvOTZhYmMyYWEtM2RjYy0xMWU1LWExNTItZmUzNDgxOWNkYzlh",org_id="Y2lzY29zcGFyazovL3VzL09SR0FOSVpBVElPTi85NmFiYzJhYS0zZGNjLTExZTUtYTE1Mi1mZTM0ODE5Y2RjOWE",provisioning_id="ZjViMzYxODctYzhkZC00NzI3LThiMmYtZjljNDQ3ZjI5MDQ2OjQyODVmNTk0LTViNTEtNDdiZS05Mzk2LTZjMzZlMmFkODNhNQ"}} 1.0
webex_broadworks_enterprises{{target="sp1"}} 1.0
webex_broadworks_directory_sync_enabled{{{id}}} 1.0
webex_broadworks_directory_sync_status{{{id},status="COMPLETE"}} 1.0
webex_broadworks_directory_sync_status{{{id},status="IN_PROGRESS"}} 0.0
webex_broadworks_directory_sync_status{{{id},status="NOT_SYNCED"}} 0.0
webex_broadworks_directory_sync_status{{{id},status="FAILED"}} 0.0
webex_broadworks_directory_sync_last_start_timestamp_seconds{{{id}}} 1617809200.704911
webex_broadworks_directory_sync_last_end_timestamp_seconds{{{id}}} 1617809202.69506
webex_broadworks_directory_sync_last_changes{{{id},object="user",action="added"}} 0.0
webex_broadworks_directory_sync_last_changes{{{id},object="user",action="updated"}} 0.0
webex_broadworks_directory_sync_last_changes{{{id},object="user",action="deleted"}} 0.0
webex_broadworks_directory_sync_last_changes{{{id},object="machine",action="added"}} 0.0
webex_broadworks_directory_sync_last_changes{{{id},object="machine",action="updated"}} 0.0
webex_broadworks_directory_sync_last_changes{{{id},object="machine",action="deleted"}} 0.0
webex_broadworks_directory_sync_errors{{{id}}} 0.0
webex_broadworks_external_identities{{{id},object="user"}} 2.0
webex_broadworks_external_identities{{{id},object="machine"}} 1.0"#
    );
    assert_eq!(samples(&text).join("\n"), expected);
    // Every family is described once, with a HELP that says the values are cached.
    assert_cached_gauges(&text, &FAMILIES);
}

#[test]
fn missing_fields_produce_no_samples_rather_than_zeros() {
    let (items, skipped) = parse(r#"{"items":[{"spEnterpriseId":"bare"}]}"#);
    assert!(skipped.is_empty());
    let text = exposition(items);
    assert_eq!(
        samples(&text),
        [
            r#"webex_broadworks_enterprise_info{target="sp1",sp_enterprise_id="bare",enterprise_id="",org_id="",provisioning_id=""} 1.0"#,
            r#"webex_broadworks_enterprises{target="sp1"} 1.0"#,
            r#"webex_broadworks_directory_sync_status{target="sp1",sp_enterprise_id="bare",status="COMPLETE"} 0.0"#,
            r#"webex_broadworks_directory_sync_status{target="sp1",sp_enterprise_id="bare",status="IN_PROGRESS"} 0.0"#,
            r#"webex_broadworks_directory_sync_status{target="sp1",sp_enterprise_id="bare",status="NOT_SYNCED"} 0.0"#,
            r#"webex_broadworks_directory_sync_status{target="sp1",sp_enterprise_id="bare",status="FAILED"} 0.0"#,
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
fn errors_list_counts_every_error_and_lists_each_code_once() {
    let (items, _) = parse(
        r#"{"items":[{"spEnterpriseId":"e1","broadworksDirectorySync":{"directorySyncStatus":{
            "syncStatus":"FAILED","lastSuccessfulSyncTime":"2021-04-01T00:00:00Z",
            "errors":[{"errorCode":6003,"description":"Failure connecting"},
                      {"errorCode":6003,"description":"again"},
                      {"errorCode":"6011"},
                      {"description":"no code"}]}}}]}"#,
    );
    let text = exposition(items);
    let lines = samples(&text);
    let id = r#"target="sp1",sp_enterprise_id="e1""#;
    for expected in [
        format!("webex_broadworks_directory_sync_errors{{{id}}} 4.0"),
        format!(r#"webex_broadworks_directory_sync_error_info{{{id},error_code="6003"}} 1.0"#),
        format!(r#"webex_broadworks_directory_sync_error_info{{{id},error_code="6011"}} 1.0"#),
        format!(r#"webex_broadworks_directory_sync_error_info{{{id},error_code="unknown"}} 1.0"#),
        format!(r#"webex_broadworks_directory_sync_status{{{id},status="FAILED"}} 1.0"#),
        format!(
            "webex_broadworks_directory_sync_last_success_timestamp_seconds{{{id}}} 1617235200.0"
        ),
    ] {
        assert!(
            lines.contains(&expected.as_str()),
            "missing {expected}\n{text}"
        );
    }
    assert_eq!(lines.iter().filter(|l| l.contains("error_info")).count(), 3);
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
    assert_eq!(items[1].changes[0], Some(3.0));
    assert_eq!(items[1].changes[1], None);
    assert_eq!(items[1].changes[2], None);
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
    assert_eq!(e.last_end, Some(1617809202.0));
    assert_eq!(e.changes[0], None);
    assert_eq!(e.changes[3], Some(2.0));
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
    .unwrap_err();
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
    let e = parse_page(page, &mut items, &mut Skips::default(), &mut objects).unwrap_err();
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
    let b = Broadworks {
        base_url: "https://webexapis.com/v1".parse().unwrap(),
        auth: Arc::new(super::super::WebexAuth::bearer(crate::config::Secret::new(
            "t",
        ))),
        config: BroadworksConfig {
            starts_with: Some("Reseller1+".into()),
            interval: std::time::Duration::from_secs(60),
            page_size: 500,
        },
    };
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
