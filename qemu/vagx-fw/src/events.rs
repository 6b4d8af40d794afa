// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Firmware-to-host output: events, log messages and statistics, and the doorbell that
//! announces them.
//!
//! Outputs are queued in the device and written to their rings by `Device::flush_outputs`,
//! which runs after every host access and every advance of time. A full event ring keeps events
//! queued (up to a bound) until the host frees space; a full log ring drops the oldest log
//! messages and counts them.
//!
//! The queues are an `Outputs`, which knows nothing of the rest of the device: a flush reports
//! whether it wrote events, and the device decides about the doorbell.

use std::collections::VecDeque;

use vagx_abi::{
    channels::{
        EventError, EventLog, EventMsg, EventPayload, EventStamps, LogMsg, StatsMsg,
        ERROR_BAD_RING_POINTER, LOG_ERROR, LOG_WARN,
    },
    mbox,
    regs::IRQ_RINGS,
};

use crate::{
    boot::Channels,
    device::Device,
    mem::Memory,
    ring::{Ring, RingError},
};

/// Bounds on what the firmware buffers while a firmware-to-host ring is full.
const EVENT_BACKLOG: usize = 4096;
const LOG_BACKLOG: usize = 256;

/// What the firmware has to say and has not yet written: events, log messages and statistics
/// waiting for room in their rings, the STAMPS event being gathered, and the state of the
/// rings' reporting.
///
/// # Invariants
///
/// `events` holds at most [`EVENT_BACKLOG`] messages, `logs` and `stats` at most
/// [`LOG_BACKLOG`]; beyond, the oldest go (events leave a gap in `seq`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Outputs {
    /// `seq` of the next event.
    event_seq: u32,
    events: VecDeque<EventMsg>,
    /// Events were written to the event ring since the last `RX_DOORBELL` decision.
    events_written: bool,
    /// Slots whose stamps changed since the last STAMPS event.
    firing: EventStamps,
    logs: VecDeque<LogMsg>,
    stats: VecDeque<StatsMsg>,
    logs_dropped: u64,
    /// Entries written to the log and stats rings since the last LOG event.
    new_log_entries: u32,
    new_stats_entries: u32,
    /// Whether the log and stats rings were found broken at the last flush.
    output_broken: [bool; 2],
}

impl Outputs {
    /// Queues an event.
    pub(crate) fn event<T: EventPayload>(&mut self, payload: &T) {
        let msg = EventMsg::new(self.event_seq, payload);
        self.event_seq = self.event_seq.wrapping_add(1);
        if self.events.len() >= EVENT_BACKLOG {
            // The host stopped reading events; it will see the gap in `seq`.
            self.events.pop_front();
        }
        self.events.push_back(msg);
    }

    /// Queues a log message made at device time `now` (truncated to the message's 112 bytes).
    pub(crate) fn log(&mut self, level: u32, text: &str, now: u64) {
        let mut msg = LogMsg {
            level,
            len: 0,
            time_ns: now,
            text: [0; 112],
        };
        let mut len = text.len().min(msg.text.len());
        while !text.is_char_boundary(len) {
            len -= 1;
        }
        msg.text[..len].copy_from_slice(&text.as_bytes()[..len]);
        // CAST: at most 112.
        msg.len = len as u32;
        if self.logs.len() >= LOG_BACKLOG {
            self.logs.pop_front();
            self.logs_dropped += 1;
        }
        self.logs.push_back(msg);
    }

    /// Queues a statistics sample.
    pub(crate) fn stat(&mut self, msg: StatsMsg) {
        if self.stats.len() >= LOG_BACKLOG {
            self.stats.pop_front();
        }
        self.stats.push_back(msg);
    }

    /// Notes that stamp slot `slot` changed, for the next STAMPS event.
    pub(crate) fn stamp_changed(&mut self, slot: u32) {
        self.firing.set(slot as usize);
    }

    /// Whether events wait for room in the event ring.
    pub(crate) fn events_queued(&self) -> bool {
        !self.events.is_empty()
    }

