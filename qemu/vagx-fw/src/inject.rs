// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Fault injections (`DEBUG_INJECT`): what is armed, and the decisions it makes.
//!
//! [`Injections`] only holds state. Each place the firmware can misbehave asks it one question
//! and gets the answer back (hang this entry, fault that command, crash now, hold back or drop
//! this interrupt); the caller does the misbehaving.

use vagx_abi::regs;

/// Armed fault injections (`DEBUG_INJECT`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Injections {
    /// The next entry this queue starts hangs.
    pub hang_queue: Option<u32>,
    /// (queue, command index): that command of the queue's next entry faults.
    pub fault_at: Option<(u32, u32)>,
    /// The firmware crashes after this many more completed entries.
    pub crash_after: Option<u32>,
    /// Interrupt notifications still to drop.
    pub drop_irqs: u32,
    /// The next interrupt notification is held back this long (ns of device time).
    pub delay_irq: Option<u64>,
    /// A held-back notification is due at this device time.
    pub irq_due: Option<u64>,
    /// Boots still to go silent (`INJECT_SILENCE`'s `ARG0`): while not zero, an `INIT` after a
    /// reset takes one off and is never answered. Unlike everything else here, it survives a
    /// write to `RESET` (the boots it counts come after that reset).
    pub silent_boots: u32,
}

/// What arming an injection asks of the firmware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Armed {
    /// Nothing now: the injection waits for its occasion.
    Later,
    /// `INJECT_SILENCE`: the firmware falls silent at once.
    Silence,
}

/// Where a held-back interrupt notification stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeldIrq {
    /// None is held back.
    None,
    /// One is held back and not yet due.
    Waiting,
    /// One was held back and is due now; it is no longer held.
    Due,
}

impl Injections {
    /// Arms injection `what` (an `INJECT_*` value) with `DEBUG_ARG0` and `DEBUG_ARG1`; `None`
    /// if there is no such injection (nothing changes then).
    pub(crate) fn arm(&mut self, what: u32, [a0, a1]: [u32; 2]) -> Option<Armed> {
        match what {
            // A silence that has begun is not an armed injection: only a reset ends it.
            regs::INJECT_CLEAR => *self = Self::default(),
            regs::INJECT_HANG_QUEUE => self.hang_queue = Some(a0),
            regs::INJECT_FAULT_AT => self.fault_at = Some((a0, a1)),
            regs::INJECT_CRASH_AFTER => self.crash_after = Some(a0),
            regs::INJECT_DROP_IRQS => self.drop_irqs = a0,
            regs::INJECT_DELAY_IRQ => self.delay_irq = Some(u64::from(a0)),
            regs::INJECT_SILENCE => {
                self.silent_boots = a0;
                return Some(Armed::Silence);
            }
            _ => return None,
        }
        Some(Armed::Later)
    }

    /// What a device reset keeps: the boots still to go silent, nothing else.
    pub(crate) fn after_reset(&self) -> Self {
        Self {
            silent_boots: self.silent_boots,
            ..Self::default()
        }
    }

    /// Whether this boot goes silent; counts it off if so.
    pub(crate) fn take_silent_boot(&mut self) -> bool {
        if self.silent_boots == 0 {
            return false;
        }
        self.silent_boots -= 1;
        true
    }

    /// For the next entry of queue `queue` that runs commands: whether it hangs, and which of
    /// its commands faults. Each injection applies to one entry, so this disarms what it
    /// returns.
    pub(crate) fn take_for_entry(&mut self, queue: u32) -> (bool, Option<u32>) {
        let hang = self.hang_queue == Some(queue);
        if hang {
            self.hang_queue = None;
        }
        let fault_at = match self.fault_at {
            Some((q, command)) if q == queue => {
                self.fault_at = None;
                Some(command)
            }
            _ => None,
        };
        (hang, fault_at)
    }

    /// Counts a completed entry; `true` if the firmware must crash now.
    pub(crate) fn entry_completed(&mut self) -> bool {
        let Some(n) = self.crash_after.as_mut() else {
            return false;
        };
        *n = n.saturating_sub(1);
        if *n != 0 {
            return false;
        }
        self.crash_after = None;
        true
    }

    /// At device time `now`: where the held-back notification stands. A due one is released.
    pub(crate) fn release_held_irq(&mut self, now: u64) -> HeldIrq {
        match self.irq_due {
            None => HeldIrq::None,
            Some(due) if now < due => HeldIrq::Waiting,
            Some(_) => {
                self.irq_due = None;
                HeldIrq::Due
            }
        }
    }

    /// A notification requested at device time `since` is to be sent: `true` to send it,
    /// `false` if it is held back (until `since` plus the armed delay) or dropped.
    pub(crate) fn pass_irq(&mut self, since: u64) -> bool {
        if let Some(delay) = self.delay_irq.take() {
            self.irq_due = Some(since.saturating_add(delay));
            return false;
        }
        if self.drop_irqs > 0 {
            self.drop_irqs -= 1;
            return false;
        }
        true
    }

    /// Forgets a held-back notification (a silent firmware sends none).
    pub(crate) fn forget_held_irq(&mut self) {
        self.irq_due = None;
    }

    /// When the held-back notification is due, if it is still to come after `now`.
    pub(crate) fn held_irq_deadline(&self, now: u64) -> Option<u64> {
        self.irq_due.filter(|&t| t > now)
    }
}
