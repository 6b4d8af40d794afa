// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The driver's conformance tests: every ioctl with good and bad input, real GPU work with
//! checked results, syncobjs (binary, timeline, sync_file), faults, hangs and isolation.

use std::{io, os::fd::AsFd, thread, time::Duration};

use anyhow::{ensure, Context, Result};
use vagx_abi::regs;

use crate::{
    cmdbuf::{fnv1a64, CmdBuf},
    fixture::{
        debugfs_dir, debugfs_read, driver_counter, expect_errno, first_device_works, inject, Ctx,
        BASE, WAIT_MS,
    },
    gpu::{self, sync_file_status, Gpu, Sync},
    registry::{tests, Test},
    sw_sync, sysfs, uapi, workload,
};

/// The driver's conformance tests, in order (the runner adds the other driver suites).
pub fn tests() -> Vec<Test<'static>> {
    tests![
        render_node_per_device,
        get_param_reports_the_device,
        get_param_rejects_bad_input,
        gem_create_checks_arguments,
        gem_objects_are_zeroed_and_mappable,
        vm_bind_checks_arguments,
        queue_create_checks_arguments,
        queue_set_param_checks_arguments_and_keeps_queued_jobs,
        a_queue_raised_with_jobs_queued_runs_them_first_in_order,
        queue_status_reports_the_queues_statistics,
        submit_deadlines_order_a_priority_s_queued_jobs_and_are_counted,
        a_deadline_from_submit_sync_file_or_syncobj_wait_runs_its_job_first,
        submit_checks_arguments,
        fill_copy_checksum_results_are_right,
        firmware_busy_time_is_each_queues_delays,
        gemm_and_reduce_results_are_right,
        binary_syncobj_orders_two_queues,
        timeline_syncobj_chains_jobs,
        sync_file_export_and_import,
        wait_for_submit_sees_a_later_submit,
        failed_wait_fails_the_job_without_running_it,
        gpu_reaches_only_its_vm,
        hang_times_out_only_the_culprit,
        clients_are_isolated,
        another_process_cannot_use_our_objects,
        unknown_ioctls_are_rejected,
        queue_destroy_cancels_unfinished_jobs,
        close_with_jobs_in_flight,
        debugfs_shows_rings_queues_sched_and_log,
        debugfs_floor_reports_the_device_round_trip,
        fdinfo_reports_engine_time_and_memory,
        fdinfo_utilisation_matches_the_device_counters,
        repeated_hangs_ban_the_queue,
        firmware_crash_is_recovered,
        unbind_with_open_files_and_jobs_in_flight,
        tool_submit_runs_a_described_command_buffer,
        tool_stress_processes_queues_priorities,
        tool_bench_writes_json,
        tool_demo_recovers_its_hang,
    ]
}

fn render_node_per_device() -> Result<()> {
    let nodes = gpu::render_nodes()?;
    let devices = sysfs::vagx_devices()?.len();
    ensure!(
        nodes.len() == devices,
        "{} render nodes for {devices} devices",
        nodes.len()
    );
    for n in &nodes {
        Gpu::open(n).with_context(|| format!("open {}", n.display()))?;
    }
    Ok(())
}

fn get_param_reports_the_device() -> Result<()> {
    let g = Gpu::open_first()?;
    let p = |param| {
        g.get_param(param)
            .with_context(|| format!("GET_PARAM {param}"))
    };
    ensure!(
        p(uapi::drm_vagx_param_DRM_VAGX_PARAM_ABI_VERSION)? == u64::from(regs::ABI_VERSION_VALUE)
    );
    let units = p(uapi::drm_vagx_param_DRM_VAGX_PARAM_UNITS)?;
    ensure!((1..=16).contains(&units), "units {units}");
    ensure!(p(uapi::drm_vagx_param_DRM_VAGX_PARAM_VA_BITS)? == 39);
    let mode = p(uapi::drm_vagx_param_DRM_VAGX_PARAM_SCHED_MODE)?;
    ensure!(mode <= 1, "sched mode {mode}");
    ensure!(p(uapi::drm_vagx_param_DRM_VAGX_PARAM_MAX_QUEUES)? == 128);
    ensure!(p(uapi::drm_vagx_param_DRM_VAGX_PARAM_MAX_CMDBUF_SIZE)? == 1 << 20);
    Ok(())
}

fn get_param_rejects_bad_input() -> Result<()> {
    let g = Gpu::open_first()?;
    expect_errno(g.get_param(99), libc::EINVAL, "unknown param")?;
    expect_errno(g.get_param_raw(0, 1), libc::EINVAL, "non-zero pad")?;
    Ok(())
}

fn gem_create_checks_arguments() -> Result<()> {
    let g = Gpu::open_first()?;
    expect_errno(g.gem_create(0), libc::EINVAL, "size 0")?;
    expect_errno(g.gem_create_raw(4096, 1), libc::EINVAL, "flags")?;
    expect_errno(g.mmap_offset_raw(12345, 0), libc::ENOENT, "unknown handle")?;
    let h = g.gem_create(100)?;
    expect_errno(g.mmap_offset_raw(h, 1), libc::EINVAL, "mmap offset flags")?;
    Ok(())
}

fn gem_objects_are_zeroed_and_mappable() -> Result<()> {
    let g = Gpu::open_first()?;
    // 100 bytes round up to a page.
    let h = g.gem_create(100)?;
    let m = g.map(h, 4096)?;
    let mut buf = vec![0xffu8; 4096];
    m.read(0, &mut buf);
    ensure!(buf.iter().all(|b| *b == 0), "new object not zeroed");
    m.write(4000, b"vagx");
    let m2 = g.map(h, 4096)?;
    let mut got = [0u8; 4];
    m2.read(4000, &mut got);
    ensure!(&got == b"vagx", "second mapping sees {got:?}");
    Ok(())
}

fn vm_bind_checks_arguments() -> Result<()> {
    let g = Gpu::open_first()?;
    let vm = g.vm_create()?;
    let bo = g.gem_create(64 * 1024)?;
    let map = |va, range, bo_offset, flags, handle| {
        g.vm_bind_raw(uapi::drm_vagx_vm_bind {
            vm_id: vm,
            op: uapi::DRM_VAGX_VM_BIND_OP_MAP,
            handle,
            flags,
            bo_offset,
            va,
            range,
        })
    };
    let rw = uapi::DRM_VAGX_VM_BIND_READ | uapi::DRM_VAGX_VM_BIND_WRITE;
    expect_errno(map(0x1001, 4096, 0, rw, bo), libc::EINVAL, "misaligned va")?;
    expect_errno(map(0x1000, 0, 0, rw, bo), libc::EINVAL, "empty range")?;
    expect_errno(map(0x1000, 100, 0, rw, bo), libc::EINVAL, "unaligned range")?;
    expect_errno(
        map(1 << 39, 4096, 0, rw, bo),
        libc::EINVAL,
        "beyond the VA space",
    )?;
    expect_errno(
        map(u64::MAX - 4095, 8192, 0, rw, bo),
        libc::EINVAL,
        "overflowing range",
    )?;
    expect_errno(
        map(0x1000, 4096, 64 * 1024, rw, bo),
        libc::EINVAL,
        "past the object",
    )?;
    expect_errno(map(0x1000, 4096, 0, 0, bo), libc::EINVAL, "no permission")?;
    expect_errno(map(0x1000, 4096, 0, 8, bo), libc::EINVAL, "unknown flag")?;
    expect_errno(
        map(0x1000, 4096, 0, rw, 999),
        libc::ENOENT,
        "unknown object",
    )?;
    let mut bad_vm = uapi::drm_vagx_vm_bind {
        vm_id: 999,
        op: 0,
        handle: bo,
        flags: rw,
        bo_offset: 0,
        va: 0x1000,
        range: 4096,
    };
    expect_errno(g.vm_bind_raw(bad_vm), libc::ENOENT, "unknown VM")?;
    bad_vm.vm_id = vm;
    bad_vm.op = 7;
    expect_errno(g.vm_bind_raw(bad_vm), libc::EINVAL, "unknown op")?;
    map(0x10000, 8192, 0, rw, bo).context("valid map")?;
    expect_errno(
        map(0x11000, 4096, 0, rw, bo),
        libc::EEXIST,
        "overlapping map",
    )?;
    let mut unmap = bad_vm;
    unmap.op = uapi::DRM_VAGX_VM_BIND_OP_UNMAP;
    unmap.va = 0x10000;
    unmap.range = 8192;
    expect_errno(g.vm_bind_raw(unmap), libc::EINVAL, "unmap with a handle")?;
    g.vm_unmap(vm, 0x10000, 8192).context("unmap")?;
    map(0x11000, 4096, 0, rw, bo).context("map after unmap")?;
    // Unmapping what is not mapped is fine.
    g.vm_unmap(vm, 0x4000_0000, 4096)
        .context("unmap of nothing")?;
    expect_errno(g.vm_destroy(999), libc::ENOENT, "destroy unknown VM")?;
    g.vm_destroy(vm).context("VM_DESTROY")?;
    Ok(())
}

