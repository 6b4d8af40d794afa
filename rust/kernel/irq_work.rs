// SPDX-License-Identifier: GPL-2.0

//! `irq_work`: run a function in hard-interrupt context, soon, on the CPU that queued it.
//!
//! C header: [`include/linux/irq_work.h`](srctree/include/linux/irq_work.h)
//!
//! The tool for leaving a context where something may not be done, without waking a thread:
//! a fence callback, which runs under the fence's lock, queues an `irq_work` to do what would
//! nest another fence's lock (`dma_fence_array` does the same). Like [`crate::workqueue`], an
//! item is queued through an [`Arc`] whose reference the queue holds until the item has run,
//! so the item cannot be freed while it is pending.
//!
//! ```ignore
//! #[pin_data]
//! struct Deferred {
//!     #[pin]
//!     work: IrqWork<Deferred>,
//! }
//! kernel::impl_has_irq_work! { impl HasIrqWork for Deferred { self.work } }
//! impl IrqWorkItem for Deferred {
//!     fn run(this: Arc<Self>) { /* hard-interrupt context: no sleeping */ }
//! }
//! let d = Arc::pin_init(pin_init!(Deferred { work <- IrqWork::new() }), GFP_KERNEL)?;
//! let _ = IrqWork::queue(d.clone());
//! ```

use crate::{bindings, prelude::*, sync::Arc, types::Opaque};
use core::marker::PhantomData;

/// What an [`IrqWork`] runs.
pub trait IrqWorkItem: HasIrqWork + Send + Sync {
    /// Runs in hard-interrupt context, with interrupts disabled: it must not sleep. It gets the
    /// reference [`IrqWork::queue`] was given; dropping it may be the last reference, so an
    /// item whose destructor may sleep must hand such a last reference elsewhere.
    fn run(this: Arc<Self>);
}

/// An item that contains an [`IrqWork`] for itself (implement with [`impl_has_irq_work!`]).
///
/// # Safety
///
/// `raw_get_irq_work` and `irq_work_container_of` must convert between a pointer to `Self` and
/// a pointer to its `IrqWork<Self>` field, as the macro's implementation does.
pub unsafe trait HasIrqWork: Sized {
    /// A pointer to the `IrqWork` field of `*ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a valid `Self`.
    unsafe fn raw_get_irq_work(ptr: *mut Self) -> *mut IrqWork<Self>;

    /// The `Self` whose `IrqWork` field `ptr` points to.
    ///
    /// # Safety
    ///
    /// `ptr` must point to the `IrqWork` field of a valid `Self`.
    unsafe fn irq_work_container_of(ptr: *mut IrqWork<Self>) -> *mut Self;
}

/// Implements [`HasIrqWork`] for a type with an [`IrqWork`] field.
#[macro_export]
macro_rules! impl_has_irq_work {
    ($(impl$({$($generics:tt)*})? HasIrqWork for $self:ty { self.$field:ident })*) => {$(
        // SAFETY: `raw_get_irq_work` compiles only if the field is an `IrqWork<Self>`, and
        // `container_of!` inverts it.
        unsafe impl$(<$($generics)+>)? $crate::irq_work::HasIrqWork for $self {
            #[inline]
            unsafe fn raw_get_irq_work(ptr: *mut Self) -> *mut $crate::irq_work::IrqWork<Self> {
                // SAFETY: The caller promises that `ptr` points to a valid `Self`.
                unsafe { ::core::ptr::addr_of_mut!((*ptr).$field) }
            }

            #[inline]
            unsafe fn irq_work_container_of(
                ptr: *mut $crate::irq_work::IrqWork<Self>,
            ) -> *mut Self {
                // SAFETY: The caller promises that `ptr` points to this field of a `Self`.
                unsafe { $crate::container_of!(ptr, Self, $field) }
            }
        }
    )*};
}
pub use impl_has_irq_work;

