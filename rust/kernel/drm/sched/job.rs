// SPDX-License-Identifier: GPL-2.0

//! Jobs: a driver's unit of GPU work and its two fences.
//!
//! ```text
//!  Job::new ---> add_dependency* ---> SubmitGuard::arm ---> ArmedJob::push ---> queued
//!  (allocates     (allocates)          (fences get their      (no allocation)
//!   everything)                         seqnos; no way back)
//!
//!  queued --(deps signalled, credits free)--> running --(hardware fence)--> done, freed
//!     \--(killed / banned / failed dependency / scheduler gone)--> done with an error
//! ```
//!
//! Dropping a [`Job`] before it is armed frees it; an [`ArmedJob`] can only be pushed (if it is
//! dropped anyway, its fences signal `ECANCELED`). The *scheduled* fence signals when the job
//! reaches the hardware, the *finished* fence when it completes, with its error.

use super::{
    deadline::JobDeadline,
    dependency::Dependency,
    shared::Shared,
    trace::{self, JobId},
    Backend,
};
use crate::{
    dma_fence::{chain, DriverFence, Fence, FenceCallback, FenceCallbackFn, PreparedFence},
    irq_work::IrqWork,
    new_spinlock_irq,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{Atomic, Relaxed},
        Arc, SpinLockIrq,
    },
    time::{Instant, Monotonic},
};

/// The scheduler's record of one job, shared by the queues it moves through.
#[pin_data]
pub(crate) struct JobNode<B: Backend> {
    pub(crate) data: B::Job,
    pub(crate) credits: u32,
    pub(crate) entity: usize,
    /// The finished fence's context and seqno, set at arm (the job's name in tracepoints).
    fence_ctx: Atomic<u64>,
    fence_seqno: Atomic<u64>,
    /// The scheduler's logical time at push (FIFO's key); read by picks without the job lock.
    pub(crate) submit_ts: Atomic<u64>,
    /// The monotonic clock at push, in ns: the start of the job's wait ([`WaitHistogram`]).
    ///
    /// [`WaitHistogram`]: super::WaitHistogram
    pub(crate) pushed_ns: Atomic<u64>,
    /// Set (with `JobInner::error`) when a dependency failed: picks test it without the lock.
    pub(crate) failed: Atomic<bool>,
    /// Whether the job's credits went back when its hardware fence signalled (by a start
    /// from the completion, [`Backend::RUN_IN_IRQ`]); otherwise the worker returns them.
    pub(crate) credits_returned: Atomic<bool>,
    /// The priority ([`Priority::index`]) the job was picked at: its credits go back there.
    ///
    /// [`Priority::index`]: super::Priority::index
    pub(crate) band: Atomic<u32>,
    // Every lock of a job is interrupt-safe: completions may take them (`RUN_IN_IRQ`).
    /// The job's deadline, shared with its finished fence ([`super::deadline`]).
    pub(crate) deadline: Arc<JobDeadline<B>>,
    #[pin]
    pub(crate) inner: SpinLockIrq<JobInner<B>>,
    /// Wakes the scheduler when the dependency it waits for signals.
    #[pin]
    pub(crate) dep_cb: SpinLockIrq<FenceCallback<Kick<B>>>,
    /// Wakes the scheduler (or starts the next job) when the hardware fence signals.
    #[pin]
    pub(crate) hw_cb: SpinLockIrq<FenceCallback<HwKick<B>>>,
}

/// The scheduled and finished fences, allocated at [`Job::new`] so that arming allocates nothing.
type PreparedFences<B> = (PreparedFence<()>, PreparedFence<Arc<JobDeadline<B>>>);

/// The mutable part of a job.
pub(crate) struct JobInner<B: Backend> {
    pub(crate) prepared: Option<PreparedFences<B>>,
    pub(crate) scheduled: Option<DriverFence<()>>,
    pub(crate) finished: Option<DriverFence<Arc<JobDeadline<B>>>>,
    /// A reference to the finished fence, kept after it is signalled (for pipelining lookups).
    pub(crate) finished_ref: Option<ARef<Fence>>,
    pub(crate) scheduled_ref: Option<ARef<Fence>>,
    pub(crate) deps: KVec<ARef<Fence>>,
    /// Finished fences of jobs this job was pipelined behind (same ring, [`Backend::ring`]) or
    /// ordered after by the hardware ([`Job::add_hardware_wait`]): their errors fail it, and
    /// it does not complete before they have signalled.
    pub(crate) pipelined: KVec<ARef<Fence>>,
    /// The backend's extra dependency from `prepare_job`.
    pub(crate) prepare: Option<ARef<Fence>>,
    pub(crate) hw: Option<ARef<Fence>>,
    pub(crate) error: Option<Error>,
    /// The backend has been asked to cancel the job (teardown).
    pub(crate) cancelled: bool,
    pub(crate) started: Option<Instant<Monotonic>>,
}

