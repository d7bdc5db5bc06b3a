//! The config of a service image berth assembles itself: its parent's (the
//! dependencies stage, or the runtime base) with the service's settings and
//! labels, and the code as one more layer. Pure JSON; the shell writes the
//! layer and loads the image (`shell::layer`).
//!
//! Why not let the engine build the code layer: on a copy-on-write driver
//! without native diffs (fuse-overlayfs, vfs) the engine finds a new layer's
//! files by walking its parent's whole tree, about 1.8 s for a Python base and
//! a one-line change. berth knows the layer's files already.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::recipe::ImageSettings;

/// The label a dependencies stage carries that the service image must not.
pub const LABEL_ROLE: &str = "berth.role";

/// What berth reads of the parent image.
#[derive(Debug, Clone, PartialEq)]
pub struct Parent {
    /// The engine's `Config` of the image (`Env`, `Cmd`, `WorkingDir`, ...).
    pub config: Value,
    pub architecture: String,
    pub os: String,
    /// When the parent was made (RFC 3339): the assembled image says the same,
    /// so one content makes one image ID.
    pub created: String,
    /// The parent's layer digests (`sha256:...`), bottom first.
    pub layers: Vec<String>,
}

/// The image config (what `docker load` reads) of the parent with `settings`,
/// `labels` over the parent's (less its role) and the layer `layer`
/// (`sha256:...` of its uncompressed tar) on top.
pub fn image_config(
    parent: &Parent,
    parent_name: &str,
    settings: &ImageSettings,
    labels: &BTreeMap<String, String>,
    layer: &str,
) -> Value {
    let mut config = match &parent.config {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    let mut env: Vec<String> = strings(config.get("Env"));
    if let Some(prefix) = &settings.path_prefix {
        // As `ENV PATH=<prefix>:$PATH` would: an unset PATH expands to nothing.
        let old = env
            .iter()
            .position(|e| e.starts_with("PATH="))
            .map(|i| env.remove(i));
        let rest = old
            .as_deref()
            .and_then(|e| e.strip_prefix("PATH="))
            .unwrap_or("");
        env.push(format!("PATH={prefix}:{rest}"));
    }
    config.insert("Env".into(), json!(env));
    config.insert("User".into(), json!(settings.user));
    config.insert("Cmd".into(), json!(settings.cmd));
    let mut all: Map<String, Value> = match config.get("Labels") {
        Some(Value::Object(map)) => map.clone(),
        _ => Map::new(),
    };
    all.remove(LABEL_ROLE);
    for (k, v) in labels {
        all.insert(k.clone(), json!(v));
    }
    config.insert("Labels".into(), Value::Object(all));
    let mut diff_ids = parent.layers.clone();
    diff_ids.push(layer.to_string());
    let mut history: Vec<Value> = parent
        .layers
        .iter()
        .map(|_| json!({ "created": parent.created, "created_by": format!("(a layer of {parent_name})") }))
        .collect();
    history.push(json!({
        "created": parent.created,
        "created_by": format!(
            "berth: the code under /{} as one layer, owned by {}",
            crate::recipe::CODE_DIR,
            settings.user
        ),
    }));
    canonical(json!({
        "architecture": parent.architecture,
        "os": parent.os,
        "created": parent.created,
        "config": Value::Object(config),
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "history": history,
    }))
}

/// `v` with every object's keys in order: the image ID is the hash of these
/// bytes, and the engine's answer (read into hash maps) comes in any order.
fn canonical(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut pairs: Vec<(String, Value)> = map.into_iter().collect();
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(pairs.into_iter().map(|(k, v)| (k, canonical(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// `docker load`'s manifest: the config file, the tag, and a file per layer.
/// Layers the engine holds already are named but not sent (it looks a layer up
/// by its chain before it opens the file); only the last, the code, is.
pub fn manifest(config_file: &str, tag: &str, layers: usize, code_file: &str) -> Value {
    let mut files: Vec<String> = (0..layers.saturating_sub(1))
        .map(|i| format!("held-by-the-engine-{i}/layer.tar"))
        .collect();
    files.push(code_file.to_string());
    json!([{ "Config": config_file, "RepoTags": [tag], "Layers": files }])
}
