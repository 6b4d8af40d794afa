// SPDX-License-Identifier: GPL-2.0 OR MIT

//! A minimal host-side driver for the firmware model: the tests' way to boot it, create
//! queues, submit command buffers and read events, written from the ABI only.

#![allow(dead_code)]

use std::collections::HashMap;

use vagx_abi::{
    channels::*,
    cmd::Command,
    init::{InitData, PendingTable, RingDesc, INIT_MAGIC, RING_RPTR_OFFSET, RING_WPTR_OFFSET},
    mbox, mmu, pipe_index, pod,
    queue::{QueueEntry, QUEUE_DONE_OFFSET, QUEUE_WPTR_OFFSET},
    regs, PipeType, NUM_PIPES,
};
use vagx_fw::{
    mem::{self, Memory, Ram},
    mmu::PageTableBuilder,
    Config, Device,
};

pub const RAM_SIZE: usize = 32 << 20;
pub const INIT: u64 = 0x1000;
pub const STAMPS: u64 = 0x2000;
pub const PENDING: u64 = 0x3000;
pub const DEVCTRL: (u64, u64, u32) = (0x4000, 0x5000, 64);
pub const EVENT: (u64, u64, u32) = (0x6000, 0x7000, 64);
pub const FWLOG: (u64, u64, u32) = (0x8000, 0x9000, 32);
pub const STATS: (u64, u64, u32) = (0xa000, 0xb000, 64);
pub const PIPES: u64 = 0x10000;
pub const QUEUES: u64 = 0x20000;
pub const TABLES: u64 = 0x100000;
/// GPU memory: bus addresses from here are mapped at [`GPU_VA`] upwards.
pub const DATA: u64 = 0x400000;
pub const GPU_VA: u64 = 0x1000_0000;
pub const DATA_SIZE: u64 = 16 << 20;
/// Command buffers live in the last MiB of the data area.
pub const CMDBUF_AREA: u64 = DATA_SIZE - (1 << 20);
pub const QUEUE_RING_COUNT: u32 = 16;

fn desc(d: (u64, u64, u32), size: u32) -> RingDesc {
    RingDesc {
        state: d.0,
        entries: d.1,
        count: d.2,
        entry_size: size,
    }
}

#[derive(Clone, Copy, Debug)]
pub struct QueueInfo {
    pub id: u32,
    pub pipe: usize,
    pub slot: u32,
    pub ring: u64,
    pub state: u64,
    pub wptr: u32,
    pub stamp: u32,
}

/// The test driver.
pub struct Harness {
    pub dev: Device,
    pub ram: Ram,
    pub now: u64,
    pub init: InitData,
    seq: u32,
    devctrl_wptr: u32,
    pipe_wptr: [u32; NUM_PIPES],
    event_rptr: u32,
    stats_rptr: u32,
    pub queues: HashMap<u32, QueueInfo>,
    pub pt: PageTableBuilder,
    cmdbuf_next: u64,
    /// Every event read so far.
    pub seen: Vec<EventMsg>,
}

impl Harness {
    /// A device with `units` units, not booted.
    pub fn unbooted(units: u32) -> Self {
        let mut ram = Ram::new(0, RAM_SIZE);
        let pt = PageTableBuilder::new(&mut ram, TABLES).expect("page tables");
        let mut init = InitData {
            magic: INIT_MAGIC,
            abi_version: regs::ABI_VERSION_VALUE,
            devctrl: desc(DEVCTRL, DEVCTRL_MSG_SIZE),
            event: desc(EVENT, EVENT_MSG_SIZE),
            fwlog: desc(FWLOG, LOG_MSG_SIZE),
            stats: desc(STATS, STATS_MSG_SIZE),
            pipes: [RingDesc::default(); NUM_PIPES],
            stamps: STAMPS,
            pending: PENDING,
            watchdog_ns: 0,
        };
        for (i, p) in init.pipes.iter_mut().enumerate() {
            let base = PIPES + i as u64 * 0x1000;
            *p = desc((base, base + 0x800, 64), PIPE_MSG_SIZE);
        }
        Self {
            dev: Device::new(Config {
                units,
                ..Config::default()
            }),
            ram,
            now: 0,
            init,
            seq: 0,
            devctrl_wptr: 0,
            pipe_wptr: [0; NUM_PIPES],
            event_rptr: 0,
            stats_rptr: 0,
            queues: HashMap::new(),
            pt,
            cmdbuf_next: CMDBUF_AREA,
            seen: Vec::new(),
        }
    }

