/*
 * test_scratch.c - gpumat_context_trim and gpumat_context_scratch_size:
 * the GEMM scratch a context keeps between products (operand copies,
 * stream-K's partial sums and tile counters) is 0 on a new context, grows
 * with a product that needs it, is reused by the next product of the same
 * size, is 0 again after a trim, and comes back, with correct products,
 * when a later product needs it; where the driver counts buffers in the
 * cl_context's reference count, the trimmed buffers leave it.  Also: a
 * trim while products are queued (held back behind an OpenCL user event)
 * returns without waiting and those products still come out right; trims
 * from one thread while another runs products; NULL arguments.
 *
 * Three contexts:
 * - the CPU kernels (cl/gemm_cpu.cl): the device's own profile where it is
 *   cpu or cpu-avx512, else GPUMAT_PROFILE=cpu.  They pack their operands
 *   into the context's pack buffers from CPACK^3 = 224^3 multiply-adds on,
 *   so the 256^3 products here use them (TN products both buffers).
 * - GPUMAT_PROFILE=nvidia-gpu with test_gemm's "operand copies"
 *   parameters (PACKA=1: NN products copy A^T into a pack buffer;
 *   SMALLPCT=1, SKFILL=100: every product on the big tile, its last wave
 *   split along k by stream-K), so that a trim releases stream-K's
 *   buffers and the next split product must get a fresh, zeroed counter
 *   buffer.  Skipped where those parameters do not fit the device.
 * - GPUMAT_PROFILE=nvidia-gpu with products on the tiny tiles or the split
 *   tile: a deep product of one tile runs as split-K, whose slices are
 *   scratch of a size the test knows, so that it also shows the dispatch.
 *
 * Every product is checked against the double-precision reference with
 * the bound of test_util.h (tu_gemm_tolerance) over a NaN-poisoned c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gpumat.h"
#include "test_util.h"

#define MSG_SIZE 1024

/* ---- groups: one context each -------------------------------------------- */

typedef struct scratch_group {
    const char *label;
    const char *profile; /* GPUMAT_PROFILE; NULL: the device's own if it is a CPU profile */
    const char *params;  /* GPUMAT_KERNEL_PARAMS, or NULL */
    gpumat_context *ctx;
    char skipped[512];   /* why the group's context does not exist here */
} scratch_group;

static scratch_group g_cpu = {"CPU kernels", NULL, NULL, NULL, ""};
/* test_gemm's operand-copies group: the same string, the same builds. */
static scratch_group g_split = {"nvidia-gpu, operand copies and stream-K", "nvidia-gpu",
                                "PACKA=1,PACKB=1,SMALLPCT=1,SKFILL=100,SKFILL64=100", NULL, ""};
/* Every product on the tiny tiles (SMALLPCT, TINYPCT) but for the split
 * tile, none on the big tile's split (SKMIN=0), and waves of 16 split-tile
 * groups per compute unit (SKGM, SKGM64), so that PoCL's two units hold
 * more slices a tile than SKSPLIT. */
static scratch_group g_ksplit = {"nvidia-gpu, split-K", "nvidia-gpu",
                                 "SMALLPCT=4096,TINYPCT=4096,SKMIN=0,SKGM=16,SKGM64=16", NULL,
                                 ""};

static uint64_t g_stream = 1;

static void rng_for_test(tu_rng *rng) { tu_rng_init(rng, g_stream++); }

/* A native-GEMM context with GPUMAT_PROFILE = profile (NULL: unset) and
 * GPUMAT_KERNEL_PARAMS = params (NULL: unset); no tuning file, so that
 * CPACK and the rest are the shipped values.  The environment is restored
 * afterwards. */
static gpumat_status create_context(const char *profile, const char *params,
                                    gpumat_context **ctx)
{
    tu_saved_env saved[3];
    tu_env_save(&saved[0], "GPUMAT_PROFILE");
    tu_env_save(&saved[1], "GPUMAT_KERNEL_PARAMS");
    tu_env_save(&saved[2], "GPUMAT_TUNING");
    tu_env_set("GPUMAT_PROFILE", profile);
    tu_env_set("GPUMAT_KERNEL_PARAMS", params);
    tu_env_set("GPUMAT_TUNING", "off");
    gpumat_options opt;
    gpumat_options_init(&opt);
    opt.gemm_backend = GPUMAT_GEMM_NATIVE;
    gpumat_status s = gpumat_context_create(ctx, &opt);
    for (int i = 0; i < 3; ++i)
        tu_env_restore(&saved[i]);
    return s;
}

