// SPDX-License-Identifier: GPL-2.0

//! Starting jobs from a completion ([`Backend::RUN_IN_IRQ`]).
//!
//! Without it, a completion wakes the worker, and the hardware idles until a kworker has been
//! scheduled, has returned the credits and has run the next job: the whole of drm_sched's
//! per-job overhead on a busy ring. With it, the hardware fence's callback queues an
//! `irq_work`, which returns the credits and runs the jobs that fit, in hard-interrupt context
//! on the same CPU, before it wakes the worker for the rest (finished fences, freeing, failed
//! and killed jobs).
//!
//! The callback itself cannot do it: it runs under the signalling fence's lock, and starting
//! a job takes other fences' locks (all fence locks share one lockdep class, so no code may
//! nest them); it would also make fence lock → scheduler lock, the reverse of the order in
//! `pick`. The `irq_work` runs with no lock held. It only tries to take the right to run jobs
//! ([`Shared::runner`]); if the worker, the bypass or the timeout handler holds it, the worker
//! does the start instead, as without `RUN_IN_IRQ`.

use super::{
    job::JobNode,
    run::Outcome,
    shared::{self, Shared},
    Backend,
};
use crate::{
    irq_work::IrqWorkItem,
    sync::{
        atomic::{Acquire, Relaxed, Release},
        Arc,
    },
    time::Instant,
};

crate::impl_has_irq_work! {
    impl{B: Backend} HasIrqWork for Shared<B> { self.irq_start }
}

impl<B: Backend> IrqWorkItem for Shared<B> {
    fn run(this: Arc<Self>) {
        Self::start_from_completion(&this);
        Self::kick(&this);
        // A last reference is released from process context.
        Self::put_from_work(this);
    }
}

impl<B: Backend> Shared<B> {
    /// In the `irq_work` a completion queued: returns the credits of the jobs that are done
    /// and runs the jobs that fit now.
    fn start_from_completion(this: &Arc<Self>) {
        if this.runner.xchg(true, Acquire) {
            return;
        }
        if this.return_done_credits() {
            // `pick(true)` never returns `Outcome::Fail`: it leaves failing jobs queued, for
            // the worker.
            while let Some((job, Outcome::Run)) = this.pick(true) {
                Self::start_in_irq(this, job);
            }
        }
        this.runner.store(false, Release);
    }

    /// Gives back the credits of the jobs on the hardware that are done (in order, as they
    /// usually complete); `false` if the scheduler is stopped.
    fn return_done_credits(&self) -> bool {
        let mut guard = self.state.lock();
        let s = &mut *guard;
        if s.stopped {
            return false;
        }
        for job in s.in_flight.iter() {
            if job.credits_returned.load(Relaxed) {
                continue;
            }
            if !job.hw_done() {
                break;
            }
            job.credits_returned.store(true, Relaxed);
            shared::return_credits(&mut s.credits_used, &mut s.band_used, job);
        }
        true
    }

    /// Runs a picked job, as the worker's `run` does, except that a job the backend fails to
    /// start goes on the hardware list as done with its error: completing and freeing it is
    /// the worker's.
    fn start_in_irq(this: &Arc<Self>, job: Arc<JobNode<B>>) {
        let hw = this.backend.run_job(&job.data);
        let (scheduled, hw) = {
            let mut inner = job.inner.lock();
            inner.started = Some(Instant::now());
            match hw {
                Ok(hw) => {
                    if let Some(deadline) = inner.finished.as_ref().and_then(|f| f.deadline()) {
                        hw.set_deadline(deadline);
                    }
                    inner.hw = Some(hw.clone());
                    (inner.scheduled.take(), Some(hw))
                }
                // No hardware fence: `hw_done` reports it done, with this error.
                Err(e) => {
                    inner.error = Some(e);
                    (None, None)
                }
            }
        };
        if let Some(hw) = hw {
            // Done already (then without a callback): the worker this start kicks sees it.
            let _ = job.hw_cb.lock().as_mut().add(&hw);
        }
        if let Some(s) = scheduled {
            s.signal();
        }
        Self::put_on_hardware_list(this, job);
    }
}
