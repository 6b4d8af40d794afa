// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The register file: decoding of guest register accesses, and the registers that are plain
//! state (scratch, the mailboxes, the interrupt latch, the debug arguments).
//!
//! `Registers` is the device's register block in the way of a hardware one: a write changes
//! registers and returns what else it asks for (an `Action`), which [`Device`] carries out; an
//! interrupt it latches leaves a request that [`Device::take_irq`] collects. The registers that
//! show the firmware's state and identity (`ID`, `ABI_VERSION`, `UNITS`, `FW_STATE`,
//! `FW_ERROR`) are read by [`Device::mmio_read`] from their owners.
//!
//! [`Device`]: crate::Device
//! [`Device::take_irq`]: crate::Device::take_irq
//! [`Device::mmio_read`]: crate::Device::mmio_read

use std::collections::VecDeque;

use vagx_abi::{mbox, pci, regs::*};

/// Why a guest register access was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioError {
    /// No register at this offset.
    Unmapped(u64),
    /// A write to a read-only register.
    ReadOnly(u64),
    /// Not a naturally aligned 32-bit access.
    BadAccess { offset: u64, size: u32 },
    /// A value the register does not accept.
    BadValue { offset: u64, value: u32 },
}

impl core::fmt::Display for MmioError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::Unmapped(offset) => write!(f, "no register at offset {offset:#x}"),
            Self::ReadOnly(offset) => write!(f, "write to read-only register at {offset:#x}"),
            Self::BadAccess { offset, size } => write!(
                f,
                "{size}-byte access at {offset:#x}; registers take aligned 4-byte accesses"
            ),
            Self::BadValue { offset, value } => {
                write!(
                    f,
                    "value {value:#x} not accepted by the register at {offset:#x}"
                )
            }
        }
    }
}

/// Checks the shape of an access and returns the register offset it names.
///
/// # Errors
///
/// [`MmioError::BadAccess`] for other than aligned 4-byte accesses, [`MmioError::Unmapped`]
/// beyond BAR0.
pub fn decode(offset: u64, size: u32) -> Result<usize, MmioError> {
    if size != 4 || !offset.is_multiple_of(4) {
        return Err(MmioError::BadAccess { offset, size });
    }
    usize::try_from(offset)
        .ok()
        .filter(|&o| o < pci::BAR0_SIZE)
        .ok_or(MmioError::Unmapped(offset))
}

/// What a register write asks of the device beyond the register change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Nothing.
    None,
    /// `MBOX_H2F_SEND`: message `msg` goes to the firmware's endpoint `ep`.
    Send { ep: u32, msg: u64 },
    /// `RESET` with [`RESET_MAGIC`]: the device resets.
    Reset,
    /// `DEBUG_INJECT`: injection `what` is armed with `DEBUG_ARG0` and `DEBUG_ARG1` (`args`);
    /// an unknown one is refused with [`MmioError::BadValue`].
    Inject { what: u32, args: [u32; 2] },
}

/// The guest-visible registers that hold plain state, the firmware-to-host mailbox FIFO and
/// the interrupt latch.
///
/// # Invariants
///
/// `f2h` holds at most [`MBOX_F2H_DEPTH`] messages; `irq_mask` has only the causes of the
/// device's ABI ([`Registers::causes`]).
#[derive(Clone, Debug, Default)]
pub(crate) struct Registers {
    scratch: u32,
    /// `MBOX_H2F_LO` and `MBOX_H2F_HI`: the message the next `MBOX_H2F_SEND` sends.
    h2f: [u32; 2],
    /// Firmware-to-host messages as (endpoint, message), oldest first.
    f2h: VecDeque<(u32, u64)>,
    irq_status: u32,
    irq_mask: u32,
    /// An interrupt notification is requested and not yet taken.
    irq_notify: bool,
    /// Device time at which the pending notification was requested.
    irq_since: u64,
    debug_args: [u32; 2],
    /// The ABI minor version of the register file: 1.3 adds `DOORBELL` and `IRQ_RINGS`.
    minor: u16,
}

impl Registers {
    /// The register file of a device of ABI minor version `minor`, in its reset state.
    pub(crate) fn new(minor: u16) -> Self {
        Self {
            minor,
            ..Self::default()
        }
    }

    /// The interrupt causes the device has.
    fn causes(&self) -> u32 {
        if self.minor >= ABI_MINOR_FAST_NOTIFY {
            IRQ_ALL | IRQ_RINGS
        } else {
            IRQ_ALL
        }
    }

    /// Whether the host takes ring writes as [`IRQ_RINGS`] (it unmasked it) rather than as
    /// `MSG_RX_DOORBELL` messages.
    pub(crate) fn rings_irq(&self) -> bool {
        self.irq_mask & IRQ_RINGS != 0
    }

