// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The in-VM integration tests' runner, which lists every suite in the order they run (`test`,
//! `test-faults`), and the tests of the module itself: load and unload, device identity, driver
//! binding, the faults boot's refused devices.
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

use crate::{
    collective_tests, dep_matrix, driver_tests, every_gpu,
    gpu::Gpu,
    load_tests, ml_tests, module, prime_tests,
    registry::{tests, Test},
    seam_tests, serve_tests,
    sysfs::{self, PciFunction},
    uapi, vm_bind_tests,
};

/// Name of the module as the kernel knows it.
const MODULE: &str = "vagx";

/// Runs every test in order; later tests rely on the state earlier ones leave.
pub fn run(module: &Path) -> Result<()> {
    let mut all = tests![
        device_is_on_the_pci_bus,
        module_loads(module),
        driver_binds_every_device,
        probe_reports_the_abi_version,
        module_unloads_and_unbinds,
        module_reloads_and_rebinds(module),
        second_load_is_refused_with_eexist(module),
        final_unload,
        sched_policy_parameter_accepts_only_policy_names,
        sched_tracepoints_are_in_tracefs,
        driver_loads_for_the_driver_tests(module),
    ];
    all.extend(driver_suite("driver_"));
    all.extend(every_gpu::tests());
    all.extend(tests![
        unload_refused_while_a_client_is_open,
        firmware_mode_loads(module),
    ]);
    // The same driver tests again in firmware scheduling mode.
    all.extend(driver_suite("fwmode_"));
    all.extend(tests![final_driver_unload]);
    run_tap(&all)
}

/// The driver tests, in order, each name with `prefix` in front.
fn driver_suite(prefix: &str) -> Vec<Test<'static>> {
    driver_tests::tests()
        .into_iter()
        .chain(seam_tests::tests())
        .chain(vm_bind_tests::tests())
        .chain(dep_matrix::tests())
        .chain(prime_tests::tests())
        .chain(load_tests::tests())
        .chain(ml_tests::tests())
        .chain(serve_tests::tests())
        .map(|test| test.prefixed(prefix))
        .collect()
}

