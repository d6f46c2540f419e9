/*
 * test_nn.c - the neural-network and element-wise operations (geam, sub,
 * scale, axpy, hadamard, add_row_vector, sum_cols, relu, relu_backward,
 * softmax_rows, argmax_rows, softmax_cross_entropy, gather_rows,
 * adam_update) against double-precision CPU references, for F32 and F64,
 * on degenerate, prime and large shapes; every error path; and gradient
 * checks of the backward operations against central finite differences.
 *
 * Inputs are fresh random numbers from the printed seed; outputs are
 * poisoned with NaN first, so an element an operation fails to write
 * fails the comparison.  Each bound is derived where it is used, from the
 * roundings the operation can make whatever its summation order, so that
 * a correct kernel always passes and a wrong term always fails.
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

#include "gpumat.h"
#include "test_util.h"

#define MSG_SIZE 1024

static gpumat_context *g_ctx;
static uint64_t g_stream = 1;

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

static void rng_for_test(tu_rng *rng) { tu_rng_init(rng, g_stream++); }

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

/* Whether the F64 half of a test can run; on a device without fp64 it
 * checks that F64 is refused cleanly instead. */
static int dtype_ok(gpumat_dtype dt)
{
    if (dt == GPUMAT_F32 || tu_has_fp64(g_ctx))
        return 1;
    gpumat_matrix *m = (gpumat_matrix *)(uintptr_t)1;
    assert_int_equal(gpumat_matrix_create(g_ctx, 2, 2, GPUMAT_F64, &m), GPUMAT_ERR_UNSUPPORTED);
    assert_null(m);
    print_message("device has no fp64: checked that F64 is GPUMAT_ERR_UNSUPPORTED\n");
    return 0;
}

/* ---- matrices and comparisons ---------------------------------------------- */

static gpumat_matrix *rand_mat(tu_rng *rng, size_t r, size_t c, gpumat_dtype dt, double **h)
{
    gpumat_matrix *m;
    TU_CHECK_OK(tu_random_matrix(g_ctx, rng, r, c, dt, &m, h));
    return m;
}

/* A matrix holding `h` (already representable in dt). */
static gpumat_matrix *mat_of(const double *h, size_t r, size_t c, gpumat_dtype dt)
{
    gpumat_matrix *m;
    TU_CHECK_OK(gpumat_matrix_create(g_ctx, r, c, dt, &m));
    TU_CHECK_OK(tu_upload(m, h));
    return m;
}

/* A NaN-filled matrix: what an operation does not write stays NaN. */
static gpumat_matrix *poisoned(size_t r, size_t c, gpumat_dtype dt)
{
    gpumat_matrix *m;
    TU_CHECK_OK(gpumat_matrix_create(g_ctx, r, c, dt, &m));
    TU_CHECK_OK(tu_poison(m));
    return m;
}

static double *fetch(const gpumat_matrix *m)
{
    double *h = xmalloc(gpumat_matrix_rows(m) * gpumat_matrix_cols(m) * sizeof *h);
    TU_CHECK_OK(tu_download(m, h));
    return h;
}

/* Requires |m - ref| <= tol * scale element-wise (scale NULL: equality). */
static void expect_matrix(const char *what, const gpumat_matrix *m, const double *ref,
                          const double *scale, double tol)
{
    size_t r = gpumat_matrix_rows(m), c = gpumat_matrix_cols(m);
    double *out = fetch(m);
    char msg[MSG_SIZE];
    int ok = tu_compare(what, r, c, out, ref, scale, tol, msg, sizeof msg);
    free(out);
    if (!ok)
        fail_msg("%s", msg);
}

/* Rounds x to dt, as the library rounds its double scalars for F32. */
static double round_to(gpumat_dtype dt, double x) { return dt == GPUMAT_F32 ? (double)(float)x : x; }

static double *random_labels(tu_rng *rng, size_t n, size_t classes)
{
    double *h = xmalloc(n * sizeof *h);
    for (size_t i = 0; i < n; ++i)
        h[i] = (double)(tu_rng_next(rng) % classes);
    return h;
}

/* The element-wise shapes: degenerate, prime, the layer widths of an MLP,
 * and a large odd one (n % 4 != 0 exercises the vector kernels' tails). */
static const size_t ew_shapes[][2] = {
    {1, 1}, {1, 257}, {257, 1}, {1, 1000}, {7, 13}, {31, 37}, {61, 67},
    {128, 10}, {64, 256}, {129, 257}, {1023, 777},
};
#define EW_SHAPES (sizeof ew_shapes / sizeof ew_shapes[0])

/* ---- geam, sub, scale, axpy --------------------------------------------------- */

/* c = alpha op(a) + beta op(b).  Each product rounds once, the sum once, so
 * |err| <= u (|alpha a| + |beta b|) (2 + u) with alpha, beta as rounded to
 * dt; 3u covers it.  A zero coefficient's operand is poisoned with NaN to
 * prove that it is not read. */
static void run_geam(tu_rng *rng, gpumat_dtype dt, size_t rows, size_t cols, gpumat_op oa,
                     gpumat_op ob, double alpha, double beta)
{
    size_t n = rows * cols;
    size_t ar = oa == GPUMAT_TRANS ? cols : rows, ac = oa == GPUMAT_TRANS ? rows : cols;
    size_t br = ob == GPUMAT_TRANS ? cols : rows, bc = ob == GPUMAT_TRANS ? rows : cols;
    double *ha, *hb;
    gpumat_matrix *a = rand_mat(rng, ar, ac, dt, &ha), *b = rand_mat(rng, br, bc, dt, &hb);
    if (alpha == 0)
        TU_CHECK_OK(tu_poison(a));
    if (beta == 0)
        TU_CHECK_OK(tu_poison(b));
    gpumat_matrix *c = poisoned(rows, cols, dt);
    TU_CHECK_OK(gpumat_geam(oa, alpha, a, ob, beta, b, c));

    double ra = round_to(dt, alpha), rb = round_to(dt, beta);
    double *ref = xmalloc(n * sizeof *ref), *scale = xmalloc(n * sizeof *scale);
    for (size_t i = 0; i < rows; ++i)
        for (size_t j = 0; j < cols; ++j) {
            double x = oa == GPUMAT_TRANS ? ha[j * rows + i] : ha[i * cols + j];
            double y = ob == GPUMAT_TRANS ? hb[j * rows + i] : hb[i * cols + j];
            double tx = alpha == 0 ? 0 : ra * x, ty = beta == 0 ? 0 : rb * y;
            ref[i * cols + j] = tx + ty;
            scale[i * cols + j] = fabs(tx) + fabs(ty);
        }
    char what[160];
    snprintf(what, sizeof what, "geam %zux%zu %s op_a=%d op_b=%d alpha=%g beta=%g", rows, cols,
             tu_dtype_name(dt), (int)oa, (int)ob, alpha, beta);
    expect_matrix(what, c, ref, scale, 3 * tu_unit_roundoff(dt));
    if (alpha != 0)
        expect_matrix("geam: a unchanged", a, ha, NULL, 0);
    if (beta != 0)
        expect_matrix("geam: b unchanged", b, hb, NULL, 0);
    gpumat_matrix_destroy(a);
    gpumat_matrix_destroy(b);
    gpumat_matrix_destroy(c);
    free(ha);
    free(hb);
    free(ref);
    free(scale);
}

static void geam_suite(gpumat_dtype dt)
{
    if (!dtype_ok(dt))
        return;
    tu_rng rng;
    rng_for_test(&rng);
    static const double coef[][2] = {{0.75, -1.25}, {1, -1}, {0.1, 0}, {0, 3}, {0, 0}};
    for (size_t s = 0; s < EW_SHAPES; ++s)
        for (int oa = 0; oa < 2; ++oa)
            for (int ob = 0; ob < 2; ++ob)
                for (size_t k = 0; k < sizeof coef / sizeof coef[0]; ++k) {
                    /* The big shape once per transpose pair is plenty. */
                    if (ew_shapes[s][0] * ew_shapes[s][1] > 100000 && k > 0)
                        continue;
                    run_geam(&rng, dt, ew_shapes[s][0], ew_shapes[s][1], (gpumat_op)oa,
                             (gpumat_op)ob, coef[k][0], coef[k][1]);
                }
}

static void test_geam_f32(void **state) { (void)state; geam_suite(GPUMAT_F32); }
static void test_geam_f64(void **state) { (void)state; geam_suite(GPUMAT_F64); }

/* In place: c is a (used as stored) or b, with the other operand
 * transposed or not; and a and b the same matrix. */
