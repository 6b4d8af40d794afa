// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The UAPI's promises at the seams: what teardown does to unfinished jobs, the per-file
//! limits, timeline point order, objects vagx did not make, syncobj arrays sized by a
//! hostile count, and a firmware that stops answering without saying so.

use std::os::fd::{AsFd, OwnedFd};

use anyhow::{ensure, Context, Result};

use crate::{
    cmdbuf::CmdBuf,
    fixture::{debugfs_read, expect_errno, inject, rebind, Ctx, BASE, WAIT_MS},
    gpu::{self, sync_file_status, sync_file_wait, Gpu, Sync},
    registry::{tests, Test},
    uapi,
};

pub fn tests() -> Vec<Test<'static>> {
    tests![
        queue_destroy_cancels_queued_waiting_and_running_jobs,
        file_close_cancels_queued_waiting_and_running_jobs,
        a_queue_destroyed_as_its_jobs_become_ready_can_be_made_again,
        per_file_limits_leave_queues_and_vms_for_others,
        timeline_points_must_increase,
        dumb_buffers_are_refused,
        syncobj_wait_with_a_huge_count_fails_cleanly,
        silent_firmware_is_detected_and_recovered,
        silent_firmware_that_does_not_come_back_loses_the_device,
    ]
}

fn queue_destroy_cancels_queued_waiting_and_running_jobs() -> Result<()> {
    teardown_cancels_everything(Teardown::DestroyQueue)
}

fn file_close_cancels_queued_waiting_and_running_jobs() -> Result<()> {
    teardown_cancels_everything(Teardown::CloseFile)
}

#[derive(Clone, Copy, PartialEq)]
enum Teardown {
    DestroyQueue,
    CloseFile,
}

/// Jobs on the hardware, queued behind them, and waiting for another queue's job all end with
/// `ECANCELED` when their queue is destroyed or their file closed.
fn teardown_cancels_everything(how: Teardown) -> Result<()> {
    // The gate: another client's long job that the last victim waits for.
    let other = Gpu::open_first()?;
    let gate_ctx = Ctx::normal(&other)?;
    let gate = other.syncobj()?;
    // Below the firmware's 100 ms watchdog, as every job here.
    let mut long = CmdBuf::new();
    long.delay(90_000_000);
    gate_ctx.run(&long, &[Sync::signal(gate, 0)])?;
    let gate_file = other.export_sync_file(gate)?;

    let g = Gpu::open_first()?;
    let vm = g.vm_create()?;
    let bo = g.gem_create(1 << 16)?;
    g.vm_map(vm, bo, BASE, 1 << 16)?;
    let queue = g.queue_create(vm, uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_NORMAL)?;
    let mut slow = CmdBuf::new();
    slow.delay(90_000_000).write32(BASE + 0x8000, 1);
    {
        let map = g.map(bo, 1 << 16)?;
        map.write(0, slow.bytes());
    }
    let imported = g.syncobj()?;
    g.import_sync_file(imported, gate_file.as_fd())?;
    // The first job waits for a CPU gate opened just before the teardown, so the jobs are
    // still running and queued then however slow the submits (a 90 ms job could otherwise
    // end first on a loaded host). The teardown then races the scheduler handing the first
    // job to the hardware, as the next test does on purpose.
    let start = crate::sw_sync::Timeline::new().context("sw_sync timeline")?;
    let started = g.syncobj()?;
    g.import_sync_file(started, start.fence(1)?.as_fd())?;
    let mut fences: Vec<OwnedFd> = Vec::new();
    // Running and queued (kernel mode puts 8 jobs of a priority on the hardware, so 12
    // leave some in the scheduler), then one waiting for the gate.
    for i in 0..13 {
        let s = g.syncobj()?;
        let mut syncs = vec![Sync::signal(s, 0)];
        if i == 12 {
            syncs.insert(0, Sync::wait(imported, 0));
        }
        if i == 0 {
            syncs.insert(0, Sync::wait(started, 0));
        }
        g.submit(queue, BASE, slow.len(), &syncs)?;
        fences.push(g.export_sync_file(s)?);
    }
    start.advance(1)?;
    match how {
        Teardown::DestroyQueue => g.queue_destroy(queue)?,
        // Closes the file with its queue, VM and jobs alive.
        Teardown::CloseFile => drop(g),
    }
    for (i, f) in fences.iter().enumerate() {
        ensure!(
            sync_file_wait(f.as_fd(), 20_000)?,
            "job {i} never ended after the teardown"
        );
        let status = sync_file_status(f.as_fd())?;
        ensure!(
            status == Err(libc::ECANCELED),
            "job {i}: {status:?}, expected ECANCELED"
        );
    }
    // The gate's own job is another client's: untouched.
    other.wait(gate, WAIT_MS)?;
    ensure!(
        gate_ctx.fence_result(gate)? == Ok(()),
        "the gate job failed"
    );
    Ok(())
}

