/* rio.c - one socket, with or without TLS, driven by edge-triggered epoll,
 * and the byte queues that hold data only while it is in flight.
 *
 * Readiness: an epoll edge sets a bit in r->ready; an operation that would
 * block clears the bit it waited for (TLS may read while writing and the
 * other way round: rd_need/wr_need remember which). Nothing is polled.
 *
 * Memory: SSL_MODE_RELEASE_BUFFERS frees a TLS record buffer once it is
 * empty, but SSL_read allocates one before it finds the socket empty and
 * keeps it; rio_trim() gives it back (SSL_free_buffers refuses while a
 * partial record is inside, which is exactly when it must stay).
 */
#include "relay.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

void rio_init(rio *r, int fd)
{
    memset(r, 0, sizeof *r);
    r->fd = fd;
    r->rd_need = RIO_IN;
    r->wr_need = RIO_OUT;
}

void rio_event(rio *r, uint32_t ev)
{
    /* A hang-up or error makes both directions "ready": the next read or
     * write finds out what happened. */
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        r->ready |= RIO_IN;
    if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        r->ready |= RIO_OUT;
    if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        r->hup = 1;
    if (ev & (EPOLLHUP | EPOLLERR))
        r->gone = 1;
}

int rio_can_read(const rio *r)
{
    if (r->rd_eof)
        return 0;
    return (r->ready & r->rd_need) || (r->ssl && SSL_has_pending(r->ssl));
}

/* The call would block on `need` (RIO_IN / RIO_OUT). */
static void blocked(rio *r, uint8_t *need, uint8_t what)
{
    *need = what;
    r->ready &= (uint8_t)~what;
}

/* A read from a TCP socket that got fewer bytes than it asked for emptied
 * the socket's receive queue: the next read could only say EAGAIN, so the
 * edge is used up now, without that system call (several us each on a VM:
 * bench figures 10 and 11, two per request at one connection). Bytes that
 * arrive later raise an edge of their own: EPOLLET signals each arrival.
 * Not once the peer has shut its side (EPOLLRDHUP, r->hup): a FIN that came
 * with the data raised no edge of its own, and the next read says EOF. */
static void drained(rio *r)
{
    if (r->rd_need == RIO_IN && !r->hup)
        r->ready &= (uint8_t)~RIO_IN;
}

/* The TLS socket BIO's reads, seen as they return (BIO_set_callback_ex). */
static long sock_watch(BIO *b, int oper, const char *argp, size_t len, int argi, long argl,
                       int ret, size_t *processed)
{
    (void)argp, (void)argi, (void)argl;
    if (oper == (BIO_CB_READ | BIO_CB_RETURN)) {
        rio *r = (rio *)BIO_get_callback_arg(b);
        if (r)
            r->sock_short = ret > 0 && processed && *processed < len;
    }
    return ret;
}

void rio_set_ssl(rio *r, SSL *ssl)
{
    r->ssl = ssl;
    BIO *b = ssl ? SSL_get_rbio(ssl) : NULL;
    if (b) {
        BIO_set_callback_arg(b, (char *)r);
        BIO_set_callback_ex(b, sock_watch);
    }
}

ssize_t rio_read(rio *r, void *buf, size_t n)
{
    if (!r->ssl) {
        ssize_t k = recv(r->fd, buf, n, 0);
        if (k > 0) {
            if ((size_t)k < n)
                drained(r);
            return k;
        }
        if (k == 0) {
            r->rd_eof = 1;
            return 0;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            if (errno != EINTR)
                blocked(r, &r->rd_need, RIO_IN);
            return -1;
        }
        r->rd_eof = r->rd_unclean = 1;
        return 0;
    }
    size_t got = 0;
    ERR_clear_error();
    r->sock_short = 0;
    if (SSL_read_ex(r->ssl, buf, n, &got) == 1) {
        /* the socket's last read was short: empty now (what OpenSSL holds
         * already decrypted or buffered, rio_can_read sees by itself) */
        if (r->sock_short)
            drained(r);
        return (ssize_t)got;
    }
    switch (SSL_get_error(r->ssl, 0)) {
    case SSL_ERROR_WANT_READ:
        blocked(r, &r->rd_need, RIO_IN);
        return -1;
    case SSL_ERROR_WANT_WRITE:
        blocked(r, &r->rd_need, RIO_OUT);
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        r->rd_eof = 1;
        return 0;
    default: /* reset, truncation, protocol error */
        r->rd_eof = r->rd_unclean = 1;
        return 0;
    }
}

