// SPDX-License-Identifier: GPL-2.0 OR MIT

//! `vagx-tool bench-ml` (what `cargo xtask bench ml` boots): the collectives over a size
//! sweep, the model on 1, 2 and 4 GPUs in each parallelism, the dispatcher's two policies on
//! a skewed mix, and the device model's timing fidelity over all of it. Every result is
//! checked as in the tests. Each table line goes to stdout as `vagx-bench-ml| ...`, each
//! result as a JSON object on a `vagx-bench-ml-json: ` line, which the host collects.

use std::{os::fd::AsFd, time::Instant};

use anyhow::{ensure, Context, Result};

use crate::{
    cmdbuf::CmdBuf,
    collectives::{check, input, Op, Ring},
    fixture::{self, Ctx},
    gpu::{submit_times, Gpu, Selection, Sync},
    infer::{self, Launch, Model, Outcome, Shape},
    serve::{self, Config, Mix, Policy},
    sw_sync, uapi,
};

/// Prints a table line.
macro_rules! row {
    ($($arg:tt)*) => { println!("vagx-bench-ml| {}", format!($($arg)*)) };
}

/// Prints a result for the host's JSON.
fn json(kind: &str, fields: &[(&str, String)]) {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("\"{k}\": {v}"))
        .collect();
    println!(
        "vagx-bench-ml-json: {{\"kind\": \"{kind}\", {}}}",
        body.join(", ")
    );
}

fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        "null".into()
    }
}

/// Bytes a 16 MiB COPY moves per device second on GPU 0: the device model's copy bandwidth,
/// measured (GB/s).
fn copy_bandwidth(bytes: u64) -> Result<f64> {
    let g = Gpu::open_first()?;
    let ctx = Ctx::new(
        &g,
        uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_NORMAL,
        2 * bytes + (1 << 20),
    )?;
    let mut c = CmdBuf::new();
    c.copy(ctx.va(0), ctx.va(bytes), bytes);
    let before = g.device_load()?;
    let s = ctx.run_and_wait(&c)?;
    ensure!(
        ctx.fence_result(s)? == Ok(()),
        "the {bytes}-byte COPY failed"
    );
    let after = g.device_load()?;
    let busy = |l: &uapi::drm_vagx_device_load| -> u64 {
        l.unit_busy_ns[..l.num_units.min(uapi::DRM_VAGX_MAX_UNITS) as usize]
            .iter()
            .sum()
    };
    Ok(bytes as f64 / (busy(&after) - busy(&before)).max(1) as f64)
}

/// Where a chain of dependent jobs runs: what one hop from a job to the next costs.
#[derive(Clone, Copy)]
enum HopPath {
    /// One queue: the next job follows in the queue's order.
    OneQueue,
    /// Two queues of one GPU, each job waiting for the other queue's (a binary syncobj).
    TwoQueues,
    /// Two GPUs, each job waiting for the other GPU's through a binary syncobj shared by fd.
    TwoGpusBinary,
    /// Two GPUs, each job waiting for a point of the other GPU's timeline syncobj (as the
    /// collectives do).
    TwoGpusTimeline,
}

impl HopPath {
    fn name(self) -> &'static str {
        match self {
            Self::OneQueue => "one queue",
            Self::TwoQueues => "two queues, one GPU",
            Self::TwoGpusBinary => "two GPUs, binary syncobj",
            Self::TwoGpusTimeline => "two GPUs, timeline point",
        }
    }
}

/// Jobs in each hop chain.
const HOP_JOBS: usize = 48;

