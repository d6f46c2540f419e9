/*
 * test_ops.c - gpumat_add, gpumat_multiply and gpumat_transpose against
 * double-precision CPU references, for F32 and F64, on shapes that are
 * degenerate (1x1, 1xN, Nx1), prime, large, exact multiples and
 * non-multiples of every tile size, through both GEMM backends (native
 * kernels and CLBlast) chosen by options and by the GPUMAT_GEMM variable.
 *
 * Every output is poisoned with NaN before the operation, so an element the
 * operation leaves unwritten fails; the comparisons fail on NaN.  Error
 * bounds are explained in test_util.h (tu_add_tolerance,
 * tu_gemm_tolerance); transposes must be exact.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpumat.h"
#include "test_util.h"

#define MSG_SIZE 1024

typedef struct ops_group {
    gpumat_gemm_backend backend;
    gpumat_context *ctx;
    gpumat_status create_status;
    char create_message[512];
} ops_group;

static ops_group g_native = {GPUMAT_GEMM_NATIVE, NULL, GPUMAT_OK, ""};
static ops_group g_clblast = {GPUMAT_GEMM_CLBLAST, NULL, GPUMAT_OK, ""};

static uint64_t g_stream = 1;

/* Each test gets its own random stream, derived from the seed. */
static void rng_for_test(tu_rng *rng) { tu_rng_init(rng, g_stream++); }

static int group_setup(void **state, ops_group *g)
{
    gpumat_options opt;
    gpumat_options_init(&opt);
    opt.gemm_backend = g->backend;
    g->ctx = (gpumat_context *)(uintptr_t)1; /* must be overwritten */
    g->create_status = gpumat_context_create(&g->ctx, &opt);
    if (g->create_status != GPUMAT_OK) {
        snprintf(g->create_message, sizeof g->create_message, "%s",
                 gpumat_last_error(NULL));
        if (g->ctx != NULL) {
            print_error("context_create failed (%d) but left *ctx non-NULL\n",
                        (int)g->create_status);
            return -1;
        }
        /* Native must always work; CLBlast may be missing (the tests skip). */
        if (g->backend == GPUMAT_GEMM_NATIVE) {
            print_error("native context_create failed: %d (%s): %s\n", (int)g->create_status,
                        gpumat_strerror(g->create_status), g->create_message);
            return -1;
        }
    }
    *state = g;
    return 0;
}

static int group_teardown(void **state)
{
    ops_group *g = *state;
    if (g && g->ctx) {
        gpumat_status s = gpumat_finish(g->ctx);
        gpumat_context_destroy(g->ctx);
        g->ctx = NULL;
        if (s != GPUMAT_OK) {
            print_error("gpumat_finish at teardown: %d\n", (int)s);
            return -1;
        }
    }
    return 0;
}

static int setup_native(void **state) { return group_setup(state, &g_native); }
static int setup_clblast(void **state) { return group_setup(state, &g_clblast); }

/* The group's context, or skip() when CLBlast is not available. */
static gpumat_context *group_ctx(void **state)
{
    ops_group *g = *state;
    if (!g->ctx) {
        if (g->create_status == GPUMAT_ERR_UNSUPPORTED) {
            print_message("[  SKIPPED ] %s backend unavailable: %s\n",
                          tu_backend_name(g->backend), g->create_message);
            skip();
        }
        fail_msg("context_create(%s) failed: %d (%s): %s", tu_backend_name(g->backend),
                 (int)g->create_status, gpumat_strerror(g->create_status),
                 g->create_message);
    }
    return g->ctx;
}

