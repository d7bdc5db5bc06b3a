//! The one-of settings of a version: its source (`image` or `package`), its
//! runtime, its machine class and its scope, each checked where it is written.

use super::validate::{pick, Validator};
use super::*;

impl Validator {
    /// Exactly one of `image` and `package`.
    pub(super) fn source(
        &mut self,
        id: &str,
        pos: Pos,
        s: &RawService,
        v: &RawVersion,
    ) -> Option<Source> {
        match (pick(&v.image, &s.image), pick(&v.package, &s.package)) {
            (Some(i), None) => {
                if i.value.trim().is_empty() {
                    self.err(
                        "S022",
                        Pos::from(i.referenced),
                        format!("{id}: `image` is empty"),
                        "name an image, for example `berth-local/busybox:stable`",
                    );
                }
                Some(Source::Image(i.value.clone()))
            }
            (None, Some(p)) => Some(Source::Package(p.value.clone())),
            (Some(i), Some(_)) => {
                self.err(
                    "S023",
                    Pos::from(i.referenced),
                    format!("{id} sets both `image` and `package`"),
                    "keep exactly one: `image` to run a ready image, `package` to build from code",
                );
                None
            }
            (None, None) => {
                self.err("S024",
                    pos,
                    format!("{id} has neither `image` nor `package`"),
                    "add `image: REFERENCE` to run a ready image, or `package: PATH` to build from code",
                );
                None
            }
        }
    }

    /// A known runtime, named exactly when the version builds from a package.
    pub(super) fn runtime(
        &mut self,
        id: &str,
        pos: Pos,
        s: &RawService,
        v: &RawVersion,
        source: Option<&Source>,
    ) -> Option<Runtime> {
        let runtime = match pick(&v.runtime, &s.runtime) {
            None => None,
            Some(r) => match parse_named(&Runtime::ALL, Runtime::name, &r.value) {
                Some(rt) => Some(rt),
                None => {
                    self.err(
                        "S025",
                        Pos::from(r.referenced),
                        format!("{id}: unknown runtime `{}`", r.value),
                        format!("use one of {}", list_names(&Runtime::ALL, Runtime::name)),
                    );
                    None
                }
            },
        };
        match (source, runtime, pick(&v.runtime, &s.runtime)) {
            (Some(Source::Package(_)), None, None) => self.err(
                "S026",
                pos,
                format!("{id} builds from a package but names no `runtime`"),
                format!(
                    "add `runtime:` with one of {}",
                    list_names(&Runtime::ALL, Runtime::name)
                ),
            ),
            (Some(Source::Image(_)), _, Some(r)) => self.err(
                "S027",
                Pos::from(r.referenced),
                format!(
                    "{id}: `runtime` applies only to code packages, and this version runs an image"
                ),
                "remove `runtime`, or replace `image` with `package`",
            ),
            _ => {}
        }
        runtime
    }

    /// A known machine class (default small).
    pub(super) fn machine(&mut self, id: &str, s: &RawService, v: &RawVersion) -> Machine {
        match pick(&v.machine, &s.machine) {
            None => Machine::Small,
            Some(m) => parse_named(&Machine::ALL, Machine::name, &m.value).unwrap_or_else(|| {
                self.err(
                    "S028",
                    Pos::from(m.referenced),
                    format!("{id}: unknown machine class `{}`", m.value),
                    format!("use one of {}", list_names(&Machine::ALL, Machine::name)),
                );
                Machine::Small
            }),
        }
    }

    /// `global` or a valid database name.
    pub(super) fn scope(&mut self, id: &str, s: &RawService, v: &RawVersion) -> Scope {
        match pick(&v.scope, &s.scope) {
            None => Scope::Global,
            Some(sc) => match &sc.value {
                RawScope::Named(n) if n == "global" => Scope::Global,
                RawScope::Database(d) if is_valid_name(&d.database) => {
                    Scope::Database(d.database.clone())
                }
                RawScope::Database(d) => {
                    self.err(
                        "S029",
                        Pos::from(sc.referenced),
                        format!("{id}: database name `{}` is not valid", d.database),
                        "use a lowercase letter, then up to 31 lowercase letters, digits or dashes",
                    );
                    Scope::Global
                }
                RawScope::Named(n) => {
                    self.err("S030",
                        Pos::from(sc.referenced),
                        format!("{id}: unknown scope `{n}`"),
                        "write `scope: global`, or `scope: { database: NAME }` to bind the service to one database",
                    );
                    Scope::Global
                }
            },
        }
    }

    /// A version's `extras` and `vendored`, which only some packages take.
    pub(super) fn packaging(
        &mut self,
        id: &str,
        pos: Pos,
        s: &RawService,
        v: &RawVersion,
        source: Option<&Source>,
        runtime: Option<Runtime>,
    ) -> (Vec<String>, bool) {
        let extras = pick(&v.extras, &s.extras).cloned().unwrap_or_default();
        if !extras.is_empty() && matches!(source, Some(Source::Image(_))) {
            self.err(
                "S009",
                pos,
                format!("{id}: `extras` applies only to code packages"),
                "remove `extras`, or build from a `package`",
            );
        }

        let vendored = pick(&v.vendored, &s.vendored);
        if let Some(flag) = vendored.filter(|f| f.value) {
            let at = Pos::from(flag.referenced);
            match (source, runtime) {
            (Some(Source::Image(_)), _) => self.err("S010",
                at,
                format!("{id}: `vendored` applies only to code packages"),
                "remove `vendored`, or build from a `package`",
            ),
            (_, Some(r)) if r.python().is_some() => self.err("S011",
                at,
                format!("{id}: `vendored` applies to Node packages, and runtime `{}` is Python", r.name()),
                "remove `vendored`: berth installs Python dependencies from wheels it resolves at plan time",
            ),
            _ => {}
        }
        }
        let vendored = vendored.is_some_and(|f| f.value);
        (extras, vendored)
    }
}
