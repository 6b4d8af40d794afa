// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The `cargo xtask` entry point: parses the flags and dispatches to a subcommand.
//!
//! Run it as `cargo xtask <cmd>` through the alias in `.cargo/config.toml`.

mod bench;
mod bench_serve;
mod build;
mod flags;
mod initramfs;
mod kernel;
mod kunit_debug;
mod qemu;
mod qtest;
mod test_cmd;
#[cfg(test)]
mod tidy;
mod vm;

// Helper modules: their APIs serve the subcommands, which need not use every item.
#[allow(dead_code)]
mod ktap;
#[allow(dead_code)]
mod paths;
#[allow(dead_code)]
mod process;
#[allow(dead_code)]
mod setup;
#[allow(dead_code)]
mod stamp;

use clap::Parser;
use xshell::Shell;

fn main() {
    if let Err(err) = try_main() {
        // `{:#}` joins the anyhow context chain with ": " on one line.
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

fn try_main() -> anyhow::Result<()> {
    let flags = flags::Xtask::parse();
    let sh = Shell::new()?;
    sh.change_dir(paths::project_root());
    match flags.cmd {
        flags::Cmd::Setup(cmd) => cmd.run(&sh),
        flags::Cmd::Build(cmd) => cmd.run(&sh),
        flags::Cmd::Run(cmd) => cmd.run(&sh),
        flags::Cmd::Test(cmd) => cmd.run(&sh),
        flags::Cmd::Kunit(cmd) => cmd.run(&sh),
        flags::Cmd::Bench(cmd) => cmd.run(&sh),
        flags::Cmd::Qtest(cmd) => cmd.run(&sh),
        flags::Cmd::VmTest(cmd) => cmd.run(&sh),
        flags::Cmd::Clean(cmd) => cmd.run(&sh),
    }
}
