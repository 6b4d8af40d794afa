// SPDX-License-Identifier: GPL-2.0

//! Deadlines on the mock GPU: earliest deadline first within a priority, a deadline set on a
//! queued job's finished fence after arm, the bound on a flood of deadlines, a deadline passed
//! on to the job a job waits for and to the hardware fence of a started job, and the misses.

use super::{
    mock::MockGpu,
    tests_basic::{mock_sched, submit, submit_by, waits, Submitted, HZ_MS},
    tests_control::{blocker, increasing, open, started_at},
    Entity, Priority, Scheduler, SchedulerConfig,
};
use crate::{
    dma_fence::Fence,
    prelude::*,
    time::{delay::fsleep, Delta, Instant, Monotonic},
};

/// The monotonic clock `ms` milliseconds from now.
fn in_ms(ms: i64) -> Instant<Monotonic> {
    // SAFETY: a ktime value.
    unsafe { Instant::from_ktime(Instant::<Monotonic>::now().as_nanos() + ms * 1_000_000) }
}

/// The start times of one job of each entry of `jobs`, in ns.
fn starts(jobs: &[&Submitted]) -> Result<KVec<i64>> {
    let mut v = KVec::with_capacity(jobs.len(), GFP_KERNEL)?;
    for j in jobs {
        assert!(waits(&j.finished, 5 * HZ_MS));
        v.push(
            j.scheduled.timestamp().ok_or(EINVAL)?.as_nanos(),
            GFP_KERNEL,
        )?;
    }
    Ok(v)
}

#[macros::kunit_tests(vagx_sched_deadline)]
mod deadline {
    use super::*;

    /// Four Normal entities with a job each behind the gate, pushed in the order 40 ms,
    /// 10 ms, none, 20 ms: they start 10, 20, 40, then the one without (FIFO would have
    /// run them in push order).
    #[test]
    fn the_earliest_deadline_runs_first() -> Result {
        let sched = mock_sched(None, 1)?;
        let kernel = Entity::new(&sched, Priority::Kernel)?;
        let mut e = KVec::new();
        for _ in 0..4 {
            e.push(Entity::new(&sched, Priority::Normal)?, GFP_KERNEL)?;
        }
        let gate = blocker(&kernel)?;
        let j40 = submit_by(&e[0], 100, 0, Some(in_ms(40)), None)?;
        let j10 = submit_by(&e[1], 100, 0, Some(in_ms(10)), None)?;
        let none = submit_by(&e[2], 100, 0, None, None)?;
        let j20 = submit_by(&e[3], 100, 0, Some(in_ms(20)), None)?;
        open(&sched, &gate);
        assert!(increasing(&starts(&[&j10, &j20, &j40, &none])?));
        Ok(())
    }

    /// A deadline set on a queued job's finished fence after arm (as SYNC_IOC_SET_DEADLINE
    /// does) moves it ahead of a job pushed before it; one set before arm and one in the past
    /// count too (the past one is the most urgent).
    #[test]
    fn a_deadline_set_after_arm_reorders_the_queue() -> Result {
        let sched = mock_sched(None, 1)?;
        let kernel = Entity::new(&sched, Priority::Kernel)?;
        let (a, b, c) = (
            Entity::new(&sched, Priority::Normal)?,
            Entity::new(&sched, Priority::Normal)?,
            Entity::new(&sched, Priority::Normal)?,
        );
        let gate = blocker(&kernel)?;
        let first = submit(&a, 100, 0, None)?;
        let second = submit(&b, 100, 0, None)?;
        let late = submit_by(&c, 100, 0, Some(in_ms(-5)), None)?;
        second.finished.set_deadline(in_ms(30));
        open(&sched, &gate);
        assert!(increasing(&starts(&[&late, &second, &first])?));
        Ok(())
    }

    /// A flood: 24 deadline jobs of one entity beside 3 plain jobs of another, all behind the
    /// gate. The plain ones are not starved: one goes after at most `DEADLINE_BURST`
    /// deadline jobs, so all three start among the first 15.
    #[test]
    fn a_flood_of_deadlines_cannot_starve_other_work() -> Result {
        let sched = mock_sched(None, 1)?;
        let kernel = Entity::new(&sched, Priority::Kernel)?;
        let (flood, plain) = (
            Entity::new(&sched, Priority::Normal)?,
            Entity::new(&sched, Priority::Normal)?,
        );
        let gate = blocker(&kernel)?;
        let mut fl = KVec::new();
        for i in 0..24 {
            fl.push(
                submit_by(&flood, 50, 0, Some(in_ms(10 + i)), None)?,
                GFP_KERNEL,
            )?;
        }
        let mut pl = KVec::new();
        for _ in 0..3 {
            pl.push(submit(&plain, 50, 0, None)?, GFP_KERNEL)?;
        }
        open(&sched, &gate);
        let (tf, tp) = (started_at_all(&fl)?, started_at_all(&pl)?);
        assert!(increasing(&tf) && increasing(&tp));
        for (k, t) in tp.iter().enumerate() {
            let before = tf.iter().filter(|&&f| f < *t).count();
            assert!(before <= 4 * (k + 1));
            assert!(before >= 4 * k);
        }
        Ok(())
    }

