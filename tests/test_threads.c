/*
 * test_threads.c - thread safety (also built with -fsanitize=thread):
 * - one context shared by 4 threads, each running its own chain of
 *   upload / add / multiply / transpose / download on its own matrices for
 *   many iterations, every result checked against the CPU reference;
 * - 2 threads each creating, using and destroying their own contexts (and
 *   listing devices) at the same time;
 * - concurrent failures: each thread's gpumat_last_error(NULL) is its own
 *   message, a thread without failures keeps "", and gpumat_last_error(ctx)
 *   is always one whole message;
 * - two threads writing the same matrix: every download is one of the two
 *   writes, never a mix; the same for large (staged, several chunks)
 *   uploads and downloads racing a direct write and a device copy.
 *
 * Worker threads never call cmocka (its assertions longjmp and are not
 * thread-safe): they record their first failure, and the test thread
 * asserts after joining them.  Sizes are small: this runs under
 * ThreadSanitizer on a CPU OpenCL device.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpumat.h"
#include "test_util.h"

#define MSG_SIZE 1024

static gpumat_context *g_ctx;

static int group_setup(void **state)
{
    (void)state;
    return tu_group_context_create(&g_ctx, 0);
}

static int group_teardown(void **state)
{
    (void)state;
    return tu_group_context_destroy(&g_ctx);
}

typedef struct worker {
    int id;
    int iterations;
    pthread_barrier_t *barrier;
    int failed;
    char msg[MSG_SIZE];
} worker;

static void worker_fail(worker *w, const char *fmt, ...)
{
    if (w->failed)
        return;
    w->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->msg, sizeof w->msg, fmt, ap);
    va_end(ap);
}

/* Starts n workers on fn, joins them and fails the test with the first
 * failure any of them recorded. */
static void run_workers(void *(*fn)(void *), worker *w, int n, int iterations)
{
    pthread_t t[16];
    pthread_barrier_t barrier;
    assert_true(n <= 16);
    assert_int_equal(pthread_barrier_init(&barrier, NULL, (unsigned)n), 0);
    for (int i = 0; i < n; ++i) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].id = i;
        w[i].iterations = iterations;
        w[i].barrier = &barrier;
    }
    for (int i = 0; i < n; ++i)
        assert_int_equal(pthread_create(&t[i], NULL, fn, &w[i]), 0);
    for (int i = 0; i < n; ++i)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    pthread_barrier_destroy(&barrier);
    int bad = 0;
    for (int i = 0; i < n; ++i)
        if (w[i].failed) {
            print_error("thread %d: %s\n", i, w[i].msg);
            bad = 1;
        }
    if (bad)
        fail_msg("a worker thread failed (see above)");
}

#define WCHECK(w, call)                                                                 \
    do {                                                                                \
        gpumat_status s_ = (call);                                                      \
        if (s_ != GPUMAT_OK) {                                                          \
            worker_fail((w), "%s -> %d (%s): %s", #call, (int)s_, gpumat_strerror(s_),  \
                        gpumat_last_error(NULL));                                       \
            goto out;                                                                   \
        }                                                                               \
    } while (0)

/* ---- one context, four threads -------------------------------------------------- */

