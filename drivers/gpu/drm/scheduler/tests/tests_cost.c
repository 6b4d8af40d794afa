// SPDX-License-Identifier: GPL-2.0
/*
 * vagx: the per-job cost workload of the Rust scheduler's `vagx_sched_cost` suite, run on C
 * drm_sched and its mock scheduler, so that one boot measures both (`cargo xtask bench`).
 *
 * 100000 jobs of 1 us from one entity with unlimited credits, timed from the first submission
 * to the last completion. The mock GPU is idle most of that time: this is the CPU cost of a
 * job through submission, scheduling, completion and freeing.
 */

#include <linux/ktime.h>
#include <linux/math64.h>

#include "sched_tests.h"

#define COST_JOBS 100000

static void drm_sched_per_job_cost(struct kunit *test)
{
	struct drm_mock_scheduler *sched = drm_mock_sched_new(test, MAX_SCHEDULE_TIMEOUT);
	struct drm_mock_sched_entity *entity;
	struct drm_mock_sched_job *job = NULL;
	ktime_t start;
	s64 us;
	int i;

	entity = drm_mock_sched_entity_new(test, DRM_SCHED_PRIORITY_NORMAL, sched);

	start = ktime_get();
	for (i = 0; i < COST_JOBS; i++) {
		job = drm_mock_sched_job_new(test, entity);
		drm_mock_sched_job_set_duration_us(job, 1);
		drm_mock_sched_job_submit(job);
	}
	KUNIT_ASSERT_TRUE(test, drm_mock_sched_job_wait_finished(job, 60 * HZ));
	us = ktime_us_delta(ktime_get(), start);

	pr_info("drm_sched cost: %d jobs in %lldus, %lld ns/job\n", COST_JOBS, us,
		div_s64(us * 1000, COST_JOBS));

	drm_mock_sched_entity_free(entity);
	drm_mock_sched_fini(sched);
}

static struct kunit_case drm_sched_cost_tests[] = {
	KUNIT_CASE_SLOW(drm_sched_per_job_cost),
	{}
};

static struct kunit_suite drm_sched_cost = {
	.name = "drm_sched_scheduler_cost_tests",
	.test_cases = drm_sched_cost_tests,
};

kunit_test_suite(drm_sched_cost);
