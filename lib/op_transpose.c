/* op_transpose.c - t = transpose(a). */
#include "gpumat_internal.h"

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

    /* A single row or column has the same layout as its transpose. */
    if (a->rows == 1 || a->cols == 1) {
        cl_int err = clEnqueueCopyBuffer(ctx->queue, a->buffer, t->buffer, 0, 0, a->bytes, 0,
                                         NULL, NULL);
        return err == CL_SUCCESS ? GPUMAT_OK
                                 : gpumat__fail_cl(ctx, err, "transpose: clEnqueueCopyBuffer(%zux%zu)",
                                                   a->rows, a->cols);
    }

    cl_uint rows = (cl_uint)a->rows, cols = (cl_uint)a->cols;
    size_t ts = ctx->profile.transpose_tile, tr = gpumat__transpose_rows(&ctx->profile);
    size_t local[2] = {ts, tr};
    size_t global[2] = {gpumat__round_up(cols, ts), gpumat__round_up(rows, ts) / ts * tr};

    cl_kernel kernel;
    pthread_mutex_lock(&ctx->lock);
    status = gpumat__kernel(ctx, GPUMAT__PROGRAM_TRANSPOSE, a->dtype, "transpose", &kernel);
    if (status == GPUMAT_OK)
        status = gpumat__set_args(ctx, kernel, "transpose", 4, sizeof rows, (const void *)&rows,
                                  sizeof cols, (const void *)&cols,
                                  sizeof(cl_mem), (const void *)&a->buffer,
                                  sizeof(cl_mem), (const void *)&t->buffer);
    if (status == GPUMAT_OK)
        status = gpumat__launch(ctx, kernel, "transpose", 2, global, local);
    pthread_mutex_unlock(&ctx->lock);
    return status;
}
