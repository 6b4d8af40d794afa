/* SPDX-License-Identifier: MIT */
/*
 * vagx: the userspace interface of the vagx virtual GPU driver.
 *
 * Objects a client (an open DRM file) works with:
 *
 * - GEM buffer objects, shmem-backed, mapped into the CPU with mmap() at the offset
 *   DRM_IOCTL_VAGX_GEM_MMAP_OFFSET returns;
 * - GPU VMs: private GPU address spaces. A buffer is reachable by the GPU only through a
 *   range of a VM it is bound into (DRM_IOCTL_VAGX_VM_BIND); the driver builds the device's
 *   page tables, so a job cannot touch memory its VM does not map;
 * - queues: ordered job streams at a priority, each running in one VM. A job is a command
 *   buffer (in the queue's VM, in the format of Documentation/gpu/vagx-firmware.rst),
 *   submitted with DRM_IOCTL_VAGX_SUBMIT, waiting for and signalling syncobjs (binary or
 *   timeline, DRM_IOCTL_SYNCOBJ_*).
 *
 * Rules that hold for every ioctl:
 *
 * - every pad, reserved and unused field must be zero and every flag unknown to the kernel
 *   unset, or the ioctl fails with EINVAL (so that they can be given meaning later);
 * - handles and ids are per file: another client's are ENOENT;
 * - sizes and ranges that overflow are EINVAL; user pointers that fault are EFAULT;
 * - "out" fields are written only on success.
 *
 * A job's outcome is the error of the fences it signals: 0, ETIMEDOUT (it hung and was
 * stopped), EIO (the device faulted on it), ECANCELED (its queue was destroyed, banned or its
 * file closed first), ENODEV (the device was lost or reset while the job ran).
 * DRM_IOCTL_VAGX_QUEUE_GET_STATUS says why and where.
 */

#ifndef _VAGX_DRM_H_
#define _VAGX_DRM_H_

#include "drm.h"

