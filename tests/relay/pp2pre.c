/* pp2pre.c - LD_PRELOAD helper for load generators (bench figure 10): the
 * shim's steering and nothing else, so an unmodified client such as
 * `h2load` reaches the relay exactly as a steered client does.
 *
 *   KF_PP2_DST=PORT    connects to 127.0.0.1:PORT are steered ...
 *   KF_PP2_RELAY=PORT  ... to the relay on 127.0.0.1:PORT,
 *   KF_PP2_TOKEN=HEX   with this token,
 *   KF_PP2_AUTH=NAME   and this authority (TLV 0x02).
 * The preamble names 127.0.0.1:DST as the original destination. Every
 * other connect() passes through untouched (the nginx arm of the bench
 * loads the same library, so both arms pay the same hook).
 */
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kf_paths.h"
#include "kf_steer.h"

typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);

static connect_fn real_connect;
static unsigned dst_port;
static kf_relay_state st;
static const char *authority;

__attribute__((constructor)) static void init(void)
{
    real_connect = (connect_fn)dlsym(RTLD_NEXT, "connect");
    const char *d = getenv("KF_PP2_DST"), *r = getenv("KF_PP2_RELAY"), *t = getenv("KF_PP2_TOKEN");
    authority = getenv("KF_PP2_AUTH");
    if (!d || !r || !t || kf_hex_decode(t, strlen(t), st.token, sizeof st.token))
        return;
    dst_port = (unsigned)atoi(d);
    st.port = (unsigned)atoi(r);
}

__attribute__((visibility("default"))) int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    if (!real_connect) {
        errno = ENOSYS;
        return -1;
    }
    if (dst_port && sa && sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        if (ntohs(in->sin_port) == dst_port && in->sin_addr.s_addr == htonl(INADDR_LOOPBACK)) {
            kf_steer_io io = {.connect = real_connect, .write = write};
            return kf_steer_connect(fd, sa, len, authority, &st, &io);
        }
    }
    return real_connect(fd, sa, len);
}
