// SPDX-License-Identifier: GPL-2.0 OR MIT

//! A client (an open DRM file) and its ioctls.
//!
//! Every argument is checked before anything changes: pads and unknown flags are `EINVAL`,
//! unknown handles and ids `ENOENT`, and a failed ioctl leaves no half-made object behind.

use kernel::{
    capability::{
        capable,
        Capability, //
    },
    dma_fence::{
        chain::{
            self,
            PreparedChain, //
        },
        Fence,
        Interruptible, //
    },
    dma_resv::{
        LockedSet,
        Usage, //
    },
    drm::{
        self,
        gem::BaseObject,
        sched::Weight,
        syncobj::{
            Syncobj,
            WaitForSubmit, //
        },
    },
    new_mutex,
    prelude::*,
    sync::{
        aref::ARef,
        Arc,
        Mutex, //
    },
    time::Delta,
    uaccess::{
        UserPtr,
        UserSlice, //
    },
    uapi,
};

use crate::{
    abi::queue::MAX_CMDBUF_SIZE,
    drv::{
        VagxDevice,
        VagxDriver, //
    },
    fdinfo::{
        self,
        EngineTime, //
    },
    gem::{
        Bo,
        Origin, //
    },
    gpu::Gpu,
    hwqueue::HwQueue,
    hwwait::{
        HwWait,
        Producer,
        MAX_HW_WAITS, //
    },
    load::{
        Load,
        LOAD_SIZE, //
    },
    queue::Queue,
    uapi as u,
    vm::{
        Vm,
        VA_BITS, //
    },
};

/// Most syncs one submit may name.
const MAX_SYNCS: u32 = 64;

/// A submit's deadline more than this far ahead is clamped to it: beyond it a deadline says
/// nothing about what to run next.
const MAX_DEADLINE_AHEAD: Delta = Delta::from_secs(10);

/// Queues one open file may hold: a quarter of the device's, so that one client cannot
/// take every queue id (`ENOSPC` past it; `EBUSY` is the device's own exhaustion).
pub(crate) const MAX_QUEUES_PER_FILE: usize = crate::abi::MAX_QUEUES / 4;

/// VMs one open file may hold, likewise a quarter of the device's.
pub(crate) const MAX_VMS_PER_FILE: usize = crate::abi::MAX_VMS / 4;

/// Objects of one kind a client holds, by id (ids start at 1 and are not reused).
struct Table<T> {
    next: u32,
    items: KVec<(u32, Arc<T>)>,
    /// Most items at once.
    limit: usize,
}

impl<T> Table<T> {
    fn new(limit: usize) -> Self {
        Self {
            next: 1,
            items: KVec::new(),
            limit,
        }
    }

    /// `ENOSPC` if the table is full: checked before an object is made (so that a client at
    /// its limit does not take a device id even for a moment) and again at insertion.
    fn check_room(&self) -> Result {
        if self.items.len() >= self.limit {
            return Err(ENOSPC);
        }
        Ok(())
    }

    fn get(&self, id: u32) -> Result<Arc<T>> {
        self.items
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, t)| t.clone())
            .ok_or(ENOENT)
    }

    fn insert(&mut self, item: Arc<T>) -> Result<u32> {
        self.check_room()?;
        let id = self.next;
        let next = id.checked_add(1).ok_or(ENOSPC)?;
        self.items.push((id, item), GFP_KERNEL)?;
        self.next = next;
        Ok(id)
    }

    fn remove(&mut self, id: u32) -> Result<Arc<T>> {
        let pos = self
            .items
            .iter()
            .position(|(i, _)| *i == id)
            .ok_or(ENOENT)?;
        Ok(self.items.remove(pos)?.1)
    }
}

/// A client of the vagx device.
#[pin_data]
pub(crate) struct File {
    #[pin]
    vms: Mutex<Table<Vm>>,
    #[pin]
    queues: Mutex<Table<Queue>>,
    /// Engine time that outlives the file's queues, for fdinfo.
    engine_time: Arc<EngineTime>,
    /// The device, for fdinfo (which gets only the file).
    gpu: Arc<Gpu>,
}

/// The DRM file of a vagx client.
pub(crate) type VagxFile = drm::File<File>;

