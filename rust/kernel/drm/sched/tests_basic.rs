// SPDX-License-Identifier: GPL-2.0

//! The cases of drm_sched's `tests_basic.c`, on the Rust scheduler and the mock GPU, with the
//! same parameters and assertions, plus vagx's own cases.

use super::{
    mock::{MockGpu, MockJobState, DONT_RESET, NO_DEVICE, RESET_SKIPPED, TIMEDOUT},
    Entity, Priority, Scheduler, SchedulerConfig,
};
use crate::{
    dma_fence::{Fence, Interruptible},
    prelude::*,
    sync::{aref::ARef, Arc},
    time::{delay::fsleep, Delta, Instant, Monotonic},
};
use core::sync::atomic::Ordering::Relaxed;

/// One second, drm_sched's `HZ` in its waits.
pub(crate) const HZ_MS: i64 = 1000;

pub(crate) fn mock_sched(timeout_ms: Option<i64>, credit_limit: u32) -> Result<Scheduler<MockGpu>> {
    let mut config = SchedulerConfig::new(c"vagx-mock", credit_limit);
    // drm_sched's default; the cases that need another policy set it.
    config.policy = super::PolicyKind::Fifo;
    config.timeout = timeout_ms.map(Delta::from_millis);
    Scheduler::new(config, MockGpu::new()?)
}

/// A submitted mock job: its fences and its hardware side.
pub(crate) struct Submitted {
    pub(crate) scheduled: ARef<Fence>,
    pub(crate) finished: ARef<Fence>,
    pub(crate) hw: Arc<MockJobState>,
}

pub(crate) fn submit(
    entity: &Entity<MockGpu>,
    duration_us: i64,
    flags: u32,
    dep: Option<&ARef<Fence>>,
) -> Result<Submitted> {
    submit_by(entity, duration_us, flags, None, dep)
}

/// A mock job of `duration_us` µs on `entity`, wanted by `deadline`, after `dep`.
pub(crate) fn submit_by(
    entity: &Entity<MockGpu>,
    duration_us: i64,
    flags: u32,
    deadline: Option<Instant<Monotonic>>,
    dep: Option<&ARef<Fence>>,
) -> Result<Submitted> {
    let data = MockGpu::job(duration_us, flags)?;
    let hw = data.state.clone();
    let mut job = entity.job(1, data)?;
    if let Some(d) = deadline {
        job.set_deadline(d);
    }
    if let Some(dep) = dep {
        job.add_dependency(dep.clone())?;
    }
    let guard = entity.begin_submit()?;
    let armed = guard.arm(job);
    let scheduled = armed.scheduled();
    let finished = armed.push();
    Ok(Submitted {
        scheduled,
        finished,
        hw,
    })
}

pub(crate) fn waits(fence: &Fence, ms: i64) -> bool {
    fence
        .wait(Some(Delta::from_millis(ms)), Interruptible::No)
        .is_ok()
}

#[macros::kunit_tests(vagx_sched_basic)]
mod basic {
    use super::*;

    #[test]
    fn basic_submit() -> Result {
        let sched = mock_sched(None, u32::MAX)?;
        let entity = Entity::new(&sched, Priority::Normal)?;
        let job = submit(&entity, 0, 0, None)?;
        assert!(waits(&job.scheduled, HZ_MS));
        assert!(!waits(&job.finished, HZ_MS / 2));
        assert_eq!(sched.backend().advance(1), 1);
        assert!(waits(&job.finished, HZ_MS));
        Ok(())
    }

    /// drm_sched_basic_test: `qd` jobs of 1000 us over `entities`, optionally each depending on
    /// the previous one's finished fence; the last must finish within a second.
    fn basic_test(entities: usize, dep_chain: bool) -> Result {
        const QD: usize = 100;
        let sched = mock_sched(None, u32::MAX)?;
        let mut ents = KVec::new();
        for _ in 0..entities {
            ents.push(Entity::new(&sched, Priority::Normal)?, GFP_KERNEL)?;
        }
        let mut last: Option<ARef<Fence>> = None;
        for i in 0..QD {
            let dep = if dep_chain { last.as_ref() } else { None };
            let job = submit(&ents[i % entities], 1000, 0, dep)?;
            last = Some(job.finished);
        }
        let last = last.ok_or(EINVAL)?;
        assert!(waits(&last, HZ_MS));
        Ok(())
    }

    #[test]
    fn basic_test_a_queue_of_jobs_in_a_single_entity() -> Result {
        basic_test(1, false)
    }

    #[test]
    fn basic_test_a_chain_of_dependent_jobs_across_multiple_entities() -> Result {
        // drm_sched's parameter says "multiple" but uses one entity with a chain.
        basic_test(1, true)
    }

