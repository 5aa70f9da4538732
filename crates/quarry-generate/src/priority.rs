//! How the generator shares the CPU with the embedder.
//!
//! Both run on the same cores, each on threads of its own. Searches and
//! embeddings are short and latency-bound; an answer's prefill is long
//! and throughput-bound. So the generation thread and its decode team run
//! at a lower scheduling priority (nice [`GENERATE_NICE`]): while both
//! want the CPU, Linux's scheduler gives an embedder thread about three
//! times the generator's share (CFS weights 1024 against 335), and when
//! the embedder is idle the generator has every core. Nothing waits on a
//! lock between them, so the lower priority cannot invert.

/// The niceness of the generation threads.
pub const GENERATE_NICE: i32 = 5;

/// Lowers the calling thread's scheduling priority to [`GENERATE_NICE`]
/// (Linux: per thread). Best effort: a failure leaves the default.
pub(crate) fn lower_this_thread() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no preconditions; setpriority on this
        // thread's id changes only this thread's niceness.
        let done = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, GENERATE_NICE)
        };
        if done != 0 {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "cannot lower the generation thread's priority"
            );
        }
    }
}
