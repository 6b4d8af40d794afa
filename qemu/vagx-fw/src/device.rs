// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The whole device: registers, mailboxes, interrupts and the firmware's state.
//!
//! [`Device`] is what the QEMU shell owns. It calls [`Device::mmio_read`] and
//! [`Device::mmio_write`] for BAR0 accesses, [`Device::advance`] when the virtual clock reaches
//! [`Device::next_deadline`], and delivers an MSI-X message whenever [`Device::take_irq`] says
//! so. Everything else (boot, device control, scheduling, events) is in the sibling modules,
//! which add `impl Device` blocks.

use std::collections::{BTreeMap, VecDeque};

use vagx_abi::{
    channels::{EventMsg, EventStamps, LogMsg, StatsMsg},
    mbox,
    regs::{self, *},
    NUM_PIPES, NUM_STAMP_SLOTS,
};

use crate::{
    boot::Channels,
    deps::FailureRecord,
    exec::Rates,
    mem::Memory,
    mmio::{decode, MmioError},
    mmu::Vm,
    sched::{Unit, WorkQueue},
};

/// Device properties, fixed at creation.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Parallel execution units (1 to 16).
    pub units: u32,
    /// Throughput of the cost model.
    pub rates: Rates,
    /// How the firmware misbehaves at boot, to test a driver's failure paths.
    pub boot_fault: BootFault,
    /// What `ABI_VERSION` reads, if not the version this model implements (a device from
    /// another ABI generation, for drivers' version checks). An older minor version of the
    /// same major is also what the firmware then implements: a 1.0 device refuses a 1.1 boot
    /// and the 1.1 flags.
    pub abi_version: Option<u32>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            units: 2,
            rates: Rates::default(),
            boot_fault: BootFault::None,
            abi_version: None,
        }
    }
}

/// A firmware that misbehaves at boot (QEMU property `boot-fault`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BootFault {
    /// Boots normally.
    #[default]
    None,
    /// Refuses every INIT: boot fails (`FAILED`, error `Injected`).
    Fail,
    /// Never answers INIT: the firmware stays `OFF`.
    Silent,
    /// Boots, then crashes at once (`CRASHED`, error `Injected`).
    Crash,
}

impl BootFault {
    /// Decodes the property's value: 0 none, 1 fail, 2 silent, 3 crash.
    pub fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            0 => Self::None,
            1 => Self::Fail,
            2 => Self::Silent,
            3 => Self::Crash,
            _ => return None,
        })
    }
}

/// Maximum number of units.
pub const MAX_UNITS: u32 = 16;

/// Firmware states, as in `FW_STATE`: the ABI crate's, shared with the driver.
pub use vagx_abi::regs::FwState;

/// Armed fault injections (`DEBUG_INJECT`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Injections {
    /// The next entry this queue starts hangs.
    pub hang_queue: Option<u32>,
    /// (queue, command index): that command of the queue's next entry faults.
    pub fault_at: Option<(u32, u32)>,
    /// The firmware crashes after this many more completed entries.
    pub crash_after: Option<u32>,
    /// Interrupt notifications still to drop.
    pub drop_irqs: u32,
    /// The next interrupt notification is held back this long (ns of device time).
    pub delay_irq: Option<u64>,
    /// A held-back notification is due at this device time.
    pub irq_due: Option<u64>,
    /// Boots still to go silent (`INJECT_SILENCE`'s `ARG0`): while not zero, an `INIT` after a
    /// reset takes one off and is never answered. Unlike everything else here, it survives a
    /// write to `RESET` (the boots it counts come after that reset).
    pub silent_boots: u32,
}

/// Bounds on what the firmware buffers while a firmware-to-host ring is full.
pub(crate) const EVENT_BACKLOG: usize = 4096;
pub(crate) const LOG_BACKLOG: usize = 256;

