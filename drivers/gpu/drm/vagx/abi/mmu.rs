// SPDX-License-Identifier: GPL-2.0 OR MIT

//! GPU virtual memory: the page-table format the device walks.
//!
//! A VM maps a 39-bit GPU virtual address space with 4 KiB pages through three levels of
//! tables, each a 4 KiB page of 512 little-endian `u64` entries in guest memory:
//!
//! ```text
//!  38        30 29        21 20        12 11          0
//! +------------+------------+------------+-------------+
//! |  L0 index  |  L1 index  |  L2 index  | page offset |
//! +------------+------------+------------+-------------+
//! ```
//!
//! L0 and L1 entries point to the next table; L2 entries map a page. An entry is used only if
//! [`PTE_VALID`] is set; bits 51:12 hold the bus address of the table or page. L2 entries carry
//! [`PTE_READ`] and [`PTE_WRITE`]; table entries ignore them. Addresses at or above
//! [`VA_LIMIT`] are never mapped.

/// Page size.
pub const PAGE_SIZE: u64 = 4096;
/// Entries per table.
pub const ENTRIES_PER_TABLE: u64 = 512;
/// Levels of tables.
pub const LEVELS: u32 = 3;
/// One past the highest GPU virtual address (2^39).
pub const VA_LIMIT: u64 = 1 << 39;

/// The entry is valid.
pub const PTE_VALID: u64 = 1 << 0;
/// The page may be read (L2 only).
pub const PTE_READ: u64 = 1 << 1;
/// The page may be written (L2 only).
pub const PTE_WRITE: u64 = 1 << 2;
/// Bits of an entry holding the bus address.
pub const PTE_ADDR_MASK: u64 = ((1 << 52) - 1) & !(PAGE_SIZE - 1);

/// Index into the table at `level` (0 to 2) for `va`.
pub const fn table_index(va: u64, level: u32) -> u64 {
    (va >> (30 - 9 * level)) & (ENTRIES_PER_TABLE - 1)
}
