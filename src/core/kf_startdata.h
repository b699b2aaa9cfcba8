/* kf_startdata.h - where the data a process start writes is kept.
 *
 * The shim is loaded into every child of an agent, and a page written for
 * the first time costs a fault, ~10 us on a VM (bench figure 6). Static
 * data that every start of the shim writes is marked KF_START_DATA: in the
 * shim's link, mk/shim-start.ld puts it on the page the loader writes
 * anyway, where .data ends, instead of on .bss pages of its own between the
 * large buffers. KF_START_TAIL: the one large object of which a start
 * writes only the head; it goes last. Zero-initialised variables only
 * (.bss.*: no bytes in the file). In the relay and the CLI, linked without
 * that script, both are ordinary .bss. In src/core: macros only, for the
 * engine's start-read flags (kf_rules_lazy.c) as for the shim and the log.
 */
#ifndef KF_STARTDATA_H
#define KF_STARTDATA_H

#define KF_START_DATA __attribute__((section(".bss.kf_start"), aligned(8)))
#define KF_START_TAIL __attribute__((section(".bss.kf_start.tail"), aligned(8)))

#endif
