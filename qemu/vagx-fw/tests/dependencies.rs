// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Dependencies between queues (ABI 1.1): wait entries, BARRIER_FLAG_DEP_ERROR, dependency
//! errors, the failure record and its bound, and what an ABI 1.0 device or driver sees.

mod common;

use common::*;
use vagx_abi::{
    channels::*,
    cmd::*,
    mbox::FwError,
    queue::{EntryError, EntryKind, QueueEntry, QUEUE_ENTRY_WAIT},
    regs, stamp_passed, PipeType, FAILURE_HISTORY, STAMP_STEP,
};
use vagx_fw::FwState;

/// The stamp a queue starts at in the driver: 16 entries before the wrap.
const DRIVER_STAMP_INIT: u32 = 0u32.wrapping_sub(16 * STAMP_STEP);

fn reset_queue(h: &mut Harness, queue: u32) -> u64 {
    let r = h.devctrl(&DevCtrlResetQueue(DevCtrlQueue { queue }));
    assert_eq!(r.status, DEVCTRL_OK);
    r.value
}

fn resume(h: &mut Harness) {
    assert_eq!(h.devctrl(&DevCtrlResume { _pad: 0 }).status, DEVCTRL_OK);
}

/// Runs until `slot` passes `stamp` (panics after `limit` ns).
fn finish(h: &mut Harness, slot: u32, stamp: u32, limit: u64) {
    assert!(
        h.run_until_stamp(slot, stamp, limit).is_some(),
        "slot {slot} did not reach {stamp:#x} (it is at {:#x})",
        h.stamp(slot)
    );
}

/// `(queue, stamp, cause)` of every dependency error read so far, checking the common fields.
fn dep_errors(h: &mut Harness) -> Vec<(u32, u32, u32)> {
    h.events();
    h.entry_errors()
        .iter()
        .map(|e| {
            assert_eq!(e.error, FwError::Dependency as u32, "{e:?}");
            (e.queue, e.stamp, e.cause)
        })
        .collect()
}

/// Makes queue `id`'s next entry fail by a fault and recovers as a driver would (reset, then
/// resume); returns the failed entry's stamp.
fn faulted_entry(h: &mut Harness, id: u32) -> u32 {
    let bad = h.submit(id, &write32(0x7000_0000, 1));
    h.run_for(100_000);
    assert_eq!(h.dev.state(), FwState::Halted);
    assert_eq!(reset_queue(h, id), 1);
    resume(h);
    bad
}

#[test]
fn queue_entry_constructors_and_decode() {
    let wait = QueueEntry::wait(5, 0xdead_beef);
    assert_eq!(wait.flags, QUEUE_ENTRY_WAIT);
    assert_eq!((wait.cmdbuf, wait.len), (0xdead_beef_0000_0005, 0));
    assert_eq!(
        wait.decode(1),
        Ok(EntryKind::Wait {
            slot: 5,
            value: 0xdead_beef,
            peer: None
        })
    );
    // ABI 1.0 knows no flags at all.
    assert_eq!(wait.decode(0), Err(EntryError::UnknownFlags));
    let buf = QueueEntry::cmdbuf(0x1000, 64);
    assert_eq!(
        buf.decode(0),
        Ok(EntryKind::CmdBuf {
            address: 0x1000,
            len: 64
        })
    );
    assert_eq!(buf.decode(1), buf.decode(0));
    let bad = [
        (QueueEntry::wait(128, 0), EntryError::BadWait),
        (
            QueueEntry {
                len: 8,
                ..QueueEntry::wait(1, 0)
            },
            EntryError::BadWait,
        ),
        (
            QueueEntry {
                flags: QUEUE_ENTRY_WAIT | 1 << 1,
                ..QueueEntry::wait(1, 0)
            },
            EntryError::UnknownFlags,
        ),
        (QueueEntry::cmdbuf(0x1004, 8), EntryError::BadCmdBuf),
        (QueueEntry::cmdbuf(0x1000, 12), EntryError::BadCmdBuf),
        (
            QueueEntry::cmdbuf(0x1000, (1 << 20) + 8),
            EntryError::BadCmdBuf,
        ),
    ];
    for (entry, err) in bad {
        assert_eq!(entry.decode(1), Err(err), "{entry:?}");
    }
    assert_eq!(FwError::from_raw(7), Some(FwError::Dependency));
    assert_eq!(
        FwError::from_raw(FwError::Dependency as u32),
        Some(FwError::Dependency)
    );
}

