// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The vagx PCI function: QOM type, BARs, MSI-X, DMA and the virtual-clock timer around the
//! firmware model.
//!
//! The shell forwards BAR0 accesses to [`vagx_fw::Device`], gives it guest memory through the
//! function's bus-master address space, runs it on QEMU's virtual clock (a timer fires at the
//! model's next deadline), and turns its interrupt requests into MSI-X messages.
//!
//! Every vagx device of the machine is attached to one peer fabric ([`vagx_fw::fabric`]), so
//! that a device's firmware can wait for another's stamps: a peer that changes wakes a waiting
//! device by re-arming its timer at the current time.

use std::{
    ffi::CStr,
    pin::Pin,
    ptr::{addr_of_mut, NonNull},
    sync::{Arc, OnceLock},
};

use qemu_api::{
    bindings::{self, qdev_prop_uint32, InterfaceInfo},
    c_str,
    cell::{BqlCell, BqlRefCell},
    log::Log,
    log_mask_ln,
    memory::{hwaddr, MemoryRegion, MemoryRegionOps, MemoryRegionOpsBuilder},
    pci::{
        DmaRam, PCIDevice, PCIDeviceClass, PCIDeviceImpl, PCIDeviceMethods, PCIIdentity,
        CONVENTIONAL_PCI_INTERFACES,
    },
    prelude::*,
    qdev::{DeviceImpl, DeviceState, Property, ResetType, ResettablePhasesImpl},
    qom::{ObjectImpl, ParentField},
    timer::{Timer, CLOCK_VIRTUAL},
    vmstate::VMStateDescription,
    zeroable::Zeroable,
};
use vagx_abi::{pci as ids, regs};
use vagx_fw::{
    exec::Rates,
    mem::{BusError, HostMap, Memory},
    trace::Trace,
    BootFault, Config, Device, Fabric, Waker,
};

/// The peer fabric of the machine: every vagx device of this QEMU process.
fn fabric() -> &'static Arc<Fabric> {
    static FABRIC: OnceLock<Arc<Fabric>> = OnceLock::new();
    FABRIC.get_or_init(Fabric::new)
}

/// Runs a device whose peer changed: re-arms its timer at the current time.
struct TimerWaker(NonNull<Timer>);

// SAFETY: the pointer is only used by `wake`, which the fabric calls from a device's callback,
// on QEMU's main loop with the BQL held, like every access to the timer. The device detaches
// from the fabric (dropping the fabric's reference to this waker) in `exit` and before a reset
// replaces its model, so the timer outlives every use.
unsafe impl Send for TimerWaker {}
// SAFETY: as above: every use is under the BQL.
unsafe impl Sync for TimerWaker {}

impl Waker for TimerWaker {
    fn wake(&self) {
        // SAFETY: the timer is a field of a device still attached to the fabric (see the
        // `Send` impl), initialised in `init` and never moved (QOM does not move instances).
        let timer = unsafe { self.0.as_ref() };
        timer.modify(CLOCK_VIRTUAL.get_ns());
    }
}

/// State of one vagx device.
#[repr(C)]
#[derive(qemu_api_macros::Object, qemu_api_macros::offsets)]
pub struct VagxState {
    parent_obj: ParentField<PCIDevice>,
    /// BAR0: the register window.
    bar0: MemoryRegion,
    /// Fires at the firmware model's next deadline on the virtual clock.
    timer: Timer,
    /// Property `units`: parallel execution units.
    units: u32,
    /// Property `inject-hang-queue`: pre-armed hang of a queue's next entry (`u32::MAX`: none).
    inject_hang_queue: u32,
    /// Property `inject-crash-after`: pre-armed crash after this many entries (0: none).
    inject_crash_after: u32,
    /// Property `boot-fault`: how the firmware misbehaves at boot (0 none, 1 fail, 2 never
    /// answer, 3 crash at once), for drivers' failure paths.
    boot_fault: u32,
    /// Property `abi-version`: what `ABI_VERSION` reads (0: the model's own version); an older
    /// minor version of major 1 is also the version the firmware implements.
    abi_version: u32,
    /// Property `workers`: threads that run commands off the big lock (0: none, in the main
    /// loop; `u32::MAX`, the default: one per unit), see `vagx_fw::workers`.
    workers: u32,
    /// Property `rate-divisor`: a device this many times slower than the default cost model
    /// (0 and 1: the default), see `vagx_fw::exec::Rates::slowed`.
    rate_divisor: u32,
    /// The device model; borrowed only inside a callback of this device.
    dev: BqlRefCell<Device>,
    /// Set while the model runs, to refuse MMIO that its own DMA would re-enter.
    busy: BqlCell<bool>,
}

