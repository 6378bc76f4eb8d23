/*
 * probe.c - jail security probe. Each run performs ONE action named by argv[1].
 * Exit-status contract (the test harness relies on it):
 *   0  "REFUSED": the forbidden action failed, as a secure jail must make it fail;
 *      for `harmless` and the informational actions, 0 means "all good".
 *   1  "ESCAPED": the forbidden action succeeded, i.e. a hole in the jail
 *      (for `harmless`: the jail broke allowed work; for `clone3`: policy changed).
 *   2  usage error, unknown action, or a situation the probe cannot judge.
 * Stdout gets exactly one line: "<action>: refused (<why>)", "<action>: ESCAPED
 * (<detail>)", "<action>: error|inconclusive (<why>)" or the informational output
 * (`echo` passes stdin through instead). Build: gcc [-static] -O2 -Wall -Wextra -Werror.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------- */
/* Constants glibc may not provide (x86_64 values; guarded).                 */
/* ------------------------------------------------------------------------- */
#ifndef SYS_membarrier
#define SYS_membarrier 324
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif
#ifndef SYS_userfaultfd
#define SYS_userfaultfd 323
#endif
#ifndef SYS_bpf
#define SYS_bpf 321
#endif
#ifndef SYS_seccomp
#define SYS_seccomp 317
#endif
#ifndef SYS_add_key
#define SYS_add_key 248
#endif
#ifndef SYS_keyctl
#define SYS_keyctl 250
#endif
#ifndef CLONE_NEWUSER
#define CLONE_NEWUSER 0x10000000
#endif
#ifndef CLONE_NEWNS
#define CLONE_NEWNS 0x00020000
#endif
#ifndef CLONE_NEWNET
#define CLONE_NEWNET 0x40000000
#endif
#ifndef TIOCSTI
#define TIOCSTI 0x5412
#endif
#ifndef PR_SET_PDEATHSIG
#define PR_SET_PDEATHSIG 1
#endif
#ifndef PR_SET_SECCOMP
#define PR_SET_SECCOMP 22
#endif
#ifndef PR_SET_NO_NEW_PRIVS
#define PR_SET_NO_NEW_PRIVS 38
#endif
#ifndef SECCOMP_MODE_FILTER
#define SECCOMP_MODE_FILTER 2
#endif
#ifndef SECCOMP_SET_MODE_FILTER
#define SECCOMP_SET_MODE_FILTER 1
#endif
#ifndef SECCOMP_RET_ALLOW
#define SECCOMP_RET_ALLOW 0x7fff0000U
#endif
#ifndef BPF_RET
#define BPF_RET 0x06
#endif
#ifndef BPF_K
#define BPF_K 0x00
#endif
#ifndef BPF_MAP_CREATE
#define BPF_MAP_CREATE 0
#endif
#ifndef BPF_MAP_TYPE_ARRAY
#define BPF_MAP_TYPE_ARRAY 2
#endif
#ifndef KEY_SPEC_PROCESS_KEYRING
#define KEY_SPEC_PROCESS_KEYRING (-2)
#endif
#ifndef KEY_SPEC_SESSION_KEYRING
#define KEY_SPEC_SESSION_KEYRING (-3)
#endif
#ifndef KEYCTL_GET_KEYRING_ID
#define KEYCTL_GET_KEYRING_ID 0
#endif

#define MIB (1024UL * 1024UL)

/* Kernel structures, declared here so no <linux/...> header is needed. */
struct probe_sock_filter { /* struct sock_filter */
    uint16_t code;
    uint8_t jt, jf;
    uint32_t k;
};
struct probe_sock_fprog { /* struct sock_fprog */
    unsigned short len;
    struct probe_sock_filter *filter;
};
struct probe_clone_args { /* struct clone_args (CLONE_ARGS_SIZE_VER2 = 88 bytes) */
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
        set_tid, set_tid_size, cgroup;
};
struct probe_bpf_map_attr { /* leading fields of union bpf_attr for BPF_MAP_CREATE */
    uint32_t map_type, key_size, value_size, max_entries, map_flags;
    uint8_t rest[108]; /* must be zero */
};
struct probe_io_uring_params { /* struct io_uring_params, 120 bytes, all zero */
    uint32_t sq_entries, cq_entries, flags, sq_thread_cpu, sq_thread_idle, features, wq_fd,
        resv[3];
    uint64_t sq_off[5], cq_off[5];
};

/* ------------------------------------------------------------------------- */
/* Reporting helpers                                                         */
/* ------------------------------------------------------------------------- */
static const char *action = "probe";

static const char *errname(int e)
{
    static const struct { int e; const char *n; } t[] = {
#define E(x) { x, #x }
        E(EPERM), E(ENOENT), E(ESRCH), E(EINTR), E(EIO), E(ENXIO), E(E2BIG), E(ENOEXEC),
        E(EBADF), E(ECHILD), E(EAGAIN), E(ENOMEM), E(EACCES), E(EFAULT), E(EBUSY),
        E(EEXIST), E(EXDEV), E(ENODEV), E(ENOTDIR), E(EISDIR), E(EINVAL), E(ENFILE),
        E(EMFILE), E(ENOTTY), E(ETXTBSY), E(EFBIG), E(ENOSPC), E(ESPIPE), E(EROFS),
        E(EMLINK), E(EPIPE), E(ERANGE), E(ENAMETOOLONG), E(ENOSYS), E(ELOOP), E(EDQUOT),
        E(EOVERFLOW), E(ENOTSOCK), E(EPROTONOSUPPORT), E(EOPNOTSUPP), E(EAFNOSUPPORT),
        E(EADDRINUSE), E(EADDRNOTAVAIL), E(ENETDOWN), E(ENETUNREACH), E(ECONNRESET),
        E(ENOTCONN), E(ETIMEDOUT), E(ECONNREFUSED), E(EHOSTUNREACH), E(EINPROGRESS),
        E(ENOKEY), E(EKEYREVOKED), E(EKEYREJECTED), E(EDEADLK), E(ENOTEMPTY),
#undef E
    };
    static char buf[32];
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (t[i].e == e)
            return t[i].n;
    snprintf(buf, sizeof buf, "errno %d", e);
    return buf;
}

