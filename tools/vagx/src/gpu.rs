// SPDX-License-Identifier: GPL-2.0 OR MIT

//! A client of a vagx GPU: the render node, its ioctls, buffer mappings and syncobjs.
//!
//! Every ioctl returns the kernel's errno as an `io::Error`, so that tests can check it.

use std::{
    fs::{self, File, OpenOptions},
    io,
    os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
    path::{Path, PathBuf},
    ptr::NonNull,
};

use crate::uapi;

/// An open vagx render node.
pub struct Gpu {
    file: File,
}

/// The render nodes of vagx GPUs, in name order.
pub fn render_nodes() -> io::Result<Vec<PathBuf>> {
    nodes(|name| name.starts_with("renderD"))
}

/// The environment variable that carries `--gpu N` (the index of the device a command works
/// on); the tool's child processes inherit it.
pub const GPU_ENV: &str = "VAGX_GPU";

/// Which vagx devices a command works on: render node `N` in name order (`--gpu N`), or every
/// one (`--gpus all`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection {
    One(usize),
    All,
}

impl Selection {
    /// The device `--gpu` chose for this process (`VAGX_GPU`; device 0 without it).
    pub fn from_env() -> Self {
        Self::One(
            std::env::var(GPU_ENV)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        )
    }

    /// The selected render nodes with their indices; `NotFound` if there is no vagx render
    /// node or none with that index.
    pub fn nodes(self) -> io::Result<Vec<(usize, PathBuf)>> {
        let all = render_nodes()?;
        let not_found = |what: String| io::Error::new(io::ErrorKind::NotFound, what);
        if all.is_empty() {
            return Err(not_found("no vagx render node".into()));
        }
        match self {
            Self::All => Ok(all.into_iter().enumerate().collect()),
            Self::One(i) => {
                let count = all.len();
                let node = all
                    .into_iter()
                    .nth(i)
                    .ok_or_else(|| not_found(format!("no vagx GPU {i} ({count} present)")))?;
                Ok(vec![(i, node)])
            }
        }
    }
}

/// The PCI address of the device behind the render or card node `node`.
pub fn pci_address(node: &Path) -> io::Result<String> {
    let name = node
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a device node"))?;
    let dev = fs::read_link(Path::new("/sys/class/drm").join(name).join("device"))?;
    Ok(dev
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default())
}

/// The primary (card) nodes of vagx GPUs, in name order.
pub fn card_nodes() -> io::Result<Vec<PathBuf>> {
    // `card0`, not a connector such as `card0-HDMI-A-1`.
    nodes(|name| name.starts_with("card") && !name.contains('-'))
}

/// The `/dev/dri` nodes of vagx GPUs whose names `wanted` accepts, in name order.
fn nodes(wanted: impl Fn(&str) -> bool) -> io::Result<Vec<PathBuf>> {
    let mut nodes = Vec::new();
    for entry in fs::read_dir("/sys/class/drm")? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !wanted(&name) {
            continue;
        }
        let driver = fs::read_link(entry.path().join("device/driver")).ok();
        if driver.is_some_and(|d| d.ends_with("vagx")) {
            nodes.push(Path::new("/dev/dri").join(&name));
        }
    }
    nodes.sort();
    Ok(nodes)
}