static void geam_in_place(gpumat_dtype dt)
{
    if (!dtype_ok(dt))
        return;
    tu_rng rng;
    rng_for_test(&rng);
    static const size_t shapes[][2] = {{1, 1}, {37, 37}, {65, 129}, {300, 301}};
    const double u = tu_unit_roundoff(dt), alpha = 0.5, beta = -1.5;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s)
        for (int target = 0; target < 2; ++target)
            for (int other_t = 0; other_t < 2; ++other_t) {
                size_t r = shapes[s][0], c = shapes[s][1], n = r * c;
                double *hx, *hy;
                /* x is overwritten (used as stored); y is the other
                 * operand, transposed when other_t. */
                gpumat_matrix *x = rand_mat(&rng, r, c, dt, &hx);
                gpumat_matrix *y = rand_mat(&rng, other_t ? c : r, other_t ? r : c, dt, &hy);
                gpumat_op oy = other_t ? GPUMAT_TRANS : GPUMAT_NO_TRANS;
                if (target == 0)
                    TU_CHECK_OK(gpumat_geam(GPUMAT_NO_TRANS, alpha, x, oy, beta, y, x));
                else
                    TU_CHECK_OK(gpumat_geam(oy, beta, y, GPUMAT_NO_TRANS, alpha, x, x));
                double *ref = xmalloc(n * sizeof *ref), *scale = xmalloc(n * sizeof *scale);
                for (size_t i = 0; i < r; ++i)
                    for (size_t j = 0; j < c; ++j) {
                        double yv = other_t ? hy[j * r + i] : hy[i * c + j];
                        double tx = alpha * hx[i * c + j], ty = beta * yv;
                        ref[i * c + j] = tx + ty;
                        scale[i * c + j] = fabs(tx) + fabs(ty);
                    }
                char what[128];
                snprintf(what, sizeof what, "geam in place %zux%zu %s c=%s, other %s", r, c,
                         tu_dtype_name(dt), target ? "b" : "a", other_t ? "transposed" : "as is");
                expect_matrix(what, x, ref, scale, 3 * u);
                gpumat_matrix_destroy(x);
                gpumat_matrix_destroy(y);
                free(hx);
                free(hy);
                free(ref);
                free(scale);
            }

    /* a == b: c = 0.5 a + 2 a^T on a square matrix. */
    double *ha;
    gpumat_matrix *a = rand_mat(&rng, 33, 33, dt, &ha), *c = poisoned(33, 33, dt);
    TU_CHECK_OK(gpumat_geam(GPUMAT_NO_TRANS, 0.5, a, GPUMAT_TRANS, 2.0, a, c));
    double ref[33 * 33], scale[33 * 33];
    for (size_t i = 0; i < 33; ++i)
        for (size_t j = 0; j < 33; ++j) {
            ref[i * 33 + j] = 0.5 * ha[i * 33 + j] + 2.0 * ha[j * 33 + i];
            scale[i * 33 + j] = fabs(0.5 * ha[i * 33 + j]) + fabs(2.0 * ha[j * 33 + i]);
        }
    expect_matrix("geam a == b", c, ref, scale, 3 * u);
    gpumat_matrix_destroy(a);
    gpumat_matrix_destroy(c);
    free(ha);
}

static void test_geam_in_place_f32(void **state) { (void)state; geam_in_place(GPUMAT_F32); }
static void test_geam_in_place_f64(void **state) { (void)state; geam_in_place(GPUMAT_F64); }

/* sub is correctly rounded (u); scale rounds alpha and the product (3u
 * relative to |alpha a| covers both); axpy as geam (3u). */
static void sub_scale_axpy(gpumat_dtype dt)
{
    if (!dtype_ok(dt))
        return;
    tu_rng rng;
    rng_for_test(&rng);
    const double u = tu_unit_roundoff(dt);
    for (size_t s = 0; s < EW_SHAPES; ++s) {
        size_t r = ew_shapes[s][0], c = ew_shapes[s][1], n = r * c;
        double *ha, *hb;
        gpumat_matrix *a = rand_mat(&rng, r, c, dt, &ha), *b = rand_mat(&rng, r, c, dt, &hb);
        gpumat_matrix *out = poisoned(r, c, dt);
        double *ref = xmalloc(n * sizeof *ref), *scale = xmalloc(n * sizeof *scale);
        char what[128];

        TU_CHECK_OK(gpumat_sub(out, a, b));
        for (size_t i = 0; i < n; ++i) {
            ref[i] = ha[i] - hb[i];
            scale[i] = fabs(ref[i]);
        }
        snprintf(what, sizeof what, "sub %zux%zu %s", r, c, tu_dtype_name(dt));
        expect_matrix(what, out, ref, scale, u);

        TU_CHECK_OK(tu_poison(out));
        TU_CHECK_OK(gpumat_scale(out, -0.3, a));
        for (size_t i = 0; i < n; ++i) {
            ref[i] = -0.3 * ha[i];
            scale[i] = fabs(ref[i]);
        }
        snprintf(what, sizeof what, "scale %zux%zu %s", r, c, tu_dtype_name(dt));
        expect_matrix(what, out, ref, scale, 3 * u);

        /* b += 2.5 a, in place by definition. */
        TU_CHECK_OK(gpumat_axpy(2.5, a, b));
        for (size_t i = 0; i < n; ++i) {
            ref[i] = hb[i] + 2.5 * ha[i];
            scale[i] = fabs(hb[i]) + fabs(2.5 * ha[i]);
        }
        snprintf(what, sizeof what, "axpy %zux%zu %s", r, c, tu_dtype_name(dt));
        expect_matrix(what, b, ref, scale, 3 * u);
        expect_matrix("axpy: a unchanged", a, ha, NULL, 0);

        /* In place: a = a - a is exactly 0; a = 2 a is exact. */
        TU_CHECK_OK(gpumat_scale(a, 2.0, a));
        for (size_t i = 0; i < n; ++i)
            ref[i] = 2 * ha[i];
        expect_matrix("scale in place", a, ref, NULL, 0);
        TU_CHECK_OK(gpumat_sub(a, a, a));
        for (size_t i = 0; i < n; ++i)
            ref[i] = 0;
        expect_matrix("sub in place", a, ref, NULL, 0);

        gpumat_matrix_destroy(a);
        gpumat_matrix_destroy(b);
        gpumat_matrix_destroy(out);
        free(ha);
        free(hb);
        free(ref);
        free(scale);
    }
}

static void test_sub_scale_axpy_f32(void **state) { (void)state; sub_scale_axpy(GPUMAT_F32); }
static void test_sub_scale_axpy_f64(void **state) { (void)state; sub_scale_axpy(GPUMAT_F64); }

/* ---- hadamard, relu, relu_backward ------------------------------------------------ */

/* One rounding: |fl(ab) - ab| <= u |ab|. */
static void hadamard_suite(gpumat_dtype dt)
{
    if (!dtype_ok(dt))
        return;
    tu_rng rng;
    rng_for_test(&rng);
    const double u = tu_unit_roundoff(dt);
    for (size_t s = 0; s < EW_SHAPES; ++s)
        for (int mode = 0; mode < 4; ++mode) { /* c separate, c == a, c == b, a == b */
            size_t r = ew_shapes[s][0], c = ew_shapes[s][1], n = r * c;
            double *ha, *hb;
            gpumat_matrix *a = rand_mat(&rng, r, c, dt, &ha), *b = rand_mat(&rng, r, c, dt, &hb);
            gpumat_matrix *out = NULL, *dst;
            const gpumat_matrix *second = mode == 3 ? a : b;
            const double *hs = mode == 3 ? ha : hb;
            if (mode == 1)
                dst = a;
            else if (mode == 2)
                dst = b;
            else
                dst = out = poisoned(r, c, dt);
            TU_CHECK_OK(gpumat_hadamard(dst, a, second));
            double *ref = xmalloc(n * sizeof *ref), *scale = xmalloc(n * sizeof *scale);
            for (size_t i = 0; i < n; ++i) {
                ref[i] = ha[i] * hs[i];
                scale[i] = fabs(ref[i]);
            }
            char what[128];
            snprintf(what, sizeof what, "hadamard %zux%zu %s mode %d", r, c, tu_dtype_name(dt),
                     mode);
            expect_matrix(what, dst, ref, scale, u);
            gpumat_matrix_destroy(a);
            gpumat_matrix_destroy(b);
            gpumat_matrix_destroy(out);
            free(ha);
            free(hb);
            free(ref);
            free(scale);
        }
}

static void test_hadamard_f32(void **state) { (void)state; hadamard_suite(GPUMAT_F32); }
static void test_hadamard_f64(void **state) { (void)state; hadamard_suite(GPUMAT_F64); }

/* Exact operations: the results must be bit-equal (0 == -0 is accepted).
 * Every 5th input is set to exactly 0 or -0, where relu_backward must give
 * 0 whatever dy is. */
