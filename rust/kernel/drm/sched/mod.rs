// SPDX-License-Identifier: GPL-2.0

//! A GPU job scheduler written in Rust, in the style of `drm_sched`.
//!
//! - [`Scheduler`]: one hardware ring or firmware queue, with a credit limit, a timeout, a
//!   policy and a [`Backend`] that runs jobs;
//! - [`Entity`]: one client's ordered job stream, with a [`Priority`];
//! - [`Job`]: created with credits and the driver's data, given dependencies, then armed and
//!   pushed under the entity's [`SubmitGuard`]; its finished fence reports the outcome.
//!
//! The design keeps `drm_sched`'s semantics and drops its known problems: no allocation after
//! a job is created (room in every queue is reserved then), fences that never need
//! re-initialising, teardown with jobs in flight that cancels through the backend and frees
//! everything, fence callbacks that cannot outlive what they touch, and a worker that fills
//! every free credit and frees every finished job in one invocation.
//!
//! See `Documentation/gpu/vagx-sched.rst`.

mod entity;
mod job;
mod policy;
mod ring;
mod scheduler;

#[cfg(CONFIG_RUST_DRM_SCHED_KUNIT_TEST)]
mod mock;
#[cfg(CONFIG_RUST_DRM_SCHED_KUNIT_TEST)]
mod tests_basic;
#[cfg(CONFIG_RUST_DRM_SCHED_KUNIT_TEST)]
mod tests_scheduler;

pub use entity::{Entity, SubmitGuard};
pub use job::{ArmedJob, Job};
pub use policy::PolicyKind;
pub use scheduler::{Backend, Scheduler, SchedulerConfig, TimeoutStatus};

/// The priority of an entity. Under RR and FIFO a higher priority always goes first; under
/// FAIR it weighs the GPU time an entity is charged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Priority {
    /// The kernel's own work (never banned).
    Kernel = 0,
    /// High priority.
    High = 1,
    /// Normal priority.
    Normal = 2,
    /// Low priority.
    Low = 3,
}

impl Priority {
    /// All priorities, highest first.
    pub const ALL: [Priority; 4] = [Self::Kernel, Self::High, Self::Normal, Self::Low];
}
