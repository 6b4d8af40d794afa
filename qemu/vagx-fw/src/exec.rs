// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The command interpreter: decoding, validation, cost and execution of commands.
//!
//! # Decoding
//!
//! [`decode`] reads one command of a command buffer through the queue's VM and validates it.
//! A malformed command is a [`FAULT_BAD_COMMAND`] fault whose address is the GPU virtual address
//! of the command's header:
//!
//! - the header does not fit in the buffer, or its `size` is below 8, not a multiple of 8,
//!   smaller than the opcode's structure, or runs past the end of the buffer;
//! - the opcode is unknown, `flags` has a bit the opcode does not define in the negotiated ABI
//!   version (only BARRIER has one, [`BARRIER_FLAG_DEP_ERROR`], from ABI 1.1), or a `_pad`
//!   field is not zero;
//! - an argument is out of range (see [`Command`]'s variants): a misaligned WRITE32/WRITE64
//!   address, a COPY/FILL/CHECKSUM `len` above [`MAX_TRANSFER`], a REDUCE_SUM `count` above
//!   `MAX_TRANSFER / 4`, a GEMM dimension of 0 or above [`MAX_GEMM_DIM`], a COPY whose source
//!   and destination overlap, a BARRIER slot not below [`NUM_STAMP_SLOTS`].
//!
//! A `size` larger than the opcode's structure is accepted, for future extensions: the extra
//! bytes are skipped without being read. A header that cannot be read is the VM's fault
//! ([`FAULT_UNMAPPED`](vagx_abi::channels::FAULT_UNMAPPED) or
//! [`FAULT_PERMISSION`](vagx_abi::channels::FAULT_PERMISSION)).
//!
//! # Cost model
//!
//! Every command takes a deterministic amount of device time, computed from [`Rates`]:
//!
//! ```text
//! cost_ns = command_ns + max(ceil(bytes * 1000 / bytes_per_us), ceil(flops * 1000 / flops_per_us))
//! ```
//!
//! A roofline: a unit moves memory and computes at once, so a command takes its memory time
//! or its arithmetic time, whichever is longer (a GEMM of many rows is bound by its
//! arithmetic, one of a few rows by reading B). Every command but GEMM is memory-bound at
//! any rates whose ratio is the default's.
//!
//! | Command         | bytes                     | flops     |
//! |-----------------|---------------------------|-----------|
//! | NOP             | 0                         | 0         |
//! | DELAY           | 0, plus `ns` added        | 0         |
//! | WRITE32/WRITE64 | 4 / 8                     | 0         |
//! | COPY            | 2 · len (read and write)  | 0         |
//! | FILL            | len                       | 0         |
//! | GEMM            | 4 · (m·k + k·n + m·n)     | 2 · m·n·k |
//! | REDUCE_SUM      | 4 · count + 4             | 0         |
//! | CHECKSUM        | len                       | 0         |
//! | BARRIER         | 0 (waiting is the scheduler's business) | 0 |
//! | DEBUG_HANG      | 0 (the scheduler never completes it)    | 0 |
//! | DEBUG_FAULT     | 0                         | 0         |
//!
//! With the default rates a command costs 200 ns, memory moves at 16 bytes/ns and arithmetic at
//! 64 flops/ns. The arithmetic saturates at `u64::MAX` and never overflows.
//!
//! # Execution
//!
//! [`Command::execute`] accesses memory only through [`Vm::read`] and [`Vm::write`], so it never
//! touches a byte the VM does not map with the needed permission. Before any effect it checks
//! that each range the command reads is readable and then that each range it writes is writable
//! (in argument order), so a translation fault leaves memory unchanged. Large transfers then go
//! in chunks of 64 KiB, so memory use is bounded (GEMM holds A, B and C, at most 4 MiB each);
//! a fault after the checks (a mapped page the bus refuses, or a command that rewrites the VM's
//! own page tables) may leave a partial result.
//!
//! On a device with worker threads, the commands that move data run there instead, on their
//! operands translated and mapped at the command's start, and what they write reaches guest
//! memory at their completion ([`offload`]); the results are the same.
//!
//! - FILL writes the pattern's bytes in little-endian order, repeated, the last repetition
//!   truncated.
//! - GEMM works on dense row-major `f32` matrices: `C[i][j]` is the sum over `p` of
//!   `A[i][p] * B[p][j]`, accumulated in `f32` from `+0.0` in increasing `p` (no fused
//!   multiply-add), so a host loop in the same order gives bit-identical results.
//! - REDUCE_SUM adds `f32`s from `+0.0` in index order and writes the sum as a little-endian
//!   `f32`.
//! - CHECKSUM writes the FNV-1a 64-bit hash (offset basis `0xcbf29ce484222325`, prime
//!   `0x100000001b3`) of the bytes as a little-endian `u64`.

use vagx_abi::channels::{FAULT_BAD_COMMAND, FAULT_INJECTED};
use vagx_abi::cmd::{
    self, CmdActivation, CmdBarrier, CmdChecksum, CmdCopy, CmdDebugFault, CmdDebugHang, CmdDelay,
    CmdElementwise, CmdFill, CmdGemm, CmdHeader, CmdLayerNorm, CmdNop, CmdReduceSum, CmdSoftmax,
    CmdSum, CmdWrite32, CmdWrite64, ACTIVATION_RELU, ACTIVATION_SILU, BARRIER_FLAG_DEP_ERROR,
    ELEMENTWISE_AXPBY, GEMM_FLAG_ACCUMULATE, GEMM_FLAG_TRANSPOSE_B, LAYER_NORM_FLAG_RMS,
    MAX_GEMM_DIM, MAX_ROW, MAX_SUM_SOURCES, MAX_TRANSFER, OP_ACTIVATION, OP_BARRIER, OP_CHECKSUM,
    OP_COPY, OP_DEBUG_FAULT, OP_DEBUG_HANG, OP_DELAY, OP_ELEMENTWISE, OP_FILL, OP_GEMM,
    OP_LAYER_NORM, OP_NOP, OP_REDUCE_SUM, OP_SOFTMAX, OP_SUM, OP_WRITE32, OP_WRITE64,
};
use vagx_abi::pod;
use vagx_abi::regs::{ABI_MINOR_DEPENDENCIES, ABI_MINOR_ML_COMMANDS, ABI_MINOR_SUM};
use vagx_abi::NUM_STAMP_SLOTS;

