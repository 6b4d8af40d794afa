// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The firmware model driven through its ABI: boot, queues, commands, scheduling, faults,
//! timeouts, recovery, injections and hostile input.

mod common;

use common::*;
use vagx_abi::{
    channels::*,
    cmd::*,
    init::{InitData, PENDING_CULPRIT, PENDING_VALID},
    mbox::{self, FwError},
    mmu, regs, PipeType, STAMP_STEP,
};
use vagx_fw::FwState;

#[test]
fn boots_and_reports_running() {
    let mut h = Harness::new(2);
    assert_eq!(h.dev.state(), FwState::Running);
    assert_eq!(h.mmio_read(regs::FW_STATE), regs::FW_STATE_RUNNING);
    assert_eq!(h.mmio_read(regs::UNITS), 2);
    assert_ne!(h.mmio_read(regs::IRQ_STATUS) & regs::IRQ_STATE, 0);
    let r = h.devctrl(&DevCtrlQuery { what: QUERY_UNITS });
    assert_eq!((r.status, r.value), (DEVCTRL_OK, 2));
}

#[test]
fn bad_init_data_fails_the_boot_with_a_reason() {
    type Corruption = fn(&mut InitData);
    let cases: [(&str, Corruption, FwError); 5] = [
        ("magic", |i| i.magic = 0, FwError::InitBadMagic),
        (
            "major",
            |i| i.abi_version = 2 << 16,
            FwError::InitBadVersion,
        ),
        ("count", |i| i.event.count = 3, FwError::InitBadRing),
        (
            "entry size",
            |i| i.devctrl.entry_size = 32,
            FwError::InitBadRing,
        ),
        (
            "overlap",
            |i| i.stats.entries = i.event.entries,
            FwError::InitBadRing,
        ),
    ];
    for (name, corrupt, err) in cases {
        let mut h = Harness::unbooted(1);
        corrupt(&mut h.init);
        assert_eq!(h.boot(), Err(u64::from(err as u32)), "{name}");
        assert_eq!(h.mmio_read(regs::FW_STATE), regs::FW_STATE_FAILED, "{name}");
        assert_eq!(h.mmio_read(regs::FW_ERROR), err as u32, "{name}");
    }
    // Unreadable init data: outside RAM.
    let mut h = Harness::unbooted(1);
    h.send(
        mbox::EP_FIRMWARE,
        mbox::message(mbox::MSG_INIT, 0x7000_0000),
    );
    assert_eq!(h.mmio_read(regs::FW_ERROR), FwError::InitUnreadable as u32);
    // A reset brings the device back to OFF, and it boots again.
    h.mmio_write(regs::RESET, regs::RESET_MAGIC);
    assert_eq!(h.mmio_read(regs::FW_STATE), regs::FW_STATE_OFF);
    assert_eq!(h.boot(), Ok(()));
}

#[test]
fn commands_write_memory_and_advance_the_stamp() {
    let mut h = Harness::new(1);
    h.create_queue(3, 2);
    h.write_gpu(OUT + 0x100, &(0..64u8).collect::<Vec<_>>());
    let buf = cmdbuf(&[
        write32(OUT, 0xdead_beef),
        cmd(&CmdWrite64 {
            header: CmdWrite64::HEADER,
            address: OUT + 8,
            value: 0x0123_4567_89ab_cdef,
        }),
        cmd(&CmdFill {
            header: CmdFill::HEADER,
            dst: OUT + 0x40,
            len: 10,
            pattern: 0x4433_2211,
            _pad: 0,
        }),
        cmd(&CmdCopy {
            header: CmdCopy::HEADER,
            src: OUT + 0x100,
            dst: OUT + 0x200,
            len: 64,
        }),
        cmd(&CmdNop {
            header: CmdNop::HEADER,
        }),
    ]);
    let stamp = h.submit(3, &buf);
    assert_eq!(stamp, STAMP_STEP);
    assert!(h.run_until_stamp(3, stamp, 1_000_000).is_some());
    assert_eq!(h.read_gpu(OUT, 4), 0xdead_beef_u32.to_le_bytes());
    assert_eq!(
        h.read_gpu(OUT + 8, 8),
        0x0123_4567_89ab_cdef_u64.to_le_bytes()
    );
    assert_eq!(
        h.read_gpu(OUT + 0x40, 12),
        [0x11, 0x22, 0x33, 0x44, 0x11, 0x22, 0x33, 0x44, 0x11, 0x22, 0, 0]
    );
    assert_eq!(h.read_gpu(OUT + 0x200, 64), (0..64u8).collect::<Vec<_>>());
    assert_eq!(h.done(3), 1);
    let fired = h
        .events()
        .iter()
        .filter_map(|e| e.payload::<EventStamps>())
        .any(|s| s.is_set(3));
    assert!(fired, "no STAMPS event for slot 3");
}

