// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Rings in guest memory: the firmware's side of the full/empty/wrap rules.
//!
//! A ring is `count` fixed-size entries plus a [`RingState`] with the read and write pointers
//! on separate cache lines; one slot is kept empty, so `wptr == rptr` is empty and
//! `(wptr + 1) % count == rptr` is full. The firmware consumes host-to-firmware rings (it owns
//! `rptr`) and produces firmware-to-host rings (it owns `wptr`). It keeps its own copy of the
//! pointer it owns and only reads the other one, which it validates: the host may write
//! anything there.
//!
//! [`RingState`]: vagx_abi::init::RingState

use vagx_abi::{
    init::{RingDesc, MAX_RING_COUNT, RING_RPTR_OFFSET, RING_WPTR_OFFSET},
    pod::{self, Pod},
};

use crate::mem::{self, BusError, Memory};

/// Why a ring cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// The descriptor is malformed: count not a power of two in range, wrong entry size,
    /// misaligned or wrapping addresses.
    BadDescriptor,
    /// The pointer the host owns is out of range; the value is attached.
    BadPointer(u32),
    /// Guest memory behind the ring could not be accessed.
    Bus(BusError),
}

impl core::fmt::Display for RingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadDescriptor => write!(f, "malformed descriptor"),
            Self::BadPointer(p) => write!(f, "pointer {p} out of range"),
            Self::Bus(b) => write!(f, "bus error at {:#x}", b.address),
        }
    }
}

impl From<BusError> for RingError {
    fn from(err: BusError) -> Self {
        Self::Bus(err)
    }
}

/// A validated ring of `T` entries in guest memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ring<T> {
    desc: RingDesc,
    /// The pointer the firmware owns: `rptr` of a consumed ring, `wptr` of a produced one.
    own: u32,
    _entry: core::marker::PhantomData<T>,
}

impl<T: Pod> Ring<T> {
    /// Validates `desc` for entries of type `T`; the firmware's pointer starts at 0.
    ///
    /// # Errors
    ///
    /// [`RingError::BadDescriptor`] if the count is not a power of two between 2 and
    /// `MAX_RING_COUNT`, the entry size is not `size_of::<T>()`, the state is not 128-byte
    /// aligned, the entries are not entry-size aligned, or an area wraps the address space.
    pub fn new(desc: RingDesc) -> Result<Self, RingError> {
        let size = size_of::<T>() as u64;
        let ok = desc.count.is_power_of_two()
            && (2..=MAX_RING_COUNT).contains(&desc.count)
            && u64::from(desc.entry_size) == size
            && desc.state.is_multiple_of(128)
            && desc.entries.is_multiple_of(size.clamp(8, 64))
            && desc.state.checked_add(128).is_some()
            && desc
                .entries
                .checked_add(u64::from(desc.count) * size)
                .is_some();
        if !ok {
            return Err(RingError::BadDescriptor);
        }
        Ok(Self {
            desc,
            own: 0,
            _entry: core::marker::PhantomData,
        })
    }

    /// The descriptor.
    pub fn desc(&self) -> &RingDesc {
        &self.desc
    }

    /// The byte range `[start, end)` of the entries, and of the state.
    pub fn areas(&self) -> [(u64, u64); 2] {
        let entries_end = self.desc.entries + u64::from(self.desc.count) * size_of::<T>() as u64;
        [
            (self.desc.entries, entries_end),
            (self.desc.state, self.desc.state + 128),
        ]
    }

    fn entry_address(&self, index: u32) -> u64 {
        self.desc.entries + u64::from(index) * size_of::<T>() as u64
    }

    fn check(&self, ptr: u32) -> Result<u32, RingError> {
        if ptr < self.desc.count {
            Ok(ptr)
        } else {
            Err(RingError::BadPointer(ptr))
        }
    }

    /// Consumer side: takes the next entry written by the host, if any, and publishes the
    /// new `rptr`.
    ///
    /// # Errors
    ///
    /// [`RingError::BadPointer`] if the host's `wptr` is out of range (the ring is then left
    /// alone), or a bus error.
    pub fn pop(&mut self, mem: &mut dyn Memory) -> Result<Option<T>, RingError> {
        let wptr = self.check(mem::read_u32(mem, self.desc.state + RING_WPTR_OFFSET)?)?;
        if wptr == self.own {
            return Ok(None);
        }
        let entry = mem::read_pod::<T>(mem, self.entry_address(self.own))?;
        self.own = (self.own + 1) % self.desc.count;
        mem::write_u32(mem, self.desc.state + RING_RPTR_OFFSET, self.own)?;
        Ok(Some(entry))
    }

    /// Producer side: appends `entry` and publishes the new `wptr`; `Ok(false)` if the ring is
    /// full (nothing is written).
    ///
    /// # Errors
    ///
    /// [`RingError::BadPointer`] if the host's `rptr` is out of range, or a bus error.
    pub fn push(&mut self, mem: &mut dyn Memory, entry: &T) -> Result<bool, RingError> {
        let rptr = self.check(mem::read_u32(mem, self.desc.state + RING_RPTR_OFFSET)?)?;
        let next = (self.own + 1) % self.desc.count;
        if next == rptr {
            return Ok(false);
        }
        mem.write(self.entry_address(self.own), pod::as_bytes(entry))?;
        self.own = next;
        mem::write_u32(mem, self.desc.state + RING_WPTR_OFFSET, self.own)?;
        Ok(true)
    }

