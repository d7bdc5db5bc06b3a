//! The imperative shell: one module per outside system. Each gathers facts for the
//! core or carries out one kind of action; none of them decides what to do.

pub mod asset;
pub mod engine;
pub mod git;
pub mod gpu;
pub mod host;
pub mod lock;
pub mod memory;
pub mod notices;
pub mod probe;
pub mod sealed;
pub mod settings;
pub mod source;
pub mod state;
pub mod watch;
