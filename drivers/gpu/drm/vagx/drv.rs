// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The DRM device: driver features, ioctl table and the device-wide state.

use kernel::{
    drm::{
        self,
        ioctl, //
    },
    prelude::*,
    sync::Arc, //
};

use crate::{
    file::File,
    gem::Bo,
    gpu::Gpu,
    queue::KernelSched, //
};

/// The vagx DRM driver.
pub(crate) struct VagxDriver;

/// The DRM device of a vagx GPU.
pub(crate) type VagxDevice<Ctx = drm::Registered> = drm::Device<VagxDriver, Ctx>;

/// Device-wide state, shared by every client.
#[pin_data]
pub(crate) struct VagxData {
    pub(crate) gpu: Arc<Gpu>,
    /// Kernel mode's scheduler (none in firmware mode).
    pub(crate) kernel_sched: KernelSched,
    /// `DRM_VAGX_SCHED_*`.
    pub(crate) sched_mode: u32,
    /// The firmware ABI version in use: the newest the driver and the device both speak.
    pub(crate) abi_version: u32,
}

const INFO: drm::DriverInfo = drm::DriverInfo {
    major: 1,
    minor: 0,
    patchlevel: 0,
    name: c"vagx",
    desc: c"vagx virtual GPU",
};

#[vtable]
impl drm::Driver for VagxDriver {
    type Data = VagxData;
    type File = File;
    type Object<Ctx: drm::DeviceContext> = drm::gem::shmem::Object<crate::gem::BoData, Ctx>;

    const INFO: drm::DriverInfo = INFO;
    // Open files keep the module loaded.
    const THIS_MODULE: Option<&'static kernel::ThisModule> = Some(&crate::THIS_MODULE);
    const FEAT_RENDER: bool = true;
    const FEAT_SYNCOBJ: bool = true;
    const FEAT_SYNCOBJ_TIMELINE: bool = true;

    kernel::declare_drm_ioctls! {
        (VAGX_GET_PARAM, drm_vagx_get_param, ioctl::RENDER_ALLOW, File::get_param),
        (VAGX_GEM_CREATE, drm_vagx_gem_create, ioctl::RENDER_ALLOW, File::gem_create),
        (VAGX_GEM_MMAP_OFFSET, drm_vagx_gem_mmap_offset, ioctl::RENDER_ALLOW, File::gem_mmap_offset),
        (VAGX_VM_CREATE, drm_vagx_vm_create, ioctl::RENDER_ALLOW, File::vm_create),
        (VAGX_VM_DESTROY, drm_vagx_vm_destroy, ioctl::RENDER_ALLOW, File::vm_destroy),
        (VAGX_VM_BIND, drm_vagx_vm_bind, ioctl::RENDER_ALLOW, File::vm_bind),
        (VAGX_QUEUE_CREATE, drm_vagx_queue_create, ioctl::RENDER_ALLOW, File::queue_create),
        (VAGX_QUEUE_DESTROY, drm_vagx_queue_destroy, ioctl::RENDER_ALLOW, File::queue_destroy),
        (VAGX_SUBMIT, drm_vagx_submit, ioctl::RENDER_ALLOW, File::submit),
        (VAGX_QUEUE_GET_STATUS, drm_vagx_queue_get_status, ioctl::RENDER_ALLOW, File::queue_get_status),
        (VAGX_DEVICE_QUERY, drm_vagx_device_query, ioctl::RENDER_ALLOW, File::device_query),
        (VAGX_QUEUE_SET_PARAM, drm_vagx_queue_set_param, ioctl::RENDER_ALLOW, File::queue_set_param),
    }
}

// The buffer object type the ioctls use is the driver's registered object type.
const _: fn(&Bo) -> &<VagxDriver as drm::Driver>::Object<drm::Registered> = |b| b;
