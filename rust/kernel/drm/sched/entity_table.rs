// SPDX-License-Identifier: GPL-2.0

//! The entity table: the scheduler's slots of [`EntityState`], and what entities do to them
//! (add, reserve room for a job, change priority or weight, kill, flush, drop).
//!
//! An entity's slot outlives the [`super::Entity`] handle while jobs it reserved room for are
//! alive: a dropped entity is marked `dropped` and its slot freed with its last job
//! ([`Shared::maybe_free_slot`]).

use super::{
    entity::{EntityState, Usage},
    fifo::Fifo,
    shared::{Shared, State},
    Backend, Priority, Weight,
};
use crate::{
    prelude::*,
    sync::{atomic::Relaxed, Arc},
    time::{msecs_to_jiffies, Delta, Instant, Monotonic},
};

impl<B: Backend> Shared<B> {
    /// A copy of entity `id`'s state for a move, if it has nothing queued, reserved or
    /// running (and is usable): its jobs so far have all completed, so order is kept.
    pub(crate) fn idle_entity_state(&self, id: usize) -> Option<EntityState<B>> {
        let s = self.state.lock();
        let e = s.entities.get(id).and_then(Option::as_ref)?;
        if !e.queue.is_empty() || e.reserved != 0 || e.in_flight != 0 || e.killed || e.banned {
            return None;
        }
        Some(EntityState {
            queue: Fifo::new(),
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
            let queue = Fifo::grown(queue_cap, queue_need)?;
            let flight = Fifo::grown(flight_cap, flight_need)?;
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

    pub(crate) fn maybe_free_slot(s: &mut State<B>, id: usize) {
        let free = s
            .entities
            .get(id)
            .and_then(Option::as_ref)
            .is_some_and(|e| e.dropped && e.reserved == 0);
        if free {
            s.entities[id] = None;
        }
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
    pub(crate) fn update_entity(this: &Arc<Self>, id: usize, f: impl FnOnce(&mut EntityState<B>)) {
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

    pub(crate) fn entity_weight(&self, id: usize) -> Weight {
        self.with_entity(id, |e| e.stats.weight).unwrap_or_default()
    }

    pub(crate) fn set_entity_weight(this: &Arc<Self>, id: usize, weight: Weight) {
        Self::update_entity(this, id, |e| e.stats.weight = weight);
    }

    pub(crate) fn entity_banned(&self, id: usize) -> bool {
        self.with_entity(id, |e| e.banned).unwrap_or(false)
    }

    pub(crate) fn entity_usage(&self, id: usize) -> Usage {
        self.with_entity(id, |e| Usage {
            gpu_ns: e.stats.gpu_ns,
            jobs_done: e.stats.jobs_done,
            jobs_failed: e.stats.jobs_failed,
            // CAST: a count of jobs.
            pending: e.reserved as u64,
            waits: e.stats.waits,
            deadline_jobs: e.stats.deadline_jobs,
            deadline_misses: e.stats.deadline_misses,
        })
        .unwrap_or_default()
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
}
