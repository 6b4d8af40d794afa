// SPDX-License-Identifier: GPL-2.0

#include <linux/dma-resv.h>

/* An acquire context of the reservation class, as every dma_resv lock set uses. */
__rust_helper void rust_helper_dma_resv_acquire_init(struct ww_acquire_ctx *ctx)
{
	ww_acquire_init(ctx, &reservation_ww_class);
}

__rust_helper void rust_helper_ww_acquire_done(struct ww_acquire_ctx *ctx)
{
	ww_acquire_done(ctx);
}

__rust_helper void rust_helper_ww_acquire_fini(struct ww_acquire_ctx *ctx)
{
	ww_acquire_fini(ctx);
}

__rust_helper int rust_helper_dma_resv_lock_interruptible(struct dma_resv *obj,
							  struct ww_acquire_ctx *ctx)
{
	return dma_resv_lock_interruptible(obj, ctx);
}

__rust_helper int rust_helper_dma_resv_lock_slow_interruptible(struct dma_resv *obj,
							       struct ww_acquire_ctx *ctx)
{
	return dma_resv_lock_slow_interruptible(obj, ctx);
}
