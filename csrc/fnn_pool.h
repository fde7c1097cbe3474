/* A small persistent pool of worker threads that sleep while idle.
 *
 * fnn_pool_run(threads, ntasks, fn, ctx) runs fn(ctx, t) for t = 0 .. ntasks-1 on the
 * calling thread plus up to threads-1 workers and returns when every task is done.  Tasks
 * are handed out one at a time from an atomic counter (dynamic scheduling), so a worker
 * that shares its core with a busy process simply takes fewer tasks instead of holding
 * everyone back.  Which thread runs a task never changes what the task computes, so
 * results depend only on the task split (chosen by the caller from the thread count).
 *
 * Idle workers block on a condition variable: they use no CPU between calls (OpenMP's
 * and OpenBLAS's pools spin for a while after each region, which is what made fastnn's
 * default threads slower than one thread on a loaded machine).  The caller also sleeps
 * on a condition variable while the last tasks finish elsewhere.
 *
 * When the workers do not pay (their cores are busy with other processes), the caller
 * backs off and runs the next jobs' tasks alone for a while (fnn_pool_judge).
 *
 * One job at a time: a caller that finds the pool busy (another Python thread training
 * at the same moment) runs its tasks itself, serially.  Workers are created at first
 * use and re-created lazily in a forked child (pthread_atfork resets the state: the
 * child has none of the parent's threads).  Without pthreads (MSVC) everything runs
 * serially on the caller.
 *
 * Every task runs in the caller's floating-point mode: a worker takes the caller's MXCSR
 * control bits (flush-to-zero and denormals-are-zero included) for the job and restores
 * its own after, so a task gives the same bits whichever thread runs it.
 *
 * The pool is process-wide: this header is included by exactly one extension module
 * (fastnn/_kernels/_pool.pyx), which exports fnn_pool_run to the others.
 */
#ifndef FNN_POOL_H
#define FNN_POOL_H

#include <stddef.h>
#include "fnn_common.h"

typedef void (*fnn_task_fn)(void *ctx, int task);

#define FNN_POOL_MAX_WORKERS 63

#if defined(_WIN32) || defined(FNN_POOL_SERIAL)

static void fnn_pool_run(int threads, int ntasks, fnn_task_fn fn, void *ctx) {
    (void)threads;
    for (int t = 0; t < ntasks; t++) fn(ctx, t);
}
static int fnn_pool_workers(void) { return 0; }
static int fnn_pool_has_threads(void) { return 0; }
static void fnn_pool_reset_backoff(void) {}

#else

#include <pthread.h>
#include <time.h>

typedef struct {
    fnn_task_fn fn;
    void *ctx;
    int ntasks;
    int max_workers;  /* workers with a higher index do not join */
    int next;         /* next task to hand out (atomic) */
    int done;         /* tasks finished (under the lock) */
    unsigned int fp_mode; /* the caller's floating-point mode (FTZ/DAZ, rounding) */
} fnn_job;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;      /* workers wait here for a job */
    pthread_cond_t finished;  /* the caller waits here for the last tasks */
    fnn_job *job;             /* the running job, or NULL */
    unsigned long generation; /* bumped for every job */
    int active;               /* workers inside the current job */
    int workers;              /* workers started */
    int busy;                 /* a caller owns the pool */
    int atfork;               /* the fork handler is registered */
    int skip;                 /* jobs still to run on the caller alone (back-off) */
    int backoff;              /* the next back-off length */
} fnn_pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
              NULL, 0, 0, 0, 0, 0, 0, 0};

#define FNN_POOL_MAX_BACKOFF 256

static double fnn_pool_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Hand out tasks until none are left; returns how many this thread ran. */
static int fnn_pool_drain(fnn_job *job) {
    int ran = 0;
    for (;;) {
        int t = __atomic_fetch_add(&job->next, 1, __ATOMIC_RELAXED);
        if (t >= job->ntasks) return ran;
        job->fn(job->ctx, t);
        ran++;
    }
}

