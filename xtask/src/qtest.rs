// SPDX-License-Identifier: GPL-2.0 OR MIT

//! qtest tests: the vagx device in the real QEMU binary, driven without a guest kernel.
//!
//! QEMU runs with `-accel qtest -qtest stdio`: this module programs PCI config space through
//! the 0xcf8/0xcfc ports, writes init data, rings and page tables into guest RAM, rings the
//! device's mailbox, steps the virtual clock and reads back stamps, results and the MSI-X
//! message (its address points at RAM, so the interrupt is an observable memory write).

use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Child, ChildStdin, Command, Stdio},
    sync::mpsc::{self, Receiver},
    time::Duration,
};

use anyhow::{anyhow, bail, ensure, Context, Result};
use vagx_abi::{
    channels::*,
    cmd::*,
    init::{InitData, RingDesc, INIT_MAGIC, RING_RPTR_OFFSET, RING_WPTR_OFFSET},
    mbox, mmu, pci, pod,
    queue::{QueueEntry, QUEUE_DONE_OFFSET, QUEUE_WPTR_OFFSET},
    regs, PipeType, NUM_PIPES, STAMP_STEP,
};
use vagx_fw::{
    mem::{self, BusError, Memory},
    mmu::PageTableBuilder,
};

use crate::{ktap::Tally, qemu};

/// How long QEMU may take to answer one qtest command.
const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

/// Where the tests place BAR0 and BAR1.
const BAR0: u64 = 0xfe00_0000;
const BAR1: u64 = 0xfe01_0000;

/// Guest RAM layout (the machine has 128 MiB; the first MiB is left to the firmware blobs).
const BASE: u64 = 0x0100_0000;
const INIT: u64 = BASE;
const STAMPS: u64 = BASE + 0x1000;
const PENDING: u64 = BASE + 0x2000;
const DEVCTRL: (u64, u64, u32) = (BASE + 0x4000, BASE + 0x5000, 64);
const EVENT: (u64, u64, u32) = (BASE + 0x6000, BASE + 0x7000, 64);
const FWLOG: (u64, u64, u32) = (BASE + 0x8000, BASE + 0x9000, 32);
const STATS: (u64, u64, u32) = (BASE + 0xa000, BASE + 0xb000, 64);
const PIPES: u64 = BASE + 0x10000;
const QUEUE_STATE: u64 = BASE + 0x20000;
const QUEUE_RING: u64 = BASE + 0x21000;
const TABLES: u64 = BASE + 0x100000;
const DATA: u64 = BASE + 0x400000;
const GPU_VA: u64 = 0x1000_0000;
const MSI_ADDRESS: u64 = BASE + 0x3000;
const MSI_DATA: u32 = 0x00c0_ffee;

/// A QEMU process speaking the qtest protocol.
pub struct Qtest {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Qtest {
    /// Starts QEMU with the given `-device` arguments.
    fn start(qemu_bin: &Path, devices: &[&str]) -> Result<Self> {
        Self::start_with(qemu_bin, devices, &[], None)
    }

    /// Starts QEMU with `-device` arguments, extra arguments, and stderr to `stderr` if given.
    fn start_with(
        qemu_bin: &Path,
        devices: &[&str],
        extra: &[&str],
        stderr: Option<&Path>,
    ) -> Result<Self> {
        let mut cmd = Command::new(qemu_bin);
        for dir in qemu::BIOS_DIRS {
            cmd.arg("-L").arg(dir);
        }
        cmd.args(["-machine", "pc", "-accel", "qtest", "-qtest", "stdio"])
            .args([
                "-display",
                "none",
                "-nodefaults",
                "-m",
                "128M",
                "-qtest-log",
                "/dev/null",
            ]);
        for d in devices {
            cmd.args(["-device", d]);
        }
        cmd.args(extra);
        let err = match stderr {
            Some(path) => Stdio::from(std::fs::File::create(path)?),
            None => Stdio::null(),
        };
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {}", qemu_bin.display()))?;
        let stdin = child.stdin.take().context("qtest stdin")?;
        let stdout = child.stdout.take().context("qtest stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            child,
            stdin,
            lines,
        })
    }