/// Issues ioctl `request` with `arg`, returning the errno on failure.
fn ioctl<T>(fd: BorrowedFd<'_>, request: u32, arg: &mut T) -> io::Result<()> {
    // SAFETY: `arg` is a valid, exclusive `T` for the call, and every request passed here is
    // the one the UAPI defines for `T` (its size is encoded in the request and checked by the
    // kernel).
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::c_ulong::from(request), arg as *mut T) };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A CPU mapping of a buffer object, unmapped on drop.
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    /// A shared read-write mapping of `len` bytes of `fd` from `offset` (a DRM file's buffer
    /// object, a dma-buf, a memfd).
    pub fn of_fd(fd: BorrowedFd<'_>, offset: libc::off_t, len: usize) -> io::Result<Self> {
        // SAFETY: a fresh shared mapping of the file; no existing memory is affected.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                offset,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast()).ok_or_else(io::Error::last_os_error)?;
        Ok(Mapping { ptr, len })
    }

    /// Reads the bytes at `offset`.
    pub fn read(&self, offset: usize, out: &mut [u8]) {
        assert!(offset + out.len() <= self.len, "read past the mapping");
        for (i, b) in out.iter_mut().enumerate() {
            // SAFETY: the range is inside the mapping (asserted), which stays mapped while
            // `self` lives; volatile because the GPU writes it behind the compiler's back.
            *b = unsafe { self.ptr.as_ptr().add(offset + i).read_volatile() };
        }
    }

    /// Writes `data` at `offset`.
    pub fn write(&self, offset: usize, data: &[u8]) {
        assert!(offset + data.len() <= self.len, "write past the mapping");
        for (i, b) in data.iter().enumerate() {
            // SAFETY: as in `read`.
            unsafe { self.ptr.as_ptr().add(offset + i).write_volatile(*b) };
        }
    }

    /// Writes `values` at `offset` as little-endian `f32`s, the device's layout.
    pub fn write_f32s(&self, offset: usize, values: &[f32]) {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.write(offset, &bytes);
    }

    /// Reads `count` little-endian `f32`s at `offset`.
    pub fn read_f32s(&self, offset: usize, count: usize) -> Vec<f32> {
        let mut bytes = vec![0u8; count * 4];
        self.read(offset, &mut bytes);
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    /// The `u32` at `offset` (native endian).
    pub fn u32_at(&self, offset: usize) -> u32 {
        let mut b = [0; 4];
        self.read(offset, &mut b);
        u32::from_ne_bytes(b)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned; nothing uses them after this.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// A sync for [`Gpu::submit`].
#[derive(Clone, Copy, Debug)]
pub struct Sync {
    pub handle: u32,
    pub point: u64,
    pub signal: bool,
}

impl Sync {
    /// Wait for `handle` (point 0: binary).
    pub fn wait(handle: u32, point: u64) -> Self {
        Self {
            handle,
            point,
            signal: false,
        }
    }

    /// Signal `handle` (point 0: binary).
    pub fn signal(handle: u32, point: u64) -> Self {
        Self {
            handle,
            point,
            signal: true,
        }
    }
}

impl Gpu {
    /// Opens the render node at `path`.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Self { file })
    }

    /// Opens the first vagx render node.
    pub fn open_first() -> io::Result<Self> {
        Self::open_index(0)
    }

    /// Opens vagx render node `index` (in name order).
    pub fn open_index(index: usize) -> io::Result<Self> {
        let nodes = Selection::One(index).nodes()?;
        Self::open(&nodes[0].1)
    }

    /// Opens the device `--gpu` chose for this process ([`Selection::from_env`]).
    pub fn open_selected() -> io::Result<Self> {
        match Selection::from_env() {
            Selection::One(i) => Self::open_index(i),
            Selection::All => Self::open_index(0),
        }
    }

    /// The file descriptor number (for /proc/self/fdinfo).
    pub fn raw_fd(&self) -> i32 {
        self.file.as_raw_fd()
    }

    /// Driver ioctl `nr` (relative to DRM_COMMAND_BASE) with a 16-byte argument, for tests of
    /// numbers the driver does not define.
    pub fn raw_ioctl(&self, nr: u32, arg: &mut [u64; 2]) -> io::Result<()> {
        ioctl(self.fd(), iowr(0x40 + nr, size_of::<[u64; 2]>()), arg)
    }

    /// The file, for generic DRM ioctls in tests.
    pub fn fd_for_tests(&self) -> BorrowedFd<'_> {
        self.fd()
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// GET_PARAM with a given pad (tests pass garbage).
    pub fn get_param_raw(&self, param: u32, pad: u32) -> io::Result<u64> {
        let mut a = uapi::drm_vagx_get_param {
            param,
            pad,
            value: 0,
        };
        ioctl(self.fd(), uapi::DRM_IOCTL_VAGX_GET_PARAM, &mut a)?;
        Ok(a.value)
    }

    /// GET_PARAM.
    pub fn get_param(&self, param: u32) -> io::Result<u64> {
        self.get_param_raw(param, 0)
    }

    /// GEM_CREATE with flags.
    pub fn gem_create_raw(&self, size: u64, flags: u32) -> io::Result<u32> {
        let mut a = uapi::drm_vagx_gem_create {
            size,
            flags,
            handle: 0,
        };
        ioctl(self.fd(), uapi::DRM_IOCTL_VAGX_GEM_CREATE, &mut a)?;
        Ok(a.handle)
    }

    /// GEM_CREATE.
    pub fn gem_create(&self, size: u64) -> io::Result<u32> {
        self.gem_create_raw(size, 0)
    }

    /// Maps a buffer object of `len` bytes.
    pub fn map(&self, handle: u32, len: usize) -> io::Result<Mapping> {
        let mut a = uapi::drm_vagx_gem_mmap_offset {
            handle,
            flags: 0,
            offset: 0,
        };
        ioctl(self.fd(), uapi::DRM_IOCTL_VAGX_GEM_MMAP_OFFSET, &mut a)?;
        let offset = libc::off_t::try_from(a.offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "mmap offset overflows"))?;
        Mapping::of_fd(self.file.as_fd(), offset, len)
    }

    /// GEM_MMAP_OFFSET alone (tests of its checks).
    pub fn mmap_offset_raw(&self, handle: u32, flags: u32) -> io::Result<u64> {
        let mut a = uapi::drm_vagx_gem_mmap_offset {
            handle,
            flags,
            offset: 0,
        };
        ioctl(self.fd(), uapi::DRM_IOCTL_VAGX_GEM_MMAP_OFFSET, &mut a)?;
        Ok(a.offset)
    }

    /// Closes a GEM handle.
    pub fn gem_close(&self, handle: u32) -> io::Result<()> {
        drm_ffi::gem::close(self.fd(), handle).map(|_| ())
    }

    /// VM_CREATE.
    pub fn vm_create(&self) -> io::Result<u32> {
        let mut a = uapi::drm_vagx_vm_create { flags: 0, vm_id: 0 };
        ioctl(self.fd(), uapi::DRM_IOCTL_VAGX_VM_CREATE, &mut a)?;
        Ok(a.vm_id)
    }

    /// VM_DESTROY.
    pub fn vm_destroy(&self, vm_id: u32) -> io::Result<()> {
        let mut a = uapi::drm_vagx_vm_destroy { vm_id, pad: 0 };
        ioctl(self.fd(), uapi::DRM_IOCTL_VAGX_VM_DESTROY, &mut a)
    }

    /// VM_BIND with every field given.
    pub fn vm_bind_raw(&self, mut a: uapi::drm_vagx_vm_bind) -> io::Result<()> {
        ioctl(self.fd(), uapi::DRM_IOCTL_VAGX_VM_BIND, &mut a)
    }

    /// Maps `range` bytes of `handle` at `va`, read-write.
    pub fn vm_map(&self, vm_id: u32, handle: u32, va: u64, range: u64) -> io::Result<()> {
        let rw = uapi::DRM_VAGX_VM_BIND_READ | uapi::DRM_VAGX_VM_BIND_WRITE;
        self.vm_map_flags(vm_id, handle, va, range, rw)
    }

    /// Maps `range` bytes of `handle` at `va` with `flags` (`DRM_VAGX_VM_BIND_READ`, `_WRITE`).
    pub fn vm_map_flags(
        &self,
        vm_id: u32,
        handle: u32,
        va: u64,
        range: u64,
        flags: u32,
    ) -> io::Result<()> {
        self.vm_bind_raw(uapi::drm_vagx_vm_bind {
            vm_id,
            op: uapi::DRM_VAGX_VM_BIND_OP_MAP,
            handle,
            flags,
            bo_offset: 0,
            va,
            range,
        })
    }

    /// Unmaps `range` bytes at `va`.
    pub fn vm_unmap(&self, vm_id: u32, va: u64, range: u64) -> io::Result<()> {
        self.vm_bind_raw(uapi::drm_vagx_vm_bind {
            vm_id,
            op: uapi::DRM_VAGX_VM_BIND_OP_UNMAP,
            handle: 0,
            flags: 0,
            bo_offset: 0,
            va,
            range,
        })
    }

    /// QUEUE_CREATE with every field given.
    pub fn queue_create_raw(&self, mut a: uapi::drm_vagx_queue_create) -> io::Result<u32> {
        ioctl(self.fd(), uapi::DRM_IOCTL_VAGX_QUEUE_CREATE, &mut a)?;
        Ok(a.queue_id)
    }

    /// QUEUE_CREATE in `vm_id` at `priority` on the compute pipe.
    pub fn queue_create(&self, vm_id: u32, priority: u32) -> io::Result<u32> {
        self.queue_create_raw(uapi::drm_vagx_queue_create {
            vm_id,
            priority,
            pipe: uapi::DRM_VAGX_PIPE_COMPUTE,
            ..Default::default()
        })
    }

    /// QUEUE_DESTROY.
    pub fn queue_destroy(&self, queue_id: u32) -> io::Result<()> {
        let mut a = uapi::drm_vagx_queue_destroy { queue_id, pad: 0 };
        ioctl(self.fd(), uapi::DRM_IOCTL_VAGX_QUEUE_DESTROY, &mut a)
    }

    /// QUEUE_SET_PARAM: `param` (a `DRM_VAGX_QUEUE_PARAM_*`) of queue `queue_id` to `value`.
    pub fn queue_set_param(&self, queue_id: u32, param: u32, value: u64) -> io::Result<()> {
        let mut a = uapi::drm_vagx_queue_set_param {
            queue_id,
            param,
            value,
        };
        ioctl(self.fd(), uapi::DRM_IOCTL_VAGX_QUEUE_SET_PARAM, &mut a)
    }

    /// QUEUE_GET_STATUS.
    pub fn queue_status(&self, queue_id: u32) -> io::Result<uapi::drm_vagx_queue_get_status> {
        let mut a = uapi::drm_vagx_queue_get_status {
            queue_id,
            ..Default::default()
        };
        ioctl(self.fd(), uapi::DRM_IOCTL_VAGX_QUEUE_GET_STATUS, &mut a)?;
        Ok(a)
    }

    /// DEVICE_QUERY with every field given; `data` is the buffer the kernel writes (its
    /// length is not what `size` says: the tests lie about it on purpose, within `data`).
    pub fn device_query_raw(
        &self,
        mut a: uapi::drm_vagx_device_query,
        data: &mut [u8],
    ) -> io::Result<uapi::drm_vagx_device_query> {
        if a.data == 0 && !data.is_empty() {
            a.data = data.as_mut_ptr() as u64;
        }
        ioctl(self.fd(), uapi::DRM_IOCTL_VAGX_DEVICE_QUERY, &mut a)?;
        Ok(a)
    }

    /// DEVICE_QUERY of the device's load.
    pub fn device_load(&self) -> io::Result<uapi::drm_vagx_device_load> {
        let mut load = uapi::drm_vagx_device_load::default();
        let mut a = uapi::drm_vagx_device_query {
            query: uapi::drm_vagx_query_DRM_VAGX_QUERY_LOAD,
            // CAST: the struct is 184 bytes.
            size: size_of::<uapi::drm_vagx_device_load>() as u32,
            data: &mut load as *mut _ as u64,
            ..Default::default()
        };
        ioctl(self.fd(), uapi::DRM_IOCTL_VAGX_DEVICE_QUERY, &mut a)?;
        Ok(load)
    }

    /// SUBMIT with every field given (the syncs array is `syncs`).
    pub fn submit_raw(
        &self,
        mut a: uapi::drm_vagx_submit,
        syncs: &[uapi::drm_vagx_sync],
    ) -> io::Result<()> {
        if !syncs.is_empty() {
            a.syncs = syncs.as_ptr() as u64;
        }
        let start = std::time::Instant::now();
        let r = ioctl(self.fd(), uapi::DRM_IOCTL_VAGX_SUBMIT, &mut a);
        submit_times::record(start.elapsed());
        r
    }

    /// SUBMIT: runs `size` bytes of commands at `cmdbuf` on `queue_id`.
    pub fn submit(&self, queue_id: u32, cmdbuf: u64, size: u32, syncs: &[Sync]) -> io::Result<()> {
        self.submit_flags(queue_id, cmdbuf, size, syncs, 0)
    }

    /// [`Gpu::submit`] with SUBMIT's `flags` (`DRM_VAGX_SUBMIT_NO_IMPLICIT_WAIT`).
    pub fn submit_flags(
        &self,
        queue_id: u32,
        cmdbuf: u64,
        size: u32,
        syncs: &[Sync],
        flags: u32,
    ) -> io::Result<()> {
        self.submit_full(queue_id, cmdbuf, size, syncs, flags, 0)
    }

    /// [`Gpu::submit_flags`] with a deadline (`CLOCK_MONOTONIC` ns, 0 for none).
    pub fn submit_full(
        &self,
        queue_id: u32,
        cmdbuf: u64,
        size: u32,
        syncs: &[Sync],
        flags: u32,
        deadline_ns: u64,
    ) -> io::Result<()> {
        let raw: Vec<uapi::drm_vagx_sync> = syncs
            .iter()
            .map(|s| uapi::drm_vagx_sync {
                handle: s.handle,
                flags: if s.signal {
                    uapi::DRM_VAGX_SYNC_SIGNAL
                } else {
                    0
                },
                point: s.point,
            })
            .collect();
        self.submit_raw(
            uapi::drm_vagx_submit {
                queue_id,
                flags,
                cmdbuf,
                cmdbuf_size: size,
                // CAST: tests use a handful of syncs.
                sync_count: raw.len() as u32,
                deadline_ns,
                ..Default::default()
            },
            &raw,
        )
    }

    /// A new syncobj.
    pub fn syncobj(&self) -> io::Result<u32> {
        Ok(drm_ffi::syncobj::create(self.fd(), false)?.handle)
    }

    /// Destroys a syncobj.
    pub fn syncobj_destroy(&self, handle: u32) -> io::Result<()> {
        drm_ffi::syncobj::destroy(self.fd(), handle).map(|_| ())
    }

    /// Waits for a binary syncobj (with WAIT_FOR_SUBMIT), up to `timeout_ms`.
    pub fn wait(&self, handle: u32, timeout_ms: i64) -> io::Result<()> {
        let deadline = now_ns() + timeout_ms * 1_000_000;
        drm_ffi::syncobj::wait(self.fd(), &[handle], deadline, true, true).map(|_| ())
    }

    /// Waits for timeline point `point` of `handle`, up to `timeout_ms`.
    pub fn wait_point(&self, handle: u32, point: u64, timeout_ms: i64) -> io::Result<()> {
        let deadline = now_ns() + timeout_ms * 1_000_000;
        drm_ffi::syncobj::timeline_wait(self.fd(), &[handle], &[point], deadline, true, true, false)
            .map(|_| ())
    }

    /// SYNCOBJ_WAIT on a binary syncobj with WAIT_FOR_SUBMIT and WAIT_DEADLINE: the kernel
    /// sets `deadline_ns` (CLOCK_MONOTONIC) on its fence, then waits up to `timeout_ms`.
    pub fn wait_with_deadline(
        &self,
        handle: u32,
        deadline_ns: u64,
        timeout_ms: i64,
    ) -> io::Result<()> {
        /// `DRM_SYNCOBJ_WAIT_FLAGS_WAIT_FOR_SUBMIT | DRM_SYNCOBJ_WAIT_FLAGS_WAIT_DEADLINE`.
        const FOR_SUBMIT_WITH_DEADLINE: u32 = 2 | 8;
        let handles = [handle];
        self.syncobj_wait(drm_ffi::drm_syncobj_wait {
            // CAST: a user pointer as the UAPI's u64.
            handles: handles.as_ptr() as u64,
            timeout_nsec: now_ns() + timeout_ms * 1_000_000,
            count_handles: 1,
            flags: FOR_SUBMIT_WITH_DEADLINE,
            deadline_nsec: deadline_ns,
            ..Default::default()
        })
    }

    /// The last signalled point of a timeline.
    pub fn query(&self, handle: u32) -> io::Result<u64> {
        let mut points = [0u64];
        drm_ffi::syncobj::query(self.fd(), &[handle], &mut points, false)?;
        Ok(points[0])
    }

    /// The fence of a binary syncobj as a sync_file fd.
    pub fn export_sync_file(&self, handle: u32) -> io::Result<OwnedFd> {
        let r = drm_ffi::syncobj::handle_to_fd(self.fd(), handle, true)?;
        // SAFETY: the kernel just returned this fd to us; nobody else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(r.fd) })
    }

    /// Replaces a binary syncobj's fence with a sync_file's.
    pub fn import_sync_file(&self, handle: u32, fd: BorrowedFd<'_>) -> io::Result<()> {
        // drm-ffi 0.9's fd_to_handle cannot name the target handle; the raw ioctl can.
        let mut a = drm_ffi::drm_syncobj_handle {
            handle,
            flags: drm_ffi::DRM_SYNCOBJ_FD_TO_HANDLE_FLAGS_IMPORT_SYNC_FILE,
            fd: fd.as_raw_fd(),
            pad: 0,
            point: 0,
        };
        // DRM_IOCTL_SYNCOBJ_FD_TO_HANDLE = DRM_IOWR(0xC2, struct drm_syncobj_handle).
        ioctl(
            self.fd(),
            iowr(0xC2, size_of::<drm_ffi::drm_syncobj_handle>()),
            &mut a,
        )
    }
}

