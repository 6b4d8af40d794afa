// SPDX-License-Identifier: GPL-2.0

//! Scheduling policies: which ready entity of a scheduler runs next.
//!
//! A policy gives every ready entity a key; the smallest key runs. RR and FIFO pick within the
//! highest non-empty priority (Kernel first, Low last); FAIR puts all priorities in one queue
//! and lets the priority and the entity's weight weigh the virtual runtime instead, so Low is
//! never starved.

mod fair;
mod fifo;
mod rr;
#[cfg(test)]
mod tests;

use super::{Priority, WaitHistogram, Weight};

/// Per-entity numbers the policies keep (under the scheduler's lock).
#[derive(Default, Clone, Copy, Debug)]
pub(crate) struct EntityStats {
    /// Logical time of the entity's last pick (RR).
    pub(crate) last_pick: u64,
    /// Virtual runtime in weighted nanoseconds (FAIR).
    pub(crate) vruntime: u64,
    /// Moving average of the entity's job GPU time, in ns (FAIR's charge at pick time).
    pub(crate) avg_job_ns: u64,
    /// Total GPU time of completed jobs, in ns.
    pub(crate) gpu_ns: u64,
    /// Completed jobs.
    pub(crate) jobs_done: u64,
    /// Completed jobs whose finished fence signalled an error (whether they ran or not).
    pub(crate) jobs_failed: u64,
    /// The entity's share under FAIR.
    pub(crate) weight: Weight,
    /// How long its jobs waited from push to start.
    pub(crate) waits: WaitHistogram,
    /// Jobs with a deadline that left the scheduler, and those that completed after it.
    pub(crate) deadline_jobs: u64,
    pub(crate) deadline_misses: u64,
}

/// What a policy decides with.
pub(crate) trait Policy {
    /// Whether all priorities share one queue (the priority only weighs the key).
    const SINGLE_QUEUE: bool;

    /// The entity's key for this pick; the smallest runs. `head_submit` is the logical submit
    /// time of the entity's first queued job.
    fn key(stats: &EntityStats, head_submit: u64) -> u64;

    /// The entity was picked at logical time `clock`.
    fn picked(stats: &mut EntityStats, prio: Priority, clock: u64);

    /// The entity had nothing queued and now has: `min_key` is the smallest key among the
    /// other entities (so an idle entity cannot bank credit while idle).
    fn rejoined(stats: &mut EntityStats, min_key: u64);
}

/// The policy of a scheduler, chosen at creation (and changeable at run time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyKind {
    /// Round robin: the entity picked longest ago goes first.
    RoundRobin,
    /// First in, first out: the entity whose first job was pushed earliest goes first.
    Fifo,
    /// Fair share of GPU time, weighted by priority and by the entity's [`Weight`].
    Fair,
}

impl PolicyKind {
    /// The policy named by `s` (`rr`, `fifo`, `fair`), as a module parameter spells it.
    pub fn from_name(s: &[u8]) -> Option<Self> {
        match s {
            b"rr" => Some(Self::RoundRobin),
            b"fifo" => Some(Self::Fifo),
            b"fair" => Some(Self::Fair),
            _ => None,
        }
    }

    /// The groups a pick walks, highest first: all priorities at once for a single-queue
    /// policy, one priority at a time otherwise or when every priority has its own credits
    /// (`per_priority`). The first group with a ready entity that fits wins.
    pub(crate) fn groups(self, per_priority: bool) -> &'static [Option<Priority>] {
        if self.single_queue() && !per_priority {
            &[None]
        } else {
            &[
                Some(Priority::Kernel),
                Some(Priority::High),
                Some(Priority::Normal),
                Some(Priority::Low),
            ]
        }
    }

    pub(crate) fn single_queue(self) -> bool {
        match self {
            Self::RoundRobin => rr::Rr::SINGLE_QUEUE,
            Self::Fifo => fifo::Fifo::SINGLE_QUEUE,
            Self::Fair => fair::Fair::SINGLE_QUEUE,
        }
    }

    pub(crate) fn key(self, stats: &EntityStats, head_submit: u64) -> u64 {
        match self {
            Self::RoundRobin => rr::Rr::key(stats, head_submit),
            Self::Fifo => fifo::Fifo::key(stats, head_submit),
            Self::Fair => fair::Fair::key(stats, head_submit),
        }
    }

    pub(crate) fn picked(self, stats: &mut EntityStats, prio: Priority, clock: u64) {
        match self {
            Self::RoundRobin => rr::Rr::picked(stats, prio, clock),
            Self::Fifo => fifo::Fifo::picked(stats, prio, clock),
            Self::Fair => fair::Fair::picked(stats, prio, clock),
        }
    }

    pub(crate) fn rejoined(self, stats: &mut EntityStats, min_key: u64) {
        match self {
            Self::RoundRobin => rr::Rr::rejoined(stats, min_key),
            Self::Fifo => fifo::Fifo::rejoined(stats, min_key),
            Self::Fair => fair::Fair::rejoined(stats, min_key),
        }
    }
}

/// Accounts a completed job of `gpu_ns` to the entity (all policies keep the totals; FAIR's
/// average feeds its charge at pick time).
pub(crate) fn job_done(stats: &mut EntityStats, gpu_ns: u64) {
    stats.gpu_ns = stats.gpu_ns.saturating_add(gpu_ns);
    stats.jobs_done += 1;
    // Exponential moving average with weight 1/4 for the newest job.
    stats.avg_job_ns = if stats.jobs_done == 1 {
        gpu_ns
    } else {
        (3 * stats.avg_job_ns + gpu_ns) / 4
    };
}

/// The best entity offered so far in one pick: the smallest key; on equal keys the entity with
/// the shorter jobs (an interactive client), then the first offered.
#[derive(Default)]
pub(crate) struct Choice {
    /// (entity, key, average job time)
    best: Option<(usize, u64, u64)>,
}

impl Choice {
    pub(crate) fn offer(&mut self, id: usize, key: u64, avg_job_ns: u64) {
        let better = match self.best {
            None => true,
            Some((_, k, avg)) => key < k || (key == k && avg_job_ns < avg),
        };
        if better {
            self.best = Some((id, key, avg_job_ns));
        }
    }

    pub(crate) fn best(&self) -> Option<usize> {
        self.best.map(|(id, _, _)| id)
    }
}

/// Whether a job of `credits` fits beside `used` credits of `limit` (without overflowing, even
/// with a limit of `u32::MAX`).
pub(crate) fn credits_fit(used: u32, credits: u32, limit: u32) -> bool {
    used.checked_add(credits)
        .is_some_and(|total| total <= limit)
}
