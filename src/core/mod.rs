//! The functional core: pure values and functions, no I/O.
//!
//! Nothing here may import tokio, bollard, git2, notify, nvml or `std::fs`
//! (tests/architecture.rs checks it): the shell gathers facts, the core decides.

pub mod access;
pub mod desired;
pub mod diag;
pub mod gpu;
pub mod hash;
pub mod plan;
pub mod recipe;
pub mod render;
pub mod route;
pub mod spec;
