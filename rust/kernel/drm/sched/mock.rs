// SPDX-License-Identifier: GPL-2.0

//! A mock GPU backend for the scheduler's KUnit suites, equivalent to drm_sched's.
//!
//! The mock has one or more rings; a job names its ring. Jobs of one ring complete in order;
//! the rings are independent, so jobs of different rings complete in any order (as the
//! firmware work queues of a device that runs several at once do). A job with a duration
//! completes `duration` after the later of its start and the previous job's completion on its
//! ring, from that ring's hrtimer; a job without one completes only through
//! [`MockGpu::advance_ring`] (or [`MockGpu::fail_ring`]). A mock made [`MockGpu::unordered`]
//! promises the scheduler no order at all ([`Backend::ring`] is `None`).
//!
//! A job flagged [`DONT_RESET`] makes the timeout handler report `NoHang`, one flagged
//! [`NO_DEVICE`] `NoDevice`; any other timed-out job gets `ETIMEDOUT` on its hardware fence.
//! [`REFUSE_RUN`] makes `run_job` fail.

use super::{Backend, TimeoutStatus};
use crate::{
    dma_fence::{DriverFence, Fence, FenceContext, PreparedFence},
    impl_has_hr_timer, new_spinlock_irq,
    prelude::*,
    sync::{aref::ARef, Arc, ArcBorrow, SpinLockIrq},
    time::{
        hrtimer::{
            ArcHrTimerHandle, HrTimer, HrTimerCallback, HrTimerCallbackContext, HrTimerPointer,
            HrTimerRestart, RelativeMode,
        },
        Delta, Instant, Monotonic,
    },
};
use core::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering::Relaxed};

use super::fifo::Fifo;

/// The timeout handler must not reset this job (`NoHang`).
pub(crate) const DONT_RESET: u32 = 1 << 0;
/// Set by the mock when it timed the job out.
pub(crate) const TIMEDOUT: u32 = 1 << 1;
/// Set by the mock when it skipped a reset for a `DONT_RESET` job.
pub(crate) const RESET_SKIPPED: u32 = 1 << 2;
/// The timeout handler reports the device gone (`NoDevice`) for this job.
pub(crate) const NO_DEVICE: u32 = 1 << 3;
/// `run_job` refuses this job with `ENOSPC`, as a backend does that finds it cannot start it.
pub(crate) const REFUSE_RUN: u32 = 1 << 4;

/// How many jobs the mock hardware holds at once.
const CAPACITY: usize = 8192;

/// One job's hardware side.
#[pin_data]
pub(crate) struct MockJobState {
    duration: Delta,
    pub(crate) flags: AtomicU32,
    /// The hardware fence: prepared at creation, initialised by `run_job`, signalled once.
    #[pin]
    hw: SpinLockIrq<MockHw>,
    finish_at: AtomicI64,
    /// The time the mock hardware reports the job took ([`Backend::hw_time_ns`]); 0: none.
    pub(crate) hw_time_ns: AtomicU64,
}

struct MockHw {
    prepared: Option<PreparedFence<()>>,
    fence: Option<DriverFence<()>>,
    fence_ref: Option<ARef<Fence>>,
}

impl MockJobState {
    /// The hardware fence, once the job ran.
    pub(crate) fn hw_fence(&self) -> Option<ARef<Fence>> {
        self.hw.lock().fence_ref.clone()
    }

    fn signal(&self, err: Option<Error>) {
        let fence = self.hw.lock().fence.take();
        if let Some(f) = fence {
            match err {
                Some(e) => f.signal_with_error(e),
                None => f.signal(),
            }
        }
    }
}

/// The scheduler's job data for the mock.
pub(crate) struct MockJob {
    pub(crate) state: Arc<MockJobState>,
    /// The ring it runs on.
    pub(crate) ring: usize,
}

struct MockQueue {
    running: Fifo<Arc<MockJobState>>,
    /// When the last timed job completes, in ns of the monotonic clock.
    last_finish: i64,
    /// Whether the timer is (or is about to be) running.
    armed: bool,
}

#[pin_data]
pub(crate) struct MockInner {
    #[pin]
    timer: HrTimer<MockInner>,
    #[pin]
    queue: SpinLockIrq<MockQueue>,
    ctx: FenceContext,
}

impl_has_hr_timer! {
    impl HasHrTimer<Self> for MockInner {
        mode: RelativeMode<Monotonic>, field: self.timer
    }
}

/// One ring of the mock GPU.
struct MockRing {
    inner: Arc<MockInner>,
    /// Interrupt-safe: `run_job` may run in a completion ([`Backend::RUN_IN_IRQ`]).
    handle: Pin<KBox<SpinLockIrq<Option<ArcHrTimerHandle<MockInner>>>>>,
}

