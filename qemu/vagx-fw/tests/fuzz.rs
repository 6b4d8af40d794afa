// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Deterministic random testing of the firmware model through its ABI, against a hostile host.
//!
//! Each iteration boots a fresh device and drives it with random, often invalid, host behaviour:
//! command buffers with good and bad addresses, garbage in the rings, random mailbox messages,
//! register writes and fault injections, recovery after halts. After every iteration the tests
//! check that the firmware never touched memory outside RAM, never wrote guest memory it does
//! not own, kept its state register consistent and never lost an event.
//!
//! The seeds are fixed, so a failure reproduces: the failing seed and the last actions are
//! printed, and `VAGX_FUZZ_SEED=<seed>` reruns that one iteration. `VAGX_FUZZ_ITERATIONS=<n>`
//! changes the number of iterations.

mod common;

use std::cell::RefCell;

use common::*;
use vagx_abi::{
    channels::*,
    cmd::*,
    init::{RingDesc, PENDING_CULPRIT, PENDING_VALID, RING_RPTR_OFFSET, RING_WPTR_OFFSET},
    mbox::{self, FwError},
    mmu, pci, pipe_index, pod,
    queue::{QueueEntry, QUEUE_ENTRY_WAIT, QUEUE_WPTR_OFFSET},
    regs, PipeType, MAX_QUEUES, NUM_PIPES, NUM_STAMP_SLOTS, STAMP_STEP,
};
use vagx_fw::{
    mem::{self, Memory},
    FwState,
};

/// xorshift64*: small, fast and good enough to drive a fuzzer.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // Scramble the seed (splitmix64 finaliser) so that consecutive seeds diverge at once.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Self((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn u32(&mut self) -> u32 {
        // CAST: the high half of the output.
        (self.next() >> 32) as u32
    }

    /// Uniform below `n` (`n > 0`; the modulo bias does not matter here).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `1 / n`.
    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        // CAST: the index is below the slice length.
        items[self.below(items.len() as u64) as usize]
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Runs `iterations` iterations of `body` with seeds derived from `base`, or only the one seed
/// named by `VAGX_FUZZ_SEED`.
fn for_each_seed(base: u64, default_iterations: u64, mut body: impl FnMut(u64)) {
    if let Ok(seed) = std::env::var("VAGX_FUZZ_SEED") {
        let seed = match seed.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => seed.parse(),
        }
        .expect("VAGX_FUZZ_SEED: a decimal or 0x-prefixed hexadecimal number");
        body(seed);
        return;
    }
    let iterations = std::env::var("VAGX_FUZZ_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default_iterations);
    for i in 0..iterations {
        body(base.wrapping_add(i));
    }
}

/// The recent actions of the running iteration, printed if it fails.
struct Trace {
    test: &'static str,
    seed: u64,
    actions: RefCell<Vec<String>>,
}

const TRACE_KEEP: usize = 40;

impl Trace {
    fn new(test: &'static str, seed: u64) -> Self {
        Self {
            test,
            seed,
            actions: RefCell::new(Vec::new()),
        }
    }

    fn note(&self, action: String) {
        let mut actions = self.actions.borrow_mut();
        let len = actions.len();
        if len >= 4 * TRACE_KEEP {
            actions.drain(..len - TRACE_KEEP);
        }
        actions.push(action);
    }
}

impl Drop for Trace {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let actions = self.actions.borrow();
            eprintln!(
                "\n{} failed with seed {:#x}: rerun with VAGX_FUZZ_SEED={:#x}",
                self.test, self.seed, self.seed
            );
            eprintln!("last actions, oldest first:");
            let skip = actions.len().saturating_sub(TRACE_KEEP);
            for (i, a) in actions.iter().enumerate().skip(skip) {
                eprintln!("  #{i}: {a}");
            }
        }
    }
}

/// A page nothing writes: a VM rooted here has nothing mapped.
const EMPTY_TABLE: u64 = 0xc000;
/// A read-only alias of the first MiB of the data area, mapped in some iterations.
const ALIAS_VA: u64 = 0x2000_0000;
const ALIAS_SIZE: u64 = 1 << 20;
/// The firmware-produced rings: (state, entries, count, entry size).
const PRODUCED: [(u64, u64, u32, u64); 3] = [
    (EVENT.0, EVENT.1, EVENT.2, 64),
    (FWLOG.0, FWLOG.1, FWLOG.2, 128),
    (STATS.0, STATS.1, STATS.2, 32),
];
/// The registers of BAR0.
const REGISTERS: [usize; 19] = [
    regs::ID,
    regs::ABI_VERSION,
    regs::SCRATCH,
    regs::UNITS,
    regs::FW_STATE,
    regs::FW_ERROR,
    regs::MBOX_H2F_LO,
    regs::MBOX_H2F_HI,
    regs::MBOX_H2F_SEND,
    regs::MBOX_F2H_LO,
    regs::MBOX_F2H_HI,
    regs::MBOX_F2H_EP,
    regs::MBOX_F2H_COUNT,
    regs::IRQ_STATUS,
    regs::IRQ_MASK,
    regs::RESET,
    regs::DEBUG_INJECT,
    regs::DEBUG_ARG0,
    regs::DEBUG_ARG1,
];

/// One iteration of the host-behaviour fuzzer.
struct Fuzz<'t> {
    h: Harness,
    rng: Rng,
    trace: &'t Trace,
    /// Byte ranges `[start, end)` outside the data area the test itself wrote after the snapshot.
    written: Vec<(u64, u64)>,
    /// Queue-state addresses handed to the firmware: it may write their `rptr`, `done` and
    /// (ABI 1.7) `busy_ns`.
    states: Vec<u64>,
    seq: u32,
    alias: bool,
    /// The command buffer being built may contain invalid commands and addresses.
    hostile: bool,
    resets_allowed: bool,
    /// The device was reset and rebooted: the harness's ring pointers are stale now.
    rebooted: bool,
}

impl<'t> Fuzz<'t> {
    fn new(seed: u64, trace: &'t Trace) -> Self {
        let mut rng = Rng::new(seed);
        // CAST: at most 4.
        let units = rng.range(1, 4) as u32;
        let watchdog = match rng.below(3) {
            0 => 0,
            1 => rng.range(1_000_000, 10_000_000),
            _ => rng.range(10_000_000, 200_000_000),
        };
        trace.note(format!("boot: {units} units, watchdog {watchdog} ns"));
        let h = Harness::with_init(units, |init| init.watchdog_ns = watchdog);
        let resets_allowed = rng.one_in(16);
        Self {
            h,
            rng,
            trace,
            written: Vec::new(),
            states: Vec::new(),
            seq: 0x4000_0000,
            alias: false,
            hostile: false,
            resets_allowed,
            rebooted: false,
        }
    }

    fn note(&self, action: String) {
        self.trace.note(action);
    }

