/*
 * transfer.c - host <-> device copies.
 *
 * A DMA engine can only read or write page-locked host memory.  From
 * ordinary (pageable) memory a driver first copies into its own pinned
 * buffer and then starts the DMA, one after the other; that halves the rate
 * or worse.  Large transfers here go through two pinned staging areas of the
 * context instead: while the DMA moves one chunk, the CPU copies the next
 * one into the other area.  Memory from gpumat_host_alloc() is pinned
 * already and is handed to the driver directly; so are small transfers
 * (the overlap does not pay) and transfers on devices that share host
 * memory (there is no bus to overlap with).
 */
#include "gpumat_internal.h"

#include <stdlib.h>
#include <string.h>

/* Below this, one direct call beats splitting into chunks. */
#define DIRECT_LIMIT ((size_t)4 << 20)

static gpumat_status pinned_create(gpumat_context *ctx, size_t bytes, gpumat__pinned **out)
{
    gpumat__pinned *p = calloc(1, sizeof *p);
    if (!p)
        return gpumat__fail(ctx, GPUMAT_ERR_OUT_OF_MEMORY, "host_alloc: out of host memory");
    cl_int err;
    p->buffer = clCreateBuffer(ctx->cl_ctx, CL_MEM_READ_WRITE | CL_MEM_ALLOC_HOST_PTR, bytes, NULL,
                               &err);
    if (err != CL_SUCCESS) {
        free(p);
        return gpumat__fail_cl(ctx, err, "host_alloc: clCreateBuffer(CL_MEM_ALLOC_HOST_PTR, %zu bytes)",
                               bytes);
    }
    p->host = clEnqueueMapBuffer(ctx->queue, p->buffer, CL_TRUE, CL_MAP_READ | CL_MAP_WRITE, 0, bytes,
                                 0, NULL, NULL, &err);
    if (err != CL_SUCCESS) {
        clReleaseMemObject(p->buffer);
        free(p);
        return gpumat__fail_cl(ctx, err, "host_alloc: clEnqueueMapBuffer(%zu bytes)", bytes);
    }
    p->bytes = bytes;
    *out = p;
    return GPUMAT_OK;
}

static void pinned_destroy(gpumat_context *ctx, gpumat__pinned *p)
{
    cl_event done = NULL;
    if (clEnqueueUnmapMemObject(ctx->queue, p->buffer, p->host, 0, NULL, &done) == CL_SUCCESS &&
        done) {
        clWaitForEvents(1, &done);
        clReleaseEvent(done);
    }
    clReleaseMemObject(p->buffer);
    free(p);
}

gpumat_status gpumat__staging_init(gpumat_context *ctx)
{
    memset(&ctx->staging, 0, sizeof ctx->staging);
    if (pthread_mutex_init(&ctx->staging.lock, NULL) != 0)
        return gpumat__fail(NULL, GPUMAT_ERR_OUT_OF_MEMORY, "context_create: pthread_mutex_init failed");
    /* For tests and measurements: force one path regardless of size and
     * device ("direct" or "staged"). */
    const char *mode = getenv("GPUMAT_TRANSFER");
    ctx->staging.forced = !mode ? 0 : !strcmp(mode, "direct") ? 1 : !strcmp(mode, "staged") ? 2 : 0;
    return GPUMAT_OK;
}

void gpumat__staging_release(gpumat_context *ctx)
{
    gpumat__staging *s = &ctx->staging;
    for (int i = 0; i < 2; ++i) {
        if (s->pending[i]) {
            clWaitForEvents(1, &s->pending[i]);
            clReleaseEvent(s->pending[i]);
        }
        if (s->areas[i])
            pinned_destroy(ctx, s->areas[i]);
    }
    while (s->user) {
        gpumat__pinned *next = s->user->next;
        pinned_destroy(ctx, s->user);
        s->user = next;
    }
    pthread_mutex_destroy(&s->lock);
}

