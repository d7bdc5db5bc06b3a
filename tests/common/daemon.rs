//! A running `berth watch` driven over its API, for the daemon's tests.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{eventually, free_port, text, Project, BERTH};

/// A running `berth watch`; killed (SIGKILL) if a test fails before stopping it.
pub struct Daemon {
    pub child: Child,
    pub port: u16,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// Follows services.yaml (1 h resync) with the gateway on a free port, and
    /// `extra` arguments; returns the daemon and the gateway's port, once converged.
    pub fn with_gateway(p: &Project, extra: &[&str]) -> (Daemon, u16) {
        let port = free_port();
        let gateway = format!("127.0.0.1:{port}");
        let mut args = vec![
            "-f",
            "services.yaml",
            "--interval",
            "1h",
            "--gateway",
            &gateway,
        ];
        args.extend_from_slice(extra);
        let d = Daemon::start(p, &args);
        d.wait_for(Duration::from_secs(20), |s| {
            s["last_reconcile"]["result"] == "ok"
        });
        (d, port)
    }

    pub fn start(p: &Project, args: &[&str]) -> Daemon {
        Daemon::start_env(p, args, &[])
    }

    /// `watch --projects ...` (the root serves a list, not one project's
    /// status): returned once the listener answers.
    pub fn start_projects(p: &Project, args: &[&str]) -> Daemon {
        let d = Daemon::spawn(p, args, &[]);
        eventually(
            Duration::from_secs(30),
            || "the listener".into(),
            || d.curl(&["/healthz"]).0 != 0,
        );
        d
    }

    pub fn start_env(p: &Project, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let d = Daemon::spawn(p, args, env);
        d.wait_for(Duration::from_secs(60), |s| {
            !s["last_reconcile"].is_null() || !s["last_error"].is_null()
        });
        d
    }

    fn spawn(p: &Project, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(p.dir.path().join("daemon.log")).unwrap();
        let child = Command::new(BERTH)
            .arg("watch")
            .args(args)
            .args(["--listen", &listen])
            .current_dir(p.dir.path())
            .env("BERTH_STATE_DIR", p.dir.path().join(".state"))
            .env("BERTH_TOKEN", "test-token")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Daemon { child, port }
    }

    pub fn curl(&self, args: &[&str]) -> (u16, String) {
        let url = format!("http://127.0.0.1:{}{}", self.port, args[0]);
        let out = Command::new("curl")
            .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "60"])
            .args(&args[1..])
            .arg(&url)
            .output()
            .unwrap();
        let body = text(&out.stdout);
        let (body, code) = body.rsplit_once('\n').unwrap_or(("", "0"));
        (code.parse().unwrap_or(0), body.to_string())
    }

    /// `POST /reconcile` with the root token.
    pub fn reconcile(&self) -> (u16, String) {
        self.curl(&[
            "/reconcile",
            "-X",
            "POST",
            "-H",
            "Authorization: Bearer test-token",
        ])
    }

    pub fn status(&self) -> serde_json::Value {
        let (code, body) = self.curl(&["/status", "-H", AUTH]);
        if code != 200 {
            return serde_json::Value::Null;
        }
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null)
    }

    pub fn metric(&self, name: &str) -> f64 {
        let (_, body) = self.curl(&["/metrics", "-H", AUTH]);
        body.lines()
            .find_map(|l| {
                l.strip_prefix(&format!("{name} "))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(-1.0)
    }

    /// Polls /status until `ok` holds; panics after `limit`.
    pub fn wait_for(
        &self,
        limit: Duration,
        ok: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let s = self.status();
            if !s.is_null() && ok(&s) {
                return s;
            }
            assert!(
                start.elapsed() < limit,
                "timed out waiting; last status: {s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The daemon's token (BERTH_TOKEN: every permission).
const AUTH: &str = "Authorization: Bearer test-token";

pub const ONE: &str = "project: {p}\nservices:\n  web:\n    image: berth-local/busybox:stable\n    command: [sh, -c, 'echo $GREETING > /www/index.html && exec httpd -f -p 8000 -h /www']\n    env: { GREETING: one }\n";

pub fn greeting(p: &Project) -> String {
    // Between a replace's rename and create the name is briefly free.
    let env = p
        .try_inspect(
            &format!("{}-web-0.0.0", p.name),
            "{{range .Config.Env}}{{println .}}{{end}}",
        )
        .unwrap_or_default();
    env.lines()
        .find_map(|l| l.strip_prefix("GREETING="))
        .unwrap_or("")
        .to_string()
}

pub fn wait_greeting(p: &Project, want: &str) {
    eventually(
        Duration::from_secs(20),
        || format!("never converged to GREETING={want}"),
        || greeting(p) == want,
    );
}
