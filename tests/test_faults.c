/*
 * test_faults.c - GEMM when the device refuses memory.  gpumat.h promises
 * that a failed call leaves every object as it was, and the copies that
 * only speed a product up (the CPU kernels' panels, NVIDIA's transposed
 * copies of A) are optional: without room for them the product runs in
 * place and succeeds.
 *
 * This program defines clCreateBuffer, clCreateKernel, clGetDeviceIDs and
 * clGetDeviceInfo itself: the
 * library, linked in statically, calls these, which pass every call on to
 * the OpenCL loader's (dlsym RTLD_NEXT) except while a test has armed
 * them.  Each GEMM test first runs its product once (so that programs are
 * built and the context's scratch exists), gives the scratch back with
 * gpumat_context_trim() so that the next product must allocate again,
 * then arms the refusal around that product.  The nvidia-gpu parameters
 * are forced on whatever device runs the tests (their kernels are
 * portable; PoCL's two compute units make 640 x 384 a split product).
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpumat.h" /* and through it, CL/cl.h */
#include "test_util.h"

#define MSG_SIZE 1024

static int g_armed;    /* while set, clCreateBuffer refuses */
static int g_refused;  /* how many it refused */
static const char *g_refused_kernel; /* clCreateKernel refuses this name */
static cl_device_info g_refused_query; /* clGetDeviceInfo refuses this (0: none) */
static int g_refuse_device_ids;        /* while set, clGetDeviceIDs refuses */

/* The loader's function `name` (into *fn, a function pointer), or false
 * with *err set. */
static bool loader_function(const char *name, void *fn, size_t size, cl_int *err)
{
    void *sym = dlsym(RTLD_NEXT, name);
    if (!sym) {
        if (err)
            *err = CL_OUT_OF_HOST_MEMORY;
        return false;
    }
    memcpy(fn, &sym, size);
    return true;
}

/* A refusal: the error, a count, and no object. */
static void *refuse(cl_int code, cl_int *err)
{
    ++g_refused;
    if (err)
        *err = code;
    return NULL;
}

CL_API_ENTRY cl_mem CL_API_CALL clCreateBuffer(cl_context context, cl_mem_flags flags,
                                               size_t size, void *host_ptr,
                                               cl_int *errcode_ret)
{
    cl_mem(CL_API_CALL * real)(cl_context, cl_mem_flags, size_t, void *, cl_int *);
    if (g_armed)
        return refuse(CL_MEM_OBJECT_ALLOCATION_FAILURE, errcode_ret);
    if (!loader_function("clCreateBuffer", &real, sizeof real, errcode_ret))
        return NULL;
    return real(context, flags, size, host_ptr, errcode_ret);
}

CL_API_ENTRY cl_kernel CL_API_CALL clCreateKernel(cl_program program, const char *kernel_name,
                                                  cl_int *errcode_ret)
{
    cl_kernel(CL_API_CALL * real)(cl_program, const char *, cl_int *);
    if (g_refused_kernel && kernel_name && strcmp(kernel_name, g_refused_kernel) == 0)
        return refuse(CL_OUT_OF_HOST_MEMORY, errcode_ret);
    if (!loader_function("clCreateKernel", &real, sizeof real, errcode_ret))
        return NULL;
    return real(program, kernel_name, errcode_ret);
}

CL_API_ENTRY cl_int CL_API_CALL clGetDeviceInfo(cl_device_id device, cl_device_info param,
                                                size_t size, void *value, size_t *size_ret)
{
    cl_int(CL_API_CALL * real)(cl_device_id, cl_device_info, size_t, void *, size_t *);
    cl_int err = CL_SUCCESS;
    if (g_refused_query && param == g_refused_query) {
        refuse(CL_OUT_OF_RESOURCES, &err);
        return err;
    }
    if (!loader_function("clGetDeviceInfo", &real, sizeof real, &err))
        return err;
    return real(device, param, size, value, size_ret);
}

CL_API_ENTRY cl_int CL_API_CALL clGetDeviceIDs(cl_platform_id platform, cl_device_type type,
                                               cl_uint entries, cl_device_id *devices,
                                               cl_uint *count)
{
    cl_int(CL_API_CALL * real)(cl_platform_id, cl_device_type, cl_uint, cl_device_id *,
                               cl_uint *);
    cl_int err = CL_SUCCESS;
    if (g_refuse_device_ids) {
        refuse(CL_OUT_OF_RESOURCES, &err);
        return err;
    }
    if (!loader_function("clGetDeviceIDs", &real, sizeof real, &err))
        return err;
    return real(platform, type, entries, devices, count);
}

static tu_saved_env g_saved[3];

static int group_setup(void **state)
{
    (void)state;
    tu_env_save(&g_saved[0], "GPUMAT_PROFILE");
    tu_env_save(&g_saved[1], "GPUMAT_KERNEL_PARAMS");
    tu_env_save(&g_saved[2], "GPUMAT_TUNING");
    tu_env_set("GPUMAT_TUNING", "off");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    for (int i = 0; i < 3; ++i)
        tu_env_restore(&g_saved[i]);
    return 0;
}

