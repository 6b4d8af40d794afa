// SPDX-License-Identifier: GPL-2.0

//! DRM sync objects: the fences that userspace names by handle.
//!
//! C header: [`include/drm/drm_syncobj.h`](srctree/include/drm/drm_syncobj.h)
//!
//! A syncobj is a container for one fence pointer. Used as a *binary* syncobj, a submission
//! replaces the fence ([`Syncobj::replace_fence`]); used as a *timeline*, each submission adds
//! a point ([`Syncobj::add_point`]): a [fence-chain](crate::dma_fence::chain) node that holds
//! the job's fence and the previous head, so the syncobj's fence is the head of the chain and
//! point `n` is found by walking it. Point 0 of a timeline, and a binary syncobj, mean "the
//! current fence".
//!
//! ```text
//!   Syncobj::new / lookup           replace_fence(f) or add_point(node, f, n)
//!  ------------------------> Syncobj <-------------------------------------- submissions
//!                              |  ^           (process context, may not be in IRQ:
//!        find_fence(n)         |  |            the syncobj lock is not IRQ-safe)
//!  <---------------------------+  |
//!   (waits for the point to be    | create_handle(file): a handle in the file's table
//!    submitted with WaitForSubmit)
//! ```
//!
//! Nothing here signals a fence: a syncobj only publishes fences that their producers signal.
//! Adding a point and replacing a fence never allocate (the chain node is a
//! [`PreparedChain`] allocated earlier), so both may run after a job's fences are armed.
//! [`Syncobj::find_fence`] with [`WaitForSubmit::Yes`] sleeps and must not be called with any
//! lock held or inside a fence-signalling section.

use crate::{
    bindings,
    dma_fence::{chain, chain::PreparedChain, Fence},
    drm::file::{DriverFile, File},
    error::to_result,
    prelude::*,
    sync::aref::{ARef, AlwaysRefCounted},
    types::Opaque,
};
use core::ptr::NonNull;

/// Whether [`Syncobj::find_fence`] waits for a point that has not been submitted yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitForSubmit {
    /// A missing point is an error (`EINVAL`).
    No,
    /// Sleep (interruptibly, up to the DRM core's limit of 10 s) until the point is added.
    Yes,
}

/// A reference-counted DRM sync object (`struct drm_syncobj`).
///
/// # Invariants
///
/// `self.0` is a valid `struct drm_syncobj` whose reference count is not zero while `&Self`
/// exists.
#[repr(transparent)]
pub struct Syncobj(Opaque<bindings::drm_syncobj>);

// SAFETY: the C object is reference counted and all its state is protected by its own lock or
// RCU; any thread may use and release it.
unsafe impl Send for Syncobj {}
// SAFETY: as above; every method takes `&self` and is thread-safe in C.
unsafe impl Sync for Syncobj {}

// SAFETY: `drm_syncobj_get`/`drm_syncobj_put` manage the object's kref; the object is freed
// only when the count drops to zero.
unsafe impl AlwaysRefCounted for Syncobj {
    fn inc_ref(&self) {
        // SAFETY: the invariant guarantees a non-zero count.
        unsafe { bindings::drm_syncobj_get(self.as_raw()) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: the caller owns one reference, which it gives up here.
        unsafe { bindings::drm_syncobj_put(obj.as_ptr().cast()) };
    }
}

impl Syncobj {
    fn as_raw(&self) -> *mut bindings::drm_syncobj {
        self.0.get()
    }

    /// # Safety
    ///
    /// `ptr` must be a valid syncobj with a reference that the caller gives to the result.
    unsafe fn from_owned(ptr: NonNull<bindings::drm_syncobj>) -> ARef<Self> {
        // SAFETY: `Self` is transparent over the C struct; the reference is transferred.
        unsafe { ARef::from_raw(ptr.cast()) }
    }

