/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The C side of the Rust GPU scheduler (kernel::drm::sched): what Rust reads from it.
 */
#ifndef _RUST_DRM_SCHED_GLUE_H
#define _RUST_DRM_SCHED_GLUE_H

#include <linux/atomic.h>

/* The policy new schedulers get unless their driver chooses: 0 = RR, 1 = FIFO, 2 = FAIR. */
int vagx_sched_default_policy(void);

/*
 * Event counters for the scheduler's KUnit test of its own tracepoints: probes on every
 * vagx_sched event count into them between start and stop.
 */
enum vagx_sched_event {
	VAGX_SCHED_EV_QUEUE,
	VAGX_SCHED_EV_ADD_DEP,
	VAGX_SCHED_EV_UNSCHEDULABLE,
	VAGX_SCHED_EV_RUN,
	VAGX_SCHED_EV_DONE,
	VAGX_SCHED_EV_TIMEOUT,
	VAGX_SCHED_EV_COUNT,
};

struct vagx_sched_trace_counts {
	atomic_t n[VAGX_SCHED_EV_COUNT];
	/* The error of the last vagx_sched_job_done event. */
	atomic_t last_done_error;
};

int vagx_sched_trace_count_start(struct vagx_sched_trace_counts *c);
void vagx_sched_trace_count_stop(struct vagx_sched_trace_counts *c);
int vagx_sched_trace_count(struct vagx_sched_trace_counts *c, unsigned int event);
int vagx_sched_trace_last_error(struct vagx_sched_trace_counts *c);

#endif /* _RUST_DRM_SCHED_GLUE_H */