/// The vagx device.
#[derive(Debug)]
pub struct Device {
    pub(crate) config: Config,
    // Registers.
    pub(crate) scratch: u32,
    pub(crate) h2f: [u32; 2],
    pub(crate) f2h: VecDeque<(u32, u64)>,
    pub(crate) irq_status: u32,
    pub(crate) irq_mask: u32,
    pub(crate) irq_notify: bool,
    /// Device time at which the pending notification was requested.
    pub(crate) irq_since: u64,
    pub(crate) debug_args: [u32; 2],
    // Firmware.
    pub(crate) state: FwState,
    /// Silenced by `INJECT_SILENCE` or a silent boot: the firmware does nothing at all until a
    /// reset, and `state` keeps the value it had.
    pub(crate) silent: bool,
    pub(crate) error: u32,
    pub(crate) time: u64,
    pub(crate) channels: Option<Channels>,
    pub(crate) vms: BTreeMap<u32, Vm>,
    pub(crate) queues: BTreeMap<u32, WorkQueue>,
    pub(crate) units: Vec<Unit>,
    pub(crate) rr_clock: u64,
    pub(crate) inject: Injections,
    pub(crate) event_seq: u32,
    pub(crate) events: VecDeque<EventMsg>,
    /// Events were written to the event ring since the last `RX_DOORBELL` decision.
    pub(crate) events_written: bool,
    pub(crate) firing: EventStamps,
    pub(crate) logs: VecDeque<LogMsg>,
    pub(crate) stats: VecDeque<StatsMsg>,
    pub(crate) logs_dropped: u64,
    pub(crate) new_log_entries: u32,
    pub(crate) new_stats_entries: u32,
    pub(crate) halt_seq: u32,
    pub(crate) pipe_busy_ns: [u64; NUM_PIPES],
    pub(crate) pipe_entries: [u64; NUM_PIPES],
    pub(crate) slots: [bool; NUM_STAMP_SLOTS],
    /// The firmware's copy of every stamp slot's value.
    pub(crate) stamp_mirror: [u32; NUM_STAMP_SLOTS],
    /// Which stamps of every slot failed, for dependency errors.
    pub(crate) failures: [FailureRecord; NUM_STAMP_SLOTS],
    pub(crate) traces: Vec<crate::trace::Trace>,
    pub(crate) traces_dropped: u64,
    /// Whether the log and stats rings were found broken at the last flush.
    pub(crate) output_broken: [bool; 2],
}

impl Device {
    /// A device in its reset state with `config` (units clamped to 1..=`MAX_UNITS`).
    pub fn new(mut config: Config) -> Self {
        config.units = config.units.clamp(1, MAX_UNITS);
        Self {
            config,
            scratch: 0,
            h2f: [0; 2],
            f2h: VecDeque::new(),
            irq_status: 0,
            irq_mask: 0,
            irq_notify: false,
            irq_since: 0,
            debug_args: [0; 2],
            state: FwState::Off,
            silent: false,
            error: 0,
            time: 0,
            channels: None,
            vms: BTreeMap::new(),
            queues: BTreeMap::new(),
            units: (0..config.units).map(|_| Unit::default()).collect(),
            rr_clock: 0,
            inject: Injections::default(),
            event_seq: 0,
            events: VecDeque::new(),
            events_written: false,
            firing: EventStamps::default(),
            logs: VecDeque::new(),
            stats: VecDeque::new(),
            logs_dropped: 0,
            new_log_entries: 0,
            new_stats_entries: 0,
            halt_seq: 0,
            pipe_busy_ns: [0; NUM_PIPES],
            pipe_entries: [0; NUM_PIPES],
            slots: [false; NUM_STAMP_SLOTS],
            stamp_mirror: [0; NUM_STAMP_SLOTS],
            failures: std::array::from_fn(|_| FailureRecord::default()),
            traces: Vec::new(),
            traces_dropped: 0,
            output_broken: [false; 2],
        }
    }

    /// Returns to the reset state: firmware off, everything forgotten but the clock, which keeps
    /// going, and the boots [`Injections::silent_boots`] still silences.
    pub fn reset(&mut self) {
        let (time, silent_boots) = (self.time, self.inject.silent_boots);
        *self = Self::new(self.config);
        self.time = time;
        self.inject.silent_boots = silent_boots;
    }

    /// The ABI minor version the firmware implements: the model's own, or an older one of the
    /// same major that [`Config::abi_version`] asks for.
    pub(crate) fn implemented_minor(&self) -> u16 {
        match self.config.abi_version {
            // CAST: the low half of the version is the minor.
            Some(v) if v >> 16 == u32::from(ABI_MAJOR) => (v as u16).min(ABI_MINOR),
            _ => ABI_MINOR,
        }
    }

    /// The firmware state.
    pub fn state(&self) -> FwState {
        self.state
    }

