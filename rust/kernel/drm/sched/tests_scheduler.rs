// SPDX-License-Identifier: GPL-2.0

//! The scheduling-quality cases of drm_sched's `tests_scheduler.c`, printing the same metric
//! lines so that a boot that runs both suites compares the two schedulers side by side.

use super::mock::MockGpu;
use super::{
    tests_basic::{mock_sched, submit, waits, HZ_MS},
    Entity, PolicyKind, Priority,
};
use crate::{
    dma_fence::{Fence, Interruptible},
    prelude::*,
    sync::{aref::ARef, Arc},
    time::{delay::fsleep, Delta, Instant, Monotonic},
    workqueue,
};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

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
            Ok(())
        })
    }
}

/// The per-job cost: `COST_JOBS` jobs of 1 us from one entity with unlimited credits, timed
/// from the first submission to the last completion. The mock GPU is idle most of that time, so
/// this is the CPU cost of a job through submission, scheduling, completion and freeing. The
/// same workload runs on C drm_sched in `tests_cost.c`.
#[macros::kunit_tests(vagx_sched_scheduler_cost)]
mod cost {
    use super::*;

    const COST_JOBS: usize = 100_000;

    #[test]
    fn per_job_cost() -> Result {
        let sched = mock_sched(None, u32::MAX)?;
        let entity = Entity::new(&sched, Priority::Normal)?;
        let start = Instant::<Monotonic>::now();
        let mut last: Option<ARef<Fence>> = None;
        for _ in 0..COST_JOBS {
            last = Some(submit(&entity, 1, 0, None)?.finished);
        }
        let last = last.ok_or(EINVAL)?;
        assert!(waits(&last, 60 * HZ_MS));
        let us = start.elapsed().as_micros_ceil();
        pr_info!(
            "vagx_sched cost (fifo): {COST_JOBS} jobs in {us}us, {} ns/job\n",
            us * 1000 / COST_JOBS as i64
        );
        assert_eq!(last.status(), Ok(true));
        Ok(())
    }
}

/// One simulated client's workload (drm_sched_client_params).
#[derive(Clone, Copy)]
struct ClientParams {
    priority: Priority,
    job_cnt: u32,
    job_us: i64,
    wait_us: i64,
    sync: bool,
}

const fn cp(
    priority: Priority,
    job_cnt: u32,
    job_us: i64,
    wait_us: i64,
    sync: bool,
) -> ClientParams {
    ClientParams {
        priority,
        job_cnt,
        job_us,
        wait_us,
        sync,
    }
}

use Priority::{High, Low, Normal};

/// The ten two-client cases of tests_scheduler.c, with the same descriptions and numbers.
const TWO_CLIENT_CASES: [(&str, ClientParams, ClientParams); 10] = [
    (
        "Normal priority and normal priority",
        cp(Normal, 1, 8000, 0, false),
        cp(Normal, 1, 8000, 0, false),
    ),
    (
        "Normal priority and low priority",
        cp(Normal, 1, 8000, 0, false),
        cp(Low, 1, 8000, 0, false),
    ),
    (
        "High priority and normal priority",
        cp(High, 1, 8000, 0, false),
        cp(Normal, 1, 8000, 0, false),
    ),
    (
        "High priority and low priority",
        cp(High, 1, 8000, 0, false),
        cp(Low, 1, 8000, 0, false),
    ),
    (
        "50% and 50%",
        cp(Normal, 1, 1500, 1500, true),
        cp(Normal, 1, 2500, 2500, true),
    ),
    (
        "50% and 50% low priority",
        cp(Normal, 1, 1500, 1500, true),
        cp(Low, 1, 2500, 2500, true),
    ),
    (
        "50% high priority and 50%",
        cp(High, 1, 1500, 1500, true),
        cp(Normal, 1, 2500, 2500, true),
    ),
    (
        "Low priority hog and interactive client",
        cp(Low, 3, 2500, 500, false),
        cp(Normal, 1, 500, 10000, true),
    ),
    (
        "Heavy rendering and interactive client",
        cp(Normal, 3, 2500, 2500, true),
        cp(Normal, 1, 1000, 9000, true),
    ),
    (
        "Very heavy rendering and interactive client",
        cp(Normal, 4, 50000, 1, true),
        cp(Normal, 1, 1000, 9000, true),
    ),
];

/// min / total / max of a per-cycle time, in us.
struct Stats {
    min: AtomicU64,
    tot: AtomicU64,
    max: AtomicU64,
}