static const char *group_backend(void **state)
{
    return tu_backend_name(((ops_group *)*state)->backend);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

/* Downloads m and requires it to equal `expected` exactly: inputs of an
 * operation must come out unchanged. */
static void expect_unchanged(const gpumat_matrix *m, const double *expected, const char *what)
{
    size_t r = gpumat_matrix_rows(m), c = gpumat_matrix_cols(m);
    double *h = xmalloc(r * c * sizeof *h);
    char msg[MSG_SIZE];
    TU_CHECK_OK(tu_download(m, h));
    int ok = tu_compare(what, r, c, h, expected, NULL, 0.0, msg, sizeof msg);
    free(h);
    if (!ok)
        fail_msg("input modified: %s", msg);
}

/* On a device without fp64, F64 matrices must be refused cleanly.  Returns
 * 1 if the F64 test should go on. */
static int f64_or_check_unsupported(gpumat_context *ctx)
{
    if (tu_has_fp64(ctx))
        return 1;
    gpumat_matrix *m = (gpumat_matrix *)(uintptr_t)1;
    assert_int_equal(gpumat_matrix_create(ctx, 4, 4, GPUMAT_F64, &m), GPUMAT_ERR_UNSUPPORTED);
    assert_null(m);
    print_message("device has no fp64: checked that F64 is GPUMAT_ERR_UNSUPPORTED\n");
    return 0;
}

/* ---- add ----------------------------------------------------------------- */

enum add_mode {
    ADD_SEPARATE, /* c = a + b */
    ADD_C_IS_A,   /* a = a + b */
    ADD_C_IS_B,   /* b = a + b */
    ADD_A_IS_B,   /* c = a + a */
    ADD_ALL_SAME  /* a = a + a */
};

static const char *add_mode_name(enum add_mode mode)
{
    static const char *names[] = {"c=a+b", "a=a+b (c==a)", "b=a+b (c==b)", "c=a+a",
                                  "a=a+a"};
    return names[mode];
}

static void run_add(gpumat_context *ctx, tu_rng *rng, gpumat_dtype dt, size_t rows, size_t cols,
                    enum add_mode mode)
{
    size_t n = rows * cols;
    gpumat_matrix *a, *b = NULL, *c = NULL;
    double *ha, *hb = NULL;
    TU_CHECK_OK(tu_random_matrix(ctx, rng, rows, cols, dt, &a, &ha));
    if (mode != ADD_A_IS_B && mode != ADD_ALL_SAME)
        TU_CHECK_OK(tu_random_matrix(ctx, rng, rows, cols, dt, &b, &hb));
    const double *rb = hb ? hb : ha;
    const gpumat_matrix *mb = b ? b : a;

    double *ref = xmalloc(n * sizeof *ref), *scale = xmalloc(n * sizeof *scale);
    double *out = xmalloc(n * sizeof *out);
    tu_ref_add(ha, rb, ref, scale, n);

    gpumat_matrix *dst;
    switch (mode) {
    case ADD_C_IS_A:
    case ADD_ALL_SAME: dst = a; break;
    case ADD_C_IS_B: dst = b; break;
    default:
        TU_CHECK_OK(gpumat_matrix_create(ctx, rows, cols, dt, &c));
        TU_CHECK_OK(tu_poison(c));
        dst = c;
        break;
    }
    TU_CHECK_OK(gpumat_add(dst, a, mb));
    TU_CHECK_OK(tu_download(dst, out));

    char what[160], msg[MSG_SIZE];
    snprintf(what, sizeof what, "add %zux%zu %s %s", rows, cols, tu_dtype_name(dt),
             add_mode_name(mode));
    int ok = tu_compare(what, rows, cols, out, ref, scale, tu_add_tolerance(dt), msg, sizeof msg);
    if (ok && mode == ADD_SEPARATE) {
        expect_unchanged(a, ha, "add: a");
        expect_unchanged(b, hb, "add: b");
    }
    if (ok && mode == ADD_C_IS_A)
        expect_unchanged(b, hb, "add in place: b");
    if (ok && mode == ADD_C_IS_B)
        expect_unchanged(a, ha, "add in place: a");

    gpumat_matrix_destroy(a);
    gpumat_matrix_destroy(b);
    gpumat_matrix_destroy(c);
    free(ha);
    free(hb);
    free(ref);
    free(scale);
    free(out);
    if (!ok)
        fail_msg("%s", msg);
}

static const size_t add_shapes[][2] = {
    {1, 1},    {1, 257},  {257, 1},   {1, 1000},  {7, 13},     {31, 37},
    {61, 67},  {64, 64},  {128, 128}, {64, 128},  {65, 127},   {127, 65},
    {129, 257}, {257, 129}, {1000, 1000}, {1023, 777},
};

static void add_suite(void **state, gpumat_dtype dt)
{
    gpumat_context *ctx = group_ctx(state);
    if (dt == GPUMAT_F64 && !f64_or_check_unsupported(ctx))
        return;
    tu_rng rng;
    rng_for_test(&rng);
    for (size_t i = 0; i < sizeof add_shapes / sizeof add_shapes[0]; ++i)
        run_add(ctx, &rng, dt, add_shapes[i][0], add_shapes[i][1], ADD_SEPARATE);
    static const size_t inplace[][2] = {{1, 1}, {1, 129}, {7, 13}, {65, 127}, {1023, 777}};
    for (size_t i = 0; i < sizeof inplace / sizeof inplace[0]; ++i)
        for (int mode = ADD_C_IS_A; mode <= ADD_ALL_SAME; ++mode)
            run_add(ctx, &rng, dt, inplace[i][0], inplace[i][1], (enum add_mode)mode);
}

static void test_add_f32(void **state) { add_suite(state, GPUMAT_F32); }
static void test_add_f64(void **state) { add_suite(state, GPUMAT_F64); }

/* ---- transpose ------------------------------------------------------------ */

static void run_transpose(gpumat_context *ctx, tu_rng *rng, gpumat_dtype dt, size_t rows,
                          size_t cols)
{
    size_t n = rows * cols;
    gpumat_matrix *a, *t;
    double *ha;
    TU_CHECK_OK(tu_random_matrix(ctx, rng, rows, cols, dt, &a, &ha));
    TU_CHECK_OK(gpumat_matrix_create(ctx, cols, rows, dt, &t));
    TU_CHECK_OK(tu_poison(t));
    TU_CHECK_OK(gpumat_transpose(t, a));

    double *ref = xmalloc(n * sizeof *ref), *out = xmalloc(n * sizeof *out);
    tu_ref_transpose(rows, cols, ha, ref);
    TU_CHECK_OK(tu_download(t, out));

    char what[160], msg[MSG_SIZE];
    snprintf(what, sizeof what, "transpose %zux%zu %s", rows, cols, tu_dtype_name(dt));
    /* Pure data movement: the result must be bit-exact. */
    int ok = tu_compare(what, cols, rows, out, ref, NULL, 0.0, msg, sizeof msg);
    if (ok)
        expect_unchanged(a, ha, "transpose: a");
    gpumat_matrix_destroy(a);
    gpumat_matrix_destroy(t);
    free(ha);
    free(ref);
    free(out);
    if (!ok)
        fail_msg("%s", msg);
}

/* Both kernels of cl/transpose.cl: rows and columns multiples of 4 (the
 * vector kernel), and not (the other, whose tiles skew to 32-byte
 * boundaries of t's rows when rows is odd). */
static const size_t transpose_shapes[][2] = {
    {1, 1},     {1, 257},   {257, 1},    {1, 1000},   {1000, 1},   {7, 13},
    {13, 7},    {31, 37},   {61, 67},    {16, 16},    {32, 32},    {64, 64},
    {128, 128}, {64, 128},  {65, 127},   {127, 65},   {129, 257},  {257, 129},
    {33, 17},   {1000, 1000}, {1023, 777}, {2, 2},    {2, 3},      {3, 2},
    {33, 65},   {65, 33},   {101, 103},  {36, 100},   {100, 36},   {8, 12},
    {12, 8},    {4, 6},     {6, 4},      {68, 2},     {2, 68},
};

static void transpose_suite(void **state, gpumat_dtype dt)
{
    gpumat_context *ctx = group_ctx(state);
    if (dt == GPUMAT_F64 && !f64_or_check_unsupported(ctx))
        return;
    tu_rng rng;
    rng_for_test(&rng);
    for (size_t i = 0; i < sizeof transpose_shapes / sizeof transpose_shapes[0]; ++i)
        run_transpose(ctx, &rng, dt, transpose_shapes[i][0], transpose_shapes[i][1]);
}

static void test_transpose_f32(void **state) { transpose_suite(state, GPUMAT_F32); }
static void test_transpose_f64(void **state) { transpose_suite(state, GPUMAT_F64); }

/* ---- transpose kernel parameters -------------------------------------------- */

/* Every shipped profile's transpose parameters, and sets that force each
 * path of cl/transpose.cl (vector widths, skew steps, orders, tile sizes),
 * on whatever device runs the tests.  "P:" picks GPUMAT_PROFILE=P, the
 * rest is GPUMAT_KERNEL_PARAMS. */
static const char *const transpose_param_sets[] = {
    "nvidia-gpu:",                /* float4 / double2, 32-byte skew */
    "amd-gpu:",
    "generic-gpu:",               /* 32x32 tiles of 64 work-items */
    "TV=4",                       /* element-wide: every shape on transpose_v */
    "TV=16,TMG=4,TMO=2",          /* transpose_m without skew, down the columns */
    "TV=8,TMG=128,TMS=32,TMW=64", /* float2, skew to 128 bytes */
    /* tiny tiles: over 65535 groups along a's rows or columns */
    "TV=16,TVS=8,TVW=8,TMS=8,TMW=8,TMG=32,TMO=2",
};

static const size_t transpose_param_shapes[][2] = {
    {1, 1},   {2, 2},   {2, 3},     {3, 2},     {7, 13},     {13, 7},     {33, 65},
    {65, 33}, {64, 64}, {101, 103}, {36, 100},  {100, 36},   {129, 257},  {257, 129},
    {8, 12},  {12, 8},  {1000, 1000}, {1023, 777}, {777, 1023},
};

static tu_saved_env g_saved_tp_profile, g_saved_tp_params;

static int tp_env_setup(void **state)
{
    (void)state;
    tu_env_save(&g_saved_tp_profile, "GPUMAT_PROFILE");
    tu_env_save(&g_saved_tp_params, "GPUMAT_KERNEL_PARAMS");
    return 0;
}

static int tp_env_teardown(void **state)
{
    (void)state;
    tu_env_restore(&g_saved_tp_profile);
    tu_env_restore(&g_saved_tp_params);
    return 0;
}

/* A context under GPUMAT_PROFILE / GPUMAT_KERNEL_PARAMS from `set`, or NULL
 * with *status (the variables are unset again either way). */
static gpumat_context *create_with_params(const char *set, gpumat_status *status)
{
    const char *colon = strchr(set, ':');
    char profile[64] = "";
    if (colon) {
        snprintf(profile, sizeof profile, "%.*s", (int)(colon - set), set);
        setenv("GPUMAT_PROFILE", profile, 1);
        set = colon + 1;
    } else {
        unsetenv("GPUMAT_PROFILE");
    }
    if (*set)
        setenv("GPUMAT_KERNEL_PARAMS", set, 1);
    else
        unsetenv("GPUMAT_KERNEL_PARAMS");
    /* The shipped parameters, not a tuning file's (with GPUMAT_KERNEL_PARAMS
     * set the file is not read anyway). */
    tu_saved_env saved_tuning;
    tu_env_save(&saved_tuning, "GPUMAT_TUNING");
    tu_env_set("GPUMAT_TUNING", "off");
    gpumat_options opt;
    gpumat_options_init(&opt);
    opt.gemm_backend = GPUMAT_GEMM_NATIVE;
    gpumat_context *ctx = (gpumat_context *)(uintptr_t)1;
    *status = gpumat_context_create(&ctx, &opt);
    tu_env_restore(&saved_tuning);
    unsetenv("GPUMAT_PROFILE");
    unsetenv("GPUMAT_KERNEL_PARAMS");
    return *status == GPUMAT_OK ? ctx : NULL;
}

static void transpose_params_suite(gpumat_dtype dt)
{
    tu_rng rng;
    rng_for_test(&rng);
    for (size_t p = 0; p < sizeof transpose_param_sets / sizeof transpose_param_sets[0]; ++p) {
        const char *set = transpose_param_sets[p];
        gpumat_status s;
        gpumat_context *ctx = create_with_params(set, &s);
        if (!ctx) {
            /* A profile for a larger device than this one (its work-group or
             * local memory limit) is refused, and says so. */
            if (s == GPUMAT_ERR_INVALID_ARGUMENT &&
                tu_contains_ci(gpumat_last_error(NULL), "does not fit")) {
                print_message("[  SKIPPED ] %s: %s\n", set, gpumat_last_error(NULL));
                continue;
            }
            fail_msg("%s: context_create -> %d (%s): %s", set, (int)s, gpumat_strerror(s),
                     gpumat_last_error(NULL));
        }
        if (dt == GPUMAT_F64 && !f64_or_check_unsupported(ctx)) {
            gpumat_context_destroy(ctx);
            return;
        }
        for (size_t i = 0; i < sizeof transpose_param_shapes / sizeof transpose_param_shapes[0];
             ++i)
            run_transpose(ctx, &rng, dt, transpose_param_shapes[i][0],
                          transpose_param_shapes[i][1]);
        if (strstr(set, "TVS=8,")) {
            /* 75000 tiles of 8 (f64: 150000 of 4) along one side */
            run_transpose(ctx, &rng, dt, 600000, 3);
            run_transpose(ctx, &rng, dt, 3, 600000);
            run_transpose(ctx, &rng, dt, 600000, 4);
        }
        TU_CHECK_OK(gpumat_finish(ctx));
        gpumat_context_destroy(ctx);
    }
}

static void test_transpose_params_f32(void **state)
{
    (void)state;
    transpose_params_suite(GPUMAT_F32);
}

static void test_transpose_params_f64(void **state)
{
    (void)state;
    transpose_params_suite(GPUMAT_F64);
}

/* Transpose parameters cl/transpose.cl cannot take are refused by name. */
static void test_transpose_bad_params(void **state)
{
    (void)state;
    const char *const bad[] = {"TV=12",         "TV=32",       "TVS=12",      "TVW=100",
                               "TMS=36",        "TMW=100",     "TMG=48",      "TMG=2",
                               "TMG=256",       "TMO=3",       "TMS=8,TMG=64", "TVS=0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
        gpumat_status s;
        gpumat_context *ctx = create_with_params(bad[i], &s);
        if (ctx) {
            gpumat_context_destroy(ctx);
            fail_msg("GPUMAT_KERNEL_PARAMS=%s: context_create succeeded", bad[i]);
        }
        if (s != GPUMAT_ERR_INVALID_ARGUMENT ||
            !tu_contains_ci(gpumat_last_error(NULL), "GPUMAT_KERNEL_PARAMS"))
            fail_msg("GPUMAT_KERNEL_PARAMS=%s: %d (%s): %s", bad[i], (int)s, gpumat_strerror(s),
                     gpumat_last_error(NULL));
    }
}

/* ---- multiply --------------------------------------------------------------- */

static void run_multiply(gpumat_context *ctx, const char *backend, tu_rng *rng, gpumat_dtype dt,
                         size_t m, size_t k, size_t n)
{
    gpumat_matrix *a, *b, *c;
    double *ha, *hb;
    TU_CHECK_OK(tu_random_matrix(ctx, rng, m, k, dt, &a, &ha));
    TU_CHECK_OK(tu_random_matrix(ctx, rng, k, n, dt, &b, &hb));
    TU_CHECK_OK(gpumat_matrix_create(ctx, m, n, dt, &c));
    TU_CHECK_OK(tu_poison(c));
    TU_CHECK_OK(gpumat_multiply(c, a, b));

    double *ref = xmalloc(m * n * sizeof *ref), *scale = xmalloc(m * n * sizeof *scale);
    double *out = xmalloc(m * n * sizeof *out);
    tu_ref_gemm(m, k, n, ha, hb, ref, scale);
    TU_CHECK_OK(tu_download(c, out));

    char what[160], msg[MSG_SIZE];
    snprintf(what, sizeof what, "multiply %zux%zu * %zux%zu %s (%s)", m, k, k, n,
             tu_dtype_name(dt), backend);
    int ok = tu_compare(what, m, n, out, ref, scale, tu_gemm_tolerance(dt, k), msg, sizeof msg);
    if (ok) {
        expect_unchanged(a, ha, "multiply: a");
        expect_unchanged(b, hb, "multiply: b");
    }
    gpumat_matrix_destroy(a);
    gpumat_matrix_destroy(b);
    gpumat_matrix_destroy(c);
    free(ha);
    free(hb);
    free(ref);
    free(scale);
    free(out);
    if (!ok)
        fail_msg("%s", msg);
}

/* M, K, N: a is M x K, b is K x N. */
static const size_t multiply_shapes[][3] = {
    {1, 1, 1},       {1, 257, 1},    {257, 1, 129},  {1, 1, 300},    {1, 65, 127},
    {127, 65, 1},    {300, 1, 1},    {7, 13, 17},    {31, 37, 41},   {61, 67, 71},
    {16, 16, 16},    {64, 64, 64},   {128, 128, 128}, {64, 128, 256}, {65, 127, 129},
    {129, 257, 65},  {127, 129, 257}, {17, 300, 3},  {1023, 777, 65},
};

static void multiply_suite(void **state, gpumat_dtype dt)
{
    gpumat_context *ctx = group_ctx(state);
    if (dt == GPUMAT_F64 && !f64_or_check_unsupported(ctx))
        return;
    tu_rng rng;
    rng_for_test(&rng);
    for (size_t i = 0; i < sizeof multiply_shapes / sizeof multiply_shapes[0]; ++i)
        run_multiply(ctx, group_backend(state), &rng, dt, multiply_shapes[i][0],
                     multiply_shapes[i][1], multiply_shapes[i][2]);
}

static void test_multiply_f32(void **state) { multiply_suite(state, GPUMAT_F32); }
static void test_multiply_f64(void **state) { multiply_suite(state, GPUMAT_F64); }

/* The 1000 x 1000 x 1000 product (2 GFLOP: heavy on a CPU device). */
static void test_multiply_1000_f32(void **state)
{
    gpumat_context *ctx = group_ctx(state);
    tu_rng rng;
    rng_for_test(&rng);
    run_multiply(ctx, group_backend(state), &rng, GPUMAT_F32, 1000, 1000, 1000);
}

/* The context reports the backend that was asked for. */
static void test_backend_reported(void **state)
{
    ops_group *g = *state;
    gpumat_context *ctx = group_ctx(state);
    assert_int_equal(gpumat_context_gemm_backend(ctx), g->backend);
}

/* Operations queue without waiting: a chain whose steps read the previous
 * outputs, with no download in between, must see every step in order.
 * x = a + b; y = x * w; t = transpose(y); x = x + x (in place); z = x * w;
 * then y and t and z are checked. */
static void chain(gpumat_context *ctx, const char *backend, tu_rng *rng, gpumat_dtype dt)
{
    enum { M = 37, K = 29, N = 70 };
    gpumat_matrix *a, *b, *w, *x, *y, *t, *z;
    double *ha, *hb, *hw;
    TU_CHECK_OK(tu_random_matrix(ctx, rng, M, K, dt, &a, &ha));
    TU_CHECK_OK(tu_random_matrix(ctx, rng, M, K, dt, &b, &hb));
    TU_CHECK_OK(tu_random_matrix(ctx, rng, K, N, dt, &w, &hw));
    TU_CHECK_OK(gpumat_matrix_create(ctx, M, K, dt, &x));
    TU_CHECK_OK(gpumat_matrix_create(ctx, M, N, dt, &y));
    TU_CHECK_OK(gpumat_matrix_create(ctx, N, M, dt, &t));
    TU_CHECK_OK(gpumat_matrix_create(ctx, M, N, dt, &z));
    TU_CHECK_OK(tu_poison(x));
    TU_CHECK_OK(tu_poison(y));
    TU_CHECK_OK(tu_poison(t));
    TU_CHECK_OK(tu_poison(z));

    TU_CHECK_OK(gpumat_add(x, a, b));
    TU_CHECK_OK(gpumat_multiply(y, x, w));
    TU_CHECK_OK(gpumat_transpose(t, y));
    TU_CHECK_OK(gpumat_add(x, x, x));
    TU_CHECK_OK(gpumat_multiply(z, x, w));
    TU_CHECK_OK(gpumat_finish(ctx));

    /* Reference: the device's own x (a rounded sum) is what the products
     * read, so take it from the device first, then check it separately. */
    static double hx[M * K], xref[M * K], xscale[M * K];
    static double hy[M * N], ht[N * M], hz[M * N], ref[M * N], scale[M * N], tref[N * M];
    char msg[MSG_SIZE], what[128];
    TU_CHECK_OK(tu_download(x, hx));
    TU_CHECK_OK(tu_download(y, hy));
    TU_CHECK_OK(tu_download(t, ht));
    TU_CHECK_OK(tu_download(z, hz));

    /* x = 2 (a + b): doubling is exact, so the bound of one add holds. */
    tu_ref_add(ha, hb, xref, xscale, M * K);
    for (size_t i = 0; i < M * K; ++i) {
        xref[i] *= 2;
        xscale[i] *= 2;
    }
    snprintf(what, sizeof what, "chain %s (%s): x = 2(a+b)", tu_dtype_name(dt), backend);
    if (!tu_compare(what, M, K, hx, xref, xscale, tu_add_tolerance(dt), msg, sizeof msg))
        fail_msg("%s", msg);

    /* y = (x/2) * w with x/2 exactly the device's a + b. */
    static double half[M * K];
    for (size_t i = 0; i < M * K; ++i)
        half[i] = hx[i] / 2;
    tu_ref_gemm(M, K, N, half, hw, ref, scale);
    snprintf(what, sizeof what, "chain %s (%s): y = (a+b) w", tu_dtype_name(dt), backend);
    if (!tu_compare(what, M, N, hy, ref, scale, tu_gemm_tolerance(dt, K), msg, sizeof msg))
        fail_msg("%s", msg);

    tu_ref_transpose(M, N, hy, tref);
    snprintf(what, sizeof what, "chain %s (%s): t = y^T", tu_dtype_name(dt), backend);
    if (!tu_compare(what, N, M, ht, tref, NULL, 0.0, msg, sizeof msg))
        fail_msg("%s", msg);

    tu_ref_gemm(M, K, N, hx, hw, ref, scale);
    snprintf(what, sizeof what, "chain %s (%s): z = x w", tu_dtype_name(dt), backend);
    if (!tu_compare(what, M, N, hz, ref, scale, tu_gemm_tolerance(dt, K), msg, sizeof msg))
        fail_msg("%s", msg);

    gpumat_matrix_destroy(a);
    gpumat_matrix_destroy(b);
    gpumat_matrix_destroy(w);
    gpumat_matrix_destroy(x);
    gpumat_matrix_destroy(y);
    gpumat_matrix_destroy(t);
    gpumat_matrix_destroy(z);
    free(ha);
    free(hb);
    free(hw);
}

static void test_chain(void **state)
{
    gpumat_context *ctx = group_ctx(state);
    tu_rng rng;
    rng_for_test(&rng);
    chain(ctx, group_backend(state), &rng, GPUMAT_F32);
    if (tu_has_fp64(ctx))
        chain(ctx, group_backend(state), &rng, GPUMAT_F64);
}

/* The same output reused for products of different shapes' inputs and
 * fresh data: nothing may be cached from the previous call. */
static void test_multiply_reuse_output(void **state)
{
    gpumat_context *ctx = group_ctx(state);
    tu_rng rng;
    rng_for_test(&rng);
    enum { M = 33, N = 45 };
    static const size_t ks[] = {1, 64, 7, 129, 64};
    gpumat_matrix *c;
    TU_CHECK_OK(gpumat_matrix_create(ctx, M, N, GPUMAT_F32, &c));
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; ++i) {
        size_t k = ks[i];
        gpumat_matrix *a, *b;
        double *ha, *hb;
        static double out[M * N], ref[M * N], scale[M * N];
        TU_CHECK_OK(tu_random_matrix(ctx, &rng, M, k, GPUMAT_F32, &a, &ha));
        TU_CHECK_OK(tu_random_matrix(ctx, &rng, k, N, GPUMAT_F32, &b, &hb));
        TU_CHECK_OK(tu_poison(c));
        TU_CHECK_OK(gpumat_multiply(c, a, b));
        TU_CHECK_OK(tu_download(c, out));
        tu_ref_gemm(M, k, N, ha, hb, ref, scale);
        char what[128], msg[MSG_SIZE];
        snprintf(what, sizeof what, "reused output, multiply %dx%zu * %zux%d (%s)", M, k, k, N,
                 group_backend(state));
        int ok = tu_compare(what, M, N, out, ref, scale, tu_gemm_tolerance(GPUMAT_F32, k), msg,
                            sizeof msg);
        gpumat_matrix_destroy(a);
        gpumat_matrix_destroy(b);
        free(ha);
        free(hb);
        if (!ok)
            fail_msg("%s", msg);
    }
    gpumat_matrix_destroy(c);
}

