// SPDX-License-Identifier: GPL-2.0 OR MIT

//! `vagx-tool share`: one GPU produces a buffer, another consumes it. The buffer crosses as a
//! dma-buf (PRIME) and the consumer's job waits for the producer's through a syncobj exported
//! from the producer's file and imported into the consumer's: no CPU copy, no CPU wait
//! between the two jobs.

use std::os::fd::AsFd;

use anyhow::{ensure, Context, Result};

use crate::{
    cmdbuf::{fnv1a64, CmdBuf},
    fixture::{Ctx, BASE, CTX_SIZE, WAIT_MS},
    gpu::{Gpu, Sync},
};

/// Where the consumer maps the producer's buffer.
const SHARED_VA: u64 = 0x4000_0000;

/// GPU `from` fills `len` bytes after a `delay_ns` delay; GPU `to` copies them into its own
/// buffer and checksums the copy. Checks both against the CPU and prints what happened.
pub fn run(from: usize, to: usize, len: u64, delay_ns: u64) -> Result<()> {
    ensure!(from != to, "--from and --to name the same GPU");
    let (producer, consumer) = (Gpu::open_index(from)?, Gpu::open_index(to)?);
    let p = Ctx::normal(&producer)?;
    let c = Ctx::normal(&consumer)?;
    ensure!(
        len.is_multiple_of(4) && c.off(len + 8) <= usize::try_from(CTX_SIZE)?,
        "the size must be a multiple of 4 and fit in {CTX_SIZE} bytes"
    );
    const PATTERN: u32 = 0x5ab1_e000;

    let produced = producer.syncobj()?;
    let mut cmds = CmdBuf::new();
    cmds.delay(delay_ns).fill(p.va(0), len, PATTERN);
    p.run(&cmds, &[Sync::signal(produced, 0)])
        .context("producer SUBMIT")?;

    let buf = producer.prime_export(p.bo).context("PRIME export")?;
    let shared = consumer.prime_import(buf.as_fd()).context("PRIME import")?;
    consumer
        .vm_map(c.vm, shared, SHARED_VA, CTX_SIZE)
        .context("VM_BIND of the shared buffer")?;
    let waits_on = consumer
        .syncobj_import(producer.syncobj_export(produced)?.as_fd())
        .context("sharing the producer's syncobj")?;
    let consumed = consumer.syncobj()?;
    let from_va = SHARED_VA + (p.va(0) - BASE);
    let mut cmds = CmdBuf::new();
    cmds.copy(from_va, c.va(0), len)
        .checksum(c.va(0), c.va(len), len);
    c.run(&cmds, &[Sync::wait(waits_on, 0), Sync::signal(consumed, 0)])
        .context("consumer SUBMIT")?;
    let pending = p.fence_pending(produced)?;
    consumer
        .wait(consumed, WAIT_MS)
        .context("waiting for the consumer")?;
    ensure!(c.fence_result(consumed)? == Ok(()), "the consumer failed");

    let mut copy = vec![0u8; usize::try_from(len)?];
    c.map.read(c.off(0), &mut copy);
    ensure!(
        copy.chunks(4).all(|w| w == PATTERN.to_le_bytes()),
        "gpu{to}'s copy is not gpu{from}'s fill"
    );
    let mut sum = [0u8; 8];
    c.map.read(c.off(len), &mut sum);
    let sum = u64::from_le_bytes(sum);
    ensure!(
        sum == fnv1a64(&copy),
        "gpu{to}'s checksum differs from the CPU's"
    );
    println!(
        "share: gpu{to} consumed the {len} bytes gpu{from} produced (a dma-buf, a shared \
         syncobj{}): copy and checksum {sum:#018x} match the CPU's",
        if pending {
            "; submitted while the producer still ran"
        } else {
            ""
        }
    );
    consumer.vm_unmap(c.vm, SHARED_VA, CTX_SIZE)?;
    consumer.gem_close(shared)?;
    Ok(())
}
