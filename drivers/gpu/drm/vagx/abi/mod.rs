// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The vagx firmware ABI: the one definition shared by the driver, the device model and tests.
//!
//! This module depends on `core` only, so that the same source files are compiled into the
//! kernel driver (`vagx.ko`), the QEMU device (built by meson) and the host crates (built by
//! cargo). `Documentation/gpu/vagx-firmware.rst` is the prose specification of everything here.
//!
//! Every structure shared through memory is `#[repr(C)]`, has explicit padding fields, and has
//! its size and field offsets asserted at compile time. All multi-byte fields are little endian.

pub mod channels;
pub mod cmd;
pub mod init;
pub mod mbox;
pub mod mmu;
pub mod pci;
pub mod pod;
pub mod queue;
pub mod regs;

/// Number of priorities of submission pipes; 0 is the highest.
pub const NUM_PRIORITIES: usize = 4;

/// Kinds of submission pipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum PipeType {
    /// Compute work (GEMM, reductions and every other command).
    Compute = 0,
    /// Copy work (COPY, FILL, WRITE); other commands are accepted too.
    Copy = 1,
}

/// Number of pipe types.
pub const NUM_PIPE_TYPES: usize = 2;

/// Number of submission pipes: one per priority and pipe type.
pub const NUM_PIPES: usize = NUM_PRIORITIES * NUM_PIPE_TYPES;

impl PipeType {
    /// The type's name, for logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Compute => "compute",
            Self::Copy => "copy",
        }
    }

    /// Decodes a pipe type from its ABI value.
    pub fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            0 => Some(Self::Compute),
            1 => Some(Self::Copy),
            _ => None,
        }
    }
}

/// Index of the submission pipe for `ty` at `priority` in [`init::InitData::pipes`]:
/// `priority * NUM_PIPE_TYPES + type`.
pub const fn pipe_index(ty: PipeType, priority: u32) -> usize {
    priority as usize * NUM_PIPE_TYPES + ty as usize
}

/// Number of stamp slots (completion counters) the firmware keeps.
pub const NUM_STAMP_SLOTS: usize = 128;

/// How much a queue's stamp advances per completed work-queue entry.
pub const STAMP_STEP: u32 = 0x100;

/// Whether stamp `a` is at or past stamp `b`, modulo wrap-around.
///
/// Stamps are compared as the signed distance `a - b`, so the comparison is right as long as
/// the two are less than 2^31 apart.
pub const fn stamp_passed(a: u32, b: u32) -> bool {
    // CAST: reinterpreting the wrapped difference as signed is the point.
    (a.wrapping_sub(b) as i32) >= 0
}

/// Failed stamp ranges the firmware remembers per stamp slot, for waits to evaluate (ABI 1.1).
///
/// A range is a run of consecutive failed entries of the slot's queue (a queue reset discards
/// one range, culprit to last entry). When a slot would hold more, its two oldest ranges are
/// merged into one that also covers the entries between them, so a wait on one of those fails
/// even if it succeeded: the firmware never lets a job run after a failed entry, but past this
/// bound it may fail one that waited for an old success. The record of a slot lasts until a
/// queue is created on it again or the device is reset.
pub const FAILURE_HISTORY: usize = 16;

/// Maximum number of work queues alive at once.
pub const MAX_QUEUES: usize = 128;

/// Maximum number of execution units of a device (the `UNITS` register).
pub const MAX_UNITS: usize = 16;

/// Maximum number of GPU virtual address spaces.
pub const MAX_VMS: usize = 64;
