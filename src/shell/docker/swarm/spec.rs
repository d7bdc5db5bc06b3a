//! Swarm service specs from berth's desired containers, and service names
//! (DNS labels) to and from the names the plan knows. Pure.

use std::collections::BTreeMap;
use std::time::Duration;

use bollard::models::{
    Limit, NetworkAttachmentConfig, ResourceObject, ServiceSpec, ServiceSpecMode,
    ServiceSpecModeReplicated, ServiceSpecRollbackConfig,
    ServiceSpecRollbackConfigFailureActionEnum, ServiceSpecRollbackConfigOrderEnum,
    ServiceSpecUpdateConfig, ServiceSpecUpdateConfigFailureActionEnum,
    ServiceSpecUpdateConfigOrderEnum, TaskSpec, TaskSpecContainerSpec, TaskSpecResources,
    TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum,
};

use super::MONITOR;
use crate::core::desired::{
    container_name, DesiredContainer, LABEL_PROJECT, LABEL_SERVICE, LABEL_VERSION,
};

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
/// [`MONITOR`] and roll back if it fails.
pub fn service_spec(
    name: &str,
    c: &DesiredContainer,
    secrets: &BTreeMap<String, String>,
) -> ServiceSpec {
    let cfg = &c.config;
    let (labels, env) = crate::shell::docker::convert::labels_and_env(c, secrets);
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
                ..Default::default()
            }),
            resources: Some(TaskSpecResources {
                limits: Some(Limit {
                    nano_cpus: Some(cfg.nano_cpus),
                    memory_bytes: Some(cfg.memory),
                    pids: None,
                }),
                reservations: Some(ResourceObject {
                    memory_bytes: (cfg.reserve_memory > 0).then_some(cfg.reserve_memory),
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
                cfg.networks
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
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(cfg.replicas as i64),
            }),
            ..Default::default()
        }),
        update_config: Some(ServiceSpecUpdateConfig {
            parallelism: Some(1),
            delay: Some(0),
            failure_action: Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK),
            monitor: Some(monitor),
            max_failure_ratio: Some(0.0),
            order: Some(ServiceSpecUpdateConfigOrderEnum::START_FIRST),
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
