//! Git sources: a branch of a repository (https, ssh, file:// or a local path),
//! fetched into berth's state directory and checked out commit by commit.
//!
//! Blocking (git2): callers run these functions on a blocking thread. A fetch
//! forces the remote-tracking ref, so a force-push is followed. URLs are logged
//! without credentials.

use std::path::{Path, PathBuf};

use git2::{FetchOptions, ObjectType, Oid, Repository, TreeWalkMode, TreeWalkResult};

use crate::core::hash::sha256_hex;

use crate::core::manifest::link_stays_inside;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot fetch {url} ({reference}): {message}\n  help: check the URL, the branch and the credentials (ssh agent, or a credential helper)")]
    RemoteFetch {
        url: String,
        reference: String,
        message: String,
    },
    #[error("commit {revision} of {url}: {message}\n  help: {help}")]
    CommitRefuse {
        url: String,
        revision: String,
        message: String,
        help: String,
    },
    #[error("cannot check out {revision}: {message}")]
    TreeCheckout { revision: String, message: String },
}

/// A URL as it may be logged: without `user:password@`.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

/// A branch followed into a local mirror.
#[derive(Debug, Clone)]
pub struct GitSource {
    pub url: String,
    pub reference: String,
    /// The services file inside the repository.
    pub path: String,
    /// Where the mirror and checkouts live.
    pub dir: PathBuf,
}

impl GitSource {
    pub fn new(url: &str, reference: &str, path: &str, state: &Path) -> GitSource {
        // One directory per file followed: two projects from one repository
        // (a monorepo, two paths) each prune only their own checkouts.
        let key = &sha256_hex(format!("{url}\n{reference}\n{path}").as_bytes())[..16];
        GitSource {
            url: url.to_string(),
            reference: reference.to_string(),
            path: path.to_string(),
            dir: state.join("git").join(key),
        }
    }

    fn fail(&self, message: impl std::fmt::Display) -> GitError {
        GitError::RemoteFetch {
            url: redact(&self.url),
            reference: self.reference.clone(),
            message: message.to_string(),
        }
    }

    /// Fetches the branch and returns the commit it points to now.
    pub fn fetch(&self) -> Result<String, GitError> {
        let mirror = self.dir.join("mirror.git");
        let repo = match Repository::open_bare(&mirror) {
            Ok(r) => r,
            Err(_) => {
                std::fs::create_dir_all(&mirror).map_err(|e| self.fail(e))?;
                Repository::init_bare(&mirror).map_err(|e| self.fail(e))?
            }
        };
        let mut remote = repo.remote_anonymous(&self.url).map_err(|e| self.fail(e))?;
        let mut callbacks = git2::RemoteCallbacks::new();
        callbacks.credentials(|_url, user, allowed| {
            if allowed.contains(git2::CredentialType::SSH_KEY) {
                git2::Cred::ssh_key_from_agent(user.unwrap_or("git"))
            } else {
                git2::Cred::default()
            }
        });
        let mut opts = FetchOptions::new();
        opts.remote_callbacks(callbacks);
        // `+`: force, so a rewritten branch (force-push) is followed.
        let refspec = format!("+refs/heads/{0}:refs/remotes/origin/{0}", self.reference);
        remote
            .fetch(&[&refspec], Some(&mut opts), None)
            .map_err(|e| self.fail(e.message()))?;
        let tracking = format!("refs/remotes/origin/{}", self.reference);
        let oid = repo
            .refname_to_id(&tracking)
            .map_err(|_| self.fail(format!("the remote has no branch `{}`", self.reference)))?;
        Ok(oid.to_string())
    }

    /// The first line of a fetched commit's message, when it has one.
    pub fn subject(&self, revision: &str) -> Option<String> {
        let repo = Repository::open_bare(self.dir.join("mirror.git")).ok()?;
        let commit = repo.find_commit(Oid::from_str(revision).ok()?).ok()?;
        commit.summary().ok().flatten().map(String::from)
    }