static void *shared_context_worker(void *arg)
{
    worker *w = arg;
    tu_rng rng;
    tu_rng_init(&rng, 100 + (uint64_t)w->id);
    gpumat_dtype dt = (w->id % 2 == 1 && tu_has_fp64(g_ctx)) ? GPUMAT_F64 : GPUMAT_F32;
    pthread_barrier_wait(w->barrier);

    for (int it = 0; it < w->iterations && !w->failed; ++it) {
        /* A different small shape each time, crossing tile edges. */
        size_t m = 1 + tu_rng_next(&rng) % 40, k = 1 + tu_rng_next(&rng) % 40;
        size_t n = 1 + tu_rng_next(&rng) % 40;
        gpumat_matrix *a = NULL, *b = NULL, *x = NULL, *s = NULL, *p = NULL, *t = NULL;
        double *ha = NULL, *hb = NULL, *hx = NULL;
        double *hs = malloc(m * k * sizeof *hs), *sref = malloc(m * k * sizeof *sref);
        double *sscale = malloc(m * k * sizeof *sscale), *ht = malloc(n * m * sizeof *ht);
        double *pref = malloc(m * n * sizeof *pref), *pscale = malloc(m * n * sizeof *pscale);
        char msg[MSG_SIZE], what[128];
        if (!hs || !sref || !sscale || !ht || !pref || !pscale) {
            worker_fail(w, "out of host memory");
            goto out;
        }
        WCHECK(w, tu_random_matrix(g_ctx, &rng, m, k, dt, &a, &ha));
        WCHECK(w, tu_random_matrix(g_ctx, &rng, m, k, dt, &b, &hb));
        WCHECK(w, tu_random_matrix(g_ctx, &rng, k, n, dt, &x, &hx));
        WCHECK(w, gpumat_matrix_create(g_ctx, m, k, dt, &s));
        WCHECK(w, gpumat_matrix_create(g_ctx, m, n, dt, &p));
        WCHECK(w, gpumat_matrix_create(g_ctx, n, m, dt, &t));
        WCHECK(w, tu_poison(s));
        WCHECK(w, tu_poison(p));
        WCHECK(w, tu_poison(t));

        /* The chain, with no wait until the downloads. */
        WCHECK(w, gpumat_add(s, a, b));
        WCHECK(w, gpumat_multiply(p, s, x));
        WCHECK(w, gpumat_transpose(t, p));
        WCHECK(w, tu_download(s, hs));
        WCHECK(w, tu_download(t, ht));

        tu_ref_add(ha, hb, sref, sscale, m * k);
        snprintf(what, sizeof what, "thread %d iteration %d: add %zux%zu %s", w->id, it, m, k,
                 tu_dtype_name(dt));
        if (!tu_compare(what, m, k, hs, sref, sscale, tu_add_tolerance(dt), msg, sizeof msg)) {
            worker_fail(w, "%s", msg);
            goto out;
        }
        /* The product reads the device's own sum. */
        tu_ref_gemm(m, k, n, hs, hx, pref, pscale);
        double *pt = malloc(m * n * sizeof *pt), *st = malloc(m * n * sizeof *st);
        if (!pt || !st) {
            free(pt);
            free(st);
            worker_fail(w, "out of host memory");
            goto out;
        }
        tu_ref_transpose(m, n, pref, pt);
        tu_ref_transpose(m, n, pscale, st);
        snprintf(what, sizeof what, "thread %d iteration %d: transpose(%zux%zu * %zux%zu) %s",
                 w->id, it, m, k, k, n, tu_dtype_name(dt));
        int ok = tu_compare(what, n, m, ht, pt, st, tu_gemm_tolerance(dt, k), msg, sizeof msg);
        free(pt);
        free(st);
        if (!ok)
            worker_fail(w, "%s", msg);
    out:
        gpumat_matrix_destroy(a);
        gpumat_matrix_destroy(b);
        gpumat_matrix_destroy(x);
        gpumat_matrix_destroy(s);
        gpumat_matrix_destroy(p);
        gpumat_matrix_destroy(t);
        free(ha);
        free(hb);
        free(hx);
        free(hs);
        free(sref);
        free(sscale);
        free(ht);
        free(pref);
        free(pscale);
    }
    return NULL;
}

static void test_shared_context_four_threads(void **state)
{
    (void)state;
    worker w[4];
    run_workers(shared_context_worker, w, 4, 40);
    assert_int_equal(gpumat_finish(g_ctx), GPUMAT_OK);
    /* The context is still sound afterwards. */
    tu_rng rng;
    tu_rng_init(&rng, 99);
    char msg[MSG_SIZE];
    if (!tu_context_works(g_ctx, GPUMAT_F32, &rng, msg, sizeof msg))
        fail_msg("%s", msg);
}

/* ---- each thread its own contexts ---------------------------------------------------- */

