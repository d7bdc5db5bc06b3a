//! Service images berth assembles itself: the code as one layer over the
//! parent image (the dependencies stage, or the runtime base), with the config
//! `core::assemble` writes, loaded by the engine (`docker load`) with no build.
//! The layer is written from the same context entries that were hashed, owned
//! by the app user as `COPY --chown` would leave them.

use std::collections::BTreeMap;
use std::io::{self, Write};

use futures_util::stream::BoxStream;
use sha2::{Digest as _, Sha256};

use crate::core::assemble::{self, Parent, LABEL_ROLE};
use crate::core::desired::LABEL_PROJECT;
use crate::core::recipe::{ImageSettings, APP_UID, CODE_DIR};
use crate::core::retain::DEPS_REPOSITORY;

use super::context::{self, Context, Shape};
use super::{Built, Prepared, LABEL_CONTEXT_HASH};
use crate::shell::engine::{Engine, EngineError};

/// The code layer's shape: the app user's, with `/app` and the keeps'
/// directories in it.
fn shape(keep_dirs: &[String]) -> Shape<'_> {
    Shape {
        owner: APP_UID as u64,
        directories_from: Some(CODE_DIR),
        directories: keep_dirs,
    }
}

/// The code of a full build context: its `app/` entries, as a layer holds
/// them. (A package never holds a `.wh.` name, which would be a deletion
/// marker in a layer: `package::check_names`.)
pub fn code_of(full: &Context) -> Context {
    let mut code = full.clone();
    code.retain(|p| p.starts_with(CODE_DIR));
    code
}

/// Counts and hashes what goes through it.
struct Measured<W> {
    inner: W,
    size: u64,
    hash: Sha256,
}

