//! The plan of a restart someone asked for (the dashboard's "Restart"): one
//! step that stops and starts a running version's container, planned against
//! what runs like any other plan, so the converge path carries it out.

use super::desired::container_name;
use super::observed::{owned, Observed};
use super::role::ContainerRole;
use super::steps::{Action, Plan, Reason, Step};

/// Why a restart is refused, with what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestartRefusal {
    #[error("`{target}` names no version\n  help: restart one version: SERVICE@VERSION")]
    VersionMissing { target: String },
    #[error("no container of `{service}@{version}` in project `{project}`\n  help: `berth status` lists what runs")]
    ContainerNotFound {
        service: String,
        version: String,
        project: String,
    },
    #[error("`{service}@{version}` is {state}, not running: a reconcile starts it again")]
    ContainerStopped {
        service: String,
        version: String,
        state: String,
    },
}

/// A restart of `service@version` asked for by `who`; refused, with why and
/// what to do, when no running container of the project is that version.
pub fn restart(
    project: &str,
    observed: &Observed,
    service: &str,
    version: &str,
    who: &str,
) -> Result<Plan, RestartRefusal> {
    let canonical = container_name(project, service, version);
    let target = observed.containers.iter().find(|c| {
        owned(&c.labels, project)
            && ContainerRole::of(&c.name, &canonical) == Some(ContainerRole::Canonical)
    });
    let Some(c) = target else {
        return Err(RestartRefusal::ContainerNotFound {
            service: service.into(),
            version: version.into(),
            project: project.into(),
        });
    };
    if c.state != "running" {
        return Err(RestartRefusal::ContainerStopped {
            service: service.into(),
            version: version.into(),
            state: c.state.clone(),
        });
    }
    let step = Step {
        action: Action::RestartContainer {
            id: c.id.clone(),
            name: c.name.clone(),
            subject: format!("{project}/{service}@{version}"),
        },
        reasons: vec![Reason::note(format!("restart asked for by `{who}`"))],
    };
    // Fingerprinted like a file's plan, so it reads as one.
    let mut plan = Plan::of_steps(project, vec![step]);
    plan.fingerprint = observed.fingerprint(project);
    plan.observed = observed.summary(project);
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observed::ObservedContainer;

    fn observed(name: &str, state: &str) -> Observed {
        let labels = [
            ("berth.project", "shop"),
            ("berth.service", "web"),
            ("berth.version", "1.0.0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Observed {
            containers: vec![ObservedContainer {
                id: "abc".into(),
                name: name.into(),
                labels,
                state: state.into(),
                status: String::new(),
                ports: vec![],
                addresses: vec![],
            }],
            ..Default::default()
        }
    }

    fn check(o: &Observed, expect: Result<&str, &str>) {
        let got = restart("shop", o, "web", "1.0.0", "ops").map(|p| {
            let s = &p.steps[0];
            format!("{} {}", s.action.verb(), s.action.subject("shop"))
        });
        match expect {
            Ok(e) => assert_eq!(got.as_deref(), Ok(e)),
            Err(e) => assert!(
                got.as_ref().is_err_and(|g| g.to_string().contains(e)),
                "{got:?}"
            ),
        }
    }

    #[test]
    fn a_running_version_is_one_restart_step_and_anything_else_is_refused() {
        check(
            &observed("shop-web-1.0.0", "running"),
            Ok("restart shop/web@1.0.0"),
        );
        check(
            &observed("shop-web-1.0.0", "exited"),
            Err("is exited, not running"),
        );
        check(
            &observed("shop-web-1.0.0-old-abc", "running"),
            Err("no container"),
        );
        check(&Observed::default(), Err("`berth status` lists what runs"));
    }
}
