// SPDX-License-Identifier: GPL-2.0

//! Host tests of the policies (`cargo test -p vagx-sched-host`): a model of the scheduler's
//! pick loop over these same functions, and randomized properties checked on many seeds.

use super::{credits_fit, fair, job_done, Choice, EntityStats, PolicyKind, Priority, Weight};

/// xorshift64*: a deterministic generator, so that a failing seed can be rerun.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn priority(&mut self) -> Priority {
        Priority::ALL[self.below(4) as usize]
    }
}

fn seeds() -> impl Iterator<Item = Rng> {
    (1..=200u64).map(|s| Rng(s.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1))
}

/// One entity of the model: always has work unless `idle`.
struct SimEntity {
    prio: Priority,
    stats: EntityStats,
    job_ns: u64,
    head_submit: u64,
    idle: bool,
    picks: u64,
}

/// The scheduler's pick loop (`Scheduler::pick`), on plain data.
struct Sim {
    policy: PolicyKind,
    entities: Vec<SimEntity>,
    clock: u64,
}

impl Sim {
    fn new(policy: PolicyKind, entities: impl IntoIterator<Item = (Priority, u64)>) -> Self {
        let mut sim = Sim {
            policy,
            entities: Vec::new(),
            clock: 0,
        };
        for (prio, job_ns) in entities {
            sim.clock += 1;
            sim.entities.push(SimEntity {
                prio,
                stats: EntityStats::default(),
                job_ns,
                head_submit: sim.clock,
                idle: false,
                picks: 0,
            });
        }
        sim
    }

    fn pick(&self) -> Option<usize> {
        let mut choice = Choice::default();
        for group in self.policy.groups(false) {
            for (id, e) in self.entities.iter().enumerate() {
                if e.idle || group.is_some_and(|p| p != e.prio) {
                    continue;
                }
                choice.offer(
                    id,
                    self.policy.key(&e.stats, e.head_submit),
                    e.stats.avg_job_ns,
                );
            }
            if choice.best().is_some() {
                break;
            }
        }
        choice.best()
    }

    /// Picks, runs and completes one job; the entity queues its next job at once.
    fn step(&mut self) -> usize {
        let id = self.pick().expect("an entity is ready");
        self.clock += 1;
        let (policy, clock) = (self.policy, self.clock);
        let e = &mut self.entities[id];
        policy.picked(&mut e.stats, e.prio, clock);
        job_done(&mut e.stats, e.job_ns);
        e.picks += 1;
        self.clock += 1;
        e.head_submit = self.clock;
        id
    }

    fn weighted_cost(&self, id: usize) -> u64 {
        let e = &self.entities[id];
        fair::charge(e.job_ns, e.prio, e.stats.weight)
    }

    fn set_weight(&mut self, id: usize, w: u32) {
        self.entities[id].stats.weight = Weight::new(w).expect("a weight in range");
    }

    /// GPU time of each entity between two calls, as shares of the total.
    fn shares_since(&self, before: &[u64]) -> Vec<f64> {
        let used: Vec<u64> = self
            .entities
            .iter()
            .zip(before)
            .map(|(e, b)| e.stats.gpu_ns - b)
            .collect();
        let total: u64 = used.iter().sum();
        used.iter().map(|&u| u as f64 / total as f64).collect()
    }

    fn gpu_ns(&self) -> Vec<u64> {
        self.entities.iter().map(|e| e.stats.gpu_ns).collect()
    }
}

/// Whether `got` is within 5 % (relative) of the shares `weights` ask for.
fn within_five_percent(got: &[f64], weights: &[u32]) -> bool {
    let total: u32 = weights.iter().sum();
    got.iter().zip(weights).all(|(g, &w)| {
        (g - f64::from(w) / f64::from(total)).abs() <= 0.05 * f64::from(w) / f64::from(total)
    })
}

