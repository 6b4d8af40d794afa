// SPDX-License-Identifier: GPL-2.0

//! DMA-BUF: a buffer one driver made, shared with other devices and drivers as a file.
//!
//! C header: [`include/linux/dma-buf.h`](srctree/include/linux/dma-buf.h)
//!
//! A [`DmaBuf`] is borrowed from the C side: the DRM core lends one to a GEM driver that is
//! importing it ([`crate::drm::gem::DriverObject::import_args`]), for as long as the call lasts.
//! What the importer keeps is its attachment, which the GEM object owns.

use crate::{bindings, fs::file::flags, prelude::*, types::Opaque};

/// A dma-buf, seen by a device that imports it.
///
/// # Invariants
///
/// `self.0` is a valid, exported `struct dma_buf` for the lifetime of the reference.
#[repr(transparent)]
pub struct DmaBuf(Opaque<bindings::dma_buf>);

impl DmaBuf {
    /// Borrows the dma-buf at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` points to a valid, exported `struct dma_buf` that stays so for `'a`.
    pub unsafe fn from_raw<'a>(ptr: *mut bindings::dma_buf) -> &'a Self {
        // SAFETY: `DmaBuf` is transparent over `struct dma_buf`, valid for `'a` by the caller.
        unsafe { &*ptr.cast() }
    }

    /// The raw `struct dma_buf`.
    pub fn as_raw(&self) -> *mut bindings::dma_buf {
        self.0.get()
    }

    /// The buffer's size in bytes, fixed when it was exported.
    pub fn size(&self) -> usize {
        // SAFETY: the dma-buf is valid (invariant); `size` is written once, by the export.
        unsafe { (*self.as_raw()).size }
    }

    /// Whether the exporter allowed writes: its file was made `O_RDWR` (for a DRM exporter,
    /// `DRM_IOCTL_PRIME_HANDLE_TO_FD` with `DRM_RDWR`).
    pub fn is_writable(&self) -> bool {
        // SAFETY: an exported dma-buf has its file for its whole life (invariant), and a file's
        // access mode never changes.
        let f_flags = unsafe { (*(*self.as_raw()).file).f_flags };
        f_flags & flags::O_ACCMODE == flags::O_RDWR
    }
}

#[cfg(CONFIG_RUST_DMA_FENCE_KUNIT_TEST)]
#[macros::kunit_tests(rust_dma_buf)]
mod tests {
    use super::*;
    use crate::page::PAGE_SIZE;

    // A buffer nobody attaches to: dma_buf_export wants the three callbacks to exist.
    extern "C" fn map(
        _: *mut bindings::dma_buf_attachment,
        _: bindings::dma_data_direction,
    ) -> *mut bindings::sg_table {
        ENODEV.to_ptr()
    }

    extern "C" fn unmap(
        _: *mut bindings::dma_buf_attachment,
        _: *mut bindings::sg_table,
        _: bindings::dma_data_direction,
    ) {
    }

    extern "C" fn release(_: *mut bindings::dma_buf) {}

    const OPS: bindings::dma_buf_ops = bindings::dma_buf_ops {
        map_dma_buf: Some(map),
        unmap_dma_buf: Some(unmap),
        release: Some(release),
        // SAFETY: all-zero is a valid `dma_buf_ops` (every other callback absent).
        ..unsafe { core::mem::zeroed() }
    };

    static PRIV: u8 = 0;

    /// Exports a `size`-byte buffer with file flags `file_flags`, runs `f` on it, drops it.
    fn with_exported(size: usize, file_flags: u32, f: impl FnOnce(&DmaBuf)) -> Result {
        let info = bindings::dma_buf_export_info {
            exp_name: c"rust_dma_buf_test".as_char_ptr(),
            owner: core::ptr::null_mut(),
            ops: &OPS,
            size,
            // CAST: open flags fit in an int.
            flags: file_flags as i32,
            resv: core::ptr::null_mut(),
            priv_: (&raw const PRIV).cast_mut().cast(),
        };
        // SAFETY: `info` is complete; the ops and `priv` are static.
        let buf = crate::error::from_err_ptr(unsafe { bindings::dma_buf_export(&info) })?;
        // SAFETY: the export returned a valid dma-buf, which we hold until the put below.
        f(unsafe { DmaBuf::from_raw(buf) });
        // SAFETY: drops the reference the export gave us.
        unsafe { bindings::dma_buf_put(buf) };
        Ok(())
    }

    #[test]
    fn size_is_the_exported_size() -> Result {
        with_exported(3 * PAGE_SIZE, flags::O_RDWR, |b| {
            assert_eq!(b.size(), 3 * PAGE_SIZE)
        })
    }

    #[test]
    fn writable_only_when_exported_read_write() -> Result {
        with_exported(PAGE_SIZE, flags::O_RDWR | flags::O_CLOEXEC, |b| {
            assert!(b.is_writable())
        })?;
        with_exported(PAGE_SIZE, flags::O_RDONLY | flags::O_CLOEXEC, |b| {
            assert!(!b.is_writable())
        })
    }
}
