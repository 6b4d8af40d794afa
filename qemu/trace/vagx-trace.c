/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Out-of-line wrappers of the vagx device's trace events (see vagx-trace.h).
 */

#include "qemu/osdep.h"
#include "hw/misc/vagx-trace.h"
#include "trace.h"

void vagx_trace_mailbox(uint32_t endpoint, uint64_t message)
{
    trace_vagx_mailbox(endpoint, message);
}

void vagx_trace_command(uint32_t queue, uint32_t entry, uint32_t index, uint32_t opcode,
                        uint64_t until)
{
    trace_vagx_command(queue, entry, index, opcode, until);
}

void vagx_trace_entry_done(uint32_t queue, uint32_t stamp)
{
    trace_vagx_entry_done(queue, stamp);
}

void vagx_trace_fault(uint32_t queue, uint32_t kind, uint64_t address)
{
    trace_vagx_fault(queue, kind, address);
}

void vagx_trace_halt(uint32_t reason)
{
    trace_vagx_halt(reason);
}

void vagx_trace_irq(void)
{
    trace_vagx_irq();
}
