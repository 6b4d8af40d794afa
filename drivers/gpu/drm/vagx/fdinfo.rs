// SPDX-License-Identifier: GPL-2.0 OR MIT

//! A client's usage keys in `/proc/<pid>/fdinfo/<fd>` (`Documentation/gpu/drm-usage-stats.rst`),
//! for `gputop`, `nvtop` and the like.
//!
//! Per engine (a UAPI pipe: `compute`, `copy`), all in the device's own time, from the
//! firmware's per-queue counters ([`crate::busy`]), asked fresh at every read:
//!
//! - `drm-engine-<engine>`: ns the engine's units spent on the client's commands;
//! - `drm-engine-capacity-<engine>`: the device's execution units (every unit runs both
//!   engines' queues);
//! - `drm-cycles-<engine>` and `drm-total-cycles-<engine>`: the same busy time and the device
//!   clock, in cycles of the device's 1 GHz clock (one per device nanosecond). The spec
//!   allows `drm-total-cycles` or `drm-maxfreq`, not both: the total gives utilisation in the
//!   device's own clock domain, unaffected by when the CPU happened to read.
//!
//! A queue's time stays in its client's total when the queue is destroyed ([`EngineTime`]),
//! so that the keys never go back. The memory keys are the DRM core's (`drm-total-memory`,
//! `drm-shared-memory`, `drm-active-memory`).

use core::sync::atomic::{
    AtomicU64,
    Ordering::Relaxed, //
};

use kernel::{drm, prelude::*, sync::Arc};

use crate::{gpu::Gpu, queue::Queue, uapi};

/// The engines, by UAPI pipe.
const ENGINES: [(u32, &str); 2] = [(uapi::PIPE_COMPUTE, "compute"), (uapi::PIPE_COPY, "copy")];

/// The index of `pipe` in [`ENGINES`].
fn engine(pipe: u32) -> usize {
    usize::from(pipe == uapi::PIPE_COPY)
}

/// One client's engine times that outlive its queues.
pub(crate) struct EngineTime {
    /// Device time of the client's destroyed queues, per engine.
    retired_ns: [AtomicU64; 2],
    /// The largest busy time printed, per engine: a read that races with a destroy (the
    /// queue gone from the table, its time not yet retired) prints no less.
    shown_ns: [AtomicU64; 2],
}

impl EngineTime {
    pub(crate) fn new() -> Self {
        Self {
            retired_ns: [AtomicU64::new(0), AtomicU64::new(0)],
            shown_ns: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }

    /// A destroyed queue of UAPI pipe `pipe` ran `ns` of device time.
    pub(crate) fn retire(&self, pipe: u32, ns: u64) {
        self.retired_ns[engine(pipe)].fetch_add(ns, Relaxed);
    }
}

/// Prints the engine keys of a client with `queues` and `time` on `gpu`. Sleeps (a `FLUSH`
/// round trip; if the firmware does not answer, the latest samples are used).
pub(crate) fn show_engines(
    gpu: &Gpu,
    queues: &mut dyn Iterator<Item = &Arc<Queue>>,
    time: &EngineTime,
    info: &mut drm::file::FdInfo<'_>,
) {
    let mut busy = [0u64; 2];
    for q in queues {
        let e = engine(q.uapi_pipe());
        busy[e] = busy[e].saturating_add(gpu.queue_busy(q.hw().id()).busy_ns);
    }
    let clock = gpu.busy_time_ns();
    for (i, (_, name)) in ENGINES.iter().enumerate() {
        let ns = busy[i].saturating_add(time.retired_ns[i].load(Relaxed));
        let ns = time.shown_ns[i].fetch_max(ns, Relaxed).max(ns);
        info.print(fmt!("drm-engine-{name}:\t{ns} ns\n"));
        info.print(fmt!("drm-engine-capacity-{name}:\t{}\n", gpu.units));
        info.print(fmt!("drm-cycles-{name}:\t{ns}\n"));
        info.print(fmt!("drm-total-cycles-{name}:\t{clock}\n"));
    }
}
