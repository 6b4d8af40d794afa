// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Buffer sharing through dma-bufs (PRIME): a vagx buffer exported and imported again, mapped
//! through its dma-buf, host memory from udmabuf computed on in place, a buffer of one GPU read
//! and written by another (in another process too), an import that outlives its exporter's
//! handle, file and device, and the bad inputs, each with its errno.
//!
//! The tests that need two GPUs are listed only when the boot has them.

use std::os::{
    fd::{AsFd, BorrowedFd},
    unix::fs::MetadataExt,
};

use anyhow::{ensure, Context, Result};

use crate::{
    cmdbuf::{fnv1a64, CmdBuf},
    dmabuf, every_gpu,
    fixture::{self, expect_errno, Ctx},
    gpu::{self, Gpu, Mapping},
    registry::{tests, Test},
    uapi,
};

/// Where a test maps a shared buffer in a consumer's VM (clear of the context's own buffer).
const SHARED_VA: u64 = 0x4000_0000;
/// Bytes of the shared buffers.
const SHARED_SIZE: u64 = 64 * 1024;

/// The suite: one-device tests, then those across GPUs if the boot has two or more.
pub fn tests() -> Vec<Test<'static>> {
    let mut all = tests![
        self_import_gives_the_same_handle_and_a_second_export_the_same_dma_buf,
        an_exported_buffer_is_read_and_written_through_its_dma_buf,
        udmabuf_memory_is_computed_on_in_place,
        bad_prime_input_gets_a_clear_errno,
        export_sync_file_of_a_shared_buffer_covers_the_gpu_work_on_it,
        import_sync_file_into_a_shared_buffer_holds_the_next_job_using_it,
        no_implicit_wait_skips_the_buffers_fences_and_still_adds_the_jobs,
    ];
    if every_gpu::listed_gpus() >= 2 {
        all.extend(tests![
            each_gpu_reads_and_writes_the_next_gpus_buffer,
            a_read_only_export_maps_only_read_only_on_another_gpu,
            another_process_computes_on_an_imported_buffer,
            an_import_outlives_its_exporters_handle_file_and_device,
            a_chain_gpu0_gpu1_gpu0_runs_in_order_through_shared_syncobjs,
            a_fault_at_the_head_of_a_cross_gpu_chain_fails_the_rest_unrun,
            the_tools_share_runs_a_gpu1_job_on_a_buffer_gpu0_produced,
            implicit_sync_orders_a_gpu1_reader_after_a_gpu0_writer,
            implicit_sync_fails_the_reader_of_a_faulting_writer_unrun,
        ]);
    }
    all
}

/// The inode of an open file: two fds of one dma-buf share it.
fn inode(fd: BorrowedFd<'_>) -> Result<u64> {
    let f = std::fs::File::from(fd.try_clone_to_owned()?);
    Ok(f.metadata()?.ino())
}

/// Imports `buf` into `g` and maps it at [`SHARED_VA`] of `vm` with `flags`.
fn import_and_map(g: &Gpu, vm: u32, buf: BorrowedFd<'_>, flags: u32) -> Result<u32> {
    let handle = g.prime_import(buf).context("PRIME import")?;
    g.vm_map_flags(vm, handle, SHARED_VA, SHARED_SIZE, flags)
        .context("VM_BIND of the imported buffer")?;
    Ok(handle)
}

const RW: u32 = uapi::DRM_VAGX_VM_BIND_READ | uapi::DRM_VAGX_VM_BIND_WRITE;

/// A context on each of two GPUs, the first one's whole buffer imported into the second
/// one's VM at [`SHARED_VA`]; the import is unmapped and closed on drop.
struct Pair<'g> {
    a: Ctx<'g>,
    b: Ctx<'g>,
    shared: u32,
}

