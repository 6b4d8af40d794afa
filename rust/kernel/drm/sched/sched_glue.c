// SPDX-License-Identifier: GPL-2.0
/*
 * The C side of the Rust GPU scheduler (kernel::drm::sched): its tracepoints, which must be
 * created in C, and its one parameter. The scheduler is built into the kernel, so the
 * parameter is `vagx_sched.policy=` on the command line and
 * /sys/module/vagx_sched/parameters/policy at run time.
 */

#include <linux/export.h>
#include <linux/moduleparam.h>
#include <linux/string.h>
#include <linux/sysfs.h>

#include "sched_glue.h"

#define CREATE_TRACE_POINTS
#define CREATE_RUST_TRACE_POINTS
#include <trace/events/vagx_sched.h>

/*
 * The scheduler is generic over the driver's backend, so its code (and its tracepoint calls)
 * is instantiated in the driver's module: export what that code calls.
 */
#define EXPORT_RUST_TRACEPOINT(name)			\
	EXPORT_TRACEPOINT_SYMBOL_GPL(name);		\
	EXPORT_SYMBOL_GPL(rust_do_trace_##name)

EXPORT_RUST_TRACEPOINT(vagx_sched_job_queue);
EXPORT_RUST_TRACEPOINT(vagx_sched_job_add_dep);
EXPORT_RUST_TRACEPOINT(vagx_sched_job_unschedulable);
EXPORT_RUST_TRACEPOINT(vagx_sched_job_run);
EXPORT_RUST_TRACEPOINT(vagx_sched_job_done);
EXPORT_RUST_TRACEPOINT(vagx_sched_job_timeout);

#undef MODULE_PARAM_PREFIX
#define MODULE_PARAM_PREFIX "vagx_sched."

/* Indexed by the value Rust reads (PolicyKind::from_param). */
static const char * const policy_names[] = { "rr", "fifo", "fair", NULL };

/* FIFO, as drm_sched's default. */
static int default_policy = 1;

static int policy_set(const char *val, const struct kernel_param *kp)
{
	int i = sysfs_match_string(policy_names, val);

	if (i < 0)
		return -EINVAL;
	WRITE_ONCE(default_policy, i);
	return 0;
}

static int policy_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%s\n", policy_names[READ_ONCE(default_policy)]);
}

static const struct kernel_param_ops policy_ops = {
	.set = policy_set,
	.get = policy_get,
};

module_param_cb(policy, &policy_ops, NULL, 0644);
MODULE_PARM_DESC(policy, "Default policy of new GPU schedulers: rr, fifo (default) or fair");

int vagx_sched_default_policy(void)
{
	return READ_ONCE(default_policy);
}
EXPORT_SYMBOL_GPL(vagx_sched_default_policy);

#if IS_ENABLED(CONFIG_RUST_DRM_SCHED_KUNIT_TEST)

static void count(void *data, enum vagx_sched_event ev)
{
	struct vagx_sched_trace_counts *c = data;

	atomic_inc(&c->n[ev]);
}

static void probe_queue(void *data, const char *name, u64 entity, u64 ctx, u64 seqno,
			u32 credits, u32 queued)
{
	count(data, VAGX_SCHED_EV_QUEUE);
}

static void probe_add_dep(void *data, u64 ctx, u64 seqno, u64 dep_ctx, u64 dep_seqno)
{
	count(data, VAGX_SCHED_EV_ADD_DEP);
}

static void probe_unschedulable(void *data, u64 ctx, u64 seqno, u64 dep_ctx, u64 dep_seqno)
{
	count(data, VAGX_SCHED_EV_UNSCHEDULABLE);
}

static void probe_run(void *data, const char *name, u64 entity, u64 ctx, u64 seqno,
		      u32 credits, u32 credits_used)
{
	count(data, VAGX_SCHED_EV_RUN);
}

static void probe_done(void *data, u64 ctx, u64 seqno, int error, u64 gpu_ns)
{
	struct vagx_sched_trace_counts *c = data;

	atomic_set(&c->last_done_error, error);
	count(data, VAGX_SCHED_EV_DONE);
}

static void probe_timeout(void *data, const char *name, u64 ctx, u64 seqno, int status)
{
	count(data, VAGX_SCHED_EV_TIMEOUT);
}

void vagx_sched_trace_count_stop(struct vagx_sched_trace_counts *c)
{
	/* Unregistering a probe that is not registered is harmless (-ENOENT). */
	unregister_trace_vagx_sched_job_queue(probe_queue, c);
	unregister_trace_vagx_sched_job_add_dep(probe_add_dep, c);
	unregister_trace_vagx_sched_job_unschedulable(probe_unschedulable, c);
	unregister_trace_vagx_sched_job_run(probe_run, c);
	unregister_trace_vagx_sched_job_done(probe_done, c);
	unregister_trace_vagx_sched_job_timeout(probe_timeout, c);
	/* No probe may still be running when the counters are freed. */
	tracepoint_synchronize_unregister();
}

int vagx_sched_trace_count_start(struct vagx_sched_trace_counts *c)
{
	int ret;

	ret = register_trace_vagx_sched_job_queue(probe_queue, c);
	if (!ret)
		ret = register_trace_vagx_sched_job_add_dep(probe_add_dep, c);
	if (!ret)
		ret = register_trace_vagx_sched_job_unschedulable(probe_unschedulable, c);
	if (!ret)
		ret = register_trace_vagx_sched_job_run(probe_run, c);
	if (!ret)
		ret = register_trace_vagx_sched_job_done(probe_done, c);
	if (!ret)
		ret = register_trace_vagx_sched_job_timeout(probe_timeout, c);
	if (ret)
		vagx_sched_trace_count_stop(c);
	return ret;
}

int vagx_sched_trace_count(struct vagx_sched_trace_counts *c, unsigned int event)
{
	return event < VAGX_SCHED_EV_COUNT ? atomic_read(&c->n[event]) : 0;
}

int vagx_sched_trace_last_error(struct vagx_sched_trace_counts *c)
{
	return atomic_read(&c->last_done_error);
}

#endif /* CONFIG_RUST_DRM_SCHED_KUNIT_TEST */
