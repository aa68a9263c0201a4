//! The state the HTTP server reads: each job's health and last good samples, the published
//! snapshot, and the stale sweep. Which jobs run, and when, is `scheduler`'s business.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::Notify;

use crate::lock;
use crate::metrics::{collector_labels, SelfMetrics};
use crate::snapshot::{SampleSet, Snapshot, TargetSamples};
use crate::sources::{CollectError, Collected};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Health {
    /// No attempt finished yet.
    Pending,
    Up,
    /// The last attempt failed; the last good samples are still served.
    Down,
    /// No success for `stale_after`: samples dropped.
    Stale,
}

impl Health {
    pub(crate) fn as_str(self) -> &'static str {
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
pub(crate) struct TargetStatus {
    pub(crate) collector: &'static str,
    pub(crate) target: String,
    pub(crate) interval: Duration,
    pub(crate) health: Health,
    pub(crate) last_success: Option<SystemTime>,
    pub(crate) last_duration: Option<Duration>,
    pub(crate) last_error: Option<String>,
    /// The source's standing remark about its setup, if any.
    pub(crate) note: Option<String>,
    pub(crate) next_run: Option<SystemTime>,
    pub(crate) objects: Option<usize>,
}

/// How one collection ended.
pub(crate) enum Attempt {
    Finished(Result<Collected, CollectError>),
    /// The collection panicked; the message of the panic.
    Panicked(String),
}

/// What a recorded attempt changed, so the caller knows whether to re-encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// New samples: the snapshot must be published again.
    Samples,
    /// Only health and status; the gauges were already updated.
    Status,
    /// The job is no longer tracked (its target left the config while it ran).
    Gone,
}

struct Entry {
    status: TargetStatus,
    samples: Option<Arc<dyn SampleSet>>,
    last_success_at: Option<Instant>,
    /// The `credential` label values the job's source may write.
    credential_kinds: &'static [&'static str],
}

impl Entry {
    fn pending(collector: &'static str, target: &str, interval: Duration) -> Entry {
        Entry {
            status: TargetStatus {
                collector,
                target: target.to_string(),
                interval,
                health: Health::Pending,
                last_success: None,
                last_duration: None,
                last_error: None,
                note: None,
                next_run: None,
                objects: None,
            },
            samples: None,
            last_success_at: None,
            credential_kinds: &[],
        }
    }
}

