// SPDX-License-Identifier: GPL-2.0

//! The scheduler: one hardware ring or firmware queue, its run queues and its worker.
//!
//! All scheduling state sits behind one spinlock that only process context takes. Fence
//! callbacks (which may run in interrupt context) never take it: they only queue the worker.
//! The worker runs on the scheduler's own ordered, reclaim-safe workqueue, inside a
//! fence-signalling section, and never allocates: the room every job needs in every queue was
//! reserved when the job was created. In one invocation it completes every job whose hardware
//! fence has signalled and then runs jobs until the credits or the ready jobs run out.
//!
//! The timeout handler runs on the same ordered queue, so it never races with the worker.
//!
//! Lifetimes: a job's callbacks hold the scheduler's shared state, and the callbacks live in
//! the job, which is freed only after its callbacks have run or been removed. The shared state
//! is freed when the last holder goes; if that is the worker itself, the release is handed to
//! the system workqueue, since a queue cannot be destroyed from its own work.

use super::{
    entity::EntityState,
    job::JobNode,
    policy::{self, PolicyKind},
    ring::Ring,
    trace, Priority,
};
use crate::{
    dma_fence::{Fence, FenceCallbackFn, SignallingGuard},
    impl_has_delayed_work, impl_has_work,
    irq_work::IrqWork,
    new_condvar, new_delayed_work, new_mutex, new_spinlock_irq, new_work,
    prelude::*,
    sync::atomic::{Acquire, Atomic, Relaxed, Release},
    sync::{aref::ARef, Arc, CondVar, Mutex, SpinLockIrq},
    time::{msecs_to_jiffies, Delta, Instant, Monotonic},
    workqueue::{
        self,
        owned::{cancel_delayed_work_sync, cancel_work_sync, OwnedQueue, QueueFlags},
        DelayedWork, Work, WorkItem,
    },
};

/// What the timeout handler found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutStatus {
    /// The job hung and the backend has recovered: it made the job's hardware fence signal
    /// (with an error) and the other jobs on the hardware continue.
    Reset,
    /// The job is making progress: keep it and re-arm the timer.
    NoHang,
    /// The device is gone: stop the scheduler. Jobs on the hardware are cancelled through
    /// the backend, queued ones fail with `ENODEV`, new ones are refused with `ENODEV`.
    NoDevice,
}

/// What a scheduler drives: the hardware (or firmware queue) side.
///
/// Every method is called from the scheduler's worker, in process context, inside a
/// fence-signalling section: it must not allocate with `GFP_KERNEL` or wait for fences.
pub trait Backend: Send + Sync + Sized + 'static {
    /// The driver's job data.
    type Job: Send + Sync;

    /// Starts `job` on the hardware and returns the fence that signals when it completes
    /// (with an error if it failed). An error return fails the job at once.
    fn run_job(&self, job: &Self::Job) -> Result<ARef<Fence>>;

    /// The job at the head of the hardware has run for longer than the timeout.
    fn timed_out(&self, job: &Self::Job) -> TimeoutStatus;

    /// The scheduler is going away with `job` on the hardware: make its fence signal (for
    /// example with `ECANCELED`) soon, without freeing anything.
    fn cancel_job(&self, job: &Self::Job);

    /// The in-order ring `job` runs on, if the hardware promises one: jobs that the backend
    /// puts on one ring complete in the order `run_job` was called for them, so a job that
    /// waits for a job of the same ring may start as soon as that one has started
    /// (pipelining). `None` (the default) promises nothing: every dependency is then waited
    /// for until it signals. A pipelined job whose dependency fails is failed by the
    /// scheduler with that error, before it runs if it has not started, else when it
    /// completes.
    fn ring(&self, _job: &Self::Job) -> Option<u64> {
        None
    }

    /// A fence the job must also wait for before it runs (ring space, firmware slots), or
    /// `None`. Called again, when it has signalled, until it returns `None`.
    fn prepare_job(&self, _job: &Self::Job) -> Option<ARef<Fence>> {
        None
    }

    /// Whether `run_job` and `prepare_job` may also be called in interrupt context, from the
    /// signalling of a job's hardware fence. Then a completion starts the next job at once
    /// instead of waiting for the worker, and the hardware does not idle for a kworker round
    /// trip. Such a backend's `run_job` and `prepare_job` must not sleep, allocate, or take a
    /// lock that is held with interrupts enabled, nor the hardware fence's lock.
    const RUN_IN_IRQ: bool = false;
}

/// How a scheduler is set up.
#[derive(Clone, Copy, Debug)]
pub struct SchedulerConfig {
    /// The name of the scheduler (fence driver name, workqueue name).
    pub name: &'static CStr,
    /// Credits available on the hardware; a job runs only if its credits fit.
    pub credit_limit: u32,
    /// How long the job at the head of the hardware may run; `None` disables timeouts.
    pub timeout: Option<Delta>,
    /// The scheduling policy.
    pub policy: PolicyKind,
    /// Timeouts after which an entity is banned; 0 never bans.
    pub ban_limit: u32,
    /// Run a job straight from `push` when the scheduler has nothing else queued, the job
    /// waits for nothing and its credits are free (no worker round trip).
    pub bypass: bool,
}