    #[test]
    fn basic_test_multiple_independent_job_queues() -> Result {
        basic_test(4, false)
    }

    #[test]
    fn basic_test_multiple_inter_dependent_job_queues() -> Result {
        basic_test(4, true)
    }

    #[test]
    fn basic_entity_cleanup() -> Result {
        const QD: usize = 100;
        let sched = mock_sched(None, u32::MAX)?;
        let mut ents = KVec::new();
        for _ in 0..4 {
            ents.push(Entity::new(&sched, Priority::Normal)?, GFP_KERNEL)?;
        }
        let mut finished: KVec<ARef<Fence>> = KVec::new();
        for i in 0..QD {
            let job = submit(&ents[i % 4], 1000, 0, finished.last())?;
            finished.push(job.finished, GFP_KERNEL)?;
        }
        assert!(waits(&finished[QD / 2], HZ_MS));
        // Tear the entities down with half the queue pending.
        drop(ents);
        // Every fence completes: jobs on the hardware normally, jobs still queued when their
        // entity went (how many depends on timing) with ESRCH; nothing else.
        for f in finished.iter() {
            assert!(waits(f, 5 * HZ_MS));
            assert!(matches!(f.status(), Ok(true) | Err(ESRCH)));
        }
        Ok(())
    }

    #[test]
    fn basic_cancel() -> Result {
        let sched = mock_sched(None, u32::MAX)?;
        let entity = Entity::new(&sched, Priority::Normal)?;
        let job = submit(&entity, 0, 0, None)?;
        assert!(waits(&job.scheduled, HZ_MS));
        drop(entity);
        drop(sched);
        let hw = job.hw.hw_fence().ok_or(EINVAL)?;
        assert_eq!(hw.status(), Err(crate::dma_fence::ecanceled()));
        assert_eq!(job.finished.status(), Err(crate::dma_fence::ecanceled()));
        Ok(())
    }

    #[test]
    fn basic_timeout() -> Result {
        let sched = mock_sched(Some(HZ_MS / 5), u32::MAX)?;
        let entity = Entity::new(&sched, Priority::Normal)?;
        let job = submit(&entity, 0, 0, None)?;
        assert!(waits(&job.scheduled, HZ_MS));
        assert!(!waits(&job.finished, HZ_MS / 10));
        assert_eq!(job.hw.flags.load(Relaxed) & TIMEDOUT, 0);
        fsleep(Delta::from_millis(HZ_MS / 5));
        assert_ne!(job.hw.flags.load(Relaxed) & TIMEDOUT, 0);
        assert!(waits(&job.finished, HZ_MS));
        assert_eq!(job.finished.status(), Err(ETIMEDOUT));
        Ok(())
    }

    #[test]
    fn skip_reset() -> Result {
        let sched = mock_sched(Some(HZ_MS / 5), u32::MAX)?;
        let entity = Entity::new(&sched, Priority::Normal)?;
        let job = submit(&entity, 0, DONT_RESET, None)?;
        assert!(!waits(&job.finished, 2 * HZ_MS / 5));
        assert_ne!(job.hw.flags.load(Relaxed) & RESET_SKIPPED, 0);
        assert_eq!(sched.backend().advance(1), 1);
        assert!(waits(&job.finished, HZ_MS));
        assert_eq!(job.finished.status(), Ok(true));
        Ok(())
    }

    #[test]
    fn no_device_stops_the_scheduler() -> Result {
        // Not in drm_sched's suite: DRM_GPU_SCHED_STAT_ENODEV.
        let sched = mock_sched(Some(HZ_MS / 5), 1)?;
        let entity = Entity::new(&sched, Priority::Normal)?;
        let running = submit(&entity, 0, NO_DEVICE, None)?;
        // Behind it (one credit): never runs.
        let queued = submit(&entity, 0, 0, None)?;
        assert!(waits(&running.scheduled, HZ_MS));
        assert!(waits(&running.finished, 2 * HZ_MS));
        // The backend cancelled the job on the hardware; the queued one never ran.
        assert_eq!(
            running.finished.status(),
            Err(crate::dma_fence::ecanceled())
        );
        assert!(waits(&queued.finished, HZ_MS));
        assert_eq!(queued.finished.status(), Err(ENODEV));
        assert!(queued.hw.hw_fence().is_none());
        // The scheduler is stopped: nothing new is accepted.
        assert_eq!(entity.job(1, MockGpu::job(0, 0)?).err(), Some(ENODEV));
        Ok(())
    }
}

#[macros::kunit_tests(vagx_sched_basic_priority)]
mod priority {
    use super::*;

