/* What a hand-off to fastnn's pool costs: one fnn_pool_run job of two short tasks (about
 * 0.8 us each: the size of a layer pass of the digits network) with a sleeping worker woken
 * for the second task, against the same two tasks run serially on the caller.  The back-off
 * is reset before every job so that the worker always takes part.
 *
 *   gcc -O2 -pthread -Icsrc tools/pool_handoff.c -o /tmp/pool_handoff && /tmp/pool_handoff
 *
 * Measured on this project's machine (quiet): 1.64 us per job serially, 3.1-3.3 us with the
 * worker, i.e. splitting the digits step's passes over two cores would cost more than it
 * saves (see the closing notes of issue 11). */
#include <stdio.h>
#include <time.h>
#include "fnn_pool.h"

static volatile double sink;
static void task(void *ctx, int t) { (void)ctx; double s = 0; for (int i = 0; i < 1000; i++) s += i * 1e-9 * t; sink = s; }

static double now(void) { struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts); return ts.tv_sec + 1e-9 * ts.tv_nsec; }

int main(void) {
    const int n = 20000;
    for (int rep = 0; rep < 5; rep++) {
        for (int threads = 1; threads <= 2; threads++) {
            fnn_pool_reset_backoff();
            double t0 = now();
            for (int i = 0; i < n; i++) { fnn_pool_reset_backoff(); fnn_pool_run(threads, 2, task, NULL); }
            double t1 = now();
            printf("threads=%d: %.2f us per job\n", threads, 1e6 * (t1 - t0) / n);
        }
    }
    return 0;
}
