// SPDX-License-Identifier: GPL-2.0

//! DMA fences: completion signals shared between drivers and userspace.
//!
//! C header: [`include/linux/dma-fence.h`](srctree/include/linux/dma-fence.h)
//!
//! # Vocabulary
//!
//! - A **fence** ([`Fence`]) is a one-shot completion signal with an optional error, ordered on
//!   a timeline (its *context*) by a sequence number. Anyone holding a reference may wait on it
//!   or register a callback; [`ARef<Fence>`] holds such a reference to any driver's fence.
//! - A **driver fence** ([`DriverFence`]) is a fence this driver created and will signal. It
//!   owns the right to signal, which [`DriverFence::signal`] and
//!   [`DriverFence::signal_with_error`] consume: a fence is signalled once.
//! - A **fence context** ([`FenceContext`]) is one timeline: a context number and the next
//!   sequence number.
//!
//! # Lifecycle of a driver fence
//!
//! ```text
//!   PreparedFence::new()        FenceContext::init()          signal() / drop
//!  ----------------------> Prepared ------------------> Unsignalled ------------> Signalled
//!   (allocates, may sleep)   (no memory, no seqno)   (no allocation; seqno fixed)   (error or 0)
//! ```
//!
//! Allocation happens only in [`PreparedFence::new`], ahead of time; initialising and
//! signalling never allocate. Dropping an unsignalled [`DriverFence`] signals it with
//! `ECANCELED`, so a forgotten fence never blocks its waiters forever. The memory is freed
//! after an RCU grace period once the last reference is gone, as the C side requires.
//!
//! # The signalling path
//!
//! Code that a fence's signalling depends on must not allocate with `GFP_KERNEL` (shrinkers
//! wait on fences) nor take locks held while waiting on fences. [`SignallingGuard`] marks such
//! a section so that lockdep reports violations.

pub mod chain;

use crate::{
    bindings,
    prelude::*,
    sync::aref::{ARef, AlwaysRefCounted},
    time::{Delta, Instant, Monotonic},
    types::Opaque,
};
use core::{
    cell::UnsafeCell,
    marker::PhantomData,
    mem::ManuallyDrop,
    ptr::NonNull,
    sync::atomic::{AtomicI64, AtomicU64, Ordering},
};

/// `ECANCELED`, the error of a fence dropped unsignalled (`kernel::error::code` lacks it).
pub fn ecanceled() -> Error {
    // CAST: errno constants are small positive integers.
    Error::from_errno(-(bindings::ECANCELED as crate::ffi::c_int))
}

/// A reference-counted `struct dma_fence` of any driver.
///
/// # Invariants
///
/// The wrapped fence is initialised and its reference count is non-zero while a `&Fence`
/// exists.
#[repr(transparent)]
pub struct Fence(Opaque<bindings::dma_fence>);

// SAFETY: fences are designed to be shared and signalled across CPUs; every operation on them
// takes the fence's lock or uses atomics.
unsafe impl Send for Fence {}
// SAFETY: see above.
unsafe impl Sync for Fence {}

// SAFETY: `dma_fence_get`/`dma_fence_put` manage the fence's reference count, and the type
// invariant keeps the count non-zero while a reference exists.
unsafe impl AlwaysRefCounted for Fence {
    #[inline]
    fn inc_ref(&self) {
        // SAFETY: the existence of `&self` means the refcount is non-zero.
        unsafe { bindings::dma_fence_get(self.as_raw()) };
    }

    #[inline]
    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: the caller owns a reference; `Fence` has the layout of `struct dma_fence`.
        unsafe { bindings::dma_fence_put(obj.cast().as_ptr()) };
    }
}

/// Whether a wait may be interrupted by a signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interruptible {
    /// A pending signal ends the wait with `ERESTARTSYS`.
    Yes,
    /// Only completion or the timeout ends the wait.
    No,
}

impl Fence {
    /// Borrows a fence from a raw pointer.
    ///
    /// # Safety
    ///
    /// `ptr` points to an initialised `struct dma_fence` whose reference count stays non-zero
    /// for `'a`.
    pub unsafe fn from_raw<'a>(ptr: *mut bindings::dma_fence) -> &'a Self {
        // SAFETY: guaranteed by the caller; `Fence` is transparent over `struct dma_fence`.
        unsafe { &*ptr.cast() }
    }

    /// The raw `struct dma_fence`.
    pub fn as_raw(&self) -> *mut bindings::dma_fence {
        self.0.get()
    }

