// SPDX-License-Identifier: GPL-2.0 OR MIT

//! `vagx-tool serve`: a stream of independent inference requests, each placed on a GPU by a
//! dispatcher, every answer checked on the CPU, and a GPU that can be lost mid-run.
//!
//! Requests arrive at seeded, exponentially spaced times (an open loop: a late dispatcher
//! makes latency worse, not the offered load smaller) and carry `small` or `large` rows of
//! the [`crate::infer`] model's input; the gap between arrivals is set so that the requests
//! offer `load` times what the GPUs' units can do, from costs measured on GPU 0 first.
//!
//! Each GPU has one lane per execution unit (a queue with its own copy of the weights and
//! [`SLOTS`] request slots), so that its units can all work. Two policies place a request:
//!
//! - **least loaded**: the lane, on any GPU, that is expected to finish it first: the lane's
//!   own backlog (the dispatcher's estimate of the requests it has on it), plus the work of
//!   other clients of that GPU (the load query's pending jobs beyond the dispatcher's own, at
//!   the dispatcher's mean cost, spread over the GPU's units), plus the request's cost;
//! - **round robin**: the next GPU in turn, whatever its load (the emptiest lane on it).
//!
//! A monitor thread per GPU reads its load query ([`Gpu::device_load`]) every
//! [`MONITOR_PERIOD`]; a GPU whose query fails with `ENODEV` is lost, one whose query fails
//! otherwise or has not answered for [`STALE`] is unavailable until it answers again.
//!
//! A request that fails (its fence's error, or `SUBMIT`'s) is reported with the GPU's name and
//! the error and queued again at the front, for whichever GPU the policy picks next. A request
//! is answered when a job of it succeeded: its output is read and compared with the CPU's, and
//! the run fails unless every request is answered exactly once. The model works row by row
//! (GEMM, element-wise ops, layer norm and softmax of a row depend on that row only), so a
//! request's rows are taken from a pool of rows whose outputs the CPU computes once.
//!
//! ## A request's life
//!
//! ```text
//!  Waiting ──arrival──► Ready ──placed, SUBMIT──► InFlight ──fence ok──► Answered
//!                        ▲  ▲                       │
//!                        │  └──SUBMIT failed────────┤ (the GPU marked down or lost)
//!                        └─────fence error──────────┘
//! ```

use std::{
    collections::VecDeque,
    os::fd::{AsFd, OwnedFd},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context, Result};

use crate::{
    fixture::{self, WAIT_MS},
    gpu::{self, Gpu, Sync},
    infer::{self, Model, Shape, Stage},
    uapi,
};

/// Request slots of a lane: requests it may hold at once.
pub const SLOTS: usize = 4;
/// How often a monitor reads its GPU's load.
const MONITOR_PERIOD: Duration = Duration::from_millis(10);
/// A GPU whose load query has not answered for this long gets no new work.
const STALE: Duration = Duration::from_millis(500);
/// The longest a run may take before it counts as a hang.
const RUN_LIMIT: Duration = Duration::from_secs(120);
/// Rows of the pool the requests' inputs come from.
const POOL_ROWS: usize = 64;
/// How long, once every request is answered, the driver has to declare a GPU taken away
/// lost: a silent firmware is found by a job's 2 s backstop and a failed reboot's 2 s wait.
const LOSS_LIMIT: Duration = Duration::from_secs(20);

/// How the dispatcher places requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    LeastLoaded,
    RoundRobin,
}

impl Policy {
    pub fn parse(s: &str) -> Result<Vec<Self>> {
        Ok(match s {
            "least-loaded" => vec![Self::LeastLoaded],
            "round-robin" => vec![Self::RoundRobin],
            "both" => vec![Self::LeastLoaded, Self::RoundRobin],
            _ => bail!("--policy least-loaded, round-robin or both, not {s:?}"),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::LeastLoaded => "least-loaded",
            Self::RoundRobin => "round-robin",
        }
    }
}

/// Which requests are large.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mix {
    /// A quarter of them, at random (seeded).
    Uniform,
    /// Every `GPUs`-th one (every other on one GPU): a periodic large client in step with the
    /// GPU count, round robin's worst case.
    Skewed,
}

