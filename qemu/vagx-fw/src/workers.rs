// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The device's worker threads: where a command runs between its start and its completion,
//! so that several units and several devices compute at the same time on the host, away from
//! the thread that drives the model (QEMU's, holding the big lock).
//!
//! A worker gets a command whose operands the model mapped at its start and gives it back
//! with what it wrote kept aside ([`crate::exec::offload`]); the model writes that to guest
//! memory at the completion, in virtual-clock order as every other effect. A completion that
//! finds its command still queued (no worker got to it: on a busy host a thread's wake-up can
//! take longer than a short command) takes it back and runs it itself, as a device without
//! workers would; one that finds it running waits for it ([`Pending::take`]), which the
//! fidelity counters record as late. The model's thread also drops every command it handed
//! out (the mappings are QEMU's to release): a [`Pending`] dropped unread takes back a queued
//! command unrun, or waits for a running one.
//!
//! ```text
//!   submit ──► Queued ──worker picks it──► Running ──worker done──► Done
//!                │                            │                      │
//!           take: run here              take: wait (late)       take: ready
//!           drop: dropped unrun         drop: wait                drop: dropped
//!                └──────────────────────► Taken ◄─────────────────────┘
//! ```

use std::{
    sync::{mpsc, Arc, Condvar, Mutex},
    thread,
    time::Instant,
};

use crate::exec::offload::Offloaded;

/// Where a command handed to the workers is.
#[derive(Default)]
struct Slot {
    state: Mutex<State>,
    ready: Condvar,
}

/// A [`Slot`]'s contents.
#[derive(Default)]
enum State {
    /// Waiting for a worker.
    Queued(Box<Offloaded>),
    /// On a worker.
    #[default]
    Running,
    /// Run, with the host time it took.
    Done(Box<Offloaded>, u64),
    /// Taken back by the model.
    Taken,
}

/// A command handed to the workers.
pub struct Pending {
    slot: Arc<Slot>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").finish_non_exhaustive()
    }
}

/// Who ran a command [`Pending::take`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RanOn {
    /// A worker, done before the completion came.
    Worker,
    /// A worker, which the completion had to wait for: late.
    WorkerLate,
    /// The caller, in `take`: no worker had picked it up.
    Caller,
}

/// What [`Pending::take`] returns: the command, run, the host time its run took, and where.
pub struct Done {
    pub task: Offloaded,
    pub host_ns: u64,
    pub ran_on: RanOn,
}

impl Pending {
    /// The command, run: by a worker (waiting for it if it is running), or here if no worker
    /// has picked it up yet.
    pub fn take(self) -> Done {
        let (task, host_ns, ran_on) = match self.claim() {
            Claimed::Ran(task, host_ns, late) => {
                let ran_on = if late {
                    RanOn::WorkerLate
                } else {
                    RanOn::Worker
                };
                (task, host_ns, ran_on)
            }
            Claimed::Unrun(mut task) => {
                let started = Instant::now();
                task.run();
                (task, elapsed_ns(started), RanOn::Caller)
            }
            Claimed::Gone => unreachable!("a command taken twice"),
        };
        Done {
            task: *task,
            host_ns,
            ran_on,
        }
    }

    /// Takes the command out of its slot: unrun if it is still queued, else once a worker is
    /// done with it (waiting while it runs).
    fn claim(&self) -> Claimed {
        let mut state = self.slot.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut waited = false;
        loop {
            match std::mem::replace(&mut *state, State::Taken) {
                State::Queued(task) => return Claimed::Unrun(task),
                State::Done(task, host_ns) => return Claimed::Ran(task, host_ns, waited),
                State::Running => {
                    *state = State::Running;
                    waited = true;
                    state = self
                        .slot
                        .ready
                        .wait(state)
                        .unwrap_or_else(|e| e.into_inner());
                }
                State::Taken => return Claimed::Gone,
            }
        }
    }
}

/// What [`Pending::claim`] found.
enum Claimed {
    /// Still queued: nobody ran it.
    Unrun(Box<Offloaded>),
    /// Run by a worker in this many host ns; whether the claim had to wait.
    Ran(Box<Offloaded>, u64, bool),
    /// Already taken (by `take`, before the `Pending` is dropped).
    Gone,
}

impl Drop for Pending {
    fn drop(&mut self) {
        // An abandoned command is dropped here, on the model's thread, with its mappings:
        // unrun if still queued, else once its worker is done.
        match self.claim() {
            Claimed::Unrun(task) | Claimed::Ran(task, _, _) => drop(task),
            Claimed::Gone => {}
        }
    }
}

