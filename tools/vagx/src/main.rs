// SPDX-License-Identifier: GPL-2.0 OR MIT

//! `vagx-tool`: inspects vagx GPUs and runs the in-VM integration tests.
//!
//! It runs inside the test VM as a static binary in the initramfs.

mod bench_ml;
mod bench_serve;
mod caps;
mod cmdbuf;
mod collective_tests;
mod collectives;
mod dep_matrix;
mod dmabuf;
mod driver_tests;
mod every_gpu;
mod fixture;
mod gpu;
mod infer;
mod load_tests;
mod ml_tests;
mod module;
mod prime_tests;
mod registry;
mod seam_tests;
mod serve;
mod serve_tests;
mod share;
mod sw_sync;
mod sysfs;
mod tests;
mod uapi;
mod vm_bind_tests;
mod workload;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use gpu::{Gpu, Selection};

/// Command line of `vagx-tool`.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    gpus: GpuArgs,
}

/// Which devices a command works on; devices are numbered in render-node order.
#[derive(clap::Args)]
struct GpuArgs {
    /// Work on GPU N (default 0; `info` lists every GPU).
    #[arg(long, global = true, value_name = "N", conflicts_with = "gpus")]
    gpu: Option<usize>,
    /// `--gpus all`: work on every GPU, one after the other (`info`, `submit`).
    #[arg(long, global = true, value_name = "all", value_parser = ["all"])]
    gpus: Option<String>,
}

impl GpuArgs {
    /// The selection, or `default` if none was given.
    fn selection(&self, default: Selection) -> Selection {
        match (self.gpu, &self.gpus) {
            (Some(n), _) => Selection::One(n),
            (None, Some(_)) => Selection::All,
            (None, None) => default,
        }
    }

    /// For a command that works on one device: `--gpu N` for this process and its children.
    fn one(&self, command: &str) -> Result<()> {
        if self.gpus.is_some() {
            anyhow::bail!("{command} works on one GPU at a time: use --gpu N");
        }
        if let Some(n) = self.gpu {
            std::env::set_var(gpu::GPU_ENV, n.to_string());
        }
        Ok(())
    }

    /// For a command that picks its devices itself (the test runners).
    fn none(&self, command: &str) -> Result<()> {
        if self.gpu.is_some() || self.gpus.is_some() {
            anyhow::bail!("{command} runs on the devices it needs; --gpu and --gpus do not apply");
        }
        Ok(())
    }
}

