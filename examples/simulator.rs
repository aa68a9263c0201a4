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
//! `simulator --help` lists the flags.

use std::io::Write as _;
use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tenant_exporter::simulator::{Options, Simulator};

/// The fake Webex, VOSS and Commvault APIs in a process of their own.
#[derive(Parser)]
#[command(name = "simulator")]
struct Args {
    /// BroadWorks enterprises the fake Webex partner has.
    #[arg(long, value_name = "N", default_value_t = Options::default().enterprises)]
    enterprises: usize,
    /// Static bearer token the fake Webex API accepts.
    #[arg(long, value_name = "TOKEN", default_value_t = Options::default().webex_token,
          value_parser = clap::builder::NonEmptyStringValueParser::new())]
    token: String,
    /// Length of one directory-sync cycle, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = Options::default().sync_period.as_secs())]
    sync_period: u64,
    /// Async worker threads; one keeps the simulator off the cores the exporter is measured
    /// on, as far as a shared machine allows.
    #[arg(long, value_name = "N", default_value = "1")]
    threads: NonZeroUsize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let opts = Options {
        enterprises: args.enterprises,
        webex_token: args.token,
        sync_period: Duration::from_secs(args.sync_period),
        ..Options::default()
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.get())
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
        let enterprises = opts.enterprises;
        let sim = match Simulator::start(opts).await {
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
