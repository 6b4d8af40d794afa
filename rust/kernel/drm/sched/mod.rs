// SPDX-License-Identifier: GPL-2.0

//! A GPU job scheduler written in Rust, in the style of `drm_sched`.
//!
//! - [`Scheduler`]: one hardware ring or firmware queue, with a credit limit, a timeout, a
//!   policy and a [`Backend`] that runs jobs;
//! - [`Entity`]: one client's ordered job stream, with a [`Priority`] and a [`Weight`];
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

mod backend;
mod deadline;
mod dependency;
mod direct;
mod entity;
mod entity_table;
mod fifo;
mod job;
mod params;
mod policy;
mod priority;
mod run;
mod scheduler;
mod shared;
mod teardown;
mod timeout;
mod trace;
mod wait_histogram;
mod weight;

#[cfg(CONFIG_RUST_DRM_SCHED_KUNIT_TEST)]
mod mock;
#[cfg(CONFIG_RUST_DRM_SCHED_KUNIT_TEST)]
mod tests_basic;
#[cfg(CONFIG_RUST_DRM_SCHED_KUNIT_TEST)]
mod tests_concurrent;
#[cfg(CONFIG_RUST_DRM_SCHED_KUNIT_TEST)]
mod tests_control;
#[cfg(CONFIG_RUST_DRM_SCHED_KUNIT_TEST)]
mod tests_deadline;
#[cfg(CONFIG_RUST_DRM_SCHED_KUNIT_TEST)]
mod tests_deps;
#[cfg(CONFIG_RUST_DRM_SCHED_KUNIT_TEST)]
mod tests_scheduler;

pub use backend::{Backend, TimeoutStatus};
pub use entity::{Entity, SubmitGuard, Usage};
pub use fifo::Fifo;
pub use job::{ArmedJob, Job};
pub use policy::PolicyKind;
pub use priority::Priority;
pub use scheduler::{DebugfsView, Scheduler, SchedulerConfig};
pub use wait_histogram::WaitHistogram;
pub use weight::Weight;
