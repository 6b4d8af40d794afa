// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Mailbox messages from the host, and boot: reading and checking the init data.

use vagx_abi::{
    channels::{
        DevCtrlMsg, EventCrash, EventError, EventMsg, LogMsg, PipeMsg, StatsMsg,
        ERROR_BAD_MAILBOX_MESSAGE, LOG_INFO, LOG_WARN,
    },
    init::{InitData, PendingTable, DEFAULT_WATCHDOG_NS, INIT_MAGIC},
    mbox::{self, FwError},
    pod,
    regs::{self, IRQ_STATE},
    NUM_PIPES, NUM_STAMP_SLOTS,
};

use crate::{
    device::{BootFault, Device, FwState},
    mem::{self, Memory},
    ring::{overlaps, Ring, RingError},
    trace::Trace,
};

/// The firmware's view of the rings and tables the init data described.
#[derive(Clone, Debug)]
pub struct Channels {
    pub(crate) devctrl: Ring<DevCtrlMsg>,
    pub(crate) event: Ring<EventMsg>,
    pub(crate) fwlog: Ring<LogMsg>,
    pub(crate) stats: Ring<StatsMsg>,
    pub(crate) pipes: [Ring<PipeMsg>; NUM_PIPES],
    pub(crate) stamps: u64,
    pub(crate) pending: u64,
    pub(crate) watchdog_ns: u64,
    /// The ABI minor version the driver declared, whose behaviour the firmware keeps to.
    pub(crate) abi_minor: u16,
}

impl Channels {
    /// Validates the init data's rings and tables, including that no two of them overlap.
    fn new(init: &InitData) -> Result<Self, FwError> {
        let bad = |_: RingError| FwError::InitBadRing;
        let mut pipes = Vec::with_capacity(NUM_PIPES);
        for desc in init.pipes {
            pipes.push(Ring::new(desc).map_err(bad)?);
        }
        let pipes: [Ring<PipeMsg>; NUM_PIPES] =
            pipes.try_into().map_err(|_| FwError::InitBadRing)?;
        let channels = Self {
            devctrl: Ring::new(init.devctrl).map_err(bad)?,
            event: Ring::new(init.event).map_err(bad)?,
            fwlog: Ring::new(init.fwlog).map_err(bad)?,
            stats: Ring::new(init.stats).map_err(bad)?,
            pipes,
            stamps: init.stamps,
            pending: init.pending,
            watchdog_ns: if init.watchdog_ns == 0 {
                DEFAULT_WATCHDOG_NS
            } else {
                init.watchdog_ns
            },
            // CAST: the low half of the version is the minor.
            abi_minor: init.abi_version as u16,
        };
        let mut areas = Vec::new();
        areas.extend(channels.devctrl.areas());
        areas.extend(channels.event.areas());
        areas.extend(channels.fwlog.areas());
        areas.extend(channels.stats.areas());
        for pipe in &channels.pipes {
            areas.extend(pipe.areas());
        }
        let stamps_end = init.stamps.checked_add(4 * NUM_STAMP_SLOTS as u64);
        let pending_end = init.pending.checked_add(size_of::<PendingTable>() as u64);
        let (Some(stamps_end), Some(pending_end)) = (stamps_end, pending_end) else {
            return Err(FwError::InitBadRing);
        };
        if !init.stamps.is_multiple_of(4) || !init.pending.is_multiple_of(16) {
            return Err(FwError::InitBadRing);
        }
        areas.push((init.stamps, stamps_end));
        areas.push((init.pending, pending_end));
        for (i, a) in areas.iter().enumerate() {
            if areas[i + 1..].iter().any(|b| overlaps(*a, *b)) {
                return Err(FwError::InitBadRing);
            }
        }
        Ok(channels)
    }
}

impl Device {
    /// The ABI minor version the driver declared at boot (0 before a boot).
    pub(crate) fn abi_minor(&self) -> u16 {
        self.channels.as_ref().map_or(0, |c| c.abi_minor)
    }

