// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Messages of the device-control, submission, event, log and stats rings.
//!
//! Device-control and event messages are a tag followed by a payload whose layout depends on the
//! tag; each payload is its own [`Pod`] type, packed into and out of the message with
//! [`DevCtrlMsg::new`] / [`DevCtrlMsg::payload`] and the same pair on [`EventMsg`].

use super::pod::{self, Pod};
use crate::assert_layout;

/// Size of a device-control message.
pub const DEVCTRL_MSG_SIZE: u32 = 64;
/// Size of an event message.
pub const EVENT_MSG_SIZE: u32 = 64;
/// Size of a submission-pipe message.
pub const PIPE_MSG_SIZE: u32 = 16;
/// Size of a firmware-log message.
pub const LOG_MSG_SIZE: u32 = 128;
/// Size of a statistics message.
pub const STATS_MSG_SIZE: u32 = 32;

/// A message on the device-control ring: an operation for the firmware.
///
/// Every operation is answered by an [`EVENT_DEVCTRL_DONE`] event carrying the same `seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct DevCtrlMsg {
    /// One of the `DEVCTRL_*` operations.
    pub op: u32,
    /// Chosen by the host; echoed in the reply.
    pub seq: u32,
    /// The operation's arguments (`DevCtrl*` types), zero-padded.
    pub payload: [u8; 56],
}
assert_layout!(DevCtrlMsg, size 64, op @ 0, seq @ 4, payload @ 8);
// SAFETY: `repr(C)`, integer fields only, no padding (asserted above).
unsafe impl Pod for DevCtrlMsg {}

impl DevCtrlMsg {
    /// Builds a message for operation `op` with arguments `args`.
    pub fn new<T: DevCtrlArgs>(seq: u32, args: &T) -> Self {
        let mut payload = [0u8; 56];
        let bytes = pod::as_bytes(args);
        payload[..bytes.len()].copy_from_slice(bytes);
        Self {
            op: T::OP,
            seq,
            payload,
        }
    }

    /// The arguments, if the message is operation `T::OP`.
    pub fn payload<T: DevCtrlArgs>(&self) -> Option<T> {
        if self.op == T::OP {
            pod::read(&self.payload)
        } else {
            None
        }
    }
}

/// Arguments of a device-control operation.
///
/// # Safety
///
/// The same as [`Pod`], and the type is at most 56 bytes.
pub unsafe trait DevCtrlArgs: Pod {
    /// The `DEVCTRL_*` operation these arguments belong to.
    const OP: u32;
}

/// Declares a device-control argument type's operation and checks its size.
macro_rules! devctrl_args {
    ($ty:ty, $op:expr) => {
        const _: () = assert!(size_of::<$ty>() <= 56);
        // SAFETY: `$ty` is `Pod` (implemented next to its definition) and at most 56 bytes
        // (asserted above).
        unsafe impl DevCtrlArgs for $ty {
            const OP: u32 = $op;
        }
    };
}

/// Operation: create a work queue.
pub const DEVCTRL_CREATE_QUEUE: u32 = 1;
/// Operation: destroy an idle work queue.
pub const DEVCTRL_DESTROY_QUEUE: u32 = 2;
/// Operation: install the page-table root of a GPU VM.
pub const DEVCTRL_BIND_VM: u32 = 3;
/// Operation: forget a GPU VM; no queue may use it.
pub const DEVCTRL_UNBIND_VM: u32 = 4;
/// Operation: stop starting work (entries in flight stop at their next command boundary).
pub const DEVCTRL_HALT: u32 = 5;
/// Operation: leave the halted state and continue scheduling.
pub const DEVCTRL_RESUME: u32 = 6;
/// Operation: discard a queue's unfinished entries.
pub const DEVCTRL_RESET_QUEUE: u32 = 7;
/// Operation: write back every stamp and the statistics, then reply.
pub const DEVCTRL_FLUSH: u32 = 8;
/// Operation: read a firmware value (`QUERY_*`).
pub const DEVCTRL_QUERY: u32 = 9;
/// Operation: change a work queue's priority (ABI 1.6, [`ABI_MINOR_QUEUE_PRIORITY`]).
///
/// [`ABI_MINOR_QUEUE_PRIORITY`]: crate::regs::ABI_MINOR_QUEUE_PRIORITY
pub const DEVCTRL_SET_QUEUE_PRIORITY: u32 = 10;
/// Operation: change a work queue's weight among the queues of its priority (ABI 1.6).
pub const DEVCTRL_SET_QUEUE_WEIGHT: u32 = 11;

