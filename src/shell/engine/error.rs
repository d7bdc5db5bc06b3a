//! The engine's errors, in words any engine has: a call failed because the
//! engine is absent, timed out, holds the name already, has no such object,
//! refused, or lacks the capability. The engine's own error is kept as the
//! source (`Cause`), so no engine's types reach past its folder.

/// An engine's own error for a failed call (bollard's, for Docker and Swarm).
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What kind of failure an [`EngineError`] is, whatever the engine: what a
/// caller may act on (wait for an engine that is away; take another name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Nothing answers where the engine should be.
    Unreachable,
    /// The engine did not answer in time.
    Timeout,
    /// Another object holds the name.
    Conflict,
    /// No such object (where absence is not a valid answer).
    Absent,
    /// The engine answered, and said no (or failed the work).
    Refused,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot reach the {engine} engine at {address}: {source}\n  help: start the {engine} engine, or point DOCKER_HOST at it; `berth doctor` checks the set-up")]
    EngineUnreachable {
        engine: &'static str,
        address: String,
        source: Cause,
    },
    #[error("the {engine} engine at {address} did not answer within {}\n  help: check that it runs and answers (`docker info`); a slow one may be given longer with BERTH_ENGINE_TIMEOUT=30s", humantime::format_duration(*after))]
    EngineUnanswered {
        engine: &'static str,
        address: String,
        after: std::time::Duration,
    },
    /// The engine answers, but is not the kind the file names (a swarm's
    /// manager, say).
    #[error("the engine at {address} is not a {wanted}\n  help: {help}")]
    EngineMismatch {
        address: String,
        wanted: &'static str,
        help: &'static str,
    },
    #[error("{what} is not available on engine: {engine} yet")]
    EngineUnsupported {
        engine: &'static str,
        what: &'static str,
    },
    #[error("cannot list {what} on the engine: {source}")]
    ObjectList { what: &'static str, source: Cause },
    /// A call on one object that the engine refused or failed.
    #[error("cannot {verb} {what} {name}: {source}")]
    ObjectRefused {
        verb: &'static str,
        what: &'static str,
        name: String,
        source: Cause,
    },
    #[error("a {what} named {name} exists already")]
    ObjectConflict { what: &'static str, name: String },
    #[error("cannot {verb} {what} {name}: the engine has no such {what}")]
    ObjectNotFound {
        verb: &'static str,
        what: &'static str,
        name: String,
    },
    #[error("cannot copy volume {from} to {to}: {why}\n  help: the data stays in {from}; fix the cause and apply again")]
    VolumeCopy {
        from: String,
        to: String,
        why: String,
    },
    #[error("cannot build image {tag}: {message}")]
    ImageBuild { tag: String, message: String },
    #[error("cannot read {dir} of image {reference}: {message}")]
    ImageRead {
        reference: String,
        dir: String,
        message: String,
    },
    #[error("cannot load image {tag}: {message}")]
    ImageLoad { tag: String, message: String },
    #[error("cannot push image {tag} to its registry: {message}\n  help: check that the registry answers the manager (`berth doctor`), and that the manager trusts it (`insecure-registries` for a plain-HTTP one)")]
    ImagePush { tag: String, message: String },
    #[error("cannot send the build context of {tag}: {message}\n  help: make the plan again; if a package keeps changing, stop what writes to it")]
    ContextSend { tag: String, message: String },
    /// An orchestrator's rollout of a version that ended other than done
    /// (rolled back, paused), in the orchestrator's words.
    #[error("{name}: {message}")]
    VersionRollout { name: String, message: String },
    #[error("cannot create secret {name}: {message}")]
    SecretCreate { name: String, message: String },
}

impl EngineError {
    /// The kind of failure, for callers that act on it.
    pub fn fault(&self) -> Fault {
        use EngineError::*;
        match self {
            EngineUnreachable { .. } => Fault::Unreachable,
            EngineUnanswered { .. } => Fault::Timeout,
            ObjectConflict { .. } => Fault::Conflict,
            ObjectNotFound { .. } => Fault::Absent,
            EngineMismatch { .. }
            | EngineUnsupported { .. }
            | ObjectList { .. }
            | ObjectRefused { .. }
            | VolumeCopy { .. }
            | ImageBuild { .. }
            | ImageRead { .. }
            | ImageLoad { .. }
            | ImagePush { .. }
            | ContextSend { .. }
            | VersionRollout { .. }
            | SecretCreate { .. } => Fault::Refused,
        }
    }

    /// Whether the engine itself is away (unreachable or silent), not a
    /// refusal of one call: a daemon waits for it and tries again.
    pub fn engine_away(&self) -> bool {
        matches!(self.fault(), Fault::Unreachable | Fault::Timeout)
    }
}
