// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The device's load, as a load balancer in userspace reads it (`DRM_VAGX_DEVICE_QUERY`,
//! `DRM_VAGX_QUERY_LOAD`): busy time per unit and per pipe from the firmware's own counters
//! ([`crate::busy`]), and the driver's count of the work it holds for the device: queues,
//! queues with jobs on the device, jobs on the device, jobs not yet retired.

use core::sync::atomic::Ordering::Relaxed;

use kernel::{prelude::*, sync::Arc, uaccess::UserSliceWriter};

use crate::{
    abi::{self, MAX_UNITS},
    busy::Totals,
    gpu::Gpu,
    uapi,
};

/// Size of `struct drm_vagx_device_load`, as [`write`] writes it field by field.
pub(crate) const LOAD_SIZE: usize = size_of::<kernel::uapi::drm_vagx_device_load>();
kernel::static_assert!(LOAD_SIZE == 8 + 4 + 4 + 8 * MAX_UNITS + 8 * uapi::NUM_PIPES + 4 * 4 + 8);
kernel::static_assert!(MAX_UNITS == uapi::MAX_UNITS);

/// A job not yet retired: counted in [`Gpu::pending_jobs`] from its creation at `SUBMIT` to
/// its free.
pub(crate) struct PendingJob(Arc<Gpu>);

impl PendingJob {
    pub(crate) fn new(gpu: &Arc<Gpu>) -> Self {
        gpu.pending_jobs.fetch_add(1, Relaxed);
        Self(gpu.clone())
    }
}

impl Drop for PendingJob {
    fn drop(&mut self) {
        self.0.pending_jobs.fetch_sub(1, Relaxed);
    }
}

/// The device's load: what `DRM_VAGX_QUERY_LOAD` reports.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Load {
    pub(crate) busy: Totals,
    pub(crate) units: u32,
    pub(crate) queues: u32,
    pub(crate) running_queues: u32,
    pub(crate) device_jobs: u32,
    pub(crate) pending_jobs: u64,
}

impl Load {
    /// Fresh figures of `gpu`. Sleeps (a device-control round trip).
    pub(crate) fn of(gpu: &Gpu) -> Result<Self> {
        if gpu.is_lost() {
            return Err(ENODEV);
        }
        let mut load = Self {
            busy: gpu.busy_totals()?,
            units: gpu.units,
            pending_jobs: gpu.pending_jobs.load(Relaxed),
            ..Self::default()
        };
        gpu.each_slot(|hw| {
            let on_device = u32::try_from(hw.in_flight()).unwrap_or(u32::MAX);
            load.queues += 1;
            load.running_queues += u32::from(on_device > 0);
            load.device_jobs = load.device_jobs.saturating_add(on_device);
        });
        Ok(load)
    }

    /// Busy time per UAPI pipe: the firmware's pipes of that type, every priority.
    fn pipe_busy_ns(&self) -> [u64; uapi::NUM_PIPES] {
        let mut out = [0u64; uapi::NUM_PIPES];
        for prio in 0..abi::NUM_PRIORITIES {
            // CAST: below NUM_PRIORITIES.
            let prio = prio as u32;
            for (ty, pipe) in [
                (abi::PipeType::Compute, uapi::PIPE_COMPUTE),
                (abi::PipeType::Copy, uapi::PIPE_COPY),
            ] {
                let busy = self.busy.pipes[abi::pipe_index(ty, prio)].busy_ns;
                if let Some(total) = out.get_mut(pipe as usize) {
                    *total = total.saturating_add(busy);
                }
            }
        }
        out
    }

    /// Writes `struct drm_vagx_device_load`, field by field in its order.
    pub(crate) fn write(&self, w: &mut UserSliceWriter) -> Result {
        w.write(&self.busy.time_ns)?;
        w.write(&self.units)?;
        let flags = if self.busy.units.is_some() {
            uapi::LOAD_UNIT_BUSY
        } else {
            0
        };
        w.write(&flags)?;
        for i in 0..MAX_UNITS {
            let busy = self.busy.units.map_or(0, |u| u[i].busy_ns);
            w.write(&busy)?;
        }
        for busy in self.pipe_busy_ns() {
            w.write(&busy)?;
        }
        w.write(&self.queues)?;
        w.write(&self.running_queues)?;
        w.write(&self.device_jobs)?;
        w.write(&0u32)?;
        w.write(&self.pending_jobs)
    }
}