fn queue_create_checks_arguments() -> Result<()> {
    let g = Gpu::open_first()?;
    let vm = g.vm_create()?;
    let base = uapi::drm_vagx_queue_create {
        vm_id: vm,
        priority: uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_NORMAL,
        pipe: uapi::DRM_VAGX_PIPE_COMPUTE,
        ..Default::default()
    };
    let with = |f: &dyn Fn(&mut uapi::drm_vagx_queue_create)| {
        let mut a = base;
        f(&mut a);
        g.queue_create_raw(a)
    };
    expect_errno(with(&|a| a.vm_id = 999), libc::ENOENT, "unknown VM")?;
    expect_errno(with(&|a| a.priority = 3), libc::EINVAL, "unknown priority")?;
    expect_errno(with(&|a| a.pipe = 2), libc::EINVAL, "unknown pipe")?;
    expect_errno(with(&|a| a.flags = 1), libc::EINVAL, "flags")?;
    expect_errno(with(&|a| a.pad = 1), libc::EINVAL, "pad")?;
    // The tests run as root, which has CAP_SYS_NICE.
    let q = with(&|a| a.priority = uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_HIGH)
        .context("high priority as root")?;
    let c = with(&|a| a.pipe = uapi::DRM_VAGX_PIPE_COPY).context("copy pipe")?;
    expect_errno(g.vm_destroy(vm), libc::EBUSY, "destroying a VM in use")?;
    g.queue_destroy(q)?;
    g.queue_destroy(c)?;
    expect_errno(g.queue_destroy(q), libc::ENOENT, "destroying twice")?;
    g.vm_destroy(vm).context("VM_DESTROY once unused")?;
    Ok(())
}

/// QUEUE_SET_PARAM: the weight's range, an unknown parameter, an unknown, another file's
/// and a destroyed queue; then weights changed while 20 jobs wait behind a gate, every job
/// completing with its result, the last one last (both modes: the device has weights from
/// ABI 1.6).
fn queue_set_param_checks_arguments_and_keeps_queued_jobs() -> Result<()> {
    const WEIGHT: u32 = uapi::drm_vagx_queue_param_DRM_VAGX_QUEUE_PARAM_WEIGHT;
    const NORMAL: u32 = uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_NORMAL;
    let g = Gpu::open_first()?;
    let ctx = Ctx::normal(&g)?;
    for bad in [0, 10_001, u64::from(u32::MAX) + 101, u64::MAX] {
        expect_errno(
            g.queue_set_param(ctx.queue, WEIGHT, bad),
            libc::EINVAL,
            &format!("weight {bad}"),
        )?;
    }
    expect_errno(
        g.queue_set_param(ctx.queue, WEIGHT + 1, 100),
        libc::EINVAL,
        "unknown parameter",
    )?;
    expect_errno(
        g.queue_set_param(999, WEIGHT, 100),
        libc::ENOENT,
        "unknown queue",
    )?;
    // Queue ids are per file: another file's second queue has an id this file does not.
    let other = Gpu::open_first()?;
    let other_vm = other.vm_create()?;
    let _first = other.queue_create(other_vm, NORMAL)?;
    let second = other.queue_create(other_vm, NORMAL)?;
    ensure!(second != ctx.queue, "the ids collide");
    expect_errno(
        g.queue_set_param(second, WEIGHT, 100),
        libc::ENOENT,
        "another file's queue",
    )?;
    let gone = g.queue_create(ctx.vm, NORMAL)?;
    g.queue_destroy(gone)?;
    expect_errno(
        g.queue_set_param(gone, WEIGHT, 100),
        libc::ENOENT,
        "a destroyed queue",
    )?;
    for w in [1, 10_000, 100] {
        g.queue_set_param(ctx.queue, WEIGHT, w)
            .with_context(|| format!("weight {w}"))?;
    }
    let gate = sw_sync::Timeline::new().context("sw_sync timeline")?;
    let gated = g.syncobj()?;
    g.import_sync_file(gated, gate.fence(1)?.as_fd())?;
    let mut syncs = Vec::new();
    for i in 0..20u32 {
        let s = g.syncobj()?;
        let mut c = CmdBuf::new();
        c.write32(ctx.va(u64::from(i) * 4), i + 1)
            .write32(ctx.va(256), i + 1);
        let first = [Sync::wait(gated, 0), Sync::signal(s, 0)];
        let rest = [Sync::signal(s, 0)];
        ctx.run(&c, if i == 0 { &first[..] } else { &rest[..] })?;
        syncs.push(s);
        if i == 9 {
            g.queue_set_param(ctx.queue, WEIGHT, 2500)
                .context("a weight with jobs queued")?;
        }
    }
    g.queue_set_param(ctx.queue, WEIGHT, 7)
        .context("a weight with 20 jobs queued")?;
    gate.advance(1)?;
    for (i, s) in syncs.iter().enumerate() {
        g.wait(*s, WAIT_MS)
            .with_context(|| format!("job {i} never signalled"))?;
        ensure!(ctx.fence_result(*s)? == Ok(()), "job {i} failed");
        ensure!(
            ctx.map.u32_at(ctx.off(4 * i as u64)) == i as u32 + 1,
            "job {i} did not run"
        );
    }
    ensure!(
        ctx.map.u32_at(ctx.off(256)) == 20,
        "the last job did not run last: {}",
        ctx.map.u32_at(ctx.off(256))
    );
    Ok(())
}