impl<'g> Pair<'g> {
    fn new(owner: &'g Gpu, user: &'g Gpu) -> Result<Self> {
        let a = Ctx::normal(owner)?;
        let b = Ctx::normal(user)?;
        let buf = owner.prime_export(a.bo)?;
        let shared = user.prime_import(buf.as_fd()).context("PRIME import")?;
        user.vm_map(b.vm, shared, SHARED_VA, fixture::CTX_SIZE)
            .context("VM_BIND of the other GPU's buffer")?;
        Ok(Self { a, b, shared })
    }

    /// Byte `off` of `a`'s data area, in `b`'s VM.
    fn on_b(&self, off: u64) -> u64 {
        SHARED_VA + (self.a.va(off) - fixture::BASE)
    }
}

impl Drop for Pair<'_> {
    fn drop(&mut self) {
        let _ = self.b.gpu.vm_unmap(self.b.vm, SHARED_VA, fixture::CTX_SIZE);
        let _ = self.b.gpu.gem_close(self.shared);
    }
}

/// Whether every word of `m` from `off` for `len` bytes is `pattern`.
fn all_words(m: &Mapping, off: usize, len: u64, pattern: u32) -> Result<bool> {
    let mut out = vec![0u8; usize::try_from(len)?];
    m.read(off, &mut out);
    Ok(out.chunks(4).all(|w| w == pattern.to_le_bytes()))
}

fn self_import_gives_the_same_handle_and_a_second_export_the_same_dma_buf() -> Result<()> {
    let g = Gpu::open_selected()?;
    let bo = g.gem_create(SHARED_SIZE)?;
    let a = g.prime_export(bo)?;
    let b = g.prime_export(bo)?;
    ensure!(
        inode(a.as_fd())? == inode(b.as_fd())?,
        "two exports of one buffer made two dma-bufs"
    );
    ensure!(
        g.prime_import(a.as_fd())? == bo,
        "importing our own export gave another handle"
    );
    // Another file of the same device gets its own handle to the same object.
    let other = Gpu::open_selected()?;
    let theirs = other.prime_import(b.as_fd())?;
    let mine = g.map(bo, usize::try_from(SHARED_SIZE)?)?;
    mine.write(0, &0x5eed_0001u32.to_le_bytes());
    let seen = other.map(theirs, usize::try_from(SHARED_SIZE)?)?;
    ensure!(
        seen.u32_at(0) == 0x5eed_0001,
        "the other file's handle is not the same buffer"
    );
    g.gem_close(bo)?;
    Ok(())
}

/// The GPU's writes are read through the dma-buf's own mmap, the CPU's writes through it
/// reach the GPU, each access bracketed by `DMA_BUF_IOCTL_SYNC`.
fn an_exported_buffer_is_read_and_written_through_its_dma_buf() -> Result<()> {
    let g = Gpu::open_selected()?;
    let ctx = Ctx::normal(&g)?;
    let buf = g.prime_export(ctx.bo)?;
    let len = 16 * 1024;
    let mut c = CmdBuf::new();
    c.fill(ctx.va(0), len, 0xd1ab_0001);
    ctx.run_and_wait(&c)?;
    let whole = usize::try_from(fixture::CTX_SIZE)?;
    let m = Mapping::of_fd(buf.as_fd(), 0, whole).context("mmap of the dma-buf")?;
    dmabuf::sync(buf.as_fd(), dmabuf::SYNC_START | dmabuf::SYNC_READ)?;
    ensure!(
        all_words(&m, ctx.off(0), len, 0xd1ab_0001)?,
        "the dma-buf's mapping does not show the GPU's fill"
    );
    dmabuf::sync(buf.as_fd(), dmabuf::SYNC_END | dmabuf::SYNC_READ)?;

    dmabuf::sync(buf.as_fd(), dmabuf::SYNC_START | dmabuf::SYNC_WRITE)?;
    let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
    m.write(ctx.off(len), &data);
    dmabuf::sync(buf.as_fd(), dmabuf::SYNC_END | dmabuf::SYNC_WRITE)?;
    let mut c = CmdBuf::new();
    c.checksum(ctx.va(len), ctx.va(2 * len), len);
    ctx.run_and_wait(&c)?;
    let mut sum = [0u8; 8];
    ctx.map.read(ctx.off(2 * len), &mut sum);
    ensure!(
        u64::from_le_bytes(sum) == fnv1a64(&data),
        "the GPU did not see what the CPU wrote through the dma-buf"
    );
    Ok(())
}