/* ---- GPUMAT_GEMM environment variable ------------------------------------------ */

static tu_saved_env g_saved_gemm;

static int env_group_setup(void **state)
{
    (void)state;
    tu_env_save(&g_saved_gemm, "GPUMAT_GEMM");
    return 0;
}

static int env_group_teardown(void **state)
{
    (void)state;
    tu_env_restore(&g_saved_gemm);
    return 0;
}

/* Creates a context with AUTO options under GPUMAT_GEMM=value (NULL:
 * unset) and an explicit backend `forced`; returns it, or NULL with *status
 * set. */
static gpumat_context *create_with_env(const char *value, gpumat_gemm_backend forced,
                                       gpumat_status *status)
{
    if (value)
        setenv("GPUMAT_GEMM", value, 1);
    else
        unsetenv("GPUMAT_GEMM");
    gpumat_options opt;
    gpumat_options_init(&opt);
    assert_int_equal(opt.gemm_backend, GPUMAT_GEMM_AUTO);
    opt.gemm_backend = forced;
    gpumat_context *ctx = (gpumat_context *)(uintptr_t)1;
    *status = gpumat_context_create(&ctx, &opt);
    unsetenv("GPUMAT_GEMM");
    if (*status != GPUMAT_OK) {
        assert_null(ctx);
        return NULL;
    }
    assert_non_null(ctx);
    return ctx;
}

