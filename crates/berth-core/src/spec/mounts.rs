//! What a version mounts: its `keeps` (paths whose data outlives a replace)
//! and its `assets` (files fetched by URL, checked by SHA-256, read-only).

use super::validate::{pick, Validator};
#[allow(unused_imports)]
use super::*;

impl Validator {
    /// A version's keep paths: plain absolute paths below `/`, each once.
    pub(super) fn keeps(&mut self, id: &str, s: &RawService, v: &RawVersion) -> Vec<String> {
        let mut keeps = Vec::new();
        for k in pick(&v.keeps, &s.keeps).into_iter().flatten() {
            if !k.value.starts_with('/') || k.value.split('/').any(|c| c == "..") {
                self.err("S016",
                Pos::from(k.referenced),
                format!("{id}: keep path `{}` is not a plain absolute path", k.value),
                "write the absolute path inside the container, without `..`, for example `/data`",
            );
            } else if keeps.contains(&k.value) {
                self.err(
                    "S017",
                    Pos::from(k.referenced),
                    format!("{id}: keep path `{}` is listed twice", k.value),
                    "list each path once",
                );
            } else if k.value.trim_end_matches('/').is_empty() {
                self.err(
                    "S018",
                    Pos::from(k.referenced),
                    format!("{id}: `/` cannot be kept"),
                    "keep a directory below `/`, for example `/data`",
                );
            } else {
                keeps.push(k.value.clone());
            }
        }

        keeps
    }

    /// A version's assets: a variable of their own, an http(s) URL, and a
    /// SHA-256 that is 64 hex digits when given.
    pub(super) fn assets(
        &mut self,
        id: &str,
        s: &RawService,
        v: &RawVersion,
        env: &BTreeMap<String, String>,
        secrets: &BTreeMap<String, SecretRef>,
    ) -> Vec<Asset> {
        let mut assets: Vec<Asset> = Vec::new();
        for a in pick(&v.assets, &s.assets)
            .map(|a| a.value.as_slice())
            .unwrap_or(&[])
        {
            self.env_name(id, "asset variable", &a.env);
            if env.contains_key(&a.env.value)
                || secrets.contains_key(&a.env.value)
                || assets.iter().any(|b| b.env == a.env.value)
            {
                self.err(
                    "S019",
                    Pos::from(a.env.referenced),
                    format!(
                        "{id}: `{}` is set twice (env, secrets or another asset)",
                        a.env.value
                    ),
                    "give each asset its own variable name",
                );
            }
            let url = a.url.value.trim();
            let after_scheme = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"));
            if after_scheme.is_none_or(|rest| rest.is_empty() || rest.starts_with('/')) {
                self.err(
                    "S020",
                    Pos::from(a.url.referenced),
                    format!("{id}: asset url `{url}` is not an http(s) URL"),
                    "write the full address, for example https://example.org/model.bin",
                );
            }
            let sha256 = a
                .sha256
                .as_ref()
                .map(|h| h.value.trim().to_ascii_lowercase());
            if let (Some(h), Some(raw)) = (&sha256, &a.sha256) {
                if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    self.err(
                        "S021",
                        Pos::from(raw.referenced),
                        format!(
                            "{id}: asset `{}`: sha256 `{}` is not 64 hex digits",
                            a.env.value, raw.value
                        ),
                        "write the SHA-256 of the file, as `sha256sum FILE` prints it",
                    );
                }
            }
            assets.push(Asset {
                env: a.env.value.clone(),
                url: url.to_string(),
                sha256,
                pos: Pos::from(a.env.referenced),
            });
        }

        assets
    }
}
