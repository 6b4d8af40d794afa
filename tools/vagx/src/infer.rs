// SPDX-License-Identifier: GPL-2.0 OR MIT

//! `vagx-tool infer`: a small deterministic model run on one GPU, data parallel and
//! pipeline parallel across the GPUs, every output checked against the CPU.
//!
//! The model is an MLP of `layers` blocks on `hidden`-wide rows: each block is
//! `h = layer_norm(relu(h × W + b))` (ABI 1.2's GEMM, ELEMENTWISE, ACTIVATION and
//! LAYER_NORM), and a softmax ends it. Weights, biases, norm parameters and inputs come from
//! a seed. A forward pass on a GPU is one job.
//!
//! - **single**: the whole batch on GPU 0;
//! - **data parallel**: the batch split over the GPUs (uneven splits allowed), each with
//!   its own copy of the weights, no communication;
//! - **pipeline parallel**: the layers split over the GPUs, the batch cut into micro-batches
//!   that flow from stage to stage: stage `s`'s job for micro-batch `m` reads stage `s-1`'s
//!   output for it straight from that GPU's buffer (a dma-buf mapped read-only) and waits for
//!   it through stage `s-1`'s timeline syncobj, shared across the files. Every job is queued
//!   before the first runs (GPipe's forward schedule); the bubble is measured as the share of
//!   the run's device time the stages were idle.
//!
//! GEMM, bias, ReLU and layer norm are bit-exact against the CPU; the softmax's `exp` may
//! differ in the last bit between the device model's `libm` and the tool's, so outputs are
//! compared within `1e-6`, and the worst difference is printed.

use std::{os::fd::AsFd, time::Instant};

use anyhow::{ensure, Context, Result};
use vagx_abi::cmd::{ACTIVATION_RELU, ELEMENTWISE_ADD};

use crate::{
    cmdbuf::CmdBuf,
    fixture::{Ctx, BASE, WAIT_MS},
    gpu::{Gpu, Sync},
    uapi,
};

/// The model's shape and seed.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub hidden: usize,
    pub layers: usize,
    pub batch: usize,
    pub seed: u64,
}

/// The model's parameters.
pub struct Model {
    shape: Shape,
    /// Per layer: W (`hidden × hidden`), b, gamma, beta (`hidden` each).
    w: Vec<Vec<f32>>,
    b: Vec<Vec<f32>>,
    gamma: Vec<Vec<f32>>,
    beta: Vec<Vec<f32>>,
}

/// Deterministic values from `seed`, scaled by `scale`, about uniform in `[-scale, scale]`.
fn seeded(seed: u64, count: usize, scale: f32) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

impl Model {
    pub fn new(shape: Shape) -> Self {
        let h = shape.hidden;
        let per = |k: u64, n: usize, scale: f32| -> Vec<Vec<f32>> {
            (0..shape.layers)
                .map(|l| seeded(shape.seed * 1000 + k * 100 + l as u64, n, scale))
                .collect()
        };
        // Weights scaled as 1/sqrt(hidden), so that activations stay about unit size.
        Self {
            w: per(1, h * h, 1.0 / (h as f32).sqrt()),
            b: per(2, h, 0.1),
            gamma: per(3, h, 1.0)
                .into_iter()
                .map(|g| g.iter().map(|v| 1.0 + 0.25 * v).collect())
                .collect(),
            beta: per(4, h, 0.1),
            shape,
        }
    }

    /// The input batch (`batch × hidden`).
    pub fn input(&self) -> Vec<f32> {
        seeded(
            self.shape.seed + 7,
            self.shape.batch * self.shape.hidden,
            1.0,
        )
    }