/// `struct drm_prime_handle` (drm.h).
#[repr(C)]
#[derive(Default)]
struct PrimeHandle {
    handle: u32,
    flags: u32,
    fd: i32,
}

impl Gpu {
    /// Exports buffer object `handle` as a dma-buf (`DRM_CLOEXEC | DRM_RDWR`).
    pub fn prime_export(&self, handle: u32) -> io::Result<OwnedFd> {
        self.prime_export_flags(handle, libc::O_CLOEXEC | libc::O_RDWR)
    }

    /// Exports buffer object `handle` as a dma-buf with `flags` (`DRM_CLOEXEC`, `DRM_RDWR`:
    /// without the latter, importers may only read it).
    pub fn prime_export_flags(&self, handle: u32, flags: i32) -> io::Result<OwnedFd> {
        let mut a = PrimeHandle {
            handle,
            // CAST: open flags are small and positive.
            flags: flags as u32,
            fd: -1,
        };
        // DRM_IOCTL_PRIME_HANDLE_TO_FD = DRM_IOWR(0x2d, struct drm_prime_handle).
        ioctl(self.fd(), iowr(0x2d, size_of::<PrimeHandle>()), &mut a)?;
        // SAFETY: the kernel just returned this fd to us; nobody else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(a.fd) })
    }

