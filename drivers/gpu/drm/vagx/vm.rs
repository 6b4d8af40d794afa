// SPDX-License-Identifier: GPL-2.0 OR MIT

//! GPU VMs: a private address space per VM, with page tables the driver builds.
//!
//! The device walks three levels of 4 KiB tables (`abi::mmu`). A job reaches only what its
//! queue's VM maps: the driver writes a leaf entry only for pages of a buffer object the
//! client bound, and keeps the object alive while any of its pages is mapped.
//!
//! The mappings list is exact: a leaf entry is valid if and only if its page is inside a
//! mapping. Unmapping splits the mappings it cuts (keeping the pieces outside the range, each
//! holding the object), so the hole can be mapped again and the object is released with its
//! last page; it clears only entries of mapped pages, so its cost grows with what was mapped,
//! not with the size of the range. A map that fails part-way clears what it wrote: the VM is
//! as before. Both work in chunks and stop for a signal between two (`ERESTARTSYS`; the
//! bookkeeping is exact at every chunk boundary, so the restarted call finishes the job).

use kernel::{
    device::{
        Bound,
        Device, //
    },
    new_mutex,
    prelude::*,
    sync::{
        aref::ARef,
        Arc,
        Mutex, //
    },
};

use crate::{
    abi::mmu::{
        self,
        table_index,
        PAGE_SIZE,
        PTE_ADDR_MASK,
        PTE_READ,
        PTE_VALID,
        PTE_WRITE, //
    },
    fwmem::FwMem,
    gem::Bo,
    gpu::Gpu,
    uapi,
};

/// Width of a VM's address space.
pub(crate) const VA_BITS: u32 = 39;
kernel::static_assert!(1u64 << VA_BITS == mmu::VA_LIMIT);

/// Pages handled between two checks for a pending signal.
const CHUNK_PAGES: u64 = 512;

/// A range of a buffer object mapped into the VM.
struct Mapping {
    va: u64,
    range: u64,
    /// Kept alive while mapped: the device may reach its pages.
    bo: ARef<Bo>,
    /// Where `va` is in the object.
    bo_offset: u64,
    /// Whether the GPU may write through it.
    writable: bool,
}

impl Mapping {
    fn end(&self) -> u64 {
        self.va + self.range
    }
}

/// Whether the task has a signal to handle: long VM operations stop between two chunks.
fn interrupted() -> bool {
    kernel::current!().signal_pending()
}

struct Tables {
    /// Every table, the root first, with its bus address.
    tables: KVec<FwMem>,
    mappings: KVec<Mapping>,
}

impl Tables {
    /// The leaf table covering `va`; missing tables are made if `dev` is given, else `None`.
    fn leaf(&mut self, dev: Option<&Device<Bound>>, va: u64) -> Result<Option<usize>> {
        let mut table = 0usize;
        for level in 0..mmu::LEVELS - 1 {
            // CAST: table indices are below 512.
            let off = table_index(va, level) as usize * 8;
            let pte: u64 = self.tables.get(table).ok_or(EINVAL)?.read(off)?;
            let next = if pte & PTE_VALID != 0 {
                let bus = pte & PTE_ADDR_MASK;
                self.tables
                    .iter()
                    .position(|t| t.bus_addr() == bus)
                    .ok_or(EINVAL)?
            } else if let Some(dev) = dev {
                let t = FwMem::new(dev, PAGE_SIZE as usize)?;
                let entry = (t.bus_addr() & PTE_ADDR_MASK) | PTE_VALID;
                self.tables.push(t, GFP_KERNEL)?;
                let new = self.tables.len() - 1;
                self.tables.get(table).ok_or(EINVAL)?.write(off, &entry)?;
                new
            } else {
                return Ok(None);
            };
            table = next;
        }
        Ok(Some(table))
    }

    fn overlaps(&self, va: u64, range: u64) -> bool {
        self.mappings
            .iter()
            .any(|m| va < m.va + m.range && m.va < va + range)
    }

    /// Clears the leaf entries of `[from, to)`, where tables exist.
    fn clear(&mut self, from: u64, to: u64) -> Result {
        let mut gva = from;
        while gva < to {
            // The device has nothing to walk where no table exists.
            if let Some(leaf) = self.leaf(None, gva)? {
                // CAST: table indices are below 512.
                let off = table_index(gva, 2) as usize * 8;
                self.tables.get(leaf).ok_or(EINVAL)?.write(off, &0u64)?;
            }
            gva += PAGE_SIZE;
        }
        Ok(())
    }

