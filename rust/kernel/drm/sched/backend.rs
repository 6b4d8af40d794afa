// SPDX-License-Identifier: GPL-2.0

//! The driver's side of a scheduler: the [`Backend`] it implements and what its timeout
//! handler reports.

use crate::{dma_fence::Fence, prelude::*, sync::aref::ARef};

/// What the timeout handler found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutStatus {
    /// The job hung and the backend has recovered: it made the job's hardware fence signal
    /// (with an error) and the other jobs on the hardware continue.
    Reset,
    /// The job is making progress: keep it and re-arm the timer.
    NoHang,
    /// The device is gone: stop the scheduler. Jobs on the hardware are cancelled through
    /// the backend, queued ones fail with `ENODEV`, new ones are refused with `ENODEV`.
    NoDevice,
}

/// What a scheduler drives: the hardware (or firmware queue) side.
///
/// Every method is called from the scheduler's worker, in process context, inside a
/// fence-signalling section: it must not allocate with `GFP_KERNEL` or wait for fences.
pub trait Backend: Send + Sync + Sized + 'static {
    /// The driver's job data.
    type Job: Send + Sync;

    /// Starts `job` on the hardware and returns the fence that signals when it completes
    /// (with an error if it failed). An error return fails the job at once.
    fn run_job(&self, job: &Self::Job) -> Result<ARef<Fence>>;

    /// The job at the head of the hardware has run for longer than the timeout.
    fn timed_out(&self, job: &Self::Job) -> TimeoutStatus;

    /// The scheduler is going away with `job` on the hardware: make its fence signal (for
    /// example with `ECANCELED`) soon, without freeing anything.
    fn cancel_job(&self, job: &Self::Job);

    /// The in-order ring `job` runs on, if the hardware promises one: jobs that the backend
    /// puts on one ring complete in the order `run_job` was called for them, so a job that
    /// waits for a job of the same ring may start as soon as that one has started
    /// (pipelining). `None` (the default) promises nothing: every dependency is then waited
    /// for until it signals. A pipelined job whose dependency fails is failed by the
    /// scheduler with that error, before it runs if it has not started, else when it
    /// completes.
    fn ring(&self, _job: &Self::Job) -> Option<u64> {
        None
    }

    /// A fence the job must also wait for before it runs (ring space, firmware slots), or
    /// `None`. Called again, when it has signalled, until it returns `None`.
    fn prepare_job(&self, _job: &Self::Job) -> Option<ARef<Fence>> {
        None
    }

    /// The time `job` took on the hardware as the hardware counts it (its units' busy time), asked
    /// once its hardware fence has signalled; `None` (the default) if the hardware does not
    /// tell, and the scheduler counts from `run_job` to the signal. FAIR charges this time: on
    /// hardware that shares itself between the jobs it has, the time to the signal also counts
    /// the other jobs' work, so a job the hardware favours would be charged less, and shares
    /// the hardware gives by weight would compound with the scheduler's. Called with the
    /// scheduler's lock held, possibly in interrupt context: a load, no lock.
    fn hw_time_ns(&self, _job: &Self::Job) -> Option<u64> {
        None
    }

    /// Whether `run_job` and `prepare_job` may also be called in interrupt context, from the
    /// signalling of a job's hardware fence. Then a completion starts the next job at once
    /// instead of waiting for the worker, and the hardware does not idle for a kworker round
    /// trip. Such a backend's `run_job` and `prepare_job` must not sleep, allocate, or take a
    /// lock that is held with interrupts enabled, nor the hardware fence's lock.
    const RUN_IN_IRQ: bool = false;
}
