//! The C allocator under a long-running server. GStreamer, x264 and libav allocate through
//! glibc's malloc from dozens of streaming threads; glibc gives busy threads their own arenas
//! (up to 8 per core) and keeps freed memory in them. Measured in the soak bench (one live PK
//! room, publishers dropping and returning): 250 MiB resident with the default arenas against
//! 150 MiB with two, and steps of tens of MiB after bursts (publishers re-attaching) that the
//! default never gives back. `serve` therefore caps the arenas at start-up (unless the user set
//! `MALLOC_ARENA_MAX`) and returns free pages to the system every 30 s (`malloc_trim`, a few
//! milliseconds), so resident memory follows what the rooms hold and a real leak shows.

use std::time::Duration;

/// How often free memory is returned to the system.
pub const TRIM_EVERY: Duration = Duration::from_secs(30);

/// Arena cap unless `MALLOC_ARENA_MAX` is set. Call before any thread starts.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes allocator parameters; called before other threads run.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// Returns free heap pages of every arena to the system. Blocking (walks the arenas).
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim is thread-safe and has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Trims every `TRIM_EVERY` until the task is dropped.
pub async fn trim_periodically() {
    let mut tick = tokio::time::interval(TRIM_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let _ = tokio::task::spawn_blocking(trim).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Freed memory goes back: RSS after a large allocation freed and a trim is near where it
    /// started (glibc keeps small freed chunks otherwise).
    #[test]
    fn trim_returns_freed_memory() {
        fn rss_kib() -> u64 {
            std::fs::read_to_string("/proc/self/status")
                .unwrap()
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap()
        }
        // Many small blocks (below the mmap threshold, so they live in the heap), touched,
        // then freed.
        let mut v: Vec<Vec<u8>> = (0..20_000).map(|_| vec![1u8; 4000]).collect();
        let full = rss_kib();
        v.truncate(0);
        v.shrink_to_fit();
        trim();
        let after = rss_kib();
        assert!(
            after + 40_000 < full,
            "trim did not return ~78 MiB of freed blocks: {full} KiB -> {after} KiB"
        );
    }
}
