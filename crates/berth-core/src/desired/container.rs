//! One version's desired container, from the file and the facts: its image
//! (ready, or built from its package), assets, secrets (by hash), labels,
//! environment, networks and keeps' volumes, and the configuration whose
//! hash decides whether what runs is right.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    container_name, network_name, object_labels, pending_image, serve_network_name, volume_name,
    BuildFact, DesiredContainer, DesiredNetwork, DesiredVolume, Facts, Resolved, LABEL_HEALTH,
    LABEL_JOB, LABEL_KEEP, LABEL_PATH, LABEL_PROJECT, LABEL_PUBLIC, LABEL_SCOPE, LABEL_SERVICE,
    LABEL_VERSION,
};
use crate::diag::Diagnostic;
use crate::hash::{secret_hash, ContainerConfig};
use crate::spec::{Scope, SecretSource, Source, Version};

/// The desired container of version `v`, with the networks and volumes it
/// needs; every fact it lacks is a problem, all said at once.
pub(super) fn container(
    project: &str,
    v: &Version,
    active: bool,
    databases: &BTreeSet<&str>,
    facts: &Facts,
    gpu: Option<&String>,
    serve: bool,
) -> Result<Resolved, Vec<Diagnostic>> {
    let version = v.version.to_string();
    let mut problems = Vec::new();
    let (image_ref, image_id, build) = image(v, facts, &mut problems);
    let assets = assets(v, facts, &mut problems);
    let (secrets, secret_sources) = secrets(project, v, facts, &mut problems);
    if !problems.is_empty() {
        return Err(problems);
    }
    let (nets, networks) = networks(project, v, databases, serve);
    let (vols, mounts) = volumes(project, v);
    let config = ContainerConfig {
        image: image_id,
        command: v
            .command
            .as_deref()
            .map(|c| crate::entry::expand_port(c, v.port)),
        env: env(project, v, &assets.env, build.is_some()),
        secrets,
        nano_cpus: v.machine.nano_cpus(),
        memory: v.machine.memory_bytes(),
        port: v.port,
        publish: v.publish,
        mounts,
        networks,
        labels: labels(project, v),
        assets: assets.mounted,
        gpu: gpu.cloned(),
        placement: crate::hash::Placement {
            replicas: v.replicas,
            ..Default::default()
        },
        job: v.job,
    };
    let hash = config.hash();
    Ok((
        DesiredContainer {
            name: container_name(project, &v.service, &version),
            service: v.service.clone(),
            version,
            image_ref,
            secret_sources,
            asset_sources: assets.sources,
            build,
            revision: None,
            health: v.health.clone(),
            active,
            host_port: None,
            config,
            hash,
        },
        nets,
        vols,
    ))
}

/// The image a version runs: a ready one by its ID, or the one its package
/// builds (its ID once built, else the pending mark), and the build's facts.
fn image(
    v: &Version,
    facts: &Facts,
    problems: &mut Vec<Diagnostic>,
) -> (String, String, Option<BuildFact>) {
    let id = v.id();
    match &v.source {
        Source::Image(r) => match facts.image_ids.get(r) {
            Some(image) => (r.clone(), image.clone(), None),
            None => {
                problems.push(Diagnostic::new("D002",
                    Some(v.pos),
                    format!("{id}: image `{r}` is not on the engine"),
                    "load or build it first (`docker load`, `docker build`); `berth baseimages` builds the berth-local/* images",
                ));
                (r.clone(), String::new(), None)
            }
        },
        Source::Package(p) => match facts.builds.get(&id) {
            Some(b) => {
                let image = b
                    .image_id
                    .clone()
                    .unwrap_or_else(|| pending_image(b.tag.as_deref()));
                let reference = b.tag.clone().unwrap_or_else(|| p.clone());
                (reference, image, Some(b.clone()))
            }
            None => {
                problems.push(Diagnostic::new(
                    "D003",
                    Some(v.pos),
                    format!("{id}: the package `{p}` was not prepared for building"),
                    "this is a bug in berth: please report it",
                ));
                (p.clone(), String::new(), None)
            }
        },
    }
}

/// A version's assets, mounted read-only under a path named by their content.
#[derive(Default)]
struct Assets {
    /// Container path -> the file's SHA-256.
    mounted: BTreeMap<String, String>,
    /// Container path -> the cached file on the host.
    sources: BTreeMap<String, String>,
    /// Variable -> container path.
    env: BTreeMap<String, String>,
}

fn assets(v: &Version, facts: &Facts, problems: &mut Vec<Diagnostic>) -> Assets {
    let mut out = Assets::default();
    for a in &v.assets {
        match facts.assets.get(&a.url) {
            Some(f) => {
                let name = a
                    .url
                    .rsplit('/')
                    .next()
                    .filter(|n| !n.is_empty() && !n.contains(['?', '#']))
                    .unwrap_or("asset");
                let at = format!("/berth/assets/{}/{name}", &f.sha256[..16]);
                out.mounted.insert(at.clone(), f.sha256.clone());
                out.sources.insert(at.clone(), f.path.clone());
                out.env.insert(a.env.clone(), at);
            }
            None => problems.push(Diagnostic::new(
                "D004",
                Some(a.pos),
                format!("{}: asset `{}` ({}) was not fetched", v.id(), a.env, a.url),
                "this is a bug in berth: please report it",
            )),
        }
    }
    out
}