gpumat_status gpumat_host_alloc(gpumat_context *ctx, size_t bytes, void **ptr)
{
    if (!ptr)
        return gpumat__fail(ctx, GPUMAT_ERR_INVALID_ARGUMENT, "host_alloc: ptr is NULL");
    *ptr = NULL;
    if (!ctx)
        return gpumat__fail(NULL, GPUMAT_ERR_INVALID_ARGUMENT, "host_alloc: ctx is NULL");
    if (bytes == 0)
        return gpumat__fail(ctx, GPUMAT_ERR_INVALID_ARGUMENT, "host_alloc: bytes is 0");
    gpumat__pinned *p;
    gpumat_status status = pinned_create(ctx, bytes, &p);
    if (status != GPUMAT_OK)
        return status;
    pthread_mutex_lock(&ctx->staging.lock);
    p->next = ctx->staging.user;
    ctx->staging.user = p;
    pthread_mutex_unlock(&ctx->staging.lock);
    *ptr = p->host;
    return GPUMAT_OK;
}

gpumat_status gpumat_host_free(gpumat_context *ctx, void *ptr)
{
    if (!ctx)
        return gpumat__fail(NULL, GPUMAT_ERR_INVALID_ARGUMENT, "host_free: ctx is NULL");
    if (!ptr)
        return GPUMAT_OK;
    pthread_mutex_lock(&ctx->staging.lock);
    gpumat__pinned **link = &ctx->staging.user;
    while (*link && (*link)->host != ptr)
        link = &(*link)->next;
    gpumat__pinned *p = *link;
    if (p)
        *link = p->next;
    pthread_mutex_unlock(&ctx->staging.lock);
    if (!p)
        return gpumat__fail(ctx, GPUMAT_ERR_INVALID_ARGUMENT,
                            "host_free: %p was not allocated by gpumat_host_alloc on this context",
                            ptr);
    pinned_destroy(ctx, p);
    return GPUMAT_OK;
}

/* True if [host, host+bytes) lies in one of the caller's pinned areas. */
static bool is_pinned(gpumat_context *ctx, const void *host, size_t bytes)
{
    bool found = false;
    const unsigned char *h = host;
    pthread_mutex_lock(&ctx->staging.lock);
    for (const gpumat__pinned *p = ctx->staging.user; p && !found; p = p->next)
        found = h >= p->host && h < p->host + p->bytes && bytes <= (size_t)(p->host + p->bytes - h);
    pthread_mutex_unlock(&ctx->staging.lock);
    return found;
}

static bool use_direct(gpumat_context *ctx, const void *host, size_t bytes)
{
    if (ctx->staging.forced)
        return ctx->staging.forced == 1 || is_pinned(ctx, host, bytes);
    return bytes < DIRECT_LIMIT || ctx->info.unified_memory || is_pinned(ctx, host, bytes);
}

/* Waits for the last DMA on staging area i, so the CPU may touch it. */
static gpumat_status settle(gpumat_context *ctx, int i)
{
    cl_event *e = &ctx->staging.pending[i];
    if (!*e)
        return GPUMAT_OK;
    cl_int err = clWaitForEvents(1, e);
    clReleaseEvent(*e);
    *e = NULL;
    return err == CL_SUCCESS ? GPUMAT_OK
                             : gpumat__fail_cl(ctx, err, "staged transfer: clWaitForEvents");
}

static gpumat_status staging_ready(gpumat_context *ctx)
{
    for (int i = 0; i < 2; ++i)
        if (!ctx->staging.areas[i]) {
            gpumat_status status = pinned_create(ctx, GPUMAT__STAGING_CHUNK, &ctx->staging.areas[i]);
            if (status != GPUMAT_OK)
                return status;
        }
    return GPUMAT_OK;
}

static gpumat_status staged_upload(gpumat_matrix *m, const unsigned char *host)
{
    gpumat_context *ctx = m->ctx;
    gpumat_status status = staging_ready(ctx);
    for (size_t off = 0, chunk = 0; off < m->bytes && status == GPUMAT_OK;
         off += GPUMAT__STAGING_CHUNK, ++chunk) {
        int i = (int)(chunk % 2);
        size_t len = m->bytes - off < GPUMAT__STAGING_CHUNK ? m->bytes - off : GPUMAT__STAGING_CHUNK;
        status = settle(ctx, i);
        if (status != GPUMAT_OK)
            break;
        memcpy(ctx->staging.areas[i]->host, host + off, len);
        cl_int err = clEnqueueWriteBuffer(ctx->queue, m->buffer, CL_FALSE, off, len,
                                          ctx->staging.areas[i]->host, 0, NULL,
                                          &ctx->staging.pending[i]);
        if (err == CL_SUCCESS)
            err = clFlush(ctx->queue); /* start the DMA now, not at the next wait */
        if (err != CL_SUCCESS)
            status = gpumat__fail_cl(ctx, err, "matrix_upload: clEnqueueWriteBuffer(%zu bytes at %zu)",
                                     len, off);
    }
    /* The caller's memory is free now; the last DMAs finish on their own
     * and the next staged transfer waits for them. */
    return status;
}

