// SPDX-License-Identifier: GPL-2.0 OR MIT

//! `vagx-tool bench-serve`: the serving benchmark's guest side (internal, for `cargo xtask
//! bench serve`): interactive requests beside batch work on one GPU, under the scheduling mode
//! and policy the module was loaded with and the controls `--controls` asks for.
//!
//! - **Interactive**: one client with one queue. Requests arrive at seeded, exponentially
//!   spaced times (Poisson arrivals, mean gap [`MEAN_GAP_NS`]; an open loop, so a late
//!   submitter adds to latency instead of lowering the load); each is one model step, a
//!   [`DIM`]³ GEMM and a DELAY of [`STEP_NS`] standing for the rest of the step, with an SLO of
//!   [`SLO_NS`] from its arrival. Its latency runs from its arrival to the time its fence
//!   signalled (the fence's own timestamp, from its sync_file); how late its SUBMIT began
//!   after the arrival is reported too, the part of the latency that is the guest's CPU.
//! - **Batch**: [`BATCH_PER_UNIT`] clients per execution unit, each a queue kept
//!   [`BATCH_DEPTH`] jobs deep (together more than kernel mode's credits, so that batch work
//!   waits in the scheduler, where the policy decides, and not only on the device); a job is
//!   [`BATCH_STEPS`] steps of the same shape, so that the device can preempt it at every
//!   command boundary. Its throughput counts the jobs whose fences signalled in the phase.
//!
//! With `--all-gpus` every GPU runs the same clients at once (its own interactive stream and
//! batch queues), and the figures are over all of them: latencies pooled, throughput summed,
//! utilisation averaged.
//!
//! The phases, in one module load: interactive alone (the idle latency), batch alone (its
//! throughput), the mix, and with weights the shares: two batch clients, one weighted
//! [`SHARE_WEIGHTS`]`.0` and one `.1`, whose completed jobs must divide as their weights do.
//!
//! Controls: `weights` gives the interactive queue weight [`INTERACTIVE_WEIGHT`] against the
//! batch queues' 100; `deadlines` gives each request its SLO as its deadline (SUBMIT's
//! `deadline_ns`); `controls` both; `plain` neither.
//!
//! Costs are modelled with DELAY: the device model computes every GEMM for real on the host,
//! and model-sized GEMMs on every unit would leave the emulation behind its own clock on a
//! two-core machine. What the benchmark measures is the scheduling.

use std::{
    collections::VecDeque,
    os::fd::AsFd,
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context, Result};

use crate::{
    cmdbuf::CmdBuf,
    fixture::{Ctx, WAIT_MS},
    gpu::{self, Gpu, Sync},
    uapi, workload,
};

/// Rows, columns and depth of every GEMM.
const DIM: u32 = 64;
/// Bytes of one `DIM × DIM` f32 matrix.
const MATRIX: u64 = (DIM * DIM * 4) as u64;
/// Device time of a step beside its GEMM.
const STEP_NS: u64 = 1_000_000;
/// An interactive request's latency objective, from its arrival.
const SLO_NS: u64 = 5_000_000;
/// Mean gap between interactive arrivals.
const MEAN_GAP_NS: u64 = 8_000_000;
/// Steps of a batch job.
const BATCH_STEPS: usize = 8;
/// Jobs each batch queue keeps submitted.
const BATCH_DEPTH: usize = 4;
/// Batch clients per execution unit.
const BATCH_PER_UNIT: usize = 2;
/// Length of each phase.
const PHASE_NS: u64 = 5_000_000_000;
/// The interactive queue's weight under `weights`.
const INTERACTIVE_WEIGHT: u64 = 1000;
/// The two batch clients' weights of the shares phase.
const SHARE_WEIGHTS: (u64, u64) = (100, 300);

/// What `--controls` turns on.
#[derive(Clone, Copy, Debug)]
struct Controls {
    weights: bool,
    deadlines: bool,
}

impl Controls {
    fn parse(s: &str) -> Result<Self> {
        let (weights, deadlines) = match s {
            "plain" => (false, false),
            "weights" => (true, false),
            "deadlines" => (false, true),
            "controls" => (true, true),
            _ => bail!("--controls: plain, weights, deadlines or controls, not {s:?}"),
        };
        Ok(Self { weights, deadlines })
    }
}

/// A context with A and B filled with ones, so that every C element of a GEMM is `DIM`.
fn context(g: &Gpu) -> Result<Ctx<'_>> {
    let ctx = Ctx::normal(g)?;
    let ones = vec![1.0f32; (DIM * DIM) as usize];
    ctx.map.write_f32s(ctx.off(0), &ones);
    ctx.map.write_f32s(ctx.off(MATRIX), &ones);
    Ok(ctx)
}

