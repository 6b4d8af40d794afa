// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Boot: the init data block, ring descriptors, ring state and the pending-stamp table.
//!
//! All addresses here are bus addresses of guest memory (what the device's DMA sees).

use super::{pod::Pod, NUM_PIPES, NUM_STAMP_SLOTS};
use crate::assert_layout;

/// The value of [`InitData::magic`] (`VGIN`).
pub const INIT_MAGIC: u32 = u32::from_le_bytes(*b"VGIN");

/// Where a ring lives and how it is shaped.
///
/// Rings keep one slot empty: a ring is full when `(wptr + 1) % count == rptr`, empty when
/// `wptr == rptr`. `count` is a power of two between 2 and 65536, `entry_size` the size of the
/// ring's message type. Entries start at `entries`, which is `entry_size` aligned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct RingDesc {
    /// Bus address of the ring's [`RingState`], 128-byte aligned.
    pub state: u64,
    /// Bus address of the first entry.
    pub entries: u64,
    /// Number of entries.
    pub count: u32,
    /// Size of one entry in bytes.
    pub entry_size: u32,
}
assert_layout!(RingDesc, size 24, state @ 0, entries @ 8, count @ 16, entry_size @ 20);
// SAFETY: `repr(C)`, integer fields only, no padding (asserted above).
unsafe impl Pod for RingDesc {}

/// Largest ring the firmware accepts.
pub const MAX_RING_COUNT: u32 = 65536;

/// Read and write pointers of a ring, on separate cache lines.
///
/// The producer owns `wptr`, the consumer `rptr`. The producer writes the entry, then (release
/// ordering) the new `wptr`; the consumer reads `wptr` (acquire), then the entry, then (release)
/// the new `rptr`. Pointers are entry indices in `0..count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct RingState {
    /// Next entry the consumer reads.
    pub rptr: u32,
    /// Keeps `wptr` on its own 64-byte cache line.
    pub _pad0: [u32; 15],
    /// Next entry the producer writes.
    pub wptr: u32,
    /// Fills the second cache line.
    pub _pad1: [u32; 15],
}
assert_layout!(RingState, size 128, rptr @ 0, wptr @ 64);
// SAFETY: `repr(C)`, integer fields only, no padding (asserted above).
unsafe impl Pod for RingState {}

/// Offset of [`RingState::rptr`], for single-word accesses.
pub const RING_RPTR_OFFSET: u64 = 0;
/// Offset of [`RingState::wptr`], for single-word accesses.
pub const RING_WPTR_OFFSET: u64 = 64;

/// The block the driver places in memory and sends with `MSG_INIT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct InitData {
    /// [`INIT_MAGIC`].
    pub magic: u32,
    /// The ABI version the driver speaks, encoded as in `ABI_VERSION`.
    pub abi_version: u32,
    /// Device control (host to firmware), entries are `channels::DevCtrlMsg`.
    pub devctrl: RingDesc,
    /// Events (firmware to host), entries are `channels::EventMsg`.
    pub event: RingDesc,
    /// Firmware log (firmware to host), entries are `channels::LogMsg`.
    pub fwlog: RingDesc,
    /// Statistics (firmware to host), entries are `channels::StatsMsg`.
    pub stats: RingDesc,
    /// Submission pipes (host to firmware), entries are `channels::PipeMsg`; indexed by
    /// `pipe_index(type, priority)`.
    pub pipes: [RingDesc; NUM_PIPES],
    /// Bus address of the stamp array: `NUM_STAMP_SLOTS` little-endian `u32`s the firmware
    /// writes and the host reads.
    pub stamps: u64,
    /// Bus address of the [`PendingTable`] the firmware writes when it halts.
    pub pending: u64,
    /// Watchdog: an entry that runs longer than this many nanoseconds of device time times out.
    /// 0 selects the default of 100 ms.
    pub watchdog_ns: u64,
}
assert_layout!(
    InitData,
    size 320,
    magic @ 0,
    abi_version @ 4,
    devctrl @ 8,
    event @ 32,
    fwlog @ 56,
    stats @ 80,
    pipes @ 104,
    stamps @ 296,
    pending @ 304,
    watchdog_ns @ 312,
);
// SAFETY: `repr(C)`, integer and `Pod` fields only, no padding (asserted above).
unsafe impl Pod for InitData {}

/// Default watchdog, in nanoseconds of device time.
pub const DEFAULT_WATCHDOG_NS: u64 = 100_000_000;

/// One work queue's line in the [`PendingTable`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct PendingEntry {
    /// `PENDING_*` flags; an entry without `PENDING_VALID` is unused.
    pub flags: u32,
    /// Work queue id.
    pub queue: u32,
    /// The queue's stamp when the firmware halted.
    pub stamp: u32,
    /// The stamp the queue's in-flight entry would have reached.
    pub next_stamp: u32,
}
assert_layout!(PendingEntry, size 16, flags @ 0, queue @ 4, stamp @ 8, next_stamp @ 12);
// SAFETY: `repr(C)`, integer fields only, no padding (asserted above).
unsafe impl Pod for PendingEntry {}

/// `PendingEntry::flags`: the entry describes a queue that had work in flight.
pub const PENDING_VALID: u32 = 1 << 0;
/// `PendingEntry::flags`: this queue caused the halt.
pub const PENDING_CULPRIT: u32 = 1 << 1;

/// What the firmware was running when it halted, indexed by stamp slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct PendingTable {
    /// Incremented on every halt; the host reads the table after seeing a new value.
    pub halt_seq: u32,
    /// Why the firmware halted: a `channels::EVENT_*` kind (`EVENT_FAULT` or `EVENT_TIMEOUT`).
    pub reason: u32,
    /// Keeps `entries` 16-byte aligned.
    pub _pad: [u32; 2],
    /// One entry per stamp slot.
    pub entries: [PendingEntry; NUM_STAMP_SLOTS],
}
assert_layout!(PendingTable, size 16 + 16 * 128, halt_seq @ 0, reason @ 4, entries @ 16);
// SAFETY: `repr(C)`, integer and `Pod` fields only, no padding (asserted above).
unsafe impl Pod for PendingTable {}
