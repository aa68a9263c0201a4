//! tenant-exporter: a Prometheus exporter for multi-tenant Cisco Webex, VOSS Automate and
//! Commvault estates. `main.rs` wires config → scheduler → snapshot → server.
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod logging;
pub mod metrics;
pub mod oauth_login;
pub mod probe;
pub mod scheduler;
pub mod server;
// The unit tests of the sources run against the simulator whatever the features.
#[cfg(any(feature = "demo", test))]
pub mod simulator;
pub mod snapshot;
pub mod sources;
pub mod store;
pub mod upstream;
pub mod web;

pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");
pub(crate) const REVISION: &str = env!("TENANT_EXPORTER_REVISION");
/// Whether this build has `--demo` and the simulator (the default-on cargo feature `demo`).
pub(crate) const DEMO_BUILT_IN: bool = cfg!(feature = "demo");

/// Locks `m`, recovering from poisoning. Every lock in the exporter guards data that stays
/// usable after a panic elsewhere (a map, a counter, a cache), and losing all of it would
/// hurt more than a half-made update.
pub(crate) fn lock<T: ?Sized>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
