/*
 * matrix.c - device matrices, host transfers, and the operand checks and
 * launch helpers that every operation shares.
 */
#include "gpumat_internal.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

size_t gpumat_dtype_size(gpumat_dtype dtype)
{
    switch (dtype) {
    case GPUMAT_F32: return sizeof(float);
    case GPUMAT_F64: return sizeof(double);
    }
    return 0;
}

const char *gpumat__dtype_name(gpumat_dtype dtype)
{
    return dtype == GPUMAT_F32 ? "f32" : dtype == GPUMAT_F64 ? "f64" : "unknown";
}

gpumat_status gpumat_matrix_create(gpumat_context *ctx, size_t rows, size_t cols,
                                   gpumat_dtype dtype, gpumat_matrix **out)
{
    if (!out)
        return gpumat__fail(ctx, GPUMAT_ERR_INVALID_ARGUMENT, "matrix_create: m is NULL");
    *out = NULL;
    if (!ctx)
        return gpumat__fail(NULL, GPUMAT_ERR_INVALID_ARGUMENT, "matrix_create: ctx is NULL");
    size_t elem = gpumat_dtype_size(dtype);
    if (elem == 0)
        return gpumat__fail(ctx, GPUMAT_ERR_INVALID_ARGUMENT,
                            "matrix_create: dtype %d is not GPUMAT_F32 or GPUMAT_F64", (int)dtype);
    if (rows == 0 || cols == 0)
        return gpumat__fail(ctx, GPUMAT_ERR_SHAPE,
                            "matrix_create: %zux%zu has a zero dimension", rows, cols);
    if (rows > SIZE_MAX / cols || rows * cols > SIZE_MAX / elem)
        return gpumat__fail(ctx, GPUMAT_ERR_SIZE_OVERFLOW,
                            "matrix_create: %zux%zu %s needs more than SIZE_MAX bytes",
                            rows, cols, gpumat__dtype_name(dtype));
    /* The kernels index with int dimensions (as BLAS does). */
    if (rows > INT_MAX || cols > INT_MAX)
        return gpumat__fail(ctx, GPUMAT_ERR_SHAPE,
                            "matrix_create: %zux%zu: each dimension must be at most %d",
                            rows, cols, INT_MAX);
    if (dtype == GPUMAT_F64 && !ctx->info.has_fp64)
        return gpumat__fail(ctx, GPUMAT_ERR_UNSUPPORTED,
                            "matrix_create: f64 needs cl_khr_fp64, which %s does not support",
                            ctx->info.name);
    size_t bytes = rows * cols * elem;
    if (ctx->max_alloc_bytes && bytes > ctx->max_alloc_bytes)
        return gpumat__fail(ctx, GPUMAT_ERR_OUT_OF_MEMORY,
                            "matrix_create: %zux%zu %s needs %zu bytes, more than the %llu "
                            "bytes %s allows in one buffer (CL_DEVICE_MAX_MEM_ALLOC_SIZE)",
                            rows, cols, gpumat__dtype_name(dtype), bytes,
                            (unsigned long long)ctx->max_alloc_bytes, ctx->info.name);

    gpumat_matrix *m = calloc(1, sizeof *m);
    if (!m)
        return gpumat__fail(ctx, GPUMAT_ERR_OUT_OF_MEMORY, "matrix_create: out of host memory");
    cl_int err;
    m->buffer = clCreateBuffer(ctx->cl_ctx, CL_MEM_READ_WRITE, bytes, NULL, &err);
    if (err != CL_SUCCESS) {
        free(m);
        return gpumat__fail_cl(ctx, err, "matrix_create: clCreateBuffer(%zu bytes for %zux%zu %s)",
                               bytes, rows, cols, gpumat__dtype_name(dtype));
    }
    m->ctx = ctx;
    m->rows = rows;
    m->cols = cols;
    m->dtype = dtype;
    m->bytes = bytes;
    *out = m;
    return GPUMAT_OK;
}

void gpumat_matrix_destroy(gpumat_matrix *m)
{
    if (!m)
        return;
    /* OpenCL defers the release until queued commands using it are done. */
    clReleaseMemObject(m->buffer);
    free(m);
}

size_t gpumat_matrix_rows(const gpumat_matrix *m) { return m ? m->rows : 0; }
size_t gpumat_matrix_cols(const gpumat_matrix *m) { return m ? m->cols : 0; }
gpumat_dtype gpumat_matrix_dtype(const gpumat_matrix *m) { return m ? m->dtype : (gpumat_dtype)0; }
gpumat_context *gpumat_matrix_context(const gpumat_matrix *m) { return m ? m->ctx : NULL; }
cl_mem gpumat_matrix_cl_mem(const gpumat_matrix *m) { return m ? m->buffer : NULL; }