    fn wrote(&mut self, address: u64, len: u64) {
        self.written.push((address, address + len));
    }

    fn write_u32(&mut self, address: u64, value: u32) {
        mem::write_u32(&mut self.h.ram, address, value).unwrap();
        self.wrote(address, 4);
    }

    fn write_bytes(&mut self, address: u64, bytes: &[u8]) {
        self.h.ram.write(address, bytes).unwrap();
        self.wrote(address, bytes.len() as u64);
    }

    fn read_u32(&mut self, address: u64) -> u32 {
        mem::read_u32(&mut self.h.ram, address).unwrap()
    }

    fn doorbell(&mut self, which: u64) {
        self.h
            .send(mbox::EP_DOORBELL, mbox::message(mbox::MSG_DOORBELL, which));
    }

    /// A queue id: mostly of a queue the harness knows, sometimes any.
    fn queue_id(&mut self) -> u32 {
        if !self.h.queues.is_empty() && !self.rng.one_in(4) {
            let mut ids: Vec<u32> = self.h.queues.keys().copied().collect();
            ids.sort_unstable();
            self.rng.pick(&ids)
        } else if self.rng.one_in(8) {
            self.rng.u32()
        } else {
            // CAST: below 140.
            self.rng.below(MAX_QUEUES as u64 + 12) as u32
        }
    }

    /// One of the queues the harness knows, if any (chosen deterministically: the harness keeps
    /// them in a `HashMap`, whose order changes from run to run).
    fn some_queue(&mut self) -> Option<QueueInfo> {
        let mut ids: Vec<u32> = self.h.queues.keys().copied().collect();
        if ids.is_empty() {
            return None;
        }
        ids.sort_unstable();
        let id = self.rng.pick(&ids);
        Some(self.h.queues[&id])
    }

    // ---- Device control ----------------------------------------------------------------

    /// Pushes a device-control message (recording the entry written) and rings the doorbell.
    fn push_devctrl(&mut self, msg: &DevCtrlMsg) {
        self.h.push_devctrl(msg);
        let wptr = self.read_u32(DEVCTRL.0 + RING_WPTR_OFFSET);
        let index = (wptr + DEVCTRL.2 - 1) % DEVCTRL.2;
        self.wrote(DEVCTRL.1 + 64 * u64::from(index), 64);
        self.wrote(DEVCTRL.0 + RING_WPTR_OFFSET, 4);
    }

    /// Sends an operation and waits (boundedly) for its reply; `None` if none came, which
    /// happens when earlier garbage desynchronised the ring.
    fn devctrl<T: DevCtrlArgs>(&mut self, args: &T) -> Option<EventDevCtrlDone> {
        self.seq += 1;
        let seq = self.seq;
        self.push_devctrl(&DevCtrlMsg::new(seq, args));
        for _ in 0..64 {
            let events = self.h.events();
            let reply = events
                .iter()
                .find_map(|e| e.payload::<EventDevCtrlDone>().filter(|d| d.seq == seq));
            if reply.is_some() {
                return reply;
            }
            if events.is_empty() {
                // Nothing more on the ring: one flush in case the backlog has more.
                self.h.run_for(0);
                if self.h.events().is_empty() {
                    return None;
                }
            }
            self.h.run_for(0);
        }
        None
    }

    fn create_queue(&mut self) {
        let r = &mut self.rng;
        let id = match r.below(12) {
            0 => r.u32(),
            // CAST: below 132.
            1 => r.range(MAX_QUEUES as u64, MAX_QUEUES as u64 + 3) as u32,
            // CAST: below MAX_QUEUES.
            _ => r.below(MAX_QUEUES as u64) as u32,
        };
        let pipe_type = if r.one_in(12) {
            r.pick(&[2, 3, u32::MAX])
        } else {
            // CAST: 0 or 1.
            r.below(2) as u32
        };
        let priority = if r.one_in(12) {
            r.pick(&[4, 5, u32::MAX])
        } else {
            // CAST: below 4.
            r.below(4) as u32
        };
        let stamp_slot = match r.below(12) {
            0 => r.pick(&[128, 129, u32::MAX]),
            1..=5 => id,
            // CAST: below NUM_STAMP_SLOTS.
            _ => r.below(NUM_STAMP_SLOTS as u64) as u32,
        };
        let stamp_init = match r.below(4) {
            0 => 0,
            1 => u32::MAX - STAMP_STEP,
            _ => r.u32(),
        };
        let vm = if r.one_in(8) {
            r.pick(&[1, 2, 63, 64])
        } else {
            0
        };
        let pad = u32::from(r.one_in(30));
        // Keep the state inside the queue-state area even for invalid ids.
        let page = QUEUES + u64::from(id % MAX_QUEUES as u32) * 0x1000;
        let standard = !r.one_in(6);
        let (ring, state, ring_count) = if standard {
            (page + 0x400, page, QUEUE_RING_COUNT)
        } else {
            let any = r.u32();
            let count = r.pick(&[0, 1, 2, 3, 4, 16, 64, 65536, 131072, any]);
            // The largest valid ring (65536 entries of 16 bytes) still ends inside RAM.
            let mut ring = r.below(RAM_SIZE as u64 - 16 * 65536) & !15;
            let mut state = QUEUES + (r.below(MAX_QUEUES as u64 * 0x1000 - 192) & !63);
            if r.one_in(8) {
                ring += r.range(1, 15);
            }
            if r.one_in(8) {
                state += r.range(1, 63);
            }
            (ring, state, count)
        };
        self.states.push(state);
        let args = DevCtrlCreateQueue {
            queue: id,
            vm,
            pipe_type,
            priority,
            stamp_slot,
            stamp_init,
            ring_count,
            _pad: pad,
            ring,
            state,
        };
        let reply = self.devctrl(&args);
        self.note(format!("create {args:?} -> {reply:?}"));
        let ok = reply.is_some_and(|r| r.status == DEVCTRL_OK);
        if ok && standard && ring_count == QUEUE_RING_COUNT {
            let ty = PipeType::from_raw(pipe_type).expect("accepted pipe type");
            self.h.queues.insert(
                id,
                QueueInfo {
                    id,
                    pipe: pipe_index(ty, priority),
                    slot: stamp_slot,
                    ring,
                    state,
                    wptr: 0,
                    stamp: stamp_init,
                },
            );
        }
    }

