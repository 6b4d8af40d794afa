// SPDX-License-Identifier: GPL-2.0 OR MIT

//! BAR0 register offsets and values.
//!
//! All registers are 32 bits wide, little endian, and accessed with naturally aligned 32-bit
//! accesses; any other access is refused (reads return zero, writes are dropped).

/// `ID` (RO): [`ID_MAGIC`], the ASCII bytes `VAGX` read as a little-endian `u32`.
pub const ID: usize = 0x000;

/// `ABI_VERSION` (RO): major version in bits 31:16, minor version in bits 15:0.
pub const ABI_VERSION: usize = 0x004;

/// `SCRATCH` (RW): holds any value the driver writes; reset value 0.
pub const SCRATCH: usize = 0x008;

/// `UNITS` (RO): number of parallel execution units of the firmware scheduler.
pub const UNITS: usize = 0x00c;

/// `FW_STATE` (RO): one of the `FW_STATE_*` values.
pub const FW_STATE: usize = 0x010;

/// `FW_ERROR` (RO): why the firmware failed to boot or crashed; a `FwError` value, 0 if none.
pub const FW_ERROR: usize = 0x014;

/// `MBOX_H2F_LO` (RW): low 32 bits of the next host-to-firmware message.
pub const MBOX_H2F_LO: usize = 0x020;

/// `MBOX_H2F_HI` (RW): high 32 bits of the next host-to-firmware message.
pub const MBOX_H2F_HI: usize = 0x024;

/// `MBOX_H2F_SEND` (WO): writing an endpoint number sends `MBOX_H2F_HI:LO` to that endpoint.
pub const MBOX_H2F_SEND: usize = 0x028;

/// `MBOX_F2H_LO` (RO): low 32 bits of the oldest firmware-to-host message.
pub const MBOX_F2H_LO: usize = 0x030;

/// `MBOX_F2H_HI` (RO): high 32 bits of the oldest firmware-to-host message.
pub const MBOX_F2H_HI: usize = 0x034;

/// `MBOX_F2H_EP` (RO): endpoint of the oldest firmware-to-host message.
pub const MBOX_F2H_EP: usize = 0x038;

/// `MBOX_F2H_COUNT` (RO): number of firmware-to-host messages waiting (at most
/// [`MBOX_F2H_DEPTH`]); writing any value pops the oldest.
pub const MBOX_F2H_COUNT: usize = 0x03c;

/// `IRQ_STATUS` (RW1C): pending interrupt causes, `IRQ_*` bits; write 1 to clear.
pub const IRQ_STATUS: usize = 0x040;

/// `IRQ_MASK` (RW): enabled interrupt causes, `IRQ_*` bits; reset value 0.
pub const IRQ_MASK: usize = 0x044;

/// `RESET` (WO): writing [`RESET_MAGIC`] resets the device: firmware state OFF, every
/// queue, VM and ring forgotten, mailboxes empty, interrupts cleared and masked, injections
/// disarmed but for the boots [`INJECT_SILENCE`] still silences.
pub const RESET: usize = 0x048;

/// `DOORBELL` (WO, ABI 1.3): writing a doorbell number (`mbox::DOORBELL_*`) rings it, as
/// the mailbox message `MSG_DOORBELL` to `EP_DOORBELL` with that payload does, in one register
/// write instead of three. A device of an older ABI has no register here.
pub const DOORBELL: usize = 0x04c;

/// `FABRIC` (RO, ABI 1.4): where the device is on the peer fabric that links the GPUs of one
/// machine: its port in bits 7:0 ([`FABRIC_NO_PORT`] if it is on none) and, in bits 31:8, its
/// *epoch*, which changes at every reset. A wait entry of another device names both
/// (`queue::QUEUE_ENTRY_PEER`): a wait made before a reset fails instead of waiting for stamps
/// of the device's next life.
pub const FABRIC: usize = 0x050;

/// Ports of the peer fabric: devices beyond this many are on none.
pub const FABRIC_PORTS: u32 = 32;

/// [`FABRIC`]'s port of a device on no fabric: no other device can wait for it.
pub const FABRIC_NO_PORT: u32 = 0xff;

/// The epoch bits of [`FABRIC`] (and of a peer wait entry): 24, wrapping.
pub const FABRIC_EPOCH_MASK: u32 = 0x00ff_ffff;

/// The port in a [`FABRIC`] value.
pub const fn fabric_port(value: u32) -> u32 {
    value & 0xff
}

/// The epoch in a [`FABRIC`] value.
pub const fn fabric_epoch(value: u32) -> u32 {
    value >> 8
}

/// A [`FABRIC`] value.
pub const fn fabric_value(port: u32, epoch: u32) -> u32 {
    (port & 0xff) | (epoch & FABRIC_EPOCH_MASK) << 8
}