/// A C `struct irq_work` that runs `T::run`.
///
/// # Invariants
///
/// `work` was initialised with [`IrqWork::run_raw::<T>`] as its function; while queued it holds
/// a reference to the `Arc<T>` it is a field of, leaked by [`IrqWork::queue`].
#[pin_data]
#[repr(transparent)]
pub struct IrqWork<T> {
    #[pin]
    work: Opaque<bindings::irq_work>,
    _item: PhantomData<T>,
}

// SAFETY: The C structure is only touched through the `irq_work` API, which synchronises.
unsafe impl<T> Send for IrqWork<T> {}
// SAFETY: As above.
unsafe impl<T> Sync for IrqWork<T> {}

impl<T: IrqWorkItem> IrqWork<T> {
    /// A new, idle work.
    pub fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `init_irq_work` initialises the whole structure; `run_raw::<T>` is the
            // function this type's invariant names.
            work <- Opaque::ffi_init(|slot| unsafe {
                bindings::init_irq_work(slot, Some(Self::run_raw))
            }),
            _item: PhantomData,
        })
    }

    /// Queues `this` to run on this CPU in hard-interrupt context. If it is already queued
    /// (it will run once for both), the reference comes back.
    pub fn queue(this: Arc<T>) -> Result<(), Arc<T>> {
        let ptr = Arc::into_raw(this).cast_mut();
        // SAFETY: `ptr` points to a live `T` (the reference just leaked keeps it alive).
        let work = unsafe { T::raw_get_irq_work(ptr) };
        // SAFETY: `work` was initialised by `new` (it is a field of a pinned, live `T`).
        if unsafe { bindings::irq_work_queue((*work).work.get()) } {
            // INVARIANT: queued with the leaked reference, which `run_raw` takes back.
            Ok(())
        } else {
            // SAFETY: not queued by this call: the reference is still ours to take back.
            Err(unsafe { Arc::from_raw(ptr) })
        }
    }

    /// The C function of the work.
    ///
    /// # Safety
    ///
    /// Called by the `irq_work` code for a work queued by [`IrqWork::queue`].
    unsafe extern "C" fn run_raw(work: *mut bindings::irq_work) {
        let work = work.cast::<IrqWork<T>>();
        // SAFETY: `IrqWork` is `repr(transparent)` over the C structure, which is a field of a
        // `T` by the `HasIrqWork` contract.
        let item = unsafe { T::irq_work_container_of(work) };
        // SAFETY: By the type invariant the queue held a reference leaked by `queue`.
        let item = unsafe { Arc::from_raw(item) };
        T::run(item);
    }
}

// Part of the GPU scheduler's suites, its only user.
#[cfg(CONFIG_RUST_DRM_SCHED_KUNIT_TEST)]
#[macros::kunit_tests(rust_irq_work)]
mod tests {
    use super::*;
    use crate::{
        sync::atomic::{Atomic, Relaxed},
        time::{delay::fsleep, Delta},
    };

    #[pin_data]
    struct Counter {
        #[pin]
        work: IrqWork<Counter>,
        runs: Atomic<u32>,
    }

    impl_has_irq_work! { impl HasIrqWork for Counter { self.work } }

    impl IrqWorkItem for Counter {
        fn run(this: Arc<Self>) {
            this.runs.add(1, Relaxed);
        }
    }

    #[test]
    fn queued_work_runs_once_and_gives_back_its_reference() -> Result {
        let c = Arc::pin_init(
            pin_init!(Counter {
                work <- IrqWork::new(),
                runs: Atomic::new(0),
            }),
            GFP_KERNEL,
        )?;
        assert!(IrqWork::queue(c.clone()).is_ok());
        // Queued again: still pending (the reference comes back) or it runs a second time.
        if let Err(back) = IrqWork::queue(c.clone()) {
            drop(back);
        }
        for _ in 0..1000 {
            if c.runs.load(Relaxed) >= 1 {
                break;
            }
            fsleep(Delta::from_millis(1));
        }
        fsleep(Delta::from_millis(10));
        assert!(c.runs.load(Relaxed) >= 1);
        // The queue's reference came back to `run` and was dropped: only ours is left.
        assert!(Arc::into_unique_or_drop(c).is_some());
        Ok(())
    }
}
