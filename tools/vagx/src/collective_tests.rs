// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The collectives ([`crate::collectives`]) on 1 to N GPUs of the boot (2 in the test boot,
//! 4 in the multi-GPU one), for sizes that do and do not divide by N, each checked against
//! the CPU bit for bit (sums in the ring's order, or in member order for the one-shot and
//! direct all-reduces; a direct all-reduce over a GPU without SUM is refused); an
//! all-reduce fully queued while a gate holds its first jobs, so that the GPUs alone advance
//! it; and `vagx-tool collective`.

use std::os::fd::AsFd;

use anyhow::{ensure, Context, Result};

use crate::{
    collectives::{check, input, Op, Ring},
    every_gpu,
    registry::{tests, Test},
    sw_sync,
};

/// One test per GPU count and collective, then the queued-ahead test and the tool's.
pub fn tests() -> Vec<Test<'static>> {
    let gpus = every_gpu::listed_gpus().min(4);
    let mut all = Vec::new();
    for n in 1..=gpus {
        for (name, op) in [
            ("all_reduce", Op::AllReduce),
            ("one_shot_all_reduce", Op::AllReduceOneShot),
            ("direct_all_reduce", Op::AllReduceDirect),
            ("reduce_scatter", Op::ReduceScatter),
            ("all_gather", Op::AllGather),
            ("broadcast", Op::Broadcast { root: n - 1 }),
        ] {
            all.push(Test::new(
                format!("{name}_on_{n}_gpus_matches_the_cpu"),
                move || collective(n, op),
            ));
        }
    }
    if gpus >= 2 {
        all.extend(tests![
            an_all_reduce_is_queued_whole_and_advanced_by_the_gpus,
            the_tools_collective_reports_its_bandwidth,
        ]);
    }
    all
}

/// `op` on GPUs `0..n`, with a size that divides by `n` and one that does not (and one
/// smaller than `n`, where some chunks are empty), twice on the same ring.
fn collective(n: usize, op: Op) -> Result<()> {
    let gpus: Vec<usize> = (0..n).collect();
    for len in [n * 1024, 4099, n.saturating_sub(1).max(1)] {
        let mut ring = Ring::new(&gpus, len)?;
        if op == Op::AllReduceDirect && !ring.has_direct_all_reduce() {
            // A GPU of an older ABI (the multi-GPU boot's last): refused before any job.
            let e = ring
                .run(op)
                .err()
                .context("a direct all-reduce without SUM ran")?;
            ensure!(
                format!("{e:#}").contains("has no SUM"),
                "refused with: {e:#}"
            );
            ensure!(
                ring.timeline(0).2 == 0,
                "a job was queued before the refusal"
            );
            return Ok(());
        }
        for round in 0..2 {
            let inputs: Vec<Vec<f32>> = (0..n).map(|i| input(i + round, len)).collect();
            for (i, v) in inputs.iter().enumerate() {
                ring.write(i, v);
            }
            let report = ring
                .run(op)
                .with_context(|| format!("{len} elements, round {round}"))?;
            ensure!(
                report.steps == expected_steps(op, n),
                "{} steps, expected {}",
                report.steps,
                expected_steps(op, n)
            );
            let worst = check(&ring, op, &inputs)
                .with_context(|| format!("{len} elements, round {round}"))?;
            ensure!(worst < 1e-3, "{worst} from a plain CPU sum");
        }
    }
    Ok(())
}

fn expected_steps(op: Op, n: usize) -> u64 {
    let per = n as u64 - 1;
    match op {
        Op::AllReduce => 2 * per,
        Op::AllReduceOneShot | Op::AllReduceDirect => 2,
        _ => per,
    }
}

/// Every job of an all-reduce is submitted while a CPU-signalled gate holds the first
/// step: nothing has run when the last is queued, so no CPU wait sits between steps; opened,
/// the GPUs finish it alone.
fn an_all_reduce_is_queued_whole_and_advanced_by_the_gpus() -> Result<()> {
    let n = every_gpu::listed_gpus().min(4);
    let gpus: Vec<usize> = (0..n).collect();
    let len = 8192;
    let mut ring = Ring::new(&gpus, len)?;
    let inputs: Vec<Vec<f32>> = (0..n).map(|i| input(i, len)).collect();
    for (i, v) in inputs.iter().enumerate() {
        ring.write(i, v);
    }
    let timeline = sw_sync::Timeline::new()?;
    let gate = timeline.fence(1)?;
    for i in 0..n {
        let (gpu, s) = ring.gate(i)?;
        gpu.import_sync_file(s, gate.as_fd())?;
    }
    let queued = ring.queue(Op::AllReduce)?;
    for i in 0..n {
        let (gpu, tl, last) = ring.timeline(i);
        ensure!(last == 2 * (n as u64 - 1), "{last} points queued");
        ensure!(
            gpu.query(tl)? == 0,
            "gpu{i} ran a step before the gate opened"
        );
        let load = gpu.device_load()?;
        ensure!(
            load.pending_jobs >= last,
            "gpu{i}: {} jobs pending, {last} queued",
            load.pending_jobs
        );
    }
    timeline.advance(1)?;
    ring.finish(queued)?;
    check(&ring, Op::AllReduce, &inputs)?;
    Ok(())
}

fn the_tools_collective_reports_its_bandwidth() -> Result<()> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .args(["collective", "all-reduce", "--elements", "100000"])
        .output()
        .context("running vagx-tool collective")?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success() && text.contains("busbw") && text.contains("worst error"),
        "collective: {} {text} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