    /// Imports a dma-buf as a buffer object handle.
    pub fn prime_import(&self, fd: BorrowedFd<'_>) -> io::Result<u32> {
        let mut a = PrimeHandle {
            fd: fd.as_raw_fd(),
            ..Default::default()
        };
        // DRM_IOCTL_PRIME_FD_TO_HANDLE = DRM_IOWR(0x2e, struct drm_prime_handle).
        ioctl(self.fd(), iowr(0x2e, size_of::<PrimeHandle>()), &mut a)?;
        Ok(a.handle)
    }

    /// Shares syncobj `handle` (the object itself, binary or timeline) as an fd.
    pub fn syncobj_export(&self, handle: u32) -> io::Result<OwnedFd> {
        let r = drm_ffi::syncobj::handle_to_fd(self.fd(), handle, false)?;
        // SAFETY: the kernel just returned this fd to us; nobody else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(r.fd) })
    }

    /// Opens a syncobj shared with [`Self::syncobj_export`] in this file.
    pub fn syncobj_import(&self, fd: BorrowedFd<'_>) -> io::Result<u32> {
        Ok(drm_ffi::syncobj::fd_to_handle(self.fd(), fd, false)?.handle)
    }
}

/// `struct drm_mode_create_dumb` (drm_mode.h).
#[repr(C)]
#[derive(Default)]
struct CreateDumb {
    height: u32,
    width: u32,
    bpp: u32,
    flags: u32,
    handle: u32,
    pitch: u32,
    size: u64,
}