static int is_cpu_profile(const gpumat_context *ctx)
{
    const char *p = gpumat_context_profile(ctx);
    return p && strncmp(p, "cpu", 3) == 0;
}

/* The CPU group's context: the device's own profile when it runs the CPU
 * kernels (PoCL: no new build), else the cpu profile forced. */
static gpumat_status create_cpu_context(gpumat_context **ctx)
{
    gpumat_status s = create_context(NULL, NULL, ctx);
    if (s == GPUMAT_OK && !is_cpu_profile(*ctx)) {
        gpumat_context_destroy(*ctx);
        s = create_context("cpu", NULL, ctx);
    }
    return s;
}

static int group_setup(void **state, scratch_group *g)
{
    gpumat_status s = g->profile ? create_context(g->profile, g->params, &g->ctx)
                                 : create_cpu_context(&g->ctx);
    if (s != GPUMAT_OK) {
        const char *msg = gpumat_last_error(NULL);
        /* Forced parameters may exceed a small device's limits (as in
         * test_gemm): the group's tests skip there. */
        if (g->profile && strstr(msg, "does not fit")) {
            snprintf(g->skipped, sizeof g->skipped, "%s", msg);
            g->ctx = NULL;
            *state = g;
            return 0;
        }
        print_error("%s: context_create: %d (%s): %s\n", g->label, (int)s, gpumat_strerror(s),
                    msg);
        return -1;
    }
    print_message("[ CONTEXT  ] %s: profile %s\n", g->label, gpumat_context_profile(g->ctx));
    *state = g;
    return 0;
}

static int setup_cpu(void **state) { return group_setup(state, &g_cpu); }
static int setup_split(void **state) { return group_setup(state, &g_split); }
static int setup_ksplit(void **state) { return group_setup(state, &g_ksplit); }

static int group_teardown(void **state)
{
    scratch_group *g = *state;
    return g && g->ctx ? tu_group_context_destroy(&g->ctx) : 0;
}

/* The group's context, or skip(). */
static gpumat_context *group_ctx(void **state)
{
    scratch_group *g = *state;
    if (!g->ctx) {
        print_message("[  SKIPPED ] %s unavailable here: %s\n", g->label, g->skipped);
        skip();
    }
    return g->ctx;
}

static size_t scratch_size(gpumat_context *ctx)
{
    size_t bytes = (size_t)-1;
    TU_CHECK_OK(gpumat_context_scratch_size(ctx, &bytes));
    return bytes;
}

/* A checked product c = op_a(a) op_b(b), m x n x k, fresh operands. */
static void check_product(gpumat_context *ctx, tu_rng *rng, size_t m, size_t n, size_t k,
                          int ta, int tb)
{
    char msg[MSG_SIZE];
    if (!tu_check_gemm(ctx, rng, m, n, k, ta, tb, 1.0, 0.0, msg, sizeof msg))
        fail_msg("%s", msg);
}

/* ---- grow, reuse, trim ----------------------------------------------------- */

/* A new context (of the group's kind) holds no scratch, and trimming it is
 * a harmless no-op. */
static void test_new_context(void **state)
{
    scratch_group *g = *state;
    (void)group_ctx(state); /* skips where the group cannot run */
    gpumat_context *ctx;
    TU_CHECK_OK(g->profile ? create_context(g->profile, g->params, &ctx)
                           : create_cpu_context(&ctx));
    size_t before = scratch_size(ctx);
    gpumat_status s1 = gpumat_context_trim(ctx), s2 = gpumat_context_trim(ctx);
    size_t after = scratch_size(ctx);
    gpumat_context_destroy(ctx);
    assert_int_equal(before, 0);
    assert_int_equal(s1, GPUMAT_OK);
    assert_int_equal(s2, GPUMAT_OK);
    assert_int_equal(after, 0);
}

/* Grow, reuse, trim, grow again: the same products before and after the
 * trim, all correct, and the same scratch both times. */
