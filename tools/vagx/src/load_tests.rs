// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The device's load through `DEVICE_QUERY` (`DRM_VAGX_QUERY_LOAD`), as a load balancer reads
//! it: busy time per unit and pipe against known work, the queues and jobs the driver holds,
//! each GPU counting only its own work, `vagx-tool info` printing it, and the query's bad
//! input.
//!
//! The counts are device-wide: the tests run one at a time, so what changes between two reads
//! is the test's own work.

use std::{
    os::fd::AsFd,
    time::{Duration, Instant},
};

use anyhow::{ensure, Context, Result};

use crate::{
    cmdbuf::CmdBuf,
    every_gpu,
    fixture::{expect_errno, fence_result, Ctx, WAIT_MS},
    gpu::{Gpu, Sync},
    registry::{tests, Test},
    sw_sync, uapi,
};

type Load = uapi::drm_vagx_device_load;

/// The suite, with the per-GPU test if the boot has two GPUs or more.
pub fn tests() -> Vec<Test<'static>> {
    let mut all = tests![
        two_queues_of_delays_on_two_units_busy_the_units_twice_their_device_time,
        load_counts_the_queues_and_jobs_the_driver_holds,
        device_query_checks_its_arguments,
        the_tools_info_prints_every_gpus_load,
        the_emulation_counts_every_command_against_its_modelled_cost,
    ];
    if every_gpu::listed_gpus() >= 2 {
        all.extend(tests![each_gpu_counts_only_its_own_work]);
    }
    all
}

/// The sum of the units' busy time.
fn units_busy(l: &Load) -> u64 {
    l.unit_busy_ns[..l.num_units as usize].iter().sum()
}

/// The load once the device is quiet: no job of an earlier test still being retired (two
/// reads 20 ms apart agree).
fn settled(g: &Gpu) -> Result<Load> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = g.device_load().context("DEVICE_QUERY")?;
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = g.device_load()?;
        let same = now.pending_jobs == last.pending_jobs
            && now.device_jobs == last.device_jobs
            && units_busy(&now) == units_busy(&last);
        if same {
            return Ok(now);
        }
        ensure!(
            Instant::now() < deadline,
            "the device never settled: {now:?}"
        );
        last = now;
    }
}

/// Runs `jobs` DELAY jobs of `delay_ns` on each of `queues` new queues of `g`, all queued at
/// once, and waits for them.
fn run_delays(g: &Gpu, queues: usize, jobs: usize, delay_ns: u64) -> Result<()> {
    let ctxs = (0..queues)
        .map(|_| Ctx::normal(g))
        .collect::<Result<Vec<_>>>()?;
    let mut c = CmdBuf::new();
    c.delay(delay_ns);
    // Every queue's first job waits for a gate opened once all are submitted, so the queues
    // start together however slow the submits: one cannot be done before the next begins.
    let gate = sw_sync::Timeline::new().context("sw_sync timeline")?;
    let gated = g.syncobj()?;
    g.import_sync_file(gated, gate.fence(1)?.as_fd())?;
    let mut last = Vec::new();
    for ctx in &ctxs {
        let mut s = 0;
        for j in 0..jobs {
            s = g.syncobj()?;
            let first = [Sync::wait(gated, 0), Sync::signal(s, 0)];
            let rest = [Sync::signal(s, 0)];
            ctx.run(&c, if j == 0 { &first[..] } else { &rest[..] })
                .context("SUBMIT")?;
        }
        last.push(s);
    }
    gate.advance(1)?;
    for s in last {
        g.wait(s, WAIT_MS).context("waiting for the last job")?;
        ensure!(fence_result(g, s)? == Ok(()), "a delay job failed");
    }
    Ok(())
}

/// Two queues of fixed-cost DELAY jobs on a two-unit device: the units' busy time grows by
/// twice one queue's device time (within 1 %), both units took part, and the compute pipe
/// grew by the same.
fn two_queues_of_delays_on_two_units_busy_the_units_twice_their_device_time() -> Result<()> {
    const JOBS: usize = 5;
    // Long enough (100 ms a queue) that the second queue's jobs reach the firmware while the
    // first queue still holds a unit, even when the guest is slow to push them.
    const DELAY_NS: u64 = 20_000_000;
    let g = Gpu::open_first()?;
    let before = settled(&g)?;
    ensure!(
        before.flags & uapi::DRM_VAGX_LOAD_UNIT_BUSY != 0,
        "the device counts no unit busy time (flags {:#x})",
        before.flags
    );
    ensure!(
        before.num_units == 2,
        "{} units; the test boot's devices have 2",
        before.num_units
    );
    run_delays(&g, 2, JOBS, DELAY_NS)?;
    let after = g.device_load()?;
    let per_queue = JOBS as u64 * DELAY_NS;
    let grew = units_busy(&after) - units_busy(&before);
    ensure!(
        grew.abs_diff(2 * per_queue) * 100 <= 2 * per_queue,
        "the units' busy time grew by {grew} ns for 2 x {per_queue} ns of delays"
    );
    for u in 0..2 {
        let d = after.unit_busy_ns[u] - before.unit_busy_ns[u];
        ensure!(d > 0, "unit {u} did none of the work");
    }
    let compute = uapi::DRM_VAGX_PIPE_COMPUTE as usize;
    let pipe = after.pipe_busy_ns[compute] - before.pipe_busy_ns[compute];
    ensure!(
        pipe == grew,
        "the compute pipe grew by {pipe} ns, the units by {grew} ns"
    );
    ensure!(
        after.device_time_ns - before.device_time_ns >= per_queue,
        "the device clock moved by {} ns over {per_queue} ns of one queue's delays",
        after.device_time_ns - before.device_time_ns
    );
    Ok(())
}