use crate::mem::Memory;
use crate::mmu::{Access, Fault, Vm};

/// Largest piece of a transfer held in memory at once, in bytes (a multiple of 4).
const CHUNK: usize = 64 << 10;

/// Memory as a command sees it: GPU virtual addresses in its queue's VM.
///
/// [`Bus`] goes through the VM's tables and the bus on the model's thread; on a worker, the
/// command's operands mapped at its start stand for it ([`offload`]).
trait Space {
    /// As [`Vm::check`].
    fn check(&mut self, va: u64, len: u64, access: Access) -> Result<(), Fault>;
    /// As [`Vm::read`].
    fn read(&mut self, va: u64, buf: &mut [u8]) -> Result<(), Fault>;
    /// As [`Vm::write`].
    fn write(&mut self, va: u64, buf: &[u8]) -> Result<(), Fault>;
}

/// A VM on the bus.
struct Bus<'a> {
    vm: &'a Vm,
    mem: &'a mut dyn Memory,
}

impl Space for Bus<'_> {
    fn check(&mut self, va: u64, len: u64, access: Access) -> Result<(), Fault> {
        self.vm.check(self.mem, va, len, access)
    }

    fn read(&mut self, va: u64, buf: &mut [u8]) -> Result<(), Fault> {
        self.vm.read(self.mem, va, buf)
    }

    fn write(&mut self, va: u64, buf: &[u8]) -> Result<(), Fault> {
        self.vm.write(self.mem, va, buf)
    }
}

/// FNV-1a 64-bit offset basis.
const FNV_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64-bit prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Device throughput used to cost commands (documented numbers; deterministic).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rates {
    /// Fixed cost of every command, in nanoseconds (200).
    pub command_ns: u64,
    /// Memory bandwidth, in bytes per microsecond (16 000, that is 16 GB/s).
    pub bytes_per_us: u64,
    /// Arithmetic throughput, in floating-point operations per microsecond (64 000, that is
    /// 64 GFLOP/s).
    pub flops_per_us: u64,
    /// Cost of fetching a queue entry, added to its first command, in nanoseconds
    /// ([`crate::sched::ENTRY_OVERHEAD_NS`]).
    pub entry_ns: u64,
    /// How many times slower than the default device these rates are ([`Rates::slowed`]);
    /// the firmware's default watchdog grows with it.
    pub slowdown: u64,
}

impl Default for Rates {
    fn default() -> Self {
        Self {
            command_ns: 200,
            bytes_per_us: 16_000,
            flops_per_us: 64_000,
            entry_ns: crate::sched::ENTRY_OVERHEAD_NS,
            slowdown: 1,
        }
    }
}

impl Rates {
    /// A device `divisor` times slower: fixed costs multiplied, throughputs divided (at
    /// least 1 per microsecond); `DELAY` is not a rate and keeps its time. For an emulation
    /// that cannot keep the default rates on its host: a slower device whose commands end
    /// on time measures the scheduling around it, a faster one that is late measures the
    /// host. A divisor of 0 or 1 is the default device. The firmware's default watchdog
    /// (when the driver sets none) is `divisor` times longer too.
    pub fn slowed(self, divisor: u32) -> Self {
        let d = u64::from(divisor.max(1));
        Self {
            command_ns: self.command_ns.saturating_mul(d),
            bytes_per_us: (self.bytes_per_us / d).max(1),
            flops_per_us: (self.flops_per_us / d).max(1),
            entry_ns: self.entry_ns.saturating_mul(d),
            slowdown: self.slowdown.saturating_mul(d),
        }
    }
}

