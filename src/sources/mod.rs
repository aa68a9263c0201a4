//! Upstream sources. Each owns its payload types, its auth and its conversion to samples,
//! and knows nothing about HTTP serving.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::config::{Global, Target, TlsConfig};
use crate::metrics::SelfMetrics;
use crate::snapshot::SampleSet;
use crate::upstream::{Client, RequestCtx, UpstreamError};

pub mod commvault;
pub mod families;
pub mod lenient;
pub(crate) mod token_file;
pub mod voss;
pub mod webex;

#[derive(Debug, thiserror::Error)]
pub(crate) enum CollectError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("{0}")]
    Payload(String),
    #[error("{0}")]
    Credential(String),
    #[error("collection did not finish within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
}

/// The HELP text of a source's family: what it is, and that the value is cached.
macro_rules! help {
    ($api:literal, $text:literal) => {
        concat!(
            $text,
            " Cached from the ",
            $api,
            " API; refreshed every collection interval."
        )
    };
}
pub(crate) use help;

/// The result of a collection that produced samples.
pub(crate) struct Collected {
    pub(crate) samples: Arc<dyn SampleSet>,
    /// Parts that failed while the rest succeeded (one admin, one organization). When not
    /// empty, the samples are published but the collection counts as failed.
    pub(crate) problems: Vec<String>,
}

impl Collected {
    pub(crate) fn complete(samples: Arc<dyn SampleSet>) -> Collected {
        Collected {
            samples,
            problems: Vec::new(),
        }
    }
}

/// One collector polling one target.
pub(crate) trait Collect: Send + Sync + 'static {
    fn collect<'a>(
        &'a self,
        client: &'a Client,
        ctx: &'a RequestCtx,
    ) -> BoxFuture<'a, Result<Collected, CollectError>>;

    /// The target's configured secrets (passwords, tokens, client secrets): the client blanks
    /// them from every upstream error text, whichever request it answers.
    fn secrets(&self) -> Vec<String> {
        Vec::new()
    }

    /// A standing remark for the landing page about how this target is set up (a credential
    /// that will expire on its own, for instance).
    fn note(&self) -> Option<String> {
        None
    }

    /// Releases upstream sessions when the target stops being collected.
    fn shutdown<'a>(&'a self, _client: &'a Client) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// One collector polling one target, as its source builds it.
pub(crate) struct Job {
    pub(crate) collector: &'static str,
    pub(crate) interval: Duration,
    pub(crate) tls: TlsConfig,
    pub(crate) source: Arc<dyn Collect>,
    /// The `credential` label values of the exporter's own credentials for this target; their
    /// counters start at 0.
    pub(crate) credentials: &'static [&'static str],
    /// Every `credential` label value the source may write (its `CREDENTIALS`): the series
    /// dropped when the target leaves the config.
    pub(crate) credential_kinds: &'static [&'static str],
}

/// The jobs of one target, built by its source.
pub(crate) fn jobs(target: &Target, global: &Global, metrics: &Arc<SelfMetrics>) -> Vec<Job> {
    match target {
        Target::Webex(t) => webex::jobs(t, global, metrics),
        Target::Voss(t) => voss::jobs(t),
        Target::Commvault(t) => commvault::jobs(t, metrics),
    }
}

/// Why a page or an answer from upstream could not be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// The collection received more objects than `limits.max_objects` allows.
    #[error("more than {0} objects in one collection (limits.max_objects)")]
    TooManyObjects(usize),
    /// The body is not what the API documents; the text says what and where.
    #[error("{0}")]
    Unreadable(String),
}

impl From<String> for PayloadError {
    fn from(what: String) -> Self {
        PayloadError::Unreadable(what)
    }
}

impl From<&str> for PayloadError {
    fn from(what: &str) -> Self {
        PayloadError::Unreadable(what.to_string())
    }
}

/// Counts the objects (items, readable or not) one collection has received against
/// `limits.max_objects`, so an upstream that never stops sending cannot grow memory without
/// bound.
#[derive(Debug, Clone)]
pub struct Objects {
    max: usize,
    seen: usize,
}

impl Objects {
    pub fn new(max: usize) -> Objects {
        Objects { max, seen: 0 }
    }

    /// Counts one more object; an error naming the limit once it is passed.
    pub(crate) fn take(&mut self) -> Result<(), PayloadError> {
        self.seen += 1;
        if self.seen > self.max {
            Err(PayloadError::TooManyObjects(self.max))
        } else {
            Ok(())
        }
    }
}

/// `base` joined with `path`, whether or not `base` ends in a slash.
pub(crate) fn endpoint(base: &url::Url, path: &str) -> url::Url {
    let mut url = base.clone();
    let joined = format!("{}/{}", base.path().trim_end_matches('/'), path);
    url.set_path(&joined);
    url.set_query(None);
    url
}