__attribute__((format(printf, 3, 0)))
static int report(int status, const char *word, const char *fmt, va_list ap)
{
    printf("%s: %s (", action, word);
    vprintf(fmt, ap);
    printf(")\n");
    fflush(stdout);
    return status;
}

/* exit 0: the forbidden action failed */
__attribute__((format(printf, 1, 2)))
static int refused(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = report(0, "refused", fmt, ap);
    va_end(ap);
    return r;
}

/* exit 1: the forbidden action succeeded */
__attribute__((format(printf, 1, 2)))
static int escaped(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = report(1, "ESCAPED", fmt, ap);
    va_end(ap);
    return r;
}

/* exit 2: usage error or a situation the probe cannot judge */
__attribute__((format(printf, 1, 2)))
static int failure(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = report(2, "error", fmt, ap);
    va_end(ap);
    return r;
}

/* Appends printf output to a fixed buffer (silently truncating). */
__attribute__((format(printf, 3, 4)))
static void append(char *buf, size_t size, const char *fmt, ...)
{
    size_t len = strlen(buf);
    if (len + 1 >= size)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, size - len, fmt, ap);
    va_end(ap);
}

static int parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Waits for pid until it has exited or been killed (skipping ptrace stops). */
static void reap(pid_t pid)
{
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, __WALL);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        if (WIFEXITED(st) || WIFSIGNALED(st))
            return;
    }
}

static void kill_and_reap(pid_t pid)
{
    kill(pid, SIGKILL);
    reap(pid);
}

/* Forks a child that just sleeps in pause() and dies with its parent. */
static pid_t spawn_pauser(void)
{
    pid_t parent = getpid();
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, (unsigned long)SIGKILL, 0UL, 0UL, 0UL);
        if (getppid() != parent)
            _exit(0);
        for (;;)
            pause();
    }
    return pid;
}

/* Raw, fork-like clone3. Returns 0 when it worked (child reaped), else errno. */
static int try_clone3(void)
{
    struct probe_clone_args args;
    memset(&args, 0, sizeof args);
    args.exit_signal = SIGCHLD;
    fflush(stdout);
    long r = syscall(SYS_clone3, &args, sizeof args);
    if (r == 0)
        _exit(0); /* child */
    if (r < 0)
        return errno;
    reap((pid_t)r);
    return 0;
}

/* ------------------------------------------------------------------------- */
/* Actions                                                                   */
/* ------------------------------------------------------------------------- */

/* read-file PATH: reading a host secret (/etc/shadow) or browsing host
 * directories (/root, /home, /var/lib) would leak data from outside the jail.
 * A directory counts as escaped only if it lists entries (an empty mount
 * point in the minimal root reveals nothing). */
static int act_read_file(int argc, char **argv)
{
    (void)argc;
    const char *path = argv[2];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return refused("open: %s", errname(errno));
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        DIR *d = fdopendir(fd);
        if (!d) {
            int e = errno;
            close(fd);
            return refused("opendir: %s", errname(e));
        }
        long n = 0;
        struct dirent *de;
        errno = 0;
        while ((de = readdir(d)) != NULL)
            if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                n++;
        int e = errno;
        closedir(d);
        if (n > 0)
            return escaped("directory %s lists %ld entries", path, n);
        if (e)
            return refused("readdir: %s", errname(e));
        return refused("empty directory");
    }
    char buf[4096];
    ssize_t r;
    do
        r = read(fd, buf, sizeof buf);
    while (r < 0 && errno == EINTR);
    int e = errno;
    close(fd);
    if (r < 0)
        return refused("read: %s", errname(e));
    return escaped("read %zd bytes from %s", r, path);
}

/* environ-of-1: informational. /proc/1/environ of the jail's pid 1 must hold
 * only the allowed variables (no host secrets leaked through the environment).
 * Prints "environ-of-1: A=1,B=2"; if the file cannot be read, prints
 * "environ-of-1: refused (<errno>)". Exit 0 either way; the harness compares. */
static int act_environ_of_1(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    int fd = open("/proc/1/environ", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return refused("open: %s", errname(errno));
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap + 1);
    if (!buf)
        return failure("malloc failed");
    for (;;) {
        if (len == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb)
                return failure("realloc failed");
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            return refused("read: %s", errname(e));
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    /* Entries are NUL-terminated; join the non-empty ones with ','. */
    printf("environ-of-1: ");
    int first = 1;
    for (size_t i = 0; i < len;) {
        size_t n = strnlen(buf + i, len - i);
        if (n > 0) {
            printf("%s%.*s", first ? "" : ",", (int)n, buf + i);
            first = 0;
        }
        i += n + 1;
    }
    printf("\n");
    fflush(stdout);
    free(buf);
    return 0;
}

/* write-file PATH: the root (/, /etc, /usr) and /proc must be read-only;
 * writing there would let the job tamper with binaries or kernel knobs.
 * A file we create is removed again; an existing file is only opened for
 * writing (which already proves the hole) and left unmodified. */
static int act_write_file(int argc, char **argv)
{
    (void)argc;
    const char *path = argv[2];
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 && errno == EEXIST) {
        fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (fd < 0)
            return refused("open existing: %s", errname(errno));
        close(fd);
        return escaped("opened existing %s for writing", path);
    }
    if (fd < 0)
        return refused("open: %s", errname(errno));
    ssize_t w = write(fd, "x\n", 2);
    int e = errno;
    close(fd);
    unlink(path);
    if (w < 0)
        return escaped("created %s (write then failed: %s)", path, errname(e));
    return escaped("created and wrote %s", path);
}