/// A decoded, validated command.
///
/// Addresses are GPU virtual addresses in the queue's VM.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Command {
    /// Does nothing.
    Nop,
    /// Waits `ns` nanoseconds of device time.
    Delay {
        /// Time to wait.
        ns: u64,
    },
    /// Writes a little-endian `u32` at a 4-byte aligned address.
    Write32 {
        /// Destination, 4-byte aligned.
        address: u64,
        /// The value.
        value: u32,
    },
    /// Writes a little-endian `u64` at an 8-byte aligned address.
    Write64 {
        /// Destination, 8-byte aligned.
        address: u64,
        /// The value.
        value: u64,
    },
    /// Copies `len` bytes; the ranges do not overlap.
    Copy {
        /// Source.
        src: u64,
        /// Destination.
        dst: u64,
        /// Bytes to copy, at most [`MAX_TRANSFER`].
        len: u64,
    },
    /// Fills `len` bytes with a repeated 32-bit pattern.
    Fill {
        /// Destination.
        dst: u64,
        /// Bytes to fill, at most [`MAX_TRANSFER`].
        len: u64,
        /// The pattern, repeated in little-endian byte order.
        pattern: u32,
    },
    /// `C[m×n] = A[m×k] × B[k×n]` on dense row-major `f32` matrices.
    Gemm {
        /// Matrix A.
        a: u64,
        /// Matrix B.
        b: u64,
        /// Matrix C (written).
        c: u64,
        /// Rows of A and C, 1 to [`MAX_GEMM_DIM`].
        m: u32,
        /// Columns of B and C, 1 to [`MAX_GEMM_DIM`].
        n: u32,
        /// Columns of A and rows of B, 1 to [`MAX_GEMM_DIM`].
        k: u32,
        /// (ABI 1.2) [`GEMM_FLAG_ACCUMULATE`]: `C += A × B`.
        accumulate: bool,
        /// (ABI 1.2) [`GEMM_FLAG_TRANSPOSE_B`]: B is `n × k`.
        transpose_b: bool,
    },
    /// (ABI 1.2) `dst[i] = a[i] + b[i]`, `a[i] × b[i]` or `alpha × a[i] + beta × b[i]`.
    Elementwise {
        /// `ELEMENTWISE_*`.
        op: u32,
        /// The inputs.
        a: u64,
        /// The second input.
        b: u64,
        /// The output: `a` or `b` exactly, or apart from both.
        dst: u64,
        /// Elements, 1 to `MAX_TRANSFER / 4`.
        count: u64,
        /// AXPBY's factors.
        alpha: f32,
        /// AXPBY's factor of `b`.
        beta: f32,
    },
    /// (ABI 1.2) `dst[i] = f(src[i])` for an `ACTIVATION_*` function.
    Activation {
        /// `ACTIVATION_*`.
        op: u32,
        /// The input.
        src: u64,
        /// The output: `src` exactly, or apart from it.
        dst: u64,
        /// Elements, 1 to `MAX_TRANSFER / 4`.
        count: u64,
    },
    /// (ABI 1.5) `dst[i] = ((src[0][i] + src[1][i]) + src[2][i]) + …` over the first
    /// `sources` inputs.
    Sum {
        /// The inputs; entries from `sources` on are zero.
        src: [u64; MAX_SUM_SOURCES],
        /// How many inputs, 2 to [`MAX_SUM_SOURCES`].
        sources: u32,
        /// The output: one of the inputs exactly, or apart from every one.
        dst: u64,
        /// Elements, 1 to `MAX_TRANSFER / 4`.
        count: u64,
    },
    /// (ABI 1.2) The softmax of each row.
    Softmax {
        /// The input, `rows × cols`.
        src: u64,
        /// The output: `src` exactly, or apart from it.
        dst: u64,
        /// Rows, at least 1.
        rows: u32,
        /// Columns, 1 to [`MAX_ROW`]; `rows × cols` at most `MAX_TRANSFER / 4`.
        cols: u32,
    },
    /// (ABI 1.2) Layer norm, or RMS norm, of each row.
    LayerNorm {
        /// The input, `rows × cols`.
        src: u64,
        /// The output: `src` exactly, or apart from it.
        dst: u64,
        /// The scale, `cols` elements.
        gamma: u64,
        /// The shift, `cols` elements (unused by RMS norm).
        beta: u64,
        /// Rows, at least 1.
        rows: u32,
        /// Columns, as [`Command::Softmax`]'s.
        cols: u32,
        /// Added to the variance: finite, not negative.
        eps: f32,
        /// [`LAYER_NORM_FLAG_RMS`].
        rms: bool,
    },
    /// Sums `count` `f32`s in index order and writes the `f32` sum.
    ReduceSum {
        /// The input array.
        src: u64,
        /// Where the sum goes.
        dst: u64,
        /// Number of elements, at most `MAX_TRANSFER / 4`.
        count: u64,
    },
    /// Writes the FNV-1a 64-bit hash of `len` bytes as a `u64`.
    Checksum {
        /// The bytes.
        src: u64,
        /// Where the hash goes.
        dst: u64,
        /// Number of bytes, at most [`MAX_TRANSFER`].
        len: u64,
    },
    /// Waits until stamp slot `slot` has passed `value` (the scheduler's business).
    Barrier {
        /// Stamp slot, below [`NUM_STAMP_SLOTS`].
        slot: u32,
        /// Value to wait for.
        value: u32,
        /// [`BARRIER_FLAG_DEP_ERROR`]: the entry fails if the awaited entry failed.
        dep_error: bool,
    },
    /// Never completes (the scheduler's business).
    DebugHang,
    /// Reads `address`, expected to be unmapped: a deliberate fault.
    DebugFault {
        /// The address to read.
        address: u64,
    },
}

/// Decodes the command at byte `offset` of the command buffer at GPU VA `cmdbuf` (length `len`
/// bytes), reading it through the VM, as ABI minor version `abi_minor` defines it. Returns the
/// command and its size in bytes.
///
/// The size is the header's `size`, which may exceed the opcode's structure (the extra bytes
/// are ignored); the next command starts `size` bytes further.
///
/// # Errors
///
/// - [`FAULT_BAD_COMMAND`] at the header's address if the command is malformed (see the
///   [module docs](self)).
/// - The VM's fault if the command cannot be read.
pub fn decode(
    vm: &Vm,
    mem: &mut dyn Memory,
    cmdbuf: u64,
    len: u32,
    offset: u32,
    abi_minor: u16,
) -> Result<(Command, u32), Fault> {
    decode_in(&mut Bus { vm, mem }, cmdbuf, len, offset, abi_minor)
}