#[test]
fn a_wait_entry_orders_a_job_after_another_queue_without_holding_a_unit() {
    let mut h = Harness::new(2);
    h.create_queue(40, 1);
    h.create_queue(41, 1);
    h.create_queue(42, 1);
    // The consumer's job is queued first: it parks on the producer's first entry.
    let wait = h.queue_wait(41, 40, STAMP_STEP);
    let consumer = h.queue_entry(41, &write32(OUT, 2));
    h.kick();
    let producer = h.queue_entry(40, &cmdbuf(&[delay(500_000), write32(OUT, 1)]));
    assert_eq!(producer, STAMP_STEP);
    let other = h.queue_entry(42, &cmdbuf(&[delay(100_000), write32(OUT + 4, 3)]));
    h.kick();
    // Two units, three queues: the parked consumer leaves one free for the third queue.
    let t = h.run_until_stamp(42, other, 10_000_000).unwrap();
    assert!(t < 200_000, "the third queue waited for a unit ({t} ns)");
    assert!(!stamp_passed(h.stamp(41), wait));
    finish(&mut h, 40, producer, 10_000_000);
    // The consumer's command buffer runs after the producer's, and the wait costs nothing:
    // the command buffer's own cost is all there is (entry overhead, command, 4 bytes).
    let after = h.run_until_stamp(41, consumer, 10_000_000).unwrap();
    assert_eq!(after, 1000 + 200 + 1);
    assert_eq!(
        read32(&mut h, OUT),
        2,
        "the consumer ran before the producer"
    );
    assert_eq!(
        h.stamp(41),
        2 * STAMP_STEP,
        "the wait entry has a stamp of its own"
    );
    assert!(dep_errors(&mut h).is_empty());
    assert_eq!(h.dev.state(), FwState::Running);
}

#[test]
fn a_wait_on_a_faulted_entry_fails_the_job_without_running_it() {
    let mut h = Harness::new(2);
    h.create_queue(50, 1);
    h.create_queue(51, 1);
    let bad = h.queue_entry(50, &write32(0x7000_0000, 1));
    let wait = h.queue_wait(51, 50, bad);
    let job = h.queue_entry(51, &write32(OUT, 2));
    let later = h.queue_entry(51, &write32(OUT + 4, 3));
    h.kick();
    h.run_for(1_000_000);
    // The producer's fault halts the firmware; the consumer is still parked.
    assert_eq!(h.dev.state(), FwState::Halted);
    let table = h.pending();
    assert_eq!(
        table.entries[51].next_stamp, wait,
        "the parked wait is in flight"
    );
    assert_eq!(reset_queue(&mut h, 50), 1);
    resume(&mut h);
    finish(&mut h, 51, later, 1_000_000);
    assert_eq!(
        read32(&mut h, OUT),
        0,
        "the failed job's command buffer ran"
    );
    assert_eq!(read32(&mut h, OUT + 4), 3, "the queue did not go on");
    assert_eq!(h.dev.state(), FwState::Running, "a dependency error halted");
    h.events();
    let errors = h.entry_errors();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(
        errors[0],
        EventEntryError {
            queue: 51,
            entry: 0,
            stamp: wait,
            error: FwError::Dependency as u32,
            cause: DEP_CAUSE_WAIT,
            command: NO_COMMAND,
            slot: 50,
            value: bad,
        }
    );
    assert_eq!(
        (errors[1].entry, errors[1].stamp, errors[1].cause),
        (1, job, DEP_CAUSE_JOB)
    );
    assert_eq!((errors[1].slot, errors[1].value), (50, bad));
    // Only the producer's fault was reported as a fault.
    let faults: Vec<u32> = h
        .seen
        .iter()
        .filter_map(|e| e.payload::<EventFault>().map(|f| f.queue))
        .collect();
    assert_eq!(faults, [50]);
    assert!(h.seen.iter().all(|e| e.kind != EVENT_TIMEOUT));
    // The failed entries completed like any other: the slot fired, `done` moved on.
    assert_eq!(h.done(51), 3);
}

