//! A replace's reasons: a container configuration as the fields a user reads,
//! and which of them changed (secrets compared, never shown).

use std::collections::{BTreeMap, BTreeSet};

use super::hash::ContainerConfig;
use super::steps::{Reason, SENSITIVE};

/// The fields of a container config as a user reads them: path -> display value.
/// Secrets keep their path but their value is only used to compare.
pub fn display_fields(c: &ContainerConfig) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
    f.insert("image".to_string(), c.image.clone());
    f.insert(
        "command".to_string(),
        match &c.command {
            Some(cmd) => serde_json::to_string(cmd).unwrap_or_default(),
            None => "(the image's)".to_string(),
        },
    );
    for (k, v) in &c.env {
        f.insert(format!("env.{k}"), v.clone());
    }
    for (k, v) in &c.secrets {
        f.insert(format!("secrets.{k}"), v.clone());
    }
    f.insert("cpus".to_string(), format!("{}", c.nano_cpus as f64 / 1e9));
    f.insert("memory".to_string(), format!("{} MiB", c.memory >> 20));
    f.insert("port".to_string(), c.port.to_string());
    f.insert(
        "publish".to_string(),
        c.publish
            .map(|p| p.to_string())
            .unwrap_or_else(|| "(a free port)".to_string()),
    );
    for (k, v) in &c.mounts {
        f.insert(format!("keeps.{k}"), v.clone());
    }
    for (k, v) in &c.assets {
        f.insert(
            format!("assets.{k}"),
            format!("sha256:{}", super::observed::short(v)),
        );
    }
    f.insert("replicas".to_string(), c.placement.replicas.to_string());
    if c.placement.reserve_memory > 0 {
        f.insert(
            "reserve_memory".to_string(),
            format!("{} MiB", c.placement.reserve_memory >> 20),
        );
    }
    if let Some(g) = &c.gpu {
        f.insert("gpu".to_string(), g.clone());
    }
    if !c.placement.constraints.is_empty() {
        f.insert("placement".to_string(), c.placement.constraints.join(", "));
    }
    if c.placement.reserve_gpus > 0 {
        f.insert(
            "reserve_gpus".to_string(),
            c.placement.reserve_gpus.to_string(),
        );
    }
    for (k, v) in &c.networks {
        f.insert(
            format!("networks.{k}"),
            serde_json::to_string(v).unwrap_or_default(),
        );
    }
    for (k, v) in &c.labels {
        f.insert(format!("labels.{k}"), v.clone());
    }
    f
}

/// Field-by-field reasons for a replacement.
pub(crate) fn changes(old: Option<&String>, new: &ContainerConfig) -> Vec<Reason> {
    let Some(old) = old.and_then(|o| serde_json::from_str::<ContainerConfig>(o).ok()) else {
        return vec![Reason::note(
            "configuration differs (the container records no readable berth.config)",
        )];
    };
    let (a, b) = (display_fields(&old), display_fields(new));
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let mut out = Vec::new();
    for k in keys {
        let (o, n) = (a.get(k), b.get(k));
        if o != n {
            let sensitive = k.starts_with("secrets.");
            out.push(Reason::Changed {
                field: k.clone(),
                old: o.map(|v| {
                    if sensitive {
                        SENSITIVE.to_string()
                    } else {
                        v.clone()
                    }
                }),
                new: n.map(|v| {
                    if sensitive {
                        SENSITIVE.to_string()
                    } else {
                        v.clone()
                    }
                }),
                sensitive,
            });
        }
    }
    if out.is_empty() {
        out.push(Reason::note("configuration hash differs"));
    }
    out
}