/// QUEUE_SET_PARAM's priority: its range, and CAP_SYS_NICE for High (in a thread that
/// dropped it, as at creation); then a Low queue raised to High while Normal work holds every
/// unit for 100 ms and another Low queue's jobs (in kernel mode all of Low's credits) are
/// ahead of it: its four queued jobs all finish, in order and with their results, before
/// the Normal queues' last jobs and any of the Low ones, which then finish too. Both
/// scheduling modes.
fn a_queue_raised_with_jobs_queued_runs_them_first_in_order() -> Result<()> {
    const PRIORITY: u32 = uapi::drm_vagx_queue_param_DRM_VAGX_QUEUE_PARAM_PRIORITY;
    const LOW: u32 = uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_LOW;
    const NORMAL: u32 = uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_NORMAL;
    const HIGH: u32 = uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_HIGH;
    /// Jobs of the Low queue ahead: kernel mode's credits per priority.
    const AHEAD: usize = 8;
    let g = Gpu::open_first()?;
    let ctx = Ctx::normal(&g)?;
    for bad in [3, 99, u64::from(u32::MAX), u64::MAX] {
        expect_errno(
            g.queue_set_param(ctx.queue, PRIORITY, bad),
            libc::EINVAL,
            &format!("priority {bad}"),
        )?;
    }
    expect_errno(
        g.queue_set_param(999, PRIORITY, u64::from(LOW)),
        libc::ENOENT,
        "unknown queue",
    )?;
    thread::spawn(|| -> Result<()> {
        crate::caps::drop_sys_nice_in_this_thread().context("capset")?;
        let g = Gpu::open_first()?;
        let ctx = Ctx::normal(&g)?;
        expect_errno(
            g.queue_set_param(ctx.queue, PRIORITY, u64::from(HIGH)),
            libc::EACCES,
            "High without CAP_SYS_NICE",
        )?;
        expect_errno(
            g.queue_create(ctx.vm, HIGH),
            libc::EACCES,
            "a High queue without CAP_SYS_NICE",
        )?;
        g.queue_set_param(ctx.queue, PRIORITY, u64::from(LOW))
            .context("Low without CAP_SYS_NICE")?;
        g.queue_set_param(ctx.queue, PRIORITY, u64::from(NORMAL))
            .context("Normal without CAP_SYS_NICE")
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the thread without CAP_SYS_NICE panicked"))??;

    let units = g.get_param(uapi::drm_vagx_param_DRM_VAGX_PARAM_UNITS)?;
    let mut fillers = Vec::new();
    for _ in 0..units {
        fillers.push(Ctx::normal(&g)?);
    }
    let ahead = Ctx::new(&g, LOW, 1 << 20)?;
    let raised = Ctx::new(&g, LOW, 1 << 20)?;
    let mut others = Vec::new();
    // 100 ms of Normal work on every unit in jobs of 20 ms (under the firmware's 100 ms
    // watchdog), a command boundary every 4 ms. The last job of each is what must still be
    // running when the raised queue is done.
    let mut earlier = Vec::new();
    for f in &fillers {
        for i in 0..5 {
            let s = g.syncobj()?;
            let mut c = CmdBuf::new();
            for _ in 0..5 {
                c.delay(4_000_000);
            }
            c.write32(f.va(0), i + 1);
            f.run(&c, &[Sync::signal(s, 0)])?;
            if i < 4 {
                earlier.push((f, s));
            } else {
                others.push((f, s));
            }
        }
    }
    for _ in 0..AHEAD {
        let s = g.syncobj()?;
        let mut c = CmdBuf::new();
        for _ in 0..10 {
            c.delay(1_000_000);
        }
        ahead.run(&c, &[Sync::signal(s, 0)])?;
        others.push((&ahead, s));
    }
    let mut mine = Vec::new();
    for i in 0..4u32 {
        let s = g.syncobj()?;
        let mut c = CmdBuf::new();
        c.delay(1_000_000)
            .delay(1_000_000)
            .write32(raised.va(u64::from(i) * 4), i + 1)
            .write32(raised.va(64), i + 1);
        raised.run(&c, &[Sync::signal(s, 0)])?;
        mine.push(s);
    }
    g.queue_set_param(raised.queue, PRIORITY, u64::from(HIGH))
        .context("raising a queue with jobs queued")?;
    for (i, s) in mine.iter().enumerate() {
        g.wait(*s, WAIT_MS)
            .with_context(|| format!("raised job {i} never signalled"))?;
        ensure!(raised.fence_result(*s)? == Ok(()), "raised job {i} failed");
    }
    let mut pending = 0;
    for (c, s) in &others {
        pending += usize::from(c.fence_pending(*s)?);
    }
    ensure!(
        pending == others.len(),
        "{} of the {} last Normal jobs and Low jobs finished before the raised queue's last",
        others.len() - pending,
        others.len()
    );
    for i in 0..4 {
        ensure!(
            raised.map.u32_at(raised.off(4 * i)) == i as u32 + 1,
            "raised job {i} did not run"
        );
    }
    ensure!(
        raised.map.u32_at(raised.off(64)) == 4,
        "the raised queue's last job did not run last"
    );
    for (i, (c, s)) in others.iter().chain(earlier.iter()).enumerate() {
        g.wait(*s, WAIT_MS)
            .with_context(|| format!("job {i} of the others never signalled"))?;
        ensure!(
            c.fence_result(*s)? == Ok(()),
            "job {i} of the others failed"
        );
    }
    // Lowered again with nothing queued: accepted.
    g.queue_set_param(raised.queue, PRIORITY, u64::from(LOW))?;
    Ok(())
}

/// QUEUE_GET_STATUS's statistics: none on a new queue; five jobs held behind a gate for
/// 30 ms are its depth, then submitted and handed over with a wait of 30 ms or more (the p99
/// bound no smaller than the mean), with the device time of their delays; a faulting job
/// fails and was handed over, a job of another queue that waits for it fails and was not.
fn queue_status_reports_the_queues_statistics() -> Result<()> {
    const JOBS: u64 = 5;
    let g = Gpu::open_first()?;
    let ctx = Ctx::normal(&g)?;
    let st = g.queue_status(ctx.queue)?;
    ensure!(
        (
            st.submitted,
            st.failed,
            st.depth,
            st.wait_count,
            st.gpu_time_ns
        ) == (0, 0, 0, 0, 0),
        "a new queue: {st:?}"
    );
    let gate = sw_sync::Timeline::new().context("sw_sync timeline")?;
    let gated = g.syncobj()?;
    g.import_sync_file(gated, gate.fence(1)?.as_fd())?;
    let mut syncs = Vec::new();
    for i in 0..JOBS {
        let s = g.syncobj()?;
        let mut c = CmdBuf::new();
        c.delay(1_000_000).write32(ctx.va(4 * i), 1);
        let first = [Sync::wait(gated, 0), Sync::signal(s, 0)];
        let rest = [Sync::signal(s, 0)];
        ctx.run(&c, if i == 0 { &first[..] } else { &rest[..] })?;
        syncs.push(s);
    }
    thread::sleep(Duration::from_millis(30));
    let st = g.queue_status(ctx.queue)?;
    ensure!(
        st.submitted == JOBS && st.depth == JOBS && st.wait_count == 0,
        "behind the gate: {st:?}"
    );
    gate.advance(1)?;
    for s in &syncs {
        g.wait(*s, WAIT_MS)?;
    }
    let st = g.queue_status(ctx.queue)?;
    ensure!(
        st.submitted == JOBS && st.depth == 0 && st.failed == 0 && st.wait_count == JOBS,
        "after the gate: {st:?}"
    );
    ensure!(
        st.wait_avg_ns >= 30_000_000 && st.wait_p99_ns >= st.wait_avg_ns,
        "waits: {st:?}"
    );
    ensure!(
        st.gpu_time_ns >= JOBS * 1_000_000,
        "device time {} for {JOBS} delays of 1 ms",
        st.gpu_time_ns
    );
    // A job of another queue that faults, and a job of this one that waits for it.
    let other = Ctx::normal(&g)?;
    let bad = g.syncobj()?;
    let mut c = CmdBuf::new();
    c.write32(0x7000_0000, 1);
    other.run(&c, &[Sync::signal(bad, 0)])?;
    g.wait(bad, WAIT_MS)?;
    let after = g.syncobj()?;
    let mut w = CmdBuf::new();
    w.write32(ctx.va(64), 99);
    ctx.run(&w, &[Sync::wait(bad, 0), Sync::signal(after, 0)])?;
    g.wait(after, WAIT_MS)?;
    ensure!(
        ctx.fence_result(after)? == Err(libc::EIO),
        "the waiting job"
    );
    let st = g.queue_status(ctx.queue)?;
    ensure!(
        st.submitted == JOBS + 1 && st.failed == 1 && st.wait_count == JOBS && st.depth == 0,
        "after a failed wait: {st:?}"
    );
    let st = other.gpu.queue_status(other.queue)?;
    ensure!(
        st.submitted == 1 && st.failed == 1 && st.wait_count == 1 && st.depth == 0,
        "the faulting queue: {st:?}"
    );
    Ok(())
}

/// SUBMIT's deadline. Any value is accepted: none (0), past (the most urgent), far ahead
/// (clamped). In kernel mode, with Normal's 8 credits held by a queue of 50 ms jobs, three
/// gated jobs of three queues, pushed without a deadline, with one 2 s ahead and with one
/// already past: the two with a deadline start at once on the deadline credits, the one
/// without waits for a credit to come back.
/// Both modes count each queue's deadline jobs and misses (the past one missed).
fn submit_deadlines_order_a_priority_s_queued_jobs_and_are_counted() -> Result<()> {
    let g = Gpu::open_first()?;
    let now = || u64::try_from(gpu::now_ns()).unwrap_or(0);
    let kernel_mode = g.get_param(uapi::drm_vagx_param_DRM_VAGX_PARAM_SCHED_MODE)?
        == u64::from(uapi::drm_vagx_sched_mode_DRM_VAGX_SCHED_KERNEL);
    let filler = Ctx::normal(&g)?;
    let (plain, ahead, past) = (Ctx::normal(&g)?, Ctx::normal(&g)?, Ctx::normal(&g)?);
    for d in [1, u64::MAX] {
        let mut c = CmdBuf::new();
        c.write32(plain.va(0), 1);
        plain
            .run_by(&c, &[], d)
            .with_context(|| format!("deadline {d}"))?;
    }
    // The gated jobs first (waiting, they hold no credit), then the fillers, so that the
    // gate opens before the first filler ends however slow the submits are.
    let gate = sw_sync::Timeline::new().context("sw_sync timeline")?;
    let mut jobs = Vec::new();
    for (ctx, deadline) in [(&plain, 0), (&ahead, now() + 2_000_000_000), (&past, 1)] {
        let gated = g.syncobj()?;
        g.import_sync_file(gated, gate.fence(1)?.as_fd())?;
        let s = g.syncobj()?;
        let mut c = CmdBuf::new();
        c.delay(1_000_000).write32(ctx.va(64), 7);
        ctx.run_by(&c, &[Sync::wait(gated, 0), Sync::signal(s, 0)], deadline)?;
        jobs.push((ctx, s));
    }
    let mut fill = Vec::new();
    for _ in 0..8 {
        let s = g.syncobj()?;
        let mut c = CmdBuf::new();
        c.delay(50_000_000);
        filler.run(&c, &[Sync::signal(s, 0)])?;
        fill.push(s);
    }
    gate.advance(1)?;
    if kernel_mode {
        // The fillers hold the priority's 8 credits for 50 ms; the two jobs with a deadline
        // take its 2 deadline credits at once (their order between them is EDF's, checked
        // by KUnit and on the device by the firmware's tests), the plain one waits for a
        // filler to end.
        let (p, a, n) = (&jobs[2], &jobs[1], &jobs[0]);
        g.wait(p.1, WAIT_MS)?;
        g.wait(a.1, WAIT_MS)?;
        ensure!(
            n.0.fence_pending(n.1)?,
            "the job without a deadline ran before those with one"
        );
    }
    for (ctx, s) in &jobs {
        g.wait(*s, WAIT_MS)?;
        ensure!(ctx.fence_result(*s)? == Ok(()) && ctx.map.u32_at(ctx.off(64)) == 7);
    }
    for s in &fill {
        g.wait(*s, WAIT_MS)?;
    }
    let (sp, sa, sn) = (
        g.queue_status(past.queue)?,
        g.queue_status(ahead.queue)?,
        g.queue_status(plain.queue)?,
    );
    ensure!(
        (sp.deadline_jobs, sp.deadline_misses) == (1, 1),
        "the past deadline: {sp:?}"
    );
    ensure!(
        (sa.deadline_jobs, sa.deadline_misses) == (1, 0),
        "2 s ahead: {sa:?}"
    );
    // The two of the argument check (1: missed; u64::MAX: clamped, met) and one without.
    ensure!(
        (sn.deadline_jobs, sn.deadline_misses) == (2, 1),
        "the plain queue: {sn:?}"
    );
    Ok(())
}

/// However a job's deadline is given — in SUBMIT, on its exported sync_file after the submit
/// (SYNC_IOC_SET_DEADLINE), by a syncobj wait with WAIT_DEADLINE — it reaches the device
/// (ABI 1.7): on a GPU busy with other queues of its priority, the job completes before its
/// twin without a deadline submitted just before it, both released by one gate. In kernel
/// mode the scheduler picks it
/// first and the device runs it first; in firmware mode the device alone orders the two.
/// Once the job has completed, a deadline on it is accepted and changes nothing.
fn a_deadline_from_submit_sync_file_or_syncobj_wait_runs_its_job_first() -> Result<()> {
    let g = Gpu::open_first()?;
    let units = g.get_param(uapi::drm_vagx_param_DRM_VAGX_PARAM_UNITS)?;
    let abi = g.get_param(uapi::drm_vagx_param_DRM_VAGX_PARAM_ABI_VERSION)?;
    ensure!(
        abi & 0xffff >= u64::from(regs::ABI_MINOR_DEADLINES),
        "the first GPU speaks ABI {abi:#x}"
    );
    let now = || u64::try_from(gpu::now_ns()).unwrap_or(0);
    // Four busy queues per unit, 80 ms of device time on each: the twins share the units
    // with them unless a deadline says otherwise.
    let load: Vec<Ctx> = (0..4 * units)
        .map(|_| Ctx::normal(&g))
        .collect::<Result<_>>()?;
    let (twin, due) = (Ctx::normal(&g)?, Ctx::normal(&g)?);
    for (round, how) in ["submit", "sync_file", "syncobj wait"]
        .into_iter()
        .enumerate()
    {
        let posted = driver_counter("deadlines")?;
        // CAST: three rounds.
        let mark = 100 + round as u32;
        let work = |ctx: &Ctx| {
            let mut c = CmdBuf::new();
            for _ in 0..10 {
                c.delay(1_000_000);
            }
            c.write32(ctx.va(64), mark);
            c
        };
        // Both twins wait for one gate, opened once the load runs: they become ready at
        // the same moment, so that a stall of the guest between their SUBMITs cannot order
        // them.
        let gate = sw_sync::Timeline::new().context("sw_sync timeline")?;
        let gated = g.syncobj()?;
        g.import_sync_file(gated, gate.fence(1)?.as_fd())?;
        let (st, sd) = (g.syncobj()?, g.syncobj()?);
        twin.run(&work(&twin), &[Sync::wait(gated, 0), Sync::signal(st, 0)])?;
        let deadline = now() + 2_000_000;
        let due_syncs = [Sync::wait(gated, 0), Sync::signal(sd, 0)];
        match how {
            "submit" => due.run_by(&work(&due), &due_syncs, deadline)?,
            _ => due.run(&work(&due), &due_syncs)?,
        }
        match how {
            "sync_file" => {
                let fd = g.export_sync_file(sd)?;
                gpu::sync_file_set_deadline(fd.as_fd(), deadline)?;
            }
            "syncobj wait" => {
                // Times out at once: the deadline is set before the wait.
                expect_errno(
                    g.wait_with_deadline(sd, deadline, 0),
                    libc::ETIME,
                    "a wait with no time left",
                )?;
            }
            _ => {}
        }
        let mut fill = Vec::new();
        for ctx in &load {
            for _ in 0..4 {
                let mut c = CmdBuf::new();
                for _ in 0..5 {
                    c.delay(1_000_000);
                }
                let s = g.syncobj()?;
                ctx.run(&c, &[Sync::signal(s, 0)])?;
                fill.push(s);
            }
        }
        gate.advance(1)?;
        g.wait(sd, WAIT_MS)?;
        ensure!(
            twin.fence_pending(st)?,
            "{how}: the twin without a deadline finished first"
        );
        ensure!(
            driver_counter("deadlines")? > posted,
            "{how}: no deadline reached the device"
        );
        g.wait(st, WAIT_MS)?;
        for (ctx, s) in [(&twin, st), (&due, sd)] {
            ensure!(
                ctx.fence_result(s)? == Ok(()) && ctx.map.u32_at(ctx.off(64)) == mark,
                "{how}: a twin's result"
            );
        }
        // A deadline on a job that has completed changes nothing and is no error, however
        // it is given.
        let done = g.export_sync_file(sd)?;
        gpu::sync_file_set_deadline(done.as_fd(), 1)
            .with_context(|| format!("{how}: a deadline on a signalled sync_file"))?;
        g.wait_with_deadline(sd, 1, 0)
            .with_context(|| format!("{how}: a wait with a deadline on a signalled job"))?;
        for s in fill {
            g.wait(s, WAIT_MS)?;
        }
    }
    Ok(())
}

fn submit_checks_arguments() -> Result<()> {
    let g = Gpu::open_first()?;
    let ctx = Ctx::normal(&g)?;
    let ok = uapi::drm_vagx_submit {
        queue_id: ctx.queue,
        cmdbuf: BASE,
        cmdbuf_size: 8,
        ..Default::default()
    };
    let with = |f: &dyn Fn(&mut uapi::drm_vagx_submit), syncs: &[uapi::drm_vagx_sync]| {
        let mut a = ok;
        f(&mut a);
        g.submit_raw(a, syncs)
    };
    expect_errno(
        with(&|a| a.queue_id = 999, &[]),
        libc::ENOENT,
        "unknown queue",
    )?;
    expect_errno(
        with(&|a| a.cmdbuf = BASE + 4, &[]),
        libc::EINVAL,
        "misaligned cmdbuf",
    )?;
    expect_errno(
        with(&|a| a.cmdbuf_size = 0, &[]),
        libc::EINVAL,
        "empty cmdbuf",
    )?;
    expect_errno(
        with(&|a| a.cmdbuf_size = 12, &[]),
        libc::EINVAL,
        "size not 8-aligned",
    )?;
    expect_errno(
        with(&|a| a.cmdbuf_size = (1 << 20) + 8, &[]),
        libc::EINVAL,
        "cmdbuf too big",
    )?;
    expect_errno(
        with(&|a| a.cmdbuf = u64::MAX - 7, &[]),
        libc::EINVAL,
        "cmdbuf wraps",
    )?;
    expect_errno(with(&|a| a.flags = 2, &[]), libc::EINVAL, "unknown flag")?;
    expect_errno(
        with(&|a| a.flags = 1 << 31, &[]),
        libc::EINVAL,
        "unknown flag",
    )?;
    expect_errno(
        with(&|a| a.sync_count = 65, &[]),
        libc::EINVAL,
        "too many syncs",
    )?;
    expect_errno(
        with(
            &|a| {
                a.sync_count = 1;
                a.syncs = 8;
            },
            &[],
        ),
        libc::EFAULT,
        "syncs pointer faults",
    )?;
    let s = g.syncobj()?;
    let sync = |handle, flags, point| uapi::drm_vagx_sync {
        handle,
        flags,
        point,
    };
    let n = |k: u32| move |a: &mut uapi::drm_vagx_submit| a.sync_count = k;
    expect_errno(
        with(&n(1), &[sync(s, 2, 0)]),
        libc::EINVAL,
        "unknown sync flag",
    )?;
    expect_errno(
        with(
            &n(2),
            &[sync(s, uapi::DRM_VAGX_SYNC_SIGNAL, 0), sync(s, 0, 0)],
        ),
        libc::EINVAL,
        "wait after signal",
    )?;
    expect_errno(
        with(&n(1), &[sync(999, 0, 0)]),
        libc::ENOENT,
        "unknown wait syncobj",
    )?;
    expect_errno(
        with(&n(1), &[sync(999, uapi::DRM_VAGX_SYNC_SIGNAL, 0)]),
        libc::ENOENT,
        "unknown signal syncobj",
    )?;
    expect_errno(
        with(&n(1), &[sync(s, 0, 5)]),
        libc::EINVAL,
        "wait for an unsubmitted point",
    )?;
    expect_errno(
        with(&n(1), &[sync(s, 0, 0)]),
        libc::EINVAL,
        "wait on an empty syncobj",
    )?;
    // Nothing was queued by the failures: a valid submit runs and is the queue's first job.
    let mut nop = CmdBuf::new();
    nop.nop();
    ctx.run_and_wait(&nop)?;
    let st = g.queue_status(ctx.queue)?;
    ensure!(
        st.completed == 1,
        "{} jobs completed, expected 1",
        st.completed
    );
    Ok(())
}

fn fill_copy_checksum_results_are_right() -> Result<()> {
    let g = Gpu::open_first()?;
    let ctx = Ctx::normal(&g)?;
    let len = 64 * 1024;
    let mut c = CmdBuf::new();
    c.fill(ctx.va(0), len, 0x1234_5678)
        .copy(ctx.va(0), ctx.va(len), len)
        .write32(ctx.va(2 * len), 0xabcd)
        .checksum(ctx.va(len), ctx.va(2 * len + 8), len);
    ctx.run_and_wait(&c)?;
    let mut copy = vec![0u8; usize::try_from(len)?];
    ctx.map.read(ctx.off(len), &mut copy);
    for (i, chunk) in copy.chunks(4).enumerate() {
        ensure!(
            chunk == 0x1234_5678u32.to_le_bytes(),
            "word {i} of the copy is {chunk:02x?}"
        );
    }
    ensure!(ctx.map.u32_at(ctx.off(2 * len)) == 0xabcd, "WRITE32 result");
    let mut sum = [0u8; 8];
    ctx.map.read(ctx.off(2 * len + 8), &mut sum);
    ensure!(
        u64::from_le_bytes(sum) == fnv1a64(&copy),
        "checksum differs from the CPU's"
    );
    Ok(())
}

fn gemm_and_reduce_results_are_right() -> Result<()> {
    let g = Gpu::open_first()?;
    let ctx = Ctx::normal(&g)?;
    let (m, n, k) = (3usize, 4usize, 5usize);
    let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.5 - 2.0).collect();
    let b: Vec<f32> = (0..k * n).map(|i| 1.0 + i as f32 * 0.25).collect();
    let put = |off: u64, v: &[f32]| {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        ctx.map.write(ctx.off(off), &bytes);
    };
    put(0, &a);
    put(4096, &b);
    let mut c = CmdBuf::new();
    // CAST: small dimensions.
    c.gemm(
        ctx.va(0),
        ctx.va(4096),
        ctx.va(8192),
        m as u32,
        n as u32,
        k as u32,
    )
    .reduce_sum(ctx.va(8192), ctx.va(12288), (m * n) as u64);
    ctx.run_and_wait(&c)?;
    let mut want_sum = 0f32;
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0f32;
            for p in 0..k {
                acc += a[i * k + p] * b[p * n + j];
            }
            let got = f32::from_bits(ctx.map.u32_at(ctx.off(8192 + 4 * (i * n + j) as u64)));
            ensure!(got == acc, "C[{i}][{j}] = {got}, expected {acc}");
            want_sum += acc;
        }
    }
    let got = f32::from_bits(ctx.map.u32_at(ctx.off(12288)));
    ensure!(got == want_sum, "sum {got}, expected {want_sum}");
    Ok(())
}

