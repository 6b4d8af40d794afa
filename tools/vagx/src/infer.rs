// SPDX-License-Identifier: GPL-2.0 OR MIT

//! `vagx-tool infer`: a small deterministic model run on one GPU, data parallel and
//! pipeline parallel across the GPUs, every output checked against the CPU.
//!
//! The model is a stack of `layers` transformer-style MLP blocks on `hidden`-wide rows,
//! `x = layer_norm(x + relu(x × W1 + b1) × W2 + b2)` with a feed-forward width of
//! `2·hidden` (ABI 1.2's GEMM, ELEMENTWISE, ACTIVATION and LAYER_NORM), and a softmax ends
//! it. Every parameter and the input come from a seed. A forward pass on a GPU is one job.
//!
//! - **single**: the whole batch on GPU 0;
//! - **data parallel**: the batch split over the GPUs (uneven splits allowed), each with
//!   its own copy of the weights, no communication;
//! - **tensor parallel**: each block's W1 split by columns and W2 by rows (Megatron), an
//!   all-reduce of the partial products per block (one-shot: two steps whatever N;
//!   [`tensor_parallel`]);
//! - **pipeline parallel**: the layers split over the GPUs, the batch cut into micro-batches
//!   that flow from stage to stage: stage `s`'s job for micro-batch `m` reads stage `s-1`'s
//!   output for it straight from that GPU's buffer (a dma-buf mapped read-only) and waits for
//!   it through stage `s-1`'s timeline syncobj, shared across the files. Every job is queued
//!   before the first runs (GPipe's forward schedule); the bubble is measured as the share of
//!   the run's device time the stages were idle.
//!
//! GEMM, bias, ReLU and layer norm are bit-exact against the CPU; the softmax's `exp` may
//! differ in the last bit between the device model's `libm` and the tool's, so outputs are
//! compared within `1e-6` (tensor parallel, whose partial sums associate differently,
//! within `1e-4`), and the worst difference is printed.

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

/// The model's parameters: per block, `W1` (`hidden × ff`), `b1` (`ff`), `W2`
/// (`ff × hidden`), `b2`, `gamma`, `beta` (`hidden`), with `ff = 2·hidden`.
pub struct Model {
    shape: Shape,
    w1: Vec<Vec<f32>>,
    b1: Vec<Vec<f32>>,
    w2: Vec<Vec<f32>>,
    b2: Vec<Vec<f32>>,
    gamma: Vec<Vec<f32>>,
    beta: Vec<Vec<f32>>,
    /// The CPU's outputs for [`Model::input`], computed once: every run checks against them,
    /// and the guest's CPU takes longer over them than the GPUs over the run.
    reference: std::sync::OnceLock<Vec<f32>>,
}

/// Deterministic values from `seed`, about uniform in `[-scale, scale]`.
pub(crate) fn seeded(seed: u64, count: usize, scale: f32) -> Vec<f32> {
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
        let (h, f) = (shape.hidden, 2 * shape.hidden);
        let per = |k: u64, n: usize, scale: f32| -> Vec<Vec<f32>> {
            (0..shape.layers)
                .map(|l| seeded(shape.seed * 1000 + k * 100 + l as u64, n, scale))
                .collect()
        };
        // Weights scaled as 1/sqrt(fan-in), so that activations stay about unit size.
        Self {
            w1: per(1, h * f, 1.0 / (h as f32).sqrt()),
            b1: per(2, f, 0.1),
            w2: per(3, f * h, 1.0 / (f as f32).sqrt()),
            b2: per(4, h, 0.1),
            gamma: per(5, h, 0.25)
                .into_iter()
                .map(|g| g.iter().map(|v| 1.0 + v).collect())
                .collect(),
            beta: per(6, h, 0.1),
            shape,
            reference: std::sync::OnceLock::new(),
        }
    }

    /// Its shape.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// The feed-forward width.
    pub fn ff(&self) -> usize {
        2 * self.shape.hidden
    }

    /// The input batch (`batch × hidden`).
    pub fn input(&self) -> Vec<f32> {
        seeded(
            self.shape.seed + 7,
            self.shape.batch * self.shape.hidden,
            1.0,
        )
    }

    /// Blocks `layers` of the model on `x` (`rows × hidden`) on the CPU, in the device's
    /// order of operations, then the softmax if `last`: per block
    /// `layer_norm(x + (relu(x × W1 + b1) × W2 + b2))`.
    /// The whole model's outputs for [`Model::input`] on the CPU (computed on first use).
    pub fn reference(&self) -> &[f32] {
        self.reference
            .get_or_init(|| self.cpu(&self.input(), 0..self.shape.layers, true))
    }

    pub fn cpu(&self, x: &[f32], layers: std::ops::Range<usize>, last: bool) -> Vec<f32> {
        let (h, f) = (self.shape.hidden, self.ff());
        let rows = x.len() / h;
        let mut a = x.to_vec();
        for l in layers {
            let mut t = gemm_cpu(&a, &self.w1[l], rows, f, h);
            for row in t.chunks_mut(f) {
                for (v, &b) in row.iter_mut().zip(&self.b1[l]) {
                    let s = *v + b;
                    *v = if s > 0.0 { s } else { 0.0 };
                }
            }
            let mut u = gemm_cpu(&t, &self.w2[l], rows, h, f);
            for (i, row) in u.chunks_mut(h).enumerate() {
                for (j, (v, &b)) in row.iter_mut().zip(&self.b2[l]).enumerate() {
                    *v += b;
                    *v += a[i * h + j];
                }
            }
            for row in u.chunks_mut(h) {
                norm_row(row, &self.gamma[l], &self.beta[l]);
            }
            a = u;
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

/// `a (m × k) × b (k × n)`, each element summed in increasing `k` from `+0.0`.
fn gemm_cpu(a: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    let mut c = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0f32;
            for p in 0..k {
                s += a[i * k + p] * b[p * n + j];
            }
            c[i * n + j] = s;
        }
    }
    c
}

