// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The GPU's page-table walker: GPU virtual addresses to bus addresses through a VM's tables.
//!
//! The table format is defined in [`vagx_abi::mmu`]: three levels of 512-entry tables, 4 KiB
//! pages, a 39-bit virtual address space. Every table entry is read from guest memory through
//! [`Memory`] at each translation (the model has no TLB), so the host may change mappings
//! between commands without telling the firmware.
//!
//! # Faults
//!
//! A translation fails with a [`Fault`] whose `address` is the GPU virtual address of the first
//! byte that could not be accessed:
//!
//! - an address at or above [`VA_LIMIT`] (including a range that runs past it or past the end of
//!   the 64-bit space), an entry without [`PTE_VALID`] at any level, or a table or page the bus
//!   refuses ([`BusError`]) is [`FAULT_UNMAPPED`];
//! - a valid level-2 entry without [`PTE_READ`] (for a read) or [`PTE_WRITE`] (for a write) is
//!   [`FAULT_PERMISSION`].
//!
//! [`Vm::read`] and [`Vm::write`] translate every page of the range before they access any data,
//! so a translation fault neither reads from nor writes to any page. The only partial access
//! left is a page whose mapping is valid but whose bus address the bus refuses: the pages before
//! it have then been accessed (the fault still names the refused page).
//!
//! The VMs the host has bound (`DEVCTRL_BIND_VM`) are the firmware's `VmTable`.
//!
//! [`PageTableBuilder`] builds tables in guest memory for tests.

use std::collections::BTreeMap;

use vagx_abi::channels::{FAULT_PERMISSION, FAULT_UNMAPPED};
use vagx_abi::mmu::{
    table_index, ENTRIES_PER_TABLE, LEVELS, PAGE_SIZE, PTE_ADDR_MASK, PTE_READ, PTE_VALID,
    PTE_WRITE, VA_LIMIT,
};
use vagx_abi::MAX_VMS;

use crate::mem::{BusError, HostMap, Memory};

/// Size of a page-table entry in bytes.
const PTE_SIZE: u64 = 8;

/// Kind of access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// A read: the page needs [`PTE_READ`].
    Read,
    /// A write: the page needs [`PTE_WRITE`].
    Write,
}

impl Access {
    /// The level-2 entry bit this access needs.
    const fn permission(self) -> u64 {
        match self {
            Self::Read => PTE_READ,
            Self::Write => PTE_WRITE,
        }
    }
}

/// A fault: which `FAULT_*` kind and the GPU virtual address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// One of the `FAULT_*` values of [`vagx_abi::channels`].
    pub kind: u32,
    /// The GPU virtual address of the first byte that could not be accessed.
    pub address: u64,
}

impl Fault {
    /// A [`FAULT_UNMAPPED`] fault at `address`.
    pub const fn unmapped(address: u64) -> Self {
        Self {
            kind: FAULT_UNMAPPED,
            address,
        }
    }

    /// A [`FAULT_PERMISSION`] fault at `address`.
    pub const fn permission(address: u64) -> Self {
        Self {
            kind: FAULT_PERMISSION,
            address,
        }
    }
}

/// One piece of a range: a part of it inside one page, or (merged by [`Vm::read`] and
/// [`Vm::write`]) inside pages that follow each other in the VM and on the bus.
#[derive(Clone, Copy, Debug)]
struct Piece {
    /// GPU virtual address of the piece's first byte.
    va: u64,
    /// Bus address of the piece's first byte.
    pa: u64,
    /// Length in bytes (at least 1).
    len: usize,
}

impl Piece {
    /// The piece's parts in each page: GPU address, bus address, length.
    fn pages(self) -> impl Iterator<Item = (u64, u64, usize)> {
        // CAST: a length in bytes, widened.
        let end = self.va + self.len as u64;
        let mut va = self.va;
        core::iter::from_fn(move || {
            (va < end).then(|| {
                let n = (PAGE_SIZE - (va & (PAGE_SIZE - 1))).min(end - va);
                // CAST: `n` is at most `PAGE_SIZE`.
                let part = (va, self.pa + (va - self.va), n as usize);
                va += n;
                part
            })
        })
    }
}

/// One GPU VM: the bus address of its level-0 table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vm {
    root: u64,
}

impl Vm {
    /// The VM whose level-0 table is at bus address `root` (expected to be 4 KiB aligned; the
    /// walker uses it as given).
    pub const fn new(root: u64) -> Self {
        Self { root }
    }

    /// The bus address of the level-0 table.
    pub const fn root(&self) -> u64 {
        self.root
    }

    /// Translates one address; walks L0→L1→L2 reading entries through `mem`.
    ///
    /// # Errors
    ///
    /// - [`FAULT_UNMAPPED`] at `va` if `va` is at or above [`VA_LIMIT`], an entry on the way is
    ///   not valid, or a table's bus address is refused by `mem`.
    /// - [`FAULT_PERMISSION`] at `va` if the page is mapped without the permission `access`
    ///   needs.
    pub fn translate(&self, mem: &mut dyn Memory, va: u64, access: Access) -> Result<u64, Fault> {
        let table = self.leaf_table(mem, va)?;
        let page = leaf_page(read_entry(mem, table, va, LEVELS - 1), va, access)?;
        Ok(page | (va & (PAGE_SIZE - 1)))
    }

