// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The in-VM integration tests: module load and unload, device identity, driver binding.
//!
//! Output is TAP-like (`ok N - name` / `not ok N - name: why`) and ends with the project's
//! closing line `N passed, N failed`.

use std::{
    fs::OpenOptions,
    io::{self, Read},
    os::unix::fs::OpenOptionsExt,
    path::Path,
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context, Result};
use vagx_abi::{pci, regs};

use crate::{driver_tests, gpu::Gpu, module, sysfs};

/// Counts of a test run.
#[derive(Debug, Default)]
pub struct Tally {
    pub passed: u32,
    pub failed: u32,
}

/// Name of the module as the kernel knows it.
const MODULE: &str = "vagx";

/// Runs every test in order; later tests rely on the state earlier ones leave.
pub fn run(module_path: &Path) -> Result<Tally> {
    let tests: &[(&str, &dyn Fn() -> Result<()>)] = &[
        ("device_is_on_the_pci_bus", &device_is_on_the_pci_bus),
        ("module_loads", &|| load_module(module_path)),
        ("driver_binds_every_device", &driver_binds_every_device),
        (
            "probe_reports_the_abi_version",
            &probe_reports_the_abi_version,
        ),
        ("module_unloads_and_unbinds", &module_unloads_and_unbinds),
        ("module_reloads_and_rebinds", &|| {
            load_module(module_path)?;
            driver_binds_every_device()
        }),
        (
            "second_load_is_refused_with_eexist",
            &|| match module::load(module_path) {
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
                Err(e) => bail!("expected EEXIST, got {e}"),
                Ok(()) => bail!("loading the module twice succeeded"),
            },
        ),
        ("final_unload", &module_unloads_and_unbinds),
        (
            "sched_policy_parameter_accepts_only_policy_names",
            &sched_policy_parameter_accepts_only_policy_names,
        ),
        (
            "sched_tracepoints_are_in_tracefs",
            &sched_tracepoints_are_in_tracefs,
        ),
        ("driver_loads_for_the_driver_tests", &|| {
            load_module(module_path)?;
            driver_binds_every_device()
        }),
    ];
    let driver: Vec<crate::registry::Test> = driver_tests::tests()
        .into_iter()
        .map(|(name, f)| (format!("driver_{name}"), f))
        .collect();
    let after: &[(&str, &dyn Fn() -> Result<()>)] = &[
        (
            "unload_refused_while_a_client_is_open",
            &unload_refused_while_open,
        ),
        ("firmware_mode_loads", &|| {
            module::load_with(module_path, "sched_mode=1").context("load sched_mode=1")?;
            driver_binds_every_device()?;
            driver_tests::firmware_mode_is_reported()
        }),
    ];
    // The same driver tests again in firmware scheduling mode.
    let fw_driver: Vec<crate::registry::Test> = driver_tests::tests()
        .into_iter()
        .map(|(name, f)| (format!("fwmode_{name}"), f))
        .collect();
    let last: &[(&str, &dyn Fn() -> Result<()>)] =
        &[("final_driver_unload", &module_unloads_and_unbinds)];
    let mut all: Vec<(&str, &dyn Fn() -> Result<()>)> = tests.to_vec();
    for (name, f) in &driver {
        all.push((name.as_str(), f.as_ref()));
    }
    all.extend_from_slice(after);
    for (name, f) in &fw_driver {
        all.push((name.as_str(), f.as_ref()));
    }
    all.extend_from_slice(last);
    Ok(run_tap(&all))
}

/// Runs `tests` in order, printing TAP-like lines and the closing `N passed, N failed`.
fn run_tap(tests: &[(&str, &dyn Fn() -> Result<()>)]) -> Tally {
    println!("1..{}", tests.len());
    let mut tally = Tally::default();
    for (i, (name, test)) in tests.iter().enumerate() {
        match test() {
            Ok(()) => {
                tally.passed += 1;
                println!("ok {} - {name}", i + 1);
            }
            Err(err) => {
                tally.failed += 1;
                println!("not ok {} - {name}: {err:#}", i + 1);
            }
        }
    }
    println!("{} passed, {} failed", tally.passed, tally.failed);
    tally
}

