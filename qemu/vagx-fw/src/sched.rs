// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The firmware scheduler: work queues, execution units, device time, faults and halts.
//!
//! # Model
//!
//! The device has `units` execution units. At every command boundary a free unit takes the
//! runnable work queue with the highest priority (lowest number) that is not on another unit;
//! among equal priorities, stride scheduling by command: each queue has a weight (100 unless
//! `DEVCTRL_SET_QUEUE_WEIGHT`, ABI 1.6, changes it) and a pass that every command it starts
//! advances by `STRIDE / weight`; the smallest pass goes, then the one that least recently had
//! a unit. Queues of equal weight round-robin command by command, a queue of twice the weight
//! gets twice the command boundaries, and a higher-priority queue that becomes runnable
//! takes the next free unit, preempting lower ones at their next command boundary. A queue
//! runs its entries in order, one command at a time, on at most one unit. Its priority is
//! set at creation and (ABI 1.6) changed by `DEVCTRL_SET_QUEUE_PRIORITY`, which takes effect
//! at the next command boundary like any other change of what is runnable.
//!
//! Deadlines (ABI 1.7): a pipe message may say when one of a queue's unfinished entries is
//! due (`PipeMsg`, relative to the device time it is read at). A queue's deadline is the
//! earliest of its entries'; within a priority the runnable queue with the earliest deadline
//! goes first, at most `DEADLINE_BURST` picks in a row while a queue of that priority without
//! a deadline is runnable; then the stride rule picks among those without. The pass still
//! advances for a command picked by deadline, so a queue that went ahead by deadline yields
//! by the stride rule afterwards: deadlines move work earlier, not weights' shares.
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
//! A wait entry may name another device's slot (ABI 1.4, [`crate::fabric`]): it is resolved
//! the same way on that device's slots, through the fabric, and fails with `DEP_CAUSE_PEER` if
//! that device is not there in the epoch the entry names. A parked peer wait reports no
//! deadline: the peer wakes the device when it changes. A change is seen from the peer's
//! device time of it on, so a device catching up on an interval resolves the wait at that
//! time (a deadline it sets itself), never earlier.
//!
//! A fault or timeout halts the firmware: nothing runs until `DEVCTRL_RESUME`, commands in
//! flight are abandoned (their effects never happen; they run again from their start after
//! resume), the pending table says which queues had work, and the culprit queue stays stopped
//! until the host resets it.
//!
//! `INJECT_SILENCE` stops the firmware without a state change: nothing runs, no deadline is
//! reported and nothing is written until a device reset.
//!
//! # State
//!
//! The queues, the units and the scheduler's counters are a `Scheduler`. Its methods decide
//! (which queue runs next, when the next command completes or the watchdog fires, what a halt
//! or a queue reset leaves) and return what the device must then do or publish: the stamp to
//! write, the pending table, the statistics. The `impl Device` here runs commands and entries,
//! which also touches memory, the stamp slots, the event queue and the injections.
//!
//! [`Channels::watchdog_ns`]: crate::boot::Channels

use std::collections::BTreeMap;

use vagx_abi::{
    channels::*,
    init::{PendingEntry, PendingTable, PENDING_CULPRIT, PENDING_VALID},
    mbox::FwError,
    pod,
    queue::{EntryKind, QueueEntry, QUEUE_BUSY_OFFSET, QUEUE_DONE_OFFSET, QUEUE_RPTR_OFFSET},
    regs::{ABI_MINOR_DEADLINES, ABI_MINOR_UNIT_STATS, IRQ_STATE},
    stamp_passed, NUM_PIPES, NUM_PRIORITIES, STAMP_STEP,
};

use crate::{
    deps::{stamp_address, DepFailure, WaitOn, WaitState},
    device::{Device, FwState},
    exec::{self, offload::Offloaded, Command},
    fabric::Attachment,
    mem::{self, BusError, Memory},
    mmu::Fault,
    trace::Trace,
    workers::{Pending, RanOn},
};

/// Device time to fetch a queue entry, added to its first command (the default rates';
/// [`crate::exec::Rates::entry_ns`]).
pub const ENTRY_OVERHEAD_NS: u64 = 1000;

/// How often the firmware retries writing a failed entry's error event to a full event ring.
pub const EVENT_RETRY_NS: u64 = 10_000;

/// A command occupying a unit.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Task {
    queue: u32,
    /// Completion time; `u64::MAX` for a command that never completes.
    until: u64,
    command: Command,
    size: u32,
    cost: u64,
}

/// An execution unit.
#[derive(Debug, Default)]
struct Unit {
    task: Option<Task>,
    /// The task, if it runs on a worker ([`crate::workers`]).
    offload: Option<Offload>,
    /// Device time spent on the commands it completed, and how many.
    busy_ns: u64,
    commands: u64,
}

/// A command that left the scheduler's thread at its start.
#[derive(Debug)]
enum Offload {
    /// On a worker.
    Running(Pending),
    /// Translating its operands faulted: the fault is the command's, at its completion.
    Fault(Fault),
}