    /// A random, structurally valid device-control operation with random arguments.
    fn devctrl_op(&mut self) {
        match self.rng.below(9) {
            0 => self.create_queue(),
            1 => {
                let queue = self.queue_id();
                let r = self.devctrl(&DevCtrlDestroyQueue(DevCtrlQueue { queue }));
                self.note(format!("destroy {queue} -> {r:?}"));
                if r.is_some_and(|r| r.status == DEVCTRL_OK) {
                    self.h.queues.remove(&queue);
                }
            }
            2 => {
                // CAST: below 70.
                let vm = if self.rng.one_in(3) {
                    0
                } else {
                    self.rng.below(70) as u32
                };
                let root = if self.rng.one_in(3) {
                    EMPTY_TABLE
                } else {
                    self.h.pt.root()
                };
                let pad = u32::from(self.rng.one_in(20));
                let r = self.devctrl(&DevCtrlBindVm {
                    vm,
                    _pad: pad,
                    root,
                });
                self.note(format!("bind vm {vm} root {root:#x} pad {pad} -> {r:?}"));
            }
            3 => {
                // CAST: below 70.
                let vm = self.rng.below(70) as u32;
                let r = self.devctrl(&DevCtrlUnbindVm { vm });
                self.note(format!("unbind vm {vm} -> {r:?}"));
            }
            4 => {
                let r = self.devctrl(&DevCtrlHalt { _pad: 0 });
                self.note(format!("halt -> {r:?}"));
            }
            5 => {
                let r = self.devctrl(&DevCtrlResume { _pad: 0 });
                self.note(format!("resume -> {r:?}"));
            }
            6 => {
                let queue = self.queue_id();
                let r = self.devctrl(&DevCtrlResetQueue(DevCtrlQueue { queue }));
                self.note(format!("reset queue {queue} -> {r:?}"));
            }
            7 => {
                let r = self.devctrl(&DevCtrlFlush { _pad: 0 });
                self.note(format!("flush -> {r:?}"));
            }
            _ => {
                let what = if self.rng.one_in(4) {
                    self.rng.u32()
                } else {
                    // CAST: below 4.
                    self.rng.below(4) as u32
                };
                let r = self.devctrl(&DevCtrlQuery { what });
                self.note(format!("query {what} -> {r:?}"));
            }
        }
    }

    /// A device-control message with a random operation and payload, made harmless only where
    /// the firmware would otherwise legitimately write memory the test cannot account for (a
    /// queue state) or translate through arbitrary page tables (a VM root).
    fn garbage_devctrl_msg(&mut self) -> DevCtrlMsg {
        let op = if self.rng.one_in(5) {
            self.rng.u32()
        } else {
            // CAST: below 12.
            self.rng.below(12) as u32
        };
        let mut payload = [0u8; 56];
        let len = self.rng.pick(&[0, 4, 8, 16, 48, 56]);
        payload[..len].copy_from_slice(&self.rng.bytes(len));
        let mut msg = DevCtrlMsg {
            op,
            seq: self.rng.u32(),
            payload,
        };
        if let Some(mut a) = msg.payload::<DevCtrlCreateQueue>() {
            a.ring = self.rng.below(RAM_SIZE as u64 - 16 * 65536);
            a.state = QUEUES + self.rng.below(MAX_QUEUES as u64 * 0x1000 - 192);
            if self.rng.one_in(2) {
                a.state &= !63;
                a.ring &= !15;
                a.vm = 0;
                a._pad = 0;
                a.ring_count = 1 << self.rng.below(17);
            }
            self.states.push(a.state);
            msg = DevCtrlMsg::new(msg.seq, &a);
        }
        if let Some(mut a) = msg.payload::<DevCtrlBindVm>() {
            a.root = if self.rng.one_in(2) {
                EMPTY_TABLE
            } else {
                self.h.pt.root()
            };
            msg = DevCtrlMsg::new(msg.seq, &a);
        }
        msg
    }

    // ---- Command buffers ---------------------------------------------------------------

    /// A GPU address for `len` bytes aligned to `align`: mostly inside the results area (the
    /// data area below the command buffers), sometimes unmapped, read-only or misaligned.
    fn address(&mut self, len: u64, align: u64) -> u64 {
        let r = &mut self.rng;
        let any = r.next() & !7;
        let choice = if self.hostile { r.below(20) } else { 19 };
        let mut va = match choice {
            0 => r.pick(&[
                0,
                8,
                GPU_VA - 8,
                GPU_VA + DATA_SIZE,
                GPU_VA + DATA_SIZE - 4,
                DATA,
                mmu::VA_LIMIT - 8,
                mmu::VA_LIMIT,
                u64::MAX - 7,
                any,
            ]),
            1 if self.alias => ALIAS_VA + r.below(ALIAS_SIZE),
            _ => GPU_VA + r.below(CMDBUF_AREA.saturating_sub(len).max(1)),
        };
        va &= !(align - 1);
        if self.hostile && r.one_in(40) {
            va = va.wrapping_add(r.range(1, 7));
        }
        va
    }

    /// A transfer length: mostly small, sometimes large, rarely out of range.
    fn length(&mut self) -> u64 {
        let r = &mut self.rng;
        let choice = if self.hostile {
            r.below(40)
        } else {
            r.range(1, 39)
        };
        match choice {
            0 => r.pick(&[MAX_TRANSFER, MAX_TRANSFER + 1, u64::MAX, 1 << 32]),
            1..=3 => r.below(256 << 10),
            4 => 0,
            _ => r.below(4096),
        }
    }

    fn gemm_dim(&mut self) -> u32 {
        if self.hostile && self.rng.one_in(20) {
            self.rng.pick(&[0, MAX_GEMM_DIM + 1, u32::MAX])
        } else {
            // CAST: at most 12.
            self.rng.range(1, 12) as u32
        }
    }

