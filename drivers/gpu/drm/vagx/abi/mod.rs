// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The vagx firmware ABI: the one definition shared by the driver, the device model and tests.
//!
//! This module depends on `core` only, so that the same source file is compiled into the kernel
//! driver (`vagx.ko`), the QEMU device (built by meson) and the host crates (built by cargo).
//! `Documentation/gpu/vagx-firmware.rst` is the prose specification of everything here.

pub mod pci;
pub mod regs;