    /// Checks that every page of the `len` bytes at `va` is mapped with the permission `access`
    /// needs, without accessing the data.
    ///
    /// # Errors
    ///
    /// The fault of the first page that does not translate, as [`Vm::translate`] reports it,
    /// with the address of the first byte of the range in that page.
    pub fn check(
        &self,
        mem: &mut dyn Memory,
        va: u64,
        len: u64,
        access: Access,
    ) -> Result<(), Fault> {
        self.walk(mem, va, len, access, |_| ())
    }

    /// Reads `buf.len()` bytes at `va` (may span pages).
    ///
    /// Translates every page first; nothing is read from a page the VM does not map with
    /// [`PTE_READ`]. A zero-length read succeeds without touching memory.
    ///
    /// # Errors
    ///
    /// The fault at the first byte that cannot be read (see the [module docs](self)); `buf` is
    /// then unspecified.
    pub fn read(&self, mem: &mut dyn Memory, va: u64, buf: &mut [u8]) -> Result<(), Fault> {
        let pieces = self.pieces(mem, va, buf.len(), Access::Read)?;
        let mut rest = buf;
        for piece in pieces {
            // The pieces add up to `buf.len()`; `min` only keeps the split in bounds.
            let n = piece.len.min(rest.len());
            let (chunk, tail) = core::mem::take(&mut rest).split_at_mut(n);
            if mem.read(piece.pa, chunk).is_err() {
                // Page by page, to name the page the bus refuses.
                let mut at = 0;
                for (va, pa, len) in piece.pages() {
                    mem.read(pa, &mut chunk[at..at + len])
                        .map_err(|_| Fault::unmapped(va))?;
                    at += len;
                }
            }
            rest = tail;
        }
        Ok(())
    }

    /// Writes `buf` at `va` (may span pages).
    ///
    /// Translates every page of the range, with [`PTE_WRITE`] permission, before writing any
    /// byte, so a write that faults in translation changes nothing. A zero-length write
    /// succeeds without touching memory.
    ///
    /// # Errors
    ///
    /// The fault at the first byte that cannot be written (see the [module docs](self)).
    pub fn write(&self, mem: &mut dyn Memory, va: u64, buf: &[u8]) -> Result<(), Fault> {
        let pieces = self.pieces(mem, va, buf.len(), Access::Write)?;
        let mut rest = buf;
        for piece in pieces {
            // The pieces add up to `buf.len()`; `min` only keeps the split in bounds.
            let (chunk, tail) = rest.split_at(piece.len.min(rest.len()));
            if mem.write(piece.pa, chunk).is_err() {
                // Page by page, to name the page the bus refuses (a refused write changes
                // nothing, so the pages before it are written once).
                let mut at = 0;
                for (va, pa, len) in piece.pages() {
                    mem.write(pa, &chunk[at..at + len])
                        .map_err(|_| Fault::unmapped(va))?;
                    at += len;
                }
            }
            rest = tail;
        }
        Ok(())
    }

    /// Translates every page of the `len` bytes at `va` with the permission `access` needs and
    /// maps them into the host for a worker ([`Memory::map`]).
    ///
    /// `Ok(None)` if a page is not plain RAM on the bus (the caller then accesses the range
    /// through [`Vm::read`] and [`Vm::write`], which report a page the bus refuses).
    ///
    /// # Errors
    ///
    /// The translation fault of the first page that does not translate, as [`Vm::check`].
    pub fn map(
        &self,
        mem: &mut dyn Memory,
        va: u64,
        len: usize,
        access: Access,
    ) -> Result<Option<HostRange>, Fault> {
        let pieces = self.pieces(mem, va, len, access)?;
        let mut parts = Vec::with_capacity(pieces.len());
        for piece in pieces {
            match mem.map(piece.pa, piece.len) {
                Some(m) => parts.push(m),
                None => return Ok(None),
            }
        }
        Ok(Some(HostRange {
            va,
            len,
            access,
            parts,
        }))
    }

    /// Translates every page of the `len` bytes at `va`; pages that follow each other on the
    /// bus too make one piece, accessed at once.
    fn pieces(
        &self,
        mem: &mut dyn Memory,
        va: u64,
        len: usize,
        access: Access,
    ) -> Result<Vec<Piece>, Fault> {
        // CAST: `usize` is at most 64 bits wide on every supported host, so this widens.
        let len = len as u64;
        let mut pieces: Vec<Piece> = Vec::new();
        self.walk(mem, va, len, access, |piece| match pieces.last_mut() {
            // CAST: a length in bytes, widened.
            Some(last) if last.pa.checked_add(last.len as u64) == Some(piece.pa) => {
                last.len += piece.len;
            }
            _ => pieces.push(piece),
        })?;
        Ok(pieces)
    }

