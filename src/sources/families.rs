//! Metric family selection: `metrics: {enable: [...], disable: [...]}` in the config, like
//! kube-state-metrics' allow and deny lists. Defaults suit a large estate: per-enterprise
//! detail that the dashboards only sum per target is opt-in.

use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use prometheus_client::encoding::MetricEncoder;

use crate::snapshot::{SampleSet, Table};
use crate::sources::webex::broadworks;
use crate::sources::{commvault, voss, webex, Collect, CollectError, Collected};
use crate::upstream::{Client, RequestCtx};

/// Every source's families, by collector: the names a `metrics:` list may use.
pub(crate) fn tables() -> Vec<(&'static str, Table)> {
    [
        &webex::families()[..],
        &voss::families()[..],
        &commvault::families()[..],
    ]
    .concat()
}

/// The collector exposing the family `name`, if any.
pub(crate) fn collector_of(name: &str) -> Option<&'static str> {
    tables()
        .into_iter()
        .find(|(_, families)| families.iter().any(|f| f.name == name))
        .map(|(collector, _)| collector)
}

/// Whether a family is exposed when the config says nothing about it.
pub(crate) fn enabled_by_default(name: &str) -> bool {
    !broadworks::OPT_IN.contains(&name)
}

/// A target's family selection: the defaults, then the global `metrics:` lists, then the
/// target's own, a later list winning over an earlier one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FamilySelection {
    /// (family, enabled), in the order they apply.
    overrides: Vec<(String, bool)>,
}

impl FamilySelection {
    pub fn new(overrides: Vec<(String, bool)>) -> Self {
        FamilySelection { overrides }
    }

    pub(crate) fn selects(&self, name: &str) -> bool {
        self.overrides
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map_or_else(|| enabled_by_default(name), |(_, on)| *on)
    }

    fn mask(&self, families: Table) -> Vec<bool> {
        families.iter().map(|f| self.selects(f.name)).collect()
    }
}

/// A sample set with the target's selection applied.
#[derive(Debug)]
pub struct Selected {
    inner: Arc<dyn SampleSet>,
    mask: Vec<bool>,
}

impl Selected {
    pub fn new(inner: Arc<dyn SampleSet>, selection: &FamilySelection) -> Selected {
        let mask = selection.mask(inner.families());
        Selected { inner, mask }
    }
}

impl SampleSet for Selected {
    fn families(&self) -> Table {
        self.inner.families()
    }

    fn encode(&self, family: usize, target: &str, enc: &mut MetricEncoder<'_>) -> fmt::Result {
        self.inner.encode(family, target, enc)
    }

    fn objects(&self) -> usize {
        self.inner.objects()
    }

    fn enabled(&self, family: usize) -> bool {
        self.mask.get(family).copied().unwrap_or(false)
    }
}

/// A collector whose results carry the target's family selection.
struct SelectFamilies {
    inner: Arc<dyn Collect>,
    selection: FamilySelection,
}

impl Collect for SelectFamilies {
    fn collect<'a>(
        &'a self,
        client: &'a Client,
        ctx: &'a RequestCtx,
    ) -> BoxFuture<'a, Result<Collected, CollectError>> {
        Box::pin(async move {
            let mut c = self.inner.collect(client, ctx).await?;
            c.samples = Arc::new(Selected::new(c.samples.clone(), &self.selection));
            Ok(c)
        })
    }

    fn shutdown<'a>(&'a self, client: &'a Client) -> BoxFuture<'a, ()> {
        self.inner.shutdown(client)
    }

    fn secrets(&self) -> Vec<String> {
        self.inner.secrets()
    }

    fn note(&self) -> Option<String> {
        self.inner.note()
    }
}

/// `inner`, exposing the families `selection` selects.
pub(crate) fn select(inner: Arc<dyn Collect>, selection: &FamilySelection) -> Arc<dyn Collect> {
    Arc::new(SelectFamilies {
        inner,
        selection: selection.clone(),
    })
}

#[cfg(test)]
mod tests;
