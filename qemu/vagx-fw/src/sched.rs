// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The firmware scheduler: work queues, execution units, device time, faults and halts.
//!
//! # Model
//!
//! The device has `units` execution units. At every command boundary a free unit takes the
//! runnable work queue with the highest priority (lowest number) that is not on another unit;
//! among equal priorities it takes the one that least recently had a unit, so queues of one
//! priority round-robin command by command, and a higher-priority queue that becomes runnable
//! takes the next free unit, preempting lower ones at their next command boundary. A queue
//! runs its entries in order, one command at a time, on at most one unit.
//!
//! A command's effects happen when it completes, at `start + cost` in device time (see
//! `exec` for the cost model; starting an entry adds [`ENTRY_OVERHEAD_NS`]). A `BARRIER` whose
//! stamp has not been reached parks the queue, freeing its unit, until the stamp passes. A
//! `DEBUG_HANG` holds its unit forever. An entry still unfinished [`Channels::watchdog_ns`] after
//! it started times out.
//!
//! # Dependencies (ABI 1.1)
//!
//! A wait entry parks its queue the same way, but takes no device time and no unit: once its
//! slot has passed the value it completes at once, or fails if the awaited entry failed (see
//! `deps`). It is not under the watchdog: the entries it waits for are, and a failure of
//! theirs reaches it through their queue's reset. A failed wait fails the rest of its job, the
//! entries up to and including the next command buffer, which is not run. A BARRIER with
//! `BARRIER_FLAG_DEP_ERROR` fails its own entry at the barrier. A failed entry completes like
//! any other (stamp, `done`, STAMPS event) once its `EVENT_ENTRY_ERROR` is in the event ring;
//! it never halts the firmware.
//!
//! A fault or timeout halts the firmware: nothing runs until `DEVCTRL_RESUME`, commands in
//! flight are abandoned (their effects never happen; they run again from their start after
//! resume), the pending table says which queues had work, and the culprit queue stays stopped
//! until the host resets it.
//!
//! `INJECT_SILENCE` stops the firmware without a state change: nothing runs, no deadline is
//! reported and nothing is written until a device reset.
//!
//! [`Channels::watchdog_ns`]: crate::boot::Channels

use vagx_abi::{
    channels::*,
    init::{PendingEntry, PendingTable, PENDING_CULPRIT, PENDING_VALID},
    mbox::FwError,
    pod,
    queue::{EntryKind, QueueEntry, QUEUE_DONE_OFFSET, QUEUE_RPTR_OFFSET},
    regs::IRQ_STATE,
    NUM_PIPES, STAMP_STEP,
};

use crate::{
    deps::{stamp_address, DepFailure},
    device::{Device, FwState},
    exec::{self, Command},
    mem::{self, BusError, Memory},
    mmu::Fault,
    trace::Trace,
};

/// Device time to fetch a queue entry, added to its first command.
pub const ENTRY_OVERHEAD_NS: u64 = 1000;

/// How often the firmware retries writing a failed entry's error event to a full event ring.
pub const EVENT_RETRY_NS: u64 = 10_000;

/// A command occupying a unit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Task {
    pub(crate) queue: u32,
    /// Completion time; `u64::MAX` for a command that never completes.
    pub(crate) until: u64,
    pub(crate) command: Command,
    pub(crate) size: u32,
    pub(crate) cost: u64,
}

/// An execution unit.
#[derive(Clone, Debug, Default)]
pub(crate) struct Unit {
    pub(crate) task: Option<Task>,
}

/// The entry a queue is executing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Running {
    /// Index of the entry in the queue's ring.
    pub(crate) index: u32,
    pub(crate) entry: QueueEntry,
    /// A wait entry's `(slot, value)`; `None` for a command buffer.
    pub(crate) wait: Option<(u32, u32)>,
    /// The entry failed a dependency; it completes once its error event is in the event ring.
    pub(crate) failure: Option<DepFailure>,
    /// Byte offset of the next command.
    pub(crate) offset: u32,
    /// Index of the next command.
    pub(crate) command: u32,
    pub(crate) started: u64,
    /// Injected: the entry never completes.
    pub(crate) hang: bool,
    /// Injected: this command faults.
    pub(crate) fault_at: Option<u32>,
}