impl drm::file::DriverFile for File {
    type Driver = VagxDriver;

    fn show_fdinfo(file: &VagxFile, info: &mut drm::file::FdInfo<'_>) {
        let inner = file.inner();
        let gpu = &inner.gpu;
        // Fresh samples; if the firmware does not answer, the latest ones.
        let _ = gpu.flush_busy();
        fdinfo::show_engines(
            gpu,
            &mut inner.queues.lock().items.iter().map(|(_, q)| q),
            &inner.engine_time,
            info,
        );
        info.memory_stats();
    }

    fn open(dev: &VagxDevice) -> Result<Pin<KBox<Self>>> {
        KBox::try_pin_init(
            try_pin_init!(Self {
                vms <- new_mutex!(Table::new(MAX_VMS_PER_FILE)),
                queues <- new_mutex!(Table::new(MAX_QUEUES_PER_FILE)),
                engine_time: Arc::new(EngineTime::new(), GFP_KERNEL)?,
                gpu: dev.gpu.clone(),
            }),
            GFP_KERNEL,
        )
    }
}

impl File {
    /// GET_PARAM: a device or driver value.
    pub(crate) fn get_param(
        dev: &VagxDevice,
        args: &mut uapi::drm_vagx_get_param,
        _file: &VagxFile,
    ) -> Result<u32> {
        if args.pad != 0 {
            return Err(EINVAL);
        }
        args.value = match args.param {
            u::PARAM_ABI_VERSION => dev.abi_version.into(),
            u::PARAM_UNITS => dev.gpu.units.into(),
            u::PARAM_VA_BITS => VA_BITS.into(),
            u::PARAM_SCHED_MODE => dev.sched_mode.into(),
            // CAST: a small constant.
            u::PARAM_MAX_QUEUES => crate::abi::MAX_QUEUES as u64,
            u::PARAM_MAX_CMDBUF_SIZE => MAX_CMDBUF_SIZE.into(),
            // CAST: small constants.
            u::PARAM_MAX_QUEUES_PER_FILE => MAX_QUEUES_PER_FILE as u64,
            u::PARAM_MAX_VMS_PER_FILE => MAX_VMS_PER_FILE as u64,
            _ => return Err(EINVAL),
        };
        Ok(0)
    }

    /// GEM_CREATE: a zeroed shmem buffer object.
    pub(crate) fn gem_create(
        dev: &VagxDevice,
        args: &mut uapi::drm_vagx_gem_create,
        file: &VagxFile,
    ) -> Result<u32> {
        if args.flags != 0 || args.size == 0 {
            return Err(EINVAL);
        }
        let size = usize::try_from(args.size)
            .ok()
            .and_then(|s| s.checked_next_multiple_of(kernel::page::PAGE_SIZE))
            .ok_or(EINVAL)?;
        let config = drm::gem::shmem::ObjectConfig {
            map_wc: false,
            parent_resv_obj: None,
        };
        let bo = Bo::new(dev, size, config, Origin::Own)?;
        args.handle = bo.create_handle(file)?;
        Ok(0)
    }

    /// GEM_MMAP_OFFSET: where to mmap a buffer object.
    pub(crate) fn gem_mmap_offset(
        _dev: &VagxDevice,
        args: &mut uapi::drm_vagx_gem_mmap_offset,
        file: &VagxFile,
    ) -> Result<u32> {
        if args.flags != 0 {
            return Err(EINVAL);
        }
        let bo = Bo::lookup_handle(file, args.handle)?;
        args.offset = bo.create_mmap_offset()?;
        Ok(0)
    }

    /// VM_CREATE: an empty GPU VM.
    pub(crate) fn vm_create(
        dev: &VagxDevice,
        args: &mut uapi::drm_vagx_vm_create,
        file: &VagxFile,
    ) -> Result<u32> {
        if args.flags != 0 {
            return Err(EINVAL);
        }
        file.inner().vms.lock().check_room()?;
        let vm = Vm::new(&dev.gpu)?;
        args.vm_id = file.inner().vms.lock().insert(vm)?;
        Ok(0)
    }

