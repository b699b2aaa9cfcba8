/* kf_psl.c - the built-in public suffix list and the "too wide" check
 * (kf_psl.h). A linear scan: it runs once per `host` pattern when rules
 * load, over ~250 short strings. */
#include <string.h>

#include "kf_psl.h"

/* Fixed-width rows, not pointers: a table of pointers needs a relocation
 * each in every process that loads the shim (~250 of them, and the page
 * they sit on written at every start: bench figure 6); rows need none.
 * The width is the longest entry plus its NUL. */
#define KF_PSL_W 22
static const char psl[][KF_PSL_W] = {
    /* generic */
    "com", "net", "org", "edu", "gov", "mil", "int", "info", "biz", "name", "pro", "mobi", "asia",
    "tel", "aero", "coop", "museum", "travel", "jobs", "cat", "xxx", "arpa",
    /* new generic, common with developers */
    "ai", "io", "co", "app", "dev", "cloud", "xyz", "online", "site", "top", "shop", "tech",
    "store", "live", "blog", "page", "link", "club", "space", "website", "icu", "vip", "work",
    "me", "tv", "cc", "ly", "gg", "sh", "to", "ws", "fm", "am", "so", "im", "is", "run", "codes",
    /* country */
    "us", "uk", "cn", "jp", "de", "fr", "ru", "br", "in", "au", "ca", "eu", "nl", "it", "es",
    "ch", "se", "no", "kr", "tw", "hk", "sg", "nz", "za", "mx", "ar", "pl", "be", "at", "dk",
    "fi", "ie", "il", "pt", "gr", "cz", "ro", "hu", "tr", "ua", "id", "th", "vn", "my", "ph",
    "sa", "ae", "ir", "pk", "ng", "eg", "kz", "cl", "pe", "lt", "lv", "ee", "sk", "si", "bg",
    "hr", "rs", "by", "mo",
    /* second-level registries */
    "co.uk", "org.uk", "me.uk", "ltd.uk", "plc.uk", "net.uk", "ac.uk", "gov.uk", "sch.uk",
    "nhs.uk", "police.uk",
    "com.cn", "net.cn", "org.cn", "gov.cn", "edu.cn", "ac.cn",
    "co.jp", "ne.jp", "or.jp", "ac.jp", "go.jp", "ed.jp", "gr.jp", "lg.jp", "ad.jp",
    "com.au", "net.au", "org.au", "edu.au", "gov.au", "id.au", "asn.au",
    "co.nz", "net.nz", "org.nz", "govt.nz", "ac.nz",
    "com.br", "net.br", "org.br", "gov.br",
    "co.in", "net.in", "org.in", "gov.in", "ac.in", "firm.in", "gen.in", "ind.in",
    "co.kr", "or.kr", "ne.kr", "go.kr", "ac.kr",
    "com.hk", "org.hk", "net.hk", "edu.hk", "gov.hk",
    "com.tw", "org.tw", "net.tw", "edu.tw", "gov.tw",
    "com.sg", "net.sg", "org.sg", "edu.sg", "gov.sg",
    "co.za", "org.za", "net.za", "gov.za",
    "com.mx", "org.mx", "gob.mx",
    "com.tr", "org.tr", "net.tr", "gov.tr",
    "com.ar", "com.my", "com.ph", "com.vn", "co.id", "co.th", "co.il", "com.ua", "com.pl",
    "com.ru", "com.es", "com.sa", "com.eg", "com.pk", "com.ng", "co.ke",
    /* shared hosting: anyone can have a name under these */
    "github.io", "githubusercontent.com", "gitlab.io", "herokuapp.com", "vercel.app",
    "netlify.app", "pages.dev", "workers.dev", "appspot.com", "blogspot.com", "cloudfront.net",
    "amazonaws.com", "azurewebsites.net", "web.app", "firebaseapp.com", "fly.dev",
    "onrender.com", "ngrok.io", "ngrok-free.app", "trycloudflare.com", "r2.dev",
};

int kf_psl_is_public(const char *name, size_t n)
{
    if (n == 0)
        return 1; /* the root: above everything */
    for (size_t i = 0; i < sizeof psl / sizeof psl[0]; i++) {
        size_t k = strnlen(psl[i], KF_PSL_W);
        if (k == n && memcmp(psl[i], name, n) == 0)
            return 1;
        /* above an entry: "uk" for "co.uk" */
        if (k > n && psl[i][k - n - 1] == '.' && memcmp(psl[i] + k - n, name, n) == 0)
            return 1;
    }
    return 0;
}

const char *kf_psl_too_wide(const char *name, size_t n, int wild)
{
    if ((wild && !memchr(name, '.', n)) || kf_psl_is_public(name, n))
        return "at or above a public suffix: the kimifix CA could then sign for any site "
               "under it; list the hosts themselves";
    return NULL;
}