static void check_env_backend(const char *value, gpumat_gemm_backend expect)
{
    gpumat_status s;
    gpumat_context *ctx = create_with_env(value, GPUMAT_GEMM_AUTO, &s);
    if (!ctx && s == GPUMAT_ERR_UNSUPPORTED && expect == GPUMAT_GEMM_CLBLAST) {
        print_message("[  SKIPPED ] CLBlast unavailable: %s\n", gpumat_last_error(NULL));
        skip();
    }
    if (!ctx)
        fail_msg("GPUMAT_GEMM=%s: context_create -> %d (%s): %s", value, (int)s,
                 gpumat_strerror(s), gpumat_last_error(NULL));
    gpumat_gemm_backend got = gpumat_context_gemm_backend(ctx);
    tu_rng rng;
    rng_for_test(&rng);
    char msg[MSG_SIZE];
    int works = tu_context_works(ctx, GPUMAT_F32, &rng, msg, sizeof msg);
    if (works)
        run_multiply(ctx, tu_backend_name(got), &rng, GPUMAT_F32, 65, 127, 33);
    gpumat_context_destroy(ctx);
    if (!works)
        fail_msg("GPUMAT_GEMM=%s: %s", value, msg);
    if (got != expect)
        fail_msg("GPUMAT_GEMM=%s: backend %s, expected %s", value, tu_backend_name(got),
                 tu_backend_name(expect));
}

