// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Recovery: the device's state as the driver sees it, one state machine, and the work that
//! brings a stopped firmware back.
//!
//! The interrupt handler and the scheduler's timeout handler notice that the firmware stopped;
//! the recovery work, in process context, acts on it. Every change of state goes through
//! [`next`], the one table of legal transitions.
//!
//! # Vocabulary
//!
//! - **halt**: the firmware stopped on a fault or a watchdog timeout, told the driver with an
//!   event and left a pending table. Recovery fails the culprit's entries, resets its queue
//!   and resumes; the other queues' work goes on where it was.
//! - **crash**: the firmware stopped running (a crash message, a crash event, `FW_STATE`
//!   crashed), stopped answering, or wrote something the driver cannot trust (a corrupt event
//!   ring). Recovery fails every entry on the hardware with `ENODEV`, reboots the firmware,
//!   binds the VMs and creates the queues again.
//! - **down**: crashed or rebooting. Work handed to the firmware now would be lost, so jobs
//!   about to start wait for the *down fence*, which signals when the firmware is up again
//!   (or the device is lost); a submit that raced past it fails with `ENODEV`.
//! - **lost**: gone for good (unbind, a failed probe, a reboot that failed). Everything fails
//!   with `ENODEV`, now and later.
//!
//! ## State Diagram
//!
//! ```text
//!            halt              work              resumed
//!  Running ──────► Halted ────────► Resuming ──────────► Running
//!     │               │                │ │ halt
//!     │ crash         │ crash          │ └─────────────► Halted
//!     ▼               ▼                │ crash, or the resume failed
//!  Crashed ◄──────────┴────────────────┘
//!     │ work          ▲ crash
//!     ▼               │
//!  Rebooting ─────────┘
//!     │ rebooted ──────────────────────────────────────► Running
//!     │ the reboot failed
//!     ▼
//!   Lost ◄─── every state: lose (unbind, a failed probe)
//! ```
//!
//! A halt noticed while the firmware is down is absorbed: it comes from the firmware being
//! replaced (nothing is submitted to the new one before the reboot ends), and the reboot fails
//! every entry anyway.

use core::sync::atomic::{
    AtomicU32,
    Ordering::Relaxed, //
};

use kernel::{
    dma_fence::{
        DriverFence,
        Fence,
        FenceContext,
        PreparedFence, //
    },
    new_mutex, new_spinlock_irq,
    prelude::*,
    sync::{
        aref::ARef,
        lock::{
            mutex::MutexBackend,
            Guard, //
        },
        Arc,
        Mutex,
        SpinLockIrq, //
    },
    workqueue::{
        self,
        WorkItem, //
    },
};

use crate::{
    abi::{
        channels::{
            self,
            DevCtrlResetQueue,
            DevCtrlResume, //
        },
        init::{
            PENDING_CULPRIT,
            PENDING_VALID, //
        },
    },
    gpu::{
        Gpu,
        BAN_LIMIT, //
    },
};

/// The device's state (see the module docs for the diagram).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DeviceState {
    /// The firmware runs work.
    Running,
    /// The firmware halted; the recovery work has not taken it on yet.
    Halted,
    /// The recovery work resets the culprit's queue and resumes the firmware.
    Resuming,
    /// The firmware crashed; the recovery work has not taken it on yet.
    Crashed,
    /// The recovery work reboots the firmware.
    Rebooting,
    /// The device is gone for good.
    Lost,
}

impl DeviceState {
    /// Whether the firmware is down: work handed over now would be lost.
    pub(crate) fn is_down(self) -> bool {
        matches!(self, Self::Crashed | Self::Rebooting)
    }

    /// Whether the recovery work has something to do.
    fn needs_work(self) -> bool {
        matches!(self, Self::Halted | Self::Crashed)
    }
}

/// What happened, as [`next`] sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// The firmware halted on a fault or a watchdog timeout.
    Halt,
    /// The firmware crashed, stopped answering, or cannot be trusted.
    Crash,
    /// The recovery work takes a halt on.
    ResumeStarted,
    /// The firmware resumed after a halt.
    Resumed,
    /// The recovery work takes a crash on.
    RebootStarted,
    /// The firmware runs again after a reboot.
    Rebooted,
    /// The device is gone.
    Lose,
}

