// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Stamp slots as the firmware sees them, and dependency failures (ABI 1.1): which stamps of
//! each slot failed, for waits to evaluate.
//!
//! `StampSlots` owns, for every slot, whether a queue holds it, the firmware's copy of its
//! stamp, and its failure record; a wait or barrier asks it whether its slot has passed a
//! value and whether the entry that took it there failed.
//!
//! A wait entry or a BARRIER with `BARRIER_FLAG_DEP_ERROR` on `(slot, value)` is resolved once
//! the slot has passed `value`; it then fails if the entry that took the slot past `value`
//! failed. That entry is the first one whose stamp `s` reached `value`, i.e. the one with
//! `0 <= s - value < STAMP_STEP`; its queue may be gone by then, so the record belongs to the
//! slot, not to the queue.
//!
//! An entry fails when a queue reset discards it (the faulted or timed-out culprit included:
//! the host's reset is what retires it) or when it fails a dependency itself. Consecutive failed
//! entries form one range, so a slot's record is a short list of ranges of stamps, oldest
//! first, at most [`FAILURE_HISTORY`] long. Past that bound the two oldest ranges merge into
//! one, covering the entries between them too: a wait on those fails although they succeeded,
//! which is wrong in the safe direction. Stamps are compared wrap-safely ([`stamp_passed`]), so
//! the record is right while the slot's stamps stay within 2^31 of each other.

use std::collections::VecDeque;

use vagx_abi::{queue::Peer, stamp_passed, FAILURE_HISTORY, NUM_STAMP_SLOTS, STAMP_STEP};

/// What a wait entry or a BARRIER waits for: `slot` of this device, or of a peer on the fabric
/// (ABI 1.4), passing `value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WaitOn {
    pub(crate) slot: u32,
    pub(crate) value: u32,
    pub(crate) peer: Option<Peer>,
}

impl WaitOn {
    /// A wait on `slot` of this device.
    pub(crate) fn local(slot: u32, value: u32) -> Self {
        Self {
            slot,
            value,
            peer: None,
        }
    }
}

/// What a wait finds when it looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WaitState {
    /// The slot has not passed the value: the queue parks.
    Pending,
    /// The entry that took the slot past the value succeeded.
    Passed,
    /// It failed.
    Failed,
    /// A peer wait whose device is not at its port in the epoch named, or has crashed: it
    /// never resolves ([`crate::fabric`]).
    Lost,
}

/// Why an entry failed a dependency, as its `EVENT_ENTRY_ERROR` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DepFailure {
    /// A `DEP_CAUSE_*` value.
    pub(crate) cause: u32,
    /// Index of the failing BARRIER, or `NO_COMMAND`.
    pub(crate) command: u32,
    /// The awaited slot.
    pub(crate) slot: u32,
    /// The awaited value.
    pub(crate) value: u32,
}

/// Stamps `first..=last` of a slot, in steps of `STAMP_STEP`, all failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FailedRange {
    first: u32,
    last: u32,
}

impl FailedRange {
    /// Whether the entry that took the slot past `value` is in the range.
    fn covers(&self, value: u32) -> bool {
        // The entry with stamp `first` is the one for every value in `first - STEP + 1..=first`.
        let from = self.first.wrapping_sub(STAMP_STEP).wrapping_add(1);
        stamp_passed(value, from) && stamp_passed(self.last, value)
    }
}

/// The failed stamps of one slot.
///
/// # Invariants
///
/// At most [`FAILURE_HISTORY`] ranges, oldest first, none adjacent to the next.
#[derive(Clone, Debug, Default)]
struct FailureRecord {
    ranges: VecDeque<FailedRange>,
}

impl FailureRecord {
    /// Forgets everything: a new queue starts a new sequence of stamps on the slot.
    fn clear(&mut self) {
        self.ranges.clear();
    }

    /// Records that the entries with stamps `first..=last` failed; they follow every stamp
    /// recorded before.
    fn add(&mut self, first: u32, last: u32) {
        if let Some(prev) = self.ranges.back_mut() {
            // Adjacent or overlapping: the same run of failures (a job's entries, a reset after
            // a failed entry).
            if stamp_passed(prev.last.wrapping_add(STAMP_STEP), first) {
                if stamp_passed(last, prev.last) {
                    prev.last = last;
                }
                return;
            }
        }
        self.ranges.push_back(FailedRange { first, last });
        if self.ranges.len() > FAILURE_HISTORY {
            // INVARIANT: merging the two oldest keeps the bound and fails more, never less.
            if let Some(oldest) = self.ranges.pop_front() {
                if let Some(next) = self.ranges.front_mut() {
                    next.first = oldest.first;
                }
            }
        }
    }

    /// Whether the entry that took the slot past `value` failed.
    fn failed(&self, value: u32) -> bool {
        self.ranges.iter().any(|r| r.covers(value))
    }

    /// Number of ranges kept.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.ranges.len()
    }
}

/// One stamp slot.
#[derive(Clone, Debug, Default)]
struct Slot {
    /// A queue holds the slot.
    taken: bool,
    /// The firmware's copy of the slot's stamp (the host's copy is in guest memory).
    stamp: u32,
    /// Which of its stamps failed.
    failures: FailureRecord,
}

/// Every stamp slot: whether a queue holds it, its stamp and its failures.
///
/// # Invariants
///
/// A slot's failures are those of the stamps of the queue that holds it, or held it last: they
/// are forgotten when a queue claims it.
#[derive(Clone, Debug)]
pub(crate) struct StampSlots {
    slots: [Slot; NUM_STAMP_SLOTS],
    /// Counts changes, for the fabric to tell peers ([`crate::fabric`]).
    version: u64,
}

