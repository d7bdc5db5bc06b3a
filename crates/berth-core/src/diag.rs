//! Diagnostics: one user-facing problem each, with where it is and how to fix it.
//!
//! Validation collects every diagnostic before reporting (as cargo-deny does), so a
//! user fixes a file in one pass instead of one error per run.

use std::fmt;

/// A position in the spec file, 1-based as editors show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

/// `line:column`, as a second position in a message names it.
impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

impl From<serde_saphyr::Location> for Pos {
    fn from(l: serde_saphyr::Location) -> Self {
        Pos {
            line: l.line(),
            column: l.column(),
        }
    }
}

/// One problem a user can fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Its stable code (`S014`: an area's letter and a number), listed in
    /// docs/contract.md; a code is never reused for another problem.
    pub code: &'static str,
    /// What is wrong, lowercase, naming the service (and version) it concerns.
    pub message: String,
    /// Where in the file; `None` when the problem is not tied to one place.
    pub pos: Option<Pos>,
    /// How to fix it.
    pub help: String,
}

impl Diagnostic {
    pub fn new(
        code: &'static str,
        pos: Option<Pos>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Self {
        Diagnostic {
            code,
            message: message.into(),
            pos,
            help: help.into(),
        }
    }

    /// The two-line form: what and where first (with the code), then how to
    /// fix it.
    pub fn render(&self, file: &str) -> String {
        let place = match self.pos {
            Some(p) => format!("{file}:{}:{}", p.line, p.column),
            None => file.to_string(),
        };
        format!(
            "{place}: {} [{}]\n  help: {}",
            self.message, self.code, self.help
        )
    }
}

/// Every diagnostic of one file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics {
    pub file: String,
    pub items: Vec<Diagnostic>,
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.items.iter().enumerate() {
            if i > 0 {
                f.write_str("\nerror: ")?;
            }
            f.write_str(&d.render(&self.file))?;
        }
        if self.items.len() > 1 {
            write!(
                f,
                "\n{} problems in {}; nothing was changed",
                self.items.len(),
                self.file
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}
