// SPDX-License-Identifier: GPL-2.0

//! The state a scheduler's entities, jobs and work items share ([`Shared`]), its locks, and
//! the work items that run on it.
//!
//! The worker runs on the scheduler's own ordered, reclaim-safe workqueue, inside a
//! fence-signalling section, and never allocates: the room every job needs in every queue was
//! reserved when the job was created. In one invocation it completes every job whose hardware
//! fence has signalled and then runs jobs until the credits or the ready jobs run out. The
//! timeout handler runs on the same ordered queue, so it never races with the worker. Fence
//! callbacks only queue the worker, or for a [`Backend::RUN_IN_IRQ`] backend an `irq_work`
//! that starts the next jobs (`direct.rs`).
//!
//! # Locks
//!
//! Outermost first; each covers what its field's doc says.
//!
//! - [`Shared::run_lock`] (mutex): the right to run or time out jobs in process context, held
//!   by the worker, the bypass in `push_job` and the timeout handler.
//! - [`Shared::runner`] (a flag taken with `xchg`): the right to run jobs in any context. A
//!   start from a completion only tries it; a process-context holder of `run_lock` spins for
//!   it (only [`Backend::RUN_IN_IRQ`] backends use it).
//! - [`Shared::state`] (interrupt-safe spinlock): every field of [`State`]. Taken in process
//!   context and by starts from a completion (hard-interrupt context), never by a fence
//!   callback. Held across [`Backend::prepare_job`] (from a pick), never across
//!   [`Backend::run_job`] or while a fence signals.
//! - A job's `inner`, then (not nested in it) its `dep_cb` or `hw_cb` (see `job.rs`), then
//!   the lock of the fence a callback is added to.
//!
//! Lifetimes: a job's callbacks hold the scheduler's shared state, and the callbacks live in
//! the job, which is freed only after its callbacks have run or been removed. The shared state
//! is freed when the last holder goes; if that is the worker itself, the release is handed to
//! the system workqueue, since a queue cannot be destroyed from its own work.

use super::{
    entity::EntityState,
    fifo::Fifo,
    job::JobNode,
    policy::{self, PolicyKind},
    scheduler::SchedulerConfig,
    Backend, Priority,
};
use crate::{
    impl_has_delayed_work, impl_has_work,
    irq_work::IrqWork,
    new_condvar, new_delayed_work, new_mutex, new_spinlock_irq, new_work,
    prelude::*,
    sync::atomic::{Acquire, Atomic, Relaxed, Release},
    sync::{Arc, CondVar, Mutex, SpinLockIrq},
    time::{Instant, Monotonic},
    workqueue::{
        self,
        owned::{OwnedQueue, QueueFlags},
        DelayedWork, Work, WorkItem,
    },
};

/// The scheduler's mutable state.
pub(crate) struct State<B: Backend> {
    pub(crate) entities: KVec<Option<EntityState<B>>>,
    pub(crate) in_flight: Fifo<Arc<JobNode<B>>>,
    /// Jobs created and not yet freed: the room reserved in `in_flight`.
    pub(crate) reserved: usize,
    /// Credits of the jobs on the hardware, in all.
    pub(crate) credits_used: u32,
    /// The same per priority ([`Priority::index`]), for
    /// [`SchedulerConfig::credits_per_priority`].
    pub(crate) band_used: [u32; Priority::COUNT],
    /// Jobs picked by deadline in a row while a job without one waited beside them
    /// ([`super::deadline::DEADLINE_BURST`]).
    pub(crate) deadline_streak: u32,
    pub(crate) stopped: bool,
    /// Since when the head of `in_flight` has been the head (its timeout runs from there).
    pub(crate) head_since: Option<Instant<Monotonic>>,
    /// Logical time: one tick per push and per pick.
    pub(crate) clock: u64,
    pub(crate) policy: PolicyKind,
}

impl<B: Backend> State<B> {
    /// Whether a job of `credits` picked at `prio` fits beside the jobs on the hardware.
    ///
    /// A job with a deadline (`urgent`) may also take [`SchedulerConfig::deadline_credits`].
    pub(crate) fn fits(
        &self,
        config: &SchedulerConfig,
        prio: Priority,
        credits: u32,
        urgent: bool,
    ) -> bool {
        let used = if config.credits_per_priority {
            self.band_used[prio.index()]
        } else {
            self.credits_used
        };
        let reserve = if urgent { config.deadline_credits } else { 0 };
        policy::credits_fit(used, credits, config.credit_limit.saturating_add(reserve))
    }

