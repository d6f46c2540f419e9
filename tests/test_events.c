/*
 * test_events.c - gpumat_copy, and the asynchronous side of the API:
 * gpumat_wait_events, gpumat_record_event and gpumat_matrix_download_async.
 *
 * Work is held back with an OpenCL user event (clCreateUserEvent on the
 * context's cl_context) passed to gpumat_wait_events: while it is unset,
 * nothing enqueued after it may run, so an event recorded after later work
 * must stay incomplete and an asynchronous download must leave the host
 * buffer untouched.  The 1000-operation chain is enqueued entirely behind
 * such a gate: every call must return GPUMAT_OK while the device cannot
 * have run any of them, which shows that no operation waits for the device.
 *
 * While a gate is closed the tests never fail (a failure would leave the
 * queue blocked and the teardown waiting forever): they note what went
 * wrong, open the gate, and fail afterwards.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <errno.h>
#include <pthread.h>

#include "gpumat.h"
#include "test_util.h"

#define MSG_SIZE 1024

static gpumat_context *g_ctx;
static uint64_t g_stream = 1;

static void rng_for_test(tu_rng *rng) { tu_rng_init(rng, g_stream++); }

static int group_setup(void **state)
{
    (void)state;
    return tu_group_context_create(&g_ctx, 1);
}

static int group_teardown(void **state)
{
    (void)state;
    return tu_group_context_destroy(&g_ctx);
}

/* While a gate is closed: remember the first failure instead of failing. */
#define GATED_OK(problem, call) TU_GATED_OK(problem, MSG_SIZE, call)

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* CL_EVENT_COMMAND_EXECUTION_STATUS, or a negative OpenCL error. */
static cl_int event_status(cl_event ev)
{
    cl_int st = -1;
    cl_int err = clGetEventInfo(ev, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof st, &st, NULL);
    return err == CL_SUCCESS ? st : err;
}

/* 1 if ev stays incomplete (and error-free) for `ms` milliseconds. */
static int stays_incomplete(cl_event ev, long ms)
{
    for (long t = 0; t < ms; t += 10) {
        cl_int st = event_status(ev);
        if (st <= CL_COMPLETE) /* complete, or an error status */
            return 0;
        sleep_ms(10);
    }
    return event_status(ev) > CL_COMPLETE;
}

/* 1 if ev completes (without error) within `seconds`; never blocks longer. */
static int completes_within(cl_event ev, double seconds)
{
    for (long t = 0; t < (long)(seconds * 1000); t += 5) {
        cl_int st = event_status(ev);
        if (st == CL_COMPLETE)
            return 1;
        if (st < 0)
            return 0;
        sleep_ms(5);
    }
    return event_status(ev) == CL_COMPLETE;
}

/* The gate: a user event of the context's cl_context, with a watchdog
 * thread that sets it after GATE_TIMEOUT_S if the test has not, so that a
 * call which wrongly waits for the device fails the test instead of
 * hanging it. */
#ifndef GATE_TIMEOUT_S
#define GATE_TIMEOUT_S 60
#endif

typedef struct user_gate {
    cl_event ev;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int opened; /* the user event has been set */
    int fired;  /* ... by the watchdog */
} user_gate;

