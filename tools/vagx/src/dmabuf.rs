// SPDX-License-Identifier: GPL-2.0 OR MIT

//! dma-bufs without a GPU (memfd pages made into a dma-buf by `/dev/udmabuf`), the dma-buf
//! ioctl a CPU user of a shared buffer brackets its accesses with (`DMA_BUF_IOCTL_SYNC`), and
//! the sync_file export and import of a dma-buf's implicit fences.

use std::{
    ffi::CStr,
    fs::OpenOptions,
    io,
    os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
};

/// `struct udmabuf_create` (linux/udmabuf.h).
#[repr(C)]
struct UdmabufCreate {
    memfd: u32,
    flags: u32,
    offset: u64,
    size: u64,
}

/// `UDMABUF_FLAGS_CLOEXEC`.
const UDMABUF_FLAGS_CLOEXEC: u32 = 1;

/// `_IOC(dir, type, nr, size)` for the ioctls below (and sw_sync's).
pub(crate) const fn ioc(dir: u32, ty: u8, nr: u32, size: usize) -> u32 {
    // CAST: argument sizes fit in 14 bits.
    (dir << 30) | ((size as u32) << 16) | ((ty as u32) << 8) | nr
}

/// `UDMABUF_CREATE = _IOW('u', 0x42, struct udmabuf_create)`.
const UDMABUF_CREATE: u32 = ioc(1, b'u', 0x42, size_of::<UdmabufCreate>());
/// `DMA_BUF_IOCTL_SYNC = _IOW('b', 0, struct dma_buf_sync)`.
const DMA_BUF_IOCTL_SYNC: u32 = ioc(1, b'b', 0, size_of::<u64>());

/// `DMA_BUF_SYNC_*` flags.
pub const SYNC_READ: u64 = 1;
pub const SYNC_WRITE: u64 = 2;
pub const SYNC_START: u64 = 0;
pub const SYNC_END: u64 = 4;

/// `struct dma_buf_export_sync_file` / `dma_buf_import_sync_file` (same layout).
#[repr(C)]
struct SyncFileArg {
    flags: u32,
    fd: i32,
}

/// `DMA_BUF_IOCTL_EXPORT_SYNC_FILE = _IOWR('b', 2, struct dma_buf_export_sync_file)`.
const DMA_BUF_IOCTL_EXPORT_SYNC_FILE: u32 = ioc(3, b'b', 2, size_of::<SyncFileArg>());
/// `DMA_BUF_IOCTL_IMPORT_SYNC_FILE = _IOW('b', 3, struct dma_buf_import_sync_file)`.
const DMA_BUF_IOCTL_IMPORT_SYNC_FILE: u32 = ioc(1, b'b', 3, size_of::<SyncFileArg>());

/// A sync_file of the fences a user of `buf` with access `flags` (`SYNC_READ`, `SYNC_WRITE`)
/// would wait for: for a reader the writers, for a writer everyone.
pub fn export_sync_file(buf: BorrowedFd<'_>, flags: u64) -> io::Result<OwnedFd> {
    let mut a = SyncFileArg {
        // CAST: the flags are two bits.
        flags: flags as u32,
        fd: -1,
    };
    ioctl(buf, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, &mut a)?;
    // SAFETY: the kernel returned a new fd, which we own.
    Ok(unsafe { OwnedFd::from_raw_fd(a.fd) })
}

/// Adds the fence of sync_file `fence` to `buf` as a writer (`SYNC_WRITE`) or a reader
/// (`SYNC_READ`): later users of the buffer wait for it as for a GPU job's.
pub fn import_sync_file(buf: BorrowedFd<'_>, flags: u64, fence: BorrowedFd<'_>) -> io::Result<()> {
    let mut a = SyncFileArg {
        // CAST: as above.
        flags: flags as u32,
        fd: fence.as_raw_fd(),
    };
    ioctl(buf, DMA_BUF_IOCTL_IMPORT_SYNC_FILE, &mut a).map(|_| ())
}

/// A raw ioctl on `fd`; its non-negative result.
pub(crate) fn ioctl<T>(fd: BorrowedFd<'_>, request: u32, arg: &mut T) -> io::Result<libc::c_int> {
    // SAFETY: `arg` is a valid, exclusive `T` for the call, and each request passed here is the
    // one its UAPI defines for `T`.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::c_ulong::from(request), arg as *mut T) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A sealed memfd of `size` bytes (zeroed): the memory a udmabuf is made of.
pub fn memfd(size: u64) -> io::Result<OwnedFd> {
    let name: &CStr = c"vagx-udmabuf";
    // SAFETY: `name` is a valid C string; a non-negative result is a new fd we own.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: just made, owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let len = libc::off_t::try_from(size)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "memfd size"))?;
    // SAFETY: plain calls on an fd we own.
    if unsafe { libc::ftruncate(fd.as_raw_fd(), len) } != 0
        || unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, libc::F_SEAL_SHRINK) } != 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// A close-on-exec dma-buf of `size` bytes of `memfd` from `offset` (`UDMABUF_CREATE`).
pub fn udmabuf(memfd: BorrowedFd<'_>, offset: u64, size: u64) -> io::Result<OwnedFd> {
    let dev = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/udmabuf")?;
    let mut a = UdmabufCreate {
        // CAST: an open fd is non-negative.
        memfd: memfd.as_raw_fd() as u32,
        flags: UDMABUF_FLAGS_CLOEXEC,
        offset,
        size,
    };
    let fd = ioctl(dev.as_fd(), UDMABUF_CREATE, &mut a)?;
    // SAFETY: UDMABUF_CREATE returns a new fd, which we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `DMA_BUF_IOCTL_SYNC` with `flags` (`SYNC_START`/`SYNC_END` | `SYNC_READ`/`SYNC_WRITE`).
pub fn sync(buf: BorrowedFd<'_>, flags: u64) -> io::Result<()> {
    let mut f = flags;
    ioctl(buf, DMA_BUF_IOCTL_SYNC, &mut f).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_are_the_kernels() {
        // From linux/udmabuf.h and linux/dma-buf.h, as the kernel computes them.
        assert_eq!(UDMABUF_CREATE, 0x4018_7542);
        assert_eq!(DMA_BUF_IOCTL_SYNC, 0x4008_6200);
        assert_eq!(DMA_BUF_IOCTL_EXPORT_SYNC_FILE, 0xc008_6202);
        assert_eq!(DMA_BUF_IOCTL_IMPORT_SYNC_FILE, 0x4008_6203);
    }
}
