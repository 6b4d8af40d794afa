// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Commands that run on a worker thread ([`crate::workers`]), away from the thread that drives
//! the model (QEMU's main loop, holding its big lock).
//!
//! At the command's start the model translates its operands through the VM and maps them into
//! the host ([`Vm::map`]); the worker reads the operands from there, computes, and keeps what
//! the command writes; at the command's completion the model writes that to guest memory. So
//! the guest sees a command's results when it completes, as when the model runs the command
//! itself, and a command abandoned before its completion (a halt, a reset queue) has no
//! effect. The worker only copies host memory: it takes no lock of QEMU's.
//!
//! ```text
//!        start (model)                   worker                    completion (model)
//!   Offloaded::prepare ───────────► Offloaded::run ────────────► Offloaded::commit
//!   translate, map operands          read, compute,               write what was kept,
//!     │                              keep the writes              unmap (on drop)
//!     ├─ a translation fault: Err, the command's fault at its completion
//!     └─ an operand not plain RAM: Ok(None), the model runs the command at completion
//! ```
//!
//! What differs from the model running the command itself: operands are translated at the
//! start (a mapping the host changes while the command runs is not seen) and read some time
//! between start and completion (memory another unit or the guest's CPUs write meanwhile, with
//! nothing ordering the two, may be seen or not, as on hardware). Commands ordered by a queue,
//! a barrier or a wait see each other's results as before: a command starts only after those
//! it follows have completed, and a completion waits for its worker.

use vagx_abi::channels::FAULT_BAD_COMMAND;

use super::{f32_bytes, Command, Space};
use crate::mem::Memory;
use crate::mmu::{Access, Fault, HostRange, Vm};

impl Command {
    /// The ranges the command reads and writes, in the order it checks them, as
    /// `(address, bytes, access)`; `None` for a command that is not worth a worker (it moves no
    /// data, or a few bytes) or that the model must run itself (DEBUG_FAULT).
    fn operands(&self) -> Option<Vec<(u64, u64, Access)>> {
        use Access::{Read, Write};
        let ranges = match *self {
            Self::Nop
            | Self::Delay { .. }
            | Self::Barrier { .. }
            | Self::DebugHang
            | Self::DebugFault { .. }
            | Self::Write32 { .. }
            | Self::Write64 { .. } => return None,
            Self::Copy { src, dst, len } => vec![(src, len, Read), (dst, len, Write)],
            Self::Fill { dst, len, .. } => vec![(dst, len, Write)],
            Self::Gemm {
                a,
                b,
                c,
                m,
                n,
                k,
                accumulate,
                ..
            } => {
                let (m, n, k) = (u64::from(m), u64::from(n), u64::from(k));
                let len_c = f32_bytes(m * n);
                let mut v = vec![(a, f32_bytes(m * k), Read), (b, f32_bytes(k * n), Read)];
                if accumulate {
                    v.push((c, len_c, Read));
                }
                v.push((c, len_c, Write));
                v
            }
            Self::Elementwise {
                a, b, dst, count, ..
            } => {
                let len = f32_bytes(count);
                vec![(a, len, Read), (b, len, Read), (dst, len, Write)]
            }
            Self::Sum {
                src,
                sources,
                dst,
                count,
            } => {
                let len = f32_bytes(count);
                let used = src.get(..sources as usize).unwrap_or(&src);
                let mut v: Vec<_> = used.iter().map(|&a| (a, len, Read)).collect();
                v.push((dst, len, Write));
                v
            }
            Self::Activation {
                src, dst, count, ..
            } => {
                let len = f32_bytes(count);
                vec![(src, len, Read), (dst, len, Write)]
            }
            Self::Softmax {
                src,
                dst,
                rows,
                cols,
            } => {
                let len = f32_bytes(u64::from(cols)).saturating_mul(u64::from(rows));
                vec![(src, len, Read), (dst, len, Write)]
            }
            Self::LayerNorm {
                src,
                dst,
                gamma,
                beta,
                rows,
                cols,
                rms,
                ..
            } => {
                let row = f32_bytes(u64::from(cols));
                let len = row.saturating_mul(u64::from(rows));
                let mut v = vec![(src, len, Read), (gamma, row, Read)];
                if !rms {
                    v.push((beta, row, Read));
                }
                v.push((dst, len, Write));
                v
            }
            Self::ReduceSum { src, dst, count } => {
                vec![(src, f32_bytes(count), Read), (dst, 4, Write)]
            }
            Self::Checksum { src, dst, len } => vec![(src, len, Read), (dst, 8, Write)],
        };
        Some(ranges)
    }
}

