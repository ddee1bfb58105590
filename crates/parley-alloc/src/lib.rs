//! parley's memory allocator: mimalloc, set to keep the memory it frees.
//!
//! mimalloc returns freed memory to the OS (`madvise`) once it has been unused for
//! `purge_delay` milliseconds (1000 by default in mimalloc 3), and the next burst of
//! allocations faults it back in, zeroed by the kernel. A server under steady load
//! frees and reuses the same few megabytes all the time, so it pays for that round
//! trip over and over: at 9000 msg/s on a 2-core machine, parley spent ~10 % less CPU
//! a message with purging off in most alternating runs (benches/HISTORY.md, run 39).
//! The price is that the process keeps the memory of its busiest moment (tens of MiB,
//! bounded by parley's queues) rather than shrinking back after it.
//!
//! mimalloc's own `MIMALLOC_PURGE_DELAY` (milliseconds; `-1` never purges; its older
//! name `MIMALLOC_RESET_DELAY` too) still wins over [`keep_freed_memory`] when it is set
//! in the environment: mimalloc reads the environment as the process loads and marks an
//! option found there as set, which `mi_option_set_default` leaves alone.

#![deny(unsafe_code)]

pub use mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (the same index in versions 2
/// and 3; libmimalloc-sys names only some options).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Never return freed memory to the OS, unless `MIMALLOC_PURGE_DELAY` says otherwise.
/// Call it first thing in `main`, before any other thread starts.
pub fn keep_freed_memory() {
    // SAFETY: an index in range of mimalloc's option table; the value is a plain
    // (non-atomic) store that mimalloc's threads read whenever they consider purging,
    // so this runs first thing in `main`, before any other thread of ours exists.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set_default(PURGE_DELAY, -1);
    }
}

/// The purge delay in force, in milliseconds (negative: never).
pub fn purge_delay_ms() -> i64 {
    // SAFETY: reads an option value (an index in range).
    #[allow(unsafe_code)]
    let ms = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
    // `c_long`: 64 bits here, 32 on some targets.
    #[allow(clippy::useless_conversion)]
    i64::from(ms)
}
