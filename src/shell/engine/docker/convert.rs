//! Pure conversions between the core's values and the Engine API's types: a
//! desired container to a create request, list replies to [`Observed`]. No engine
//! call here, so every shape is snapshot-tested (tests/docker_convert.rs).

use std::collections::{BTreeMap, HashMap};

use bollard::models::{
    ContainerCreateBody, ContainerSummary, DeviceRequest, EndpointSettings, HostConfig, Mount,
    MountType, Network, NetworkCreateRequest, NetworkingConfig, PortBinding as EnginePortBinding,
    RestartPolicy, RestartPolicyNameEnum, Volume, VolumeCreateRequest,
};

use crate::core::desired::{DesiredContainer, DesiredNetwork, DesiredVolume};
use crate::core::plan::{Observed, ObservedContainer, ObservedObject, PortBinding};

/// The CFS scheduling period (µs) CPU limits are expressed in.
pub const CPU_PERIOD: i64 = 100_000;

fn hashmap(m: &BTreeMap<String, String>) -> HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

pub(super) fn btreemap(m: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    m.unwrap_or_default().into_iter().collect()
}

/// A container create request: the body, and the networks (with their DNS
/// aliases) to connect after create, before the first start. Engines before API
/// 1.44 accept one network at create, so the first goes in the body.
#[derive(Debug)]
pub struct CreateRequest {
    pub body: ContainerCreateBody,
    pub later_networks: Vec<(String, EndpointSettings)>,
}

fn endpoint(aliases: &[String]) -> EndpointSettings {
    EndpointSettings {
        aliases: if aliases.is_empty() {
            None
        } else {
            Some(aliases.to_vec())
        },
        ..Default::default()
    }
}

/// The engine's create request for `c`, exactly as its config says. `secrets`
/// holds the secret values by secret name; they go into the environment and
/// nowhere else.
/// The labels a container (or a Swarm service) of `c` carries, its hash and
/// recorded configuration included, and its environment with the secrets.
pub fn labels_and_env(
    c: &DesiredContainer,
    secrets: &BTreeMap<String, String>,
) -> (HashMap<String, String>, Vec<String>) {
    let cfg = &c.config;
    let labels = hashmap(&c.engine_labels());
    let env: Vec<String> = cfg
        .env
        .iter()
        .chain(secrets.iter())
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    (labels, env)
}

/// `host_port`: the port asked for when `publish` is not set (`None`: the
/// engine picks one, which it may change when the container reconnects).
pub fn create_request(
    c: &DesiredContainer,
    secrets: &BTreeMap<String, String>,
    host_port: Option<u16>,
) -> CreateRequest {
    let cfg = &c.config;
    let (labels, env) = labels_and_env(c, secrets);
    let port_key = format!("{}/tcp", cfg.port);
    let binding = EnginePortBinding {
        host_ip: Some("127.0.0.1".into()),
        // An empty host port asks the engine for a free one.
        host_port: Some(
            cfg.publish
                .or(host_port)
                .map(|p| p.to_string())
                .unwrap_or_default(),
        ),
    };
    let mut mounts: Vec<Mount> = cfg
        .mounts
        .iter()
        .map(|(target, volume)| Mount {
            target: Some(target.clone()),
            source: Some(volume.clone()),
            typ: Some(MountType::VOLUME),
            ..Default::default()
        })
        .collect();
    // Assets: the cached file itself, read-only.
    mounts.extend(c.asset_sources.iter().map(|(target, host)| Mount {
        target: Some(target.clone()),
        source: Some(host.clone()),
        typ: Some(MountType::BIND),
        read_only: Some(true),
        ..Default::default()
    }));
    // One GPU by its UUID, never "all of them" (count -1).
    let device_requests = cfg.gpu.as_ref().map(|uuid| {
        vec![DeviceRequest {
            driver: Some("nvidia".into()),
            device_ids: Some(vec![uuid.clone()]),
            capabilities: Some(vec![vec!["gpu".into()]]),
            ..Default::default()
        }]
    });
    let with_aliases = c.create_networks();
    let mut networks = with_aliases.iter();
    let first = networks.next();
    let body = ContainerCreateBody {
        image: Some(cfg.image.clone()),
        cmd: cfg.command.clone(),
        env: Some(env),
        labels: Some(labels),
        exposed_ports: Some(vec![port_key.clone()]),
        host_config: Some(HostConfig {
            // As a CFS quota rather than NanoCpus: same enforcement, but the engine
            // accepts a class larger than the host (a 4-CPU class on 2 cores).
            cpu_period: Some(CPU_PERIOD),
            cpu_quota: Some(cfg.nano_cpus / 1_000_000_000 * CPU_PERIOD),
            memory: Some(cfg.memory),
            port_bindings: Some(HashMap::from([(port_key, Some(vec![binding]))])),
            mounts: Some(mounts),
            device_requests,
            init: Some(true),
            // A job runs to completion: the engine never starts it again.
            restart_policy: Some(RestartPolicy {
                name: Some(match cfg.job {
                    true => RestartPolicyNameEnum::NO,
                    false => RestartPolicyNameEnum::UNLESS_STOPPED,
                }),
                maximum_retry_count: None,
            }),
            network_mode: first.map(|(n, _)| n.clone()),
            ..Default::default()
        }),
        networking_config: first.map(|(n, aliases)| NetworkingConfig {
            endpoints_config: Some(HashMap::from([(n.clone(), endpoint(aliases))])),
        }),
        ..Default::default()
    };
    CreateRequest {
        body,
        later_networks: networks
            .map(|(n, aliases)| (n.clone(), endpoint(aliases)))
            .collect(),
    }
}

