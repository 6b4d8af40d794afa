// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Booting the test VM: `cargo xtask run`, and the boot helper the test commands share.
//!
//! The guest runs under TCG: `/dev/kvm` exists on these machines but is a nested PVM on which
//! a guest hangs silently. The guest's init (`tests/guest/init`) reports its result on the
//! console as `vagx-guest: exit <status>`; anything else (a panic, a hang, QEMU failing) is an
//! error with the log's path.

use std::{path::PathBuf, time::Duration};

use anyhow::{bail, Result};
use xshell::Shell;

use crate::{build, flags, paths::Paths, process::Job, qemu};

/// What the guest's init should do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Load the driver and run the demo.
    Run,
    /// Run the in-VM integration tests.
    Test,
    /// Run the KUnit suites (built-in ones at boot, module ones at load).
    Kunit,
    /// Run the scheduler benchmarks: vagx's and C drm_sched's KUnit workloads.
    Bench,
    /// Probe devices whose firmware misbehaves at boot ([`FAULTY_DEVICES`]).
    Faults,
    /// Run `vagx-tool bench` with the driver in each scheduling mode.
    BenchDriver,
    /// Run the conformance basics on every device of a boot with [`MULTI_GPU_DEVICES`].
    Gpus,
    /// Run `vagx-tool bench-ml` on [`MULTI_GPU_DEVICES`] devices.
    BenchMl,
    /// Run `vagx-tool bench-serve` under each scheduling mode, policy and set of controls.
    BenchServe,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Self::Run => "run",
            Self::Test => "test",
            Self::Kunit => "kunit",
            Self::Bench => "bench",
            Self::Faults => "faults",
            Self::BenchDriver => "bench-driver",
            Self::Gpus => "gpus",
            Self::BenchMl => "bench-ml",
            Self::BenchServe => "bench-serve",
        }
    }
}

/// The result of one boot.
pub struct Boot {
    /// The serial console output.
    pub console: String,
    /// Where the console output was saved.
    pub log: PathBuf,
}

/// Number of vagx devices a VM gets unless `VAGX_GPUS` says otherwise: two, so that
/// multi-instance bugs show up early.
const DEFAULT_GPUS: usize = 2;

/// Most devices a VM may get (PCI slots, render nodes and guest memory stay small).
const MAX_GPUS: usize = 8;

/// Devices of the multi-GPU boot of the VM tests ([`Mode::Gpus`]).
pub const MULTI_GPU_DEVICES: usize = 4;
/// The firmware ABI of the last device of the multi-GPU boot: an older minor version (1.2),
/// so that the driver's paths for an older device (the mailbox doorbell, the `RX_DOORBELL`
/// message, CPU waits where the others wait over the peer fabric) run the whole multi-GPU
/// suite beside newer devices. `vagx-tool test-gpus` checks that the last GPU reports it.
const OLDER_ABI_DEVICE: u32 = 0x0001_0002;
/// How many times slower than the default cost model the ML benchmark's devices are
/// (QEMU property `rate-divisor`): the emulation of four devices on a 2-core host cannot keep
/// the default rates, and a late device measures the host instead of the scheduling
/// (Documentation/gpu/vagx-ml.rst, "Benchmark"). At 32 a pipeline of four GPUs still had a
/// few commands a run late by milliseconds, each stretching every stage after it.
pub const BENCH_ML_RATE_DIVISOR: u32 = 64;

/// The number of vagx devices of a VM: `VAGX_GPUS` (1 to [`MAX_GPUS`]), else
/// [`DEFAULT_GPUS`]. The one place `make run`, the VM tests and the benches take it from.
///
/// # Errors
///
/// `VAGX_GPUS` is set but not a number in range.
pub fn gpu_count() -> Result<usize> {
    match std::env::var("VAGX_GPUS") {
        Err(_) => Ok(DEFAULT_GPUS),
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if (1..=MAX_GPUS).contains(&n) => Ok(n),
            _ => bail!("VAGX_GPUS={v:?}: give a number of devices from 1 to {MAX_GPUS}"),
        },
    }
}