impl<B: Backend> JobInner<B> {
    /// The error of a failed pipelined dependency, if any.
    pub(crate) fn pipelined_error(&self) -> Option<Error> {
        self.pipelined.iter().find_map(|f| f.status().err())
    }
}

impl<B: Backend> JobNode<B> {
    /// Whether the job may complete: its hardware fence has signalled (or it failed to start)
    /// and so has every job it was ordered after. Otherwise, if only the latter are missing,
    /// the job's dependency callback is registered on the first of them, to kick the
    /// scheduler when it signals. Jobs of one ring complete in order anyway; this orders a
    /// job after a [`Job::add_hardware_wait`] producer that another scheduler completes.
    pub(crate) fn completable(&self) -> bool {
        if !self.hw_done() {
            return false;
        }
        loop {
            let pending = self.pending_pipelined();
            let mut cb = self.dep_cb.lock();
            // An earlier registration is for a fence that has signalled, or is re-made here.
            cb.as_mut().remove();
            let Some(fence) = pending else {
                return true;
            };
            match cb.as_mut().add(&fence) {
                Ok(()) => return false,
                // Signalled meanwhile: look again. (`Busy` cannot happen after `remove`.)
                Err(_) => continue,
            }
        }
    }

    /// The first finished fence this job was pipelined or ordered behind that has not
    /// signalled: the job completes only after it.
    pub(crate) fn pending_pipelined(&self) -> Option<ARef<Fence>> {
        self.inner
            .lock()
            .pipelined
            .iter()
            .find(|f| !f.is_signaled())
            .cloned()
    }

    /// Whether the job's hardware fence has signalled (or it failed to start from a completion,
    /// so that it has none).
    pub(crate) fn hw_done(&self) -> bool {
        let inner = self.inner.lock();
        match &inner.hw {
            Some(f) => f.is_signaled(),
            None => inner.error.is_some(),
        }
    }

    /// The job's name in tracepoints (zero before arm).
    pub(crate) fn trace_id(&self) -> JobId {
        JobId {
            ctx: self.fence_ctx.load(Relaxed),
            seqno: self.fence_seqno.load(Relaxed),
        }
    }

    pub(crate) fn set_trace_id(&self, fence: &Fence) {
        self.fence_ctx.store(fence.context(), Relaxed);
        self.fence_seqno.store(fence.seqno(), Relaxed);
    }

    /// The error a job whose hardware fence has signalled completes with: its hardware's,
    /// or that of a job of its ring it ran behind.
    pub(crate) fn ran_error(&self) -> Option<Error> {
        let inner = self.inner.lock();
        let err = match &inner.hw {
            Some(f) => f.status().err(),
            None => inner.error,
        };
        // It ran behind jobs of its ring: if one of them failed, it failed through that
        // dependency, whatever its own hardware reported.
        inner.pipelined_error().or(err)
    }

    /// Completes a job whose hardware fence has signalled with `err` ([`Self::ran_error`]);
    /// `gpu_ns` is the time it ran ([`JobNode::ran_ns`]).
    pub(crate) fn complete_ran(&self, err: Option<Error>, gpu_ns: u64) {
        let (scheduled, finished) = {
            let mut inner = self.inner.lock();
            (inner.scheduled.take(), inner.finished.take())
        };
        self.signal(err, gpu_ns, scheduled, finished);
    }

    /// How long the job has been on the hardware, in ns (0 if it never started).
    pub(crate) fn ran_ns(&self) -> u64 {
        self.inner
            .lock()
            .started
            .map_or(0, |t| t.elapsed().as_nanos().max(0) as u64)
    }

    /// Signals the scheduled fence (if not yet) and the finished fence with `err`; `gpu_ns` is
    /// the time it ran (0 if it never did), for the `done` event.
    pub(crate) fn complete(&self, err: Option<Error>, gpu_ns: u64) {
        let (scheduled, finished) = {
            let mut inner = self.inner.lock();
            (inner.scheduled.take(), inner.finished.take())
        };
        self.signal(err, gpu_ns, scheduled, finished);
    }

    fn signal(
        &self,
        err: Option<Error>,
        gpu_ns: u64,
        scheduled: Option<DriverFence<()>>,
        finished: Option<DriverFence<Arc<JobDeadline<B>>>>,
    ) {
        trace::job_done(self.trace_id(), err.map_or(0, |e| e.to_errno()), gpu_ns);
        // Done: a later deadline has nothing to move (and a signalled fence takes none).
        drop(self.deadline.detach());
        if let Some(s) = scheduled {
            s.signal();
        }
        if let Some(f) = finished {
            match err {
                Some(e) => f.signal_with_error(e),
                None => f.signal(),
            }
        }
    }