fn binary_syncobj_orders_two_queues() -> Result<()> {
    let g = Gpu::open_first()?;
    let ctx = Ctx::normal(&g)?;
    // A second queue in the same VM.
    let q2 = g.queue_create(ctx.vm, uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_LOW)?;
    let s = g.syncobj()?;
    let done = g.syncobj()?;
    let mut first = CmdBuf::new();
    first.delay(2_000_000).fill(ctx.va(0), 4096, 0x5555_aaaa);
    ctx.run(&first, &[Sync::signal(s, 0)])?;
    // The second job copies what the first one writes; it must wait for it.
    let mut second = CmdBuf::new();
    second.copy(ctx.va(0), ctx.va(4096), 4096);
    ctx.map
        .write(usize::try_from(15 * 4096u64)?, second.bytes());
    g.submit(
        q2,
        BASE + 15 * 4096,
        second.len(),
        &[Sync::wait(s, 0), Sync::signal(done, 0)],
    )?;
    g.wait(done, WAIT_MS)?;
    ensure!(
        ctx.map.u32_at(ctx.off(4096 + 4092)) == 0x5555_aaaa,
        "copy ran before the fill"
    );
    g.queue_destroy(q2)?;
    Ok(())
}

fn timeline_syncobj_chains_jobs() -> Result<()> {
    let g = Gpu::open_first()?;
    let a = Ctx::normal(&g)?;
    let t = g.syncobj()?;
    let step = |i: u64, cmds: &CmdBuf| -> io::Result<()> {
        let waits = if i > 1 {
            vec![Sync::wait(t, i - 1)]
        } else {
            vec![]
        };
        let mut syncs = waits;
        syncs.push(Sync::signal(t, i));
        a.run(cmds, &syncs)
    };
    let mut c1 = CmdBuf::new();
    c1.delay(1_000_000).write32(a.va(0), 1);
    let mut c2 = CmdBuf::new();
    c2.copy(a.va(0), a.va(4), 4);
    let mut c3 = CmdBuf::new();
    c3.copy(a.va(4), a.va(8), 4);
    step(1, &c1)?;
    step(2, &c2)?;
    step(3, &c3)?;
    g.wait_point(t, 3, WAIT_MS).context("waiting for point 3")?;
    ensure!(g.query(t)? >= 3, "timeline at {}", g.query(t)?);
    ensure!(a.map.u32_at(a.off(8)) == 1, "the chain ran out of order");
    // A later point waits for earlier ones: point 2 has signalled too.
    g.wait_point(t, 2, 0).context("point 2")?;
    Ok(())
}