/// The entry a queue is executing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Running {
    /// Index of the entry in the queue's ring.
    index: u32,
    entry: QueueEntry,
    /// What a wait entry waits for; `None` for a command buffer.
    wait: Option<WaitOn>,
    /// The entry failed a dependency; it completes once its error event is in the event ring.
    failure: Option<DepFailure>,
    /// Byte offset of the next command.
    offset: u32,
    /// Index of the next command.
    command: u32,
    started: u64,
    /// Injected: the entry never completes.
    hang: bool,
    /// Injected: this command faults.
    fault_at: Option<u32>,
}

/// A work queue as the firmware tracks it.
#[derive(Clone, Debug)]
pub(crate) struct WorkQueue {
    id: u32,
    vm: u32,
    pipe: usize,
    priority: u32,
    slot: u32,
    ring: u64,
    count: u32,
    state: u64,
    stamp: u32,
    /// The host's write pointer, from the latest pipe message.
    wptr: u32,
    /// Next entry to fetch.
    rptr: u32,
    /// Entries completed (index of the oldest unfinished one).
    done: u32,
    current: Option<Running>,
    /// Stopped by a fault or timeout until the host resets the queue.
    stopped: bool,
    /// Parked on a BARRIER or wait entry.
    waiting: Option<WaitOn>,
    /// A wait entry of the current job failed on (slot, value): the job's remaining entries
    /// fail too, up to and including its command buffer.
    failing_job: Option<(u32, u32)>,
    last_run: u64,
    /// Its share of its priority's command boundaries (ABI 1.6), 1 to 10000.
    weight: u32,
    /// Stride scheduling's pass: advanced by `STRIDE / weight` per command started.
    pass: u64,
    /// Deadlines of unfinished entries (ABI 1.7): (stamp, device time), at most one per
    /// entry; the earliest is the queue's.
    deadlines: Vec<(u32, u64)>,
    busy_ns: u64,
    entries_done: u64,
}

/// The weights a queue may have.
pub(crate) const WEIGHTS: core::ops::RangeInclusive<u32> = 1..=QUEUE_WEIGHT_MAX;
/// The pass a command of a queue of weight [`QUEUE_WEIGHT_DEFAULT`] adds.
const STRIDE: u64 = 1_000_000;

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
            weight: QUEUE_WEIGHT_DEFAULT,
            pass: 0,
            deadlines: Vec::new(),
            busy_ns: 0,
            entries_done: 0,
        }
    }

    /// The queue's deadline: the earliest of its unfinished entries'.
    fn deadline(&self) -> Option<u64> {
        self.deadlines.iter().map(|&(_, at)| at).min()
    }

    /// Whether `stamp` is the stamp of an entry written up to `wptr` and not yet completed.
    fn unfinished(&self, stamp: u32, wptr: u32) -> bool {
        let gap = stamp.wrapping_sub(self.stamp);
        let ahead = gap / STAMP_STEP;
        gap.is_multiple_of(STAMP_STEP) && ahead >= 1 && ahead <= self.distance(self.done, wptr)
    }

    /// Records that the entry of stamp `stamp` is due at device time `at`, unless it has one
    /// at least as early.
    fn add_deadline(&mut self, stamp: u32, at: u64) {
        match self.deadlines.iter_mut().find(|(s, _)| *s == stamp) {
            Some((_, t)) => *t = (*t).min(at),
            None => self.deadlines.push((stamp, at)),
        }
    }

    /// Forgets the deadlines of the entries completed by the queue's stamp.
    fn drop_passed_deadlines(&mut self) {
        let stamp = self.stamp;
        self.deadlines.retain(|&(s, _)| !stamp_passed(stamp, s));
    }

    /// Gives the queue priority `priority` from its next unit on; returns the old one.
    pub(crate) fn set_priority(&mut self, priority: u32) -> u32 {
        core::mem::replace(&mut self.priority, priority)
    }

    /// Gives the queue weight `weight` (in [`WEIGHTS`]) from its next command on; returns the
    /// old one.
    pub(crate) fn set_weight(&mut self, weight: u32) -> u32 {
        core::mem::replace(&mut self.weight, weight)
    }

    /// The pass one command of the queue adds.
    fn stride(&self) -> u64 {
        STRIDE * u64::from(QUEUE_WEIGHT_DEFAULT) / u64::from(self.weight.max(1))
    }

    /// Whether the queue has unfinished entries.
    pub(crate) fn has_work(&self) -> bool {
        self.current.is_some() || self.done != self.wptr
    }

    /// The queue's stamp slot.
    pub(crate) fn slot(&self) -> u32 {
        self.slot
    }

    /// The stamp of the next entry to complete.
    fn next_stamp(&self) -> u32 {
        self.stamp.wrapping_add(STAMP_STEP)
    }

    /// The queue's statistics at device time `now`.
    pub(crate) fn stats(&self, now: u64) -> StatsMsg {
        StatsMsg {
            kind: STATS_QUEUE,
            id: self.id,
            busy_ns: self.busy_ns,
            entries: self.entries_done,
            time_ns: now,
        }
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

/// The queue a free unit takes, and whether it goes by deadline past a queue without one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pick {
    id: u32,
    past_others: bool,
}