    /// Writes the firmware's pointer to the state, as at boot.
    ///
    /// # Errors
    ///
    /// A bus error.
    pub fn publish_initial(&self, mem: &mut dyn Memory, consumer: bool) -> Result<(), BusError> {
        let offset = if consumer {
            RING_RPTR_OFFSET
        } else {
            RING_WPTR_OFFSET
        };
        mem::write_u32(mem, self.desc.state + offset, self.own)
    }
}

/// Whether two byte ranges `[start, end)` overlap.
pub fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::Ram;
    use vagx_abi::channels::PipeMsg;

    const STATE: u64 = 0x1000;
    const ENTRIES: u64 = 0x2000;

    fn desc(count: u32) -> RingDesc {
        RingDesc {
            state: STATE,
            entries: ENTRIES,
            count,
            entry_size: size_of::<PipeMsg>() as u32,
        }
    }

    fn host_write(ram: &mut Ram, index: u32, queue: u32, wptr: u32) {
        let msg = PipeMsg {
            queue,
            ..Default::default()
        };
        mem::write_pod(ram, ENTRIES + u64::from(index) * 16, &msg).unwrap();
        mem::write_u32(ram, STATE + RING_WPTR_OFFSET, wptr).unwrap();
    }

    #[test]
    fn descriptors_are_validated() {
        assert!(Ring::<PipeMsg>::new(desc(4)).is_ok());
        for count in [0, 1, 3, 6, MAX_RING_COUNT * 2] {
            assert_eq!(
                Ring::<PipeMsg>::new(desc(count)),
                Err(RingError::BadDescriptor)
            );
        }
        let mut d = desc(4);
        d.entry_size = 32;
        assert_eq!(Ring::<PipeMsg>::new(d), Err(RingError::BadDescriptor));
        let mut d = desc(4);
        d.state = 0x1008;
        assert_eq!(Ring::<PipeMsg>::new(d), Err(RingError::BadDescriptor));
        let mut d = desc(65536);
        d.entries = u64::MAX - 100;
        assert_eq!(Ring::<PipeMsg>::new(d), Err(RingError::BadDescriptor));
    }

    #[test]
    fn consumer_wraps_and_publishes_rptr() {
        let mut ram = Ram::new(0, 0x4000);
        let mut ring = Ring::<PipeMsg>::new(desc(4)).unwrap();
        assert_eq!(ring.pop(&mut ram), Ok(None));
        // Fill three (the maximum with one slot empty), consume, then wrap.
        for round in 0..3u32 {
            for i in 0..3 {
                let index = (round * 3 + i) % 4;
                host_write(&mut ram, index, round * 10 + i, (index + 1) % 4);
            }
            for i in 0..3 {
                let msg = ring.pop(&mut ram).unwrap().unwrap();
                assert_eq!(msg.queue, round * 10 + i);
            }
            assert_eq!(ring.pop(&mut ram), Ok(None));
            let rptr = mem::read_u32(&mut ram, STATE + RING_RPTR_OFFSET).unwrap();
            assert_eq!(rptr, (round + 1) * 3 % 4);
        }
    }

    #[test]
    fn bad_host_pointer_is_reported_and_consumes_nothing() {
        let mut ram = Ram::new(0, 0x4000);
        let mut ring = Ring::<PipeMsg>::new(desc(4)).unwrap();
        mem::write_u32(&mut ram, STATE + RING_WPTR_OFFSET, 9).unwrap();
        assert_eq!(ring.pop(&mut ram), Err(RingError::BadPointer(9)));
        assert_eq!(mem::read_u32(&mut ram, STATE + RING_RPTR_OFFSET), Ok(0));
    }

    #[test]
    fn producer_stops_when_full_and_resumes_after_host_reads() {
        let mut ram = Ram::new(0, 0x4000);
        let mut ring = Ring::<PipeMsg>::new(desc(4)).unwrap();
        let msg = PipeMsg::default();
        for _ in 0..3 {
            assert_eq!(ring.push(&mut ram, &msg), Ok(true));
        }
        assert_eq!(ring.push(&mut ram, &msg), Ok(false));
        assert_eq!(mem::read_u32(&mut ram, STATE + RING_WPTR_OFFSET), Ok(3));
        // The host consumes two.
        mem::write_u32(&mut ram, STATE + RING_RPTR_OFFSET, 2).unwrap();
        assert_eq!(ring.push(&mut ram, &msg), Ok(true));
        assert_eq!(ring.push(&mut ram, &msg), Ok(true));
        assert_eq!(ring.push(&mut ram, &msg), Ok(false));
        assert_eq!(mem::read_u32(&mut ram, STATE + RING_WPTR_OFFSET), Ok(1));
    }

    #[test]
    fn ring_in_unbacked_memory_is_a_bus_error() {
        let mut ram = Ram::new(0x10_0000, 0x1000);
        let mut ring = Ring::<PipeMsg>::new(desc(4)).unwrap();
        assert!(matches!(ring.pop(&mut ram), Err(RingError::Bus(_))));
        assert!(matches!(
            ring.push(&mut ram, &PipeMsg::default()),
            Err(RingError::Bus(_))
        ));
    }

    #[test]
    fn overlap_is_half_open() {
        assert!(overlaps((0, 10), (9, 20)));
        assert!(!overlaps((0, 10), (10, 20)));
        assert!(overlaps((5, 6), (0, 100)));
    }
}
