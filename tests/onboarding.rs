//! From the demo to real credentials: the checks a new user meets first.

use std::process::Command;

/// `rust-version` in Cargo.toml is what the locked dependency tree really needs: the highest
/// `rust-version` among the lockfile's packages (those built on this platform).
#[test]
fn rust_version_is_what_the_locked_dependencies_need() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let host = Command::new(&rustc).arg("-vV").output().expect("rustc -vV");
    let host = String::from_utf8_lossy(&host.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .expect("rustc -vV names the host");
    let out = Command::new(&cargo)
        .args(["metadata", "--locked", "--offline", "--format-version", "1"])
        .args(["--filter-platform", &host])
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let parse = |v: &str| -> (u32, u32) {
        let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap());
        (parts.next().unwrap(), parts.next().unwrap_or(0))
    };
    let mut ours = None;
    let mut needed = ((0, 0), String::new());
    for p in meta["packages"].as_array().unwrap() {
        let Some(v) = p["rust_version"].as_str() else {
            continue;
        };
        if p["name"] == "tenant-exporter" {
            ours = Some(parse(v));
        } else if parse(v) > needed.0 {
            needed = (parse(v), format!("{} {}", p["name"], p["version"]));
        }
    }
    let ours = ours.expect("Cargo.toml sets rust-version");
    assert_eq!(
        ours, needed.0,
        "Cargo.toml rust-version {ours:?}, but {} needs {:?}",
        needed.1, needed.0
    );
}
