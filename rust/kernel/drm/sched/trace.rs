// SPDX-License-Identifier: GPL-2.0

//! The scheduler's tracepoints (`vagx_sched:*`, defined in `include/trace/events/vagx_sched.h`
//! and created in `sched_glue.c`), with safe wrappers.
//!
//! The `vagx_sched` prefix is kept for compatibility (see `params.rs`).
//!
//! A job is named by its finished fence, `context:seqno`, as drm_sched's events name theirs.
//! A disabled tracepoint costs one static branch.

use crate::{
    ffi::c_char,
    str::{CStr, CStrExt},
};

// The kernel's `declare_trace!` expands our arguments inside its `unsafe` block, which clippy
// reports on every use; the arguments here are plain identifiers of integers and pointers.
crate::declare_trace! {
    /// # Safety
    ///
    /// `name` must point to a NUL-terminated string valid for the call.
    #[allow(clippy::macro_metavars_in_unsafe)]
    unsafe fn vagx_sched_job_queue(
        name: *const c_char, entity: u64, ctx: u64, seqno: u64, credits: u32, queued: u32
    );
    /// # Safety
    ///
    /// Always safe to call (the macro makes every tracepoint function `unsafe`).
    #[allow(clippy::macro_metavars_in_unsafe)]
    unsafe fn vagx_sched_job_add_dep(ctx: u64, seqno: u64, dep_ctx: u64, dep_seqno: u64);
    /// # Safety
    ///
    /// Always safe to call.
    #[allow(clippy::macro_metavars_in_unsafe)]
    unsafe fn vagx_sched_job_unschedulable(ctx: u64, seqno: u64, dep_ctx: u64, dep_seqno: u64);
    /// # Safety
    ///
    /// `name` must point to a NUL-terminated string valid for the call.
    #[allow(clippy::macro_metavars_in_unsafe)]
    unsafe fn vagx_sched_job_run(
        name: *const c_char, entity: u64, ctx: u64, seqno: u64, credits: u32, credits_used: u32
    );
    /// # Safety
    ///
    /// Always safe to call.
    #[allow(clippy::macro_metavars_in_unsafe)]
    unsafe fn vagx_sched_job_done(ctx: u64, seqno: u64, error: i32, gpu_ns: u64);
    /// # Safety
    ///
    /// `name` must point to a NUL-terminated string valid for the call.
    #[allow(clippy::macro_metavars_in_unsafe)]
    unsafe fn vagx_sched_job_timeout(name: *const c_char, ctx: u64, seqno: u64, status: i32);
}

/// A job's name in the events: its finished fence's context and seqno.
#[derive(Clone, Copy, Default)]
pub(crate) struct JobId {
    pub(crate) ctx: u64,
    pub(crate) seqno: u64,
}

pub(crate) fn job_queue(sched: &CStr, entity: usize, job: JobId, credits: u32, queued: usize) {
    // SAFETY: `sched` is a NUL-terminated string that outlives the call.
    unsafe {
        vagx_sched_job_queue(
            sched.as_char_ptr(),
            entity as u64,
            job.ctx,
            job.seqno,
            credits,
            queued as u32,
        )
    }
}

pub(crate) fn job_add_dep(job: JobId, dep_ctx: u64, dep_seqno: u64) {
    // SAFETY: The tracepoint takes only integers.
    unsafe { vagx_sched_job_add_dep(job.ctx, job.seqno, dep_ctx, dep_seqno) }
}

pub(crate) fn job_unschedulable(job: JobId, dep_ctx: u64, dep_seqno: u64) {
    // SAFETY: The tracepoint takes only integers.
    unsafe { vagx_sched_job_unschedulable(job.ctx, job.seqno, dep_ctx, dep_seqno) }
}

pub(crate) fn job_run(sched: &CStr, entity: usize, job: JobId, credits: u32, used: u32) {
    // SAFETY: `sched` is a NUL-terminated string that outlives the call.
    unsafe {
        vagx_sched_job_run(
            sched.as_char_ptr(),
            entity as u64,
            job.ctx,
            job.seqno,
            credits,
            used,
        )
    }
}

pub(crate) fn job_done(job: JobId, error: i32, gpu_ns: u64) {
    // SAFETY: The tracepoint takes only integers.
    unsafe { vagx_sched_job_done(job.ctx, job.seqno, error, gpu_ns) }
}

pub(crate) fn job_timeout(sched: &CStr, job: JobId, status: i32) {
    // SAFETY: `sched` is a NUL-terminated string that outlives the call.
    unsafe { vagx_sched_job_timeout(sched.as_char_ptr(), job.ctx, job.seqno, status) }
}

/// Counts every `vagx_sched` event while it lives (for the scheduler's own KUnit test).
#[cfg(CONFIG_RUST_DRM_SCHED_KUNIT_TEST)]
pub(crate) mod counter {
    use crate::{bindings, error::to_result, prelude::*, types::Opaque};

    /// The events, in `enum vagx_sched_event` order.
    #[derive(Clone, Copy)]
    pub(crate) enum Event {
        Queue = bindings::vagx_sched_event_VAGX_SCHED_EV_QUEUE as isize,
        AddDep = bindings::vagx_sched_event_VAGX_SCHED_EV_ADD_DEP as isize,
        Unschedulable = bindings::vagx_sched_event_VAGX_SCHED_EV_UNSCHEDULABLE as isize,
        Run = bindings::vagx_sched_event_VAGX_SCHED_EV_RUN as isize,
        Done = bindings::vagx_sched_event_VAGX_SCHED_EV_DONE as isize,
        Timeout = bindings::vagx_sched_event_VAGX_SCHED_EV_TIMEOUT as isize,
    }

    /// Probes on every event, registered from creation until drop.
    pub(crate) struct TraceCounter {
        counts: Pin<KBox<Opaque<bindings::vagx_sched_trace_counts>>>,
    }

    impl TraceCounter {
        pub(crate) fn start() -> Result<Self> {
            let counts = KBox::pin(Opaque::zeroed(), GFP_KERNEL)?;
            // SAFETY: `counts` is zeroed (all counters 0) and pinned in a box that outlives the
            // probes: `drop` unregisters them and waits for running ones before it is freed.
            to_result(unsafe { bindings::vagx_sched_trace_count_start(counts.get()) })?;
            Ok(Self { counts })
        }

        /// How many `event`s have fired since `start`.
        pub(crate) fn count(&self, event: Event) -> u32 {
            // SAFETY: `counts` is valid; the C side reads it atomically.
            let n = unsafe { bindings::vagx_sched_trace_count(self.counts.get(), event as u32) };
            n as u32
        }

        /// The error of the last `vagx_sched_job_done` event.
        pub(crate) fn last_done_error(&self) -> i32 {
            // SAFETY: As above.
            unsafe { bindings::vagx_sched_trace_last_error(self.counts.get()) }
        }
    }

    impl Drop for TraceCounter {
        fn drop(&mut self) {
            // SAFETY: The probes were registered with `counts`; after this no probe runs.
            unsafe { bindings::vagx_sched_trace_count_stop(self.counts.get()) };
        }
    }
}