static void *watchdog(void *arg)
{
    user_gate *g = arg;
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += GATE_TIMEOUT_S;
    pthread_mutex_lock(&g->lock);
    while (!g->opened)
        if (pthread_cond_timedwait(&g->cond, &g->lock, &deadline) == ETIMEDOUT)
            break;
    if (!g->opened) {
        g->opened = 1;
        g->fired = 1;
        clSetUserEventStatus(g->ev, CL_COMPLETE);
    }
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

static void gate_init(user_gate *g, gpumat_context *ctx)
{
    cl_int err = CL_SUCCESS;
    memset(g, 0, sizeof *g);
    g->ev = clCreateUserEvent(gpumat_context_cl_context(ctx), &err);
    if (err != CL_SUCCESS || !g->ev)
        fail_msg("clCreateUserEvent -> %d", (int)err);
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
    if (pthread_create(&g->thread, NULL, watchdog, g) != 0)
        fail_msg("pthread_create failed");
}

/* Sets the user event (once) and stops the watchdog.  If the watchdog had
 * to set it, that is the test's failure. */
static void gate_open(user_gate *g, char *problem)
{
    cl_int err = CL_SUCCESS;
    pthread_mutex_lock(&g->lock);
    if (!g->opened) {
        g->opened = 1;
        err = clSetUserEventStatus(g->ev, CL_COMPLETE);
    }
    pthread_cond_signal(&g->cond);
    pthread_mutex_unlock(&g->lock);
    pthread_join(g->thread, NULL);
    if (g->fired)
        snprintf(problem, MSG_SIZE, "a call blocked while the user event was unset (the "
                                    "watchdog set it after %d s)", GATE_TIMEOUT_S);
    else if (err != CL_SUCCESS && !problem[0])
        snprintf(problem, MSG_SIZE, "clSetUserEventStatus -> %d", (int)err);
}

static void gate_release(user_gate *g)
{
    clReleaseEvent(g->ev);
    pthread_mutex_destroy(&g->lock);
    pthread_cond_destroy(&g->cond);
}

/* Expects `got` == `want` and a message on ctx that contains needle. */
static void expect_error(gpumat_context *ctx, const char *call, gpumat_status got,
                         gpumat_status want, const char *n1, const char *n2)
{
    char msg[MSG_SIZE];
    snprintf(msg, sizeof msg, "%s", gpumat_last_error(ctx));
    if (got != want)
        fail_msg("%s -> %d (%s), expected %d (%s); message: %s", call, (int)got,
                 gpumat_strerror(got), (int)want, gpumat_strerror(want), msg);
    if (n1 && !tu_contains_ci(msg, n1))
        fail_msg("%s: message \"%s\" does not mention \"%s\"", call, msg, n1);
    if (n2 && !tu_contains_ci(msg, n2))
        fail_msg("%s: message \"%s\" does not mention \"%s\"", call, msg, n2);
}

#define EXPECT_ERR(ctx, call, want, n1, n2) expect_error(ctx, #call, (call), want, n1, n2)

static int same_exactly(const gpumat_matrix *m, const double *expected, char *msg)
{
    size_t r = gpumat_matrix_rows(m), c = gpumat_matrix_cols(m);
    double *h = xmalloc(r * c * sizeof *h);
    gpumat_status s = tu_download(m, h);
    int ok = s == GPUMAT_OK && tu_compare("matrix", r, c, h, expected, NULL, 0.0, msg, MSG_SIZE);
    if (s != GPUMAT_OK)
        snprintf(msg, MSG_SIZE, "download -> %d", (int)s);
    free(h);
    return ok;
}

/* ---- gpumat_copy ---------------------------------------------------------- */

static void run_copy(gpumat_context *ctx, tu_rng *rng, gpumat_dtype dt, size_t rows, size_t cols)
{
    gpumat_matrix *src, *dst;
    double *hs;
    char msg[MSG_SIZE], what[128];
    TU_CHECK_OK(tu_random_matrix(ctx, rng, rows, cols, dt, &src, &hs));
    TU_CHECK_OK(gpumat_matrix_create(ctx, rows, cols, dt, &dst));
    TU_CHECK_OK(tu_poison(dst));
    TU_CHECK_OK(gpumat_copy(dst, src));
    double *out = xmalloc(rows * cols * sizeof *out);
    TU_CHECK_OK(tu_download(dst, out));
    snprintf(what, sizeof what, "copy %zux%zu %s", rows, cols, tu_dtype_name(dt));
    int ok = tu_compare(what, rows, cols, out, hs, NULL, 0.0, msg, sizeof msg);
    if (ok && !same_exactly(src, hs, msg))
        ok = 0; /* src was modified; msg says where */
    gpumat_matrix_destroy(src);
    gpumat_matrix_destroy(dst);
    free(hs);
    free(out);
    if (!ok)
        fail_msg("%s", msg);
}

static void test_copy_shapes(void **state)
{
    (void)state;
    static const size_t shapes[][2] = {
        {1, 1},  {1, 257}, {257, 1},  {1, 1000}, {1000, 1},
        {7, 13}, {64, 64}, {65, 127}, {1023, 777},
    };
    tu_rng rng;
    rng_for_test(&rng);
    for (int d = 0; d < 2; ++d) {
        gpumat_dtype dt = d ? GPUMAT_F64 : GPUMAT_F32;
        if (dt == GPUMAT_F64 && !tu_has_fp64(g_ctx))
            continue;
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; ++i)
            run_copy(g_ctx, &rng, dt, shapes[i][0], shapes[i][1]);
    }
}

/* dst == src is allowed and changes nothing. */
static void test_copy_self(void **state)
{
    (void)state;
    tu_rng rng;
    rng_for_test(&rng);
    gpumat_matrix *m;
    double *h;
    char msg[MSG_SIZE];
    TU_CHECK_OK(tu_random_matrix(g_ctx, &rng, 33, 65, GPUMAT_F32, &m, &h));
    TU_CHECK_OK(gpumat_copy(m, m));
    int ok = same_exactly(m, h, msg);
    gpumat_matrix_destroy(m);
    free(h);
    if (!ok)
        fail_msg("copy(m, m): %s", msg);
}

/* Copies are ordered with the other operations on the queue:
 * b = a; a = a + a; c = a; then b holds the old a and c the doubled one. */