impl SchedulerConfig {
    /// A configuration with the given name and limit, the policy of `vagx_sched.policy`
    /// ([`PolicyKind::module_default`]), no timeout, ban after 3 hangs.
    pub fn new(name: &'static CStr, credit_limit: u32) -> Self {
        Self {
            name,
            credit_limit,
            timeout: None,
            policy: PolicyKind::module_default(),
            ban_limit: 3,
            bypass: true,
        }
    }
}

/// A GPU scheduler. Dropping it stops it: jobs on the hardware are cancelled through the
/// backend and complete with its error, queued jobs complete with `ECANCELED`.
pub struct Scheduler<B: Backend> {
    pub(crate) shared: Arc<Shared<B>>,
}

/// The scheduler's mutable state.
pub(crate) struct State<B: Backend> {
    pub(crate) entities: KVec<Option<EntityState<B>>>,
    pub(crate) in_flight: Ring<Arc<JobNode<B>>>,
    /// Jobs created and not yet freed: the room reserved in `in_flight`.
    pub(crate) reserved: usize,
    pub(crate) credits_used: u32,
    pub(crate) stopped: bool,
    /// Since when the head of `in_flight` has been the head (its timeout runs from there).
    pub(crate) head_since: Option<Instant<Monotonic>>,
    /// Logical time: one tick per push and per pick.
    pub(crate) clock: u64,
    pub(crate) policy: PolicyKind,
}

/// What the scheduler, its entities, its jobs and its work items share.
#[pin_data]
pub(crate) struct Shared<B: Backend> {
    pub(crate) backend: B,
    pub(crate) config: SchedulerConfig,
    wq: OwnedQueue,
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
    flush_waiters: Atomic<u32>,
}

impl_has_work! {
    impl{B: Backend} HasWork<Shared<B>, 0> for Shared<B> { self.work }
    impl{B: Backend} HasWork<Shared<B>, 2> for Shared<B> { self.release }
}
impl_has_delayed_work! {
    impl{B: Backend} HasDelayedWork<Shared<B>, 1> for Shared<B> { self.tdr }
}

/// A fence callback that wakes the scheduler's worker.
pub(crate) struct Kick<B: Backend> {
    shared: Arc<Shared<B>>,
}

impl<B: Backend> Kick<B> {
    pub(crate) fn new(shared: Arc<Shared<B>>) -> Self {
        Self { shared }
    }
}

impl<B: Backend> FenceCallbackFn for Kick<B> {
    fn signalled(&self, _fence: &Fence) {
        // May run in interrupt context: only queue the worker (no allocation, no locks).
        Shared::kick(&self.shared);
    }
}

/// The hardware fence's callback: wakes the worker, or for a [`Backend::RUN_IN_IRQ`] backend
/// first starts the next jobs from an `irq_work` (`direct.rs`).
pub(crate) struct HwKick<B: Backend> {
    shared: Arc<Shared<B>>,
}

impl<B: Backend> HwKick<B> {
    pub(crate) fn new(shared: Arc<Shared<B>>) -> Self {
        Self { shared }
    }
}

impl<B: Backend> FenceCallbackFn for HwKick<B> {
    fn signalled(&self, _fence: &Fence) {
        if B::RUN_IN_IRQ {
            // Under the fence's lock: start from an irq_work, which then kicks the worker. If
            // it is pending already, that run sees this completion too.
            if let Err(again) = IrqWork::queue(self.shared.clone()) {
                drop(again);
            }
        } else {
            Shared::kick(&self.shared);
        }
    }
}

/// The right to run jobs, taken by the worker, the bypass and the timeout handler (with
/// `run_lock`); released on drop.
pub(crate) struct Runner<'a, B: Backend> {
    shared: &'a Shared<B>,
}

impl<'a, B: Backend> Runner<'a, B> {
    /// Waits for a start from a completion to finish (it is short and never waits itself).
    fn spin(shared: &'a Shared<B>) -> Self {
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

/// How a job depends on a fence, after [`Shared::relax_dependency`].
pub(crate) enum Dependency {
    /// Nothing to wait for.
    None,
    /// Wait until the fence signals; its error fails the job.
    Wait(ARef<Fence>),
    /// A job on the same in-order ring: wait until it has `started` (if it has not), and fail
    /// with the error of its `finished` fence if it has one.
    Pipelined {
        started: Option<ARef<Fence>>,
        finished: ARef<Fence>,
    },
}

/// What the worker does with a job it took off a queue.
pub(crate) enum Outcome {
    Run,
    Fail(Error),
}

/// A scheduler's run queues as text, for a debugfs file (see [`Scheduler::debugfs_view`]). It
/// keeps the scheduler's shared state alive, not the scheduler: after the scheduler is dropped
/// it shows the stopped, empty state.
pub struct DebugfsView<B: Backend>(Arc<Shared<B>>);

impl<B: Backend> core::fmt::Debug for DebugfsView<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.dump(f)
    }
}

