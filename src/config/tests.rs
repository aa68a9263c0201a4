use std::path::Path;
use std::time::Duration;

use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, "t.yml", Path::new("/nonexistent-dir"), &no_env)
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
         \x20 - name: partner-us\n    base_url: http://127.0.0.1:8080/v1/\n    access_token: inline-token\n",
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
            stale_after: Duration::from_secs(5400)
        }
    );
    assert_eq!(c.webex.len(), 2);
    let eu = &c.webex[0];
    assert_eq!(eu.base_url.as_str(), DEFAULT_WEBEX_BASE_URL);
    assert_eq!(eu.access_token.expose(), "from-env");
    assert_eq!(
        eu.broadworks,
        Some(BroadworksConfig {
            starts_with: Some("Reseller1+".into()),
            interval: Duration::from_secs(600),
            page_size: 200
        })
    );
    assert_eq!(c.webex[1].broadworks, None);
    assert_eq!(c.webex[1].access_token.expose(), "inline-token");
}

#[test]
fn defaults_and_empty_file() {
    let c = parse("").unwrap();
    assert_eq!(c.global, Global::default());
    assert!(c.webex.is_empty());
    let c = parse("webex:\n  - name: a\n    access_token: t\n    broadworks_enterprises: {}\n")
        .unwrap();
    let b = c.webex[0].broadworks.as_ref().unwrap();
    assert_eq!(
        (b.interval, b.page_size, b.starts_with.as_deref()),
        (Duration::from_secs(300), 1000, None)
    );
    let c = parse(
        "webex:\n  - name: a\n    access_token: t\n    broadworks_enterprises: {enabled: false}\n",
    )
    .unwrap();
    assert_eq!(c.webex[0].broadworks, None);
}

#[test]
fn secret_from_file_is_trimmed_and_relative_to_the_config() {
    let dir = std::env::temp_dir().join(format!(
        "tenant-exporter-config-test-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("token"), "file-token\n").unwrap();
    std::fs::write(dir.join("empty"), "\n").unwrap();
    let c = Config::parse(
        "webex:\n  - name: a\n    access_token_file: token\n",
        "t.yml",
        &dir,
        &no_env,
    )
    .unwrap();
    assert_eq!(c.webex[0].access_token.expose(), "file-token");
    let e = Config::parse(
        "webex:\n  - name: a\n    access_token_file: empty\n",
        "t.yml",
        &dir,
        &no_env,
    )
    .unwrap_err();
    assert!(e.to_string().contains("file is empty"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
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
  - name: a
    access_token_file: missing-token
    broadworks_enterprises: {page_size: 5000}
  - name: b
  - name: c
    access_token: ${NOT_SET}
    access_token_file: x
  - name: d
    access_token: ${UNSET_VAR}
";
    assert_eq!(
        problems(text),
        [
            "t.yml:2:13: global.interval: invalid duration \"5 parsecs\": unknown time unit \"parsecs\", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations)",
            "t.yml:3:12: global.timeout: must be greater than zero",
            "t.yml:6:15: base_url: scheme must be http or https",
            "t.yml:8:11: duplicate target name \"a\": names become the `target` label and must be unique",
            "t.yml:9:24: access_token_file /nonexistent-dir/missing-token: cannot read: No such file or directory (os error 2)",
            "t.yml:10:41: broadworks_enterprises.page_size must be between 1 and 1000",
            "t.yml:11:11: one of access_token or access_token_file is required",
            "t.yml:14:24: access_token and access_token_file are mutually exclusive",
            "t.yml:16:19: access_token: environment variable UNSET_VAR is not set or empty",
        ]
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
        assert_eq!(e.problems.len(), 1, "{e}");
        let p = &e.problems[0];
        if line > 0 {
            assert_eq!(p.line, Some(line), "{text}: {e}");
        }
        assert!(e.to_string().starts_with("t.yml:"), "{e}");
        assert!(p.message.contains(needle), "{text}: {e}");
    }
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
    let c = parse("webex:\n  - name: a\n    access_token: super-secret-value\n").unwrap();
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
