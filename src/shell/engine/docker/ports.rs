//! The host port a container without `publish:` is created with. berth picks
//! it, rather than the engine at start, so that it is fixed in the
//! container's configuration: a switch reconnects a container to move its
//! network name, and a port the engine picked would move with it (so would an
//! engine restart). A version replaced where its old port is free (stop-first,
//! or recreated) gets that port again.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::Mutex;

/// Ports handed out by this process: two creates side by side never get the
/// same one between the pick and the engine binding it.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// The port to ask for: `hint` when nothing listens there, else a free one
/// from the system's range. `None` (the engine picks) when the engine is not
/// on this host, where this host's ports say nothing.
pub(super) fn pick(local: bool, hint: Option<u16>) -> Option<u16> {
    if !local {
        return None;
    }
    let mut handed = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let handed = handed.get_or_insert_with(HashSet::new);
    if let Some(port) = hint.filter(|p| free(*p)) {
        handed.insert(port);
        return Some(port);
    }
    for _ in 0..16 {
        let port = TcpListener::bind(("127.0.0.1", 0))
            .ok()?
            .local_addr()
            .ok()?
            .port();
        if handed.insert(port) {
            return Some(port);
        }
    }
    None
}

/// Whether a listener could take `port` on the loopback now (the engine's
/// proxy holds every port it publishes).
fn free(port: u16) -> bool {
    port != 0 && TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Whether the engine address is this host's socket.
pub(super) fn is_local(address: &str) -> bool {
    address.starts_with("unix://") || address.starts_with('/') || address.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_hint_is_kept_a_held_one_is_not_and_a_remote_engine_picks_its_own() {
        let held = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let held_port = held.local_addr().unwrap().port();
        let got = pick(true, Some(held_port)).unwrap();
        assert_ne!(
            got, held_port,
            "a port something listens on is not asked for"
        );
        let free_port = {
            let l = TcpListener::bind(("127.0.0.1", 0)).unwrap();
            l.local_addr().unwrap().port()
        };
        assert_eq!(pick(true, Some(free_port)), Some(free_port));
        assert_eq!(pick(false, Some(free_port)), None);
        let (a, b) = (pick(true, None).unwrap(), pick(true, None).unwrap());
        assert_ne!(a, b, "two picks never hand out the same port");
    }
}
