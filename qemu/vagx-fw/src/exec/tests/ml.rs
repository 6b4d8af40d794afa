// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Tests of the ML commands (ABI 1.2) against host references written from the documented
//! order of operations, their validation, their faults, the ABI version rule and their cost.

use super::*;
use vagx_abi::cmd::{
    CmdActivation, CmdElementwise, CmdLayerNorm, CmdSoftmax, ACTIVATION_GELU, ACTIVATION_RELU,
    ACTIVATION_SILU, ELEMENTWISE_ADD, ELEMENTWISE_AXPBY, ELEMENTWISE_MUL, GEMM_FLAG_ACCUMULATE,
    GEMM_FLAG_TRANSPOSE_B, LAYER_NORM_FLAG_RMS, MAX_ROW,
};
use vagx_abi::cmd::{CmdSum, MAX_SUM_SOURCES};
use vagx_abi::regs::ABI_MINOR_SUM;

fn values(count: usize, seed: u32) -> Vec<f32> {
    (0..count).map(|i| value(i as u32 + seed)).collect()
}

fn elementwise(op: u32, a: u64, b: u64, dst: u64, count: u64, alpha: f32, beta: f32) -> Vec<u8> {
    enc(&CmdElementwise {
        header: CmdElementwise::HEADER,
        op,
        _pad: 0,
        a,
        b,
        dst,
        count,
        alpha: alpha.to_bits(),
        beta: beta.to_bits(),
    })
}

fn activation(op: u32, src: u64, dst: u64, count: u64) -> Vec<u8> {
    enc(&CmdActivation {
        header: CmdActivation::HEADER,
        op,
        _pad: 0,
        src,
        dst,
        count,
    })
}

fn softmax_cmd(src: u64, dst: u64, rows: u32, cols: u32) -> CmdSoftmax {
    CmdSoftmax {
        header: CmdSoftmax::HEADER,
        src,
        dst,
        rows,
        cols,
    }
}

fn softmax(src: u64, dst: u64, rows: u32, cols: u32) -> Vec<u8> {
    enc(&softmax_cmd(src, dst, rows, cols))
}

fn layer_norm(
    src: u64,
    dst: u64,
    gamma: u64,
    beta: u64,
    rows: u32,
    cols: u32,
    rms: bool,
) -> Vec<u8> {
    enc(&layer_norm_cmd(src, dst, gamma, beta, rows, cols, rms))
}

fn layer_norm_cmd(
    src: u64,
    dst: u64,
    gamma: u64,
    beta: u64,
    rows: u32,
    cols: u32,
    rms: bool,
) -> CmdLayerNorm {
    CmdLayerNorm {
        header: CmdHeader {
            flags: if rms { LAYER_NORM_FLAG_RMS } else { 0 },
            ..CmdLayerNorm::HEADER
        },
        src,
        dst,
        gamma,
        beta,
        rows,
        cols,
        eps: 1e-5f32.to_bits(),
        _pad: 0,
    }
}

/// Elements of the element-wise tests: more than one 16 Ki-element piece.
const COUNT: usize = 20_000;
const A: u64 = RW;
const B: u64 = RW + 0x1_4000;
const D: u64 = RW + 0x2_8000;

#[test]
fn elementwise_add_mul_and_axpby_match_the_host_bit_for_bit() {
    let (a, b) = (values(COUNT, 1), values(COUNT, 50_000));
    let (alpha, beta) = (0.75f32, -1.25f32);
    type Reference = fn(f32, f32, f32, f32) -> f32;
    let cases: [(u32, Reference); 3] = [
        (ELEMENTWISE_ADD, |x, y, _, _| x + y),
        (ELEMENTWISE_MUL, |x, y, _, _| x * y),
        (ELEMENTWISE_AXPBY, |x, y, p, q| p * x + q * y),
    ];
    for (op, reference) in cases {
        let mut gpu = Gpu::new();
        gpu.poke_f32s(A, &a);
        gpu.poke_f32s(B, &b);
        let (p, q) = if op == ELEMENTWISE_AXPBY {
            (alpha, beta)
        } else {
            (0.0, 0.0)
        };
        gpu.run(&elementwise(op, A, B, D, COUNT as u64, p, q))
            .unwrap();
        let want: Vec<f32> = a
            .iter()
            .zip(&b)
            .map(|(&x, &y)| reference(x, y, p, q))
            .collect();
        assert_eq!(bits(&gpu.peek_f32s(D, COUNT)), bits(&want), "op {op}");
        // In place: y = alpha x + beta y.
        if op == ELEMENTWISE_AXPBY {
            gpu.run(&elementwise(op, A, B, B, COUNT as u64, p, q))
                .unwrap();
            assert_eq!(bits(&gpu.peek_f32s(B, COUNT)), bits(&want), "in place");
        }
    }
}

