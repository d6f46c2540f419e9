/*
 * test_errors.c - every error path of the public API: NULL arguments, shape
 * and dtype mismatches, zero dimensions, byte-count overflow, aliasing,
 * operands from different contexts, bad options and environment values.
 *
 * After every failure the test checks that
 * - the status is the documented one,
 * - gpumat_last_error(NULL) (and, where the failure concerns a context,
 *   gpumat_last_error(ctx)) is a non-empty message,
 * - a failed create left its out-pointer NULL,
 * - the output operand still holds what it held before (a failed call
 *   leaves its objects unchanged),
 * - the context still computes correctly (add, multiply, transpose checked
 *   against the CPU reference).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpumat.h"
#include "test_util.h"

#define MSG_SIZE 1024
#define NOT_NULL_SENTINEL ((void *)(uintptr_t)0x1)

typedef struct errors_state {
    gpumat_context *ctx;  /* the context most errors happen on */
    gpumat_context *ctx2; /* a second context, for context mismatches */
    tu_rng rng;
} errors_state;

static errors_state g_state;

static int group_setup(void **state)
{
    errors_state *st = &g_state;
    tu_rng_init(&st->rng, 1);
    gpumat_status s = gpumat_context_create(&st->ctx, NULL);
    if (s != GPUMAT_OK) {
        print_error("context_create: %d: %s\n", (int)s, gpumat_last_error(NULL));
        return -1;
    }
    s = gpumat_context_create(&st->ctx2, NULL);
    if (s != GPUMAT_OK) {
        print_error("second context_create: %d: %s\n", (int)s, gpumat_last_error(NULL));
        gpumat_context_destroy(st->ctx);
        return -1;
    }
    *state = st;
    return 0;
}

static int group_teardown(void **state)
{
    errors_state *st = *state;
    gpumat_context_destroy(st->ctx);
    gpumat_context_destroy(st->ctx2);
    return 0;
}

static void expect_usable(gpumat_context *ctx, tu_rng *rng);

/* The call must fail with `expected` and leave a non-empty thread message;
 * then the context must still compute correctly. */
#define EXPECT_STATUS(call, expected)                                                   \
    do {                                                                                \
        gpumat_status s_ = (call);                                                      \
        if (s_ != (expected))                                                           \
            fail_msg("%s -> %d (%s), expected %d (%s); message: %s", #call, (int)s_,    \
                     gpumat_strerror(s_), (int)(expected), gpumat_strerror(expected),   \
                     gpumat_last_error(NULL));                                          \
        const char *m_ = gpumat_last_error(NULL);                                       \
        if (m_ == NULL || m_[0] == '\0')                                                \
            fail_msg("%s failed but gpumat_last_error(NULL) is empty", #call);         \
        expect_usable(g_state.ctx, &g_state.rng);                                       \
    } while (0)

/* The context still computes correctly. */
static void expect_usable(gpumat_context *ctx, tu_rng *rng)
{
    char msg[MSG_SIZE];
    if (!tu_context_works(ctx, GPUMAT_F32, rng, msg, sizeof msg))
        fail_msg("context not usable after an error: %s", msg);
    TU_CHECK_OK(gpumat_finish(ctx));
}

/* A matrix with known random contents, whose host copy is kept. */
typedef struct known {
    gpumat_matrix *m;
    double *h;
} known;

static known make_known(gpumat_context *ctx, tu_rng *rng, size_t rows, size_t cols,
                        gpumat_dtype dt)
{
    known k;
    TU_CHECK_OK(tu_random_matrix(ctx, rng, rows, cols, dt, &k.m, &k.h));
    return k;
}

/* The matrix still holds exactly its known contents. */
static void expect_intact(const known *k, const char *what)
{
    size_t r = gpumat_matrix_rows(k->m), c = gpumat_matrix_cols(k->m);
    double *h = malloc(r * c * sizeof *h);
    assert_non_null(h);
    char msg[MSG_SIZE];
    TU_CHECK_OK(tu_download(k->m, h));
    int ok = tu_compare(what, r, c, h, k->h, NULL, 0.0, msg, sizeof msg);
    free(h);
    if (!ok)
        fail_msg("a failed call changed its output: %s", msg);
}

static void drop(known *k)
{
    gpumat_matrix_destroy(k->m);
    free(k->h);
    k->m = NULL;
    k->h = NULL;
}

/* Requires every needle in `msg`. */
static void expect_message_has(const char *where, const char *msg, const char *n1,
                               const char *n2, const char *n3)
{
    const char *needles[] = {n1, n2, n3};
    assert_non_null(msg);
    for (int i = 0; i < 3; ++i)
        if (needles[i] && !strstr(msg, needles[i]) && !tu_contains_ci(msg, needles[i]))
            fail_msg("%s: message \"%s\" does not mention \"%s\"", where, msg, needles[i]);
}

/* ---- static facts ---------------------------------------------------------- */

/* Runs first: a fresh context has no failure, nor has a fresh thread. */
static void *thread_last_error(void *arg)
{
    const char **out = arg;
    const char *m = gpumat_last_error(NULL);
    *out = m && m[0] == '\0' ? "" : (m ? m : "(NULL)");
    return NULL;
}

static void test_fresh_last_error_empty(void **state)
{
    errors_state *st = *state;
    const char *m = gpumat_last_error(st->ctx2);
    assert_non_null(m);
    assert_string_equal(m, "");
    const char *from_thread = NULL;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, thread_last_error, &from_thread), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_non_null(from_thread);
    assert_string_equal(from_thread, "");
}

