// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Workloads: `submit` (one described command buffer), `stress` (processes × queues with
//! random dependencies), `bench` (latency and throughput) and `demo` (what `make run` shows).
//!
//! Every workload checks the GPU's results on the CPU.

use std::{
    fmt::Write as _,
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{bail, ensure, Context, Result};

use crate::{
    cmdbuf::{fnv1a64, CmdBuf},
    fixture::Ctx,
    gpu::{Gpu, Selection, Sync},
    uapi,
};

/// How long a workload waits for one job.
const WAIT_MS: i64 = 60_000;

/// A tiny deterministic generator (xorshift64*), so that runs are repeatable from a seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Parses a UAPI priority name.
pub fn priority(name: &str) -> Result<u32> {
    Ok(match name {
        "low" => uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_LOW,
        "normal" => uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_NORMAL,
        "high" => uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_HIGH,
        _ => bail!("unknown priority {name:?} (low, normal, high)"),
    })
}

/// The `p`-th percentile (0 to 100) of sorted `v`.
pub(crate) fn percentile(v: &[u64], p: usize) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v[((v.len() - 1) * p) / 100]
}

/// A check of a `submit` op's result, run after the job: a line for the user, or why not.
type Check = Box<dyn Fn(&Ctx<'_>) -> Result<String>>;

/// `submit`: runs a command buffer described as `op[:arg...],...` and checks its results.
///
/// Ops: `fill:<len>:<pattern>` (A), `copy:<len>` (A to B), `checksum:<len>` (of B),
/// `gemm:<n>` (n×n, C = A × B as f32), `delay:<ns>`, `nop`.
pub fn submit(desc: &str, prio: &str, gpus: Selection) -> Result<()> {
    for (index, node) in gpus.nodes()? {
        let g = Gpu::open(&node)?;
        println!("gpu{index} ({}):", node.display());
        submit_on(&g, desc, prio).with_context(|| format!("on gpu{index}"))?;
    }
    Ok(())
}

/// [`submit`] on one device.
fn submit_on(g: &Gpu, desc: &str, prio: &str) -> Result<()> {
    let ctx = Ctx::new(g, priority(prio)?, 16 << 20)?;
    // Data areas: A at 0, B at 4 MiB, the checksum at 8 MiB, GEMM's matrices from 12 MiB.
    let (a, b, r) = (0u64, 4 << 20, 8 << 20);
    let (ga, gb, gc) = (12u64 << 20, 13 << 20, 14 << 20);
    let mut cmds = CmdBuf::new();
    let mut checks: Vec<Check> = Vec::new();
    for op in desc.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let parts: Vec<&str> = op.split(':').collect();
        let num = |i: usize| -> Result<u64> {
            let s = parts
                .get(i)
                .with_context(|| format!("{op}: missing argument {i}"))?;
            Ok(match s.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16)?,
                None => s.parse()?,
            })
        };
        match parts[0] {
            "fill" => {
                let (len, pat) = (num(1)?.min(4 << 20), u32::try_from(num(2)?)?);
                cmds.fill(ctx.va(a), len, pat);
                checks.push(Box::new(move |c| {
                    for i in (0..len).step_by(4) {
                        ensure!(c.map.u32_at(c.off(a + i)) == pat, "fill word {i}");
                    }
                    Ok(format!("fill {len} bytes with {pat:#010x}: ok"))
                }));
            }
            "copy" => {
                let len = num(1)?.min(4 << 20);
                cmds.copy(ctx.va(a), ctx.va(b), len);
                checks.push(Box::new(move |c| {
                    let mut x = vec![0u8; len as usize];
                    let mut y = vec![0u8; len as usize];
                    c.map.read(c.off(a), &mut x);
                    c.map.read(c.off(b), &mut y);
                    ensure!(x == y, "copy differs");
                    Ok(format!("copy {len} bytes: ok"))
                }));
            }
            "checksum" => {
                let len = num(1)?.min(4 << 20);
                cmds.checksum(ctx.va(b), ctx.va(r), len);
                checks.push(Box::new(move |c| {
                    let mut y = vec![0u8; len as usize];
                    c.map.read(c.off(b), &mut y);
                    let mut s = [0u8; 8];
                    c.map.read(c.off(r), &mut s);
                    let (got, want) = (u64::from_le_bytes(s), fnv1a64(&y));
                    ensure!(got == want, "checksum {got:#x}, CPU {want:#x}");
                    Ok(format!("checksum of {len} bytes = {got:#018x}: ok"))
                }));
            }
            "gemm" => {
                let n = usize::try_from(num(1)?)?.clamp(1, 256);
                let m: Vec<f32> = (0..n * n).map(|i| (i % 7) as f32 - 3.0).collect();
                let bytes: Vec<u8> = m.iter().flat_map(|x| x.to_le_bytes()).collect();
                ctx.map.write(ctx.off(ga), &bytes);
                ctx.map.write(ctx.off(gb), &bytes);
                // CAST: n is at most 256.
                cmds.gemm(
                    ctx.va(ga),
                    ctx.va(gb),
                    ctx.va(gc),
                    n as u32,
                    n as u32,
                    n as u32,
                );
                checks.push(Box::new(move |c| {
                    for i in 0..n {
                        for j in 0..n {
                            let mut acc = 0f32;
                            for p in 0..n {
                                acc += m[i * n + p] * m[p * n + j];
                            }
                            let got =
                                f32::from_bits(c.map.u32_at(c.off(gc + 4 * (i * n + j) as u64)));
                            ensure!(got == acc, "C[{i}][{j}] = {got}, CPU {acc}");
                        }
                    }
                    Ok(format!("gemm {n}x{n}: ok"))
                }));
            }
            "delay" => {
                cmds.delay(num(1)?);
            }
            "nop" => {
                cmds.nop();
            }
            other => bail!("unknown op {other:?}"),
        }
    }
    ensure!(cmds.len() > 0, "empty description");
    let start = Instant::now();
    let s = ctx.run_and_wait(&cmds)?;
    let elapsed = start.elapsed();
    match ctx.fence_result(s)? {
        Ok(()) => {}
        Err(e) => bail!("the job failed: {}", std::io::Error::from_raw_os_error(e)),
    }
    println!(
        "{} command(s), {} bytes, done in {:?}",
        cmds.count(),
        cmds.len(),
        elapsed
    );
    for check in &checks {
        println!("  {}", check(&ctx)?);
    }
    Ok(())
}

