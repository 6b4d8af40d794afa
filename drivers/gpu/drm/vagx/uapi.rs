// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Short names for the UAPI constants of `include/uapi/drm/vagx_drm.h` (bindgen'd into
//! `kernel::uapi`).

use kernel::{prelude::*, uapi};

pub(crate) const PARAM_ABI_VERSION: u32 = uapi::drm_vagx_param_DRM_VAGX_PARAM_ABI_VERSION;
pub(crate) const PARAM_UNITS: u32 = uapi::drm_vagx_param_DRM_VAGX_PARAM_UNITS;
pub(crate) const PARAM_VA_BITS: u32 = uapi::drm_vagx_param_DRM_VAGX_PARAM_VA_BITS;
pub(crate) const PARAM_SCHED_MODE: u32 = uapi::drm_vagx_param_DRM_VAGX_PARAM_SCHED_MODE;
pub(crate) const PARAM_MAX_QUEUES: u32 = uapi::drm_vagx_param_DRM_VAGX_PARAM_MAX_QUEUES;
pub(crate) const PARAM_MAX_CMDBUF_SIZE: u32 = uapi::drm_vagx_param_DRM_VAGX_PARAM_MAX_CMDBUF_SIZE;
pub(crate) const PARAM_MAX_QUEUES_PER_FILE: u32 =
    uapi::drm_vagx_param_DRM_VAGX_PARAM_MAX_QUEUES_PER_FILE;
pub(crate) const PARAM_MAX_VMS_PER_FILE: u32 = uapi::drm_vagx_param_DRM_VAGX_PARAM_MAX_VMS_PER_FILE;

pub(crate) const SCHED_KERNEL: u32 = uapi::drm_vagx_sched_mode_DRM_VAGX_SCHED_KERNEL;
pub(crate) const SCHED_FIRMWARE: u32 = uapi::drm_vagx_sched_mode_DRM_VAGX_SCHED_FIRMWARE;

pub(crate) const BIND_OP_MAP: u32 = uapi::DRM_VAGX_VM_BIND_OP_MAP;
pub(crate) const BIND_OP_UNMAP: u32 = uapi::DRM_VAGX_VM_BIND_OP_UNMAP;
pub(crate) const BIND_READ: u32 = uapi::DRM_VAGX_VM_BIND_READ;
pub(crate) const BIND_WRITE: u32 = uapi::DRM_VAGX_VM_BIND_WRITE;

pub(crate) const PRIORITY_LOW: u32 = uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_LOW;
pub(crate) const PRIORITY_NORMAL: u32 = uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_NORMAL;
pub(crate) const PRIORITY_HIGH: u32 = uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_HIGH;

pub(crate) const PIPE_COMPUTE: u32 = uapi::DRM_VAGX_PIPE_COMPUTE;
pub(crate) const PIPE_COPY: u32 = uapi::DRM_VAGX_PIPE_COPY;

pub(crate) const SYNC_SIGNAL: u32 = uapi::DRM_VAGX_SYNC_SIGNAL;
pub(crate) const SUBMIT_NO_IMPLICIT_WAIT: u32 = uapi::DRM_VAGX_SUBMIT_NO_IMPLICIT_WAIT;

pub(crate) const QUEUE_PARAM_WEIGHT: u32 = uapi::drm_vagx_queue_param_DRM_VAGX_QUEUE_PARAM_WEIGHT;
pub(crate) const QUEUE_PARAM_PRIORITY: u32 =
    uapi::drm_vagx_queue_param_DRM_VAGX_QUEUE_PARAM_PRIORITY;

pub(crate) const QUERY_LOAD: u32 = uapi::drm_vagx_query_DRM_VAGX_QUERY_LOAD;
pub(crate) const LOAD_UNIT_BUSY: u32 = uapi::DRM_VAGX_LOAD_UNIT_BUSY;
// CAST: small constants.
pub(crate) const MAX_UNITS: usize = uapi::DRM_VAGX_MAX_UNITS as usize;
pub(crate) const NUM_PIPES: usize = uapi::DRM_VAGX_NUM_PIPES as usize;

pub(crate) const QUEUE_FAULTED: u32 = uapi::drm_vagx_queue_state_DRM_VAGX_QUEUE_FAULTED;
pub(crate) const QUEUE_TIMED_OUT: u32 = uapi::drm_vagx_queue_state_DRM_VAGX_QUEUE_TIMED_OUT;
pub(crate) const QUEUE_BANNED: u32 = uapi::drm_vagx_queue_state_DRM_VAGX_QUEUE_BANNED;
pub(crate) const QUEUE_DEVICE_LOST: u32 = uapi::drm_vagx_queue_state_DRM_VAGX_QUEUE_DEVICE_LOST;

/// `EOPNOTSUPP`, which `kernel::error::code` does not name: what the UAPI promises for a
/// control the scheduling mode does not have.
pub(crate) fn eopnotsupp() -> Error {
    // CAST: errno constants are small positive integers.
    Error::from_errno(-(uapi::EOPNOTSUPP as i32))
}
