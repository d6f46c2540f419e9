/* op_transpose.c - t = transpose(a). */
#include "gpumat_internal.h"

#define TP_ARG(x) sizeof(x), (const void *)&(x)

/* The launch cl/transpose.cl's kernels need for an a of rows x cols; see
 * that file for the kernels and the parameters. */
typedef struct transpose_plan {
    const char *kernel;
    size_t tile, items; /* tile side and work-items, in this dtype's elements */
    size_t nx, ny;      /* tiles along a's columns and rows */
    cl_uint swap;       /* group (g0, g1) is tile (g1, g0): walk down a's columns */
} transpose_plan;

static size_t elements(unsigned bytes, size_t size) { return bytes / size > 1 ? bytes / size : 1; }

static transpose_plan plan_for(const gpumat__profile *p, gpumat_dtype dtype, size_t rows,
                               size_t cols)
{
    const gpumat__transpose_params *tp = &p->transpose;
    size_t size = gpumat_dtype_size(dtype), half = dtype == GPUMAT_F64 ? 2 : 1;
    size_t vec = elements(tp->tv, size);
    transpose_plan plan;
    if (rows % vec == 0 && cols % vec == 0) {
        plan.kernel = "transpose_v";
        plan.tile = tp->tvs / half;
        plan.items = tp->tvw / half;
        plan.nx = (cols + plan.tile - 1) / plan.tile;
        plan.ny = (rows + plan.tile - 1) / plan.tile;
        plan.swap = 0;
    } else {
        /* t's rows start off the skew step when rows is not a multiple of
         * it; the tiles then reach up to step - 1 rows past the square. */
        size_t step = elements(tp->tmg, size), reach = rows % step ? step - 1 : 0;
        plan.kernel = "transpose_m";
        plan.tile = tp->tms / half;
        plan.items = tp->tmw / half;
        plan.nx = (cols + plan.tile - 1) / plan.tile;
        plan.ny = (rows + reach + plan.tile - 1) / plan.tile;
        plan.swap = tp->tmo == 2;
    }
    /* Some drivers take at most 65535 work-groups along the second
     * dimension: the order is only a preference. */
    if ((plan.swap ? plan.nx : plan.ny) > 65535)
        plan.swap = !plan.swap;
    return plan;
}

gpumat_status gpumat_transpose(gpumat_matrix *t, const gpumat_matrix *a)
{
    const gpumat_matrix *operands[] = {t, a};
    const char *const names[] = {"t", "a"};
    gpumat_status status = gpumat__check_operands("transpose", 2, operands, names);
    if (status != GPUMAT_OK)
        return status;
    gpumat_context *ctx = t->ctx;
    if (t == a)
        return gpumat__fail(ctx, GPUMAT_ERR_ALIASING,
                            "transpose: t and a are the same matrix; the transpose is out of place");
    if (t->rows != a->cols || t->cols != a->rows)
        return gpumat__fail(ctx, GPUMAT_ERR_SHAPE,
                            "transpose: a is %zux%zu so t must be %zux%zu, but t is %zux%zu",
                            a->rows, a->cols, a->cols, a->rows, t->rows, t->cols);

    pthread_mutex_lock(&ctx->lock);
    status = gpumat__transpose_buffer(ctx, a->dtype, a->rows, a->cols, a->buffer, t->buffer);
    pthread_mutex_unlock(&ctx->lock);
    return status;
}

gpumat_status gpumat__transpose_buffer(gpumat_context *ctx, gpumat_dtype dtype, size_t rows,
                                       size_t cols, cl_mem src, cl_mem dst)
{
    /* A single row or column has the same layout as its transpose. */
    if (rows == 1 || cols == 1) {
        cl_int err = clEnqueueCopyBuffer(ctx->queue, src, dst, 0, 0,
                                         rows * cols * gpumat_dtype_size(dtype), 0, NULL, NULL);
        return err == CL_SUCCESS ? GPUMAT_OK
                                 : gpumat__fail_cl(ctx, err, "transpose: clEnqueueCopyBuffer(%zux%zu)",
                                                   rows, cols);
    }

    cl_uint r = (cl_uint)rows, c = (cl_uint)cols;
    transpose_plan plan = plan_for(&ctx->profile, dtype, rows, cols);
    size_t local[2] = {plan.items, 1};
    size_t global[2] = {(plan.swap ? plan.ny : plan.nx) * plan.items,
                        plan.swap ? plan.nx : plan.ny};

    cl_kernel kernel;
    gpumat_status status = gpumat__kernel(ctx, GPUMAT__PROGRAM_TRANSPOSE, dtype, plan.kernel, &kernel);
    if (status == GPUMAT_OK)
        status = gpumat__set_args(ctx, kernel, plan.kernel, 5, TP_ARG(r), TP_ARG(c), TP_ARG(src),
                                  TP_ARG(dst), TP_ARG(plan.swap));
    if (status == GPUMAT_OK)
        status = gpumat__launch(ctx, kernel, plan.kernel, 2, global, local);
    return status;
}
