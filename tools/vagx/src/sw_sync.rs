// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Fences the CPU signals: a sw_sync timeline (`CONFIG_SW_SYNC`, debugfs `sync/sw_sync`) hands
//! out sync_files for points on it and signals them when the test advances it. A test gates
//! jobs on such a fence to hold them in the scheduler for as long as it needs, independent of
//! how fast the host runs the guest.

use std::{
    fs::OpenOptions,
    io,
    os::fd::{AsFd, FromRawFd, OwnedFd},
};

use crate::dmabuf::{ioc, ioctl};

/// `struct sw_sync_create_fence_data` (drivers/dma-buf/sw_sync.c).
#[repr(C)]
struct CreateFence {
    value: u32,
    name: [u8; 32],
    fence: i32,
}

/// `SW_SYNC_IOC_CREATE_FENCE = _IOWR('W', 0, struct sw_sync_create_fence_data)`.
const SW_SYNC_IOC_CREATE_FENCE: u32 = ioc(3, b'W', 0, size_of::<CreateFence>());
/// `SW_SYNC_IOC_INC = _IOW('W', 1, __u32)`.
const SW_SYNC_IOC_INC: u32 = ioc(1, b'W', 1, size_of::<u32>());

/// A timeline at 0. Closing it signals its pending fences with `ENOENT`, so a test that ends
/// early leaves no job gated for ever.
pub struct Timeline(OwnedFd);

impl Timeline {
    pub fn new() -> io::Result<Self> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/sys/kernel/debug/sync/sw_sync")?;
        Ok(Self(f.into()))
    }

    /// A sync_file that signals when the timeline reaches `value`.
    pub fn fence(&self, value: u32) -> io::Result<OwnedFd> {
        let mut name = [0u8; 32];
        name[..4].copy_from_slice(b"gate");
        let mut a = CreateFence {
            value,
            name,
            fence: -1,
        };
        ioctl(self.0.as_fd(), SW_SYNC_IOC_CREATE_FENCE, &mut a)?;
        // SAFETY: the kernel returned a new fd, which we own.
        Ok(unsafe { OwnedFd::from_raw_fd(a.fence) })
    }

    /// Advances the timeline by `by`, signalling the fences it passes.
    pub fn advance(&self, by: u32) -> io::Result<()> {
        let mut n = by;
        ioctl(self.0.as_fd(), SW_SYNC_IOC_INC, &mut n).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_are_the_kernels() {
        // From drivers/dma-buf/sw_sync.c, as the kernel computes them.
        assert_eq!(SW_SYNC_IOC_CREATE_FENCE, 0xc028_5700);
        assert_eq!(SW_SYNC_IOC_INC, 0x4004_5701);
    }
}