    /// The always-signalled stub fence.
    pub fn stub() -> ARef<Self> {
        // SAFETY: `dma_fence_get_stub` returns a new reference to a static, initialised fence.
        let raw = unsafe { bindings::dma_fence_get_stub() };
        // SAFETY: `raw` is valid and we own the reference it came with.
        unsafe { ARef::from_raw(NonNull::new_unchecked(raw.cast())) }
    }

    /// Whether the fence has signalled (this may signal it if its driver can tell).
    pub fn is_signaled(&self) -> bool {
        // SAFETY: by the type invariant the fence is valid.
        unsafe { bindings::dma_fence_is_signaled(self.as_raw()) }
    }

    /// When the fence signalled (on the monotonic clock), or `None` while it has not.
    pub fn timestamp(&self) -> Option<Instant<Monotonic>> {
        if !self.is_signaled() {
            return None;
        }
        // SAFETY: by the type invariant the fence is valid, and it has signalled (checked
        // above), which `dma_fence_timestamp` requires; it returns a `CLOCK_MONOTONIC` time.
        let ns = unsafe { bindings::dma_fence_timestamp(self.as_raw()) };
        // SAFETY: `ns` is a `CLOCK_MONOTONIC` time (the fence's signalling time).
        Some(unsafe { Instant::from_ktime(ns) })
    }

    /// The fence's state: `Ok(false)` pending, `Ok(true)` signalled, `Err` signalled with that
    /// error.
    ///
    /// # Errors
    ///
    /// The error the fence was signalled with.
    pub fn status(&self) -> Result<bool> {
        // SAFETY: by the type invariant the fence is valid.
        let status = unsafe { bindings::dma_fence_get_status(self.as_raw()) };
        if status < 0 {
            Err(Error::from_errno(status))
        } else {
            Ok(status == 1)
        }
    }

    /// The timeline the fence belongs to.
    pub fn context(&self) -> u64 {
        // SAFETY: `context` is set at initialisation and never changes.
        unsafe { (*self.as_raw()).context }
    }

    /// The fence's position on its timeline.
    pub fn seqno(&self) -> u64 {
        // SAFETY: `seqno` is set at initialisation and never changes.
        unsafe { (*self.as_raw()).seqno }
    }

    /// Whether `self` comes after `other` on their common timeline (`dma_fence_is_later`):
    /// wrap-safe for 32-bit seqnos, a plain compare for timelines that use 64-bit ones.
    /// `false` for fences of different contexts, which have no order.
    pub fn is_later(&self, other: &Fence) -> bool {
        if self.context() != other.context() {
            return false;
        }
        // SAFETY: by the type invariant both fences are valid; their contexts are equal
        // (checked above), as `dma_fence_is_later` requires.
        unsafe { bindings::dma_fence_is_later(self.as_raw(), other.as_raw()) }
    }

    /// Waits until the fence signals, for at most `timeout` (`None`: no limit).
    ///
    /// # Errors
    ///
    /// - `ETIMEDOUT` if the fence did not signal in time;
    /// - `ERESTARTSYS` if an interruptible wait was interrupted;
    /// - any error the fence's driver reports for the wait.
    ///
    /// A fence signalled with an error counts as signalled here; see [`Fence::status`].
    pub fn wait(&self, timeout: Option<Delta>, intr: Interruptible) -> Result {
        let jiffies = match timeout {
            None => crate::task::MAX_SCHEDULE_TIMEOUT,
            Some(t) => {
                // CAST: a non-negative millisecond count that fits `u32` after clamping.
                let ms = t.as_millis().clamp(0, i64::from(u32::MAX)) as u32;
                // CAST: jiffies of a u32 millisecond count fit a c_long.
                crate::time::msecs_to_jiffies(ms) as crate::ffi::c_long
            }
        };
        // SAFETY: by the type invariant the fence is valid.
        let ret = unsafe {
            bindings::dma_fence_wait_timeout(self.as_raw(), intr == Interruptible::Yes, jiffies)
        };
        match ret {
            r if r > 0 => Ok(()),
            0 => Err(ETIMEDOUT),
            // CAST: negative errnos fit a c_int.
            r => Err(Error::from_errno(r as crate::ffi::c_int)),
        }
    }

    /// Tells the fence's driver that the fence is wanted by `deadline`.
    pub fn set_deadline(&self, deadline: Instant<Monotonic>) {
        // SAFETY: by the type invariant the fence is valid.
        unsafe { bindings::dma_fence_set_deadline(self.as_raw(), deadline.as_nanos()) };
    }
}

/// A section of the fence-signalling critical path, checked by lockdep.
///
/// Between creation and drop, lockdep treats the code as something a fence's signalling
/// depends on: allocations that may recurse into reclaim and locks held around fence waits
/// are reported.
pub struct SignallingGuard {
    cookie: bool,
    _not_send: PhantomData<*mut ()>,
}