    /// Sends one command and returns the text after `OK`.
    fn cmd(&mut self, line: &str) -> Result<String> {
        writeln!(self.stdin, "{line}").context("writing to QEMU")?;
        loop {
            let reply = self
                .lines
                .recv_timeout(REPLY_TIMEOUT)
                .map_err(|_| anyhow!("QEMU did not answer {line:?} (exited or hung)"))?;
            if reply.starts_with("IRQ") {
                continue;
            }
            return match reply.strip_prefix("OK") {
                Some(rest) => Ok(rest.trim().to_owned()),
                None => Err(anyhow!("QEMU answered {reply:?} to {line:?}")),
            };
        }
    }

    fn number(&mut self, line: &str) -> Result<u64> {
        let text = self.cmd(line)?;
        let digits = text.trim_start_matches("0x");
        u64::from_str_radix(digits, 16).with_context(|| format!("reply {text:?} to {line:?}"))
    }

    fn readl(&mut self, addr: u64) -> Result<u32> {
        // CAST: `readl` answers with a 32-bit value.
        Ok(self.number(&format!("readl {addr:#x}"))? as u32)
    }

    fn readw(&mut self, addr: u64) -> Result<u16> {
        // CAST: `readw` answers with a 16-bit value.
        Ok(self.number(&format!("readw {addr:#x}"))? as u16)
    }

    fn writel(&mut self, addr: u64, value: u32) -> Result<()> {
        self.cmd(&format!("writel {addr:#x} {value:#x}")).map(drop)
    }

    fn clock_step(&mut self, ns: u64) -> Result<()> {
        self.cmd(&format!("clock_step {ns}")).map(drop)
    }

    fn cfg_addr(dev: u32, reg: u32) -> u32 {
        0x8000_0000 | (dev << 11) | (reg & 0xfc)
    }

    fn cfg_read(&mut self, dev: u32, reg: u32) -> Result<u32> {
        self.cmd(&format!("outl 0xcf8 {:#x}", Self::cfg_addr(dev, reg)))?;
        // CAST: `inl` answers with a 32-bit value.
        Ok(self.number("inl 0xcfc")? as u32)
    }

    fn cfg_write(&mut self, dev: u32, reg: u32, value: u32) -> Result<()> {
        self.cmd(&format!("outl 0xcf8 {:#x}", Self::cfg_addr(dev, reg)))?;
        self.cmd(&format!("outl 0xcfc {value:#x}")).map(drop)
    }

    /// Slots on bus 0 holding a vagx function.
    fn find_vagx(&mut self) -> Result<Vec<u32>> {
        let want = u32::from(pci::DEVICE_ID) << 16 | u32::from(pci::VENDOR_ID);
        let mut found = Vec::new();
        for dev in 0..32 {
            if self.cfg_read(dev, 0)? == want {
                found.push(dev);
            }
        }
        Ok(found)
    }

    /// Places BAR0 at `bar0` and BAR1 at `bar1`, and enables memory decoding and bus mastering.
    fn enable(&mut self, dev: u32, bar0: u64, bar1: u64) -> Result<()> {
        // CAST: the BARs are placed below 4 GiB.
        self.cfg_write(dev, 0x10, bar0 as u32)?;
        self.cfg_write(dev, 0x14, bar1 as u32)?;
        let cmd = self.cfg_read(dev, 0x04)?;
        self.cfg_write(dev, 0x04, (cmd & 0xffff_0000) | 0x6)
    }
}

