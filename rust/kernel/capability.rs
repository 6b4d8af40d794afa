// SPDX-License-Identifier: GPL-2.0

//! Capabilities of the current task.
//!
//! C header: [`include/linux/capability.h`](srctree/include/linux/capability.h)

use crate::bindings;

/// A capability, as `CAP_*` in `include/uapi/linux/capability.h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capability(u32);

impl Capability {
    /// Raise the priority of processes and set realtime scheduling (`CAP_SYS_NICE`); DRM drivers
    /// ask for it before giving a context a high priority.
    pub const SYS_NICE: Self = Self(bindings::CAP_SYS_NICE);
    /// Administration (`CAP_SYS_ADMIN`).
    pub const SYS_ADMIN: Self = Self(bindings::CAP_SYS_ADMIN);
}

/// Whether the current task has `cap` in the initial user namespace, as C's `capable()` (which
/// also marks the task as having used it, for auditing).
pub fn capable(cap: Capability) -> bool {
    // CAST: capability numbers are small.
    // SAFETY: `capable` only reads the current task's credentials; any value is accepted.
    unsafe { bindings::capable(cap.0 as i32) }
}
