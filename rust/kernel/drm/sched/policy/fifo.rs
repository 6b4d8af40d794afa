// SPDX-License-Identifier: GPL-2.0

//! FIFO: within a priority, the entity whose oldest queued job was pushed first goes next.

use super::{EntityStats, Policy, Priority};

pub(super) struct Fifo;

impl Policy for Fifo {
    const SINGLE_QUEUE: bool = false;

    fn key(_stats: &EntityStats, head_submit: u64) -> u64 {
        head_submit
    }

    fn picked(stats: &mut EntityStats, _prio: Priority, clock: u64) {
        stats.last_pick = clock;
    }

    fn rejoined(_stats: &mut EntityStats, _min_key: u64) {}
}
