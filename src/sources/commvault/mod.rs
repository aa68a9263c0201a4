//! Commvault sources.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::config::CommvaultTarget;
use crate::metrics::SelfMetrics;
use crate::sources::{Collect, CollectError, Collected};
use crate::upstream::{Client, RequestCtx};

pub const COLLECTOR: &str = "commvault_organizations";

struct Pending;

impl Collect for Pending {
    fn collect<'a>(
        &'a self,
        _: &'a Client,
        _: &'a RequestCtx,
    ) -> BoxFuture<'a, Result<Collected, CollectError>> {
        Box::pin(async {
            Err(CollectError::Payload(
                "Commvault collector under construction".into(),
            ))
        })
    }
}

/// The organizations collector for one Commvault target.
pub fn collector(_target: &CommvaultTarget, _metrics: Arc<SelfMetrics>) -> Arc<dyn Collect> {
    Arc::new(Pending)
}
