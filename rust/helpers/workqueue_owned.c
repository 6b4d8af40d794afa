// SPDX-License-Identifier: GPL-2.0

#include <linux/workqueue.h>

__rust_helper struct workqueue_struct *
rust_helper_alloc_ordered_workqueue(const char *name, unsigned int flags)
{
	return alloc_ordered_workqueue("%s", flags, name);
}
