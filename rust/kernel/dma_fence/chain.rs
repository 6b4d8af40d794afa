// SPDX-License-Identifier: GPL-2.0

//! Fence chains: the nodes of a timeline (`struct dma_fence_chain`).
//!
//! C header: [`include/linux/dma-fence-chain.h`](srctree/include/linux/dma-fence-chain.h)
//!
//! A chain node is itself a fence. It wraps one fence (the point's payload) and points to the
//! previous node; it signals when its fence and every earlier node have signalled. Timeline
//! syncobjs keep their points as a chain.
//!
//! ```text
//!   PreparedChain::new()          init(prev, fence, seqno)
//!  ----------------------> Node ---------------------------> part of the timeline
//!   (allocates, may sleep)        (no allocation; takes both references)
//! ```
//!
//! Timeline rules of [`init`], as in C: when `seqno` is later than `prev`'s, the node continues
//! `prev`'s context; otherwise it starts a new context and its seqno is `prev`'s (it can only
//! be found by walking, never by `find_seqno` at a later point).

use crate::{bindings, prelude::*, sync::aref::ARef};
use core::{mem::MaybeUninit, ptr::NonNull};

use super::Fence;

/// Memory for one chain node, allocated ahead of time.
pub struct PreparedChain {
    node: KBox<MaybeUninit<bindings::dma_fence_chain>>,
}

// SAFETY: the node is uninitialised memory owned only by this value; nothing refers to it.
unsafe impl Send for PreparedChain {}
// SAFETY: as above; `&PreparedChain` gives no access to the memory.
unsafe impl Sync for PreparedChain {}

impl PreparedChain {
    /// Allocates a chain node.
    ///
    /// # Errors
    ///
    /// `ENOMEM`.
    pub fn new(flags: crate::alloc::Flags) -> Result<Self> {
        Ok(Self {
            node: KBox::new_uninit(flags)?,
        })
    }

    /// Gives up the node's memory to C code that initialises it and frees it with `kfree_rcu`
    /// when the node's last reference goes (`dma_fence_chain_init`'s contract).
    pub(crate) fn into_raw(self) -> *mut bindings::dma_fence_chain {
        KBox::into_raw(self.node).cast()
    }
}

/// Makes `node` the timeline point `seqno` after `prev`, holding `fence`; returns the node.
///
/// Consumes the references to `prev` and `fence`. Does not allocate.
pub fn init(
    node: PreparedChain,
    prev: Option<ARef<Fence>>,
    fence: ARef<Fence>,
    seqno: u64,
) -> ARef<Fence> {
    let raw = node.into_raw();
    let prev = prev.map_or(core::ptr::null_mut(), |p| ARef::into_raw(p).as_ptr().cast());
    let fence = ARef::into_raw(fence).as_ptr().cast();
    // SAFETY: `raw` is an exclusive kmalloc'd allocation of a chain node (the C release frees
    // it with `kfree_rcu`); `prev` (or null) and `fence` are references we own, which
    // `dma_fence_chain_init` takes over.
    unsafe { bindings::dma_fence_chain_init(raw, prev, fence, seqno) };
    // SAFETY: the node's base fence is initialised with one reference, which we return.
    unsafe { ARef::from_raw(NonNull::new_unchecked(raw.cast())) }
}

/// Whether `fence` is a chain node.
pub fn is_chain(fence: &Fence) -> bool {
    // SAFETY: `fence` is valid; the helper only compares its ops.
    !unsafe { bindings::to_dma_fence_chain(fence.as_raw()) }.is_null()
}

/// The fence a chain node holds; `fence` itself if it is not a chain node.
pub fn contained(fence: &Fence) -> &Fence {
    // SAFETY: `fence` is valid and the node keeps its contained fence alive as long as it lives.
    unsafe { Fence::from_raw(bindings::dma_fence_chain_contained(fence.as_raw())) }
}

/// Steps from a chain node to the previous node that has not signalled yet, dropping the
/// signalled ones from the chain; `None` at the end. Consumes the reference to `fence`.
pub fn walk(fence: ARef<Fence>) -> Option<ARef<Fence>> {
    let raw = ARef::into_raw(fence).as_ptr().cast();
    // SAFETY: we own the reference to `raw`, which `dma_fence_chain_walk` consumes; it returns a
    // new reference or null.
    let next = unsafe { bindings::dma_fence_chain_walk(raw) };
    // SAFETY: a non-null result is a fence with a reference we now own.
    NonNull::new(next).map(|p| unsafe { ARef::from_raw(p.cast()) })
}