    fn command(&mut self) -> Vec<u8> {
        let kind = if self.hostile {
            self.rng.below(16)
        } else {
            self.rng.below(10)
        };
        match kind {
            0 => cmd(&CmdNop {
                header: CmdNop::HEADER,
            }),
            1 => {
                let ns = match self.rng.below(20) {
                    // u64::MAX saturates the cost model (it once overflowed the scheduler).
                    0 if self.hostile => self.rng.pick(&[u64::MAX, 1 << 62, 50_000_000]),
                    1..=10 => self.rng.below(20_000),
                    _ => self.rng.below(2_000_000),
                };
                cmd(&CmdDelay {
                    header: CmdDelay::HEADER,
                    ns,
                })
            }
            2 => cmd(&CmdWrite32 {
                header: CmdWrite32::HEADER,
                address: self.address(4, 4),
                value: self.rng.u32(),
                _pad: 0,
            }),
            3 => cmd(&CmdWrite64 {
                header: CmdWrite64::HEADER,
                address: self.address(8, 8),
                value: self.rng.next(),
            }),
            4 => {
                let len = self.length();
                cmd(&CmdCopy {
                    header: CmdCopy::HEADER,
                    src: self.address(len, 1),
                    dst: self.address(len, 1),
                    len,
                })
            }
            5 => {
                let len = self.length();
                cmd(&CmdFill {
                    header: CmdFill::HEADER,
                    dst: self.address(len, 1),
                    len,
                    pattern: self.rng.u32(),
                    _pad: 0,
                })
            }
            6 => {
                let (m, n, k) = (self.gemm_dim(), self.gemm_dim(), self.gemm_dim());
                let size = |a: u32, b: u32| (4 * u64::from(a)).saturating_mul(u64::from(b));
                cmd(&CmdGemm {
                    header: CmdGemm::HEADER,
                    a: self.address(size(m, k), 4),
                    b: self.address(size(k, n), 4),
                    c: self.address(size(m, n), 4),
                    m,
                    n,
                    k,
                    _pad: 0,
                })
            }
            7 => {
                let count = self.length() / 4;
                cmd(&CmdReduceSum {
                    header: CmdReduceSum::HEADER,
                    src: self.address(count.saturating_mul(4), 4),
                    dst: self.address(4, 4),
                    count,
                })
            }
            8 => {
                let len = self.length();
                cmd(&CmdChecksum {
                    header: CmdChecksum::HEADER,
                    src: self.address(len, 1),
                    dst: self.address(8, 8),
                    len,
                })
            }
            9 => {
                let slot = if self.hostile && self.rng.one_in(10) {
                    self.rng.pick(&[128, 129, u32::MAX])
                } else if let (false, Some(q)) = (self.rng.one_in(3), self.some_queue()) {
                    q.slot
                } else {
                    // CAST: below NUM_STAMP_SLOTS.
                    self.rng.below(NUM_STAMP_SLOTS as u64) as u32
                };
                let value = if slot < NUM_STAMP_SLOTS as u32 && !self.rng.one_in(4) {
                    // CAST: at most 3.
                    let ahead = self.rng.below(4) as u32;
                    self.h.stamp(slot).wrapping_add(ahead * STAMP_STEP)
                } else {
                    self.rng.u32()
                };
                let mut barrier = CmdBarrier::new(slot, value);
                if self.rng.one_in(3) {
                    barrier.header.flags = BARRIER_FLAG_DEP_ERROR;
                } else if self.hostile && self.rng.one_in(6) {
                    barrier.header.flags = self.rng.u32();
                }
                cmd(&barrier)
            }
            10 => cmd(&CmdDebugFault {
                header: CmdDebugFault::HEADER,
                address: self.address(1, 1),
            }),
            11 if self.rng.one_in(6) => cmd(&CmdDebugHang {
                header: CmdDebugHang::HEADER,
            }),
            12 => {
                // A malformed header: random opcode, size or flags.
                let mut header = CmdHeader {
                    opcode: self.rng.pick(&[OP_NOP, OP_WRITE32, OP_GEMM, 12, 0xffff]),
                    size: self.rng.pick(&[0, 4, 8, 16, 24, 48, 0xfff8, 0xffff]),
                    flags: 0,
                };
                if self.rng.one_in(3) {
                    header.flags = self.rng.u32() | 1;
                }
                // CAST: below 5.
                let tail = 8 * self.rng.below(5) as usize;
                let mut bytes = pod::as_bytes(&header).to_vec();
                bytes.extend(self.rng.bytes(tail));
                bytes
            }
            13 => {
                // CAST: below 9.
                let len = 8 * self.rng.range(1, 8) as usize;
                self.rng.bytes(len)
            }
            14 => {
                // A valid command with a reserved field set.
                let mut c = CmdWrite32 {
                    header: CmdWrite32::HEADER,
                    address: self.address(4, 4),
                    value: 1,
                    _pad: 0,
                };
                if self.rng.one_in(2) {
                    c._pad = self.rng.u32() | 1;
                } else {
                    c.header.flags = self.rng.u32() | 1;
                }
                cmd(&c)
            }
            _ => cmd(&CmdNop {
                header: CmdNop::HEADER,
            }),
        }
    }

    fn command_buffer(&mut self) -> Vec<u8> {
        // CAST: at most 6.
        let n = self.rng.below(7) as usize;
        self.hostile = self.rng.one_in(3);
        let mut buf: Vec<u8> = (0..n).flat_map(|_| self.command()).collect();
        if self.hostile && !buf.is_empty() && self.rng.one_in(10) {
            // CAST: below the length.
            let cut = self.rng.range(1, buf.len() as u64) as usize;
            buf.truncate(buf.len() - cut);
        }
        buf
    }

    /// A wait entry (ABI 1.1): mostly on a live queue's stamp, sometimes malformed.
    fn wait_entry(&mut self) -> QueueEntry {
        let slot = match (self.rng.below(8), self.some_queue()) {
            (0, _) => self.rng.pick(&[128, 200, u32::MAX]),
            // CAST: below NUM_STAMP_SLOTS.
            (1, _) | (_, None) => self.rng.below(NUM_STAMP_SLOTS as u64) as u32,
            (_, Some(q)) => q.slot,
        };
        let value = if slot < NUM_STAMP_SLOTS as u32 && !self.rng.one_in(4) {
            // CAST: at most 3.
            let ahead = self.rng.below(4) as u32;
            self.h.stamp(slot).wrapping_add(ahead * STAMP_STEP)
        } else {
            self.rng.u32()
        };
        let mut entry = QueueEntry::wait(slot, value);
        if self.rng.one_in(10) {
            match self.rng.below(2) {
                0 => entry.len = 8 * self.rng.range(1, 4) as u32,
                _ => entry.flags |= self.rng.u32() & !QUEUE_ENTRY_WAIT | 1 << 1,
            }
        }
        entry
    }

    /// Writes a raw entry on queue `id` and its pipe message, recording what the harness wrote.
    fn queue_raw(&mut self, id: u32, entry: QueueEntry) {
        let q = self.h.queues[&id];
        self.wrote(q.ring + 16 * u64::from(q.wptr), 16);
        self.wrote(q.state + QUEUE_WPTR_OFFSET, 4);
        self.h.queue_raw(id, entry);
        let pipe = self.h.init.pipes[q.pipe];
        let wptr = self.read_u32(pipe.state + RING_WPTR_OFFSET);
        let index = (wptr + pipe.count - 1) % pipe.count;
        self.wrote(pipe.entries + 16 * u64::from(index), 16);
        self.wrote(pipe.state + RING_WPTR_OFFSET, 4);
    }

    /// Writes an entry on queue `id` and its pipe message, recording what the harness wrote.
    fn queue_entry(&mut self, id: u32, cmds: &[u8]) {
        let q = self.h.queues[&id];
        self.wrote(q.ring + 16 * u64::from(q.wptr), 16);
        self.wrote(q.state + QUEUE_WPTR_OFFSET, 4);
        self.h.queue_entry(id, cmds);
        let pipe = self.h.init.pipes[q.pipe];
        let wptr = self.read_u32(pipe.state + RING_WPTR_OFFSET);
        let index = (wptr + pipe.count - 1) % pipe.count;
        self.wrote(pipe.entries + 16 * u64::from(index), 16);
        self.wrote(pipe.state + RING_WPTR_OFFSET, 4);
    }