/// `DEBUG_INJECT` (WO): arms a fault injection; see `DEBUG_ARG` and the `INJECT_*` values.
pub const DEBUG_INJECT: usize = 0x100;

/// `DEBUG_ARG0` (RW): first argument of the next `DEBUG_INJECT`.
pub const DEBUG_ARG0: usize = 0x104;

/// `DEBUG_ARG1` (RW): second argument of the next `DEBUG_INJECT`.
pub const DEBUG_ARG1: usize = 0x108;

/// The value of [`ID`].
pub const ID_MAGIC: u32 = u32::from_le_bytes(*b"VAGX");

/// Major version of the ABI this source describes.
pub const ABI_MAJOR: u16 = 1;

/// Minor version of the ABI this source describes.
///
/// A minor version only adds to the previous one: a flag or field that was reserved gets a
/// meaning, an event kind or error code is added. The firmware implements the minor version the
/// driver declares in `InitData::abi_version`, so a driver written for an older minor version
/// sees exactly that version's behaviour.
pub const ABI_MINOR: u16 = 7;

/// The first minor version with dependency errors: wait entries
/// (`queue::QUEUE_ENTRY_WAIT`), `cmd::BARRIER_FLAG_DEP_ERROR`, `mbox::FwError::Dependency`
/// and `channels::EVENT_ENTRY_ERROR`.
pub const ABI_MINOR_DEPENDENCIES: u16 = 1;

/// The first minor version with execution-unit statistics: `channels::STATS_UNIT` samples on
/// the stats ring (and the model's `channels::STATS_EMULATION`).
pub const ABI_MINOR_UNIT_STATS: u16 = 2;

/// The first minor version with the ML commands: `cmd::OP_ELEMENTWISE`, `OP_ACTIVATION`,
/// `OP_SOFTMAX`, `OP_LAYER_NORM`, and GEMM's accumulate and transpose flags.
pub const ABI_MINOR_ML_COMMANDS: u16 = 2;

/// The first minor version with the one-write doorbell ([`DOORBELL`]) and the ring interrupt
/// ([`IRQ_RINGS`]), which spare the host most of its register accesses per job.
pub const ABI_MINOR_FAST_NOTIFY: u16 = 3;

/// The first minor version with the peer fabric: the [`FABRIC`] register, wait entries on
/// another device's stamps (`queue::QUEUE_ENTRY_PEER`) and `channels::DEP_CAUSE_PEER`.
pub const ABI_MINOR_PEER_WAITS: u16 = 4;

/// The first minor version with the N-input reduction `cmd::OP_SUM`.
pub const ABI_MINOR_SUM: u16 = 5;

/// The first minor version with run-time queue priorities and weights,
/// `channels::DEVCTRL_SET_QUEUE_PRIORITY` and `channels::DEVCTRL_SET_QUEUE_WEIGHT`.
pub const ABI_MINOR_QUEUE_PRIORITY: u16 = 6;

/// The first minor version with entry deadlines on pipe messages (`channels::PipeMsg`): the
/// firmware runs the queue whose entry is due first, within a priority; and with each work
/// queue's device time in its state (`queue::QueueState::busy_ns`).
pub const ABI_MINOR_DEADLINES: u16 = 7;

/// The value of [`ABI_VERSION`].
pub const ABI_VERSION_VALUE: u32 = ((ABI_MAJOR as u32) << 16) | ABI_MINOR as u32;

/// Depth of the firmware-to-host mailbox FIFO.
pub const MBOX_F2H_DEPTH: usize = 16;

/// The value that resets the device when written to [`RESET`] (`RSET`).
pub const RESET_MAGIC: u32 = u32::from_le_bytes(*b"RSET");

/// `FW_STATE`: powered off; waiting for the INIT message.
pub const FW_STATE_OFF: u32 = 0;
/// `FW_STATE`: reading the init data.
pub const FW_STATE_BOOTING: u32 = 1;
/// `FW_STATE`: running.
pub const FW_STATE_RUNNING: u32 = 2;
/// `FW_STATE`: halted after a fault or timeout, waiting for RESUME.
pub const FW_STATE_HALTED: u32 = 3;
/// `FW_STATE`: crashed; only a reset brings it back.
pub const FW_STATE_CRASHED: u32 = 4;
/// `FW_STATE`: boot failed (see `FW_ERROR`); only a reset brings it back.
pub const FW_STATE_FAILED: u32 = 5;

/// The firmware's state, as the `FW_STATE` register reports it (one definition for the
/// device model, which sets it, and the driver, which decodes it).
///
/// ```text
///   Off --INIT--> Booting --> Running <--RESUME-- Halted
///                   |           |  \--fault, watchdog--^
///                   v           v
///                 Failed     Crashed            (RESET: any state --> Off)
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FwState {
    /// Powered off, waiting for the INIT message.
    Off,
    /// Reading the init data.
    Booting,
    /// Running.
    Running,
    /// Halted after a fault or timeout, waiting for RESUME.
    Halted,
    /// Crashed; only a reset brings it back.
    Crashed,
    /// Boot failed (see `FW_ERROR`); only a reset brings it back.
    Failed,
}

