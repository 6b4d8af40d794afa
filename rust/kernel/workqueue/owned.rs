// SPDX-License-Identifier: GPL-2.0

//! Workqueues a driver allocates and owns, and cancelling work items.
//!
//! C header: [`include/linux/workqueue.h`](srctree/include/linux/workqueue.h)
//!
//! [`OwnedQueue`] wraps `alloc_ordered_workqueue()` / `destroy_workqueue()`: an ordered queue
//! runs one item at a time in queueing order, and with [`QueueFlags::MEM_RECLAIM`] it has a
//! rescuer thread, so work on it makes progress under memory pressure (required for anything
//! that signals dma_fences). Dropping the queue drains it: work still queued runs first.
//!
//! [`cancel_work_sync`] and [`cancel_delayed_work_sync`] take a queued `Arc` work item off its
//! queue and wait for a running instance to finish; the reference the queue held is released.

use crate::{
    bindings,
    prelude::*,
    sync::Arc,
    workqueue::{HasDelayedWork, HasWork, Queue, Work, WorkItem},
};
use core::{ops::Deref, ptr::NonNull};

/// Flags of an [`OwnedQueue`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueFlags(u32);

impl QueueFlags {
    /// No flags.
    pub const NONE: Self = Self(0);
    /// The queue may be used in memory reclaim (it gets a rescuer thread): `WQ_MEM_RECLAIM`.
    pub const MEM_RECLAIM: Self = Self(bindings::wq_flags_WQ_MEM_RECLAIM);
    /// Work items run at high priority: `WQ_HIGHPRI`.
    pub const HIGHPRI: Self = Self(bindings::wq_flags_WQ_HIGHPRI);
}

impl core::ops::BitOr for QueueFlags {
    type Output = Self;

    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

/// A workqueue owned by its creator and destroyed (after draining) when dropped.
///
/// # Invariants
///
/// `self.0` is a workqueue from `alloc_ordered_workqueue` that is destroyed only by `drop`.
pub struct OwnedQueue(NonNull<bindings::workqueue_struct>);

// SAFETY: workqueues may be used and destroyed from any thread.
unsafe impl Send for OwnedQueue {}
// SAFETY: every operation on a workqueue is thread-safe.
unsafe impl Sync for OwnedQueue {}

impl OwnedQueue {
    /// Allocates an ordered workqueue named `name` (copied).
    ///
    /// # Errors
    ///
    /// `ENOMEM`.
    pub fn new_ordered(name: &CStr, flags: QueueFlags) -> Result<Self> {
        // SAFETY: `name` is a valid string; the queue copies it.
        let wq = unsafe { bindings::alloc_ordered_workqueue(name.as_char_ptr(), flags.0) };
        // INVARIANT: a new ordered queue, destroyed only by `drop`.
        NonNull::new(wq).map(Self).ok_or(ENOMEM)
    }
}

impl Deref for OwnedQueue {
    type Target = Queue;

    fn deref(&self) -> &Queue {
        // SAFETY: by the invariant the queue lives until `drop`, which needs `&mut self`.
        unsafe { Queue::from_raw(self.0.as_ptr()) }
    }
}

impl Drop for OwnedQueue {
    fn drop(&mut self) {
        // SAFETY: by the invariant the queue is live and nobody else destroys it. Items on it
        // own what they point to (an `Arc` reference), so draining them is sound; a work item
        // must not drop the queue it runs on (that would wait for itself).
        unsafe { bindings::destroy_workqueue(self.0.as_ptr()) };
    }
}

/// The `work_struct` of the `Work<T, ID>` in `this`.
fn raw_work<T, const ID: u64>(this: &Arc<T>) -> *mut bindings::work_struct
where
    T: HasWork<T, ID>,
{
    // SAFETY: `this` points to a live `T`, so its `Work` field is valid.
    unsafe { Work::raw_get(T::raw_get_work(Arc::as_ptr(this).cast_mut())) }
}

/// Gives back the reference that a queue held on `this` while the item was queued.
///
/// # Safety
///
/// The item must have been queued through its `Arc` and taken off its queue without running.
unsafe fn release_queued_ref<T>(this: &Arc<T>) {
    // SAFETY: enqueueing leaked one reference with `Arc::into_raw` of this very pointer; the
    // caller guarantees that `run`, which would have reclaimed it, never will.
    drop(unsafe { Arc::from_raw(Arc::as_ptr(this)) });
}

/// Cancels the work item `ID` of `this` and waits for a running instance to finish. Returns
/// whether it was queued (and is now not).
///
/// Must not be called from the work item itself.
pub fn cancel_work_sync<T, const ID: u64>(this: &Arc<T>) -> bool
where
    T: WorkItem<ID, Pointer = Arc<T>> + HasWork<T, ID>,
{
    // SAFETY: the work struct is initialised (a `Work` can only be created initialised).
    let was_queued = unsafe { bindings::cancel_work_sync(raw_work::<T, ID>(this)) };
    if was_queued {
        // SAFETY: it was queued through its `Arc` (the only way `Arc<T>` items are queued) and
        // cancelling took it off without running it.
        unsafe { release_queued_ref(this) };
    }
    was_queued
}

/// Cancels the delayed work item `ID` of `this` (its timer or its queued work) and waits for a
/// running instance to finish. Returns whether it was pending.
///
/// Must not be called from the work item itself.
pub fn cancel_delayed_work_sync<T, const ID: u64>(this: &Arc<T>) -> bool
where
    T: WorkItem<ID, Pointer = Arc<T>> + HasDelayedWork<T, ID>,
{
    let work = raw_work::<T, ID>(this);
    // SAFETY: by `HasDelayedWork`, the work struct is the `work` field of a `delayed_work`.
    let dwork = unsafe { crate::container_of!(work, bindings::delayed_work, work) };
    // SAFETY: `dwork` is an initialised delayed work.
    let was_pending = unsafe { bindings::cancel_delayed_work_sync(dwork) };
    if was_pending {
        // SAFETY: as in `cancel_work_sync`.
        unsafe { release_queued_ref(this) };
    }
    was_pending
}
