// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Firmware work queues: a ring of command buffers, its stamp slot and the fences waiting on it.
//!
//! The driver writes a job's entries and a pipe message: the wait entries on other queues'
//! stamps that order it after their jobs ([`crate::hwwait`], ABI 1.1), then its command buffer.
//! The firmware resolves or runs each entry and advances the queue's stamp by `STAMP_STEP`;
//! the job's fence signals at its last entry's stamp. Entries complete in order, so the fences
//! wait in submission order and a stamp signals every fence at or before it.

use core::sync::atomic::{
    AtomicU32,
    Ordering::Relaxed, //
};

use kernel::{
    device::{
        Bound,
        Device, //
    },
    dma_fence::{
        ecanceled,
        DriverFence,
        Fence,
        FenceContext,
        PreparedFence, //
    },
    drm::sched::Fifo,
    new_spinlock_irq,
    prelude::*,
    sync::{
        aref::ARef,
        Arc,
        SpinLockIrq, //
    },
};

use crate::{
    abi::{
        self,
        channels::{
            DevCtrlCreateQueue,
            DevCtrlSetQueuePriority,
            DevCtrlSetQueueWeight,
            PipeMsg,
            QUEUE_WEIGHT_DEFAULT, //
        },
        queue::{
            QueueEntry,
            QUEUE_BUSY_OFFSET,
            QUEUE_DONE_OFFSET, //
        },
        stamp_passed, STAMP_STEP,
    },
    fw::Firmware,
    gpu::Gpu,
    hwdeadline::{self, HwDeadline, HwFenceData},
    hwwait::{
        Producers,
        RunRecord, //
    },
    ring::{
        Layout,
        TxRing, //
    },
};

/// A time on the monotonic clock.
type Instant = kernel::time::Instant<kernel::time::Monotonic>;

/// Entries of a work queue's ring: room for the most a scheduler hands one queue (see
/// `queue.rs`: a full set of kernel-mode credits, deadline credits included, at every
/// priority, for a queue whose priority changed while its jobs ran).
pub(crate) const QUEUE_RING_COUNT: u32 = 256;

/// The first stamp of every queue: close to the wrap so that wrap-around is exercised early.
const STAMP_INIT: u32 = 0u32.wrapping_sub(16 * STAMP_STEP);

/// What happens to entries discarded by a queue reset.
#[derive(Clone, Copy)]
struct Discard {
    /// The entry that caused the reset, and its error.
    culprit: u32,
    culprit_error: Error,
    /// Every entry up to this stamp was discarded.
    until: u32,
}

/// One submitted job: its entries (wait entries, then its command buffer), the stamp its last
/// entry completes at, and its fence.
struct InFlight {
    stamp: u32,
    /// Ring entries it takes: 1 plus its wait entries.
    entries: u32,
    fence: DriverFence<HwFenceData>,
    /// Where consumers on other queues learn its stamp and its end.
    record: Arc<RunRecord>,
    /// The firmware failed one of its entries without halting (`EVENT_ENTRY_ERROR`).
    error: Option<Error>,
    /// When it was handed to the firmware.
    start: Instant,
}

impl InFlight {
    /// Whether `stamp` is the stamp of one of its entries.
    fn covers(&self, stamp: u32) -> bool {
        let first = self
            .stamp
            .wrapping_sub((self.entries - 1).wrapping_mul(STAMP_STEP));
        stamp_passed(stamp, first) && stamp_passed(self.stamp, stamp)
    }
}

struct Inner {
    /// The queue's state and its ring of entries.
    ring: TxRing<QueueEntry>,
    /// Stamp of the last entry written.
    last_stamp: u32,
    /// Jobs not yet completed, oldest first (at most one per ring entry).
    in_flight: Fifo<InFlight>,
    /// Ring entries the jobs in `in_flight` take: the firmware's until their stamps pass.
    entries: u32,
    discard: Option<Discard>,
    /// Once set, the queue takes no more entries and this is their error.
    dead: Option<Error>,
    /// Entries that left the hardware (completed, failed or discarded).
    completed: u64,
    /// Time the hardware spent on this queue's entries: from each entry's start, or the
    /// previous entry's end if later, to its end.
    busy_ns: u64,
    last_done: Option<Instant>,
    /// (ABI 1.7) The firmware's count of the queue's device time at the last completion.
    device_busy_ns: u64,
}