/// memfd pages made a dma-buf by udmabuf: the GPU copies inside them and checksums them, and
/// the memfd's own mapping sees the copy (no staging buffer anywhere).
fn udmabuf_memory_is_computed_on_in_place() -> Result<()> {
    let g = Gpu::open_selected()?;
    let ctx = Ctx::normal(&g)?;
    let memfd = dmabuf::memfd(SHARED_SIZE)?;
    let host = Mapping::of_fd(memfd.as_fd(), 0, usize::try_from(SHARED_SIZE)?)?;
    let half = SHARED_SIZE / 2;
    let data: Vec<u8> = (0..half).map(|i| (i * 13 + 1) as u8).collect();
    host.write(0, &data);
    let buf = dmabuf::udmabuf(memfd.as_fd(), 0, SHARED_SIZE).context("UDMABUF_CREATE")?;
    let handle = import_and_map(&g, ctx.vm, buf.as_fd(), RW)?;
    let mut c = CmdBuf::new();
    c.copy(SHARED_VA, SHARED_VA + half, half)
        .checksum(SHARED_VA, ctx.va(0), half);
    let s = ctx.run_and_wait(&c)?;
    ensure!(ctx.fence_result(s)? == Ok(()), "the job failed");
    let mut copy = vec![0u8; usize::try_from(half)?];
    host.read(usize::try_from(half)?, &mut copy);
    ensure!(copy == data, "the memfd does not hold the GPU's copy");
    let mut sum = [0u8; 8];
    ctx.map.read(ctx.off(0), &mut sum);
    ensure!(
        u64::from_le_bytes(sum) == fnv1a64(&data),
        "the GPU's checksum of host memory is wrong"
    );
    g.vm_unmap(ctx.vm, SHARED_VA, SHARED_SIZE)?;
    g.gem_close(handle)?;
    Ok(())
}

fn bad_prime_input_gets_a_clear_errno() -> Result<()> {
    let g = Gpu::open_selected()?;
    // A file that is not a dma-buf.
    let memfd = dmabuf::memfd(SHARED_SIZE)?;
    expect_errno(
        g.prime_import(memfd.as_fd()),
        libc::EINVAL,
        "PRIME import of a memfd",
    )?;
    // A handle of another file: this file has no objects at all.
    let mine = g.gem_create(SHARED_SIZE)?;
    let other = Gpu::open_selected()?;
    expect_errno(
        other.prime_export(mine),
        libc::ENOENT,
        "PRIME export of another file's handle",
    )?;
    // A dma-buf smaller than the mapping asked of it.
    let small = dmabuf::udmabuf(memfd.as_fd(), 0, 4096)?;
    let handle = g.prime_import(small.as_fd())?;
    let vm = g.vm_create()?;
    expect_errno(
        g.vm_map(vm, handle, SHARED_VA, 2 * 4096),
        libc::EINVAL,
        "VM_BIND of 2 pages of a 1-page dma-buf",
    )?;
    g.vm_map(vm, handle, SHARED_VA, 4096)
        .context("VM_BIND of the page it has")?;
    // A dma-buf is not a syncobj.
    expect_errno(
        g.syncobj_import(small.as_fd()),
        libc::EINVAL,
        "SYNCOBJ_FD_TO_HANDLE of a dma-buf",
    )?;
    g.vm_destroy(vm)?;
    g.gem_close(handle)?;
    g.gem_close(mine)?;
    Ok(())
}

