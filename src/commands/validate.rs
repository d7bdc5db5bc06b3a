//! `berth validate`: parse and check the file; prints nothing but errors.

use std::path::Path;

use super::{CommandError, Output};

pub fn run(out: &Output, file: &Path) -> Result<u8, CommandError> {
    let spec = crate::converge::load(&out.settings, file)?;
    crate::converge::packages_exist(&spec, file)?;
    Ok(0)
}
