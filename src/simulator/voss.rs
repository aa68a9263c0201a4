//! The fake VOSS Automate API.

use std::sync::Arc;

use axum::Router;

use super::SimState;

#[derive(Debug, Clone, Default)]
pub struct VossOptions {}

#[derive(Default)]
pub(crate) struct VossState {}

pub(super) fn routes() -> Router<Arc<SimState>> {
    Router::new()
}
