// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Device utilisation as the firmware counts it: busy time and entries completed per
//! submission pipe, per work queue and (ABI 1.2) per execution unit, in device nanoseconds.
//!
//! The firmware writes cumulative samples ([`StatsMsg`]) to the stats ring on `FLUSH` and
//! when a queue is destroyed. The interrupt handler keeps the latest sample of each pipe,
//! queue and unit here; [`crate::gpu::Gpu::flush_busy`] asks for fresh ones. A queue's sample
//! lives while the queue does: it is reset when a queue takes the id and when it gives it
//! back, and a sample of an id no queue holds (a destroyed queue's last) is not kept.
//!
//! ABI 1.2 firmware also reports the device model's fidelity (`STATS_EMULATION`): the
//! commands it executed and their modelled cost, and how many took the host longer than that
//! (late) with the host time all took. Debugfs `busy` prints it.
//!
//! A firmware reboot (crash recovery) starts the firmware's counters from zero, the device
//! clock keeps going. [`DeviceBusy::rebooted`] carries every latest sample over, so that the
//! totals never go back; the work of the firmware's last moments before a crash (after the
//! last sample) is not counted.

use crate::abi::{
    channels::{
        StatsMsg,
        EMULATION_HOST,
        EMULATION_MODELLED,
        STATS_EMULATION,
        STATS_PIPE,
        STATS_QUEUE,
        STATS_UNIT, //
    },
    MAX_QUEUES, MAX_UNITS, NUM_PIPES,
};
use kernel::prelude::Zeroable;

/// Cumulative busy time of one pipe, queue or unit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Zeroable)]
pub(crate) struct Sample {
    /// Device time spent on its entries (a unit's: commands), in ns.
    pub(crate) busy_ns: u64,
    /// Entries completed (a unit's: commands).
    pub(crate) entries: u64,
}

impl Sample {
    const ZERO: Self = Self {
        busy_ns: 0,
        entries: 0,
    };

    fn add(self, other: Self) -> Self {
        Self {
            busy_ns: self.busy_ns.saturating_add(other.busy_ns),
            entries: self.entries.saturating_add(other.entries),
        }
    }
}

impl From<&StatsMsg> for Sample {
    fn from(m: &StatsMsg) -> Self {
        Self {
            busy_ns: m.busy_ns,
            entries: m.entries,
        }
    }
}

/// A counter of the firmware's: its latest sample, and what earlier firmware boots counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Zeroable)]
struct Counter {
    latest: Sample,
    carried: Sample,
}

impl Counter {
    fn total(&self) -> Sample {
        self.carried.add(self.latest)
    }

    fn carry_over(&mut self) {
        self.carried = self.total();
        self.latest = Sample::ZERO;
    }
}

/// What a stats message was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Recorded {
    Pipe,
    Queue,
    Unit,
    Emulation,
    /// An unknown kind or an id out of range: not kept (the caller logs it).
    Unknown,
}

/// The totals of every pipe, queue and unit.
///
/// About 5 KiB: made in place ([`DeviceBusy::new`]), never on the stack, which has no guard
/// page in the test kernel.
#[derive(Zeroable)]
pub(crate) struct DeviceBusy {
    pipes: [Counter; NUM_PIPES],
    queues: [Counter; MAX_QUEUES],
    units: [Counter; MAX_UNITS],
    /// The device model's fidelity ([`EMULATION_MODELLED`], [`EMULATION_HOST`]).
    emulation: [Counter; 2],
    /// Whether a unit sample has been seen (ABI 1.2 firmware sends them).
    have_units: bool,
    /// Device time of the newest sample.
    now_ns: u64,
}

/// What a load balancer reads ([`DeviceBusy::totals`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    /// Device time of the newest sample, in ns.
    pub(crate) time_ns: u64,
    /// Per unit, if the firmware counts them.
    pub(crate) units: Option<[Sample; MAX_UNITS]>,
    /// Per pipe.
    pub(crate) pipes: [Sample; NUM_PIPES],
}

impl DeviceBusy {
    /// No samples yet (every counter zero), initialised in place.
    pub(crate) fn new() -> impl kernel::prelude::Init<Self> {
        pin_init::init_zeroed()
    }