static void test_trim_and_regrow(void **state)
{
    gpumat_context *ctx = group_ctx(state);
    tu_rng rng;
    rng_for_test(&rng);
    TU_CHECK_OK(gpumat_context_trim(ctx));
    assert_int_equal(scratch_size(ctx), 0);

    check_product(ctx, &rng, 256, 256, 256, 0, 0);
    size_t nn = scratch_size(ctx);
    if (nn == 0)
        fail_msg("a 256^3 product on profile %s (packed from 224^3 on) left no scratch",
                 gpumat_context_profile(ctx));
    check_product(ctx, &rng, 256, 256, 256, 0, 0);
    assert_int_equal(scratch_size(ctx), nn); /* reused, not grown */
    /* TN packs A^T too, into the second buffer. */
    check_product(ctx, &rng, 256, 256, 256, 1, 0);
    size_t tn = scratch_size(ctx);
    if (tn <= nn)
        fail_msg("a TN product after an NN one of the same size: scratch %zu -> %zu bytes, "
                 "expected more (A^T's panels)", nn, tn);

    TU_CHECK_OK(gpumat_context_trim(ctx));
    assert_int_equal(scratch_size(ctx), 0);
    TU_CHECK_OK(gpumat_context_trim(ctx)); /* twice: nothing left to release */
    assert_int_equal(scratch_size(ctx), 0);

    check_product(ctx, &rng, 256, 256, 256, 0, 0);
    assert_int_equal(scratch_size(ctx), nn);
    check_product(ctx, &rng, 256, 256, 256, 1, 0);
    assert_int_equal(scratch_size(ctx), tn);
    TU_CHECK_OK(gpumat_finish(ctx));
    TU_CHECK_OK(gpumat_context_trim(ctx));
    assert_int_equal(scratch_size(ctx), 0);
}

/* ---- the buffers really go ------------------------------------------------ */

static cl_uint context_refs(cl_context c)
{
    cl_uint refs = 0;
    TU_CHECK_CL(clGetContextInfo(c, CL_CONTEXT_REFERENCE_COUNT, sizeof refs, &refs, NULL));
    return refs;
}

/* The reference count of ctx's cl_context once its queue is idle: read
 * until two reads 5 ms apart agree and it is at most `most`, or for 2 s (a
 * driver may drop finished commands' references from a worker thread
 * after clFinish: PoCL does, see test_interop). */
static cl_uint settled_refs(gpumat_context *ctx, cl_uint most)
{
    TU_CHECK_OK(gpumat_finish(ctx));
    cl_context cl = gpumat_context_cl_context(ctx);
    double end = tu_now() + 2.0;
    cl_uint refs = context_refs(cl), last;
    do {
        nanosleep(&(struct timespec){0, 5000000}, NULL);
        last = refs;
        refs = context_refs(cl);
    } while ((refs > most || refs != last) && tu_now() < end);
    return refs;
}

/* Where the driver counts each buffer in its cl_context's references
 * (PoCL does), the scratch buffers show there: a trim must release them,
 * not just forget their sizes. */
static void test_trim_releases_buffers(void **state)
{
    gpumat_context *ctx = group_ctx(state);
    cl_context cl = gpumat_context_cl_context(ctx);
    tu_rng rng;
    rng_for_test(&rng);
    check_product(ctx, &rng, 256, 256, 256, 1, 0); /* the programs built */
    TU_CHECK_OK(gpumat_context_trim(ctx));
    cl_uint base = settled_refs(ctx, UINT_MAX);

    cl_int err = CL_SUCCESS;
    cl_mem probe = clCreateBuffer(cl, CL_MEM_READ_WRITE, 4096, NULL, &err);
    TU_CHECK_CL(err);
    cl_uint with_probe = context_refs(cl);
    TU_CHECK_CL(clReleaseMemObject(probe));
    if (with_probe != base + 1) {
        print_message("[  SKIPPED ] this driver does not count buffers in the context's "
                      "references (%u, then %u with one more buffer)\n", base, with_probe);
        skip();
    }

    check_product(ctx, &rng, 256, 256, 256, 1, 0); /* TN: both pack buffers */
    cl_uint grown = settled_refs(ctx, UINT_MAX);
    if (grown <= base)
        fail_msg("a product that left %zu bytes of scratch added no buffer to the context "
                 "(%u references, %u before)", scratch_size(ctx), grown, base);
    TU_CHECK_OK(gpumat_context_trim(ctx));
    cl_uint trimmed = settled_refs(ctx, base);
    if (trimmed != base)
        fail_msg("after the trim the context has %u references, %u with the scratch and %u "
                 "without: the trim kept %d buffers", trimmed, grown, base,
                 (int)trimmed - (int)base);
}

/* ---- a trim while products are queued ------------------------------------- */

/* A trim that waited for the queue would wait for ever behind the user
 * event: end the program with a message instead. */
