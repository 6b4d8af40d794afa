// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Trace records: what the firmware did, for the QEMU shell to emit as trace events.
//!
//! The model records into a bounded buffer that the shell drains after every call
//! ([`Device::take_trace`]); records beyond the bound are counted, not kept.

use crate::device::Device;

/// Most records kept between two drains.
pub const TRACE_CAPACITY: usize = 4096;

/// One thing worth tracing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trace {
    /// A host-to-firmware mailbox message (doorbells included).
    Mailbox { endpoint: u32, message: u64 },
    /// A command started on a unit; it completes at `until` (device time).
    Command {
        queue: u32,
        entry: u32,
        index: u32,
        opcode: u16,
        until: u64,
    },
    /// A queue entry completed; its stamp is now `stamp`.
    EntryDone { queue: u32, stamp: u32 },
    /// A command faulted.
    Fault { queue: u32, kind: u32, address: u64 },
    /// The firmware halted.
    Halt { reason: u32 },
}

/// The records made since the shell last took them, and the count of those that did not fit.
///
/// # Invariants
///
/// At most [`TRACE_CAPACITY`] records.
#[derive(Clone, Debug, Default)]
pub(crate) struct TraceBuffer {
    records: Vec<Trace>,
    dropped: u64,
}

impl TraceBuffer {
    /// Records `t` if there is room, else counts it.
    pub(crate) fn record(&mut self, t: Trace) {
        if self.records.len() < TRACE_CAPACITY {
            self.records.push(t);
        } else {
            self.dropped += 1;
        }
    }
}

impl Device {
    /// Takes the records made since the last call.
    pub fn take_trace(&mut self) -> Vec<Trace> {
        std::mem::take(&mut self.traces.records)
    }

    /// Records dropped because the buffer was full, since the device was created.
    pub fn traces_dropped(&self) -> u64 {
        self.traces.dropped
    }
}
