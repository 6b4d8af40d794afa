// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The dispatcher ([`crate::serve`]) on the boot's GPUs: both policies answer every request
//! exactly once with the CPU's answer. A collective and a pipeline-parallel run that lose a
//! GPU fail with an error and end; run again on the other GPUs, they succeed.

use std::os::fd::AsFd;

use anyhow::{ensure, Context, Result};

use crate::{
    collectives::{check, input, Op, Ring},
    every_gpu, fixture,
    gpu::Gpu,
    infer::{self, Hold, Model, Shape},
    registry::{tests, Test},
    serve::{self, Config, Lose, LoseBy, Mix, Policy},
    sw_sync,
};

pub fn tests() -> Vec<Test<'static>> {
    if every_gpu::listed_gpus() < 2 {
        return Vec::new();
    }
    tests![
        serve_least_loaded_answers_every_request_once,
        serve_round_robin_answers_every_request_once,
        serve_loses_an_unbound_gpu_and_answers_every_request_once,
        serve_loses_a_silent_gpu_and_answers_every_request_once,
        a_collective_that_loses_a_gpu_fails_and_runs_on_the_rest,
        a_pipeline_that_loses_a_gpu_fails_and_runs_on_the_rest,
    ]
}

/// A small, quick configuration: 48 requests of 2 or 16 rows of a 64-wide, 2-block model.
fn config(policy: Policy) -> Config {
    Config {
        shape: Shape {
            hidden: 64,
            layers: 2,
            batch: 1,
            seed: 5,
        },
        requests: 48,
        small: 2,
        large: 16,
        mix: Mix::Skewed,
        load: 0.7,
        policy,
        lose: None,
        calibration: None,
    }
}

fn all_gpus() -> Vec<usize> {
    (0..every_gpu::listed_gpus()).collect()
}

/// Every request answered once (the run checks each answer against the CPU), split over the
/// GPUs, with nothing run twice.
fn answers_all(cfg: &Config) -> Result<serve::Report> {
    let gpus = all_gpus();
    let r = serve::run(cfg, &gpus)?;
    serve::print_report(cfg, &gpus, &r);
    ensure!(
        r.answered == cfg.requests,
        "{} of {} answered",
        r.answered,
        cfg.requests
    );
    let sum: usize = r.per_gpu.iter().map(|g| g.answered).sum();
    ensure!(sum == cfg.requests, "the GPUs answered {sum} requests");
    Ok(r)
}

fn serve_least_loaded_answers_every_request_once() -> Result<()> {
    let r = answers_all(&config(Policy::LeastLoaded))?;
    ensure!(r.reruns == 0, "{} re-runs without a fault", r.reruns);
    Ok(())
}

/// Round robin puts request `i` on GPU `i mod N`: each GPU answers its share exactly.
fn serve_round_robin_answers_every_request_once() -> Result<()> {
    let cfg = config(Policy::RoundRobin);
    let r = answers_all(&cfg)?;
    ensure!(r.reruns == 0, "{} re-runs without a fault", r.reruns);
    let n = r.per_gpu.len();
    for (i, g) in r.per_gpu.iter().enumerate() {
        let share = (cfg.requests + n - 1 - i) / n;
        ensure!(
            g.answered == share,
            "gpu{i} answered {}, its turn is {share}",
            g.answered
        );
    }
    Ok(())
}

/// GPU 1 taken away `by` once it holds a job, after 8 submits: every request is still
/// answered once with the CPU's answer, GPU 1 ends lost, and the run re-placed what failed.
/// `serve::run` binds GPU 1 again; the first device must work after it.
fn serve_losing_gpu1(by: LoseBy) -> Result<serve::Report> {
    let cfg = Config {
        lose: Some(Lose {
            gpu: 1,
            after: 8,
            by,
        }),
        ..config(Policy::LeastLoaded)
    };
    let r = answers_all(&cfg)?;
    ensure!(
        r.per_gpu[1].state == "lost",
        "gpu1 ends {}, not lost",
        r.per_gpu[1].state
    );
    for (i, g) in r.per_gpu.iter().enumerate().filter(|(i, _)| *i != 1) {
        ensure!(g.state == "up", "gpu{i} ends {}", g.state);
    }
    fixture::first_device_works()?;
    Ok(r)
}

/// Unbound (a hot-unplug): its jobs in flight fail with ENODEV or had ended, its submits
/// fail with ENODEV; the count of re-runs is printed, not required (a job may end first).
fn serve_loses_an_unbound_gpu_and_answers_every_request_once() -> Result<()> {
    let r = serve_losing_gpu1(LoseBy::Unbind)?;
    println!("# unbinding gpu1 mid-run: {} re-run(s)", r.reruns);
    Ok(())
}