fn sync_file_export_and_import() -> Result<()> {
    let g = Gpu::open_first()?;
    let ctx = Ctx::normal(&g)?;
    let mut c = CmdBuf::new();
    c.delay(5_000_000).write32(ctx.va(0), 7);
    let s = g.syncobj()?;
    ctx.run(&c, &[Sync::signal(s, 0)])?;
    let fd = g.export_sync_file(s)?;
    let other = g.syncobj()?;
    g.import_sync_file(other, fd.as_fd()).context("import")?;
    g.wait(other, WAIT_MS)
        .context("wait on the imported fence")?;
    ensure!(
        sync_file_status(fd.as_fd())? == Ok(true),
        "exported fence not signalled"
    );
    ensure!(ctx.map.u32_at(ctx.off(0)) == 7);
    Ok(())
}

fn failed_wait_fails_the_job_without_running_it() -> Result<()> {
    let g = Gpu::open_first()?;
    let ctx = Ctx::normal(&g)?;
    let other = Ctx::normal(&g)?;
    // A job that faults (an address its VM does not map) ...
    let bad = g.syncobj()?;
    let mut c = CmdBuf::new();
    c.write32(0x7000_0000, 1);
    other.run(&c, &[Sync::signal(bad, 0)])?;
    g.wait(bad, WAIT_MS)?;
    ensure!(
        other.fence_result(bad)? == Err(libc::EIO),
        "faulting job's fence"
    );
    // ... makes a job that waits for it fail with the same error, without running.
    let s = g.syncobj()?;
    let mut w = CmdBuf::new();
    w.write32(ctx.va(0), 99);
    ctx.run(&w, &[Sync::wait(bad, 0), Sync::signal(s, 0)])?;
    g.wait(s, WAIT_MS)?;
    ensure!(
        ctx.fence_result(s)? == Err(libc::EIO),
        "dependent job's fence"
    );
    ensure!(ctx.map.u32_at(ctx.off(0)) == 0, "the dependent job ran");
    Ok(())
}

fn gpu_reaches_only_its_vm() -> Result<()> {
    let g = Gpu::open_first()?;
    let a = Ctx::normal(&g)?;
    // B's VM maps its buffer at a different address; A's buffer address is not mapped there.
    let vm_b = g.vm_create()?;
    let bo_b = g.gem_create(1 << 20)?;
    let b_base = 0x4000_0000;
    g.vm_map(vm_b, bo_b, b_base, 1 << 20)?;
    let map_b = g.map(bo_b, 1 << 20)?;
    let qb = g.queue_create(vm_b, uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_NORMAL)?;
    let mut c = CmdBuf::new();
    // The third command (index 2) is the bad one.
    c.nop().write32(b_base + 0x8000, 1).write32(a.va(0), 0xbad);
    map_b.write(0, c.bytes());
    let s = g.syncobj()?;
    g.submit(qb, b_base, c.len(), &[Sync::signal(s, 0)])?;
    g.wait(s, WAIT_MS)?;
    ensure!(
        a.fence_result(s)? == Err(libc::EIO),
        "write outside the VM did not fault"
    );
    ensure!(
        a.map.u32_at(a.off(0)) == 0,
        "the write reached another VM's memory"
    );
    let st = g.queue_status(qb)?;
    ensure!(
        st.state == uapi::drm_vagx_queue_state_DRM_VAGX_QUEUE_FAULTED,
        "state {}",
        st.state
    );
    ensure!(
        st.error == libc::EIO as u32
            && st.fault_address == a.va(0)
            && st.fault_kind == 1
            && st.fault_command == 2,
        "status {st:?}"
    );
    // The faulting queue and the others keep working.
    let mut ok = CmdBuf::new();
    ok.write32(b_base + 0x10000, 5);
    map_b.write(4096, ok.bytes());
    let s2 = g.syncobj()?;
    g.submit(qb, b_base + 4096, ok.len(), &[Sync::signal(s2, 0)])?;
    g.wait(s2, WAIT_MS)?;
    ensure!(map_b.u32_at(0x10000) == 5, "queue dead after its fault");
    let mut ok_a = CmdBuf::new();
    ok_a.write32(a.va(0), 6);
    a.run_and_wait(&ok_a)?;
    ensure!(a.map.u32_at(a.off(0)) == 6);
    g.queue_destroy(qb)?;
    Ok(())
}