    /// Checks a commit out into its own directory (once) and returns the path of
    /// the services file in it. Refuses a commit with a symlink that points out
    /// of the repository.
    pub fn checkout(&self, revision: &str) -> Result<PathBuf, GitError> {
        let short = &revision[..revision.len().min(12)];
        let target = self.dir.join(format!("rev-{short}"));
        // A marker beside the checkout, not in it: packages are read from the tree.
        let complete = self.dir.join(format!("rev-{short}.complete"));
        let file = target.join(&self.path);
        if complete.exists() {
            return Ok(file);
        }
        let fail = |message: String| GitError::TreeCheckout {
            revision: revision.to_string(),
            message,
        };
        let repo =
            Repository::open_bare(self.dir.join("mirror.git")).map_err(|e| fail(e.to_string()))?;
        let oid = Oid::from_str(revision).map_err(|e| fail(e.to_string()))?;
        let commit = repo.find_commit(oid).map_err(|e| fail(e.to_string()))?;
        let tree = commit.tree().map_err(|e| fail(e.to_string()))?;
        let mut bad = None;
        tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
            if entry.filemode() == 0o120000 && entry.kind() == Some(ObjectType::Blob) {
                let name = format!("{dir}{}", entry.name().unwrap_or(""));
                let target = repo
                    .find_blob(entry.id())
                    .map(|b| String::from_utf8_lossy(b.content()).to_string())
                    .unwrap_or_default();
                if !link_stays_inside(&name, &target) {
                    bad = Some((name, target));
                    return TreeWalkResult::Abort;
                }
            }
            TreeWalkResult::Ok
        })
        .ok();
        if let Some((name, link)) = bad {
            return Err(GitError::CommitRefuse {
                url: redact(&self.url),
                revision: revision.to_string(),
                message: format!("the symlink `{name}` points to `{link}`, outside the repository"),
                help: "links in the repository may point only inside it; berth keeps the last good commit running".into(),
            });
        }
        let partial = self.dir.join(format!("rev-{short}.partial"));
        let _ = std::fs::remove_dir_all(&partial);
        std::fs::create_dir_all(&partial).map_err(|e| fail(e.to_string()))?;
        let mut co = git2::build::CheckoutBuilder::new();
        co.target_dir(&partial).force().recreate_missing(true);
        repo.checkout_tree(tree.as_object(), Some(&mut co))
            .map_err(|e| fail(e.to_string()))?;
        let _ = std::fs::remove_dir_all(&target);
        std::fs::rename(&partial, &target).map_err(|e| fail(e.to_string()))?;
        std::fs::write(&complete, revision).map_err(|e| fail(e.to_string()))?;
        Ok(file)
    }
}

impl GitSource {
    /// Removes every complete checkout but those of `keep` (full or short
    /// revisions): a followed branch leaves only the trees still in use.
    /// Checkouts in progress (`.partial`) are the fetcher's own and left alone.
    pub fn prune(&self, keep: &[&str]) -> usize {
        let keep: Vec<&str> = keep.iter().map(|r| &r[..r.len().min(12)]).collect();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut removed = 0;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Some(short) = name
                .strip_prefix("rev-")
                .and_then(|n| n.strip_suffix(".complete"))
            else {
                continue;
            };
            if keep.contains(&short) {
                continue;
            }
            // The marker goes first: a tree without it is never taken as whole.
            let _ = std::fs::remove_file(e.path());
            if std::fs::remove_dir_all(self.dir.join(format!("rev-{short}"))).is_ok() {
                removed += 1;
            }
        }
        removed
    }
}

/// The delay before the next fetch: the interval while fetches succeed, then
/// doubling per failure from 1 s, never more than 5 minutes or less than 1 s.
pub fn next_delay(interval: std::time::Duration, failures: u32) -> std::time::Duration {
    use std::time::Duration;
    if failures == 0 {
        return interval;
    }
    let backoff = Duration::from_secs(1).saturating_mul(1u32 << failures.min(9).saturating_sub(1));
    backoff
        .min(Duration::from_secs(300))
        .max(Duration::from_secs(1))
}
