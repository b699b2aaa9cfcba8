/* kf_mode.c - KIMIFIX_MODE (kf_mode.h). */
#include "kf_mode.h"

#include <string.h>

int kf_mode_parse(const char *s)
{
    static const struct {
        const char *name;
        int mode;
    } words[] = {
        { "auto", KF_MODE_AUTO }, { "inprocess", KF_MODE_INPROCESS }, { "relay", KF_MODE_RELAY },
        { "off", KF_MODE_OFF },   { "proxy", KF_MODE_PROXY },
    };
    if (!s || !*s)
        return KF_MODE_AUTO;
    for (unsigned i = 0; i < sizeof words / sizeof words[0]; i++)
        if (!strcmp(s, words[i].name))
            return words[i].mode;
    return -1;
}
