use std::path::Path;
use std::time::Duration;

use super::*;
use crate::sources::commvault::config::CommvaultCredentials;
use crate::sources::webex::config::{
    Admin, BroadworksConfig, ManagedOrgsConfig, OAuthConfig, WebexCredentials,
    DEFAULT_WEBEX_BASE_URL,
};

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, "t.yml", Path::new("/nonexistent-dir"), &no_env)
}

fn webex(c: &Config) -> Vec<&WebexTarget> {
    c.targets
        .iter()
        .filter_map(|t| match t {
            Target::Webex(t) => Some(t),
            _ => None,
        })
        .collect()
}

fn voss(c: &Config) -> Vec<&VossTarget> {
    c.targets
        .iter()
        .filter_map(|t| match t {
            Target::Voss(t) => Some(t),
            _ => None,
        })
        .collect()
}

fn commvault(c: &Config) -> Vec<&CommvaultTarget> {
    c.targets
        .iter()
        .filter_map(|t| match t {
            Target::Commvault(t) => Some(t),
            _ => None,
        })
        .collect()
}

fn token(t: &WebexTarget) -> &str {
    match &t.credentials {
        WebexCredentials::AccessToken(s) => s.expose(),
        WebexCredentials::OAuth(_) => panic!("not a static token"),
    }
}

fn problems(text: &str) -> Vec<String> {
    parse(text)
        .unwrap_err()
        .to_string()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn full_config() {
    let env = |v: &str| (v == "WEBEX_TOKEN").then(|| "from-env\n".to_string());
    let c = Config::parse(
        "global:\n  interval: 2m\n  timeout: 10s\n  stale_after: 1h 30m\n\
         webex:\n  - name: partner-eu\n    access_token: ${WEBEX_TOKEN}\n    broadworks_enterprises: {enabled: true, starts_with: \"Reseller1+\", interval: 10m, page_size: 200}\n\
         \x20 - name: partner-us\n    base_url: http://127.0.0.1:8080/v1/\n    access_token: inline-token\n\
         \x20   managed_orgs: {admins: [{name: alice, person_id: Y2lzY29zcGFyazovL3VzL1BFT1BMRS9h}]}\n",
        "t.yml",
        Path::new("."),
        &env,
    )
    .unwrap();
    assert_eq!(
        c.global,
        Global {
            interval: Duration::from_secs(120),
            timeout: Duration::from_secs(10),
            stale_after: Duration::from_secs(5400),
            limits: Limits::default(),
        }
    );
    assert_eq!(webex(&c).len(), 2);
    let eu = &webex(&c)[0];
    assert_eq!(eu.base_url.as_str(), DEFAULT_WEBEX_BASE_URL);
    assert_eq!(token(eu), "from-env");
    assert_eq!(
        eu.broadworks,
        Some(BroadworksConfig {
            starts_with: Some("Reseller1+".into()),
            interval: Duration::from_secs(600),
            page_size: 200
        })
    );
    assert_eq!(webex(&c)[1].broadworks, None);
    assert_eq!(
        webex(&c)[1].managed_orgs,
        Some(ManagedOrgsConfig {
            admins: vec![Admin {
                name: "alice".into(),
                person_id: "Y2lzY29zcGFyazovL3VzL1BFT1BMRS9h".into()
            }],
            interval: Duration::from_secs(120)
        })
    );
    assert_eq!(token(webex(&c)[1]), "inline-token");
}

#[test]
fn defaults_and_empty_file() {
    let c = parse("").unwrap();
    assert_eq!(c.global, Global::default());
    assert!(webex(&c).is_empty());
    let c = parse("webex:\n  - name: a\n    access_token: t\n    broadworks_enterprises: {}\n")
        .unwrap();
    let b = webex(&c)[0].broadworks.as_ref().unwrap();
    assert_eq!(
        (b.interval, b.page_size, b.starts_with.as_deref()),
        (Duration::from_secs(300), 1000, None)
    );
    let c = parse(
        "webex:\n  - name: a\n    access_token: t\n    broadworks_enterprises: {enabled: false}\n    managed_orgs: {admins: [{name: x, person_id: p}]}\n",
    )
    .unwrap();
    assert_eq!(webex(&c)[0].broadworks, None);
}

#[test]
fn secret_from_file_is_trimmed_and_relative_to_the_config() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("token"), "file-token\n").unwrap();
    std::fs::write(dir.join("empty"), "\n").unwrap();
    let c = Config::parse(
        "webex:\n  - name: a\n    access_token_file: token\n    broadworks_enterprises: {}\n",
        "t.yml",
        dir,
        &no_env,
    )
    .unwrap();
    assert_eq!(token(webex(&c)[0]), "file-token");
    let e = Config::parse(
        "webex:\n  - name: a\n    access_token_file: empty\n",
        "t.yml",
        dir,
        &no_env,
    )
    .unwrap_err();
    assert!(e.to_string().contains("file is empty"), "{e}");
}

