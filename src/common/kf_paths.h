/* kf_paths.h - where kimifix keeps per-user state; the relay's state file.
 *
 * libc only, no allocation: the shim calls these from its constructor and
 * from its connect() hook. Environment is read with secure_getenv.
 *
 *   runtime dir  $XDG_RUNTIME_DIR/kimifix when that is a directory of
 *                ours, else /tmp/kimifix-UID  (0700);
 *                when /tmp/kimifix-UID is not ours (squatted by another
 *                user, a symlink or a file): $XDG_CACHE_HOME/kimifix/run,
 *                else ~/.cache/kimifix/run
 *                relay.state, relay.start.lock, relay.run.lock, trust-*.pem;
 *                relay.net names the network namespace whose relay lives
 *                here; other namespaces' relays in net-INODE/ (kf_relay_dir)
 *   data dir     $XDG_DATA_HOME/kimifix, else ~/.local/share/kimifix (0700)
 *                ca.key (0600), ca.pem, ca-bundle.pem, ca.names, leaf.key,
 *                certs/HOST.pem
 */
#ifndef KF_PATHS_H
#define KF_PATHS_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "kf_proxy.h"

/* Check (and with create=1 make, mode 0700) a private directory: a real
 * directory (not a symlink), owned by us, not group/other-writable. Ours
 * with group/other read or search bits (e.g. 0755): repaired to 0700 and
 * logged (kf_log). Returns 0, or -1 with errno (EPERM: another owner or
 * writable by others, logged as an error; ENOTDIR: a symlink or a file). */
int kf_private_dir(const char *path, int create);

/* Fill buf with the directory's path; with create=1 make it (and missing
 * parents of the data dir) and check it with kf_private_dir. 0 or -1. */
int kf_runtime_dir(char *buf, size_t n, int create);
/* The runtime dir's possible names, without the checks kf_runtime_dir
 * makes to pick one (no system call but geteuid): XDG_RUNTIME_DIR/kimifix
 * (when absolute), /tmp/kimifix-UID, the fallback under the cache dir,
 * written one after another into buf. Returns how many (names[0..k)). */
int kf_runtime_dir_names(char *buf, size_t n, const char *names[3]);
/* The relay's directory for this process's network namespace: the runtime
 * dir, or RUNDIR/net-INODE when RUNDIR/relay.net names another namespace
 * (create=1 makes the directories; KF_RELAY_DIR_CLAIM, the relay's own
 * start, also claims an unclaimed RUNDIR). Relay state, locks, log, socket
 * and leases live here; trust files in RUNDIR. */
#define KF_RELAY_DIR_CLAIM 2
int kf_relay_dir(char *buf, size_t n, int create);
#define KF_RELAY_NET_MARK "relay.net"
/* A relay that stops gives RUNDIR back (removes relay.net if it names its
 * namespace): the next relay to start, of any namespace, claims it. */
void kf_relay_dir_release(const char *reldir);
/* RUNDIR/relay.net's namespace (owner, "" when unclaimed) and this
 * process's (me), both "net:[INODE]": 1 when they are the same. */
int kf_relay_net_owner(const char *run, char owner[64], char me[64]);
int kf_data_dir(char *buf, size_t n, int create);
/* Only the data directory's path (no check, no repair): -1 without HOME. */
int kf_data_dir_path(char *buf, size_t n);

/* What tells a file's content changed without reading it: (device,
 * inode, size, mtime). exists 0 (all zero) when path is NULL, "" or
 * cannot be stat()ed; two missing files are equal. */
typedef struct kf_file_id {
    int exists;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtim;
} kf_file_id;
void kf_file_id_of(const char *path, kf_file_id *id);

/* Read a small private file of ours (regular, our uid, no group/other
 * bits, not a symlink, smaller than cap) into buf, NUL-terminated. The
 * length, or -1. */
ssize_t kf_read_private(const char *path, char *buf, size_t cap);
int kf_file_id_eq(const kf_file_id *a, const kf_file_id *b);

/* buf = dir + "/" + name; returns buf or NULL when it does not fit. */
char *kf_path_join(char *buf, size_t n, const char *dir, const char *name);

typedef struct kf_relay_state {
    unsigned port;        /* listening on 127.0.0.1:port */
    int v6;               /* also listening on [::1]:port */
    pid_t pid;
    long started;         /* epoch seconds */
    unsigned char token[KF_PROXY_TOKEN_LEN];
} kf_relay_state;

#define KF_RELAY_STATE_FILE "relay.state"
/* The fd of the pipe a starter waits on (src/relay/main.c: take_life_fd). */
#define KF_RELAY_LIFE_FD_ENV "KIMIFIX_RELAY_LIFE_FD"
#define KF_RELAY_RUN_LOCK "relay.run.lock"

/* Read DIR/relay.state (written atomically by the relay, 0600, ours).
 * Returns 0, or -1 (missing, unreadable, not ours, malformed). It does not
 * check that the pid is alive: see kf_relay_state_alive(). */
int kf_relay_state_read(const char *dir, kf_relay_state *st);
/* Write it: temporary file 0600, fsync-free rename over the old one. */
int kf_relay_state_write(const char *dir, const kf_relay_state *st);
/* The pid exists (kill(pid, 0) is not ESRCH). Not proof of a relay: the
 * pid may have been reused. Use kf_relay_live(). */
int kf_relay_state_alive(const kf_relay_state *st);
/* 1 when the relay st describes is alive: DIR/relay.run.lock is held (a
 * non-blocking flock probe) and every listener a loopback connect to
 * st->port could reach belongs to this user (kf_sockdiag.h). Else 0, with
 * the reason in why. No waiting. */
int kf_relay_live(const char *dir, const kf_relay_state *st, char *why, size_t wn);
/* 1 when some process holds DIR/relay.run.lock (probe: LOCK_SH|LOCK_NB,
 * released at once). */
int kf_relay_run_lock_held(const char *dir);

/* Hex helpers: encode n bytes into out (2n+1 chars); decode exactly n
 * bytes from 2n hex chars (returns 0 or -1). */
void kf_hex_encode(const unsigned char *in, size_t n, char *out);
int kf_hex_decode(const char *in, size_t inlen, unsigned char *out, size_t n);

#endif