gpumat_context *gpumat__context_of(const gpumat_matrix *a, const gpumat_matrix *b,
                                   const gpumat_matrix *c)
{
    return a ? a->ctx : b ? b->ctx : c ? c->ctx : NULL;
}

gpumat_status gpumat__check_operands(const char *op, size_t count,
                                     const gpumat_matrix *const *operands,
                                     const char *const *names)
{
    gpumat_context *ctx = NULL;
    for (size_t i = 0; i < count && !ctx; ++i)
        if (operands[i])
            ctx = operands[i]->ctx;
    for (size_t i = 0; i < count; ++i)
        if (!operands[i])
            return gpumat__fail(ctx, GPUMAT_ERR_INVALID_ARGUMENT, "%s: %s is NULL", op, names[i]);
    for (size_t i = 1; i < count; ++i) {
        if (operands[i]->ctx != operands[0]->ctx)
            return gpumat__fail(ctx, GPUMAT_ERR_CONTEXT_MISMATCH,
                                "%s: %s and %s belong to different contexts", op, names[0],
                                names[i]);
        if (operands[i]->dtype != operands[0]->dtype)
            return gpumat__fail(ctx, GPUMAT_ERR_DTYPE, "%s: %s is %s but %s is %s", op, names[0],
                                gpumat__dtype_name(operands[0]->dtype), names[i],
                                gpumat__dtype_name(operands[i]->dtype));
    }
    return GPUMAT_OK;
}

static gpumat_status set_args(gpumat_context *ctx, cl_kernel kernel, const char *kernel_name,
                              unsigned first, unsigned count, va_list ap)
{
    for (unsigned i = first; i < first + count; ++i) {
        size_t size = va_arg(ap, size_t);
        const void *value = va_arg(ap, const void *);
        cl_int err = clSetKernelArg(kernel, i, size, value);
        if (err != CL_SUCCESS)
            return gpumat__fail_cl(ctx, err, "clSetKernelArg(%s, %u)", kernel_name, i);
    }
    return GPUMAT_OK;
}

gpumat_status gpumat__set_args(gpumat_context *ctx, cl_kernel kernel, const char *kernel_name,
                               unsigned count, ...)
{
    va_list ap;
    va_start(ap, count);
    gpumat_status status = set_args(ctx, kernel, kernel_name, 0, count, ap);
    va_end(ap);
    return status;
}

gpumat_status gpumat__set_args_from(gpumat_context *ctx, cl_kernel kernel,
                                    const char *kernel_name, unsigned first, unsigned count, ...)
{
    va_list ap;
    va_start(ap, count);
    gpumat_status status = set_args(ctx, kernel, kernel_name, first, count, ap);
    va_end(ap);
    return status;
}

gpumat_status gpumat__temp_buffer(gpumat_context *ctx, const char *op, gpumat_dtype dtype,
                                  size_t elements, cl_mem *out)
{
    cl_int err;
    *out = clCreateBuffer(ctx->cl_ctx, CL_MEM_READ_WRITE, elements * gpumat_dtype_size(dtype),
                          NULL, &err);
    return err == CL_SUCCESS ? GPUMAT_OK
                             : gpumat__fail_cl(ctx, err, "%s: clCreateBuffer(%zu scratch elements)",
                                               op, elements);
}

gpumat_status gpumat__launch(gpumat_context *ctx, cl_kernel kernel, const char *kernel_name,
                             cl_uint dims, const size_t *global, const size_t *local)
{
    return gpumat__launch_at(ctx, kernel, kernel_name, dims, NULL, global, local);
}

gpumat_status gpumat__launch_at(gpumat_context *ctx, cl_kernel kernel, const char *kernel_name,
                                cl_uint dims, const size_t *offset, const size_t *global,
                                const size_t *local)
{
    cl_int err = clEnqueueNDRangeKernel(ctx->queue, kernel, dims, offset, global, local, 0, NULL,
                                        NULL);
    if (err != CL_SUCCESS)
        return gpumat__fail_cl(ctx, err, "clEnqueueNDRangeKernel(%s, global %zux%zu, local %zux%zu)",
                               kernel_name, global[0], dims > 1 ? global[1] : (size_t)1,
                               local ? local[0] : (size_t)0,
                               local && dims > 1 ? local[1] : (size_t)1);
    return GPUMAT_OK;
}
