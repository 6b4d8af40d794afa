// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The cross-queue dependency matrix: a consumer job waits for a producer job of another
//! queue, for every combination of
//!
//! - how it waits: a binary syncobj, a timeline point, a sync_file;
//! - the two queues' priorities: the same, or different;
//! - where the consumer is: the producer's VM, another VM of the same file, another file;
//! - what the producer does: succeeds, faults, hangs.
//!
//! The producer is a long job (a `DELAY`, then a write of a marker), so that a consumer that
//! starts early reads the buffer before the marker is there. Each case checks what the
//! consumer read and its fence's error: the marker and no error if the producer succeeded,
//! else the producer's error and no sign that the consumer ran. The suite runs in both
//! scheduling modes with the rest of the driver tests.

use std::os::fd::AsFd;

use anyhow::{ensure, Context, Result};

use crate::{
    cmdbuf::CmdBuf,
    driver_tests::{Ctx, Test, BASE, CMD_SLOT, CTX_SIZE},
    gpu::{Gpu, Sync},
    uapi,
};

/// How the consumer waits.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Wait {
    Binary,
    Timeline,
    SyncFile,
}

/// The consumer's priority against the producer's.
#[derive(Clone, Copy, Debug)]
enum Prio {
    Same,
    Different,
}

/// Where the consumer's queue is.
#[derive(Clone, Copy, Debug)]
enum Place {
    SameVm,
    OtherVm,
    OtherFile,
}

/// What the producer does after its delay.
#[derive(Clone, Copy, Debug)]
enum Producer {
    Succeeds,
    Faults,
    Hangs,
}

/// The marker the producer writes.
const MARKER: u32 = 0x600d_f00d;
/// Device time the producer spends before it writes (long against a submit).
const PRODUCER_DELAY_NS: u64 = 20_000_000;
/// Offsets in the shared buffer's data area.
const MARKER_AT: u64 = 0;
const COPY_AT: u64 = 0x100;
const RAN_AT: u64 = 0x104;
/// The command-buffer slot the consumer uses (the producer's context uses the first ones).
const CONSUMER_SLOT: u64 = 100;
/// A GPU address no VM of these tests maps.
const UNMAPPED: u64 = 0x7000_0000;
/// How long a case waits for a job.
const WAIT_MS: i64 = 20_000;

/// Every case, named `dep_<wait>_<prio>_<place>_<producer>`.
pub fn tests() -> Vec<Test> {
    let mut v: Vec<Test> = Vec::new();
    for wait in [Wait::Binary, Wait::Timeline, Wait::SyncFile] {
        for prio in [Prio::Same, Prio::Different] {
            for place in [Place::SameVm, Place::OtherVm, Place::OtherFile] {
                for producer in [Producer::Succeeds, Producer::Faults, Producer::Hangs] {
                    let name =
                        format!("dep_{wait:?}_{prio:?}_prio_{place:?}_producer_{producer:?}")
                            .to_lowercase();
                    v.push((name, Box::new(move || case(wait, prio, place, producer))));
                }
            }
        }
    }
    v
}

/// The consumer's side: its file, VM and queue, and where the shared buffer is in its VM.
struct Consumer<'g> {
    gpu: &'g Gpu,
    vm: u32,
    queue: u32,
    /// Its own VM (destroyed at the end), and the imported handle (closed at the end).
    own_vm: bool,
    own_bo: Option<u32>,
}

impl Drop for Consumer<'_> {
    fn drop(&mut self) {
        let _ = self.gpu.queue_destroy(self.queue);
        if self.own_vm {
            let _ = self.gpu.vm_destroy(self.vm);
        }
        if let Some(bo) = self.own_bo {
            let _ = self.gpu.gem_close(bo);
        }
    }
}

