//! The fake Commvault web service.

use std::sync::Arc;

use axum::Router;

use super::SimState;

#[derive(Debug, Clone, Default)]
pub struct CommvaultOptions {}

#[derive(Default)]
pub(crate) struct CommvaultState {}

pub(super) fn routes() -> Router<Arc<SimState>> {
    Router::new()
}
