//! Giving freed memory back to the system. glibc's allocator keeps freed
//! pages resident when live allocations sit between them: after a crowd's
//! connections are parked, their freed buffers would stay in the process's
//! RSS. `malloc_trim` returns every whole free page. It is called from the
//! accept loop, at most once a second, and only after connections were
//! parked (see `ServerOptions::park_after`).

/// Fewest hand-backs since the last trim that make a trim worth its cost
/// (it walks the allocator's arenas under their locks).
pub(crate) const TRIM_AFTER_HAND_BACKS: usize = 64;

/// Returns free pages to the system (glibc only; elsewhere nothing to do).
pub(crate) fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory the allocator holds free; it
    // takes no pointer and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
