/* kf_mode.h - KIMIFIX_MODE, parsed in one place for the shim, the wrapper
 * and doctor (docs/modes in README and kimifix(1)).
 *
 *   auto (or unset/empty)  in-process where the process's TLS is seen, the
 *                          relay where it is not (or a rule needs `upstream`)
 *   inprocess              never the relay
 *   relay                  every connection to a rule host through the relay
 *   proxy                  the proxy carrier even where TLS is seen
 *                          (the shim's own steering then behaves as auto)
 *   off                    kimifix rewrites nothing
 */
#ifndef KF_MODE_H
#define KF_MODE_H

enum kf_mode { KF_MODE_AUTO = 0, KF_MODE_INPROCESS, KF_MODE_RELAY, KF_MODE_OFF, KF_MODE_PROXY };

#define KF_MODE_NAMES "auto, inprocess, relay, proxy, off"

/* The mode a KIMIFIX_MODE value names; NULL or "" is auto; -1 for a word
 * that names no mode. Pure: no allocation, no I/O. */
int kf_mode_parse(const char *s);

#endif
