// SPDX-License-Identifier: GPL-2.0

//! Registries: module-wide lists of shared objects that find each other.
//!
//! A driver whose instances must reach one another (the GPUs of one machine that wait for each
//! other's jobs, say) keeps them in a `static` [`Registry`]: an instance adds itself once it is
//! bound and removes itself when it is unbound, and any of them can look through the others.
//!
//! The registry holds at most `N` objects in place, so it allocates nothing: one that is empty
//! when its module is unloaded leaves nothing behind. Its mutex is initialised on first use, so
//! a `static` needs no set-up call in the module's init.
//!
//! ```text
//!   static GPUS: Registry<Gpu, 32> = Registry::new();
//!   probe:   GPUS.add(gpu.clone())?;          unbind:  drop(GPUS.remove(&gpu));
//!   lookup:  GPUS.find_map(|g| g.has(fence).then(|| g.clone()))
//! ```

use core::{
    marker::PhantomData,
    pin::Pin,
    sync::atomic::{
        AtomicU8,
        Ordering::{
            Acquire,
            Release, //
        },
    },
};

use crate::{
    prelude::*,
    static_lock_class,
    sync::{
        lock::{
            mutex::MutexBackend,
            GlobalGuard,
            GlobalLock,
            GlobalLockBackend, //
        },
        Arc,
        LockClassKey, //
    },
};

/// The lock's state: not initialised, being initialised, ready.
const UNINIT: u8 = 0;
const INITIALISING: u8 = 1;
const READY: u8 = 2;

/// The name of every registry's lock, in one static. Registries of all types share one
/// lockdep class (the key is a static of a generic function, of which there is one), and
/// lockdep wants one name per key: a literal would be copied into each crate that makes a
/// registry type, with its own address. Registries are never locked inside each other.
static NAME: [u8; 9] = *b"registry\0";

/// The global-lock backend of registries of `T`. Private: no `GlobalLockedBy` can be made for
/// it, so registries of one type sharing it give no access to each other's data.
struct Backend<T, const N: usize>(PhantomData<T>);

impl<T: Send + Sync + 'static, const N: usize> GlobalLockBackend for Backend<T, N> {
    // SAFETY: `NAME` ends with its only NUL byte.
    const NAME: &'static CStr = unsafe { CStr::from_bytes_with_nul_unchecked(&NAME) };
    type Item = [Option<Arc<T>>; N];
    type Backend = MutexBackend;

    fn get_lock_class() -> Pin<&'static LockClassKey> {
        static_lock_class!()
    }
}

/// A module-wide list of at most `N` shared objects; see the module documentation.
pub struct Registry<T: Send + Sync + 'static, const N: usize> {
    state: AtomicU8,
    lock: GlobalLock<Backend<T, N>>,
}

impl<T: Send + Sync + 'static, const N: usize> Registry<T, N> {
    /// An empty registry, for a `static`.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Self {
            state: AtomicU8::new(UNINIT),
            // SAFETY: `Self::locked` calls `init` exactly once, before any other use of the
            // lock (every use goes through it). The backend is private to this module, which
            // makes no `GlobalLockedBy` for it.
            lock: unsafe { GlobalLock::new([const { None }; N]) },
        }
    }

    /// Locks the list, initialising the lock on first use. Sleeps.
    fn locked(&'static self) -> GlobalGuard<Backend<T, N>> {
        if self.state.load(Acquire) != READY {
            match self
                .state
                .compare_exchange(UNINIT, INITIALISING, Acquire, Acquire)
            {
                Ok(_) => {
                    // SAFETY: only the one caller that moved `state` from `UNINIT` gets here,
                    // and no caller uses the lock before `state` is `READY`.
                    unsafe { self.lock.init() };
                    self.state.store(READY, Release);
                }
                Err(_) => {
                    // Another caller is initialising it: that takes a few instructions.
                    while self.state.load(Acquire) != READY {
                        core::hint::spin_loop();
                    }
                }
            }
        }
        self.lock.lock()
    }

    /// Adds `item`.
    ///
    /// # Errors
    ///
    /// `ENOSPC` if the registry holds `N` objects already.
    pub fn add(&'static self, item: Arc<T>) -> Result {
        let mut list = self.locked();
        let free = list.iter_mut().find(|e| e.is_none()).ok_or(ENOSPC)?;
        *free = Some(item);
        Ok(())
    }

    /// Removes `item` (the same object, not an equal one) and returns the registry's
    /// reference, for the caller to drop outside the registry's lock; `None` if it is not in
    /// the registry.
    pub fn remove(&'static self, item: &T) -> Option<Arc<T>> {
        let mut list = self.locked();
        list.iter_mut()
            .find(|e| e.as_deref().is_some_and(|x| core::ptr::eq(x, item)))
            .and_then(Option::take)
    }

    /// Calls `f` on the objects in the order they were added into free places, until it
    /// returns `Some`. `f` runs under the registry's mutex: it must not use the registry.
    pub fn find_map<R>(&'static self, f: impl FnMut(&Arc<T>) -> Option<R>) -> Option<R> {
        let list = self.locked();
        list.iter().flatten().find_map(f)
    }
}

#[cfg(CONFIG_RUST_DRM_SCHED_KUNIT_TEST)]
#[macros::kunit_tests(rust_registry)]
mod tests {
    use super::*;

    struct Item(u32);

    static TWO: Registry<Item, 2> = Registry::new();

    #[test]
    fn objects_are_found_until_removed_and_the_capacity_holds() -> Result {
        let (a, b, c) = (
            Arc::new(Item(1), GFP_KERNEL)?,
            Arc::new(Item(2), GFP_KERNEL)?,
            Arc::new(Item(3), GFP_KERNEL)?,
        );
        assert_eq!(TWO.find_map(|x| Some(x.0)), None);
        TWO.add(a.clone())?;
        TWO.add(b.clone())?;
        assert_eq!(TWO.add(c.clone()), Err(ENOSPC));
        assert_eq!(TWO.find_map(|x| (x.0 == 2).then_some(x.0)), Some(2));
        // Removal is by identity: an equal object that was never added is not found.
        let twin = Arc::new(Item(1), GFP_KERNEL)?;
        assert!(TWO.remove(&twin).is_none());
        let back = TWO.remove(&a).ok_or(EINVAL)?;
        assert!(Arc::ptr_eq(&back, &a));
        assert_eq!(TWO.find_map(|x| (x.0 == 1).then_some(())), None);
        // The freed place takes a new object.
        TWO.add(c.clone())?;
        assert_eq!(TWO.find_map(|x| (x.0 == 3).then_some(())), Some(()));
        drop((TWO.remove(&b), TWO.remove(&c)));
        assert_eq!(TWO.find_map(|x| Some(x.0)), None);
        Ok(())
    }
}
