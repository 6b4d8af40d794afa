// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The command-line interface of `cargo xtask`, declared once.
//!
//! Each subcommand is a struct here; its `run` method lives in the module that
//! implements it (`setup`, `build`, `vm`, `test_cmd`).

use clap::{Args, Parser, Subcommand};

/// Builds, boots and tests the vagx driver and its QEMU device.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version)]
pub struct Xtask {
    /// The subcommand to run.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// The subcommands of `cargo xtask`.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Installs everything the project needs (Debian packages, kernel and QEMU sources, Rust tools).
    Setup(Setup),
    /// Builds the kernel, the vagx module, QEMU and the initramfs.
    Build(Build),
    /// Boots the built kernel in QEMU with the vagx device.
    Run(Run),
    /// Runs every test: host unit tests, KUnit and the VM tests.
    Test(Test),
    /// Runs the KUnit suites in QEMU.
    Kunit(Kunit),
    /// Runs the scheduler benchmarks: vagx's scheduler and C drm_sched on the same workloads.
    Bench(Bench),
    /// Runs the qtest tests of the vagx device (QEMU without a guest kernel).
    Qtest(Qtest),
    /// Runs the in-VM integration tests.
    VmTest(VmTest),
    /// Removes build outputs (sources and downloads stay cached).
    Clean(Clean),
}

/// Arguments of `cargo xtask setup`.
#[derive(Debug, Args)]
pub struct Setup {
    /// Only report what is missing; change nothing and exit non-zero if anything is missing.
    #[arg(long)]
    pub check: bool,
}

/// Arguments of `cargo xtask build`.
#[derive(Debug, Args)]
pub struct Build {}

/// Arguments of `cargo xtask run`.
#[derive(Debug, Args)]
pub struct Run {
    /// Stop the VM after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub timeout: u64,
}

/// Arguments of `cargo xtask test`.
#[derive(Debug, Args)]
pub struct Test {}

/// Arguments of `cargo xtask kunit`.
#[derive(Debug, Args)]
pub struct Kunit {
    /// Run the kernel's `kunit.py run` with `linux/configs/debug.kunitconfig` (lockdep, debug
    /// objects, slab debugging) in its own kernel build, instead of booting the main kernel.
    #[arg(long)]
    pub debug: bool,
    /// Only the suites matching this KUnit glob (`kunit.filter_glob`), for quick iteration;
    /// `make test` always runs every suite.
    #[arg(long)]
    pub filter: Option<String>,
}

/// What `cargo xtask bench` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchWhat {
    /// The vagx scheduler and C drm_sched on the same KUnit workloads, in one boot.
    Sched,
    /// The driver in its two scheduling modes: `vagx-tool bench` in the VM, kernel then
    /// firmware mode, in one boot.
    Driver,
    /// ML across 4 vGPUs: collectives, data/tensor/pipeline parallel inference on 1, 2 and 4
    /// GPUs, the dispatcher's policies, timing fidelity, in one boot.
    Ml,
    /// A serving mix (interactive requests with an SLO beside batch work) under FIFO, FAIR,
    /// FAIR with weights, deadlines, and firmware mode with the same controls, in one boot.
    Serve,
}

/// Arguments of `cargo xtask bench`.
#[derive(Debug, Args)]
pub struct Bench {
    /// The benchmark to run.
    #[arg(value_enum, default_value_t = BenchWhat::Sched)]
    pub what: BenchWhat,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
    /// Only the suites matching this KUnit glob (default: every scheduler workload suite).
    #[arg(long, default_value = "*sched_scheduler*")]
    pub filter: String,
    /// The kernels `bench ml` boots, one after the other: the test kernel (lockdep), the
    /// production one (same tree without the debugging options, built on first use), or both.
    #[arg(long, value_enum, default_value_t = Kernels::Both)]
    pub kernel: Kernels,
}

/// Which kernels a bench boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kernels {
    Test,
    Production,
    Both,
}

/// Arguments of `cargo xtask qtest`.
#[derive(Debug, Args)]
pub struct Qtest {}

/// Arguments of `cargo xtask vm-test`.
#[derive(Debug, Args)]
pub struct VmTest {}

/// Arguments of `cargo xtask clean`.
#[derive(Debug, Args)]
pub struct Clean {}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Xtask::command().debug_assert();
    }

    #[test]
    fn run_timeout_defaults_to_300() {
        let x = Xtask::parse_from(["cargo xtask", "run"]);
        match x.cmd {
            Cmd::Run(r) => assert_eq!(r.timeout, 300),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn bench_sched_is_the_default_and_can_be_named() {
        for args in [
            &["cargo xtask", "bench"][..],
            &["cargo xtask", "bench", "sched"],
        ] {
            match Xtask::parse_from(args).cmd {
                Cmd::Bench(b) => assert_eq!(b.what, BenchWhat::Sched),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(Xtask::try_parse_from(["cargo xtask", "bench", "gpu"]).is_err());
    }

    #[test]
    fn setup_check_flag() {
        let x = Xtask::parse_from(["cargo xtask", "setup", "--check"]);
        assert!(matches!(x.cmd, Cmd::Setup(Setup { check: true })));
    }
}