#[test]
fn a_wait_on_a_hung_entry_fails_after_its_timeout_and_is_never_blamed() {
    let mut h = Harness::with_init(2, |init| init.watchdog_ns = 5_000_000);
    h.create_queue(60, 1);
    h.create_queue(61, 1);
    // The wait starts before the hang: if waits were under the watchdog, it would time out
    // first.
    let hung = h.stamp(60).wrapping_add(STAMP_STEP);
    let wait = h.queue_wait(61, 60, hung);
    let job = h.queue_entry(61, &write32(OUT, 2));
    h.kick();
    h.run_for(1_000_000);
    assert_eq!(h.submit(60, &hang()), hung);
    h.run_for(10_000_000);
    assert_eq!(h.dev.state(), FwState::Halted);
    let timeouts: Vec<u32> = h
        .events()
        .iter()
        .filter_map(|e| e.payload::<EventTimeout>().map(|t| t.queue))
        .collect();
    assert_eq!(timeouts, [60], "the waiting queue was blamed");
    assert_eq!(reset_queue(&mut h, 60), 1);
    resume(&mut h);
    finish(&mut h, 61, job, 1_000_000);
    assert_eq!(read32(&mut h, OUT), 0);
    assert_eq!(
        dep_errors(&mut h),
        [(61, wait, DEP_CAUSE_WAIT), (61, job, DEP_CAUSE_JOB)]
    );
}

#[test]
fn a_wait_on_an_entry_discarded_by_a_reset_fails_and_one_before_it_does_not() {
    let mut h = Harness::new(2);
    h.create_queue(70, 1);
    h.create_queue(71, 1);
    let done = h.submit(70, &write32(OUT, 1));
    finish(&mut h, 70, done, 1_000_000);
    let running = h.queue_entry(70, &delay(1_000_000));
    let queued = h.queue_entry(70, &write32(OUT + 4, 1));
    // Job 1 waits for the completed entry, job 2 for the running one, job 3 for the queued one.
    h.queue_wait(71, 70, done);
    let ok = h.queue_entry(71, &write32(OUT + 8, 1));
    let w2 = h.queue_wait(71, 70, running);
    let j2 = h.queue_entry(71, &write32(OUT + 12, 1));
    let w3 = h.queue_wait(71, 70, queued);
    let j3 = h.queue_entry(71, &write32(OUT + 16, 1));
    h.kick();
    finish(&mut h, 71, ok, 1_000_000);
    h.run_for(100_000);
    // The driver cancels the producer's context: no fault, no halt.
    assert_eq!(reset_queue(&mut h, 70), 2);
    finish(&mut h, 71, j3, 1_000_000);
    assert_eq!(h.dev.state(), FwState::Running);
    assert_eq!(
        read32(&mut h, OUT + 8),
        1,
        "the job on a success did not run"
    );
    assert_eq!(read32(&mut h, OUT + 12), 0);
    assert_eq!(read32(&mut h, OUT + 16), 0);
    assert_eq!(read32(&mut h, OUT + 4), 0, "the discarded entry ran");
    assert_eq!(
        dep_errors(&mut h),
        [
            (71, w2, DEP_CAUSE_WAIT),
            (71, j2, DEP_CAUSE_JOB),
            (71, w3, DEP_CAUSE_WAIT),
            (71, j3, DEP_CAUSE_JOB),
        ]
    );
}