impl Stats {
    const fn new() -> Self {
        Self {
            min: AtomicU64::new(u64::MAX),
            tot: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }

    fn update(&self, us: u64) {
        self.min.fetch_min(us, Relaxed);
        self.max.fetch_max(us, Relaxed);
        self.tot.fetch_add(us, Relaxed);
    }

    fn avg(&self, cycles: u64) -> u64 {
        self.tot.load(Relaxed) / cycles.max(1)
    }
}

/// A simulated client (test_client): its entity and its progress, shared with its thread.
struct Client {
    entity: Entity<MockGpu>,
    params: ClientParams,
    duration_us: i64,
    cycles: AtomicU64,
    cycle: AtomicU64,
    ideal_us: AtomicU64,
    elapsed_us: AtomicU64,
    done: AtomicBool,
    finished: AtomicBool,
    cycle_time: Stats,
    latency: Stats,
}

impl Client {
    /// drm_sched_client_work: submit `job_cnt` jobs, wait for the last if `sync`, sleep
    /// `wait_us`; as many cycles as fit the client's duration.
    fn work(&self) {
        let p = self.params;
        let work_us = i64::from(p.job_cnt) * p.job_us;
        let period_us = work_us + p.wait_us;
        let cycles = (self.duration_us + period_us - 1) / period_us;
        self.cycles.store(cycles as u64, Relaxed);
        self.ideal_us.store((cycles * period_us) as u64, Relaxed);
        let start = Instant::<Monotonic>::now();
        let mut last: Option<ARef<Fence>> = None;
        for cycle in 0..cycles {
            let t = Instant::<Monotonic>::now();
            for _ in 0..p.job_cnt {
                match submit(&self.entity, p.job_us, 0, None) {
                    Ok(job) => last = Some(job.finished),
                    Err(_) => {
                        self.done.store(false, Relaxed);
                        self.finished.store(true, Relaxed);
                        return;
                    }
                }
            }
            if p.sync {
                if let Some(f) = &last {
                    let _ = f.wait(None, Interruptible::No);
                }
            }
            let us = t.elapsed().as_micros_ceil().max(0) as u64;
            self.cycle_time.update(us);
            self.latency.update(us.saturating_sub(work_us as u64));
            self.cycle.store(cycle as u64, Relaxed);
            if p.wait_us != 0 {
                fsleep(Delta::from_micros(p.wait_us));
            }
        }
        let ok = last.is_none_or(|f| f.wait(None, Interruptible::No).is_ok());
        self.elapsed_us
            .store(start.elapsed().as_micros_ceil().max(0) as u64, Relaxed);
        self.done.store(ok, Relaxed);
        self.finished.store(true, Relaxed);
    }
}

fn prio_str(p: Priority) -> &'static str {
    match p {
        Priority::Kernel => "kernel",
        Priority::High => "high",
        Priority::Normal => "normal",
        Priority::Low => "low",
    }
}

fn spawn_clients(
    sched: &super::Scheduler<MockGpu>,
    params: &[ClientParams],
    duration_us: i64,
) -> Result<KVec<Arc<Client>>> {
    let mut clients = KVec::with_capacity(params.len(), GFP_KERNEL)?;
    for p in params {
        clients.push(
            Arc::new(
                Client {
                    entity: Entity::new(sched, p.priority)?,
                    params: *p,
                    duration_us,
                    cycles: AtomicU64::new(0),
                    cycle: AtomicU64::new(0),
                    ideal_us: AtomicU64::new(0),
                    elapsed_us: AtomicU64::new(0),
                    done: AtomicBool::new(false),
                    finished: AtomicBool::new(false),
                    cycle_time: Stats::new(),
                    latency: Stats::new(),
                },
                GFP_KERNEL,
            )?,
            GFP_KERNEL,
        )?;
    }
    for c in clients.iter() {
        let c = c.clone();
        workqueue::system_unbound()
            .try_spawn(GFP_KERNEL, move || c.work())
            .map_err(|_| ENOMEM)?;
    }
    Ok(clients)
}

fn all_finished(clients: &[Arc<Client>]) -> bool {
    clients.iter().all(|c| c.finished.load(Relaxed))
}