static void test_copy_ordered(void **state)
{
    (void)state;
    enum { R = 37, C = 129 };
    tu_rng rng;
    rng_for_test(&rng);
    gpumat_matrix *a, *b, *c;
    double *ha;
    static double twice[R * C];
    char msg[MSG_SIZE];
    TU_CHECK_OK(tu_random_matrix(g_ctx, &rng, R, C, GPUMAT_F32, &a, &ha));
    TU_CHECK_OK(gpumat_matrix_create(g_ctx, R, C, GPUMAT_F32, &b));
    TU_CHECK_OK(gpumat_matrix_create(g_ctx, R, C, GPUMAT_F32, &c));
    TU_CHECK_OK(tu_poison(b));
    TU_CHECK_OK(tu_poison(c));
    TU_CHECK_OK(gpumat_copy(b, a));
    TU_CHECK_OK(gpumat_add(a, a, a));
    TU_CHECK_OK(gpumat_copy(c, a));
    for (size_t i = 0; i < R * C; ++i)
        twice[i] = 2 * ha[i]; /* exact */
    int ok = same_exactly(b, ha, msg);
    if (ok)
        ok = same_exactly(c, twice, msg);
    gpumat_matrix_destroy(a);
    gpumat_matrix_destroy(b);
    gpumat_matrix_destroy(c);
    free(ha);
    if (!ok)
        fail_msg("copy / add / copy: %s", msg);
}

static void test_copy_errors(void **state)
{
    (void)state;
    tu_rng rng;
    rng_for_test(&rng);
    gpumat_matrix *m34, *m43, *m35, *dst;
    double *h34, *hdst;
    char msg[MSG_SIZE];
    TU_CHECK_OK(tu_random_matrix(g_ctx, &rng, 3, 4, GPUMAT_F32, &m34, &h34));
    TU_CHECK_OK(tu_random_matrix(g_ctx, &rng, 3, 4, GPUMAT_F32, &dst, &hdst));
    TU_CHECK_OK(gpumat_matrix_create(g_ctx, 4, 3, GPUMAT_F32, &m43));
    TU_CHECK_OK(gpumat_matrix_create(g_ctx, 3, 5, GPUMAT_F32, &m35));

    EXPECT_ERR(g_ctx, gpumat_copy(m43, m34), GPUMAT_ERR_SHAPE, "4x3", "3x4");
    EXPECT_ERR(g_ctx, gpumat_copy(m35, m34), GPUMAT_ERR_SHAPE, "3x5", "3x4");
    EXPECT_ERR(g_ctx, gpumat_copy(dst, m35), GPUMAT_ERR_SHAPE, "3x4", "3x5");
    EXPECT_ERR(g_ctx, gpumat_copy(NULL, m34), GPUMAT_ERR_INVALID_ARGUMENT, "dst", NULL);
    EXPECT_ERR(g_ctx, gpumat_copy(dst, NULL), GPUMAT_ERR_INVALID_ARGUMENT, "src", NULL);
    EXPECT_ERR(NULL, gpumat_copy(NULL, NULL), GPUMAT_ERR_INVALID_ARGUMENT, NULL, NULL);
    if (tu_has_fp64(g_ctx)) {
        gpumat_matrix *d;
        TU_CHECK_OK(gpumat_matrix_create(g_ctx, 3, 4, GPUMAT_F64, &d));
        EXPECT_ERR(g_ctx, gpumat_copy(dst, d), GPUMAT_ERR_DTYPE, NULL, NULL);
        EXPECT_ERR(g_ctx, gpumat_copy(d, m34), GPUMAT_ERR_DTYPE, NULL, NULL);
        gpumat_matrix_destroy(d);
    }
    gpumat_context *other;
    TU_CHECK_OK(gpumat_context_create(&other, NULL));
    gpumat_matrix *o;
    TU_CHECK_OK(gpumat_matrix_create(other, 3, 4, GPUMAT_F32, &o));
    EXPECT_ERR(g_ctx, gpumat_copy(dst, o), GPUMAT_ERR_CONTEXT_MISMATCH, NULL, NULL);
    EXPECT_ERR(other, gpumat_copy(o, m34), GPUMAT_ERR_CONTEXT_MISMATCH, NULL, NULL);
    gpumat_matrix_destroy(o);
    gpumat_context_destroy(other);

    /* No failed copy wrote its dst. */
    int ok = same_exactly(dst, hdst, msg) && same_exactly(m34, h34, msg);
    gpumat_matrix_destroy(m34);
    gpumat_matrix_destroy(m43);
    gpumat_matrix_destroy(m35);
    gpumat_matrix_destroy(dst);
    free(h34);
    free(hdst);
    if (!ok)
        fail_msg("after failed copies: %s", msg);
}

/* ---- gpumat_wait_events ------------------------------------------------------- */

/* c = a + b enqueued behind a user event: an event recorded after it stays
 * incomplete until the user event is set; work enqueued before the gate is
 * not held back. */
