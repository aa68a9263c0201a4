//! Runs one task per (collector, target) on its interval, keeps each target's last good
//! samples, drops them when stale, and republishes the snapshot when anything changed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::config::{Config, TlsConfig};
use crate::metrics::{collector_labels, SelfMetrics};
use crate::snapshot::{SampleSet, Snapshot, TargetSamples};
use crate::sources::families::select;
use crate::sources::webex::broadworks::{self, Broadworks};
use crate::sources::webex::managed_orgs::{self, ManagedOrgs};
use crate::sources::webex::WebexAuth;
use crate::sources::{commvault, voss, Collect, CollectError, Collected};
use crate::upstream::{Client, Policy, RequestCtx};

/// The first requests of many jobs are spread over this window, short enough not to delay
/// readiness.
const START_SPREAD: Duration = Duration::from_millis(250);
/// How often stale samples are looked for.
const STALE_SWEEP: Duration = Duration::from_secs(1);

/// One collector polling one target.
#[derive(Clone)]
pub struct Job {
    pub collector: &'static str,
    pub target: String,
    pub interval: Duration,
    pub tls: TlsConfig,
    pub source: Arc<dyn Collect>,
}

/// The jobs a config asks for. Collectors of the same Webex target share its credentials,
/// so an OAuth refresh token is rotated by one owner.
pub fn jobs(config: &Config, metrics: &Arc<SelfMetrics>) -> Vec<Job> {
    let mut jobs = Vec::new();
    for w in &config.webex {
        let auth = Arc::new(WebexAuth::new(
            &w.name,
            &w.base_url,
            &w.credentials,
            metrics.clone(),
        ));
        if let Some(b) = &w.broadworks {
            jobs.push(Job {
                collector: broadworks::COLLECTOR,
                target: w.name.clone(),
                interval: b.interval,
                tls: TlsConfig::default(),
                source: select(
                    Arc::new(Broadworks::new(w.base_url.clone(), auth.clone(), b.clone())),
                    &w.metrics,
                ),
            });
        }
        if let Some(m) = &w.managed_orgs {
            jobs.push(Job {
                collector: managed_orgs::COLLECTOR,
                target: w.name.clone(),
                interval: m.interval,
                tls: TlsConfig::default(),
                source: select(
                    Arc::new(ManagedOrgs::new(
                        w.base_url.clone(),
                        auth.clone(),
                        m.admins.clone(),
                    )),
                    &w.metrics,
                ),
            });
        }
    }
    for v in &config.voss {
        jobs.push(Job {
            collector: voss::COLLECTOR,
            target: v.name.clone(),
            interval: v.interval,
            tls: v.tls.clone(),
            source: select(voss::collector(v), &v.metrics),
        });
    }
    for c in &config.commvault {
        jobs.push(Job {
            collector: commvault::COLLECTOR,
            target: c.name.clone(),
            interval: c.interval,
            tls: c.tls.clone(),
            source: select(commvault::collector(c, metrics.clone()), &c.metrics),
        });
    }
    jobs
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// No attempt finished yet.
    Pending,
    Up,
    /// The last attempt failed; the last good samples are still served.
    Down,
    /// No success for `stale_after`: samples dropped.
    Stale,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Pending => "pending",
            Health::Up => "up",
            Health::Down => "down",
            Health::Stale => "stale",
        }
    }
}

/// What the landing page shows of a target.
#[derive(Debug, Clone)]
pub struct TargetStatus {
    pub collector: &'static str,
    pub target: String,
    pub interval: Duration,
    pub health: Health,
    pub last_success: Option<SystemTime>,
    pub last_duration: Option<Duration>,
    pub last_error: Option<String>,
    pub next_run: Option<SystemTime>,
    pub objects: Option<usize>,
}

struct Entry {
    status: TargetStatus,
    samples: Option<Arc<dyn SampleSet>>,
    last_success_at: Option<Instant>,
}

