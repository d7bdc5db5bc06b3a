//! GPUs: admission and assignment over made-up inventories, the CUDA base
//! choice (pure), and the real NVML path of this host (no library here: "no
//! usable GPU", never a crash; where a GPU exists, what NVML sees).

mod common;

use std::collections::BTreeMap;

use berth::core::desired::{resolve, Facts, Gpu, GpuInventory};
use berth::core::gpu::{assign, cuda_base, GpuRequest};
use berth::core::spec::parse;

const GIB: u64 = 1 << 30;

fn card(index: u32, gib: u64) -> Gpu {
    Gpu {
        index,
        uuid: format!("GPU-{index}"),
        name: format!("Card{gib}G"),
        memory_total: gib * GIB,
        memory_free: gib * GIB,
    }
}

fn inventory(cards: &[u64]) -> GpuInventory {
    GpuInventory {
        gpus: cards
            .iter()
            .enumerate()
            .map(|(i, g)| card(i as u32, *g))
            .collect(),
        problem: None,
    }
}

fn want(id: &str, gib: u64, share: bool) -> GpuRequest {
    GpuRequest {
        id: id.into(),
        class: if gib >= 8 { "large-gpu" } else { "small-gpu" }.into(),
        memory: gib * GIB,
        share,
    }
}

/// Assigns `requests` on `cards` (GiB each): `Ok` id -> GPU index, or the ids
/// that do not fit.
fn check(cards: &[u64], requests: &[GpuRequest], expect: Result<&[(&str, u32)], &[&str]>) {
    let got = assign(requests, &inventory(cards));
    match (got, expect) {
        (Ok(a), Ok(e)) => {
            let e: BTreeMap<String, String> = e
                .iter()
                .map(|(id, i)| (id.to_string(), format!("GPU-{i}")))
                .collect();
            assert_eq!(a, e, "on {cards:?}");
        }
        (Err(u), Err(e)) => {
            let ids: Vec<&str> = u.iter().map(|u| u.request.id.as_str()).collect();
            assert_eq!(ids, e, "on {cards:?}");
        }
        (got, e) => panic!("on {cards:?}: got {got:?}, expected {e:?}"),
    }
}

#[test]
fn no_gpu_places_nothing() {
    check(&[], &[want("a@1.0.0", 4, false)], Err(&["a@1.0.0"]));
}

#[test]
fn one_4_gib_card_takes_a_small_gpu_class_but_not_a_large_one() {
    check(&[4], &[want("a@1.0.0", 4, false)], Ok(&[("a@1.0.0", 0)]));
    check(&[4], &[want("a@1.0.0", 8, false)], Err(&["a@1.0.0"]));
}

#[test]
fn each_takes_the_smallest_card_that_fits_and_no_card_twice() {
    check(
        &[24, 6],
        &[want("big@1.0.0", 8, false), want("small@1.0.0", 4, false)],
        Ok(&[("big@1.0.0", 0), ("small@1.0.0", 1)]),
    );
    check(
        &[24],
        &[want("a@1.0.0", 4, false), want("b@1.0.0", 4, false)],
        Err(&["b@1.0.0"]),
    );
}

#[test]
fn a_card_is_shared_only_among_versions_that_all_allow_it_within_its_memory() {
    check(
        &[16],
        &[want("a@1.0.0", 8, true), want("b@1.0.0", 8, true)],
        Ok(&[("a@1.0.0", 0), ("b@1.0.0", 0)]),
    );
    check(
        &[16],
        &[
            want("a@1.0.0", 8, true),
            want("b@1.0.0", 8, true),
            want("c@1.0.0", 4, true),
        ],
        Err(&["c@1.0.0"]),
    );
    check(
        &[16],
        &[want("a@1.0.0", 4, false), want("b@1.0.0", 4, true)],
        Err(&["b@1.0.0"]),
    );
}

#[test]
fn the_cuda_base_is_the_newest_the_driver_supports() {
    assert_eq!(cuda_base(Some((12, 5))).unwrap().0, (12, 4));
    assert_eq!(cuda_base(Some((13, 0))).unwrap().0, (12, 8));
    assert_eq!(cuda_base(Some((11, 8))).unwrap().0, (11, 8));
    let (base, why) = cuda_base(None).unwrap();
    assert_eq!(base, (12, 8), "no driver: the newest");
    assert!(why.contains("no NVIDIA driver"), "{why}");
    let err = cuda_base(Some((11, 4))).unwrap_err().to_string();
    assert!(
        err.contains("CUDA 11.4, older than every CUDA base") && err.contains("11.8"),
        "{err}"
    );
}

const TWO_GPU_SERVICES: &str = "project: demo\nservices:\n  embed:\n    image: x\n    machine: small-gpu\n  train:\n    image: x\n    machine: large-gpu\n";

fn facts(cards: &[u64]) -> Facts {
    Facts {
        image_ids: BTreeMap::from([("x".to_string(), "sha256:1".to_string())]),
        gpus: inventory(cards),
        ..Default::default()
    }
}

