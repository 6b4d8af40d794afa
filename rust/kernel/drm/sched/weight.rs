// SPDX-License-Identifier: GPL-2.0

//! Entity weights: an entity's share of GPU time under FAIR. Plain Rust: the policies and
//! their host tests use it.
//!
//! The range and the default are those of the DRM cgroup proposal's `drm.weight` (and of
//! cgroup v2's `cpu.weight`): 1 to 10000, 100 by default. Two busy entities of one priority
//! get GPU time in the ratio of their weights; priority and weight multiply (a Normal entity
//! of weight 800 and a Low one of weight 100 share 64:1, see the FAIR policy). RR and FIFO
//! ignore weights.

/// An entity's weight, within [`Weight::MIN`]..=[`Weight::MAX`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Weight(u16);

impl Weight {
    /// The smallest weight.
    pub const MIN: u32 = 1;
    /// The largest weight.
    pub const MAX: u32 = 10_000;
    /// The weight of an entity nobody set one for.
    pub const DEFAULT: Weight = Weight(100);

    /// `w` as a weight, or `None` outside `MIN..=MAX`.
    pub const fn new(w: u32) -> Option<Self> {
        if w >= Self::MIN && w <= Self::MAX {
            // CAST: at most 10000.
            Some(Self(w as u16))
        } else {
            None
        }
    }

    /// The weight as a number.
    pub const fn get(self) -> u32 {
        self.0 as u32
    }
}

impl Default for Weight {
    fn default() -> Self {
        Self::DEFAULT
    }
}
