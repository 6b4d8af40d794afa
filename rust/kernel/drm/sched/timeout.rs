// SPDX-License-Identifier: GPL-2.0

//! Timeouts (TDR): the head job on the hardware may run for [`SchedulerConfig::timeout`];
//! then the backend says whether it hung ([`TimeoutStatus`]). The handler runs on the
//! scheduler's ordered queue and holds the runner's right, so it never races with the worker.
//!
//! [`SchedulerConfig::timeout`]: super::SchedulerConfig::timeout

use super::{
    shared::{Runner, Shared},
    trace, Backend, Priority, TimeoutStatus,
};
use crate::{
    dma_fence::SignallingGuard,
    prelude::*,
    sync::Arc,
    time::{msecs_to_jiffies, Delta, Instant},
};

impl<B: Backend> Shared<B> {
    pub(crate) fn arm_timeout(this: &Arc<Self>, after: Option<Delta>) {
        if let Some(timeout) = this.config.timeout {
            let delay = after.unwrap_or(timeout);
            let jiffies = msecs_to_jiffies(delay.as_millis().max(1) as u32);
            let _ = this
                .wq
                .enqueue_delayed::<Arc<Self>, 1>(this.clone(), jiffies);
        }
    }

    /// The timeout handler.
    pub(crate) fn timeout(this: &Arc<Self>) {
        let Some(timeout) = this.config.timeout else {
            return;
        };
        let (head, since) = {
            let s = this.state.lock();
            if s.stopped {
                return;
            }
            match (s.in_flight.front(), s.head_since) {
                (Some(h), Some(t)) => (h.clone(), t),
                _ => return,
            }
        };
        let elapsed = since.elapsed();
        if elapsed < timeout {
            Self::arm_timeout(this, Some(timeout - elapsed));
            return;
        }
        if head.hw_done() {
            Self::kick(this);
            Self::arm_timeout(this, None);
            return;
        }
        let status = {
            let _running = this.run_lock.lock();
            let _runner = Runner::spin(this);
            let _signalling = SignallingGuard::new();
            this.backend.timed_out(&head.data)
        };
        trace::job_timeout(this.config.name, head.trace_id(), status as i32);
        match status {
            TimeoutStatus::NoHang => {
                this.state.lock().head_since = Some(Instant::now());
                Self::arm_timeout(this, None);
            }
            TimeoutStatus::Reset => {
                {
                    let mut s = this.state.lock();
                    let ban_limit = this.config.ban_limit;
                    if let Some(e) = s.entities.get_mut(head.entity).and_then(Option::as_mut) {
                        if e.priority != Priority::Kernel {
                            e.guilty += 1;
                            if ban_limit != 0 && e.guilty >= ban_limit {
                                e.banned = true;
                            }
                        }
                    }
                    s.head_since = Some(Instant::now());
                }
                Self::kick(this);
                Self::arm_timeout(this, None);
            }
            TimeoutStatus::NoDevice => {
                this.state.lock().stopped = true;
                // Jobs that never reached the device fail as the device did.
                this.cancel_all(false, ENODEV);
            }
        }
    }
}
