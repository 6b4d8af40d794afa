/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Tracepoints of the Rust GPU scheduler (rust/kernel/drm/sched/). Jobs are named by their
 * finished fence (context:seqno), as drm_sched's gpu_scheduler events name them, so a job can
 * be followed from queue to done and matched with the fences userspace waits on.
 */

#undef TRACE_SYSTEM
#define TRACE_SYSTEM vagx_sched

#if !defined(_TRACE_VAGX_SCHED_H) || defined(TRACE_HEADER_MULTI_READ)
#define _TRACE_VAGX_SCHED_H

#include <linux/tracepoint.h>
#include <linux/types.h>

/* A job was pushed onto its entity's queue. */
TRACE_EVENT(vagx_sched_job_queue,
	TP_PROTO(const char *name, u64 entity, u64 ctx, u64 seqno, u32 credits, u32 queued),
	TP_ARGS(name, entity, ctx, seqno, credits, queued),
	TP_STRUCT__entry(
		__string(name, name)
		__field(u64, entity)
		__field(u64, ctx)
		__field(u64, seqno)
		__field(u32, credits)
		__field(u32, queued)
	),
	TP_fast_assign(
		__assign_str(name);
		__entry->entity = entity;
		__entry->ctx = ctx;
		__entry->seqno = seqno;
		__entry->credits = credits;
		__entry->queued = queued;
	),
	TP_printk("sched=%s entity=%llu fence=%llu:%llu credits=%u queued=%u",
		  __get_str(name), __entry->entity, __entry->ctx, __entry->seqno,
		  __entry->credits, __entry->queued)
);

/* A job and a fence it waits for. */
DECLARE_EVENT_CLASS(vagx_sched_job_dep,
	TP_PROTO(u64 ctx, u64 seqno, u64 dep_ctx, u64 dep_seqno),
	TP_ARGS(ctx, seqno, dep_ctx, dep_seqno),
	TP_STRUCT__entry(
		__field(u64, ctx)
		__field(u64, seqno)
		__field(u64, dep_ctx)
		__field(u64, dep_seqno)
	),
	TP_fast_assign(
		__entry->ctx = ctx;
		__entry->seqno = seqno;
		__entry->dep_ctx = dep_ctx;
		__entry->dep_seqno = dep_seqno;
	),
	TP_printk("fence=%llu:%llu dep=%llu:%llu",
		  __entry->ctx, __entry->seqno, __entry->dep_ctx, __entry->dep_seqno)
);

/* A pushed job waits for a fence (after deduplication and pipelining). */
DEFINE_EVENT(vagx_sched_job_dep, vagx_sched_job_add_dep,
	TP_PROTO(u64 ctx, u64 seqno, u64 dep_ctx, u64 dep_seqno),
	TP_ARGS(ctx, seqno, dep_ctx, dep_seqno)
);

/* The head job of an entity cannot run yet: a wake-up was registered on this fence. */
DEFINE_EVENT(vagx_sched_job_dep, vagx_sched_job_unschedulable,
	TP_PROTO(u64 ctx, u64 seqno, u64 dep_ctx, u64 dep_seqno),
	TP_ARGS(ctx, seqno, dep_ctx, dep_seqno)
);

/* A job was handed to the backend. */
TRACE_EVENT(vagx_sched_job_run,
	TP_PROTO(const char *name, u64 entity, u64 ctx, u64 seqno, u32 credits, u32 credits_used),
	TP_ARGS(name, entity, ctx, seqno, credits, credits_used),
	TP_STRUCT__entry(
		__string(name, name)
		__field(u64, entity)
		__field(u64, ctx)
		__field(u64, seqno)
		__field(u32, credits)
		__field(u32, credits_used)
	),
	TP_fast_assign(
		__assign_str(name);
		__entry->entity = entity;
		__entry->ctx = ctx;
		__entry->seqno = seqno;
		__entry->credits = credits;
		__entry->credits_used = credits_used;
	),
	TP_printk("sched=%s entity=%llu fence=%llu:%llu credits=%u credits_used=%u",
		  __get_str(name), __entry->entity, __entry->ctx, __entry->seqno,
		  __entry->credits, __entry->credits_used)
);

/* A job completed (error is 0 or a negative errno; gpu_ns is 0 if it never ran). */
TRACE_EVENT(vagx_sched_job_done,
	TP_PROTO(u64 ctx, u64 seqno, int error, u64 gpu_ns),
	TP_ARGS(ctx, seqno, error, gpu_ns),
	TP_STRUCT__entry(
		__field(u64, ctx)
		__field(u64, seqno)
		__field(int, error)
		__field(u64, gpu_ns)
	),
	TP_fast_assign(
		__entry->ctx = ctx;
		__entry->seqno = seqno;
		__entry->error = error;
		__entry->gpu_ns = gpu_ns;
	),
	TP_printk("fence=%llu:%llu error=%d gpu_ns=%llu",
		  __entry->ctx, __entry->seqno, __entry->error, __entry->gpu_ns)
);

/* The job at the head of the hardware timed out; status is the backend's answer
 * (0 = reset, 1 = no hang, 2 = no device). */
TRACE_EVENT(vagx_sched_job_timeout,
	TP_PROTO(const char *name, u64 ctx, u64 seqno, int status),
	TP_ARGS(name, ctx, seqno, status),
	TP_STRUCT__entry(
		__string(name, name)
		__field(u64, ctx)
		__field(u64, seqno)
		__field(int, status)
	),
	TP_fast_assign(
		__assign_str(name);
		__entry->ctx = ctx;
		__entry->seqno = seqno;
		__entry->status = status;
	),
	TP_printk("sched=%s fence=%llu:%llu status=%s", __get_str(name),
		  __entry->ctx, __entry->seqno,
		  __print_symbolic(__entry->status, { 0, "reset" }, { 1, "no-hang" },
				   { 2, "no-device" }))
);

#endif /* _TRACE_VAGX_SCHED_H */

/* This part must be outside protection */
#include <trace/define_trace.h>