static void *own_context_worker(void *arg)
{
    worker *w = arg;
    tu_rng rng;
    tu_rng_init(&rng, 200 + (uint64_t)w->id);
    pthread_barrier_wait(w->barrier);
    for (int it = 0; it < w->iterations && !w->failed; ++it) {
        size_t count = 0;
        gpumat_status s = gpumat_device_list(NULL, 0, &count);
        if (s != GPUMAT_OK || count == 0) {
            worker_fail(w, "device_list: %d, count %zu", (int)s, count);
            break;
        }
        size_t index = 0;
        s = gpumat_device_choose(NULL, &index, NULL, 0);
        if (s != GPUMAT_OK || index >= count) {
            worker_fail(w, "device_choose: %d, index %zu", (int)s, index);
            break;
        }
        gpumat_context *ctx = NULL;
        s = gpumat_context_create(&ctx, NULL);
        if (s != GPUMAT_OK) {
            worker_fail(w, "iteration %d: context_create: %d (%s): %s", it, (int)s,
                        gpumat_strerror(s), gpumat_last_error(NULL));
            break;
        }
        char msg[MSG_SIZE];
        if (!tu_context_works(ctx, GPUMAT_F32, &rng, msg, sizeof msg))
            worker_fail(w, "iteration %d: %s", it, msg);
        /* A failure on this thread's own context. */
        gpumat_matrix *m = NULL;
        if (gpumat_matrix_create(ctx, 0, 3, GPUMAT_F32, &m) != GPUMAT_ERR_SHAPE || m)
            worker_fail(w, "iteration %d: zero-row create did not fail with SHAPE", it);
        gpumat_context_destroy(ctx);
    }
    return NULL;
}

static void test_two_threads_own_contexts(void **state)
{
    (void)state;
    worker w[2];
    run_workers(own_context_worker, w, 2, 3);
}

/* ---- concurrent failures and gpumat_last_error ------------------------------------------ */

enum { ERR_THREADS = 4 };

/* Thread t's operands: a is (10+t)x(20+t), b is (30+t)x(40+t); no shape
 * string of one thread occurs inside another's. */
static void err_shapes(int t, char *sa, char *sb, size_t size)
{
    snprintf(sa, size, "%dx%d", 10 + t, 20 + t);
    snprintf(sb, size, "%dx%d", 30 + t, 40 + t);
}

static void *error_worker(void *arg)
{
    worker *w = arg;
    gpumat_matrix *a = NULL, *b = NULL, *c = NULL, *k = NULL;
    char sa[32], sb[32], mine[MSG_SIZE];
    err_shapes(w->id, sa, sb, sizeof sa);
    size_t tid = (size_t)w->id;
    gpumat_status cs;
    if ((cs = gpumat_matrix_create(g_ctx, 10 + tid, 20 + tid, GPUMAT_F32, &a)) != GPUMAT_OK ||
        (cs = gpumat_matrix_create(g_ctx, 30 + tid, 40 + tid, GPUMAT_F32, &b)) != GPUMAT_OK ||
        (cs = gpumat_matrix_create(g_ctx, 10 + tid, 20 + tid, GPUMAT_F32, &c)) != GPUMAT_OK ||
        (cs = gpumat_matrix_create(g_ctx, 10 + tid, 40 + tid, GPUMAT_F32, &k)) != GPUMAT_OK)
        worker_fail(w, "matrix_create: %d: %s", (int)cs, gpumat_last_error(NULL));
    /* Every thread reaches the barrier, failed or not. */
    pthread_barrier_wait(w->barrier);
    for (int it = 0; it < w->iterations && !w->failed; ++it) {
        gpumat_status s = (it % 2 == 0) ? gpumat_add(c, a, b) : gpumat_multiply(k, a, b);
        if (s != GPUMAT_ERR_SHAPE) {
            worker_fail(w, "iteration %d: %s -> %d, expected SHAPE", it,
                        it % 2 == 0 ? "add" : "multiply", (int)s);
            break;
        }
        sched_yield(); /* let the other threads fail in between */
        snprintf(mine, sizeof mine, "%s", gpumat_last_error(NULL));
        if (!strstr(mine, sa) || !strstr(mine, sb) ||
            !strstr(mine, it % 2 == 0 ? "add" : "multiply")) {
            worker_fail(w, "iteration %d: gpumat_last_error(NULL) is \"%s\", expected this "
                           "thread's %s failure with %s and %s",
                        it, mine, it % 2 == 0 ? "add" : "multiply", sa, sb);
            break;
        }
        /* The context's record is one whole message of some thread. */
        char any[MSG_SIZE];
        snprintf(any, sizeof any, "%s", gpumat_last_error(g_ctx));
        int whole = 0;
        for (int t = 0; t < ERR_THREADS; ++t) {
            char ta[32], tb[32];
            err_shapes(t, ta, tb, sizeof ta);
            whole |= strstr(any, ta) && strstr(any, tb);
        }
        if (!whole) {
            worker_fail(w, "iteration %d: gpumat_last_error(ctx) is \"%s\", not one thread's "
                           "whole message",
                        it, any);
            break;
        }
    }
    gpumat_matrix_destroy(a);
    gpumat_matrix_destroy(b);
    gpumat_matrix_destroy(c);
    gpumat_matrix_destroy(k);
    return NULL;
}

