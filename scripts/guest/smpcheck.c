/*
 * smpcheck: run from the device-test initramfs (`test=smp`) on a guest
 * with several CPUs. Three phases, each for a bounded time given in
 * milliseconds on the command line (`smpcheck [MS]`, default 5000 each):
 *
 * 1. counters: THREADS threads (at least 4, one more than the CPUs) bump
 *    shared counters with LOCK XADD (__atomic_fetch_add), LOCK CMPXCHG
 *    loops (__atomic_compare_exchange), LOCK INC, LOCK ADD of a 64-bit
 *    value, CMPXCHG16B loops (__sync_bool_compare_and_swap on 16 bytes),
 *    and a plain increment under an XCHG spinlock, counting their own
 *    iterations. Each shared counter must equal the sum of the per-thread
 *    counts:
 *        SMP-COUNTERS threads=<t> iterations=<n> xadd=<n> cmpxchg=<n>
 *            inc=<n> add64=<n*3> cx16=<n> locked=<n> ok|FAIL
 * 2. fork: WORKERS processes fork children that exit at once with a code
 *    the parent checks:
 *        SMP-FORK forks=<n> bad=<wrong exit statuses> ok|FAIL
 * 3. mmap: THREADS threads map anonymous memory, fill it with a pattern of
 *    their own, check it and unmap it, so the kernel shoots down other
 *    CPUs' TLB entries for addresses the next mapping reuses:
 *        SMP-MMAP maps=<n> bad=<pages with a wrong word> ok|FAIL
 * Then SMP-DONE ok|FAIL; the exit status is 0 when every phase passed.
 *
 * Built statically by build-test-initramfs.sh (gcc -static -O2 -s -pthread).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 16

static long duration_ms = 5000;
static int nthreads;

/* Counters, each on its own cache line. */
static struct {
    uint64_t xadd __attribute__((aligned(64)));
    uint64_t cmpxchg __attribute__((aligned(64)));
    uint32_t inc __attribute__((aligned(64)));
    uint64_t add64 __attribute__((aligned(64)));
    unsigned __int128 cx16 __attribute__((aligned(64)));
    uint32_t lock __attribute__((aligned(64)));
    uint64_t locked __attribute__((aligned(64)));
} shared;

static volatile int stop;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleep the phase's duration, then tell the workers to stop. */
static void run_for_duration(void)
{
    struct timespec ts = { duration_ms / 1000, (duration_ms % 1000) * 1000000L };
    stop = 0;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    while (nanosleep(&ts, &ts) != 0)
        ;
    __atomic_store_n(&stop, 1, __ATOMIC_SEQ_CST);
}

static void *counter_worker(void *arg)
{
    uint64_t n = 0;
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
        __atomic_fetch_add(&shared.xadd, 1, __ATOMIC_SEQ_CST);
        uint64_t old = __atomic_load_n(&shared.cmpxchg, __ATOMIC_RELAXED);
        while (!__atomic_compare_exchange_n(&shared.cmpxchg, &old, old + 1, 0,
                                            __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
            ;
        __asm__ volatile("lock incl %0" : "+m"(shared.inc) : : "memory", "cc");
        __asm__ volatile("lock addq %1, %0" : "+m"(shared.add64) : "r"((uint64_t)3)
                         : "memory", "cc");
        unsigned __int128 c = shared.cx16;
        while (!__sync_bool_compare_and_swap(&shared.cx16, c, c + 1))
            c = shared.cx16;
        while (__atomic_exchange_n(&shared.lock, 1, __ATOMIC_ACQUIRE))
            while (__atomic_load_n(&shared.lock, __ATOMIC_RELAXED))
                __asm__ volatile("pause");
        shared.locked++;
        __atomic_store_n(&shared.lock, 0, __ATOMIC_RELEASE);
        n++;
    }
    *(uint64_t *)arg = n;
    return NULL;
}

static int counters(void)
{
    pthread_t t[MAX_THREADS];
    uint64_t counts[MAX_THREADS], n = 0;
    for (int i = 0; i < nthreads; i++)
        pthread_create(&t[i], NULL, counter_worker, &counts[i]);
    run_for_duration();
    for (int i = 0; i < nthreads; i++) {
        pthread_join(t[i], NULL);
        n += counts[i];
    }
    int ok = shared.xadd == n && shared.cmpxchg == n && shared.inc == (uint32_t)n &&
             shared.add64 == 3 * n && shared.cx16 == n && shared.locked == n && n > 0;
    printf("SMP-COUNTERS threads=%d iterations=%llu xadd=%llu cmpxchg=%llu inc=%u "
           "add64=%llu cx16=%llu locked=%llu %s\n",
           nthreads, (unsigned long long)n, (unsigned long long)shared.xadd,
           (unsigned long long)shared.cmpxchg, shared.inc,
           (unsigned long long)shared.add64, (unsigned long long)shared.cx16,
           (unsigned long long)shared.locked, ok ? "ok" : "FAIL");
    fflush(stdout);
    return ok;
}

/* One fork worker: fork/exit/wait until the deadline; its counts go out
 * through a pipe. */
static void fork_worker(int fd, uint64_t deadline)
{
    uint64_t forks = 0, bad = 0;
    while (now_ms() < deadline) {
        int code = (int)(forks % 100);
        pid_t p = fork();
        if (p == 0)
            _exit(code);
        int st;
        if (p < 0 || waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st) != code)
            bad++;
        forks++;
    }
    uint64_t r[2] = { forks, bad };
    if (write(fd, r, sizeof r) != sizeof r)
        _exit(2);
    _exit(0);
}