impl Inner {
    fn front_stamp(&self) -> Option<u32> {
        self.in_flight.front().map(|e| e.stamp)
    }

    /// Takes the oldest job off the hardware. Its deadline cell is detached by the caller,
    /// with this lock released ([`crate::hwdeadline`]'s lock order).
    fn pop(&mut self) -> Option<InFlight> {
        let e = self.in_flight.pop_front()?;
        self.entries -= e.entries;
        let now = Instant::now();
        let from = match self.last_done {
            Some(last) if (last - e.start).as_nanos() > 0 => last,
            _ => e.start,
        };
        // A negative span (clock read races) counts as nothing.
        self.busy_ns += u64::try_from((now - from).as_nanos()).unwrap_or(0);
        self.last_done = Some(now);
        self.completed += 1;
        Some(e)
    }
}

/// What a work queue's entries used ([`HwQueue::usage`]).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct HwUsage {
    /// Hardware time spent on the entries, in ns.
    pub(crate) busy_ns: u64,
    /// Entries that left the hardware.
    pub(crate) completed: u64,
}

/// A queue id, taken from the device until dropped.
///
/// The work queue owns it, and consumers hold the work queue: a slot's stamps are not reused
/// by a new queue while a wait entry on them may still be evaluated.
pub(crate) struct QueueId {
    gpu: Arc<Gpu>,
    id: u32,
}

impl QueueId {
    /// Takes a free id of `gpu`, or `EBUSY`.
    pub(crate) fn alloc(gpu: &Arc<Gpu>) -> Result<Self> {
        Ok(Self {
            gpu: gpu.clone(),
            id: gpu.alloc_queue_id()?,
        })
    }
}

impl Drop for QueueId {
    fn drop(&mut self) {
        self.gpu.free_queue_id(self.id);
    }
}

/// A firmware work queue.
#[pin_data]
pub(crate) struct HwQueue {
    /// Queue id; also its stamp slot.
    id: u32,
    lease: QueueId,
    vm: u32,
    /// The pipe the queue was created on: its message channel for good.
    pipe: usize,
    /// The firmware priority the queue runs at: its pipe's, unless changed since
    /// (`DEVCTRL_SET_QUEUE_PRIORITY`).
    priority: AtomicU32,
    /// The queue's weight in the firmware (`DEVCTRL_SET_QUEUE_WEIGHT`; 100 at creation).
    weight: AtomicU32,
    fences: FenceContext,
    #[pin]
    inner: SpinLockIrq<Inner>,
    /// Recent jobs, for consumers on other queues to find ([`crate::hwwait`]).
    #[pin]
    pub(crate) producers: Producers,
}

impl HwQueue {
    /// Allocates the work queue of id `id` (also its stamp slot) for VM `vm` on pipe `pipe`.
    pub(crate) fn new(
        dev: &Device<Bound>,
        lease: QueueId,
        vm: u32,
        pipe: usize,
    ) -> Result<impl PinInit<Self, Error>> {
        let ring = TxRing::new(dev, QUEUE_RING_COUNT, Layout::WORK_QUEUE)?;
        let in_flight = Fifo::with_capacity(QUEUE_RING_COUNT as usize, GFP_KERNEL)?;
        let producers = Producers::new()?;
        let id = lease.id;
        // CAST: below `NUM_PRIORITIES`.
        let created_priority = (pipe / abi::NUM_PIPE_TYPES) as u32;
        Ok(try_pin_init!(Self {
            id,
            lease,
            vm,
            pipe,
            priority: AtomicU32::new(created_priority),
            weight: AtomicU32::new(QUEUE_WEIGHT_DEFAULT),
            fences: FenceContext::new(c"vagx", c"hw-queue"),
            inner <- new_spinlock_irq!(Inner {
                ring,
                last_stamp: STAMP_INIT,
                in_flight,
                entries: 0,
                discard: None,
                dead: None,
                completed: 0,
                busy_ns: 0,
                last_done: None,
                device_busy_ns: 0,
            }),
            producers <- producers,
        }? Error))
    }

