// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Access to guest memory as the device's bus master sees it.
//!
//! The QEMU shell implements [`Memory`] with DMA through the PCI function's bus-master address
//! space; host tests use [`Ram`]. Every access the firmware makes goes through this trait, so an
//! address outside guest RAM is an error the firmware reports, never undefined behaviour.

use std::sync::{Arc, Mutex, MutexGuard};

use vagx_abi::pod::{self, Pod};

/// A bus access failed: nothing backs (part of) the range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusError {
    /// Start of the failed access.
    pub address: u64,
}

/// Guest memory as seen by the device.
pub trait Memory {
    /// Reads `buf.len()` bytes at bus address `address`.
    ///
    /// # Errors
    ///
    /// [`BusError`] if any byte of the range is not backed by memory; `buf` is then unspecified.
    fn read(&mut self, address: u64, buf: &mut [u8]) -> Result<(), BusError>;

    /// Writes `buf` at bus address `address`.
    ///
    /// # Errors
    ///
    /// [`BusError`] if any byte of the range is not backed by memory. Implementations check the
    /// whole range before writing, so a failed write changes nothing.
    fn write(&mut self, address: u64, buf: &[u8]) -> Result<(), BusError>;

    /// Maps the `len` bytes at bus address `address` for another thread, if they are plain
    /// RAM: a worker ([`crate::workers`]) then reads and writes them without the bus and
    /// without the lock the bus needs. `None` if any byte is not RAM (or the implementation
    /// maps nothing): the caller then accesses the range with [`Memory::read`] and
    /// [`Memory::write`] on its own thread. Mapping has no side effect on the memory.
    ///
    /// The memory stays mapped until the [`HostMap`] is dropped, which must happen on the
    /// caller's thread.
    fn map(&mut self, address: u64, len: usize) -> Option<Box<dyn HostMap>> {
        let _ = (address, len);
        None
    }
}

/// Guest RAM mapped into the host by [`Memory::map`]: bytes a worker thread copies in and out.
///
/// Guest memory may change under it at any time (the guest's CPUs run meanwhile, as they do
/// beside any DMA), so it is only ever copied, never borrowed.
pub trait HostMap: Send {
    /// Length of the mapping in bytes.
    fn len(&self) -> usize;

    /// Whether the mapping has no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies `buf.len()` bytes from offset `offset` of the mapping into `buf`.
    ///
    /// # Panics
    ///
    /// If the range runs past the mapping's end.
    fn read(&self, offset: usize, buf: &mut [u8]);

    /// Copies `buf` to offset `offset` of the mapping.
    ///
    /// # Panics
    ///
    /// If the range runs past the mapping's end.
    fn write(&self, offset: usize, buf: &[u8]);
}

/// Reads a [`Pod`] value at `address`.
///
/// # Errors
///
/// [`BusError`] if the range is not backed.
pub fn read_pod<T: Pod>(mem: &mut dyn Memory, address: u64) -> Result<T, BusError> {
    let mut value = pod::zeroed::<T>();
    mem.read(address, pod::as_bytes_mut(&mut value))?;
    Ok(value)
}

/// Writes a [`Pod`] value at `address`.
///
/// # Errors
///
/// [`BusError`] if the range is not backed.
pub fn write_pod<T: Pod>(mem: &mut dyn Memory, address: u64, value: &T) -> Result<(), BusError> {
    mem.write(address, pod::as_bytes(value))
}

