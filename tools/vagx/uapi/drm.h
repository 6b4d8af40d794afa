/* SPDX-License-Identifier: MIT */
/*
 * The part of the kernel's <drm/drm.h> that vagx_drm.h needs, for generating the tool's
 * bindings on a host without libdrm's headers: the ioctl encoding of DRM driver ioctls.
 * The values are DRM's ABI (include/uapi/drm/drm.h) and never change.
 */
#ifndef _VAGX_TOOL_DRM_H_
#define _VAGX_TOOL_DRM_H_

#include <linux/types.h>
#include <linux/ioctl.h>

#define DRM_IOCTL_BASE			'd'
#define DRM_IOW(nr, type)		_IOW(DRM_IOCTL_BASE, nr, type)
#define DRM_IOWR(nr, type)		_IOWR(DRM_IOCTL_BASE, nr, type)
#define DRM_COMMAND_BASE		0x40

#endif
