// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Collectives across N vagx GPUs: all-reduce (a ring reduce-scatter, then a ring
//! all-gather), reduce-scatter, all-gather and broadcast of `f32` buffers.
//!
//! The GPUs form a ring. Each member has its own buffer, and maps its predecessor's (shared
//! as a dma-buf) read-only; it only ever reads from its predecessor and writes its own. A
//! collective is a sequence of steps; at every step every member runs one job (a NOP if it
//! has nothing to do), and that job waits, through timeline syncobjs shared between the
//! GPUs' files, for two jobs of the step before:
//!
//! - its predecessor's, which produced the data it reads;
//! - its successor's, which read the part of its buffer this step may overwrite.
//!
//! Its own queue orders it after its own earlier jobs. So every job of the collective is
//! queued before the first runs, the CPU copies no tensor data and waits for nothing
//! between steps: the GPUs advance the collective.
//!
//! ```text
//!   step k:   member i-1 ──(point k of i-1)──► member i ──(point k+1 of i)──► ...
//!                             member i+1 ──(point k of i+1)──┘   (it read i's buffer)
//! ```
//!
//! The buffer of `len` elements is cut into N chunks, chunk `c` being elements
//! `c·len/N .. (c+1)·len/N` (so sizes that do not divide by N work). Reduce-scatter leaves
//! member `i` with chunk `i` summed over every member, in the order
//! `x[i] + (x[i-1] + (... + (x[i+2] + x[i+1])))`; all-gather gives every member chunk `i` of
//! member `i`.
//!
//! A *one-shot* all-reduce ([`Op::AllReduceOneShot`]) is for small buffers, where a step's
//! latency costs more than its bytes: every member also maps every other member's buffer,
//! and in one step sums all N buffers (in member order, so every member gets the same bits)
//! into a result area, which a second, local step copies over its data. 2 steps instead of
//! 2(N-1), each member reading N-1 whole buffers instead of 2(N-1)/N of one. A step that
//! reads other members' buffers, and the step after it, wait for *every* member's job of the
//! step before, not only the neighbours'.
//!
//! A *direct* all-reduce ([`Op::AllReduceDirect`], firmware ABI 1.5) is for every size where
//! the GPUs have the N-input `SUM`: member `i` sums chunk `i` of all N buffers (in member
//! order) into its own chunk `i` with one command, then copies every other chunk from the
//! member that summed it. 2 steps, and each member moves `(N + 1)/N` of the buffer's bytes
//! in the first and `2(N - 1)/N` in the second, against the ring's `3(N - 1)/N` and
//! `2(N - 1)/N`: the ring's add reads and writes the partial sum at every step, SUM reads
//! every input once and writes the result once.
//!
//! ```text
//!   step 1 (reads every buffer):  own[c_i] = x_0[c_i] + x_1[c_i] + … + x_{N-1}[c_i]
//!   step 2 (after every step 1):  own[c_j] = member j's [c_j]   for every j ≠ i
//! ```

use std::os::fd::AsFd;

use anyhow::{bail, ensure, Context, Result};
use vagx_abi::cmd::{ELEMENTWISE_ADD, MAX_SUM_SOURCES};

use crate::{
    cmdbuf::CmdBuf,
    fixture::WAIT_MS,
    gpu::{Gpu, Mapping, Sync},
    uapi,
};

/// Where a member's own buffer and its predecessor's sit in its VM.
const OWN_VA: u64 = 0x10_0000;
const PEER_VA: u64 = 0x4000_0000;
/// Where member `j`'s buffer sits in every other member's VM: `MESH_VA + j * MESH_STRIDE`.
const MESH_VA: u64 = 0x10_0000_0000;
const MESH_STRIDE: u64 = 1 << 32;
/// The buffer: command slots, then the data.
const SLOT: u64 = 512;
const SLOTS: u64 = 128;
const DATA: u64 = SLOT * SLOTS;

/// The collectives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    AllReduce,
    /// All-reduce in two steps whatever N ([`crate::collectives`]): for small buffers.
    AllReduceOneShot,
    /// All-reduce in two steps, each member reducing its chunk with one N-input `SUM`
    /// (firmware ABI 1.5).
    AllReduceDirect,
    ReduceScatter,
    AllGather,
    Broadcast {
        root: usize,
    },
}

