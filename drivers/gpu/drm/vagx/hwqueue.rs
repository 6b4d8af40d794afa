// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Firmware work queues: a ring of command buffers, its stamp slot and the fences waiting on it.
//!
//! The driver writes a job's entries and a pipe message: the wait entries on other queues'
//! stamps that order it after their jobs ([`crate::hwwait`], ABI 1.1), then its command buffer.
//! The firmware resolves or runs each entry and advances the queue's stamp by `STAMP_STEP`;
//! the job's fence signals at its last entry's stamp. Entries complete in order, so the fences
//! wait in submission order and a stamp signals every fence at or before it.

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
            PipeMsg, //
        },
        queue::{
            QueueEntry,
            QueueState,
            QUEUE_DONE_OFFSET,
            QUEUE_WPTR_OFFSET, //
        },
        stamp_passed, STAMP_STEP,
    },
    fw::Firmware,
    fwmem::FwMem,
    gpu::Gpu,
    hwwait::{
        Producers,
        RunRecord, //
    },
    ring::Indices,
};

/// A time on the monotonic clock.
type Instant = kernel::time::Instant<kernel::time::Monotonic>;

/// Entries of a work queue's ring.
pub(crate) const QUEUE_RING_COUNT: u32 = 64;

/// The first stamp of every queue: close to the wrap so that wrap-around is exercised early.
const STAMP_INIT: u32 = 0u32.wrapping_sub(16 * STAMP_STEP);

/// Entries start after the queue's state.
const ENTRIES_OFFSET: usize = 256;
kernel::static_assert!(size_of::<QueueState>() <= ENTRIES_OFFSET);

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
    fence: DriverFence<()>,
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
    wptr: u32,
    /// Stamp of the last entry written.
    last_stamp: u32,
    /// Fences of entries not yet completed, oldest first; a ring of `QUEUE_RING_COUNT`.
    in_flight: KVec<Option<InFlight>>,
    head: usize,
    len: usize,
    /// Ring entries the jobs in `in_flight` take.
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
}

impl Inner {
    fn front_stamp(&self) -> Option<u32> {
        self.in_flight
            .get(self.head)
            .and_then(|e| e.as_ref())
            .map(|e| e.stamp)
    }