/* Succeeds all the time; its own last error must stay "". */
typedef struct quiet_arg {
    int stop; /* under lock */
    pthread_mutex_t lock;
    int failed;
    char msg[MSG_SIZE];
    int rounds;
} quiet_arg;

static int quiet_should_stop(quiet_arg *q)
{
    pthread_mutex_lock(&q->lock);
    int s = q->stop;
    pthread_mutex_unlock(&q->lock);
    return s;
}

static void *quiet_worker(void *arg)
{
    quiet_arg *q = arg;
    tu_rng rng;
    tu_rng_init(&rng, 300);
    gpumat_matrix *m = NULL;
    double in[12], out[12];
    for (int i = 0; i < 12; ++i)
        in[i] = tu_rng_uniform(&rng);
    if (gpumat_matrix_create(g_ctx, 3, 4, GPUMAT_F64, &m) != GPUMAT_OK &&
        gpumat_matrix_create(g_ctx, 3, 4, GPUMAT_F32, &m) != GPUMAT_OK) {
        q->failed = 1;
        snprintf(q->msg, sizeof q->msg, "quiet thread: create failed");
        return NULL;
    }
    if (gpumat_matrix_dtype(m) == GPUMAT_F32)
        for (int i = 0; i < 12; ++i)
            in[i] = (double)(float)in[i];
    do {
        if (tu_upload(m, in) != GPUMAT_OK || tu_download(m, out) != GPUMAT_OK ||
            memcmp(in, out, sizeof in) != 0) {
            q->failed = 1;
            snprintf(q->msg, sizeof q->msg, "quiet thread: upload/download round trip failed");
            break;
        }
        const char *e = gpumat_last_error(NULL);
        if (!e || e[0] != '\0') {
            q->failed = 1;
            snprintf(q->msg, sizeof q->msg,
                     "a thread with no failure got gpumat_last_error(NULL) = \"%s\"",
                     e ? e : "(NULL)");
            break;
        }
        ++q->rounds;
    } while (!quiet_should_stop(q));
    gpumat_matrix_destroy(m);
    return NULL;
}

static void test_concurrent_errors(void **state)
{
    (void)state;
    quiet_arg q;
    memset(&q, 0, sizeof q);
    pthread_mutex_init(&q.lock, NULL);
    pthread_t quiet;
    assert_int_equal(pthread_create(&quiet, NULL, quiet_worker, &q), 0);
    worker w[ERR_THREADS];
    run_workers(error_worker, w, ERR_THREADS, 300);
    pthread_mutex_lock(&q.lock);
    q.stop = 1;
    pthread_mutex_unlock(&q.lock);
    assert_int_equal(pthread_join(quiet, NULL), 0);
    pthread_mutex_destroy(&q.lock);
    if (q.failed)
        fail_msg("%s", q.msg);
    assert_true(q.rounds >= 1);
}

