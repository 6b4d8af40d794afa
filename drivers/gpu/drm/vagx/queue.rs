// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Queues: a client's ordered job stream, a scheduler entity backed by a firmware work queue.
//!
//! Two scheduling modes (module parameter `sched_mode`):
//!
//! - kernel: one scheduler orders the jobs of every queue onto the hardware, with
//!   `KERNEL_MODE_CREDITS` jobs in flight per priority;
//! - firmware: every queue has its own scheduler (1:1) that hands jobs to the firmware as soon
//!   as their dependencies signal; the firmware arbitrates between queues by priority.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use kernel::{
    dma_fence::{
        ecanceled,
        Fence,
        PreparedFence, //
    },
    drm::sched::{
        Backend,
        Entity,
        Priority,
        Scheduler,
        SchedulerConfig,
        TimeoutStatus,
        Weight, //
    },
    new_spinlock, new_spinlock_irq,
    prelude::*,
    sync::{
        aref::ARef,
        Arc,
        SpinLock,
        SpinLockIrq, //
    },
    time::Delta,
};

use crate::{
    abi::{
        self,
        channels::{
            DevCtrlDestroyQueue,
            DevCtrlQuery,
            DevCtrlQueue,
            DevCtrlResetQueue,
            DevCtrlSetQueuePriority,
            DevCtrlSetQueueWeight,
            QUERY_TIME_NS, //
        },
        queue::{
            Peer,
            QueueEntry, //
        },
        PipeType,
    },
    fdinfo::EngineTime,
    fw::Firmware,
    gpu::{
        FaultInfo,
        Gpu,
        QueueSlot, //
    },
    hwdeadline::{
        HwDeadline,
        HwFenceData, //
    },
    hwqueue::{
        HwQueue,
        QueueId,
        QUEUE_RING_COUNT, //
    },
    hwwait::{
        HwWait,
        RunRecord,
        RunState,
        MAX_HW_WAITS, //
    },
    load::PendingJob,
    uapi,
    vm::Vm,
};

/// Jobs in flight per priority in kernel mode: few enough that the kernel, not the firmware,
/// decides the order.
pub(crate) const KERNEL_MODE_CREDITS: u32 = 8;

/// Jobs with a deadline that may be in flight per priority in kernel mode beyond
/// [`KERNEL_MODE_CREDITS`]: a job with a deadline then goes to the device at its pick, where
/// its deadline orders it first (ABI 1.7), instead of after the next completion, which with
/// the device sharing its units between the jobs it has may be a whole job's length away.
const KERNEL_MODE_DEADLINE_CREDITS: u32 = 2;

/// Ring entries in flight per queue in firmware mode (a job takes one per entry, wait entries
/// included): enough to keep the firmware's queue fed, few enough that a queue's backlog
/// waits in the kernel, where it can still be cancelled without the firmware.
const FIRMWARE_MODE_ENTRIES: u32 = 63;

/// The priorities a queue may have ([`fw_priority`]).
const QUEUE_PRIORITIES: u32 = 3;

// The ring holds whatever the schedulers hand a queue: in kernel mode a queue's jobs may be
// on the hardware at every priority it has had (each with `KERNEL_MODE_CREDITS`), each job
// with its wait entries.
const _: () = {
    // CAST: a small constant.
    let kernel_mode = QUEUE_PRIORITIES
        * (KERNEL_MODE_CREDITS + KERNEL_MODE_DEADLINE_CREDITS)
        * (1 + MAX_HW_WAITS as u32);
    assert!(kernel_mode < QUEUE_RING_COUNT && FIRMWARE_MODE_ENTRIES < QUEUE_RING_COUNT);
};

/// A job: one command buffer entry for a firmware work queue, after wait entries on jobs of
/// other work queues ([`crate::hwwait`]).
pub(crate) struct VagxJob {
    hw: Arc<HwQueue>,
    entry: QueueEntry,
    /// The jobs of other work queues the firmware orders this one after.
    waits: KVec<HwWait>,
    /// Where this job's own consumers learn its stamp and its end.
    record: Arc<RunRecord>,
    /// The hardware fence's memory, taken when the job runs.
    fence: Pin<KBox<SpinLockIrq<Option<PreparedFence<HwFenceData>>>>>,
    /// The hardware fence's data: where a deadline set on it goes.
    deadline: Arc<HwDeadline>,
    /// Keeps the VM (its page tables and buffers) alive until the job is freed.
    _vm: Arc<Vm>,
    /// Counts the job in the device's load until it is freed.
    _pending: PendingJob,
}

