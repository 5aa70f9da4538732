//! A team of worker threads that spin between the decoder's parallel
//! sections.
//!
//! Decoding one token runs about five parallel matrix products per layer,
//! each a few microseconds of work. A general pool (rayon) puts its
//! threads to sleep between them, and waking them measured here as a fifth
//! of decode time in the scheduler. This team's workers spin for a few
//! milliseconds after each section, so the next one starts at once, then
//! park until work arrives; the calling thread takes a share of every
//! section itself.

use std::cell::UnsafeCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

/// Spins before a worker parks (a few milliseconds).
const SPINS: usize = 50_000;

type Job = *const (dyn Fn(usize, usize) + Sync);

struct Shared {
    /// Bumped for every section.
    epoch: AtomicUsize,
    /// The current section; written only while no worker reads it.
    job: UnsafeCell<Option<Job>>,
    /// Workers finished with the current section.
    done: AtomicUsize,
    panicked: AtomicBool,
    /// Parked workers wait here.
    parked: Mutex<usize>,
    wake: Condvar,
}

// SAFETY: `job` is written by `Team::run` before it publishes a new epoch
// (release) and read by workers after they observe it (acquire); `run` does
// not return, and so does not write again, before every worker has
// reported done.
unsafe impl Sync for Shared {}
// SAFETY: as above; the raw job pointer is only dereferenced under that
// protocol.
unsafe impl Send for Shared {}

/// The team.
pub(super) struct Team {
    shared: Arc<Shared>,
    workers: usize,
    /// One section at a time.
    running: Mutex<()>,
}

impl Team {
    /// The process's team: one thread per core, the caller included.
    pub(super) fn global() -> &'static Team {
        static TEAM: OnceLock<Team> = OnceLock::new();
        TEAM.get_or_init(|| {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            Team::new(threads.saturating_sub(1))
        })
    }

    fn new(workers: usize) -> Self {
        let shared = Arc::new(Shared {
            epoch: AtomicUsize::new(0),
            job: UnsafeCell::new(None),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            parked: Mutex::new(0),
            wake: Condvar::new(),
        });
        let mut started = 0;
        for index in 1..=workers {
            let shared = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name(format!("quarry-decode-{index}"))
                .spawn(move || {
                    crate::priority::lower_this_thread();
                    worker(&shared, index, workers + 1)
                });
            if spawned.is_ok() {
                started += 1;
            } else {
                break;
            }
        }
        Self {
            shared,
            workers: started,
            running: Mutex::new(()),
        }
    }

    /// Threads in a section, the caller included.
    pub(super) fn size(&self) -> usize {
        self.workers + 1
    }

    /// Runs `f(index, size)` on every member (the caller is index 0) and
    /// returns when all have finished.
    pub(super) fn run(&self, f: &(dyn Fn(usize, usize) + Sync)) {
        if self.workers == 0 {
            f(0, 1);
            return;
        }
        let _one = self
            .running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let shared = &*self.shared;
        // SAFETY: the lifetime is erased only for the duration of this
        // call: workers finish with the job before `run` returns (the wait
        // on `done` below), and no worker reads `job` outside a section.
        let job: Job = unsafe { std::mem::transmute::<&(dyn Fn(usize, usize) + Sync), Job>(f) };
        // SAFETY: every worker reported done for the previous section, so
        // none is reading `job`.
        unsafe { *shared.job.get() = Some(job) };
        shared.done.store(0, Ordering::Relaxed);
        shared.epoch.fetch_add(1, Ordering::Release);
        {
            let parked = shared
                .parked
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if *parked > 0 {
                shared.wake.notify_all();
            }
        }
        let mine = catch_unwind(AssertUnwindSafe(|| f(0, self.workers + 1)));
        while shared.done.load(Ordering::Acquire) < self.workers {
            std::hint::spin_loop();
        }
        if mine.is_err() || shared.panicked.swap(false, Ordering::AcqRel) {
            panic!("a decoder section panicked");
        }
    }
}

fn worker(shared: &Shared, index: usize, size: usize) {
    let mut seen = 0;
    loop {
        let mut spins = 0;
        let epoch = loop {
            let epoch = shared.epoch.load(Ordering::Acquire);
            if epoch != seen {
                break epoch;
            }
            spins += 1;
            if spins < SPINS {
                std::hint::spin_loop();
                continue;
            }
            let mut parked = shared
                .parked
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            *parked += 1;
            while shared.epoch.load(Ordering::Acquire) == seen {
                parked = shared
                    .wake
                    .wait(parked)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            *parked -= 1;
            spins = 0;
        };
        seen = epoch;
        // SAFETY: published before the epoch this worker just observed and
        // unchanged until it reports done.
        let job = unsafe { *shared.job.get() };
        if let Some(job) = job {
            // SAFETY: `Team::run` keeps the closure alive until every
            // worker has reported done.
            let f = unsafe { &*job };
            if catch_unwind(AssertUnwindSafe(|| f(index, size))).is_err() {
                shared.panicked.store(true, Ordering::Release);
            }
        }
        shared.done.fetch_add(1, Ordering::Release);
    }
}

/// A pointer that may cross threads: sections write disjoint parts of one
/// buffer through it.
#[derive(Clone, Copy)]
pub(super) struct SharedMut(pub *mut f32);

impl SharedMut {
    /// The pointer (a method, so that closures capture the whole wrapper).
    pub(super) fn ptr(self) -> *mut f32 {
        self.0
    }
}

// SAFETY: users write disjoint ranges only, and the buffer outlives the
// section (`Team::run` returns after every member finished).
unsafe impl Send for SharedMut {}
// SAFETY: as above.
unsafe impl Sync for SharedMut {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_member_runs_each_section_and_panics_propagate() {
        let team = Team::new(3);
        assert_eq!(team.size(), 4);
        for round in 0..200 {
            let hits = AtomicUsize::new(0);
            team.run(&|i, size| {
                assert_eq!(size, 4);
                hits.fetch_add(1 << (8 * i), Ordering::Relaxed);
            });
            assert_eq!(hits.load(Ordering::Relaxed), 0x0101_0101, "round {round}");
            if round == 100 {
                // Let the workers park, then wake them.
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        let result = catch_unwind(AssertUnwindSafe(|| {
            team.run(&|i, _| assert!(i != 2, "boom"));
        }));
        assert!(result.is_err());
        let ok = AtomicUsize::new(0);
        team.run(&|_, _| {
            ok.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(ok.load(Ordering::Relaxed), 4, "the team still works");
    }
}
