// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The command stream (version 1): what a command buffer contains.
//!
//! A command buffer is a sequence of commands, each a [`CmdHeader`] followed by its arguments;
//! `size` covers both and is a multiple of 8. Addresses are GPU virtual addresses in the queue's
//! VM. Cost in device time is given per command in `Documentation/gpu/vagx-firmware.rst`.

use super::pod::Pod;
use crate::assert_layout;

/// Header of every command.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct CmdHeader {
    /// One of the `OP_*` values.
    pub opcode: u16,
    /// Size of the command including this header, in bytes; a multiple of 8.
    pub size: u16,
    /// Must be zero, except the flags an opcode defines ([`BARRIER_FLAG_DEP_ERROR`],
    /// [`GEMM_FLAG_ACCUMULATE`], [`GEMM_FLAG_TRANSPOSE_B`], [`LAYER_NORM_FLAG_RMS`]).
    pub flags: u32,
}
assert_layout!(CmdHeader, size 8, opcode @ 0, size @ 2, flags @ 4);
// SAFETY: `repr(C)`, integer fields only, no padding (asserted above).
unsafe impl Pod for CmdHeader {}

/// Does nothing.
pub const OP_NOP: u16 = 0;
/// Waits `CmdDelay::ns` nanoseconds of device time.
pub const OP_DELAY: u16 = 1;
/// Writes a 32-bit value.
pub const OP_WRITE32: u16 = 2;
/// Writes a 64-bit value.
pub const OP_WRITE64: u16 = 3;
/// Copies bytes (the ranges must not overlap).
pub const OP_COPY: u16 = 4;
/// Fills bytes with a repeated 32-bit pattern.
pub const OP_FILL: u16 = 5;
/// `C = A × B` on row-major `f32` matrices.
pub const OP_GEMM: u16 = 6;
/// Sums `f32`s and writes the sum (as `f32`).
pub const OP_REDUCE_SUM: u16 = 7;
/// FNV-1a-64 checksum of bytes, written as a `u64`.
pub const OP_CHECKSUM: u16 = 8;
/// Waits until a stamp slot reaches a value.
pub const OP_BARRIER: u16 = 9;
/// Never completes: the entry runs until the watchdog fires or the queue is reset.
pub const OP_DEBUG_HANG: u16 = 10;
/// Reads `CmdDebugFault::address`, expected to be unmapped: a deliberate fault.
pub const OP_DEBUG_FAULT: u16 = 11;
/// (ABI 1.2) Element-wise add, multiply or scale-and-add of `f32` arrays.
pub const OP_ELEMENTWISE: u16 = 12;
/// (ABI 1.2) An activation function applied to each `f32`.
pub const OP_ACTIVATION: u16 = 13;
/// (ABI 1.2) Softmax of each row of an `f32` matrix.
pub const OP_SOFTMAX: u16 = 14;
/// (ABI 1.2) Layer norm (or RMS norm) of each row of an `f32` matrix.
pub const OP_LAYER_NORM: u16 = 15;
/// (ABI 1.5) The element-wise sum of up to [`MAX_SUM_SOURCES`] `f32` arrays.
pub const OP_SUM: u16 = 16;

/// A command with its arguments.
///
/// # Safety
///
/// The same as [`Pod`]; the type starts with a [`CmdHeader`] and its size is a multiple of 8.
pub unsafe trait Command: Pod {
    /// The `OP_*` opcode.
    const OPCODE: u16;
}

/// Declares a command type's opcode and checks its shape.
macro_rules! command {
    ($ty:ty, $op:expr) => {
        const _: () = assert!(size_of::<$ty>() % 8 == 0 && size_of::<$ty>() < 65536);
        const _: () = assert!(::core::mem::offset_of!($ty, header) == 0);
        // SAFETY: `$ty` is `Pod`, starts with its header and has a size that is a multiple of 8
        // (asserted above).
        unsafe impl Command for $ty {
            const OPCODE: u16 = $op;
        }
        impl $ty {
            /// The header of a command of this type.
            pub const HEADER: CmdHeader = CmdHeader {
                opcode: $op,
                // CAST: the size is asserted above to fit in 16 bits.
                size: size_of::<$ty>() as u16,
                flags: 0,
            };
        }
    };
}