/// Entries a queue retired at once (one that completed, or those a reset discarded): what the
/// device publishes and records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Retired {
    /// How many.
    count: u32,
    /// The queue's stamp slot.
    slot: u32,
    /// The stamps of the first and the last retired entry; `stamp` is the queue's stamp now.
    first: u32,
    stamp: u32,
    /// The queue's `done` index now, and the bus address of its `QueueState`.
    done: u32,
    state: u64,
    /// Device time of the queue's commands so far (ABI 1.7's `QueueState::busy_ns`).
    busy_ns: u64,
}

/// Why a pipe message was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PipeRefusal {
    /// No queue has the message's id.
    UnknownQueue,
    /// The queue is not on the pipe, a pad is not zero, or the `wptr` is out of range or moves
    /// back past entries already fetched.
    Bad,
}

/// The scheduler's state: the work queues, the execution units and the commands on them, and
/// the counters that round robin, the pending table and the statistics use.
///
/// # Invariants
///
/// `queues` is keyed by queue id. A queue has a task on at most one unit.
#[derive(Debug)]
pub(crate) struct Scheduler {
    queues: BTreeMap<u32, WorkQueue>,
    units: Vec<Unit>,
    /// Counts units given to queues; a queue's `last_run` is the count at its latest turn.
    rr_clock: u64,
    /// Per priority, the largest pass a queue had when it took a unit (see `take_turn`).
    level_pass: [u64; NUM_PRIORITIES],
    /// Per priority, queues picked by deadline in a row past one without (ABI 1.7).
    deadline_streak: [u32; NUM_PRIORITIES],
    /// `halt_seq` of the latest pending table.
    halt_seq: u32,
    /// Per pipe: device time spent on its queues' commands, and entries completed.
    pipe_busy_ns: [u64; NUM_PIPES],
    pipe_entries: [u64; NUM_PIPES],
    /// How the emulation keeps up with the cost model.
    emulation: Emulation,
}

/// The commands the model executed, against the host time their execution took: a command
/// is late when the host took longer than its modelled cost, so that QEMU's virtual clock
/// (which runs with the host's) reached the command's end before its effects were computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Emulation {
    /// Commands executed (completed or faulted), and their modelled cost.
    pub commands: u64,
    pub modelled_ns: u64,
    /// Of these, the late ones, and the host time all took.
    pub late: u64,
    pub host_ns: u64,
    /// Commands handed to the worker threads, and of these the ones their completion found
    /// unpicked and ran itself (not reported to the host).
    pub offloaded: u64,
    pub taken_back: u64,
}

impl Emulation {
    /// Records one command of modelled cost `cost` that took the host `host_ns`, computed at
    /// its completion: late if that took longer than its cost.
    pub fn record(&mut self, cost: u64, host_ns: u64) {
        self.record_command(cost, host_ns, host_ns > cost);
    }

    /// Records one command handed to the workers at its start: late if the completion had to
    /// wait for its worker, or, run at the completion because no worker had picked it up,
    /// if that run took longer than its cost.
    pub fn record_offloaded(&mut self, cost: u64, host_ns: u64, ran_on: RanOn) {
        let late = match ran_on {
            RanOn::Worker => false,
            RanOn::WorkerLate => true,
            RanOn::Caller => host_ns > cost,
        };
        self.record_command(cost, host_ns, late);
        self.offloaded += 1;
        self.taken_back += u64::from(ran_on == RanOn::Caller);
    }

    fn record_command(&mut self, cost: u64, host_ns: u64, late: bool) {
        self.commands += 1;
        self.modelled_ns = self.modelled_ns.saturating_add(cost);
        self.host_ns = self.host_ns.saturating_add(host_ns);
        self.late += u64::from(late);
    }
}

impl Scheduler {
    /// A scheduler with `units` idle units and no queues.
    pub(crate) fn new(units: u32) -> Self {
        Self {
            queues: BTreeMap::new(),
            units: (0..units).map(|_| Unit::default()).collect(),
            rr_clock: 0,
            level_pass: [0; NUM_PRIORITIES],
            deadline_streak: [0; NUM_PRIORITIES],
            halt_seq: 0,
            pipe_busy_ns: [0; NUM_PIPES],
            pipe_entries: [0; NUM_PIPES],
            emulation: Emulation::default(),
        }
    }

    /// Queue `id`, if it exists.
    pub(crate) fn queue(&self, id: u32) -> Option<&WorkQueue> {
        self.queues.get(&id)
    }

    pub(crate) fn queue_mut(&mut self, id: u32) -> Option<&mut WorkQueue> {
        self.queues.get_mut(&id)
    }

    /// Adds queue `q` (its id is not taken).
    pub(crate) fn add_queue(&mut self, q: WorkQueue) {
        self.queues.insert(q.id, q);
    }

    /// Forgets queue `id`.
    pub(crate) fn remove_queue(&mut self, id: u32) {
        self.queues.remove(&id);
    }

    /// Number of queues.
    pub(crate) fn queue_count(&self) -> usize {
        self.queues.len()
    }