pub fn network_request(n: &DesiredNetwork) -> NetworkCreateRequest {
    // The serve network leads nowhere (internal) and its containers do not
    // reach each other on it (no inter-container traffic): only the host's
    // gateways reach them there, so it opens no path between scopes.
    let (internal, options) = match n.serve {
        true => (
            Some(true),
            Some(HashMap::from([(
                "com.docker.network.bridge.enable_icc".to_string(),
                "false".to_string(),
            )])),
        ),
        false => (None, None),
    };
    NetworkCreateRequest {
        name: n.name.clone(),
        driver: Some("bridge".into()),
        labels: Some(hashmap(&n.labels)),
        internal,
        options,
        ..Default::default()
    }
}

pub fn volume_request(v: &DesiredVolume) -> VolumeCreateRequest {
    VolumeCreateRequest {
        name: Some(v.name.clone()),
        labels: Some(hashmap(&v.labels)),
        ..Default::default()
    }
}

/// A container's address on each network, the serve network's first: that
/// one never moves when a switch moves the service's name, so the gateways
/// route there (`core::route` takes the first).
fn addresses(
    project: &str,
    settings: Option<bollard::models::ContainerSummaryNetworkSettings>,
) -> Vec<String> {
    let serve = crate::core::desired::serve_network_name(project);
    let mut found: Vec<(bool, String)> = settings
        .and_then(|n| n.networks)
        .into_iter()
        .flatten()
        .filter_map(|(name, n)| Some((name != serve, n.ip_address.filter(|ip| !ip.is_empty())?)))
        .collect();
    found.sort();
    found.into_iter().map(|(_, ip)| ip).collect()
}