/// Layer norm of one row as the device computes it.
fn norm_row(row: &mut [f32], gamma: &[f32], beta: &[f32]) {
    let n = row.len() as f32;
    let mean = row.iter().fold(0.0f32, |s, &v| s + v) / n;
    let var = row.iter().fold(0.0f32, |s, &v| s + (v - mean) * (v - mean)) / n;
    let inv = 1.0 / (var + EPS).sqrt();
    for ((v, &g), &b) in row.iter_mut().zip(gamma).zip(beta) {
        *v = ((*v - mean) * inv) * g + b;
    }
}

const EPS: f32 = 1e-5;

/// One GPU's copy of blocks `layers`, with room for `rows` rows of activations per
/// micro-batch slot and `slots` slots of output.
pub(crate) struct Stage<'g> {
    pub(crate) ctx: Ctx<'g>,
    layers: std::ops::Range<usize>,
    rows: usize,
    /// Offsets in the data area: parameters, input slots, scratch (`t`: `rows × ff`, `u`
    /// and two activations: `rows × hidden`), output slots, command buffers.
    weights: u64,
    input: u64,
    t: u64,
    act: [u64; 2],
    out: u64,
    /// Command buffers, [`JOB_CMDS`] bytes per job (one per slot).
    cmds: u64,
    /// The buffer's size.
    size: u64,
}

/// Room for one job's commands (360 bytes a block).
const JOB_CMDS: u64 = 8192;

/// Where block `k`'s parameters are, relative to the stage's `weights`: W1, the bias `b1` as
/// a `rows × ff` matrix (ELEMENTWISE has no broadcast), W2, `b2` as `rows × hidden`, gamma,
/// beta; and the size of one block's.
#[derive(Clone, Copy)]
struct Params {
    w1: u64,
    b1: u64,
    w2: u64,
    b2: u64,
    gamma: u64,
    beta: u64,
}

fn params(h: usize, f: usize, rows: usize, k: usize) -> (Params, u64) {
    let (h, f, rows) = (h as u64, f as u64, rows as u64);
    let per = 4 * (h * f + rows * f + f * h + rows * h + 2 * h);
    let w1 = per * k as u64;
    let b1 = w1 + 4 * h * f;
    let w2 = b1 + 4 * rows * f;
    let b2 = w2 + 4 * f * h;
    let gamma = b2 + 4 * rows * h;
    let beta = gamma + 4 * h;
    (
        Params {
            w1,
            b1,
            w2,
            b2,
            gamma,
            beta,
        },
        per,
    )
}

/// Writes `v` at GPU address `offset` of `ctx`'s buffer.
pub(crate) fn put(ctx: &Ctx<'_>, offset: u64, v: &[f32]) {
    ctx.map.write_f32s(ctx.off(offset), v);
}

/// Reads `count` `f32`s at GPU address `offset` of `ctx`'s buffer.
pub(crate) fn get(ctx: &Ctx<'_>, offset: u64, count: usize) -> Vec<f32> {
    ctx.map.read_f32s(ctx.off(offset), count)
}

/// `v` repeated `rows` times: a bias as a matrix.
fn rows_of(v: &[f32], rows: usize) -> Vec<f32> {
    (0..rows).flat_map(|_| v.iter().copied()).collect()
}

