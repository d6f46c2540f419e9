/*
 * test_interop.c - libgpumat on the caller's own OpenCL objects:
 * gpumat_context_wrap around a cl_context and in-order queue made here with
 * raw OpenCL, operations on it, results read both through
 * gpumat_matrix_download and through gpumat_matrix_cl_mem +
 * clEnqueueReadBuffer, data written with clEnqueueWriteBuffer and used by
 * libgpumat, the accessors returning the caller's objects, and the caller's
 * objects staying valid (and their reference counts restored) after
 * gpumat_context_destroy.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpumat.h"
#include "test_util.h"

#define MSG_SIZE 1024
#define NOT_NULL_SENTINEL ((void *)(uintptr_t)0x1)

typedef struct raw_cl {
    cl_platform_id platform;
    cl_device_id device;
    cl_context ctx;
    cl_command_queue queue;
    char device_name[256];
} raw_cl;

static raw_cl g_cl;
static tu_rng g_rng;

/* OpenCL 2.0+ platforms create queues with properties; 1.x ones need the
 * older call, which is looked up by name to keep the build warning-free. */
static cl_command_queue make_queue(cl_context ctx, cl_device_id dev, cl_platform_id platform,
                                   cl_command_queue_properties props, cl_int *err)
{
    char version[128] = "";
    clGetPlatformInfo(platform, CL_PLATFORM_VERSION, sizeof version, version, NULL);
    int major = 1;
    if (strncmp(version, "OpenCL ", 7) == 0)
        major = atoi(version + 7);
    if (major >= 2) {
        cl_queue_properties qp[] = {CL_QUEUE_PROPERTIES, (cl_queue_properties)props, 0};
        return clCreateCommandQueueWithProperties(ctx, dev, props ? qp : NULL, err);
    }
    typedef cl_command_queue(CL_API_CALL * create_fn)(cl_context, cl_device_id,
                                                      cl_command_queue_properties, cl_int *);
    void *addr = clGetExtensionFunctionAddressForPlatform(platform, "clCreateCommandQueue");
    if (!addr) {
        *err = CL_INVALID_OPERATION;
        return NULL;
    }
    create_fn fn;
    memcpy(&fn, &addr, sizeof fn);
    return fn(ctx, dev, props, err);
}

/* The first device of the first platform that has one. */
static int group_setup(void **state)
{
    (void)state;
    tu_rng_init(&g_rng, 4);
    cl_uint np = 0;
    if (clGetPlatformIDs(0, NULL, &np) != CL_SUCCESS || np == 0) {
        print_error("no OpenCL platform\n");
        return -1;
    }
    cl_platform_id *plats = calloc(np, sizeof *plats);
    if (!plats || clGetPlatformIDs(np, plats, NULL) != CL_SUCCESS) {
        free(plats);
        return -1;
    }
    for (cl_uint i = 0; i < np && !g_cl.device; ++i) {
        cl_device_id dev;
        cl_uint nd = 0;
        if (clGetDeviceIDs(plats[i], CL_DEVICE_TYPE_ALL, 1, &dev, &nd) == CL_SUCCESS &&
            nd > 0) {
            g_cl.platform = plats[i];
            g_cl.device = dev;
        }
    }
    free(plats);
    if (!g_cl.device) {
        print_error("no OpenCL device\n");
        return -1;
    }
    clGetDeviceInfo(g_cl.device, CL_DEVICE_NAME, sizeof g_cl.device_name, g_cl.device_name,
                    NULL);
    cl_int err;
    cl_context_properties cp[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)g_cl.platform,
                                  0};
    g_cl.ctx = clCreateContext(cp, 1, &g_cl.device, NULL, NULL, &err);
    if (!g_cl.ctx) {
        print_error("clCreateContext: %d\n", (int)err);
        return -1;
    }
    g_cl.queue = make_queue(g_cl.ctx, g_cl.device, g_cl.platform, 0, &err);
    if (!g_cl.queue) {
        print_error("creating the queue: %d\n", (int)err);
        clReleaseContext(g_cl.ctx);
        return -1;
    }
    print_message("raw OpenCL device: \"%s\"\n", g_cl.device_name);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    int rc = 0;
    /* The caller's objects outlive every gpumat context made on them. */
    cl_uint refs = 0;
    if (clGetContextInfo(g_cl.ctx, CL_CONTEXT_REFERENCE_COUNT, sizeof refs, &refs, NULL) !=
        CL_SUCCESS) {
        print_error("the caller's cl_context is no longer valid\n");
        rc = -1;
    }
    if (clReleaseCommandQueue(g_cl.queue) != CL_SUCCESS)
        rc = -1;
    if (clReleaseContext(g_cl.ctx) != CL_SUCCESS)
        rc = -1;
    return rc;
}