impl<W: Write> Write for Measured<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(data)?;
        self.size += n as u64;
        self.hash.update(&data[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn measured<W: Write>(inner: W) -> Measured<W> {
    Measured {
        inner,
        size: 0,
        hash: Sha256::new(),
    }
}

/// The tarball `docker load` reads: the code layer, the config and the
/// manifest, naming `tag`. The layer is written twice, once to learn its size
/// and digest (the config names the digest, and the tar header before the
/// layer its size), then to send it; the two must agree, or a file changed
/// while it was sent. Memory stays flat in the code's size.
pub fn image_tarball(
    code: Context,
    parent: Parent,
    parent_name: String,
    settings: ImageSettings,
    labels: BTreeMap<String, String>,
    tag: String,
    keep_dirs: Vec<String>,
) -> (
    BoxStream<'static, Result<bytes::Bytes, io::Error>>,
    tokio::task::JoinHandle<io::Result<()>>,
) {
    context::stream_written(move |out| {
        let mut first = measured(io::sink());
        code.write_tar_shaped(&mut first, shape(&keep_dirs))?;
        let (size, digest) = (first.size, first.hash.finalize());
        let layer = match misstated_digest() {
            false => format!("sha256:{}", hex::encode(digest)),
            true => format!("sha256:{}", hex::encode(Sha256::digest(b"not this layer"))),
        };
        let config = assemble::image_config(&parent, &parent_name, &settings, &labels, &layer);
        let config = serde_json::to_vec(&config).map_err(io::Error::other)?;
        let config_file = format!("{}.json", hex::encode(context::digest(&config)));
        let code_file = "code/layer.tar";
        let manifest = assemble::manifest(&config_file, &tag, parent.layers.len() + 1, code_file);
        let manifest = serde_json::to_vec(&manifest).map_err(io::Error::other)?;

        let mut tar = tar::Builder::new(out);
        let header = |size: u64| {
            let mut h = tar::Header::new_gnu();
            h.set_mtime(0);
            h.set_mode(0o644);
            h.set_size(size);
            h.set_entry_type(tar::EntryType::Regular);
            h
        };
        let mut h = header(size);
        h.set_path(code_file)?;
        h.set_cksum();
        tar.get_mut().write_all(h.as_bytes())?;
        let mut second = measured(tar.get_mut());
        code.write_tar_shaped(&mut second, shape(&keep_dirs))?;
        if second.size != size || second.hash.finalize() != digest {
            return Err(io::Error::other("the code changed while it was sent"));
        }
        let padding = (512 - size % 512) % 512;
        tar.get_mut().write_all(&vec![0; padding as usize])?;
        tar.append_data(
            &mut header(config.len() as u64),
            &config_file,
            config.as_slice(),
        )?;
        tar.append_data(
            &mut header(manifest.len() as u64),
            "manifest.json",
            manifest.as_slice(),
        )?;
        tar.into_inner()?.flush()
    })
}

/// For the test of the fallback: in debug builds, `BERTH_FAULT=layer-digest`
/// makes the config misstate the code layer's digest, so that a real engine
/// refuses the load. Release builds have no such hook.
fn misstated_digest() -> bool {
    cfg!(debug_assertions) && std::env::var("BERTH_FAULT").as_deref() == Ok("layer-digest")
}

/// Makes sure the service image `tag` exists for `full`, its whole build
/// context (the base's ID included): cached when the image with that tag
/// records the context's hash. Otherwise the engine builds the dependencies
/// stage (cached by its own context, without the code) and the code is loaded
/// over it, or over the base, as one layer. An engine that does not load the
/// image gets the whole Dockerfile built.
#[allow(clippy::too_many_arguments)]
pub async fn ensure_service_image(
    engine: &dyn Engine,
    project: &str,
    service: &str,
    tag: &str,
    full: &Context,
    prepared: &Prepared,
    base_id: &str,
    labels: BTreeMap<String, String>,
    mut on_line: impl FnMut(&str) + Send,
) -> Result<Built, EngineError> {
    let hash = full.hash();
    if super::is_built(engine, tag, &hash).await? {
        return Ok(Built::Cached(hash));
    }
    let code = code_of(full);
    let (parent_ref, parent_name) = match &prepared.deps_stage {
        Some(dockerfile) => {
            let mut deps = full.clone();
            deps.retain(|p| !p.starts_with(CODE_DIR));
            deps.add("Dockerfile", 0o644, dockerfile.clone().into_bytes());
            let deps_tag = format!(
                "{DEPS_REPOSITORY}{project}-{service}:{}",
                &deps.hash()[..12]
            );
            let deps_labels = BTreeMap::from([
                (LABEL_PROJECT.to_string(), project.to_string()),
                (LABEL_ROLE.to_string(), "dependencies".to_string()),
            ]);
            super::ensure_image(engine, &deps_tag, &deps, deps_labels, &mut on_line).await?;
            (deps_tag.clone(), deps_tag)
        }
        None => (base_id.to_string(), prepared.base.clone()),
    };
    let parent = engine
        .image_parts(&parent_ref)
        .await?
        .ok_or_else(|| super::missing_after_build(&parent_name))?;
    let files = match code.len() {
        1 => "1 file".to_string(),
        n => format!("{n} files"),
    };
    on_line(&format!(
        "{}{files} under /{CODE_DIR}, owned by {}, loaded over {}",
        super::CODE_STEP,
        prepared.settings.user,
        parent_name
    ));
    let mut all = labels.clone();
    all.insert(LABEL_CONTEXT_HASH.to_string(), hash.clone());
    let (tarball, writer) = image_tarball(
        code,
        parent,
        parent_name,
        prepared.settings.clone(),
        all,
        tag.to_string(),
        prepared.keep_dirs.clone(),
    );
    let loaded = engine.load_image(tag, tarball).await;
    super::sent_whole(writer, tag).await?;
    match loaded {
        Ok(()) => Ok(Built::Fresh(hash)),
        Err(e) => {
            crate::say::warn(&format!(
                "warning: {e}; the engine builds {tag} from its Dockerfile instead"
            ));
            super::ensure_image(engine, tag, full, labels, on_line).await
        }
    }
}
