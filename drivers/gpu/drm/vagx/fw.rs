// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The firmware transport: mailbox, boot, device-control calls and the rings from the firmware.
//!
//! Everything here follows `Documentation/gpu/vagx-firmware.rst`; what the driver does with
//! an event is [`crate::gpu`]'s business.

use kernel::{
    device::{
        Bound,
        Device, //
    },
    devres::Devres,
    io::{
        poll::read_poll_timeout,
        Io, //
    },
    new_mutex, new_spinlock_irq, pci,
    prelude::*,
    sync::{
        Mutex,
        SpinLockIrq, //
    },
    time::{
        Delta,
        Instant,
        Monotonic, //
    },
};

use core::sync::atomic::{
    AtomicU32,
    Ordering::Relaxed, //
};

use crate::{
    abi::{
        channels::{
            self,
            DevCtrlArgs,
            DevCtrlMsg,
            EventDevCtrlDone,
            EventMsg,
            LogMsg,
            PipeMsg,
            StatsMsg, //
        },
        init::{
            InitData,
            PendingTable,
            INIT_MAGIC, //
        },
        mbox,
        queue::Peer,
        regs::{
            self as r,
            FwState,
            UnknownFwState, //
        },
        NUM_PIPES, NUM_STAMP_SLOTS,
    },
    fwmem::FwMem,
    regs::{
        self,
        AbiVersion, //
    },
    ring::{
        Layout,
        Pointers,
        RxRing,
        TxRing, //
    },
};

/// BAR0 of a vagx device, sized to the register window.
pub(crate) type Bar0 = pci::Bar<'static, { regs::END }>;

/// Entries of the device-control ring.
const DEVCTRL_COUNT: u32 = 64;
/// Entries of the event ring: enough for a burst of stamps, faults and replies.
const EVENT_COUNT: u32 = 1024;
/// Entries of the firmware-log ring.
const FWLOG_COUNT: u32 = 64;
/// Entries of the statistics ring.
const STATS_COUNT: u32 = 256;
/// Entries of each submission pipe.
pub(crate) const PIPE_COUNT: u32 = 256;

/// How long the firmware may take to boot or to answer a device-control message.
const FW_TIMEOUT: Delta = Delta::from_secs(2);

/// A device-control operation with its typed reply.
pub(crate) trait DevCtrlOp: DevCtrlArgs {
    /// What a successful reply carries.
    type Reply;
    /// Decodes the reply's `value`.
    fn reply(value: u64) -> Self::Reply;
}

/// Declares operations whose reply carries nothing.
macro_rules! unit_reply {
    ($($ty:ty),*) => {$(
        impl DevCtrlOp for $ty {
            type Reply = ();
            fn reply(_value: u64) {}
        }
    )*};
}
unit_reply!(
    channels::DevCtrlCreateQueue,
    channels::DevCtrlDestroyQueue,
    channels::DevCtrlBindVm,
    channels::DevCtrlUnbindVm,
    channels::DevCtrlHalt,
    channels::DevCtrlResume,
    channels::DevCtrlFlush,
    channels::DevCtrlSetQueuePriority,
    channels::DevCtrlSetQueueWeight
);

impl DevCtrlOp for channels::DevCtrlResetQueue {
    /// Entries discarded.
    type Reply = u64;
    fn reply(value: u64) -> u64 {
        value
    }
}

impl DevCtrlOp for channels::DevCtrlQuery {
    type Reply = u64;
    fn reply(value: u64) -> u64 {
        value
    }
}

/// The errno of a device-control status.
fn status_to_error(status: u32) -> Error {
    match status {
        channels::DEVCTRL_BUSY => EBUSY,
        channels::DEVCTRL_NOT_FOUND => ENOENT,
        channels::DEVCTRL_EXISTS => EEXIST,
        _ => EINVAL,
    }
}

/// The device-control ring and the next sequence number; callers are serialised.
struct DevCtrl {
    ring: TxRing<DevCtrlMsg>,
    seq: u32,
}

/// The reply slot the event handler fills, and when it did.
#[derive(Default)]
struct Reply {
    done: Option<EventDevCtrlDone>,
    at: Option<Instant<Monotonic>>,
}

