// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Rings shared with the firmware: the full/empty/wrap rules, written once.
//!
//! A ring is `count` entries of one message type after a state block with the consumer's
//! `rptr` and the producer's `wptr` ([`Layout`]: a channel's [`RingState`], a work queue's
//! [`QueueState`]). One slot stays empty: the ring is empty when `wptr == rptr` and full when
//! `wptr + 1 == rptr` (modulo `count`). Each side keeps its own pointer in the driver and
//! never reads it back from memory; the other side's pointer is read from memory and checked,
//! because the firmware may write anything there.
//!
//! The direction is the type: the driver can only produce into a [`TxRing`] (device control,
//! the submission pipes, work queues) and only consume from an [`RxRing`] (events, log,
//! statistics). Each type says which region of the memory is whose.

use core::marker::PhantomData;

use kernel::{
    device::{
        Bound,
        Device, //
    },
    prelude::*, //
};

use crate::{
    abi::{
        init::{
            RingDesc,
            RingState,
            RING_RPTR_OFFSET,
            RING_WPTR_OFFSET, //
        },
        pod::Pod,
        queue::{
            QueueState,
            QUEUE_RPTR_OFFSET,
            QUEUE_WPTR_OFFSET, //
        },
    },
    fwmem::FwMem,
};

/// Index arithmetic of a ring of `count` entries, `count` a power of two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Indices {
    count: u32,
}

impl Indices {
    /// Indices of a ring of `count` entries; `count` must be a power of two of at least 2.
    pub(crate) fn new(count: u32) -> Result<Self> {
        if count < 2 || !count.is_power_of_two() {
            return Err(EINVAL);
        }
        Ok(Self { count })
    }

    /// Number of entries (the ring holds one fewer).
    pub(crate) fn count(self) -> u32 {
        self.count
    }

    /// The index after `i`.
    pub(crate) fn next(self, i: u32) -> u32 {
        i.wrapping_add(1) & (self.count - 1)
    }

    /// Whether `i` is a valid index.
    pub(crate) fn valid(self, i: u32) -> bool {
        i < self.count
    }

    /// Entries between the consumer's `rptr` and the producer's `wptr`.
    pub(crate) fn used(self, rptr: u32, wptr: u32) -> u32 {
        wptr.wrapping_sub(rptr) & (self.count - 1)
    }

    /// Entries the producer may still write.
    pub(crate) fn free(self, rptr: u32, wptr: u32) -> u32 {
        self.count - 1 - self.used(rptr, wptr)
    }
}

/// Where a ring's pointers and entries are in its memory.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    /// Offset of the consumer's `rptr`.
    rptr: usize,
    /// Offset of the producer's `wptr`.
    wptr: usize,
    /// Offset of the first entry; the bytes before it are the ring's state.
    entries: usize,
}

impl Layout {
    /// A channel ring (device control, pipes, events, log, statistics): a [`RingState`],
    /// then the entries.
    pub(crate) const CHANNEL: Self = Self {
        // CAST: offsets within a 128-byte struct.
        rptr: RING_RPTR_OFFSET as usize,
        wptr: RING_WPTR_OFFSET as usize,
        entries: size_of::<RingState>(),
    };

    /// A firmware work queue: a [`QueueState`] (with the firmware's `done` count), then the
    /// entries from offset 256.
    pub(crate) const WORK_QUEUE: Self = Self {
        // CAST: offsets within a 192-byte struct.
        rptr: QUEUE_RPTR_OFFSET as usize,
        wptr: QUEUE_WPTR_OFFSET as usize,
        entries: WORK_QUEUE_ENTRIES_OFFSET,
    };

    /// Bytes of a ring of `count` entries of `T`.
    fn bytes<T>(self, count: u32) -> Result<usize> {
        (count as usize)
            .checked_mul(size_of::<T>())
            .and_then(|b| b.checked_add(self.entries))
            .ok_or(EINVAL)
    }
}

/// Where a work queue's entries start.
const WORK_QUEUE_ENTRIES_OFFSET: usize = 256;
kernel::static_assert!(size_of::<QueueState>() <= WORK_QUEUE_ENTRIES_OFFSET);

/// Both pointers of a ring as they are in memory (for debugfs); `u32::MAX` if unreadable.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pointers {
    pub(crate) rptr: u32,
    pub(crate) wptr: u32,
}