static void test_wait_user_event(void **state)
{
    (void)state;
    enum { R = 65, C = 127 };
    tu_rng rng;
    rng_for_test(&rng);
    gpumat_matrix *a, *b, *c, *before;
    double *ha, *hb;
    static double ref[R * C], scale[R * C], out[R * C];
    char problem[MSG_SIZE] = "", msg[MSG_SIZE];
    TU_CHECK_OK(tu_random_matrix(g_ctx, &rng, R, C, GPUMAT_F32, &a, &ha));
    TU_CHECK_OK(tu_random_matrix(g_ctx, &rng, R, C, GPUMAT_F32, &b, &hb));
    TU_CHECK_OK(gpumat_matrix_create(g_ctx, R, C, GPUMAT_F32, &c));
    TU_CHECK_OK(gpumat_matrix_create(g_ctx, R, C, GPUMAT_F32, &before));
    TU_CHECK_OK(tu_poison(c));

    /* Some work, then an event for it: that must complete on its own. */
    cl_event e_before = NULL, e_after = NULL;
    TU_CHECK_OK(gpumat_add(before, a, b));
    TU_CHECK_OK(gpumat_record_event(g_ctx, &e_before));
    assert_non_null(e_before);

    user_gate gate;
    gate_init(&gate, g_ctx);
    GATED_OK(problem, gpumat_wait_events(g_ctx, 1, &gate.ev));
    GATED_OK(problem, gpumat_add(c, a, b));
    GATED_OK(problem, gpumat_record_event(g_ctx, &e_after));
    clFlush(gpumat_context_cl_queue(g_ctx));
    if (!problem[0] && !completes_within(e_before, 60.0))
        snprintf(problem, MSG_SIZE, "work enqueued before wait_events did not complete "
                                    "(status %d)", (int)event_status(e_before));
    if (!problem[0] && e_after && !stays_incomplete(e_after, 300))
        snprintf(problem, MSG_SIZE, "an event recorded after wait_events on an unset user "
                                    "event completed (status %d)", (int)event_status(e_after));
    gate_open(&gate, problem);
    gpumat_status fs = gpumat_finish(g_ctx);
    if (fs != GPUMAT_OK && !problem[0])
        snprintf(problem, MSG_SIZE, "gpumat_finish -> %d: %s", (int)fs, gpumat_last_error(NULL));
    if (!problem[0] && e_after && event_status(e_after) != CL_COMPLETE)
        snprintf(problem, MSG_SIZE, "after the user event and finish, the recorded event has "
                                    "status %d", (int)event_status(e_after));
    gate_release(&gate);
    if (e_before)
        clReleaseEvent(e_before);
    if (e_after)
        clReleaseEvent(e_after);
    if (problem[0])
        fail_msg("%s", problem);

    TU_CHECK_OK(tu_download(c, out));
    tu_ref_add(ha, hb, ref, scale, R * C);
    int ok = tu_compare("c = a + b behind a user event", R, C, out, ref, scale,
                        tu_add_tolerance(GPUMAT_F32), msg, sizeof msg);
    gpumat_matrix_destroy(a);
    gpumat_matrix_destroy(b);
    gpumat_matrix_destroy(c);
    gpumat_matrix_destroy(before);
    free(ha);
    free(hb);
    if (!ok)
        fail_msg("%s", msg);
}

/* Two events, one from the user and one from another queue of the same
 * cl_context (itself waiting for a second user event): work waits for both. */
static void test_wait_two_events(void **state)
{
    (void)state;
    enum { R = 16, C = 24 };
    tu_rng rng;
    rng_for_test(&rng);
    gpumat_matrix *a, *b, *c;
    double *ha, *hb;
    static double ref[R * C], scale[R * C], out[R * C];
    char problem[MSG_SIZE] = "", msg[MSG_SIZE];
    TU_CHECK_OK(tu_random_matrix(g_ctx, &rng, R, C, GPUMAT_F32, &a, &ha));
    TU_CHECK_OK(tu_random_matrix(g_ctx, &rng, R, C, GPUMAT_F32, &b, &hb));
    TU_CHECK_OK(gpumat_matrix_create(g_ctx, R, C, GPUMAT_F32, &c));
    TU_CHECK_OK(tu_poison(c));

    cl_context clctx = gpumat_context_cl_context(g_ctx);
    cl_device_id dev = NULL;
    TU_CHECK_CL(clGetCommandQueueInfo(gpumat_context_cl_queue(g_ctx), CL_QUEUE_DEVICE, sizeof dev,
                                   &dev, NULL));
    cl_int err = CL_SUCCESS;
    cl_command_queue q2 = clCreateCommandQueueWithProperties(clctx, dev, NULL, &err);
    if (err != CL_SUCCESS || !q2)
        fail_msg("clCreateCommandQueueWithProperties -> %d", (int)err);

    user_gate gate1, gate2;
    cl_event other = NULL, done = NULL;
    gate_init(&gate1, g_ctx);
    gate_init(&gate2, g_ctx);
    cl_int merr = clEnqueueMarkerWithWaitList(q2, 1, &gate2.ev, &other);
    if (merr != CL_SUCCESS)
        snprintf(problem, MSG_SIZE, "clEnqueueMarkerWithWaitList -> %d", (int)merr);
    clFlush(q2);
    cl_event both[2] = {gate1.ev, other};
    if (!other) /* wait_events must then refuse the NULL entry */
        snprintf(problem, MSG_SIZE, "no event from the second queue");
    GATED_OK(problem, gpumat_wait_events(g_ctx, 2, both));
    GATED_OK(problem, gpumat_add(c, a, b));
    GATED_OK(problem, gpumat_record_event(g_ctx, &done));
    clFlush(gpumat_context_cl_queue(g_ctx));
    if (!problem[0] && done && !stays_incomplete(done, 200))
        snprintf(problem, MSG_SIZE, "completed with neither event set");
    gate_open(&gate1, problem);
    if (!problem[0] && done && !stays_incomplete(done, 200))
        snprintf(problem, MSG_SIZE, "completed while the other queue's event was pending");
    gate_open(&gate2, problem);
    if (!problem[0] && done && !completes_within(done, 60.0))
        snprintf(problem, MSG_SIZE, "did not complete after both events (status %d)",
                 (int)event_status(done));
    gpumat_status fs = gpumat_finish(g_ctx);
    if (fs != GPUMAT_OK && !problem[0])
        snprintf(problem, MSG_SIZE, "gpumat_finish -> %d", (int)fs);
    clFinish(q2);
    gate_release(&gate1);
    gate_release(&gate2);
    if (other)
        clReleaseEvent(other);
    if (done)
        clReleaseEvent(done);
    clReleaseCommandQueue(q2);
    if (problem[0])
        fail_msg("wait_events with two events: %s", problem);

    TU_CHECK_OK(tu_download(c, out));
    tu_ref_add(ha, hb, ref, scale, R * C);
    int ok = tu_compare("c = a + b behind two events", R, C, out, ref, scale,
                        tu_add_tolerance(GPUMAT_F32), msg, sizeof msg);
    gpumat_matrix_destroy(a);
    gpumat_matrix_destroy(b);
    gpumat_matrix_destroy(c);
    free(ha);
    free(hb);
    if (!ok)
        fail_msg("%s", msg);
}

