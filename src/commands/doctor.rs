//! `berth doctor`: the engine, the base image, the GPUs (NVML), the host's
//! neighbour table and the ports.

use std::path::Path;

use crate::build::baseimage;
use crate::shell::{gpu, host};

use super::{CommandError, Output};
use crate::converge::Context;
use crate::core::spec::Spec;
use crate::shell::engine::NodeInfo;

pub async fn run(out: &Output, file: &Path) -> Result<u8, CommandError> {
    let (mut ok, engine) = engine_check(out).await?;
    gpu_check();
    if let Ok(spec) = crate::converge::load(&out.settings, file) {
        ok &= file_checks(&spec, engine.as_ref()).await?;
    }
    Ok(if ok { 0 } else { 1 })
}

/// The engine, reached by its first call (`Output::connect_host` makes no
/// call): an engine that is not there is this check's failure, and the
/// checks after it still run. The local base image, and a swarm's nodes.
async fn engine_check(out: &Output) -> Result<(bool, Option<Context>), CommandError> {
    let reached = async {
        let ctx = out.connect_host().await?;
        let v = ctx.engine.version().await?;
        Ok::<_, CommandError>((ctx, v))
    };
    let (ctx, v) = match reached.await {
        Ok(reached) => reached,
        Err(e) => {
            println!("FAIL  engine: {e}");
            return Ok((false, None));
        }
    };
    println!("ok    engine: Docker {} on {}", v.version, v.arch);
    match ctx.engine.image_labels(baseimage::BUSYBOX_TAG).await? {
        Some(_) => println!("ok    base image {} present", baseimage::BUSYBOX_TAG),
        None => println!(
            "note  base image {} missing: `berth baseimages` builds it",
            baseimage::BUSYBOX_TAG
        ),
    }
    if let Some(nodes) = ctx.engine.nodes().await? {
        println!(
            "ok    swarm: this engine is a manager of {} node(s)",
            nodes.len()
        );
        nodes.iter().for_each(node_line);
    }
    Ok((true, Some(ctx)))
}

/// One node of a swarm: its role, state, resources, labels and GPUs.
fn node_line(n: &NodeInfo) {
    let labels: Vec<String> = n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let generic: Vec<String> = n.generic.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!(
        "      {} {}: {}, {}, {} CPU, {} MiB{}{}",
        n.hostname,
        n.role,
        n.state,
        n.availability,
        n.nano_cpus as f64 / 1e9,
        n.memory_bytes >> 20,
        if labels.is_empty() {
            String::new()
        } else {
            format!(", labels {}", labels.join(" "))
        },
        if generic.is_empty() {
            ", no GPU".to_string()
        } else {
            format!(", {}", generic.join(" "))
        },
    );
    if n.state != "ready" || n.availability != "active" {
        println!(
            "note  node {} takes no new tasks ({}, {})",
            n.hostname, n.state, n.availability
        );
    }
}

/// This host's GPUs as NVML says, and the CUDA base they run.
fn gpu_check() {
    let (inventory, driver) = gpu::inventory();
    if let Some(why) = &inventory.problem {
        println!("note  GPUs: none usable: {why}");
        return;
    }
    let d = driver.unwrap_or_default();
    println!("ok    GPUs: driver {}, CUDA {}", d.version, d.cuda);
    for g in &inventory.gpus {
        println!(
            "      [{}] {} {}: {} MiB, {} MiB free",
            g.index,
            g.uuid,
            g.name,
            g.memory_total >> 20,
            g.memory_free >> 20
        );
    }
    match crate::core::gpu::cuda_base(crate::core::gpu::parse_cuda(&d.cuda)) {
        Ok(((a, b), _)) => println!("ok    CUDA base for -cuda runtimes: {a}.{b}"),
        Err(why) => println!("note  -cuda runtimes cannot run here: {why}"),
    }
}

/// What the file needs of this machine: its registry, its runtimes' bases,
/// room in the host's neighbour table, its fixed ports. `false` on a failure.
async fn file_checks(spec: &Spec, engine: Option<&Context>) -> Result<bool, CommandError> {
    let mut ok = true;
    if let (Some(registry), Some(ctx)) = (&spec.registry, engine) {
        match ctx.engine.registry_reachable(registry).await? {
            Ok(()) => println!("ok    registry {registry} answers the engine"),
            Err(why) => {
                ok = false;
                println!(
                    "FAIL  registry {registry} (`registry:`) does not answer the engine: {why}"
                );
            }
        }
    }
    ok &= bases_check(spec, engine).await?;
    // Where versions run on this host, the host itself talks to every
    // container (health probes, the gateway): each needs a place in its
    // neighbour table.
    if spec.engine.capabilities().host_ports {
        if let Some(table) = host::neighbour_table() {
            match crate::core::health::neighbour_room(spec.versions().count(), table) {
                Ok(room) => println!("ok    {room}"),
                Err(why) => println!("note  {why}"),
            }
        }
    }
    for v in spec.versions() {
        if let Some(p) = v.publish {
            match std::net::TcpListener::bind(("127.0.0.1", p)) {
                Ok(_) => println!("ok    port {p} ({}) is free", v.id()),
                Err(_) => println!(
                    "note  port {p} ({}) is in use (fine if berth already runs it)",
                    v.id()
                ),
            }
        }
    }
    Ok(ok)
}

/// The bases the file's runtimes need: there, buildable here, or not.
async fn bases_check(spec: &Spec, engine: Option<&Context>) -> Result<bool, CommandError> {
    let mut ok = true;
    let runtimes: std::collections::BTreeSet<_> = spec
        .versions()
        .filter_map(|v| v.runtime)
        .filter(|r| !r.is_cuda())
        .collect();
    for r in runtimes {
        let tag = baseimage::runtime_tag(r, None);
        let present = match engine {
            Some(ctx) => ctx.engine.image_id(&tag).await?.is_some(),
            None => false,
        };
        match (present, baseimage::base_source(r)) {
            (true, _) => println!("ok    base image {tag} ({}) present", r.name()),
            (false, baseimage::BaseSource::Provided { why, how }) => {
                ok = false;
                println!("FAIL  base image {tag} ({}) missing and {why}: {how}", r.name());
            }
            (false, _) => println!(
                "note  base image {tag} ({}) missing: the first plan builds it (`berth baseimages {}` does it now)",
                r.name(),
                r.name()
            ),
        }
    }
    Ok(ok)
}