/* ---- two writers of one matrix ----------------------------------------------------------- */

enum { SHARED_ROWS = 48, SHARED_COLS = 64, SHARED_N = SHARED_ROWS * SHARED_COLS };

static gpumat_matrix *g_shared;
static double g_pattern[2][SHARED_N];

static int which_pattern(const double *h)
{
    for (int p = 0; p < 2; ++p)
        if (memcmp(h, g_pattern[p], sizeof g_pattern[p]) == 0)
            return p;
    return -1;
}

static void *writer_worker(void *arg)
{
    worker *w = arg;
    static double out[2][SHARED_N];
    double *h = out[w->id];
    pthread_barrier_wait(w->barrier);
    for (int it = 0; it < w->iterations && !w->failed; ++it) {
        WCHECK(w, tu_upload(g_shared, g_pattern[w->id]));
        WCHECK(w, tu_download(g_shared, h));
        if (which_pattern(h) < 0) {
            size_t mixed = 0;
            for (size_t i = 0; i < SHARED_N; ++i)
                mixed += h[i] != g_pattern[0][i] && h[i] != g_pattern[1][i];
            worker_fail(w, "iteration %d: download is neither write (%zu elements from "
                           "neither, the rest mixed)",
                        it, mixed);
        }
    }
out:
    return NULL;
}

static void test_two_writers_one_matrix(void **state)
{
    (void)state;
    tu_rng rng;
    tu_rng_init(&rng, 400);
    for (int p = 0; p < 2; ++p)
        for (size_t i = 0; i < SHARED_N; ++i)
            g_pattern[p][i] = (double)(float)tu_rng_uniform(&rng);
    assert_int_equal(gpumat_matrix_create(g_ctx, SHARED_ROWS, SHARED_COLS, GPUMAT_F32, &g_shared),
                     GPUMAT_OK);
    worker w[2];
    run_workers(writer_worker, w, 2, 100);
    static double h[SHARED_N];
    assert_int_equal(tu_download(g_shared, h), GPUMAT_OK);
    gpumat_matrix_destroy(g_shared);
    g_shared = NULL;
    assert_true(which_pattern(h) >= 0);
}

/* ---- large transfers racing other writers ------------------------------------------------ */

/* Three chunks of the staging areas (the last one short), so that a staged
 * transfer is several commands on the queue. */
enum { BIG_ROWS = 1024, BIG_COLS = 2560, BIG_N = BIG_ROWS * BIG_COLS };

typedef struct big_race {
    gpumat_context *ctx;
    gpumat_matrix *shared, *source; /* source holds pattern 2 throughout */
    float *pattern[3];              /* pattern 1 lies in gpumat_host_alloc() memory */
    float *seen[3];                 /* each thread's downloads; 1 pinned */
} big_race;

static big_race g_big;

static int big_pattern(const float *h)
{
    for (int p = 0; p < 3; ++p)
        if (memcmp(h, g_big.pattern[p], BIG_N * sizeof *h) == 0)
            return p;
    return -1;
}

/* Thread 0 uploads pattern 0 from ordinary memory (staged: three chunk
 * writes), thread 1 pattern 1 from pinned memory (one direct write),
 * thread 2 copies the device's pattern 2 in; each downloads after its write,
 * thread 1 directly, the others staged.  A write or read that another
 * thread's command splits shows up as a download that is no pattern. */
