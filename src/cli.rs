//! Command-line flags, named as the Prometheus exporters name theirs.

use std::path::PathBuf;

use clap::Parser;

use crate::logging::{LogFormat, LogLevel};

pub(crate) const DEFAULT_CONFIG_FILE: &str = "tenant-exporter.yml";
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("TENANT_EXPORTER_REVISION"),
    ")"
);

#[derive(Debug, Parser)]
#[command(name = "tenant-exporter", version = LONG_VERSION, about = "Prometheus exporter for multi-tenant Cisco Webex, VOSS Automate and Commvault estates.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Path to the configuration file.
    #[arg(long = "config.file", value_name = "FILE", global = true)]
    pub(crate) config_file: Option<PathBuf>,

    /// Address to listen on, as host:port or :port (all interfaces). Repeatable.
    #[arg(
        long = "web.listen-address",
        value_name = "ADDRESS",
        default_value = ":10020"
    )]
    pub listen_addresses: Vec<String>,

    /// Web configuration file (exporter-toolkit format): TLS, client certificates, basic
    /// auth users with bcrypt hashes, response headers. Re-read when it changes.
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,

    /// Most HTTP connections open at once; more are closed at once and counted in
    /// tenant_exporter_http_connections_rejected_total. Lowered to fit the open-file limit.
    #[arg(long = "web.max-connections", value_name = "N", default_value_t = 2048,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// Longest time from accepting a connection (TLS handshake included) to its first
    /// complete request head; slower clients are disconnected.
    #[arg(long = "web.read-header-timeout", value_name = "DURATION", default_value = "10s",
          value_parser = humantime::parse_duration)]
    pub read_header_timeout: std::time::Duration,

    /// Longest wait for the next request on an open connection (keep-alive).
    #[arg(long = "web.idle-timeout", value_name = "DURATION", default_value = "2m",
          value_parser = humantime::parse_duration)]
    pub idle_timeout: std::time::Duration,

    /// Serve /-/healthy and /-/ready without basic auth, for load balancers and probes.
    #[arg(long = "web.auth-exempt-probes", value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub auth_exempt_probes: bool,

    /// Path under which to expose metrics.
    #[arg(long = "web.telemetry-path", value_name = "PATH", default_value = "/metrics", value_parser = telemetry_path)]
    pub telemetry_path: String,

    /// Only log messages with the given severity or above.
    #[arg(long = "log.level", value_enum, default_value = "info")]
    pub log_level: LogLevel,

    /// Output format of log messages.
    #[arg(long = "log.format", value_enum, default_value = "logfmt")]
    pub log_format: LogFormat,

    /// Validate the configuration file, report every problem with its location, and exit
    /// (0 when valid, 1 otherwise).
    #[arg(long = "config.check", conflicts_with_all = ["once", "demo"])]
    pub config_check: bool,

    /// Collect every target once, print the exposition (Prometheus text format) to stdout and
    /// exit; non-zero if any collection failed.
    #[arg(long)]
    pub once: bool,

    /// Check every configured target's credentials, permissions and network path: one live
    /// collection per target and collector, one line each (OK, or what is wrong and what to
    /// do). Exits 0 only when every line is OK. Prints no secret.
    #[arg(long, conflicts_with_all = ["once", "demo", "config_check"])]
    pub probe: bool,

    /// Run without a config against the built-in simulator of the upstream APIs.
    // A build without the `demo` feature still knows the flag, hidden, to refuse it by name.
    #[cfg_attr(feature = "demo", arg(long, conflicts_with = "config_file"))]
    #[cfg_attr(not(feature = "demo"), arg(long, hide = true))]
    pub demo: bool,

    /// Collect only this replica's share of the targets, as INDEX/COUNT (0-based). INDEX may
    /// be a StatefulSet pod name such as tenant-exporter-2.
    #[arg(long = "shard", value_name = "INDEX/COUNT")]
    pub shard: Option<crate::config::Shard>,

    /// Number of BroadWorks enterprises the demo simulator serves.
    #[arg(long = "demo.enterprises", value_name = "N", default_value_t = 25,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    #[cfg_attr(feature = "demo", arg(requires = "demo"))]
    #[cfg_attr(not(feature = "demo"), arg(hide = true))]
    pub demo_enterprises: u32,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Authorize a Webex integration for a target and store its refresh token.
    ///
    /// Prints the authorize URL with exactly the scopes the target's collectors need, waits
    /// for the browser's redirect on the loopback redirect URI, exchanges the code at the
    /// token endpoint and writes the target's oauth.refresh_token_file atomically (mode 0600).
    /// Register the redirect URI in the integration first (developer.webex.com).
    OauthLogin(crate::oauth_login::OauthLoginArgs),
}

/// What is wrong with `--web.telemetry-path`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TelemetryPathError {
    #[error("must start with /")]
    Relative,
    #[error("must not be / nor under /-/, which the exporter uses itself")]
    Reserved,
    #[error("must be a plain path without spaces, ?, #, {{, }} or *")]
    NotPlain,
}

fn telemetry_path(s: &str) -> Result<String, TelemetryPathError> {
    if !s.starts_with('/') {
        return Err(TelemetryPathError::Relative);
    }
    if s == "/" || s.starts_with("/-/") {
        return Err(TelemetryPathError::Reserved);
    }
    if s.chars()
        .any(|c| c.is_whitespace() || c == '?' || c == '#' || c == '{' || c == '}' || c == '*')
    {
        return Err(TelemetryPathError::NotPlain);
    }
    Ok(s.to_string())
}

