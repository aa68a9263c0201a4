//! VOSS Automate sources.

use std::sync::Arc;

use crate::config::VossTarget;
use crate::sources::Collect;

pub mod spark_customers;

pub const COLLECTOR: &str = "voss_spark_customers";

/// The SparkCustomer collector for one VOSS target.
pub fn collector(target: &VossTarget) -> Arc<dyn Collect> {
    Arc::new(spark_customers::SparkCustomers::new(target))
}