/// A chain of [`HOP_JOBS`] empty jobs along `path`, every one queued behind a closed gate
/// before the gate opens: the wall time from the opening to the last job's end, per hop
/// (µs). The jobs do nothing, so this is the latency between a job's end and the start of
/// the job that waits for it, what a collective's or a pipeline's steps pay each time.
fn hop_latency(gpus: &[Gpu], path: HopPath) -> Result<f64> {
    let two_gpus = matches!(path, HopPath::TwoGpusBinary | HopPath::TwoGpusTimeline);
    let second = if two_gpus { &gpus[1] } else { &gpus[0] };
    let ctxs = [Ctx::normal(&gpus[0])?, Ctx::normal(second)?];
    let timelines = [ctxs[0].gpu.syncobj()?, ctxs[1].gpu.syncobj()?];
    // Each context's handle of the other's timeline.
    let peer_timelines = if two_gpus {
        let import = |from: usize, to: usize| -> Result<u32> {
            let fd = ctxs[from].gpu.syncobj_export(timelines[from])?;
            Ok(ctxs[to].gpu.syncobj_import(fd.as_fd())?)
        };
        [import(1, 0)?, import(0, 1)?]
    } else {
        [timelines[1], timelines[0]]
    };
    let gate = sw_sync::Timeline::new().context("a sw_sync timeline")?;
    let gated = ctxs[0].gpu.syncobj()?;
    ctxs[0]
        .gpu
        .import_sync_file(gated, gate.fence(1)?.as_fd())?;
    let mut c = CmdBuf::new();
    c.nop();
    // The binary syncobj job k signals, as a handle of the file of job k + 1.
    let mut previous: Option<u32> = None;
    for k in 0..HOP_JOBS {
        let side = match path {
            HopPath::OneQueue => 0,
            _ => k % 2,
        };
        let ctx = &ctxs[side];
        let mut syncs = Vec::new();
        if k == 0 {
            syncs.push(Sync::wait(gated, 0));
        }
        match path {
            HopPath::OneQueue => {}
            HopPath::TwoQueues | HopPath::TwoGpusBinary => {
                if let Some(p) = previous {
                    syncs.push(Sync::wait(p, 0));
                }
            }
            HopPath::TwoGpusTimeline => {
                if k > 0 {
                    // Job k - 1 signalled point k / 2 of the other side's timeline.
                    syncs.push(Sync::wait(peer_timelines[side], k.div_ceil(2) as u64));
                }
            }
        }
        let signal = ctx.gpu.syncobj()?;
        syncs.push(Sync::signal(signal, 0));
        // Each side's own jobs signal its timeline's next point.
        let point = match path {
            HopPath::OneQueue => k + 1,
            _ => k / 2 + 1,
        };
        syncs.push(Sync::signal(timelines[side], point as u64));
        ctx.run(&c, &syncs)?;
        let other = &ctxs[1 - side];
        previous = Some(if two_gpus {
            let fd = ctx.gpu.syncobj_export(signal)?;
            other.gpu.syncobj_import(fd.as_fd())?
        } else {
            signal
        });
        if k + 1 == HOP_JOBS {
            let start = Instant::now();
            gate.advance(1)?;
            ctx.gpu.wait(signal, fixture::WAIT_MS)?;
            let us = start.elapsed().as_secs_f64() * 1e6;
            ensure!(
                ctx.fence_result(signal)? == Ok(()),
                "the last job of the {} chain failed",
                path.name()
            );
            return Ok(us / (HOP_JOBS - 1) as f64);
        }
    }
    unreachable!("the loop returns at its last job")
}

/// The hop latencies of every path (two GPUs if there are).
fn hops(indices: &[usize]) -> Result<()> {
    let gpus = indices
        .iter()
        .take(2)
        .map(|&i| Gpu::open_index(i))
        .collect::<std::io::Result<Vec<_>>>()?;
    row!("one hop: {HOP_JOBS} empty jobs in a chain, queued ahead, wall time per hop");
    row!("{:<26} {:>10}", "path", "us per hop");
    let mut paths = vec![HopPath::OneQueue, HopPath::TwoQueues];
    if gpus.len() > 1 {
        paths.extend([HopPath::TwoGpusBinary, HopPath::TwoGpusTimeline]);
    }
    let mut runs: Vec<(HopPath, bool)> = paths.iter().map(|&p| (p, true)).collect();
    // The two-GPU paths again with the consumers' waits on the CPU, in the same boot.
    runs.extend(paths.iter().skip(2).map(|&p| (p, false)));
    for (path, peer_waits) in runs {
        let us = with_peer_waits(indices, peer_waits, || hop_latency(&gpus, path))?;
        let name = match (path, peer_waits) {
            (HopPath::TwoGpusBinary | HopPath::TwoGpusTimeline, false) => {
                format!("{}, CPU waits", path.name())
            }
            _ => path.name().to_owned(),
        };
        row!("{:<36} {:>10.0}", name, us);
        json(
            "hop",
            &[
                ("path", format!("\"{name}\"")),
                ("jobs", HOP_JOBS.to_string()),
                ("peer_waits", peer_waits.to_string()),
                ("us_per_hop", num(us)),
            ],
        );
    }
    Ok(())
}

