//! The converge path against the in-memory engine (`shell::fake`): the order
//! the executor acts in, and the exact calls of a plan that does nothing, a
//! drift repair and a switch of the active version. Fast, no Docker; the real
//! engine's tests stay beside these.

use std::sync::Arc;

use berth::converge::{self, Context};
use berth::core::plan::Options;
use berth::shell::fake::FakeEngine;
use berth::shell::settings::Settings;

const IMAGE: &str = "berth-local/busybox:stable";

fn file(active: &str) -> String {
    format!(
        "project: shop\nservices:\n  web:\n    image: {IMAGE}\n    command: [httpd, -f]\n    versions: {{ \"1.0.0\": {{}}, \"1.1.0\": {{}} }}\n    active: \"{active}\"\n    health: {{ interval: 20ms }}\n  worker:\n    image: {IMAGE}\n    command: [sleep, '3600']\n    health: {{ none: true }}\n"
    )
}

struct World {
    dir: tempfile::TempDir,
    fake: Arc<FakeEngine>,
    ctx: Context,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let fake = Arc::new(FakeEngine::with_images(&[(IMAGE, "sha256:b0b0")]));
        let settings = Settings::from_env(Some(dir.path().join("state")), Default::default());
        let ctx = Context {
            engine: fake.clone(),
            settings,
            verbose: false,
            color: false,
            confine: None,
            private_assets: false,
        };
        World { dir, fake, ctx }
    }

    /// Converges to `text` as `berth apply` does; the engine's calls made.
    async fn converge(&self, text: &str) -> Vec<String> {
        let path = self.dir.path().join("services.yaml");
        std::fs::write(&path, text).unwrap();
        let spec = converge::load(&self.ctx.settings, &path).unwrap();
        let held = converge::lock(&self.ctx.settings, &spec.project, "test", |_| {})
            .await
            .unwrap();
        let opts = Options {
            allow_empty: false,
            retry_failed: true,
        };
        self.fake.take_calls();
        converge::converge(&self.ctx, &held, &spec, &path, opts, None, None)
            .await
            .unwrap();
        self.fake.take_calls()
    }
}

/// The calls that change something (not the reads).
fn changes(calls: &[String]) -> Vec<String> {
    let reads = [
        "observe",
        "image_",
        "object_labels",
        "container_",
        "published_port",
        "restarts",
        "port_holders",
        "project_images",
        "logs",
        "usage",
    ];
    calls
        .iter()
        .filter(|c| !reads.iter().any(|r| c.starts_with(r)))
        .cloned()
        .collect()
}

fn at(calls: &[String], prefix: &str) -> usize {
    calls
        .iter()
        .position(|c| c.starts_with(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` in {calls:#?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_converge_creates_the_network_first_and_each_version_on_probation_then_records_its_routes(
) {
    let w = World::new();
    let calls = changes(&w.converge(&file("1.0.0")).await);
    let network = at(&calls, "create_network berth-shop-global");
    for v in ["shop-web-1.0.0", "shop-web-1.1.0", "shop-worker-0.0.0"] {
        let create = at(&calls, &format!("create_container {v}-next-"));
        let start = at(&calls, &format!("start_container {v}-next-"));
        let rename = at(&calls, &format!("rename_container {v}-next-"));
        assert!(
            network < create && create < start && start < rename,
            "{v}: {calls:#?}"
        );
        assert!(calls[rename].ends_with(&format!(" {v}")), "{calls:#?}");
    }
    // The routes record comes once each active version runs under its name
    // and answers to its service's; the other version follows in its phase.
    let record = at(&calls, "create_volume shop-berth-routes-1");
    for active in [
        "rename_container shop-web-1.0.0-next-",
        "rename_container shop-worker-0.0.0-next-",
        "set_alias shop-web-1.0.0 web true",
    ] {
        assert!(at(&calls, active) < record, "{active}: {calls:#?}");
    }
    let names: Vec<String> = w.fake.containers().iter().map(|c| c.name.clone()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    let web = w
        .fake
        .containers()
        .into_iter()
        .find(|c| c.name == "shop-web-1.0.0")
        .unwrap();
    assert!(
        web.running && web.aliases.contains(&"web".to_string()),
        "{web:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_converge_with_nothing_to_do_makes_exactly_its_list_calls() {
    let w = World::new();
    w.converge(&file("1.0.0")).await;
    let calls = w.converge(&file("1.0.0")).await;
    assert_eq!(
        calls,
        ["image_ids", "observe shop"],
        "a plan that does nothing lists the images once and what runs once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_stopped_by_hand_is_started_again_and_nothing_else_changes() {
    let w = World::new();
    w.converge(&file("1.0.0")).await;
    w.fake.stop_by_hand("shop-worker-0.0.0");
    let calls = changes(&w.converge(&file("1.0.0")).await);
    assert_eq!(calls, ["start_container shop-worker-0.0.0"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_switch_moves_the_name_records_it_then_releases_the_old_version_and_restarts_nothing() {
    let w = World::new();
    w.converge(&file("1.0.0")).await;
    let starts: Vec<u32> = w.fake.containers().iter().map(|c| c.starts).collect();
    let calls = changes(&w.converge(&file("1.1.0")).await);
    assert_eq!(
        calls,
        [
            "set_alias shop-web-1.1.0 web true",
            "create_volume shop-berth-routes-2",
            "remove_volume shop-berth-routes-1",
            "set_alias shop-web-1.0.0 web false",
            "create_volume shop-berth-routes-3",
            "remove_volume shop-berth-routes-2",
        ]
    );
    let after: Vec<u32> = w.fake.containers().iter().map(|c| c.starts).collect();
    assert_eq!(after, starts, "no container started again");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_saved_plan_carried_out_records_the_active_versions_as_a_converge_does() {
    let w = World::new();
    w.converge(&file("1.0.0")).await;
    let path = w.dir.path().join("services.yaml");
    std::fs::write(&path, file("1.1.0")).unwrap();
    let spec = converge::load(&w.ctx.settings, &path).unwrap();
    let opts = Options {
        allow_empty: false,
        retry_failed: true,
    };
    let plan = converge::facts::make_plan(&w.ctx, &spec, &path, opts)
        .await
        .unwrap();
    let held = converge::lock(&w.ctx.settings, "shop", "test", |_| {})
        .await
        .unwrap();
    converge::saved::apply(&w.ctx, &held, &w.dir.path().join("plan.json"), &plan)
        .await
        .unwrap();
    let history = berth::shell::state::history(&w.ctx.settings.state_dir, "shop").unwrap();
    assert_eq!(history["web"], ["1.0.0", "1.1.0"], "{history:?}");
}