/// GELU as documented: u = x·x·x, v = x + 0.044715·u, t = tanh(0.7978846·v), 0.5·x·(1 + t).
fn gelu_ref(x: f32) -> f32 {
    let u = x * x * x;
    let v = x + 0.044_715f32 * u;
    let t = (0.797_884_6f32 * v).tanh();
    0.5f32 * x * (1.0f32 + t)
}

#[test]
fn activations_match_the_host_and_known_values() {
    let mut x = values(COUNT, 7);
    x[..4].copy_from_slice(&[0.0, -0.0, f32::NAN, -3.0]);
    type Reference = fn(f32) -> f32;
    let cases: [(u32, Reference); 3] = [
        (ACTIVATION_RELU, |x| if x > 0.0 { x } else { 0.0 }),
        (ACTIVATION_GELU, gelu_ref),
        (ACTIVATION_SILU, |x| x / (1.0 + (-x).exp())),
    ];
    for (op, reference) in cases {
        let mut gpu = Gpu::new();
        gpu.poke_f32s(A, &x);
        gpu.run(&activation(op, A, D, COUNT as u64)).unwrap();
        let want: Vec<f32> = x.iter().map(|&v| reference(v)).collect();
        let got = gpu.peek_f32s(D, COUNT);
        // NaN in: NaN out for GELU and SiLU, +0 for ReLU.
        assert_eq!(bits(&got[4..]), bits(&want[4..]), "op {op}");
        assert_eq!(got[0].to_bits(), reference(0.0).to_bits());
        // In place.
        gpu.run(&activation(op, A, A, COUNT as u64)).unwrap();
        assert_eq!(bits(&gpu.peek_f32s(A, COUNT)[4..]), bits(&want[4..]));
    }
    let mut gpu = Gpu::new();
    gpu.poke_f32s(A, &[-2.0, 0.0, 3.0, f32::NAN]);
    gpu.run(&activation(ACTIVATION_RELU, A, D, 4)).unwrap();
    assert_eq!(bits(&gpu.peek_f32s(D, 4)), bits(&[0.0, 0.0, 3.0, 0.0]));
    gpu.run(&activation(ACTIVATION_GELU, A, D, 3)).unwrap();
    let g = gpu.peek_f32s(D, 3);
    assert!((g[0] + 0.0454).abs() < 1e-3 && g[1] == 0.0 && (g[2] - 2.9964).abs() < 1e-3);
    gpu.run(&activation(ACTIVATION_SILU, A, D, 3)).unwrap();
    let s = gpu.peek_f32s(D, 3);
    assert!((s[0] + 0.2384).abs() < 1e-3 && s[1] == 0.0 && (s[2] - 2.8577).abs() < 1e-3);
}

