// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Device utilisation as the firmware counts it: busy time and entries completed per
//! submission pipe and per work queue, in device nanoseconds.
//!
//! The firmware writes cumulative samples ([`StatsMsg`]) to the stats ring on `FLUSH` and
//! when a queue is destroyed. The interrupt handler keeps the latest sample of each pipe and
//! queue here; [`crate::gpu::Gpu::flush_busy`] asks for fresh ones. A queue's sample lives
//! while the queue does: it is reset when a queue takes the id and when it gives it back, and
//! a sample of an id no queue holds (a destroyed queue's last) is not kept.

use crate::abi::{
    channels::{
        StatsMsg,
        STATS_PIPE,
        STATS_QUEUE, //
    },
    MAX_QUEUES, NUM_PIPES,
};

/// One pipe's or queue's latest sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sample {
    /// Device time spent on its entries, in ns.
    pub(crate) busy_ns: u64,
    /// Entries completed.
    pub(crate) entries: u64,
    /// Device time of the sample, in ns.
    pub(crate) time_ns: u64,
}

impl From<&StatsMsg> for Sample {
    fn from(m: &StatsMsg) -> Self {
        Self {
            busy_ns: m.busy_ns,
            entries: m.entries,
            time_ns: m.time_ns,
        }
    }
}

/// What a stats message was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Recorded {
    Pipe,
    Queue,
    /// An unknown kind or an id out of range: not kept (the caller logs it).
    Unknown,
}

/// The latest sample of every pipe and queue.
pub(crate) struct DeviceBusy {
    pipes: [Sample; NUM_PIPES],
    queues: [Sample; MAX_QUEUES],
    /// Device time of the newest sample.
    now_ns: u64,
}

impl DeviceBusy {
    /// No samples yet.
    pub(crate) const fn new() -> Self {
        const ZERO: Sample = Sample {
            busy_ns: 0,
            entries: 0,
            time_ns: 0,
        };
        Self {
            pipes: [ZERO; NUM_PIPES],
            queues: [ZERO; MAX_QUEUES],
            now_ns: 0,
        }
    }

    /// Keeps `msg` if it is a sample of a known pipe or queue.
    pub(crate) fn record(&mut self, msg: &StatsMsg) -> Recorded {
        let (slot, what) = match msg.kind {
            STATS_PIPE => (self.pipes.get_mut(msg.id as usize), Recorded::Pipe),
            STATS_QUEUE => (self.queues.get_mut(msg.id as usize), Recorded::Queue),
            _ => (None, Recorded::Unknown),
        };
        match slot {
            Some(s) => {
                *s = Sample::from(msg);
                self.now_ns = self.now_ns.max(msg.time_ns);
                what
            }
            None => Recorded::Unknown,
        }
    }

    /// A new queue took id `id`: it counts from zero.
    pub(crate) fn reset_queue(&mut self, id: u32) {
        if let Some(s) = self.queues.get_mut(id as usize) {
            *s = Sample::default();
        }
    }

    /// Debugfs: the device time, then every pipe, then every queue that has run something.
    pub(crate) fn dump(&self, w: &mut impl core::fmt::Write) -> core::fmt::Result {
        writeln!(w, "device_time_ns {}", self.now_ns)?;
        for (i, p) in self.pipes.iter().enumerate() {
            writeln!(w, "pipe {i} busy_ns {} entries {}", p.busy_ns, p.entries)?;
        }
        for (i, q) in self.queues.iter().enumerate() {
            if q.entries != 0 || q.busy_ns != 0 {
                writeln!(w, "queue {i} busy_ns {} entries {}", q.busy_ns, q.entries)?;
            }
        }
        Ok(())
    }
}

#[cfg(CONFIG_DRM_VAGX_KUNIT_TEST)]
#[kernel::macros::kunit_tests(vagx_busy)]
mod tests {
    use super::*;

    fn msg(kind: u32, id: u32, busy_ns: u64, entries: u64, time_ns: u64) -> StatsMsg {
        StatsMsg {
            kind,
            id,
            busy_ns,
            entries,
            time_ns,
        }
    }

    #[test]
    fn samples_replace_older_ones_and_a_new_queue_counts_from_zero() {
        let mut b = DeviceBusy::new();
        assert_eq!(
            b.record(&msg(STATS_QUEUE, 5, 100, 1, 1000)),
            Recorded::Queue
        );
        assert_eq!(
            b.record(&msg(STATS_QUEUE, 5, 300, 3, 2000)),
            Recorded::Queue
        );
        assert_eq!(b.queues[5].busy_ns, 300);
        assert_eq!(b.queues[5].entries, 3);
        assert_eq!(b.now_ns, 2000);
        b.reset_queue(5);
        assert_eq!(b.queues[5], Sample::default());
        assert_eq!(b.record(&msg(STATS_PIPE, 1, 700, 7, 1500)), Recorded::Pipe);
        assert_eq!(b.pipes[1].busy_ns, 700);
        // An older sample does not move the device time back.
        assert_eq!(b.now_ns, 2000);
    }

    #[test]
    fn unknown_kinds_and_ids_are_not_kept() {
        let mut b = DeviceBusy::new();
        // CAST: small constants.
        let too_big_queue = MAX_QUEUES as u32;
        let too_big_pipe = NUM_PIPES as u32;
        assert_eq!(b.record(&msg(7, 0, 1, 1, 1)), Recorded::Unknown);
        assert_eq!(
            b.record(&msg(STATS_QUEUE, too_big_queue, 1, 1, 1)),
            Recorded::Unknown
        );
        assert_eq!(
            b.record(&msg(STATS_PIPE, too_big_pipe, 1, 1, 1)),
            Recorded::Unknown
        );
        assert_eq!(b.now_ns, 0);
    }
}