impl VagxJob {
    /// Where this job's consumers on other work queues learn its stamp and its end.
    pub(crate) fn record(&self) -> &Arc<RunRecord> {
        &self.record
    }
}

/// How long the job at the head of a scheduler's hardware list may run before the scheduler
/// asks whether the firmware still answers. Far above any entry's run time (the firmware's
/// watchdog stops an entry after 100 ms of device time), so that only a firmware that has
/// gone silent is caught; a firmware that answers is left to its own watchdog.
const BACKSTOP: Delta = Delta::from_secs(2);

/// The scheduler backend: hands jobs to the firmware.
pub(crate) struct FwBackend {
    pub(crate) fw: Arc<Firmware>,
    /// For the silent-firmware recovery.
    pub(crate) gpu: Arc<Gpu>,
}

impl FwBackend {
    fn new(gpu: &Arc<Gpu>) -> Self {
        Self {
            fw: gpu.fw.clone(),
            gpu: gpu.clone(),
        }
    }
}

impl Backend for FwBackend {
    type Job = VagxJob;

    // Starting a job is two ring writes and a doorbell under interrupt-safe spinlocks.
    const RUN_IN_IRQ: bool = true;

    fn run_job(&self, job: &VagxJob) -> Result<ARef<Fence>> {
        let prepared = job.fence.lock().take().ok_or(EINVAL)?;
        // Each producer has started (the scheduler waited for its scheduled fence).
        let mut waits = [QueueEntry::default(); MAX_HW_WAITS];
        let mut n = 0;
        for w in job.waits.iter() {
            match w.record.state() {
                RunState::Running { stamp, epoch } => {
                    if let Some(e) = waits.get_mut(n) {
                        *e = match w.port {
                            None => QueueEntry::wait(w.hw.id(), stamp),
                            Some(port) => {
                                QueueEntry::peer_wait(Peer { port, epoch }, w.hw.id(), stamp)
                            }
                        };
                        n += 1;
                    }
                }
                RunState::Done(Ok(())) => {}
                // The scheduler completes this job after the producer, with its error.
                RunState::Done(Err(e)) => return Err(e),
                RunState::NotRun => return Err(ecanceled()),
            }
        }
        let hw = job.hw.submit(
            &self.gpu,
            &waits[..n],
            &job.entry,
            prepared,
            &job.deadline,
            &job.record,
        )?;
        // CAST: at most `MAX_HW_WAITS`.
        self.gpu.wait_entries.fetch_add(n as u64, Relaxed);
        Ok(hw)
    }

    fn hw_time_ns(&self, job: &VagxJob) -> Option<u64> {
        job.record.device_ns()
    }

    fn ring(&self, job: &VagxJob) -> Option<u64> {
        // A firmware work queue runs its entries in order, and a fault discards the later
        // ones: each work queue is one in-order ring. Its address names it, and cannot be
        // reused while a job (which holds the queue) is alive.
        // CAST: a pointer's address as a number, only compared.
        Some(Arc::as_ptr(&job.hw) as usize as u64)
    }

    fn prepare_job(&self, _job: &VagxJob) -> Option<ARef<Fence>> {
        // While the firmware reboots after a crash, jobs wait instead of being lost.
        self.gpu.recovery.down_fence()
    }

    fn timed_out(&self, _job: &VagxJob) -> TimeoutStatus {
        // The firmware's watchdog stops a hung entry and the interrupt handler recovers; the
        // scheduler's timer is only a backstop for a firmware that stopped answering.
        if self.gpu.is_lost() {
            return TimeoutStatus::NoDevice;
        }
        if self.gpu.recovery.down_fence().is_some() {
            // A recovery is under way; its end completes or fails the job.
            return TimeoutStatus::NoHang;
        }
        // A round trip with a deadline (`call` gives up after 2 s): any answer will do.
        let ping = DevCtrlQuery {
            what: QUERY_TIME_NS,
        };
        if let Err(e) = self.fw.call(&ping) {
            // Recovered as from a crash: entries the firmware had fail with ENODEV, jobs it
            // did not have wait for the reboot, or fail with ENODEV if it does not come back.
            Gpu::firmware_silent(&self.gpu, e);
        }
        TimeoutStatus::NoHang
    }

    fn cancel_job(&self, job: &VagxJob) {
        job.hw.fail_all(ecanceled(), false);
    }
}