impl MockRing {
    fn new() -> Result<Self> {
        let inner = Arc::pin_init(
            pin_init!(MockInner {
                timer <- HrTimer::new(),
                queue <- new_spinlock_irq!(MockQueue {
                    running: Fifo::with_capacity(CAPACITY, GFP_KERNEL)?,
                    last_finish: 0,
                    armed: false,
                }),
                ctx: FenceContext::new(c"vagx-mock-gpu", c"hw"),
            }? Error),
            GFP_KERNEL,
        )?;
        Ok(Self {
            inner,
            handle: KBox::pin_init(new_spinlock_irq!(None), GFP_KERNEL)?,
        })
    }

    /// Completes the next `n` jobs in order with `err`; returns how many.
    fn advance(&self, n: usize, err: Option<Error>) -> usize {
        let mut done = 0;
        while done < n {
            let job = self.inner.queue.lock().running.pop_front();
            let Some(job) = job else { break };
            job.signal(err);
            done += 1;
        }
        done
    }

    fn start_timer(&self, at_ns: i64) {
        let mut handle = self.handle.lock();
        // The previous start's handle cancels the timer when dropped: drop it first.
        drop(handle.take());
        let delay = Delta::from_nanos((at_ns - now_ns()).max(1));
        *handle = Some(self.inner.clone().start(delay));
    }

    fn remove(&self, job: &Arc<MockJobState>) {
        let _ = self
            .inner
            .queue
            .lock()
            .running
            .take_first(|j| Arc::ptr_eq(j, job));
    }
}

impl Drop for MockRing {
    fn drop(&mut self) {
        // Cancels the timer, which holds a reference to the inner state.
        drop(self.handle.lock().take());
    }
}

/// The mock GPU.
pub(crate) struct MockGpu {
    rings: KVec<MockRing>,
    /// Whether it tells the scheduler which ring a job runs on.
    ordered: bool,
}

fn now_ns() -> i64 {
    Instant::<Monotonic>::now().as_nanos()
}

impl MockGpu {
    /// A mock with one ring.
    pub(crate) fn new() -> Result<Self> {
        Self::with_rings(1)
    }

    /// A mock with `n` independent rings.
    pub(crate) fn with_rings(n: usize) -> Result<Self> {
        let mut rings = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            rings.push(MockRing::new()?, GFP_KERNEL)?;
        }
        Ok(Self {
            rings,
            ordered: true,
        })
    }

    /// The same mock, but it promises the scheduler no completion order.
    pub(crate) fn unordered(mut self) -> Self {
        self.ordered = false;
        self
    }

    /// A job on ring 0 that runs for `duration_us` (0: until [`MockGpu::advance`]).
    pub(crate) fn job(duration_us: i64, flags: u32) -> Result<MockJob> {
        Self::job_on(0, duration_us, flags)
    }

    /// A job on `ring` that runs for `duration_us` (0: until [`MockGpu::advance_ring`]).
    pub(crate) fn job_on(ring: usize, duration_us: i64, flags: u32) -> Result<MockJob> {
        let prepared = PreparedFence::new(GFP_KERNEL)?;
        Ok(MockJob {
            state: Arc::pin_init(
                pin_init!(MockJobState {
                    duration: Delta::from_micros(duration_us),
                    flags: AtomicU32::new(flags),
                    hw <- new_spinlock_irq!(MockHw {
                        prepared: Some(prepared),
                        fence: None,
                        fence_ref: None,
                    }),
                    finish_at: AtomicI64::new(i64::MAX),
                    hw_time_ns: AtomicU64::new(0),
                }),
                GFP_KERNEL,
            )?,
            ring,
        })
    }

    /// Completes the next `n` jobs of ring 0 in order, whatever their duration; returns how
    /// many.
    pub(crate) fn advance(&self, n: usize) -> usize {
        self.advance_ring(0, n)
    }

    /// Completes the next `n` jobs of `ring` in order; returns how many.
    pub(crate) fn advance_ring(&self, ring: usize, n: usize) -> usize {
        self.rings.get(ring).map_or(0, |r| r.advance(n, None))
    }

    /// Completes the next job of `ring` with `err` (a hardware fault); returns whether there
    /// was one.
    pub(crate) fn fail_ring(&self, ring: usize, err: Error) -> bool {
        self.rings
            .get(ring)
            .is_some_and(|r| r.advance(1, Some(err)) == 1)
    }

    /// The deadline the scheduler passed to `job`'s hardware fence, while it runs.
    pub(crate) fn hw_deadline(&self, job: &MockJobState) -> Option<Instant<Monotonic>> {
        job.hw.lock().fence.as_ref().and_then(|f| f.deadline())
    }

    /// Jobs on the mock hardware, all rings.
    pub(crate) fn running(&self) -> usize {
        self.rings
            .iter()
            .map(|r| r.inner.queue.lock().running.len())
            .sum()
    }

    fn ring_of(&self, job: &MockJob) -> Result<&MockRing> {
        self.rings.get(job.ring).ok_or(EINVAL)
    }
}

