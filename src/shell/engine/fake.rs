//! An engine in memory, for the converge path's tests: containers, networks
//! and volumes as values, every call recorded in order, so the executor's
//! ordering and "a plan that does nothing makes exactly these calls" are fast
//! tests. A running container with a port answers HTTP on a loopback port of
//! its own (any path, 200), so health gates pass as on a real engine. It is
//! in addition to the real engines' tests, never instead.

use std::collections::BTreeMap;
use std::sync::Mutex;

use futures_util::stream::BoxStream;

use super::{
    BuildOptions, ContainerEvent, ContainerOwner, ContainerState, Engine, EngineError,
    EngineVersion, Fault, Restarts, Usage,
};
use crate::core::desired::{DesiredContainer, DesiredNetwork, DesiredVolume, LABEL_PROJECT};
use crate::core::plan::{Observed, ObservedContainer, ObservedObject, PortBinding};

/// One container of the fake engine.
#[derive(Debug, Clone)]
pub struct FakeContainer {
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub running: bool,
    /// The service's port inside, and the loopback port it answers on while running.
    pub port: u16,
    pub host_port: Option<u16>,
    pub aliases: Vec<String>,
    pub starts: u32,
}

#[derive(Default)]
struct State {
    containers: Vec<FakeContainer>,
    networks: BTreeMap<String, BTreeMap<String, String>>,
    volumes: BTreeMap<String, BTreeMap<String, String>>,
    images: BTreeMap<String, String>,
    next: u64,
    /// The listener of each running container with a port, by ID.
    answering: BTreeMap<String, tokio::task::JoinHandle<()>>,
}

/// The fake engine; `calls()` says what it was asked, in order.
#[derive(Default)]
pub struct FakeEngine {
    state: Mutex<State>,
    calls: Mutex<Vec<String>>,
    /// Armed faults: a call prefix and how the call fails.
    faults: Mutex<Vec<(String, Fault)>>,
}