static void test_wait_errors(void **state)
{
    (void)state;
    user_gate gate;
    gate_init(&gate, g_ctx);
    cl_event with_null[2] = {gate.ev, NULL};
    cl_event only_null[1] = {NULL};

    EXPECT_ERR(NULL, gpumat_wait_events(NULL, 1, &gate.ev), GPUMAT_ERR_INVALID_ARGUMENT, "ctx",
               NULL);
    EXPECT_ERR(NULL, gpumat_wait_events(NULL, 0, NULL), GPUMAT_ERR_INVALID_ARGUMENT, "ctx",
               NULL);
    EXPECT_ERR(g_ctx, gpumat_wait_events(g_ctx, 1, NULL), GPUMAT_ERR_INVALID_ARGUMENT,
               "events", NULL);
    EXPECT_ERR(g_ctx, gpumat_wait_events(g_ctx, 3, NULL), GPUMAT_ERR_INVALID_ARGUMENT,
               "events", NULL);
    EXPECT_ERR(g_ctx, gpumat_wait_events(g_ctx, 2, with_null), GPUMAT_ERR_INVALID_ARGUMENT,
               "events[1]", NULL);
    EXPECT_ERR(g_ctx, gpumat_wait_events(g_ctx, 1, only_null), GPUMAT_ERR_INVALID_ARGUMENT,
               "events[0]", NULL);
    /* count == 0 is a no-op, whatever the array. */
    TU_CHECK_OK(gpumat_wait_events(g_ctx, 0, NULL));
    TU_CHECK_OK(gpumat_wait_events(g_ctx, 0, only_null));

    /* The failed calls (one of them listing the unset gate) installed no
     * wait: new work completes while the gate is still closed. */
    char problem[MSG_SIZE] = "";
    gpumat_matrix *m = NULL;
    cl_event ev = NULL;
    GATED_OK(problem, gpumat_matrix_create(g_ctx, 8, 8, GPUMAT_F32, &m));
    if (m)
        GATED_OK(problem, gpumat_add(m, m, m));
    GATED_OK(problem, gpumat_record_event(g_ctx, &ev));
    if (!problem[0] && ev && !completes_within(ev, 60.0))
        snprintf(problem, MSG_SIZE, "after failed wait_events calls, work is held back "
                                    "(status %d)", (int)event_status(ev));
    gate_open(&gate, problem);
    gpumat_status fs = gpumat_finish(g_ctx);
    if (fs != GPUMAT_OK && !problem[0])
        snprintf(problem, MSG_SIZE, "gpumat_finish -> %d", (int)fs);
    if (ev)
        clReleaseEvent(ev);
    gate_release(&gate);
    gpumat_matrix_destroy(m);
    if (problem[0])
        fail_msg("%s", problem);
}

/* ---- gpumat_record_event ------------------------------------------------------ */

