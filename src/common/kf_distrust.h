/* kf_distrust.h - learned distrust: programs that refused the kimifix CA.
 *
 * Some clients trust only their own roots (Java with its own store, Rust on
 * webpki-roots, a program pinned to a CA file): steering them to the relay
 * breaks them. When such a client aborts the handshake with the relay on
 * an unknown-CA / bad-certificate / certificate-unknown alert, the relay
 * records it here, and the shim sends that program's later connections
 * direct (unfixed, but working). One file per program:
 *
 *   DATADIR/distrust/KEY      (0600, in a 0700 directory)
 *     kimifix-distrust 1
 *     exe /usr/bin/prog
 *     buildid 9c81...        (kf_progid.h)
 *     alert unknown_ca
 *     host api.kimi.com
 *     when 1733400000
 *
 * KEY = 16 hex digits of FNV-1a 64 over "EXE\nBUILDID"; the record's own
 * exe and buildid lines are compared too, so a hash collision never
 * matches. Delete the file to let kimifix try again (`kimifix doctor CMD`
 * shows it). libc only, no allocation; the check uses raw system calls
 * (the shim calls it from its connect() hook).
 */
#ifndef KF_DISTRUST_H
#define KF_DISTRUST_H

#include <stddef.h>

#include "kf_progid.h"

#define KF_DISTRUST_DIR "distrust"

typedef struct kf_distrust_rec {
    char exe[4096];
    char buildid[KF_BUILDID_MAX];
    char alert[32];
    char host[256];
    long long when;
} kf_distrust_rec;

/* DATADIR/distrust/KEY for (exe, buildid). 0 or -1 (too long). */
int kf_distrust_path(const char *datadir, const char *exe, const char *buildid, char *out,
                     size_t n);

/* Read and validate a record (ours, regular, not group/other-writable,
 * well-formed). 0 or -1. */
int kf_distrust_read(const char *path, kf_distrust_rec *r);

/* Is (exe, buildid) recorded in datadir? 1 yes (r filled when non-NULL),
 * 0 no. */
int kf_distrust_check(const char *datadir, const char *exe, const char *buildid,
                      kf_distrust_rec *r);

/* Record it (creates the 0700 directory). 1 newly recorded, 0 already
 * recorded, -1 error (errno). */
int kf_distrust_record(const char *datadir, const char *exe, const char *buildid,
                       const char *alert, const char *host);

/* Every valid record in datadir (doctor). fn's non-zero return stops.
 * Returns how many were seen. */
int kf_distrust_each(const char *datadir,
                     int (*fn)(void *ud, const char *path, const kf_distrust_rec *r), void *ud);

#endif
