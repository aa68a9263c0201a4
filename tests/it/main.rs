//! The integration tests, as one test binary (one link instead of one per file): the real
//! binary or server against the in-process simulator over sockets on 127.0.0.1, property
//! tests of the parsers, and the README's examples checked against the code.
//!
//! Run a part with a module path: `cargo test --locked --test it voss::`.
#![cfg(feature = "demo")] // they run the binary against the simulator

mod common;

mod commvault;
mod hostile;
mod integration;
mod off_origin;
mod onboarding;
mod parsers;
mod readme;
mod soak;
mod voss;
mod web_security;
mod webex_sources;