#[test]
fn every_semantic_problem_is_reported_with_its_location() {
    let text = "\
global:
  interval: 5 parsecs
  timeout: 0s
webex:
  - name: a
    base_url: ftp://example.com
    access_token: t
    broadworks_enterprises: {}
  - name: a
    access_token_file: missing-token
    broadworks_enterprises: {page_size: 5000}
  - name: b
    broadworks_enterprises: {}
  - name: c
    access_token: ${NOT_SET}
    access_token_file: x
    broadworks_enterprises: {}
  - name: d
    access_token: ${UNSET_VAR}
  - name: e
    oauth: {client_id: id, client_secret: s}
    managed_orgs: {admins: []}
voss:
  - name: v
    base_url: https://voss.example.com
    password: p
    page_size: 0
commvault:
  - name: b
    base_url: https://cs.example.com/commandcenter/api
    username: u
    password_file: nope
    organizations: some
    concurrency: 0
";
    assert_eq!(
        problems(text),
        [
            "t.yml:2:13: global.interval: invalid duration \"5 parsecs\": unknown time unit \"parsecs\", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations)",
            "t.yml:3:12: global.timeout: must be greater than zero",
            "t.yml:6:15: base_url: scheme must be http or https",
            "t.yml:9:11: duplicate target name \"a\": names become the `target` label and must be unique",
            "t.yml:10:24: access_token_file /nonexistent-dir/missing-token: cannot read: No such file or directory (os error 2)",
            "t.yml:11:41: broadworks_enterprises.page_size must be between 1 and 1000",
            "t.yml:12:11: one of access_token or access_token_file is required",
            "t.yml:16:24: access_token and access_token_file are mutually exclusive",
            "t.yml:18:11: nothing to collect: enable broadworks_enterprises or managed_orgs",
            "t.yml:19:19: access_token: environment variable UNSET_VAR is not set or empty",
            "t.yml:21:12: oauth.refresh_token_file is required: the exporter keeps the rotated refresh token there",
            "t.yml:22:19: managed_orgs.admins: list at least one partner admin (name, person_id)",
            "t.yml:24:11: username is required",
            "t.yml:24:11: hierarchy is required",
            "t.yml:27:16: page_size must be between 1 and 2000",
            "t.yml:29:11: duplicate target name \"b\": names become the `target` label and must be unique",
            "t.yml:32:20: password_file /nonexistent-dir/nope: cannot read: No such file or directory (os error 2)",
            "t.yml:33:20: organizations: expected `all` or a list of ids, got \"some\"",
            "t.yml:34:18: concurrency must be between 1 and 64",
        ]
    );
}

#[test]
fn voss_commvault_and_oauth_targets() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("refresh"), "refresh-token\n").unwrap();
    std::fs::write(dir.join("secret"), "client-secret\n").unwrap();
    let text = "\
webex:
  - name: partner
    oauth: {client_id: cid, client_secret_file: secret, refresh_token_file: refresh}
    broadworks_enterprises: {}
