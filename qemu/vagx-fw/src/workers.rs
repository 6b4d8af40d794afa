// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The device's worker threads: where a command runs between its start and its completion,
//! so that several units and several devices compute at the same time on the host, away from
//! the thread that drives the model (QEMU's, holding the big lock).
//!
//! A worker gets a command whose operands the model mapped at its start and gives it back
//! with what it wrote kept aside ([`crate::exec::offload`]); the model writes that to guest
//! memory at the completion, in virtual-clock order as every other effect. A completion that
//! comes before its worker is done waits for it ([`Pending::take`]), which the fidelity
//! counters record as late. The model's thread also drops every command it handed out (the
//! mappings are QEMU's to release): a [`Pending`] dropped unread waits for its worker too.
//!
//! ```text
//!   start_command ──Offloaded──► queue ──► worker: run ──► Slot: Done
//!   complete_command ◄── take (waits if not done) ◄────────────┘
//!   (abandoned command: Pending dropped ── waits, drops it on the model's thread)
//! ```

use std::{
    sync::{mpsc, Arc, Condvar, Mutex},
    thread,
    time::Instant,
};

use crate::exec::offload::Offloaded;

/// A command handed to the workers, and where it goes back.
struct Job {
    task: Offloaded,
    slot: Arc<Slot>,
}

/// Where a worker leaves a command it ran.
#[derive(Default)]
struct Slot {
    state: Mutex<State>,
    ready: Condvar,
}

/// A [`Slot`]'s contents.
#[derive(Default)]
enum State {
    /// On a worker, or queued for one.
    #[default]
    Running,
    /// Run, with the host time it took.
    Done(Box<Offloaded>, u64),
    /// Taken by the model.
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

/// What [`Pending::take`] returns: the command, the host time it took, and whether the
/// completion had to wait for it.
pub struct Done {
    pub task: Offloaded,
    pub host_ns: u64,
    pub waited: bool,
}

impl Pending {
    /// The command, waiting for its worker if it is not done yet.
    pub fn take(self) -> Done {
        let (task, host_ns, waited) = self.wait();
        Done {
            task: *task,
            host_ns,
            waited,
        }
    }

    /// Waits for the worker and takes what it left.
    fn wait(&self) -> (Box<Offloaded>, u64, bool) {
        let mut state = self.slot.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut waited = false;
        loop {
            match std::mem::replace(&mut *state, State::Taken) {
                State::Done(task, host_ns) => return (task, host_ns, waited),
                State::Running => {
                    *state = State::Running;
                    waited = true;
                    state = self
                        .slot
                        .ready
                        .wait(state)
                        .unwrap_or_else(|e| e.into_inner());
                }
                // `take` consumes the `Pending`: only `drop` finds it taken.
                State::Taken => unreachable!("a command taken twice"),
            }
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let taken = matches!(
            *self.slot.state.lock().unwrap_or_else(|e| e.into_inner()),
            State::Taken
        );
        if !taken {
            // An abandoned command: its mappings are released here, on the model's thread.
            drop(self.wait());
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

    /// Hands `task` to a worker.
    pub fn submit(&self, task: Offloaded) -> Pending {
        let slot = Arc::new(Slot::default());
        let job = Job {
            task,
            slot: Arc::clone(&slot),
        };
        let sent = self
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(job);
        if let Err(mpsc::SendError(job)) = sent {
            // No worker left (cannot happen while the pool lives): run it here.
            finish(job);
        }
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

/// A worker: takes jobs until the channel closes, and the jobs still queued then.
fn run(rx: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        finish(job);
    }
}

/// Runs `job` and leaves it in its slot.
fn finish(mut job: Job) {
    let started = Instant::now();
    job.task.run();
    let host_ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let mut state = job.slot.state.lock().unwrap_or_else(|e| e.into_inner());
    *state = State::Done(Box::new(job.task), host_ns);
    job.slot.ready.notify_all();
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
}
