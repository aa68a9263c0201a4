use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::config::TlsConfig;
use crate::metrics::SelfMetrics;
use crate::simulator::{self, Fault, RequestKind, Simulator};
use crate::sources::testing::*;
use crate::upstream::Policy;

const SEED: &str = include_str!("../../../../tests/fixtures/voss-relation-sparkcustomer.json");

fn parse(body: &str) -> (Vec<Customer>, Skips, PageInfo) {
    let mut items = Vec::new();
    let mut skipped = Skips::default();
    let info = parse_page(body.as_bytes(), &mut items, &mut skipped, &mut unlimited())
        .expect("page parses");
    (items, skipped, info)
}

fn unlimited() -> Objects {
    Objects::new(usize::MAX)
}

fn exposition(items: Vec<Customer>) -> String {
    let mut skipped = Skips::default();
    let set = SparkCustomerSet::new(items, &mut skipped);
    assert!(skipped.is_empty(), "{skipped:?}");
    encode(set)
}

fn encode(set: SparkCustomerSet) -> String {
    exposition_of(COLLECTOR, "voss1", Arc::new(set))
}

/// Every non-empty `token` and `refresh_token` in a list body.
fn secrets_in(body: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(body).unwrap();
    let mut out = Vec::new();
    for r in v["resources"].as_array().unwrap() {
        for k in ["token", "refresh_token"] {
            if let Some(s) = r["data"][k].as_str().filter(|s| !s.is_empty()) {
                out.push(s.to_string());
            }
        }
    }
    out
}

fn target(base_url: &str, password: &str, page_size: u32) -> VossTarget {
    VossTarget {
        name: "voss1".into(),
        base_url: base_url.parse().unwrap(),
        username: "monitor".into(),
        password: Secret::new(password),
        hierarchy: "sys.hcs.CS-P".into(),
        page_size,
        interval: Duration::from_secs(60),
        tls: TlsConfig::default(),
        metrics: Default::default(),
    }
}