fn hang_times_out_only_the_culprit() -> Result<()> {
    let g = Gpu::open_first()?;
    let culprit = Ctx::normal(&g)?;
    let innocent = Ctx::normal(&g)?;
    let hung = g.syncobj()?;
    let mut h = CmdBuf::new();
    h.hang();
    culprit.run(&h, &[Sync::signal(hung, 0)])?;
    // The innocent queue's jobs, submitted while the other hangs, all complete.
    let mut last = 0;
    for i in 0..8u32 {
        let s = g.syncobj()?;
        let mut c = CmdBuf::new();
        c.delay(1_000_000)
            .write32(innocent.va(u64::from(i) * 4), i + 1);
        innocent.run(&c, &[Sync::signal(s, 0)])?;
        last = s;
    }
    g.wait(last, WAIT_MS).context("innocent jobs")?;
    g.wait(hung, WAIT_MS)
        .context("the hung job never completed")?;
    ensure!(
        culprit.fence_result(hung)? == Err(libc::ETIMEDOUT),
        "hung job's fence"
    );
    ensure!(
        innocent.fence_result(last)? == Ok(()),
        "innocent job's fence"
    );
    for i in 0..8u32 {
        ensure!(
            innocent.map.u32_at(innocent.off(u64::from(i) * 4)) == i + 1,
            "innocent job {i}"
        );
    }
    let st = g.queue_status(culprit.queue)?;
    ensure!(
        st.state == uapi::drm_vagx_queue_state_DRM_VAGX_QUEUE_TIMED_OUT
            && st.error == libc::ETIMEDOUT as u32
            && st.hangs == 1,
        "status {st:?}"
    );
    ensure!(
        g.queue_status(innocent.queue)?.hangs == 0,
        "innocent queue blamed"
    );
    Ok(())
}

fn clients_are_isolated() -> Result<()> {
    let g1 = Gpu::open_first()?;
    let g2 = Gpu::open_first()?;
    let ctx = Ctx::normal(&g1)?;
    let s = g1.syncobj()?;
    expect_errno(
        g2.mmap_offset_raw(ctx.bo, 0),
        libc::ENOENT,
        "other client's object",
    )?;
    expect_errno(
        g2.queue_status(ctx.queue),
        libc::ENOENT,
        "other client's queue",
    )?;
    expect_errno(g2.vm_destroy(ctx.vm), libc::ENOENT, "other client's VM")?;
    expect_errno(g2.wait(s, 0), libc::ENOENT, "other client's syncobj")?;
    expect_errno(
        g2.submit(ctx.queue, BASE, 8, &[]),
        libc::ENOENT,
        "submit to another client's queue",
    )?;
    Ok(())
}

fn queue_destroy_cancels_unfinished_jobs() -> Result<()> {
    let g = Gpu::open_first()?;
    let ctx = Ctx::normal(&g)?;
    let mut slow = CmdBuf::new();
    slow.delay(50_000_000);
    let mut syncs = Vec::new();
    for _ in 0..4 {
        let s = g.syncobj()?;
        ctx.run(&slow, &[Sync::signal(s, 0)])?;
        syncs.push(s);
    }
    let victim = ctx.queue;
    g.queue_destroy(victim)?;
    for s in &syncs {
        g.wait(*s, WAIT_MS)
            .context("a destroyed queue's job never signalled")?;
    }
    let canceled = syncs
        .iter()
        .filter(|s| ctx.fence_result(**s).ok() == Some(Err(libc::ECANCELED)))
        .count();
    ensure!(canceled >= 1, "no job of the destroyed queue was cancelled");
    Ok(())
}

fn close_with_jobs_in_flight() -> Result<()> {
    {
        let g = Gpu::open_first()?;
        let vm = g.vm_create()?;
        let bo = g.gem_create(1 << 20)?;
        g.vm_map(vm, bo, BASE, 1 << 20)?;
        let q = g.queue_create(vm, uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_NORMAL)?;
        let mut slow = CmdBuf::new();
        slow.delay(20_000_000).fill(BASE + 8192, 4096, 1);
        {
            let map = g.map(bo, 4096)?;
            map.write(0, slow.bytes());
        }
        for _ in 0..8 {
            g.submit(q, BASE, slow.len(), &[])?;
        }
        // Dropping `g` closes the file with the queue, its VM and jobs still alive.
    }
    thread::sleep(Duration::from_millis(100));
    // The device still works for a new client.
    let g = Gpu::open_first()?;
    let ctx = Ctx::normal(&g)?;
    let mut c = CmdBuf::new();
    c.write32(ctx.va(0), 42);
    ctx.run_and_wait(&c)?;
    ensure!(ctx.map.u32_at(ctx.off(0)) == 42);
    Ok(())
}

/// Jobs the scheduling mode lets onto the hardware at once per queue's scheduler: kernel
/// mode 8 per priority, firmware mode a queue's ring (63).
fn jobs_in_flight(g: &Gpu) -> Result<u32> {
    Ok(
        if g.get_param(uapi::drm_vagx_param_DRM_VAGX_PARAM_SCHED_MODE)?
            == u64::from(uapi::drm_vagx_sched_mode_DRM_VAGX_SCHED_KERNEL)
        {
            8
        } else {
            63
        },
    )
}

/// Debugfs `floor`: the device's own round trip (a device-control no-op, doorbell to the
/// interrupt handler's receipt of the reply), 200 of them per read, as ordered percentiles
/// of a plausible size: more than nothing, less than a second.
fn debugfs_floor_reports_the_device_round_trip() -> Result<()> {
    let text = debugfs_read("floor")?;
    let words: Vec<&str> = text.split_whitespace().collect();
    ensure!(
        words.first() == Some(&"devctrl_round_trip_ns"),
        "floor: {text:?}"
    );
    let value = |key: &str| -> Result<u64> {
        let at = words
            .iter()
            .position(|w| *w == key)
            .with_context(|| format!("floor has no {key}: {text:?}"))?;
        words
            .get(at + 1)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("floor's {key}: {text:?}"))
    };
    let (n, p50, p90, p99, max) = (
        value("n")?,
        value("p50")?,
        value("p90")?,
        value("p99")?,
        value("max")?,
    );
    ensure!(n == 200, "{n} round trips");
    // For the log: the floor a submit-to-signal is compared with.
    println!("vagx-floor: {}", text.trim());
    ensure!(
        0 < p50 && p50 <= p90 && p90 <= p99 && p99 <= max && max < 1_000_000_000,
        "floor: {text:?}"
    );
    Ok(())
}

fn debugfs_shows_rings_queues_sched_and_log() -> Result<()> {
    let g = Gpu::open_first()?;
    let ctx = Ctx::normal(&g)?;
    let mut c = CmdBuf::new();
    c.nop();
    ctx.run_and_wait(&c)?;
    let rings = debugfs_read("rings")?;
    for name in ["devctrl", "event", "fwlog", "stats", "pipe0", "pipe7"] {
        ensure!(rings.contains(name), "rings lacks {name}: {rings}");
    }
    let queues = debugfs_read("queues")?;
    ensure!(queues.contains("firmware state 2"), "queues: {queues}");
    ensure!(
        queues.lines().any(|l| l.starts_with("hwq ")),
        "no queue listed: {queues}"
    );
    let sched = debugfs_read("sched")?;
    ensure!(!sched.is_empty(), "empty sched file");
    let log = debugfs_read("fwlog")?;
    ensure!(log.contains("firmware running"), "fwlog: {log}");
    ensure!(
        log.contains("created"),
        "fwlog lacks the queue creation: {log}"
    );
    expect_errno(
        std::fs::write(debugfs_dir()?.join("inject"), "explode"),
        libc::EINVAL,
        "unknown inject command",
    )?;
    Ok(())
}

fn repeated_hangs_ban_the_queue() -> Result<()> {
    let g = Gpu::open_first()?;
    let ctx = Ctx::normal(&g)?;
    let mut h = CmdBuf::new();
    h.hang();
    for i in 0..3 {
        let s = g.syncobj()?;
        ctx.run(&h, &[Sync::signal(s, 0)])
            .with_context(|| format!("hang {i} refused"))?;
        g.wait(s, WAIT_MS)?;
        ensure!(ctx.fence_result(s)? == Err(libc::ETIMEDOUT), "hang {i}");
    }
    let st = g.queue_status(ctx.queue)?;
    ensure!(
        st.state == uapi::drm_vagx_queue_state_DRM_VAGX_QUEUE_BANNED && st.hangs == 3,
        "status after three hangs {st:?}"
    );
    let mut c = CmdBuf::new();
    c.nop();
    expect_errno(
        ctx.run(&c, &[]),
        libc::ECANCELED,
        "submit to a banned queue",
    )?;
    // Other queues are untouched.
    let other = Ctx::normal(&g)?;
    other.run_and_wait(&c)?;
    Ok(())
}

