// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Rings shared with the firmware: the full/empty/wrap rules, written once.
//!
//! A ring is `count` entries of one message type and a [`RingState`] with the consumer's
//! `rptr` and the producer's `wptr`. One slot stays empty: the ring is empty when
//! `wptr == rptr` and full when `wptr + 1 == rptr` (modulo `count`). Each side keeps its own
//! pointer in the driver and never reads it back from memory; the other side's pointer is
//! read from memory and checked, because the firmware may write anything there.
//!
//! [`RingState`]: crate::abi::init::RingState

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

/// Which side of a ring the driver is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    /// The driver writes entries (device control, submission pipes).
    Producer,
    /// The driver reads entries (events, log, statistics).
    Consumer,
}

/// A ring of `T` in DMA memory, with the driver's own pointer.
///
/// Not synchronised: the owner puts it under the lock of whoever produces or consumes.
pub(crate) struct Ring<T: Pod> {
    mem: FwMem,
    idx: Indices,
    side: Side,
    /// The driver's pointer: `wptr` of a producer, `rptr` of a consumer.
    own: u32,
    _entry: PhantomData<T>,
}

/// Entries start after the 128-byte state, aligned to the entry size.
const ENTRIES_OFFSET: usize = size_of::<RingState>();

impl<T: Pod> Ring<T> {
    /// Allocates a ring of `count` entries with both pointers at 0.
    pub(crate) fn new(dev: &Device<Bound>, count: u32, side: Side) -> Result<Self> {
        let idx = Indices::new(count)?;
        let bytes = (count as usize)
            .checked_mul(size_of::<T>())
            .and_then(|b| b.checked_add(ENTRIES_OFFSET))
            .ok_or(EINVAL)?;
        Ok(Self {
            mem: FwMem::new(dev, bytes)?,
            idx,
            side,
            own: 0,
            _entry: PhantomData,
        })
    }

    /// The descriptor the firmware is given for this ring.
    pub(crate) fn desc(&self) -> RingDesc {
        RingDesc {
            state: self.mem.bus_addr(),
            entries: self.mem.bus_addr() + ENTRIES_OFFSET as u64,
            count: self.idx.count(),
            // CAST: ABI messages are at most a few hundred bytes.
            entry_size: size_of::<T>() as u32,
        }
    }

    /// Forgets every entry: both pointers back to 0, as after the firmware boots.
    pub(crate) fn reset(&mut self) -> Result {
        self.own = 0;
        self.mem.store_release(RING_RPTR_OFFSET as usize, 0)?;
        self.mem.store_release(RING_WPTR_OFFSET as usize, 0)
    }

    fn entry_offset(&self, i: u32) -> usize {
        ENTRIES_OFFSET + i as usize * size_of::<T>()
    }

    /// The other side's pointer, checked; `EIO` if the firmware wrote garbage.
    fn theirs(&self) -> Result<u32> {
        let off = match self.side {
            Side::Producer => RING_RPTR_OFFSET,
            Side::Consumer => RING_WPTR_OFFSET,
        };
        let value = self.mem.load_acquire(off as usize)?;
        if self.idx.valid(value) {
            Ok(value)
        } else {
            Err(EIO)
        }
    }

    /// Entries the producer may write now.
    pub(crate) fn free(&self) -> Result<u32> {
        Ok(self.idx.free(self.theirs()?, self.own))
    }

    /// Writes `msg` and publishes it; `EBUSY` if the ring is full. Producer side only.
    pub(crate) fn push(&mut self, msg: &T) -> Result {
        if self.side != Side::Producer {
            return Err(EINVAL);
        }
        if self.free()? == 0 {
            return Err(EBUSY);
        }
        self.mem.write(self.entry_offset(self.own), msg)?;
        self.own = self.idx.next(self.own);
        // Release: the entry is visible before the pointer that publishes it.
        self.mem.store_release(RING_WPTR_OFFSET as usize, self.own)
    }

    /// Reads and consumes the oldest entry, if any. Consumer side only.
    pub(crate) fn pop(&mut self) -> Result<Option<T>> {
        if self.side != Side::Consumer {
            return Err(EINVAL);
        }
        let wptr = self.theirs()?;
        if wptr == self.own {
            return Ok(None);
        }
        let msg = self.mem.read(self.entry_offset(self.own))?;
        self.own = self.idx.next(self.own);
        // Release: the entry was read before its slot is handed back.
        self.mem
            .store_release(RING_RPTR_OFFSET as usize, self.own)?;
        Ok(Some(msg))
    }

    /// The driver's pointer (for debugfs).
    pub(crate) fn own_pointer(&self) -> u32 {
        self.own
    }

    /// Both pointers as they are in memory (for debugfs): `(rptr, wptr)`.
    pub(crate) fn pointers(&self) -> (u32, u32) {
        let r = self
            .mem
            .load_acquire(RING_RPTR_OFFSET as usize)
            .unwrap_or(u32::MAX);
        let w = self
            .mem
            .load_acquire(RING_WPTR_OFFSET as usize)
            .unwrap_or(u32::MAX);
        (r, w)
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