#[test]
fn fair_keeps_every_busy_entity_within_one_job_of_the_others() {
    for mut rng in seeds() {
        let n = 1 + rng.below(8) as usize;
        let entities: Vec<_> = (0..n)
            .map(|_| (rng.priority(), 10_000 + rng.below(10_000_000)))
            .collect();
        let mut sim = Sim::new(PolicyKind::Fair, entities);
        for i in 0..n {
            let w = [1, 100, 100, 250, 10_000][rng.below(5) as usize];
            sim.set_weight(i, w);
        }
        // Everyone's first job is charged FIRST_JOB_NS; after that the average is exact.
        for _ in 0..n {
            sim.step();
        }
        let max_cost = (0..n).map(|i| sim.weighted_cost(i)).max().unwrap();
        let slack =
            max_cost + fair::charge(fair::FIRST_JOB_NS, Priority::Low, Weight::new(1).unwrap());
        for _ in 0..2000 {
            sim.step();
            let v: Vec<u64> = sim.entities.iter().map(|e| e.stats.vruntime).collect();
            let (lo, hi) = (*v.iter().min().unwrap(), *v.iter().max().unwrap());
            assert!(hi - lo <= slack, "spread {} > {slack}: {v:?}", hi - lo);
        }
    }
}

#[test]
fn fair_never_starves_low() {
    for mut rng in seeds().take(50) {
        // A Low entity with long jobs beside Kernel/High/Normal ones with short jobs.
        let mut entities = vec![(Priority::Low, 1_000_000 + rng.below(9_000_000))];
        for _ in 0..1 + rng.below(4) {
            entities.push((
                Priority::ALL[rng.below(3) as usize],
                10_000 + rng.below(100_000),
            ));
        }
        let mut sim = Sim::new(PolicyKind::Fair, entities);
        for _ in 0..100_000 {
            sim.step();
        }
        assert!(sim.entities[0].picks > 0, "Low never ran");
    }
}

#[test]
fn fair_shares_follow_the_priority_weights() {
    for (hi, lo, ratio) in [
        (Priority::Normal, Priority::Low, 8),
        (Priority::High, Priority::Normal, 4),
        (Priority::Kernel, Priority::High, 2),
    ] {
        let mut sim = Sim::new(PolicyKind::Fair, [(hi, 1_000_000), (lo, 1_000_000)]);
        for _ in 0..9000 {
            sim.step();
        }
        let (a, b) = (sim.entities[0].picks, sim.entities[1].picks);
        assert!(
            a >= (ratio - 1) * b && a <= (ratio + 1) * b,
            "{hi:?}:{lo:?} picks {a}:{b}, want about {ratio}:1"
        );
    }
}

#[test]
fn fair_shares_follow_the_weights_within_five_percent() {
    for mut rng in seeds().take(50) {
        let n = 2 + rng.below(3) as usize;
        let weights: Vec<u32> = (0..n).map(|_| 1 + rng.below(1000) as u32).collect();
        // Jobs of different lengths: the shares are of GPU time, not of picks.
        let entities: Vec<_> = (0..n)
            .map(|_| (Priority::Normal, 50_000 + rng.below(2_000_000)))
            .collect();
        let mut sim = Sim::new(PolicyKind::Fair, entities);
        for (i, &w) in weights.iter().enumerate() {
            sim.set_weight(i, w);
        }
        for _ in 0..200 {
            sim.step();
        }
        let before = sim.gpu_ns();
        for _ in 0..40_000 {
            sim.step();
        }
        let got = sim.shares_since(&before);
        assert!(
            within_five_percent(&got, &weights),
            "weights {weights:?}, shares {got:?}"
        );
    }
}

#[test]
fn fair_weights_and_priorities_multiply() {
    // Normal at weight 800 against Low at 100: 8 × 8 = 64 to 1.
    let mut sim = Sim::new(
        PolicyKind::Fair,
        [(Priority::Normal, 1_000_000), (Priority::Low, 1_000_000)],
    );
    sim.set_weight(0, 800);
    for _ in 0..100 {
        sim.step();
    }
    let before = sim.gpu_ns();
    for _ in 0..65_000 {
        sim.step();
    }
    let got = sim.shares_since(&before);
    assert!(within_five_percent(&got, &[64, 1]), "shares {got:?}");
}