/// Arguments of [`DEVCTRL_CREATE_QUEUE`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct DevCtrlCreateQueue {
    /// Queue id, below `MAX_QUEUES`.
    pub queue: u32,
    /// GPU VM the queue's commands run in (bound with `DEVCTRL_BIND_VM`).
    pub vm: u32,
    /// A `PipeType` value.
    pub pipe_type: u32,
    /// 0 (highest) to `NUM_PRIORITIES - 1`.
    pub priority: u32,
    /// Stamp slot the queue advances, below `NUM_STAMP_SLOTS`; one queue per slot.
    pub stamp_slot: u32,
    /// Value the firmware writes to the stamp slot when it creates the queue.
    pub stamp_init: u32,
    /// Number of entries of the queue's ring (power of two, 2 to 65536).
    pub ring_count: u32,
    /// Must be zero.
    pub _pad: u32,
    /// Bus address of the ring of `queue::QueueEntry`s.
    pub ring: u64,
    /// Bus address of the queue's `queue::QueueState`.
    pub state: u64,
}
assert_layout!(DevCtrlCreateQueue, size 48, ring @ 32, state @ 40);
// SAFETY: `repr(C)`, integer fields only, no padding (asserted above).
unsafe impl Pod for DevCtrlCreateQueue {}
devctrl_args!(DevCtrlCreateQueue, DEVCTRL_CREATE_QUEUE);

/// Arguments of the operations that name only a queue ([`DEVCTRL_DESTROY_QUEUE`],
/// [`DEVCTRL_RESET_QUEUE`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct DevCtrlQueue {
    /// Queue id.
    pub queue: u32,
}
// SAFETY: `repr(C)`, one integer field.
unsafe impl Pod for DevCtrlQueue {}

/// Arguments of [`DEVCTRL_DESTROY_QUEUE`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(transparent)]
pub struct DevCtrlDestroyQueue(pub DevCtrlQueue);
// SAFETY: transparent over a `Pod` type.
unsafe impl Pod for DevCtrlDestroyQueue {}
devctrl_args!(DevCtrlDestroyQueue, DEVCTRL_DESTROY_QUEUE);

/// Arguments of [`DEVCTRL_RESET_QUEUE`]. The firmware discards every entry of the queue that
/// has not completed, advances the queue's stamp by `STAMP_STEP` for each (so stamps stay in
/// step with entry indices), and replies with the number discarded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(transparent)]
pub struct DevCtrlResetQueue(pub DevCtrlQueue);
// SAFETY: transparent over a `Pod` type.
unsafe impl Pod for DevCtrlResetQueue {}
devctrl_args!(DevCtrlResetQueue, DEVCTRL_RESET_QUEUE);

/// Arguments of [`DEVCTRL_BIND_VM`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct DevCtrlBindVm {
    /// VM id, below `MAX_VMS`.
    pub vm: u32,
    /// Must be zero.
    pub _pad: u32,
    /// Bus address of the VM's level-0 page table (4 KiB aligned).
    pub root: u64,
}
assert_layout!(DevCtrlBindVm, size 16, vm @ 0, root @ 8);
// SAFETY: `repr(C)`, integer fields only, no padding (asserted above).
unsafe impl Pod for DevCtrlBindVm {}
devctrl_args!(DevCtrlBindVm, DEVCTRL_BIND_VM);

