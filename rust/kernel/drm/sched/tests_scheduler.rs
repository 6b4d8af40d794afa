// SPDX-License-Identifier: GPL-2.0

//! The scheduling-quality cases of drm_sched's `tests_scheduler.c`, printing the same metric
//! lines so that a boot that runs both suites compares the two schedulers side by side.

use super::{
    tests_basic::{mock_sched, submit, waits, HZ_MS},
    Entity, PolicyKind, Priority,
};
use crate::{
    dma_fence::Fence,
    prelude::*,
    sync::aref::ARef,
    time::{Delta, Instant, Monotonic},
};

const JOBS: usize = 1000;
const JOB_US: i64 = 1000;

/// Runs `f` once per policy, as the C suite's parameters do.
fn for_each_policy(mut f: impl FnMut(PolicyKind) -> Result) -> Result {
    for policy in [PolicyKind::RoundRobin, PolicyKind::Fifo, PolicyKind::Fair] {
        f(policy)?;
    }
    Ok(())
}

fn name(policy: PolicyKind) -> &'static str {
    match policy {
        PolicyKind::RoundRobin => "rr",
        PolicyKind::Fifo => "fifo",
        PolicyKind::Fair => "fair",
    }
}

/// Prints the metric line and checks the 5x bound of the C suite.
fn report(what: &str, policy: PolicyKind, start: Instant<Monotonic>, jobs: usize) -> bool {
    let actual = start.elapsed().as_micros_ceil();
    let expected = jobs as i64 * JOB_US;
    pr_info!(
        "vagx_sched {what} ({}): Expected {expected}us, actual {actual}us\n",
        name(policy)
    );
    actual < 5 * expected
}

#[macros::kunit_tests(vagx_sched_scheduler_overhead)]
mod overhead {
    use super::*;

    #[test]
    fn queue_overhead() -> Result {
        for_each_policy(|policy| {
            let sched = mock_sched(None, 1)?;
            sched.set_policy(policy);
            let entity = Entity::new(&sched, Priority::Normal)?;
            // A blocker job holds the queue until everything is queued.
            let blocker = submit(&entity, 0, 0, None)?;
            let mut last: Option<ARef<Fence>> = None;
            for _ in 0..JOBS {
                last = Some(submit(&entity, JOB_US, 0, None)?.finished);
            }
            let start = Instant::now();
            assert_eq!(sched.backend().advance(1), 1);
            assert!(waits(&blocker.finished, HZ_MS));
            let last = last.ok_or(EINVAL)?;
            assert!(waits(&last, 10 * HZ_MS));
            assert!(report("queue_overhead", policy, start, JOBS));
            Ok(())
        })
    }

    #[test]
    fn ping_pong() -> Result {
        for_each_policy(|policy| {
            let sched = mock_sched(None, 1)?;
            sched.set_policy(policy);
            let (a, b) = (
                Entity::new(&sched, Priority::Normal)?,
                Entity::new(&sched, Priority::Normal)?,
            );
            let blocker = submit(&a, 0, 0, None)?;
            let mut last = blocker.finished.clone();
            for i in 0..JOBS {
                let e = if i % 2 == 0 { &b } else { &a };
                last = submit(e, JOB_US, 0, Some(&last))?.finished;
            }
            let start = Instant::now();
            assert_eq!(sched.backend().advance(1), 1);
            assert!(waits(&last, 10 * HZ_MS));
            assert!(report("ping_pong", policy, start, JOBS));
            let _ = Delta::from_micros(0);
            Ok(())
        })
    }
}
