//! Transparent huge pages off while the engine opens.
//!
//! Opening allocates most of what a server holds: model weights, the
//! document table, the metadata postings, the graph's links. mimalloc asks
//! for transparent huge pages (`madvise`), so each first touch of a 2 MiB
//! region has the kernel zero all of it, and memory freed and allocated
//! again while tables grow is zeroed again. On the virtual machines we run
//! on this zeroing is slow: a restart at a million chunks spent 65% of its
//! CPU samples in `clear_page_erms` under `do_huge_pmd_anonymous_page`, and
//! 2.9-5.2 s of system time against 1.2-1.5 s with huge pages off, for the
//! same resident memory (docs/performance.md). Prefill and decode speed
//! measured the same either way, so the weights lose nothing by sitting
//! on small pages. Allocations after the open (per search, per answer) get
//! huge pages as before.
//!
//! The setting (`PR_SET_THP_DISABLE`) is the process's; opens that overlap
//! (tests) share one count, and the first setting is restored when the last
//! one ends.

use std::sync::Mutex;

/// Open guards, and the setting found when the first one began.
static OPEN: Mutex<(usize, bool)> = Mutex::new((0, false));

/// Huge pages stay off while this lives.
pub(crate) struct HugePagesOff(());

impl HugePagesOff {
    /// Turns transparent huge pages off for the process (a no-op where
    /// the kernel cannot).
    pub(crate) fn new() -> Self {
        let mut open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
        if open.0 == 0 {
            open.1 = disabled();
            set_disabled(true);
        }
        open.0 += 1;
        Self(())
    }
}

impl Drop for HugePagesOff {
    fn drop(&mut self) {
        let mut open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
        open.0 -= 1;
        if open.0 == 0 {
            set_disabled(open.1);
        }
    }
}

#[cfg(target_os = "linux")]
fn disabled() -> bool {
    // SAFETY: PR_GET_THP_DISABLE takes no pointers; it returns the flag.
    unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1 }
}

#[cfg(target_os = "linux")]
fn set_disabled(off: bool) {
    // SAFETY: PR_SET_THP_DISABLE takes an integer flag and no pointers.
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, libc::c_ulong::from(off), 0, 0, 0) };
    if rc != 0 {
        tracing::debug!(
            error = %std::io::Error::last_os_error(),
            "cannot change the transparent huge page setting"
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn disabled() -> bool {
    false
}

#[cfg(not(target_os = "linux"))]
fn set_disabled(_: bool) {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn overlapping_guards_restore_the_setting_when_the_last_ends() {
        let before = disabled();
        let a = HugePagesOff::new();
        assert!(disabled());
        let b = HugePagesOff::new();
        drop(a);
        assert!(disabled(), "still off while one guard lives");
        drop(b);
        // Another test's open may overlap; when none does, the setting is
        // back to what it was.
        if OPEN.lock().unwrap().0 == 0 {
            assert_eq!(disabled(), before);
        }
    }
}