/// Runs `f` with waits on other GPUs' jobs in the consumers' firmware (`on`, the driver's
/// default) or on the CPU (debugfs `inject`: `peer-waits 0` on every GPU), and puts the
/// default back.
fn with_peer_waits<R>(indices: &[usize], on: bool, f: impl FnOnce() -> Result<R>) -> Result<R> {
    let set = |cmd: &str| -> Result<()> {
        for &i in indices {
            fixture::inject_of(i, cmd)?;
        }
        Ok(())
    };
    if !on {
        set("peer-waits 0")?;
    }
    let r = f();
    set("peer-waits 1")?;
    r
}

/// The configurations whose steps wait across GPUs, again with those waits on the CPU, in
/// the same boot: what the peer waits buy (the ring all-reduce of 16 MiB, tensor and
/// pipeline parallel on every GPU at the large batch, queued ahead).
fn cpu_waits(indices: &[usize]) -> Result<()> {
    let batch = MODEL_BATCHES[1];
    let (_, micro, model, gpus) = model_setup(indices, batch)?;
    let copy = copy_bandwidth(16 << 20)?;
    row!(
        "the same with waits on other GPUs' jobs on the CPU (peer-waits 0): all-reduce, then the model at batch {batch}, queued ahead"
    );
    with_peer_waits(indices, false, || {
        for (algorithm, op) in [("ring", Op::AllReduce), ("direct", Op::AllReduceDirect)] {
            collective_row(
                "collective_cpu_waits",
                indices,
                algorithm,
                op,
                16 << 20,
                copy,
            )?;
        }
        Ok(())
    })?;
    let launch = Launch::QueuedAhead;
    let single = median_of_runs(|| infer::data_parallel(&model, &gpus[..1], launch))?;
    let single_busy: f64 = single.busy_ms.iter().sum();
    let n = gpus.len();
    let rows = with_peer_waits(indices, false, || {
        Ok(vec![
            median_of_runs(|| infer::tensor_parallel(&model, indices, launch))?,
            median_of_runs(|| infer::pipeline_parallel(&model, &gpus[..n], micro, launch))?,
        ])
    })?;
    model_header();
    for r in &rows {
        model_row("model_cpu_waits", r, batch, &single, single_busy);
    }
    Ok(())
}

fn collectives(gpus: &[usize]) -> Result<()> {
    let copy = copy_bandwidth(16 << 20)?;
    row!(
        "all-reduce on {} GPUs, ring, one-shot and direct (device model COPY {copy:.2} GB/s)",
        gpus.len()
    );
    row!(
        "{:>9} {:>10} {:>12} {:>10} {:>10} {:>10} {:>12}",
        "algorithm",
        "bytes",
        "device ms",
        "submit ms",
        "algbw GB/s",
        "busbw GB/s",
        "busbw/COPY"
    );
    for (algorithm, op) in [
        ("ring", Op::AllReduce),
        ("one-shot", Op::AllReduceOneShot),
        ("direct", Op::AllReduceDirect),
    ] {
        for bytes in [64usize << 10, 1 << 20, 4 << 20, 16 << 20] {
            collective_row("collective", gpus, algorithm, op, bytes, copy)?;
        }
    }
    Ok(())
}

/// One all-reduce of `bytes` by `op` on `gpus`, checked; its table row and JSON line.
fn collective_row(
    kind: &str,
    gpus: &[usize],
    algorithm: &str,
    op: Op,
    bytes: usize,
    copy: f64,
) -> Result<()> {
    let len = bytes / 4;
    let mut ring = Ring::new(gpus, len)?;
    let inputs: Vec<Vec<f32>> = (0..gpus.len()).map(|i| input(i, len)).collect();
    for (i, v) in inputs.iter().enumerate() {
        ring.write(i, v);
    }
    let r = ring.run(op)?;
    check(&ring, op, &inputs)?;
    row!(
        "{algorithm:>9} {bytes:>10} {:>12.3} {:>10.3} {:>10.3} {:>10.3} {:>11.1}%",
        r.device_ns as f64 / 1e6,
        r.submit_ns as f64 / 1e6,
        r.algbw,
        r.busbw,
        100.0 * r.busbw / copy
    );
    json(
        kind,
        &[
            ("op", "\"all-reduce\"".into()),
            ("algorithm", format!("\"{algorithm}\"")),
            ("gpus", gpus.len().to_string()),
            ("bytes", bytes.to_string()),
            ("device_ns", r.device_ns.to_string()),
            ("submit_ns", r.submit_ns.to_string()),
            ("algbw_gbs", num(r.algbw)),
            ("busbw_gbs", num(r.busbw)),
            ("copy_gbs", num(copy)),
        ],
    );
    Ok(())
}

