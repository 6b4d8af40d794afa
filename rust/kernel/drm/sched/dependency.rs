// SPDX-License-Identifier: GPL-2.0

//! Dependencies: what a job waits for, and the shortcut for jobs on the same in-order ring
//! (pipelining: wait until the producer has *started*, take its error from its finished
//! fence).

use super::{job::JobNode, shared::Shared, Backend};
use crate::{dma_fence::Fence, sync::aref::ARef, sync::Arc};

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

impl<B: Backend> Shared<B> {
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
}