impl Op {
    /// Parses `all-reduce`, `all-reduce-one-shot`, `all-reduce-direct`, `reduce-scatter`,
    /// `all-gather` or `broadcast` (root 0).
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "all-reduce" => Self::AllReduce,
            "all-reduce-one-shot" => Self::AllReduceOneShot,
            "all-reduce-direct" => Self::AllReduceDirect,
            "reduce-scatter" => Self::ReduceScatter,
            "all-gather" => Self::AllGather,
            "broadcast" => Self::Broadcast { root: 0 },
            _ => anyhow::bail!("unknown collective {s:?}"),
        })
    }

    /// NCCL's bus-bandwidth factor: what each link carries per byte of the buffer.
    fn bus_factor(self, n: usize) -> f64 {
        let n = n as f64;
        match self {
            Self::AllReduce | Self::AllReduceOneShot | Self::AllReduceDirect => 2.0 * (n - 1.0) / n,
            Self::ReduceScatter | Self::AllGather => (n - 1.0) / n,
            Self::Broadcast { .. } => 1.0,
        }
    }
}

/// One GPU of the ring.
struct Member {
    /// Its render-node index, to name it in errors.
    index: usize,
    /// The firmware ABI minor version its device speaks.
    abi_minor: u16,
    gpu: Gpu,
    vm: u32,
    bo: u32,
    map: Mapping,
    queue: u32,
    /// The predecessor's buffer, imported.
    peer_bo: Option<u32>,
    /// Every other member's buffer, imported (mapped at [`MESH_VA`]).
    mesh_bos: Vec<u32>,
    /// Per member `j`, its timeline as a handle of this member's file (its own at `j == i`).
    mesh_timelines: Vec<u32>,
    /// This member's timeline (point k+1: its job of step k is done), and its neighbours'
    /// imported into its file.
    timeline: u32,
    prev_timeline: u32,
    next_timeline: u32,
    /// A binary syncobj every job of the member signals: the last one's fence, whose error
    /// (a failed step, or one it waited for) fails the collective.
    last: u32,
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.gpu.queue_destroy(self.queue);
        let _ = self.gpu.vm_destroy(self.vm);
        let _ = self.gpu.gem_close(self.bo);
        for bo in self.peer_bo.iter().chain(&self.mesh_bos) {
            let _ = self.gpu.gem_close(*bo);
        }
    }
}

/// A collective whose jobs are queued.
#[must_use]
pub struct Queued {
    op: Op,
    before: u64,
    first_step: u64,
    /// How long submitting every job took the CPU.
    submit: std::time::Duration,
}

/// What a collective took.
#[derive(Clone, Copy, Debug)]
pub struct Report {
    /// Steps, and jobs submitted (one per member and step).
    pub steps: u64,
    pub jobs: u64,
    /// Device time from before the first submit to after the last job, in ns.
    pub device_ns: u64,
    /// Wall time the CPU took to submit every job, in ns (the GPUs start meanwhile).
    pub submit_ns: u64,
    /// Bytes of the buffer over device time, and NCCL's bus bandwidth, in GB/s.
    pub algbw: f64,
    pub busbw: f64,
}

/// N GPUs in a ring, each with a buffer of `len` `f32`s.
pub struct Ring {
    members: Vec<Member>,
    len: usize,
    /// The last timeline point of every member.
    point: u64,
    /// The next command slot (the same in every member).
    slot: u64,
    /// Per member, a syncobj (of its file) its next job also waits for: a test's gate.
    gates: Vec<Option<u32>>,
    /// Where the room a user asked for beyond the data starts in each buffer.
    extra: u64,
    /// Whether the last step read other members' buffers: the next one then waits for
    /// every member too.
    after_mesh: bool,
}

impl Ring {
    /// A ring of the GPUs `gpus` (render-node indices, in ring order) with `len` elements
    /// each.
    pub fn new(gpus: &[usize], len: usize) -> Result<Self> {
        Self::with_extra(gpus, len, 0)
    }