    /// Translates the pages of the `len` bytes at `va` in order, passing each to `f`.
    ///
    /// The level-2 entries of the pages a range has in one level-2 table are read in one
    /// access (a table holds 2 MiB of pages): a 256 KiB operand costs 3 reads of entries
    /// instead of 192, which is most of a memory-bound command's host time behind QEMU's DMA
    /// calls. Every entry is still read at every walk, as [`Vm::translate`] reads them.
    fn walk(
        &self,
        mem: &mut dyn Memory,
        va: u64,
        len: u64,
        access: Access,
        mut f: impl FnMut(Piece),
    ) -> Result<(), Fault> {
        let mut at = va;
        let mut left = len;
        let mut entries = [None; ENTRIES_PER_TABLE as usize];
        while left > 0 {
            // A range running past `VA_LIMIT` faults there, before `at` can overflow.
            let table = self.leaf_table(mem, at)?;
            let first = table_index(at, LEVELS - 1);
            let in_table = ENTRIES_PER_TABLE - first;
            // Pages of the range from `at` on, the first one possibly partial.
            let pages = (left + (at & (PAGE_SIZE - 1))).div_ceil(PAGE_SIZE);
            let n = pages.min(in_table);
            // CAST: `n` is at most `ENTRIES_PER_TABLE`.
            let leaves = &mut entries[..n as usize];
            read_entries(mem, table + first * PTE_SIZE, leaves);
            for &entry in leaves.iter() {
                let page = leaf_page(entry, at, access)?;
                let in_page = (PAGE_SIZE - (at & (PAGE_SIZE - 1))).min(left);
                f(Piece {
                    va: at,
                    pa: page | (at & (PAGE_SIZE - 1)),
                    // CAST: `in_page` is at most `PAGE_SIZE`.
                    len: in_page as usize,
                });
                left -= in_page;
                at += in_page;
            }
        }
        Ok(())
    }

    /// The bus address of the level-2 table that maps `va`, walking levels 0 and 1.
    fn leaf_table(&self, mem: &mut dyn Memory, va: u64) -> Result<u64, Fault> {
        if va >= VA_LIMIT {
            return Err(Fault::unmapped(va));
        }
        let mut table = self.root;
        for level in 0..LEVELS - 1 {
            let entry = read_entry(mem, table, va, level).ok_or(Fault::unmapped(va))?;
            if entry & PTE_VALID == 0 {
                return Err(Fault::unmapped(va));
            }
            table = entry & PTE_ADDR_MASK;
        }
        Ok(table)
    }
}

/// A range of a VM mapped into the host by [`Vm::map`]: its pieces, in order, each the host
/// mapping of pages that follow each other on the bus.
pub struct HostRange {
    va: u64,
    len: usize,
    access: Access,
    parts: Vec<Box<dyn HostMap>>,
}

impl std::fmt::Debug for HostRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostRange")
            .field("va", &self.va)
            .field("len", &self.len)
            .field("access", &self.access)
            .field("parts", &self.parts.len())
            .finish()
    }
}

impl HostRange {
    /// Whether the `len` bytes at `va` lie inside the range and it was mapped for `access`.
    pub fn covers(&self, va: u64, len: usize, access: Access) -> bool {
        // CAST: lengths in bytes, widened.
        let (start, end) = (u128::from(self.va), u128::from(self.va) + self.len as u128);
        let (from, to) = (u128::from(va), u128::from(va) + len as u128);
        self.access == access && start <= from && to <= end
    }

    /// Copies the bytes at `va` into `buf` (inside the range: see [`HostRange::covers`]).
    pub fn read(&self, va: u64, buf: &mut [u8]) {
        self.parts_at(va, buf.len(), |part, offset, at, n| {
            part.read(offset, &mut buf[at..at + n]);
        });
    }

    /// Copies `buf` to `va` (inside the range).
    pub fn write(&self, va: u64, buf: &[u8]) {
        self.parts_at(va, buf.len(), |part, offset, at, n| {
            part.write(offset, &buf[at..at + n]);
        });
    }

    /// Calls `f(part, offset in part, offset in the access, length)` for each part the `len`
    /// bytes at `va` touch.
    fn parts_at(&self, va: u64, len: usize, mut f: impl FnMut(&dyn HostMap, usize, usize, usize)) {
        // CAST: inside the range, whose length is a `usize`.
        let mut skip = (va - self.va) as usize;
        let mut at = 0;
        for part in &self.parts {
            if at == len {
                break;
            }
            if skip >= part.len() {
                skip -= part.len();
                continue;
            }
            let n = (part.len() - skip).min(len - at);
            f(part.as_ref(), skip, at, n);
            skip = 0;
            at += n;
        }
    }
}

/// The VMs the host has bound, by id.
///
/// # Invariants
///
/// Every id is below `MAX_VMS` and every VM's root is page aligned.
#[derive(Clone, Debug, Default)]
pub(crate) struct VmTable {
    vms: BTreeMap<u32, Vm>,
}

impl VmTable {
    /// Binds VM `id` to the tables at `root`, replacing a VM of that id; `false` (and nothing
    /// bound) if the id is out of range or `root` not page aligned.
    pub(crate) fn bind(&mut self, id: u32, root: u64) -> bool {
        // CAST: `usize` is at least 32 bits wide on every supported host, so this widens.
        if id as usize >= MAX_VMS || !root.is_multiple_of(PAGE_SIZE) {
            return false;
        }
        self.vms.insert(id, Vm::new(root));
        true
    }

    /// Unbinds VM `id`; `false` if it was not bound.
    pub(crate) fn unbind(&mut self, id: u32) -> bool {
        self.vms.remove(&id).is_some()
    }

    /// Whether VM `id` is bound.
    pub(crate) fn is_bound(&self, id: u32) -> bool {
        self.vms.contains_key(&id)
    }

    /// VM `id`, if bound.
    pub(crate) fn get(&self, id: u32) -> Option<Vm> {
        self.vms.get(&id).copied()
    }
}