    /// Layers `layers` of the model on `x` (`rows × hidden`) on the CPU, in the device's
    /// order of operations, then the softmax if `last`.
    pub fn cpu(&self, x: &[f32], layers: std::ops::Range<usize>, last: bool) -> Vec<f32> {
        let h = self.shape.hidden;
        let rows = x.len() / h;
        let mut a = x.to_vec();
        for l in layers {
            let mut out = vec![0f32; rows * h];
            for i in 0..rows {
                for j in 0..h {
                    let mut s = 0f32;
                    for p in 0..h {
                        s += a[i * h + p] * self.w[l][p * h + j];
                    }
                    let v = s + self.b[l][j];
                    out[i * h + j] = if v > 0.0 { v } else { 0.0 };
                }
            }
            for row in out.chunks_mut(h) {
                let n = h as f32;
                let mean = row.iter().fold(0.0f32, |s, &v| s + v) / n;
                let var = row.iter().fold(0.0f32, |s, &v| s + (v - mean) * (v - mean)) / n;
                let inv = 1.0 / (var + EPS).sqrt();
                for ((v, &g), &b) in row.iter_mut().zip(&self.gamma[l]).zip(&self.beta[l]) {
                    *v = ((*v - mean) * inv) * g + b;
                }
            }
            a = out;
        }
        if last {
            for row in a.chunks_mut(h) {
                let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0f32;
                for v in row.iter_mut() {
                    *v = (*v - m).exp();
                    sum += *v;
                }
                for v in row.iter_mut() {
                    *v /= sum;
                }
            }
        }
        a
    }
}

const EPS: f32 = 1e-5;

/// One GPU's copy of layers `layers`, with room for `rows` rows of activations per
/// micro-batch slot and `slots` slots of output.
struct Stage<'g> {
    ctx: Ctx<'g>,
    layers: std::ops::Range<usize>,
    rows: usize,
    /// Offsets in the data area.
    weights: u64,
    input: u64,
    act: [u64; 2],
    out: u64,
    /// Command buffers, [`JOB_CMDS`] bytes per job (one per slot).
    cmds: u64,
    /// The buffer's size.
    size: u64,
}

/// Room for one job's commands (200 bytes a layer).
const JOB_CMDS: u64 = 8192;

/// The buffer offsets of layer `l`'s parameters, relative to `weights`.
fn param_offsets(h: usize, rows: usize, l: usize) -> (u64, u64, u64, u64) {
    let (h, rows) = (h as u64, rows as u64);
    let per = 4 * (h * h + rows * h + 2 * h);
    let base = per * l as u64;
    (
        base,
        base + 4 * h * h,
        base + 4 * (h * h + rows * h),
        base + 4 * (h * h + rows * h + h),
    )
}

fn put(ctx: &Ctx<'_>, offset: u64, v: &[f32]) {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    ctx.map.write(ctx.off(offset), &bytes);
}