qom_isa!(VagxState: PCIDevice, DeviceState, Object);

// SAFETY: `VagxState` is `#[repr(C)]` and starts with its parent, a `PCIDevice`, as QOM
// requires; the class struct is the parent's because the device adds no virtual methods.
unsafe impl ObjectType for VagxState {
    type Class = PCIDeviceClass;
    const TYPE_NAME: &'static CStr = crate::TYPE_VAGX;
}

impl ObjectImpl for VagxState {
    type ParentType = PCIDevice;

    const INSTANCE_INIT: Option<unsafe fn(&mut Self)> = Some(Self::init);
    const INTERFACES: *mut InterfaceInfo = CONVENTIONAL_PCI_INTERFACES.as_ptr();
    const CLASS_INIT: fn(&mut Self::Class) = Self::Class::class_init::<Self>;
}

qemu_api::declare_properties! {
    VAGX_PROPERTIES,
    qemu_api::define_property!(
        c_str!("units"),
        VagxState,
        units,
        // SAFETY: a static of QEMU's property library, never written.
        unsafe { &qdev_prop_uint32 },
        u32,
        default = 2
    ),
    qemu_api::define_property!(
        c_str!("inject-hang-queue"),
        VagxState,
        inject_hang_queue,
        // SAFETY: as above.
        unsafe { &qdev_prop_uint32 },
        u32,
        default = u32::MAX
    ),
    qemu_api::define_property!(
        c_str!("inject-crash-after"),
        VagxState,
        inject_crash_after,
        // SAFETY: as above.
        unsafe { &qdev_prop_uint32 },
        u32,
        default = 0
    ),
    qemu_api::define_property!(
        c_str!("boot-fault"),
        VagxState,
        boot_fault,
        // SAFETY: as above.
        unsafe { &qdev_prop_uint32 },
        u32,
        default = 0
    ),
    qemu_api::define_property!(
        c_str!("abi-version"),
        VagxState,
        abi_version,
        // SAFETY: as above.
        unsafe { &qdev_prop_uint32 },
        u32,
        default = 0
    ),
    qemu_api::define_property!(
        c_str!("workers"),
        VagxState,
        workers,
        // SAFETY: as above.
        unsafe { &qdev_prop_uint32 },
        u32,
        default = u32::MAX
    ),
    qemu_api::define_property!(
        c_str!("rate-divisor"),
        VagxState,
        rate_divisor,
        // SAFETY: as above.
        unsafe { &qdev_prop_uint32 },
        u32,
        default = 1
    ),
}

/// Migration: refused. The firmware model's state (queues in flight, device time, rings
/// already consumed) has no migration format yet, so a snapshot would silently lose work.
static VMSTATE_VAGX: VMStateDescription = VMStateDescription {
    name: c"vagx".as_ptr(),
    unmigratable: true,
    ..Zeroable::ZERO
};

impl DeviceImpl for VagxState {
    fn properties() -> &'static [Property] {
        &VAGX_PROPERTIES
    }

    fn vmsd() -> Option<&'static VMStateDescription> {
        Some(&VMSTATE_VAGX)
    }
}

impl ResettablePhasesImpl for VagxState {
    const HOLD: Option<fn(&Self, ResetType)> = Some(Self::reset_hold);
}

impl PCIDeviceImpl for VagxState {
    const IDENTITY: PCIIdentity = PCIIdentity {
        vendor_id: ids::VENDOR_ID,
        device_id: ids::DEVICE_ID,
        revision: ids::REVISION,
        // CAST: the class code's base class and subclass are its upper 16 bits.
        class_id: (ids::CLASS_CODE >> 8) as u16,
        subsystem_vendor_id: ids::VENDOR_ID,
        subsystem_id: ids::DEVICE_ID,
    };
    const PCI_REALIZE: Option<fn(&Self) -> Result<(), &'static CStr>> = Some(Self::realize);
    const PCI_EXIT: Option<fn(&Self)> = Some(Self::exit);
}

