// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The BAR0 register file: decoding of guest register accesses.

use vagx_abi::regs;

/// Why a guest register access was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioError {
    /// No register at this offset.
    Unmapped(u64),
    /// A write to a read-only register.
    ReadOnly(u64),
    /// Not a naturally aligned 32-bit access.
    BadAccess { offset: u64, size: u32 },
}

impl core::fmt::Display for MmioError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::Unmapped(offset) => write!(f, "no register at offset {offset:#x}"),
            Self::ReadOnly(offset) => write!(f, "write to read-only register at {offset:#x}"),
            Self::BadAccess { offset, size } => {
                write!(
                    f,
                    "{size}-byte access at {offset:#x}; registers take aligned 4-byte accesses"
                )
            }
        }
    }
}

/// The guest-visible registers of one vagx device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegisterFile {
    scratch: u32,
}

impl RegisterFile {
    /// A register file in its reset state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns every register to its reset value.
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// Reads the register at `offset` with an access of `size` bytes.
    ///
    /// # Errors
    ///
    /// [`MmioError`] if the access is not an aligned 4-byte access to a register.
    pub fn read(&self, offset: u64, size: u32) -> Result<u32, MmioError> {
        let reg = decode(offset, size)?;
        match reg {
            regs::ID => Ok(regs::ID_MAGIC),
            regs::ABI_VERSION => Ok(regs::ABI_VERSION_VALUE),
            regs::SCRATCH => Ok(self.scratch),
            _ => Err(MmioError::Unmapped(offset)),
        }
    }

    /// Writes `value` to the register at `offset` with an access of `size` bytes.
    ///
    /// # Errors
    ///
    /// [`MmioError`] if the access is not an aligned 4-byte access to a writable register; the
    /// register file is then unchanged.
    pub fn write(&mut self, offset: u64, size: u32, value: u32) -> Result<(), MmioError> {
        let reg = decode(offset, size)?;
        match reg {
            regs::ID | regs::ABI_VERSION => Err(MmioError::ReadOnly(offset)),
            regs::SCRATCH => {
                self.scratch = value;
                Ok(())
            }
            _ => Err(MmioError::Unmapped(offset)),
        }
    }
}

/// Checks the shape of an access and returns the register offset it names.
fn decode(offset: u64, size: u32) -> Result<usize, MmioError> {
    if size != 4 || !offset.is_multiple_of(4) {
        return Err(MmioError::BadAccess { offset, size });
    }
    usize::try_from(offset)
        .ok()
        .filter(|&o| o < vagx_abi::pci::BAR0_SIZE)
        .ok_or(MmioError::Unmapped(offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_registers_read_their_fixed_values() {
        let rf = RegisterFile::new();
        assert_eq!(
            rf.read(regs::ID as u64, 4),
            Ok(u32::from_le_bytes(*b"VAGX"))
        );
        assert_eq!(rf.read(regs::ABI_VERSION as u64, 4), Ok(0x0001_0000));
    }

    #[test]
    fn scratch_keeps_writes_until_reset() {
        let mut rf = RegisterFile::new();
        assert_eq!(rf.read(regs::SCRATCH as u64, 4), Ok(0));
        rf.write(regs::SCRATCH as u64, 4, 0xdead_beef).unwrap();
        assert_eq!(rf.read(regs::SCRATCH as u64, 4), Ok(0xdead_beef));
        rf.reset();
        assert_eq!(rf.read(regs::SCRATCH as u64, 4), Ok(0));
    }

    #[test]
    fn bad_accesses_are_refused_and_change_nothing() {
        let mut rf = RegisterFile::new();
        rf.write(regs::SCRATCH as u64, 4, 7).unwrap();
        let before = rf.clone();
        // (offset, size, expected error)
        let cases = [
            (regs::ID as u64, 4, MmioError::ReadOnly(0)),
            (regs::ABI_VERSION as u64, 4, MmioError::ReadOnly(4)),
            (0x0ffc, 4, MmioError::Unmapped(0xffc)),
            (0x1000, 4, MmioError::Unmapped(0x1000)),
            (u64::MAX - 3, 4, MmioError::Unmapped(u64::MAX - 3)),
            (0x9, 4, MmioError::BadAccess { offset: 9, size: 4 }),
            (0x8, 2, MmioError::BadAccess { offset: 8, size: 2 }),
            (0x8, 8, MmioError::BadAccess { offset: 8, size: 8 }),
        ];
        for (offset, size, err) in cases {
            assert_eq!(
                rf.write(offset, size, 0x1234),
                Err(err),
                "write {offset:#x}/{size}"
            );
        }
        assert_eq!(rf, before);
        assert_eq!(rf.read(0x0ffc, 4), Err(MmioError::Unmapped(0xffc)));
        assert_eq!(
            rf.read(0x2, 4),
            Err(MmioError::BadAccess { offset: 2, size: 4 })
        );
    }
}
