// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The ML commands of ABI 1.2 (element-wise arithmetic, activations, softmax and layer norm)
//! and 1.5 (the N-input SUM) on `f32` arrays, each element or row computed in a fixed order (so a host loop in the same
//! order gives bit-identical results with the same `libm`).
//!
//! As every command, each checks that what it reads is readable and then what it writes is
//! writable before any effect, and goes through guest memory in bounded pieces: element-wise
//! commands in chunks of 16 Ki elements, row commands a row at a time (at most `MAX_ROW`
//! elements). An output that is its input exactly works in place: each piece is read
//! before it is written.

use vagx_abi::cmd::{
    ACTIVATION_GELU, ACTIVATION_RELU, ACTIVATION_SILU, ELEMENTWISE_ADD, ELEMENTWISE_AXPBY,
    ELEMENTWISE_MUL,
};

use super::{f32_bytes, Space, CHUNK};
use crate::mmu::{Access, Fault};

/// Elements per piece of an element-wise command.
const PIECE: u64 = (CHUNK / 4) as u64;

/// Reads `count` `f32`s at `va`.
///
/// The conversions here and in [`write_f32s`] go through fixed-size slices that the compiler
/// turns into plain copies; iterator chains that `collect` (`flat_map` above all) cost
/// several times the memory access itself, and these commands are memory-bound.
fn read_f32s(space: &mut dyn Space, va: u64, count: u64) -> Result<Vec<f32>, Fault> {
    // CAST: at most a piece or a row, far below `usize::MAX`.
    let mut bytes = vec![0u8; f32_bytes(count) as usize];
    space.read(va, &mut bytes)?;
    let mut values = vec![0.0f32; bytes.len() / 4];
    for (v, b) in values.iter_mut().zip(bytes.chunks_exact(4)) {
        *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
    Ok(values)
}

/// Writes `values` at `va`.
fn write_f32s(space: &mut dyn Space, va: u64, values: &[f32]) -> Result<(), Fault> {
    let mut bytes = vec![0u8; values.len() * 4];
    for (b, v) in bytes.chunks_exact_mut(4).zip(values) {
        b.copy_from_slice(&v.to_le_bytes());
    }
    space.write(va, &bytes)
}

/// `xs[i] = f(xs[i], ys[i])`; monomorphised per `f`, so that the loop has no branch.
fn combine(xs: &mut [f32], ys: &[f32], f: impl Fn(f32, f32) -> f32) {
    for (x, &y) in xs.iter_mut().zip(ys) {
        *x = f(*x, y);
    }
}

/// ELEMENTWISE: `dst = a + b`, `a × b` or `alpha × a + beta × b`, element by element.
pub(super) fn elementwise(
    space: &mut dyn Space,
    op: u32,
    [a, b, dst]: [u64; 3],
    count: u64,
    [alpha, beta]: [f32; 2],
) -> Result<(), Fault> {
    let len = f32_bytes(count);
    space.check(a, len, Access::Read)?;
    space.check(b, len, Access::Read)?;
    space.check(dst, len, Access::Write)?;
    let mut done = 0;
    while done < count {
        let n = (count - done).min(PIECE);
        let at = f32_bytes(done);
        let mut xs = read_f32s(space, a.saturating_add(at), n)?;
        let ys = read_f32s(space, b.saturating_add(at), n)?;
        match op {
            ELEMENTWISE_ADD => combine(&mut xs, &ys, |x, y| x + y),
            ELEMENTWISE_MUL => combine(&mut xs, &ys, |x, y| x * y),
            ELEMENTWISE_AXPBY => combine(&mut xs, &ys, |x, y| alpha * x + beta * y),
            _ => xs.fill(f32::NAN),
        }
        write_f32s(space, dst.saturating_add(at), &xs)?;
        done += n;
    }
    Ok(())
}

/// SUM (ABI 1.5): `dst = ((src[0] + src[1]) + src[2]) + …`, element by element; `src` has
/// at least one input (validation asks for two).
pub(super) fn sum(space: &mut dyn Space, src: &[u64], dst: u64, count: u64) -> Result<(), Fault> {
    let len = f32_bytes(count);
    for &a in src {
        space.check(a, len, Access::Read)?;
    }
    space.check(dst, len, Access::Write)?;
    let Some((&first, rest)) = src.split_first() else {
        return Ok(());
    };
    let mut done = 0;
    while done < count {
        let n = (count - done).min(PIECE);
        let at = f32_bytes(done);
        let mut acc = read_f32s(space, first.saturating_add(at), n)?;
        for &a in rest {
            let ys = read_f32s(space, a.saturating_add(at), n)?;
            combine(&mut acc, &ys, |x, y| x + y);
        }
        write_f32s(space, dst.saturating_add(at), &acc)?;
        done += n;
    }
    Ok(())
}

/// GELU, tanh form, in this order: `u = x·x·x`, `v = x + 0.044715·u`,
/// `t = tanh(0.7978846·v)`, `0.5·x·(1 + t)`.
pub fn gelu(x: f32) -> f32 {
    let u = x * x * x;
    let v = x + 0.044_715 * u;
    let t = (0.797_884_6 * v).tanh();
    0.5 * x * (1.0 + t)
}

/// SiLU: `x / (1 + exp(-x))`.
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// ReLU: `x` if it is above zero, else `+0.0` (NaN included).
pub fn relu(x: f32) -> f32 {
    if x > 0.0 {
        x
    } else {
        0.0
    }
}

/// ACTIVATION: `dst[i] = f(src[i])`.
pub(super) fn activation(
    space: &mut dyn Space,
    op: u32,
    src: u64,
    dst: u64,
    count: u64,
) -> Result<(), Fault> {
    let len = f32_bytes(count);
    space.check(src, len, Access::Read)?;
    space.check(dst, len, Access::Write)?;
    let f: fn(f32) -> f32 = match op {
        ACTIVATION_RELU => relu,
        ACTIVATION_GELU => gelu,
        ACTIVATION_SILU => silu,
        _ => |_| f32::NAN,
    };
    let mut done = 0;
    while done < count {
        let n = (count - done).min(PIECE);
        let at = f32_bytes(done);
        let mut xs = read_f32s(space, src.saturating_add(at), n)?;
        for x in &mut xs {
            *x = f(*x);
        }
        write_f32s(space, dst.saturating_add(at), &xs)?;
        done += n;
    }
    Ok(())
}

/// Applies `f` to each row of `src` (`rows` × `cols`, dense) and writes it to `dst`, reading
/// as many whole rows at a time as fit a piece (at least one): a row at a time cost a walk of
/// the VM per row.
fn by_rows(
    space: &mut dyn Space,
    [src, dst]: [u64; 2],
    rows: u32,
    cols: u32,
    mut f: impl FnMut(&mut [f32]),
) -> Result<(), Fault> {
    let cols = u64::from(cols);
    let per_block = (PIECE / cols.max(1)).max(1);
    let mut r = 0;
    while r < u64::from(rows) {
        let n = per_block.min(u64::from(rows) - r);
        let at = f32_bytes(r * cols);
        let mut block = read_f32s(space, src.saturating_add(at), n * cols)?;
        // CAST: `cols` is at most `MAX_ROW`.
        for row in block.chunks_mut((cols as usize).max(1)) {
            f(row);
        }
        write_f32s(space, dst.saturating_add(at), &block)?;
        r += n;
    }
    Ok(())
}

/// The softmax of one row: `m` the largest element, `e = exp(x - m)`, the sum of the `e` in
/// column order from `+0.0`, then `e / sum`.
pub fn softmax_row(row: &mut [f32]) {
    let m = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    let mut sum = 0.0f32;
    for x in row.iter_mut() {
        *x = (*x - m).exp();
        sum += *x;
    }
    for x in row.iter_mut() {
        *x /= sum;
    }
}

/// SOFTMAX: each row of `src` into `dst`.
pub(super) fn softmax(
    space: &mut dyn Space,
    src: u64,
    dst: u64,
    rows: u32,
    cols: u32,
) -> Result<(), Fault> {
    let row_bytes = f32_bytes(u64::from(cols));
    let len = row_bytes.saturating_mul(u64::from(rows));
    space.check(src, len, Access::Read)?;
    space.check(dst, len, Access::Write)?;
    by_rows(space, [src, dst], rows, cols, softmax_row)
}

/// Layer norm of one row, in this order: `mean = (sum of x) / cols`, `var = (sum of
/// (x - mean)²) / cols` (sums in column order from `+0.0`), `inv = 1 / sqrt(var + eps)`,
/// `((x - mean) · inv) · gamma + beta`. RMS norm: `ms = (sum of x²) / cols`,
/// `inv = 1 / sqrt(ms + eps)`, `(x · inv) · gamma`.
pub fn layer_norm_row(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32, rms: bool) {
    // CAST: at most MAX_ROW (65536), exact in f32.
    let cols = row.len() as f32;
    if rms {
        let ms = row.iter().fold(0.0f32, |s, &x| s + x * x) / cols;
        let inv = 1.0 / (ms + eps).sqrt();
        for (x, &g) in row.iter_mut().zip(gamma) {
            *x = (*x * inv) * g;
        }
        return;
    }
    let mean = row.iter().fold(0.0f32, |s, &x| s + x) / cols;
    let var = row.iter().fold(0.0f32, |s, &x| s + (x - mean) * (x - mean)) / cols;
    let inv = 1.0 / (var + eps).sqrt();
    for ((x, &g), &b) in row.iter_mut().zip(gamma).zip(beta) {
        *x = ((*x - mean) * inv) * g + b;
    }
}

/// LAYER_NORM: each row of `src` into `dst`, with `cols`-element `gamma` and `beta`.
pub(super) fn layer_norm(
    space: &mut dyn Space,
    [src, dst, gamma, beta]: [u64; 4],
    rows: u32,
    cols: u32,
    eps: f32,
    rms: bool,
) -> Result<(), Fault> {
    let row_bytes = f32_bytes(u64::from(cols));
    let len = row_bytes.saturating_mul(u64::from(rows));
    space.check(src, len, Access::Read)?;
    space.check(gamma, row_bytes, Access::Read)?;
    if !rms {
        space.check(beta, row_bytes, Access::Read)?;
    }
    space.check(dst, len, Access::Write)?;
    let g = read_f32s(space, gamma, u64::from(cols))?;
    let b = if rms {
        Vec::new()
    } else {
        read_f32s(space, beta, u64::from(cols))?
    };
    by_rows(space, [src, dst], rows, cols, |row| {
        layer_norm_row(row, &g, &b, eps, rms);
    })
}
