/* test_lease.c - a proxy-carrier client's lease file (src/common/kf_lease.c)
 * and the client id in the relay URL (kf_env_relay_ctxid). */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fakeenv.h"
#include "kf_envplan.h"
#include "kf_lease.h"

static char dir[64];

static void mkrun(void)
{
    snprintf(dir, sizeof dir, "/tmp/kf-lease-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void rmrun(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(lease, .init = mkrun, .fini = rmrun);

Test(lease, proc_start_of_self_and_of_a_gone_pid)
{
    unsigned long long a = 0, b = 0;
    cr_assert_eq(kf_proc_start(getpid(), &a), 0);
    cr_expect_gt(a, 0);
    cr_assert_eq(kf_proc_start(getpid(), &b), 0);
    cr_expect_eq(a, b);
    cr_expect(kf_lease_alive(getpid(), a));
    cr_expect_not(kf_lease_alive(getpid(), a + 1), "another start time is another process");
    pid_t c = fork();
    if (c == 0)
        _exit(0);
    unsigned long long cs = 0;
    cr_assert_eq(waitpid(c, NULL, 0), c);
    cr_expect_eq(kf_proc_start(c, &cs), -1, "a reaped child has no /proc entry");
    cr_expect_not(kf_lease_alive(c, a));
    cr_expect_not(kf_lease_alive(0, a));
}

Test(lease, a_comm_with_spaces_and_parentheses)
{
    /* /proc/PID/stat: "PID (COMM) S ...": COMM is the program's to choose. */
    int p[2];
    char b;
    cr_assert_eq(pipe(p), 0);
    pid_t c = fork();
    if (c == 0) {
        prctl(PR_SET_NAME, "a) (b c) 1 2 3");
        if (write(p[1], "x", 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    close(p[1]);
    cr_assert_eq(read(p[0], &b, 1), 1);
    close(p[0]);
    unsigned long long s = 0, mine = 0;
    cr_expect_eq(kf_proc_start(c, &s), 0);
    cr_expect_eq(kf_proc_start(getpid(), &mine), 0);
    cr_expect_geq(s, mine, "the child started after us");
    cr_expect(kf_lease_alive(c, s));
    kill(c, SIGKILL);
    waitpid(c, NULL, 0);
    cr_expect_not(kf_lease_alive(c, s));
}

Test(lease, write_read_parse)
{
    char id[KF_LEASE_ID_HEX + 1], text[KF_LEASE_MAX];
    cr_assert_eq(kf_lease_write(dir, getpid(), "http://alice:s3cret@proxy.corp:3128", "a.org,.b.org",
                                id), 0, "%s", strerror(errno));
    cr_expect(kf_lease_id_ok(id), "%s", id);
    ssize_t n = kf_lease_read(dir, id, text, sizeof text);
    cr_assert_gt(n, 0);
    kf_lease l;
    cr_assert_eq(kf_lease_parse(text, (size_t)n, &l), 0, "%s", text);
    cr_expect_eq(l.pid, getpid());
    cr_expect(kf_lease_alive(l.pid, l.start));
    cr_expect(l.proxy.n == 35 && !memcmp(l.proxy.p, "http://alice:s3cret@proxy.corp:3128", 35));
    cr_expect(l.noproxy.n == 12 && !memcmp(l.noproxy.p, "a.org,.b.org", 12));
    cr_expect_eq(strncmp(text, "kfctx 1\n", 8), 0, "the form of a registration (contract A)");
    cr_expect_eq(text[n - 1], '\n');
    cr_expect_eq(text[n - 2], '\n', "ends with an empty line");
    /* 0600 in a 0700 directory */
    char p[256];
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s/%s", dir, KF_LEASE_DIR, id);
    cr_assert_eq(stat(p, &sb), 0);
    cr_expect_eq(sb.st_mode & 0777, 0600);
    snprintf(p, sizeof p, "%s/%s", dir, KF_LEASE_DIR);
    cr_assert_eq(stat(p, &sb), 0);
    cr_expect_eq(sb.st_mode & 0777, 0700);
    /* two leases, two ids */
    char id2[KF_LEASE_ID_HEX + 1];
    cr_assert_eq(kf_lease_write(dir, getpid(), NULL, NULL, id2), 0);
    cr_expect_str_neq(id, id2);
    n = kf_lease_read(dir, id2, text, sizeof text);
    cr_assert_eq(kf_lease_parse(text, (size_t)n, &l), 0);
    cr_expect_null(l.proxy.p);
    cr_expect_null(l.noproxy.p);
}

Test(lease, unsafe_values_left_out)
{
    char id[KF_LEASE_ID_HEX + 1], text[KF_LEASE_MAX];
    cr_assert_eq(kf_lease_write(dir, getpid(), "http://p:1\nlease 1 1", "a\tb", id), 0);
    ssize_t n = kf_lease_read(dir, id, text, sizeof text);
    kf_lease l;
    cr_assert_eq(kf_lease_parse(text, (size_t)n, &l), 0);
    cr_expect_null(l.proxy.p, "a value with a newline would forge a line");
    cr_expect_null(l.noproxy.p);
    cr_expect_eq(l.pid, getpid());
}

Test(lease, read_refuses_others_modes_and_bad_ids)
{
    char id[KF_LEASE_ID_HEX + 1], text[KF_LEASE_MAX], p[256];
    cr_assert_eq(kf_lease_write(dir, getpid(), NULL, NULL, id), 0);
    snprintf(p, sizeof p, "%s/%s/%s", dir, KF_LEASE_DIR, id);
    cr_assert_eq(chmod(p, 0644), 0);
    cr_expect_eq(kf_lease_read(dir, id, text, sizeof text), -1, "readable by others");
    cr_assert_eq(chmod(p, 0600), 0);
    cr_expect_gt(kf_lease_read(dir, id, text, sizeof text), 0);
    cr_expect_eq(kf_lease_read(dir, "../../etc/passwd", text, sizeof text), -1);
    cr_expect_eq(kf_lease_read(dir, "0123456789ABCDEF0123456789abcdef", text, sizeof text), -1,
                 "upper case is not an id");
    cr_expect_eq(kf_lease_read(dir, "0123456789abcdef0123456789abcde", text, sizeof text), -1);
    /* a symlink in place of the file */
    char link[256];
    snprintf(link, sizeof link, "%s/%s/0123456789abcdef0123456789abcdef", dir, KF_LEASE_DIR);
    cr_assert_eq(symlink(p, link), 0);
    cr_expect_eq(kf_lease_read(dir, "0123456789abcdef0123456789abcdef", text, sizeof text), -1);
}

Test(lease, parse_rejects)
{
    kf_lease l;
    static const char *const bad[] = {
        "", "lease 1 2\n\n", "kfctx 2\nlease 1 2\n\n", "kfctx 1\n\n", "kfctx 1\nlease 1\n\n",
        "kfctx 1\nlease x 2\n\n", "kfctx 1\nlease 0 2\n\n", "kfctx 1\nlease 1 2 3\n\n",
        "kfctx 1\nlease 99999999999 2\n\n", "kfctx 1\nproxy\n\n", "kfctx 1\nlease 1 \n\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(kf_lease_parse(bad[i], strlen(bad[i]), &l), -1, "%s", bad[i]);
    const char *ok = "kfctx 1\nexe /bin/x\nlease 12 345\nproxy http://p:1\n\nproxy http://after:2\n";
    cr_assert_eq(kf_lease_parse(ok, strlen(ok), &l), 0);
    cr_expect_eq(l.pid, 12);
    cr_expect_eq(l.start, 345);
    cr_expect(l.proxy.n == 10 && !memcmp(l.proxy.p, "http://p:1", 10), "nothing after the empty line");
}

Test(lease, ctxid_from_the_relay_url)
{
    char id[KF_LEASE_ID_HEX + 1];
    fe_clear();
    fe_set("HTTPS_PROXY", "http://kimifix-0123456789abcdef0123456789abcdef:aa@127.0.0.1:9");
    cr_expect_eq(kf_env_relay_ctxid(fake_get, id, sizeof id), 1);
    cr_expect_str_eq(id, "0123456789abcdef0123456789abcdef");
    fe_clear();
    fe_set("https_proxy", "http://kimifix:aa@127.0.0.1:9");
    cr_expect_eq(kf_env_relay_ctxid(fake_get, id, sizeof id), 0);
    cr_expect_str_eq(id, "");
    fe_clear();
    fe_set("HTTPS_PROXY", "http://kimifix-0123@proxy.corp:9"); /* not loopback: not ours */
    cr_expect_eq(kf_env_relay_ctxid(fake_get, id, sizeof id), 0);
}