impl FakeEngine {
    /// An engine that holds the images `images` (reference → ID).
    pub fn with_images(images: &[(&str, &str)]) -> FakeEngine {
        let e = FakeEngine::default();
        e.lock().images = images
            .iter()
            .map(|(r, id)| (r.to_string(), id.to_string()))
            .collect();
        e
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a call; an armed fault for it (see [`FakeEngine::fail`])
    /// fails it, once.
    fn call(&self, what: impl Into<String>) -> Result<(), EngineError> {
        let what = what.into();
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(what.clone());
        let mut faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        match faults
            .iter()
            .position(|(prefix, _)| what.starts_with(prefix.as_str()))
        {
            Some(i) => Err(failure(faults.remove(i).1, &what)),
            None => Ok(()),
        }
    }

    /// Arms a fault: the next call that starts with `prefix` (`create_container
    /// shop-web`, say) fails as `fault` says, once, having changed nothing.
    pub fn fail(&self, prefix: &str, fault: Fault) {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((prefix.to_string(), fault));
    }

    /// Every call so far, `verb object` each, and forgets them.
    pub fn take_calls(&self) -> Vec<String> {
        std::mem::take(&mut *self.calls.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Creates (`labels` given: refused when the name is taken) or removes a
    /// network or volume.
    fn object(
        &self,
        volume: bool,
        labels: Option<&BTreeMap<String, String>>,
        name: &str,
    ) -> Result<(), EngineError> {
        let (what, verb) = match (volume, labels.is_some()) {
            (true, true) => ("volume", "create_volume"),
            (true, false) => ("volume", "remove_volume"),
            (false, true) => ("network", "create_network"),
            (false, false) => ("network", "remove_network"),
        };
        self.call(format!("{verb} {name}"))?;
        let mut s = self.lock();
        let objects = if volume {
            &mut s.volumes
        } else {
            &mut s.networks
        };
        match labels {
            Some(_) if objects.contains_key(name) => Err(conflict(what, name)),
            Some(l) => {
                objects.insert(name.to_string(), l.clone());
                Ok(())
            }
            None => {
                objects.remove(name);
                Ok(())
            }
        }
    }

    pub fn containers(&self) -> Vec<FakeContainer> {
        self.lock().containers.clone()
    }

    /// A container's labels changed in place, as an earlier berth would have
    /// written them.
    pub fn relabel(&self, name: &str, change: impl FnOnce(&mut BTreeMap<String, String>)) {
        if let Some(c) = self.lock().containers.iter_mut().find(|c| c.name == name) {
            change(&mut c.labels);
        }
    }

    /// A container stopped behind berth's back (drift).
    pub fn stop_by_hand(&self, name: &str) {
        let mut s = self.lock();
        let id = s
            .containers
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.id.clone());
        if let Some(id) = id {
            stop(&mut s, &id);
        }
    }
}

/// The error of a call that an armed fault fails, as an engine would say it.
fn failure(fault: Fault, call: &str) -> EngineError {
    let (verb, name) = call.split_once(' ').unwrap_or((call, ""));
    let source = || -> super::error::Cause { format!("fake engine: {verb} failed").into() };
    match fault {
        Fault::Unreachable => EngineError::EngineUnreachable {
            engine: "fake",
            address: "memory".into(),
            source: source(),
        },
        Fault::Timeout => EngineError::EngineUnanswered {
            engine: "fake",
            address: "memory".into(),
            after: std::time::Duration::from_secs(5),
        },
        Fault::Conflict => conflict("container", name),
        Fault::Absent => EngineError::ObjectNotFound {
            verb: "change",
            what: "object",
            name: name.to_string(),
        },
        Fault::Refused => EngineError::ObjectRefused {
            verb: "change",
            what: "object",
            name: name.to_string(),
            source: source(),
        },
    }
}

fn conflict(what: &'static str, name: &str) -> EngineError {
    EngineError::ObjectConflict {
        what,
        name: name.to_string(),
    }
}

fn stop(s: &mut State, id: &str) {
    if let Some(h) = s.answering.remove(id) {
        h.abort();
    }
    if let Some(c) = s.containers.iter_mut().find(|c| c.id == id || c.name == id) {
        c.running = false;
        c.host_port = None;
    }
}

/// A loopback listener that answers every HTTP request with 200.
async fn answer() -> Option<(u16, tokio::task::JoinHandle<()>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.ok()?;
    let port = l.local_addr().ok()?.port();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    Some((port, task))
}

fn object(name: &str, labels: &BTreeMap<String, String>) -> ObservedObject {
    ObservedObject {
        id: name.to_string(),
        name: name.to_string(),
        labels: labels.clone(),
    }
}

#[async_trait::async_trait]
impl Engine for FakeEngine {
    /// It stands in for one Docker engine.
    fn kind(&self) -> crate::core::spec::EngineKind {
        crate::core::spec::EngineKind::Docker
    }
    async fn version(&self) -> Result<EngineVersion, EngineError> {
        self.call("version")?;
        Ok(EngineVersion {
            version: "fake".into(),
            arch: "amd64".into(),
        })
    }
    async fn observe(&self, project: &str) -> Result<Observed, EngineError> {
        self.call(format!("observe {project}"))?;
        let s = self.lock();
        let ours = |name: &str, labels: &BTreeMap<String, String>| {
            name.starts_with(&format!("{project}-"))
                || name.starts_with(&format!("berth-{project}-"))
                || labels.get(LABEL_PROJECT).map(String::as_str) == Some(project)
        };
        Ok(Observed {
            containers: s
                .containers
                .iter()
                .filter(|c| ours(&c.name, &c.labels))
                .map(|c| ObservedContainer {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    labels: c.labels.clone(),
                    state: if c.running { "running" } else { "exited" }.into(),
                    status: String::new(),
                    ports: c
                        .host_port
                        .map(|p| PortBinding {
                            private: c.port,
                            public: Some(p),
                            ip: Some("127.0.0.1".into()),
                        })
                        .into_iter()
                        .collect(),
                    addresses: vec![],
                })
                .collect(),
            networks: s
                .networks
                .iter()
                .filter(|(n, l)| ours(n, l))
                .map(|(n, l)| object(n, l))
                .collect(),
            volumes: s
                .volumes
                .iter()
                .filter(|(n, l)| ours(n, l))
                .map(|(n, l)| object(n, l))
                .collect(),
        })
    }
    async fn image_ids(&self) -> Result<BTreeMap<String, String>, EngineError> {
        self.call("image_ids")?;
        Ok(self.lock().images.clone())
    }
    async fn port_holders(&self) -> Result<BTreeMap<u16, String>, EngineError> {
        self.call("port_holders")?;
        let s = self.lock();
        Ok(s.containers
            .iter()
            .filter_map(|c| Some((c.host_port?, c.name.clone())))
            .collect())
    }
    async fn project_images(
        &self,
        project: &str,
    ) -> Result<Vec<(String, Vec<String>)>, EngineError> {
        self.call(format!("project_images {project}"))?;
        Ok(vec![])
    }
    async fn remove_image(&self, id: &str) -> Result<(), EngineError> {
        self.call(format!("remove_image {id}"))?;
        self.lock().images.retain(|_, v| v != id);
        Ok(())
    }
    async fn image_id(&self, reference: &str) -> Result<Option<String>, EngineError> {
        self.call(format!("image_id {reference}"))?;
        Ok(self.lock().images.get(reference).cloned())
    }
    async fn image_arch(&self, reference: &str) -> Result<Option<String>, EngineError> {
        self.call(format!("image_arch {reference}"))?;
        let known = self.lock().images.contains_key(reference);
        Ok(known.then(|| "amd64".into()))
    }
    async fn image_labels(
        &self,
        reference: &str,
    ) -> Result<Option<BTreeMap<String, String>>, EngineError> {
        self.call(format!("image_labels {reference}"))?;
        let known = self.lock().images.contains_key(reference);
        Ok(known.then(BTreeMap::new))
    }
    async fn object_labels(
        &self,
        volume: bool,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, EngineError> {
        self.call(format!("object_labels {name}"))?;
        let s = self.lock();
        let objects = if volume { &s.volumes } else { &s.networks };
        Ok(objects.get(name).cloned())
    }
    async fn create_network(&self, n: &DesiredNetwork) -> Result<(), EngineError> {
        self.object(false, Some(&n.labels), &n.name)
    }
    async fn remove_network(&self, name: &str) -> Result<(), EngineError> {
        self.object(false, None, name)
    }
    async fn create_volume(&self, v: &DesiredVolume) -> Result<(), EngineError> {
        self.object(true, Some(&v.labels), &v.name)
    }
    async fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        self.object(true, None, name)
    }
    async fn create_container(
        &self,
        name: &str,
        c: &DesiredContainer,
        _secrets: &BTreeMap<String, String>,
    ) -> Result<String, EngineError> {
        self.call(format!("create_container {name}"))?;
        let mut s = self.lock();
        if s.containers.iter().any(|x| x.name == name) {
            return Err(conflict("container", name));
        }
        s.next += 1;
        let id = format!("{:064x}", s.next);
        let aliases = c.create_networks().into_values().flatten().collect();
        s.containers.push(FakeContainer {
            id: id.clone(),
            name: name.to_string(),
            labels: c.engine_labels(),
            running: false,
            port: c.config.port,
            host_port: None,
            aliases,
            starts: 0,
        });
        Ok(id)
    }
    async fn start_container(&self, id: &str, name: &str) -> Result<(), EngineError> {
        self.call(format!("start_container {name}"))?;
        let (port, known) = {
            let s = self.lock();
            let c = s.containers.iter().find(|c| c.id == id || c.name == id);
            (c.map(|c| c.port).unwrap_or(0), c.is_some())
        };
        if !known {
            return Ok(());
        }
        let listener = match port {
            0 => None,
            _ => answer().await,
        };
        let mut s = self.lock();
        if let Some(c) = s.containers.iter_mut().find(|c| c.id == id || c.name == id) {
            if c.running {
                return Ok(());
            }
            c.running = true;
            c.starts += 1;
            c.host_port = listener.as_ref().map(|l| l.0);
            let id = c.id.clone();
            if let Some((_, task)) = listener {
                s.answering.insert(id, task);
            }
        }
        Ok(())
    }
    async fn set_alias(&self, name: &str, alias: &str, present: bool) -> Result<bool, EngineError> {
        self.call(format!("set_alias {name} {alias} {present}"))?;
        let mut s = self.lock();
        let Some(c) = s.containers.iter_mut().find(|c| c.name == name) else {
            return Ok(false);
        };
        let has = c.aliases.iter().any(|a| a == alias);
        if has == present {
            return Ok(false);
        }
        match present {
            true => c.aliases.push(alias.to_string()),
            false => c.aliases.retain(|a| a != alias),
        }
        Ok(true)
    }
    async fn stop_container(&self, id: &str, name: &str) -> Result<(), EngineError> {
        self.call(format!("stop_container {name}"))?;
        stop(&mut self.lock(), id);
        Ok(())
    }
    async fn restart_container(&self, id: &str, name: &str) -> Result<(), EngineError> {
        self.call(format!("restart_container {name}"))?;
        stop(&mut self.lock(), id);
        self.start_container(id, name).await
    }
    async fn rename_container(
        &self,
        id: &str,
        name: &str,
        new_name: &str,
    ) -> Result<(), EngineError> {
        self.call(format!("rename_container {name} {new_name}"))?;
        let mut s = self.lock();
        if s.containers
            .iter()
            .any(|c| c.name == new_name && c.id != id)
        {
            return Err(conflict("container", new_name));
        }
        if let Some(c) = s.containers.iter_mut().find(|c| c.id == id) {
            c.name = new_name.to_string();
        }
        Ok(())
    }
    async fn remove_container(&self, id: &str, name: &str) -> Result<(), EngineError> {
        self.call(format!("remove_container {name}"))?;
        let mut s = self.lock();
        stop(&mut s, id);
        s.containers.retain(|c| c.id != id);
        Ok(())
    }
    async fn copy_volume(
        &self,
        _image: &str,
        name: &str,
        _labels: BTreeMap<String, String>,
        from: &str,
        to: &str,
    ) -> Result<(), EngineError> {
        self.call(format!("copy_volume {name} {from} {to}"))?;
        Ok(())
    }
    async fn container_state(
        &self,
        id: &str,
        _private: u16,
    ) -> Result<Option<ContainerState>, EngineError> {
        self.call(format!("container_state {id}"))?;
        let s = self.lock();
        Ok(s.containers
            .iter()
            .find(|c| c.id == id || c.name == id)
            .map(|c| ContainerState {
                state: if c.running { "running" } else { "exited" }.into(),
                port: c.host_port,
                exit_code: None,
            }))
    }
    async fn published_port(&self, id: &str) -> Result<Option<u16>, EngineError> {
        self.call(format!("published_port {id}"))?;
        let s = self.lock();
        Ok(s.containers
            .iter()
            .find(|c| c.id == id || c.name == id)
            .and_then(|c| c.host_port))
    }
    async fn container_owner(&self, id: &str) -> Result<Option<ContainerOwner>, EngineError> {
        self.call(format!("container_owner {id}"))?;
        let s = self.lock();
        Ok(s.containers
            .iter()
            .find(|c| c.id == id || c.name == id)
            .map(|c| ContainerOwner {
                name: c.name.clone(),
                labels: c.labels.clone(),
            }))
    }
    async fn restarts(&self, id: &str) -> Result<Option<Restarts>, EngineError> {
        self.call(format!("restarts {id}"))?;
        let s = self.lock();
        Ok(s.containers
            .iter()
            .find(|c| c.id == id || c.name == id)
            .map(|_| Restarts::default()))
    }
    async fn usage(&self, id: &str) -> Result<Option<Usage>, EngineError> {
        self.call(format!("usage {id}"))?;
        Ok(None)
    }
    fn logs(
        &self,
        id: &str,
        _follow: bool,
        _tail: Option<usize>,
    ) -> BoxStream<'static, Result<String, EngineError>> {
        match self.call(format!("logs {id}")) {
            Ok(()) => Box::pin(futures_util::stream::empty()),
            Err(e) => Box::pin(futures_util::stream::iter([Err(e)])),
        }
    }
    fn container_events(
        &self,
        project: &str,
    ) -> BoxStream<'static, Result<ContainerEvent, EngineError>> {
        match self.call(format!("container_events {project}")) {
            Ok(()) => Box::pin(futures_util::stream::pending()),
            Err(e) => Box::pin(futures_util::stream::iter([Err(e)])),
        }
    }
    async fn build_image(
        &self,
        tag: &str,
        _context: BoxStream<'static, Result<bytes::Bytes, std::io::Error>>,
        _options: BuildOptions,
        _on_line: &mut (dyn for<'l> FnMut(&'l str) + Send),
    ) -> Result<String, EngineError> {
        self.call(format!("build_image {tag}"))?;
        Err(EngineError::ImageBuild {
            tag: tag.to_string(),
            message: "the fake engine builds nothing".into(),
        })
    }
    async fn image_files(
        &self,
        reference: &str,
        _dir: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, EngineError> {
        self.call(format!("image_files {reference}"))?;
        Ok(vec![])
    }
    async fn image_parts(
        &self,
        reference: &str,
    ) -> Result<Option<crate::core::assemble::Parent>, EngineError> {
        self.call(format!("image_parts {reference}"))?;
        Ok(None)
    }
    async fn load_image(
        &self,
        tag: &str,
        _tarball: BoxStream<'static, Result<bytes::Bytes, std::io::Error>>,
    ) -> Result<(), EngineError> {
        self.call(format!("load_image {tag}"))?;
        Ok(())
    }
    async fn import_rootfs(
        &self,
        repo: &str,
        tag: &str,
        _changes: Vec<String>,
        _tarball: BoxStream<'static, Result<bytes::Bytes, std::io::Error>>,
    ) -> Result<(), EngineError> {
        self.call(format!("import_rootfs {repo}:{tag}"))?;
        Ok(())
    }
}
