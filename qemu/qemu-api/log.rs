// Copyright 2026 The vagx authors
// SPDX-License-Identifier: GPL-2.0-or-later

//! Logging to QEMU's log (`-d` / `-D`), the Rust side of `qemu_log_mask()`.
//!
//! Added to `qemu-api` by vagx; QEMU 10.0 has no Rust logging API.

use std::ffi::CString;

use crate::bindings;

/// Categories of `qemu_log_mask()`.
#[derive(Clone, Copy, Debug)]
#[repr(u32)]
pub enum Log {
    /// The guest did something invalid (`-d guest_errors`).
    GuestError = bindings::LOG_GUEST_ERROR,
    /// The guest used a feature the device does not implement (`-d unimp`).
    Unimp = bindings::LOG_UNIMP,
}

/// Whether messages of category `log` are enabled.
pub fn log_enabled(log: Log) -> bool {
    // SAFETY: `qemu_loglevel` is a plain global that is only written while parsing options.
    let level = unsafe { bindings::qemu_loglevel };
    level & (log as i32) != 0
}

/// Logs `msg` (one line, without the newline) if category `log` is enabled.
pub fn log_mask(log: Log, msg: &str) {
    if !log_enabled(log) {
        return;
    }
    // Interior NULs cannot be printed through "%s"; drop them rather than the message.
    let line = CString::new(msg.replace('\0', "")).unwrap_or_default();
    // SAFETY: the format string takes exactly one NUL-terminated C string.
    unsafe {
        bindings::qemu_log(c"%s\n".as_ptr(), line.as_ptr());
    }
}

/// Logs a formatted line to QEMU's log if the category is enabled, like `qemu_log_mask()`.
#[macro_export]
macro_rules! log_mask_ln {
    ($log:expr, $($arg:tt)*) => {
        if $crate::log::log_enabled($log) {
            $crate::log::log_mask($log, &::std::format!($($arg)*));
        }
    };
}
