//! A project's dependencies asked of its own build backend (PEP 517), when
//! only running its code can tell them (a setup.py that computes them,
//! `dynamic` metadata): the engine runs the backend in the runtime's base
//! with no network (`sdist::run_offline`), never the host, and pip's report
//! of the metadata says the requirements (`core::layout::backend`).

use crate::core::desired::BuildInput;
use crate::core::layout::backend::{metadata_dockerfile, report_requirements, REPORT_DIR};
use crate::core::recipe::Deps;

use super::{BuildError, Context};
use crate::core::pip::PipTarget;
use crate::shell::engine::Engine;
use crate::shell::settings::Settings;

/// The dependencies of the package `package` as its build backend reports
/// them, with the version's extras; `file` computes them.
pub async fn python_deps(
    engine: &dyn Engine,
    project: &str,
    input: &BuildInput,
    package: &Context,
    file: &str,
    arch: &str,
    settings: &Settings,
) -> Result<Deps, BuildError> {
    let invalid = |message: String, help: String| BuildError::RecipeInvalid {
        id: input.id.clone(),
        package: input.package.clone(),
        message,
        help,
    };
    let pyproject = package
        .inline("pyproject.toml")
        .map(|b| String::from_utf8_lossy(b).to_string());
    let mut files = Context::default();
    files.nest("project", package);
    let target = PipTarget::of(input, arch);
    // The report is kept by the package's content and the Python, less its
    // Python sources other than setup.py: dependencies come from setup.py
    // and the files it reads (a requirements file), so an unchanged package
    // or a code-only change is not asked again (seconds, not a build).
    let mut keyed = package.clone();
    keyed.retain(|p| !p.ends_with(".py") || p == "setup.py");
    let key = &keyed.hash()[..16];
    let kept = settings
        .state_dir
        .join("wheels")
        .join("backend")
        .join(format!("{key}-py{}.json", target.python));
    if let Ok(report) = std::fs::read_to_string(&kept) {
        return deps_of(&report, input, file).map_err(|e| invalid(e.message, e.help));
    }
    let scratch = kept.with_extension("partial");
    let _ = std::fs::remove_dir_all(&scratch);
    crate::say::info(&format!(
        "  {}: {file} computes its dependencies: asking the project's build backend, with no network",
        input.id
    ));
    let run = super::sdist::OfflineRun {
        what: "metadata",
        shown: file,
        requires: crate::core::sdist::build_requires(pyproject.as_deref()),
        files,
        dockerfile: &metadata_dockerfile,
        out_dir: REPORT_DIR,
    };
    let ran =
        super::sdist::run_offline(engine, settings, project, input, &target, &scratch, run).await;
    let _ = std::fs::remove_dir_all(&scratch);
    let said = ran.map_err(|f| {
        invalid(
            format!("{file} computes its dependencies, and the project's build backend could not say them:\n{}", f.message),
            match f.compiler {
                Some(line) => format!("its metadata needs a compiler (`{line}`), and a base image has none: list the dependencies in requirements.txt or `[project] dependencies`"),
                None => "fix the build (its last lines are above), or list the dependencies in requirements.txt or `[project] dependencies`".into(),
            },
        )
    })?;
    let report = said
        .iter()
        .find(|(name, _)| name == "report.json")
        .map(|(_, data)| String::from_utf8_lossy(data).to_string())
        .ok_or_else(|| {
            invalid(
                format!("{file}: the build backend's run left no report"),
                "list the dependencies in requirements.txt or `[project] dependencies`".into(),
            )
        })?;
    let deps = deps_of(&report, input, file).map_err(|e| invalid(e.message, e.help))?;
    // Written whole or not at all.
    let partial = kept.with_extension("json.partial");
    let written = std::fs::create_dir_all(kept.parent().expect("a file in a directory"))
        .and_then(|()| std::fs::write(&partial, &report))
        .and_then(|()| std::fs::rename(&partial, &kept));
    if let Err(e) = written {
        tracing::debug!(error = %e, "the build backend's report is not kept");
    }
    Ok(deps)
}

fn deps_of(
    report: &str,
    input: &BuildInput,
    file: &str,
) -> Result<Deps, crate::core::recipe::RecipeError> {
    let lines = report_requirements(report, &input.extras)?;
    if lines.is_empty() {
        return Ok(Deps::None);
    }
    Ok(Deps::Python {
        requirements: lines.join("\n") + "\n",
        from: format!("{file}, through the project's build backend"),
    })
}