/// Reads a little-endian `u32` at `address`.
///
/// # Errors
///
/// [`BusError`] if the range is not backed.
pub fn read_u32(mem: &mut dyn Memory, address: u64) -> Result<u32, BusError> {
    let mut b = [0u8; 4];
    mem.read(address, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

/// Writes a little-endian `u32` at `address`.
///
/// # Errors
///
/// [`BusError`] if the range is not backed.
pub fn write_u32(mem: &mut dyn Memory, address: u64, value: u32) -> Result<(), BusError> {
    mem.write(address, &value.to_le_bytes())
}

/// A contiguous block of RAM at a bus address: the test double of guest memory.
///
/// It maps its whole range for workers ([`Memory::map`]), as guest RAM in QEMU: the bytes are
/// shared with the mappings, behind a lock.
#[derive(Debug)]
pub struct Ram {
    base: u64,
    bytes: Arc<Mutex<Vec<u8>>>,
    /// Number of accesses refused, for tests that check nothing strayed.
    pub refused: u64,
}

impl Clone for Ram {
    /// A copy of the contents (not shared with the original or its mappings).
    fn clone(&self) -> Self {
        Self {
            base: self.base,
            bytes: Arc::new(Mutex::new(self.bytes().clone())),
            refused: self.refused,
        }
    }
}

impl Ram {
    /// `size` zeroed bytes starting at bus address `base`.
    pub fn new(base: u64, size: usize) -> Self {
        Self {
            base,
            bytes: Arc::new(Mutex::new(vec![0; size])),
            refused: 0,
        }
    }

    /// The byte range of `len` bytes at `address`, if it lies inside the RAM.
    fn range(&self, address: u64, len: usize) -> Option<core::ops::Range<usize>> {
        let start = usize::try_from(address.checked_sub(self.base)?).ok()?;
        let end = start.checked_add(len)?;
        (end <= self.bytes().len()).then_some(start..end)
    }

    /// The RAM's contents.
    pub fn bytes(&self) -> MutexGuard<'_, Vec<u8>> {
        self.bytes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Memory for Ram {
    fn read(&mut self, address: u64, buf: &mut [u8]) -> Result<(), BusError> {
        match self.range(address, buf.len()) {
            Some(r) => {
                buf.copy_from_slice(&self.bytes()[r]);
                Ok(())
            }
            None => {
                self.refused += 1;
                Err(BusError { address })
            }
        }
    }

    fn write(&mut self, address: u64, buf: &[u8]) -> Result<(), BusError> {
        match self.range(address, buf.len()) {
            Some(r) => {
                self.bytes()[r].copy_from_slice(buf);
                Ok(())
            }
            None => {
                self.refused += 1;
                Err(BusError { address })
            }
        }
    }

    fn map(&mut self, address: u64, len: usize) -> Option<Box<dyn HostMap>> {
        let range = self.range(address, len)?;
        Some(Box::new(RamMap {
            bytes: Arc::clone(&self.bytes),
            range,
        }))
    }
}

/// A range of a [`Ram`], mapped.
struct RamMap {
    bytes: Arc<Mutex<Vec<u8>>>,
    range: core::ops::Range<usize>,
}

impl RamMap {
    /// The RAM's bytes of the mapping's `len` bytes at `offset`.
    fn span(&self, offset: usize, len: usize) -> core::ops::Range<usize> {
        assert!(offset + len <= self.range.len(), "access past the mapping");
        self.range.start + offset..self.range.start + offset + len
    }
}

impl HostMap for RamMap {
    fn len(&self) -> usize {
        self.range.len()
    }

    fn read(&self, offset: usize, buf: &mut [u8]) {
        let span = self.span(offset, buf.len());
        buf.copy_from_slice(&self.bytes.lock().unwrap_or_else(|e| e.into_inner())[span]);
    }

    fn write(&self, offset: usize, buf: &[u8]) {
        let span = self.span(offset, buf.len());
        self.bytes.lock().unwrap_or_else(|e| e.into_inner())[span].copy_from_slice(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_refuses_accesses_outside_and_across_its_end() {
        let mut ram = Ram::new(0x1000, 0x100);
        let mut b = [0u8; 4];
        assert!(ram.read(0x1000, &mut b).is_ok());
        assert!(ram.write(0x10fc, &[1, 2, 3, 4]).is_ok());
        assert_eq!(ram.read(0x10fd, &mut b), Err(BusError { address: 0x10fd }));
        assert_eq!(ram.write(0xfff, &[0; 2]), Err(BusError { address: 0xfff }));
        assert_eq!(
            ram.read(u64::MAX - 1, &mut b),
            Err(BusError {
                address: u64::MAX - 1
            })
        );
        assert_eq!(ram.refused, 3);
        assert_eq!(read_u32(&mut ram, 0x10fc), Ok(0x0403_0201));
    }

    #[test]
    fn a_mapping_shares_the_ram_and_a_clone_does_not() {
        let mut ram = Ram::new(0x1000, 0x100);
        assert!(ram.map(0x10f0, 0x11).is_none(), "past the end");
        assert!(ram.map(0xff0, 0x10).is_none(), "before the start");
        let map = ram.map(0x1010, 0x20).expect("inside");
        assert_eq!(map.len(), 0x20);
        let copy = ram.clone();
        map.write(4, &[9, 8, 7]);
        assert_eq!(&ram.bytes()[0x14..0x17], &[9, 8, 7]);
        assert_eq!(&copy.bytes()[0x14..0x17], &[0, 0, 0]);
        write_u32(&mut ram, 0x1018, 0xaabb_ccdd).expect("write");
        let mut b = [0u8; 4];
        map.read(8, &mut b);
        assert_eq!(u32::from_le_bytes(b), 0xaabb_ccdd);
    }
}