/// Finds the node of `fence`'s timeline that signals point `seqno`: the earliest node at or
/// after `seqno` that has not signalled, or `None` if that point has signalled.
///
/// # Errors
///
/// `EINVAL` if `fence` is not a chain node and `seqno` is not 0, or `seqno` is beyond the
/// timeline's last point (`fence`'s).
pub fn find_seqno(fence: ARef<Fence>, seqno: u64) -> Result<Option<ARef<Fence>>> {
    let mut raw: *mut bindings::dma_fence = ARef::into_raw(fence).as_ptr().cast();
    // SAFETY: `raw` holds a reference we own; the call replaces it with another reference (or
    // null) and drops the old one, in both the success and the error case.
    let ret = unsafe { bindings::dma_fence_chain_find_seqno(&mut raw, seqno) };
    // SAFETY: a non-null `raw` is a fence with a reference we own.
    let found = NonNull::new(raw).map(|p| unsafe { ARef::<Fence>::from_raw(p.cast()) });
    if ret < 0 {
        return Err(Error::from_errno(ret));
    }
    Ok(found)
}

#[cfg(CONFIG_RUST_DMA_FENCE_KUNIT_TEST)]
#[macros::kunit_tests(rust_dma_fence_chain)]
mod tests {
    use super::*;
    use crate::dma_fence::{DriverFence, FenceContext, PreparedFence};

    const N: usize = 64;
    crate::static_assert!(N.is_power_of_two());

    /// A timeline of `N` points: the driver fences and the chain nodes (points 1..=N).
    struct Timeline {
        fences: KVec<Option<DriverFence<()>>>,
        chains: KVec<ARef<Fence>>,
    }

    fn timeline(seqno: impl Fn(usize) -> u64) -> Result<Timeline> {
        timeline_of(N, seqno)
    }

    fn timeline_of(len: usize, seqno: impl Fn(usize) -> u64) -> Result<Timeline> {
        let ctx = FenceContext::new(c"rust-dma-fence-chain-test", c"chain");
        let mut fences = KVec::new();
        let mut chains: KVec<ARef<Fence>> = KVec::new();
        for i in 0..len {
            let f = ctx.init(PreparedFence::new(GFP_KERNEL)?, ());
            let prev = chains.last().cloned();
            let node = init(
                PreparedChain::new(GFP_KERNEL)?,
                prev,
                f.fence().into(),
                seqno(i),
            );
            fences.push(Some(f), GFP_KERNEL)?;
            chains.push(node, GFP_KERNEL)?;
        }
        Ok(Timeline { fences, chains })
    }

    fn signal(t: &mut Timeline, i: usize) {
        if let Some(f) = t.fences[i].take() {
            f.signal();
        }
    }

    #[test]
    fn sanitycheck() -> Result {
        let ctx = FenceContext::new(c"rust-dma-fence-chain-test", c"chain");
        let f = ctx.init(PreparedFence::new(GFP_KERNEL)?, ());
        let chain = init(PreparedChain::new(GFP_KERNEL)?, None, f.fence().into(), 1);
        assert!(is_chain(&chain));
        assert!(!is_chain(f.fence()));
        assert_eq!(contained(&chain).seqno(), f.fence().seqno());
        assert!(!chain.is_signaled());
        f.signal();
        assert!(chain.is_signaled());
        Ok(())
    }

    #[test]
    fn find_seqno_finds_every_point() -> Result {
        let mut t = timeline(|i| i as u64 + 1)?;
        // Point 0 of a chain is the chain itself (nothing to wait for).
        let head = t.chains[N - 1].clone();
        assert!(find_seqno(head.clone(), 0)?.is_some());
        for i in 0..N {
            let found = find_seqno(head.clone(), i as u64 + 1)?;
            let found = found.ok_or(EINVAL)?;
            assert_eq!(found.seqno(), i as u64 + 1);
            assert_eq!(found.as_raw(), t.chains[i].as_raw());
        }
        // Beyond the last point.
        assert_eq!(find_seqno(head, N as u64 + 1).err(), Some(EINVAL));
        for i in 0..N {
            signal(&mut t, i);
        }
        Ok(())
    }

    #[test]
    fn find_signaled() -> Result {
        let mut t = timeline(|i| i as u64 + 1)?;
        signal(&mut t, 0);
        // Point 1 has signalled; nothing to wait for.
        let found = find_seqno(t.chains[1].clone(), 1)?;
        assert!(found.is_none() || found.is_some_and(|f| f.as_raw() == t.chains[0].as_raw()));
        for i in 1..N {
            signal(&mut t, i);
        }
        Ok(())
    }