    fn all_priorities(qd: usize, change: bool) -> Result {
        let sched = mock_sched(None, u32::MAX)?;
        let mut ents = KVec::new();
        for p in Priority::ALL {
            ents.push(Entity::new(&sched, p)?, GFP_KERNEL)?;
        }
        let mut last = None;
        for i in 0..qd {
            last = Some(submit(&ents[i % ents.len()], 1000, 0, None)?.finished);
        }
        let last = last.ok_or(EINVAL)?;
        if change {
            // Cycle every entity's priority every 200-500 us until the last job is done.
            let mut step = 0usize;
            while !last.is_signaled() {
                for e in ents.iter() {
                    let next = Priority::ALL[(e.priority() as usize + 1) % Priority::ALL.len()];
                    e.set_priority(next);
                }
                step += 1;
                fsleep(Delta::from_micros(200 + (step as i64 * 37) % 300));
            }
        }
        assert!(waits(&last, if change { 10 * HZ_MS } else { HZ_MS }));
        Ok(())
    }

    #[test]
    fn priorities() -> Result {
        all_priorities(100, false)
    }

    #[test]
    fn change_priority() -> Result {
        all_priorities(1000, true)
    }
}

#[macros::kunit_tests(vagx_sched_basic_modify_sched)]
mod modify_sched {
    use super::*;

    #[test]
    fn test_modify_sched() -> Result {
        const QD: usize = 1000;
        let mut scheds = KVec::new();
        for _ in 0..3 {
            scheds.push(mock_sched(None, u32::MAX)?, GFP_KERNEL)?;
        }
        let mut ents = KVec::new();
        for i in 0..13 {
            ents.push(Entity::new(&scheds[i % 3], Priority::Normal)?, GFP_KERNEL)?;
        }
        let mut last = None;
        for i in 0..QD {
            last = Some(submit(&ents[i % 13], 1000, 0, None)?.finished);
        }
        let last = last.ok_or(EINVAL)?;
        let (mut cur_ent, mut cur_sched, mut step) = (0usize, 0usize, 0i64);
        while !last.is_signaled() {
            fsleep(Delta::from_micros(200 + (step * 53) % 300));
            step += 1;
            cur_ent = (cur_ent + 1) % 13;
            cur_sched = (cur_sched + 1) % 3;
            ents[cur_ent].modify_sched(&[&scheds[cur_sched]])?;
        }
        assert!(waits(&last, HZ_MS));
        Ok(())
    }

    #[test]
    fn an_idle_entity_moves_to_the_least_loaded_scheduler() -> Result {
        let (a, b) = (mock_sched(None, u32::MAX)?, mock_sched(None, u32::MAX)?);
        let mover = Entity::new_on(&[&a, &b], Priority::Normal)?;
        let busy = Entity::new(&a, Priority::Normal)?;
        // Load `a` with two jobs that run until advanced.
        let (x, y) = (submit(&busy, 0, 0, None)?, submit(&busy, 0, 0, None)?);
        // The idle entity's next job goes to `b`, the less loaded.
        let job = submit(&mover, 0, 0, None)?;
        assert!(waits(&job.scheduled, HZ_MS));
        assert_eq!(b.backend().running(), 1);
        // Not idle any more: the next job follows on `b`, whatever the load.
        let next = submit(&mover, 0, 0, None)?;
        assert!(waits(&next.scheduled, HZ_MS));
        assert_eq!(b.backend().running(), 2);
        assert_eq!(b.backend().advance(2), 2);
        assert!(waits(&next.finished, HZ_MS));
        // Pinned to `a` now: idle, so it moves there even though `a` is busier.
        mover.modify_sched(&[&a])?;
        let on_a = submit(&mover, 0, 0, None)?;
        assert!(waits(&on_a.scheduled, HZ_MS));
        assert_eq!(a.backend().running(), 3);
        assert_eq!(a.backend().advance(3), 3);
        for j in [&x, &y, &on_a] {
            assert!(waits(&j.finished, HZ_MS));
        }
        Ok(())
    }
}

#[macros::kunit_tests(vagx_sched_basic_credits)]
mod credits {
    use super::*;

    #[test]
    fn test_credits() -> Result {
        let sched = mock_sched(None, 1)?;
        let entity = Entity::new(&sched, Priority::Normal)?;
        let a = submit(&entity, 0, 0, None)?;
        let b = submit(&entity, 0, 0, None)?;
        assert!(waits(&a.scheduled, HZ_MS));
        assert!(!waits(&b.scheduled, HZ_MS));
        assert_eq!(sched.backend().advance(1), 1);
        assert!(waits(&b.scheduled, HZ_MS));
        assert_eq!(sched.backend().advance(1), 1);
        assert!(waits(&b.finished, HZ_MS));
        Ok(())
    }