/// drm_sched_scheduler_two_clients_test for every case, with `credits` on the mock.
fn two_clients(credits: u32) -> Result {
    for policy in [PolicyKind::RoundRobin, PolicyKind::Fifo, PolicyKind::Fair] {
        for (desc, a, b) in TWO_CLIENT_CASES.iter() {
            let sched = mock_sched(None, credits)?;
            sched.set_policy(policy);
            let clients = spawn_clients(&sched, &[*a, *b], 1_000_000)?;
            pr_info!("{desc} ({}, {credits} credit(s)):\n", name(policy));
            pr_info!("\t            pct1 cps1 qd1;  pct2 cps2 qd2\n");
            let start = Instant::<Monotonic>::now();
            let mut prev = [0u64; 2];
            while !all_finished(&clients) {
                let mut line = [(0u64, 0u64, 0usize); 2];
                for (i, c) in clients.iter().enumerate() {
                    let cycle = c.cycle.load(Relaxed);
                    let cycles = c.cycles.load(Relaxed);
                    let pct = if cycles != 0 {
                        (100 * (1 + cycle)).div_ceil(cycles)
                    } else {
                        0
                    };
                    line[i] = (pct, 10 * (cycle - prev[i].min(cycle)), c.entity.queued());
                    prev[i] = cycle;
                }
                pr_info!(
                    "\t+{:6}ms: {:3} {:5} {:4}; {:3} {:5} {:4}\n",
                    start.elapsed().as_millis(),
                    line[0].0,
                    line[0].1,
                    line[0].2,
                    line[1].0,
                    line[1].1,
                    line[1].2
                );
                fsleep(Delta::from_millis(100));
            }
            for c in clients.iter() {
                assert!(c.done.load(Relaxed));
            }
            for (i, c) in clients.iter().enumerate() {
                let cycles = c.cycles.load(Relaxed);
                pr_info!(
                    "    {i}: prio={} sync={} elapsed_ms={}ms (ideal_ms={}ms) cycle_time(min,avg,max)={},{},{} us latency_time(min,avg,max)={},{},{} us\n",
                    prio_str(c.params.priority),
                    u32::from(c.params.sync),
                    c.elapsed_us.load(Relaxed) / 1000,
                    c.ideal_us.load(Relaxed) / 1000,
                    c.cycle_time.min.load(Relaxed),
                    c.cycle_time.avg(cycles),
                    c.cycle_time.max.load(Relaxed),
                    c.latency.min.load(Relaxed),
                    c.latency.avg(cycles),
                    c.latency.max.load(Relaxed)
                );
            }
        }
    }
    Ok(())
}

#[macros::kunit_tests(vagx_sched_scheduler_two_clients)]
mod two {
    use super::*;

    #[test]
    fn two_clients_one_credit() -> Result {
        two_clients(1)
    }

    #[test]
    fn two_clients_two_credits() -> Result {
        two_clients(2)
    }
}

#[macros::kunit_tests(vagx_sched_scheduler_many_clients)]
mod many {
    use super::*;

    #[test]
    fn many_clients() -> Result {
        for policy in [PolicyKind::Fifo, PolicyKind::Fair] {
            for n in [2usize, 3, 7, 13, 31] {
                let p = if n == 31 {
                    cp(Normal, 2, 1000, 0, true)
                } else {
                    cp(Normal, 4, 1000, 0, true)
                };
                let sched = mock_sched(None, 2)?;
                sched.set_policy(policy);
                let mut params = KVec::with_capacity(n, GFP_KERNEL)?;
                for _ in 0..n {
                    params.push(p, GFP_KERNEL)?;
                }
                let clients = spawn_clients(&sched, &params, 1_000_000 / n as i64)?;
                pr_info!(
                    "{n} clients ({}):\n\tt\t\tcycle:\t  min    avg    max\n",
                    name(policy)
                );
                let start = Instant::<Monotonic>::now();
                let (mut loops, mut delta_total) = (0u64, 0u64);
                loop {
                    let (mut min, mut max, mut total) = (u64::MAX, 0u64, 0u64);
                    for c in clients.iter() {
                        let cycle = c.cycle.load(Relaxed);
                        min = min.min(cycle);
                        max = max.max(cycle);
                        total += cycle;
                    }
                    loops += 1;
                    delta_total += max - min;
                    pr_info!(
                        "\t+{:6}ms\t\t  {:3}  {:3}  {:3}\n",
                        start.elapsed().as_millis(),
                        min,
                        total.div_ceil(n as u64),
                        max
                    );
                    if all_finished(&clients) {
                        break;
                    }
                    fsleep(Delta::from_millis(100));
                }
                pr_info!(
                    "    avg_max_min_delta(x100)={}\n",
                    (delta_total * 100).div_ceil(loops.max(1))
                );
                for c in clients.iter() {
                    assert!(c.done.load(Relaxed));
                }
            }
        }
        Ok(())
    }
}