    /// A deadline on a job of another scheduler reaches the job it waits for: that job,
    /// pushed after a plain one on its own scheduler, then starts first.
    #[test]
    fn a_deadline_reaches_the_jobs_a_job_waits_for() -> Result {
        let s1 = mock_sched(None, 1)?;
        let s2 = mock_sched(None, 1)?;
        let kernel = Entity::new(&s1, Priority::Kernel)?;
        let (plain, producer) = (
            Entity::new(&s1, Priority::Normal)?,
            Entity::new(&s1, Priority::Normal)?,
        );
        let consumer = Entity::new(&s2, Priority::Normal)?;
        let gate = blocker(&kernel)?;
        let p = submit(&plain, 100, 0, None)?;
        let x = submit(&producer, 100, 0, None)?;
        let z = submit_by(&consumer, 100, 0, None, Some(&x.finished))?;
        z.finished.set_deadline(in_ms(30));
        // s2's worker passes it on to x's fence.
        fsleep(Delta::from_millis(10));
        open(&s1, &gate);
        assert!(increasing(&starts(&[&x, &p])?));
        assert!(waits(&z.finished, 5 * HZ_MS));
        Ok(())
    }

    /// A deadline set on a job already on the hardware reaches its hardware fence; a job
    /// that completes after its deadline counts as a miss, one before it does not.
    #[test]
    fn a_started_job_s_deadline_reaches_the_hardware_and_misses_are_counted() -> Result {
        let sched = mock_sched(None, 1)?;
        let e = Entity::new(&sched, Priority::Normal)?;
        // Runs until advanced.
        let j = submit(&e, 0, 0, None)?;
        assert!(waits(&j.scheduled, HZ_MS));
        let d = in_ms(1);
        j.finished.set_deadline(d);
        let mut polls = 0;
        while sched.backend().hw_deadline(&j.hw).is_none() && polls < 100 {
            fsleep(Delta::from_millis(1));
            polls += 1;
        }
        assert_eq!(
            sched.backend().hw_deadline(&j.hw).map(|t| t.as_nanos()),
            Some(d.as_nanos())
        );
        fsleep(Delta::from_millis(5));
        assert_eq!(sched.backend().advance(1), 1);
        assert!(waits(&j.finished, HZ_MS));
        let ok = submit_by(&e, 100, 0, Some(in_ms(5000)), None)?;
        assert!(waits(&ok.finished, HZ_MS));
        let u = e.usage();
        assert_eq!((u.deadline_jobs, u.deadline_misses), (2, 1));
        Ok(())
    }

    /// With the credits used up, a job with a deadline takes one of `deadline_credits` and
    /// starts at once, while a plain job waits; a second deadline job waits for the reserve,
    /// not for the hardware's credits; the plain job starts only when the hardware gives
    /// its credit back.
    #[test]
    fn deadline_credits_start_a_deadline_job_while_the_credits_are_used_up() -> Result {
        let mut config = SchedulerConfig::new(c"vagx-mock-dl", 1);
        config.deadline_credits = 1;
        // Two rings: the job that holds the credit must not hold up the others' completions.
        let sched = Scheduler::new(config, MockGpu::with_rings(2)?)?;
        let e = [
            Entity::new(&sched, Priority::Normal)?,
            Entity::new(&sched, Priority::Normal)?,
            Entity::new(&sched, Priority::Normal)?,
            Entity::new(&sched, Priority::Normal)?,
        ];
        // Holds the one credit, on ring 1, until advanced.
        let hold_hw = MockGpu::job_on(1, 0, 0)?;
        let hold_state = hold_hw.state.clone();
        let (hold_started, hold) = {
            let job = e[0].job(1, hold_hw)?;
            let guard = e[0].begin_submit()?;
            let armed = guard.arm(job);
            (armed.scheduled(), armed.push())
        };
        assert!(waits(&hold_started, HZ_MS));
        let plain = submit(&e[1], 100, 0, None)?;
        let first = submit_by(&e[2], 50_000, 0, Some(in_ms(100)), None)?;
        let second = submit_by(&e[3], 100, 0, Some(in_ms(200)), None)?;
        assert!(waits(&second.finished, 5 * HZ_MS));
        assert!(!waits(&plain.scheduled, 20));
        assert_eq!(sched.backend().advance_ring(1, 1), 1);
        assert!(waits(&hold, HZ_MS));
        assert!(waits(&plain.finished, HZ_MS));
        let at = |f: &Fence| f.timestamp().map(|t| t.as_nanos()).unwrap_or(i64::MAX);
        // The first started while `hold` held the credit, the second after the first ended
        // on the hardware, the plain job after `hold` did (a completion starts the next job
        // before the finished fence signals).
        let hold_done = hold_state.hw_fence().map_or(i64::MAX, |f| at(&f));
        let first_done = first.hw.hw_fence().map_or(i64::MAX, |f| at(&f));
        assert!(at(&first.scheduled) < hold_done);
        assert!(at(&second.scheduled) >= first_done);
        assert!(at(&plain.scheduled) >= hold_done);
        Ok(())
    }
}

/// The start times of `jobs`, after waiting for each.
fn started_at_all(jobs: &[Submitted]) -> Result<KVec<i64>> {
    for j in jobs {
        assert!(waits(&j.finished, 10 * HZ_MS));
    }
    started_at(jobs)
}
