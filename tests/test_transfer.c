/*
 * test_transfer.c - uploads and downloads on every path: direct, staged
 * through the pinned areas by one or several copy threads (forced with
 * GPUMAT_TRANSFER=staged and GPUMAT_TRANSFER_THREADS,
 * since PoCL shares host memory and would otherwise go direct), and from
 * gpumat_host_alloc() memory; sizes around the staging chunk boundaries.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gpumat_internal.h"
#include "test_util.h"

static const size_t chunk_floats = GPUMAT__STAGING_CHUNK / sizeof(float);

static void fill(tu_rng *rng, float *x, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        x[i] = (float)tu_rng_uniform(rng);
}

/* Uploads random data, transposes nothing: downloads it back through the
 * same path into a poisoned buffer and compares bit for bit.  A copy on
 * the device in between makes sure the upload really reached the device. */
static void round_trip(gpumat_context *ctx, size_t rows, size_t cols, float *src, float *dst,
                       uint64_t stream)
{
    tu_rng rng;
    tu_rng_init(&rng, stream);
    size_t n = rows * cols;
    fill(&rng, src, n);
    memset(dst, 0xff, n * sizeof *dst); /* NaN pattern */
    gpumat_matrix *a = NULL, *b = NULL;
    assert_int_equal(gpumat_matrix_create(ctx, rows, cols, GPUMAT_F32, &a), GPUMAT_OK);
    assert_int_equal(gpumat_matrix_create(ctx, rows, cols, GPUMAT_F32, &b), GPUMAT_OK);
    assert_int_equal(tu_poison(b), GPUMAT_OK);
    assert_int_equal(gpumat_matrix_upload(a, src), GPUMAT_OK);
    memset(src + n / 2, 0, sizeof *src); /* the caller may reuse its buffer at once */
    src[n / 2] = dst[0];
    assert_int_equal(gpumat_copy(b, a), GPUMAT_OK);
    assert_int_equal(gpumat_matrix_download(b, dst), GPUMAT_OK);
    tu_rng_init(&rng, stream);
    fill(&rng, src, n);
    for (size_t i = 0; i < n; ++i)
        if (memcmp(&src[i], &dst[i], sizeof *src) != 0)
            fail_msg("%zux%zu: element %zu is %g, expected %g", rows, cols, i, (double)dst[i],
                     (double)src[i]);
    gpumat_matrix_destroy(a);
    gpumat_matrix_destroy(b);
}

static void sizes_on(gpumat_context *ctx, float *src, float *dst)
{
    const size_t sizes[][2] = {
        {1, 1}, {1, 5}, {7, 1}, {1023, 777}, {1, chunk_floats - 1}, {1, chunk_floats},
        {1, chunk_floats + 1}, {2, chunk_floats + 3}, {3, chunk_floats - 5},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; ++i)
        round_trip(ctx, sizes[i][0], sizes[i][1], src, dst, 100 + i);
}

/* Many chunks: every copy thread reuses its two areas several times, and
 * the last chunk is short. */
static void many_chunks_on(gpumat_context *ctx, float *src, float *dst)
{
    round_trip(ctx, 1, 11 * chunk_floats + 7, src, dst, 200);
    round_trip(ctx, 3, (5 * chunk_floats) / 3 + 1, src, dst, 201);
}

static void with_mode(const char *mode, const char *threads)
{
    setenv("GPUMAT_TRANSFER", mode, 1);
    if (threads)
        setenv("GPUMAT_TRANSFER_THREADS", threads, 1);
    gpumat_context *ctx = NULL;
    assert_int_equal(gpumat_context_create(&ctx, NULL), GPUMAT_OK);
    size_t most = threads ? 11 * chunk_floats + 7 : 3 * (chunk_floats + 3);
    float *src = malloc(most * sizeof *src), *dst = malloc(most * sizeof *dst);
    assert_non_null(src);
    assert_non_null(dst);
    sizes_on(ctx, src, dst);
    if (threads)
        many_chunks_on(ctx, src, dst);
    free(src);
    free(dst);
    gpumat_context_destroy(ctx);
    unsetenv("GPUMAT_TRANSFER");
    unsetenv("GPUMAT_TRANSFER_THREADS");
}

static void test_direct(void **state)
{
    (void)state;
    with_mode("direct", NULL);
}

static void test_staged(void **state)
{
    (void)state;
    with_mode("staged", NULL);
}

/* One copy thread, and three: the chunks then complete out of order. */
static void test_staged_threads(void **state)
{
    (void)state;
    with_mode("staged", "1");
    with_mode("staged", "3");
}

static void test_pinned_host_memory(void **state)
{
    (void)state;
    setenv("GPUMAT_TRANSFER", "staged", 1); /* pinned memory must bypass staging anyway */
    gpumat_context *ctx = NULL;
    assert_int_equal(gpumat_context_create(&ctx, NULL), GPUMAT_OK);
    size_t most = 3 * (chunk_floats + 3);
    void *src = NULL, *dst = NULL;
    assert_int_equal(gpumat_host_alloc(ctx, most * sizeof(float), &src), GPUMAT_OK);
    assert_int_equal(gpumat_host_alloc(ctx, most * sizeof(float), &dst), GPUMAT_OK);
    assert_non_null(src);
    assert_non_null(dst);
    sizes_on(ctx, src, dst);
    assert_int_equal(gpumat_host_free(ctx, src), GPUMAT_OK);
    assert_int_equal(gpumat_host_free(ctx, dst), GPUMAT_OK);
    gpumat_context_destroy(ctx);
    unsetenv("GPUMAT_TRANSFER");
}

static void test_host_alloc_errors(void **state)
{
    (void)state;
    gpumat_context *ctx = NULL;
    assert_int_equal(gpumat_context_create(&ctx, NULL), GPUMAT_OK);
    void *p = (void *)1;
    assert_int_equal(gpumat_host_alloc(NULL, 16, &p), GPUMAT_ERR_INVALID_ARGUMENT);
    assert_null(p);
    assert_int_equal(gpumat_host_alloc(ctx, 16, NULL), GPUMAT_ERR_INVALID_ARGUMENT);
    assert_int_equal(gpumat_host_alloc(ctx, 0, &p), GPUMAT_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(gpumat_last_error(ctx), "bytes is 0"));
    int stack = 0;
    assert_int_equal(gpumat_host_free(ctx, &stack), GPUMAT_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(gpumat_last_error(ctx), "not allocated by gpumat_host_alloc"));
    assert_int_equal(gpumat_host_free(ctx, NULL), GPUMAT_OK);
    assert_int_equal(gpumat_host_free(NULL, &stack), GPUMAT_ERR_INVALID_ARGUMENT);
    /* An allocation left behind is freed with its context (ASan checks). */
    assert_int_equal(gpumat_host_alloc(ctx, 64, &p), GPUMAT_OK);
    gpumat_context_destroy(ctx);
}

int main(void)
{
    tu_init("test_transfer");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_direct),
        cmocka_unit_test(test_staged),
        cmocka_unit_test(test_staged_threads),
        cmocka_unit_test(test_pinned_host_memory),
        cmocka_unit_test(test_host_alloc_errors),
    };
    return cmocka_run_group_tests_name("transfer", tests, NULL, NULL);
}