/// The scheduler of kernel mode: one for the device, every firmware priority with its own
/// `KERNEL_MODE_CREDITS` (as it has its own pipes), so that a full Low priority does not hold
/// back High, and a queue whose priority changes takes its queued jobs to the new priority's
/// credits at the next pick.
pub(crate) struct KernelSched(pub(crate) Option<Scheduler<FwBackend>>);

impl KernelSched {
    /// Creates it (kernel mode) or nothing (firmware mode).
    pub(crate) fn new(gpu: &Arc<Gpu>, kernel_mode: bool) -> Result<Self> {
        if !kernel_mode {
            return Ok(Self(None));
        }
        let cfg = SchedulerConfig {
            timeout: Some(BACKSTOP),
            credits_per_priority: true,
            deadline_credits: KERNEL_MODE_DEADLINE_CREDITS,
            ..SchedulerConfig::new(c"vagx-kernel", KERNEL_MODE_CREDITS)
        };
        Ok(Self(Some(Scheduler::new(cfg, FwBackend::new(gpu))?)))
    }
}

/// A queue's statistics since creation (`QUEUE_GET_STATUS`).
pub(crate) struct QueueStats {
    pub(crate) gpu_time_ns: u64,
    pub(crate) submitted: u64,
    pub(crate) failed: u64,
    pub(crate) depth: u64,
    pub(crate) wait_count: u64,
    pub(crate) wait_avg_ns: u64,
    pub(crate) wait_p99_ns: u64,
    pub(crate) deadline_jobs: u64,
    pub(crate) deadline_misses: u64,
}

/// A client's queue.
pub(crate) struct Queue {
    gpu: Arc<Gpu>,
    hw: Arc<HwQueue>,
    vm: Arc<Vm>,
    status: Arc<SpinLockIrq<FaultInfo>>,
    /// Dropped before `_own_sched`, which it may run on.
    entity: Entity<FwBackend>,
    /// Firmware mode: the queue's own scheduler (owned here, used through the entity).
    _own_sched: Option<Scheduler<FwBackend>>,
    /// The UAPI pipe (`DRM_VAGX_PIPE_*`), for fdinfo's engine keys.
    uapi_pipe: u32,
    /// The finished fence of the last job submitted: unmapping from the VM waits for it.
    last: Arc<SpinLock<Option<ARef<Fence>>>>,
    /// Jobs submitted.
    submitted: AtomicU64,
    /// Where the queue's device time goes when it is destroyed (its file's fdinfo).
    retired: Arc<EngineTime>,
}

/// The firmware priority (0 highest) of a UAPI priority.
fn fw_priority(prio: u32) -> Result<(u32, Priority)> {
    match prio {
        uapi::PRIORITY_HIGH => Ok((0, Priority::High)),
        uapi::PRIORITY_NORMAL => Ok((1, Priority::Normal)),
        uapi::PRIORITY_LOW => Ok((2, Priority::Low)),
        _ => Err(EINVAL),
    }
}

impl Queue {
    /// Creates a queue in `vm` at UAPI priority `prio` on UAPI pipe `pipe`.
    pub(crate) fn new(
        gpu: &Arc<Gpu>,
        kernel_sched: &KernelSched,
        retired: &Arc<EngineTime>,
        vm: Arc<Vm>,
        prio: u32,
        pipe: u32,
    ) -> Result<Arc<Self>> {
        let (fw_prio, prio) = fw_priority(prio)?;
        let ty = match pipe {
            uapi::PIPE_COMPUTE => PipeType::Compute,
            uapi::PIPE_COPY => PipeType::Copy,
            _ => return Err(EINVAL),
        };
        let uapi_pipe = pipe;
        let id = QueueId::alloc(gpu)?;
        let pipe = abi::pipe_index(ty, fw_prio);
        let hw = gpu
            .dma
            .with(|dev| Arc::pin_init(HwQueue::new(dev, id, vm.id(), pipe)?, GFP_KERNEL))?;
        let status = Arc::pin_init(new_spinlock_irq!(FaultInfo::default()), GFP_KERNEL)?;
        let last = Arc::pin_init(new_spinlock!(None), GFP_KERNEL)?;
        let own_sched = if kernel_sched.0.is_none() {
            let cfg = SchedulerConfig {
                timeout: Some(BACKSTOP),
                ..SchedulerConfig::new(c"vagx-queue", FIRMWARE_MODE_ENTRIES)
            };
            Some(Scheduler::new(cfg, FwBackend::new(gpu))?)
        } else {
            None
        };
        let sched = own_sched
            .as_ref()
            .or(kernel_sched.0.as_ref())
            .ok_or(EINVAL)?;
        let entity = Entity::new(sched, prio)?;
        // Not while a crash recovery re-creates the firmware's queues.
        let _recovery = gpu.recovery.serialise();
        if gpu.is_lost() {
            return Err(ENODEV);
        }
        hw.reset_ring()?;
        gpu.fw.call(&hw.create_args())?;
        gpu.install(QueueSlot {
            hw: hw.clone(),
            status: status.clone(),
        })?;
        Ok(Arc::new(
            Self {
                gpu: gpu.clone(),
                hw,
                vm,
                status,
                entity,
                _own_sched: own_sched,
                uapi_pipe,
                last,
                submitted: AtomicU64::new(0),
                retired: retired.clone(),
            },
            GFP_KERNEL,
        )?)
    }

