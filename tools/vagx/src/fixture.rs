// SPDX-License-Identifier: GPL-2.0 OR MIT

//! What the in-VM tests and the workloads share: [`Ctx`] (a VM with one buffer, its CPU mapping
//! and a queue), errno assertions, the first device's debugfs (its counters and fault
//! injection) and rebinding a device.

use std::{io, os::fd::AsFd};

use anyhow::{bail, ensure, Context, Result};

use crate::{
    cmdbuf::CmdBuf,
    gpu::{sync_file_status, Gpu, Mapping, Sync},
    uapi,
};

/// Where a test context's buffer starts in its VM.
pub const BASE: u64 = 0x10_0000;
/// Bytes of command buffers at the start of the buffer.
const CMD_AREA: u64 = 64 * 1024;
/// Bytes of one command buffer slot.
pub const CMD_SLOT: u64 = 512;
/// Command buffer slots: jobs of one context that may be pending at once.
pub const CMD_SLOTS: u64 = CMD_AREA / CMD_SLOT;
/// Default size of a context's buffer.
pub const CTX_SIZE: u64 = 1 << 20;
/// How long a test waits for a job.
pub const WAIT_MS: i64 = 20_000;

/// A VM with one buffer mapped at [`BASE`], a CPU mapping of it and a queue.
pub struct Ctx<'g> {
    pub gpu: &'g Gpu,
    pub vm: u32,
    pub bo: u32,
    pub queue: u32,
    pub map: Mapping,
    next_cmd: std::cell::Cell<u64>,
}

impl<'g> Ctx<'g> {
    /// A context of `size` bytes at `priority`.
    pub fn new(gpu: &'g Gpu, priority: u32, size: u64) -> Result<Self> {
        let vm = gpu.vm_create().context("VM_CREATE")?;
        let bo = gpu.gem_create(size).context("GEM_CREATE")?;
        gpu.vm_map(vm, bo, BASE, size).context("VM_BIND map")?;
        let map = gpu.map(bo, usize::try_from(size)?).context("mmap")?;
        let queue = gpu.queue_create(vm, priority).context("QUEUE_CREATE")?;
        Ok(Self {
            gpu,
            vm,
            bo,
            queue,
            map,
            next_cmd: std::cell::Cell::new(0),
        })
    }

    /// A normal-priority context of the default size.
    pub fn normal(gpu: &'g Gpu) -> Result<Self> {
        Self::new(
            gpu,
            uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_NORMAL,
            CTX_SIZE,
        )
    }

    /// The GPU address of byte `offset` of the buffer (past the command area).
    pub fn va(&self, offset: u64) -> u64 {
        BASE + CMD_AREA + offset
    }

    /// The CPU offset of byte `offset` of the data area.
    pub fn off(&self, offset: u64) -> usize {
        usize::try_from(CMD_AREA + offset).expect("small")
    }

    /// Copies `cmds` into the command area and submits it with `syncs`.
    ///
    /// Slots are reused round-robin: at most [`CMD_SLOTS`] jobs of a context may be pending,
    /// or a later job's commands overwrite an earlier one's.
    pub fn run(&self, cmds: &CmdBuf, syncs: &[Sync]) -> io::Result<()> {
        self.run_flags(cmds, syncs, 0)
    }

    /// [`Ctx::run`] with SUBMIT's `flags`.
    pub fn run_flags(&self, cmds: &CmdBuf, syncs: &[Sync], flags: u32) -> io::Result<()> {
        self.run_full(cmds, syncs, flags, 0)
    }

    /// [`Self::run`] with a deadline (`CLOCK_MONOTONIC` ns, 0 for none).
    pub fn run_by(&self, cmds: &CmdBuf, syncs: &[Sync], deadline_ns: u64) -> io::Result<()> {
        self.run_full(cmds, syncs, 0, deadline_ns)
    }

    fn run_full(
        &self,
        cmds: &CmdBuf,
        syncs: &[Sync],
        flags: u32,
        deadline_ns: u64,
    ) -> io::Result<()> {
        let slot = self.next_cmd.get();
        self.next_cmd.set((slot + 1) % CMD_SLOTS);
        let at = slot * CMD_SLOT;
        assert!(
            u64::from(cmds.len()) <= CMD_SLOT,
            "command buffer too big for a slot"
        );
        self.map
            .write(usize::try_from(at).expect("small"), cmds.bytes());
        self.gpu
            .submit_full(self.queue, BASE + at, cmds.len(), syncs, flags, deadline_ns)
    }

    /// Submits `cmds` signalling a new syncobj and waits for it; returns the syncobj.
    pub fn run_and_wait(&self, cmds: &CmdBuf) -> Result<u32> {
        let s = self.gpu.syncobj()?;
        self.run(cmds, &[Sync::signal(s, 0)]).context("SUBMIT")?;
        self.gpu.wait(s, WAIT_MS).context("waiting for the job")?;
        Ok(s)
    }

    /// The error of the fence in binary syncobj `s`: `Ok(())` if it signalled without one.
    pub fn fence_result(&self, s: u32) -> Result<Result<(), i32>> {
        fence_result(self.gpu, s)
    }