    /// A ring whose buffers also have `extra` bytes of their own after the data, for work
    /// of the user's between collectives ([`Ring::user_step`]).
    pub fn with_extra(gpus: &[usize], len: usize, extra: u64) -> Result<Self> {
        ensure!(!gpus.is_empty(), "a ring needs a GPU");
        // The data, then the one-shot all-reduce's result area, then the user's room.
        let extra_at = (DATA + 8 * u64::try_from(len)?).next_multiple_of(4096);
        let size = (extra_at + extra).next_multiple_of(4096);
        ensure!(size <= MESH_STRIDE, "a member's buffer fits its mesh slot");
        let mut members = Vec::new();
        for &index in gpus {
            let gpu = Gpu::open_index(index).with_context(|| format!("opening gpu{index}"))?;
            let vm = gpu.vm_create()?;
            let bo = gpu.gem_create(size)?;
            gpu.vm_map(vm, bo, OWN_VA, size)?;
            let map = gpu.map(bo, usize::try_from(size)?)?;
            let queue = gpu.queue_create(vm, uapi::drm_vagx_priority_DRM_VAGX_PRIORITY_NORMAL)?;
            let timeline = gpu.syncobj()?;
            let last = gpu.syncobj()?;
            let abi = gpu.get_param(uapi::drm_vagx_param_DRM_VAGX_PARAM_ABI_VERSION)?;
            members.push(Member {
                index,
                // CAST: the low 16 bits are the minor version.
                abi_minor: (abi & 0xffff) as u16,
                last,
                gpu,
                vm,
                bo,
                map,
                queue,
                peer_bo: None,
                mesh_bos: Vec::new(),
                mesh_timelines: Vec::new(),
                timeline,
                prev_timeline: timeline,
                next_timeline: timeline,
            });
        }
        let n = members.len();
        if n > 1 {
            for i in 0..n {
                let (prev, next) = ((i + n - 1) % n, (i + 1) % n);
                let buf = members[prev].gpu.prime_export(members[prev].bo)?;
                let peer = members[i].gpu.prime_import(buf.as_fd())?;
                members[i].peer_bo = Some(peer);
                let m = &members[i];
                m.gpu
                    .vm_map_flags(m.vm, peer, PEER_VA, size, uapi::DRM_VAGX_VM_BIND_READ)
                    .context("mapping the predecessor's buffer")?;
                let (p, q) = {
                    let share = |from: usize| -> Result<u32> {
                        let fd = members[from].gpu.syncobj_export(members[from].timeline)?;
                        Ok(members[i].gpu.syncobj_import(fd.as_fd())?)
                    };
                    (share(prev)?, share(next)?)
                };
                members[i].prev_timeline = p;
                members[i].next_timeline = q;
            }
        }
        for i in 0..n {
            for j in 0..n {
                if j == i {
                    let own = members[i].timeline;
                    members[i].mesh_timelines.push(own);
                    continue;
                }
                let buf = members[j].gpu.prime_export(members[j].bo)?;
                let bo = members[i].gpu.prime_import(buf.as_fd())?;
                members[i].mesh_bos.push(bo);
                let m = &members[i];
                m.gpu
                    .vm_map_flags(
                        m.vm,
                        bo,
                        MESH_VA + j as u64 * MESH_STRIDE,
                        size,
                        uapi::DRM_VAGX_VM_BIND_READ,
                    )
                    .with_context(|| format!("mapping member {j}'s buffer in member {i}'s VM"))?;
                let fd = members[j].gpu.syncobj_export(members[j].timeline)?;
                let t = members[i].gpu.syncobj_import(fd.as_fd())?;
                members[i].mesh_timelines.push(t);
            }
        }
        let gates = vec![None; members.len()];
        Ok(Self {
            members,
            len,
            point: 0,
            slot: 0,
            gates,
            extra: extra_at,
            after_mesh: false,
        })
    }

    /// Members.
    pub fn size(&self) -> usize {
        self.members.len()
    }

    /// Whether [`Op::AllReduceDirect`] runs on this ring: every member's firmware has `SUM`
    /// (ABI 1.5) and there are at most as many members as a `SUM` has inputs.
    pub fn has_direct_all_reduce(&self) -> bool {
        self.ensure_direct().is_ok()
    }

    /// Fails, naming the first member without it, unless [`Op::AllReduceDirect`] runs here.
    fn ensure_direct(&self) -> Result<()> {
        ensure!(
            self.size() <= MAX_SUM_SOURCES,
            "a direct all-reduce has at most {MAX_SUM_SOURCES} members"
        );
        if let Some(m) = self
            .members
            .iter()
            .find(|m| m.abi_minor < vagx_abi::regs::ABI_MINOR_SUM)
        {
            bail!(
                "gpu{} speaks firmware ABI 1.{}, which has no SUM (1.{}): no direct all-reduce",
                m.index,
                m.abi_minor,
                vagx_abi::regs::ABI_MINOR_SUM
            );
        }
        Ok(())
    }

