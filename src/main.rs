//! Thin: flags, config, start, shutdown. Errors end here: each is logged once, with its
//! context, and the process exits non-zero.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{mpsc, watch};

use tenant_exporter::cli::{resolve_listen_address, Cli};
use tenant_exporter::config::{Config, Shard};
#[cfg(feature = "demo")]
use tenant_exporter::demo::Demo;
use tenant_exporter::logging;
use tenant_exporter::metrics::SelfMetrics;
use tenant_exporter::scheduler::{client_for, run_once, Scheduler};
use tenant_exporter::server::{self, AppState, Limits, ReloadRequest, ReloadResult};
use tenant_exporter::snapshot::{openmetrics_to_prometheus_text, Exposition};
use tenant_exporter::store::Store;
use tenant_exporter::web::{self, WebConfig};

/// Reload requests waiting while one is applied; they are all answered by the next apply.
const RELOAD_QUEUE: usize = 64;

fn main() -> ExitCode {
    let cli = Cli::parse_args();
    logging::init(cli.log_level, cli.log_format);
    // Panics are caught and counted where they can be (a collection); their report goes
    // to the log in its format, so a JSON log stays parseable, with where it happened.
    std::panic::set_hook(Box::new(|info| {
        tracing::error!(panic = %info, "panic");
    }));
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
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "cannot run");
            ExitCode::FAILURE
        }
    }
}

/// Where the config comes from: a file, re-read on reload, or the demo.
enum Source {
    File(std::path::PathBuf),
    #[cfg(feature = "demo")]
    Demo(Demo),
}

impl Source {
    /// Reads the config off the async workers. A config error is returned as it is, so its
    /// list of problems prints as the operator expects.
    async fn load(&self, shard: Option<Shard>) -> anyhow::Result<Config> {
        let config = match self {
            Source::File(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || Config::load(&path)).await??
            }
            #[cfg(feature = "demo")]
            Source::Demo(demo) => demo.config.clone(),
        };
        Ok(config.sharded(shard))
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if cli.config_check {
        return Ok(tenant_exporter::cli::config_check(&cli.config_path()));
    }
    if let Some(tenant_exporter::cli::Command::OauthLogin(args)) = &cli.command {
        return Ok(tenant_exporter::oauth_login::main(&cli.config_path(), args).await);
    }
    if cli.probe {
        return Ok(tenant_exporter::probe::main(&cli.config_path()).await);
    }

    // Without the `demo` feature, `Cli::parse_args` has refused --demo already.
    #[cfg(not(feature = "demo"))]
    let source = Source::File(cli.config_path());
    #[cfg(feature = "demo")]
    let source = if cli.demo {
        let demo = Demo::start(cli.demo_enterprises)
            .await
            .context("cannot start the demo")?;
        Source::Demo(demo)
    } else {
        Source::File(cli.config_path())
    };
    let config = match source.load(cli.shard).await {
        Ok(c) => c,
        Err(e) => {
            // The problems, one a line with their locations, as --config.check prints them.
            eprintln!("{e}");
            return Err(anyhow!("invalid configuration; see above"));
        }
    };
    let metrics = Arc::new(SelfMetrics::new());
    let store = Store::new(metrics.clone());
    let client = client_for(&config, metrics.clone()).context("cannot build the HTTP client")?;

