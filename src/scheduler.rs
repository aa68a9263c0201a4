//! Runs one task per (collector, target) on its interval and hands each attempt to the
//! [`Store`]. A reload keeps the tasks (and the upstream sessions) of targets it does not
//! change; a panic in a collection is caught and counted, and the job keeps its schedule.

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::FutureExt as _;
use tokio::task::JoinHandle;

use crate::config::{Config, Target, TlsConfig};
use crate::metrics::SelfMetrics;
use crate::sources::{self, Collect, CollectError, Collected};
use crate::store::{Attempt, Key, Store};
use crate::upstream::{Client, Policy, RequestCtx};

/// The first requests of many jobs are spread over this window, short enough not to delay
/// readiness.
const START_SPREAD: Duration = Duration::from_millis(250);
/// How often stale samples are looked for.
const STALE_SWEEP: Duration = Duration::from_secs(1);
/// Longest wait for an upstream logout when a target stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Everything a job's behaviour depends on, compared on reload.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Spec {
    /// The target's configuration as its jobs see it: when a reload leaves it equal, the
    /// target's tasks and upstream sessions are kept.
    target: Target,
    /// The upstream request timeout (global).
    timeout: Duration,
    /// The content of the target's `ca_file`, so a rotated CA bundle counts as a change.
    ca_pem: Option<Vec<u8>>,
}

/// One collector polling one target.
#[derive(Clone)]
pub(crate) struct Job {
    pub(crate) collector: &'static str,
    pub(crate) target: String,
    pub(crate) interval: Duration,
    pub(crate) tls: TlsConfig,
    pub(crate) source: Arc<dyn Collect>,
    /// The `credential` label values of the exporter's own credentials for this target.
    pub(crate) credentials: &'static [&'static str],
    /// Every `credential` label value its source may write.
    pub(crate) credential_kinds: &'static [&'static str],
    pub(crate) spec: Arc<Spec>,
}

impl Job {
    fn key(&self) -> Key {
        (self.collector, self.target.clone())
    }
}

/// The jobs a config asks for, built by each target's source.
pub(crate) fn jobs(config: &Config, metrics: &Arc<SelfMetrics>) -> Vec<Job> {
    let mut jobs = Vec::new();
    for t in &config.targets {
        let spec = Arc::new(Spec {
            target: t.clone(),
            timeout: config.global.timeout,
            ca_pem: None,
        });
        for j in sources::jobs(t, &config.global, metrics) {
            jobs.push(Job {
                collector: j.collector,
                target: t.name().to_string(),
                interval: j.interval,
                tls: j.tls,
                source: j.source,
                credentials: j.credentials,
                credential_kinds: j.credential_kinds,
                spec: spec.clone(),
            });
        }
    }
    jobs
}

/// Why a config cannot be applied; the running one stays.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("target {target:?}: {message}")]
    Tls { target: String, message: String },
    #[error(
        "the new configuration has no targets while {running} jobs run; an empty or \
         half-written file is refused on reload (restart the exporter to run without targets)"
    )]
    NoTargets { running: usize },
    #[error("reading the TLS files failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Builds each job with the client for its upstream's TLS settings. Reads CA files:
/// blocking, so call it off the async workers.
fn prepare(
    config: &Config,
    client: &Client,
    metrics: &Arc<SelfMetrics>,
) -> Result<Vec<(Job, Client)>, ApplyError> {
    let tls_error = |job: &Job, message: String| ApplyError::Tls {
        target: job.target.clone(),
        message,
    };
    jobs(config, metrics)
        .into_iter()
        .map(|mut job| {
            let c = client
                .with_tls(&job.target, &job.tls)
                .map_err(|e| tls_error(&job, e.to_string()))?
                .with_secrets(job.source.secrets());
            if let Some(path) = &job.tls.ca_file {
                let pem = std::fs::read(path)
                    .map_err(|e| tls_error(&job, format!("ca_file {}: {e}", path.display())))?;
                job.spec = Arc::new(Spec {
                    ca_pem: Some(pem),
                    ..(*job.spec).clone()
                });
            }
            Ok((job, c))
        })
        .collect()
}

/// [`prepare`] on a blocking thread.
async fn prepare_off_workers(
    config: &Config,
    client: Client,
    metrics: Arc<SelfMetrics>,
) -> Result<Vec<(Job, Client)>, ApplyError> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || prepare(&config, &client, &metrics)).await?
}

/// Lets every source release its upstream session, in parallel and bounded in time.
async fn shut_down_sources(stopped: Vec<(Job, Client)>) {
    let all = futures_util::future::join_all(
        stopped
            .iter()
            .map(|(job, client)| job.source.shutdown(client)),
    );
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, all).await;
}

