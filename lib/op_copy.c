/* op_copy.c - dst = src, device to device. */
#include "gpumat_internal.h"

gpumat_status gpumat_copy(gpumat_matrix *dst, const gpumat_matrix *src)
{
    const gpumat_matrix *operands[] = {dst, src};
    const char *const names[] = {"dst", "src"};
    gpumat_status status = gpumat__check_operands("copy", 2, operands, names);
    if (status != GPUMAT_OK)
        return status;
    gpumat_context *ctx = dst->ctx;
    if (dst->rows != src->rows || dst->cols != src->cols)
        return gpumat__fail(ctx, GPUMAT_ERR_SHAPE, "copy: dst is %zux%zu but src is %zux%zu",
                            dst->rows, dst->cols, src->rows, src->cols);
    if (dst == src)
        return GPUMAT_OK;
    /* Under the lock, so that it cannot land inside another thread's
     * staged transfer or multi-command operation on dst. */
    pthread_mutex_lock(&ctx->lock);
    cl_int err = clEnqueueCopyBuffer(ctx->queue, src->buffer, dst->buffer, 0, 0, src->bytes, 0,
                                     NULL, NULL);
    pthread_mutex_unlock(&ctx->lock);
    return err == CL_SUCCESS ? GPUMAT_OK
                             : gpumat__fail_cl(ctx, err, "copy: clEnqueueCopyBuffer(%zux%zu)",
                                               src->rows, src->cols);
}
