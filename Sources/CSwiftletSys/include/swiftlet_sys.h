#ifndef SWIFTLET_SYS_H
#define SWIFTLET_SYS_H
#include <stddef.h>
#include <sys/types.h>

/// glibc's allocator figures (mallinfo2), in bytes.
typedef struct {
    size_t arena;        // non-mmapped space obtained from the system
    size_t mmapped;      // space in mmapped regions
    size_t in_use;       // allocated (uordblks)
    size_t free;         // free chunks inside the arena (fordblks)
    size_t releasable;   // top-most free chunk (keepcost)
} swiftlet_heap_info;

/// Fills `out`; returns 0, or -1 where mallinfo2 is not available.
int swiftlet_heap(swiftlet_heap_info *out);
/// malloc_trim(0): returns 1 when memory was released to the system.
int swiftlet_heap_trim(void);
/// Turns glibc's per-thread malloc cache off by re-executing the program (/proc/self/exe,
/// `argv` unchanged) with `glibc.malloc.tcache_count=0` put in front of GLIBC_TUNABLES, which
/// glibc reads only at start-up. Call first thing in main, before any thread starts. Returns
/// 0 without re-executing where it does not apply: not glibc; SWIFTLET_MALLOC_TCACHE is `on`
/// or `1` (the operator keeps the cache); GLIBC_TUNABLES already names tcache_count; secure
/// execution (setuid or file capabilities: glibc would drop the tunable); or the program was
/// re-executed once already. Returns -1 with errno when exec failed (the environment is put
/// back). The value GLIBC_TUNABLES had before is kept in SWIFTLET_GLIBC_TUNABLES_BEFORE, so
/// child processes can be given the original. Why: docs/decisions/0010-malloc-thread-cache.md.
int swiftlet_malloc_thread_cache_off(char *const argv[]);
/// 1 when GLIBC_TUNABLES, as this process sees it, sets tcache_count to 0 (its last setting,
/// read as glibc reads numbers), else 0.
int swiftlet_malloc_thread_cache_is_off(void);
/// The bytes malloc gave for the block at `p` (malloc_usable_size); 0 where unknown.
size_t swiftlet_usable_size(const void *p);
/// The calling thread's kernel id.
pid_t swiftlet_gettid(void);

/// What a sidecar process runs as and within (its plugin file's isolation keys).
typedef struct {
    int set_ids;            // 1: setgroups({gid}), setgid(gid), setuid(uid)
    unsigned int uid;
    unsigned int gid;
    long long memory_max;   // RLIMIT_AS in bytes; < 0: unchanged
    long long open_files;   // RLIMIT_NOFILE; < 0: unchanged
    long long cpu_seconds;  // RLIMIT_CPU (soft; hard one second later); < 0: unchanged
} swiftlet_isolation;

/// fork + exec of `path` with `argv`/`envp`: stdin /dev/null, stdout and stderr `out_fd`, no
/// other descriptor, default signal dispositions and an empty mask, then the limits and ids of
/// `iso`. Returns the pid, or -1 with `err` saying which step failed (the child's error comes
/// back over a close-on-exec pipe, so a limit that cannot be set is an error here, not a
/// silent exit).
int swiftlet_spawn_isolated(const char *path, char *const argv[], char *const envp[], int out_fd,
                            const swiftlet_isolation *iso, char *err, size_t err_len);
/// Connection parking (docs/decisions/0009): an epoll set that reports each parked socket once
/// (EPOLLIN | EPOLLRDHUP | EPOLLONESHOT) by a 64-bit token, plus an eventfd (token 0) that
/// wakes its waiting thread. Returns the epoll descriptor, or -1 (errno set). `*wake_fd` gets
/// the eventfd.
int swiftlet_watch_create(int *wake_fd);
/// Adds `fd` with `token` (> 0). 0 or -1 (errno set).
int swiftlet_watch_add(int ep, int fd, unsigned long long token);
/// Removes `fd`. 0 or -1 (errno set).
int swiftlet_watch_remove(int ep, int fd);
/// Waits up to `timeout_ms` (-1: no limit) and fills `tokens` with up to `max` ready tokens
/// (0 is the wake-up eventfd, drained here). Returns how many, or -1 (errno set; EINTR is
/// returned as 0).
int swiftlet_watch_wait(int ep, int wake_fd, unsigned long long *tokens, int max, int timeout_ms);
/// Wakes a thread in `swiftlet_watch_wait` on `wake_fd`.
void swiftlet_watch_wake(int wake_fd);
/// dup with close-on-exec. The new descriptor, or -1 (errno set).
int swiftlet_dup_cloexec(int fd);
/// The socket's local (`peer` 0) or remote (`peer` 1) address: numeric host into `host` and
/// port into `*port`. 0, or -1 when `fd` is not an IPv4/IPv6 socket with that address.
int swiftlet_socket_endpoint(int fd, int peer, char *host, size_t host_len, int *port);
#endif