    /// VM_DESTROY: `EBUSY` while a queue uses it.
    pub(crate) fn vm_destroy(
        _dev: &VagxDevice,
        args: &mut uapi::drm_vagx_vm_destroy,
        file: &VagxFile,
    ) -> Result<u32> {
        if args.pad != 0 {
            return Err(EINVAL);
        }
        let f = file.inner();
        let queues = f.queues.lock();
        let mut vms = f.vms.lock();
        let vm = vms.get(args.vm_id)?;
        if queues.items.iter().any(|(_, q)| Arc::ptr_eq(q.vm(), &vm)) {
            return Err(EBUSY);
        }
        vms.remove(args.vm_id)?;
        Ok(0)
    }

    /// VM_BIND: map or unmap a range.
    pub(crate) fn vm_bind(
        _dev: &VagxDevice,
        args: &mut uapi::drm_vagx_vm_bind,
        file: &VagxFile,
    ) -> Result<u32> {
        let vm = file.inner().vms.lock().get(args.vm_id)?;
        match args.op {
            u::BIND_OP_MAP => {
                let bo = Bo::lookup_handle(file, args.handle)?;
                vm.map(bo, args.bo_offset, args.va, args.range, args.flags)?;
            }
            u::BIND_OP_UNMAP => {
                if args.handle != 0 || args.flags != 0 || args.bo_offset != 0 {
                    return Err(EINVAL);
                }
                // The jobs submitted so far to the VM's queues may use the range: wait for
                // them (unlocked: the wait may be long and is interruptible).
                let mut fences = KVec::new();
                for (_, q) in file.inner().queues.lock().items.iter() {
                    if Arc::ptr_eq(q.vm(), &vm) {
                        if let Some(f) = q.last() {
                            fences.push(f, GFP_KERNEL)?;
                        }
                    }
                }
                for f in fences.iter() {
                    f.wait(None, Interruptible::Yes)?;
                }
                vm.unmap(args.va, args.range)?;
            }
            _ => return Err(EINVAL),
        }
        Ok(0)
    }

    /// QUEUE_CREATE: a queue in a VM at a priority.
    pub(crate) fn queue_create(
        dev: &VagxDevice,
        args: &mut uapi::drm_vagx_queue_create,
        file: &VagxFile,
    ) -> Result<u32> {
        if args.flags != 0 || args.pad != 0 {
            return Err(EINVAL);
        }
        if args.priority == u::PRIORITY_HIGH && !capable(Capability::SYS_NICE) {
            return Err(EACCES);
        }
        let vm = file.inner().vms.lock().get(args.vm_id)?;
        file.inner().queues.lock().check_room()?;
        let queue = Queue::new(
            &dev.gpu,
            &dev.kernel_sched,
            &file.inner().engine_time,
            vm,
            args.priority,
            args.pipe,
        )?;
        args.queue_id = file.inner().queues.lock().insert(queue)?;
        Ok(0)
    }

    /// QUEUE_DESTROY: unfinished jobs complete with `ECANCELED`.
    pub(crate) fn queue_destroy(
        _dev: &VagxDevice,
        args: &mut uapi::drm_vagx_queue_destroy,
        file: &VagxFile,
    ) -> Result<u32> {
        if args.pad != 0 {
            return Err(EINVAL);
        }
        let queue = file.inner().queues.lock().remove(args.queue_id)?;
        // The teardown (firmware calls) runs here, without the table's lock.
        drop(queue);
        Ok(0)
    }

    /// QUEUE_GET_STATUS: the queue's state and last failure.
    pub(crate) fn queue_get_status(
        _dev: &VagxDevice,
        args: &mut uapi::drm_vagx_queue_get_status,
        file: &VagxFile,
    ) -> Result<u32> {
        if args.flags != 0 {
            return Err(EINVAL);
        }
        let queue = file.inner().queues.lock().get(args.queue_id)?;
        let (info, completed) = queue.status();
        args.state = info.state;
        args.error = info.error;
        args.fault_address = info.address;
        args.fault_kind = info.kind;
        args.fault_command = info.command;
        args.completed = completed;
        args.hangs = info.hangs;
        args.pad = 0;
        let stats = queue.stats();
        args.gpu_time_ns = stats.gpu_time_ns;
        args.submitted = stats.submitted;
        args.failed = stats.failed;
        args.depth = stats.depth;
        args.wait_count = stats.wait_count;
        args.wait_avg_ns = stats.wait_avg_ns;
        args.wait_p99_ns = stats.wait_p99_ns;
        args.deadline_jobs = stats.deadline_jobs;
        args.deadline_misses = stats.deadline_misses;
        Ok(0)
    }

