//! The dashboard's sessions, kept on the server and bounded: at most
//! [`PER_TOKEN`] per token and [`IN_ALL`] in all (the oldest goes first), and
//! sign-in attempts limited per client address ([`SIGN_INS`] a minute), so a
//! flood of sign-ins holds neither memory nor the log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};

use crate::core::credential;

/// A session ends this long after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Sessions one token may hold at once; a new sign-in ends its oldest.
pub const PER_TOKEN: usize = 8;
/// Sessions the daemon holds at once, whatever the tokens.
pub const IN_ALL: usize = 256;
/// Sign-in attempts (good or bad) one client address may make in a window.
pub const SIGN_INS: u32 = 10;
/// The window [`SIGN_INS`] counts over.
pub const SIGN_IN_WINDOW: Duration = Duration::from_secs(60);
/// Addresses the limiter remembers; past that, windows that ended are dropped
/// first, then the oldest.
const ADDRESSES: usize = 4096;

struct Session {
    /// The token signed in with, kept here only: each request is decided
    /// against the token list as `/status` decides a bearer token.
    token: String,
    /// Sent back with every action (a hidden field), so another site's form
    /// cannot act for the user.
    csrf: String,
    opened: Instant,
}

/// The signed-in sessions, by session ID, and the sign-in limiter.
#[derive(Default)]
pub struct Sessions {
    all: Mutex<HashMap<String, Session>>,
    attempts: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

pub fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the kernel gives random bytes");
    hex::encode(bytes)
}

impl Sessions {
    /// A new session for `token`: (session ID, CSRF token). The token's
    /// oldest session ends when it holds [`PER_TOKEN`], and the oldest of all
    /// when the daemon holds [`IN_ALL`].
    pub fn open(&self, token: String) -> (String, String) {
        let (id, csrf) = (random_hex(), random_hex());
        let now = Instant::now();
        let mut all = self.all.lock().expect("no panics hold it");
        all.retain(|_, s| now.duration_since(s.opened) < SESSION_TTL);
        let oldest = |all: &HashMap<String, Session>, of: Option<&str>| {
            all.iter()
                .filter(|(_, s)| of.is_none_or(|t| s.token == t))
                .min_by_key(|(_, s)| s.opened)
                .map(|(id, _)| id.clone())
        };
        while all.values().filter(|s| s.token == token).count() >= PER_TOKEN {
            let Some(id) = oldest(&all, Some(&token)) else {
                break;
            };
            all.remove(&id);
        }
        while all.len() >= IN_ALL {
            let Some(id) = oldest(&all, None) else { break };
            all.remove(&id);
        }
        all.insert(
            id.clone(),
            Session {
                token,
                csrf: csrf.clone(),
                opened: now,
            },
        );
        (id, csrf)
    }

    /// The session's (token, csrf) when the cookie names a live one.
    pub fn get(&self, headers: &HeaderMap) -> Option<(String, String)> {
        let id = session_id(headers)?;
        let all = self.all.lock().expect("no panics hold it");
        let s = all.get(&id).filter(|s| s.opened.elapsed() < SESSION_TTL)?;
        Some((s.token.clone(), s.csrf.clone()))
    }

    /// Whether the request names a live session.
    pub fn signed_in(&self, headers: &HeaderMap) -> bool {
        self.get(headers).is_some()
    }

    pub fn close(&self, headers: &HeaderMap) {
        if let Some(id) = session_id(headers) {
            self.all.lock().expect("no panics hold it").remove(&id);
        }
    }

    /// How many sessions are open.
    pub fn count(&self) -> usize {
        self.all.lock().expect("no panics hold it").len()
    }

    /// Counts a sign-in attempt from `addr`; `Err(wait)` when the address has
    /// used its [`SIGN_INS`] for this window.
    pub fn attempt(&self, addr: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let mut seen = self.attempts.lock().expect("no panics hold it");
        if seen.len() >= ADDRESSES && !seen.contains_key(&addr) {
            seen.retain(|_, (start, _)| now.duration_since(*start) < SIGN_IN_WINDOW);
            if seen.len() >= ADDRESSES {
                if let Some(old) = seen.iter().min_by_key(|(_, (s, _))| *s).map(|(a, _)| *a) {
                    seen.remove(&old);
                }
            }
        }
        let entry = seen.entry(addr).or_insert((now, 0));
        if now.duration_since(entry.0) >= SIGN_IN_WINDOW {
            *entry = (now, 0);
        }
        if entry.1 >= SIGN_INS {
            return Err(SIGN_IN_WINDOW.saturating_sub(now.duration_since(entry.0)));
        }
        entry.1 += 1;
        Ok(())
    }
}

/// The session ID the request's cookies carry (`core::credential` reads it).
fn session_id(headers: &HeaderMap) -> Option<String> {
    credential::session_id(headers.get_all(header::COOKIE).iter().map(|v| v.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_ins_keep_at_most_the_bound_per_token_and_in_all() {
        let s = Sessions::default();
        for _ in 0..PER_TOKEN * 3 {
            s.open("one".into());
        }
        assert_eq!(s.count(), PER_TOKEN);
        for i in 0..IN_ALL * 2 {
            s.open(format!("t{i}"));
        }
        assert_eq!(s.count(), IN_ALL);
    }

    #[test]
    fn an_address_gets_its_sign_ins_a_window_and_another_address_its_own() {
        let s = Sessions::default();
        let a: IpAddr = [127, 0, 0, 2].into();
        for _ in 0..SIGN_INS {
            assert!(s.attempt(a).is_ok());
        }
        assert!(s.attempt(a).is_err());
        assert!(s.attempt([127, 0, 0, 3].into()).is_ok());
    }
}