static void test_env_gemm_native(void **state)
{
    (void)state;
    check_env_backend("native", GPUMAT_GEMM_NATIVE);
}

static void test_env_gemm_clblast(void **state)
{
    (void)state;
    check_env_backend("clblast", GPUMAT_GEMM_CLBLAST);
}

/* Without the variable, AUTO stays AUTO (chosen per call), and each call
 * resolves to one of the two real backends. */
static void test_env_gemm_unset(void **state)
{
    (void)state;
    gpumat_status s;
    gpumat_context *ctx = create_with_env(NULL, GPUMAT_GEMM_AUTO, &s);
    if (!ctx)
        fail_msg("context_create -> %d: %s", (int)s, gpumat_last_error(NULL));
    gpumat_gemm_backend got = gpumat_context_gemm_backend(ctx);
    gpumat_gemm_backend call = gpumat_context_gemm_backend_for(ctx, GPUMAT_F32, 100, 100, 100);
    gpumat_context_destroy(ctx);
    assert_int_equal(got, GPUMAT_GEMM_AUTO);
    assert_true(call == GPUMAT_GEMM_NATIVE || call == GPUMAT_GEMM_CLBLAST);
}

/* An explicit options.gemm_backend wins over the variable. */
static void test_options_win_over_env(void **state)
{
    (void)state;
    gpumat_status s;
    gpumat_context *ctx = create_with_env("clblast", GPUMAT_GEMM_NATIVE, &s);
    if (!ctx)
        fail_msg("GPUMAT_GEMM=clblast, options native: context_create -> %d: %s", (int)s,
                 gpumat_last_error(NULL));
    gpumat_gemm_backend got = gpumat_context_gemm_backend(ctx);
    gpumat_context_destroy(ctx);
    assert_int_equal(got, GPUMAT_GEMM_NATIVE);

    /* The other way round, if CLBlast exists. */
    ctx = create_with_env("native", GPUMAT_GEMM_CLBLAST, &s);
    if (!ctx) {
        assert_int_equal(s, GPUMAT_ERR_UNSUPPORTED);
        return;
    }
    got = gpumat_context_gemm_backend(ctx);
    gpumat_context_destroy(ctx);
    assert_int_equal(got, GPUMAT_GEMM_CLBLAST);
}