/// What both directions of a ring have: its memory, its size and the driver's own pointer.
///
/// Not synchronised: the owner puts a ring under the lock of whoever produces or consumes.
struct RingMem<T: Pod> {
    mem: FwMem,
    idx: Indices,
    layout: Layout,
    /// The driver's pointer: `wptr` of a [`TxRing`], `rptr` of an [`RxRing`].
    own: u32,
    _entry: PhantomData<T>,
}

impl<T: Pod> RingMem<T> {
    fn new(dev: &Device<Bound>, count: u32, layout: Layout) -> Result<Self> {
        let idx = Indices::new(count)?;
        Ok(Self {
            mem: FwMem::new(dev, layout.bytes::<T>(count)?)?,
            idx,
            layout,
            own: 0,
            _entry: PhantomData,
        })
    }

    fn desc(&self) -> RingDesc {
        RingDesc {
            state: self.mem.bus_addr(),
            // CAST: below a page.
            entries: self.mem.bus_addr() + self.layout.entries as u64,
            count: self.idx.count(),
            // CAST: ABI messages are at most a few hundred bytes.
            entry_size: size_of::<T>() as u32,
        }
    }

    /// Both pointers back to 0 and the rest of the state zeroed, as the firmware expects of a
    /// ring it is given (at boot, or when a work queue is created).
    fn reset(&mut self) -> Result {
        self.own = 0;
        for off in (0..self.layout.entries).step_by(size_of::<u32>()) {
            self.mem.store_release(off, 0)?;
        }
        Ok(())
    }

    fn entry_offset(&self, i: u32) -> usize {
        self.layout.entries + i as usize * size_of::<T>()
    }

    /// The firmware's pointer at `off`, checked; `EIO` if the firmware wrote garbage.
    fn theirs(&self, off: usize) -> Result<u32> {
        let value = self.mem.load_acquire(off)?;
        if self.idx.valid(value) {
            Ok(value)
        } else {
            Err(EIO)
        }
    }

    fn pointers(&self) -> Pointers {
        Pointers {
            rptr: self.mem.load_acquire(self.layout.rptr).unwrap_or(u32::MAX),
            wptr: self.mem.load_acquire(self.layout.wptr).unwrap_or(u32::MAX),
        }
    }
}

/// A ring the driver produces into and the firmware consumes from.
///
/// Ownership of the shared memory: the driver owns `wptr` and the entries from `wptr` up to
/// the one before `rptr`; the firmware owns `rptr` and the entries from `rptr` up to `wptr`.
/// The driver writes only entries it owns and hands them over with a release store of
/// `wptr`. It never reads `wptr` back, and checks every `rptr` it reads, since the firmware
/// may write anything there.
pub(crate) struct TxRing<T: Pod>(RingMem<T>);

impl<T: Pod> TxRing<T> {
    /// Allocates a ring of `count` entries (a power of two) laid out as `layout`, both
    /// pointers at 0.
    pub(crate) fn new(dev: &Device<Bound>, count: u32, layout: Layout) -> Result<Self> {
        RingMem::new(dev, count, layout).map(Self)
    }

    /// The descriptor the firmware is given for this ring.
    pub(crate) fn desc(&self) -> RingDesc {
        self.0.desc()
    }

    /// Forgets every entry (see [`RxRing::reset`]).
    pub(crate) fn reset(&mut self) -> Result {
        self.0.reset()
    }

    /// Entries the driver may write now.
    ///
    /// # Errors
    ///
    /// `EIO` if the firmware's `rptr` is not an index of the ring.
    pub(crate) fn free(&self) -> Result<u32> {
        Ok(self
            .0
            .idx
            .free(self.0.theirs(self.0.layout.rptr)?, self.0.own))
    }

    /// Writes `msg` and hands it to the firmware.
    ///
    /// # Errors
    ///
    /// `EBUSY` if the ring is full, `EIO` if the firmware's `rptr` is garbage.
    pub(crate) fn push(&mut self, msg: &T) -> Result {
        if self.free()? == 0 {
            return Err(EBUSY);
        }
        self.push_counted(core::iter::once(msg))
    }