fn get(ctx: &Ctx<'_>, offset: u64, count: usize) -> Vec<f32> {
    let mut bytes = vec![0u8; count * 4];
    ctx.map.read(ctx.off(offset), &mut bytes);
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

impl<'g> Stage<'g> {
    /// Layers `layers` of `model` on `gpu`, for up to `rows` rows at a time and `slots`
    /// output slots.
    fn new(
        gpu: &'g Gpu,
        model: &Model,
        layers: std::ops::Range<usize>,
        rows: usize,
        slots: usize,
    ) -> Result<Self> {
        let h = model.shape.hidden;
        let n_layers = layers.len() as u64;
        let params = param_offsets(h, rows, 0).3 + 4 * h as u64;
        let act = 4 * (rows * h) as u64;
        let weights = 0;
        let input = weights + params * n_layers.max(1);
        let act0 = input + act * slots as u64;
        let out = act0 + 2 * act;
        let cmds = out + act * slots as u64;
        let size = (64 * 1024 + cmds + JOB_CMDS * slots as u64).next_multiple_of(1 << 20);
        let ctx = Ctx::new(gpu, uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_NORMAL, size)?;
        for (k, l) in layers.clone().enumerate() {
            let (w, b, g, be) = param_offsets(h, rows, k);
            put(&ctx, weights + w, &model.w[l]);
            // The bias as a whole `rows × hidden` matrix: ELEMENTWISE has no broadcast.
            let bias: Vec<f32> = (0..rows).flat_map(|_| model.b[l].iter().copied()).collect();
            put(&ctx, weights + b, &bias);
            put(&ctx, weights + g, &model.gamma[l]);
            put(&ctx, weights + be, &model.beta[l]);
        }
        Ok(Self {
            ctx,
            layers,
            rows,
            weights,
            input,
            act: [act0, act0 + act],
            out,
            cmds,
            size,
        })
    }

    /// Submits `c` as the job of slot `slot` with `syncs`.
    fn submit(&self, c: &CmdBuf, slot: usize, syncs: &[Sync]) -> Result<()> {
        ensure!(
            u64::from(c.len()) <= JOB_CMDS,
            "too many layers for one job"
        );
        let at = self.cmds + JOB_CMDS * slot as u64;
        self.ctx.map.write(self.ctx.off(at), c.bytes());
        Ok(self
            .ctx
            .gpu
            .submit(self.ctx.queue, self.ctx.va(at), c.len(), syncs)?)
    }

    /// The commands of this stage for `rows` rows read at GPU address `from`, the result
    /// to output slot `slot` (softmaxed if `last`).
    fn commands(&self, h: usize, rows: usize, from: u64, slot: usize, last: bool) -> CmdBuf {
        let va = |o: u64| self.ctx.va(o);
        let (hu, ru) = (h as u32, rows as u32);
        let count = (rows * h) as u64;
        let out = self.out + 4 * (slot * self.rows * h) as u64;
        let mut c = CmdBuf::new();
        let mut src = from;
        for k in 0..self.layers.len() {
            let (w, b, g, be) = param_offsets(h, self.rows, k);
            let dst = if k + 1 == self.layers.len() && !last {
                va(out)
            } else {
                va(self.act[k % 2])
            };
            c.gemm(src, va(self.weights + w), dst, ru, hu, hu)
                .elementwise(
                    ELEMENTWISE_ADD,
                    [dst, va(self.weights + b), dst],
                    count,
                    [0.0; 2],
                )
                .activation(ACTIVATION_RELU, dst, dst, count)
                .layer_norm(
                    [dst, dst, va(self.weights + g), va(self.weights + be)],
                    [ru, hu],
                    EPS,
                    false,
                );
            src = dst;
        }
        if last {
            c.softmax(src, va(out), ru, hu);
        } else if self.layers.is_empty() {
            c.copy(src, va(out), 4 * count);
        }
        c
    }
}

/// What a configuration did.
pub struct Outcome {
    pub name: &'static str,
    pub gpus: usize,
    pub wall_ms: f64,
    /// Per GPU: busy device time (ms) and utilisation of its units over the run.
    pub busy_ms: Vec<f64>,
    pub utilisation: Vec<f64>,
    pub worst_error: f32,
    /// Pipeline parallel: the share of the stages' device time idle.
    pub bubble: Option<f64>,
}

/// Busy time (ns) of every unit of `g`, and its device clock.
fn busy(g: &Gpu) -> Result<(u64, u64, u32)> {
    let l = g.device_load()?;
    let n = l.num_units.min(uapi::DRM_VAGX_MAX_UNITS);
    Ok((
        l.unit_busy_ns[..n as usize].iter().sum(),
        l.device_time_ns,
        n,
    ))
}

/// Utilisation figures of `gpus` between two `busy` reads.
fn usage(before: &[(u64, u64, u32)], after: &[(u64, u64, u32)]) -> (Vec<f64>, Vec<f64>) {
    before
        .iter()
        .zip(after)
        .map(|(b, a)| {
            let busy = (a.0 - b.0) as f64;
            let span = (a.1 - b.1).max(1) as f64 * f64::from(a.2.max(1));
            (busy / 1e6, busy / span)
        })
        .unzip()
}

fn worst(got: &[f32], want: &[f32]) -> Result<f32> {
    ensure!(
        got.len() == want.len(),
        "{} outputs, {} expected",
        got.len(),
        want.len()
    );
    let mut worst = 0f32;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let d = (g - w).abs();
        ensure!(
            d <= 1e-6 * w.abs().max(1.0),
            "output {i}: GPU {g:e}, CPU {w:e}"
        );
        worst = worst.max(d);
    }
    Ok(worst)
}

/// The rows `[start, end)` of part `i` of `n` of `total` rows.
fn part(total: usize, n: usize, i: usize) -> (usize, usize) {
    (i * total / n, (i + 1) * total / n)
}