    /// Removes `[from, to)` from mapping `i`'s bookkeeping (its entries are already clear):
    /// the pieces left and right of it stay, and the object goes with the last piece. Needs
    /// room for one more mapping (`reserve`d by the caller) when it cuts a hole.
    fn cut(&mut self, i: usize, from: u64, to: u64) -> Result {
        let m = self.mappings.get(i).ok_or(EINVAL)?;
        let (left, right) = (m.va < from, to < m.end());
        match (left, right) {
            (false, false) => {
                self.mappings.remove(i)?;
            }
            (true, false) => {
                let m = self.mappings.get_mut(i).ok_or(EINVAL)?;
                m.range = from - m.va;
            }
            (false, true) => {
                let m = self.mappings.get_mut(i).ok_or(EINVAL)?;
                m.bo_offset += to - m.va;
                m.range = m.end() - to;
                m.va = to;
            }
            (true, true) => {
                let m = self.mappings.get_mut(i).ok_or(EINVAL)?;
                let tail = Mapping {
                    va: to,
                    range: m.end() - to,
                    bo: m.bo.clone(),
                    bo_offset: m.bo_offset + (to - m.va),
                    writable: m.writable,
                };
                m.range = from - m.va;
                // Room was reserved: does not allocate.
                self.mappings.push(tail, GFP_KERNEL)?;
            }
        }
        Ok(())
    }
}

/// A GPU VM.
#[pin_data(PinnedDrop)]
pub(crate) struct Vm {
    gpu: Arc<Gpu>,
    id: u32,
    #[pin]
    tables: Mutex<Tables>,
}

impl Vm {
    /// Creates an empty VM and gives the firmware its root table.
    pub(crate) fn new(gpu: &Arc<Gpu>) -> Result<Arc<Self>> {
        let id = gpu.alloc_vm_id()?;
        let build = || -> Result<Arc<Self>> {
            let root = gpu.dma.with(|dev| FwMem::new(dev, PAGE_SIZE as usize))?;
            let root_bus = root.bus_addr();
            let mut tables = KVec::new();
            tables.push(root, GFP_KERNEL)?;
            let vm = Arc::pin_init(
                try_pin_init!(Self {
                    gpu: gpu.clone(),
                    id,
                    tables <- new_mutex!(Tables {
                        tables,
                        mappings: KVec::new(),
                    }),
                }? Error),
                GFP_KERNEL,
            )?;
            gpu.bind_vm(id, root_bus)?;
            Ok(vm)
        };
        build().inspect_err(|_| gpu.free_vm_id(id))
    }

    /// The firmware's id of this VM.
    pub(crate) fn id(&self) -> u32 {
        self.id
    }

    fn check_range(va: u64, range: u64) -> Result {
        let end = va.checked_add(range).ok_or(EINVAL)?;
        if range == 0 || va % PAGE_SIZE != 0 || range % PAGE_SIZE != 0 || end > mmu::VA_LIMIT {
            return Err(EINVAL);
        }
        Ok(())
    }

    /// Maps `range` bytes of `bo` from `bo_offset` at `va` with `flags` (`BIND_READ`,
    /// `BIND_WRITE`).
    pub(crate) fn map(
        &self,
        bo: ARef<Bo>,
        bo_offset: u64,
        va: u64,
        range: u64,
        flags: u32,
    ) -> Result {
        use kernel::drm::gem::BaseObject;
        Self::check_range(va, range)?;
        let bo_end = bo_offset.checked_add(range).ok_or(EINVAL)?;
        if bo_offset % PAGE_SIZE != 0 || bo_end > bo.size() as u64 {
            return Err(EINVAL);
        }
        if flags & !(uapi::BIND_READ | uapi::BIND_WRITE) != 0 || flags == 0 {
            return Err(EINVAL);
        }
        if flags & uapi::BIND_WRITE != 0 && !bo.gpu_may_write() {
            // A dma-buf its exporter shared read-only.
            return Err(EACCES);
        }
        let mut perm = PTE_VALID;
        if flags & uapi::BIND_READ != 0 {
            perm |= PTE_READ;
        }
        if flags & uapi::BIND_WRITE != 0 {
            perm |= PTE_WRITE;
        }

        self.gpu
            .dma
            .with(|dev| self.map_locked(dev, bo, bo_offset, va, range, perm))
    }