    #[test]
    fn find_out_of_order() -> Result {
        let mut t = timeline(|i| i as u64 + 1)?;
        // Signal point 3 before 1 and 2: point 3's chain node still waits for the earlier ones.
        signal(&mut t, 2);
        let found = find_seqno(t.chains[2].clone(), 2)?.ok_or(EINVAL)?;
        assert_eq!(found.as_raw(), t.chains[1].as_raw());
        assert!(!t.chains[2].is_signaled());
        for i in 0..N {
            signal(&mut t, i);
        }
        assert!(t.chains[2].is_signaled());
        Ok(())
    }

    #[test]
    fn find_gap() -> Result {
        // Points 2, 4, 6, ...: an odd point is found at the next even node.
        let mut t = timeline(|i| 2 * (i as u64 + 1))?;
        let head = t.chains[N - 1].clone();
        for i in 0..N {
            let found = find_seqno(head.clone(), 2 * i as u64 + 1)?.ok_or(EINVAL)?;
            assert_eq!(found.seqno(), 2 * (i as u64 + 1));
        }
        for i in 0..N {
            signal(&mut t, i);
        }
        Ok(())
    }

    /// Shared state of [`find_race`].
    #[pin_data]
    struct Race {
        #[pin]
        fences: crate::sync::SpinLock<KVec<Option<DriverFence<()>>>>,
        tail: ARef<Fence>,
        len: u64,
        stop: core::sync::atomic::AtomicBool,
        errors: core::sync::atomic::AtomicUsize,
        cycles: core::sync::atomic::AtomicUsize,
    }

    impl Race {
        /// One finder: look up random points of the timeline and signal random fences, as
        /// st-dma-fence-chain.c's `__find_race` does, until told to stop.
        fn find(&self, mut rng: u64) {
            use core::sync::atomic::Ordering::Relaxed;
            let mut next = move || {
                // xorshift64: cheap and good enough to spread the lookups.
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            while !self.stop.load(Relaxed) {
                let seqno = 1 + next() % self.len;
                match find_seqno(self.tail.clone(), seqno) {
                    Err(_) => {
                        pr_err!("find_race: no point {seqno}\n");
                        self.errors.fetch_add(1, Relaxed);
                    }
                    // Signalled already: nothing to wait for.
                    Ok(None) => {}
                    Ok(Some(found)) => {
                        // An earlier node is found only when the point's own fence has
                        // signalled and the walk dropped its node (a fence is taken out of the
                        // table before it is signalled).
                        if found.seqno() < seqno
                            && self.fences.lock()[(seqno - 1) as usize].is_some()
                        {
                            pr_err!("find_race: point {seqno} found at {}\n", found.seqno());
                            self.errors.fetch_add(1, Relaxed);
                        } else if found.seqno() == seqno && find_seqno(found, seqno).is_err() {
                            // A node must find itself.
                            pr_err!("find_race: point {seqno} did not find itself\n");
                            self.errors.fetch_add(1, Relaxed);
                        }
                    }
                }
                // The last point is never signalled here, so lookups keep walking.
                let i = (next() % (self.len - 1)) as usize;
                let fence = self.fences.lock()[i].take();
                if let Some(f) = fence {
                    f.signal();
                }
                self.cycles.fetch_add(1, Relaxed);
            }
        }
    }

