// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The peer fabric (ABI 1.4): the link between the vagx devices of one machine over which one
//! device's firmware sees another's stamp slots, as GPUs linked peer to peer see each other's
//! semaphores.
//!
//! A device attached to a [`Fabric`] has a port (`regs::FABRIC`) and an *epoch* that changes
//! whenever it is reset or a new device takes the port. Its stamp slots (stamps and failure
//! records, [`crate::deps`]) are shared with the fabric, which answers a peer wait entry of
//! another device with a [`WaitState`]: passed, failed, still pending, or lost because the device
//! named is not there in the epoch named (reset, crashed, failed to boot, detached).
//!
//! A device parked on a peer's slot is woken through its [`Waker`] when that peer publishes a
//! change (a stamp, a failure, a reset, a crash), so nothing polls: in QEMU the waker re-arms
//! the waiting device's timer on the virtual clock. The device also stays *woken* until it
//! next runs: its `next_deadline` reports it, so that a register access in between (which
//! re-arms or deletes the timer from `next_deadline`) cannot cancel the wake-up. Every change carries the peer's device
//! time, and a wait resolves no earlier than that: a device that catches up on an interval
//! does not see a change before it happened, and its firmware resolves the wait at the
//! producer's completion time.
//!
//! # Port lifecycle
//!
//! ```text
//!   empty --attach--> attached(epoch e) --reset--> attached(epoch e+1) --...
//!     ^                     |                               |
//!     +------detach---------+-------------------------------+
//! ```
//!
//! Every transition but attach wakes the devices that watch the port, whose waits then fail
//! with `DEP_CAUSE_PEER`.
//!
//! # Locking
//!
//! One lock for the port table, one per device's slots. The fabric never holds the table's
//! lock while it takes a device's, and a device does not hold its own slots' lock while it asks
//! about a peer, so no two locks are ever held in a cycle.

use std::sync::{Arc, Mutex, MutexGuard};

use vagx_abi::{
    queue::Peer,
    regs::{fabric_value, FABRIC_EPOCH_MASK, FABRIC_NO_PORT, FABRIC_PORTS},
};

use crate::deps::{StampSlots, WaitState};

/// How a device that waits is told that a peer it watches changed.
///
/// Called on the thread that drives the peer, with the peer's model borrowed: it may only
/// schedule the waiting device's run, never run it.
pub trait Waker: Send + Sync {
    /// Schedules a run of the waiting device at the current time.
    fn wake(&self);
}

/// A device's stamp slots, shared between the device and the fabric.
#[derive(Clone, Debug, Default)]
pub(crate) struct SharedSlots(Arc<Mutex<StampSlots>>);

impl SharedSlots {
    /// Locks the slots; a poisoned lock (a panic while held, only in tests) still gives them.
    pub(crate) fn lock(&self) -> MutexGuard<'_, StampSlots> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One attached device.
struct Port {
    slots: SharedSlots,
    epoch: u32,
    /// Crashed or failed to boot: its stamps no longer move.
    dead: bool,
    waker: Arc<dyn Waker>,
    /// Ports (bit n: port n) with a queue parked on this one's slots.
    watchers: u32,
    /// The device time of its last change.
    changed_at: u64,
    /// A peer it watches changed since it last ran: it must run (a deadline), whatever else
    /// happened to its timer since the waker re-armed it.
    woken: bool,
}

/// The port table.
struct Table {
    ports: Vec<Option<Port>>,
    /// The last epoch of each port, kept while it is empty: a new device at a port never
    /// reuses an epoch (until 2^24 of them wrap).
    epochs: Vec<u32>,
}

impl Table {
    /// A new epoch for `port`.
    fn next_epoch(&mut self, port: u32) -> u32 {
        let e = &mut self.epochs[index(port)];
        *e = e.wrapping_add(1) & FABRIC_EPOCH_MASK;
        *e
    }

    /// Takes the watchers of `port` to wake (after the table's lock is released), and marks
    /// them woken.
    fn take_watchers(&mut self, port: u32) -> Vec<Arc<dyn Waker>> {
        let watchers = self.ports[index(port)]
            .as_mut()
            .map_or(0, |p| std::mem::take(&mut p.watchers));
        (0..FABRIC_PORTS)
            .filter(|w| watchers & (1 << w) != 0)
            .filter_map(|w| {
                let p = self.ports[index(w)].as_mut()?;
                p.woken = true;
                Some(p.waker.clone())
            })
            .collect()
    }
}

/// The ports of one machine's fabric.
pub struct Fabric {
    table: Mutex<Table>,
}

impl std::fmt::Debug for Fabric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fabric").finish_non_exhaustive()
    }
}

/// A device's place on a fabric; dropping it detaches the device.
pub(crate) struct Attachment {
    fabric: Arc<Fabric>,
    port: u32,
}

impl std::fmt::Debug for Attachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachment")
            .field("port", &self.port)
            .finish()
    }
}

/// The index of `port` in the tables.
fn index(port: u32) -> usize {
    // CAST: a port is below `FABRIC_PORTS` (32), so this widens.
    port as usize
}

