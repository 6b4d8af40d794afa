// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The GPU: firmware, work queues by stamp slot, interrupt handling and recovery.

use core::sync::atomic::{
    AtomicBool,
    AtomicU64,
    Ordering::Relaxed, //
};

use kernel::{
    device::{
        Bound,
        Device, //
    },
    device_binding::DeviceBinding,
    dma_fence::{
        ecanceled,
        Fence, //
    },
    drm::sched::Fifo,
    impl_has_work,
    io::Io,
    irq::{
        Handler,
        IrqReturn, //
    },
    new_mutex, new_spinlock_irq, new_work, pci,
    prelude::*,
    sync::{
        aref::ARef,
        Arc,
        Mutex,
        SpinLockIrq, //
    },
    workqueue::Work,
};

use crate::{
    abi::{
        channels::LogMsg,
        channels::{
            self,
            DevCtrlBindVm,
            DevCtrlFlush,
            DevCtrlHalt,
            DevCtrlUnbindVm,
            Event, //
        },
        mbox,
        regs::{
            self as r,
            FwState,
            UnknownFwState, //
        },
        MAX_QUEUES, MAX_VMS, NUM_STAMP_SLOTS,
    },
    busy::{
        DeviceBusy,
        Recorded,
        Sample,
        Totals, //
    },
    fw::{log_text, Firmware},
    hwqueue::HwQueue,
    hwwait::{
        HwWait,
        Producer, //
    },
    recovery::{
        Event as RecoveryEvent,
        Recovery, //
    },
    regs,
};

/// Why a queue last failed, for `QUEUE_GET_STATUS`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FaultInfo {
    /// `DRM_VAGX_QUEUE_*` state.
    pub(crate) state: u32,
    /// Positive errno of the failed job.
    pub(crate) error: u32,
    pub(crate) address: u64,
    pub(crate) kind: u32,
    pub(crate) command: u32,
    pub(crate) hangs: u32,
}

/// A queue as the interrupt handler and the recovery see it.
pub(crate) struct QueueSlot {
    pub(crate) hw: Arc<HwQueue>,
    /// Filled by the event handler, read by `QUEUE_GET_STATUS`.
    pub(crate) status: Arc<SpinLockIrq<FaultInfo>>,
}

/// Faults and timeouts after which a queue is banned.
pub(crate) const BAN_LIMIT: u32 = 3;

/// Firmware log messages kept for debugfs (128 bytes each): enough for the boot's lines to
/// outlast a few dozen queue creations and parameter changes.
const LOG_KEEP: usize = 256;

/// Clears the lowest set bit of `bits` (bit `i % 32` of word `i / 32`) and returns its index.
fn take_first_bit(bits: &mut [u32]) -> Option<usize> {
    for (i, word) in bits.iter_mut().enumerate() {
        if *word != 0 {
            // CAST: below 32.
            let bit = word.trailing_zeros() as usize;
            *word &= *word - 1;
            return Some(i * 32 + bit);
        }
    }
    None
}

/// Marks the first unused id of `used` and returns it, or `EBUSY`.
fn take_id(used: &mut [bool]) -> Result<u32> {
    let (i, slot) = used
        .iter_mut()
        .enumerate()
        .find(|(_, u)| !**u)
        .ok_or(EBUSY)?;
    *slot = true;
    u32::try_from(i).map_err(|_| EBUSY)
}

/// Ids handed out to queues and VMs (device-wide: the firmware's name space).
struct Ids {
    queues: [bool; MAX_QUEUES],
    vms: [bool; MAX_VMS],
    /// Root page table of each bound VM, to bind again after a firmware reboot.
    roots: [Option<u64>; MAX_VMS],
}