/// One block on the device: `layer_norm(x + (relu(x × W1 + b1) × W2 + b2))` for `rows`
/// rows from `x` into `dst`, with `t` (`rows × ff`) and `dst` as scratch; `va` maps the
/// parameters' offsets to GPU addresses.
#[allow(clippy::too_many_arguments)]
fn block(
    c: &mut CmdBuf,
    p: Params,
    va: &dyn Fn(u64) -> u64,
    [h, f, rows]: [usize; 3],
    x: u64,
    t: u64,
    dst: u64,
) {
    let (hu, fu, ru) = (h as u32, f as u32, rows as u32);
    let (tf, th) = ((rows * f) as u64, (rows * h) as u64);
    c.gemm(x, va(p.w1), t, ru, fu, hu)
        .elementwise(ELEMENTWISE_ADD, [t, va(p.b1), t], tf, [0.0; 2])
        .activation(ACTIVATION_RELU, t, t, tf)
        .gemm(t, va(p.w2), dst, ru, hu, fu)
        .elementwise(ELEMENTWISE_ADD, [dst, va(p.b2), dst], th, [0.0; 2])
        .elementwise(ELEMENTWISE_ADD, [dst, x, dst], th, [0.0; 2])
        .layer_norm([dst, dst, va(p.gamma), va(p.beta)], [ru, hu], EPS, false);
}

impl<'g> Stage<'g> {
    /// Blocks `layers` of `model` on `gpu`, for up to `rows` rows at a time and `slots`
    /// output slots.
    pub(crate) fn new(
        gpu: &'g Gpu,
        model: &Model,
        layers: std::ops::Range<usize>,
        rows: usize,
        slots: usize,
    ) -> Result<Self> {
        let (h, f) = (model.shape.hidden, model.ff());
        let (_, per) = params(h, f, rows, 0);
        let act = 4 * (rows * h) as u64;
        let weights = 0;
        let input = weights + per * layers.len().max(1) as u64;
        let t = input + act * slots as u64;
        let act0 = t + 4 * (rows * f) as u64;
        let out = act0 + 2 * act;
        let cmds = out + act * slots as u64;
        let size = (64 * 1024 + cmds + JOB_CMDS * slots as u64).next_multiple_of(1 << 20);
        let ctx = Ctx::new(gpu, uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_NORMAL, size)?;
        for (k, l) in layers.clone().enumerate() {
            let (p, _) = params(h, f, rows, k);
            put(&ctx, weights + p.w1, &model.w1[l]);
            put(&ctx, weights + p.b1, &rows_of(&model.b1[l], rows));
            put(&ctx, weights + p.w2, &model.w2[l]);
            put(&ctx, weights + p.b2, &rows_of(&model.b2[l], rows));
            put(&ctx, weights + p.gamma, &model.gamma[l]);
            put(&ctx, weights + p.beta, &model.beta[l]);
        }
        Ok(Self {
            ctx,
            layers,
            rows,
            weights,
            input,
            t,
            act: [act0, act0 + act],
            out,
            cmds,
            size,
        })
    }

    /// The data-area offsets of input slot `slot` and of output slot `slot`, for
    /// `hidden`-wide rows.
    pub(crate) fn slot_offsets(&self, hidden: usize, slot: usize) -> (u64, u64) {
        let bytes = 4 * (slot * self.rows * hidden) as u64;
        (self.input + bytes, self.out + bytes)
    }

    /// Submits `c` as the job of slot `slot` with `syncs`.
    pub(crate) fn submit(&self, c: &CmdBuf, slot: usize, syncs: &[Sync]) -> Result<()> {
        self.submit_flags(c, slot, syncs, 0)
    }

    /// [`Stage::submit`] with SUBMIT's `flags`.
    fn submit_flags(&self, c: &CmdBuf, slot: usize, syncs: &[Sync], flags: u32) -> Result<()> {
        ensure!(
            u64::from(c.len()) <= JOB_CMDS,
            "too many layers for one job"
        );
        let at = self.cmds + JOB_CMDS * slot as u64;
        self.ctx.map.write(self.ctx.off(at), c.bytes());
        Ok(self
            .ctx
            .gpu
            .submit_flags(self.ctx.queue, self.ctx.va(at), c.len(), syncs, flags)?)
    }

    /// The commands of this stage for `rows` rows read at GPU address `from`, the result
    /// to output slot `slot` (softmaxed if `last`).
    pub(crate) fn commands(
        &self,
        [h, f]: [usize; 2],
        rows: usize,
        from: u64,
        slot: usize,
        last: bool,
    ) -> CmdBuf {
        let va = |o: u64| self.ctx.va(self.weights + o);
        let count = (rows * h) as u64;
        let out = self.ctx.va(self.out + 4 * (slot * self.rows * h) as u64);
        let mut c = CmdBuf::new();
        let mut src = from;
        for k in 0..self.layers.len() {
            let (p, _) = params(h, f, self.rows, k);
            let dst = if k + 1 == self.layers.len() && !last {
                out
            } else {
                self.ctx.va(self.act[k % 2])
            };
            block(&mut c, p, &va, [h, f, rows], src, self.ctx.va(self.t), dst);
            src = dst;
        }
        if last {
            c.softmax(src, out, rows as u32, h as u32);
        } else if self.layers.is_empty() {
            c.copy(src, out, 4 * count);
        }
        c
    }
}