#[test]
fn softmax_matches_the_host_and_rows_sum_to_one() {
    let (rows, cols) = (7usize, 300usize);
    let x: Vec<f32> = values(rows * cols, 3).iter().map(|v| v * 3.0).collect();
    let mut want = x.clone();
    for row in want.chunks_mut(cols) {
        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = row.iter().map(|&v| (v - m).exp()).collect();
        let sum = e.iter().fold(0.0f32, |s, &v| s + v);
        for (out, v) in row.iter_mut().zip(e) {
            *out = v / sum;
        }
    }
    let mut gpu = Gpu::new();
    gpu.poke_f32s(A, &x);
    gpu.run(&softmax(A, D, rows as u32, cols as u32)).unwrap();
    let got = gpu.peek_f32s(D, rows * cols);
    assert_eq!(bits(&got), bits(&want));
    for row in got.chunks(cols) {
        let sum: f32 = row.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5, "row sums to {sum}");
        assert!(row.iter().all(|&p| (0.0..=1.0).contains(&p)));
    }
    gpu.run(&softmax(A, A, rows as u32, cols as u32)).unwrap();
    assert_eq!(
        bits(&gpu.peek_f32s(A, rows * cols)),
        bits(&want),
        "in place"
    );
}

#[test]
fn layer_norm_and_rms_norm_match_the_host() {
    let (rows, cols) = (5usize, 384usize);
    let x = values(rows * cols, 11);
    let (gamma, beta) = (values(cols, 90), values(cols, 95));
    let (g_va, b_va) = (RW + 0x3_c000, RW + 0x3_e000);
    let eps = 1e-5f32;
    for rms in [false, true] {
        let mut want = x.clone();
        for row in want.chunks_mut(cols) {
            let n = cols as f32;
            if rms {
                let ms = row.iter().fold(0.0f32, |s, &v| s + v * v) / n;
                let inv = 1.0 / (ms + eps).sqrt();
                for (v, &g) in row.iter_mut().zip(&gamma) {
                    *v = (*v * inv) * g;
                }
            } else {
                let mean = row.iter().fold(0.0f32, |s, &v| s + v) / n;
                let var = row.iter().fold(0.0f32, |s, &v| s + (v - mean) * (v - mean)) / n;
                let inv = 1.0 / (var + eps).sqrt();
                for ((v, &g), &b) in row.iter_mut().zip(&gamma).zip(&beta) {
                    *v = ((*v - mean) * inv) * g + b;
                }
            }
        }
        let mut gpu = Gpu::new();
        gpu.poke_f32s(A, &x);
        gpu.poke_f32s(g_va, &gamma);
        gpu.poke_f32s(b_va, &beta);
        let cmd = layer_norm(A, D, g_va, b_va, rows as u32, cols as u32, rms);
        gpu.run(&cmd).unwrap();
        assert_eq!(
            bits(&gpu.peek_f32s(D, rows * cols)),
            bits(&want),
            "rms {rms}"
        );
    }
    // With gamma 1 and beta 0 each row comes out with mean 0 and variance 1.
    let mut gpu = Gpu::new();
    gpu.poke_f32s(A, &x);
    gpu.poke_f32s(g_va, &vec![1.0; cols]);
    gpu.poke_f32s(b_va, &vec![0.0; cols]);
    gpu.run(&layer_norm(
        A,
        A,
        g_va,
        b_va,
        rows as u32,
        cols as u32,
        false,
    ))
    .unwrap();
    for row in gpu.peek_f32s(A, rows * cols).chunks(cols) {
        let mean = row.iter().sum::<f32>() / cols as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / cols as f32;
        assert!(
            mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-3,
            "{mean} {var}"
        );
    }
}

#[test]
fn gemm_accumulates_and_takes_b_transposed() {
    let (m, n, k) = (6usize, 9usize, 11usize);
    let a = values(m * k, 1);
    let b = values(k * n, 500);
    let c0 = values(m * n, 900);
    let product = gemm_ref(&a, &b, m, n, k);
    let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
    let (a_va, b_va, c_va) = (RW, RW + 0x1_0000, RW + 0x2_0000);
    for (flags, b_given) in [
        (GEMM_FLAG_TRANSPOSE_B, &bt),
        (GEMM_FLAG_ACCUMULATE, &b),
        (GEMM_FLAG_ACCUMULATE | GEMM_FLAG_TRANSPOSE_B, &bt),
    ] {
        let mut gpu = Gpu::new();
        gpu.poke_f32s(a_va, &a);
        gpu.poke_f32s(b_va, b_given);
        gpu.poke_f32s(c_va, &c0);
        let cmd = CmdGemm {
            header: CmdHeader {
                flags,
                ..CmdGemm::HEADER
            },
            a: a_va,
            b: b_va,
            c: c_va,
            m: m as u32,
            n: n as u32,
            k: k as u32,
            _pad: 0,
        };
        gpu.run(&enc(&cmd)).unwrap();
        let want: Vec<f32> = if flags & GEMM_FLAG_ACCUMULATE != 0 {
            c0.iter().zip(&product).map(|(&c, &p)| c + p).collect()
        } else {
            product.clone()
        };
        assert_eq!(
            bits(&gpu.peek_f32s(c_va, m * n)),
            bits(&want),
            "flags {flags:#x}"
        );
    }
}