/// The GPU.
#[pin_data]
pub(crate) struct Gpu {
    pub(crate) fw: Arc<Firmware>,
    pdev: ARef<pci::Device>,
    /// The bound device, for DMA allocations from ioctls.
    pub(crate) dma: DeviceBinding,
    /// Queues by id (= stamp slot); read in the interrupt handler.
    #[pin]
    slots: SpinLockIrq<KVec<Option<QueueSlot>>>,
    #[pin]
    ids: Mutex<Ids>,
    /// The last [`LOG_KEEP`] firmware log messages, oldest first (debugfs `fwlog`).
    #[pin]
    log: SpinLockIrq<Fifo<LogMsg>>,
    /// The firmware's busy-time samples ([`crate::busy`]).
    #[pin]
    busy: SpinLockIrq<DeviceBusy>,
    /// The device's state, the down fence and the recovery work's lock ([`crate::recovery`]).
    #[pin]
    pub(crate) recovery: Recovery,
    #[pin]
    recover_work: Work<Gpu>,
    /// Execution units.
    pub(crate) units: u32,
    /// Statistics: interrupts, events.
    pub(crate) irqs: AtomicU64,
    pub(crate) events: AtomicU64,
    /// Whether same-device waits go to the firmware (debugfs `inject`: `hw-waits 0` sends
    /// them to the CPU, to compare the two paths in one boot).
    pub(crate) hw_waits_on: AtomicBool,
    /// Whether waits on jobs of other GPUs go to this GPU's firmware as peer waits (debugfs
    /// `inject`: `peer-waits 0` sends them to the CPU).
    pub(crate) peer_waits_on: AtomicBool,
    /// Same-device dependencies handed to the firmware path at submit ([`crate::hwwait`]).
    pub(crate) hw_waits: AtomicU64,
    /// Of those, on jobs of other GPUs ([`crate::peers`]).
    pub(crate) peer_waits: AtomicU64,
    /// Wait entries written for them (none when the producer had completed by then).
    pub(crate) wait_entries: AtomicU64,
    /// Entries the firmware failed for a dependency (`EVENT_ENTRY_ERROR`).
    pub(crate) dep_errors: AtomicU64,
    /// Entry deadlines posted to the firmware ([`crate::hwdeadline`], ABI 1.7).
    pub(crate) deadlines_posted: AtomicU64,
    /// Jobs created and not yet freed, of every client ([`crate::load::PendingJob`]).
    pub(crate) pending_jobs: AtomicU64,
}

impl_has_work! {
    impl HasWork<Self> for Gpu { self.recover_work }
}

impl Gpu {
    /// Creates the GPU state around a booted firmware.
    pub(crate) fn new(
        pdev: &pci::Device<Bound>,
        fw: Arc<Firmware>,
        units: u32,
    ) -> Result<Arc<Self>> {
        let mut slots = KVec::with_capacity(NUM_STAMP_SLOTS, GFP_KERNEL)?;
        for _ in 0..NUM_STAMP_SLOTS {
            slots.push(None, GFP_KERNEL)?;
        }
        let msgs = Fifo::with_capacity(LOG_KEEP, GFP_KERNEL)?;
        let dev: &Device<Bound> = pdev.as_ref();
        let pdev: &pci::Device = pdev;
        let recovery_init = Recovery::new()?;
        let dma = DeviceBinding::new(dev)?;
        Arc::pin_init(
            try_pin_init!(Self {
                fw,
                pdev: pdev.into(),
                dma,
                slots <- new_spinlock_irq!(slots),
                ids <- new_mutex!(Ids {
                    queues: [false; MAX_QUEUES],
                    vms: [false; MAX_VMS],
                    roots: [None; MAX_VMS],
                }),
                recovery <- recovery_init,
                log <- new_spinlock_irq!(msgs),
                busy <- new_spinlock_irq!(DeviceBusy::new()),
                recover_work <- new_work!("vagx::recover"),
                units,
                irqs: AtomicU64::new(0),
                events: AtomicU64::new(0),
                hw_waits_on: AtomicBool::new(true),
                peer_waits_on: AtomicBool::new(true),
                hw_waits: AtomicU64::new(0),
                peer_waits: AtomicU64::new(0),
                wait_entries: AtomicU64::new(0),
                deadlines_posted: AtomicU64::new(0),
                dep_errors: AtomicU64::new(0),
                pending_jobs: AtomicU64::new(0),
            }? Error),
            GFP_KERNEL,
        )
    }

    /// The PCI device.
    pub(crate) fn dev(&self) -> &Device {
        self.pdev.as_ref()
    }

    /// Takes a free queue id, or `EBUSY`.
    pub(crate) fn alloc_queue_id(&self) -> Result<u32> {
        take_id(&mut self.ids.lock().queues)
    }

    /// Takes a free VM id, or `EBUSY`.
    pub(crate) fn alloc_vm_id(&self) -> Result<u32> {
        take_id(&mut self.ids.lock().vms)
    }

    /// Returns a queue id.
    pub(crate) fn free_queue_id(&self, id: u32) {
        if let Some(u) = self.ids.lock().queues.get_mut(id as usize) {
            *u = false;
        }
    }