static int forks(void)
{
    int fds[2];
    if (pipe(fds) != 0)
        return 0;
    uint64_t deadline = now_ms() + duration_ms;
    pid_t w[MAX_THREADS];
    for (int i = 0; i < nthreads; i++) {
        w[i] = fork();
        if (w[i] == 0)
            fork_worker(fds[1], deadline);
    }
    uint64_t total = 0, bad = 0;
    for (int i = 0; i < nthreads; i++) {
        uint64_t r[2];
        if (read(fds[0], r, sizeof r) != sizeof r) {
            bad++;
            continue;
        }
        total += r[0];
        bad += r[1];
    }
    for (int i = 0; i < nthreads; i++) {
        int st;
        if (waitpid(w[i], &st, 0) != w[i] || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            bad++;
    }
    int ok = bad == 0 && total > 0;
    printf("SMP-FORK forks=%llu bad=%llu %s\n", (unsigned long long)total,
           (unsigned long long)bad, ok ? "ok" : "FAIL");
    fflush(stdout);
    return ok;
}

static void *mmap_worker(void *arg)
{
    uint64_t id = *(uint64_t *)arg, maps = 0, bad = 0;
    const size_t pages = 8, size = pages * 4096;
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
        uint64_t *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) {
            bad++;
            continue;
        }
        uint64_t tag = id << 48 | maps;
        for (size_t p = 0; p < pages; p++)
            m[p * 512] = tag + p;
        /* A fresh anonymous page is zero elsewhere. */
        for (size_t p = 0; p < pages; p++)
            if (m[p * 512] != tag + p || m[p * 512 + 7] != 0)
                bad++;
        if (munmap(m, size) != 0)
            bad++;
        maps++;
    }
    ((uint64_t *)arg)[0] = maps;
    ((uint64_t *)arg)[1] = bad;
    return NULL;
}

static int maps(void)
{
    pthread_t t[MAX_THREADS];
    uint64_t r[MAX_THREADS][2], total = 0, bad = 0;
    for (int i = 0; i < nthreads; i++) {
        r[i][0] = (uint64_t)i;
        pthread_create(&t[i], NULL, mmap_worker, r[i]);
    }
    run_for_duration();
    for (int i = 0; i < nthreads; i++) {
        pthread_join(t[i], NULL);
        total += r[i][0];
        bad += r[i][1];
    }
    int ok = bad == 0 && total > 0;
    printf("SMP-MMAP maps=%llu bad=%llu %s\n", (unsigned long long)total,
           (unsigned long long)bad, ok ? "ok" : "FAIL");
    fflush(stdout);
    return ok;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        duration_ms = atol(argv[1]);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    nthreads = cpus + 1 < 4 ? 4 : (int)cpus + 1;
    if (nthreads > MAX_THREADS)
        nthreads = MAX_THREADS;
    printf("SMP-CPUS %ld\n", cpus);
    fflush(stdout);
    int ok = counters();
    ok &= forks();
    ok &= maps();
    printf("SMP-DONE %s\n", ok ? "ok" : "FAIL");
    return ok ? 0 : 1;
}