#[test]
fn ml_commands_refuse_bad_arguments() {
    let max = MAX_TRANSFER / 4;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("elementwise op", elementwise(3, A, B, D, 4, 0.0, 0.0)),
        (
            "elementwise count 0",
            elementwise(ELEMENTWISE_ADD, A, B, D, 0, 0.0, 0.0),
        ),
        (
            "elementwise too many",
            elementwise(ELEMENTWISE_ADD, A, B, D, max + 1, 0.0, 0.0),
        ),
        (
            "add with a factor",
            elementwise(ELEMENTWISE_ADD, A, B, D, 4, 1.0, 0.0),
        ),
        (
            "dst straddles a",
            elementwise(ELEMENTWISE_ADD, A, B, A + 4, 4, 0.0, 0.0),
        ),
        (
            "dst straddles b",
            elementwise(ELEMENTWISE_MUL, A, B, B - 4, 4, 0.0, 0.0),
        ),
        ("activation op", activation(3, A, D, 4)),
        ("activation count 0", activation(ACTIVATION_RELU, A, D, 0)),
        (
            "activation straddles",
            activation(ACTIVATION_SILU, A, A + 8, 4),
        ),
        ("softmax rows 0", softmax(A, D, 0, 4)),
        ("softmax cols 0", softmax(A, D, 4, 0)),
        ("softmax row too long", softmax(A, D, 1, MAX_ROW + 1)),
        ("softmax too big", softmax(A, D, 1 << 13, MAX_ROW)),
        ("softmax straddles", softmax(A, A + 4, 2, 2)),
        (
            "layer norm straddles",
            layer_norm(A, A + 4, B, D, 2, 2, false),
        ),
        (
            "layer norm eps NaN",
            enc(&CmdLayerNorm {
                eps: f32::NAN.to_bits(),
                ..layer_norm_cmd(A, D, B, B, 2, 2, false)
            }),
        ),
        (
            "layer norm eps negative",
            enc(&CmdLayerNorm {
                eps: (-1.0f32).to_bits(),
                ..layer_norm_cmd(A, D, B, B, 2, 2, false)
            }),
        ),
        (
            "layer norm pad",
            enc(&CmdLayerNorm {
                _pad: 1,
                ..layer_norm_cmd(A, D, B, B, 2, 2, false)
            }),
        ),
        (
            "softmax with the RMS flag",
            enc(&CmdSoftmax {
                header: CmdHeader {
                    flags: LAYER_NORM_FLAG_RMS,
                    ..CmdSoftmax::HEADER
                },
                ..softmax_cmd(A, D, 1, 1)
            }),
        ),
        (
            "gemm flag 2",
            enc(&CmdGemm {
                header: CmdHeader {
                    flags: 1 << 2,
                    ..CmdGemm::HEADER
                },
                a: A,
                b: B,
                c: D,
                m: 1,
                n: 1,
                k: 1,
                _pad: 0,
            }),
        ),
    ];
    for (what, cmdbuf) in cases {
        let mut gpu = Gpu::new();
        assert_eq!(gpu.decode(&cmdbuf).map(|_| ()), Err(bad(CMD)), "{what}");
    }
}

