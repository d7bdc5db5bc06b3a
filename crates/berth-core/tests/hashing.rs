//! The canonical form behind `berth.hash`, byte for byte: it is part of the
//! contract (the same desired state gives the same hash on every machine and
//! across berth's versions), so a change of the config's shape must leave
//! these bytes alone.

use std::collections::BTreeMap;

use berth_core::hash::{ContainerConfig, Placement};

fn config(placement: Placement) -> ContainerConfig {
    ContainerConfig {
        image: "sha256:abc".into(),
        command: Some(vec!["httpd".into(), "-f".into()]),
        env: BTreeMap::from([("B".into(), "2".into()), ("A".into(), "1".into())]),
        secrets: BTreeMap::new(),
        nano_cpus: 500_000_000,
        memory: 268_435_456,
        port: 8000,
        publish: None,
        mounts: BTreeMap::new(),
        networks: BTreeMap::from([("p-global".into(), vec!["web".into()])]),
        labels: BTreeMap::from([("berth.project".into(), "p".into())]),
        assets: BTreeMap::new(),
        gpu: None,
        placement,
        job: false,
    }
}

const ONE_ENGINE: &str = r#"{"image":"sha256:abc","command":["httpd","-f"],"env":{"A":"1","B":"2"},"secrets":{},"nano_cpus":500000000,"memory":268435456,"port":8000,"publish":null,"mounts":{},"networks":{"p-global":["web"]},"labels":{"berth.project":"p"}}"#;

const PLACED: &str = r#"{"image":"sha256:abc","command":["httpd","-f"],"env":{"A":"1","B":"2"},"secrets":{},"nano_cpus":500000000,"memory":268435456,"port":8000,"publish":null,"mounts":{},"networks":{"p-global":["web"]},"labels":{"berth.project":"p"},"replicas":3,"reserve_memory":67108864,"constraints":["node.labels.berth.class!=small"],"reserve_gpus":1}"#;

fn check(placement: Placement, canonical: &str) {
    let c = config(placement);
    assert_eq!(c.canonical(), canonical);
    assert_eq!(
        c.hash(),
        berth_core::hash::sha256_hex(canonical.as_bytes()),
        "the hash is the canonical form's SHA-256"
    );
    let back: ContainerConfig = serde_json::from_str(canonical).expect("the label reads back");
    assert_eq!(
        back, c,
        "the `berth.config` label reads back as the same config"
    );
}

#[test]
fn a_config_with_the_engine_section_at_its_defaults_has_the_canonical_form_of_one_engine() {
    check(Placement::default(), ONE_ENGINE);
}

#[test]
fn a_placed_config_keeps_its_fields_where_they_stood_before_the_engine_section() {
    check(
        Placement {
            replicas: 3,
            reserve_memory: 64 << 20,
            constraints: vec!["node.labels.berth.class!=small".into()],
            reserve_gpus: 1,
        },
        PLACED,
    );
}
