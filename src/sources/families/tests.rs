use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::config::Config;
use crate::snapshot::Family;
use crate::sources::testing::*;
use crate::sources::webex::broadworks::{parse_page, Enterprises};

/// What is wrong with a family's name, by the Prometheus naming rules this project follows:
/// the source's prefix, base units (seconds, bytes), `_timestamp_seconds` for points in
/// time, `_total` only as a counter's suffix, no suffix a histogram or summary reserves.
fn naming_problems(collector: &str, f: &Family) -> Vec<String> {
    let mut out = Vec::new();
    let n = f.name;
    let prefix = collector.split('_').next().unwrap_or_default();
    if !n.starts_with(&format!("{prefix}_")) {
        out.push(format!("{n}: does not start with {prefix}_"));
    }
    if !n
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        out.push(format!("{n}: not snake_case"));
    }
    for unit in [
        "_milliseconds",
        "_ms",
        "_minutes",
        "_hours",
        "_days",
        "_kilobytes",
        "_megabytes",
        "_percent",
    ] {
        if n.ends_with(unit) || n.contains(&format!("{unit}_")) {
            out.push(format!("{n}: {unit} is not a base unit"));
        }
    }
    let help = f.help.to_ascii_lowercase();
    if (n.contains("timestamp") || help.contains("unix time")) && !n.ends_with("_timestamp_seconds")
    {
        out.push(format!("{n}: a point in time ends in _timestamp_seconds"));
    }
    if n.matches("_total").count() > usize::from(f.is_counter()) {
        out.push(format!("{n}: _total only as a counter's suffix"));
    }
    for reserved in ["_count", "_sum", "_bucket"] {
        if n.ends_with(reserved) {
            out.push(format!(
                "{n}: {reserved} is reserved for histograms and summaries"
            ));
        }
    }
    if n.ends_with("_info") && !help.contains("value 1") {
        out.push(format!("{n}: an _info family says \"value 1\" in its HELP"));
    }
    if !f.help.contains("Cached") {
        out.push(format!("{n}: HELP does not say the values are cached"));
    }
    out
}