#[test]
fn the_plan_hands_each_gpu_service_its_own_card_and_the_card_decides_the_hash() {
    let spec = parse("services.yaml", TWO_GPU_SERVICES).unwrap();
    let d = resolve(&spec, &facts(&[6, 24])).unwrap();
    let gpu_of = |svc: &str| {
        d.containers
            .iter()
            .find(|c| c.service == svc)
            .unwrap()
            .config
            .gpu
            .clone()
    };
    assert_eq!(gpu_of("embed").as_deref(), Some("GPU-0"));
    assert_eq!(gpu_of("train").as_deref(), Some("GPU-1"));
    let moved = resolve(&spec, &facts(&[24, 6])).unwrap();
    let embed = |d: &berth::core::desired::Desired| {
        d.containers
            .iter()
            .find(|c| c.service == "embed")
            .unwrap()
            .hash
            .clone()
    };
    assert_ne!(
        embed(&d),
        embed(&moved),
        "another card is another container"
    );
}

#[test]
fn when_nothing_fits_the_plan_names_the_service_the_class_and_what_the_host_has() {
    let spec = parse("services.yaml", TWO_GPU_SERVICES).unwrap();
    let err = resolve(&spec, &facts(&[6])).unwrap_err();
    assert_eq!(err.len(), 1, "{err:?}");
    let m = &err[0].message;
    assert!(
        m.contains("train@0.0.0: machine class `large-gpu` needs a GPU with at least 8 GiB"),
        "{m}"
    );
    assert!(
        m.contains("GPU 0 Card6G with 6144 MiB, taken by another service"),
        "{m}"
    );
    assert!(err[0].pos.is_some(), "says where");
}

#[test]
fn nvml_on_this_host_lists_the_gpus_or_says_why_there_is_none() {
    let (inv, driver) = berth::shell::gpu::inventory();
    match &inv.problem {
        Some(why) => {
            // Straight to stderr, past the test harness's capture: a skip must show.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "\n!!! SKIPPED (the NVML part): no usable NVIDIA GPU here: {why} !!!\n"
            );
            assert!(inv.gpus.is_empty());
            assert!(!why.is_empty());
        }
        None => {
            let d = driver.expect("a driver when NVML starts");
            eprintln!("NVML: driver {}, CUDA {}", d.version, d.cuda);
            assert!(!inv.gpus.is_empty());
            for g in &inv.gpus {
                eprintln!(
                    "  [{}] {} {} {} MiB ({} MiB free)",
                    g.index,
                    g.uuid,
                    g.name,
                    g.memory_total >> 20,
                    g.memory_free >> 20
                );
                assert!(g.uuid.starts_with("GPU-"), "{}", g.uuid);
                assert!(g.memory_total > 0 && g.memory_free <= g.memory_total);
            }
        }
    }
}

#[test]
fn on_this_host_doctor_and_plan_say_plainly_whether_a_gpu_is_usable() {
    let Some(p) = common::Project::new("gpu") else {
        return;
    };
    let doctor = p.ok(&["doctor"]);
    let (inv, _) = berth::shell::gpu::inventory();
    p.write("project: {p}\nservices:\n  embed:\n    image: berth-local/busybox:stable\n    machine: small-gpu\n");
    let out = p.berth(&["plan"]);
    match inv.problem {
        Some(why) => {
            assert!(
                doctor.contains(&format!("GPUs: none usable: {why}")),
                "{doctor}"
            );
            assert_eq!(out.status.code(), Some(1));
            let err = common::text(&out.stderr);
            assert!(
                err.contains(
                    "embed@0.0.0: machine class `small-gpu` needs a GPU with at least 4 GiB"
                ) && err.contains(&why),
                "{err}"
            );
        }
        None => {
            assert!(doctor.contains("ok    GPUs: driver"), "{doctor}");
            eprintln!("{doctor}");
        }
    }
}

#[tokio::test]
async fn the_cuda_base_chosen_names_the_base_and_so_changes_the_image_hash() {
    use berth::core::desired::BuildInput;
    use berth::core::spec::Runtime;
    let package = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python-stdlib");
    let input = |cuda: &str| BuildInput {
        id: "model@1.0.0".into(),
        package: package.display().to_string(),
        runtime: Runtime::Python311Cuda,
        extras: vec![],
        vendored: false,
        command: None,
        cuda: Some(cuda.into()),
        registry: None,
        keeps: vec![],
    };
    let state = tempfile::tempdir().unwrap();
    let settings = berth::shell::settings::Settings::from_env(
        Some(state.path().to_path_buf()),
        Default::default(),
    );
    // Never reached: the package has no dependencies to build.
    let engine = berth::shell::engine::docker::Docker::lazy(&settings);
    let old = berth::build::prepare(&engine, "p", &input("12.4"), "amd64", &settings)
        .await
        .unwrap();
    let new = berth::build::prepare(&engine, "p", &input("12.8"), "amd64", &settings)
        .await
        .unwrap();
    assert_eq!(old.base, "berth-local/python3.11-cuda12.4:stable");
    assert_eq!(new.base, "berth-local/python3.11-cuda12.8:stable");
    assert_ne!(
        old.source_hash, new.source_hash,
        "a driver upgrade that changes the choice changes the image"
    );
}
