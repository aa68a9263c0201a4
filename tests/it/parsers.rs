//! Property tests of every parser that reads upstream or operator input: on arbitrary bytes,
//! and on JSON shaped like the vendor's with arbitrary values, none panics, and the memory a
//! parse allocates is bounded by a small multiple of its input.
//!
//! Allocation is measured per thread by a counting allocator, so parallel tests do not
//! disturb each other.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashSet;
use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde_json::{json, Map, Value};

use tenant_exporter::config::Config;
use tenant_exporter::sources::commvault::{auth, organizations};
use tenant_exporter::sources::lenient::Skips;
use tenant_exporter::sources::voss::spark_customers;
use tenant_exporter::sources::webex::{broadworks, managed_orgs};
use tenant_exporter::sources::{parse_timestamp, Objects};
use tenant_exporter::upstream::parse_next_link;

struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn note_alloc(size: usize) {
    let _ = LIVE.try_with(|l| {
        let now = l.get() + size;
        l.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

fn note_free(size: usize) {
    let _ = LIVE.try_with(|l| l.set(l.get().saturating_sub(size)));
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counters only
// observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_free(layout.size());
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_alloc(new_size);
        note_free(layout.size());
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns the most memory it held at once beyond what was live before.
fn peak_during(f: impl FnOnce()) -> usize {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    f();
    PEAK.with(Cell::get) - base
}

/// What a parse of `input` bytes may hold: every object it keeps is built from at least a
/// few bytes of input, so a generous constant factor plus a fixed allowance for the parser.
fn bound(input: usize) -> usize {
    64 * input + (256 << 10)
}

fn check_bounded(what: &str, input: &[u8], f: impl FnOnce()) -> Result<(), TestCaseError> {
    let peak = peak_during(f);
    prop_assert!(
        peak <= bound(input.len()),
        "{what}: {peak} bytes allocated for {} bytes of input",
        input.len()
    );
    Ok(())
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..24).prop_map(String::from_iter)
}

/// Any JSON value, a few levels deep.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        text().prop_map(Value::from),
        Just(json!("2021-04-07T15:26:40.704911Z")),
        Just(json!("2021-04-07T17:26:40+02:00")),
        Just(json!(-1)),
        Just(json!("NaN")),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((text(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// An object with the given keys, each present or not, with arbitrary values.
fn object_with(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    prop::collection::vec(prop::option::of(value()), keys.len()).prop_map(move |vals| {
        let mut m = Map::new();
        for (k, v) in keys.iter().zip(vals) {
            if let Some(v) = v {
                m.insert((*k).to_string(), v);
            }
        }
        Value::Object(m)
    })
}

fn enterprise() -> impl Strategy<Value = Value> {
    (
        object_with(&["id", "orgId", "provisioningId", "spEnterpriseId"]),
        object_with(&[
            "lastSyncStartTime",
            "lastSyncEndTime",
            "lastSuccessfulSyncTime",
            "syncStatus",
            "usersAdded",
            "machinesDeleted",
            "totalExternalUsersInCI",
            "totalOrgContactsInContactService",
            "errors",
            "lastSyncTrackingId",
        ]),
        prop::option::of(value()),
    )
        .prop_map(|(mut e, status, enable)| {
            let mut sync = Map::new();
            sync.insert("directorySyncStatus".into(), status);
            if let Some(v) = enable {
                sync.insert("enableDirSync".into(), v);
            }
            e.as_object_mut()
                .unwrap()
                .insert("broadworksDirectorySync".into(), Value::Object(sync));
            e
        })
}

fn customer() -> impl Strategy<Value = Value> {
    (
        prop::option::of(value()),
        object_with(&[
            "name",
            "hierarchy_path",
            "account_number",
            "access_token_expires",
            "refresh_token_expires",
            "dirsync_enabled",
            "token",
        ]),
    )
        .prop_map(|(pkid, data)| {
            let mut m = Map::new();
            if let Some(p) = pkid {
                m.insert("pkid".into(), p);
            }
            m.insert("data".into(), data);
            Value::Object(m)
        })
}

fn provider() -> impl Strategy<Value = Value> {
    (
        object_with(&["id", "domainName"]),
        prop::option::of(value()),
    )
        .prop_map(|(short, en)| {
            let mut m = Map::new();
            m.insert("shortName".into(), short);
            if let Some(v) = en {
                m.insert("enabled".into(), v);
            }
            Value::Object(m)
        })
}

/// A page: the list under `key`, made of `item`s mixed with any values, plus arbitrary
/// siblings; then sometimes cut short.
fn page(
    key: &'static str,
    item: impl Strategy<Value = Value> + 'static,
) -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(prop_oneof![3 => item, 1 => value()], 0..12),
        object_with(&["pagination", "errorCode", "errList", "message"]),
        prop::option::of(any::<prop::sample::Index>()),
    )
        .prop_map(move |(items, mut page, cut)| {
            page.as_object_mut()
                .unwrap()
                .insert(key.to_string(), Value::Array(items));
            let mut bytes = serde_json::to_vec(&page).unwrap();
            if let Some(i) = cut {
                bytes.truncate(i.index(bytes.len() + 1));
            }
            bytes
        })
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..2048)
}

fn broadworks_page(body: &[u8]) {
    let _ = broadworks::parse_page(
        body,
        &mut Vec::new(),
        &mut Skips::default(),
        &mut Objects::new(usize::MAX),
    );
}

fn voss_page(body: &[u8]) {
    let _ = spark_customers::parse_page(
        body,
        &mut Vec::new(),
        &mut Skips::default(),
        &mut Objects::new(usize::MAX),
    );
}

fn managed_orgs_page(body: &[u8]) {
    let _ = managed_orgs::parse_page(body, &mut Vec::new(), &mut HashSet::new());
}

fn commvault_list(body: &[u8]) {
    let _ = organizations::parse_list(body);
}

fn commvault_details(body: &[u8]) {
    let _ = organizations::parse_organization(1, body);
}

fn commvault_token(body: &[u8]) {
    let _ = auth::parse_login(body);
    let _ = auth::parse_renewal(body);
    let _ = auth::parse_access_renewal(body);
}

fn link_header(body: &[u8]) {
    let _ = parse_next_link(&String::from_utf8_lossy(body));
}

fn timestamp(body: &[u8]) {
    let _ = parse_timestamp(&String::from_utf8_lossy(body));
}

fn config(body: &[u8]) {
    let _ = Config::parse(
        &String::from_utf8_lossy(body),
        "fuzz.yml",
        Path::new("/nonexistent"),
        &|_| Some("x".into()),
    );
}

type Parser = fn(&[u8]);

const ALL: [(&str, Parser); 9] = [
    ("broadworks page", broadworks_page),
    ("VOSS page", voss_page),
    ("managed orgs page", managed_orgs_page),
    ("Commvault list", commvault_list),
    ("Commvault details", commvault_details),
    ("Commvault token", commvault_token),
    ("Link header", link_header),
    ("timestamp", timestamp),
    ("config", config),
];

/// 128 cases a test; failures found are stored beside this file, in
/// `parsers.proptest-regressions`, and replayed first on every run. (proptest's default would
/// look in `tests/proptest-regressions/parsers.txt`, a sibling of `main.rs`'s directory.)
fn runner_config() -> ProptestConfig {
    ProptestConfig {
        cases: 128,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(runner_config())]

    #[test]
    fn arbitrary_bytes_never_panic_and_allocate_in_proportion(body in bytes()) {
        for (what, parse) in ALL {
            check_bounded(what, &body, || parse(&body))?;
        }
    }

    #[test]
    fn broadworks_pages(body in page("items", enterprise())) {
        check_bounded("broadworks page", &body, || broadworks_page(&body))?;
    }

    #[test]
    fn managed_org_pages(body in page("items", object_with(&["orgId", "role"]))) {
        check_bounded("managed orgs page", &body, || managed_orgs_page(&body))?;
    }

    #[test]
    fn voss_pages(body in page("resources", customer())) {
        check_bounded("VOSS page", &body, || voss_page(&body))?;
    }

    #[test]
    fn commvault_lists(body in page("providers", provider())) {
        check_bounded("Commvault list", &body, || commvault_list(&body))?;
    }

    #[test]
    fn commvault_details_and_tokens(
        org in object_with(&["organization", "organizationProperties"]),
        status in object_with(&["errorCode", "errorMessage", "errList", "token"]),
        props in object_with(&["userCount", "hypervisiorCount", "orgCreationDateTime"]),
    ) {
        let mut body = status;
        let mut info = org;
        info.as_object_mut().unwrap().insert("organizationProperties".into(), props);
        body.as_object_mut().unwrap().insert("organizationInfo".into(), info);
        let body = serde_json::to_vec(&body).unwrap();
        check_bounded("Commvault details", &body, || commvault_details(&body))?;
        check_bounded("Commvault token", &body, || commvault_token(&body))?;
    }

    #[test]
    fn link_headers(parts in prop::collection::vec(
        prop_oneof![
            Just("<".to_string()), Just(">".to_string()), Just(";".to_string()),
            Just(",".to_string()), Just("rel=".to_string()), Just("\"next\"".to_string()),
            Just("next".to_string()), Just(" ".to_string()), text(),
        ], 0..24)) {
        let v = parts.concat();
        check_bounded("Link header", v.as_bytes(), || link_header(v.as_bytes()))?;
        if let Some(uri) = parse_next_link(&v) {
            prop_assert!(v.contains(&uri));
        }
    }

    #[test]
    fn timestamps(y in 0u32..10_000, mo in 0u32..14, d in 0u32..33, h in 0u32..25,
                  mi in 0u32..61, s in 0u32..62, frac in prop::option::of(0u64..1_000_000_000_000),
                  off in prop::option::of((any::<bool>(), 0u32..25, 0u32..61))) {
        let mut t = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}");
        if let Some(f) = frac { t.push_str(&format!(".{f}")); }
        match off {
            None => t.push('Z'),
            Some((neg, oh, om)) => t.push_str(&format!("{}{oh:02}:{om:02}", if neg { '-' } else { '+' })),
        }
        if let Some(v) = parse_timestamp(&t) {
            prop_assert!(v.is_finite() && v >= 0.0, "{t} -> {v}");
        }
    }

    #[test]
    fn config_files(lines in prop::collection::vec(prop_oneof![
        Just("global:".to_string()),
        Just("  interval: 99999999999999d".to_string()),
        Just("  limits: {max_body_bytes: 18446744073709551615}".to_string()),
        Just("  limits: {max_pages: -1}".to_string()),
        Just("webex:".to_string()),
        Just("  - name: a".to_string()),
        Just("    access_token: ${X}".to_string()),
        Just("    broadworks_enterprises: {page_size: 4294967295}".to_string()),
        Just("voss:".to_string()),
        Just("  - &a [*a]".to_string()),
        Just("commvault: [{name: c, base_url: 'http://[::1', concurrency: 0}]".to_string()),
        text(),
    ], 0..12)) {
        let text = lines.join("\n");
        check_bounded("config", text.as_bytes(), || config(text.as_bytes()))?;
    }
}

/// A large answer whose bulk is something no parser keeps: each parser must skip it rather
/// than build it into a tree (a `serde_json::Value` of it would take ten times its size).
#[test]
fn large_answers_are_skipped_not_built() {
    let mut junk = b"[".to_vec();
    while junk.len() < 2 << 20 {
        junk.extend_from_slice(b"{},");
    }
    junk.extend_from_slice(b"{}]");
    let junk = String::from_utf8(junk).unwrap();
    let bodies = [
        (
            "broadworks page",
            format!(r#"{{"junk":{junk},"items":[{{"spEnterpriseId":"a"}}]}}"#),
        ),
        (
            "VOSS page",
            format!(r#"{{"junk":{junk},"resources":[{{"pkid":"p","data":{{"name":"n"}}}}]}}"#),
        ),
        (
            "Commvault list",
            format!(r#"{{"junk":{junk},"providers":[{{"shortName":{{"id":1}}}}]}}"#),
        ),
        (
            "Commvault details",
            format!(r#"{{"junk":{junk},"organizationInfo":{{}}}}"#),
        ),
        (
            "Commvault token",
            format!(r#"{{"junk":{junk},"token":"QSDK x"}}"#),
        ),
        ("Commvault error list", format!(r#"{{"errList":{junk}}}"#)),
    ];
    for (what, body) in bodies {
        let parsers: &[Parser] = match what {
            "broadworks page" => &[broadworks_page],
            "VOSS page" => &[voss_page],
            "Commvault list" => &[commvault_list],
            "Commvault details" => &[commvault_details],
            _ => &[commvault_token, commvault_list, commvault_details],
        };
        for parse in parsers {
            let peak = peak_during(|| parse(body.as_bytes()));
            assert!(
                peak < body.len() / 4,
                "{what}: {peak} bytes allocated for {} bytes of input",
                body.len()
            );
        }
    }
}