/// The model's batches: a small one, where a GPU's share of a step is shorter than the
/// guest's latency between dependent jobs on different GPUs, and one four times larger, where
/// it is longer (Documentation/gpu/vagx-ml.rst, "Benchmark").
const MODEL_BATCHES: [usize; 2] = [64, 256];

/// The benchmark's model at `batch` (its shape, pipeline micro-batches, weights) and the
/// GPUs `indices` opened.
fn model_setup(indices: &[usize], batch: usize) -> Result<(Shape, usize, Model, Vec<Gpu>)> {
    let shape = Shape {
        hidden: 256,
        layers: 8,
        batch,
        seed: 1,
    };
    // GPipe on S stages and M micro-batches is busy M of M + S - 1 steps: 8 micro-batches
    // on 4 GPUs cannot pass 32/11 = 2.9x, 16 reach 64/19 = 3.4x. 8 for the small batch (4 rows
    // each), 16 for the large one.
    let micro = (batch / 16).clamp(8, 16);
    let gpus = indices
        .iter()
        .map(|&i| Gpu::open_index(i))
        .collect::<std::io::Result<Vec<_>>>()?;
    Ok((shape, micro, Model::new(shape), gpus))
}

/// The model in every parallelism on 1, 2 and 4 GPUs, streamed and queued ahead.
fn model_runs(indices: &[usize], batch: usize) -> Result<()> {
    let (shape, micro, model, gpus) = model_setup(indices, batch)?;
    row!(
        "model: hidden {}, {} blocks, batch {}, pipeline in {micro} micro-batches; median of {MODEL_RUNS} runs, every output checked",
        shape.hidden,
        shape.layers,
        shape.batch
    );
    model_header();
    let mut counts = vec![1];
    counts.extend([2, 4].into_iter().filter(|&k| k <= gpus.len()));
    for launch in [Launch::Streamed, Launch::QueuedAhead] {
        let single = median_of_runs(|| infer::data_parallel(&model, &gpus[..1], launch))?;
        let single_busy: f64 = single.busy_ms.iter().sum();
        let mut rows: Vec<Outcome> = Vec::new();
        for &k in counts.iter().filter(|&&k| k > 1) {
            rows.push(median_of_runs(|| {
                infer::data_parallel(&model, &gpus[..k], launch)
            })?);
            rows.push(median_of_runs(|| {
                infer::tensor_parallel(&model, &indices[..k], launch)
            })?);
            rows.push(median_of_runs(|| {
                infer::pipeline_parallel(&model, &gpus[..k], micro, launch)
            })?);
        }
        for r in std::iter::once(&single).chain(&rows) {
            model_row("model", r, batch, &single, single_busy);
        }
    }
    Ok(())
}

/// The header of the model's table rows.
fn model_header() {
    row!(
        "{:<18} {:>7} {:>4} {:>9} {:>9} {:>13} {:>9} {:>6} {:>8} {:>10} {:>7} {:>18}",
        "strategy",
        "launch",
        "GPUs",
        "wall ms",
        "submit ms",
        "SUBMIT p50/max",
        "device ms",
        "spread",
        "speedup",
        "work bound",
        "bubble",
        "utilisation/GPU"
    );
}

/// Runs of each model configuration; its row is the run of median device time.
const MODEL_RUNS: usize = 3;

/// The run of median device time of [`MODEL_RUNS`] runs of `run` (every one checked). A run
/// is a few hundred milliseconds, and a moment of the shared host's other work can double
/// one; the median keeps such a moment from deciding a speedup.
fn median_of_runs(mut run: impl FnMut() -> Result<Outcome>) -> Result<Outcome> {
    let mut runs = (0..MODEL_RUNS).map(|_| run()).collect::<Result<Vec<_>>>()?;
    runs.sort_by(|a, b| a.device_ms.total_cmp(&b.device_ms));
    let spread = (runs[0].device_ms, runs[runs.len() - 1].device_ms);
    let mut median = runs.swap_remove(runs.len() / 2);
    median.device_ms_spread = Some(spread);
    Ok(median)
}

