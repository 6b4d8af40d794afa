// SPDX-License-Identifier: GPL-2.0 OR MIT

//! PCI driver: binds to the vagx device, boots its firmware and registers the DRM device.

use kernel::{
    device::Core,
    drm,
    io::Io,
    irq, pci,
    prelude::*,
    sync::{
        aref::ARef,
        Arc, //
    },
};

use crate::{
    abi,
    debugfs::Debugfs,
    drv::{
        VagxData,
        VagxDriver, //
    },
    fw::Firmware,
    gpu::{
        Gpu,
        IrqHandler, //
    },
    queue::KernelSched,
    regs::{
        self,
        AbiVersion, //
    },
    uapi,
};

/// Per-device state of a bound vagx GPU.
pub(crate) struct VagxPci {
    _debugfs: Debugfs,
    gpu: Arc<Gpu>,
    _drm: ARef<drm::Device<VagxDriver>>,
    _irq: Pin<KBox<irq::Registration<IrqHandler>>>,
}

/// The vagx PCI driver.
pub(crate) struct VagxPciDriver;

kernel::pci_device_table!(
    PCI_TABLE,
    MODULE_PCI_TABLE,
    <VagxPciDriver as pci::Driver>::IdInfo,
    [(
        pci::DeviceId::from_id(pci::Vendor::REDHAT_QUMRANET, abi::pci::DEVICE_ID as u32),
        ()
    )]
);

// The table above names the vendor through the kernel's constant; it must be the ABI's.
kernel::static_assert!(abi::pci::VENDOR_ID == 0x1af4);

/// The scheduling mode the module parameter asks for.
fn sched_mode() -> u32 {
    match *crate::module_parameters::sched_mode.value() {
        1 => uapi::SCHED_FIRMWARE,
        _ => uapi::SCHED_KERNEL,
    }
}

impl pci::Driver for VagxPciDriver {
    type IdInfo = ();
    type Data<'bound> = VagxPci;

    const ID_TABLE: pci::IdTable<Self::IdInfo> = &PCI_TABLE;

    fn probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _info: &'bound Self::IdInfo,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        pdev.enable_device_mem()?;
        pdev.set_master();

        let bar = pdev.iomap_region_sized::<{ regs::END }>(0, c"vagx")?;

        let magic = bar.read(regs::ID).magic().get();
        if magic != abi::regs::ID_MAGIC {
            dev_err!(
                pdev,
                "not a vagx device: ID register reads {:#010x}\n",
                magic
            );
            return Err(ENODEV);
        }

        let raw_version = bar.read(regs::ABI_VERSION).into_raw();
        let version = AbiVersion::from_raw(raw_version);
        if !AbiVersion::DRIVER.supports(version) {
            dev_err!(
                pdev,
                "firmware ABI {} is not supported (driver speaks {})\n",
                version,
                AbiVersion::DRIVER
            );
            return Err(ENODEV);
        }
        let units = bar.read(regs::UNITS).into_raw();
        if units == 0 || units as usize > crate::abi::MAX_UNITS {
            dev_err!(pdev, "the device reports {} execution units\n", units);
            return Err(ENODEV);
        }

        let vectors =
            pdev.alloc_irq_vectors(1, 1, pci::IrqTypes::default().with(pci::IrqType::MsiX))?;
        let fw = Arc::pin_init(
            Firmware::new(
                pdev.as_ref(),
                bar.into_devres()?,
                AbiVersion::negotiate(version),
            )?,
            GFP_KERNEL,
        )?;
        let gpu = Gpu::new(pdev, fw.clone(), units)?;
        let irq = KBox::pin_init(
            pdev.request_irq(
                *vectors.start(),
                irq::Flags::SHARED,
                c"vagx",
                IrqHandler::new(gpu.clone()),
            ),
            GFP_KERNEL,
        )?;

        let abi_version = fw.abi().raw();
        let started = (|| {
            fw.boot(pdev.as_ref())?;
            let mode = sched_mode();
            let kernel_sched = KernelSched::new(&gpu, mode == uapi::SCHED_KERNEL)?;
            let data_gpu = gpu.clone();
            let data = try_pin_init!(VagxData {
                gpu: data_gpu,
                kernel_sched,
                sched_mode: mode,
                abi_version,
            });
            let drm = drm::UnregisteredDevice::<VagxDriver>::new(pdev.as_ref(), data)?;
            let drm = drm::driver::Registration::new_foreign_owned(drm, pdev.as_ref(), 0)?;
            let debugfs = Debugfs::new(pdev.as_ref().name(), &gpu, drm)?;
            Ok((drm, debugfs, mode))
        })();
        // A failure after INIT may leave the firmware running: stop it before the memory it
        // uses is freed.
        let (drm, debugfs, mode) = started.inspect_err(|_: &Error| {
            gpu.lose();
            let _ = fw.reset();
        })?;

        let mode_name = if mode == uapi::SCHED_KERNEL {
            "kernel"
        } else {
            "firmware"
        };
        dev_info!(
            pdev,
            "vagx GPU {:04x}:{:04x} rev {}, firmware ABI {}, {} units, {} scheduling\n",
            abi::pci::VENDOR_ID,
            pdev.device_id(),
            pdev.revision_id(),
            version,
            units,
            mode_name
        );

        // Other GPUs' jobs may wait for this one's in its firmware from now on.
        crate::peers::register(&gpu);
        Ok(VagxPci {
            _debugfs: debugfs,
            gpu,
            _drm: drm.into(),
            _irq: irq,
        })
    }
}

impl Drop for VagxPci {
    fn drop(&mut self) {
        // Jobs on the hardware fail with ENODEV; later submits too. Allocations stop, and the
        // firmware is reset so that it touches no memory after this.
        crate::peers::unregister(&self.gpu);
        self.gpu.lose();
        self.gpu.dma.revoke();
        let _ = self.gpu.fw.reset();
        dev_info!(self.gpu.dev(), "vagx GPU unbound\n");
    }
}