/// [`OP_NOP`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct CmdNop {
    /// The command's header: `Self::HEADER`.
    pub header: CmdHeader,
}
// SAFETY: `repr(C)`, `Pod` fields only, no padding.
unsafe impl Pod for CmdNop {}
command!(CmdNop, OP_NOP);

/// [`OP_DELAY`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct CmdDelay {
    /// The command's header: `Self::HEADER`.
    pub header: CmdHeader,
    /// Device time to wait, in nanoseconds.
    pub ns: u64,
}
assert_layout!(CmdDelay, size 16, ns @ 8);
// SAFETY: `repr(C)`, `Pod` fields only, no padding (asserted above).
unsafe impl Pod for CmdDelay {}
command!(CmdDelay, OP_DELAY);

/// [`OP_WRITE32`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct CmdWrite32 {
    /// The command's header: `Self::HEADER`.
    pub header: CmdHeader,
    /// Destination, 4-byte aligned.
    pub address: u64,
    /// The value.
    pub value: u32,
    /// Must be zero.
    pub _pad: u32,
}
assert_layout!(CmdWrite32, size 24, address @ 8, value @ 16);
// SAFETY: `repr(C)`, `Pod` fields only, no padding (asserted above).
unsafe impl Pod for CmdWrite32 {}
command!(CmdWrite32, OP_WRITE32);

/// [`OP_WRITE64`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct CmdWrite64 {
    /// The command's header: `Self::HEADER`.
    pub header: CmdHeader,
    /// Destination, 8-byte aligned.
    pub address: u64,
    /// The value.
    pub value: u64,
}
assert_layout!(CmdWrite64, size 24, address @ 8, value @ 16);
// SAFETY: `repr(C)`, `Pod` fields only, no padding (asserted above).
unsafe impl Pod for CmdWrite64 {}
command!(CmdWrite64, OP_WRITE64);

/// [`OP_COPY`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct CmdCopy {
    /// The command's header: `Self::HEADER`.
    pub header: CmdHeader,
    /// Source.
    pub src: u64,
    /// Destination.
    pub dst: u64,
    /// Bytes to copy, at most [`MAX_TRANSFER`].
    pub len: u64,
}
assert_layout!(CmdCopy, size 32, src @ 8, dst @ 16, len @ 24);
// SAFETY: `repr(C)`, `Pod` fields only, no padding (asserted above).
unsafe impl Pod for CmdCopy {}
command!(CmdCopy, OP_COPY);

/// [`OP_FILL`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct CmdFill {
    /// The command's header: `Self::HEADER`.
    pub header: CmdHeader,
    /// Destination.
    pub dst: u64,
    /// Bytes to fill, at most [`MAX_TRANSFER`]; the pattern's bytes repeat in little-endian
    /// order, a trailing partial pattern is truncated.
    pub len: u64,
    /// The 32-bit pattern.
    pub pattern: u32,
    /// Must be zero.
    pub _pad: u32,
}
assert_layout!(CmdFill, size 32, dst @ 8, len @ 16, pattern @ 24);
// SAFETY: `repr(C)`, `Pod` fields only, no padding (asserted above).
unsafe impl Pod for CmdFill {}
command!(CmdFill, OP_FILL);

/// [`CmdHeader::flags`] of [`OP_GEMM`] (ABI 1.2): `C += A × B` (the product is summed from
/// `+0.0` as without the flag, then added to C's element, one more rounding).
pub const GEMM_FLAG_ACCUMULATE: u32 = 1 << 0;
/// [`CmdHeader::flags`] of [`OP_GEMM`] (ABI 1.2): B is given transposed, `n × k` row-major.
pub const GEMM_FLAG_TRANSPOSE_B: u32 = 1 << 1;