static void test_record_event(void **state)
{
    (void)state;
    tu_rng rng;
    rng_for_test(&rng);
    gpumat_matrix *a, *b, *c;
    double *ha, *hb;
    TU_CHECK_OK(tu_random_matrix(g_ctx, &rng, 129, 65, GPUMAT_F32, &a, &ha));
    TU_CHECK_OK(tu_random_matrix(g_ctx, &rng, 65, 127, GPUMAT_F32, &b, &hb));
    TU_CHECK_OK(gpumat_matrix_create(g_ctx, 129, 127, GPUMAT_F32, &c));

    /* On an idle context: completes by itself. */
    cl_event idle = NULL;
    TU_CHECK_OK(gpumat_finish(g_ctx));
    TU_CHECK_OK(gpumat_record_event(g_ctx, &idle));
    assert_non_null(idle);
    assert_true(completes_within(idle, 60.0));

    /* After work: complete once gpumat_finish returns. */
    cl_event ev = NULL;
    TU_CHECK_OK(gpumat_multiply(c, a, b));
    TU_CHECK_OK(gpumat_add(a, a, a));
    TU_CHECK_OK(gpumat_record_event(g_ctx, &ev));
    assert_non_null(ev);
    assert_true(ev != idle);
    TU_CHECK_OK(gpumat_finish(g_ctx));
    assert_int_equal(event_status(ev), CL_COMPLETE);

    /* The event belongs to the context's cl_context and queue. */
    cl_context evctx = NULL;
    cl_command_queue evq = NULL;
    TU_CHECK_CL(clGetEventInfo(ev, CL_EVENT_CONTEXT, sizeof evctx, &evctx, NULL));
    TU_CHECK_CL(clGetEventInfo(ev, CL_EVENT_COMMAND_QUEUE, sizeof evq, &evq, NULL));
    assert_true(evctx == gpumat_context_cl_context(g_ctx));
    assert_true(evq == gpumat_context_cl_queue(g_ctx));
    /* The caller holds a reference.  (The exact count is not checked: the
     * spec calls CL_EVENT_REFERENCE_COUNT stale on return, and PoCL may
     * still hold its own reference briefly after completion.) */
    cl_uint refs = 0;
    TU_CHECK_CL(clGetEventInfo(ev, CL_EVENT_REFERENCE_COUNT, sizeof refs, &refs, NULL));
    assert_true(refs >= 1);

    /* Without gpumat_finish: clWaitForEvents on a recorded event suffices,
     * and the work before it is done (the queue is in order). */
    cl_event ev2 = NULL;
    gpumat_matrix *d;
    TU_CHECK_OK(gpumat_matrix_create(g_ctx, 129, 127, GPUMAT_F32, &d));
    TU_CHECK_OK(tu_poison(d));
    TU_CHECK_OK(gpumat_copy(d, c));
    TU_CHECK_OK(gpumat_record_event(g_ctx, &ev2));
    TU_CHECK_CL(clWaitForEvents(1, &ev2));
    assert_int_equal(event_status(ev2), CL_COMPLETE);

    /* A recorded event works as a wait_events input. */
    TU_CHECK_OK(gpumat_wait_events(g_ctx, 1, &ev2));
    TU_CHECK_OK(gpumat_finish(g_ctx));

    clReleaseEvent(idle);
    clReleaseEvent(ev);
    clReleaseEvent(ev2);

    /* Errors. */
    cl_event untouched = (cl_event)(uintptr_t)1;
    EXPECT_ERR(NULL, gpumat_record_event(NULL, &untouched), GPUMAT_ERR_INVALID_ARGUMENT, "ctx",
               NULL);
    EXPECT_ERR(g_ctx, gpumat_record_event(g_ctx, NULL), GPUMAT_ERR_INVALID_ARGUMENT, "event",
               NULL);

    static double out[129 * 127], ref[129 * 127], scale[129 * 127];
    char msg[MSG_SIZE];
    TU_CHECK_OK(tu_download(d, out));
    tu_ref_gemm(129, 65, 127, ha, hb, ref, scale);
    int ok = tu_compare("multiply then copy, finished by an event", 129, 127, out, ref, scale,
                        tu_gemm_tolerance(GPUMAT_F32, 65), msg, sizeof msg);
    gpumat_matrix_destroy(a);
    gpumat_matrix_destroy(b);
    gpumat_matrix_destroy(c);
    gpumat_matrix_destroy(d);
    free(ha);
    free(hb);
    if (!ok)
        fail_msg("%s", msg);
}

/* ---- gpumat_matrix_download_async ------------------------------------------- */

/* Host buffer of the matrix's dtype, widened to double. */
static void widen(gpumat_dtype dt, const void *host, double *out, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        out[i] = dt == GPUMAT_F64 ? ((const double *)host)[i] : (double)((const float *)host)[i];
}

static void fill_nan(gpumat_dtype dt, void *host, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        if (dt == GPUMAT_F64)
            ((double *)host)[i] = NAN;
        else
            ((float *)host)[i] = NAN;
    }
}

static int all_nan(gpumat_dtype dt, const void *host, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        double v = dt == GPUMAT_F64 ? ((const double *)host)[i] : (double)((const float *)host)[i];
        if (!isnan(v))
            return 0;
    }
    return 1;
}

