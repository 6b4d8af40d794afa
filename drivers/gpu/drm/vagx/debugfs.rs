// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Debugfs: `/sys/kernel/debug/vagx-<pci address>/` with the rings, the queues, the kernel
//! schedulers, the firmware log, the firmware's busy time (`busy`), the device's own round trip
//! (`floor`), and `inject`, which arms the device's fault injection.
//!
//! `inject` takes one command: `hang <queue>`, `fault <queue> <command>`, `crash <entries>`,
//! `drop-irqs <n>`, `silence <boots>` (the firmware stops answering, without a crash
//! message, and the next `<boots>` boots hang too), `halt` or `clear`. Queue ids are the
//! firmware's (`queues` lists them).

use core::fmt;

use kernel::{
    debugfs::{Dir, File, Reader},
    prelude::*,
    str::CString,
    sync::Arc,
    uaccess::UserSliceReader,
};

use crate::{
    abi::{
        channels::{
            DevCtrlQuery,
            QUERY_UNITS, //
        },
        regs as r,
    },
    drv::VagxData,
    gpu::Gpu,
};

/// `rings`: both pointers of every ring.
struct Rings(Arc<Gpu>);

impl fmt::Debug for Rings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fw.dump_rings(f)
    }
}

/// `queues`: every firmware work queue and the driver's counters.
struct Queues(Arc<Gpu>);

impl fmt::Debug for Queues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.dump_stats(f)?;
        self.0.dump_queues(f)
    }
}

/// `busy`: the firmware's busy time per pipe and queue, refreshed by a `FLUSH` at each read.
struct Busy(Arc<Gpu>);

impl fmt::Debug for Busy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.flush_busy().is_err() {
            // The firmware is down or gone: the last samples, said to be old.
            writeln!(f, "stale")?;
        }
        self.0.dump_busy(f)
    }
}

/// Round trips a read of `floor` times.
const FLOOR_ROUND_TRIPS: usize = 200;

/// `floor`: each read runs [`FLOOR_ROUND_TRIPS`] device-control no-ops (`QUERY` of the units)
/// and prints the percentiles of their round trip, doorbell to the interrupt handler's receipt
/// of the reply, in ns: the least a job's submit-to-signal can cost on this device.
struct Floor(Arc<Gpu>);

impl fmt::Debug for Floor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ns = KVec::with_capacity(FLOOR_ROUND_TRIPS, GFP_KERNEL).map_err(|_| fmt::Error)?;
        let query = DevCtrlQuery { what: QUERY_UNITS };
        for _ in 0..FLOOR_ROUND_TRIPS {
            match self.0.fw.call_timed(&query) {
                // Room was reserved above.
                Ok((_, t)) => ns
                    .push(t.as_nanos().max(0), GFP_KERNEL)
                    .map_err(|_| fmt::Error)?,
                Err(e) => return writeln!(f, "error {}", e.to_errno()),
            }
        }
        ns.sort_unstable();
        let at = |q: usize| ns.get((ns.len() - 1) * q / 100).copied().unwrap_or(0);
        writeln!(
            f,
            "devctrl_round_trip_ns n {} p50 {} p90 {} p99 {} max {}",
            ns.len(),
            at(50),
            at(90),
            at(99),
            at(100)
        )
    }
}

/// `fwlog`: the last messages of the firmware log.
struct FwLog(Arc<Gpu>);

impl fmt::Debug for FwLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.dump_log(f)
    }
}

/// `inject`: arms a fault injection.
struct Inject(Arc<Gpu>);

impl fmt::Debug for Inject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "hang <queue> | fault <queue> <command> | crash <entries> | drop-irqs <n> | silence <boots> | halt | clear\n\
             hw-waits <0|1>: same-device waits by the firmware (1, the default) or the CPU\n\
             peer-waits <0|1>: waits on other GPUs' jobs by the firmware (1, the default) or the CPU"
        )
    }
}

