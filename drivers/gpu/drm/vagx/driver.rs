// SPDX-License-Identifier: GPL-2.0 OR MIT

//! PCI driver: binds to the vagx device and checks its identity and ABI version.

use kernel::{
    device::Core,
    io::Io,
    pci,
    prelude::*, //
};

use crate::{
    abi,
    regs::{
        self,
        AbiVersion, //
    },
};

/// BAR0 of a vagx device, sized to the register window.
type Bar0<'bound> = pci::Bar<'bound, { regs::END }>;

/// Per-device state of a bound vagx GPU.
pub(crate) struct VagxDevice<'bound> {
    pdev: &'bound pci::Device,
    /// Kept mapped for the lifetime of the binding.
    _bar: Bar0<'bound>,
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

impl pci::Driver for VagxPciDriver {
    type IdInfo = ();
    type Data<'bound> = VagxDevice<'bound>;

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

        let version = AbiVersion::from_raw(bar.read(regs::ABI_VERSION).into_raw());
        if !AbiVersion::DRIVER.supports(version) {
            dev_err!(
                pdev,
                "firmware ABI {} is not supported (driver speaks {})\n",
                version,
                AbiVersion::DRIVER
            );
            return Err(ENODEV);
        }

        dev_info!(
            pdev,
            "vagx GPU {:04x}:{:04x} rev {}, firmware ABI {}\n",
            abi::pci::VENDOR_ID,
            pdev.device_id(),
            pdev.revision_id(),
            version
        );

        Ok(VagxDevice { pdev, _bar: bar })
    }
}

impl Drop for VagxDevice<'_> {
    fn drop(&mut self) {
        dev_info!(self.pdev, "vagx GPU unbound\n");
    }
}
