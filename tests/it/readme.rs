//! The README's examples are checked against the code, so the documentation cannot drift.

use std::path::Path;

use tenant_exporter::config::Config;

const README: &str = include_str!("../../README.md");

/// The fenced blocks of `lang` in the section under `heading`.
fn blocks(heading: &str, lang: &str) -> Vec<String> {
    let start = README
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading:?} in README"));
    let section = &README[start + heading.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let fence = format!("```{lang}\n");
    section
        .split(fence.as_str())
        .skip(1)
        .filter_map(|b| b.split_once("```").map(|(body, _)| body.to_string()))
        .collect()
}

#[test]
fn readme_opens_with_the_demo_and_test_commands() {
    let first = blocks("# tenant-exporter", "sh");
    let commands: Vec<&str> = first[0]
        .lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .collect();
    assert_eq!(
        commands,
        ["cargo run --release -- --demo", "cargo test --locked"]
    );
    // CI runs the same test command.
    assert!(include_str!("../../.ci/run").contains("\ncargo test --locked\n"));
}

#[test]
fn configuration_example_is_valid_but_for_its_secret_files() {
    let example = &blocks("## Configuration", "yaml")[0];
    let err = Config::parse(example, "README.md", Path::new("/nonexistent"), &|_| None)
        .expect_err("the example names secret files that do not exist here");
    for p in &err.problems {
        assert!(
            p.message.contains("cannot read"),
            "README configuration example: {}",
            p.message
        );
    }
    assert_eq!(err.problems.len(), 4, "{err}");
}

/// A block nested in a list item, without the item's indentation.
fn dedent(block: &str) -> String {
    block
        .lines()
        .map(|l| l.strip_prefix("  ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
        .trim_end()
        .to_string()
}

#[test]
fn config_check_example_prints_what_the_readme_shows() {
    let bad = dedent(&blocks("## Configuration", "yaml")[1]);
    let console = dedent(&blocks("## Configuration", "console")[0]);
    let (command, shown) = console.split_once('\n').unwrap();
    assert_eq!(
        command,
        "$ tenant-exporter --config.check --config.file=bad.yml"
    );
    let (config, diagnostics) = Config::parse_checked(&bad, "bad.yml", Path::new("."), &|_| None);
    assert!(config.is_none());
    assert_eq!(diagnostics.to_string(), shown);
}

#[test]
fn the_path_to_real_accounts_comes_before_deployment() {
    let at = |h: &str| {
        README
            .find(h)
            .unwrap_or_else(|| panic!("no {h:?} in README"))
    };
    assert!(at("## From the demo to real accounts") < at("## Configuration"));
    assert!(at("## Configuration") < at("## Getting credentials"));
    assert!(at("## Getting credentials") < at("## Installation"));
    for vendor in [
        "### Webex",
        "### VOSS Automate",
        "### Commvault",
        "### Proxies and private CAs",
    ] {
        assert!(at(vendor) > at("## Getting credentials") && at(vendor) < at("## Flags"));
    }
    // The scopes the README tells users to tick are the ones oauth-login asks for.
    for scope in [
        "spark-admin:broadworks_enterprises_read",
        "spark-admin:organizations_read",
    ] {
        assert!(README[at("### Webex")..at("### VOSS Automate")].contains(scope));
    }
    assert!(README.contains(tenant_exporter::oauth_login::DEFAULT_REDIRECT_URI));
}

#[test]
fn web_config_example_is_valid_but_for_its_certificate_files() {
    let example = &blocks("## Security", "yaml")[0];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.yml");
    std::fs::write(&path, example).unwrap();
    let err = tenant_exporter::web::WebConfig::load(&path)
        .err()
        .expect("certificate files are missing here")
        .to_string();
    let problems: Vec<&str> = err.split("; ").collect();
    assert_eq!(problems.len(), 2, "{err}");
    assert!(
        problems
            .iter()
            .all(|p| p.contains("tls_server_config.cert_file")
                || p.contains("tls_server_config.key_file")),
        "{err}"
    );
    // The example hash is what it says it is.
    let hash = example
        .lines()
        .find_map(|l| l.trim().strip_prefix("prometheus: "))
        .expect("a basic_auth_users entry");
    assert!(bcrypt::verify("changeme", hash).unwrap());
}