#[test]
fn dependency_errors_chain_through_jobs_of_several_waits() {
    let mut h = Harness::new(2);
    for id in [80, 81, 82, 83] {
        h.create_queue(id, 1);
    }
    let ok = h.submit(83, &nop());
    finish(&mut h, 83, ok, 1_000_000);
    let a = faulted_entry(&mut h, 80);
    // B: a job of two waits (one on a success, one on A) and a command buffer.
    let b_ok = h.queue_wait(81, 83, ok);
    let b_wait = h.queue_wait(81, 80, a);
    let b = h.queue_entry(81, &write32(OUT, 1));
    // C waits for B's command buffer, D for B's first wait entry (which succeeded).
    let c_wait = h.queue_wait(82, 81, b);
    let c = h.queue_entry(82, &write32(OUT + 4, 1));
    let d = h.queue_wait(82, 81, b_ok);
    let d_job = h.queue_entry(82, &write32(OUT + 8, 1));
    h.kick();
    finish(&mut h, 82, d_job, 1_000_000);
    assert_eq!(read32(&mut h, OUT), 0);
    assert_eq!(read32(&mut h, OUT + 4), 0, "C ran after B failed");
    assert_eq!(
        read32(&mut h, OUT + 8),
        1,
        "D failed although B's first wait succeeded"
    );
    // Neither B's first wait nor D (which waited for it) failed.
    assert_eq!(
        dep_errors(&mut h),
        [
            (81, b_wait, DEP_CAUSE_WAIT),
            (81, b, DEP_CAUSE_JOB),
            (82, c_wait, DEP_CAUSE_WAIT),
            (82, c, DEP_CAUSE_JOB),
        ]
    );
    assert!(stamp_passed(h.stamp(82), d) && stamp_passed(h.stamp(81), b_ok));
}

#[test]
fn a_dep_error_barrier_fails_its_entry_at_the_barrier() {
    let mut h = Harness::new(2);
    h.create_queue(90, 1);
    h.create_queue(91, 1);
    let ok = h.submit(90, &nop());
    finish(&mut h, 90, ok, 1_000_000);
    let bad = faulted_entry(&mut h, 90);
    // With the flag on a failed entry: the command before the barrier ran, the rest did not.
    let failed = h.queue_entry(
        91,
        &cmdbuf(&[
            write32(OUT, 1),
            cmd(&CmdBarrier::dep_error(90, bad)),
            write32(OUT + 4, 1),
        ]),
    );
    // With the flag on a success, and without it on the failure (ABI 1.0 behaviour): run.
    let on_success = h.queue_entry(
        91,
        &cmdbuf(&[cmd(&CmdBarrier::dep_error(90, ok)), write32(OUT + 8, 1)]),
    );
    let unflagged = h.queue_entry(
        91,
        &cmdbuf(&[cmd(&CmdBarrier::new(90, bad)), write32(OUT + 12, 1)]),
    );
    h.kick();
    finish(&mut h, 91, unflagged, 1_000_000);
    assert_eq!(h.dev.state(), FwState::Running);
    assert_eq!(
        read32(&mut h, OUT),
        1,
        "the command before the barrier did not run"
    );
    assert_eq!(
        read32(&mut h, OUT + 4),
        0,
        "the command after the barrier ran"
    );
    assert_eq!(read32(&mut h, OUT + 8), 1);
    assert_eq!(
        read32(&mut h, OUT + 12),
        1,
        "a barrier without the flag failed"
    );
    h.events();
    let errors = h.entry_errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = errors[0];
    assert_eq!(
        (e.queue, e.entry, e.stamp, e.cause, e.command, e.slot, e.value),
        (91, 0, failed, DEP_CAUSE_BARRIER, 1, 90, bad)
    );
    assert!(stamp_passed(h.stamp(91), on_success));
}

