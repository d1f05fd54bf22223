#define _GNU_SOURCE
#include "swiftlet_sys.h"
#include <unistd.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#if defined(__GLIBC__)
#include <malloc.h>
#include <sys/auxv.h>
#endif

int swiftlet_heap(swiftlet_heap_info *out) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    struct mallinfo2 m = mallinfo2();
    out->arena = m.arena;
    out->mmapped = m.hblkhd;
    out->in_use = m.uordblks + m.hblkhd;
    out->free = m.fordblks;
    out->releasable = m.keepcost;
    return 0;
#else
    out->arena = out->mmapped = out->in_use = out->free = out->releasable = 0;
    return -1;
#endif
}

int swiftlet_heap_trim(void) {
#if defined(__GLIBC__)
    return malloc_trim(0);
#else
    return 0;
#endif
}

static const char *tcache_key = "glibc.malloc.tcache_count";

#if defined(__GLIBC__)
/// The value of the last `glibc.malloc.tcache_count=` in a GLIBC_TUNABLES string (glibc
/// applies the last setting of a tunable), or NULL when it sets none.
static const char *tcache_setting(const char *tunables) {
    if (tunables == NULL) return NULL;
    size_t klen = strlen(tcache_key);
    const char *last = NULL;
    for (const char *p = strstr(tunables, tcache_key); p != NULL; p = strstr(p + 1, tcache_key)) {
        if ((p == tunables || p[-1] == ':') && p[klen] == '=') last = p + klen + 1;
    }
    return last;
}
#endif

int swiftlet_malloc_thread_cache_off(char *const argv[]) {
#if defined(__GLIBC__)
    const char *keep = getenv("SWIFTLET_MALLOC_TCACHE");
    if (keep != NULL && (strcmp(keep, "on") == 0 || strcmp(keep, "1") == 0)) return 0;
    // Secure-execution mode (setuid, file capabilities): glibc drops this tunable, and a
    // re-executed broker would not see it and re-execute again, forever.
    if (getauxval(AT_SECURE) != 0) return 0;
    // Re-executed once already (whatever glibc made of the variable): never twice.
    if (getenv("SWIFTLET_GLIBC_TUNABLES_BEFORE") != NULL) return 0;
    const char *before = getenv("GLIBC_TUNABLES");
    if (tcache_setting(before) != NULL) return 0;
    // Ours first: glibc 2.36 cuts the variable at its first ':' in the memory that
    // /proc/PID/environ shows (getenv sees all of it), and an operator looking there should
    // see the setting.
    size_t len = strlen(tcache_key) + 3 + (before != NULL ? strlen(before) : 0);
    char *value = malloc(len);
    char *saved = before != NULL ? strdup(before) : NULL;
    if (value == NULL || (before != NULL && saved == NULL)) {
        free(value);
        free(saved);
        errno = ENOMEM;
        return -1;
    }
    if (before != NULL && *before != '\0') snprintf(value, len, "%s=0:%s", tcache_key, before);
    else snprintf(value, len, "%s=0", tcache_key);
    if (setenv("SWIFTLET_GLIBC_TUNABLES_BEFORE", saved != NULL ? saved : "", 1) == 0
        && setenv("GLIBC_TUNABLES", value, 1) == 0) {
        execv("/proc/self/exe", argv);
    }
    // Still here: exec failed (no /proc, the binary replaced). Run as started.
    int err = errno;
    if (saved != NULL) setenv("GLIBC_TUNABLES", saved, 1); else unsetenv("GLIBC_TUNABLES");
    unsetenv("SWIFTLET_GLIBC_TUNABLES_BEFORE");
    free(value);
    free(saved);
    errno = err;
    return -1;
#else
    (void)argv;
    return 0;
#endif
}

int swiftlet_malloc_thread_cache_is_off(void) {
#if defined(__GLIBC__)
    const char *last = tcache_setting(getenv("GLIBC_TUNABLES"));
    // glibc reads the number as strtoul does with base 0 ("00" and "0x0" are 0 too).
    if (last == NULL || *last < '0' || *last > '9') return 0;
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(last, &end, 0);
    return errno == 0 && end != last && (*end == '\0' || *end == ':') && v == 0 ? 1 : 0;
#else
    return 0;
#endif
}

pid_t swiftlet_gettid(void) {
#if defined(__linux__)
    return (pid_t)syscall(SYS_gettid);
#else
    return getpid();
#endif
}

size_t swiftlet_usable_size(const void *p) {
#if defined(__GLIBC__)
    return malloc_usable_size((void *)p);
#else
    (void)p;
    return 0;
#endif
}

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>

static void child_fail(int fd, const char *step) {
    int e = errno;
    char buf[256];
    size_t n = 0;
    const char *why = strerror(e);
    for (const char *p = step; *p && n < sizeof(buf) - 2; p++) buf[n++] = *p;
    buf[n++] = ':';
    buf[n++] = ' ';
    for (const char *p = why; *p && n < sizeof(buf) - 1; p++) buf[n++] = *p;
    ssize_t w = write(fd, buf, n);
    (void)w;
    _exit(127);
}

/// Closes every descriptor from 3 up but `keep`: close_range where the kernel has it, else one
/// by one up to the descriptor limit (a broker with a million connections has that many).
static void close_others(int keep) {
#ifdef SYS_close_range
    int ok = 1;
    if (keep > 3 && syscall(SYS_close_range, 3u, (unsigned)keep - 1, 0u) != 0) ok = 0;
    if (ok && syscall(SYS_close_range, (unsigned)keep + 1, ~0u, 0u) == 0) return;
#endif
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > (1L << 21)) max = 1L << 21;
    for (long i = 3; i < max; i++) if (i != keep) close((int)i);
}

