/*
 * op_ml.h - what op_elementwise.c and op_nn.c (the kernels of cl/ml.cl)
 * share: argument packing, launch sizing and the same-shape check.
 * Private to those two files.
 */
#ifndef GPUMAT_OP_ML_H
#define GPUMAT_OP_ML_H

#include "gpumat_internal.h"

/* A (size, pointer) pair for gpumat__set_args. */
#define GPUMAT__ARG(x) sizeof(x), (const void *)&(x)
/* A __local array argument of `bytes` bytes. */
#define GPUMAT__LOCAL(bytes) (size_t)(bytes), (const void *)NULL

/* A REAL kernel argument: float or double by the operands' dtype. */
typedef struct gpumat__real {
    union {
        cl_float f;
        cl_double d;
    } v;
    size_t size;
} gpumat__real;

static inline gpumat__real gpumat__real_of(gpumat_dtype dtype, double x)
{
    gpumat__real r;
    if (dtype == GPUMAT_F64) {
        r.v.d = x;
        r.size = sizeof(cl_double);
    } else {
        r.v.f = (cl_float)x;
        r.size = sizeof(cl_float);
    }
    return r;
}

#define GPUMAT__REAL_ARG(r) (r).size, (const void *)&(r).v

/* The most work-items worth launching for a grid-stride kernel: enough
 * work-groups to fill the device a few times over. */
static inline size_t gpumat__ml_max_items(const gpumat_context *ctx)
{
    size_t units = ctx->info.compute_units ? ctx->info.compute_units : 16;
    return units * 16 * ctx->profile.elementwise_wg;
}

/* The 1-D launch of a 4-wide element-wise kernel over n elements. */
static inline size_t gpumat__ml_grid(const gpumat_context *ctx, cl_ulong n)
{
    size_t wg = ctx->profile.elementwise_wg;
    cl_ulong vectors = n / 4 > 0 ? n / 4 : 1;
    size_t cap = gpumat__ml_max_items(ctx);
    return vectors >= cap ? cap : gpumat__round_up((size_t)vectors, wg);
}

/* The work-group size for a kernel with barriers: at most `want`, and at
 * most what the compiled kernel allows (its local memory and registers may
 * make that less than the device maximum).  The caller holds ctx->lock. */
static inline gpumat_status gpumat__ml_local_size(gpumat_context *ctx, cl_kernel kernel,
                                                  const char *name, size_t want, size_t *local)
{
    size_t limit = 0;
    cl_int err = clGetKernelWorkGroupInfo(kernel, ctx->device, CL_KERNEL_WORK_GROUP_SIZE,
                                          sizeof limit, &limit, NULL);
    if (err != CL_SUCCESS)
        return gpumat__fail_cl(ctx, err, "clGetKernelWorkGroupInfo(%s)", name);
    *local = want < limit ? want : limit;
    if (*local == 0)
        *local = 1;
    return GPUMAT_OK;
}

/* Whether every operand has the shape of operands[0]; otherwise records
 * "<op>: c is 2x3, a is 2x4, ...; all must have the same shape". */
gpumat_status gpumat__ml_same_shape(const char *op, size_t count,
                                    const gpumat_matrix *const *operands,
                                    const char *const *names);

/* F32 holds every whole number up to 2^24 exactly: the limit on what an
 * index vector can address. */
#define GPUMAT__F32_INDEX_LIMIT ((size_t)1 << 24)

#endif /* GPUMAT_OP_ML_H */
