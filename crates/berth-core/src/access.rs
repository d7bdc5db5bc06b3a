//! Access rules for the gateway and the daemon's API: tokens (stored as SHA-256
//! hashes, never in clear) with permissions, modelled on the platform berth
//! replaces. Pure: the token file's text comes in, a decision comes out.
//!
//! ```yaml
//! tokens:
//!   - name: deployer
//!     sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//!     permissions: [services:view, services:deploy]
//! ```

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

/// One token: its name (for logs), the SHA-256 of its value, what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub name: String,
    pub sha256: [u8; 32],
    pub permissions: BTreeSet<Permission>,
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
            permissions: Permission::ALL.into_iter().collect(),
        });
        self
    }

    /// Whether `value` is one of berth's tokens, whatever it may do.
    pub fn knows(&self, value: &str) -> bool {
        self.decide(Some(value), Permission::ServicesView) != Decision::Unauthenticated
    }

    /// Decides on the bearer token presented (if any) for `needed`. Every stored
    /// hash is compared, in constant time, so timing says nothing of which matched.
    pub fn decide(&self, presented: Option<&str>, needed: Permission) -> Decision {
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
            Some(t) if t.permissions.contains(&needed) => Decision::Allow(t.name.clone()),
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
        let mut permissions = BTreeSet::new();
        for p in &t.permissions {
            match Permission::parse(&p.value) {
                Some(p) => {
                    permissions.insert(p);
                }
                None => items.push(Diagnostic::new(
                    "T004",
                    Some(Pos::from(p.referenced)),
                    format!("token `{}`: unknown permission `{}`", t.name.value, p.value),
                    format!(
                        "use some of {}",
                        Permission::ALL.map(Permission::name).join(", ")
                    ),
                )),
            }
        }
        tokens.push(Token {
            name: t.name.value,
            sha256: sha,
            permissions,
        });
    }
    if items.is_empty() {
        Ok(Tokens { tokens })
    } else {
        Err(fail(items))
    }
}

/// The lines `berth token add` appends to a token file for a new token.
pub fn token_entry(name: &str, value: &str, permissions: &[Permission]) -> String {
    let perms: Vec<&str> = permissions.iter().map(|p| p.name()).collect();
    format!(
        "  - name: {name}\n    sha256: {}\n    permissions: [{}]\n",
        hex::encode(token_hash(value)),
        perms.join(", ")
    )
}