/// Parses an RFC 3339 timestamp such as `2021-04-07T15:26:40.704911Z` or
/// `2021-04-07T17:26:40+02:00` into Unix seconds. Absurd dates (before 1970 or after 9999)
/// are unknown rather than an overflow.
pub fn parse_timestamp(s: &str) -> Option<f64> {
    let s = s.trim().as_bytes();
    let digits = |from: usize, n: usize| -> Option<u32> {
        let part = s.get(from..from + n)?;
        part.iter().try_fold(0u32, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
        })
    };
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    if s.get(4) != Some(&b'-') || s.get(7) != Some(&b'-') {
        return None;
    }
    if !matches!(s.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    if s.get(13) != Some(&b':') || s.get(16) != Some(&b':') {
        return None;
    }
    let mut i = 19;
    let mut fraction = 0.0;
    if s.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        // At most nanoseconds matter; more digits are read but not used.
        let used = &s[start..i.min(start + 9)];
        let n = used
            .iter()
            .fold(0u64, |acc, &b| acc * 10 + u64::from(b - b'0'));
        fraction = n as f64 / 10f64.powi(used.len() as i32);
    }
    let offset: i64 = match s.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (digits(i + 1, 2)?, digits(i + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let o = i64::from(h * 3600 + m * 60);
            if *sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month)
        || day == 0
        || day > month_days[month as usize - 1]
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if month <= 2 {
        (i64::from(year) - 1, month + 9)
    } else {
        (i64::from(year), month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * i64::from(m) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs =
        days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second.min(59))
            - offset;
    (secs >= 0).then_some(secs as f64 + fraction)
}

/// Helpers for the sources' unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use crate::snapshot::{Family, SampleSet, Snapshot, TargetSamples};

    /// The text exposition of one target's samples.
    pub(crate) fn exposition_of(
        collector: &'static str,
        target: &str,
        samples: Arc<dyn SampleSet>,
    ) -> String {
        Snapshot::encode(vec![TargetSamples {
            collector,
            target: target.into(),
            samples,
        }])
        .text()
    }

    /// The sample lines only, without HELP and TYPE.
    pub(crate) fn samples(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    /// The sample lines that start with `prefix`.
    pub(crate) fn samples_starting<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        samples(text)
            .into_iter()
            .filter(|l| l.starts_with(prefix))
            .collect()
    }

    /// Every family is described once with its type, with a HELP that says the values are
    /// cached.
    pub(crate) fn assert_cached_gauges(text: &str, families: &[Family]) {
        assert_cached_families(text, families, |_| true);
    }

    /// Every selected family is described once with its type (counter for `_total` names)
    /// and a HELP that says the values are cached; the others are absent.
    pub(crate) fn assert_cached_families(
        text: &str,
        families: &[Family],
        selected: impl Fn(usize) -> bool,
    ) {
        for (i, f) in families.iter().enumerate() {
            let kind = if f.is_counter() { "counter" } else { "gauge" };
            let described = text
                .lines()
                .filter(|l| l.starts_with(&format!("# TYPE {} ", f.metric_name())))
                .collect::<Vec<_>>();
            if selected(i) {
                assert_eq!(
                    described,
                    [format!("# TYPE {} {kind}", f.metric_name())],
                    "{}",
                    f.name
                );
            } else {
                assert!(described.is_empty(), "{} is not selected", f.name);
                assert!(!text.contains(&format!("\n{}{{", f.name)), "{}", f.name);
            }
            assert!(f.help.contains("Cached"), "{}", f.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::{families, jobs, parse_timestamp};
    use crate::config::{Config, Target};
    use crate::metrics::SelfMetrics;

    /// One target of every source. A new `Target` variant stops the match below from
    /// compiling until its section is added to the config here; the test then checks that
    /// the source's collectors declare their families.
    #[test]
    fn every_source_builds_jobs_whose_collectors_declare_their_families() {
        let text = "webex:\n  - {name: w, access_token: t, broadworks_enterprises: {}, \
                    managed_orgs: {admins: [{name: a, person_id: p}]}}\n\
                    voss:\n  - {name: v, base_url: 'https://v', username: u, password: p, hierarchy: h}\n\
                    commvault:\n  - {name: c, base_url: 'https://c', username: u, password: p}\n";
        let config = Config::parse(text, "t.yml", Path::new("/nonexistent"), &|_| None).unwrap();
        let metrics = Arc::new(SelfMetrics::new());
        let declared: Vec<&str> = families::tables().iter().map(|(c, _)| *c).collect();
        let mut seen = [false; 3];
        for t in &config.targets {
            let i = match t {
                Target::Webex(_) => 0,
                Target::Voss(_) => 1,
                Target::Commvault(_) => 2,
            };
            seen[i] = true;
            let built = jobs(t, &config.global, &metrics);
            assert!(!built.is_empty(), "{} has no job", t.name());
            for job in built {
                assert!(
                    declared.contains(&job.collector),
                    "collector {} has no entry in families::tables()",
                    job.collector
                );
            }
        }
        assert_eq!(seen, [true; 3], "a source has no target in the test config");
    }

    #[test]
    fn timestamps() {
        assert_eq!(
            parse_timestamp("2021-04-07T15:26:40.704911Z"),
            Some(1617809200.704911)
        );
        assert_eq!(parse_timestamp("2021-04-07T15:26:40Z"), Some(1617809200.0));
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp(""), None);
        assert_eq!(parse_timestamp("2021-13-40T99:26:40Z"), None);
        assert_eq!(
            parse_timestamp("2021-04-07T17:26:40+02:00"),
            Some(1617809200.0)
        );
        assert_eq!(
            parse_timestamp("2021-04-07T10:26:40.5-05:00"),
            Some(1617809200.5)
        );
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_timestamp("2024-02-29T00:00:00Z"), Some(1709164800.0));
        assert_eq!(parse_timestamp("2023-02-29T00:00:00Z"), None);
        assert_eq!(parse_timestamp("1969-12-31T23:59:59Z"), None);
        assert_eq!(parse_timestamp("2021-04-07T15:26:40"), None);
        assert_eq!(parse_timestamp("2021-04-07T15:26:40+2:00"), None);
        assert_eq!(parse_timestamp("2021-04-07T15:26:40.Z"), None);
        assert_eq!(
            parse_timestamp("9999-12-31T23:59:59.999999999999Z").map(|t| t > 2.5e11),
            Some(true)
        );
    }
}