#[test]
fn an_abi_1_1_firmware_knows_no_ml_command_nor_gemm_flag() {
    let gemm = enc(&CmdGemm {
        header: CmdHeader {
            flags: GEMM_FLAG_ACCUMULATE,
            ..CmdGemm::HEADER
        },
        a: A,
        b: B,
        c: D,
        m: 1,
        n: 1,
        k: 1,
        _pad: 0,
    });
    for cmdbuf in [
        elementwise(ELEMENTWISE_ADD, A, B, D, 4, 0.0, 0.0),
        activation(ACTIVATION_RELU, A, D, 4),
        softmax(A, D, 1, 4),
        layer_norm(A, D, B, B, 1, 4, true),
        gemm,
    ] {
        let mut gpu = Gpu::new();
        gpu.poke(CMD, &cmdbuf);
        let len = u32::try_from(cmdbuf.len()).unwrap();
        assert_eq!(
            decode(&gpu.vm, &mut gpu.ram, CMD, len, 0, 1).map(|_| ()),
            Err(bad(CMD))
        );
        assert!(decode(&gpu.vm, &mut gpu.ram, CMD, len, 0, 2).is_ok());
    }
}

#[test]
fn ml_commands_fault_before_writing_anything() {
    // A read-only output, and an unreadable input: the fault, and the output untouched.
    let mut gpu = Gpu::new();
    gpu.poke(RO, &[0xee; 64]);
    assert_eq!(
        gpu.run(&elementwise(ELEMENTWISE_ADD, A, B, RO, 16, 0.0, 0.0)),
        Err(permission(RO))
    );
    assert_eq!(gpu.peek(RO, 64), vec![0xee; 64]);
    gpu.poke(D, &[0xee; 64]);
    assert_eq!(
        gpu.run(&activation(ACTIVATION_GELU, NONE, D, 16)),
        Err(permission(NONE))
    );
    assert_eq!(
        gpu.run(&softmax(UNMAPPED, D, 2, 8)),
        Err(unmapped(UNMAPPED))
    );
    assert_eq!(
        gpu.run(&layer_norm(A, D, UNMAPPED, B, 2, 8, false)),
        Err(unmapped(UNMAPPED))
    );
    // RMS norm does not read beta.
    assert_eq!(gpu.run(&layer_norm(A, D, B, UNMAPPED, 2, 8, true)), Ok(()));
    gpu.poke(D, &[0xee; 64]);
    assert_eq!(
        gpu.run(&layer_norm(A, D, B, UNMAPPED, 2, 8, false)),
        Err(unmapped(UNMAPPED))
    );
    assert_eq!(gpu.peek(D, 64), vec![0xee; 64]);
}

#[test]
fn ml_commands_cost_their_bytes_or_flops() {
    let rates = Rates::default();
    let cost = |bytes: u64, flops: u64| {
        rates.command_ns
            + (bytes * 1000)
                .div_ceil(rates.bytes_per_us)
                .max((flops * 1000).div_ceil(rates.flops_per_us))
    };
    let n = 4096u64;
    let cases = [
        (
            Command::Elementwise {
                op: ELEMENTWISE_ADD,
                a: 0,
                b: 0,
                dst: 0,
                count: n,
                alpha: 0.0,
                beta: 0.0,
            },
            cost(12 * n, n),
        ),
        (
            Command::Elementwise {
                op: ELEMENTWISE_AXPBY,
                a: 0,
                b: 0,
                dst: 0,
                count: n,
                alpha: 1.0,
                beta: 1.0,
            },
            cost(12 * n, 3 * n),
        ),
        (
            Command::Activation {
                op: ACTIVATION_GELU,
                src: 0,
                dst: 0,
                count: n,
            },
            cost(8 * n, 10 * n),
        ),
        (
            Command::Activation {
                op: ACTIVATION_SILU,
                src: 0,
                dst: 0,
                count: n,
            },
            cost(8 * n, 6 * n),
        ),
        (
            Command::Softmax {
                src: 0,
                dst: 0,
                rows: 4,
                cols: 1024,
            },
            cost(8 * n, 6 * n),
        ),
        (
            Command::LayerNorm {
                src: 0,
                dst: 0,
                gamma: 0,
                beta: 0,
                rows: 4,
                cols: 1024,
                eps: 0.0,
                rms: false,
            },
            cost(8 * n + 8 * 1024, 8 * n),
        ),
        (
            Command::Gemm {
                a: 0,
                b: 0,
                c: 0,
                m: 64,
                n: 64,
                k: 64,
                accumulate: true,
                transpose_b: false,
            },
            cost(4 * 4 * 4096, 2 * 64 * 64 * 64 + 4096),
        ),
    ];
    for (command, ns) in cases {
        assert_eq!(command.cost_ns(&rates), ns, "{command:?}");
    }
}