    /// Creates a syncobj holding `fence`, or an already signalled fence if `signaled`, or
    /// nothing.
    ///
    /// # Errors
    ///
    /// `ENOMEM`.
    pub fn new(signaled: bool, fence: Option<&Fence>) -> Result<ARef<Self>> {
        let flags = if signaled {
            bindings::DRM_SYNCOBJ_CREATE_SIGNALED
        } else {
            0
        };
        let mut raw = core::ptr::null_mut();
        // SAFETY: `raw` is a valid out pointer; `fence` is null or valid (the syncobj takes its
        // own reference).
        to_result(unsafe {
            bindings::drm_syncobj_create(
                &mut raw,
                flags,
                fence.map_or(core::ptr::null_mut(), Fence::as_raw),
            )
        })?;
        // SAFETY: on success `raw` is a new syncobj whose one reference we own.
        Ok(unsafe { Self::from_owned(NonNull::new_unchecked(raw)) })
    }

    /// The syncobj that `handle` names in `file`'s table.
    ///
    /// # Errors
    ///
    /// `ENOENT` if the handle is not in the table.
    pub fn lookup<T: DriverFile>(file: &File<T>, handle: u32) -> Result<ARef<Self>> {
        // SAFETY: `file` is an open DRM file; the lookup takes the table's lock and returns a
        // new reference or null.
        let raw = unsafe { bindings::drm_syncobj_find(file.as_raw(), handle) };
        // SAFETY: a non-null result carries a reference we own.
        NonNull::new(raw)
            .map(|p| unsafe { Self::from_owned(p) })
            .ok_or(ENOENT)
    }

    /// Adds the syncobj to `file`'s table and returns the new handle.
    ///
    /// # Errors
    ///
    /// `ENOMEM`, or `EBUSY` if the table is full.
    pub fn create_handle<T: DriverFile>(&self, file: &File<T>) -> Result<u32> {
        let mut handle = 0;
        // SAFETY: `file` is an open DRM file (its syncobj table exists when the driver has
        // `FEAT_SYNCOBJ`, and is an empty xarray otherwise); the table takes its own reference.
        to_result(unsafe {
            bindings::drm_syncobj_get_handle(file.as_raw(), self.as_raw(), &mut handle)
        })?;
        Ok(handle)
    }

    /// The syncobj's current fence (a timeline's latest point), if any.
    pub fn fence(&self) -> Option<ARef<Fence>> {
        // SAFETY: `self` is valid; the helper reads the fence under RCU and returns a new
        // reference or null.
        let raw = unsafe { bindings::drm_syncobj_fence_get(self.as_raw()) };
        // SAFETY: a non-null result carries a reference we own.
        NonNull::new(raw).map(|p| unsafe { ARef::from_raw(p.cast()) })
    }

    /// The fence of timeline point `point`, as [`Syncobj::find_fence`] without waiting.
    ///
    /// # Errors
    ///
    /// `EINVAL` if the syncobj is empty or the point has not been added.
    pub fn fence_at(&self, point: u64) -> Result<ARef<Fence>> {
        let head = self.fence().ok_or(EINVAL)?;
        // A signalled point has nothing to wait for: the stub keeps the caller's code uniform.
        Ok(chain::find_seqno(head, point)?.unwrap_or_else(Fence::stub))
    }

    /// Replaces the fence (binary use); `None` empties the syncobj. Does not allocate.
    ///
    /// Must be called in process context (the syncobj lock is not IRQ-safe).
    pub fn replace_fence(&self, fence: Option<&Fence>) {
        // SAFETY: `self` is valid; `fence` is null or valid and the syncobj takes its own
        // reference.
        unsafe {
            bindings::drm_syncobj_replace_fence(
                self.as_raw(),
                fence.map_or(core::ptr::null_mut(), Fence::as_raw),
            )
        };
    }

    /// Adds timeline point `point` holding `fence`, using the preallocated chain `node`. Does
    /// not allocate.
    ///
    /// Points should increase; as in C, an earlier point is accepted but starts a new chain
    /// context, so waits on later points see it only by walking.
    ///
    /// Must be called in process context (the syncobj lock is not IRQ-safe).
    pub fn add_point(&self, node: PreparedChain, fence: &Fence, point: u64) {
        // SAFETY: `self` and `fence` are valid; `node` is an exclusive kmalloc'd chain node that
        // the C code initialises and owns from now on (freed with `kfree_rcu` on its last put);
        // the syncobj takes its own reference to `fence`.
        unsafe {
            bindings::drm_syncobj_add_point(self.as_raw(), node.into_raw(), fence.as_raw(), point)
        };
    }