impl SignallingGuard {
    /// Enters the signalling critical path (`dma_fence_begin_signalling`).
    pub fn new() -> Self {
        Self {
            // SAFETY: no preconditions; the cookie is handed back in `drop`.
            cookie: unsafe { bindings::dma_fence_begin_signalling() },
            _not_send: PhantomData,
        }
    }
}

impl Default for SignallingGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for SignallingGuard {
    fn drop(&mut self) {
        // SAFETY: the cookie came from `dma_fence_begin_signalling` on this task (the guard is
        // not `Send`).
        unsafe { bindings::dma_fence_end_signalling(self.cookie) };
    }
}

/// A timeline of driver fences: a fence context number and the next sequence number.
pub struct FenceContext {
    context: u64,
    next_seqno: AtomicU64,
    driver: &'static CStr,
    timeline: &'static CStr,
}

impl FenceContext {
    /// A new timeline whose fences report `driver` and `timeline` as their names.
    pub fn new(driver: &'static CStr, timeline: &'static CStr) -> Self {
        Self {
            // SAFETY: no preconditions.
            context: unsafe { bindings::dma_fence_context_alloc(1) },
            next_seqno: AtomicU64::new(1),
            driver,
            timeline,
        }
    }

    /// Makes `seqno` the next fence's sequence number, for a timeline that mirrors a 32-bit
    /// hardware counter (which wraps: `dma_fence_is_later` orders such seqnos modulo 2^32)
    /// and for tests of that wrap.
    pub fn restart_at(&self, seqno: u64) {
        self.next_seqno.store(seqno, Ordering::Relaxed);
    }

    /// The context number its fences carry.
    pub fn context(&self) -> u64 {
        self.context
    }

    /// Turns a prepared fence into an unsignalled fence with the next sequence number.
    ///
    /// Does not allocate: safe to call in the signalling path.
    pub fn init<T: Send + Sync>(&self, prepared: PreparedFence<T>, data: T) -> DriverFence<T> {
        self.init_with_ops(prepared, data, &FenceAlloc::<T>::OPS)
    }

    /// [`Self::init`], and the fence's data hears of every deadline set on the fence that is
    /// earlier than the ones before ([`DeadlineNotify`]).
    pub fn init_notifying<T: DeadlineNotify>(
        &self,
        prepared: PreparedFence<T>,
        data: T,
    ) -> DriverFence<T> {
        self.init_with_ops(prepared, data, &FenceAlloc::<T>::OPS_NOTIFY)
    }

    fn init_with_ops<T: Send + Sync>(
        &self,
        prepared: PreparedFence<T>,
        data: T,
        ops: &'static bindings::dma_fence_ops,
    ) -> DriverFence<T> {
        let seqno = self.next_seqno.fetch_add(1, Ordering::Relaxed);
        let raw = prepared.into_raw();
        // SAFETY: `raw` is the exclusive, uninitialised allocation of a `FenceAlloc<T>`.
        unsafe {
            (&raw mut (*raw).driver).write(self.driver);
            (&raw mut (*raw).timeline).write(self.timeline);
            (&raw mut (*raw).deadline).write(AtomicI64::new(NO_DEADLINE));
            (&raw mut (*raw).data).write(UnsafeCell::new(ManuallyDrop::new(data)));
            // A null lock selects the fence's inline lock.
            bindings::dma_fence_init(
                (&raw mut (*raw).base).cast(),
                ops,
                core::ptr::null_mut(),
                self.context,
                seqno,
            );
        }
        // INVARIANT: the fence is initialised, unsignalled, and we own its first reference.
        DriverFence {
            // SAFETY: `raw` is non-null (it came from a box).
            ptr: unsafe { NonNull::new_unchecked(raw) },
        }
    }
}

/// Fence data that hears of the deadlines set on its fence ([`FenceContext::init_notifying`]):
/// a scheduler's fence of a job not yet on the hardware reorders its queue, or passes the
/// deadline on to what the job waits for.
pub trait DeadlineNotify: Send + Sync {
    /// Someone wants the fence signalled by `deadline`, earlier than any deadline before.
    /// Called in any context, possibly atomic: no sleeping, no allocation.
    fn deadline_set(&self, deadline: Instant<Monotonic>);
}

/// The allocation behind a driver fence: the C fence first, then its names and data.
#[repr(C)]
struct FenceAlloc<T> {
    base: Opaque<bindings::dma_fence>,
    driver: &'static CStr,
    timeline: &'static CStr,
    /// The earliest deadline anyone set, in ktime nanoseconds; [`NO_DEADLINE`] if none.
    deadline: AtomicI64,
    data: UnsafeCell<ManuallyDrop<T>>,
}