    /// QUEUE_SET_PARAM: one scheduling parameter of a queue, at run time.
    pub(crate) fn queue_set_param(
        _dev: &VagxDevice,
        args: &mut uapi::drm_vagx_queue_set_param,
        file: &VagxFile,
    ) -> Result<u32> {
        // Every argument is checked before the queue is looked up.
        let value = u32::try_from(args.value).map_err(|_| EINVAL)?;
        match args.param {
            u::QUEUE_PARAM_WEIGHT => {
                let weight = Weight::new(value).ok_or(EINVAL)?;
                let queue = file.inner().queues.lock().get(args.queue_id)?;
                queue.set_weight(weight)?;
            }
            u::QUEUE_PARAM_PRIORITY => {
                if ![u::PRIORITY_LOW, u::PRIORITY_NORMAL, u::PRIORITY_HIGH].contains(&value) {
                    return Err(EINVAL);
                }
                if value == u::PRIORITY_HIGH && !capable(Capability::SYS_NICE) {
                    return Err(EACCES);
                }
                let queue = file.inner().queues.lock().get(args.queue_id)?;
                queue.set_priority(value)?;
            }
            _ => return Err(EINVAL),
        }
        Ok(0)
    }

    /// DEVICE_QUERY: device-wide figures (`DRM_VAGX_QUERY_LOAD`: [`Load`]).
    pub(crate) fn device_query(
        dev: &VagxDevice,
        args: &mut uapi::drm_vagx_device_query,
        _file: &VagxFile,
    ) -> Result<u32> {
        if args.flags != 0 || args.pad != 0 || args.query != u::QUERY_LOAD {
            return Err(EINVAL);
        }
        // CAST: a small constant.
        let size = LOAD_SIZE as u32;
        if args.size == 0 {
            args.size = size;
            return Ok(0);
        }
        if args.size < size {
            return Err(EINVAL);
        }
        let load = Load::of(&dev.gpu)?;
        let mut w = UserSlice::new(UserPtr::from_addr(args.data as usize), LOAD_SIZE).writer();
        load.write(&mut w)?;
        args.size = size;
        Ok(0)
    }