/// Result of one stress or demo worker process, one line of `key=value` on stdout.
#[derive(Debug, Default, Clone)]
pub struct WorkerReport {
    pub name: String,
    pub prio: String,
    pub jobs: u64,
    pub verified: u64,
    pub failed: u64,
    pub timed_out: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl WorkerReport {
    fn line(&self) -> String {
        format!(
            "report name={} prio={} jobs={} verified={} failed={} timed_out={} p50_us={} p99_us={} max_us={}",
            self.name, self.prio, self.jobs, self.verified, self.failed, self.timed_out,
            self.p50_us, self.p99_us, self.max_us
        )
    }

    fn parse(line: &str) -> Option<Self> {
        let rest = line.strip_prefix("report ")?;
        let mut r = Self::default();
        for kv in rest.split_whitespace() {
            let (k, v) = kv.split_once('=')?;
            let n = || v.parse::<u64>().unwrap_or(0);
            match k {
                "name" => r.name = v.into(),
                "prio" => r.prio = v.into(),
                "jobs" => r.jobs = n(),
                "verified" => r.verified = n(),
                "failed" => r.failed = n(),
                "timed_out" => r.timed_out = n(),
                "p50_us" => r.p50_us = n(),
                "p99_us" => r.p99_us = n(),
                "max_us" => r.max_us = n(),
                _ => {}
            }
        }
        Some(r)
    }
}

/// One worker: `queues` queues at `prio`, `jobs` jobs with random timeline dependencies
/// between its queues; each job writes its index (after copying its dependency's value), so
/// that the results prove the order. With `hang`, one extra job hangs and must time out.
pub fn worker(name: &str, prio: &str, queues: u32, jobs: u32, seed: u64, hang: bool) -> Result<()> {
    let g = Gpu::open_selected()?;
    let p = priority(prio)?;
    let ctx = Ctx::new(&g, p, 4 << 20)?;
    let mut qs = vec![ctx.queue];
    for _ in 1..queues.max(1) {
        qs.push(g.queue_create(ctx.vm, p)?);
    }
    let timeline = g.syncobj()?;
    let mut rng = Rng::new(seed);
    let mut report = WorkerReport {
        name: name.into(),
        prio: prio.into(),
        ..Default::default()
    };
    // Slot i (at 4i) gets i + 1; aux slot i (at 1 MiB + 4i) a copy of the dependency's slot.
    let aux = 1u64 << 20;
    let mut deps = Vec::new();
    let mut lat = Vec::new();
    let mut hang_sync = None;
    for i in 0..u64::from(jobs) {
        let q = qs[(i % qs.len() as u64) as usize];
        let mut c = CmdBuf::new();
        let mut syncs = Vec::new();
        let dep = (i > 0 && rng.below(3) == 0).then(|| rng.below(i));
        if let Some(k) = dep {
            syncs.push(Sync::wait(timeline, k + 1));
            c.copy(ctx.va(4 * k), ctx.va(aux + 4 * i), 4);
        }
        deps.push(dep);
        // CAST: job indices are small.
        c.delay(rng.below(200_000))
            .write32(ctx.va(4 * i), i as u32 + 1);
        syncs.push(Sync::signal(timeline, i + 1));
        // A second, binary syncobj per job measures its own latency.
        let own = g.syncobj()?;
        syncs.push(Sync::signal(own, 0));
        let slot = (i % 15) * 4096;
        ctx.map.write(usize::try_from(slot)?, c.bytes());
        let t0 = Instant::now();
        g.submit(q, crate::fixture::BASE + slot, c.len(), &syncs)
            .with_context(|| format!("submit {i}"))?;
        g.wait(own, WAIT_MS).with_context(|| format!("job {i}"))?;
        lat.push(u64::try_from(t0.elapsed().as_micros())?);
        g.syncobj_destroy(own)?;
        report.jobs += 1;
        if hang && i == u64::from(jobs) / 2 {
            // The injected hang: on its own queue so that the others keep running.
            let hq = g.queue_create(ctx.vm, p)?;
            let s = g.syncobj()?;
            let mut h = CmdBuf::new();
            h.hang();
            ctx.map.write(15 * 4096, h.bytes());
            g.submit(
                hq,
                crate::fixture::BASE + 15 * 4096,
                h.len(),
                &[Sync::signal(s, 0)],
            )?;
            hang_sync = Some((hq, s));
        }
    }
    g.wait_point(timeline, u64::from(jobs), WAIT_MS)
        .context("last point")?;
    for i in 0..u64::from(jobs) {
        let ok = ctx.map.u32_at(ctx.off(4 * i)) == i as u32 + 1
            && deps[i as usize]
                .is_none_or(|k| ctx.map.u32_at(ctx.off(aux + 4 * i)) == k as u32 + 1);
        if ok {
            report.verified += 1;
        } else {
            report.failed += 1;
        }
    }
    if let Some((hq, s)) = hang_sync {
        g.wait(s, WAIT_MS).context("the hung job")?;
        match ctx.fence_result(s)? {
            Err(e) if e == libc::ETIMEDOUT => report.timed_out += 1,
            other => bail!("the injected hang ended with {other:?}"),
        }
        g.queue_destroy(hq)?;
    }
    lat.sort_unstable();
    report.p50_us = percentile(&lat, 50);
    report.p99_us = percentile(&lat, 99);
    report.max_us = lat.last().copied().unwrap_or(0);
    println!("{}", report.line());
    for q in qs.into_iter().skip(1) {
        g.queue_destroy(q)?;
    }
    Ok(())
}

/// Runs worker processes and collects their reports.
fn run_workers(specs: &[(String, String, u32, u32, u64, bool)]) -> Result<Vec<WorkerReport>> {
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    for (name, prio, queues, jobs, seed, hang) in specs {
        let mut cmd = Command::new(&exe);
        cmd.args(["worker", "--name", name, "--prio", prio])
            .args(["--queues", &queues.to_string(), "--jobs", &jobs.to_string()])
            .args(["--seed", &seed.to_string()])
            .stdout(Stdio::piped());
        if *hang {
            cmd.arg("--hang");
        }
        children.push((name.clone(), cmd.spawn().context("spawning a worker")?));
    }
    let mut reports = Vec::new();
    for (name, child) in children {
        let out = child.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        ensure!(
            out.status.success(),
            "worker {name} failed ({}): {text}",
            out.status
        );
        let r = text
            .lines()
            .find_map(WorkerReport::parse)
            .with_context(|| format!("worker {name} printed no report"))?;
        // Progress on long runs: one line per finished process.
        eprintln!("  {name}: {} jobs done, {} verified", r.jobs, r.verified);
        reports.push(r);
    }
    Ok(reports)
}

fn table(reports: &[WorkerReport]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<10} {:<7} {:>5} {:>8} {:>6} {:>9} {:>9} {:>9} {:>9}",
        "process", "prio", "jobs", "verified", "failed", "timeouts", "p50 us", "p99 us", "max us"
    );
    for r in reports {
        let _ = writeln!(
            s,
            "{:<10} {:<7} {:>5} {:>8} {:>6} {:>9} {:>9} {:>9} {:>9}",
            r.name, r.prio, r.jobs, r.verified, r.failed, r.timed_out, r.p50_us, r.p99_us, r.max_us
        );
    }
    s
}