/* connect-tcp HOST PORT: the jail has its own network namespace; reaching a
 * host service (even on 127.0.0.1) means network isolation failed. */
static int act_connect_tcp(int argc, char **argv)
{
    (void)argc;
    struct sockaddr_in sa;
    long port;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    if (inet_pton(AF_INET, argv[2], &sa.sin_addr) != 1)
        return failure("usage: connect-tcp IPV4 PORT (bad address %s)", argv[2]);
    if (parse_long(argv[3], 1, 65535, &port) < 0)
        return failure("usage: connect-tcp IPV4 PORT (bad port %s)", argv[3]);
    sa.sin_port = htons((uint16_t)port);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s < 0)
        return refused("socket: %s", errname(errno));
    if (connect(s, (struct sockaddr *)&sa, sizeof sa) == 0) {
        close(s);
        return escaped("connected to %s:%ld", argv[2], port);
    }
    if (errno != EINPROGRESS) {
        int e = errno;
        close(s);
        return refused("connect: %s", errname(e));
    }
    /* Non-blocking connect with a 5 s bound so a dropped SYN cannot hang us. */
    struct pollfd pfd = { .fd = s, .events = POLLOUT };
    int pr;
    do
        pr = poll(&pfd, 1, 5000);
    while (pr < 0 && errno == EINTR);
    if (pr == 0) {
        close(s);
        return refused("connect: timed out after 5 s");
    }
    int err = 0;
    socklen_t el = sizeof err;
    if (pr < 0 || getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
        err = errno;
    close(s);
    if (err)
        return refused("connect: %s", errname(err));
    return escaped("connected to %s:%ld", argv[2], port);
}

/* connect-abstract NAME: abstract AF_UNIX names are scoped by network
 * namespace (and Landlock); reaching a host listener (e.g. a container
 * runtime or D-Bus style socket) would be an escape route. */
static int act_connect_abstract(int argc, char **argv)
{
    (void)argc;
    const char *name = argv[2];
    struct sockaddr_un su;
    memset(&su, 0, sizeof su);
    su.sun_family = AF_UNIX;
    size_t n = strlen(name);
    if (n + 1 > sizeof su.sun_path)
        return failure("usage: connect-abstract NAME (name too long)");
    su.sun_path[0] = '\0';
    memcpy(su.sun_path + 1, name, n);
    socklen_t sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return refused("socket: %s", errname(errno));
    if (connect(s, (struct sockaddr *)&su, sl) < 0) {
        int e = errno;
        close(s);
        return refused("connect: %s", errname(e));
    }
    close(s);
    return escaped("connected to abstract socket @%s", name);
}

/* ptrace: ptrace is a classic seccomp/sandbox bypass (a tracer can rewrite
 * syscalls of a tracee) and must be denied outright, even on our own child.
 * Tries PTRACE_ATTACH on a paused child and PTRACE_TRACEME in another child;
 * either one working is reported as escaped. */
static int act_ptrace(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    pid_t child = spawn_pauser();
    if (child < 0)
        return failure("fork: %s", errname(errno));
    int attach_err = 0;
    if (ptrace(PTRACE_ATTACH, child, NULL, NULL) == 0) {
        int st;
        while (waitpid(child, &st, __WALL) < 0 && errno == EINTR)
            ;
        ptrace(PTRACE_DETACH, child, NULL, NULL);
    } else {
        attach_err = errno;
    }
    kill_and_reap(child);

    /* PTRACE_TRACEME in a second child; it reports its errno through a pipe. */
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return failure("pipe: %s", errname(errno));
    fflush(stdout);
    pid_t c2 = fork();
    if (c2 < 0)
        return failure("fork: %s", errname(errno));
    if (c2 == 0) {
        close(p[0]);
        int e = ptrace(PTRACE_TRACEME, 0, NULL, NULL) == 0 ? 0 : errno;
        if (write(p[1], &e, sizeof e) != (ssize_t)sizeof e)
            _exit(3);
        _exit(0);
    }
    close(p[1]);
    int traceme_err = -1;
    ssize_t r;
    do
        r = read(p[0], &traceme_err, sizeof traceme_err);
    while (r < 0 && errno == EINTR);
    close(p[0]);
    kill_and_reap(c2);
    if (r != (ssize_t)sizeof traceme_err)
        return failure("PTRACE_TRACEME child did not report");

    const char *a = attach_err ? errname(attach_err) : "ok";
    char tbuf[32];
    snprintf(tbuf, sizeof tbuf, "%s", traceme_err ? errname(traceme_err) : "ok");
    if (attach_err == 0 || traceme_err == 0)
        return escaped("PTRACE_ATTACH=%s PTRACE_TRACEME=%s", a, tbuf);
    return refused("PTRACE_ATTACH=%s PTRACE_TRACEME=%s", a, tbuf);
}

/* mount [DIR]: mounting needs CAP_SYS_ADMIN; being able to mount would let
 * the job reshape its filesystem view (and is a prerequisite of many escapes). */