static void relu_suite(gpumat_dtype dt)
{
    if (!dtype_ok(dt))
        return;
    tu_rng rng;
    rng_for_test(&rng);
    for (size_t s = 0; s < EW_SHAPES; ++s)
        for (int in_place = 0; in_place < 3; ++in_place) {
            size_t r = ew_shapes[s][0], c = ew_shapes[s][1], n = r * c;
            double *hx = tu_random_host(&rng, n, dt), *hdy;
            assert_non_null(hx);
            for (size_t i = 0; i < n; i += 5)
                hx[i] = (i / 5) % 2 ? 0.0 : -0.0;
            gpumat_matrix *x = mat_of(hx, r, c, dt), *dy = rand_mat(&rng, r, c, dt, &hdy);
            double *ref = xmalloc(n * sizeof *ref);
            char what[128];

            gpumat_matrix *y = in_place == 1 ? x : poisoned(r, c, dt);
            TU_CHECK_OK(gpumat_relu(y, x));
            for (size_t i = 0; i < n; ++i)
                ref[i] = hx[i] > 0 ? hx[i] : 0.0;
            snprintf(what, sizeof what, "relu %zux%zu %s%s", r, c, tu_dtype_name(dt),
                     y == x ? " in place" : "");
            expect_matrix(what, y, ref, NULL, 0);
            if (y == x) /* x now holds relu(x); put the input back */
                TU_CHECK_OK(tu_upload(x, hx));
            else
                gpumat_matrix_destroy(y);

            /* in_place 0: dx separate; 1: dx == x; 2: dx == dy. */
            gpumat_matrix *dx = in_place == 0 ? poisoned(r, c, dt) : in_place == 1 ? x : dy;
            TU_CHECK_OK(gpumat_relu_backward(dx, dy, x));
            for (size_t i = 0; i < n; ++i)
                ref[i] = hx[i] > 0 ? hdy[i] : 0.0;
            snprintf(what, sizeof what, "relu_backward %zux%zu %s dx=%s", r, c,
                     tu_dtype_name(dt), in_place == 0 ? "new" : in_place == 1 ? "x" : "dy");
            expect_matrix(what, dx, ref, NULL, 0);

            if (in_place == 0)
                gpumat_matrix_destroy(dx);
            gpumat_matrix_destroy(x);
            gpumat_matrix_destroy(dy);
            free(hx);
            free(hdy);
            free(ref);
        }

    /* NaN passes through relu (a broken activation must surface). */
    double h[5] = {NAN, -1, 2, NAN, 0};
    gpumat_matrix *x = mat_of(h, 1, 5, dt), *y = poisoned(1, 5, dt);
    TU_CHECK_OK(gpumat_relu(y, x));
    double *out = fetch(y);
    assert_true(isnan(out[0]) && isnan(out[3]));
    assert_true(out[1] == 0 && out[2] == 2 && out[4] == 0);
    free(out);
    gpumat_matrix_destroy(x);
    gpumat_matrix_destroy(y);
}

static void test_relu_f32(void **state) { (void)state; relu_suite(GPUMAT_F32); }
static void test_relu_f64(void **state) { (void)state; relu_suite(GPUMAT_F64); }

/* ---- add_row_vector, sum_cols ----------------------------------------------- */

static void add_row_vector_suite(gpumat_dtype dt)
{
    if (!dtype_ok(dt))
        return;
    tu_rng rng;
    rng_for_test(&rng);
    for (size_t s = 0; s < EW_SHAPES; ++s)
        for (int in_place = 0; in_place < 2; ++in_place) {
            size_t r = ew_shapes[s][0], c = ew_shapes[s][1], n = r * c;
            double *ha, *hv;
            gpumat_matrix *a = rand_mat(&rng, r, c, dt, &ha), *v = rand_mat(&rng, 1, c, dt, &hv);
            gpumat_matrix *out = in_place ? a : poisoned(r, c, dt);
            TU_CHECK_OK(gpumat_add_row_vector(out, a, v));
            double *ref = xmalloc(n * sizeof *ref), *scale = xmalloc(n * sizeof *scale);
            for (size_t i = 0; i < r; ++i)
                for (size_t j = 0; j < c; ++j) {
                    ref[i * c + j] = ha[i * c + j] + hv[j];
                    scale[i * c + j] = fabs(ha[i * c + j]) + fabs(hv[j]);
                }
            char what[128];
            snprintf(what, sizeof what, "add_row_vector %zux%zu %s%s", r, c, tu_dtype_name(dt),
                     in_place ? " in place" : "");
            expect_matrix(what, out, ref, scale, tu_add_tolerance(dt));
            expect_matrix("add_row_vector: v unchanged", v, hv, NULL, 0);
            if (!in_place) {
                expect_matrix("add_row_vector: a unchanged", a, ha, NULL, 0);
                gpumat_matrix_destroy(out);
            }
            gpumat_matrix_destroy(a);
            gpumat_matrix_destroy(v);
            free(ha);
            free(hv);
            free(ref);
            free(scale);
        }
}

static void test_add_row_vector_f32(void **state) { (void)state; add_row_vector_suite(GPUMAT_F32); }
static void test_add_row_vector_f64(void **state) { (void)state; add_row_vector_suite(GPUMAT_F64); }

/* A column sum of M terms in any order meets at most M - 1 roundings per
 * term: the gemm bound with k = M and scale sum |a_ij| (test_util.h).
 * Tall shapes make the implementation split the rows into chunks and add
 * the partial sums in a second pass. */
static void sum_cols_suite(gpumat_dtype dt)
{
    if (!dtype_ok(dt))
        return;
    tu_rng rng;
    rng_for_test(&rng);
    static const size_t shapes[][2] = {
        {1, 1},    {1, 257},  {257, 1},  {1, 1000}, {1000, 1}, {7, 13},    {31, 37},
        {128, 10}, {128, 256}, {129, 257}, {4099, 1}, {1023, 777}, {100003, 3}, {20011, 65},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s) {
        size_t r = shapes[s][0], c = shapes[s][1];
        double *ha;
        gpumat_matrix *a = rand_mat(&rng, r, c, dt, &ha), *v = poisoned(1, c, dt);
        TU_CHECK_OK(gpumat_sum_cols(v, a));
        double *ref = xmalloc(c * sizeof *ref), *scale = xmalloc(c * sizeof *scale);
        for (size_t j = 0; j < c; ++j)
            ref[j] = scale[j] = 0;
        for (size_t i = 0; i < r; ++i)
            for (size_t j = 0; j < c; ++j) {
                ref[j] += ha[i * c + j];
                scale[j] += fabs(ha[i * c + j]);
            }
        char what[128];
        snprintf(what, sizeof what, "sum_cols %zux%zu %s", r, c, tu_dtype_name(dt));
        expect_matrix(what, v, ref, scale, tu_gemm_tolerance(dt, r));
        expect_matrix("sum_cols: a unchanged", a, ha, NULL, 0);
        gpumat_matrix_destroy(a);
        gpumat_matrix_destroy(v);
        free(ha);
        free(ref);
        free(scale);
    }
}

/* The bound above is loose for tall float columns (100003 rows: several
 * hundred against sums of ~200), so tall shapes are also summed from
 * whole numbers in [-8, 8], whose partial sums are exact in either type in
 * any order: the result must match exactly, and a dropped or repeated
 * chunk of rows shows. */
static void sum_cols_exact_suite(gpumat_dtype dt)
{
    if (!dtype_ok(dt))
        return;
    tu_rng rng;
    rng_for_test(&rng);
    static const size_t shapes[][2] = {{4099, 1}, {1023, 777}, {100003, 3}, {20011, 65}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s) {
        size_t r = shapes[s][0], c = shapes[s][1];
        double *ha = xmalloc(r * c * sizeof *ha), *ref = xmalloc(c * sizeof *ref);
        for (size_t j = 0; j < c; ++j)
            ref[j] = 0;
        for (size_t i = 0; i < r * c; ++i) {
            ha[i] = (double)(int)(tu_rng_next(&rng) % 17) - 8;
            ref[i % c] += ha[i];
        }
        gpumat_matrix *a = mat_of(ha, r, c, dt), *v = poisoned(1, c, dt);
        TU_CHECK_OK(gpumat_sum_cols(v, a));
        char what[128];
        snprintf(what, sizeof what, "sum_cols %zux%zu %s, whole numbers", r, c,
                 tu_dtype_name(dt));
        expect_matrix(what, v, ref, NULL, 0);
        gpumat_matrix_destroy(a);
        gpumat_matrix_destroy(v);
        free(ha);
        free(ref);
    }
}

static void test_sum_cols_f32(void **state) { (void)state; sum_cols_suite(GPUMAT_F32); }
static void test_sum_cols_f64(void **state) { (void)state; sum_cols_suite(GPUMAT_F64); }
static void test_sum_cols_exact_f32(void **state) { (void)state; sum_cols_exact_suite(GPUMAT_F32); }
static void test_sum_cols_exact_f64(void **state) { (void)state; sum_cols_exact_suite(GPUMAT_F64); }

/* ---- softmax, argmax, cross-entropy --------------------------------------------- */

/* Reference softmax of a row of k values, and the relative error bound of
 * each output.  The device computes d = x - m (error <= u |d| <= u R, R the
 * row's range), e = exp(d) (OpenCL: <= 3 ulp = 6u, and the perturbed
 * argument adds u R), a sum of k positive terms (gamma_{k-1}, any order)
 * and one division (u): to first order |y - y*| / y* <= 2 (u R + 6u) +
 * (k - 1) u + u.  Returned as the factor f with bound f u. */
static double ref_softmax_row(const double *x, size_t k, double *y, double *lse, double *range)
{
    double m = -INFINITY, lo = INFINITY;
    for (size_t j = 0; j < k; ++j) {
        m = fmax(m, x[j]);
        lo = fmin(lo, x[j]);
    }
    double s = 0;
    for (size_t j = 0; j < k; ++j)
        s += exp(x[j] - m);
    for (size_t j = 0; j < k; ++j)
        y[j] = exp(x[j] - m) / s;
    if (lse)
        *lse = log(s);
    if (range)
        *range = m - lo;
    return 2 * (m - lo) + 14 + (double)k;
}

