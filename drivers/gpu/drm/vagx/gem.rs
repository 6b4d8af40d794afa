// SPDX-License-Identifier: GPL-2.0 OR MIT

//! GEM buffer objects: shmem-backed, zeroed, mapped into the CPU by mmap and into GPU VMs by
//! `VM_BIND`.

use kernel::{
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

/// The driver's part of a buffer object (nothing yet: the VM keeps the mappings).
#[pin_data]
pub(crate) struct BoData {}

impl gem::DriverObject for BoData {
    type Driver = VagxDriver;
    type Args = ();

    fn new<Ctx: DeviceContext>(
        _dev: &VagxDevice<Ctx>,
        _size: usize,
        _args: (),
    ) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {})
    }
}

/// A vagx buffer object.
pub(crate) type Bo = gem::shmem::Object<BoData>;