    /// Whether the fence in binary syncobj `s` has not signalled yet.
    pub fn fence_pending(&self, s: u32) -> Result<bool> {
        let fd = self.gpu.export_sync_file(s).context("export sync_file")?;
        Ok(sync_file_status(fd.as_fd())? == Ok(false))
    }
}

impl Drop for Ctx<'_> {
    fn drop(&mut self) {
        let _ = self.gpu.queue_destroy(self.queue);
        let _ = self.gpu.vm_destroy(self.vm);
        let _ = self.gpu.gem_close(self.bo);
    }
}

/// The error of the fence in binary syncobj `s` of `gpu`: `Ok(())` if it signalled without one.
pub fn fence_result(gpu: &Gpu, s: u32) -> Result<Result<(), i32>> {
    let fd = gpu.export_sync_file(s).context("export sync_file")?;
    match sync_file_status(fd.as_fd())? {
        Ok(true) => Ok(Ok(())),
        Ok(false) => bail!("fence still pending"),
        Err(e) => Ok(Err(e)),
    }
}

/// Asserts that `r` failed with `errno`.
pub fn expect_errno<T: std::fmt::Debug>(r: io::Result<T>, errno: i32, what: &str) -> Result<()> {
    match r {
        Err(e) if e.raw_os_error() == Some(errno) => Ok(()),
        Err(e) => bail!("{what}: expected errno {errno}, got {e}"),
        Ok(v) => bail!("{what}: expected errno {errno}, succeeded with {v:?}"),
    }
}

/// The debugfs directory of the first vagx device, with debugfs mounted.
pub fn debugfs_dir() -> Result<std::path::PathBuf> {
    debugfs_dir_of(0)
}

/// The PCI address of GPU `index` (render-node order, as `Gpu::open_index` counts). Not PCI
/// address order: the driver's probe order, which numbers the nodes, may differ from it
/// after a reload.
pub fn pci_address_of(index: usize) -> Result<String> {
    let nodes = crate::gpu::Selection::One(index).nodes()?;
    let (_, node) = nodes
        .first()
        .with_context(|| format!("no vagx GPU {index}"))?;
    Ok(crate::gpu::pci_address(node)?)
}

/// The debugfs directory of GPU `index` (render-node order), with debugfs mounted.
pub fn debugfs_dir_of(index: usize) -> Result<std::path::PathBuf> {
    let root = std::path::Path::new("/sys/kernel/debug");
    if !root.join("dri").exists() {
        let status = std::process::Command::new("mount")
            .args(["-t", "debugfs", "debugfs", "/sys/kernel/debug"])
            .status()
            .context("running mount")?;
        ensure!(status.success(), "mounting debugfs: {status}");
    }
    Ok(root.join(format!("vagx-{}", pci_address_of(index)?)))
}

/// Arms a fault injection through debugfs.
pub fn inject(cmd: &str) -> Result<()> {
    inject_of(0, cmd)
}

/// Writes `cmd` to the debugfs `inject` file of GPU `index`.
pub fn inject_of(index: usize, cmd: &str) -> Result<()> {
    let path = debugfs_dir_of(index)?.join("inject");
    std::fs::write(&path, cmd).with_context(|| format!("writing {cmd:?} to {}", path.display()))
}

/// The text of a debugfs file of the first device.
pub fn debugfs_read(name: &str) -> Result<String> {
    let path = debugfs_dir()?.join(name);
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// A counter of the first device's driver, as debugfs `queues` shows it (`name N`).
pub fn driver_counter(name: &str) -> Result<u64> {
    driver_counter_of(0, name)
}

/// A counter of GPU `index`'s driver (render-node order), as [`driver_counter`].
pub fn driver_counter_of(index: usize, name: &str) -> Result<u64> {
    let path = debugfs_dir_of(index)?.join("queues");
    let queues =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut words = queues.split_whitespace();
    while let Some(w) = words.next() {
        if w == name {
            let v = words
                .next()
                .with_context(|| format!("{name} has no value"))?;
            return v.parse().with_context(|| format!("{name} {v}"));
        }
    }
    anyhow::bail!("debugfs queues shows no {name}: {queues}")
}

/// Unbinds and binds again the device at PCI `address`, then checks that it works.
pub fn rebind(address: &str) -> Result<()> {
    unbind(address)?;
    bind(address)?;
    first_device_works()
}

/// Unbinds the device at PCI `address` from the driver (as a hot-unplug would).
pub fn unbind(address: &str) -> Result<()> {
    std::fs::write("/sys/bus/pci/drivers/vagx/unbind", address)
        .with_context(|| format!("unbinding {address}"))
}

/// Binds the device at PCI `address` to the driver.
pub fn bind(address: &str) -> Result<()> {
    std::fs::write("/sys/bus/pci/drivers/vagx/bind", address)
        .with_context(|| format!("binding {address}"))
}

/// A job on the first device writes what it should.
pub fn first_device_works() -> Result<()> {
    let g = Gpu::open_first()?;
    let ctx = Ctx::normal(&g)?;
    let mut c = CmdBuf::new();
    c.write32(ctx.va(0), 9);
    ctx.run_and_wait(&c)?;
    ensure!(
        ctx.map.u32_at(ctx.off(0)) == 9,
        "device broken after rebinding"
    );
    Ok(())
}