#ifndef TRIM_TIMEOUT_S
#define TRIM_TIMEOUT_S 60
#endif
#define STRINGIFY(x) #x
#define STRING(x) STRINGIFY(x)

static void trim_timed_out(int sig)
{
    (void)sig;
    static const char msg[] = "test_scratch: gpumat_context_trim waited for queued work "
                              "(no return after " STRING(TRIM_TIMEOUT_S) " s behind an unset "
                              "user event)\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
    _exit(1);
}

/* While the gate is closed: note the first failure, fail after opening it. */
#define GATED_OK(problem, call) TU_GATED_OK(problem, MSG_SIZE, call)

/* Two products enqueued behind an unset user event with a trim between
 * them: the trim releases the buffers the first product's queued commands
 * use (OpenCL keeps them until those commands finish) and must not wait;
 * the second product allocates new ones.  Both must come out right. */
static void test_trim_while_queued(void **state)
{
    gpumat_context *ctx = group_ctx(state);
    tu_rng rng;
    rng_for_test(&rng);
    tu_gemm_case p1, p2;
    TU_CHECK_OK(gpumat_context_trim(ctx)); /* whatever an earlier test left */
    TU_CHECK_OK(tu_gemm_prepare(ctx, &rng, 256, 256, 256, 0, 0, 1.0, 0.0, &p1));
    TU_CHECK_OK(tu_gemm_prepare(ctx, &rng, 256, 256, 256, 0, 0, 1.0, 0.0, &p2));
    TU_CHECK_OK(gpumat_finish(ctx));

    cl_int err = CL_SUCCESS;
    cl_event gate = clCreateUserEvent(gpumat_context_cl_context(ctx), &err);
    if (err != CL_SUCCESS || !gate)
        fail_msg("clCreateUserEvent -> %d", (int)err);
    char problem[MSG_SIZE] = "";
    size_t queued = 0, trimmed = (size_t)-1, again = 0;
    GATED_OK(problem, gpumat_wait_events(ctx, 1, &gate));
    GATED_OK(problem, tu_gemm_run(&p1));
    GATED_OK(problem, gpumat_context_scratch_size(ctx, &queued));
    clFlush(gpumat_context_cl_queue(ctx));

    void (*old)(int) = signal(SIGALRM, trim_timed_out);
    alarm(TRIM_TIMEOUT_S);
    GATED_OK(problem, gpumat_context_trim(ctx));
    alarm(0);
    signal(SIGALRM, old);

    GATED_OK(problem, gpumat_context_scratch_size(ctx, &trimmed));
    GATED_OK(problem, tu_gemm_run(&p2));
    GATED_OK(problem, gpumat_context_scratch_size(ctx, &again));
    err = clSetUserEventStatus(gate, CL_COMPLETE);
    if (err != CL_SUCCESS && !problem[0])
        snprintf(problem, MSG_SIZE, "clSetUserEventStatus -> %d", (int)err);
    gpumat_status fs = gpumat_finish(ctx);
    if (fs != GPUMAT_OK && !problem[0])
        snprintf(problem, MSG_SIZE, "gpumat_finish -> %d: %s", (int)fs, gpumat_last_error(NULL));
    clReleaseEvent(gate);

    char msg1[MSG_SIZE], msg2[MSG_SIZE];
    int ok1 = tu_gemm_check(&p1, GPUMAT_OK, msg1, sizeof msg1);
    int ok2 = tu_gemm_check(&p2, GPUMAT_OK, msg2, sizeof msg2);
    if (problem[0])
        fail_msg("%s", problem);
    if (queued == 0)
        fail_msg("the queued 256^3 product left no scratch to trim");
    if (trimmed != 0)
        fail_msg("scratch after a trim with work queued: %zu bytes, expected 0", trimmed);
    if (again != queued)
        fail_msg("the product after the trim holds %zu bytes of scratch, the one before %zu",
                 again, queued);
    if (!ok1)
        fail_msg("the product enqueued before the trim: %s", msg1);
    if (!ok2)
        fail_msg("the product enqueued after the trim: %s", msg2);
    TU_CHECK_OK(gpumat_context_trim(ctx));
}

/* ---- trims from another thread ---------------------------------------------- */

typedef struct worker {
    gpumat_context *ctx;
    tu_rng rng;
    atomic_int done;
    int ok;
    char msg[MSG_SIZE];
} worker;