    /// The queue's VM.
    pub(crate) fn vm(&self) -> &Arc<Vm> {
        &self.vm
    }

    /// The scheduler entity.
    pub(crate) fn entity(&self) -> &Entity<FwBackend> {
        &self.entity
    }

    /// The firmware work queue.
    pub(crate) fn hw(&self) -> &Arc<HwQueue> {
        &self.hw
    }

    /// The credits of a job with `waits` hardware waits: in firmware mode the ring entries it
    /// takes (the queue's own scheduler then never overfills the ring), in kernel mode one job
    /// of the priority's `KERNEL_MODE_CREDITS`.
    pub(crate) fn credits(&self, waits: usize) -> u32 {
        match self._own_sched {
            // CAST: at most `MAX_HW_WAITS`.
            Some(_) => 1 + waits as u32,
            None => 1,
        }
    }

    /// A job running the command buffer at `cmdbuf` (GPU VA) of `len` bytes, after `waits`.
    pub(crate) fn job(&self, cmdbuf: u64, len: u32, waits: KVec<HwWait>) -> Result<VagxJob> {
        if self.gpu.is_lost() {
            return Err(ENODEV);
        }
        if self.status.lock().state == uapi::QUEUE_BANNED {
            return Err(ecanceled());
        }
        Ok(VagxJob {
            hw: self.hw.clone(),
            entry: QueueEntry {
                cmdbuf,
                len,
                flags: 0,
            },
            waits,
            record: RunRecord::new()?,
            fence: KBox::pin_init(
                new_spinlock_irq!(Some(PreparedFence::new(GFP_KERNEL)?)),
                GFP_KERNEL,
            )?,
            deadline: HwDeadline::new()?,
            _vm: self.vm.clone(),
            _pending: PendingJob::new(&self.gpu),
        })
    }

    /// Changes the queue's priority (UAPI `prio`): the device's arbitration between work
    /// queues from its next command boundary, entries it has included, and in kernel mode
    /// the scheduler's, which picks the queued jobs at the new priority on its credits. Needs
    /// ABI 1.6 (`EOPNOTSUPP` before).
    pub(crate) fn set_priority(&self, prio: u32) -> Result {
        let (fw_prio, prio) = fw_priority(prio)?;
        if !self.gpu.fw.abi().has_queue_priority() {
            return Err(uapi::eopnotsupp());
        }
        // Not while a crash recovery re-creates the firmware's queues: it restores the
        // priority recorded here.
        let _recovery = self.gpu.recovery.serialise();
        if self.gpu.is_lost() {
            return Err(ENODEV);
        }
        self.gpu.fw.call(&DevCtrlSetQueuePriority {
            queue: self.hw.id(),
            priority: fw_prio,
        })?;
        self.hw.set_priority(fw_prio);
        self.entity.set_priority(prio);
        Ok(())
    }

    /// Changes the queue's weight: the share of its priority the device gives it (ABI 1.6:
    /// command boundaries in proportion) and, in kernel mode, the kernel's FAIR policy (GPU
    /// time in proportion). Firmware mode on an older device: `EOPNOTSUPP`.
    ///
    /// In kernel mode the two rules do not compound: FAIR charges a job the device time the
    /// firmware counted for it (ABI 1.7, [`Backend::hw_time_ns`]), which a queue the device
    /// favours does not make smaller, so over a run the kernel hands out jobs in the ratio
    /// of the weights and the device only orders the few it has.
    pub(crate) fn set_weight(&self, weight: Weight) -> Result {
        let device = self.gpu.fw.abi().has_queue_priority();
        if self._own_sched.is_some() && !device {
            return Err(uapi::eopnotsupp());
        }
        if device {
            // Not while a crash recovery re-creates the firmware's queues: it restores the
            // weight recorded here.
            let _recovery = self.gpu.recovery.serialise();
            if self.gpu.is_lost() {
                return Err(ENODEV);
            }
            self.gpu.fw.call(&DevCtrlSetQueueWeight {
                queue: self.hw.id(),
                weight: weight.get(),
            })?;
            self.hw.set_weight(weight.get());
        }
        self.entity.set_weight(weight);
        Ok(())
    }

