use std::sync::Arc;

use super::*;
use crate::sources::commvault::COLLECTOR;
use crate::sources::testing::*;

const SEED: &str = include_str!("../../../../tests/fixtures/commvault-organization-details.json");

fn exposition(listed: usize, items: Vec<Organization>) -> String {
    let set = OrganizationSet::new(listed, items.into_iter().map(Arc::new).collect());
    exposition_of(COLLECTOR, "cs1", Arc::new(set))
}

#[test]
fn vendor_example_gives_exact_exposition() {
    let mut org = parse_organization(16, SEED.as_bytes()).unwrap();
    org.read_at = 1_800_000_000.0;
    let text = exposition(1, vec![org]);
    insta::assert_snapshot!(text, @r#"
    # HELP commvault_organization_info Commvault organization with its description and company (connect) name, value 1. Cached from the Commvault API; refreshed every collection interval.
    # TYPE commvault_organization_info gauge
    commvault_organization_info{target="cs1",organization_id="16",organization="testalias",description="test Company",company="test Company"} 1.0
    # HELP commvault_organizations Organizations listed by the target, or named in the config. Cached from the Commvault API; refreshed every collection interval.
    # TYPE commvault_organizations gauge
    commvault_organizations{target="cs1"} 1.0
    # HELP commvault_organization_enabled Whether the organization is enabled (1) or not (0). Cached from the Commvault API; refreshed every collection interval.
    # TYPE commvault_organization_enabled gauge
    commvault_organization_enabled{target="cs1",organization_id="16",organization="testalias"} 1.0
    # HELP commvault_organization_users Users of the organization. Cached from the Commvault API; refreshed every collection interval.
    # TYPE commvault_organization_users gauge
    commvault_organization_users{target="cs1",organization_id="16",organization="testalias"} 1.0
    # HELP commvault_organization_devices Devices of the organization. Cached from the Commvault API; refreshed every collection interval.
    # TYPE commvault_organization_devices gauge
    commvault_organization_devices{target="cs1",organization_id="16",organization="testalias"} 0.0
    # HELP commvault_organization_physical_devices Physical devices of the organization. Cached from the Commvault API; refreshed every collection interval.
    # TYPE commvault_organization_physical_devices gauge
    commvault_organization_physical_devices{target="cs1",organization_id="16",organization="testalias"} 0.0
    # HELP commvault_organization_servers Servers of the organization. Cached from the Commvault API; refreshed every collection interval.
    # TYPE commvault_organization_servers gauge
    commvault_organization_servers{target="cs1",organization_id="16",organization="testalias"} 0.0
    # HELP commvault_organization_vms Virtual machines of the organization. Cached from the Commvault API; refreshed every collection interval.
    # TYPE commvault_organization_vms gauge
    commvault_organization_vms{target="cs1",organization_id="16",organization="testalias"} 0.0
    # HELP commvault_organization_hypervisors Hypervisors of the organization. Cached from the Commvault API; refreshed every collection interval.
    # TYPE commvault_organization_hypervisors gauge
    commvault_organization_hypervisors{target="cs1",organization_id="16",organization="testalias"} 0.0
    # HELP commvault_organization_machines Machines of the organization, all kinds. Cached from the Commvault API; refreshed every collection interval.
    # TYPE commvault_organization_machines gauge
    commvault_organization_machines{target="cs1",organization_id="16",organization="testalias"} 0.0
    # HELP commvault_organization_misc_machines Machines of the organization of no other kind. Cached from the Commvault API; refreshed every collection interval.
    # TYPE commvault_organization_misc_machines gauge
    commvault_organization_misc_machines{target="cs1",organization_id="16",organization="testalias"} 0.0
    # HELP commvault_organization_created_timestamp_seconds Unix time the organization was created. Cached from the Commvault API; refreshed every collection interval.
    # TYPE commvault_organization_created_timestamp_seconds gauge
    commvault_organization_created_timestamp_seconds{target="cs1",organization_id="16",organization="testalias"} 1507659390.0
    # HELP commvault_organization_last_success_timestamp_seconds Unix time the organization's details were last read successfully. Cached from the Commvault API; refreshed every collection interval.
    # TYPE commvault_organization_last_success_timestamp_seconds gauge
    commvault_organization_last_success_timestamp_seconds{target="cs1",organization_id="16",organization="testalias"} 1800000000.0
    "#);
    // Every family is described once, with a HELP that says the values are cached.
    assert_cached_gauges(&text, &families());
}

#[test]
fn list_gives_ids_names_and_flags() {
    let body = br#"{"providers": [
        {"shortName": {"id": 16, "domainName": "testalias"}, "connectName": "test Company", "enabled": true},
        {"shortName": {"id": "21", "domainName": "globex"}, "enabled": 0},
        {"shortName": {"domainName": "no-id"}},
        {"connectName": "no short name"},
        {"shortName": {"id": 16, "domainName": "repeat"}},
        {"shortName": {"id": 3}, "enabled": "1"},
        7
    ]}"#;
    let (listed, skipped) = parse_list(body).unwrap();
    assert_eq!(
        listed,
        [
            Listed {
                id: 16,
                name: Some("testalias".into()),
                company: Some("test Company".into()),
                enabled: Some(true)
            },
            Listed {
                id: 21,
                name: Some("globex".into()),
                company: None,
                enabled: Some(false)
            },
            Listed {
                id: 3,
                name: None,
                company: None,
                enabled: Some(true)
            },
        ]
    );
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    assert_eq!(skipped[0].what, "providers[2]: no shortName.id");
}