/// The state after `event` in `state`, or `None` if the event does not apply there (it is
/// absorbed: already noticed, overtaken by a crash, or the device is lost).
pub(crate) fn next(state: DeviceState, event: Event) -> Option<DeviceState> {
    use DeviceState::*;
    match (state, event) {
        (Lost, _) => None,
        (_, Event::Lose) => Some(Lost),
        (Running | Resuming, Event::Halt) => Some(Halted),
        (Running | Halted | Resuming | Rebooting, Event::Crash) => Some(Crashed),
        (Halted, Event::ResumeStarted) => Some(Resuming),
        (Resuming, Event::Resumed) => Some(Running),
        (Crashed, Event::RebootStarted) => Some(Rebooting),
        (Rebooting, Event::Rebooted) => Some(Running),
        _ => None,
    }
}

/// The state and the down fence, changed together.
///
/// # Invariants
///
/// `down` is `Some` only while `state.is_down()` (it may be `None` then if no spare fence was
/// ready when the crash was noticed: jobs then fail with `ENODEV` instead of waiting).
struct Inner {
    state: DeviceState,
    /// The memory of the next down fence: the crash is noticed in interrupt context.
    spare: Option<PreparedFence<()>>,
    /// The down fence, and the reference handed to jobs.
    down: Option<(DriverFence<()>, ARef<Fence>)>,
}

/// The device's recovery state, owned by [`Gpu`].
#[pin_data]
pub(crate) struct Recovery {
    /// Taken in any context (the interrupt handler, the scheduler's irq_work); covers the
    /// state and the fences, never held while a fence signals.
    #[pin]
    inner: SpinLockIrq<Inner>,
    down_ctx: FenceContext,
    /// Serialises the recovery work with queue creation and destruction and VM binding, which
    /// change what a reboot must restore.
    #[pin]
    serial: Mutex<()>,
    /// Halts recovered.
    pub(crate) recoveries: AtomicU32,
    /// Firmware reboots.
    pub(crate) resets: AtomicU32,
    /// Times the firmware was found silent (no crash message, no answer).
    pub(crate) silent: AtomicU32,
}

impl Recovery {
    /// A running device's recovery state.
    pub(crate) fn new() -> Result<impl PinInit<Self, Error>> {
        let spare = PreparedFence::new(GFP_KERNEL)?;
        Ok(try_pin_init!(Self {
            inner <- new_spinlock_irq!(Inner {
                state: DeviceState::Running,
                spare: Some(spare),
                down: None,
            }),
            down_ctx: FenceContext::new(c"vagx", c"fw-recovery"),
            serial <- new_mutex!(()),
            recoveries: AtomicU32::new(0),
            resets: AtomicU32::new(0),
            silent: AtomicU32::new(0),
        }? Error))
    }

    /// The current state.
    pub(crate) fn state(&self) -> DeviceState {
        self.inner.lock().state
    }

    /// Whether the device is gone for good.
    pub(crate) fn is_lost(&self) -> bool {
        self.state() == DeviceState::Lost
    }

    /// Whether the firmware is down (crashed, being rebooted).
    pub(crate) fn is_down(&self) -> bool {
        self.state().is_down()
    }

    /// Whether the recovery work has something to do.
    pub(crate) fn needs_work(&self) -> bool {
        self.state().needs_work()
    }

    /// Applies `event`; returns the new state, or `None` if the event was absorbed.
    ///
    /// Entering the down states arms the down fence; leaving them signals it, unlocked, so
    /// that the jobs waiting for it start from its callbacks. Never sleeps or allocates.
    pub(crate) fn apply(&self, event: Event) -> Option<DeviceState> {
        let (to, release) = {
            let mut inner = self.inner.lock();
            let from = inner.state;
            let to = next(from, event)?;
            inner.state = to;
            let mut release = None;
            if !from.is_down() && to.is_down() {
                if let Some(prepared) = inner.spare.take() {
                    let fence = self.down_ctx.init(prepared, ());
                    let shared: ARef<Fence> = fence.fence().into();
                    inner.down = Some((fence, shared));
                }
            } else if from.is_down() && !to.is_down() {
                release = inner.down.take();
            }
            (to, release)
        };
        if let Some((fence, _)) = release {
            fence.signal();
        }
        Some(to)
    }

    /// The fence a job must wait for before it starts, while the firmware is down.
    pub(crate) fn down_fence(&self) -> Option<ARef<Fence>> {
        self.inner.lock().down.as_ref().map(|(_, f)| f.clone())
    }

