// SPDX-License-Identifier: GPL-2.0

//! Reservation objects: the fences of a shared buffer's users, kept by usage under a wound/wait
//! mutex, so that work of other devices and drivers orders itself against them (implicit
//! synchronisation).
//!
//! C header: [`include/linux/dma-resv.h`](srctree/include/linux/dma-resv.h)
//!
//! A [`Resv`] is borrowed from the object that owns it (a GEM object, a dma-buf).
//! [`LockedSet::lock`] locks several of them together without deadlock, whatever order other
//! tasks lock them in (the wound/wait back-off), and reserves one fence slot on each, so that
//! adding the job's fence once it exists ([`LockedSet::add_fence`]) cannot fail.
//!
//! ```text
//!   lock every resv (ww) --EDEADLK--> unlock all, sleep on the contended one, start over
//!          |
//!   reserve a slot each --> read fences --> (job armed) --> add fence --> drop: unlock all
//! ```

use crate::{
    bindings,
    dma_fence::Fence,
    error::to_result,
    prelude::*,
    sync::aref::ARef,
    types::Opaque, //
};

/// A reservation object.
///
/// # Invariants
///
/// `self.0` is a valid, initialised `struct dma_resv` for the lifetime of the reference.
#[repr(transparent)]
pub struct Resv(Opaque<bindings::dma_resv>);

impl Resv {
    /// Borrows the reservation object at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` points to a valid, initialised `struct dma_resv` that stays so for `'a`.
    pub unsafe fn from_raw<'a>(ptr: *mut bindings::dma_resv) -> &'a Self {
        // SAFETY: `Resv` is transparent over `struct dma_resv`, valid for `'a` by the caller.
        unsafe { &*ptr.cast() }
    }

    /// The raw `struct dma_resv`.
    pub fn as_raw(&self) -> *mut bindings::dma_resv {
        self.0.get()
    }
}

/// What a fence in a reservation object stands for (`enum dma_resv_usage`). Each usage includes
/// the ones above it: asking for `Read` fences gives the writers' too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    /// Kernel memory management (moves, clears).
    Kernel,
    /// Writers: what a reader must wait for.
    Write,
    /// Readers: with `Write`, what a writer must wait for.
    Read,
    /// Tracked only, no implicit synchronisation.
    Bookkeep,
}

impl Usage {
    fn as_raw(self) -> bindings::dma_resv_usage {
        match self {
            Usage::Kernel => bindings::dma_resv_usage_DMA_RESV_USAGE_KERNEL,
            Usage::Write => bindings::dma_resv_usage_DMA_RESV_USAGE_WRITE,
            Usage::Read => bindings::dma_resv_usage_DMA_RESV_USAGE_READ,
            Usage::Bookkeep => bindings::dma_resv_usage_DMA_RESV_USAGE_BOOKKEEP,
        }
    }
}

/// Reservation objects locked together under one acquire context, one fence slot reserved
/// on each. Dropping the set unlocks them.
///
/// # Invariants
///
/// `ctx` is an initialised acquire context of the reservation class, done acquiring; every
/// object of `resvs` is locked under it, with one fence slot reserved.
pub struct LockedSet<'a> {
    // Boxed: each locked mutex points to its context, which must not move.
    ctx: KBox<Opaque<bindings::ww_acquire_ctx>>,
    resvs: KVec<&'a Resv>,
}

