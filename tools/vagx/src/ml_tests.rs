// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The ML commands of firmware ABI 1.2 (and 1.5's SUM) through the driver: each computed on
//! the GPU and checked against the CPU, a small MLP block chained in one job, and a malformed
//! one failing its job, as does a SUM on a GPU of an older ABI.
//!
//! Element-wise arithmetic, ReLU, layer and RMS norm and GEMM's flags are compared bit for
//! bit (their order of operations is the ABI's). GELU, SiLU and softmax call `exp`/`tanh`,
//! whose last bit may differ between the device model's `libm` (QEMU's) and this tool's:
//! they are compared within `1e-6` relative (and absolute near zero).

use anyhow::{bail, ensure, Context, Result};
use vagx_abi::cmd::{
    ACTIVATION_GELU, ACTIVATION_RELU, ACTIVATION_SILU, ELEMENTWISE_ADD, ELEMENTWISE_AXPBY,
    ELEMENTWISE_MUL, GEMM_FLAG_ACCUMULATE, GEMM_FLAG_TRANSPOSE_B,
};

use crate::{
    cmdbuf::CmdBuf,
    fixture::{expect_errno, Ctx},
    gpu::Gpu,
    infer::{get, put},
    registry::{tests, Test},
    uapi,
};

pub fn tests() -> Vec<Test<'static>> {
    tests![
        the_device_reports_the_abi_of_the_ml_commands,
        elementwise_and_relu_match_the_cpu_bit_for_bit,
        gelu_silu_and_softmax_match_the_cpu_closely,
        layer_and_rms_norm_match_the_cpu_bit_for_bit,
        gemm_accumulates_and_transposes_b_like_the_cpu,
        an_mlp_block_runs_as_one_job,
        a_malformed_ml_command_fails_its_job,
        sum_adds_its_inputs_in_order_bit_for_bit,
        the_model_runs_single_data_tensor_and_pipeline_parallel_like_the_cpu,
    ]
}

/// The multi-GPU boot's: the model on every GPU, with more stages than layers.
pub fn multi_gpu_tests() -> Vec<Test<'static>> {
    tests![
        the_model_runs_single_data_tensor_and_pipeline_parallel_like_the_cpu,
        a_pipeline_with_more_gpus_than_layers_passes_activations_through,
        a_gpu_of_an_older_abi_refuses_a_sum_and_a_priority_change_and_runs_on,
    ]
}

/// Runs the model on every GPU of the boot (up to 4) in every configuration; each checks
/// its outputs against the CPU itself. Uneven splits: 23 rows over 2 or 4 GPUs, 5
/// micro-batches.
fn model_on_every_gpu(layers: usize) -> Result<()> {
    let count = crate::gpu::render_nodes()?.len().min(4);
    let gpus = (0..count)
        .map(Gpu::open_index)
        .collect::<std::io::Result<Vec<_>>>()?;
    let model = crate::infer::Model::new(crate::infer::Shape {
        hidden: 64,
        layers,
        batch: 23,
        seed: 3,
    });
    let indices: Vec<usize> = (0..count).collect();
    let rows = crate::infer::run_all(&model, &gpus, &indices, 5)?;
    ensure!(
        rows.len() == if count > 1 { 4 } else { 1 },
        "{} configurations ran",
        rows.len()
    );
    for r in &rows {
        ensure!(
            r.utilisation.iter().all(|u| (0.0..=1.0).contains(u))
                && r.busy_ms
                    .iter()
                    .take(r.gpus)
                    .all(|&b| b > 0.0 || r.gpus > 1),
            "{}: utilisation {:?}, busy {:?}",
            r.name,
            r.utilisation,
            r.busy_ms
        );
        if let Some(b) = r.bubble {
            ensure!((0.0..1.0).contains(&b), "{}: bubble {b}", r.name);
        }
    }
    Ok(())
}

fn the_model_runs_single_data_tensor_and_pipeline_parallel_like_the_cpu() -> Result<()> {
    model_on_every_gpu(4)
}

fn a_pipeline_with_more_gpus_than_layers_passes_activations_through() -> Result<()> {
    model_on_every_gpu(3)
}

