//! `berth package DIR`: a deterministic .tar.gz code package (same content, same bytes).

use crate::cli::PackageArgs;
use std::path::PathBuf;

use crate::build::BuildError;

use super::CommandError;

pub fn run(args: PackageArgs) -> Result<u8, CommandError> {
    let (dir, out) = (args.dir.as_path(), args.out);
    let out = out.unwrap_or_else(|| {
        let name = dir
            .canonicalize()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().to_string()));
        PathBuf::from(format!(
            "{}.tar.gz",
            name.unwrap_or_else(|| "package".into())
        ))
    });
    let (ctx, size) = crate::build::package::package_dir(dir, &out).map_err(BuildError::from)?;
    println!(
        "{}: {} files, {size} bytes, content {}",
        out.display(),
        ctx.len(),
        crate::core::plan::short(&ctx.hash())
    );
    Ok(0)
}