    /// Writes `msgs` and hands them to the firmware together, with one store of `wptr`.
    ///
    /// For a producer that counts the firmware's entries itself until the firmware reports
    /// them done (a work queue's entries are the firmware's until their stamp passes, a
    /// stricter bound than `rptr`): the caller has made sure they fit, and `rptr` is not read.
    pub(crate) fn push_counted<'a>(&mut self, msgs: impl Iterator<Item = &'a T>) -> Result
    where
        T: 'a,
    {
        for msg in msgs {
            self.0.mem.write(self.0.entry_offset(self.0.own), msg)?;
            self.0.own = self.0.idx.next(self.0.own);
        }
        // Release: the entries are visible before the pointer that publishes them.
        self.0.mem.store_release(self.0.layout.wptr, self.0.own)
    }

    /// The driver's `wptr`.
    pub(crate) fn wptr(&self) -> u32 {
        self.0.own
    }

    /// A word of the ring's state the firmware writes (a work queue's `done`).
    pub(crate) fn state_word(&self, off: usize) -> Result<u32> {
        if off + size_of::<u32>() > self.0.layout.entries {
            return Err(EINVAL);
        }
        self.0.mem.load_acquire(off)
    }

    /// Both pointers as they are in memory (for debugfs).
    pub(crate) fn pointers(&self) -> Pointers {
        self.0.pointers()
    }
}

/// A ring the firmware produces into and the driver consumes from.
///
/// Ownership of the shared memory: the firmware owns `wptr` and the entries from `wptr` up to
/// the one before `rptr`; the driver owns `rptr` and the entries from `rptr` up to `wptr`.
/// The driver reads only entries it owns, after an acquire load of `wptr`, and hands their
/// slots back with a release store of `rptr`. It never reads `rptr` back, and checks every
/// `wptr` it reads.
pub(crate) struct RxRing<T: Pod>(RingMem<T>);

impl<T: Pod> RxRing<T> {
    /// Allocates a ring of `count` entries (a power of two) laid out as `layout`, both
    /// pointers at 0.
    pub(crate) fn new(dev: &Device<Bound>, count: u32, layout: Layout) -> Result<Self> {
        RingMem::new(dev, count, layout).map(Self)
    }

    /// The descriptor the firmware is given for this ring.
    pub(crate) fn desc(&self) -> RingDesc {
        self.0.desc()
    }

    /// Forgets every entry: both pointers back to 0, as after the firmware boots.
    pub(crate) fn reset(&mut self) -> Result {
        self.0.reset()
    }

    /// Reads and consumes the oldest entry, if any.
    ///
    /// # Errors
    ///
    /// `EIO` if the firmware's `wptr` is not an index of the ring: nothing is consumed.
    pub(crate) fn pop(&mut self) -> Result<Option<T>> {
        let wptr = self.0.theirs(self.0.layout.wptr)?;
        if wptr == self.0.own {
            return Ok(None);
        }
        let msg = self.0.mem.read(self.0.entry_offset(self.0.own))?;
        self.0.own = self.0.idx.next(self.0.own);
        // Release: the entry was read before its slot is handed back.
        self.0.mem.store_release(self.0.layout.rptr, self.0.own)?;
        Ok(Some(msg))
    }

    /// The driver's `rptr`.
    pub(crate) fn rptr(&self) -> u32 {
        self.0.own
    }

    /// Both pointers as they are in memory (for debugfs).
    pub(crate) fn pointers(&self) -> Pointers {
        self.0.pointers()
    }
}

#[cfg(CONFIG_DRM_VAGX_KUNIT_TEST)]
#[kernel::macros::kunit_tests(vagx_ring)]
mod tests {
    use super::*;

    #[test]
    fn counts_must_be_powers_of_two() {
        assert!(Indices::new(0).is_err());
        assert!(Indices::new(1).is_err());
        assert!(Indices::new(3).is_err());
        assert!(Indices::new(2).is_ok());
        assert!(Indices::new(65536).is_ok());
    }

    #[test]
    fn one_slot_stays_empty() {
        let idx = Indices::new(4).unwrap();
        // Empty: everything but one slot free.
        assert_eq!(idx.free(0, 0), 3);
        assert_eq!(idx.used(0, 0), 0);
        // Full: wptr one behind rptr.
        assert_eq!(idx.free(1, 0), 0);
        assert_eq!(idx.used(1, 0), 3);
        assert_eq!(idx.free(0, 3), 0);
    }

    #[test]
    fn pointers_wrap() {
        let idx = Indices::new(8).unwrap();
        assert_eq!(idx.next(7), 0);
        assert_eq!(idx.next(3), 4);
        // Producer wrapped past the end, consumer has not.
        assert_eq!(idx.used(6, 2), 4);
        assert_eq!(idx.free(6, 2), 3);
        assert!(!idx.valid(8));
        assert!(idx.valid(7));
    }
}