static gpumat_status staged_download(const gpumat_matrix *m, unsigned char *host)
{
    gpumat_context *ctx = m->ctx;
    gpumat_status status = staging_ready(ctx);
    size_t chunks = (m->bytes + GPUMAT__STAGING_CHUNK - 1) / GPUMAT__STAGING_CHUNK;
    /* Chunk c+1 is read into one area while chunk c is copied out of the
     * other. */
    for (size_t c = 0; c <= chunks && status == GPUMAT_OK; ++c) {
        if (c < chunks) {
            int i = (int)(c % 2);
            size_t off = c * GPUMAT__STAGING_CHUNK;
            size_t len = m->bytes - off < GPUMAT__STAGING_CHUNK ? m->bytes - off
                                                                : GPUMAT__STAGING_CHUNK;
            status = settle(ctx, i);
            if (status != GPUMAT_OK)
                break;
            cl_int err = clEnqueueReadBuffer(ctx->queue, m->buffer, CL_FALSE, off, len,
                                             ctx->staging.areas[i]->host, 0, NULL,
                                             &ctx->staging.pending[i]);
            if (err == CL_SUCCESS)
                err = clFlush(ctx->queue);
            if (err != CL_SUCCESS) {
                status = gpumat__fail_cl(ctx, err,
                                         "matrix_download: clEnqueueReadBuffer(%zu bytes at %zu)",
                                         len, off);
                break;
            }
        }
        if (c > 0) {
            int i = (int)((c - 1) % 2);
            size_t off = (c - 1) * GPUMAT__STAGING_CHUNK;
            size_t len = m->bytes - off < GPUMAT__STAGING_CHUNK ? m->bytes - off
                                                                : GPUMAT__STAGING_CHUNK;
            status = settle(ctx, i);
            if (status == GPUMAT_OK)
                memcpy(host + off, ctx->staging.areas[i]->host, len);
        }
    }
    return status;
}

gpumat_status gpumat_matrix_upload(gpumat_matrix *m, const void *host)
{
    if (!m || !host)
        return gpumat__fail(m ? m->ctx : NULL, GPUMAT_ERR_INVALID_ARGUMENT,
                            "matrix_upload: %s is NULL", !m ? "m" : "host");
    gpumat_context *ctx = m->ctx;
    if (use_direct(ctx, host, m->bytes)) {
        /* Blocking, so that the caller may reuse `host` as soon as we return. */
        cl_int err = clEnqueueWriteBuffer(ctx->queue, m->buffer, CL_TRUE, 0, m->bytes, host, 0,
                                          NULL, NULL);
        if (err != CL_SUCCESS)
            return gpumat__fail_cl(ctx, err, "matrix_upload: clEnqueueWriteBuffer(%zux%zu %s)",
                                   m->rows, m->cols, gpumat__dtype_name(m->dtype));
        return GPUMAT_OK;
    }
    pthread_mutex_lock(&ctx->staging.lock);
    gpumat_status status = staged_upload(m, host);
    pthread_mutex_unlock(&ctx->staging.lock);
    return status;
}

gpumat_status gpumat_matrix_download(const gpumat_matrix *m, void *host)
{
    if (!m || !host)
        return gpumat__fail(m ? m->ctx : NULL, GPUMAT_ERR_INVALID_ARGUMENT,
                            "matrix_download: %s is NULL", !m ? "m" : "host");
    gpumat_context *ctx = m->ctx;
    if (use_direct(ctx, host, m->bytes)) {
        cl_int err = clEnqueueReadBuffer(ctx->queue, m->buffer, CL_TRUE, 0, m->bytes, host, 0,
                                         NULL, NULL);
        if (err != CL_SUCCESS)
            return gpumat__fail_cl(ctx, err, "matrix_download: clEnqueueReadBuffer(%zux%zu %s)",
                                   m->rows, m->cols, gpumat__dtype_name(m->dtype));
        return GPUMAT_OK;
    }
    pthread_mutex_lock(&ctx->staging.lock);
    gpumat_status status = staged_download(m, host);
    pthread_mutex_unlock(&ctx->staging.lock);
    return status;
}
