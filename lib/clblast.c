/*
 * clblast.c - the optional CLBlast GEMM backend.
 *
 * CLBlast is loaded with dlopen() at run time, so libgpumat neither needs it
 * to build nor to run; a context that asks for it fails with a clear error
 * where it is missing.  The few declarations needed are restated here from
 * CLBlast's documented C API (clblast_c.h, CLBlast 1.x).
 */
#include "gpumat_internal.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

enum { CLBLAST_ROW_MAJOR = 101, CLBLAST_NO_TRANSPOSE = 111, CLBLAST_TRANSPOSE = 112 };

typedef int (*clblast_sgemm_fn)(int layout, int ta, int tb, size_t m, size_t n, size_t k,
                                float alpha, cl_mem a, size_t a_off, size_t lda, cl_mem b,
                                size_t b_off, size_t ldb, float beta, cl_mem c, size_t c_off,
                                size_t ldc, cl_command_queue *queue, cl_event *event);
typedef int (*clblast_dgemm_fn)(int layout, int ta, int tb, size_t m, size_t n, size_t k,
                                double alpha, cl_mem a, size_t a_off, size_t lda, cl_mem b,
                                size_t b_off, size_t ldb, double beta, cl_mem c, size_t c_off,
                                size_t ldc, cl_command_queue *queue, cl_event *event);

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static clblast_sgemm_fn sgemm;
static clblast_dgemm_fn dgemm;
static int (*clear_cache)(void);
static char load_error[512];

static void load(void)
{
    static const char *const names[] = {"libclblast.so.1", "libclblast.so"};
    void *handle = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !handle; ++i)
        handle = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        snprintf(load_error, sizeof load_error,
                 "dlopen(libclblast.so.1): %s (install libclblast1)", dlerror());
        return;
    }
    /* POSIX allows converting dlsym's object pointer to a function pointer;
     * the memcpy keeps -Wpedantic quiet about it. */
    void *s = dlsym(handle, "CLBlastSgemm"), *d = dlsym(handle, "CLBlastDgemm");
    if (!s || !d) {
        snprintf(load_error, sizeof load_error, "libclblast has no CLBlastSgemm/CLBlastDgemm");
        dlclose(handle);
        return;
    }
    memcpy(&sgemm, &s, sizeof s);
    memcpy(&dgemm, &d, sizeof d);
    void *c = dlsym(handle, "CLBlastClearCache");
    if (c)
        memcpy(&clear_cache, &c, sizeof c);
    /* The handle stays open for the life of the process. */
}

bool gpumat__clblast_available(char *why, size_t why_size)
{
    pthread_once(&load_once, load);
    if (!sgemm && why)
        snprintf(why, why_size, "%s", load_error);
    return sgemm != NULL;
}

void gpumat__clblast_release(void)
{
    /* CLBlast keeps compiled programs, and with them a reference to every
     * cl_context it ran on, in a process-wide cache; without clearing it a
     * context (a wrapped one of the caller's, too) would never be freed.
     * The cost is a recompile for other contexts still using CLBlast. */
    if (sgemm && clear_cache)
        clear_cache();
}

static const char *clblast_status_name(int code)
{
    switch (code) {
    case -1024: return "CLBlastNotImplemented";
    case -2046: return "CLBlastInvalidLocalMemUsage";
    case -2044: return "CLBlastNoDoublePrecision";
    case -2041: return "CLBlastDatabaseError";
    case -2040: return "CLBlastUnknownError";
    case -2039: return "CLBlastUnexpectedError";
    }
    return code > -1000 ? gpumat__cl_error_name(code) : "CLBlast error";
}

gpumat_status gpumat__clblast_gemm(gpumat_context *ctx, const gpumat__gemm_call *g)
{
    if (!gpumat__clblast_available(NULL, 0))
        return gpumat__fail(ctx, GPUMAT_ERR_UNSUPPORTED, "CLBlast is not loaded: %s", load_error);
    cl_command_queue queue = ctx->queue;
    int ta = g->trans_a ? CLBLAST_TRANSPOSE : CLBLAST_NO_TRANSPOSE;
    int tb = g->trans_b ? CLBLAST_TRANSPOSE : CLBLAST_NO_TRANSPOSE;
    int code = g->dtype == GPUMAT_F64
                   ? dgemm(CLBLAST_ROW_MAJOR, ta, tb, g->m, g->n, g->k, g->alpha, g->a, 0, g->lda,
                           g->b, 0, g->ldb, g->beta, g->c, 0, g->ldc, &queue, NULL)
                   : sgemm(CLBLAST_ROW_MAJOR, ta, tb, g->m, g->n, g->k, (float)g->alpha, g->a, 0,
                           g->lda, g->b, 0, g->ldb, (float)g->beta, g->c, 0, g->ldc, &queue, NULL);
    if (code != 0)
        return gpumat__fail(ctx, GPUMAT_ERR_BACKEND,
                            "CLBlast %cgemm (m=%zu n=%zu k=%zu, %s%s) failed: %s (%d)",
                            g->dtype == GPUMAT_F64 ? 'D' : 'S', g->m, g->n, g->k,
                            g->trans_a ? "T" : "N", g->trans_b ? "T" : "N",
                            clblast_status_name(code), code);
    return GPUMAT_OK;
}
