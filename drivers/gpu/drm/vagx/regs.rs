// SPDX-License-Identifier: GPL-2.0 OR MIT

//! BAR0 registers of the vagx GPU, checked against the shared ABI definition.
//!
//! Every register the driver touches is defined here; the driver reads and writes them only
//! through these types (`bar.read(FW_STATE)`, `bar.write_reg(IRQ_MASK::from_raw(..))`).
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

    /// Number of parallel execution units of the firmware scheduler.
    pub(crate) UNITS(u32) @ 0x00c {
        /// The units.
        31:0 count;
    }

    /// The firmware's state: an [`abi::regs::FwState`] value.
    pub(crate) FW_STATE(u32) @ 0x010 {
        /// The raw state.
        31:0 state;
    }

    /// Why the firmware failed to boot or crashed: a `FwError` value, 0 if none.
    pub(crate) FW_ERROR(u32) @ 0x014 {
        /// The raw error.
        31:0 error;
    }

    /// Low 32 bits of the next host-to-firmware message.
    pub(crate) MBOX_H2F_LO(u32) @ 0x020 {
        /// The bits.
        31:0 value;
    }

    /// High 32 bits of the next host-to-firmware message.
    pub(crate) MBOX_H2F_HI(u32) @ 0x024 {
        /// The bits.
        31:0 value;
    }

    /// Writing an endpoint number sends `MBOX_H2F_HI:LO` to that endpoint.
    pub(crate) MBOX_H2F_SEND(u32) @ 0x028 {
        /// The endpoint.
        31:0 endpoint;
    }

    /// Low 32 bits of the oldest firmware-to-host message.
    pub(crate) MBOX_F2H_LO(u32) @ 0x030 {
        /// The bits.
        31:0 value;
    }

    /// High 32 bits of the oldest firmware-to-host message.
    pub(crate) MBOX_F2H_HI(u32) @ 0x034 {
        /// The bits.
        31:0 value;
    }

    /// Endpoint of the oldest firmware-to-host message.
    pub(crate) MBOX_F2H_EP(u32) @ 0x038 {
        /// The endpoint.
        31:0 endpoint;
    }

    /// Firmware-to-host messages waiting; writing pops the oldest.
    pub(crate) MBOX_F2H_COUNT(u32) @ 0x03c {
        /// The messages.
        31:0 count;
    }

    /// Pending interrupt causes (`abi::regs::IRQ_*` bits); write 1 to clear.
    pub(crate) IRQ_STATUS(u32) @ 0x040 {
        /// The causes.
        31:0 causes;
    }

    /// Enabled interrupt causes (`abi::regs::IRQ_*` bits).
    pub(crate) IRQ_MASK(u32) @ 0x044 {
        /// The causes.
        31:0 causes;
    }

    /// Writing [`abi::regs::RESET_MAGIC`] resets the device.
    pub(crate) RESET(u32) @ 0x048 {
        /// The magic value.
        31:0 magic;
    }

    /// ABI 1.3: writing a doorbell number rings it in one write.
    pub(crate) DOORBELL(u32) @ 0x04c {
        /// The doorbell (`abi::mbox::DOORBELL_*`).
        31:0 which;
    }

    /// ABI 1.4: the device's place on the peer fabric.
    pub(crate) FABRIC(u32) @ 0x050 {
        /// Changes at every reset of the device.
        31:8 epoch;
        /// Its port, or `abi::regs::FABRIC_NO_PORT`.
        7:0 port;
    }

    /// Arms a fault injection (`abi::regs::INJECT_*`) with `DEBUG_ARG0/1`.
    pub(crate) DEBUG_INJECT(u32) @ 0x100 {
        /// The injection.
        31:0 what;
    }

    /// First argument of the next `DEBUG_INJECT`.
    pub(crate) DEBUG_ARG0(u32) @ 0x104 {
        /// The argument.
        31:0 value;
    }

    /// Second argument of the next `DEBUG_INJECT`.
    pub(crate) DEBUG_ARG1(u32) @ 0x108 {
        /// The argument.
        31:0 value;
    }
}

/// Offset one past the last register, and so the size of BAR0 the driver maps.
pub(crate) const END: usize = abi::pci::BAR0_SIZE;