/// `stress`: `procs` processes × `queues` queues × the three priorities, random dependencies.
pub fn stress(procs: u32, queues: u32, jobs: u32, seed: u64) -> Result<()> {
    let prios = ["low", "normal", "high"];
    let specs: Vec<_> = (0..procs)
        .map(|i| {
            let prio = prios[i as usize % prios.len()];
            (
                format!("stress{i}"),
                prio.to_string(),
                queues,
                jobs,
                seed + u64::from(i),
                false,
            )
        })
        .collect();
    println!("stress: {procs} processes x {queues} queues x {jobs} jobs (seed {seed})");
    let reports = run_workers(&specs)?;
    print!("{}", table(&reports));
    let failed: u64 = reports.iter().map(|r| r.failed).sum();
    let verified: u64 = reports.iter().map(|r| r.verified).sum();
    println!("{verified} passed, {failed} failed");
    ensure!(failed == 0, "{failed} job result(s) wrong");
    Ok(())
}

/// `demo`: three processes at three priorities with timeline-chained jobs on two queues each,
/// one injected hang that the driver recovers while the others finish.
pub fn demo() -> Result<()> {
    let g = Gpu::open_selected()?;
    let mode = g.get_param(uapi::drm_vagx_param_DRM_VAGX_PARAM_SCHED_MODE)?;
    let units = g.get_param(uapi::drm_vagx_param_DRM_VAGX_PARAM_UNITS)?;
    drop(g);
    println!(
        "demo: vagx GPU with {units} units, {} scheduling",
        if mode == 0 { "kernel" } else { "firmware" }
    );
    println!("demo: 3 processes, 2 queues each, jobs chained through a timeline syncobj;");
    println!("demo: the 'batch' process also submits a job that hangs");
    let specs = vec![
        ("render".to_string(), "high".to_string(), 2, 24, 1, false),
        ("copy".to_string(), "normal".to_string(), 2, 24, 2, false),
        ("batch".to_string(), "low".to_string(), 2, 24, 3, true),
    ];
    let start = Instant::now();
    let reports = run_workers(&specs)?;
    print!("{}", table(&reports));
    let failed: u64 = reports.iter().map(|r| r.failed).sum();
    let recovered: u64 = reports.iter().map(|r| r.timed_out).sum();
    println!(
        "demo: {} jobs verified, {failed} wrong, {recovered} hang(s) stopped with ETIMEDOUT and recovered, {:.1} s",
        reports.iter().map(|r| r.verified).sum::<u64>(),
        start.elapsed().as_secs_f64()
    );
    ensure!(
        failed == 0 && recovered == 1,
        "the demo did not go as planned"
    );
    Ok(())
}

