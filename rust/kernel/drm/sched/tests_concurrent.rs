// SPDX-License-Identifier: GPL-2.0

//! drm_sched's concurrent-submission cases (`drm_sched_parallel_submit_test` and
//! `drm_sched_interleaved_submit_test`): several threads submit to one scheduler at once, each
//! through its own entity, with the same parameters as the C suite.
//!
//! Entities and jobs are made on the test's thread; the workers (on the unbound system queue)
//! only arm, push and wait, and count what went wrong instead of asserting.

use super::{
    mock::MockGpu,
    tests_basic::{mock_sched, waits, HZ_MS},
    Entity, Job, Priority, Scheduler,
};
use crate::{
    dma_fence::Fence,
    new_mutex,
    prelude::*,
    sync::{aref::ARef, Arc, Completion, Mutex},
    time::{delay::fsleep, Delta, Instant, Monotonic},
    workqueue,
};
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// What the workers of one case share with the test.
#[pin_data]
struct Shared {
    #[pin]
    go: Completion,
    /// Workers that have finished.
    done: AtomicUsize,
    /// Errors the workers met (failed submits, timed-out waits).
    errors: AtomicUsize,
}

/// One submitting thread.
#[pin_data]
struct Worker {
    entity: Entity<MockGpu>,
    /// Its jobs, taken by the worker.
    #[pin]
    jobs: Mutex<KVec<Job<MockGpu>>>,
    /// The finished fences of the jobs it pushed (room reserved up front).
    #[pin]
    finished: Mutex<KVec<ARef<Fence>>>,
    /// Wait for each job before submitting the next, for at most this long (0: don't wait).
    wait_us: i64,
}

impl Worker {
    fn new(sched: &Scheduler<MockGpu>, durations: &[i64], wait_us: i64) -> Result<Arc<Worker>> {
        let entity = Entity::new(sched, Priority::Normal)?;
        let mut jobs = KVec::with_capacity(durations.len(), GFP_KERNEL)?;
        for &us in durations {
            // The mock job carries its duration from creation.
            jobs.push(entity.job(1, MockGpu::job(us, 0)?)?, GFP_KERNEL)?;
        }
        let finished = KVec::with_capacity(durations.len(), GFP_KERNEL)?;
        Arc::pin_init(
            pin_init!(Worker {
                entity,
                jobs <- new_mutex!(jobs),
                finished <- new_mutex!(finished),
                wait_us,
            }),
            GFP_KERNEL,
        )
    }

    fn run(&self, shared: &Shared) {
        shared.go.wait_for_completion();
        let jobs = core::mem::take(&mut *self.jobs.lock());
        for job in jobs {
            let Ok(guard) = self.entity.begin_submit() else {
                shared.errors.fetch_add(1, Relaxed);
                continue;
            };
            let finished = guard.arm(job).push();
            drop(guard);
            if self.wait_us > 0 && !waits(&finished, (self.wait_us + 999) / 1000) {
                shared.errors.fetch_add(1, Relaxed);
            }
            // Within the capacity reserved in `new`: does not allocate.
            if self.finished.lock().push(finished, GFP_KERNEL).is_err() {
                shared.errors.fetch_add(1, Relaxed);
            }
        }
        shared.done.fetch_add(1, Relaxed);
    }
}

/// Starts every worker at once and waits until all are done (at most `limit`).
fn run_workers(workers: &[Arc<Worker>], limit: Delta) -> Result<Arc<Shared>> {
    let shared = Arc::pin_init(
        pin_init!(Shared {
            go <- Completion::new(),
            done: AtomicUsize::new(0),
            errors: AtomicUsize::new(0),
        }),
        GFP_KERNEL,
    )?;
    for w in workers {
        let (w, s) = (w.clone(), shared.clone());
        workqueue::system_unbound()
            .try_spawn(GFP_KERNEL, move || w.run(&s))
            .map_err(|_| ENOMEM)?;
    }
    shared.go.complete_all();
    let start = Instant::<Monotonic>::now();
    while shared.done.load(Relaxed) < workers.len() && start.elapsed() < limit {
        fsleep(Delta::from_millis(5));
    }
    assert_eq!(shared.done.load(Relaxed), workers.len());
    Ok(shared)
}