static void *fnn_pool_worker(void *arg) {
    int index = (int)(size_t)arg;
    unsigned long seen = 0;
#if defined(__linux__) && defined(_GNU_SOURCE)
    pthread_setname_np(pthread_self(), "fastnn-pool"); /* shows in /proc/<pid>/task/<t>/comm */
#endif
    pthread_mutex_lock(&fnn_pool.lock);
    for (;;) {
        while (fnn_pool.job == NULL || fnn_pool.generation == seen)
            pthread_cond_wait(&fnn_pool.wake, &fnn_pool.lock);
        seen = fnn_pool.generation;
        fnn_job *job = fnn_pool.job;
        if (index >= job->max_workers) continue;
        fnn_pool.active++;
        pthread_mutex_unlock(&fnn_pool.lock);
        /* the caller's mode, not the one this thread was created with: training flushes
         * denormals, inference does not, and either may have started the workers */
        unsigned int own_mode = fnn_fp_mode_swap(job->fp_mode);
        int ran = fnn_pool_drain(job);
        fnn_denormals_restore(own_mode);
        pthread_mutex_lock(&fnn_pool.lock);
        job->done += ran;
        fnn_pool.active--;
        if (fnn_pool.active == 0 && job->done == job->ntasks)
            pthread_cond_signal(&fnn_pool.finished);
    }
    return NULL;
}

/* In a forked child the workers do not exist: start from an empty pool. */
static void fnn_pool_after_fork_child(void) {
    pthread_mutex_init(&fnn_pool.lock, NULL);
    pthread_cond_init(&fnn_pool.wake, NULL);
    pthread_cond_init(&fnn_pool.finished, NULL);
    fnn_pool.job = NULL;
    fnn_pool.active = fnn_pool.workers = fnn_pool.busy = 0;
    fnn_pool.skip = fnn_pool.backoff = 0;
}

/* Start workers up to `want` (under the lock); returns how many exist. */
static int fnn_pool_grow(int want) {
    if (want > FNN_POOL_MAX_WORKERS) want = FNN_POOL_MAX_WORKERS;
    if (!fnn_pool.atfork) {
        if (pthread_atfork(NULL, NULL, fnn_pool_after_fork_child) != 0) return 0;
        fnn_pool.atfork = 1;
    }
    while (fnn_pool.workers < want) {
        pthread_t tid;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int err = pthread_create(&tid, &attr, fnn_pool_worker, (void *)(size_t)fnn_pool.workers);
        pthread_attr_destroy(&attr);
        if (err != 0) break; /* run with the workers we have (or serially) */
        fnn_pool.workers++;
    }
    return fnn_pool.workers;
}

/* Adapting to the CPUs actually free.  The workers may sit on cores that other processes
 * keep busy; a task a worker started then finishes only when the scheduler gives it a
 * slice again, and the caller waits for it.  After each job the caller compares the time
 * the job took with what it would have taken alone (its own time per task times the
 * tasks); when the helpers did not pay, the next jobs run on the caller alone, 1, 2, 4 ...
 * up to FNN_POOL_MAX_BACKOFF of them, and then the pool is tried again.  Alone, the caller
 * runs the very same tasks, so this changes timing only, never results. */
static void fnn_pool_judge(double start, double own_end, double end, int own, int ntasks) {
    if (own == 0) { /* the workers did everything while the caller waited: they pay */
        fnn_pool.backoff = 0;
        return;
    }
    double alone = (own_end - start) / own * ntasks;
    if (end - start < 0.95 * alone) {
        fnn_pool.backoff = 0;
    } else {
        fnn_pool.backoff = fnn_pool.backoff ? 2 * fnn_pool.backoff : 1;
        if (fnn_pool.backoff > FNN_POOL_MAX_BACKOFF) fnn_pool.backoff = FNN_POOL_MAX_BACKOFF;
        fnn_pool.skip = fnn_pool.backoff;
    }
}

