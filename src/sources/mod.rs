//! Upstream sources. Each owns its payload types, its auth and its conversion to samples,
//! and knows nothing about HTTP serving.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::snapshot::SampleSet;
use crate::upstream::{Client, RequestCtx, UpstreamError};

pub mod commvault;
pub mod families;
pub mod lenient;
pub mod voss;
pub mod webex;

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
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
pub struct Collected {
    pub samples: Arc<dyn SampleSet>,
    /// Parts that failed while the rest succeeded (one admin, one organization). When not
    /// empty, the samples are published but the collection counts as failed.
    pub problems: Vec<String>,
}

impl Collected {
    pub fn complete(samples: Arc<dyn SampleSet>) -> Collected {
        Collected {
            samples,
            problems: Vec::new(),
        }
    }
}

/// One collector polling one target.
pub trait Collect: Send + Sync + 'static {
    fn collect<'a>(
        &'a self,
        client: &'a Client,
        ctx: &'a RequestCtx,
    ) -> BoxFuture<'a, Result<Collected, CollectError>>;

    /// Releases upstream sessions when the target stops being collected.
    fn shutdown<'a>(&'a self, _client: &'a Client) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// `base` joined with `path`, whether or not `base` ends in a slash.
pub fn endpoint(base: &url::Url, path: &str) -> url::Url {
    let mut url = base.clone();
    let joined = format!("{}/{}", base.path().trim_end_matches('/'), path);
    url.set_path(&joined);
    url.set_query(None);
    url
}

/// Parses an ISO 8601 / RFC 3339 UTC timestamp such as `2021-04-07T15:26:40.704911Z` into
/// Unix seconds.
pub fn parse_timestamp(s: &str) -> Option<f64> {
    let t = humantime::parse_rfc3339(s.trim()).ok()?;
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs_f64())
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
    use super::parse_timestamp;

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
    }
}