    /// Handles a host-to-firmware mailbox message; a silent firmware ignores every one.
    pub(crate) fn receive(&mut self, mem: &mut dyn Memory, ep: u32, msg: u64) {
        self.traces.record(Trace::Mailbox {
            endpoint: ep,
            message: msg,
        });
        if self.silent {
            // Accepted and ignored: no answer, no error event, no log line.
            return;
        }
        let (ty, payload) = (mbox::message_type(msg), mbox::message_payload(msg));
        match (ep, ty) {
            (mbox::EP_FIRMWARE, mbox::MSG_INIT) if self.state == FwState::Off => {
                if self.inject.take_silent_boot() {
                    // A boot that hangs (`INJECT_SILENCE`): no INIT_DONE, the state stays OFF,
                    // and the firmware is silent until the next reset.
                    self.silent = true;
                    return;
                }
                match self.config.boot_fault {
                    BootFault::None => self.boot(mem, payload),
                    // Nothing happens: the host's wait for the boot must time out.
                    BootFault::Silent => {}
                    BootFault::Fail => {
                        self.state = FwState::Failed;
                        self.error = FwError::Injected as u32;
                        self.send_to_host(
                            mbox::EP_FIRMWARE,
                            mbox::message(mbox::MSG_INIT_DONE, u64::from(self.error)),
                        );
                        self.raise(IRQ_STATE);
                    }
                    BootFault::Crash => {
                        self.boot(mem, payload);
                        if self.state == FwState::Running {
                            self.crash(FwError::Injected);
                        }
                    }
                }
            }
            // A crashed or failed firmware does nothing until a reset.
            (mbox::EP_DOORBELL, mbox::MSG_DOORBELL)
                if self.channels.is_some()
                    && matches!(self.state, FwState::Running | FwState::Halted) =>
            {
                match payload {
                    mbox::DOORBELL_DEVCTRL => self.process_devctrl(mem),
                    mbox::DOORBELL_KICK => self.process_pipes(mem, None),
                    p if p < NUM_PIPES as u64 => {
                        // CAST: `p` is below NUM_PIPES.
                        self.process_pipes(mem, Some(p as usize));
                    }
                    _ => self.bad_mailbox_message(ep, msg),
                }
                let now = self.time;
                self.run_until(mem, now);
            }
            _ => self.bad_mailbox_message(ep, msg),
        }
    }

    fn bad_mailbox_message(&mut self, ep: u32, msg: u64) {
        self.log(
            LOG_WARN,
            &format!("dropped mailbox message {msg:#018x} on endpoint {ep:#x}"),
        );
        if self.channels.is_some() {
            self.out.event(&EventError {
                kind: ERROR_BAD_MAILBOX_MESSAGE,
                object: ep,
                value: msg,
            });
        }
    }

    /// Reads the init data at `address`, sets up the channels and starts running.
    fn boot(&mut self, mem: &mut dyn Memory, address: u64) {
        match self.try_boot(mem, address) {
            Ok(channels) => {
                let minor = channels.abi_minor;
                self.channels = Some(channels);
                self.state = FwState::Running;
                self.error = 0;
                self.send_to_host(mbox::EP_FIRMWARE, mbox::message(mbox::MSG_INIT_DONE, 0));
                self.log(
                    LOG_INFO,
                    &format!(
                        "firmware running: ABI {}.{} (driver {}.{minor}), {} units",
                        regs::ABI_MAJOR,
                        self.implemented_minor(),
                        regs::ABI_MAJOR,
                        self.config.units
                    ),
                );
            }
            Err(err) => {
                self.state = FwState::Failed;
                self.error = err as u32;
                self.send_to_host(
                    mbox::EP_FIRMWARE,
                    mbox::message(mbox::MSG_INIT_DONE, u64::from(err as u32)),
                );
            }
        }
        self.raise(IRQ_STATE);
    }

    fn try_boot(&mut self, mem: &mut dyn Memory, address: u64) -> Result<Channels, FwError> {
        if !address.is_multiple_of(4096) {
            return Err(FwError::InitUnreadable);
        }
        let init: InitData = mem::read_pod(mem, address).map_err(|_| FwError::InitUnreadable)?;
        if init.magic != INIT_MAGIC {
            return Err(FwError::InitBadMagic);
        }
        if init.abi_version >> 16 != u32::from(regs::ABI_MAJOR)
            || init.abi_version & 0xffff > u32::from(self.implemented_minor())
        {
            return Err(FwError::InitBadVersion);
        }
        let mut channels = Channels::new(&init)?;
        if init.watchdog_ns == 0 {
            // The default limit is the default device's: a slowed one gets as many times
            // longer, so that the same entry is not a hang on it.
            channels.watchdog_ns = DEFAULT_WATCHDOG_NS.saturating_mul(self.config.rates.slowdown);
        }
        // Publish the pointers the firmware owns and clear the stamps and pending table.
        let zero_stamps = [0u8; 4 * NUM_STAMP_SLOTS];
        let table = pod::zeroed::<PendingTable>();
        let publish = |mem: &mut dyn Memory| -> Result<(), mem::BusError> {
            channels.devctrl.publish_initial(mem, true)?;
            for pipe in &channels.pipes {
                pipe.publish_initial(mem, true)?;
            }
            channels.event.publish_initial(mem, false)?;
            channels.fwlog.publish_initial(mem, false)?;
            channels.stats.publish_initial(mem, false)?;
            mem.write(channels.stamps, &zero_stamps)?;
            mem::write_pod(mem, channels.pending, &table)
        };
        publish(mem).map_err(|_| FwError::InitBadRing)?;
        Ok(channels)
    }

    /// Enters the crashed state: everything stops until a device reset.
    pub(crate) fn crash(&mut self, err: FwError) {
        self.state = FwState::Crashed;
        self.error = err as u32;
        self.out.event(&EventCrash { error: err as u32 });
        self.send_to_host(
            mbox::EP_FIRMWARE,
            mbox::message(mbox::MSG_CRASHED, u64::from(err as u32)),
        );
        self.raise(IRQ_STATE);
    }
}