impl HrTimerCallback for MockInner {
    type Pointer<'a> = Arc<Self>;

    fn run(this: ArcBorrow<'_, Self>, mut ctx: HrTimerCallbackContext<'_, Self>) -> HrTimerRestart {
        let now = now_ns();
        // Signal with the queue unlocked: the signal may start the next job (`run_job`).
        loop {
            let due = {
                let mut q = this.queue.lock();
                let at = q.running.front().map(|f| f.finish_at.load(Relaxed));
                match at {
                    Some(at) if at != i64::MAX && at <= now => q.running.pop_front(),
                    _ => None,
                }
            };
            let Some(job) = due else { break };
            job.signal(None);
        }
        let mut q = this.queue.lock();
        let next = q
            .running
            .front()
            .map(|f| f.finish_at.load(Relaxed))
            .filter(|&at| at != i64::MAX);
        match next {
            Some(at) => {
                let expires = this.timer.expires().as_nanos();
                ctx.forward(Instant::now(), Delta::from_nanos((at - expires).max(1)));
                HrTimerRestart::Restart
            }
            None => {
                q.armed = false;
                HrTimerRestart::NoRestart
            }
        }
    }
}

impl Backend for MockGpu {
    type Job = MockJob;

    // Like drm_sched's mock, a job's start is a few stores and an hrtimer; no sleeping lock.
    const RUN_IN_IRQ: bool = true;

    fn ring(&self, job: &MockJob) -> Option<u64> {
        // CAST: a ring index fits u64.
        self.ordered.then_some(job.ring as u64)
    }

    fn hw_time_ns(&self, job: &MockJob) -> Option<u64> {
        let ns = job.state.hw_time_ns.load(Relaxed);
        (ns != 0).then_some(ns)
    }

    fn run_job(&self, job: &MockJob) -> Result<ARef<Fence>> {
        if job.state.flags.load(Relaxed) & REFUSE_RUN != 0 {
            return Err(ENOSPC);
        }
        let ring = self.ring_of(job)?;
        let hw = {
            let mut state = job.state.hw.lock();
            let prepared = state.prepared.take().ok_or(EINVAL)?;
            let fence = ring.inner.ctx.init(prepared, ());
            let hw: ARef<Fence> = fence.fence().into();
            state.fence = Some(fence);
            state.fence_ref = Some(hw.clone());
            hw
        };
        let start = {
            let mut q = ring.inner.queue.lock();
            let timed = job.state.duration.as_nanos() > 0;
            if timed {
                let at = q.last_finish.max(now_ns()) + job.state.duration.as_nanos();
                q.last_finish = at;
                job.state.finish_at.store(at, Relaxed);
            }
            if q.running.push_back(job.state.clone()).is_err() {
                drop(q);
                job.state.signal(Some(ENOSPC));
                return Ok(hw);
            }
            let head_timed = q
                .running
                .front()
                .map(|f| f.finish_at.load(Relaxed))
                .filter(|&at| at != i64::MAX);
            match head_timed {
                Some(at) if !q.armed => {
                    q.armed = true;
                    Some(at)
                }
                _ => None,
            }
        };
        if let Some(at) = start {
            ring.start_timer(at);
        }
        Ok(hw)
    }

    fn timed_out(&self, job: &MockJob) -> TimeoutStatus {
        if job.state.flags.load(Relaxed) & NO_DEVICE != 0 {
            return TimeoutStatus::NoDevice;
        }
        if job.state.flags.load(Relaxed) & DONT_RESET != 0 {
            job.state.flags.fetch_or(RESET_SKIPPED, Relaxed);
            return TimeoutStatus::NoHang;
        }
        job.state.flags.fetch_or(TIMEDOUT, Relaxed);
        if let Ok(ring) = self.ring_of(job) {
            ring.remove(&job.state);
        }
        job.state.signal(Some(ETIMEDOUT));
        TimeoutStatus::Reset
    }

    fn cancel_job(&self, job: &MockJob) {
        if let Ok(ring) = self.ring_of(job) {
            ring.remove(&job.state);
        }
        job.state.signal(Some(crate::dma_fence::ecanceled()));
    }
}
