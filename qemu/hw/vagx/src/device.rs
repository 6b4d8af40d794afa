// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The vagx PCI function: QOM type, BAR0 and MMIO dispatch into the firmware model.

use std::{ffi::CStr, ptr::addr_of_mut};

use qemu_api::{
    bindings::InterfaceInfo,
    cell::BqlRefCell,
    log::Log,
    log_mask_ln,
    memory::{hwaddr, MemoryRegion, MemoryRegionOps, MemoryRegionOpsBuilder},
    pci::{
        PCIDevice, PCIDeviceClass, PCIDeviceImpl, PCIDeviceMethods, PCIIdentity,
        CONVENTIONAL_PCI_INTERFACES,
    },
    prelude::*,
    qdev::{DeviceImpl, DeviceState, ResetType, ResettablePhasesImpl},
    qom::{ObjectImpl, ParentField},
};
use vagx_abi::pci as ids;
use vagx_fw::mmio::RegisterFile;

/// State of one vagx device.
#[repr(C)]
#[derive(qemu_api_macros::Object)]
pub struct VagxState {
    parent_obj: ParentField<PCIDevice>,
    /// BAR0: the register window.
    bar0: MemoryRegion,
    /// Guest-visible registers; borrowed only inside an MMIO callback or reset.
    regs: BqlRefCell<RegisterFile>,
}

qom_isa!(VagxState: PCIDevice, DeviceState, Object);

// SAFETY: `VagxState` is `#[repr(C)]` and starts with its parent, a `PCIDevice`, as QOM
// requires; the class struct is the parent's because the device adds no virtual methods.
unsafe impl ObjectType for VagxState {
    type Class = PCIDeviceClass;
    const TYPE_NAME: &'static CStr = crate::TYPE_VAGX;
}

impl ObjectImpl for VagxState {
    type ParentType = PCIDevice;

    const INSTANCE_INIT: Option<unsafe fn(&mut Self)> = Some(Self::init);
    const INTERFACES: *mut InterfaceInfo = CONVENTIONAL_PCI_INTERFACES.as_ptr();
    const CLASS_INIT: fn(&mut Self::Class) = Self::Class::class_init::<Self>;
}

impl DeviceImpl for VagxState {}

impl ResettablePhasesImpl for VagxState {
    const HOLD: Option<fn(&Self, ResetType)> = Some(Self::reset_hold);
}

impl PCIDeviceImpl for VagxState {
    const IDENTITY: PCIIdentity = PCIIdentity {
        vendor_id: ids::VENDOR_ID,
        device_id: ids::DEVICE_ID,
        revision: ids::REVISION,
        // CAST: the class code's base class and subclass are its upper 16 bits.
        class_id: (ids::CLASS_CODE >> 8) as u16,
        subsystem_vendor_id: ids::VENDOR_ID,
        subsystem_id: ids::DEVICE_ID,
    };
    const PCI_REALIZE: Option<fn(&Self) -> Result<(), &'static CStr>> = Some(Self::realize);
}

impl VagxState {
    /// QOM instance init: creates BAR0's memory region.
    ///
    /// # Safety
    ///
    /// Called by QOM once, on zeroed memory of a new instance, before any other method.
    unsafe fn init(&mut self) {
        static VAGX_BAR0_OPS: MemoryRegionOps<VagxState> =
            MemoryRegionOpsBuilder::<VagxState>::new()
                .read(&VagxState::read)
                .write(&VagxState::write)
                .little_endian()
                // Every size reaches the callbacks so that bad ones are reported, not dropped.
                .valid_sizes(1, 8)
                .impl_sizes(1, 8)
                .build();

        // SAFETY: `self` is the instance being initialised, valid for the whole call; the
        // region is a field of it and so lives as long as its owner.
        let owner = addr_of_mut!(*self);
        MemoryRegion::init_io(
            // SAFETY: as above; no other reference to the field exists during init.
            unsafe { &mut *addr_of_mut!(self.bar0) },
            owner,
            &VAGX_BAR0_OPS,
            "vagx-bar0",
            ids::BAR0_SIZE as u64,
        );
        // SAFETY: the field is zeroed memory without a destructor to run; write a proper value
        // without dropping the old one.
        unsafe { addr_of_mut!(self.regs).write(BqlRefCell::new(RegisterFile::new())) };
    }

    fn realize(&self) -> Result<(), &'static CStr> {
        self.register_memory_bar(0, &self.bar0);
        Ok(())
    }

    fn reset_hold(&self, _type: ResetType) {
        self.regs.borrow_mut().reset();
    }

    fn read(&self, offset: hwaddr, size: u32) -> u64 {
        match self.regs.borrow().read(offset, size) {
            Ok(value) => u64::from(value),
            Err(err) => {
                log_mask_ln!(Log::GuestError, "vagx: refused BAR0 read: {err}");
                0
            }
        }
    }

    fn write(&self, offset: hwaddr, value: u64, size: u32) {
        // CAST: registers are 32 bits; wider accesses are refused by the register file.
        if let Err(err) = self.regs.borrow_mut().write(offset, size, value as u32) {
            log_mask_ln!(
                Log::GuestError,
                "vagx: refused BAR0 write of {value:#x}: {err}"
            );
        }
    }
}