impl Fabric {
    /// An empty fabric of `FABRIC_PORTS` ports.
    pub fn new() -> Arc<Self> {
        let n = index(FABRIC_PORTS);
        Arc::new(Self {
            table: Mutex::new(Table {
                ports: (0..n).map(|_| None).collect(),
                epochs: vec![0; n],
            }),
        })
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Attaches a device with `slots` at the first free port; `None` if every port is taken.
    pub(crate) fn attach(
        self: &Arc<Self>,
        slots: SharedSlots,
        waker: Arc<dyn Waker>,
    ) -> Option<Attachment> {
        let mut t = self.table();
        let free = t.ports.iter().position(Option::is_none)?;
        // CAST: below `FABRIC_PORTS`.
        let port = free as u32;
        let epoch = t.next_epoch(port);
        t.ports[free] = Some(Port {
            slots,
            epoch,
            dead: false,
            waker,
            watchers: 0,
            changed_at: 0,
            woken: false,
        });
        Some(Attachment {
            fabric: self.clone(),
            port,
        })
    }

    /// Wakes what `take_watchers` returned.
    fn wake(wakers: Vec<Arc<dyn Waker>>) {
        for w in wakers {
            w.wake();
        }
    }

    /// What a wait of the device at port `me` on `slot` of `peer` passing `value` finds, and
    /// the peer's device time of the change that resolved it (0 for a peer that is gone); a
    /// pending wait makes `me` a watcher of `peer`.
    pub(crate) fn peer_wait(&self, me: u32, peer: Peer, slot: u32, value: u32) -> (WaitState, u64) {
        let (slots, at) = {
            let mut t = self.table();
            let Some(p) = t.ports.get_mut(index(peer.port)).and_then(Option::as_mut) else {
                return (WaitState::Lost, 0);
            };
            if p.epoch != peer.epoch || p.dead {
                return (WaitState::Lost, p.changed_at);
            }
            (p.slots.clone(), p.changed_at)
        };
        let state = slots.lock().wait_state(slot, value);
        if state == WaitState::Pending {
            // The peer cannot change between the look and this: both run on the thread that
            // drives the devices, which is this one.
            if let Some(p) = self
                .table()
                .ports
                .get_mut(index(peer.port))
                .and_then(Option::as_mut)
            {
                p.watchers |= 1 << me;
            }
        }
        (state, at)
    }
}

impl Attachment {
    /// The device's port.
    pub(crate) fn port(&self) -> u32 {
        self.port
    }

    /// What a wait of this device on `slot` of `peer` passing `value` finds, and when (see
    /// [`Fabric::peer_wait`]).
    pub(crate) fn peer_wait(&self, peer: Peer, slot: u32, value: u32) -> (WaitState, u64) {
        self.fabric.peer_wait(self.port, peer, slot, value)
    }

    /// Whether a peer this device watches changed since [`Attachment::take_woken`].
    pub(crate) fn is_woken(&self) -> bool {
        self.fabric.table().ports[index(self.port)]
            .as_ref()
            .is_some_and(|p| p.woken)
    }

    /// Clears the woken mark: the device runs now and looks at every wait.
    pub(crate) fn take_woken(&self) {
        if let Some(p) = self.fabric.table().ports[index(self.port)].as_mut() {
            p.woken = false;
        }
    }

    /// The device's `regs::FABRIC` value.
    pub(crate) fn register(&self) -> u32 {
        let epoch = self.fabric.table().ports[index(self.port)]
            .as_ref()
            .map_or(0, |p| p.epoch);
        fabric_value(self.port, epoch)
    }

    /// The device's slots changed, or whether it is dead did, at device time `now`: wake its
    /// watchers.
    pub(crate) fn publish(&self, dead: bool, now: u64) {
        let wakers = {
            let mut t = self.fabric.table();
            if let Some(p) = t.ports[index(self.port)].as_mut() {
                p.dead = dead;
                p.changed_at = now;
            }
            t.take_watchers(self.port)
        };
        Fabric::wake(wakers);
    }

    /// The device was reset at device time `now`: a new epoch, fresh `slots`; waits on the old
    /// epoch are lost.
    pub(crate) fn reset(&self, slots: SharedSlots, now: u64) {
        let wakers = {
            let mut t = self.fabric.table();
            let epoch = t.next_epoch(self.port);
            if let Some(p) = t.ports[index(self.port)].as_mut() {
                p.epoch = epoch;
                p.slots = slots;
                p.dead = false;
                p.changed_at = now;
            }
            t.take_watchers(self.port)
        };
        Fabric::wake(wakers);
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        let wakers = {
            let mut t = self.fabric.table();
            let wakers = t.take_watchers(self.port);
            t.ports[index(self.port)] = None;
            wakers
        };
        Fabric::wake(wakers);
    }
}

/// The `regs::FABRIC` value of a device on no fabric.
pub(crate) const NO_FABRIC: u32 = fabric_value(FABRIC_NO_PORT, 0);
