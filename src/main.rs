//! Thin: flags, config, start, shutdown.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{mpsc, watch};

use tenant_exporter::cli::{resolve_listen_address, Cli};
use tenant_exporter::config::{Config, Shard};
use tenant_exporter::demo::Demo;
use tenant_exporter::logging;
use tenant_exporter::metrics::SelfMetrics;
use tenant_exporter::scheduler::{client_for, run_once, Scheduler, Shared};
use tenant_exporter::server::{self, AppState, ReloadRequest};
use tenant_exporter::snapshot::{openmetrics_to_prometheus_text, Exposition};
use tenant_exporter::web::{self, WebConfig};

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_level, cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli))
}

/// Where the config comes from: a file, re-read on reload, or the demo.
enum Source {
    File(std::path::PathBuf),
    Demo(Demo),
}

impl Source {
    fn load(&self, shard: Option<Shard>) -> Result<Config, String> {
        let config = match self {
            Source::File(path) => Config::load(path).map_err(|e| e.to_string())?,
            Source::Demo(demo) => demo.config.clone(),
        };
        Ok(config.sharded(shard))
    }
}

async fn run(cli: Cli) -> ExitCode {
    if cli.config_check {
        let path = cli.config_path();
        return match Config::load(&path) {
            Ok(c) => {
                println!(
                    "{}: config is valid ({} webex, {} voss, {} commvault targets)",
                    path.display(),
                    c.webex.len(),
                    c.voss.len(),
                    c.commvault.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }

    let source = if cli.demo {
        match Demo::start(cli.demo_enterprises).await {
            Ok(d) => Source::Demo(d),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the demo");
                return ExitCode::FAILURE;
            }
        }
    } else {
        Source::File(cli.config_path())
    };
    let config = match source.load(cli.shard) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            tracing::error!("invalid configuration; see above");
            return ExitCode::FAILURE;
        }
    };
    let metrics = Arc::new(SelfMetrics::new());
    let shared = Shared::new(metrics.clone());
    let client = match client_for(&config, metrics.clone()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the HTTP client");
            return ExitCode::FAILURE;
        }
    };

    if cli.once {
        let failures = match run_once(&config, &client, &shared).await {
            Ok(f) => f,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let text = shared.snapshot().text_of(Exposition::Text)
            + &openmetrics_to_prometheus_text(&metrics.encode());
        print!("{text}");
        for (job, error) in &failures {
            eprintln!("{job}: {error}");
        }
        return if failures.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }

    // Installed before anything is announced, so a signal sent as soon as the exporter says
    // it listens is handled, not fatal.
    let (term, hup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(t), Ok(h)) => (t, h),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "cannot install signal handlers");
            return ExitCode::FAILURE;
        }
    };

    let web = match &cli.web_config_file {
        None => None,
        Some(path) => match WebConfig::load(path) {
            Ok(w) => Some(web::Live::new(path.clone(), w)),
            Err(e) => {
                tracing::error!(error = %e, "invalid web config");
                return ExitCode::FAILURE;
            }
        },
    };

    let mut listeners = Vec::new();
    for addr in &cli.listen_addresses {
        let bound = match resolve_listen_address(addr).await {
            Ok(a) => tokio::net::TcpListener::bind(a)
                .await
                .map_err(|e| format!("--web.listen-address {addr:?}: {e}")),
            Err(e) => Err(e),
        };
        match bound {
            Ok(l) => listeners.push(l),
            Err(e) => {
                tracing::error!(error = %e, "cannot listen");
                return ExitCode::FAILURE;
            }
        }
    }

    let mut scheduler = Scheduler::start(shared.clone());
    if let Err(e) = scheduler.apply(&config, client) {
        tracing::error!(error = %e, "invalid configuration");
        return ExitCode::FAILURE;
    }

    let (reload_tx, reload_rx) = mpsc::channel::<ReloadRequest>(4);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let app = server::router(AppState {
        shared: shared.clone(),
        telemetry_path: cli.telemetry_path.clone(),
        reload: reload_tx.clone(),
        web: web.clone(),
        auth_exempt_probes: cli.auth_exempt_probes,
    });
    let servers = server::spawn(listeners, app, web, shutdown_rx.clone());

    let reloader = tokio::spawn(reload_loop(
        source,
        cli.shard,
        scheduler,
        metrics,
        reload_rx,
        shutdown_rx.clone(),
    ));
    let sighup = tokio::spawn(forward_sighup(hup, reload_tx));

    wait_for_shutdown_signal(term).await;
    tracing::info!("shutting down");
    let _ = shutdown_tx.send(true);
    sighup.abort();
    for s in servers {
        // Scrapes in flight get a moment to finish; the process does not wait on a stuck one.
        let _ = tokio::time::timeout(Duration::from_secs(5), s).await;
    }
    if let Ok((scheduler, source)) = reloader.await {
        // Sources log out of their upstreams; the demo's simulator must outlive them.
        scheduler.shutdown().await;
        drop(source);
    }
    ExitCode::SUCCESS
}

async fn wait_for_shutdown_signal(mut term: Signal) {
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

async fn forward_sighup(mut hup: Signal, reload: mpsc::Sender<ReloadRequest>) {
    while hup.recv().await.is_some() {
        let (tx, _rx) = tokio::sync::oneshot::channel();
        if reload.send(tx).await.is_err() {
            return;
        }
    }
}

/// Applies reloads one at a time; a bad config leaves the running one alone.
async fn reload_loop(
    source: Source,
    shard: Option<Shard>,
    mut scheduler: Scheduler,
    metrics: Arc<SelfMetrics>,
    mut requests: mpsc::Receiver<ReloadRequest>,
    mut stop: watch::Receiver<bool>,
) -> (Scheduler, Source) {
    loop {
        let reply = tokio::select! {
            r = requests.recv() => match r { Some(r) => r, None => break },
            _ = stop.wait_for(|s| *s) => break,
        };
        let result = source.load(shard).and_then(|config| {
            let client = client_for(&config, metrics.clone())
                .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
            scheduler.apply(&config, client)
        });
        match &result {
            Ok(()) => tracing::info!("configuration reloaded"),
            Err(e) => {
                tracing::error!(error = %e, "configuration reload failed; keeping the running configuration")
            }
        }
        let _ = reply.send(result);
    }
    (scheduler, source)
}
