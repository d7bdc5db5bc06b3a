//! Encrypted secrets in the repository, through the real binary and engine:
//! a value age-encrypted to berth's key reaches the service, and nowhere
//! else (not the plan, a saved plan, `status`, berth's state); a file
//! encrypted to another key, an altered value or a missing key is an error
//! naming the file and the name, and nothing changes.

mod common;

use std::time::Duration;

use age::secrecy::ExposeSecret;
use common::{eventually, free_port, http_get, text, Project};

const SPEC: &str = "project: {p}\nsecrets_file: secrets.yaml\nservices:\n  api:\n    image: berth-local/busybox:stable\n    command: [sh, -c, 'echo $DB_PASSWORD > /www/index.html && exec httpd -f -p 8000 -h /www']\n    publish: PORT\n    secrets: { DB_PASSWORD: { encrypted: DB_PASSWORD } }\n";

/// `secrets.yaml` holding `value` as DB_PASSWORD, encrypted to `to`.
fn sealed(p: &Project, to: &age::x25519::Recipient, value: &str) -> String {
    let armored = age::encrypt_and_armor(to, value.as_bytes()).unwrap();
    let indented: String = armored.lines().map(|l| format!("  {l}\n")).collect();
    let text = format!("DB_PASSWORD: |\n{indented}");
    std::fs::write(p.dir.path().join("secrets.yaml"), &text).unwrap();
    text
}

/// Every file under `dir`, read as bytes, that holds `needle`.
fn files_holding(dir: &std::path::Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                todo.push(path);
            } else if std::fs::read(&path)
                .is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
            {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

#[test]
fn an_encrypted_secret_reaches_the_service_alone_and_a_foreign_or_altered_one_changes_nothing() {
    let Some(p) = Project::new("sealed") else {
        return;
    };
    let key = age::x25519::Identity::generate();
    let key_file = p.dir.path().join("key.txt");
    std::fs::write(
        &key_file,
        format!("# berth's key\n{}\n", key.to_string().expose_secret()),
    )
    .unwrap();
    let with_key = [("BERTH_AGE_KEY_FILE", key_file.to_str().unwrap())];
    let port = free_port();
    p.write(&SPEC.replace("PORT", &port.to_string()));
    let first = "db-pass-one-7f3a";
    sealed(&p, &key.to_public(), first);

    // Without the key: refused before any action, saying what to set.
    let out = p.berth(&["apply"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("no age key is set") && err.contains("secrets.yaml"),
        "{err}"
    );
    assert!(p.containers().is_empty(), "nothing was created");

    let out = p.berth_env(&["apply"], &with_key);
    assert!(out.status.success(), "{}", text(&out.stderr));
    eventually(
        Duration::from_secs(10),
        || {
            format!(
                "the service serves its secret: {:?}; apply said {}{}; containers {:?}",
                http_get(port, "/", None),
                text(&out.stdout),
                text(&out.stderr),
                p.containers()
            )
        },
        || http_get(port, "/", None) == (200, first.to_string()),
    );
    let running = p.containers();

    // The value is nowhere but in the container: not the plan, a saved plan,
    // status, or anything berth keeps.
    let plan = p.berth_env(&["plan", "--json", "--out", "saved.json"], &with_key);
    let status = p.berth_env(&["status", "--json"], &with_key);
    for out in [&plan, &status] {
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(!all.contains(first), "{all}");
    }
    let saved = std::fs::read_to_string(p.dir.path().join("saved.json")).unwrap();
    assert!(!saved.contains(first), "{saved}");
    assert_eq!(
        files_holding(&p.dir.path().join(".state"), first),
        Vec::<String>::new()
    );

    // Encrypted to another key: refused, naming the file and the name.
    let other = age::x25519::Identity::generate();
    sealed(&p, &other.to_public(), "db-pass-two-91c2");
    let out = p.berth_env(&["apply"], &with_key);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot open `DB_PASSWORD` of")
            && err.contains("secrets.yaml")
            && err.contains("encrypted to another key"),
        "{err}"
    );
    // Altered: one character of the ciphertext changed.
    let good = sealed(&p, &key.to_public(), "db-pass-two-91c2");
    let lines: Vec<&str> = good.lines().collect();
    let body = lines[2];
    let flipped: String = body
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i == 10 {
                if c == 'A' {
                    'B'
                } else {
                    'A'
                }
            } else {
                c
            }
        })
        .collect();
    let altered = good.replacen(body, &flipped, 1);
    std::fs::write(p.dir.path().join("secrets.yaml"), &altered).unwrap();
    let out = p.berth_env(&["apply"], &with_key);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("cannot open `DB_PASSWORD` of"), "{err}");
    assert_eq!(p.containers(), running, "nothing changed");
    assert_eq!(http_get(port, "/", None), (200, first.to_string()));

    // A new value, through a saved plan: the same values as when it was made.
    std::fs::write(p.dir.path().join("secrets.yaml"), &good).unwrap();
    p.berth_env(&["plan", "--out", "next.json"], &with_key);
    let out = p.berth_env(&["apply", "--plan", "next.json"], &with_key);
    assert!(out.status.success(), "{}", text(&out.stderr));
    eventually(
        Duration::from_secs(10),
        || "the service serves its new secret".into(),
        || http_get(port, "/", None) == (200, "db-pass-two-91c2".into()),
    );
}