ssize_t rio_write(rio *r, const void *buf, size_t n)
{
    if (r->err)
        return -1;
    if (!n)
        return 0;
    if (!r->ssl) {
        ssize_t k = send(r->fd, buf, n, MSG_NOSIGNAL);
        if (k >= 0)
            return k;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            if (errno != EINTR)
                blocked(r, &r->wr_need, RIO_OUT);
            return 0;
        }
        r->err = 1;
        return -1;
    }
    size_t done = 0;
    ERR_clear_error();
    if (SSL_write_ex(r->ssl, buf, n, &done) == 1)
        return (ssize_t)done;
    switch (SSL_get_error(r->ssl, 0)) {
    case SSL_ERROR_WANT_WRITE:
        blocked(r, &r->wr_need, RIO_OUT);
        return 0;
    case SSL_ERROR_WANT_READ:
        blocked(r, &r->wr_need, RIO_IN);
        return 0;
    default:
        r->err = 1;
        return -1;
    }
}

void rio_shutdown(rio *r)
{
    if (r->wr_shut)
        return;
    r->wr_shut = 1;
    if (r->ssl && !r->err) {
        ERR_clear_error();
        SSL_shutdown(r->ssl); /* close_notify; best effort on a non-blocking fd */
    }
    shutdown(r->fd, SHUT_WR);
}

void rio_close(rio *r)
{
    if (r->ssl)
        SSL_free(r->ssl);
    r->ssl = NULL;
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
}

void rio_trim(rio *r)
{
    if (r->ssl)
        SSL_free_buffers(r->ssl);
}

/* ---- queues ------------------------------------------------------------ */

int rbuf_add(rbuf *b, const void *d, size_t n)
{
    if (!n)
        return 0;
    if (b->off && b->off == b->len)
        b->off = b->len = 0;
    if (b->len + n > b->cap) {
        size_t used = b->len - b->off;
        if (b->off && used + n <= b->cap) { /* compact in place */
            memmove(b->p, b->p + b->off, used);
        } else {
            size_t cap = used + n < 16384 ? 16384 : (used + n) * 3 / 2;
            if (cap > UINT32_MAX / 2)
                return -1;
            char *p = malloc(cap);
            if (!p)
                return -1;
            if (used)
                memcpy(p, b->p + b->off, used);
            free(b->p);
            b->p = p;
            b->cap = (uint32_t)cap;
        }
        b->off = 0;
        b->len = (uint32_t)used;
    }
    memcpy(b->p + b->len, d, n);
    b->len += (uint32_t)n;
    return 0;
}

int rbuf_prepend(rbuf *b, const void *d, size_t n)
{
    rbuf nb = {0};
    if (rbuf_add(&nb, d, n) < 0 || rbuf_add(&nb, b->p ? b->p + b->off : "", rbuf_used(b)) < 0) {
        rbuf_free(&nb);
        return -1;
    }
    rbuf_free(b);
    *b = nb;
    return 0;
}

void rbuf_take(rbuf *b, size_t n)
{
    b->off += (uint32_t)n;
    if (b->off >= b->len)
        rbuf_free(b);
}

void rbuf_free(rbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

int rio_send_or_queue(rio *r, rbuf *q, const char *buf, size_t n, size_t *sent)
{
    size_t done = 0;
    if (r && !rbuf_used(q)) {
        while (done < n) {
            ssize_t w = rio_write(r, buf + done, n - done);
            if (w <= 0)
                break; /* would block, or an error the flush will see */
            done += (size_t)w;
        }
    }
    if (sent)
        *sent = done;
    return rbuf_add(q, buf + done, n - done);
}

/* Why SSL_write gets the whole queue again after WANT_WRITE: OpenSSL wants
 * the retry to repeat the bytes of the failed call (it may have taken some
 * of them into a record); with ACCEPT_MOVING_WRITE_BUFFER the buffer may
 * have moved, and the retry is never shorter than the call before. */
int rio_flush(rio *r, rbuf *q)
{
    while (rbuf_used(q)) {
        ssize_t k = rio_write(r, q->p + q->off, rbuf_used(q));
        if (k < 0)
            return -1;
        if (k == 0)
            return 0;
        rbuf_take(q, (size_t)k);
    }
    return 1;
}