/// Emits a firmware trace record as a QEMU trace event (`-trace vagx_*`).
fn emit_trace(t: Trace) {
    // SAFETY: the wrappers are plain C functions taking integers, without preconditions.
    unsafe {
        match t {
            Trace::Mailbox { endpoint, message } => bindings::vagx_trace_mailbox(endpoint, message),
            Trace::Command {
                queue,
                entry,
                index,
                opcode,
                until,
            } => bindings::vagx_trace_command(queue, entry, index, u32::from(opcode), until),
            Trace::EntryDone { queue, stamp } => bindings::vagx_trace_entry_done(queue, stamp),
            Trace::Fault {
                queue,
                kind,
                address,
            } => bindings::vagx_trace_fault(queue, kind, address),
            Trace::Halt { reason } => bindings::vagx_trace_halt(reason),
        }
    }
}

/// Guest memory through the function's bus-master address space.
struct Dma<'a>(&'a VagxState);

impl Memory for Dma<'_> {
    fn read(&mut self, address: u64, buf: &mut [u8]) -> Result<(), BusError> {
        self.0
            .dma_read(address, buf)
            .map_err(|_| BusError { address })
    }

    fn write(&mut self, address: u64, buf: &[u8]) -> Result<(), BusError> {
        self.0
            .dma_write(address, buf)
            .map_err(|_| BusError { address })
    }

    fn map(&mut self, address: u64, len: usize) -> Option<Box<dyn HostMap>> {
        let ram = self.0.dma_map_ram(address, len)?;
        Some(Box::new(GuestRam(ram)))
    }
}

/// Guest RAM a worker copies in and out of (the model drops it in a callback of this device,
/// with the BQL held, as [`DmaRam`] needs).
struct GuestRam(DmaRam);

impl HostMap for GuestRam {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn read(&self, offset: usize, buf: &mut [u8]) {
        self.0.read(offset, buf);
    }

    fn write(&self, offset: usize, buf: &[u8]) {
        self.0.write(offset, buf);
    }
}

impl VagxState {
    /// QOM instance init: creates BAR0's memory region, the timer and the model.
    ///
    /// # Safety
    ///
    /// Called by QOM once, on zeroed memory of a new instance, before any other method.
    unsafe fn init(&mut self) {
        static VAGX_BAR0_OPS: MemoryRegionOps<VagxState> =
            MemoryRegionOpsBuilder::<VagxState>::new()
                .read(&VagxState::read)
                .write(&VagxState::write)
                .little_endian()
                // Every size reaches the callbacks so that bad ones are reported, not dropped.
                .valid_sizes(1, 8)
                .impl_sizes(1, 8)
                .build();

        let owner = addr_of_mut!(*self);
        MemoryRegion::init_io(
            // SAFETY: `self` is the instance being initialised; no other reference to the field
            // exists during init, and the region lives as long as its owner.
            unsafe { &mut *addr_of_mut!(self.bar0) },
            owner,
            &VAGX_BAR0_OPS,
            "vagx-bar0",
            ids::BAR0_SIZE as u64,
        );
        // SAFETY: the fields are zeroed memory without destructors to run; write proper values
        // without dropping the old ones.
        unsafe {
            addr_of_mut!(self.dev).write(BqlRefCell::new(Device::new(Config::default())));
            addr_of_mut!(self.busy).write(BqlCell::new(false));
            addr_of_mut!(self.timer).write(Timer::new());
        }
        // SAFETY: the timer is a field of the instance, which QOM never moves.
        let timer = unsafe { Pin::new_unchecked(&mut *addr_of_mut!(self.timer)) };
        timer.init_full(None, CLOCK_VIRTUAL, Timer::NS, 0, Self::timer_fired, self);
    }