/// `load` (internal): `queues` low-priority queues each running `jobs` jobs of `us`
/// microseconds of device time, to compete with a measurement.
pub fn load(queues: u32, jobs: u32, us: u64) -> Result<()> {
    let g = Gpu::open_selected()?;
    let ctx = Ctx::new(&g, uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_LOW, 1 << 20)?;
    let mut qs = vec![ctx.queue];
    for _ in 1..queues.max(1) {
        qs.push(g.queue_create(ctx.vm, uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_LOW)?);
    }
    let mut c = CmdBuf::new();
    c.delay(us * 1000);
    ctx.map.write(0, c.bytes());
    let last = g.syncobj()?;
    for i in 0..jobs {
        for (k, q) in qs.iter().enumerate() {
            let done = i + 1 == jobs && k + 1 == qs.len();
            let syncs = if done {
                vec![Sync::signal(last, 0)]
            } else {
                vec![]
            };
            g.submit(*q, crate::fixture::BASE, c.len(), &syncs)?;
        }
    }
    g.wait(last, WAIT_MS)?;
    for q in qs.into_iter().skip(1) {
        g.queue_destroy(q)?;
    }
    Ok(())
}

/// Submit-to-signal latencies (µs, sorted) of `samples` empty jobs on a `prio` queue, one
/// at a time.
fn latencies(g: &Gpu, prio: u32, samples: u32) -> Result<Vec<u64>> {
    let ctx = Ctx::new(g, prio, 1 << 20)?;
    let mut nop = CmdBuf::new();
    nop.nop();
    let mut lat = Vec::new();
    for _ in 0..samples {
        let s = g.syncobj()?;
        let t0 = Instant::now();
        ctx.run(&nop, &[Sync::signal(s, 0)])?;
        g.wait(s, WAIT_MS)?;
        lat.push(u64::try_from(t0.elapsed().as_micros())?);
        g.syncobj_destroy(s)?;
    }
    lat.sort_unstable();
    Ok(lat)
}