/// Jobs held by a CPU-signalled gate are pending and not on the device; a long job is on the
/// device and its queue running; after they end, the counts are back where they were.
fn load_counts_the_queues_and_jobs_the_driver_holds() -> Result<()> {
    const GATED: u64 = 3;
    let g = Gpu::open_first()?;
    let before = settled(&g)?;
    let gate = sw_sync::Timeline::new().context("sw_sync timeline")?;
    let gated = g.syncobj()?;
    g.import_sync_file(gated, gate.fence(1)?.as_fd())?;
    let (held, long) = (Ctx::normal(&g)?, Ctx::normal(&g)?);
    let created = g.device_load()?;
    ensure!(
        created.queues == before.queues + 2,
        "{} queues after creating 2 more than {}",
        created.queues,
        before.queues
    );
    let mut nop = CmdBuf::new();
    nop.nop();
    let mut last = 0;
    for _ in 0..GATED {
        last = g.syncobj()?;
        held.run(&nop, &[Sync::wait(gated, 0), Sync::signal(last, 0)])?;
    }
    let gated_load = g.device_load()?;
    ensure!(
        gated_load.pending_jobs == before.pending_jobs + GATED,
        "{} jobs pending with {GATED} gated, {} before",
        gated_load.pending_jobs,
        before.pending_jobs
    );
    ensure!(
        gated_load.device_jobs == before.device_jobs
            && gated_load.running_queues == before.running_queues,
        "gated jobs on the device: {gated_load:?}"
    );
    // A long job goes to the device shortly after its submit; the load says so while it runs
    // (a job that ended before a read was seen proves nothing: try another).
    let mut seen = false;
    for _ in 0..3 {
        let mut c = CmdBuf::new();
        c.delay(80_000_000);
        let s = g.syncobj()?;
        long.run(&c, &[Sync::signal(s, 0)])?;
        while long.fence_pending(s)? {
            let l = g.device_load()?;
            if l.device_jobs > before.device_jobs && long.fence_pending(s)? {
                ensure!(
                    l.running_queues == before.running_queues + 1,
                    "one job on the device, {} running queues (before: {})",
                    l.running_queues,
                    before.running_queues
                );
                ensure!(
                    l.pending_jobs == before.pending_jobs + GATED + 1,
                    "{} pending with {GATED} gated and one running, {} before",
                    l.pending_jobs,
                    before.pending_jobs
                );
                seen = true;
                break;
            }
        }
        g.wait(s, WAIT_MS)?;
        if seen {
            break;
        }
    }
    ensure!(seen, "a running 80 ms job was never seen on the device");
    gate.advance(1)?;
    g.wait(last, WAIT_MS)?;
    // Jobs are retired (freed) shortly after their fences signal.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let l = g.device_load()?;
        if l.pending_jobs == before.pending_jobs && l.device_jobs == before.device_jobs {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "5 s after the jobs ended: {l:?}, before: {before:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// Sizes, flags, the query and the pointer are checked; a larger buffer gets the kernel's
/// struct and nothing past it.
fn device_query_checks_its_arguments() -> Result<()> {
    let g = Gpu::open_first()?;
    let size = u32::try_from(size_of::<Load>())?;
    let q = |size, data| uapi::drm_vagx_device_query {
        query: uapi::drm_vagx_query_DRM_VAGX_QUERY_LOAD,
        size,
        data,
        ..Default::default()
    };
    let asked = g.device_query_raw(q(0, 0), &mut [])?;
    ensure!(
        asked.size == size,
        "size {} asked, {size} expected",
        asked.size
    );
    let mut buf = vec![0xa5u8; size as usize + 64];
    expect_errno(
        g.device_query_raw(q(size - 1, 0), &mut buf),
        libc::EINVAL,
        "a short buffer",
    )?;
    for (what, a) in [
        (
            "a flag",
            uapi::drm_vagx_device_query {
                flags: 1,
                ..q(size, 0)
            },
        ),
        (
            "the pad",
            uapi::drm_vagx_device_query {
                pad: 1,
                ..q(size, 0)
            },
        ),
        (
            "an unknown query",
            uapi::drm_vagx_device_query {
                query: 1,
                ..q(size, 0)
            },
        ),
    ] {
        expect_errno(g.device_query_raw(a, &mut buf), libc::EINVAL, what)?;
    }
    expect_errno(
        g.device_query_raw(q(size, 8), &mut []),
        libc::EFAULT,
        "a garbage pointer",
    )?;
    ensure!(
        buf.iter().all(|&b| b == 0xa5),
        "a failed query wrote into the buffer"
    );
    let done = g.device_query_raw(q(size + 64, 0), &mut buf)?;
    ensure!(done.size == size, "{} bytes reported written", done.size);
    ensure!(
        buf[size as usize..].iter().all(|&b| b == 0xa5),
        "the query wrote past its struct"
    );
    let units = u32::from_ne_bytes(buf[8..12].try_into()?);
    let want = g.get_param(uapi::drm_vagx_param_DRM_VAGX_PARAM_UNITS)?;
    ensure!(u64::from(units) == want, "num_units {units}, UNITS {want}");
    Ok(())
}

/// `vagx-tool info --gpus all` prints each GPU's load, units and emulation fidelity.
fn the_tools_info_prints_every_gpus_load() -> Result<()> {
    // Mounted, so that info reads the emulation counters too.
    crate::fixture::debugfs_dir()?;
    let out = std::process::Command::new(std::env::current_exe()?)
        .args(["info", "--gpus", "all"])
        .output()
        .context("running vagx-tool info")?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(out.status.success(), "info: {} {text}", out.status);
    for index in 0..crate::gpu::render_nodes()?.len() {
        for key in ["load:", "busy:", "units: unit0 ", "emulation: "] {
            let line = format!("gpu{index} {key}");
            ensure!(text.contains(&line), "no '{line}' in:\n{text}");
        }
    }
    Ok(())
}

/// The first device's fidelity counters (debugfs `busy`, which flushes first).
fn emulation() -> Result<crate::Emulation> {
    let text = crate::fixture::debugfs_read("busy")?;
    crate::emulation_counts(&text).with_context(|| format!("no emulation line in busy: {text}"))
}

/// Every command the device ran is counted once with its modelled cost (the same cost the
/// units' busy time adds up), the late ones are among them, and the host time grows.
fn the_emulation_counts_every_command_against_its_modelled_cost() -> Result<()> {
    const JOBS: u64 = 3;
    let g = Gpu::open_first()?;
    let ctx = Ctx::normal(&g)?;
    settled(&g)?;
    let (e0, l0) = (emulation()?, g.device_load()?);
    let mut c = CmdBuf::new();
    c.nop()
        .fill(ctx.va(0), 64 * 1024, 0x5a5a_5a5a)
        .checksum(ctx.va(0), ctx.va(0x1_0000), 64 * 1024)
        .delay(1_000_000);
    for _ in 0..JOBS {
        ctx.run_and_wait(&c)?;
    }
    let (e1, l1) = (emulation()?, g.device_load()?);
    let commands = e1.commands - e0.commands;
    ensure!(
        commands == JOBS * u64::from(c.count()),
        "{commands} commands counted for {JOBS} jobs of {}: {e0:?} then {e1:?}",
        c.count()
    );
    let modelled = e1.modelled_ns - e0.modelled_ns;
    let busy = units_busy(&l1) - units_busy(&l0);
    ensure!(
        modelled == busy,
        "{modelled} ns modelled, the units' busy time grew by {busy} ns"
    );
    ensure!(
        e1.late - e0.late <= commands && e1.host_ns > e0.host_ns,
        "{e0:?} then {e1:?}"
    );
    Ok(())
}

/// Work on one GPU moves that GPU's busy time and no other's.
fn each_gpu_counts_only_its_own_work() -> Result<()> {
    const DELAY_NS: u64 = 2_000_000;
    let count = crate::gpu::render_nodes()?.len();
    let gpus = (0..count)
        .map(Gpu::open_index)
        .collect::<std::io::Result<Vec<_>>>()?;
    for (busy, g) in gpus.iter().enumerate() {
        let before = gpus.iter().map(settled).collect::<Result<Vec<_>>>()?;
        run_delays(g, 1, 2, DELAY_NS)?;
        for (i, other) in gpus.iter().enumerate() {
            let grew = units_busy(&other.device_load()?) - units_busy(&before[i]);
            if i == busy {
                ensure!(
                    grew.abs_diff(2 * DELAY_NS) * 100 <= 2 * DELAY_NS,
                    "gpu{i} busy grew by {grew} ns for its 2 x {DELAY_NS} ns"
                );
            } else {
                ensure!(
                    grew == 0,
                    "gpu{i} busy grew by {grew} ns for gpu{busy}'s work"
                );
            }
        }
    }
    Ok(())
}