/// [`OP_GEMM`]: `C[m×n] = A[m×k] × B[k×n]`, row-major, densely packed `f32`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct CmdGemm {
    /// The command's header: `Self::HEADER`.
    pub header: CmdHeader,
    /// Matrix A.
    pub a: u64,
    /// Matrix B.
    pub b: u64,
    /// Matrix C (written).
    pub c: u64,
    /// Rows of A and C, 1 to [`MAX_GEMM_DIM`].
    pub m: u32,
    /// Columns of B and C, 1 to [`MAX_GEMM_DIM`].
    pub n: u32,
    /// Columns of A, rows of B, 1 to [`MAX_GEMM_DIM`].
    pub k: u32,
    /// Must be zero.
    pub _pad: u32,
}
assert_layout!(CmdGemm, size 48, a @ 8, b @ 16, c @ 24, m @ 32, n @ 36, k @ 40);
// SAFETY: `repr(C)`, `Pod` fields only, no padding (asserted above).
unsafe impl Pod for CmdGemm {}
command!(CmdGemm, OP_GEMM);

/// [`OP_REDUCE_SUM`]: sums `count` `f32`s in index order and writes the `f32` sum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct CmdReduceSum {
    /// The command's header: `Self::HEADER`.
    pub header: CmdHeader,
    /// The input array.
    pub src: u64,
    /// Where the sum goes.
    pub dst: u64,
    /// Number of elements, at most `MAX_TRANSFER / 4`.
    pub count: u64,
}
assert_layout!(CmdReduceSum, size 32, src @ 8, dst @ 16, count @ 24);
// SAFETY: `repr(C)`, `Pod` fields only, no padding (asserted above).
unsafe impl Pod for CmdReduceSum {}
command!(CmdReduceSum, OP_REDUCE_SUM);

/// [`OP_CHECKSUM`]: FNV-1a 64-bit hash (offset basis `0xcbf29ce484222325`, prime
/// `0x100000001b3`) of `len` bytes, written as a `u64`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct CmdChecksum {
    /// The command's header: `Self::HEADER`.
    pub header: CmdHeader,
    /// The bytes.
    pub src: u64,
    /// Where the hash goes.
    pub dst: u64,
    /// Number of bytes, at most [`MAX_TRANSFER`].
    pub len: u64,
}
assert_layout!(CmdChecksum, size 32, src @ 8, dst @ 16, len @ 24);
// SAFETY: `repr(C)`, `Pod` fields only, no padding (asserted above).
unsafe impl Pod for CmdChecksum {}
command!(CmdChecksum, OP_CHECKSUM);

/// [`CmdHeader::flags`] of [`OP_BARRIER`] (ABI 1.1): once the slot has passed the value, if the
/// entry that took it there failed, the entry holding the barrier fails with
/// `FwError::Dependency` and its remaining commands are not run (the commands before the
/// barrier have run already). Without the flag the barrier only orders, as in ABI 1.0.
pub const BARRIER_FLAG_DEP_ERROR: u32 = 1 << 0;

/// [`OP_BARRIER`]: waits until stamp slot `slot` has passed `value` (wrap-safe).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct CmdBarrier {
    /// The command's header: `Self::HEADER`.
    pub header: CmdHeader,
    /// Stamp slot to watch.
    pub slot: u32,
    /// Value to wait for.
    pub value: u32,
}
assert_layout!(CmdBarrier, size 16, slot @ 8, value @ 12);
// SAFETY: `repr(C)`, `Pod` fields only, no padding (asserted above).
unsafe impl Pod for CmdBarrier {}
command!(CmdBarrier, OP_BARRIER);

impl CmdBarrier {
    /// A barrier that only orders: it waits until `slot` has passed `value`.
    pub const fn new(slot: u32, value: u32) -> Self {
        Self {
            header: Self::HEADER,
            slot,
            value,
        }
    }

    /// A barrier that also fails its entry if the awaited entry failed (ABI 1.1,
    /// [`BARRIER_FLAG_DEP_ERROR`]).
    pub const fn dep_error(slot: u32, value: u32) -> Self {
        Self {
            header: CmdHeader {
                flags: BARRIER_FLAG_DEP_ERROR,
                ..Self::HEADER
            },
            slot,
            value,
        }
    }
}