impl Gpu {
    /// MODE_CREATE_DUMB: a dumb buffer of `width` × `height` at 32 bpp.
    pub fn create_dumb(&self, width: u32, height: u32) -> io::Result<u32> {
        let mut a = CreateDumb {
            height,
            width,
            bpp: 32,
            ..Default::default()
        };
        // DRM_IOCTL_MODE_CREATE_DUMB = DRM_IOWR(0xB2, struct drm_mode_create_dumb).
        ioctl(self.fd(), iowr(0xB2, size_of::<CreateDumb>()), &mut a)?;
        Ok(a.handle)
    }

    /// SYNCOBJ_WAIT on `count` handles read from `handles` (tests pass a count larger than the
    /// array to see the kernel refuse it).
    pub fn syncobj_wait_raw(&self, handles: &[u32], count: u32) -> io::Result<()> {
        self.syncobj_wait(drm_ffi::drm_syncobj_wait {
            // CAST: a user pointer as the UAPI's u64.
            handles: handles.as_ptr() as u64,
            timeout_nsec: 0,
            count_handles: count,
            ..Default::default()
        })
    }

    /// DRM_IOCTL_SYNCOBJ_WAIT = DRM_IOWR(0xC3, struct drm_syncobj_wait) with `a` as it is.
    fn syncobj_wait(&self, mut a: drm_ffi::drm_syncobj_wait) -> io::Result<()> {
        ioctl(
            self.fd(),
            iowr(0xC3, size_of::<drm_ffi::drm_syncobj_wait>()),
            &mut a,
        )
    }
}