/// [`FenceAlloc::deadline`] when no deadline was set.
const NO_DEADLINE: i64 = i64::MAX;

impl<T> FenceAlloc<T> {
    const OPS: bindings::dma_fence_ops = bindings::dma_fence_ops {
        get_driver_name: Some(Self::driver_name),
        get_timeline_name: Some(Self::timeline_name),
        enable_signaling: None,
        signaled: None,
        wait: None,
        release: Some(Self::release),
        set_deadline: Some(Self::set_deadline),
    };

    /// `dma_fence_ops::set_deadline`.
    ///
    /// # Safety
    ///
    /// Called by C with `fence` the `base` of a live `FenceAlloc<T>` (a fence initialised with
    /// [`Self::OPS`]).
    unsafe extern "C" fn set_deadline(
        fence: *mut bindings::dma_fence,
        deadline: bindings::ktime_t,
    ) {
        // SAFETY: C calls the ops of a fence initialised with them, i.e. one of ours. Called in
        // the signalling path: an atomic update only.
        unsafe { Self::from_base(fence) }.record_deadline(deadline);
    }

    /// Records `deadline` if it is the earliest yet; returns whether it was.
    fn record_deadline(&self, deadline: bindings::ktime_t) -> bool {
        self.deadline.fetch_min(deadline, Ordering::Relaxed) > deadline
    }

    /// # Safety
    ///
    /// `fence` is the `base` of a live `FenceAlloc<T>`.
    unsafe fn from_base<'a>(fence: *mut bindings::dma_fence) -> &'a Self {
        // SAFETY: `base` is the first field of a `#[repr(C)]` struct.
        unsafe { &*fence.cast::<Self>() }
    }

    /// `dma_fence_ops::get_driver_name`.
    ///
    /// # Safety
    ///
    /// Called by C with `fence` the `base` of a live `FenceAlloc<T>` (a fence initialised with
    /// [`Self::OPS`]).
    unsafe extern "C" fn driver_name(fence: *mut bindings::dma_fence) -> *const crate::ffi::c_char {
        // SAFETY: C calls the ops of a fence initialised with them, i.e. one of ours.
        unsafe { Self::from_base(fence) }.driver.as_char_ptr()
    }

    /// `dma_fence_ops::get_timeline_name`.
    ///
    /// # Safety
    ///
    /// Called by C with `fence` the `base` of a live `FenceAlloc<T>` (a fence initialised with
    /// [`Self::OPS`]).
    unsafe extern "C" fn timeline_name(
        fence: *mut bindings::dma_fence,
    ) -> *const crate::ffi::c_char {
        // SAFETY: as above.
        unsafe { Self::from_base(fence) }.timeline.as_char_ptr()
    }

    /// `dma_fence_ops::release`.
    ///
    /// # Safety
    ///
    /// Called by C with `fence` the `base` of a live `FenceAlloc<T>` (a fence initialised with
    /// [`Self::OPS`]), whose last reference is
    /// gone.
    unsafe extern "C" fn release(fence: *mut bindings::dma_fence) {
        // SAFETY: the last reference is gone; nobody else accesses the data any more.
        unsafe { ManuallyDrop::drop(&mut *(*fence.cast::<Self>()).data.get()) };
        // SAFETY: the fence is the start of a kmalloc'd allocation (a `KBox`), which
        // `dma_fence_free` hands to `kfree_rcu` as the C side requires.
        unsafe { bindings::dma_fence_free(fence) };
    }
}

impl<T: DeadlineNotify> FenceAlloc<T> {
    /// [`Self::OPS`], with a `set_deadline` that tells the data.
    const OPS_NOTIFY: bindings::dma_fence_ops = bindings::dma_fence_ops {
        set_deadline: Some(Self::set_deadline_notify),
        ..Self::OPS
    };

    /// `dma_fence_ops::set_deadline` of [`Self::OPS_NOTIFY`].
    ///
    /// # Safety
    ///
    /// Called by C with `fence` the `base` of a live `FenceAlloc<T>` initialised with
    /// [`Self::OPS_NOTIFY`].
    unsafe extern "C" fn set_deadline_notify(
        fence: *mut bindings::dma_fence,
        deadline: bindings::ktime_t,
    ) {
        // SAFETY: C calls the ops of a fence initialised with them, i.e. one of ours.
        let this = unsafe { Self::from_base(fence) };
        if this.record_deadline(deadline) {
            // SAFETY: the caller holds a reference to the fence, so the data (dropped only by
            // `release`) is alive; `T: Sync` allows the shared access.
            let data = unsafe { &*this.data.get() };
            // SAFETY: `deadline` is a ktime value.
            data.deadline_set(unsafe { Instant::from_ktime(deadline) });
        }
    }
}