/// Data parallel on `gpus` (one GPU: the single-GPU run).
pub fn data_parallel(model: &Model, gpus: &[Gpu]) -> Result<Outcome> {
    let (h, batch, layers) = (model.shape.hidden, model.shape.batch, model.shape.layers);
    let n = gpus.len();
    let x = model.input();
    let stages = gpus
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let (s, e) = part(batch, n, i);
            Stage::new(g, model, 0..layers, (e - s).max(1), 1)
        })
        .collect::<Result<Vec<_>>>()?;
    for (i, st) in stages.iter().enumerate() {
        let (s, e) = part(batch, n, i);
        put(&st.ctx, st.input, &x[s * h..e * h]);
    }
    let before = gpus.iter().map(busy).collect::<Result<Vec<_>>>()?;
    let start = Instant::now();
    let mut done = Vec::new();
    for (i, st) in stages.iter().enumerate() {
        let (s, e) = part(batch, n, i);
        if e == s {
            continue;
        }
        let c = st.commands(h, e - s, st.ctx.va(st.input), 0, true);
        let sync = st.ctx.gpu.syncobj()?;
        st.submit(&c, 0, &[Sync::signal(sync, 0)])?;
        done.push((i, sync));
    }
    for &(i, s) in &done {
        stages[i]
            .ctx
            .gpu
            .wait(s, WAIT_MS)
            .context("waiting for a forward pass")?;
        let r = stages[i].ctx.fence_result(s)?;
        ensure!(r == Ok(()), "gpu{i}'s forward pass failed: {r:?}");
    }
    let wall_ms = start.elapsed().as_secs_f64() * 1e3;
    let after = gpus.iter().map(busy).collect::<Result<Vec<_>>>()?;
    let mut got = Vec::new();
    for (i, st) in stages.iter().enumerate() {
        let (s, e) = part(batch, n, i);
        got.extend(get(&st.ctx, st.out, (e - s) * h));
    }
    let want = model.cpu(&x, 0..layers, true);
    let (busy_ms, utilisation) = usage(&before, &after);
    Ok(Outcome {
        name: if n == 1 { "single" } else { "data parallel" },
        gpus: n,
        wall_ms,
        busy_ms,
        utilisation,
        worst_error: worst(&got, &want)?,
        bubble: None,
    })
}

/// Where a stage maps its predecessor's buffer.
const PEER_VA: u64 = 0x4000_0000;

/// Pipeline parallel on `gpus`: stage `s` has layers `part(layers, n, s)`, the batch flows
/// in `micro` micro-batches.
pub fn pipeline_parallel(model: &Model, gpus: &[Gpu], micro: usize) -> Result<Outcome> {
    let (h, batch, layers) = (model.shape.hidden, model.shape.batch, model.shape.layers);
    let n = gpus.len();
    let micro = micro.clamp(1, batch);
    let mb = batch.div_ceil(micro);
    let x = model.input();
    let stages = gpus
        .iter()
        .enumerate()
        .map(|(s, g)| {
            let (a, b) = part(layers, n, s);
            Stage::new(g, model, a..b, mb, micro)
        })
        .collect::<Result<Vec<_>>>()?;
    // Each stage maps its predecessor's buffer and imports its timeline.
    let mut timelines = Vec::new();
    let mut prev_timelines = vec![None];
    let mut peer_bos = vec![None];
    for (s, st) in stages.iter().enumerate() {
        timelines.push(st.ctx.gpu.syncobj()?);
        if s > 0 {
            let p = &stages[s - 1];
            let buf = p.ctx.gpu.prime_export(p.ctx.bo)?;
            let bo = st.ctx.gpu.prime_import(buf.as_fd())?;
            st.ctx
                .gpu
                .vm_map_flags(st.ctx.vm, bo, PEER_VA, p.size, uapi::DRM_VAGX_VM_BIND_READ)
                .context("mapping the previous stage's buffer")?;
            peer_bos.push(Some(bo));
            let fd = p.ctx.gpu.syncobj_export(timelines[s - 1])?;
            prev_timelines.push(Some(st.ctx.gpu.syncobj_import(fd.as_fd())?));
        }
    }
    for m in 0..micro {
        let (r0, r1) = part(batch, micro, m);
        put(
            &stages[0].ctx,
            stages[0].input + 4 * (m * mb * h) as u64,
            &x[r0 * h..r1 * h],
        );
    }
    let before = gpus.iter().map(busy).collect::<Result<Vec<_>>>()?;
    let start = Instant::now();
    // GPipe's forward schedule: every micro-batch through every stage, all queued now.
    for m in 0..micro {
        let (r0, r1) = part(batch, micro, m);
        for (s, st) in stages.iter().enumerate() {
            let from = if s == 0 {
                st.ctx.va(st.input + 4 * (m * mb * h) as u64)
            } else {
                let p = &stages[s - 1];
                PEER_VA + (p.ctx.va(p.out + 4 * (m * mb * h) as u64) - BASE)
            };
            let c = st.commands(h, r1 - r0, from, m, s + 1 == n);
            let mut syncs = Vec::new();
            if let Some(p) = prev_timelines[s] {
                syncs.push(Sync::wait(p, m as u64 + 1));
            }
            syncs.push(Sync::signal(timelines[s], m as u64 + 1));
            st.submit(&c, m, &syncs)
                .with_context(|| format!("stage {s}, micro-batch {m}"))?;
        }
    }
    let last = stages.len() - 1;
    stages[last]
        .ctx
        .gpu
        .wait_point(timelines[last], micro as u64, WAIT_MS)
        .context("waiting for the pipeline")?;
    let wall_ms = start.elapsed().as_secs_f64() * 1e3;
    let after = gpus.iter().map(busy).collect::<Result<Vec<_>>>()?;
    let mut got = Vec::new();
    for m in 0..micro {
        let (r0, r1) = part(batch, micro, m);
        got.extend(get(
            &stages[last].ctx,
            stages[last].out + 4 * (m * mb * h) as u64,
            (r1 - r0) * h,
        ));
    }
    for (st, bo) in stages.iter().zip(peer_bos) {
        if let Some(bo) = bo {
            let _ = st.ctx.gpu.gem_close(bo);
        }
    }
    let want = model.cpu(&x, 0..layers, true);
    let (busy_ms, utilisation) = usage(&before, &after);
    // A stage is one queue, so at most one unit busy: its idle share of the run is
    // 1 - busy / span, and the bubble the stages' mean.
    let span_ms = (after[0].1 - before[0].1) as f64 / 1e6;
    let bubble = 1.0 - busy_ms.iter().sum::<f64>() / (n as f64 * span_ms.max(1e-9));
    Ok(Outcome {
        name: "pipeline parallel",
        gpus: n,
        wall_ms,
        busy_ms,
        utilisation,
        worst_error: worst(&got, &want)?,
        bubble: Some(bubble),
    })
}

