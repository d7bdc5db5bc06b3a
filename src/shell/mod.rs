//! The imperative shell: one module per outside system. Each gathers facts for the
//! core or carries out one kind of action; none of them decides what to do.

pub mod api;
pub mod asset;
pub mod backend;
pub mod baseimage;
pub mod build;
pub mod context;
pub mod digests;
pub mod engine;
pub mod forward;
pub mod gateway;
pub mod git;
pub mod gpu;
pub mod host;
pub mod layer;
pub mod listen;
pub mod lock;
pub mod memory;
pub mod package;
pub mod probe;
pub mod sdist;
pub mod settings;
pub mod source;
pub mod state;
pub mod ui;
pub mod watch;
pub mod wheels;