#[test]
fn fair_weight_change_applies_from_the_next_pick() {
    let mut sim = Sim::new(PolicyKind::Fair, [(Priority::Normal, 500_000); 2]);
    for _ in 0..4000 {
        sim.step();
    }
    let before = sim.gpu_ns();
    assert!(within_five_percent(&sim.shares_since(&[0, 0]), &[1, 1]));
    sim.set_weight(1, 300);
    for _ in 0..8000 {
        sim.step();
    }
    let got = sim.shares_since(&before);
    assert!(
        within_five_percent(&got, &[1, 3]),
        "after 100:300, shares {got:?}"
    );
}

#[test]
fn strict_policies_ignore_weights() {
    for policy in [PolicyKind::RoundRobin, PolicyKind::Fifo] {
        let mut sim = Sim::new(policy, [(Priority::Normal, 1_000_000); 2]);
        sim.set_weight(0, 10_000);
        sim.set_weight(1, 1);
        for _ in 0..1000 {
            sim.step();
        }
        let (a, b) = (sim.entities[0].picks, sim.entities[1].picks);
        assert!(a.abs_diff(b) <= 1, "{policy:?}: picks {a}:{b}");
    }
}

#[test]
fn weights_are_one_to_ten_thousand_default_hundred() {
    assert_eq!(Weight::new(0), None);
    assert_eq!(Weight::new(1).map(Weight::get), Some(1));
    assert_eq!(Weight::new(10_000).map(Weight::get), Some(10_000));
    assert_eq!(Weight::new(10_001), None);
    assert_eq!(Weight::new(u32::MAX), None);
    assert_eq!(Weight::default().get(), 100);
    assert_eq!(EntityStats::default().weight, Weight::DEFAULT);
    // The charge never overflows and never stops the key.
    assert_eq!(
        fair::charge(u64::MAX, Priority::Low, Weight::new(1).unwrap()),
        u64::MAX
    );
    assert_eq!(
        fair::charge(1, Priority::Kernel, Weight::new(10_000).unwrap()),
        1
    );
}

#[test]
fn fair_rejoin_runs_soon_but_banks_no_credit() {
    for mut rng in seeds() {
        let job_ns = 100_000 + rng.below(5_000_000);
        let mut sim = Sim::new(PolicyKind::Fair, [(Priority::Normal, job_ns); 3]);
        sim.entities[2].idle = true;
        for _ in 0..1000 + rng.below(1000) {
            sim.step();
        }
        // It wakes: placed relative to the busy entities' minimum, as push_job does.
        let min = sim.entities[..2]
            .iter()
            .map(|e| e.stats.vruntime)
            .min()
            .unwrap();
        let waking = &mut sim.entities[2];
        PolicyKind::Fair.rejoined(&mut waking.stats, min);
        waking.idle = false;
        assert!(waking.stats.vruntime >= min.saturating_sub(fair::REJOIN_CREDIT));
        assert_eq!(sim.step(), 2, "the waking entity runs next");
        // ...but only for its credit's worth of jobs before the others run again.
        let credit_jobs = fair::REJOIN_CREDIT / (job_ns << fair::SHIFT[2]) + 2;
        let mut run = 1;
        while sim.step() == 2 {
            run += 1;
            assert!(
                run <= credit_jobs,
                "ran {run} jobs in a row, credit {credit_jobs}"
            );
        }
    }
}

#[test]
fn strict_policies_always_pick_the_highest_priority() {
    for policy in [PolicyKind::RoundRobin, PolicyKind::Fifo] {
        for mut rng in seeds() {
            let n = 1 + rng.below(8) as usize;
            let entities: Vec<_> = (0..n).map(|_| (rng.priority(), 1000)).collect();
            let mut sim = Sim::new(policy, entities);
            for _ in 0..200 {
                for e in sim.entities.iter_mut() {
                    e.idle = rng.below(3) == 0;
                }
                let Some(id) = sim.pick() else { continue };
                let best = sim
                    .entities
                    .iter()
                    .filter(|e| !e.idle)
                    .map(|e| e.prio)
                    .min();
                assert_eq!(Some(sim.entities[id].prio), best, "{policy:?}");
                sim.step();
            }
        }
    }
}

