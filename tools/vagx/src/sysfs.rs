// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Finding vagx devices through sysfs.

use std::{fs, path::Path};

use anyhow::{Context, Result};
use vagx_abi::pci;

/// What sysfs tells about one vagx PCI function.
#[derive(Debug)]
pub struct PciFunction {
    /// Bus address, e.g. `0000:00:04.0`.
    pub address: String,
    pub vendor: u16,
    pub device: u16,
    pub revision: u8,
    pub class: u32,
    /// Size of BAR0 in bytes, from the `resource` file.
    pub bar0_size: u64,
    /// Name of the bound driver, if any.
    pub driver: Option<String>,
}

const PCI_DEVICES: &str = "/sys/bus/pci/devices";

/// Lists the PCI functions whose vendor and device IDs are vagx's.
///
/// # Errors
///
/// Fails if sysfs cannot be read.
pub fn vagx_devices() -> Result<Vec<PciFunction>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(PCI_DEVICES).context("reading /sys/bus/pci/devices")? {
        let dir = entry?.path();
        let vendor = read_hex(&dir.join("vendor"))?;
        let device = read_hex(&dir.join("device"))?;
        if vendor != u64::from(pci::VENDOR_ID) || device != u64::from(pci::DEVICE_ID) {
            continue;
        }
        let driver = fs::read_link(dir.join("driver"))
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
        found.push(PciFunction {
            address: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            vendor: u16::try_from(vendor)?,
            device: u16::try_from(device)?,
            revision: u8::try_from(read_hex(&dir.join("revision"))?)?,
            class: u32::try_from(read_hex(&dir.join("class"))?)?,
            bar0_size: bar0_size(&dir)?,
            driver,
        });
    }
    found.sort_by(|a, b| a.address.cmp(&b.address));
    Ok(found)
}

/// Reads a sysfs attribute holding one `0x`-prefixed hexadecimal number.
fn read_hex(path: &Path) -> Result<u64> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_hex(text.trim()).with_context(|| format!("parsing {}", path.display()))
}

fn parse_hex(text: &str) -> Result<u64> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    Ok(u64::from_str_radix(digits, 16)?)
}

/// Size of BAR0 from the first line of `resource` (`start end flags`).
fn bar0_size(dir: &Path) -> Result<u64> {
    let text = fs::read_to_string(dir.join("resource"))?;
    let line = text.lines().next().context("empty resource file")?;
    let mut fields = line.split_whitespace().map(parse_hex);
    let (Some(start), Some(end)) = (fields.next(), fields.next()) else {
        anyhow::bail!("malformed resource line {line:?}");
    };
    let (start, end) = (start?, end?);
    Ok(if end > start { end - start + 1 } else { 0 })
}