    #[test]
    fn credits_above_the_limit_are_an_error() -> Result {
        let sched = mock_sched(None, 2)?;
        let entity = Entity::new(&sched, Priority::Normal)?;
        assert_eq!(entity.job(3, MockGpu::job(0, 0)?).err(), Some(EINVAL));
        assert_eq!(entity.job(0, MockGpu::job(0, 0)?).err(), Some(EINVAL));
        assert!(entity.job(2, MockGpu::job(0, 0)?).is_ok());
        Ok(())
    }
}

#[macros::kunit_tests(vagx_sched_own)]
mod own {
    use super::*;
    use crate::dma_fence::{FenceContext, PreparedFence};

    #[test]
    fn failed_dependency_fails_the_job_without_running_it() -> Result {
        let sched = mock_sched(None, u32::MAX)?;
        let entity = Entity::new(&sched, Priority::Normal)?;
        let ctx = FenceContext::new(c"vagx-sched-test", c"dep");
        let dep = ctx.init(PreparedFence::new(GFP_KERNEL)?, ());
        let job = submit(&entity, 0, 0, Some(&dep.fence().into()))?;
        assert!(!waits(&job.scheduled, HZ_MS / 10));
        dep.signal_with_error(EIO);
        assert!(waits(&job.finished, HZ_MS));
        assert_eq!(job.finished.status(), Err(EIO));
        assert!(job.hw.hw_fence().is_none());
        assert_eq!(sched.backend().running(), 0);
        Ok(())
    }

    #[test]
    fn dependencies_are_deduplicated_per_context() -> Result {
        let sched = mock_sched(None, u32::MAX)?;
        let entity = Entity::new(&sched, Priority::Normal)?;
        let ctx = FenceContext::new(c"vagx-sched-test", c"dep");
        let (a, b) = (
            ctx.init(PreparedFence::new(GFP_KERNEL)?, ()),
            ctx.init(PreparedFence::new(GFP_KERNEL)?, ()),
        );
        let mut job = entity.job(1, MockGpu::job(0, 0)?)?;
        job.add_dependency(b.fence().into())?;
        job.add_dependency(a.fence().into())?;
        assert_eq!(job.dependency_count(), 1);
        let guard = entity.begin_submit()?;
        let armed = guard.arm(job);
        let scheduled = armed.scheduled();
        let finished = armed.push();
        drop(guard);
        a.signal();
        // Only the later fence (b) holds the job back.
        assert!(!waits(&scheduled, HZ_MS / 10));
        b.signal();
        assert!(waits(&scheduled, HZ_MS));
        assert_eq!(sched.backend().advance(1), 1);
        assert!(waits(&finished, HZ_MS));
        Ok(())
    }

    #[test]
    fn a_dependency_on_the_same_scheduler_is_pipelined() -> Result {
        let sched = mock_sched(None, u32::MAX)?;
        let (e1, e2) = (
            Entity::new(&sched, Priority::Normal)?,
            Entity::new(&sched, Priority::Normal)?,
        );
        let first = submit(&e1, 0, 0, None)?;
        assert!(waits(&first.scheduled, HZ_MS));
        // `first` is on the hardware: a job depending on its finished fence runs right away,
        // since the hardware orders it after `first`.
        let second = submit(&e2, 0, 0, Some(&first.finished))?;
        assert!(waits(&second.scheduled, HZ_MS));
        assert!(!first.finished.is_signaled());
        assert_eq!(sched.backend().advance(2), 2);
        assert!(waits(&second.finished, HZ_MS));
        Ok(())
    }

    #[test]
    fn kill_waits_for_the_jobs_own_dependencies() -> Result {
        let sched = mock_sched(None, u32::MAX)?;
        let entity = Entity::new(&sched, Priority::Normal)?;
        let ctx = FenceContext::new(c"vagx-sched-test", c"dep");
        let dep = ctx.init(PreparedFence::new(GFP_KERNEL)?, ());
        let job = submit(&entity, 0, 0, Some(&dep.fence().into()))?;
        entity.kill();
        assert!(!waits(&job.finished, HZ_MS / 10));
        dep.signal();
        assert!(waits(&job.finished, HZ_MS));
        assert_eq!(job.finished.status(), Err(ESRCH));
        assert!(job.hw.hw_fence().is_none());
        assert_eq!(
            entity.job(1, MockGpu::job(0, 0)?).err(),
            Some(crate::dma_fence::ecanceled())
        );
        Ok(())
    }

