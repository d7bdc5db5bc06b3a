//! Swarm service specs from berth's desired containers, and service names
//! (DNS labels) to and from the names the plan knows. Pure.

use std::collections::BTreeMap;
use std::time::Duration;

use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum,
    EndpointSpec, EndpointSpecModeEnum, GenericResourcesInner,
    GenericResourcesInnerDiscreteResourceSpec, HealthConfig, Limit, Mount, MountType,
    NetworkAttachmentConfig, ResourceObject, ServiceSpec, ServiceSpecMode,
    ServiceSpecModeReplicated, ServiceSpecRollbackConfig,
    ServiceSpecRollbackConfigFailureActionEnum, ServiceSpecRollbackConfigOrderEnum,
    ServiceSpecUpdateConfig, ServiceSpecUpdateConfigFailureActionEnum,
    ServiceSpecUpdateConfigOrderEnum, TaskSpec, TaskSpecContainerSpec,
    TaskSpecContainerSpecSecrets, TaskSpecPlacement, TaskSpecResources, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum,
};

use super::MONITOR;
use crate::core::desired::{
    container_name, DesiredContainer, GPU_RESOURCE, LABEL_PATH, LABEL_PROJECT, LABEL_SERVICE,
    LABEL_VERSION,
};
use crate::core::spec::{HealthCheck, Runtime};

/// A version's Swarm service name: Swarm takes only a DNS label (letters,
/// digits and dashes, at most 63), so the dots of the version become dashes,
/// and a name that would be longer keeps its first 50 characters and a hash
/// of the whole. `observe` reads the version back from the labels.
pub fn service_name(name: &str) -> String {
    let label: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if label.len() <= 63 {
        return label;
    }
    let hash = crate::core::hash::sha256_hex(name.as_bytes());
    format!("{}-{}", label[..50].trim_end_matches('-'), &hash[..12])
}

/// A service of berth's under the name the plan knows (the version's dots and
/// all, from its labels); anything else under the name Swarm has.
pub(super) fn known_name(name: String, labels: &BTreeMap<String, String>) -> String {
    match (
        labels.get(LABEL_PROJECT),
        labels.get(LABEL_SERVICE),
        labels.get(LABEL_VERSION),
    ) {
        (Some(project), Some(service), Some(version))
            if service_name(&container_name(project, service, version)) == name =>
        {
            container_name(project, service, version)
        }
        _ => name,
    }
}

