//! Encrypted secrets in the repository: a file beside services.yaml mapping
//! names to age-encrypted values (ASCII-armored), opened in memory with the
//! identities in `BERTH_AGE_KEY_FILE` (the `age` crate; no crypto of our
//! own). A value is never written anywhere; only its hash reaches a label.
//! A file encrypted to another key, or altered, is an error naming the file
//! and the name, and nothing changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::core::spec::ENCRYPTED_KEY;

#[derive(Debug, thiserror::Error)]
pub enum SealedError {
    #[error("{file} holds encrypted secrets, and no age key is set\n  help: point BERTH_AGE_KEY_FILE at a file with the AGE-SECRET-KEY-1… the values were encrypted to (`age-keygen -o key.txt` makes one; encrypt with `age -r RECIPIENT -a`)")]
    KeyMissing { file: PathBuf },
    #[error("cannot read the age key {path}: {why}\n  help: BERTH_AGE_KEY_FILE names a file of AGE-SECRET-KEY-1… lines (comments with #)")]
    KeyRead { path: PathBuf, why: String },
    #[error("cannot read the encrypted secrets file {file}: {why}\n  help: it maps names to age-armored values: `NAME: |` then the -----BEGIN AGE ENCRYPTED FILE----- block")]
    FileRead { file: PathBuf, why: String },
    #[error("cannot open `{name}` of {file}: {why}\n  help: {help}")]
    ValueOpen {
        file: PathBuf,
        name: String,
        why: String,
        help: &'static str,
    },
}

/// The identities of an age key file: its `AGE-SECRET-KEY-1…` lines.
fn identities(path: &Path) -> Result<Vec<age::x25519::Identity>, SealedError> {
    let refuse = |why: String| SealedError::KeyRead {
        path: path.to_path_buf(),
        why,
    };
    let text = std::fs::read_to_string(path).map_err(|e| refuse(e.to_string()))?;
    let keys: Vec<age::x25519::Identity> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            age::x25519::Identity::from_str(l)
                .map_err(|_| refuse("a line is not an AGE-SECRET-KEY-1… key".into()))
        })
        .collect::<Result<_, _>>()?;
    match keys.is_empty() {
        true => Err(refuse("it holds no key".into())),
        false => Ok(keys),
    }
}

/// Every value of the secrets `file`, opened with the key file `key`:
/// `age:NAME` → value, as secrets are looked up (`SecretRef::key`).
pub fn open(file: &Path, key: Option<&Path>) -> Result<BTreeMap<String, String>, SealedError> {
    let key = key.ok_or_else(|| SealedError::KeyMissing {
        file: file.to_path_buf(),
    })?;
    let ids = identities(key)?;
    let refuse = |why: String| SealedError::FileRead {
        file: file.to_path_buf(),
        why,
    };
    let text = std::fs::read_to_string(file).map_err(|e| refuse(e.to_string()))?;
    let sealed =
        crate::core::spec::secrets_file_entries(&text).map_err(|e| refuse(e.to_string()))?;
    let mut out = BTreeMap::new();
    for (name, armored) in sealed {
        let value =
            open_one(&ids, armored.as_bytes()).map_err(|(why, help)| SealedError::ValueOpen {
                file: file.to_path_buf(),
                name: name.clone(),
                why,
                help,
            })?;
        out.insert(format!("{ENCRYPTED_KEY}{name}"), value);
    }
    Ok(out)
}

/// One value, by the first identity it was encrypted to.
fn open_one(
    ids: &[age::x25519::Identity],
    armored: &[u8],
) -> Result<String, (String, &'static str)> {
    let mut last = None;
    for id in ids {
        match age::decrypt(id, armored) {
            Ok(bytes) => {
                return String::from_utf8(bytes).map_err(|_| {
                    (
                        "its value is not UTF-8 text".to_string(),
                        "encrypt the text itself",
                    )
                })
            }
            Err(e) => last = Some(e),
        }
    }
    let e = last.expect("at least one identity");
    let help = match e {
        age::DecryptError::NoMatchingKeys => {
            "it was encrypted to another key: encrypt it again to the recipient of BERTH_AGE_KEY_FILE's key (`age-keygen -y key.txt` prints it)"
        }
        _ => "the value is damaged or was altered: encrypt it again",
    };
    Err((e.to_string(), help))
}