    /// A booted device made with `config`, VM 0 mapping the data area read-write.
    pub fn booted_with(config: Config) -> Self {
        let mut h = Self::unbooted(config.units);
        h.dev = Device::new(config);
        h.mmio_write(regs::IRQ_MASK, regs::IRQ_ALL);
        assert_eq!(h.boot(), Ok(()));
        h.map(GPU_VA, DATA, DATA_SIZE, mmu::PTE_READ | mmu::PTE_WRITE);
        h.bind_vm(0);
        h
    }

    /// A booted device with `units` units, VM 0 mapping the data area read-write.
    pub fn new(units: u32) -> Self {
        Self::with_init(units, |_| {})
    }

    /// Like [`Harness::new`], with `edit` applied to the init data before boot.
    pub fn with_init(units: u32, edit: impl FnOnce(&mut InitData)) -> Self {
        let mut h = Self::unbooted(units);
        edit(&mut h.init);
        h.mmio_write(regs::IRQ_MASK, regs::IRQ_ALL);
        assert_eq!(h.boot(), Ok(()));
        h.map(GPU_VA, DATA, DATA_SIZE, mmu::PTE_READ | mmu::PTE_WRITE);
        h.bind_vm(0);
        h
    }

    pub fn mmio_write(&mut self, reg: usize, value: u32) {
        let now = self.now;
        self.dev
            .mmio_write(&mut self.ram, now, reg as u64, 4, value)
            .expect("register write");
    }

    pub fn mmio_read(&self, reg: usize) -> u32 {
        self.dev.mmio_read(reg as u64, 4).expect("register read")
    }

    pub fn send(&mut self, ep: u32, msg: u64) {
        self.mmio_write(regs::MBOX_H2F_LO, msg as u32);
        self.mmio_write(regs::MBOX_H2F_HI, (msg >> 32) as u32);
        self.mmio_write(regs::MBOX_H2F_SEND, ep);
    }

    /// Drains the firmware-to-host mailbox.
    pub fn mailbox(&mut self) -> Vec<(u32, u64)> {
        let mut out = Vec::new();
        while self.mmio_read(regs::MBOX_F2H_COUNT) > 0 {
            let lo = u64::from(self.mmio_read(regs::MBOX_F2H_LO));
            let hi = u64::from(self.mmio_read(regs::MBOX_F2H_HI));
            out.push((self.mmio_read(regs::MBOX_F2H_EP), hi << 32 | lo));
            self.mmio_write(regs::MBOX_F2H_COUNT, 0);
        }
        out
    }

    /// Writes the init data and sends INIT, without waiting for an answer.
    pub fn send_init(&mut self) {
        mem::write_pod(&mut self.ram, INIT, &self.init).unwrap();
        self.send(mbox::EP_FIRMWARE, mbox::message(mbox::MSG_INIT, INIT));
    }

    /// Writes the init data and sends INIT; returns the INIT_DONE payload as a result.
    pub fn boot(&mut self) -> Result<(), u64> {
        self.send_init();
        let msgs = self.mailbox();
        let done = msgs
            .iter()
            .find(|(ep, m)| {
                *ep == mbox::EP_FIRMWARE && mbox::message_type(*m) == mbox::MSG_INIT_DONE
            })
            .expect("INIT_DONE");
        match mbox::message_payload(done.1) {
            0 => Ok(()),
            e => Err(e),
        }
    }

    /// Resets the device (`RSET` to `RESET`) and, as a driver does before it boots again,
    /// forgets every queue and zeroes the ring pointers the host owns. Interrupts are enabled
    /// again; the page tables stay in memory, to be bound again after the boot.
    pub fn reset(&mut self) {
        self.mmio_write(regs::RESET, regs::RESET_MAGIC);
        let host_owned = [
            (DEVCTRL.0, RING_WPTR_OFFSET),
            (EVENT.0, RING_RPTR_OFFSET),
            (FWLOG.0, RING_RPTR_OFFSET),
            (STATS.0, RING_RPTR_OFFSET),
        ];
        for (state, offset) in host_owned {
            mem::write_u32(&mut self.ram, state + offset, 0).unwrap();
        }
        for pipe in self.init.pipes {
            mem::write_u32(&mut self.ram, pipe.state + RING_WPTR_OFFSET, 0).unwrap();
        }
        self.devctrl_wptr = 0;
        self.pipe_wptr = [0; NUM_PIPES];
        self.event_rptr = 0;
        self.queues.clear();
        self.seen.clear();
        self.mmio_write(regs::IRQ_MASK, regs::IRQ_ALL);
    }