/// A case of `drm_sched_parallel_submit_test`.
struct Parallel {
    num_jobs: usize,
    num_workers: usize,
}

const PARALLEL_CASES: [Parallel; 2] = [
    // "Workers submitting single jobs against a single entity"-like: one job each.
    Parallel {
        num_jobs: 1,
        num_workers: 32,
    },
    Parallel {
        num_jobs: 4,
        num_workers: 16,
    },
];

/// A case of `drm_sched_interleaved_submit_test`.
struct Interleaved {
    base_period_us: i64,
    periods_cycle: u32,
    num_jobs: usize,
    num_workers: usize,
}

const INTERLEAVED_CASES: [Interleaved; 2] = [
    Interleaved {
        base_period_us: 100,
        periods_cycle: 10,
        num_jobs: 1,
        num_workers: 32,
    },
    Interleaved {
        base_period_us: 100,
        periods_cycle: 10,
        num_jobs: 4,
        num_workers: 16,
    },
];

#[macros::kunit_tests(vagx_sched_concurrent)]
mod concurrent {
    use super::*;

    #[test]
    fn parallel_submit() -> Result {
        for case in PARALLEL_CASES.iter() {
            let sched = mock_sched(None, u32::MAX)?;
            let mut workers = KVec::with_capacity(case.num_workers, GFP_KERNEL)?;
            let mut durations = KVec::with_capacity(case.num_jobs, GFP_KERNEL)?;
            for _ in 0..case.num_jobs {
                // Completed by hand below.
                durations.push(0, GFP_KERNEL)?;
            }
            for _ in 0..case.num_workers {
                workers.push(Worker::new(&sched, &durations, 0)?, GFP_KERNEL)?;
            }
            let shared = run_workers(&workers, Delta::from_secs(10))?;
            assert_eq!(shared.errors.load(Relaxed), 0);
            let total = case.num_jobs * case.num_workers;
            // Every job reaches the hardware; none completes before the mock says so.
            let start = Instant::<Monotonic>::now();
            while sched.backend().running() < total && start.elapsed() < Delta::from_secs(1) {
                fsleep(Delta::from_millis(1));
            }
            assert_eq!(sched.backend().running(), total);
            for w in workers.iter() {
                let finished = w.finished.lock();
                assert_eq!(finished.len(), case.num_jobs);
                assert!(finished.iter().all(|f| !f.is_signaled()));
            }
            assert_eq!(sched.backend().advance(total), total);
            for w in workers.iter() {
                for f in w.finished.lock().iter() {
                    assert!(waits(f, HZ_MS));
                    assert_eq!(f.status(), Ok(true));
                }
            }
        }
        Ok(())
    }

    #[test]
    fn interleaved_submit() -> Result {
        for case in INTERLEAVED_CASES.iter() {
            let sched = mock_sched(None, u32::MAX)?;
            let period_max_us = case.base_period_us << case.periods_cycle;
            // The mock runs every worker's jobs one after another: twice the hyperperiod.
            // CAST: a small worker count.
            let wait_us = case.num_workers as i64 * period_max_us * 2;
            let mut workers = KVec::with_capacity(case.num_workers, GFP_KERNEL)?;
            let mut period_us = case.base_period_us;
            for i in 0..case.num_workers {
                // Harmonic periods, cycled so that no job gets too long.
                if i as u32 % case.periods_cycle == 0 {
                    period_us = case.base_period_us;
                } else {
                    period_us *= 2;
                }
                let mut durations = KVec::with_capacity(case.num_jobs, GFP_KERNEL)?;
                for _ in 0..case.num_jobs {
                    durations.push(period_us, GFP_KERNEL)?;
                }
                workers.push(Worker::new(&sched, &durations, wait_us)?, GFP_KERNEL)?;
            }
            let limit = Delta::from_micros(wait_us * case.num_jobs as i64 + 1_000_000);
            let shared = run_workers(&workers, limit)?;
            assert_eq!(shared.errors.load(Relaxed), 0);
            for w in workers.iter() {
                let finished = w.finished.lock();
                assert_eq!(finished.len(), case.num_jobs);
                for f in finished.iter() {
                    assert_eq!(f.status(), Ok(true));
                }
            }
        }
        Ok(())
    }
}
