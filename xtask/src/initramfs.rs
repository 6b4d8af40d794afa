// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The guest's initramfs: busybox, the guest init script, `vagx-tool` and the modules.
//!
//! The archive is an uncompressed `newc` cpio written here, so that its contents are exactly
//! the listed files, in a fixed order, with fixed owners and times: the same inputs give the same
//! bytes.

use std::{
    fs,
    io::Write,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

use crate::{
    kernel::Kernel,
    paths::{ensure_dir, Paths},
    process::Job,
    setup,
};

/// busybox from Debian's `busybox-static`.
const BUSYBOX: &str = "/bin/busybox";

/// The Rust target of the static `vagx-tool`.
const TOOL_TARGET: &str = "x86_64-unknown-linux-gnu";

/// Builds the static `vagx-tool` binary and returns its path.
pub fn build_tool(paths: &Paths) -> Result<PathBuf> {
    let target_dir = paths.tools.join("target");
    let log = paths.log("tool-build")?;
    eprintln!("tool: building the static vagx-tool");
    let mut cargo = Command::new("cargo");
    cargo
        .current_dir(&paths.root)
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            "vagx-tool",
            "--target",
            TOOL_TARGET,
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        // glibc's static libraries are in libc6-dev; with an explicit --target the flag does not
        // reach build scripts and proc macros.
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .envs(setup::tool_env());
    Job::new(cargo, "building vagx-tool", &log)
        .heartbeat()
        .run()?;
    Ok(target_dir.join(TOOL_TARGET).join("release/vagx-tool"))
}

/// Writes `cache/initramfs/initramfs.cpio` and returns its path.
pub fn build(paths: &Paths, kernel: &Kernel, tool: &Path) -> Result<PathBuf> {
    let mut archive = Cpio::default();
    for dir in [
        "bin",
        "dev",
        "etc",
        "lib",
        "lib/modules",
        "proc",
        "sys",
        "tmp",
    ] {
        archive.dir(dir);
    }
    archive.file("init", &paths.root.join("tests/guest/init"), 0o755)?;
    archive.file("bin/busybox", Path::new(BUSYBOX), 0o755)?;
    archive.file("bin/vagx-tool", tool, 0o755)?;
    archive.file("lib/modules/vagx.ko", &kernel.vagx_ko, 0o644)?;
    for module in &kernel.kunit_modules {
        let name = module
            .file_name()
            .with_context(|| format!("module path {}", module.display()))?;
        archive.file(
            &format!("lib/modules/{}", name.to_string_lossy()),
            module,
            0o644,
        )?;
    }

    // The C KUnit suites the guest loads in KUnit mode, beside the Rust ones: the dma-buf
    // suites (dma-fence, dma-fence-chain, ...), for comparison with kernel::dma_fence.
    let kunit_list: String = kernel
        .kunit_modules
        .iter()
        .filter_map(|m| m.file_name())
        .filter(|n| *n == "dmabuf_kunit.ko")
        .map(|n| format!("/lib/modules/{}\n", n.to_string_lossy()))
        .collect();
    archive.entry("etc/vagx-kunit-modules", 0o100_644, kunit_list.as_bytes());

    let dir = ensure_dir(&paths.initramfs)?;
    // One image per kernel flavour: the modules differ.
    let name = match kernel.flavour {
        crate::kernel::Flavour::Test => "initramfs.cpio".to_owned(),
        f => format!("initramfs-{}.cpio", f.name()),
    };
    let out = dir.join(&name);
    let tmp = dir.join(format!("{name}.tmp"));
    fs::write(&tmp, archive.finish())?;
    fs::rename(&tmp, &out)?;
    Ok(out)
}

/// A `newc` (SVR4, no CRC) cpio archive built in memory.
#[derive(Default)]
struct Cpio {
    data: Vec<u8>,
    next_ino: u32,
}

impl Cpio {
    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040_755, &[]);
    }

    fn file(&mut self, name: &str, src: &Path, mode: u32) -> Result<()> {
        let body = fs::read(src).with_context(|| format!("reading {}", src.display()))?;
        if body.is_empty() {
            bail!("{} is empty", src.display());
        }
        let perm = fs::metadata(src)?.permissions().mode() & 0o111;
        self.entry(name, 0o100_000 | mode | perm, &body);
        Ok(())
    }

    fn entry(&mut self, name: &str, mode: u32, body: &[u8]) {
        self.next_ino += 1;
        let nlink = if mode & 0o040_000 != 0 { 2 } else { 1 };
        let namesize = name.len() + 1;
        // Fields: magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor,
        // rdevmajor, rdevminor, namesize, check; eight hex digits each.
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.next_ino,
            mode,
            0,
            0,
            nlink,
            0,
            body.len(),
            0,
            0,
            0,
            0,
            namesize,
            0
        );
        self.data.extend_from_slice(header.as_bytes());
        self.data.extend_from_slice(name.as_bytes());
        self.data.push(0);
        self.pad();
        self.data.extend_from_slice(body);
        self.pad();
    }

    /// Aligns to four bytes, as `newc` requires after the name and after the body.
    fn pad(&mut self) {
        while !self.data.len().is_multiple_of(4) {
            self.data.push(0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.next_ino = 0;
        self.entry("TRAILER!!!", 0, &[]);
        // The kernel reads the archive in 512-byte blocks; pad like cpio(1) does.
        while !self.data.len().is_multiple_of(512) {
            self.data.push(0);
        }
        self.data.flush().ok();
        self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpio_entries_are_aligned_and_end_with_a_trailer() {
        let mut cpio = Cpio::default();
        cpio.dir("bin");
        cpio.entry("bin/x", 0o100_644, b"hello");
        let data = cpio.finish();
        assert!(data.starts_with(b"070701"));
        assert_eq!(data.len() % 512, 0);
        // Header (110 bytes) + "bin\0" padded to 4: the next header starts at 116.
        assert_eq!(&data[116..122], b"070701");
        let text = String::from_utf8_lossy(&data);
        assert!(text.contains("bin/x\0"));
        assert!(text.contains("hello"));
        assert!(text.contains("TRAILER!!!\0"));
        // The file's size field (the 8th field) is 5.
        assert_eq!(&text[116 + 6 + 6 * 8..116 + 6 + 7 * 8], "00000005");
    }
}