    fn map_locked(
        &self,
        dev: &Device<Bound>,
        bo: ARef<Bo>,
        bo_offset: u64,
        va: u64,
        range: u64,
        perm: u64,
    ) -> Result {
        let sgt = bo.sg_table()?;
        let mut t = self.tables.lock();
        if t.overlaps(va, range) {
            return Err(EEXIST);
        }
        t.mappings.reserve(1, GFP_KERNEL)?;
        // Walk the object's DMA segments, writing a leaf entry per page in the range.
        let mut obj_off = 0u64;
        let mut written = 0u64;
        let mut write = |t: &mut Tables, written: &mut u64| -> Result {
            for seg in sgt.iter() {
                let (addr, len) = (seg.dma_address(), seg.dma_len());
                // The page tables map whole pages. Own objects are made of pages; an imported
                // table (another exporter's) that is not cannot be mapped.
                if addr % PAGE_SIZE != 0 || len % PAGE_SIZE != 0 {
                    return Err(EINVAL);
                }
                let mut p = 0;
                while p < len && *written < range {
                    let at = obj_off + p;
                    if at >= bo_offset {
                        let gva = va + (at - bo_offset);
                        let leaf = t.leaf(Some(dev), gva)?.ok_or(EINVAL)?;
                        let pte = ((addr + p) & PTE_ADDR_MASK) | perm;
                        // CAST: table indices are below 512.
                        let off = table_index(gva, 2) as usize * 8;
                        t.tables.get(leaf).ok_or(EINVAL)?.write(off, &pte)?;
                        *written += PAGE_SIZE;
                        if (*written / PAGE_SIZE) % CHUNK_PAGES == 0 && interrupted() {
                            return Err(ERESTARTSYS);
                        }
                    }
                    p += PAGE_SIZE;
                }
                obj_off += len;
                if *written >= range {
                    break;
                }
            }
            Ok(())
        };
        if let Err(e) = write(&mut t, &mut written) {
            // Leave the VM as it was: no entry outside a mapping. (Tables made on the way
            // stay, empty: the device finds nothing in them.)
            t.clear(va, va + written)?;
            return Err(e);
        }
        // Room was reserved: does not allocate.
        t.mappings.push(
            Mapping {
                va,
                range,
                bo,
                bo_offset,
                writable: perm & PTE_WRITE != 0,
            },
            GFP_KERNEL,
        )?;
        Ok(())
    }

    /// The shared buffer objects mapped in the VM (imported, or exported: see
    /// `BaseObject::is_shared`), each once, with whether any of its mappings is writable: the
    /// objects whose reservations a job of the VM takes part in (implicit sync). A VM of
    /// private objects only gives an empty list.
    pub(crate) fn shared_objects(&self) -> Result<KVec<(ARef<Bo>, bool)>> {
        use kernel::drm::gem::BaseObject;
        let t = self.tables.lock();
        let mut out = KVec::<(ARef<Bo>, bool)>::new();
        for m in t.mappings.iter().filter(|m| m.bo.is_shared()) {
            match out
                .iter_mut()
                .find(|(bo, _)| core::ptr::eq::<Bo>(&**bo, &*m.bo))
            {
                Some((_, writable)) => *writable |= m.writable,
                None => out.push((m.bo.clone(), m.writable), GFP_KERNEL)?,
            }
        }
        Ok(out)
    }

    /// Unmaps `range` bytes at `va`: whatever is mapped there, whole mappings or parts of
    /// them. The caller first waits for the jobs that may use it.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a bad range; `ERESTARTSYS` if a signal came between two chunks (what was
    /// unmapped so far stays unmapped; the restarted call unmaps the rest); `ENOMEM`.
    pub(crate) fn unmap(&self, va: u64, range: u64) -> Result {
        Self::check_range(va, range)?;
        let end = va + range;
        let mut t = self.tables.lock();
        // Bytes unmapped since the last look for a signal.
        let mut since = 0u64;
        loop {
            // The first mapping left in the range: only mapped pages have entries to clear.
            let Some(i) = t.mappings.iter().position(|m| va < m.end() && m.va < end) else {
                return Ok(());
            };
            let m = t.mappings.get(i).ok_or(EINVAL)?;
            let from = m.va.max(va);
            let to = m.end().min(end).min(from + CHUNK_PAGES * PAGE_SIZE);
            // A cut in the middle leaves two pieces.
            t.mappings.reserve(1, GFP_KERNEL)?;
            t.clear(from, to)?;
            t.cut(i, from, to)?;
            since += to - from;
            if since >= CHUNK_PAGES * PAGE_SIZE {
                since = 0;
                if interrupted() {
                    return Err(ERESTARTSYS);
                }
            }
        }
    }
}

#[pinned_drop]
impl PinnedDrop for Vm {
    fn drop(self: Pin<&mut Self>) {
        self.gpu.free_vm_id(self.id);
    }
}
