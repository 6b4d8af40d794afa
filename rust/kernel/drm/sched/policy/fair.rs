// SPDX-License-Identifier: GPL-2.0

//! FAIR: the entity with the least weighted GPU time (virtual runtime) goes next.
//!
//! All priorities share one queue. An entity is charged its average job time at pick time
//! (so a client with many jobs in flight is charged before they complete), scaled by its
//! priority (a nanosecond of a Low job costs 64 times a nanosecond of a Kernel job) and by
//! its weight (a nanosecond costs `100 / weight` times as much: weight 400 gets four times
//! the GPU time of weight 100 at one priority). A weight change applies from the next pick:
//! what the entity was charged before stays charged. An entity that rejoins after idling is
//! placed a little before the busiest entities' minimum (as CFS places a waking task): it runs
//! next, ahead of a hog, but cannot bank the time it did not use. A Low entity's key grows
//! faster but still grows only when it runs: it is never starved. On equal keys the entity
//! with the shorter jobs goes first.

use super::{EntityStats, Policy, Priority, Weight};

pub(super) struct Fair;

/// log2 of the cost of one nanosecond of GPU time per priority (Kernel, High, Normal, Low).
pub(super) const SHIFT: [u32; 4] = [0, 1, 3, 6];

/// The charge for a job whose cost is not known yet (no completed job): 100 us.
pub(super) const FIRST_JOB_NS: u64 = 100_000;

/// How far before the minimum a rejoining entity is placed: 2 ms of Normal-priority time.
pub(super) const REJOIN_CREDIT: u64 = 2_000_000 << SHIFT[2];

impl Policy for Fair {
    const SINGLE_QUEUE: bool = true;

    fn key(stats: &EntityStats, _head_submit: u64) -> u64 {
        stats.vruntime
    }

    fn picked(stats: &mut EntityStats, prio: Priority, clock: u64) {
        let cost = if stats.jobs_done == 0 {
            FIRST_JOB_NS
        } else {
            stats.avg_job_ns.max(1)
        };
        stats.vruntime = stats
            .vruntime
            .saturating_add(charge(cost, prio, stats.weight));
        stats.last_pick = clock;
    }

    fn rejoined(stats: &mut EntityStats, min_key: u64) {
        stats.vruntime = stats.vruntime.max(min_key.saturating_sub(REJOIN_CREDIT));
    }
}

/// The virtual runtime `cost` ns of GPU time add for an entity of `prio` and `weight`: at
/// least 1, so that every pick moves the key.
pub(super) fn charge(cost: u64, prio: Priority, weight: Weight) -> u64 {
    // In u64, saturating (the kernel has no 128-bit division): a charge that large means
    // years of GPU time, and saturates the key anyway.
    let weighted = cost
        .saturating_mul(1 << SHIFT[prio as usize])
        .saturating_mul(u64::from(Weight::DEFAULT.get()));
    // A weight is never 0; `checked_div` keeps a panic path (which objtool flags) out of the
    // pick.
    weighted
        .checked_div(u64::from(weight.get()))
        .unwrap_or(weighted)
        .max(1)
}
