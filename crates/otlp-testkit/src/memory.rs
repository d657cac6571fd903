//! Measuring memory in tests: a counting global allocator and the process's peak RSS.
//!
//! A test binary that wants exact heap figures installs the allocator:
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOCATOR: otlp_testkit::memory::CountingAllocator = otlp_testkit::memory::CountingAllocator;
//! ```
//!
//! then brackets the code under test with [`PeakWindow::start`] and
//! [`PeakWindow::heap_growth`]. The counters are process-wide: run such measurements in a
//! test binary of their own, one measurement at a time.

#![allow(unsafe_code)] // a GlobalAlloc can only be written with unsafe; it only forwards.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = CURRENT.fetch_add(by, Ordering::SeqCst) + by;
    PEAK.fetch_max(now, Ordering::SeqCst);
}

/// The system allocator, counting bytes in use and their peak.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAllocator;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the
// counting is plain atomics and never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which is System's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::SeqCst);
        // SAFETY: `ptr` came from `System` through us with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Counted as growing in place (by the difference). Whether the system allocator
        // copies (briefly holding both blocks) or remaps is its business; a test that must
        // catch the copying case also checks peak RSS, which sees the pages actually touched.
        if new_size >= layout.size() {
            grew(new_size - layout.size());
        } else {
            CURRENT.fetch_sub(layout.size() - new_size, Ordering::SeqCst);
        }
        // SAFETY: as for `dealloc`, and `new_size` is the caller's valid size.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Bytes currently allocated through [`CountingAllocator`] (0 if it is not installed).
pub fn heap_in_use() -> usize {
    CURRENT.load(Ordering::SeqCst)
}

/// A window over which the heap peak and peak RSS are measured.
#[derive(Debug)]
pub struct PeakWindow {
    heap_baseline: usize,
    rss_baseline_kib: Option<usize>,
    rss_reset: bool,
}

impl PeakWindow {
    /// Starts measuring from now: resets the heap peak and, where the kernel allows, the
    /// process's peak RSS (`VmHWM`, through `/proc/self/clear_refs`).
    pub fn start() -> Self {
        let heap_baseline = heap_in_use();
        PEAK.store(heap_baseline, Ordering::SeqCst);
        let rss_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        Self {
            heap_baseline,
            rss_baseline_kib: proc_status_kib("VmRSS:"),
            rss_reset,
        }
    }

    /// How far the heap peak rose above the baseline (needs [`CountingAllocator`]).
    pub fn heap_growth(&self) -> usize {
        PEAK.load(Ordering::SeqCst)
            .saturating_sub(self.heap_baseline)
    }

    /// How far the peak RSS rose above the RSS at the start, in bytes; `None` where peak RSS
    /// cannot be reset or read. Sees allocations made outside Rust (C libraries) too.
    pub fn rss_growth(&self) -> Option<usize> {
        if !self.rss_reset {
            return None;
        }
        let peak = proc_status_kib("VmHWM:")?;
        Some(peak.saturating_sub(self.rss_baseline_kib?) * 1024)
    }
}

fn proc_status_kib(field: &str) -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
