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

#[cfg(CONFIG_RUST_DRM_SCHED_KUNIT_TEST)]
#[macros::kunit_tests(rust_workqueue_owned)]
mod tests {
    use super::*;
    use crate::{
        impl_has_delayed_work, impl_has_work, new_delayed_work, new_spinlock, new_work,
        sync::Completion, workqueue::DelayedWork,
    };
    use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

    #[pin_data]
    struct Item {
        #[pin]
        work: Work<Item, 0>,
        #[pin]
        delayed: DelayedWork<Item, 1>,
        ran: AtomicUsize,
        _dropped: DropFlag,
        #[pin]
        gate: Completion,
        #[pin]
        started: Completion,
    }

    impl_has_work! { impl HasWork<Item, 0> for Item { self.work } }
    impl_has_delayed_work! { impl HasDelayedWork<Item, 1> for Item { self.delayed } }

    impl WorkItem<0> for Item {
        type Pointer = Arc<Item>;
        fn run(this: Arc<Item>) {
            this.started.complete_all();
            this.gate.wait_for_completion();
            this.ran.fetch_add(1, SeqCst);
        }
    }

    impl WorkItem<1> for Item {
        type Pointer = Arc<Item>;
        fn run(this: Arc<Item>) {
            this.ran.fetch_add(1, SeqCst);
        }
    }

    /// Sets its flag when dropped (with the item that holds it).
    struct DropFlag(Arc<AtomicBool>);

    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, SeqCst);
        }
    }

    fn item(dropped: &Arc<AtomicBool>) -> Result<Arc<Item>> {
        Arc::pin_init(
            pin_init!(Item {
                work <- new_work!("owned_test::work"),
                delayed <- new_delayed_work!("owned_test::delayed"),
                ran: AtomicUsize::new(0),
                _dropped: DropFlag(dropped.clone()),
                gate <- Completion::new(),
                started <- Completion::new(),
            }),
            GFP_KERNEL,
        )
    }

    #[test]
    fn ordered_queue_runs_in_order_and_drains_on_drop() -> Result {
        let q = OwnedQueue::new_ordered(c"rust-owned-test", QueueFlags::MEM_RECLAIM)?;
        let log = Arc::pin_init(
            new_spinlock!(KVec::<usize>::with_capacity(16, GFP_KERNEL)?),
            GFP_KERNEL,
        )?;
        for i in 0..16 {
            let log = log.clone();
            q.try_spawn(GFP_KERNEL, move || {
                // Within the capacity reserved above: does not allocate.
                let _ = log.lock().push(i, GFP_ATOMIC);
            })
            .map_err(|_| ENOMEM)?;
        }
        drop(q);
        let log = log.lock();
        assert_eq!(log.len(), 16);
        assert!(log.iter().enumerate().all(|(i, &v)| i == v));
        Ok(())
    }

    #[test]
    fn cancelling_delayed_work_releases_the_queued_reference() -> Result {
        let q = OwnedQueue::new_ordered(c"rust-owned-test", QueueFlags::NONE)?;
        let dropped = Arc::new(AtomicBool::new(false), GFP_KERNEL)?;
        let it = item(&dropped)?;
        assert!(!cancel_delayed_work_sync::<Item, 1>(&it));
        assert!(q
            .enqueue_delayed::<Arc<Item>, 1>(it.clone(), crate::time::msecs_to_jiffies(10_000))
            .is_ok());
        assert!(cancel_delayed_work_sync::<Item, 1>(&it));
        assert_eq!(it.ran.load(SeqCst), 0);
        // Ours was the last reference: the queue's was given back.
        drop(it);
        assert!(dropped.load(SeqCst));
        Ok(())
    }

    #[test]
    fn cancelling_pending_work_waits_and_never_runs_it() -> Result {
        let q = OwnedQueue::new_ordered(c"rust-owned-test", QueueFlags::NONE)?;
        let (d1, d2) = (
            Arc::new(AtomicBool::new(false), GFP_KERNEL)?,
            Arc::new(AtomicBool::new(false), GFP_KERNEL)?,
        );
        let (blocker, pending) = (item(&d1)?, item(&d2)?);
        assert!(q.enqueue::<Arc<Item>, 0>(blocker.clone()).is_ok());
        blocker.started.wait_for_completion();
        // The queue is ordered and busy: `pending` waits behind `blocker`.
        assert!(q.enqueue::<Arc<Item>, 0>(pending.clone()).is_ok());
        assert!(cancel_work_sync::<Item, 0>(&pending));
        blocker.gate.complete_all();
        // Not queued any more: nothing to cancel, and it waits for the running instance.
        assert!(!cancel_work_sync::<Item, 0>(&blocker));
        assert_eq!(blocker.ran.load(SeqCst), 1);
        drop(q);
        assert_eq!(pending.ran.load(SeqCst), 0);
        drop(pending);
        assert!(d2.load(SeqCst));
        Ok(())
    }
}