/// Memory for a driver fence, allocated ahead of time.
pub struct PreparedFence<T> {
    alloc: KBox<core::mem::MaybeUninit<FenceAlloc<T>>>,
}

// SAFETY: the memory is uninitialised and owned only by this value; nothing refers to it.
unsafe impl<T> Send for PreparedFence<T> {}
// SAFETY: as above; `&PreparedFence` gives no access to the memory.
unsafe impl<T> Sync for PreparedFence<T> {}

impl<T> PreparedFence<T> {
    /// Allocates a fence.
    ///
    /// # Errors
    ///
    /// `ENOMEM`.
    pub fn new(flags: crate::alloc::Flags) -> Result<Self> {
        Ok(Self {
            alloc: KBox::new_uninit(flags)?,
        })
    }

    fn into_raw(self) -> *mut FenceAlloc<T> {
        KBox::into_raw(self.alloc).cast()
    }
}

/// An unsignalled fence of this driver, with the right to signal it.
///
/// # Invariants
///
/// `ptr` is an initialised, unsignalled `FenceAlloc<T>` on which this value owns a reference.
pub struct DriverFence<T> {
    ptr: NonNull<FenceAlloc<T>>,
}

// SAFETY: the data is `Send + Sync` (required by `FenceContext::init`) and the fence itself is
// thread-safe.
unsafe impl<T: Send + Sync> Send for DriverFence<T> {}
// SAFETY: see above.
unsafe impl<T: Send + Sync> Sync for DriverFence<T> {}

impl<T> DriverFence<T> {
    /// The fence, to share: `ARef::from(driver_fence.fence())`.
    pub fn fence(&self) -> &Fence {
        // SAFETY: by the type invariant the fence is initialised and we hold a reference.
        unsafe { Fence::from_raw(self.ptr.as_ref().base.get()) }
    }

    /// The driver's data.
    pub fn data(&self) -> &T {
        // SAFETY: the data is initialised and only dropped by `release`, after our reference
        // is gone.
        unsafe { &*self.ptr.as_ref().data.get() }
    }

    /// The earliest deadline set on the fence ([`Fence::set_deadline`]), if any: the driver
    /// should have the work done by then.
    pub fn deadline(&self) -> Option<Instant<Monotonic>> {
        // SAFETY: by the type invariant the allocation is live.
        let ns = unsafe { self.ptr.as_ref() }
            .deadline
            .load(Ordering::Relaxed);
        // SAFETY: `ns` is a ktime value C passed to `set_deadline`.
        (ns != NO_DEADLINE).then(|| unsafe { Instant::from_ktime(ns) })
    }

    /// Signals the fence successfully.
    pub fn signal(self) {
        self.finish(0);
    }

    /// Signals the fence with `err`.
    pub fn signal_with_error(self, err: Error) {
        self.finish(err.to_errno());
    }

    fn finish(self, errno: crate::ffi::c_int) {
        let this = ManuallyDrop::new(self);
        let raw = this.fence().as_raw();
        // SAFETY: by the type invariant the fence is valid and unsignalled, and consuming `self`
        // guarantees it is signalled once; then our reference is dropped.
        unsafe {
            if errno != 0 {
                bindings::dma_fence_set_error(raw, errno);
            }
            bindings::dma_fence_signal(raw);
            bindings::dma_fence_put(raw);
        }
    }
}

impl<T> Drop for DriverFence<T> {
    fn drop(&mut self) {
        // A fence dropped without being signalled must not block its waiters forever.
        let raw = self.fence().as_raw();
        // SAFETY: by the type invariant the fence is valid and unsignalled; after signalling,
        // our reference is dropped exactly once.
        unsafe {
            bindings::dma_fence_set_error(raw, ecanceled().to_errno());
            bindings::dma_fence_signal(raw);
            bindings::dma_fence_put(raw);
        }
    }
}

/// What to run when a fence signals.
pub trait FenceCallbackFn: Send + Sync {
    /// Called once, when the fence signals, possibly in interrupt context with the fence's lock
    /// held: must not sleep, allocate with `GFP_KERNEL`, or take the fence's lock.
    fn signalled(&self, fence: &Fence);
}

/// Storage for a callback on a fence, prepared ahead of time so that adding it never allocates.
///
/// # Invariants
///
/// While `fence` holds a fence, `cb` is registered on it or has been called by it.
#[pin_data(PinnedDrop)]
pub struct FenceCallback<F: FenceCallbackFn> {
    #[pin]
    cb: Opaque<bindings::dma_fence_cb>,
    fence: Option<ARef<Fence>>,
    func: F,
}