/// How a run's jobs reach the GPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Launch {
    /// Submitted while the GPUs run the first ones: the CPU's rate of submission is part of
    /// the time.
    Streamed,
    /// Every job submitted behind a closed gate (a sw_sync fence the first jobs wait for),
    /// then the gate opened, as a captured graph is launched: the time measured is the GPUs'
    /// and the fences' between them, from the opening to the last job.
    QueuedAhead,
}

/// The closed gate of a [`Launch::QueuedAhead`] run.
struct Gate {
    timeline: crate::sw_sync::Timeline,
    fence: std::os::fd::OwnedFd,
}

impl Gate {
    /// A gate for `launch`: none for a streamed run.
    fn new(launch: Launch) -> Result<Option<Self>> {
        if launch == Launch::Streamed {
            return Ok(None);
        }
        let timeline = crate::sw_sync::Timeline::new().context("a sw_sync timeline")?;
        let fence = timeline.fence(1)?;
        Ok(Some(Self { timeline, fence }))
    }

    /// A binary syncobj of `gpu` that signals when the gate opens.
    fn on(&self, gpu: &Gpu) -> Result<u32> {
        let s = gpu.syncobj()?;
        gpu.import_sync_file(s, self.fence.as_fd())?;
        Ok(s)
    }

    fn open(&self) -> Result<()> {
        Ok(self.timeline.advance(1)?)
    }
}

/// A run's clocks: each GPU's busy time and device clock, and the wall clock, from the run's
/// first submit, or from the gate's opening once a queued-ahead run has submitted everything.
struct RunClock<'g> {
    gpus: Vec<&'g Gpu>,
    before: Vec<(u64, u64, u32)>,
    start: Instant,
}

/// What [`RunClock::stop`] measured.
struct Measured {
    wall_ms: f64,
    /// GPU 0's device clock over the run.
    device_ms: f64,
    busy_ms: Vec<f64>,
    utilisation: Vec<f64>,
}

/// Each GPU's [`busy`] sample, GPU 0's last: its device clock times the run, and a load
/// query is a round trip to the firmware (a millisecond or more under TCG), so the other
/// GPUs' queries must not fall inside the run's bracket. (Read first, they counted three
/// round trips more against four GPUs than against one.)
fn samples_gpu0_last(gpus: &[&Gpu]) -> Result<Vec<(u64, u64, u32)>> {
    let mut samples = gpus
        .iter()
        .rev()
        .map(|g| busy(g))
        .collect::<Result<Vec<_>>>()?;
    samples.reverse();
    Ok(samples)
}

impl<'g> RunClock<'g> {
    /// Reads the GPUs and starts the clock before the first submit.
    fn start(gpus: impl IntoIterator<Item = &'g Gpu>) -> Result<Self> {
        let gpus: Vec<&Gpu> = gpus.into_iter().collect();
        crate::gpu::submit_times::take();
        Ok(Self {
            before: samples_gpu0_last(&gpus)?,
            gpus,
            start: Instant::now(),
        })
    }

    /// The end of the submission: how long it took the CPU (ms) and each `SUBMIT` ioctl (µs).
    /// A queued-ahead run then starts again from here and opens its gate.
    fn submitted(&mut self, gate: Option<&Gate>) -> Result<(f64, Vec<u32>)> {
        let submit_ms = self.start.elapsed().as_secs_f64() * 1e3;
        let submits_us = crate::gpu::submit_times::take();
        if let Some(g) = gate {
            self.before = samples_gpu0_last(&self.gpus)?;
            self.start = Instant::now();
            g.open()?;
        }
        Ok((submit_ms, submits_us))
    }

    /// The wall time until now, and what the GPUs did since the start (GPU 0 read first, for
    /// the same reason as in [`samples_gpu0_last`]).
    fn stop(&self) -> Result<Measured> {
        let wall_ms = self.start.elapsed().as_secs_f64() * 1e3;
        let after = self
            .gpus
            .iter()
            .map(|g| busy(g))
            .collect::<Result<Vec<_>>>()?;
        let (busy_ms, utilisation) = usage(&self.before, &after);
        Ok(Measured {
            wall_ms,
            device_ms: (after[0].1 - self.before[0].1) as f64 / 1e6,
            busy_ms,
            utilisation,
        })
    }
}

