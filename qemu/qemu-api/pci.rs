// Copyright 2026 The vagx authors
// SPDX-License-Identifier: GPL-2.0-or-later

//! Bindings to write PCI devices in Rust: class setup, BARs and bus-master DMA.
//!
//! Added to `qemu-api` by vagx: QEMU 10.0 has no PCI wrapper, and the orphan rule keeps the
//! trait implementations that QOM needs inside this crate. The surface is what a simple
//! bus-mastering PCI function needs, nothing more.

use std::{
    ffi::{c_void, CStr},
    os::raw::c_int,
    ptr::{addr_of_mut, NonNull},
};

pub use bindings::PCIDeviceClass;

use crate::{
    bindings::{self, Error, InterfaceInfo},
    cell::{bql_locked, Opaque},
    memory::{MemTxAttrs, MemoryRegion},
    prelude::*,
    qdev::{DeviceImpl, DeviceState},
};

/// A safe wrapper around [`bindings::PCIDevice`].
#[repr(transparent)]
#[derive(Debug, qemu_api_macros::Wrapper)]
pub struct PCIDevice(Opaque<bindings::PCIDevice>);

// SAFETY: like `DeviceState`, a `PCIDevice` is only accessed under the BQL or through
// thread-safe QEMU APIs.
unsafe impl Send for PCIDevice {}
// SAFETY: see the `Send` implementation above.
unsafe impl Sync for PCIDevice {}

// SAFETY: `PCIDevice` is a transparent wrapper of the C struct registered by QOM under
// `TYPE_PCI_DEVICE`, whose class struct is `PCIDeviceClass`.
unsafe impl ObjectType for PCIDevice {
    type Class = PCIDeviceClass;
    // SAFETY: the bindgen constant is a NUL-terminated string without interior NULs.
    const TYPE_NAME: &'static CStr =
        unsafe { CStr::from_bytes_with_nul_unchecked(bindings::TYPE_PCI_DEVICE) };
}
qom_isa!(PCIDevice: DeviceState, Object);

/// A list of QOM interfaces, terminated by an entry with a null name, that can live in a
/// `static`.
#[repr(transparent)]
pub struct InterfaceList<const N: usize>(pub [InterfaceInfo; N]);

// SAFETY: the list is immutable and only holds pointers to static, NUL-terminated strings.
unsafe impl<const N: usize> Sync for InterfaceList<N> {}

impl<const N: usize> InterfaceList<N> {
    /// The pointer to store in `TypeInfo::interfaces`.
    pub const fn as_ptr(&'static self) -> *mut InterfaceInfo {
        self.0.as_ptr().cast_mut()
    }
}

/// The interfaces of a conventional (not PCI Express) PCI device.
pub static CONVENTIONAL_PCI_INTERFACES: InterfaceList<2> = InterfaceList([
    InterfaceInfo {
        type_: bindings::INTERFACE_CONVENTIONAL_PCI_DEVICE.as_ptr().cast(),
    },
    InterfaceInfo {
        type_: std::ptr::null(),
    },
]);

/// Identity of a PCI function, written into its configuration space header.
#[derive(Clone, Copy, Debug)]
pub struct PCIIdentity {
    pub vendor_id: u16,
    pub device_id: u16,
    pub revision: u8,
    /// Base class and subclass, as in the 16 high bits of the class code.
    pub class_id: u16,
    pub subsystem_vendor_id: u16,
    pub subsystem_id: u16,
}

/// Trait providing the contents of [`PCIDeviceClass`].
///
/// Devices implementing it must not set `DeviceImpl::REALIZE`: the PCI core owns the qdev
/// realize method and calls [`PCIDeviceImpl::PCI_REALIZE`] from it.
pub trait PCIDeviceImpl: DeviceImpl + IsA<PCIDevice> {
    /// Identity of the function.
    const IDENTITY: PCIIdentity;

    /// Realizes the PCI function: registers BARs, capabilities and interrupts. An `Err`
    /// fails the creation of the device with that message.
    const PCI_REALIZE: Option<fn(&Self) -> Result<(), &'static CStr>> = None;

    /// Undoes what `PCI_REALIZE` did, when the device is unplugged or destroyed.
    const PCI_EXIT: Option<fn(&Self)> = None;
}

/// # Safety
///
/// Called by the PCI core as `PCIDeviceClass::realize`, with `dev` pointing to an instance of
/// `T` and `errp` a valid error out-pointer.
unsafe extern "C" fn rust_pci_realize_fn<T: PCIDeviceImpl>(
    dev: *mut bindings::PCIDevice,
    errp: *mut *mut Error,
) {
    let Some(realize) = T::PCI_REALIZE else {
        return;
    };
    let Some(state) = NonNull::new(dev) else {
        return;
    };
    // SAFETY: QOM calls this with an instance of `T`, which starts with its `PCIDevice`.
    let state = unsafe { state.cast::<T>().as_ref() };
    if let Err(msg) = realize(state) {
        // SAFETY: `errp` comes from the caller; the format string takes one C string.
        unsafe {
            bindings::error_setg_internal(
                errp,
                c"rust/qemu-api/src/pci.rs".as_ptr(),
                0,
                c"rust_pci_realize_fn".as_ptr(),
                c"%s".as_ptr(),
                msg.as_ptr(),
            );
        }
    }
}

/// # Safety
///
/// Called by the PCI core as `PCIDeviceClass::exit`, with `dev` pointing to an instance of `T`.
unsafe extern "C" fn rust_pci_exit_fn<T: PCIDeviceImpl>(dev: *mut bindings::PCIDevice) {
    let (Some(exit), Some(state)) = (T::PCI_EXIT, NonNull::new(dev)) else {
        return;
    };
    // SAFETY: QOM calls this with an instance of `T`, which starts with its `PCIDevice`.
    exit(unsafe { state.cast::<T>().as_ref() });
}

