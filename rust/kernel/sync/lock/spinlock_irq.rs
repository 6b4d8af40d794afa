// SPDX-License-Identifier: GPL-2.0

//! A spinlock that disables local interrupts while held.
//!
//! C header: [`include/linux/spinlock.h`](srctree/include/linux/spinlock.h)
//!
//! Data shared with a hard-interrupt handler or an hrtimer callback (for example state touched by
//! a fence callback, which may run in interrupt context) must be locked with interrupts off in
//! process context, or an interrupt on the same CPU deadlocks on it. `SpinLockIrq` uses
//! `spin_lock_irqsave`/`spin_unlock_irqrestore`, so it may be taken in any context.

/// Creates a [`SpinLockIrq`] initialiser with the given name and a new lock class.
#[macro_export]
macro_rules! new_spinlock_irq {
    ($inner:expr $(, $name:literal)? $(,)?) => {
        $crate::sync::SpinLockIrq::new(
            $inner, $crate::optional_name!($($name)?), $crate::static_lock_class!())
    };
}
pub use new_spinlock_irq;

/// A spinlock taken with local interrupts disabled (saved and restored).
pub type SpinLockIrq<T> = super::Lock<T, SpinLockIrqBackend>;

/// A guard of a [`SpinLockIrq`].
pub type SpinLockIrqGuard<'a, T> = super::Guard<'a, T, SpinLockIrqBackend>;

/// The kernel `spinlock_t` with interrupts disabled while held.
pub struct SpinLockIrqBackend;

// SAFETY: `spinlock_t` ensures mutual exclusion; the saved interrupt flags travel in the guard
// state from `lock` to `unlock` of the same acquisition.
unsafe impl super::Backend for SpinLockIrqBackend {
    type State = bindings::spinlock_t;
    type GuardState = crate::ffi::c_ulong;

    unsafe fn init(
        ptr: *mut Self::State,
        name: *const crate::ffi::c_char,
        key: *mut bindings::lock_class_key,
    ) {
        // SAFETY: the caller guarantees `ptr` is valid for writes and `name`/`key` live forever.
        unsafe { bindings::__spin_lock_init(ptr, name, key) }
    }

    unsafe fn lock(ptr: *mut Self::State) -> Self::GuardState {
        // SAFETY: the caller guarantees `ptr` is an initialised spinlock.
        unsafe { bindings::spin_lock_irqsave(ptr) }
    }

    unsafe fn unlock(ptr: *mut Self::State, flags: &Self::GuardState) {
        // SAFETY: the caller owns the lock, taken by `lock`, which returned `flags`.
        unsafe { bindings::spin_unlock_irqrestore(ptr, *flags) }
    }

    unsafe fn try_lock(ptr: *mut Self::State) -> Option<Self::GuardState> {
        let mut flags = 0;
        // SAFETY: the caller guarantees `ptr` is an initialised spinlock.
        (unsafe { bindings::spin_trylock_irqsave(ptr, &mut flags) }).then_some(flags)
    }

    unsafe fn assert_is_held(ptr: *mut Self::State) {
        // SAFETY: the caller guarantees `ptr` is an initialised spinlock.
        unsafe { bindings::spin_assert_is_held(ptr) }
    }
}

use crate::bindings;

#[cfg(CONFIG_RUST_DRM_SCHED_KUNIT_TEST)]
#[macros::kunit_tests(rust_spinlock_irq)]
mod tests {
    use crate::{
        impl_has_hr_timer,
        prelude::*,
        sync::{Arc, ArcBorrow, SpinLockIrq},
        time::{
            hrtimer::{
                HrTimer, HrTimerCallback, HrTimerCallbackContext, HrTimerPointer, HrTimerRestart,
                RelativeMode,
            },
            Delta, Monotonic,
        },
    };

    const TICKS: u64 = 200;

    #[pin_data]
    struct Shared {
        #[pin]
        timer: HrTimer<Shared>,
        #[pin]
        count: SpinLockIrq<(u64, u64)>,
    }

    impl_has_hr_timer! {
        impl HasHrTimer<Self> for Shared { mode: RelativeMode<Monotonic>, field: self.timer }
    }

    impl HrTimerCallback for Shared {
        type Pointer<'a> = Arc<Self>;

        fn run(
            this: ArcBorrow<'_, Self>,
            mut ctx: HrTimerCallbackContext<'_, Self>,
        ) -> HrTimerRestart {
            // Hard interrupt context: the lock must be taken with interrupts off elsewhere.
            let mut c = this.count.lock();
            c.0 += 1;
            if c.0 == TICKS {
                HrTimerRestart::NoRestart
            } else {
                ctx.forward_now(Delta::from_micros(50));
                HrTimerRestart::Restart
            }
        }
    }

    #[test]
    fn shared_with_an_hrtimer_callback() -> Result {
        let shared = Arc::pin_init(
            pin_init!(Shared {
                timer <- HrTimer::new(),
                count <- crate::new_spinlock_irq!((0, 0)),
            }),
            GFP_KERNEL,
        )?;
        let handle = shared.clone().start(Delta::from_micros(50));
        let mut rounds = 0u64;
        while shared.count.lock().0 < TICKS {
            shared.count.lock().1 += 1;
            rounds += 1;
            if rounds % 1024 == 0 {
                crate::time::delay::fsleep(Delta::from_micros(100));
            }
        }
        drop(handle);
        let c = shared.count.lock();
        assert_eq!(c.0, TICKS);
        assert_eq!(c.1, rounds);
        // Lockdep (on in the test kernel) would report this lock if it were not IRQ-safe.
        assert!(shared.count.try_lock().is_none());
        Ok(())
    }
}