#[test]
fn vendor_example_gives_exact_exposition() {
    let (items, skipped, info) = parse(SEED);
    assert!(skipped.is_empty(), "{skipped:?}");
    assert_eq!(
        info,
        PageInfo {
            received: 2,
            total: Some(2),
            limit: Some(3)
        }
    );
    let debug = format!("{items:?}");
    let text = exposition(items);
    insta::assert_snapshot!(text, @r#"
    # HELP voss_spark_customer_info A SparkCustomer (Webex customer connection) with its identifiers, value 1. Cached from the VOSS Automate API; refreshed every collection interval.
    # TYPE voss_spark_customer_info gauge
    voss_spark_customer_info{target="voss1",hierarchy="sys.hcs.CS-P.CS-AB.AB_Group",customer_name="AB_Group",pkid="65e032dc6fd4534903dff709",account_number="Y2lzY29zcGFyazovL3VzL09SR0FOSVpBVElPTi9mOTYwOWM5MS03MDkxLTQyZmYtYmQ2YS04ZWEzOTQxNWExZmE"} 1.0
    voss_spark_customer_info{target="voss1",hierarchy="sys.hcs.CS-P.CS-NB.AAAGlobal",customer_name="AAAGlobal",pkid="65e0918d6fd4534903e212d9",account_number="Y2lzY29zcGFyazovL3VzL09SR0FOSVpBVElPTi81NjZmZTE4My1hZThhLTQ1OGMtYjNjMi1lZDUzMWU0MjE2Yzk"} 1.0
    # HELP voss_spark_customers SparkCustomers at and below the configured hierarchy. Cached from the VOSS Automate API; refreshed every collection interval.
    # TYPE voss_spark_customers gauge
    voss_spark_customers{target="voss1"} 2.0
    # HELP voss_spark_customer_access_token_expiry_timestamp_seconds Unix time the customer's Webex access token expires. Cached from the VOSS Automate API; refreshed every collection interval.
    # TYPE voss_spark_customer_access_token_expiry_timestamp_seconds gauge
    voss_spark_customer_access_token_expiry_timestamp_seconds{target="voss1",hierarchy="sys.hcs.CS-P.CS-AB.AB_Group",customer_name="AB_Group"} 1710401689.151028
    voss_spark_customer_access_token_expiry_timestamp_seconds{target="voss1",hierarchy="sys.hcs.CS-P.CS-NB.AAAGlobal",customer_name="AAAGlobal"} 1710425971.448016
    # HELP voss_spark_customer_refresh_token_expiry_timestamp_seconds Unix time the customer's Webex refresh token expires. Cached from the VOSS Automate API; refreshed every collection interval.
    # TYPE voss_spark_customer_refresh_token_expiry_timestamp_seconds gauge
    voss_spark_customer_refresh_token_expiry_timestamp_seconds{target="voss1",hierarchy="sys.hcs.CS-P.CS-AB.AB_Group",customer_name="AB_Group"} 1716819155.151115
    voss_spark_customer_refresh_token_expiry_timestamp_seconds{target="voss1",hierarchy="sys.hcs.CS-P.CS-NB.AAAGlobal",customer_name="AAAGlobal"} 1716933624.448084
    # HELP voss_spark_customer_dirsync_enabled Whether directory synchronization is enabled for the customer (1) or not (0). Cached from the VOSS Automate API; refreshed every collection interval.
    # TYPE voss_spark_customer_dirsync_enabled gauge
    "#);
    // Every family is described once, with a HELP that says the values are cached.
    assert_cached_gauges(&text, &families());
    // Keyed by the resource pkid, not data.pkid; no secret is kept or exported.
    assert!(!text.contains("65e0918d6fd4534903e212da"));
    let secrets = secrets_in(SEED);
    assert_eq!(secrets.len(), 2);
    for s in &secrets {
        assert!(!text.contains(s.as_str()) && !debug.contains(s.as_str()));
    }
}

#[test]
fn missing_empty_and_null_expiry_fields_produce_no_samples() {
    let (items, skipped, _) = parse(
        r#"{"pagination":{"total":3},"resources":[
            {"pkid":"p1","data":{"name":"Missing","hierarchy_path":"sys.a"}},
            {"pkid":"p2","data":{"name":"Empty","hierarchy_path":"sys.a","access_token_expires":"",
              "refresh_token_expires":"  ","dirsync_enabled":""}},
            {"pkid":"p3","data":{"name":"Null","hierarchy_path":"sys.a","access_token_expires":null,
              "refresh_token_expires":null,"dirsync_enabled":null}}]}"#,
    );
    assert!(skipped.is_empty(), "{skipped:?}");
    let text = exposition(items);
    assert_eq!(
        samples(&text),
        [
            r#"voss_spark_customer_info{target="voss1",hierarchy="sys.a",customer_name="Empty",pkid="p2",account_number=""} 1.0"#,
            r#"voss_spark_customer_info{target="voss1",hierarchy="sys.a",customer_name="Missing",pkid="p1",account_number=""} 1.0"#,
            r#"voss_spark_customer_info{target="voss1",hierarchy="sys.a",customer_name="Null",pkid="p3",account_number=""} 1.0"#,
            r#"voss_spark_customers{target="voss1"} 3.0"#,
        ]
    );
}