    pub fn map(&mut self, va: u64, pa: u64, len: u64, flags: u64) {
        self.pt.map(&mut self.ram, va, pa, len, flags).expect("map");
    }

    /// Sends a device-control operation and returns its reply.
    pub fn devctrl<T: DevCtrlArgs>(&mut self, args: &T) -> EventDevCtrlDone {
        self.seq += 1;
        let msg = DevCtrlMsg::new(self.seq, args);
        let seq = self.seq;
        self.push_devctrl(&msg);
        self.events()
            .iter()
            .rev()
            .find_map(|e| e.payload::<EventDevCtrlDone>().filter(|d| d.seq == seq))
            .expect("device-control reply")
    }

    pub fn push_devctrl(&mut self, msg: &DevCtrlMsg) {
        let (state, entries, count) = DEVCTRL;
        mem::write_pod(
            &mut self.ram,
            entries + 64 * u64::from(self.devctrl_wptr),
            msg,
        )
        .unwrap();
        self.devctrl_wptr = (self.devctrl_wptr + 1) % count;
        mem::write_u32(&mut self.ram, state + RING_WPTR_OFFSET, self.devctrl_wptr).unwrap();
        self.send(
            mbox::EP_DOORBELL,
            mbox::message(mbox::MSG_DOORBELL, mbox::DOORBELL_DEVCTRL),
        );
    }

    pub fn bind_vm(&mut self, vm: u32) {
        let root = self.pt.root();
        let r = self.devctrl(&DevCtrlBindVm { vm, _pad: 0, root });
        assert_eq!(r.status, DEVCTRL_OK);
    }

    /// Creates queue `id` (stamp slot = id) and returns the reply status.
    pub fn create_queue_status(
        &mut self,
        id: u32,
        ty: PipeType,
        priority: u32,
        stamp_init: u32,
    ) -> u32 {
        let ring = QUEUES + u64::from(id) * 0x1000 + 0x400;
        let state = QUEUES + u64::from(id) * 0x1000;
        let r = self.devctrl(&DevCtrlCreateQueue {
            queue: id,
            vm: 0,
            pipe_type: ty as u32,
            priority,
            stamp_slot: id,
            stamp_init,
            ring_count: QUEUE_RING_COUNT,
            _pad: 0,
            ring,
            state,
        });
        if r.status == DEVCTRL_OK {
            self.queues.insert(
                id,
                QueueInfo {
                    id,
                    pipe: pipe_index(ty, priority),
                    slot: id,
                    ring,
                    state,
                    wptr: 0,
                    stamp: stamp_init,
                },
            );
        }
        r.status
    }

    pub fn create_queue(&mut self, id: u32, priority: u32) {
        assert_eq!(
            self.create_queue_status(id, PipeType::Compute, priority, 0),
            DEVCTRL_OK
        );
    }

    /// Writes a command buffer into GPU memory and returns its GPU address.
    pub fn write_cmdbuf(&mut self, cmds: &[u8]) -> u64 {
        let offset = self.cmdbuf_next;
        self.cmdbuf_next += (cmds.len() as u64).next_multiple_of(64).max(64);
        assert!(self.cmdbuf_next <= DATA_SIZE, "out of command-buffer space");
        self.ram.write(DATA + offset, cmds).unwrap();
        GPU_VA + offset
    }

    /// Submits a command buffer on queue `id` without ringing the doorbell; returns the stamp
    /// the entry will reach.
    pub fn queue_entry(&mut self, id: u32, cmds: &[u8]) -> u32 {
        let va = self.write_cmdbuf(cmds);
        self.queue_raw(id, QueueEntry::cmdbuf(va, cmds.len() as u32))
    }