    /// Elements `[start, end)` of chunk `c`.
    pub fn chunk(&self, c: usize) -> (usize, usize) {
        let n = self.size();
        (c * self.len / n, (c + 1) * self.len / n)
    }

    /// Writes member `i`'s buffer.
    pub fn write(&self, i: usize, values: &[f32]) {
        self.members[i].map.write_f32s(DATA as usize, values);
    }

    /// Reads member `i`'s buffer.
    pub fn read(&self, i: usize) -> Vec<f32> {
        self.members[i].map.read_f32s(DATA as usize, self.len)
    }

    /// The GPU address of byte `offset` of the extra room, and of the data.
    pub fn extra_va(&self, offset: u64) -> u64 {
        OWN_VA + self.extra + offset
    }

    pub fn data_va(&self) -> u64 {
        OWN_VA + DATA
    }

    /// Writes `values` at byte `offset` of member `i`'s extra room.
    pub fn write_extra(&self, i: usize, offset: u64, values: &[f32]) {
        self.members[i]
            .map
            .write_f32s((self.extra + offset) as usize, values);
    }

    /// Reads `count` `f32`s at byte `offset` of member `i`'s extra room.
    pub fn read_extra(&self, i: usize, offset: u64, count: usize) -> Vec<f32> {
        self.members[i]
            .map
            .read_f32s((self.extra + offset) as usize, count)
    }

    /// A step of the user's own: member `i` runs `work(i)`, ordered like a collective's
    /// steps (after its neighbours' jobs of the step before).
    pub fn user_step(&mut self, work: impl Fn(usize) -> CmdBuf) -> Result<()> {
        self.step(false, |_, i| work(i))
    }

    /// A step of the user's own that reads other members' buffers ([`Ring::peer_va`]):
    /// ordered after every member's job of the step before, as is the step after it.
    pub fn user_mesh_step(&mut self, work: impl Fn(usize) -> CmdBuf) -> Result<()> {
        self.step(true, |_, i| work(i))
    }

    /// The GPU address, in member `i`'s VM, of byte `offset` of member `j`'s extra room
    /// (read-only unless `j == i`).
    pub fn peer_extra_va(&self, i: usize, j: usize, offset: u64) -> u64 {
        Self::data_of(i, j) - DATA + self.extra + offset
    }

    /// The GPU address, in member `i`'s VM, of member `j`'s data.
    pub fn peer_data_va(&self, i: usize, j: usize) -> u64 {
        Self::data_of(i, j)
    }

    /// How many steps may be queued at once (command slots).
    pub const MAX_QUEUED_STEPS: u64 = SLOTS;

    /// Waits until every member has done every step queued so far.
    pub fn wait_all(&self) -> Result<()> {
        for m in self.members.iter().filter(|_| self.point > 0) {
            m.gpu
                .wait_point(m.timeline, self.point, WAIT_MS)
                .with_context(|| format!("waiting for gpu{} in the ring", m.index))?;
        }
        self.last_jobs_succeeded()
    }

    /// Fails if a member's last job failed (its error passes on to every later job).
    fn last_jobs_succeeded(&self) -> Result<()> {
        for m in self.members.iter().filter(|_| self.point > 0) {
            let r = crate::fixture::fence_result(&m.gpu, m.last)?;
            if let Err(e) = r {
                bail!(
                    "the ring's job on gpu{} failed: {}",
                    m.index,
                    std::io::Error::from_raw_os_error(e)
                );
            }
        }
        Ok(())
    }

    /// Queues the steps of `op` (an all-reduce by the GPUs, no wait).
    pub fn queue_only(&mut self, op: Op) -> Result<()> {
        let n = self.size();
        match op {
            Op::ReduceScatter => self.reduce_scatter(),
            Op::AllGather => self.all_gather(),
            Op::AllReduceOneShot => self.one_shot(),
            Op::AllReduceDirect => self.direct(),
            Op::AllReduce => {
                self.reduce_scatter()?;
                self.all_gather()
            }
            Op::Broadcast { root } => self.broadcast(root % n),
        }
    }

    /// Runs `op` and waits for it.
    pub fn run(&mut self, op: Op) -> Result<Report> {
        let queued = self.queue(op)?;
        self.finish(queued)
    }