fn device_is_on_the_pci_bus() -> Result<()> {
    let devices = sysfs::vagx_devices()?;
    ensure!(
        !devices.is_empty(),
        "no {:04x}:{:04x} function found",
        pci::VENDOR_ID,
        pci::DEVICE_ID
    );
    for dev in &devices {
        ensure!(
            dev.revision == pci::REVISION,
            "{}: revision {}",
            dev.address,
            dev.revision
        );
        ensure!(
            dev.class == pci::CLASS_CODE,
            "{}: class {:06x}",
            dev.address,
            dev.class
        );
        ensure!(
            dev.bar0_size == pci::BAR0_SIZE as u64,
            "{}: BAR0 is {} bytes, expected {}",
            dev.address,
            dev.bar0_size,
            pci::BAR0_SIZE
        );
    }
    Ok(())
}

/// A client with a job in flight keeps the module loaded; once it closes, unload is clean.
fn unload_refused_while_open() -> Result<()> {
    let g = Gpu::open_first()?;
    let ctx = crate::fixture::Ctx::normal(&g)?;
    let mut slow = crate::cmdbuf::CmdBuf::new();
    slow.delay(30_000_000);
    for _ in 0..4 {
        ctx.run(&slow, &[])?;
    }
    match module::unload(MODULE) {
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => {}
        Err(e) => bail!("unload with a client open: expected EWOULDBLOCK, got {e}"),
        Ok(()) => bail!("the module unloaded under an open client"),
    }
    drop(ctx);
    drop(g);
    module_unloads_and_unbinds()
}

fn load_module(path: &Path) -> Result<()> {
    module::load(path).with_context(|| format!("finit_module({})", path.display()))?;
    ensure!(
        module::is_loaded(MODULE)?,
        "module not in /proc/modules after loading"
    );
    Ok(())
}

fn driver_binds_every_device() -> Result<()> {
    // Probing is synchronous for built-in PCI drivers, but allow the bus a moment.
    wait_for(Duration::from_secs(5), || {
        Ok(sysfs::vagx_devices()?
            .iter()
            .all(|d| d.driver.as_deref() == Some(MODULE)))
    })
    .context("not every vagx device is bound to the vagx driver")
}

fn probe_reports_the_abi_version() -> Result<()> {
    let want = format!("firmware ABI {}.{}", regs::ABI_MAJOR, regs::ABI_MINOR);
    let log = read_kernel_log()?;
    let count = log.iter().filter(|l| l.contains(&want)).count();
    let devices = sysfs::vagx_devices()?.len();
    ensure!(
        count >= devices,
        "{count} probe line(s) with {want:?} for {devices} device(s)"
    );
    Ok(())
}

fn module_unloads_and_unbinds() -> Result<()> {
    module::unload(MODULE).context("delete_module(vagx)")?;
    ensure!(!module::is_loaded(MODULE)?, "module still in /proc/modules");
    for dev in sysfs::vagx_devices()? {
        ensure!(
            dev.driver.is_none(),
            "{} still bound to {:?}",
            dev.address,
            dev.driver
        );
    }
    Ok(())
}

/// The built-in scheduler's `vagx_sched.policy`: each name reads back, anything else is
/// `EINVAL` and changes nothing.
fn sched_policy_parameter_accepts_only_policy_names() -> Result<()> {
    const PARAM: &str = "/sys/module/vagx_sched/parameters/policy";
    let read = || -> Result<String> {
        Ok(std::fs::read_to_string(PARAM)
            .with_context(|| format!("reading {PARAM}"))?
            .trim_end()
            .to_owned())
    };
    let before = read()?;
    ensure!(before == "fifo", "default is {before:?}, expected \"fifo\"");
    for name in ["fair", "rr", "fifo"] {
        std::fs::write(PARAM, name).with_context(|| format!("writing {name}"))?;
        ensure!(read()? == name, "wrote {name}, read {:?}", read()?);
    }
    for bad in ["FAIR", "fair2", "deadline", "1"] {
        match std::fs::write(PARAM, bad) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => bail!("writing {bad:?}: expected EINVAL, got {e}"),
            Ok(()) => bail!("writing {bad:?} succeeded"),
        }
        ensure!(read()? == "fifo", "a rejected write changed the policy");
    }
    Ok(())
}

