// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Work queues: per-context rings of command buffers, and their shared state.
//!
//! A work queue's ring holds [`QueueEntry`]s; each names a command buffer in the queue's GPU
//! VM or, from ABI 1.1, is a wait on another queue's stamp. The host writes entries and advances
//! `wptr`, then tells the firmware through the queue's submission pipe. The firmware fetches
//! entries (`rptr`), runs each command buffer to the end (or resolves each wait) and then
//! advances `done` and the queue's stamp slot by `STAMP_STEP`.
//!
//! # Wait entries (ABI 1.1)
//!
//! A wait entry ([`QueueEntry::wait`]) parks its queue, without holding an execution unit,
//! until stamp slot `slot` has passed `value`. If the entry that took the slot there succeeded,
//! the wait completes like any entry. If it failed (faulted, timed out, was discarded by a queue
//! reset, or failed a dependency itself), the wait completes with `FwError::Dependency`, and so
//! does every following entry up to and including the next non-wait entry, whose command
//! buffer is not run: a job is any number of wait entries followed by one command buffer.
//!
//! # Peer waits (ABI 1.4)
//!
//! A wait entry with [`QUEUE_ENTRY_PEER`] waits for a stamp slot of *another device* on the
//! peer fabric (`regs::FABRIC`): the one at port `len & 0xff`, in the epoch `len >> 8` it had
//! when the host read it. It resolves as a wait on a slot of its own device does, on that
//! device's stamps and failures; if that device has been reset, has crashed or left the
//! fabric since (a different epoch, or no device at the port), the wait fails with
//! `channels::DEP_CAUSE_PEER`. So a job that consumes another GPU's output starts when the
//! producer's entry completes on the other GPU, without the host in between.

use super::{
    pod::Pod,
    regs::{
        fabric_epoch, fabric_port, fabric_value, ABI_MINOR_DEPENDENCIES, ABI_MINOR_PEER_WAITS,
        FABRIC_PORTS,
    },
    NUM_STAMP_SLOTS,
};
use crate::assert_layout;

/// One entry of a work queue's ring: a command buffer, or (ABI 1.1) a wait.
///
/// [`QueueEntry::cmdbuf`] and [`QueueEntry::wait`] build entries, [`QueueEntry::decode`] reads
/// and checks them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct QueueEntry {
    /// GPU virtual address of the command buffer (8-byte aligned); for a wait entry, the value
    /// in bits 63:32 and the slot in bits 31:0.
    pub cmdbuf: u64,
    /// Length of the command buffer in bytes (a multiple of 8, at most [`MAX_CMDBUF_SIZE`]); 0
    /// for a wait entry, or the awaited device's `regs::FABRIC` value for a peer wait.
    pub len: u32,
    /// `QUEUE_ENTRY_*` flags; zero for a command buffer, and always zero in ABI 1.0.
    pub flags: u32,
}
assert_layout!(QueueEntry, size 16, cmdbuf @ 0, len @ 8, flags @ 12);
// SAFETY: `repr(C)`, integer fields only, no padding (asserted above).
unsafe impl Pod for QueueEntry {}

/// Largest command buffer the firmware accepts.
pub const MAX_CMDBUF_SIZE: u32 = 1 << 20;

/// [`QueueEntry::flags`] (ABI 1.1): the entry is a wait on a stamp, not a command buffer.
pub const QUEUE_ENTRY_WAIT: u32 = 1 << 0;

/// [`QueueEntry::flags`] (ABI 1.4), with [`QUEUE_ENTRY_WAIT`]: the slot is another device's,
/// the one whose `regs::FABRIC` value is in `len`.
pub const QUEUE_ENTRY_PEER: u32 = 1 << 1;

/// The device a peer wait entry waits on: a port of the peer fabric and the epoch the device
/// had there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Below `regs::FABRIC_PORTS`.
    pub port: u32,
    /// 24 bits, wrapping.
    pub epoch: u32,
}

/// What a [`QueueEntry`] asks of the firmware, as decoded by [`QueueEntry::decode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// Run a command buffer.
    CmdBuf {
        /// GPU virtual address, 8-byte aligned.
        address: u64,
        /// Length in bytes: a multiple of 8, at most [`MAX_CMDBUF_SIZE`].
        len: u32,
    },
    /// Wait until stamp slot `slot` has passed `value`, and fail if the entry that took it
    /// there failed (ABI 1.1).
    Wait {
        /// Stamp slot, below `NUM_STAMP_SLOTS`.
        slot: u32,
        /// Stamp to wait for, compared wrap-safely.
        value: u32,
        /// The device whose slot it is (ABI 1.4); `None`: this device.
        peer: Option<Peer>,
    },
}