    fn submit(&mut self) {
        if self.h.queues.is_empty() {
            self.create_queue();
            return;
        }
        // CAST: at most 4.
        let entries = if self.rng.one_in(4) {
            self.rng.range(2, 4) as usize
        } else {
            1
        };
        for _ in 0..entries {
            let id = self.queue_id();
            if !self.h.queues.contains_key(&id) {
                continue;
            }
            if self.rng.one_in(5) {
                let entry = self.wait_entry();
                self.note(format!("submit queue {id}: {entry:x?}"));
                self.queue_raw(id, entry);
                continue;
            }
            let buf = self.command_buffer();
            self.note(format!(
                "submit queue {id}: {} bytes {:02x?}",
                buf.len(),
                buf
            ));
            self.queue_entry(id, &buf);
        }
        match self.rng.below(10) {
            0 => {}
            1 => {
                let pipe = self.rng.below(NUM_PIPES as u64);
                self.doorbell(pipe);
            }
            _ => self.h.kick(),
        }
    }

    // ---- Garbage -----------------------------------------------------------------------

    fn ring_pointer(&mut self, count: u32, in_range: bool) -> u32 {
        if in_range {
            // CAST: below `count`.
            self.rng.below(u64::from(count)) as u32
        } else {
            let huge = self.rng.u32().max(count);
            self.rng.pick(&[count, count + 1, 5000, u32::MAX, huge])
        }
    }

    fn ring_garbage(&mut self) {
        match self.rng.below(7) {
            0 => {
                let in_range = self.rng.one_in(3);
                let wptr = self.ring_pointer(DEVCTRL.2, in_range);
                self.note(format!("devctrl wptr := {wptr}"));
                self.write_u32(DEVCTRL.0 + RING_WPTR_OFFSET, wptr);
                if !self.rng.one_in(4) {
                    self.doorbell(mbox::DOORBELL_DEVCTRL);
                }
            }
            1 => {
                let msg = self.garbage_devctrl_msg();
                // CAST: below 64.
                let index = self.rng.below(u64::from(DEVCTRL.2)) as u32;
                self.note(format!("devctrl entry {index} := {msg:?}"));
                self.write_bytes(DEVCTRL.1 + 64 * u64::from(index), pod::as_bytes(&msg));
                if self.rng.one_in(2) {
                    let wptr = (index + 1) % DEVCTRL.2;
                    self.write_u32(DEVCTRL.0 + RING_WPTR_OFFSET, wptr);
                    self.doorbell(mbox::DOORBELL_DEVCTRL);
                }
            }
            2 => {
                let msg = self.garbage_devctrl_msg();
                self.note(format!("devctrl push {msg:?}"));
                self.push_devctrl(&msg);
            }
            3 => {
                // CAST: below NUM_PIPES.
                let p = self.rng.below(NUM_PIPES as u64) as usize;
                let desc = self.h.init.pipes[p];
                let msg = PipeMsg {
                    queue: self.queue_id(),
                    wptr: if self.rng.one_in(4) {
                        self.rng.u32()
                    } else {
                        // CAST: below 20.
                        self.rng.below(20) as u32
                    },
                    // A deadline on a random stamp now and then; garbage in either field
                    // (one without the other) too.
                    deadline_stamp: if self.rng.one_in(10) {
                        self.rng.u32()
                    } else {
                        0
                    },
                    due_us: if self.rng.one_in(10) {
                        // CAST: any bits make an i32.
                        self.rng.u32() as i32
                    } else {
                        0
                    },
                };
                // CAST: below the count.
                let index = self.rng.below(u64::from(desc.count)) as u32;
                self.note(format!("pipe {p} entry {index} := {msg:?}"));
                self.write_bytes(desc.entries + 16 * u64::from(index), pod::as_bytes(&msg));
                if !self.rng.one_in(4) {
                    let wptr = if self.rng.one_in(4) {
                        self.ring_pointer(desc.count, false)
                    } else {
                        (index + 1) % desc.count
                    };
                    self.write_u32(desc.state + RING_WPTR_OFFSET, wptr);
                    self.note(format!("pipe {p} wptr := {wptr}"));
                }
                let which = if self.rng.one_in(2) {
                    mbox::DOORBELL_KICK
                } else {
                    p as u64
                };
                self.doorbell(which);
            }
            4 => {
                // The log and stats rings: the host may move their rptr anywhere.
                let (state, _, count, _) = PRODUCED[self.rng.range(1, 2) as usize];
                let in_range = !self.rng.one_in(3);
                let rptr = self.ring_pointer(count, in_range);
                self.note(format!("ring {state:#x} rptr := {rptr}"));
                self.write_u32(state + RING_RPTR_OFFSET, rptr);
                self.h.run_for(0);
            }
            5 => {
                // The event ring: only out-of-range values, which the firmware must refuse;
                // an in-range one would let it overwrite unread events.
                let rptr = self.ring_pointer(EVENT.2, false);
                self.note(format!("event rptr := {rptr}"));
                self.write_u32(EVENT.0 + RING_RPTR_OFFSET, rptr);
                self.h.run_for(0);
                if self.rng.one_in(2) {
                    self.h.kick();
                }
            }
            _ => {
                if let Some(q) = self.some_queue() {
                    let wptr = self.rng.u32();
                    self.note(format!("queue {} state wptr := {wptr}", q.id));
                    self.write_u32(q.state + QUEUE_WPTR_OFFSET, wptr);
                }
            }
        }
    }

    fn mailbox_garbage(&mut self) {
        let r = &mut self.rng;
        let (small, any, any_ty) = (r.below(64) as u32, r.u32(), r.next() as u8);
        let ep = r.pick(&[mbox::EP_FIRMWARE, mbox::EP_DOORBELL, small, any]);
        let ty = r.pick(&[
            mbox::MSG_DOORBELL,
            mbox::MSG_INIT,
            mbox::MSG_INIT_DONE,
            mbox::MSG_RX_DOORBELL,
            mbox::MSG_CRASHED,
            any_ty,
        ]);
        let payload = if r.one_in(3) { r.next() } else { r.below(0x14) };
        let msg = mbox::message(ty, payload);
        self.note(format!("mailbox ep {ep:#x} msg {msg:#018x}"));
        self.h.send(ep, msg);
    }