    /// Returns a VM id, unbinding it from the firmware first.
    pub(crate) fn free_vm_id(&self, id: u32) {
        let mut ids = self.ids.lock();
        if let Some(Some(_)) = ids.roots.get(id as usize) {
            let _ = self.fw.call(&DevCtrlUnbindVm { vm: id });
        }
        if let Some(r) = ids.roots.get_mut(id as usize) {
            *r = None;
        }
        if let Some(u) = ids.vms.get_mut(id as usize) {
            *u = false;
        }
    }

    /// Gives the firmware VM `id`'s root page table; `ENODEV` once the device is lost.
    pub(crate) fn bind_vm(&self, id: u32, root: u64) -> Result {
        if self.is_lost() {
            return Err(ENODEV);
        }
        let mut ids = self.ids.lock();
        let r = ids.roots.get_mut(id as usize).ok_or(EINVAL)?;
        self.fw.call(&DevCtrlBindVm {
            vm: id,
            _pad: 0,
            root,
        })?;
        *r = Some(root);
        Ok(())
    }

    /// Binds every VM again (after a firmware reboot).
    pub(crate) fn rebind_vms(&self) -> Result {
        let ids = self.ids.lock();
        for (vm, root) in ids.roots.iter().enumerate() {
            if let Some(root) = *root {
                // CAST: below MAX_VMS.
                self.fw.call(&DevCtrlBindVm {
                    vm: vm as u32,
                    _pad: 0,
                    root,
                })?;
            }
        }
        Ok(())
    }

    /// Makes a queue visible to the interrupt handler.
    pub(crate) fn install(&self, slot: QueueSlot) -> Result {
        let id = slot.hw.id() as usize;
        self.busy.lock().reset_queue(slot.hw.id());
        let mut slots = self.slots.lock();
        let s = slots.get_mut(id).ok_or(EINVAL)?;
        *s = Some(slot);
        Ok(())
    }

    /// Hides a queue from the interrupt handler.
    pub(crate) fn uninstall(&self, id: u32) -> Option<QueueSlot> {
        self.busy.lock().reset_queue(id);
        self.slots
            .lock()
            .get_mut(id as usize)
            .and_then(Option::take)
    }

    pub(crate) fn slot_hw(&self, id: usize) -> Option<(Arc<HwQueue>, Arc<SpinLockIrq<FaultInfo>>)> {
        self.slots
            .lock()
            .get(id)
            .and_then(|s| s.as_ref())
            .map(|s| (s.hw.clone(), s.status.clone()))
    }

    /// The job of one of this device's work queues, other than `not_on`, whose finished
    /// fence `fence` is, if it is recent enough to be remembered ([`crate::hwwait`]); `None`
    /// too if the firmware does not speak ABI 1.1's wait entries.
    ///
    /// With `peer`, the consumer is on another GPU (at that port of the fabric): it waits with a
    /// peer wait entry, if this device is on the fabric.
    pub(crate) fn find_producer(
        &self,
        fence: &Fence,
        not_on: &HwQueue,
        peer: bool,
    ) -> Option<Producer> {
        if !self.fw.abi().has_waits() || !self.hw_waits_on.load(Relaxed) {
            return None;
        }
        let port = match peer {
            false => None,
            true => Some(self.fw.fabric()?.port),
        };
        for id in 0..NUM_STAMP_SLOTS {
            let Some((hw, _)) = self.slot_hw(id) else {
                continue;
            };
            if core::ptr::eq::<HwQueue>(&*hw, not_on) {
                continue;
            }
            if let Some((record, scheduled)) = hw.producers.find(fence) {
                return Some(Producer {
                    wait: HwWait { hw, record, port },
                    scheduled,
                });
            }
        }
        None
    }

    /// Runs `f` on queue `id` under the queue table's lock. The interrupt handler uses this, not
    /// a clone: once `Queue::drop` has uninstalled a queue, a clone held here could be the
    /// work queue's last reference, and a work queue is not freed in interrupt context (its
    /// DMA memory, its id's mutex).
    fn with_hw<R>(&self, id: usize, f: impl FnOnce(&HwQueue) -> R) -> Option<R> {
        let slots = self.slots.lock();
        slots.get(id).and_then(|s| s.as_ref()).map(|s| f(&s.hw))
    }

    /// Runs `f` on every installed queue (for recovery and debugfs).
    pub(crate) fn each_slot(&self, mut f: impl FnMut(&Arc<HwQueue>)) {
        for id in 0..NUM_STAMP_SLOTS {
            if let Some((hw, _)) = self.slot_hw(id) {
                f(&hw);
            }
        }
    }