static void test_version(void **state)
{
    (void)state;
    assert_int_equal(gpumat_version_number(), GPUMAT_VERSION_NUMBER);
    assert_int_equal(GPUMAT_VERSION_NUMBER, GPUMAT_VERSION_MAJOR * 10000 +
                                                GPUMAT_VERSION_MINOR * 100 +
                                                GPUMAT_VERSION_PATCH);
    assert_non_null(gpumat_version_string());
    assert_string_equal(gpumat_version_string(), GPUMAT_VERSION_STRING);
    char expect[32];
    snprintf(expect, sizeof expect, "%d.%d.%d", GPUMAT_VERSION_MAJOR, GPUMAT_VERSION_MINOR,
             GPUMAT_VERSION_PATCH);
    assert_string_equal(GPUMAT_VERSION_STRING, expect);
}

static void test_strerror(void **state)
{
    (void)state;
    static const gpumat_status codes[] = {
        GPUMAT_OK,
        GPUMAT_ERR_INVALID_ARGUMENT,
        GPUMAT_ERR_SHAPE,
        GPUMAT_ERR_DTYPE,
        GPUMAT_ERR_ALIASING,
        GPUMAT_ERR_CONTEXT_MISMATCH,
        GPUMAT_ERR_SIZE_OVERFLOW,
        GPUMAT_ERR_OUT_OF_MEMORY,
        GPUMAT_ERR_NO_DEVICE,
        GPUMAT_ERR_UNSUPPORTED,
        GPUMAT_ERR_BUILD,
        GPUMAT_ERR_OPENCL,
        GPUMAT_ERR_BACKEND,
    };
    enum { N = sizeof codes / sizeof codes[0] };
    const char *s[N];
    for (size_t i = 0; i < N; ++i) {
        s[i] = gpumat_strerror(codes[i]);
        if (!s[i] || !s[i][0])
            fail_msg("gpumat_strerror(%d) is NULL or empty", (int)codes[i]);
    }
    for (size_t i = 0; i < N; ++i)
        for (size_t j = i + 1; j < N; ++j)
            if (strcmp(s[i], s[j]) == 0)
                fail_msg("gpumat_strerror(%d) and (%d) are both \"%s\"", (int)codes[i],
                         (int)codes[j], s[i]);
    static const int unknown[] = {1, 7, -13, -100, INT_MAX, INT_MIN};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; ++i) {
        const char *u = gpumat_strerror((gpumat_status)unknown[i]);
        if (!u)
            fail_msg("gpumat_strerror(%d) is NULL", unknown[i]);
        for (size_t j = 1; j < N; ++j)
            if (strcmp(u, s[j]) == 0)
                fail_msg("unknown code %d described as known code %d: \"%s\"", unknown[i],
                         (int)codes[j], u);
    }
}

static void test_dtype_size(void **state)
{
    (void)state;
    assert_int_equal(gpumat_dtype_size(GPUMAT_F32), sizeof(float));
    assert_int_equal(gpumat_dtype_size(GPUMAT_F64), sizeof(double));
    assert_int_equal(gpumat_dtype_size((gpumat_dtype)0), 0);
    assert_int_equal(gpumat_dtype_size((gpumat_dtype)3), 0);
    assert_int_equal(gpumat_dtype_size((gpumat_dtype)-1), 0);
}

static void test_options_init(void **state)
{
    (void)state;
    gpumat_options o;
    memset(&o, 0xAB, sizeof o);
    gpumat_options_init(&o);
    assert_null(o.platform);
    assert_null(o.device);
    assert_int_equal(o.device_type, 0);
    assert_int_equal(o.gemm_backend, GPUMAT_GEMM_AUTO);
}

/* ---- NULL arguments -------------------------------------------------------- */