#[test]
fn list_without_organizations_and_broken_lists() {
    // Commvault leaves out empty lists.
    assert_eq!(parse_list(b"{}").unwrap().0, []);
    assert_eq!(parse_list(br#"{"errorCode": 0}"#).unwrap().0, []);
    assert_eq!(parse_list(br#"{"providers": null}"#).unwrap().0, []);
    // Anything else without a list is not "no organizations".
    assert_eq!(
        parse_list(br#"{"items": "<html>502 Bad Gateway</html>"}"#).unwrap_err().to_string(),
        "the answer has no providers list (keys: items); the account may lack the permission to view organizations"
    );
    // cvpysdk strips this key before reading; alone it means no organizations.
    assert_eq!(
        parse_list(br#"{"processinginstructioninfo": {"attributes": [{"name": "WebServer", "value": "cs"}]}}"#)
            .unwrap()
            .0,
        []
    );
    assert_eq!(
        parse_list(br#"{"providers": {"id": 1}}"#)
            .unwrap_err()
            .to_string(),
        "providers is not a list"
    );
    assert_eq!(
        parse_list(br#"{"errorCode": 5, "errorMessage": "Access denied"}"#)
            .unwrap_err()
            .to_string(),
        "errorCode 5: Access denied"
    );
    assert!(parse_list(br#"{"providers": [{"shortName""#)
        .unwrap_err()
        .to_string()
        .starts_with("invalid JSON"));
    assert_eq!(
        parse_list(b"[]").unwrap_err().to_string(),
        "the answer is not a JSON object"
    );
}

#[test]
fn missing_fields_produce_no_samples_rather_than_zeros() {
    let org = parse_organization(
        7,
        br#"{"organizationInfo": {"organization": {"shortName": {"id": 7}}}}"#,
    )
    .unwrap();
    assert_eq!(
        samples(&exposition(1, vec![org])),
        [
            r#"commvault_organization_info{target="cs1",organization_id="7",organization="",description="",company=""} 1.0"#,
            r#"commvault_organizations{target="cs1"} 1.0"#,
        ]
    );
}

#[test]
fn other_spellings_and_value_types() {
    let body = br#"{"organizationInfo": {
        "organization": {"shortName": {"domainName": "acme", "id": 9}, "description": 12, "enabled": false},
        "organizationProperties": {"hypervisorCount": 4, "userCount": "17", "vmCount": null,
                                   "deviceCount": "many", "orgCreationDateTime": 0}
    }}"#;
    let org = parse_organization(9, body).unwrap();
    assert_eq!(
        org,
        Organization {
            id: 9,
            name: "acme".into(),
            // A number where text is expected is kept as its digits.
            description: "12".into(),
            company: "".into(),
            enabled: Some(false),
            counts: [Some(17.0), None, None, None, None, Some(4.0), None, None],
            created: None,
            read_at: 0.0,
        }
    );
    // The API's own spelling wins when both come.
    let both = br#"{"organizationInfo": {"organizationProperties": {"hypervisiorCount": 2, "hypervisorCount": 4}}}"#;
    assert_eq!(parse_organization(1, both).unwrap().counts[5], Some(2.0));
}

#[test]
fn company_name_and_deactivation() {
    let body = br#"{"organizationInfo": {"organization": {"shortName": {"domainName": "acme", "id": 9},
        "connectName": "Acme Corporation", "enabled": true,
        "deactivateOptions": {"disableBackup": true, "disableRestore": false, "disableLogin": false}}}}"#;
    let org = parse_organization(9, body).unwrap();
    assert_eq!(&*org.company, "Acme Corporation");
    assert_eq!(org.enabled, Some(false));
    let active = br#"{"organizationInfo": {"organization": {"enabled": 1,
        "deactivateOptions": {"disableBackup": false, "disableRestore": false, "disableLogin": false}}}}"#;
    assert_eq!(parse_organization(9, active).unwrap().enabled, Some(true));
    let only_deactivated = br#"{"organizationInfo": {"organization": {
        "deactivateOptions": {"disableLogin": true}}}}"#;
    assert_eq!(
        parse_organization(9, only_deactivated).unwrap().enabled,
        Some(false)
    );
}