/// The service spec of a version: its task runs what the single-host container
/// would, with the same labels; updates start the new task first, watch it for
/// [`MONITOR`] and roll back if it fails. Secrets are files (`secrets`, made
/// by [`super::secrets::ensure`]): `NAME_FILE` in the environment says where.
pub fn service_spec(
    name: &str,
    c: &DesiredContainer,
    secrets: Vec<TaskSpecContainerSpecSecrets>,
) -> ServiceSpec {
    let cfg = &c.config;
    let (labels, mut env) =
        crate::shell::engine::docker::convert::labels_and_env(c, &BTreeMap::new());
    env.extend(
        cfg.secrets
            .keys()
            .map(|n| format!("{n}_FILE={}", super::secrets::secret_path(n))),
    );
    let monitor = MONITOR.as_nanos() as i64;
    ServiceSpec {
        name: Some(service_name(name)),
        labels: Some(labels),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(cfg.image.clone()),
                args: cfg.command.clone(),
                env: Some(env),
                labels: Some(
                    cfg.labels
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                ),
                init: Some(true),
                health_check: health_check(c),
                secrets: (!secrets.is_empty()).then_some(secrets),
                mounts: (!cfg.mounts.is_empty()).then(|| {
                    cfg.mounts
                        .iter()
                        .map(|(path, volume)| Mount {
                            target: Some(path.clone()),
                            source: Some(volume.clone()),
                            typ: Some(MountType::VOLUME),
                            ..Default::default()
                        })
                        .collect()
                }),
                ..Default::default()
            }),
            placement: (!cfg.placement.constraints.is_empty()).then(|| TaskSpecPlacement {
                constraints: Some(cfg.placement.constraints.clone()),
                ..Default::default()
            }),
            resources: Some(TaskSpecResources {
                limits: Some(Limit {
                    nano_cpus: Some(cfg.nano_cpus),
                    memory_bytes: Some(cfg.memory),
                    pids: None,
                }),
                reservations: Some(ResourceObject {
                    memory_bytes: (cfg.placement.reserve_memory > 0)
                        .then_some(cfg.placement.reserve_memory),
                    generic_resources: (cfg.placement.reserve_gpus > 0).then(|| {
                        vec![GenericResourcesInner {
                            discrete_resource_spec: Some(
                                GenericResourcesInnerDiscreteResourceSpec {
                                    kind: Some(GPU_RESOURCE.into()),
                                    value: Some(cfg.placement.reserve_gpus as i64),
                                },
                            ),
                            ..Default::default()
                        }]
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
                delay: Some(Duration::from_secs(1).as_nanos() as i64),
                ..Default::default()
            }),
            networks: Some(
                c.create_networks()
                    .iter()
                    .map(|(net, aliases)| NetworkAttachmentConfig {
                        target: Some(net.clone()),
                        aliases: Some(aliases.clone()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        // A routed version publishes its port in host mode, on a free port of
        // each task's node: the gateway reaches every task there (the routing
        // mesh needs IPVS, which not every kernel has).
        endpoint_spec: cfg.labels.contains_key(LABEL_PATH).then(|| EndpointSpec {
            mode: Some(EndpointSpecModeEnum::VIP),
            ports: Some(vec![EndpointPortConfig {
                protocol: Some(EndpointPortConfigProtocolEnum::TCP),
                target_port: Some(cfg.port as i64),
                publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
                ..Default::default()
            }]),
        }),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(cfg.placement.replicas as i64),
            }),
            ..Default::default()
        }),
        update_config: Some(ServiceSpecUpdateConfig {
            parallelism: Some(1),
            delay: Some(0),
            failure_action: Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK),
            monitor: Some(monitor),
            max_failure_ratio: Some(0.0),
            // A keep has one writer: the old task stops before the new starts.
            order: Some(match cfg.mounts.is_empty() {
                true => ServiceSpecUpdateConfigOrderEnum::START_FIRST,
                false => ServiceSpecUpdateConfigOrderEnum::STOP_FIRST,
            }),
        }),
        rollback_config: Some(ServiceSpecRollbackConfig {
            parallelism: Some(0),
            delay: Some(0),
            failure_action: Some(ServiceSpecRollbackConfigFailureActionEnum::PAUSE),
            monitor: Some(monitor),
            max_failure_ratio: Some(0.0),
            order: Some(ServiceSpecRollbackConfigOrderEnum::STOP_FIRST),
        }),
        ..Default::default()
    }
}

/// The health check Swarm runs in each task, which gates its updates: the
/// image's own `command`; for an image berth built, a probe by the runtime's
/// own interpreter (`GET <path>` answering below 400, or a TCP connection);
/// none for `none: true` and for other images, whose tools berth does not know
/// (Swarm then judges a task by its process).
pub fn health_check(c: &DesiredContainer) -> Option<HealthConfig> {
    let port = c.config.port;
    let runtime = c.build.as_ref().map(|b| b.input.runtime);
    let test = match (&c.health.check, runtime) {
        (HealthCheck::Command { argv }, _) => argv.clone(),
        (HealthCheck::None, _) | (_, None) => return None,
        (check, Some(runtime)) => probe(runtime, port, check)?,
    };
    let ms = |ms: u64| Duration::from_millis(ms).as_nanos() as i64;
    Some(HealthConfig {
        test: Some(std::iter::once("CMD".to_string()).chain(test).collect()),
        // Every check starts a process in the task: not more than once a second.
        interval: Some(ms(c.health.interval_ms.max(1000))),
        timeout: Some(ms(3000)),
        retries: Some(3),
        // Failures while the service starts do not count; its first pass
        // makes the task healthy at once.
        start_period: Some(ms(c.health.timeout_ms)),
        ..Default::default()
    })
}

/// The probe of a runtime's image, in its interpreter (no curl or wget in it).
fn probe(runtime: Runtime, port: u16, check: &HealthCheck) -> Option<Vec<String>> {
    let python = |code: String| vec!["python3".to_string(), "-c".into(), code];
    let node = |code: String| vec!["node".to_string(), "-e".into(), code];
    // A quoted string both interpreters read as Rust writes it.
    let url = |path: &str| format!("{:?}", format!("http://127.0.0.1:{port}{path}"));
    Some(match (check, runtime.python().is_some()) {
        (HealthCheck::Http { path }, true) => python(format!(
            "import urllib.request as u; u.urlopen({}, timeout=2)",
            url(path)
        )),
        (HealthCheck::Tcp, true) => python(format!(
            "import socket; socket.create_connection(('127.0.0.1', {port}), 2)"
        )),
        (HealthCheck::Http { path }, false) => node(format!(
            "fetch({},{{redirect:'manual'}}).then(r=>process.exit(r.status<400?0:1),()=>process.exit(1))",
            url(path)
        )),
        (HealthCheck::Tcp, false) => node(format!(
            "require('net').connect({port},'127.0.0.1').on('connect',()=>process.exit(0)).on('error',()=>process.exit(1))"
        )),
        _ => return None,
    })
}
