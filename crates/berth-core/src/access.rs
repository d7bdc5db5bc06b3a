//! Access rules for the gateway and the daemon's API: tokens (stored as SHA-256
//! hashes, never in clear) with permissions, modelled on the platform berth
//! replaces. Pure: the token file's text comes in, a decision comes out.
//!
//! ```yaml
//! tokens:
//!   - name: deployer
//!     sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//!     permissions: [services:view, services:deploy]
//!   - name: shop-team
//!     sha256: 60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752
//!     permissions: [services:view, services:deploy@shop, logs:view@shop]
//! ```
//!
//! A grant `PERMISSION@PROJECT` holds in that project alone (one daemon may
//! follow several, `watch --projects`); a bare one holds in every project.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::diag::{Diagnostic, Diagnostics, Pos};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Permission {
    /// Read `/status` and `/metrics`, and call private services through the gateway.
    #[serde(rename = "services:view")]
    ServicesView,
    /// Ask for a reconcile (`POST /reconcile`) or a rollback (`POST /rollback/SERVICE`).
    #[serde(rename = "services:deploy")]
    ServicesDeploy,
    /// Stop a service's containers (`POST /stop/SERVICE`).
    #[serde(rename = "services:stop")]
    ServicesStop,
    /// Read a service's logs (`GET /logs/SERVICE`).
    #[serde(rename = "logs:view")]
    LogsView,
    /// Build images (`POST /build`).
    #[serde(rename = "images:build")]
    ImagesBuild,
}

impl Permission {
    pub const ALL: [Permission; 5] = [
        Permission::ServicesView,
        Permission::ServicesDeploy,
        Permission::ServicesStop,
        Permission::LogsView,
        Permission::ImagesBuild,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Permission::ServicesView => "services:view",
            Permission::ServicesDeploy => "services:deploy",
            Permission::ServicesStop => "services:stop",
            Permission::LogsView => "logs:view",
            Permission::ImagesBuild => "images:build",
        }
    }

    pub fn parse(text: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.name() == text)
    }
}

/// A permission, in every project or in one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Grant {
    pub permission: Permission,
    /// `None`: every project.
    pub project: Option<String>,
}

impl Grant {
    /// A grant in every project.
    pub fn everywhere(permission: Permission) -> Grant {
        Grant {
            permission,
            project: None,
        }
    }

    /// `services:deploy` or `services:deploy@shop`; why not, in words.
    pub fn parse(text: &str) -> Result<Grant, String> {
        let (name, project) = match text.split_once('@') {
            Some((name, project)) => (name, Some(project)),
            None => (text, None),
        };
        let Some(permission) = Permission::parse(name) else {
            return Err(format!(
                "unknown permission `{name}`: use some of {}, each alone or as PERMISSION@PROJECT",
                Permission::ALL.map(Permission::name).join(", ")
            ));
        };
        if let Some(p) = project {
            if !super::spec::is_valid_name(p) {
                return Err(format!(
                    "`{text}` names project `{p}`, which is not a project name: a lowercase letter, then lowercase letters, digits or dashes"
                ));
            }
        }
        Ok(Grant {
            permission,
            project: project.map(str::to_string),
        })
    }

    /// As the token file writes it.
    pub fn name(&self) -> String {
        match &self.project {
            None => self.permission.name().to_string(),
            Some(p) => format!("{}@{p}", self.permission.name()),
        }
    }

    /// Whether this grant holds for `needed` in `scope`.
    fn holds(&self, needed: Permission, scope: Scope<'_>) -> bool {
        self.permission == needed
            && match (&self.project, scope) {
                (None, _) => true,
                (Some(mine), Scope::Project(p)) => mine == p,
                (Some(_), Scope::Any) => true,
                (Some(_), Scope::Unknown) => false,
            }
    }
}

impl From<Permission> for Grant {
    fn from(permission: Permission) -> Grant {
        Grant::everywhere(permission)
    }
}

/// Which project a request is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// This project: a grant for it, or for every project, holds.
    Project(&'a str),
    /// Some project, whichever (signing in to a dashboard that lists several).
    Any,
    /// Not known yet (no file has parsed): only a grant for every project holds.
    Unknown,
}

impl<'a> Scope<'a> {
    /// The scope of a request about `project`, once known.
    pub fn of(project: Option<&'a str>) -> Scope<'a> {
        project.map_or(Scope::Unknown, Scope::Project)
    }
}

/// One token: its name (for logs), the SHA-256 of its value, what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub name: String,
    pub sha256: [u8; 32],
    pub grants: BTreeSet<Grant>,
}