#[derive(Subcommand)]
enum Command {
    /// Lists the vagx GPUs on the PCI bus and their driver, then each bound GPU's render node
    /// and parameters.
    Info,
    /// Runs the integration tests and prints `N passed, N failed`.
    Test {
        /// Path of the module to load and unload (`vagx.ko`).
        #[arg(long)]
        module: std::path::PathBuf,
    },
    /// Runs the conformance basics on every GPU (the boot with more devices).
    TestGpus {
        /// Path of the module to load and unload (`vagx.ko`).
        #[arg(long)]
        module: std::path::PathBuf,
    },
    /// Checks the driver's probe failures on the faults boot's misbehaving devices.
    TestFaults {
        /// Path of the module to load and unload (`vagx.ko`).
        #[arg(long)]
        module: std::path::PathBuf,
    },
    /// Runs one command buffer described as `op[:arg...],...` and checks its results.
    ///
    /// Ops: fill:<len>:<pattern>, copy:<len>, checksum:<len>, gemm:<n>, delay:<ns>, nop.
    Submit {
        /// The commands, e.g. `fill:65536:0xdeadbeef,copy:65536,checksum:65536,gemm:16`.
        desc: String,
        /// Queue priority: low, normal or high.
        #[arg(long, default_value = "normal")]
        prio: String,
    },
    /// Processes x queues x priorities with random dependencies; checks every result.
    Stress {
        #[arg(long, default_value_t = 3)]
        procs: u32,
        #[arg(long, default_value_t = 2)]
        queues: u32,
        #[arg(long, default_value_t = 40)]
        jobs: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Submit-to-signal latency percentiles and tiny-job throughput.
    Bench {
        #[arg(long, default_value_t = 200)]
        samples: u32,
        /// Also write the results as JSON to this file.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
    },
    /// What `make run` shows: three processes, dependent jobs, one recovered hang.
    Demo,
    /// A small MLP (hidden, layers, batch from a seed) on one GPU, data parallel and
    /// pipeline parallel across the GPUs (`--gpus all`, the default), every output checked on
    /// the CPU: wall time, speedup, per-GPU busy time and utilisation, the pipeline's bubble.
    Infer {
        #[arg(long, default_value_t = 256)]
        hidden: usize,
        #[arg(long, default_value_t = 4)]
        layers: usize,
        #[arg(long, default_value_t = 64)]
        batch: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Micro-batches of the pipeline.
        #[arg(long, default_value_t = 8)]
        micro: usize,
    },
    /// A collective across the GPUs (`--gpus all`, the default, or `--gpu N` alone):
    /// `all-reduce`, `all-reduce-one-shot`, `reduce-scatter`, `all-gather` or `broadcast`,
    /// checked on the CPU, with its algorithm and bus bandwidth.
    Collective {
        #[arg(default_value = "all-reduce")]
        op: String,
        /// Elements (f32) of each GPU's buffer.
        #[arg(long, default_value_t = 65_536)]
        elements: usize,
    },
    /// A stream of inference requests placed on the GPUs (`--gpus all`, the default) by a
    /// dispatcher, least loaded or round robin, every answer checked on the CPU; optionally
    /// with a GPU lost mid-run, whose requests run again elsewhere.
    Serve {
        #[arg(long, default_value_t = 200)]
        requests: usize,
        /// `least-loaded`, `round-robin` or `both`.
        #[arg(long, default_value = "both")]
        policy: String,
        /// `uniform` (a quarter large, at random) or `skewed` (every GPUs-th large).
        #[arg(long, default_value = "skewed")]
        mix: String,
        /// Rows of a small and of a large request.
        #[arg(long, default_value_t = 8)]
        small: usize,
        #[arg(long, default_value_t = 64)]
        large: usize,
        /// Offered load, as a share of what the GPUs' units can do.
        #[arg(long, default_value_t = 0.7)]
        load: f64,
        #[arg(long, default_value_t = 256)]
        hidden: usize,
        #[arg(long, default_value_t = 4)]
        layers: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Lose this GPU (an index into the selected GPUs) mid-run; it is bound again after.
        #[arg(long)]
        lose_gpu: Option<usize>,
        /// ... once this many requests have been submitted.
        #[arg(long, default_value_t = 20)]
        lose_after: usize,
        /// ... by `unbind` or `silence` (its firmware stops answering for good).
        #[arg(long, default_value = "unbind")]
        lose_by: String,
    },
    /// GPU `--from` produces a buffer and GPU `--to` consumes it: the buffer shared as a
    /// dma-buf, the consumer's job waiting for the producer's through a shared syncobj.
    Share {
        #[arg(long, default_value_t = 0)]
        from: usize,
        #[arg(long, default_value_t = 1)]
        to: usize,
        /// Bytes to produce and consume.
        #[arg(long, default_value_t = 256 * 1024)]
        size: u64,
        /// Device time the producer spends before it writes, in ns.
        #[arg(long, default_value_t = 5_000_000)]
        delay_ns: u64,
    },
    /// Checks that another process's ids mean nothing here (internal, for `test`).
    #[command(hide = true)]
    IsolationChild {
        #[arg(long)]
        bo: u32,
        #[arg(long)]
        vm: u32,
        #[arg(long)]
        queue: u32,
        #[arg(long)]
        syncobj: u32,
    },
    /// The ML benchmark's guest side (internal, for `cargo xtask bench ml`): collectives,
    /// the model in each parallelism, the dispatcher, timing fidelity, on every GPU.
    #[command(hide = true)]
    BenchMl,
    /// The serving benchmark's guest side (internal, for `cargo xtask bench serve`):
    /// interactive requests beside batch work on GPU 0, under the loaded module's mode and
    /// policy and the controls asked for.
    #[command(hide = true)]
    BenchServe {
        /// `plain`, `weights`, `deadlines` or `controls` (weights and deadlines).
        #[arg(long, default_value = "plain")]
        controls: String,
        /// The same mix on every GPU at once, instead of on GPU 0.
        #[arg(long)]
        all_gpus: bool,
        /// Where to write the result, a JSON object.
        #[arg(long)]
        json: std::path::PathBuf,
    },
    /// Keeps low-priority queues busy with jobs of a given length (internal, for `bench`).
    #[command(hide = true)]
    Load {
        #[arg(long)]
        queues: u32,
        #[arg(long)]
        jobs: u32,
        /// Device time of each job, in microseconds.
        #[arg(long)]
        us: u64,
    },
    /// One worker process of `stress` and `demo` (internal).
    #[command(hide = true)]
    Worker {
        #[arg(long)]
        name: String,
        #[arg(long)]
        prio: String,
        #[arg(long)]
        queues: u32,
        #[arg(long)]
        jobs: u32,
        #[arg(long)]
        seed: u64,
        #[arg(long)]
        hang: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    let gpus = &cli.gpus;
    let result = match cli.command {
        Command::Info => info(gpus.selection(Selection::All)),
        Command::TestFaults { module } => gpus
            .none("test-faults")
            .and_then(|()| tests::run_faults(&module)),
        Command::TestGpus { module } => gpus
            .none("test-gpus")
            .and_then(|()| tests::run_gpus(&module)),
        Command::Infer {
            hidden,
            layers,
            batch,
            seed,
            micro,
        } => (|| {
            let indices: Vec<usize> = gpus
                .selection(Selection::All)
                .nodes()?
                .into_iter()
                .map(|(i, _)| i)
                .collect();
            let shape = infer::Shape {
                hidden,
                layers,
                batch,
                seed,
            };
            infer::cli(shape, &indices, micro)
        })(),
        Command::Collective { op, elements } => (|| {
            let indices: Vec<usize> = gpus
                .selection(Selection::All)
                .nodes()?
                .into_iter()
                .map(|(i, _)| i)
                .collect();
            collectives::cli(collectives::Op::parse(&op)?, &indices, elements)
        })(),
        Command::Serve {
            requests,
            policy,
            mix,
            small,
            large,
            load,
            hidden,
            layers,
            seed,
            lose_gpu,
            lose_after,
            lose_by,
        } => (|| {
            let indices: Vec<usize> = gpus
                .selection(Selection::All)
                .nodes()?
                .into_iter()
                .map(|(i, _)| i)
                .collect();
            let by = match lose_by.as_str() {
                "unbind" => serve::LoseBy::Unbind,
                "silence" => serve::LoseBy::Silence,
                _ => anyhow::bail!("--lose-by unbind or silence, not {lose_by:?}"),
            };
            let cfg = serve::Config {
                shape: infer::Shape {
                    hidden,
                    layers,
                    batch: 1,
                    seed,
                },
                requests,
                small,
                large,
                mix: serve::Mix::parse(&mix)?,
                load,
                policy: serve::Policy::LeastLoaded,
                lose: lose_gpu.map(|gpu| serve::Lose {
                    gpu,
                    after: lose_after,
                    by,
                }),
                calibration: None,
            };
            serve::cli(cfg, &serve::Policy::parse(&policy)?, &indices)
        })(),
        Command::Submit { desc, prio } => {
            workload::submit(&desc, &prio, gpus.selection(Selection::One(0)))
        }
        Command::Stress {
            procs,
            queues,
            jobs,
            seed,
        } => gpus
            .one("stress")
            .and_then(|()| workload::stress(procs, queues, jobs, seed)),
        Command::Bench { samples, json } => gpus
            .one("bench")
            .and_then(|()| workload::bench(samples, json.as_deref())),
        Command::Demo => gpus.one("demo").and_then(|()| workload::demo()),
        Command::Share {
            from,
            to,
            size,
            delay_ns,
        } => gpus
            .none("share")
            .and_then(|()| share::run(from, to, size, delay_ns)),
        Command::IsolationChild {
            bo,
            vm,
            queue,
            syncobj,
        } => driver_tests::isolation_child(bo, vm, queue, syncobj),
        Command::BenchMl => gpus.none("bench-ml").and_then(|()| bench_ml::run()),
        Command::BenchServe {
            controls,
            all_gpus,
            json,
        } => gpus
            .none("bench-serve")
            .and_then(|()| bench_serve::run(&controls, all_gpus, &json)),
        Command::Load { queues, jobs, us } => gpus
            .one("load")
            .and_then(|()| workload::load(queues, jobs, us)),
        Command::Worker {
            name,
            prio,
            queues,
            jobs,
            seed,
            hang,
        } => gpus
            .one("worker")
            .and_then(|()| workload::worker(&name, &prio, queues, jobs, seed, hang)),
        Command::Test { module } => gpus.none("test").and_then(|()| tests::run(&module)),
    };
    if let Err(err) = result {
        eprintln!("vagx-tool: error: {err:#}");
        std::process::exit(1);
    }
}

/// Prints one line per vagx device on the PCI bus, then one per selected GPU the driver
/// bound (its index, render node, PCI address and parameters).
fn info(gpus: Selection) -> Result<()> {
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
    if gpu::render_nodes()?.is_empty() {
        // Not bound (the module is not loaded): the PCI lines are all there is.
        return Ok(());
    }
    for (index, node) in gpus.nodes()? {
        let g = Gpu::open(&node)?;
        let abi = g.get_param(uapi::drm_vagx_param_DRM_VAGX_PARAM_ABI_VERSION)?;
        let mode = match g.get_param(uapi::drm_vagx_param_DRM_VAGX_PARAM_SCHED_MODE)? {
            0 => "kernel",
            _ => "firmware",
        };
        println!(
            "gpu{index}: {} at {}, {} units, ABI {}.{}, {} scheduling",
            node.display(),
            gpu::pci_address(&node)?,
            g.get_param(uapi::drm_vagx_param_DRM_VAGX_PARAM_UNITS)?,
            abi >> 16,
            abi & 0xffff,
            mode
        );
        print_load(index, &g.device_load().context("DEVICE_QUERY")?);
        // The device model's fidelity, from debugfs (if mounted and readable).
        let busy = format!("/sys/kernel/debug/vagx-{}/busy", gpu::pci_address(&node)?);
        if let Some(e) = std::fs::read_to_string(busy)
            .ok()
            .and_then(|t| emulation_counts(&t))
        {
            let on_time = if e.commands > 0 {
                100.0 * (e.commands - e.late) as f64 / e.commands as f64
            } else {
                100.0
            };
            println!(
                "gpu{index} emulation: {} commands, {} late ({on_time:.2} % on time), host \
                 time {:.3} ms for {:.3} ms modelled",
                e.commands,
                e.late,
                e.host_ns as f64 / 1e6,
                e.modelled_ns as f64 / 1e6
            );
        }
    }
    Ok(())
}

/// The device model's fidelity counters (firmware ABI 1.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Emulation {
    /// Commands executed, and their modelled device time.
    pub commands: u64,
    pub modelled_ns: u64,
    /// Commands whose emulation took the host longer than their modelled cost, and the host
    /// time all took.
    pub late: u64,
    pub host_ns: u64,
}

/// The `emulation` line of debugfs `busy`.
pub fn emulation_counts(busy: &str) -> Option<Emulation> {
    busy.lines().find_map(|line| {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w[..] {
            ["emulation", "commands", c, "modelled_ns", m, "late", l, "host_ns", h] => {
                Some(Emulation {
                    commands: c.parse().ok()?,
                    modelled_ns: m.parse().ok()?,
                    late: l.parse().ok()?,
                    host_ns: h.parse().ok()?,
                })
            }
            _ => None,
        }
    })
}

/// The load lines of `vagx-tool info`: busy time per unit and pipe since the driver bound
/// the device, and the work it holds.
fn print_load(index: usize, l: &uapi::drm_vagx_device_load) {
    let ms = |ns: u64| ns as f64 / 1e6;
    let units = l.num_units.min(uapi::DRM_VAGX_MAX_UNITS) as usize;
    let busy: u64 = l.unit_busy_ns[..units].iter().sum();
    let capacity = l.device_time_ns as f64 * units as f64;
    println!(
        "gpu{index} load: {} queues, {} running, {} jobs on the device, {} not retired",
        l.queues, l.running_queues, l.device_jobs, l.pending_jobs
    );
    println!(
        "gpu{index} busy: compute {:.3} ms, copy {:.3} ms, device time {:.3} ms",
        ms(l.pipe_busy_ns[uapi::DRM_VAGX_PIPE_COMPUTE as usize]),
        ms(l.pipe_busy_ns[uapi::DRM_VAGX_PIPE_COPY as usize]),
        ms(l.device_time_ns)
    );
    if l.flags & uapi::DRM_VAGX_LOAD_UNIT_BUSY == 0 {
        println!("gpu{index} units: not counted by this firmware (ABI < 1.2)");
        return;
    }
    let per_unit: Vec<String> = l.unit_busy_ns[..units]
        .iter()
        .enumerate()
        .map(|(i, &ns)| format!("unit{i} {:.3} ms", ms(ns)))
        .collect();
    println!(
        "gpu{index} units: {}; {:.2} % of the device's time since boot",
        per_unit.join(", "),
        if capacity > 0.0 {
            100.0 * busy as f64 / capacity
        } else {
            0.0
        }
    );
}
