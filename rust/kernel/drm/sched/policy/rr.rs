// SPDX-License-Identifier: GPL-2.0

//! Round robin: within a priority, the entity picked longest ago goes next.

use super::{EntityStats, Policy, Priority};

pub(super) struct Rr;

impl Policy for Rr {
    const SINGLE_QUEUE: bool = false;

    fn key(stats: &EntityStats, _head_submit: u64) -> u64 {
        stats.last_pick
    }

    fn picked(stats: &mut EntityStats, _prio: Priority, clock: u64) {
        stats.last_pick = clock;
    }

    fn rejoined(_stats: &mut EntityStats, _min_key: u64) {}
}