/// A queue destroyed while the scheduler is handing its jobs to the hardware (a gate opened
/// just before lets a stream of them go) is gone from the firmware as well: its id, reused,
/// makes a queue again. (Before the destroy refused such a late entry, one pushed after the
/// firmware queue's reset kept it busy, the destroy was refused, and the next QUEUE_CREATE
/// that got the id failed with EEXIST.) Every job runs or is cancelled.
fn a_queue_destroyed_as_its_jobs_become_ready_can_be_made_again() -> Result<()> {
    let g = Gpu::open_first()?;
    let vm = g.vm_create()?;
    let bo = g.gem_create(1 << 16)?;
    g.vm_map(vm, bo, BASE, 1 << 16)?;
    let mut c = CmdBuf::new();
    c.write32(BASE + 0x8000, 1);
    g.map(bo, 1 << 16)?.write(0, c.bytes());
    for round in 0..24u32 {
        let queue = g
            .queue_create(vm, uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_NORMAL)
            .with_context(|| format!("round {round}: QUEUE_CREATE"))?;
        let timeline = crate::sw_sync::Timeline::new().context("sw_sync timeline")?;
        let gate = g.syncobj()?;
        g.import_sync_file(gate, timeline.fence(1)?.as_fd())?;
        let done = g.syncobj()?;
        let mut fences = Vec::new();
        for _ in 0..32 {
            g.submit(
                queue,
                BASE,
                c.len(),
                &[Sync::wait(gate, 0), Sync::signal(done, 0)],
            )?;
            fences.push(g.export_sync_file(done)?);
        }
        timeline.advance(1)?;
        // From no pause to under a millisecond, so that the destroy comes at different points
        // of the stream of jobs going to the hardware.
        std::thread::sleep(std::time::Duration::from_micros(u64::from(round % 8) * 100));
        g.queue_destroy(queue)
            .with_context(|| format!("round {round}: QUEUE_DESTROY"))?;
        for (i, f) in fences.iter().enumerate() {
            ensure!(
                sync_file_wait(f.as_fd(), 20_000)?,
                "round {round}: job {i} never ended"
            );
            let status = sync_file_status(f.as_fd())?;
            ensure!(
                status == Ok(true) || status == Err(libc::ECANCELED),
                "round {round}: job {i} ended with {status:?}"
            );
        }
        g.syncobj_destroy(gate)?;
        g.syncobj_destroy(done)?;
    }
    // The device still runs work.
    crate::fixture::first_device_works()
}

