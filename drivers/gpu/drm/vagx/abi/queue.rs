// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Work queues: per-context rings of command buffers, and their shared state.
//!
//! A work queue's ring holds [`QueueEntry`]s; each names a command buffer in the queue's GPU
//! VM. The host writes entries and advances `wptr`, then tells the firmware through the queue's
//! submission pipe. The firmware fetches entries (`rptr`), runs each command buffer to the end
//! and then advances `done` and the queue's stamp slot by `STAMP_STEP`.

use super::pod::Pod;
use crate::assert_layout;

/// One entry of a work queue's ring: a command buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct QueueEntry {
    /// GPU virtual address of the command buffer (8-byte aligned).
    pub cmdbuf: u64,
    /// Length of the command buffer in bytes (a multiple of 8, at most [`MAX_CMDBUF_SIZE`]).
    pub len: u32,
    /// Must be zero.
    pub flags: u32,
}
assert_layout!(QueueEntry, size 16, cmdbuf @ 0, len @ 8, flags @ 12);
// SAFETY: `repr(C)`, integer fields only, no padding (asserted above).
unsafe impl Pod for QueueEntry {}

/// Largest command buffer the firmware accepts.
pub const MAX_CMDBUF_SIZE: u32 = 1 << 20;

/// A work queue's pointers, each on its own 64-byte cache line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct QueueState {
    /// Next entry the firmware fetches (firmware-written).
    pub rptr: u32,
    /// Keeps `wptr` on its own cache line.
    pub _pad0: [u32; 15],
    /// Next entry the host writes (host-written).
    pub wptr: u32,
    /// Keeps `done` on its own cache line.
    pub _pad1: [u32; 15],
    /// Number of entries completed, modulo the ring size: entries before it are finished and
    /// their slots free (firmware-written).
    pub done: u32,
    /// Fills the last cache line.
    pub _pad2: [u32; 15],
}
assert_layout!(QueueState, size 192, rptr @ 0, wptr @ 64, done @ 128);
// SAFETY: `repr(C)`, integer fields only, no padding (asserted above).
unsafe impl Pod for QueueState {}

/// Offset of [`QueueState::rptr`].
pub const QUEUE_RPTR_OFFSET: u64 = 0;
/// Offset of [`QueueState::wptr`].
pub const QUEUE_WPTR_OFFSET: u64 = 64;
/// Offset of [`QueueState::done`].
pub const QUEUE_DONE_OFFSET: u64 = 128;