// The literals above must match the one ABI definition.
kernel::static_assert!(<ID as register::Register>::OFFSET == abi::regs::ID);
kernel::static_assert!(<ABI_VERSION as register::Register>::OFFSET == abi::regs::ABI_VERSION);
kernel::static_assert!(<SCRATCH as register::Register>::OFFSET == abi::regs::SCRATCH);
kernel::static_assert!(<UNITS as register::Register>::OFFSET == abi::regs::UNITS);
kernel::static_assert!(<FW_STATE as register::Register>::OFFSET == abi::regs::FW_STATE);
kernel::static_assert!(<FW_ERROR as register::Register>::OFFSET == abi::regs::FW_ERROR);
kernel::static_assert!(<MBOX_H2F_LO as register::Register>::OFFSET == abi::regs::MBOX_H2F_LO);
kernel::static_assert!(<MBOX_H2F_HI as register::Register>::OFFSET == abi::regs::MBOX_H2F_HI);
kernel::static_assert!(<MBOX_H2F_SEND as register::Register>::OFFSET == abi::regs::MBOX_H2F_SEND);
kernel::static_assert!(<MBOX_F2H_LO as register::Register>::OFFSET == abi::regs::MBOX_F2H_LO);
kernel::static_assert!(<MBOX_F2H_HI as register::Register>::OFFSET == abi::regs::MBOX_F2H_HI);
kernel::static_assert!(<MBOX_F2H_EP as register::Register>::OFFSET == abi::regs::MBOX_F2H_EP);
kernel::static_assert!(<MBOX_F2H_COUNT as register::Register>::OFFSET == abi::regs::MBOX_F2H_COUNT);
kernel::static_assert!(<IRQ_STATUS as register::Register>::OFFSET == abi::regs::IRQ_STATUS);
kernel::static_assert!(<IRQ_MASK as register::Register>::OFFSET == abi::regs::IRQ_MASK);
kernel::static_assert!(<RESET as register::Register>::OFFSET == abi::regs::RESET);
kernel::static_assert!(<DOORBELL as register::Register>::OFFSET == abi::regs::DOORBELL);
kernel::static_assert!(<FABRIC as register::Register>::OFFSET == abi::regs::FABRIC);
kernel::static_assert!(<DEBUG_INJECT as register::Register>::OFFSET == abi::regs::DEBUG_INJECT);
kernel::static_assert!(<DEBUG_ARG0 as register::Register>::OFFSET == abi::regs::DEBUG_ARG0);
kernel::static_assert!(<DEBUG_ARG1 as register::Register>::OFFSET == abi::regs::DEBUG_ARG1);

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

    /// The newest version this driver speaks: 1.7. 1.1's wait entries let the firmware order
    /// a job after another queue's ([`abi::regs::ABI_MINOR_DEPENDENCIES`]); 1.2 counts busy
    /// time per execution unit ([`abi::regs::ABI_MINOR_UNIT_STATS`]); 1.3 rings a doorbell in
    /// one register write and reports ring writes as an interrupt cause
    /// ([`abi::regs::ABI_MINOR_FAST_NOTIFY`]); 1.4 lets a wait entry name another device's
    /// stamp slot ([`abi::regs::ABI_MINOR_PEER_WAITS`]); 1.5 adds a command, which the
    /// driver passes through ([`abi::regs::ABI_MINOR_SUM`]); 1.6 changes a queue's priority
    /// at run time ([`abi::regs::ABI_MINOR_QUEUE_PRIORITY`]); 1.7 carries entry deadlines
    /// ([`abi::regs::ABI_MINOR_DEADLINES`]).
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

    /// Whether ABI 1.3's `DOORBELL` register and `IRQ_RINGS` cause are in use.
    pub(crate) fn has_fast_notify(self) -> bool {
        self.minor >= abi::regs::ABI_MINOR_FAST_NOTIFY
    }

    /// Whether ABI 1.4's peer waits and `FABRIC` register are in use.
    pub(crate) fn has_peer_waits(self) -> bool {
        self.minor >= abi::regs::ABI_MINOR_PEER_WAITS
    }

    /// Whether ABI 1.6's `DEVCTRL_SET_QUEUE_PRIORITY` is in use.
    pub(crate) fn has_queue_priority(self) -> bool {
        self.minor >= abi::regs::ABI_MINOR_QUEUE_PRIORITY
    }

    /// Whether ABI 1.7's entry deadlines on pipe messages are in use.
    pub(crate) fn has_deadlines(self) -> bool {
        self.minor >= abi::regs::ABI_MINOR_DEADLINES
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
        assert_eq!(AbiVersion::negotiate(v(1)), v(1));
        assert!(AbiVersion::negotiate(v(1)).has_waits());
        assert_eq!(AbiVersion::negotiate(v(2)), v(2));
        assert!(!AbiVersion::negotiate(v(2)).has_fast_notify());
        assert_eq!(AbiVersion::negotiate(v(3)), v(3));
        assert!(AbiVersion::negotiate(v(3)).has_fast_notify());
        assert!(!AbiVersion::negotiate(v(3)).has_peer_waits());
        assert_eq!(AbiVersion::negotiate(v(4)), v(4));
        assert!(AbiVersion::negotiate(v(4)).has_peer_waits());
        assert_eq!(AbiVersion::negotiate(v(5)), v(5));
        assert!(!AbiVersion::negotiate(v(5)).has_queue_priority());
        assert_eq!(AbiVersion::negotiate(v(6)), v(6));
        assert!(AbiVersion::negotiate(v(6)).has_queue_priority());
        assert!(!AbiVersion::negotiate(v(6)).has_deadlines());
        assert_eq!(AbiVersion::negotiate(v(7)), AbiVersion::NEWEST);
        assert!(AbiVersion::NEWEST.has_queue_priority() && AbiVersion::NEWEST.has_deadlines());
        assert!(AbiVersion::NEWEST.minor >= abi::regs::ABI_MINOR_UNIT_STATS);
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