/// [`decode`] in `space`.
fn decode_in(
    space: &mut dyn Space,
    cmdbuf: u64,
    len: u32,
    offset: u32,
    abi_minor: u16,
) -> Result<(Command, u32), Fault> {
    let at = cmdbuf.wrapping_add(u64::from(offset));
    let bad = Fault {
        kind: FAULT_BAD_COMMAND,
        address: at,
    };
    // `u64` sums of `u32`s cannot overflow.
    let room = u64::from(len).saturating_sub(u64::from(offset));
    if room < 8 {
        return Err(bad);
    }
    let header: CmdHeader = fetch(space, at)?;
    let size = header.size;
    if size < 8 || size & 7 != 0 || u64::from(size) > room {
        return Err(bad);
    }
    if header.flags & !defined_flags(header.opcode, abi_minor) != 0 {
        return Err(bad);
    }
    let command = match header.opcode {
        OP_NOP => {
            args::<CmdNop>(space, at, size, bad)?;
            Command::Nop
        }
        OP_DELAY => {
            let c = args::<CmdDelay>(space, at, size, bad)?;
            Command::Delay { ns: c.ns }
        }
        OP_WRITE32 => {
            let c = args::<CmdWrite32>(space, at, size, bad)?;
            zero(c._pad, bad)?;
            Command::Write32 {
                address: c.address,
                value: c.value,
            }
        }
        OP_WRITE64 => {
            let c = args::<CmdWrite64>(space, at, size, bad)?;
            Command::Write64 {
                address: c.address,
                value: c.value,
            }
        }
        OP_COPY => {
            let c = args::<CmdCopy>(space, at, size, bad)?;
            Command::Copy {
                src: c.src,
                dst: c.dst,
                len: c.len,
            }
        }
        OP_FILL => {
            let c = args::<CmdFill>(space, at, size, bad)?;
            zero(c._pad, bad)?;
            Command::Fill {
                dst: c.dst,
                len: c.len,
                pattern: c.pattern,
            }
        }
        OP_GEMM => {
            let c = args::<CmdGemm>(space, at, size, bad)?;
            zero(c._pad, bad)?;
            Command::Gemm {
                a: c.a,
                b: c.b,
                c: c.c,
                m: c.m,
                n: c.n,
                k: c.k,
                accumulate: c.header.flags & GEMM_FLAG_ACCUMULATE != 0,
                transpose_b: c.header.flags & GEMM_FLAG_TRANSPOSE_B != 0,
            }
        }
        OP_ELEMENTWISE if abi_minor >= ABI_MINOR_ML_COMMANDS => {
            let c = args::<CmdElementwise>(space, at, size, bad)?;
            zero(c._pad, bad)?;
            if c.op != ELEMENTWISE_AXPBY && (c.alpha != 0 || c.beta != 0) {
                return Err(bad);
            }
            Command::Elementwise {
                op: c.op,
                a: c.a,
                b: c.b,
                dst: c.dst,
                count: c.count,
                alpha: f32::from_bits(c.alpha),
                beta: f32::from_bits(c.beta),
            }
        }
        OP_ACTIVATION if abi_minor >= ABI_MINOR_ML_COMMANDS => {
            let c = args::<CmdActivation>(space, at, size, bad)?;
            zero(c._pad, bad)?;
            Command::Activation {
                op: c.op,
                src: c.src,
                dst: c.dst,
                count: c.count,
            }
        }
        OP_SOFTMAX if abi_minor >= ABI_MINOR_ML_COMMANDS => {
            let c = args::<CmdSoftmax>(space, at, size, bad)?;
            Command::Softmax {
                src: c.src,
                dst: c.dst,
                rows: c.rows,
                cols: c.cols,
            }
        }
        OP_LAYER_NORM if abi_minor >= ABI_MINOR_ML_COMMANDS => {
            let c = args::<CmdLayerNorm>(space, at, size, bad)?;
            zero(c._pad, bad)?;
            Command::LayerNorm {
                src: c.src,
                dst: c.dst,
                gamma: c.gamma,
                beta: c.beta,
                rows: c.rows,
                cols: c.cols,
                eps: f32::from_bits(c.eps),
                rms: c.header.flags & LAYER_NORM_FLAG_RMS != 0,
            }
        }
        OP_SUM if abi_minor >= ABI_MINOR_SUM => {
            let c = args::<CmdSum>(space, at, size, bad)?;
            zero(c._pad, bad)?;
            // CAST: a `u32` fits in `usize` on every host QEMU runs on.
            let used = (c.sources as usize).min(MAX_SUM_SOURCES);
            if c.src[used..].iter().any(|&a| a != 0) {
                return Err(bad);
            }
            Command::Sum {
                src: c.src,
                sources: c.sources,
                dst: c.dst,
                count: c.count,
            }
        }
        OP_REDUCE_SUM => {
            let c = args::<CmdReduceSum>(space, at, size, bad)?;
            Command::ReduceSum {
                src: c.src,
                dst: c.dst,
                count: c.count,
            }
        }
        OP_CHECKSUM => {
            let c = args::<CmdChecksum>(space, at, size, bad)?;
            Command::Checksum {
                src: c.src,
                dst: c.dst,
                len: c.len,
            }
        }
        OP_BARRIER => {
            let c = args::<CmdBarrier>(space, at, size, bad)?;
            Command::Barrier {
                slot: c.slot,
                value: c.value,
                dep_error: c.header.flags & BARRIER_FLAG_DEP_ERROR != 0,
            }
        }
        OP_DEBUG_HANG => {
            args::<CmdDebugHang>(space, at, size, bad)?;
            Command::DebugHang
        }
        OP_DEBUG_FAULT => {
            let c = args::<CmdDebugFault>(space, at, size, bad)?;
            Command::DebugFault { address: c.address }
        }
        _ => return Err(bad),
    };
    if !command.is_valid() {
        return Err(bad);
    }
    Ok((command, u32::from(size)))
}