    fn register_garbage(&mut self) {
        let r = &mut self.rng;
        let offset = match r.below(10) {
            0..=5 => r.pick(&REGISTERS) as u64,
            6..=8 => r.below(pci::BAR0_SIZE as u64) & !3,
            _ => {
                let (near, any) = (r.below(0x2000), r.next());
                r.pick(&[near, any, pci::BAR0_SIZE as u64])
            }
        };
        let size = if r.one_in(10) {
            r.pick(&[0, 1, 2, 3, 8])
        } else {
            4
        };
        let mut value = match r.below(4) {
            // CAST: below 64.
            0 => r.below(64) as u32,
            _ => r.u32(),
        };
        if offset == regs::RESET as u64 && value == regs::RESET_MAGIC {
            value ^= 1;
        }
        let now = self.h.now;
        let write = r.one_in(4);
        if write {
            let result = self
                .h
                .dev
                .mmio_write(&mut self.h.ram, now, offset, size, value);
            self.note(format!(
                "mmio write {offset:#x}/{size} := {value:#x} -> {result:?}"
            ));
        } else {
            let result = self.h.dev.mmio_read(offset, size);
            self.note(format!("mmio read {offset:#x}/{size} -> {result:?}"));
        }
        if self.rng.one_in(4) {
            self.h.dev.take_irq();
        }
    }

    fn inject(&mut self) {
        let arg0 = match self.rng.below(4) {
            0 => self.rng.u32(),
            // CAST: below 4.
            1 => self.rng.below(4) as u32,
            _ => self.queue_id(),
        };
        let arg1 = if self.rng.one_in(4) {
            self.rng.u32()
        } else {
            // CAST: below 6.
            self.rng.below(6) as u32
        };
        let what = if self.rng.one_in(10) {
            self.rng.u32()
        } else {
            // CAST: below 5.
            self.rng.below(5) as u32
        };
        let now = self.h.now;
        let dev = &mut self.h.dev;
        let ram = &mut self.h.ram;
        dev.mmio_write(ram, now, regs::DEBUG_ARG0 as u64, 4, arg0)
            .unwrap();
        dev.mmio_write(ram, now, regs::DEBUG_ARG1 as u64, 4, arg1)
            .unwrap();
        let result = dev.mmio_write(ram, now, regs::DEBUG_INJECT as u64, 4, what);
        self.note(format!("inject {what} ({arg0}, {arg1}) -> {result:?}"));
    }

    // ---- Time, reading, recovery -------------------------------------------------------

    fn run(&mut self) {
        let ns = match self.rng.below(6) {
            0 => 0,
            1 => self.rng.below(20_000),
            2 => match self.h.dev.next_deadline() {
                Some(t) => t.saturating_sub(self.h.now).min(5_000_000),
                None => 1000,
            },
            _ => self.rng.below(5_000_000),
        };
        self.note(format!("run {ns} ns"));
        self.h.run_for(ns);
    }

    /// Reads every event (flushing the firmware's backlog) and the mailbox.
    fn drain(&mut self) {
        if self.rng.one_in(2) {
            // Consume the log and stats rings, as a driver would.
            for (state, ..) in &PRODUCED[1..] {
                let wptr = self.read_u32(state + RING_WPTR_OFFSET);
                mem::write_u32(&mut self.h.ram, state + RING_RPTR_OFFSET, wptr).unwrap();
            }
        }
        for _ in 0..256 {
            if self.h.events().is_empty() {
                self.h.run_for(0);
                if self.h.events().is_empty() {
                    break;
                }
            }
            self.h.run_for(0);
        }
        self.h.mailbox();
    }

    fn recover(&mut self) {
        if self.h.dev.state() != FwState::Halted {
            if self.rng.one_in(4) {
                let r = self.devctrl(&DevCtrlHalt { _pad: 0 });
                self.note(format!("halt -> {r:?}"));
            }
            return;
        }
        let table = self.h.pending();
        let culprits: Vec<u32> = table
            .entries
            .iter()
            .filter(|e| {
                e.flags & (PENDING_VALID | PENDING_CULPRIT) == PENDING_VALID | PENDING_CULPRIT
            })
            .map(|e| e.queue)
            .collect();
        self.note(format!(
            "recover: halt {} reason {} culprits {culprits:?}",
            table.halt_seq, table.reason
        ));
        for queue in culprits {
            if self.rng.one_in(8) {
                let r = self.devctrl(&DevCtrlDestroyQueue(DevCtrlQueue { queue }));
                self.note(format!("destroy culprit {queue} -> {r:?}"));
                if r.is_some_and(|r| r.status == DEVCTRL_OK) {
                    self.h.queues.remove(&queue);
                }
            } else {
                let r = self.devctrl(&DevCtrlResetQueue(DevCtrlQueue { queue }));
                self.note(format!("reset culprit {queue} -> {r:?}"));
            }
        }
        let r = self.devctrl(&DevCtrlResume { _pad: 0 });
        self.note(format!("resume -> {r:?}"));
    }

    /// Resets the device and boots it again; the harness's ring pointers are stale afterwards,
    /// so the iteration ends.
    fn reset(&mut self) {
        self.drain();
        self.check_events();
        let now = self.h.now;
        let r = self.h.dev.mmio_write(
            &mut self.h.ram,
            now,
            regs::RESET as u64,
            4,
            regs::RESET_MAGIC,
        );
        self.note(format!("reset -> {r:?}"));
        assert_eq!(r, Ok(()));
        assert_eq!(self.h.dev.state(), FwState::Off);
        assert_eq!(self.h.mmio_read(regs::FW_STATE), regs::FW_STATE_OFF);
        assert_eq!(self.h.mmio_read(regs::FW_ERROR), 0);
        assert_eq!(self.h.dev.next_deadline(), None);
        self.wrote(INIT, 320);
        assert_eq!(self.h.boot(), Ok(()), "reboot after reset");
        assert_eq!(self.h.dev.state(), FwState::Running);
        self.rebooted = true;
    }

    fn step(&mut self) {
        if self.h.dev.state() == FwState::Halted && self.rng.one_in(3) {
            self.recover();
        }
        match self.rng.below(100) {
            0..=27 => self.submit(),
            28..=37 => self.devctrl_op(),
            38..=41 => self.create_queue(),
            42..=49 => self.ring_garbage(),
            50..=54 => self.mailbox_garbage(),
            55..=61 => self.register_garbage(),
            62..=64 => self.inject(),
            65..=81 => self.run(),
            82..=89 => self.drain(),
            90..=97 => self.recover(),
            _ if self.resets_allowed && self.rng.one_in(4) => self.reset(),
            _ => self.run(),
        }
        if !self.rebooted && self.rng.one_in(2) {
            self.drain();
        }
    }

    // ---- Invariants --------------------------------------------------------------------

    fn check_state(&self) {
        let state = self.h.dev.state();
        assert!(matches!(
            state,
            FwState::Running | FwState::Halted | FwState::Crashed
        ));
        assert_eq!(self.h.mmio_read(regs::FW_STATE), state.raw());
        let error = self.h.mmio_read(regs::FW_ERROR);
        if state == FwState::Crashed {
            assert_eq!(error, FwError::Injected as u32, "crash reason");
        } else {
            assert_eq!(error, 0, "FW_ERROR while {state:?}");
        }
        assert_eq!(
            self.h.ram.refused, 0,
            "the firmware accessed memory outside RAM"
        );
    }

