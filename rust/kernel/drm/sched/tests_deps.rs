// SPDX-License-Identifier: GPL-2.0

//! The dependency rules: when a wait may be pipelined (the backend orders the two jobs on one
//! ring), when it must wait for completion, and how a failed dependency fails its dependent.
//!
//! The mock has several rings that complete independently ([`MockGpu::with_rings`]); each case
//! submits the producer on one ring and the consumer on the same or another. The hardware-wait
//! cases ([`super::Job::add_hardware_wait`]) check the scheduler's side of a firmware barrier:
//! when the consumer starts, which error it ends with, and that it completes after its
//! producer.

use super::{
    mock::{MockGpu, MockJobState, REFUSE_RUN},
    tests_basic::{waits, HZ_MS},
    Entity, Priority, Scheduler, SchedulerConfig,
};
use crate::{
    dma_fence::{
        chain::{self, PreparedChain},
        Fence, FenceContext, PreparedFence,
    },
    prelude::*,
    sync::{aref::ARef, Arc},
    time::Delta,
};

/// Long enough for a wrongly started job to show up, short enough for a suite.
const SETTLE_MS: i64 = 100;

fn sched_with(gpu: MockGpu) -> Result<Scheduler<MockGpu>> {
    let mut config = SchedulerConfig::new(c"vagx-mock-deps", u32::MAX);
    config.policy = super::PolicyKind::Fifo;
    config.timeout = None::<Delta>;
    Scheduler::new(config, gpu)
}

struct Submitted {
    scheduled: ARef<Fence>,
    finished: ARef<Fence>,
    hw: Arc<MockJobState>,
}