static void download_async_dtype(tu_rng *rng, gpumat_dtype dt, size_t rows, size_t cols)
{
    size_t n = rows * cols, es = gpumat_dtype_size(dt);
    gpumat_matrix *a, *b, *c;
    double *ha, *hb;
    TU_CHECK_OK(tu_random_matrix(g_ctx, rng, rows, cols, dt, &a, &ha));
    TU_CHECK_OK(tu_random_matrix(g_ctx, rng, rows, cols, dt, &b, &hb));
    TU_CHECK_OK(gpumat_matrix_create(g_ctx, rows, cols, dt, &c));
    TU_CHECK_OK(tu_poison(c));
    void *host = xmalloc(n * es);
    double *out = xmalloc(n * sizeof *out), *ref = xmalloc(n * sizeof *ref);
    double *scale = xmalloc(n * sizeof *scale);
    tu_ref_add(ha, hb, ref, scale, n);
    char what[160], msg[MSG_SIZE];
    int ok = 1;

    /* 1. With an event, right after the operation that writes c. */
    cl_event ev = NULL;
    fill_nan(dt, host, n);
    TU_CHECK_OK(gpumat_add(c, a, b));
    TU_CHECK_OK(gpumat_matrix_download_async(c, host, &ev));
    assert_non_null(ev);
    assert_true(completes_within(ev, 60.0));
    widen(dt, host, out, n);
    clReleaseEvent(ev);
    snprintf(what, sizeof what, "download_async (event) %zux%zu %s", rows, cols,
             tu_dtype_name(dt));
    ok = tu_compare(what, rows, cols, out, ref, scale, tu_add_tolerance(dt), msg, sizeof msg);

    /* 2. Without an event: gpumat_finish tells when it is done. */
    if (ok) {
        fill_nan(dt, host, n);
        TU_CHECK_OK(gpumat_matrix_download_async(a, host, NULL));
        TU_CHECK_OK(gpumat_finish(g_ctx));
        widen(dt, host, out, n);
        snprintf(what, sizeof what, "download_async (NULL event) %zux%zu %s", rows, cols,
                 tu_dtype_name(dt));
        ok = tu_compare(what, rows, cols, out, ha, NULL, 0.0, msg, sizeof msg);
    }

    /* 3. Behind a closed gate: returns at once and leaves host alone until
     *    the gate opens. */
    if (ok) {
        char problem[MSG_SIZE] = "";
        user_gate gate;
        gate_init(&gate, g_ctx);
        ev = NULL;
        fill_nan(dt, host, n);
        GATED_OK(problem, gpumat_wait_events(g_ctx, 1, &gate.ev));
        GATED_OK(problem, gpumat_add(c, c, b)); /* c = a + b + b */
        GATED_OK(problem, gpumat_matrix_download_async(c, host, &ev));
        clFlush(gpumat_context_cl_queue(g_ctx));
        if (!problem[0] && ev && !stays_incomplete(ev, 200))
            snprintf(problem, MSG_SIZE, "download_async behind an unset user event completed");
        if (!problem[0] && !all_nan(dt, host, n))
            snprintf(problem, MSG_SIZE, "download_async wrote host memory behind an unset "
                                        "user event");
        gate_open(&gate, problem);
        if (!problem[0] && ev && !completes_within(ev, 60.0))
            snprintf(problem, MSG_SIZE, "download_async did not complete after the gate");
        gpumat_status fs = gpumat_finish(g_ctx);
        if (fs != GPUMAT_OK && !problem[0])
            snprintf(problem, MSG_SIZE, "gpumat_finish -> %d", (int)fs);
        gate_release(&gate);
        if (ev)
            clReleaseEvent(ev);
        if (problem[0]) {
            ok = 0;
            snprintf(msg, sizeof msg, "%s gated: %.900s", tu_dtype_name(dt), problem);
        } else {
            widen(dt, host, out, n);
            /* c = fl(fl(a + b) + b): check against the device's own first sum. */
            double *first = xmalloc(n * sizeof *first);
            double *ref2 = xmalloc(n * sizeof *ref2), *scale2 = xmalloc(n * sizeof *scale2);
            TU_CHECK_OK(gpumat_add(c, a, b));
            TU_CHECK_OK(tu_download(c, first));
            tu_ref_add(first, hb, ref2, scale2, n);
            snprintf(what, sizeof what, "download_async (gated) %zux%zu %s", rows, cols,
                     tu_dtype_name(dt));
            ok = tu_compare(what, rows, cols, out, ref2, scale2, tu_add_tolerance(dt), msg,
                            sizeof msg);
            free(first);
            free(ref2);
            free(scale2);
        }
    }

    gpumat_matrix_destroy(a);
    gpumat_matrix_destroy(b);
    gpumat_matrix_destroy(c);
    free(ha);
    free(hb);
    free(host);
    free(out);
    free(ref);
    free(scale);
    if (!ok)
        fail_msg("%s", msg);
}

static void test_download_async(void **state)
{
    (void)state;
    tu_rng rng;
    rng_for_test(&rng);
    static const size_t shapes[][2] = {{1, 1}, {1, 257}, {257, 1}, {1023, 777}};
    for (int d = 0; d < 2; ++d) {
        gpumat_dtype dt = d ? GPUMAT_F64 : GPUMAT_F32;
        if (dt == GPUMAT_F64 && !tu_has_fp64(g_ctx))
            continue;
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; ++i)
            download_async_dtype(&rng, dt, shapes[i][0], shapes[i][1]);
    }
}