/// What a 1.0 firmware does with each 1.1 addition: a bad-command fault, as for any other
/// non-zero reserved field.
fn refuses_the_1_1_flags(mut h: Harness) {
    h.create_queue(10, 0);
    h.create_queue(11, 0);
    // A reserved QueueEntry flag (as in 1.0) and the 1.1 wait flag are refused alike.
    for (i, entry) in [
        QueueEntry {
            flags: 1 << 1,
            ..QueueEntry::cmdbuf(GPU_VA, 8)
        },
        QueueEntry::wait(11, 0),
    ]
    .into_iter()
    .enumerate()
    {
        h.queue_raw(10, entry);
        h.kick();
        h.run_for(100_000);
        assert_eq!(h.dev.state(), FwState::Halted, "entry {i}");
        let fault = h.events().iter().find_map(|e| e.payload::<EventFault>());
        assert_eq!(
            fault.map(|f| (f.queue, f.command, f.kind, f.address)),
            Some((10, 0, FAULT_BAD_COMMAND, entry.cmdbuf)),
            "entry {i}"
        );
        reset_queue(&mut h, 10);
        resume(&mut h);
    }
    // The BARRIER flag is refused like any header flag, at the command.
    let buf = cmdbuf(&[nop(), cmd(&CmdBarrier::dep_error(11, 0))]);
    let va = h.write_cmdbuf(&buf);
    h.queue_raw(10, QueueEntry::cmdbuf(va, buf.len() as u32));
    h.kick();
    h.run_for(100_000);
    let fault = h.events().iter().find_map(|e| e.payload::<EventFault>());
    assert_eq!(
        fault.map(|f| (f.command, f.kind, f.address)),
        Some((1, FAULT_BAD_COMMAND, va + 8))
    );
    assert!(h.entry_errors().is_empty());
}

#[test]
fn an_abi_1_0_device_refuses_a_1_1_boot_and_the_1_1_flags() {
    let v1_0 = |h: &mut Harness| {
        h.dev = vagx_fw::Device::new(vagx_fw::Config {
            units: 1,
            abi_version: Some(0x0001_0000),
            ..Default::default()
        });
    };
    // A 1.1 driver cannot boot a 1.0 device.
    let mut h = Harness::unbooted(1);
    v1_0(&mut h);
    assert_eq!(h.mmio_read(regs::ABI_VERSION), 0x0001_0000);
    assert_eq!(h.boot(), Err(u64::from(FwError::InitBadVersion as u32)));
    // A 1.0 driver can, and gets 1.0 behaviour.
    let mut h = Harness::unbooted(1);
    v1_0(&mut h);
    h.init.abi_version = 0x0001_0000;
    assert_eq!(h.boot(), Ok(()));
    h.map(
        GPU_VA,
        DATA,
        DATA_SIZE,
        vagx_abi::mmu::PTE_READ | vagx_abi::mmu::PTE_WRITE,
    );
    h.bind_vm(0);
    refuses_the_1_1_flags(h);
}

#[test]
fn a_1_1_device_keeps_to_1_0_for_a_driver_that_declared_1_0() {
    let h = Harness::with_init(1, |init| init.abi_version = 0x0001_0000);
    assert_eq!(h.mmio_read(regs::ABI_VERSION), regs::ABI_VERSION_VALUE);
    refuses_the_1_1_flags(h);
}