/// Why a [`QueueEntry`] is malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryError {
    /// A flag the negotiated ABI version does not define is set.
    UnknownFlags,
    /// The command buffer's address or length is not a multiple of 8, or it is longer than
    /// [`MAX_CMDBUF_SIZE`].
    BadCmdBuf,
    /// The wait's slot is not below `NUM_STAMP_SLOTS`, its `len` is not zero (not a port of
    /// the fabric for a peer wait), or [`QUEUE_ENTRY_PEER`] is set without
    /// [`QUEUE_ENTRY_WAIT`].
    BadWait,
}

impl QueueEntry {
    /// An entry that runs the `len`-byte command buffer at GPU address `address`.
    pub const fn cmdbuf(address: u64, len: u32) -> Self {
        Self {
            cmdbuf: address,
            len,
            flags: 0,
        }
    }

    /// A wait entry (ABI 1.1): the queue waits until stamp slot `slot` has passed `value`.
    pub const fn wait(slot: u32, value: u32) -> Self {
        Self {
            cmdbuf: ((value as u64) << 32) | slot as u64,
            len: 0,
            flags: QUEUE_ENTRY_WAIT,
        }
    }

    /// A peer wait entry (ABI 1.4): the queue waits until stamp slot `slot` of the device at
    /// `peer` has passed `value`.
    pub const fn peer_wait(peer: Peer, slot: u32, value: u32) -> Self {
        Self {
            cmdbuf: ((value as u64) << 32) | slot as u64,
            len: fabric_value(peer.port, peer.epoch),
            flags: QUEUE_ENTRY_WAIT | QUEUE_ENTRY_PEER,
        }
    }

    /// Decodes and checks the entry as the ABI minor version `abi_minor` (of major 1) defines
    /// it: the version the driver declared in `InitData::abi_version`.
    ///
    /// # Errors
    ///
    /// - [`EntryError::UnknownFlags`] if a flag `abi_minor` does not define is set (in 1.0,
    ///   any flag).
    /// - [`EntryError::BadCmdBuf`] if a command buffer is misaligned or too long.
    /// - [`EntryError::BadWait`] if a wait's slot is out of range or its `len` is not zero.
    pub fn decode(&self, abi_minor: u16) -> Result<EntryKind, EntryError> {
        let known = match abi_minor {
            m if m >= ABI_MINOR_PEER_WAITS => QUEUE_ENTRY_WAIT | QUEUE_ENTRY_PEER,
            m if m >= ABI_MINOR_DEPENDENCIES => QUEUE_ENTRY_WAIT,
            _ => 0,
        };
        if self.flags & !known != 0 {
            return Err(EntryError::UnknownFlags);
        }
        let is_peer = self.flags & QUEUE_ENTRY_PEER != 0;
        if self.flags & QUEUE_ENTRY_WAIT != 0 {
            // CAST: the two halves of the 64-bit field.
            let (slot, value) = (self.cmdbuf as u32, (self.cmdbuf >> 32) as u32);
            let peer = is_peer.then(|| Peer {
                port: fabric_port(self.len),
                epoch: fabric_epoch(self.len),
            });
            let len_ok = match peer {
                Some(p) => p.port < FABRIC_PORTS,
                None => self.len == 0,
            };
            // CAST: `NUM_STAMP_SLOTS` is 128.
            if slot >= NUM_STAMP_SLOTS as u32 || !len_ok {
                return Err(EntryError::BadWait);
            }
            return Ok(EntryKind::Wait { slot, value, peer });
        }
        if is_peer {
            return Err(EntryError::BadWait);
        }
        if self.cmdbuf & 7 != 0 || self.len & 7 != 0 || self.len > MAX_CMDBUF_SIZE {
            return Err(EntryError::BadCmdBuf);
        }
        Ok(EntryKind::CmdBuf {
            address: self.cmdbuf,
            len: self.len,
        })
    }
}

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
    /// Keeps `busy_ns` aligned.
    pub _pad2: u32,
    /// (ABI 1.7) Device time the queue's completed entries took on the units, in ns; written
    /// before the stamp of the entry it counts, so that a host that has seen a stamp reads at
    /// least that entry's time (firmware-written; zero before 1.7).
    pub busy_ns: u64,
    /// Fills the last cache line.
    pub _pad3: [u32; 12],
}
assert_layout!(QueueState, size 192, rptr @ 0, wptr @ 64, done @ 128, busy_ns @ 136);
// SAFETY: `repr(C)`, integer fields only, no padding (asserted above).
unsafe impl Pod for QueueState {}

/// Offset of [`QueueState::rptr`].
pub const QUEUE_RPTR_OFFSET: u64 = 0;
/// Offset of [`QueueState::wptr`].
pub const QUEUE_WPTR_OFFSET: u64 = 64;
/// Offset of [`QueueState::done`].
pub const QUEUE_DONE_OFFSET: u64 = 128;
/// Offset of [`QueueState::busy_ns`] (ABI 1.7).
pub const QUEUE_BUSY_OFFSET: u64 = 136;