/// A command's operands, mapped at its start, and what it has written so far.
#[derive(Debug)]
struct Staged {
    ranges: Vec<HostRange>,
    /// Writes in the order the command made them: address and bytes.
    writes: Vec<(u64, Vec<u8>)>,
}

impl Staged {
    /// The operand that holds the `len` bytes at `va` for `access`.
    fn range(&self, va: u64, len: usize, access: Access) -> Result<&HostRange, Fault> {
        self.ranges
            .iter()
            .find(|r| r.covers(va, len, access))
            // Not an operand: `Command::operands` and the command's code disagree (a model
            // bug, which the tests comparing both ways of running commands catch).
            .ok_or(Fault {
                kind: FAULT_BAD_COMMAND,
                address: va,
            })
    }
}

impl Space for Staged {
    fn check(&mut self, va: u64, len: u64, access: Access) -> Result<(), Fault> {
        let len = usize::try_from(len).map_err(|_| Fault {
            kind: FAULT_BAD_COMMAND,
            address: va,
        })?;
        self.range(va, len, access).map(|_| ())
    }

    /// Reads guest memory, not what the command wrote so far: no command reads what it has
    /// written (an output is an input exactly, read piece by piece before it is written, or
    /// apart from every input).
    fn read(&mut self, va: u64, buf: &mut [u8]) -> Result<(), Fault> {
        self.range(va, buf.len(), Access::Read)?.read(va, buf);
        Ok(())
    }

    fn write(&mut self, va: u64, buf: &[u8]) -> Result<(), Fault> {
        self.range(va, buf.len(), Access::Write)?;
        self.writes.push((va, buf.to_vec()));
        Ok(())
    }
}

/// A command for a worker: see the [module docs](self).
#[derive(Debug)]
pub struct Offloaded {
    command: Command,
    staged: Staged,
    result: Option<Result<(), Fault>>,
}

impl Offloaded {
    /// Translates and maps `command`'s operands.
    ///
    /// `Ok(None)` if the command is not one for a worker or an operand is not plain RAM: the
    /// caller runs it with [`Command::execute`] at its completion.
    ///
    /// # Errors
    ///
    /// The fault [`Command::execute`] would report for an operand that does not translate.
    pub fn prepare(command: Command, vm: &Vm, mem: &mut dyn Memory) -> Result<Option<Self>, Fault> {
        let Some(operands) = command.operands().filter(|_| command.is_valid()) else {
            return Ok(None);
        };
        let mut ranges = Vec::with_capacity(operands.len());
        for (va, len, access) in operands {
            // Valid commands move at most `MAX_TRANSFER` bytes per operand.
            let Ok(len) = usize::try_from(len) else {
                return Ok(None);
            };
            match vm.map(mem, va, len, access)? {
                Some(range) => ranges.push(range),
                None => return Ok(None),
            }
        }
        Ok(Some(Self {
            command,
            staged: Staged {
                ranges,
                writes: Vec::new(),
            },
            result: None,
        }))
    }

    /// Runs the command on its mapped operands (on a worker).
    pub fn run(&mut self) {
        self.result = Some(self.command.run(&mut self.staged));
    }

    /// Writes what the command wrote to guest memory and returns its result (at its
    /// completion, on the model's thread). A command that was not run runs now.
    ///
    /// # Errors
    ///
    /// The command's fault; what it wrote before it is written, as on the bus.
    pub fn commit(mut self) -> Result<(), Fault> {
        let result = match self.result.take() {
            Some(result) => result,
            None => self.command.run(&mut self.staged),
        };
        for (va, bytes) in &self.staged.writes {
            // Every write was checked against a written operand.
            if let Ok(range) = self.staged.range(*va, bytes.len(), Access::Write) {
                range.write(*va, bytes);
            }
        }
        result
    }
}
