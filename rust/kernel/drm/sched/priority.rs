// SPDX-License-Identifier: GPL-2.0

//! Entity priorities. Plain Rust: the policies and their host tests use it.

/// The priority of an entity. Under RR and FIFO a higher priority always goes first; under
/// FAIR it weighs the GPU time an entity is charged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Priority {
    /// The kernel's own work (never banned).
    Kernel = 0,
    /// High priority.
    High = 1,
    /// Normal priority.
    Normal = 2,
    /// Low priority.
    Low = 3,
}

impl Priority {
    /// All priorities, highest first.
    pub const ALL: [Priority; 4] = [Self::Kernel, Self::High, Self::Normal, Self::Low];

    /// The number of priorities.
    pub const COUNT: usize = Self::ALL.len();

    /// The priority's index in [`Self::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}
