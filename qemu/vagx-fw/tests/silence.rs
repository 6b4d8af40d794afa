// SPDX-License-Identifier: GPL-2.0 OR MIT

//! A firmware that stops answering without crashing (`INJECT_SILENCE`): what it no longer does,
//! how a reset and a boot end it, silent boots (`ARG0`) and `INJECT_CLEAR`.

mod common;

use common::*;
use vagx_abi::{
    channels::*,
    init::{RING_RPTR_OFFSET, RING_WPTR_OFFSET},
    mbox,
    queue::{QUEUE_DONE_OFFSET, QUEUE_RPTR_OFFSET},
    regs, stamp_passed, NUM_STAMP_SLOTS,
};
use vagx_fw::mem::{self, Memory};

/// Ten times the default watchdog (100 ms).
const LONG: u64 = 1_000_000_000;

/// A device-control sequence number the harness never uses itself.
const SEQ: u32 = 0x5000;

/// Arms `INJECT_SILENCE` with `silent_boots` as `ARG0`.
fn silence(h: &mut Harness, silent_boots: u32) {
    h.mmio_write(regs::DEBUG_ARG0, silent_boots);
    h.mmio_write(regs::DEBUG_INJECT, regs::INJECT_SILENCE);
}

/// Handles everything the firmware sent so far, as a driver's interrupt handler would: the
/// mailbox, the event ring, the interrupt and its causes.
fn settle(h: &mut Harness) {
    h.mailbox();
    h.events();
    while h.dev.take_irq() {}
    h.mmio_write(regs::IRQ_STATUS, regs::IRQ_ALL);
}

/// Sends a QUERY on the device-control ring with sequence number `seq` and returns its reply, if
/// one comes within `ns` of device time.
fn query(h: &mut Harness, seq: u32, ns: u64) -> Option<EventDevCtrlDone> {
    h.push_devctrl(&DevCtrlMsg::new(seq, &DevCtrlQuery { what: QUERY_UNITS }));
    h.run_for(ns);
    h.events()
        .iter()
        .find_map(|e| e.payload::<EventDevCtrlDone>().filter(|d| d.seq == seq))
}

/// Whether the firmware answered the last INIT (an INIT_DONE in the mailbox).
fn init_answered(h: &mut Harness) -> bool {
    h.mailbox()
        .iter()
        .any(|&(_, m)| mbox::message_type(m) == mbox::MSG_INIT_DONE)
}

/// Everything the firmware writes where the host can see it: the registers it sets, the ring
/// pointers it owns, the stamps, the pending table, the queues' states and the result area.
#[derive(Debug, PartialEq, Eq)]
struct Outputs {
    registers: [u32; 4],
    memory: Vec<Vec<u8>>,
}

impl Outputs {
    fn take(h: &mut Harness) -> Self {
        let registers = [
            regs::FW_STATE,
            regs::FW_ERROR,
            regs::IRQ_STATUS,
            regs::MBOX_F2H_COUNT,
        ]
        .map(|r| h.mmio_read(r));
        let mut areas = vec![
            (STAMPS, 4 * NUM_STAMP_SLOTS),
            (PENDING, 2064),
            (DEVCTRL.0 + RING_RPTR_OFFSET, 4),
            (EVENT.0 + RING_WPTR_OFFSET, 4),
            (FWLOG.0 + RING_WPTR_OFFSET, 4),
            (STATS.0 + RING_WPTR_OFFSET, 4),
            (DATA + (OUT - GPU_VA), 64),
        ];
        for pipe in h.init.pipes {
            areas.push((pipe.state + RING_RPTR_OFFSET, 4));
        }
        let mut queues: Vec<u64> = h.queues.values().map(|q| q.state).collect();
        queues.sort_unstable();
        for state in queues {
            areas.push((state + QUEUE_RPTR_OFFSET, 4));
            areas.push((state + QUEUE_DONE_OFFSET, 4));
        }
        let memory = areas
            .into_iter()
            .map(|(address, len)| {
                let mut buf = vec![0; len];
                h.ram.read(address, &mut buf).unwrap();
                buf
            })
            .collect();
        Self { registers, memory }
    }
}