impl PCIDeviceClass {
    /// Fill in the virtual methods and identity of `PCIDeviceClass` from the
    /// [`PCIDeviceImpl`] trait.
    pub fn class_init<T: PCIDeviceImpl>(&mut self) {
        let id = T::IDENTITY;
        self.vendor_id = id.vendor_id;
        self.device_id = id.device_id;
        self.revision = id.revision;
        self.class_id = id.class_id;
        self.subsystem_vendor_id = id.subsystem_vendor_id;
        self.subsystem_id = id.subsystem_id;
        if T::PCI_REALIZE.is_some() {
            self.realize = Some(rust_pci_realize_fn::<T>);
        }
        if T::PCI_EXIT.is_some() {
            self.exit = Some(rust_pci_exit_fn::<T>);
        }
        self.parent_class.class_init::<T>();
    }
}

/// A failed bus-master access: the address is not backed by anything the device may touch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaError(pub u32);

/// Trait for methods of [`PCIDevice`] and its subclasses.
pub trait PCIDeviceMethods: ObjectDeref
where
    Self::Target: IsA<PCIDevice>,
{
    /// Registers `region` as memory BAR `bar` (a 32-bit, non-prefetchable memory BAR).
    fn register_memory_bar(&self, bar: u8, region: &MemoryRegion) {
        assert!(bql_locked());
        // SAFETY: the device and the region are valid QOM objects that outlive the BAR (the
        // region is a field of the device).
        unsafe {
            bindings::pci_register_bar(
                self.upcast().as_mut_ptr(),
                c_int::from(bar),
                bindings::PCI_BASE_ADDRESS_SPACE_MEMORY as u8,
                region.as_mut_ptr(),
            );
        }
    }

    /// Sets up MSI-X with `vectors` vectors whose table and PBA fill BAR `bar` alone, and
    /// marks every vector used.
    ///
    /// # Errors
    ///
    /// The negative errno of `msix_init_exclusive_bar` (the machine has no MSI support).
    fn init_msix_exclusive_bar(&self, vectors: u16, bar: u8) -> Result<(), i32> {
        assert!(bql_locked());
        let dev = self.upcast().as_mut_ptr();
        // SAFETY: `dev` is a live, realizing PCI device; a null `errp` is allowed.
        let ret = unsafe {
            bindings::msix_init_exclusive_bar(dev, u32::from(vectors), bar, std::ptr::null_mut())
        };
        if ret < 0 {
            return Err(ret);
        }
        for vector in 0..vectors {
            // SAFETY: MSI-X was set up above with more than `vector` vectors.
            unsafe { bindings::msix_vector_use(dev, u32::from(vector)) };
        }
        Ok(())
    }

    /// Undoes [`init_msix_exclusive_bar`](Self::init_msix_exclusive_bar).
    fn uninit_msix_exclusive_bar(&self) {
        assert!(bql_locked());
        // SAFETY: the device is live; the call copes with MSI-X never having been set up.
        unsafe { bindings::msix_uninit_exclusive_bar(self.upcast().as_mut_ptr()) };
    }

    /// Sends MSI-X vector `vector` if MSI-X is enabled and the vector unmasked (else the
    /// vector's pending bit is set).
    fn msix_notify(&self, vector: u16) {
        assert!(bql_locked());
        let dev = self.upcast().as_mut_ptr();
        // SAFETY: the device is live; `msix_notify` ignores devices without MSI-X enabled.
        unsafe {
            if bindings::msix_enabled(dev) != 0 {
                bindings::msix_notify(dev, u32::from(vector));
            }
        }
    }

    /// Reads guest memory at bus address `addr` into `buf`, as a bus master.
    ///
    /// # Errors
    ///
    /// [`DmaError`] with the `MemTxResult` if any part of the range is not accessible.
    fn dma_read(&self, addr: u64, buf: &mut [u8]) -> Result<(), DmaError> {
        let dev = self.upcast().as_mut_ptr();
        // SAFETY: `bus_master_as` is an address space embedded in the live device; the buffer
        // is valid for `buf.len()` bytes of writes.
        let res = unsafe {
            bindings::address_space_read_full(
                addr_of_mut!((*dev).bus_master_as),
                addr,
                dma_attrs(),
                buf.as_mut_ptr().cast::<c_void>(),
                buf.len() as u64,
            )
        };
        if res == bindings::MEMTX_OK {
            Ok(())
        } else {
            Err(DmaError(res))
        }
    }

    /// Writes `buf` to guest memory at bus address `addr`, as a bus master.
    ///
    /// # Errors
    ///
    /// [`DmaError`] with the `MemTxResult` if any part of the range is not accessible.
    fn dma_write(&self, addr: u64, buf: &[u8]) -> Result<(), DmaError> {
        let dev = self.upcast().as_mut_ptr();
        // SAFETY: `bus_master_as` is an address space embedded in the live device; the buffer
        // is valid for `buf.len()` bytes of reads.
        let res = unsafe {
            bindings::address_space_write(
                addr_of_mut!((*dev).bus_master_as),
                addr,
                dma_attrs(),
                buf.as_ptr().cast::<c_void>(),
                buf.len() as u64,
            )
        };
        if res == bindings::MEMTX_OK {
            Ok(())
        } else {
            Err(DmaError(res))
        }
    }
}

impl<R: ObjectDeref> PCIDeviceMethods for R where R::Target: IsA<PCIDevice> {}

/// Attributes of a DMA access: `MEMTXATTRS_UNSPECIFIED`, as `pci_dma_rw()` uses.
fn dma_attrs() -> MemTxAttrs {
    MemTxAttrs {
        unspecified: true,
        ..Default::default()
    }
}