type Key = (&'static str, String);

/// State shared by the collection tasks, the publisher and the HTTP server.
pub struct Shared {
    pub metrics: Arc<SelfMetrics>,
    snapshot: ArcSwap<Snapshot>,
    entries: Mutex<BTreeMap<Key, Entry>>,
    stale_after: Mutex<Duration>,
    changed: Notify,
    published: Notify,
}

impl Shared {
    pub fn new(metrics: Arc<SelfMetrics>) -> Arc<Shared> {
        Arc::new(Shared {
            metrics,
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            entries: Mutex::new(BTreeMap::new()),
            stale_after: Mutex::new(Duration::MAX),
            changed: Notify::new(),
            published: Notify::new(),
        })
    }

    fn entries(&self) -> MutexGuard<'_, BTreeMap<Key, Entry>> {
        // A panic while holding the lock cannot leave an entry half-written in a way that
        // matters more than losing every metric, so keep going with the data.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Every target has finished its first attempt.
    pub fn ready(&self) -> bool {
        self.entries()
            .values()
            .all(|e| e.status.health != Health::Pending)
    }

    pub fn statuses(&self) -> Vec<TargetStatus> {
        self.entries().values().map(|e| e.status.clone()).collect()
    }

    /// Waits until a snapshot newer than the call has been published.
    pub async fn wait_published(&self) {
        self.published.notified().await;
    }

    fn samples(&self) -> Vec<TargetSamples> {
        self.entries()
            .iter()
            .filter_map(|((collector, target), e)| {
                e.samples.as_ref().map(|s| TargetSamples {
                    collector,
                    target: target.clone(),
                    samples: s.clone(),
                })
            })
            .collect()
    }

    /// Encodes and swaps in a new snapshot of the current samples.
    pub async fn publish(self: &Arc<Self>) {
        let sets = self.samples();
        let started = Instant::now();
        let capacity = self.snapshot.load().compressed_len() * 21 / 20;
        let snapshot =
            match tokio::task::spawn_blocking(move || Snapshot::encode_sized(sets, capacity)).await
            {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "encoding the snapshot failed");
                    return;
                }
            };
        tracing::debug!(
            text_bytes = snapshot.text_len(),
            gzip_bytes = snapshot.compressed_len(),
            took_ms = started.elapsed().as_millis() as u64,
            "published snapshot"
        );
        self.snapshot.store(Arc::new(snapshot));
        self.sync_health_gauges();
        self.published.notify_waiters();
    }

    /// Sets the health gauges from the targets' state. Called right after a snapshot is
    /// swapped in, so a scrape never shows a gauge that disagrees with the samples beside it.
    fn sync_health_gauges(&self) {
        let m = &self.metrics;
        for ((collector, target), e) in self.entries().iter() {
            if e.status.health == Health::Pending {
                continue;
            }
            let labels = collector_labels(collector, target);
            m.collector_success
                .get_or_create(&labels)
                .set(i64::from(e.status.health == Health::Up));
            m.collector_stale
                .get_or_create(&labels)
                .set(i64::from(e.status.health == Health::Stale));
            if let Some(t) = e.status.last_success {
                let unix = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
                m.last_success
                    .get_or_create(&labels)
                    .set(unix.as_secs_f64());
            }
        }
    }

    fn record(
        &self,
        job: &Job,
        result: Result<Collected, CollectError>,
        took: Duration,
        next_run: SystemTime,
    ) {
        let mut entries = self.entries();
        let Some(entry) = entries.get_mut(&(job.collector, job.target.clone())) else {
            // The target left the config while this collection ran.
            return;
        };
        let labels = collector_labels(job.collector, &job.target);
        let m = &self.metrics;
        m.collections.get_or_create(&labels).inc();
        m.duration.get_or_create(&labels).set(took.as_secs_f64());
        let s = &mut entry.status;
        s.last_duration = Some(took);
        s.next_run = Some(next_run);
        let failure = match result {
            Ok(Collected { samples, problems }) => {
                s.objects = Some(samples.objects());
                entry.samples = Some(samples);
                // Fresh data, even if partial, restarts the stale clock.
                entry.last_success_at = Some(Instant::now());
                if problems.is_empty() {
                    if s.health == Health::Down || s.health == Health::Stale {
                        tracing::info!(collector = job.collector, target = %job.target, "collection recovered");
                    }
                    s.health = Health::Up;
                    s.last_success = Some(SystemTime::now());
                    s.last_error = None;
                    tracing::debug!(
                        collector = job.collector,
                        target = %job.target,
                        objects = s.objects.unwrap_or_default(),
                        took_ms = took.as_millis() as u64,
                        "collection succeeded"
                    );
                    None
                } else {
                    Some(format!("partly failed: {}", problems.join("; ")))
                }
            }
            Err(e) => Some(e.to_string()),
        };
        if let Some(message) = failure {
            tracing::warn!(collector = job.collector, target = %job.target, error = %message, "collection failed");
            m.failures.get_or_create(&labels).inc();
            if s.health != Health::Stale || entry.samples.is_some() {
                s.health = Health::Down;
            }
            s.last_error = Some(message);
        }
        drop(entries);
        self.changed.notify_one();
    }

    /// Drops the samples of targets without a success for `stale_after`.
    fn sweep_stale(&self) {
        let stale_after = *self.stale_after.lock().unwrap_or_else(|e| e.into_inner());
        let mut dropped = false;
        for ((collector, target), e) in self.entries().iter_mut() {
            if e.samples.is_some()
                && e.last_success_at
                    .is_some_and(|t| t.elapsed() >= stale_after)
            {
                tracing::warn!(collector, target = %target, "no successful collection within stale_after; dropping samples");
                e.samples = None;
                e.status.health = Health::Stale;
                dropped = true;
            }
        }
        if dropped {
            self.changed.notify_one();
        }
    }
}