struct Running {
    job: Job,
    client: Client,
    task: JoinHandle<()>,
}

/// What an applied config changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Jobs started: new targets and changed ones.
    pub started: usize,
    /// Jobs stopped: targets removed or changed (their sources log out).
    pub stopped: usize,
    /// Jobs left running untouched.
    pub kept: usize,
}

/// Owns the running tasks; `apply` swaps in a new config.
pub struct Scheduler {
    store: Arc<Store>,
    running: Vec<Running>,
    background: Vec<JoinHandle<()>>,
    /// Logouts of stopped sources still running, awaited at shutdown so none is cut short.
    stopping: Vec<JoinHandle<()>>,
}

impl Scheduler {
    pub fn start(store: Arc<Store>) -> Scheduler {
        let publisher = {
            let store = store.clone();
            tokio::spawn(async move {
                loop {
                    store.wait_samples_changed().await;
                    // A panic here would freeze the exposition for good; the next change
                    // gets another try.
                    if let Err(panic) = AssertUnwindSafe(store.publish()).catch_unwind().await {
                        tracing::error!(panic = %panic_message(&*panic), "publishing the snapshot panicked");
                    }
                }
            })
        };
        let sweeper = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(STALE_SWEEP);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    if let Err(panic) =
                        std::panic::catch_unwind(AssertUnwindSafe(|| store.sweep_stale()))
                    {
                        tracing::error!(panic = %panic_message(&*panic), "the stale sweep panicked");
                    }
                }
            })
        };
        Scheduler {
            store,
            running: Vec::new(),
            background: vec![publisher, sweeper],
            stopping: Vec::new(),
        }
    }

    /// Swaps in `config`'s jobs. Targets whose configuration is unchanged keep their tasks,
    /// schedule and upstream sessions; removed and changed targets are stopped and their
    /// sources log out; new and changed ones start. Samples of targets that stay are kept.
    /// On error nothing changes.
    pub async fn apply(&mut self, config: &Config, client: Client) -> Result<Applied, ApplyError> {
        let jobs = prepare_off_workers(config, client, self.store.metrics.clone()).await?;
        if jobs.is_empty() && !self.running.is_empty() {
            return Err(ApplyError::NoTargets {
                running: self.running.len(),
            });
        }
        let new_specs: HashMap<&str, &Arc<Spec>> = jobs
            .iter()
            .map(|(j, _)| (j.target.as_str(), &j.spec))
            .collect();
        let unchanged = |job: &Job| {
            new_specs
                .get(job.target.as_str())
                .is_some_and(|s| **s == job.spec)
        };
        // A target restarts as a whole (its jobs share credentials): when its config
        // changed, or when one of its tasks died, which any reload repairs.
        let restart: HashSet<String> = self
            .running
            .iter()
            .filter(|r| !unchanged(&r.job) || r.task.is_finished())
            .map(|r| r.job.target.clone())
            .collect();
        let (stopped, kept): (Vec<Running>, Vec<Running>) = self
            .running
            .drain(..)
            .partition(|r| restart.contains(&r.job.target));
        let kept_targets: Vec<String> = kept.iter().map(|r| r.job.target.clone()).collect();
        let stopped: Vec<(Job, Client)> = stopped
            .into_iter()
            .map(|r| {
                r.task.abort();
                (r.job, r.client)
            })
            .collect();
        let mut applied = Applied {
            stopped: stopped.len(),
            kept: kept.len(),
            ..Applied::default()
        };
        self.running = kept;
        self.stopping.retain(|t| !t.is_finished());
        if !stopped.is_empty() {
            self.stopping.push(tokio::spawn(shut_down_sources(stopped)));
        }

        self.store.set_stale_after(config.global.stale_after);
        let keys: Vec<Key> = jobs.iter().map(|(j, _)| j.key()).collect();
        self.store.retain(&keys);
        let starting: Vec<(Job, Client)> = jobs
            .into_iter()
            .filter(|(j, _)| !kept_targets.contains(&j.target))
            .collect();
        let n = starting.len() as u32;
        for (i, (job, client)) in (0u32..).zip(starting) {
            self.store.track(
                job.collector,
                &job.target,
                job.interval,
                job.source.note(),
                job.credential_kinds,
            );
            self.store.metrics.register_target(
                job.collector,
                &job.target,
                job.interval,
                job.credentials,
            );
            // Spread the first requests evenly over the start-up window; the first job starts
            // at once, so a single target is collected without delay.
            let delay = (job.interval / 10).min(START_SPREAD) * i / n.max(1);
            let task = spawn_job(self.store.clone(), client.clone(), job.clone(), delay);
            self.running.push(Running { job, client, task });
            applied.started += 1;
        }
        Ok(applied)
    }

    /// Stops every task and lets the sources log out of their upstreams.
    pub async fn shutdown(self) {
        for t in self.background {
            t.abort();
        }
        let stopped = self
            .running
            .into_iter()
            .map(|r| {
                r.task.abort();
                (r.job, r.client)
            })
            .collect();
        shut_down_sources(stopped).await;
        for t in self.stopping {
            let _ = t.await;
        }
    }
}