/// Arguments of [`DEVCTRL_UNBIND_VM`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct DevCtrlUnbindVm {
    /// VM id.
    pub vm: u32,
}
// SAFETY: `repr(C)`, one integer field.
unsafe impl Pod for DevCtrlUnbindVm {}
devctrl_args!(DevCtrlUnbindVm, DEVCTRL_UNBIND_VM);

/// Arguments of [`DEVCTRL_HALT`] (none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct DevCtrlHalt {
    /// Must be zero.
    pub _pad: u32,
}
// SAFETY: `repr(C)`, one integer field.
unsafe impl Pod for DevCtrlHalt {}
devctrl_args!(DevCtrlHalt, DEVCTRL_HALT);

/// Arguments of [`DEVCTRL_RESUME`] (none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct DevCtrlResume {
    /// Must be zero.
    pub _pad: u32,
}
// SAFETY: `repr(C)`, one integer field.
unsafe impl Pod for DevCtrlResume {}
devctrl_args!(DevCtrlResume, DEVCTRL_RESUME);

/// Arguments of [`DEVCTRL_FLUSH`] (none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct DevCtrlFlush {
    /// Must be zero.
    pub _pad: u32,
}
// SAFETY: `repr(C)`, one integer field.
unsafe impl Pod for DevCtrlFlush {}
devctrl_args!(DevCtrlFlush, DEVCTRL_FLUSH);

/// Arguments of [`DEVCTRL_QUERY`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct DevCtrlQuery {
    /// One of the `QUERY_*` values.
    pub what: u32,
}
// SAFETY: `repr(C)`, one integer field.
unsafe impl Pod for DevCtrlQuery {}
devctrl_args!(DevCtrlQuery, DEVCTRL_QUERY);

/// Arguments of [`DEVCTRL_SET_QUEUE_PRIORITY`]. From the reply on, the queue takes units at
/// `priority`, its entries already queued included (an entry running keeps its unit to its next
/// command boundary, as with any preemption). The queue stays on the pipe it was created on:
/// the pipe is its message channel, and keeps counting its statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct DevCtrlSetQueuePriority {
    /// Queue id.
    pub queue: u32,
    /// 0 (highest) to `NUM_PRIORITIES - 1`.
    pub priority: u32,
}
assert_layout!(DevCtrlSetQueuePriority, size 8, queue @ 0, priority @ 4);
// SAFETY: `repr(C)`, integer fields only, no padding (asserted above).
unsafe impl Pod for DevCtrlSetQueuePriority {}
devctrl_args!(DevCtrlSetQueuePriority, DEVCTRL_SET_QUEUE_PRIORITY);

/// Arguments of [`DEVCTRL_SET_QUEUE_WEIGHT`]. From its next command on, the queue's commands
/// advance its pass by `STRIDE × 100 / weight`: among busy queues of one priority, each gets
/// command boundaries in proportion to its weight (100 at creation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct DevCtrlSetQueueWeight {
    /// Queue id.
    pub queue: u32,
    /// 1 to 10000.
    pub weight: u32,
}
assert_layout!(DevCtrlSetQueueWeight, size 8, queue @ 0, weight @ 4);
// SAFETY: `repr(C)`, integer fields only, no padding (asserted above).
unsafe impl Pod for DevCtrlSetQueueWeight {}
devctrl_args!(DevCtrlSetQueueWeight, DEVCTRL_SET_QUEUE_WEIGHT);

/// A work queue's weight when the firmware creates it.
pub const QUEUE_WEIGHT_DEFAULT: u32 = 100;
/// The largest weight [`DEVCTRL_SET_QUEUE_WEIGHT`] takes (the smallest is 1).
pub const QUEUE_WEIGHT_MAX: u32 = 10_000;

/// `DEVCTRL_QUERY`: number of execution units.
pub const QUERY_UNITS: u32 = 0;
/// `DEVCTRL_QUERY`: the firmware's clock, in nanoseconds of device time.
pub const QUERY_TIME_NS: u32 = 1;
/// `DEVCTRL_QUERY`: number of work queues alive.
pub const QUERY_QUEUES: u32 = 2;

