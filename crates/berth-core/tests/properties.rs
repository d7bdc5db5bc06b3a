//! Properties of the core over generated inputs (proptest, bounded case counts):
//! the spec loader never panics, the route resolver picks the longest prefix at
//! a segment boundary, no request reaches a private route without a token that
//! may view it, and the planner converges: a plan applied to what it was
//! made against leaves nothing to do, and never names what the project does
//! not own.

use std::collections::BTreeMap;

use berth_core::desired::{resolve, Facts, LABEL_CONFIG, LABEL_HASH, LABEL_PROJECT};
use berth_core::plan::{plan, Action, Observed, ObservedContainer, ObservedObject, Options};
use berth_core::route::{Route, RouteTable};
use berth_core::spec::parse;
use proptest::prelude::*;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// Text that looks like a services file often enough to get past the parser:
/// known keys and values, mixed with noise.
fn spec_text() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "project", "services", "image", "package", "runtime", "versions", "active", "env",
        "secrets", "keeps", "path", "port", "publish", "machine", "scope", "health", "public",
        "assets", "command", "bogus",
    ]);
    let value = prop::sample::select(vec![
        "p",
        "web",
        "busybox",
        "/x",
        "/_db/a",
        "8000",
        "0",
        "70000",
        "small",
        "huge",
        "python3.11",
        "\"1.0.0\"",
        "[/d, /d]",
        "{ A: b }",
        "{ database: x }",
        "\"\\0\"",
        "",
        "{ timeout: 1s }",
        "[a, b]",
        "true",
        "- x",
        ": :",
        "\"",
    ]);
    let line = (0usize..4, key, value)
        .prop_map(|(indent, k, v)| format!("{}{k}: {v}", "  ".repeat(indent)));
    prop::collection::vec(line, 0..12).prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(config(400))]

    #[test]
    fn the_spec_loader_never_panics_on_arbitrary_text(text in "\\PC*") {
        let _ = parse("f.yaml", &text);
    }

    #[test]
    fn the_spec_loader_loads_or_says_what_is_wrong(text in spec_text()) {
        match parse("f.yaml", &text) {
            Ok(spec) => prop_assert!(!spec.project.is_empty()),
            Err(d) => {
                prop_assert!(!d.items.is_empty());
                for item in &d.items {
                    prop_assert!(!item.message.is_empty() && !item.help.is_empty(), "{item:?}");
                }
            }
        }
    }
}

fn table(prefixes: &[String]) -> RouteTable {
    let mut t = RouteTable::default();
    for (i, p) in prefixes.iter().enumerate() {
        t.routes.insert(
            p.clone(),
            Route {
                port: 1000 + i as u16,
                backends: vec![],
                direct: None,
                project: "p".into(),
                service: format!("s{i}"),
                version: "1.0.0".into(),
                public: i % 2 == 0,
            },
        );
    }
    t
}

proptest! {
    #![proptest_config(config(500))]

    #[test]
    fn a_request_path_resolves_to_the_longest_prefix_at_a_segment_boundary(
        prefixes in prop::collection::vec("(/[a-c]{1,2}){1,3}", 1..6),
        path in "(/[a-c]{0,2}){0,4}(\\?x)?",
    ) {
        let t = table(&prefixes);
        let matches = |p: &str| path == p || path.starts_with(&format!("{p}/"));
        let best = t.routes.keys().filter(|p| matches(p)).max_by_key(|p| p.len());
        match (t.resolve(&path), best) {
            (None, None) => {}
            (Some(r), Some(b)) => {
                prop_assert_eq!(r.prefix, b.as_str());
                prop_assert!(r.rest.starts_with('/'));
                prop_assert_eq!(format!("{}{}", r.prefix, if r.rest == "/" && path == r.prefix { "" } else { &r.rest }), path.clone());
            }
            (got, want) => prop_assert!(false, "{path}: resolved {:?}, expected {want:?}", got.map(|r| r.prefix)),
        }
    }
}