    /// Handles the device's interrupt: clears it, drains the mailbox and the rings.
    fn interrupt(this: &Arc<Self>, dev: &Device<Bound>) -> IrqReturn {
        let Ok(bar) = this.fw.bar(dev) else {
            return IrqReturn::None;
        };
        let status = bar.read(regs::IRQ_STATUS).into_raw();
        if status == 0 {
            return IrqReturn::None;
        }
        bar.write_reg(regs::IRQ_STATUS::from_raw(status));
        this.irqs.fetch_add(1, Relaxed);
        // The mailbox only if it has news: a message raises `IRQ_MBOX` even when latched, and
        // one that arrives after the status was read raises another interrupt. (With ABI 1.3's
        // `IRQ_RINGS`, most interrupts have no message, and reading the empty mailbox was one
        // more exit to QEMU per interrupt.)
        let mailbox = status & r::IRQ_MBOX != 0;
        while let Some(m) = mailbox.then(|| Firmware::recv(bar)).flatten() {
            if m.endpoint != mbox::EP_FIRMWARE {
                dev_warn!(dev, "mailbox message from endpoint {:#x}\n", m.endpoint);
                continue;
            }
            match mbox::message_type(m.msg) {
                // Events are read on every interrupt, below: a dropped doorbell loses nothing.
                mbox::MSG_RX_DOORBELL => {}
                mbox::MSG_CRASHED => {
                    dev_err!(
                        dev,
                        "firmware crashed (error {})\n",
                        mbox::message_payload(m.msg)
                    );
                    this.recovery.apply(RecoveryEvent::Crash);
                }
                // Boot is polled; the reply needs nothing more.
                mbox::MSG_INIT_DONE => {}
                t => dev_warn!(dev, "unexpected mailbox message type {:#x}\n", t),
            }
        }
        if status & r::IRQ_STATE != 0 {
            match FwState::try_from(bar.read(regs::FW_STATE).into_raw()) {
                Ok(FwState::Crashed) => {
                    this.recovery.apply(RecoveryEvent::Crash);
                }
                Ok(_) => {}
                Err(UnknownFwState(v)) => {
                    dev_warn!(dev, "firmware reports an unknown state {:#x}\n", v)
                }
            }
        }
        this.drain_events(dev);
        Gpu::schedule_recovery(this);
        IrqReturn::Handled
    }

    /// Handles every event, then completes the work queues whose stamps moved.
    ///
    /// A stamp is read before the event ring is drained once more: the firmware writes an
    /// entry's `EVENT_ENTRY_ERROR` before its stamp, so every error of the entries up to the
    /// stamp read is recorded before their fences signal.
    fn drain_events(&self, dev: &Device) {
        let mut firing = [0u32; NUM_STAMP_SLOTS / 32];
        self.drain_ring(dev, &mut firing);
        while let Some(slot) = take_first_bit(&mut firing) {
            let Ok(stamp) = self.fw.stamp(slot) else {
                continue;
            };
            self.drain_ring(dev, &mut firing);
            // Under the table's lock: signalling only queues work (the scheduler starts the
            // next job from an irq_work), it takes no lock of ours.
            self.with_hw(slot, |hw| hw.complete(stamp));
        }
    }

