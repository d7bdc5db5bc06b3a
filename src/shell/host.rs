//! Facts of the host's kernel that bound what berth can run on one host, read
//! from `/proc` for `doctor`; reads only, never sets a sysctl.

use crate::core::health::NeighbourTable;

const NEIGH: &str = "/proc/sys/net/ipv4/neigh/default";

/// The IPv4 neighbour table's bounds; `None` where there is no such file (not
/// Linux, or a `/proc` that hides it).
pub fn neighbour_table() -> Option<NeighbourTable> {
    let read = |name: &str| -> Option<u64> {
        std::fs::read_to_string(format!("{NEIGH}/{name}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    Some(NeighbourTable {
        soft: read("gc_thresh2")?,
        hard: read("gc_thresh3")?,
    })
}