    /// Whether the firmware is silent (`INJECT_SILENCE`): it does nothing until a reset, while
    /// [`Device::state`] and `FW_STATE` keep the state it was in.
    pub fn is_silent(&self) -> bool {
        self.silent
    }

    /// The device's clock: the last time passed to [`Device::advance`] or an MMIO write.
    pub fn time(&self) -> u64 {
        self.time
    }

    /// Armed fault injections (device properties may pre-arm them).
    pub fn injections_mut(&mut self) -> &mut Injections {
        &mut self.inject
    }

    /// Reads the register at `offset` with an access of `size` bytes.
    ///
    /// # Errors
    ///
    /// [`MmioError`] if the access is not an aligned 4-byte access to a register.
    pub fn mmio_read(&self, offset: u64, size: u32) -> Result<u32, MmioError> {
        let head = self.f2h.front().copied().unwrap_or((0, 0));
        Ok(match decode(offset, size)? {
            ID => ID_MAGIC,
            ABI_VERSION => self.config.abi_version.unwrap_or(ABI_VERSION_VALUE),
            SCRATCH => self.scratch,
            UNITS => self.config.units,
            FW_STATE => self.state.raw(),
            FW_ERROR => self.error,
            MBOX_H2F_LO => self.h2f[0],
            MBOX_H2F_HI => self.h2f[1],
            // CAST: the low and high halves of the message.
            MBOX_F2H_LO => head.1 as u32,
            MBOX_F2H_HI => (head.1 >> 32) as u32,
            MBOX_F2H_EP => head.0,
            // CAST: the FIFO holds at most MBOX_F2H_DEPTH messages.
            MBOX_F2H_COUNT => self.f2h.len() as u32,
            IRQ_STATUS => self.irq_status,
            IRQ_MASK => self.irq_mask,
            DEBUG_ARG0 => self.debug_args[0],
            DEBUG_ARG1 => self.debug_args[1],
            // Write-only registers read as zero.
            MBOX_H2F_SEND | RESET | DEBUG_INJECT => 0,
            _ => return Err(MmioError::Unmapped(offset)),
        })
    }

    /// Writes `value` to the register at `offset` at device time `now`.
    ///
    /// Writes with side effects (a mailbox send, a reset) act immediately.
    ///
    /// # Errors
    ///
    /// [`MmioError`] if the access is not an aligned 4-byte access to a writable register or the
    /// value is not accepted (a wrong reset magic, an unknown injection); nothing changes then.
    pub fn mmio_write(
        &mut self,
        mem: &mut dyn Memory,
        now: u64,
        offset: u64,
        size: u32,
        value: u32,
    ) -> Result<(), MmioError> {
        let reg = decode(offset, size)?;
        match reg {
            SCRATCH => self.scratch = value,
            MBOX_H2F_LO => self.h2f[0] = value,
            MBOX_H2F_HI => self.h2f[1] = value,
            MBOX_H2F_SEND => {
                let msg = (u64::from(self.h2f[1]) << 32) | u64::from(self.h2f[0]);
                self.advance(mem, now);
                self.receive(mem, value, msg);
                self.flush_outputs(mem);
            }
            MBOX_F2H_COUNT => {
                self.f2h.pop_front();
                if !self.f2h.is_empty() {
                    self.raise(IRQ_MBOX);
                }
            }
            IRQ_STATUS => self.irq_status &= !value,
            IRQ_MASK => {
                self.irq_mask = value & IRQ_ALL;
                if self.irq_status & self.irq_mask != 0 {
                    self.request_irq();
                }
            }
            RESET if value == RESET_MAGIC => self.reset(),
            RESET => return Err(MmioError::BadValue { offset, value }),
            DEBUG_ARG0 => self.debug_args[0] = value,
            DEBUG_ARG1 => self.debug_args[1] = value,
            DEBUG_INJECT => self
                .arm_injection(value)
                .ok_or(MmioError::BadValue { offset, value })?,
            ID | ABI_VERSION | UNITS | FW_STATE | FW_ERROR | MBOX_F2H_LO | MBOX_F2H_HI
            | MBOX_F2H_EP => return Err(MmioError::ReadOnly(offset)),
            _ => return Err(MmioError::Unmapped(offset)),
        }
        Ok(())
    }