/// `EventDevCtrlDone::status`: the operation succeeded.
pub const DEVCTRL_OK: u32 = 0;
/// `EventDevCtrlDone::status`: an argument is out of range or a reserved field is not zero.
pub const DEVCTRL_INVALID: u32 = 1;
/// `EventDevCtrlDone::status`: the object is in use (a VM with queues, a queue with work).
pub const DEVCTRL_BUSY: u32 = 2;
/// `EventDevCtrlDone::status`: no such queue or VM.
pub const DEVCTRL_NOT_FOUND: u32 = 3;
/// `EventDevCtrlDone::status`: the queue id or stamp slot is taken.
pub const DEVCTRL_EXISTS: u32 = 4;
/// `EventDevCtrlDone::status`: unknown operation.
pub const DEVCTRL_UNKNOWN_OP: u32 = 5;
/// `EventDevCtrlDone::status`: not valid in the firmware's state (RESUME while running).
pub const DEVCTRL_BAD_STATE: u32 = 6;

/// A message on a submission pipe: "work queue `queue` has entries up to `wptr`", and (ABI 1.7)
/// "the entry that takes its stamp to `deadline_stamp` is due in `due_us`".
///
/// # Deadlines (ABI 1.7)
///
/// With `due_us` not zero, the message also says that the queue's entry whose completion takes
/// its stamp slot to `deadline_stamp` is wanted `due_us` microseconds of device time after the
/// firmware reads the message (negative: it is already late by that much). The time is relative
/// so that host and device need no common clock. The entry must be one the queue has not
/// completed, up to `wptr`; a deadline for an entry that has already completed is ignored (the
/// host raced it), one beyond `wptr` refuses the message. A queue's deadline is the earliest
/// of its unfinished entries' (entries run in order, so those before the one with the deadline
/// must run first), and among the runnable queues of one priority the one with the earliest
/// deadline takes the next free unit, up to [`DEADLINE_BURST`] times in a row while a queue
/// of that priority without a deadline is runnable too; then the stride rule picks among the
/// queues without one. A deadline never lifts a queue above another priority's. The message
/// may repeat the queue's current `wptr`: a deadline on an entry already written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct PipeMsg {
    /// Work queue id; the queue's pipe type and priority must be the pipe's.
    pub queue: u32,
    /// The queue's write pointer (entry index) when the host sent this.
    pub wptr: u32,
    /// ABI 1.7: the stamp of the entry `due_us` is about; zero without a deadline.
    pub deadline_stamp: u32,
    /// ABI 1.7: microseconds until the entry is due, or 0 for no deadline; zero before 1.7.
    pub due_us: i32,
}
assert_layout!(PipeMsg, size 16, queue @ 0, wptr @ 4, deadline_stamp @ 8, due_us @ 12);
// SAFETY: `repr(C)`, integer fields only, no padding (asserted above).
unsafe impl Pod for PipeMsg {}

impl PipeMsg {
    /// "Queue `queue` has entries up to `wptr`".
    pub const fn new(queue: u32, wptr: u32) -> Self {
        Self {
            queue,
            wptr,
            deadline_stamp: 0,
            due_us: 0,
        }
    }

    /// [`Self::new`], and (ABI 1.7) the entry that takes the queue's stamp to `stamp` is due in
    /// `due_us` microseconds (not zero; negative if it is late).
    pub const fn with_deadline(queue: u32, wptr: u32, stamp: u32, due_us: i32) -> Self {
        Self {
            queue,
            wptr,
            deadline_stamp: stamp,
            due_us,
        }
    }

    /// The deadline the message carries: the entry's stamp and microseconds until it is due.
    pub const fn deadline(&self) -> Option<(u32, i32)> {
        if self.due_us == 0 {
            None
        } else {
            Some((self.deadline_stamp, self.due_us))
        }
    }
}

/// Queues picked by deadline in a row, within one priority, while a queue of that priority
/// without a deadline is runnable ([`PipeMsg`], ABI 1.7).
pub const DEADLINE_BURST: u32 = 4;