impl<B: Backend> Scheduler<B> {
    /// Creates a scheduler driving `backend`.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a zero credit limit, `ENOMEM`.
    pub fn new(config: SchedulerConfig, backend: B) -> Result<Self> {
        if config.credit_limit == 0 {
            return Err(EINVAL);
        }
        let wq =
            OwnedQueue::new_ordered(config.name, QueueFlags::MEM_RECLAIM | QueueFlags::HIGHPRI)?;
        let shared = Arc::pin_init(
            pin_init!(Shared {
                backend,
                config,
                wq,
                work <- new_work!("vagx_sched::work"),
                tdr <- new_delayed_work!("vagx_sched::tdr"),
                release <- new_work!("vagx_sched::release"),
                state <- new_spinlock_irq!(State {
                    entities: KVec::new(),
                    in_flight: Ring::new(),
                    reserved: 0,
                    credits_used: 0,
                    stopped: false,
                    head_since: None,
                    clock: 0,
                    policy: config.policy,
                }),
                progress <- new_condvar!(),
                flush_waiters: Atomic::new(0),
                run_lock <- new_mutex!(()),
                runner: Atomic::new(false),
                irq_start <- IrqWork::new(),
            }),
            GFP_KERNEL,
        )?;
        Ok(Self { shared })
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.shared.backend
    }

    /// Switches the policy (benchmarks compare policies on one scheduler).
    pub fn set_policy(&self, policy: PolicyKind) {
        self.shared.state.lock().policy = policy;
        Shared::kick(&self.shared);
    }

    /// The current policy.
    pub fn policy(&self) -> PolicyKind {
        self.shared.state.lock().policy
    }

    /// Writes the scheduler's state for debugfs: the policy and credits, then one line per
    /// entity (priority, queued and running jobs, GPU time, completed jobs, virtual runtime,
    /// hangs, killed/banned).
    pub fn dump(&self, w: &mut impl core::fmt::Write) -> core::fmt::Result {
        self.shared.dump(w)
    }

    /// The same text as [`Self::dump`] for a debugfs file (`kernel::debugfs` shows a value's
    /// `Debug` text): `dir.read_only_file(c"sched", sched.debugfs_view())`.
    pub fn debugfs_view(&self) -> DebugfsView<B> {
        DebugfsView(self.shared.clone())
    }

    /// Credits in use and jobs on the hardware.
    pub fn load(&self) -> (u32, usize) {
        let s = self.shared.state.lock();
        (s.credits_used, s.in_flight.len())
    }
}

impl<B: Backend> Drop for Scheduler<B> {
    fn drop(&mut self) {
        Shared::teardown(&self.shared);
    }
}