impl Drop for Qtest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Memory for Qtest {
    fn read(&mut self, address: u64, buf: &mut [u8]) -> Result<(), BusError> {
        for (i, chunk) in buf.chunks_mut(2048).enumerate() {
            let at = address + (i * 2048) as u64;
            let text = self
                .cmd(&format!("read {at:#x} {}", chunk.len()))
                .map_err(|_| BusError { address: at })?;
            let hex = text.trim_start_matches("0x");
            for (j, byte) in chunk.iter_mut().enumerate() {
                *byte = hex
                    .get(2 * j..2 * j + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(BusError { address: at })?;
            }
        }
        Ok(())
    }

    fn write(&mut self, address: u64, buf: &[u8]) -> Result<(), BusError> {
        for (i, chunk) in buf.chunks(2048).enumerate() {
            let at = address + (i * 2048) as u64;
            let hex: String = chunk.iter().map(|b| format!("{b:02x}")).collect();
            self.cmd(&format!("write {at:#x} {} 0x{hex}", chunk.len()))
                .map_err(|_| BusError { address: at })?;
        }
        Ok(())
    }
}

/// A driver for one vagx function over qtest: just enough to boot, submit and observe.
struct Driver {
    qt: Qtest,
    bar0: u64,
    seq: u32,
    devctrl_wptr: u32,
    event_rptr: u32,
    init: InitData,
}

fn ring(d: (u64, u64, u32), size: u32) -> RingDesc {
    RingDesc {
        state: d.0,
        entries: d.1,
        count: d.2,
        entry_size: size,
    }
}

impl Driver {
    fn new(mut qt: Qtest) -> Result<Self> {
        let devs = qt.find_vagx()?;
        let dev = *devs.first().context("no vagx function on bus 0")?;
        qt.enable(dev, BAR0, BAR1)?;
        let mut init = InitData {
            magic: INIT_MAGIC,
            abi_version: regs::ABI_VERSION_VALUE,
            devctrl: ring(DEVCTRL, DEVCTRL_MSG_SIZE),
            event: ring(EVENT, EVENT_MSG_SIZE),
            fwlog: ring(FWLOG, LOG_MSG_SIZE),
            stats: ring(STATS, STATS_MSG_SIZE),
            pipes: [RingDesc::default(); NUM_PIPES],
            stamps: STAMPS,
            pending: PENDING,
            watchdog_ns: 0,
        };
        for (i, p) in init.pipes.iter_mut().enumerate() {
            let base = PIPES + i as u64 * 0x1000;
            *p = ring((base, base + 0x800, 16), PIPE_MSG_SIZE);
        }
        Ok(Self {
            qt,
            bar0: BAR0,
            seq: 0,
            devctrl_wptr: 0,
            event_rptr: 0,
            init,
        })
    }

    fn reg(&mut self, reg: usize) -> Result<u32> {
        self.qt.readl(self.bar0 + reg as u64)
    }

    fn set_reg(&mut self, reg: usize, value: u32) -> Result<()> {
        self.qt.writel(self.bar0 + reg as u64, value)
    }

    fn send(&mut self, ep: u32, msg: u64) -> Result<()> {
        // CAST: the message's halves.
        self.set_reg(regs::MBOX_H2F_LO, msg as u32)?;
        self.set_reg(regs::MBOX_H2F_HI, (msg >> 32) as u32)?;
        self.set_reg(regs::MBOX_H2F_SEND, ep)
    }

    fn mailbox(&mut self) -> Result<Vec<u64>> {
        let mut out = Vec::new();
        while self.reg(regs::MBOX_F2H_COUNT)? > 0 {
            let lo = u64::from(self.reg(regs::MBOX_F2H_LO)?);
            let hi = u64::from(self.reg(regs::MBOX_F2H_HI)?);
            out.push(hi << 32 | lo);
            self.set_reg(regs::MBOX_F2H_COUNT, 0)?;
        }
        Ok(out)
    }

    fn boot(&mut self) -> Result<()> {
        let zero = vec![0u8; 0x20000];
        self.qt.write(BASE, &zero).map_err(|e| anyhow!("{e:?}"))?;
        let init = self.init;
        mem::write_pod(&mut self.qt, INIT, &init).map_err(|e| anyhow!("{e:?}"))?;
        self.set_reg(regs::IRQ_MASK, regs::IRQ_ALL)?;
        self.send(mbox::EP_FIRMWARE, mbox::message(mbox::MSG_INIT, INIT))?;
        let msgs = self.mailbox()?;
        ensure!(
            msgs.contains(&mbox::message(mbox::MSG_INIT_DONE, 0)),
            "no successful INIT_DONE in {msgs:x?}"
        );
        ensure!(
            self.reg(regs::FW_STATE)? == regs::FW_STATE_RUNNING,
            "firmware not running"
        );
        Ok(())
    }

    fn events(&mut self) -> Result<Vec<EventMsg>> {
        let (state, entries, count) = EVENT;
        let wptr =
            mem::read_u32(&mut self.qt, state + RING_WPTR_OFFSET).map_err(|e| anyhow!("{e:?}"))?;
        let mut out = Vec::new();
        while self.event_rptr != wptr {
            let at = entries + 64 * u64::from(self.event_rptr);
            out.push(mem::read_pod(&mut self.qt, at).map_err(|e| anyhow!("{e:?}"))?);
            self.event_rptr = (self.event_rptr + 1) % count;
        }
        let rptr = self.event_rptr;
        mem::write_u32(&mut self.qt, state + RING_RPTR_OFFSET, rptr)
            .map_err(|e| anyhow!("{e:?}"))?;
        Ok(out)
    }

