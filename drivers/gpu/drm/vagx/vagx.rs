// SPDX-License-Identifier: GPL-2.0 OR MIT

//! vagx: DRM driver for the vagx virtual GPU.
//!
//! The vagx GPU is a QEMU PCI device whose firmware runs beside the guest and talks to the driver
//! through mailbox registers and rings in shared memory, as Apple's AGX firmware does.
//!
//! # Definitions
//!
//! - ABI: the firmware interface, specified in `Documentation/gpu/vagx-firmware.rst`.
//! - BAR: PCI base address register; BAR0 holds the device's registers.
//! - stamp: a per-queue counter the firmware advances as entries complete.

// Public because it is the interface shared with the device model, of which the driver uses only
// a part.
pub mod abi;
mod busy;
mod debugfs;
mod driver;
mod drv;
mod fdinfo;
mod file;
mod fw;
mod fwmem;
mod gem;
mod gpu;
mod hwdeadline;
mod hwqueue;
mod hwwait;
mod load;
mod peers;
mod queue;
mod recovery;
mod regs;
mod ring;
mod uapi;
mod vm;

kernel::module_pci_driver! {
    type: driver::VagxPciDriver,
    name: "vagx",
    authors: ["The vagx authors"],
    description: "DRM driver for the vagx virtual GPU",
    license: "Dual MIT/GPL",
    params: {
        sched_mode: u32 {
            default: 0,
            description: "Who orders jobs of different queues: 0 the kernel's scheduler (one per device), 1 the firmware (a scheduler per queue)",
        },
    },
}
