/* test_mode.c - KIMIFIX_MODE is parsed in one place (kf_mode.c) for the
 * shim, the wrapper and doctor (issue 16.3). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "kf_mode.h"

Test(mode, every_word)
{
    cr_assert_eq(kf_mode_parse(NULL), KF_MODE_AUTO);
    cr_assert_eq(kf_mode_parse(""), KF_MODE_AUTO);
    cr_assert_eq(kf_mode_parse("auto"), KF_MODE_AUTO);
    cr_assert_eq(kf_mode_parse("inprocess"), KF_MODE_INPROCESS);
    cr_assert_eq(kf_mode_parse("relay"), KF_MODE_RELAY);
    cr_assert_eq(kf_mode_parse("proxy"), KF_MODE_PROXY);
    cr_assert_eq(kf_mode_parse("off"), KF_MODE_OFF);
}

Test(mode, unknown_words)
{
    static const char *bad[] = { "Auto", "relay ", " off", "in-process", "proxy=1", "0", "none" };
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(kf_mode_parse(bad[i]), -1, "%s", bad[i]);
}

/* doctor used to call the proxy mode unknown: every mode word is valid
 * for `kimifix doctor` as for the shim. */
Test(mode, doctor_accepts_proxy)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "KIMIFIX_MODE=proxy %s/kimifix doctor 2>&1 | grep -q 'KIMIFIX_MODE=proxy: expected'",
             KF_TEST_BUILD);
    cr_assert_neq(system(cmd), 0, "doctor calls KIMIFIX_MODE=proxy unknown");
    snprintf(cmd, sizeof cmd, "KIMIFIX_MODE=bogus %s/kimifix doctor 2>&1 | grep -q 'KIMIFIX_MODE=bogus: expected'",
             KF_TEST_BUILD);
    cr_assert_eq(system(cmd), 0, "doctor says nothing of an unknown mode");
}