/// A work queue as the firmware tracks it.
#[derive(Clone, Debug)]
pub(crate) struct WorkQueue {
    pub(crate) id: u32,
    pub(crate) vm: u32,
    pub(crate) pipe: usize,
    pub(crate) priority: u32,
    pub(crate) slot: u32,
    pub(crate) ring: u64,
    pub(crate) count: u32,
    pub(crate) state: u64,
    pub(crate) stamp: u32,
    /// The host's write pointer, from the latest pipe message.
    pub(crate) wptr: u32,
    /// Next entry to fetch.
    pub(crate) rptr: u32,
    /// Entries completed (index of the oldest unfinished one).
    pub(crate) done: u32,
    pub(crate) current: Option<Running>,
    /// Stopped by a fault or timeout until the host resets the queue.
    pub(crate) stopped: bool,
    /// Parked on a BARRIER or wait entry: (slot, value).
    pub(crate) waiting: Option<(u32, u32)>,
    /// A wait entry of the current job failed on (slot, value): the job's remaining entries
    /// fail too, up to and including its command buffer.
    pub(crate) failing_job: Option<(u32, u32)>,
    pub(crate) last_run: u64,
    pub(crate) busy_ns: u64,
    pub(crate) entries_done: u64,
}

impl WorkQueue {
    pub(crate) fn new(a: &DevCtrlCreateQueue, pipe: usize) -> Self {
        Self {
            id: a.queue,
            vm: a.vm,
            pipe,
            priority: a.priority,
            slot: a.stamp_slot,
            ring: a.ring,
            count: a.ring_count,
            state: a.state,
            stamp: a.stamp_init,
            wptr: 0,
            rptr: 0,
            done: 0,
            current: None,
            stopped: false,
            waiting: None,
            failing_job: None,
            last_run: 0,
            busy_ns: 0,
            entries_done: 0,
        }
    }

    /// Whether the queue has unfinished entries.
    pub(crate) fn has_work(&self) -> bool {
        self.current.is_some() || self.done != self.wptr
    }

    /// Whether the queue's current entry failed and waits for its error event to be written.
    fn failure_held(&self) -> bool {
        self.current.is_some_and(|r| r.failure.is_some())
    }

    /// Entries between `from` and `to` in ring order.
    fn distance(&self, from: u32, to: u32) -> u32 {
        to.wrapping_sub(from) & (self.count - 1)
    }
}

impl Device {
    /// Whether queue `id` occupies a unit.
    pub(crate) fn on_unit(&self, id: u32) -> bool {
        self.units
            .iter()
            .any(|u| u.task.is_some_and(|t| t.queue == id))
    }

    /// Processes pipe messages (of one pipe or all of them).
    pub(crate) fn process_pipes(&mut self, mem: &mut dyn Memory, only: Option<usize>) {
        for pipe in 0..NUM_PIPES {
            if only.is_some_and(|p| p != pipe) {
                continue;
            }
            loop {
                let Some(ch) = self.channels.as_mut() else {
                    return;
                };
                let msg = match ch.pipes[pipe].pop(mem) {
                    Ok(Some(msg)) => msg,
                    Ok(None) => break,
                    Err(err) => {
                        // CAST: pipe < NUM_PIPES.
                        self.ring_error("pipe", pipe as u32, err);
                        break;
                    }
                };
                self.pipe_message(pipe, &msg);
            }
        }
    }

    fn pipe_message(&mut self, pipe: usize, msg: &PipeMsg) {
        let error = |object: u32| EventError {
            kind: ERROR_BAD_PIPE_MESSAGE,
            object,
            value: u64::from(msg.wptr),
        };
        let Some(q) = self.queues.get_mut(&msg.queue) else {
            self.warn(&format!("pipe {pipe}: unknown queue {}", msg.queue));
            self.out.event(&error(msg.queue));
            return;
        };
        // The new wptr may not move back past entries already fetched.
        let valid = q.pipe == pipe
            && msg._pad == [0; 2]
            && msg.wptr < q.count
            && q.distance(q.done, msg.wptr) >= q.distance(q.done, q.rptr);
        if valid {
            q.wptr = msg.wptr;
        } else {
            let id = q.id;
            self.warn(&format!("pipe {pipe}: bad message for queue {id}"));
            self.out.event(&error(id));
        }
    }