fn firmware_crash_is_recovered() -> Result<()> {
    let g = Gpu::open_first()?;
    let ctx = Ctx::normal(&g)?;
    let bystander = Ctx::normal(&g)?;
    let mut warm = CmdBuf::new();
    warm.nop();
    ctx.run_and_wait(&warm)?;
    // The firmware crashes after two more entries complete.
    inject("crash 2")?;
    // More jobs than the mode lets onto the hardware: the last ones have not started when
    // the firmware crashes, and must run after the reboot. They are all queued behind a gate
    // and the first runs long, so the hardware is full when the second entry completes: a
    // slow submit loop must not let the crash fall between jobs, with nothing on the device.
    let gate = sw_sync::Timeline::new().context("sw_sync timeline")?;
    let gated = g.syncobj()?;
    g.import_sync_file(gated, gate.fence(1)?.as_fd())?;
    let mut syncs = Vec::new();
    for i in 0..jobs_in_flight(&g)? + 6 {
        let s = g.syncobj()?;
        let mut c = CmdBuf::new();
        c.delay(if i == 0 { 50_000_000 } else { 2_000_000 })
            .write32(ctx.va(u64::from(i) * 4), i + 1);
        let first_waits = [Sync::wait(gated, 0), Sync::signal(s, 0)];
        let signals = [Sync::signal(s, 0)];
        ctx.run(
            &c,
            if i == 0 {
                &first_waits[..]
            } else {
                &signals[..]
            },
        )?;
        syncs.push(s);
    }
    gate.advance(1)?;
    let mut results = Vec::new();
    for s in &syncs {
        g.wait(*s, WAIT_MS)
            .context("a job never signalled across the crash")?;
        results.push(ctx.fence_result(*s)?);
    }
    ensure!(
        results.contains(&Err(libc::ENODEV)),
        "no job failed with ENODEV: {results:?}"
    );
    ensure!(
        results.iter().all(|r| r.is_ok() || *r == Err(libc::ENODEV)),
        "unexpected errors: {results:?}"
    );
    ensure!(
        results.last() == Some(&Ok(())),
        "a job that had not started was lost: {results:?}"
    );
    // Every job that succeeded did its work.
    for (i, r) in results.iter().enumerate() {
        if r.is_ok() {
            ensure!(
                ctx.map.u32_at(ctx.off(4 * i as u64)) == i as u32 + 1,
                "job {i}"
            );
        }
    }
    // After the reset both queues run again, with their VMs.
    let mut after = CmdBuf::new();
    after.write32(ctx.va(0x1000), 77);
    let s = ctx.run_and_wait(&after).context("queue after the crash")?;
    ensure!(ctx.fence_result(s)? == Ok(()), "job after the crash failed");
    ensure!(ctx.map.u32_at(ctx.off(0x1000)) == 77);
    let mut b = CmdBuf::new();
    b.write32(bystander.va(0), 78);
    bystander
        .run_and_wait(&b)
        .context("other queue after the crash")?;
    ensure!(bystander.map.u32_at(bystander.off(0)) == 78);
    let queues = debugfs_read("queues")?;
    ensure!(queues.contains("resets 1"), "reset not counted: {queues}");
    Ok(())
}

fn unbind_with_open_files_and_jobs_in_flight() -> Result<()> {
    // The device `Gpu::open_first` opens.
    let address = crate::fixture::pci_address_of(0)?;
    let g = Gpu::open_first()?;
    let ctx = Ctx::normal(&g)?;
    let mut slow = CmdBuf::new();
    slow.delay(50_000_000);
    let mut syncs = Vec::new();
    for _ in 0..4 {
        let s = g.syncobj()?;
        ctx.run(&slow, &[Sync::signal(s, 0)])?;
        syncs.push(s);
    }
    std::fs::write("/sys/bus/pci/drivers/vagx/unbind", &address).context("unbind")?;
    // Every job completes, with ENODEV if it had not finished; the file still works, and
    // what needs the device says ENODEV.
    for s in &syncs {
        g.wait(*s, WAIT_MS)
            .context("a job never signalled after the unbind")?;
        let r = ctx.fence_result(*s)?;
        ensure!(r.is_ok() || r == Err(libc::ENODEV), "job result {r:?}");
    }
    expect_errno(ctx.run(&slow, &[]), libc::ENODEV, "submit after unbind")?;
    expect_errno(g.vm_create(), libc::ENODEV, "VM_CREATE after unbind")?;
    drop(ctx);
    drop(g);
    std::fs::write("/sys/bus/pci/drivers/vagx/bind", &address).context("bind")?;
    first_device_works()
}

/// The `key:\tvalue` lines of this process's fdinfo for `gpu`'s file.
fn fdinfo(gpu: &Gpu) -> Result<std::collections::HashMap<String, String>> {
    let path = format!("/proc/self/fdinfo/{}", gpu.raw_fd());
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}

/// An fdinfo value with an optional unit suffix (`ns`, `KiB`, `MiB`), as
/// `Documentation/gpu/drm-usage-stats.rst` writes them: the number in the key's base unit.
fn fdinfo_number(m: &std::collections::HashMap<String, String>, key: &str) -> Result<u64> {
    let v = m.get(key).with_context(|| format!("no {key} in {m:?}"))?;
    let (n, scale) = match v.split_once(' ') {
        None => (v.as_str(), 1),
        Some((n, "ns")) if key.starts_with("drm-engine-") => (n, 1),
        Some((n, "KiB")) => (n, 1 << 10),
        Some((n, "MiB")) => (n, 1 << 20),
        Some(_) => anyhow::bail!("{key}: unit of {v:?} not in the spec"),
    };
    Ok(n.parse::<u64>().with_context(|| format!("{key}: {v:?}"))? * scale)
}

/// fdinfo, key by key against the spec: identification; per engine (compute, copy) busy
/// time in ns, capacity (the units), busy and total cycles (and no drm-maxfreq beside the
/// total, which the spec forbids); the memory keys, resident ones included, and a buffer
/// counted as shared once it is exported. A 3 ms job's
/// time shows, and stays when its queue is destroyed: the engine keys never go back.
fn fdinfo_reports_engine_time_and_memory() -> Result<()> {
    let g = Gpu::open_first()?;
    let units = g.get_param(uapi::drm_vagx_param_DRM_VAGX_PARAM_UNITS)?;
    let ctx = Ctx::normal(&g)?;
    let before = fdinfo(&g)?;
    ensure!(
        before.get("drm-driver").map(String::as_str) == Some("vagx"),
        "{before:?}"
    );
    ensure!(
        before.contains_key("drm-client-id") && before.contains_key("drm-pdev"),
        "no client id or pdev: {before:?}"
    );
    for engine in ["compute", "copy"] {
        let key = |k: &str| format!("drm-{k}-{engine}");
        ensure!(
            fdinfo_number(&before, &key("engine"))? == 0,
            "engine time before any job: {before:?}"
        );
        ensure!(fdinfo_number(&before, &key("engine-capacity"))? == units);
        ensure!(fdinfo_number(&before, &key("cycles"))? == 0);
        fdinfo_number(&before, &key("total-cycles"))?;
        ensure!(
            !before.contains_key(&key("maxfreq")),
            "drm-maxfreq beside drm-total-cycles"
        );
    }
    let q = Ctx::normal(&g)?;
    let mut c = CmdBuf::new();
    c.delay(3_000_000);
    q.run_and_wait(&c)?;
    let after = fdinfo(&g)?;
    let ns = fdinfo_number(&after, "drm-engine-compute")?;
    ensure!(
        (3_000_000..4_000_000).contains(&ns),
        "engine time after a 3 ms job: {after:?}"
    );
    ensure!(fdinfo_number(&after, "drm-cycles-compute")? == ns);
    ensure!(
        fdinfo_number(&after, "drm-total-cycles-compute")?
            > fdinfo_number(&before, "drm-total-cycles-compute")? + 3_000_000,
        "the device clock did not move by the job's 3 ms"
    );
    ensure!(fdinfo_number(&after, "drm-engine-copy")? == 0);
    drop(q);
    let gone = fdinfo(&g)?;
    ensure!(
        fdinfo_number(&gone, "drm-engine-compute")? >= ns,
        "the engine time went back when the queue was destroyed: {gone:?}"
    );
    // One 1 MiB buffer of the context.
    ensure!(
        fdinfo_number(&after, "drm-total-memory")? >= 1 << 20,
        "{after:?}"
    );
    // Nothing is shared until the buffer is exported (PRIME): then all of it is.
    let unshared = fdinfo_number(&after, "drm-shared-memory")?;
    let dmabuf = g.prime_export(ctx.bo)?;
    let shared = fdinfo_number(&fdinfo(&g)?, "drm-shared-memory")?;
    ensure!(
        shared >= unshared + (1 << 20),
        "drm-shared-memory {unshared} before the export, {shared} after"
    );
    drop(dmabuf);
    // Bound into a VM, the buffers' pages are in memory.
    let resident = fdinfo_number(&after, "drm-resident-memory")?;
    ensure!(
        resident >= 1 << 20 && resident <= fdinfo_number(&after, "drm-total-memory")?,
        "{after:?}"
    );
    drop(ctx);
    Ok(())
}