voss:
  - name: voss-prod
    base_url: https://voss.example.com
    username: monitor
    password: ${VOSS_PASSWORD}
    hierarchy: sys.hcs.CS-P
    insecure_skip_verify: true
commvault:
  - name: cs
    base_url: https://cs.example.com/commandcenter/api
    username: monitor
    password: pw
    organizations: [16, 17]
    interval: 10m
  - name: cs2
    base_url: https://cs2.example.com/commandcenter/api
    username: monitor
    password: pw
    organizations: all
";
    let env = |v: &str| (v == "VOSS_PASSWORD").then(|| "voss-pw".to_string());
    let c = Config::parse(text, "t.yml", dir, &env).unwrap();
    assert_eq!(
        webex(&c)[0].credentials,
        WebexCredentials::OAuth(OAuthConfig {
            client_id: "cid".into(),
            client_secret: Secret::new("client-secret"),
            refresh_token_file: dir.join("refresh"),
        })
    );
    let v = &voss(&c)[0];
    assert_eq!(
        (
            v.username.as_str(),
            v.password.expose(),
            v.hierarchy.as_str(),
            v.page_size
        ),
        ("monitor", "voss-pw", "sys.hcs.CS-P", 500)
    );
    assert!(v.tls.insecure_skip_verify && v.tls.ca_file.is_none());
    assert_eq!(commvault(&c)[0].organizations, Some(vec![16, 17]));
    assert_eq!(commvault(&c)[0].interval, Duration::from_secs(600));
    assert_eq!(commvault(&c)[0].concurrency, 4);
    assert_eq!(commvault(&c)[1].organizations, None);
}

#[test]
fn ca_file_must_hold_a_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("ca.pem"), "not a certificate\n").unwrap();
    let text = "voss:\n  - {name: v, base_url: 'https://v', username: u, password: p, hierarchy: h, ca_file: ca.pem}\n";
    let e = Config::parse(text, "t.yml", dir, &no_env).unwrap_err();
    assert!(
        e.to_string().contains("ca_file") && e.to_string().contains("no PEM certificate"),
        "{e}"
    );
}

#[test]
fn structural_problems_name_the_place() {
    for (text, line, needle) in [
        ("global:\n  interval: 5m\n  intervall: 5m\n", 3, "intervall"),
        ("webex:\n  - name: a\n    access_token: t\n    broadworks: {}\n", 4, "broadworks"),
        ("webex: {name: a}\n", 1, ""),
        ("global: [\n", 0, ""),
        ("webex:\n  - name: a\n    access_token: t\n    broadworks_enterprises: {page_size: many}\n", 4, ""),
    ] {
        let e = parse(text).unwrap_err();
        // What follows from a structural error (a misspelt collector collects nothing) is
        // reported too.
        let p = e
            .problems
            .iter()
            .find(|p| line == 0 || p.line == Some(line))
            .unwrap_or_else(|| panic!("{text}: {e}"));
        assert!(e.to_string().starts_with("t.yml:"), "{e}");
        assert!(p.message.contains(needle), "{text}: {e}");
    }
}

#[test]
fn absurd_durations_are_rejected() {
    let p = problems("global:\n  interval: 1000 years\n");
    assert_eq!(
        p,
        ["t.yml:2:13: global.interval: must not be longer than 30 days"]
    );
}

#[test]
fn stale_after_must_cover_an_interval() {
    let p = problems("global:\n  interval: 10m\n  stale_after: 5m\n");
    assert_eq!(
        p,
        ["t.yml:3:16: global.stale_after must not be shorter than global.interval"]
    );
}

#[test]
fn secrets_never_reach_debug_output_or_errors() {
    let c = parse("webex:\n  - name: a\n    access_token: super-secret-value\n    broadworks_enterprises: {}\n")
        .unwrap();
    assert!(!format!("{c:?}").contains("super-secret-value"));
    let e = parse(
        "webex:\n  - name: a\n    access_token: super-secret-value\n    access_token_file: f\n",
    )
    .unwrap_err();
    assert!(!e.to_string().contains("super-secret-value"));
    let e = parse(
        "webex:\n  - name: a\n    base_url: https://user:pw-secret@x/v1\n    access_token: t\n",
    )
    .unwrap_err();
    assert!(!e.to_string().contains("pw-secret"), "{e}");
}

