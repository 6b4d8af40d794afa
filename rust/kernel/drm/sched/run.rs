// SPDX-License-Identifier: GPL-2.0

//! Pick and run: pushing a job onto its entity's queue (and the bypass), choosing the next
//! job by the policy, starting it through the backend, and completing the jobs whose
//! hardware fences have signalled. [`Shared::process`] is the worker.
//!
//! ```text
//!  push_job --(bypass: idle, no deps, fits)--> run
//!     \--> entity queue --(pick: deps signalled, credits fit)--> run --> in_flight
//!                        \--(killed, banned, failed dep)--> completed with the error
//!  in_flight --(hardware fence; pipelined producers finished)--> complete_done --> freed
//! ```

use super::{
    deadline,
    job::JobNode,
    policy,
    shared::{Runner, Shared, State},
    trace, Backend, Priority,
};
use crate::{
    dma_fence::SignallingGuard,
    prelude::*,
    sync::{atomic::Relaxed, Arc},
    time::Instant,
};

/// What the worker does with a job it took off a queue.
pub(crate) enum Outcome {
    Run,
    Fail(Error),
}

impl<B: Backend> Shared<B> {
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
            if node.deadline.is_changed() {
                // Given before the push: the worker passes it on to what the job waits for.
                this.deadlines_changed
                    .store(true, core::sync::atomic::Ordering::Release);
            }
            node.submit_ts.store(clock, Relaxed);
            node.pushed_ns.store(now_ns(), Relaxed);
            let no_deps = {
                let inner = node.inner.lock();
                for dep in inner.deps.iter() {
                    trace::job_add_dep(job_id, dep.context(), dep.seqno());
                }
                inner.deps.is_empty()
            };
            // Bypass: nothing else is queued anywhere, the job waits for nothing and fits.
            let others_idle = s.entities.iter().flatten().all(|e| e.queue.is_empty());
            let prio = s
                .entities
                .get(id)
                .and_then(Option::as_ref)
                .map_or(Priority::Normal, |e| e.effective_priority());
            let urgent = node.deadline.get().is_some();
            let fits = s.fits(&this.config, prio, node.credits, urgent);
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
                        // Counted before its fence signals, as a job that ran is.
                        this.job_freed(&job, None, true);
                        job.complete(Some(err), 0);
                    }
                    None => {}
                }
                return;
            }
        }
        Self::kick(this);
    }

    /// Completes every job on the hardware whose fence has signalled; returns how many.
    pub(crate) fn complete_done(&self) -> usize {
        let mut n = 0;
        loop {
            let (job, gpu_ns, err) = {
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
                    s.return_credits(&job);
                }

                if s.in_flight.is_empty() {
                    s.head_since = None;
                } else if head_done {
                    // A new head: its timeout runs from now.
                    s.head_since = Some(Instant::now());
                }
                // The bookkeeping comes before the finished fence signals, so that whoever
                // it wakes sees the job's time counted and its entity idle.
                let gpu_ns = self
                    .backend
                    .hw_time_ns(&job.data)
                    .unwrap_or_else(|| job.ran_ns());
                let err = job.ran_error();
                Self::account_freed(&mut s, &job, Some(gpu_ns), err.is_some());
                (job, gpu_ns, err)
            };
            {
                let _signalling = SignallingGuard::new();
                job.complete_ran(err, gpu_ns);
            }
            // Freed outside the signalling section, as in `process`.
            drop(job);
            n += 1;
        }
        n
    }

    /// Bookkeeping when a job leaves the scheduler (`gpu_ns` if it ran; `failed` if its
    /// finished fence signals an error).
    pub(crate) fn job_freed(&self, job: &JobNode<B>, gpu_ns: Option<u64>, failed: bool) {
        Self::account_freed(&mut self.state.lock(), job, gpu_ns, failed);
    }

    pub(crate) fn account_freed(
        s: &mut State<B>,
        job: &JobNode<B>,
        gpu_ns: Option<u64>,
        failed: bool,
    ) {
        s.reserved -= 1;
        if let Some(e) = s.entities.get_mut(job.entity).and_then(Option::as_mut) {
            e.reserved -= 1;
            if let Some(d) = job.deadline.get() {
                e.stats.deadline_jobs += 1;
                // CAST: the monotonic clock is never negative, and neither is a deadline
                // that can be missed.
                if now_ns() > d.max(0) as u64 {
                    e.stats.deadline_misses += 1;
                }
            }
            if let Some(ns) = gpu_ns {
                e.in_flight -= 1;
                policy::job_done(&mut e.stats, ns);
            }
            if failed {
                e.stats.jobs_failed = e.stats.jobs_failed.saturating_add(1);
            }
        }
        Self::maybe_free_slot(s, job.entity);
    }

    /// Whether the head job's dependencies have all signalled; registers a wake-up on the
    /// first that has not. Fails the job if one signalled with an error.
    pub(crate) fn head_ready(&self, job: &JobNode<B>) -> bool {
        self.readiness(job).is_none()
    }

    /// `None` if the job may run; otherwise the context of the fence it waits for (a wake-up
    /// is registered on it).
    pub(crate) fn readiness(&self, job: &JobNode<B>) -> Option<u64> {
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
    pub(crate) fn boost_blockers(&self, s: &mut State<B>) {
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
        let per_priority = self.config.credits_per_priority;
        if (!policy.single_queue() || per_priority) && queued > 1 {
            self.boost_blockers(&mut s);
        } else {
            for e in s.entities.iter_mut().flatten() {
                e.boost = None;
            }
        }
        // The group's choice, and whether it went by deadline past a job without one.
        let mut chosen = None;
        for group in policy.groups(per_priority) {
            let mut plain = policy::Choice::default();
            let mut earliest: Option<(usize, i64)> = None;
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
                match head.deadline.get() {
                    Some(d) => {
                        if earliest.is_none_or(|(_, best)| d < best) {
                            earliest = Some((id, d));
                        }
                    }
                    None => {
                        let key = policy.key(&e.stats, head.submit_ts.load(Relaxed));
                        plain.offer(id, key, e.stats.avg_job_ns);
                    }
                }
            }
            // EDF within the group, at most `DEADLINE_BURST` in a row past other work.
            let (id, past_others) = match (earliest, plain.best()) {
                (Some((id, _)), None) => (id, false),
                (Some((id, _)), Some(_)) if s.deadline_streak < deadline::DEADLINE_BURST => {
                    (id, true)
                }
                (_, Some(id)) => (id, false),
                (None, None) => continue,
            };
            if per_priority {
                let e = s.entities[id].as_ref()?;
                let head = e.queue.front()?;
                let prio = e.effective_priority();
                let urgent = head.deadline.get().is_some();
                if !head.failed.load(Relaxed) && !s.fits(&self.config, prio, head.credits, urgent) {
                    // This priority's credits are used up; nothing of it may overtake its
                    // best job, but a lower priority may run.
                    continue;
                }
            }
            chosen = Some((id, past_others));
            break;
        }
        let (id, past_others) = chosen?;
        let prio = s.entities[id].as_ref()?.effective_priority();
        let credits = s.entities[id].as_ref()?.queue.front()?.credits;
        let urgent = s.entities[id]
            .as_ref()?
            .queue
            .front()?
            .deadline
            .get()
            .is_some();
        let failed = {
            let head = s.entities[id].as_ref()?.queue.front()?;
            if head.failed.load(Relaxed) {
                head.inner.lock().error
            } else {
                None
            }
        };
        if failed.is_none() && !s.fits(&self.config, prio, credits, urgent) {
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
        e.stats
            .waits
            .record(now_ns().saturating_sub(job.pushed_ns.load(Relaxed)));
        e.in_flight += 1;
        s.take_credits(&job, prio);
        s.deadline_streak = if past_others {
            s.deadline_streak + 1
        } else {
            0
        };
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
    pub(crate) fn run(this: &Arc<Self>, job: Arc<JobNode<B>>) -> Option<Arc<JobNode<B>>> {
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
                this.state.lock().return_credits(&job);
                this.job_freed(&job, Some(0), err.is_some());
                job.complete(err, 0);
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

    /// The worker: completes finished jobs, then runs jobs while they fit.
    pub(crate) fn process(this: &Arc<Self>) {
        // Serialises with the bypass and the timeout handler.
        let _running = this.run_lock.lock();
        let _runner = Runner::spin(this);
        loop {
            this.complete_done();
            this.pass_deadlines_on();
            let Some((job, outcome)) = this.pick(false) else {
                break;
            };
            let failed = {
                let _signalling = SignallingGuard::new();
                match outcome {
                    Outcome::Run => Self::run(this, job),
                    Outcome::Fail(err) => {
                        // Counted before its fence signals, as a job that ran is.
                        this.job_freed(&job, None, true);
                        job.complete(Some(err), 0);
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
}

/// The monotonic clock in ns.
fn now_ns() -> u64 {
    // CAST: the monotonic clock is never negative.
    Instant::<crate::time::Monotonic>::now().as_nanos() as u64
}