/// [`OP_DEBUG_HANG`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct CmdDebugHang {
    /// The command's header: `Self::HEADER`.
    pub header: CmdHeader,
}
// SAFETY: `repr(C)`, `Pod` fields only, no padding.
unsafe impl Pod for CmdDebugHang {}
command!(CmdDebugHang, OP_DEBUG_HANG);

/// [`OP_DEBUG_FAULT`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct CmdDebugFault {
    /// The command's header: `Self::HEADER`.
    pub header: CmdHeader,
    /// The address to read.
    pub address: u64,
}
assert_layout!(CmdDebugFault, size 16, address @ 8);
// SAFETY: `repr(C)`, `Pod` fields only, no padding (asserted above).
unsafe impl Pod for CmdDebugFault {}
command!(CmdDebugFault, OP_DEBUG_FAULT);

/// [`CmdElementwise::op`]: `dst = a + b`.
pub const ELEMENTWISE_ADD: u32 = 0;
/// [`CmdElementwise::op`]: `dst = a × b`.
pub const ELEMENTWISE_MUL: u32 = 1;
/// [`CmdElementwise::op`]: `dst = alpha × a + beta × b` (with `dst = b`, BLAS's axpby).
pub const ELEMENTWISE_AXPBY: u32 = 2;

/// [`OP_ELEMENTWISE`] (ABI 1.2): `count` elements of `dst` from those of `a` and `b`.
/// `dst` may be `a` or `b` exactly (in place), not overlap them otherwise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct CmdElementwise {
    /// The command's header: `Self::HEADER`.
    pub header: CmdHeader,
    /// `ELEMENTWISE_*`.
    pub op: u32,
    /// Must be zero.
    pub _pad: u32,
    /// The first input.
    pub a: u64,
    /// The second input.
    pub b: u64,
    /// The output.
    pub dst: u64,
    /// Number of elements, 1 to `MAX_TRANSFER / 4`.
    pub count: u64,
    /// `ELEMENTWISE_AXPBY`'s factor of `a`, as `f32` bits (`f32::to_bits`); zero otherwise.
    pub alpha: u32,
    /// `ELEMENTWISE_AXPBY`'s factor of `b`, likewise.
    pub beta: u32,
}
assert_layout!(CmdElementwise, size 56, a @ 16, b @ 24, dst @ 32, count @ 40, alpha @ 48);
// SAFETY: `repr(C)`, `Pod` fields only, no padding (asserted above).
unsafe impl Pod for CmdElementwise {}
command!(CmdElementwise, OP_ELEMENTWISE);

/// [`CmdActivation::op`]: `max(x, 0)` (`+0.0` for zero, negative and NaN inputs).
pub const ACTIVATION_RELU: u32 = 0;
/// [`CmdActivation::op`]: GELU, tanh form: `0.5 x (1 + tanh(0.7978846 (x + 0.044715 x³)))`.
pub const ACTIVATION_GELU: u32 = 1;
/// [`CmdActivation::op`]: SiLU: `x / (1 + exp(-x))`.
pub const ACTIVATION_SILU: u32 = 2;

/// [`OP_ACTIVATION`] (ABI 1.2): `dst[i] = f(src[i])`; `dst` may be `src` exactly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct CmdActivation {
    /// The command's header: `Self::HEADER`.
    pub header: CmdHeader,
    /// `ACTIVATION_*`.
    pub op: u32,
    /// Must be zero.
    pub _pad: u32,
    /// The input.
    pub src: u64,
    /// The output.
    pub dst: u64,
    /// Number of elements, 1 to `MAX_TRANSFER / 4`.
    pub count: u64,
}
assert_layout!(CmdActivation, size 40, src @ 16, dst @ 24, count @ 32);
// SAFETY: `repr(C)`, `Pod` fields only, no padding (asserted above).
unsafe impl Pod for CmdActivation {}
command!(CmdActivation, OP_ACTIVATION);