/// The message of a caught panic.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string())
}

/// Runs `job` in its own task. Panics in a collection are caught there; should the task
/// itself die, the store hears of it and `/-/healthy` fails.
fn spawn_job(store: Arc<Store>, client: Client, job: Job, delay: Duration) -> JoinHandle<()> {
    let key = job.key();
    supervise(store.clone(), key, run_job(store, client, job, delay))
}

fn supervise(
    store: Arc<Store>,
    key: Key,
    task: impl std::future::Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(panic) = AssertUnwindSafe(task).catch_unwind().await {
            tracing::error!(
                collector = key.0,
                target = %key.1,
                panic = %panic_message(&*panic),
                "collection task died; this target is no longer collected"
            );
            store.job_died(key);
        }
    })
}

async fn run_job(store: Arc<Store>, client: Client, job: Job, delay: Duration) {
    tokio::time::sleep(delay).await;
    loop {
        let started = Instant::now();
        // The collection's state (its source, the shared auth) stays usable after a panic:
        // each collection starts over from the configuration and the stored credentials.
        let attempt = match AssertUnwindSafe(collect_once(&client, &job))
            .catch_unwind()
            .await
        {
            Ok(result) => Attempt::Finished(result),
            Err(panic) => {
                let message = panic_message(&*panic);
                tracing::error!(
                    collector = job.collector,
                    target = %job.target,
                    panic = %message,
                    "collection panicked; counted as a failed collection, the job keeps its schedule"
                );
                Attempt::Panicked(message)
            }
        };
        let next = started + job.interval;
        let next_wall = SystemTime::now() + next.saturating_duration_since(Instant::now());
        store.record(
            job.collector,
            &job.target,
            attempt,
            started.elapsed(),
            next_wall,
        );
        tokio::time::sleep_until(next.into()).await;
    }
}

/// One collection, bounded by the longer of the interval and the request timeout.
pub(crate) async fn collect_once(client: &Client, job: &Job) -> Result<Collected, CollectError> {
    let limit = job.interval.max(client.policy().timeout);
    let ctx = RequestCtx {
        collector: job.collector,
        target: job.target.clone(),
        deadline: Instant::now() + limit,
    };
    match tokio::time::timeout(limit, job.source.collect(client, &ctx)).await {
        Ok(r) => r,
        Err(_) => Err(CollectError::Timeout(limit)),
    }
}

/// A failed job of `--once`: `collector/target` and the error.
pub(crate) type OnceFailure = (String, String);

/// Collects every job once, concurrently, for `--once`. Returns the failures.
pub async fn run_once(
    config: &Config,
    client: &Client,
    store: &Arc<Store>,
) -> Result<Vec<OnceFailure>, ApplyError> {
    let jobs = prepare_off_workers(config, client.clone(), store.metrics.clone()).await?;
    for (j, _) in &jobs {
        store.track(
            j.collector,
            &j.target,
            j.interval,
            j.source.note(),
            j.credential_kinds,
        );
        store
            .metrics
            .register_target(j.collector, &j.target, j.interval, j.credentials);
    }
    let results = futures_util::future::join_all(jobs.iter().map(|(j, c)| async move {
        let started = Instant::now();
        let attempt = match AssertUnwindSafe(collect_once(c, j)).catch_unwind().await {
            Ok(r) => Attempt::Finished(r),
            Err(panic) => Attempt::Panicked(panic_message(&*panic)),
        };
        (attempt, started.elapsed())
    }))
    .await;
    let mut failures = Vec::new();
    for ((job, _), (attempt, took)) in jobs.iter().zip(results) {
        let name = format!("{}/{}", job.collector, job.target);
        match &attempt {
            Attempt::Finished(Err(e)) => failures.push((name, e.to_string())),
            Attempt::Finished(Ok(c)) if !c.problems.is_empty() => {
                failures.push((name, c.problems.join("; ")))
            }
            Attempt::Finished(Ok(_)) => {}
            Attempt::Panicked(m) => failures.push((name, format!("collection panicked: {m}"))),
        }
        store.record(job.collector, &job.target, attempt, took, SystemTime::now());
    }
    shut_down_sources(jobs).await;
    store.publish().await;
    Ok(failures)
}