impl Mix {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "uniform" => Self::Uniform,
            "skewed" => Self::Skewed,
            _ => bail!("--mix uniform or skewed, not {s:?}"),
        })
    }
}

/// How a GPU is lost mid-run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoseBy {
    /// Unbound from the driver (as a hot-unplug).
    Unbind,
    /// Its firmware goes silent and does not boot again: the driver declares it lost.
    Silence,
}

/// A GPU lost mid-run: GPU `gpu` (an index into the run's GPUs), once `after` requests have
/// been submitted. The GPU is bound again at the end of the run.
#[derive(Clone, Copy, Debug)]
pub struct Lose {
    pub gpu: usize,
    pub after: usize,
    pub by: LoseBy,
}

/// What a run serves and how.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// The model's hidden size, blocks and seed (the batch is unused).
    pub shape: Shape,
    pub requests: usize,
    /// Rows of a small and of a large request.
    pub small: usize,
    pub large: usize,
    pub mix: Mix,
    /// Offered load, as a share of what the GPUs can do.
    pub load: f64,
    pub policy: Policy,
    pub lose: Option<Lose>,
    /// The costs and capacity to offer the load against; `None` measures them first. Runs
    /// compared with each other share one, so that they are offered the same load.
    pub calibration: Option<Calibration>,
}

/// What the offered load is a share of: the device time of a small and of a large request
/// (ns), and how many units' worth the GPUs delivered together.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Calibration {
    pub cost_ns: [f64; 2],
    pub parallel: f64,
}

/// What a run did.
#[derive(Debug)]
pub struct Report {
    pub policy: Policy,
    pub answered: usize,
    /// Jobs that failed and whose requests ran again.
    pub reruns: usize,
    pub wall_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub per_gpu: Vec<GpuReport>,
    /// `(max - min) / mean` of the utilisation of the GPUs up at the end.
    pub imbalance: f64,
    pub worst_error: f32,
    /// The calibrated cost of a small and of a large request, device µs.
    pub cost_us: [f64; 2],
    /// How many units' worth the GPUs delivered together in the calibration (at most their
    /// units): the capacity the offered load is a share of.
    pub parallel: f64,
}

/// What one GPU did in a run.
#[derive(Debug)]
pub struct GpuReport {
    pub answered: usize,
    /// Utilisation of its units, from the start to its last load reading.
    pub utilisation: f64,
    /// `up`, `down` (a job failed and it has not answered since) or `lost`.
    pub state: &'static str,
}

impl Report {
    pub fn throughput(&self) -> f64 {
        self.answered as f64 / self.wall_s
    }

    /// The calibration the run offered its load against.
    pub fn calibration(&self) -> Calibration {
        Calibration {
            cost_ns: [self.cost_us[0] * 1e3, self.cost_us[1] * 1e3],
            parallel: self.parallel,
        }
    }
}

/// What a GPU's monitor saw last: when, and the load or the errno.
type Snapshot = Option<(Instant, Result<uapi::drm_vagx_device_load, i32>)>;

/// A thread reading a GPU's load query, on a file of its own.
struct Monitor {
    last: Arc<Mutex<Snapshot>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Monitor {
    fn start(index: usize) -> Result<Self> {
        let g = Gpu::open_index(index).with_context(|| format!("opening gpu{index}"))?;
        let last = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (last.clone(), stop.clone());
        let thread = thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let r = g
                    .device_load()
                    .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO));
                let lost = matches!(r, Err(libc::ENODEV));
                *l.lock().unwrap() = Some((Instant::now(), r));
                if lost {
                    return;
                }
                thread::sleep(MONITOR_PERIOD);
            }
        });
        Ok(Self {
            last,
            stop,
            thread: Some(thread),
        })
    }

    fn last(&self) -> Snapshot {
        *self.last.lock().unwrap()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One queue of a GPU, with its request slots.
struct Lane<'g> {
    stage: Stage<'g>,
    free: Vec<usize>,
    /// When the dispatcher expects the lane's last request to end (since the run's start).
    busy_until: Duration,
}

