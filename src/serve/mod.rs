//! berth's own HTTP servers: the routing gateway in front of the services,
//! the daemon's API with the dashboard, and what they share (bounded
//! listeners, the header policy of a forwarded request). They answer what
//! the core decides; none of them plans or converges.

pub mod api;
pub mod forward;
pub mod gateway;
pub mod listen;