/* A native-backend context under `profile` (NULL: the device's own) and
 * `params`. */
static gpumat_context *context(const char *profile, const char *params)
{
    tu_env_set("GPUMAT_PROFILE", profile);
    tu_env_set("GPUMAT_KERNEL_PARAMS", params);
    gpumat_options o;
    gpumat_options_init(&o);
    o.gemm_backend = GPUMAT_GEMM_NATIVE;
    gpumat_context *ctx = NULL;
    gpumat_status s = gpumat_context_create(&ctx, &o);
    tu_env_set("GPUMAT_PROFILE", NULL);
    tu_env_set("GPUMAT_KERNEL_PARAMS", NULL);
    if (s != GPUMAT_OK)
        fail_msg("context (%s, %s): %s: %s", profile ? profile : "default",
                 params ? params : "", gpumat_strerror(s), gpumat_last_error(NULL));
    return ctx;
}

/* The product once as a warm-up, then again with every allocation
 * refused; returns the second call's status, with g still prepared (its
 * C as that call left it). */
static gpumat_status refused_run(gpumat_context *ctx, tu_rng *rng, size_t m, size_t n, size_t k,
                                 tu_gemm_case *g)
{
    char msg[MSG_SIZE];
    if (!tu_check_gemm(ctx, rng, m, n, k, 0, 0, 1.5, 0.5, msg, sizeof msg))
        fail_msg("warm-up: %s", msg);
    TU_CHECK_OK(gpumat_context_trim(ctx));
    TU_CHECK_OK(tu_gemm_prepare(ctx, rng, m, n, k, 0, 0, 1.5, 0.5, g));
    g_refused = 0;
    g_armed = 1;
    gpumat_status s = tu_gemm_run(g);
    g_armed = 0;
    if (g_refused == 0)
        fail_msg("gemm %zux%zux%zu made no allocation to refuse: the test no longer reaches "
                 "the path it is for", m, n, k);
    return s;
}

/* Optional copies: the product succeeds without them, and is right. */
static void expect_runs_in_place(gpumat_context *ctx, size_t m, size_t n, size_t k)
{
    tu_rng rng;
    tu_rng_init(&rng, 1);
    tu_gemm_case g;
    gpumat_status s = refused_run(ctx, &rng, m, n, k, &g);
    char msg[MSG_SIZE];
    if (!tu_gemm_check(&g, s, msg, sizeof msg))
        fail_msg("with its copies refused: %s", msg);
}

static void test_cpu_panels_refused(void **state)
{
    (void)state;
    /* The cpu profile's packed kernels, in passes of 64 values of k. */
    gpumat_context *ctx = context("cpu", "CPACK=1,CKC=64");
    expect_runs_in_place(ctx, 150, 130, 200);
    gpumat_context_destroy(ctx);
}

static void test_transposed_copy_refused(void **state)
{
    (void)state;
    /* Every float NN product on the big tile as TN on a copy of A^T. */
    gpumat_context *ctx = context("nvidia-gpu", "PACKA=1,SMALLPCT=1,SKG=0");
    expect_runs_in_place(ctx, 256, 512, 128);
    gpumat_context_destroy(ctx);
}

/* Stream-K's scratch is not optional: the call fails, names it, and C
 * keeps every value it had (the plain part, queued after the scratch,
 * never ran). */
static void test_split_scratch_refused(void **state)
{
    (void)state;
    gpumat_context *ctx = context("nvidia-gpu", "SMALLPCT=1,SKFILL=100,SKFILL64=100");
    tu_rng rng;
    tu_rng_init(&rng, 2);
    tu_gemm_case g;
    gpumat_status s = refused_run(ctx, &rng, 640, 384, 64, &g);
    if (s != GPUMAT_ERR_OUT_OF_MEMORY || !strstr(gpumat_last_error(ctx), "stream-K"))
        fail_msg("expected GPUMAT_ERR_OUT_OF_MEMORY naming the stream-K scratch, got %d (%s): "
                 "%s", (int)s, gpumat_strerror(s), gpumat_last_error(ctx));
    double *out = malloc(640 * 384 * sizeof *out);
    assert_non_null(out);
    TU_CHECK_OK(tu_download(g.c, out));
    char msg[MSG_SIZE];
    int same = tu_compare("c after the failed gemm", 640, 384, out, g.hc, NULL, 0, msg, sizeof msg);
    free(out);
    tu_gemm_free(&g);
    gpumat_context_destroy(ctx);
    if (!same)
        fail_msg("%s", msg);
}

/* softmax_cross_entropy with the loss runs two kernels, the first
 * writing dlogits (here logits itself, in place); the second's kernel is
 * refused on a fresh context: the call fails and logits keeps its
 * values. */