    /// Handles the events in the event ring; stamp events only add their slots to `firing`.
    fn drain_ring(&self, dev: &Device, firing: &mut [u32; NUM_STAMP_SLOTS / 32]) {
        loop {
            let ev = match self.fw.next_event() {
                Ok(Some(ev)) => ev,
                Ok(None) => break,
                Err(e) => {
                    dev_err!(dev, "event ring corrupted ({:?}); resetting\n", e);
                    self.recovery.apply(RecoveryEvent::Crash);
                    break;
                }
            };
            self.events.fetch_add(1, Relaxed);
            match ev.decode() {
                Event::Stamps(st) => {
                    for (word, bits) in firing.iter_mut().zip(st.firing.iter()) {
                        *word |= *bits;
                    }
                }
                Event::EntryError(e) => {
                    // A wait on a failed entry, or the rest of its job: the job ends without
                    // running, and the scheduler gives it its producer's error.
                    self.dep_errors.fetch_add(1, Relaxed);
                    let recorded = self
                        .with_hw(e.queue as usize, |hw| hw.entry_failed(e.stamp, ecanceled()))
                        .unwrap_or(false);
                    if !recorded {
                        dev_warn!(
                            dev,
                            "entry error for unknown entry: queue {} stamp {:#x} error {}\n",
                            e.queue,
                            e.stamp,
                            e.error
                        );
                    }
                }
                Event::DevCtrlDone(done) => self.fw.complete_call(done),
                Event::Fault(f) => {
                    self.record_fault(f.queue, EIO, |s| {
                        s.state = crate::uapi::QUEUE_FAULTED;
                        s.address = f.address;
                        s.kind = f.kind;
                        s.command = f.command;
                    });
                    dev_warn!(
                        dev,
                        "fault on queue {} entry {} command {}: kind {} at {:#x}\n",
                        f.queue,
                        f.entry,
                        f.command,
                        f.kind,
                        f.address
                    );
                    self.recovery.apply(RecoveryEvent::Halt);
                }
                Event::Timeout(t) => {
                    self.record_fault(t.queue, ETIMEDOUT, |s| {
                        s.state = crate::uapi::QUEUE_TIMED_OUT;
                    });
                    dev_warn!(dev, "queue {} entry {} timed out\n", t.queue, t.entry);
                    self.recovery.apply(RecoveryEvent::Halt);
                }
                Event::Crash(c) => {
                    dev_err!(dev, "firmware crash event (error {})\n", c.error);
                    self.recovery.apply(RecoveryEvent::Crash);
                }
                Event::Log(_) => self.drain_log(dev),
                Event::Error(e) => {
                    dev_warn!(
                        dev,
                        "firmware refused a message: kind {} object {} value {:#x}\n",
                        e.kind,
                        e.object,
                        e.value
                    );
                }
                Event::Unknown { kind, seq } => {
                    dev_warn!(
                        dev,
                        "unknown event kind {:#x} (seq {}) skipped\n",
                        kind,
                        seq
                    );
                }
            }
        }
    }

    fn record_fault(&self, queue: u32, err: Error, f: impl FnOnce(&mut FaultInfo)) {
        // Only the status is cloned: a work queue clone dropped in interrupt context could be
        // its last reference.
        let status = self
            .slots
            .lock()
            .get(queue as usize)
            .and_then(|s| s.as_ref())
            .map(|s| s.status.clone());
        if let Some(status) = status {
            let mut s = status.lock();
            f(&mut s);
            // CAST: errnos are small positive numbers.
            s.error = (-err.to_errno()) as u32;
            s.hangs += 1;
        }
    }

    fn drain_log(&self, dev: &Device) {
        while let Ok(Some(msg)) = self.fw.next_log() {
            {
                let mut keep = self.log.lock();
                if keep.len() == keep.capacity() {
                    keep.pop_front();
                }
                // Room was made above.
                let _ = keep.push_back(msg);
            }
            let text = log_text(&msg);
            match msg.level {
                channels::LOG_ERROR => dev_err!(dev, "fw: {}\n", text),
                channels::LOG_WARN => dev_warn!(dev, "fw: {}\n", text),
                _ => dev_info!(dev, "fw: {}\n", text),
            }
        }
        self.drain_stats(dev);
    }

    /// Keeps the newest busy-time samples of the stats ring ([`crate::busy`]).
    fn drain_stats(&self, dev: &Device) {
        self.fw.drain_stats(|msg| {
            // The last sample of a destroyed queue: its id may belong to a new queue soon.
            // (`with_hw`, not a clone: a clone dropped here could free the queue in interrupt
            // context.)
            if msg.kind == channels::STATS_QUEUE && self.with_hw(msg.id as usize, |_| ()).is_none()
            {
                return;
            }
            if self.busy.lock().record(&msg) == Recorded::Unknown {
                dev_warn!(
                    dev,
                    "statistics of unknown kind {} or id {} skipped\n",
                    msg.kind,
                    msg.id
                );
            }
        });
    }

    /// Asks the firmware for fresh busy-time samples (`FLUSH`) and reads them. Sleeps.
    pub(crate) fn flush_busy(&self) -> Result {
        self.fw.call(&DevCtrlFlush { _pad: 0 })?;
        // The samples come before the reply; read them here, not only at the next interrupt.
        self.drain_stats(self.dev());
        Ok(())
    }

    /// The firmware is about to reboot: the samples it left are its last, and its successor
    /// counts from zero ([`DeviceBusy::rebooted`]).
    pub(crate) fn busy_before_reboot(&self) {
        self.drain_stats(self.dev());
        self.busy.lock().rebooted();
    }