    /// Whether `q` can take a unit now.
    fn runnable(&self, q: &WorkQueue) -> bool {
        if q.stopped || self.on_unit(q.id) {
            return false;
        }
        if q.failure_held() {
            // Its error event must reach the event ring before its stamp is written.
            return !self.out.events_queued();
        }
        if let Some((slot, value)) = q.waiting {
            if !self.slots.passed(slot, value) {
                return false;
            }
        }
        q.current.is_some() || q.rptr != q.wptr
    }

    /// The next queue a free unit takes.
    fn pick(&self) -> Option<u32> {
        self.queues
            .values()
            .filter(|q| self.runnable(q))
            .min_by_key(|q| (q.priority, q.last_run, q.id))
            .map(|q| q.id)
    }

    /// Runs the firmware until device time `now`.
    ///
    /// A silent firmware runs nothing: its units keep their commands, which never complete,
    /// and no watchdog fires; only the clock goes on.
    pub(crate) fn run_until(&mut self, mem: &mut dyn Memory, now: u64) {
        loop {
            if self.state != FwState::Running || self.silent {
                break;
            }
            self.fill_units(mem);
            if self.state != FwState::Running {
                break;
            }
            let next_done = self
                .units
                .iter()
                .filter_map(|u| u.task.map(|t| t.until))
                .min();
            let watchdog = self.next_watchdog();
            let next = match (next_done, watchdog) {
                (Some(a), Some((b, _))) => a.min(b),
                (Some(a), None) => a,
                (None, Some((b, _))) => b,
                (None, None) => break,
            };
            if next > now {
                break;
            }
            self.time = self.time.max(next);
            if let Some((deadline, queue)) = watchdog {
                if deadline <= next {
                    self.timeout(mem, queue);
                    continue;
                }
            }
            for unit in 0..self.units.len() {
                if self.units[unit].task.is_some_and(|t| t.until == next) {
                    self.complete_command(mem, unit);
                    if self.state != FwState::Running {
                        break;
                    }
                }
            }
        }
        self.time = self.time.max(now);
    }

    /// When [`Device::advance`] must run next for the firmware to make progress, if ever.
    ///
    /// Never for a silent firmware: it makes no progress until a reset.
    pub fn next_deadline(&self) -> Option<u64> {
        if self.silent {
            return None;
        }
        // A held-back interrupt is a deadline until the time it is due; from then on the
        // shell's `take_irq` delivers it.
        let irq = self.inject.held_irq_deadline(self.time);
        if self.state != FwState::Running {
            return irq;
        }
        let done = self
            .units
            .iter()
            .filter_map(|u| u.task.map(|t| t.until))
            .filter(|&t| t != u64::MAX)
            .min();
        let watchdog = self.next_watchdog().map(|(t, _)| t);
        let held = self.queues.values().any(WorkQueue::failure_held) && self.out.events_queued();
        let retry = held.then(|| self.time.saturating_add(EVENT_RETRY_NS));
        [done, watchdog, irq, retry].into_iter().flatten().min()
    }

    /// The earliest watchdog deadline and its queue.
    ///
    /// Wait entries and failed entries run nothing, so the watchdog does not cover them.
    fn next_watchdog(&self) -> Option<(u64, u32)> {
        let limit = self.channels.as_ref()?.watchdog_ns;
        self.queues
            .values()
            .filter(|q| !q.stopped)
            .filter_map(|q| {
                q.current
                    .filter(|r| r.wait.is_none() && r.failure.is_none())
                    .map(|r| (r.started.saturating_add(limit), q.id))
            })
            .min()
    }

    /// Gives every free unit a command.
    fn fill_units(&mut self, mem: &mut dyn Memory) {
        if self.out.events_queued() && self.queues.values().any(WorkQueue::failure_held) {
            // The host may have made room for a held error event. A broken event ring is
            // reported by the next flush.
            let _ = self.write_events(mem);
        }
        for unit in 0..self.units.len() {
            while self.units[unit].task.is_none() && self.state == FwState::Running {
                let Some(id) = self.pick() else {
                    return;
                };
                self.rr_clock += 1;
                let clock = self.rr_clock;
                if let Some(q) = self.queues.get_mut(&id) {
                    q.last_run = clock;
                    q.waiting = None;
                }
                self.start_command(mem, unit, id);
            }
        }
    }