/// The header flags `opcode` has in ABI minor version `abi_minor`.
fn defined_flags(opcode: u16, abi_minor: u16) -> u32 {
    match opcode {
        OP_BARRIER if abi_minor >= ABI_MINOR_DEPENDENCIES => BARRIER_FLAG_DEP_ERROR,
        OP_GEMM if abi_minor >= ABI_MINOR_ML_COMMANDS => {
            GEMM_FLAG_ACCUMULATE | GEMM_FLAG_TRANSPOSE_B
        }
        OP_LAYER_NORM if abi_minor >= ABI_MINOR_ML_COMMANDS => LAYER_NORM_FLAG_RMS,
        _ => 0,
    }
}

/// Reads a `T` at `va` through the VM.
fn fetch<T: pod::Pod>(space: &mut dyn Space, va: u64) -> Result<T, Fault> {
    let mut value = pod::zeroed::<T>();
    space.read(va, pod::as_bytes_mut(&mut value))?;
    Ok(value)
}

/// Reads the command structure `T` at `va`, if the header's `size` covers it.
fn args<T: cmd::Command>(
    space: &mut dyn Space,
    va: u64,
    size: u16,
    bad: Fault,
) -> Result<T, Fault> {
    if usize::from(size) < size_of::<T>() {
        return Err(bad);
    }
    fetch(space, va)
}

/// Fails with `bad` unless a reserved field is zero.
fn zero(field: u32, bad: Fault) -> Result<(), Fault> {
    if field == 0 {
        Ok(())
    } else {
        Err(bad)
    }
}

