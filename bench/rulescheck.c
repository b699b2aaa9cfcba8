/* rulescheck.c - figure 15: what the relay's per-connection rules check
 * costs (src/relay/rules.c: relay_rules_get() + relay_rules_put(), the
 * stat() of the rules file and the mutex), next to the cheapest thing a
 * relayed connection does anyway: a loopback TCP connect + accept + close
 * with nothing sent (no preamble, no TLS).
 *
 *   rulescheck check N RULESFILE   N get+put with KIMIFIX_RULES=RULESFILE
 *   rulescheck lookup N            N get+put, the default lookup (no
 *                                  KIMIFIX_RULES: ~/.config, /etc)
 *   rulescheck accept N            N loopback connect+accept+close
 *
 * Prints ns_per_call=... (bench/run.py reads key=value words). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"
#include "kf_log.h"
#include "relay.h"

static double checks(long n)
{
    kf_log_open("/dev/null");
    if (relay_rules_init() < 0)
        exit(1);
    for (long i = 0; i < n / 10; i++) /* warm-up */
        relay_rules_put(relay_rules_get());
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i++)
        relay_rules_put(relay_rules_get());
    return (double)(bench_now_ns() - t0) / (double)n;
}

static double accepts(long n)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 128) ||
        getsockname(l, (struct sockaddr *)&a, &al))
        exit(1);
    uint64_t t0 = 0;
    for (long i = -n / 10; i < n; i++) { /* negative i: warm-up */
        if (i == 0)
            t0 = bench_now_ns();
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof a))
            exit(1);
        int s = accept(l, NULL, NULL);
        if (s < 0)
            exit(1);
        close(s);
        close(c);
    }
    return (double)(bench_now_ns() - t0) / (double)n;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    long n = atol(argv[2]);
    double ns;
    if (!strcmp(argv[1], "check") && argc > 3) {
        setenv("KIMIFIX_RULES", argv[3], 1);
        ns = checks(n);
    } else if (!strcmp(argv[1], "lookup")) {
        unsetenv("KIMIFIX_RULES");
        ns = checks(n);
    } else if (!strcmp(argv[1], "accept")) {
        ns = accepts(n);
    } else {
        return 2;
    }
    printf("ns_per_call=%.1f\n", ns);
    return 0;
}
