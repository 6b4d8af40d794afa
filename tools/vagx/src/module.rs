// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Loading and unloading kernel modules with `finit_module(2)` and `delete_module(2)`.

use std::{ffi::CString, fs::File, io, os::fd::AsRawFd, path::Path};

/// Loads the module at `path` with no parameters.
///
/// # Errors
///
/// The errno of `finit_module`, e.g. `EEXIST` if the module is already loaded.
pub fn load(path: &Path) -> io::Result<()> {
    load_with(path, "")
}

/// Loads the module at `path` with parameters `params` (`name=value ...`).
///
/// # Errors
///
/// As [`load`]; `EINVAL` also for a parameter the module rejects.
pub fn load_with(path: &Path, params: &str) -> io::Result<()> {
    let file = File::open(path)?;
    let params = CString::new(params).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let (fd, params) = (file.as_raw_fd(), params.as_ptr());
    // SAFETY: the fd is open for the duration of the call and `params` is a valid C string.
    let ret = unsafe { libc::syscall(libc::SYS_finit_module, fd, params, 0) };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Unloads the module `name`, failing instead of waiting if it is in use.
///
/// # Errors
///
/// The errno of `delete_module`, e.g. `ENOENT` if it is not loaded or `EWOULDBLOCK` if in use.
pub fn unload(name: &str) -> io::Result<()> {
    let name = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `name` is a valid C string for the duration of the call.
    let ret = unsafe { libc::syscall(libc::SYS_delete_module, name.as_ptr(), libc::O_NONBLOCK) };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether module `name` is loaded, from `/proc/modules`.
pub fn is_loaded(name: &str) -> io::Result<bool> {
    let text = std::fs::read_to_string("/proc/modules")?;
    Ok(text
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name)))
}