static int act_mount(int argc, char **argv)
{
    const char *dir = argc > 2 ? argv[2] : "/tmp";
    if (mount("none", dir, "tmpfs", 0, NULL) < 0)
        return refused("mount tmpfs on %s: %s", dir, errname(errno));
    umount2(dir, MNT_DETACH);
    return escaped("mounted tmpfs on %s", dir);
}

/* Runs unshare(flag) in a throw-away child so one success (e.g. a new user
 * namespace, which grants capabilities) cannot influence the next attempt.
 * Returns 0 if it worked, the errno otherwise, -1 if the child misbehaved. */
static int unshare_in_child(int flag)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        if (unshare(flag) == 0)
            _exit(0);
        _exit(errno > 0 && errno < 256 ? errno : 255);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* unshare: new user/mount/net namespaces are the first step of most kernel
 * exploits (user namespaces expose lots of privileged kernel code). */
static int act_unshare(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    static const struct { int flag; const char *name; } ns[] = {
        { CLONE_NEWUSER, "CLONE_NEWUSER" },
        { CLONE_NEWNS, "CLONE_NEWNS" },
        { CLONE_NEWNET, "CLONE_NEWNET" },
    };
    char worked[128] = "", detail[256] = "";
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        int e = unshare_in_child(ns[i].flag);
        if (e < 0)
            return failure("fork/wait for %s failed", ns[i].name);
        if (e == 0)
            append(worked, sizeof worked, "%s%s", worked[0] ? "," : "", ns[i].name);
        append(detail, sizeof detail, "%s%s=%s", detail[0] ? " " : "", ns[i].name,
               e == 0 ? "ok" : errname(e));
    }
    if (worked[0])
        return escaped("unshare(%s) worked", worked);
    return refused("%s", detail);
}

/* setns [NSFILE]: joining a namespace (own or pid 1's) needs CAP_SYS_ADMIN;
 * if allowed, a job could join namespaces it can get a handle on. */
static int act_setns(int argc, char **argv)
{
    const char *path = argc > 2 ? argv[2] : "/proc/self/ns/net";
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return refused("open %s: %s", path, errname(errno));
    if (setns(fd, 0) < 0) {
        int e = errno;
        close(fd);
        return refused("setns %s: %s", path, errname(e));
    }
    close(fd);
    return escaped("setns(%s) worked", path);
}

/* clone-newuser: same attack as unshare(CLONE_NEWUSER) but via raw clone
 * flags, which a filter that only watches unshare() would miss. */
static int act_clone_newuser(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fflush(stdout);
    long r = syscall(SYS_clone, (unsigned long)(CLONE_NEWUSER | SIGCHLD), 0UL, 0UL, 0UL, 0UL);
    if (r == 0)
        _exit(0); /* child */
    if (r < 0)
        return refused("clone: %s", errname(errno));
    reap((pid_t)r);
    return escaped("clone(CLONE_NEWUSER) created pid %ld", r);
}

/* clone3: seccomp cannot inspect clone3's flags (they live in memory), so
 * the jail must answer ENOSYS to force libc back to clone(). A success is not
 * a hole by itself, but means the policy changed: report it with exit 1. */
static int act_clone3(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    int e = try_clone3();
    if (e)
        return refused("%s", errname(e));
    printf("clone3: allowed\n");
    fflush(stdout);
    return 1;
}

/* bpf: unprivileged eBPF has been a rich source of kernel exploits; even
 * creating a trivial array map must fail. */
static int act_bpf(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    struct probe_bpf_map_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 1;
    long fd = syscall(SYS_bpf, (long)BPF_MAP_CREATE, &attr, (unsigned long)sizeof attr);
    if (fd < 0)
        return refused("bpf(BPF_MAP_CREATE): %s", errname(errno));
    close((int)fd);
    return escaped("bpf(BPF_MAP_CREATE) returned fd %ld", fd);
}

/* keyctl: kernel keyrings are not namespaced; a job could read or plant keys
 * shared with other processes of the same uid on the host. */
static int act_keyctl(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    long k = syscall(SYS_add_key, "user", "probe", "x", 1UL, (long)KEY_SPEC_PROCESS_KEYRING);
    int ke = k < 0 ? errno : 0;
    long g = syscall(SYS_keyctl, (long)KEYCTL_GET_KEYRING_ID, (long)KEY_SPEC_SESSION_KEYRING, 0L);
    int ge = g < 0 ? errno : 0;
    char a[32];
    snprintf(a, sizeof a, "%s", ke ? errname(ke) : "ok");
    const char *b = ge ? errname(ge) : "ok";
    if (ke == 0 || ge == 0)
        return escaped("add_key=%s keyctl(GET_KEYRING_ID)=%s", a, b);
    return refused("add_key=%s keyctl(GET_KEYRING_ID)=%s", a, b);
}

/* io-uring: io_uring performs I/O outside the syscall path seccomp sees and
 * has had many kernel bugs; setup must fail. */
static int act_io_uring(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    struct probe_io_uring_params params;
    memset(&params, 0, sizeof params);
    long fd = syscall(SYS_io_uring_setup, 4L, &params);
    if (fd < 0)
        return refused("io_uring_setup: %s", errname(errno));
    close((int)fd);
    return escaped("io_uring_setup returned fd %ld", fd);
}

/* userfaultfd: lets a job stall the kernel mid-copy, a standard trick to
 * widen race windows in kernel exploits. */
static int act_userfaultfd(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    long fd = syscall(SYS_userfaultfd, (long)O_CLOEXEC);
    if (fd < 0)
        return refused("userfaultfd: %s", errname(errno));
    close((int)fd);
    return escaped("userfaultfd returned fd %ld", fd);
}