#[test]
fn bad_timestamps_skip_the_sample_and_are_reported() {
    let (items, skipped, _) = parse(
        r#"{"resources":[{"pkid":"p1","data":{"name":"C1","hierarchy_path":"sys.a",
            "access_token_expires":"14/03/2024 14:19",
            "refresh_token_expires":"2024-05-28T22:00:24.448084Z"}},
            {"pkid":"p2","data":{"name":"C2","hierarchy_path":"sys.a",
            "access_token_expires":1710425971,
            "refresh_token_expires":"2024-13-40T99:00:00Z"}}]}"#,
    );
    let what: Vec<&str> = skipped.iter().map(|s| s.what.as_str()).collect();
    assert_eq!(
        what,
        [
            r#"customer "C1" (pkid p1): access_token_expires "14/03/2024 14:19" is not an RFC 3339 timestamp"#,
            r#"customer "C2" (pkid p2): access_token_expires is a number, not a timestamp"#,
            r#"customer "C2" (pkid p2): refresh_token_expires "2024-13-40T99:00:00Z" is not an RFC 3339 timestamp"#,
        ]
    );
    let text = exposition(items);
    let lines = samples(&text);
    assert!(!text.contains("voss_spark_customer_access_token_expiry_timestamp_seconds{"));
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("voss_spark_customer_refresh_token_expiry"))
            .collect::<Vec<_>>(),
        [
            &r#"voss_spark_customer_refresh_token_expiry_timestamp_seconds{target="voss1",hierarchy="sys.a",customer_name="C1"} 1716933624.448084"#
        ]
    );
    assert!(lines.contains(&r#"voss_spark_customers{target="voss1"} 2.0"#));
}

#[test]
fn dirsync_enabled_is_read_leniently() {
    let cases = [
        ("true", Some(true)),
        ("false", Some(false)),
        (r#""true""#, Some(true)),
        (r#""False""#, Some(false)),
        (r#"" yes ""#, Some(true)),
        ("1", Some(true)),
        ("0", Some(false)),
        (r#""""#, None),
        ("null", None),
        (r#""maybe""#, None),
        ("[true]", None),
    ];
    for (raw, expected) in cases {
        let body = format!(
            r#"{{"resources":[{{"pkid":"p","data":{{"name":"C","dirsync_enabled":{raw}}}}}]}}"#
        );
        let (items, skipped, _) = parse(&body);
        assert_eq!(items[0].dirsync_enabled, expected, "{raw}");
        let reported = matches!(raw, r#""maybe""# | "[true]");
        assert_eq!(skipped.len(), usize::from(reported), "{raw}: {skipped:?}");
    }
    let (items, _, _) = parse(
        r#"{"resources":[{"pkid":"p1","data":{"name":"On","hierarchy_path":"h","dirsync_enabled":true}},
            {"pkid":"p2","data":{"name":"Off","hierarchy_path":"h","dirsync_enabled":"false"}}]}"#,
    );
    let text = exposition(items);
    let dirsync = samples_starting(&text, "voss_spark_customer_dirsync_enabled");
    assert_eq!(
        dirsync,
        [
            r#"voss_spark_customer_dirsync_enabled{target="voss1",hierarchy="h",customer_name="Off"} 0.0"#,
            r#"voss_spark_customer_dirsync_enabled{target="voss1",hierarchy="h",customer_name="On"} 1.0"#,
        ]
    );
}

#[test]
fn a_repeated_pkid_is_exposed_once() {
    // Pages that overlap while the list shifts repeat a customer.
    let mut items = Vec::new();
    let mut skipped = Skips::default();
    for page in [
        r#"{"resources":[{"pkid":"p1","data":{"name":"A","hierarchy_path":"h","access_token_expires":"2024-03-14T14:19:31Z"}},
                         {"pkid":"p2","data":{"name":"B","hierarchy_path":"h"}}]}"#,
        r#"{"resources":[{"pkid":"p2","data":{"name":"B","hierarchy_path":"h"}},
                         {"pkid":"p3","data":{"name":"C","hierarchy_path":"h"}}]}"#,
    ] {
        parse_page(page.as_bytes(), &mut items, &mut skipped, &mut unlimited()).unwrap();
    }
    assert_eq!(items.len(), 4);
    let set = SparkCustomerSet::new(items, &mut skipped);
    assert!(skipped.is_empty(), "{skipped:?}");
    let pkids: Vec<&str> = set.customers.iter().map(|c| &*c.pkid).collect();
    assert_eq!(pkids, ["p1", "p2", "p3"]);
    let text = encode(set);
    assert!(text.contains("voss_spark_customers{target=\"voss1\"} 3.0\n"));
}

#[test]
fn customers_with_the_same_hierarchy_and_name_are_exposed_once() {
    let (items, mut skipped, _) = parse(
        r#"{"resources":[
            {"pkid":"b2","data":{"name":"Twin","hierarchy_path":"sys.a","account_number":"second",
              "access_token_expires":"2024-03-14T00:00:00Z"}},
            {"pkid":"a1","data":{"name":"Twin","hierarchy_path":"sys.a","account_number":"first",
              "access_token_expires":"2024-03-15T00:00:00Z"}},
            {"pkid":"c3","data":{"name":"Twin","hierarchy_path":"sys.b"}}]}"#,
    );
    assert!(skipped.is_empty());
    let set = SparkCustomerSet::new(items, &mut skipped);
    assert_eq!(
        skipped.iter().cloned().collect::<Vec<_>>(),
        [Skipped {
            what: r#"customer "Twin" at "sys.a": pkid b2 has the same hierarchy and name as pkid a1, which is exposed instead"#.into()
        }]
    );
    let text = encode(set);
    assert_eq!(
        samples(&text),
        [
            r#"voss_spark_customer_info{target="voss1",hierarchy="sys.a",customer_name="Twin",pkid="a1",account_number="first"} 1.0"#,
            r#"voss_spark_customer_info{target="voss1",hierarchy="sys.b",customer_name="Twin",pkid="c3",account_number=""} 1.0"#,
            r#"voss_spark_customers{target="voss1"} 2.0"#,
            r#"voss_spark_customer_access_token_expiry_timestamp_seconds{target="voss1",hierarchy="sys.a",customer_name="Twin"} 1710460800.0"#,
        ]
    );
}