#[test]
fn waits_on_their_own_slot_or_a_bad_slot_are_bad_entries_and_others_are_defined() {
    for entry in [QueueEntry::wait(20, 0), QueueEntry::wait(200, 0)] {
        let mut h = Harness::new(1);
        h.create_queue(20, 0);
        h.queue_raw(20, entry);
        h.kick();
        h.run_for(100_000);
        let fault = h.events().iter().find_map(|e| e.payload::<EventFault>());
        assert_eq!(
            fault.map(|f| (f.queue, f.kind, f.address)),
            Some((20, FAULT_BAD_COMMAND, entry.cmdbuf)),
            "{entry:?}"
        );
    }
    // A slot no queue ever had reads 0: a wait on 0 passes, one on more never does, and
    // parks its queue without a timeout until the host resets it.
    let mut h = Harness::with_init(1, |init| init.watchdog_ns = 1_000_000);
    h.create_queue(21, 0);
    h.queue_wait(21, 100, 0);
    let passed = h.queue_entry(21, &write32(OUT, 1));
    h.kick();
    finish(&mut h, 21, passed, 1_000_000);
    h.queue_wait(21, 100, STAMP_STEP);
    h.queue_entry(21, &write32(OUT + 4, 1));
    h.kick();
    h.run_for(50_000_000);
    assert_eq!(h.dev.state(), FwState::Running, "a wait timed out");
    assert_eq!(
        h.dev.next_deadline(),
        None,
        "a parked wait kept the device busy"
    );
    assert_eq!(reset_queue(&mut h, 21), 2);
    assert_eq!(read32(&mut h, OUT + 4), 0);
    // A destroyed queue's failures still fail waits on its slot.
    h.create_queue(22, 0);
    let bad = faulted_entry(&mut h, 22);
    assert_eq!(
        h.devctrl(&DevCtrlDestroyQueue(DevCtrlQueue { queue: 22 }))
            .status,
        DEVCTRL_OK
    );
    let wait = h.queue_wait(21, 22, bad);
    let job = h.queue_entry(21, &write32(OUT + 8, 1));
    h.kick();
    finish(&mut h, 21, job, 1_000_000);
    assert_eq!(read32(&mut h, OUT + 8), 0);
    assert_eq!(dep_errors(&mut h)[0], (21, wait, DEP_CAUSE_WAIT));
    // A new queue on the slot starts a new record: its own entry at the same stamp succeeded.
    h.create_queue(22, 0);
    let fresh = h.submit(22, &nop());
    assert_eq!(fresh, bad);
    finish(&mut h, 22, fresh, 1_000_000);
    let wait = h.queue_wait(21, 22, bad);
    let job = h.queue_entry(21, &write32(OUT + 12, 1));
    h.kick();
    finish(&mut h, 21, job, 1_000_000);
    assert_eq!(read32(&mut h, OUT + 12), 1);
    assert!(!dep_errors(&mut h).iter().any(|e| e.1 == wait));
}

#[test]
fn failure_records_and_waits_work_across_the_stamp_wrap() {
    let mut h = Harness::new(2);
    assert_eq!(
        h.create_queue_status(30, PipeType::Compute, 1, DRIVER_STAMP_INIT),
        DEVCTRL_OK
    );
    assert_eq!(
        h.create_queue_status(31, PipeType::Compute, 1, 0u32.wrapping_sub(3 * STAMP_STEP)),
        DEVCTRL_OK
    );
    // Up to one entry before the wrap: 15 successes.
    let mut last = 0;
    for _ in 0..15 {
        last = h.queue_entry(30, &nop());
    }
    h.kick();
    finish(&mut h, 30, last, 1_000_000);
    assert_eq!(last, 0u32.wrapping_sub(STAMP_STEP));
    // The entry at stamp 0 faults; the one at STAMP_STEP behind it is discarded with it.
    let bad = h.queue_entry(30, &write32(0x7000_0000, 1));
    let discarded = h.queue_entry(30, &nop());
    h.kick();
    h.run_for(100_000);
    assert_eq!(h.dev.state(), FwState::Halted);
    assert_eq!((bad, discarded), (0, STAMP_STEP));
    assert_eq!(reset_queue(&mut h, 30), 2);
    resume(&mut h);
    let after = h.submit(30, &nop());
    finish(&mut h, 30, after, 1_000_000);
    // One job per awaited stamp; the consumer's own stamps cross the wrap too.
    let mut jobs = Vec::new();
    for (i, (value, fails)) in [
        (last, false),
        (bad, true),
        (discarded, true),
        (after, false),
    ]
    .into_iter()
    .enumerate()
    {
        h.queue_wait(31, 30, value);
        let out = OUT + 4 * i as u64;
        jobs.push((h.queue_entry(31, &write32(out, 1)), out, fails));
    }
    h.kick();
    finish(&mut h, 31, jobs[3].0, 1_000_000);
    for (stamp, out, fails) in jobs {
        assert_eq!(read32(&mut h, out), u32::from(!fails), "job at {stamp:#x}");
    }
    assert_eq!(dep_errors(&mut h).len(), 4);
}