    /// Whether a queue runs in VM `vm`.
    pub(crate) fn uses_vm(&self, vm: u32) -> bool {
        self.queues.values().any(|q| q.vm == vm)
    }

    /// Whether queue `id` occupies a unit.
    pub(crate) fn on_unit(&self, id: u32) -> bool {
        self.units
            .iter()
            .any(|u| u.task.is_some_and(|t| t.queue == id))
    }

    /// Whether a queue's current entry failed and waits for its error event to be written.
    fn failure_held(&self) -> bool {
        self.queues.values().any(WorkQueue::failure_held)
    }

    /// Index of queue `id`'s current entry (0 if none), for reports.
    fn current_entry(&self, id: u32) -> u32 {
        self.queues
            .get(&id)
            .and_then(|q| q.current.map(|r| r.index))
            .unwrap_or(0)
    }

    /// Applies pipe message `msg` from pipe `pipe`, read at device time `now` under ABI minor
    /// version `abi_minor`: the queue's new `wptr` and (1.7) an entry's deadline.
    fn pipe_message(
        &mut self,
        pipe: usize,
        msg: &PipeMsg,
        now: u64,
        abi_minor: u16,
    ) -> Result<(), PipeRefusal> {
        let q = self
            .queues
            .get_mut(&msg.queue)
            .ok_or(PipeRefusal::UnknownQueue)?;
        let deadline = msg.deadline();
        let fields_ok = if abi_minor >= ABI_MINOR_DEADLINES {
            deadline.is_some() || msg.deadline_stamp == 0
        } else {
            msg.deadline_stamp == 0 && msg.due_us == 0
        };
        // The new wptr may not move back past entries already fetched.
        let valid = q.pipe == pipe
            && fields_ok
            && msg.wptr < q.count
            && q.distance(q.done, msg.wptr) >= q.distance(q.done, q.rptr);
        if !valid {
            return Err(PipeRefusal::Bad);
        }
        if let Some((stamp, due_us)) = deadline {
            let completed = stamp_passed(q.stamp, stamp);
            if !completed && !q.unfinished(stamp, msg.wptr) {
                return Err(PipeRefusal::Bad);
            }
            if !completed {
                let due_ns = i64::from(due_us) * 1000;
                q.add_deadline(stamp, now.saturating_add_signed(due_ns));
            }
        }
        q.wptr = msg.wptr;
        Ok(())
    }

    /// Whether `q` can take a unit now, given whether a wait has resolved (`resolved`) and
    /// whether events wait for room in the event ring.
    fn runnable(
        &self,
        q: &WorkQueue,
        resolved: &dyn Fn(&WaitOn) -> bool,
        events_queued: bool,
    ) -> bool {
        if q.stopped || self.on_unit(q.id) {
            return false;
        }
        if q.failure_held() {
            // Its error event must reach the event ring before its stamp is written.
            return !events_queued;
        }
        if let Some(w) = &q.waiting {
            if !resolved(w) {
                return false;
            }
        }
        q.current.is_some() || q.rptr != q.wptr
    }

    /// The next queue a free unit takes: of the highest runnable priority, the one whose
    /// deadline is earliest (ABI 1.7) unless [`DEADLINE_BURST`] went by deadline in a row past a
    /// queue without one, else the stride rule's choice among those without one.
    fn pick(&self, resolved: &dyn Fn(&WaitOn) -> bool, events_queued: bool) -> Option<Pick> {
        let runnable = || {
            self.queues
                .values()
                .filter(|q| self.runnable(q, resolved, events_queued))
        };
        let priority = runnable().map(|q| q.priority).min()?;
        let group = || runnable().filter(move |q| q.priority == priority);
        let by_stride = |q: &&WorkQueue| (q.pass, q.last_run, q.id);
        let urgent = group()
            .filter_map(|q| q.deadline().map(|d| (d, q)))
            .min_by_key(|(d, q)| (*d, by_stride(q)))
            .map(|(_, q)| q.id);
        let other = group()
            .filter(|q| q.deadline().is_none())
            .min_by_key(by_stride);
        let streak = self.deadline_streak[priority as usize % NUM_PRIORITIES];
        Some(match (urgent, other) {
            (Some(id), Some(_)) if streak < DEADLINE_BURST => Pick {
                id,
                past_others: true,
            },
            (Some(id), None) => Pick {
                id,
                past_others: false,
            },
            (_, Some(q)) => Pick {
                id: q.id,
                past_others: false,
            },
            (None, None) => return None,
        })
    }