/// The single-GPU run, then (with several GPUs) data and pipeline parallel.
pub fn run_all(model: &Model, gpus: &[Gpu], micro: usize) -> Result<Vec<Outcome>> {
    let mut rows = vec![data_parallel(model, &gpus[..1])?];
    if gpus.len() > 1 {
        rows.push(data_parallel(model, gpus)?);
        rows.push(pipeline_parallel(model, gpus, micro)?);
    }
    Ok(rows)
}

/// `vagx-tool infer`: the single-GPU run, then data and pipeline parallel on `gpus`,
/// each checked; prints a table.
pub fn cli(shape: Shape, gpus: &[usize], micro: usize) -> Result<()> {
    ensure!(
        (1..=1024).contains(&shape.hidden) && shape.layers >= 1 && shape.batch >= 1,
        "hidden 1 to 1024, at least one layer and one row"
    );
    let model = Model::new(shape);
    let all = gpus
        .iter()
        .map(|&i| Gpu::open_index(i))
        .collect::<std::io::Result<Vec<_>>>()?;
    let rows = run_all(&model, &all, micro)?;
    println!(
        "infer: hidden {}, {} layers, batch {}, seed {}; every output checked against the CPU",
        shape.hidden, shape.layers, shape.batch, shape.seed
    );
    let single = rows[0].wall_ms;
    for r in &rows {
        let util: Vec<String> = r
            .utilisation
            .iter()
            .zip(&r.busy_ms)
            .enumerate()
            .map(|(i, (u, b))| format!("gpu{i} {b:.3} ms busy, {:.1} %", 100.0 * u))
            .collect();
        println!(
            "  {:<18} {} GPU(s): wall {:.2} ms, speedup {:.2}x, worst error {:e}{}; {}",
            r.name,
            r.gpus,
            r.wall_ms,
            single / r.wall_ms,
            r.worst_error,
            r.bubble
                .map(|b| format!(", bubble {:.1} %", 100.0 * b))
                .unwrap_or_default(),
            util.join(", ")
        );
    }
    Ok(())
}