static void test_null_device_functions(void **state)
{
    errors_state *st = *state;
    gpumat_device_info info;
    size_t count = 12345, index = 12345;
    char reason[64];
    EXPECT_STATUS(gpumat_device_list(NULL, 1, &count), GPUMAT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(gpumat_device_list(&info, 1, NULL), GPUMAT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(gpumat_device_list(NULL, 0, NULL), GPUMAT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(gpumat_device_choose(NULL, NULL, reason, sizeof reason),
                  GPUMAT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(gpumat_device_choose(NULL, NULL, NULL, 0), GPUMAT_ERR_INVALID_ARGUMENT);
    /* The legitimate forms still work. */
    TU_CHECK_OK(gpumat_device_list(NULL, 0, &count));
    assert_true(count >= 1);
    TU_CHECK_OK(gpumat_device_choose(NULL, &index, NULL, 0));
    assert_true(index < count);
    expect_usable(st->ctx, &st->rng);
}

static void test_null_context_functions(void **state)
{
    errors_state *st = *state;
    gpumat_device_info info;
    gpumat_context *c = NOT_NULL_SENTINEL;

    EXPECT_STATUS(gpumat_context_create(NULL, NULL), GPUMAT_ERR_INVALID_ARGUMENT);

    EXPECT_STATUS(gpumat_context_wrap(NULL, NULL, NULL, NULL), GPUMAT_ERR_INVALID_ARGUMENT);
    c = NOT_NULL_SENTINEL;
    EXPECT_STATUS(gpumat_context_wrap(&c, NULL, NULL, NULL), GPUMAT_ERR_INVALID_ARGUMENT);
    assert_null(c);
    c = NOT_NULL_SENTINEL;
    EXPECT_STATUS(gpumat_context_wrap(&c, gpumat_context_cl_context(st->ctx), NULL, NULL),
                  GPUMAT_ERR_INVALID_ARGUMENT);
    assert_null(c);
    c = NOT_NULL_SENTINEL;
    EXPECT_STATUS(gpumat_context_wrap(&c, NULL, gpumat_context_cl_queue(st->ctx), NULL),
                  GPUMAT_ERR_INVALID_ARGUMENT);
    assert_null(c);
    EXPECT_STATUS(gpumat_context_wrap(NULL, gpumat_context_cl_context(st->ctx),
                                      gpumat_context_cl_queue(st->ctx), NULL),
                  GPUMAT_ERR_INVALID_ARGUMENT);

    EXPECT_STATUS(gpumat_context_device(NULL, &info), GPUMAT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(gpumat_context_device(st->ctx, NULL), GPUMAT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(gpumat_finish(NULL), GPUMAT_ERR_INVALID_ARGUMENT);

    assert_null(gpumat_context_profile(NULL));
    assert_null(gpumat_context_build_options(NULL));
    assert_null(gpumat_context_cl_context(NULL));
    assert_null(gpumat_context_cl_queue(NULL));

    /* Documented no-ops. */
    gpumat_context_destroy(NULL);
    gpumat_matrix_destroy(NULL);

    expect_usable(st->ctx, &st->rng);
}

static void test_null_matrix_functions(void **state)
{
    errors_state *st = *state;
    gpumat_matrix *m = NOT_NULL_SENTINEL;
    float host[6] = {1, 2, 3, 4, 5, 6};

    EXPECT_STATUS(gpumat_matrix_create(NULL, 2, 3, GPUMAT_F32, &m),
                  GPUMAT_ERR_INVALID_ARGUMENT);
    assert_null(m);
    EXPECT_STATUS(gpumat_matrix_create(st->ctx, 2, 3, GPUMAT_F32, NULL),
                  GPUMAT_ERR_INVALID_ARGUMENT);
    /* An unknown dtype is an argument outside its range. */
    static const int bad_dtypes[] = {0, 3, -1, 1000};
    for (size_t i = 0; i < sizeof bad_dtypes / sizeof bad_dtypes[0]; ++i) {
        m = NOT_NULL_SENTINEL;
        gpumat_status s = gpumat_matrix_create(st->ctx, 2, 3, (gpumat_dtype)bad_dtypes[i], &m);
        if (s != GPUMAT_ERR_INVALID_ARGUMENT)
            fail_msg("matrix_create with dtype %d -> %d (%s), expected "
                     "GPUMAT_ERR_INVALID_ARGUMENT",
                     bad_dtypes[i], (int)s, gpumat_strerror(s));
        assert_null(m);
        assert_true(gpumat_last_error(NULL)[0] != '\0');
    }

    known k = make_known(st->ctx, &st->rng, 2, 3, GPUMAT_F32);
    EXPECT_STATUS(gpumat_matrix_upload(NULL, host), GPUMAT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(gpumat_matrix_upload(k.m, NULL), GPUMAT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(gpumat_matrix_download(NULL, host), GPUMAT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(gpumat_matrix_download(k.m, NULL), GPUMAT_ERR_INVALID_ARGUMENT);
    expect_intact(&k, "after NULL upload/download");

    /* Accessors on NULL. */
    assert_int_equal(gpumat_matrix_rows(NULL), 0);
    assert_int_equal(gpumat_matrix_cols(NULL), 0);
    assert_int_equal(gpumat_matrix_dtype(NULL), 0);
    assert_null(gpumat_matrix_context(NULL));
    assert_null(gpumat_matrix_cl_mem(NULL));

    /* ... and on a real matrix. */
    assert_int_equal(gpumat_matrix_rows(k.m), 2);
    assert_int_equal(gpumat_matrix_cols(k.m), 3);
    assert_int_equal(gpumat_matrix_dtype(k.m), GPUMAT_F32);
    assert_ptr_equal(gpumat_matrix_context(k.m), st->ctx);
    assert_non_null(gpumat_matrix_cl_mem(k.m));
    drop(&k);
    expect_usable(st->ctx, &st->rng);
}

static void test_null_operands(void **state)
{
    errors_state *st = *state;
    known a = make_known(st->ctx, &st->rng, 4, 4, GPUMAT_F32);
    known b = make_known(st->ctx, &st->rng, 4, 4, GPUMAT_F32);
    known c = make_known(st->ctx, &st->rng, 4, 4, GPUMAT_F32);

    EXPECT_STATUS(gpumat_add(NULL, a.m, b.m), GPUMAT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(gpumat_add(c.m, NULL, b.m), GPUMAT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(gpumat_add(c.m, a.m, NULL), GPUMAT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(gpumat_add(NULL, NULL, NULL), GPUMAT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(gpumat_multiply(NULL, a.m, b.m), GPUMAT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(gpumat_multiply(c.m, NULL, b.m), GPUMAT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(gpumat_multiply(c.m, a.m, NULL), GPUMAT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(gpumat_multiply(NULL, NULL, NULL), GPUMAT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(gpumat_transpose(NULL, a.m), GPUMAT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(gpumat_transpose(c.m, NULL), GPUMAT_ERR_INVALID_ARGUMENT);
    EXPECT_STATUS(gpumat_transpose(NULL, NULL), GPUMAT_ERR_INVALID_ARGUMENT);

    expect_intact(&a, "a after NULL-operand calls");
    expect_intact(&b, "b after NULL-operand calls");
    expect_intact(&c, "c after NULL-operand calls");
    drop(&a);
    drop(&b);
    drop(&c);
    expect_usable(st->ctx, &st->rng);
}

/* ---- matrix_create: zero dimensions and overflow ------------------------------ */

/* Returns 1 if matrix_create fails as expected, else prints why and
 * returns 0 (so that one test reports every wrong case, not just the first). */
static int create_fails(gpumat_context *ctx, size_t rows, size_t cols, gpumat_dtype dt,
                        gpumat_status expected)
{
    gpumat_matrix *m = NOT_NULL_SENTINEL;
    gpumat_status s = gpumat_matrix_create(ctx, rows, cols, dt, &m);
    if (s != expected) {
        if (s == GPUMAT_OK)
            gpumat_matrix_destroy(m);
        print_error("matrix_create(%zu, %zu, %s) -> %d (%s), expected %d (%s): %s\n", rows,
                    cols, tu_dtype_name(dt), (int)s, gpumat_strerror(s), (int)expected,
                    gpumat_strerror(expected), gpumat_last_error(NULL));
        return 0;
    }
    if (m != NULL) {
        print_error("matrix_create(%zu, %zu) failed but left *m non-NULL\n", rows, cols);
        return 0;
    }
    const char *msg = gpumat_last_error(NULL);
    if (!msg || !msg[0]) {
        print_error("matrix_create(%zu, %zu) failed with an empty message\n", rows, cols);
        return 0;
    }
    return 1;
}

static void test_zero_dimensions(void **state)
{
    errors_state *st = *state;
    int ok = 1;
    ok &= create_fails(st->ctx, 0, 5, GPUMAT_F32, GPUMAT_ERR_SHAPE);
    ok &= create_fails(st->ctx, 5, 0, GPUMAT_F32, GPUMAT_ERR_SHAPE);
    ok &= create_fails(st->ctx, 0, 0, GPUMAT_F32, GPUMAT_ERR_SHAPE);
    ok &= create_fails(st->ctx, 0, SIZE_MAX, GPUMAT_F32, GPUMAT_ERR_SHAPE);
    if (tu_has_fp64(st->ctx))
        ok &= create_fails(st->ctx, 0, 1, GPUMAT_F64, GPUMAT_ERR_SHAPE);
    expect_usable(st->ctx, &st->rng);
    if (!ok)
        fail_msg("matrix_create with a zero dimension: see above");
}

static void test_size_overflow(void **state)
{
    errors_state *st = *state;
    int ok = 1;
    /* rows * cols overflows. */
    ok &= create_fails(st->ctx, SIZE_MAX / 2, SIZE_MAX / 2, GPUMAT_F32, GPUMAT_ERR_SIZE_OVERFLOW);
    ok &= create_fails(st->ctx, SIZE_MAX, 2, GPUMAT_F32, GPUMAT_ERR_SIZE_OVERFLOW);
    /* rows * cols wraps to exactly 0 (2^32 * 2^32 on 64 bits, 2^16 * 2^16 on
     * 32): a check of the wrapped product against zero would miss it. */
    size_t half_bits = (size_t)1 << (sizeof(size_t) * CHAR_BIT / 2);
    ok &= create_fails(st->ctx, half_bits, half_bits, GPUMAT_F32, GPUMAT_ERR_SIZE_OVERFLOW);
    /* rows * cols fits, times the element size does not. */
    ok &= create_fails(st->ctx, 1, SIZE_MAX / 4 + 1, GPUMAT_F32, GPUMAT_ERR_SIZE_OVERFLOW);
    ok &= create_fails(st->ctx, SIZE_MAX / 4 + 1, 1, GPUMAT_F32, GPUMAT_ERR_SIZE_OVERFLOW);
    if (tu_has_fp64(st->ctx))
        ok &= create_fails(st->ctx, SIZE_MAX / 8 + 1, 1, GPUMAT_F64, GPUMAT_ERR_SIZE_OVERFLOW);
    expect_usable(st->ctx, &st->rng);
    if (!ok)
        fail_msg("matrix_create whose byte count overflows size_t: see above");
}

/* A byte count that fits size_t but no device can hold. */
static void test_too_large_allocation(void **state)
{
    errors_state *st = *state;
    if (SIZE_MAX <= 0xffffffffu) {
        print_message("[  SKIPPED ] 32-bit size_t: no byte count both fits and is impossible\n");
        skip();
    }
    gpumat_matrix *m = NOT_NULL_SENTINEL;
    size_t rows = (size_t)1 << (sizeof(size_t) * CHAR_BIT / 2 - 2); /* 2^30 on 64 bits */
    size_t cols = rows;                                              /* 4 EiB of floats */
    gpumat_status s = gpumat_matrix_create(st->ctx, rows, cols, GPUMAT_F32, &m);
    if (s == GPUMAT_OK) {
        gpumat_matrix_destroy(m);
        fail_msg("matrix_create(%zu, %zu, f32) succeeded", rows, cols);
    }
    if (s != GPUMAT_ERR_OUT_OF_MEMORY && s != GPUMAT_ERR_OPENCL)
        fail_msg("matrix_create(%zu, %zu, f32) -> %d (%s), expected out of memory", rows, cols,
                 (int)s, gpumat_strerror(s));
    assert_null(m);
    assert_true(gpumat_last_error(NULL)[0] != '\0');
    expect_usable(st->ctx, &st->rng);
}

/* ---- shape mismatches ------------------------------------------------------------ */

static void expect_shape_message(errors_state *st, const char *op, const char *s1,
                                 const char *s2)
{
    char where[64];
    snprintf(where, sizeof where, "%s shape error (thread)", op);
    /* Copy: the next library call may invalidate the string. */
    char copy[MSG_SIZE];
    snprintf(copy, sizeof copy, "%s", gpumat_last_error(NULL));
    expect_message_has(where, copy, op, s1, s2);
    snprintf(where, sizeof where, "%s shape error (context)", op);
    snprintf(copy, sizeof copy, "%s", gpumat_last_error(st->ctx));
    expect_message_has(where, copy, op, s1, s2);
}

static void test_shape_add(void **state)
{
    errors_state *st = *state;
    known a = make_known(st->ctx, &st->rng, 3, 4, GPUMAT_F32);
    known b = make_known(st->ctx, &st->rng, 5, 2, GPUMAT_F32);
    known c = make_known(st->ctx, &st->rng, 3, 4, GPUMAT_F32);
    known ct = make_known(st->ctx, &st->rng, 4, 3, GPUMAT_F32);
    known a2 = make_known(st->ctx, &st->rng, 3, 4, GPUMAT_F32);

    EXPECT_STATUS(gpumat_add(c.m, a.m, b.m), GPUMAT_ERR_SHAPE);
    expect_shape_message(st, "add", "3x4", "5x2");
    expect_intact(&c, "add 3x4 + 5x2: c");
    expect_usable(st->ctx, &st->rng);

    EXPECT_STATUS(gpumat_add(c.m, b.m, a.m), GPUMAT_ERR_SHAPE);
    expect_shape_message(st, "add", "5x2", "3x4");
    expect_intact(&c, "add 5x2 + 3x4: c");

    /* Inputs agree, the output does not (same element count, transposed). */
    EXPECT_STATUS(gpumat_add(ct.m, a.m, a2.m), GPUMAT_ERR_SHAPE);
    expect_shape_message(st, "add", "3x4", "4x3");
    expect_intact(&ct, "add into 4x3: c");

    /* In place with a mismatched partner. */
    EXPECT_STATUS(gpumat_add(a.m, a.m, b.m), GPUMAT_ERR_SHAPE);
    expect_intact(&a, "add in place 3x4 + 5x2: a");
    expect_usable(st->ctx, &st->rng);

    drop(&a);
    drop(&b);
    drop(&c);
    drop(&ct);
    drop(&a2);
}

static void test_shape_multiply(void **state)
{
    errors_state *st = *state;
    known a = make_known(st->ctx, &st->rng, 3, 4, GPUMAT_F32);
    known b = make_known(st->ctx, &st->rng, 5, 2, GPUMAT_F32);
    known c = make_known(st->ctx, &st->rng, 3, 2, GPUMAT_F32);
    known b45 = make_known(st->ctx, &st->rng, 4, 5, GPUMAT_F32);
    known c53 = make_known(st->ctx, &st->rng, 5, 3, GPUMAT_F32);
    known c34 = make_known(st->ctx, &st->rng, 3, 4, GPUMAT_F32);

    /* Inner dimensions differ: 4 vs 5. */
    EXPECT_STATUS(gpumat_multiply(c.m, a.m, b.m), GPUMAT_ERR_SHAPE);
    expect_shape_message(st, "multiply", "3x4", "5x2");
    expect_intact(&c, "multiply 3x4 * 5x2: c");
    expect_usable(st->ctx, &st->rng);

    /* Inputs fit (3x4 * 4x5 = 3x5), output is 5x3 (same element count). */
    EXPECT_STATUS(gpumat_multiply(c53.m, a.m, b45.m), GPUMAT_ERR_SHAPE);
    expect_shape_message(st, "multiply", "5x3", NULL);
    expect_intact(&c53, "multiply into 5x3: c");

    /* ... output 3x4. */
    EXPECT_STATUS(gpumat_multiply(c34.m, a.m, b45.m), GPUMAT_ERR_SHAPE);
    expect_intact(&c34, "multiply into 3x4: c");

    /* Operands swapped: 4x5 * 3x4 has inner 5 vs 3. */
    EXPECT_STATUS(gpumat_multiply(c.m, b45.m, a.m), GPUMAT_ERR_SHAPE);
    expect_shape_message(st, "multiply", "4x5", "3x4");
    expect_usable(st->ctx, &st->rng);

    drop(&a);
    drop(&b);
    drop(&c);
    drop(&b45);
    drop(&c53);
    drop(&c34);
}

static void test_shape_transpose(void **state)
{
    errors_state *st = *state;
    known a = make_known(st->ctx, &st->rng, 3, 4, GPUMAT_F32);
    known t = make_known(st->ctx, &st->rng, 5, 2, GPUMAT_F32);
    known t34 = make_known(st->ctx, &st->rng, 3, 4, GPUMAT_F32);

    EXPECT_STATUS(gpumat_transpose(t.m, a.m), GPUMAT_ERR_SHAPE);
    expect_shape_message(st, "transpose", "3x4", "5x2");
    expect_intact(&t, "transpose 3x4 into 5x2: t");
    expect_usable(st->ctx, &st->rng);

    /* Same shape as the input is wrong unless square. */
    EXPECT_STATUS(gpumat_transpose(t34.m, a.m), GPUMAT_ERR_SHAPE);
    expect_shape_message(st, "transpose", "3x4", NULL);
    expect_intact(&t34, "transpose 3x4 into 3x4: t");
    expect_usable(st->ctx, &st->rng);

    drop(&a);
    drop(&t);
    drop(&t34);
}

/* ---- dtype mismatches ------------------------------------------------------------ */

static void test_dtype_mismatch(void **state)
{
    errors_state *st = *state;
    if (!tu_has_fp64(st->ctx)) {
        print_message("[  SKIPPED ] device has no fp64: no second dtype to mismatch\n");
        skip();
    }
    known f = make_known(st->ctx, &st->rng, 4, 4, GPUMAT_F32);
    known f2 = make_known(st->ctx, &st->rng, 4, 4, GPUMAT_F32);
    known fc = make_known(st->ctx, &st->rng, 4, 4, GPUMAT_F32);
    known d = make_known(st->ctx, &st->rng, 4, 4, GPUMAT_F64);
    known dc = make_known(st->ctx, &st->rng, 4, 4, GPUMAT_F64);

    EXPECT_STATUS(gpumat_add(fc.m, f.m, d.m), GPUMAT_ERR_DTYPE);
    EXPECT_STATUS(gpumat_add(fc.m, d.m, f.m), GPUMAT_ERR_DTYPE);
    EXPECT_STATUS(gpumat_add(dc.m, f.m, f2.m), GPUMAT_ERR_DTYPE);
    EXPECT_STATUS(gpumat_add(f.m, f.m, d.m), GPUMAT_ERR_DTYPE);
    EXPECT_STATUS(gpumat_multiply(fc.m, f.m, d.m), GPUMAT_ERR_DTYPE);
    EXPECT_STATUS(gpumat_multiply(fc.m, d.m, f.m), GPUMAT_ERR_DTYPE);
    EXPECT_STATUS(gpumat_multiply(dc.m, f.m, f2.m), GPUMAT_ERR_DTYPE);
    EXPECT_STATUS(gpumat_transpose(dc.m, f.m), GPUMAT_ERR_DTYPE);
    EXPECT_STATUS(gpumat_transpose(fc.m, d.m), GPUMAT_ERR_DTYPE);
    char copy[MSG_SIZE];
    snprintf(copy, sizeof copy, "%s", gpumat_last_error(st->ctx));
    expect_message_has("dtype error (context)", copy, "transpose", NULL, NULL);

    expect_intact(&f, "f after dtype errors");
    expect_intact(&fc, "fc after dtype errors");
    expect_intact(&dc, "dc after dtype errors");
    expect_usable(st->ctx, &st->rng);
    char msg[MSG_SIZE];
    if (!tu_context_works(st->ctx, GPUMAT_F64, &st->rng, msg, sizeof msg))
        fail_msg("f64 after dtype errors: %s", msg);

    drop(&f);
    drop(&f2);
    drop(&fc);
    drop(&d);
    drop(&dc);
}

/* ---- aliasing -------------------------------------------------------------------- */

static void test_aliasing(void **state)
{
    errors_state *st = *state;
    known a = make_known(st->ctx, &st->rng, 4, 4, GPUMAT_F32);
    known b = make_known(st->ctx, &st->rng, 4, 4, GPUMAT_F32);

    EXPECT_STATUS(gpumat_multiply(a.m, a.m, b.m), GPUMAT_ERR_ALIASING);
    expect_intact(&a, "multiply c==a: a");
    expect_usable(st->ctx, &st->rng);
    EXPECT_STATUS(gpumat_multiply(b.m, a.m, b.m), GPUMAT_ERR_ALIASING);
    expect_intact(&b, "multiply c==b: b");
    EXPECT_STATUS(gpumat_multiply(a.m, a.m, a.m), GPUMAT_ERR_ALIASING);
    expect_intact(&a, "multiply c==a==b: a");
    expect_usable(st->ctx, &st->rng);
    EXPECT_STATUS(gpumat_transpose(a.m, a.m), GPUMAT_ERR_ALIASING);
    expect_intact(&a, "transpose t==a: a");
    expect_intact(&b, "b after aliasing errors");
    expect_usable(st->ctx, &st->rng);

    /* 1x1 is its own transpose shape too. */
    known s = make_known(st->ctx, &st->rng, 1, 1, GPUMAT_F32);
    EXPECT_STATUS(gpumat_transpose(s.m, s.m), GPUMAT_ERR_ALIASING);
    EXPECT_STATUS(gpumat_multiply(s.m, s.m, s.m), GPUMAT_ERR_ALIASING);
    expect_intact(&s, "1x1 after aliasing errors");

    /* Reading the same matrix twice is fine: c = a * a. */
    known c = make_known(st->ctx, &st->rng, 4, 4, GPUMAT_F32);
    TU_CHECK_OK(gpumat_multiply(c.m, a.m, a.m));
    double out[16], ref[16], scale[16];
    char msg[MSG_SIZE];
    TU_CHECK_OK(tu_download(c.m, out));
    tu_ref_gemm(4, 4, 4, a.h, a.h, ref, scale);
    if (!tu_compare("multiply c = a * a", 4, 4, out, ref, scale,
                    tu_gemm_tolerance(GPUMAT_F32, 4), msg, sizeof msg))
        fail_msg("%s", msg);

    drop(&a);
    drop(&b);
    drop(&s);
    drop(&c);
}

/* ---- context mismatch ------------------------------------------------------------- */

static void test_context_mismatch(void **state)
{
    errors_state *st = *state;
    known a = make_known(st->ctx, &st->rng, 4, 4, GPUMAT_F32);
    known b = make_known(st->ctx, &st->rng, 4, 4, GPUMAT_F32);
    known c = make_known(st->ctx, &st->rng, 4, 4, GPUMAT_F32);
    known x = make_known(st->ctx2, &st->rng, 4, 4, GPUMAT_F32);
    known y = make_known(st->ctx2, &st->rng, 4, 4, GPUMAT_F32);

    EXPECT_STATUS(gpumat_add(c.m, a.m, x.m), GPUMAT_ERR_CONTEXT_MISMATCH);
    EXPECT_STATUS(gpumat_add(c.m, x.m, a.m), GPUMAT_ERR_CONTEXT_MISMATCH);
    EXPECT_STATUS(gpumat_add(y.m, a.m, b.m), GPUMAT_ERR_CONTEXT_MISMATCH);
    EXPECT_STATUS(gpumat_add(c.m, x.m, y.m), GPUMAT_ERR_CONTEXT_MISMATCH);
    EXPECT_STATUS(gpumat_multiply(c.m, a.m, x.m), GPUMAT_ERR_CONTEXT_MISMATCH);
    EXPECT_STATUS(gpumat_multiply(c.m, x.m, a.m), GPUMAT_ERR_CONTEXT_MISMATCH);
    EXPECT_STATUS(gpumat_multiply(y.m, a.m, b.m), GPUMAT_ERR_CONTEXT_MISMATCH);
    EXPECT_STATUS(gpumat_transpose(y.m, a.m), GPUMAT_ERR_CONTEXT_MISMATCH);
    EXPECT_STATUS(gpumat_transpose(c.m, x.m), GPUMAT_ERR_CONTEXT_MISMATCH);

    expect_intact(&c, "c after context mismatches");
    expect_intact(&y, "y after context mismatches");
    expect_intact(&a, "a after context mismatches");
    expect_intact(&x, "x after context mismatches");
    expect_usable(st->ctx, &st->rng);
    expect_usable(st->ctx2, &st->rng);

    drop(&a);
    drop(&b);
    drop(&c);
    drop(&x);
    drop(&y);
}

/* ---- options and environment -------------------------------------------------------- */

static void expect_context_create_fails(const gpumat_options *opt, gpumat_status expected,
                                        const char *needle, const char *what)
{
    gpumat_context *c = NOT_NULL_SENTINEL;
    gpumat_status s = gpumat_context_create(&c, opt);
    if (s == GPUMAT_OK) {
        gpumat_context_destroy(c);
        fail_msg("%s: context_create succeeded", what);
    }
    if (s != expected)
        fail_msg("%s: context_create -> %d (%s), expected %d (%s): %s", what, (int)s,
                 gpumat_strerror(s), (int)expected, gpumat_strerror(expected),
                 gpumat_last_error(NULL));
    if (c != NULL)
        fail_msg("%s: failed context_create left *ctx non-NULL", what);
    char copy[MSG_SIZE];
    snprintf(copy, sizeof copy, "%s", gpumat_last_error(NULL));
    if (!copy[0])
        fail_msg("%s: empty gpumat_last_error(NULL)", what);
    if (needle)
        expect_message_has(what, copy, needle, NULL, NULL);
}

static void test_bad_gemm_env(void **state)
{
    errors_state *st = *state;
    tu_saved_env saved;
    tu_env_save(&saved, "GPUMAT_GEMM");
    setenv("GPUMAT_GEMM", "bogus-backend", 1);
    expect_context_create_fails(NULL, GPUMAT_ERR_INVALID_ARGUMENT, "bogus-backend",
                                "GPUMAT_GEMM=bogus-backend, NULL options");
    gpumat_options opt;
    gpumat_options_init(&opt);
    expect_context_create_fails(&opt, GPUMAT_ERR_INVALID_ARGUMENT, "bogus-backend",
                                "GPUMAT_GEMM=bogus-backend, AUTO options");
    tu_env_restore(&saved);
    expect_usable(st->ctx, &st->rng);
}

static void test_bad_options(void **state)
{
    errors_state *st = *state;
    gpumat_options opt;
    gpumat_options_init(&opt);
    opt.gemm_backend = (gpumat_gemm_backend)77;
    expect_context_create_fails(&opt, GPUMAT_ERR_INVALID_ARGUMENT, NULL,
                                "options.gemm_backend = 77");
    opt.gemm_backend = (gpumat_gemm_backend)-1;
    expect_context_create_fails(&opt, GPUMAT_ERR_INVALID_ARGUMENT, NULL,
                                "options.gemm_backend = -1");

    gpumat_options_init(&opt);
    opt.device_type = (gpumat_device_type)77;
    gpumat_context *c = NOT_NULL_SENTINEL;
    gpumat_status s = gpumat_context_create(&c, &opt);
    if (s == GPUMAT_OK) {
        gpumat_context_destroy(c);
        fail_msg("options.device_type = 77: context_create succeeded");
    }
    /* Outside the enum: an invalid argument (a library may also read it as
     * "no device of that type"). */
    if (s != GPUMAT_ERR_INVALID_ARGUMENT && s != GPUMAT_ERR_NO_DEVICE)
        fail_msg("options.device_type = 77: %d (%s)", (int)s, gpumat_strerror(s));
    assert_null(c);

    size_t index = 0;
    s = gpumat_device_choose(&opt, &index, NULL, 0);
    if (s != GPUMAT_ERR_INVALID_ARGUMENT && s != GPUMAT_ERR_NO_DEVICE)
        fail_msg("device_choose with device_type = 77: %d (%s)", (int)s, gpumat_strerror(s));
    expect_usable(st->ctx, &st->rng);
}

/* ---- last error ------------------------------------------------------------------------ */

static void test_last_error_after_failure(void **state)
{
    errors_state *st = *state;
    gpumat_matrix *m = NULL;
    assert_int_equal(gpumat_matrix_create(st->ctx, 0, 3, GPUMAT_F32, &m), GPUMAT_ERR_SHAPE);
    const char *msg = gpumat_last_error(NULL);
    assert_non_null(msg);
    assert_true(msg[0] != '\0');
    /* The failure concerned st->ctx, so its own record has it too. */
    msg = gpumat_last_error(st->ctx);
    assert_non_null(msg);
    assert_true(msg[0] != '\0');
    /* A later failure on ctx2 replaces ctx2's message, not ctx's. */
    char mine[MSG_SIZE];
    snprintf(mine, sizeof mine, "%s", gpumat_last_error(st->ctx));
    gpumat_matrix *m2 = NULL;
    assert_int_equal(gpumat_matrix_create(st->ctx2, 7, 0, GPUMAT_F32, &m2), GPUMAT_ERR_SHAPE);
    assert_null(m2);
    assert_string_equal(gpumat_last_error(st->ctx), mine);
    assert_string_not_equal(gpumat_last_error(st->ctx2), mine);
    expect_usable(st->ctx, &st->rng);
}

int main(void)
{
    tu_init("test_errors");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fresh_last_error_empty),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_dtype_size),
        cmocka_unit_test(test_options_init),
        cmocka_unit_test(test_null_device_functions),
        cmocka_unit_test(test_null_context_functions),
        cmocka_unit_test(test_null_matrix_functions),
        cmocka_unit_test(test_null_operands),
        cmocka_unit_test(test_zero_dimensions),
        cmocka_unit_test(test_size_overflow),
        cmocka_unit_test(test_too_large_allocation),
        cmocka_unit_test(test_shape_add),
        cmocka_unit_test(test_shape_multiply),
        cmocka_unit_test(test_shape_transpose),
        cmocka_unit_test(test_dtype_mismatch),
        cmocka_unit_test(test_aliasing),
        cmocka_unit_test(test_context_mismatch),
        cmocka_unit_test(test_bad_gemm_env),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_last_error_after_failure),
    };
    return cmocka_run_group_tests_name("errors", tests, group_setup, group_teardown);
}
