//! The memory allocator: jemalloc, for every program that links this
//! library (the engine, the snapshotter, the tests), and its accounting for
//! INFO's memory section.
//!
//! Why jemalloc and not the C library's malloc (measured, SET at 50
//! connections pipelining 16, 64-byte values, the two builds alternating):
//! glibc's malloc and free were 28 % of the engine's CPU samples and the
//! engine 15-38 % slower; a 64-byte string value took an 80-byte glibc
//! chunk (64 in jemalloc's size classes), 1M such keys 181 against 161 B/key
//! of resident memory. It is also what redis-server uses, so INFO's
//! `used_memory` (the allocator's live bytes, as in Redis) compares like
//! for like.

/// The process's allocator.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The allocator's view of the process's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Bytes of live allocations (Redis's `used_memory`).
    pub allocated: u64,
    /// Bytes of pages the allocator holds resident, its own metadata
    /// included.
    pub resident: u64,
}

/// Reads the allocator's counters (refreshing its cached statistics
/// first). None if jemalloc refuses (it never should: the statistics are
/// compiled in).
pub fn usage() -> Option<Usage> {
    tikv_jemalloc_ctl::epoch::advance().ok()?;
    Some(Usage {
        allocated: tikv_jemalloc_ctl::stats::allocated::read().ok()? as u64,
        resident: tikv_jemalloc_ctl::stats::resident::read().ok()? as u64,
    })
}

/// Lets jemalloc return freed pages to the system from its own thread
/// over its decay time (10 s), as Redis has it (`jemalloc-bg-thread yes`).
/// Without it pages are purged only when the program allocates again: 1M
/// keys deleted by FLUSHALL left 67 of 173 MB resident in an idle engine.
/// For long-running servers; false if jemalloc refuses.
pub fn purge_in_background() -> bool {
    tikv_jemalloc_ctl::background_thread::write(true).is_ok()
}

/// The allocator's name and version, as INFO's `mem_allocator` shows it
/// (`jemalloc-5.3.0`).
pub fn name() -> String {
    let v = tikv_jemalloc_ctl::version::read().unwrap_or("unknown");
    // "5.3.0-1-ge13ca993e8cc...": the release, without the git suffix
    let release = v.split('-').next().unwrap_or(v);
    format!("jemalloc-{release}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_go_to_jemalloc() {
        // this thread's own counter: other tests allocate meanwhile
        let mine = tikv_jemalloc_ctl::thread::allocatedp::read().expect("jemalloc statistics");
        let before = mine.get();
        let block = vec![7u8; 8 << 20];
        assert!(
            mine.get() >= before + (8 << 20),
            "{before} -> {}",
            mine.get()
        );
        assert_eq!(block[12345], 7);
        let u = usage().expect("jemalloc statistics");
        assert!(u.allocated >= 8 << 20, "{u:?}");
        assert!(u.resident >= u.allocated / 2, "{u:?}");
    }

    #[test]
    fn the_name_is_the_release() {
        let n = name();
        assert!(n.starts_with("jemalloc-5."), "{n}");
        assert!(!n[9..].contains('-'), "{n}");
    }
}
