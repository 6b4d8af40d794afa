// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Command buffers in the device's format (`vagx_abi::cmd`), built on the CPU.

use vagx_abi::{cmd::*, pod};

/// A command buffer under construction.
#[derive(Clone, Debug, Default)]
pub struct CmdBuf {
    bytes: Vec<u8>,
    count: u32,
}

impl CmdBuf {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    fn push<T: Command>(&mut self, cmd: &T) -> &mut Self {
        self.bytes.extend_from_slice(pod::as_bytes(cmd));
        self.count += 1;
        self
    }

    /// The encoded commands.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Size in bytes.
    pub fn len(&self) -> u32 {
        u32::try_from(self.bytes.len()).expect("command buffers are small")
    }

    /// Number of commands.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Does nothing.
    pub fn nop(&mut self) -> &mut Self {
        self.push(&CmdNop {
            header: CmdNop::HEADER,
        })
    }

    /// Waits `ns` of device time.
    pub fn delay(&mut self, ns: u64) -> &mut Self {
        self.push(&CmdDelay {
            header: CmdDelay::HEADER,
            ns,
        })
    }

    /// Stores a `u32`.
    pub fn write32(&mut self, address: u64, value: u32) -> &mut Self {
        self.push(&CmdWrite32 {
            header: CmdWrite32::HEADER,
            address,
            value,
            _pad: 0,
        })
    }

    /// Fills `len` bytes with `pattern`.
    pub fn fill(&mut self, dst: u64, len: u64, pattern: u32) -> &mut Self {
        self.push(&CmdFill {
            header: CmdFill::HEADER,
            dst,
            len,
            pattern,
            _pad: 0,
        })
    }

    /// Copies `len` bytes.
    pub fn copy(&mut self, src: u64, dst: u64, len: u64) -> &mut Self {
        self.push(&CmdCopy {
            header: CmdCopy::HEADER,
            src,
            dst,
            len,
        })
    }

    /// `C = A × B` on `f32` matrices.
    pub fn gemm(&mut self, a: u64, b: u64, c: u64, m: u32, n: u32, k: u32) -> &mut Self {
        self.push(&CmdGemm {
            header: CmdGemm::HEADER,
            a,
            b,
            c,
            m,
            n,
            k,
            _pad: 0,
        })
    }

    /// (ABI 1.2) GEMM with `GEMM_FLAG_*` `flags`: `C += A × B`, B given transposed.
    pub fn gemm_flags(
        &mut self,
        [a, b, c]: [u64; 3],
        [m, n, k]: [u32; 3],
        flags: u32,
    ) -> &mut Self {
        self.push(&CmdGemm {
            header: CmdHeader {
                flags,
                ..CmdGemm::HEADER
            },
            a,
            b,
            c,
            m,
            n,
            k,
            _pad: 0,
        })
    }

    /// (ABI 1.2) `dst = a + b`, `a × b` or `alpha × a + beta × b` (`ELEMENTWISE_*`).
    pub fn elementwise(
        &mut self,
        op: u32,
        [a, b, dst]: [u64; 3],
        count: u64,
        [alpha, beta]: [f32; 2],
    ) -> &mut Self {
        self.push(&CmdElementwise {
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

    /// (ABI 1.5) `dst = ((src[0] + src[1]) + src[2]) + …` element by element, over 2 to
    /// `MAX_SUM_SOURCES` inputs (more are cut, which the device refuses as too few would be).
    pub fn sum(&mut self, src: &[u64], dst: u64, count: u64) -> &mut Self {
        let mut all = [0u64; MAX_SUM_SOURCES];
        let used = src.len().min(MAX_SUM_SOURCES);
        all[..used].copy_from_slice(&src[..used]);
        self.push(&CmdSum {
            header: CmdSum::HEADER,
            sources: u32::try_from(src.len()).unwrap_or(u32::MAX),
            _pad: 0,
            dst,
            count,
            src: all,
        })
    }

    /// (ABI 1.2) `dst = f(src)` element by element (`ACTIVATION_*`).
    pub fn activation(&mut self, op: u32, src: u64, dst: u64, count: u64) -> &mut Self {
        self.push(&CmdActivation {
            header: CmdActivation::HEADER,
            op,
            _pad: 0,
            src,
            dst,
            count,
        })
    }

    /// (ABI 1.2) The softmax of each row of a `rows × cols` matrix.
    pub fn softmax(&mut self, src: u64, dst: u64, rows: u32, cols: u32) -> &mut Self {
        self.push(&CmdSoftmax {
            header: CmdSoftmax::HEADER,
            src,
            dst,
            rows,
            cols,
        })
    }

    /// (ABI 1.2) Layer norm (RMS norm if `rms`) of each row, scaled by `gamma`, shifted by
    /// `beta` (`[src, dst, gamma, beta]`).
    pub fn layer_norm(
        &mut self,
        [src, dst, gamma, beta]: [u64; 4],
        [rows, cols]: [u32; 2],
        eps: f32,
        rms: bool,
    ) -> &mut Self {
        self.push(&CmdLayerNorm {
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
            eps: eps.to_bits(),
            _pad: 0,
        })
    }

    /// FNV-1a-64 of `len` bytes at `src` into `dst`.
    pub fn checksum(&mut self, src: u64, dst: u64, len: u64) -> &mut Self {
        self.push(&CmdChecksum {
            header: CmdChecksum::HEADER,
            src,
            dst,
            len,
        })
    }

    /// Sum of `count` `f32`s.
    pub fn reduce_sum(&mut self, src: u64, dst: u64, count: u64) -> &mut Self {
        self.push(&CmdReduceSum {
            header: CmdReduceSum::HEADER,
            src,
            dst,
            count,
        })
    }

    /// Never completes (the watchdog stops it).
    pub fn hang(&mut self) -> &mut Self {
        self.push(&CmdDebugHang {
            header: CmdDebugHang::HEADER,
        })
    }
}

/// FNV-1a 64 as the device computes it.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_encoded_back_to_back_with_their_sizes() {
        let mut c = CmdBuf::new();
        c.nop()
            .fill(0x1000, 64, 0xdead_beef)
            .copy(0x1000, 0x2000, 64);
        assert_eq!(c.count(), 3);
        assert_eq!(c.len(), 8 + 32 + 32);
        // Each header's size field says where the next command starts.
        let size_at = |off: usize| u16::from_le_bytes([c.bytes()[off + 2], c.bytes()[off + 3]]);
        assert_eq!(size_at(0), 8);
        assert_eq!(size_at(8), 32);
        assert_eq!(u16::from_le_bytes([c.bytes()[8], c.bytes()[9]]), OP_FILL);
        assert_eq!(size_at(40), 32);
    }

    #[test]
    fn fnv1a64_matches_the_published_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