/// Runs `tests` in order, printing TAP-like lines and the closing `N passed, N failed`; fails if
/// a test did.
fn run_tap(tests: &[Test<'_>]) -> Result<()> {
    println!("1..{}", tests.len());
    let (mut passed, mut failed) = (0u32, 0u32);
    for (i, test) in tests.iter().enumerate() {
        let name = &test.name;
        match (test.run)() {
            Ok(()) => {
                passed += 1;
                println!("ok {} - {name}", i + 1);
            }
            Err(err) => {
                failed += 1;
                println!("not ok {} - {name}: {err:#}", i + 1);
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    ensure!(failed == 0, "{failed} test(s) failed");
    Ok(())
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
fn unload_refused_while_a_client_is_open() -> Result<()> {
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

fn module_loads(module: &Path) -> Result<()> {
    module::load(module).with_context(|| format!("finit_module({})", module.display()))?;
    ensure!(
        module::is_loaded(MODULE)?,
        "module not in /proc/modules after loading"
    );
    Ok(())
}

fn module_reloads_and_rebinds(module: &Path) -> Result<()> {
    module_loads(module)?;
    driver_binds_every_device()
}

fn second_load_is_refused_with_eexist(module: &Path) -> Result<()> {
    match module::load(module) {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        Err(e) => bail!("expected EEXIST, got {e}"),
        Ok(()) => bail!("loading the module twice succeeded"),
    }
}

/// The last unload of the load and unload tests.
fn final_unload() -> Result<()> {
    module_unloads_and_unbinds()
}

/// The module is loaded again for the driver tests (in kernel scheduling mode).
fn driver_loads_for_the_driver_tests(module: &Path) -> Result<()> {
    module_reloads_and_rebinds(module)
}

/// The module loads with `sched_mode=1` and GET_PARAM says firmware mode (the driver tests
/// then run again in it).
fn firmware_mode_loads(module: &Path) -> Result<()> {
    module::load_with(module, "sched_mode=1").context("load sched_mode=1")?;
    driver_binds_every_device()?;
    let g = Gpu::open_first()?;
    ensure!(
        g.get_param(uapi::drm_vagx_param_DRM_VAGX_PARAM_SCHED_MODE)?
            == u64::from(uapi::drm_vagx_sched_mode_DRM_VAGX_SCHED_FIRMWARE),
        "not in firmware mode"
    );
    Ok(())
}

/// The unload after the driver tests in firmware mode, the last test.
fn final_driver_unload() -> Result<()> {
    module_unloads_and_unbinds()
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
pub fn run_faults(module: &Path) -> Result<()> {
    let devices = sysfs::vagx_devices()?;
    let devices = devices.as_slice();
    let all = tests![
        four_faulty_devices_on_the_bus(devices),
        module_loads(module),
        boot_failure_is_reported(devices),
        silent_firmware_times_out(devices),
        crash_at_boot_is_reported(devices),
        newer_abi_is_refused(devices),
        no_render_node,
        module_unloads,
    ];
    run_tap(&all)
}

/// `test-gpus`: the conformance basics on every GPU of a boot with more devices (`xtask`
/// boots it with four).
pub fn run_gpus(module: &Path) -> Result<()> {
    let mut all = tests![
        module_loads(module),
        driver_binds_every_device,
        the_last_gpu_speaks_an_older_abi
    ];
    all.extend(every_gpu::tests());
    all.extend(prime_tests::tests());
    all.extend(load_tests::tests());
    all.extend(collective_tests::tests());
    all.extend(serve_tests::tests());
    all.extend(ml_tests::multi_gpu_tests());
    all.extend(tests![module_unloads]);
    run_tap(&all)
}

/// The multi-GPU boot's last device implements an older firmware ABI minor version, 1.2
/// (`xtask`'s `OLDER_ABI_DEVICE`), and the others the newest: every multi-GPU test then runs
/// the driver's paths for both (from 1.3, one-write doorbells and the ring interrupt; from
/// 1.4, waits on another GPU's job in the consumer's firmware; before, the mailbox and CPU
/// waits).
fn the_last_gpu_speaks_an_older_abi() -> Result<()> {
    const OLDER: u32 = 1 << 16 | 2;
    let count = crate::every_gpu::listed_gpus();
    ensure!(
        count >= 2,
        "{count} GPU(s): the boot needs two ABI versions"
    );
    let abi = |i: usize| -> Result<u32> {
        Ok(crate::gpu::Gpu::open_index(i)?
            .get_param(crate::uapi::drm_vagx_param_DRM_VAGX_PARAM_ABI_VERSION)? as u32)
    };
    let newest = (u32::from(regs::ABI_MAJOR) << 16) | u32::from(regs::ABI_MINOR);
    ensure!(
        abi(0)? == newest,
        "gpu0: ABI {:#x}, not {newest:#x}",
        abi(0)?
    );
    let last = abi(count - 1)?;
    ensure!(
        last == OLDER,
        "gpu{}: ABI {last:#x}, not {OLDER:#x}",
        count - 1
    );
    Ok(())
}

/// Devices of the faults boot (`xtask`'s `FAULTY_DEVICES`).
const FAULTY_DEVICES: usize = 4;

fn four_faulty_devices_on_the_bus(devices: &[PciFunction]) -> Result<()> {
    ensure!(
        devices.len() == FAULTY_DEVICES,
        "{} vagx devices, expected {FAULTY_DEVICES}",
        devices.len()
    );
    Ok(())
}

/// Slot 0: a firmware that fails its boot.
fn boot_failure_is_reported(devices: &[PciFunction]) -> Result<()> {
    refused(devices, 0, "firmware failed to boot: state failed, error 6")
}

/// Slot 1: a firmware that never answers.
fn silent_firmware_times_out(devices: &[PciFunction]) -> Result<()> {
    refused(devices, 1, "firmware did not answer INIT within 2 s")
}

/// Slot 2: a firmware that crashes right after booting.
fn crash_at_boot_is_reported(devices: &[PciFunction]) -> Result<()> {
    refused(
        devices,
        2,
        "firmware failed to boot: state crashed, error 6",
    )
}

/// Slot 3: a firmware of ABI 2.0.
fn newer_abi_is_refused(devices: &[PciFunction]) -> Result<()> {
    refused(devices, 3, "firmware ABI 2.0 is not supported")
}

/// The kernel log has `message` for the device in `slot`, and the device is unbound.
fn refused(devices: &[PciFunction], slot: usize, message: &str) -> Result<()> {
    let dev = devices.get(slot).context("device missing")?;
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
}

fn no_render_node() -> Result<()> {
    let nodes = crate::gpu::render_nodes()?;
    ensure!(nodes.is_empty(), "render nodes {nodes:?}");
    Ok(())
}

/// The faults boot's unload.
fn module_unloads() -> Result<()> {
    module_unloads_and_unbinds()
}
