// SPDX-License-Identifier: GPL-2.0

//! The parts of `kernel::drm::sched` that use no kernel type, compiled from the kernel overlay's
//! own files for the host. Their tests live beside them (`policy/tests.rs`).

#![allow(dead_code)]

#[path = "../../../rust/kernel/drm/sched/priority.rs"]
mod priority;

#[path = "../../../rust/kernel/drm/sched/weight.rs"]
mod weight;

#[path = "../../../rust/kernel/drm/sched/wait_histogram.rs"]
mod wait_histogram;

#[path = "../../../rust/kernel/drm/sched/policy/mod.rs"]
mod policy;

use priority::Priority;
use wait_histogram::WaitHistogram;
use weight::Weight;