proptest! {
    #![proptest_config(config(500))]

    /// Whatever the path (with dots, encodings, queries) and whatever is
    /// presented, a private route is reached only with a token that may view it,
    /// and a stranger cannot tell a private path from an unknown one.
    #[test]
    fn no_request_reaches_a_private_route_without_a_token_that_may_view_it(
        prefixes in prop::collection::vec("(/[a-c.]{1,2}){1,3}", 1..6),
        path in "(/([a-c.]{0,2}|%2[eE]|/)){0,5}(\\?x)?",
        bearer in prop::option::of(prop_oneof![Just("v".to_string()), Just("d".to_string()), "[a-z_]{0,8}"]),
    ) {
        use berth_core::access::{parse_tokens, token_entry, Decision, Permission};
        use berth_core::route::{admit, Admission};
        let t = table(&prefixes);
        let text = token_entry("viewer", "v", &[Permission::ServicesView])
            + &token_entry("deployer", "d", &[Permission::ServicesDeploy]);
        let tokens = parse_tokens("tokens.yaml", &format!("tokens:\n{text}")).unwrap();
        let decision = tokens.decide(bearer.as_deref(), Permission::ServicesView, berth_core::access::Scope::Any);
        match admit(&t, &tokens, &path, bearer.as_deref()) {
            Admission::Forward { to } => {
                prop_assert!(to.route.public || matches!(decision, Decision::Allow(_)), "{path} reached private {}", to.prefix);
                prop_assert!(!berth_core::route::has_dot_segment(&path));
            }
            Admission::NotFound => prop_assert!(decision != Decision::Unauthenticated, "a stranger was told {path} is unknown"),
            Admission::Unauthenticated => prop_assert_eq!(decision, Decision::Unauthenticated),
            Admission::Forbidden { route, .. } => prop_assert!(!route.public && matches!(decision, Decision::Forbidden(_))),
            Admission::DotSegment => prop_assert!(berth_core::route::has_dot_segment(&path)),
        }
    }
}

proptest! {
    #![proptest_config(config(500))]

    /// Whatever the header, the scheme's case, the spaces and the encoding,
    /// a header that carries a berth token never reaches a service.
    #[test]
    fn a_header_carrying_a_berth_token_is_always_removed(
        name in "[A-Za-z-]{1,16}",
        scheme in "(bearer|Bearer|BEARER|bEaReR|basic|Basic|token|)",
        spaces in " {1,4}",
        token in "(berth_|BERTH_|Berth_)[A-Za-z0-9]{4,40}",
        around in "[a-z0-9]{0,6}",
        basic_user in prop::bool::ANY,
    ) {
        use base64::Engine as _;
        use berth_core::credential::{scrub, Scrub};
        let tokens = berth_core::access::Tokens::default();
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let value = if scheme.eq_ignore_ascii_case("basic") {
            let pair = if basic_user { format!("{token}:") } else { format!("{around}:{token}") };
            format!("{scheme}{spaces}{}", b64(&pair))
        } else {
            format!("{scheme}{spaces}{around} {token}")
        };
        let got = scrub(&tokens, &name, value.as_bytes());
        if name.eq_ignore_ascii_case("cookie") {
            prop_assert!(got != Scrub::Keep, "{name}: {value}");
        } else {
            prop_assert_eq!(got, Scrub::Remove, "{}: {}", name, value);
        }
    }
}

/// A small services file from generated choices.
fn small_spec() -> impl Strategy<Value = String> {
    let version = (0u8..3, prop::bool::ANY, prop::bool::ANY, 0u8..3);
    prop::collection::vec(version, 1..4).prop_map(|vs| {
        let mut text = "project: p\nservices:\n".to_string();
        for (i, (greeting, keeps, two, active)) in vs.into_iter().enumerate() {
            text.push_str(&format!(
                "  s{i}:\n    image: busybox:stable\n    env: {{ G: g{greeting} }}\n"
            ));
            if keeps {
                text.push_str("    keeps: [/data]\n");
            }
            if two {
                let active = if active % 2 == 0 { "1.0.0" } else { "2.0.0" };
                text.push_str(&format!(
                    "    versions: {{ \"1.0.0\": {{}}, \"2.0.0\": {{ env: {{ V: two }} }} }}\n    active: \"{active}\"\n"
                ));
            }
        }
        text
    })
}