    /// Queue id and stamp slot.
    pub(crate) fn id(&self) -> u32 {
        self.id
    }

    /// The arguments that create this queue in the firmware (again, after a reset).
    pub(crate) fn create_args(&self) -> DevCtrlCreateQueue {
        let (ty, prio) = (
            self.pipe % abi::NUM_PIPE_TYPES,
            self.pipe / abi::NUM_PIPE_TYPES,
        );
        let inner = self.inner.lock();
        let ring = inner.ring.desc();
        DevCtrlCreateQueue {
            queue: self.id,
            vm: self.vm,
            // CAST: both are below 8.
            pipe_type: ty as u32,
            priority: prio as u32,
            stamp_slot: self.id,
            stamp_init: inner.last_stamp,
            ring_count: ring.count,
            _pad: 0,
            ring: ring.entries,
            state: ring.state,
        }
    }

    /// Records the firmware priority the firmware now runs the queue at.
    pub(crate) fn set_priority(&self, priority: u32) {
        self.priority.store(priority, Relaxed);
    }

    /// Records the weight the firmware now gives the queue.
    pub(crate) fn set_weight(&self, weight: u32) {
        self.weight.store(weight, Relaxed);
    }

    /// What gives the queue, created again on its pipe ([`Self::create_args`]), the priority
    /// and weight it had: `None` for those it has from its creation.
    pub(crate) fn restore_args(
        &self,
    ) -> (
        Option<DevCtrlSetQueuePriority>,
        Option<DevCtrlSetQueueWeight>,
    ) {
        let priority = self.priority.load(Relaxed);
        // CAST: below `NUM_PRIORITIES`.
        let created = (self.pipe / abi::NUM_PIPE_TYPES) as u32;
        let weight = self.weight.load(Relaxed);
        (
            (priority != created).then_some(DevCtrlSetQueuePriority {
                queue: self.id,
                priority,
            }),
            (weight != QUEUE_WEIGHT_DEFAULT).then_some(DevCtrlSetQueueWeight {
                queue: self.id,
                weight,
            }),
        )
    }

    /// Forgets the ring's contents, as the firmware does when it creates the queue.
    pub(crate) fn reset_ring(&self) -> Result {
        self.inner.lock().ring.reset()
    }