/// Everything the driver shares with the firmware.
#[pin_data]
pub(crate) struct Firmware {
    bar: Devres<Bar0>,
    /// The ABI version declared at INIT.
    abi: AbiVersion,
    /// The `FABRIC` register as read after the last boot (ABI 1.4): the device's port on the
    /// peer fabric and the epoch its firmware runs in; `FABRIC_NO_PORT` if none.
    fabric: AtomicU32,
    /// The init data block (4 KiB aligned, as the ABI asks).
    init: FwMem,
    /// `NUM_STAMP_SLOTS` stamps, written by the firmware.
    stamps: FwMem,
    /// The pending table, written by the firmware when it halts.
    pending: FwMem,
    #[pin]
    devctrl: Mutex<DevCtrl>,
    #[pin]
    reply: SpinLockIrq<Reply>,
    /// Host-to-firmware mailbox writes are three registers; one sender at a time.
    #[pin]
    mbox: SpinLockIrq<()>,
    #[pin]
    events: SpinLockIrq<RxRing<EventMsg>>,
    #[pin]
    fwlog: SpinLockIrq<RxRing<LogMsg>>,
    #[pin]
    stats: SpinLockIrq<RxRing<StatsMsg>>,
    #[pin]
    pipes: SpinLockIrq<KVec<TxRing<PipeMsg>>>,
}

/// A firmware-to-host mailbox message.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MboxMsg {
    pub(crate) endpoint: u32,
    pub(crate) msg: u64,
}

impl Firmware {
    /// Allocates the rings and tables; the firmware is not booted yet.
    pub(crate) fn new(
        dev: &Device<Bound>,
        bar: Devres<Bar0>,
        abi: AbiVersion,
    ) -> Result<impl PinInit<Self, Error>> {
        let mut pipes = KVec::with_capacity(NUM_PIPES, GFP_KERNEL)?;
        for _ in 0..NUM_PIPES {
            pipes.push(TxRing::new(dev, PIPE_COUNT, Layout::CHANNEL)?, GFP_KERNEL)?;
        }
        let devctrl = DevCtrl {
            ring: TxRing::new(dev, DEVCTRL_COUNT, Layout::CHANNEL)?,
            seq: 0,
        };
        let events = RxRing::new(dev, EVENT_COUNT, Layout::CHANNEL)?;
        let fwlog = RxRing::new(dev, FWLOG_COUNT, Layout::CHANNEL)?;
        let stats = RxRing::new(dev, STATS_COUNT, Layout::CHANNEL)?;
        let init = FwMem::new(dev, 4096)?;
        let stamps = FwMem::new(dev, NUM_STAMP_SLOTS * 4)?;
        let pending = FwMem::new(dev, size_of::<PendingTable>())?;
        Ok(try_pin_init!(Self {
            bar,
            abi,
            fabric: AtomicU32::new(r::fabric_value(r::FABRIC_NO_PORT, 0)),
            init,
            stamps,
            pending,
            devctrl <- new_mutex!(devctrl),
            reply <- new_spinlock_irq!(Reply::default()),
            mbox <- new_spinlock_irq!(()),
            events <- new_spinlock_irq!(events),
            fwlog <- new_spinlock_irq!(fwlog),
            stats <- new_spinlock_irq!(stats),
            pipes <- new_spinlock_irq!(pipes),
        }? Error))
    }

    /// The ABI version declared at INIT.
    pub(crate) fn abi(&self) -> AbiVersion {
        self.abi
    }

    /// Runs `f` on the registers, or `ENODEV` once the device is unbound.
    pub(crate) fn with_bar<R>(&self, f: impl FnOnce(&Bar0) -> R) -> Result<R> {
        self.bar.try_access_with(f).ok_or(ENODEV)
    }

    /// The registers, in a context where the device is known to be bound (the IRQ handler).
    pub(crate) fn bar<'a>(&'a self, dev: &'a Device<Bound>) -> Result<&'a Bar0> {
        self.bar.access(dev)
    }

    /// Sends a mailbox message to `endpoint`.
    pub(crate) fn send(&self, endpoint: u32, msg: u64) -> Result {
        self.with_bar(|bar| {
            let _guard = self.mbox.lock();
            // CAST: the two halves of a 64-bit message.
            bar.write_reg(regs::MBOX_H2F_LO::from_raw(msg as u32));
            bar.write_reg(regs::MBOX_H2F_HI::from_raw((msg >> 32) as u32));
            bar.write_reg(regs::MBOX_H2F_SEND::from_raw(endpoint));
        })
    }

    /// Rings doorbell `which` (a `DOORBELL_*` value): one register write from ABI 1.3 on,
    /// else the three of a mailbox message. Under TCG every register access is an exit to
    /// QEMU under its big lock, and a job rings one doorbell.
    pub(crate) fn doorbell(&self, which: u64) -> Result {
        if self.abi.has_fast_notify() {
            // CAST: doorbell numbers are small.
            return self.with_bar(|bar| bar.write_reg(regs::DOORBELL::from_raw(which as u32)));
        }
        self.send(mbox::EP_DOORBELL, mbox::message(mbox::MSG_DOORBELL, which))
    }