/// On every GPU i: GPU i+1 (mod N) imports i's buffer, copies what i wrote into its own
/// buffer and writes a second region of i's buffer, which i's CPU mapping then shows.
fn each_gpu_reads_and_writes_the_next_gpus_buffer() -> Result<()> {
    let nodes = gpu::render_nodes()?;
    let gpus = nodes
        .iter()
        .map(|n| Gpu::open(n))
        .collect::<std::io::Result<Vec<_>>>()?;
    let n = gpus.len();
    for i in 0..n {
        let pair = Pair::new(&gpus[i], &gpus[(i + 1) % n])?;
        let (src, dst) = (&pair.a, &pair.b);
        let len = 16 * 1024;
        let mark = 0xa000_0000 | i as u32;
        let mut c = CmdBuf::new();
        c.fill(src.va(0), len, mark);
        src.run_and_wait(&c)?;
        let mut c = CmdBuf::new();
        c.copy(pair.on_b(0), dst.va(0), len)
            .fill(pair.on_b(len), len, !mark);
        let s = dst.run_and_wait(&c)?;
        ensure!(
            dst.fence_result(s)? == Ok(()),
            "gpu{}: the job failed",
            (i + 1) % n
        );
        ensure!(
            all_words(&dst.map, dst.off(0), len, mark)?,
            "gpu{} did not read gpu{i}'s data",
            (i + 1) % n
        );
        ensure!(
            all_words(&src.map, src.off(len), len, !mark)?,
            "gpu{i} does not see gpu{}'s write",
            (i + 1) % n
        );
    }
    Ok(())
}

/// Exported without `DRM_RDWR`, a buffer is read by another GPU but not mapped writable
/// there (`EACCES`).
fn a_read_only_export_maps_only_read_only_on_another_gpu() -> Result<()> {
    let (g0, g1) = (Gpu::open_index(0)?, Gpu::open_index(1)?);
    let src = Ctx::normal(&g0)?;
    src.map.write(src.off(0), &0x0bad_cafeu32.to_le_bytes());
    let buf = g0.prime_export_flags(src.bo, libc::O_CLOEXEC)?;
    let dst = Ctx::normal(&g1)?;
    let handle = g1.prime_import(buf.as_fd())?;
    expect_errno(
        g1.vm_map(dst.vm, handle, SHARED_VA, SHARED_SIZE),
        libc::EACCES,
        "a writable mapping of a read-only export",
    )?;
    g1.vm_map_flags(
        dst.vm,
        handle,
        SHARED_VA,
        fixture::CTX_SIZE,
        uapi::DRM_VAGX_VM_BIND_READ,
    )
    .context("a read-only mapping")?;
    let from = SHARED_VA + (src.va(0) - fixture::BASE);
    let mut c = CmdBuf::new();
    c.copy(from, dst.va(0), 4);
    dst.run_and_wait(&c)?;
    ensure!(
        dst.map.u32_at(dst.off(0)) == 0x0bad_cafe,
        "the read-only import was not read"
    );
    g1.vm_unmap(dst.vm, SHARED_VA, fixture::CTX_SIZE)?;
    g1.gem_close(handle)?;
    Ok(())
}

/// A child process opens GPU 1, imports GPU 0's buffer from the fd it inherited and fills it;
/// the parent's mapping shows the fill.
fn another_process_computes_on_an_imported_buffer() -> Result<()> {
    let g0 = Gpu::open_index(0)?;
    let src = Ctx::normal(&g0)?;
    let buf = g0.prime_export(src.bo)?;
    let len = 8 * 1024;
    let offset = src.va(0) - fixture::BASE;
    let ok = gpu::in_child_process(|| match child_fills(buf.as_fd(), offset, len) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("child: {e:#}");
            false
        }
    })?;
    ensure!(ok, "the child failed");
    ensure!(
        all_words(&src.map, src.off(0), len, 0xc41d_0001)?,
        "the child's fill is not in the buffer"
    );
    Ok(())
}