    /// SUBMIT: one job, with its wait and signal syncobjs, and its deadline.
    pub(crate) fn submit(
        dev: &VagxDevice,
        args: &mut uapi::drm_vagx_submit,
        file: &VagxFile,
    ) -> Result<u32> {
        if args.flags & !u::SUBMIT_NO_IMPLICIT_WAIT != 0 {
            return Err(EINVAL);
        }
        if args.cmdbuf % 8 != 0
            || args.cmdbuf_size == 0
            || args.cmdbuf_size % 8 != 0
            || args.cmdbuf_size > MAX_CMDBUF_SIZE
            || args.cmdbuf.checked_add(args.cmdbuf_size.into()).is_none()
        {
            return Err(EINVAL);
        }
        if args.sync_count > MAX_SYNCS {
            return Err(EINVAL);
        }
        let queue = file.inner().queues.lock().get(args.queue_id)?;
        dev.gpu.recovery.ensure_spare()?;

        // Read and check every sync before anything is queued.
        let mut syncs =
            KVec::<uapi::drm_vagx_sync>::with_capacity(args.sync_count as usize, GFP_KERNEL)?;
        if args.sync_count > 0 {
            let size = args.sync_count as usize * size_of::<uapi::drm_vagx_sync>();
            let mut reader = UserSlice::new(UserPtr::from_addr(args.syncs as usize), size).reader();
            for _ in 0..args.sync_count {
                syncs.push(read_sync(&mut reader)?, GFP_KERNEL)?;
            }
        }
        let mut seen_signal = false;
        for s in syncs.iter() {
            if s.flags & !u::SYNC_SIGNAL != 0 {
                return Err(EINVAL);
            }
            let signal = s.flags & u::SYNC_SIGNAL != 0;
            if seen_signal && !signal {
                return Err(EINVAL);
            }
            seen_signal |= signal;
        }

        // Waits: a job of another work queue of this device, or of another GPU on the peer
        // fabric, is waited for by the firmware (`hwwait`, `peers`), up to `MAX_HW_WAITS` of
        // them; every other fence by the scheduler.
        let mut cpu_waits = KVec::<ARef<Fence>>::with_capacity(syncs.len(), GFP_KERNEL)?;
        let mut hw_waits = KVec::<HwWait>::with_capacity(MAX_HW_WAITS, GFP_KERNEL)?;
        let mut ordered =
            KVec::<(ARef<Fence>, ARef<Fence>)>::with_capacity(MAX_HW_WAITS, GFP_KERNEL)?;
        for s in syncs.iter().filter(|s| s.flags & u::SYNC_SIGNAL == 0) {
            let fence = Syncobj::find_fence(file, s.handle, s.point, WaitForSubmit::No)?;
            if hw_waits.len() < MAX_HW_WAITS {
                if let Some((p, finished)) = hw_producer(&dev.gpu, &fence, queue.hw()) {
                    if !hw_waits
                        .iter()
                        .any(|w| Arc::ptr_eq(&w.record, &p.wait.record))
                    {
                        ordered.push((p.scheduled, finished), GFP_KERNEL)?;
                        hw_waits.push(p.wait, GFP_KERNEL)?;
                    }
                    continue;
                }
            }
            cpu_waits.push(fence, GFP_KERNEL)?;
        }
        // Implicit sync: the shared objects of the VM are locked until the job's fence is in
        // their reservations. The job waits for their writers, and for their readers too where
        // the VM may write (unless userspace said its syncs order everything); it then counts
        // as a writer or a reader of each, always.
        // A VM of private objects takes no lock and allocates nothing for this.
        let shared = queue.vm().shared_objects()?;
        let resvs = match shared.is_empty() {
            true => None,
            false => Some(LockedSet::lock(shared.iter().map(|(bo, _)| bo.resv()))?),
        };
        let implicit_wait = args.flags & u::SUBMIT_NO_IMPLICIT_WAIT == 0;
        if let Some(set) = resvs.as_ref().filter(|_| implicit_wait) {
            for (bo, writable) in shared.iter() {
                let usage = if *writable { Usage::Read } else { Usage::Write };
                set.fences(bo.resv(), usage, &mut cpu_waits)?;
            }
        }
        // CAST: at most `MAX_HW_WAITS`.
        dev.gpu
            .hw_waits
            .fetch_add(hw_waits.len() as u64, core::sync::atomic::Ordering::Relaxed);
        let peer_waits = hw_waits.iter().filter(|w| w.port.is_some()).count();
        // CAST: likewise.
        dev.gpu
            .peer_waits
            .fetch_add(peer_waits as u64, core::sync::atomic::Ordering::Relaxed);
        let credits = queue.credits(hw_waits.len());
        let mut job = queue
            .entity()
            .job(credits, queue.job(args.cmdbuf, args.cmdbuf_size, hw_waits)?)?;
        if args.deadline_ns != 0 {
            job.set_deadline_within(args.deadline_ns, MAX_DEADLINE_AHEAD);
        }
        for (scheduled, finished) in ordered {
            job.add_hardware_wait(scheduled, finished)?;
        }
        for fence in cpu_waits {
            job.add_dependency(fence)?;
        }
        // Signals: the syncobj and, for a timeline point, its chain node, made now.
        let mut signals: KVec<(ARef<Syncobj>, Option<PreparedChain>, u64)> =
            KVec::with_capacity(syncs.len(), GFP_KERNEL)?;
        for s in syncs.iter() {
            if s.flags & u::SYNC_SIGNAL != 0 {
                let obj = Syncobj::lookup(file, s.handle)?;
                let chain = if s.point != 0 {
                    // A new point must be above the timeline's last one, and above the
                    // points this submit signals on the same timeline before it.
                    let last = obj
                        .fence()
                        .filter(|f| chain::is_chain(f))
                        .map_or(0, |f| f.seqno());
                    let earlier = signals
                        .iter()
                        .filter(|(o, _, _)| core::ptr::eq::<Syncobj>(&**o, &*obj))
                        .map(|(_, _, p)| *p)
                        .max()
                        .unwrap_or(0);
                    if s.point <= last.max(earlier) {
                        return Err(EINVAL);
                    }
                    Some(PreparedChain::new(GFP_KERNEL)?)
                } else {
                    None
                };
                signals.push((obj, chain, s.point), GFP_KERNEL)?;
            }
        }

        let guard = queue.entity().begin_submit()?;
        let armed = guard.arm(job);
        // Findable by later submits on other queues before anyone can wait for it.
        queue.hw().producers.publish(
            &armed.finished(),
            armed.scheduled(),
            armed.data().record().clone(),
        );
        let done = armed.push();
        drop(guard);
        queue.submitted(done.clone());
        for (obj, chain, point) in signals {
            match chain {
                Some(node) => obj.add_point(node, &done, point),
                None => obj.replace_fence(Some(&done)),
            }
        }
        if let Some(set) = &resvs {
            for (bo, writable) in shared.iter() {
                let usage = if *writable { Usage::Write } else { Usage::Read };
                // Every object is in the set, locked with a slot reserved: this cannot fail.
                set.add_fence(bo.resv(), &done, usage)?;
            }
        }
        drop(resvs);
        Ok(0)
    }
}

