// Code that each task of a restored tree runs while it is still a fork of
// ckpt (restore/spawn.h), before its restorer unmaps ckpt: in one section,
// which the linker places with the other .text.hot input sections. A task
// then faults in one or two windows of ckpt's text (a fault maps 16 pages
// around it) instead of about ten pages spread over a megabyte of it, and
// the restorer's munmap has fewer of them to zap. A file fault costs
// 1.3 us on a KVM guest and about 30 us on a PVM guest, in every task.
#pragma once

#define CKPT_TASK_SECTION ".text.hot.ckpt_task"
#define CKPT_TASK_TEXT [[gnu::section(CKPT_TASK_SECTION)]]