    /// Queue `id` takes a unit for a command: it is the most recent to have had one, it is
    /// no longer parked, and its pass advances by its stride. A queue far behind its
    /// priority's pass (the largest a queue of it had when picked: the queue is new, back
    /// from idle or a wait, or from another priority) starts one stride behind it: it goes
    /// next, but banks nothing.
    ///
    /// `past_others` (ABI 1.7): it was picked by deadline while a queue of its priority
    /// without one was runnable, which counts towards [`DEADLINE_BURST`].
    fn take_turn(&mut self, id: u32, past_others: bool) {
        self.rr_clock += 1;
        let clock = self.rr_clock;
        if let Some(q) = self.queues.get_mut(&id) {
            let streak = &mut self.deadline_streak[q.priority as usize % NUM_PRIORITIES];
            *streak = if past_others { *streak + 1 } else { 0 };
            q.last_run = clock;
            q.waiting = None;
            let stride = q.stride();
            if let Some(level) = self.level_pass.get_mut(q.priority as usize) {
                q.pass = q.pass.max(level.saturating_sub(stride));
                *level = (*level).max(q.pass);
            }
            q.pass += stride;
        }
    }

    /// Parks queue `id` until its wait resolves.
    fn park(&mut self, id: u32, wait: WaitOn) {
        if let Some(q) = self.queues.get_mut(&id) {
            q.waiting = Some(wait);
        }
    }

    /// When the earliest command on a unit completes (`u64::MAX`: never), if any is on one.
    fn next_completion(&self) -> Option<u64> {
        self.units
            .iter()
            .filter_map(|u| u.task.map(|t| t.until))
            .min()
    }

    /// The earliest watchdog deadline for a limit of `limit` ns per entry, and its queue.
    ///
    /// Wait entries and failed entries run nothing, so the watchdog does not cover them.
    fn next_watchdog(&self, limit: u64) -> Option<(u64, u32)> {
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

    /// Accounts for `task`, whose command completed on `unit`: its cost, and its queue's next
    /// command. Returns whether that was the entry's last command.
    fn command_done(&mut self, unit: usize, task: &Task) -> bool {
        let Some(q) = self.queues.get_mut(&task.queue) else {
            return false;
        };
        if let Some(u) = self.units.get_mut(unit) {
            u.busy_ns += task.cost;
            u.commands += 1;
        }
        self.pipe_busy_ns[q.pipe] += task.cost;
        q.busy_ns += task.cost;
        let Some(run) = q.current.as_mut() else {
            return false;
        };
        run.offset += task.size;
        run.command += 1;
        run.offset >= run.entry.len
    }

    /// Retires queue `id`'s current entry: `done` and the stamp advance.
    fn retire_entry(&mut self, id: u32) -> Option<Retired> {
        let q = self.queues.get_mut(&id)?;
        q.current = None;
        q.done = (q.done + 1) & (q.count - 1);
        q.stamp = q.next_stamp();
        q.drop_passed_deadlines();
        q.entries_done += 1;
        self.pipe_entries[q.pipe] += 1;
        Some(Retired {
            count: 1,
            slot: q.slot,
            first: q.stamp,
            stamp: q.stamp,
            done: q.done,
            state: q.state,
            busy_ns: q.busy_ns,
        })
    }

    /// Discards queue `id`'s unfinished entries, the one on a unit included, and restarts the
    /// queue if it was stopped.
    fn reset_queue(&mut self, id: u32) -> Option<Retired> {
        for unit in &mut self.units {
            if unit.task.is_some_and(|t| t.queue == id) {
                unit.task = None;
                unit.offload = None;
            }
        }
        let q = self.queues.get_mut(&id)?;
        let discarded = q.distance(q.done, q.wptr);
        let first = q.next_stamp();
        q.stamp = q.stamp.wrapping_add(STAMP_STEP.wrapping_mul(discarded));
        q.done = q.wptr;
        q.rptr = q.wptr;
        q.current = None;
        q.waiting = None;
        q.failing_job = None;
        q.deadlines.clear();
        q.stopped = false;
        Some(Retired {
            count: discarded,
            slot: q.slot,
            first,
            stamp: q.stamp,
            done: q.done,
            state: q.state,
            busy_ns: q.busy_ns,
        })
    }

    /// Stops every unit (their commands are abandoned) and the `culprit` queue, and returns
    /// the pending table for halt `reason`: which queues have unfinished entries.
    fn halt(&mut self, reason: u32, culprit: Option<u32>) -> PendingTable {
        for unit in &mut self.units {
            unit.task = None;
            unit.offload = None;
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
                next_stamp: q.next_stamp(),
            };
        }
        table
    }

    /// Statistics at device time `now`: every pipe's, every queue's, then (ABI 1.2) every
    /// unit's and the emulation's.
    fn stats(&self, now: u64, abi_minor: u16) -> Vec<StatsMsg> {
        let pipes = (0..NUM_PIPES).map(|pipe| StatsMsg {
            kind: STATS_PIPE,
            // CAST: pipe < NUM_PIPES.
            id: pipe as u32,
            busy_ns: self.pipe_busy_ns[pipe],
            entries: self.pipe_entries[pipe],
            time_ns: now,
        });
        let queues = self.queues.values().map(|q| q.stats(now));
        let units = self
            .units
            .iter()
            .enumerate()
            .filter(|_| abi_minor >= ABI_MINOR_UNIT_STATS)
            .map(|(i, u)| StatsMsg {
                kind: STATS_UNIT,
                // CAST: at most MAX_UNITS units.
                id: i as u32,
                busy_ns: u.busy_ns,
                entries: u.commands,
                time_ns: now,
            });
        let e = self.emulation;
        let emulation = [
            (EMULATION_MODELLED, e.modelled_ns, e.commands),
            (EMULATION_HOST, e.host_ns, e.late),
        ]
        .into_iter()
        .filter(|_| abi_minor >= ABI_MINOR_UNIT_STATS)
        .map(|(id, busy_ns, entries)| StatsMsg {
            kind: STATS_EMULATION,
            id,
            busy_ns,
            entries,
            time_ns: now,
        });
        pipes.chain(queues).chain(units).chain(emulation).collect()
    }
}