/// A message on the event ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct EventMsg {
    /// One of the `EVENT_*` kinds.
    pub kind: u32,
    /// Incremented for every event the firmware sends.
    pub seq: u32,
    /// The event's data (`Event*` types), zero-padded.
    pub payload: [u8; 56],
}
assert_layout!(EventMsg, size 64, kind @ 0, seq @ 4, payload @ 8);
// SAFETY: `repr(C)`, integer fields only, no padding (asserted above).
unsafe impl Pod for EventMsg {}

impl EventMsg {
    /// Builds an event of kind `T::KIND`.
    pub fn new<T: EventPayload>(seq: u32, data: &T) -> Self {
        let mut payload = [0u8; 56];
        let bytes = pod::as_bytes(data);
        payload[..bytes.len()].copy_from_slice(bytes);
        Self {
            kind: T::KIND,
            seq,
            payload,
        }
    }

    /// The payload, if the event is of kind `T::KIND`.
    pub fn payload<T: EventPayload>(&self) -> Option<T> {
        if self.kind == T::KIND {
            pod::read(&self.payload)
        } else {
            None
        }
    }
}

/// An event, decoded ([`EventMsg::decode`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// [`EVENT_STAMPS`].
    Stamps(EventStamps),
    /// [`EVENT_FAULT`].
    Fault(EventFault),
    /// [`EVENT_TIMEOUT`].
    Timeout(EventTimeout),
    /// [`EVENT_CRASH`].
    Crash(EventCrash),
    /// [`EVENT_LOG`].
    Log(EventLog),
    /// [`EVENT_DEVCTRL_DONE`].
    DevCtrlDone(EventDevCtrlDone),
    /// [`EVENT_ERROR`].
    Error(EventError),
    /// [`EVENT_ENTRY_ERROR`] (ABI 1.1).
    EntryError(EventEntryError),
    /// A kind this side does not know (a newer firmware's, or garbage): the receiver logs it
    /// and goes on with the next event.
    Unknown {
        /// The event's `kind`.
        kind: u32,
        /// The event's `seq`.
        seq: u32,
    },
}

impl EventMsg {
    /// The event this message carries.
    pub fn decode(&self) -> Event {
        let known = match self.kind {
            EVENT_STAMPS => self.payload().map(Event::Stamps),
            EVENT_FAULT => self.payload().map(Event::Fault),
            EVENT_TIMEOUT => self.payload().map(Event::Timeout),
            EVENT_CRASH => self.payload().map(Event::Crash),
            EVENT_LOG => self.payload().map(Event::Log),
            EVENT_DEVCTRL_DONE => self.payload().map(Event::DevCtrlDone),
            EVENT_ERROR => self.payload().map(Event::Error),
            EVENT_ENTRY_ERROR => self.payload().map(Event::EntryError),
            _ => None,
        };
        known.unwrap_or(Event::Unknown {
            kind: self.kind,
            seq: self.seq,
        })
    }
}

/// The payload of an event kind.
///
/// # Safety
///
/// The same as [`Pod`], and the type is at most 56 bytes.
pub unsafe trait EventPayload: Pod {
    /// The `EVENT_*` kind.
    const KIND: u32;
}

/// Declares an event payload type's kind and checks its size.
macro_rules! event_payload {
    ($ty:ty, $kind:expr) => {
        const _: () = assert!(size_of::<$ty>() <= 56);
        // SAFETY: `$ty` is `Pod` (implemented next to its definition) and at most 56 bytes
        // (asserted above).
        unsafe impl EventPayload for $ty {
            const KIND: u32 = $kind;
        }
    };
}