/// What a configuration did.
pub struct Outcome {
    pub name: &'static str,
    pub gpus: usize,
    pub launch: Launch,
    /// From the first submit (queued ahead: from the gate's opening) to the last job's end.
    pub wall_ms: f64,
    /// How long the CPU took to submit every job (streamed: the GPUs may already be running
    /// the first ones; queued ahead: the GPUs wait).
    pub submit_ms: f64,
    /// Each `SUBMIT` ioctl's time, µs, sorted.
    pub submits_us: Vec<u32>,
    /// Device time of the run: GPU 0's clock between the reads around it. The device clock
    /// runs with the host's, so this is the wall time the device saw, with the guest's
    /// latency between dependent jobs in it.
    pub device_ms: f64,
    /// Per GPU: busy device time (ms) and utilisation of its units over the run.
    pub busy_ms: Vec<f64>,
    pub utilisation: Vec<f64>,
    pub worst_error: f32,
    /// Pipeline parallel: the share of the stages' device time idle.
    pub bubble: Option<f64>,
    /// The shortest and the longest device time of the runs this one is the median of, if
    /// it is one (`bench-ml`).
    pub device_ms_spread: Option<(f64, f64)>,
}

/// Busy time (ns) of every unit of `g`, and its device clock.
pub(crate) fn busy(g: &Gpu) -> Result<(u64, u64, u32)> {
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

pub(crate) fn worst(got: &[f32], want: &[f32]) -> Result<f32> {
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
pub fn data_parallel(model: &Model, gpus: &[Gpu], launch: Launch) -> Result<Outcome> {
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
    let gate = Gate::new(launch)?;
    let mut clock = RunClock::start(gpus)?;
    let mut done = Vec::new();
    for (i, st) in stages.iter().enumerate() {
        let (s, e) = part(batch, n, i);
        if e == s {
            continue;
        }
        let c = st.commands([h, model.ff()], e - s, st.ctx.va(st.input), 0, true);
        let sync = st.ctx.gpu.syncobj()?;
        let mut syncs = vec![Sync::signal(sync, 0)];
        if let Some(g) = &gate {
            syncs.insert(0, Sync::wait(g.on(st.ctx.gpu)?, 0));
        }
        st.submit(&c, 0, &syncs)?;
        done.push((i, sync));
    }
    let (submit_ms, submits_us) = clock.submitted(gate.as_ref())?;
    for &(i, s) in &done {
        stages[i]
            .ctx
            .gpu
            .wait(s, WAIT_MS)
            .context("waiting for a forward pass")?;
        let r = stages[i].ctx.fence_result(s)?;
        ensure!(r == Ok(()), "gpu{i}'s forward pass failed: {r:?}");
    }
    let run = clock.stop()?;
    let mut got = Vec::new();
    for (i, st) in stages.iter().enumerate() {
        let (s, e) = part(batch, n, i);
        got.extend(get(&st.ctx, st.out, (e - s) * h));
    }
    let want = model.reference();
    Ok(Outcome {
        name: if n == 1 { "single" } else { "data parallel" },
        gpus: n,
        launch,
        wall_ms: run.wall_ms,
        submit_ms,
        submits_us,
        device_ms: run.device_ms,
        busy_ms: run.busy_ms,
        utilisation: run.utilisation,
        worst_error: worst(&got, want)?,
        bubble: None,
        device_ms_spread: None,
    })
}

/// Where a stage maps its predecessor's buffer.
const PEER_VA: u64 = 0x4000_0000;

/// Pipeline parallel on `gpus`: stage `s` has layers `part(layers, n, s)`, the batch flows
/// in `micro` micro-batches.
pub fn pipeline_parallel(
    model: &Model,
    gpus: &[Gpu],
    micro: usize,
    launch: Launch,
) -> Result<Outcome> {
    pipeline_held(model, gpus, micro, launch, None)
}

/// A pipeline held back: its first job also waits for `gate` (a sync_file), and `queued`
/// runs once every job is submitted, before the wait (a test loses a GPU there).
pub(crate) struct Hold<'a> {
    pub gate: std::os::fd::BorrowedFd<'a>,
    pub queued: &'a mut dyn FnMut() -> Result<()>,
}

/// [`pipeline_parallel`], held by `hold` if given (then `launch` must be streamed: the
/// holder opens the gate). A failed job (every later one fails with it) fails the run,
/// naming its GPU.
pub(crate) fn pipeline_held(
    model: &Model,
    gpus: &[Gpu],
    micro: usize,
    launch: Launch,
    mut hold: Option<Hold<'_>>,
) -> Result<Outcome> {
    ensure!(
        hold.is_none() || launch == Launch::Streamed,
        "a held pipeline is opened by its holder"
    );
    let own = Gate::new(launch)?;
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
    // Per stage, a binary syncobj its every job signals: the last job's result.
    let mut lasts = Vec::new();
    let mut prev_timelines = vec![None];
    let mut peer_bos = vec![None];
    for (s, st) in stages.iter().enumerate() {
        timelines.push(st.ctx.gpu.syncobj()?);
        lasts.push(st.ctx.gpu.syncobj()?);
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
    let gate_fd = hold
        .as_ref()
        .map(|h| h.gate)
        .or(own.as_ref().map(|g| g.fence.as_fd()));
    let gate = match gate_fd {
        Some(fd) => {
            let s = stages[0].ctx.gpu.syncobj()?;
            stages[0].ctx.gpu.import_sync_file(s, fd)?;
            Some(s)
        }
        None => None,
    };
    let mut clock = RunClock::start(gpus)?;
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
            let c = st.commands([h, model.ff()], r1 - r0, from, m, s + 1 == n);
            let mut syncs = Vec::new();
            if let Some(p) = prev_timelines[s] {
                syncs.push(Sync::wait(p, m as u64 + 1));
            }
            if let (Some(g), 0, 0) = (gate, s, m) {
                syncs.push(Sync::wait(g, 0));
            }
            syncs.push(Sync::signal(timelines[s], m as u64 + 1));
            syncs.push(Sync::signal(lasts[s], 0));
            // The stage timelines order every access (a micro-batch's output slot is written
            // once and read by the next stage after its point), so no implicit-sync waits:
            // at VM granularity they would hold stage s's micro-batch m until stage s+1 (a
            // reader of its buffer) is done with micro-batch m-1.
            st.submit_flags(&c, m, &syncs, uapi::DRM_VAGX_SUBMIT_NO_IMPLICIT_WAIT)
                .with_context(|| format!("stage {s}, micro-batch {m}"))?;
        }
    }
    let (submit_ms, submits_us) = clock.submitted(own.as_ref())?;
    if let Some(h) = hold.as_mut() {
        (h.queued)()?;
    }
    let last = stages.len() - 1;
    for (s, st) in stages.iter().enumerate() {
        st.ctx
            .gpu
            .wait_point(timelines[s], micro as u64, WAIT_MS)
            .with_context(|| format!("waiting for the pipeline's stage {s}"))?;
        if let Err(e) = st.ctx.fence_result(lasts[s])? {
            anyhow::bail!(
                "the pipeline's stage {s} failed: {}",
                std::io::Error::from_raw_os_error(e)
            );
        }
    }
    let run = clock.stop()?;
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
    let want = model.reference();
    // A stage is one queue, so at most one unit busy: its idle share of the run is
    // 1 - busy / span, and the bubble the stages' mean.
    let bubble = 1.0 - run.busy_ms.iter().sum::<f64>() / (n as f64 * run.device_ms.max(1e-9));
    Ok(Outcome {
        name: "pipeline parallel",
        gpus: n,
        launch,
        wall_ms: run.wall_ms,
        submit_ms,
        submits_us,
        device_ms: run.device_ms,
        busy_ms: run.busy_ms,
        utilisation: run.utilisation,
        worst_error: worst(&got, want)?,
        bubble: Some(bubble),
        device_ms_spread: None,
    })
}

