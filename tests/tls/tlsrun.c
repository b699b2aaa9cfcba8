/* tlsrun.c - see tlsrun.h. */
#include "tlsrun.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    size_t got = fread(b, 1, (size_t)n, f);
    b[got] = 0;
    fclose(f);
    return b;
}

void free_out(struct out *o)
{
    free(o->out);
    free(o->err);
}

struct out tls_run(const char *const argv[], const char *const extra[], const char *preload)
{
    char dir[] = "/tmp/kftls-XXXXXX";
    cr_assert(mkdtemp(dir), "mkdtemp");
    char of[64], ef[64], home[80], pre[1200];
    snprintf(of, sizeof of, "%s/out", dir);
    snprintf(ef, sizeof ef, "%s/err", dir);
    snprintf(home, sizeof home, "HOME=%s", dir);
    snprintf(pre, sizeof pre, "LD_PRELOAD=%s", preload ? preload : "");
    const char *env[256];
    int n = 0;
    for (char **e = environ; *e && n < 200; e++)
        if (strncmp(*e, "LD_PRELOAD=", 11) && strncmp(*e, "KIMIFIX_", 8) && strncmp(*e, "HOME=", 5) &&
            strncmp(*e, "SSL_CERT", 8) && strncmp(*e, "CURL_CA", 7))
            env[n++] = *e;
    env[n++] = home;
    env[n++] = "KIMIFIX_LOG=stderr";
    if (preload)
        env[n++] = pre;
    for (int i = 0; extra && extra[i] && n < 250; i++)
        env[n++] = extra[i];
    env[n] = NULL;
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int o = open(of, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(ef, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(o, 1);
        dup2(e, 2);
        execve(argv[0], (char *const *)argv, (char *const *)env);
        _exit(127);
    }
    int st = 0;
    for (int t = 0; t < 6000; t++) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            break;
        if (t == 5999) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
        }
        usleep(10000);
    }
    struct out r;
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    r.out = slurp(of);
    r.err = slurp(ef);
    unlink(of);
    unlink(ef);
    rmdir(dir);
    if (r.status != 0)
        cr_log_warn("%s exited %d\nstdout: %s\nstderr: %s", argv[0], r.status, r.out, r.err);
    return r;
}
