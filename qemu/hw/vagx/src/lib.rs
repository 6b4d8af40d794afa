// SPDX-License-Identifier: GPL-2.0 OR MIT

//! QEMU device model of the vagx virtual GPU (`-device vagx`).
//!
//! This crate is the thin QEMU shell: QOM type, PCI function, BAR0 and its MMIO callbacks. The
//! device's behaviour lives in the QEMU-free `vagx_fw` crate; the identity and register map come
//! from `vagx_abi`, the same source the kernel driver compiles.

use qemu_api::c_str;

mod device;

/// QOM type name of the device, as used with `-device`.
pub const TYPE_VAGX: &::std::ffi::CStr = c_str!("vagx");