    /// Takes the oldest firmware-to-host message, if any.
    pub(crate) fn recv(bar: &Bar0) -> Option<MboxMsg> {
        if bar.read(regs::MBOX_F2H_COUNT).into_raw() == 0 {
            return None;
        }
        let endpoint = bar.read(regs::MBOX_F2H_EP).into_raw();
        let lo = u64::from(bar.read(regs::MBOX_F2H_LO).into_raw());
        let hi = u64::from(bar.read(regs::MBOX_F2H_HI).into_raw());
        bar.write_reg(regs::MBOX_F2H_COUNT::from_raw(1));
        Some(MboxMsg {
            endpoint,
            msg: (hi << 32) | lo,
        })
    }

    /// Resets the device: the firmware forgets every queue, VM and ring.
    pub(crate) fn reset(&self) -> Result {
        self.with_bar(|bar| {
            bar.write_reg(regs::RESET::from_raw(r::RESET_MAGIC));
            bar.write_reg(regs::IRQ_MASK::from_raw(0));
        })
    }

    /// Boots the firmware: resets the device, writes the init data, sends `INIT` and waits
    /// until the firmware runs. Interrupts are enabled once it does.
    pub(crate) fn boot(&self, dev: &Device) -> Result {
        self.reset()?;
        self.events.lock().reset()?;
        self.fwlog.lock().reset()?;
        self.stats.lock().reset()?;
        for pipe in self.pipes.lock().iter_mut() {
            pipe.reset()?;
        }
        {
            let mut devctrl = self.devctrl.lock();
            devctrl.ring.reset()?;
        }
        self.reply.lock().done = None;

        let pipes = {
            let pipes = self.pipes.lock();
            let mut descs = [Default::default(); NUM_PIPES];
            for (desc, pipe) in descs.iter_mut().zip(pipes.iter()) {
                *desc = pipe.desc();
            }
            descs
        };
        let init = InitData {
            magic: INIT_MAGIC,
            abi_version: self.abi.raw(),
            devctrl: self.devctrl.lock().ring.desc(),
            event: self.events.lock().desc(),
            fwlog: self.fwlog.lock().desc(),
            stats: self.stats.lock().desc(),
            pipes,
            stamps: self.stamps.bus_addr(),
            pending: self.pending.bus_addr(),
            watchdog_ns: 0,
        };
        self.init.write(0, &init)?;

        self.send(
            mbox::EP_FIRMWARE,
            mbox::message(mbox::MSG_INIT, self.init.bus_addr()),
        )?;
        let state = read_poll_timeout(
            || self.with_bar(|bar| bar.read(regs::FW_STATE).into_raw()),
            |s| !matches!(FwState::try_from(*s), Ok(FwState::Off | FwState::Booting)),
            Delta::from_micros(100),
            FW_TIMEOUT,
        )
        .inspect_err(|_| dev_err!(dev, "firmware did not answer INIT within 2 s\n"))?;
        let state = FwState::try_from(state).inspect_err(|UnknownFwState(v)| {
            dev_err!(dev, "firmware reports an unknown state {:#x}\n", v)
        });
        if state != Ok(FwState::Running) {
            let err = self.with_bar(|bar| bar.read(regs::FW_ERROR).into_raw())?;
            dev_err!(
                dev,
                "firmware failed to boot: state {}, error {} ({})\n",
                state.map_or("unknown", FwState::name),
                err,
                mbox::FwError::from_raw(err).map_or("unknown error", mbox::FwError::description)
            );
            return Err(EIO);
        }
        // A reset gave the device a new epoch: waits of other devices on entries of its
        // previous life fail, and new ones name this one.
        let fabric = match self.abi.has_peer_waits() {
            true => self.with_bar(|bar| bar.read(regs::FABRIC).into_raw())?,
            false => r::fabric_value(r::FABRIC_NO_PORT, 0),
        };
        self.fabric.store(fabric, Relaxed);
        // From ABI 1.3, ring writes come as `IRQ_RINGS`, without a mailbox message to read.
        let causes = if self.abi.has_fast_notify() {
            r::IRQ_ALL | r::IRQ_RINGS
        } else {
            r::IRQ_ALL
        };
        self.with_bar(|bar| bar.write_reg(regs::IRQ_MASK::from_raw(causes)))
    }

    /// The device's place on the peer fabric since its last boot, if it has one: other
    /// devices' wait entries name it (`QueueEntry::peer_wait`).
    pub(crate) fn fabric(&self) -> Option<Peer> {
        let v = self.fabric.load(Relaxed);
        let port = r::fabric_port(v);
        (port < r::FABRIC_PORTS).then(|| Peer {
            port,
            epoch: r::fabric_epoch(v),
        })
    }

    /// Runs a device-control operation and waits for its reply.
    pub(crate) fn call<T: DevCtrlOp>(&self, args: &T) -> Result<T::Reply> {
        self.call_timed(args).map(|(reply, _)| reply)
    }

