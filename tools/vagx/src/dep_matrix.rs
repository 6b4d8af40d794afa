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
//!
//! A same-device wait is handed to the firmware as a wait entry (ABI 1.1), and a wait on
//! another GPU's job as a peer wait entry (ABI 1.4): each such case also checks, through the
//! driver's debugfs counters, that the consumer took that path whenever its producer was still
//! running when it was submitted, on the consumer's device, and that a failed producer the
//! firmware waited for failed it there (a dependency error).

use std::os::fd::AsFd;

use anyhow::{ensure, Context, Result};

use crate::{
    cmdbuf::CmdBuf,
    fixture::{
        driver_counter, driver_counter_of, fence_result, inject, inject_of, Ctx, BASE, CMD_SLOT,
        CTX_SIZE, WAIT_MS,
    },
    gpu::{Gpu, Sync},
    registry::{tests, Test},
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
#[derive(Clone, Copy, Debug, PartialEq)]
enum Place {
    SameVm,
    OtherVm,
    OtherFile,
    OtherGpu,
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

/// Where consumers are put: another GPU only if the boot has one.
fn places() -> Vec<Place> {
    let mut places = vec![Place::SameVm, Place::OtherVm, Place::OtherFile];
    if crate::every_gpu::listed_gpus() >= 2 {
        places.push(Place::OtherGpu);
    }
    places
}

/// Every case, named `dep_<wait>_<prio>_<place>_<producer>`, then the fan-in tests.
pub fn tests() -> Vec<Test<'static>> {
    let mut v = Vec::new();
    for wait in [Wait::Binary, Wait::Timeline, Wait::SyncFile] {
        for prio in [Prio::Same, Prio::Different] {
            for place in places() {
                for producer in [Producer::Succeeds, Producer::Faults, Producer::Hangs] {
                    let name =
                        format!("dep_{wait:?}_{prio:?}_prio_{place:?}_producer_{producer:?}")
                            .to_lowercase();
                    v.push(Test::new(name, move || case(wait, prio, place, producer)));
                }
            }
        }
    }
    v.extend(tests![
        dep_firmware_orders_a_consumer_after_four_producers_and_the_cpu_after_two_more,
        dep_firmware_fails_the_consumer_of_a_faulting_producer_without_running_it,
        dep_the_cpu_orders_the_same_fan_in_when_firmware_waits_are_off,
        dep_a_point_behind_pending_points_of_its_own_queue_is_waited_for_by_the_firmware,
        dep_a_point_behind_a_pending_point_of_another_queue_is_waited_for_by_the_cpu,
    ]);
    if crate::every_gpu::listed_gpus() >= 2 {
        v.extend(tests![
            dep_a_chain_across_two_gpus_runs_in_order_with_peer_waits_or_without,
            dep_a_peer_wait_on_a_gpu_that_is_unbound_fails_its_consumer_without_running_it,
        ]);
    }
    v
}

/// A chain of jobs that alternate between GPU 0 and GPU 1, each waiting for the one before
/// (binary syncobjs shared between the files), all queued behind a closed gate: with peer
/// waits each consumer's firmware orders it (every wait but the first is a peer wait entry on
/// the consumer's GPU), with `peer-waits 0` the CPU does (none is); the chain's order holds
/// either way: every job adds one to a counter in a buffer both GPUs map, and records what it
/// read.
fn dep_a_chain_across_two_gpus_runs_in_order_with_peer_waits_or_without() -> Result<()> {
    for on in [true, false] {
        let cmd = if on { "peer-waits 1" } else { "peer-waits 0" };
        inject_of(0, cmd)?;
        inject_of(1, cmd)?;
        let r = chain_across_gpus(on).with_context(|| format!("with {cmd}"));
        inject_of(0, "peer-waits 1")?;
        inject_of(1, "peer-waits 1")?;
        r?;
    }
    Ok(())
}

/// Jobs in the chain of [`dep_a_chain_across_two_gpus_runs_in_order_with_peer_waits_or_without`].
const CHAIN: usize = 12;
/// Where its jobs record what they read.
const CHAIN_READS: u64 = 0x400;

fn chain_across_gpus(peer_waits: bool) -> Result<()> {
    let gpus = [Gpu::open_index(0)?, Gpu::open_index(1)?];
    let home = Ctx::normal(&gpus[0])?;
    let buf = gpus[0].prime_export(home.bo).context("PRIME export")?;
    let bo = gpus[1].prime_import(buf.as_fd()).context("PRIME import")?;
    let vm = gpus[1].vm_create()?;
    gpus[1].vm_map(vm, bo, BASE, CTX_SIZE)?;
    let queues = [
        gpus[0].queue_create(home.vm, uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_NORMAL)?,
        gpus[1].queue_create(vm, uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_NORMAL)?,
    ];
    let result = (|| -> Result<()> {
        let gate = crate::sw_sync::Timeline::new().context("sw_sync timeline")?;
        let first = gpus[0].syncobj()?;
        gpus[0].import_sync_file(first, gate.fence(1)?.as_fd())?;
        let before = [
            driver_counter_of(0, "peer_waits")?,
            driver_counter_of(1, "peer_waits")?,
        ];
        let counter = home.va(MARKER_AT);
        let mut prev = (0, first);
        for i in 0..CHAIN {
            let (g, q) = (&gpus[i % 2], queues[i % 2]);
            // Read the counter, keep what was read, add one: a job that runs before the one
            // it waits for leaves a gap in the record.
            let mut c = CmdBuf::new();
            c.delay(2_000_000)
                .copy(counter, home.va(CHAIN_READS + 4 * u64::try_from(i)?), 4);
            let at = (40 + u64::try_from(i)?) * CMD_SLOT;
            home.map.write(usize::try_from(at)?, c.bytes());
            // Each job then writes the counter: i + 1.
            let mut w = CmdBuf::new();
            w.write32(counter, u32::try_from(i)? + 1);
            let wat = (60 + u64::try_from(i)?) * CMD_SLOT;
            home.map.write(usize::try_from(wat)?, w.bytes());
            let wait = if prev.0 == i % 2 {
                prev.1
            } else {
                g.syncobj_import(gpus[prev.0].syncobj_export(prev.1)?.as_fd())?
            };
            let read = g.syncobj()?;
            g.submit(
                q,
                BASE + at,
                c.len(),
                &[Sync::wait(wait, 0), Sync::signal(read, 0)],
            )
            .context("chain SUBMIT")?;
            let done = g.syncobj()?;
            g.submit(
                q,
                BASE + wat,
                w.len(),
                &[Sync::wait(read, 0), Sync::signal(done, 0)],
            )
            .context("chain SUBMIT")?;
            prev = (i % 2, done);
        }
        gate.advance(1)?;
        gpus[prev.0]
            .wait(prev.1, WAIT_MS)
            .context("the chain never completed")?;
        ensure!(
            fence_result(&gpus[prev.0], prev.1)? == Ok(()),
            "the chain's last job failed"
        );
        for i in 0..CHAIN {
            let read = home
                .map
                .u32_at(home.off(CHAIN_READS + 4 * u64::try_from(i)?));
            ensure!(
                read == u32::try_from(i)?,
                "job {i} read {read}: it ran before the job it waits for"
            );
        }
        // Every job of GPU 1 but none of GPU 0's first waits for the other GPU; with peer
        // waits, each consumer's GPU counted them.
        let peer = [
            driver_counter_of(0, "peer_waits")? - before[0],
            driver_counter_of(1, "peer_waits")? - before[1],
        ];
        let crossings = u64::try_from(CHAIN - 1)?;
        let expected = if peer_waits {
            [crossings / 2, crossings.div_ceil(2)]
        } else {
            [0, 0]
        };
        ensure!(
            peer == expected,
            "peer waits on GPU 0 and 1: {peer:?}, expected {expected:?}"
        );
        Ok(())
    })();
    let _ = gpus[0].queue_destroy(queues[0]);
    let _ = gpus[1].queue_destroy(queues[1]);
    let _ = gpus[1].vm_destroy(vm);
    let _ = gpus[1].gem_close(bo);
    result
}

/// A consumer on GPU 0 waits in its firmware for the last of a queue of long jobs on GPU 1
/// (a peer wait entry); GPU 1 is unbound while they run. The consumer fails with the
/// producer's `ENODEV` without running, its firmware reports the dependency error (the peer's
/// epoch ended), and GPU 0 runs the next job.
fn dep_a_peer_wait_on_a_gpu_that_is_unbound_fails_its_consumer_without_running_it() -> Result<()> {
    let address = crate::fixture::pci_address_of(1)?;
    let result = (|| -> Result<()> {
        let g0 = Gpu::open_index(0)?;
        let consumer = Ctx::normal(&g0)?;
        let entries = || driver_counter_of(0, "wait_entries");
        let errors = || driver_counter_of(0, "dep_errors");
        let (entries_before, errors_before) = (entries()?, errors()?);
        let produced;
        {
            let g1 = Gpu::open_index(1)?;
            let prod = Ctx::normal(&g1)?;
            // Six jobs of 80 ms of device time each (each under the 100 ms watchdog): the
            // last one is on the firmware long after the consumer has parked.
            let mut p = CmdBuf::new();
            p.delay(80_000_000);
            let s = g1.syncobj()?;
            for _ in 0..6 {
                prod.run(&p, &[Sync::signal(s, 0)])
                    .context("producer SUBMIT")?;
            }
            let fd = g1.syncobj_export(s)?;
            produced = g0.syncobj_import(fd.as_fd())?;
            let mut c = CmdBuf::new();
            c.write32(consumer.va(RAN_AT), 1);
            let consumed = g0.syncobj()?;
            consumer
                .run(&c, &[Sync::wait(produced, 0), Sync::signal(consumed, 0)])
                .context("consumer SUBMIT")?;
            // The consumer's wait entry is on GPU 0's firmware once the last producer is on
            // GPU 1's.
            let t = std::time::Instant::now();
            while entries()? == entries_before {
                ensure!(
                    t.elapsed() < std::time::Duration::from_secs(5),
                    "the consumer never reached its firmware as a peer wait"
                );
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            ensure!(
                prod.fence_pending(s)?,
                "the producers finished before GPU 1 could be unbound"
            );
            crate::fixture::unbind(&address)?;
            g0.wait(consumed, WAIT_MS)
                .context("the consumer of a lost GPU never completed")?;
            let r = fence_result(&g0, consumed)?;
            ensure!(r == Err(libc::ENODEV), "consumer: {r:?}, expected ENODEV");
            ensure!(
                consumer.map.u32_at(consumer.off(RAN_AT)) == 0,
                "the consumer of a lost GPU's job ran"
            );
            ensure!(
                errors()? > errors_before,
                "GPU 0's firmware reported no dependency error for the lost peer"
            );
        }
        crate::fixture::first_device_works()
    })();
    let _ = crate::fixture::unbind(&address);
    crate::fixture::bind(&address)?;
    result
}

fn dep_firmware_orders_a_consumer_after_four_producers_and_the_cpu_after_two_more() -> Result<()> {
    fan_in(6, None, true)
}

fn dep_firmware_fails_the_consumer_of_a_faulting_producer_without_running_it() -> Result<()> {
    fan_in(1, Some(0), true)
}

fn dep_the_cpu_orders_the_same_fan_in_when_firmware_waits_are_off() -> Result<()> {
    inject("hw-waits 0")?;
    let r = fan_in(6, None, false);
    inject("hw-waits 1")?;
    r
}

fn dep_a_point_behind_pending_points_of_its_own_queue_is_waited_for_by_the_firmware() -> Result<()>
{
    timeline_behind_pending_points(false)
}

fn dep_a_point_behind_a_pending_point_of_another_queue_is_waited_for_by_the_cpu() -> Result<()> {
    timeline_behind_pending_points(true)
}

/// Where the timeline producers write, and where the consumer copies to.
const POINT_MARKERS: u64 = 0x500;
const POINT_COPIES: u64 = 0x600;

/// Three producers signal points 1, 2 and 3 of one timeline, all held behind a gate, each a
/// delay and then a marker; the consumer, on another queue, waits for point 3 and copies the
/// markers. With every point from one queue, the wait is the firmware's (points 1 and 2 are
/// ordered by point 3's job, which that queue runs after them); with point 2's producer on
/// another queue (`mixed`), which runs longer than the other two together, it is the CPU's.
/// Either way the consumer reads all three markers.
fn timeline_behind_pending_points(mixed: bool) -> Result<()> {
    let g = Gpu::open_first()?;
    let ctx = Ctx::normal(&g)?;
    let normal = uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_NORMAL;
    let queues = [
        g.queue_create(ctx.vm, normal)?,
        g.queue_create(ctx.vm, normal)?,
        g.queue_create(ctx.vm, normal)?,
    ];
    let result = (|| -> Result<()> {
        let gate = crate::sw_sync::Timeline::new().context("sw_sync timeline")?;
        let gated = g.syncobj()?;
        g.import_sync_file(gated, gate.fence(1)?.as_fd())?;
        let timeline = g.syncobj()?;
        for point in 1..=3u64 {
            let other = mixed && point == 2;
            let q = if other { queues[1] } else { queues[0] };
            // On the other queue, point 2's producer outlasts points 1 and 3 together: a
            // consumer ordered only after point 3's job would read no marker 2.
            let delay = if other { 2 } else { 1 } * PRODUCER_DELAY_NS / 2;
            let mut p = CmdBuf::new();
            p.delay(delay).write32(
                ctx.va(POINT_MARKERS + 4 * point),
                MARKER + u32::try_from(point)?,
            );
            let at = (70 + point) * CMD_SLOT;
            ctx.map.write(usize::try_from(at)?, p.bytes());
            g.submit(
                q,
                BASE + at,
                p.len(),
                &[Sync::wait(gated, 0), Sync::signal(timeline, point)],
            )
            .context("producer SUBMIT")?;
        }
        let mut c = CmdBuf::new();
        c.copy(ctx.va(POINT_MARKERS + 4), ctx.va(POINT_COPIES + 4), 12);
        let at = 80 * CMD_SLOT;
        ctx.map.write(usize::try_from(at)?, c.bytes());
        let consumed = g.syncobj()?;
        let before = driver_counter("hw_waits")?;
        g.submit(
            queues[2],
            BASE + at,
            c.len(),
            &[Sync::wait(timeline, 3), Sync::signal(consumed, 0)],
        )
        .context("consumer SUBMIT")?;
        let hw_waits = driver_counter("hw_waits")? - before;
        gate.advance(1)?;
        g.wait(consumed, WAIT_MS)
            .context("the consumer never completed")?;
        ensure!(fence_result(&g, consumed)? == Ok(()), "the consumer failed");
        let expected = u64::from(!mixed);
        ensure!(
            hw_waits == expected,
            "{hw_waits} waits went to the firmware, expected {expected}"
        );
        for point in 1..=3u64 {
            let got = ctx.map.u32_at(ctx.off(POINT_COPIES + 4 * point));
            let want = MARKER + u32::try_from(point)?;
            ensure!(
                got == want,
                "the consumer ran before point {point}'s producer wrote (read {got:#x})"
            );
        }
        Ok(())
    })();
    for q in queues {
        let _ = g.queue_destroy(q);
    }
    result
}

/// Device time the long fan-in producers spend, all together, before they write: long against
/// a submit, and below the firmware's 100 ms watchdog, which runs from an entry's fetch (an
/// entry waiting for an execution unit counts too).
const FAN_IN_DELAY_NS: u64 = 80_000_000;
/// Where fan-in producer `i` writes its marker, and where the consumer copies it.
const FAN_IN_MARKERS: u64 = 0x200;
const FAN_IN_COPIES: u64 = 0x300;

/// `n` producers on as many queues of one VM (a long delay, then a marker; producer `faulty`
/// faults instead), and a consumer on another queue that waits for all of them through binary
/// syncobjs. At most four (`MAX_HW_WAITS`) waits go to the firmware, the rest (whose
/// producers are short) to the CPU; all of them must hold: the consumer copies every marker, or
/// fails with the fault's `EIO` without running.
///
/// With `firmware_waits` false the driver's switch (debugfs `inject`: `hw-waits 0`) is expected
/// off: every wait is the CPU's.
fn fan_in(n: usize, faulty: Option<usize>, firmware_waits: bool) -> Result<()> {
    const MAX_HW_WAITS: u64 = 4;
    let g = Gpu::open_first()?;
    let ctx = Ctx::normal(&g)?;
    let normal = uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_NORMAL;
    // The long producers run `units` at a time, in `rounds` rounds.
    let units = g
        .get_param(uapi::drm_vagx_param_DRM_VAGX_PARAM_UNITS)?
        .max(1);
    let long = MAX_HW_WAITS.min(u64::try_from(n)?);
    let delay = FAN_IN_DELAY_NS / long.div_ceil(units);
    let mut queues = Vec::new();
    for _ in 0..n {
        queues.push(g.queue_create(ctx.vm, normal)?);
    }
    // Every producer waits for a gate the CPU opens only once the consumer is submitted: at
    // its submit all producers are pending however slowly the host runs the guest, so the
    // first four of its waits must go to the firmware. The short producers (the CPU's waits)
    // pass at point 1 and must finish before the long ones pass at point 2: the consumer then
    // reaches the firmware as soon as the long ones have started, while they still run, and
    // needs its wait entries. (Released together, the firmware could start the long ones
    // first and the consumer would find them done.)
    const SHORT_GATE: u32 = 1;
    const LONG_GATE: u32 = 2;
    let gate = crate::sw_sync::Timeline::new().context("sw_sync timeline")?;
    let gates = [g.syncobj()?, g.syncobj()?];
    g.import_sync_file(gates[0], gate.fence(SHORT_GATE)?.as_fd())?;
    g.import_sync_file(gates[1], gate.fence(LONG_GATE)?.as_fd())?;
    let result = (|| -> Result<()> {
        let mut waits = vec![Sync::wait(0, 0); n];
        let mut short_done = Vec::new();
        for i in 0..n {
            let (idx, q) = (u64::try_from(i)?, queues[i]);
            let long_producer = idx < MAX_HW_WAITS;
            let mut p = CmdBuf::new();
            if long_producer {
                p.delay(delay);
            }
            if faulty == Some(i) {
                p.write32(UNMAPPED, MARKER);
            } else {
                p.write32(ctx.va(FAN_IN_MARKERS + 4 * idx), MARKER + u32::try_from(i)?);
            }
            let at = (CONSUMER_SLOT + 1 + idx) * CMD_SLOT;
            ctx.map.write(usize::try_from(at)?, p.bytes());
            let s = g.syncobj()?;
            let gated = gates[usize::from(long_producer)];
            g.submit(
                q,
                BASE + at,
                p.len(),
                &[Sync::wait(gated, 0), Sync::signal(s, 0)],
            )
            .context("producer SUBMIT")?;
            waits[i] = Sync::wait(s, 0);
            if !long_producer {
                short_done.push(s);
            }
        }
        let mut c = CmdBuf::new();
        c.copy(
            ctx.va(FAN_IN_MARKERS),
            ctx.va(FAN_IN_COPIES),
            4 * u64::try_from(n)?,
        )
        .write32(ctx.va(RAN_AT), 1);
        let consumed = g.syncobj()?;
        waits.push(Sync::signal(consumed, 0));
        let before = [driver_counter("hw_waits")?, driver_counter("wait_entries")?];
        let dep_errors_before = driver_counter("dep_errors")?;
        ctx.run(&c, &waits).context("consumer SUBMIT")?;
        gate.advance(SHORT_GATE)?;
        for s in short_done {
            g.wait(s, WAIT_MS)
                .context("a short fan-in producer never completed")?;
        }
        gate.advance(LONG_GATE - SHORT_GATE)?;
        g.wait(consumed, WAIT_MS)
            .context("the consumer never completed")?;
        let hw_waits = driver_counter("hw_waits")? - before[0];
        let wait_entries = driver_counter("wait_entries")? - before[1];
        let expected = if firmware_waits {
            MAX_HW_WAITS.min(u64::try_from(n)?)
        } else {
            0
        };
        ensure!(
            hw_waits == expected,
            "{hw_waits} of {n} waits went to the firmware, expected {expected}"
        );
        let consumer = ctx.fence_result(consumed)?;
        let ran = ctx.map.u32_at(ctx.off(RAN_AT));
        match faulty {
            None => {
                // The long producers still ran when the consumer did: each got a wait entry.
                ensure!(
                    wait_entries == expected,
                    "{wait_entries} wait entries, expected {expected}"
                );
                ensure!(consumer == Ok(()), "consumer: {consumer:?}");
                for i in 0..n {
                    let got = ctx
                        .map
                        .u32_at(ctx.off(FAN_IN_COPIES + 4 * u64::try_from(i)?));
                    let want = MARKER + u32::try_from(i)?;
                    ensure!(
                        got == want,
                        "the consumer ran before producer {i} wrote (read {got:#x})"
                    );
                }
            }
            Some(_) => {
                ensure!(consumer == Err(libc::EIO), "consumer: {consumer:?}");
                ensure!(ran == 0, "the consumer of a faulting producer ran");
                let dep_errors = driver_counter("dep_errors")? - dep_errors_before;
                ensure!(
                    wait_entries == 0 || dep_errors >= 1,
                    "the firmware waited for the faulting producer and reported no dependency \
                     error"
                );
            }
        }
        Ok(())
    })();
    for q in queues {
        let _ = g.queue_destroy(q);
    }
    result
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
        Place::OtherGpu => Some(Gpu::open_index(1)?),
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
        Place::OtherVm | Place::OtherFile | Place::OtherGpu => {
            let bo = match place {
                Place::OtherFile | Place::OtherGpu => {
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
    let before = [
        driver_counter("hw_waits")?,
        driver_counter("wait_entries")?,
        driver_counter("dep_errors")?,
    ];
    let consumer_gpu = usize::from(place == Place::OtherGpu);
    let consumer_counters = || -> Result<[u64; 4]> {
        Ok([
            driver_counter_of(consumer_gpu, "hw_waits")?,
            driver_counter_of(consumer_gpu, "peer_waits")?,
            driver_counter_of(consumer_gpu, "wait_entries")?,
            driver_counter_of(consumer_gpu, "dep_errors")?,
        ])
    };
    let consumer_before = consumer_counters()?;
    cg.submit(
        cons.queue,
        BASE + at,
        c.len(),
        &[waits_on, Sync::signal(consumed, 0)],
    )
    .context("consumer SUBMIT")?;
    // Still running after the consumer's submit: it was running during it too.
    let producer_was_running = prod.fence_pending(produced)?;
    cg.wait(consumed, WAIT_MS)
        .context("the consumer never completed")?;
    let mut hw_waits = driver_counter("hw_waits")? - before[0];
    let mut wait_entries = driver_counter("wait_entries")? - before[1];
    let mut dep_errors = driver_counter("dep_errors")? - before[2];
    if place == Place::OtherGpu {
        // The consumer's firmware waits for the producer's stamp over the peer fabric; the
        // producer's firmware is asked nothing.
        let after = consumer_counters()?;
        let [c_hw, c_peer, c_entries, c_errors] =
            [0, 1, 2, 3].map(|i| after[i] - consumer_before[i]);
        ensure!(
            hw_waits == 0 && wait_entries == 0,
            "a wait of another GPU's job went to the producer's firmware ({hw_waits} waits, \
             {wait_entries} entries)"
        );
        ensure!(
            c_hw == c_peer,
            "{c_hw} hardware waits but {c_peer} peer waits"
        );
        if producer_was_running {
            ensure!(
                c_peer == 1,
                "a wait on a running job of another GPU went to the consumer's firmware \
                 {c_peer} times, not once"
            );
        }
        (hw_waits, wait_entries, dep_errors) = (c_hw, c_entries, c_errors);
    } else if producer_was_running {
        ensure!(
            hw_waits == 1,
            "a wait on a running job of the same device went to the firmware {hw_waits} times, \
             not once"
        );
    }
    // None if the producer had completed (or failed) when the consumer was run.
    ensure!(
        wait_entries <= hw_waits,
        "{wait_entries} wait entries for {hw_waits} waits"
    );

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
            ensure!(
                wait_entries == 0 || dep_errors >= 1,
                "the firmware waited for a failed producer and reported no dependency error"
            );
        }
    }
    drop(cons);
    Ok(())
}