    /// Makes sure the next crash has a fence to hand out (allocated here, in process context,
    /// not in the interrupt handler that notices the crash).
    pub(crate) fn ensure_spare(&self) -> Result {
        if self.inner.lock().spare.is_some() {
            return Ok(());
        }
        let prepared = PreparedFence::new(GFP_KERNEL)?;
        let mut inner = self.inner.lock();
        if inner.spare.is_none() {
            inner.spare = Some(prepared);
        }
        Ok(())
    }

    /// Holds the recovery work off (and is held by it) until the guard drops.
    pub(crate) fn serialise(&self) -> Guard<'_, (), MutexBackend> {
        self.serial.lock()
    }
}

impl Gpu {
    /// Whether the device is gone for good.
    pub(crate) fn is_lost(&self) -> bool {
        self.recovery.is_lost()
    }

    /// Queues the recovery work if the state asks for it.
    pub(crate) fn schedule_recovery(this: &Arc<Self>) {
        if this.recovery.needs_work() {
            let _ = workqueue::system().enqueue(this.clone());
        }
    }

    /// After a halt: fail the culprit's entries, reset its queue, resume.
    fn recover_halt(&self) -> Result {
        let table = self.fw.pending()?;
        let err = if table.reason == channels::EVENT_TIMEOUT {
            ETIMEDOUT
        } else {
            EIO
        };
        let mut culprits = 0;
        for e in table.entries.iter() {
            if e.flags & (PENDING_VALID | PENDING_CULPRIT) != PENDING_VALID | PENDING_CULPRIT {
                continue;
            }
            culprits += 1;
            if let Some((hw, status)) = self.slot_hw(e.queue as usize) {
                hw.mark_discard(e.next_stamp, err);
                // Banned before the reset signals the culprit's fence, so that userspace
                // seeing the fence sees the ban.
                let banned = {
                    let mut s = status.lock();
                    if s.hangs >= BAN_LIMIT {
                        s.state = crate::uapi::QUEUE_BANNED;
                    }
                    s.state == crate::uapi::QUEUE_BANNED
                };
                if banned {
                    dev_warn!(
                        self.dev(),
                        "queue {} banned after {} hangs\n",
                        e.queue,
                        BAN_LIMIT
                    );
                    hw.ban();
                }
                self.fw.call(&DevCtrlResetQueue(channels::DevCtrlQueue {
                    queue: e.queue,
                }))?;
            }
        }
        if culprits == 0 {
            dev_warn!(
                self.dev(),
                "halted without a culprit in the pending table\n"
            );
        }
        self.fw.call(&DevCtrlResume { _pad: 0 })?;
        self.recovery.recoveries.fetch_add(1, Relaxed);
        Ok(())
    }

    /// After a crash: every entry on the hardware fails with `ENODEV`, the firmware reboots
    /// and the queues are created again; queued jobs run after.
    fn recover_crash(&self) -> Result {
        self.recovery.resets.fetch_add(1, Relaxed);
        let mut failed = 0;
        self.each_slot(|hw| {
            failed += hw.fail_all(ENODEV, false);
        });
        dev_info!(
            self.dev(),
            "{} entries on the hardware failed with ENODEV\n",
            failed
        );
        self.busy_before_reboot();
        self.fw.boot(self.dev())?;
        self.rebind_vms()?;
        let mut result = Ok(());
        self.each_slot(|hw| {
            // On its pipe, then at the priority and weight it had.
            let (priority, weight) = hw.restore_args();
            let created = hw
                .reset_ring()
                .and_then(|()| self.fw.call(&hw.create_args()))
                .and_then(|()| priority.map_or(Ok(()), |a| self.fw.call(&a)))
                .and_then(|()| weight.map_or(Ok(()), |a| self.fw.call(&a)));
            if let Err(e) = created {
                result = Err(e);
            }
        });
        result
    }

    /// The firmware stopped answering (a device-control round trip got no reply: `err`)
    /// without a crash message: recovered as from a crash, by the recovery work.
    ///
    /// Called from a scheduler's timeout handler: it only marks and queues (no allocation).
    pub(crate) fn firmware_silent(this: &Arc<Self>, err: Error) {
        if this.recovery.apply(Event::Crash).is_none() {
            // Already noticed, or lost.
            return;
        }
        dev_err!(
            this.dev(),
            "firmware stopped answering ({:?}) without a crash message\n",
            err
        );
        this.recovery.silent.fetch_add(1, Relaxed);
        Self::schedule_recovery(this);
    }