/// Tensor parallel on `gpus`, Megatron-style: every block's W1 split by columns and W2 by
/// rows over the GPUs (uneven splits allowed), so that each computes a partial `t × W2`
/// from its columns of `relu(x × W1 + b1)` with no communication, an all-reduce
/// ([`crate::collectives`]) sums the partials, and every GPU finishes the block (bias,
/// residual, layer norm) on the whole rows. All jobs are queued ahead; the GPUs advance the
/// forward pass through the ring's shared fences.
///
/// The partial sums are added in another association than on one GPU, so outputs are
/// compared with the CPU within `1e-4` (and every GPU must end with the same bits).
pub fn tensor_parallel(model: &Model, gpus: &[usize], launch: Launch) -> Result<Outcome> {
    let (h, f, batch, layers) = (
        model.shape.hidden,
        model.ff(),
        model.shape.batch,
        model.shape.layers,
    );
    let n = gpus.len();
    let cols = |i: usize| part(f, n, i);
    // Member i's extra room: per block its parameters, then x, t and the output.
    let layout = |i: usize| {
        let (a, b) = cols(i);
        let (_, per) = params(h, b - a, batch, 0);
        let x = per * layers as u64;
        let t = x + 4 * (batch * h) as u64;
        let out = t + 4 * (batch * (b - a)) as u64;
        (x, t, out, out + 4 * (batch * h) as u64)
    };
    let extra = (0..n).map(|i| layout(i).3).max().unwrap_or(0);
    let mut ring = crate::collectives::Ring::with_extra(gpus, batch * h, extra)?;
    // Where every GPU has ABI 1.5's SUM, sequence parallel (below); else the partials, a few
    // hundred KiB, where a step's latency costs more than its bytes, go through the one-shot
    // all-reduce: 2 steps a block instead of the ring's 2(N-1).
    let sequence_parallel = n > 1 && ring.has_direct_all_reduce();
    let steps = match n {
        1 => 2 * layers as u64,
        _ if sequence_parallel => 3 * layers as u64 + 1,
        _ => 4 * layers as u64,
    };
    ensure!(
        steps <= crate::collectives::Ring::MAX_QUEUED_STEPS,
        "{steps} steps do not fit the ring's command slots"
    );
    let x = model.input();
    for i in 0..n {
        let (a, b) = cols(i);
        let fi = b - a;
        for l in 0..layers {
            let (p, _) = params(h, fi, batch, l);
            // W1's columns a..b (`h × fi`), W2's rows a..b (`fi × h`).
            let w1: Vec<f32> = (0..h)
                .flat_map(|r| model.w1[l][r * f + a..r * f + b].iter().copied())
                .collect();
            ring.write_extra(i, p.w1, &w1);
            ring.write_extra(i, p.b1, &rows_of(&model.b1[l][a..b], batch));
            ring.write_extra(i, p.w2, &model.w2[l][a * h..b * h]);
            ring.write_extra(i, p.b2, &rows_of(&model.b2[l], batch));
            ring.write_extra(i, p.gamma, &model.gamma[l]);
            ring.write_extra(i, p.beta, &model.beta[l]);
        }
        ring.write_extra(i, layout(i).0, &x);
    }
    let devices = gpus
        .iter()
        .map(|&i| Gpu::open_index(i))
        .collect::<std::io::Result<Vec<_>>>()?;
    let gate = Gate::new(launch)?;
    if let Some(g) = &gate {
        for i in 0..n {
            let (gpu, s) = ring.gate(i)?;
            gpu.import_sync_file(s, g.fence.as_fd())?;
        }
    }
    let (hu, ru) = (h as u32, batch as u32);
    let th = (batch * h) as u64;
    let (data, va) = (ring.data_va(), |o: u64| ring.extra_va(o));
    // The whole-batch finish after a one-shot all-reduce: bias, residual, norm (and the
    // softmax after the last block).
    let finish = |i: usize, l: usize| {
        let (a, b) = cols(i);
        let (xo, _, oo, _) = layout(i);
        let (p, _) = params(h, b - a, batch, l);
        let mut c = CmdBuf::new();
        c.elementwise(ELEMENTWISE_ADD, [data, va(p.b2), data], th, [0.0; 2])
            .elementwise(ELEMENTWISE_ADD, [data, va(xo), data], th, [0.0; 2])
            .layer_norm(
                [data, va(xo), va(p.gamma), va(p.beta)],
                [ru, hu],
                EPS,
                false,
            );
        if l + 1 == layers {
            c.softmax(va(xo), va(oo), ru, hu);
        }
        c
    };
    // Megatron's sequence parallelism: member i reduces its own rows of every member's
    // partial with one SUM and finishes them (bias, residual, norm are row-wise, so the bits
    // are a whole-batch finish's) into its x; then it gathers every other member's finished
    // rows. 3 steps a block instead of 4, the finish on 1/N of the rows, and 11/4 of the
    // partial's bytes moved on 4 GPUs instead of 11.
    let reduce_rows = |i: usize, l: usize| {
        let xo = layout(i).0;
        let (p, _) = params(h, cols(i).1 - cols(i).0, batch, l);
        let (r0, r1) = part(batch, n, i);
        let mut c = CmdBuf::new();
        if r1 > r0 {
            let (at, count) = ((4 * r0 * h) as u64, ((r1 - r0) * h) as u64);
            let d = data + at;
            let src: Vec<u64> = (0..n).map(|j| ring.peer_data_va(i, j) + at).collect();
            c.sum(&src, d, count)
                .elementwise(ELEMENTWISE_ADD, [d, va(p.b2) + at, d], count, [0.0; 2])
                .elementwise(ELEMENTWISE_ADD, [d, va(xo) + at, d], count, [0.0; 2])
                .layer_norm(
                    [d, va(xo) + at, va(p.gamma), va(p.beta)],
                    [(r1 - r0) as u32, hu],
                    EPS,
                    false,
                );
        }
        c
    };
    let gather_rows = |i: usize| {
        let mut c = CmdBuf::new();
        for j in (0..n).filter(|&j| j != i) {
            let (r0, r1) = part(batch, n, j);
            let at = (4 * r0 * h) as u64;
            if r1 > r0 {
                c.copy(
                    ring.peer_extra_va(i, j, layout(j).0 + at),
                    va(layout(i).0) + at,
                    (4 * (r1 - r0) * h) as u64,
                );
            }
        }
        c
    };
    // Per block, each member's jobs: its columns of W1 and rows of W2 (compute, into its
    // partial in `data`), then the all-reduce and the finish of one of the two schedules.
    let blocks: Vec<[Vec<CmdBuf>; 3]> = (0..layers)
        .map(|l| {
            let compute = (0..n)
                .map(|i| {
                    let (a, b) = cols(i);
                    let (fi, (xo, to, _, _)) = (b - a, layout(i));
                    let (p, _) = params(h, fi, batch, l);
                    let (t, tf) = (va(to), (batch * fi) as u64);
                    let mut c = CmdBuf::new();
                    c.gemm(va(xo), va(p.w1), t, ru, fi as u32, hu)
                        .elementwise(ELEMENTWISE_ADD, [t, va(p.b1), t], tf, [0.0; 2])
                        .activation(ACTIVATION_RELU, t, t, tf)
                        .gemm(t, va(p.w2), data, ru, hu, fi as u32);
                    c
                })
                .collect();
            if sequence_parallel {
                [
                    compute,
                    (0..n).map(|i| reduce_rows(i, l)).collect(),
                    (0..n).map(gather_rows).collect(),
                ]
            } else {
                [compute, (0..n).map(|i| finish(i, l)).collect(), Vec::new()]
            }
        })
        .collect();
    let mut clock = RunClock::start(&devices)?;
    for [compute, second, third] in &blocks {
        ring.user_step(|i| compute[i].clone())?;
        if sequence_parallel {
            ring.user_mesh_step(|i| second[i].clone())?;
            ring.user_mesh_step(|i| third[i].clone())?;
        } else {
            if n > 1 {
                ring.queue_only(crate::collectives::Op::AllReduceOneShot)?;
            }
            ring.user_step(|i| second[i].clone())?;
        }
    }
    if sequence_parallel {
        // Every member has every row of the last block's output: its softmax.
        let last: Vec<CmdBuf> = (0..n)
            .map(|i| {
                let (xo, _, oo, _) = layout(i);
                let mut c = CmdBuf::new();
                c.softmax(ring.extra_va(xo), ring.extra_va(oo), ru, hu);
                c
            })
            .collect();
        ring.user_step(|i| last[i].clone())?;
    }
    let (submit_ms, submits_us) = clock.submitted(gate.as_ref())?;
    ring.wait_all()?;
    let run = clock.stop()?;
    let got = ring.read_extra(0, layout(0).2, batch * h);
    for i in 1..n {
        ensure!(
            ring.read_extra(i, layout(i).2, batch * h)
                .iter()
                .zip(&got)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "gpu{i} ended with other outputs than gpu0"
        );
    }
    let want = model.reference();
    let mut worst = 0f32;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let d = (g - w).abs();
        ensure!(
            d <= 1e-4 * w.abs().max(1.0),
            "output {i}: GPU {g:e}, CPU {w:e}"
        );
        worst = worst.max(d);
    }
    Ok(Outcome {
        name: "tensor parallel",
        gpus: n,
        launch,
        wall_ms: run.wall_ms,
        submit_ms,
        submits_us,
        device_ms: run.device_ms,
        busy_ms: run.busy_ms,
        utilisation: run.utilisation,
        worst_error: worst,
        bubble: None,
        device_ms_spread: None,
    })
}