/// Every token berth accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tokens {
    pub tokens: Vec<Token>,
}

/// The answer to a request that needs a permission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The token (named) holds the permission.
    Allow(String),
    /// No token, or one berth does not know: 401.
    Unauthenticated,
    /// A known token (named) without the permission: 403.
    Forbidden(String),
}

/// What every token `berth token add` makes starts with.
pub const TOKEN_PREFIX: &str = "berth_";

/// The stored form of a token's value.
pub fn token_hash(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

impl Tokens {
    /// A token given in clear (`BERTH_TOKEN`, `--token-file`) holds every permission.
    pub fn with_root(mut self, value: &str) -> Tokens {
        self.tokens.push(Token {
            name: "root".into(),
            sha256: token_hash(value),
            grants: Permission::ALL.into_iter().map(Grant::everywhere).collect(),
        });
        self
    }

    /// Whether `value` is one of berth's tokens, whatever it may do.
    pub fn knows(&self, value: &str) -> bool {
        self.decide(Some(value), Permission::ServicesView, Scope::Any) != Decision::Unauthenticated
    }

    /// Decides on the bearer token presented (if any) for `needed` in `scope`.
    /// Every stored hash is compared, in constant time, so timing says nothing
    /// of which matched.
    pub fn decide(
        &self,
        presented: Option<&str>,
        needed: Permission,
        scope: Scope<'_>,
    ) -> Decision {
        let Some(value) = presented else {
            return Decision::Unauthenticated;
        };
        let hash = token_hash(value);
        let mut found = None;
        for t in &self.tokens {
            if bool::from(t.sha256.ct_eq(&hash)) && found.is_none() {
                found = Some(t);
            }
        }
        match found {
            None => Decision::Unauthenticated,
            Some(t) if t.grants.iter().any(|g| g.holds(needed, scope)) => {
                Decision::Allow(t.name.clone())
            }
            Some(t) => Decision::Forbidden(t.name.clone()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokens {
    #[serde(default)]
    tokens: Vec<RawToken>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: Spanned<String>,
    sha256: Spanned<String>,
    #[serde(default)]
    permissions: Vec<Spanned<String>>,
}

/// Parses a token file, reporting every problem with its position.
pub fn parse_tokens(file: &str, text: &str) -> Result<Tokens, Diagnostics> {
    let fail = |items| Diagnostics {
        file: file.to_string(),
        items,
    };
    let raw: RawTokens = serde_saphyr::from_str(text).map_err(|e| {
        fail(vec![Diagnostic::new("T001",
            e.location().map(Pos::from),
            e.without_snippet().to_string(),
            "a token file is `tokens:` with a list of { name, sha256, permissions }; `berth token add` writes one",
        )])
    })?;
    let mut items = Vec::new();
    let mut tokens = Vec::new();
    let mut names = BTreeSet::new();
    for t in raw.tokens {
        let mut sha = [0u8; 32];
        if hex::decode_to_slice(t.sha256.value.trim(), &mut sha).is_err() {
            items.push(Diagnostic::new(
                "T002",
                Some(Pos::from(t.sha256.referenced)),
                format!("token `{}`: `sha256` is not 64 hex digits", t.name.value),
                "store the SHA-256 of the token, never the token itself: `berth token add` does it",
            ));
        }
        if !names.insert(t.name.value.clone()) {
            items.push(Diagnostic::new(
                "T003",
                Some(Pos::from(t.name.referenced)),
                format!("token `{}` is listed twice", t.name.value),
                "give each token its own name",
            ));
        }
        let mut grants = BTreeSet::new();
        for p in &t.permissions {
            match Grant::parse(&p.value) {
                Ok(g) => {
                    grants.insert(g);
                }
                Err(why) => items.push(Diagnostic::new(
                    "T004",
                    Some(Pos::from(p.referenced)),
                    format!("token `{}`: {why}", t.name.value),
                    "write each as `services:deploy` (every project) or `services:deploy@shop` (project shop alone)",
                )),
            }
        }
        tokens.push(Token {
            name: t.name.value,
            sha256: sha,
            grants,
        });
    }
    if items.is_empty() {
        Ok(Tokens { tokens })
    } else {
        Err(fail(items))
    }
}

/// The lines `berth token add` appends to a token file for a new token.
pub fn token_entry<G: Clone + Into<Grant>>(name: &str, value: &str, grants: &[G]) -> String {
    let perms: Vec<String> = grants.iter().map(|g| g.clone().into().name()).collect();
    format!(
        "  - name: {name}\n    sha256: {}\n    permissions: [{}]\n",
        hex::encode(token_hash(value)),
        perms.join(", ")
    )
}
