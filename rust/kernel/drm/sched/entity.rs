// SPDX-License-Identifier: GPL-2.0

//! Entities: one client's ordered stream of jobs on a scheduler.
//!
//! ```text
//!  Entity::new --> active --kill()/drop--> killed: queued jobs complete with ESRCH (or
//!                    |                     kill_with's error) once their own dependencies
//!                    |                     have signalled
//!                    +--(timeouts >= ban limit)--> banned: new jobs ECANCELED, queued
//!                                                  jobs complete with ECANCELED
//! ```
//!
//! Jobs of one entity run in push order. Arming and pushing happen under the entity's
//! [`SubmitGuard`], so the fences' seqnos follow the queue order.

use super::{
    fifo::Fifo,
    job::{ArmedJob, Job, JobNode},
    policy::EntityStats,
    scheduler::Scheduler,
    shared::Shared,
    Backend, Priority, WaitHistogram, Weight,
};
use crate::{
    dma_fence::FenceContext,
    new_mutex,
    prelude::*,
    sync::{Arc, Mutex, MutexGuard},
    time::Delta,
};

/// The scheduler's state of one entity (under the scheduler's lock).
pub(crate) struct EntityState<B: Backend> {
    pub(crate) queue: Fifo<Arc<JobNode<B>>>,
    /// Jobs created and not yet freed (room reserved in `queue`).
    pub(crate) reserved: usize,
    /// Jobs of this entity on the hardware.
    pub(crate) in_flight: usize,
    pub(crate) priority: Priority,
    pub(crate) stats: EntityStats,
    pub(crate) killed: bool,
    /// The error queued jobs of a killed entity complete with.
    pub(crate) kill_error: Error,
    pub(crate) banned: bool,
    /// The entity handle is gone; the slot is freed once the last job is.
    pub(crate) dropped: bool,
    pub(crate) guilty: u32,
    /// A higher priority inherited from a waiter (see the scheduler's `boost_blockers`).
    pub(crate) boost: Option<Priority>,
    pub(crate) scheduled_context: u64,
    pub(crate) finished_context: u64,
}

impl<B: Backend> EntityState<B> {
    pub(crate) fn is_idle(&self) -> bool {
        self.queue.is_empty()
    }

    /// The priority the entity is picked at: its own, or a waiter's if higher.
    pub(crate) fn effective_priority(&self) -> Priority {
        self.boost.map_or(self.priority, |b| b.min(self.priority))
    }
}

/// The per-entity fence timelines, used under the submit lock.
pub(crate) struct Timelines {
    pub(crate) scheduled: FenceContext,
    pub(crate) finished: FenceContext,
}

/// Which scheduler an entity is on, and which ones it may move to.
pub(crate) struct Binding<B: Backend> {
    pub(crate) shared: Arc<Shared<B>>,
    pub(crate) id: usize,
    /// The schedulers the entity may run on; with more than one, an idle entity moves to the
    /// least loaded when it gets a new job.
    scheds: KVec<Arc<Shared<B>>>,
}

/// What an entity's jobs used and how long they waited ([`Entity::usage`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// GPU time of the completed jobs, in ns.
    pub gpu_ns: u64,
    /// Jobs that ran and completed (successfully or not).
    pub jobs_done: u64,
    /// Jobs whose finished fence signalled an error: failed on the hardware, or completed
    /// without running (a failed dependency, a killed or banned entity, a stopped scheduler).
    pub jobs_failed: u64,
    /// Jobs created and not yet freed: queued, waiting for dependencies or on the hardware.
    pub pending: u64,
    /// How long the jobs that started waited from push to their start (dependencies
    /// included).
    pub waits: WaitHistogram,
    /// Jobs with a deadline that left the scheduler, and those of them that completed after
    /// it (whatever their outcome).
    pub deadline_jobs: u64,
    /// See [`Self::deadline_jobs`].
    pub deadline_misses: u64,
}

/// A client's job stream, on one scheduler at a time.
pub struct Entity<B: Backend> {
    binding: Pin<KBox<Mutex<Binding<B>>>>,
    timelines: Pin<KBox<Mutex<Timelines>>>,
}

impl<B: Backend> Entity<B> {
    /// Creates an entity of `priority` on `sched`.
    ///
    /// # Errors
    ///
    /// `ENOMEM`, `ENODEV` if the scheduler is stopped.
    pub fn new(sched: &Scheduler<B>, priority: Priority) -> Result<Self> {
        Self::new_on(&[sched], priority)
    }

