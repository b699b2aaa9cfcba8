/* pump.c - move bytes both ways between the client and the upstream.
 *
 * One thread per connection, both sockets non-blocking, one poll() loop.
 * Each round tries every operation that could make progress and polls only
 * when none did, so TLS data already decrypted inside OpenSSL (SSL_pending)
 * is never forgotten. Back-pressure: we read from a side only while the
 * other side's output queue has room; a slow reader stops the writer.
 * Server->client bytes are queued and flushed in the same round they were
 * read (SSE events are not held). Client->server bytes go through the
 * kf_stream, whose sender appends to the upstream's queue.
 *
 * Output queues exist because SSL_write must be retried with the same
 * buffer after WANT_WRITE; with ACCEPT_MOVING_WRITE_BUFFER set the queue
 * may be compacted, and a retry is never shorter than the previous try.
 */
#include "relay.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "kf_log.h"
#include "kf_stream.h"

#define IDLE_LIMIT_S 3600  /* no byte either way for an hour: give up */
#define LINGER_S 30        /* one side finished, the other still open */

ssize_t ep_read(endpoint *e, void *buf, size_t n)
{
    if (!e->ssl) {
        ssize_t r = recv(e->fd, buf, n, 0);
        if (r > 0)
            return r;
        if (r == 0) {
            e->rd_eof = 1;
            return 0;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            e->want |= POLLIN;
            return -1;
        }
        e->rd_eof = e->rd_unclean = 1;
        return 0;
    }
    /* Why the poll: SSL_read allocates a 16 KiB record buffer before it
     * reads the socket and keeps it when the read would block, so calling
     * it on an idle connection pins that buffer (times two per connection,
     * times hundreds of waiting SSE streams). Only call it when a record
     * can make progress; RELEASE_BUFFERS frees the buffer once it is
     * consumed. */
    struct pollfd pf = {.fd = e->fd, .events = POLLIN};
    if (!SSL_has_pending(e->ssl) && poll(&pf, 1, 0) == 0) {
        e->want |= POLLIN;
        return -1;
    }
    size_t got = 0;
    ERR_clear_error();
    if (SSL_read_ex(e->ssl, buf, n, &got) == 1)
        return (ssize_t)got;
    switch (SSL_get_error(e->ssl, 0)) {
    case SSL_ERROR_WANT_READ:
        e->want |= POLLIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        e->want |= POLLOUT;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        e->rd_eof = 1;
        return 0;
    default: /* reset, truncation, protocol error */
        e->rd_eof = e->rd_unclean = 1;
        return 0;
    }
}

size_t ep_room(const endpoint *e)
{
    return EP_QCAP - e->qlen + e->qoff;
}

size_t ep_queue(endpoint *e, const void *buf, size_t n)
{
    if (e->qoff) {
        memmove(e->q, e->q + e->qoff, e->qlen - e->qoff);
        e->qlen -= e->qoff;
        e->qoff = 0;
    }
    size_t room = EP_QCAP - e->qlen;
    if (n > room)
        n = room;
    memcpy(e->q + e->qlen, buf, n);
    e->qlen += n;
    return n;
}

ssize_t ep_flush(endpoint *e)
{
    while (e->qoff < e->qlen) {
        if (e->err)
            return -2;
        size_t left = e->qlen - e->qoff, done = 0;
        if (!e->ssl) {
            ssize_t r = send(e->fd, e->q + e->qoff, left, MSG_NOSIGNAL);
            if (r < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                    e->want |= POLLOUT;
                    return 0;
                }
                e->err = 1;
                return -2;
            }
            done = (size_t)r;
        } else {
            ERR_clear_error();
            if (SSL_write_ex(e->ssl, e->q + e->qoff, left, &done) != 1) {
                int k = SSL_get_error(e->ssl, 0);
                if (k == SSL_ERROR_WANT_WRITE || k == SSL_ERROR_WANT_READ) {
                    e->want |= k == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN;
                    return 0;
                }
                e->err = 1;
                return -2;
            }
        }
        e->qoff += done;
    }
    e->qoff = e->qlen = 0;
    return 1;
}

void ep_shutdown(endpoint *e)
{
    if (e->wr_shut)
        return;
    e->wr_shut = 1;
    if (e->ssl && !e->err) {
        ERR_clear_error();
        SSL_shutdown(e->ssl); /* close_notify; best effort on a non-blocking fd */
    }
    shutdown(e->fd, SHUT_WR);
}