    /// [`Self::call`], and the time from the doorbell to the interrupt handler's receipt of
    /// the reply: the device's round trip, without the caller's wake-up from its poll.
    pub(crate) fn call_timed<T: DevCtrlOp>(&self, args: &T) -> Result<(T::Reply, Delta)> {
        let mut devctrl = self.devctrl.lock();
        devctrl.seq = devctrl.seq.wrapping_add(1);
        let seq = devctrl.seq;
        *self.reply.lock() = Reply::default();
        devctrl.ring.push(&DevCtrlMsg::new(seq, args))?;
        let sent = Instant::<Monotonic>::now();
        self.doorbell(mbox::DOORBELL_DEVCTRL)?;
        // Replies come from the event handler; operations are rare, so poll for the slot.
        let done = read_poll_timeout(
            || Ok(self.reply.lock().done.filter(|d| d.seq == seq)),
            Option::is_some,
            Delta::from_micros(20),
            FW_TIMEOUT,
        )?
        .ok_or(ETIMEDOUT)?;
        let at = self.reply.lock().at.unwrap_or_else(Instant::now);
        drop(devctrl);
        match done.status {
            channels::DEVCTRL_OK => Ok((T::reply(done.value), at - sent)),
            s => Err(status_to_error(s)),
        }
    }

    /// Records a device-control reply (from the event handler).
    pub(crate) fn complete_call(&self, done: EventDevCtrlDone) {
        *self.reply.lock() = Reply {
            done: Some(done),
            at: Some(Instant::now()),
        };
    }

    /// Takes the oldest event; `EIO` if the firmware corrupted the ring.
    pub(crate) fn next_event(&self) -> Result<Option<EventMsg>> {
        self.events.lock().pop()
    }

    /// Takes the oldest firmware log message.
    pub(crate) fn next_log(&self) -> Result<Option<LogMsg>> {
        self.fwlog.lock().pop()
    }

    /// Takes every statistics message, oldest first, passing each to `f` under the ring's
    /// lock. The interrupt handler and a `FLUSH` both drain the ring; with the lock held
    /// throughout, a drain that returns has seen every sample taken before it recorded, and
    /// not one still in the other drainer's hands (a `FLUSH` that read the pipes' samples
    /// before the handler had recorded them reported their busy time unchanged).
    pub(crate) fn drain_stats(&self, mut f: impl FnMut(StatsMsg)) {
        let mut ring = self.stats.lock();
        while let Ok(Some(msg)) = ring.pop() {
            f(msg);
        }
    }

    /// Posts `msg` on submission pipe `pipe` and rings its doorbell.
    pub(crate) fn post(&self, pipe: usize, msg: &PipeMsg) -> Result {
        {
            let mut pipes = self.pipes.lock();
            pipes.get_mut(pipe).ok_or(EINVAL)?.push(msg)?;
        }
        // CAST: pipe indices are below NUM_PIPES.
        self.doorbell(mbox::DOORBELL_PIPE_BASE + pipe as u64)
    }

    /// The current stamp of slot `slot`.
    pub(crate) fn stamp(&self, slot: usize) -> Result<u32> {
        self.stamps.load_acquire(slot.checked_mul(4).ok_or(EINVAL)?)
    }

    /// The pending table as the firmware last wrote it.
    pub(crate) fn pending(&self) -> Result<PendingTable> {
        self.pending.read(0)
    }

    /// Debugfs: pointers of every ring.
    pub(crate) fn dump_rings(&self, w: &mut impl core::fmt::Write) -> core::fmt::Result {
        let line = |w: &mut dyn core::fmt::Write, name: &str, own: u32, p: Pointers| {
            writeln!(
                w,
                "{name:<10} own {own:5} rptr {:5} wptr {:5}",
                p.rptr, p.wptr
            )
        };
        {
            let d = self.devctrl.lock();
            line(w, "devctrl", d.ring.wptr(), d.ring.pointers())?;
        }
        {
            let e = self.events.lock();
            line(w, "event", e.rptr(), e.pointers())?;
        }
        {
            let l = self.fwlog.lock();
            line(w, "fwlog", l.rptr(), l.pointers())?;
        }
        {
            let s = self.stats.lock();
            line(w, "stats", s.rptr(), s.pointers())?;
        }
        let pipes = self.pipes.lock();
        for (i, p) in pipes.iter().enumerate() {
            let ptrs = p.pointers();
            writeln!(
                w,
                "pipe{i:<6} own {:5} rptr {:5} wptr {:5}",
                p.wptr(),
                ptrs.rptr,
                ptrs.wptr
            )?;
        }
        Ok(())
    }
}

/// The text of a firmware log message.
pub(crate) fn log_text(msg: &LogMsg) -> &str {
    let len = (msg.len as usize).min(msg.text.len());
    let bytes = &msg.text[..len];
    match core::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
    }
}