    /// Submits a wait entry on queue `id` without ringing the doorbell; returns the stamp the
    /// entry will reach.
    pub fn queue_wait(&mut self, id: u32, slot: u32, value: u32) -> u32 {
        self.queue_raw(id, QueueEntry::wait(slot, value))
    }

    /// Submits `entry` as it is on queue `id` without ringing the doorbell; returns the stamp
    /// the entry will reach.
    pub fn queue_raw(&mut self, id: u32, entry: QueueEntry) -> u32 {
        let q = self.queues.get_mut(&id).expect("queue");
        mem::write_pod(&mut self.ram, q.ring + 16 * u64::from(q.wptr), &entry).unwrap();
        q.wptr = (q.wptr + 1) % QUEUE_RING_COUNT;
        q.stamp = q.stamp.wrapping_add(vagx_abi::STAMP_STEP);
        let (state, wptr, stamp) = (q.state, q.wptr, q.stamp);
        mem::write_u32(&mut self.ram, state + QUEUE_WPTR_OFFSET, wptr).unwrap();
        self.post(id, &PipeMsg::new(id, wptr));
        stamp
    }

    /// Posts a pipe message (ABI 1.7) that repeats queue `id`'s `wptr` and says that its entry
    /// of stamp `stamp` is due in `due_us` µs, without ringing the doorbell.
    pub fn post_deadline(&mut self, id: u32, stamp: u32, due_us: i32) {
        let wptr = self.queues[&id].wptr;
        self.post(id, &PipeMsg::with_deadline(id, wptr, stamp, due_us));
    }

    /// Writes `msg` to queue `id`'s pipe.
    pub fn post(&mut self, id: u32, msg: &PipeMsg) {
        let pipe = self.queues[&id].pipe;
        let pipe_desc = self.init.pipes[pipe];
        let pw = &mut self.pipe_wptr[pipe];
        mem::write_pod(&mut self.ram, pipe_desc.entries + 16 * u64::from(*pw), msg).unwrap();
        *pw = (*pw + 1) % pipe_desc.count;
        let pw = *pw;
        mem::write_u32(&mut self.ram, pipe_desc.state + RING_WPTR_OFFSET, pw).unwrap();
    }

    /// Submits and rings the doorbell; returns the stamp the entry will reach.
    pub fn submit(&mut self, id: u32, cmds: &[u8]) -> u32 {
        let stamp = self.queue_entry(id, cmds);
        self.kick();
        stamp
    }

    pub fn kick(&mut self) {
        self.send(
            mbox::EP_DOORBELL,
            mbox::message(mbox::MSG_DOORBELL, mbox::DOORBELL_KICK),
        );
    }

    /// Runs the device to its deadline `t` (as a shell's timer does) and checks that it made
    /// progress: a deadline that does not move on would make a shell's timer fire forever.
    fn step_to(&mut self, t: u64) {
        self.now = t.max(self.now);
        self.dev.advance(&mut self.ram, self.now);
        if let Some(next) = self.dev.next_deadline() {
            assert!(
                next > self.now,
                "livelock: the device asks to run at {next} after running to {}",
                self.now
            );
        }
    }

    /// Advances device time by `ns`, stepping through every deadline.
    pub fn run_for(&mut self, ns: u64) {
        let end = self.now + ns;
        while let Some(t) = self.dev.next_deadline().filter(|&t| t <= end) {
            self.step_to(t);
        }
        self.now = end;
        self.dev.advance(&mut self.ram, end);
    }

    /// Runs until `slot` reaches `stamp` or `limit` ns pass; returns the time it took.
    pub fn run_until_stamp(&mut self, slot: u32, stamp: u32, limit: u64) -> Option<u64> {
        let start = self.now;
        loop {
            if vagx_abi::stamp_passed(self.stamp(slot), stamp) {
                return Some(self.now - start);
            }
            let next = self.dev.next_deadline()?;
            if next > start + limit {
                return None;
            }
            self.step_to(next);
        }
    }

    pub fn stamp(&mut self, slot: u32) -> u32 {
        mem::read_u32(&mut self.ram, STAMPS + 4 * u64::from(slot)).unwrap()
    }