static void softmax_suite(gpumat_dtype dt)
{
    if (!dtype_ok(dt))
        return;
    tu_rng rng;
    rng_for_test(&rng);
    static const size_t shapes[][2] = {
        {1, 1}, {1, 2}, {1, 1000}, {1000, 1}, {7, 13}, {60, 10}, {3, 1531}, {2, 4099},
        {257, 129}, {1023, 777},
    };
    const double u = tu_unit_roundoff(dt);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s)
        for (int variant = 0; variant < 3; ++variant) { /* plain, large values, in place */
            size_t r = shapes[s][0], c = shapes[s][1], n = r * c;
            double *hx = tu_random_host(&rng, n, dt);
            assert_non_null(hx);
            /* Around 500, spread 60: exp(x) alone would overflow F32 and F64 at 710+. */
            if (variant == 1)
                for (size_t i = 0; i < n; ++i)
                    hx[i] = round_to(dt, 500 + 30 * hx[i] + (i % 3 == 0 ? 250 : 0));
            gpumat_matrix *x = mat_of(hx, r, c, dt);
            gpumat_matrix *y = variant == 2 ? x : poisoned(r, c, dt);
            TU_CHECK_OK(gpumat_softmax_rows(y, x));
            double *ref = xmalloc(n * sizeof *ref), *scale = xmalloc(n * sizeof *scale);
            /* Outputs below the smallest normal number may flush to 0
             * (the large inputs make some): an absolute 2^-124 (F32) or
             * 2^-1020 (F64) on top. */
            const double tiny = dt == GPUMAT_F32 ? 0x1.0p-125 : 0x1.0p-1021;
            for (size_t i = 0; i < r; ++i) {
                double f = ref_softmax_row(hx + i * c, c, ref + i * c, NULL, NULL);
                for (size_t j = 0; j < c; ++j)
                    scale[i * c + j] = f * ref[i * c + j] + tiny / u;
            }
            char what[128];
            snprintf(what, sizeof what, "softmax_rows %zux%zu %s %s", r, c, tu_dtype_name(dt),
                     variant == 0 ? "" : variant == 1 ? "large inputs" : "in place");
            /* 2x slack for the second-order terms. */
            expect_matrix(what, y, ref, scale, 2 * u);
            if (variant != 2) {
                expect_matrix("softmax_rows: a unchanged", x, hx, NULL, 0);
                gpumat_matrix_destroy(y);
            }
            gpumat_matrix_destroy(x);
            free(hx);
            free(ref);
            free(scale);
        }
}

static void test_softmax_f32(void **state) { (void)state; softmax_suite(GPUMAT_F32); }
static void test_softmax_f64(void **state) { (void)state; softmax_suite(GPUMAT_F64); }

/* NumPy's rule: the first maximum; the first NaN if there is one. */
static size_t ref_argmax(const double *x, size_t k)
{
    size_t best = 0;
    for (size_t j = 0; j < k; ++j) {
        if (isnan(x[j]))
            return j;
        if (x[j] > x[best])
            best = j;
    }
    return best;
}

static void argmax_suite(gpumat_dtype dt)
{
    if (!dtype_ok(dt))
        return;
    tu_rng rng;
    rng_for_test(&rng);
    static const size_t shapes[][2] = {
        {1, 1}, {1, 1000}, {1000, 1}, {7, 13}, {128, 10}, {3, 1531}, {2, 4099}, {1023, 777},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s)
        for (int ties = 0; ties < 2; ++ties) {
            size_t r = shapes[s][0], c = shapes[s][1], n = r * c;
            double *hx = tu_random_host(&rng, n, dt);
            assert_non_null(hx);
            /* Few distinct values: maxima repeat within a row, so the tie
             * rule decides; a few rows get NaN, and one row is constant. */
            if (ties) {
                for (size_t i = 0; i < n; ++i)
                    hx[i] = (double)(tu_rng_next(&rng) % 4);
                for (size_t i = 0; i < r; i += 5)
                    hx[i * c + (tu_rng_next(&rng) % c)] = NAN;
                if (r > 1)
                    for (size_t j = 0; j < c; ++j)
                        hx[c + j] = -2.5;
            }
            gpumat_matrix *x = mat_of(hx, r, c, dt), *idx = poisoned(r, 1, dt);
            TU_CHECK_OK(gpumat_argmax_rows(idx, x));
            double *ref = xmalloc(r * sizeof *ref);
            for (size_t i = 0; i < r; ++i)
                ref[i] = (double)ref_argmax(hx + i * c, c);
            char what[128];
            snprintf(what, sizeof what, "argmax_rows %zux%zu %s%s", r, c, tu_dtype_name(dt),
                     ties ? " with ties and NaN" : "");
            expect_matrix(what, idx, ref, NULL, 0);
            gpumat_matrix_destroy(x);
            gpumat_matrix_destroy(idx);
            free(hx);
            free(ref);
        }
}

static void test_argmax_f32(void **state) { (void)state; argmax_suite(GPUMAT_F32); }
static void test_argmax_f64(void **state) { (void)state; argmax_suite(GPUMAT_F64); }

/* Cross-entropy bounds.  Row i: loss_i = log S - (z_y - m).  The device's
 * S has relative error e_S <= (k - 1) u + u R + 6u (as in softmax), which
 * log turns into an absolute e_S; log itself adds 6u |log S|; z_y - m
 * rounds (u |z_y - m|), and the final difference u |loss_i|: together
 * b_i = u (k + R + 7 + 8 |log S| + 2 |z_y - m|).  The mean sums M terms
 * (gamma_M) and multiplies by a rounded 1/M (2u): B = mean(b_i) + (M + 2) u
 * mean|loss_i|.
 * Gradient: p_j has relative error f u (ref_softmax_row); p - 1 adds
 * u |p - t|, the rounded 1/M and the product 2u |p - t|:
 * |err| <= u (f p + 3 |p - t|) / M. */
static void run_xent(tu_rng *rng, gpumat_dtype dt, size_t r, size_t c, int mode)
{
    /* mode 0: both outputs; 1: loss only; 2: dlogits only; 3: dlogits ==
     * logits (in place) with the loss. */
    size_t n = r * c;
    const double u = tu_unit_roundoff(dt);
    double *hz, *hy = random_labels(rng, r, c);
    gpumat_matrix *z = rand_mat(rng, r, c, dt, &hz);
    /* Spread the logits to [-4, 4] so that the softmax is far from uniform. */
    for (size_t i = 0; i < n; ++i)
        hz[i] = round_to(dt, 4 * hz[i]);
    TU_CHECK_OK(tu_upload(z, hz));
    gpumat_matrix *y = mat_of(hy, r, 1, dt);
    gpumat_matrix *loss = mode == 2 ? NULL : poisoned(1, 1, dt);
    gpumat_matrix *dz = mode == 1 ? NULL : mode == 3 ? z : poisoned(r, c, dt);
    TU_CHECK_OK(gpumat_softmax_cross_entropy(loss, dz, z, y));

    double *p = xmalloc(c * sizeof *p), *gref = xmalloc(n * sizeof *gref);
    double *gscale = xmalloc(n * sizeof *gscale);
    double sum = 0, sum_abs = 0, sum_b = 0;
    for (size_t i = 0; i < r; ++i) {
        const double *zi = hz + i * c;
        double lse, range;
        double f = ref_softmax_row(zi, c, p, &lse, &range);
        size_t yi = (size_t)hy[i];
        double m = zi[0];
        for (size_t j = 1; j < c; ++j)
            m = fmax(m, zi[j]);
        double li = lse - (zi[yi] - m);
        sum += li;
        sum_abs += fabs(li);
        sum_b += u * ((double)c + range + 7 + 8 * fabs(lse) + 2 * fabs(zi[yi] - m));
        for (size_t j = 0; j < c; ++j) {
            double t = j == yi ? 1.0 : 0.0;
            gref[i * c + j] = (p[j] - t) / (double)r;
            gscale[i * c + j] = (f * p[j] + 3 * fabs(p[j] - t)) / (double)r;
        }
    }
    char what[128];
    snprintf(what, sizeof what, "softmax_cross_entropy %zux%zu %s mode %d", r, c,
             tu_dtype_name(dt), mode);
    if (loss) {
        double ref = sum / (double)r;
        double bound = sum_b / (double)r + ((double)r + 2) * u * sum_abs / (double)r;
        /* tu_compare's form: scale * tol, with 2x slack. */
        double scale = bound / u;
        char w2[160];
        snprintf(w2, sizeof w2, "%s: loss", what);
        expect_matrix(w2, loss, &ref, &scale, 2 * u);
    }
    if (dz) {
        char w2[160];
        snprintf(w2, sizeof w2, "%s: dlogits", what);
        expect_matrix(w2, dz, gref, gscale, 2 * u);
    }
    if (mode != 3)
        expect_matrix("softmax_cross_entropy: logits unchanged", z, hz, NULL, 0);
    expect_matrix("softmax_cross_entropy: labels unchanged", y, hy, NULL, 0);
    gpumat_matrix_destroy(z);
    gpumat_matrix_destroy(y);
    gpumat_matrix_destroy(loss);
    if (mode != 3)
        gpumat_matrix_destroy(dz);
    free(hz);
    free(hy);
    free(p);
    free(gref);
    free(gscale);
}

static void xent_suite(gpumat_dtype dt)
{
    if (!dtype_ok(dt))
        return;
    tu_rng rng;
    rng_for_test(&rng);
    static const size_t shapes[][2] = {
        {1, 1}, {1, 10}, {7, 1}, {128, 10}, {37, 1000}, {2, 4099}, {1000, 3}, {1023, 777},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s)
        for (int mode = 0; mode < 4; ++mode)
            run_xent(&rng, dt, shapes[s][0], shapes[s][1], mode);
}

static void test_xent_f32(void **state) { (void)state; xent_suite(GPUMAT_F32); }
static void test_xent_f64(void **state) { (void)state; xent_suite(GPUMAT_F64); }