static cl_uint context_refs(cl_context c)
{
    cl_uint refs = 0;
    TU_CHECK_CL(clGetContextInfo(c, CL_CONTEXT_REFERENCE_COUNT, sizeof refs, &refs, NULL));
    return refs;
}

static cl_uint queue_refs(cl_command_queue q)
{
    cl_uint refs = 0;
    TU_CHECK_CL(clGetCommandQueueInfo(q, CL_QUEUE_REFERENCE_COUNT, sizeof refs, &refs, NULL));
    return refs;
}

static gpumat_context *wrap(gpumat_gemm_backend backend, int *skipped)
{
    gpumat_options opt;
    gpumat_options_init(&opt);
    opt.gemm_backend = backend;
    gpumat_context *ctx = NOT_NULL_SENTINEL;
    gpumat_status s = gpumat_context_wrap(&ctx, g_cl.ctx, g_cl.queue, &opt);
    if (s == GPUMAT_ERR_UNSUPPORTED && backend == GPUMAT_GEMM_CLBLAST && skipped) {
        assert_null(ctx);
        *skipped = 1;
        return NULL;
    }
    if (s != GPUMAT_OK)
        fail_msg("gpumat_context_wrap(%s) -> %d (%s): %s", tu_backend_name(backend), (int)s,
                 gpumat_strerror(s), gpumat_last_error(NULL));
    assert_non_null(ctx);
    return ctx;
}

/* Reads a matrix with raw OpenCL on the caller's queue, widened to double. */
static void raw_read(const gpumat_matrix *m, double *out)
{
    size_t n = gpumat_matrix_rows(m) * gpumat_matrix_cols(m);
    size_t es = gpumat_dtype_size(gpumat_matrix_dtype(m));
    cl_mem buf = gpumat_matrix_cl_mem(m);
    assert_non_null(buf);
    void *h = malloc(n * es);
    assert_non_null(h);
    /* In-order queue: the read comes after every operation enqueued on it. */
    TU_CHECK_CL(clEnqueueReadBuffer(g_cl.queue, buf, CL_TRUE, 0, n * es, h, 0, NULL, NULL));
    for (size_t i = 0; i < n; ++i)
        out[i] = es == 4 ? (double)((float *)h)[i] : ((double *)h)[i];
    free(h);
}

/* Writes a matrix with raw OpenCL on the caller's queue. */
static void raw_write(gpumat_matrix *m, const double *in)
{
    size_t n = gpumat_matrix_rows(m) * gpumat_matrix_cols(m);
    size_t es = gpumat_dtype_size(gpumat_matrix_dtype(m));
    void *h = malloc(n * es);
    assert_non_null(h);
    for (size_t i = 0; i < n; ++i) {
        if (es == 4)
            ((float *)h)[i] = (float)in[i];
        else
            ((double *)h)[i] = in[i];
    }
    TU_CHECK_CL(clEnqueueWriteBuffer(g_cl.queue, gpumat_matrix_cl_mem(m), CL_TRUE, 0, n * es, h,
                                  0, NULL, NULL));
    free(h);
}

/* The reference counts of the caller's context and queue once no command
 * is in flight: a driver may drop a finished command's references from a
 * worker thread after clFinish returns (PoCL does), so the counts are read
 * again, for up to 2 s, until they are at most `refs_max` and `qrefs_max`. */
