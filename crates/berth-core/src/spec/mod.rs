//! The services.yaml file: the catalog of machine classes and runtimes, the raw
//! serde/schemars types, the validated model, and validation from one to the
//! other.
//!
//! Parsing keeps line/column positions ([`Spanned`]) for everything validation may
//! complain about; validation collects every problem, then yields a typed [`Spec`]
//! in which every rule of docs/contract.md section 1 already holds.

mod catalog;
mod choices;
mod cluster;
mod explain;
mod gate;
mod model;
mod mounts;
mod raw;
mod validate;
mod values;

use std::collections::{BTreeMap, BTreeSet};

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::diag::{Diagnostic, Diagnostics, Pos};

pub use catalog::*;
pub use model::*;
pub use raw::*;
pub use validate::*;
pub use values::{ENV_TOTAL_MAX, ENV_VALUE_MAX};
