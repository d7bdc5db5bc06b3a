//! The Swarm lab (`scripts/swarm-lab`) for a test: up on creation, down on drop,
//! even when an assertion fails half-way.

use std::process::{Command, Output};

use super::{docker, text};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/swarm-lab");

pub struct Lab {
    _turn: std::sync::MutexGuard<'static, ()>,
    pub dir: tempfile::TempDir,
    /// The manager's DOCKER_HOST.
    pub host: String,
    /// The lab registry, HOST:PORT.
    pub registry: String,
    /// How long `up` took, in seconds.
    pub up_secs: f64,
}

pub fn script(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(SCRIPT)
        .args(args)
        .env("BERTH_LAB_DIR", dir)
        .output()
        .unwrap()
}

/// Whether the lab can run here: root is needed (namespaces, dockerd). In CI
/// it must; elsewhere a skip is said loudly.
pub fn possible() -> bool {
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but not root: the swarm lab needs root"
    );
    eprintln!("\n!!! SKIPPED: the swarm lab needs root (network namespaces, dockerd) !!!\n");
    false
}

/// One lab at a time: its names (namespaces, bridge) are fixed.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Lab {
    pub fn up(nodes: usize) -> Lab {
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let started = std::time::Instant::now();
        let out = script(&dir.path().join("lab"), &["up", &nodes.to_string()]);
        let up_secs = started.elapsed().as_secs_f64();
        let env = text(&out.stdout);
        let mut lab = Lab {
            _turn: turn,
            dir,
            host: String::new(),
            registry: String::new(),
            up_secs,
        };
        assert!(out.status.success(), "swarm-lab up: {}", text(&out.stderr));
        for line in env.lines() {
            if let Some(h) = line.strip_prefix("DOCKER_HOST=") {
                lab.host = h.to_string();
            } else if let Some(r) = line.strip_prefix("BERTH_LAB_REGISTRY=") {
                lab.registry = r.to_string();
            }
        }
        assert!(!lab.host.is_empty() && !lab.registry.is_empty(), "{env}");
        lab
    }

    pub fn lab_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("lab")
    }

    /// The docker CLI against the manager.
    pub fn docker(&self, args: &[&str]) -> String {
        let mut all = vec!["-H", self.host.as_str()];
        all.extend_from_slice(args);
        docker(&all)
    }

    /// `program args` in the manager's network namespace: where berth runs on
    /// a real manager, reaching every node's address.
    pub fn on_manager(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg("--net=/run/netns/berthlab-1").arg(program).args(args);
        c
    }

    /// Requests `url` from the manager in a loop until `stop` exists, then
    /// says how many answered 200 and how many did not: (ok, failed).
    pub fn request_loop(&self, url: &str, stop: &std::path::Path) -> std::process::Child {
        let script = format!(
            "ok=0; bad=0; while [ ! -e {stop} ]; do if curl -sf -m 10 -o /dev/null {url}; then ok=$((ok+1)); else bad=$((bad+1)); fi; done; echo $ok $bad",
            stop = stop.display()
        );
        self.on_manager("sh", &["-c", &script])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// `docker service inspect --format <template> <service>` on the manager.
    pub fn inspect(&self, service: &str, template: &str) -> String {
        self.docker(&["service", "inspect", "--format", template, service])
    }

    /// The tasks of `service` meant to run: `<node> <current state>` each.
    pub fn tasks(&self, service: &str) -> Vec<String> {
        self.docker(&[
            "service",
            "ps",
            "--filter",
            "desired-state=running",
            "--format",
            "{{.Node}} {{.CurrentState}}",
            service,
        ])
        .lines()
        .map(String::from)
        .collect()
    }

    /// Copies a host image to the manager (a base berth builds on there).
    pub fn load(&self, image: &str) {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "docker save {image} | docker -H {} load -q",
                self.host
            ))
            .output()
            .unwrap();
        assert!(out.status.success(), "load: {}", text(&out.stderr));
    }

    /// Puts a host image into the lab registry (through the manager) as `name`;
    /// returns its reference there.
    pub fn push(&self, image: &str, name: &str) -> String {
        let target = format!("{}/{name}", self.registry);
        let host = &self.host;
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "docker save {image} | docker -H {host} load -q && docker -H {host} tag {image} {target} && docker -H {host} push -q {target}"
            ))
            .output()
            .unwrap();
        assert!(out.status.success(), "push: {}", text(&out.stderr));
        target
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let out = script(&self.lab_dir(), &["down"]);
        if !out.status.success() {
            eprintln!("swarm-lab down: {}", text(&out.stderr));
        }
    }
}