    #[test]
    fn find_race() -> Result {
        use crate::{
            new_spinlock,
            sync::{Arc, Completion},
            time::{delay::fsleep, Delta},
            workqueue,
        };
        use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
        const LEN: usize = 4096;
        const FINDERS: usize = 2;

        let Timeline { fences, chains } = timeline_of(LEN, |i| i as u64 + 1)?;
        let tail = chains[LEN - 1].clone();
        let race = Arc::pin_init(
            pin_init!(Race {
                fences <- new_spinlock!(fences),
                tail,
                len: LEN as u64,
                stop: AtomicBool::new(false),
                errors: AtomicUsize::new(0),
                cycles: AtomicUsize::new(0),
            }),
            GFP_KERNEL,
        )?;
        let done = Arc::pin_init(Completion::new(), GFP_KERNEL)?;
        let left = Arc::new(AtomicUsize::new(FINDERS), GFP_KERNEL)?;
        for k in 0..FINDERS {
            let (race, done, left) = (race.clone(), done.clone(), left.clone());
            workqueue::system_unbound()
                .try_spawn(GFP_KERNEL, move || {
                    race.find(0x9e37_79b9_7f4a_7c15 ^ (k as u64 + 1));
                    if left.fetch_sub(1, SeqCst) == 1 {
                        done.complete_all();
                    }
                })
                .map_err(|_| ENOMEM)?;
        }
        // The C test races for 5 s; one second is thousands of cycles even under TCG.
        fsleep(Delta::from_millis(1000));
        race.stop.store(true, SeqCst);
        done.wait_for_completion();
        let mut fences = race.fences.lock();
        let signalled = fences.iter().filter(|f| f.is_none()).count();
        pr_info!(
            "find_race: {} cycles, {}/{} fences signalled\n",
            race.cycles.load(SeqCst),
            signalled,
            LEN
        );
        for f in fences.iter_mut() {
            if let Some(f) = f.take() {
                f.signal();
            }
        }
        drop(fences);
        assert_eq!(race.errors.load(SeqCst), 0);
        assert!(race.cycles.load(SeqCst) > 0);
        assert!(chains[LEN - 1].is_signaled());
        Ok(())
    }

    #[test]
    fn signal_forward() -> Result {
        let mut t = timeline(|i| i as u64 + 1)?;
        for i in 0..N {
            signal(&mut t, i);
            assert!(t.chains[i].is_signaled());
            if i + 1 < N {
                assert!(!t.chains[i + 1].is_signaled());
            }
        }
        Ok(())
    }

    #[test]
    fn signal_backward() -> Result {
        let mut t = timeline(|i| i as u64 + 1)?;
        for i in (1..N).rev() {
            signal(&mut t, i);
            assert!(!t.chains[i].is_signaled());
        }
        signal(&mut t, 0);
        for c in t.chains.iter() {
            assert!(c.is_signaled());
        }
        Ok(())
    }

    /// Waits for the last point on another CPU while `order` signals the points; checks that
    /// the wait ends exactly when all have signalled.
    fn wait_while_signalling(order: impl Fn(usize) -> usize) -> Result {
        use crate::{sync::Arc, sync::Completion, workqueue};

        let mut t = timeline(|i| i as u64 + 1)?;
        let tail = t.chains[N - 1].clone();
        let done = Arc::pin_init(Completion::new(), GFP_KERNEL)?;
        let done2 = done.clone();
        let waited = Arc::new(core::sync::atomic::AtomicBool::new(false), GFP_KERNEL)?;
        let waited2 = waited.clone();
        workqueue::system_highpri()
            .try_spawn(GFP_KERNEL, move || {
                let ok = tail.wait(None, crate::dma_fence::Interruptible::No).is_ok();
                waited2.store(
                    ok && tail.is_signaled(),
                    core::sync::atomic::Ordering::SeqCst,
                );
                done2.complete_all();
            })
            .map_err(|_| ENOMEM)?;
        for i in 0..N {
            signal(&mut t, order(i));
        }
        done.wait_for_completion();
        assert!(waited.load(core::sync::atomic::Ordering::SeqCst));
        Ok(())
    }

    #[test]
    fn wait_forward() -> Result {
        wait_while_signalling(|i| i)
    }

    #[test]
    fn wait_backward() -> Result {
        wait_while_signalling(|i| N - 1 - i)
    }

    #[test]
    fn wait_random() -> Result {
        // A fixed permutation of 0..N: an odd multiplier modulo a power of two (N is one).
        wait_while_signalling(|i| (i * 37 + 11) % N)
    }

    #[test]
    fn an_earlier_seqno_starts_a_new_context() -> Result {
        let ctx = FenceContext::new(c"rust-dma-fence-chain-test", c"chain");
        let (a, b) = (
            ctx.init(PreparedFence::new(GFP_KERNEL)?, ()),
            ctx.init(PreparedFence::new(GFP_KERNEL)?, ()),
        );
        let first = init(PreparedChain::new(GFP_KERNEL)?, None, a.fence().into(), 10);
        let later = init(
            PreparedChain::new(GFP_KERNEL)?,
            Some(first.clone()),
            b.fence().into(),
            5,
        );
        assert_ne!(later.context(), first.context());
        assert_eq!(later.seqno(), 10);
        a.signal();
        b.signal();
        let walked = walk(later);
        assert!(walked.is_none());
        Ok(())
    }
}