    /// The device is gone: every queue's work fails with `ENODEV`, now and later.
    pub(crate) fn lose(&self) {
        // Jobs waiting for a recovery start now, and fail: every queue is dead.
        self.recovery.apply(Event::Lose);
        self.each_slot(|hw| {
            hw.fail_all(ENODEV, true);
        });
    }
}

impl WorkItem for Gpu {
    type Pointer = Arc<Gpu>;

    /// The recovery work: acts on a crash first (a reboot covers a halt too), else on a halt.
    fn run(this: Arc<Gpu>) {
        let _guard = this.recovery.serialise();
        if this.recovery.apply(Event::RebootStarted).is_some() {
            dev_err!(
                this.dev(),
                "recovering from a firmware crash: reset and reboot\n"
            );
            match this.recover_crash() {
                Ok(()) => {
                    this.recovery.apply(Event::Rebooted);
                }
                Err(e) => {
                    dev_err!(
                        this.dev(),
                        "firmware did not come back ({:?}); device lost\n",
                        e
                    );
                    this.lose();
                }
            }
            return;
        }
        if this.recovery.apply(Event::ResumeStarted).is_some() {
            match this.recover_halt() {
                Ok(()) => {
                    this.recovery.apply(Event::Resumed);
                }
                Err(e) => {
                    dev_err!(this.dev(), "recovery failed ({:?}); resetting\n", e);
                    this.recovery.apply(Event::Crash);
                    Gpu::schedule_recovery(&this);
                }
            }
        }
    }
}

#[cfg(CONFIG_DRM_VAGX_KUNIT_TEST)]
#[kernel::macros::kunit_tests(vagx_recovery)]
mod tests {
    use super::*;
    use DeviceState::*;

    const STATES: [DeviceState; 6] = [Running, Halted, Resuming, Crashed, Rebooting, Lost];
    const EVENTS: [Event; 7] = [
        Event::Halt,
        Event::Crash,
        Event::ResumeStarted,
        Event::Resumed,
        Event::RebootStarted,
        Event::Rebooted,
        Event::Lose,
    ];

    #[test]
    fn halt_and_crash_recoveries_end_running() {
        let mut s = Running;
        for e in [Event::Halt, Event::ResumeStarted, Event::Resumed] {
            s = next(s, e).unwrap();
        }
        assert_eq!(s, Running);
        for e in [Event::Crash, Event::RebootStarted, Event::Rebooted] {
            s = next(s, e).unwrap();
        }
        assert_eq!(s, Running);
    }

    #[test]
    fn lost_is_terminal_and_reachable_from_everywhere() {
        for s in STATES {
            assert_eq!(next(Lost, Event::Halt), None);
            if s != Lost {
                assert_eq!(next(s, Event::Lose), Some(Lost));
            }
        }
        for e in EVENTS {
            assert_eq!(next(Lost, e), None);
        }
    }

    #[test]
    fn a_crash_overtakes_a_halt_and_a_halt_never_overtakes_a_crash() {
        assert_eq!(next(Halted, Event::Crash), Some(Crashed));
        assert_eq!(next(Resuming, Event::Crash), Some(Crashed));
        assert_eq!(next(Rebooting, Event::Crash), Some(Crashed));
        assert_eq!(next(Crashed, Event::Halt), None);
        assert_eq!(next(Rebooting, Event::Halt), None);
        // A halt while resuming is recovered again after this one.
        assert_eq!(next(Resuming, Event::Halt), Some(Halted));
        // The work's steps apply only to the state they were started for.
        assert_eq!(next(Halted, Event::Resumed), None);
        assert_eq!(next(Crashed, Event::Rebooted), None);
        assert_eq!(next(Running, Event::ResumeStarted), None);
        assert_eq!(next(Running, Event::RebootStarted), None);
    }

    #[test]
    fn down_states_are_the_crash_states() {
        for s in STATES {
            assert_eq!(s.is_down(), matches!(s, Crashed | Rebooting));
            assert_eq!(s.needs_work(), matches!(s, Halted | Crashed));
        }
    }
}