#[test]
fn shards_cover_every_target_exactly_once() {
    let mut text = String::from("webex:\n");
    for i in 0..40 {
        text.push_str(&format!(
            "  - {{name: w{i}, access_token: t, broadworks_enterprises: {{}}}}\n"
        ));
    }
    text.push_str("voss:\n");
    for i in 0..40 {
        text.push_str(&format!(
            "  - {{name: v{i}, base_url: 'https://v', username: u, password: p, hierarchy: h}}\n"
        ));
    }
    let all = parse(&text).unwrap();
    let names =
        |c: &Config| -> Vec<String> { c.targets.iter().map(|t| t.name().to_string()).collect() };
    for count in 1..=5u32 {
        let mut seen: Vec<String> = Vec::new();
        for index in 0..count {
            let part = all.clone().sharded(Some(Shard { index, count }));
            seen.extend(names(&part));
        }
        seen.sort();
        let mut expected = names(&all);
        expected.sort();
        assert_eq!(seen, expected, "{count} shards");
    }
    // Three shards of 80 targets are reasonably even.
    for index in 0..3 {
        let n = names(&all.clone().sharded(Some(Shard { index, count: 3 }))).len();
        assert!((15..=45).contains(&n), "shard {index} has {n}");
    }
}

#[test]
fn shard_flag_values() {
    assert_eq!("1/3".parse::<Shard>(), Ok(Shard { index: 1, count: 3 }));
    assert_eq!(
        "tenant-exporter-2/3".parse::<Shard>(),
        Ok(Shard { index: 2, count: 3 })
    );
    for bad in ["3/3", "1/0", "x/2", "1", "-1/2", "a-b/2"] {
        assert!(bad.parse::<Shard>().is_err(), "{bad}");
    }
}

#[test]
fn commvault_device_id_and_access_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("cv-refresh"), "refresh-1\n").unwrap();
    let text = "\
commvault:
  - name: cs
    base_url: https://cs.example.com/commandcenter/api
    username: monitor
    password: pw
  - name: cloud
    base_url: https://m1.metallic.io/commandcenter/api
    access_token: at-1
    refresh_token_file: cv-refresh
    device_id: noc-exporter-1
";
    let c = Config::parse(text, "t.yml", dir, &no_env).unwrap();
    // A stable default: the same for every start of the same target.
    assert_eq!(
        commvault(&c)[0].device_id,
        "tenant-exporter-cs-cs.example.com"
    );
    assert_eq!(
        commvault(&c)[0].credentials,
        CommvaultCredentials::Password {
            username: "monitor".into(),
            password: Secret::new("pw")
        }
    );
    assert_eq!(commvault(&c)[1].device_id, "noc-exporter-1");
    assert_eq!(
        commvault(&c)[1].credentials,
        CommvaultCredentials::AccessToken {
            access_token: Secret::new("at-1"),
            refresh_token_file: Some(dir.join("cv-refresh")),
        }
    );

    let text = "\
commvault:
  - name: both
    base_url: https://cs.example.com/commandcenter/api
    username: monitor
    password: pw
    access_token: at
  - name: refresh-only
    base_url: https://cs.example.com/commandcenter/api
    username: monitor
    password: pw
    refresh_token_file: r
  - name: ids
    base_url: https://cs.example.com/commandcenter/api
    username: monitor
    password: pw
    organizations: [12, acme]
  - name: nothing
    base_url: https://cs.example.com/commandcenter/api
";
    let p = problems(text);
    // A structural error in one target does not hide the others' problems.
    assert_eq!(p.len(), 4, "{p:?}");
    assert_eq!(
        p[2],
        "t.yml:16:20: organizations: item 2 is \"acme\", not an organization id (a whole number such as 12)"
    );
    assert!(!p[2].contains("untagged"), "{p:?}");
    let text = text.replace("[12, acme]", "[12]");
    assert_eq!(
        problems(&text),
        [
            "t.yml:2:11: password(_file) and access_token(_file) are mutually exclusive: use one way to log in",
            "t.yml:11:25: refresh_token_file needs access_token or access_token_file",
            "t.yml:17:11: one of password, password_file (with username), access_token or access_token_file is required",
        ]
    );
}