static void *big_writer(void *arg)
{
    worker *w = arg;
    float *h = g_big.seen[w->id];
    pthread_barrier_wait(w->barrier);
    for (int it = 0; it < w->iterations && !w->failed; ++it) {
        if (w->id == 2)
            WCHECK(w, gpumat_copy(g_big.shared, g_big.source));
        else
            WCHECK(w, gpumat_matrix_upload(g_big.shared, g_big.pattern[w->id]));
        WCHECK(w, gpumat_matrix_download(g_big.shared, h));
        if (big_pattern(h) < 0) {
            size_t from[3] = {0, 0, 0}, none = 0;
            for (size_t i = 0; i < BIG_N; ++i) {
                int p = h[i] == g_big.pattern[0][i]   ? 0
                        : h[i] == g_big.pattern[1][i] ? 1
                        : h[i] == g_big.pattern[2][i] ? 2
                                                      : -1;
                if (p < 0)
                    ++none;
                else
                    ++from[p];
            }
            worker_fail(w, "iteration %d: a %dx%d download mixes the writes: %zu / %zu / %zu "
                           "elements from writes 0 / 1 / 2, %zu from none",
                        it, BIG_ROWS, BIG_COLS, from[0], from[1], from[2], none);
        }
    }
out:
    return NULL;
}

static void test_staged_transfers_race_writers(void **state)
{
    (void)state;
    /* PoCL shares host memory and would transfer directly. */
    setenv("GPUMAT_TRANSFER", "staged", 1);
    setenv("GPUMAT_TRANSFER_THREADS", "2", 1);
    gpumat_status created = gpumat_context_create(&g_big.ctx, NULL);
    unsetenv("GPUMAT_TRANSFER");
    unsetenv("GPUMAT_TRANSFER_THREADS");
    assert_int_equal(created, GPUMAT_OK);
    gpumat_context *ctx = g_big.ctx;
    void *pinned[2];
    assert_int_equal(gpumat_host_alloc(ctx, BIG_N * sizeof(float), &pinned[0]), GPUMAT_OK);
    assert_int_equal(gpumat_host_alloc(ctx, BIG_N * sizeof(float), &pinned[1]), GPUMAT_OK);
    g_big.pattern[1] = pinned[0];
    g_big.seen[1] = pinned[1];
    for (int p = 0; p < 3; p += 2) {
        g_big.pattern[p] = malloc(BIG_N * sizeof(float));
        g_big.seen[p] = malloc(BIG_N * sizeof(float));
        assert_non_null(g_big.pattern[p]);
        assert_non_null(g_big.seen[p]);
    }
    tu_rng rng;
    tu_rng_init(&rng, 500);
    for (int p = 0; p < 3; ++p)
        for (size_t i = 0; i < BIG_N; ++i)
            g_big.pattern[p][i] = (float)tu_rng_uniform(&rng) + (float)p; /* distinct per write */
    assert_int_equal(gpumat_matrix_create(ctx, BIG_ROWS, BIG_COLS, GPUMAT_F32, &g_big.shared),
                     GPUMAT_OK);
    assert_int_equal(gpumat_matrix_create(ctx, BIG_ROWS, BIG_COLS, GPUMAT_F32, &g_big.source),
                     GPUMAT_OK);
    assert_int_equal(gpumat_matrix_upload(g_big.source, g_big.pattern[2]), GPUMAT_OK);
    worker w[3];
    run_workers(big_writer, w, 3, 25);
    assert_int_equal(gpumat_matrix_download(g_big.shared, g_big.seen[0]), GPUMAT_OK);
    assert_true(big_pattern(g_big.seen[0]) >= 0);
    gpumat_matrix_destroy(g_big.shared);
    gpumat_matrix_destroy(g_big.source);
    for (int p = 0; p < 3; p += 2) {
        free(g_big.pattern[p]);
        free(g_big.seen[p]);
    }
    assert_int_equal(gpumat_host_free(ctx, pinned[0]), GPUMAT_OK);
    assert_int_equal(gpumat_host_free(ctx, pinned[1]), GPUMAT_OK);
    gpumat_context_destroy(ctx);
    memset(&g_big, 0, sizeof g_big);
}

int main(void)
{
    tu_init("test_threads");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_context_four_threads),
        cmocka_unit_test(test_two_threads_own_contexts),
        cmocka_unit_test(test_concurrent_errors),
        cmocka_unit_test(test_two_writers_one_matrix),
        cmocka_unit_test(test_staged_transfers_race_writers),
    };
    return cmocka_run_group_tests_name("threads", tests, group_setup, group_teardown);
}