/// The entry for `va` of the table at `level` whose bus address is `table`, or `None` if the bus
/// refuses it.
fn read_entry(mem: &mut dyn Memory, table: u64, va: u64, level: u32) -> Option<u64> {
    let slot = table.checked_add(table_index(va, level) * PTE_SIZE)?;
    let mut raw = [0u8; 8];
    mem.read(slot, &mut raw).ok()?;
    Some(u64::from_le_bytes(raw))
}

/// The page a level-2 entry maps for an `access` at `va`, as [`Vm::translate`] faults: an
/// entry the bus refused (`None`) or not valid is unmapped, one without the permission is a
/// permission fault.
fn leaf_page(entry: Option<u64>, va: u64, access: Access) -> Result<u64, Fault> {
    let entry = entry.ok_or(Fault::unmapped(va))?;
    if entry & PTE_VALID == 0 {
        return Err(Fault::unmapped(va));
    }
    if entry & access.permission() == 0 {
        return Err(Fault::permission(va));
    }
    Ok(entry & PTE_ADDR_MASK)
}

/// Reads the consecutive entries at bus address `at` into `out` (at most one table's), each
/// `None` if the bus refuses it: one access for all of them, or entry by entry if the bus
/// refuses that one.
fn read_entries(mem: &mut dyn Memory, at: u64, out: &mut [Option<u64>]) {
    let mut raw = [0u8; (ENTRIES_PER_TABLE * PTE_SIZE) as usize];
    let raw = &mut raw[..out.len() * PTE_SIZE as usize];
    if mem.read(at, raw).is_ok() {
        for (e, bytes) in out.iter_mut().zip(raw.chunks_exact(PTE_SIZE as usize)) {
            // `chunks_exact` gives 8-byte slices.
            *e = bytes.try_into().ok().map(u64::from_le_bytes);
        }
        return;
    }
    for (i, e) in out.iter_mut().enumerate() {
        let mut one = [0u8; PTE_SIZE as usize];
        // CAST: `i` is below `ENTRIES_PER_TABLE`.
        let slot = at.checked_add(i as u64 * PTE_SIZE);
        *e = slot
            .and_then(|slot| mem.read(slot, &mut one).ok())
            .map(|()| u64::from_le_bytes(one));
    }
}

/// Why [`PageTableBuilder`] could not build a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// Writing a table failed: the table area is not backed by memory.
    Bus(BusError),
    /// The range is not inside the GPU virtual address space (`address` is its start).
    OutOfRange(u64),
}

impl From<BusError> for MapError {
    fn from(e: BusError) -> Self {
        Self::Bus(e)
    }
}

/// Builds page tables in guest memory, allocating tables upward from a table area; for tests.
///
/// Tables are never freed. Table entries get [`PTE_VALID`] only.
///
/// # Examples
///
/// ```
/// use vagx_abi::mmu::{PTE_READ, PTE_WRITE};
/// use vagx_fw::mem::Ram;
/// use vagx_fw::mmu::{Access, PageTableBuilder};
///
/// let mut ram = Ram::new(0x10_0000, 0x10_0000);
/// let mut pt = PageTableBuilder::new(&mut ram, 0x10_0000)?;
/// pt.map(&mut ram, 0x4000_0000, 0x18_0000, 0x2000, PTE_READ | PTE_WRITE)?;
/// let vm = pt.vm();
/// assert_eq!(vm.translate(&mut ram, 0x4000_1234, Access::Write), Ok(0x18_1234));
/// # Ok::<(), vagx_fw::mmu::MapError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageTableBuilder {
    /// Bus address of the next table to allocate.
    next_free: u64,
    /// Bus address of the level-0 table.
    root: u64,
}

impl PageTableBuilder {
    /// Allocates and zeroes a level-0 table at `table_area_start` (rounded up to a page);
    /// further tables follow it.
    ///
    /// # Errors
    ///
    /// [`MapError::Bus`] if the table cannot be written; [`MapError::OutOfRange`] if the table
    /// area does not fit in the 64-bit bus address space.
    pub fn new(mem: &mut dyn Memory, table_area_start: u64) -> Result<Self, MapError> {
        let root = table_area_start
            .checked_next_multiple_of(PAGE_SIZE)
            .ok_or(MapError::OutOfRange(table_area_start))?;
        let mut builder = Self {
            next_free: root,
            root,
        };
        builder.alloc_table(mem)?;
        Ok(builder)
    }

    /// The bus address of the level-0 table.
    pub const fn root(&self) -> u64 {
        self.root
    }

    /// The VM the tables describe.
    pub const fn vm(&self) -> Vm {
        Vm::new(self.root)
    }

    /// The bus address just past the last table allocated so far.
    pub const fn next_free(&self) -> u64 {
        self.next_free
    }

    /// Maps the pages covering the `len` bytes at `va` to consecutive pages starting at the page
    /// of `pa`, with level-2 flag bits `flags` ([`PTE_READ`], [`PTE_WRITE`]; [`PTE_VALID`] is
    /// added). Existing mappings are replaced.
    ///
    /// # Errors
    ///
    /// [`MapError::OutOfRange`] if the range reaches [`VA_LIMIT`] (nothing is mapped then);
    /// [`MapError::Bus`] if a table cannot be read or written (pages before it stay mapped).
    pub fn map(
        &mut self,
        mem: &mut dyn Memory,
        va: u64,
        pa: u64,
        len: u64,
        flags: u64,
    ) -> Result<(), MapError> {
        let (first, count) = page_range(va, len)?;
        let pa = pa & !(PAGE_SIZE - 1);
        for i in 0..count {
            let page_va = first + i * PAGE_SIZE;
            let page_pa = pa.wrapping_add(i * PAGE_SIZE) & PTE_ADDR_MASK;
            let slot = self.leaf_slot(mem, page_va)?;
            mem.write(slot, &(page_pa | flags | PTE_VALID).to_le_bytes())?;
        }
        Ok(())
    }