    /// Takes the credits of `job`, picked at `prio`.
    pub(crate) fn take_credits(&mut self, job: &JobNode<B>, prio: Priority) {
        // CAST: an index below `Priority::COUNT`.
        job.band.store(prio.index() as u32, Relaxed);
        self.credits_used += job.credits;
        self.band_used[prio.index()] += job.credits;
    }

    /// Gives back the credits of `job` (to the priority it was picked at).
    pub(crate) fn return_credits(&mut self, job: &JobNode<B>) {
        return_credits(&mut self.credits_used, &mut self.band_used, job);
    }
}

/// [`State::return_credits`] on the two counters alone, for a caller that walks
/// `State::in_flight` meanwhile.
pub(crate) fn return_credits<B: Backend>(
    credits_used: &mut u32,
    band_used: &mut [u32; Priority::COUNT],
    job: &JobNode<B>,
) {
    *credits_used -= job.credits;
    // CAST: stored from an index below `Priority::COUNT`.
    if let Some(used) = band_used.get_mut(job.band.load(Relaxed) as usize) {
        *used -= job.credits;
    }
}

/// What the scheduler, its entities, its jobs and its work items share.
#[pin_data]
pub(crate) struct Shared<B: Backend> {
    pub(crate) backend: B,
    pub(crate) config: SchedulerConfig,
    pub(crate) wq: OwnedQueue,
    #[pin]
    work: Work<Shared<B>, 0>,
    #[pin]
    tdr: DelayedWork<Shared<B>, 1>,
    #[pin]
    release: Work<Shared<B>, 2>,
    /// Interrupt-safe: starts from a completion ([`Backend::RUN_IN_IRQ`]) take it.
    #[pin]
    pub(crate) state: SpinLockIrq<State<B>>,
    /// Held while jobs are run or timed out: by the worker, the timeout handler and the
    /// bypass, which must not overlap.
    #[pin]
    pub(crate) run_lock: Mutex<()>,
    /// Held by whoever runs jobs, including a start from a completion, which cannot take
    /// `run_lock` and only tries this (a process-context holder of `run_lock` spins for it).
    pub(crate) runner: Atomic<bool>,
    /// Starts jobs after a completion (`direct.rs`).
    #[pin]
    pub(crate) irq_start: IrqWork<Shared<B>>,
    /// Notified whenever an entity's queue shrinks, if someone waits (`flush_waiters`).
    #[pin]
    pub(crate) progress: CondVar,
    /// Threads in `flush_entity`'s wait: changed under `state`, so a waker that changed the
    /// state under `state` and reads 0 afterwards knows nobody can be waiting for it.
    pub(crate) flush_waiters: Atomic<u32>,
    /// A job's deadline moved: the worker passes it on ([`Shared::pass_deadlines_on`]).
    pub(crate) deadlines_changed: core::sync::atomic::AtomicBool,
}

impl_has_work! {
    impl{B: Backend} HasWork<Shared<B>, 0> for Shared<B> { self.work }
    impl{B: Backend} HasWork<Shared<B>, 2> for Shared<B> { self.release }
}
impl_has_delayed_work! {
    impl{B: Backend} HasDelayedWork<Shared<B>, 1> for Shared<B> { self.tdr }
}

/// The right to run jobs, taken by the worker, the bypass and the timeout handler (with
/// `run_lock`); released on drop.
pub(crate) struct Runner<'a, B: Backend> {
    shared: &'a Shared<B>,
}

impl<'a, B: Backend> Runner<'a, B> {
    /// Waits for a start from a completion to finish (it is short and never waits itself).
    pub(crate) fn spin(shared: &'a Shared<B>) -> Self {
        if B::RUN_IN_IRQ {
            while shared.runner.xchg(true, Acquire) {
                core::hint::spin_loop();
            }
        }
        Self { shared }
    }

    /// `None` if someone else runs jobs now.
    pub(crate) fn try_take(shared: &'a Shared<B>) -> Option<Self> {
        if B::RUN_IN_IRQ && shared.runner.xchg(true, Acquire) {
            return None;
        }
        Some(Self { shared })
    }
}