/// Silenced with its next boot hanging too: nothing it held can end, so the requests it had
/// fail (the driver's backstop, then a reboot that fails) and run again elsewhere.
fn serve_loses_a_silent_gpu_and_answers_every_request_once() -> Result<()> {
    let r = serve_losing_gpu1(LoseBy::Silence)?;
    ensure!(
        r.reruns >= 1,
        "a silent GPU held a job, and nothing was re-run"
    );
    Ok(())
}

/// Runs `test` with GPU 1's PCI address, and binds that GPU again after, whatever happened.
fn losing_gpu1(test: impl FnOnce(&str) -> Result<()>) -> Result<()> {
    let address = fixture::pci_address_of(1)?;
    let result = test(&address);
    let _ = fixture::unbind(&address);
    fixture::bind(&address)?;
    result?;
    fixture::first_device_works()
}

/// The GPUs left once GPU 1 is unbound: the render nodes shift down.
fn the_rest(n: usize) -> Vec<usize> {
    (0..n - 1).collect()
}

/// An all-reduce on every GPU (up to 4) queued whole behind a gate, GPU 1 unbound, the gate
/// opened: the collective ends with an error naming a GPU, not a hang; the same all-reduce on
/// the GPUs left is right.
fn a_collective_that_loses_a_gpu_fails_and_runs_on_the_rest() -> Result<()> {
    let n = every_gpu::listed_gpus().min(4);
    let len = 8192;
    losing_gpu1(|address| {
        let inputs: Vec<Vec<f32>> = (0..n).map(|i| input(i, len)).collect();
        {
            let mut ring = Ring::new(&(0..n).collect::<Vec<_>>(), len)?;
            for (i, v) in inputs.iter().enumerate() {
                ring.write(i, v);
            }
            let timeline = sw_sync::Timeline::new()?;
            let gate = timeline.fence(1)?;
            for i in 0..n {
                let (gpu, s) = ring.gate(i)?;
                gpu.import_sync_file(s, gate.as_fd())?;
            }
            let queued = ring.queue(Op::AllReduce)?;
            fixture::unbind(address)?;
            timeline.advance(1)?;
            let Err(e) = ring.finish(queued) else {
                anyhow::bail!("the all-reduce succeeded without gpu1");
            };
            let e = format!("{e:#}");
            println!("# the all-reduce without gpu1: {e}");
            ensure!(e.contains("gpu"), "the error names no GPU: {e}");
        }
        let rest = the_rest(n);
        let mut ring = Ring::new(&rest, len)?;
        for (i, v) in inputs.iter().take(rest.len()).enumerate() {
            ring.write(i, v);
        }
        ring.run(Op::AllReduce)
            .context("the all-reduce on the GPUs left")?;
        check(&ring, Op::AllReduce, &inputs[..rest.len()])?;
        Ok(())
    })
}

/// A pipeline over every GPU (up to 4) queued whole behind a gate, GPU 1 unbound, the gate
/// opened: the run fails with an error, not a hang; the pipeline over the GPUs left is right.
fn a_pipeline_that_loses_a_gpu_fails_and_runs_on_the_rest() -> Result<()> {
    let n = every_gpu::listed_gpus().min(4);
    let model = Model::new(Shape {
        hidden: 32,
        layers: 4,
        batch: 16,
        seed: 9,
    });
    losing_gpu1(|address| {
        {
            let gpus = (0..n)
                .map(Gpu::open_index)
                .collect::<std::io::Result<Vec<_>>>()?;
            let timeline = sw_sync::Timeline::new()?;
            let gate = timeline.fence(1)?;
            let mut queued = || -> Result<()> {
                fixture::unbind(address)?;
                timeline.advance(1)?;
                Ok(())
            };
            let hold = Hold {
                gate: gate.as_fd(),
                queued: &mut queued,
            };
            let Err(e) =
                infer::pipeline_held(&model, &gpus, 4, infer::Launch::Streamed, Some(hold))
            else {
                anyhow::bail!("the pipeline succeeded without gpu1");
            };
            println!("# the pipeline without gpu1: {e:#}");
        }
        let gpus = the_rest(n)
            .into_iter()
            .map(Gpu::open_index)
            .collect::<std::io::Result<Vec<_>>>()?;
        infer::pipeline_parallel(&model, &gpus, 4, infer::Launch::Streamed)
            .context("the pipeline on the GPUs left")?;
        Ok(())
    })
}