#[test]
fn every_family_follows_the_naming_rules() {
    let mut problems = Vec::new();
    let mut seen = Vec::new();
    for (collector, families) in tables() {
        assert!(!families.is_empty(), "{collector}");
        for f in families.iter() {
            problems.extend(naming_problems(collector, &f));
            if seen.contains(&f.name) {
                problems.push(format!("{}: listed twice", f.name));
            }
            seen.push(f.name);
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_naming_rules_can_fail() {
    for (name, help) in [
        ("webex_broadworks_last_sync_timestamp", "Unix time."),
        ("webex_broadworks_sync_duration_ms", "x"),
        ("webex_broadworks_syncs_total_failed", "x"),
        ("webex_broadworks_syncs_count", "x"),
        ("webex_broadworks_thing_info", "Identifiers."),
        ("voss_thing", "x"),
        ("webex_Broadworks", "x"),
    ] {
        let f = Family { name, help };
        assert!(
            !naming_problems("webex_broadworks", &f).is_empty(),
            "{name} passed"
        );
    }
}

#[test]
fn info_families_have_the_value_1_and_counters_are_typed() {
    // Every family of the vendor example, opt-in ones included.
    let body = include_str!("../../../tests/fixtures/webex-list-broadworks-enterprises.json");
    let (mut items, mut skipped) = (Vec::new(), crate::sources::lenient::Skips::default());
    parse_page(
        body.as_bytes(),
        &mut items,
        &mut skipped,
        &mut crate::sources::Objects::new(usize::MAX),
    )
    .unwrap();
    let all = FamilySelection::new(
        broadworks::OPT_IN
            .iter()
            .map(|f| (f.to_string(), true))
            .collect(),
    );
    let set = Selected::new(Arc::new(Enterprises::new(items)), &all);
    let text = exposition_of(broadworks::COLLECTOR, "t", Arc::new(set));
    let families: Vec<Family> = broadworks::Enterprises::default()
        .families()
        .iter()
        .collect();
    assert_cached_families(&text, &families, |_| true);
}

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(text, "t.yml", Path::new("."), &|_| None).map_err(|e| e.to_string())
}

#[test]
fn config_check_rejects_unknown_and_misplaced_family_names_with_their_position() {
    let err = parse(
        "global:\n  metrics:\n    enable: [webex_broadworks_directory_sync_last_change]\n\
         voss:\n  - name: v\n    base_url: https://voss.example\n    username: u\n    password: p\n    hierarchy: sys\n\
         \x20   metrics: {disable: [webex_broadworks_enterprise_info]}\n\
         webex:\n  - name: w\n    access_token: t\n    broadworks_enterprises: {}\n\
         \x20   metrics: {enable: [webex_broadworks_contacts], disable: [webex_broadworks_contacts]}\n",
    )
    .unwrap_err();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines,
        [
            "t.yml:3:14: global.metrics.enable: unknown metric family \"webex_broadworks_directory_sync_last_change\"; the README's Metrics section lists them",
            "t.yml:10:25: metrics.disable: \"webex_broadworks_enterprise_info\" is a family of webex_broadworks, which this target does not run",
            "t.yml:15:24: metrics: \"webex_broadworks_contacts\" is both enabled and disabled",
        ],
        "{err}"
    );
}

#[test]
fn selection_applies_defaults_then_global_then_target() {
    let c = parse(
        "global:\n  metrics:\n    enable: [webex_broadworks_directory_sync_last_changes]\n    disable: [webex_broadworks_enterprise_info]\n\
         webex:\n  - name: a\n    access_token: t\n    broadworks_enterprises: {}\n\
         \x20 - name: b\n    access_token: t\n    broadworks_enterprises: {}\n\
         \x20   metrics: {enable: [webex_broadworks_enterprise_info, webex_broadworks_contacts], disable: [webex_broadworks_directory_sync_last_changes]}\n",
    )
    .unwrap();
    let metrics = |i: usize| match &c.targets[i] {
        crate::config::Target::Webex(w) => &w.metrics,
        other => panic!("not a webex target: {other:?}"),
    };
    let (a, b) = (metrics(0), metrics(1));
    for (family, in_a, in_b) in [
        ("webex_broadworks_directory_sync_status", true, true),
        ("webex_broadworks_enterprise_info", false, true),
        ("webex_broadworks_directory_sync_last_changes", true, false),
        ("webex_broadworks_contacts", false, true),
        ("webex_broadworks_external_identities", false, false),
    ] {
        assert_eq!(
            (a.selects(family), b.selects(family)),
            (in_a, in_b),
            "{family}"
        );
    }
    assert!(FamilySelection::default().selects("voss_spark_customers"));
}

#[test]
fn selected_families_are_present_and_the_others_absent() {
    let body = include_str!("../../../tests/fixtures/webex-list-broadworks-enterprises.json");
    let expose = |selection: &FamilySelection| {
        let (mut items, mut skipped) = (Vec::new(), crate::sources::lenient::Skips::default());
        parse_page(
            body.as_bytes(),
            &mut items,
            &mut skipped,
            &mut crate::sources::Objects::new(usize::MAX),
        )
        .unwrap();
        let set = Selected::new(Arc::new(Enterprises::new(items)), selection);
        exposition_of(broadworks::COLLECTOR, "t", Arc::new(set))
    };
    let has = |text: &str, family: &str| {
        text.contains(&format!("\n{family}{{")) || text.contains(&format!("# TYPE {family} "))
    };
    let defaults = expose(&FamilySelection::default());
    assert!(has(&defaults, "webex_broadworks_enterprise_info"));
    assert!(!has(
        &defaults,
        "webex_broadworks_directory_sync_last_changes"
    ));
    assert!(!has(&defaults, "webex_broadworks_external_identities"));

    let changed = expose(&FamilySelection::new(vec![
        ("webex_broadworks_enterprise_info".into(), false),
        ("webex_broadworks_directory_sync_last_changes".into(), true),
    ]));
    assert!(!has(&changed, "webex_broadworks_enterprise_info"));
    assert!(changed.contains(
        "\nwebex_broadworks_directory_sync_last_changes{target=\"t\",sp_enterprise_id=\"Reseller1+acme\",object=\"user\",action=\"added\"} 0.0\n"
    ));
    assert!(has(&changed, "webex_broadworks_directory_sync_status"));
    assert!(!has(&changed, "webex_broadworks_external_identities"));
}