static void settled_refs(cl_uint refs_max, cl_uint qrefs_max, cl_uint *refs, cl_uint *qrefs)
{
    TU_CHECK_CL(clFinish(g_cl.queue));
    double end = tu_now() + 2.0;
    for (;;) {
        *refs = context_refs(g_cl.ctx);
        *qrefs = queue_refs(g_cl.queue);
        if ((*refs <= refs_max && *qrefs <= qrefs_max) || tu_now() >= end)
            return;
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    }
}

/* The counts before a wrap: the test holds the one reference to its queue. */
static void refs_before(cl_uint *refs, cl_uint *qrefs) { settled_refs(UINT_MAX, 1, refs, qrefs); }

/* After gpumat_context_destroy the caller's objects have exactly the
 * references they had before the wrap: anything more is a leak that keeps
 * the caller's context alive forever. */
static void expect_refs_restored(cl_uint refs0, cl_uint qrefs0, const char *backend)
{
    cl_uint refs, qrefs;
    settled_refs(refs0, qrefs0, &refs, &qrefs);
    if (refs != refs0 || qrefs != qrefs0)
        fail_msg("after gpumat_context_destroy (%s backend) the caller's cl_context has %u "
                 "references (%u before the wrap) and its queue %u (%u before): libgpumat "
                 "(or a backend it loaded, e.g. CLBlast's program cache) still holds them",
                 backend, refs, refs0, qrefs, qrefs0);
}