impl Reader for Inject {
    fn read_from_slice(&self, reader: &mut UserSliceReader) -> Result {
        let mut buf = [0u8; 64];
        let n = reader.len().min(buf.len());
        reader.read_slice(&mut buf[..n])?;
        let text = core::str::from_utf8(&buf[..n]).map_err(|_| EINVAL)?;
        let mut words = text.split_whitespace();
        let cmd = words.next().ok_or(EINVAL)?;
        let mut arg = || -> Result<u32> {
            words
                .next()
                .ok_or(EINVAL)?
                .parse::<u32>()
                .map_err(|_| EINVAL)
        };
        let (what, a0, a1) = match cmd {
            "hang" => (r::INJECT_HANG_QUEUE, arg()?, 0),
            "fault" => {
                let q = arg()?;
                (r::INJECT_FAULT_AT, q, arg()?)
            }
            "crash" => (r::INJECT_CRASH_AFTER, arg()?, 0),
            "drop-irqs" => (r::INJECT_DROP_IRQS, arg()?, 0),
            "silence" => (r::INJECT_SILENCE, arg()?, 0),
            "clear" => (r::INJECT_CLEAR, 0, 0),
            "halt" => return self.0.halt(),
            "hw-waits" | "peer-waits" => {
                let on = match arg()? {
                    0 => false,
                    1 => true,
                    _ => return Err(EINVAL),
                };
                let switch = match cmd {
                    "hw-waits" => &self.0.hw_waits_on,
                    _ => &self.0.peer_waits_on,
                };
                switch.store(on, core::sync::atomic::Ordering::Relaxed);
                return Ok(());
            }
            _ => return Err(EINVAL),
        };
        self.0.inject(what, a0, a1)
    }
}

/// The `sched` file: the kernel-mode schedulers' state.
struct Scheds(Arc<VagxDataRef>);

/// What `sched` shows, kept by the DRM device's data.
pub(crate) struct VagxDataRef {
    views: KVec<kernel::drm::sched::DebugfsView<crate::queue::FwBackend>>,
}

impl fmt::Debug for Scheds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.views.is_empty() {
            writeln!(f, "firmware mode: one scheduler per queue")?;
        }
        for (prio, v) in self.0.views.iter().enumerate() {
            writeln!(f, "priority {prio}:")?;
            write!(f, "{v:?}")?;
        }
        Ok(())
    }
}

/// The device's debugfs directory; removed when dropped.
pub(crate) struct Debugfs {
    _rings: Pin<KBox<File<Rings>>>,
    _queues: Pin<KBox<File<Queues>>>,
    _fwlog: Pin<KBox<File<FwLog>>>,
    _busy: Pin<KBox<File<Busy>>>,
    _floor: Pin<KBox<File<Floor>>>,
    _sched: Pin<KBox<File<Scheds>>>,
    _inject: Pin<KBox<File<Inject>>>,
    _dir: Dir,
}

impl Debugfs {
    /// Creates the directory for the device named `name`.
    pub(crate) fn new(name: &CStr, gpu: &Arc<Gpu>, data: &VagxData) -> Result<Self> {
        let dir_name = CString::try_from_fmt(fmt!("vagx-{}", name))?;
        let dir = Dir::new(&dir_name);
        let mut views = KVec::new();
        for s in data.kernel_sched.0.iter() {
            views.push(s.debugfs_view(), GFP_KERNEL)?;
        }
        let scheds = Arc::new(VagxDataRef { views }, GFP_KERNEL)?;
        Ok(Self {
            _rings: KBox::pin_init(dir.read_only_file(c"rings", Rings(gpu.clone())), GFP_KERNEL)?,
            _queues: KBox::pin_init(
                dir.read_only_file(c"queues", Queues(gpu.clone())),
                GFP_KERNEL,
            )?,
            _fwlog: KBox::pin_init(dir.read_only_file(c"fwlog", FwLog(gpu.clone())), GFP_KERNEL)?,
            _busy: KBox::pin_init(dir.read_only_file(c"busy", Busy(gpu.clone())), GFP_KERNEL)?,
            _floor: KBox::pin_init(dir.read_only_file(c"floor", Floor(gpu.clone())), GFP_KERNEL)?,
            _sched: KBox::pin_init(dir.read_only_file(c"sched", Scheds(scheds)), GFP_KERNEL)?,
            _inject: KBox::pin_init(
                dir.read_write_file(c"inject", Inject(gpu.clone())),
                GFP_KERNEL,
            )?,
            _dir: dir,
        })
    }
}