    /// Keeps `msg` if it is a sample of a known pipe, queue or unit.
    pub(crate) fn record(&mut self, msg: &StatsMsg) -> Recorded {
        let (slot, what) = match msg.kind {
            STATS_PIPE => (self.pipes.get_mut(msg.id as usize), Recorded::Pipe),
            STATS_QUEUE => (self.queues.get_mut(msg.id as usize), Recorded::Queue),
            STATS_UNIT => (self.units.get_mut(msg.id as usize), Recorded::Unit),
            STATS_EMULATION => (self.emulation.get_mut(msg.id as usize), Recorded::Emulation),
            _ => (None, Recorded::Unknown),
        };
        match slot {
            Some(s) => {
                s.latest = Sample::from(msg);
                self.now_ns = self.now_ns.max(msg.time_ns);
                self.have_units |= what == Recorded::Unit;
                what
            }
            None => Recorded::Unknown,
        }
    }

    /// A new queue took id `id`: it counts from zero.
    pub(crate) fn reset_queue(&mut self, id: u32) {
        if let Some(s) = self.queues.get_mut(id as usize) {
            *s = Counter::default();
        }
    }

    /// The firmware rebooted: its counters start again from zero.
    pub(crate) fn rebooted(&mut self) {
        for c in self
            .pipes
            .iter_mut()
            .chain(self.queues.iter_mut())
            .chain(self.units.iter_mut())
            .chain(self.emulation.iter_mut())
        {
            c.carry_over();
        }
    }

    /// Queue `id`'s total.
    pub(crate) fn queue(&self, id: u32) -> Sample {
        self.queues
            .get(id as usize)
            .map_or(Sample::ZERO, Counter::total)
    }

    /// The device time of the newest sample.
    pub(crate) fn time_ns(&self) -> u64 {
        self.now_ns
    }

    /// The device time and the totals of every pipe and unit.
    pub(crate) fn totals(&self) -> Totals {
        Totals {
            time_ns: self.now_ns,
            units: self
                .have_units
                .then(|| core::array::from_fn(|i| self.units[i].total())),
            pipes: core::array::from_fn(|i| self.pipes[i].total()),
        }
    }

    /// Debugfs: the device time, then every pipe, every unit (if counted), then every queue
    /// that has run something.
    pub(crate) fn dump(&self, w: &mut impl core::fmt::Write) -> core::fmt::Result {
        writeln!(w, "device_time_ns {}", self.now_ns)?;
        for (i, p) in self.pipes.iter().enumerate() {
            let t = p.total();
            writeln!(w, "pipe {i} busy_ns {} entries {}", t.busy_ns, t.entries)?;
        }
        if self.have_units {
            let [modelled, host] = [
                self.emulation[EMULATION_MODELLED as usize].total(),
                self.emulation[EMULATION_HOST as usize].total(),
            ];
            writeln!(
                w,
                "emulation commands {} modelled_ns {} late {} host_ns {}",
                modelled.entries, modelled.busy_ns, host.entries, host.busy_ns
            )?;
            for (i, u) in self.units.iter().enumerate() {
                let t = u.total();
                if t != Sample::ZERO {
                    writeln!(w, "unit {i} busy_ns {} commands {}", t.busy_ns, t.entries)?;
                }
            }
        }
        for (i, q) in self.queues.iter().enumerate() {
            let t = q.total();
            if t != Sample::ZERO {
                writeln!(w, "queue {i} busy_ns {} entries {}", t.busy_ns, t.entries)?;
            }
        }
        Ok(())
    }
}

#[cfg(CONFIG_DRM_VAGX_KUNIT_TEST)]
#[kernel::macros::kunit_tests(vagx_busy)]
mod tests {
    use super::*;
    use kernel::prelude::*;

    fn msg(kind: u32, id: u32, busy_ns: u64, entries: u64, time_ns: u64) -> StatsMsg {
        StatsMsg {
            kind,
            id,
            busy_ns,
            entries,
            time_ns,
        }
    }

    fn sample(busy_ns: u64, entries: u64) -> Sample {
        Sample { busy_ns, entries }
    }