static void compare_or_fail(const char *what, size_t rows, size_t cols, const double *out,
                            const double *ref, const double *scale, double tol)
{
    char msg[MSG_SIZE];
    if (!tu_compare(what, rows, cols, out, ref, scale, tol, msg, sizeof msg))
        fail_msg("%s", msg);
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_wrap_null_arguments(void **state)
{
    (void)state;
    gpumat_context *c = NOT_NULL_SENTINEL;
    assert_int_equal(gpumat_context_wrap(&c, NULL, g_cl.queue, NULL),
                     GPUMAT_ERR_INVALID_ARGUMENT);
    assert_null(c);
    assert_true(gpumat_last_error(NULL)[0] != '\0');
    c = NOT_NULL_SENTINEL;
    assert_int_equal(gpumat_context_wrap(&c, g_cl.ctx, NULL, NULL),
                     GPUMAT_ERR_INVALID_ARGUMENT);
    assert_null(c);
    c = NOT_NULL_SENTINEL;
    assert_int_equal(gpumat_context_wrap(&c, NULL, NULL, NULL), GPUMAT_ERR_INVALID_ARGUMENT);
    assert_null(c);
    assert_int_equal(gpumat_context_wrap(NULL, g_cl.ctx, g_cl.queue, NULL),
                     GPUMAT_ERR_INVALID_ARGUMENT);
    /* Nothing was retained by the failures. */
    cl_uint refs = context_refs(g_cl.ctx), qrefs = queue_refs(g_cl.queue);
    assert_int_equal(gpumat_context_wrap(&c, g_cl.ctx, NULL, NULL),
                     GPUMAT_ERR_INVALID_ARGUMENT);
    assert_int_equal(context_refs(g_cl.ctx), refs);
    assert_int_equal(queue_refs(g_cl.queue), qrefs);
}

static void test_wrap_accessors(void **state)
{
    (void)state;
    cl_uint refs0, qrefs0;
    refs_before(&refs0, &qrefs0);
    gpumat_context *ctx = wrap(GPUMAT_GEMM_NATIVE, NULL);
    assert_ptr_equal(gpumat_context_cl_context(ctx), g_cl.ctx);
    assert_ptr_equal(gpumat_context_cl_queue(ctx), g_cl.queue);
    assert_int_equal(gpumat_context_gemm_backend(ctx), GPUMAT_GEMM_NATIVE);
    /* libgpumat holds its own references while the context lives. */
    assert_true(context_refs(g_cl.ctx) > refs0);
    assert_true(queue_refs(g_cl.queue) > qrefs0);

    gpumat_device_info info;
    memset(&info, 0, sizeof info);
    TU_CHECK_OK(gpumat_context_device(ctx, &info));
    assert_true(info.name[0] != '\0');
    assert_memory_equal(info.name, g_cl.device_name, strlen(info.name));
    assert_non_null(gpumat_context_profile(ctx));
    assert_non_null(gpumat_context_build_options(ctx));
    if (info.type == GPUMAT_DEVICE_CPU)
        assert_true(strncmp(gpumat_context_profile(ctx), "cpu", 3) == 0);

    /* The matrices' buffers live in the caller's context. */
    gpumat_matrix *m;
    TU_CHECK_OK(gpumat_matrix_create(ctx, 13, 7, GPUMAT_F32, &m));
    cl_mem buf = gpumat_matrix_cl_mem(m);
    assert_non_null(buf);
    cl_context bctx = NULL;
    TU_CHECK_CL(clGetMemObjectInfo(buf, CL_MEM_CONTEXT, sizeof bctx, &bctx, NULL));
    assert_ptr_equal(bctx, g_cl.ctx);
    size_t size = 0;
    TU_CHECK_CL(clGetMemObjectInfo(buf, CL_MEM_SIZE, sizeof size, &size, NULL));
    assert_true(size >= 13 * 7 * sizeof(float));
    assert_ptr_equal(gpumat_matrix_context(m), ctx);
    gpumat_matrix_destroy(m);

    gpumat_context_destroy(ctx);
    /* Every reference libgpumat took is given back. */
    expect_refs_restored(refs0, qrefs0, "native");
}

static void ops_on_wrapped(gpumat_gemm_backend backend, gpumat_dtype dt)
{
    int skipped = 0;
    cl_uint refs0, qrefs0;
    refs_before(&refs0, &qrefs0);
    gpumat_context *ctx = wrap(backend, &skipped);
    if (skipped) {
        print_message("[  SKIPPED ] CLBlast unavailable: %s\n", gpumat_last_error(NULL));
        skip();
    }
    assert_int_equal(gpumat_context_gemm_backend(ctx), backend);
    if (dt == GPUMAT_F64 && !tu_has_fp64(ctx)) {
        gpumat_matrix *m = NOT_NULL_SENTINEL;
        assert_int_equal(gpumat_matrix_create(ctx, 2, 2, GPUMAT_F64, &m),
                         GPUMAT_ERR_UNSUPPORTED);
        assert_null(m);
        gpumat_context_destroy(ctx);
        return;
    }

    enum { M = 67, K = 61, N = 129 };
    gpumat_matrix *a, *b, *w, *sum, *prod, *t;
    double *ha, *hb, *hw;
    TU_CHECK_OK(tu_random_matrix(ctx, &g_rng, M, K, dt, &a, &ha));
    TU_CHECK_OK(gpumat_matrix_create(ctx, M, K, dt, &b));
    TU_CHECK_OK(gpumat_matrix_create(ctx, K, N, dt, &w));
    TU_CHECK_OK(gpumat_matrix_create(ctx, M, K, dt, &sum));
    TU_CHECK_OK(gpumat_matrix_create(ctx, M, N, dt, &prod));
    TU_CHECK_OK(gpumat_matrix_create(ctx, N, M, dt, &t));
    /* b and w arrive through raw OpenCL writes on the caller's queue. */
    hb = tu_random_host(&g_rng, M * K, dt);
    hw = tu_random_host(&g_rng, K * N, dt);
    assert_non_null(hb);
    assert_non_null(hw);
    raw_write(b, hb);
    raw_write(w, hw);
    TU_CHECK_OK(tu_poison(sum));
    TU_CHECK_OK(tu_poison(prod));
    TU_CHECK_OK(tu_poison(t));

    TU_CHECK_OK(gpumat_add(sum, a, b));
    TU_CHECK_OK(gpumat_multiply(prod, a, w));
    TU_CHECK_OK(gpumat_transpose(t, prod));

    static double out[M * N > M * K ? M * N : M * K], out2[M * N > M * K ? M * N : M * K];
    static double ref[M * N], scale[M * N], tref[N * M], sref[M * K], sscale[M * K];
    char what[128];
    const char *bn = tu_backend_name(backend), *dn = tu_dtype_name(dt);

    /* Raw reads first (no gpumat wait in between), then gpumat downloads. */
    tu_ref_add(ha, hb, sref, sscale, M * K);
    snprintf(what, sizeof what, "wrapped add %s (%s), clEnqueueReadBuffer", dn, bn);
    raw_read(sum, out);
    compare_or_fail(what, M, K, out, sref, sscale, tu_add_tolerance(dt));
    TU_CHECK_OK(tu_download(sum, out2));
    snprintf(what, sizeof what, "wrapped add %s (%s), download", dn, bn);
    compare_or_fail(what, M, K, out2, sref, sscale, tu_add_tolerance(dt));

    tu_ref_gemm(M, K, N, ha, hw, ref, scale);
    raw_read(prod, out);
    snprintf(what, sizeof what, "wrapped multiply %s (%s), clEnqueueReadBuffer", dn, bn);
    compare_or_fail(what, M, N, out, ref, scale, tu_gemm_tolerance(dt, K));
    TU_CHECK_OK(tu_download(prod, out2));
    snprintf(what, sizeof what, "wrapped multiply %s (%s), download", dn, bn);
    compare_or_fail(what, M, N, out2, out, NULL, 0.0); /* the same bits */

    tu_ref_transpose(M, N, out, tref);
    raw_read(t, out2);
    snprintf(what, sizeof what, "wrapped transpose %s (%s), clEnqueueReadBuffer", dn, bn);
    compare_or_fail(what, N, M, out2, tref, NULL, 0.0);
    TU_CHECK_OK(tu_download(t, out2));
    snprintf(what, sizeof what, "wrapped transpose %s (%s), download", dn, bn);
    compare_or_fail(what, N, M, out2, tref, NULL, 0.0);

    TU_CHECK_OK(gpumat_finish(ctx));
    gpumat_matrix_destroy(a);
    gpumat_matrix_destroy(b);
    gpumat_matrix_destroy(w);
    gpumat_matrix_destroy(sum);
    gpumat_matrix_destroy(prod);
    gpumat_matrix_destroy(t);
    free(ha);
    free(hb);
    free(hw);
    gpumat_context_destroy(ctx);
    expect_refs_restored(refs0, qrefs0, tu_backend_name(backend));
}

static void test_ops_native_f32(void **state)
{
    (void)state;
    ops_on_wrapped(GPUMAT_GEMM_NATIVE, GPUMAT_F32);
}
static void test_ops_native_f64(void **state)
{
    (void)state;
    ops_on_wrapped(GPUMAT_GEMM_NATIVE, GPUMAT_F64);
}
static void test_ops_clblast_f32(void **state)
{
    (void)state;
    ops_on_wrapped(GPUMAT_GEMM_CLBLAST, GPUMAT_F32);
}
static void test_ops_clblast_f64(void **state)
{
    (void)state;
    ops_on_wrapped(GPUMAT_GEMM_CLBLAST, GPUMAT_F64);
}

/* Two gpumat contexts on the same OpenCL objects are still two contexts. */
static void test_two_wraps(void **state)
{
    (void)state;
    gpumat_context *c1 = wrap(GPUMAT_GEMM_NATIVE, NULL);
    gpumat_context *c2 = wrap(GPUMAT_GEMM_NATIVE, NULL);
    assert_ptr_not_equal(c1, c2);
    gpumat_matrix *a, *b, *c;
    double *ha, *hb;
    TU_CHECK_OK(tu_random_matrix(c1, &g_rng, 5, 5, GPUMAT_F32, &a, &ha));
    TU_CHECK_OK(tu_random_matrix(c2, &g_rng, 5, 5, GPUMAT_F32, &b, &hb));
    TU_CHECK_OK(gpumat_matrix_create(c1, 5, 5, GPUMAT_F32, &c));
    assert_int_equal(gpumat_add(c, a, b), GPUMAT_ERR_CONTEXT_MISMATCH);
    char msg[MSG_SIZE];
    int ok1 = tu_context_works(c1, GPUMAT_F32, &g_rng, msg, sizeof msg);
    if (!ok1)
        fail_msg("first wrap: %s", msg);
    gpumat_matrix_destroy(a);
    gpumat_matrix_destroy(c);
    free(ha);
    /* Destroying one leaves the other (and the caller's objects) working. */
    gpumat_context_destroy(c1);
    int ok2 = tu_context_works(c2, GPUMAT_F32, &g_rng, msg, sizeof msg);
    gpumat_matrix_destroy(b);
    free(hb);
    gpumat_context_destroy(c2);
    if (!ok2)
        fail_msg("second wrap after the first was destroyed: %s", msg);
}

/* After gpumat_context_destroy the caller's context and queue still work. */
static void test_caller_objects_survive(void **state)
{
    (void)state;
    gpumat_context *ctx = wrap(GPUMAT_GEMM_NATIVE, NULL);
    char msg[MSG_SIZE];
    if (!tu_context_works(ctx, GPUMAT_F32, &g_rng, msg, sizeof msg))
        fail_msg("%s", msg);
    gpumat_context_destroy(ctx);

    cl_uint ndev = 0;
    TU_CHECK_CL(clGetContextInfo(g_cl.ctx, CL_CONTEXT_NUM_DEVICES, sizeof ndev, &ndev, NULL));
    assert_int_equal(ndev, 1);
    TU_CHECK_CL(clFinish(g_cl.queue));
    cl_int err;
    enum { N = 257 };
    float in[N], out[N];
    for (int i = 0; i < N; ++i) {
        in[i] = (float)tu_rng_uniform(&g_rng);
        out[i] = 0.0f;
    }
    cl_mem buf = clCreateBuffer(g_cl.ctx, CL_MEM_READ_WRITE, sizeof in, NULL, &err);
    if (!buf)
        fail_msg("clCreateBuffer on the caller's context after destroy: %d", (int)err);
    TU_CHECK_CL(clEnqueueWriteBuffer(g_cl.queue, buf, CL_TRUE, 0, sizeof in, in, 0, NULL, NULL));
    TU_CHECK_CL(clEnqueueReadBuffer(g_cl.queue, buf, CL_TRUE, 0, sizeof out, out, 0, NULL, NULL));
    TU_CHECK_CL(clReleaseMemObject(buf));
    assert_memory_equal(in, out, sizeof in);
}

/* The contract requires an in-order queue; an out-of-order one must be
 * refused rather than silently give wrong orderings. */
static void test_wrap_out_of_order_queue(void **state)
{
    (void)state;
    cl_command_queue_properties supported = 0;
#ifdef CL_DEVICE_QUEUE_ON_HOST_PROPERTIES
    clGetDeviceInfo(g_cl.device, CL_DEVICE_QUEUE_ON_HOST_PROPERTIES, sizeof supported,
                    &supported, NULL);
#else
    clGetDeviceInfo(g_cl.device, CL_DEVICE_QUEUE_PROPERTIES, sizeof supported, &supported,
                    NULL);
#endif
    if (!(supported & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE)) {
        print_message("[  SKIPPED ] device has no out-of-order queues\n");
        skip();
    }
    cl_int err;
    cl_command_queue ooo = make_queue(g_cl.ctx, g_cl.device, g_cl.platform,
                                      CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE, &err);
    if (!ooo)
        fail_msg("creating an out-of-order queue: %d", (int)err);
    gpumat_context *c = NOT_NULL_SENTINEL;
    gpumat_status s = gpumat_context_wrap(&c, g_cl.ctx, ooo, NULL);
    if (s == GPUMAT_OK)
        gpumat_context_destroy(c);
    clReleaseCommandQueue(ooo);
    if (s != GPUMAT_ERR_INVALID_ARGUMENT)
        fail_msg("wrap with an out-of-order queue -> %d (%s), expected "
                 "GPUMAT_ERR_INVALID_ARGUMENT",
                 (int)s, gpumat_strerror(s));
    assert_null(c);
}

int main(void)
{
    tu_init("test_interop");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wrap_null_arguments),
        cmocka_unit_test(test_wrap_accessors),
        cmocka_unit_test(test_ops_native_f32),
        cmocka_unit_test(test_ops_native_f64),
        cmocka_unit_test(test_ops_clblast_f32),
        cmocka_unit_test(test_ops_clblast_f64),
        cmocka_unit_test(test_two_wraps),
        cmocka_unit_test(test_caller_objects_survive),
        cmocka_unit_test(test_wrap_out_of_order_queue),
    };
    return cmocka_run_group_tests_name("interop", tests, group_setup, group_teardown);
}