/// Whether a GPU takes work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Health {
    Up,
    /// A job or a submit failed at this time: no work until the monitor answers after it.
    Down(Instant),
    Lost,
}

struct Device<'g> {
    index: usize,
    lanes: Vec<Lane<'g>>,
    units: u64,
    health: Health,
    monitor: Monitor,
    /// The dispatcher's jobs on it.
    in_flight: u64,
    answered: usize,
    /// Device ns of the requests the dispatcher placed on it (estimated): what breaks ties.
    placed_ns: f64,
    /// Busy time and device clock at the start, and the latest good reading.
    first: (u64, u64),
    latest: (u64, u64),
}

impl Device<'_> {
    /// Updates the health and the latest reading from the monitor; whether it takes work.
    fn refresh(&mut self, now: Instant) -> bool {
        match self.monitor.last() {
            Some((_, Err(libc::ENODEV))) => self.health = Health::Lost,
            Some((at, Ok(load))) => {
                self.latest = busy_of(&load);
                if let Health::Down(since) = self.health {
                    if at > since {
                        self.health = Health::Up;
                    }
                }
                if now.duration_since(at) > STALE {
                    return false;
                }
            }
            _ => return false,
        }
        self.health == Health::Up
    }

    /// Work of other clients queued on it, device ns per unit, from the load query.
    fn foreign_ns(&self, mean_ns: f64) -> f64 {
        match self.monitor.last() {
            Some((_, Ok(load))) => {
                let foreign = load.pending_jobs.saturating_sub(self.in_flight);
                foreign as f64 * mean_ns / self.units.max(1) as f64
            }
            _ => 0.0,
        }
    }
}

/// A load's busy time summed over units, and its device clock.
fn busy_of(load: &uapi::drm_vagx_device_load) -> (u64, u64) {
    let n = load.num_units.min(uapi::DRM_VAGX_MAX_UNITS) as usize;
    (load.unit_busy_ns[..n].iter().sum(), load.device_time_ns)
}

/// A request's job on a GPU.
struct Job {
    request: usize,
    device: usize,
    lane: usize,
    slot: usize,
    syncobj: u32,
    fence: OwnedFd,
}

/// A seeded stream: per request its rows and where in the pool they start, and its arrival.
fn stream(cfg: &Config, gpus: usize, mean_gap_ns: f64) -> Vec<(usize, usize, Duration)> {
    let r = infer::seeded(cfg.shape.seed * 7919 + 3, 3 * cfg.requests, 1.0);
    let mut t = 0.0;
    (0..cfg.requests)
        .map(|i| {
            // Uniform in (0, 1].
            let u = |k: usize| f64::from(r[3 * i + k]).mul_add(0.5, 0.5).max(1e-9);
            let large = match cfg.mix {
                Mix::Uniform => u(0) <= 0.25,
                Mix::Skewed => i % gpus.max(2) == 0,
            };
            let rows = if large { cfg.large } else { cfg.small };
            let start = (u(1) * POOL_ROWS as f64) as usize % POOL_ROWS;
            let at = Duration::from_nanos(t as u64);
            t += -u(2).ln() * mean_gap_ns;
            (rows, start, at)
        })
        .collect()
}

/// Rows `start..start + rows` of the pool, wrapping.
fn pool_rows(pool: &[f32], hidden: usize, start: usize, rows: usize) -> Vec<f32> {
    (0..rows)
        .flat_map(|j| {
            let r = (start + j) % POOL_ROWS;
            pool[r * hidden..(r + 1) * hidden].iter().copied()
        })
        .collect()
}

