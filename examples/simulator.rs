//! The upstream simulator in a process of its own, so the exporter can be measured (CPU,
//! memory, start-up) without the simulator's work counted in.
//!
//! ```text
//! cargo run --release --example simulator -- --enterprises 10000
//! cargo run --release --example simulator -- --enterprises 5000 --partners 20 \
//!     --voss-customers 2000 --commvault-organizations 500
//! ```
//!
//! Prints where each fake API is, and its credentials, one `key value` a line, then serves
//! until SIGTERM or Ctrl-C:
//!
//! ```text
//! base_url http://127.0.0.1:PORT/v1
//! voss_base_url http://127.0.0.1:PORT
//! voss_username monitor
//! voss_password demo-voss-password
//! commvault_base_url http://127.0.0.1:PORT/commandcenter/api
//! commvault_username monitor
//! commvault_password demo-commvault-password
//! token demo-webex-token
//! ```
//!
//! `token` comes last, so a script that waits for it has every line. Partner `k` (from 1)
//! answers to the token followed by `-k`.
//!
//! `simulator --help` lists the flags.

// The simulator is in the library only with the `demo` feature (on by default).
#[cfg(feature = "demo")]
fn main() -> std::process::ExitCode {
    simulator::main()
}

#[cfg(not(feature = "demo"))]
fn main() -> std::process::ExitCode {
    eprintln!("simulator: this build has no simulator: build with the cargo feature `demo` (on by default)");
    std::process::ExitCode::from(2)
}

#[cfg(feature = "demo")]
mod simulator {
    use std::io::Write as _;
    use std::num::NonZeroUsize;
    use std::process::ExitCode;
    use std::time::Duration;

    use clap::Parser;
    use tenant_exporter::simulator::commvault::CommvaultOptions;
    use tenant_exporter::simulator::voss::VossOptions;
    use tenant_exporter::simulator::{Options, Simulator};

    /// The fake Webex, VOSS and Commvault APIs in a process of their own.
    #[derive(Parser)]
    #[command(name = "simulator")]
    struct Args {
        /// BroadWorks enterprises each fake Webex partner has.
        #[arg(long, value_name = "N", default_value_t = Options::default().enterprises)]
        enterprises: usize,
        /// Webex partners, each with its own enterprises; partner k (from 1) answers to the
        /// token followed by `-k`.
        #[arg(long, value_name = "N", default_value = "1")]
        partners: NonZeroUsize,
        /// SparkCustomers of the fake VOSS Automate.
        #[arg(long, value_name = "N", default_value_t = Options::default().voss.customers)]
        voss_customers: usize,
        /// Organizations of the fake CommServe.
        #[arg(long, value_name = "N", default_value_t = Options::default().commvault.organizations)]
        commvault_organizations: usize,
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

    pub(super) fn main() -> ExitCode {
        let args = Args::parse();
        let defaults = Options::default();
        let opts = Options {
            enterprises: args.enterprises,
            webex_token: args.token,
            webex_partners: args.partners.get(),
            sync_period: Duration::from_secs(args.sync_period),
            voss: VossOptions {
                customers: args.voss_customers,
                ..defaults.voss
            },
            commvault: CommvaultOptions {
                organizations: args.commvault_organizations,
                ..defaults.commvault
            },
            ..defaults
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
            let (enterprises, partners) = (opts.enterprises, opts.webex_partners);
            let (voss, commvault) = (opts.voss.clone(), opts.commvault.clone());
            let sim = match Simulator::start(opts).await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("cannot start the simulator: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let mut out = std::io::stdout().lock();
            let lines = [
                ("base_url", sim.webex_base_url()),
                ("voss_base_url", sim.voss_base_url()),
                ("voss_username", voss.username),
                ("voss_password", voss.password),
                ("commvault_base_url", sim.commvault_base_url()),
                ("commvault_username", commvault.username),
                ("commvault_password", commvault.password),
                ("token", sim.webex_token().to_string()),
            ];
            let printed = lines
                .iter()
                .try_for_each(|(k, v)| writeln!(out, "{k} {v}"))
                .and_then(|()| out.flush());
            drop(out);
            if let Err(e) = printed {
                eprintln!("cannot write to stdout: {e}");
                return ExitCode::FAILURE;
            }
            eprintln!(
                "simulator: {partners} partner(s) of {enterprises} enterprises, {} VOSS customers, \
                 {} Commvault organizations on {}; stop with SIGTERM or Ctrl-C",
                voss.customers,
                commvault.organizations,
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
}
