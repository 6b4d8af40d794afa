// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Decoding of guest register accesses.

use vagx_abi::pci;

/// Why a guest register access was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioError {
    /// No register at this offset.
    Unmapped(u64),
    /// A write to a read-only register.
    ReadOnly(u64),
    /// Not a naturally aligned 32-bit access.
    BadAccess { offset: u64, size: u32 },
    /// A value the register does not accept.
    BadValue { offset: u64, value: u32 },
}

impl core::fmt::Display for MmioError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::Unmapped(offset) => write!(f, "no register at offset {offset:#x}"),
            Self::ReadOnly(offset) => write!(f, "write to read-only register at {offset:#x}"),
            Self::BadAccess { offset, size } => write!(
                f,
                "{size}-byte access at {offset:#x}; registers take aligned 4-byte accesses"
            ),
            Self::BadValue { offset, value } => {
                write!(
                    f,
                    "value {value:#x} not accepted by the register at {offset:#x}"
                )
            }
        }
    }
}

/// Checks the shape of an access and returns the register offset it names.
///
/// # Errors
///
/// [`MmioError::BadAccess`] for other than aligned 4-byte accesses, [`MmioError::Unmapped`]
/// beyond BAR0.
pub fn decode(offset: u64, size: u32) -> Result<usize, MmioError> {
    if size != 4 || !offset.is_multiple_of(4) {
        return Err(MmioError::BadAccess { offset, size });
    }
    usize::try_from(offset)
        .ok()
        .filter(|&o| o < pci::BAR0_SIZE)
        .ok_or(MmioError::Unmapped(offset))
}
