// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Access to guest memory as the device's bus master sees it.
//!
//! The QEMU shell implements [`Memory`] with DMA through the PCI function's bus-master address
//! space; host tests use [`Ram`]. Every access the firmware makes goes through this trait, so an
//! address outside guest RAM is an error the firmware reports, never undefined behaviour.

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
#[derive(Clone, Debug)]
pub struct Ram {
    base: u64,
    bytes: Vec<u8>,
    /// Number of accesses refused, for tests that check nothing strayed.
    pub refused: u64,
}

impl Ram {
    /// `size` zeroed bytes starting at bus address `base`.
    pub fn new(base: u64, size: usize) -> Self {
        Self {
            base,
            bytes: vec![0; size],
            refused: 0,
        }
    }

    /// The byte range of `len` bytes at `address`, if it lies inside the RAM.
    fn range(&self, address: u64, len: usize) -> Option<core::ops::Range<usize>> {
        let start = usize::try_from(address.checked_sub(self.base)?).ok()?;
        let end = start.checked_add(len)?;
        (end <= self.bytes.len()).then_some(start..end)
    }

    /// The RAM's contents.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl Memory for Ram {
    fn read(&mut self, address: u64, buf: &mut [u8]) -> Result<(), BusError> {
        match self.range(address, buf.len()) {
            Some(r) => {
                buf.copy_from_slice(&self.bytes[r]);
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
                self.bytes[r].copy_from_slice(buf);
                Ok(())
            }
            None => {
                self.refused += 1;
                Err(BusError { address })
            }
        }
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
}
