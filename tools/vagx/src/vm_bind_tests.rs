// SPDX-License-Identifier: GPL-2.0 OR MIT

//! VM_BIND's bookkeeping: unmapping part of a mapping splits it, the object goes with its
//! last mapped page, an unmap costs what was mapped (not the range), and a map interrupted
//! part-way leaves the VM as it was.

use std::{
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context, Result};

use crate::{
    cmdbuf::CmdBuf,
    fixture::{expect_errno, Ctx, WAIT_MS},
    gpu::{self, Gpu, Sync},
    registry::{tests, Test},
    uapi,
};

const PAGE: u64 = 4096;
/// Where these tests map their buffers (above the context's own buffer).
const VA: u64 = 0x1000_0000;

pub fn tests() -> Vec<Test<'static>> {
    tests![
        vm_bind_partial_unmap_splits_and_the_hole_can_be_mapped,
        vm_bind_page_by_page_unmap_then_remap,
        vm_bind_object_released_with_its_last_mapped_page,
        vm_bind_unmap_of_the_empty_address_space_is_quick,
        vm_bind_interrupted_map_leaves_the_vm_as_before,
    ]
}

/// A job in `ctx`'s queue (whose VM is `ctx.vm`) that writes `value` at each of `vas`;
/// returns its fence's result.
fn write_at(ctx: &Ctx<'_>, vas: &[u64], value: u32) -> Result<Result<(), i32>> {
    let mut c = CmdBuf::new();
    for &va in vas {
        c.write32(va, value);
    }
    let s = ctx.gpu.syncobj()?;
    ctx.run(&c, &[Sync::signal(s, 0)])?;
    ctx.gpu.wait(s, WAIT_MS)?;
    ctx.fence_result(s)
}

/// Unmapping the middle of a mapping keeps both ends (at their own object offsets) and frees
/// the middle for another object.
fn vm_bind_partial_unmap_splits_and_the_hole_can_be_mapped() -> Result<()> {
    let g = Gpu::open_first()?;
    let ctx = Ctx::normal(&g)?;
    let a = g.gem_create(16 * PAGE)?;
    let b = g.gem_create(4 * PAGE)?;
    g.vm_map(ctx.vm, a, VA, 16 * PAGE)?;
    g.vm_unmap(ctx.vm, VA + 4 * PAGE, 4 * PAGE)
        .context("unmap the middle")?;
    g.vm_map(ctx.vm, b, VA + 4 * PAGE, 4 * PAGE)
        .context("map into the hole")?;
    expect_errno(
        g.vm_map(ctx.vm, b, VA + 2 * PAGE, 4 * PAGE),
        libc::EEXIST,
        "map over the left piece",
    )?;
    let r = write_at(&ctx, &[VA, VA + 4 * PAGE, VA + 12 * PAGE], 0x1234_5678)?;
    ensure!(r == Ok(()), "writes through the split mappings: {r:?}");
    let (ma, mb) = (g.map(a, 16 * 4096)?, g.map(b, 4 * 4096)?);
    ensure!(ma.u32_at(0) == 0x1234_5678, "left piece");
    ensure!(mb.u32_at(0) == 0x1234_5678, "the hole's new object");
    ensure!(
        ma.u32_at(12 * 4096) == 0x1234_5678,
        "right piece (its object offset kept)"
    );
    ensure!(ma.u32_at(4 * 4096) == 0, "the unmapped middle was written");
    Ok(())
}

/// Unmapping a mapping one page at a time leaves nothing: the range maps again.
fn vm_bind_page_by_page_unmap_then_remap() -> Result<()> {
    let g = Gpu::open_first()?;
    let ctx = Ctx::normal(&g)?;
    let a = g.gem_create(8 * PAGE)?;
    let b = g.gem_create(8 * PAGE)?;
    g.vm_map(ctx.vm, a, VA, 8 * PAGE)?;
    for i in [3, 0, 7, 1, 2, 6, 4, 5] {
        g.vm_unmap(ctx.vm, VA + i * PAGE, PAGE)
            .with_context(|| format!("unmap page {i}"))?;
    }
    let r = write_at(&ctx, &[VA + 3 * PAGE], 1)?;
    ensure!(r == Err(libc::EIO), "write to an unmapped page: {r:?}");
    g.vm_map(ctx.vm, b, VA, 8 * PAGE)
        .context("map over the emptied range")?;
    let r = write_at(&ctx, &[VA + 3 * PAGE], 7)?;
    ensure!(r == Ok(()), "write through the new mapping: {r:?}");
    ensure!(g.map(b, 8 * 4096)?.u32_at(3 * 4096) == 7);
    Ok(())
}

/// `Shmem:` of /proc/meminfo, in KiB: shmem buffer objects' pages count there.
fn shmem_kib() -> Result<u64> {
    let text = std::fs::read_to_string("/proc/meminfo")?;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Shmem:") {
            return Ok(rest.trim().trim_end_matches("kB").trim().parse()?);
        }
    }
    bail!("no Shmem line in /proc/meminfo")
}