/* tiocsti / tiocsti-high: TIOCSTI pushes characters into a terminal's input
 * queue, so a job sharing a tty with a shell outside could type commands into
 * it. `tiocsti-high` sets the upper 32 bits of the request: the kernel only
 * looks at the low 32 bits, so a filter comparing all 64 bits would miss it.
 * Tries fd 0, fd 1 and /dev/tty (if it opens). EPERM on a non-tty fd can only
 * come from seccomp (the kernel would say ENOTTY), so it proves the filter. */
static int tiocsti_common(int high)
{
    int fds[3] = { 0, 1, -1 };
    const char *names[3] = { "fd0", "fd1", "/dev/tty" };
    int n = 2;
    int tty = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    int tty_err = tty < 0 ? errno : 0;
    if (tty >= 0)
        fds[n++] = tty;

    char detail[256] = "";
    int ok = 0, refusals = 0, filter_proof = 0;
    for (int i = 0; i < n; i++) {
        char c = 'x';
        long r;
        if (high)
            r = syscall(SYS_ioctl, (long)fds[i], 0xdeadbeef00005412UL, &c);
        else
            r = ioctl(fds[i], TIOCSTI, &c);
        int e = r < 0 ? errno : 0;
        if (r == 0) {
            ok++;
        } else if (e == EPERM || e == EIO) { /* EIO: dev.tty.legacy_tiocsti=0 */
            refusals++;
            if (e == EPERM && !isatty(fds[i]))
                filter_proof = 1;
        }
        append(detail, sizeof detail, "%s%s=%s", i ? " " : "", names[i],
               r == 0 ? "INJECTED" : errname(e));
    }
    if (tty < 0)
        append(detail, sizeof detail, " /dev/tty=%s(open)", errname(tty_err));
    else
        close(tty);
    if (filter_proof)
        append(detail, sizeof detail, "; EPERM on a non-tty fd: filter");

    if (ok)
        return escaped("%s", detail);
    if (refusals == n)
        return refused("%s", detail);
    /* Some attempt failed with ENOTTY/EBADF/...: the filter did not stop it
     * and there was no terminal to prove an injection on. */
    printf("%s: inconclusive (%s; no terminal to test on)\n", action, detail);
    fflush(stdout);
    return 2;
}

static int act_tiocsti(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return tiocsti_common(0);
}

static int act_tiocsti_high(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return tiocsti_common(1);
}

/* kill-all: kill(-1, SIGKILL) hits every process we may signal; the pid
 * namespace must confine that to the jail (the harness checks that a host
 * sentinel survives). kill(-1) spares the caller, but the probe may still die
 * if the jail tears down, hence the line is printed first. The probe is alone
 * in its jail, so kill must find nobody to signal (ESRCH): exit 0; if it
 * signalled anyone, exit 1 (and say so on stderr). */
static int act_kill_all(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("kill-all: sent\n");
    fflush(stdout);
    if (kill(-1, SIGKILL) < 0 && errno == ESRCH)
        return 0;
    fprintf(stderr, "kill-all: kill(-1) signalled some process\n");
    return 1;
}

/* membarrier: its global command interrupts every CPU of the host, a cheap
 * way to slow down everyone else. The policy answers EPERM instead of
 * killing, because the .NET runtime probes membarrier and falls back when it
 * fails: a kill here (SIGSYS) would break the runtime, a success is a hole.
 * Both the harmless query and the global barrier are tried. */
static int act_membarrier(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    long q = syscall(SYS_membarrier, 0L /* MEMBARRIER_CMD_QUERY */, 0L, 0L);
    int qe = q < 0 ? errno : 0;
    long g = syscall(SYS_membarrier, 1L /* MEMBARRIER_CMD_GLOBAL */, 0L, 0L);
    int ge = g < 0 ? errno : 0;
    char a[32];
    snprintf(a, sizeof a, "%s", qe ? errname(qe) : "ok");
    const char *b = ge ? errname(ge) : "ok";
    if (qe == 0 || ge == 0)
        return escaped("query=%s global=%s", a, b);
    return refused("query=%s global=%s", a, b);
}

/* exec-sh [SHELL]: the minimal root must not contain a shell (or any exec
 * of one must fail). A child execs `/bin/sh -c 'exit 42'`; exit 42 proves the
 * shell ran. An exec failure is reported through a close-on-exec pipe. */
