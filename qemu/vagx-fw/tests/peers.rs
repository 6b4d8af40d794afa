// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Peer waits (ABI 1.4): a wait entry of one device on another device's stamp slot, over the
//! peer fabric: ordering without the host, failures passed along, and a peer that is reset,
//! crashes or leaves.

mod common;

use std::sync::{
    atomic::{AtomicUsize, Ordering::SeqCst},
    Arc,
};

use common::*;
use vagx_abi::{
    channels::*,
    mbox::FwError,
    queue::{EntryError, EntryKind, Peer, QueueEntry, QUEUE_ENTRY_PEER, QUEUE_ENTRY_WAIT},
    regs, stamp_passed, STAMP_STEP,
};
use vagx_fw::{Config, Fabric, FwState, Waker};

/// Counts its wake-ups.
#[derive(Default)]
struct Wakes(AtomicUsize);

impl Waker for Wakes {
    fn wake(&self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// Two booted devices on one fabric, `a` (the producer) and `b` (the consumer), driven on one
/// clock as QEMU drives them: a device runs at its own deadlines, and at the current time when
/// its waker was called.
struct Pair {
    a: Harness,
    b: Harness,
    woken: [Arc<Wakes>; 2],
    seen: [usize; 2],
    now: u64,
    _fabric: Arc<Fabric>,
}

impl Pair {
    fn new() -> Self {
        Self::with_units(2, 2)
    }

    /// `a` with `units_a` units, `b` with `units_b`.
    fn with_units(units_a: u32, units_b: u32) -> Self {
        let fabric = Fabric::new();
        let woken = [Arc::new(Wakes::default()), Arc::new(Wakes::default())];
        let mut a = Harness::new(units_a);
        let mut b = Harness::new(units_b);
        assert_eq!(a.dev.attach(&fabric, woken[0].clone()), Some(0));
        assert_eq!(b.dev.attach(&fabric, woken[1].clone()), Some(1));
        for (id, h) in [(10, &mut a), (20, &mut b)] {
            h.create_queue(id, 1);
            h.create_queue(id + 1, 1);
        }
        Self {
            a,
            b,
            woken,
            seen: [0; 2],
            now: 0,
            _fabric: fabric,
        }
    }

    /// `a`'s place on the fabric, as its `FABRIC` register says.
    fn peer_a(&self) -> Peer {
        let v = self.a.mmio_read(regs::FABRIC);
        Peer {
            port: regs::fabric_port(v),
            epoch: regs::fabric_epoch(v),
        }
    }

    fn h(&mut self, i: usize) -> &mut Harness {
        if i == 0 {
            &mut self.a
        } else {
            &mut self.b
        }
    }

    /// Runs both devices until `done` holds or `limit` ns pass; returns the time it held at.
    fn run_until(&mut self, limit: u64, mut done: impl FnMut(&mut Self) -> bool) -> Option<u64> {
        let end = self.now + limit;
        loop {
            if done(self) {
                return Some(self.now);
            }
            // A woken device runs now.
            let mut ran = false;
            for i in 0..2 {
                let n = self.woken[i].0.load(SeqCst);
                if n != self.seen[i] {
                    self.seen[i] = n;
                    let now = self.now;
                    let h = self.h(i);
                    h.now = now;
                    h.dev.advance(&mut h.ram, now);
                    ran = true;
                }
            }
            if ran {
                continue;
            }
            let next = [self.a.dev.next_deadline(), self.b.dev.next_deadline()]
                .into_iter()
                .flatten()
                .min()?;
            if next > end {
                return None;
            }
            self.now = next.max(self.now);
            for i in 0..2 {
                let now = self.now;
                let h = self.h(i);
                if h.dev.next_deadline().is_some_and(|t| t <= now) {
                    h.now = now;
                    h.dev.advance(&mut h.ram, now);
                }
            }
        }
    }

    /// Queues on `b`'s queue 20 a job that waits for `a`'s queue 10's first entry and then
    /// writes 2 at `OUT`, and rings the doorbell; returns the job's last stamp.
    fn park_consumer(&mut self) -> u32 {
        let peer = self.peer_a();
        self.b
            .queue_raw(20, QueueEntry::peer_wait(peer, 10, STAMP_STEP));
        let consumer = self.b.queue_entry(20, &write32(OUT, 2));
        self.b.kick();
        consumer
    }

    /// Runs until `b`'s queue 20 reaches `stamp`; returns the time.
    fn finish_b(&mut self, stamp: u32) -> u64 {
        self.run_until(50_000_000, |p| stamp_passed(p.b.stamp(20), stamp))
            .unwrap_or_else(|| panic!("b's queue 20 did not reach {stamp:#x}"))
    }
}

/// `(queue, cause, slot, value)` of every dependency error `h` reported.
fn dep_errors(h: &mut Harness) -> Vec<(u32, u32, u32, u32)> {
    h.events();
    h.entry_errors()
        .iter()
        .map(|e| {
            assert_eq!(e.error, FwError::Dependency as u32, "{e:?}");
            (e.queue, e.cause, e.slot, e.value)
        })
        .collect()
}

#[test]
fn peer_wait_entries_encode_the_device_and_decode_only_from_abi_1_4() {
    let peer = Peer {
        port: 3,
        epoch: 0x12_3456,
    };
    let e = QueueEntry::peer_wait(peer, 7, 0xdead_beef);
    assert_eq!(e.flags, QUEUE_ENTRY_WAIT | QUEUE_ENTRY_PEER);
    assert_eq!((e.cmdbuf, e.len), (0xdead_beef_0000_0007, 0x1234_5603));
    assert_eq!(
        e.decode(regs::ABI_MINOR_PEER_WAITS),
        Ok(EntryKind::Wait {
            slot: 7,
            value: 0xdead_beef,
            peer: Some(peer)
        })
    );
    // Older versions do not know the flag.
    assert_eq!(e.decode(3), Err(EntryError::UnknownFlags));
    let bad = [
        // A port beyond the fabric.
        QueueEntry {
            len: 32,
            ..QueueEntry::peer_wait(peer, 7, 0)
        },
        // The peer flag on a command buffer.
        QueueEntry {
            flags: QUEUE_ENTRY_PEER,
            ..QueueEntry::cmdbuf(0x1000, 8)
        },
        // A slot out of range.
        QueueEntry::peer_wait(peer, 128, 0),
    ];
    for entry in bad {
        assert_eq!(entry.decode(4), Err(EntryError::BadWait), "{entry:?}");
    }
    // A plain wait still needs `len` 0.
    assert_eq!(QueueEntry::wait(1, 0).decode(4).map(|_| ()), Ok(()));
}

#[test]
fn the_fabric_register_names_the_port_and_changes_epoch_at_every_reset() {
    let fabric = Fabric::new();
    let mut h = Harness::new(1);
    // Not attached: no port.
    assert_eq!(
        regs::fabric_port(h.mmio_read(regs::FABRIC)),
        regs::FABRIC_NO_PORT
    );
    let mut other = Harness::new(1);
    assert_eq!(
        other.dev.attach(&fabric, Arc::new(Wakes::default())),
        Some(0)
    );
    assert_eq!(h.dev.attach(&fabric, Arc::new(Wakes::default())), Some(1));
    let before = h.mmio_read(regs::FABRIC);
    assert_eq!(regs::fabric_port(before), 1);
    h.reset();
    let after = h.mmio_read(regs::FABRIC);
    assert_eq!(regs::fabric_port(after), 1);
    assert_ne!(regs::fabric_epoch(after), regs::fabric_epoch(before));
    // A device that takes a freed port gets an epoch never seen there.
    drop(h);
    let mut next = Harness::new(1);
    assert_eq!(
        next.dev.attach(&fabric, Arc::new(Wakes::default())),
        Some(1)
    );
    let third = next.mmio_read(regs::FABRIC);
    assert!(![before, after].contains(&third));
    // An ABI 1.3 device has no such register.
    let old = vagx_fw::Device::new(Config {
        units: 1,
        abi_version: Some(1 << 16 | 3),
        ..Config::default()
    });
    assert!(old.mmio_read(regs::FABRIC as u64, 4).is_err());
}

#[test]
fn a_peer_wait_starts_the_consumer_at_the_producers_completion_on_the_other_device() {
    let mut p = Pair::new();
    let peer = p.peer_a();
    // The consumer is queued first and parks: it needs no unit and no deadline.
    let wait =
        p.b.queue_raw(20, QueueEntry::peer_wait(peer, 10, STAMP_STEP));
    let consumer = p.b.queue_entry(20, &write32(OUT, 2));
    p.b.kick();
    assert_eq!(p.b.dev.next_deadline(), None, "a parked peer wait polls");
    let producer = p.a.submit(10, &cmdbuf(&[delay(500_000), write32(OUT, 1)]));
    assert_eq!(producer, STAMP_STEP);
    let t_a = p
        .run_until(10_000_000, |p| stamp_passed(p.a.stamp(10), producer))
        .unwrap();
    // The wait entry completes with the producer's entry, at the same device time, not
    // before (the exact start of the consumer is checked below).
    let _ = wait;
    assert!(
        p.woken[1].0.load(SeqCst) > 0,
        "the producer's stamp did not wake the consumer"
    );
    let t_b = p.finish_b(consumer);
    assert_eq!(read32(&mut p.b, OUT), 2);
    assert!(dep_errors(&mut p.b).is_empty());
    // The consumer started at the producer's completion: what follows is its own cost alone
    // (an entry's overhead and one write), and the host did nothing in between.
    let mut alone = Harness::new(2);
    alone.create_queue(20, 1);
    let s = alone.submit(20, &write32(OUT, 2));
    let own = alone.run_until_stamp(20, s, 1_000_000).unwrap();
    assert_eq!(
        t_b - t_a,
        own,
        "the consumer started {} ns late",
        t_b - t_a - own
    );
    // A wait on a stamp the producer has already passed completes at once.
    let again = p.b.queue_raw(20, QueueEntry::peer_wait(peer, 10, producer));
    p.b.kick();
    p.finish_b(again);
}

#[test]
fn a_peer_wait_resolved_while_every_unit_is_busy_runs_at_the_next_command_boundary() {
    // One unit on the consumer's device, kept busy by a queue of short commands; the parked
    // consumer must take the unit at the first boundary after the producer completed, as a
    // queue that became runnable there, not once the other queue has run dry.
    let mut p = Pair::with_units(1, 1);
    let peer = p.peer_a();
    p.b.queue_raw(20, QueueEntry::peer_wait(peer, 10, STAMP_STEP));
    let consumer = p.b.queue_entry(20, &write32(OUT, 2));
    let mut last = 0;
    for _ in 0..10 {
        last = p.b.queue_entry(21, &delay(100_000));
    }
    p.b.kick();
    let producer = p.a.submit(10, &cmdbuf(&[delay(250_000), write32(OUT, 1)]));
    let t_a = p
        .run_until(10_000_000, |p| stamp_passed(p.a.stamp(10), producer))
        .unwrap();
    let t_b = p.finish_b(consumer);
    assert!(
        !stamp_passed(p.b.stamp(21), last),
        "the consumer waited for the other queue to run dry"
    );
    // At most one of the other queue's commands (and an entry's overhead) in between, then
    // the consumer's own entry.
    assert!(
        t_b - t_a < 250_000,
        "the consumer ran {} ns after its producer",
        t_b - t_a
    );
    assert_eq!(read32(&mut p.b, OUT), 2);
}

#[test]
fn a_wake_up_survives_a_register_write_before_the_woken_device_runs() {
    // In QEMU a register write re-arms (or deletes) a device's timer from its deadline: the
    // driver acknowledging an interrupt between a peer's wake-up and the timer must not
    // cancel the wake-up.
    let mut p = Pair::new();
    let consumer = p.park_consumer();
    assert_eq!(p.b.dev.next_deadline(), None);
    let producer = p.a.submit(10, &write32(OUT, 1));
    // Run the producer only: its completion wakes the consumer's device.
    while !stamp_passed(p.a.stamp(10), producer) {
        let t = p.a.dev.next_deadline().expect("the producer stopped");
        p.a.now = t;
        p.a.dev.advance(&mut p.a.ram, t);
    }
    assert!(p.woken[1].0.load(SeqCst) > 0);
    // A register write with no message (as an interrupt acknowledgement is).
    p.b.now = p.a.now;
    p.b.mmio_write(regs::IRQ_STATUS, 0);
    let due = p.b.dev.next_deadline();
    assert!(
        due.is_some_and(|t| t <= p.a.now),
        "the woken device has no deadline any more ({due:?})"
    );
    let t = due.unwrap().max(p.b.now);
    p.b.dev.advance(&mut p.b.ram, t);
    // Served: no deadline at or before the time just run to (it would fire forever).
    assert!(p.b.dev.next_deadline().is_none_or(|d| d > t));
    p.now = t;
    p.finish_b(consumer);
    assert_eq!(read32(&mut p.b, OUT), 2);
}

#[test]
fn a_failed_producer_fails_the_peer_wait_and_its_job_without_running_it() {
    let mut p = Pair::new();
    let consumer = p.park_consumer();
    // The producer faults; its driver resets the queue and resumes, which fails the entry.
    let bad = p.a.submit(10, &write32(0x7000_0000, 1));
    p.run_until(1_000_000, |p| p.a.dev.state() == FwState::Halted)
        .expect("the producer did not fault");
    let r = p.a.devctrl(&DevCtrlResetQueue(DevCtrlQueue { queue: 10 }));
    assert_eq!((r.status, r.value), (DEVCTRL_OK, 1));
    assert_eq!(p.a.devctrl(&DevCtrlResume { _pad: 0 }).status, DEVCTRL_OK);
    p.finish_b(consumer);
    // The consumer's command buffer never ran.
    assert_eq!(read32(&mut p.b, OUT), 0);
    assert_eq!(
        dep_errors(&mut p.b),
        [(20, DEP_CAUSE_WAIT, 10, bad), (20, DEP_CAUSE_JOB, 10, bad)]
    );
    // The consumer's device did not halt: only the job that needed the output failed.
    assert_eq!(p.b.dev.state(), FwState::Running);
    let next = p.b.submit(21, &write32(OUT + 4, 5));
    p.run_until(1_000_000, |p| stamp_passed(p.b.stamp(21), next))
        .unwrap();
    assert_eq!(read32(&mut p.b, OUT + 4), 5);
}

#[test]
fn a_reset_crashed_or_detached_peer_fails_the_waits_on_it() {
    // Reset while a wait is parked on it, then a wait made with the old epoch.
    let mut p = Pair::new();
    let peer = p.peer_a();
    p.b.queue_raw(20, QueueEntry::peer_wait(peer, 10, STAMP_STEP));
    let first = p.b.queue_entry(20, &write32(OUT, 2));
    p.b.kick();
    p.a.submit(10, &hang());
    p.run_until(100_000, |_| false);
    p.a.reset();
    p.finish_b(first);
    let stale =
        p.b.queue_raw(20, QueueEntry::peer_wait(peer, 10, STAMP_STEP));
    p.b.kick();
    p.finish_b(stale);
    assert_eq!(read32(&mut p.b, OUT), 0);
    let causes: Vec<u32> = dep_errors(&mut p.b).iter().map(|e| e.1).collect();
    assert_eq!(causes, [DEP_CAUSE_PEER, DEP_CAUSE_JOB, DEP_CAUSE_PEER]);

    // A crash.
    let mut p = Pair::new();
    let consumer = p.park_consumer();
    p.a.mmio_write(regs::DEBUG_ARG0, 1);
    p.a.mmio_write(regs::DEBUG_INJECT, regs::INJECT_CRASH_AFTER);
    p.a.submit(10, &nop());
    p.run_until(1_000_000, |p| p.a.dev.state() == FwState::Crashed)
        .expect("the producer did not crash");
    p.finish_b(consumer);
    assert_eq!(read32(&mut p.b, OUT), 0);
    assert_eq!(dep_errors(&mut p.b)[0].1, DEP_CAUSE_PEER);

    // A device that leaves the fabric (unplugged).
    let mut p = Pair::new();
    let consumer = p.park_consumer();
    p.run_until(100_000, |_| false);
    p.a.dev.detach();
    p.finish_b(consumer);
    assert_eq!(read32(&mut p.b, OUT), 0);
    assert_eq!(dep_errors(&mut p.b)[0].1, DEP_CAUSE_PEER);
}

#[test]
fn a_peer_wait_on_its_own_device_is_a_bad_entry_and_one_off_the_fabric_is_lost() {
    let mut p = Pair::new();
    let own = p.b.mmio_read(regs::FABRIC);
    let me = Peer {
        port: regs::fabric_port(own),
        epoch: regs::fabric_epoch(own),
    };
    p.b.queue_raw(20, QueueEntry::peer_wait(me, 10, STAMP_STEP));
    p.b.kick();
    p.run_until(1_000_000, |p| p.b.dev.state() == FwState::Halted)
        .expect("no fault");
    let fault = p.b.events().iter().find_map(|e| e.payload::<EventFault>());
    assert_eq!(
        fault.map(|f| (f.queue, f.kind)),
        Some((20, FAULT_BAD_COMMAND))
    );

    // A device on no fabric cannot reach a peer: the wait fails, it does not hang.
    let mut h = Harness::new(1);
    h.create_queue(30, 1);
    h.queue_raw(30, QueueEntry::peer_wait(me, 10, STAMP_STEP));
    let job = h.queue_entry(30, &write32(OUT, 9));
    h.kick();
    assert!(h.run_until_stamp(30, job, 1_000_000).is_some());
    assert_eq!(read32(&mut h, OUT), 0);
    assert_eq!(dep_errors(&mut h)[0].1, DEP_CAUSE_PEER);
}

/// A small xorshift generator: the stress test's seeds reproduce.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Devices on one fabric driven on one clock, as QEMU drives them (see [`Pair`]).
struct Mesh {
    h: Vec<Harness>,
    woken: Vec<Arc<Wakes>>,
    seen: Vec<usize>,
    now: u64,
    _fabric: Arc<Fabric>,
}

impl Mesh {
    fn new(units: &[u32]) -> Self {
        let fabric = Fabric::new();
        let mut h = Vec::new();
        let mut woken = Vec::new();
        for &u in units {
            let w = Arc::new(Wakes::default());
            let mut d = Harness::new(u);
            d.dev.attach(&fabric, w.clone()).unwrap();
            h.push(d);
            woken.push(w);
        }
        Self {
            seen: vec![0; h.len()],
            h,
            woken,
            now: 0,
            _fabric: fabric,
        }
    }

    fn peer(&self, i: usize) -> Peer {
        let v = self.h[i].mmio_read(regs::FABRIC);
        Peer {
            port: regs::fabric_port(v),
            epoch: regs::fabric_epoch(v),
        }
    }

    /// Runs until `done` holds; `None` if the devices stop with nothing to do and it does not
    /// (a lost wake-up), or past `limit` ns.
    fn run_until(&mut self, limit: u64, mut done: impl FnMut(&mut Self) -> bool) -> Option<u64> {
        let end = self.now + limit;
        loop {
            if done(self) {
                return Some(self.now);
            }
            let mut ran = false;
            for i in 0..self.h.len() {
                let n = self.woken[i].0.load(SeqCst);
                if n != self.seen[i] {
                    self.seen[i] = n;
                    let now = self.now;
                    let h = &mut self.h[i];
                    h.now = now;
                    h.dev.advance(&mut h.ram, now);
                    ran = true;
                }
            }
            if ran {
                continue;
            }
            let next = self.h.iter().filter_map(|h| h.dev.next_deadline()).min()?;
            if next > end {
                return None;
            }
            self.now = next.max(self.now);
            for h in &mut self.h {
                if h.dev.next_deadline().is_some_and(|t| t <= self.now) {
                    h.now = self.now;
                    h.dev.advance(&mut h.ram, self.now);
                }
            }
        }
    }
}

#[test]
fn a_mesh_of_devices_runs_every_step_on_peer_waits_alone_whatever_the_timing() {
    // Three devices; at every step each waits for the other two's previous step (as the
    // one-shot all-reduce's jobs do), beside a queue of unrelated work that keeps units busy.
    // Every step is queued ahead and the host does nothing more: a lost wake-up stops the
    // mesh with work left.
    const STEPS: usize = 5;
    for seed in 1..=300u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let units: Vec<u32> = (0..3).map(|_| 1 + rng.below(2) as u32).collect();
        let mut m = Mesh::new(&units);
        let peers: Vec<Peer> = (0..3).map(|i| m.peer(i)).collect();
        let mut last = [0u32; 3];
        let mut stamps = vec![vec![0u32; STEPS]; 3];
        for i in 0..3 {
            m.h[i].create_queue(10, 1);
            m.h[i].create_queue(11, 1 + rng.below(2) as u32);
        }
        for k in 0..STEPS {
            for i in 0..3 {
                if k > 0 {
                    for j in (0..3).filter(|&j| j != i) {
                        m.h[i].queue_raw(10, QueueEntry::peer_wait(peers[j], 10, stamps[j][k - 1]));
                    }
                }
                let ns = 1_000 + rng.below(300_000);
                let va = OUT + 4 * (k as u64);
                stamps[i][k] =
                    m.h[i].queue_entry(10, &cmdbuf(&[delay(ns), write32(va, k as u32 + 1)]));
            }
        }
        for (h, last) in m.h.iter_mut().zip(last.iter_mut()) {
            for _ in 0..1 + rng.below(6) {
                *last = h.queue_entry(11, &delay(1_000 + rng.below(200_000)));
            }
            h.kick();
        }
        let finished = m.run_until(100_000_000, |m| {
            (0..3).all(|i| {
                stamp_passed(m.h[i].stamp(10), stamps[i][STEPS - 1])
                    && stamp_passed(m.h[i].stamp(11), last[i])
            })
        });
        assert!(
            finished.is_some(),
            "seed {seed} (units {units:?}): the mesh stopped with work left: stamps {:?}",
            (0..3).map(|i| m.h[i].stamp(10)).collect::<Vec<_>>()
        );
        for i in 0..3 {
            assert!(dep_errors(&mut m.h[i]).is_empty(), "seed {seed}");
            for k in 0..STEPS {
                assert_eq!(
                    read32(&mut m.h[i], OUT + 4 * k as u64),
                    k as u32 + 1,
                    "seed {seed}"
                );
            }
        }
    }
}