/// Measures the device time of a small and of a large request on GPU 0, and what the GPUs'
/// `units` deliver together: an emulated device that falls behind its model under load
/// gives less than its units, and an offered load taken from the units alone would then
/// overload the run.
fn calibrate(
    cfg: &Config,
    devs: &[Device<'_>],
    model: &Model,
    pool: &[f32],
    units: u64,
) -> Result<Calibration> {
    let cost_ns = [
        measure(&devs[0], model, pool, cfg.small)?,
        measure(&devs[0], model, pool, cfg.large)?,
    ];
    let together_ns = measure_together(devs, model, pool, cfg.large)?;
    let parallel = (cost_ns[1] * units as f64 / together_ns.max(1.0)).clamp(1.0, units as f64);
    Ok(Calibration { cost_ns, parallel })
}

/// Runs a request of `rows` pool rows alone on lane 0 of `dev`: the device ns its units spent.
fn measure(dev: &Device<'_>, model: &Model, pool: &[f32], rows: usize) -> Result<f64> {
    let lane = &dev.lanes[0];
    let g = lane.stage.ctx.gpu;
    let before = infer::busy(g)?;
    let s = calibration_request(lane, model, pool, rows)?;
    calibration_wait(lane, s)?;
    let after = infer::busy(g)?;
    Ok((after.0 - before.0) as f64)
}

/// Runs a request of `rows` pool rows on every lane of every GPU at once: the wall ns until
/// the last one ends.
fn measure_together(devs: &[Device<'_>], model: &Model, pool: &[f32], rows: usize) -> Result<f64> {
    let start = Instant::now();
    let pending = devs
        .iter()
        .flat_map(|d| &d.lanes)
        .map(|lane| Ok((lane, calibration_request(lane, model, pool, rows)?)))
        .collect::<Result<Vec<_>>>()?;
    for (lane, s) in pending {
        calibration_wait(lane, s)?;
    }
    Ok(start.elapsed().as_nanos() as f64)
}

/// Submits a calibration request of `rows` pool rows on `lane`; returns the syncobj its job
/// signals.
fn calibration_request(lane: &Lane<'_>, model: &Model, pool: &[f32], rows: usize) -> Result<u32> {
    let h = model.shape().hidden;
    let (input, _) = lane.stage.slot_offsets(h, 0);
    infer::put(&lane.stage.ctx, input, &pool_rows(pool, h, 0, rows));
    let c = lane
        .stage
        .commands([h, model.ff()], rows, lane.stage.ctx.va(input), 0, true);
    let s = lane.stage.ctx.gpu.syncobj()?;
    lane.stage.submit(&c, 0, &[Sync::signal(s, 0)])?;
    Ok(s)
}

/// Waits for the calibration request that signals `s` on `lane`, and checks that it worked.
fn calibration_wait(lane: &Lane<'_>, s: u32) -> Result<()> {
    let g = lane.stage.ctx.gpu;
    g.wait(s, WAIT_MS).context("a calibration request")?;
    let r = lane.stage.ctx.fence_result(s)?;
    g.syncobj_destroy(s)?;
    ensure!(r == Ok(()), "a calibration request failed: {r:?}");
    Ok(())
}

/// Takes GPU `index` away as `by` says.
fn lose(index: usize, by: LoseBy) -> Result<()> {
    match by {
        LoseBy::Unbind => fixture::unbind(&fixture::pci_address_of(index)?),
        LoseBy::Silence => {
            let path = fixture::debugfs_dir_of(index)?.join("inject");
            // The firmware stops answering, and the reboot after it too.
            std::fs::write(&path, "silence 1")
                .with_context(|| format!("silencing gpu{index}'s firmware"))
        }
    }
}

/// Serves `cfg.requests` requests on the GPUs `indices` and checks every answer.
pub fn run(cfg: &Config, indices: &[usize]) -> Result<Report> {
    ensure!(!indices.is_empty(), "no GPU to serve on");
    ensure!(
        cfg.small >= 1 && cfg.large >= cfg.small && cfg.load > 0.0 && cfg.requests >= 1,
        "at least one request, small 1 or more rows, large no smaller, load above 0"
    );
    let lost_address = match cfg.lose {
        Some(l) => {
            ensure!(
                l.gpu < indices.len() && indices.len() >= 2,
                "losing gpu{} needs another GPU to go on with",
                l.gpu
            );
            Some(fixture::pci_address_of(indices[l.gpu])?)
        }
        None => None,
    };
    let result = serve(cfg, indices);
    if let Some(address) = lost_address {
        // Bring the lost GPU back for whatever runs next (unbound already, or lost but
        // bound).
        let _ = fixture::unbind(&address);
        fixture::bind(&address)?;
    }
    result
}

fn serve(cfg: &Config, indices: &[usize]) -> Result<Report> {
    let model = Model::new(cfg.shape);
    let (h, f) = (cfg.shape.hidden, model.ff());
    let pool = infer::seeded(cfg.shape.seed + 11, POOL_ROWS * h, 1.0);
    let want = model.cpu(&pool, 0..cfg.shape.layers, true);
    let gpus = indices
        .iter()
        .map(|&i| Gpu::open_index(i).with_context(|| format!("opening gpu{i}")))
        .collect::<Result<Vec<_>>>()?;
    let mut devs = Vec::new();
    for (&index, g) in indices.iter().zip(&gpus) {
        let units = g
            .get_param(uapi::drm_vagx_param_DRM_VAGX_PARAM_UNITS)?
            .max(1);
        let lanes = (0..units)
            .map(|_| {
                Ok(Lane {
                    stage: Stage::new(g, &model, 0..cfg.shape.layers, cfg.large, SLOTS)?,
                    free: (0..SLOTS).rev().collect(),
                    busy_until: Duration::ZERO,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let first = infer::busy(g)?;
        devs.push(Device {
            index,
            lanes,
            units,
            health: Health::Up,
            monitor: Monitor::start(index)?,
            in_flight: 0,
            answered: 0,
            placed_ns: 0.0,
            first: (first.0, first.1),
            latest: (first.0, first.1),
        });
    }
    let units: u64 = devs.iter().map(|d| d.units).sum();
    let Calibration {
        cost_ns: cost,
        parallel,
    } = match cfg.calibration {
        Some(c) => c,
        None => calibrate(cfg, &devs, &model, &pool, units)?,
    };
    // Costs: a straight line between a small and a large request's.
    let slope = if cfg.large > cfg.small {
        (cost[1] - cost[0]) / (cfg.large - cfg.small) as f64
    } else {
        0.0
    };
    let est = |rows: usize| cost[0] + slope * (rows - cfg.small) as f64;
    let large_share = match cfg.mix {
        Mix::Uniform => 0.25,
        Mix::Skewed => 1.0 / devs.len().max(2) as f64,
    };
    let mean_ns = est(cfg.small) * (1.0 - large_share) + est(cfg.large) * large_share;
    let gap_ns = mean_ns / (parallel * cfg.load);
    let requests = stream(cfg, devs.len(), gap_ns);
    // Utilisation counts from here, after the calibration.
    for (d, g) in devs.iter_mut().zip(&gpus) {
        let (b, t, _) = infer::busy(g)?;
        d.first = (b, t);
        d.latest = (b, t);
    }

    let mut ready: VecDeque<usize> = VecDeque::new();
    let mut jobs: Vec<Job> = Vec::new();
    let mut answers: Vec<Option<Vec<f32>>> = vec![None; requests.len()];
    let mut answered_times = vec![0u32; requests.len()];
    let mut latency_ms: Vec<f64> = Vec::new();
    let (mut next, mut submitted, mut reruns, mut turn) = (0, 0, 0, 0);
    let mut lost_done = cfg.lose.is_none();
    let start = Instant::now();
    while latency_ms.len() < requests.len() {
        let now = Instant::now();
        let elapsed = now - start;
        ensure!(
            elapsed < RUN_LIMIT,
            "serve: {} of {} requests answered after {RUN_LIMIT:?}",
            latency_ms.len(),
            requests.len()
        );
        while next < requests.len() && requests[next].2 <= elapsed {
            ready.push_back(next);
            next += 1;
        }
        let takes: Vec<bool> = devs.iter_mut().map(|d| d.refresh(now)).collect();
        ensure!(
            devs.iter().any(|d| d.health != Health::Lost),
            "every GPU is lost"
        );
        // Place what is ready, in order, while there is room.
        while let Some(&r) = ready.front() {
            let (rows, pool_start, _) = requests[r];
            let Some((d, l)) = place(
                cfg.policy,
                &mut devs,
                &takes,
                &mut turn,
                elapsed,
                est(rows),
                mean_ns,
            ) else {
                break;
            };
            ready.pop_front();
            let dev = &mut devs[d];
            let lane = &mut dev.lanes[l];
            let slot = lane
                .free
                .pop()
                .expect("place picks a lane with a free slot");
            let (input, _) = lane.stage.slot_offsets(h, slot);
            infer::put(
                &lane.stage.ctx,
                input,
                &pool_rows(&pool, h, pool_start, rows),
            );
            let c = lane
                .stage
                .commands([h, f], rows, lane.stage.ctx.va(input), slot, true);
            let g = lane.stage.ctx.gpu;
            let s = g.syncobj()?;
            let sent = lane
                .stage
                .submit(&c, slot, &[Sync::signal(s, 0)])
                .and_then(|()| Ok(g.export_sync_file(s)?));
            match sent {
                Ok(fence) => {
                    lane.busy_until =
                        lane.busy_until.max(elapsed) + Duration::from_nanos(est(rows) as u64);
                    dev.in_flight += 1;
                    dev.placed_ns += est(rows);
                    submitted += 1;
                    jobs.push(Job {
                        request: r,
                        device: d,
                        lane: l,
                        slot,
                        syncobj: s,
                        fence,
                    });
                    // Right after a submit to it, so that the loss catches work in flight.
                    if let Some(lose_it) = cfg
                        .lose
                        .filter(|l| !lost_done && l.gpu == d && submitted >= l.after)
                    {
                        eprintln!(
                            "serve: losing gpu{} ({:?}) after {submitted} submits",
                            indices[d], lose_it.by
                        );
                        lose(indices[d], lose_it.by)?;
                        lost_done = true;
                    }
                }
                Err(e) => {
                    eprintln!(
                        "serve: request {r} could not be submitted to gpu{}: {e:#}; placing it again",
                        dev.index
                    );
                    lane.free.push(slot);
                    let _ = g.syncobj_destroy(s);
                    dev.health = Health::Down(Instant::now());
                    ready.push_front(r);
                    reruns += 1;
                    break;
                }
            }
        }
        // Wait for a job to end, or for the next arrival.
        let until_next = match (ready.is_empty(), requests.get(next)) {
            (true, Some(&(_, _, at))) => at.saturating_sub(start.elapsed()),
            (true, None) => Duration::from_millis(50),
            // Ready requests wait for room (or for a GPU to come back).
            (false, _) => Duration::from_millis(if jobs.is_empty() { 5 } else { 50 }),
        };
        let timeout = i32::try_from(until_next.as_millis().min(50)).unwrap_or(50);
        if jobs.is_empty() {
            thread::sleep(Duration::from_millis(timeout as u64));
            continue;
        }
        let fds: Vec<_> = jobs.iter().map(|j| j.fence.as_fd()).collect();
        let signalled = gpu::sync_files_poll(&fds, timeout)?;
        let done_at = start.elapsed();
        let mut still = Vec::new();
        for (j, sig) in jobs.drain(..).zip(signalled) {
            if !sig {
                still.push(j);
                continue;
            }
            let dev = &mut devs[j.device];
            dev.in_flight -= 1;
            let lane = &mut dev.lanes[j.lane];
            let status = gpu::sync_file_status(j.fence.as_fd())?;
            let _ = lane.stage.ctx.gpu.syncobj_destroy(j.syncobj);
            if lane.free.len() + 1 == SLOTS {
                lane.busy_until = done_at;
            }
            match status {
                Ok(true) => {
                    let (rows, _, at) = requests[j.request];
                    let (_, out) = lane.stage.slot_offsets(h, j.slot);
                    answers[j.request] = Some(infer::get(&lane.stage.ctx, out, rows * h));
                    answered_times[j.request] += 1;
                    latency_ms.push((done_at - at).as_secs_f64() * 1e3);
                    dev.answered += 1;
                    lane.free.push(j.slot);
                }
                Ok(false) => bail!("a polled fence is not signalled"),
                Err(e) => {
                    eprintln!(
                        "serve: request {} failed on gpu{}: {}; placing it again",
                        j.request,
                        dev.index,
                        std::io::Error::from_raw_os_error(e)
                    );
                    if dev.health == Health::Up {
                        dev.health = Health::Down(Instant::now());
                    }
                    // A lost GPU's slot is never used again; a recovered one's is free.
                    lane.free.push(j.slot);
                    ready.push_front(j.request);
                    reruns += 1;
                }
            }
        }
        jobs = still;
    }
    let wall_s = start.elapsed().as_secs_f64();
    for (d, g) in devs.iter_mut().zip(&gpus) {
        if let Ok((b, t, _)) = infer::busy(g) {
            d.latest = (b, t);
        }
    }
    if let Some(l) = cfg.lose {
        ensure!(
            lost_done,
            "gpu{} got no job after {} submits: the run ended with nothing to lose",
            indices[l.gpu],
            l.after
        );
        // The run may end before the monitor saw the GPU go (its last jobs failed, the
        // driver has not yet given up on the firmware): ask the driver until it says so.
        let d = &mut devs[l.gpu];
        let deadline = Instant::now() + LOSS_LIMIT;
        while d.health != Health::Lost {
            if matches!(
                gpus[l.gpu].device_load().map_err(|e| e.raw_os_error()),
                Err(Some(libc::ENODEV))
            ) {
                d.health = Health::Lost;
            } else {
                ensure!(
                    Instant::now() < deadline,
                    "gpu{} was taken away ({:?}) but not declared lost within {LOSS_LIMIT:?}",
                    d.index,
                    l.by
                );
                thread::sleep(MONITOR_PERIOD);
            }
        }
    }

    let mut worst = 0f32;
    for (r, a) in answers.iter().enumerate() {
        ensure!(
            answered_times[r] == 1,
            "request {r} answered {} times",
            answered_times[r]
        );
        let got = a.as_ref().context("an answered request has no output")?;
        let (rows, pool_start, _) = requests[r];
        let expected = pool_rows(&want, h, pool_start, rows);
        worst = worst.max(infer::worst(got, &expected).with_context(|| format!("request {r}"))?);
    }
    latency_ms.sort_by(f64::total_cmp);
    let pct = |p: f64| latency_ms[((latency_ms.len() - 1) as f64 * p).round() as usize];
    let per_gpu: Vec<GpuReport> = devs
        .iter()
        .map(|d| {
            let span = (d.latest.1.saturating_sub(d.first.1)).max(1) as f64 * d.units as f64;
            let busy = d.latest.0.saturating_sub(d.first.0) as f64;
            GpuReport {
                answered: d.answered,
                utilisation: busy / span,
                state: match d.health {
                    Health::Up => "up",
                    Health::Down(_) => "down",
                    Health::Lost => "lost",
                },
            }
        })
        .collect();
    let alive: Vec<f64> = per_gpu
        .iter()
        .filter(|g| g.state == "up")
        .map(|g| g.utilisation)
        .collect();
    let mean = alive.iter().sum::<f64>() / alive.len().max(1) as f64;
    let (lo, hi) = alive
        .iter()
        .fold((f64::MAX, 0f64), |(lo, hi), &u| (lo.min(u), hi.max(u)));
    Ok(Report {
        policy: cfg.policy,
        answered: latency_ms.len(),
        reruns,
        wall_s,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        max_ms: pct(1.0),
        per_gpu,
        imbalance: if mean > 0.0 { (hi - lo) / mean } else { 0.0 },
        worst_error: worst,
        cost_us: [cost[0] / 1e3, cost[1] / 1e3],
        parallel,
    })
}

/// Where request of cost `cost_ns` goes: `(device, lane)` with a free slot, or `None` to wait.
fn place(
    policy: Policy,
    devs: &mut [Device<'_>],
    takes: &[bool],
    turn: &mut usize,
    now: Duration,
    cost_ns: f64,
    mean_ns: f64,
) -> Option<(usize, usize)> {
    // The lane of `d` with a free slot that frees up first, and when it would end the request.
    let best_lane = |d: &Device<'_>| -> Option<(usize, f64)> {
        let foreign = d.foreign_ns(mean_ns);
        d.lanes
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.free.is_empty())
            .map(|(i, l)| {
                let start = l.busy_until.max(now).as_nanos() as f64 + foreign;
                (i, start + cost_ns)
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
    };
    match policy {
        Policy::LeastLoaded => devs
            .iter()
            .enumerate()
            .filter(|(i, _)| takes[*i])
            .filter_map(|(i, d)| best_lane(d).map(|(l, end)| (i, l, end)))
            // Idle lanes all end the request at the same time: of those, the GPU given the
            // least work so far, so that a light load does not pile onto GPU 0.
            .min_by(|a, b| {
                a.2.total_cmp(&b.2)
                    .then(devs[a.0].placed_ns.total_cmp(&devs[b.0].placed_ns))
            })
            .map(|(i, l, _)| (i, l)),
        Policy::RoundRobin => {
            // The next GPU in turn that takes work; wait for room on it.
            let n = devs.len();
            let d = (0..n).map(|k| (*turn + k) % n).find(|&i| takes[i])?;
            let (l, _) = best_lane(&devs[d])?;
            *turn = d + 1;
            Some((d, l))
        }
    }
}

/// `vagx-tool serve`: every policy of `policies` on the GPUs `indices`, a table of each.
/// `vagx-tool serve`: each policy in turn, every one after the first offered the load the
/// first one's calibration measured.
pub fn cli(cfg: Config, policies: &[Policy], indices: &[usize]) -> Result<()> {
    let mut calibration = cfg.calibration;
    for &policy in policies {
        let c = Config {
            policy,
            calibration,
            ..cfg
        };
        let r = run(&c, indices)?;
        print_report(&c, indices, &r);
        calibration = Some(r.calibration());
    }
    Ok(())
}

/// Prints a run's figures.
pub fn print_report(cfg: &Config, indices: &[usize], r: &Report) {
    println!(
        "serve {}: {} requests ({:?} mix, {} or {} rows, load {:.2}, hidden {}, {} blocks) on {} \
         GPU(s); every answer checked against the CPU, worst error {:e}",
        r.policy.name(),
        r.answered,
        cfg.mix,
        cfg.small,
        cfg.large,
        cfg.load,
        cfg.shape.hidden,
        cfg.shape.layers,
        indices.len(),
        r.worst_error
    );
    println!(
        "  cost {:.0} / {:.0} us a request, {:.1} units' worth together; {:.1} requests/s, \
         latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {} re-run(s); imbalance {:.1} %",
        r.cost_us[0],
        r.cost_us[1],
        r.parallel,
        r.throughput(),
        r.p50_ms,
        r.p99_ms,
        r.max_ms,
        r.reruns,
        100.0 * r.imbalance
    );
    for (i, g) in r.per_gpu.iter().enumerate() {
        println!(
            "  gpu{}: {} answered, utilisation {:.1} %, {}",
            indices[i],
            g.answered,
            100.0 * g.utilisation,
            g.state
        );
    }
}