static void *run_products(void *arg)
{
    worker *w = arg;
    w->ok = 1;
    for (int i = 0; i < 6 && w->ok; ++i)
        w->ok = tu_check_gemm(w->ctx, &w->rng, 256, 256, 256, i % 2, 0, 1.0, 0.0, w->msg,
                              sizeof w->msg);
    atomic_store(&w->done, 1);
    return NULL;
}

/* One thread runs checked products (NN and TN, both pack buffers) while
 * this one trims and reads the size: the lock keeps each product's
 * buffers in place from its packing to its launch. */
static void test_trim_from_another_thread(void **state)
{
    gpumat_context *ctx = group_ctx(state);
    worker w;
    memset(&w, 0, sizeof w);
    w.ctx = ctx;
    rng_for_test(&w.rng);
    atomic_init(&w.done, 0);
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, run_products, &w), 0);
    unsigned trims = 0;
    gpumat_status s = GPUMAT_OK;
    size_t bytes;
    while (!atomic_load(&w.done) && s == GPUMAT_OK) {
        s = gpumat_context_trim(ctx);
        if (s == GPUMAT_OK)
            s = gpumat_context_scratch_size(ctx, &bytes);
        ++trims;
        nanosleep(&(struct timespec){0, 200000}, NULL);
    }
    pthread_join(thread, NULL);
    if (s != GPUMAT_OK)
        fail_msg("trim or scratch_size beside products: %d (%s): %s", (int)s,
                 gpumat_strerror(s), gpumat_last_error(NULL));
    if (!w.ok)
        fail_msg("with trims from another thread: %s", w.msg);
    print_message("[     INFO ] %u trims beside 6 products\n", trims);
    TU_CHECK_OK(gpumat_context_trim(ctx));
    assert_int_equal(scratch_size(ctx), 0);
}

/* ---- stream-K's buffers ------------------------------------------------------- */

/* Two split products with a trim between them.  256 x 128 is two big
 * tiles (128 x 128 on nvidia-gpu): enough for the big tile under
 * SMALLPCT=1 on devices of up to 200 compute units (one tile would go to
 * the small ones on an H100's 132), and fewer than a wave of stream-K
 * groups, so SKFILL=100 splits all of it along k.  The first product
 * leaves the counters at zero, the trim releases them, and the second
 * product's split works only if the new counter buffer starts at zero
 * again. */
static void test_trim_between_split_products(void **state)
{
    gpumat_context *ctx = group_ctx(state);
    tu_rng rng;
    rng_for_test(&rng);
    const size_t m = 256, n = 128, k = 256;
    TU_CHECK_OK(gpumat_context_trim(ctx));
    check_product(ctx, &rng, m, n, k, 0, 0);
    size_t split = scratch_size(ctx);
    /* PACKA=1 copies A^T (m x k floats) into a pack buffer; anything more
     * is stream-K's. */
    if (split <= m * k * sizeof(float))
        fail_msg("scratch after a split %zux%zux%zu product: %zu bytes, no more than the "
                 "%zu of the A^T copy: stream-K did not run, so this test shows nothing",
                 m, n, k, split, m * k * sizeof(float));
    TU_CHECK_OK(gpumat_context_trim(ctx));
    assert_int_equal(scratch_size(ctx), 0);
    check_product(ctx, &rng, m, n, k, 0, 0);
    assert_int_equal(scratch_size(ctx), split);
    /* And an NT product, which copies B (PACKB=1) and splits as well. */
    TU_CHECK_OK(gpumat_context_trim(ctx));
    check_product(ctx, &rng, m, n, k, 0, 1);
    TU_CHECK_OK(gpumat_context_trim(ctx));
    assert_int_equal(scratch_size(ctx), 0);
}

/* Split-K on the split tile (op_gemm.c split_k): one 61 x 59 tile (64 x
 * 64 on nvidia-gpu) whose 8S + 1 K steps make S = cus + 10 slices of 8 or
 * more steps (SKMINM), more than SKSPLIT's 8 runs a tile and more groups
 * than the 4 of the tiny tiles (32 x 32): each slice is a
 * 61 x 60 matrix of scratch (rows padded to 4 elements) until gemm_ksum
 * adds them up.  Stream-K would refuse so shallow a run per group of its
 * wave (16 groups per compute unit here) and the tiny tiles would take
 * the product, holding no scratch.  Float (K steps of KWG = 16) and
 * double (KWG64 = 8), every op case. */
