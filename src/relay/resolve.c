/* resolve.c - name resolution off the workers.
 *
 * getaddrinfo() blocks (DNS, /etc/hosts, NSS modules) for up to its own
 * timeouts; a worker must never wait for it. Names go to a queue served
 * by at most RESOLVERS threads, started on first use (most relays never
 * resolve a name: the original destination is an address). The answer
 * goes back to the asking worker's done list and its eventfd wakes it; a
 * request whose connection went away meanwhile is dropped there
 * (upconn_resolved, r->u == NULL).
 */
#include "relay.h"

#include <netdb.h>
#include <stdlib.h>

#include "kf_log.h"

#define RESOLVERS 2

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static rres *qhead, *qtail;
static int nthreads, idle;

static void *resolver(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    for (;;) {
        while (!qhead && !atomic_load(&g_relay.stopping)) {
            idle++;
            pthread_cond_wait(&cv, &mu);
            idle--;
        }
        if (!qhead)
            break;
        rres *r = qhead;
        qhead = r->next;
        if (!qhead)
            qtail = NULL;
        pthread_mutex_unlock(&mu);
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};
        r->err = getaddrinfo(r->host, r->port, &hints, &r->ai);
        worker *w = r->w;
        pthread_mutex_lock(&w->mu);
        r->next = w->done;
        w->done = r;
        pthread_mutex_unlock(&w->mu);
        worker_wake(w);
        pthread_mutex_lock(&mu);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

int resolve_submit(rres *r)
{
    int rc = 0;
    r->next = NULL;
    pthread_mutex_lock(&mu);
    if (!idle && nthreads < RESOLVERS) {
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&a, 256 * 1024);
        if (pthread_create(&t, &a, resolver, NULL) == 0) {
            nthreads++;
            atomic_store(&g_relay.resolvers, nthreads);
        } else if (!nthreads) {
            kf_log(KF_LOG_ERROR, "relay: cannot start a resolver thread");
            rc = -1;
        }
        pthread_attr_destroy(&a);
    }
    if (rc == 0) {
        if (qtail)
            qtail->next = r;
        else
            qhead = r;
        qtail = r;
        pthread_cond_signal(&cv);
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

void resolve_stop(void)
{
    pthread_mutex_lock(&mu);
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}