/// Waits up to `timeout_ms` for a sync_file's fence to signal; whether it did.
pub fn sync_file_wait(fd: BorrowedFd<'_>, timeout_ms: i32) -> io::Result<bool> {
    Ok(sync_files_poll(&[fd], timeout_ms)?[0])
}

/// Waits up to `timeout_ms` (negative: for ever) until one of `fds`' fences signals, whichever
/// device's it is; which of them have signalled.
pub fn sync_files_poll(fds: &[BorrowedFd<'_>], timeout_ms: i32) -> io::Result<Vec<bool>> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // CAST: as many pollfds as fds, which a process can hold.
    let count = p.len() as libc::nfds_t;
    // SAFETY: `p` holds `count` valid pollfds for the call.
    let n = unsafe { libc::poll(p.as_mut_ptr(), count, timeout_ms) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(p.iter().map(|p| p.revents & libc::POLLIN != 0).collect())
}

/// `DRM_IOWR(nr, size)`.
fn iowr(nr: u32, size: usize) -> u32 {
    // CAST: ioctl argument sizes fit in 14 bits.
    (3 << 30) | ((size as u32) << 16) | (u32::from(b'd') << 8) | nr
}

/// CLOCK_MONOTONIC in nanoseconds, as syncobj deadlines are.
pub fn now_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// `struct sync_file_info` of `<linux/sync_file.h>`.
#[repr(C)]
#[derive(Default)]
struct SyncFileInfo {
    name: [u8; 32],
    status: i32,
    flags: u32,
    num_fences: u32,
    pad: u32,
    sync_fence_info: u64,
}

/// `struct sync_fence_info` of `<linux/sync_file.h>`.
#[repr(C)]
#[derive(Default)]
struct SyncFenceInfo {
    obj_name: [u8; 32],
    driver_name: [u8; 32],
    status: i32,
    flags: u32,
    timestamp_ns: u64,
}

/// SYNC_IOC_FILE_INFO on `fd`; with `fence`, the info of its first fence too.
fn sync_file_info(
    fd: BorrowedFd<'_>,
    fence: Option<&mut SyncFenceInfo>,
) -> io::Result<SyncFileInfo> {
    let mut info = SyncFileInfo::default();
    if let Some(f) = fence {
        info.num_fences = 1;
        // CAST: a user pointer as the UAPI's u64.
        info.sync_fence_info = f as *mut SyncFenceInfo as u64;
    }
    // SYNC_IOC_FILE_INFO = _IOWR('>', 4, struct sync_file_info).
    // CAST: the struct is 56 bytes.
    let req =
        (3u32 << 30) | ((size_of::<SyncFileInfo>() as u32) << 16) | (u32::from(b'>') << 8) | 4;
    ioctl(fd, req, &mut info)?;
    Ok(info)
}

/// The status of a sync_file's fence: `Ok(true)` signalled, `Ok(false)` pending, `Err` its
/// error (SYNC_IOC_FILE_INFO).
pub fn sync_file_status(fd: BorrowedFd<'_>) -> io::Result<Result<bool, i32>> {
    Ok(match sync_file_info(fd, None)?.status {
        1 => Ok(true),
        0 => Ok(false),
        e => Err(-e),
    })
}

/// When a signalled sync_file's (first) fence signalled, in CLOCK_MONOTONIC ns
/// (SYNC_IOC_FILE_INFO with its fence array); `None` if it has not.
pub fn sync_file_signal_ns(fd: BorrowedFd<'_>) -> io::Result<Option<i64>> {
    let mut fence = SyncFenceInfo::default();
    sync_file_info(fd, Some(&mut fence))?;
    Ok((fence.status == 1).then(|| i64::try_from(fence.timestamp_ns).unwrap_or(i64::MAX)))
}

/// Wants a sync_file's fence signalled by `deadline_ns` (CLOCK_MONOTONIC):
/// SYNC_IOC_SET_DEADLINE.
pub fn sync_file_set_deadline(fd: BorrowedFd<'_>, deadline_ns: u64) -> io::Result<()> {
    /// `struct sync_set_deadline` of `<linux/sync_file.h>`.
    #[repr(C)]
    struct SetDeadline {
        deadline_ns: u64,
        pad: u64,
    }
    let mut a = SetDeadline {
        deadline_ns,
        pad: 0,
    };
    // SYNC_IOC_SET_DEADLINE = _IOW('>', 5, struct sync_set_deadline).
    // CAST: the struct is 16 bytes.
    let req = (1u32 << 30) | ((size_of::<SetDeadline>() as u32) << 16) | (u32::from(b'>') << 8) | 5;
    ioctl(fd, req, &mut a)
}

extern "C" fn on_alarm(_: libc::c_int) {}

/// Sends this process SIGALRM every `interval_us` µs, handled without `SA_RESTART` so that a
/// blocking ioctl sees `EINTR` (tests of interrupted calls); 0 stops the timer and ignores the
/// signal again.
pub fn alarm_every(interval_us: i64) -> io::Result<()> {
    // SAFETY: an all-zero sigaction is a valid value, completed below.
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = if interval_us > 0 {
        // CAST: a handler's address, as sigaction takes it.
        on_alarm as *const () as usize
    } else {
        libc::SIG_IGN
    };
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: interval_us,
    };
    let timer = libc::itimerval {
        it_interval: tv,
        it_value: tv,
    };
    let handler = || {
        // SAFETY: `act` is valid and its handler an async-signal-safe no-op; no old action.
        unsafe { libc::sigaction(libc::SIGALRM, &act, std::ptr::null_mut()) == 0 }
    };
    let arm = || {
        // SAFETY: `timer` is valid; the old timer is not wanted.
        unsafe { libc::setitimer(libc::ITIMER_REAL, &timer, std::ptr::null_mut()) == 0 }
    };
    let check = |ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    // The handler is in place before the first alarm, and stays until the last is gone.
    if interval_us > 0 {
        check(handler())?;
        check(arm())
    } else {
        check(arm())?;
        check(handler())
    }
}

/// Runs `child` in a forked child process and returns whether it exited with status 0.
///
/// The caller must be single-threaded (a forked child has only the calling thread). The child
/// leaves with `_exit`, running none of the parent's destructors.
pub fn in_child_process(child: impl FnOnce() -> bool) -> io::Result<bool> {
    // SAFETY: the tool runs its tests on one thread; the child only runs `child` and exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        let code = if child() { 0 } else { 1 };
        // SAFETY: ends the child without unwinding into the parent's state.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child just made; `status` is a valid out-pointer.
    if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
        return Err(io::Error::last_os_error());
    }
    Ok(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0)
}

/// How long each `SUBMIT` ioctl of this process took: what a benchmark reports beside the
/// device's time, to tell the kernel's submit cost from the CPU's own work around it.
pub mod submit_times {
    use std::{sync::Mutex, time::Duration};

    static TIMES: Mutex<Vec<u32>> = Mutex::new(Vec::new());

    /// Most durations kept (a bench's run submits a few hundred jobs).
    const KEPT: usize = 1 << 16;

    pub(super) fn record(d: Duration) {
        let mut t = TIMES.lock().unwrap_or_else(|e| e.into_inner());
        if t.len() < KEPT {
            t.push(u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
        }
    }

    /// The durations recorded since the last call, in µs, sorted.
    pub fn take() -> Vec<u32> {
        let mut t = std::mem::take(&mut *TIMES.lock().unwrap_or_else(|e| e.into_inner()));
        t.sort_unstable();
        t
    }

    /// The `q`-quantile (0 to 1) of sorted `times`, 0 if there are none.
    pub fn quantile(times: &[u32], q: f64) -> u32 {
        if times.is_empty() {
            return 0;
        }
        // CAST: q is in 0..=1, so the index is within the slice.
        let i = ((times.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
        times[i]
    }
}