#[test]
fn round_robin_gives_equal_entities_one_turn_each() {
    for n in 1..=9 {
        let mut sim = Sim::new(PolicyKind::RoundRobin, vec![(Priority::Normal, 1000); n]);
        for _ in 0..20 {
            let mut turn: Vec<usize> = (0..n).map(|_| sim.step()).collect();
            turn.sort_unstable();
            assert_eq!(turn, (0..n).collect::<Vec<_>>());
        }
    }
}

#[test]
fn fifo_picks_the_oldest_head_job() {
    for mut rng in seeds() {
        let n = 1 + rng.below(8) as usize;
        let mut sim = Sim::new(PolicyKind::Fifo, vec![(Priority::Normal, 1000); n]);
        for e in sim.entities.iter_mut() {
            e.head_submit = rng.below(1000);
        }
        let id = sim.pick().unwrap();
        let oldest = sim.entities.iter().map(|e| e.head_submit).min().unwrap();
        assert_eq!(sim.entities[id].head_submit, oldest);
    }
}

#[test]
fn ties_go_to_the_entity_with_shorter_jobs_then_the_first() {
    let mut c = Choice::default();
    assert_eq!(c.best(), None);
    c.offer(0, 5, 300);
    c.offer(1, 5, 100);
    c.offer(2, 5, 100);
    c.offer(3, 6, 1);
    assert_eq!(c.best(), Some(1));
    c.offer(4, 4, u64::MAX);
    assert_eq!(c.best(), Some(4));
}

#[test]
fn credits_fit_is_exact_and_never_overflows() {
    let edge = [0, 1, 2, u32::MAX / 2, u32::MAX - 1, u32::MAX];
    for used in edge {
        for credits in edge {
            for limit in edge {
                let want = u64::from(used) + u64::from(credits) <= u64::from(limit);
                assert_eq!(
                    credits_fit(used, credits, limit),
                    want,
                    "{used}+{credits}<={limit}"
                );
            }
        }
    }
    for mut rng in seeds() {
        let (u, c, l) = (rng.next() as u32, rng.next() as u32, rng.next() as u32);
        assert_eq!(
            credits_fit(u, c, l),
            u64::from(u) + u64::from(c) <= u64::from(l)
        );
    }
}

#[test]
fn job_accounting_sums_and_averages_within_the_samples() {
    for mut rng in seeds() {
        let mut stats = EntityStats::default();
        let (mut lo, mut hi, mut sum) = (u64::MAX, 0, 0u64);
        for _ in 0..1 + rng.below(100) {
            let ns = rng.below(50_000_000);
            job_done(&mut stats, ns);
            lo = lo.min(ns);
            hi = hi.max(ns);
            sum += ns;
            assert!(stats.avg_job_ns >= lo && stats.avg_job_ns <= hi);
        }
        assert_eq!(stats.gpu_ns, sum);
    }
    let mut stats = EntityStats {
        gpu_ns: u64::MAX - 1,
        ..Default::default()
    };
    job_done(&mut stats, 10);
    assert_eq!(stats.gpu_ns, u64::MAX, "saturates");
}

#[test]
fn policy_names_parse_as_the_parameter_spells_them() {
    assert_eq!(PolicyKind::from_name(b"rr"), Some(PolicyKind::RoundRobin));
    assert_eq!(PolicyKind::from_name(b"fifo"), Some(PolicyKind::Fifo));
    assert_eq!(PolicyKind::from_name(b"fair"), Some(PolicyKind::Fair));
    assert_eq!(PolicyKind::from_name(b"FAIR"), None);
    assert_eq!(PolicyKind::from_name(b""), None);
}
