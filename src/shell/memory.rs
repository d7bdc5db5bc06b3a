//! Memory handed back to the operating system, for a process that runs for
//! days and works in bursts (the daemon).
//!
//! glibc's allocator gives each thread that allocates an arena of its own and
//! keeps what a reconcile freed (the engine's JSON, the observation, the plan)
//! there for reuse, so a daemon's resident size stays at its busiest moment,
//! once per arena: at 1,000 services its heap was 24 MB idle with the default
//! arenas, 15 MB with one. The daemon's work is one reconcile at a time, so one
//! arena costs it nothing; `berth serve`, a gateway under load, keeps the
//! default.

/// One allocator arena for the whole process, and every block of 128 KiB or
/// more mapped on its own; called first thing, before any thread starts.
///
/// A reconcile's big blocks (the engine's list of 1,000 containers, the spec's
/// vector of services) are then returned to the system when freed instead of
/// splitting the heap between longer-lived small ones: glibc otherwise raises
/// its mapping threshold to the largest block freed, and the heap keeps those
/// holes (at 1,000 services, 3 MB of the daemon's resident memory).
pub fn one_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
    }
}

/// Returns freed heap memory to the operating system (glibc); nothing
/// elsewhere.
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator's own
    // arenas; it takes no pointers and is safe to call from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}
