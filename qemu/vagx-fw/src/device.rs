// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The whole device: the firmware's state, and the parts that own everything else.
//!
//! [`Device`] is what the QEMU shell owns. It calls [`Device::mmio_read`] and
//! [`Device::mmio_write`] for BAR0 accesses, [`Device::advance`] when the virtual clock reaches
//! [`Device::next_deadline`], and delivers an MSI-X message whenever [`Device::take_irq`] says
//! so. Everything else (boot, device control, scheduling, events) is in the sibling modules,
//! which add `impl Device` blocks.
//!
//! # Layout
//!
//! `Device` itself holds the configuration and the firmware's own state: its `FW_STATE`,
//! whether it is silent, its `FW_ERROR`, the clock, and the rings and tables the init data
//! described (`boot::Channels`). Everything else is a part owned by the module whose code uses
//! it:
//!
//! | Field    | Part                   | Owns                                                |
//! |----------|------------------------|-----------------------------------------------------|
//! | `regs`   | `mmio::Registers`      | scratch, mailboxes, interrupt latch, debug args     |
//! | `out`    | `events::Outputs`      | events, log messages and statistics not yet written |
//! | `sched`  | `sched::Scheduler`     | work queues, execution units, scheduling counters   |
//! | `slots`  | `deps::StampSlots`     | per stamp slot: held or not, stamp, failures        |
//! | `fabric` | `fabric::Attachment`   | the device's port on the peer fabric, if attached   |
//! | `vms`    | `mmu::VmTable`         | the VMs the host bound                              |
//! | `inject` | [`Injections`]         | armed fault injections ([`crate::inject`])          |
//! | `traces` | `trace::TraceBuffer`   | trace records for the shell                         |
//!
//! A part never reaches into another: its methods change its own state, read only what they
//! are given, and return what the rest of the device must do (a register write's `mmio::Action`, a flush's "ring the
//! doorbell", a halt's pending table, a reset queue's stamp to publish), and the `impl Device`
//! blocks carry that out.

use std::{cell::Cell, sync::Arc};

use vagx_abi::regs::*;

use crate::{
    boot::Channels,
    events::Outputs,
    exec::Rates,
    fabric::{Attachment, Fabric, SharedSlots, Waker, NO_FABRIC},
    inject::{Armed, HeldIrq},
    mem::Memory,
    mmio::{decode, Action, MmioError, Registers},
    mmu::VmTable,
    sched::Scheduler,
    trace::TraceBuffer,
    workers::Workers,
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
    /// Worker threads for the commands that move data ([`crate::workers`]); 0 runs every
    /// command on the thread that drives the model.
    pub workers: u32,
    /// The shortest modelled cost, in device ns, of a command handed to a worker; shorter ones
    /// run at their completion on the model's thread. A worker's wake-up on a busy host can
    /// outlast a short command, which then finishes late, while the model's own thread runs
    /// it in a few host microseconds.
    pub offload_min_ns: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            units: 2,
            rates: Rates::default(),
            boot_fault: BootFault::None,
            abi_version: None,
            workers: 0,
            offload_min_ns: OFFLOAD_MIN_NS,
        }
    }
}

/// [`Config::offload_min_ns`]'s default: 100 µs.
pub const OFFLOAD_MIN_NS: u64 = 100_000;

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
// CAST: a small constant.
pub const MAX_UNITS: u32 = vagx_abi::MAX_UNITS as u32;

/// Firmware states, as in `FW_STATE`: the ABI crate's, shared with the driver.
pub use vagx_abi::regs::FwState;

/// Armed fault injections, in [`crate::inject`].
pub use crate::inject::Injections;