fn diagnostics(text: &str) -> String {
    Config::parse_checked(text, "t.yml", Path::new("/nonexistent-dir"), &no_env)
        .1
        .to_string()
}

#[test]
fn every_structural_problem_is_reported_with_the_semantic_ones() {
    let text = "\
global:
  intervall: 5m
  timeout: 10 fortnights
voss:
  - name: v
    base_url: https://voss.example.com
    username: u
    pasword_file: secret
    hierarchy: sys.hcs
    page_size: lots
    insecure_skip_verify: maybe
  - name: [1, 2]
    base_url: https://voss2.example.com
commvault:
  - name: c
    base_url: cv.example.com
    username: u
    password: p
    organizations: {a: 1}
webex:
  - name: w
    access_token: t
    managed_orgs: {admins: [{name: a, person_id: p, extra: {deep: [1, 2]}}]}
";
    insta::assert_snapshot!(diagnostics(text), @r#"
    t.yml:2:3: unknown key `intervall` in global; did you mean `interval`?
    t.yml:3:12: global.timeout: invalid duration "10 fortnights": unknown time unit "fortnights", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations)
    t.yml:5:11: one of password or password_file is required
    t.yml:8:5: unknown key `pasword_file` in voss[0]; did you mean `password_file`?
    t.yml:10:16: page_size: expected a whole number
    t.yml:11:27: insecure_skip_verify: expected true or false
    t.yml:12:11: name: expected a single value, not a list or a mapping
    t.yml:16:15: base_url: not an absolute URL; write the scheme and host, e.g. https://host.example.com:8443/path
    t.yml:19:20: organizations: expected `all` or a list of organization ids such as [12, 34]
    t.yml:23:53: unknown key `extra` in managed_orgs.admins[0]; expected one of name, person_id
    "#);
}

