// SPDX-License-Identifier: GPL-2.0

//! Teardown: stopping a scheduler with jobs queued and on the hardware. Jobs on the hardware
//! are cancelled through the backend and waited for; queued jobs complete with an error.

use super::{shared::Shared, Backend};
use crate::{
    prelude::*,
    sync::Arc,
    workqueue::owned::{cancel_delayed_work_sync, cancel_work_sync},
};

impl<B: Backend> Shared<B> {
    /// Cancels every job on the hardware through the backend and fails every queued job with
    /// `err`. With `wait`, also waits for the cancelled jobs to complete (teardown); otherwise
    /// their completion reaches the worker as usual.
    pub(crate) fn cancel_all(&self, wait: bool, err: Error) {
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
            self.job_freed(&job, None, true);
            job.complete(Some(err), 0);
        }
        self.notify_progress();
    }

    /// Waits until every cancelled job on the hardware has completed.
    pub(crate) fn wait_in_flight(&self) {
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
            match head.pending_pipelined() {
                Some(f) => {
                    let _ = f.wait(None, crate::dma_fence::Interruptible::No);
                }
                None => break,
            }
        }
    }

    /// Stops the scheduler for good (the `Scheduler` handle is being dropped).
    pub(crate) fn teardown(this: &Arc<Self>) {
        this.state.lock().stopped = true;
        cancel_delayed_work_sync::<Self, 1>(this);
        cancel_work_sync::<Self, 0>(this);
        // No job starts any more (a later kick only completes jobs).
        this.cancel_all(true, crate::dma_fence::ecanceled());
    }
}