    /// The busy totals of every pipe and unit, fresh from the firmware. Sleeps.
    pub(crate) fn busy_totals(&self) -> Result<Totals> {
        self.flush_busy()?;
        Ok(self.busy.lock().totals())
    }

    /// Queue `id`'s device time and entries, from the firmware's latest sample (fresh after
    /// [`Self::flush_busy`]).
    pub(crate) fn queue_busy(&self, id: u32) -> Sample {
        self.busy.lock().queue(id)
    }

    /// Queue `id`'s last sample, which the firmware writes before it answers the queue's
    /// `DESTROY_QUEUE`: call after that answer, before [`Self::uninstall`].
    pub(crate) fn final_queue_busy(&self, id: u32) -> Sample {
        self.drain_stats(self.dev());
        self.queue_busy(id)
    }

    /// The device clock of the newest sample, in ns: fresh after [`Self::flush_busy`].
    pub(crate) fn busy_time_ns(&self) -> u64 {
        self.busy.lock().time_ns()
    }

    /// Debugfs: the busy-time samples.
    pub(crate) fn dump_busy(&self, w: &mut impl core::fmt::Write) -> core::fmt::Result {
        self.busy.lock().dump(w)
    }

    /// Halts the firmware (debugfs and tests use it to check recovery).
    pub(crate) fn halt(&self) -> Result {
        self.fw.call(&DevCtrlHalt { _pad: 0 })
    }

    /// Arms a fault injection (`abi::regs::INJECT_*` with its arguments).
    pub(crate) fn inject(&self, what: u32, arg0: u32, arg1: u32) -> Result {
        self.fw.with_bar(|bar| {
            bar.write_reg(regs::DEBUG_ARG0::from_raw(arg0));
            bar.write_reg(regs::DEBUG_ARG1::from_raw(arg1));
            bar.write_reg(regs::DEBUG_INJECT::from_raw(what));
        })
    }

    /// Debugfs: the driver's counters.
    pub(crate) fn dump_stats(&self, w: &mut impl core::fmt::Write) -> core::fmt::Result {
        let state = self
            .fw
            .with_bar(|bar| bar.read(regs::FW_STATE).into_raw())
            .unwrap_or(u32::MAX);
        let name = FwState::try_from(state).map_or("unknown", FwState::name);
        writeln!(
            w,
            "firmware state {} ({}) abi {}.{} irqs {} events {} recoveries {} resets {} silent {} \
             hw_waits {} peer_waits {} wait_entries {} dep_errors {} deadlines {}{}",
            state,
            name,
            self.fw.abi().major,
            self.fw.abi().minor,
            self.irqs.load(Relaxed),
            self.events.load(Relaxed),
            self.recovery.recoveries.load(Relaxed),
            self.recovery.resets.load(Relaxed),
            self.recovery.silent.load(Relaxed),
            self.hw_waits.load(Relaxed),
            self.peer_waits.load(Relaxed),
            self.wait_entries.load(Relaxed),
            self.dep_errors.load(Relaxed),
            self.deadlines_posted.load(Relaxed),
            if self.is_lost() { " LOST" } else { "" }
        )
    }

    /// Debugfs: the last firmware log messages, oldest first.
    pub(crate) fn dump_log(&self, w: &mut impl core::fmt::Write) -> core::fmt::Result {
        let keep = self.log.lock();
        for m in keep.iter() {
            writeln!(w, "[{:>12}] {} {}", m.time_ns, m.level, log_text(m))?;
        }
        Ok(())
    }

    /// Debugfs: every queue.
    pub(crate) fn dump_queues(&self, w: &mut impl core::fmt::Write) -> core::fmt::Result {
        let mut r = Ok(());
        self.each_slot(|hw| {
            if r.is_ok() {
                r = hw.dump(&self.fw, w);
            }
        });
        r
    }
}

/// The interrupt handler's state.
#[pin_data]
pub(crate) struct IrqHandler {
    gpu: Arc<Gpu>,
}

impl IrqHandler {
    /// A handler for `gpu`'s interrupt.
    pub(crate) fn new(gpu: Arc<Gpu>) -> impl PinInit<Self, Error> {
        try_pin_init!(Self { gpu }? Error)
    }
}

impl Handler for IrqHandler {
    fn handle(&self, dev: &Device<Bound>) -> IrqReturn {
        Gpu::interrupt(&self.gpu, dev)
    }
}