/// The time to move `amount` units at `per_us` units per microsecond, in nanoseconds, rounded
/// up; saturates, and a rate of zero makes any nonzero amount take forever.
fn scaled_ns(amount: u64, per_us: u64) -> u64 {
    if amount == 0 {
        return 0;
    }
    if per_us == 0 {
        return u64::MAX;
    }
    let ns = (u128::from(amount) * 1000).div_ceil(u128::from(per_us));
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// The number of bytes of a `count`-element `f32` array (saturating).
fn f32_bytes(count: u64) -> u64 {
    count.saturating_mul(4)
}

impl Command {
    /// The command's `OP_*` opcode.
    pub fn opcode(&self) -> u16 {
        match self {
            Self::Nop => OP_NOP,
            Self::Delay { .. } => OP_DELAY,
            Self::Write32 { .. } => OP_WRITE32,
            Self::Write64 { .. } => OP_WRITE64,
            Self::Copy { .. } => OP_COPY,
            Self::Fill { .. } => OP_FILL,
            Self::Gemm { .. } => OP_GEMM,
            Self::Elementwise { .. } => OP_ELEMENTWISE,
            Self::Sum { .. } => OP_SUM,
            Self::Activation { .. } => OP_ACTIVATION,
            Self::Softmax { .. } => OP_SOFTMAX,
            Self::LayerNorm { .. } => OP_LAYER_NORM,
            Self::ReduceSum { .. } => OP_REDUCE_SUM,
            Self::Checksum { .. } => OP_CHECKSUM,
            Self::Barrier { .. } => OP_BARRIER,
            Self::DebugHang => OP_DEBUG_HANG,
            Self::DebugFault { .. } => OP_DEBUG_FAULT,
        }
    }

    /// Device time the command takes, in ns.
    ///
    /// DELAY: `command_ns` plus its `ns`; BARRIER: `command_ns` only (the wait is the
    /// scheduler's business); DEBUG_HANG: `command_ns` (the scheduler never completes it). See
    /// the [module docs](self) for the others.
    pub fn cost_ns(&self, rates: &Rates) -> u64 {
        let (extra, bytes, flops) = match *self {
            Self::Nop | Self::Barrier { .. } | Self::DebugHang | Self::DebugFault { .. } => {
                (0, 0, 0)
            }
            Self::Delay { ns } => (ns, 0, 0),
            Self::Write32 { .. } => (0, 4, 0),
            Self::Write64 { .. } => (0, 8, 0),
            Self::Copy { len, .. } => (0, len.saturating_mul(2), 0),
            Self::Fill { len, .. } | Self::Checksum { len, .. } => (0, len, 0),
            Self::ReduceSum { count, .. } => (0, f32_bytes(count).saturating_add(4), 0),
            Self::Gemm {
                m,
                n,
                k,
                accumulate,
                ..
            } => {
                let (m, n, k) = (u64::from(m), u64::from(n), u64::from(k));
                let mn = m.saturating_mul(n);
                // Accumulating reads C too, and adds once more per element.
                let c_reads = if accumulate { mn } else { 0 };
                let elements = m
                    .saturating_mul(k)
                    .saturating_add(k.saturating_mul(n))
                    .saturating_add(mn)
                    .saturating_add(c_reads);
                let flops = mn
                    .saturating_mul(k)
                    .saturating_mul(2)
                    .saturating_add(c_reads);
                (0, f32_bytes(elements), flops)
            }
            Self::Elementwise { op, count, .. } => {
                let per = if op == ELEMENTWISE_AXPBY { 3 } else { 1 };
                (
                    0,
                    f32_bytes(count).saturating_mul(3),
                    count.saturating_mul(per),
                )
            }
            Self::Sum { sources, count, .. } => {
                // Every input read once, the output written once; an add per input but one.
                let sources = u64::from(sources);
                (
                    0,
                    f32_bytes(count).saturating_mul(sources.saturating_add(1)),
                    count.saturating_mul(sources.saturating_sub(1)),
                )
            }
            Self::Activation { op, count, .. } => {
                let per = match op {
                    ACTIVATION_RELU => 1,
                    ACTIVATION_SILU => 6,
                    _ => 10,
                };
                (
                    0,
                    f32_bytes(count).saturating_mul(2),
                    count.saturating_mul(per),
                )
            }
            Self::Softmax { rows, cols, .. } => {
                let n = u64::from(rows).saturating_mul(u64::from(cols));
                (0, f32_bytes(n).saturating_mul(2), n.saturating_mul(6))
            }
            Self::LayerNorm { rows, cols, .. } => {
                let n = u64::from(rows).saturating_mul(u64::from(cols));
                let bytes = f32_bytes(n)
                    .saturating_mul(2)
                    .saturating_add(f32_bytes(u64::from(cols)).saturating_mul(2));
                (0, bytes, n.saturating_mul(8))
            }
        };
        rates.command_ns.saturating_add(extra).saturating_add(
            scaled_ns(bytes, rates.bytes_per_us).max(scaled_ns(flops, rates.flops_per_us)),
        )
    }

    /// Whether the arguments are in range (the checks of [`decode`] beyond the encoding).
    fn is_valid(&self) -> bool {
        let dim_ok = |d: u32| (1..=MAX_GEMM_DIM).contains(&d);
        match *self {
            Self::Nop | Self::Delay { .. } | Self::DebugHang | Self::DebugFault { .. } => true,
            Self::Write32 { address, .. } => address & 3 == 0,
            Self::Write64 { address, .. } => address & 7 == 0,
            Self::Copy { src, dst, len } => {
                // Half-open ranges, computed without overflow.
                let (src, dst, len) = (u128::from(src), u128::from(dst), u128::from(len));
                let overlap = len > 0 && src < dst + len && dst < src + len;
                len <= u128::from(MAX_TRANSFER) && !overlap
            }
            Self::Fill { len, .. } | Self::Checksum { len, .. } => len <= MAX_TRANSFER,
            Self::ReduceSum { count, .. } => count <= MAX_TRANSFER / 4,
            Self::Gemm { m, n, k, .. } => dim_ok(m) && dim_ok(n) && dim_ok(k),
            Self::Elementwise {
                op,
                a,
                b,
                dst,
                count,
                ..
            } => {
                let bytes = f32_bytes(count);
                op <= ELEMENTWISE_AXPBY
                    && (1..=MAX_TRANSFER / 4).contains(&count)
                    && alias_ok(a, dst, bytes)
                    && alias_ok(b, dst, bytes)
            }
            Self::Sum {
                src,
                sources,
                dst,
                count,
            } => {
                let bytes = f32_bytes(count);
                (2..=MAX_SUM_SOURCES).contains(&(sources as usize))
                    && (1..=MAX_TRANSFER / 4).contains(&count)
                    && src[..sources as usize]
                        .iter()
                        .all(|&a| alias_ok(a, dst, bytes))
            }
            Self::Activation {
                op,
                src,
                dst,
                count,
            } => {
                op <= ACTIVATION_SILU
                    && (1..=MAX_TRANSFER / 4).contains(&count)
                    && alias_ok(src, dst, f32_bytes(count))
            }
            Self::Softmax {
                src,
                dst,
                rows,
                cols,
            } => rows_ok(rows, cols) && alias_ok(src, dst, matrix_bytes(rows, cols)),
            Self::LayerNorm {
                src,
                dst,
                rows,
                cols,
                eps,
                ..
            } => {
                rows_ok(rows, cols)
                    && alias_ok(src, dst, matrix_bytes(rows, cols))
                    && eps.is_finite()
                    && eps >= 0.0
            }
            // CAST: `NUM_STAMP_SLOTS` is 128.
            Self::Barrier { slot, .. } => slot < NUM_STAMP_SLOTS as u32,
        }
    }

    /// Performs the command's effect on memory.
    ///
    /// BARRIER, DEBUG_HANG, NOP and DELAY do nothing here. DEBUG_FAULT reads a byte at its
    /// address through the VM and returns the resulting fault; if the address happens to be
    /// mapped and readable, it returns a [`FAULT_INJECTED`] fault at the address. See the
    /// [module docs](self) for the effects and for what a fault leaves behind.
    ///
    /// # Errors
    ///
    /// - The VM's fault at the first byte the command cannot access.
    /// - [`FAULT_BAD_COMMAND`] at address 0 if the command was not produced by [`decode`] and
    ///   has out-of-range arguments (nothing is accessed).
    /// - DEBUG_FAULT always fails, as above.
    pub fn execute(&self, vm: &Vm, mem: &mut dyn Memory) -> Result<(), Fault> {
        self.run(&mut Bus { vm, mem })
    }

    /// [`Command::execute`] in `space`.
    fn run(&self, space: &mut dyn Space) -> Result<(), Fault> {
        if !self.is_valid() {
            return Err(Fault {
                kind: FAULT_BAD_COMMAND,
                address: 0,
            });
        }
        match *self {
            Self::Nop | Self::Delay { .. } | Self::Barrier { .. } | Self::DebugHang => Ok(()),
            Self::Write32 { address, value } => space.write(address, &value.to_le_bytes()),
            Self::Write64 { address, value } => space.write(address, &value.to_le_bytes()),
            Self::Copy { src, dst, len } => copy(space, src, dst, len),
            Self::Fill { dst, len, pattern } => fill(space, dst, len, pattern),
            Self::Gemm {
                a,
                b,
                c,
                m,
                n,
                k,
                accumulate,
                transpose_b,
            } => {
                let inputs = GemmInputs::read(
                    space,
                    [a, b, c],
                    [m, n, k],
                    GemmFlags {
                        accumulate,
                        transpose_b,
                    },
                )?;
                let c = inputs.compute();
                inputs.write(space, &c)
            }
            Self::Elementwise {
                op,
                a,
                b,
                dst,
                count,
                alpha,
                beta,
            } => ml::elementwise(space, op, [a, b, dst], count, [alpha, beta]),
            Self::Sum {
                src,
                sources,
                dst,
                count,
            } => ml::sum(
                space,
                src.get(..sources as usize).unwrap_or(&[]),
                dst,
                count,
            ),
            Self::Activation {
                op,
                src,
                dst,
                count,
            } => ml::activation(space, op, src, dst, count),
            Self::Softmax {
                src,
                dst,
                rows,
                cols,
            } => ml::softmax(space, src, dst, rows, cols),
            Self::LayerNorm {
                src,
                dst,
                gamma,
                beta,
                rows,
                cols,
                eps,
                rms,
            } => ml::layer_norm(space, [src, dst, gamma, beta], rows, cols, eps, rms),
            Self::ReduceSum { src, dst, count } => reduce_sum(space, src, dst, count),
            Self::Checksum { src, dst, len } => checksum(space, src, dst, len),
            Self::DebugFault { address } => {
                space.read(address, &mut [0u8])?;
                Err(Fault {
                    kind: FAULT_INJECTED,
                    address,
                })
            }
        }
    }
}

/// The size of the next chunk of a transfer with `left` bytes to go.
fn chunk_len(left: u64) -> usize {
    // CAST: the value is at most `CHUNK`, which fits in `usize`.
    left.min(CHUNK as u64) as usize
}

/// Reads the `len` bytes at `va` chunk by chunk, passing each chunk to `f`; every chunk but the
/// last is [`CHUNK`] bytes long.
fn read_chunks(
    space: &mut dyn Space,
    va: u64,
    len: u64,
    mut f: impl FnMut(&[u8]),
) -> Result<(), Fault> {
    let mut buf = vec![0u8; chunk_len(len)];
    let mut done = 0;
    while done < len {
        let n = chunk_len(len - done);
        // PANIC: `n <= chunk_len(len) == buf.len()`.
        let chunk = &mut buf[..n];
        space.read(va.saturating_add(done), chunk)?;
        f(chunk);
        // CAST: `n` is at most `CHUNK`.
        done += n as u64;
    }
    Ok(())
}

/// Decodes little-endian `f32`s from `bytes` (a trailing partial element is ignored).
fn f32s(bytes: &[u8]) -> impl Iterator<Item = f32> + '_ {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// COPY: `len` bytes from `src` to `dst`.
fn copy(space: &mut dyn Space, src: u64, dst: u64, len: u64) -> Result<(), Fault> {
    space.check(src, len, Access::Read)?;
    space.check(dst, len, Access::Write)?;
    let mut buf = vec![0u8; chunk_len(len)];
    let mut done = 0;
    while done < len {
        let n = chunk_len(len - done);
        // PANIC: `n <= chunk_len(len) == buf.len()`.
        let chunk = &mut buf[..n];
        space.read(src.saturating_add(done), chunk)?;
        space.write(dst.saturating_add(done), chunk)?;
        // CAST: `n` is at most `CHUNK`.
        done += n as u64;
    }
    Ok(())
}

/// FILL: `len` bytes at `dst` with `pattern`'s little-endian bytes, repeated.
fn fill(space: &mut dyn Space, dst: u64, len: u64, pattern: u32) -> Result<(), Fault> {
    space.check(dst, len, Access::Write)?;
    // Every chunk but the last is a multiple of 4 bytes, so each starts with the pattern's
    // first byte.
    let buf: Vec<u8> = pattern
        .to_le_bytes()
        .iter()
        .copied()
        .cycle()
        .take(chunk_len(len))
        .collect();
    let mut done = 0;
    while done < len {
        let n = chunk_len(len - done);
        // PANIC: `n <= chunk_len(len) == buf.len()`.
        space.write(dst.saturating_add(done), &buf[..n])?;
        // CAST: `n` is at most `CHUNK`.
        done += n as u64;
    }
    Ok(())
}

/// Whether output `dst` of `bytes` bytes is input `src` exactly or does not overlap it.
fn alias_ok(src: u64, dst: u64, bytes: u64) -> bool {
    let (s, d, n) = (u128::from(src), u128::from(dst), u128::from(bytes));
    s == d || s + n <= d || d + n <= s
}

/// Whether a `rows × cols` matrix is a valid SOFTMAX or LAYER_NORM operand.
fn rows_ok(rows: u32, cols: u32) -> bool {
    rows >= 1
        && (1..=MAX_ROW).contains(&cols)
        && u64::from(rows) * u64::from(cols) <= MAX_TRANSFER / 4
}

/// Bytes of a `rows × cols` `f32` matrix.
fn matrix_bytes(rows: u32, cols: u32) -> u64 {
    f32_bytes(u64::from(rows).saturating_mul(u64::from(cols)))
}

/// GEMM's ABI 1.2 flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct GemmFlags {
    /// `C += A × B`.
    pub accumulate: bool,
    /// B is `n × k`.
    pub transpose_b: bool,
}