static long now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

int ep_write_all(endpoint *e, const void *buf, size_t n, int timeout_ms)
{
    const char *p = buf;
    long deadline = now_s() * 1000 + timeout_ms;
    for (;;) {
        size_t k = ep_queue(e, p, n);
        p += k;
        n -= k;
        e->want = 0;
        ssize_t r = ep_flush(e);
        if (r < 0)
            return -1;
        if (r == 1 && n == 0)
            return 0;
        long left = deadline - now_s() * 1000;
        struct pollfd pf = {.fd = e->fd, .events = (short)(e->want ? e->want : POLLOUT)};
        if (left <= 0 || poll(&pf, 1, (int)left) <= 0)
            return -1;
    }
}

static ssize_t up_send(void *io, const void *buf, size_t len)
{
    size_t n = ep_queue(io, buf, len);
    if (n)
        return (ssize_t)n;
    errno = EAGAIN;
    return -1;
}

void pump_run(endpoint *c, endpoint *u, kf_stream *s, const kf_ctx *ctx, resp_tap *tap)
{
    char *in = malloc(EP_QCAP);
    size_t inoff = 0, inlen = 0;
    long last = now_s(), linger_from = 0;
    if (!in)
        return;
    for (;;) {
        int progress = 0;
        c->want = u->want = 0;

        /* client -> server, through the rewriter */
        if (inoff == inlen && !c->rd_eof) {
            ssize_t r = ep_read(c, in, EP_QCAP);
            if (r > 0) {
                inoff = 0;
                inlen = (size_t)r;
            }
            progress |= r >= 0;
        }
        if (inoff < inlen) {
            ssize_t r = kf_stream_write(s, ctx, in + inoff, inlen - inoff, KF_WR_PARTIAL, up_send, u);
            if (r > 0) {
                inoff += (size_t)r;
                progress = 1;
            }
        }
        /* A flush that drained the queue is progress: the client side may
         * move again (else we poll with no event wanted: a 1 s stall). */
        int u_had = u->qoff < u->qlen;
        ssize_t fu = ep_flush(u);
        progress |= u_had && fu == 1;
        if (fu < 0)
            break; /* upstream gone while we had bytes for it */
        if (c->rd_eof && inoff == inlen && fu == 1 && !u->wr_shut) {
            if (c->rd_unclean)
                break; /* client aborted: drop the upstream too */
            ep_shutdown(u);
            progress = 1;
        }

        /* server -> client, untouched, flushed at once */
        if (!u->rd_eof && ep_room(c) > 0) {
            if (c->qoff) /* make the room contiguous */
                ep_queue(c, "", 0);
            ssize_t r = ep_read(u, c->q + c->qlen, EP_QCAP - c->qlen);
            if (r > 0) {
                tap_feed(tap, c->q + c->qlen, (size_t)r);
                c->qlen += (size_t)r;
            }
            progress |= r >= 0;
        }
        int c_had = c->qoff < c->qlen;
        ssize_t fc = ep_flush(c);
        progress |= c_had && fc == 1;
        if (fc < 0)
            break; /* client gone */
        if (u->rd_eof && fc == 1 && !c->wr_shut) {
            /* Many servers close without close_notify after a complete
             * response; only a cut inside a framed response is an error
             * the client must see (no close_notify from us either). */
            if (u->rd_unclean && !tap_at_boundary(tap))
                break;
            ep_shutdown(c);
            progress = 1;
        }

        if (c->wr_shut && u->wr_shut)
            break;
        long now = now_s();
        if (progress) {
            last = now;
            continue;
        }
        if ((c->wr_shut || u->wr_shut) && !linger_from)
            linger_from = now;
        if ((linger_from && now - linger_from > LINGER_S) || now - last > IDLE_LIMIT_S)
            break;
        struct pollfd pf[2] = {{.fd = c->fd, .events = (short)c->want},
                               {.fd = u->fd, .events = (short)u->want}};
        int r = poll(pf, 2, 1000);
        if (r < 0 && errno != EINTR)
            break;
        if (atomic_load(&g_relay.stopping))
            break;
    }
    free(in);
}
