//! Records the git revision for `tenant_exporter_build_info` and `--version`.

use std::process::Command;

/// `git rev-parse ARGS`, trimmed, when git is there and answers.
fn rev_parse(args: &[&str]) -> Option<String> {
    Command::new("git")
        .arg("rev-parse")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
}

fn main() {
    let revision = std::env::var("TENANT_EXPORTER_REVISION")
        .ok()
        .or_else(|| rev_parse(&["--short=12", "HEAD"]));
    println!(
        "cargo:rustc-env=TENANT_EXPORTER_REVISION={}",
        revision.unwrap_or_else(|| "unknown".into())
    );
    println!("cargo:rerun-if-env-changed=TENANT_EXPORTER_REVISION");
    // Asked of git rather than assumed: in a worktree `.git` is a file, and a path that does
    // not exist would make cargo run this script (and rebuild the crate) every time.
    for path in [
        rev_parse(&["--git-path", "HEAD"]),
        rev_parse(&["--git-path", "refs/heads"]),
        rev_parse(&["--git-path", "packed-refs"]),
    ]
    .into_iter()
    .flatten()
    {
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