/// Host nanoseconds since `started`.
fn elapsed_ns(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A pool of worker threads; they end when the pool is dropped.
pub struct Workers {
    jobs: Mutex<mpsc::Sender<Arc<Slot>>>,
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
        let (tx, rx) = mpsc::channel::<Arc<Slot>>();
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

    /// Hands `task` to a worker.
    pub fn submit(&self, task: Offloaded) -> Pending {
        let slot = Arc::new(Slot {
            state: Mutex::new(State::Queued(Box::new(task))),
            ready: Condvar::new(),
        });
        // With no worker left (cannot happen while the pool lives) the command stays queued,
        // and its completion runs it.
        let _ = self
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(Arc::clone(&slot));
        Pending { slot }
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

/// A worker: takes commands until the channel closes, and those still queued then.
fn run(rx: &Mutex<mpsc::Receiver<Arc<Slot>>>) {
    loop {
        let slot = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(slot) => slot,
            Err(_) => return,
        };
        finish(&slot);
    }
}

/// Runs the command in `slot` unless the model took it back, and leaves it there.
fn finish(slot: &Slot) {
    let mut task = {
        let mut state = slot.state.lock().unwrap_or_else(|e| e.into_inner());
        match std::mem::replace(&mut *state, State::Running) {
            State::Queued(task) => task,
            other => {
                // Taken back (run or dropped by the model).
                *state = other;
                return;
            }
        }
    };
    let started = Instant::now();
    task.run();
    let host_ns = elapsed_ns(started);
    let mut state = slot.state.lock().unwrap_or_else(|e| e.into_inner());
    *state = State::Done(task, host_ns);
    slot.ready.notify_all();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::Command;
    use crate::mem::{Memory, Ram};
    use crate::mmu::{PageTableBuilder, Vm};
    use vagx_abi::mmu::{PTE_READ, PTE_WRITE};

    /// RAM with a VM mapping its 64 KiB of data at GPU VA 0x10_0000, and the VM.
    fn memory() -> (Ram, Vm) {
        let mut ram = Ram::new(0, 0x40_0000);
        let mut tables = PageTableBuilder::new(&mut ram, 0x10_0000).expect("tables");
        tables
            .map(
                &mut ram,
                0x10_0000,
                0x20_0000,
                0x1_0000,
                PTE_READ | PTE_WRITE,
            )
            .expect("map");
        (ram, tables.vm())
    }

    #[test]
    fn a_worker_runs_what_the_model_would_and_the_guest_sees_it_at_commit() {
        let (mut ram, vm) = memory();
        let workers = Workers::new(2).expect("threads");
        let mut pending = Vec::new();
        for i in 0..4u64 {
            let fill = Command::Fill {
                dst: 0x10_0000 + i * 0x1000,
                len: 0x1000,
                // CAST: small.
                pattern: 0x0101_0101 * (i as u32 + 1),
            };
            let task = crate::exec::offload::Offloaded::prepare(fill, &vm, &mut ram)
                .expect("translates")
                .expect("RAM maps");
            pending.push(workers.submit(task));
        }
        // Abandoned: its writes never reach memory.
        drop(pending.pop());
        for p in pending {
            let done = p.take();
            assert_eq!(done.task.commit(), Ok(()));
        }
        let mut b = [0u8; 4];
        for (i, expected) in [1u8, 2, 3, 0].into_iter().enumerate() {
            // CAST: small.
            vm.read(&mut ram, 0x10_0ffc + i as u64 * 0x1000, &mut b)
                .expect("read");
            assert_eq!(b, [expected; 4], "page {i}");
        }
        // Dropping the pool ends and joins its threads.
        drop(workers);
        assert!(ram.map(0, 1).is_some());
    }

    #[test]
    fn a_completion_runs_a_command_no_worker_has_picked_up() {
        let (mut ram, vm) = memory();
        let workers = Workers::new(1).expect("thread");
        // The one worker is busy with a GEMM of 2·128³ flops while the FILL queues behind it.
        let gemm = Command::Gemm {
            a: 0x10_0000,
            b: 0x10_0000,
            c: 0x10_0000,
            m: 128,
            n: 128,
            k: 128,
            accumulate: false,
            transpose_b: false,
        };
        let fill = Command::Fill {
            dst: 0x10_0000,
            len: 16,
            pattern: 7,
        };
        let mut prepare = |c| {
            crate::exec::offload::Offloaded::prepare(c, &vm, &mut ram)
                .expect("translates")
                .expect("RAM maps")
        };
        let (gemm, fill) = (prepare(gemm), prepare(fill));
        let busy = workers.submit(gemm);
        // Until the worker has it (its wake-up alone can outlast a short command).
        while matches!(*busy.slot.state.lock().unwrap(), State::Queued(_)) {
            thread::yield_now();
        }
        let queued = workers.submit(fill);
        let done = queued.take();
        assert_eq!(done.ran_on, RanOn::Caller);
        assert_eq!(done.task.commit(), Ok(()));
        let done = busy.take();
        assert_ne!(done.ran_on, RanOn::Caller);
        assert_eq!(done.task.commit(), Ok(()));
    }
}