/// Queue 1 has an entry in flight (a 1 ms delay, then a write), queue 2 a hang that the watchdog
/// catches after 100 ms; then the host asks for a reply, submits more and sends a stray mailbox
/// message, and one second passes. Without the silence each of those gets its answer; with it,
/// none does and nothing the host can see changes.
#[test]
fn a_silent_firmware_does_nothing_and_keeps_its_state() {
    for silent in [false, true] {
        let mut h = Harness::new(2);
        h.create_queue(1, 0);
        h.create_queue(2, 1);
        let slow = h.submit(1, &cmdbuf(&[delay(1_000_000), write32(OUT, 1)]));
        let hung = h.submit(2, &hang());
        h.run_for(10_000);
        settle(&mut h);
        let before = Outputs::take(&mut h);
        assert_eq!(before.registers[0], regs::FW_STATE_RUNNING);
        if silent {
            silence(&mut h, 0);
            // Nothing to run for: a shell's timer is stopped.
            assert_eq!(h.dev.next_deadline(), None, "a deadline");
        }

        let reply = query(&mut h, SEQ, 0);
        let more = h.submit(1, &write32(OUT + 4, 2));
        // An unknown message type: an ERROR event and a log line from a firmware that listens.
        h.send(mbox::EP_FIRMWARE, mbox::message(0x7f, 0));
        h.run_for(LONG);
        let events = h.events();
        let mailbox = h.mailbox();
        let irq = h.dev.take_irq();

        if !silent {
            assert_eq!(reply.map(|r| r.status), Some(DEVCTRL_OK));
            assert!(stamp_passed(h.stamp(1), more));
            assert_eq!(read32(&mut h, OUT), 1);
            let timeout = events.iter().find_map(|e| e.payload::<EventTimeout>());
            assert_eq!(timeout.map(|t| t.queue), Some(2));
            assert!(events.iter().any(|e| e.kind == EVENT_ERROR));
            assert_eq!(h.mmio_read(regs::FW_STATE), regs::FW_STATE_HALTED);
            assert!(!mailbox.is_empty() && irq);
            assert_ne!(Outputs::take(&mut h), before);
            continue;
        }
        assert_eq!(reply, None, "a device-control reply");
        // No TIMEOUT, FAULT or CRASH, nor any other.
        let kinds: Vec<u32> = events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [], "event kinds");
        assert_eq!(mailbox, [], "mailbox messages");
        assert!(!irq, "an interrupt");
        assert_eq!(h.dev.next_deadline(), None, "a deadline");
        assert!(
            !stamp_passed(h.stamp(1), slow),
            "the entry in flight completed"
        );
        assert!(!stamp_passed(h.stamp(2), hung), "the hung entry completed");
        assert_eq!(read32(&mut h, OUT), 0, "the entry in flight had an effect");
        assert_eq!(h.mmio_read(regs::FW_STATE), regs::FW_STATE_RUNNING);
        assert_eq!(h.mmio_read(regs::FW_ERROR), 0);
        assert_eq!(Outputs::take(&mut h), before);
        assert!(h.dev.is_silent());
    }
}

/// Events the firmware had queued because the event ring was full stay unsent when the host
/// makes room: the silence starts at once, not after the backlog.
#[test]
fn events_queued_before_the_silence_are_never_written() {
    let mut h = Harness::new(1);
    h.events();
    // Two more replies than the event ring holds (one slot stays empty).
    let calls = EVENT.2 + 1;
    for i in 0..calls {
        h.push_devctrl(&DevCtrlMsg::new(
            SEQ + i,
            &DevCtrlQuery { what: QUERY_UNITS },
        ));
    }
    silence(&mut h, 0);
    let written = h.events().len() as u32;
    assert_eq!(written, EVENT.2 - 1, "the event ring was not full");
    h.run_for(LONG);
    assert_eq!(h.events().len(), 0, "the backlog was written");

    // Without the silence the backlog follows once the host makes room.
    let mut h = Harness::new(1);
    h.events();
    for i in 0..calls {
        h.push_devctrl(&DevCtrlMsg::new(
            SEQ + i,
            &DevCtrlQuery { what: QUERY_UNITS },
        ));
    }
    h.events();
    h.run_for(0);
    assert!(!h.events().is_empty());
}