/// A `--web.listen-address` that names no address.
#[derive(Debug, thiserror::Error)]
pub enum ListenAddressError {
    #[error("--web.listen-address {0:?}: resolves to no address")]
    NoAddress(String),
    #[error("--web.listen-address {address:?}: {source}")]
    Lookup {
        address: String,
        source: std::io::Error,
    },
}

impl Cli {
    /// Parses the process's arguments; on a flag error prints it and exits with status 2, as
    /// clap does (0 for `--help` and `--version`).
    pub fn parse_args() -> Cli {
        Cli::try_parse_args(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }

    /// Parses `args` like `try_parse_from`, and refuses what this build leaves out.
    pub(crate) fn try_parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory as _, FromArgMatches as _};
        let mut matches = Cli::command().try_get_matches_from(args)?;
        if !crate::DEMO_BUILT_IN {
            for (id, flag) in [
                ("demo", "--demo"),
                ("demo_enterprises", "--demo.enterprises"),
            ] {
                if matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine) {
                    return Err(Cli::command().error(
                        clap::error::ErrorKind::ArgumentConflict,
                        format!(
                            "{flag} is not in this build: it was built without the cargo \
                             feature `demo` (on by default)"
                        ),
                    ));
                }
            }
        }
        Cli::from_arg_matches_mut(&mut matches).map_err(|e| e.format(&mut Cli::command()))
    }

    pub fn config_path(&self) -> PathBuf {
        self.config_file
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_FILE))
    }
}

/// `--config.check`: every error and warning with its position on stderr, a summary on stdout
/// when the config is usable. Exit status 1 only for errors.
pub fn config_check(path: &std::path::Path) -> std::process::ExitCode {
    let (config, diagnostics) = crate::config::Config::check(path);
    if !diagnostics.errors.is_empty() || !diagnostics.warnings.is_empty() {
        eprintln!("{diagnostics}");
    }
    match config {
        Some(c) => {
            println!("{}: config is valid ({})", path.display(), c.summary());
            std::process::ExitCode::SUCCESS
        }
        None => std::process::ExitCode::FAILURE,
    }
}

/// Resolves a listen address; `:port` means every interface.
pub async fn resolve_listen_address(
    addr: &str,
) -> Result<std::net::SocketAddr, ListenAddressError> {
    let full = if addr.starts_with(':') {
        format!("0.0.0.0{addr}")
    } else {
        addr.to_string()
    };
    let resolved = tokio::net::lookup_host(full.as_str())
        .await
        .map(|mut a| a.next());
    match resolved {
        Ok(Some(a)) => Ok(a),
        Ok(None) => Err(ListenAddressError::NoAddress(addr.to_string())),
        Err(source) => Err(ListenAddressError::Lookup {
            address: addr.to_string(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse() {
        let c = Cli::try_parse_from([
            "tenant-exporter",
            "--config.file=x.yml",
            "--web.listen-address=:1",
            "--web.listen-address=127.0.0.1:2",
            "--log.format=json",
        ])
        .unwrap();
        assert_eq!(c.listen_addresses, [":1", "127.0.0.1:2"]);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.config_path(), PathBuf::from("x.yml"));
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let c = Cli::try_parse_from([
            "tenant-exporter",
            "oauth-login",
            "--config.file=x.yml",
            "--target=t",
        ])
        .unwrap();
        assert_eq!(c.config_path(), PathBuf::from("x.yml"));
        assert!(
            matches!(c.command, Some(Command::OauthLogin(a)) if a.target.as_deref() == Some("t"))
        );
    }

    #[test]
    fn the_demo_flags_are_there_exactly_when_the_demo_is_built_in() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        assert_eq!(help.contains("--demo"), crate::DEMO_BUILT_IN, "{help}");
        for args in [
            &["tenant-exporter", "--demo"][..],
            &["tenant-exporter", "--demo", "--demo.enterprises=5"],
            &["tenant-exporter", "--demo.enterprises=5"],
        ] {
            match Cli::try_parse_args(args) {
                Ok(c) => assert!(crate::DEMO_BUILT_IN && c.demo, "{args:?}"),
                // Built in, --demo.enterprises needs --demo.
                Err(e) if crate::DEMO_BUILT_IN => {
                    assert_eq!(args, ["tenant-exporter", "--demo.enterprises=5"], "{e}");
                }
                Err(e) => {
                    // Exit status 2, like every other flag error.
                    assert_eq!(e.exit_code(), 2);
                    assert!(
                        e.to_string().contains("without the cargo feature `demo`"),
                        "{e}"
                    );
                }
            }
        }
    }

    #[test]
    fn bad_flags_are_errors() {
        for args in [
            &["tenant-exporter", "--web.config"][..],
            &["tenant-exporter", "--log.level=verbose"],
            &["tenant-exporter", "--web.telemetry-path=metrics"],
            &["tenant-exporter", "--web.telemetry-path=/-/x"],
            &["tenant-exporter", "--demo.enterprises=5"],
            &["tenant-exporter", "--demo", "--config.file=x.yml"],
            &["tenant-exporter", "--demo", "--demo.enterprises=0"],
            &["tenant-exporter", "--probe", "--once"],
            &["tenant-exporter", "oauth-login", "--redirect-uri"],
        ] {
            assert!(Cli::try_parse_args(args).is_err(), "{args:?}");
        }
    }
}