/// The child of [`another_process_computes_on_an_imported_buffer`].
fn child_fills(buf: BorrowedFd<'_>, offset: u64, len: u64) -> Result<()> {
    let g1 = Gpu::open_index(1)?;
    let ctx = Ctx::normal(&g1)?;
    let handle = g1.prime_import(buf).context("PRIME import")?;
    g1.vm_map(ctx.vm, handle, SHARED_VA, fixture::CTX_SIZE)
        .context("VM_BIND of the inherited buffer")?;
    let mut c = CmdBuf::new();
    c.fill(SHARED_VA + offset, len, 0xc41d_0001);
    let s = ctx.run_and_wait(&c)?;
    ensure!(ctx.fence_result(s)? == Ok(()), "the job failed");
    Ok(())
}

/// GPU 1 keeps computing on GPU 0's buffer after GPU 0's client closed its handle and its
/// file, and after GPU 0 was unbound; GPU 0 then binds again and works.
fn an_import_outlives_its_exporters_handle_file_and_device() -> Result<()> {
    let node0 = gpu::render_nodes()?
        .into_iter()
        .next()
        .context("no render node")?;
    let address0 = gpu::pci_address(&node0)?;
    let g1 = Gpu::open_index(1)?;
    let ctx = Ctx::normal(&g1)?;
    let handle = {
        let g0 = Gpu::open(&node0)?;
        let bo = g0.gem_create(SHARED_SIZE)?;
        let m = g0.map(bo, usize::try_from(SHARED_SIZE)?)?;
        m.write(0, &0x0001_1fe5u32.to_le_bytes());
        let buf = g0.prime_export(bo)?;
        let handle = import_and_map(&g1, ctx.vm, buf.as_fd(), RW)?;
        g0.gem_close(bo)?;
        handle
        // g0's mapping, dma-buf fd and file close here.
    };
    let round = |what: &str, value: u32| -> Result<()> {
        let mut c = CmdBuf::new();
        c.copy(SHARED_VA, ctx.va(0), 4)
            .write32(SHARED_VA + 4, value);
        let s = ctx.run_and_wait(&c)?;
        ensure!(ctx.fence_result(s)? == Ok(()), "{what}: the job failed");
        ensure!(
            ctx.map.u32_at(ctx.off(0)) == 0x0001_1fe5,
            "{what}: the exporter's data is gone"
        );
        let mut c = CmdBuf::new();
        c.copy(SHARED_VA + 4, ctx.va(4), 4);
        ctx.run_and_wait(&c)?;
        ensure!(
            ctx.map.u32_at(ctx.off(4)) == value,
            "{what}: the write did not stick"
        );
        Ok(())
    };
    round("exporter's file closed", 1)?;
    std::fs::write("/sys/bus/pci/drivers/vagx/unbind", &address0).context("unbind gpu0")?;
    let unbound = round("exporter unbound", 2);
    std::fs::write("/sys/bus/pci/drivers/vagx/bind", &address0).context("bind gpu0")?;
    unbound?;
    g1.vm_unmap(ctx.vm, SHARED_VA, SHARED_SIZE)?;
    g1.gem_close(handle)?;
    fixture::first_device_works()
}

fn a_chain_gpu0_gpu1_gpu0_runs_in_order_through_shared_syncobjs() -> Result<()> {
    chain(false)
}

fn a_fault_at_the_head_of_a_cross_gpu_chain_fails_the_rest_unrun() -> Result<()> {
    chain(true)
}

