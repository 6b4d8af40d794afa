// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Deadlines on hardware fences: a deadline set on a job's hardware fence reaches the firmware
//! as a pipe message (ABI 1.7), which then runs the job's work queue first within its priority.
//!
//! The scheduler passes a job's deadline to its hardware fence when the job starts and whenever
//! it moves earlier later on (`SYNC_IOC_SET_DEADLINE`, a syncobj wait with a deadline, a
//! consumer's deadline passed on to the job it waits for). The fence's data is a [`HwDeadline`]
//! cell: while the entry is on the hardware it names the work queue and the entry's stamp, and
//! the deadline goes out at once, as a relative time (the device has its own clock). A
//! firmware older than 1.7 hears nothing: the deadline then orders only the kernel's queues.
//!
//! ```text
//!  waiting --submit(queue, stamp)--> on the hardware --completed or failed--> done
//!     \---------------------------- discarded (never submitted) -------------^
//! ```
//!
//! Lock order: the cell's lock, then the work queue's (the deadline is posted under both, so
//! the message carries the queue's current `wptr`). The work queue takes the cell's lock only
//! with its own released.

use kernel::{
    dma_fence::DeadlineNotify,
    new_spinlock_irq,
    prelude::*,
    sync::{Arc, SpinLockIrq},
    time::{Instant, Monotonic},
};

use crate::hwqueue::HwQueue;

/// Where a hardware fence's deadline goes.
enum Target {
    /// Not submitted yet.
    Waiting,
    /// On the hardware: the work queue and the stamp its entry completes at.
    OnHardware(Arc<HwQueue>, u32),
    /// Completed, failed or never submitted: a deadline has nothing left to change.
    Done,
}

/// The data of a job's hardware fence.
#[pin_data]
pub(crate) struct HwDeadline {
    #[pin]
    target: SpinLockIrq<Target>,
}

impl HwDeadline {
    /// A cell for a job not yet submitted.
    pub(crate) fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                target <- new_spinlock_irq!(Target::Waiting),
            }),
            GFP_KERNEL,
        )
    }

    /// The job's entry was written to `queue` and completes at `stamp`; the queue's lock is not
    /// held. Nothing if it has already completed.
    pub(crate) fn attach(&self, queue: &Arc<HwQueue>, stamp: u32) {
        let mut t = self.target.lock();
        if matches!(*t, Target::Waiting) {
            *t = Target::OnHardware(queue.clone(), stamp);
        }
    }

    /// The entry left the hardware; the queue's lock is not held. Returns the queue reference
    /// the cell held, for the caller to drop where dropping it may free the queue.
    #[must_use]
    pub(crate) fn detach(&self) -> Option<Arc<HwQueue>> {
        match core::mem::replace(&mut *self.target.lock(), Target::Done) {
            Target::OnHardware(q, _) => Some(q),
            Target::Waiting | Target::Done => None,
        }
    }
}

/// A hardware fence's data: its [`HwDeadline`] cell, shared with the job's record on the work
/// queue.
pub(crate) struct HwFenceData(pub(crate) Arc<HwDeadline>);

impl DeadlineNotify for HwFenceData {
    fn deadline_set(&self, deadline: Instant<Monotonic>) {
        let t = self.0.target.lock();
        if let Target::OnHardware(q, stamp) = &*t {
            q.post_deadline(*stamp, deadline);
        }
    }
}

/// Microseconds from now until `deadline`, as a pipe message carries them: negative if it has
/// passed, never 0 (which means no deadline), saturated to the field.
pub(crate) fn due_us(deadline: Instant<Monotonic>, now: Instant<Monotonic>) -> i32 {
    let us = (deadline - now).as_nanos() / 1000;
    match i32::try_from(us) {
        Ok(0) => -1,
        Ok(us) => us,
        Err(_) if us < 0 => i32::MIN,
        Err(_) => i32::MAX,
    }
}
