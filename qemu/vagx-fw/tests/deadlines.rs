// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Entry deadlines on pipe messages (ABI 1.7): the queue whose entry is due first takes the
//! unit within its priority, a flood of deadlines leaves the others a share, a deadline on a
//! later entry makes its queue urgent, priorities stay strict, and the message is checked;
//! and a queue state's device time, new in the same version.

mod common;

use common::*;
use vagx_abi::{channels::*, stamp_passed, STAMP_STEP};

/// Ten 100 µs commands in one entry.
fn ten() -> Vec<u8> {
    cmdbuf(&vec![delay(100_000); 10])
}

/// Runs until every `(queue, stamp)` has passed; returns the order they passed in (by index).
fn completion_order(h: &mut Harness, entries: &[(u32, u32)]) -> Vec<usize> {
    let mut order = Vec::new();
    for _ in 0..100_000 {
        for (i, &(q, stamp)) in entries.iter().enumerate() {
            if !order.contains(&i) && stamp_passed(h.stamp(q), stamp) {
                order.push(i);
            }
        }
        if order.len() == entries.len() {
            return order;
        }
        h.run_for(10_000);
    }
    panic!("entries {entries:?} did not all complete: {order:?}");
}

/// Device time queue `id` spent on its commands, from fresh statistics.
fn busy(h: &mut Harness, id: u32) -> u64 {
    h.stats()
        .iter()
        .find(|s| s.kind == STATS_QUEUE && s.id == id)
        .map_or(0, |s| s.busy_ns)
}

#[test]
fn the_entry_due_first_takes_the_unit_within_its_priority() {
    let mut h = Harness::new(1);
    for q in [30, 31, 32] {
        h.create_queue(q, 2);
    }
    let a = h.queue_entry(30, &ten());
    let b = h.queue_entry(31, &ten());
    let c = h.queue_entry(32, &ten());
    // The last of three to go by the stride rule, and the one wanted soonest.
    h.post_deadline(32, c, 2_000);
    h.kick();
    let order = completion_order(&mut h, &[(30, a), (31, b), (32, c)]);
    assert_eq!(order[0], 2, "the due entry did not finish first: {order:?}");
}

#[test]
fn a_flood_of_deadlines_leaves_a_queue_without_one_its_share() {
    let mut h = Harness::new(1);
    h.create_queue(30, 2);
    h.create_queue(31, 2);
    let plain = h.queue_entry(30, &ten());
    let urgent = h.queue_entry(31, &cmdbuf(&vec![delay(100_000); 20]));
    h.post_deadline(31, urgent, 1);
    h.kick();
    assert!(h.run_until_stamp(31, urgent, 100_000_000).is_some());
    // Twenty urgent commands went by deadline; after each four the plain queue had one.
    let (p, u) = (busy(&mut h, 30), busy(&mut h, 31));
    assert!(
        (4 * 100_000..=6 * 100_000).contains(&p),
        "the plain queue had {p} ns beside the urgent one's {u} ns"
    );
    assert!(h.run_until_stamp(30, plain, 100_000_000).is_some());
}

#[test]
fn the_earliest_of_several_deadlines_goes_first_and_a_late_one_before_all() {
    let mut h = Harness::new(1);
    for q in [30, 31, 32] {
        h.create_queue(q, 2);
    }
    let later = h.queue_entry(30, &ten());
    let sooner = h.queue_entry(31, &ten());
    let late = h.queue_entry(32, &ten());
    h.post_deadline(30, later, 50_000);
    h.post_deadline(31, sooner, 20_000);
    // Already 1 ms late: the most urgent.
    h.post_deadline(32, late, -1_000);
    h.kick();
    let order = completion_order(&mut h, &[(30, later), (31, sooner), (32, late)]);
    assert_eq!(order, [2, 1, 0]);
}

#[test]
fn a_deadline_on_a_later_entry_makes_its_queue_urgent_until_it_completes() {
    let mut h = Harness::new(1);
    h.create_queue(30, 2);
    h.create_queue(31, 2);
    let other = h.queue_entry(30, &ten());
    h.queue_entry(31, &ten());
    let second = h.queue_entry(31, &ten());
    let third = h.queue_entry(31, &ten());
    // Due: the second entry. The first runs before it, so it is urgent too.
    h.post_deadline(31, second, 3_000);
    h.kick();
    assert!(h.run_until_stamp(31, second, 100_000_000).is_some());
    assert!(
        !stamp_passed(h.stamp(30), other),
        "the other queue finished first"
    );
    // With the due entry done the queue has no deadline: the third entry and the other
    // queue's share the unit by the stride rule.
    let (o0, t0) = (busy(&mut h, 30), busy(&mut h, 31));
    assert!(!stamp_passed(h.stamp(30), other) && !stamp_passed(h.stamp(31), third));
    h.run_for(400_000);
    let (o, t) = (busy(&mut h, 30) - o0, busy(&mut h, 31) - t0);
    assert!(
        o.abs_diff(t) <= 200_000,
        "after the deadline: {o} against {t} ns"
    );
    assert!(h.run_until_stamp(31, third, 100_000_000).is_some());
    assert!(h.run_until_stamp(30, other, 100_000_000).is_some());
}