    #[test]
    fn repeated_hangs_ban_the_entity_and_spare_the_others() -> Result {
        let sched = mock_sched(Some(50), u32::MAX)?;
        let (bad, good) = (
            Entity::new(&sched, Priority::Normal)?,
            Entity::new(&sched, Priority::Normal)?,
        );
        for _ in 0..3 {
            let hang = submit(&bad, 0, 0, None)?;
            assert!(waits(&hang.finished, 5 * HZ_MS));
            assert_eq!(hang.finished.status(), Err(ETIMEDOUT));
        }
        assert!(bad.is_banned());
        assert_eq!(
            bad.job(1, MockGpu::job(0, 0)?).err(),
            Some(crate::dma_fence::ecanceled())
        );
        let ok = submit(&good, 1000, 0, None)?;
        assert!(waits(&ok.finished, HZ_MS));
        assert_eq!(ok.finished.status(), Ok(true));
        Ok(())
    }

    #[test]
    fn dropping_the_scheduler_with_jobs_queued_and_in_flight() -> Result {
        let sched = mock_sched(None, 1)?;
        let entity = Entity::new(&sched, Priority::Normal)?;
        let running = submit(&entity, 0, 0, None)?;
        let queued = submit(&entity, 0, 0, None)?;
        assert!(waits(&running.scheduled, HZ_MS));
        drop(sched);
        assert_eq!(
            running.finished.status(),
            Err(crate::dma_fence::ecanceled())
        );
        assert_eq!(queued.finished.status(), Err(crate::dma_fence::ecanceled()));
        assert_eq!(entity.job(1, MockGpu::job(0, 0)?).err(), Some(ENODEV));
        Ok(())
    }

    #[test]
    fn deadline_on_finished_reaches_the_hardware_fence() -> Result {
        let sched = mock_sched(None, 1)?;
        let entity = Entity::new(&sched, Priority::Normal)?;
        let blocker = submit(&entity, 0, 0, None)?;
        let job = submit(&entity, 0, 0, None)?;
        let deadline = crate::time::Instant::now() + Delta::from_millis(5);
        job.finished.set_deadline(deadline);
        assert!(waits(&blocker.scheduled, HZ_MS));
        assert_eq!(sched.backend().advance(1), 1);
        assert!(waits(&blocker.finished, HZ_MS));
        assert!(waits(&job.scheduled, HZ_MS));
        let forwarded = sched.backend().hw_deadline(&job.hw).map(|d| d.as_nanos());
        assert!(forwarded == Some(deadline.as_nanos()));
        assert_eq!(sched.backend().advance(1), 1);
        Ok(())
    }

    #[test]
    fn a_low_job_a_high_job_waits_for_inherits_its_priority() -> Result {
        let sched = mock_sched(None, 1)?;
        let (kernel, hog, low, high) = (
            Entity::new(&sched, Priority::Kernel)?,
            Entity::new(&sched, Priority::Normal)?,
            Entity::new(&sched, Priority::Low)?,
            Entity::new(&sched, Priority::High)?,
        );
        // Hold the hardware until everything is queued.
        let blocker = submit(&kernel, 0, 0, None)?;
        assert!(waits(&blocker.scheduled, HZ_MS));
        let mut last = None;
        for _ in 0..30 {
            last = Some(submit(&hog, 2000, 0, None)?.finished);
        }
        let l = submit(&low, 1000, 0, None)?;
        let h = submit(&high, 1000, 0, Some(&l.finished))?;
        assert_eq!(sched.backend().advance(1), 1);
        assert!(waits(&h.finished, 5 * HZ_MS));
        // Without inheritance Low would wait for all 30 Normal jobs, and High with it.
        let hog_done = hog.usage().jobs_done;
        pr_info!("vagx_sched priority inheritance: {hog_done} hog jobs before the High one\n");
        assert!(hog_done <= 1);
        let last = last.ok_or(EINVAL)?;
        assert!(waits(&last, 5 * HZ_MS));
        Ok(())
    }

    #[test]
    fn bypass_runs_a_job_from_push_on_an_idle_scheduler() -> Result {
        let sched = mock_sched(None, u32::MAX)?;
        let entity = Entity::new(&sched, Priority::Normal)?;
        let job = submit(&entity, 0, 0, None)?;
        // No worker round trip: on the hardware when push returns.
        assert!(job.scheduled.is_signaled());
        assert_eq!(sched.backend().running(), 1);
        // A job with a dependency is never bypassed.
        let ctx = FenceContext::new(c"vagx-sched-test", c"dep");
        let dep = ctx.init(PreparedFence::new(GFP_KERNEL)?, ());
        let waiting = submit(&entity, 0, 0, Some(&dep.fence().into()))?;
        assert!(!waiting.scheduled.is_signaled());
        dep.signal();
        assert!(waits(&waiting.scheduled, HZ_MS));
        assert_eq!(sched.backend().advance(2), 2);
        assert!(waits(&waiting.finished, HZ_MS));
        Ok(())
    }