/// Non-trivial values in about [-4, 4].
fn values(count: usize, seed: u32) -> Vec<f32> {
    (0..count)
        .map(|i| {
            let h = (i as u32).wrapping_add(seed).wrapping_mul(2_654_435_761) >> 12;
            (h % 8001) as f32 / 1000.0 - 4.0
        })
        .collect()
}

/// Runs `c` and checks that its job succeeded.
fn run(ctx: &Ctx<'_>, c: &CmdBuf) -> Result<()> {
    let s = ctx.run_and_wait(c)?;
    let r = ctx.fence_result(s)?;
    ensure!(r == Ok(()), "the job failed: {r:?}");
    Ok(())
}

fn same_bits(what: &str, got: &[f32], want: &[f32]) -> Result<()> {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        ensure!(
            g.to_bits() == w.to_bits(),
            "{what}[{i}]: GPU {g:e}, CPU {w:e}"
        );
    }
    Ok(())
}

fn close(what: &str, got: &[f32], want: &[f32]) -> Result<()> {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        ensure!(
            (g - w).abs() <= 1e-6 * w.abs().max(1.0),
            "{what}[{i}]: GPU {g:e}, CPU {w:e}"
        );
    }
    Ok(())
}

const N: usize = 4096;
const X: u64 = 0;
const Y: u64 = 0x4000;
const OUT: u64 = 0x8000;

fn the_device_reports_the_abi_of_the_ml_commands() -> Result<()> {
    let g = Gpu::open_first()?;
    let abi = g.get_param(uapi::drm_vagx_param_DRM_VAGX_PARAM_ABI_VERSION)?;
    ensure!(
        abi & 0xffff >= u64::from(vagx_abi::regs::ABI_MINOR_ML_COMMANDS),
        "firmware ABI {}.{} has no ML commands",
        abi >> 16,
        abi & 0xffff
    );
    Ok(())
}

fn elementwise_and_relu_match_the_cpu_bit_for_bit() -> Result<()> {
    let g = Gpu::open_first()?;
    let ctx = Ctx::normal(&g)?;
    let (x, y) = (values(N, 1), values(N, 9000));
    let (alpha, beta) = (0.5f32, -2.25f32);
    type Cpu = fn(f32, f32) -> f32;
    let cases: [(&str, u32, [f32; 2], Cpu); 3] = [
        ("add", ELEMENTWISE_ADD, [0.0, 0.0], |a, b| a + b),
        ("mul", ELEMENTWISE_MUL, [0.0, 0.0], |a, b| a * b),
        ("axpby", ELEMENTWISE_AXPBY, [alpha, beta], |a, b| {
            0.5 * a + -2.25 * b
        }),
    ];
    for (what, op, factors, cpu) in cases {
        put(&ctx, X, &x);
        put(&ctx, Y, &y);
        let mut c = CmdBuf::new();
        c.elementwise(op, [ctx.va(X), ctx.va(Y), ctx.va(OUT)], N as u64, factors);
        run(&ctx, &c).context(what)?;
        let want: Vec<f32> = x.iter().zip(&y).map(|(&a, &b)| cpu(a, b)).collect();
        same_bits(what, &get(&ctx, OUT, N), &want)?;
    }
    let mut c = CmdBuf::new();
    c.activation(ACTIVATION_RELU, ctx.va(X), ctx.va(X), N as u64);
    run(&ctx, &c)?;
    let want: Vec<f32> = x.iter().map(|&v| if v > 0.0 { v } else { 0.0 }).collect();
    same_bits("relu in place", &get(&ctx, X, N), &want)
}