impl<B: Backend> Shared<B> {
    /// See [`Scheduler::dump`].
    fn dump(&self, w: &mut impl core::fmt::Write) -> core::fmt::Result {
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
    fn notify_progress(&self) {
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

    /// A copy of entity `id`'s state for a move, if it has nothing queued, reserved or
    /// running (and is usable): its jobs so far have all completed, so order is kept.
    pub(crate) fn idle_entity_state(&self, id: usize) -> Option<EntityState<B>> {
        let s = self.state.lock();
        let e = s.entities.get(id).and_then(Option::as_ref)?;
        if !e.queue.is_empty() || e.reserved != 0 || e.in_flight != 0 || e.killed || e.banned {
            return None;
        }
        Some(EntityState {
            queue: Ring::new(),
            reserved: 0,
            in_flight: 0,
            priority: e.priority,
            stats: e.stats,
            killed: false,
            kill_error: ESRCH,
            banned: false,
            dropped: false,
            guilty: e.guilty,
            boost: None,
            scheduled_context: e.scheduled_context,
            finished_context: e.finished_context,
        })
    }

    pub(crate) fn check_usable(&self, id: usize) -> Result {
        let s = self.state.lock();
        if s.stopped {
            return Err(ENODEV);
        }
        match s.entities.get(id).and_then(Option::as_ref) {
            Some(e) if e.banned || e.killed => Err(crate::dma_fence::ecanceled()),
            Some(_) => Ok(()),
            None => Err(ENOENT),
        }
    }

    pub(crate) fn add_entity(&self, entity: EntityState<B>) -> Result<usize> {
        let mut entity = Some(entity);
        loop {
            let len = {
                let mut s = self.state.lock();
                if s.stopped {
                    return Err(ENODEV);
                }
                if let Some(i) = s.entities.iter().position(Option::is_none) {
                    s.entities[i] = entity.take();
                    return Ok(i);
                }
                if s.entities.len() < s.entities.capacity() {
                    let i = s.entities.len();
                    // Within capacity: does not allocate.
                    s.entities.push(entity.take(), GFP_ATOMIC)?;
                    return Ok(i);
                }
                s.entities.len()
            };
            // Grow outside the lock, then move the slots over.
            let mut bigger = KVec::with_capacity((2 * len).max(8), GFP_KERNEL)?;
            let mut s = self.state.lock();
            if s.entities.capacity() < bigger.capacity() {
                for e in s.entities.drain_all() {
                    bigger.push(e, GFP_ATOMIC)?;
                }
                core::mem::swap(&mut s.entities, &mut bigger);
            }
        }
    }

    /// Reserves room for one more job of entity `id` in its queue and in the in-flight list,
    /// if the entity is usable (see [`Self::check_usable`]).
    pub(crate) fn reserve_job(&self, id: usize) -> Result {
        loop {
            let (queue_cap, queue_need, flight_cap, flight_need) = {
                let mut s = self.state.lock();
                if s.stopped {
                    return Err(ENODEV);
                }
                if s.entities
                    .get(id)
                    .and_then(Option::as_ref)
                    .is_some_and(|e| e.banned || e.killed)
                {
                    return Err(crate::dma_fence::ecanceled());
                }
                let flight_need = s.reserved + 1;
                let flight_cap = s.in_flight.capacity();
                let e = s
                    .entities
                    .get_mut(id)
                    .and_then(Option::as_mut)
                    .ok_or(ENOENT)?;
                let queue_need = e.reserved + 1;
                let queue_cap = e.queue.capacity();
                if queue_need <= queue_cap && flight_need <= flight_cap {
                    e.reserved += 1;
                    s.reserved += 1;
                    return Ok(());
                }
                (queue_cap, queue_need, flight_cap, flight_need)
            };
            let queue = Ring::grown(queue_cap, queue_need)?;
            let flight = Ring::grown(flight_cap, flight_need)?;
            let mut s = self.state.lock();
            if let Some(r) = flight {
                s.in_flight.take_from(r);
            }
            if let (Some(r), Some(e)) = (queue, s.entities.get_mut(id).and_then(Option::as_mut)) {
                e.queue.take_from(r);
            }
        }
    }

    pub(crate) fn unreserve_job(&self, id: usize) {
        let mut s = self.state.lock();
        s.reserved -= 1;
        if let Some(e) = s.entities.get_mut(id).and_then(Option::as_mut) {
            e.reserved -= 1;
        }
        Self::maybe_free_slot(&mut s, id);
    }

    fn maybe_free_slot(s: &mut State<B>, id: usize) {
        let free = s
            .entities
            .get(id)
            .and_then(Option::as_ref)
            .is_some_and(|e| e.dropped && e.reserved == 0);
        if free {
            s.entities[id] = None;
        }
    }

    /// What job `id` (to run on `ring`, see [`Backend::ring`]) has to wait for to depend on
    /// `fence`.
    ///
    /// A finished fence of a job of this scheduler that the backend puts on the same in-order
    /// ring is pipelined: the dependent waits only until that job has started (or not at all
    /// if it has), and keeps the finished fence to take its error. Everything else is waited
    /// for until it signals.
    pub(crate) fn relax_dependency(
        &self,
        id: usize,
        ring: Option<u64>,
        fence: ARef<Fence>,
    ) -> Dependency {
        match fence.status() {
            Ok(true) => return Dependency::None,
            // Waited for, so that the job fails with its error.
            Err(_) => return Dependency::Wait(fence),
            Ok(false) => {}
        }
        let ctx = fence.context();
        let s = self.state.lock();
        let own = s.entities.get(id).and_then(Option::as_ref);
        if own.is_some_and(|e| e.scheduled_context == ctx) {
            // A job of the same entity was picked before this one and its scheduled fence
            // signalled when it was run, before the next pick.
            return Dependency::None;
        }
        let Some(ring) = ring else {
            // No ordering promise: nothing can be shortened.
            return Dependency::Wait(fence);
        };
        // A finished fence of ours? Find its job, queued or on the hardware. (Plain loops:
        // iterator adapters over these generic types give symbol names too long for modpost.)
        let is_it = |j: &Arc<JobNode<B>>| {
            j.finished_fence()
                .is_some_and(|f| f.context() == ctx && f.seqno() == fence.seqno())
        };
        let mut owner = None;
        for e in s.entities.iter().flatten() {
            if e.finished_context == ctx {
                owner = Some(e);
                break;
            }
        }
        let Some(owner) = owner else {
            return Dependency::Wait(fence);
        };
        let mut job = None;
        for j in owner.queue.iter() {
            if is_it(j) {
                job = Some(j.clone());
                break;
            }
        }
        if job.is_none() {
            for j in s.in_flight.iter() {
                if is_it(j) {
                    job = Some(j.clone());
                    break;
                }
            }
        }
        drop(s);
        // Freed: it has completed (its fence is signalled or about to be).
        let Some(job) = job else {
            return Dependency::Wait(fence);
        };
        if self.backend.ring(&job.data) != Some(ring) {
            // Another ring: nothing orders the two, wait for it to complete.
            return Dependency::Wait(fence);
        }
        let inner = job.inner.lock();
        let started = match (&inner.scheduled, &inner.scheduled_ref) {
            // Not on the hardware yet: wait until it is.
            (Some(_), Some(scheduled)) => Some(scheduled.clone()),
            // On the hardware already: the ring orders us after it.
            _ => None,
        };
        drop(inner);
        Dependency::Pipelined {
            started,
            finished: fence,
        }
    }

    pub(crate) fn push_job(this: &Arc<Self>, id: usize, node: Arc<JobNode<B>>) {
        let bypass;
        {
            let mut s = this.state.lock();
            s.clock += 1;
            let clock = s.clock;
            let policy = s.policy;
            let min_key = s
                .entities
                .iter()
                .flatten()
                .filter(|e| !e.queue.is_empty() || e.in_flight > 0)
                .map(|e| e.stats.vruntime)
                .min();
            let job_id = node.trace_id();
            let credits = node.credits;
            node.submit_ts.store(clock, Relaxed);
            let no_deps = {
                let inner = node.inner.lock();
                for dep in inner.deps.iter() {
                    trace::job_add_dep(job_id, dep.context(), dep.seqno());
                }
                inner.deps.is_empty()
            };
            // Bypass: nothing else is queued anywhere, the job waits for nothing and fits.
            let others_idle = s.entities.iter().flatten().all(|e| e.queue.is_empty());
            let fits = policy::credits_fit(s.credits_used, node.credits, this.config.credit_limit);
            bypass = this.config.bypass && others_idle && no_deps && fits && !s.stopped;
            if let Some(e) = s.entities.get_mut(id).and_then(Option::as_mut) {
                if e.queue.is_empty() && e.in_flight == 0 {
                    if let Some(min) = min_key {
                        policy.rejoined(&mut e.stats, min);
                    }
                }
                // Room was reserved by `Job::new`.
                let _ = e.queue.push_back(node);
                trace::job_queue(this.config.name, id, job_id, credits, e.queue.len());
            }
        }
        if bypass {
            // Run it from here, unless the worker is busy (it will then pick the job up).
            let running = this.run_lock.try_lock();
            let runner = running.as_ref().and_then(|_| Runner::try_take(this));
            if let Some(_runner) = runner {
                match this.pick(false) {
                    Some((job, Outcome::Run)) => drop(Self::run(this, job)),
                    Some((job, Outcome::Fail(err))) => {
                        job.complete(Some(err), 0);
                        this.job_freed(&job, None);
                    }
                    None => {}
                }
                return;
            }
        }
        Self::kick(this);
    }

    /// Reads entity `id`'s state under the lock (`None` if the slot is free).
    pub(crate) fn with_entity<R>(
        &self,
        id: usize,
        f: impl FnOnce(&EntityState<B>) -> R,
    ) -> Option<R> {
        self.state
            .lock()
            .entities
            .get(id)
            .and_then(Option::as_ref)
            .map(f)
    }

    /// Changes entity `id`'s state under the lock, then wakes the worker.
    fn update_entity(this: &Arc<Self>, id: usize, f: impl FnOnce(&mut EntityState<B>)) {
        if let Some(e) = this
            .state
            .lock()
            .entities
            .get_mut(id)
            .and_then(Option::as_mut)
        {
            f(e);
        }
        Self::kick(this);
    }

    pub(crate) fn entity_priority(&self, id: usize) -> Priority {
        self.with_entity(id, |e| e.priority)
            .unwrap_or(Priority::Normal)
    }

    pub(crate) fn set_entity_priority(this: &Arc<Self>, id: usize, prio: Priority) {
        Self::update_entity(this, id, |e| e.priority = prio);
    }

    pub(crate) fn entity_flags(&self, id: usize) -> (bool, bool) {
        self.with_entity(id, |e| (e.killed, e.banned))
            .unwrap_or((false, false))
    }

    pub(crate) fn entity_usage(&self, id: usize) -> (u64, u64) {
        self.with_entity(id, |e| (e.stats.gpu_ns, e.stats.jobs_done))
            .unwrap_or((0, 0))
    }

    pub(crate) fn entity_queued(&self, id: usize) -> usize {
        self.with_entity(id, |e| e.queue.len()).unwrap_or(0)
    }

    pub(crate) fn flush_entity(&self, id: usize, timeout: Delta) -> Result {
        let deadline = Instant::<Monotonic>::now() + timeout;
        let mut s = self.state.lock();
        loop {
            let idle = s
                .entities
                .get(id)
                .and_then(Option::as_ref)
                .is_none_or(|e| e.is_idle());
            if idle || s.stopped {
                return Ok(());
            }
            let left = deadline - Instant::<Monotonic>::now();
            if left.as_nanos() <= 0 {
                return Err(ETIMEDOUT);
            }
            let jiffies = msecs_to_jiffies(left.as_millis().max(1) as u32);
            self.flush_waiters.add(1, Relaxed);
            let woken = self.progress.wait_interruptible_timeout(&mut s, jiffies);
            self.flush_waiters.fetch_sub(1, Relaxed);
            if let crate::sync::CondVarTimeoutResult::Signal { .. } = woken {
                return Err(ERESTARTSYS);
            }
        }
    }

    pub(crate) fn kill_entity(this: &Arc<Self>, id: usize, err: Error) {
        Self::update_entity(this, id, |e| {
            if !e.killed {
                e.killed = true;
                e.kill_error = err;
            }
        });
    }

    pub(crate) fn drop_entity(this: &Arc<Self>, id: usize) {
        {
            let mut s = this.state.lock();
            if let Some(e) = s.entities.get_mut(id).and_then(Option::as_mut) {
                e.killed = true;
                e.dropped = true;
            }
            Self::maybe_free_slot(&mut s, id);
        }
        Self::kick(this);
    }

    /// Completes every job on the hardware whose fence has signalled; returns how many.
    fn complete_done(&self) -> usize {
        let mut n = 0;
        loop {
            let (job, gpu_ns) = {
                let mut s = self.state.lock();
                // Jobs complete in order, almost always: look at the head first.
                let head_done = s.in_flight.front().is_some_and(|j| j.completable());
                let job = if head_done {
                    s.in_flight.pop_front()
                } else {
                    s.in_flight.take_first(|j| j.completable())
                };
                let Some(job) = job else {
                    break;
                };
                if !job.credits_returned.load(Relaxed) {
                    s.credits_used -= job.credits;
                }

                if s.in_flight.is_empty() {
                    s.head_since = None;
                } else if head_done {
                    // A new head: its timeout runs from now.
                    s.head_since = Some(Instant::now());
                }
                // The bookkeeping comes before the finished fence signals, so that whoever
                // it wakes sees the job's time counted and its entity idle.
                let gpu_ns = job.ran_ns();
                Self::account_freed(&mut s, &job, Some(gpu_ns));
                (job, gpu_ns)
            };
            {
                let _signalling = SignallingGuard::new();
                job.complete_ran(gpu_ns);
            }
            // Freed outside the signalling section, as in `process`.
            drop(job);
            n += 1;
        }
        n
    }

    /// Bookkeeping when a job leaves the scheduler (`gpu_ns` if it ran).
    fn job_freed(&self, job: &JobNode<B>, gpu_ns: Option<u64>) {
        Self::account_freed(&mut self.state.lock(), job, gpu_ns);
    }

    fn account_freed(s: &mut State<B>, job: &JobNode<B>, gpu_ns: Option<u64>) {
        s.reserved -= 1;
        if let Some(e) = s.entities.get_mut(job.entity).and_then(Option::as_mut) {
            e.reserved -= 1;
            if let Some(ns) = gpu_ns {
                e.in_flight -= 1;
                policy::job_done(&mut e.stats, ns);
            }
        }
        Self::maybe_free_slot(s, job.entity);
    }

    /// Whether the head job's dependencies have all signalled; registers a wake-up on the
    /// first that has not. Fails the job if one signalled with an error.
    fn head_ready(&self, job: &JobNode<B>) -> bool {
        self.readiness(job).is_none()
    }

    /// `None` if the job may run; otherwise the context of the fence it waits for (a wake-up
    /// is registered on it).
    fn readiness(&self, job: &JobNode<B>) -> Option<u64> {
        loop {
            let dep = {
                let mut inner = job.inner.lock();
                if inner.error.is_some() {
                    return None;
                }
                // A job it was pipelined behind failed: fail it without running.
                if let Some(e) = inner.pipelined_error() {
                    inner.error = Some(e);
                    job.failed.store(true, Relaxed);
                    return None;
                }
                let next = inner.deps.last().cloned().or_else(|| inner.prepare.clone());
                let next = match next {
                    Some(d) => Some(d),
                    // Dependencies done: the backend may add one for its own resources.
                    None => self.backend.prepare_job(&job.data).inspect(|f| {
                        inner.prepare = Some(f.clone());
                    }),
                };
                match next {
                    None => return None,
                    Some(d) => match d.status() {
                        Ok(false) => d,
                        status => {
                            if let Err(e) = status {
                                inner.error = Some(e);
                                job.failed.store(true, Relaxed);
                            }
                            if inner.deps.pop().is_none() {
                                inner.prepare = None;
                            }
                            drop(inner);
                            // The wake-up (if any) was for a fence that has signalled.
                            job.dep_cb.lock().as_mut().remove();
                            continue;
                        }
                    },
                }
            };
            let mut cb = job.dep_cb.lock();
            return match cb.as_mut().add(&dep) {
                Ok(()) => {
                    trace::job_unschedulable(job.trace_id(), dep.context(), dep.seqno());
                    Some(dep.context())
                }
                Err(crate::dma_fence::AddCallbackError::Busy) => Some(dep.context()),
                Err(crate::dma_fence::AddCallbackError::AlreadySignalled) => continue,
            };
        }
    }

    /// Priority inheritance: an entity whose queued job another entity's head job waits for
    /// runs at the waiter's priority, so a High job waiting on a Low one is not held back by
    /// Normal work (strict-priority policies only; FAIR has no strict order to invert).
    fn boost_blockers(&self, s: &mut State<B>) {
        for e in s.entities.iter_mut().flatten() {
            e.boost = None;
        }
        for i in 0..s.entities.len() {
            let Some(e) = s.entities[i].as_ref() else {
                continue;
            };
            if e.killed || e.banned {
                continue;
            }
            let prio = e.effective_priority();
            let Some(head) = e.queue.front() else {
                continue;
            };
            let Some(ctx) = self.readiness(head) else {
                continue;
            };
            for other in s.entities.iter_mut().flatten() {
                if other.scheduled_context == ctx || other.finished_context == ctx {
                    if prio < other.effective_priority() {
                        other.boost = Some(prio);
                    }
                    break;
                }
            }
        }
    }

    /// Picks the next job to take off an entity queue, or `None`. With `irq` (a start from a
    /// completion) a job that would fail (killed, banned, failed dependency) is left queued:
    /// completing and freeing jobs is the worker's.
    pub(crate) fn pick(&self, irq: bool) -> Option<(Arc<JobNode<B>>, Outcome)> {
        let mut s = self.state.lock();
        if s.stopped {
            return None;
        }
        let policy = s.policy;
        // Killed and banned entities first: their jobs never reach the hardware.
        let dead = s.entities.iter().position(|e| {
            e.as_ref().is_some_and(|e| {
                (e.killed || e.banned) && e.queue.front().is_some_and(|j| self.head_ready(j))
            })
        });
        if let Some(id) = dead {
            if irq {
                return None;
            }
            let e = s.entities[id].as_mut()?;
            let err = if e.banned {
                crate::dma_fence::ecanceled()
            } else {
                e.kill_error
            };
            let job = e.queue.pop_front()?;
            self.notify_progress();
            return Some((job, Outcome::Fail(err)));
        }
        // An inversion needs a waiter and a blocker, each with a queued job.
        let mut queued = 0;
        for e in s.entities.iter().flatten() {
            if !e.queue.is_empty() {
                queued += 1;
            }
        }
        if !policy.single_queue() && queued > 1 {
            self.boost_blockers(&mut s);
        } else {
            for e in s.entities.iter_mut().flatten() {
                e.boost = None;
            }
        }
        let mut choice = policy::Choice::default();
        for group in policy.groups() {
            for (id, e) in s.entities.iter().enumerate() {
                let Some(e) = e else { continue };
                if group.is_some_and(|p| p != e.effective_priority()) || e.killed || e.banned {
                    continue;
                }
                let Some(head) = e.queue.front() else {
                    continue;
                };
                if !self.head_ready(head) {
                    continue;
                }
                let key = policy.key(&e.stats, head.submit_ts.load(Relaxed));
                choice.offer(id, key, e.stats.avg_job_ns);
            }
            if choice.best().is_some() {
                break;
            }
        }
        let id = choice.best()?;
        let credits = s.entities[id].as_ref()?.queue.front()?.credits;
        let failed = {
            let head = s.entities[id].as_ref()?.queue.front()?;
            if head.failed.load(Relaxed) {
                head.inner.lock().error
            } else {
                None
            }
        };
        if failed.is_none()
            && !policy::credits_fit(s.credits_used, credits, self.config.credit_limit)
        {
            // The best job does not fit: nothing else may overtake it.
            return None;
        }
        if failed.is_some() && irq {
            return None;
        }
        s.clock += 1;
        let clock = s.clock;
        let e = s.entities[id].as_mut()?;
        let job = e.queue.pop_front()?;
        if let Some(err) = failed {
            self.notify_progress();
            return Some((job, Outcome::Fail(err)));
        }
        policy.picked(&mut e.stats, e.priority, clock);
        e.in_flight += 1;
        s.credits_used += credits;
        trace::job_run(
            self.config.name,
            id,
            job.trace_id(),
            credits,
            s.credits_used,
        );
        self.notify_progress();
        Some((job, Outcome::Run))
    }

    /// Runs one picked job on the hardware. A job that fails to start is completed and given
    /// back, for the caller to drop outside its fence-signalling section.
    #[must_use]
    fn run(this: &Arc<Self>, job: Arc<JobNode<B>>) -> Option<Arc<JobNode<B>>> {
        let hw = this.backend.run_job(&job.data);
        let scheduled = {
            let mut inner = job.inner.lock();
            inner.started = Some(Instant::now());
            match hw {
                Ok(hw) => {
                    if let Some(deadline) = inner.finished.as_ref().and_then(|f| f.deadline()) {
                        hw.set_deadline(deadline);
                    }
                    inner.hw = Some(hw);
                }
                Err(e) => {
                    inner.hw = None;
                    inner.error = Some(e);
                }
            }
            (inner.scheduled.take(), inner.hw.clone())
        };
        let (scheduled, hw) = scheduled;
        match hw {
            Some(hw) => {
                let added = job.hw_cb.lock().as_mut().add(&hw);
                if added == Err(crate::dma_fence::AddCallbackError::AlreadySignalled) {
                    // Done already: no callback will wake the worker, so wake it now (the
                    // bypass does not loop back to collect completions).
                    Self::kick(this);
                }
            }
            None if !job.inner.lock().pipelined.is_empty() => {
                // Failed to start, behind jobs it was ordered after: completed by
                // `complete_done` once they have (their error wins), as from a completion.
                if let Some(s) = scheduled {
                    s.signal();
                }
                Self::put_on_hardware_list(this, job);
                Self::kick(this);
                return None;
            }
            None => {
                // Failed to start: complete it at once.
                let err = job.inner.lock().error;
                if let Some(s) = scheduled {
                    s.signal();
                }
                job.complete(err, 0);
                {
                    let mut s = this.state.lock();
                    s.credits_used -= job.credits;
                }
                this.job_freed(&job, Some(0));
                return Some(job);
            }
        }
        if let Some(s) = scheduled {
            s.signal();
        }
        Self::put_on_hardware_list(this, job);
        None
    }

    /// Adds a started job to the in-flight list; its timeout runs from now if it is the head.
    pub(crate) fn put_on_hardware_list(this: &Arc<Self>, job: Arc<JobNode<B>>) {
        let first = {
            let mut s = this.state.lock();
            let first = s.in_flight.is_empty();
            if first {
                s.head_since = Some(Instant::now());
            }
            // Room was reserved by `Job::new`.
            let _ = s.in_flight.push_back(job);
            first
        };
        if first {
            Self::arm_timeout(this, None);
        }
    }

    fn arm_timeout(this: &Arc<Self>, after: Option<Delta>) {
        if let Some(timeout) = this.config.timeout {
            let delay = after.unwrap_or(timeout);
            let jiffies = msecs_to_jiffies(delay.as_millis().max(1) as u32);
            let _ = this
                .wq
                .enqueue_delayed::<Arc<Self>, 1>(this.clone(), jiffies);
        }
    }

    /// The worker: completes finished jobs, then runs jobs while they fit.
    fn process(this: &Arc<Self>) {
        // Serialises with the bypass and the timeout handler.
        let _running = this.run_lock.lock();
        let _runner = Runner::spin(this);
        loop {
            this.complete_done();
            let Some((job, outcome)) = this.pick(false) else {
                break;
            };
            let failed = {
                let _signalling = SignallingGuard::new();
                match outcome {
                    Outcome::Run => Self::run(this, job),
                    Outcome::Fail(err) => {
                        job.complete(Some(err), 0);
                        this.job_freed(&job, None);
                        Some(job)
                    }
                }
            };
            // Freeing a job drops the driver's data, which may take locks a fence-signalling
            // section must not (a buffer's reservation, as drm_sched's free_job may): outside.
            drop(failed);
        }
        this.notify_progress();
    }

    /// The timeout handler.
    fn timeout(this: &Arc<Self>) {
        let Some(timeout) = this.config.timeout else {
            return;
        };
        let (head, since) = {
            let s = this.state.lock();
            if s.stopped {
                return;
            }
            match (s.in_flight.front(), s.head_since) {
                (Some(h), Some(t)) => (h.clone(), t),
                _ => return,
            }
        };
        let elapsed = since.elapsed();
        if elapsed < timeout {
            Self::arm_timeout(this, Some(timeout - elapsed));
            return;
        }
        if head.hw_done() {
            Self::kick(this);
            Self::arm_timeout(this, None);
            return;
        }
        let status = {
            let _running = this.run_lock.lock();
            let _runner = Runner::spin(this);
            let _signalling = SignallingGuard::new();
            this.backend.timed_out(&head.data)
        };
        trace::job_timeout(this.config.name, head.trace_id(), status as i32);
        match status {
            TimeoutStatus::NoHang => {
                this.state.lock().head_since = Some(Instant::now());
                Self::arm_timeout(this, None);
            }
            TimeoutStatus::Reset => {
                {
                    let mut s = this.state.lock();
                    let ban_limit = this.config.ban_limit;
                    if let Some(e) = s.entities.get_mut(head.entity).and_then(Option::as_mut) {
                        if e.priority != Priority::Kernel {
                            e.guilty += 1;
                            if ban_limit != 0 && e.guilty >= ban_limit {
                                e.banned = true;
                            }
                        }
                    }
                    s.head_since = Some(Instant::now());
                }
                Self::kick(this);
                Self::arm_timeout(this, None);
            }
            TimeoutStatus::NoDevice => {
                this.state.lock().stopped = true;
                // Jobs that never reached the device fail as the device did.
                this.cancel_all(false, ENODEV);
            }
        }
    }

    /// Cancels every job on the hardware through the backend and fails every queued job with
    /// `err`. With `wait`, also waits for the cancelled jobs to complete (teardown); otherwise
    /// their completion reaches the worker as usual.
    fn cancel_all(&self, wait: bool, err: Error) {
        // Completions may remove jobs meanwhile: mark each job as it is cancelled.
        loop {
            let job = {
                let s = self.state.lock();
                let mut next = None;
                for j in s.in_flight.iter() {
                    let mut inner = j.inner.lock();
                    if !inner.cancelled {
                        inner.cancelled = true;
                        next = Some(j.clone());
                        break;
                    }
                }
                next
            };
            let Some(job) = job else { break };
            self.backend.cancel_job(&job.data);
        }
        // Jobs on the hardware complete as their fences signal; wait for each.
        if wait {
            self.wait_in_flight();
        }
        // Queued jobs never run.
        loop {
            let job = {
                let mut s = self.state.lock();
                let mut found = None;
                for e in s.entities.iter_mut().flatten() {
                    if let Some(j) = e.queue.pop_front() {
                        found = Some(j);
                        break;
                    }
                }
                found
            };
            let Some(job) = job else { break };
            job.complete(Some(err), 0);
            self.job_freed(&job, None);
        }
        self.notify_progress();
    }

    /// Waits until every cancelled job on the hardware has completed.
    fn wait_in_flight(&self) {
        loop {
            let head = self.state.lock().in_flight.front().cloned();
            let Some(head) = head else { break };
            let hw = head.inner.lock().hw.clone();
            if let Some(hw) = hw {
                let _ = hw.wait(None, crate::dma_fence::Interruptible::No);
            }
            if self.complete_done() > 0 {
                continue;
            }
            if !head.hw_done() {
                break;
            }
            // Done on the hardware, it waits for a job it was ordered after, which another
            // scheduler completes.
            let pending = head
                .inner
                .lock()
                .pipelined
                .iter()
                .find(|f| !f.is_signaled())
                .cloned();
            match pending {
                Some(f) => {
                    let _ = f.wait(None, crate::dma_fence::Interruptible::No);
                }
                None => break,
            }
        }
    }

    /// Stops the scheduler for good (the `Scheduler` handle is being dropped).
    fn teardown(this: &Arc<Self>) {
        this.state.lock().stopped = true;
        cancel_delayed_work_sync::<Self, 1>(this);
        cancel_work_sync::<Self, 0>(this);
        // No job starts any more (a later kick only completes jobs).
        this.cancel_all(true, crate::dma_fence::ecanceled());
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