/// The vagx device.
#[derive(Debug)]
pub struct Device {
    pub(crate) config: Config,
    // The firmware.
    pub(crate) state: FwState,
    /// Silenced by `INJECT_SILENCE` or a silent boot: the firmware does nothing at all until a
    /// reset, and `state` keeps the value it had.
    pub(crate) silent: bool,
    /// `FW_ERROR`: why the boot failed or the firmware crashed.
    pub(crate) error: u32,
    /// The device's clock (ns).
    pub(crate) time: u64,
    /// The rings and tables of the init data, once booted.
    pub(crate) channels: Option<Channels>,
    // Its parts (see the module docs).
    /// The registers that are plain state, the mailboxes and the interrupt latch.
    pub(crate) regs: Registers,
    /// Events, log messages and statistics on their way to the host.
    pub(crate) out: Outputs,
    /// The work queues and the execution units.
    pub(crate) sched: Scheduler,
    /// Every stamp slot: held by a queue or not, its stamp, its failures (shared with the
    /// fabric, whose other devices read them).
    pub(crate) slots: SharedSlots,
    /// The device's port on the peer fabric ([`Device::attach`]); kept across resets.
    pub(crate) fabric: Option<Attachment>,
    /// What the fabric was last told: the slots' version and whether the device was dead.
    pub(crate) published: (u64, bool),
    /// The earliest device time at which a parked peer wait, already resolved on its peer at
    /// a time this device has not reached, may go on; a deadline. Set by each scheduling pass
    /// (`fill_units`).
    pub(crate) peer_ready: Cell<Option<u64>>,
    /// The VMs the host bound.
    pub(crate) vms: VmTable,
    /// Armed fault injections.
    pub(crate) inject: Injections,
    /// Trace records for the shell.
    pub(crate) traces: TraceBuffer,
    /// Where commands run, if [`Config::workers`] asks for threads (kept across resets).
    pub(crate) workers: Option<Arc<Workers>>,
}

/// The ABI minor version a device made with `config` implements (see
/// [`Device::implemented_minor`]).
fn minor_of(config: &Config) -> u16 {
    match config.abi_version {
        // CAST: the low half of the version is the minor.
        Some(v) if v >> 16 == u32::from(ABI_MAJOR) => (v as u16).min(ABI_MINOR),
        _ => ABI_MINOR,
    }
}

impl Device {
    /// A device in its reset state with `config` (units clamped to 1..=`MAX_UNITS`).
    pub fn new(mut config: Config) -> Self {
        config.units = config.units.clamp(1, MAX_UNITS);
        Self {
            config,
            state: FwState::Off,
            silent: false,
            error: 0,
            time: 0,
            channels: None,
            regs: Registers::new(minor_of(&config)),
            out: Outputs::default(),
            sched: Scheduler::new(config.units),
            slots: SharedSlots::default(),
            fabric: None,
            published: (0, false),
            peer_ready: Cell::new(None),
            vms: VmTable::default(),
            inject: Injections::default(),
            traces: TraceBuffer::default(),
            // A pool that cannot be made leaves the work on the caller's thread.
            workers: (config.workers > 0)
                .then(|| Workers::new(config.workers).ok().map(Arc::new))
                .flatten(),
        }
    }

    /// Returns to the reset state: firmware off, everything forgotten but the clock, which keeps
    /// going, and the boots [`Injections::silent_boots`] still silences.
    pub fn reset(&mut self) {
        let (time, inject, config) = (self.time, self.inject.after_reset(), self.config);
        let workers = self.workers.take();
        let fabric = self.fabric.take();
        *self = Self::new(Config {
            workers: 0,
            ..config
        });
        self.config = config;
        self.time = time;
        self.inject = inject;
        self.workers = workers;
        // A new epoch: waits made on the stamps of the device's previous life fail.
        if let Some(a) = &fabric {
            a.reset(self.slots.clone(), time);
        }
        self.fabric = fabric;
    }

    /// Attaches the device to `fabric`, where `waker` tells it that a peer it waits for
    /// changed; returns its port, or `None` if the fabric has no free port (the device then
    /// works alone: no other device can wait for it, and its peer waits fail).
    pub fn attach(&mut self, fabric: &Arc<Fabric>, waker: Arc<dyn Waker>) -> Option<u32> {
        self.fabric = fabric.attach(self.slots.clone(), waker);
        self.fabric.as_ref().map(Attachment::port)
    }