    /// Clears the level-2 entries of the pages covering the `len` bytes at `va` (tables stay).
    ///
    /// # Errors
    ///
    /// As for [`PageTableBuilder::map`].
    pub fn unmap(&mut self, mem: &mut dyn Memory, va: u64, len: u64) -> Result<(), MapError> {
        let (first, count) = page_range(va, len)?;
        for i in 0..count {
            let slot = self.leaf_slot(mem, first + i * PAGE_SIZE)?;
            mem.write(slot, &0u64.to_le_bytes())?;
        }
        Ok(())
    }

    /// The bus address of the level-2 entry for `va`, allocating the tables on the way.
    fn leaf_slot(&mut self, mem: &mut dyn Memory, va: u64) -> Result<u64, MapError> {
        let mut table = self.root;
        for level in 0..LEVELS - 1 {
            let slot = table + table_index(va, level) * PTE_SIZE;
            let mut raw = [0u8; 8];
            mem.read(slot, &mut raw)?;
            let entry = u64::from_le_bytes(raw);
            table = if entry & PTE_VALID != 0 {
                entry & PTE_ADDR_MASK
            } else {
                let next = self.alloc_table(mem)?;
                mem.write(slot, &(next | PTE_VALID).to_le_bytes())?;
                next
            };
        }
        Ok(table + table_index(va, LEVELS - 1) * PTE_SIZE)
    }

    /// Allocates a zeroed table and returns its bus address.
    fn alloc_table(&mut self, mem: &mut dyn Memory) -> Result<u64, MapError> {
        let table = self.next_free;
        let next = table
            .checked_add(PAGE_SIZE)
            .filter(|&n| n & !PTE_ADDR_MASK == 0)
            .ok_or(MapError::OutOfRange(table))?;
        // CAST: `PAGE_SIZE` is 4096.
        mem.write(table, &[0u8; PAGE_SIZE as usize])?;
        self.next_free = next;
        Ok(table)
    }
}