#[test]
fn unreadable_resources_are_skipped_without_quoting_them() {
    let (items, skipped, info) = parse(
        r#"{"pagination":{"total":"9","limit":null},"resources":[
            42,
            {"data":{"name":"no pkid"}},
            {"pkid":"p1"},
            {"pkid":"p2","data":{"hierarchy_path":"h","token":"SECRET-A"}},
            {"pkid":"p3","data":"SECRET-B"},
            {"pkid":"p4","data":{"name":["SECRET-C"]}},
            {"pkid":7,"data":{"name":"ok","token":"SECRET-D","refresh_token":"SECRET-E"}}]}"#,
    );
    assert_eq!(
        info,
        PageInfo {
            received: 7,
            total: Some(9),
            limit: None
        }
    );
    let what: Vec<&str> = skipped.iter().map(|s| s.what.as_str()).collect();
    assert_eq!(
        what,
        [
            "resources[0]: not a SparkCustomer instance",
            "resources[1]: no pkid",
            "resources[2] (pkid p1): no data",
            "resources[3] (pkid p2): no name",
            "resources[4]: not a SparkCustomer instance",
            "resources[5] (pkid p4): no name",
        ]
    );
    assert_eq!(items.len(), 1);
    assert_eq!(&*items[0].pkid, "7");
    assert!(!format!("{items:?}{skipped:?}").contains("SECRET"));
}

#[test]
fn pages_that_are_not_a_resource_list_are_errors() {
    let truncated = &SEED[..SEED.len() / 2];
    let garbled = simulator::garble(Some(&Fault::Malformed), SEED.to_string());
    for body in [
        "",
        "{",
        truncated,
        garbled.as_str(),
        r#"{"resources": "SECRET-<html>"}"#,
        r#"[1,2]"#,
        r#"{"message":"x"}"#,
        r#"{"pagination": "SECRET-p", "resources": []}"#,
    ] {
        let mut items = Vec::new();
        let mut skipped = Skips::default();
        let err = parse_page(body.as_bytes(), &mut items, &mut skipped, &mut unlimited())
            .expect_err(&body[..body.len().min(40)]);
        assert!(!err.to_string().contains("SECRET"), "{err}");
    }
}