    /// Starts queue `id`'s next command on `unit`, fetching an entry if needed. On a fault,
    /// barrier wait or empty entry the unit stays free.
    fn start_command(&mut self, mem: &mut dyn Memory, unit: usize, id: u32) {
        let now = self.time;
        let Some(q) = self.queues.get(&id) else {
            return;
        };
        let (vm_id, mut entry_start) = (q.vm, false);
        let run = match q.current {
            Some(run) => run,
            None => match self.fetch_entry(mem, id) {
                Some(run) => {
                    entry_start = true;
                    run
                }
                None => return,
            },
        };
        if run.failure.is_some() {
            self.finish_failed(mem, id);
            return;
        }
        if entry_start {
            if let Some((slot, value)) = self.queues.get(&id).and_then(|q| q.failing_job) {
                if run.wait.is_none() {
                    // The job's command buffer: the next entry starts a new job.
                    if let Some(q) = self.queues.get_mut(&id) {
                        q.failing_job = None;
                    }
                }
                let failure = DepFailure {
                    cause: DEP_CAUSE_JOB,
                    command: NO_COMMAND,
                    slot,
                    value,
                };
                self.fail_entry(mem, id, failure);
                return;
            }
        }
        if let Some((slot, value)) = run.wait {
            self.resolve_wait(mem, id, slot, value);
            return;
        }
        if run.hang {
            self.units[unit].task = Some(Task {
                queue: id,
                until: u64::MAX,
                command: Command::DebugHang,
                size: 0,
                cost: 0,
            });
            return;
        }
        if run.offset >= run.entry.len {
            self.complete_entry(mem, id, false);
            return;
        }
        let Some(vm) = self.vms.get(vm_id) else {
            self.fault(mem, id, run.command, FAULT_UNMAPPED, run.entry.cmdbuf);
            return;
        };
        let minor = self.abi_minor();
        let decoded = exec::decode(&vm, mem, run.entry.cmdbuf, run.entry.len, run.offset, minor);
        let (command, size) = match decoded {
            Ok(d) => d,
            Err(f) => {
                self.fault(mem, id, run.command, f.kind, f.address);
                return;
            }
        };
        if run.fault_at == Some(run.command) {
            let address = run.entry.cmdbuf + u64::from(run.offset);
            self.fault(mem, id, run.command, FAULT_INJECTED, address);
            return;
        }
        if let Command::Barrier {
            slot,
            value,
            dep_error,
        } = command
        {
            if !self.slots.passed(slot, value) {
                if let Some(q) = self.queues.get_mut(&id) {
                    q.waiting = Some((slot, value));
                }
                return;
            }
            if dep_error && self.slots.failed(slot, value) {
                let failure = DepFailure {
                    cause: DEP_CAUSE_BARRIER,
                    command: run.command,
                    slot,
                    value,
                };
                self.fail_entry(mem, id, failure);
                return;
            }
        }
        let mut cost = command.cost_ns(&self.config.rates);
        if entry_start {
            cost = cost.saturating_add(ENTRY_OVERHEAD_NS);
        }
        let until = if command == Command::DebugHang {
            u64::MAX
        } else {
            now.saturating_add(cost)
        };
        self.units[unit].task = Some(Task {
            queue: id,
            until,
            command,
            size,
            cost,
        });
        self.traces.record(Trace::Command {
            queue: id,
            entry: run.index,
            index: run.command,
            opcode: command.opcode(),
            until,
        });
    }

