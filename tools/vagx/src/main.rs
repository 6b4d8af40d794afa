// SPDX-License-Identifier: GPL-2.0 OR MIT

//! `vagx-tool`: inspects vagx GPUs and runs the in-VM integration tests.
//!
//! It runs inside the test VM as a static binary in the initramfs.

mod cmdbuf;
mod driver_tests;
mod gpu;
mod module;
mod sysfs;
mod tests;
mod uapi;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Command line of `vagx-tool`.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lists the vagx GPUs on the PCI bus and their driver.
    Info,
    /// Runs the integration tests and prints `N passed, N failed`.
    Test {
        /// Path of the module to load and unload (`vagx.ko`).
        #[arg(long)]
        module: std::path::PathBuf,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info => info(),
        Command::Test { module } => tests::run(&module).and_then(|tally| {
            if tally.failed == 0 {
                Ok(())
            } else {
                Err(anyhow::anyhow!("{} test(s) failed", tally.failed))
            }
        }),
    };
    if let Err(err) = result {
        eprintln!("vagx-tool: error: {err:#}");
        std::process::exit(1);
    }
}

/// Prints one line per vagx device.
fn info() -> Result<()> {
    let devices = sysfs::vagx_devices()?;
    if devices.is_empty() {
        anyhow::bail!("no vagx device on the PCI bus");
    }
    for dev in &devices {
        println!(
            "{}: vagx GPU {:04x}:{:04x} rev {} class {:06x}, BAR0 {} bytes, driver {}",
            dev.address,
            dev.vendor,
            dev.device,
            dev.revision,
            dev.class,
            dev.bar0_size,
            dev.driver.as_deref().unwrap_or("(none)")
        );
    }
    Ok(())
}