/* A bad label cannot be reported by the call (the device has not read it
 * yet): its row of dlogits and the mean loss become NaN, the other rows
 * stay right. */
static void test_xent_bad_labels(void **state)
{
    (void)state;
    tu_rng rng;
    rng_for_test(&rng);
    const double bad[] = {-1, 10, 2.5, NAN, 1e30};
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; ++b) {
        enum { R = 6, C = 10 };
        double *hz, *hy = random_labels(&rng, R, C);
        hy[3] = bad[b];
        gpumat_matrix *z = rand_mat(&rng, R, C, GPUMAT_F32, &hz), *y = mat_of(hy, R, 1, GPUMAT_F32);
        gpumat_matrix *loss = poisoned(1, 1, GPUMAT_F32), *dz = poisoned(R, C, GPUMAT_F32);
        TU_CHECK_OK(gpumat_softmax_cross_entropy(loss, dz, z, y));
        double *hl = fetch(loss), *hd = fetch(dz);
        if (!isnan(hl[0]))
            fail_msg("label %g: loss %g, expected NaN", bad[b], hl[0]);
        for (size_t i = 0; i < R; ++i)
            for (size_t j = 0; j < C; ++j)
                if ((i == 3) != (int)isnan(hd[i * C + j]))
                    fail_msg("label %g in row 3: dlogits[%zu][%zu] = %g", bad[b], i, j,
                             hd[i * C + j]);
        gpumat_matrix_destroy(z);
        gpumat_matrix_destroy(y);
        gpumat_matrix_destroy(loss);
        gpumat_matrix_destroy(dz);
        free(hz);
        free(hy);
        free(hl);
        free(hd);
    }
}

/* ---- gather_rows, adam_update ------------------------------------------------------ */

static void gather_suite(gpumat_dtype dt)
{
    if (!dtype_ok(dt))
        return;
    tu_rng rng;
    rng_for_test(&rng);
    /* src rows, columns, gathered rows */
    static const size_t shapes[][3] = {
        {1, 1, 5}, {1, 7, 1}, {37, 13, 1}, {100, 784, 128}, {5, 4, 300}, {1023, 777, 301},
        {60000 / 64, 10, 129},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s) {
        size_t sr = shapes[s][0], c = shapes[s][1], m = shapes[s][2];
        double *hs, *hi = random_labels(&rng, m, sr);
        gpumat_matrix *src = rand_mat(&rng, sr, c, dt, &hs), *idx = mat_of(hi, m, 1, dt);
        gpumat_matrix *dst = poisoned(m, c, dt);
        TU_CHECK_OK(gpumat_gather_rows(dst, src, idx));
        double *ref = xmalloc(m * c * sizeof *ref);
        for (size_t i = 0; i < m; ++i)
            memcpy(ref + i * c, hs + (size_t)hi[i] * c, c * sizeof *ref);
        char what[128];
        snprintf(what, sizeof what, "gather_rows %zu of %zux%zu %s", m, sr, c, tu_dtype_name(dt));
        expect_matrix(what, dst, ref, NULL, 0);
        gpumat_matrix_destroy(src);
        gpumat_matrix_destroy(idx);
        gpumat_matrix_destroy(dst);
        free(hs);
        free(hi);
        free(ref);
    }

    /* A bad index gives a NaN row, the others are still gathered. */
    double hi[4] = {1, -1, 0, 7};
    double *hs;
    gpumat_matrix *src = rand_mat(&rng, 3, 5, dt, &hs), *idx = mat_of(hi, 4, 1, dt);
    gpumat_matrix *dst = poisoned(4, 5, dt);
    TU_CHECK_OK(gpumat_gather_rows(dst, src, idx));
    double *out = fetch(dst);
    for (size_t j = 0; j < 5; ++j) {
        assert_true(out[j] == hs[5 + j] && out[10 + j] == hs[j]);
        assert_true(isnan(out[5 + j]) && isnan(out[15 + j]));
    }
    free(out);
    free(hs);
    gpumat_matrix_destroy(src);
    gpumat_matrix_destroy(idx);
    gpumat_matrix_destroy(dst);
}

static void test_gather_f32(void **state) { (void)state; gather_suite(GPUMAT_F32); }
static void test_gather_f64(void **state) { (void)state; gather_suite(GPUMAT_F64); }

/* Adam, checked step by step from the device's own state (so errors do not
 * compound).  Bounds, with the constants rounded to dt: m' = b1 m + c1 g
 * meets 3 roundings per term: 4u (|b1 m| + |c1 g|); v' = b2 v + c2 g^2 one
 * more: 5u v' (all terms are >= 0); the step lr_t m' / (sqrt v' + eps_t)
 * has relative error 8u + 2.5u (from v') on top of lr_t * err(m') / D; the
 * final subtraction u |p'|. */
static void adam_suite(gpumat_dtype dt)
{
    if (!dtype_ok(dt))
        return;
    tu_rng rng;
    rng_for_test(&rng);
    const double u = tu_unit_roundoff(dt);
    const double lr = 0.1, b1 = 0.9, b2 = 0.999, eps = 1e-8;
    for (size_t s = 0; s < EW_SHAPES; ++s) {
        size_t r = ew_shapes[s][0], c = ew_shapes[s][1], n = r * c;
        double *hp, *hm = xmalloc(n * sizeof *hm), *hv = xmalloc(n * sizeof *hv);
        for (size_t i = 0; i < n; ++i)
            hm[i] = hv[i] = 0;
        gpumat_matrix *p = rand_mat(&rng, r, c, dt, &hp), *m = mat_of(hm, r, c, dt);
        gpumat_matrix *v = mat_of(hv, r, c, dt);
        double *rp = xmalloc(n * sizeof *rp), *rm = xmalloc(n * sizeof *rm);
        double *rv = xmalloc(n * sizeof *rv), *sp = xmalloc(n * sizeof *sp);
        double *sm = xmalloc(n * sizeof *sm), *sv = xmalloc(n * sizeof *sv);
        for (uint64_t t = 1; t <= 3; ++t) {
            double *hg;
            gpumat_matrix *g = rand_mat(&rng, r, c, dt, &hg);
            TU_CHECK_OK(gpumat_adam_update(p, g, m, v, lr, b1, b2, eps, t));
            double bc1 = 1 - pow(b1, (double)t), bc2 = 1 - pow(b2, (double)t);
            double lr_t = lr * sqrt(bc2) / bc1;
            for (size_t i = 0; i < n; ++i) {
                rm[i] = b1 * hm[i] + (1 - b1) * hg[i];
                rv[i] = b2 * hv[i] + (1 - b2) * hg[i] * hg[i];
                sm[i] = fabs(b1 * hm[i]) + fabs((1 - b1) * hg[i]);
                sv[i] = rv[i];
                double d = sqrt(rv[i] / bc2) + eps;
                double step = lr * (rm[i] / bc1) / d;
                rp[i] = hp[i] - step;
                double dd = sqrt(rv[i]) + eps * sqrt(bc2);
                sp[i] = fabs(rp[i]) + 11 * fabs(step) + lr_t * 4 * sm[i] / dd;
            }
            char what[128];
            snprintf(what, sizeof what, "adam %zux%zu %s step %llu", r, c, tu_dtype_name(dt),
                     (unsigned long long)t);
            expect_matrix(what, m, rm, sm, 4 * u);
            expect_matrix(what, v, rv, sv, 5 * u);
            expect_matrix(what, p, rp, sp, 2 * u);
            expect_matrix("adam: grad unchanged", g, hg, NULL, 0);
            TU_CHECK_OK(tu_download(p, hp));
            TU_CHECK_OK(tu_download(m, hm));
            TU_CHECK_OK(tu_download(v, hv));
            gpumat_matrix_destroy(g);
            free(hg);
        }
        gpumat_matrix_destroy(p);
        gpumat_matrix_destroy(m);
        gpumat_matrix_destroy(v);
        free(hp);
        free(hm);
        free(hv);
        free(rp);
        free(rm);
        free(rv);
        free(sp);
        free(sm);
        free(sv);
    }
}

static void test_adam_f32(void **state) { (void)state; adam_suite(GPUMAT_F32); }
static void test_adam_f64(void **state) { (void)state; adam_suite(GPUMAT_F64); }

/* ---- errors ----------------------------------------------------------------------- */

/* The call must fail with `expect`, and the message must name the
 * operation and contain `fragment` (an argument name or a shape). */
#define EXPECT_FAIL(call, expect, op, fragment)                                         \
    do {                                                                                \
        gpumat_status s_ = (call);                                                      \
        if (s_ != (expect))                                                             \
            fail_msg("%s -> %d (%s), expected %d (%s)", #call, (int)s_,                 \
                     gpumat_strerror(s_), (int)(expect), gpumat_strerror(expect));      \
        const char *m_ = gpumat_last_error(NULL);                                       \
        if (!strstr(m_, op) || !strstr(m_, fragment))                                   \
            fail_msg("%s: message \"%s\" does not name \"%s\" and \"%s\"", #call, m_,   \
                     op, fragment);                                                     \
    } while (0)

static gpumat_matrix *f32(size_t r, size_t c) { return poisoned(r, c, GPUMAT_F32); }

/* A failed call must not have written its output. */
static void expect_still_nan(const gpumat_matrix *m, const char *what)
{
    double *h = fetch(m);
    size_t n = gpumat_matrix_rows(m) * gpumat_matrix_cols(m);
    for (size_t i = 0; i < n; ++i)
        if (!isnan(h[i]))
            fail_msg("%s: a failed call wrote element %zu (%g)", what, i, h[i]);
    free(h);
}