    /// The value of register `reg` (an offset from [`decode`]), if it is one of these.
    pub(crate) fn read(&self, reg: usize) -> Option<u32> {
        let head = self.f2h.front().copied().unwrap_or((0, 0));
        Some(match reg {
            SCRATCH => self.scratch,
            MBOX_H2F_LO => self.h2f[0],
            MBOX_H2F_HI => self.h2f[1],
            // CAST: the low and high halves of the message.
            MBOX_F2H_LO => head.1 as u32,
            MBOX_F2H_HI => (head.1 >> 32) as u32,
            MBOX_F2H_EP => head.0,
            // CAST: the FIFO holds at most MBOX_F2H_DEPTH messages.
            MBOX_F2H_COUNT => self.f2h.len() as u32,
            IRQ_STATUS => self.irq_status,
            IRQ_MASK => self.irq_mask,
            DEBUG_ARG0 => self.debug_args[0],
            DEBUG_ARG1 => self.debug_args[1],
            // Write-only registers read as zero.
            MBOX_H2F_SEND | RESET | DEBUG_INJECT => 0,
            DOORBELL if self.minor >= ABI_MINOR_FAST_NOTIFY => 0,
            _ => return None,
        })
    }

    /// Writes `value` to the register at `offset` with an access of `size` bytes, at device
    /// time `now`; returns what the device must do besides.
    ///
    /// # Errors
    ///
    /// [`MmioError`] if the access is not an aligned 4-byte access to a writable register or
    /// `RESET` gets a wrong magic; nothing changes then.
    pub(crate) fn write(
        &mut self,
        offset: u64,
        size: u32,
        value: u32,
        now: u64,
    ) -> Result<Action, MmioError> {
        match decode(offset, size)? {
            SCRATCH => self.scratch = value,
            MBOX_H2F_LO => self.h2f[0] = value,
            MBOX_H2F_HI => self.h2f[1] = value,
            MBOX_H2F_SEND => {
                let msg = (u64::from(self.h2f[1]) << 32) | u64::from(self.h2f[0]);
                return Ok(Action::Send { ep: value, msg });
            }
            MBOX_F2H_COUNT => {
                self.f2h.pop_front();
                if !self.f2h.is_empty() {
                    self.raise(IRQ_MBOX, now);
                }
            }
            IRQ_STATUS => self.irq_status &= !value,
            DOORBELL if self.minor >= ABI_MINOR_FAST_NOTIFY => {
                return Ok(Action::Send {
                    ep: mbox::EP_DOORBELL,
                    msg: mbox::message(mbox::MSG_DOORBELL, u64::from(value)),
                });
            }
            IRQ_MASK => {
                self.irq_mask = value & self.causes();
                if self.irq_status & self.irq_mask != 0 {
                    self.request_irq(now);
                }
            }
            RESET if value == RESET_MAGIC => return Ok(Action::Reset),
            RESET => return Err(MmioError::BadValue { offset, value }),
            DEBUG_ARG0 => self.debug_args[0] = value,
            DEBUG_ARG1 => self.debug_args[1] = value,
            DEBUG_INJECT => {
                return Ok(Action::Inject {
                    what: value,
                    args: self.debug_args,
                })
            }
            ID | ABI_VERSION | UNITS | FW_STATE | FW_ERROR | MBOX_F2H_LO | MBOX_F2H_HI
            | MBOX_F2H_EP => return Err(MmioError::ReadOnly(offset)),
            _ => return Err(MmioError::Unmapped(offset)),
        }
        Ok(Action::None)
    }

    /// Latches interrupt causes at device time `now`; an unmasked new cause requests a
    /// notification (`IRQ_MBOX` does even when already latched: every message is news).
    pub(crate) fn raise(&mut self, causes: u32, now: u64) {
        let new = causes & !self.irq_status;
        self.irq_status |= causes;
        if (new | causes & IRQ_MBOX) & self.irq_mask != 0 {
            self.request_irq(now);
        }
    }

    fn request_irq(&mut self, now: u64) {
        if !self.irq_notify {
            self.irq_notify = true;
            self.irq_since = now;
        }
    }

    /// Takes the pending notification request: the device time it was made at, if any.
    pub(crate) fn take_irq_request(&mut self) -> Option<u64> {
        std::mem::take(&mut self.irq_notify).then_some(self.irq_since)
    }

    /// Makes a notification request again, as of the time of the last one (a held-back
    /// notification that is due).
    pub(crate) fn renew_irq_request(&mut self) {
        self.irq_notify = true;
    }

    /// Queues a firmware-to-host mailbox message at device time `now` and raises `IRQ_MBOX`.
    ///
    /// A full FIFO drops the oldest `MSG_RX_DOORBELL` first (the host reads every ring when it
    /// handles any of them), else the new message.
    pub(crate) fn send_to_host(&mut self, ep: u32, msg: u64, now: u64) {
        if self.f2h.len() >= MBOX_F2H_DEPTH {
            match self.f2h.iter().position(|&(_, m)| is_doorbell(m)) {
                Some(i) => {
                    self.f2h.remove(i);
                }
                None => return,
            }
        }
        self.f2h.push_back((ep, msg));
        self.raise(IRQ_MBOX, now);
    }

    /// Whether a `MSG_RX_DOORBELL` waits in the firmware-to-host FIFO.
    pub(crate) fn doorbell_pending(&self) -> bool {
        self.f2h.iter().any(|&(_, m)| is_doorbell(m))
    }
}

/// Whether firmware-to-host message `msg` is a `MSG_RX_DOORBELL`.
fn is_doorbell(msg: u64) -> bool {
    mbox::message_type(msg) == mbox::MSG_RX_DOORBELL
}