    /// Fetches the entry at the queue's `rptr` and makes it current.
    ///
    /// A malformed entry, or a wait on the queue's own slot (which either has passed already
    /// or never will), is a bad-command fault at the entry's `cmdbuf`.
    fn fetch_entry(&mut self, mem: &mut dyn Memory, id: u32) -> Option<Running> {
        let now = self.time;
        let minor = self.abi_minor();
        let q = self.queues.get(&id)?;
        let (index, address, state) = (q.rptr, q.ring + 16 * u64::from(q.rptr), q.state);
        let (own_slot, skipped) = (q.slot, q.failing_job.is_some());
        let entry: QueueEntry = match mem::read_pod(mem, address) {
            Ok(e) => e,
            Err(b) => {
                self.ring_error("work queue", id, crate::ring::RingError::Bus(b));
                self.fault(mem, id, 0, FAULT_BAD_COMMAND, 0);
                return None;
            }
        };
        let kind = entry.decode(minor);
        let wait = match kind {
            Ok(EntryKind::Wait { slot, value }) => Some((slot, value)),
            _ => None,
        };
        let bad_entry = kind.is_err() || wait.is_some_and(|(slot, _)| slot == own_slot);
        // Injections are for the next entry that runs commands.
        let runs = matches!(kind, Ok(EntryKind::CmdBuf { .. })) && !skipped;
        let (hang, fault_at) = if runs {
            self.inject.take_for_entry(id)
        } else {
            (false, None)
        };
        let run = Running {
            index,
            entry,
            wait,
            failure: None,
            offset: 0,
            command: 0,
            started: now,
            hang,
            fault_at,
        };
        let q = self.queues.get_mut(&id)?;
        q.rptr = (q.rptr + 1) & (q.count - 1);
        q.current = Some(run);
        let rptr = q.rptr;
        if mem::write_u32(mem, state + QUEUE_RPTR_OFFSET, rptr).is_err() || bad_entry {
            self.fault(mem, id, 0, FAULT_BAD_COMMAND, entry.cmdbuf);
            return None;
        }
        Some(run)
    }

    /// Finishes the command on `unit`: applies its effects and moves its queue on.
    fn complete_command(&mut self, mem: &mut dyn Memory, unit: usize) {
        let Some(task) = self.units[unit].task.take() else {
            return;
        };
        let Some(q) = self.queues.get(&task.queue) else {
            return;
        };
        let (id, pipe, vm_id) = (q.id, q.pipe, q.vm);
        let Some(run) = q.current else {
            return;
        };
        if let Some(vm) = self.vms.get(vm_id) {
            if let Err(Fault { kind, address }) = task.command.execute(&vm, mem) {
                self.fault(mem, id, run.command, kind, address);
                return;
            }
        }
        self.pipe_busy_ns[pipe] += task.cost;
        let Some(q) = self.queues.get_mut(&id) else {
            return;
        };
        q.busy_ns += task.cost;
        let Some(run) = q.current.as_mut() else {
            return;
        };
        run.offset += task.size;
        run.command += 1;
        if run.offset >= run.entry.len {
            self.complete_entry(mem, id, false);
        }
    }

    /// Resolves queue `id`'s current wait entry on `(slot, value)`: parks the queue until the
    /// slot has passed `value`, then completes the entry, or fails it and the rest of its job.
    fn resolve_wait(&mut self, mem: &mut dyn Memory, id: u32, slot: u32, value: u32) {
        if !self.slots.passed(slot, value) {
            if let Some(q) = self.queues.get_mut(&id) {
                q.waiting = Some((slot, value));
            }
            return;
        }
        if !self.slots.failed(slot, value) {
            self.complete_entry(mem, id, false);
            return;
        }
        if let Some(q) = self.queues.get_mut(&id) {
            q.failing_job = Some((slot, value));
        }
        let failure = DepFailure {
            cause: DEP_CAUSE_WAIT,
            command: NO_COMMAND,
            slot,
            value,
        };
        self.fail_entry(mem, id, failure);
    }