    pub fn done(&mut self, id: u32) -> u32 {
        let state = self.queues[&id].state;
        mem::read_u32(&mut self.ram, state + QUEUE_DONE_OFFSET).unwrap()
    }

    /// Reads the new events from the event ring (also recorded in `seen`).
    pub fn events(&mut self) -> Vec<EventMsg> {
        let (state, entries, count) = EVENT;
        let mut out = Vec::new();
        let wptr = mem::read_u32(&mut self.ram, state + RING_WPTR_OFFSET).unwrap();
        while self.event_rptr != wptr {
            let e: EventMsg =
                mem::read_pod(&mut self.ram, entries + 64 * u64::from(self.event_rptr)).unwrap();
            out.push(e);
            self.event_rptr = (self.event_rptr + 1) % count;
        }
        mem::write_u32(&mut self.ram, state + RING_RPTR_OFFSET, self.event_rptr).unwrap();
        self.seen.extend(out.iter().copied());
        out
    }

    /// Asks for fresh statistics (`FLUSH`) and reads every sample on the stats ring.
    pub fn stats(&mut self) -> Vec<StatsMsg> {
        assert_eq!(self.devctrl(&DevCtrlFlush { _pad: 0 }).status, DEVCTRL_OK);
        let (state, entries, count) = STATS;
        let mut out = Vec::new();
        let wptr = mem::read_u32(&mut self.ram, state + RING_WPTR_OFFSET).unwrap();
        while self.stats_rptr != wptr {
            let size = u64::from(STATS_MSG_SIZE);
            let m: StatsMsg =
                mem::read_pod(&mut self.ram, entries + size * u64::from(self.stats_rptr)).unwrap();
            out.push(m);
            self.stats_rptr = (self.stats_rptr + 1) % count;
        }
        mem::write_u32(&mut self.ram, state + RING_RPTR_OFFSET, self.stats_rptr).unwrap();
        out
    }

    /// The `EVENT_ENTRY_ERROR`s read so far (call [`Harness::events`] first).
    pub fn entry_errors(&self) -> Vec<EventEntryError> {
        self.seen
            .iter()
            .filter_map(|e| e.payload::<EventEntryError>())
            .collect()
    }

    pub fn pending(&mut self) -> PendingTable {
        mem::read_pod(&mut self.ram, PENDING).unwrap()
    }

    /// Reads `len` bytes of GPU memory at `va` (in the data area).
    pub fn read_gpu(&mut self, va: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        self.ram.read(DATA + (va - GPU_VA), &mut buf).unwrap();
        buf
    }

    pub fn write_gpu(&mut self, va: u64, bytes: &[u8]) {
        self.ram.write(DATA + (va - GPU_VA), bytes).unwrap();
    }
}

/// The bytes of a command.
pub fn cmd<T: Command>(c: &T) -> Vec<u8> {
    pod::as_bytes(c).to_vec()
}

/// Concatenates commands into a command buffer.
pub fn cmdbuf(cmds: &[Vec<u8>]) -> Vec<u8> {
    cmds.concat()
}

/// `WRITE32 value at address`.
pub fn write32(address: u64, value: u32) -> Vec<u8> {
    cmd(&vagx_abi::cmd::CmdWrite32 {
        header: vagx_abi::cmd::CmdWrite32::HEADER,
        address,
        value,
        _pad: 0,
    })
}

/// `DELAY ns`.
pub fn delay(ns: u64) -> Vec<u8> {
    cmd(&vagx_abi::cmd::CmdDelay {
        header: vagx_abi::cmd::CmdDelay::HEADER,
        ns,
    })
}

/// `NOP`.
pub fn nop() -> Vec<u8> {
    cmd(&vagx_abi::cmd::CmdNop {
        header: vagx_abi::cmd::CmdNop::HEADER,
    })
}

/// `DEBUG_HANG`.
pub fn hang() -> Vec<u8> {
    cmd(&vagx_abi::cmd::CmdDebugHang {
        header: vagx_abi::cmd::CmdDebugHang::HEADER,
    })
}

/// Data area for results, well below the command buffers.
pub const OUT: u64 = GPU_VA + 0x1000;

/// The little-endian `u32` at GPU address `va`.
pub fn read32(h: &mut Harness, va: u64) -> u32 {
    let b = h.read_gpu(va, 4);
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}