#[test]
fn the_issue_example_gives_three_lines() {
    let text = "\
voss:
  - name: v
    base_url: https://voss.example.com
    usernme: u
    username: u
    password_file: /nonexistent/voss-password
    hierarchy: sys.hcs
    interval: 5 mins please
";
    insta::assert_snapshot!(diagnostics(text), @r#"
    t.yml:4:5: unknown key `usernme` in voss[0]; did you mean `username`?
    t.yml:6:20: password_file /nonexistent/voss-password: cannot read: No such file or directory (os error 2)
    t.yml:8:15: interval: invalid duration "5 mins please": expected number at 7
    "#);
}

#[test]
fn warnings_do_not_make_a_config_invalid() {
    let text = "\
global: {interval: 30s, timeout: 30s}
voss:
  - name: v
    base_url: http://voss.example.com/api/
    username: u
    password: p
    hierarchy: sys.hcs
    interval: 10s
commvault:
  - name: c
    base_url: https://cv.example.com/commandcenter/api/Organization
    username: u
    password: p
webex:
  - name: w
    base_url: http://127.0.0.1:1/v1
    access_token: t
    broadworks_enterprises: {interval: 20s}
";
    let (config, d) = Config::parse_checked(text, "t.yml", Path::new("/x"), &no_env);
    assert!(config.is_some(), "{d}");
    insta::assert_snapshot!(d.to_string(), @r"
    t.yml:1:34: warning: global.interval (30s) is not longer than global.timeout (30s): a slow request can outlast the poll
    t.yml:4:15: warning: base_url uses http://: credentials would cross the network unencrypted; use https://
    t.yml:4:15: warning: base_url path /api/ already contains /api, which the collector appends itself; drop it from base_url
    t.yml:8:15: warning: interval (10s) is not longer than global.timeout (30s): a slow request can outlast the poll
    t.yml:11:15: warning: base_url path /commandcenter/api/Organization already contains /Organization, which the collector appends itself; drop it from base_url
    t.yml:18:40: warning: broadworks_enterprises.interval (20s) is not longer than global.timeout (30s): a slow request can outlast the poll
    ");
    let (config, d) = Config::parse_checked("", "t.yml", Path::new("/x"), &no_env);
    assert!(config.is_some());
    insta::assert_snapshot!(d.to_string(), @"t.yml: warning: no webex, voss or commvault targets: the exporter will collect nothing");
}

#[test]
fn proxy_urls_are_checked_and_never_shown() {
    let c = parse(
        "voss:\n  - {name: v, base_url: 'https://v', username: u, password: p, hierarchy: h, proxy_url: 'http://user:hunter2@proxy:3128'}\n\
         webex:\n  - {name: w, access_token: t, proxy_url: 'socks5h://10.0.0.1:1080', broadworks_enterprises: {}}\n",
    )
    .unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("ProxyUrl(http://proxy:3128)"), "{debug}");
    assert_eq!(
        webex(&c)[0].tls.proxy_url.as_ref().unwrap().url().scheme(),
        "socks5h"
    );
    let p = problems(
        "voss:\n  - {name: v, base_url: 'https://v', username: u, password: p, hierarchy: h, proxy_url: 'ftp://user:hunter2@proxy'}\n\
         commvault:\n  - {name: c, base_url: 'https://c', username: u, password: p, proxy_url: '10.0.0.1:3128'}\n",
    );
    assert_eq!(
        p,
        [
            "t.yml:2:89: proxy_url: scheme must be http, https, socks5 or socks5h, e.g. http://proxy.example.com:3128",
            "t.yml:4:75: proxy_url: not a URL; expected e.g. http://proxy.example.com:3128 or socks5://10.0.0.1:1080",
        ]
    );
}

#[test]
fn limits_are_read_and_checked() {
    let parse = |text: &str| Config::parse(text, "t.yml", Path::new("."), &|_| None);
    let c = parse(
        "global:\n  limits: {max_body_bytes: 8MiB, max_body_bytes_in_flight: 33554432, max_pages: 50, max_objects: 1000}\n",
    )
    .unwrap();
    assert_eq!(
        c.global.limits,
        Limits {
            max_body_bytes: 8 << 20,
            max_body_bytes_in_flight: 32 << 20,
            max_pages: 50,
            max_objects: 1000,
        }
    );
    assert_eq!(
        parse("global: {}\n").unwrap().global.limits,
        Limits::default()
    );
    let e = parse(
        "global:\n  limits: {max_body_bytes: 64MiB, max_body_bytes_in_flight: 32MiB, max_pages: 10}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("max_body_bytes_in_flight must not be smaller than max_body_bytes"),
        "{e}"
    );
    let e = parse("global:\n  limits: {max_pages: 0}\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("global.limits.max_pages must be between 1"),
        "{e}"
    );
    let e = parse("global:\n  limits: {max_body_bytes: 2TB}\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("expected bytes"), "{e}");
    let e = parse("global:\n  limits: {max_body_bytes: 100}\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("between 1KiB and 1GiB"), "{e}");
    assert!(parse("global:\n  limits: {max_bodies: 1}\n").is_err());
}

#[test]
fn duplicate_keys_and_odd_documents_are_explained() {
    let p = problems("global:\n  interval: 5m\n  interval: 6m\nglobl: {}\n");
    assert_eq!(
        p,
        [
            "t.yml:3:3: `interval` is given twice here; keep one",
            "t.yml:4:1: unknown key `globl` at the top level; did you mean `global`?",
        ]
    );
    assert_eq!(
        problems("just a scalar\n"),
        ["t.yml:1:1: the config must be a mapping of sections: global, webex, voss, commvault"]
    );
    assert_eq!(
        problems("global: {}\n---\nvoss: []\n"),
        ["t.yml:3:1: the config is one YAML document: remove the second `---` and what follows, or merge it"]
    );
}
