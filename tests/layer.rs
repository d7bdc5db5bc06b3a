//! The code layer berth writes itself, against the real engine: its files'
//! owners and modes, its config and history, one content giving one image ID,
//! and the engine's own build when the engine refuses the load.

mod common;

use common::{docker, text, Project};

/// What a service image holds and says: its files' owners and modes, its
/// user, command and service label.
fn image_facts(tag: &str) -> (String, String) {
    let owners = docker(&[
        "run",
        "--rm",
        "--entrypoint",
        "stat",
        tag,
        "-c",
        "%n %u:%g %a",
        "/app",
        "/app/lib",
        "/app/lib/deep",
        "/app/lib/deep/util.py",
        "/app/main.py",
    ]);
    let config = docker(&[
        "image",
        "inspect",
        "--format",
        "{{.Config.User}} {{json .Config.Cmd}} {{index .Config.Labels \"berth.service\"}}",
        tag,
    ]);
    (owners, config)
}

#[test]
fn a_code_layer_is_loaded_owned_by_the_app_user_and_one_content_gives_one_image() {
    let Some(p) = Project::with_runtimes("assembled", &["python3.11"]) else {
        return;
    };
    let src = p.copy_example("python-stdlib");
    std::fs::create_dir_all(src.join("lib/deep")).unwrap();
    std::fs::write(src.join("lib/deep/util.py"), "X = 1\n").unwrap();
    p.write(&format!(
        "project: {{p}}\nservices:\n  web:\n    runtime: python3.11\n    package: {}\n",
        src.display()
    ));
    let out = p.berth(&["build"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("code layer: 2 files under /app/, owned by 10001:10001, loaded over berth-local/python3.11:stable"),
        "no engine build for code without dependencies: {}",
        text(&out.stderr)
    );
    let tag = docker(&[
        "images",
        "--format",
        "{{.Repository}}:{{.Tag}}",
        &format!("berth/{}-web", p.name),
    ]);
    let id = docker(&["image", "inspect", "--format", "{{.Id}}", &tag]);
    let facts = image_facts(&tag);
    assert_eq!(
        facts.0,
        "/app 10001:10001 755\n/app/lib 10001:10001 755\n/app/lib/deep 10001:10001 755\n/app/lib/deep/util.py 10001:10001 644\n/app/main.py 10001:10001 644",
        "as BuildKit's `COPY --chown` leaves them: the code's directories too, /app itself included"
    );
    assert_eq!(facts.1, "10001:10001 [\"python3\",\"main.py\"] web");
    let history = docker(&["history", "--no-trunc", "--format", "{{.CreatedBy}}", &tag]);
    assert!(
        history.starts_with("berth: the code under /app/ as one layer, owned by 10001:10001"),
        "{history}"
    );

    docker(&["rmi", &tag]);
    let out = p.berth(&["build"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        docker(&["image", "inspect", "--format", "{{.Id}}", &tag]),
        id,
        "the same code on the same base is the same image"
    );

    // An engine that refuses the load (here: a layer whose digest the config
    // misstates) gets the whole Dockerfile built, to the same files and config.
    docker(&["rmi", &tag]);
    let out = p.berth_env(&["build"], &[("BERTH_FAULT", "layer-digest")]);
    let said = text(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains(&format!(
            "the engine builds {tag} from its Dockerfile instead"
        )),
        "{said}"
    );
    assert_eq!(
        image_facts(&tag),
        facts,
        "the fallback builds the same image"
    );
    let history = docker(&["history", "--no-trunc", "--format", "{{.CreatedBy}}", &tag]);
    assert!(
        history.contains("COPY app/ /app/ # buildkit"),
        "built by the engine: {history}"
    );
    assert!(
        p.ok(&["build"]).contains(&format!("= cached    {tag}")),
        "the fallback's image is cached like a loaded one"
    );
}