/// A mapped object whose handle is closed lives while any page of it is mapped, and is freed
/// (its pages returned) with the last one.
fn vm_bind_object_released_with_its_last_mapped_page() -> Result<()> {
    const SIZE: u64 = 16 << 20;
    let g = Gpu::open_first()?;
    let vm = g.vm_create()?;
    let before = shmem_kib()?;
    let bo = g.gem_create(SIZE)?;
    g.vm_map(vm, bo, VA, SIZE)?;
    g.gem_close(bo)?;
    let mapped = shmem_kib()?;
    ensure!(
        mapped >= before + (SIZE >> 10) * 3 / 4,
        "a mapped object's pages are not in Shmem ({before} -> {mapped} KiB)"
    );
    // Everything but the last page, in two unmaps around it.
    g.vm_unmap(vm, VA, SIZE / 2)?;
    g.vm_unmap(vm, VA + SIZE / 2, SIZE / 2 - PAGE)?;
    thread::sleep(Duration::from_millis(50));
    let one_page = shmem_kib()?;
    ensure!(
        one_page >= before + (SIZE >> 10) * 3 / 4,
        "the object went while a page of it was still mapped ({one_page} KiB)"
    );
    g.vm_unmap(vm, VA + SIZE - PAGE, PAGE)?;
    // Freeing the shmem file may be deferred a little (delayed fput).
    let start = Instant::now();
    loop {
        let now = shmem_kib()?;
        if now + (SIZE >> 10) / 2 <= mapped {
            break;
        }
        ensure!(
            start.elapsed() < Duration::from_secs(5),
            "the object's pages were not freed after its last unmap ({mapped} -> {now} KiB)"
        );
        thread::sleep(Duration::from_millis(20));
    }
    g.vm_destroy(vm)?;
    Ok(())
}

/// Unmapping the whole (empty) 2^39-byte address space costs nothing like walking it: the
/// previous page-by-page walk took 7 s here.
fn vm_bind_unmap_of_the_empty_address_space_is_quick() -> Result<()> {
    let g = Gpu::open_first()?;
    let vm = g.vm_create()?;
    let bits = g.get_param(uapi::drm_vagx_param_DRM_VAGX_PARAM_VA_BITS)?;
    let bo = g.gem_create(PAGE)?;
    g.vm_map(vm, bo, VA, PAGE)?;
    let start = Instant::now();
    g.vm_unmap(vm, 0, 1 << bits).context("unmap everything")?;
    let took = start.elapsed();
    ensure!(
        took < Duration::from_millis(500),
        "unmapping 2^{bits} bytes with one page mapped took {took:?}"
    );
    g.vm_map(vm, bo, VA, PAGE).context("map again")?;
    g.vm_destroy(vm)?;
    Ok(())
}

/// A map interrupted by a signal part-way fails with EINTR and leaves nothing behind: no
/// entry the GPU can use, no bookkeeping that refuses the range.
fn vm_bind_interrupted_map_leaves_the_vm_as_before() -> Result<()> {
    const SIZE: u64 = 64 << 20;
    let g = Gpu::open_first()?;
    let ctx = Ctx::normal(&g)?;
    let big = g.gem_create(SIZE)?;
    gpu::alarm_every(500)?;
    let mut interrupted = false;
    let mut outcome = Ok(());
    for _ in 0..50 {
        match g.vm_map(ctx.vm, big, VA, SIZE) {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {
                interrupted = true;
                break;
            }
            Err(e) => {
                outcome = Err(e);
                break;
            }
            Ok(()) => {
                if let Err(e) = g.vm_unmap(ctx.vm, VA, SIZE) {
                    if e.raw_os_error() != Some(libc::EINTR) {
                        outcome = Err(e);
                        break;
                    }
                    // An interrupted unmap: finish it.
                    gpu::alarm_every(0)?;
                    g.vm_unmap(ctx.vm, VA, SIZE)?;
                    gpu::alarm_every(500)?;
                }
            }
        }
    }
    gpu::alarm_every(0)?;
    outcome.context("VM_BIND under signals")?;
    ensure!(interrupted, "no map was interrupted in 50 tries");
    // Nothing of the failed map is reachable ...
    let r = write_at(&ctx, &[VA, VA + SIZE / 2], 3)?;
    ensure!(r == Err(libc::EIO), "write through a failed map: {r:?}");
    // ... and nothing of it is remembered: the whole range maps.
    g.vm_map(ctx.vm, big, VA, SIZE)
        .context("map after the failed one")?;
    let r = write_at(&ctx, &[VA + SIZE - PAGE], 9)?;
    ensure!(r == Ok(()), "write through the new map: {r:?}");
    Ok(())
}