fn facts() -> Facts {
    Facts {
        image_ids: BTreeMap::from([("busybox:stable".to_string(), "sha256:1111".to_string())]),
        ..Facts::default()
    }
}

/// What the engine holds after applying `plan` to `o`, as a perfect engine
/// would leave it (every container healthy and running).
fn applied(o: &Observed, p: &berth_core::plan::Plan) -> Observed {
    let mut o = o.clone();
    let fresh = |c: &berth_core::desired::DesiredContainer| {
        let mut labels = c.config.labels.clone();
        labels.insert(LABEL_HASH.into(), c.hash.clone());
        labels.insert(LABEL_CONFIG.into(), c.config.canonical());
        ObservedContainer {
            id: format!("{}-{}", c.name, &c.hash[..12]),
            name: c.name.clone(),
            labels,
            state: "running".into(),
            status: "Up".into(),
            ports: vec![],
            addresses: vec![],
        }
    };
    for step in &p.steps {
        match &step.action {
            Action::CreateNetwork { network } => o.networks.push(ObservedObject {
                id: network.name.clone(),
                name: network.name.clone(),
                labels: network.labels.clone(),
            }),
            Action::CreateVolume { volume } | Action::MigrateVolume { volume, .. } => {
                o.volumes.push(ObservedObject {
                    id: volume.name.clone(),
                    name: volume.name.clone(),
                    labels: volume.labels.clone(),
                })
            }
            Action::CreateContainer { container } => {
                let c = fresh(container);
                o.containers.push(c);
            }
            Action::ReplaceContainer {
                old_id, container, ..
            } => {
                o.containers.retain(|c| &c.id != old_id);
                let c = fresh(container);
                o.containers.push(c);
            }
            Action::StartContainer { id, .. } | Action::RestartContainer { id, .. } => {
                for c in o.containers.iter_mut().filter(|c| &c.id == id) {
                    c.state = "running".into();
                }
            }
            Action::RestoreContainer { id, canonical, .. } => {
                for c in o.containers.iter_mut().filter(|c| &c.id == id) {
                    c.state = "running".into();
                    c.name = canonical.clone();
                }
            }
            Action::RemoveContainer { id, .. } | Action::RemoveLeftover { id, .. } => {
                o.containers.retain(|c| &c.id != id)
            }
            Action::RemoveNetwork { id, .. } => o.networks.retain(|n| &n.id != id),
            Action::Route {
                generation,
                active,
                records,
                ..
            } => {
                o.volumes.retain(|v| !records.contains(&v.name));
                let record = berth_core::active::record(
                    &p.project,
                    generation + 2,
                    active,
                    &Default::default(),
                );
                o.volumes.push(ObservedObject {
                    id: record.name.clone(),
                    name: record.name,
                    labels: record.labels,
                });
            }
            Action::BuildBase { .. } | Action::BuildImage { .. } => {}
        }
    }
    o
}

/// An engine state: what `before` converged to, each container in a generated
/// state and role, plus containers that are not the project's.
fn engine_state() -> impl Strategy<Value = (String, Vec<(u8, u8)>, u8)> {
    (
        small_spec(),
        prop::collection::vec((0u8..4, 0u8..4), 0..8),
        0u8..3,
    )
}

fn observed_from(before: &str, twists: &[(u8, u8)], foreign: u8) -> Observed {
    let opts = Options {
        allow_empty: true,
        retry_failed: true,
    };
    let d = resolve(&parse("f", before).unwrap(), &facts()).unwrap();
    let mut o = applied(
        &Observed::default(),
        &plan(&d, &Observed::default(), &opts).unwrap(),
    );
    for (i, (state, role)) in twists.iter().enumerate() {
        let n = o.containers.len();
        if n == 0 {
            break;
        }
        let c = &mut o.containers[i % n];
        c.state = ["running", "exited", "created", "restarting"][*state as usize].into();
        c.name = match role {
            0 => c.name.clone(),
            1 => format!("{}-old-{:012}", c.name, i),
            2 => format!("{}-next-{}", c.name, &c.labels[LABEL_HASH][..12]),
            _ => format!("{}-failed-{:012}", c.name, i),
        };
    }
    for i in 0..foreign {
        o.containers.push(ObservedContainer {
            id: format!("foreign-{i}"),
            name: format!("p-lookalike-{i}"),
            labels: BTreeMap::from([(LABEL_PROJECT.to_string(), "other".to_string())]),
            state: "running".into(),
            status: "Up".into(),
            ports: vec![],
            addresses: vec![],
        });
    }
    o
}