// SAFETY: the C part is only touched by `dma_fence` code under the fence's lock and by
// `add`/`remove` through `Pin<&mut Self>`; the fence reference and `F` are `Send`.
unsafe impl<F: FenceCallbackFn> Send for FenceCallback<F> {}
// SAFETY: `&FenceCallback` only reads `func`, which is `Sync`.
unsafe impl<F: FenceCallbackFn> Sync for FenceCallback<F> {}

/// Why a callback was not added.
#[derive(Debug, PartialEq, Eq)]
pub enum AddCallbackError {
    /// The fence had already signalled; the callback will not run.
    AlreadySignalled,
    /// This callback storage is registered on a fence already.
    Busy,
}

impl<F: FenceCallbackFn> FenceCallback<F> {
    /// Callback storage that runs `func`.
    pub fn new(func: F) -> impl PinInit<Self> {
        pin_init!(Self {
            cb <- Opaque::uninit(),
            fence: None,
            func,
        })
    }

    /// Registers the callback on `fence`; it runs when the fence signals.
    ///
    /// # Errors
    ///
    /// [`AddCallbackError`] if the fence has signalled already or the storage is in use.
    pub fn add(self: Pin<&mut Self>, fence: &Fence) -> Result<(), AddCallbackError> {
        // SAFETY: the storage stays pinned; only `fence` is replaced, which is not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        if this.fence.is_some() {
            return Err(AddCallbackError::Busy);
        }
        // SAFETY: the fence is valid; `cb` is pinned storage that stays registered at most until
        // `remove` or drop, both of which unregister it before it goes away.
        let ret = unsafe {
            bindings::dma_fence_add_callback(fence.as_raw(), this.cb.get(), Some(Self::trampoline))
        };
        if ret == 0 {
            // INVARIANT: registered on `fence`.
            this.fence = Some(fence.into());
            Ok(())
        } else {
            Err(AddCallbackError::AlreadySignalled)
        }
    }

    /// Unregisters the callback; returns whether it was still pending (had not run).
    ///
    /// Safe against a concurrent signal: once this returns, the callback is not running.
    pub fn remove(self: Pin<&mut Self>) -> bool {
        // SAFETY: as in `add`.
        let this = unsafe { self.get_unchecked_mut() };
        match this.fence.take() {
            // SAFETY: by the invariant `cb` was registered on this fence; removal takes the
            // fence's lock, under which callbacks run, so none is running afterwards.
            Some(fence) => unsafe {
                bindings::dma_fence_remove_callback(fence.as_raw(), this.cb.get())
            },
            None => false,
        }
    }

    /// The callback function.
    pub fn func(&self) -> &F {
        &self.func
    }

    /// The `dma_fence_func_t` registered by [`Self::add`].
    ///
    /// # Safety
    ///
    /// Called by C with `cb` the `cb` field of a live `FenceCallback<F>` registered on `fence`,
    /// which holds a reference while it runs its callbacks.
    unsafe extern "C" fn trampoline(
        fence: *mut bindings::dma_fence,
        cb: *mut bindings::dma_fence_cb,
    ) {
        // SAFETY: `cb` is the `cb` field of a live `FenceCallback<F>` (it is unregistered before
        // the storage goes away), so `container_of` gives the whole.
        let this = unsafe {
            &*crate::container_of!(cb.cast::<Opaque<bindings::dma_fence_cb>>(), Self, cb)
        };
        // SAFETY: the signalling fence holds a reference while calling its callbacks.
        this.func.signalled(unsafe { Fence::from_raw(fence) });
    }
}

#[pinned_drop]
impl<F: FenceCallbackFn> PinnedDrop for FenceCallback<F> {
    fn drop(self: Pin<&mut Self>) {
        self.remove();
    }
}

#[cfg(CONFIG_RUST_DMA_FENCE_KUNIT_TEST)]
#[macros::kunit_tests(rust_dma_fence)]
mod tests {
    use super::*;
    use core::sync::atomic::{AtomicU32, Ordering};

    fn context() -> FenceContext {
        FenceContext::new(c"rust-dma-fence-test", c"test")
    }

    fn fence(ctx: &FenceContext) -> Result<DriverFence<()>> {
        Ok(ctx.init(PreparedFence::new(GFP_KERNEL)?, ()))
    }

    struct Counter(AtomicU32);

    impl FenceCallbackFn for Counter {
        fn signalled(&self, _fence: &Fence) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counter() -> Result<Pin<KBox<FenceCallback<Counter>>>> {
        KBox::pin_init(FenceCallback::new(Counter(AtomicU32::new(0))), GFP_KERNEL)
    }

