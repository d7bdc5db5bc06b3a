//! The converge path against the in-memory engine (`shell::engine::fake`):
//! the order the executor acts in, the exact calls of a plan that does
//! nothing, a drift repair and a switch of the active version, and what an
//! engine that fails a call (refuses it, or goes away) leaves for the next
//! converge. Fast, no Docker; the real
//! engine's tests stay beside these.

use std::sync::Arc;

use berth::converge::{self, Context};
use berth::core::plan::Options;
use berth::shell::engine::fake::FakeEngine;
use berth::shell::engine::Fault;
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
        let (calls, outcome) = self.try_converge(text).await;
        outcome.unwrap();
        calls
    }

    /// The same, with its outcome.
    async fn try_converge(&self, text: &str) -> (Vec<String>, Result<(), converge::ConvergeError>) {
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
        let outcome = converge::converge(&self.ctx, &held, &spec, &path, opts, None, None)
            .await
            .map(|_| ());
        (self.fake.take_calls(), outcome)
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
    // (created answering to its service's); the other version follows in its
    // phase.
    let record = at(&calls, "create_volume shop-berth-routes-1");
    for active in [
        "rename_container shop-web-1.0.0-next-",
        "rename_container shop-worker-0.0.0-next-",
    ] {
        assert!(at(&calls, active) < record, "{active}: {calls:#?}");
    }
    assert!(
        at(&calls, "create_network berth-shop-serve") < at(&calls, "create_container"),
        "the serve network comes before any version: {calls:#?}"
    );
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

/// The calls of a switch of web from 1.0.0 to 1.1.0, where every container
/// was first made as `made` says; no container may start again.
async fn switch_calls(made: impl Fn(&FakeEngine, &str)) -> Vec<String> {
    let w = World::new();
    w.converge(&file("1.0.0")).await;
    for c in w.fake.containers() {
        made(&w.fake, &c.name);
    }
    let starts: Vec<u32> = w.fake.containers().iter().map(|c| c.starts).collect();
    let calls = changes(&w.converge(&file("1.1.0")).await);
    let after: Vec<u32> = w.fake.containers().iter().map(|c| c.starts).collect();
    assert_eq!(after, starts, "no container started again: {calls:#?}");
    calls
}

#[tokio::test(flavor = "multi_thread")]
async fn a_switch_records_the_route_then_moves_the_name_then_releases_the_old_version_and_restarts_nothing(
) {
    let calls = switch_calls(|_, _| {}).await;
    assert_eq!(
        calls,
        [
            "create_volume shop-berth-routes-2",
            "remove_volume shop-berth-routes-1",
            "set_alias shop-web-1.1.0 web true",
            "set_alias shop-web-1.0.0 web false",
            "create_volume shop-berth-routes-3",
            "remove_volume shop-berth-routes-2",
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_made_before_the_serve_network_still_fits_and_takes_the_name_before_the_route_moves(
) {
    // As the berth before the serve network labelled its containers: the
    // configuration without it, hashed.
    let before_serve = |fake: &FakeEngine, name: &str| {
        fake.relabel(name, |labels| {
            let mut config: berth::core::hash::ContainerConfig =
                serde_json::from_str(&labels["berth.config"]).unwrap();
            config.networks.remove("berth-shop-serve");
            labels.insert("berth.hash".into(), config.hash());
            labels.insert("berth.config".into(), config.canonical());
        })
    };
    let calls = switch_calls(before_serve).await;
    assert_eq!(
        calls,
        [
            "set_alias shop-web-1.1.0 web true",
            "create_volume shop-berth-routes-2",
            "remove_volume shop-berth-routes-1",
            "set_alias shop-web-1.0.0 web false",
            "create_volume shop-berth-routes-3",
            "remove_volume shop-berth-routes-2",
        ],
        "nothing replaced, and the name moved first"
    );
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

/// A converge in which the engine fails the first call starting with
/// `prefix` as `fault` says; its calls and error, then the next converge's
/// changes (the engine well again).
async fn failed_then_again(prefix: &str, fault: Fault) -> (Vec<String>, String, Vec<String>) {
    let w = World::new();
    w.fake.fail(prefix, fault);
    let (calls, outcome) = w.try_converge(&file("1.0.0")).await;
    let error = outcome.expect_err("the armed call fails the converge");
    let again = changes(&w.converge(&file("1.0.0")).await);
    let nothing = w.converge(&file("1.0.0")).await;
    assert_eq!(
        nothing,
        ["image_ids", "observe shop"],
        "then it has converged"
    );
    (changes(&calls), error.to_string(), again)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_the_engine_refuses_fails_that_version_alone_and_the_next_converge_makes_only_it()
{
    let (calls, error, again) =
        failed_then_again("create_container shop-web-1.1.0", Fault::Refused).await;
    assert!(error.contains("shop-web-1.1.0"), "{error}");
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with("start_container shop-web-1.1.0")),
        "nothing is started for the refused create: {calls:#?}"
    );
    // The active versions' phase ran before it: what serves came up once.
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("rename_container shop-web-1.0.0-next-")),
        "{calls:#?}"
    );
    let made: Vec<&String> = again
        .iter()
        .filter(|c| c.starts_with("create_container"))
        .collect();
    assert_eq!(
        made.len(),
        1,
        "only the refused version is made again: {again:#?}"
    );
    assert!(
        made[0].starts_with("create_container shop-web-1.1.0-next-"),
        "{made:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_engine_that_goes_away_before_the_plan_changes_nothing_and_says_it_is_away() {
    let w = World::new();
    w.fake.fail("observe", Fault::Unreachable);
    let (calls, outcome) = w.try_converge(&file("1.0.0")).await;
    match outcome {
        Err(converge::ConvergeError::Engine(e)) => {
            assert!(e.engine_away(), "{e}");
            assert!(
                e.to_string().starts_with("cannot reach the fake engine"),
                "{e}"
            );
        }
        other => panic!("an engine error, not {other:?}"),
    }
    assert!(
        changes(&calls).is_empty(),
        "no action before a plan: {calls:#?}"
    );
    assert!(w.fake.containers().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_start_that_times_out_mid_rollout_is_finished_by_the_next_converge() {
    let (calls, error, again) =
        failed_then_again("start_container shop-worker-0.0.0", Fault::Timeout).await;
    assert!(error.contains("did not answer"), "{error}");
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("create_container shop-worker-0.0.0-next-")),
        "{calls:#?}"
    );
    // The failure stopped the later phases; the next converge does what was
    // left (the worker, the routes, the other version) and never makes the
    // version that came up again.
    assert!(
        !again
            .iter()
            .any(|c| c.contains("_container shop-web-1.0.0")),
        "what came up is not made again: {again:#?}"
    );
    for left in [
        "start_container shop-worker-0.0.0",
        "create_volume shop-berth-routes-1",
        "create_container shop-web-1.1.0",
    ] {
        assert!(
            again.iter().any(|c| c.starts_with(left)),
            "{left}: {again:#?}"
        );
    }
    assert!(
        at(&again, "start_container shop-worker-0.0.0")
            < at(&again, "create_volume shop-berth-routes-1"),
        "{again:#?}"
    );
}