/// Three jobs on one shared buffer, each waiting for the one before through a syncobj of the
/// other device's file: GPU 0 writes a value after a long delay (or faults, with `fault`),
/// GPU 1 copies it, GPU 0 copies GPU 1's copy. The syncobjs are exported from the signalling
/// device and imported into the waiting one (the chain's middle link a timeline point, the
/// others binary). Every copy must see the write; after a fault, both later jobs carry its
/// `EIO` and neither ran.
fn chain(fault: bool) -> Result<()> {
    let (g0, g1) = (Gpu::open_index(0)?, Gpu::open_index(1)?);
    let pair = Pair::new(&g0, &g1)?;
    let (a, b) = (&pair.a, &pair.b);
    let on_b = |off: u64| pair.on_b(off);
    const VALUE: u32 = 0xc4a1_0001;

    let first = g0.syncobj()?;
    let mut c = CmdBuf::new();
    c.delay(20_000_000);
    if fault {
        c.write32(0x7000_0000, VALUE);
    } else {
        c.write32(a.va(0), VALUE);
    }
    a.run(&c, &[gpu::Sync::signal(first, 0)])?;

    let first_on_b = g1.syncobj_import(g0.syncobj_export(first)?.as_fd())?;
    let second = g1.syncobj()?;
    let mut c = CmdBuf::new();
    c.copy(on_b(0), on_b(4), 4).write32(on_b(12), 1);
    b.run(
        &c,
        &[gpu::Sync::wait(first_on_b, 0), gpu::Sync::signal(second, 1)],
    )?;

    let second_on_a = g0.syncobj_import(g1.syncobj_export(second)?.as_fd())?;
    let third = g0.syncobj()?;
    let mut c = CmdBuf::new();
    c.copy(a.va(4), a.va(8), 4).write32(a.va(16), 1);
    a.run(
        &c,
        &[gpu::Sync::wait(second_on_a, 1), gpu::Sync::signal(third, 0)],
    )?;
    g0.wait(third, fixture::WAIT_MS)
        .context("the chain's last job")?;
    let third_result = a.fence_result(third)?;
    let word = |off| a.map.u32_at(a.off(off));
    if fault {
        ensure!(
            third_result == Err(libc::EIO),
            "the last job after a fault: {third_result:?}"
        );
        ensure!(
            word(12) == 0 && word(16) == 0,
            "a job after the fault ran ({}, {})",
            word(12),
            word(16)
        );
    } else {
        ensure!(third_result == Ok(()), "the last job: {third_result:?}");
        ensure!(
            word(4) == VALUE && word(8) == VALUE,
            "out of order: GPU 1 copied {:#x}, GPU 0 then {:#x}",
            word(4),
            word(8)
        );
    }
    Ok(())
}

/// `vagx-tool share` (what `make run` shows), both ways.
fn the_tools_share_runs_a_gpu1_job_on_a_buffer_gpu0_produced() -> Result<()> {
    crate::share::run(0, 1, 64 * 1024, 5_000_000)?;
    crate::share::run(1, 0, 4096, 0)
}

/// A job of a VM that maps an exported buffer puts its fence in the buffer's reservation:
/// `DMA_BUF_IOCTL_EXPORT_SYNC_FILE` gives a fence that is pending while the job runs and has
/// signalled only once the job's write is there.
fn export_sync_file_of_a_shared_buffer_covers_the_gpu_work_on_it() -> Result<()> {
    let g = Gpu::open_selected()?;
    let ctx = Ctx::normal(&g)?;
    // Exported before the job: the job then treats it as shared.
    let buf = g.prime_export(ctx.bo)?;
    let mut c = CmdBuf::new();
    c.delay(30_000_000).write32(ctx.va(0), 0xe5f0_0001);
    let s = g.syncobj()?;
    ctx.run(&c, &[gpu::Sync::signal(s, 0)])?;
    let fence =
        dmabuf::export_sync_file(buf.as_fd(), dmabuf::SYNC_READ).context("EXPORT_SYNC_FILE")?;
    let done_at_export = ctx.map.u32_at(ctx.off(0)) == 0xe5f0_0001;
    ensure!(
        gpu::sync_file_wait(fence.as_fd(), 20_000)?,
        "the exported fence never signalled"
    );
    ensure!(
        ctx.map.u32_at(ctx.off(0)) == 0xe5f0_0001,
        "the exported fence signalled before the job's write (the job was done at export: \
         {done_at_export})"
    );
    g.wait(s, fixture::WAIT_MS)?;
    Ok(())
}

