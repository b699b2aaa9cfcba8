/* test_deepbind.c - dlopen under the shim (src/hooks/dl.c): hooks reach
 * code loaded with RTLD_DEEPBIND while the flag keeps its meaning for the
 * clashes it exists for; dlopen's caller-sensitive search (RUNPATH of the
 * calling object) still works; dlmopen is logged once. The programs are
 * built beside this binary (KF_TEST_DIR) by mk/loader.mk. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SHIM KF_TEST_BUILD "/libkimifix.so"
#define DIR KF_TEST_DIR
#define PROBE KF_TEST_DIR "/dlprobe"

static char out[16384];

/* Run PROBE with args; env: NULL-terminated "K=V" list added to a clean
 * environment (shim = 1: preload the shim with the built-in rules). The
 * output (stdout and stderr) lands in `out`. Returns the exit status. */
static int run(int shim, const char *const *env, const char *a1, const char *a2, const char *a3)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        dup2(p[1], 1);
        dup2(p[1], 2);
        close(p[0]);
        clearenv();
        setenv("PATH", "/usr/bin:/bin", 1);
        setenv("KIMIFIX_RULES", "/dev/null", 1);
        setenv("KIMIFIX_MODE", "inprocess", 1);
        if (shim)
            setenv("LD_PRELOAD", SHIM, 1);
        for (int i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        execl(PROBE, PROBE, a1, a2, a3, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    size_t n = 0;
    ssize_t r;
    while (n < sizeof out - 1 && (r = read(p[0], out + n, sizeof out - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = 0;
    close(p[0]);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void expect(const char *want)
{
    cr_assert(strstr(out, want), "wanted \"%s\" in:\n%s", want, out);
}

/* Run `dlprobe clash` with one KIMIFIX_DEEPBIND setting (NULL: unset). */
static void clash(int shim, const char *setting, const char *want)
{
    const char *const env[] = { setting, NULL };
    cr_assert_eq(run(shim, env, "clash", DIR, NULL), 0, "%s", out);
    expect(want);
}

/* Without kimifix: the flag's plain meaning (the control). */
Test(deepbind, clash_without_shim)
{
    clash(0, NULL, "id=B own_write=1");
}

/* The default: b keeps its own kfclash_id and write, and its libc `send`
 * is kimifix's hook. */
Test(deepbind, clash_kept_hooks_bound)
{
    clash(1, NULL, "id=B own_write=1 send_hooked=1");
}

/* KIMIFIX_DEEPBIND=off: the code behind the flag stays out of reach (what
 * every release before did; the PHP e2e test shows its effect). */
Test(deepbind, off_leaves_it_unhooked)
{
    clash(1, "KIMIFIX_DEEPBIND=off", "id=B own_write=1 send_hooked=0");
}

/* The alternative that was measured and rejected (docs/loader.md):
 * stripping the flag breaks exactly what the flag is for. */
Test(deepbind, strip_breaks_the_clash)
{
    clash(1, "KIMIFIX_DEEPBIND=strip", "id=A own_write=0 send_hooked=1");
}

Test(deepbind, loaded_twice_one_handle)
{
    cr_assert_eq(run(1, NULL, "again", DIR, NULL), 0, "%s", out);
    expect("same=1");
}

/* ld.so searches the RUNPATH of the object that called dlopen: the hook
 * must not become "the caller". */
Test(deepbind, runpath_of_caller_plain)
{
    cr_assert_eq(run(1, NULL, "runpath", DIR, NULL), 0, "%s", out);
    expect("inner=ok");
}

Test(deepbind, runpath_of_caller_deepbind)
{
    cr_assert_eq(run(1, NULL, "runpath", DIR, "deep"), 0, "%s", out);
    expect("inner=ok");
}

Test(deepbind, runpath_control_without_shim)
{
    cr_assert_eq(run(0, NULL, "runpath", DIR, "deep"), 0, "%s", out);
    expect("inner=ok");
}

/* dlmopen: one log line for the process, however many calls. */
Test(deepbind, dlmopen_logged_once)
{
    static const char *const env[] = { "KIMIFIX_LOG=stderr", NULL };
    cr_assert_eq(run(1, env, "dlmopen", NULL, NULL), 0, "%s", out);
    expect("dlmopen=ok");
    const char *first = strstr(out, "[dl] dlmopen(libm.so.6)");
    cr_assert(first, "no dlmopen line in:\n%s", out);
    cr_assert_null(strstr(first + 1, "[dl] dlmopen("), "logged twice:\n%s", out);
    expect("another link-map namespace");
}
