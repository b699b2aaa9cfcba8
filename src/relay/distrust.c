/* distrust.c - learning which programs refuse the kimifix CA (truststore.h,
 * kf_distrust.h).
 *
 * A client that does not trust the relay's certificate aborts the
 * handshake with an alert: Java sends certificate_unknown, OpenSSL and
 * BoringSSL (Node, Bun) unknown_ca, Go bad_certificate. OpenSSL reports a
 * received alert as reason SSL_AD_REASON_OFFSET + the alert number. The
 * first refusal by a program is recorded on disk, so the shim sends that
 * program's later connections direct: at most one failed connection per
 * program (and build), ever.
 */
#include "truststore.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "kf_distrust.h"
#include "kf_log.h"

const char *distrust_alert_name(unsigned long err)
{
    if (ERR_GET_LIB(err) != ERR_LIB_SSL)
        return NULL;
    switch (ERR_GET_REASON(err)) {
    case SSL_AD_REASON_OFFSET + SSL_AD_BAD_CERTIFICATE: return "bad_certificate";
    case SSL_AD_REASON_OFFSET + SSL_AD_UNSUPPORTED_CERTIFICATE: return "unsupported_certificate";
    case SSL_AD_REASON_OFFSET + SSL_AD_CERTIFICATE_UNKNOWN: return "certificate_unknown";
    case SSL_AD_REASON_OFFSET + SSL_AD_UNKNOWN_CA: return "unknown_ca";
    default: return NULL;
    }
}

int distrust_note(unsigned long err, const char *datadir, const char *exe, const char *buildid,
                  const char *host)
{
    const char *alert = distrust_alert_name(err);
    if (!alert)
        return 0;
    host = host && *host ? host : "?";
    if (!exe || !*exe || !buildid || !*buildid) {
        kf_log(KF_LOG_WARN, "[relay] %s: a client refused the kimifix CA (TLS alert %s) and "
                            "registered no context: cannot tell which program it was",
               host, alert);
        return 1;
    }
    int r = kf_distrust_record(datadir, exe, buildid, alert, host);
    if (r == 1) {
        char path[4200] = "";
        kf_distrust_path(datadir, exe, buildid, path, sizeof path);
        kf_log(KF_LOG_ERROR, "[relay] %s: %s does not trust the kimifix CA (TLS alert %s): its "
                             "connections go direct, unfixed, from now on (learned in %s; see "
                             "`kimifix doctor %s`; delete that file to try again)",
               host, exe, alert, path, exe);
    } else if (r < 0) {
        kf_log(KF_LOG_WARN, "[relay] %s: %s refused the kimifix CA (TLS alert %s); cannot record "
                            "it in %s: %s",
               host, exe, alert, datadir, strerror(errno));
    }
    return 1;
}