    fn devctrl<T: DevCtrlArgs>(&mut self, args: &T) -> Result<EventDevCtrlDone> {
        self.seq += 1;
        let (seq, (state, entries, count)) = (self.seq, DEVCTRL);
        let msg = DevCtrlMsg::new(seq, args);
        let at = entries + 64 * u64::from(self.devctrl_wptr);
        mem::write_pod(&mut self.qt, at, &msg).map_err(|e| anyhow!("{e:?}"))?;
        self.devctrl_wptr = (self.devctrl_wptr + 1) % count;
        let wptr = self.devctrl_wptr;
        mem::write_u32(&mut self.qt, state + RING_WPTR_OFFSET, wptr)
            .map_err(|e| anyhow!("{e:?}"))?;
        self.send(
            mbox::EP_DOORBELL,
            mbox::message(mbox::MSG_DOORBELL, mbox::DOORBELL_DEVCTRL),
        )?;
        self.events()?
            .iter()
            .find_map(|e| e.payload::<EventDevCtrlDone>().filter(|d| d.seq == seq))
            .context("no device-control reply")
    }

    /// Maps the data area at `GPU_VA` read-write in VM 0 and binds it.
    fn bind_vm(&mut self) -> Result<()> {
        let mut pt = PageTableBuilder::new(&mut self.qt, TABLES).map_err(|e| anyhow!("{e:?}"))?;
        pt.map(
            &mut self.qt,
            GPU_VA,
            DATA,
            0x10_0000,
            mmu::PTE_READ | mmu::PTE_WRITE,
        )
        .map_err(|e| anyhow!("{e:?}"))?;
        let r = self.devctrl(&DevCtrlBindVm {
            vm: 0,
            _pad: 0,
            root: pt.root(),
        })?;
        ensure!(r.status == DEVCTRL_OK, "BIND_VM status {}", r.status);
        Ok(())
    }

    fn create_queue(&mut self, id: u32) -> Result<()> {
        let r = self.devctrl(&DevCtrlCreateQueue {
            queue: id,
            vm: 0,
            pipe_type: PipeType::Compute as u32,
            priority: 1,
            stamp_slot: id,
            stamp_init: 0,
            ring_count: 16,
            _pad: 0,
            ring: QUEUE_RING,
            state: QUEUE_STATE,
        })?;
        ensure!(r.status == DEVCTRL_OK, "CREATE_QUEUE status {}", r.status);
        Ok(())
    }

    /// Submits one entry (the queue's first) on queue `id`, whose command buffer is `cmds`.
    fn submit_first(&mut self, id: u32, cmds: &[u8]) -> Result<()> {
        let cmdbuf = DATA + 0x8_0000;
        self.qt.write(cmdbuf, cmds).map_err(|e| anyhow!("{e:?}"))?;
        let entry = QueueEntry {
            cmdbuf: GPU_VA + 0x8_0000,
            // CAST: test command buffers are small.
            len: cmds.len() as u32,
            flags: 0,
        };
        let q = &mut self.qt;
        mem::write_pod(q, QUEUE_RING, &entry).map_err(|e| anyhow!("{e:?}"))?;
        mem::write_u32(q, QUEUE_STATE + QUEUE_WPTR_OFFSET, 1).map_err(|e| anyhow!("{e:?}"))?;
        let pipe = self.init.pipes[vagx_abi::pipe_index(PipeType::Compute, 1)];
        let msg = PipeMsg {
            queue: id,
            wptr: 1,
            deadline_stamp: 0,
            due_us: 0,
        };
        mem::write_pod(&mut self.qt, pipe.entries, &msg).map_err(|e| anyhow!("{e:?}"))?;
        mem::write_u32(&mut self.qt, pipe.state + RING_WPTR_OFFSET, 1)
            .map_err(|e| anyhow!("{e:?}"))?;
        self.send(
            mbox::EP_DOORBELL,
            mbox::message(mbox::MSG_DOORBELL, mbox::DOORBELL_KICK),
        )
    }