fn gelu_silu_and_softmax_match_the_cpu_closely() -> Result<()> {
    let g = Gpu::open_first()?;
    let ctx = Ctx::normal(&g)?;
    let x = values(N, 5);
    put(&ctx, X, &x);
    let mut c = CmdBuf::new();
    c.activation(ACTIVATION_GELU, ctx.va(X), ctx.va(Y), N as u64)
        .activation(ACTIVATION_SILU, ctx.va(X), ctx.va(OUT), N as u64);
    run(&ctx, &c)?;
    let gelu: Vec<f32> = x
        .iter()
        .map(|&v| 0.5 * v * (1.0 + (0.797_884_6 * (v + 0.044_715 * (v * v * v))).tanh()))
        .collect();
    let silu: Vec<f32> = x.iter().map(|&v| v / (1.0 + (-v).exp())).collect();
    close("gelu", &get(&ctx, Y, N), &gelu)?;
    close("silu", &get(&ctx, OUT, N), &silu)?;
    let (rows, cols) = (16usize, 256usize);
    let mut c = CmdBuf::new();
    c.softmax(ctx.va(X), ctx.va(OUT), rows as u32, cols as u32);
    run(&ctx, &c)?;
    let got = get(&ctx, OUT, rows * cols);
    for (r, (row, out)) in x.chunks(cols).zip(got.chunks(cols)).enumerate() {
        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = row.iter().map(|&v| (v - m).exp()).collect();
        let sum = e.iter().fold(0.0f32, |s, &v| s + v);
        let want: Vec<f32> = e.iter().map(|&v| v / sum).collect();
        close(&format!("softmax row {r}"), out, &want)?;
    }
    Ok(())
}

/// Layer norm (or RMS norm) of one row, in the ABI's order.
fn norm_row(row: &[f32], gamma: &[f32], beta: &[f32], eps: f32, rms: bool) -> Vec<f32> {
    let n = row.len() as f32;
    if rms {
        let ms = row.iter().fold(0.0f32, |s, &v| s + v * v) / n;
        let inv = 1.0 / (ms + eps).sqrt();
        return row
            .iter()
            .zip(gamma)
            .map(|(&v, &g)| (v * inv) * g)
            .collect();
    }
    let mean = row.iter().fold(0.0f32, |s, &v| s + v) / n;
    let var = row.iter().fold(0.0f32, |s, &v| s + (v - mean) * (v - mean)) / n;
    let inv = 1.0 / (var + eps).sqrt();
    row.iter()
        .zip(gamma)
        .zip(beta)
        .map(|((&v, &g), &b)| ((v - mean) * inv) * g + b)
        .collect()
}

fn layer_and_rms_norm_match_the_cpu_bit_for_bit() -> Result<()> {
    let g = Gpu::open_first()?;
    let ctx = Ctx::normal(&g)?;
    let (rows, cols) = (8usize, 512usize);
    let x = values(rows * cols, 3);
    let (gamma, beta) = (values(cols, 70), values(cols, 80));
    const GAMMA: u64 = 0xc000;
    const BETA: u64 = 0xd000;
    put(&ctx, X, &x);
    put(&ctx, GAMMA, &gamma);
    put(&ctx, BETA, &beta);
    let eps = 1e-5;
    for rms in [false, true] {
        let mut c = CmdBuf::new();
        c.layer_norm(
            [ctx.va(X), ctx.va(OUT), ctx.va(GAMMA), ctx.va(BETA)],
            [rows as u32, cols as u32],
            eps,
            rms,
        );
        run(&ctx, &c)?;
        let want: Vec<f32> = x
            .chunks(cols)
            .flat_map(|row| norm_row(row, &gamma, &beta, eps, rms))
            .collect();
        same_bits(
            if rms { "rms norm" } else { "layer norm" },
            &get(&ctx, OUT, rows * cols),
            &want,
        )?;
    }
    Ok(())
}

/// `C = C0 + A × B` (or `A × B`), summing in increasing `p` as the device does.
fn gemm_cpu(a: &[f32], b: &[f32], c0: Option<&[f32]>, [m, n, k]: [usize; 3]) -> Vec<f32> {
    let mut c = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0f32;
            for p in 0..k {
                s += a[i * k + p] * b[p * n + j];
            }
            c[i * n + j] = c0.map_or(s, |c0| c0[i * n + j] + s);
        }
    }
    c
}