/// A GEMM's operands, read from guest memory: what its arithmetic needs, so that it can run
/// away from guest memory (on a worker thread, [`crate::workers`]) between the command's
/// start and its completion.
#[derive(Clone, Debug, PartialEq)]
struct GemmInputs {
    a: Vec<f32>,
    /// B, `k × n` row-major (transposed back if it was given transposed).
    b: Vec<f32>,
    /// C's elements before the command, if it accumulates.
    c_in: Option<Vec<f32>>,
    /// Where C goes, and the dimensions.
    c: u64,
    m: usize,
    n: usize,
    k: usize,
}

impl GemmInputs {
    /// Checks that A and B (and C, if accumulating) are readable and C writable, then reads
    /// them (each at most 4 MiB).
    fn read(
        space: &mut dyn Space,
        [a, b, c]: [u64; 3],
        [m, n, k]: [u32; 3],
        flags: GemmFlags,
    ) -> Result<Self, Fault> {
        let (m64, n64, k64) = (u64::from(m), u64::from(n), u64::from(k));
        let len_a = f32_bytes(k64.saturating_mul(m64));
        let len_b = f32_bytes(k64.saturating_mul(n64));
        let len_c = f32_bytes(n64.saturating_mul(m64));
        space.check(a, len_a, Access::Read)?;
        space.check(b, len_b, Access::Read)?;
        if flags.accumulate {
            space.check(c, len_c, Access::Read)?;
        }
        space.check(c, len_c, Access::Write)?;
        let read_all = |space: &mut dyn Space, va, len| -> Result<Vec<f32>, Fault> {
            let mut v = Vec::new();
            read_chunks(space, va, len, |chunk| v.extend(f32s(chunk)))?;
            Ok(v)
        };
        let mat_a = read_all(space, a, len_a)?;
        let mut mat_b = read_all(space, b, len_b)?;
        let c_in = if flags.accumulate {
            Some(read_all(space, c, len_c)?)
        } else {
            None
        };
        let dim = |d: u32| usize::try_from(d).unwrap_or(0);
        let (n, k) = (dim(n), dim(k));
        if flags.transpose_b {
            // Given as `n × k`: element (p, j) is at j·k + p.
            mat_b = (0..k * n).map(|i| mat_b[(i % n) * k + i / n]).collect();
        }
        Ok(Self {
            a: mat_a,
            b: mat_b,
            c_in,
            c,
            m: dim(m),
            n,
            k,
        })
    }