    /// Member `i`'s GPU, and the handle of a syncobj there that its next job will also wait
    /// for (its first job of the next collective): a test holds a collective with it.
    pub fn gate(&mut self, i: usize) -> Result<(&Gpu, u32)> {
        let m = &self.members[i];
        let s = m.gpu.syncobj()?;
        self.gates[i] = Some(s);
        Ok((&self.members[i].gpu, s))
    }

    /// Member `i`'s GPU and the last point of its timeline.
    pub fn timeline(&self, i: usize) -> (&Gpu, u32, u64) {
        let m = &self.members[i];
        (&m.gpu, m.timeline, self.point)
    }

    /// Submits every job of `op` and returns at once (nothing waited for).
    pub fn queue(&mut self, op: Op) -> Result<Queued> {
        let n = self.size();
        let before = self.members[0].gpu.device_load()?.device_time_ns;
        let first_step = self.point;
        let start = std::time::Instant::now();
        match op {
            Op::ReduceScatter => self.reduce_scatter()?,
            Op::AllGather => self.all_gather()?,
            Op::AllReduceOneShot => self.one_shot()?,
            Op::AllReduceDirect => self.direct()?,
            Op::AllReduce => {
                self.reduce_scatter()?;
                self.all_gather()?;
            }
            Op::Broadcast { root } => self.broadcast(root % n)?,
        }
        Ok(Queued {
            op,
            before,
            first_step,
            submit: start.elapsed(),
        })
    }

    /// Waits for a queued collective's last jobs.
    pub fn finish(&mut self, q: Queued) -> Result<Report> {
        let Queued {
            op,
            before,
            first_step,
            submit,
        } = q;
        let n = self.size();
        for m in self.members.iter().filter(|_| self.point > first_step) {
            m.gpu
                .wait_point(m.timeline, self.point, WAIT_MS)
                .with_context(|| format!("waiting for gpu{} in the collective", m.index))?;
        }
        self.last_jobs_succeeded()?;
        let after = self.members[0].gpu.device_load()?.device_time_ns;
        let steps = self.point - first_step;
        let device_ns = after.saturating_sub(before).max(1);
        let algbw = (self.len * 4) as f64 / device_ns as f64;
        Ok(Report {
            steps,
            jobs: steps * n as u64,
            device_ns,
            submit_ns: u64::try_from(submit.as_nanos()).unwrap_or(u64::MAX),
            algbw,
            busbw: algbw * op.bus_factor(n),
        })
    }

    /// One step: member `i` runs `work(i)` (a NOP if it gives nothing), after its
    /// predecessor's and its successor's jobs of the step before, or after every member's if
    /// this step (`mesh`) or the one before reads other members' whole buffers.
    fn step(&mut self, mesh: bool, work: impl Fn(&Self, usize) -> CmdBuf) -> Result<()> {
        let wait_all = mesh || self.after_mesh;
        self.after_mesh = mesh;
        let cmds: Vec<CmdBuf> = (0..self.size()).map(|i| work(self, i)).collect();
        let slot = self.slot;
        self.slot = (self.slot + 1) % SLOTS;
        let point = self.point;
        for (i, (m, mut c)) in self.members.iter().zip(cmds).enumerate() {
            if c.count() == 0 {
                c.nop();
            }
            ensure!(
                u64::from(c.len()) <= SLOT,
                "a step's commands fit in a slot"
            );
            m.map.write((slot * SLOT) as usize, c.bytes());
            let mut syncs = Vec::new();
            if let Some(gate) = self.gates[i].take() {
                syncs.push(Sync::wait(gate, 0));
            }
            if point > 0 && self.members.len() > 1 {
                if wait_all {
                    for (j, &t) in m.mesh_timelines.iter().enumerate() {
                        if j != i {
                            syncs.push(Sync::wait(t, point));
                        }
                    }
                } else {
                    syncs.push(Sync::wait(m.prev_timeline, point));
                    syncs.push(Sync::wait(m.next_timeline, point));
                }
            }
            syncs.push(Sync::signal(m.timeline, point + 1));
            syncs.push(Sync::signal(m.last, 0));
            // The ring's fences order every read and write of the buffers, so the job skips
            // implicit sync's waits: at VM granularity they would make member i wait for
            // member i-1's job of the same step (a writer of the buffer it reads), one GPU
            // after the other around the ring at every step.
            m.gpu
                .submit_flags(
                    m.queue,
                    OWN_VA + slot * SLOT,
                    c.len(),
                    &syncs,
                    uapi::DRM_VAGX_SUBMIT_NO_IMPLICIT_WAIT,
                )
                .with_context(|| format!("member {i}'s job of step {point}"))?;
        }
        self.point += 1;
        Ok(())
    }