/// A job: its collector and target name.
pub(crate) type Key = (&'static str, String);

/// State shared by the collection tasks, the publisher and the HTTP server.
pub struct Store {
    pub metrics: Arc<SelfMetrics>,
    snapshot: ArcSwap<Snapshot>,
    entries: Mutex<BTreeMap<Key, Entry>>,
    stale_after: Mutex<Duration>,
    /// Signalled when samples changed and the snapshot must be encoded again.
    samples_changed: Notify,
    /// Jobs whose task ended by a panic outside a collection: nothing collects them any more.
    dead: Mutex<Vec<Key>>,
}

impl Store {
    pub fn new(metrics: Arc<SelfMetrics>) -> Arc<Store> {
        Arc::new(Store {
            metrics,
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            entries: Mutex::new(BTreeMap::new()),
            stale_after: Mutex::new(Duration::MAX),
            samples_changed: Notify::new(),
            dead: Mutex::new(Vec::new()),
        })
    }

    fn entries(&self) -> MutexGuard<'_, BTreeMap<Key, Entry>> {
        lock(&self.entries)
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    pub(crate) fn statuses(&self) -> Vec<TargetStatus> {
        self.entries().values().map(|e| e.status.clone()).collect()
    }

    /// The jobs whose task died; `/-/healthy` fails while there is one.
    pub(crate) fn dead_jobs(&self) -> Vec<Key> {
        lock(&self.dead).clone()
    }

    pub(crate) fn job_died(&self, key: Key) {
        lock(&self.dead).push(key);
    }

    pub(crate) fn set_stale_after(&self, d: Duration) {
        *lock(&self.stale_after) = d;
    }

    /// Starts tracking a job (pending until its first attempt), or updates its interval
    /// when its task starts again.
    pub(crate) fn track(
        &self,
        collector: &'static str,
        target: &str,
        interval: Duration,
        note: Option<String>,
        credential_kinds: &'static [&'static str],
    ) {
        lock(&self.dead).retain(|(c, t)| !(*c == collector && t == target));
        let mut entries = self.entries();
        let e = entries
            .entry((collector, target.to_string()))
            .or_insert_with(|| Entry::pending(collector, target, interval));
        e.status.interval = interval;
        e.status.note = note;
        e.credential_kinds = credential_kinds;
    }

    /// Forgets the jobs not in `keep`, and the series of their targets.
    pub(crate) fn retain(&self, keep: &[Key]) {
        let metrics = &self.metrics;
        let mut removed = false;
        self.entries().retain(|k, e| {
            let stays = keep.contains(k);
            if !stays {
                removed = true;
                metrics.remove_target(k.0, &k.1);
                if !keep.iter().any(|(_, t)| t == &k.1) {
                    metrics.remove_credentials(&k.1, e.credential_kinds);
                }
            }
            stays
        });
        lock(&self.dead).retain(|k| keep.contains(k));
        if removed {
            self.samples_changed.notify_one();
        }
    }

    /// Waits until samples changed since the last publish.
    pub(crate) async fn wait_samples_changed(&self) {
        self.samples_changed.notified().await;
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
    pub(crate) async fn publish(&self) {
        let sets = self.samples();
        let started = Instant::now();
        // Only the targets whose sample sets changed are encoded again; the rest reuse
        // the previous snapshot's compressed pieces.
        let previous = self.snapshot.load_full();
        let snapshot = match tokio::task::spawn_blocking(move || previous.update(sets)).await {
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
        let entries = self.entries();
        for e in entries.values() {
            self.set_health_gauges(&e.status);
        }
    }

    /// Sets a job's health gauges from its status. After a snapshot is swapped in, or when
    /// only the status changed, so a scrape never shows a gauge that disagrees with the
    /// samples beside it.
    fn set_health_gauges(&self, s: &TargetStatus) {
        if s.health == Health::Pending {
            return;
        }
        let m = &self.metrics;
        let labels = collector_labels(s.collector, &s.target);
        m.collector_success
            .get_or_create(&labels)
            .set(i64::from(s.health == Health::Up));
        m.collector_stale
            .get_or_create(&labels)
            .set(i64::from(s.health == Health::Stale));
        if let Some(t) = s.last_success {
            let unix = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
            m.last_success
                .get_or_create(&labels)
                .set(unix.as_secs_f64());
        }
    }

    /// Records how an attempt ended. New samples are published by the caller (see
    /// [`Change`]); a failure that keeps the old samples only updates the health gauges.
    pub(crate) fn record(
        &self,
        collector: &'static str,
        target: &str,
        attempt: Attempt,
        took: Duration,
        next_run: SystemTime,
    ) -> Change {
        let mut entries = self.entries();
        let Some(entry) = entries.get_mut(&(collector, target.to_string())) else {
            return Change::Gone;
        };
        let labels = collector_labels(collector, target);
        let m = &self.metrics;
        m.collections.get_or_create(&labels).inc();
        m.duration.get_or_create(&labels).set(took.as_secs_f64());
        let s = &mut entry.status;
        s.last_duration = Some(took);
        s.next_run = Some(next_run);
        let mut change = Change::Status;
        let failure = match attempt {
            Attempt::Finished(Ok(Collected { samples, problems })) => {
                s.objects = Some(samples.objects());
                entry.samples = Some(samples);
                change = Change::Samples;
                // Fresh data, even if partial, restarts the stale clock.
                entry.last_success_at = Some(Instant::now());
                if problems.is_empty() {
                    if s.health == Health::Down || s.health == Health::Stale {
                        tracing::info!(collector, target, "collection recovered");
                    }
                    s.health = Health::Up;
                    s.last_success = Some(SystemTime::now());
                    s.last_error = None;
                    tracing::debug!(
                        collector,
                        target,
                        objects = s.objects.unwrap_or_default(),
                        took_ms = took.as_millis() as u64,
                        "collection succeeded"
                    );
                    None
                } else {
                    Some(format!("partly failed: {}", problems.join("; ")))
                }
            }
            Attempt::Finished(Err(e)) => Some(e.to_string()),
            Attempt::Panicked(message) => {
                m.collector_panics.get_or_create(&labels).inc();
                Some(format!("collection panicked: {message}"))
            }
        };
        if let Some(message) = failure {
            tracing::warn!(collector, target, error = %message, "collection failed");
            m.failures.get_or_create(&labels).inc();
            if s.health != Health::Stale || entry.samples.is_some() {
                s.health = Health::Down;
            }
            s.last_error = Some(message);
        }
        if change == Change::Status {
            // The samples beside these gauges are the same as before: no re-encoding.
            self.set_health_gauges(&entry.status);
        } else {
            drop(entries);
            self.samples_changed.notify_one();
        }
        change
    }

    /// Drops the samples of targets without a success for `stale_after`.
    pub(crate) fn sweep_stale(&self) {
        let stale_after = *lock(&self.stale_after);
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
            self.samples_changed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{FamilyOf, Samples};

    #[derive(Debug)]
    struct Two;

    impl Samples for Two {
        const FAMILIES: &'static [FamilyOf<Self>] = &[];
        fn count(&self) -> usize {
            2
        }
    }

    fn store_with_job() -> Arc<Store> {
        let store = Store::new(Arc::new(SelfMetrics::new()));
        store.track("c", "t", Duration::from_secs(1), None, &[]);
        store
    }

    fn success() -> Attempt {
        Attempt::Finished(Ok(Collected::complete(Arc::new(Two))))
    }

    fn failure() -> Attempt {
        Attempt::Finished(Err(CollectError::Payload("bad".into())))
    }

    #[test]
    fn a_failure_that_keeps_the_samples_updates_gauges_without_a_publish() {
        let store = store_with_job();
        let now = SystemTime::now();
        assert_eq!(
            store.record("c", "t", success(), Duration::ZERO, now),
            Change::Samples
        );
        let success_gauge = |s: &Store| {
            s.metrics
                .collector_success
                .get_or_create(&collector_labels("c", "t"))
                .get()
        };
        assert_eq!(
            store.record("c", "t", failure(), Duration::ZERO, now),
            Change::Status
        );
        // Set at once, not by a later publish.
        assert_eq!(success_gauge(&store), 0);
        let st = &store.statuses()[0];
        assert_eq!((st.health, st.objects), (Health::Down, Some(2)));
        assert_eq!(
            store.record(
                "c",
                "t",
                Attempt::Panicked("boom".into()),
                Duration::ZERO,
                now
            ),
            Change::Status
        );
        let text = store.metrics.encode();
        assert!(
            text.contains(
                "tenant_exporter_collector_panics_total{collector=\"c\",target=\"t\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "tenant_exporter_collection_failures_total{collector=\"c\",target=\"t\"} 2\n"
            ),
            "{text}"
        );
        assert_eq!(
            store.record("c", "gone", failure(), Duration::ZERO, now),
            Change::Gone
        );
    }

    #[test]
    fn a_removed_target_loses_the_credential_series_its_source_declares() {
        let store = Store::new(Arc::new(SelfMetrics::new()));
        let kinds: &'static [&'static str] = &["session_token", "access_token"];
        store.track("c", "gone", Duration::from_secs(1), None, kinds);
        store.track("c", "stays", Duration::from_secs(1), None, kinds);
        let series = |target: &str, kind: &str| crate::metrics::credential_labels(target, kind);
        for t in ["gone", "stays"] {
            for k in kinds {
                store
                    .metrics
                    .credential_expiry
                    .get_or_create(&series(t, k))
                    .set(1.0);
            }
        }
        let encoded = || store.metrics.encode();
        assert!(encoded().contains(r#"target="gone",credential="access_token""#));
        store.retain(&[("c", "stays".to_string())]);
        let after = encoded();
        for k in kinds {
            assert!(
                !after.contains(&format!(r#"target="gone",credential="{k}""#)),
                "{after}"
            );
            assert!(
                after.contains(&format!(r#"target="stays",credential="{k}""#)),
                "{after}"
            );
        }
    }
}
