//! `berth watch --notify`: every reconcile outcome told to sinks the test
//! runs and records, through the real binary and engine — the generic JSON
//! webhook (signed), a Slack/Mattermost incoming webhook, ntfy; a sink that
//! fails twice is tried again, a sink that never answers delays no
//! reconcile, a rollback is never called a success, and no secret (the
//! service's, the sink's) is ever in a message.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::daemon::Daemon;
use common::{eventually, Project};

/// One request a sink got: its headers (lowercase names) and body.
#[derive(Debug, Clone)]
struct Got {
    headers: Vec<(String, String)>,
    body: String,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Copy)]
enum Answer {
    Ok,
    /// 500 to the first N requests, then 200.
    FailFirst(usize),
    /// Never answers.
    Hang,
}

/// A sink on a loopback port recording what it gets.
struct Sink {
    url: String,
    got: Arc<Mutex<Vec<Got>>>,
}

impl Sink {
    fn start(answer: Answer) -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/sink", listener.local_addr().unwrap());
        let got: Arc<Mutex<Vec<Got>>> = Default::default();
        let seen = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut headers = Vec::new();
                    let mut line = String::new();
                    let _ = reader.read_line(&mut line);
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = line.split_once(':') {
                            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                        }
                    }
                    let length: usize = headers
                        .iter()
                        .find(|(k, _)| k == "content-length")
                        .and_then(|(_, v)| v.parse().ok())
                        .unwrap_or(0);
                    let mut body = vec![0u8; length];
                    let _ = reader.read_exact(&mut body);
                    let n = {
                        let mut all = seen.lock().unwrap();
                        all.push(Got {
                            headers,
                            body: String::from_utf8_lossy(&body).into_owned(),
                        });
                        all.len()
                    };
                    let status = match answer {
                        Answer::Hang => {
                            std::thread::sleep(Duration::from_secs(60));
                            return;
                        }
                        Answer::FailFirst(k) if n <= k => "500 Internal Server Error",
                        _ => "200 OK",
                    };
                    let mut stream = stream;
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                });
            }
        });
        Sink { url, got }
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// The kinds of the generic notices received, in order.
    fn kinds(&self) -> Vec<String> {
        self.got()
            .iter()
            .filter_map(|g| serde_json::from_str::<serde_json::Value>(&g.body).ok())
            .map(|v| v["kind"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

/// Two versions; `GREETING` says which file this is; 1.1.0's command is
/// `second` (a working server, or one that prints the secret and 404s).
fn spec(greeting: &str, second: &str) -> String {
    format!(
        "project: {{p}}\nservices:\n  web:\n    image: berth-local/busybox:stable\n    command: [sh, -c, 'echo $GREETING > /www/index.html && exec httpd -f -p 8000 -h /www']\n    env: {{ GREETING: {greeting} }}\n    secrets: {{ TOKEN: {{ from_env: NOTIFY_TEST_SECRET }} }}\n    health: {{ timeout: 3s, interval: 100ms }}\n    versions:\n      \"1.0.0\": {{}}\n      \"1.1.0\": {{ command: [sh, -c, '{second}'] }}\n    active: \"1.1.0\"\n"
    )
}

const SERVES: &str = "echo $GREETING > /www/index.html && exec httpd -f -p 8000 -h /www";
const SECRET_VALUE: &str = "hunter2-notify-secret";
const SINK_SECRET: &str = "sink-signing-secret";

#[test]
fn every_outcome_reaches_every_sink_signed_retried_never_blocking_and_never_with_a_secret() {
    let Some(p) = Project::new("notify") else {
        return;
    };
    let generic = Sink::start(Answer::Ok);
    let slack = Sink::start(Answer::Ok);
    let ntfy = Sink::start(Answer::Ok);
    let flaky = Sink::start(Answer::FailFirst(2));
    let hanging = Sink::start(Answer::Hang);
    std::fs::write(p.dir.path().join("sink.secret"), format!("{SINK_SECRET}\n")).unwrap();
    std::fs::write(
        p.dir.path().join("notify.yaml"),
        format!(
            "sinks:\n  - {{ kind: webhook, url: {}, secret_file: sink.secret }}\n  - {{ kind: slack, url: {} }}\n  - {{ kind: ntfy, url: {} }}\n  - {{ kind: webhook, url: {} }}\n  - {{ kind: webhook, url: {} }}\nretry: {{ attempts: 5, first_ms: 50 }}\n",
            generic.url, slack.url, ntfy.url, flaky.url, hanging.url
        ),
    )
    .unwrap();
    p.write(&spec("one", SERVES));
    let d = Daemon::start_env(
        &p,
        &[
            "-f",
            "services.yaml",
            "--interval",
            "1h",
            "--notify",
            "notify.yaml",
        ],
        &[("NOTIFY_TEST_SECRET", SECRET_VALUE)],
    );
    let until = |sink: &Sink, kinds: &[&str]| {
        eventually(
            Duration::from_secs(30),
            || format!("the sink got {kinds:?}; it has {:?}", sink.kinds()),
            || sink.kinds() == kinds,
        )
    };
    until(&generic, &["applied"]);

    // A new version that prints its secret and fails its gate: the running
    // one is kept, and said so.
    p.write(&spec(
        "two",
        "echo leaked=$TOKEN; exec httpd -f -p 8000 -h /tmp",
    ));
    until(&generic, &["applied", "gate-failed"]);
    // An invalid file: refused, nothing changed.
    std::fs::write(p.dir.path().join("services.yaml"), "services: [").unwrap();
    until(&generic, &["applied", "gate-failed", "source-refused"]);
    // Back to a good file, then a rollback asked of the API: never a success.
    p.write(&spec("three", SERVES));
    until(
        &generic,
        &["applied", "gate-failed", "source-refused", "applied"],
    );
    let (code, said) = d.curl(&[
        "/rollback/web?to=1.0.0",
        "-X",
        "POST",
        "-H",
        "Authorization: Bearer test-token",
    ]);
    assert_eq!(code, 200, "{said}");
    let all = [
        "applied",
        "gate-failed",
        "source-refused",
        "applied",
        "rolled-back",
    ];
    until(&generic, &all);

    // The hanging sink delayed no reconcile: each took well under its
    // 10 s try, while that sink still holds its first delivery.
    let s = d.status();
    let recent: Vec<f64> = s["recent"]
        .as_array()
        .unwrap()
        .iter()
        .chain(std::iter::once(&s["last_reconcile"]))
        .filter_map(|r| r["duration_seconds"].as_f64())
        .collect();
    assert!(
        recent.iter().all(|secs| *secs < 8.0),
        "reconciles took {recent:?}"
    );
    assert!(
        hanging.got().len() < 5,
        "the hanging sink is still on its first notice: {}",
        hanging.got().len()
    );

    // Generic: the documented JSON, signed with the sink's secret.
    let notices = generic.got();
    for g in &notices {
        let signature = g.header("x-berth-signature-256").expect("signed");
        assert_eq!(
            signature,
            berth::core::webhook::sign(SINK_SECRET.as_bytes(), g.body.as_bytes())
        );
        let v: serde_json::Value = serde_json::from_str(&g.body).unwrap();
        assert_eq!(v["schema"], "berth.notice/v1");
        assert_eq!(v["project"], p.name.as_str());
        assert_eq!(g.header("x-berth-event"), v["kind"].as_str());
    }
    let gate: serde_json::Value = serde_json::from_str(&notices[1].body).unwrap();
    assert!(
        gate["summary"]
            .as_str()
            .unwrap()
            .contains("the running one keeps serving")
            && gate["detail"]
                .as_str()
                .unwrap()
                .contains("never became healthy"),
        "{gate}"
    );
    let rolled: serde_json::Value = serde_json::from_str(&notices[4].body).unwrap();
    let summary = rolled["summary"].as_str().unwrap();
    assert!(
        summary.contains("rolled back to 1.0.0") && !summary.contains("success"),
        "{rolled}"
    );
    // Slack and ntfy: the same outcomes, in their own forms.
    eventually(
        Duration::from_secs(10),
        || {
            format!(
                "slack and ntfy got five each: {} {}",
                slack.got().len(),
                ntfy.got().len()
            )
        },
        || slack.got().len() == 5 && ntfy.got().len() == 5,
    );
    let texts: Vec<String> = slack
        .got()
        .iter()
        .map(|g| {
            serde_json::from_str::<serde_json::Value>(&g.body).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        texts[1].starts_with(&format!("[berth] {}: gate-failed", p.name)),
        "{texts:?}"
    );
    let n = &ntfy.got()[1];
    assert_eq!(
        n.header("title"),
        Some(format!("berth {}: gate-failed", p.name).as_str())
    );
    assert_eq!(n.header("priority"), Some("4"));
    assert!(
        n.header("tags").is_some_and(|t| t.contains("warning")),
        "{n:?}"
    );
    // The flaky sink: its first delivery tried three times, then every one.
    eventually(
        Duration::from_secs(10),
        || format!("the flaky sink got all five: {:?}", flaky.kinds()),
        || flaky.got().len() >= 7,
    );
    assert_eq!(
        flaky.kinds()[..3],
        ["applied", "applied", "applied"],
        "tried again"
    );
    // No secret anywhere: neither the service's nor the sink's.
    for sink in [&generic, &slack, &ntfy, &flaky] {
        for g in sink.got() {
            let all = format!("{:?} {}", g.headers, g.body);
            assert!(
                !all.contains(SECRET_VALUE),
                "the service's secret leaked: {all}"
            );
            assert!(
                !all.contains(SINK_SECRET),
                "the sink's secret leaked: {all}"
            );
        }
    }
    drop(d);
}
