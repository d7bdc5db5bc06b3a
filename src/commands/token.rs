//! `berth token add NAME -p PERMISSION...`: a new random token, printed once;
//! only its SHA-256 is appended to the token file.

use crate::core::access::{parse_tokens, token_entry, Grant, TOKEN_PREFIX};
use crate::core::diag::{Diagnostic, Diagnostics};

use super::CommandError;

pub fn add(args: crate::cli::TokenAddArgs) -> Result<u8, CommandError> {
    let (file, name, permissions) = (args.tokens.as_path(), args.name.as_str(), &args.permission);
    let refuse = |message: String, help: String| {
        CommandError::TokensInvalid(Diagnostics {
            file: file.display().to_string(),
            items: vec![Diagnostic::new("T005", None, message, help)],
        })
    };
    let mut perms = Vec::new();
    for p in permissions {
        match Grant::parse(p) {
            Ok(g) => perms.push(g),
            Err(why) => {
                return Err(refuse(
                    why,
                    "write `services:deploy` (every project) or `services:deploy@shop` (project shop alone)".into(),
                ))
            }
        }
    }
    if !crate::core::spec::is_valid_name(name) {
        return Err(refuse(
            format!("token name `{name}` is not valid"),
            "use a lowercase letter, then up to 31 lowercase letters, digits or dashes".into(),
        ));
    }
    // Only a missing file is an empty one: anything else unreadable (not UTF-8,
    // no permission) is refused with the file untouched.
    let existing = match std::fs::read(file) {
        Ok(bytes) => String::from_utf8(bytes).map_err(|e| CommandError::TokensRead {
            path: file.into(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "it is not UTF-8 text (byte {} is not valid)",
                    e.utf8_error().valid_up_to()
                ),
            ),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(CommandError::TokensRead {
                path: file.into(),
                source,
            })
        }
    };
    if !existing.trim().is_empty() {
        let tokens = parse_tokens(&file.display().to_string(), &existing)
            .map_err(CommandError::TokensInvalid)?;
        if tokens.tokens.iter().any(|t| t.name == name) {
            return Err(refuse(
                format!("a token named `{name}` exists already"),
                "pick another name, or delete its entry from the file first".into(),
            ));
        }
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(CommandError::TokenMake)?;
    let value = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
    let mut text = if existing.trim().is_empty() {
        "tokens:\n".to_string()
    } else {
        existing
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&token_entry(name, &value, &perms));
    crate::shell::state::write_atomic(file, text.as_bytes()).map_err(|source| {
        CommandError::TokensWrite {
            path: file.into(),
            source,
        }
    })?;
    crate::say::info(&format!(
        "Added token `{name}` to {} (only its SHA-256 is stored). It is shown this once:",
        file.display()
    ));
    println!("{value}");
    Ok(0)
}