    /// Fails queue `id`'s current entry with [`FwError::Dependency`]: queues its
    /// `EVENT_ENTRY_ERROR`, then completes it once the event is in the event ring.
    fn fail_entry(&mut self, mem: &mut dyn Memory, id: u32, failure: DepFailure) {
        let Some(q) = self.queues.get_mut(&id) else {
            return;
        };
        let stamp = q.stamp.wrapping_add(STAMP_STEP);
        let Some(run) = q.current.as_mut() else {
            return;
        };
        run.failure = Some(failure);
        let entry = run.index;
        self.out.event(&EventEntryError {
            queue: id,
            entry,
            stamp,
            error: FwError::Dependency as u32,
            cause: failure.cause,
            command: failure.command,
            slot: failure.slot,
            value: failure.value,
        });
        // The rest of a failed job would only repeat the first line.
        if failure.cause != DEP_CAUSE_JOB {
            let (slot, value) = (failure.slot, failure.value);
            self.log(
                LOG_INFO,
                &format!("queue {id}: entry {entry} failed: slot {slot} at {value:#x} had failed"),
            );
        }
        self.finish_failed(mem, id);
    }

    /// Completes queue `id`'s failed entry if its error event could be written to the event
    /// ring; otherwise the queue waits for room there (see [`Device::next_deadline`]).
    fn finish_failed(&mut self, mem: &mut dyn Memory, id: u32) {
        // A broken event ring is reported by the next flush.
        let _ = self.write_events(mem);
        if !self.out.events_queued() {
            self.complete_entry(mem, id, true);
        }
    }

    /// Retires queue `id`'s current entry: advances `done` and the stamp, and records the stamp
    /// as failed if the entry `failed`.
    fn complete_entry(&mut self, mem: &mut dyn Memory, id: u32, failed: bool) {
        let Some(stamps) = self.channels.as_ref().map(|c| c.stamps) else {
            return;
        };
        let Some(q) = self.queues.get_mut(&id) else {
            return;
        };
        q.current = None;
        q.done = (q.done + 1) & (q.count - 1);
        q.stamp = q.stamp.wrapping_add(STAMP_STEP);
        q.entries_done += 1;
        let (slot, stamp, done, state, pipe) = (q.slot, q.stamp, q.done, q.state, q.pipe);
        if failed {
            self.slots.record_failure(slot, stamp, stamp);
        }
        self.pipe_entries[pipe] += 1;
        self.traces.record(Trace::EntryDone { queue: id, stamp });
        let written = self
            .publish_stamp(mem, stamps, slot, stamp)
            .and_then(|()| mem::write_u32(mem, state + QUEUE_DONE_OFFSET, done));
        if let Err(b) = written {
            self.ring_error("work queue", id, crate::ring::RingError::Bus(b));
        }
        if self.inject.entry_completed() {
            self.crash(FwError::Injected);
        }
    }

    /// Publishes `stamp` as the stamp of `slot`: the firmware's copy, the next STAMPS event,
    /// and the host's copy in the stamp table at bus address `table`.
    fn publish_stamp(
        &mut self,
        mem: &mut dyn Memory,
        table: u64,
        slot: u32,
        stamp: u32,
    ) -> Result<(), BusError> {
        self.slots.set_stamp(slot, stamp);
        self.out.stamp_changed(slot);
        mem::write_u32(mem, stamp_address(table, slot), stamp)
    }

    /// A command of queue `id` faulted: report it and halt.
    fn fault(&mut self, mem: &mut dyn Memory, id: u32, command: u32, kind: u32, address: u64) {
        let entry = self
            .queues
            .get(&id)
            .and_then(|q| q.current.map(|r| r.index))
            .unwrap_or(0);
        self.traces.record(Trace::Fault {
            queue: id,
            kind,
            address,
        });
        self.out.event(&EventFault {
            queue: id,
            entry,
            command,
            kind,
            address,
        });
        self.log(
            LOG_ERROR,
            &format!("queue {id}: fault {kind} at {address:#x} (entry {entry}, command {command})"),
        );
        self.halt(mem, EVENT_FAULT, Some(id));
    }

    /// Queue `id`'s entry ran past the watchdog: report it and halt.
    fn timeout(&mut self, mem: &mut dyn Memory, id: u32) {
        let entry = self
            .queues
            .get(&id)
            .and_then(|q| q.current.map(|r| r.index))
            .unwrap_or(0);
        self.out.event(&EventTimeout { queue: id, entry });
        self.log(LOG_ERROR, &format!("queue {id}: entry {entry} timed out"));
        self.halt(mem, EVENT_TIMEOUT, Some(id));
    }