fn sum_cmd(src: &[u64], dst: u64, count: u64) -> CmdSum {
    let mut all = [0u64; MAX_SUM_SOURCES];
    all[..src.len()].copy_from_slice(src);
    CmdSum {
        header: CmdSum::HEADER,
        sources: u32::try_from(src.len()).unwrap(),
        _pad: 0,
        dst,
        count,
        src: all,
    }
}

fn sum(src: &[u64], dst: u64, count: u64) -> Vec<u8> {
    enc(&sum_cmd(src, dst, count))
}

/// The host's SUM of the `count` elements at each of `src` (read from `gpu`), in order.
fn sum_ref(gpu: &mut Gpu, src: &[u64], count: usize) -> Vec<f32> {
    let mut acc = gpu.peek_f32s(src[0], count);
    for &a in &src[1..] {
        for (x, y) in acc.iter_mut().zip(gpu.peek_f32s(a, count)) {
            *x += y;
        }
    }
    acc
}

#[test]
fn sum_adds_its_sources_in_order_bit_for_bit() {
    // Two to eight sources of more than one piece each, overlapping one another (allowed),
    // 4 KiB apart; the association is the documented one, which a different order breaks
    // for these inexact values.
    for sources in 2..=MAX_SUM_SOURCES {
        let mut gpu = Gpu::new();
        gpu.poke_f32s(A, &values(COUNT + 8 * 1024, sources as u32 * 7));
        let src: Vec<u64> = (0..sources as u64).map(|k| A + k * 0x1000).collect();
        let want = sum_ref(&mut gpu, &src, COUNT);
        gpu.run(&sum(&src, D, COUNT as u64)).unwrap();
        assert_eq!(
            bits(&gpu.peek_f32s(D, COUNT)),
            bits(&want),
            "{sources} sources"
        );
        if sources >= 3 {
            let mut reversed = src.clone();
            reversed.reverse();
            assert_ne!(bits(&sum_ref(&mut gpu, &reversed, COUNT)), bits(&want));
        }
    }
    // In place: the output is one of the inputs exactly, here the middle one.
    let mut gpu = Gpu::new();
    gpu.poke_f32s(A, &values(COUNT, 1));
    gpu.poke_f32s(B, &values(COUNT, 90_000));
    gpu.poke_f32s(D, &values(COUNT, 170_000));
    let want = sum_ref(&mut gpu, &[A, B, D], COUNT);
    gpu.run(&sum(&[A, B, D], B, COUNT as u64)).unwrap();
    assert_eq!(bits(&gpu.peek_f32s(B, COUNT)), bits(&want), "in place");
}

#[test]
fn sum_on_a_worker_writes_what_the_model_writes() {
    let src = [A, A + 0x1000, B];
    let mut gpu = Gpu::new();
    gpu.poke_f32s(A, &values(COUNT + 1024, 3));
    gpu.poke_f32s(B, &values(COUNT, 40_000));
    let want = sum_ref(&mut gpu, &src, COUNT);
    let (command, _) = gpu.decode(&sum(&src, D, COUNT as u64)).unwrap();
    let mut staged = crate::exec::offload::Offloaded::prepare(command, &gpu.vm, &mut gpu.ram)
        .unwrap()
        .expect("plain RAM operands go to a worker");
    staged.run();
    // Nothing reaches memory before the completion.
    assert_ne!(bits(&gpu.peek_f32s(D, COUNT)), bits(&want));
    staged.commit().unwrap();
    assert_eq!(bits(&gpu.peek_f32s(D, COUNT)), bits(&want));
}