/// A fence put into a shared buffer's reservation with `DMA_BUF_IOCTL_IMPORT_SYNC_FILE` is
/// waited for by the next job of a VM that maps the buffer: here the fence of a long job
/// that does not touch the buffer, which writes a marker the next job copies.
fn import_sync_file_into_a_shared_buffer_holds_the_next_job_using_it() -> Result<()> {
    let g = Gpu::open_selected()?;
    let ctx = Ctx::normal(&g)?;
    // The long job runs before the VM maps any shared buffer: it is in no reservation.
    let mut c = CmdBuf::new();
    c.delay(30_000_000).write32(ctx.va(0), 0x1f00_0001);
    let first = g.syncobj()?;
    ctx.run(&c, &[gpu::Sync::signal(first, 0)])?;
    let shared = g.gem_create(SHARED_SIZE)?;
    let buf = g.prime_export(shared)?;
    g.vm_map(ctx.vm, shared, SHARED_VA, SHARED_SIZE)?;
    let fence = g.export_sync_file(first)?;
    dmabuf::import_sync_file(buf.as_fd(), dmabuf::SYNC_WRITE, fence.as_fd())
        .context("IMPORT_SYNC_FILE")?;
    // Another queue of the same VM: nothing orders it after the first job but the buffer.
    let queue = g.queue_create(ctx.vm, uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_NORMAL)?;
    let mut c = CmdBuf::new();
    c.copy(ctx.va(0), ctx.va(4), 4);
    let at = 100 * fixture::CMD_SLOT;
    ctx.map.write(usize::try_from(at)?, c.bytes());
    let second = g.syncobj()?;
    g.submit(
        queue,
        fixture::BASE + at,
        c.len(),
        &[gpu::Sync::signal(second, 0)],
    )?;
    g.wait(second, fixture::WAIT_MS)?;
    let copied = ctx.map.u32_at(ctx.off(4));
    g.queue_destroy(queue)?;
    ensure!(
        copied == 0x1f00_0001,
        "the job ran before the fence imported into the buffer (copied {copied:#x})"
    );
    g.vm_unmap(ctx.vm, SHARED_VA, SHARED_SIZE)?;
    Ok(())
}