    /// The fence of point `point` of the syncobj `handle` names in `file` (point 0: the
    /// current fence). A point that has already signalled gives a signalled stub fence.
    ///
    /// With [`WaitForSubmit::Yes`], a point that does not exist yet is waited for. Must not be
    /// called with locks held (the wait depends on userspace).
    ///
    /// # Errors
    ///
    /// `ENOENT` for an unknown handle; `EINVAL` for an empty syncobj or a missing point
    /// without waiting; `ETIME` if the wait times out; `ERESTARTSYS` if a signal interrupts it.
    pub fn find_fence<T: DriverFile>(
        file: &File<T>,
        handle: u32,
        point: u64,
        wait: WaitForSubmit,
    ) -> Result<ARef<Fence>> {
        let flags = match wait {
            WaitForSubmit::No => 0,
            WaitForSubmit::Yes => u64::from(bindings::DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT),
        };
        let mut raw = core::ptr::null_mut();
        // SAFETY: `file` is an open DRM file and `raw` a valid out pointer; on success it holds
        // a new reference.
        to_result(unsafe {
            bindings::drm_syncobj_find_fence(file.as_raw(), handle, point, flags, &mut raw)
        })?;
        // SAFETY: success always yields a fence (the C code substitutes the stub for null).
        NonNull::new(raw)
            .map(|p| unsafe { ARef::from_raw(p.cast()) })
            .ok_or(EINVAL)
    }
}

#[cfg(CONFIG_RUST_DMA_FENCE_KUNIT_TEST)]
#[macros::kunit_tests(rust_drm_syncobj)]
mod tests {
    use super::*;
    use crate::{
        dma_fence::{DriverFence, FenceContext, PreparedFence},
        drm::{self, gem},
        faux,
    };

    /// A DRM driver with timeline syncobjs and nothing else.
    struct TestDriver;

    #[pin_data]
    struct TestObject {}

    impl gem::DriverObject for TestObject {
        type Driver = TestDriver;
        type Args = ();

        fn new<Ctx: drm::DeviceContext>(
            _dev: &drm::Device<TestDriver, Ctx>,
            _size: usize,
            _args: (),
        ) -> impl PinInit<Self, Error> {
            try_pin_init!(TestObject {})
        }
    }

    struct TestFile;

    impl DriverFile for TestFile {
        type Driver = TestDriver;

        fn open(_dev: &drm::Device<TestDriver>) -> Result<Pin<KBox<Self>>> {
            Ok(KBox::pin(TestFile, GFP_KERNEL)?)
        }
    }

    #[pin_data]
    struct TestData {}

    #[vtable]
    impl drm::Driver for TestDriver {
        type Data = TestData;
        type File = TestFile;
        type Object<Ctx: drm::DeviceContext> = gem::Object<TestObject, Ctx>;

        const INFO: drm::DriverInfo = drm::DriverInfo {
            major: 1,
            minor: 0,
            patchlevel: 0,
            name: c"rust-syncobj-test",
            desc: c"Rust syncobj KUnit device",
        };
        const IOCTLS: &'static [drm::ioctl::DrmIoctlDescriptor] = &[];
        const FEAT_SYNCOBJ_TIMELINE: bool = true;
    }

    /// A registered test DRM device on a faux bus device.
    struct TestDevice {
        drm: drm::UnregisteredDevice<TestDriver>,
        _faux: faux::Registration,
    }

    impl TestDevice {
        fn new() -> Result<Self> {
            let faux = faux::Registration::new(c"rust-syncobj-test", None)?;
            let drm = drm::UnregisteredDevice::<TestDriver>::new(
                faux.as_ref(),
                try_pin_init!(TestData {}),
            )?;
            // SAFETY: a new, unregistered device; `Drop` unregisters it.
            to_result(unsafe { bindings::drm_dev_register(drm.as_raw(), 0) })?;
            Ok(Self { drm, _faux: faux })
        }

