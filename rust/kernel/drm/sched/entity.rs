// SPDX-License-Identifier: GPL-2.0

//! Entities: one client's ordered stream of jobs on a scheduler.
//!
//! ```text
//!  Entity::new --> active --kill()/drop--> killed: queued jobs complete with ESRCH once
//!                    |                     their own dependencies have signalled
//!                    +--(timeouts >= ban limit)--> banned: new jobs ECANCELED, queued
//!                                                  jobs complete with ECANCELED
//! ```
//!
//! Jobs of one entity run in push order. Arming and pushing happen under the entity's
//! [`SubmitGuard`], so the fences' seqnos follow the queue order.

use super::{
    job::{ArmedJob, Job, JobNode},
    policy::EntityStats,
    ring::Ring,
    scheduler::{Scheduler, Shared},
    Backend, Priority,
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
    pub(crate) queue: Ring<Arc<JobNode<B>>>,
    /// Jobs created and not yet freed (room reserved in `queue`).
    pub(crate) reserved: usize,
    /// Jobs of this entity on the hardware.
    pub(crate) in_flight: usize,
    pub(crate) priority: Priority,
    pub(crate) stats: EntityStats,
    pub(crate) killed: bool,
    pub(crate) banned: bool,
    /// The entity handle is gone; the slot is freed once the last job is.
    pub(crate) dropped: bool,
    pub(crate) guilty: u32,
    pub(crate) scheduled_context: u64,
    pub(crate) finished_context: u64,
}

impl<B: Backend> EntityState<B> {
    pub(crate) fn is_idle(&self) -> bool {
        self.queue.is_empty()
    }
}

/// The per-entity fence timelines, used under the submit lock.
pub(crate) struct Timelines {
    pub(crate) scheduled: FenceContext,
    pub(crate) finished: FenceContext,
}

/// A client's job stream on one scheduler.
pub struct Entity<B: Backend> {
    pub(crate) shared: Arc<Shared<B>>,
    pub(crate) id: usize,
    timelines: Pin<KBox<Mutex<Timelines>>>,
}

impl<B: Backend> Entity<B> {
    /// Creates an entity of `priority` on `sched`.
    ///
    /// # Errors
    ///
    /// `ENOMEM`, `ENODEV` if the scheduler is stopped.
    pub fn new(sched: &Scheduler<B>, priority: Priority) -> Result<Self> {
        let shared = sched.shared.clone();
        let timelines = Timelines {
            scheduled: FenceContext::new(shared.config.name, c"scheduled"),
            finished: FenceContext::new(shared.config.name, c"finished"),
        };
        let state = EntityState {
            queue: Ring::new(),
            reserved: 0,
            in_flight: 0,
            priority,
            stats: EntityStats::default(),
            killed: false,
            banned: false,
            dropped: false,
            guilty: 0,
            scheduled_context: timelines.scheduled.context(),
            finished_context: timelines.finished.context(),
        };
        let id = shared.add_entity(state)?;
        Ok(Self {
            shared,
            id,
            timelines: KBox::pin_init(new_mutex!(timelines), GFP_KERNEL)?,
        })
    }

    /// Starts a submission: arm and push jobs under the returned guard.
    ///
    /// # Errors
    ///
    /// `ECANCELED` if the entity is banned or killed, `ENODEV` if the scheduler is stopped.
    pub fn begin_submit(&self) -> Result<SubmitGuard<'_, B>> {
        self.shared.check_usable(self.id)?;
        Ok(SubmitGuard {
            entity: self,
            timelines: self.timelines.lock(),
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
        self.shared.entity_priority(self.id)
    }

    /// Changes the entity's priority; takes effect at the next pick.
    pub fn set_priority(&self, priority: Priority) {
        Shared::set_entity_priority(&self.shared, self.id, priority);
    }

    /// Waits until every queued job has been handed to the hardware (or completed).
    ///
    /// # Errors
    ///
    /// `ETIMEDOUT` after `timeout`; `ERESTARTSYS` if a signal interrupts the wait.
    pub fn flush(&self, timeout: Delta) -> Result {
        self.shared.flush_entity(self.id, timeout)
    }

    /// Stops the entity: queued jobs complete with `ESRCH` once their own dependencies have
    /// signalled (they never run), and new jobs are refused.
    pub fn kill(&self) {
        Shared::kill_entity(&self.shared, self.id);
    }

    /// Whether the entity has been banned after repeated timeouts.
    pub fn is_banned(&self) -> bool {
        self.shared.entity_flags(self.id).1
    }

    /// Jobs pushed and not yet handed to the hardware.
    pub fn queued(&self) -> usize {
        self.shared.entity_queued(self.id)
    }

    /// Total GPU time in ns and number of completed jobs.
    pub fn usage(&self) -> (u64, u64) {
        self.shared.entity_usage(self.id)
    }
}

impl<B: Backend> Drop for Entity<B> {
    fn drop(&mut self) {
        Shared::drop_entity(&self.shared, self.id);
    }
}

/// Arming and pushing happen under this guard, so fence order is queue order.
pub struct SubmitGuard<'a, B: Backend> {
    entity: &'a Entity<B>,
    timelines: MutexGuard<'a, Timelines>,
}

impl<'a, B: Backend> SubmitGuard<'a, B> {
    /// Arms `job`: its scheduled and finished fences are initialised with the entity's next
    /// seqno. From here the job must be pushed.
    pub fn arm<'g>(&'g self, job: Job<B>) -> ArmedJob<'g, 'a, B> {
        {
            let mut inner = job.node.inner.lock();
            if let Some((s, f)) = inner.prepared.take() {
                let scheduled = self.timelines.scheduled.init(s, ());
                let finished = self.timelines.finished.init(f, ());
                inner.scheduled_ref = Some(scheduled.fence().into());
                inner.finished_ref = Some(finished.fence().into());
                inner.scheduled = Some(scheduled);
                inner.finished = Some(finished);
            }
        }
        ArmedJob { job, guard: self }
    }

    pub(crate) fn push(&self, node: Arc<JobNode<B>>) {
        Shared::push_job(&self.entity.shared, self.entity.id, node);
    }
}
