// SPDX-License-Identifier: GPL-2.0

//! Deadlines: a job wanted by a time (`CLOCK_MONOTONIC`) goes first among the ready jobs of its
//! priority, earliest deadline first (EDF), within a bounded boost.
//!
//! A deadline reaches a job from its driver before the push ([`super::Job::set_deadline`], for
//! a deadline in the submit ioctl), or on its finished fence, from anyone and at any time:
//! `dma_fence_set_deadline`, which `SYNC_IOC_SET_DEADLINE` on a sync_file, a syncobj wait
//! with `DRM_SYNCOBJ_WAIT_FLAGS_WAIT_DEADLINE` and a consumer passing its own deadline on all
//! call. The finished fence's data ([`JobDeadline`]) records the earliest, marks the job and
//! kicks its scheduler; the worker then passes the deadline on ([`Shared::pass_deadlines_on`]):
//! to the fences the job still waits for (its dependencies and the jobs of its ring it runs
//! behind), so that a deadline on a job makes the jobs it waits for urgent too, one hop per
//! worker run and never by recursion; and to the hardware fence of a job already started.
//!
//! ```text
//!  none --deadline (earlier than any)--> changed --worker passes it on--> set
//!                                          ^------deadline (earlier)------/
//! ```
//!
//! The rule, at every pick, within one priority group: the ready job whose deadline is earliest
//! goes first (a deadline already past is the most urgent: the job is late, and every moment
//! adds to it). While a ready job without a deadline waits in the same group, at most
//! [`DEADLINE_BURST`] jobs go by deadline in a row before the policy's choice among the others
//! gets a pick, so a flood of deadlines takes at most `BURST / (BURST + 1)` of a group's picks
//! from other work. Priorities stay strict: a deadline never lifts a job above a higher
//! priority's jobs (a priority change does that).

use core::sync::atomic::{
    AtomicBool, AtomicI64,
    Ordering::{Acquire, Relaxed, Release},
};

use super::{job::JobNode, shared::Shared, Backend};
use crate::{
    dma_fence::DeadlineNotify,
    new_spinlock_irq,
    prelude::*,
    sync::{Arc, SpinLockIrq},
    time::{Instant, Monotonic},
};

/// Jobs picked by deadline in a row while a job without one waits in their priority group.
pub(crate) const DEADLINE_BURST: u32 = 4;

/// [`JobDeadline::ns`] without a deadline.
const NONE: i64 = i64::MAX;

/// A job's deadline, shared by the job and its finished fence (the fence's data).
#[pin_data]
pub(crate) struct JobDeadline<B: Backend> {
    /// The earliest deadline, in ktime ns; [`NONE`] if none.
    ns: AtomicI64,
    /// Set when the deadline moved earlier and the worker has not passed it on yet.
    changed: AtomicBool,
    /// The scheduler, while the job is in it: kicked when the deadline moves. Taken when the
    /// job completes, so that a fence kept long after does not keep the scheduler.
    #[pin]
    sched: SpinLockIrq<Option<Arc<Shared<B>>>>,
}

impl<B: Backend> JobDeadline<B> {
    /// No deadline yet, for a job on `shared`.
    pub(crate) fn new(shared: Arc<Shared<B>>) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                ns: AtomicI64::new(NONE),
                changed: AtomicBool::new(false),
                sched <- new_spinlock_irq!(Some(shared)),
            }),
            GFP_KERNEL,
        )
    }

    /// The deadline, in ktime ns.
    pub(crate) fn get(&self) -> Option<i64> {
        let ns = self.ns.load(Relaxed);
        (ns != NONE).then_some(ns)
    }

    /// Records `deadline` if it is the earliest yet; returns whether it was.
    pub(crate) fn record(&self, deadline: Instant<Monotonic>) -> bool {
        let ns = deadline.as_nanos();
        let earlier = self.ns.fetch_min(ns, Relaxed) > ns;
        if earlier {
            self.changed.store(true, Release);
        }
        earlier
    }

    /// Whether the deadline moved since the worker last passed it on.
    pub(crate) fn is_changed(&self) -> bool {
        self.changed.load(Acquire)
    }

    /// Clears [`Self::is_changed`]; returns what it was.
    pub(crate) fn take_changed(&self) -> bool {
        self.changed.swap(false, Acquire)
    }

    /// The job completes: later deadlines wake no scheduler.
    pub(crate) fn detach(&self) -> Option<Arc<Shared<B>>> {
        self.sched.lock().take()
    }
}

impl<B: Backend> DeadlineNotify for Arc<JobDeadline<B>> {
    fn deadline_set(&self, deadline: Instant<Monotonic>) {
        if !self.record(deadline) {
            return;
        }
        // A kick only queues the worker (no reference is dropped here: the cell keeps its own).
        if let Some(s) = self.sched.lock().as_ref() {
            s.deadlines_changed.store(true, Release);
            Shared::kick(s);
        }
    }
}

impl<B: Backend> Shared<B> {
    /// Passes every moved deadline on: to what a queued job waits for, and to the hardware
    /// fence of a job already started (and to the jobs of its ring it runs behind).
    pub(crate) fn pass_deadlines_on(&self) {
        if !self.deadlines_changed.swap(false, Acquire) {
            return;
        }
        let s = self.state.lock();
        for e in s.entities.iter().flatten() {
            for job in e.queue.iter() {
                pass_on(job);
            }
        }
        for job in s.in_flight.iter() {
            pass_on(job);
        }
    }
}

/// Passes `job`'s deadline on, if it moved: to the fences it still waits for, and to its
/// hardware fence if it has started.
fn pass_on<B: Backend>(job: &JobNode<B>) {
    if !job.deadline.take_changed() {
        return;
    }
    let Some(ns) = job.deadline.get() else {
        return;
    };
    // SAFETY: a ktime value recorded from an `Instant<Monotonic>`.
    let at = unsafe { Instant::<Monotonic>::from_ktime(ns) };
    let inner = job.inner.lock();
    let waits = Iterator::chain(inner.deps.iter(), inner.pipelined.iter());
    let own = Iterator::chain(inner.prepare.iter(), inner.hw.iter());
    for f in Iterator::chain(waits, own) {
        f.set_deadline(at);
    }
}