fn case(wait: Wait, prio: Prio, place: Place, producer: Producer) -> Result<()> {
    let g = Gpu::open_first()?;
    let other_file = match place {
        Place::OtherFile => Some(Gpu::open_first()?),
        _ => None,
    };
    let prod = Ctx::normal(&g)?;
    let cg = other_file.as_ref().unwrap_or(&g);
    let consumer_prio = match prio {
        Prio::Same => uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_NORMAL,
        Prio::Different => uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_LOW,
    };
    // The consumer sees the producer's buffer at the same address in its own VM.
    let size = CTX_SIZE;
    let cons = match place {
        Place::SameVm => Consumer {
            gpu: cg,
            vm: prod.vm,
            queue: cg.queue_create(prod.vm, consumer_prio)?,
            own_vm: false,
            own_bo: None,
        },
        Place::OtherVm | Place::OtherFile => {
            let bo = match place {
                Place::OtherFile => {
                    let buf = g.prime_export(prod.bo).context("PRIME export")?;
                    Some(cg.prime_import(buf.as_fd()).context("PRIME import")?)
                }
                _ => None,
            };
            let vm = cg.vm_create()?;
            cg.vm_map(vm, bo.unwrap_or(prod.bo), BASE, size)
                .context("mapping the shared buffer")?;
            Consumer {
                gpu: cg,
                vm,
                queue: cg.queue_create(vm, consumer_prio)?,
                own_vm: true,
                own_bo: bo,
            }
        }
    };

    // The producer: a delay, then the marker (or a fault, or a hang).
    let mut p = CmdBuf::new();
    p.delay(PRODUCER_DELAY_NS);
    match producer {
        Producer::Succeeds => p.write32(prod.va(MARKER_AT), MARKER),
        Producer::Faults => p.write32(UNMAPPED, MARKER),
        Producer::Hangs => p.hang(),
    };
    let produced = g.syncobj()?;
    let timeline = g.syncobj()?;
    // The binary syncobj always: it holds the producer's own fence, with its error (a
    // timeline point's chain node signals without it).
    let mut signals = vec![Sync::signal(produced, 0)];
    if wait == Wait::Timeline {
        signals.push(Sync::signal(timeline, 1));
    }
    prod.run(&p, &signals).context("producer SUBMIT")?;

    // What the consumer waits on, in its own file.
    let waits_on = match wait {
        Wait::Binary | Wait::Timeline => {
            let handle = if wait == Wait::Timeline {
                timeline
            } else {
                produced
            };
            let handle = match &other_file {
                Some(f) => f.syncobj_import(g.syncobj_export(handle)?.as_fd())?,
                None => handle,
            };
            let point = if wait == Wait::Timeline { 1 } else { 0 };
            Sync::wait(handle, point)
        }
        Wait::SyncFile => {
            let fd = g.export_sync_file(produced)?;
            let s = cg.syncobj()?;
            cg.import_sync_file(s, fd.as_fd())
                .context("sync_file import")?;
            Sync::wait(s, 0)
        }
    };
    // The consumer copies the marker and records that it ran.
    let mut c = CmdBuf::new();
    c.copy(prod.va(MARKER_AT), prod.va(COPY_AT), 4)
        .write32(prod.va(RAN_AT), 1);
    let at = CONSUMER_SLOT * CMD_SLOT;
    prod.map.write(usize::try_from(at)?, c.bytes());
    let consumed = cg.syncobj()?;
    cg.submit(
        cons.queue,
        BASE + at,
        c.len(),
        &[waits_on, Sync::signal(consumed, 0)],
    )
    .context("consumer SUBMIT")?;
    cg.wait(consumed, WAIT_MS)
        .context("the consumer never completed")?;

    let producer_result = prod.fence_result(produced)?;
    let consumer_result = fence_result(cg, consumed)?;
    let copied = prod.map.u32_at(prod.off(COPY_AT));
    let ran = prod.map.u32_at(prod.off(RAN_AT));
    match producer {
        Producer::Succeeds => {
            ensure!(producer_result == Ok(()), "producer: {producer_result:?}");
            ensure!(consumer_result == Ok(()), "consumer: {consumer_result:?}");
            ensure!(
                copied == MARKER,
                "the consumer ran before the producer wrote (read {copied:#x})"
            );
        }
        Producer::Faults | Producer::Hangs => {
            let expected = match producer {
                Producer::Faults => libc::EIO,
                _ => libc::ETIMEDOUT,
            };
            ensure!(
                producer_result == Err(expected),
                "producer: {producer_result:?}"
            );
            ensure!(
                consumer_result == Err(expected),
                "consumer of a failed producer: {consumer_result:?}, expected {expected}"
            );
            ensure!(
                ran == 0 && copied == 0,
                "the consumer of a failed producer ran (copied {copied:#x}, ran {ran})"
            );
        }
    }
    drop(cons);
    Ok(())
}

/// The error of the fence in binary syncobj `s` of `g`.
fn fence_result(g: &Gpu, s: u32) -> Result<Result<(), i32>> {
    let fd = g.export_sync_file(s).context("export sync_file")?;
    match crate::gpu::sync_file_status(fd.as_fd())? {
        Ok(true) => Ok(Ok(())),
        Ok(false) => anyhow::bail!("fence still pending"),
        Err(e) => Ok(Err(e)),
    }
}