int main(void)
{
    tu_init("test_ops");

    const struct CMUnitTest backend_tests[] = {
        cmocka_unit_test(test_backend_reported),
        cmocka_unit_test(test_add_f32),
        cmocka_unit_test(test_add_f64),
        cmocka_unit_test(test_transpose_f32),
        cmocka_unit_test(test_transpose_f64),
        cmocka_unit_test(test_multiply_f32),
        cmocka_unit_test(test_multiply_f64),
        cmocka_unit_test(test_chain),
        cmocka_unit_test(test_multiply_reuse_output),
    };
    /* The 1000^3 product runs once, on the native backend. */
    const struct CMUnitTest native_only[] = {
        cmocka_unit_test(test_multiply_1000_f32),
    };
    const struct CMUnitTest transpose_param_tests[] = {
        cmocka_unit_test(test_transpose_params_f32),
        cmocka_unit_test(test_transpose_params_f64),
        cmocka_unit_test(test_transpose_bad_params),
    };
    const struct CMUnitTest env_tests[] = {
        cmocka_unit_test(test_env_gemm_native),
        cmocka_unit_test(test_env_gemm_clblast),
        cmocka_unit_test(test_env_gemm_unset),
        cmocka_unit_test(test_options_win_over_env),
    };

    int failed = 0;
    failed += cmocka_run_group_tests_name("ops (native GEMM)", backend_tests, setup_native,
                                          group_teardown);
    failed += cmocka_run_group_tests_name("ops 1000x1000x1000 (native GEMM)", native_only,
                                          setup_native, group_teardown);
    failed += cmocka_run_group_tests_name("ops (CLBlast GEMM)", backend_tests, setup_clblast,
                                          group_teardown);
    failed += cmocka_run_group_tests_name("transpose kernel parameters", transpose_param_tests,
                                          tp_env_setup, tp_env_teardown);
    failed += cmocka_run_group_tests_name("GPUMAT_GEMM environment", env_tests,
                                          env_group_setup, env_group_teardown);
    return failed ? 1 : 0;
}