/// An `FW_STATE` value no [`FwState`] has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownFwState(pub u32);

impl FwState {
    /// The `FW_STATE` register value.
    pub const fn raw(self) -> u32 {
        match self {
            Self::Off => FW_STATE_OFF,
            Self::Booting => FW_STATE_BOOTING,
            Self::Running => FW_STATE_RUNNING,
            Self::Halted => FW_STATE_HALTED,
            Self::Crashed => FW_STATE_CRASHED,
            Self::Failed => FW_STATE_FAILED,
        }
    }

    /// The state in a word, for logs.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Booting => "booting",
            Self::Running => "running",
            Self::Halted => "halted",
            Self::Crashed => "crashed",
            Self::Failed => "failed",
        }
    }
}

impl TryFrom<u32> for FwState {
    type Error = UnknownFwState;

    fn try_from(raw: u32) -> Result<Self, UnknownFwState> {
        Ok(match raw {
            FW_STATE_OFF => Self::Off,
            FW_STATE_BOOTING => Self::Booting,
            FW_STATE_RUNNING => Self::Running,
            FW_STATE_HALTED => Self::Halted,
            FW_STATE_CRASHED => Self::Crashed,
            FW_STATE_FAILED => Self::Failed,
            _ => return Err(UnknownFwState(raw)),
        })
    }
}

/// `IRQ_*`: the firmware-to-host mailbox holds a message.
pub const IRQ_MBOX: u32 = 1 << 0;
/// `IRQ_*`: the firmware state changed (boot done or failed, halted, crashed).
pub const IRQ_STATE: u32 = 1 << 1;
/// Every interrupt cause of ABI 1.0 to 1.2.
pub const IRQ_ALL: u32 = IRQ_MBOX | IRQ_STATE;
/// `IRQ_*` (ABI 1.3): the firmware wrote to its rings (events, log, statistics). While the
/// host keeps it unmasked, the firmware raises it instead of sending `MSG_RX_DOORBELL`, so
/// that the host needs no mailbox access to learn of new events.
pub const IRQ_RINGS: u32 = 1 << 2;

/// MSI-X vector of every interrupt cause (the device has one vector).
pub const MSIX_VECTOR: u16 = 0;
/// Number of MSI-X vectors; the table and PBA live in BAR1.
pub const MSIX_VECTORS: u16 = 1;

/// `DEBUG_INJECT`: the next entry work queue `ARG0` starts never completes (a hang).
pub const INJECT_HANG_QUEUE: u32 = 1;
/// `DEBUG_INJECT`: the command with index `ARG1` of the next entry of queue `ARG0` faults.
pub const INJECT_FAULT_AT: u32 = 2;
/// `DEBUG_INJECT`: the firmware crashes after completing `ARG0` more entries.
pub const INJECT_CRASH_AFTER: u32 = 3;
/// `DEBUG_INJECT`: the next `ARG0` interrupts are dropped (the status bits still latch).
pub const INJECT_DROP_IRQS: u32 = 4;
/// `DEBUG_INJECT`: the next interrupt message is sent `ARG0` nanoseconds of device time late.
pub const INJECT_DELAY_IRQ: u32 = 5;
/// `DEBUG_INJECT`: the firmware falls silent, without crashing, until a device reset.
///
/// From this write on the firmware does nothing: it ignores every mailbox message (`INIT`,
/// doorbells and pipe messages are accepted), answers no device-control message, runs nothing
/// (commands in flight never complete, no entry completes or times out) and sends no event, log
/// or statistics message, mailbox message or interrupt; `FW_STATE` and `FW_ERROR` keep their
/// values. A write of [`RESET_MAGIC`] to [`RESET`] (or a PCI function or system reset) ends the
/// silence, and the driver boots the firmware again as after a crash.
///
/// `ARG0` is how many boots after that reset hang too: while the count is not zero, an `INIT`
/// received in `FW_STATE_OFF` takes one off and gets no `INIT_DONE`; `FW_STATE` stays OFF and
/// the firmware is silent until the next reset. So 0 lets the next boot work, and N > 0 hangs
/// the next N boots (each after its own reset) and lets the one after work. The count survives
/// a write to [`RESET`] (a PCI function or system reset clears it); arming again replaces it;
/// [`INJECT_CLEAR`] sets it to 0 but does not end a silence that has begun.
pub const INJECT_SILENCE: u32 = 6;
/// `DEBUG_INJECT`: cancels every armed injection, the boots [`INJECT_SILENCE`] still silences
/// included; a silence that has begun lasts until a reset.
pub const INJECT_CLEAR: u32 = 0;
