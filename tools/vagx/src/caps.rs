// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The calling thread's capabilities. Linux keeps them per thread: a test that checks that an
//! ioctl needs a capability drops it in a thread of its own, and the other tests keep it.

use std::io;

/// `CAP_SYS_NICE`'s bit.
const CAP_SYS_NICE: u32 = 23;
/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const VERSION_3: u32 = 0x2008_0522;

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct Header {
    version: u32,
    pid: i32,
}

/// `struct __user_cap_data_struct`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Removes `CAP_SYS_NICE` from the calling thread's effective set.
pub fn drop_sys_nice_in_this_thread() -> io::Result<()> {
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget(2) with a version-3 header reads the header and writes two data structs,
    // which `header` and `data` are, alive for the call.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    data[0].effective &= !(1 << CAP_SYS_NICE);
    // SAFETY: capset(2) reads the same header and two data structs.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
