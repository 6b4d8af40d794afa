// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The machine's vagx GPUs, for jobs that wait for jobs of another GPU.
//!
//! Every bound GPU is in one module-wide [`Registry`]. A submit whose wait fence is the
//! finished fence of a recent job of another GPU looks that job up there ([`find_producer`]);
//! if both GPUs are on the peer fabric (ABI 1.4, `FABRIC` register), the consumer is ordered
//! after the producer by a *peer wait entry* ([`crate::hwwait`]): the scheduler waits only for
//! the producer's scheduled fence, and the consumer's firmware starts it when the producer's
//! entry completes on the other GPU, with no interrupt, fence callback or doorbell of the host
//! in between. Anything else (an older firmware, a GPU off the fabric, an old producer) is
//! waited for on the CPU as before.
//!
//! # Lifetime
//!
//! A consumer holds the producer's work queue ([`crate::hwqueue::HwQueue`]), which keeps its
//! stamp slot from being reused, as for a same-device wait. The producer's GPU may still go
//! away: if it is unbound, reset or crashes, its firmware's epoch ends, the consumer's
//! firmware fails the wait (`DEP_CAUSE_PEER`), and the consumer takes the producer's error
//! (`ENODEV` for a lost GPU) from the producer's finished fence, which the scheduler completes
//! the consumer after.

use core::sync::atomic::Ordering::Relaxed;

use kernel::{
    dma_fence::Fence,
    prelude::*,
    sync::{
        registry::Registry,
        Arc, //
    },
};

use crate::{
    abi::regs::FABRIC_PORTS,
    gpu::Gpu,
    hwqueue::HwQueue,
    hwwait::Producer, //
};

/// As many GPUs as the fabric has ports; a GPU beyond them is not registered, and its jobs are
/// waited for on the CPU.
// CAST: 32.
static GPUS: Registry<Gpu, { FABRIC_PORTS as usize }> = Registry::new();

/// Makes `gpu`'s jobs findable by the other GPUs.
pub(crate) fn register(gpu: &Arc<Gpu>) {
    if GPUS.add(gpu.clone()).is_err() {
        dev_info!(
            gpu.dev(),
            "more GPUs than fabric ports: waits on this one's jobs stay on the CPU\n"
        );
    }
}

/// Forgets `gpu` (when it is unbound).
pub(crate) fn unregister(gpu: &Gpu) {
    // Dropped outside the registry's lock.
    drop(GPUS.remove(gpu));
}

/// The job behind `fence` if it is a recent job of a GPU other than `consumer` and `consumer`'s
/// firmware can wait for it there (`queue` is the consumer's work queue).
pub(crate) fn find_producer(consumer: &Gpu, queue: &HwQueue, fence: &Fence) -> Option<Producer> {
    let on_fabric = consumer.fw.abi().has_peer_waits() && consumer.fw.fabric().is_some();
    if !on_fabric || !consumer.peer_waits_on.load(Relaxed) {
        return None;
    }
    GPUS.find_map(|gpu| {
        if core::ptr::eq::<Gpu>(&**gpu, consumer) || gpu.is_lost() {
            return None;
        }
        gpu.find_producer(fence, queue, true)
    })
}