/// The scheduler's six tracepoints exist in tracefs with the fields they are documented with.
fn sched_tracepoints_are_in_tracefs() -> Result<()> {
    let dir = Path::new("/sys/kernel/tracing/events/vagx_sched");
    if !dir.exists() {
        let status = std::process::Command::new("mount")
            .args(["-t", "tracefs", "tracefs", "/sys/kernel/tracing"])
            .status()
            .context("running mount")?;
        ensure!(status.success(), "mounting tracefs: {status}");
    }
    for (event, field) in [
        ("vagx_sched_job_queue", "queued"),
        ("vagx_sched_job_add_dep", "dep_seqno"),
        ("vagx_sched_job_unschedulable", "dep_ctx"),
        ("vagx_sched_job_run", "credits_used"),
        ("vagx_sched_job_done", "gpu_ns"),
        ("vagx_sched_job_timeout", "status"),
    ] {
        let format = dir.join(event).join("format");
        let text = std::fs::read_to_string(&format)
            .with_context(|| format!("reading {}", format.display()))?;
        ensure!(
            text.contains(&format!(" {field};")),
            "{event} has no field {field}"
        );
    }
    Ok(())
}

/// Polls `cond` every 10 ms until it is true or `timeout` passes.
fn wait_for(timeout: Duration, mut cond: impl FnMut() -> Result<bool>) -> Result<()> {
    let start = Instant::now();
    loop {
        if cond()? {
            return Ok(());
        }
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Reads the messages now in the kernel log from `/dev/kmsg`, without blocking.
fn read_kernel_log() -> Result<Vec<String>> {
    let mut kmsg = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")
        .context("opening /dev/kmsg")?;
    let mut lines = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        match kmsg.read(&mut buf) {
            // Each read returns one record: "prio,seq,time,flags;message\n".
            Ok(n) => {
                let record = String::from_utf8_lossy(&buf[..n]);
                if let Some((_, msg)) = record.split_once(';') {
                    lines.push(msg.trim_end().to_owned());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            // A record overwritten while reading; carry on with the next one.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(e) => return Err(e).context("reading /dev/kmsg"),
        }
    }
    Ok(lines)
}

/// The faults boot (`vagx.mode=faults`): four devices, in slot order, whose firmware fails
/// its boot, never answers, crashes right after booting, or implements ABI 2.0. The driver
/// must refuse each with a clear message and bind none; the module must unload cleanly.
pub fn run_faults(module_path: &Path) -> Result<Tally> {
    const EXPECTED: [(&str, &str); 4] = [
        (
            "boot_failure_is_reported",
            "firmware failed to boot: state failed, error 6",
        ),
        (
            "silent_firmware_times_out",
            "firmware did not answer INIT within 2 s",
        ),
        (
            "crash_at_boot_is_reported",
            "firmware failed to boot: state crashed, error 6",
        ),
        ("newer_abi_is_refused", "firmware ABI 2.0 is not supported"),
    ];
    let devices = sysfs::vagx_devices()?;
    // The message and the unbound state of the device in slot `i`.
    let refused = |i: usize| -> Result<()> {
        let message = EXPECTED[i].1;
        let dev = devices.get(i).context("device missing")?;
        let prefix = format!("vagx {}: ", dev.address);
        let log = read_kernel_log()?;
        ensure!(
            log.iter()
                .any(|l| l.contains(&prefix) && l.contains(message)),
            "no {message:?} for {}",
            dev.address
        );
        ensure!(dev.driver.is_none(), "{} is bound anyway", dev.address);
        Ok(())
    };
    let tests: &[(&str, &dyn Fn() -> Result<()>)] = &[
        ("four_faulty_devices_on_the_bus", &|| {
            ensure!(
                devices.len() == EXPECTED.len(),
                "{} vagx devices, expected 4",
                devices.len()
            );
            Ok(())
        }),
        ("module_loads", &|| load_module(module_path)),
        (EXPECTED[0].0, &|| refused(0)),
        (EXPECTED[1].0, &|| refused(1)),
        (EXPECTED[2].0, &|| refused(2)),
        (EXPECTED[3].0, &|| refused(3)),
        ("no_render_node", &|| {
            let nodes = crate::gpu::render_nodes()?;
            ensure!(nodes.is_empty(), "render nodes {nodes:?}");
            Ok(())
        }),
        ("module_unloads", &module_unloads_and_unbinds),
    ];
    Ok(run_tap(tests))
}
