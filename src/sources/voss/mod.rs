//! VOSS Automate sources.

use std::sync::Arc;

use crate::snapshot::{SampleSet as _, Table};
use crate::sources::families::select;
use crate::sources::{Collect, Job};

pub(crate) mod config;
pub mod spark_customers;

use config::VossTarget;

pub(crate) const COLLECTOR: &str = "voss_spark_customers";
/// The `credential` label values of this source's self-metrics: none, a VOSS login is a
/// password sent with every request.
pub(crate) const CREDENTIALS: &[&str] = &[];

/// The SparkCustomer collector for one VOSS target.
pub(crate) fn collector(target: &VossTarget) -> Arc<dyn Collect> {
    Arc::new(spark_customers::SparkCustomers::new(target))
}

/// This source's metric families, by collector.
pub(crate) fn families() -> [(&'static str, Table); 1] {
    [(
        COLLECTOR,
        spark_customers::SparkCustomerSet::default().families(),
    )]
}

/// A VOSS target's one job.
pub(crate) fn jobs(t: &VossTarget) -> Vec<Job> {
    vec![Job {
        collector: COLLECTOR,
        interval: t.interval,
        tls: t.tls.clone(),
        source: select(collector(t), &t.metrics),
        credentials: &[],
        credential_kinds: CREDENTIALS,
    }]
}