impl<'a> LockedSet<'a> {
    /// Locks `resvs` (interruptibly; an object given twice is locked once) and reserves one
    /// fence slot on each.
    ///
    /// # Errors
    ///
    /// `EINTR`/`ERESTARTSYS` if a signal came while waiting for a lock, `ENOMEM`.
    pub fn lock(resvs: impl IntoIterator<Item = &'a Resv>) -> Result<Self> {
        let mut unique = KVec::<&'a Resv>::new();
        for r in resvs {
            if !unique.iter().any(|u| core::ptr::eq(*u, r)) {
                unique.push(r, GFP_KERNEL)?;
            }
        }
        let ctx = KBox::new(Opaque::<bindings::ww_acquire_ctx>::uninit(), GFP_KERNEL)?;
        // SAFETY: `ctx` is allocated and never moves while the set lives.
        unsafe { bindings::dma_resv_acquire_init(ctx.get()) };
        let mut locked = 0;
        let mut slow: Option<usize> = None;
        let result = loop {
            // Lock in order; on a wound, back off and sleep on the contended lock first.
            let mut contended = None;
            let mut err = None;
            for (i, r) in unique.iter().enumerate() {
                if slow == Some(i) {
                    continue;
                }
                // SAFETY: `r` is valid for `'a`; `ctx` is initialised.
                let ret = unsafe { bindings::dma_resv_lock_interruptible(r.as_raw(), ctx.get()) };
                if ret == -(bindings::EDEADLK as i32) {
                    contended = Some(i);
                    break;
                }
                if ret != 0 {
                    err = Some(Error::from_errno(ret));
                    break;
                }
                locked = i + 1;
            }
            if contended.is_none() && err.is_none() {
                break Ok(());
            }
            // Unlock what this round took, and the slow-path lock.
            for (i, r) in unique.iter().enumerate().take(locked) {
                if slow != Some(i) {
                    // SAFETY: locked above in this round.
                    unsafe { bindings::dma_resv_unlock(r.as_raw()) };
                }
            }
            if let Some(s) = slow.take() {
                // SAFETY: locked by the slow path of the previous round.
                unsafe { bindings::dma_resv_unlock(unique[s].as_raw()) };
            }
            locked = 0;
            if let Some(e) = err {
                break Err(e);
            }
            let c = contended.unwrap_or(0);
            // SAFETY: as above; nothing of this context is locked now.
            let ret = unsafe {
                bindings::dma_resv_lock_slow_interruptible(unique[c].as_raw(), ctx.get())
            };
            if ret != 0 {
                break Err(Error::from_errno(ret));
            }
            slow = Some(c);
        };
        if let Err(e) = result {
            // SAFETY: nothing is locked under `ctx` any more.
            unsafe { bindings::ww_acquire_fini(ctx.get()) };
            return Err(e);
        }
        // SAFETY: every object is locked under `ctx`.
        unsafe { bindings::ww_acquire_done(ctx.get()) };
        let set = Self { ctx, resvs: unique };
        for r in set.resvs.iter() {
            // SAFETY: `r` is locked (the invariant, reservation to come); on failure, dropping
            // `set` unlocks everything.
            to_result(unsafe { bindings::dma_resv_reserve_fences(r.as_raw(), 1) })?;
        }
        Ok(set)
    }

    /// Appends the fences of `resv` (one of the set's) of `usage` and above to `out`.
    ///
    /// # Errors
    ///
    /// `EINVAL` if `resv` is not in the set, `ENOMEM`.
    pub fn fences(&self, resv: &Resv, usage: Usage, out: &mut KVec<ARef<Fence>>) -> Result {
        let r = self.find(resv)?;
        let mut count: u32 = 0;
        let mut array: *mut *mut bindings::dma_fence = core::ptr::null_mut();
        // SAFETY: `r` is locked (invariant); the call fills `count` and a new array of `count`
        // references, which we take over below.
        to_result(unsafe {
            bindings::dma_resv_get_fences(r.as_raw(), usage.as_raw(), &mut count, &mut array)
        })?;
        let mut result = Ok(());
        for i in 0..count as usize {
            // SAFETY: `array` holds `count` fence references, each taken over once here.
            let f =
                unsafe { ARef::from_raw(core::ptr::NonNull::new_unchecked(*array.add(i)).cast()) };
            if result.is_ok() {
                result = out.push(f, GFP_KERNEL).map_err(Error::from);
            }
        }
        // SAFETY: the array was made by `dma_resv_get_fences` with `kmalloc` (or is null).
        unsafe { bindings::kfree(array.cast()) };
        result
    }