/// Latencies (µs, sorted) of `samples` two-queue chains, one at a time: an empty job on one
/// queue, and an empty job on another queue of the same device that waits for it; from the
/// first submit to the second job's signal. Today the wait is the CPU's (the scheduler waits
/// for the first job's fence); it is the number a firmware barrier would shorten.
fn chain_latencies(g: &Gpu, samples: u32) -> Result<Vec<u64>> {
    let prio = uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_NORMAL;
    let (a, b) = (Ctx::new(g, prio, 1 << 20)?, Ctx::new(g, prio, 1 << 20)?);
    let mut nop = CmdBuf::new();
    nop.nop();
    let mut lat = Vec::new();
    for _ in 0..samples {
        let (first, second) = (g.syncobj()?, g.syncobj()?);
        let t0 = Instant::now();
        a.run(&nop, &[Sync::signal(first, 0)])?;
        b.run(&nop, &[Sync::wait(first, 0), Sync::signal(second, 0)])?;
        g.wait(second, WAIT_MS)?;
        lat.push(u64::try_from(t0.elapsed().as_micros())?);
        g.syncobj_destroy(first)?;
        g.syncobj_destroy(second)?;
    }
    lat.sort_unstable();
    Ok(lat)
}

/// `bench`: submit-to-signal latency of an empty job, alone and while two processes keep
/// low-priority queues busy, and the throughput of tiny jobs.
pub fn bench(samples: u32, json: Option<&std::path::Path>) -> Result<()> {
    let g = Gpu::open_selected()?;
    let ctx = Ctx::normal(&g)?;
    let mut nop = CmdBuf::new();
    nop.nop();
    // Latency: one job at a time, on an idle device.
    let lat = latencies(
        &g,
        uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_NORMAL,
        samples,
    )?;
    // A chain across two queues: the wait resolved by the firmware (the driver's default),
    // then by the CPU (the driver's debugfs switch), in this boot.
    let irqs = || crate::fixture::driver_counter("irqs");
    let chains = u64::from((samples / 4).max(1));
    let irqs_before = irqs()?;
    let chain = chain_latencies(&g, samples / 4)?;
    let chain_irqs = (irqs()? - irqs_before) as f64 / chains as f64;
    crate::fixture::inject("hw-waits 0")?;
    let irqs_before = irqs()?;
    let chain_cpu = chain_latencies(&g, samples / 4);
    let chain_cpu_irqs = (irqs()? - irqs_before) as f64 / chains as f64;
    crate::fixture::inject("hw-waits 1")?;
    let chain_cpu = chain_cpu?;
    // The same at high priority while two processes load four low-priority queues with
    // 1 ms jobs.
    let exe = std::env::current_exe()?;
    let mut loaders = Vec::new();
    for _ in 0..2 {
        loaders.push(
            Command::new(&exe)
                .args(["load", "--queues", "2", "--jobs", "200", "--us", "1000"])
                .spawn()
                .context("spawning a load process")?,
        );
    }
    // Let the load reach the hardware first.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let contended = latencies(
        &g,
        uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_HIGH,
        samples / 4,
    )?;
    for mut l in loaders {
        let status = l.wait()?;
        ensure!(status.success(), "a load process failed: {status}");
    }
    // Throughput: `samples` jobs back to back, then wait for the last.
    let last = g.syncobj()?;
    let t0 = Instant::now();
    for i in 0..samples {
        let syncs = if i + 1 == samples {
            vec![Sync::signal(last, 0)]
        } else {
            vec![]
        };
        ctx.run(&nop, &syncs)?;
    }
    g.wait(last, WAIT_MS)?;
    let secs = t0.elapsed().as_secs_f64();
    let rate = f64::from(samples) / secs;
    let mode = g.get_param(uapi::drm_vagx_param_DRM_VAGX_PARAM_SCHED_MODE)?;
    println!(
        "bench: {samples} samples, {} scheduling",
        if mode == 0 { "kernel" } else { "firmware" }
    );
    println!(
        "  submit->signal latency: p50 {} us, p90 {} us, p99 {} us, max {} us",
        percentile(&lat, 50),
        percentile(&lat, 90),
        percentile(&lat, 99),
        lat.last().copied().unwrap_or(0)
    );
    println!(
        "  high priority under low-priority load: p50 {} us, p90 {} us, p99 {} us, max {} us",
        percentile(&contended, 50),
        percentile(&contended, 90),
        percentile(&contended, 99),
        contended.last().copied().unwrap_or(0)
    );
    println!(
        "  two-queue chain: p50 {} us, p90 {} us, p99 {} us, max {} us",
        percentile(&chain, 50),
        percentile(&chain, 90),
        percentile(&chain, 99),
        chain.last().copied().unwrap_or(0)
    );
    println!(
        "  two-queue chain, waited for by the CPU: p50 {} us, p90 {} us, p99 {} us, max {} us",
        percentile(&chain_cpu, 50),
        percentile(&chain_cpu, 90),
        percentile(&chain_cpu, 99),
        chain_cpu.last().copied().unwrap_or(0)
    );
    println!(
        "  interrupts per chain: {chain_irqs:.2} (firmware wait), {chain_cpu_irqs:.2} (CPU wait)"
    );
    println!("  tiny-job throughput: {rate:.0} jobs/s");
    if let Some(path) = json {
        let text = format!(
            "{{\"mode\": {mode}, \"samples\": {samples}, \"latency_us\": {}, \"contended_high_latency_us\": {}, \"chain_latency_us\": {}, \"chain_cpu_latency_us\": {}, \"throughput_jobs_per_s\": {rate:.1}}}\n",
            json_percentiles(&lat),
            json_percentiles(&contended),
            json_percentiles(&chain),
            json_percentiles(&chain_cpu),
        );
        std::fs::write(path, text)?;
    }
    Ok(())
}

/// `{"p50": .., "p90": .., "p99": .., "max": ..}` of sorted `v`.
fn json_percentiles(v: &[u64]) -> String {
    format!(
        "{{\"p50\": {}, \"p90\": {}, \"p99\": {}, \"max\": {}}}",
        percentile(v, 50),
        percentile(v, 90),
        percentile(v, 99),
        v.last().copied().unwrap_or(0)
    )
}