    #[test]
    fn a_completion_starts_the_next_job_without_the_worker() -> Result {
        let sched = mock_sched(None, 1)?;
        let entity = Entity::new(&sched, Priority::Normal)?;
        let first = submit(&entity, 0, 0, None)?;
        let second = submit(&entity, 1000, 0, None)?;
        let ctx = FenceContext::new(c"vagx-sched-test", c"dep");
        let dep = ctx.init(PreparedFence::new(GFP_KERNEL)?, ());
        let dep_fence: ARef<Fence> = dep.fence().into();
        let third = submit(&entity, 1000, 0, Some(&dep_fence))?;
        assert!(waits(&first.scheduled, HZ_MS));
        assert!(!second.scheduled.is_signaled());
        {
            // The worker (and the bypass) cannot run jobs while this is held.
            let _worker = sched.shared.run_lock.lock();
            assert_eq!(sched.backend().advance(1), 1);
            // The completion started the second job, and it ran to its end on the hardware.
            assert!(waits(&second.scheduled, HZ_MS));
            let hw = second.hw.hw_fence().ok_or(EINVAL)?;
            assert!(hw
                .wait(Some(Delta::from_millis(HZ_MS)), Interruptible::No)
                .is_ok());
            // Its completion's irq_work has run to its end: the credits are back and the right
            // to run jobs is free (the worker cannot take it while `run_lock` is held). Only
            // then is the third's dependency signalled, or that irq_work could start it.
            let mut settled = false;
            for _ in 0..HZ_MS {
                let back = sched.shared.state.lock().credits_used == 0;
                if back && !sched.shared.runner.load(crate::sync::atomic::Acquire) {
                    settled = true;
                    break;
                }
                fsleep(Delta::from_millis(1));
            }
            assert!(settled);
            // Completing it (its finished fence) is the worker's.
            assert!(!second.finished.is_signaled());
            // The third waited for a fence when the second completed; its signal wakes only the
            // worker, so it does not start.
            dep.signal();
            fsleep(Delta::from_millis(10));
            assert!(third.hw.hw_fence().is_none());
        }
        assert!(waits(&second.finished, HZ_MS));
        assert!(waits(&third.finished, HZ_MS));
        assert_eq!(third.finished.status(), Ok(true));
        Ok(())
    }

    #[test]
    fn dump_shows_run_queues() -> Result {
        /// A fixed-size text buffer.
        struct Buf {
            bytes: [u8; 512],
            len: usize,
        }
        impl core::fmt::Write for Buf {
            fn write_str(&mut self, s: &str) -> core::fmt::Result {
                let end = self.len + s.len();
                self.bytes
                    .get_mut(self.len..end)
                    .ok_or(core::fmt::Error)?
                    .copy_from_slice(s.as_bytes());
                self.len = end;
                Ok(())
            }
        }
        let sched = mock_sched(None, 4)?;
        let (a, b) = (
            Entity::new(&sched, Priority::High)?,
            Entity::new(&sched, Priority::Low)?,
        );
        let job = submit(&a, 0, 0, None)?;
        assert!(waits(&job.scheduled, HZ_MS));
        b.kill();
        let mut buf = Buf {
            bytes: [0; 512],
            len: 0,
        };
        assert!(sched.dump(&mut buf).is_ok());
        let text = core::str::from_utf8(&buf.bytes[..buf.len]).map_err(|_| EINVAL)?;
        assert!(text.starts_with("vagx-mock: policy Fifo, credits 1/4, on hardware 1, jobs 1\n"));
        assert!(text.contains("entity 0: High queued 0 running 1"));
        assert!(text.contains("entity 1: Low queued 0 running 0") && text.contains(" killed"));
        // The debugfs view shows the same text, and a debugfs file can be made of it.
        let mut shown = Buf {
            bytes: [0; 512],
            len: 0,
        };
        assert!(core::fmt::write(&mut shown, format_args!("{:?}", sched.debugfs_view())).is_ok());
        assert_eq!(&shown.bytes[..shown.len], &buf.bytes[..buf.len]);
        let dir = crate::debugfs::Dir::new(c"vagx_sched_test");
        let file = KBox::pin_init(
            dir.read_only_file(c"sched", sched.debugfs_view()),
            GFP_KERNEL,
        );
        assert!(file.is_ok());
        assert_eq!(sched.backend().advance(1), 1);
        assert!(waits(&job.finished, HZ_MS));
        Ok(())
    }