impl Entry {
    fn pending(job: &Job) -> Entry {
        Entry {
            status: TargetStatus {
                collector: job.collector,
                target: job.target.clone(),
                interval: job.interval,
                health: Health::Pending,
                last_success: None,
                last_duration: None,
                last_error: None,
                next_run: None,
                objects: None,
            },
            samples: None,
            last_success_at: None,
        }
    }
}

/// Longest wait for an upstream logout when a target stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

struct Running {
    job: Job,
    client: Client,
    task: JoinHandle<()>,
}

/// Builds each job with the client for its upstream's TLS settings.
fn prepare(
    config: &Config,
    client: &Client,
    metrics: &Arc<SelfMetrics>,
) -> Result<Vec<(Job, Client)>, String> {
    jobs(config, metrics)
        .into_iter()
        .map(|job| {
            let c = client
                .with_tls(&job.target, &job.tls)
                .map_err(|e| format!("target {:?}: {e}", job.target))?;
            Ok((job, c))
        })
        .collect()
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

/// Owns the running tasks; `apply` swaps in a new config.
pub struct Scheduler {
    shared: Arc<Shared>,
    running: Vec<Running>,
    background: Vec<JoinHandle<()>>,
}

impl Scheduler {
    pub fn start(shared: Arc<Shared>) -> Scheduler {
        let publisher = {
            let shared = shared.clone();
            tokio::spawn(async move {
                loop {
                    shared.changed.notified().await;
                    shared.publish().await;
                }
            })
        };
        let sweeper = {
            let shared = shared.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(STALE_SWEEP);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    shared.sweep_stale();
                }
            })
        };
        Scheduler {
            shared,
            running: Vec::new(),
            background: vec![publisher, sweeper],
        }
    }

    /// Replaces the running jobs with `config`'s. Samples of targets that stay are kept;
    /// those of targets that left are dropped. On error nothing changes.
    pub fn apply(&mut self, config: &Config, client: Client) -> Result<(), String> {
        let jobs = prepare(config, &client, &self.shared.metrics)?;
        let stopped: Vec<(Job, Client)> = self
            .running
            .drain(..)
            .map(|r| {
                r.task.abort();
                (r.job, r.client)
            })
            .collect();
        tokio::spawn(shut_down_sources(stopped));
        *self
            .shared
            .stale_after
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = config.global.stale_after;
        {
            let mut entries = self.shared.entries();
            let keep: Vec<Key> = jobs
                .iter()
                .map(|(j, _)| (j.collector, j.target.clone()))
                .collect();
            let metrics = &self.shared.metrics;
            entries.retain(|k, _| {
                let stays = keep.contains(k);
                if !stays {
                    metrics.remove_target(k.0, &k.1);
                    if !keep.iter().any(|(_, t)| t == &k.1) {
                        metrics.remove_credentials(&k.1);
                    }
                }
                stays
            });
            for (j, _) in &jobs {
                let e = entries
                    .entry((j.collector, j.target.clone()))
                    .or_insert_with(|| Entry::pending(j));
                e.status.interval = j.interval;
                metrics.register_target(j.collector, &j.target, j.interval);
            }
        }
        self.shared.changed.notify_one();
        let n = jobs.len() as u32;
        for (i, (job, client)) in (0u32..).zip(jobs) {
            // Spread the first requests evenly over the start-up window; the first job starts
            // at once, so a single target is collected without delay.
            let delay = (job.interval / 10).min(START_SPREAD) * i / n.max(1);
            let task = tokio::spawn(run_job(
                self.shared.clone(),
                client.clone(),
                job.clone(),
                delay,
            ));
            self.running.push(Running { job, client, task });
        }
        Ok(())
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
    }
}

