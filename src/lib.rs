//! berth: a declarative reconciler for services on one Docker engine.
//!
//! `core` is pure (spec, hashing, planning, rendering); `shell` talks to the outside
//! (engine, files, GPUs); `app` wires them into the commands of `cli`.

pub mod app;
pub mod cli;
pub mod core;
pub mod daemon;
pub mod shell;