    #[test]
    fn sanitycheck() -> Result {
        let ctx = context();
        let f = fence(&ctx)?;
        f.signal();
        Ok(())
    }

    #[test]
    fn signaling() -> Result {
        let ctx = context();
        let f = fence(&ctx)?;
        let shared: ARef<Fence> = f.fence().into();
        assert!(!shared.is_signaled());
        f.signal();
        assert!(shared.is_signaled());
        Ok(())
    }

    #[test]
    fn add_callback() -> Result {
        let ctx = context();
        let f = fence(&ctx)?;
        let mut cb = counter()?;
        assert_eq!(cb.as_mut().add(f.fence()), Ok(()));
        assert_eq!(cb.func().0.load(Ordering::SeqCst), 0);
        f.signal();
        assert_eq!(cb.func().0.load(Ordering::SeqCst), 1);
        Ok(())
    }

    #[test]
    fn late_add_callback() -> Result {
        let ctx = context();
        let f = fence(&ctx)?;
        let shared: ARef<Fence> = f.fence().into();
        f.signal();
        let mut cb = counter()?;
        assert_eq!(
            cb.as_mut().add(&shared),
            Err(AddCallbackError::AlreadySignalled)
        );
        assert_eq!(cb.func().0.load(Ordering::SeqCst), 0);
        Ok(())
    }

    #[test]
    fn rm_callback() -> Result {
        let ctx = context();
        let f = fence(&ctx)?;
        let mut cb = counter()?;
        assert_eq!(cb.as_mut().add(f.fence()), Ok(()));
        assert!(cb.as_mut().remove());
        f.signal();
        assert_eq!(cb.func().0.load(Ordering::SeqCst), 0);
        Ok(())
    }

    #[test]
    fn late_rm_callback() -> Result {
        let ctx = context();
        let f = fence(&ctx)?;
        let mut cb = counter()?;
        assert_eq!(cb.as_mut().add(f.fence()), Ok(()));
        f.signal();
        assert!(!cb.as_mut().remove());
        assert_eq!(cb.func().0.load(Ordering::SeqCst), 1);
        Ok(())
    }

    #[test]
    fn status() -> Result {
        let ctx = context();
        let f = fence(&ctx)?;
        let shared: ARef<Fence> = f.fence().into();
        assert_eq!(shared.status(), Ok(false));
        f.signal();
        assert_eq!(shared.status(), Ok(true));
        Ok(())
    }

    #[test]
    fn error() -> Result {
        let ctx = context();
        let f = fence(&ctx)?;
        let shared: ARef<Fence> = f.fence().into();
        f.signal_with_error(EIO);
        assert!(shared.is_signaled());
        assert_eq!(shared.status(), Err(EIO));
        Ok(())
    }

    #[test]
    fn wait() -> Result {
        let ctx = context();
        let f = fence(&ctx)?;
        let shared: ARef<Fence> = f.fence().into();
        assert_eq!(
            shared.wait(Some(Delta::from_millis(2)), Interruptible::No),
            Err(ETIMEDOUT)
        );
        f.signal();
        assert_eq!(
            shared.wait(Some(Delta::from_millis(2)), Interruptible::No),
            Ok(())
        );
        assert_eq!(shared.wait(None, Interruptible::Yes), Ok(()));
        Ok(())
    }

    #[test]
    fn stub() -> Result {
        let stub = Fence::stub();
        assert!(stub.is_signaled());
        assert_eq!(stub.status(), Ok(true));
        Ok(())
    }

    #[test]
    fn seqnos_follow_the_timeline() -> Result {
        let ctx = context();
        let (a, b) = (fence(&ctx)?, fence(&ctx)?);
        assert_eq!(a.fence().context(), ctx.context());
        assert_eq!(b.fence().context(), ctx.context());
        assert_eq!(b.fence().seqno(), a.fence().seqno() + 1);
        assert_ne!(context().context(), ctx.context());
        a.signal();
        b.signal();
        Ok(())
    }

    #[test]
    fn is_later_is_wrap_safe_for_32_bit_seqnos() -> Result {
        let ctx = context();
        ctx.restart_at(u64::from(u32::MAX) - 1);
        let a = fence(&ctx)?;
        // The counter wraps: 5 comes after 2^32 - 2 modulo 2^32.
        ctx.restart_at(5);
        let b = fence(&ctx)?;
        assert!(b.fence().seqno() < a.fence().seqno());
        assert!(b.fence().is_later(a.fence()));
        assert!(!a.fence().is_later(b.fence()));
        assert!(!a.fence().is_later(a.fence()));
        let other = context();
        let c = fence(&other)?;
        // Different timelines have no order.
        assert!(!c.fence().is_later(a.fence()) && !a.fence().is_later(c.fence()));
        for f in [a, b, c] {
            f.signal();
        }
        Ok(())
    }

