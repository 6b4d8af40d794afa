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
    sync::atomic::{AtomicBool, Ordering},
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

    /// Maps the `len` bytes of guest memory at bus address `addr`, as a bus master, for
    /// copying from any thread without QEMU's bus: `None`, with no access made, unless every
    /// byte is RAM that can be read and written directly (MMIO, ROM and unbacked addresses
    /// are not). The memory stays mapped until the [`DmaRam`] is dropped.
    fn dma_map_ram(&self, addr: u64, len: usize) -> Option<DmaRam> {
        assert!(bql_locked());
        let dev = self.upcast().as_mut_ptr();
        // SAFETY: `bus_master_as` is an address space embedded in the live device.
        let space = unsafe { addr_of_mut!((*dev).bus_master_as) };
        let mut ram = DmaRam {
            space,
            parts: Vec::new(),
            written: AtomicBool::new(false),
        };
        let mut done = 0usize;
        while done < len {
            // CAST: `usize` and `u64` have the same width on every host QEMU supports.
            let mut plen = (len - done) as u64;
            // Mapped for writing, so that nothing is read at a region that is not RAM (a
            // bounce buffer for reading would read it now); `Drop` says what was written.
            // SAFETY: `space` is live; `plen` is a valid in/out pointer.
            let ptr = unsafe {
                bindings::address_space_map(space, addr + done as u64, &mut plen, true, dma_attrs())
            };
            if ptr.is_null() || plen == 0 {
                return None;
            }
            let mut offset = 0;
            // SAFETY: `ptr` was returned by `address_space_map`; the call only looks it up.
            let direct = unsafe { !bindings::memory_region_from_host(ptr, &mut offset).is_null() };
            // CAST: at most `len - done`.
            let part = (ptr.cast::<u8>(), plen as usize);
            if !direct {
                // A bounce buffer: give it back without writing anything.
                // SAFETY: `ptr` and `plen` are what `address_space_map` returned.
                unsafe { bindings::address_space_unmap(space, ptr, plen, false, 0) };
                return None;
            }
            ram.parts.push(part);
            done += part.1;
        }
        Some(ram)
    }
}

impl<R: ObjectDeref> PCIDeviceMethods for R where R::Target: IsA<PCIDevice> {}

/// Guest RAM mapped by [`PCIDeviceMethods::dma_map_ram`]: host memory to copy bytes in and
/// out of, from any thread. It must be dropped with the BQL held (unmapping marks written
/// pages dirty and drops the memory region's reference); one dropped without it stays mapped,
/// and the drop is logged.
#[derive(Debug)]
pub struct DmaRam {
    space: *mut bindings::AddressSpace,
    /// Host address and length of each piece, in bus order.
    parts: Vec<(*mut u8, usize)>,
    /// Whether [`DmaRam::write`] was called: unmapping then marks the pages dirty.
    written: AtomicBool,
}

// SAFETY: the pieces are guest RAM that stays mapped (its memory region referenced) until
// `drop`, so copying through them is valid on any thread; `drop` itself checks for the BQL.
unsafe impl Send for DmaRam {}

impl DmaRam {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.parts.iter().map(|p| p.1).sum()
    }

    /// Whether nothing is mapped.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Calls `f(host address, offset in the access, length)` for the pieces the `len` bytes
    /// at `offset` cover.
    ///
    /// # Panics
    ///
    /// If the range runs past the end of the mapping.
    fn pieces(&self, offset: usize, len: usize, mut f: impl FnMut(*mut u8, usize, usize)) {
        assert!(offset + len <= self.len(), "access past the DMA mapping");
        let (mut skip, mut at) = (offset, 0);
        for &(ptr, n) in &self.parts {
            if at == len {
                break;
            }
            if skip >= n {
                skip -= n;
                continue;
            }
            let count = (n - skip).min(len - at);
            // SAFETY: `skip + count <= n`, inside the piece.
            f(unsafe { ptr.add(skip) }, at, count);
            (skip, at) = (0, at + count);
        }
    }

    /// Copies the bytes at `offset` into `buf`.
    ///
    /// # Panics
    ///
    /// If the range runs past the end of the mapping.
    pub fn read(&self, offset: usize, buf: &mut [u8]) {
        self.pieces(offset, buf.len(), |host, at, n| {
            // SAFETY: `host` is valid for `n` bytes of mapped guest RAM and `buf` for
            // `at + n`; guest RAM is only ever copied, never referenced, because the guest
            // may write it at any time, as it may beside any DMA.
            unsafe { std::ptr::copy_nonoverlapping(host, buf.as_mut_ptr().add(at), n) };
        });
    }

    /// Copies `buf` to `offset`.
    ///
    /// # Panics
    ///
    /// If the range runs past the end of the mapping.
    pub fn write(&self, offset: usize, buf: &[u8]) {
        self.written.store(true, Ordering::Relaxed);
        self.pieces(offset, buf.len(), |host, at, n| {
            // SAFETY: as in `read`, with the roles of the buffers swapped.
            unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr().add(at), host, n) };
        });
    }
}

impl Drop for DmaRam {
    fn drop(&mut self) {
        if !bql_locked() {
            crate::log_mask_ln!(
                crate::log::Log::GuestError,
                "DMA mapping dropped without the BQL; left mapped"
            );
            return;
        }
        let written = self.written.load(Ordering::Relaxed);
        for &(ptr, n) in &self.parts {
            let access = if written { n as u64 } else { 0 };
            // SAFETY: each piece is what `address_space_map` returned, unmapped once; for RAM
            // the address space is not dereferenced (the piece's region is found from `ptr`).
            unsafe {
                bindings::address_space_unmap(self.space, ptr.cast(), n as u64, written, access)
            };
        }
    }
}

/// Attributes of a DMA access: `MEMTXATTRS_UNSPECIFIED`, as `pci_dma_rw()` uses.
fn dma_attrs() -> MemTxAttrs {
    MemTxAttrs {
        unspecified: true,
        ..Default::default()
    }
}