    if cli.once {
        let failures = run_once(&config, &client, &store).await?;
        let text = store.snapshot().text_of(Exposition::Text)
            + &openmetrics_to_prometheus_text(&metrics.encode());
        print!("{text}");
        for (job, error) in &failures {
            eprintln!("{job}: {error}");
        }
        return Ok(if failures.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }

    // Installed before anything is announced, so a signal sent as soon as the exporter says
    // it listens is handled, not fatal.
    let term = signal(SignalKind::terminate()).context("cannot install signal handlers")?;
    let hup = signal(SignalKind::hangup()).context("cannot install signal handlers")?;

    let web = match &cli.web_config_file {
        None => None,
        Some(path) => {
            let p = path.clone();
            let w = tokio::task::spawn_blocking(move || WebConfig::load(&p))
                .await?
                .context("invalid web config")?;
            if w.is_open() {
                tracing::warn!(
                    file = %path.display(),
                    "the web config has no basic_auth_users and does not require client \
                     certificates: anyone who can connect may scrape and reload"
                );
            }
            Some(web::Live::new(path.clone(), w))
        }
    };

    let mut listeners = Vec::new();
    for addr in &cli.listen_addresses {
        let a = resolve_listen_address(addr).await?;
        let l = tokio::net::TcpListener::bind(a)
            .await
            .with_context(|| format!("--web.listen-address {addr:?}"))?;
        listeners.push(l);
    }

    let mut scheduler = Scheduler::start(store.clone());
    let applied = scheduler
        .apply(&config, client)
        .await
        .context("invalid configuration")?;
    if applied.started == 0 {
        tracing::warn!("the configuration has no targets: nothing is collected");
    }

    let (reload_tx, reload_rx) = mpsc::channel::<ReloadRequest>(RELOAD_QUEUE);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let app = server::router(AppState {
        store: store.clone(),
        telemetry_path: cli.telemetry_path.clone(),
        reload: reload_tx.clone(),
        web: web.clone(),
        auth_exempt_probes: cli.auth_exempt_probes,
    });
    let limits = Limits::from_flags(
        cli.max_connections as usize,
        cli.read_header_timeout,
        cli.idle_timeout,
    );
    let servers = server::spawn(listeners, app, web, limits, metrics, shutdown_rx.clone())?;

    let reloader = tokio::spawn(reload_loop(
        source,
        cli.shard,
        scheduler,
        store,
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
        let _ = tokio::time::timeout(Duration::from_secs(6), s).await;
    }
    if let Ok((scheduler, source)) = reloader.await {
        // Sources log out of their upstreams; the demo's simulator must outlive them.
        scheduler.shutdown().await;
        drop(source);
    }
    Ok(ExitCode::SUCCESS)
}

/// `--config.check`: every problem on stderr, the summary on stdout.
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

/// Applies reloads one at a time; a bad config leaves the running one alone. Requests that
/// arrive while one is applied are coalesced: the next apply answers them all, so a flood
/// of reloads costs two applies, not one each.
async fn reload_loop(
    source: Source,
    shard: Option<Shard>,
    mut scheduler: Scheduler,
    store: Arc<Store>,
    mut requests: mpsc::Receiver<ReloadRequest>,
    mut stop: watch::Receiver<bool>,
) -> (Scheduler, Source) {
    loop {
        let replies = tokio::select! {
            r = server::next_reloads(&mut requests) => match r { Some(r) => r, None => break },
            _ = stop.wait_for(|s| *s) => break,
        };
        let result: ReloadResult = reload(&source, shard, &mut scheduler, &store)
            .await
            .map_err(|e| Arc::from(Box::<dyn std::error::Error + Send + Sync>::from(e)));
        match &result {
            Ok(applied) => tracing::info!(
                requests = replies.len(),
                started = applied.started,
                stopped = applied.stopped,
                kept = applied.kept,
                "configuration reloaded"
            ),
            Err(e) => {
                tracing::error!(error = %e, "configuration reload failed; keeping the running configuration")
            }
        }
        for reply in replies {
            let _ = reply.send(result.clone());
        }
    }
    (scheduler, source)
}

async fn reload(
    source: &Source,
    shard: Option<Shard>,
    scheduler: &mut Scheduler,
    store: &Store,
) -> anyhow::Result<tenant_exporter::scheduler::Applied> {
    let config = source.load(shard).await?;
    let client =
        client_for(&config, store.metrics.clone()).context("cannot build the HTTP client")?;
    Ok(scheduler.apply(&config, client).await?)
}