    /// C, row-major. Row `p` of B scales `A[i][p]`, so each `C[i][j]` accumulates its
    /// products in increasing `p`, one rounding per multiply and per add (Rust does not fuse
    /// them): bit-identical to the plain triple loop. The inner loop over `j` has no
    /// dependence between elements, so the compiler vectorises it; it already streams B at
    /// about 20 GFLOP/s on one core of the development host (SSE2), and a blocked version
    /// (4 rows of A, 256 columns at a time) measured no faster, so it stays this simple.
    ///
    /// Accumulating adds each finished sum to C's element before the command: `C + (A × B)`.
    fn compute(&self) -> Vec<f32> {
        let mut c = vec![0.0f32; self.m * self.n];
        if self.n == 0 || self.k == 0 {
            return c;
        }
        for (row_a, acc) in self.a.chunks_exact(self.k).zip(c.chunks_exact_mut(self.n)) {
            for (&x, row_b) in row_a.iter().zip(self.b.chunks_exact(self.n)) {
                for (sum, &y) in acc.iter_mut().zip(row_b) {
                    *sum += x * y;
                }
            }
        }
        if let Some(c_in) = &self.c_in {
            for (sum, &old) in c.iter_mut().zip(c_in) {
                *sum += old;
            }
        }
        c
    }

    /// Writes `c` (from [`Self::compute`]) to C, dense row-major, in pieces of [`CHUNK`]
    /// bytes (each a walk of the VM and as few bus accesses as its pages allow).
    fn write(&self, space: &mut dyn Space, c: &[f32]) -> Result<(), Fault> {
        let mut out = vec![0u8; CHUNK];
        let mut at = self.c;
        for piece in c.chunks(CHUNK / 4) {
            let bytes = &mut out[..piece.len() * 4];
            for (b, v) in bytes.chunks_exact_mut(4).zip(piece) {
                b.copy_from_slice(&v.to_le_bytes());
            }
            space.write(at, bytes)?;
            // CAST: at most `CHUNK`.
            at = at.saturating_add(bytes.len() as u64);
        }
        Ok(())
    }
}

/// REDUCE_SUM: the `f32` sum of the `count` elements at `src`, written at `dst`.
fn reduce_sum(space: &mut dyn Space, src: u64, dst: u64, count: u64) -> Result<(), Fault> {
    let len = f32_bytes(count);
    space.check(src, len, Access::Read)?;
    space.check(dst, 4, Access::Write)?;
    let mut sum = 0.0f32;
    // Chunks are multiples of 4 bytes, so no element straddles two.
    read_chunks(space, src, len, |chunk| {
        sum = f32s(chunk).fold(sum, |s, x| s + x);
    })?;
    space.write(dst, &sum.to_le_bytes())
}

/// CHECKSUM: the FNV-1a 64-bit hash of the `len` bytes at `src`, written at `dst`.
fn checksum(space: &mut dyn Space, src: u64, dst: u64, len: u64) -> Result<(), Fault> {
    space.check(src, len, Access::Read)?;
    space.check(dst, 8, Access::Write)?;
    let mut hash = FNV_BASIS;
    read_chunks(space, src, len, |chunk| hash = fnv1a(hash, chunk))?;
    space.write(dst, &hash.to_le_bytes())
}

/// Continues an FNV-1a 64-bit hash over `bytes`.
fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(hash, |h, &b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME))
}

mod ml;
pub mod offload;
#[cfg(test)]
mod tests;