async fn run_job(shared: Arc<Shared>, client: Client, job: Job, delay: Duration) {
    tokio::time::sleep(delay).await;
    loop {
        let started = Instant::now();
        let result = collect_once(&client, &job).await;
        let next = started + job.interval;
        let next_wall = SystemTime::now() + next.saturating_duration_since(Instant::now());
        shared.record(&job, result, started.elapsed(), next_wall);
        tokio::time::sleep_until(next.into()).await;
    }
}

/// One collection, bounded by the longer of the interval and the request timeout.
pub async fn collect_once(client: &Client, job: &Job) -> Result<Collected, CollectError> {
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

/// Collects every job once, concurrently, for `--once`. Returns the failures, each as
/// `collector/target` and the error.
pub async fn run_once(
    config: &Config,
    client: &Client,
    shared: &Arc<Shared>,
) -> Result<Vec<(String, String)>, String> {
    let jobs = prepare(config, client, &shared.metrics)?;
    {
        let mut entries = shared.entries();
        for (j, _) in &jobs {
            entries.insert((j.collector, j.target.clone()), Entry::pending(j));
            shared
                .metrics
                .register_target(j.collector, &j.target, j.interval);
        }
    }
    let results = futures_util::future::join_all(jobs.iter().map(|(j, c)| async move {
        let started = Instant::now();
        (collect_once(c, j).await, started.elapsed())
    }))
    .await;
    let mut failures = Vec::new();
    for ((job, _), (result, took)) in jobs.iter().zip(results) {
        match &result {
            Err(e) => failures.push((format!("{}/{}", job.collector, job.target), e.to_string())),
            Ok(c) if !c.problems.is_empty() => failures.push((
                format!("{}/{}", job.collector, job.target),
                c.problems.join("; "),
            )),
            Ok(_) => {}
        }
        shared.record(job, result, took, SystemTime::now());
    }
    shut_down_sources(jobs).await;
    shared.publish().await;
    Ok(failures)
}

/// Builds the upstream client for a config.
pub fn client_for(config: &Config, metrics: Arc<SelfMetrics>) -> Result<Client, reqwest::Error> {
    Client::new(Policy::new(config.global.timeout), metrics)
}