        /// Opens a client, as userspace opening the primary node would.
        fn open(&self) -> Result<Client> {
            // SAFETY: the device is registered, so its primary minor exists.
            let file = unsafe {
                bindings::mock_drm_getfile((*self.drm.as_raw()).primary, bindings::O_RDWR)
            };
            // On success the file is ours; on failure an error pointer.
            let file = crate::error::from_err_ptr(file)?;
            Ok(Client { file })
        }
    }

    impl Drop for TestDevice {
        fn drop(&mut self) {
            // SAFETY: registered in `new`; clients hold their own device reference.
            unsafe { bindings::drm_dev_unregister(self.drm.as_raw()) };
        }
    }

    /// One open DRM file of a [`TestDevice`].
    struct Client {
        file: *mut bindings::file,
    }

    impl Client {
        fn drm_file(&self) -> &File<TestFile> {
            // SAFETY: a DRM file's private data is its `drm_file`, opened through
            // `TestFile::open`; it lives as long as `self.file`.
            unsafe { File::from_raw((*self.file).private_data.cast()) }
        }
    }

    impl Drop for Client {
        fn drop(&mut self) {
            // SAFETY: we own the file's only reference; KUnit cases run in kernel threads, for
            // which the synchronous release is meant, so the DRM file is closed on return.
            unsafe { bindings::__fput_sync(self.file) };
        }
    }

    fn fences(n: usize) -> Result<KVec<DriverFence<()>>> {
        let ctx = FenceContext::new(c"rust-syncobj-test", c"test");
        let mut v = KVec::new();
        for _ in 0..n {
            v.push(ctx.init(PreparedFence::new(GFP_KERNEL)?, ()), GFP_KERNEL)?;
        }
        Ok(v)
    }

    #[test]
    fn binary_replace_and_lookup() -> Result {
        let dev = TestDevice::new()?;
        let client = dev.open()?;
        let file = client.drm_file();
        let obj = Syncobj::new(false, None)?;
        let handle = obj.create_handle(file)?;
        let found = Syncobj::lookup(file, handle)?;
        assert_eq!(found.as_raw(), obj.as_raw());
        assert!(obj.fence().is_none());
        // An empty syncobj has no fence to wait for.
        assert_eq!(
            Syncobj::find_fence(file, handle, 0, WaitForSubmit::No).err(),
            Some(EINVAL)
        );

        let mut f = fences(2)?;
        let (b, a) = (f.pop().ok_or(EINVAL)?, f.pop().ok_or(EINVAL)?);
        obj.replace_fence(Some(a.fence()));
        let got = Syncobj::find_fence(file, handle, 0, WaitForSubmit::No)?;
        assert_eq!(got.as_raw(), a.fence().as_raw());
        obj.replace_fence(Some(b.fence()));
        assert_eq!(obj.fence().ok_or(EINVAL)?.as_raw(), b.fence().as_raw());
        // The fence found earlier is a snapshot: replacing does not change it.
        assert_eq!(got.as_raw(), a.fence().as_raw());
        a.signal();
        assert!(!Syncobj::find_fence(file, handle, 0, WaitForSubmit::No)?.is_signaled());
        b.signal_with_error(EIO);
        assert_eq!(obj.fence().ok_or(EINVAL)?.status(), Err(EIO));
        obj.replace_fence(None);
        assert!(obj.fence().is_none());
        Ok(())
    }

    #[test]
    fn created_signaled_holds_a_signaled_fence() -> Result {
        let obj = Syncobj::new(true, None)?;
        assert!(obj.fence().ok_or(EINVAL)?.is_signaled());
        let f = fences(1)?;
        let with = Syncobj::new(false, Some(f[0].fence()))?;
        assert_eq!(with.fence().ok_or(EINVAL)?.as_raw(), f[0].fence().as_raw());
        Ok(())
    }

