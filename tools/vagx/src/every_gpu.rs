// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The conformance basics on every vagx GPU of the boot: each device is its own DRM device
//! with its own render node, answers its parameters and runs a job with the right results,
//! with every other device open at the same time.
//!
//! The host says how many devices it gave the VM (`vagx.gpus=N` on the kernel command line,
//! from `VAGX_GPUS`); the suite has one test per device and checks that each one probed.

use anyhow::{ensure, Context, Result};

use crate::{
    cmdbuf::{fnv1a64, CmdBuf},
    fixture::Ctx,
    gpu::{self, Gpu},
    registry::{tests, Test},
    uapi,
};

/// Devices the host gave the VM: `vagx.gpus=` on the kernel command line (the host's
/// `VAGX_GPUS`); `None` if it is not there (the tool run by hand).
pub fn expected_gpus() -> Result<Option<usize>> {
    let cmdline = std::fs::read_to_string("/proc/cmdline").context("/proc/cmdline")?;
    cmdline
        .split_whitespace()
        .find_map(|arg| arg.strip_prefix("vagx.gpus="))
        .map(|n| n.parse().context("vagx.gpus= is not a number"))
        .transpose()
}

/// How many GPUs a suite lists tests for. Suites are listed before the module loads, so the
/// count comes from the command line ([`expected_gpus`]); run by hand, from the render nodes.
pub fn listed_gpus() -> usize {
    expected_gpus()
        .ok()
        .flatten()
        .or_else(|| gpu::render_nodes().ok().map(|n| n.len()))
        .unwrap_or(0)
}

/// The suite: the device count, then the basics on each device.
pub fn tests() -> Vec<Test<'static>> {
    let count = listed_gpus();
    let mut all = tests![every_gpu_of_the_boot_has_its_own_render_node];
    for index in 0..count {
        all.push(Test::new(
            format!("gpu{index}_answers_its_parameters_and_runs_a_job"),
            move || basics(index),
        ));
    }
    all.push(Test::new(
        "every_gpu_runs_a_job_while_all_are_open",
        all_at_once,
    ));
    all
}

fn every_gpu_of_the_boot_has_its_own_render_node() -> Result<()> {
    let nodes = gpu::render_nodes()?;
    if let Some(want) = expected_gpus()? {
        ensure!(
            nodes.len() == want,
            "{} vagx render node(s) for {want} device(s)",
            nodes.len()
        );
    }
    ensure!(!nodes.is_empty(), "no vagx render node");
    let mut addresses = Vec::new();
    for node in &nodes {
        let address = gpu::pci_address(node)?;
        ensure!(
            !addresses.contains(&address),
            "{} is a second node of {address}",
            node.display()
        );
        addresses.push(address);
    }
    Ok(())
}

/// GPU `index`'s parameters, and a FILL, COPY and CHECKSUM whose results the CPU checks.
fn basics(index: usize) -> Result<()> {
    let g = Gpu::open_index(index)?;
    let p = |param| {
        g.get_param(param)
            .with_context(|| format!("GET_PARAM {param}"))
    };
    let abi = p(uapi::drm_vagx_param_DRM_VAGX_PARAM_ABI_VERSION)?;
    ensure!(abi >> 16 == 1, "gpu{index}: ABI {abi:#x}, major not 1");
    ensure!(
        p(uapi::drm_vagx_param_DRM_VAGX_PARAM_UNITS)? >= 1,
        "gpu{index}: no units"
    );
    ensure!(
        p(uapi::drm_vagx_param_DRM_VAGX_PARAM_VA_BITS)? >= 32,
        "gpu{index}: VA bits"
    );
    job_with_checked_results(&g, 0x1000_0001 + index as u32).with_context(|| format!("gpu{index}"))
}

/// Every GPU open at once, one job on each in flight together, each result checked.
fn all_at_once() -> Result<()> {
    let gpus = gpu::render_nodes()?
        .iter()
        .map(|n| Gpu::open(n))
        .collect::<std::io::Result<Vec<_>>>()?;
    let ctxs = gpus.iter().map(Ctx::normal).collect::<Result<Vec<_>>>()?;
    let len = 16 * 1024;
    let mut syncs = Vec::new();
    for (i, ctx) in ctxs.iter().enumerate() {
        let mut c = CmdBuf::new();
        // A delay first, so that the jobs overlap.
        c.delay(2_000_000)
            .fill(ctx.va(0), len, 0x2000_0000 + i as u32);
        let s = ctx.gpu.syncobj()?;
        ctx.run(&c, &[gpu::Sync::signal(s, 0)]).context("SUBMIT")?;
        syncs.push(s);
    }
    for (i, (ctx, s)) in ctxs.iter().zip(&syncs).enumerate() {
        ctx.gpu
            .wait(*s, crate::fixture::WAIT_MS)
            .with_context(|| format!("gpu{i}: waiting"))?;
        let want = (0x2000_0000 + i as u32).to_le_bytes();
        let mut out = vec![0u8; usize::try_from(len)?];
        ctx.map.read(ctx.off(0), &mut out);
        ensure!(
            out.chunks(4).all(|w| w == want),
            "gpu{i}: the fill of another device's job landed here, or none did"
        );
    }
    Ok(())
}

/// FILL with `pattern`, COPY and CHECKSUM on `g`, checked against the CPU.
fn job_with_checked_results(g: &Gpu, pattern: u32) -> Result<()> {
    let ctx = Ctx::normal(g)?;
    let len = 64 * 1024;
    let mut c = CmdBuf::new();
    c.fill(ctx.va(0), len, pattern)
        .copy(ctx.va(0), ctx.va(len), len)
        .checksum(ctx.va(len), ctx.va(2 * len), len);
    let s = ctx.run_and_wait(&c)?;
    ensure!(ctx.fence_result(s)? == Ok(()), "the job failed");
    let mut copy = vec![0u8; usize::try_from(len)?];
    ctx.map.read(ctx.off(len), &mut copy);
    ensure!(
        copy.chunks(4).all(|w| w == pattern.to_le_bytes()),
        "the copy is not the fill"
    );
    let mut sum = [0u8; 8];
    ctx.map.read(ctx.off(2 * len), &mut sum);
    ensure!(
        u64::from_le_bytes(sum) == fnv1a64(&copy),
        "checksum differs from the CPU's"
    );
    Ok(())
}