    #[test]
    fn tracepoints_fire_for_queue_dependency_run_done_and_timeout() -> Result {
        use super::super::trace::counter::{Event, TraceCounter};
        let counter = TraceCounter::start()?;
        let sched = mock_sched(Some(HZ_MS / 10), u32::MAX)?;
        let (a, b) = (
            Entity::new(&sched, Priority::Normal)?,
            Entity::new(&sched, Priority::Normal)?,
        );
        // A job that waits for an outside fence: queued, one dependency, unschedulable.
        let ctx = FenceContext::new(c"vagx-sched-test", c"dep");
        let dep = ctx.init(PreparedFence::new(GFP_KERNEL)?, ());
        let waiting = submit(&a, 1000, 0, Some(&dep.fence().into()))?;
        assert!(!waits(&waiting.scheduled, HZ_MS / 20));
        assert_eq!(counter.count(Event::Queue), 1);
        assert_eq!(counter.count(Event::AddDep), 1);
        assert!(counter.count(Event::Unschedulable) >= 1);
        assert_eq!(counter.count(Event::Run), 0);
        dep.signal();
        assert!(waits(&waiting.finished, HZ_MS));
        assert_eq!(counter.count(Event::Run), 1);
        assert_eq!(counter.count(Event::Done), 1);
        assert_eq!(counter.last_done_error(), 0);
        // A job that hangs: run, timeout, done with ETIMEDOUT.
        let hang = submit(&b, 0, 0, None)?;
        assert!(waits(&hang.finished, HZ_MS));
        assert_eq!(counter.count(Event::Queue), 2);
        assert_eq!(counter.count(Event::Run), 2);
        assert_eq!(counter.count(Event::Timeout), 1);
        assert_eq!(counter.count(Event::Done), 2);
        assert_eq!(counter.last_done_error(), ETIMEDOUT.to_errno());
        Ok(())
    }

    #[test]
    fn many_entities() -> Result {
        const N: usize = 4096;
        let sched = mock_sched(None, u32::MAX)?;
        let mut ents = KVec::with_capacity(N, GFP_KERNEL)?;
        for _ in 0..N {
            ents.push(Entity::new(&sched, Priority::Normal)?, GFP_KERNEL)?;
        }
        let mut fins = KVec::with_capacity(N, GFP_KERNEL)?;
        for e in ents.iter() {
            fins.push(submit(e, 1, 0, None)?.finished, GFP_KERNEL)?;
        }
        for f in fins.iter() {
            assert!(waits(f, 10 * HZ_MS));
        }
        Ok(())
    }
}

#[macros::kunit_tests(vagx_sched_policy)]
mod policy {
    use super::*;
    use crate::drm::sched::PolicyKind;

    /// How many of `fences` signalled before `than` did (by their timestamps).
    fn signalled_before(fences: &[ARef<Fence>], than: &Fence) -> Result<u64> {
        let than = than.timestamp().ok_or(EINVAL)?;
        Ok(fences
            .iter()
            .filter(|f| {
                f.timestamp()
                    .is_some_and(|t| t.as_nanos() < than.as_nanos())
            })
            .count() as u64)
    }

    /// A Normal and a Low entity with 40 queued 1 ms jobs each behind a blocker; returns how
    /// many Low jobs had started when the last Normal job started (by the scheduled fences'
    /// timestamps, so the test thread's own wake-up latency does not count).
    fn low_share(policy: PolicyKind) -> Result<u64> {
        const JOBS: usize = 40;
        let sched = mock_sched(None, 1)?;
        sched.set_policy(policy);
        let kernel = Entity::new(&sched, Priority::Kernel)?;
        let (normal, low) = (
            Entity::new(&sched, Priority::Normal)?,
            Entity::new(&sched, Priority::Low)?,
        );
        let blocker = submit(&kernel, 0, 0, None)?;
        assert!(waits(&blocker.scheduled, HZ_MS));
        let mut last_normal = None;
        let mut low_started = KVec::with_capacity(JOBS, GFP_KERNEL)?;
        let mut last_low = None;
        for _ in 0..JOBS {
            last_normal = Some(submit(&normal, 1000, 0, None)?.scheduled);
            let l = submit(&low, 1000, 0, None)?;
            low_started.push(l.scheduled, GFP_KERNEL)?;
            last_low = Some(l.finished);
        }
        assert_eq!(sched.backend().advance(1), 1);
        let (last_normal, last_low) = (last_normal.ok_or(EINVAL)?, last_low.ok_or(EINVAL)?);
        assert!(waits(&last_low, 10 * HZ_MS));
        signalled_before(&low_started, &last_normal)
    }