    /// Writes a job's entries (`waits`, then its command buffer `entry`) and tells the
    /// firmware; returns the fence that signals when the job completes, and records its stamp
    /// in `record`. Never sleeps or allocates: called from the scheduler, possibly in
    /// interrupt context.
    ///
    /// The fence's data is `deadline`: from here on a deadline set on the fence reaches the
    /// firmware ([`crate::hwdeadline`]).
    pub(crate) fn submit(
        self: &Arc<Self>,
        gpu: &Gpu,
        waits: &[QueueEntry],
        entry: &QueueEntry,
        prepared: PreparedFence<HwFenceData>,
        deadline: &Arc<HwDeadline>,
        record: &Arc<RunRecord>,
    ) -> Result<ARef<Fence>> {
        let mut inner = self.inner.lock();
        if let Some(err) = inner.dead {
            return Err(err);
        }
        // Checked under the lock the crash recovery fails entries under: an entry written
        // before the crash was noticed is failed there, one after is refused here.
        if gpu.recovery.is_down() {
            return Err(ENODEV);
        }
        // CAST: at most `MAX_HW_WAITS + 1`.
        let entries = waits.len() as u32 + 1;
        // One entry stays free: a full ring would look empty (`wptr == rptr`).
        if inner.entries + entries >= QUEUE_RING_COUNT
            || inner.in_flight.len() >= inner.in_flight.capacity()
        {
            return Err(EBUSY);
        }
        // Counted above, by entries not yet completed: the firmware's `rptr` is not needed.
        inner
            .ring
            .push_counted(Iterator::chain(waits.iter(), core::iter::once(entry)))?;
        inner.last_stamp = inner
            .last_stamp
            .wrapping_add(entries.wrapping_mul(STAMP_STEP));
        let stamp = inner.last_stamp;
        // The epoch the entry runs in, for consumers on other GPUs ([`crate::peers`]): read
        // after the down check above, so a reboot that changes it also fails this entry.
        record.set_running(stamp, gpu.fw.fabric().map_or(0, |p| p.epoch));
        let fence = self
            .fences
            .init_notifying(prepared, HwFenceData(deadline.clone()));
        let hw: ARef<Fence> = fence.fence().into();
        // Room was checked above.
        let _ = inner.in_flight.push_back(InFlight {
            stamp,
            entries,
            fence,
            record: record.clone(),
            error: None,
            start: Instant::now(),
        });
        inner.entries += entries;
        // Posted under the queue's lock so that pipe messages of one queue stay in order.
        let posted = gpu
            .fw
            .post(self.pipe, &PipeMsg::new(self.id, inner.ring.wptr()));
        drop(inner);
        // Not visible to anyone before this returns; if it has completed already, the cell
        // stays done.
        deadline.attach(self, stamp);
        // A pipe that cannot take the message (device gone) leaves the entry to the reset path.
        posted.map(|()| hw)
    }

    /// Tells the firmware (ABI 1.7) that the entry completing at `stamp` is wanted by
    /// `deadline`, if it is still on the hardware. Called in any context.
    ///
    /// A pipe without room drops the message: a deadline only orders work, and the next one
    /// set or the entry's completion moves on.
    pub(crate) fn post_deadline(&self, stamp: u32, deadline: Instant) {
        let gpu = &self.lease.gpu;
        if !gpu.fw.abi().has_deadlines() {
            return;
        }
        let inner = self.inner.lock();
        let on_hw = inner.in_flight.iter().any(|e| e.stamp == stamp);
        if inner.dead.is_some() || !on_hw {
            return;
        }
        let due = hwdeadline::due_us(deadline, Instant::now());
        let msg = PipeMsg::with_deadline(self.id, inner.ring.wptr(), stamp, due);
        if gpu.fw.post(self.pipe, &msg).is_ok() {
            gpu.deadlines_posted.fetch_add(1, Relaxed);
        }
    }

    /// The firmware failed the entry completing at `stamp` without halting: the job it
    /// belongs to completes with `err` (`EVENT_ENTRY_ERROR`, read before the stamp).
    pub(crate) fn entry_failed(&self, stamp: u32, err: Error) -> bool {
        let mut inner = self.inner.lock();
        let found = inner.in_flight.iter_mut().find(|e| e.covers(stamp));
        let recorded = found.map(|e| e.error.get_or_insert(err)).is_some();
        recorded
    }

    /// (ABI 1.7) The firmware's count of the queue's device time, from its state: the two
    /// halves read until the high one holds still (the firmware may be writing it).
    fn device_busy(&self, inner: &Inner) -> Option<u64> {
        if !self.lease.gpu.fw.abi().has_deadlines() {
            return None;
        }
        // CAST: an offset within the queue's state.
        let off = QUEUE_BUSY_OFFSET as usize;
        for _ in 0..4 {
            let hi = inner.ring.state_word(off + 4).ok()?;
            let lo = inner.ring.state_word(off).ok()?;
            if inner.ring.state_word(off + 4).ok()? == hi {
                return Some(u64::from(hi) << 32 | u64::from(lo));
            }
        }
        None
    }

    /// The device time each job completing by `stamp` took: what the firmware counted since
    /// the last completion, shared evenly between them (they completed in one interrupt).
    fn device_share(&self, stamp: u32) -> Option<u64> {
        let mut inner = self.inner.lock();
        let n = inner
            .in_flight
            .iter()
            .take_while(|e| stamp_passed(stamp, e.stamp))
            .count();
        let busy = self.device_busy(&inner)?;
        // A firmware that rebooted counts from 0 again: the first job after it gets none.
        let delta = busy.saturating_sub(inner.device_busy_ns);
        inner.device_busy_ns = busy;
        // CAST: at most the ring's entries.
        (n > 0).then(|| delta / n as u64)
    }