/// Submits a job of `entity` on `ring` (completed by hand) after `deps`.
fn submit_on(entity: &Entity<MockGpu>, ring: usize, deps: &[&ARef<Fence>]) -> Result<Submitted> {
    let data = MockGpu::job_on(ring, 0, 0)?;
    let hw = data.state.clone();
    let mut job = entity.job(1, data)?;
    for dep in deps {
        job.add_dependency((*dep).clone())?;
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

/// Submits a job of `entity` on `ring` that the (mock) hardware orders after `producer`
/// ([`super::Job::add_hardware_wait`]).
fn submit_after(
    entity: &Entity<MockGpu>,
    ring: usize,
    flags: u32,
    producer: &Submitted,
) -> Result<Submitted> {
    let data = MockGpu::job_on(ring, 0, flags)?;
    let hw = data.state.clone();
    let mut job = entity.job(1, data)?;
    job.add_hardware_wait(producer.scheduled.clone(), producer.finished.clone())?;
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

/// Two Normal entities of `sched`: a producer's and a consumer's.
fn two_entities(sched: &Scheduler<MockGpu>) -> Result<(Entity<MockGpu>, Entity<MockGpu>)> {
    Ok((
        Entity::new(sched, Priority::Normal)?,
        Entity::new(sched, Priority::Normal)?,
    ))
}

#[macros::kunit_tests(vagx_sched_deps)]
mod deps {
    use super::*;

    #[test]
    fn a_dependency_on_a_running_job_of_another_ring_waits_for_it_to_complete() -> Result {
        let sched = sched_with(MockGpu::with_rings(2)?)?;
        let (e1, e2) = two_entities(&sched)?;
        let producer = submit_on(&e1, 0, &[])?;
        assert!(waits(&producer.scheduled, HZ_MS));
        // On the hardware, but on ring 0: nothing orders ring 1 after it.
        let consumer = submit_on(&e2, 1, &[&producer.finished])?;
        assert!(!waits(&consumer.scheduled, SETTLE_MS));
        assert!(consumer.hw.hw_fence().is_none());
        assert_eq!(sched.backend().advance_ring(0, 1), 1);
        assert!(waits(&consumer.scheduled, HZ_MS));
        assert_eq!(sched.backend().advance_ring(1, 1), 1);
        assert!(waits(&consumer.finished, HZ_MS));
        assert_eq!(consumer.finished.status(), Ok(true));
        Ok(())
    }

    #[test]
    fn a_dependency_on_a_queued_job_of_another_ring_waits_for_it_to_complete() -> Result {
        let sched = sched_with(MockGpu::with_rings(2)?)?;
        let (e1, e2) = two_entities(&sched)?;
        let ctx = FenceContext::new(c"vagx-sched-test", c"gate");
        let gate = ctx.init(PreparedFence::new(GFP_KERNEL)?, ());
        let gate_ref: ARef<Fence> = gate.fence().into();
        // Queued behind the gate: not on the hardware when the consumer is created.
        let producer = submit_on(&e1, 0, &[&gate_ref])?;
        let consumer = submit_on(&e2, 1, &[&producer.finished])?;
        gate.signal();
        assert!(waits(&producer.scheduled, HZ_MS));
        // Started, not completed: the consumer still waits.
        assert!(!waits(&consumer.scheduled, SETTLE_MS));
        assert_eq!(sched.backend().advance_ring(0, 1), 1);
        assert!(waits(&consumer.scheduled, HZ_MS));
        assert_eq!(sched.backend().advance_ring(1, 1), 1);
        assert!(waits(&consumer.finished, HZ_MS));
        Ok(())
    }

    #[test]
    fn a_job_of_its_own_entity_on_another_ring_is_waited_for() -> Result {
        let sched = sched_with(MockGpu::with_rings(2)?)?;
        let entity = Entity::new(&sched, Priority::Normal)?;
        let first = submit_on(&entity, 0, &[])?;
        assert!(waits(&first.scheduled, HZ_MS));
        let second = submit_on(&entity, 1, &[&first.finished])?;
        assert!(!waits(&second.scheduled, SETTLE_MS));
        assert_eq!(sched.backend().advance_ring(0, 1), 1);
        assert!(waits(&second.scheduled, HZ_MS));
        assert_eq!(sched.backend().advance_ring(1, 1), 1);
        assert!(waits(&second.finished, HZ_MS));
        Ok(())
    }

    #[test]
    fn a_backend_that_promises_no_order_gets_no_pipelining() -> Result {
        let sched = sched_with(MockGpu::new()?.unordered())?;
        let (e1, e2) = two_entities(&sched)?;
        let producer = submit_on(&e1, 0, &[])?;
        assert!(waits(&producer.scheduled, HZ_MS));
        let consumer = submit_on(&e2, 0, &[&producer.finished])?;
        assert!(!waits(&consumer.scheduled, SETTLE_MS));
        assert_eq!(sched.backend().advance(1), 1);
        assert!(waits(&consumer.scheduled, HZ_MS));
        assert_eq!(sched.backend().advance(1), 1);
        assert!(waits(&consumer.finished, HZ_MS));
        Ok(())
    }

    #[test]
    fn a_pipelined_job_takes_the_error_of_the_job_it_ran_behind() -> Result {
        let sched = sched_with(MockGpu::new()?)?;
        let (e1, e2) = two_entities(&sched)?;
        let producer = submit_on(&e1, 0, &[])?;
        assert!(waits(&producer.scheduled, HZ_MS));
        // Same ring: pipelined, it starts at once.
        let consumer = submit_on(&e2, 0, &[&producer.finished])?;
        assert!(waits(&consumer.scheduled, HZ_MS));
        assert!(sched.backend().fail_ring(0, EIO));
        assert!(waits(&producer.finished, HZ_MS));
        assert_eq!(producer.finished.status(), Err(EIO));
        // The consumer's hardware fence is fine; its dependency was not.
        assert_eq!(sched.backend().advance(1), 1);
        assert!(waits(&consumer.finished, HZ_MS));
        assert_eq!(consumer.hw.hw_fence().map(|f| f.status()), Some(Ok(true)));
        assert_eq!(consumer.finished.status(), Err(EIO));
        Ok(())
    }

    #[test]
    fn a_pipelined_job_whose_dependency_failed_first_never_runs() -> Result {
        let sched = sched_with(MockGpu::new()?)?;
        let (e1, e2) = two_entities(&sched)?;
        let ctx = FenceContext::new(c"vagx-sched-test", c"gate");
        let gate = ctx.init(PreparedFence::new(GFP_KERNEL)?, ());
        let gate_ref: ARef<Fence> = gate.fence().into();
        let producer = submit_on(&e1, 0, &[&gate_ref])?;
        // Pipelined behind the queued producer: it waits for its scheduled fence.
        let consumer = submit_on(&e2, 0, &[&producer.finished])?;
        // The producer fails without running; its scheduled fence signals all the same.
        gate.signal_with_error(EPIPE);
        assert!(waits(&producer.finished, HZ_MS));
        assert_eq!(producer.finished.status(), Err(EPIPE));
        assert!(waits(&consumer.finished, HZ_MS));
        assert_eq!(consumer.finished.status(), Err(EPIPE));
        assert!(consumer.hw.hw_fence().is_none());
        assert_eq!(sched.backend().running(), 0);
        Ok(())
    }

    #[test]
    fn a_dependency_of_its_own_ring_is_still_pipelined() -> Result {
        let sched = sched_with(MockGpu::with_rings(2)?)?;
        let (e1, e2) = two_entities(&sched)?;
        let producer = submit_on(&e1, 1, &[])?;
        assert!(waits(&producer.scheduled, HZ_MS));
        let consumer = submit_on(&e2, 1, &[&producer.finished])?;
        assert!(waits(&consumer.scheduled, HZ_MS));
        assert!(!producer.finished.is_signaled());
        assert_eq!(sched.backend().advance_ring(1, 2), 2);
        assert!(waits(&consumer.finished, HZ_MS));
        assert_eq!(consumer.finished.status(), Ok(true));
        Ok(())
    }

    #[test]
    fn a_failed_timeline_point_fails_the_job_without_running_it() -> Result {
        let sched = sched_with(MockGpu::new()?)?;
        let entity = Entity::new(&sched, Priority::Normal)?;
        let ctx = FenceContext::new(c"vagx-sched-test", c"payload");
        let payload = ctx.init(PreparedFence::new(GFP_KERNEL)?, ());
        // Point 1 of a timeline, as a syncobj holds it: a chain node around the payload.
        let point = chain::init(
            PreparedChain::new(GFP_KERNEL)?,
            None,
            payload.fence().into(),
            1,
        );
        let job = submit_on(&entity, 0, &[&point])?;
        payload.signal_with_error(EIO);
        assert!(waits(&job.finished, HZ_MS));
        // The node itself signals without the error; the job takes the payload's.
        assert_eq!(point.status(), Ok(true));
        assert_eq!(job.finished.status(), Err(EIO));
        assert!(job.hw.hw_fence().is_none());
        // A job that waits for the point after it signalled fails the same way.
        let late = submit_on(&entity, 0, &[&point])?;
        assert!(waits(&late.finished, HZ_MS));
        assert_eq!(late.finished.status(), Err(EIO));
        assert!(late.hw.hw_fence().is_none());
        Ok(())
    }

    #[test]
    fn a_hardware_wait_starts_with_its_producer_and_completes_after_it() -> Result {
        // Two schedulers, as in vagx's firmware mode (one per queue).
        let (s1, s2) = (sched_with(MockGpu::new()?)?, sched_with(MockGpu::new()?)?);
        let (e1, e2) = (
            Entity::new(&s1, Priority::Normal)?,
            Entity::new(&s2, Priority::Normal)?,
        );
        let ctx = FenceContext::new(c"vagx-sched-test", c"gate");
        let gate = ctx.init(PreparedFence::new(GFP_KERNEL)?, ());
        let gate_ref: ARef<Fence> = gate.fence().into();
        let producer = submit_on(&e1, 0, &[&gate_ref])?;
        let consumer = submit_after(&e2, 0, 0, &producer)?;
        assert!(!waits(&consumer.scheduled, SETTLE_MS));
        gate.signal();
        // The hardware orders the two: the consumer starts once the producer has.
        assert!(waits(&consumer.scheduled, HZ_MS));
        assert!(!producer.finished.is_signaled());
        // Its hardware finishes first (as two rings may report): it still completes second.
        assert_eq!(s2.backend().advance(1), 1);
        assert!(!waits(&consumer.finished, SETTLE_MS));
        assert_eq!(s1.backend().advance(1), 1);
        assert!(waits(&consumer.finished, HZ_MS));
        assert_eq!(producer.finished.status(), Ok(true));
        assert_eq!(consumer.finished.status(), Ok(true));
        Ok(())
    }

    #[test]
    fn a_hardware_wait_takes_the_error_of_a_producer_that_fails_after_it_ran() -> Result {
        let sched = sched_with(MockGpu::with_rings(2)?)?;
        let (e1, e2) = two_entities(&sched)?;
        let producer = submit_on(&e1, 0, &[])?;
        let consumer = submit_after(&e2, 1, 0, &producer)?;
        assert!(waits(&consumer.scheduled, HZ_MS));
        assert_eq!(sched.backend().advance_ring(1, 1), 1);
        assert!(sched.backend().fail_ring(0, EIO));
        assert!(waits(&consumer.finished, HZ_MS));
        assert_eq!(consumer.hw.hw_fence().map(|f| f.status()), Some(Ok(true)));
        assert_eq!(consumer.finished.status(), Err(EIO));
        Ok(())
    }

    #[test]
    fn a_hardware_wait_on_a_producer_that_failed_first_never_runs() -> Result {
        let sched = sched_with(MockGpu::with_rings(2)?)?;
        let (e1, e2) = two_entities(&sched)?;
        let ctx = FenceContext::new(c"vagx-sched-test", c"gate");
        let gate = ctx.init(PreparedFence::new(GFP_KERNEL)?, ());
        let gate_ref: ARef<Fence> = gate.fence().into();
        let producer = submit_on(&e1, 0, &[&gate_ref])?;
        let consumer = submit_after(&e2, 1, 0, &producer)?;
        gate.signal_with_error(EPIPE);
        assert!(waits(&consumer.finished, HZ_MS));
        assert_eq!(consumer.finished.status(), Err(EPIPE));
        assert!(consumer.hw.hw_fence().is_none());
        assert_eq!(sched.backend().running(), 0);
        Ok(())
    }

    #[test]
    fn a_refused_job_with_a_hardware_wait_fails_with_its_producers_error_after_it() -> Result {
        let sched = sched_with(MockGpu::with_rings(2)?)?;
        let (e1, e2) = two_entities(&sched)?;
        let producer = submit_on(&e1, 0, &[])?;
        // `run_job` refuses it, as vagx's does once it sees its producer failed.
        let consumer = submit_after(&e2, 1, REFUSE_RUN, &producer)?;
        assert!(waits(&consumer.scheduled, HZ_MS));
        assert!(!waits(&consumer.finished, SETTLE_MS));
        assert!(sched.backend().fail_ring(0, EIO));
        assert!(waits(&consumer.finished, HZ_MS));
        assert_eq!(consumer.finished.status(), Err(EIO));
        assert!(consumer.hw.hw_fence().is_none());
        Ok(())
    }

    #[test]
    fn deduplication_keeps_the_later_fence_across_a_seqno_wrap() -> Result {
        let sched = sched_with(MockGpu::new()?)?;
        let entity = Entity::new(&sched, Priority::Normal)?;
        let ctx = FenceContext::new(c"vagx-sched-test", c"wrap");
        ctx.restart_at(u64::from(u32::MAX) - 1);
        let early = ctx.init(PreparedFence::new(GFP_KERNEL)?, ());
        // The 32-bit timeline wrapped: seqno 5 is the later point.
        ctx.restart_at(5);
        let late = ctx.init(PreparedFence::new(GFP_KERNEL)?, ());
        let (early_ref, late_ref): (ARef<Fence>, ARef<Fence>) =
            (early.fence().into(), late.fence().into());
        let job = submit_on(&entity, 0, &[&late_ref, &early_ref])?;
        early.signal();
        assert!(!waits(&job.scheduled, SETTLE_MS));
        late.signal();
        assert!(waits(&job.scheduled, HZ_MS));
        assert_eq!(sched.backend().advance(1), 1);
        assert!(waits(&job.finished, HZ_MS));
        Ok(())
    }
}
