// The thread pool behind GrokTensor's ThreadPool. Persistent workers wait for a job by spinning on
// a ticket for a while (decode calls the pool many times per token, microseconds apart), then
// sleep on a condition variable. The caller works too and waits only for the indices to be done,
// not for every worker to show up: a worker that wakes late finds the job gone and waits again.
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "grok_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() ((void)0)
#endif

/// How long an idle worker spins for the next job before it sleeps.
static const long spin_ns = 200000;
/// Indices per job; larger counts run as several jobs (the ticket holds 32-bit indices).
static const size_t max_job = (size_t)1 << 31;

/// The ticket: job generation in the high 32 bits, next unclaimed index in the low 32 bits.
static inline uint64_t ticket(uint32_t generation, uint64_t next) { return (uint64_t)generation << 32 | next; }
static inline uint32_t generation_of(uint64_t t) { return (uint32_t)(t >> 32); }

struct grok_pool {
    int threads;
    pthread_t *workers;
    pthread_mutex_t mutex;
    pthread_cond_t wake;
    // The job, written by the caller before it publishes the ticket. A late worker may read the
    // next job's values here, but then its claim (a compare-and-swap of the ticket) fails.
    _Atomic(grok_task_fn) fn;
    _Atomic(void *) context;
    _Atomic size_t base, count, chunk;
    _Alignas(64) _Atomic uint64_t ticket;
    _Alignas(64) _Atomic size_t done;   // indices of the current job that have run
    _Alignas(64) _Atomic int sleepers;
    _Atomic int stop;
    _Atomic int busy;                   // a job is running
};

static long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/// Claims and runs indices of job `generation` until none are left or the job has changed.
static void work_on(grok_pool *pool, uint32_t generation) {
    uint64_t t = atomic_load_explicit(&pool->ticket, memory_order_acquire);
    for (;;) {
        if (generation_of(t) != generation) return;
        size_t next = (uint32_t)t;
        size_t count = atomic_load_explicit(&pool->count, memory_order_relaxed);
        if (next >= count) return;
        size_t chunk = atomic_load_explicit(&pool->chunk, memory_order_relaxed);
        size_t take = count - next < chunk ? count - next : chunk;
        grok_task_fn fn = atomic_load_explicit(&pool->fn, memory_order_relaxed);
        void *context = atomic_load_explicit(&pool->context, memory_order_relaxed);
        size_t base = atomic_load_explicit(&pool->base, memory_order_relaxed);
        if (!atomic_compare_exchange_weak_explicit(&pool->ticket, &t, ticket(generation, next + take),
                                                   memory_order_acquire, memory_order_acquire))
            continue; // t now holds the current ticket
        for (size_t i = next; i < next + take; i++) fn(context, base + i);
        atomic_fetch_add_explicit(&pool->done, take, memory_order_release);
        t = atomic_load_explicit(&pool->ticket, memory_order_acquire);
    }
}

/// Waits until the job generation differs from `seen` (or the pool stops) and returns it.
static uint32_t await_job(grok_pool *pool, uint32_t seen) {
    uint32_t g;
    long start = now_ns();
    for (unsigned spins = 1;; spins++) {
        g = generation_of(atomic_load_explicit(&pool->ticket, memory_order_acquire));
        if (g != seen) return g;
        cpu_relax();
        if (spins % 1024 == 0 && now_ns() - start > spin_ns) break;
    }
    // Announce the sleep before the last check; the caller publishes the ticket before it reads
    // `sleepers` (both sequentially consistent), so one of the two sees the other.
    pthread_mutex_lock(&pool->mutex);
    atomic_fetch_add(&pool->sleepers, 1);
    while ((g = generation_of(atomic_load(&pool->ticket))) == seen) pthread_cond_wait(&pool->wake, &pool->mutex);
    atomic_fetch_sub(&pool->sleepers, 1);
    pthread_mutex_unlock(&pool->mutex);
    return g;
}

static void *worker_main(void *arg) {
    grok_pool *pool = arg;
    uint32_t seen = 0;
    for (;;) {
        seen = await_job(pool, seen);
        if (atomic_load(&pool->stop)) return NULL;
        work_on(pool, seen);
    }
}

/// Publishes a new job generation and wakes sleeping workers; returns the generation.
static uint32_t publish(grok_pool *pool) {
    uint32_t g = generation_of(atomic_load_explicit(&pool->ticket, memory_order_relaxed)) + 1;
    atomic_store(&pool->ticket, ticket(g, 0));
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->mutex);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->mutex);
    }
    return g;
}

grok_pool *grok_pool_create(int threads) {
    if (threads < 1) return NULL;
    grok_pool *pool = aligned_alloc(64, (sizeof(grok_pool) + 63) / 64 * 64);
    if (!pool) return NULL;
    memset(pool, 0, sizeof *pool);
    pool->threads = threads;
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pool->workers = calloc((size_t)threads, sizeof(pthread_t));
    int started = 0;
    while (pool->workers && started < threads - 1 &&
           pthread_create(&pool->workers[started], NULL, worker_main, pool) == 0)
        started++;
    if (started < threads - 1) {
        pool->threads = started + 1;
        grok_pool_destroy(pool);
        return NULL;
    }
    return pool;
}

void grok_pool_destroy(grok_pool *pool) {
    if (!pool) return;
    atomic_store(&pool->stop, 1);
    publish(pool); // an empty job: workers wake, see `stop` and exit
    for (int i = 0; i < pool->threads - 1; i++) pthread_join(pool->workers[i], NULL);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->mutex);
    free(pool->workers);
    free(pool);
}

static void run_job(grok_pool *pool, grok_task_fn fn, void *context, size_t base, size_t count, size_t chunk) {
    atomic_store_explicit(&pool->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&pool->context, context, memory_order_relaxed);
    atomic_store_explicit(&pool->base, base, memory_order_relaxed);
    atomic_store_explicit(&pool->count, count, memory_order_relaxed);
    atomic_store_explicit(&pool->chunk, chunk, memory_order_relaxed);
    atomic_store_explicit(&pool->done, 0, memory_order_relaxed);
    work_on(pool, publish(pool));
    for (unsigned spins = 1; atomic_load_explicit(&pool->done, memory_order_acquire) < count; spins++) {
        cpu_relax();
        if (spins % 4096 == 0) sched_yield(); // a worker with claimed indices may need this core
    }
}

void grok_pool_run(grok_pool *pool, grok_task_fn fn, void *context, size_t count, size_t chunk) {
    if (count == 0) return;
    if (pool->threads == 1 || count == 1 || atomic_exchange_explicit(&pool->busy, 1, memory_order_acquire)) {
        for (size_t i = 0; i < count; i++) fn(context, i);
        return;
    }
    if (chunk == 0) chunk = 1;
    for (size_t base = 0; base < count; base += max_job) {
        size_t n = count - base < max_job ? count - base : max_job;
        run_job(pool, fn, context, base, n, chunk < n ? chunk : n);
    }
    atomic_store_explicit(&pool->busy, 0, memory_order_release);
}