    #[test]
    fn samples_replace_older_ones_and_a_new_queue_counts_from_zero() -> Result {
        let mut b = KBox::init(DeviceBusy::new(), GFP_KERNEL)?;
        assert_eq!(
            b.record(&msg(STATS_QUEUE, 5, 100, 1, 1000)),
            Recorded::Queue
        );
        assert_eq!(
            b.record(&msg(STATS_QUEUE, 5, 300, 3, 2000)),
            Recorded::Queue
        );
        assert_eq!(b.queue(5), sample(300, 3));
        assert_eq!(b.now_ns, 2000);
        b.reset_queue(5);
        assert_eq!(b.queue(5), Sample::default());
        assert_eq!(b.record(&msg(STATS_PIPE, 1, 700, 7, 1500)), Recorded::Pipe);
        assert_eq!(b.totals().pipes[1], sample(700, 7));
        // An older sample does not move the device time back.
        assert_eq!(b.now_ns, 2000);
        Ok(())
    }

    #[test]
    fn unit_totals_appear_with_the_first_unit_sample_and_survive_a_reboot() -> Result {
        let mut b = KBox::init(DeviceBusy::new(), GFP_KERNEL)?;
        assert_eq!(b.record(&msg(STATS_PIPE, 0, 50, 1, 10)), Recorded::Pipe);
        // An ABI 1.1 firmware counts no units.
        assert_eq!(b.totals().units, None);
        assert_eq!(b.record(&msg(STATS_UNIT, 3, 400, 4, 20)), Recorded::Unit);
        assert_eq!(b.record(&msg(STATS_QUEUE, 2, 90, 2, 20)), Recorded::Queue);
        let units = b.totals().units.unwrap_or_default();
        assert_eq!(units[3], sample(400, 4));
        assert_eq!(units[0], Sample::default());
        // The rebooted firmware counts from zero again; the totals go on.
        b.rebooted();
        assert_eq!(b.totals().units.unwrap_or_default()[3], sample(400, 4));
        assert_eq!(b.record(&msg(STATS_UNIT, 3, 100, 1, 30)), Recorded::Unit);
        assert_eq!(b.record(&msg(STATS_PIPE, 0, 5, 1, 30)), Recorded::Pipe);
        assert_eq!(b.record(&msg(STATS_QUEUE, 2, 10, 1, 30)), Recorded::Queue);
        let t = b.totals();
        assert_eq!(t.units.unwrap_or_default()[3], sample(500, 5));
        assert_eq!(t.pipes[0], sample(55, 2));
        assert_eq!(b.queue(2), sample(100, 3));
        assert_eq!(t.time_ns, 30);
        Ok(())
    }

    #[test]
    fn emulation_samples_are_kept_by_id() -> Result {
        let mut b = KBox::init(DeviceBusy::new(), GFP_KERNEL)?;
        let modelled = msg(STATS_EMULATION, EMULATION_MODELLED, 900, 9, 5);
        let host = msg(STATS_EMULATION, EMULATION_HOST, 1200, 2, 5);
        assert_eq!(b.record(&modelled), Recorded::Emulation);
        assert_eq!(b.record(&host), Recorded::Emulation);
        assert_eq!(
            b.record(&msg(STATS_EMULATION, 2, 1, 1, 5)),
            Recorded::Unknown
        );
        assert_eq!(b.emulation[0].total(), sample(900, 9));
        assert_eq!(b.emulation[1].total(), sample(1200, 2));
        Ok(())
    }

    #[test]
    fn unknown_kinds_and_ids_are_not_kept() -> Result {
        let mut b = KBox::init(DeviceBusy::new(), GFP_KERNEL)?;
        // CAST: small constants.
        let too_big_queue = MAX_QUEUES as u32;
        let too_big_pipe = NUM_PIPES as u32;
        let too_big_unit = MAX_UNITS as u32;
        assert_eq!(b.record(&msg(7, 0, 1, 1, 1)), Recorded::Unknown);
        assert_eq!(
            b.record(&msg(STATS_QUEUE, too_big_queue, 1, 1, 1)),
            Recorded::Unknown
        );
        assert_eq!(
            b.record(&msg(STATS_PIPE, too_big_pipe, 1, 1, 1)),
            Recorded::Unknown
        );
        assert_eq!(
            b.record(&msg(STATS_UNIT, too_big_unit, 1, 1, 1)),
            Recorded::Unknown
        );
        assert_eq!(b.now_ns, 0);
        assert_eq!(b.totals().units, None);
        Ok(())
    }
}
