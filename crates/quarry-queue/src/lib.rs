//! The bounded queue in front of every model thread (embedding and
//! generation alike): callers submit jobs without blocking and learn at
//! once when the queue is full; model threads take jobs in batches whose
//! cost fits a budget (a token budget for embeddings, one job at a time
//! for generation). It owns the threads it starts, and they stop when the
//! last [`Queue`] handle is dropped.
//!
//! CPU-heavy work never runs on an async runtime's workers: a model's
//! thread is started here and fed through this queue.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

/// Why a job was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitError {
    /// `capacity` jobs are already waiting.
    Full {
        /// The queue's capacity.
        capacity: usize,
    },
    /// The model threads have stopped.
    Stopped,
}

/// The submitting side. Clones share the queue and its threads.
pub struct Queue<J> {
    tx: SyncSender<J>,
    waiting: Arc<AtomicUsize>,
    capacity: usize,
}

impl<J> Clone for Queue<J> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            waiting: Arc::clone(&self.waiting),
            capacity: self.capacity,
        }
    }
}

/// A model thread's side: takes the next batch of jobs.
pub struct Taker<J> {
    rx: Arc<Mutex<Receiver<J>>>,
    waiting: Arc<AtomicUsize>,
}

/// What [`Taker::try_next`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum TryNext<J> {
    /// A job.
    Job(J),
    /// None waiting now.
    Empty,
    /// Every [`Queue`] handle is gone and none is left.
    Closed,
}

impl<J> Taker<J> {
    fn receiver(&self) -> std::sync::MutexGuard<'_, Receiver<J>> {
        // A thread that panicked while holding the lock leaves the
        // receiver intact.
        match self.rx.lock() {
            Ok(rx) => rx,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Blocks for the next job; `None` when every [`Queue`] handle is gone.
    pub fn next(&self) -> Option<J> {
        let job = self.receiver().recv().ok()?;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        Some(job)
    }

    /// The next job if one is waiting, without blocking (a thread that
    /// keeps working between jobs, such as the generator's batch).
    pub fn try_next(&self) -> TryNext<J> {
        match self.receiver().try_recv() {
            Ok(job) => {
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                TryNext::Job(job)
            }
            Err(mpsc::TryRecvError::Empty) => TryNext::Empty,
            Err(mpsc::TryRecvError::Disconnected) => TryNext::Closed,
        }
    }

    /// Blocks for the next job, then takes every job already waiting while
    /// the batch's `cost` stays under `budget` (the first is always taken,
    /// however large). `None` when every [`Queue`] handle is gone.
    pub fn next_batch(&self, budget: usize, cost: impl Fn(&J) -> usize) -> Option<Vec<J>> {
        let jobs = {
            let rx = self.receiver();
            let first = rx.recv().ok()?;
            let mut spent = cost(&first);
            let mut jobs = vec![first];
            while spent < budget {
                match rx.try_recv() {
                    Ok(job) => {
                        spent += cost(&job);
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
            jobs
        };
        self.waiting.fetch_sub(jobs.len(), Ordering::Relaxed);
        Some(jobs)
    }
}

impl<J: Send + 'static> Queue<J> {
    /// A queue holding up to `capacity` waiting jobs, served by one thread
    /// per worker, each named `{name}-{i}` and running `run(worker,
    /// taker)` until the queue is dropped.
    pub fn start<W: Send + 'static>(
        name: &str,
        capacity: usize,
        workers: Vec<W>,
        run: fn(W, Taker<J>),
    ) -> std::io::Result<Self> {
        let capacity = capacity.max(1);
        let (tx, rx) = mpsc::sync_channel(capacity);
        let rx = Arc::new(Mutex::new(rx));
        let waiting = Arc::new(AtomicUsize::new(0));
        for (i, worker) in workers.into_iter().enumerate() {
            let taker = Taker {
                rx: Arc::clone(&rx),
                waiting: Arc::clone(&waiting),
            };
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || run(worker, taker))?;
        }
        Ok(Self {
            tx,
            waiting,
            capacity,
        })
    }

    /// Queues `job`, or says at once why not.
    pub fn submit(&self, job: J) -> Result<(), SubmitError> {
        // Counted before the send: a thread may take it at once.
        self.waiting.fetch_add(1, Ordering::Relaxed);
        self.tx.try_send(job).map_err(|e| {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            match e {
                TrySendError::Full(_) => SubmitError::Full {
                    capacity: self.capacity,
                },
                TrySendError::Disconnected(_) => SubmitError::Stopped,
            }
        })
    }

    /// Jobs waiting for a thread.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Jobs that may wait.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::channel;
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_full_queue_refuses_at_once_and_batches_respect_the_budget() {
        // A worker that waits for a go signal, then reports its batches.
        let (go_tx, go_rx) = channel::<()>();
        let (out_tx, out_rx) = channel::<Vec<usize>>();
        let queue = Queue::start(
            "test",
            4,
            vec![(go_rx, out_tx)],
            |(go, out), taker: Taker<usize>| {
                let _ = go.recv();
                while let Some(batch) = taker.next_batch(10, |j| *j) {
                    let _ = out.send(batch);
                }
            },
        )
        .unwrap();
        // The worker is blocked before taking anything: 4 fit, a 5th not.
        for job in [4, 4, 4, 4] {
            queue.submit(job).unwrap();
        }
        assert_eq!(queue.submit(1), Err(SubmitError::Full { capacity: 4 }));
        assert_eq!(queue.waiting(), 4);
        go_tx.send(()).unwrap();
        // Cost 4 + 4 + 4 passes the budget of 10 after the third job.
        let first = out_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(first, vec![4, 4, 4]);
        let second = out_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(second, vec![4]);
        assert_eq!(queue.waiting(), 0);
        drop(queue);
        assert!(out_rx.recv_timeout(Duration::from_secs(10)).is_err());
    }
}