#[test]
fn the_failure_record_is_bounded_and_forgets_in_the_safe_direction() {
    let mut h = Harness::new(2);
    for id in [1, 2, 3] {
        h.create_queue(id, 1);
    }
    // Queue 1 has one failed entry, which queue 2 uses to fail jobs of its own.
    let source = faulted_entry(&mut h, 1);
    // Queue 2: FAILURE_HISTORY + 1 separate failed ranges (a failed job of a wait and a
    // command buffer), each followed by one success.
    let mut failed = Vec::new();
    let mut succeeded = Vec::new();
    for _ in 0..=FAILURE_HISTORY {
        // Read the events, or the held error events would stop the queue.
        h.events();
        h.queue_wait(2, 1, source);
        failed.push(h.queue_entry(2, &nop()));
        succeeded.push(h.queue_entry(2, &nop()));
        h.kick();
        finish(&mut h, 2, *succeeded.last().unwrap(), 1_000_000);
    }
    assert_eq!(dep_errors(&mut h).len(), 2 * (FAILURE_HISTORY + 1));
    // (awaited stamp, whether the job must fail)
    let cases = [
        // The oldest failure is still known...
        (failed[0], true),
        // ...but merged with the next one, the success between them is reported failed.
        (succeeded[0], true),
        // Newer successes and failures are exact.
        (succeeded[1], false),
        (failed[FAILURE_HISTORY], true),
        (succeeded[FAILURE_HISTORY - 1], false),
        (succeeded[FAILURE_HISTORY], false),
    ];
    let mut jobs = Vec::new();
    for (i, (value, fails)) in cases.into_iter().enumerate() {
        h.queue_wait(3, 2, value);
        let out = OUT + 4 * i as u64;
        jobs.push((h.queue_entry(3, &write32(out, 1)), out, value, fails));
    }
    h.kick();
    finish(&mut h, 3, jobs.last().unwrap().0, 1_000_000);
    for (_, out, value, fails) in jobs {
        assert_eq!(read32(&mut h, out), u32::from(!fails), "wait on {value:#x}");
    }
}

#[test]
fn a_failed_entry_completes_only_once_its_error_is_in_the_event_ring() {
    let mut h = Harness::new(2);
    h.create_queue(5, 1);
    h.create_queue(6, 1);
    let doomed = h.submit(5, &delay(1_000_000));
    let wait = h.queue_wait(6, 5, doomed);
    let job = h.queue_entry(6, &write32(OUT, 1));
    h.kick();
    h.run_for(10_000);
    // Fill the event ring (63 usable entries) without reading it: replies to queries.
    for i in 0..70 {
        let msg = DevCtrlMsg::new(1000 + i, &DevCtrlQuery { what: QUERY_UNITS });
        h.push_devctrl(&msg);
    }
    // Cancel the producer: the consumer's wait fails, but its event cannot be written yet.
    let msg = DevCtrlMsg::new(2000, &DevCtrlResetQueue(DevCtrlQueue { queue: 5 }));
    h.push_devctrl(&msg);
    h.run_for(1_000_000);
    assert_eq!(
        h.stamp(6),
        0,
        "a failed entry completed before its error was reported"
    );
    assert!(
        h.dev.next_deadline().is_some(),
        "the firmware stopped retrying"
    );
    // The host reads the ring; the firmware writes the rest, then completes the entries.
    let mut rounds = 0;
    while !stamp_passed(h.stamp(6), job) {
        h.events();
        h.run_for(100_000);
        rounds += 1;
        assert!(rounds < 10, "the failed job never completed");
    }
    assert_eq!(
        dep_errors(&mut h),
        [(6, wait, DEP_CAUSE_WAIT), (6, job, DEP_CAUSE_JOB)]
    );
    assert_eq!(read32(&mut h, OUT), 0);
    for (i, e) in h.seen.iter().enumerate() {
        assert_eq!(e.seq as usize, i, "events lost");
    }
}
