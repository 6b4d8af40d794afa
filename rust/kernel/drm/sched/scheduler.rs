// SPDX-License-Identifier: GPL-2.0

//! The scheduler: one hardware ring or firmware queue, its run queues and its worker.
//!
//! This file holds the public [`Scheduler`] and its configuration. Everything else works on
//! the state the scheduler's entities, jobs and work items share, `Shared`, one concept per
//! file:
//!
//! | file              | what it does                                                     |
//! |-------------------|------------------------------------------------------------------|
//! | `shared.rs`       | `Shared` and `State`, the locks and what each covers, work items |
//! | `entity_table.rs` | entity slots: add, reserve room for a job, priority, kill, drop  |
//! | `dependency.rs`   | what a job waits for; pipelining on one in-order ring            |
//! | `run.rs`          | push, pick by the policy, run, complete: the worker              |
//! | `direct.rs`       | starts from a completion, in interrupt context                   |
//! | `timeout.rs`      | the timeout handler (TDR)                                        |
//! | `teardown.rs`     | stopping with jobs queued and on the hardware                    |
//! | `backend.rs`      | the driver's side: `Backend`, `TimeoutStatus`                    |
//! | `job.rs`          | jobs, their fences and the callbacks that wake the scheduler     |
//! | `entity.rs`       | the public `Entity` and its submit guard                         |

use super::{policy::PolicyKind, shared::Shared, Backend};
use crate::{prelude::*, sync::Arc, time::Delta};

/// How a scheduler is set up.
#[derive(Clone, Copy, Debug)]
pub struct SchedulerConfig {
    /// The name of the scheduler (fence driver name, workqueue name).
    pub name: &'static CStr,
    /// Credits available on the hardware; a job runs only if its credits fit.
    pub credit_limit: u32,
    /// Give every priority its own `credit_limit` (hardware with a ring or pipe per
    /// priority): a priority whose credits are used up does not hold back the others, and
    /// priorities are picked strictly, highest first, under every policy (FAIR then shares
    /// within a priority). A job returns its credits to the priority it was picked at.
    pub credits_per_priority: bool,
    /// How long the job at the head of the hardware may run; `None` disables timeouts.
    pub timeout: Option<Delta>,
    /// The scheduling policy.
    pub policy: PolicyKind,
    /// Timeouts after which an entity is banned; 0 never bans.
    pub ban_limit: u32,
    /// Run a job straight from `push` when the scheduler has nothing else queued, the job
    /// waits for nothing and its credits are free (no worker round trip).
    pub bypass: bool,
    /// Credits above `credit_limit` (above each priority's, with `credits_per_priority`) that
    /// only a job with a deadline may take: with the hardware's credits used up, a job with a
    /// deadline starts at its pick instead of after the next completion, and deadline jobs
    /// never hold more than this beyond the limit ([`super::deadline`]). 0 by default.
    pub deadline_credits: u32,
}

impl SchedulerConfig {
    /// A configuration with the given name and limit, the policy of `vagx_sched.policy`
    /// ([`PolicyKind::module_default`]), no timeout, ban after 3 hangs.
    pub fn new(name: &'static CStr, credit_limit: u32) -> Self {
        Self {
            name,
            credit_limit,
            credits_per_priority: false,
            timeout: None,
            policy: PolicyKind::module_default(),
            ban_limit: 3,
            bypass: true,
            deadline_credits: 0,
        }
    }
}

/// A GPU scheduler. Dropping it stops it: jobs on the hardware are cancelled through the
/// backend and complete with its error, queued jobs complete with `ECANCELED`.
pub struct Scheduler<B: Backend> {
    pub(crate) shared: Arc<Shared<B>>,
}

/// keeps the scheduler's shared state alive, not the scheduler: after the scheduler is dropped
/// it shows the stopped, empty state.
pub struct DebugfsView<B: Backend>(Arc<Shared<B>>);

impl<B: Backend> core::fmt::Debug for DebugfsView<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.dump(f)
    }
}

impl<B: Backend> Scheduler<B> {
    /// Creates a scheduler driving `backend`.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a zero credit limit, `ENOMEM`.
    pub fn new(config: SchedulerConfig, backend: B) -> Result<Self> {
        if config.credit_limit == 0 {
            return Err(EINVAL);
        }
        Ok(Self {
            shared: Shared::new(config, backend)?,
        })
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.shared.backend
    }

    /// Switches the policy (benchmarks compare policies on one scheduler).
    pub fn set_policy(&self, policy: PolicyKind) {
        self.shared.state.lock().policy = policy;
        Shared::kick(&self.shared);
    }

    /// The current policy.
    pub fn policy(&self) -> PolicyKind {
        self.shared.state.lock().policy
    }

    /// Writes the scheduler's state for debugfs: the policy and credits, then one line per
    /// entity (priority, queued and running jobs, GPU time, completed jobs, virtual runtime,
    /// hangs, killed/banned).
    pub fn dump(&self, w: &mut impl core::fmt::Write) -> core::fmt::Result {
        self.shared.dump(w)
    }

    /// The same text as [`Self::dump`] for a debugfs file (`kernel::debugfs` shows a value's
    /// `Debug` text): `dir.read_only_file(c"sched", sched.debugfs_view())`.
    pub fn debugfs_view(&self) -> DebugfsView<B> {
        DebugfsView(self.shared.clone())
    }

    /// Credits in use and jobs on the hardware.
    pub fn load(&self) -> (u32, usize) {
        let s = self.shared.state.lock();
        (s.credits_used, s.in_flight.len())
    }
}

impl<B: Backend> Drop for Scheduler<B> {
    fn drop(&mut self) {
        Shared::teardown(&self.shared);
    }
}