static void test_second_kernel_refused(void **state)
{
    (void)state;
    gpumat_context *ctx = context(NULL, NULL);
    enum { ROWS = 37, CLASSES = 11 };
    tu_rng rng;
    tu_rng_init(&rng, 3);
    gpumat_matrix *logits, *labels, *loss;
    double *hl, hy[ROWS];
    TU_CHECK_OK(tu_random_matrix(ctx, &rng, ROWS, CLASSES, GPUMAT_F32, &logits, &hl));
    for (size_t i = 0; i < ROWS; ++i)
        hy[i] = (double)(tu_rng_next(&rng) % CLASSES);
    TU_CHECK_OK(gpumat_matrix_create(ctx, ROWS, 1, GPUMAT_F32, &labels));
    TU_CHECK_OK(tu_upload(labels, hy));
    TU_CHECK_OK(gpumat_matrix_create(ctx, 1, 1, GPUMAT_F32, &loss));
    g_refused = 0;
    g_refused_kernel = "sum_scaled";
    gpumat_status s = gpumat_softmax_cross_entropy(loss, logits, logits, labels);
    g_refused_kernel = NULL;
    if (g_refused == 0)
        fail_msg("softmax_cross_entropy never created sum_scaled: the test no longer reaches "
                 "the path it is for");
    if (s == GPUMAT_OK)
        fail_msg("softmax_cross_entropy succeeded without its second kernel");
    double out[ROWS * CLASSES];
    TU_CHECK_OK(tu_download(logits, out));
    char msg[MSG_SIZE];
    int same = tu_compare("logits after the failed softmax_cross_entropy", ROWS, CLASSES, out, hl,
                          NULL, 0, msg, sizeof msg);
    gpumat_matrix_destroy(logits);
    gpumat_matrix_destroy(labels);
    gpumat_matrix_destroy(loss);
    free(hl);
    gpumat_context_destroy(ctx);
    if (!same)
        fail_msg("%s", msg);
}

/* A context whose device does not say what it is (its type, limits or
 * extensions decide the kernels and whether double works) is refused,
 * naming the query, rather than made on guesses. */
static void test_device_query_refused(void **state)
{
    (void)state;
    static const struct {
        cl_device_info param;
        const char *name;
    } queries[] = {{CL_DEVICE_TYPE, "CL_DEVICE_TYPE"},
                   {CL_DEVICE_EXTENSIONS, "CL_DEVICE_EXTENSIONS"},
                   {CL_DEVICE_LOCAL_MEM_SIZE, "CL_DEVICE_LOCAL_MEM_SIZE"}};
    for (size_t i = 0; i < sizeof queries / sizeof queries[0]; ++i) {
        gpumat_context *ctx = (gpumat_context *)(uintptr_t)1;
        g_refused = 0;
        g_refused_query = queries[i].param;
        gpumat_status s = gpumat_context_create(&ctx, NULL);
        g_refused_query = 0;
        if (s == GPUMAT_OK) {
            gpumat_context_destroy(ctx);
            fail_msg("%s refused: context_create succeeded", queries[i].name);
        }
        assert_null(ctx);
        if (s != GPUMAT_ERR_OPENCL || !strstr(gpumat_last_error(NULL), queries[i].name) ||
            !strstr(gpumat_last_error(NULL), "CL_OUT_OF_RESOURCES"))
            fail_msg("%s refused: %d (%s): %s", queries[i].name, (int)s, gpumat_strerror(s),
                     gpumat_last_error(NULL));
    }
    /* And with the queries answered again, contexts work. */
    gpumat_context *ctx = context(NULL, NULL);
    gpumat_context_destroy(ctx);
}

/* Drivers that fail to list their devices: not "no device", but their
 * error. */
static void test_device_listing_refused(void **state)
{
    (void)state;
    size_t count = 1;
    g_refuse_device_ids = 1;
    gpumat_status s = gpumat_device_list(NULL, 0, &count);
    g_refuse_device_ids = 0;
    if (s != GPUMAT_ERR_OPENCL || count != 0 ||
        !strstr(gpumat_last_error(NULL), "clGetDeviceIDs") ||
        !strstr(gpumat_last_error(NULL), "CL_OUT_OF_RESOURCES"))
        fail_msg("clGetDeviceIDs refused: %d (%s), count %zu: %s", (int)s, gpumat_strerror(s),
                 count, gpumat_last_error(NULL));
    TU_CHECK_OK(gpumat_device_list(NULL, 0, &count));
    assert_true(count > 0);
}

int main(void)
{
    tu_init("test_faults");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpu_panels_refused),
        cmocka_unit_test(test_transposed_copy_refused),
        cmocka_unit_test(test_split_scratch_refused),
        cmocka_unit_test(test_second_kernel_refused),
        cmocka_unit_test(test_device_query_refused),
        cmocka_unit_test(test_device_listing_refused),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