    fn pop(&mut self) -> Option<InFlight> {
        if self.len == 0 {
            return None;
        }
        let e = self.in_flight.get_mut(self.head)?.take();
        self.head = (self.head + 1) % self.in_flight.len();
        self.len -= 1;
        if let Some(e) = &e {
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
        }
        e
    }
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
    _lease: QueueId,
    vm: u32,
    pipe: usize,
    idx: Indices,
    /// The queue's state and ring.
    mem: FwMem,
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
        let idx = Indices::new(QUEUE_RING_COUNT)?;
        let mem = FwMem::new(
            dev,
            ENTRIES_OFFSET + QUEUE_RING_COUNT as usize * size_of::<QueueEntry>(),
        )?;
        let mut in_flight = KVec::with_capacity(QUEUE_RING_COUNT as usize, GFP_KERNEL)?;
        for _ in 0..QUEUE_RING_COUNT {
            in_flight.push(None, GFP_KERNEL)?;
        }
        let producers = Producers::new()?;
        let id = lease.id;
        Ok(try_pin_init!(Self {
            id,
            _lease: lease,
            vm,
            pipe,
            idx,
            mem,
            fences: FenceContext::new(c"vagx", c"hw-queue"),
            inner <- new_spinlock_irq!(Inner {
                wptr: 0,
                last_stamp: STAMP_INIT,
                in_flight,
                head: 0,
                len: 0,
                entries: 0,
                discard: None,
                dead: None,
                completed: 0,
                busy_ns: 0,
                last_done: None,
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
        DevCtrlCreateQueue {
            queue: self.id,
            vm: self.vm,
            // CAST: both are below 8.
            pipe_type: ty as u32,
            priority: prio as u32,
            stamp_slot: self.id,
            stamp_init: self.inner.lock().last_stamp,
            ring_count: self.idx.count(),
            _pad: 0,
            ring: self.mem.bus_addr() + ENTRIES_OFFSET as u64,
            state: self.mem.bus_addr(),
        }
    }

    /// Forgets the ring's contents, as the firmware does when it creates the queue.
    pub(crate) fn reset_ring(&self) -> Result {
        let mut inner = self.inner.lock();
        inner.wptr = 0;
        self.mem.write(0, &crate::abi::pod::zeroed::<QueueState>())
    }

    /// Writes a job's entries (`waits`, then its command buffer `entry`) and tells the
    /// firmware; returns the fence that signals when the job completes, and records its stamp
    /// in `record`. Never sleeps or allocates: called from the scheduler, possibly in
    /// interrupt context.
    pub(crate) fn submit(
        &self,
        gpu: &Gpu,
        waits: &[QueueEntry],
        entry: &QueueEntry,
        prepared: PreparedFence<()>,
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
        if inner.entries + entries >= self.idx.count() || inner.len >= inner.in_flight.len() {
            return Err(EBUSY);
        }
        for e in Iterator::chain(waits.iter(), core::iter::once(entry)) {
            let slot = ENTRIES_OFFSET + inner.wptr as usize * size_of::<QueueEntry>();
            self.mem.write(slot, e)?;
            inner.wptr = self.idx.next(inner.wptr);
            inner.last_stamp = inner.last_stamp.wrapping_add(STAMP_STEP);
        }
        let stamp = inner.last_stamp;
        record.set_running(stamp);
        let fence = self.fences.init(prepared, ());
        let hw: ARef<Fence> = fence.fence().into();
        let at = (inner.head + inner.len) % inner.in_flight.len();
        if let Some(s) = inner.in_flight.get_mut(at) {
            *s = Some(InFlight {
                stamp,
                entries,
                fence,
                record: record.clone(),
                error: None,
                start: Instant::now(),
            });
        }
        inner.len += 1;
        inner.entries += entries;
        self.mem
            .store_release(QUEUE_WPTR_OFFSET as usize, inner.wptr)?;
        // Posted under the queue's lock so that pipe messages of one queue stay in order.
        let posted = gpu.fw.post(
            self.pipe,
            &PipeMsg {
                queue: self.id,
                wptr: inner.wptr,
                _pad: [0; 2],
            },
        );
        drop(inner);
        // A pipe that cannot take the message (device gone) leaves the entry to the reset path.
        posted.map(|()| hw)
    }

    /// The firmware failed the entry completing at `stamp` without halting: the job it
    /// belongs to completes with `err` (`EVENT_ENTRY_ERROR`, read before the stamp).
    pub(crate) fn entry_failed(&self, stamp: u32, err: Error) -> bool {
        let mut inner = self.inner.lock();
        let (head, len, n) = (inner.head, inner.len, inner.in_flight.len());
        for i in 0..len {
            if let Some(Some(e)) = inner.in_flight.get_mut((head + i) % n) {
                if e.covers(stamp) {
                    e.error.get_or_insert(err);
                    return true;
                }
            }
        }
        false
    }

    /// Signals every fence whose entry completed by stamp `stamp`.
    pub(crate) fn complete(&self, stamp: u32) -> usize {
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
            entry.record.set_done(err.map_or(Ok(()), Err));
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
            e.fence.signal_with_error(err);
            n += 1;
        }
        n
    }

    /// Hardware time spent on the queue's entries (ns) and entries that left the hardware;
    /// counted before their fences signal.
    pub(crate) fn usage(&self) -> (u64, u64) {
        let inner = self.inner.lock();
        (inner.busy_ns, inner.completed)
    }

    /// Entries on the hardware.
    pub(crate) fn in_flight(&self) -> usize {
        self.inner.lock().len
    }

    /// Debugfs: the queue's pointers and stamps.
    pub(crate) fn dump(&self, fw: &Firmware, w: &mut impl core::fmt::Write) -> core::fmt::Result {
        let inner = self.inner.lock();
        let done = self
            .mem
            .load_acquire(QUEUE_DONE_OFFSET as usize)
            .unwrap_or(u32::MAX);
        writeln!(
            w,
            "hwq {:3} vm {:2} pipe {} wptr {:3} done {:3} in flight {:3} last stamp {:#010x} \
             stamp {:#010x}{}",
            self.id,
            self.vm,
            self.pipe,
            inner.wptr,
            done,
            inner.len,
            inner.last_stamp,
            fw.stamp(self.id as usize).unwrap_or(0),
            if inner.dead.is_some() { " dead" } else { "" }
        )
    }
}
