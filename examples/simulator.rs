//! The upstream simulator in a process of its own, so the exporter can be measured (CPU,
//! memory, start-up) without the simulator's work counted in.
//!
//! ```text
//! cargo run --release --example simulator -- --enterprises 10000
//! ```
//!
//! Prints two lines to stdout and then serves until SIGTERM or Ctrl-C:
//!
//! ```text
//! base_url http://127.0.0.1:PORT/v1
//! token demo-webex-token
//! ```
//!
//! Flags: `--enterprises N` (default 25), `--token TOKEN`, `--sync-period SECONDS` (default
//! 600), `--threads N` (async worker threads, default 1: the simulator stays off the cores
//! the exporter is being measured on as far as a shared machine allows).

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use tenant_exporter::simulator::{Options, Simulator};

const USAGE: &str =
    "usage: simulator [--enterprises N] [--token TOKEN] [--sync-period SECONDS] [--threads N]";

struct Args {
    opts: Options,
    threads: usize,
}

/// The parsed flags, or `Err` with the message for stderr; `Ok(None)` for `--help`.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        opts: Options::default(),
        threads: 1,
    };
    while let Some(arg) = args.next() {
        // Both `--flag value` and `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg, None),
        };
        if flag == "-h" || flag == "--help" {
            return Ok(None);
        }
        let value = match inline.or_else(|| args.next()) {
            Some(v) => v,
            None => return Err(format!("{flag} needs a value\n{USAGE}")),
        };
        let number = |v: &str| {
            v.parse::<usize>()
                .map_err(|e| format!("{flag} {v:?}: {e}\n{USAGE}"))
        };
        match flag.as_str() {
            "--enterprises" => parsed.opts.enterprises = number(&value)?,
            "--token" if !value.is_empty() => parsed.opts.webex_token = value,
            "--sync-period" => {
                parsed.opts.sync_period = Duration::from_secs(number(&value)? as u64)
            }
            "--threads" => parsed.threads = number(&value)?.max(1),
            _ => return Err(format!("unknown flag {flag:?}\n{USAGE}")),
        }
    }
    Ok(Some(parsed))
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let enterprises = args.opts.enterprises;
        let sim = match Simulator::start(args.opts).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("cannot start the simulator: {e}");
                return ExitCode::FAILURE;
            }
        };
        let mut out = std::io::stdout().lock();
        let printed = writeln!(out, "base_url {}", sim.webex_base_url())
            .and_then(|()| writeln!(out, "token {}", sim.webex_token()))
            .and_then(|()| out.flush());
        drop(out);
        if let Err(e) = printed {
            eprintln!("cannot write to stdout: {e}");
            return ExitCode::FAILURE;
        }
        eprintln!(
            "simulator: {enterprises} enterprises on {}; stop with SIGTERM or Ctrl-C",
            sim.addr()
        );
        wait_for_signal().await;
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