/// [`OP_SOFTMAX`] (ABI 1.2): each row of `src` (`rows × cols`, row-major) to its softmax in
/// `dst` (which may be `src` exactly): `exp(x - max) / sum`, the sum in column order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct CmdSoftmax {
    /// The command's header: `Self::HEADER`.
    pub header: CmdHeader,
    /// The input.
    pub src: u64,
    /// The output.
    pub dst: u64,
    /// Rows, at least 1; `rows × cols` at most `MAX_TRANSFER / 4`.
    pub rows: u32,
    /// Columns, 1 to [`MAX_ROW`].
    pub cols: u32,
}
assert_layout!(CmdSoftmax, size 32, src @ 8, dst @ 16, rows @ 24, cols @ 28);
// SAFETY: `repr(C)`, `Pod` fields only, no padding (asserted above).
unsafe impl Pod for CmdSoftmax {}
command!(CmdSoftmax, OP_SOFTMAX);

/// [`CmdHeader::flags`] of [`OP_LAYER_NORM`]: RMS norm, `x / sqrt(mean(x²) + eps) × gamma`
/// (no mean subtracted, `beta` not read).
pub const LAYER_NORM_FLAG_RMS: u32 = 1 << 0;

/// [`OP_LAYER_NORM`] (ABI 1.2): each row of `src` (`rows × cols`) normalised into `dst`
/// (which may be `src` exactly): `(x - mean) / sqrt(var + eps) × gamma + beta`, with `gamma`
/// and `beta` vectors of `cols` elements, mean and (biased) variance summed in column order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct CmdLayerNorm {
    /// The command's header: `Self::HEADER`.
    pub header: CmdHeader,
    /// The input.
    pub src: u64,
    /// The output.
    pub dst: u64,
    /// The scale, `cols` elements.
    pub gamma: u64,
    /// The shift, `cols` elements (not read with [`LAYER_NORM_FLAG_RMS`]).
    pub beta: u64,
    /// Rows, as [`CmdSoftmax::rows`].
    pub rows: u32,
    /// Columns, as [`CmdSoftmax::cols`].
    pub cols: u32,
    /// Added to the variance, as `f32` bits; a finite non-negative value.
    pub eps: u32,
    /// Must be zero.
    pub _pad: u32,
}
assert_layout!(CmdLayerNorm, size 56, src @ 8, gamma @ 24, rows @ 40, eps @ 48);
// SAFETY: `repr(C)`, `Pod` fields only, no padding (asserted above).
unsafe impl Pod for CmdLayerNorm {}
command!(CmdLayerNorm, OP_LAYER_NORM);

/// Most sources of a SUM.
pub const MAX_SUM_SOURCES: usize = 8;

/// [`OP_SUM`] (ABI 1.5): `dst[i] = ((src[0][i] + src[1][i]) + src[2][i]) + …` over the first
/// `sources` arrays, in that order (so every device that sums the same arrays in the same
/// order gets the same bits). A collective's reduction reads each input once and writes the
/// result once, where a chain of two-input ELEMENTWISE adds reads and writes the partial sum
/// at every step. `dst` may be one of the sources exactly (in place), not overlap one
/// otherwise; sources may overlap each other.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct CmdSum {
    /// The command's header: `Self::HEADER`.
    pub header: CmdHeader,
    /// How many of `src` are summed, 2 to [`MAX_SUM_SOURCES`].
    pub sources: u32,
    /// Must be zero.
    pub _pad: u32,
    /// The output.
    pub dst: u64,
    /// Number of elements, 1 to `MAX_TRANSFER / 4`.
    pub count: u64,
    /// The inputs; those past `sources` must be zero.
    pub src: [u64; MAX_SUM_SOURCES],
}
assert_layout!(CmdSum, size 96, sources @ 8, dst @ 16, count @ 24, src @ 32);
// SAFETY: `repr(C)`, `Pod` fields only, no padding (asserted above).
unsafe impl Pod for CmdSum {}
command!(CmdSum, OP_SUM);

/// Most columns of a SOFTMAX or LAYER_NORM row (256 KiB of `f32`s).
pub const MAX_ROW: u32 = 65536;

/// Largest COPY, FILL, CHECKSUM or REDUCE_SUM (bytes).
pub const MAX_TRANSFER: u64 = 64 << 20;

/// Largest GEMM dimension.
pub const MAX_GEMM_DIM: u32 = 1024;
