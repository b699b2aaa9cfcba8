/* ctxrules.c - each client served by its own rules (relay.h, "ctxrules.c";
 * docs/relay.md, "Client contexts").
 *
 * A client's context names its rules source (`rules PATH` or `builtin`,
 * what its own KIMIFIX_RULES lookup found). The same source as the relay's
 * own is the relay's current set (rules.c: followed, counted, reloaded).
 * Any other is loaded by the same policy (kf_rules_load_policy: a broken
 * file means the built-ins and one error line) and cached by the file's
 * (path, dev, ino, size, mtime): one stat() per connection, then a lookup
 * in a handful of entries under a mutex held no longer than that, or than
 * one load of a changed file. A changed file is another key, so the next
 * connection after an edit loads it; connections already running keep the
 * set they took (refcounted: an entry dropped from the cache lives on
 * while a connection holds it). At most CTXRULES_MAX sets are cached; the
 * least recently used one makes room.
 */
#include "relay.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "kf_log.h"
#include "kf_paths.h"

typedef struct entry {
    char path[4096];              /* "" = the built-ins */
    kf_file_id f;
    relay_rules *r;               /* our reference; NULL = free slot */
    unsigned long used;
} entry;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static entry tab[CTXRULES_MAX]; /* under mu */
static unsigned long tick;      /* under mu */

static void key_of(entry *e, const char *path)
{
    snprintf(e->path, sizeof e->path, "%s", path);
    kf_file_id_of(path, &e->f);
}

static int key_eq(const entry *a, const entry *b)
{
    return !strcmp(a->path, b->path) && kf_file_id_eq(&a->f, &b->f);
}

relay_rules *relay_rules_for(const char *src, const relay_ctx *ctx)
{
    const char *path = !src || !strcmp(src, "builtin") ? "" : src;
    if (relay_rules_is_own(path))
        return relay_rules_get();
    static entry key; /* under mu; static: workers have small stacks */
    pthread_mutex_lock(&mu);
    key_of(&key, path);
    entry *slot = NULL;
    for (unsigned i = 0; i < CTXRULES_MAX; i++) {
        entry *e = &tab[i];
        if (e->r && key_eq(e, &key)) {
            e->used = ++tick;
            relay_rules *r = relay_rules_ref(e->r);
            pthread_mutex_unlock(&mu);
            return r;
        }
        /* Where a new set goes: a free slot, else the least recently used. */
        if (!slot || (slot->r && (!e->r || e->used < slot->used)))
            slot = e;
    }
    relay_rules *n = relay_rules_load(path[0] ? path : NULL);
    if (!n) {
        pthread_mutex_unlock(&mu);
        return relay_rules_get(); /* out of memory (logged): the relay's own */
    }
    relay_rules *old = slot->r;
    *slot = key;
    slot->r = n;
    slot->used = ++tick;
    relay_rules *r = relay_rules_ref(n);
    pthread_mutex_unlock(&mu);
    relay_rules_put(old);
    if (!relay_rules_state(n))
        relay_log(ctx, KF_LOG_INFO, "relay: rules: %s: %u rules in effect for a client's connections",
                  path[0] ? path : "the built-in rules", relay_rules_enabled(n));
    return r;
}

unsigned relay_rules_cached(void)
{
    unsigned n = 0;
    pthread_mutex_lock(&mu);
    for (unsigned i = 0; i < CTXRULES_MAX; i++)
        n += tab[i].r != NULL;
    pthread_mutex_unlock(&mu);
    return n;
}
