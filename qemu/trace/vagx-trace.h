/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Trace events of the vagx device, callable from Rust.
 *
 * QEMU's generated trace functions are static inline, which bindgen cannot bind; these are
 * out-of-line wrappers around them. Copied into include/hw/misc/ by `cargo xtask build`.
 */

#ifndef HW_MISC_VAGX_TRACE_H
#define HW_MISC_VAGX_TRACE_H

#include <stdint.h>

void vagx_trace_mailbox(uint32_t endpoint, uint64_t message);
void vagx_trace_command(uint32_t queue, uint32_t entry, uint32_t index, uint32_t opcode,
                        uint64_t until);
void vagx_trace_entry_done(uint32_t queue, uint32_t stamp);
void vagx_trace_fault(uint32_t queue, uint32_t kind, uint64_t address);
void vagx_trace_halt(uint32_t reason);
void vagx_trace_irq(void);

#endif
