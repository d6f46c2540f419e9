/*
 * events.c - joining the context's in-order queue with OpenCL events of the
 * caller.  On an in-order queue a barrier with a wait list holds back every
 * later command, and a marker completes after every earlier one, so no
 * per-operation event plumbing is needed.  Each enqueue happens under the
 * context's lock: a marker or barrier between the commands of another
 * thread's staged transfer or multi-command operation would split it.
 */
#include "gpumat_internal.h"

gpumat_status gpumat_wait_events(gpumat_context *ctx, size_t count, const cl_event *events)
{
    if (!ctx)
        return gpumat__fail(NULL, GPUMAT_ERR_INVALID_ARGUMENT, "wait_events: ctx is NULL");
    if (count == 0)
        return GPUMAT_OK;
    if (!events)
        return gpumat__fail(ctx, GPUMAT_ERR_INVALID_ARGUMENT,
                            "wait_events: events is NULL but count is %zu", count);
    for (size_t i = 0; i < count; ++i)
        if (!events[i])
            return gpumat__fail(ctx, GPUMAT_ERR_INVALID_ARGUMENT,
                                "wait_events: events[%zu] is NULL", i);
    if (count > (cl_uint)-1)
        return gpumat__fail(ctx, GPUMAT_ERR_INVALID_ARGUMENT, "wait_events: count %zu is too large",
                            count);
    pthread_mutex_lock(&ctx->lock);
    cl_int err = clEnqueueBarrierWithWaitList(ctx->queue, (cl_uint)count, events, NULL);
    pthread_mutex_unlock(&ctx->lock);
    if (err != CL_SUCCESS)
        return gpumat__fail_cl(ctx, err, "wait_events: clEnqueueBarrierWithWaitList(%zu events)",
                               count);
    return GPUMAT_OK;
}

gpumat_status gpumat_record_event(gpumat_context *ctx, cl_event *event)
{
    if (!ctx || !event)
        return gpumat__fail(ctx, GPUMAT_ERR_INVALID_ARGUMENT, "record_event: %s is NULL",
                            !ctx ? "ctx" : "event");
    *event = NULL;
    pthread_mutex_lock(&ctx->lock);
    cl_int err = clEnqueueMarkerWithWaitList(ctx->queue, 0, NULL, event);
    pthread_mutex_unlock(&ctx->lock);
    if (err != CL_SUCCESS)
        return gpumat__fail_cl(ctx, err, "record_event: clEnqueueMarkerWithWaitList");
    return GPUMAT_OK;
}

gpumat_status gpumat_matrix_download_async(const gpumat_matrix *m, void *host, cl_event *event)
{
    if (!m || !host)
        return gpumat__fail(m ? m->ctx : NULL, GPUMAT_ERR_INVALID_ARGUMENT,
                            "matrix_download_async: %s is NULL", !m ? "m" : "host");
    if (event)
        *event = NULL;
    pthread_mutex_lock(&m->ctx->lock);
    cl_int err = clEnqueueReadBuffer(m->ctx->queue, m->buffer, CL_FALSE, 0, m->bytes, host, 0,
                                     NULL, event);
    pthread_mutex_unlock(&m->ctx->lock);
    if (err != CL_SUCCESS)
        return gpumat__fail_cl(m->ctx, err, "matrix_download_async: clEnqueueReadBuffer(%zux%zu)",
                               m->rows, m->cols);
    return GPUMAT_OK;
}