#[test]
fn error_bodies_and_other_answers_are_errors() {
    assert_eq!(
        parse_organization(5, br#"{"errorCode": 5, "errorMessage": "Access denied"}"#)
            .unwrap_err()
            .to_string(),
        "errorCode 5: Access denied"
    );
    assert_eq!(
        parse_organization(5, b"{}").unwrap_err().to_string(),
        "the answer has no organizationInfo"
    );
    assert!(parse_organization(5, b"{\"organizationInfo\": {")
        .unwrap_err()
        .to_string()
        .starts_with("invalid JSON"));
    for body in [&br#"{"organizationInfo": "x"}"#[..], b"[]"] {
        assert!(parse_organization(5, body)
            .unwrap_err()
            .to_string()
            .starts_with("unexpected answer"));
    }
}

#[test]
fn one_wrong_typed_part_keeps_the_rest_and_bad_counts_are_skipped() {
    let body = br#"{"organizationInfo": {"organization": "x",
        "organizationProperties": {"userCount": 3, "deviceCount": -2, "serverCount": "inf", "vmCount": 1e3}}}"#;
    let mut skipped = Skips::default();
    let org = parse_organization_with(5, body, &mut skipped).unwrap();
    assert_eq!(
        org.counts,
        [Some(3.0), None, None, None, Some(1000.0), None, None, None]
    );
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert_eq!(
        skipped[0].what,
        "organization 5: deviceCount is not a non-negative number"
    );
}

#[test]
fn huge_lists_are_counted_not_kept() {
    let mut body = b"{\"providers\": [".to_vec();
    for _ in 0..100_000 {
        body.extend_from_slice(b"0,");
    }
    body.extend_from_slice(b"{\"shortName\": {\"id\": 1}}], \"errList\": [{}, 1, 2]}");
    let (listed, skipped) = parse_list(&body).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(skipped.len(), 100_000);
    assert!(skipped.iter().count() < 10);
    let e = parse_list_limited(&body, &mut Objects::new(1000))
        .unwrap_err()
        .to_string();
    assert!(e.contains("limits.max_objects"), "{e}");
    let e = parse_list(b"{\"providers\": [0, 0]}")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("none of the 2 providers"), "{e}");
}

const NOW: f64 = 1_800_000_000.0;
const STALE: Duration = Duration::from_secs(600);

fn org(id: u64, users: f64) -> Organization {
    Organization {
        id,
        name: format!("org{id}").into(),
        description: "".into(),
        company: "".into(),
        enabled: Some(true),
        counts: [Some(users), None, None, None, None, None, None, None],
        created: None,
        read_at: NOW,
    }
}

fn listed(id: u64) -> Listed {
    Listed {
        id,
        name: None,
        company: None,
        enabled: None,
    }
}

fn failure() -> Result<Organization, CollectError> {
    Err(CollectError::Payload("errorCode 5: Access denied".into()))
}

