// SPDX-License-Identifier: GPL-2.0 OR MIT

//! BAR0 register offsets and fixed values.
//!
//! All registers are 32 bits wide, little endian, and accessed with naturally aligned 32-bit
//! accesses; other access sizes are ignored by the device and read as zero.

/// `ID` (read-only): [`ID_MAGIC`], the ASCII bytes `VAGX` read as a little-endian `u32`.
pub const ID: usize = 0x000;

/// `ABI_VERSION` (read-only): major version in bits 31:16, minor version in bits 15:0.
pub const ABI_VERSION: usize = 0x004;

/// `SCRATCH` (read-write): holds any value the driver writes; reset value 0.
pub const SCRATCH: usize = 0x008;

/// The value of [`ID`].
pub const ID_MAGIC: u32 = u32::from_le_bytes(*b"VAGX");

/// Major version of the ABI this source describes.
pub const ABI_MAJOR: u16 = 1;

/// Minor version of the ABI this source describes.
pub const ABI_MINOR: u16 = 0;

/// The value of [`ABI_VERSION`].
pub const ABI_VERSION_VALUE: u32 = ((ABI_MAJOR as u32) << 16) | ABI_MINOR as u32;