    /// Creates an entity of `priority` that may run on any of `scheds` (at least one): it
    /// starts on the least loaded, and moves to the least loaded whenever it gets a job while
    /// it has none queued or running (so its jobs still complete in order).
    ///
    /// # Errors
    ///
    /// `EINVAL` for an empty list, `ENOMEM`, `ENODEV` if the scheduler is stopped.
    pub fn new_on(scheds: &[&Scheduler<B>], priority: Priority) -> Result<Self> {
        let list = Self::list(scheds)?;
        let shared = least_loaded(&list).ok_or(EINVAL)?;
        let timelines = Timelines {
            scheduled: FenceContext::new(shared.config.name, c"scheduled"),
            finished: FenceContext::new(shared.config.name, c"finished"),
        };
        let state = EntityState {
            queue: Fifo::new(),
            reserved: 0,
            in_flight: 0,
            priority,
            stats: EntityStats::default(),
            killed: false,
            kill_error: ESRCH,
            banned: false,
            dropped: false,
            guilty: 0,
            boost: None,
            scheduled_context: timelines.scheduled.context(),
            finished_context: timelines.finished.context(),
        };
        let id = shared.add_entity(state)?;
        let binding = Binding {
            shared,
            id,
            scheds: list,
        };
        Ok(Self {
            binding: KBox::pin_init(new_mutex!(binding), GFP_KERNEL)?,
            timelines: KBox::pin_init(new_mutex!(timelines), GFP_KERNEL)?,
        })
    }

    fn list(scheds: &[&Scheduler<B>]) -> Result<KVec<Arc<Shared<B>>>> {
        let mut list = KVec::with_capacity(scheds.len(), GFP_KERNEL)?;
        for s in scheds {
            list.push(s.shared.clone(), GFP_KERNEL)?;
        }
        Ok(list)
    }

    /// Replaces the schedulers the entity may run on (drm_sched_entity_modify_sched). The
    /// entity moves when it is next idle and gets a job.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an empty list, `ENOMEM`.
    pub fn modify_sched(&self, scheds: &[&Scheduler<B>]) -> Result {
        if scheds.is_empty() {
            return Err(EINVAL);
        }
        let list = Self::list(scheds)?;
        self.binding.lock().scheds = list;
        Ok(())
    }

    /// The scheduler and slot the entity is on now.
    fn current(&self) -> (Arc<Shared<B>>, usize) {
        let b = self.binding.lock();
        (b.shared.clone(), b.id)
    }

    /// Moves the entity if it is idle and another of its schedulers is less loaded, then
    /// reserves room for one job there; returns where.
    pub(crate) fn reserve_job(&self) -> Result<(Arc<Shared<B>>, usize)> {
        let mut b = self.binding.lock();
        let on_list = b.scheds.iter().any(|s| Arc::ptr_eq(s, &b.shared));
        if b.scheds.len() > 1 || !on_list {
            if let Some(best) = least_loaded(&b.scheds) {
                if !Arc::ptr_eq(&best, &b.shared) {
                    if let Some(state) = b.shared.idle_entity_state(b.id) {
                        let id = best.add_entity(state)?;
                        Shared::drop_entity(&b.shared, b.id);
                        b.shared = best;
                        b.id = id;
                    }
                }
            }
        }
        b.shared.reserve_job(b.id)?;
        Ok((b.shared.clone(), b.id))
    }