static void test_errors_elementwise(void **state)
{
    (void)state;
    gpumat_matrix *a = f32(3, 4), *b = f32(3, 4), *c = f32(3, 4), *bad = f32(3, 5);
    gpumat_matrix *sq = f32(4, 4), *t = f32(4, 3);
    const gpumat_status SHAPE = GPUMAT_ERR_SHAPE, NUL = GPUMAT_ERR_INVALID_ARGUMENT;
    const gpumat_status ALIAS = GPUMAT_ERR_ALIASING;
    const gpumat_op N = GPUMAT_NO_TRANS, T = GPUMAT_TRANS;

    EXPECT_FAIL(gpumat_geam(N, 1, a, N, 1, bad, c), SHAPE, "geam", "3x5");
    EXPECT_FAIL(gpumat_geam(T, 1, a, N, 1, b, c), SHAPE, "geam", "transposed a is 4x3");
    EXPECT_FAIL(gpumat_geam(N, 1, a, T, 1, t, bad), SHAPE, "geam", "c is 3x5");
    EXPECT_FAIL(gpumat_geam(N, 1, NULL, N, 1, b, c), NUL, "geam", "a is NULL");
    EXPECT_FAIL(gpumat_geam(N, 1, a, N, 1, NULL, c), NUL, "geam", "b is NULL");
    EXPECT_FAIL(gpumat_geam(N, 1, a, N, 1, b, NULL), NUL, "geam", "c is NULL");
    EXPECT_FAIL(gpumat_geam((gpumat_op)7, 1, a, N, 1, b, c), NUL, "geam", "op_a is 7");
    EXPECT_FAIL(gpumat_geam(T, 1, sq, N, 1, sq, sq), ALIAS, "geam", "transposed a");
    EXPECT_FAIL(gpumat_geam(N, 1, sq, T, 1, sq, sq), ALIAS, "geam", "transposed b");
    expect_still_nan(c, "geam");
    expect_still_nan(sq, "geam");

    EXPECT_FAIL(gpumat_sub(c, a, bad), SHAPE, "sub", "b is 3x5");
    EXPECT_FAIL(gpumat_sub(c, NULL, b), NUL, "sub", "a is NULL");
    EXPECT_FAIL(gpumat_scale(bad, 2, a), SHAPE, "scale", "c is 3x5");
    EXPECT_FAIL(gpumat_scale(NULL, 2, a), NUL, "scale", "c is NULL");
    EXPECT_FAIL(gpumat_axpy(2, a, bad), SHAPE, "axpy", "b is 3x5");
    EXPECT_FAIL(gpumat_axpy(2, NULL, b), NUL, "axpy", "a is NULL");
    EXPECT_FAIL(gpumat_hadamard(c, a, bad), SHAPE, "hadamard", "b is 3x5");
    EXPECT_FAIL(gpumat_hadamard(c, a, NULL), NUL, "hadamard", "b is NULL");
    EXPECT_FAIL(gpumat_relu(bad, a), SHAPE, "relu", "c is 3x5");
    EXPECT_FAIL(gpumat_relu(c, NULL), NUL, "relu", "a is NULL");
    EXPECT_FAIL(gpumat_relu_backward(c, a, bad), SHAPE, "relu_backward", "x is 3x5");
    EXPECT_FAIL(gpumat_relu_backward(NULL, a, b), NUL, "relu_backward", "dx is NULL");
    expect_still_nan(c, "element-wise");
    expect_still_nan(b, "axpy");

    /* adam: shapes, aliasing, scalars */
    gpumat_matrix *m = f32(3, 4), *v = f32(3, 4);
    EXPECT_FAIL(gpumat_adam_update(a, bad, m, v, 1e-3, 0.9, 0.999, 1e-8, 1), SHAPE, "adam_update",
                "grad is 3x5");
    EXPECT_FAIL(gpumat_adam_update(a, b, m, m, 1e-3, 0.9, 0.999, 1e-8, 1), ALIAS, "adam_update",
                "m and v");
    EXPECT_FAIL(gpumat_adam_update(a, a, m, v, 1e-3, 0.9, 0.999, 1e-8, 1), ALIAS, "adam_update",
                "param and grad");
    EXPECT_FAIL(gpumat_adam_update(a, b, m, NULL, 1e-3, 0.9, 0.999, 1e-8, 1), NUL, "adam_update",
                "v is NULL");
    EXPECT_FAIL(gpumat_adam_update(a, b, m, v, NAN, 0.9, 0.999, 1e-8, 1), NUL, "adam_update", "lr");
    EXPECT_FAIL(gpumat_adam_update(a, b, m, v, 1e-3, 1.0, 0.999, 1e-8, 1), NUL, "adam_update",
                "beta1");
    EXPECT_FAIL(gpumat_adam_update(a, b, m, v, 1e-3, 0.9, -0.5, 1e-8, 1), NUL, "adam_update",
                "beta2");
    EXPECT_FAIL(gpumat_adam_update(a, b, m, v, 1e-3, 0.9, 0.999, 0, 1), NUL, "adam_update", "eps");
    EXPECT_FAIL(gpumat_adam_update(a, b, m, v, 1e-3, 0.9, 0.999, 1e-8, 0), NUL, "adam_update",
                "step");
    expect_still_nan(a, "adam_update");
    expect_still_nan(m, "adam_update");

    /* dtype and context mismatches */
    if (tu_has_fp64(g_ctx)) {
        gpumat_matrix *d = poisoned(3, 4, GPUMAT_F64);
        EXPECT_FAIL(gpumat_geam(N, 1, a, N, 1, d, c), GPUMAT_ERR_DTYPE, "geam", "f64");
        EXPECT_FAIL(gpumat_hadamard(c, d, b), GPUMAT_ERR_DTYPE, "hadamard", "f64");
        EXPECT_FAIL(gpumat_relu(d, a), GPUMAT_ERR_DTYPE, "relu", "f64");
        EXPECT_FAIL(gpumat_relu_backward(c, a, d), GPUMAT_ERR_DTYPE, "relu_backward", "f64");
        EXPECT_FAIL(gpumat_axpy(1, d, b), GPUMAT_ERR_DTYPE, "axpy", "f64");
        EXPECT_FAIL(gpumat_adam_update(a, b, m, d, 1e-3, 0.9, 0.999, 1e-8, 1), GPUMAT_ERR_DTYPE,
                    "adam_update", "f64");
        gpumat_matrix_destroy(d);
    }
    gpumat_context *other;
    TU_CHECK_OK(gpumat_context_create(&other, NULL));
    gpumat_matrix *o;
    TU_CHECK_OK(gpumat_matrix_create(other, 3, 4, GPUMAT_F32, &o));
    EXPECT_FAIL(gpumat_geam(N, 1, a, N, 1, o, c), GPUMAT_ERR_CONTEXT_MISMATCH, "geam",
                "different contexts");
    EXPECT_FAIL(gpumat_hadamard(o, a, b), GPUMAT_ERR_CONTEXT_MISMATCH, "hadamard",
                "different contexts");
    gpumat_matrix_destroy(o);
    gpumat_context_destroy(other);

    gpumat_matrix *all[] = {a, b, c, bad, sq, t, m, v};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; ++i)
        gpumat_matrix_destroy(all[i]);
}