#[test]
fn paging_follows_the_total_and_stops_on_an_empty_page() {
    let page = |received, total, limit| PageInfo {
        received,
        total,
        limit,
    };
    assert_eq!(next_skip(0, page(5, Some(12), Some(5)), 5), Ok(Some(5)));
    assert_eq!(next_skip(5, page(5, Some(12), Some(5)), 5), Ok(Some(10)));
    assert_eq!(next_skip(10, page(2, Some(12), Some(5)), 5), Ok(None));
    // The server capped the page below the configured size: the next page starts after
    // what arrived.
    assert_eq!(next_skip(0, page(3, Some(12), Some(3)), 5), Ok(Some(3)));
    // The list shrank while paging: the latest total counts.
    assert_eq!(next_skip(10, page(1, Some(11), Some(5)), 5), Ok(None));
    assert_eq!(next_skip(0, page(0, Some(0), Some(5)), 5), Ok(None));
    assert_eq!(
        next_skip(5, page(0, Some(12), Some(5)), 5),
        Err("the page at skip 5 is empty although pagination.total is 12".into())
    );
    // Without a total, a short page is the last one.
    assert_eq!(next_skip(0, page(5, None, None), 5), Ok(Some(5)));
    assert_eq!(next_skip(5, page(4, None, None), 5), Ok(None));
    assert_eq!(next_skip(5, page(0, None, Some(5)), 5), Ok(None));
}

