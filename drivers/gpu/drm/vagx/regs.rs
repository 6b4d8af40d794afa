// SPDX-License-Identifier: GPL-2.0 OR MIT

//! BAR0 registers of the vagx GPU, checked against the shared ABI definition.
//!
//! # Definitions
//!
//! - ABI: application binary interface, here the firmware interface of
//!   `Documentation/gpu/vagx-firmware.rst`.

use kernel::{
    fmt,
    io::register, //
};

use crate::abi;

register! {
    /// Identification register; reads as [`abi::regs::ID_MAGIC`].
    pub(crate) ID(u32) @ 0x000 {
        /// The magic value `VAGX`.
        31:0 magic;
    }

    /// Version of the firmware ABI the device implements.
    pub(crate) ABI_VERSION(u32) @ 0x004 {
        /// Incompatible revisions of the ABI.
        31:16 major;
        /// Backwards-compatible additions to the ABI.
        15:0 minor;
    }

    /// Scratch register: keeps what the driver writes.
    pub(crate) SCRATCH(u32) @ 0x008 {
        /// Any value.
        31:0 value;
    }
}

/// Offset one past the last register, and so the size of BAR0 the driver maps.
pub(crate) const END: usize = abi::pci::BAR0_SIZE;

// The literals above must match the one ABI definition.
kernel::static_assert!(<ID as register::Register>::OFFSET == abi::regs::ID);
kernel::static_assert!(<ABI_VERSION as register::Register>::OFFSET == abi::regs::ABI_VERSION);
kernel::static_assert!(<SCRATCH as register::Register>::OFFSET == abi::regs::SCRATCH);

/// A firmware ABI version as reported by [`ABI_VERSION`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AbiVersion {
    /// Incompatible revisions.
    pub(crate) major: u16,
    /// Compatible additions.
    pub(crate) minor: u16,
}

impl AbiVersion {
    /// The oldest version this driver drives: 1.0. Against a 1.0 device every dependency is
    /// waited for on the CPU.
    pub(crate) const DRIVER: Self = Self {
        major: abi::regs::ABI_MAJOR,
        minor: 0,
    };

    /// The newest version this driver speaks: 1.1, whose wait entries let the firmware order
    /// a job after another queue's ([`abi::regs::ABI_MINOR_DEPENDENCIES`]).
    pub(crate) const NEWEST: Self = Self {
        major: abi::regs::ABI_MAJOR,
        minor: abi::regs::ABI_MINOR,
    };

    /// The version to declare at INIT to a device that reports `device` (which
    /// [`Self::DRIVER`] supports): the newest both speak. The firmware then behaves exactly as
    /// that version.
    pub(crate) fn negotiate(device: Self) -> Self {
        Self {
            major: device.major,
            minor: device.minor.min(Self::NEWEST.minor),
        }
    }

    /// Whether ABI 1.1's wait entries (and `EVENT_ENTRY_ERROR`) are in use.
    pub(crate) fn has_waits(self) -> bool {
        self.minor >= abi::regs::ABI_MINOR_DEPENDENCIES
    }

    /// The raw `ABI_VERSION` value of `self`, as `InitData::abi_version` takes it.
    pub(crate) const fn raw(self) -> u32 {
        ((self.major as u32) << 16) | self.minor as u32
    }

    /// Decodes the raw value of the `ABI_VERSION` register.
    pub(crate) fn from_raw(raw: u32) -> Self {
        let reg = ABI_VERSION::from_raw(raw);
        Self {
            major: reg.major().into(),
            minor: reg.minor().into(),
        }
    }

    /// Whether a driver written for `self` can drive a device reporting `device`.
    ///
    /// The major version must match exactly; a device with a newer minor version only adds
    /// features the driver does not use, while an older minor one may lack features the driver
    /// needs.
    pub(crate) fn supports(self, device: Self) -> bool {
        self.major == device.major && device.minor >= self.minor
    }
}

impl fmt::Display for AbiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

#[cfg(CONFIG_DRM_VAGX_KUNIT_TEST)]
#[kernel::macros::kunit_tests(vagx_regs)]
mod tests {
    use super::*;

    #[test]
    fn abi_version_decodes_fields() {
        let v = AbiVersion::from_raw(0x0003_0007);
        assert_eq!(v, AbiVersion { major: 3, minor: 7 });
        assert_eq!(
            AbiVersion::from_raw(abi::regs::ABI_VERSION_VALUE),
            AbiVersion {
                major: abi::regs::ABI_MAJOR,
                minor: abi::regs::ABI_MINOR
            }
        );
        assert_eq!(
            AbiVersion::from_raw(AbiVersion::DRIVER.raw()),
            AbiVersion::DRIVER
        );
        // The device model (the ABI crate's version) is one this driver drives.
        assert!(AbiVersion::DRIVER.supports(AbiVersion::from_raw(abi::regs::ABI_VERSION_VALUE)));
    }

    #[test]
    fn abi_version_negotiation_takes_the_newest_both_speak() {
        let v = |minor| AbiVersion { major: 1, minor };
        assert_eq!(AbiVersion::negotiate(v(0)), v(0));
        assert!(!AbiVersion::negotiate(v(0)).has_waits());
        assert_eq!(AbiVersion::negotiate(v(1)), AbiVersion::NEWEST);
        assert!(AbiVersion::negotiate(v(1)).has_waits());
        // A newer device behaves as the version the driver declares.
        assert_eq!(AbiVersion::negotiate(v(9)), AbiVersion::NEWEST);
    }

    #[test]
    fn abi_version_compatibility() {
        let drv = AbiVersion { major: 1, minor: 2 };
        // (device version, expected compatibility)
        let cases = [
            ((1, 2), true),
            ((1, 3), true),
            ((1, 1), false),
            ((2, 2), false),
            ((0, 9), false),
        ];
        for ((major, minor), expected) in cases {
            assert_eq!(drv.supports(AbiVersion { major, minor }), expected);
        }
    }

    #[test]
    fn id_magic_is_ascii_vagx() {
        assert_eq!(abi::regs::ID_MAGIC.to_le_bytes(), *b"VAGX");
    }
}
