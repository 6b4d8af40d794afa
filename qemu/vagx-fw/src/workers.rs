// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The device's worker threads: where a command's arithmetic runs between its start and its
//! completion, so that several units and several devices compute at the same time on the host.
//!
//! Only arithmetic leaves the caller's thread. A command's operands are read from guest memory
//! when it starts and its results written when it completes, both by the scheduler on the
//! thread that drives the model (QEMU's, holding the big lock), in virtual-clock order as
//! every other effect; a worker sees host buffers only. So the model stays deterministic: what
//! a command computes does not depend on when the worker ran, and a completion that comes
//! before its worker is done waits for it ([`Pending::take`]), which the fidelity counters
//! record as late.
//!
//! ```text
//!   start_command ──GemmInputs──► queue ──► worker: compute ──► Pending (ready)
//!   complete_command ◄──────────── take (waits if not ready) ◄─────┘
//! ```

use std::{
    sync::{mpsc, Arc, Condvar, Mutex},
    thread,
    time::Instant,
};

use crate::exec::GemmInputs;

/// A GEMM handed to the workers, and where its result goes.
struct Job {
    inputs: Arc<GemmInputs>,
    result: Arc<Slot>,
}

/// A result, once a worker has it, and the host time it took.
#[derive(Default)]
struct Slot {
    done: Mutex<Option<(Vec<f32>, u64)>>,
    ready: Condvar,
}

/// The result of a command handed to the workers.
#[derive(Clone)]
pub struct Pending {
    inputs: Arc<GemmInputs>,
    result: Arc<Slot>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").finish_non_exhaustive()
    }
}

/// What [`Pending::take`] returns: the result, the host time its arithmetic took, and
/// whether the completion had to wait for it.
pub struct Done {
    pub inputs: Arc<GemmInputs>,
    pub c: Vec<f32>,
    pub host_ns: u64,
    pub waited: bool,
}

impl Pending {
    /// The result, waiting for the worker if it is not there yet.
    pub fn take(self) -> Done {
        let mut done = self.result.done.lock().unwrap_or_else(|e| e.into_inner());
        let waited = done.is_none();
        while done.is_none() {
            done = self
                .result
                .ready
                .wait(done)
                .unwrap_or_else(|e| e.into_inner());
        }
        let (c, host_ns) = done.take().unwrap_or_default();
        Done {
            inputs: self.inputs,
            c,
            host_ns,
            waited,
        }
    }
}

/// A pool of worker threads; they end when the pool is dropped.
pub struct Workers {
    jobs: Mutex<mpsc::Sender<Job>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("threads", &self.threads.len())
            .finish()
    }
}

impl Workers {
    /// `count` threads (at least one), named `vagx-worker`.
    pub fn new(count: u32) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::new();
        for _ in 0..count.max(1) {
            let rx = Arc::clone(&rx);
            threads.push(
                thread::Builder::new()
                    .name("vagx-worker".into())
                    .spawn(move || run(&rx))?,
            );
        }
        Ok(Self {
            jobs: Mutex::new(tx),
            threads,
        })
    }

    /// Hands `inputs` to a worker.
    pub fn submit(&self, inputs: GemmInputs) -> Pending {
        let pending = Pending {
            inputs: Arc::new(inputs),
            result: Arc::new(Slot::default()),
        };
        let job = Job {
            inputs: Arc::clone(&pending.inputs),
            result: Arc::clone(&pending.result),
        };
        let sent = self
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(job);
        if let Err(mpsc::SendError(job)) = sent {
            // No worker left (cannot happen while the pool lives): compute here.
            finish(job);
        }
        pending
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        // Closing the channel ends every worker's loop.
        let (closed, _) = mpsc::channel();
        drop(std::mem::replace(
            self.jobs.get_mut().unwrap_or_else(|e| e.into_inner()),
            closed,
        ));
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A worker: takes jobs until the channel closes.
fn run(rx: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        finish(job);
    }
}

/// Computes `job` and publishes its result.
fn finish(job: Job) {
    let started = Instant::now();
    let c = job.inputs.compute();
    let host_ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let mut done = job.result.done.lock().unwrap_or_else(|e| e.into_inner());
    *done = Some((c, host_ns));
    job.result.ready.notify_all();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_computes_what_the_caller_would() {
        let workers = Workers::new(2).expect("threads");
        let pending: Vec<(Pending, Vec<f32>)> = (1..5u32)
            .map(|d| {
                let inputs = GemmInputs::for_test(d * 3, d * 5, d * 7);
                let expected = inputs.compute();
                (workers.submit(inputs), expected)
            })
            .collect();
        for (p, expected) in pending {
            let done = p.take();
            assert_eq!(done.c, expected);
        }
        // Dropping the pool ends and joins its threads.
        drop(workers);
    }
}
