// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Device control: the operations the host sends on the device-control ring.
//!
//! Every message gets exactly one `EVENT_DEVCTRL_DONE` reply with the message's `seq`, a status
//! and a value; a message the firmware cannot parse is answered with `DEVCTRL_INVALID` or
//! `DEVCTRL_UNKNOWN_OP`, never ignored.

use vagx_abi::{
    channels::*,
    init::MAX_RING_COUNT,
    pipe_index,
    queue::{QueueState, QUEUE_DONE_OFFSET, QUEUE_RPTR_OFFSET},
    regs::ABI_MINOR_QUEUE_PRIORITY,
    PipeType, MAX_QUEUES, NUM_PRIORITIES, NUM_STAMP_SLOTS,
};

use crate::{
    deps::stamp_address,
    device::{Device, FwState},
    mem::{self, Memory},
    ring::RingError,
    sched::{WorkQueue, WEIGHTS},
};

/// The outcome of an operation: a `DEVCTRL_*` status and a value.
type Reply = (u32, u64);

const OK: Reply = (DEVCTRL_OK, 0);

impl Device {
    /// Processes every message on the device-control ring.
    pub(crate) fn process_devctrl(&mut self, mem: &mut dyn Memory) {
        loop {
            let Some(ch) = self.channels.as_mut() else {
                return;
            };
            let msg = match ch.devctrl.pop(mem) {
                Ok(Some(msg)) => msg,
                Ok(None) => return,
                Err(err) => {
                    self.ring_error("device-control", u32::MAX, err);
                    return;
                }
            };
            let (status, value) = self.devctrl(mem, &msg);
            self.out.event(&EventDevCtrlDone {
                seq: msg.seq,
                status,
                value,
            });
        }
    }

    /// Reports a broken host-to-firmware ring.
    pub(crate) fn ring_error(&mut self, ring: &str, object: u32, err: RingError) {
        let (kind, value) = match err {
            RingError::BadPointer(p) => (ERROR_BAD_RING_POINTER, u64::from(p)),
            RingError::Bus(b) => (ERROR_BAD_ADDRESS, b.address),
            RingError::BadDescriptor => (ERROR_BAD_ADDRESS, 0),
        };
        self.warn(&format!("{ring} ring unusable: {err}"));
        self.out.event(&EventError {
            kind,
            object,
            value,
        });
    }

    fn devctrl(&mut self, mem: &mut dyn Memory, msg: &DevCtrlMsg) -> Reply {
        if let Some(a) = msg.payload::<DevCtrlCreateQueue>() {
            self.create_queue(mem, &a)
        } else if let Some(a) = msg.payload::<DevCtrlDestroyQueue>() {
            self.destroy_queue(a.0.queue)
        } else if let Some(a) = msg.payload::<DevCtrlBindVm>() {
            if a._pad != 0 || !self.vms.bind(a.vm, a.root) {
                return (DEVCTRL_INVALID, 0);
            }
            OK
        } else if let Some(a) = msg.payload::<DevCtrlUnbindVm>() {
            if !self.vms.is_bound(a.vm) {
                (DEVCTRL_NOT_FOUND, 0)
            } else if self.sched.uses_vm(a.vm) {
                (DEVCTRL_BUSY, 0)
            } else {
                self.vms.unbind(a.vm);
                OK
            }
        } else if msg.payload::<DevCtrlHalt>().is_some() {
            if self.state == FwState::Running {
                self.halt(mem, 0, None);
            }
            OK
        } else if msg.payload::<DevCtrlResume>().is_some() {
            if self.state != FwState::Halted {
                return (DEVCTRL_BAD_STATE, 0);
            }
            self.state = FwState::Running;
            self.log(LOG_INFO, "resumed");
            OK
        } else if let Some(a) = msg.payload::<DevCtrlResetQueue>() {
            match self.reset_queue(mem, a.0.queue) {
                Some(n) => (DEVCTRL_OK, u64::from(n)),
                None => (DEVCTRL_NOT_FOUND, 0),
            }
        } else if msg.payload::<DevCtrlFlush>().is_some() {
            self.emit_stats();
            OK
        } else if let Some(a) = msg.payload::<DevCtrlQuery>() {
            match a.what {
                QUERY_UNITS => (DEVCTRL_OK, u64::from(self.config.units)),
                QUERY_TIME_NS => (DEVCTRL_OK, self.time),
                // CAST: at most MAX_QUEUES.
                QUERY_QUEUES => (DEVCTRL_OK, self.sched.queue_count() as u64),
                _ => (DEVCTRL_INVALID, 0),
            }
        } else if let Some(a) = msg
            .payload::<DevCtrlSetQueuePriority>()
            .filter(|_| self.abi_minor() >= ABI_MINOR_QUEUE_PRIORITY)
        {
            self.set_queue_priority(a.queue, a.priority)
        } else if let Some(a) = msg
            .payload::<DevCtrlSetQueueWeight>()
            .filter(|_| self.abi_minor() >= ABI_MINOR_QUEUE_PRIORITY)
        {
            self.set_queue_weight(a.queue, a.weight)
        } else {
            (DEVCTRL_UNKNOWN_OP, 0)
        }
    }