/// One row of the model's table and its JSON line; speedups against `single` (one GPU,
/// launched the same way), whose units were busy `single_busy` ms.
fn model_row(kind: &str, r: &Outcome, batch: usize, single: &Outcome, single_busy: f64) {
    let speedup = single.device_ms / r.device_ms.max(1e-9);
    // The most a perfect overlap would give: one GPU's work over the busiest GPU's.
    let bound = single_busy / r.busy_ms.iter().copied().fold(0.0, f64::max).max(1e-9);
    let util: Vec<String> = r
        .utilisation
        .iter()
        .map(|u| format!("{:.0}%", 100.0 * u))
        .collect();
    let launch = match r.launch {
        Launch::Streamed => "stream",
        Launch::QueuedAhead => "ahead",
    };
    let p50 = submit_times::quantile(&r.submits_us, 0.5);
    let max = submit_times::quantile(&r.submits_us, 1.0);
    // (longest - shortest) / median device time of the runs.
    let spread = r
        .device_ms_spread
        .map(|(lo, hi)| format!("{:.0}%", 100.0 * (hi - lo) / r.device_ms.max(1e-9)))
        .unwrap_or_default();
    row!(
        "{:<18} {:>7} {:>4} {:>9.2} {:>9.2} {:>13} {:>9.2} {:>6} {:>7.2}x {:>9.2}x {:>7} {:>18}",
        r.name,
        launch,
        r.gpus,
        r.wall_ms,
        r.submit_ms,
        format!("{p50}/{max} us"),
        r.device_ms,
        spread,
        speedup,
        bound,
        r.bubble
            .map(|b| format!("{:.0}%", 100.0 * b))
            .unwrap_or_default(),
        util.join(" ")
    );
    json(
        kind,
        &[
            ("strategy", format!("\"{}\"", r.name)),
            ("launch", format!("\"{launch}\"")),
            ("batch", batch.to_string()),
            ("gpus", r.gpus.to_string()),
            ("wall_ms", num(r.wall_ms)),
            ("submit_ms", num(r.submit_ms)),
            ("submits", r.submits_us.len().to_string()),
            ("submit_p50_us", p50.to_string()),
            (
                "submit_p99_us",
                submit_times::quantile(&r.submits_us, 0.99).to_string(),
            ),
            ("submit_max_us", max.to_string()),
            ("device_ms", num(r.device_ms)),
            ("runs", MODEL_RUNS.to_string()),
            (
                "device_ms_min",
                r.device_ms_spread.map_or("null".into(), |s| num(s.0)),
            ),
            (
                "device_ms_max",
                r.device_ms_spread.map_or("null".into(), |s| num(s.1)),
            ),
            ("speedup", num(speedup)),
            ("work_bound_speedup", num(bound)),
            ("bubble", r.bubble.map_or("null".into(), num)),
            ("worst_error", num(f64::from(r.worst_error))),
            (
                "utilisation",
                format!(
                    "[{}]",
                    r.utilisation
                        .iter()
                        .map(|u| num(*u))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        ],
    );
}

/// Runs of each dispatch policy.
const DISPATCH_RUNS: usize = 3;

fn dispatcher(indices: &[usize]) -> Result<()> {
    let cfg = Config {
        shape: Shape {
            hidden: 256,
            layers: 4,
            batch: 1,
            seed: 3,
        },
        requests: 200,
        small: 8,
        large: 64,
        mix: Mix::Skewed,
        load: 0.7,
        policy: Policy::LeastLoaded,
        lose: None,
        calibration: None,
    };
    row!(
        "dispatcher: {} requests, skewed mix of {} and {} rows, offered load {:.1}, on {} GPUs",
        cfg.requests,
        cfg.small,
        cfg.large,
        cfg.load,
        indices.len()
    );
    row!(
        "{:<13} {:>10} {:>8} {:>8} {:>8} {:>10} {:>24}",
        "policy",
        "requests/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "imbalance",
        "utilisation per GPU"
    );
    // Both policies offered the same load (the first run's calibration), alternating, three
    // runs each; each policy's row is its run of median p99. One calibration per run let the
    // host's speed at each calibration set each policy's load, and one run each let a slow
    // minute of the host decide the ratio.
    let mut calibration = None;
    let mut runs: [Vec<serve::Report>; 2] = [Vec::new(), Vec::new()];
    let policies = [Policy::LeastLoaded, Policy::RoundRobin];
    for _ in 0..DISPATCH_RUNS {
        for (k, policy) in policies.into_iter().enumerate() {
            let c = Config {
                policy,
                calibration,
                ..cfg
            };
            let r = serve::run(&c, indices)?;
            ensure!(r.answered == c.requests, "{} answered", r.answered);
            calibration.get_or_insert(r.calibration());
            runs[k].push(r);
        }
    }
    let mut p99 = Vec::new();
    for (policy, mut rs) in policies.into_iter().zip(runs) {
        rs.sort_by(|a, b| a.p99_ms.total_cmp(&b.p99_ms));
        let all: Vec<String> = rs.iter().map(|r| format!("{:.1}", r.p99_ms)).collect();
        let r = &rs[rs.len() / 2];
        let util: Vec<String> = r
            .per_gpu
            .iter()
            .map(|g| format!("{:.0}%", 100.0 * g.utilisation))
            .collect();
        row!(
            "{:<13} {:>10.1} {:>8.2} {:>8.2} {:>8.2} {:>9.1}% {:>24}   (p99 of the runs: {})",
            policy.name(),
            r.throughput(),
            r.p50_ms,
            r.p99_ms,
            r.max_ms,
            100.0 * r.imbalance,
            util.join(" "),
            all.join(", ")
        );
        json(
            "dispatcher",
            &[
                ("policy", format!("\"{}\"", policy.name())),
                ("gpus", indices.len().to_string()),
                ("requests", r.answered.to_string()),
                ("runs", rs.len().to_string()),
                ("throughput_per_s", num(r.throughput())),
                ("p50_ms", num(r.p50_ms)),
                ("p99_ms", num(r.p99_ms)),
                ("p99_runs_ms", format!("[{}]", all.join(", "))),
                ("max_ms", num(r.max_ms)),
                ("imbalance", num(r.imbalance)),
                ("cost_small_us", num(r.cost_us[0])),
                ("cost_large_us", num(r.cost_us[1])),
                ("parallel_units", num(r.parallel)),
            ],
        );
        p99.push(r.p99_ms);
    }
    row!(
        "least-loaded p99 / round-robin p99 (medians of {DISPATCH_RUNS} runs each): {:.2}",
        p99[0] / p99[1].max(1e-9)
    );
    Ok(())
}

/// The device model's own count of commands that ended after their modelled time, on every
/// GPU since the driver bound it.
fn fidelity(indices: &[usize]) -> Result<()> {
    row!("timing fidelity (commands that completed at their modelled time):");
    for &i in indices {
        let path = fixture::debugfs_dir_of(i)?.join("busy");
        let busy = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let e = crate::emulation_counts(&busy).context("no emulation counters")?;
        let on_time = 1.0 - e.late as f64 / e.commands.max(1) as f64;
        row!(
            "  gpu{i}: {} commands, {} late, {:.1}% on time; host {:.1} ms for {:.1} ms modelled",
            e.commands,
            e.late,
            100.0 * on_time,
            e.host_ns as f64 / 1e6,
            e.modelled_ns as f64 / 1e6
        );
        json(
            "fidelity",
            &[
                ("gpu", i.to_string()),
                ("commands", e.commands.to_string()),
                ("late", e.late.to_string()),
                ("on_time", num(on_time)),
                ("host_ns", e.host_ns.to_string()),
                ("modelled_ns", e.modelled_ns.to_string()),
            ],
        );
    }
    Ok(())
}

/// `vagx-tool bench-ml`.
pub fn run() -> Result<()> {
    let indices: Vec<usize> = Selection::All
        .nodes()?
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    ensure!(!indices.is_empty(), "no vagx GPU");
    hops(&indices)?;
    collectives(&indices)?;
    for batch in MODEL_BATCHES {
        model_runs(&indices, batch)?;
    }
    if indices.len() > 1 {
        cpu_waits(&indices)?;
    }
    dispatcher(&indices)?;
    fidelity(&indices)?;
    Ok(())
}