/// Event: stamps advanced; `EventStamps::firing` has a bit per slot that changed.
pub const EVENT_STAMPS: u32 = 1;
/// Event: a command faulted; the firmware halted.
pub const EVENT_FAULT: u32 = 2;
/// Event: an entry exceeded the watchdog; the firmware halted.
pub const EVENT_TIMEOUT: u32 = 3;
/// Event: the firmware crashed.
pub const EVENT_CRASH: u32 = 4;
/// Event: the log or stats ring has new entries.
pub const EVENT_LOG: u32 = 5;
/// Event: a device-control operation finished.
pub const EVENT_DEVCTRL_DONE: u32 = 6;
/// Event: the host broke a ring or message rule; the offending message was dropped.
pub const EVENT_ERROR: u32 = 7;
/// Event (ABI 1.1): a work-queue entry failed without halting the firmware, with the
/// `FwError` in [`EventEntryError::error`]; the entry still completes (its stamp advances).
///
/// The firmware writes this event to the event ring before it writes the entry's stamp: a host
/// that reads a stamp and then the event ring up to its write pointer has seen the error of
/// every entry up to that stamp. While the event ring has no room, the failed entry waits.
pub const EVENT_ENTRY_ERROR: u32 = 8;

/// Payload of [`EVENT_STAMPS`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct EventStamps {
    /// Bit `s % 32` of word `s / 32` is set if stamp slot `s` advanced.
    pub firing: [u32; 4],
}
// SAFETY: `repr(C)`, an integer array.
unsafe impl Pod for EventStamps {}
event_payload!(EventStamps, EVENT_STAMPS);

impl EventStamps {
    /// Marks slot `slot` as fired.
    pub fn set(&mut self, slot: usize) {
        if let Some(word) = self.firing.get_mut(slot / 32) {
            *word |= 1 << (slot % 32);
        }
    }

    /// Whether slot `slot` fired.
    pub fn is_set(&self, slot: usize) -> bool {
        self.firing
            .get(slot / 32)
            .is_some_and(|w| w & (1 << (slot % 32)) != 0)
    }
}

/// Why a command faulted, in [`EventFault::kind`].
pub const FAULT_UNMAPPED: u32 = 1;
/// The page is mapped without the permission the access needs.
pub const FAULT_PERMISSION: u32 = 2;
/// The command is malformed (unknown opcode, bad size, out-of-range argument).
pub const FAULT_BAD_COMMAND: u32 = 3;
/// A fault injected through `DEBUG_INJECT` or `DEBUG_FAULT`.
pub const FAULT_INJECTED: u32 = 4;

/// Payload of [`EVENT_FAULT`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct EventFault {
    /// The faulting queue.
    pub queue: u32,
    /// Index in the queue's ring of the faulting entry.
    pub entry: u32,
    /// Index of the faulting command in the entry's command buffer (0-based).
    pub command: u32,
    /// A `FAULT_*` value.
    pub kind: u32,
    /// The GPU virtual address that faulted (for `FAULT_BAD_COMMAND`, the command's address).
    pub address: u64,
}
assert_layout!(EventFault, size 24, address @ 16);
// SAFETY: `repr(C)`, integer fields only, no padding (asserted above).
unsafe impl Pod for EventFault {}
event_payload!(EventFault, EVENT_FAULT);

/// Payload of [`EVENT_TIMEOUT`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct EventTimeout {
    /// The queue whose entry ran past the watchdog.
    pub queue: u32,
    /// Index in the queue's ring of that entry.
    pub entry: u32,
}
// SAFETY: `repr(C)`, integer fields only, no padding.
unsafe impl Pod for EventTimeout {}
event_payload!(EventTimeout, EVENT_TIMEOUT);

/// Payload of [`EVENT_CRASH`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct EventCrash {
    /// A `FwError` value.
    pub error: u32,
}
// SAFETY: `repr(C)`, one integer field.
unsafe impl Pod for EventCrash {}
event_payload!(EventCrash, EVENT_CRASH);

/// Payload of [`EVENT_LOG`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct EventLog {
    /// Messages written to the log ring since the last `EVENT_LOG`.
    pub log_entries: u32,
    /// Messages written to the stats ring since the last `EVENT_LOG`.
    pub stats_entries: u32,
}
// SAFETY: `repr(C)`, integer fields only, no padding.
unsafe impl Pod for EventLog {}
event_payload!(EventLog, EVENT_LOG);