    /// Adds `fence` to `resv` (one of the set's) as `usage`: it replaces an earlier fence of the
    /// same context, so a queue's fences do not pile up.
    ///
    /// # Errors
    ///
    /// `EINVAL` if `resv` is not in the set.
    pub fn add_fence(&self, resv: &Resv, fence: &Fence, usage: Usage) -> Result {
        let r = self.find(resv)?;
        // SAFETY: `r` is locked with a slot reserved (invariant); the call takes its own
        // reference to `fence`.
        unsafe { bindings::dma_resv_add_fence(r.as_raw(), fence.as_raw(), usage.as_raw()) };
        Ok(())
    }

    fn find(&self, resv: &Resv) -> Result<&'a Resv> {
        self.resvs
            .iter()
            .copied()
            .find(|r| core::ptr::eq(*r, resv))
            .ok_or(EINVAL)
    }
}

impl Drop for LockedSet<'_> {
    fn drop(&mut self) {
        for r in self.resvs.iter() {
            // SAFETY: locked under `ctx` (invariant).
            unsafe { bindings::dma_resv_unlock(r.as_raw()) };
        }
        // SAFETY: nothing is locked under `ctx` any more.
        unsafe { bindings::ww_acquire_fini(self.ctx.get()) };
    }
}

#[cfg(CONFIG_RUST_DMA_FENCE_KUNIT_TEST)]
#[macros::kunit_tests(rust_dma_resv)]
mod tests {
    use super::*;
    use crate::dma_fence::{FenceContext, PreparedFence};

    /// A reservation object of its own, finished on drop.
    struct Owned(KBox<Opaque<bindings::dma_resv>>);

    impl Owned {
        fn new() -> Result<Self> {
            let r = KBox::new(Opaque::<bindings::dma_resv>::uninit(), GFP_KERNEL)?;
            // SAFETY: `r` is allocated and does not move while initialised.
            unsafe { bindings::dma_resv_init(r.get()) };
            Ok(Self(r))
        }

        fn resv(&self) -> &Resv {
            // SAFETY: initialised in `new`, finished only in `drop`.
            unsafe { Resv::from_raw(self.0.get()) }
        }
    }

    impl Drop for Owned {
        fn drop(&mut self) {
            // SAFETY: initialised in `new`, unlocked (every set borrowing it is gone).
            unsafe { bindings::dma_resv_fini(self.0.get()) };
        }
    }

    #[test]
    fn a_readers_fence_is_seen_by_writers_only_a_writers_by_everyone() -> Result {
        let (a, b) = (Owned::new()?, Owned::new()?);
        let ctx = FenceContext::new(c"rust-dma-resv-test", c"test");
        let reader = ctx.init(PreparedFence::new(GFP_KERNEL)?, ());
        let writer = ctx.init(PreparedFence::new(GFP_KERNEL)?, ());
        {
            // `a` twice: locked once.
            let set = LockedSet::lock([a.resv(), b.resv(), a.resv()])?;
            set.add_fence(a.resv(), reader.fence(), Usage::Read)?;
            set.add_fence(b.resv(), writer.fence(), Usage::Write)?;
            let mut seen = KVec::new();
            set.fences(a.resv(), Usage::Write, &mut seen)?;
            // A reader's fence is not a writer's.
            assert_eq!(seen.len(), 0);
            set.fences(a.resv(), Usage::Read, &mut seen)?;
            assert_eq!(seen.len(), 1);
            assert_eq!(seen[0].as_raw(), reader.fence().as_raw());
            set.fences(b.resv(), Usage::Write, &mut seen)?;
            assert_eq!(seen.len(), 2);
            assert_eq!(seen[1].as_raw(), writer.fence().as_raw());
        }
        // Unlocked again: a second set takes both.
        let set = LockedSet::lock([b.resv(), a.resv()])?;
        let mut seen = KVec::new();
        set.fences(b.resv(), Usage::Read, &mut seen)?;
        assert_eq!(seen.len(), 1);
        reader.signal();
        writer.signal();
        Ok(())
    }

    #[test]
    fn an_object_outside_the_set_is_refused() -> Result {
        let (a, b) = (Owned::new()?, Owned::new()?);
        let set = LockedSet::lock([a.resv()])?;
        let mut seen = KVec::new();
        assert_eq!(set.fences(b.resv(), Usage::Read, &mut seen), Err(EINVAL));
        Ok(())
    }
}
