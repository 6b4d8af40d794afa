// SPDX-License-Identifier: GPL-2.0 OR MIT

//! `cargo xtask kunit --debug`: the kernel's own `kunit.py run` with the debug kunitconfig.
//!
//! kunit.py builds its own kernel (in `linux/kunit-debug` of the cache) from the same patched
//! tree with the overlay, boots it in our QEMU and parses the results itself. KVM hangs on this
//! machine and kunit.py always asks for it first, so QEMU is reached through a small wrapper
//! that drops `-accel kvm` (TCG remains).

use std::{fs, os::unix::fs::PermissionsExt, path::Path, time::Instant};

use anyhow::{bail, Result};
use xshell::Shell;

use crate::{
    kernel,
    paths::{ensure_dir, Paths},
    process::Job,
    qemu, setup,
};

/// The kunitconfig kunit.py runs.
const KUNITCONFIG: &str = "linux/configs/debug.kunitconfig";

/// Runs the debug kunitconfig and prints kunit.py's summary and the time it took.
pub fn run(sh: &Shell) -> Result<()> {
    setup::ensure(sh)?;
    let paths = Paths::new();
    kernel::prepare(&paths)?;
    let qemu = qemu::build(&paths)?;
    let dir = ensure_dir(&paths.cache.join("linux/kunit-debug"))?.to_path_buf();
    let bin = ensure_dir(&dir.join("bin"))?.to_path_buf();
    write_qemu_wrapper(&bin.join("qemu-system-x86_64"), &qemu)?;

    let log = paths.log("kunit-debug")?;
    fs::remove_file(&log).ok();
    let mut cmd = std::process::Command::new("python3");
    cmd.current_dir(&paths.linux_src)
        .arg("tools/testing/kunit/kunit.py")
        .args(["run", "--arch=x86_64", "--timeout=3000"])
        .arg(format!(
            "--kunitconfig={}",
            paths.root.join(KUNITCONFIG).display()
        ))
        .arg(format!("--build_dir={}", dir.join("build").display()))
        .arg(format!("--jobs={}", kernel::jobs()))
        .args(["--make_options", "CC=ccache gcc"])
        .args(["--qemu_args", "-smp 2 -m 1G"])
        .envs(setup::tool_env());
    let path = format!(
        "{}:{}",
        bin.display(),
        setup::tool_env()
            .into_iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v)
            .unwrap_or_default()
    );
    cmd.env("PATH", path);

    eprintln!(
        "kunit --debug: kunit.py run with {KUNITCONFIG} (log: {})",
        log.display()
    );
    let start = Instant::now();
    let result = Job::new(cmd, "kunit.py run", &log)
        .echo(|l| {
            l.contains("Building")
                || l.contains("Starting KUnit")
                || l.contains("Testing complete")
                || l.contains("[FAILED]")
                || l.contains("[CRASHED]")
                || l.contains("Elapsed time")
        })
        .heartbeat()
        .run();
    eprintln!(
        "kunit --debug: {:.0} s in all",
        start.elapsed().as_secs_f64()
    );
    result?;

    // kunit.py passes on test results alone; a lockdep splat must fail the run too.
    let console = fs::read_to_string(dir.join("build/test.log")).unwrap_or_default();
    let warnings = crate::vm::kernel_warnings(&console);
    for w in &warnings {
        eprintln!("kunit --debug FAILED: kernel warning: {w}");
    }
    if !warnings.is_empty() {
        bail!(
            "{} kernel warning(s); log: {}",
            warnings.len(),
            log.display()
        );
    }
    Ok(())
}

/// A `qemu-system-x86_64` that runs `qemu` with the firmware directories and without KVM.
fn write_qemu_wrapper(path: &Path, qemu: &Path) -> Result<()> {
    let bios: String = qemu::BIOS_DIRS.iter().map(|d| format!(" -L {d}")).collect();
    let script = format!(
        "#!/bin/sh\n\
         # Written by cargo xtask kunit --debug: KVM hangs here, so drop kunit.py's -accel kvm/hvf.\n\
         n=$#\n\
         while [ $n -gt 0 ]; do\n\
         \x20 a=$1; shift; n=$((n - 1))\n\
         \x20 if [ \"$a\" = -accel ] && {{ [ \"$1\" = kvm ] || [ \"$1\" = hvf ]; }}; then shift; n=$((n - 1)); continue; fi\n\
         \x20 set -- \"$@\" \"$a\"\n\
         done\n\
         exec {}{bios} \"$@\"\n",
        qemu.display()
    );
    fs::write(path, script)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))?;
    Ok(())
}