    fn set_queue_priority(&mut self, id: u32, priority: u32) -> Reply {
        if priority as usize >= NUM_PRIORITIES {
            return (DEVCTRL_INVALID, 0);
        }
        let Some(q) = self.sched.queue_mut(id) else {
            return (DEVCTRL_NOT_FOUND, 0);
        };
        let old = q.set_priority(priority);
        if old != priority {
            self.log(
                LOG_INFO,
                &format!("queue {id}: priority {old} -> {priority}"),
            );
        }
        OK
    }

    fn set_queue_weight(&mut self, id: u32, weight: u32) -> Reply {
        if !WEIGHTS.contains(&weight) {
            return (DEVCTRL_INVALID, 0);
        }
        let Some(q) = self.sched.queue_mut(id) else {
            return (DEVCTRL_NOT_FOUND, 0);
        };
        // Not logged: a serving stack may retune weights often; the log is for events.
        q.set_weight(weight);
        OK
    }

    fn create_queue(&mut self, mem: &mut dyn Memory, a: &DevCtrlCreateQueue) -> Reply {
        let ty = PipeType::from_raw(a.pipe_type);
        let valid = (a.queue as usize) < MAX_QUEUES
            && (a.priority as usize) < NUM_PRIORITIES
            && (a.stamp_slot as usize) < NUM_STAMP_SLOTS
            && a.ring_count.is_power_of_two()
            && (2..=MAX_RING_COUNT).contains(&a.ring_count)
            && a._pad == 0
            && a.ring.is_multiple_of(16)
            && a.state.is_multiple_of(64)
            && a.ring.checked_add(16 * u64::from(a.ring_count)).is_some()
            && a.state
                .checked_add(size_of::<QueueState>() as u64)
                .is_some();
        let Some(ty) = ty.filter(|_| valid) else {
            return (DEVCTRL_INVALID, 0);
        };
        if !self.vms.is_bound(a.vm) {
            return (DEVCTRL_NOT_FOUND, 0);
        }
        if self.sched.queue(a.queue).is_some() || self.slots.lock().is_taken(a.stamp_slot) {
            return (DEVCTRL_EXISTS, 0);
        }
        let Some(stamps) = self.channels.as_ref().map(|c| c.stamps) else {
            return (DEVCTRL_BAD_STATE, 0);
        };
        let init = (|| {
            mem::write_u32(mem, a.state + QUEUE_RPTR_OFFSET, 0)?;
            mem::write_u32(mem, a.state + QUEUE_DONE_OFFSET, 0)?;
            mem::write_u32(mem, stamp_address(stamps, a.stamp_slot), a.stamp_init)
        })();
        if init.is_err() {
            return (DEVCTRL_INVALID, 0);
        }
        self.slots.lock().claim(a.stamp_slot, a.stamp_init);
        let pipe = pipe_index(ty, a.priority);
        self.sched.add_queue(WorkQueue::new(a, pipe));
        self.log(
            LOG_INFO,
            &format!(
                "queue {} created: vm {}, {} priority {}, slot {}",
                a.queue,
                a.vm,
                ty.name(),
                a.priority,
                a.stamp_slot
            ),
        );
        OK
    }

    fn destroy_queue(&mut self, id: u32) -> Reply {
        let Some(q) = self.sched.queue(id) else {
            return (DEVCTRL_NOT_FOUND, 0);
        };
        if q.has_work() || self.sched.on_unit(id) {
            return (DEVCTRL_BUSY, 0);
        }
        let (slot, stats) = (q.slot(), q.stats(self.time));
        self.out.stat(stats);
        self.sched.remove_queue(id);
        self.slots.lock().release(slot);
        OK
    }
}
