/* op_add.c - c = a + b, element-wise. */
#include "gpumat_internal.h"

gpumat_status gpumat_add(gpumat_matrix *c, const gpumat_matrix *a, const gpumat_matrix *b)
{
    const gpumat_matrix *operands[] = {c, a, b};
    const char *const names[] = {"c", "a", "b"};
    gpumat_status status = gpumat__check_operands("add", 3, operands, names);
    if (status != GPUMAT_OK)
        return status;
    gpumat_context *ctx = c->ctx;
    if (a->rows != b->rows || a->cols != b->cols || c->rows != a->rows || c->cols != a->cols)
        return gpumat__fail(ctx, GPUMAT_ERR_SHAPE, "add: c is %zux%zu, a is %zux%zu, b is %zux%zu; "
                            "all three must have the same shape",
                            c->rows, c->cols, a->rows, a->cols, b->rows, b->cols);

    cl_ulong n = (cl_ulong)a->rows * a->cols;
    size_t wg = ctx->profile.elementwise_wg;
    /* Enough work-groups to fill the device a few times over; the kernel's
     * grid-stride loop covers the rest. */
    size_t cap = (size_t)(ctx->info.compute_units ? ctx->info.compute_units : 16) * 16 * wg;
    size_t global = gpumat__round_up((size_t)(n / 4 > 4 ? n / 4 : 4), wg);
    if (global > cap)
        global = cap;

    cl_kernel kernel;
    pthread_mutex_lock(&ctx->lock);
    status = gpumat__kernel(ctx, GPUMAT__PROGRAM_ELEMENTWISE, a->dtype, "add", &kernel);
    if (status == GPUMAT_OK)
        status = gpumat__set_args(ctx, kernel, "add", 4, sizeof n, (const void *)&n,
                                  sizeof(cl_mem), (const void *)&a->buffer,
                                  sizeof(cl_mem), (const void *)&b->buffer,
                                  sizeof(cl_mem), (const void *)&c->buffer);
    if (status == GPUMAT_OK)
        status = gpumat__launch(ctx, kernel, "add", 1, &global, &wg);
    pthread_mutex_unlock(&ctx->lock);
    return status;
}