    /// The one-shot all-reduce: every member sums the N buffers in member order into its
    /// result area, then copies that over its data.
    fn one_shot(&mut self) -> Result<()> {
        let n = self.size();
        let bytes = 4 * self.len as u64;
        let result = OWN_VA + DATA + bytes;
        let count = self.len as u64;
        self.step(true, |_, i| {
            let data = |j: usize| {
                if j == i {
                    OWN_VA + DATA
                } else {
                    MESH_VA + j as u64 * MESH_STRIDE + DATA
                }
            };
            let mut c = CmdBuf::new();
            if count > 0 {
                if n == 1 {
                    c.copy(data(0), result, bytes);
                } else {
                    c.elementwise(ELEMENTWISE_ADD, [data(0), data(1), result], count, [0.0; 2]);
                    for j in 2..n {
                        c.elementwise(ELEMENTWISE_ADD, [result, data(j), result], count, [0.0; 2]);
                    }
                }
            }
            c
        })?;
        self.step(false, |_, _| {
            let mut c = CmdBuf::new();
            if count > 0 {
                c.copy(result, OWN_VA + DATA, bytes);
            }
            c
        })
    }

    /// Where member `j`'s data sits in member `i`'s VM.
    fn data_of(i: usize, j: usize) -> u64 {
        if j == i {
            OWN_VA + DATA
        } else {
            MESH_VA + j as u64 * MESH_STRIDE + DATA
        }
    }

    /// The direct all-reduce: member `i` sums chunk `i` of every buffer into its own with one
    /// `SUM`, then copies chunk `j` from member `j` for every other `j`.
    fn direct(&mut self) -> Result<()> {
        self.ensure_direct()?;
        let n = self.size();
        self.step(true, |ring, i| {
            let (start, end) = ring.chunk(i);
            let at = 4 * start as u64;
            let mut c = CmdBuf::new();
            if n > 1 && end > start {
                let src: Vec<u64> = (0..n).map(|j| Self::data_of(i, j) + at).collect();
                c.sum(&src, OWN_VA + DATA + at, (end - start) as u64);
            }
            c
        })?;
        self.step(true, |ring, i| {
            let mut c = CmdBuf::new();
            for j in (0..n).filter(|&j| j != i) {
                let (start, end) = ring.chunk(j);
                let at = 4 * start as u64;
                if end > start {
                    c.copy(
                        Self::data_of(i, j) + at,
                        OWN_VA + DATA + at,
                        4 * (end - start) as u64,
                    );
                }
            }
            c
        })
    }

    /// The GPU addresses of chunk `c` in a member's own buffer and in its predecessor's.
    fn chunk_vas(&self, c: usize) -> (u64, u64, u64) {
        let (start, end) = self.chunk(c);
        let off = DATA + 4 * start as u64;
        (OWN_VA + off, PEER_VA + off, 4 * (end - start) as u64)
    }

    /// N - 1 steps; at step `s` member `j` adds its predecessor's chunk `j - s - 2` into its
    /// own, so that member `j` ends with chunk `j` summed over all.
    fn reduce_scatter(&mut self) -> Result<()> {
        let n = self.size();
        for s in 0..n.saturating_sub(1) {
            self.step(false, |ring, j| {
                let c = (j + 2 * n - s - 2) % n;
                let (own, peer, bytes) = ring.chunk_vas(c);
                let mut cmds = CmdBuf::new();
                if bytes > 0 {
                    cmds.elementwise(ELEMENTWISE_ADD, [own, peer, own], bytes / 4, [0.0, 0.0]);
                }
                cmds
            })?;
        }
        Ok(())
    }

    /// N - 1 steps; at step `t` member `j` copies its predecessor's chunk `j - 1 - t`.
    fn all_gather(&mut self) -> Result<()> {
        let n = self.size();
        for t in 0..n.saturating_sub(1) {
            self.step(false, |ring, j| {
                let c = (j + 2 * n - 1 - t) % n;
                let (own, peer, bytes) = ring.chunk_vas(c);
                let mut cmds = CmdBuf::new();
                if bytes > 0 {
                    cmds.copy(peer, own, bytes);
                }
                cmds
            })?;
        }
        Ok(())
    }