#if defined(__cplusplus)
extern "C" {
#endif

#define DRM_VAGX_GET_PARAM		0x00
#define DRM_VAGX_GEM_CREATE		0x01
#define DRM_VAGX_GEM_MMAP_OFFSET	0x02
#define DRM_VAGX_VM_CREATE		0x03
#define DRM_VAGX_VM_DESTROY		0x04
#define DRM_VAGX_VM_BIND		0x05
#define DRM_VAGX_QUEUE_CREATE		0x06
#define DRM_VAGX_QUEUE_DESTROY		0x07
#define DRM_VAGX_SUBMIT			0x08
#define DRM_VAGX_QUEUE_GET_STATUS	0x09
#define DRM_VAGX_DEVICE_QUERY		0x0a
#define DRM_VAGX_QUEUE_SET_PARAM	0x0b

/**
 * enum drm_vagx_param - what DRM_IOCTL_VAGX_GET_PARAM reports.
 */
enum drm_vagx_param {
	/**
	 * @DRM_VAGX_PARAM_ABI_VERSION: firmware ABI in use, major << 16 | minor: the
	 * newest version both the driver and the device speak.
	 */
	DRM_VAGX_PARAM_ABI_VERSION = 0,
	/** @DRM_VAGX_PARAM_UNITS: execution units of the device. */
	DRM_VAGX_PARAM_UNITS = 1,
	/** @DRM_VAGX_PARAM_VA_BITS: width of a GPU VM's address space, in bits. */
	DRM_VAGX_PARAM_VA_BITS = 2,
	/**
	 * @DRM_VAGX_PARAM_SCHED_MODE: how queues are scheduled, an enum drm_vagx_sched_mode
	 * (the driver's module parameter).
	 */
	DRM_VAGX_PARAM_SCHED_MODE = 3,
	/** @DRM_VAGX_PARAM_MAX_QUEUES: queues the device runs at once. */
	DRM_VAGX_PARAM_MAX_QUEUES = 4,
	/** @DRM_VAGX_PARAM_MAX_CMDBUF_SIZE: largest command buffer of a job, in bytes. */
	DRM_VAGX_PARAM_MAX_CMDBUF_SIZE = 5,
	/**
	 * @DRM_VAGX_PARAM_MAX_QUEUES_PER_FILE: queues one open file may hold at once;
	 * QUEUE_CREATE beyond it is ENOSPC (EBUSY means the device has none left).
	 */
	DRM_VAGX_PARAM_MAX_QUEUES_PER_FILE = 6,
	/**
	 * @DRM_VAGX_PARAM_MAX_VMS_PER_FILE: VMs one open file may hold at once; VM_CREATE
	 * beyond it is ENOSPC (EBUSY means the device has none left).
	 */
	DRM_VAGX_PARAM_MAX_VMS_PER_FILE = 7,
};

/**
 * enum drm_vagx_sched_mode - who orders jobs of different queues.
 */
enum drm_vagx_sched_mode {
	/**
	 * @DRM_VAGX_SCHED_KERNEL: the kernel's scheduler orders jobs of all queues onto one
	 * hardware ring per priority.
	 */
	DRM_VAGX_SCHED_KERNEL = 0,
	/**
	 * @DRM_VAGX_SCHED_FIRMWARE: each queue has its own firmware work queue; the device's
	 * firmware arbitrates between them by priority.
	 */
	DRM_VAGX_SCHED_FIRMWARE = 1,
};

/**
 * struct drm_vagx_get_param - argument of DRM_IOCTL_VAGX_GET_PARAM.
 */
struct drm_vagx_get_param {
	/** @param: an enum drm_vagx_param; others are EINVAL. */
	__u32 param;
	/** @pad: must be zero. */
	__u32 pad;
	/** @value: out: the value. */
	__u64 value;
};

/**
 * struct drm_vagx_gem_create - argument of DRM_IOCTL_VAGX_GEM_CREATE.
 *
 * Creates a zeroed, shmem-backed buffer object.
 */
struct drm_vagx_gem_create {
	/** @size: in bytes; rounded up to the page size; 0 is EINVAL. */
	__u64 size;
	/** @flags: must be zero. */
	__u32 flags;
	/** @handle: out: the object's handle in this file. */
	__u32 handle;
};

/**
 * struct drm_vagx_gem_mmap_offset - argument of DRM_IOCTL_VAGX_GEM_MMAP_OFFSET.
 */
struct drm_vagx_gem_mmap_offset {
	/** @handle: the object. */
	__u32 handle;
	/** @flags: must be zero. */
	__u32 flags;
	/** @offset: out: the offset to pass to mmap() on the DRM file. */
	__u64 offset;
};

/**
 * struct drm_vagx_vm_create - argument of DRM_IOCTL_VAGX_VM_CREATE.
 */
struct drm_vagx_vm_create {
	/** @flags: must be zero. */
	__u32 flags;
	/** @vm_id: out: the VM's id in this file (never 0). */
	__u32 vm_id;
};

/**
 * struct drm_vagx_vm_destroy - argument of DRM_IOCTL_VAGX_VM_DESTROY.
 *
 * EBUSY while a queue uses the VM. Its mappings go with it.
 */
struct drm_vagx_vm_destroy {
	/** @vm_id: the VM. */
	__u32 vm_id;
	/** @pad: must be zero. */
	__u32 pad;
};

/** Map a range of a buffer object into a VM. */
#define DRM_VAGX_VM_BIND_OP_MAP		0
/** Unmap a range of a VM (whatever it maps; unmapped parts are fine). */
#define DRM_VAGX_VM_BIND_OP_UNMAP	1

/** The mapping may be read by the GPU. */
#define DRM_VAGX_VM_BIND_READ		(1 << 0)
/** The mapping may be written by the GPU. */
#define DRM_VAGX_VM_BIND_WRITE		(1 << 1)

/**
 * struct drm_vagx_vm_bind - argument of DRM_IOCTL_VAGX_VM_BIND.
 *
 * Changes a VM's mappings at once (synchronously): jobs submitted afterwards see them. Every
 * address, offset and length is a multiple of the page size (4096). Mapping over a range that
 * is already mapped is EEXIST; unmap it first.
 */
struct drm_vagx_vm_bind {
	/** @vm_id: the VM. */
	__u32 vm_id;
	/** @op: DRM_VAGX_VM_BIND_OP_MAP or DRM_VAGX_VM_BIND_OP_UNMAP. */
	__u32 op;
	/** @handle: MAP: the buffer object; UNMAP: must be zero. */
	__u32 handle;
	/** @flags: MAP: DRM_VAGX_VM_BIND_READ and/or _WRITE (at least one); UNMAP: zero. */
	__u32 flags;
	/** @bo_offset: MAP: where in the object the range starts; UNMAP: zero. */
	__u64 bo_offset;
	/** @va: the GPU address of the range, below 1 << DRM_VAGX_PARAM_VA_BITS. */
	__u64 va;
	/** @range: the length of the range; 0 is EINVAL. */
	__u64 range;
};

/**
 * enum drm_vagx_priority - the priority of a queue.
 *
 * DRM_VAGX_PRIORITY_HIGH needs CAP_SYS_NICE (EACCES otherwise), as other DRM drivers' high
 * priorities do.
 */
enum drm_vagx_priority {
	/** @DRM_VAGX_PRIORITY_LOW: background work. */
	DRM_VAGX_PRIORITY_LOW = 0,
	/** @DRM_VAGX_PRIORITY_NORMAL: the default. */
	DRM_VAGX_PRIORITY_NORMAL = 1,
	/** @DRM_VAGX_PRIORITY_HIGH: latency-sensitive work. */
	DRM_VAGX_PRIORITY_HIGH = 2,
};

/** The queue's commands are compute work (the default pipe). */
#define DRM_VAGX_PIPE_COMPUTE		0
/** The queue's commands are copies and fills (the copy pipe; same units, own accounting). */
#define DRM_VAGX_PIPE_COPY		1

/**
 * struct drm_vagx_queue_create - argument of DRM_IOCTL_VAGX_QUEUE_CREATE.
 */
struct drm_vagx_queue_create {
	/** @vm_id: the VM the queue's jobs run in. */
	__u32 vm_id;
	/** @priority: an enum drm_vagx_priority. */
	__u32 priority;
	/** @pipe: DRM_VAGX_PIPE_COMPUTE or DRM_VAGX_PIPE_COPY. */
	__u32 pipe;
	/** @flags: must be zero. */
	__u32 flags;
	/** @queue_id: out: the queue's id in this file (never 0). */
	__u32 queue_id;
	/** @pad: must be zero. */
	__u32 pad;
};

/**
 * struct drm_vagx_queue_destroy - argument of DRM_IOCTL_VAGX_QUEUE_DESTROY.
 *
 * Jobs of the queue that have not completed complete with ECANCELED: at once if they are on
 * the device, after their own waits have signalled if they are still waiting for them (a
 * job's fence never signals before its dependencies). Closing the file does the same to
 * every queue of the file.
 */
struct drm_vagx_queue_destroy {
	/** @queue_id: the queue. */
	__u32 queue_id;
	/** @pad: must be zero. */
	__u32 pad;
};

/** The sync is signalled by the job; without it the job waits for the sync. */
#define DRM_VAGX_SYNC_SIGNAL		(1 << 0)

/**
 * struct drm_vagx_sync - one syncobj a job waits for or signals.
 *
 * A binary syncobj has @point 0. A timeline syncobj has @point > 0: a wait is for that point
 * (it must have been submitted, or the submit fails with EINVAL, as DRM_SYNCOBJ_WAIT without
 * WAIT_FOR_SUBMIT does); a signal adds that point, which must be above the timeline's last
 * point for the timeline to stay ordered (as Vulkan timeline semaphores require).
 */
struct drm_vagx_sync {
	/** @handle: the syncobj. */
	__u32 handle;
	/** @flags: DRM_VAGX_SYNC_SIGNAL or 0 (wait). */
	__u32 flags;
	/** @point: 0 for a binary syncobj, the timeline point otherwise. */
	__u64 point;
};

/*
 * The job does not wait for the fences in the reservations of the shared objects its VM
 * maps (implicit sync); it still adds its own finished fence to them, so other devices and
 * DMA_BUF_IOCTL_EXPORT_SYNC_FILE still see it. For userspace whose explicit syncs already
 * order every access (as MSM_SUBMIT_NO_IMPLICIT): the kernel no longer orders it after
 * other users of those buffers.
 */
#define DRM_VAGX_SUBMIT_NO_IMPLICIT_WAIT	(1 << 0)

/**
 * struct drm_vagx_submit - argument of DRM_IOCTL_VAGX_SUBMIT.
 *
 * Queues one job. It runs after every wait sync has signalled and after the queue's previous
 * jobs; when it completes, every signal sync gets its finished fence (a binary syncobj's fence
 * is replaced, a timeline gets a new point). A wait that signalled with an error fails the job
 * with that error without running it. The submit itself fails (and nothing is queued or
 * signalled) on any invalid argument: EINVAL, ENOENT for an unknown handle or id, ECANCELED
 * for a banned queue, ENODEV once the device is lost.
 */
struct drm_vagx_submit {
	/** @queue_id: the queue. */
	__u32 queue_id;
	/** @flags: 0 or DRM_VAGX_SUBMIT_NO_IMPLICIT_WAIT. */
	__u32 flags;
	/** @cmdbuf: GPU address of the command buffer in the queue's VM, 8-byte aligned. */
	__u64 cmdbuf;
	/** @cmdbuf_size: its length, a non-zero multiple of 8, at most MAX_CMDBUF_SIZE. */
	__u32 cmdbuf_size;
	/** @sync_count: entries of @syncs (at most 64). */
	__u32 sync_count;
	/**
	 * @syncs: user pointer to @sync_count struct drm_vagx_sync: every wait first, then
	 * every signal (a wait after a signal is EINVAL).
	 */
	__u64 syncs;
	/**
	 * @deadline_ns: when the job is wanted done, CLOCK_MONOTONIC nanoseconds (as
	 * clock_gettime gives them); 0 for none. Kernel scheduling mode runs the ready job
	 * of the earliest deadline first among the queues of its priority (bounded so that
	 * other work still runs), and passes the deadline on to the jobs it waits for. A
	 * deadline already past is accepted and is the most urgent; one more than 10 s ahead
	 * is clamped to 10 s from the submit. (This field was reserved, must-be-zero, before.)
	 */
	__u64 deadline_ns;
};

/**
 * enum drm_vagx_queue_state - what DRM_IOCTL_VAGX_QUEUE_GET_STATUS reports.
 */
enum drm_vagx_queue_state {
	/** @DRM_VAGX_QUEUE_OK: nothing went wrong. */
	DRM_VAGX_QUEUE_OK = 0,
	/** @DRM_VAGX_QUEUE_FAULTED: a job faulted (EIO); the queue continues. */
	DRM_VAGX_QUEUE_FAULTED = 1,
	/** @DRM_VAGX_QUEUE_TIMED_OUT: a job hung and was stopped (ETIMEDOUT); the queue continues. */
	DRM_VAGX_QUEUE_TIMED_OUT = 2,
	/** @DRM_VAGX_QUEUE_BANNED: too many hangs or faults; new submits are ECANCELED. */
	DRM_VAGX_QUEUE_BANNED = 3,
	/** @DRM_VAGX_QUEUE_DEVICE_LOST: the device crashed or went away (ENODEV). */
	DRM_VAGX_QUEUE_DEVICE_LOST = 4,
};

/**
 * struct drm_vagx_queue_get_status - argument of DRM_IOCTL_VAGX_QUEUE_GET_STATUS.
 *
 * The queue's state and its last failure, and its statistics since creation. Reading does
 * not clear them. The statistics (from @gpu_time_ns on) were added after the rest: a
 * userspace built with the shorter struct gets the fields it knows (the DRM core copies
 * out only the size the ioctl number names).
 */
struct drm_vagx_queue_get_status {
	/** @queue_id: the queue. */
	__u32 queue_id;
	/** @flags: must be zero. */
	__u32 flags;
	/** @state: out: an enum drm_vagx_queue_state. */
	__u32 state;
	/** @error: out: the last failed job's error as a positive errno, 0 if none. */
	__u32 error;
	/** @fault_address: out: the first faulting GPU address of the last fault. */
	__u64 fault_address;
	/** @fault_kind: out: 1 unmapped, 2 permission, 3 bad command, 4 injected; 0 if none. */
	__u32 fault_kind;
	/** @fault_command: out: index of the faulting command in its command buffer. */
	__u32 fault_command;
	/**
	 * @completed: out: jobs of the queue that ran on the device and ended, successfully
	 * or not (counted before their fences signal).
	 */
	__u64 completed;
	/** @hangs: out: the queue's timeouts and faults so far. */
	__u32 hangs;
	/** @pad: out: zero. */
	__u32 pad;
	/** @gpu_time_ns: out: device time of the queue's entries, in ns, as the firmware counts. */
	__u64 gpu_time_ns;
	/** @submitted: out: jobs submitted (SUBMIT calls that succeeded). */
	__u64 submitted;
	/**
	 * @failed: out: jobs whose fence signalled an error, whether they ran (a fault, a
	 * hang) or not (a failed wait, a cancelled or banned queue, a lost device).
	 */
	__u64 failed;
	/** @depth: out: jobs submitted and not yet retired (waiting, queued or on the device). */
	__u64 depth;
	/** @wait_count: out: jobs handed to the device, whose waits the next two fields give. */
	__u64 wait_count;
	/**
	 * @wait_avg_ns: out: their mean wait from SUBMIT to the hand-over to the device, in ns,
	 * their own waits (syncobjs, implicit sync) and the queue's order included.
	 */
	__u64 wait_avg_ns;
	/**
	 * @wait_p99_ns: out: an upper bound of the 99th percentile of that wait, in ns: the top
	 * of its power-of-two bucket (from 2 us), at most twice the true value.
	 */
	__u64 wait_p99_ns;
	/**
	 * @deadline_jobs: out: jobs with a deadline (DRM_IOCTL_VAGX_SUBMIT's, or one set on
	 * their fence) that have completed, whatever their outcome.
	 */
	__u64 deadline_jobs;
	/** @deadline_misses: out: those of them that completed after their deadline. */
	__u64 deadline_misses;
};

/** The most execution units a vagx device has (DRM_VAGX_PARAM_UNITS is at most this). */
#define DRM_VAGX_MAX_UNITS		16
/** Number of pipes, indexed by DRM_VAGX_PIPE_*. */
#define DRM_VAGX_NUM_PIPES		2

/** @unit_busy_ns holds the device's own per-unit counts (firmware ABI 1.2 and later). */
#define DRM_VAGX_LOAD_UNIT_BUSY		(1 << 0)

/**
 * struct drm_vagx_device_load - DRM_VAGX_QUERY_LOAD: how busy the device is, what a load
 * balancer in userspace needs to place work.
 *
 * Busy times are the device's own count of the time its units spent executing commands,
 * in device nanoseconds, since the driver bound the device. They never go back: a firmware
 * reboot (crash recovery) carries them over, though work of the crashed firmware after its
 * last report is not counted. Utilisation over an interval is the increase of a busy time
 * divided by the increase of @device_time_ns (times @num_units for a sum over units). The
 * figures are fresh: the query asks the firmware for them, a device-control round trip.
 * The counts of queues and jobs are the driver's, over every client of the device.
 */
struct drm_vagx_device_load {
	/** @device_time_ns: the device clock when the busy times were taken. */
	__u64 device_time_ns;
	/** @num_units: execution units of the device (entries of @unit_busy_ns in use). */
	__u32 num_units;
	/** @flags: DRM_VAGX_LOAD_UNIT_BUSY if @unit_busy_ns is filled, else it is zero. */
	__u32 flags;
	/** @unit_busy_ns: per unit, the time it spent executing commands. */
	__u64 unit_busy_ns[DRM_VAGX_MAX_UNITS];
	/** @pipe_busy_ns: per pipe, the time the commands of its queues took (all priorities). */
	__u64 pipe_busy_ns[DRM_VAGX_NUM_PIPES];
	/** @queues: queues alive on the device. */
	__u32 queues;
	/** @running_queues: queues with jobs on the device. */
	__u32 running_queues;
	/** @device_jobs: jobs on the device: handed to the firmware, not yet completed. */
	__u32 device_jobs;
	/** @pad: zero. */
	__u32 pad;
	/**
	 * @pending_jobs: jobs submitted and not yet retired: waiting for their dependencies,
	 * queued in the kernel's scheduler or on the device (a job is retired shortly after its
	 * fence signals).
	 */
	__u64 pending_jobs;
};

/**
 * enum drm_vagx_query - what DRM_IOCTL_VAGX_DEVICE_QUERY reads.
 */
enum drm_vagx_query {
	/** @DRM_VAGX_QUERY_LOAD: a struct drm_vagx_device_load. */
	DRM_VAGX_QUERY_LOAD = 0,
};

/**
 * struct drm_vagx_device_query - argument of DRM_IOCTL_VAGX_DEVICE_QUERY.
 *
 * Reads device-wide figures into the struct the query names. A @size of 0 asks for the
 * struct's size (written to @size, nothing else done). A @size below it is EINVAL; a larger
 * one (a newer userspace) gets the kernel's struct and its size in @size, the bytes after it
 * untouched. Fails with ENODEV once the device is lost, and with the device-control error
 * while its firmware is down.
 */
struct drm_vagx_device_query {
	/** @query: an enum drm_vagx_query. */
	__u32 query;
	/** @size: in: bytes at @data, or 0; out: the bytes written, or the size needed. */
	__u32 size;
	/** @data: user pointer to the query's struct. */
	__u64 data;
	/** @flags: must be zero. */
	__u32 flags;
	/** @pad: must be zero. */
	__u32 pad;
};

/**
 * enum drm_vagx_queue_param - what DRM_IOCTL_VAGX_QUEUE_SET_PARAM changes.
 */
enum drm_vagx_queue_param {
	/**
	 * @DRM_VAGX_QUEUE_PARAM_WEIGHT: the queue's share of the GPU beside the queues of
	 * its priority, 1 to 10000 (100 at creation; the range of the DRM cgroup proposal's
	 * drm.weight). The kernel's scheduler honours it under its FAIR policy
	 * (vagx_sched.policy=fair): two busy queues of one priority get GPU time in the ratio
	 * of their weights. FIFO and RR order by priority and arrival and ignore it. The
	 * device (firmware ABI 1.6) gives busy queues of one priority its command boundaries
	 * in the ratio of their weights, in both modes. Firmware mode on an older device:
	 * EOPNOTSUPP; kernel mode there keeps the weight to its own policy.
	 */
	DRM_VAGX_QUEUE_PARAM_WEIGHT = 0,
	/**
	 * @DRM_VAGX_QUEUE_PARAM_PRIORITY: the queue's priority, an enum drm_vagx_priority;
	 * raising it to DRM_VAGX_PRIORITY_HIGH needs CAP_SYS_NICE (EACCES), as at creation.
	 * Both scheduling modes honour it: in kernel mode the queue's queued jobs are
	 * picked at the new priority, on that priority's share of the device; the device
	 * itself arbitrates with it from its next command boundary, entries it already has
	 * included. Needs firmware ABI 1.6 (EOPNOTSUPP on an older device).
	 */
	DRM_VAGX_QUEUE_PARAM_PRIORITY = 1,
};

/**
 * struct drm_vagx_queue_set_param - argument of DRM_IOCTL_VAGX_QUEUE_SET_PARAM.
 *
 * Changes one scheduling parameter of a queue at any time, with jobs queued and running:
 * the queue's jobs not yet handed to the device are scheduled with the new value from the
 * scheduler's next pick, in their submission order, and none is lost; what each parameter
 * does to jobs already on the device, it says. An unknown @param or a @value out of its range is EINVAL, a queue that
 * is not this file's (or was destroyed) ENOENT.
 */
struct drm_vagx_queue_set_param {
	/** @queue_id: the queue. */
	__u32 queue_id;
	/** @param: an enum drm_vagx_queue_param. */
	__u32 param;
	/** @value: the new value. */
	__u64 value;
};

/*
 * Ioctl numbers, as an enum so that bindings generators see them (the values do not fit
 * in an int; compilers give such an enum an unsigned type).
 */
enum {
	DRM_IOCTL_VAGX_GET_PARAM =
		DRM_IOWR(DRM_COMMAND_BASE + DRM_VAGX_GET_PARAM, struct drm_vagx_get_param),
	DRM_IOCTL_VAGX_GEM_CREATE =
		DRM_IOWR(DRM_COMMAND_BASE + DRM_VAGX_GEM_CREATE, struct drm_vagx_gem_create),
	DRM_IOCTL_VAGX_GEM_MMAP_OFFSET =
		DRM_IOWR(DRM_COMMAND_BASE + DRM_VAGX_GEM_MMAP_OFFSET, struct drm_vagx_gem_mmap_offset),
	DRM_IOCTL_VAGX_VM_CREATE =
		DRM_IOWR(DRM_COMMAND_BASE + DRM_VAGX_VM_CREATE, struct drm_vagx_vm_create),
	DRM_IOCTL_VAGX_VM_DESTROY =
		DRM_IOW(DRM_COMMAND_BASE + DRM_VAGX_VM_DESTROY, struct drm_vagx_vm_destroy),
	DRM_IOCTL_VAGX_VM_BIND =
		DRM_IOW(DRM_COMMAND_BASE + DRM_VAGX_VM_BIND, struct drm_vagx_vm_bind),
	DRM_IOCTL_VAGX_QUEUE_CREATE =
		DRM_IOWR(DRM_COMMAND_BASE + DRM_VAGX_QUEUE_CREATE, struct drm_vagx_queue_create),
	DRM_IOCTL_VAGX_QUEUE_DESTROY =
		DRM_IOW(DRM_COMMAND_BASE + DRM_VAGX_QUEUE_DESTROY, struct drm_vagx_queue_destroy),
	DRM_IOCTL_VAGX_SUBMIT =
		DRM_IOW(DRM_COMMAND_BASE + DRM_VAGX_SUBMIT, struct drm_vagx_submit),
	DRM_IOCTL_VAGX_QUEUE_GET_STATUS =
		DRM_IOWR(DRM_COMMAND_BASE + DRM_VAGX_QUEUE_GET_STATUS, struct drm_vagx_queue_get_status),
	DRM_IOCTL_VAGX_DEVICE_QUERY =
		DRM_IOWR(DRM_COMMAND_BASE + DRM_VAGX_DEVICE_QUERY, struct drm_vagx_device_query),
	DRM_IOCTL_VAGX_QUEUE_SET_PARAM =
		DRM_IOW(DRM_COMMAND_BASE + DRM_VAGX_QUEUE_SET_PARAM, struct drm_vagx_queue_set_param),
};

#if defined(__cplusplus)
}
#endif

#endif /* _VAGX_DRM_H_ */
