// SPDX-License-Identifier: GPL-2.0

//! A FIFO of fixed capacity whose storage is allocated ahead of time.
//!
//! The scheduler moves jobs between queues in its worker, inside the fence-signalling section,
//! where it may not allocate. Every queue is therefore a [`Fifo`] whose capacity was reserved
//! when the job was created ([`Fifo::grown`] outside any lock, [`Fifo::take_from`] under it).
//!
//! It is public for the drivers of the scheduler, whose completion paths have the same rule
//! (a work queue's entries on the hardware, a log of the last messages).

use crate::prelude::*;

/// A FIFO of at most `capacity()` items.
///
/// # Invariants
///
/// `len <= slots.len()`; the items are `slots[(head + i) % slots.len()]` for `i < len`, all
/// `Some`, and every other slot is `None`.
pub struct Fifo<T> {
    slots: KVec<Option<T>>,
    head: usize,
    len: usize,
}

impl<T> Default for Fifo<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Fifo<T> {
    /// An empty FIFO with no storage.
    pub const fn new() -> Self {
        Self {
            slots: KVec::new(),
            head: 0,
            len: 0,
        }
    }

    /// An empty FIFO with room for `capacity` items.
    pub fn with_capacity(capacity: usize, flags: crate::alloc::Flags) -> Result<Self> {
        let mut slots = KVec::with_capacity(capacity, flags)?;
        for _ in 0..capacity {
            // Within the capacity just allocated: never allocates.
            slots.push(None, flags)?;
        }
        Ok(Self {
            slots,
            head: 0,
            len: 0,
        })
    }

    /// A FIFO for `need` items (at least double the current capacity, so that growth is rare),
    /// or `None` if this one is big enough. Allocates: call without locks held.
    pub fn grown(capacity: usize, need: usize) -> Result<Option<Self>> {
        if need <= capacity {
            return Ok(None);
        }
        Self::with_capacity(need.max(2 * capacity).max(4), GFP_KERNEL).map(Some)
    }

    /// Moves every item of `self` into `bigger` (in order) and makes it `self`, if `bigger` has
    /// more room. Does not allocate.
    pub fn take_from(&mut self, mut bigger: Self) {
        if bigger.capacity() <= self.capacity() {
            return;
        }
        while let Some(item) = self.pop_front() {
            // `bigger` is empty and larger than `self`: this always fits.
            let _ = bigger.push_back(item);
        }
        core::mem::swap(self, &mut bigger);
    }

    /// Items it can hold.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Items it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn index(&self, i: usize) -> usize {
        // Only called with items present, so the FIFO has storage.
        (self.head + i).checked_rem(self.slots.len()).unwrap_or(0)
    }

    /// Appends `item`; gives it back if the FIFO is full.
    pub fn push_back(&mut self, item: T) -> Result<(), T> {
        if self.len == self.slots.len() {
            return Err(item);
        }
        let i = self.index(self.len);
        self.slots[i] = Some(item);
        self.len += 1;
        Ok(())
    }

    /// Removes and returns the oldest item.
    pub fn pop_front(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let item = self.slots[self.head].take();
        self.head = (self.head + 1).checked_rem(self.slots.len()).unwrap_or(0);
        self.len -= 1;
        item
    }

    /// The oldest item.
    pub fn front(&self) -> Option<&T> {
        self.get(0)
    }

    /// The `i`-th oldest item.
    pub fn get(&self, i: usize) -> Option<&T> {
        if i >= self.len {
            return None;
        }
        self.slots[self.index(i)].as_ref()
    }

    /// The `i`-th oldest item, mutably.
    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        if i >= self.len {
            return None;
        }
        let at = self.index(i);
        self.slots[at].as_mut()
    }

    /// The items, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        (0..self.len).filter_map(move |i| self.get(i))
    }

    /// The items, oldest first, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        let (head, len, n) = (self.head, self.len, self.slots.len());
        let (tail, front) = self.slots.split_at_mut(head.min(n));
        // The items are `front[..]` then `tail[..]` in ring order; the empty slots are `None`.
        Iterator::chain(front.iter_mut(), tail.iter_mut())
            .filter_map(Option::as_mut)
            .take(len)
    }

    /// Removes and returns the first item for which `pred` holds, keeping the others in order.
    pub fn take_first(&mut self, mut pred: impl FnMut(&T) -> bool) -> Option<T> {
        let pos = (0..self.len).find(|&i| self.get(i).is_some_and(&mut pred))?;
        let at = self.index(pos);
        let item = self.slots[at].take();
        // Close the gap: shift the later items one slot towards the front.
        for i in pos..self.len - 1 {
            let (to, from) = (self.index(i), self.index(i + 1));
            self.slots[to] = self.slots[from].take();
        }
        self.len -= 1;
        item
    }
}

#[cfg(CONFIG_RUST_DRM_SCHED_KUNIT_TEST)]
#[macros::kunit_tests(vagx_sched_ring)]
mod tests {
    use super::*;

    #[test]
    fn fifo_order_wrap_and_full() -> Result {
        let mut r = Fifo::with_capacity(3, GFP_KERNEL)?;
        assert!(r.push_back(1).is_ok());
        assert!(r.push_back(2).is_ok());
        assert_eq!(r.pop_front(), Some(1));
        assert!(r.push_back(3).is_ok());
        assert!(r.push_back(4).is_ok());
        assert_eq!(r.push_back(5), Err(5));
        assert_eq!(r.len(), 3);
        let v: KVec<i32> = {
            let mut v = KVec::new();
            for x in r.iter() {
                v.push(*x, GFP_KERNEL)?;
            }
            v
        };
        assert_eq!(&v[..], &[2, 3, 4]);
        assert_eq!(r.take_first(|&x| x == 3), Some(3));
        assert_eq!(r.pop_front(), Some(2));
        assert_eq!(r.pop_front(), Some(4));
        assert_eq!(r.pop_front(), None);
        Ok(())
    }

    #[test]
    fn growing_keeps_order() -> Result {
        let mut r = Fifo::with_capacity(2, GFP_KERNEL)?;
        assert!(r.push_back(1).is_ok());
        assert!(r.push_back(2).is_ok());
        assert_eq!(r.pop_front(), Some(1));
        assert!(r.push_back(3).is_ok());
        let bigger = Fifo::grown(r.capacity(), 3)?.ok_or(EINVAL)?;
        r.take_from(bigger);
        assert!(r.capacity() >= 3);
        assert!(r.push_back(4).is_ok());
        assert_eq!(r.pop_front(), Some(2));
        assert_eq!(r.pop_front(), Some(3));
        assert_eq!(r.pop_front(), Some(4));
        assert!(Fifo::<i32>::grown(8, 8)?.is_none());
        Ok(())
    }
}