    /// Leaves the fabric: waits of other devices on this one fail.
    pub fn detach(&mut self) {
        self.fabric = None;
    }

    /// Tells the fabric about a change of the stamp slots or of whether the firmware is dead,
    /// so that peers parked on them look again.
    fn publish(&mut self) {
        let Some(a) = &self.fabric else {
            return;
        };
        let version = self.slots.lock().version();
        let dead = matches!(self.state, FwState::Crashed | FwState::Failed);
        if self.published != (version, dead) {
            self.published = (version, dead);
            a.publish(dead, self.time);
        }
    }

    /// The ABI minor version the firmware implements: the model's own, or an older one of the
    /// same major that [`Config::abi_version`] asks for.
    pub(crate) fn implemented_minor(&self) -> u16 {
        minor_of(&self.config)
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
        let reg = decode(offset, size)?;
        Ok(match reg {
            ID => ID_MAGIC,
            ABI_VERSION => self.config.abi_version.unwrap_or(ABI_VERSION_VALUE),
            UNITS => self.config.units,
            FW_STATE => self.state.raw(),
            FW_ERROR => self.error,
            FABRIC if self.implemented_minor() >= ABI_MINOR_PEER_WAITS => {
                self.fabric.as_ref().map_or(NO_FABRIC, Attachment::register)
            }
            _ => self.regs.read(reg).ok_or(MmioError::Unmapped(offset))?,
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
        // The registers latch interrupts at the device's clock; only a mailbox send moves it
        // to `now`.
        match self.regs.write(offset, size, value, self.time)? {
            Action::None => {}
            Action::Send { ep, msg } => {
                self.advance(mem, now);
                self.receive(mem, ep, msg);
                self.flush_outputs(mem);
            }
            Action::Reset => self.reset(),
            Action::Inject { what, args } => {
                let armed = self.inject.arm(what, args);
                match armed.ok_or(MmioError::BadValue { offset, value })? {
                    Armed::Later => {}
                    Armed::Silence => self.silent = true,
                }
            }
        }
        self.publish();
        Ok(())
    }

    /// Latches interrupt causes; an unmasked new cause requests a notification.
    pub(crate) fn raise(&mut self, causes: u32) {
        self.regs.raise(causes, self.time);
    }

    /// Whether the shell should send the MSI-X message now; clears the request.
    ///
    /// A request swallowed by `INJECT_DROP_IRQS` returns `false` (the status bits stay set); one
    /// held back by `INJECT_DELAY_IRQ` returns `true` once the device time reaches its due time
    /// (which [`Device::next_deadline`] reports). A silent firmware sends none: requests made
    /// while it is silent, and one held back when it fell silent, are dropped.
    pub fn take_irq(&mut self) -> bool {
        if self.silent {
            // Dropped, not deferred: a silent firmware has nothing to say.
            self.regs.take_irq_request();
            self.inject.forget_held_irq();
            return false;
        }
        match self.inject.release_held_irq(self.time) {
            HeldIrq::None => {}
            HeldIrq::Waiting => return false,
            HeldIrq::Due => self.regs.renew_irq_request(),
        }
        match self.regs.take_irq_request() {
            Some(since) => self.inject.pass_irq(since),
            None => false,
        }
    }

    /// Queues a firmware-to-host mailbox message and raises `IRQ_MBOX` (see
    /// [`Registers::send_to_host`]).
    pub(crate) fn send_to_host(&mut self, ep: u32, msg: u64) {
        self.regs.send_to_host(ep, msg, self.time);
    }

    /// Runs the firmware until device time `now`.
    pub fn advance(&mut self, mem: &mut dyn Memory, now: u64) {
        // Every wait is looked at below: a wake-up is served.
        if let Some(a) = &self.fabric {
            a.take_woken();
        }
        self.run_until(mem, now.max(self.time));
        self.flush_outputs(mem);
        self.publish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vagx_abi::regs;

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