fn gemm_accumulates_and_transposes_b_like_the_cpu() -> Result<()> {
    let g = Gpu::open_first()?;
    let ctx = Ctx::normal(&g)?;
    let (m, n, k) = (12usize, 20usize, 24usize);
    let (a, b, c0) = (values(m * k, 1), values(k * n, 2), values(m * n, 3));
    let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
    put(&ctx, X, &a);
    put(&ctx, Y, &bt);
    put(&ctx, OUT, &c0);
    let mut c = CmdBuf::new();
    c.gemm_flags(
        [ctx.va(X), ctx.va(Y), ctx.va(OUT)],
        [m as u32, n as u32, k as u32],
        GEMM_FLAG_ACCUMULATE | GEMM_FLAG_TRANSPOSE_B,
    );
    run(&ctx, &c)?;
    same_bits(
        "C += A x B^T^T",
        &get(&ctx, OUT, m * n),
        &gemm_cpu(&a, &b, Some(&c0), [m, n, k]),
    )
}

/// One job: `h = relu(x W + bias)`, `y = layer_norm(h)`, `p = softmax(y)`, checked step by
/// step on the CPU.
fn an_mlp_block_runs_as_one_job() -> Result<()> {
    let g = Gpu::open_first()?;
    let ctx = Ctx::normal(&g)?;
    let (batch, d_in, d_out) = (8usize, 32usize, 64usize);
    let (x, w, bias) = (
        values(batch * d_in, 1),
        values(d_in * d_out, 2),
        values(batch * d_out, 3),
    );
    let (gamma, beta) = (vec![1.0f32; d_out], vec![0.0f32; d_out]);
    const W: u64 = 0x2000;
    const BIAS: u64 = 0x6000;
    const H: u64 = 0x8000;
    const GAMMA: u64 = 0xc000;
    const BETA: u64 = 0xd000;
    const P: u64 = 0xe000;
    put(&ctx, X, &x);
    put(&ctx, W, &w);
    put(&ctx, BIAS, &bias);
    put(&ctx, GAMMA, &gamma);
    put(&ctx, BETA, &beta);
    let count = (batch * d_out) as u64;
    let mut c = CmdBuf::new();
    c.gemm(
        ctx.va(X),
        ctx.va(W),
        ctx.va(H),
        batch as u32,
        d_out as u32,
        d_in as u32,
    )
    .elementwise(
        ELEMENTWISE_ADD,
        [ctx.va(H), ctx.va(BIAS), ctx.va(H)],
        count,
        [0.0, 0.0],
    )
    .activation(ACTIVATION_RELU, ctx.va(H), ctx.va(H), count)
    .layer_norm(
        [ctx.va(H), ctx.va(H), ctx.va(GAMMA), ctx.va(BETA)],
        [batch as u32, d_out as u32],
        1e-5,
        false,
    )
    .softmax(ctx.va(H), ctx.va(P), batch as u32, d_out as u32);
    run(&ctx, &c)?;
    let mut h = gemm_cpu(&x, &w, None, [batch, d_out, d_in]);
    for (v, &b) in h.iter_mut().zip(&bias) {
        *v += b;
        *v = if *v > 0.0 { *v } else { 0.0 };
    }
    let y: Vec<f32> = h
        .chunks(d_out)
        .flat_map(|row| norm_row(row, &gamma, &beta, 1e-5, false))
        .collect();
    same_bits(
        "layer norm of relu(xW + b)",
        &get(&ctx, H, batch * d_out),
        &y,
    )?;
    let got = get(&ctx, P, batch * d_out);
    for row in got.chunks(d_out) {
        let sum: f32 = row.iter().sum();
        ensure!((sum - 1.0).abs() < 1e-5, "a softmax row sums to {sum}");
    }
    Ok(())
}

/// A softmax whose output straddles its input is a malformed command: the job fails with
/// `EIO`, the queue says bad command, and the next job runs.
/// ABI 1.5's SUM: three arrays, the output one of them (in place), in the documented order.
fn sum_adds_its_inputs_in_order_bit_for_bit() -> Result<()> {
    let g = Gpu::open_first()?;
    let ctx = Ctx::normal(&g)?;
    let (x, y, z) = (values(N, 3), values(N, 5000), values(N, 11_000));
    put(&ctx, X, &x);
    put(&ctx, Y, &y);
    put(&ctx, OUT, &z);
    let mut c = CmdBuf::new();
    c.sum(&[ctx.va(X), ctx.va(Y), ctx.va(OUT)], ctx.va(Y), N as u64);
    run(&ctx, &c)?;
    let want: Vec<f32> = (0..N).map(|i| (x[i] + y[i]) + z[i]).collect();
    same_bits("sum", &get(&ctx, Y, N), &want)
}