static int set_limit(int resource, long long soft, long long hard) {
    struct rlimit r;
    r.rlim_cur = (rlim_t)soft;
    r.rlim_max = (rlim_t)hard;
    return setrlimit(resource, &r);
}

int swiftlet_spawn_isolated(const char *path, char *const argv[], char *const envp[], int out_fd,
                            const swiftlet_isolation *iso, char *err, size_t err_len) {
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) {
        snprintf(err, err_len, "pipe: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, err_len, "fork: %s", strerror(errno));
        close(report[0]);
        close(report[1]);
        return -1;
    }
    if (pid == 0) {
        int fd = report[1];
        sigset_t none;
        sigemptyset(&none);
        for (int s = 1; s < NSIG; s++) signal(s, SIG_DFL);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull < 0 || dup2(devnull, 0) < 0) child_fail(fd, "stdin /dev/null");
        if (dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0) child_fail(fd, "output pipe");
        // Everything else but the report pipe (close-on-exec) goes.
        close_others(fd);
        if (iso->memory_max >= 0 && set_limit(RLIMIT_AS, iso->memory_max, iso->memory_max) != 0)
            child_fail(fd, "memory_max (RLIMIT_AS)");
        if (iso->open_files >= 0 && set_limit(RLIMIT_NOFILE, iso->open_files, iso->open_files) != 0)
            child_fail(fd, "open_files (RLIMIT_NOFILE)");
        if (iso->cpu_seconds >= 0 && set_limit(RLIMIT_CPU, iso->cpu_seconds, iso->cpu_seconds + 1) != 0)
            child_fail(fd, "cpu_seconds (RLIMIT_CPU)");
        if (iso->set_ids) {
            gid_t g = (gid_t)iso->gid;
            if (setgroups(1, &g) != 0) child_fail(fd, "setgroups");
            if (setgid(g) != 0) child_fail(fd, "setgid");
            if (setuid((uid_t)iso->uid) != 0) child_fail(fd, "setuid");
        }
        execve(path, argv, envp);
        child_fail(fd, "exec");
    }
    close(report[1]);
    char buf[256];
    ssize_t n;
    do { n = read(report[0], buf, sizeof(buf) - 1); } while (n < 0 && errno == EINTR);
    close(report[0]);
    if (n > 0) {
        buf[n] = 0;
        snprintf(err, err_len, "%s", buf);
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        return -1;
    }
    return pid;
}

#if defined(__linux__)
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

int swiftlet_watch_create(int *wake_fd) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) return -1;
    int w = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w < 0) { int e = errno; close(ep); errno = e; return -1; }
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0 };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, w, &ev) != 0) { int e = errno; close(w); close(ep); errno = e; return -1; }
    *wake_fd = w;
    return ep;
}

int swiftlet_watch_add(int ep, int fd, unsigned long long token) {
    struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT, .data.u64 = token };
    return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

int swiftlet_watch_remove(int ep, int fd) {
    struct epoll_event ev = { 0 };
    return epoll_ctl(ep, EPOLL_CTL_DEL, fd, &ev);
}

int swiftlet_watch_wait(int ep, int wake_fd, unsigned long long *tokens, int max, int timeout_ms) {
    struct epoll_event evs[64];
    if (max > 64) max = 64;
    int n = epoll_wait(ep, evs, max, timeout_ms);
    if (n < 0) return errno == EINTR ? 0 : -1;
    for (int i = 0; i < n; i++) {
        tokens[i] = evs[i].data.u64;
        if (tokens[i] == 0) {
            uint64_t v;
            while (read(wake_fd, &v, sizeof v) == (ssize_t)sizeof v) {}
        }
    }
    return n;
}

void swiftlet_watch_wake(int wake_fd) {
    uint64_t one = 1;
    ssize_t r = write(wake_fd, &one, sizeof one);
    (void)r;
}

int swiftlet_dup_cloexec(int fd) {
    return fcntl(fd, F_DUPFD_CLOEXEC, 0);
}

int swiftlet_socket_endpoint(int fd, int peer, char *host, size_t host_len, int *port) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int r = peer ? getpeername(fd, (struct sockaddr *)&ss, &len) : getsockname(fd, (struct sockaddr *)&ss, &len);
    if (r != 0) return -1;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        if (!inet_ntop(AF_INET, &a->sin_addr, host, (socklen_t)host_len)) return -1;
        *port = ntohs(a->sin_port);
        return 0;
    }
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        if (!inet_ntop(AF_INET6, &a->sin6_addr, host, (socklen_t)host_len)) return -1;
        *port = ntohs(a->sin6_port);
        return 0;
    }
    return -1;
}
#else
int swiftlet_watch_create(int *wake_fd) { (void)wake_fd; return -1; }
int swiftlet_watch_add(int ep, int fd, unsigned long long token) { (void)ep; (void)fd; (void)token; return -1; }
int swiftlet_watch_remove(int ep, int fd) { (void)ep; (void)fd; return -1; }
int swiftlet_watch_wait(int ep, int wake_fd, unsigned long long *tokens, int max, int timeout_ms) {
    (void)ep; (void)wake_fd; (void)tokens; (void)max; (void)timeout_ms; return -1;
}
void swiftlet_watch_wake(int wake_fd) { (void)wake_fd; }
int swiftlet_dup_cloexec(int fd) { (void)fd; return -1; }
int swiftlet_socket_endpoint(int fd, int peer, char *host, size_t host_len, int *port) {
    (void)fd; (void)peer; (void)host; (void)host_len; (void)port; return -1;
}
#endif