    #[test]
    fn unknown_handles_and_other_files() -> Result {
        let dev = TestDevice::new()?;
        let (a, b) = (dev.open()?, dev.open()?);
        assert_eq!(Syncobj::lookup(a.drm_file(), 1).err(), Some(ENOENT));
        let obj = Syncobj::new(true, None)?;
        let handle = obj.create_handle(a.drm_file())?;
        assert!(Syncobj::lookup(a.drm_file(), handle).is_ok());
        // Handles are per file: the same number names nothing in another client.
        assert_eq!(Syncobj::lookup(b.drm_file(), handle).err(), Some(ENOENT));
        assert_eq!(
            Syncobj::find_fence(b.drm_file(), handle, 0, WaitForSubmit::No).err(),
            Some(ENOENT)
        );
        // Closing the file drops the table's reference, not ours.
        drop(a);
        assert!(obj.fence().ok_or(EINVAL)?.is_signaled());
        Ok(())
    }

    #[test]
    fn timeline_add_point_and_find() -> Result {
        let dev = TestDevice::new()?;
        let client = dev.open()?;
        let file = client.drm_file();
        let obj = Syncobj::new(false, None)?;
        let handle = obj.create_handle(file)?;
        let mut f = fences(3)?;
        for (i, fence) in f.iter().enumerate() {
            obj.add_point(
                PreparedChain::new(GFP_KERNEL)?,
                fence.fence(),
                2 * i as u64 + 2,
            );
        }
        // Points 2, 4, 6 exist; 3 is found at 4, as Vulkan timeline semantics require.
        for (point, idx) in [(2, 0), (3, 1), (4, 1), (6, 2)] {
            let found = Syncobj::find_fence(file, handle, point, WaitForSubmit::No)?;
            assert!(chain::is_chain(&found));
            assert_eq!(chain::contained(&found).as_raw(), f[idx].fence().as_raw());
            assert_eq!(obj.fence_at(point)?.as_raw(), found.as_raw());
        }
        // Beyond the last point there is nothing to wait on yet.
        assert_eq!(
            Syncobj::find_fence(file, handle, 7, WaitForSubmit::No).err(),
            Some(EINVAL)
        );
        assert_eq!(obj.fence_at(7).err(), Some(EINVAL));

        let point6 = obj.fence_at(6)?;
        let (p6, p4, p2) = (
            f.pop().ok_or(EINVAL)?,
            f.pop().ok_or(EINVAL)?,
            f.pop().ok_or(EINVAL)?,
        );
        p2.signal();
        // A signalled point gives a signalled fence, not an error.
        assert!(Syncobj::find_fence(file, handle, 2, WaitForSubmit::No)?.is_signaled());
        assert!(Syncobj::find_fence(file, handle, 1, WaitForSubmit::No)?.is_signaled());
        assert!(!point6.is_signaled());
        // Signalling out of order: point 6 waits for point 4 too.
        p6.signal();
        assert!(!point6.is_signaled());
        p4.signal_with_error(EIO);
        assert!(point6.is_signaled());
        Ok(())
    }

    #[test]
    fn wait_for_submit_sees_a_later_point() -> Result {
        use crate::{
            time::{delay::fsleep, Delta},
            workqueue,
        };

        let dev = TestDevice::new()?;
        let client = dev.open()?;
        let file = client.drm_file();
        let obj = Syncobj::new(false, None)?;
        let handle = obj.create_handle(file)?;
        let mut f = fences(1)?;
        let fence: ARef<Fence> = f[0].fence().into();
        let node = PreparedChain::new(GFP_KERNEL)?;
        let adder = obj.clone();
        // Another CPU submits point 1 a little later, while this thread waits for it (without
        // the wait, the point is missing: EINVAL).
        assert_eq!(
            Syncobj::find_fence(file, handle, 1, WaitForSubmit::No).err(),
            Some(EINVAL)
        );
        workqueue::system_unbound()
            .try_spawn(GFP_KERNEL, move || {
                fsleep(Delta::from_millis(20));
                adder.add_point(node, &fence, 1);
            })
            .map_err(|_| ENOMEM)?;
        let found = Syncobj::find_fence(file, handle, 1, WaitForSubmit::Yes)?;
        assert_eq!(chain::contained(&found).as_raw(), f[0].fence().as_raw());
        f.pop().ok_or(EINVAL)?.signal();
        assert!(found.is_signaled());
        Ok(())
    }
}