    /// Writes queued outputs to their rings in `ch` at device time `now`; returns whether
    /// events were written since the last flush (the host's doorbell is then due).
    fn flush(&mut self, ch: &mut Channels, mem: &mut dyn Memory, now: u64) -> bool {
        if self.firing != EventStamps::default() {
            let firing = std::mem::take(&mut self.firing);
            self.event(&firing);
        }
        let mut ring_errors = Vec::new();

        while let Some(log) = self.logs.front() {
            match ch.fwlog.push(mem, log) {
                Ok(true) => {
                    self.logs.pop_front();
                    self.new_log_entries += 1;
                }
                Ok(false) => break,
                Err(e) => {
                    ring_errors.push(("log", e));
                    break;
                }
            }
        }
        while let Some(stat) = self.stats.front() {
            match ch.stats.push(mem, stat) {
                Ok(true) => {
                    self.stats.pop_front();
                    self.new_stats_entries += 1;
                }
                Ok(false) => break,
                Err(e) => {
                    ring_errors.push(("stats", e));
                    break;
                }
            }
        }
        if self.new_log_entries + self.new_stats_entries > 0 {
            let note = EventLog {
                log_entries: std::mem::take(&mut self.new_log_entries),
                stats_entries: std::mem::take(&mut self.new_stats_entries),
            };
            self.event(&note);
        }
        if let Err(e) = self.write_events(&mut ch.event, mem) {
            ring_errors.push(("event", e));
        }
        // Events written since the last flush (some by the scheduler) need the doorbell too.
        let wrote = std::mem::take(&mut self.events_written);

        // Report a broken log or stats ring once, not on every flush until it is repaired.
        let broken = [
            ring_errors.iter().any(|(r, _)| *r == "log"),
            ring_errors.iter().any(|(r, _)| *r == "stats"),
        ];
        let newly = [
            broken[0] && !self.output_broken[0],
            broken[1] && !self.output_broken[1],
        ];
        self.output_broken = broken;
        for (ring, err) in ring_errors {
            let known = match ring {
                "log" => !newly[0],
                "stats" => !newly[1],
                _ => false,
            };
            if known {
                continue;
            }
            // Reported through the log only: the event ring itself may be what is broken.
            let text = match err {
                RingError::BadPointer(p) => format!("{ring} ring: host rptr {p} out of range"),
                RingError::Bus(b) => format!("{ring} ring: bus error at {:#x}", b.address),
                RingError::BadDescriptor => format!("{ring} ring: bad descriptor"),
            };
            if self.logs.len() < LOG_BACKLOG {
                self.log(LOG_ERROR, &text, now);
            }
            if let (RingError::BadPointer(p), false) = (err, ring == "event") {
                self.event(&EventError {
                    kind: ERROR_BAD_RING_POINTER,
                    object: u32::MAX,
                    value: u64::from(p),
                });
            }
        }
        wrote
    }

    /// Writes queued events to `ring`, oldest first, while it has room.
    fn write_events(
        &mut self,
        ring: &mut Ring<EventMsg>,
        mem: &mut dyn Memory,
    ) -> Result<(), RingError> {
        while let Some(ev) = self.events.front() {
            if !ring.push(mem, ev)? {
                break;
            }
            self.events.pop_front();
            self.events_written = true;
        }
        Ok(())
    }
}

impl Device {
    /// Queues a log message (truncated to the message's 112 bytes).
    pub(crate) fn log(&mut self, level: u32, text: &str) {
        self.out.log(level, text, self.time);
    }

    /// Writes queued outputs to their rings and rings the host's doorbell if any were written.
    ///
    /// A silent firmware writes nothing; what it had queued stays queued until the reset
    /// discards it.
    pub(crate) fn flush_outputs(&mut self, mem: &mut dyn Memory) {
        if self.silent {
            return;
        }
        let Some(ch) = self.channels.as_mut() else {
            return;
        };
        let wrote = self.out.flush(ch, mem, self.time);
        if wrote && self.regs.rings_irq() {
            // ABI 1.3: a status bit the host clears before it reads the rings, no message.
            self.raise(IRQ_RINGS);
        } else if wrote && !self.regs.doorbell_pending() {
            self.send_to_host(mbox::EP_FIRMWARE, mbox::message(mbox::MSG_RX_DOORBELL, 0));
        }
    }

    /// Writes queued events to the event ring, oldest first, while it has room.
    ///
    /// The scheduler calls this before it publishes the stamp of an entry whose error event is
    /// queued (see `EVENT_ENTRY_ERROR`); [`Device::flush_outputs`] calls it for everything else.
    ///
    /// # Errors
    ///
    /// The event ring's [`RingError`] if it cannot be written; the events stay queued.
    pub(crate) fn write_events(&mut self, mem: &mut dyn Memory) -> Result<(), RingError> {
        let Some(ch) = self.channels.as_mut() else {
            return Ok(());
        };
        self.out.write_events(&mut ch.event, mem)
    }

    /// Logs a warning about something the host did wrong.
    pub(crate) fn warn(&mut self, text: &str) {
        self.log(LOG_WARN, text);
    }
}
