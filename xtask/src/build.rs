// SPDX-License-Identifier: GPL-2.0 OR MIT

//! `cargo xtask build` and `cargo xtask clean`: everything a VM run needs.

use std::{path::PathBuf, time::Instant};

use anyhow::Result;
use xshell::Shell;

use crate::{flags, initramfs, kernel, paths::Paths, qemu, setup};

/// The outputs of a build: what `run`, `kunit` and `vm-test` boot.
#[derive(Debug, Clone)]
pub struct Artifacts {
    pub kernel: kernel::Kernel,
    pub qemu: PathBuf,
    pub initramfs: PathBuf,
}

/// Sets up if needed, then brings every artifact up to date.
///
/// Each step is incremental: an unchanged input costs a few seconds, a driver edit rebuilds the
/// module and the initramfs only.
pub fn build_all(sh: &Shell) -> Result<Artifacts> {
    setup::ensure(sh)?;
    let paths = Paths::new();
    let start = Instant::now();
    let kernel = kernel::build(&paths)?;
    let qemu = qemu::build(&paths)?;
    let tool = initramfs::build_tool(&paths)?;
    let initramfs = initramfs::build(&paths, &kernel, &tool)?;
    eprintln!(
        "build: up to date in {:.0} s (Linux {}, cache {})",
        start.elapsed().as_secs_f64(),
        kernel.version,
        paths.cache.display()
    );
    Ok(Artifacts {
        kernel,
        qemu,
        initramfs,
    })
}

/// The artifacts of `art` with the production kernel (and its initramfs) instead of the test
/// kernel: built, in its own directory, the first time a bench asks for it.
pub fn production(art: &Artifacts) -> Result<Artifacts> {
    let paths = Paths::new();
    let start = Instant::now();
    let kernel = kernel::build_flavour(&paths, kernel::Flavour::Production)?;
    let tool = initramfs::build_tool(&paths)?;
    let initramfs = initramfs::build(&paths, &kernel, &tool)?;
    eprintln!(
        "build: production kernel up to date in {:.0} s",
        start.elapsed().as_secs_f64()
    );
    Ok(Artifacts {
        kernel,
        qemu: art.qemu.clone(),
        initramfs,
    })
}

impl flags::Build {
    pub fn run(&self, sh: &Shell) -> Result<()> {
        let art = build_all(sh)?;
        println!("kernel:    {}", art.kernel.bzimage.display());
        println!("module:    {}", art.kernel.vagx_ko.display());
        println!("qemu:      {}", art.qemu.display());
        println!("initramfs: {}", art.initramfs.display());
        Ok(())
    }
}

impl flags::Clean {
    /// Removes the build trees and logs; keeps the sources, downloads and ccache, which are slow
    /// to fetch and keyed by content anyway.
    pub fn run(&self, _sh: &Shell) -> Result<()> {
        let paths = Paths::new();
        for dir in [
            paths.linux_build.clone(),
            paths.qemu_build.clone(),
            paths.initramfs.clone(),
            paths.tools.clone(),
            paths.logs.clone(),
        ] {
            if dir.exists() {
                eprintln!("clean: removing {}", dir.display());
                std::fs::remove_dir_all(&dir)?;
            }
        }
        let production = paths.cache.join("linux").join("build-production");
        if production.exists() {
            eprintln!("clean: removing {}", production.display());
            std::fs::remove_dir_all(&production)?;
        }
        for stamp in [
            "linux/config.stamp",
            "linux/config-production.stamp",
            "qemu/configure.stamp",
        ] {
            std::fs::remove_file(paths.cache.join(stamp)).ok();
        }
        Ok(())
    }
}