proptest! {
    #![proptest_config(config(200))]

    #[test]
    fn a_plan_applied_leaves_nothing_to_do_and_never_names_what_is_not_ours(
        (before, twists, foreign) in engine_state(),
        after in small_spec(),
    ) {
        let opts = Options { allow_empty: true, retry_failed: true };
        let o = observed_from(&before, &twists, foreign);
        let d = resolve(&parse("f", &after).unwrap(), &facts()).unwrap();
        let first = plan(&d, &o, &opts).unwrap();
        let ours = |id: &str| o.containers.iter().any(|c| c.id == id && c.owned_by("p"));
        for step in &first.steps {
            if let Some(c) = step.action.existing("p") {
                prop_assert!(ours(&c.id), "a step on {}, which is not the project's: {step:?}", c.id);
            }
        }
        let done = applied(&o, &first);
        let second = plan(&d, &done, &opts).unwrap();
        prop_assert!(second.steps.is_empty(), "after {:?}\nstill {:?}", first.steps, second.steps);
    }
}

proptest! {
    #![proptest_config(config(2000))]

    /// What makes a plan's index exact: every canonical name a container's
    /// name plays a role for is one it is filed under.
    #[test]
    fn a_container_is_filed_under_every_canonical_name_it_plays_a_role_for(
        canonical in "[a-c]{1,3}(-[a-c.0-9]{1,3}){0,3}",
        role in prop::sample::select(vec!["", "-next-", "-old-", "-failed-", "-x-"]),
        tag in "[a-f0-9-]{0,4}",
    ) {
        use berth_core::role::ContainerRole;
        let name = match role {
            "" => canonical.clone(),
            infix => format!("{canonical}{infix}{tag}"),
        };
        if ContainerRole::of(&name, &canonical).is_some() {
            prop_assert!(
                ContainerRole::canonicals(&name).any(|c| c == canonical),
                "{} is a role of {} but not filed under it", name, canonical
            );
        }
        for c in ContainerRole::canonicals(&name) {
            prop_assert!(ContainerRole::of(&name, c).is_some(), "{} filed under {}", name, c);
        }
    }
}

/// The service pairs whose paths clash, as the plain rule says: the same
/// path, or one under the other at a `/` (everything is under `/`), told once
/// per pair, at the later service.
fn clashing_pairs(paths: &[&str]) -> std::collections::BTreeSet<(String, String)> {
    let under = |a: &str, b: &str| a == b || b == "/" || a.starts_with(&format!("{b}/"));
    let mut pairs = std::collections::BTreeSet::new();
    for (i, p) in paths.iter().enumerate() {
        for (j, q) in paths[..i].iter().enumerate() {
            if under(p, q) || under(q, p) {
                pairs.insert((format!("s{i}"), format!("s{j}")));
            }
        }
    }
    pairs
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn path_clashes_are_found_for_every_pair_and_only_those(
        paths in prop::collection::vec(
            prop::sample::select(vec!["/", "/a", "/a/b", "/a/b/c", "/ab", "/b", "/b/a", "/a/bc"]),
            1..12,
        )
    ) {
        let mut text = String::from("project: p\nservices:\n");
        for (i, p) in paths.iter().enumerate() {
            text.push_str(&format!("  s{i}:\n    image: busybox\n    path: \"{p}\"\n"));
        }
        let found: std::collections::BTreeSet<(String, String)> = match parse("f.yaml", &text) {
            Ok(_) => Default::default(),
            Err(diagnostics) => diagnostics
                .items
                .iter()
                .filter_map(|d| {
                    let m = d.message.clone();
                    let svc = m.split("service `").nth(1)?.split('`').next()?.to_string();
                    let other = m.split("service `").nth(2)?.split('`').next()?.to_string();
                    Some((svc, other))
                })
                .collect(),
        };
        prop_assert_eq!(found, clashing_pairs(&paths));
    }
}
