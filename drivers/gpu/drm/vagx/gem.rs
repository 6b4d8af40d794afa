// SPDX-License-Identifier: GPL-2.0 OR MIT

//! GEM buffer objects: shmem-backed and zeroed, or imported from a dma-buf; mapped into the CPU
//! by mmap and into GPU VMs by `VM_BIND`.

use kernel::{
    dma_buf::DmaBuf,
    drm::{
        gem,
        DeviceContext, //
    },
    prelude::*, //
};

use crate::drv::{
    VagxDevice,
    VagxDriver, //
};

/// Where a buffer object's pages come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Made by this device (`GEM_CREATE`): its own zeroed shmem pages.
    Own,
    /// Another device's or driver's dma-buf (`DRM_IOCTL_PRIME_FD_TO_HANDLE`): its exporter's
    /// pages, mapped for this device; `writable` if the exporter allowed writes (`DRM_RDWR`).
    Imported { writable: bool },
}

/// The driver's part of a buffer object: where its pages come from (the VM keeps the
/// mappings).
#[pin_data]
pub(crate) struct BoData {
    origin: Origin,
}

impl BoData {
    /// Whether a GPU mapping of the object may allow writes: not for a dma-buf exported
    /// read-only.
    pub(crate) fn gpu_may_write(&self) -> bool {
        !matches!(self.origin, Origin::Imported { writable: false })
    }
}

impl gem::DriverObject for BoData {
    type Driver = VagxDriver;
    type Args = Origin;

    fn new<Ctx: DeviceContext>(
        _dev: &VagxDevice<Ctx>,
        _size: usize,
        origin: Origin,
    ) -> impl PinInit<Self, Error> {
        try_pin_init!(Self { origin })
    }

    /// Any dma-buf is taken (another vagx device's, udmabuf's): its pages are mapped for this
    /// device by the DRM core, and the GPU reaches them through its page tables like its own.
    fn import_args(dma_buf: &DmaBuf) -> Result<Origin> {
        Ok(Origin::Imported {
            writable: dma_buf.is_writable(),
        })
    }
}

/// A vagx buffer object.
pub(crate) type Bo = gem::shmem::Object<BoData>;