/// One file takes at most its share of queues and VMs; another client still gets both.
fn per_file_limits_leave_queues_and_vms_for_others() -> Result<()> {
    let hog = Gpu::open_first()?;
    let max_vms = hog.get_param(uapi::drm_vagx_param_DRM_VAGX_PARAM_MAX_VMS_PER_FILE)?;
    let max_queues = hog.get_param(uapi::drm_vagx_param_DRM_VAGX_PARAM_MAX_QUEUES_PER_FILE)?;
    let device_queues = hog.get_param(uapi::drm_vagx_param_DRM_VAGX_PARAM_MAX_QUEUES)?;
    ensure!(
        max_queues > 0 && max_queues < device_queues && max_vms > 0,
        "limits {max_queues}/{device_queues} queues, {max_vms} VMs"
    );
    let mut vms = Vec::new();
    for _ in 0..max_vms {
        vms.push(hog.vm_create().context("VM_CREATE within the limit")?);
    }
    expect_errno(hog.vm_create(), libc::ENOSPC, "VM_CREATE past the limit")?;
    for _ in 0..max_queues {
        hog.queue_create(vms[0], uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_NORMAL)
            .context("QUEUE_CREATE within the limit")?;
    }
    expect_errno(
        hog.queue_create(vms[0], uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_NORMAL),
        libc::ENOSPC,
        "QUEUE_CREATE past the limit",
    )?;
    // Another client is not denied, and its queue runs work.
    let g = Gpu::open_first()?;
    let ctx = Ctx::normal(&g)?;
    let mut c = CmdBuf::new();
    c.write32(ctx.va(0), 5);
    ctx.run_and_wait(&c)?;
    ensure!(ctx.map.u32_at(ctx.off(0)) == 5);
    // Freed room can be used again.
    hog.vm_destroy(vms.pop().expect("max_vms > 0"))?;
    hog.vm_create().context("VM_CREATE after a destroy")?;
    Ok(())
}

/// A signalled timeline point must be above the timeline's last point (EINVAL otherwise),
/// also within one submit.
fn timeline_points_must_increase() -> Result<()> {
    let g = Gpu::open_first()?;
    let ctx = Ctx::normal(&g)?;
    let t = g.syncobj()?;
    let mut c = CmdBuf::new();
    c.nop();
    ctx.run(&c, &[Sync::signal(t, 5)]).context("point 5")?;
    expect_errno(
        ctx.run(&c, &[Sync::signal(t, 5)]),
        libc::EINVAL,
        "point 5 again",
    )?;
    expect_errno(
        ctx.run(&c, &[Sync::signal(t, 3)]),
        libc::EINVAL,
        "point 3 after 5",
    )?;
    expect_errno(
        ctx.run(&c, &[Sync::signal(t, 8), Sync::signal(t, 7)]),
        libc::EINVAL,
        "8 then 7 in one submit",
    )?;
    ctx.run(&c, &[Sync::signal(t, 6), Sync::signal(t, 9)])
        .context("6 and 9")?;
    g.wait_point(t, 9, WAIT_MS)?;
    ensure!(g.query(t)? == 9, "timeline at {}", g.query(t)?);
    Ok(())
}

/// A dumb buffer cannot be made: the shmem helper would make an object that is not a vagx
/// buffer. (Imports, which the same hazard once kept out, are the PRIME suite's.)
fn dumb_buffers_are_refused() -> Result<()> {
    let cards = gpu::card_nodes()?;
    let card = Gpu::open(cards.first().context("no vagx card node")?)?;
    expect_errno(card.create_dumb(64, 64), libc::ENOSYS, "MODE_CREATE_DUMB")
}

/// SYNCOBJ_WAIT with a count of 2^32 - 1 is a clean ENOMEM, without a kernel warning (the
/// test boot counts warnings as failures).
fn syncobj_wait_with_a_huge_count_fails_cleanly() -> Result<()> {
    let g = Gpu::open_first()?;
    let s = g.syncobj()?;
    expect_errno(
        g.syncobj_wait_raw(&[s], u32::MAX),
        libc::ENOMEM,
        "SYNCOBJ_WAIT with 2^32 - 1 handles",
    )?;
    // A sane count still works.
    let ctx = Ctx::normal(&g)?;
    let mut c = CmdBuf::new();
    c.nop();
    let done = ctx.run_and_wait(&c)?;
    g.syncobj_wait_raw(&[done], 1)
        .context("SYNCOBJ_WAIT on one handle")?;
    Ok(())
}

/// The `silent N` count of the first device's debugfs `queues` (its counters line).
fn silent_count() -> Result<u32> {
    let stats = debugfs_read("queues")?;
    let n = stats
        .split_whitespace()
        .skip_while(|w| *w != "silent")
        .nth(1)
        .context("no silent count in stats")?;
    Ok(n.parse()?)
}

