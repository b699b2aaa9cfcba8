/* kf_mask.h - text made safe to log or to show on a terminal.
 *
 * Two jobs, one pass:
 *  - secrets masked wherever they appear in free text (an upstream's error
 *    message that echoes the key, a file name, a rule's words): "sk-..."
 *    keys, "Bearer TOKEN", JSON Web Tokens, explicit keys, and the keys
 *    the process noted with kf_mask_note_key();
 *  - control bytes escaped as \xHH (C0, DEL, UTF-8-encoded C1 controls and
 *    bytes that are not valid UTF-8), so user input quoted in a diagnostic
 *    cannot drive the terminal (escape sequences) or forge a log line.
 * Nothing allocates; the functions are async-signal-safe.
 */
#ifndef KF_MASK_H
#define KF_MASK_H

#include <stddef.h>

#include "kf_req.h"

#define KF_MASK_SECRETS 0x1u /* mask keys, tokens, noted keys */
#define KF_MASK_ESCAPE 0x2u  /* escape control bytes and invalid UTF-8 */

/* Copy in[0..n) to out (at most cap-1 bytes, NUL-terminated when cap > 0)
 * doing what flags ask; keys[0..nkeys) are masked too (those shorter than
 * 8 bytes are ignored). An escape or a UTF-8 sequence is never cut in two.
 * Returns the length the whole result needs, like snprintf: >= cap means
 * the output was truncated. in and out must not overlap. */
size_t kf_mask_text(const char *in, size_t n, char *out, size_t cap, const kf_str *keys,
                    unsigned nkeys, unsigned flags);

/* kf_mask_text(..., KF_MASK_ESCAPE) on a C string (a diagnostic, a file
 * name). */
size_t kf_escape_text(const char *s, char *out, size_t cap);

/* Remember a key in use by this process (a request's own API key), so that
 * every later kf_mask_text(KF_MASK_SECRETS) masks it: an upstream may echo
 * it ("Incorrect API key provided: ..."). Only a fingerprint is kept (its
 * length and a hash of its first 16 bytes), in a ring of the 16 most recent
 * distinct keys. Keys shorter than 8 bytes are ignored. An auth scheme
 * ("Bearer ", "Basic ", "Token ") in front of the key is skipped. */
void kf_mask_note_key(kf_str key);

/* Forget every noted key (tests). */
void kf_mask_forget_keys(void);

#endif