/// `DRM_VAGX_SUBMIT_NO_IMPLICIT_WAIT`: with a foreign writer's fence (a closed sw_sync gate)
/// in a shared buffer's reservation, a flagged job of a VM that maps it runs at once, while
/// the next job without the flag waits for the gate; and a flagged job's own fence is still
/// in the reservation, so `EXPORT_SYNC_FILE` covers its work.
fn no_implicit_wait_skips_the_buffers_fences_and_still_adds_the_jobs() -> Result<()> {
    const FLAG: u32 = uapi::DRM_VAGX_SUBMIT_NO_IMPLICIT_WAIT;
    let g = Gpu::open_selected()?;
    let ctx = Ctx::normal(&g)?;
    let shared = g.gem_create(SHARED_SIZE)?;
    let buf = g.prime_export(shared)?;
    g.vm_map(ctx.vm, shared, SHARED_VA, SHARED_SIZE)?;
    let gate = crate::sw_sync::Timeline::new().context("sw_sync timeline")?;
    let closed = gate.fence(1)?;
    dmabuf::import_sync_file(buf.as_fd(), dmabuf::SYNC_WRITE, closed.as_fd())
        .context("IMPORT_SYNC_FILE")?;
    let write = |value: u32| {
        let mut c = CmdBuf::new();
        c.write32(ctx.va(0), value);
        c
    };
    let (flagged, plain) = (g.syncobj()?, g.syncobj()?);
    ctx.run_flags(&write(0x4e00_0001), &[gpu::Sync::signal(flagged, 0)], FLAG)?;
    ctx.run(&write(0x4e00_0002), &[gpu::Sync::signal(plain, 0)])?;
    let ran = g.wait(flagged, 5_000);
    // The gate opens whatever happened, so nothing is left waiting.
    let plain_pending = ctx.fence_pending(plain)?;
    gate.advance(1)?;
    ran.context("the flagged job waited for the buffer's foreign fence")?;
    ensure!(
        plain_pending,
        "the job without the flag did not wait for the closed gate in the reservation"
    );
    g.wait(plain, fixture::WAIT_MS)?;
    ensure!(ctx.fence_result(flagged)? == Ok(()) && ctx.fence_result(plain)? == Ok(()));
    // The flagged job's fence is the buffer's: the exported fence ends after its write.
    let mut c = CmdBuf::new();
    c.delay(30_000_000).write32(ctx.va(4), 0x4e00_0003);
    let last = g.syncobj()?;
    ctx.run_flags(&c, &[gpu::Sync::signal(last, 0)], FLAG)?;
    let fence =
        dmabuf::export_sync_file(buf.as_fd(), dmabuf::SYNC_READ).context("EXPORT_SYNC_FILE")?;
    ensure!(
        gpu::sync_file_wait(fence.as_fd(), 20_000)?,
        "the exported fence never signalled"
    );
    ensure!(
        ctx.map.u32_at(ctx.off(4)) == 0x4e00_0003,
        "the exported fence signalled before the flagged job's write"
    );
    g.wait(last, fixture::WAIT_MS)?;
    g.vm_unmap(ctx.vm, SHARED_VA, SHARED_SIZE)?;
    Ok(())
}

fn implicit_sync_orders_a_gpu1_reader_after_a_gpu0_writer() -> Result<()> {
    implicit(false)
}

fn implicit_sync_fails_the_reader_of_a_faulting_writer_unrun() -> Result<()> {
    implicit(true)
}

/// GPU 0 writes a shared buffer after a long delay (or faults, with `fault`); GPU 1's job on
/// it is submitted at once, with no syncobj between them. The reservation orders it: it reads
/// the write, or fails with the writer's `EIO` without running.
fn implicit(fault: bool) -> Result<()> {
    let (g0, g1) = (Gpu::open_index(0)?, Gpu::open_index(1)?);
    let pair = Pair::new(&g0, &g1)?;
    let (a, b) = (&pair.a, &pair.b);
    let len = 4096;
    let mut c = CmdBuf::new();
    c.delay(20_000_000);
    if fault {
        c.write32(0x7000_0000, 1);
    } else {
        c.fill(a.va(0), len, 0x1a91_0001);
    }
    let writer = g0.syncobj()?;
    a.run(&c, &[gpu::Sync::signal(writer, 0)])?;
    let mut c = CmdBuf::new();
    c.copy(pair.on_b(0), b.va(0), len).write32(b.va(len), 1);
    let reader = b.run_and_wait(&c)?;
    let result = b.fence_result(reader)?;
    let ran = b.map.u32_at(b.off(len)) == 1;
    if fault {
        ensure!(
            a.fence_result(writer)? == Err(libc::EIO),
            "the writer did not fault"
        );
        ensure!(
            result == Err(libc::EIO),
            "the reader of a faulting writer: {result:?}"
        );
        ensure!(!ran, "the reader of a faulting writer ran");
    } else {
        ensure!(result == Ok(()), "the reader: {result:?}");
        ensure!(
            all_words(&b.map, b.off(0), len, 0x1a91_0001)?,
            "GPU 1 read the buffer before GPU 0 wrote it"
        );
    }
    Ok(())
}