    fn arm_injection(&mut self, what: u32) -> Option<()> {
        let [a0, a1] = self.debug_args;
        match what {
            // A silence that has begun is not an armed injection: only a reset ends it.
            regs::INJECT_CLEAR => self.inject = Injections::default(),
            regs::INJECT_HANG_QUEUE => self.inject.hang_queue = Some(a0),
            regs::INJECT_FAULT_AT => self.inject.fault_at = Some((a0, a1)),
            regs::INJECT_CRASH_AFTER => self.inject.crash_after = Some(a0),
            regs::INJECT_DROP_IRQS => self.inject.drop_irqs = a0,
            regs::INJECT_DELAY_IRQ => self.inject.delay_irq = Some(u64::from(a0)),
            regs::INJECT_SILENCE => {
                self.silent = true;
                self.inject.silent_boots = a0;
            }
            _ => return None,
        }
        Some(())
    }

    /// Latches interrupt causes; an unmasked new cause requests a notification.
    pub(crate) fn raise(&mut self, causes: u32) {
        let new = causes & !self.irq_status;
        self.irq_status |= causes;
        if (new | causes & IRQ_MBOX) & self.irq_mask != 0 {
            self.request_irq();
        }
    }

    fn request_irq(&mut self) {
        if !self.irq_notify {
            self.irq_notify = true;
            self.irq_since = self.time;
        }
    }

    /// Whether the shell should send the MSI-X message now; clears the request.
    ///
    /// A request swallowed by `INJECT_DROP_IRQS` returns `false` (the status bits stay set); one
    /// held back by `INJECT_DELAY_IRQ` returns `true` once the device time reaches its due time
    /// (which [`Device::next_deadline`] reports). A silent firmware sends none: requests made
    /// while it is silent, and one held back when it fell silent, are dropped.
    pub fn take_irq(&mut self) -> bool {
        if self.silent {
            self.irq_notify = false;
            self.inject.irq_due = None;
            return false;
        }
        if let Some(due) = self.inject.irq_due {
            if self.time < due {
                return false;
            }
            self.inject.irq_due = None;
            self.irq_notify = true;
        }
        if !self.irq_notify {
            return false;
        }
        if let Some(delay) = self.inject.delay_irq.take() {
            self.inject.irq_due = Some(self.irq_since.saturating_add(delay));
            self.irq_notify = false;
            return false;
        }
        self.irq_notify = false;
        if self.inject.drop_irqs > 0 {
            self.inject.drop_irqs -= 1;
            return false;
        }
        true
    }

    /// Queues a firmware-to-host mailbox message and raises `IRQ_MBOX`.
    ///
    /// A full FIFO drops the oldest `MSG_RX_DOORBELL` first (the host reads every ring when it
    /// handles any of them), else the new message.
    pub(crate) fn send_to_host(&mut self, ep: u32, msg: u64) {
        if self.f2h.len() >= regs::MBOX_F2H_DEPTH {
            let doorbell = self
                .f2h
                .iter()
                .position(|&(_, m)| mbox::message_type(m) == mbox::MSG_RX_DOORBELL);
            match doorbell {
                Some(i) => {
                    self.f2h.remove(i);
                }
                None => return,
            }
        }
        self.f2h.push_back((ep, msg));
        self.raise(IRQ_MBOX);
    }

    /// Runs the firmware until device time `now`.
    pub fn advance(&mut self, mem: &mut dyn Memory, now: u64) {
        self.run_until(mem, now.max(self.time));
        self.flush_outputs(mem);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_firmware_state_round_trips_through_its_register_value() {
        let all = [
            FwState::Off,
            FwState::Booting,
            FwState::Running,
            FwState::Halted,
            FwState::Crashed,
            FwState::Failed,
        ];
        for s in all {
            assert_eq!(FwState::try_from(s.raw()), Ok(s));
        }
        // The values are the register's 0..=5; anything else is refused, not guessed.
        assert_eq!(
            all.map(FwState::raw),
            [
                FW_STATE_OFF,
                FW_STATE_BOOTING,
                FW_STATE_RUNNING,
                FW_STATE_HALTED,
                FW_STATE_CRASHED,
                FW_STATE_FAILED
            ]
        );
        assert_eq!(FwState::try_from(6), Err(regs::UnknownFwState(6)));
        assert_eq!(
            FwState::try_from(u32::MAX),
            Err(regs::UnknownFwState(u32::MAX))
        );
    }
}
