//! Secrets on a swarm: each value a Swarm secret named by its content hash and
//! handed to the tasks as a file, so it is never written into a service spec.
//! A changed value is a new secret; the old one goes once no service of the
//! project names it any more.

use std::collections::{BTreeMap, HashMap, HashSet};

use base64::Engine as _;
use bollard::models::{SecretSpec, TaskSpecContainerSpecFile, TaskSpecContainerSpecSecrets};
use bollard::query_parameters::ListSecretsOptionsBuilder;

use super::super::client::{is_not_found, list_error, object_error};
use super::super::{Docker, EngineError};
use crate::core::desired::{DesiredContainer, LABEL_PROJECT};

/// Where a task finds secret `name`.
pub fn secret_path(name: &str) -> String {
    format!("/run/secrets/{name}")
}

/// The Swarm secret of one value: `<project>-<name>-<hash12>` (at most 64
/// characters, as Swarm takes).
fn secret_name(project: &str, name: &str, hash: &str) -> String {
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(64 - project.len() - 14)
        .collect();
    format!("{project}-{name}-{}", &hash[..12])
}

/// Makes the Swarm secrets `c` reads (values from `values`) and returns the
/// task's references to them.
pub(super) async fn ensure(
    d: &Docker,
    c: &DesiredContainer,
    values: &BTreeMap<String, String>,
) -> Result<Vec<TaskSpecContainerSpecSecrets>, EngineError> {
    let project = c
        .config
        .labels
        .get(LABEL_PROJECT)
        .cloned()
        .unwrap_or_default();
    let client = d.client().await?;
    let mut refs = Vec::new();
    for (name, hash) in &c.config.secrets {
        let swarm_name = secret_name(&project, name, hash);
        let id = match client.inspect_secret(&swarm_name).await {
            Ok(s) => s.id.unwrap_or_default(),
            Err(e) if is_not_found(&e) => {
                let value = values.get(name).ok_or_else(|| EngineError::SecretCreate {
                    name: swarm_name.clone(),
                    message: format!("no value was read for secret {name}"),
                })?;
                let spec = SecretSpec {
                    name: Some(swarm_name.clone()),
                    labels: Some(HashMap::from([
                        (LABEL_PROJECT.to_string(), project.clone()),
                        ("berth.secret".to_string(), name.clone()),
                    ])),
                    data: Some(base64::engine::general_purpose::STANDARD.encode(value)),
                    ..Default::default()
                };
                client
                    .create_secret(spec)
                    .await
                    .map_err(|e| EngineError::SecretCreate {
                        name: swarm_name.clone(),
                        message: e.to_string(),
                    })?
                    .id
            }
            Err(source) => return Err(object_error("inspect", "secret", swarm_name, source)),
        };
        refs.push(TaskSpecContainerSpecSecrets {
            file: Some(TaskSpecContainerSpecFile {
                name: Some(name.clone()),
                uid: Some("0".into()),
                gid: Some("0".into()),
                // Readable by the service's own (non-root) user.
                mode: Some(0o444),
            }),
            secret_id: Some(id),
            secret_name: Some(swarm_name),
        });
    }
    Ok(refs)
}

/// Removes the project's secrets that none of its services names: old values
/// after a rotation, what a removed service read, what a crash left behind.
pub(super) async fn prune(d: &Docker, project: &str) -> Result<(), EngineError> {
    let client = d.client().await?;
    let filters = HashMap::from([("label", vec![format!("{LABEL_PROJECT}={project}")])]);
    let secrets = client
        .list_secrets(Some(
            ListSecretsOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(|source| list_error("secrets")(source))?;
    if secrets.is_empty() {
        return Ok(());
    }
    let services = client
        .list_services(None::<bollard::query_parameters::ListServicesOptions>)
        .await
        .map_err(|source| list_error("services")(source))?;
    let used: HashSet<String> = services
        .into_iter()
        .filter_map(|s| s.spec?.task_template?.container_spec?.secrets)
        .flatten()
        .filter_map(|r| r.secret_id)
        .collect();
    for s in secrets {
        let Some(id) = s.id else { continue };
        if !used.contains(&id) {
            // Another service may have named it since: Swarm refuses then.
            if let Err(e) = client.delete_secret(&id).await {
                tracing::debug!(id, error = %e, "secret kept");
            }
        }
    }
    Ok(())
}