/// Jobs around a firmware that goes silent: `(results, the context's buffer values)`.
fn jobs_around_a_silence(g: &Gpu, ctx: &Ctx<'_>, boots: u32) -> Result<Vec<Result<(), i32>>> {
    let mut syncs = Vec::new();
    // More than kernel mode puts on the hardware for one priority (8), so that some wait in
    // the scheduler when the firmware goes quiet.
    for i in 0..12u32 {
        let s = g.syncobj()?;
        let mut c = CmdBuf::new();
        c.delay(20_000_000).write32(ctx.va(u64::from(i) * 4), i + 1);
        ctx.run(&c, &[Sync::signal(s, 0)])?;
        syncs.push(s);
    }
    inject(&format!("silence {boots}"))?;
    let mut results = Vec::new();
    for s in &syncs {
        // The scheduler's backstop (2 s), the unanswered ping (2 s) and the reboot.
        g.wait(*s, WAIT_MS)
            .context("a job never ended after the firmware went silent")?;
        results.push(ctx.fence_result(*s)?);
    }
    Ok(results)
}

/// A firmware that stops answering without a crash message is found by the scheduler's
/// backstop and recovered as from a crash: jobs it had fail with ENODEV, jobs it did not have
/// run after the reboot, and the device works on.
fn silent_firmware_is_detected_and_recovered() -> Result<()> {
    let g = Gpu::open_first()?;
    let ctx = Ctx::normal(&g)?;
    let before = silent_count()?;
    let results = jobs_around_a_silence(&g, &ctx, 0)?;
    ensure!(
        silent_count()? == before + 1,
        "the silence was not noticed once"
    );
    let lost = results.iter().filter(|r| **r == Err(libc::ENODEV)).count();
    ensure!(
        lost >= 1,
        "no job the silent firmware had failed: {results:?}"
    );
    for (i, r) in results.iter().enumerate() {
        let value = ctx.map.u32_at(ctx.off(i as u64 * 4));
        match r {
            Ok(()) => ensure!(value == i as u32 + 1, "job {i} succeeded but did not write"),
            Err(libc::ENODEV) => ensure!(value == 0, "job {i} failed but wrote"),
            Err(e) => anyhow::bail!("job {i}: errno {e}"),
        }
    }
    let mut c = CmdBuf::new();
    c.write32(ctx.va(0x100), 77);
    ctx.run_and_wait(&c).context("a job after the recovery")?;
    ensure!(ctx.map.u32_at(ctx.off(0x100)) == 77);
    Ok(())
}

/// When the silent firmware does not boot again either, the device is lost: every job ends
/// with ENODEV (or had completed), later calls are ENODEV; rebinding brings it back.
fn silent_firmware_that_does_not_come_back_loses_the_device() -> Result<()> {
    // The device `Gpu::open_first` opens.
    let address = crate::fixture::pci_address_of(0)?;
    {
        let g = Gpu::open_first()?;
        let ctx = Ctx::normal(&g)?;
        // The reboot after the silence hangs too; the one after that (the rebind's) works.
        let results = jobs_around_a_silence(&g, &ctx, 1)?;
        ensure!(
            results.iter().all(|r| r.is_ok() || *r == Err(libc::ENODEV)),
            "results {results:?}"
        );
        ensure!(
            results.contains(&Err(libc::ENODEV)),
            "no job failed: {results:?}"
        );
        // The jobs the firmware had fail before the reboot is tried: the loss comes after.
        let lost = uapi::drm_vagx_queue_state_DRM_VAGX_QUEUE_DEVICE_LOST;
        let start = std::time::Instant::now();
        while g.queue_status(ctx.queue)?.state != lost {
            ensure!(
                start.elapsed() < std::time::Duration::from_secs(20),
                "the device was not declared lost"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let mut c = CmdBuf::new();
        c.nop();
        expect_errno(ctx.run(&c, &[]), libc::ENODEV, "submit to a lost device")?;
        expect_errno(g.vm_create(), libc::ENODEV, "VM_CREATE on a lost device")?;
    }
    rebind(&address)
}