/// Utilisation from two fdinfo reads (busy cycles over total cycles and capacity) matches
/// the device's own counters (`DRM_VAGX_QUERY_LOAD`: busy time summed over the units, over
/// device time and units) within 2 percentage points, while this client keeps every unit
/// busy for about 420 ms and reads both at the same moments.
fn fdinfo_utilisation_matches_the_device_counters() -> Result<()> {
    let g = Gpu::open_first()?;
    let units = g.get_param(uapi::drm_vagx_param_DRM_VAGX_PARAM_UNITS)?;
    let mut ctxs = Vec::new();
    let mut syncs = Vec::new();
    for _ in 0..units {
        ctxs.push(Ctx::normal(&g)?);
    }
    // 14 jobs of 30 commands of 1 ms on every queue (a job fills a command slot).
    for _ in 0..14 {
        for ctx in &ctxs {
            let s = g.syncobj()?;
            let mut c = CmdBuf::new();
            for _ in 0..30 {
                c.delay(1_000_000);
            }
            ctx.run(&c, &[Sync::signal(s, 0)])?;
            syncs.push(s);
        }
    }
    let sample = || -> Result<(u64, u64, u64, u64)> {
        let f = fdinfo(&g)?;
        let load = g.device_load()?;
        ensure!(
            load.flags & uapi::DRM_VAGX_LOAD_UNIT_BUSY != 0,
            "no per-unit busy time"
        );
        let busy: u64 = load.unit_busy_ns[..units as usize].iter().sum();
        Ok((
            fdinfo_number(&f, "drm-cycles-compute")?,
            fdinfo_number(&f, "drm-total-cycles-compute")?,
            busy,
            load.device_time_ns,
        ))
    };
    thread::sleep(Duration::from_millis(50));
    let (c0, t0, b0, d0) = sample()?;
    thread::sleep(Duration::from_millis(250));
    let (c1, t1, b1, d1) = sample()?;
    for s in &syncs {
        g.wait(*s, WAIT_MS)?;
    }
    ensure!(
        t1 > t0 && d1 > d0,
        "the device clock did not move: {t0}..{t1}, {d0}..{d1}"
    );
    let fdinfo_util = (c1 - c0) as f64 / ((t1 - t0) * units) as f64;
    let device_util = (b1 - b0) as f64 / ((d1 - d0) * units) as f64;
    println!(
        "fdinfo utilisation {:.1} %, device counters {:.1} % over {:.0} ms of device time",
        100.0 * fdinfo_util,
        100.0 * device_util,
        (t1 - t0) as f64 / 1e6
    );
    ensure!(
        device_util > 0.5,
        "the units were not busy: {device_util:.3}"
    );
    ensure!(
        (fdinfo_util - device_util).abs() <= 0.02,
        "fdinfo says {fdinfo_util:.3}, the device {device_util:.3}"
    );
    Ok(())
}

fn wait_for_submit_sees_a_later_submit() -> Result<()> {
    let g = Gpu::open_first()?;
    let ctx = Ctx::normal(&g)?;
    let t = g.syncobj()?;
    // A waiter on a point nobody has submitted yet (WAIT_FOR_SUBMIT) ...
    let waiter = thread::scope(|scope| -> Result<()> {
        let w = scope.spawn(|| g.wait_point(t, 1, WAIT_MS));
        thread::sleep(Duration::from_millis(50));
        ensure!(
            !w.is_finished(),
            "the wait returned before anything was submitted"
        );
        // ... wakes up once the point is submitted and signalled.
        let mut c = CmdBuf::new();
        c.write32(ctx.va(0), 5);
        ctx.run(&c, &[Sync::signal(t, 1)])?;
        w.join().map_err(|_| anyhow::anyhow!("waiter panicked"))??;
        Ok(())
    });
    waiter?;
    ensure!(ctx.map.u32_at(ctx.off(0)) == 5);
    // Without WAIT_FOR_SUBMIT a missing point is an error at once.
    let deadline = gpu::now_ns() + 1_000_000_000;
    let r = drm_ffi::syncobj::timeline_wait(
        g.fd_for_tests(),
        &[t],
        &[9],
        deadline,
        false,
        false,
        false,
    );
    ensure!(
        r.is_err(),
        "waiting for an unsubmitted point without WAIT_FOR_SUBMIT succeeded"
    );
    Ok(())
}

fn another_process_cannot_use_our_objects() -> Result<()> {
    let g = Gpu::open_first()?;
    let ctx = Ctx::normal(&g)?;
    let s = g.syncobj()?;
    // The same ids, used by another process with its own open file.
    let out = std::process::Command::new(std::env::current_exe()?)
        .args(["isolation-child", "--bo", &ctx.bo.to_string()])
        .args([
            "--vm",
            &ctx.vm.to_string(),
            "--queue",
            &ctx.queue.to_string(),
        ])
        .args(["--syncobj", &s.to_string()])
        .output()
        .context("running the child")?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success() && text.contains("isolated"),
        "child: {} {text} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// `isolation-child`: every id the parent passed is `ENOENT` in this process's own file.
pub fn isolation_child(bo: u32, vm: u32, queue: u32, syncobj: u32) -> Result<()> {
    let g = Gpu::open_first()?;
    expect_errno(
        g.mmap_offset_raw(bo, 0),
        libc::ENOENT,
        "the parent's object",
    )?;
    expect_errno(g.vm_destroy(vm), libc::ENOENT, "the parent's VM")?;
    expect_errno(g.queue_status(queue), libc::ENOENT, "the parent's queue")?;
    expect_errno(g.wait(syncobj, 0), libc::ENOENT, "the parent's syncobj")?;
    expect_errno(
        g.submit(queue, BASE, 8, &[]),
        libc::ENOENT,
        "submit to the parent's queue",
    )?;
    println!("isolated");
    Ok(())
}

fn unknown_ioctls_are_rejected() -> Result<()> {
    let g = Gpu::open_first()?;
    // The first driver ioctl number after the table, and one far past it.
    for nr in [0x0b_u32, 0x3f] {
        let mut arg = [0u64; 2];
        expect_errno(
            g.raw_ioctl(nr, &mut arg),
            libc::EINVAL,
            &format!("driver ioctl {nr:#x}"),
        )?;
    }
    Ok(())
}

fn tool_submit_runs_a_described_command_buffer() -> Result<()> {
    workload::submit(
        "fill:65536:0xdeadbeef,copy:65536,checksum:65536,gemm:16",
        "normal",
        crate::gpu::Selection::One(0),
    )
}

fn tool_stress_processes_queues_priorities() -> Result<()> {
    workload::stress(3, 2, 20, 7)
}

fn tool_bench_writes_json() -> Result<()> {
    let path = std::path::Path::new("/tmp/vagx-bench.json");
    workload::bench(50, Some(path))?;
    let text = std::fs::read_to_string(path)?;
    ensure!(
        text.contains("\"throughput_jobs_per_s\""),
        "bench JSON: {text}"
    );
    Ok(())
}

fn tool_demo_recovers_its_hang() -> Result<()> {
    workload::demo()
}

/// The busy-time samples of the first device, from debugfs `busy` (which flushes first):
/// `(pipes, queues)`, each `(id, busy_ns, entries)`.
type BusySamples = (Vec<(u32, u64, u64)>, Vec<(u32, u64, u64)>);

fn busy_samples() -> Result<BusySamples> {
    let text = debugfs_read("busy")?;
    ensure!(
        !text.starts_with("stale"),
        "the firmware did not flush: {text}"
    );
    let (mut pipes, mut queues) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        if let ["pipe" | "queue", id, "busy_ns", busy, "entries", entries] = w[..] {
            let sample = (id.parse()?, busy.parse()?, entries.parse()?);
            if w[0] == "pipe" {
                pipes.push(sample);
            } else {
                queues.push(sample);
            }
        }
    }
    ensure!(!pipes.is_empty(), "no pipe lines in busy: {text}");
    Ok((pipes, queues))
}

/// Two queues of fixed-cost DELAY jobs: the firmware counts each queue's busy time as the sum
/// of its delays (within 1 %) and its entries exactly, and the pipes' busy time grows by the
/// same total.
fn firmware_busy_time_is_each_queues_delays() -> Result<()> {
    const JOBS: u64 = 5;
    const DELAY_NS: u64 = 4_000_000;
    let g = Gpu::open_first()?;
    let ctxs = [Ctx::normal(&g)?, Ctx::normal(&g)?];
    let (pipes_before, _) = busy_samples()?;
    let mut last = Vec::new();
    for ctx in &ctxs {
        let mut s = 0;
        for _ in 0..JOBS {
            let mut c = CmdBuf::new();
            c.delay(DELAY_NS);
            s = g.syncobj()?;
            ctx.run(&c, &[Sync::signal(s, 0)]).context("SUBMIT")?;
        }
        last.push(s);
    }
    for s in last {
        g.wait(s, WAIT_MS).context("waiting for the last job")?;
        ensure!(
            crate::fixture::fence_result(&g, s)? == Ok(()),
            "a delay job failed"
        );
    }
    let (pipes_after, queues) = busy_samples()?;
    let ours: Vec<_> = queues.iter().filter(|q| q.2 == JOBS).collect();
    ensure!(
        ours.len() == 2,
        "{} queue(s) with {JOBS} entries, expected our 2: {queues:?}",
        ours.len()
    );
    let want = JOBS * DELAY_NS;
    for (id, busy, _) in &ours {
        ensure!(
            busy.abs_diff(want) * 100 <= want,
            "queue {id}: busy {busy} ns for {want} ns of delays"
        );
    }
    let pipes_delta: u64 = pipes_after
        .iter()
        .zip(&pipes_before)
        .map(|(a, b)| a.1 - b.1)
        .sum();
    let queues_total: u64 = ours.iter().map(|q| q.1).sum();
    ensure!(
        pipes_delta.abs_diff(queues_total) * 100 <= queues_total,
        "the pipes' busy time grew by {pipes_delta} ns, the queues' is {queues_total} ns"
    );
    Ok(())
}