static int act_exec_sh(int argc, char **argv)
{
    const char *sh = argc > 2 ? argv[2] : "/bin/sh";
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return failure("pipe: %s", errname(errno));
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return failure("fork: %s", errname(errno));
    if (pid == 0) {
        close(p[0]);
        execl(sh, "sh", "-c", "exit 42", (char *)NULL);
        int e = errno;
        if (write(p[1], &e, sizeof e) != (ssize_t)sizeof e)
            _exit(126);
        _exit(127);
    }
    close(p[1]);
    int exec_err = 0;
    ssize_t r;
    do
        r = read(p[0], &exec_err, sizeof exec_err);
    while (r < 0 && errno == EINTR);
    close(p[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 42)
        return escaped("%s ran (exit 42)", sh);
    if (r == (ssize_t)sizeof exec_err)
        return refused("execl %s: %s", sh, errname(exec_err));
    if (WIFSIGNALED(st))
        return refused("child killed by signal %d", WTERMSIG(st));
    return refused("child exited %d", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

/* seccomp-change: tries to replace the jail's filter with an allow-all one
 * (via seccomp() and via prctl()). Filters only ever stack, so even a
 * successful install must leave the old filter in force; we check that with
 * unshare(CLONE_NEWNS) (must still fail) and clone3 (if it was blocked before,
 * it must still be blocked afterwards). */
static int act_seccomp_change(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    int clone3_before = try_clone3();

    prctl(PR_SET_NO_NEW_PRIVS, 1UL, 0UL, 0UL, 0UL);
    struct probe_sock_filter insn = { BPF_RET | BPF_K, 0, 0, SECCOMP_RET_ALLOW };
    struct probe_sock_fprog prog = { 1, &insn };
    long s1 = syscall(SYS_seccomp, (long)SECCOMP_SET_MODE_FILTER, 0L, &prog);
    int e1 = s1 < 0 ? errno : 0;
    int s2 = prctl(PR_SET_SECCOMP, (unsigned long)SECCOMP_MODE_FILTER, &prog, 0UL, 0UL);
    int e2 = s2 < 0 ? errno : 0;

    int u = unshare(CLONE_NEWNS);
    int ue = u < 0 ? errno : 0;
    int clone3_after = try_clone3();

    char a[32], b[32], c[32];
    snprintf(a, sizeof a, "%s", e1 ? errname(e1) : "ok");
    snprintf(b, sizeof b, "%s", e2 ? errname(e2) : "ok");
    snprintf(c, sizeof c, "%s", clone3_after ? errname(clone3_after) : "ok");
    if (u == 0)
        return escaped("seccomp=%s prctl=%s, then unshare(CLONE_NEWNS) worked", a, b);
    if (clone3_before != 0 && clone3_after == 0)
        return escaped("seccomp=%s prctl=%s, then clone3 was unblocked (was %s)", a, b,
                       errname(clone3_before));
    if (e1 && e2)
        return refused("seccomp=%s prctl=%s unshare=%s clone3=%s", a, b, errname(ue), c);
    return refused("allow-all filter stacked (seccomp=%s prctl=%s) but old filter holds: "
                   "unshare=%s clone3=%s",
                   a, b, errname(ue), c);
}

/* write-cgroup: writing cgroup.procs (or creating a sibling cgroup) would let
 * a job move itself out of its resource limits. Opening for writing is
 * enough to prove the hole; nothing is written. */
static int act_write_cgroup(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    static const char *files[] = {
        "/sys/fs/cgroup/cgroup.procs",
        "/sys/fs/cgroup/memory/cgroup.procs",
        "/sys/fs/cgroup/pids/cgroup.procs",
    };
    char detail[512] = "", opened[256] = "";
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        int fd = open(files[i], O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            close(fd);
            append(opened, sizeof opened, "%s%s", opened[0] ? "," : "", files[i]);
        }
        append(detail, sizeof detail, "%s%s=%s", i ? " " : "", files[i] + 15,
               fd >= 0 ? "ok" : errname(errno));
    }
    const char *dir = "/sys/fs/cgroup/escape";
    int m = mkdir(dir, 0755);
    int me = m < 0 ? errno : 0;
    if (m == 0) {
        rmdir(dir);
        append(opened, sizeof opened, "%smkdir %s", opened[0] ? "," : "", dir);
    }
    append(detail, sizeof detail, " mkdir=%s", m == 0 ? "ok" : errname(me));
    if (opened[0])
        return escaped("writable: %s", opened);
    return refused("%s", detail);
}

/* fill-scratch DIR LIMIT_BYTES: the scratch tmpfs must be size-limited so a
 * job cannot exhaust host memory/disk. Writes 1 MiB chunks to DIR/fill until
 * a write fails; stops by itself once LIMIT + 1 MiB is exceeded. The file is
 * removed at the end. SIGXFSZ is ignored so RLIMIT_FSIZE shows up as EFBIG. */
static int act_fill_scratch(int argc, char **argv)
{
    (void)argc;
    static char chunk[1024 * 1024];
    char *end;
    errno = 0;
    unsigned long long limit = strtoull(argv[3], &end, 10);
    if (errno || end == argv[3] || *end)
        return failure("usage: fill-scratch DIR LIMIT_BYTES (bad limit %s)", argv[3]);
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/fill", argv[2]) >= sizeof path)
        return failure("path too long");
    signal(SIGXFSZ, SIG_IGN);
    memset(chunk, 'f', sizeof chunk);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return failure("open %s: %s", path, errname(errno));
    unsigned long long total = 0, bound = limit + MIB;
    int err = 0;
    while (total <= bound) {
        ssize_t w = write(fd, chunk, sizeof chunk);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            err = errno;
            break;
        }
        if (w == 0) {
            err = ENOSPC;
            break;
        }
        total += (unsigned long long)w;
    }
    close(fd);
    unlink(path);
    if (total > bound)
        return escaped("wrote %llu bytes, more than limit %llu + 1 MiB", total, limit);
    if (err == ENOSPC || err == EFBIG || err == EDQUOT)
        return refused("%s after %llu bytes", errname(err), total);
    return failure("write failed with %s after %llu bytes", errname(err), total);
}

/* fork-bomb: the pids cgroup must stop runaway forking (EAGAIN) long before
 * the host's process table is in danger. Children pause and are killed and
 * reaped individually (kill(0, ...) would kill the probe too). */
#ifndef BOMB_MAX
#define BOMB_MAX 10000
#endif
static int act_fork_bomb(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    static pid_t pids[BOMB_MAX];
    int n = 0, err = 0;
    while (n < BOMB_MAX) {
        pid_t p = spawn_pauser();
        if (p < 0) {
            err = errno;
            break;
        }
        pids[n++] = p;
    }
    for (int i = 0; i < n; i++)
        kill(pids[i], SIGKILL);
    for (int i = 0; i < n; i++)
        reap(pids[i]);
    if (n < BOMB_MAX && err == EAGAIN)
        return refused("stopped after %d forks: EAGAIN", n);
    if (n >= BOMB_MAX)
        return escaped("%d forks succeeded", n);
    return escaped("fork failed after %d forks with %s, not EAGAIN", n, errname(err));
}

/* memory-hog: the memory cgroup must OOM-kill us (silently) before the host
 * suffers. Chunks are chained through a volatile pointer so the compiler
 * cannot drop the allocations or the memset. */
static void *volatile hog_head;
static int act_memory_hog(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    const size_t size = 16 * MIB;
    unsigned long mib = 0;
    for (;;) {
        char *p = malloc(size);
        if (!p)
            return refused("malloc failed after %lu MiB", mib);
        memset(p, 0xa5, size);
        void *prev = hog_head;
        memcpy(p, &prev, sizeof prev);
        hog_head = p;
        mib += 16;
    }
}

/* spin: burns CPU forever (for CPU-limit and wall-clock timeout tests). */
static int act_spin(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    volatile unsigned long counter = 0;
    for (;;)
        counter++;
    return 0; /* not reached */
}

/* sleep SECONDS: blocks without using CPU (for timeout tests). */
static int act_sleep(int argc, char **argv)
{
    (void)argc;
    char *end;
    double secs = strtod(argv[2], &end);
    if (end == argv[2] || *end || !(secs >= 0) || secs > 1e9)
        return failure("usage: sleep SECONDS (bad value %s)", argv[2]);
    struct timespec ts = { (time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9) };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
    printf("sleep: slept %s s\n", argv[2]);
    fflush(stdout);
    return 0;
}

/* identity: informational; the job must run as a non-root uid/gid with no
 * supplementary groups. Exit 0 if so, 1 otherwise. */
static int act_identity(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0)
        return failure("getresuid/getresgid: %s", errname(errno));
    int ng = getgroups(0, NULL);
    if (ng < 0)
        return failure("getgroups: %s", errname(errno));
    printf("identity: uid=%u/%u/%u gid=%u/%u/%u groups=%d\n", (unsigned)ru, (unsigned)eu,
           (unsigned)su, (unsigned)rg, (unsigned)eg, (unsigned)sg, ng);
    fflush(stdout);
    int root = ru == 0 || eu == 0 || su == 0 || rg == 0 || eg == 0 || sg == 0;
    return (root || ng != 0) ? 1 : 0;
}