impl Device {
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
        let (now, minor) = (self.time, self.abi_minor());
        let Err(refusal) = self.sched.pipe_message(pipe, msg, now, minor) else {
            return;
        };
        let id = msg.queue;
        let text = match refusal {
            PipeRefusal::UnknownQueue => format!("pipe {pipe}: unknown queue {id}"),
            PipeRefusal::Bad => format!("pipe {pipe}: bad message for queue {id}"),
        };
        self.warn(&text);
        self.out.event(&EventError {
            kind: ERROR_BAD_PIPE_MESSAGE,
            object: id,
            value: u64::from(msg.wptr),
        });
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
            let next_done = self.sched.next_completion();
            let watchdog = self.next_watchdog();
            let next = [next_done, watchdog.map(|(t, _)| t), self.peer_ready.get()]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next.filter(|&t| t <= now) else {
                break;
            };
            self.time = self.time.max(next);
            if let Some((deadline, queue)) = watchdog {
                if deadline <= next {
                    self.timeout(mem, queue);
                    continue;
                }
            }
            for unit in 0..self.sched.units.len() {
                if self.sched.units[unit].task.is_some_and(|t| t.until == next) {
                    self.complete_command(mem, unit);
                    if self.state != FwState::Running {
                        break;
                    }
                }
            }
        }
        // A peer's change seen at `now` (the time its waker ran this device) is acted on at
        // `now`, not at the last event before it.
        if self.time < now {
            self.time = now;
            if self.state == FwState::Running && !self.silent {
                self.fill_units(mem);
            }
        }
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
        // A peer changed: run now, even if only a register was written since the wake-up.
        let woken = self
            .fabric
            .as_ref()
            .filter(|a| a.is_woken())
            .map(|_| self.time);
        if self.state != FwState::Running {
            return [irq, woken].into_iter().flatten().min();
        }
        // A command that never completes is no deadline.
        let done = self.sched.next_completion().filter(|&t| t != u64::MAX);
        let watchdog = self.next_watchdog().map(|(t, _)| t);
        let held = self.sched.failure_held() && self.out.events_queued();
        let retry = held.then(|| self.time.saturating_add(EVENT_RETRY_NS));
        let peer = self.peer_ready.get();
        [done, watchdog, irq, retry, peer, woken]
            .into_iter()
            .flatten()
            .min()
    }

    /// The earliest watchdog deadline and its queue (none before boot).
    fn next_watchdog(&self) -> Option<(u64, u32)> {
        let limit = self.channels.as_ref()?.watchdog_ns;
        self.sched.next_watchdog(limit)
    }

    /// Gives every free unit a command.
    fn fill_units(&mut self, mem: &mut dyn Memory) {
        // Recomputed by the peer waits this pass looks at.
        self.peer_ready.set(None);
        if self.out.events_queued() && self.sched.failure_held() {
            // The host may have made room for a held error event. A broken event ring is
            // reported by the next flush.
            let _ = self.write_events(mem);
        }
        for unit in 0..self.sched.units.len() {
            while self.sched.units[unit].task.is_none() && self.state == FwState::Running {
                let resolved = |w: &WaitOn| self.wait_state(w) != WaitState::Pending;
                let Some(pick) = self.sched.pick(&resolved, self.out.events_queued()) else {
                    return;
                };
                self.sched.take_turn(pick.id, pick.past_others);
                self.start_command(mem, unit, pick.id);
            }
        }
    }

    /// Starts queue `id`'s next command on `unit`, fetching an entry if needed. On a fault,
    /// barrier wait or empty entry the unit stays free.
    fn start_command(&mut self, mem: &mut dyn Memory, unit: usize, id: u32) {
        let now = self.time;
        let Some(q) = self.sched.queues.get(&id) else {
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
            if let Some((slot, value)) = self.sched.queues.get(&id).and_then(|q| q.failing_job) {
                if run.wait.is_none() {
                    // The job's command buffer: the next entry starts a new job.
                    if let Some(q) = self.sched.queues.get_mut(&id) {
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
        if let Some(wait) = run.wait {
            self.resolve_wait(mem, id, wait);
            return;
        }
        if run.hang {
            self.sched.units[unit].task = Some(Task {
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
            let state = self.slots.lock().wait_state(slot, value);
            if state == WaitState::Pending {
                self.sched.park(id, WaitOn::local(slot, value));
                return;
            }
            if dep_error && state == WaitState::Failed {
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
            cost = cost.saturating_add(self.config.rates.entry_ns);
        }
        let until = if command == Command::DebugHang {
            u64::MAX
        } else {
            now.saturating_add(cost)
        };
        // A command that moves data goes to a worker now, its operands mapped now and what it
        // writes written at completion; a fault mapping them is the command's, at completion
        // too. One whose operands are not all RAM, or that is shorter than a worker's
        // wake-up may be, runs at completion here.
        let offload = self
            .workers
            .as_ref()
            .filter(|_| cost >= self.config.offload_min_ns)
            .and_then(|workers| match Offloaded::prepare(command, &vm, mem) {
                Ok(Some(task)) => Some(Offload::Running(workers.submit(task))),
                Ok(None) => None,
                Err(f) => Some(Offload::Fault(f)),
            });
        self.sched.units[unit].offload = offload;
        self.sched.units[unit].task = Some(Task {
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
        let q = self.sched.queues.get(&id)?;
        let (index, address, state) = (q.rptr, q.ring + 16 * u64::from(q.rptr), q.state);
        let (own_slot, skipped) = (q.slot, q.failing_job.is_some());
        let own_port = self.fabric.as_ref().map(Attachment::port);
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
            Ok(EntryKind::Wait { slot, value, peer }) => Some(WaitOn { slot, value, peer }),
            _ => None,
        };
        // A wait on its own queue's slot either has passed already or never will; a peer wait
        // on its own device is a plain wait written the long way.
        let bad_wait = |w: &WaitOn| match w.peer {
            None => w.slot == own_slot,
            Some(p) => Some(p.port) == own_port,
        };
        let bad_entry = kind.is_err() || wait.as_ref().is_some_and(bad_wait);
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
        let q = self.sched.queues.get_mut(&id)?;
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
        let Some(task) = self.sched.units[unit].task.take() else {
            return;
        };
        let offload = self.sched.units[unit].offload.take();
        let Some(q) = self.sched.queues.get(&task.queue) else {
            return;
        };
        let (id, vm_id) = (q.id, q.vm);
        let Some(run) = q.current else {
            return;
        };
        if let Some(vm) = self.vms.get(vm_id) {
            let result = match offload {
                Some(Offload::Running(pending)) => {
                    let done = pending.take();
                    let e = &mut self.sched.emulation;
                    e.record_offloaded(task.cost, done.host_ns, done.ran_on);
                    done.task.commit()
                }
                Some(Offload::Fault(f)) => {
                    self.sched.emulation.record(task.cost, 0);
                    Err(f)
                }
                None => {
                    let started = std::time::Instant::now();
                    let result = task.command.execute(&vm, mem);
                    let host_ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    self.sched.emulation.record(task.cost, host_ns);
                    result
                }
            };
            if let Err(Fault { kind, address }) = result {
                self.fault(mem, id, run.command, kind, address);
                return;
            }
        }
        if self.sched.command_done(unit, &task) {
            self.complete_entry(mem, id, false);
        }
    }

    /// What `wait` finds now: on this device's slots, or through the fabric on a peer's. A
    /// peer's change that happened after this device's clock is not seen yet: the wait stays
    /// pending, and the change's time becomes a deadline (`peer_ready`).
    fn wait_state(&self, wait: &WaitOn) -> WaitState {
        match (wait.peer, &self.fabric) {
            (None, _) => self.slots.lock().wait_state(wait.slot, wait.value),
            (Some(peer), Some(a)) => match a.peer_wait(peer, wait.slot, wait.value) {
                (WaitState::Pending, _) => WaitState::Pending,
                (_, at) if at > self.time => {
                    let ready = self.peer_ready.get().map_or(at, |t| t.min(at));
                    self.peer_ready.set(Some(ready));
                    WaitState::Pending
                }
                (state, _) => state,
            },
            // Not on a fabric: no peer can be reached.
            (Some(_), None) => WaitState::Lost,
        }
    }

    /// Resolves queue `id`'s current wait entry: parks the queue until the slot has passed the
    /// value, then completes the entry, or fails it and the rest of its job.
    fn resolve_wait(&mut self, mem: &mut dyn Memory, id: u32, wait: WaitOn) {
        let cause = match self.wait_state(&wait) {
            WaitState::Pending => {
                self.sched.park(id, wait);
                return;
            }
            WaitState::Passed => {
                self.complete_entry(mem, id, false);
                return;
            }
            WaitState::Failed => DEP_CAUSE_WAIT,
            WaitState::Lost => DEP_CAUSE_PEER,
        };
        let (slot, value) = (wait.slot, wait.value);
        if let Some(q) = self.sched.queues.get_mut(&id) {
            q.failing_job = Some((slot, value));
        }
        let failure = DepFailure {
            cause,
            command: NO_COMMAND,
            slot,
            value,
        };
        self.fail_entry(mem, id, failure);
    }

    /// Fails queue `id`'s current entry with [`FwError::Dependency`]: queues its
    /// `EVENT_ENTRY_ERROR`, then completes it once the event is in the event ring.
    fn fail_entry(&mut self, mem: &mut dyn Memory, id: u32, failure: DepFailure) {
        let Some(q) = self.sched.queues.get_mut(&id) else {
            return;
        };
        let stamp = q.next_stamp();
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
        let (slot, value) = (failure.slot, failure.value);
        match failure.cause {
            DEP_CAUSE_JOB => {}
            DEP_CAUSE_PEER => self.log(
                LOG_INFO,
                &format!(
                    "queue {id}: entry {entry} failed: the peer of its wait on slot {slot} is gone"
                ),
            ),
            _ => self.log(
                LOG_INFO,
                &format!("queue {id}: entry {entry} failed: slot {slot} at {value:#x} had failed"),
            ),
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

    /// (ABI 1.7) Writes the queue's device time to its state, before the stamp that follows.
    fn write_busy(&self, mem: &mut dyn Memory, r: &Retired) -> Result<(), BusError> {
        if self.abi_minor() < ABI_MINOR_DEADLINES {
            return Ok(());
        }
        // CAST: the two halves of a u64.
        mem::write_u32(mem, r.state + QUEUE_BUSY_OFFSET, r.busy_ns as u32)?;
        mem::write_u32(
            mem,
            r.state + QUEUE_BUSY_OFFSET + 4,
            (r.busy_ns >> 32) as u32,
        )
    }

    /// Retires queue `id`'s current entry: advances `done` and the stamp, and records the stamp
    /// as failed if the entry `failed`.
    fn complete_entry(&mut self, mem: &mut dyn Memory, id: u32, failed: bool) {
        let Some(stamps) = self.channels.as_ref().map(|c| c.stamps) else {
            return;
        };
        let Some(r) = self.sched.retire_entry(id) else {
            return;
        };
        if failed {
            self.slots.lock().record_failure(r.slot, r.first, r.stamp);
        }
        self.traces.record(Trace::EntryDone {
            queue: id,
            stamp: r.stamp,
        });
        let written = self
            .write_busy(mem, &r)
            .and_then(|()| self.publish_stamp(mem, stamps, r.slot, r.stamp))
            .and_then(|()| mem::write_u32(mem, r.state + QUEUE_DONE_OFFSET, r.done));
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
        self.slots.lock().set_stamp(slot, stamp);
        self.out.stamp_changed(slot);
        mem::write_u32(mem, stamp_address(table, slot), stamp)
    }

    /// A command of queue `id` faulted: report it and halt.
    fn fault(&mut self, mem: &mut dyn Memory, id: u32, command: u32, kind: u32, address: u64) {
        let entry = self.sched.current_entry(id);
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
        let entry = self.sched.current_entry(id);
        self.out.event(&EventTimeout { queue: id, entry });
        self.log(LOG_ERROR, &format!("queue {id}: entry {entry} timed out"));
        self.halt(mem, EVENT_TIMEOUT, Some(id));
    }

    /// Stops all execution and publishes the pending table.
    pub(crate) fn halt(&mut self, mem: &mut dyn Memory, reason: u32, culprit: Option<u32>) {
        self.state = FwState::Halted;
        self.traces.record(Trace::Halt { reason });
        let table = self.sched.halt(reason, culprit);
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
        // Queues exist only after a boot, so there are channels whenever there is a queue.
        let stamps = self.channels.as_ref()?.stamps;
        let r = self.sched.reset_queue(id)?;
        let discarded = r.count;
        if discarded > 0 {
            // Discarded entries failed, the culprit's included: waits on them fail.
            self.slots.lock().record_failure(r.slot, r.first, r.stamp);
        }
        let written = self
            .write_busy(mem, &r)
            .and_then(|()| self.publish_stamp(mem, stamps, r.slot, r.stamp))
            .and_then(|()| mem::write_u32(mem, r.state + QUEUE_DONE_OFFSET, r.done))
            .and_then(|()| mem::write_u32(mem, r.state + QUEUE_RPTR_OFFSET, r.done));
        if written.is_err() {
            self.log(LOG_ERROR, &format!("queue {id}: cannot write its state"));
        }
        self.log(
            LOG_INFO,
            &format!("queue {id}: reset, {discarded} entries discarded"),
        );
        Some(discarded)
    }

    /// How the emulation has kept up with the cost model so far.
    pub fn emulation(&self) -> Emulation {
        self.sched.emulation
    }

    /// Queues statistics for every pipe, queue and unit, and the emulation's.
    pub(crate) fn emit_stats(&mut self) {
        let minor = self.abi_minor();
        for msg in self.sched.stats(self.time, minor) {
            self.out.stat(msg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handed_out_command_is_late_only_if_its_completion_waited_or_ran_past_its_cost() {
        let mut e = Emulation::default();
        e.record_offloaded(1000, 5000, RanOn::Worker);
        e.record_offloaded(1000, 10, RanOn::WorkerLate);
        e.record_offloaded(1000, 999, RanOn::Caller);
        e.record_offloaded(1000, 1001, RanOn::Caller);
        assert_eq!((e.commands, e.offloaded, e.taken_back), (4, 4, 2));
        assert_eq!(e.late, 2, "{e:?}");
        assert_eq!((e.modelled_ns, e.host_ns), (4000, 7010));
    }
}
