// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Hardware waits: a job ordered after a job of another work queue of the same device by a
//! firmware wait entry (ABI 1.1), or of another device by a peer wait entry (ABI 1.4,
//! [`crate::peers`]), instead of by the CPU.
//!
//! # Vocabulary
//!
//! - *producer*: the job a wait sync names; *consumer*: the job that waits.
//! - [`RunRecord`]: what a consumer needs to know about its producer: whether it has been
//!   handed to the firmware, at which stamp it completes, and how it ended.
//! - [`Producers`]: a work queue's recent jobs by finished-fence seqno, so that a submit can
//!   find the producer behind a fence.
//!
//! # How a wait becomes a wait entry
//!
//! At submit, a wait fence that is the finished fence of a job of another work queue of this
//! device (found in that queue's [`Producers`]) becomes a [`HwWait`]: the scheduler waits only
//! for the producer's *scheduled* fence (`Job::add_hardware_wait`), and when the consumer runs,
//! its entry is preceded by a wait entry on the producer's stamp. The firmware then starts the
//! consumer when the producer completes, or fails it with a dependency error if the producer
//! failed; the scheduler gives the consumer the producer's error and completes it after the
//! producer.
//!
//! ## State Diagram (a [`RunRecord`])
//!
//! ```text
//!   NotRun --(producer's run_job wrote its entry)--> Running { stamp }
//!      |                                                 |
//!      |                    (its entry left the firmware: completed, failed or discarded)
//!      |                                                 v
//!      +--(failed without running: the scheduler's)-->  Done(result)
//! ```
//!
//! A consumer's run sees the record after the producer's scheduled fence signalled: `NotRun`
//! then means the producer was failed by the scheduler, whose error the consumer takes;
//! `Running` gives a wait entry (the firmware resolves it even if the producer completes
//! meanwhile); `Done` needs no wait, or fails the consumer.
//!
//! A consumer holds the producer's [`HwQueue`], which keeps the producer queue's id, and so its
//! stamp slot, from being reused while the wait may still be evaluated.
//!
//! A producer on another GPU is named by its device's port on the peer fabric and the epoch
//! that device's firmware ran in when the producer's entry was written (kept in the record):
//! if that firmware is reset or crashes before the entry completes, the consumer's firmware
//! fails the wait (`DEP_CAUSE_PEER`) instead of waiting for a stamp of the device's next life,
//! and the consumer takes the producer's error as for any failed wait.

use core::sync::atomic::{
    AtomicU64,
    Ordering::{
        Acquire,
        Relaxed,
        Release, //
    },
};

use kernel::{
    dma_fence::Fence,
    new_spinlock,
    prelude::*,
    sync::{
        aref::ARef,
        Arc,
        SpinLock, //
    },
};

use crate::hwqueue::HwQueue;

/// Most hardware waits a job takes; further same-device waits are waited for on the CPU.
///
/// Each takes a ring entry: in firmware mode a job's credits are its entries, and in kernel
/// mode `KERNEL_MODE_CREDITS` jobs of at most `1 + MAX_HW_WAITS` entries fit one work queue's
/// ring.
pub(crate) const MAX_HW_WAITS: usize = 4;

/// Recent jobs a work queue remembers for consumers to find; an older producer is waited for
/// on the CPU.
const PRODUCERS: usize = 64;

/// Where a job is, for the jobs that wait for it in the hardware, and (ABI 1.7) the device
/// time its entries took, for the scheduler's charge.
pub(crate) struct RunRecord {
    /// `0`: not run; `RUNNING | epoch << EPOCH_SHIFT | stamp`; `DONE | errno` (0 for
    /// success).
    state: AtomicU64,
    /// Device time of its entries, set when they complete; 0: not known.
    device_ns: AtomicU64,
}

const RUNNING: u64 = 1 << 32;
const DONE: u64 = 2 << 32;
const STATE_MASK: u64 = 3 << 32;
/// The producer device's fabric epoch (24 bits) in a `RUNNING` state.
const EPOCH_SHIFT: u32 = 40;

/// A [`RunRecord`]'s state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RunState {
    /// Not handed to the firmware (yet, or ever: failed by the scheduler).
    NotRun,
    /// On the firmware, which ran in fabric epoch `epoch`; its entry completes at `stamp` of
    /// its queue's slot.
    Running { stamp: u32, epoch: u32 },
    /// Its entry left the firmware with this result.
    Done(Result),
}

impl RunRecord {
    /// Records the device time the job's entries took.
    pub(crate) fn set_device_ns(&self, ns: u64) {
        self.device_ns.store(ns, Relaxed);
    }