/// The multi-GPU boot has one GPU of ABI 1.2 (the last in slot order; tests that unbind and
/// rebind a GPU renumber its render node, so it is found by asking each one): it refuses a
/// priority change (`EOPNOTSUPP`: no `DEVCTRL_SET_QUEUE_PRIORITY` before 1.6) and, in
/// firmware mode, a weight (kernel mode takes it for its own policy); a SUM there
/// is a malformed command, which fails its job (`EIO`, fault kind 3), and the GPU runs the
/// next job.
fn a_gpu_of_an_older_abi_refuses_a_sum_and_a_priority_change_and_runs_on() -> Result<()> {
    let mut older = None;
    for i in 0..crate::gpu::render_nodes()?.len() {
        let g = Gpu::open_index(i)?;
        let abi = g.get_param(uapi::drm_vagx_param_DRM_VAGX_PARAM_ABI_VERSION)?;
        if abi & 0xffff < u64::from(vagx_abi::regs::ABI_MINOR_SUM) {
            older = Some(g);
            break;
        }
    }
    let Some(g) = older else {
        bail!("no GPU of the boot speaks an ABI without SUM (1.5)");
    };
    let ctx = Ctx::normal(&g)?;
    // No DEVCTRL_SET_QUEUE_PRIORITY before ABI 1.6.
    expect_errno(
        g.queue_set_param(
            ctx.queue,
            uapi::drm_vagx_queue_param_DRM_VAGX_QUEUE_PARAM_PRIORITY,
            u64::from(uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_LOW),
        ),
        libc::EOPNOTSUPP,
        "a priority change on ABI 1.2",
    )?;
    // Nor a weight in the device: kernel mode keeps it to its own FAIR policy, firmware mode
    // has nothing to give it to.
    let weight = g.queue_set_param(
        ctx.queue,
        uapi::drm_vagx_queue_param_DRM_VAGX_QUEUE_PARAM_WEIGHT,
        300,
    );
    if g.get_param(uapi::drm_vagx_param_DRM_VAGX_PARAM_SCHED_MODE)?
        == u64::from(uapi::drm_vagx_sched_mode_DRM_VAGX_SCHED_FIRMWARE)
    {
        expect_errno(
            weight,
            libc::EOPNOTSUPP,
            "a weight in firmware mode on ABI 1.2",
        )?;
    } else {
        weight.context("a weight in kernel mode on ABI 1.2")?;
    }
    let mut c = CmdBuf::new();
    c.sum(&[ctx.va(X), ctx.va(Y)], ctx.va(OUT), 4);
    let s = ctx.run_and_wait(&c)?;
    ensure!(
        ctx.fence_result(s)? == Err(libc::EIO),
        "the SUM job ended {:?}",
        ctx.fence_result(s)?
    );
    let status = g.queue_status(ctx.queue)?;
    ensure!(status.fault_kind == 3, "fault kind {}", status.fault_kind);
    let mut ok = CmdBuf::new();
    ok.elementwise(
        ELEMENTWISE_ADD,
        [ctx.va(X), ctx.va(Y), ctx.va(OUT)],
        4,
        [0.0; 2],
    );
    run(&ctx, &ok)
}

fn a_malformed_ml_command_fails_its_job() -> Result<()> {
    let g = Gpu::open_first()?;
    let ctx = Ctx::normal(&g)?;
    let mut c = CmdBuf::new();
    c.softmax(ctx.va(X), ctx.va(X + 4), 2, 2);
    let s = ctx.run_and_wait(&c)?;
    ensure!(
        ctx.fence_result(s)? == Err(libc::EIO),
        "the job ended {:?}",
        ctx.fence_result(s)?
    );
    let status = g.queue_status(ctx.queue)?;
    ensure!(status.fault_kind == 3, "fault kind {}", status.fault_kind);
    let mut ok = CmdBuf::new();
    ok.activation(ACTIVATION_RELU, ctx.va(X), ctx.va(Y), 4);
    run(&ctx, &ok)
}