    /// The job's finished fence (after arm).
    pub(crate) fn finished_fence(&self) -> Option<ARef<Fence>> {
        self.inner.lock().finished_ref.clone()
    }
}

/// A job that has been created but not armed: it can still get dependencies or be dropped.
pub struct Job<B: Backend> {
    pub(crate) node: Arc<JobNode<B>>,
    pub(crate) shared: Arc<Shared<B>>,
    /// Set when the job has been pushed: its reservations then belong to the queues.
    pub(crate) pushed: bool,
    /// The dependencies, owned here until `arm` moves them into the job's node (so adding one
    /// may allocate without any lock held).
    pub(crate) deps: KVec<ARef<Fence>>,
    /// The pipelined dependencies' finished fences, likewise.
    pub(crate) pipelined: KVec<ARef<Fence>>,
}

impl<B: Backend> Job<B> {
    /// Creates a job of `credits` for `entity` carrying the driver's `data`.
    ///
    /// Everything the job needs later is allocated here: both fences, and room in the entity's
    /// queue and in the scheduler's in-flight list.
    ///
    /// # Errors
    ///
    /// `EINVAL` if `credits` is 0 or more than the scheduler's credit limit; `ENOMEM`;
    /// `ECANCELED` if the entity is banned or killed, `ENODEV` if the scheduler is stopped.
    pub fn new(entity: &super::Entity<B>, credits: u32, data: B::Job) -> Result<Self> {
        if credits == 0 {
            return Err(EINVAL);
        }
        let prepared = (
            PreparedFence::new(GFP_KERNEL)?,
            PreparedFence::new(GFP_KERNEL)?,
        );
        let (shared, id) = entity.reserve_job()?;
        if credits > shared.config.credit_limit {
            shared.unreserve_job(id);
            return Err(EINVAL);
        }
        let deadline =
            JobDeadline::new(shared.clone()).inspect_err(|_| shared.unreserve_job(id))?;
        let backend_cb = shared.clone();
        let hw_cb_shared = shared.clone();
        let node = Arc::pin_init(
            pin_init!(JobNode::<B> {
                data,
                credits,
                entity: id,
                fence_ctx: Atomic::new(0),
                fence_seqno: Atomic::new(0),
                submit_ts: Atomic::new(0),
                pushed_ns: Atomic::new(0),
                failed: Atomic::new(false),
                credits_returned: Atomic::new(false),
                band: Atomic::new(0),
                deadline,
                inner <- new_spinlock_irq!(JobInner {
                    prepared: Some(prepared),
                    scheduled: None,
                    finished: None,
                    finished_ref: None,
                    scheduled_ref: None,
                    deps: KVec::new(),
                    pipelined: KVec::new(),
                    prepare: None,
                    hw: None,
                    error: None,
                    cancelled: false,
                    started: None,
                }),
                dep_cb <- new_spinlock_irq!(FenceCallback::new(Kick::new(backend_cb))),
                hw_cb <- new_spinlock_irq!(FenceCallback::new(HwKick::new(hw_cb_shared))),
            }),
            GFP_KERNEL,
        )
        .inspect_err(|_| shared.unreserve_job(id))?;
        Ok(Self {
            node,
            shared,
            pushed: false,
            deps: KVec::new(),
            pipelined: KVec::new(),
        })
    }

    /// The driver's data.
    pub fn data(&self) -> &B::Job {
        &self.node.data
    }

    /// Makes the job wait for `fence` before it runs.
    ///
    /// A timeline point (a chain node) is waited for with its payload, whose error is the
    /// point's. Signalled fences are dropped, and of several fences of one context only the latest
    /// (`dma_fence_is_later`, wrap-safe) is kept. A finished fence of a job that the backend
    /// runs on the same in-order ring as this one ([`Backend::ring`]) is pipelined: this job
    /// waits only until that one has started. A dependency that fails, pipelined or not,
    /// fails the job with its error: before it runs if it has not started, else when it
    /// completes.
    ///
    /// # Errors
    ///
    /// `ENOMEM`.
    pub fn add_dependency(&mut self, fence: ARef<Fence>) -> Result {
        if chain::is_chain(&fence) {
            // A timeline point: the node orders the job after every earlier point, but it
            // signals without its payload's error; the payload is waited for as well, so
            // that its failure fails the job (also when both have signalled already).
            let payload: ARef<Fence> = chain::contained(&fence).into();
            self.add_dependency_once(fence)?;
            return self.add_dependency_once(payload);
        }
        self.add_dependency_once(fence)
    }

