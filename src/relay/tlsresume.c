/* tlsresume.c - TLS session resumption towards upstreams.
 *
 * A new upstream connection (the pool was empty: a burst of clients, a
 * key seen for the first time, one request per connection) costs a full
 * handshake on both ends: the server signs, the relay verifies a chain.
 * Like nginx's proxy_ssl_session_reuse, the last session (TLS 1.3 ticket)
 * a server gave for a target is offered on the next connection to it.
 *
 * Safety: a session carries the identity verified in the full handshake
 * it came from, so it is offered only to the exact same target - host,
 * port, SNI and the same upstream SSL_CTX (the client's trust set; the
 * entry holds a reference, so the pointer cannot be reused by another
 * context). A server that does not know the ticket answers with a full
 * handshake, verified as always. Expired sessions are dropped.
 *
 * One table for all workers under a mutex: it is touched when a session
 * arrives and when an upstream connection is made, never per request.
 *
 * Copies, both ways: OpenSSL marks a session object non-resumable when an
 * SSL using it is freed without a shutdown (a pooled connection that
 * timed out, a server that went away), so the table never shares its
 * sessions with a connection.
 */
#include "tlsresume.h"

#include "relay.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

#define RESUME_SLOTS 64

struct slot {
    SSL_CTX *ctx; /* a reference; NULL: free */
    unsigned port;
    char host[256], sni[256];
    SSL_SESSION *sess;
    unsigned long used; /* LRU stamp */
};

static struct slot slots[RESUME_SLOTS];
static unsigned long clock_;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int key_idx = -1; /* SSL ex_data: the connection's upkey */

static int same(const struct slot *s, const upkey *k)
{
    return s->ctx == k->sslctx && s->port == k->port && !strcmp(s->sni, k->sni) &&
           !strcmp(s->host, k->host);
}

static void slot_clear(struct slot *s)
{
    SSL_SESSION_free(s->sess);
    SSL_CTX_free(s->ctx);
    memset(s, 0, sizeof *s);
}

static int expired(const SSL_SESSION *sess)
{
    time_t t = (time_t)SSL_SESSION_get_time(sess) + (time_t)SSL_SESSION_get_timeout(sess);
    return t <= time(NULL);
}

/* OpenSSL's new-session callback (a ticket arrived): keep a copy. Returns
 * 0: the reference passed in stays OpenSSL's. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    const upkey *k = key_idx >= 0 ? SSL_get_ex_data(ssl, key_idx) : NULL;
    if (!k || !k->sslctx || !SSL_SESSION_is_resumable(sess) ||
        strlen(k->host) >= sizeof slots[0].host || strlen(k->sni) >= sizeof slots[0].sni)
        return 0;
    sess = SSL_SESSION_dup(sess);
    if (!sess)
        return 0;
    pthread_mutex_lock(&mu);
    struct slot *s = NULL, *lru = &slots[0];
    for (int i = 0; i < RESUME_SLOTS && !s; i++) {
        if (slots[i].ctx && same(&slots[i], k))
            s = &slots[i];
        else if (!slots[i].ctx || (lru->ctx && slots[i].used < lru->used))
            lru = &slots[i];
    }
    if (s) {
        SSL_SESSION_free(s->sess);
    } else {
        s = lru;
        if (s->ctx)
            slot_clear(s);
        if (!SSL_CTX_up_ref(k->sslctx)) {
            pthread_mutex_unlock(&mu);
            SSL_SESSION_free(sess);
            return 0;
        }
        s->ctx = k->sslctx;
        s->port = k->port;
        strcpy(s->host, k->host);
        strcpy(s->sni, k->sni);
    }
    s->sess = sess;
    s->used = ++clock_;
    pthread_mutex_unlock(&mu);
    return 0;
}

void tlsresume_ctx_setup(SSL_CTX *ctx)
{
    /* Client-side cache, kept here (not in the SSL_CTX: the key is ours). */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);
}

int tlsresume_init(void)
{
    key_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    return key_idx >= 0 ? 0 : -1;
}

void tlsresume_apply(SSL *ssl, const upkey *k)
{
    if (key_idx < 0 || !k->sslctx || !SSL_set_ex_data(ssl, key_idx, (void *)k))
        return;
    pthread_mutex_lock(&mu);
    for (int i = 0; i < RESUME_SLOTS; i++) {
        struct slot *s = &slots[i];
        if (!s->ctx || !same(s, k))
            continue;
        if (expired(s->sess)) {
            slot_clear(s);
        } else {
            SSL_SESSION *copy = SSL_SESSION_dup(s->sess);
            if (copy) {
                SSL_set_session(ssl, copy); /* takes its own reference */
                SSL_SESSION_free(copy);
            }
            s->used = ++clock_;
        }
        break;
    }
    pthread_mutex_unlock(&mu);
}

void tlsresume_clear(void)
{
    pthread_mutex_lock(&mu);
    for (int i = 0; i < RESUME_SLOTS; i++)
        if (slots[i].ctx)
            slot_clear(&slots[i]);
    pthread_mutex_unlock(&mu);
}