/// No interrupt is sent while the firmware is silent: not one held back by `INJECT_DELAY_IRQ`
/// before the silence, nor one for a cause still pending when the host enables it.
#[test]
fn a_silent_firmware_sends_no_interrupt() {
    let mut h = Harness::new(1);
    h.create_queue(1, 0);
    settle(&mut h);
    h.mmio_write(regs::DEBUG_ARG0, 300_000);
    h.mmio_write(regs::DEBUG_INJECT, regs::INJECT_DELAY_IRQ);
    let s = h.submit(1, &write32(OUT, 1));
    h.run_for(2_000);
    assert_eq!(h.stamp(1), s);
    assert!(!h.dev.take_irq(), "interrupt not held back");
    silence(&mut h, 0);
    h.run_for(LONG);
    assert!(!h.dev.take_irq(), "the held-back interrupt came");

    // The completion's causes are still pending; enabling them again sends nothing.
    assert_ne!(h.mmio_read(regs::IRQ_STATUS), 0);
    h.mmio_write(regs::IRQ_MASK, 0);
    h.mmio_write(regs::IRQ_MASK, regs::IRQ_ALL);
    assert!(!h.dev.take_irq(), "an interrupt for a pending cause");
    // The mailbox still holds what was sent before the silence, and the host can read it.
    assert!(h
        .mailbox()
        .iter()
        .any(|&(_, m)| mbox::message_type(m) == mbox::MSG_RX_DOORBELL));
    assert!(
        !h.dev.take_irq(),
        "an interrupt while the mailbox was drained"
    );
}

#[test]
fn a_firmware_silenced_while_halted_stays_halted() {
    let mut h = Harness::new(1);
    h.create_queue(1, 0);
    h.mmio_write(regs::DEBUG_ARG0, 1);
    h.mmio_write(regs::DEBUG_ARG1, 0);
    h.mmio_write(regs::DEBUG_INJECT, regs::INJECT_FAULT_AT);
    h.submit(1, &write32(OUT, 1));
    h.run_for(100_000);
    assert_eq!(h.mmio_read(regs::FW_STATE), regs::FW_STATE_HALTED);
    settle(&mut h);
    silence(&mut h, 0);
    h.push_devctrl(&DevCtrlMsg::new(
        SEQ,
        &DevCtrlResetQueue(DevCtrlQueue { queue: 1 }),
    ));
    h.push_devctrl(&DevCtrlMsg::new(SEQ + 1, &DevCtrlResume { _pad: 0 }));
    h.run_for(LONG);
    assert!(h.events().is_empty(), "RESET_QUEUE or RESUME answered");
    assert_eq!(h.mmio_read(regs::FW_STATE), regs::FW_STATE_HALTED);
    assert_eq!(h.mmio_read(regs::IRQ_STATUS), 0);
}

#[test]
fn a_reset_and_a_boot_end_the_silence() {
    let mut h = Harness::new(2);
    h.create_queue(1, 0);
    h.create_queue(2, 1);
    h.submit(1, &cmdbuf(&[delay(1_000_000), write32(OUT, 1)]));
    h.run_for(10_000);
    silence(&mut h, 0);
    assert_eq!(query(&mut h, SEQ, LONG), None);

    h.reset();
    assert_eq!(h.mmio_read(regs::FW_STATE), regs::FW_STATE_OFF);
    assert_eq!(h.boot(), Ok(()));
    assert_eq!(h.mmio_read(regs::FW_STATE), regs::FW_STATE_RUNNING);
    // The log ring has the boot's line, and interrupts come again.
    let log_wptr = mem::read_u32(&mut h.ram, FWLOG.0 + RING_WPTR_OFFSET).unwrap();
    assert_ne!(log_wptr, 0, "no log line after the boot");
    assert!(h.dev.take_irq(), "no interrupt after the boot");
    // The old queues are forgotten: the same ids and slots are created again and run work.
    h.bind_vm(0);
    h.create_queue(1, 0);
    h.create_queue(2, 1);
    let a = h.submit(1, &write32(OUT + 4, 7));
    let b = h.submit(2, &write32(OUT + 8, 8));
    assert!(h.run_until_stamp(1, a, 1_000_000).is_some());
    assert!(h.run_until_stamp(2, b, 1_000_000).is_some());
    assert_eq!(read32(&mut h, OUT + 4), 7);
    assert_eq!(read32(&mut h, OUT + 8), 8);
    // The entry in flight at the silence never ran.
    assert_eq!(read32(&mut h, OUT), 0);
    assert_eq!(
        query(&mut h, SEQ, 0).map(|r| (r.status, r.value)),
        Some((DEVCTRL_OK, 2))
    );
}

