// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Mailbox messages: 64-bit words with an endpoint, as in Apple's RTKit.
//!
//! A message's type is in bits 63:56, its payload in bits 55:0.

/// Endpoint of firmware management: boot, crash reports.
pub const EP_FIRMWARE: u32 = 0x20;
/// Endpoint of doorbells (host to firmware only).
pub const EP_DOORBELL: u32 = 0x21;

/// Host to firmware on [`EP_FIRMWARE`]: boot with the init data at the payload's address
/// (a bus address, 4 KiB aligned).
pub const MSG_INIT: u8 = 0x81;
/// Host to firmware on [`EP_DOORBELL`]: the payload is a `DOORBELL_*` number.
pub const MSG_DOORBELL: u8 = 0x83;

/// Firmware to host on [`EP_FIRMWARE`]: boot finished; payload 0, or a `FwError` value.
pub const MSG_INIT_DONE: u8 = 0x82;
/// Firmware to host on [`EP_FIRMWARE`]: the event, log or stats ring has new entries.
pub const MSG_RX_DOORBELL: u8 = 0x42;
/// Firmware to host on [`EP_FIRMWARE`]: the firmware crashed; payload is a `FwError` value.
pub const MSG_CRASHED: u8 = 0x43;

/// Doorbell: the device-control ring has new entries.
pub const DOORBELL_DEVCTRL: u64 = 0x11;
/// Doorbell: one or more submission pipes have new entries; the firmware scans them all.
pub const DOORBELL_KICK: u64 = 0x10;
/// Doorbells `DOORBELL_PIPE_BASE + i` kick submission pipe `i` only.
pub const DOORBELL_PIPE_BASE: u64 = 0x00;

/// Mask of a message's payload.
pub const PAYLOAD_MASK: u64 = (1 << 56) - 1;

/// Builds a message from its type and payload.
pub const fn message(ty: u8, payload: u64) -> u64 {
    ((ty as u64) << 56) | (payload & PAYLOAD_MASK)
}

/// The type of a message.
pub const fn message_type(msg: u64) -> u8 {
    // CAST: the shift leaves eight bits.
    (msg >> 56) as u8
}

/// The payload of a message.
pub const fn message_payload(msg: u64) -> u64 {
    msg & PAYLOAD_MASK
}

/// A firmware error code: why the firmware failed to boot or crashed (in `FW_ERROR`,
/// `MSG_INIT_DONE`, `MSG_CRASHED` and `EVENT_CRASH`), or why a work-queue entry failed without
/// halting the firmware (in `channels::EventEntryError`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum FwError {
    /// The init data could not be read (bad address).
    InitUnreadable = 1,
    /// The init data's magic is wrong.
    InitBadMagic = 2,
    /// The init data asks for an ABI version the firmware does not implement.
    InitBadVersion = 3,
    /// A ring in the init data is malformed (bad count, entry size, address or overlap).
    InitBadRing = 4,
    /// A message arrived that is not valid in the firmware's state.
    BadMessage = 5,
    /// A crash injected through `DEBUG_INJECT`.
    Injected = 6,
    /// ABI 1.1, entries only: the entry waited for an entry that failed, so it was failed
    /// without running its commands. Never a boot or crash reason.
    Dependency = 7,
}

impl FwError {
    /// What the error means, in words (for logs).
    pub fn description(self) -> &'static str {
        match self {
            Self::InitUnreadable => "init data unreadable",
            Self::InitBadMagic => "bad init data magic",
            Self::InitBadVersion => "unsupported ABI version",
            Self::InitBadRing => "malformed ring",
            Self::BadMessage => "unexpected message",
            Self::Injected => "injected crash",
            Self::Dependency => "failed dependency",
        }
    }

    /// Decodes an error value.
    pub fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            1 => Self::InitUnreadable,
            2 => Self::InitBadMagic,
            3 => Self::InitBadVersion,
            4 => Self::InitBadRing,
            5 => Self::BadMessage,
            6 => Self::Injected,
            7 => Self::Dependency,
            _ => return None,
        })
    }
}
