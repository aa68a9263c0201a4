//! VOSS Automate sources.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::config::VossTarget;
use crate::sources::{Collect, CollectError, Collected};
use crate::upstream::{Client, RequestCtx};

pub const COLLECTOR: &str = "voss_spark_customers";

struct Pending;

impl Collect for Pending {
    fn collect<'a>(
        &'a self,
        _: &'a Client,
        _: &'a RequestCtx,
    ) -> BoxFuture<'a, Result<Collected, CollectError>> {
        Box::pin(async {
            Err(CollectError::Payload(
                "VOSS collector under construction".into(),
            ))
        })
    }
}

/// The SparkCustomer collector for one VOSS target.
pub fn collector(_target: &VossTarget) -> Arc<dyn Collect> {
    Arc::new(Pending)
}