/// The single-GPU run, then (with several GPUs) data, tensor and pipeline parallel.
pub fn run_all(
    model: &Model,
    gpus: &[Gpu],
    indices: &[usize],
    micro: usize,
) -> Result<Vec<Outcome>> {
    let s = Launch::Streamed;
    let mut rows = vec![data_parallel(model, &gpus[..1], s)?];
    if gpus.len() > 1 {
        rows.push(data_parallel(model, gpus, s)?);
        rows.push(tensor_parallel(model, indices, s)?);
        rows.push(pipeline_parallel(model, gpus, micro, s)?);
    }
    Ok(rows)
}

/// `vagx-tool infer`: the single-GPU run, then data, tensor and pipeline parallel on `gpus`,
/// each checked; prints a table.
pub fn cli(shape: Shape, gpus: &[usize], micro: usize) -> Result<()> {
    ensure!(
        (2..=512).contains(&shape.hidden) && shape.layers >= 1 && shape.batch >= 1,
        "hidden 2 to 512 (the feed-forward width, twice that, is a GEMM dimension), at least \
         one block and one row"
    );
    let model = Model::new(shape);
    let all = gpus
        .iter()
        .map(|&i| Gpu::open_index(i))
        .collect::<std::io::Result<Vec<_>>>()?;
    let rows = run_all(&model, &all, gpus, micro)?;
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
