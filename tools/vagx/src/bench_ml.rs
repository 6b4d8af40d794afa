// SPDX-License-Identifier: GPL-2.0 OR MIT

//! `vagx-tool bench-ml` (what `cargo xtask bench ml` boots): the collectives over a size
//! sweep, the model on 1, 2 and 4 GPUs in each parallelism, the dispatcher's two policies on
//! a skewed mix, and the device model's timing fidelity over all of it. Every result is
//! checked as in the tests. Each table line goes to stdout as `vagx-bench-ml| ...`, each
//! result as a JSON object on a `vagx-bench-ml-json: ` line, which the host collects.

use anyhow::{ensure, Context, Result};

use crate::{
    cmdbuf::CmdBuf,
    collectives::{check, input, Op, Ring},
    fixture::{self, Ctx},
    gpu::{Gpu, Selection},
    infer::{self, Model, Outcome, Shape},
    serve::{self, Config, Mix, Policy},
    uapi,
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

fn collectives(gpus: &[usize]) -> Result<()> {
    let copy = copy_bandwidth(16 << 20)?;
    row!(
        "all-reduce on {} GPUs (ring; device model COPY {copy:.2} GB/s)",
        gpus.len()
    );
    row!(
        "{:>10} {:>12} {:>10} {:>10} {:>10} {:>12}",
        "bytes",
        "device ms",
        "submit ms",
        "algbw GB/s",
        "busbw GB/s",
        "busbw/COPY"
    );
    for bytes in [64usize << 10, 1 << 20, 4 << 20, 16 << 20] {
        let len = bytes / 4;
        let mut ring = Ring::new(gpus, len)?;
        let inputs: Vec<Vec<f32>> = (0..gpus.len()).map(|i| input(i, len)).collect();
        for (i, v) in inputs.iter().enumerate() {
            ring.write(i, v);
        }
        let r = ring.run(Op::AllReduce)?;
        check(&ring, Op::AllReduce, &inputs)?;
        row!(
            "{bytes:>10} {:>12.3} {:>10.3} {:>10.3} {:>10.3} {:>11.1}%",
            r.device_ns as f64 / 1e6,
            r.submit_ns as f64 / 1e6,
            r.algbw,
            r.busbw,
            100.0 * r.busbw / copy
        );
        json(
            "collective",
            &[
                ("op", "\"all-reduce\"".into()),
                ("gpus", gpus.len().to_string()),
                ("bytes", bytes.to_string()),
                ("device_ns", r.device_ns.to_string()),
                ("submit_ns", r.submit_ns.to_string()),
                ("algbw_gbs", num(r.algbw)),
                ("busbw_gbs", num(r.busbw)),
                ("copy_gbs", num(copy)),
            ],
        );
    }
    Ok(())
}

fn model_runs(indices: &[usize]) -> Result<()> {
    let shape = Shape {
        hidden: 256,
        layers: 8,
        batch: 64,
        seed: 1,
    };
    let micro = 8;
    let model = Model::new(shape);
    let gpus = indices
        .iter()
        .map(|&i| Gpu::open_index(i))
        .collect::<std::io::Result<Vec<_>>>()?;
    row!(
        "model: hidden {}, {} blocks, batch {}, pipeline in {micro} micro-batches; every output checked",
        shape.hidden,
        shape.layers,
        shape.batch
    );
    row!(
        "{:<18} {:>4} {:>9} {:>9} {:>9} {:>8} {:>10} {:>8} {:>22}",
        "strategy",
        "GPUs",
        "wall ms",
        "submit ms",
        "device ms",
        "speedup",
        "work bound",
        "bubble",
        "utilisation per GPU"
    );
    let single = infer::data_parallel(&model, &gpus[..1])?;
    let single_busy: f64 = single.busy_ms.iter().sum();
    let mut rows: Vec<Outcome> = Vec::new();
    let mut counts = vec![1];
    counts.extend([2, 4].into_iter().filter(|&k| k <= gpus.len()));
    for &k in &counts {
        if k == 1 {
            continue;
        }
        rows.push(infer::data_parallel(&model, &gpus[..k])?);
        rows.push(infer::tensor_parallel(&model, &indices[..k])?);
        rows.push(infer::pipeline_parallel(&model, &gpus[..k], micro)?);
    }
    for r in std::iter::once(&single).chain(&rows) {
        let speedup = single.device_ms / r.device_ms.max(1e-9);
        // The most a perfect overlap would give: one GPU's work over the busiest GPU's.
        let bound = single_busy / r.busy_ms.iter().copied().fold(0.0, f64::max).max(1e-9);
        let util: Vec<String> = r
            .utilisation
            .iter()
            .map(|u| format!("{:.0}%", 100.0 * u))
            .collect();
        row!(
            "{:<18} {:>4} {:>9.2} {:>9.2} {:>9.2} {:>7.2}x {:>9.2}x {:>8} {:>22}",
            r.name,
            r.gpus,
            r.wall_ms,
            r.submit_ms,
            r.device_ms,
            speedup,
            bound,
            r.bubble
                .map(|b| format!("{:.0}%", 100.0 * b))
                .unwrap_or_default(),
            util.join(" ")
        );
        json(
            "model",
            &[
                ("strategy", format!("\"{}\"", r.name)),
                ("gpus", r.gpus.to_string()),
                ("wall_ms", num(r.wall_ms)),
                ("submit_ms", num(r.submit_ms)),
                ("device_ms", num(r.device_ms)),
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
    Ok(())
}

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
    let mut p99 = Vec::new();
    for policy in [Policy::LeastLoaded, Policy::RoundRobin] {
        let c = Config { policy, ..cfg };
        let r = serve::run(&c, indices)?;
        ensure!(r.answered == c.requests, "{} answered", r.answered);
        let util: Vec<String> = r
            .per_gpu
            .iter()
            .map(|g| format!("{:.0}%", 100.0 * g.utilisation))
            .collect();
        row!(
            "{:<13} {:>10.1} {:>8.2} {:>8.2} {:>8.2} {:>9.1}% {:>24}",
            policy.name(),
            r.throughput(),
            r.p50_ms,
            r.p99_ms,
            r.max_ms,
            100.0 * r.imbalance,
            util.join(" ")
        );
        json(
            "dispatcher",
            &[
                ("policy", format!("\"{}\"", policy.name())),
                ("gpus", indices.len().to_string()),
                ("requests", r.answered.to_string()),
                ("throughput_per_s", num(r.throughput())),
                ("p50_ms", num(r.p50_ms)),
                ("p99_ms", num(r.p99_ms)),
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
        "least-loaded p99 / round-robin p99: {:.2}",
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
    collectives(&indices)?;
    model_runs(&indices)?;
    dispatcher(&indices)?;
    fidelity(&indices)?;
    Ok(())
}