#[test]
fn label_values_are_escaped() {
    let (items, _, _) = parse(
        r#"{"resources":[{"pkid":"p","data":{"name":"Zürich \"Nord\"\\AG\nOst","hierarchy_path":"sys.Zürich"}}]}"#,
    );
    let text = exposition(items);
    assert!(
        text.contains(r#"voss_spark_customer_info{target="voss1",hierarchy="sys.Zürich",customer_name="Zürich \"Nord\"\\AG\nOst",pkid="p",account_number=""} 1.0"#),
        "{text}"
    );
}

#[test]
fn requests_carry_paging_and_sensitive_basic_auth() {
    let c = SparkCustomers::new(&target(
        "https://voss.example.com",
        "demo-voss-password",
        500,
    ));
    assert_eq!(
        c.page_url(0).as_str(),
        "https://voss.example.com/api/relation/SparkCustomer/?hierarchy=sys.hcs.CS-P&format=json&skip=0&limit=500"
    );
    let proxied = SparkCustomers::new(&target("https://h.example.com/voss/", "pw", 5));
    assert_eq!(
        proxied.page_url(10).as_str(),
        "https://h.example.com/voss/api/relation/SparkCustomer/?hierarchy=sys.hcs.CS-P&format=json&skip=10&limit=5"
    );
    let req = c.request(c.page_url(0));
    assert_eq!(req.headers[ACCEPT], "application/json");
    let auth = &req.headers[AUTHORIZATION];
    assert!(auth.is_sensitive());
    assert_eq!(auth, "Basic bW9uaXRvcjpkZW1vLXZvc3MtcGFzc3dvcmQ=");
    let debug = format!("{:?}{c:?}", req.headers);
    assert!(!debug.contains("bW9uaXRvcjpkZW1v") && !debug.contains("demo-voss-password"));
}

#[test]
fn rejected_credentials_are_named_without_the_password() {
    let c = SparkCustomers::new(&target("https://voss.example.com", "hunter2-pw", 500));
    let status = |status| UpstreamError::Status {
        method: reqwest::Method::GET,
        url: "https://voss.example.com/api/relation/SparkCustomer/".into(),
        status,
        message: Some("Invalid credentials".into()),
        tracking_id: None,
    };
    let e = c.upstream_error(status(401));
    assert!(matches!(e, CollectError::Credential(_)));
    assert_eq!(
        e.to_string(),
        "target \"voss1\": VOSS rejected the credentials of user \"monitor\" (HTTP 401 from \
         https://voss.example.com/api/relation/SparkCustomer/: Invalid credentials); check \
         username and password"
    );
    let e = c.upstream_error(status(403)).to_string();
    assert!(
        e.contains("VOSS denied user \"monitor\" access") && e.contains("\"sys.hcs.CS-P\""),
        "{e}"
    );
    assert!(matches!(
        c.upstream_error(status(500)),
        CollectError::Upstream(_)
    ));
    for e in [status(401), status(403)] {
        assert!(!c.upstream_error(e).to_string().contains("hunter2"));
    }
}

fn client() -> Client {
    let mut policy = Policy::new(Duration::from_secs(5));
    policy.backoff_base = Duration::from_millis(10);
    policy.backoff_cap = Duration::from_millis(50);
    Client::new(policy, Arc::new(SelfMetrics::new())).unwrap()
}

fn ctx() -> RequestCtx {
    RequestCtx {
        collector: COLLECTOR,
        target: "voss1".into(),
        deadline: Instant::now() + Duration::from_secs(10),
    }
}

#[tokio::test]
async fn collects_every_page_from_the_simulator() {
    let sim = Simulator::start(simulator::Options::default())
        .await
        .unwrap();
    let c = SparkCustomers::new(&target(&sim.voss_base_url(), "demo-voss-password", 5));
    let collected = c.collect(&client(), &ctx()).await.unwrap();
    assert!(collected.problems.is_empty());
    assert_eq!(collected.samples.objects(), 12);
    let skips: Vec<String> = sim
        .requests(RequestKind::VossSparkCustomers)
        .iter()
        .map(|q| {
            q.split('&')
                .find(|p| p.starts_with("skip="))
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(skips, ["skip=0", "skip=5", "skip=10"]);
    let text = exposition_of(COLLECTOR, "voss1", collected.samples);
    for s in sim.voss_secrets() {
        assert!(!text.contains(&s));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let expired = samples_starting(&text, "voss_spark_customer_access_token_expiry")
        .into_iter()
        .filter(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() < now)
        .count();
    assert_eq!(expired, 1, "{text}");
}

#[tokio::test]
async fn wrong_password_and_bad_pages_fail_the_collection() {
    let sim = Simulator::start(simulator::Options::default())
        .await
        .unwrap();
    let bad = SparkCustomers::new(&target(&sim.voss_base_url(), "not-the-password", 5));
    let e = bad.collect(&client(), &ctx()).await.err().unwrap();
    assert!(
        e.to_string()
            .contains("VOSS rejected the credentials of user \"monitor\""),
        "{e}"
    );
    let c = SparkCustomers::new(&target(&sim.voss_base_url(), "demo-voss-password", 5));
    // Pages arrive cut short.
    sim.set_fault(RequestKind::VossSparkCustomers, Fault::Truncated, None);
    let e = c.collect(&client(), &ctx()).await.err().unwrap();
    assert!(e.to_string().contains("invalid SparkCustomer list"), "{e}");
    sim.clear_faults();
    // No customers at all is a success with a count of 0.
    sim.set_voss_customers(0);
    let empty = c.collect(&client(), &ctx()).await.unwrap();
    assert_eq!(empty.samples.objects(), 0);
}

#[test]
fn pages_of_only_unreadable_resources_and_past_the_limit_are_errors() {
    let mut skipped = Skips::default();
    let e = parse_page(
        br#"{"pagination":{"total":3},"resources":[0,{"pkid":"p"},"SECRET"]}"#,
        &mut Vec::new(),
        &mut skipped,
        &mut unlimited(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("none of the 3 resources"), "{e}");
    assert!(!e.contains("SECRET"), "{e}");
    let page =
        br#"{"resources":[{"pkid":"a","data":{"name":"A"}},{"pkid":"b","data":{"name":"B"}}]}"#;
    let mut objects = Objects::new(3);
    let mut items = Vec::new();
    parse_page(page, &mut items, &mut skipped, &mut objects).unwrap();
    let e = parse_page(page, &mut items, &mut skipped, &mut objects)
        .unwrap_err()
        .to_string();
    assert!(e.contains("limits.max_objects"), "{e}");
}

#[test]
fn long_label_values_are_capped() {
    let long = "é".repeat(5000);
    let (items, _, _) = parse(&format!(
        r#"{{"resources":[{{"pkid":"p1","data":{{"name":"{long}","hierarchy_path":"h"}}}}]}}"#
    ));
    let text = exposition(items);
    let line = samples_starting(&text, "voss_spark_customer_info")[0];
    assert!(line.len() < 1200, "{}", line.len());
    assert!(line.contains("éé…\""), "{line}");
    let capped = crate::snapshot::cap_label_value(&long);
    assert!(capped.len() <= crate::snapshot::MAX_LABEL_VALUE_BYTES);
}

#[tokio::test]
async fn bodies_in_flight_share_one_budget() {
    let sim = Simulator::start(simulator::Options::default())
        .await
        .unwrap();
    let c = SparkCustomers::new(&target(&sim.voss_base_url(), "demo-voss-password", 5));
    let len = client()
        .send(&ctx(), c.request(c.page_url(0)))
        .await
        .unwrap()
        .body
        .len();
    // Room for one page, not two.
    let mut policy = Policy::new(Duration::from_millis(500));
    policy.max_body_bytes = len + len / 2;
    policy.max_body_bytes_in_flight = len + len / 2;
    let tight = Client::new(policy, Arc::new(SelfMetrics::new())).unwrap();
    let held = tight.send(&ctx(), c.request(c.page_url(0))).await.unwrap();
    let e = tight
        .send(&ctx(), c.request(c.page_url(0)))
        .await
        .unwrap_err();
    assert!(
        matches!(e, UpstreamError::Budget { .. })
            && e.to_string().contains("limits.max_body_bytes_in_flight"),
        "{e}"
    );
    drop(held);
    tight.send(&ctx(), c.request(c.page_url(0))).await.unwrap();
    // A body over the per-response limit fails its request.
    let mut policy = Policy::new(Duration::from_secs(5));
    policy.max_body_bytes = len / 2;
    let small = Client::new(policy, Arc::new(SelfMetrics::new())).unwrap();
    let e = small
        .send(&ctx(), c.request(c.page_url(0)))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.to_string().contains("limits.max_body_bytes"), "{e}");
}

/// A varied set of customers, every value present and absent, exactly as encoded before
/// the families became typed (length and CRC-32 of both formats).
#[test]
fn varied_customers_give_the_same_bytes_as_before() {
    let items: Vec<Customer> = (0..200u64)
        .map(|i| Customer {
            pkid: format!("65e0{i:020x}").into(),
            hierarchy: format!("sys.hcs.CS-P.CS-{}.C{i}", i % 7).into(),
            name: format!("Customer \"{i}\"").into(),
            account_number: format!("Y2lz{i:08}").into(),
            access_token_expiry: (i % 3 != 0).then_some(1_710_401_689.151028 + i as f64),
            refresh_token_expiry: (i % 4 != 1).then_some(1_716_819_155.5 + i as f64),
            dirsync_enabled: [Some(true), Some(false), None][(i % 3) as usize],
        })
        .collect();
    let mut skipped = Skips::default();
    let set = SparkCustomerSet::new(items, &mut skipped);
    let got = crate::snapshot::fingerprint(vec![crate::snapshot::TargetSamples {
        collector: COLLECTOR,
        target: "voss1".into(),
        samples: Arc::new(set),
    }]);
    assert_eq!(got, [(96_835, 4_136_601_229); 2]);
}

/// The source's families, as the exposition describes them.
fn families() -> Vec<crate::snapshot::Family> {
    FAMILIES.iter().map(|f| f.family()).collect()
}
