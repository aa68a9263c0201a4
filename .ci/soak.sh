#!/usr/bin/env bash
# A bounded soak (at most about two minutes once built): the real binary against the
# simulator with random faults, 64 concurrent scrapers and a reload every few seconds.
# Fails on any panic, any unanswered scrape, or peak RSS over the budget (tests/it/soak.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
export SOAK_SECONDS="${SOAK_SECONDS:-60}"
cargo test --locked --test it --no-run
timeout 120 cargo test --locked --test it soak:: -- --ignored --nocapture
