// SPDX-License-Identifier: GPL-2.0

//! The scheduler's parameter, `vagx_sched.policy` (kept in `sched_glue.c`: the scheduler is
//! built into the kernel, and a built-in parameter is a C object).
//!
//! Why a generic library carries a driver's prefix: it was born in the vagx project, and its
//! parameter and its tracepoints (`vagx_sched:*`, [`super::trace`]) are interfaces that boot
//! command lines, benchmarks and trace tools already name. They keep the name so that nothing
//! outside breaks; a rename would come with aliases, as a C subsystem's would.

use super::PolicyKind;
use crate::bindings;

impl PolicyKind {
    /// The policy chosen by `vagx_sched.policy=` (`rr`, `fifo` or `fair`; FIFO by default, as
    /// drm_sched's). It can be changed at run time through
    /// `/sys/module/vagx_sched/parameters/policy`; schedulers created afterwards get it.
    pub fn module_default() -> Self {
        // SAFETY: A plain C function without arguments that reads an int.
        match unsafe { bindings::vagx_sched_default_policy() } {
            0 => Self::RoundRobin,
            2 => Self::Fair,
            _ => Self::Fifo,
        }
    }
}