    /// Every event the host read has the next sequence number: none lost or duplicated.
    fn check_events(&self) {
        for (i, e) in self.h.seen.iter().enumerate() {
            assert_eq!(
                e.seq as usize, i,
                "event #{i} has seq {} (kind {}): events lost or repeated",
                e.seq, e.kind
            );
        }
    }

    /// The byte ranges the firmware may write, plus those the test wrote.
    fn writable(&self) -> Vec<(u64, u64)> {
        let mut areas = self.written.clone();
        areas.push((DATA, DATA + DATA_SIZE));
        areas.push((STAMPS, STAMPS + 4 * NUM_STAMP_SLOTS as u64));
        areas.push((PENDING, PENDING + 16 + 16 * NUM_STAMP_SLOTS as u64));
        for (state, entries, count, size) in PRODUCED {
            areas.push((state + RING_WPTR_OFFSET, state + RING_WPTR_OFFSET + 4));
            areas.push((entries, entries + u64::from(count) * size));
        }
        // The host owns these pointers and writes them all the time.
        for (state, ..) in PRODUCED {
            areas.push((state + RING_RPTR_OFFSET, state + RING_RPTR_OFFSET + 4));
        }
        let consumed = std::iter::once(DEVCTRL.0).chain(self.h.init.pipes.iter().map(|p| p.state));
        for state in consumed {
            areas.push((state + RING_RPTR_OFFSET, state + RING_RPTR_OFFSET + 4));
        }
        for &state in &self.states {
            areas.push((state, state + 4));
            areas.push((state + 128, state + 132));
            areas.push((state + 136, state + 144));
        }
        areas.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(areas.len());
        for (start, end) in areas {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        merged
    }

    /// Nothing outside [`Fuzz::writable`] changed since `snapshot` (RAM below the data area;
    /// RAM above it was zero).
    fn check_ram(&self, snapshot: &[u8]) {
        let ram = self.h.ram.bytes();
        let mut cursor = 0u64;
        let mut gaps = Vec::new();
        for (start, end) in self.writable() {
            if start > cursor {
                gaps.push((cursor, start.min(RAM_SIZE as u64)));
            }
            cursor = cursor.max(end);
        }
        if cursor < RAM_SIZE as u64 {
            gaps.push((cursor, RAM_SIZE as u64));
        }
        for (start, end) in gaps {
            // CAST: inside the 32 MiB of RAM.
            let (s, e) = (start as usize, end as usize);
            let differs = if end <= DATA {
                ram[s..e] != snapshot[s..e]
            } else {
                assert!(start >= DATA + DATA_SIZE, "gap {start:#x}..{end:#x}");
                !is_zero(&ram[s..e])
            };
            if differs {
                let first = (s..e)
                    .find(|&i| ram[i] != snapshot.get(i).copied().unwrap_or(0))
                    .unwrap();
                panic!(
                    "the firmware wrote {:#x} (was {:#x}) at {first:#x}, outside what it may \
                     write (in the untouched range {start:#x}..{end:#x})",
                    ram[first],
                    snapshot.get(first).copied().unwrap_or(0)
                );
            }
        }
    }
}

/// Whether `bytes` are all zero (compared a page at a time: fast even in debug builds).
fn is_zero(bytes: &[u8]) -> bool {
    static ZERO: [u8; 4096] = [0; 4096];
    bytes.chunks(ZERO.len()).all(|c| c == &ZERO[..c.len()])
}

#[test]
fn random_host_behaviour_never_panics_or_strays() {
    // What the iterations reached, printed with `--nocapture` to judge the fuzzer's coverage.
    let mut events = [0u64; 9];
    let mut errors = [0u64; 8];
    let (mut faults, mut halted, mut crashed, mut resets, mut entries) = (0, 0, 0, 0, 0u64);
    for_each_seed(0x7a6f_0000, 300, |seed| {
        let trace = Trace::new("random_host_behaviour_never_panics_or_strays", seed);
        let mut f = Fuzz::new(seed, &trace);
        // Setup: a read-only alias in some iterations, and a few queues.
        if f.rng.one_in(3) {
            f.h.map(ALIAS_VA, DATA, ALIAS_SIZE, mmu::PTE_READ);
            f.alias = true;
        }
        for _ in 0..f.rng.range(1, 5) {
            f.create_queue();
        }
        f.drain();
        assert!(is_zero(&f.h.ram.bytes()[(DATA + DATA_SIZE) as usize..]));
        let snapshot = f.h.ram.bytes()[..DATA as usize].to_vec();
        f.check_state();
        let steps = f.rng.range(40, 60);
        for _ in 0..steps {
            f.step();
            f.check_state();
            if f.rebooted {
                break;
            }
        }
        if !f.rebooted {
            f.drain();
            f.check_events();
        }
        f.check_state();
        f.check_ram(&snapshot);
        f.note("iteration finished".into());
        for e in &f.h.seen {
            events[(e.kind as usize).min(8)] += 1;
            if let Some(err) = e.payload::<EventError>() {
                errors[(err.kind as usize).min(7)] += 1;
            }
            if let Some(fault) = e.payload::<EventFault>() {
                faults |= 1 << fault.kind.min(7);
            }
        }
        entries += (0..NUM_STAMP_SLOTS as u32)
            .map(|s| u64::from(f.h.stamp(s) != 0))
            .sum::<u64>();
        halted += u64::from(f.h.dev.state() == FwState::Halted);
        crashed += u64::from(f.h.dev.state() == FwState::Crashed);
        resets += u64::from(f.rebooted);
    });
    println!(
        "events by kind {events:?}, errors by kind {errors:?}, fault kinds {faults:#b}, slots with a stamp {entries}; \
         ended halted {halted}, crashed {crashed}, reset {resets}"
    );
}

/// A corrupted ring or table address.
fn bad_address(rng: &mut Rng, init: &vagx_abi::init::InitData, align: u64) -> u64 {
    let others = [
        init.devctrl.state,
        init.devctrl.entries,
        init.event.entries,
        init.pipes[3].entries,
        init.stamps,
        init.pending,
        INIT,
    ];
    match rng.below(10) {
        0 => rng.next(),
        1 => u64::MAX - rng.below(256),
        2 => rng.pick(&[0, 1 << 63, RAM_SIZE as u64, RAM_SIZE as u64 - align]),
        3 => RAM_SIZE as u64 - rng.below(0x2000),
        4 => rng.pick(&others),
        5 => rng.pick(&others).wrapping_add(rng.range(1, 127)),
        6 => (RAM_SIZE as u64 + rng.below(1 << 30)) & !(align - 1),
        _ => rng.below(RAM_SIZE as u64) & !(align - 1),
    }
}

fn corrupt_ring(rng: &mut Rng, init: &vagx_abi::init::InitData, d: &mut RingDesc) {
    match rng.below(4) {
        0 => d.state = bad_address(rng, init, 128),
        1 => d.entries = bad_address(rng, init, 64),
        2 => {
            let any = rng.u32();
            d.count = rng.pick(&[0, 1, 2, 3, 4, 6, 128, 65536, 65537, 131072, u32::MAX, any]);
        }
        _ => {
            let any = rng.u32();
            d.entry_size = rng.pick(&[0, 1, 8, 16, 32, 64, 128, u32::MAX, any]);
        }
    }
}

#[test]
fn random_init_data_never_panics() {
    for_each_seed(0x1a17_0000, 500, |seed| {
        let trace = Trace::new("random_init_data_never_panics", seed);
        let mut rng = Rng::new(seed);
        // CAST: at most 4.
        let mut h = Harness::unbooted(rng.range(1, 4) as u32);
        let original = h.init;
        for _ in 0..rng.range(1, 4) {
            let init = h.init;
            let (any32, any64) = (rng.u32(), rng.next());
            match rng.below(14) {
                0 => h.init.magic = rng.pick(&[0, !h.init.magic, any32]),
                1 => {
                    h.init.abi_version = rng.pick(&[
                        0,
                        regs::ABI_VERSION_VALUE + 1,
                        2 << 16,
                        regs::ABI_VERSION_VALUE & 0xffff_0000,
                        any32,
                    ]);
                }
                2 => corrupt_ring(&mut rng, &init, &mut h.init.devctrl),
                3 => corrupt_ring(&mut rng, &init, &mut h.init.event),
                4 => corrupt_ring(&mut rng, &init, &mut h.init.fwlog),
                5 => corrupt_ring(&mut rng, &init, &mut h.init.stats),
                6..=8 => {
                    // CAST: below NUM_PIPES.
                    let p = rng.below(NUM_PIPES as u64) as usize;
                    corrupt_ring(&mut rng, &init, &mut h.init.pipes[p]);
                }
                9 => h.init.stamps = bad_address(&mut rng, &init, 4),
                10 => h.init.pending = bad_address(&mut rng, &init, 16),
                11 => {
                    h.init.watchdog_ns = rng.pick(&[0, 1, 1000, u64::MAX, any64]);
                }
                12 => {
                    // Two rings swapped, or one ring's areas given to another.
                    std::mem::swap(&mut h.init.event, &mut h.init.stats);
                    if rng.one_in(2) {
                        h.init.fwlog.state = h.init.devctrl.state;
                    }
                }
                _ => {
                    // A valid ring somewhere else in RAM, maybe overlapping the init data.
                    let entries = rng.below(RAM_SIZE as u64 - (1 << 20)) & !127;
                    h.init.pipes[rng.below(NUM_PIPES as u64) as usize] = RingDesc {
                        state: rng.pick(&[entries + 0x1000, INIT, 0, TABLES]),
                        entries,
                        count: rng.pick(&[2, 64, 4096]),
                        entry_size: PIPE_MSG_SIZE,
                    };
                }
            }
        }
        trace.note(format!("init {:?}", h.init));
        // Sometimes the INIT message itself points somewhere odd.
        let result = if rng.one_in(10) {
            let address = rng.pick(&[
                INIT + 8,
                RAM_SIZE as u64,
                RAM_SIZE as u64 - 0x1000,
                mbox::PAYLOAD_MASK & !0xfff,
                0,
                EMPTY_TABLE,
            ]);
            trace.note(format!("INIT at {address:#x}"));
            vagx_fw::mem::write_pod(&mut h.ram, INIT, &h.init).unwrap();
            h.send(mbox::EP_FIRMWARE, mbox::message(mbox::MSG_INIT, address));
            let done = h
                .mailbox()
                .into_iter()
                .find(|&(ep, m)| {
                    ep == mbox::EP_FIRMWARE && mbox::message_type(m) == mbox::MSG_INIT_DONE
                })
                .expect("INIT_DONE");
            match mbox::message_payload(done.1) {
                0 => Ok(()),
                e => Err(e),
            }
        } else {
            h.boot()
        };
        trace.note(format!("boot -> {result:?}"));
        let error = h.mmio_read(regs::FW_ERROR);
        match result {
            Ok(()) => {
                assert_eq!(h.dev.state(), FwState::Running);
                assert_eq!(h.mmio_read(regs::FW_STATE), regs::FW_STATE_RUNNING);
                assert_eq!(error, 0);
                // Poke the channels, wherever they are: nothing may panic or halt.
                let devctrl = h.init.devctrl;
                let msg = DevCtrlMsg::new(1, &DevCtrlQuery { what: QUERY_UNITS });
                let _ = vagx_fw::mem::write_pod(&mut h.ram, devctrl.entries, &msg);
                let _ = mem::write_u32(&mut h.ram, devctrl.state + RING_WPTR_OFFSET, 1);
                h.send(
                    mbox::EP_DOORBELL,
                    mbox::message(mbox::MSG_DOORBELL, mbox::DOORBELL_DEVCTRL),
                );
                let flush = DevCtrlMsg::new(2, &DevCtrlFlush { _pad: 0 });
                let _ = vagx_fw::mem::write_pod(&mut h.ram, devctrl.entries + 64, &flush);
                let _ = mem::write_u32(&mut h.ram, devctrl.state + RING_WPTR_OFFSET, 2);
                h.send(
                    mbox::EP_DOORBELL,
                    mbox::message(mbox::MSG_DOORBELL, mbox::DOORBELL_DEVCTRL),
                );
                h.kick();
                h.send(0x55, rng.next());
                h.run_for(rng.below(2_000_000));
                h.mailbox();
                assert_eq!(h.dev.state(), FwState::Running);
                assert_eq!(h.mmio_read(regs::FW_ERROR), 0);
            }
            Err(e) => {
                assert_eq!(h.dev.state(), FwState::Failed);
                assert_eq!(h.mmio_read(regs::FW_STATE), regs::FW_STATE_FAILED);
                assert_ne!(error, 0);
                assert_eq!(u64::from(error), e, "FW_ERROR and INIT_DONE disagree");
                assert!(
                    FwError::from_raw(error).is_some_and(|e| (e as u32) <= 4),
                    "boot error {error}"
                );
                // A failed firmware ignores everything but a reset.
                h.kick();
                h.send(mbox::EP_FIRMWARE, mbox::message(mbox::MSG_INIT, INIT));
                assert_eq!(h.dev.state(), FwState::Failed);
                assert_eq!(h.dev.next_deadline(), None);
                if rng.one_in(2) {
                    h.mailbox();
                    h.mmio_write(regs::RESET, regs::RESET_MAGIC);
                    assert_eq!(h.dev.state(), FwState::Off);
                    h.init = original;
                    assert_eq!(h.boot(), Ok(()), "boot after reset");
                }
            }
        }
    });
}