/// Payload of [`EVENT_DEVCTRL_DONE`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct EventDevCtrlDone {
    /// The `seq` of the operation's message.
    pub seq: u32,
    /// `DEVCTRL_OK` or an error status.
    pub status: u32,
    /// The operation's result (`DEVCTRL_QUERY`, `DEVCTRL_RESET_QUEUE`), else 0.
    pub value: u64,
}
assert_layout!(EventDevCtrlDone, size 16, value @ 8);
// SAFETY: `repr(C)`, integer fields only, no padding (asserted above).
unsafe impl Pod for EventDevCtrlDone {}
event_payload!(EventDevCtrlDone, EVENT_DEVCTRL_DONE);

/// [`EventError::kind`]: a ring pointer written by the host is out of range.
pub const ERROR_BAD_RING_POINTER: u32 = 1;
/// [`EventError::kind`]: a pipe message names an unknown queue or one of another pipe.
pub const ERROR_BAD_PIPE_MESSAGE: u32 = 2;
/// [`EventError::kind`]: a mailbox message with an unknown endpoint or type.
pub const ERROR_BAD_MAILBOX_MESSAGE: u32 = 3;
/// [`EventError::kind`]: the firmware could not read or write a ring or queue in guest memory.
pub const ERROR_BAD_ADDRESS: u32 = 4;

/// Payload of [`EVENT_ERROR`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct EventError {
    /// One of the `ERROR_*` values.
    pub kind: u32,
    /// The queue or pipe concerned, or `u32::MAX`.
    pub object: u32,
    /// The offending value (pointer, address or message).
    pub value: u64,
}
assert_layout!(EventError, size 16, value @ 8);
// SAFETY: `repr(C)`, integer fields only, no padding (asserted above).
unsafe impl Pod for EventError {}
event_payload!(EventError, EVENT_ERROR);

/// [`EventEntryError::cause`]: a wait entry whose awaited entry failed.
pub const DEP_CAUSE_WAIT: u32 = 1;
/// [`EventEntryError::cause`]: an earlier wait entry of the same job failed, so this entry was
/// failed without being run (a wait entry, or the job's command buffer).
pub const DEP_CAUSE_JOB: u32 = 2;
/// [`EventEntryError::cause`]: a BARRIER with `BARRIER_FLAG_DEP_ERROR`, at
/// [`EventEntryError::command`], whose awaited entry failed.
pub const DEP_CAUSE_BARRIER: u32 = 3;
/// [`EventEntryError::cause`] (ABI 1.4): a peer wait entry whose device is not the one it
/// named: reset, crashed, failed or gone since the epoch the entry carries, or never on the
/// fabric. The entries it waited for will never complete in that epoch.
pub const DEP_CAUSE_PEER: u32 = 4;

/// [`EventEntryError::command`] of an entry that failed before running any command.
pub const NO_COMMAND: u32 = u32::MAX;

/// Payload of [`EVENT_ENTRY_ERROR`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct EventEntryError {
    /// The entry's queue.
    pub queue: u32,
    /// Index of the entry in the queue's ring.
    pub entry: u32,
    /// The stamp the entry completes with.
    pub stamp: u32,
    /// A `FwError` value: `FwError::Dependency`.
    pub error: u32,
    /// One of the `DEP_CAUSE_*` values.
    pub cause: u32,
    /// Index of the failing BARRIER in the entry's command buffer, or [`NO_COMMAND`].
    pub command: u32,
    /// The stamp slot of the wait or barrier that found the failure.
    pub slot: u32,
    /// The value it waited for: the failed entry is the one that took `slot` past it.
    pub value: u32,
}
assert_layout!(
    EventEntryError,
    size 32,
    queue @ 0,
    entry @ 4,
    stamp @ 8,
    error @ 12,
    cause @ 16,
    command @ 20,
    slot @ 24,
    value @ 28,
);
// SAFETY: `repr(C)`, integer fields only, no padding (asserted above).
unsafe impl Pod for EventEntryError {}
event_payload!(EventEntryError, EVENT_ENTRY_ERROR);