impl Default for StampSlots {
    fn default() -> Self {
        Self {
            slots: std::array::from_fn(|_| Slot::default()),
            version: 0,
        }
    }
}

/// The bus address of the stamp of `slot` in the host's stamp table at bus address `table`.
pub(crate) fn stamp_address(table: u64, slot: u32) -> u64 {
    table + 4 * u64::from(slot)
}

/// The index of `slot` in the table.
fn index(slot: u32) -> usize {
    // CAST: `usize` is at least 32 bits wide on every supported host, so this widens.
    slot as usize
}

impl StampSlots {
    /// Whether a queue holds `slot`, which is below `NUM_STAMP_SLOTS`.
    pub(crate) fn is_taken(&self, slot: u32) -> bool {
        // PANIC: the caller checked the slot.
        self.slots[index(slot)].taken
    }

    /// A new queue takes `slot` (below `NUM_STAMP_SLOTS`); its stamp starts at `stamp`.
    pub(crate) fn claim(&mut self, slot: u32, stamp: u32) {
        // PANIC: the caller checked the slot.
        self.version += 1;
        let s = &mut self.slots[index(slot)];
        s.taken = true;
        s.stamp = stamp;
        // The slot's failures belong to its previous queue's stamps.
        s.failures.clear();
    }

    /// The queue that held `slot` is gone; the stamp and failures stay for waits on them.
    pub(crate) fn release(&mut self, slot: u32) {
        self.version += 1;
        // PANIC: a queue held the slot, so it is in range.
        self.slots[index(slot)].taken = false;
    }

    /// Sets the firmware's copy of the stamp of `slot`, which a queue holds.
    pub(crate) fn set_stamp(&mut self, slot: u32, stamp: u32) {
        self.version += 1;
        // PANIC: a queue holds the slot, so it is in range.
        self.slots[index(slot)].stamp = stamp;
    }

    /// How many changes the slots have seen.
    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    /// Whether `slot` has passed `value` (a slot out of range stays at 0).
    pub(crate) fn passed(&self, slot: u32, value: u32) -> bool {
        let now = self.slots.get(index(slot)).map_or(0, |s| s.stamp);
        stamp_passed(now, value)
    }

    /// Records that the entries of `slot` with stamps `first..=last` failed.
    pub(crate) fn record_failure(&mut self, slot: u32, first: u32, last: u32) {
        self.version += 1;
        if let Some(s) = self.slots.get_mut(index(slot)) {
            s.failures.add(first, last);
        }
    }

    /// What a wait on `slot` passing `value` finds.
    pub(crate) fn wait_state(&self, slot: u32, value: u32) -> WaitState {
        if !self.passed(slot, value) {
            WaitState::Pending
        } else if self.failed(slot, value) {
            WaitState::Failed
        } else {
            WaitState::Passed
        }
    }

    /// Whether the entry that took `slot` past `value` failed (the caller has checked that the
    /// slot passed it).
    pub(crate) fn failed(&self, slot: u32, value: u32) -> bool {
        self.slots
            .get(index(slot))
            .is_some_and(|s| s.failures.failed(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u32 = STAMP_STEP;

    #[test]
    fn a_range_covers_the_values_its_entries_reached() {
        let mut r = FailureRecord::default();
        r.add(3 * S, 4 * S);
        // The entry at 3S is the one for values 2S+1..=3S, the entry at 4S for 3S+1..=4S.
        for (value, failed) in [
            (2 * S, false),
            (2 * S + 1, true),
            (3 * S, true),
            (4 * S, true),
            (4 * S + 1, false),
            (5 * S, false),
        ] {
            assert_eq!(r.failed(value), failed, "value {value:#x}");
        }
    }

    #[test]
    fn adjacent_failures_extend_one_range() {
        let mut r = FailureRecord::default();
        r.add(S, S);
        r.add(2 * S, 2 * S);
        r.add(3 * S, 5 * S);
        assert_eq!(r.len(), 1);
        r.add(7 * S, 7 * S);
        assert_eq!(r.len(), 2);
        assert!(r.failed(5 * S) && !r.failed(6 * S) && r.failed(7 * S));
    }

    #[test]
    fn ranges_work_across_the_wrap() {
        let mut r = FailureRecord::default();
        let first = 0u32.wrapping_sub(S);
        r.add(first, first.wrapping_add(2 * S));
        assert!(r.failed(first));
        assert!(r.failed(0));
        assert!(r.failed(S));
        assert!(!r.failed(2 * S));
        assert!(!r.failed(first.wrapping_sub(S)));
    }

    #[test]
    fn the_history_is_bounded_and_merges_in_the_safe_direction() {
        let mut r = FailureRecord::default();
        // Failures at 2S, 4S, 6S, ...: every odd multiple succeeded.
        let n = FAILURE_HISTORY as u32 + 3;
        for i in 1..=n {
            r.add(2 * i * S, 2 * i * S);
        }
        assert_eq!(r.len(), FAILURE_HISTORY);
        // Every failure is still known.
        assert!((1..=n).all(|i| r.failed(2 * i * S)));
        // The three oldest gaps were merged away (they now fail), the newer ones were not.
        assert!(!r.failed(S), "before the first failure");
        assert!((1..=3).all(|i| r.failed((2 * i + 1) * S)));
        assert!((4..n).all(|i| !r.failed((2 * i + 1) * S)));
    }
}