    /// Stops all execution and publishes the pending table.
    pub(crate) fn halt(&mut self, mem: &mut dyn Memory, reason: u32, culprit: Option<u32>) {
        self.state = FwState::Halted;
        self.traces.record(Trace::Halt { reason });
        for unit in &mut self.units {
            unit.task = None;
        }
        if let Some(q) = culprit.and_then(|id| self.queues.get_mut(&id)) {
            q.stopped = true;
        }
        self.halt_seq = self.halt_seq.wrapping_add(1);
        let mut table = pod::zeroed::<PendingTable>();
        table.halt_seq = self.halt_seq;
        table.reason = reason;
        for q in self.queues.values().filter(|q| q.has_work()) {
            let mut flags = PENDING_VALID;
            if culprit == Some(q.id) {
                flags |= PENDING_CULPRIT;
            }
            table.entries[q.slot as usize] = PendingEntry {
                flags,
                queue: q.id,
                stamp: q.stamp,
                next_stamp: q.stamp.wrapping_add(STAMP_STEP),
            };
        }
        if let Some(ch) = self.channels.as_ref() {
            let address = ch.pending;
            if mem::write_pod(mem, address, &table).is_err() {
                self.log(LOG_ERROR, "cannot write the pending table");
            }
        }
        let why = match reason {
            EVENT_FAULT => "fault",
            EVENT_TIMEOUT => "watchdog timeout",
            _ => "host request",
        };
        let text = match culprit {
            Some(q) => format!("halted: {why}, culprit queue {q}"),
            None => format!("halted: {why}"),
        };
        self.log(LOG_WARN, &text);
        self.raise(IRQ_STATE);
    }

    /// Discards queue `id`'s unfinished entries; returns how many, or `None` if no such queue.
    pub(crate) fn reset_queue(&mut self, mem: &mut dyn Memory, id: u32) -> Option<u32> {
        for unit in &mut self.units {
            if unit.task.is_some_and(|t| t.queue == id) {
                unit.task = None;
            }
        }
        let stamps = self.channels.as_ref()?.stamps;
        let q = self.queues.get_mut(&id)?;
        let discarded = q.distance(q.done, q.wptr);
        let first = q.stamp.wrapping_add(STAMP_STEP);
        q.stamp = q.stamp.wrapping_add(STAMP_STEP.wrapping_mul(discarded));
        q.done = q.wptr;
        q.rptr = q.wptr;
        q.current = None;
        q.waiting = None;
        q.failing_job = None;
        q.stopped = false;
        let (slot, stamp, done, state) = (q.slot, q.stamp, q.done, q.state);
        if discarded > 0 {
            // Discarded entries failed, the culprit's included: waits on them fail.
            self.slots.record_failure(slot, first, stamp);
        }
        let written = self
            .publish_stamp(mem, stamps, slot, stamp)
            .and_then(|()| mem::write_u32(mem, state + QUEUE_DONE_OFFSET, done))
            .and_then(|()| mem::write_u32(mem, state + QUEUE_RPTR_OFFSET, done));
        if written.is_err() {
            self.log(LOG_ERROR, &format!("queue {id}: cannot write its state"));
        }
        self.log(
            LOG_INFO,
            &format!("queue {id}: reset, {discarded} entries discarded"),
        );
        Some(discarded)
    }

    /// Queues statistics for every pipe and queue.
    pub(crate) fn emit_stats(&mut self) {
        for pipe in 0..NUM_PIPES {
            self.out.stat(StatsMsg {
                kind: STATS_PIPE,
                // CAST: pipe < NUM_PIPES.
                id: pipe as u32,
                busy_ns: self.pipe_busy_ns[pipe],
                entries: self.pipe_entries[pipe],
                time_ns: self.time,
            });
        }
        let ids: Vec<u32> = self.queues.keys().copied().collect();
        for id in ids {
            self.emit_queue_stats(id);
        }
    }

    /// Queues statistics for queue `id`.
    pub(crate) fn emit_queue_stats(&mut self, id: u32) {
        if let Some(q) = self.queues.get(&id) {
            let msg = StatsMsg {
                kind: STATS_QUEUE,
                id,
                busy_ns: q.busy_ns,
                entries: q.entries_done,
                time_ns: self.time,
            };
            self.out.stat(msg);
        }
    }
}