/// The devices of the faults boot, in PCI slot order: a firmware that fails its boot, one
/// that never answers, one that crashes right after booting, and a device of ABI 2.0.
/// `vagx-tool test-faults` knows this order.
const FAULTY_DEVICES: &[&str] = &[
    "vagx,id=fail,boot-fault=1",
    "vagx,id=silent,boot-fault=2",
    "vagx,id=crash,boot-fault=3",
    "vagx,id=abi2,abi-version=0x20000",
];

/// Boots the built kernel with `mode`, echoing the console when `echo` is set.
///
/// # Errors
///
/// Fails with one line and the log path if QEMU fails or times out, the guest panics, or the
/// guest's init never reports an exit status. A non-zero guest status is not an error here; see
/// [`guest_status`].
pub fn boot(art: &build::Artifacts, mode: Mode, timeout: Duration, echo: bool) -> Result<Boot> {
    boot_with(art, mode, timeout, echo, DEFAULT_FILTER)
}

/// The bench's suites: both schedulers' workloads.
const DEFAULT_FILTER: &str = "*sched_scheduler*";

/// Like [`boot`]; in bench mode, `filter` is the KUnit glob of the suites to run, and in
/// KUnit mode too unless it is [`boot`]'s default (every suite runs then).
pub fn boot_with(
    art: &build::Artifacts,
    mode: Mode,
    timeout: Duration,
    echo: bool,
    filter: &str,
) -> Result<Boot> {
    let paths = Paths::new();
    let log = paths.log(&format!("vm-{}", mode.as_str()))?;
    std::fs::remove_file(&log).ok();

    let gpus = match mode {
        Mode::Faults => FAULTY_DEVICES.len(),
        Mode::Gpus | Mode::BenchMl => MULTI_GPU_DEVICES,
        _ => gpu_count()?,
    };
    let mut append = vec![
        "console=ttyS0".to_owned(),
        "panic=-1".to_owned(),
        "oops=panic".to_owned(),
        format!("vagx.mode={}", mode.as_str()),
        // What the tool expects to find (it checks that every device probed).
        format!("vagx.gpus={gpus}"),
    ];
    match mode {
        Mode::Kunit => {
            append.push("kunit.enable=1".to_owned());
            if filter != DEFAULT_FILTER {
                append.push(format!("kunit.filter_glob={filter}"));
            }
        }
        Mode::Bench => {
            append.push("kunit.enable=1".to_owned());
            // Both schedulers' workload suites: vagx_sched_scheduler_*, drm_sched_scheduler_*.
            append.push(format!("kunit.filter_glob={filter}"));
        }
        // The test boots track allocations; the guest scans when its tests are done, and a
        // leak's "suspected memory leak" line fails the run (`kernel_warnings`).
        Mode::Test | Mode::Faults | Mode::Gpus => append.push("kmemleak=on".to_owned()),
        Mode::Run | Mode::BenchDriver | Mode::BenchMl | Mode::BenchServe => {}
    }

    let mut cmd = std::process::Command::new(&art.qemu);
    for dir in qemu::BIOS_DIRS {
        cmd.arg("-L").arg(dir);
    }
    cmd.args(["-accel", "tcg", "-m", "1G", "-smp", "2"])
        .args([
            "-nographic",
            "-no-reboot",
            "-monitor",
            "none",
            "-serial",
            "stdio",
            // No NIC: the guest needs none, and its option ROM is not installed.
            "-nic",
            "none",
        ])
        .arg("-kernel")
        .arg(&art.kernel.bzimage)
        .arg("-initrd")
        .arg(&art.initramfs)
        .arg("-append")
        .arg(append.join(" "));
    if mode == Mode::Faults {
        for dev in FAULTY_DEVICES {
            cmd.args(["-device", dev]);
        }
    } else {
        for i in 0..gpus {
            let mut dev = format!("vagx,id=gpu{i}");
            if mode == Mode::BenchMl {
                dev += &format!(",rate-divisor={BENCH_ML_RATE_DIVISOR}");
            }
            if mode == Mode::Gpus && i + 1 == gpus {
                dev += &format!(",abi-version={OLDER_ABI_DEVICE:#x}");
            }
            cmd.args(["-device", &dev]);
        }
    }

    let mut job = Job::new(cmd, &format!("VM ({} mode)", mode.as_str()), &log).timeout(timeout);
    if echo {
        job = job.echo(|_| true);
    }
    let result = job.run();
    let console = std::fs::read_to_string(&log).unwrap_or_default();
    if let Some(line) = console.lines().find(|l| l.contains("Kernel panic")) {
        bail!(
            "the guest kernel panicked ({}); log: {}",
            line.trim(),
            log.display()
        );
    }
    result?;
    if guest_status(&console).is_none() {
        bail!(
            "the guest stopped without reporting a status (did init run?); log: {}",
            log.display()
        );
    }
    Ok(Boot { console, log })
}

