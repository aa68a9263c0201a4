//! Runs one task per (collector, target) on its interval, keeps each target's last good
//! samples, drops them when stale, and republishes the snapshot when anything changed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::metrics::{collector_labels, SelfMetrics};
use crate::snapshot::{SampleSet, Snapshot, TargetSamples};
use crate::sources::webex::broadworks::{self, Broadworks};
use crate::sources::webex::WebexAuth;
use crate::sources::{Collect, CollectError};
use crate::upstream::{Client, Policy, RequestCtx};

/// Start-up jitter spreads the first requests of many targets without delaying readiness.
const MAX_START_JITTER: Duration = Duration::from_millis(250);
/// How often stale samples are looked for.
const STALE_SWEEP: Duration = Duration::from_secs(1);

/// One collector polling one target.
#[derive(Clone)]
pub struct Job {
    pub collector: &'static str,
    pub target: String,
    pub interval: Duration,
    pub source: Arc<dyn Collect>,
}

/// The jobs a config asks for.
pub fn jobs(config: &Config) -> Vec<Job> {
    let mut jobs = Vec::new();
    for w in &config.webex {
        if let Some(b) = &w.broadworks {
            jobs.push(Job {
                collector: broadworks::COLLECTOR,
                target: w.name.clone(),
                interval: b.interval,
                source: Arc::new(Broadworks {
                    base_url: w.base_url.clone(),
                    auth: WebexAuth::bearer(w.access_token.clone()),
                    config: b.clone(),
                }),
            });
        }
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
        let snapshot = match tokio::task::spawn_blocking(move || Snapshot::encode(sets)).await {
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
        self.published.notify_waiters();
    }

    fn record(
        &self,
        job: &Job,
        result: Result<Arc<dyn SampleSet>, CollectError>,
        took: Duration,
        next_run: SystemTime,
    ) {
        let labels = collector_labels(job.collector, &job.target);
        let m = &self.metrics;
        m.collections.get_or_create(&labels).inc();
        m.duration.get_or_create(&labels).set(took.as_secs_f64());
        let mut entries = self.entries();
        let Some(entry) = entries.get_mut(&(job.collector, job.target.clone())) else {
            // The target left the config while this collection ran.
            return;
        };
        let s = &mut entry.status;
        s.last_duration = Some(took);
        s.next_run = Some(next_run);
        match result {
            Ok(samples) => {
                if s.health == Health::Down || s.health == Health::Stale {
                    tracing::info!(collector = job.collector, target = %job.target, "collection recovered");
                }
                let now = SystemTime::now();
                s.health = Health::Up;
                s.last_success = Some(now);
                s.last_error = None;
                s.objects = Some(samples.objects());
                tracing::debug!(
                    collector = job.collector,
                    target = %job.target,
                    objects = samples.objects(),
                    took_ms = took.as_millis() as u64,
                    "collection succeeded"
                );
                entry.samples = Some(samples);
                entry.last_success_at = Some(Instant::now());
                m.collector_success.get_or_create(&labels).set(1);
                m.collector_stale.get_or_create(&labels).set(0);
                let unix = now
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default();
                m.last_success
                    .get_or_create(&labels)
                    .set(unix.as_secs_f64());
            }
            Err(e) => {
                let message = e.to_string();
                tracing::warn!(collector = job.collector, target = %job.target, error = %message, "collection failed");
                m.failures.get_or_create(&labels).inc();
                m.collector_success.get_or_create(&labels).set(0);
                if s.health != Health::Stale {
                    s.health = Health::Down;
                }
                s.last_error = Some(message);
            }
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
                self.metrics
                    .collector_stale
                    .get_or_create(&collector_labels(collector, target))
                    .set(1);
                dropped = true;
            }
        }
        if dropped {
            self.changed.notify_one();
        }
    }
}

/// Owns the running tasks; `apply` swaps in a new config.
pub struct Scheduler {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
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
            tasks: Vec::new(),
            background: vec![publisher, sweeper],
        }
    }

    /// Replaces the running jobs with `config`'s. Samples of targets that stay are kept;
    /// those of targets that left are dropped.
    pub fn apply(&mut self, config: &Config, client: Client) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        let jobs = jobs(config);
        *self
            .shared
            .stale_after
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = config.global.stale_after;
        {
            let mut entries = self.shared.entries();
            let keep: Vec<Key> = jobs
                .iter()
                .map(|j| (j.collector, j.target.clone()))
                .collect();
            entries.retain(|k, _| {
                let stays = keep.contains(k);
                if !stays {
                    self.shared.metrics.remove_target(k.0, &k.1);
                }
                stays
            });
            for j in &jobs {
                entries
                    .entry((j.collector, j.target.clone()))
                    .or_insert_with(|| Entry {
                        status: TargetStatus {
                            collector: j.collector,
                            target: j.target.clone(),
                            interval: j.interval,
                            health: Health::Pending,
                            last_success: None,
                            last_duration: None,
                            last_error: None,
                            next_run: None,
                            objects: None,
                        },
                        samples: None,
                        last_success_at: None,
                    });
                if let Some(e) = entries.get_mut(&(j.collector, j.target.clone())) {
                    e.status.interval = j.interval;
                }
            }
        }
        self.shared.changed.notify_one();
        for job in jobs {
            self.tasks.push(tokio::spawn(run_job(
                self.shared.clone(),
                client.clone(),
                job,
            )));
        }
    }

    pub fn shutdown(self) {
        for t in self.tasks.into_iter().chain(self.background) {
            t.abort();
        }
    }
}

async fn run_job(shared: Arc<Shared>, client: Client, job: Job) {
    let jitter = (job.interval / 10)
        .min(MAX_START_JITTER)
        .mul_f64(fastrand::f64());
    tokio::time::sleep(jitter).await;
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
pub async fn collect_once(client: &Client, job: &Job) -> Result<Arc<dyn SampleSet>, CollectError> {
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

/// Collects every job once, concurrently, for `--once`. Returns the snapshot and the
/// failures.
pub async fn run_once(
    config: &Config,
    client: &Client,
    shared: &Arc<Shared>,
) -> Vec<(String, String)> {
    let jobs = jobs(config);
    {
        let mut entries = shared.entries();
        for j in &jobs {
            entries.insert(
                (j.collector, j.target.clone()),
                Entry {
                    status: TargetStatus {
                        collector: j.collector,
                        target: j.target.clone(),
                        interval: j.interval,
                        health: Health::Pending,
                        last_success: None,
                        last_duration: None,
                        last_error: None,
                        next_run: None,
                        objects: None,
                    },
                    samples: None,
                    last_success_at: None,
                },
            );
        }
    }
    let results = futures_util::future::join_all(jobs.iter().map(|j| async move {
        let started = Instant::now();
        (j, collect_once(client, j).await, started.elapsed())
    }))
    .await;
    let mut failures = Vec::new();
    for (job, result, took) in results {
        if let Err(e) = &result {
            failures.push((format!("{}/{}", job.collector, job.target), e.to_string()));
        }
        shared.record(job, result, took, SystemTime::now());
    }
    shared.publish().await;
    failures
}

/// Builds the upstream client for a config.
pub fn client_for(config: &Config, metrics: Arc<SelfMetrics>) -> Result<Client, reqwest::Error> {
    Client::new(Policy::new(config.global.timeout), metrics)
}