static void test_download_async_errors(void **state)
{
    (void)state;
    gpumat_matrix *m;
    float host[4];
    cl_event ev = NULL;
    TU_CHECK_OK(gpumat_matrix_create(g_ctx, 2, 2, GPUMAT_F32, &m));
    EXPECT_ERR(NULL, gpumat_matrix_download_async(NULL, host, &ev),
               GPUMAT_ERR_INVALID_ARGUMENT, "m", NULL);
    EXPECT_ERR(g_ctx, gpumat_matrix_download_async(m, NULL, &ev), GPUMAT_ERR_INVALID_ARGUMENT,
               "host", NULL);
    EXPECT_ERR(g_ctx, gpumat_matrix_download_async(m, NULL, NULL),
               GPUMAT_ERR_INVALID_ARGUMENT, "host", NULL);
    assert_null(ev); /* nothing was handed out */
    gpumat_matrix_destroy(m);
}

/* ---- 1000 operations behind a closed gate --------------------------------------- */

static void test_chain_1000(void **state)
{
    (void)state;
    enum { R = 64, C = 64, OPS = 1000 };
    tu_rng rng;
    rng_for_test(&rng);
    /* Small integers: every partial sum is exact in float, so the result
     * must be exactly x0 + 1000 a, and a lost, repeated or reordered add
     * shows. */
    static double hx[R * C], ha[R * C], want[R * C], out[R * C];
    for (size_t i = 0; i < R * C; ++i) {
        hx[i] = (double)((int64_t)(tu_rng_next(&rng) % 2001) - 1000);
        ha[i] = (double)((int64_t)(tu_rng_next(&rng) % 17) - 8);
        want[i] = hx[i] + OPS * ha[i];
    }
    gpumat_matrix *x, *a;
    TU_CHECK_OK(gpumat_matrix_create(g_ctx, R, C, GPUMAT_F32, &x));
    TU_CHECK_OK(gpumat_matrix_create(g_ctx, R, C, GPUMAT_F32, &a));
    TU_CHECK_OK(tu_upload(x, hx)); /* uploads block: all before the gate */
    TU_CHECK_OK(tu_upload(a, ha));
    TU_CHECK_OK(gpumat_finish(g_ctx));

    char problem[MSG_SIZE] = "";
    user_gate gate;
    cl_event done = NULL;
    gate_init(&gate, g_ctx);
    GATED_OK(problem, gpumat_wait_events(g_ctx, 1, &gate.ev));
    int returned = 0;
    for (int i = 0; i < OPS; ++i) {
        gpumat_status s = gpumat_add(x, x, a);
        if (s != GPUMAT_OK) {
            if (!problem[0])
                snprintf(problem, MSG_SIZE, "add %d of %d -> %d (%s): %s", i + 1, OPS, (int)s,
                         gpumat_strerror(s), gpumat_last_error(NULL));
            break;
        }
        ++returned;
    }
    /* All 1000 calls came back while the device could not run any of them. */
    cl_int gate_status = event_status(gate.ev);
    if (!problem[0] && gate_status <= CL_COMPLETE)
        snprintf(problem, MSG_SIZE, "the user event is not pending (%d)", (int)gate_status);
    GATED_OK(problem, gpumat_record_event(g_ctx, &done));
    clFlush(gpumat_context_cl_queue(g_ctx));
    if (!problem[0] && done && !stays_incomplete(done, 100))
        snprintf(problem, MSG_SIZE, "the chain completed before the user event was set");
    gate_open(&gate, problem);
    gpumat_status fs = gpumat_finish(g_ctx);
    if (fs != GPUMAT_OK && !problem[0])
        snprintf(problem, MSG_SIZE, "gpumat_finish -> %d: %s", (int)fs, gpumat_last_error(NULL));
    if (!problem[0] && done && event_status(done) != CL_COMPLETE)
        snprintf(problem, MSG_SIZE, "after finish the recorded event has status %d",
                 (int)event_status(done));
    gate_release(&gate);
    if (done)
        clReleaseEvent(done);
    if (problem[0]) {
        gpumat_matrix_destroy(x);
        gpumat_matrix_destroy(a);
        fail_msg("%d of %d adds returned GPUMAT_OK; %s", returned, OPS, problem);
    }

    char msg[MSG_SIZE];
    TU_CHECK_OK(tu_download(x, out));
    int ok = tu_compare("x = x + a, 1000 times behind a user event", R, C, out, want, NULL, 0.0,
                        msg, sizeof msg);
    gpumat_matrix_destroy(x);
    gpumat_matrix_destroy(a);
    if (!ok)
        fail_msg("%s", msg);
}

int main(void)
{
    tu_init("test_events");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copy_shapes),
        cmocka_unit_test(test_copy_self),
        cmocka_unit_test(test_copy_ordered),
        cmocka_unit_test(test_copy_errors),
        cmocka_unit_test(test_wait_user_event),
        cmocka_unit_test(test_wait_two_events),
        cmocka_unit_test(test_wait_errors),
        cmocka_unit_test(test_record_event),
        cmocka_unit_test(test_download_async),
        cmocka_unit_test(test_download_async_errors),
        cmocka_unit_test(test_chain_1000),
    };
    return cmocka_run_group_tests_name("copy and events", tests, group_setup, group_teardown)
               ? 1
               : 0;
}