    /// Signals every fence whose entry completed by stamp `stamp`.
    pub(crate) fn complete(&self, stamp: u32) -> usize {
        let share = self.device_share(stamp);
        let mut done = 0;
        loop {
            let (entry, err) = {
                let mut inner = self.inner.lock();
                match inner.front_stamp() {
                    Some(s) if stamp_passed(stamp, s) => {}
                    _ => break,
                }
                let Some(e) = inner.pop() else { break };
                let err = match inner.discard {
                    Some(d) if stamp_passed(d.until, e.stamp) => {
                        if e.stamp == d.until {
                            inner.discard = None;
                        }
                        Some(if e.stamp == d.culprit {
                            d.culprit_error
                        } else {
                            ecanceled()
                        })
                    }
                    _ => e.error,
                };
                (e, err)
            };
            if let Some(ns) = share {
                entry.record.set_device_ns(ns);
            }
            entry.record.set_done(err.map_or(Ok(()), Err));
            // Not the last reference: the caller reached this queue through one.
            drop(entry.fence.data().0.detach());
            // Signalled unlocked: a signal may start the next job, which takes this lock.
            match err {
                Some(err) => entry.fence.signal_with_error(err),
                None => entry.fence.signal(),
            }
            done += 1;
        }
        done
    }

    /// Before a firmware queue reset: the entry at `culprit` fails with `err`, the other
    /// entries the reset discards with `ECANCELED`.
    pub(crate) fn mark_discard(&self, culprit: u32, err: Error) {
        let mut inner = self.inner.lock();
        let until = inner.last_stamp;
        inner.discard = Some(Discard {
            culprit,
            culprit_error: err,
            until,
        });
    }

    /// Takes no more entries: later submits fail with `ECANCELED` (entries on the hardware run
    /// to completion).
    pub(crate) fn ban(&self) {
        self.inner.lock().dead = Some(ecanceled());
    }

    /// Fails every entry on the hardware with `err`; with `forever`, later submits too.
    pub(crate) fn fail_all(&self, err: Error, forever: bool) -> usize {
        if forever {
            self.inner.lock().dead = Some(err);
        }
        let mut n = 0;
        loop {
            let e = self.inner.lock().pop();
            let Some(e) = e else { break };
            e.record.set_done(Err(err));
            drop(e.fence.data().0.detach());
            e.fence.signal_with_error(err);
            n += 1;
        }
        n
    }

    /// What the queue's entries used, counted before their fences signal.
    pub(crate) fn usage(&self) -> HwUsage {
        let inner = self.inner.lock();
        HwUsage {
            busy_ns: inner.busy_ns,
            completed: inner.completed,
        }
    }

    /// Entries on the hardware.
    pub(crate) fn in_flight(&self) -> usize {
        self.inner.lock().in_flight.len()
    }

    /// Debugfs: the queue's pointers and stamps.
    pub(crate) fn dump(&self, fw: &Firmware, w: &mut impl core::fmt::Write) -> core::fmt::Result {
        let inner = self.inner.lock();
        // CAST: an offset within the queue's state.
        let done = inner
            .ring
            .state_word(QUEUE_DONE_OFFSET as usize)
            .unwrap_or(u32::MAX);
        writeln!(
            w,
            "hwq {:3} vm {:2} pipe {} wptr {:3} done {:3} in flight {:3} last stamp {:#010x} \
             stamp {:#010x}{}",
            self.id,
            self.vm,
            self.pipe,
            inner.ring.wptr(),
            done,
            inner.in_flight.len(),
            inner.last_stamp,
            fw.stamp(self.id as usize).unwrap_or(0),
            if inner.dead.is_some() { " dead" } else { "" }
        )
    }
}