    fn realize(&self) -> Result<(), &'static CStr> {
        if !(1..=vagx_fw::device::MAX_UNITS).contains(&self.units) {
            return Err(c"vagx: units must be between 1 and 16");
        }
        if self.workers != u32::MAX && self.workers > vagx_fw::device::MAX_UNITS {
            return Err(c"vagx: workers must be between 0 and 16");
        }
        *self.dev.borrow_mut() = self.configured_device();
        self.register_memory_bar(0, &self.bar0);
        self.init_msix_exclusive_bar(regs::MSIX_VECTORS, 1)
            .map_err(|_| c"vagx: cannot set up MSI-X")?;
        Ok(())
    }

    fn exit(&self) {
        // Waits of other devices on this one fail from now on.
        self.dev.borrow_mut().detach();
        // Commands on the workers hold mappings of the bus-master address space, which the
        // PCI core destroys after this: end them first.
        self.dev.borrow_mut().reset();
        self.timer.delete();
        self.uninit_msix_exclusive_bar();
    }

    /// A fresh model with the properties' configuration and pre-armed injections.
    fn configured_device(&self) -> Device {
        let mut dev = Device::new(Config {
            units: self.units,
            // An unknown value boots normally (QEMU properties have no range checks here).
            boot_fault: BootFault::from_raw(self.boot_fault).unwrap_or_default(),
            abi_version: (self.abi_version != 0).then_some(self.abi_version),
            workers: if self.workers == u32::MAX {
                self.units
            } else {
                self.workers
            },
            rates: Rates::default().slowed(self.rate_divisor),
            ..Config::default()
        });
        let inject = dev.injections_mut();
        if self.inject_hang_queue != u32::MAX {
            inject.hang_queue = Some(self.inject_hang_queue);
        }
        if self.inject_crash_after != 0 {
            inject.crash_after = Some(self.inject_crash_after);
        }
        let waker = Arc::new(TimerWaker(NonNull::from(&self.timer)));
        if dev.attach(fabric(), waker).is_none() {
            log_mask_ln!(
                Log::Unimp,
                "vagx: the peer fabric is full; this device is on none"
            );
        }
        dev
    }

    fn reset_hold(&self, _type: ResetType) {
        self.timer.delete();
        // Leave the fabric first so that the new model takes the same port.
        self.dev.borrow_mut().detach();
        *self.dev.borrow_mut() = self.configured_device();
    }

    /// Runs `f` on the model with guest memory and the current time, then re-arms the timer and
    /// sends an interrupt if the model asks for one.
    fn with_model<R>(&self, f: impl FnOnce(&mut Device, &mut Dma<'_>, u64) -> R) -> Option<R> {
        if self.busy.get() {
            log_mask_ln!(
                Log::GuestError,
                "vagx: BAR0 accessed by the device's own DMA; refused"
            );
            return None;
        }
        self.busy.set(true);
        let now = CLOCK_VIRTUAL.get_ns();
        let (result, deadline, irq, traces) = {
            let mut dev = self.dev.borrow_mut();
            let result = f(&mut dev, &mut Dma(self), now);
            // Take the interrupt first: holding one back adds a deadline.
            let irq = dev.take_irq();
            (result, dev.next_deadline(), irq, dev.take_trace())
        };
        self.busy.set(false);
        for t in traces {
            emit_trace(t);
        }
        match deadline {
            Some(t) => self.timer.modify(t.max(now)),
            None => self.timer.delete(),
        }
        if irq {
            // SAFETY: a plain C function without preconditions.
            unsafe { bindings::vagx_trace_irq() };
            self.msix_notify(regs::MSIX_VECTOR);
        }
        Some(result)
    }

    fn timer_fired(&self) {
        self.with_model(|dev, mem, now| dev.advance(mem, now));
    }

    fn read(&self, offset: hwaddr, size: u32) -> u64 {
        // Reads have no side effects; they need no DMA and no time.
        if self.busy.get() {
            log_mask_ln!(
                Log::GuestError,
                "vagx: BAR0 read by the device's own DMA; refused"
            );
            return 0;
        }
        match self.dev.borrow().mmio_read(offset, size) {
            Ok(value) => u64::from(value),
            Err(err) => {
                log_mask_ln!(Log::GuestError, "vagx: refused BAR0 read: {err}");
                0
            }
        }
    }

    fn write(&self, offset: hwaddr, value: u64, size: u32) {
        let result = self.with_model(|dev, mem, now| {
            // CAST: registers are 32 bits; wider accesses are refused by the model.
            dev.mmio_write(mem, now, offset, size, value as u32)
        });
        if let Some(Err(err)) = result {
            log_mask_ln!(
                Log::GuestError,
                "vagx: refused BAR0 write of {value:#x}: {err}"
            );
        }
    }
}
