// SPDX-License-Identifier: GPL-2.0

//! Sync files: fences as file descriptors, for userspace.
//!
//! C header: [`include/linux/sync_file.h`](srctree/include/linux/sync_file.h)
//!
//! [`export`] wraps a fence in a new sync_file and installs it as a file descriptor of the
//! current task; [`import`] takes the fence out of a sync_file descriptor. A sync_file is a
//! snapshot: what it holds never changes, whatever happens to the object the fence came from.

use crate::{
    bindings,
    dma_fence::Fence,
    fs::file::{flags::O_CLOEXEC, File, FileDescriptorReservation},
    prelude::*,
    sync::aref::ARef,
};
use core::ptr::NonNull;

/// Exports `fence` as a new close-on-exec sync_file descriptor of the current task.
///
/// # Errors
///
/// `EMFILE` if the task has no free descriptor, `ENOMEM`.
pub fn export(fence: &Fence) -> Result<u32> {
    let reservation = FileDescriptorReservation::get_unused_fd_flags(O_CLOEXEC)?;
    // SAFETY: `fence` is valid; `sync_file_create` takes its own reference.
    let sync_file = unsafe { bindings::sync_file_create(fence.as_raw()) };
    if sync_file.is_null() {
        return Err(ENOMEM);
    }
    // SAFETY: `sync_file_create` returned a sync_file whose `file` holds the one reference we
    // now own; `File` is transparent over `struct file`.
    let file: ARef<File> =
        unsafe { ARef::from_raw(NonNull::new_unchecked((*sync_file).file.cast())) };
    let fd = reservation.reserved_fd();
    reservation.fd_install(file);
    Ok(fd)
}

/// The fence held by the sync_file descriptor `fd` of the current task.
///
/// # Errors
///
/// `EINVAL` if `fd` is not an open sync_file.
pub fn import(fd: u32) -> Result<ARef<Fence>> {
    let fd = i32::try_from(fd).map_err(|_| EINVAL)?;
    // SAFETY: no preconditions; a non-null result is a new reference we own.
    let fence = unsafe { bindings::sync_file_get_fence(fd) };
    // SAFETY: as above.
    NonNull::new(fence)
        .map(|f| unsafe { ARef::from_raw(f.cast()) })
        .ok_or(EINVAL)
}

#[cfg(CONFIG_RUST_DMA_FENCE_KUNIT_TEST)]
#[macros::kunit_tests(rust_sync_file)]
mod tests {
    use super::*;
    use crate::dma_fence::{FenceContext, PreparedFence};

    fn close(fd: u32) {
        // SAFETY: `fd` is a descriptor this test installed in the current (kernel thread's)
        // table and nothing else uses.
        unsafe { bindings::close_fd(fd) };
    }

    #[test]
    fn round_trip_keeps_the_fence() -> Result {
        let ctx = FenceContext::new(c"rust-sync-file-test", c"test");
        let f = ctx.init(PreparedFence::new(GFP_KERNEL)?, ());
        let fd = export(f.fence())?;
        let imported = import(fd)?;
        assert_eq!(imported.as_raw(), f.fence().as_raw());
        assert!(!imported.is_signaled());
        f.signal_with_error(EIO);
        assert_eq!(imported.status(), Err(EIO));
        close(fd);
        assert_eq!(import(fd).err(), Some(EINVAL));
        Ok(())
    }

    #[test]
    fn importing_a_non_sync_file_fails() -> Result {
        assert_eq!(import(u32::MAX).err(), Some(EINVAL));
        assert_eq!(import(1_000_000).err(), Some(EINVAL));
        Ok(())
    }
}
