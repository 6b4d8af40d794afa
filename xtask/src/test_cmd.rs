// SPDX-License-Identifier: GPL-2.0 OR MIT

//! `cargo xtask test`, `kunit` and `vm-test`: run the suites and count their results.
//!
//! `test` runs, in order, the host `cargo test` of the workspace, the qtest tests of the device
//! (QEMU without a guest), the KUnit suites in QEMU and the in-VM integration tests, and ends with one line `N passed, N failed` over all of them.
//! A stage that cannot run (a build error, a VM that does not come up) counts as one failure
//! and is reported with its log.

use std::{process::Command, time::Duration};

use anyhow::{bail, Result};
use xshell::Shell;

use crate::{
    build::{self, Artifacts},
    flags,
    ktap::{self, Tally},
    paths::Paths,
    process::Job,
    qtest, setup,
    vm::{self, Mode},
};

/// Generous limits for TCG on two busy cores; a healthy run takes a fraction of them.
const KUNIT_TIMEOUT: Duration = Duration::from_secs(900);
const VM_TEST_TIMEOUT: Duration = Duration::from_secs(600);

impl flags::Test {
    pub fn run(&self, sh: &Shell) -> Result<()> {
        let mut total = Tally::default();
        // Set-up first: the tool's build script runs the bindgen it installs.
        if let Err(err) = setup::ensure(sh) {
            eprintln!("test: set-up failed: {err:#}");
            total.failed += 1;
            return finish(&total);
        }
        stage(&mut total, "host cargo test", host_tests);
        match build::build_all(sh) {
            Ok(art) => {
                stage(&mut total, "qtest", || Ok(qtest::run(&art.qemu)));
                stage(&mut total, "KUnit", || kunit(&art));
                stage(&mut total, "VM tests", || vm_tests(&art));
            }
            Err(err) => {
                eprintln!("test: build failed: {err:#}");
                total.failed += 1;
            }
        }
        finish(&total)
    }
}

impl flags::Kunit {
    pub fn run(&self, sh: &Shell) -> Result<()> {
        if self.debug {
            return crate::kunit_debug::run(sh);
        }
        let filter = self.filter.as_deref();
        single_stage(sh, "KUnit", |art| kunit_matching(art, filter))
    }
}

impl flags::Qtest {
    pub fn run(&self, sh: &Shell) -> Result<()> {
        single_stage(sh, "qtest", |art| Ok(qtest::run(&art.qemu)))
    }
}

impl flags::VmTest {
    pub fn run(&self, sh: &Shell) -> Result<()> {
        single_stage(sh, "VM tests", vm_tests)
    }
}

/// Builds, runs one stage and ends with its closing line: the fast-iteration entry points.
fn single_stage(
    sh: &Shell,
    name: &str,
    run: impl FnOnce(&Artifacts) -> Result<Tally>,
) -> Result<()> {
    let art = build::build_all(sh)?;
    let mut total = Tally::default();
    stage(&mut total, name, || run(&art));
    finish(&total)
}

/// Runs one stage, adding its counts, or one failure if it could not run.
fn stage(total: &mut Tally, name: &str, run: impl FnOnce() -> Result<Tally>) {
    eprintln!("test: == {name} ==");
    match run() {
        Ok(tally) => {
            eprintln!("test: {name}: {}", tally.closing_line());
            *total += tally;
        }
        Err(err) => {
            eprintln!("test: {name} could not run: {err:#}");
            total.failed += 1;
        }
    }
}