/// Builds the upstream client for a config.
pub fn client_for(config: &Config, metrics: Arc<SelfMetrics>) -> Result<Client, reqwest::Error> {
    let mut policy = Policy::new(config.global.timeout);
    let limits = &config.global.limits;
    policy.max_body_bytes = limits.max_body_bytes;
    policy.max_body_bytes_in_flight = limits.max_body_bytes_in_flight;
    policy.max_pages = limits.max_pages;
    policy.max_objects = limits.max_objects;
    Client::new(policy, metrics)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures_util::future::BoxFuture;

    use super::*;
    use crate::store::Health;

    /// Panics on every other collection, fails cleanly on the others.
    struct Panicky(AtomicUsize);

    impl Collect for Panicky {
        fn collect<'a>(
            &'a self,
            _client: &'a Client,
            _ctx: &'a RequestCtx,
        ) -> BoxFuture<'a, Result<Collected, CollectError>> {
            Box::pin(async move {
                if self.0.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) {
                    panic!("simulated bug in a collector");
                }
                Err(CollectError::Payload("no data".into()))
            })
        }
    }

    fn voss_config(interval: &str) -> Config {
        let text = format!(
            "voss:\n  - {{name: v1, base_url: 'http://127.0.0.1:1/', username: u, password: p, \
             hierarchy: sys, interval: {interval}}}\n"
        );
        Config::parse(&text, "test", std::path::Path::new("."), &|_| None).expect("valid")
    }

    async fn wait_for(what: &str, cond: impl Fn() -> bool) {
        let started = Instant::now();
        while !cond() {
            assert!(started.elapsed() < Duration::from_secs(10), "{what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_collection_is_counted_and_the_job_keeps_its_schedule() {
        let metrics = Arc::new(SelfMetrics::new());
        let store = Store::new(metrics.clone());
        let config = voss_config("1s");
        let client = client_for(&config, metrics.clone()).unwrap();
        let mut job = jobs(&config, &metrics).remove(0);
        job.interval = Duration::from_millis(30);
        job.source = Arc::new(Panicky(AtomicUsize::new(0)));
        store.track(
            job.collector,
            &job.target,
            job.interval,
            job.source.note(),
            job.credential_kinds,
        );
        let labels = crate::metrics::collector_labels(job.collector, &job.target);
        let task = spawn_job(store.clone(), client, job, Duration::ZERO);

        let collections = || metrics.collections.get_or_create(&labels).get();
        wait_for("six collections", || collections() >= 6).await;
        let panics = metrics.collector_panics.get_or_create(&labels).get();
        let failures = metrics.failures.get_or_create(&labels).get();
        assert!(panics >= 3, "{panics} panics");
        assert!(failures >= 6, "panics count as failures: {failures}");
        assert!(!task.is_finished());
        assert!(store.dead_jobs().is_empty());
        let status = &store.statuses()[0];
        assert_eq!(status.health, Health::Down);
        task.abort();
    }

    #[tokio::test]
    async fn a_task_that_dies_is_reported() {
        let store = Store::new(Arc::new(SelfMetrics::new()));
        let key: Key = ("c", "t".into());
        let task = supervise(store.clone(), key.clone(), async { panic!("outside") });
        task.await.unwrap();
        assert_eq!(store.dead_jobs(), [key]);
    }

    #[tokio::test]
    async fn a_reload_keeps_unchanged_targets_and_restarts_changed_ones() {
        let metrics = Arc::new(SelfMetrics::new());
        let store = Store::new(metrics.clone());
        let mut scheduler = Scheduler::start(store.clone());
        let config = voss_config("1h");
        let client = || client_for(&config, metrics.clone()).unwrap();
        let first = scheduler.apply(&config, client()).await.unwrap();
        assert_eq!((first.started, first.kept), (1, 0));
        let again = scheduler.apply(&voss_config("1h"), client()).await.unwrap();
        assert_eq!(
            again,
            Applied {
                started: 0,
                stopped: 0,
                kept: 1
            }
        );
        let changed = scheduler.apply(&voss_config("2h"), client()).await.unwrap();
        assert_eq!((changed.started, changed.stopped), (1, 1));
        // A task that ended (as a dead one does) is restarted by an unchanged reload.
        scheduler.running[0].task.abort();
        wait_for("the task ends", || scheduler.running[0].task.is_finished()).await;
        let repaired = scheduler.apply(&voss_config("2h"), client()).await.unwrap();
        assert_eq!((repaired.started, repaired.stopped), (1, 1));
        assert!(!scheduler.running[0].task.is_finished());
        let empty = Config::parse("", "test", std::path::Path::new("."), &|_| None).unwrap();
        let refused = scheduler.apply(&empty, client()).await.unwrap_err();
        assert!(refused.to_string().contains("no targets"), "{refused}");
        assert_eq!(scheduler.running.len(), 1);
        scheduler.shutdown().await;
    }
}
