// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Memory shared with the firmware: DMA-coherent buffers read and written as ABI structures.
//!
//! This is part of the firmware-ABI layer: the firmware may write any of this memory at any
//! time, so every access is a volatile copy of a [`Pod`] value (valid whatever the bytes are),
//! bounds- and alignment-checked, and ring pointers are accessed with acquire/release ordering.

use core::sync::atomic::{
    AtomicU32,
    Ordering, //
};

use kernel::{
    device::{
        Bound,
        Device, //
    },
    dma::Coherent,
    prelude::*, //
};

use crate::abi::pod::Pod;

/// A zeroed DMA-coherent buffer the firmware reads or writes.
pub(crate) struct FwMem {
    /// Allocated as `u64`s so that every offset that is a multiple of 8 is 8-byte aligned.
    mem: Coherent<[u64]>,
}

impl FwMem {
    /// Allocates `size` zeroed bytes (rounded up to a multiple of 8). Allocations of a page or
    /// more are page aligned.
    pub(crate) fn new(dev: &Device<Bound>, size: usize) -> Result<Self> {
        let words = size.div_ceil(8).max(1);
        Ok(Self {
            mem: Coherent::zeroed_slice(dev, words, GFP_KERNEL)?,
        })
    }

    /// The buffer's bus address, as the device sees it.
    pub(crate) fn bus_addr(&self) -> u64 {
        self.mem.dma_handle()
    }

    /// Size in bytes.
    pub(crate) fn size(&self) -> usize {
        self.mem.len() * 8
    }

    /// The address of a `T` at `offset`, if it lies inside the buffer and is aligned.
    fn at<T>(&self, offset: usize) -> Result<*mut T> {
        let end = offset.checked_add(size_of::<T>()).ok_or(EINVAL)?;
        if end > self.size() || offset % align_of::<T>() != 0 || align_of::<T>() > 8 {
            return Err(EINVAL);
        }
        // SAFETY: `offset` is inside the allocation (checked above), so the result stays in it.
        Ok(unsafe { self.mem.as_mut_ptr().cast::<u8>().add(offset) }.cast::<T>())
    }

    /// Reads the `T` at `offset`.
    pub(crate) fn read<T: Pod>(&self, offset: usize) -> Result<T> {
        let ptr = self.at::<T>(offset)?;
        // SAFETY: `ptr` is in bounds and aligned (`at`); the memory is DMA-coherent and may be
        // written by the device concurrently, for which a volatile read is the kernel's
        // READ_ONCE; `T: Pod` accepts whatever bytes it reads.
        Ok(unsafe { ptr.read_volatile() })
    }

    /// Writes `value` at `offset`.
    pub(crate) fn write<T: Pod>(&self, offset: usize, value: &T) -> Result {
        let ptr = self.at::<T>(offset)?;
        // SAFETY: `ptr` is in bounds and aligned (`at`); a volatile write is the kernel's
        // WRITE_ONCE for memory the device may read concurrently.
        unsafe { ptr.write_volatile(*value) };
        Ok(())
    }

    /// The `u32` at `offset` as an atomic, for ring pointers and stamps.
    fn atomic(&self, offset: usize) -> Result<&AtomicU32> {
        let ptr = self.at::<u32>(offset)?;
        // SAFETY: `ptr` is in bounds and 4-byte aligned (`at`) and lives as long as `self`;
        // the device accesses it with single aligned 32-bit accesses, as an atomic does.
        Ok(unsafe { AtomicU32::from_ptr(ptr) })
    }

    /// Reads the `u32` at `offset` with acquire ordering: what the device wrote before it is
    /// visible after it.
    pub(crate) fn load_acquire(&self, offset: usize) -> Result<u32> {
        Ok(self.atomic(offset)?.load(Ordering::Acquire))
    }

    /// Writes the `u32` at `offset` with release ordering: what was written before it is
    /// visible to the device first.
    pub(crate) fn store_release(&self, offset: usize, value: u32) -> Result {
        self.atomic(offset)?.store(value, Ordering::Release);
        Ok(())
    }
}
