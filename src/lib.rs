//! berth: a declarative reconciler for services on a Docker engine.
//!
//! `core` (its own crate) is pure: spec, hashing, planning, rendering. `shell`
//! talks to the outside world, one module per system (the engines under
//! `shell::engine`); `build` turns code packages into images; `serve` is
//! berth's own HTTP servers (gateway, API, dashboard). `converge` is the one
//! path from a file to a converged engine, used by `commands` (one module per
//! command) and the `daemon` alike; `cli` only parses.

/// The functional core, its own crate (`crates/berth-core`): `berth::core::...`.
pub use berth_core as core;

pub mod build;
pub mod cli;
pub mod commands;
pub mod converge;
pub mod daemon;
pub mod say;
pub mod serve;
pub mod shell;
