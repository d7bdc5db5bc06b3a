//! berth's functional core: pure values and functions, no I/O.
//!
//! The shell gathers facts (the file's text, what the engine holds, the host's
//! GPUs) and hands them in as values; the core decides (validated spec, desired
//! state with hashes, a plan with a reason per step, rendered text) and hands
//! values back. Its dependencies do no I/O, and clippy.toml beside Cargo.toml
//! forbids std::fs, std::env, std::process, std::net, the clocks and the standard
//! streams here; `.ci/run` runs clippy on this crate with `-D warnings`.
#![forbid(unsafe_code)]
#![deny(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::dbg_macro
)]

pub mod access;
pub mod active;
pub mod assemble;
pub mod audit;
pub mod credential;
pub mod desired;
pub mod diag;
pub mod entry;
pub mod fields;
pub mod gpu;
pub mod hash;
pub mod health;
pub mod layout;
pub mod manifest;
pub mod notice;
pub mod observed;
pub mod pip;
pub mod placement;
pub mod plan;
pub mod projects;
pub mod recipe;
pub mod redact;
pub mod render;
pub mod report;
pub mod restart;
pub mod retain;
pub mod role;
pub mod rollback;
pub mod route;
pub mod sdist;
pub mod spec;
pub mod steps;
pub mod timeline;
pub mod usage;
pub mod webhook;