    #[test]
    fn fair_gives_low_a_share_where_fifo_does_not() -> Result {
        // Strict priority: Low starts only once Normal has nothing queued.
        assert_eq!(low_share(PolicyKind::Fifo)?, 0);
        assert_eq!(low_share(PolicyKind::RoundRobin)?, 0);
        // FAIR: Low's time costs 8x Normal's, so it gets about one job in nine.
        let fair = low_share(PolicyKind::Fair)?;
        pr_info!("vagx_sched policy: Low jobs started beside 40 Normal ones under FAIR: {fair}\n");
        assert!(fair >= 3);
        Ok(())
    }

    #[test]
    fn switching_policy_with_jobs_queued() -> Result {
        const JOBS: usize = 40;
        let sched = mock_sched(None, 1)?;
        assert!(sched.policy() == PolicyKind::Fifo);
        let kernel = Entity::new(&sched, Priority::Kernel)?;
        let (normal, low) = (
            Entity::new(&sched, Priority::Normal)?,
            Entity::new(&sched, Priority::Low)?,
        );
        let blocker = submit(&kernel, 0, 0, None)?;
        assert!(waits(&blocker.scheduled, HZ_MS));
        let (mut last_normal, mut last_low) = (None, None);
        for _ in 0..JOBS {
            last_normal = Some(submit(&normal, 1000, 0, None)?.finished);
            last_low = Some(submit(&low, 1000, 0, None)?.finished);
        }
        assert_eq!(sched.backend().advance(1), 1);
        let mut polls = 0;
        while normal.usage().jobs_done < 5 && polls < 5000 {
            fsleep(Delta::from_micros(500));
            polls += 1;
        }
        // FIFO so far: strict priority, Low has not run.
        assert!(normal.usage().jobs_done >= 5);
        assert_eq!(low.usage().jobs_done, 0);
        sched.set_policy(PolicyKind::Fair);
        let (last_normal, last_low) = (last_normal.ok_or(EINVAL)?, last_low.ok_or(EINVAL)?);
        assert!(waits(&last_normal, 10 * HZ_MS));
        // FAIR from the switch on: Low gets a share before Normal is done.
        assert!(low.usage().jobs_done >= 1);
        assert!(waits(&last_low, 10 * HZ_MS));
        Ok(())
    }

    /// A hog with 20 queued 5 ms jobs, then an interactive 1 ms job; returns how many hog jobs
    /// had started when the interactive job was submitted and when it started (by the
    /// scheduled fences' timestamps).
    fn interactive_wait(policy: PolicyKind) -> Result<(u64, u64)> {
        let sched = mock_sched(None, 1)?;
        sched.set_policy(policy);
        let (hog, interactive) = (
            Entity::new(&sched, Priority::Normal)?,
            Entity::new(&sched, Priority::Normal)?,
        );
        let mut started = KVec::with_capacity(20, GFP_KERNEL)?;
        let mut last = None;
        for _ in 0..20 {
            let h = submit(&hog, 5000, 0, None)?;
            started.push(h.scheduled, GFP_KERNEL)?;
            last = Some(h.finished);
        }
        fsleep(Delta::from_millis(12));
        let submitted_at = crate::time::Instant::<crate::time::Monotonic>::now();
        let job = submit(&interactive, 1000, 0, None)?;
        assert!(waits(&job.finished, 5 * HZ_MS));
        let last = last.ok_or(EINVAL)?;
        assert!(waits(&last, 5 * HZ_MS));
        let before = started
            .iter()
            .filter(|f| {
                f.timestamp()
                    .is_some_and(|t| t.as_nanos() < submitted_at.as_nanos())
            })
            .count() as u64;
        Ok((before, signalled_before(&started, &job.scheduled)?))
    }

    #[test]
    fn fair_runs_an_interactive_job_ahead_of_a_queued_hog() -> Result {
        let fifo = interactive_wait(PolicyKind::Fifo)?;
        let fair = interactive_wait(PolicyKind::Fair)?;
        pr_info!(
            "vagx_sched policy: hog jobs started while the interactive one waited: fifo {}, fair {}\n",
            fifo.1 - fifo.0,
            fair.1 - fair.0
        );
        // FIFO: behind every queued hog job. FAIR: next, once the job on the hardware ends (a
        // hog job may start in the instant between the clock read and the push).
        assert_eq!(fifo.1, 20);
        assert!(fair.1 - fair.0 <= 1);
        Ok(())
    }
}
