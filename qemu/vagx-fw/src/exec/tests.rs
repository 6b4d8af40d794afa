// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Tests of the command interpreter, through a test VM in a [`Ram`]: every command's effects
//! and faults, decoding and validation, the cost model, and random command buffers that must
//! never panic or touch memory outside the VM's writable pages.

use super::*;
use crate::mem::Ram;
use crate::mmu::PageTableBuilder;
use vagx_abi::channels::{FAULT_PERMISSION, FAULT_UNMAPPED};
use vagx_abi::cmd::CmdHeader;
use vagx_abi::mmu::{PAGE_SIZE, PTE_READ, PTE_WRITE, VA_LIMIT};
use vagx_abi::pod::Pod;
use vagx_abi::regs::ABI_MINOR;

const RAM_BASE: u64 = 0x8000_0000;
const RAM_SIZE: usize = 0x8_0000;

/// A mapped region of the test VM.
struct Region {
    va: u64,
    pages: u64,
    flags: u64,
    pa: u64,
}

const CMD: u64 = 0x10_0000;
const RW: u64 = 0x20_0000;
const RO: u64 = 0x30_0000;
const WO: u64 = 0x40_0000;
const NONE: u64 = 0x50_0000;
const BUS: u64 = 0x60_0000;
const UNMAPPED: u64 = 0x70_0000;

/// The test VM's layout; tables live in the first 64 KiB of RAM.
const REGIONS: [Region; 6] = [
    Region {
        va: CMD,
        pages: 4,
        flags: PTE_READ,
        pa: RAM_BASE + 0x1_0000,
    },
    Region {
        va: RW,
        pages: 64,
        flags: PTE_READ | PTE_WRITE,
        pa: RAM_BASE + 0x2_0000,
    },
    Region {
        va: RO,
        pages: 2,
        flags: PTE_READ,
        pa: RAM_BASE + 0x6_0000,
    },
    Region {
        va: WO,
        pages: 1,
        flags: PTE_WRITE,
        pa: RAM_BASE + 0x6_2000,
    },
    Region {
        va: NONE,
        pages: 1,
        flags: 0,
        pa: RAM_BASE + 0x6_3000,
    },
    // Mapped, but nothing backs it on the bus.
    Region {
        va: BUS,
        pages: 1,
        flags: PTE_READ | PTE_WRITE,
        pa: 0xf_0000_0000,
    },
];

/// A RAM with the test VM mapped in it.
struct Gpu {
    ram: Ram,
    vm: Vm,
}

impl Gpu {
    fn new() -> Self {
        let mut ram = Ram::new(RAM_BASE, RAM_SIZE);
        let mut pt = PageTableBuilder::new(&mut ram, RAM_BASE).unwrap();
        for r in &REGIONS {
            pt.map(&mut ram, r.va, r.pa, r.pages * PAGE_SIZE, r.flags)
                .unwrap();
        }
        assert!(pt.next_free() <= RAM_BASE + 0x1_0000);
        Self { ram, vm: pt.vm() }
    }

    /// The bus address behind `va`, found without the VM's permissions.
    fn pa(va: u64) -> u64 {
        let r = REGIONS
            .iter()
            .find(|r| (r.va..r.va + r.pages * PAGE_SIZE).contains(&va))
            .unwrap();
        r.pa + (va - r.va)
    }

    /// Writes `bytes` at `va` behind the VM's back (regions are contiguous on the bus).
    fn poke(&mut self, va: u64, bytes: &[u8]) {
        self.ram.write(Self::pa(va), bytes).unwrap();
    }

    fn peek(&mut self, va: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        self.ram.read(Self::pa(va), &mut buf).unwrap();
        buf
    }

    fn poke_f32s(&mut self, va: u64, values: &[f32]) {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.poke(va, &bytes);
    }

    fn peek_f32s(&mut self, va: u64, count: usize) -> Vec<f32> {
        f32s(&self.peek(va, count * 4)).collect()
    }

    /// Places `cmdbuf` at [`CMD`] and decodes its first command.
    fn decode(&mut self, cmdbuf: &[u8]) -> Result<(Command, u32), Fault> {
        self.poke(CMD, cmdbuf);
        let len = u32::try_from(cmdbuf.len()).unwrap();
        decode(&self.vm, &mut self.ram, CMD, len, 0, ABI_MINOR)
    }

    /// Decodes and executes every command of `cmdbuf` (placed at [`CMD`]).
    fn run(&mut self, cmdbuf: &[u8]) -> Result<(), Fault> {
        self.poke(CMD, cmdbuf);
        let len = u32::try_from(cmdbuf.len()).unwrap();
        let mut offset = 0;
        while offset < len {
            let (command, size) = decode(&self.vm, &mut self.ram, CMD, len, offset, ABI_MINOR)?;
            command.execute(&self.vm, &mut self.ram)?;
            offset += size;
        }
        Ok(())
    }

    fn execute(&mut self, command: Command) -> Result<(), Fault> {
        command.execute(&self.vm, &mut self.ram)
    }
}

fn enc<T: Pod>(value: &T) -> Vec<u8> {
    pod::as_bytes(value).to_vec()
}

fn bad(address: u64) -> Fault {
    Fault {
        kind: FAULT_BAD_COMMAND,
        address,
    }
}

fn unmapped(address: u64) -> Fault {
    Fault {
        kind: FAULT_UNMAPPED,
        address,
    }
}

fn permission(address: u64) -> Fault {
    Fault {
        kind: FAULT_PERMISSION,
        address,
    }
}

/// Non-trivial `f32`s: a hash of `i` spread over about [-10, 10] with inexact fractions.
fn value(i: u32) -> f32 {
    let h = i.wrapping_mul(2_654_435_761) >> 8;
    (h % 2001) as f32 / 97.0 - 10.0
}

/// The reference GEMM: the same accumulation order as the device.
fn gemm_ref(a: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    let mut c = vec![0.0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut sum = 0.0f32;
            for p in 0..k {
                sum += a[i * k + p] * b[p * n + j];
            }
            c[i * n + j] = sum;
        }
    }
    c
}