/// Log levels of [`LogMsg::level`], lowest first.
pub const LOG_DEBUG: u32 = 0;
/// Informational.
pub const LOG_INFO: u32 = 1;
/// Warning.
pub const LOG_WARN: u32 = 2;
/// Error.
pub const LOG_ERROR: u32 = 3;

/// A message on the firmware-log ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct LogMsg {
    /// One of the `LOG_*` levels.
    pub level: u32,
    /// Number of bytes of `text` used.
    pub len: u32,
    /// Device time of the message, in nanoseconds.
    pub time_ns: u64,
    /// UTF-8 text, not NUL-terminated.
    pub text: [u8; 112],
}
assert_layout!(LogMsg, size 128, time_ns @ 8, text @ 16);
// SAFETY: `repr(C)`, integer fields only, no padding (asserted above).
unsafe impl Pod for LogMsg {}

/// [`StatsMsg::kind`]: busy time of a submission pipe.
pub const STATS_PIPE: u32 = 0;
/// [`StatsMsg::kind`]: busy time of a work queue.
pub const STATS_QUEUE: u32 = 1;
/// [`StatsMsg::kind`]: busy time of an execution unit, whose `entries` counts the commands it
/// completed (ABI 1.2, `regs::ABI_MINOR_UNIT_STATS`).
pub const STATS_UNIT: u32 = 2;
/// [`StatsMsg::kind`]: how well the device model keeps up with its own cost model (ABI 1.2).
/// A virtual device's self-report, not a GPU's: id [`EMULATION_MODELLED`] counts the commands
/// executed and their modelled device time; id [`EMULATION_HOST`] the host time they took and
/// the commands that took the host longer than their modelled cost (late).
pub const STATS_EMULATION: u32 = 3;
/// [`STATS_EMULATION`] sample: `entries` commands executed, `busy_ns` their modelled cost.
pub const EMULATION_MODELLED: u32 = 0;
/// [`STATS_EMULATION`] sample: `entries` late commands, `busy_ns` the host time of all.
pub const EMULATION_HOST: u32 = 1;

/// A message on the stats ring: cumulative busy time of a pipe, queue or unit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct StatsMsg {
    /// `STATS_PIPE`, `STATS_QUEUE` or `STATS_UNIT`.
    pub kind: u32,
    /// Pipe index, queue id or unit index.
    pub id: u32,
    /// Total device time spent executing its entries, in nanoseconds.
    pub busy_ns: u64,
    /// Total entries completed.
    pub entries: u64,
    /// Device time of the sample, in nanoseconds.
    pub time_ns: u64,
}
assert_layout!(StatsMsg, size 32, busy_ns @ 8, entries @ 16, time_ns @ 24);
// SAFETY: `repr(C)`, integer fields only, no padding (asserted above).
unsafe impl Pod for StatsMsg {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_kind_decodes_to_its_variant() {
        let timeout = EventTimeout { queue: 3, entry: 7 };
        assert_eq!(EventMsg::new(1, &timeout).decode(), Event::Timeout(timeout));
        let crash: EventCrash = pod::zeroed();
        assert_eq!(EventMsg::new(2, &crash).decode(), Event::Crash(crash));
        let entry: EventEntryError = pod::zeroed();
        assert_eq!(EventMsg::new(3, &entry).decode(), Event::EntryError(entry));
        let stamps: EventStamps = pod::zeroed();
        assert_eq!(EventMsg::new(4, &stamps).decode(), Event::Stamps(stamps));
    }

    #[test]
    fn an_unknown_kind_is_kept_for_the_log() {
        let mut msg = EventMsg::new(9, &pod::zeroed::<EventLog>());
        msg.kind = 0x77;
        assert_eq!(msg.decode(), Event::Unknown { kind: 0x77, seq: 9 });
        msg.kind = 0;
        assert_eq!(msg.decode(), Event::Unknown { kind: 0, seq: 9 });
    }
}