    /// The UAPI pipe.
    pub(crate) fn uapi_pipe(&self) -> u32 {
        self.uapi_pipe
    }

    /// Records a submitted job's finished fence.
    pub(crate) fn submitted(&self, done: ARef<Fence>) {
        self.submitted.fetch_add(1, Relaxed);
        *self.last.lock() = Some(done);
    }

    /// The queue's statistics: the firmware's device time, the scheduler entity's counts
    /// and waits (one lock round trip each).
    pub(crate) fn stats(&self) -> QueueStats {
        let usage = self.entity.usage();
        QueueStats {
            gpu_time_ns: self.hw.usage().busy_ns,
            submitted: self.submitted.load(Relaxed),
            failed: usage.jobs_failed,
            depth: usage.pending,
            wait_count: usage.waits.count(),
            wait_avg_ns: usage.waits.mean_ns(),
            wait_p99_ns: usage.waits.percentile_ns(990),
            deadline_jobs: usage.deadline_jobs,
            deadline_misses: usage.deadline_misses,
        }
    }

    /// The finished fence of the last job submitted.
    pub(crate) fn last(&self) -> Option<ARef<Fence>> {
        self.last.lock().clone()
    }

    /// The queue's state for `QUEUE_GET_STATUS`: its fault info, with the state as userspace
    /// sees it (lost and banned included), and the jobs completed.
    pub(crate) fn status(&self) -> (FaultInfo, u64) {
        let mut info = *self.status.lock();
        if self.gpu.is_lost() {
            info.state = uapi::QUEUE_DEVICE_LOST;
        } else if self.entity.is_banned() {
            info.state = uapi::QUEUE_BANNED;
        }
        (info, self.hw.usage().completed)
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // Queued jobs never run (ECANCELED, as the UAPI says, once their own dependencies
        // have signalled); entries on the hardware are discarded by the firmware, which
        // advances the stamp over them so their fences signal (ECANCELED).
        self.entity.kill_with(ecanceled());
        // The kill does not wait for a job the scheduler is handing to the hardware right
        // now: refuse it at the ring (ECANCELED) before counting what is on the hardware,
        // so that no entry reaches the firmware after the reset below and keeps its queue
        // alive past the destroy (its id, reused, would then make QUEUE_CREATE fail).
        self.hw.ban();
        let _recovery = self.gpu.recovery.serialise();
        let id = self.hw.id();
        if !self.gpu.is_lost() {
            self.hw.mark_discard(u32::MAX, ecanceled());
            let queue = DevCtrlQueue { queue: id };
            if self.hw.in_flight() > 0 {
                let _ = self.gpu.fw.call(&DevCtrlResetQueue(queue));
            }
            if let Err(e) = self.gpu.fw.call(&DevCtrlDestroyQueue(queue)) {
                // Nothing more can reach the queue; a firmware that still says it is busy
                // gets one more reset.
                let _ = self.gpu.fw.call(&DevCtrlResetQueue(queue));
                if let Err(again) = self.gpu.fw.call(&DevCtrlDestroyQueue(queue)) {
                    dev_warn!(
                        self.gpu.dev(),
                        "queue {id}: the firmware refused to destroy it ({e:?}, then {again:?})\n"
                    );
                }
            }
        }
        // Whatever the firmware did not complete (device lost, reset failed) fails here.
        self.hw.fail_all(ecanceled(), true);
        // The firmware's last sample of the queue came before its answer to the destroy; a
        // lost device's stats ring is not read again.
        let busy = if self.gpu.is_lost() {
            self.gpu.queue_busy(id)
        } else {
            self.gpu.final_queue_busy(id)
        };
        self.retired.retire(self.uapi_pipe, busy.busy_ns);
        self.gpu.uninstall(id);
        // The id goes back with the work queue, once no consumer waits on its stamps.
    }
}