static void test_errors_nn(void **state)
{
    (void)state;
    const gpumat_status SHAPE = GPUMAT_ERR_SHAPE, NUL = GPUMAT_ERR_INVALID_ARGUMENT;
    const gpumat_status ALIAS = GPUMAT_ERR_ALIASING;
    gpumat_matrix *a = f32(3, 4), *c = f32(3, 4), *row = f32(1, 4), *col = f32(4, 1);
    gpumat_matrix *row5 = f32(1, 5), *idx3 = f32(3, 1), *idx4 = f32(4, 1), *wide = f32(3, 2);
    gpumat_matrix *one = f32(1, 1), *two = f32(2, 1);

    EXPECT_FAIL(gpumat_add_row_vector(c, a, row5), SHAPE, "add_row_vector", "v is 1x5");
    EXPECT_FAIL(gpumat_add_row_vector(c, a, col), SHAPE, "add_row_vector", "v is 4x1");
    EXPECT_FAIL(gpumat_add_row_vector(wide, a, row), SHAPE, "add_row_vector", "c is 3x2");
    EXPECT_FAIL(gpumat_add_row_vector(c, a, NULL), NUL, "add_row_vector", "v is NULL");

    EXPECT_FAIL(gpumat_sum_cols(col, a), SHAPE, "sum_cols", "v is 4x1");
    EXPECT_FAIL(gpumat_sum_cols(row5, a), SHAPE, "sum_cols", "1x4");
    EXPECT_FAIL(gpumat_sum_cols(row, row), ALIAS, "sum_cols", "same matrix");
    EXPECT_FAIL(gpumat_sum_cols(NULL, a), NUL, "sum_cols", "v is NULL");

    EXPECT_FAIL(gpumat_softmax_rows(wide, a), SHAPE, "softmax_rows", "3x2");
    EXPECT_FAIL(gpumat_softmax_rows(c, NULL), NUL, "softmax_rows", "a is NULL");

    EXPECT_FAIL(gpumat_argmax_rows(wide, a), SHAPE, "argmax_rows", "3x2");
    EXPECT_FAIL(gpumat_argmax_rows(idx4, a), SHAPE, "argmax_rows", "4x1");
    EXPECT_FAIL(gpumat_argmax_rows(idx3, idx3), ALIAS, "argmax_rows", "same matrix");
    EXPECT_FAIL(gpumat_argmax_rows(NULL, a), NUL, "argmax_rows", "indices is NULL");

    const char *xe = "softmax_cross_entropy";
    EXPECT_FAIL(gpumat_softmax_cross_entropy(NULL, NULL, a, idx3), NUL, xe, "both NULL");
    EXPECT_FAIL(gpumat_softmax_cross_entropy(one, c, a, idx4), SHAPE, xe, "labels");
    EXPECT_FAIL(gpumat_softmax_cross_entropy(one, c, a, wide), SHAPE, xe, "3x2");
    EXPECT_FAIL(gpumat_softmax_cross_entropy(one, wide, a, idx3), SHAPE, xe, "dlogits");
    EXPECT_FAIL(gpumat_softmax_cross_entropy(two, c, a, idx3), SHAPE, xe, "loss must be 1x1");
    EXPECT_FAIL(gpumat_softmax_cross_entropy(one, NULL, row, one), ALIAS, xe, "labels");
    EXPECT_FAIL(gpumat_softmax_cross_entropy(NULL, idx3, idx3, idx3), ALIAS, xe, "labels");
    EXPECT_FAIL(gpumat_softmax_cross_entropy(one, c, NULL, idx3), NUL, xe, "logits is NULL");
    EXPECT_FAIL(gpumat_softmax_cross_entropy(one, c, a, NULL), NUL, xe, "labels is NULL");

    gpumat_matrix *src = f32(5, 4);
    EXPECT_FAIL(gpumat_gather_rows(c, src, wide), SHAPE, "gather_rows", "indices 3x2");
    EXPECT_FAIL(gpumat_gather_rows(c, src, idx4), SHAPE, "gather_rows", "indices 4x1");
    EXPECT_FAIL(gpumat_gather_rows(wide, src, idx3), SHAPE, "gather_rows", "dst is 3x2");
    EXPECT_FAIL(gpumat_gather_rows(idx3, idx3, idx3), ALIAS, "gather_rows", "src");
    EXPECT_FAIL(gpumat_gather_rows(idx3, one, idx3), ALIAS, "gather_rows", "indices");
    EXPECT_FAIL(gpumat_gather_rows(c, NULL, idx3), NUL, "gather_rows", "src is NULL");
    expect_still_nan(c, "row operations");
    expect_still_nan(idx3, "row operations");

    if (tu_has_fp64(g_ctx)) {
        gpumat_matrix *d = poisoned(3, 1, GPUMAT_F64), *d2 = poisoned(1, 4, GPUMAT_F64);
        EXPECT_FAIL(gpumat_softmax_cross_entropy(one, c, a, d), GPUMAT_ERR_DTYPE, xe, "f64");
        EXPECT_FAIL(gpumat_argmax_rows(d, a), GPUMAT_ERR_DTYPE, "argmax_rows", "f64");
        EXPECT_FAIL(gpumat_gather_rows(c, src, d), GPUMAT_ERR_DTYPE, "gather_rows", "f64");
        EXPECT_FAIL(gpumat_add_row_vector(c, a, d2), GPUMAT_ERR_DTYPE, "add_row_vector", "f64");
        EXPECT_FAIL(gpumat_sum_cols(d2, a), GPUMAT_ERR_DTYPE, "sum_cols", "f64");
        EXPECT_FAIL(gpumat_softmax_rows(c, d2), GPUMAT_ERR_DTYPE, "softmax_rows", "f64");
        gpumat_matrix_destroy(d);
        gpumat_matrix_destroy(d2);
    }

    /* F32 index vectors hold integers exactly only up to 2^24. */
    gpumat_matrix *huge;
    size_t k = ((size_t)1 << 24) + 1;
    if (gpumat_matrix_create(g_ctx, 1, k, GPUMAT_F32, &huge) == GPUMAT_OK) {
        EXPECT_FAIL(gpumat_argmax_rows(one, huge), SHAPE, "argmax_rows", "16777217 columns");
        gpumat_matrix *loss = f32(1, 1);
        EXPECT_FAIL(gpumat_softmax_cross_entropy(loss, NULL, huge, one), SHAPE, xe, "16777217");
        gpumat_matrix_destroy(loss);
        gpumat_matrix_destroy(huge);
    }

    gpumat_matrix *all[] = {a, c, row, col, row5, idx3, idx4, wide, one, two, src};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; ++i)
        gpumat_matrix_destroy(all[i]);
}

/* ---- gradient checks (F64, central differences) ------------------------------------- */

/* Central differences (f(x+h) - f(x-h)) / 2h have truncation error
 * h^2 |f'''| / 6 and rounding error about u |f| / h; with h = 1e-6 in F64
 * both are below 1e-9 for these O(1) functions, so 1e-6 relative (plus
 * 1e-8 absolute) separates a right gradient from a wrong one by orders of
 * magnitude. */
#define FD_H 1e-6
#define FD_TOL_REL 1e-6
#define FD_TOL_ABS 1e-8

static void expect_gradient(const char *what, size_t i, double analytic, double numeric)
{
    if (!(fabs(analytic - numeric) <= FD_TOL_ABS + FD_TOL_REL * fabs(numeric)))
        fail_msg("%s: element %zu: analytic gradient %.12g, finite difference %.12g", what, i,
                 analytic, numeric);
}

/* Random values at least 0.01 away from 0, so that no ReLU kink lies
 * within h of an input. */
static double *away_from_zero(tu_rng *rng, size_t n)
{
    double *h = tu_random_host(rng, n, GPUMAT_F64);
    assert_non_null(h);
    for (size_t i = 0; i < n; ++i)
        h[i] = copysign(0.01 + fabs(h[i]), h[i]);
    return h;
}

/* L(x) = sum relu(x) .* w, through the device: relu, hadamard, sum_cols,
 * and the last 1 x N sum on the host. */
static double relu_objective(gpumat_matrix *x, gpumat_matrix *w, gpumat_matrix *tmp,
                             gpumat_matrix *colsum)
{
    TU_CHECK_OK(gpumat_relu(tmp, x));
    TU_CHECK_OK(gpumat_hadamard(tmp, tmp, w));
    TU_CHECK_OK(gpumat_sum_cols(colsum, tmp));
    double *h = fetch(colsum), s = 0;
    for (size_t j = 0; j < gpumat_matrix_cols(colsum); ++j)
        s += h[j];
    free(h);
    return s;
}

static void test_gradcheck_relu(void **state)
{
    (void)state;
    if (!tu_has_fp64(g_ctx)) {
        print_message("[  SKIPPED ] gradient checks need fp64\n");
        skip();
    }
    tu_rng rng;
    rng_for_test(&rng);
    enum { R = 7, C = 11, N = R * C };
    double *hx = away_from_zero(&rng, N), *hw;
    gpumat_matrix *x = mat_of(hx, R, C, GPUMAT_F64), *w = rand_mat(&rng, R, C, GPUMAT_F64, &hw);
    gpumat_matrix *tmp = poisoned(R, C, GPUMAT_F64), *colsum = poisoned(1, C, GPUMAT_F64);
    gpumat_matrix *dx = poisoned(R, C, GPUMAT_F64);
    /* dL/drelu(x) = w, so relu_backward(w, x) is the gradient. */
    TU_CHECK_OK(gpumat_relu_backward(dx, w, x));
    double *g = fetch(dx);
    for (size_t i = 0; i < N; ++i) {
        double keep = hx[i];
        hx[i] = keep + FD_H;
        TU_CHECK_OK(tu_upload(x, hx));
        double up = relu_objective(x, w, tmp, colsum);
        hx[i] = keep - FD_H;
        TU_CHECK_OK(tu_upload(x, hx));
        double down = relu_objective(x, w, tmp, colsum);
        hx[i] = keep;
        expect_gradient("relu_backward", i, g[i], (up - down) / (2 * FD_H));
    }
    free(g);
    free(hx);
    free(hw);
    gpumat_matrix *all[] = {x, w, tmp, colsum, dx};
    for (size_t i = 0; i < 5; ++i)
        gpumat_matrix_destroy(all[i]);
}

static double loss_of(gpumat_matrix *loss)
{
    double v;
    TU_CHECK_OK(tu_download(loss, &v));
    return v;
}