/// The first page and the number of pages covering the `len` bytes at `va`.
fn page_range(va: u64, len: u64) -> Result<(u64, u64), MapError> {
    let end = va
        .checked_add(len)
        .filter(|&end| end <= VA_LIMIT)
        .ok_or(MapError::OutOfRange(va))?;
    let first = va & !(PAGE_SIZE - 1);
    let count = if len == 0 {
        0
    } else {
        (end - first).div_ceil(PAGE_SIZE)
    };
    Ok((first, count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::Ram;

    const RAM_BASE: u64 = 0x8000_0000;
    const RAM_SIZE: usize = 0x10_0000;
    /// Where data pages live (tables use the first 256 KiB).
    const DATA: u64 = RAM_BASE + 0x4_0000;
    const RW: u64 = PTE_READ | PTE_WRITE;

    /// A RAM with a table area at its start, and a builder.
    fn setup() -> (Ram, PageTableBuilder) {
        let mut ram = Ram::new(RAM_BASE, RAM_SIZE);
        let pt = PageTableBuilder::new(&mut ram, RAM_BASE).unwrap();
        (ram, pt)
    }

    /// Writes `bytes` at bus address `pa` behind the VM's back.
    fn poke(ram: &mut Ram, pa: u64, bytes: &[u8]) {
        ram.write(pa, bytes).unwrap();
    }

    fn byte_at(ram: &Ram, pa: u64) -> u8 {
        ram.bytes()[usize::try_from(pa - RAM_BASE).unwrap()]
    }

    #[test]
    fn translation_of_mapped_and_unmapped_addresses_at_each_level() {
        let (mut ram, mut pt) = setup();
        // One page at 1 GiB + 2 MiB + 4 KiB.
        let va = 0x4020_1000;
        pt.map(&mut ram, va, DATA, PAGE_SIZE, RW).unwrap();
        // The last page below VA_LIMIT.
        pt.map(
            &mut ram,
            VA_LIMIT - PAGE_SIZE,
            DATA + PAGE_SIZE,
            PAGE_SIZE,
            RW,
        )
        .unwrap();
        let vm = pt.vm();
        let cases: &[(&str, u64, Result<u64, Fault>)] = &[
            ("mapped, page start", va, Ok(DATA)),
            ("mapped, page end", va + 0xfff, Ok(DATA + 0xfff)),
            (
                "L2 entry invalid",
                va + PAGE_SIZE,
                Err(Fault::unmapped(va + PAGE_SIZE)),
            ),
            (
                "L2 entry invalid below",
                va - 1,
                Err(Fault::unmapped(va - 1)),
            ),
            (
                "L1 entry invalid",
                va + (2 << 20),
                Err(Fault::unmapped(va + (2 << 20))),
            ),
            (
                "L0 entry invalid",
                va + (1 << 30),
                Err(Fault::unmapped(va + (1 << 30))),
            ),
            ("L0 entry invalid at 0", 0, Err(Fault::unmapped(0))),
            ("last page", VA_LIMIT - 1, Ok(DATA + PAGE_SIZE + 0xfff)),
            ("VA_LIMIT", VA_LIMIT, Err(Fault::unmapped(VA_LIMIT))),
            // Would alias the last page if the walker ignored the high bits.
            (
                "above VA_LIMIT",
                VA_LIMIT + va,
                Err(Fault::unmapped(VA_LIMIT + va)),
            ),
            ("u64::MAX", u64::MAX, Err(Fault::unmapped(u64::MAX))),
        ];
        for &(name, va, expected) in cases {
            assert_eq!(vm.translate(&mut ram, va, Access::Read), expected, "{name}");
        }
        assert_eq!(ram.refused, 0);
    }

    #[test]
    fn permissions_of_level_2_entries() {
        let cases: &[(u64, Access, bool)] = &[
            (PTE_READ, Access::Read, true),
            (PTE_READ, Access::Write, false),
            (PTE_WRITE, Access::Read, false),
            (PTE_WRITE, Access::Write, true),
            (RW, Access::Read, true),
            (RW, Access::Write, true),
            (0, Access::Read, false),
            (0, Access::Write, false),
        ];
        for &(flags, access, allowed) in cases {
            let (mut ram, mut pt) = setup();
            pt.map(&mut ram, 0x1000, DATA, PAGE_SIZE, flags).unwrap();
            let expected = if allowed {
                Ok(DATA + 0x10)
            } else {
                Err(Fault::permission(0x1010))
            };
            let got = pt.vm().translate(&mut ram, 0x1010, access);
            assert_eq!(got, expected, "flags {flags:#x} {access:?}");
        }
    }

    #[test]
    fn table_entries_ignore_permission_bits() {
        let (mut ram, mut pt) = setup();
        pt.map(&mut ram, 0x1000, DATA, PAGE_SIZE, RW).unwrap();
        // The L0 and L1 entries carry PTE_VALID only; the walk must not need READ/WRITE there.
        let l0 = u64::from_le_bytes(ram.bytes()[..8].try_into().unwrap());
        assert_eq!(l0 & (PTE_READ | PTE_WRITE), 0);
        assert_eq!(pt.vm().translate(&mut ram, 0x1000, Access::Write), Ok(DATA));
    }

    #[test]
    fn reads_and_writes_span_scattered_pages() {
        let (mut ram, mut pt) = setup();
        // Three consecutive virtual pages on scattered physical pages.
        let va = 0x7_0000;
        let pas = [DATA + 0x5000, DATA + 0x1000, DATA + 0x9000];
        for (i, &pa) in (0u64..).zip(&pas) {
            pt.map(&mut ram, va + i * PAGE_SIZE, pa, PAGE_SIZE, RW)
                .unwrap();
        }
        let vm = pt.vm();
        let data: Vec<u8> = (0..9000u32).map(|i| (i * 7 % 251) as u8).collect();
        let start = va + 100;
        vm.write(&mut ram, start, &data).unwrap();
        // Check the bytes landed on the physical pages.
        assert_eq!(byte_at(&ram, pas[0] + 100), data[0]);
        assert_eq!(byte_at(&ram, pas[0] + 0xfff), data[0xfff - 100]);
        assert_eq!(byte_at(&ram, pas[1]), data[0x1000 - 100]);
        assert_eq!(byte_at(&ram, pas[2]), data[0x2000 - 100]);
        let mut back = vec![0u8; data.len()];
        vm.read(&mut ram, start, &mut back).unwrap();
        assert_eq!(back, data);
        // A read of one byte at each end.
        let mut one = [0u8];
        vm.read(&mut ram, start + 8999, &mut one).unwrap();
        assert_eq!(one[0], data[8999]);
    }

    #[test]
    fn faults_name_the_first_faulting_byte() {
        let (mut ram, mut pt) = setup();
        pt.map(&mut ram, 0x1000, DATA, PAGE_SIZE, RW).unwrap();
        pt.map(&mut ram, 0x2000, DATA + 0x1000, PAGE_SIZE, PTE_READ)
            .unwrap();
        // 0x3000 is unmapped.
        pt.map(&mut ram, VA_LIMIT - PAGE_SIZE, DATA + 0x2000, PAGE_SIZE, RW)
            .unwrap();
        let vm = pt.vm();
        let mut buf = vec![0u8; 0x3000];
        let cases: &[(&str, u64, usize, Access, Fault)] = &[
            (
                "read into unmapped",
                0x2800,
                0x1000,
                Access::Read,
                Fault::unmapped(0x3000),
            ),
            (
                "read from unmapped",
                0x3010,
                4,
                Access::Read,
                Fault::unmapped(0x3010),
            ),
            (
                "read past VA_LIMIT",
                VA_LIMIT - 8,
                16,
                Access::Read,
                Fault::unmapped(VA_LIMIT),
            ),
            (
                "read at u64::MAX",
                u64::MAX - 3,
                8,
                Access::Read,
                Fault::unmapped(u64::MAX - 3),
            ),
            (
                "write into read-only",
                0x1ffc,
                8,
                Access::Write,
                Fault::permission(0x2000),
            ),
            (
                "write into read-only, then unmapped",
                0x1000,
                0x3000,
                Access::Write,
                Fault::permission(0x2000),
            ),
            (
                "write past VA_LIMIT",
                VA_LIMIT - 1,
                2,
                Access::Write,
                Fault::unmapped(VA_LIMIT),
            ),
        ];
        for &(name, va, len, access, fault) in cases {
            let got = match access {
                Access::Read => vm.read(&mut ram, va, &mut buf[..len]),
                Access::Write => vm.write(&mut ram, va, &buf[..len]),
            };
            assert_eq!(got, Err(fault), "{name}");
            let len = u64::try_from(len).unwrap();
            assert_eq!(
                vm.check(&mut ram, va, len, access),
                Err(fault),
                "{name} (check)"
            );
        }
        assert_eq!(ram.refused, 0);
    }

    #[test]
    fn a_write_faulting_on_its_second_page_changes_nothing() {
        for second in [None, Some(PTE_READ), Some(0)] {
            let (mut ram, mut pt) = setup();
            pt.map(&mut ram, 0x1000, DATA, PAGE_SIZE, RW).unwrap();
            if let Some(flags) = second {
                pt.map(&mut ram, 0x2000, DATA + 0x1000, PAGE_SIZE, flags)
                    .unwrap();
            }
            poke(&mut ram, DATA, &[0x5a; 0x2000]);
            let before = ram.bytes().to_vec();
            let vm = pt.vm();
            let got = vm.write(&mut ram, 0x1800, &[0xa5; 0x1000]);
            let kind = if second.is_some() {
                FAULT_PERMISSION
            } else {
                FAULT_UNMAPPED
            };
            assert_eq!(
                got,
                Err(Fault {
                    kind,
                    address: 0x2000
                }),
                "{second:?}"
            );
            assert!(ram.bytes()[..] == before[..], "{second:?}: memory changed");
        }
    }

    #[test]
    fn bus_addresses_outside_ram_fault_without_panicking() {
        // Root table outside RAM.
        let mut ram = Ram::new(RAM_BASE, RAM_SIZE);
        let vm = Vm::new(0xdead_0000);
        assert_eq!(
            vm.translate(&mut ram, 0x1000, Access::Read),
            Err(Fault::unmapped(0x1000))
        );
        // Root table straddling the end of the 64-bit space.
        let vm = Vm::new(0xffff_ffff_ffff_f000);
        assert_eq!(
            vm.translate(&mut ram, 0x7f_ffff_f000, Access::Read),
            Err(Fault::unmapped(0x7f_ffff_f000))
        );

        // An L0 entry pointing outside RAM, and a page outside RAM.
        let (mut ram, mut pt) = setup();
        pt.map(&mut ram, 0x1000, 0xf_0000_0000, PAGE_SIZE, RW)
            .unwrap();
        pt.map(&mut ram, 0x2000, DATA, PAGE_SIZE, RW).unwrap();
        pt.map(&mut ram, 0x3000, 0xf_0000_0000, PAGE_SIZE, RW)
            .unwrap();
        poke(
            &mut ram,
            pt.root() + 8,
            &(0xf_0000_0000 | PTE_VALID).to_le_bytes(),
        );
        let vm = pt.vm();
        assert_eq!(
            vm.translate(&mut ram, 0x4000_0000, Access::Read),
            Err(Fault::unmapped(0x4000_0000))
        );
        assert_eq!(
            vm.translate(&mut ram, 0x1000, Access::Read),
            Ok(0xf_0000_0000)
        );
        let mut buf = [0u8; 16];
        assert_eq!(
            vm.read(&mut ram, 0x1008, &mut buf),
            Err(Fault::unmapped(0x1008))
        );
        assert_eq!(
            vm.write(&mut ram, 0x1008, &buf),
            Err(Fault::unmapped(0x1008))
        );
        // A range that translates but whose second page the bus refuses: the fault names it.
        assert_eq!(
            vm.read(&mut ram, 0x2ff8, &mut buf),
            Err(Fault::unmapped(0x3000))
        );
        assert_eq!(
            vm.write(&mut ram, 0x2ff8, &buf),
            Err(Fault::unmapped(0x3000))
        );
        assert!(ram.refused > 0);
    }

    /// The walk reads each level-2 table's entries for a range in one access; its pieces and
    /// faults must be those of translating page by page, whatever the mix of mappings.
    #[test]
    fn range_walks_match_page_by_page_translation() {
        let (mut ram, mut pt) = setup();
        // 1.5 MiB of pages around a 2 MiB boundary (two level-2 tables), in random states.
        let base = 0x20_0000 - 0x8_0000;
        let pages = 384;
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for p in 0..pages {
            let va = base + p * PAGE_SIZE;
            let pa = DATA + (next() % 128) * PAGE_SIZE;
            match next() % 8 {
                0 => {}
                1 => pt.map(&mut ram, va, pa, PAGE_SIZE, PTE_READ).unwrap(),
                2 => pt.map(&mut ram, va, pa, PAGE_SIZE, PTE_WRITE).unwrap(),
                3 => pt.map(&mut ram, va, 0xf_0000_0000, PAGE_SIZE, RW).unwrap(),
                _ => pt.map(&mut ram, va, pa, PAGE_SIZE, RW).unwrap(),
            }
        }
        let vm = pt.vm();
        let by_pages = |ram: &mut Ram, va: u64, len: u64, access: Access| {
            let mut at = va;
            let mut out = Vec::new();
            while at < va + len {
                let pa = vm.translate(ram, at, access)?;
                let n = (PAGE_SIZE - (at & (PAGE_SIZE - 1))).min(va + len - at);
                out.push((at, pa, n));
                at += n;
            }
            Ok::<_, Fault>(out)
        };
        for _ in 0..4000 {
            let va = base + next() % (pages * PAGE_SIZE);
            let len = 1 + next() % (8 * PAGE_SIZE);
            let access = if next() % 2 == 0 {
                Access::Read
            } else {
                Access::Write
            };
            let mut walked = Vec::new();
            let got = vm
                .walk(&mut ram, va, len, access, |p| {
                    walked.push((p.va, p.pa, p.len as u64))
                })
                .map(|()| walked);
            assert_eq!(got, by_pages(&mut ram, va, len, access), "{va:#x}+{len:#x}");
        }
        // A level-1 entry pointing outside RAM faults at the first byte it maps, as a walk of
        // the table it leads to would.
        let l1 = read_entry(&mut ram, pt.root(), base, 0).unwrap() & PTE_ADDR_MASK;
        let slot = l1 + table_index(0x20_0000, 1) * PTE_SIZE;
        poke(&mut ram, slot, &(0xf_0000_0000 | PTE_VALID).to_le_bytes());
        let mut buf = vec![0u8; 0x2000];
        for (va, len) in [(0x20_0000 - 0x10, 0x20), (0x20_0000 - 0x3000, 0x4000)] {
            let mut walked = Vec::new();
            let got = vm
                .walk(&mut ram, va, len, Access::Read, |p| {
                    walked.push((p.va, p.pa, p.len as u64))
                })
                .map(|()| walked);
            assert_eq!(got, by_pages(&mut ram, va, len, Access::Read));
        }
        assert_eq!(
            vm.read(&mut ram, 0x20_0000, &mut buf),
            Err(Fault::unmapped(0x20_0000))
        );
        // Pages that follow each other on the bus are accessed at once; when the bus refuses
        // the second, the fault still names it, and a write has changed the first page only.
        let end = RAM_BASE + RAM_SIZE as u64;
        pt.map(&mut ram, 0x4000_0000, end - PAGE_SIZE, 2 * PAGE_SIZE, RW)
            .unwrap();
        let vm = pt.vm();
        let mut buf = [0u8; 16];
        assert_eq!(
            vm.read(&mut ram, 0x4000_0ff8, &mut buf),
            Err(Fault::unmapped(0x4000_1000))
        );
        assert_eq!(
            vm.write(&mut ram, 0x4000_0ff8, &[0xa5; 16]),
            Err(Fault::unmapped(0x4000_1000))
        );
        assert_eq!(byte_at(&ram, end - 8), 0xa5);
    }

    #[test]
    fn zero_length_accesses_touch_nothing() {
        // Every table access would be refused: the root is outside RAM.
        let mut ram = Ram::new(RAM_BASE, RAM_SIZE);
        let vm = Vm::new(0);
        for va in [0, 0x1000, VA_LIMIT, u64::MAX] {
            assert_eq!(vm.read(&mut ram, va, &mut []), Ok(()));
            assert_eq!(vm.write(&mut ram, va, &[]), Ok(()));
            assert_eq!(vm.check(&mut ram, va, 0, Access::Write), Ok(()));
        }
        assert_eq!(ram.refused, 0);
    }

    #[test]
    fn builder_reuses_tables_and_unmaps() {
        let (mut ram, mut pt) = setup();
        assert_eq!(pt.next_free(), RAM_BASE + PAGE_SIZE);
        // Two pages in one L2 table: root + L1 + L2.
        pt.map(&mut ram, 0x1000, DATA, 0x2000, RW).unwrap();
        assert_eq!(pt.next_free(), RAM_BASE + 3 * PAGE_SIZE);
        // A range crossing into the next 2 MiB region: one more L2 table.
        pt.map(&mut ram, 0x1f_f000, DATA, 0x1001, PTE_READ).unwrap();
        assert_eq!(pt.next_free(), RAM_BASE + 4 * PAGE_SIZE);
        let vm = pt.vm();
        assert_eq!(
            vm.translate(&mut ram, 0x20_0fff, Access::Read),
            Ok(DATA + 0x1fff)
        );
        // Unaligned arguments cover whole pages.
        pt.unmap(&mut ram, 0x1ffe, 2).unwrap();
        assert_eq!(
            vm.translate(&mut ram, 0x1000, Access::Read),
            Err(Fault::unmapped(0x1000))
        );
        assert_eq!(
            vm.translate(&mut ram, 0x2000, Access::Read),
            Ok(DATA + 0x1000)
        );
        assert_eq!(
            pt.map(&mut ram, VA_LIMIT - 0x1000, DATA, 0x1001, RW),
            Err(MapError::OutOfRange(VA_LIMIT - 0x1000))
        );
        assert_eq!(
            pt.map(&mut ram, u64::MAX, DATA, 2, RW),
            Err(MapError::OutOfRange(u64::MAX))
        );
        // Table area outside RAM.
        assert_eq!(
            PageTableBuilder::new(&mut ram, 0x1000),
            Err(MapError::Bus(BusError { address: 0x1000 }))
        );
        // Unaligned start rounds up.
        let pt = PageTableBuilder::new(&mut ram, RAM_BASE + 0x8001).unwrap();
        assert_eq!(pt.root(), RAM_BASE + 0x9000);
    }
}