    fn read_u32(&mut self, addr: u64) -> Result<u32> {
        mem::read_u32(&mut self.qt, addr).map_err(|e| anyhow!("{e:?}"))
    }
}

fn bytes<T: pod::Pod>(v: &T) -> Vec<u8> {
    pod::as_bytes(v).to_vec()
}

fn write32(address: u64, value: u32) -> Vec<u8> {
    bytes(&CmdWrite32 {
        header: CmdWrite32::HEADER,
        address,
        value,
        _pad: 0,
    })
}

/// Config space identity and the identification registers.
fn identity(qemu_bin: &Path) -> Result<()> {
    let mut qt = Qtest::start(qemu_bin, &["vagx"])?;
    let devs = qt.find_vagx()?;
    ensure!(devs.len() == 1, "found {} vagx functions", devs.len());
    let dev = devs[0];
    let class_rev = qt.cfg_read(dev, 0x08)?;
    ensure!(
        class_rev >> 8 == pci::CLASS_CODE,
        "class {:#x}",
        class_rev >> 8
    );
    ensure!(
        class_rev & 0xff == u32::from(pci::REVISION),
        "revision {}",
        class_rev & 0xff
    );
    qt.enable(dev, BAR0, BAR1)?;
    ensure!(qt.readl(BAR0 + regs::ID as u64)? == regs::ID_MAGIC, "ID");
    ensure!(
        qt.readl(BAR0 + regs::ABI_VERSION as u64)? == regs::ABI_VERSION_VALUE,
        "ABI_VERSION"
    );
    ensure!(qt.readl(BAR0 + regs::UNITS as u64)? == 2, "UNITS");
    ensure!(
        qt.readl(BAR0 + regs::FW_STATE as u64)? == regs::FW_STATE_OFF,
        "FW_STATE"
    );
    Ok(())
}

/// Bad accesses are refused without killing QEMU; SCRATCH works; instances are independent.
fn registers_and_two_instances(qemu_bin: &Path) -> Result<()> {
    let log = crate::paths::Paths::new().log("qtest-guest-errors")?;
    let devices = ["vagx,id=gpu0", "vagx,id=gpu1,units=3"];
    let mut qt = Qtest::start_with(qemu_bin, &devices, &["-d", "guest_errors"], Some(&log))?;
    let devs = qt.find_vagx()?;
    ensure!(devs.len() == 2, "found {} vagx functions", devs.len());
    let other0 = 0xfe10_0000;
    qt.enable(devs[0], BAR0, BAR1)?;
    qt.enable(devs[1], other0, other0 + 0x1_0000)?;
    qt.writel(BAR0 + regs::SCRATCH as u64, 0x1234_5678)?;
    qt.writel(other0 + regs::SCRATCH as u64, 0x9abc_def0)?;
    ensure!(
        qt.readl(BAR0 + regs::SCRATCH as u64)? == 0x1234_5678,
        "gpu0 SCRATCH"
    );
    ensure!(
        qt.readl(other0 + regs::SCRATCH as u64)? == 0x9abc_def0,
        "gpu1 SCRATCH"
    );
    ensure!(
        qt.readl(other0 + regs::UNITS as u64)? == 3,
        "gpu1 UNITS property"
    );
    // Refused: write to a read-only register, a 2-byte read, a register-less offset, a bad
    // reset magic.
    qt.writel(BAR0 + regs::ID as u64, 0)?;
    ensure!(
        qt.readl(BAR0 + regs::ID as u64)? == regs::ID_MAGIC,
        "ID changed"
    );
    ensure!(
        qt.readw(BAR0 + regs::ID as u64)? == 0,
        "2-byte read answered"
    );
    ensure!(
        qt.readl(BAR0 + 0xffc)? == 0,
        "register-less offset answered"
    );
    qt.writel(BAR0 + regs::RESET as u64, 1)?;
    ensure!(
        qt.readl(BAR0 + regs::SCRATCH as u64)? == 0x1234_5678,
        "bad RESET reset"
    );
    qt.writel(BAR0 + regs::RESET as u64, regs::RESET_MAGIC)?;
    ensure!(
        qt.readl(BAR0 + regs::SCRATCH as u64)? == 0,
        "RESET did not reset"
    );
    ensure!(
        qt.readl(other0 + regs::SCRATCH as u64)? == 0x9abc_def0,
        "RESET reached gpu1"
    );
    Ok(())
}

/// Boot, VM, queue, real work in guest memory, stamps, and the MSI-X message.
fn boot_submit_and_interrupt(qemu_bin: &Path) -> Result<()> {
    let mut d = Driver::new(Qtest::start(qemu_bin, &["vagx"])?)?;
    let dev = d.qt.find_vagx()?[0];
    // MSI-X: table entry 0 at BAR1 offset 0 (the exclusive BAR's layout), pointing at RAM.
    let (table, cap) = msix_capability(&mut d.qt, dev)?;
    ensure!(table == 0, "MSI-X table at BAR1 offset {table:#x}");
    d.qt.writel(BAR1, MSI_ADDRESS as u32)?;
    d.qt.writel(BAR1 + 4, 0)?;
    d.qt.writel(BAR1 + 8, MSI_DATA)?;
    d.qt.writel(BAR1 + 12, 0)?;
    let ctrl = d.qt.cfg_read(dev, cap)?;
    d.qt.cfg_write(dev, cap, ctrl | 1 << 31)?;
    d.boot()?;
    ensure!(
        d.read_u32(MSI_ADDRESS)? == MSI_DATA,
        "no MSI-X write after boot"
    );
    d.qt.write(MSI_ADDRESS, &[0; 4])
        .map_err(|e| anyhow!("{e:?}"))?;
    d.bind_vm()?;
    d.create_queue(5)?;
    d.mailbox()?;
    d.events()?;
    let out = GPU_VA + 0x100;
    let cmds = [
        write32(out, 0xfeed_f00d),
        bytes(&CmdFill {
            header: CmdFill::HEADER,
            dst: out + 0x10,
            len: 8,
            pattern: 0x0102_0304,
            _pad: 0,
        }),
        bytes(&CmdChecksum {
            header: CmdChecksum::HEADER,
            src: out + 0x10,
            dst: out + 0x20,
            len: 8,
        }),
    ]
    .concat();
    d.submit_first(5, &cmds)?;
    // The entry takes 1000 + 3 * 200 ns and a few ns of traffic; nothing happens before time
    // moves.
    ensure!(
        d.read_u32(STAMPS + 4 * 5)? == 0,
        "stamp moved before the clock did"
    );
    d.qt.clock_step(1_000_000)?;
    ensure!(
        d.read_u32(STAMPS + 4 * 5)? == STAMP_STEP,
        "stamp did not advance"
    );
    ensure!(
        d.read_u32(QUEUE_STATE + QUEUE_DONE_OFFSET)? == 1,
        "done pointer"
    );
    ensure!(d.read_u32(DATA + 0x100)? == 0xfeed_f00d, "WRITE32 result");
    let mut fill = [0u8; 8];
    d.qt.read(DATA + 0x110, &mut fill)
        .map_err(|e| anyhow!("{e:?}"))?;
    ensure!(fill == [4, 3, 2, 1, 4, 3, 2, 1], "FILL result {fill:?}");
    let mut fnv = 0xcbf2_9ce4_8422_2325_u64;
    for b in fill {
        fnv = (fnv ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut sum = [0u8; 8];
    d.qt.read(DATA + 0x120, &mut sum)
        .map_err(|e| anyhow!("{e:?}"))?;
    ensure!(u64::from_le_bytes(sum) == fnv, "CHECKSUM result");
    ensure!(
        d.read_u32(MSI_ADDRESS)? == MSI_DATA,
        "no MSI-X write for the completion"
    );
    let stamps = d
        .events()?
        .iter()
        .filter_map(|e| e.payload::<EventStamps>())
        .any(|s| s.is_set(5));
    ensure!(stamps, "no STAMPS event for slot 5");
    Ok(())
}

/// A command touching an unmapped address halts the firmware with a FAULT event.
fn fault_halts(qemu_bin: &Path) -> Result<()> {
    let mut d = Driver::new(Qtest::start(qemu_bin, &["vagx"])?)?;
    d.boot()?;
    d.bind_vm()?;
    d.create_queue(1)?;
    d.events()?;
    d.submit_first(1, &write32(0x7000_0000, 1))?;
    d.qt.clock_step(1_000_000)?;
    ensure!(
        d.reg(regs::FW_STATE)? == regs::FW_STATE_HALTED,
        "not halted"
    );
    let fault = d.events()?.iter().find_map(|e| e.payload::<EventFault>());
    let fault = fault.context("no FAULT event")?;
    ensure!(
        (fault.queue, fault.kind, fault.address) == (1, FAULT_UNMAPPED, 0x7000_0000),
        "fault {fault:?}"
    );
    Ok(())
}

/// INIT pointing outside guest RAM fails the boot with a reason; QEMU keeps running.
fn bad_init_fails_cleanly(qemu_bin: &Path) -> Result<()> {
    let mut d = Driver::new(Qtest::start(qemu_bin, &["vagx"])?)?;
    d.send(
        mbox::EP_FIRMWARE,
        mbox::message(mbox::MSG_INIT, 0xff_ffff_f000),
    )?;
    ensure!(
        d.reg(regs::FW_STATE)? == regs::FW_STATE_FAILED,
        "not FAILED"
    );
    ensure!(
        d.reg(regs::FW_ERROR)? == mbox::FwError::InitUnreadable as u32,
        "FW_ERROR"
    );
    // A doorbell before boot is dropped; the device still answers.
    d.send(
        mbox::EP_DOORBELL,
        mbox::message(mbox::MSG_DOORBELL, mbox::DOORBELL_KICK),
    )?;
    ensure!(d.reg(regs::ID)? == regs::ID_MAGIC, "device gone");
    Ok(())
}

/// `-trace vagx_*` shows doorbells, commands, completions and faults.
fn trace_events(qemu_bin: &Path) -> Result<()> {
    let log = crate::paths::Paths::new().log("qtest-trace")?;
    let qt = Qtest::start_with(qemu_bin, &["vagx"], &["-trace", "vagx_*"], Some(&log))?;
    let mut d = Driver::new(qt)?;
    d.boot()?;
    d.bind_vm()?;
    d.create_queue(2)?;
    d.submit_first(2, &[write32(GPU_VA, 1), write32(0x7000_0000, 1)].concat())?;
    d.qt.clock_step(1_000_000)?;
    drop(d);
    let text = std::fs::read_to_string(&log)?;
    for event in [
        "vagx_mailbox",
        "vagx_command",
        "vagx_fault",
        "vagx_halt",
        "vagx_irq",
    ] {
        ensure!(text.contains(event), "no {event} in {}", log.display());
    }
    ensure!(
        text.contains("vagx_fault queue 2 kind 1 address 0x70000000"),
        "fault trace lacks its fields; see {}",
        log.display()
    );
    Ok(())
}

/// Finds the MSI-X capability: returns (table offset in its BAR, capability config offset).
fn msix_capability(qt: &mut Qtest, dev: u32) -> Result<(u32, u32)> {
    let mut ptr = qt.cfg_read(dev, 0x34)? & 0xfc;
    for _ in 0..48 {
        if ptr == 0 {
            break;
        }
        let header = qt.cfg_read(dev, ptr)?;
        if header & 0xff == 0x11 {
            let table = qt.cfg_read(dev, ptr + 4)?;
            return Ok((table & !7, ptr));
        }
        ptr = (header >> 8) & 0xfc;
    }
    bail!("no MSI-X capability")
}

/// Runs every qtest test against `qemu_bin` and counts the results.
pub fn run(qemu_bin: &Path) -> Tally {
    type Test = fn(&Path) -> Result<()>;
    let tests: [(&str, Test); 6] = [
        ("identity", identity),
        ("registers_and_two_instances", registers_and_two_instances),
        ("boot_submit_and_interrupt", boot_submit_and_interrupt),
        ("fault_halts", fault_halts),
        ("bad_init_fails_cleanly", bad_init_fails_cleanly),
        ("trace_events", trace_events),
    ];
    let mut tally = Tally::default();
    for (i, (name, test)) in tests.iter().enumerate() {
        match test(qemu_bin) {
            Ok(()) => {
                tally.passed += 1;
                eprintln!("  qtest ok {} - {name}", i + 1);
            }
            Err(err) => {
                tally.failed += 1;
                eprintln!("  qtest not ok {} - {name}: {err:#}", i + 1);
            }
        }
    }
    tally
}