static void fnn_pool_run(int threads, int ntasks, fnn_task_fn fn, void *ctx) {
    fnn_job job = {fn, ctx, ntasks, threads - 1, 0, 0, fnn_fp_mode_get()};
    int helpers;
    if (threads <= 1 || ntasks <= 1) goto serial;
    pthread_mutex_lock(&fnn_pool.lock);
    if (fnn_pool.busy) { /* another caller's job is running: do ours alone */
        pthread_mutex_unlock(&fnn_pool.lock);
        goto serial;
    }
    if (fnn_pool.skip > 0) { /* backing off (see fnn_pool_judge) */
        fnn_pool.skip--;
        pthread_mutex_unlock(&fnn_pool.lock);
        goto serial;
    }
    helpers = fnn_pool_grow(threads - 1);
    if (helpers == 0) {
        pthread_mutex_unlock(&fnn_pool.lock);
        goto serial;
    }
    fnn_pool.busy = 1;
    fnn_pool.job = &job;
    fnn_pool.generation++;
    pthread_cond_broadcast(&fnn_pool.wake);
    pthread_mutex_unlock(&fnn_pool.lock);

    double start = fnn_pool_now();
    int ran = fnn_pool_drain(&job);
    double own_end = fnn_pool_now();

    pthread_mutex_lock(&fnn_pool.lock);
    job.done += ran;
    /* wait (asleep) for workers still inside the job; none can join after this */
    while (fnn_pool.active > 0 || job.done < job.ntasks)
        pthread_cond_wait(&fnn_pool.finished, &fnn_pool.lock);
    fnn_pool.job = NULL;
    fnn_pool.busy = 0;
    fnn_pool_judge(start, own_end, fnn_pool_now(), ran, ntasks);
    pthread_mutex_unlock(&fnn_pool.lock);
    return;
serial:
    for (int t = 0; t < ntasks; t++) fn(ctx, t);
}

/* Forget the back-off (tests that need the workers to take part). */
static void fnn_pool_reset_backoff(void) {
    pthread_mutex_lock(&fnn_pool.lock);
    fnn_pool.skip = fnn_pool.backoff = 0;
    pthread_mutex_unlock(&fnn_pool.lock);
}

static int fnn_pool_workers(void) {
    pthread_mutex_lock(&fnn_pool.lock);
    int n = fnn_pool.workers;
    pthread_mutex_unlock(&fnn_pool.lock);
    return n;
}
static int fnn_pool_has_threads(void) { return 1; }

#endif /* pthreads */

/* BLAS's own threads off while fastnn computes.
 *
 * fastnn splits its large GEMMs over the pool itself, one single-threaded BLAS call per
 * task; BLAS's pool must then stay out of the way (two pools on the same cores, or BLAS's
 * hand-offs on a loaded machine, cost up to 8x).  fnn_blas_serial_enter sets the BLAS's
 * thread count to 1 and fnn_blas_serial_exit restores the caller's value; a depth count
 * under a lock makes concurrent fastnn calls save once and restore once.  The pair
 * brackets each large GEMM (never Python code), so nothing can leave BLAS limited.  The
 * setter and getter are the BLAS library's own (openblas_set_num_threads and
 * openblas_get_num_threads, found at first use by fastnn._kernels._blas_import); without
 * them enter returns 0 and BLAS threads as it always did. */
typedef void (*fnn_blas_setter)(int);
typedef int (*fnn_blas_getter)(void);

static fnn_blas_setter fnn_blas_set_threads = NULL;
static fnn_blas_getter fnn_blas_get_threads = NULL;
static int fnn_blas_depth = 0, fnn_blas_saved = 1;

#if defined(_WIN32) || defined(FNN_POOL_SERIAL)
#define FNN_BLAS_LOCK()
#define FNN_BLAS_UNLOCK()
#else
static pthread_mutex_t fnn_blas_lock = PTHREAD_MUTEX_INITIALIZER;
#define FNN_BLAS_LOCK() pthread_mutex_lock(&fnn_blas_lock)
#define FNN_BLAS_UNLOCK() pthread_mutex_unlock(&fnn_blas_lock)
#endif

static void fnn_blas_thread_functions(void *setter, void *getter) {
    FNN_BLAS_LOCK();
    if (fnn_blas_depth == 0) {
        fnn_blas_set_threads = (fnn_blas_setter)setter;
        fnn_blas_get_threads = (fnn_blas_getter)getter;
    }
    FNN_BLAS_UNLOCK();
}

static int fnn_blas_serial_enter(void) {
    if (fnn_blas_set_threads == NULL || fnn_blas_get_threads == NULL) return 0;
    FNN_BLAS_LOCK();
    if (fnn_blas_depth++ == 0) {
        fnn_blas_saved = fnn_blas_get_threads();
        if (fnn_blas_saved != 1) fnn_blas_set_threads(1);
    }
    FNN_BLAS_UNLOCK();
    return 1;
}

static void fnn_blas_serial_exit(void) {
    FNN_BLAS_LOCK();
    if (--fnn_blas_depth == 0 && fnn_blas_saved != 1) fnn_blas_set_threads(fnn_blas_saved);
    FNN_BLAS_UNLOCK();
}

#endif /* FNN_POOL_H */
