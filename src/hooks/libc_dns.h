/* libc_dns.h - the resolver memory (libc_dns.c): which name an address was
 * resolved from (getaddrinfo & co., and DNS answers: dns_learn.c), so that
 * connect() knows the host a socket is for. */
#ifndef KF_LIBC_DNS_H
#define KF_LIBC_DNS_H

#include <stddef.h>
#include <sys/socket.h>

void kf_dns_remember(const struct sockaddr *sa, const char *name);
int kf_dns_name_of(const struct sockaddr *sa, char *name, size_t n);

/* Fork: lock the table (prepare), unlock (parent), reinit (child). */
void kf_dns_prepare(void);
void kf_dns_parent(void);
void kf_dns_child(void);

#endif