    /// The device time the job's entries took, if the device told.
    pub(crate) fn device_ns(&self) -> Option<u64> {
        let ns = self.device_ns.load(Relaxed);
        (ns != 0).then_some(ns)
    }

    /// A record in the `NotRun` state.
    pub(crate) fn new() -> Result<Arc<Self>> {
        Ok(Arc::new(
            Self {
                state: AtomicU64::new(0),
                device_ns: AtomicU64::new(0),
            },
            GFP_KERNEL,
        )?)
    }

    /// The job's entry was written to a firmware running in fabric epoch `epoch` and completes
    /// at `stamp`.
    pub(crate) fn set_running(&self, stamp: u32, epoch: u32) {
        let epoch = u64::from(epoch & crate::abi::regs::FABRIC_EPOCH_MASK) << EPOCH_SHIFT;
        self.state
            .store(RUNNING | epoch | u64::from(stamp), Release);
    }

    /// The job's entry left the firmware with `result`.
    pub(crate) fn set_done(&self, result: Result) {
        // CAST: an errno is a small positive number.
        let errno = result.err().map_or(0, |e| (-e.to_errno()) as u64);
        self.state.store(DONE | errno, Release);
    }

    /// The current state.
    pub(crate) fn state(&self) -> RunState {
        let v = self.state.load(Acquire);
        // CAST: the low half of the word.
        let low = v as u32;
        match v & STATE_MASK {
            RUNNING => RunState::Running {
                stamp: low,
                // CAST: 24 bits.
                epoch: (v >> EPOCH_SHIFT) as u32,
            },
            DONE if low == 0 => RunState::Done(Ok(())),
            // CAST: stored from an errno, so it fits i32.
            DONE => RunState::Done(Err(Error::from_errno(-(low as i32)))),
            _ => RunState::NotRun,
        }
    }
}

/// A consumer's wait on one producer.
pub(crate) struct HwWait {
    /// The producer's work queue (its id is the stamp slot to wait on).
    pub(crate) hw: Arc<HwQueue>,
    pub(crate) record: Arc<RunRecord>,
    /// The producer's device's port on the peer fabric, if it is another GPU than the
    /// consumer's.
    pub(crate) port: Option<u32>,
}

/// A producer found behind a fence.
pub(crate) struct Producer {
    pub(crate) wait: HwWait,
    /// Its scheduled fence: the consumer waits for it before it runs.
    pub(crate) scheduled: ARef<Fence>,
}

/// One remembered job.
struct Entry {
    seqno: u64,
    record: Arc<RunRecord>,
    scheduled: ARef<Fence>,
}

/// The table behind [`Producers`].
struct Table {
    /// The finished-fence context of the queue's jobs (its entity's), once one was published.
    context: Option<u64>,
    /// By seqno modulo [`PRODUCERS`].
    entries: KVec<Option<Entry>>,
}

/// A work queue's recent jobs, by finished-fence seqno.
///
/// Written and read by submits only (process context).
#[pin_data]
pub(crate) struct Producers {
    #[pin]
    table: SpinLock<Table>,
}

impl Producers {
    /// An empty table.
    pub(crate) fn new() -> Result<impl PinInit<Self, Error>> {
        let mut entries = KVec::with_capacity(PRODUCERS, GFP_KERNEL)?;
        for _ in 0..PRODUCERS {
            entries.push(None, GFP_KERNEL)?;
        }
        Ok(try_pin_init!(Self {
            table <- new_spinlock!(Table {
                context: None,
                entries,
            }),
        }? Error))
    }

    /// Remembers a submitted job by its finished fence.
    pub(crate) fn publish(&self, finished: &Fence, scheduled: ARef<Fence>, record: Arc<RunRecord>) {
        let mut t = self.table.lock();
        t.context = Some(finished.context());
        let seqno = finished.seqno();
        // CAST: the remainder is below `PRODUCERS`.
        if let Some(e) = t.entries.get_mut((seqno % PRODUCERS as u64) as usize) {
            // The old entry is dropped under the lock: dropping a record or a fence reference
            // takes no lock of ours.
            *e = Some(Entry {
                seqno,
                record,
                scheduled,
            });
        }
    }

    /// The record and scheduled fence of the job whose finished fence `fence` is, if it is one
    /// of this queue's recent jobs.
    pub(crate) fn find(&self, fence: &Fence) -> Option<(Arc<RunRecord>, ARef<Fence>)> {
        let t = self.table.lock();
        if t.context != Some(fence.context()) {
            return None;
        }
        let seqno = fence.seqno();
        // CAST: as in `publish`.
        match t.entries.get((seqno % PRODUCERS as u64) as usize) {
            Some(Some(e)) if e.seqno == seqno => Some((e.record.clone(), e.scheduled.clone())),
            _ => None,
        }
    }
}