    #[test]
    fn dropping_an_unsignalled_fence_signals_it_with_ecanceled() -> Result {
        let ctx = context();
        let f = fence(&ctx)?;
        let shared: ARef<Fence> = f.fence().into();
        drop(f);
        assert_eq!(shared.status(), Err(ecanceled()));
        Ok(())
    }

    #[test]
    fn data_lives_with_the_fence() -> Result {
        let ctx = context();
        let f = ctx.init(PreparedFence::new(GFP_KERNEL)?, 42u64);
        assert_eq!(*f.data(), 42);
        f.signal();
        Ok(())
    }

    #[test]
    fn deadlines_reach_the_driver() -> Result {
        let ctx = context();
        let f = fence(&ctx)?;
        assert!(f.deadline().is_none());
        let shared: ARef<Fence> = f.fence().into();
        let now = Instant::<Monotonic>::now();
        let later = now.as_nanos() + 5_000_000;
        // SAFETY: a ktime value.
        shared.set_deadline(unsafe { Instant::from_ktime(later) });
        shared.set_deadline(now);
        // The earliest deadline wins.
        assert_eq!(f.deadline().map(|d| d.as_nanos()), Some(now.as_nanos()));
        f.signal();
        Ok(())
    }

    /// Counts the deadlines it hears of.
    struct Heard(core::sync::atomic::AtomicU32);

    impl DeadlineNotify for Heard {
        fn deadline_set(&self, _deadline: Instant<Monotonic>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_notifying_fence_hears_each_earlier_deadline() -> Result {
        let ctx = context();
        let f = ctx.init_notifying(
            PreparedFence::new(GFP_KERNEL)?,
            Heard(core::sync::atomic::AtomicU32::new(0)),
        );
        let shared: ARef<Fence> = f.fence().into();
        let now = Instant::<Monotonic>::now().as_nanos();
        // SAFETY: ktime values.
        let at = |ns| unsafe { Instant::<Monotonic>::from_ktime(ns) };
        shared.set_deadline(at(now + 5_000_000));
        shared.set_deadline(at(now + 9_000_000));
        shared.set_deadline(at(now + 1_000_000));
        // The first and the third were earlier than all before; the second was not.
        assert_eq!(f.data().0.load(Ordering::Relaxed), 2);
        assert_eq!(f.deadline().map(|d| d.as_nanos()), Some(now + 1_000_000));
        f.signal();
        // A signalled fence takes no deadline (dma_fence_set_deadline skips it).
        shared.set_deadline(at(now));
        Ok(())
    }

    #[test]
    fn race_signal_callback() -> Result {
        use crate::sync::Arc;
        use crate::workqueue;

        struct Flag(AtomicU32);
        impl FenceCallbackFn for Flag {
            fn signalled(&self, _fence: &Fence) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }

        let ctx = context();
        let (mut added, mut late) = (0u32, 0u32);
        for _ in 0..500 {
            let f = fence(&ctx)?;
            let shared: ARef<Fence> = f.fence().into();
            let mut cb = KBox::pin_init(FenceCallback::new(Flag(AtomicU32::new(0))), GFP_KERNEL)?;
            let done = Arc::pin_init(crate::sync::Completion::new(), GFP_KERNEL)?;
            let done2 = done.clone();
            // Another CPU signals while this one adds the callback.
            workqueue::system_highpri()
                .try_spawn(GFP_KERNEL, move || {
                    f.signal();
                    done2.complete_all();
                })
                .map_err(|_| ENOMEM)?;
            let result = cb.as_mut().add(&shared);
            done.wait_for_completion();
            let calls = cb.func().0.load(Ordering::SeqCst);
            match result {
                // Registered in time: it ran exactly once.
                Ok(()) => {
                    added += 1;
                    assert_eq!(calls, 1);
                }
                // Too late: it never runs.
                Err(AddCallbackError::AlreadySignalled) => {
                    late += 1;
                    assert_eq!(calls, 0);
                }
                Err(AddCallbackError::Busy) => return Err(EINVAL),
            }
        }
        assert_eq!(added + late, 500);
        Ok(())
    }

    #[test]
    fn signalling_guard_nests() -> Result {
        let outer = SignallingGuard::new();
        {
            let _inner = SignallingGuard::new();
        }
        drop(outer);
        Ok(())
    }
}
