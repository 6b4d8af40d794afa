// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The vagx GPU's firmware model, free of any QEMU dependency.
//!
//! The QEMU device (`qemu/hw/vagx`) is a thin shell that forwards MMIO accesses, DMA and time
//! to this crate, so that everything here is tested on the host with `cargo test`.

pub mod boot;
pub mod deps;
pub mod devctrl;
pub mod device;
pub mod events;
pub mod exec;
pub mod fabric;
pub mod inject;
pub mod mem;
pub mod mmio;
pub mod mmu;
pub mod ring;
pub mod sched;
pub mod trace;
pub mod workers;

pub use device::{BootFault, Config, Device, FwState};
pub use fabric::{Fabric, Waker};