/// An engine enum (state, status) as the word the API spells.
fn word<T: serde::Serialize>(value: Option<T>) -> String {
    value
        .and_then(|s| serde_json::to_value(s).ok())
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// What the three list replies hold under the project's names. The engine's name
/// filters are substring matches, so exact prefixes are kept here; objects that
/// are not ours stay in (the planner must see them, and never touches them).
pub fn observed(
    project: &str,
    containers: Vec<ContainerSummary>,
    networks: Vec<Network>,
    volumes: Vec<Volume>,
) -> Observed {
    let mut observed = Observed::default();
    let prefix = format!("{project}-");
    for c in containers {
        let name = c
            .names
            .unwrap_or_default()
            .into_iter()
            .next()
            .unwrap_or_default();
        let name = name.trim_start_matches('/').to_string();
        if !name.starts_with(&prefix) {
            continue;
        }
        observed.containers.push(ObservedContainer {
            id: c.id.unwrap_or_default(),
            name,
            labels: btreemap(c.labels),
            state: word(c.state),
            status: c.status.unwrap_or_default(),
            ports: c
                .ports
                .unwrap_or_default()
                .into_iter()
                .map(|p| PortBinding {
                    private: p.private_port,
                    public: p.public_port,
                    ip: p.ip,
                })
                .collect(),
            addresses: addresses(project, c.network_settings),
        });
    }
    let network_prefix = format!("berth-{project}-");
    for n in networks {
        let name = n.name.unwrap_or_default();
        if name.starts_with(&network_prefix) {
            observed.networks.push(ObservedObject {
                id: n.id.unwrap_or_default(),
                name,
                labels: btreemap(n.labels),
            });
        }
    }
    observed.volumes = self::volumes(project, volumes);
    observed.containers.sort_by(|a, b| a.name.cmp(&b.name));
    observed
}

/// The volumes of a list reply under the project's names.
pub fn volumes(project: &str, volumes: Vec<Volume>) -> Vec<ObservedObject> {
    let prefix = format!("{project}-");
    volumes
        .into_iter()
        .filter(|v| v.name.starts_with(&prefix))
        .map(|v| ObservedObject {
            id: v.name.clone(),
            name: v.name,
            labels: v.labels.into_iter().collect(),
        })
        .collect()
}

/// Reference -> image ID for every local image tag. A reference without a tag
/// means `:latest`; an image ID stands for itself.
pub fn image_ids(images: Vec<bollard::models::ImageSummary>) -> BTreeMap<String, String> {
    let mut ids = BTreeMap::new();
    for img in images {
        for tag in &img.repo_tags {
            if tag == "<none>:<none>" {
                continue;
            }
            ids.insert(tag.clone(), img.id.clone());
            if let Some(short) = tag.strip_suffix(":latest") {
                ids.insert(short.to_string(), img.id.clone());
            }
            for prefix in ["docker.io/library/", "docker.io/"] {
                ids.insert(format!("{prefix}{tag}"), img.id.clone());
            }
        }
        ids.insert(img.id.clone(), img.id.clone());
    }
    ids
}

/// Reference -> `repo@sha256:…` for every local image a registry knows (it has a
/// repository digest): what a swarm's nodes can pull, pinned to its content.
pub fn swarm_image_refs(images: Vec<bollard::models::ImageSummary>) -> BTreeMap<String, String> {
    let mut refs = BTreeMap::new();
    for img in images {
        for tag in &img.repo_tags {
            let repo = tag.rsplit_once(':').map_or(tag.as_str(), |(r, t)| {
                if t.contains('/') {
                    tag.as_str()
                } else {
                    r
                }
            });
            if let Some(digest) = img
                .repo_digests
                .iter()
                .find(|d| d.split_once('@').is_some_and(|(r, _)| r == repo))
            {
                refs.insert(tag.clone(), digest.clone());
                refs.insert(digest.clone(), digest.clone());
            }
        }
    }
    refs
}

/// The state word and the host port `private`/tcp is published on, from an inspection.
pub fn state_and_port(
    c: &bollard::models::ContainerInspectResponse,
    private: u16,
) -> (String, Option<u16>) {
    let state = word(c.state.as_ref().and_then(|s| s.status));
    let port = c
        .network_settings
        .as_ref()
        .and_then(|n| n.ports.as_ref())
        .and_then(|p| p.get(&format!("{private}/tcp")).cloned().flatten())
        .and_then(|b| {
            b.into_iter()
                .find_map(|b| b.host_port.and_then(|p| p.parse().ok()))
        });
    (state, port)
}

/// Build output carries terminal colour codes; logs and errors want plain text.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// CPU percent over the engine's sampling interval, from one stats sample.
pub fn usage(s: &bollard::models::ContainerStatsResponse) -> Option<super::Usage> {
    let cpu = s.cpu_stats.as_ref()?;
    let pre = s.precpu_stats.as_ref()?;
    let total = cpu.cpu_usage.as_ref()?.total_usage? as f64
        - pre
            .cpu_usage
            .as_ref()
            .and_then(|u| u.total_usage)
            .unwrap_or(0) as f64;
    let system =
        cpu.system_cpu_usage.unwrap_or(0) as f64 - pre.system_cpu_usage.unwrap_or(0) as f64;
    let cpus = cpu.online_cpus.unwrap_or(1) as f64;
    // A restart starts the process's counter again below the sample before
    // it: no usage is known for that interval (never a negative share).
    let cpu_percent = if system > 0.0 && total >= 0.0 {
        total / system * cpus * 100.0
    } else {
        0.0
    };
    let mem = s.memory_stats.as_ref()?;
    Some(super::Usage {
        cpu_percent,
        memory_bytes: mem.usage.unwrap_or(0),
        memory_limit_bytes: mem.limit.unwrap_or(0),
    })
}

/// A job's run from the container's state: the exit code once it ended,
/// and the time from its start to its end (or to now, while it runs).
pub fn run(state: bollard::models::ContainerState) -> super::Run {
    let at = |t: Option<String>| t.and_then(|t| humantime::parse_rfc3339_weak(&t).ok());
    let running = state.running == Some(true);
    let (start, end) = (at(state.started_at), at(state.finished_at));
    let end = if running {
        Some(std::time::SystemTime::now())
    } else {
        end
    };
    let secs = match (start, end) {
        (Some(s), Some(e)) => e.duration_since(s).ok().map(|d| d.as_secs_f64()),
        _ => None,
    };
    super::Run {
        exit_code: if running { None } else { state.exit_code },
        secs,
    }
}

/// `80/tcp`, `53/udp`: the TCP ports, in order.
pub fn tcp_ports(exposed: Vec<String>) -> Vec<u16> {
    let mut ports: Vec<u16> = exposed
        .iter()
        .filter_map(|p| {
            p.strip_suffix("/tcp")
                .or((!p.contains('/')).then_some(p.as_str()))
        })
        .filter_map(|p| p.parse().ok())
        .collect();
    ports.sort_unstable();
    ports
}

/// A one-shot container that makes volume `to` hold exactly what `from` holds:
/// `to` emptied first (a copy a kill interrupted may have left half), `from`
/// mounted read-only, no network.
pub fn copy_request(
    image: &str,
    labels: BTreeMap<String, String>,
    from: &str,
    to: &str,
) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: Some(vec![
            "sh".into(),
            "-c".into(),
            // The keep's own directory keeps its owner and mode too, so a
            // service that could write its keep can write the copy.
            "rm -rf /to/* /to/.[!.]* /to/..?* && cp -a /from/. /to/ \
             && chown \"$(stat -c %u:%g /from)\" /to && chmod \"$(stat -c %a /from)\" /to"
                .into(),
        ]),
        labels: Some(labels.into_iter().collect()),
        network_disabled: Some(true),
        host_config: Some(HostConfig {
            binds: Some(vec![format!("{from}:/from:ro"), format!("{to}:/to")]),
            network_mode: Some("none".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The conversions as snapshots: what berth sends the engine for a container,
/// and what it makes of the engine's list replies. Refresh with
/// `INSTA_UPDATE=always cargo test`.
/// The regular files directly under the top directory of a tarball the engine
/// sends for a directory (`wheel/x.whl`), checked entry by entry as it is
/// read: nothing deeper, no links, nothing unpacked anywhere.
pub fn top_files(tarball: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut archive = tar::Archive::new(tarball);
    let mut out = Vec::new();
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        let parts: Vec<_> = path.components().collect();
        let [std::path::Component::Normal(_), std::path::Component::Normal(name)] = parts[..]
        else {
            continue;
        };
        let name = name.to_string_lossy().to_string();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).map_err(|e| e.to_string())?;
        out.push((name, data));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::core::desired::{resolve, Facts};

    const SPEC: &str = r#"
project: shop
services:
  web:
    image: busybox:stable
    machine: small
    public: true
    keeps: [/data]
    env: { GREETING: hi }
    secrets: { TOKEN: { from_env: SHOP_TOKEN } }
    command: ["httpd", "-f", "-p", "8000"]
  orders:
    image: busybox:stable
    scope: { database: alpha }
"#;

    fn desired() -> crate::core::desired::Desired {
        let spec = crate::core::spec::parse("services.yaml", SPEC).unwrap();
        let facts = Facts {
            image_ids: BTreeMap::from([("busybox:stable".into(), "sha256:1111".into())]),
            env: BTreeMap::from([("SHOP_TOKEN".into(), "s3cret".into())]),
            ..Default::default()
        };
        resolve(&spec, &facts).unwrap()
    }

    /// One container's create request, maps sorted so the snapshot is stable.
    fn check_create(service: &str) {
        let d = desired();
        let c = d.containers.iter().find(|c| c.service == service).unwrap();
        let secrets = BTreeMap::from([("TOKEN".to_string(), "s3cret".to_string())]);
        let req = create_request(c, &secrets, None);
        insta::with_settings!({ sort_maps => true, snapshot_suffix => service }, {
            insta::assert_json_snapshot!("create_request", (&req.body, &req.later_networks));
        });
    }

    #[test]
    fn a_global_service_with_keeps_and_a_secret_becomes_this_create_request() {
        check_create("web");
    }

    #[test]
    fn a_database_service_becomes_this_create_request() {
        check_create("orders");
    }

    #[test]
    fn list_replies_become_observed_objects_under_the_projects_names_only() {
        let containers = serde_json::from_value(serde_json::json!([
            {"Id": "c1", "Names": ["/shop-web-0.0.0"], "State": "running", "Status": "Up 3 minutes",
             "Labels": {"berth.project": "shop", "berth.service": "web"},
             "Ports": [{"PrivatePort": 8000, "PublicPort": 49153, "IP": "127.0.0.1", "Type": "tcp"}]},
            {"Id": "c2", "Names": ["/shopper-web-0.0.0"], "State": "exited", "Status": "Exited (0)"},
            {"Id": "c3", "Names": ["/shop-lookalike"], "State": "created", "Status": "Created"}
        ]))
        .unwrap();
        let networks = serde_json::from_value(serde_json::json!([
            {"Id": "n1", "Name": "berth-shop-global", "Labels": {"berth.project": "shop"}},
            {"Id": "n2", "Name": "berth-shopper-global"}
        ]))
        .unwrap();
        let volumes = serde_json::from_value(serde_json::json!([
            {"Name": "shop-web-data", "Driver": "local", "Mountpoint": "/x", "Scope": "local",
             "Labels": {"berth.project": "shop"}, "Options": {}},
            {"Name": "other-data", "Driver": "local", "Mountpoint": "/y", "Scope": "local",
             "Labels": {}, "Options": {}}
        ]))
        .unwrap();
        let observed = observed("shop", containers, networks, volumes);
        insta::assert_json_snapshot!("observed", observed);
    }

    #[test]
    fn a_restart_between_two_samples_reads_no_cpu_never_a_negative_share() {
        use bollard::models::{
            ContainerCpuStats, ContainerCpuUsage, ContainerMemoryStats, ContainerStatsResponse,
        };
        let cpu = |total: u64, system: u64| ContainerCpuStats {
            cpu_usage: Some(ContainerCpuUsage {
                total_usage: Some(total),
                ..Default::default()
            }),
            system_cpu_usage: Some(system),
            online_cpus: Some(2),
            ..Default::default()
        };
        let stats = |now: u64, before: u64| ContainerStatsResponse {
            cpu_stats: Some(cpu(now, 2_000)),
            precpu_stats: Some(cpu(before, 1_000)),
            memory_stats: Some(ContainerMemoryStats::default()),
            ..Default::default()
        };
        assert_eq!(usage(&stats(100, 500)).unwrap().cpu_percent, 0.0);
        assert_eq!(usage(&stats(600, 500)).unwrap().cpu_percent, 20.0);
    }
}
