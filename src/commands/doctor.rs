//! `berth doctor`: the engine, the base image, the GPUs (NVML), the host's
//! neighbour table and the ports.

use std::path::Path;

use crate::build::baseimage;
use crate::shell::{gpu, host};

use super::{CommandError, Output};

pub async fn run(out: &Output, file: &Path) -> Result<u8, CommandError> {
    let mut ok = true;
    let mut engine = None;
    // The engine is reached by its first call (`Output::connect` makes no
    // call): an engine that is not there is this check's failure, and the
    // checks after it still run.
    let reached = async {
        let ctx = out.connect_host().await?;
        let v = ctx.engine.version().await?;
        Ok::<_, CommandError>((ctx, v))
    };
    match reached.await {
        Ok((ctx, v)) => {
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
                for n in &nodes {
                    let labels: Vec<String> =
                        n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    let generic: Vec<String> =
                        n.generic.iter().map(|(k, v)| format!("{k}={v}")).collect();
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
            }
            engine = Some(ctx);
        }
        Err(e) => {
            ok = false;
            println!("FAIL  engine: {e}");
        }
    }
    let (inventory, driver) = gpu::inventory();
    match (&inventory.problem, driver) {
        (Some(why), _) => println!("note  GPUs: none usable: {why}"),
        (None, d) => {
            let d = d.unwrap_or_default();
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
    }
    if let Ok(spec) = crate::converge::load(&out.settings, file) {
        if let (Some(registry), Some(ctx)) = (&spec.registry, &engine) {
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
        // The bases the file's runtimes need: there, buildable here, or not.
        let runtimes: std::collections::BTreeSet<_> = spec
            .versions()
            .filter_map(|v| v.runtime)
            .filter(|r| !r.is_cuda())
            .collect();
        for r in runtimes {
            let tag = baseimage::runtime_tag(r, None);
            let present = match &engine {
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
        // On one host, the host itself talks to every container (health
        // probes, the gateway): each needs a place in its neighbour table.
        if spec.engine == crate::core::spec::EngineKind::Docker {
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
    }
    Ok(if ok { 0 } else { 1 })
}