#[test]
fn a_failing_organization_keeps_its_last_good_details() {
    let last = LastGood::default();
    let (items, failures) = last.merge(
        vec![
            (listed(1), Ok(org(1, 10.0))),
            (listed(2), Ok(org(2, 20.0))),
            (listed(3), Ok(org(3, 30.0))),
        ],
        NOW,
        STALE,
    );
    assert_eq!(items.len(), 3);
    assert!(failures.is_empty());

    // 2 fails: its last good details stand in; 1 is fresh; 3 is no longer listed.
    let (items, failures) = last.merge(
        vec![
            (listed(2), failure()),
            (listed(1), Ok(org(1, 11.0))),
            (listed(4), failure()),
        ],
        NOW + 60.0,
        STALE,
    );
    let mut got: Vec<(u64, Option<f64>)> = items.iter().map(|o| (o.id, o.counts[0])).collect();
    got.sort_by_key(|(id, _)| *id);
    assert_eq!(got, [(1, Some(11.0)), (2, Some(20.0))]);
    assert_eq!(
        failures,
        [
            "organization 2 (\"org2\"): errorCode 5: Access denied",
            "organization 4: errorCode 5: Access denied",
        ]
    );

    // Kept details keep the time they were read.
    let two = items.iter().find(|o| o.id == 2).unwrap();
    assert_eq!(two.read_at, NOW);

    // 3 was forgotten: when it comes back failing, nothing stands in for it.
    let (items, _) = last.merge(vec![(listed(3), failure())], NOW + 60.0, STALE);
    assert!(items.is_empty());
}

#[test]
fn kept_details_are_dropped_after_stale_after() {
    let last = LastGood::default();
    last.merge(vec![(listed(1), Ok(org(1, 10.0)))], NOW, STALE);
    let (items, failures) = last.merge(vec![(listed(1), failure())], NOW + 599.0, STALE);
    assert_eq!(items.len(), 1);
    assert_eq!(failures.len(), 1);
    let (items, failures) = last.merge(vec![(listed(1), failure())], NOW + 601.0, STALE);
    assert!(items.is_empty(), "stale details still served");
    // Still reported, without its name once forgotten.
    assert_eq!(failures, ["organization 1: errorCode 5: Access denied"]);
}

#[test]
fn many_failures_are_summarized() {
    let failures: Vec<String> = (0..8).map(|i| format!("organization {i}: x")).collect();
    let s = summarize(&failures);
    assert_eq!(s.len(), MAX_PROBLEMS + 1);
    assert_eq!(s[MAX_PROBLEMS], "and 3 more organizations failed");
    assert_eq!(summarize(&failures[..2]), failures[..2]);
}

/// A varied set of organizations, every value present and absent, exactly as encoded before
/// the families became typed (length and CRC-32 of both formats).
#[test]
fn varied_organizations_give_the_same_bytes_as_before() {
    let items: Vec<Arc<Organization>> = (0..200u64)
        .map(|id| {
            let mut counts = [None; 8];
            for (k, c) in counts.iter_mut().enumerate() {
                if !(id + k as u64).is_multiple_of(5) {
                    *c = Some(((id * 13 + k as u64 * 7) % 90) as f64);
                }
            }
            Arc::new(Organization {
                id,
                name: format!("org{id}.example \"q\"").into(),
                description: if id % 3 == 0 {
                    "".into()
                } else {
                    format!("d\\{id}").into()
                },
                company: format!("Company {id}").into(),
                enabled: [Some(true), Some(false), None][(id % 3) as usize],
                counts,
                created: (id % 4 != 0).then_some(1_507_659_390.0 + id as f64 * 0.25),
                read_at: if id % 9 == 0 { 0.0 } else { NOW + id as f64 },
            })
        })
        .collect();
    let got = crate::snapshot::fingerprint(vec![crate::snapshot::TargetSamples {
        collector: COLLECTOR,
        target: "cs1".into(),
        samples: Arc::new(OrganizationSet::new(250, items)),
    }]);
    assert_eq!(got, [(228_830, 1_645_339_599); 2]);
}

/// The source's families, as the exposition describes them.
fn families() -> Vec<crate::snapshot::Family> {
    FAMILIES.iter().map(|f| f.family()).collect()
}