    /// N - 1 steps; at step `t` member `root + t + 1` copies its predecessor's whole buffer.
    fn broadcast(&mut self, root: usize) -> Result<()> {
        let n = self.size();
        let bytes = 4 * self.len as u64;
        for t in 0..n.saturating_sub(1) {
            self.step(false, |_, j| {
                let mut cmds = CmdBuf::new();
                if j == (root + t + 1) % n && bytes > 0 {
                    cmds.copy(PEER_VA + DATA, OWN_VA + DATA, bytes);
                }
                cmds
            })?;
        }
        Ok(())
    }
}

/// The CPU's result of reduce-scatter for member `i`'s chunk, summed in the ring's order.
pub fn reduced_chunk(inputs: &[Vec<f32>], (start, end): (usize, usize), i: usize) -> Vec<f32> {
    let n = inputs.len();
    (start..end)
        .map(|e| {
            // Addition commutes; what the ring fixes is the association.
            let mut acc = inputs[(i + 1) % n][e];
            for t in 2..=n {
                acc += inputs[(i + t) % n][e];
            }
            acc
        })
        .collect()
}

/// `vagx-tool collective`: runs `op` on the GPUs `gpus` with `len` elements, checks the
/// result on the CPU and prints the bandwidths.
pub fn cli(op: Op, gpus: &[usize], len: usize) -> Result<()> {
    let mut ring = Ring::new(gpus, len)?;
    let inputs: Vec<Vec<f32>> = (0..ring.size()).map(|i| input(i, len)).collect();
    for (i, v) in inputs.iter().enumerate() {
        ring.write(i, v);
    }
    let report = ring.run(op)?;
    let worst = check(&ring, op, &inputs)?;
    println!(
        "collective {op:?} on {} GPU(s), {len} f32: {} steps, {} jobs (submitted in {:.3} ms), \
         {:.3} ms of device time, algbw {:.3} GB/s, busbw {:.3} GB/s, worst error {worst:e}",
        ring.size(),
        report.steps,
        report.jobs,
        report.submit_ns as f64 / 1e6,
        report.device_ns as f64 / 1e6,
        report.algbw,
        report.busbw
    );
    Ok(())
}

/// Member `i`'s input: distinct, inexact values.
pub fn input(i: usize, len: usize) -> Vec<f32> {
    (0..len)
        .map(|e| {
            let h = ((e * 7919 + i * 104_729) as u32).wrapping_mul(2_654_435_761) >> 10;
            (h % 10_007) as f32 / 997.0 - 5.0
        })
        .collect()
}

/// Checks every member's buffer after `op` against the CPU; returns the worst difference
/// from a plain CPU sum (the ring's order is checked exactly).
pub fn check(ring: &Ring, op: Op, inputs: &[Vec<f32>]) -> Result<f32> {
    let n = ring.size();
    let mut worst = 0f32;
    let reduced: Vec<Vec<f32>> = (0..n)
        .map(|c| reduced_chunk(inputs, ring.chunk(c), c))
        .collect();
    // The one-shot sum, in member order.
    let in_order: Vec<f32> = (0..ring.len)
        .map(|e| {
            let mut acc = inputs[0][e];
            for x in &inputs[1..] {
                acc += x[e];
            }
            acc
        })
        .collect();
    for i in 0..n {
        let got = ring.read(i);
        for c in 0..n {
            let (start, end) = ring.chunk(c);
            let want: &[f32] = match op {
                Op::AllReduce => &reduced[c],
                Op::AllReduceOneShot | Op::AllReduceDirect => &in_order[start..end],
                Op::ReduceScatter if c == i => &reduced[c],
                Op::ReduceScatter => continue,
                Op::AllGather => &inputs[c][start..end],
                Op::Broadcast { root } => &inputs[root % n][start..end],
            };
            for (e, (g, w)) in got[start..end].iter().zip(want).enumerate() {
                ensure!(
                    g.to_bits() == w.to_bits(),
                    "{op:?}: member {i}, element {}: GPU {g:e}, CPU {w:e}",
                    start + e
                );
                if matches!(
                    op,
                    Op::AllReduce | Op::AllReduceOneShot | Op::AllReduceDirect | Op::ReduceScatter
                ) {
                    let plain: f32 = inputs.iter().map(|x| x[start + e]).sum();
                    worst = worst.max((g - plain).abs());
                }
            }
        }
    }
    Ok(worst)
}