/// Prints the closing line (the last line of the output) and fails if anything failed.
fn finish(total: &Tally) -> Result<()> {
    println!("{}", total.closing_line());
    if total.failed > 0 || total.passed == 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// `cargo test --workspace`, counted from libtest's `test result:` lines.
fn host_tests() -> Result<Tally> {
    let paths = Paths::new();
    let log = paths.log("host-tests")?;
    std::fs::remove_file(&log).ok();
    let mut cargo = Command::new("cargo");
    cargo
        .current_dir(&paths.root)
        .args(["test", "--workspace", "--locked"])
        .envs(setup::tool_env());
    let result = Job::new(cargo, "cargo test", &log)
        .echo(|l| l.starts_with("test result:") || l.contains("FAILED") || l.contains("panicked"))
        .heartbeat()
        .run();
    let tally = libtest_tally(&std::fs::read_to_string(&log).unwrap_or_default());
    match result {
        Ok(()) if tally.total() > 0 => Ok(tally),
        Ok(()) => bail!("cargo test ran no test; log: {}", log.display()),
        // Test failures are counted; a build error has no `test result:` line to count.
        Err(_) if tally.failed > 0 => Ok(tally),
        Err(err) => Err(err),
    }
}

/// Sums libtest's `test result: ok. 3 passed; 0 failed; 1 ignored; ...` lines.
fn libtest_tally(output: &str) -> Tally {
    let mut tally = Tally::default();
    for line in output
        .lines()
        .filter_map(|l| l.trim().strip_prefix("test result: "))
    {
        for field in line.split(';') {
            let mut words = field.split_whitespace().rev();
            let (Some(kind), Some(count)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = count.parse::<usize>() else {
                continue;
            };
            match kind {
                "passed" => tally.passed += n,
                "failed" => tally.failed += n,
                "ignored" => tally.skipped += n,
                _ => {}
            }
        }
    }
    tally
}

/// Boots with `kunit.enable=1` and counts the KTAP results on the console.
fn kunit(art: &Artifacts) -> Result<Tally> {
    kunit_matching(art, None)
}

/// [`kunit`], with only the suites matching `filter` if given.
fn kunit_matching(art: &Artifacts, filter: Option<&str>) -> Result<Tally> {
    let boot = match filter {
        Some(glob) => vm::boot_with(art, Mode::Kunit, KUNIT_TIMEOUT, false, glob)?,
        None => vm::boot(art, Mode::Kunit, KUNIT_TIMEOUT, false)?,
    };
    let report = ktap::parse(&boot.console);
    if report.is_empty() {
        bail!(
            "no KUnit results on the console; log: {}",
            boot.log.display()
        );
    }
    kunit_py_parse(&boot.console);
    for suite in &report.suites {
        eprintln!("  kunit: {} ({})", suite.name, suite.tally().closing_line());
    }
    for failure in report.failures() {
        eprintln!("  kunit FAILED: {failure}");
    }
    let status = vm::guest_status(&boot.console);
    let mut tally = report.tally();
    tally.failed += count_kernel_warnings("kunit", &boot);
    if status != Some(0) {
        eprintln!(
            "  kunit: the guest's init failed (status {status:?}); log: {}",
            boot.log.display()
        );
        tally.failed += 1;
    }
    Ok(tally)
}

/// Shows the kernel's own KUnit report (`kunit.py parse`) for the same console log.
///
/// The counts come from our parser; this is the familiar view for kernel developers, so a
/// failure to run it is reported but not counted.
fn kunit_py_parse(console: &str) {
    let paths = Paths::new();
    let kunit_py = paths.linux_src.join("tools/testing/kunit/kunit.py");
    let (Ok(log), Ok(merged)) = (paths.log("kunit-parse"), paths.log("kunit-merged")) else {
        return;
    };
    std::fs::remove_file(&log).ok();
    if let Err(err) = std::fs::write(&merged, merged_ktap(console)) {
        eprintln!("  kunit.py parse: cannot write {}: {err}", merged.display());
        return;
    }
    let mut cmd = Command::new("python3");
    cmd.arg(&kunit_py).arg("parse").arg(&merged);
    let result = Job::new(cmd, "kunit.py parse", &log)
        .echo(|l| {
            l.contains("Testing complete") || l.contains("[FAILED]") || l.contains("[CRASHED]")
        })
        .run();
    if let Err(err) = result {
        eprintln!("  kunit.py parse: {err:#}");
    }
}

/// Joins the KTAP documents on the console into one, as `kunit.py parse` reads only the first.
///
/// Built-in suites print one document at boot and every module with suites prints its own when
/// it is loaded. Each top-level result line ends a suite; suites are renumbered under one plan.
fn merged_ktap(console: &str) -> String {
    let mut suites: Vec<Vec<String>> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut in_document = false;
    for line in console.lines().map(strip_printk_time) {
        if line == "KTAP version 1" {
            in_document = true;
            current.clear();
            continue;
        }
        if !in_document {
            continue;
        }
        let result = line
            .strip_prefix("not ok ")
            .map(|rest| ("not ok", rest))
            .or_else(|| line.strip_prefix("ok ").map(|rest| ("ok", rest)));
        match result {
            Some((status, rest)) => {
                let name = rest.split_once(' ').map_or("", |(_, name)| name);
                current.push(format!("{status} {} {name}", suites.len() + 1));
                suites.push(std::mem::take(&mut current));
            }
            // Suite bodies are indented; top-level plans, comments and kernel messages that
            // interleave with the tests are dropped.
            None if line.starts_with(' ') => current.push(line.to_owned()),
            None => {}
        }
    }
    let mut out = format!("KTAP version 1\n1..{}\n", suites.len());
    for line in suites.iter().flatten() {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Removes a printk timestamp prefix (`[    1.234567] `) from a console line.
fn strip_printk_time(line: &str) -> &str {
    let line = line.trim_end_matches('\r');
    match line.strip_prefix('[').and_then(|l| l.split_once("] ")) {
        Some((time, rest)) if time.trim().parse::<f64>().is_ok() => rest,
        _ => line,
    }
}

/// Boots in test mode and counts the tool's `ok` / `not ok` lines.
fn vm_tests(art: &Artifacts) -> Result<Tally> {
    let mut tally = vm_boot_tests(art, Mode::Test)?;
    // A second, short boot: devices whose firmware misbehaves at boot.
    let faults = vm_boot_tests(art, Mode::Faults)?;
    tally.passed += faults.passed;
    tally.failed += faults.failed;
    // A third: the conformance basics on every device of a boot with four.
    let gpus = vm_boot_tests(art, Mode::Gpus)?;
    tally.passed += gpus.passed;
    tally.failed += gpus.failed;
    Ok(tally)
}

/// Boots in `mode` and counts the tool's TAP results and the kernel's warnings.
fn vm_boot_tests(art: &Artifacts, mode: Mode) -> Result<Tally> {
    let boot = vm::boot(art, mode, VM_TEST_TIMEOUT, false)?;
    let tally = tap_tally(&boot.console);
    for line in boot.console.lines().filter(|l| l.starts_with("not ok")) {
        eprintln!("  vm-test FAILED: {line}");
    }
    if tally.total() == 0 {
        bail!(
            "the VM tests printed no result; log: {}",
            boot.log.display()
        );
    }
    let status = vm::guest_status(&boot.console);
    let mut tally = tally;
    tally.failed += count_kernel_warnings("vm-test", &boot);
    if status != Some(0) && tally.failed == 0 {
        eprintln!(
            "  vm-test: the guest failed (status {status:?}); log: {}",
            boot.log.display()
        );
        tally.failed += 1;
    }
    Ok(tally)
}

/// Prints the kernel's warnings (lockdep, `WARN()`, ...) of a boot; each one counts as a failure.
fn count_kernel_warnings(stage: &str, boot: &vm::Boot) -> usize {
    let warnings = vm::kernel_warnings(&boot.console);
    for line in &warnings {
        eprintln!("  {stage} FAILED: kernel warning: {line}");
    }
    if !warnings.is_empty() {
        eprintln!("  {stage}: see {}", boot.log.display());
    }
    warnings.len()
}

/// Counts top-level TAP result lines (`ok N - name`, `not ok N - name`).
fn tap_tally(console: &str) -> Tally {
    let mut tally = Tally::default();
    for line in console.lines().map(str::trim_end) {
        if line.starts_with("not ok ") {
            tally.failed += 1;
        } else if line.starts_with("ok ") {
            tally.passed += 1;
        }
    }
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtest_lines_are_summed() {
        let out = "running 3 tests\n\
            test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s\n\
            test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out\n";
        let t = libtest_tally(out);
        assert_eq!((t.passed, t.failed, t.skipped), (5, 1, 1));
        assert_eq!(libtest_tally("no tests here\n").total(), 0);
    }

    #[test]
    fn ktap_documents_are_merged_and_renumbered() {
        let console = "[    2.9] KTAP version 1\n[    2.9] 1..0\nnoise\n\
            [    4.0] KTAP version 1\n[    4.0] 1..1\n[    4.0]     # Subtest: a\n\
            [    4.0]     ok 1 x\n[    4.0] ok 1 a\n\
            [    5.0] KTAP version 1\n[    5.0] 1..1\n[    5.0]     # Subtest: b\n\
            [    5.0]     not ok 1 y\n[    5.0] not ok 1 b\n";
        let merged = merged_ktap(console);
        assert_eq!(
            merged,
            "KTAP version 1\n1..2\n    # Subtest: a\n    ok 1 x\nok 1 a\n\
             \x20   # Subtest: b\n    not ok 1 y\nnot ok 2 b\n"
        );
        assert_eq!(strip_printk_time("[   12.5] hi"), "hi");
        assert_eq!(strip_printk_time("[x] hi"), "[x] hi");
    }

    #[test]
    fn tap_lines_are_counted() {
        let t = tap_tally("1..3\nok 1 - a\nnot ok 2 - b: why\nok 3 - c\n[ 1.2] ok 4 - x\n");
        assert_eq!((t.passed, t.failed), (2, 1));
    }
}
