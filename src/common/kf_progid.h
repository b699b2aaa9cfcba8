/* kf_progid.h - which program this is: its executable and GNU build id.
 *
 * The relay context names the client's program (`exe`, `buildid`), and
 * learned distrust (kf_distrust.h) is recorded per program. The build id
 * is the NT_GNU_BUILD_ID note ("GNU", type 3) of the main program, in
 * lower-case hex; a program without one is named by its file instead:
 * "stat:DEV:INO:SIZE:MTIME" (a rebuilt or updated binary is a new program
 * either way). The shim reads the notes from memory (dl_iterate_phdr),
 * `kimifix doctor` from the file: both go through kf_buildid_from_notes().
 *
 * libc only, no allocation, raw system calls for file access (callable
 * from the shim's hooks).
 */
#ifndef KF_PROGID_H
#define KF_PROGID_H

#include <stddef.h>

#define KF_BUILDID_MAX 130 /* 64-byte id in hex, or the stat form */

/* Find NT_GNU_BUILD_ID in a note area notes[0..len) (the contents of a
 * PT_NOTE segment; align = its p_align, 4 or 8). 0 with hex filled, or -1.
 * Bounded: a malformed area is never read past len. */
int kf_buildid_from_notes(const void *notes, size_t len, size_t align, char *hex, size_t n);

/* "stat:DEV:INO:SIZE:MTIME" of path. 0 or -1. */
int kf_buildid_stat(const char *path, char *out, size_t n);

/* This process: exe = the target of /proc/self/exe, buildid = the main
 * program's build id (else the stat form). 0, or -1 (no /proc). */
int kf_progid_self(char *exe, size_t en, char *buildid, size_t bn);

#endif