impl<B: Backend> Drop for Runner<'_, B> {
    fn drop(&mut self) {
        if B::RUN_IN_IRQ {
            self.shared.runner.store(false, Release);
        }
    }
}

impl<B: Backend> Shared<B> {
    /// The shared state of a new scheduler.
    pub(crate) fn new(config: SchedulerConfig, backend: B) -> Result<Arc<Self>> {
        let wq =
            OwnedQueue::new_ordered(config.name, QueueFlags::MEM_RECLAIM | QueueFlags::HIGHPRI)?;
        Arc::pin_init(
            pin_init!(Shared {
                backend,
                config,
                wq,
                work <- new_work!("vagx_sched::work"),
                tdr <- new_delayed_work!("vagx_sched::tdr"),
                release <- new_work!("vagx_sched::release"),
                state <- new_spinlock_irq!(State {
                    entities: KVec::new(),
                    in_flight: Fifo::new(),
                    reserved: 0,
                    credits_used: 0,
                    band_used: [0; Priority::COUNT],
                    deadline_streak: 0,
                    stopped: false,
                    head_since: None,
                    clock: 0,
                    policy: config.policy,
                }),
                progress <- new_condvar!(),
                flush_waiters: Atomic::new(0),
                deadlines_changed: core::sync::atomic::AtomicBool::new(false),
                run_lock <- new_mutex!(()),
                runner: Atomic::new(false),
                irq_start <- IrqWork::new(),
            }),
            GFP_KERNEL,
        )
    }

    /// See [`Scheduler::dump`].
    pub(crate) fn dump(&self, w: &mut impl core::fmt::Write) -> core::fmt::Result {
        let s = self.state.lock();
        writeln!(
            w,
            "{}: policy {:?}, credits {}/{}, on hardware {}, jobs {}{}",
            self.config.name.to_str().unwrap_or("?"),
            s.policy,
            s.credits_used,
            self.config.credit_limit,
            s.in_flight.len(),
            s.reserved,
            if s.stopped { ", stopped" } else { "" }
        )?;
        for (id, e) in s.entities.iter().enumerate() {
            let Some(e) = e else { continue };
            writeln!(
                w,
                "  entity {id}: {:?} queued {} running {} gpu_ns {} jobs {} vruntime {} hangs {}{}{}",
                e.priority,
                e.queue.len(),
                e.in_flight,
                e.stats.gpu_ns,
                e.stats.jobs_done,
                e.stats.vruntime,
                e.guilty,
                if e.killed { " killed" } else { "" },
                if e.banned { " banned" } else { "" }
            )?;
        }
        Ok(())
    }

    /// Wakes `flush_entity` waiters (a wake-up costs a lock; skipped when nobody waits).
    pub(crate) fn notify_progress(&self) {
        if self.flush_waiters.load(Relaxed) != 0 {
            self.progress.notify_all();
        }
    }

    /// Queues the worker (a no-op if it is queued already). Interrupt-safe.
    pub(crate) fn kick(this: &Arc<Self>) {
        let _ = this.wq.enqueue::<Arc<Self>, 0>(this.clone());
    }

    /// Jobs created on this scheduler and not yet freed: the load entities balance on.
    pub(crate) fn load(&self) -> usize {
        self.state.lock().reserved
    }

    /// Drops a work item's reference; the last one is released from the system queue, since
    /// the scheduler's own queue cannot be destroyed from its work.
    pub(crate) fn put_from_work(this: Arc<Self>) {
        if let Some(last) = Arc::into_unique_or_drop(this) {
            let last: Arc<Self> = last.into();
            let _ = workqueue::system().enqueue::<Arc<Self>, 2>(last);
        }
    }
}

impl<B: Backend> WorkItem<0> for Shared<B> {
    type Pointer = Arc<Self>;

    fn run(this: Arc<Self>) {
        Self::process(&this);
        Self::put_from_work(this);
    }
}

impl<B: Backend> WorkItem<1> for Shared<B> {
    type Pointer = Arc<Self>;

    fn run(this: Arc<Self>) {
        Self::timeout(&this);
        Self::put_from_work(this);
    }
}

impl<B: Backend> WorkItem<2> for Shared<B> {
    type Pointer = Arc<Self>;

    fn run(this: Arc<Self>) {
        // The last reference: dropping it destroys the scheduler's queue, from this one.
        drop(this);
    }
}