#[test]
fn sum_refuses_bad_arguments_and_older_firmware() {
    let max = MAX_TRANSFER / 4;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("one source", sum(&[A], D, 4)),
        (
            "no source",
            enc(&CmdSum {
                sources: 0,
                ..sum_cmd(&[A, B], D, 4)
            }),
        ),
        (
            "nine sources",
            enc(&CmdSum {
                sources: 9,
                ..sum_cmd(&[A; MAX_SUM_SOURCES], D, 4)
            }),
        ),
        ("count 0", sum(&[A, B], D, 0)),
        ("too many elements", sum(&[A, B], D, max + 1)),
        (
            "an unused source",
            enc(&CmdSum {
                src: [A, B, D, 0, 0, 0, 0, 4],
                ..sum_cmd(&[A, B, D], D + 0x1000, 4)
            }),
        ),
        (
            "pad",
            enc(&CmdSum {
                _pad: 1,
                ..sum_cmd(&[A, B], D, 4)
            }),
        ),
        (
            "a flag",
            enc(&CmdSum {
                header: CmdHeader {
                    flags: 1,
                    ..CmdSum::HEADER
                },
                ..sum_cmd(&[A, B], D, 4)
            }),
        ),
        ("dst straddles a source", sum(&[A, B, D], B + 4, 4)),
    ];
    for (what, cmdbuf) in cases {
        let mut gpu = Gpu::new();
        assert_eq!(gpu.decode(&cmdbuf).map(|_| ()), Err(bad(CMD)), "{what}");
    }
    // ABI 1.4 has no SUM; 1.5 has.
    let cmdbuf = sum(&[A, B], D, 4);
    let mut gpu = Gpu::new();
    gpu.poke(CMD, &cmdbuf);
    let len = u32::try_from(cmdbuf.len()).unwrap();
    assert_eq!(
        decode(&gpu.vm, &mut gpu.ram, CMD, len, 0, ABI_MINOR_SUM - 1).map(|_| ()),
        Err(bad(CMD))
    );
    assert!(decode(&gpu.vm, &mut gpu.ram, CMD, len, 0, ABI_MINOR_SUM).is_ok());
}

#[test]
fn sum_faults_before_writing_anything() {
    let mut gpu = Gpu::new();
    gpu.poke(D, &[0xee; 64]);
    assert_eq!(
        gpu.run(&sum(&[A, B, UNMAPPED], D, 16)),
        Err(unmapped(UNMAPPED))
    );
    assert_eq!(gpu.run(&sum(&[A, NONE], D, 16)), Err(permission(NONE)));
    assert_eq!(gpu.peek(D, 64), vec![0xee; 64]);
    gpu.poke(RO, &[0xee; 64]);
    assert_eq!(gpu.run(&sum(&[A, B], RO, 16)), Err(permission(RO)));
    assert_eq!(gpu.peek(RO, 64), vec![0xee; 64]);
}

#[test]
fn sum_costs_each_input_and_the_output_once() {
    let rates = Rates::default();
    // Four inputs and the output of 4096 elements: 80 KiB at 16 bytes/ns, memory-bound.
    let n = 4096u64;
    let cmd = Command::Sum {
        src: [A, B, D, A, 0, 0, 0, 0],
        sources: 4,
        dst: RW + 0x3_0000,
        count: n,
    };
    assert_eq!(cmd.cost_ns(&rates), 200 + 5 * 4 * n / 16);
    // A chain of three two-input adds costs 36 bytes an element against SUM's 20.
    let add = Command::Elementwise {
        op: ELEMENTWISE_ADD,
        a: A,
        b: B,
        dst: D,
        count: n,
        alpha: 0.0,
        beta: 0.0,
    };
    assert!(3 * add.cost_ns(&rates) > cmd.cost_ns(&rates) * 9 / 5);
}