    /// Starts a submission: arm and push jobs under the returned guard.
    ///
    /// # Errors
    ///
    /// `ECANCELED` if the entity is banned or killed, `ENODEV` if the scheduler is stopped.
    pub fn begin_submit(&self) -> Result<SubmitGuard<'_, B>> {
        let (shared, id) = self.current();
        shared.check_usable(id)?;
        Ok(SubmitGuard {
            timelines: self.timelines.lock(),
            _backend: core::marker::PhantomData,
        })
    }

    /// Creates a job (see [`Job::new`]).
    pub fn job(&self, credits: u32, data: B::Job) -> Result<Job<B>> {
        Job::new(self, credits, data)
    }

    /// Creates, arms and pushes a job without dependencies; returns its finished fence.
    pub fn submit(
        &self,
        credits: u32,
        data: B::Job,
    ) -> Result<crate::sync::aref::ARef<crate::dma_fence::Fence>> {
        let job = self.job(credits, data)?;
        let guard = self.begin_submit()?;
        Ok(guard.arm(job).push())
    }

    /// The entity's priority.
    pub fn priority(&self) -> Priority {
        let (shared, id) = self.current();
        shared.entity_priority(id)
    }

    /// Changes the entity's priority; takes effect at the next pick.
    pub fn set_priority(&self, priority: Priority) {
        // Under the binding's lock, so that a move to another scheduler cannot lose it.
        let b = self.binding.lock();
        Shared::set_entity_priority(&b.shared, b.id, priority);
    }

    /// The entity's weight (its share under FAIR).
    pub fn weight(&self) -> Weight {
        let (shared, id) = self.current();
        shared.entity_weight(id)
    }

    /// Changes the entity's weight; takes effect at the next pick (queued jobs are picked
    /// with it, in their order). Moves with the entity to another scheduler.
    pub fn set_weight(&self, weight: Weight) {
        let b = self.binding.lock();
        Shared::set_entity_weight(&b.shared, b.id, weight);
    }

    /// Waits until every queued job has been handed to the hardware (or completed).
    ///
    /// # Errors
    ///
    /// `ETIMEDOUT` after `timeout`; `ERESTARTSYS` if a signal interrupts the wait.
    pub fn flush(&self, timeout: Delta) -> Result {
        let (shared, id) = self.current();
        shared.flush_entity(id, timeout)
    }

    /// Stops the entity: queued jobs complete with `ESRCH` once their own dependencies have
    /// signalled (they never run), and new jobs are refused.
    pub fn kill(&self) {
        self.kill_with(ESRCH);
    }

    /// [`Self::kill`], with `err` as the queued jobs' error (a driver's UAPI may promise
    /// another errno than drm_sched's `ESRCH`, e.g. `ECANCELED` for a destroyed queue).
    pub fn kill_with(&self, err: Error) {
        let (shared, id) = self.current();
        Shared::kill_entity(&shared, id, err);
    }

    /// Whether the entity has been banned after repeated timeouts.
    pub fn is_banned(&self) -> bool {
        let (shared, id) = self.current();
        shared.entity_banned(id)
    }

    /// Jobs pushed and not yet handed to the hardware.
    pub fn queued(&self) -> usize {
        let (shared, id) = self.current();
        shared.entity_queued(id)
    }

    /// GPU time, completed, failed and pending jobs, and the jobs' waits. Moving to another
    /// scheduler keeps them (the pending count is of the scheduler the entity is on).
    pub fn usage(&self) -> Usage {
        let (shared, id) = self.current();
        shared.entity_usage(id)
    }
}

/// The scheduler of `list` with the fewest jobs (created and not yet freed).
fn least_loaded<B: Backend>(list: &[Arc<Shared<B>>]) -> Option<Arc<Shared<B>>> {
    let mut best: Option<(&Arc<Shared<B>>, usize)> = None;
    for s in list {
        let load = s.load();
        if best.is_none_or(|(_, l)| load < l) {
            best = Some((s, load));
        }
    }
    best.map(|(s, _)| s.clone())
}

impl<B: Backend> Drop for Entity<B> {
    fn drop(&mut self) {
        let (shared, id) = self.current();
        Shared::drop_entity(&shared, id);
    }
}

/// Arming and pushing happen under this guard, so fence order is queue order.
pub struct SubmitGuard<'a, B: Backend> {
    timelines: MutexGuard<'a, Timelines>,
    _backend: core::marker::PhantomData<B>,
}

impl<'a, B: Backend> SubmitGuard<'a, B> {
    /// Arms `job`: its scheduled and finished fences are initialised with the entity's next
    /// seqno. From here the job must be pushed.
    pub fn arm<'g>(&'g self, mut job: Job<B>) -> ArmedJob<'g, 'a, B> {
        {
            let mut inner = job.node.inner.lock();
            // Moving the vector does not allocate.
            inner.deps = core::mem::take(&mut job.deps);
            inner.pipelined = core::mem::take(&mut job.pipelined);
            if let Some((s, f)) = inner.prepared.take() {
                let scheduled = self.timelines.scheduled.init(s, ());
                let finished = self
                    .timelines
                    .finished
                    .init_notifying(f, job.node.deadline.clone());
                // A deadline given before arm: the fence carries it from now on.
                if let Some(ns) = job.node.deadline.get() {
                    // SAFETY: a ktime value recorded from an `Instant<Monotonic>`.
                    finished
                        .fence()
                        .set_deadline(unsafe { crate::time::Instant::from_ktime(ns) });
                }
                inner.scheduled_ref = Some(scheduled.fence().into());
                inner.finished_ref = Some(finished.fence().into());
                job.node.set_trace_id(finished.fence());
                inner.scheduled = Some(scheduled);
                inner.finished = Some(finished);
            }
        }
        ArmedJob { job, guard: self }
    }

    pub(crate) fn push(&self, shared: &Arc<Shared<B>>, node: Arc<JobNode<B>>) {
        Shared::push_job(shared, node.entity, node);
    }
}
