// SPDX-License-Identifier: GPL-2.0 OR MIT

//! PCI identity of the vagx virtual GPU.

/// PCI vendor ID: Red Hat, Inc. (formerly Qumranet), the vendor of QEMU's virtual devices.
pub const VENDOR_ID: u16 = 0x1af4;

/// PCI device ID, from the range `1af4:10f0..=10ff` that QEMU's `docs/specs/pci-ids.rst` keeps
/// for experimental devices that need no registration.
pub const DEVICE_ID: u16 = 0x10f0;

/// PCI revision ID of ABI v1 hardware.
pub const REVISION: u8 = 1;

/// PCI class code (base class, subclass, prog-if): display controller, 3D controller.
pub const CLASS_CODE: u32 = 0x03_02_00;

/// Size of BAR0, the register window, in bytes.
pub const BAR0_SIZE: usize = 0x1000;