/// Appends one step (a GEMM into C, then the rest of the step's time) to `c`.
fn step(c: &mut CmdBuf, ctx: &Ctx) {
    c.gemm(ctx.va(0), ctx.va(MATRIX), ctx.va(2 * MATRIX), DIM, DIM, DIM)
        .delay(STEP_NS);
}

/// Checks that the context's GEMMs ran: C holds `DIM` everywhere.
fn check(ctx: &Ctx) -> Result<()> {
    let c = ctx.map.read_f32s(ctx.off(2 * MATRIX), (DIM * DIM) as usize);
    // CAST: a small integer, exact in f32.
    let want = DIM as f32;
    ensure!(c.iter().all(|&v| v == want), "a GEMM's result is wrong");
    Ok(())
}

/// A seeded xorshift generator of exponentially distributed gaps.
struct Arrivals(u64);

impl Arrivals {
    fn next_gap_ns(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        // CAST: 53 random bits as a fraction in (0, 1].
        let u = ((self.0 >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        // CAST: a positive gap well below u64::MAX.
        (-u.ln() * MEAN_GAP_NS as f64) as u64
    }
}

/// CLOCK_MONOTONIC now, in ns.
fn now() -> u64 {
    u64::try_from(gpu::now_ns()).unwrap_or(0)
}

/// Sleeps until CLOCK_MONOTONIC reaches `t`.
fn sleep_until(t: u64) {
    let n = now();
    if t > n {
        thread::sleep(Duration::from_nanos(t - n));
    }
}

/// When binary syncobj `s` of `g` signalled, after waiting for it.
fn signalled_at(g: &Gpu, s: u32) -> Result<u64> {
    g.wait(s, WAIT_MS).context("waiting for a job")?;
    let fd = g.export_sync_file(s)?;
    let t = gpu::sync_file_signal_ns(fd.as_fd())?.context("a signalled fence has no time")?;
    Ok(u64::try_from(t).unwrap_or(0))
}

/// The interactive client of GPU `gpu` from `start` to `end`: the latency of each request and
/// how late its SUBMIT began after its arrival (the guest's CPU, not the GPU), in ns.
fn interactive(
    gpu: usize,
    controls: Controls,
    seed: u64,
    start: u64,
    end: u64,
) -> Result<(Vec<u64>, Vec<u64>)> {
    let g = Gpu::open_index(gpu)?;
    let ctx = context(&g)?;
    if controls.weights {
        g.queue_set_param(
            ctx.queue,
            uapi::drm_vagx_queue_param_DRM_VAGX_QUEUE_PARAM_WEIGHT,
            INTERACTIVE_WEIGHT,
        )?;
    }
    let mut arrivals = Arrivals(seed | 1);
    let mut submitted = VecDeque::new();
    let mut latencies = Vec::new();
    let mut lags = Vec::new();
    let mut at = start + arrivals.next_gap_ns();
    while at < end {
        sleep_until(at);
        let s = g.syncobj()?;
        lags.push(now().saturating_sub(at));
        let mut c = CmdBuf::new();
        step(&mut c, &ctx);
        let deadline = if controls.deadlines { at + SLO_NS } else { 0 };
        ctx.run_by(&c, &[Sync::signal(s, 0)], deadline)
            .context("an interactive SUBMIT")?;
        submitted.push_back((at, s));
        // Reap what has completed, so that the syncobjs stay few.
        while let Some(&(arrival, s)) = submitted.front() {
            if submitted.len() < 8 && ctx.fence_pending(s)? {
                break;
            }
            latencies.push(signalled_at(&g, s)?.saturating_sub(arrival));
            g.syncobj_destroy(s)?;
            submitted.pop_front();
        }
        at += arrivals.next_gap_ns();
    }
    for (arrival, s) in submitted {
        latencies.push(signalled_at(&g, s)?.saturating_sub(arrival));
        g.syncobj_destroy(s)?;
    }
    check(&ctx)?;
    Ok((latencies, lags))
}

/// A batch client of GPU `gpu` with weight `weight` from `start` to `end`: the jobs whose
/// fences signalled by `end`.
fn batch(gpu: usize, weight: Option<u64>, start: u64, end: u64) -> Result<u64> {
    let g = Gpu::open_index(gpu)?;
    let ctx = context(&g)?;
    if let Some(w) = weight {
        g.queue_set_param(
            ctx.queue,
            uapi::drm_vagx_queue_param_DRM_VAGX_QUEUE_PARAM_WEIGHT,
            w,
        )?;
    }
    let mut job = CmdBuf::new();
    for _ in 0..BATCH_STEPS {
        step(&mut job, &ctx);
    }
    sleep_until(start);
    let mut in_flight = VecDeque::new();
    let mut done = 0;
    loop {
        while in_flight.len() < BATCH_DEPTH && now() < end {
            let s = g.syncobj()?;
            ctx.run(&job, &[Sync::signal(s, 0)])
                .context("a batch SUBMIT")?;
            in_flight.push_back(s);
        }
        let Some(s) = in_flight.pop_front() else {
            break;
        };
        if signalled_at(&g, s)? <= end {
            done += 1;
        }
        g.syncobj_destroy(s)?;
    }
    check(&ctx)?;
    Ok(done)
}

/// The device's utilisation between two load queries: busy time over device time, every unit.
fn utilisation(a: &uapi::drm_vagx_device_load, b: &uapi::drm_vagx_device_load) -> f64 {
    let units = a.num_units.min(b.num_units) as usize;
    let busy: u64 = (0..units)
        .map(|u| b.unit_busy_ns[u].saturating_sub(a.unit_busy_ns[u]))
        .sum();
    let span = b.device_time_ns.saturating_sub(a.device_time_ns) * units as u64;
    if span == 0 {
        0.0
    } else {
        // CAST: ratios of device times.
        busy as f64 / span as f64
    }
}

/// The `p`-th percentile of `v` (sorted in place), in µs.
fn percentile_us(v: &mut [u64], p: usize) -> u64 {
    v.sort_unstable();
    workload::percentile(v, p) / 1000
}

/// The fraction of `v` within the SLO.
fn within_slo(v: &[u64]) -> f64 {
    // CAST: counts as ratios.
    v.iter().filter(|&&l| l <= SLO_NS).count() as f64 / v.len().max(1) as f64
}

/// One phase on every GPU of `gpus`: on each, interactive requests (if `interactive_seed`)
/// beside `batches` batch clients of the given weights, all from a common start; every
/// request's latency, each batch client's jobs summed over the GPUs (by index in `batches`),
/// and the devices' mean utilisation over the phase.
fn phase(
    gpus: &[Gpu],
    controls: Controls,
    interactive_seed: Option<u64>,
    batches: &[Option<u64>],
) -> Result<Phase> {
    // Time for every client to open its file and create its context first.
    let start = now() + 200_000_000;
    let end = start + PHASE_NS;
    thread::scope(|s| -> Result<_> {
        let mut interactive_clients = Vec::new();
        let mut batch_clients = Vec::new();
        for gpu in 0..gpus.len() {
            if let Some(seed) = interactive_seed {
                // CAST: a small index.
                let seed = seed + 1000 * gpu as u64;
                interactive_clients
                    .push(s.spawn(move || interactive(gpu, controls, seed, start, end)));
            }
            for (k, &w) in batches.iter().enumerate() {
                batch_clients.push((k, s.spawn(move || batch(gpu, w, start, end))));
            }
        }
        sleep_until(start);
        let before: Vec<_> = gpus
            .iter()
            .map(Gpu::device_load)
            .collect::<Result<_, _>>()?;
        sleep_until(end);
        let after: Vec<_> = gpus
            .iter()
            .map(Gpu::device_load)
            .collect::<Result<_, _>>()?;
        let (mut latencies, mut lags) = (Vec::new(), Vec::new());
        for h in interactive_clients {
            let (l, d) = h
                .join()
                .map_err(|_| anyhow::anyhow!("interactive client panicked"))??;
            latencies.extend(l);
            lags.extend(d);
        }
        let mut jobs = vec![0; batches.len()];
        for (k, h) in batch_clients {
            jobs[k] += h
                .join()
                .map_err(|_| anyhow::anyhow!("batch client panicked"))??;
        }
        let util = before
            .iter()
            .zip(&after)
            .map(|(a, b)| utilisation(a, b))
            .sum::<f64>()
            / gpus.len().max(1) as f64;
        Ok(Phase {
            latencies,
            lags,
            jobs,
            util,
        })
    })
}

/// What a phase measured ([`phase`]).
struct Phase {
    /// Interactive requests' latencies, and how late their SUBMITs began, in ns.
    latencies: Vec<u64>,
    lags: Vec<u64>,
    /// Jobs of each batch client (summed over GPUs).
    jobs: Vec<u64>,
    /// Mean utilisation of the GPUs.
    util: f64,
}

/// Runs the phases on GPU 0, or with `all_gpus` on every GPU at once, and writes one flat
/// JSON object to `json` (and stdout).
pub fn run(controls: &str, all_gpus: bool, json: &std::path::Path) -> Result<()> {
    let controls = Controls::parse(controls)?;
    let count = if all_gpus {
        gpu::render_nodes()?.len()
    } else {
        1
    };
    let gpus: Vec<Gpu> = (0..count).map(Gpu::open_index).collect::<Result<_, _>>()?;
    let g = &gpus[0];
    let units = g.get_param(uapi::drm_vagx_param_DRM_VAGX_PARAM_UNITS)?;
    let mode = g.get_param(uapi::drm_vagx_param_DRM_VAGX_PARAM_SCHED_MODE)?;
    let policy = std::fs::read_to_string("/sys/module/vagx_sched/parameters/policy")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let mode = if mode == u64::from(uapi::drm_vagx_sched_mode_DRM_VAGX_SCHED_KERNEL) {
        "kernel"
    } else {
        "firmware"
    };
    let clock = Instant::now();
    let plain: Vec<Option<u64>> = vec![None; BATCH_PER_UNIT * usize::try_from(units)?];
    let idle_phase = phase(&gpus, controls, Some(1), &[])?;
    let alone_phase = phase(&gpus, controls, None, &plain)?;
    let mix_phase = phase(&gpus, controls, Some(2), &plain)?;
    // From SUBMIT to the signal: the latency without the guest's lag before the SUBMIT (the
    // two lists are in arrival order).
    let from_submit = |l: &[u64], d: &[u64]| -> Vec<u64> {
        l.iter().zip(d).map(|(l, d)| l.saturating_sub(*d)).collect()
    };
    let mut idle_gpu = from_submit(&idle_phase.latencies, &idle_phase.lags);
    let mut mix_gpu = from_submit(&mix_phase.latencies, &mix_phase.lags);
    let (mut idle, mut idle_lag) = (idle_phase.latencies, idle_phase.lags);
    let (alone, alone_util) = (alone_phase.jobs, alone_phase.util);
    let (mut mix, mut mix_lag, mixed, mix_util) = (
        mix_phase.latencies,
        mix_phase.lags,
        mix_phase.jobs,
        mix_phase.util,
    );
    let shares = if controls.weights {
        let half = BATCH_PER_UNIT * usize::try_from(units)?;
        let mut weights = vec![Some(SHARE_WEIGHTS.0); half];
        weights.extend(vec![Some(SHARE_WEIGHTS.1); half]);
        let jobs = phase(&gpus, controls, None, &weights)?.jobs;
        let (a, b) = jobs.split_at(half);
        let (a, b): (u64, u64) = (a.iter().sum(), b.iter().sum());
        // CAST: counts as a ratio.
        Some(b as f64 / a.max(1) as f64)
    } else {
        None
    };
    let phase_s = PHASE_NS as f64 / 1e9;
    let rate = |jobs: &[u64]| jobs.iter().sum::<u64>() as f64 / phase_s;
    let mut out = format!(
        "{{\"mode\": \"{mode}\", \"policy\": \"{policy}\", \"weights\": {}, \"deadlines\": {}, \
         \"gpus\": {count}, \"units\": {units}, \"slo_us\": {}, \"idle_requests\": {}, \"idle_p50_us\": {}, \
         \"idle_p99_us\": {}, \"idle_slo\": {:.3}, \"alone_jobs_per_s\": {:.1}, \
         \"alone_utilisation\": {:.3}, \"mix_requests\": {}, \"mix_p50_us\": {}, \
         \"mix_p99_us\": {}, \"mix_slo\": {:.3}, \"mix_jobs_per_s\": {:.1}, \
         \"mix_utilisation\": {:.3}, \"idle_submit_lag_p99_us\": {}, \
         \"mix_submit_lag_p99_us\": {}, \"idle_from_submit_p50_us\": {}, \
         \"idle_from_submit_p99_us\": {}, \"mix_from_submit_p50_us\": {}, \
         \"mix_from_submit_p99_us\": {}",
        controls.weights,
        controls.deadlines,
        SLO_NS / 1000,
        idle.len(),
        percentile_us(&mut idle, 50),
        percentile_us(&mut idle, 99),
        within_slo(&idle),
        rate(&alone),
        alone_util,
        mix.len(),
        percentile_us(&mut mix, 50),
        percentile_us(&mut mix, 99),
        within_slo(&mix),
        rate(&mixed),
        mix_util,
        percentile_us(&mut idle_lag, 99),
        percentile_us(&mut mix_lag, 99),
        percentile_us(&mut idle_gpu, 50),
        percentile_us(&mut idle_gpu, 99),
        percentile_us(&mut mix_gpu, 50),
        percentile_us(&mut mix_gpu, 99),
    );
    if let Some(r) = shares {
        // CAST: small weights.
        let want = SHARE_WEIGHTS.1 as f64 / SHARE_WEIGHTS.0 as f64;
        out += &format!(", \"shares_configured\": {want:.3}, \"shares_measured\": {r:.3}");
    }
    out += &format!(", \"seconds\": {:.1}}}", clock.elapsed().as_secs_f64());
    println!("{out}");
    std::fs::write(json, format!("{out}\n")).with_context(|| format!("{}", json.display()))?;
    Ok(())
}
