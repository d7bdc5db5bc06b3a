//! Push webhooks, pure: which host sent a delivery, whether its credential
//! holds for the shared secret, and what it says (the event, the ref, the
//! commit, the delivery's ID). One rule for every form a host writes:
//! header names in any case, GitHub's `sha256=` prefix in any case, hex in
//! any case, and a delivery that carries several credentials is believed
//! only when every one of them holds.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Who signed a delivery, by the credential it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// `X-Hub-Signature-256: sha256=HEX`, HMAC-SHA256 of the body.
    GitHub,
    /// `X-Gitlab-Token: SECRET`, the secret itself.
    GitLab,
    /// `X-Gitea-Signature` / `X-Forgejo-Signature: HEX`, HMAC-SHA256 of the body.
    Gitea,
    /// `X-Berth-Signature-256: sha256=HEX`, as GitHub signs: any sender.
    Generic,
}

impl Host {
    pub fn name(self) -> &'static str {
        match self {
            Host::GitHub => "GitHub",
            Host::GitLab => "GitLab",
            Host::Gitea => "Gitea/Forgejo",
            Host::Generic => "generic",
        }
    }
}

/// A delivery whose credential holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub host: Host,
    /// The host's ID of this delivery (GitHub's, Gitea's, GitLab's event
    /// UUID, `X-Berth-Delivery`), by which a replay is known.
    pub id: Option<String>,
    /// What it says happened.
    pub event: Event,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A push to `reference` (`refs/heads/main`), now at `after`.
    Push {
        reference: String,
        after: Option<String>,
    },
    /// Anything else (a ping, an issue comment): nothing to do.
    Other(String),
}

/// Why a delivery is not believed: the caller answers 401 and counts it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookRefusal {
    #[error("no credential of a known host: sign it as GitHub (X-Hub-Signature-256), Gitea or Forgejo (X-Gitea-Signature, X-Forgejo-Signature), GitLab (X-Gitlab-Token) or generically (X-Berth-Signature-256: sha256=HMAC)")]
    CredentialMissing,
    #[error("the {} credential does not hold for the secret", .0.name())]
    CredentialWrong(Host),
}

/// Why a believed delivery is not read as a push.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the push's body is not JSON with a `ref`: {0}")]
pub struct BodyUnreadable(pub String);

/// The credential headers of each host, lowercase.
const CREDENTIALS: [(&str, Host); 5] = [
    ("x-hub-signature-256", Host::GitHub),
    ("x-gitlab-token", Host::GitLab),
    ("x-gitea-signature", Host::Gitea),
    ("x-forgejo-signature", Host::Gitea),
    ("x-berth-signature-256", Host::Generic),
];

/// The delivery ID headers, lowercase, in the order they are believed.
const DELIVERY_IDS: [&str; 5] = [
    "x-github-delivery",
    "x-gitea-delivery",
    "x-forgejo-delivery",
    "x-gitlab-event-uuid",
    "x-berth-delivery",
];

/// The event headers, lowercase.
const EVENTS: [&str; 4] = [
    "x-github-event",
    "x-gitea-event",
    "x-forgejo-event",
    "x-gitlab-event",
];

/// The values of header `name` (any case), in order.
fn values<'h>(headers: &'h [(String, String)], name: &str) -> Vec<&'h str> {
    headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

/// Whether `given` is the HMAC-SHA256 of `body` under `secret`, written as
/// hex (any case), with an optional `sha256=` prefix (any case).
fn hmac_holds(secret: &[u8], body: &[u8], given: &str) -> bool {
    let hex = match given.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("sha256=") => &given[7..],
        _ => given,
    };
    let Ok(given) = hex::decode(hex.to_ascii_lowercase()) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// The delivery `headers` and `body` make, if its credential holds for
/// `secret`. Every credential present must hold, and at least one must be.
pub fn verify(
    headers: &[(String, String)],
    body: &[u8],
    secret: &[u8],
) -> Result<Delivery, HookRefusal> {
    let mut host = None;
    for (name, h) in CREDENTIALS {
        for given in values(headers, name) {
            let holds = match h {
                Host::GitLab => bool::from(given.as_bytes().ct_eq(secret)) && !secret.is_empty(),
                _ => hmac_holds(secret, body, given),
            };
            if !holds {
                return Err(HookRefusal::CredentialWrong(h));
            }
            host.get_or_insert(h);
        }
    }
    let host = host.ok_or(HookRefusal::CredentialMissing)?;
    let id = DELIVERY_IDS
        .iter()
        .find_map(|n| values(headers, n).first().map(|v| v.to_string()))
        .filter(|v| !v.is_empty());
    let kind = EVENTS
        .iter()
        .find_map(|n| values(headers, n).first().map(|v| v.to_string()));
    // GitLab says "Push Hook"; the others "push"; a generic sender may say
    // nothing, and then the body decides.
    let event = match kind {
        Some(k) if !matches!(k.to_ascii_lowercase().as_str(), "push" | "push hook") => {
            Event::Other(k)
        }
        _ => match push_of(body) {
            Ok(event) => event,
            Err(BodyUnreadable(why)) => Event::Other(format!("unreadable push ({why})")),
        },
    };
    Ok(Delivery { host, id, event })
}

/// The ref and commit of a push's JSON body, as every host writes them.
pub fn push_of(body: &[u8]) -> Result<Event, BodyUnreadable> {
    #[derive(serde::Deserialize)]
    struct Push {
        #[serde(rename = "ref")]
        reference: String,
        #[serde(default)]
        after: Option<String>,
    }
    let p: Push = serde_json::from_slice(body).map_err(|e| BodyUnreadable(e.to_string()))?;
    Ok(Event::Push {
        reference: p.reference,
        after: p.after,
    })
}

/// Whether a push to `reference` is one to the followed branch `followed`
/// (`main`, or written as `refs/heads/main`).
pub fn is_followed(reference: &str, followed: &str) -> bool {
    let full = match followed.starts_with("refs/") {
        true => followed.to_string(),
        false => format!("refs/heads/{followed}"),
    };
    reference == full
}

/// The delivery IDs a listener remembers, to know a replay: the newest
/// `capacity`, oldest forgotten first.
#[derive(Debug, Clone)]
pub struct Seen {
    ids: std::collections::VecDeque<String>,
    capacity: usize,
}

impl Seen {
    pub fn new(capacity: usize) -> Seen {
        Seen {
            ids: Default::default(),
            capacity: capacity.max(1),
        }
    }

    /// Records `id`; `false` when it was seen already (a replay).
    pub fn first_time(&mut self, id: &str) -> bool {
        if self.ids.iter().any(|s| s == id) {
            return false;
        }
        if self.ids.len() == self.capacity {
            self.ids.pop_front();
        }
        self.ids.push_back(id.to_string());
        true
    }
}

/// The signature GitHub (and the generic form) would send for `body`:
/// `sha256=HEX`. For tests and for documentation of the generic form.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}