/// The producer behind a wait fence, with its finished fence, if the firmware can order the
/// job after it: an unsignalled finished fence of a job of another work queue of this device
/// or (ABI 1.4, [`crate::peers`]) of another GPU on the peer fabric, or a timeline point whose
/// payload is one and whose earlier points that have not signalled all hold earlier jobs of
/// the same queue.
///
/// A point waits for every earlier point; those of one queue are ordered by it: the
/// firmware completes a work queue's entries in order, so the payload's stamp passes only
/// after theirs. Their errors are not the consumer's (a timeline point signals without its
/// payload's error, and a CPU wait takes the payload's alone), so nothing is lost by not
/// waiting for them. A point behind a fence of any other timeline is the CPU's.
fn hw_producer(gpu: &Gpu, fence: &ARef<Fence>, hw: &HwQueue) -> Option<(Producer, ARef<Fence>)> {
    /// Most unsignalled earlier points looked at; past them the wait is the CPU's.
    const EARLIER_POINTS: usize = 64;
    let finished: ARef<Fence> = if chain::is_chain(fence) {
        let payload: ARef<Fence> = chain::contained(fence).into();
        let mut node = chain::walk(fence.clone());
        let mut seen = 0;
        while let Some(n) = node {
            // The walk starts at the point itself if it has not signalled.
            let earlier = chain::contained(&n);
            if !core::ptr::eq::<Fence>(earlier, &*payload) {
                if earlier.context() != payload.context() || !payload.is_later(earlier) {
                    return None;
                }
                seen += 1;
                if seen > EARLIER_POINTS {
                    return None;
                }
            }
            node = chain::walk(n);
        }
        payload
    } else {
        fence.clone()
    };
    if finished.is_signaled() {
        return None;
    }
    gpu.find_producer(&finished, hw, false)
        .or_else(|| crate::peers::find_producer(gpu, hw, &finished))
        .map(|p| (p, finished))
}

/// Reads one `struct drm_vagx_sync` from userspace.
fn read_sync(reader: &mut kernel::uaccess::UserSliceReader) -> Result<uapi::drm_vagx_sync> {
    let mut raw = [0u8; 16];
    reader.read_slice(&mut raw)?;
    let word = |at: usize| -> [u8; 4] { [raw[at], raw[at + 1], raw[at + 2], raw[at + 3]] };
    let mut point = [0u8; 8];
    point.copy_from_slice(&raw[8..16]);
    Ok(uapi::drm_vagx_sync {
        handle: u32::from_ne_bytes(word(0)),
        flags: u32::from_ne_bytes(word(4)),
        point: u64::from_ne_bytes(point),
    })
}

kernel::static_assert!(size_of::<uapi::drm_vagx_sync>() == 16);