#[test]
fn a_deadline_never_lifts_a_queue_above_a_higher_priority() {
    let mut h = Harness::new(1);
    h.create_queue(30, 1);
    h.create_queue(31, 2);
    let normal = h.queue_entry(30, &ten());
    let low = h.queue_entry(31, &ten());
    h.post_deadline(31, low, -10_000);
    h.kick();
    let order = completion_order(&mut h, &[(30, normal), (31, low)]);
    assert_eq!(order, [0, 1]);
}

#[test]
fn a_deadline_message_is_checked_and_new_in_1_7() {
    let bad_message = |h: &mut Harness| {
        h.events()
            .iter()
            .filter_map(|e| e.payload::<EventError>())
            .filter(|e| e.kind == ERROR_BAD_PIPE_MESSAGE)
            .count()
    };
    let mut h = Harness::new(1);
    h.create_queue(30, 2);
    let done = h.submit(30, &delay(1_000));
    assert!(h.run_until_stamp(30, done, 1_000_000).is_some());
    let pending = h.queue_entry(30, &ten());
    h.kick();
    assert_eq!(bad_message(&mut h), 0);
    // An entry that has completed: the host raced it, nothing to refuse.
    h.post_deadline(30, done, 100);
    h.kick();
    assert_eq!(bad_message(&mut h), 0);
    // Beyond the queue's wptr, between two entries' stamps, or a stamp with no time.
    for (stamp, due) in [
        (pending.wrapping_add(STAMP_STEP), 100),
        (pending.wrapping_sub(STAMP_STEP / 2), 100),
        (pending, 0),
    ] {
        h.post_deadline(30, stamp, due);
        h.kick();
        assert_eq!(
            bad_message(&mut h),
            1,
            "stamp {stamp:#x} due {due} accepted"
        );
    }
    // The refused messages moved nothing: the entry still runs.
    assert!(h.run_until_stamp(30, pending, 10_000_000).is_some());
    // A firmware of 1.6 takes no deadline.
    let mut old = Harness::with_init(1, |i| i.abi_version = 0x0001_0006);
    old.create_queue(30, 2);
    let e = old.queue_entry(30, &ten());
    old.post_deadline(30, e, 100);
    old.kick();
    assert_eq!(bad_message(&mut old), 1);
    assert!(old.run_until_stamp(30, e, 10_000_000).is_some());
}

/// The device time of a queue's completed entries in its state (ABI 1.7).
fn state_busy(h: &mut Harness, id: u32) -> u64 {
    let state = h.queues[&id].state + vagx_abi::queue::QUEUE_BUSY_OFFSET;
    let lo = vagx_fw::mem::read_u32(&mut h.ram, state).unwrap();
    let hi = vagx_fw::mem::read_u32(&mut h.ram, state + 4).unwrap();
    u64::from(hi) << 32 | u64::from(lo)
}

/// ABI 1.7: a work queue's state carries the device time of its completed entries, by the
/// time their stamps are written: the queue's own statistics' figure; 1.6 leaves it zero.
#[test]
fn a_queue_s_state_counts_its_completed_entries_device_time() {
    let mut h = Harness::new(1);
    h.create_queue(30, 2);
    h.create_queue(31, 2);
    let first = h.queue_entry(30, &cmdbuf(&vec![delay(10_000); 3]));
    h.queue_entry(31, &ten());
    let second = h.queue_entry(30, &delay(50_000));
    h.kick();
    assert!(h.run_until_stamp(30, first, 10_000_000).is_some());
    let after_first = state_busy(&mut h, 30);
    // Three 10 µs delays, their fixed costs and the entry's fetch; not the other queue's.
    assert!(
        (30_000..40_000).contains(&after_first),
        "after the first entry: {after_first} ns"
    );
    assert!(h.run_until_stamp(30, second, 10_000_000).is_some());
    let both = state_busy(&mut h, 30);
    assert!(
        both - after_first >= 50_000,
        "the second entry: {} ns",
        both - after_first
    );
    let stats = h
        .stats()
        .iter()
        .find(|s| s.kind == STATS_QUEUE && s.id == 30)
        .map(|s| s.busy_ns);
    assert_eq!(stats, Some(both));
    let mut old = Harness::with_init(1, |i| i.abi_version = 0x0001_0006);
    old.create_queue(30, 2);
    let e = old.submit(30, &delay(10_000));
    assert!(old.run_until_stamp(30, e, 10_000_000).is_some());
    assert_eq!(state_busy(&mut old, 30), 0);
}