/// The status the guest's init reported with `vagx-guest: exit <status>`.
pub fn guest_status(console: &str) -> Option<i32> {
    console
        .lines()
        .rev()
        .filter_map(|l| l.split("vagx-guest: exit ").nth(1))
        .find_map(|s| s.trim().parse().ok())
}

impl flags::Run {
    pub fn run(&self, sh: &Shell) -> Result<()> {
        let gpus = gpu_count()?;
        let art = build::build_all(sh)?;
        eprintln!("run: booting the VM with {gpus} vagx devices (TCG; VAGX_GPUS sets the number)");
        let boot = boot(&art, Mode::Run, Duration::from_secs(self.timeout), true)?;
        match guest_status(&boot.console) {
            Some(0) => {
                eprintln!(
                    "run: the guest finished with status 0; log: {}",
                    boot.log.display()
                );
                Ok(())
            }
            status => bail!(
                "the guest finished with status {status:?}; log: {}",
                boot.log.display()
            ),
        }
    }
}

/// The kernel's reports of a bug it survived: lockdep splats, `WARN()`s, sleeping in atomic
/// context, oopses, hung tasks and leaks. A test run with any of them has failed, whatever its
/// tests printed: lockdep reports the first problem once and then turns itself off.
pub fn kernel_warnings(console: &str) -> Vec<&str> {
    const MARKERS: &[&str] = &[
        "WARNING:",
        "BUG:",
        "Oops:",
        "general protection fault",
        "INFO: task ",
        "INFO: rcu_",
        "inconsistent lock state",
        "suspected memory leak",
        "UBSAN:",
    ];
    console
        .lines()
        .map(|l| l.trim_end())
        .filter(|l| MARKERS.iter().any(|m| l.contains(m)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_warnings_finds_lockdep_and_warn_on() {
        let console = "[    1.0] ok 1 fence\n\
            [    1.1] WARNING: possible circular locking dependency detected\n\
            [    1.2] rcu: RCU lockdep checking is enabled.\n\
            [    1.3] BUG: sleeping function called from invalid context at mm/slab.c:1\n\
            [    1.4] WARNING: CPU: 1 PID: 7 at drivers/x.c:3 f+0x1/0x2\n";
        let found = kernel_warnings(console);
        assert_eq!(found.len(), 3);
        assert!(found[0].contains("circular locking"));
        assert!(kernel_warnings("[ 0.1] rcu: RCU lockdep checking is enabled.\n").is_empty());
    }

    #[test]
    fn guest_status_takes_the_last_report() {
        assert_eq!(guest_status("boot\nvagx-guest: exit 0\n"), Some(0));
        assert_eq!(guest_status("[ 1.0] vagx-guest: exit 3\r\n"), Some(3));
        assert_eq!(
            guest_status("vagx-guest: exit 1\nvagx-guest: exit 0\n"),
            Some(0)
        );
        assert_eq!(guest_status("Kernel panic - not syncing\n"), None);
        assert_eq!(guest_status("vagx-guest: exit x\n"), None);
    }
}