static void test_gradcheck_xent(void **state)
{
    (void)state;
    if (!tu_has_fp64(g_ctx)) {
        print_message("[  SKIPPED ] gradient checks need fp64\n");
        skip();
    }
    tu_rng rng;
    rng_for_test(&rng);
    static const size_t shapes[][2] = {{1, 1}, {1, 5}, {6, 10}, {3, 37}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s) {
        size_t r = shapes[s][0], c = shapes[s][1], n = r * c;
        double *hz, *hy = random_labels(&rng, r, c);
        gpumat_matrix *z = rand_mat(&rng, r, c, GPUMAT_F64, &hz), *y = mat_of(hy, r, 1, GPUMAT_F64);
        for (size_t i = 0; i < n; ++i)
            hz[i] *= 3;
        TU_CHECK_OK(tu_upload(z, hz));
        gpumat_matrix *loss = poisoned(1, 1, GPUMAT_F64), *dz = poisoned(r, c, GPUMAT_F64);
        TU_CHECK_OK(gpumat_softmax_cross_entropy(NULL, dz, z, y));
        double *g = fetch(dz);
        for (size_t i = 0; i < n; ++i) {
            double keep = hz[i];
            hz[i] = keep + FD_H;
            TU_CHECK_OK(tu_upload(z, hz));
            TU_CHECK_OK(gpumat_softmax_cross_entropy(loss, NULL, z, y));
            double up = loss_of(loss);
            hz[i] = keep - FD_H;
            TU_CHECK_OK(tu_upload(z, hz));
            TU_CHECK_OK(gpumat_softmax_cross_entropy(loss, NULL, z, y));
            double down = loss_of(loss);
            hz[i] = keep;
            char what[96];
            snprintf(what, sizeof what, "softmax_cross_entropy %zux%zu dlogits", r, c);
            expect_gradient(what, i, g[i], (up - down) / (2 * FD_H));
        }
        free(g);
        free(hz);
        free(hy);
        gpumat_matrix_destroy(z);
        gpumat_matrix_destroy(y);
        gpumat_matrix_destroy(loss);
        gpumat_matrix_destroy(dz);
    }
}

/* A two-layer network, L = xent(relu(X W1 + b1) W2 + b2, y), differentiated
 * by the backward pass examples/mlp.c uses (gemm with transposes, sum_cols,
 * relu_backward, the fused softmax cross-entropy gradient), against central
 * differences in every input and parameter.  The whole forward and
 * backward pass is queued without a wait in between. */
typedef struct two_layer {
    gpumat_matrix *x, *w1, *b1, *w2, *b2, *y;      /* inputs and parameters */
    gpumat_matrix *z1, *a1, *z2, *loss;            /* forward */
    gpumat_matrix *dz2, *dw2, *db2, *dz1, *dw1, *db1, *dx; /* backward */
} two_layer;

static double two_layer_forward(two_layer *n)
{
    TU_CHECK_OK(gpumat_multiply(n->z1, n->x, n->w1));
    TU_CHECK_OK(gpumat_add_row_vector(n->z1, n->z1, n->b1));
    TU_CHECK_OK(gpumat_relu(n->a1, n->z1));
    TU_CHECK_OK(gpumat_multiply(n->z2, n->a1, n->w2));
    TU_CHECK_OK(gpumat_add_row_vector(n->z2, n->z2, n->b2));
    TU_CHECK_OK(gpumat_softmax_cross_entropy(n->loss, n->dz2, n->z2, n->y));
    return loss_of(n->loss);
}

static void two_layer_backward(two_layer *n)
{
    const gpumat_op N = GPUMAT_NO_TRANS, T = GPUMAT_TRANS;
    TU_CHECK_OK(gpumat_gemm(T, N, 1, n->a1, n->dz2, 0, n->dw2));
    TU_CHECK_OK(gpumat_sum_cols(n->db2, n->dz2));
    TU_CHECK_OK(gpumat_gemm(N, T, 1, n->dz2, n->w2, 0, n->dz1));
    TU_CHECK_OK(gpumat_relu_backward(n->dz1, n->dz1, n->z1));
    TU_CHECK_OK(gpumat_gemm(T, N, 1, n->x, n->dz1, 0, n->dw1));
    TU_CHECK_OK(gpumat_sum_cols(n->db1, n->dz1));
    TU_CHECK_OK(gpumat_gemm(N, T, 1, n->dz1, n->w1, 0, n->dx));
}

static void test_gradcheck_two_layer(void **state)
{
    (void)state;
    if (!tu_has_fp64(g_ctx)) {
        print_message("[  SKIPPED ] gradient checks need fp64\n");
        skip();
    }
    tu_rng rng;
    rng_for_test(&rng);
    enum { B = 5, D = 7, H = 6, K = 4 };
    const gpumat_dtype F = GPUMAT_F64;
    two_layer n;
    double *hx = NULL, *hw1 = NULL, *hb1 = NULL, *hw2 = NULL, *hb2 = NULL;
    double *hy = random_labels(&rng, B, K);
    /* Redraw until no pre-activation lies within 1e-3 of the ReLU kink
     * (a perturbation of h moves them by far less). */
    for (int attempt = 0;; ++attempt) {
        assert_true(attempt < 100);
        free(hx);
        free(hw1);
        free(hb1);
        hx = tu_random_host(&rng, B * D, F);
        hw1 = tu_random_host(&rng, D * H, F);
        hb1 = tu_random_host(&rng, H, F);
        int ok = 1;
        for (size_t i = 0; i < B; ++i)
            for (size_t j = 0; j < H; ++j) {
                double z = hb1[j];
                for (size_t k = 0; k < D; ++k)
                    z += hx[i * D + k] * hw1[k * H + j];
                ok &= fabs(z) > 1e-3;
            }
        if (ok)
            break;
    }
    hw2 = tu_random_host(&rng, H * K, F);
    hb2 = tu_random_host(&rng, K, F);
    n.x = mat_of(hx, B, D, F);
    n.w1 = mat_of(hw1, D, H, F);
    n.b1 = mat_of(hb1, 1, H, F);
    n.w2 = mat_of(hw2, H, K, F);
    n.b2 = mat_of(hb2, 1, K, F);
    n.y = mat_of(hy, B, 1, F);
    n.z1 = poisoned(B, H, F);
    n.a1 = poisoned(B, H, F);
    n.z2 = poisoned(B, K, F);
    n.loss = poisoned(1, 1, F);
    n.dz2 = poisoned(B, K, F);
    n.dw2 = poisoned(H, K, F);
    n.db2 = poisoned(1, K, F);
    n.dz1 = poisoned(B, H, F);
    n.dw1 = poisoned(D, H, F);
    n.db1 = poisoned(1, H, F);
    n.dx = poisoned(B, D, F);

    two_layer_forward(&n);
    two_layer_backward(&n);
    struct {
        const char *name;
        gpumat_matrix *param, *grad;
        double *host;
        size_t count;
    } checks[] = {
        {"dX", n.x, n.dx, hx, B * D},     {"dW1", n.w1, n.dw1, hw1, D * H},
        {"db1", n.b1, n.db1, hb1, H},     {"dW2", n.w2, n.dw2, hw2, H * K},
        {"db2", n.b2, n.db2, hb2, K},
    };
    for (size_t c = 0; c < sizeof checks / sizeof checks[0]; ++c) {
        double *g = fetch(checks[c].grad), *h = checks[c].host;
        for (size_t i = 0; i < checks[c].count; ++i) {
            double keep = h[i];
            h[i] = keep + FD_H;
            TU_CHECK_OK(tu_upload(checks[c].param, h));
            double up = two_layer_forward(&n);
            h[i] = keep - FD_H;
            TU_CHECK_OK(tu_upload(checks[c].param, h));
            double down = two_layer_forward(&n);
            h[i] = keep;
            TU_CHECK_OK(tu_upload(checks[c].param, h));
            char what[64];
            snprintf(what, sizeof what, "two-layer network %s", checks[c].name);
            expect_gradient(what, i, g[i], (up - down) / (2 * FD_H));
        }
        free(g);
    }
    gpumat_matrix *all[] = {n.x,   n.w1,  n.b1,  n.w2,  n.b2,  n.y,   n.z1,  n.a1, n.z2,
                            n.loss, n.dz2, n.dw2, n.db2, n.dz1, n.dw1, n.db1, n.dx};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; ++i)
        gpumat_matrix_destroy(all[i]);
    free(hx);
    free(hw1);
    free(hb1);
    free(hw2);
    free(hb2);
    free(hy);
}

int main(void)
{
    tu_init("test_nn");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_geam_f32),
        cmocka_unit_test(test_geam_f64),
        cmocka_unit_test(test_geam_in_place_f32),
        cmocka_unit_test(test_geam_in_place_f64),
        cmocka_unit_test(test_sub_scale_axpy_f32),
        cmocka_unit_test(test_sub_scale_axpy_f64),
        cmocka_unit_test(test_hadamard_f32),
        cmocka_unit_test(test_hadamard_f64),
        cmocka_unit_test(test_relu_f32),
        cmocka_unit_test(test_relu_f64),
        cmocka_unit_test(test_add_row_vector_f32),
        cmocka_unit_test(test_add_row_vector_f64),
        cmocka_unit_test(test_sum_cols_f32),
        cmocka_unit_test(test_sum_cols_f64),
        cmocka_unit_test(test_sum_cols_exact_f32),
        cmocka_unit_test(test_sum_cols_exact_f64),
        cmocka_unit_test(test_softmax_f32),
        cmocka_unit_test(test_softmax_f64),
        cmocka_unit_test(test_argmax_f32),
        cmocka_unit_test(test_argmax_f64),
        cmocka_unit_test(test_xent_f32),
        cmocka_unit_test(test_xent_f64),
        cmocka_unit_test(test_xent_bad_labels),
        cmocka_unit_test(test_gather_f32),
        cmocka_unit_test(test_gather_f64),
        cmocka_unit_test(test_adam_f32),
        cmocka_unit_test(test_adam_f64),
        cmocka_unit_test(test_errors_elementwise),
        cmocka_unit_test(test_errors_nn),
        cmocka_unit_test(test_gradcheck_relu),
        cmocka_unit_test(test_gradcheck_xent),
        cmocka_unit_test(test_gradcheck_two_layer),
    };
    return cmocka_run_group_tests_name("neural-network operations", tests, group_setup,
                                       group_teardown);
}