#[test]
fn gemm_reduce_and_checksum_match_host_references() {
    let mut h = Harness::new(2);
    h.create_queue(0, 1);
    let (m, n, k) = (7usize, 5usize, 9usize);
    let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos() - 0.5).collect();
    let mut expect = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0f32;
            for p in 0..k {
                acc += a[i * k + p] * b[p * n + j];
            }
            expect[i * n + j] = acc;
        }
    }
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let (va_a, va_b, va_c) = (OUT, OUT + 0x1000, OUT + 0x2000);
    h.write_gpu(va_a, &bytes(&a));
    h.write_gpu(va_b, &bytes(&b));
    let buf = cmdbuf(&[
        cmd(&CmdGemm {
            header: CmdGemm::HEADER,
            a: va_a,
            b: va_b,
            c: va_c,
            m: m as u32,
            n: n as u32,
            k: k as u32,
            _pad: 0,
        }),
        cmd(&CmdReduceSum {
            header: CmdReduceSum::HEADER,
            src: va_c,
            dst: OUT + 0x3000,
            count: (m * n) as u64,
        }),
        cmd(&CmdChecksum {
            header: CmdChecksum::HEADER,
            src: va_c,
            dst: OUT + 0x3008,
            len: (m * n * 4) as u64,
        }),
    ]);
    let stamp = h.submit(0, &buf);
    assert!(h.run_until_stamp(0, stamp, 10_000_000).is_some());
    assert_eq!(h.read_gpu(va_c, m * n * 4), bytes(&expect));
    let sum = expect.iter().fold(0f32, |s, x| s + x);
    assert_eq!(h.read_gpu(OUT + 0x3000, 4), sum.to_le_bytes());
    let mut fnv = 0xcbf2_9ce4_8422_2325_u64;
    for byte in bytes(&expect) {
        fnv = (fnv ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    assert_eq!(h.read_gpu(OUT + 0x3008, 8), fnv.to_le_bytes());
}

#[test]
fn timing_is_deterministic_and_follows_the_cost_model() {
    // One 1 MiB copy: entry fetch 1000 + command 200 + 2 MiB at 16 GB/s (131072 ns).
    let mut h = Harness::new(1);
    h.create_queue(1, 0);
    let buf = cmd(&CmdCopy {
        header: CmdCopy::HEADER,
        src: OUT,
        dst: OUT + (1 << 20) + 0x1000,
        len: 1 << 20,
    });
    let stamp = h.submit(1, &buf);
    let took = h.run_until_stamp(1, stamp, 10_000_000);
    assert_eq!(took, Some(1000 + 200 + 131_072));
    // A DELAY costs its time plus the command overhead.
    let stamp = h.submit(1, &delay(50_000));
    assert_eq!(
        h.run_until_stamp(1, stamp, 1_000_000),
        Some(1000 + 200 + 50_000)
    );
}

#[test]
fn higher_priority_preempts_at_the_next_command_boundary() {
    let mut h = Harness::new(1);
    h.create_queue(10, 3);
    h.create_queue(11, 0);
    // Low priority: ten 100 µs delays in one entry.
    let low = cmdbuf(&vec![delay(100_000); 10]);
    let low_stamp = h.submit(10, &low);
    h.run_for(250_000);
    // High priority arrives mid-way through the low entry's third command.
    let high_stamp = h.submit(11, &delay(10_000));
    let t_high = h.run_until_stamp(11, high_stamp, 10_000_000).unwrap();
    // It waits only for the running command (ends at 1000 + 3 * 100200 ns from the start).
    assert!(t_high < 100_200 + 11_200, "high waited {t_high} ns");
    assert!(
        !vagx_abi::stamp_passed(h.stamp(10), low_stamp),
        "low finished first"
    );
    assert!(h.run_until_stamp(10, low_stamp, 10_000_000).is_some());
}

/// ABI 1.6: a queue raised at run time takes the unit at the next command boundary, with
/// the entries it already had, ahead of the queue that was above it.
#[test]
fn a_queue_raised_at_run_time_goes_first_from_the_next_command_boundary() {
    let mut h = Harness::new(1);
    h.create_queue(12, 3);
    h.create_queue(13, 1);
    let ten = cmdbuf(&vec![delay(100_000); 10]);
    let low = h.queue_entry(12, &ten);
    let normal = h.queue_entry(13, &ten);
    h.kick();
    h.run_for(250_000);
    // The Normal queue has the unit; the Low one has not started.
    assert_eq!(h.done(13), 0);
    let r = h.devctrl(&DevCtrlSetQueuePriority {
        queue: 12,
        priority: 0,
    });
    assert_eq!(r.status, DEVCTRL_OK);
    let t_low = h.run_until_stamp(12, low, 10_000_000).unwrap();
    // The running command ends (by 300 µs and a little), then the raised queue's ten run.
    assert!(
        t_low < 50_000 + 10 * 100_200 + 11_200,
        "raised queue took {t_low} ns"
    );
    assert!(
        !vagx_abi::stamp_passed(h.stamp(13), normal),
        "the lowered queue finished first"
    );
    assert!(h.run_until_stamp(13, normal, 10_000_000).is_some());
    // And lowered again: a queue back at Low yields to the Normal one.
    let r = h.devctrl(&DevCtrlSetQueuePriority {
        queue: 12,
        priority: 3,
    });
    assert_eq!(r.status, DEVCTRL_OK);
    let low = h.queue_entry(12, &ten);
    let normal = h.queue_entry(13, &ten);
    h.kick();
    assert!(h.run_until_stamp(13, normal, 10_000_000).is_some());
    assert!(!vagx_abi::stamp_passed(h.stamp(12), low));
    assert!(h.run_until_stamp(12, low, 10_000_000).is_some());
}

/// `DEVCTRL_SET_QUEUE_PRIORITY` refuses an unknown queue and a priority out of range, and a
/// firmware of ABI 1.5 does not know it.
#[test]
fn set_queue_priority_checks_its_arguments_and_is_new_in_1_6() {
    let mut h = Harness::new(1);
    h.create_queue(12, 2);
    let set = |queue, priority| DevCtrlSetQueuePriority { queue, priority };
    assert_eq!(h.devctrl(&set(99, 0)).status, DEVCTRL_NOT_FOUND);
    assert_eq!(h.devctrl(&set(12, 4)).status, DEVCTRL_INVALID);
    assert_eq!(h.devctrl(&set(12, u32::MAX)).status, DEVCTRL_INVALID);
    assert_eq!(h.devctrl(&set(12, 0)).status, DEVCTRL_OK);
    let mut old = Harness::with_init(1, |i| i.abi_version = 0x0001_0005);
    old.create_queue(12, 2);
    assert_eq!(old.devctrl(&set(12, 0)).status, DEVCTRL_UNKNOWN_OP);
}

/// Device time queue `id` has been busy, from fresh statistics.
fn queue_busy_ns(h: &mut Harness, id: u32) -> u64 {
    busy_of(&h.stats(), STATS_QUEUE)
        .iter()
        .find(|(q, _, _)| *q == id)
        .map_or(0, |(_, busy, _)| *busy)
}

/// ABI 1.6 weights: two busy queues of one priority on one unit, weights `a` and `b`, each
/// with an entry of 200 commands of 10 µs; returns the device time each had when the first
/// finished.
fn weighted_progress(a: u32, b: u32) -> (u64, u64) {
    let mut h = Harness::new(1);
    h.create_queue(20, 2);
    h.create_queue(21, 2);
    for (q, w) in [(20, a), (21, b)] {
        let r = h.devctrl(&DevCtrlSetQueueWeight {
            queue: q,
            weight: w,
        });
        assert_eq!(r.status, DEVCTRL_OK);
    }
    let work = cmdbuf(&vec![delay(10_000); 200]);
    let last = [h.queue_entry(20, &work), h.queue_entry(21, &work)];
    h.kick();
    while !vagx_abi::stamp_passed(h.stamp(20), last[0])
        && !vagx_abi::stamp_passed(h.stamp(21), last[1])
    {
        h.run_for(10_000);
    }
    let progress = (queue_busy_ns(&mut h, 20), queue_busy_ns(&mut h, 21));
    assert!(h.run_until_stamp(20, last[0], 100_000_000).is_some());
    assert!(h.run_until_stamp(21, last[1], 100_000_000).is_some());
    progress
}

#[test]
fn weights_divide_a_priority_s_command_boundaries() {
    for (a, b) in [(100, 300), (100, 100), (250, 100)] {
        let (x, y) = weighted_progress(a, b);
        // x/y within 5 % of a/b.
        let (got, want) = (x as f64 / y as f64, f64::from(a) / f64::from(b));
        assert!(
            (got / want - 1.0).abs() <= 0.05,
            "weights {a}:{b}: busy {x}:{y} ns"
        );
    }
}

/// A queue weighted 10000 beside one of 100 still leaves it about a command in 100, and a
/// queue back from idle banks nothing: the two alternate at once, not a run of its commands.
#[test]
fn weights_starve_nobody_and_an_idle_queue_banks_nothing() {
    let (x, y) = weighted_progress(10_000, 100);
    assert!(
        (10_000..=50_000).contains(&y) && x >= 200 * 10_000,
        "busy {x}:{y} ns at 10000:100"
    );
    let mut h = Harness::new(1);
    h.create_queue(20, 2);
    h.create_queue(21, 2);
    h.queue_entry(20, &cmdbuf(&vec![delay(10_000); 60]));
    h.kick();
    h.run_for(30 * 10_000);
    // Queue 21 was idle for 30 commands of queue 20; now both are busy: they alternate.
    h.queue_entry(21, &cmdbuf(&vec![delay(10_000); 20]));
    h.kick();
    let (a0, b0) = (queue_busy_ns(&mut h, 20), queue_busy_ns(&mut h, 21));
    h.run_for(10 * 10_000);
    let (a, b) = (
        queue_busy_ns(&mut h, 20) - a0,
        queue_busy_ns(&mut h, 21) - b0,
    );
    assert!(
        a.abs_diff(b) <= 2 * 10_000 + 2_000,
        "after idling, the returning queue was busy {b} ns against {a}"
    );
}

#[test]
fn set_queue_weight_checks_its_arguments_and_is_new_in_1_6() {
    let mut h = Harness::new(1);
    h.create_queue(12, 2);
    let set = |queue, weight| DevCtrlSetQueueWeight { queue, weight };
    assert_eq!(h.devctrl(&set(99, 100)).status, DEVCTRL_NOT_FOUND);
    for bad in [0, 10_001, u32::MAX] {
        assert_eq!(h.devctrl(&set(12, bad)).status, DEVCTRL_INVALID);
    }
    assert_eq!(h.devctrl(&set(12, 1)).status, DEVCTRL_OK);
    assert_eq!(h.devctrl(&set(12, 10_000)).status, DEVCTRL_OK);
    let mut old = Harness::with_init(1, |i| i.abi_version = 0x0001_0005);
    old.create_queue(12, 2);
    assert_eq!(old.devctrl(&set(12, 100)).status, DEVCTRL_UNKNOWN_OP);
}

#[test]
fn queues_of_one_priority_share_a_unit_fairly() {
    let mut h = Harness::new(1);
    h.create_queue(20, 2);
    h.create_queue(21, 2);
    let mut last = [0, 0];
    for _ in 0..8 {
        last[0] = h.queue_entry(20, &cmdbuf(&vec![delay(10_000); 4]));
        last[1] = h.queue_entry(21, &cmdbuf(&vec![delay(10_000); 4]));
    }
    h.kick();
    // Halfway through the total work, both have made about half their progress.
    h.run_for(8 * 2 * 4 * 10_200 / 2);
    let (a, b) = (h.done(20), h.done(21));
    assert!(a.abs_diff(b) <= 1, "unfair: {a} vs {b}");
    assert!((3..=5).contains(&a), "progress {a}");
    assert!(h.run_until_stamp(20, last[0], 100_000_000).is_some());
    assert!(h.run_until_stamp(21, last[1], 100_000_000).is_some());
}

#[test]
fn units_run_queues_in_parallel() {
    let mut h = Harness::new(2);
    h.create_queue(30, 1);
    h.create_queue(31, 1);
    let a = h.queue_entry(30, &delay(1_000_000));
    let b = h.queue_entry(31, &delay(1_000_000));
    h.kick();
    h.run_for(1_001_200);
    assert_eq!((h.stamp(30), h.stamp(31)), (a, b));
}

/// The busy time of each `kind` sample, by id.
fn busy_of(stats: &[StatsMsg], kind: u32) -> Vec<(u32, u64, u64)> {
    stats
        .iter()
        .filter(|m| m.kind == kind)
        .map(|m| (m.id, m.busy_ns, m.entries))
        .collect()
}

#[test]
fn statistics_count_busy_time_per_unit_pipe_and_queue() {
    let mut h = Harness::new(2);
    h.create_queue(30, 1);
    h.create_queue(31, 1);
    for _ in 0..3 {
        h.queue_entry(30, &delay(1_000_000));
        h.queue_entry(31, &delay(2_000_000));
    }
    h.kick();
    h.run_for(10_000_000);
    assert_eq!((h.done(30), h.done(31)), (3, 3));
    let stats = h.stats();
    // Every entry costs its delay, the fetch overhead and a command's fixed cost.
    let entry = |ns: u64| {
        ns + vagx_fw::sched::ENTRY_OVERHEAD_NS + vagx_fw::exec::Rates::default().command_ns
    };
    let (a, b) = (3 * entry(1_000_000), 3 * entry(2_000_000));
    assert_eq!(busy_of(&stats, STATS_QUEUE), vec![(30, a, 3), (31, b, 3)]);
    // A queue takes whichever unit is free at each entry: the units' busy time adds up to the
    // queues', and both worked.
    let units = busy_of(&stats, STATS_UNIT);
    assert_eq!(units.iter().map(|u| u.0).collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(units.iter().map(|u| u.1).sum::<u64>(), a + b);
    assert!(units.iter().all(|u| u.1 > 0));
    assert_eq!(units.iter().map(|u| u.2).sum::<u64>(), 6);
    let pipes: u64 = busy_of(&stats, STATS_PIPE).iter().map(|p| p.1).sum();
    assert_eq!(pipes, a + b);
    // The emulation counted the same commands and cost; DELAYs are never late.
    let emulation = busy_of(&stats, STATS_EMULATION);
    assert_eq!(emulation.len(), 2);
    assert_eq!(emulation[0], (EMULATION_MODELLED, a + b, 6));
    assert_eq!((emulation[1].0, emulation[1].2), (EMULATION_HOST, 0));
    assert_eq!(emulation[1].1, h.dev.emulation().host_ns);
    assert!(stats.iter().all(|m| m.time_ns == h.dev.time()));
}

#[test]
fn a_command_the_host_computes_slower_than_its_cost_is_late() {
    // Rates so high that a 64 x 64 x 64 GEMM costs 2 ns: no host computes it that fast.
    let mut h = Harness::booted_with(vagx_fw::Config {
        units: 1,
        rates: vagx_fw::exec::Rates {
            command_ns: 1,
            bytes_per_us: u64::MAX,
            flops_per_us: u64::MAX,
            entry_ns: 1000,
            slowdown: 1,
        },
        ..Default::default()
    });
    h.create_queue(0, 1);
    let gemm = cmd(&CmdGemm {
        header: CmdGemm::HEADER,
        a: OUT,
        b: OUT + 0x4000,
        c: OUT + 0x8000,
        m: 64,
        n: 64,
        k: 64,
        _pad: 0,
    });
    let stamp = h.submit(0, &cmdbuf(&[gemm, nop()]));
    assert!(h.run_until_stamp(0, stamp, 1_000_000).is_some());
    let e = h.dev.emulation();
    assert_eq!(e.commands, 2);
    assert!(e.late >= 1, "{e:?}");
    assert!(e.host_ns > e.modelled_ns, "{e:?}");
}

/// Runs two queues of GEMMs, each followed by a reduction of its result, then a GEMM that
/// faults on a read-only C, on a device made with `config`; returns C and the sums, every
/// event, the time each queue finished, and the harness.
fn gemm_workload(config: vagx_fw::Config) -> (Vec<u8>, Vec<EventMsg>, [u64; 2], Harness) {
    let mut h = Harness::booted_with(config);
    let (m, n, k) = (48u32, 40u32, 56u32);
    let floats = |seed: u32, count: u32| -> Vec<u8> {
        (0..count)
            .flat_map(|i| (((i * 37 + seed) % 101) as f32 * 0.125 - 6.0).to_le_bytes())
            .collect()
    };
    let (a, b) = (OUT, OUT + 0x4000);
    h.write_gpu(a, &floats(3, m * k));
    h.write_gpu(b, &floats(11, k * n));
    h.map(GPU_VA + 0x80_0000, DATA + 0x80_0000, 0x1000, mmu::PTE_READ);
    h.create_queue(1, 1);
    h.create_queue(2, 1);
    let gemm = |c: u64| {
        cmd(&CmdGemm {
            header: CmdGemm::HEADER,
            a,
            b,
            c,
            m,
            n,
            k,
            _pad: 0,
        })
    };
    let sum = |src: u64, dst: u64| {
        cmd(&CmdReduceSum {
            header: CmdReduceSum::HEADER,
            src,
            dst,
            count: u64::from(m * n),
        })
    };
    let mut last = [0; 2];
    for round in 0..3u64 {
        let c1 = OUT + 0x1_0000 + round * 0x4000;
        let c2 = OUT + 0x2_0000 + round * 0x4000;
        last[0] = h.queue_entry(1, &cmdbuf(&[gemm(c1), sum(c1, OUT + 0x3_0000 + round * 8)]));
        last[1] = h.queue_entry(2, &cmdbuf(&[gemm(c2), sum(c2, OUT + 0x3_0004 + round * 8)]));
    }
    h.kick();
    let t1 = h
        .run_until_stamp(1, last[0], 10_000_000)
        .expect("queue 1 finished");
    let t2 = h
        .run_until_stamp(2, last[1], 10_000_000)
        .expect("queue 2 finished");
    // Then a GEMM that writes C into a read-only page: a permission fault (which halts).
    h.create_queue(3, 1);
    h.submit(3, &cmdbuf(&[gemm(GPU_VA + 0x80_0000)]));
    h.run_for(1_000_000);
    let memory = h.read_gpu(OUT + 0x1_0000, 0x2_1000);
    let events = h.events();
    (memory, events, [t1, t2], h)
}

/// A workload's run on a device with workers (memory, events, finish times, harness) and
/// without: the same memory, events and completion times, and the workload's closing
/// permission fault on the read-only page.
fn assert_same_run(
    inline: &(Vec<u8>, Vec<EventMsg>, [u64; 2], Harness),
    workers: &(Vec<u8>, Vec<EventMsg>, [u64; 2], Harness),
) {
    assert_eq!(inline.0, workers.0, "results differ");
    assert_eq!(inline.2, workers.2, "completion times differ");
    assert_eq!(inline.1, workers.1, "events differ");
    let fault = workers.1.iter().find_map(|e| e.payload::<EventFault>());
    assert_eq!(
        fault.map(|f| (f.kind, f.address)),
        Some((FAULT_PERMISSION, GPU_VA + 0x80_0000))
    );
}

#[test]
fn worker_threads_compute_the_same_results_at_the_same_device_times() {
    let inline = gemm_workload(vagx_fw::Config::default());
    let workers = gemm_workload(vagx_fw::Config {
        workers: 2,
        offload_min_ns: 0,
        ..Default::default()
    });
    assert!(inline.0.iter().any(|&b| b != 0), "the GEMMs wrote nothing");
    assert_same_run(&inline, &workers);
    // Every GEMM and reduction was counted, the faulting one too.
    let (w, i) = (workers.3.dev.emulation(), inline.3.dev.emulation());
    assert_eq!((w.commands, i.commands), (13, 13));
    // The six good GEMMs and their reductions ran on the workers; inline, nothing did.
    assert_eq!((w.offloaded, i.offloaded), (12, 0));
    assert!(w.host_ns > 0);
}

/// Every command that moves data, on two queues that share nothing but each command's inputs
/// from the one before it: outputs in place and apart, GEMM accumulating into a transposed
/// product, reductions of the results. Then a command whose output is read-only (a
/// permission fault, which halts). Returns the memory, the events, when each queue finished,
/// and the harness.
fn every_command_workload(config: vagx_fw::Config) -> (Vec<u8>, Vec<EventMsg>, [u64; 2], Harness) {
    let mut h = Harness::booted_with(config);
    let floats = |seed: u32, count: u32| -> Vec<u8> {
        (0..count)
            .flat_map(|i| (((i * 29 + seed) % 97) as f32 * 0.0625 - 3.0).to_le_bytes())
            .collect()
    };
    // Per queue q: its inputs at `base`, its outputs after them.
    let (rows, cols) = (24u32, 40u32);
    let count = rows * cols;
    let bytes = u64::from(count) * 4;
    h.map(GPU_VA + 0x80_0000, DATA + 0x80_0000, 0x1000, mmu::PTE_READ);
    let mut last = [0; 2];
    for q in 0..2u32 {
        let base = OUT + u64::from(q) * 0x10_0000;
        let (x, y, z, g, bt) = (
            base,
            base + 0x1_0000,
            base + 0x2_0000,
            base + 0x3_0000,
            base + 0x3_1000,
        );
        let (acc, sums) = (base + 0x4_0000, base + 0x5_0000);
        h.write_gpu(x, &floats(q + 1, count));
        h.write_gpu(y, &floats(q + 7, count));
        h.write_gpu(g, &floats(q + 3, cols));
        h.write_gpu(bt, &floats(q + 5, cols));
        h.write_gpu(acc, &floats(q + 9, rows * rows));
        let ew = |op: u32, a: u64, b: u64, dst: u64, alpha: f32, beta: f32| {
            cmd(&CmdElementwise {
                header: CmdElementwise::HEADER,
                op,
                _pad: 0,
                a,
                b,
                dst,
                count: u64::from(count),
                alpha: alpha.to_bits(),
                beta: beta.to_bits(),
            })
        };
        let cmds = [
            cmd(&CmdCopy {
                header: CmdCopy::HEADER,
                src: x,
                dst: z,
                len: bytes,
            }),
            // In place: z = z + y, then z = 0.5·z + 2·x, then z = z × y.
            ew(ELEMENTWISE_ADD, z, y, z, 0.0, 0.0),
            ew(ELEMENTWISE_AXPBY, z, x, z, 0.5, 2.0),
            ew(ELEMENTWISE_MUL, y, z, z, 0.0, 0.0),
            cmd(&CmdActivation {
                header: CmdActivation::HEADER,
                op: ACTIVATION_GELU,
                _pad: 0,
                src: z,
                dst: z,
                count: u64::from(count),
            }),
            cmd(&CmdSoftmax {
                header: CmdSoftmax::HEADER,
                src: z,
                dst: y,
                rows,
                cols,
            }),
            cmd(&CmdLayerNorm {
                header: CmdLayerNorm::HEADER,
                src: x,
                dst: x,
                gamma: g,
                beta: bt,
                rows,
                cols,
                eps: 1e-5f32.to_bits(),
                _pad: 0,
            }),
            // acc (rows × rows) += y × zᵀ, z given as rows × cols.
            cmd(&CmdGemm {
                header: CmdHeader {
                    flags: GEMM_FLAG_ACCUMULATE | GEMM_FLAG_TRANSPOSE_B,
                    ..CmdGemm::HEADER
                },
                a: y,
                b: z,
                c: acc,
                m: rows,
                n: rows,
                k: cols,
                _pad: 0,
            }),
            cmd(&CmdReduceSum {
                header: CmdReduceSum::HEADER,
                src: acc,
                dst: sums,
                count: u64::from(rows * rows),
            }),
            cmd(&CmdChecksum {
                header: CmdChecksum::HEADER,
                src: x,
                dst: sums + 8,
                len: bytes,
            }),
            cmd(&CmdFill {
                header: CmdFill::HEADER,
                dst: base + 0x6_0000,
                len: 0x1_0002,
                pattern: 0xa5b6_c7d8,
                _pad: 0,
            }),
            cmd(&CmdWrite32 {
                header: CmdWrite32::HEADER,
                address: sums + 16,
                value: q + 1,
                _pad: 0,
            }),
        ];
        h.create_queue(q + 1, 1);
        // One command an entry, so the two queues interleave on the two units.
        for c in cmds {
            last[q as usize] = h.queue_entry(q + 1, &cmdbuf(&[c]));
        }
    }
    h.kick();
    let t1 = h
        .run_until_stamp(1, last[0], 50_000_000)
        .expect("queue 1 finished");
    let t2 = h
        .run_until_stamp(2, last[1], 50_000_000)
        .expect("queue 2 finished");
    h.create_queue(3, 1);
    h.submit(
        3,
        &cmdbuf(&[cmd(&CmdCopy {
            header: CmdCopy::HEADER,
            src: OUT,
            dst: GPU_VA + 0x80_0000,
            len: 64,
        })]),
    );
    h.run_for(1_000_000);
    let memory = h.read_gpu(OUT, 0x20_0000);
    let events = h.events();
    (memory, events, [t1, t2], h)
}

#[test]
fn workers_run_every_command_as_the_model_does() {
    let inline = every_command_workload(vagx_fw::Config::default());
    let workers = every_command_workload(vagx_fw::Config {
        workers: 2,
        offload_min_ns: 0,
        ..Default::default()
    });
    let sums = OUT + 0x5_0000 - OUT;
    // CAST: offsets in the 2 MiB read back.
    let sum = |m: &[u8], q: u64| {
        f32::from_le_bytes(
            m[(sums + q * 0x10_0000) as usize..][..4]
                .try_into()
                .unwrap(),
        )
    };
    assert!(
        sum(&inline.0, 0).is_finite() && sum(&inline.0, 0) != 0.0,
        "the GEMM's sum is {}",
        sum(&inline.0, 0)
    );
    assert_same_run(&inline, &workers);
    let (w, i) = (workers.3.dev.emulation(), inline.3.dev.emulation());
    assert_eq!((w.commands, i.commands), (25, 25));
    // All but the two WRITE32s and the faulting COPY ran on the workers.
    assert_eq!((w.offloaded, i.offloaded), (22, 0));
    // With the default threshold these commands (at most a few µs of device time each) are
    // too short for a worker: the model runs them itself, with the same results.
    let short = every_command_workload(vagx_fw::Config {
        workers: 2,
        ..Default::default()
    });
    assert_eq!(short.0, inline.0, "results differ");
    assert_eq!(short.3.dev.emulation().offloaded, 0);
}

#[test]
fn an_abi_1_1_driver_gets_no_unit_statistics() {
    let mut h = Harness::with_init(2, |i| {
        i.abi_version = (u32::from(regs::ABI_MAJOR) << 16) | 1;
    });
    h.create_queue(30, 1);
    h.queue_entry(30, &delay(1_000_000));
    h.kick();
    h.run_for(2_000_000);
    let stats = h.stats();
    assert!(busy_of(&stats, STATS_UNIT).is_empty());
    assert!(busy_of(&stats, STATS_EMULATION).is_empty());
    assert_eq!(busy_of(&stats, STATS_QUEUE), vec![(30, 1_001_200, 1)]);
}

#[test]
fn barrier_orders_queues_inside_the_firmware() {
    let mut h = Harness::new(2);
    h.create_queue(40, 1);
    h.create_queue(41, 1);
    let a = h.queue_entry(40, &cmdbuf(&[delay(500_000), write32(OUT, 1)]));
    // B waits for A's entry, then overwrites A's value.
    let b = h.queue_entry(
        41,
        &cmdbuf(&[
            cmd(&CmdBarrier {
                header: CmdBarrier::HEADER,
                slot: 40,
                value: a,
            }),
            write32(OUT, 2),
        ]),
    );
    h.kick();
    let t = h.run_until_stamp(41, b, 10_000_000).unwrap();
    assert!(t >= 500_000, "barrier let B through after {t} ns");
    assert!(vagx_abi::stamp_passed(h.stamp(40), a));
    assert_eq!(h.read_gpu(OUT, 4), 2u32.to_le_bytes());
}

#[test]
fn fault_halts_publishes_pending_and_recovers_after_reset_queue() {
    let mut h = Harness::new(1);
    h.create_queue(50, 1);
    h.create_queue(51, 1);
    // Queue 51 has work queued behind the faulting entry.
    let bad = h.queue_entry(50, &cmdbuf(&[write32(OUT, 7), write32(0x7000_0000, 1)]));
    let good = h.queue_entry(51, &cmdbuf(&[delay(1000), write32(OUT + 4, 9)]));
    let after = h.queue_entry(50, &write32(OUT + 8, 3));
    h.kick();
    h.run_for(1_000_000);
    assert_eq!(h.dev.state(), FwState::Halted);
    let fault = h
        .events()
        .iter()
        .find_map(|e| e.payload::<EventFault>())
        .expect("FAULT event");
    assert_eq!(
        (
            fault.queue,
            fault.entry,
            fault.command,
            fault.kind,
            fault.address
        ),
        (50, 0, 1, FAULT_UNMAPPED, 0x7000_0000)
    );
    let table = h.pending();
    assert_eq!(table.reason, EVENT_FAULT);
    let e = table.entries[50];
    assert_eq!(e.flags, PENDING_VALID | PENDING_CULPRIT);
    assert_eq!((e.queue, e.next_stamp), (50, bad));
    assert_eq!(table.entries[51].flags & PENDING_CULPRIT, 0);
    // The faulting command's effect never happened; the first one's did.
    assert_eq!(h.read_gpu(OUT, 4), 7u32.to_le_bytes());
    // Recovery: reset the culprit (discarding both its entries), resume.
    let r = h.devctrl(&DevCtrlResetQueue(DevCtrlQueue { queue: 50 }));
    assert_eq!((r.status, r.value), (DEVCTRL_OK, 2));
    assert_eq!(
        h.stamp(50),
        after,
        "stamp did not skip the discarded entries"
    );
    assert_eq!(h.devctrl(&DevCtrlResume { _pad: 0 }).status, DEVCTRL_OK);
    assert!(h.run_until_stamp(51, good, 1_000_000).is_some());
    assert_eq!(h.read_gpu(OUT + 4, 4), 9u32.to_le_bytes());
    assert_eq!(h.read_gpu(OUT + 8, 4), [0; 4], "discarded entry ran");
    // The queue works again.
    let again = h.submit(50, &write32(OUT + 12, 5));
    assert!(h.run_until_stamp(50, again, 1_000_000).is_some());
}

#[test]
fn permission_fault_on_a_read_only_page() {
    let mut h = Harness::new(1);
    h.map(GPU_VA + 0x8000, DATA + 0x8000, 0x1000, mmu::PTE_READ);
    h.create_queue(5, 0);
    h.submit(5, &write32(GPU_VA + 0x8010, 1));
    h.run_for(100_000);
    let fault = h.events().iter().find_map(|e| e.payload::<EventFault>());
    assert_eq!(
        fault.map(|f| (f.kind, f.address)),
        Some((FAULT_PERMISSION, GPU_VA + 0x8010))
    );
}

#[test]
fn hang_times_out_and_other_queues_finish_after_recovery() {
    let mut h = Harness::with_init(2, |init| init.watchdog_ns = 5_000_000);
    h.create_queue(60, 1);
    h.create_queue(61, 1);
    h.queue_entry(60, &hang());
    let good = h.queue_entry(61, &cmdbuf(&vec![delay(1_000_000); 3]));
    h.kick();
    // The innocent queue runs on the other unit meanwhile.
    assert!(h.run_until_stamp(61, good, 4_000_000).is_some());
    h.run_for(5_000_000);
    assert_eq!(h.dev.state(), FwState::Halted);
    let timeout = h.events().iter().find_map(|e| e.payload::<EventTimeout>());
    assert_eq!(timeout.map(|t| t.queue), Some(60));
    assert_eq!(h.pending().reason, EVENT_TIMEOUT);
    assert_eq!(
        h.devctrl(&DevCtrlResetQueue(DevCtrlQueue { queue: 60 }))
            .value,
        1
    );
    assert_eq!(h.devctrl(&DevCtrlResume { _pad: 0 }).status, DEVCTRL_OK);
    let again = h.submit(60, &write32(OUT, 1));
    assert!(h.run_until_stamp(60, again, 1_000_000).is_some());
}

#[test]
fn injected_hang_fault_crash_and_dropped_irqs() {
    // Fault at command 1 of queue 70's next entry.
    let mut h = Harness::new(1);
    h.create_queue(70, 0);
    h.mmio_write(regs::DEBUG_ARG0, 70);
    h.mmio_write(regs::DEBUG_ARG1, 1);
    h.mmio_write(regs::DEBUG_INJECT, regs::INJECT_FAULT_AT);
    h.submit(70, &cmdbuf(&[write32(OUT, 1), write32(OUT + 4, 2)]));
    h.run_for(100_000);
    let f = h
        .events()
        .iter()
        .find_map(|e| e.payload::<EventFault>())
        .expect("fault");
    assert_eq!((f.queue, f.command, f.kind), (70, 1, FAULT_INJECTED));

    // Hang of queue 71's next entry: it never completes until the watchdog.
    let mut h = Harness::new(1);
    h.create_queue(71, 0);
    h.mmio_write(regs::DEBUG_ARG0, 71);
    h.mmio_write(regs::DEBUG_INJECT, regs::INJECT_HANG_QUEUE);
    let s = h.submit(71, &write32(OUT, 1));
    assert_eq!(h.run_until_stamp(71, s, 50_000_000), None);
    h.run_for(100_000_000);
    assert!(h.events().iter().any(|e| e.kind == EVENT_TIMEOUT));

    // Crash after two entries.
    let mut h = Harness::new(1);
    h.create_queue(72, 0);
    h.mmio_write(regs::DEBUG_ARG0, 2);
    h.mmio_write(regs::DEBUG_INJECT, regs::INJECT_CRASH_AFTER);
    for i in 0..3 {
        h.queue_entry(72, &write32(OUT + 4 * i, 1));
    }
    h.kick();
    h.run_for(1_000_000);
    assert_eq!(h.mmio_read(regs::FW_STATE), regs::FW_STATE_CRASHED);
    assert_eq!(h.done(72), 2);
    assert!(h
        .mailbox()
        .iter()
        .any(|(_, m)| mbox::message_type(*m) == mbox::MSG_CRASHED));
    h.mmio_write(regs::RESET, regs::RESET_MAGIC);
    assert_eq!(h.mmio_read(regs::FW_STATE), regs::FW_STATE_OFF);

    // Two dropped interrupts: the status still latches.
    let mut h = Harness::new(1);
    h.create_queue(73, 0);
    // A driver drains the mailbox on every interrupt; the device notifies again only then.
    h.mailbox();
    h.events();
    while h.dev.take_irq() {}
    h.mmio_write(regs::DEBUG_ARG0, 2);
    h.mmio_write(regs::DEBUG_INJECT, regs::INJECT_DROP_IRQS);
    let mut delivered = 0;
    for i in 0..4 {
        h.submit(73, &write32(OUT + 4 * i, 1));
        h.run_for(100_000);
        delivered += u32::from(h.dev.take_irq());
        // Handle it as a driver would, so the next completion notifies again.
        h.mailbox();
        h.events();
    }
    assert_eq!(delivered, 2);
    assert_ne!(h.mmio_read(regs::IRQ_STATUS) & regs::IRQ_MBOX, 0);
}

#[test]
fn hostile_host_input_is_reported_and_refused() {
    let mut h = Harness::new(1);
    h.create_queue(80, 0);
    // Unknown operation, and invalid arguments.
    let mut msg = DevCtrlMsg::new(99, &DevCtrlQuery { what: 0 });
    msg.op = 1234;
    h.push_devctrl(&msg);
    let r = h
        .events()
        .iter()
        .find_map(|e| e.payload::<EventDevCtrlDone>())
        .unwrap();
    assert_eq!((r.seq, r.status), (99, DEVCTRL_UNKNOWN_OP));
    assert_eq!(
        h.create_queue_status(80, PipeType::Copy, 0, 0),
        DEVCTRL_EXISTS
    );
    assert_eq!(
        h.create_queue_status(81, PipeType::Copy, 7, 0),
        DEVCTRL_INVALID
    );
    assert_eq!(
        h.create_queue_status(200, PipeType::Copy, 0, 0),
        DEVCTRL_INVALID
    );
    // A pipe message for an unknown queue.
    let pipe = h.init.pipes[0];
    vagx_fw::mem::write_pod(
        &mut h.ram,
        pipe.entries,
        &PipeMsg {
            queue: 77,
            wptr: 1,
            deadline_stamp: 0,
            due_us: 0,
        },
    )
    .unwrap();
    vagx_fw::mem::write_u32(&mut h.ram, pipe.state + 64, 1).unwrap();
    h.kick();
    let err = h.events().iter().find_map(|e| e.payload::<EventError>());
    assert_eq!(
        err.map(|e| (e.kind, e.object)),
        Some((ERROR_BAD_PIPE_MESSAGE, 77))
    );
    // An out-of-range devctrl wptr.
    vagx_fw::mem::write_u32(&mut h.ram, DEVCTRL.0 + 64, 5000).unwrap();
    h.send(
        mbox::EP_DOORBELL,
        mbox::message(mbox::MSG_DOORBELL, mbox::DOORBELL_DEVCTRL),
    );
    let err = h.events().iter().find_map(|e| e.payload::<EventError>());
    assert_eq!(
        err.map(|e| (e.kind, e.value)),
        Some((ERROR_BAD_RING_POINTER, 5000))
    );
    // Unknown mailbox traffic.
    h.send(0x55, 1);
    assert!(h
        .events()
        .iter()
        .any(|e| e.payload::<EventError>().map(|e| e.kind) == Some(ERROR_BAD_MAILBOX_MESSAGE)));
    // Bad register writes are refused.
    assert!(h
        .dev
        .mmio_write(&mut h.ram, 0, regs::RESET as u64, 4, 1)
        .is_err());
    assert!(h
        .dev
        .mmio_write(&mut h.ram, 0, regs::ID as u64, 4, 1)
        .is_err());
    assert!(h.dev.mmio_read(regs::ID as u64, 2).is_err());
    assert_eq!(h.dev.state(), FwState::Running);
    assert_eq!(h.ram.refused, 0, "the firmware strayed outside RAM");
}

#[test]
fn stamps_wrap_around_u32() {
    let mut h = Harness::new(1);
    assert_eq!(
        h.create_queue_status(90, PipeType::Compute, 0, u32::MAX - STAMP_STEP),
        DEVCTRL_OK
    );
    let mut last = 0;
    for i in 0..3 {
        last = h.submit(90, &write32(OUT + 4 * i, 1));
        assert!(h.run_until_stamp(90, last, 1_000_000).is_some());
    }
    assert_eq!(last, (u32::MAX - STAMP_STEP).wrapping_add(3 * STAMP_STEP));
    assert!(last < STAMP_STEP * 3, "did not wrap");
    assert!(vagx_abi::stamp_passed(h.stamp(90), u32::MAX - 5));
}

#[test]
fn full_event_ring_holds_events_until_the_host_reads() {
    let mut h = Harness::new(1);
    h.create_queue(95, 0);
    // 80 entries produce more events than the 64-entry ring holds (one slot empty).
    let mut last = 0;
    for round in 0..5 {
        for i in 0..15 {
            last = h.queue_entry(95, &write32(OUT + 4 * (round * 15 + i), 1));
        }
        h.kick();
        h.run_for(1_000_000);
    }
    let first = h.events().len();
    assert!(first <= 63);
    h.run_for(1);
    let total = h.seen.len() + h.events().len();
    let seqs: Vec<u32> = h.seen.iter().map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "events lost");
    assert!(total >= first);
    assert_eq!(h.stamp(95), last);
}

#[test]
fn destroy_and_unbind_follow_their_rules() {
    let mut h = Harness::new(1);
    h.create_queue(9, 0);
    h.queue_entry(9, &delay(1_000_000));
    h.kick();
    assert_eq!(
        h.devctrl(&DevCtrlDestroyQueue(DevCtrlQueue { queue: 9 }))
            .status,
        DEVCTRL_BUSY
    );
    assert_eq!(h.devctrl(&DevCtrlUnbindVm { vm: 0 }).status, DEVCTRL_BUSY);
    h.run_for(2_000_000);
    assert_eq!(
        h.devctrl(&DevCtrlDestroyQueue(DevCtrlQueue { queue: 9 }))
            .status,
        DEVCTRL_OK
    );
    assert_eq!(h.devctrl(&DevCtrlUnbindVm { vm: 0 }).status, DEVCTRL_OK);
    assert_eq!(
        h.devctrl(&DevCtrlUnbindVm { vm: 0 }).status,
        DEVCTRL_NOT_FOUND
    );
    assert_eq!(
        h.devctrl(&DevCtrlResume { _pad: 0 }).status,
        DEVCTRL_BAD_STATE
    );
}

#[test]
fn trace_records_mailbox_commands_completions_and_faults() {
    use vagx_fw::trace::Trace;
    let mut h = Harness::new(1);
    h.create_queue(12, 0);
    h.dev.take_trace();
    let stamp = h.submit(12, &cmdbuf(&[write32(OUT, 1), write32(0x7000_0000, 2)]));
    h.run_for(1_000_000);
    let traces = h.dev.take_trace();
    assert!(matches!(
        traces.first(),
        Some(Trace::Mailbox {
            endpoint: mbox::EP_DOORBELL,
            ..
        })
    ));
    let commands: Vec<(u32, u16)> = traces
        .iter()
        .filter_map(|t| match *t {
            Trace::Command { index, opcode, .. } => Some((index, opcode)),
            _ => None,
        })
        .collect();
    assert_eq!(commands, [(0, OP_WRITE32), (1, OP_WRITE32)]);
    assert!(traces.contains(&Trace::Fault {
        queue: 12,
        kind: FAULT_UNMAPPED,
        address: 0x7000_0000
    }));
    assert!(traces.contains(&Trace::Halt {
        reason: EVENT_FAULT
    }));
    assert!(!traces.iter().any(|t| matches!(t, Trace::EntryDone { .. })));
    assert_ne!(h.stamp(12), stamp);
    assert_eq!(h.dev.traces_dropped(), 0);
}

#[test]
fn injected_irq_delay_holds_the_interrupt_back() {
    let mut h = Harness::new(1);
    h.create_queue(13, 0);
    h.mailbox();
    h.events();
    while h.dev.take_irq() {}
    h.mmio_write(regs::DEBUG_ARG0, 300_000);
    h.mmio_write(regs::DEBUG_INJECT, regs::INJECT_DELAY_IRQ);
    let stamp = h.submit(13, &write32(OUT, 1));
    // The entry completes after 1201 ns (1000 fetch, 200 command, 1 for 4 bytes); its interrupt
    // is due 300 µs after that.
    h.run_for(2_000);
    assert_eq!(h.stamp(13), stamp);
    assert!(!h.dev.take_irq(), "interrupt not held back");
    let due = h
        .dev
        .next_deadline()
        .expect("the held interrupt is a deadline");
    assert_eq!(due, h.now - 2_000 + 1_201 + 300_000);
    h.run_for(due - h.now - 1);
    assert!(!h.dev.take_irq(), "interrupt early");
    h.run_for(1);
    assert!(h.dev.take_irq(), "interrupt never came");
    // Only one was delayed.
    h.mailbox();
    h.events();
    h.submit(13, &write32(OUT, 2));
    h.run_for(2_000);
    assert!(h.dev.take_irq());
}

#[test]
fn a_crashed_firmware_ignores_doorbells_until_reset() {
    let mut h = Harness::new(1);
    h.create_queue(14, 0);
    h.mmio_write(regs::DEBUG_ARG0, 1);
    h.mmio_write(regs::DEBUG_INJECT, regs::INJECT_CRASH_AFTER);
    let first = h.submit(14, &write32(OUT, 1));
    h.run_for(100_000);
    assert_eq!(h.dev.state(), FwState::Crashed);
    assert_eq!(h.stamp(14), first);
    h.events();
    // Neither device control nor submissions do anything now.
    let mut msg = DevCtrlMsg::new(77, &DevCtrlResetQueue(DevCtrlQueue { queue: 14 }));
    msg.seq = 77;
    h.push_devctrl(&msg);
    h.submit(14, &write32(OUT + 4, 1));
    h.run_for(1_000_000);
    assert!(h
        .events()
        .iter()
        .all(|e| e.payload::<EventDevCtrlDone>().is_none()));
    assert_eq!(h.stamp(14), first);
    assert_eq!(h.read_gpu(OUT + 4, 4), [0; 4]);
}

#[test]
fn a_saturated_delay_never_overflows_the_clock() {
    let mut h = Harness::new(1);
    h.create_queue(15, 0);
    let stamp = h.submit(15, &delay(u64::MAX));
    h.run_for(200_000_000);
    assert_ne!(h.stamp(15), stamp);
    // The watchdog catches it.
    assert!(h.events().iter().any(|e| e.kind == EVENT_TIMEOUT));
}

#[test]
fn a_broken_log_ring_is_reported_once() {
    let mut h = Harness::new(1);
    h.events();
    // The host corrupts its read pointer of the log ring.
    vagx_fw::mem::write_u32(&mut h.ram, FWLOG.0, 999).unwrap();
    for q in 0..4 {
        // Each queue creation logs a line.
        h.create_queue(20 + q, 0);
    }
    let errors = h
        .seen
        .iter()
        .filter_map(|e| e.payload::<EventError>())
        .filter(|e| e.kind == ERROR_BAD_RING_POINTER)
        .count();
    assert_eq!(errors, 1);
}

#[test]
fn boot_faults_fail_stay_silent_or_crash() {
    use vagx_fw::BootFault;
    // Fail: INIT_DONE carries the error, the state is FAILED.
    let mut h = Harness::unbooted(1);
    h.dev = vagx_fw::Device::new(vagx_fw::Config {
        units: 1,
        boot_fault: BootFault::Fail,
        ..Default::default()
    });
    assert_eq!(h.boot(), Err(u64::from(FwError::Injected as u32)));
    assert_eq!(h.mmio_read(regs::FW_STATE), regs::FW_STATE_FAILED);
    assert_eq!(h.mmio_read(regs::FW_ERROR), FwError::Injected as u32);

    // Silent: no answer at all, the firmware stays off.
    let mut h = Harness::unbooted(1);
    h.dev = vagx_fw::Device::new(vagx_fw::Config {
        units: 1,
        boot_fault: BootFault::Silent,
        ..Default::default()
    });
    vagx_fw::mem::write_pod(&mut h.ram, common::INIT, &h.init).unwrap();
    h.send(
        mbox::EP_FIRMWARE,
        mbox::message(mbox::MSG_INIT, common::INIT),
    );
    assert!(h.mailbox().is_empty());
    assert_eq!(h.mmio_read(regs::FW_STATE), regs::FW_STATE_OFF);

    // Crash: the boot succeeds, then the firmware crashes at once.
    let mut h = Harness::unbooted(1);
    h.dev = vagx_fw::Device::new(vagx_fw::Config {
        units: 1,
        boot_fault: BootFault::Crash,
        ..Default::default()
    });
    let _ = h.boot();
    assert_eq!(h.mmio_read(regs::FW_STATE), regs::FW_STATE_CRASHED);
    assert_eq!(h.mmio_read(regs::FW_ERROR), FwError::Injected as u32);
}

#[test]
fn abi_version_can_be_overridden() {
    let mut h = Harness::unbooted(1);
    h.dev = vagx_fw::Device::new(vagx_fw::Config {
        abi_version: Some(0x0002_0000),
        ..Default::default()
    });
    assert_eq!(h.mmio_read(regs::ABI_VERSION), 0x0002_0000);
}

#[test]
fn a_slowed_device_lengthens_its_default_watchdog_with_its_rates() {
    // 150 ms of DELAY in one entry: over the default 100 ms watchdog, under a 4x slower
    // device's 400 ms.
    let run = |rates| {
        let mut h = Harness::booted_with(vagx_fw::Config {
            units: 1,
            rates,
            ..Default::default()
        });
        h.create_queue(90, 1);
        let s = h.submit(90, &delay(150_000_000));
        let done = h.run_until_stamp(90, s, 500_000_000).is_some();
        (done, h.events().iter().any(|e| e.kind == EVENT_TIMEOUT))
    };
    let default = vagx_fw::exec::Rates::default();
    assert_eq!(run(default), (false, true));
    assert_eq!(run(default.slowed(4)), (true, false));
}

/// ABI 1.3: one write to `DOORBELL` rings a doorbell as the three-write mailbox message does.
#[test]
fn the_doorbell_register_rings_as_the_mailbox_message_does() {
    let mut h = Harness::new(1);
    h.create_queue(3, 2);
    let stamp = h.queue_entry(3, &cmdbuf(&[write32(OUT, 0x1234_5678)]));
    // Written, not rung: nothing runs.
    h.run_for(1_000_000);
    assert_eq!(h.stamp(3), 0);
    h.mmio_write(regs::DOORBELL, mbox::DOORBELL_KICK as u32);
    assert!(h.run_until_stamp(3, stamp, 1_000_000).is_some());
    assert_eq!(h.read_gpu(OUT, 4), 0x1234_5678_u32.to_le_bytes());
    assert_eq!(h.mmio_read(regs::DOORBELL), 0, "write-only, reads as zero");
}

/// ABI 1.3: a host that unmasks `IRQ_RINGS` learns of ring writes from that status bit, with
/// no `MSG_RX_DOORBELL` in the mailbox; one that does not still gets the message.
#[test]
fn an_unmasked_ring_interrupt_replaces_the_rx_doorbell_message() {
    let rx_doorbells = |h: &mut Harness| {
        h.mailbox()
            .iter()
            .filter(|(_, m)| mbox::message_type(*m) == mbox::MSG_RX_DOORBELL)
            .count()
    };
    let mut h = Harness::new(1);
    h.create_queue(3, 2);
    // The 1.0 causes only: the message, and no IRQ_RINGS.
    h.mmio_write(regs::IRQ_STATUS, u32::MAX);
    h.mailbox();
    let stamp = h.submit(3, &cmdbuf(&[nop()]));
    assert!(h.run_until_stamp(3, stamp, 1_000_000).is_some());
    assert_eq!(h.mmio_read(regs::IRQ_STATUS) & regs::IRQ_RINGS, 0);
    assert!(rx_doorbells(&mut h) > 0);
    // IRQ_RINGS unmasked: the bit, an interrupt, no message.
    h.mmio_write(regs::IRQ_MASK, regs::IRQ_ALL | regs::IRQ_RINGS);
    assert_eq!(h.mmio_read(regs::IRQ_MASK), regs::IRQ_ALL | regs::IRQ_RINGS);
    h.mmio_write(regs::IRQ_STATUS, u32::MAX);
    h.dev.take_irq();
    let stamp = h.submit(3, &cmdbuf(&[nop()]));
    assert!(h.run_until_stamp(3, stamp, 1_000_000).is_some());
    assert_ne!(h.mmio_read(regs::IRQ_STATUS) & regs::IRQ_RINGS, 0);
    assert!(h.dev.take_irq(), "no interrupt for the ring writes");
    assert_eq!(rx_doorbells(&mut h), 0);
    // Latched until cleared; once cleared, the next ring write raises it again.
    h.mmio_write(regs::IRQ_STATUS, regs::IRQ_RINGS);
    let stamp = h.submit(3, &cmdbuf(&[nop()]));
    assert!(h.run_until_stamp(3, stamp, 1_000_000).is_some());
    assert!(h.dev.take_irq());
}

/// A device of ABI 1.2 has no `DOORBELL` register and no `IRQ_RINGS` cause.
#[test]
fn a_1_2_device_has_no_doorbell_register_nor_ring_interrupt() {
    let mut h = Harness::unbooted(1);
    h.dev = vagx_fw::Device::new(vagx_fw::Config {
        units: 1,
        abi_version: Some(0x0001_0002),
        ..vagx_fw::Config::default()
    });
    h.init.abi_version = 0x0001_0002;
    assert_eq!(h.boot(), Ok(()));
    let now = h.now;
    assert!(h
        .dev
        .mmio_write(&mut h.ram, now, regs::DOORBELL as u64, 4, 1)
        .is_err());
    assert!(h.dev.mmio_read(regs::DOORBELL as u64, 4).is_err());
    h.mmio_write(regs::IRQ_MASK, regs::IRQ_ALL | regs::IRQ_RINGS);
    assert_eq!(h.mmio_read(regs::IRQ_MASK), regs::IRQ_ALL);
}