    fn add_dependency_once(&mut self, fence: ARef<Fence>) -> Result {
        let ring = self.shared.backend.ring(&self.node.data);
        match self.shared.relax_dependency(self.node.entity, ring, fence) {
            Dependency::None => Ok(()),
            Dependency::Wait(fence) => keep_latest(&mut self.deps, fence),
            Dependency::Pipelined { started, finished } => {
                if let Some(started) = started {
                    keep_latest(&mut self.deps, started)?;
                }
                keep_latest(&mut self.pipelined, finished)
            }
        }
    }

    /// Makes the job wait, in the hardware, for the job whose fences are `started` and
    /// `finished`: the backend's `run_job` puts a wait for that job ahead of this one (a
    /// firmware barrier on its ring position), so the scheduler waits only until it has
    /// `started`. The backend must make the hardware order the two even when they run on
    /// different rings, or schedulers, of one device.
    ///
    /// `finished` stays the job's error source, as for a pipelined dependency: if it fails,
    /// this job fails with its error, before it runs if that is known by then, else when it
    /// completes (whatever its own hardware fence says). This job's finished fence never
    /// signals before `finished` does, so that whoever waits for this job sees the two complete
    /// in order.
    ///
    /// # Errors
    ///
    /// `ENOMEM`.
    pub fn add_hardware_wait(&mut self, started: ARef<Fence>, finished: ARef<Fence>) -> Result {
        if finished.status() != Ok(false) {
            // Signalled already: an ordinary dependency (dropped, or failing the job).
            return self.add_dependency_once(finished);
        }
        if started.status() == Ok(false) {
            keep_latest(&mut self.deps, started)?;
        }
        keep_latest(&mut self.pipelined, finished)
    }

    /// The number of dependencies the job waits for.
    pub fn dependency_count(&self) -> usize {
        self.deps.len()
    }
}

impl<B: Backend> Job<B> {
    /// Wants the job done by `deadline` (`CLOCK_MONOTONIC`): see [`super::deadline`]. The
    /// earliest of several wins; its finished fence carries it from arm on.
    pub fn set_deadline(&mut self, deadline: Instant<Monotonic>) {
        self.node.deadline.record(deadline);
    }

    /// [`Self::set_deadline`] with the deadline as `CLOCK_MONOTONIC` nanoseconds (as
    /// userspace's `clock_gettime` and a submit ioctl give it), clamped to `horizon` from now:
    /// further ahead, a deadline says nothing about what to run next.
    pub fn set_deadline_within(&mut self, ns: u64, horizon: crate::time::Delta) {
        let now = Instant::<Monotonic>::now().as_nanos();
        let latest = now.saturating_add(horizon.as_nanos().max(0));
        let ns = i64::try_from(ns).unwrap_or(i64::MAX).min(latest);
        // SAFETY: any value is a ktime; `i64::MAX` (no deadline) is not reached from `now`.
        self.set_deadline(unsafe { Instant::from_ktime(ns) });
    }
}

/// Adds `fence` to `fences`, or replaces the fence of its context if `fence` is later.
fn keep_latest(fences: &mut KVec<ARef<Fence>>, fence: ARef<Fence>) -> Result {
    if let Some(same) = fences.iter_mut().find(|d| d.context() == fence.context()) {
        if fence.is_later(same) {
            *same = fence;
        }
        return Ok(());
    }
    fences.push(fence, GFP_KERNEL)?;
    Ok(())
}

impl<B: Backend> Drop for Job<B> {
    fn drop(&mut self) {
        if !self.pushed {
            self.shared.unreserve_job(self.node.entity);
        }
    }
}

/// A job whose fences exist: it must be pushed, under the same [`super::SubmitGuard`].
#[must_use = "an armed job must be pushed"]
pub struct ArmedJob<'g, 'a, B: Backend> {
    pub(crate) job: Job<B>,
    pub(crate) guard: &'g super::SubmitGuard<'a, B>,
}

impl<B: Backend> ArmedJob<'_, '_, B> {
    /// The fence that signals when the job completes (with its error, if any).
    pub fn finished(&self) -> ARef<Fence> {
        // Set by `arm`, before this type exists.
        self.job
            .node
            .inner
            .lock()
            .finished_ref
            .clone()
            .unwrap_or_else(Fence::stub)
    }

    /// The fence that signals when the job reaches the hardware.
    pub fn scheduled(&self) -> ARef<Fence> {
        self.job
            .node
            .inner
            .lock()
            .scheduled_ref
            .clone()
            .unwrap_or_else(Fence::stub)
    }

    /// The driver's data.
    pub fn data(&self) -> &B::Job {
        &self.job.node.data
    }

    /// Queues the job on its entity. Never fails and never allocates: a job that can no
    /// longer run (banned or killed entity, stopped scheduler) completes with an error.
    pub fn push(mut self) -> ARef<Fence> {
        let finished = self.finished();
        self.job.pushed = true;
        self.guard.push(&self.job.shared, self.job.node.clone());
        finished
    }
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