/// Secret name -> the hash of its value (the value never leaves memory),
/// and secret name -> the variable it is read from.
fn secrets(
    project: &str,
    v: &Version,
    facts: &Facts,
    problems: &mut Vec<Diagnostic>,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut hashes = BTreeMap::new();
    let mut sources = BTreeMap::new();
    for (name, s) in &v.secrets {
        let key = s.key();
        match facts.env.get(&key) {
            Some(value) => {
                hashes.insert(name.clone(), secret_hash(project, name, value));
                sources.insert(name.clone(), key);
            }
            None => problems.push(Diagnostic::new(
                "D005",
                Some(s.pos),
                format!(
                    "{}: secret `{name}` reads {}, which is not set",
                    v.id(),
                    crate::spec::secret_origin(&key)
                ),
                match &s.source {
                    SecretSource::Env(var) => {
                        format!("export {var}=... in the environment that runs berth")
                    }
                    SecretSource::Encrypted(n) => {
                        format!("add `{n}` to the secrets file, encrypted to berth's age key")
                    }
                },
            )),
        }
    }
    (hashes, sources)
}

fn labels(project: &str, v: &Version) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert(LABEL_PROJECT.to_string(), project.to_string());
    labels.insert(LABEL_SERVICE.to_string(), v.service.clone());
    labels.insert(LABEL_VERSION.to_string(), v.version.to_string());
    labels.insert(LABEL_SCOPE.to_string(), v.scope.label());
    // What the gateway needs, on the container itself: routes follow what was
    // converged, not a file that may have been saved since.
    labels.insert(LABEL_PATH.to_string(), v.path.clone());
    labels.insert(LABEL_PUBLIC.to_string(), v.public.to_string());
    // The check is part of what the container promises (a new one is gated
    // again), and `status` reads it back from the container alone.
    if let Some(check) = v.health.check.label() {
        labels.insert(LABEL_HEALTH.to_string(), check);
    }
    if v.job {
        labels.insert(LABEL_JOB.to_string(), "true".to_string());
    }
    labels
}

/// The file's `env`, the assets' paths, and what berth tells every version.
fn env(
    project: &str,
    v: &Version,
    assets: &BTreeMap<String, String>,
    built: bool,
) -> BTreeMap<String, String> {
    let mut env = v.env.clone();
    env.extend(assets.clone());
    env.insert("BERTH_PROJECT".into(), project.to_string());
    env.insert("BERTH_SERVICE".into(), v.service.clone());
    env.insert("BERTH_VERSION".into(), v.version.to_string());
    if let Scope::Database(db) = &v.scope {
        env.insert("BERTH_DATABASE".into(), db.clone());
    }
    if built {
        // Built services follow the contract's port; frameworks read PORT.
        env.insert("PORT".into(), v.port.to_string());
    }
    env
}

/// The networks a version joins: a global service every database network
/// too, so database-scoped services reach it; a database service its own
/// only; and, where `serve` says so, the project's serve network. The
/// service's name is given at create and moved by a switch, never hashed
/// (see `create_networks`).
fn networks(
    project: &str,
    v: &Version,
    databases: &BTreeSet<&str>,
    serve: bool,
) -> (Vec<DesiredNetwork>, BTreeMap<String, Vec<String>>) {
    let scopes: Vec<Scope> = match &v.scope {
        Scope::Global => std::iter::once(Scope::Global)
            .chain(databases.iter().map(|d| Scope::Database(d.to_string())))
            .collect(),
        db => vec![db.clone()],
    };
    let mut nets = Vec::new();
    let mut networks = BTreeMap::new();
    for scope in scopes {
        let name = network_name(project, &scope);
        networks.insert(name.clone(), Vec::new());
        let labels = object_labels(&name, project, &scope, &[]);
        nets.push(DesiredNetwork {
            name,
            labels,
            serve: false,
        });
    }
    if serve {
        let name = serve_network_name(project);
        networks.insert(name.clone(), Vec::new());
        let labels = object_labels(&name, project, &Scope::Global, &[]);
        nets.push(DesiredNetwork {
            name,
            labels,
            serve: true,
        });
    }
    (nets, networks)
}

/// The volume of each keep, and keep path -> volume.
fn volumes(project: &str, v: &Version) -> (Vec<DesiredVolume>, BTreeMap<String, String>) {
    let mut vols = Vec::new();
    let mut mounts = BTreeMap::new();
    for keep in &v.keeps {
        let name = volume_name(project, &v.service, keep);
        mounts.insert(keep.clone(), name.clone());
        let extra = [
            (LABEL_SERVICE, v.service.as_str()),
            (LABEL_KEEP, keep.as_str()),
        ];
        let labels = object_labels(&name, project, &v.scope, &extra);
        vols.push(DesiredVolume { name, labels });
    }
    (vols, mounts)
}