/// An independent FNV-1a 64.
fn fnv_ref(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

fn header(opcode: u16, size: u16) -> CmdHeader {
    CmdHeader {
        opcode,
        size,
        flags: 0,
    }
}

#[test]
fn write32_and_write64_write_little_endian_values() {
    let mut gpu = Gpu::new();
    gpu.poke(RW, &[0xee; 32]);
    let mut cmds = enc(&CmdWrite32 {
        header: CmdWrite32::HEADER,
        address: RW + 4,
        value: 0x4433_2211,
        _pad: 0,
    });
    cmds.extend(enc(&CmdWrite64 {
        header: CmdWrite64::HEADER,
        address: RW + 16,
        value: 0x8877_6655_4433_2211,
    }));
    gpu.run(&cmds).unwrap();
    let mut expected = vec![0xee; 32];
    expected[4..8].copy_from_slice(&[0x11, 0x22, 0x33, 0x44]);
    expected[16..24].copy_from_slice(&[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]);
    assert_eq!(gpu.peek(RW, 32), expected);
    // Into a read-only page, a page nothing backs, and an unmapped one.
    let cases = [
        (RO, permission(RO)),
        (BUS + 8, unmapped(BUS + 8)),
        (UNMAPPED, unmapped(UNMAPPED)),
    ];
    for (address, fault) in cases {
        assert_eq!(
            gpu.execute(Command::Write64 { address, value: 1 }),
            Err(fault)
        );
        assert_eq!(
            gpu.execute(Command::Write32 { address, value: 1 }),
            Err(fault)
        );
    }
}

#[test]
fn copy_moves_bytes_across_pages_and_chunks() {
    let mut gpu = Gpu::new();
    // 80 KiB: more than one chunk; both ranges unaligned.
    let len = 80 << 10;
    let data: Vec<u8> = (0..len).map(|i| (i * 13 % 251) as u8).collect();
    let (src, dst) = (RW + 3, RW + 0x1_8005);
    gpu.poke(src, &data);
    gpu.poke(dst - 1, &[0xee]);
    gpu.poke(dst + len as u64, &[0xee]);
    let copy = CmdCopy {
        header: CmdCopy::HEADER,
        src,
        dst,
        len: len as u64,
    };
    gpu.run(&enc(&copy)).unwrap();
    assert!(gpu.peek(dst, len) == data);
    assert_eq!(gpu.peek(dst - 1, 1), [0xee]);
    assert_eq!(gpu.peek(dst + len as u64, 1), [0xee]);
    // From a read-only page.
    gpu.poke(RO, b"read-only");
    gpu.execute(Command::Copy {
        src: RO,
        dst: RW,
        len: 9,
    })
    .unwrap();
    assert_eq!(gpu.peek(RW, 9), b"read-only");
}

#[test]
fn copy_faults_change_nothing() {
    let cases = [
        (
            "into read-only",
            Command::Copy {
                src: RW,
                dst: RO + 0x1ff0,
                len: 0x20,
            },
            permission(RO + 0x1ff0),
        ),
        (
            "past read-only",
            Command::Copy {
                src: RW,
                dst: RO + 0x1ff0,
                len: 0x20 + 0x10,
            },
            permission(RO + 0x1ff0),
        ),
        (
            "RW into unmapped",
            Command::Copy {
                src: RO,
                dst: RW + 0x3_fff0,
                len: 0x20,
            },
            unmapped(RW + 0x4_0000),
        ),
        (
            "from write-only",
            Command::Copy {
                src: WO,
                dst: RW,
                len: 4,
            },
            permission(WO),
        ),
        (
            "from no-permission",
            Command::Copy {
                src: NONE + 8,
                dst: RW,
                len: 4,
            },
            permission(NONE + 8),
        ),
        (
            "from past the end",
            Command::Copy {
                src: RO + 0x1ffc,
                dst: RW,
                len: 8,
            },
            unmapped(RO + 0x2000),
        ),
        (
            "fill into read-only",
            Command::Fill {
                dst: RW + 0x3_f000,
                len: 0x2000,
                pattern: 1,
            },
            unmapped(RW + 0x4_0000),
        ),
        (
            "checksum into read-only",
            Command::Checksum {
                src: RW,
                dst: RO,
                len: 4,
            },
            permission(RO),
        ),
        (
            "reduce into unmapped",
            Command::ReduceSum {
                src: RW,
                dst: UNMAPPED,
                count: 4,
            },
            unmapped(UNMAPPED),
        ),
    ];
    for (name, command, fault) in cases {
        let mut gpu = Gpu::new();
        gpu.poke(RW, &[0x5a; 0x100]);
        let before = gpu.ram.bytes().to_vec();
        assert_eq!(gpu.execute(command), Err(fault), "{name}");
        assert!(gpu.ram.bytes()[..] == before[..], "{name}: memory changed");
    }
}

#[test]
fn fill_repeats_the_pattern_and_truncates_it() {
    let mut gpu = Gpu::new();
    gpu.poke(RW, &[0xee; 16]);
    gpu.run(&enc(&CmdFill {
        header: CmdFill::HEADER,
        dst: RW + 1,
        len: 7,
        pattern: 0x4433_2211,
        _pad: 0,
    }))
    .unwrap();
    assert_eq!(
        gpu.peek(RW, 10),
        [0xee, 0x11, 0x22, 0x33, 0x44, 0x11, 0x22, 0x33, 0xee, 0xee]
    );
    // Across a chunk boundary, ending mid-pattern.
    let len = CHUNK + 6;
    gpu.poke(RW + 0x100 + len as u64, &[0xee]);
    gpu.execute(Command::Fill {
        dst: RW + 0x100,
        len: len as u64,
        pattern: 0xa4a3_a2a1,
    })
    .unwrap();
    let got = gpu.peek(RW + 0x100, len + 1);
    let expected: Vec<u8> = [0xa1, 0xa2, 0xa3, 0xa4]
        .iter()
        .copied()
        .cycle()
        .take(len)
        .chain([0xee])
        .collect();
    assert!(got == expected);
    // Zero length writes nothing, even at an unmapped address.
    gpu.execute(Command::Fill {
        dst: UNMAPPED,
        len: 0,
        pattern: 1,
    })
    .unwrap();
}

#[test]
fn gemm_matches_a_host_reference_bit_for_bit() {
    // Odd shapes too: wide rows, counts not a multiple of a vector's lanes.
    for (m, n, k) in [
        (3, 4, 5),
        (17, 9, 13),
        (1, 1, 1),
        (2, 40, 70),
        (5, 300, 20),
        (9, 513, 7),
    ] {
        let mut gpu = Gpu::new();
        let (a_va, b_va, c_va) = (RW, RW + 0x1_0000, RW + 0x2_0000);
        let a: Vec<f32> = (0..m * k).map(|i| value(i as u32)).collect();
        let b: Vec<f32> = (0..k * n).map(|i| value(i as u32 + 7919)).collect();
        gpu.poke_f32s(a_va, &a);
        gpu.poke_f32s(b_va, &b);
        gpu.poke(c_va, &vec![0xee; m * n * 4 + 4]);
        let cmd = CmdGemm {
            header: CmdGemm::HEADER,
            a: a_va,
            b: b_va,
            c: c_va,
            m: m as u32,
            n: n as u32,
            k: k as u32,
            _pad: 0,
        };
        gpu.run(&enc(&cmd)).unwrap();
        let expected = gemm_ref(&a, &b, m, n, k);
        assert_eq!(
            bits(&gpu.peek_f32s(c_va, m * n)),
            bits(&expected),
            "{m}x{n}x{k}"
        );
        assert_eq!(
            gpu.peek(c_va + (m * n * 4) as u64, 4),
            [0xee; 4],
            "{m}x{n}x{k}: wrote past C"
        );
    }
    // A small case checked by hand: [1 2; 3 4] x [5 6; 7 8].
    let mut gpu = Gpu::new();
    gpu.poke_f32s(RW, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
    gpu.execute(Command::Gemm {
        accumulate: false,
        transpose_b: false,
        a: RW,
        b: RW + 16,
        c: RW + 32,
        m: 2,
        n: 2,
        k: 2,
    })
    .unwrap();
    assert_eq!(gpu.peek_f32s(RW + 32, 4), [19.0, 22.0, 43.0, 50.0]);
}

#[test]
fn gemm_checks_every_matrix_before_writing() {
    let mut gpu = Gpu::new();
    let before = gpu.ram.bytes().to_vec();
    // 3x2 by 2x2: A is 24 bytes, B 16, C 24.
    let gemm = |a, b, c| Command::Gemm {
        accumulate: false,
        transpose_b: false,
        a,
        b,
        c,
        m: 3,
        n: 2,
        k: 2,
    };
    let cases = [
        ("C read-only", gemm(RW, RW, RO), permission(RO)),
        (
            "C runs off the mapping",
            gemm(RO, RW, RW + 0x3_fff0),
            unmapped(RW + 0x4_0000),
        ),
        (
            "A runs off the mapping",
            gemm(RO + 0x1ff0, RW, RW),
            unmapped(RO + 0x2000),
        ),
        ("B write-only", gemm(RW, WO, RW), permission(WO)),
        (
            "A unmapped, C read-only",
            gemm(UNMAPPED, RW, RO),
            unmapped(UNMAPPED),
        ),
    ];
    for (name, command, fault) in cases {
        assert_eq!(gpu.execute(command), Err(fault), "{name}");
    }
    assert!(gpu.ram.bytes()[..] == before[..]);
}

#[test]
fn reduce_sum_adds_in_index_order() {
    let mut gpu = Gpu::new();
    // Several chunks' worth.
    for count in [0usize, 1, 10, 20_000] {
        let values: Vec<f32> = (0..count).map(|i| value(i as u32) * 1e-3 + 1e3).collect();
        gpu.poke_f32s(RW, &values);
        gpu.poke(RW + 0x3_f000, &[0xee; 8]);
        let cmd = CmdReduceSum {
            header: CmdReduceSum::HEADER,
            src: RW,
            dst: RW + 0x3_f000,
            count: count as u64,
        };
        gpu.run(&enc(&cmd)).unwrap();
        let expected = values.iter().fold(0.0f32, |s, &x| s + x);
        assert_eq!(
            gpu.peek_f32s(RW + 0x3_f000, 1)[0].to_bits(),
            expected.to_bits(),
            "{count}"
        );
        assert_eq!(gpu.peek(RW + 0x3_f004, 4), [0xee; 4], "{count}");
    }
    gpu.poke_f32s(RW, &[1.5, -0.25, 3.0]);
    gpu.execute(Command::ReduceSum {
        src: RW,
        dst: RW + 100,
        count: 3,
    })
    .unwrap();
    assert_eq!(gpu.peek_f32s(RW + 100, 1), [4.25]);
}

#[test]
fn checksum_is_fnv1a_64() {
    let mut gpu = Gpu::new();
    gpu.poke(RO, b"hello");
    gpu.run(&enc(&CmdChecksum {
        header: CmdChecksum::HEADER,
        src: RO,
        dst: RW,
        len: 5,
    }))
    .unwrap();
    assert_eq!(gpu.peek(RW, 8), 0xa430_d846_80aa_bd0b_u64.to_le_bytes());
    gpu.execute(Command::Checksum {
        src: UNMAPPED,
        dst: RW,
        len: 0,
    })
    .unwrap();
    assert_eq!(gpu.peek(RW, 8), 0xcbf2_9ce4_8422_2325_u64.to_le_bytes());
    // Several chunks.
    let data: Vec<u8> = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    gpu.poke(RW + 0x100, &data);
    gpu.execute(Command::Checksum {
        src: RW + 0x100,
        dst: RW + 8,
        len: data.len() as u64,
    })
    .unwrap();
    assert_eq!(gpu.peek(RW + 8, 8), fnv_ref(&data).to_le_bytes());
}

#[test]
fn commands_without_effects_touch_nothing() {
    let mut gpu = Gpu::new();
    let before = gpu.ram.bytes().to_vec();
    for command in [
        Command::Nop,
        Command::Delay { ns: 5 },
        Command::Barrier {
            slot: 3,
            value: 7,
            dep_error: true,
        },
        Command::DebugHang,
    ] {
        assert_eq!(gpu.execute(command), Ok(()), "{command:?}");
    }
    assert!(gpu.ram.bytes()[..] == before[..]);
}

#[test]
fn debug_fault_reports_the_fault_of_its_address() {
    let mut gpu = Gpu::new();
    let cases = [
        (UNMAPPED + 3, unmapped(UNMAPPED + 3)),
        (VA_LIMIT, unmapped(VA_LIMIT)),
        (NONE, permission(NONE)),
        (WO + 8, permission(WO + 8)),
        (BUS, unmapped(BUS)),
        (
            RO + 5,
            Fault {
                kind: FAULT_INJECTED,
                address: RO + 5,
            },
        ),
        (
            RW,
            Fault {
                kind: FAULT_INJECTED,
                address: RW,
            },
        ),
    ];
    for (address, fault) in cases {
        let cmd = CmdDebugFault {
            header: CmdDebugFault::HEADER,
            address,
        };
        assert_eq!(gpu.run(&enc(&cmd)), Err(fault), "{address:#x}");
    }
}

#[test]
fn execute_refuses_out_of_range_commands_it_was_handed() {
    let mut gpu = Gpu::new();
    let before = gpu.ram.bytes().to_vec();
    for command in [
        Command::Write32 {
            address: RW + 2,
            value: 1,
        },
        Command::Copy {
            src: RW,
            dst: RW + 4,
            len: 8,
        },
        Command::Fill {
            dst: RW,
            len: MAX_TRANSFER + 1,
            pattern: 0,
        },
        Command::Gemm {
            accumulate: false,
            transpose_b: false,
            a: RW,
            b: RW,
            c: RW,
            m: u32::MAX,
            n: 1,
            k: 1,
        },
        Command::Barrier {
            slot: 128,
            value: 0,
            dep_error: false,
        },
    ] {
        assert_eq!(gpu.execute(command), Err(bad(0)), "{command:?}");
    }
    assert!(gpu.ram.bytes()[..] == before[..]);
}

#[test]
fn decode_accepts_valid_commands() {
    let mut copy_ext = enc(&CmdCopy {
        header: CmdHeader {
            size: 40,
            ..CmdCopy::HEADER
        },
        src: RW,
        dst: RW + 0x100,
        len: 0x100,
    });
    copy_ext.extend([0xff; 8]);
    let max = MAX_GEMM_DIM;
    let cases: Vec<(Vec<u8>, Command, u32)> = vec![
        (
            enc(&CmdNop {
                header: CmdNop::HEADER,
            }),
            Command::Nop,
            8,
        ),
        (
            enc(&CmdDelay {
                header: CmdDelay::HEADER,
                ns: 1234,
            }),
            Command::Delay { ns: 1234 },
            16,
        ),
        (
            enc(&CmdWrite32 {
                header: CmdWrite32::HEADER,
                address: RW + 4,
                value: 9,
                _pad: 0,
            }),
            Command::Write32 {
                address: RW + 4,
                value: 9,
            },
            24,
        ),
        (
            enc(&CmdWrite64 {
                header: CmdWrite64::HEADER,
                address: RW + 8,
                value: 9,
            }),
            Command::Write64 {
                address: RW + 8,
                value: 9,
            },
            24,
        ),
        // Adjacent ranges do not overlap.
        (
            copy_ext,
            Command::Copy {
                src: RW,
                dst: RW + 0x100,
                len: 0x100,
            },
            40,
        ),
        (
            enc(&CmdCopy {
                header: CmdCopy::HEADER,
                src: RW + 0x100,
                dst: RW,
                len: 0x100,
            }),
            Command::Copy {
                src: RW + 0x100,
                dst: RW,
                len: 0x100,
            },
            32,
        ),
        (
            enc(&CmdCopy {
                header: CmdCopy::HEADER,
                src: RW,
                dst: RW,
                len: 0,
            }),
            Command::Copy {
                src: RW,
                dst: RW,
                len: 0,
            },
            32,
        ),
        (
            enc(&CmdCopy {
                header: CmdCopy::HEADER,
                src: 0,
                dst: MAX_TRANSFER,
                len: MAX_TRANSFER,
            }),
            Command::Copy {
                src: 0,
                dst: MAX_TRANSFER,
                len: MAX_TRANSFER,
            },
            32,
        ),
        (
            enc(&CmdFill {
                header: CmdFill::HEADER,
                dst: 1,
                len: MAX_TRANSFER,
                pattern: 7,
                _pad: 0,
            }),
            Command::Fill {
                dst: 1,
                len: MAX_TRANSFER,
                pattern: 7,
            },
            32,
        ),
        (
            enc(&CmdGemm {
                header: CmdGemm::HEADER,
                a: 1,
                b: 2,
                c: 3,
                m: max,
                n: max,
                k: max,
                _pad: 0,
            }),
            Command::Gemm {
                accumulate: false,
                transpose_b: false,
                a: 1,
                b: 2,
                c: 3,
                m: max,
                n: max,
                k: max,
            },
            48,
        ),
        (
            enc(&CmdGemm {
                header: CmdGemm::HEADER,
                a: 1,
                b: 2,
                c: 3,
                m: 1,
                n: 1,
                k: 1,
                _pad: 0,
            }),
            Command::Gemm {
                accumulate: false,
                transpose_b: false,
                a: 1,
                b: 2,
                c: 3,
                m: 1,
                n: 1,
                k: 1,
            },
            48,
        ),
        (
            enc(&CmdReduceSum {
                header: CmdReduceSum::HEADER,
                src: 4,
                dst: 8,
                count: MAX_TRANSFER / 4,
            }),
            Command::ReduceSum {
                src: 4,
                dst: 8,
                count: MAX_TRANSFER / 4,
            },
            32,
        ),
        (
            enc(&CmdChecksum {
                header: CmdChecksum::HEADER,
                src: 4,
                dst: 8,
                len: MAX_TRANSFER,
            }),
            Command::Checksum {
                src: 4,
                dst: 8,
                len: MAX_TRANSFER,
            },
            32,
        ),
        (
            enc(&CmdBarrier {
                header: CmdBarrier::HEADER,
                slot: 127,
                value: 0x300,
            }),
            Command::Barrier {
                slot: 127,
                value: 0x300,
                dep_error: false,
            },
            16,
        ),
        (
            enc(&CmdBarrier::dep_error(5, 0x400)),
            Command::Barrier {
                slot: 5,
                value: 0x400,
                dep_error: true,
            },
            16,
        ),
        (
            enc(&CmdDebugHang {
                header: CmdDebugHang::HEADER,
            }),
            Command::DebugHang,
            8,
        ),
        (
            enc(&CmdDebugFault {
                header: CmdDebugFault::HEADER,
                address: u64::MAX,
            }),
            Command::DebugFault { address: u64::MAX },
            16,
        ),
    ];
    let mut gpu = Gpu::new();
    for (bytes, command, size) in cases {
        assert_eq!(gpu.decode(&bytes), Ok((command, size)), "{command:?}");
    }
}

#[test]
fn decode_rejects_malformed_commands_at_their_header() {
    let mut gpu = Gpu::new();
    let write32 = CmdWrite32 {
        header: CmdWrite32::HEADER,
        address: RW,
        value: 0,
        _pad: 0,
    };
    let fill = CmdFill {
        header: CmdFill::HEADER,
        dst: RW,
        len: 4,
        pattern: 0,
        _pad: 0,
    };
    let copy = CmdCopy {
        header: CmdCopy::HEADER,
        src: RW,
        dst: RW + 0x100,
        len: 0x100,
    };
    let gemm = CmdGemm {
        header: CmdGemm::HEADER,
        a: RW,
        b: RW,
        c: RW,
        m: 2,
        n: 2,
        k: 2,
        _pad: 0,
    };
    let reduce = CmdReduceSum {
        header: CmdReduceSum::HEADER,
        src: RW,
        dst: RW,
        count: 1,
    };
    let checksum = CmdChecksum {
        header: CmdChecksum::HEADER,
        src: RW,
        dst: RW,
        len: 1,
    };
    let with_header = |mut bytes: Vec<u8>, h: CmdHeader| {
        bytes[..8].copy_from_slice(pod::as_bytes(&h));
        bytes
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("header truncated", vec![0; 4]),
        ("size 0", enc(&header(OP_NOP, 0))),
        ("size 4", enc(&header(OP_NOP, 4))),
        (
            "size not a multiple of 8",
            [enc(&header(OP_DELAY, 12)), vec![0; 8]].concat(),
        ),
        ("size past the end", enc(&copy)[..24].to_vec()),
        (
            "size past the end, large",
            [enc(&header(OP_NOP, 0xfff8)), vec![0; 8]].concat(),
        ),
        (
            "size below the structure",
            with_header(enc(&copy), header(OP_COPY, 24)),
        ),
        (
            "size below the structure (delay)",
            [enc(&header(OP_DELAY, 8)), vec![0; 8]].concat(),
        ),
        ("unknown opcode 12", enc(&header(12, 8))),
        ("unknown opcode 0xffff", enc(&header(0xffff, 8))),
        (
            "flags",
            enc(&CmdHeader {
                flags: 1,
                ..CmdNop::HEADER
            }),
        ),
        (
            "flags, high bit",
            enc(&CmdHeader {
                flags: 1 << 31,
                ..CmdNop::HEADER
            }),
        ),
        ("WRITE32 pad", enc(&CmdWrite32 { _pad: 1, ..write32 })),
        ("FILL pad", enc(&CmdFill { _pad: 1, ..fill })),
        ("GEMM pad", enc(&CmdGemm { _pad: 1, ..gemm })),
        (
            "WRITE32 misaligned",
            enc(&CmdWrite32 {
                address: RW + 2,
                ..write32
            }),
        ),
        (
            "WRITE64 misaligned",
            enc(&CmdWrite64 {
                header: CmdWrite64::HEADER,
                address: RW + 4,
                value: 0,
            }),
        ),
        (
            "COPY too long",
            enc(&CmdCopy {
                dst: 1 << 32,
                len: MAX_TRANSFER + 1,
                ..copy
            }),
        ),
        (
            "FILL too long",
            enc(&CmdFill {
                len: MAX_TRANSFER + 1,
                ..fill
            }),
        ),
        (
            "FILL len u64::MAX",
            enc(&CmdFill {
                len: u64::MAX,
                ..fill
            }),
        ),
        (
            "CHECKSUM too long",
            enc(&CmdChecksum {
                len: MAX_TRANSFER + 1,
                ..checksum
            }),
        ),
        (
            "REDUCE_SUM too many",
            enc(&CmdReduceSum {
                count: MAX_TRANSFER / 4 + 1,
                ..reduce
            }),
        ),
        (
            "REDUCE_SUM count overflowing",
            enc(&CmdReduceSum {
                count: 1 << 62,
                ..reduce
            }),
        ),
        ("GEMM m 0", enc(&CmdGemm { m: 0, ..gemm })),
        ("GEMM n 0", enc(&CmdGemm { n: 0, ..gemm })),
        ("GEMM k 0", enc(&CmdGemm { k: 0, ..gemm })),
        (
            "GEMM m too big",
            enc(&CmdGemm {
                m: MAX_GEMM_DIM + 1,
                ..gemm
            }),
        ),
        (
            "GEMM n too big",
            enc(&CmdGemm {
                n: MAX_GEMM_DIM + 1,
                ..gemm
            }),
        ),
        (
            "GEMM k u32::MAX",
            enc(&CmdGemm {
                k: u32::MAX,
                ..gemm
            }),
        ),
        (
            "COPY overlap, dst after",
            enc(&CmdCopy {
                dst: RW + 0xff,
                ..copy
            }),
        ),
        (
            "COPY overlap, dst before",
            enc(&CmdCopy {
                dst: RW - 0xff,
                ..copy
            }),
        ),
        ("COPY overlap, same", enc(&CmdCopy { dst: RW, ..copy })),
        (
            "COPY overlap at the top",
            enc(&CmdCopy {
                src: u64::MAX - 4,
                dst: u64::MAX - 8,
                len: 8,
                ..copy
            }),
        ),
        (
            "BARRIER slot",
            enc(&CmdBarrier {
                header: CmdBarrier::HEADER,
                slot: 128,
                value: 0,
            }),
        ),
    ];
    for (name, bytes) in cases {
        // After a NOP, so the fault address is the command's, not the buffer's.
        let cmdbuf = [
            enc(&CmdNop {
                header: CmdNop::HEADER,
            }),
            bytes,
        ]
        .concat();
        gpu.poke(CMD, &cmdbuf);
        let len = u32::try_from(cmdbuf.len()).unwrap();
        assert_eq!(
            decode(&gpu.vm, &mut gpu.ram, CMD, len, 0, ABI_MINOR),
            Ok((Command::Nop, 8)),
            "{name}"
        );
        assert_eq!(
            decode(&gpu.vm, &mut gpu.ram, CMD, len, 8, ABI_MINOR),
            Err(bad(CMD + 8)),
            "{name}"
        );
    }
    // Offsets at or past the end.
    for (len, offset) in [
        (8, 8),
        (8, 4),
        (0, 0),
        (16, u32::MAX),
        (u32::MAX, u32::MAX - 4),
    ] {
        assert_eq!(
            decode(&gpu.vm, &mut gpu.ram, CMD, len, offset, ABI_MINOR),
            Err(bad(CMD + u64::from(offset))),
            "len {len} offset {offset}"
        );
    }
}

#[test]
fn header_flags_are_defined_per_opcode_and_abi_version() {
    let mut gpu = Gpu::new();
    let dep = CmdBarrier::dep_error(2, 0x100);
    let mut undefined = dep;
    undefined.header.flags = 1 << 1;
    let mut on_nop = CmdNop {
        header: CmdNop::HEADER,
    };
    on_nop.header.flags = BARRIER_FLAG_DEP_ERROR;
    let barrier = Command::Barrier {
        slot: 2,
        value: 0x100,
        dep_error: true,
    };
    // (bytes, ABI minor, accepted)
    let cases = [
        (enc(&dep), ABI_MINOR_DEPENDENCIES, Some(barrier)),
        (enc(&dep), 0, None),
        (enc(&undefined), ABI_MINOR_DEPENDENCIES, None),
        (enc(&on_nop), ABI_MINOR_DEPENDENCIES, None),
    ];
    for (i, (bytes, minor, want)) in cases.into_iter().enumerate() {
        gpu.poke(CMD, &bytes);
        let len = u32::try_from(bytes.len()).unwrap();
        let got = decode(&gpu.vm, &mut gpu.ram, CMD, len, 0, minor);
        match want {
            Some(command) => assert_eq!(got, Ok((command, len)), "case {i}"),
            None => assert_eq!(got, Err(bad(CMD)), "case {i}"),
        }
    }
}

#[test]
fn decode_reports_the_vm_fault_of_an_unreadable_command() {
    let mut gpu = Gpu::new();
    let cases = [
        (UNMAPPED, unmapped(UNMAPPED)),
        (NONE, permission(NONE)),
        (WO, permission(WO)),
        (VA_LIMIT - 8, unmapped(VA_LIMIT - 8)),
    ];
    for (cmdbuf, fault) in cases {
        assert_eq!(
            decode(&gpu.vm, &mut gpu.ram, cmdbuf, 64, 0, ABI_MINOR),
            Err(fault),
            "{cmdbuf:#x}"
        );
    }
    // The header is the last 8 bytes of the mapping; the arguments are past it.
    let end = CMD + 4 * PAGE_SIZE;
    gpu.poke(end - 8, pod::as_bytes(&CmdCopy::HEADER));
    assert_eq!(
        decode(&gpu.vm, &mut gpu.ram, end - 8, 32, 0, ABI_MINOR),
        Err(unmapped(end))
    );
    // A larger size's extra bytes are not read.
    gpu.poke(
        end - 8,
        pod::as_bytes(&CmdHeader {
            size: 16,
            ..CmdNop::HEADER
        }),
    );
    assert_eq!(
        decode(&gpu.vm, &mut gpu.ram, end - 8, 16, 0, ABI_MINOR),
        Ok((Command::Nop, 16))
    );
}

#[test]
fn a_buffer_decodes_command_after_command() {
    let mut gpu = Gpu::new();
    let cmds = [
        enc(&CmdNop {
            header: CmdNop::HEADER,
        }),
        enc(&CmdWrite32 {
            header: CmdWrite32::HEADER,
            address: RW,
            value: 7,
            _pad: 0,
        }),
        enc(&CmdBarrier {
            header: CmdBarrier::HEADER,
            slot: 1,
            value: 2,
        }),
        enc(&CmdDebugHang {
            header: CmdDebugHang::HEADER,
        }),
    ]
    .concat();
    gpu.poke(CMD + 0x100, &cmds);
    let len = u32::try_from(cmds.len()).unwrap();
    let mut offset = 0;
    let mut got = Vec::new();
    while offset < len {
        let (command, size) =
            decode(&gpu.vm, &mut gpu.ram, CMD + 0x100, len, offset, ABI_MINOR).unwrap();
        got.push(command);
        offset += size;
    }
    assert_eq!(
        got,
        [
            Command::Nop,
            Command::Write32 {
                address: RW,
                value: 7
            },
            Command::Barrier {
                slot: 1,
                value: 2,
                dep_error: false,
            },
            Command::DebugHang
        ]
    );
}

#[test]
fn a_slowed_device_costs_its_divisor_times_more() {
    let rates = Rates::default().slowed(16);
    assert_eq!(
        rates,
        Rates {
            command_ns: 3200,
            bytes_per_us: 1000,
            flops_per_us: 4000,
            entry_ns: 16_000,
            slowdown: 16,
        }
    );
    assert_eq!(Rates::default().slowed(0), Rates::default());
    assert_eq!(Rates::default().slowed(1), Rates::default());
    // A 1 MiB COPY: 3200 ns and 2 MiB at 1 byte/ns, 16 times the default's 131072 ns of
    // traffic; a DELAY keeps its time.
    let copy = Command::Copy {
        src: 0,
        dst: 1 << 20,
        len: 1 << 20,
    };
    assert_eq!(copy.cost_ns(&rates), 3200 + 2 * 1_048_576);
    assert_eq!(Command::Delay { ns: 5000 }.cost_ns(&rates), 3200 + 5000);
    // Throughputs never reach zero, so every command still ends.
    let slowest = Rates::default().slowed(u32::MAX);
    assert_eq!((slowest.bytes_per_us, slowest.flops_per_us), (1, 1));
}

#[test]
fn costs_follow_the_documented_model() {
    let rates = Rates::default();
    assert_eq!(
        rates,
        Rates {
            command_ns: 200,
            bytes_per_us: 16_000,
            flops_per_us: 64_000,
            entry_ns: 1000,
            slowdown: 1,
        }
    );
    let max = MAX_GEMM_DIM;
    let cases = [
        (Command::Nop, 200),
        (Command::Delay { ns: 1000 }, 1200),
        (Command::Delay { ns: u64::MAX }, u64::MAX),
        // 4 bytes at 16 bytes/ns, rounded up.
        (
            Command::Write32 {
                address: 0,
                value: 0,
            },
            201,
        ),
        (
            Command::Write64 {
                address: 0,
                value: 0,
            },
            201,
        ),
        // 8 KiB moved: 512 ns.
        (
            Command::Copy {
                src: 0,
                dst: 0x1000,
                len: 4096,
            },
            712,
        ),
        (
            Command::Copy {
                src: 0,
                dst: 0,
                len: 0,
            },
            200,
        ),
        (
            Command::Copy {
                src: 0,
                dst: MAX_TRANSFER,
                len: MAX_TRANSFER,
            },
            8_388_808,
        ),
        (
            Command::Fill {
                dst: 0,
                len: 1 << 20,
                pattern: 0,
            },
            65_736,
        ),
        // 6.25 ns rounds up to 7.
        (
            Command::Checksum {
                src: 0,
                dst: 0,
                len: 100,
            },
            207,
        ),
        (
            Command::ReduceSum {
                src: 0,
                dst: 0,
                count: 3,
            },
            201,
        ),
        // 4004 bytes: 250.25 ns.
        (
            Command::ReduceSum {
                src: 0,
                dst: 0,
                count: 1000,
            },
            451,
        ),
        // 188 bytes (11.75 ns) and 120 flops (1.875 ns): memory-bound.
        (
            Command::Gemm {
                accumulate: false,
                transpose_b: false,
                a: 0,
                b: 0,
                c: 0,
                m: 3,
                n: 4,
                k: 5,
            },
            212,
        ),
        // 48 KiB (3072 ns) and 2^19 flops (8192 ns): arithmetic-bound.
        (
            Command::Gemm {
                accumulate: false,
                transpose_b: false,
                a: 0,
                b: 0,
                c: 0,
                m: 64,
                n: 64,
                k: 64,
            },
            8_392,
        ),
        (
            Command::Gemm {
                accumulate: false,
                transpose_b: false,
                a: 0,
                b: 0,
                c: 0,
                m: max,
                n: max,
                k: max,
            },
            33_554_632,
        ),
        (
            Command::Barrier {
                slot: 0,
                value: 0,
                dep_error: true,
            },
            200,
        ),
        (Command::DebugHang, 200),
        (Command::DebugFault { address: 0 }, 200),
    ];
    for (command, ns) in cases {
        assert_eq!(command.cost_ns(&rates), ns, "{command:?}");
    }
    // Hostile numbers saturate instead of overflowing.
    let gemm = Command::Gemm {
        accumulate: false,
        transpose_b: false,
        a: 0,
        b: 0,
        c: 0,
        m: u32::MAX,
        n: u32::MAX,
        k: u32::MAX,
    };
    // Bytes and flops saturate at u64::MAX: the longer of 2^64 / 16 ns and 2^64 / 64 ns.
    assert_eq!(gemm.cost_ns(&rates), (1 << 60) + 200);
    assert_eq!(
        Command::Copy {
            src: 0,
            dst: 0,
            len: u64::MAX
        }
        .cost_ns(&rates),
        (1 << 60) + 200
    );
    let stalled = Rates {
        command_ns: 1,
        bytes_per_us: 0,
        flops_per_us: 0,
        entry_ns: 0,
        slowdown: 1,
    };
    assert_eq!(Command::Nop.cost_ns(&stalled), 1);
    assert_eq!(
        Command::Write32 {
            address: 0,
            value: 0
        }
        .cost_ns(&stalled),
        u64::MAX
    );
    let fast = Rates {
        command_ns: 0,
        bytes_per_us: u64::MAX,
        flops_per_us: u64::MAX,
        entry_ns: 0,
        slowdown: 1,
    };
    assert_eq!(
        Command::Fill {
            dst: 0,
            len: MAX_TRANSFER,
            pattern: 0
        }
        .cost_ns(&fast),
        1
    );
}

/// A xorshift64 generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }

    fn address(&mut self) -> u64 {
        match self.below(16) {
            0 => self.next(),
            1 => VA_LIMIT - self.below(0x100),
            2 => UNMAPPED + self.below(0x1000),
            3..=9 => RW + self.below(0x4_0000),
            _ => {
                let r = &REGIONS[self.below(REGIONS.len() as u64) as usize];
                r.va + self.below(r.pages * PAGE_SIZE + 0x100)
            }
        }
    }

    fn len(&mut self) -> u64 {
        match self.below(12) {
            0 => self.next(),
            1 => MAX_TRANSFER - 1 + self.below(3),
            2..=4 => self.below(0x2_0000),
            _ => self.below(300),
        }
    }

    fn dim(&mut self) -> u32 {
        match self.below(20) {
            0 => self.next() as u32,
            1 => self.below(1100) as u32,
            _ => self.below(9) as u32,
        }
    }

    fn aligned(&mut self, align: u64) -> u64 {
        let a = self.address();
        if self.chance(8) {
            a
        } else {
            a & !(align - 1)
        }
    }

    /// One command, mostly valid.
    fn command(&mut self) -> Vec<u8> {
        let mut bytes = match self.below(12) {
            0 => enc(&CmdNop {
                header: CmdNop::HEADER,
            }),
            1 => enc(&CmdDelay {
                header: CmdDelay::HEADER,
                ns: self.next(),
            }),
            2 => enc(&CmdWrite32 {
                header: CmdWrite32::HEADER,
                address: self.aligned(4),
                value: self.next() as u32,
                _pad: 0,
            }),
            3 => enc(&CmdWrite64 {
                header: CmdWrite64::HEADER,
                address: self.aligned(8),
                value: self.next(),
            }),
            4 => enc(&CmdCopy {
                header: CmdCopy::HEADER,
                src: self.address(),
                dst: self.address(),
                len: self.len(),
            }),
            5 => enc(&CmdFill {
                header: CmdFill::HEADER,
                dst: self.address(),
                len: self.len(),
                pattern: self.next() as u32,
                _pad: 0,
            }),
            6 => enc(&CmdGemm {
                header: CmdGemm::HEADER,
                a: self.address(),
                b: self.address(),
                c: self.address(),
                m: self.dim(),
                n: self.dim(),
                k: self.dim(),
                _pad: 0,
            }),
            7 => enc(&CmdReduceSum {
                header: CmdReduceSum::HEADER,
                src: self.address(),
                dst: self.address(),
                count: self.len() / 4,
            }),
            8 => enc(&CmdChecksum {
                header: CmdChecksum::HEADER,
                src: self.address(),
                dst: self.address(),
                len: self.len(),
            }),
            9 => enc(&CmdBarrier {
                header: CmdBarrier::HEADER,
                slot: self.below(140) as u32,
                value: 0,
            }),
            10 => enc(&CmdDebugHang {
                header: CmdDebugHang::HEADER,
            }),
            _ => enc(&CmdDebugFault {
                header: CmdDebugFault::HEADER,
                address: self.address(),
            }),
        };
        if self.chance(10) {
            // A future extension: a larger size and bytes the decoder skips.
            let extra = 8 * (1 + self.below(3)) as usize;
            let size = u16::from_le_bytes([bytes[2], bytes[3]]) + extra as u16;
            bytes[2..4].copy_from_slice(&size.to_le_bytes());
            bytes.extend((0..extra).map(|_| self.next() as u8));
        }
        bytes
    }

    /// A command buffer: random bytes, or commands with the odd corrupted byte.
    fn cmdbuf(&mut self) -> Vec<u8> {
        let max = 4 * PAGE_SIZE as usize;
        let mut bytes = if self.chance(4) {
            let len = self.below(600) as usize;
            (0..len).map(|_| self.next() as u8).collect()
        } else {
            let mut bytes = Vec::new();
            for _ in 0..1 + self.below(24) {
                bytes.extend(self.command());
            }
            bytes.truncate(max);
            bytes
        };
        if !bytes.is_empty() && self.chance(4) {
            let i = self.below(bytes.len() as u64) as usize;
            bytes[i] = self.next() as u8;
        }
        bytes
    }
}

/// Whether `pa` is in a page the VM maps writable.
fn writable(pa: u64) -> bool {
    REGIONS
        .iter()
        .filter(|r| r.flags & PTE_WRITE != 0)
        .any(|r| (r.pa..r.pa + r.pages * PAGE_SIZE).contains(&pa))
}

#[test]
fn random_command_buffers_never_panic_or_stray() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut gpu = Gpu::new();
    let (mut executed, mut faults, mut decoded) = (0, 0, 0);
    let mut succeeded = std::collections::HashMap::new();
    // The byte ranges of RAM the VM cannot write.
    let mut fixed = Vec::new();
    let mut start = None;
    for i in 0..=RAM_SIZE {
        let open = i < RAM_SIZE && !writable(RAM_BASE + i as u64);
        match (start, open) {
            (None, true) => start = Some(i),
            (Some(s), false) => {
                fixed.push(s..i);
                start = None;
            }
            _ => {}
        }
    }
    assert_eq!(fixed.len(), 3);
    for round in 0..2000 {
        let cmdbuf = rng.cmdbuf();
        gpu.poke(CMD, &cmdbuf);
        // Sometimes claim a longer buffer than the bytes written, up to past the mapping.
        let len = if rng.chance(8) {
            rng.below(5 * PAGE_SIZE) as u32
        } else {
            cmdbuf.len() as u32
        };
        let before = gpu.ram.bytes().to_vec();
        let rates = Rates::default();
        let mut offset = 0;
        while offset < len {
            match decode(&gpu.vm, &mut gpu.ram, CMD, len, offset, ABI_MINOR) {
                Ok((command, size)) => {
                    decoded += 1;
                    assert!(
                        size >= 8 && size & 7 == 0 && offset + size <= len,
                        "round {round}"
                    );
                    let _ = command.cost_ns(&rates);
                    match command.execute(&gpu.vm, &mut gpu.ram) {
                        Ok(()) => {
                            executed += 1;
                            *succeeded
                                .entry(core::mem::discriminant(&command))
                                .or_insert(0) += 1;
                        }
                        Err(f) => {
                            assert!(f.kind != FAULT_BAD_COMMAND, "round {round}: {command:?}");
                            faults += 1;
                            break;
                        }
                    }
                    offset += size;
                }
                Err(_) => {
                    faults += 1;
                    break;
                }
            }
        }
        let after = gpu.ram.bytes();
        for range in &fixed {
            if before[range.clone()] != after[range.clone()] {
                let i = range.clone().find(|&i| before[i] != after[i]).unwrap();
                panic!("round {round}: byte at {:#x} changed", RAM_BASE + i as u64);
            }
        }
    }
    // The generator exercises both paths.
    assert!(
        executed > 1000 && faults > 1000 && decoded > 2000,
        "{executed} {faults} {decoded}"
    );
    let effects = [
        Command::Write32 {
            address: 0,
            value: 0,
        },
        Command::Write64 {
            address: 0,
            value: 0,
        },
        Command::Copy {
            src: 0,
            dst: 0,
            len: 0,
        },
        Command::Fill {
            dst: 0,
            len: 0,
            pattern: 0,
        },
        Command::Gemm {
            accumulate: false,
            transpose_b: false,
            a: 0,
            b: 0,
            c: 0,
            m: 0,
            n: 0,
            k: 0,
        },
        Command::ReduceSum {
            src: 0,
            dst: 0,
            count: 0,
        },
        Command::Checksum {
            src: 0,
            dst: 0,
            len: 0,
        },
    ];
    for command in effects {
        let n = succeeded
            .get(&core::mem::discriminant(&command))
            .copied()
            .unwrap_or(0);
        assert!(n >= 10, "{command:?} succeeded {n} times");
    }
}

mod ml;