/* Copies the value of "Key:\t value" into dst if line starts with key. */
static void status_field(const char *line, const char *key, char *dst, size_t size)
{
    size_t kl = strlen(key);
    if (strncmp(line, key, kl) != 0 || line[kl] != ':')
        return;
    const char *v = line + kl + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    size_t n = strcspn(v, "\n");
    if (n >= size)
        n = size - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static int all_zero(const char *s)
{
    return s[0] != '\0' && s[strspn(s, "0")] == '\0';
}

/* caps: informational; every capability set (including the bounding and
 * ambient sets) must be empty. Also shows NoNewPrivs and Seccomp mode. */
static int act_caps(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    FILE *f = fopen("/proc/self/status", "re");
    if (!f)
        return failure("open /proc/self/status: %s", errname(errno));
    char inh[32] = "?", prm[32] = "?", eff[32] = "?", bnd[32] = "?", amb[32] = "?";
    char nnp[32] = "?", sec[32] = "?", line[512];
    while (fgets(line, sizeof line, f)) {
        status_field(line, "CapInh", inh, sizeof inh);
        status_field(line, "CapPrm", prm, sizeof prm);
        status_field(line, "CapEff", eff, sizeof eff);
        status_field(line, "CapBnd", bnd, sizeof bnd);
        status_field(line, "CapAmb", amb, sizeof amb);
        status_field(line, "NoNewPrivs", nnp, sizeof nnp);
        status_field(line, "Seccomp", sec, sizeof sec);
    }
    fclose(f);
    printf("caps: inh=%s prm=%s eff=%s bnd=%s amb=%s nnp=%s seccomp=%s\n", inh, prm, eff, bnd,
           amb, nnp, sec);
    fflush(stdout);
    const char *sets[] = { inh, prm, eff, bnd, amb };
    int zero = 1;
    for (int i = 0; i < 5; i++) {
        if (strcmp(sets[i], "?") == 0)
            return 2; /* a field is missing: cannot judge */
        if (!all_zero(sets[i]))
            zero = 0;
    }
    return zero ? 0 : 1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* env: informational; prints the environment sorted, joined by ','. */
extern char **environ;
static int act_env(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **v = malloc((n + 1) * sizeof *v);
    if (!v)
        return failure("malloc failed");
    for (size_t i = 0; i < n; i++)
        v[i] = environ[i];
    qsort(v, n, sizeof *v, cmp_str);
    printf("env: ");
    for (size_t i = 0; i < n; i++)
        printf("%s%s", i ? "," : "", v[i]);
    printf("\n");
    fflush(stdout);
    free(v);
    return 0;
}

/* echo [STATUS]: copies stdin to stdout until EOF, then exits with STATUS. */
static int act_echo(int argc, char **argv)
{
    long status = 0;
    if (argc > 2 && parse_long(argv[2], 0, 255, &status) < 0)
        return failure("usage: echo [STATUS 0-255]");
    static char buf[65536];
    for (;;) {
        ssize_t r = read(0, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            fprintf(stderr, "echo: read: %s\n", errname(errno));
            return 2;
        }
        if (r == 0)
            break;
        for (ssize_t off = 0; off < r;) {
            ssize_t w = write(1, buf + off, (size_t)(r - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                fprintf(stderr, "echo: write: %s\n", errname(errno));
                return 2;
            }
            off += w;
        }
    }
    return (int)status;
}

/* exit CODE: exits with CODE (exit-code pass-through tests). */
static int act_exit(int argc, char **argv)
{
    (void)argc;
    long code;
    if (parse_long(argv[2], 0, 255, &code) < 0)
        return failure("usage: exit CODE (0-255)");
    return (int)code;
}

/* harmless DIR: the negative control. Ordinary work must keep working in the
 * jail: file I/O in the scratch dir, /proc/self/exe, computation, pipes,
 * fork+wait. Exit 1 (naming the step) means the jail broke allowed work. */
static int harmless_fail(const char *step, int e)
{
    printf("harmless: FAILED at %s (%s)\n", step, e ? errname(e) : "wrong result");
    fflush(stdout);
    return 1;
}

static int act_harmless(int argc, char **argv)
{
    (void)argc;
    static const char text[] = "hello from the probe\n";
    char path[4096], back[64];
    if ((size_t)snprintf(path, sizeof path, "%s/harmless.txt", argv[2]) >= sizeof path)
        return failure("path too long");

    /* 1. write, read back and delete a file in the scratch dir */
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return harmless_fail("create file", errno);
    if (write(fd, text, sizeof text - 1) != (ssize_t)(sizeof text - 1))
        return harmless_fail("write file", errno);
    if (close(fd) < 0)
        return harmless_fail("close file", errno);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return harmless_fail("reopen file", errno);
    ssize_t r = read(fd, back, sizeof back);
    int e = errno;
    close(fd);
    if (r < 0)
        return harmless_fail("read file", e);
    if (r != (ssize_t)(sizeof text - 1) || memcmp(back, text, sizeof text - 1) != 0)
        return harmless_fail("compare file", 0);
    if (unlink(path) < 0)
        return harmless_fail("delete file", errno);

    /* 2. readlink /proc/self/exe */
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return harmless_fail("readlink /proc/self/exe", n < 0 ? errno : 0);

    /* 3. compute: sum of the primes below 10000 is 5736396 */
    unsigned long sum = 0;
    for (unsigned long k = 2; k < 10000; k++) {
        int prime = 1;
        for (unsigned long d = 2; d * d <= k; d++)
            if (k % d == 0) {
                prime = 0;
                break;
            }
        if (prime)
            sum += k;
    }
    if (sum != 5736396UL)
        return harmless_fail("compute", 0);

    /* 4. pipe + fork + wait: the child sends a byte and exits 7 */
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return harmless_fail("pipe", errno);
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return harmless_fail("fork", errno);
    if (pid == 0) {
        close(p[0]);
        _exit(write(p[1], "k", 1) == 1 ? 7 : 8);
    }
    close(p[1]);
    char c = 0;
    do
        r = read(p[0], &c, 1);
    while (r < 0 && errno == EINTR);
    close(p[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return harmless_fail("waitpid", errno);
    if (r != 1 || c != 'k')
        return harmless_fail("pipe read", r < 0 ? errno : 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 7)
        return harmless_fail("child exit status", 0);

    printf("harmless: ok\n");
    fflush(stdout);
    return 0;
}

/* ------------------------------------------------------------------------- */
/* Dispatch                                                                  */
/* ------------------------------------------------------------------------- */
static const struct {
    const char *name;
    int nargs; /* required arguments after the action name */
    const char *usage;
    int (*fn)(int, char **);
} actions[] = {
    { "read-file", 1, "PATH", act_read_file },
    { "environ-of-1", 0, "", act_environ_of_1 },
    { "write-file", 1, "PATH", act_write_file },
    { "connect-tcp", 2, "IPV4 PORT", act_connect_tcp },
    { "connect-abstract", 1, "NAME", act_connect_abstract },
    { "ptrace", 0, "", act_ptrace },
    { "mount", 0, "[DIR]", act_mount },
    { "unshare", 0, "", act_unshare },
    { "setns", 0, "[NSFILE]", act_setns },
    { "clone-newuser", 0, "", act_clone_newuser },
    { "clone3", 0, "", act_clone3 },
    { "bpf", 0, "", act_bpf },
    { "keyctl", 0, "", act_keyctl },
    { "io-uring", 0, "", act_io_uring },
    { "userfaultfd", 0, "", act_userfaultfd },
    { "tiocsti", 0, "", act_tiocsti },
    { "tiocsti-high", 0, "", act_tiocsti_high },
    { "kill-all", 0, "", act_kill_all },
    { "membarrier", 0, "", act_membarrier },
    { "exec-sh", 0, "[SHELL]", act_exec_sh },
    { "seccomp-change", 0, "", act_seccomp_change },
    { "write-cgroup", 0, "", act_write_cgroup },
    { "fill-scratch", 2, "DIR LIMIT_BYTES", act_fill_scratch },
    { "fork-bomb", 0, "", act_fork_bomb },
    { "memory-hog", 0, "", act_memory_hog },
    { "spin", 0, "", act_spin },
    { "sleep", 1, "SECONDS", act_sleep },
    { "identity", 0, "", act_identity },
    { "caps", 0, "", act_caps },
    { "env", 0, "", act_env },
    { "echo", 0, "[STATUS]", act_echo },
    { "exit", 1, "CODE", act_exit },
    { "harmless", 1, "DIR", act_harmless },
};

int main(int argc, char **argv)
{
    if (argc < 2)
        return failure("usage: probe ACTION [ARGS...]");
    action = argv[1];
    for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++) {
        if (strcmp(actions[i].name, action) != 0)
            continue;
        if (argc - 2 < actions[i].nargs)
            return failure("usage: %s %s", actions[i].name, actions[i].usage);
        return actions[i].fn(argc, argv);
    }
    return failure("unknown action");
}