/// With `ARG0` = N the next N boots, each after a reset, hang: no INIT_DONE, `FW_STATE` stays
/// OFF, and a second INIT does not help; the boot after them works, and so do later ones.
#[test]
fn silent_boots_hang_until_the_count_runs_out() {
    for n in [0, 1, 3] {
        let mut h = Harness::new(1);
        silence(&mut h, n);
        for boot in 0..n {
            h.reset();
            h.send_init();
            h.run_for(LONG);
            assert!(!init_answered(&mut h), "ARG0 {n}: boot {boot} answered");
            assert_eq!(
                h.mmio_read(regs::FW_STATE),
                regs::FW_STATE_OFF,
                "ARG0 {n}: boot {boot}"
            );
            assert!(!h.dev.take_irq(), "ARG0 {n}: boot {boot} interrupted");
            // A firmware hung at boot ignores another INIT too; it does not count as a boot.
            h.send_init();
            assert!(
                !init_answered(&mut h),
                "ARG0 {n}: boot {boot} answered late"
            );
        }
        h.reset();
        assert_eq!(h.boot(), Ok(()), "ARG0 {n}: the boot after the silent ones");
        h.bind_vm(0);
        h.create_queue(3, 0);
        let s = h.submit(3, &write32(OUT, n + 1));
        assert!(h.run_until_stamp(3, s, 1_000_000).is_some(), "ARG0 {n}");
        assert_eq!(read32(&mut h, OUT), n + 1);
        // The count is used up.
        h.reset();
        assert_eq!(h.boot(), Ok(()), "ARG0 {n}: a later boot");
    }
}

/// Armed before the first boot, the silence swallows that INIT; only the boots after a reset
/// count.
#[test]
fn an_init_ignored_by_a_silent_firmware_is_not_a_boot() {
    let mut h = Harness::unbooted(1);
    h.mmio_write(regs::IRQ_MASK, regs::IRQ_ALL);
    silence(&mut h, 1);
    h.send_init();
    assert!(!init_answered(&mut h));
    h.reset();
    h.send_init();
    assert!(
        !init_answered(&mut h),
        "the one silent boot was not counted"
    );
    h.reset();
    assert_eq!(h.boot(), Ok(()));
}

#[test]
fn arming_again_replaces_the_count() {
    let mut h = Harness::new(1);
    silence(&mut h, 3);
    silence(&mut h, 1);
    h.reset();
    h.send_init();
    assert!(!init_answered(&mut h));
    h.reset();
    assert_eq!(h.boot(), Ok(()));
}

/// `INJECT_CLEAR` cancels the silent boots but does not revive a silent firmware: only a reset
/// does, and then the next boot works.
#[test]
fn clear_cancels_silent_boots_but_not_the_silence() {
    let mut h = Harness::new(1);
    h.create_queue(4, 0);
    silence(&mut h, 2);
    h.mmio_write(regs::DEBUG_INJECT, regs::INJECT_CLEAR);
    let s = h.submit(4, &write32(OUT, 1));
    assert_eq!(query(&mut h, SEQ, LONG), None, "CLEAR revived the firmware");
    assert!(!stamp_passed(h.stamp(4), s));
    assert_eq!(h.mmio_read(regs::FW_STATE), regs::FW_STATE_RUNNING);

    h.reset();
    assert_eq!(h.boot(), Ok(()), "CLEAR kept the silent boots");
    h.bind_vm(0);
    h.create_queue(4, 0);
    let s = h.submit(4, &write32(OUT, 2));
    assert!(h.run_until_stamp(4, s, 1_000_000).is_some());
    assert_eq!(read32(&mut h, OUT), 2);
}