static void test_split_k_slices(void **state)
{
    gpumat_context *ctx = group_ctx(state);
    gpumat_device_info info;
    TU_CHECK_OK(gpumat_context_device(ctx, &info));
    tu_rng rng;
    rng_for_test(&rng);
    const size_t m = 61, n = 59, slices = info.compute_units + 10;
    for (int dt = 0; dt < 2; ++dt) {
        gpumat_dtype dtype = dt ? GPUMAT_F64 : GPUMAT_F32;
        if (dt && !tu_has_fp64(ctx))
            break;
        size_t depth = dt ? 8 : 16, k = depth * 8 * slices + depth / 2 + 1;
        size_t expect = slices * m * 60 * (dt ? sizeof(double) : sizeof(float));
        for (int op = 0; op < 4; ++op) {
            char msg[MSG_SIZE];
            TU_CHECK_OK(gpumat_context_trim(ctx));
            if (!tu_check_gemm_typed(ctx, &rng, dtype, m, n, k, op >> 1, op & 1, 1.5, 0.5, msg,
                                     sizeof msg))
                fail_msg("%s", msg);
            size_t got = scratch_size(ctx);
            if (got != expect)
                fail_msg("%s %zux%zux%zu (op %d) on %u compute units: %zu bytes of scratch, "
                         "expected %zu (%zu split-K slices of %zux60)",
                         tu_dtype_name(dtype), m, n, k, op, info.compute_units, got, expect,
                         slices, m);
        }
    }
    TU_CHECK_OK(gpumat_context_trim(ctx));
}

/* ---- NULL arguments ---------------------------------------------------------- */

static void expect_invalid(const char *call, gpumat_status got, const char *message,
                           const char *n1, const char *n2)
{
    if (got != GPUMAT_ERR_INVALID_ARGUMENT)
        fail_msg("%s -> %d (%s), expected GPUMAT_ERR_INVALID_ARGUMENT", call, (int)got,
                 gpumat_strerror(got));
    if (!strstr(message, n1) || !strstr(message, n2))
        fail_msg("%s: message \"%s\" does not name \"%s\" and \"%s\"", call, message, n1, n2);
}

static void test_null_arguments(void **state)
{
    gpumat_context *ctx = group_ctx(state);
    size_t bytes = 12345;
    gpumat_status s = gpumat_context_trim(NULL);
    expect_invalid("context_trim(NULL)", s, gpumat_last_error(NULL), "context_trim",
                   "ctx is NULL");
    s = gpumat_context_scratch_size(NULL, &bytes);
    expect_invalid("context_scratch_size(NULL, &bytes)", s, gpumat_last_error(NULL),
                   "context_scratch_size", "ctx is NULL");
    assert_int_equal(bytes, 12345); /* a failed call leaves its output alone */
    s = gpumat_context_scratch_size(ctx, NULL);
    expect_invalid("context_scratch_size(ctx, NULL)", s, gpumat_last_error(NULL),
                   "context_scratch_size", "bytes is NULL");
    /* The failure concerned ctx, so its own record has it too. */
    expect_invalid("context_scratch_size(ctx, NULL)", s, gpumat_last_error(ctx),
                   "context_scratch_size", "bytes is NULL");
    /* The context still works. */
    tu_rng rng;
    rng_for_test(&rng);
    check_product(ctx, &rng, 256, 256, 256, 0, 0);
    TU_CHECK_OK(gpumat_context_trim(ctx));
}

int main(void)
{
    tu_init("test_scratch");
    const struct CMUnitTest cpu_tests[] = {
        cmocka_unit_test(test_new_context),
        cmocka_unit_test(test_trim_and_regrow),
        cmocka_unit_test(test_trim_releases_buffers),
        cmocka_unit_test(test_trim_while_queued),
        cmocka_unit_test(test_trim_from_another_thread),
        cmocka_unit_test(test_null_arguments),
    };
    const struct CMUnitTest split_tests[] = {
        cmocka_unit_test(test_new_context),
        cmocka_unit_test(test_trim_between_split_products),
    };
    const struct CMUnitTest ksplit_tests[] = {
        cmocka_unit_test(test_split_k_slices),
    };
    int failed = 0;
    failed += cmocka_run_group_tests_name("scratch (CPU kernels)", cpu_tests, setup_cpu,
                                          group_teardown);
    failed += cmocka_run_group_tests_name("scratch (nvidia-gpu, stream-K)", split_tests,
                                          setup_split, group_teardown);
    failed += cmocka_run_group_tests_name("scratch (nvidia-gpu, split-K)", ksplit_tests,
                                          setup_ksplit, group_teardown);
    return failed ? 1 : 0;
}
