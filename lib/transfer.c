/*
 * transfer.c - host <-> device copies.
 *
 * A DMA engine can only read or write page-locked host memory.  From
 * ordinary (pageable) memory a driver first copies into its own pinned
 * buffer and then starts the DMA, one after the other, on one core; that
 * gives a fraction of the bus.  Large transfers here go through pinned
 * staging areas of the context instead, in chunks: several threads copy
 * chunks between the caller's memory and the areas while the DMA engine
 * moves the chunks copied before (one core's memcpy is slower than the bus,
 * so one copying thread cannot keep it busy).  Memory from
 * gpumat_host_alloc() is pinned already and is handed to the driver
 * directly; so are small transfers (the overlap does not pay) and
 * transfers on devices that share host memory (there is no bus).
 */
#include "gpumat_internal.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Below this, one direct call beats splitting into chunks. */
#define DIRECT_LIMIT ((size_t)4 << 20)

/* `what`: the call it is for, which the messages name ("host_alloc", or a
 * transfer's staging area). */
static gpumat_status pinned_create(gpumat_context *ctx, const char *what, size_t bytes,
                                   gpumat__pinned **out)
{
    gpumat__pinned *p = calloc(1, sizeof *p);
    if (!p)
        return gpumat__fail(ctx, GPUMAT_ERR_OUT_OF_MEMORY, "%s: out of host memory", what);
    cl_int err;
    p->buffer = clCreateBuffer(ctx->cl_ctx, CL_MEM_READ_WRITE | CL_MEM_ALLOC_HOST_PTR, bytes, NULL,
                               &err);
    if (err != CL_SUCCESS) {
        free(p);
        return gpumat__fail_cl(ctx, err, "%s: clCreateBuffer(CL_MEM_ALLOC_HOST_PTR, %zu bytes)",
                               what, bytes);
    }
    p->host = clEnqueueMapBuffer(ctx->queue, p->buffer, CL_TRUE, CL_MAP_READ | CL_MAP_WRITE, 0, bytes,
                                 0, NULL, NULL, &err);
    if (err != CL_SUCCESS) {
        clReleaseMemObject(p->buffer);
        free(p);
        return gpumat__fail_cl(ctx, err, "%s: clEnqueueMapBuffer(%zu bytes)", what, bytes);
    }
    p->bytes = bytes;
    *out = p;
    return GPUMAT_OK;
}

static void pinned_destroy(gpumat_context *ctx, gpumat__pinned *p)
{
    /* A buffer released while still mapped may never be freed by the
     * driver: a refused unmap is tried once more on an idle queue. */
    cl_event done = NULL;
    cl_int err = clEnqueueUnmapMemObject(ctx->queue, p->buffer, p->host, 0, NULL, &done);
    if (err != CL_SUCCESS) {
        clFinish(ctx->queue);
        done = NULL;
        err = clEnqueueUnmapMemObject(ctx->queue, p->buffer, p->host, 0, NULL, &done);
    }
    if (err == CL_SUCCESS && done) {
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
    /* Copy threads: half the cores (the other half and the DMA engine share
     * the memory bus), at most GPUMAT__STAGING_MAX_WORKERS;
     * GPUMAT_TRANSFER_THREADS overrides, for measurements. */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    long workers = cores > 1 ? cores / 2 : 1;
    const char *threads = getenv("GPUMAT_TRANSFER_THREADS");
    if (threads && atol(threads) > 0)
        workers = atol(threads);
    ctx->staging.workers = workers > GPUMAT__STAGING_MAX_WORKERS ? GPUMAT__STAGING_MAX_WORKERS
                                                                  : (unsigned)workers;
    return GPUMAT_OK;
}

void gpumat__staging_release(gpumat_context *ctx)
{
    gpumat__staging *s = &ctx->staging;
    for (size_t i = 0; i < sizeof s->areas / sizeof s->areas[0]; ++i) {
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
    gpumat_status status = pinned_create(ctx, "host_alloc", bytes, &p);
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

/* One staged transfer, shared by its copy threads.  Chunks are handed out
 * in order through `next`; thread w uses areas 2w and 2w+1 in turn. */
typedef struct staged_job {
    gpumat_context *ctx;
    cl_mem buffer;
    unsigned char *host;
    size_t bytes, chunks;
    bool download;
    atomic_size_t next;
    /* The first failure; the calling thread reports it (errors are
     * recorded per thread, and the workers are not the caller's thread). */
    pthread_mutex_t fail_lock;
    cl_int err;
    const char *call;
    size_t fail_off, fail_len;
} staged_job;

typedef struct staged_worker {
    staged_job *job;
    unsigned index;
} staged_worker;

static void job_fail(staged_job *job, cl_int err, const char *call, size_t off, size_t len)
{
    pthread_mutex_lock(&job->fail_lock);
    if (job->err == CL_SUCCESS) {
        job->err = err;
        job->call = call;
        job->fail_off = off;
        job->fail_len = len;
    }
    pthread_mutex_unlock(&job->fail_lock);
    atomic_store(&job->next, job->chunks); /* the others stop taking chunks */
}

/* Waits for the last DMA on staging area i, so the CPU may touch it. */
static cl_int settle(gpumat__staging *s, unsigned i)
{
    if (!s->pending[i])
        return CL_SUCCESS;
    cl_int err = clWaitForEvents(1, &s->pending[i]);
    clReleaseEvent(s->pending[i]);
    s->pending[i] = NULL;
    return err;
}

/* memcpy for the copy-out of downloads: on x86 with non-temporal
 * (streaming) stores, which skip reading each destination line before
 * writing it; at tens of GB/s from several threads at once, that read is a
 * third of the host memory traffic (H100 host: 40.5 -> 46-47 GB/s). */
static void staging_copy(void *dst, const void *src, size_t len)
{
#if defined(__SSE2__)
    unsigned char *d = dst;
    const unsigned char *s = src;
    size_t head = (16 - ((uintptr_t)d & 15)) & 15;
    if (len < head + 64) {
        memcpy(dst, src, len);
        return;
    }
    memcpy(d, s, head);
    d += head;
    s += head;
    len -= head;
    for (; len >= 64; d += 64, s += 64, len -= 64) {
        __m128i x0 = _mm_loadu_si128((const __m128i *)(const void *)s);
        __m128i x1 = _mm_loadu_si128((const __m128i *)(const void *)(s + 16));
        __m128i x2 = _mm_loadu_si128((const __m128i *)(const void *)(s + 32));
        __m128i x3 = _mm_loadu_si128((const __m128i *)(const void *)(s + 48));
        _mm_stream_si128((__m128i *)(void *)d, x0);
        _mm_stream_si128((__m128i *)(void *)(d + 16), x1);
        _mm_stream_si128((__m128i *)(void *)(d + 32), x2);
        _mm_stream_si128((__m128i *)(void *)(d + 48), x3);
    }
    memcpy(d, s, len);
    _mm_sfence(); /* the streamed stores are visible before the DMA starts or the caller reads */
#else
    memcpy(dst, src, len);
#endif
}

static size_t chunk_length(const staged_job *job, size_t c)
{
    size_t off = c * GPUMAT__STAGING_CHUNK;
    return job->bytes - off < GPUMAT__STAGING_CHUNK ? job->bytes - off : GPUMAT__STAGING_CHUNK;
}

/* Upload: copy a chunk into one of this thread's areas, start its DMA,
 * and go on with the next chunk in the other area meanwhile. */
static void upload_chunks(staged_job *job, unsigned first_area)
{
    gpumat__staging *s = &job->ctx->staging;
    for (unsigned turn = 0;; ++turn) {
        size_t c = atomic_fetch_add(&job->next, 1);
        if (c >= job->chunks)
            return;
        unsigned i = first_area + (turn & 1);
        size_t off = c * GPUMAT__STAGING_CHUNK, len = chunk_length(job, c);
        cl_int err = settle(s, i);
        if (err != CL_SUCCESS) {
            job_fail(job, err, "clWaitForEvents", off, len);
            return;
        }
        /* A plain copy: streaming stores measured slower here (H100 host:
         * 42-46 against 49-51 GB/s); the DMA reads the area right after. */
        memcpy(s->areas[i]->host, job->host + off, len);
        err = clEnqueueWriteBuffer(job->ctx->queue, job->buffer, CL_FALSE, off, len,
                                   s->areas[i]->host, 0, NULL, &s->pending[i]);
        const char *call = "clEnqueueWriteBuffer";
        if (err == CL_SUCCESS) {
            call = "clFlush";
            err = clFlush(job->ctx->queue); /* start the DMA now, not at the next wait */
        }
        if (err != CL_SUCCESS) {
            job_fail(job, err, call, off, len);
            return;
        }
    }
}

/* Download: keep one DMA of this thread in flight into one area while the
 * chunk that arrived in the other is copied out. */
static void download_chunks(staged_job *job, unsigned first_area)
{
    gpumat__staging *s = &job->ctx->staging;
    size_t chunk[2] = {SIZE_MAX, SIZE_MAX}; /* the chunk on its way into each area */
    for (unsigned turn = 0;; ++turn) {
        unsigned i = first_area + (turn & 1), other = first_area + !(turn & 1);
        size_t c = atomic_fetch_add(&job->next, 1);
        if (c < job->chunks) {
            size_t off = c * GPUMAT__STAGING_CHUNK, len = chunk_length(job, c);
            cl_int err = settle(s, i); /* a previous upload's DMA may still read it */
            const char *call = "clWaitForEvents";
            if (err == CL_SUCCESS) {
                call = "clEnqueueReadBuffer";
                err = clEnqueueReadBuffer(job->ctx->queue, job->buffer, CL_FALSE, off, len,
                                          s->areas[i]->host, 0, NULL, &s->pending[i]);
            }
            if (err == CL_SUCCESS) {
                call = "clFlush";
                err = clFlush(job->ctx->queue);
            }
            if (err != CL_SUCCESS) {
                job_fail(job, err, call, off, len);
                c = SIZE_MAX;
            }
            chunk[i - first_area] = c < job->chunks ? c : SIZE_MAX;
        }
        size_t done = chunk[other - first_area];
        if (done != SIZE_MAX) {
            size_t off = done * GPUMAT__STAGING_CHUNK, len = chunk_length(job, done);
            cl_int err = settle(s, other);
            if (err != CL_SUCCESS)
                job_fail(job, err, "clWaitForEvents", off, len);
            else
                staging_copy(job->host + off, s->areas[other]->host, len);
            chunk[other - first_area] = SIZE_MAX;
        }
        if (c >= job->chunks && chunk[0] == SIZE_MAX && chunk[1] == SIZE_MAX)
            return;
    }
}

static void *staged_worker_run(void *arg)
{
    const staged_worker *w = arg;
    if (w->job->download)
        download_chunks(w->job, 2 * w->index);
    else
        upload_chunks(w->job, 2 * w->index);
    return NULL;
}

/* Moves `bytes` between `host` and `buffer` through the staging areas.
 * Called with the context's lock held, for its whole length: its chunks
 * are several commands, and another thread's command on the matrix between
 * two of them would tear it (the lock also gives the areas to one transfer
 * at a time).  An upload returns once the caller's
 * memory has been copied out (its last DMAs finish on their own; the next
 * staged transfer waits for them); a download returns with `host` filled. */
static gpumat_status staged_transfer(gpumat_context *ctx, cl_mem buffer, unsigned char *host,
                                     size_t bytes, bool download, const char *what)
{
    gpumat__staging *s = &ctx->staging;
    staged_job job = {.ctx = ctx, .buffer = buffer, .host = host, .bytes = bytes,
                      .download = download, .err = CL_SUCCESS};
    job.chunks = (bytes + GPUMAT__STAGING_CHUNK - 1) / GPUMAT__STAGING_CHUNK;
    atomic_init(&job.next, 0);
    unsigned workers = s->workers;
    if (workers > job.chunks)
        workers = (unsigned)job.chunks;
    for (unsigned i = 0; i < 2 * workers; ++i)
        if (!s->areas[i]) {
            char area[96];
            snprintf(area, sizeof area, "%s: staging area", what);
            gpumat_status status = pinned_create(ctx, area, GPUMAT__STAGING_CHUNK, &s->areas[i]);
            if (status != GPUMAT_OK)
                return status;
        }
    if (pthread_mutex_init(&job.fail_lock, NULL) != 0)
        return gpumat__fail(ctx, GPUMAT_ERR_OUT_OF_MEMORY, "%s: pthread_mutex_init failed", what);

    /* The calling thread is worker 0.  A thread that cannot be started is
     * not an error: the others take its chunks. */
    staged_worker w[GPUMAT__STAGING_MAX_WORKERS];
    pthread_t threads[GPUMAT__STAGING_MAX_WORKERS];
    bool started[GPUMAT__STAGING_MAX_WORKERS] = {false};
    for (unsigned i = 0; i < workers; ++i)
        w[i] = (staged_worker){&job, i};
    for (unsigned i = 1; i < workers; ++i)
        started[i] = pthread_create(&threads[i], NULL, staged_worker_run, &w[i]) == 0;
    staged_worker_run(&w[0]);
    for (unsigned i = 1; i < workers; ++i)
        if (started[i])
            pthread_join(threads[i], NULL);
    pthread_mutex_destroy(&job.fail_lock);
    if (job.err != CL_SUCCESS)
        return gpumat__fail_cl(ctx, job.err, "%s: %s (staged chunk of %zu bytes at offset %zu)",
                               what, job.call, job.fail_len, job.fail_off);
    return GPUMAT_OK;
}

/* One write or read of the whole matrix, enqueued under the context's lock
 * so that it cannot land between the commands of another thread's staged
 * transfer or multi-command operation on the matrix.  A write is waited for
 * outside the lock.  A read is blocking, under the lock: on NVIDIA's driver
 * a non-blocking read into pageable memory and a wait took 15-37 us for
 * 4 KiB against 10 for a blocking one, and a marker waited for first (to
 * keep the lock free while earlier work runs) still cost 6 us more. */
static gpumat_status direct_transfer(const gpumat_matrix *m, void *host, bool download)
{
    gpumat_context *ctx = m->ctx;
    const char *call = download ? "clEnqueueReadBuffer" : "clEnqueueWriteBuffer";
    cl_event written = NULL;
    pthread_mutex_lock(&ctx->lock);
    cl_int err = download ? clEnqueueReadBuffer(ctx->queue, m->buffer, CL_TRUE, 0, m->bytes, host,
                                                0, NULL, NULL)
                          : clEnqueueWriteBuffer(ctx->queue, m->buffer, CL_FALSE, 0, m->bytes,
                                                 host, 0, NULL, &written);
    pthread_mutex_unlock(&ctx->lock);
    if (err == CL_SUCCESS && written) {
        call = "clWaitForEvents"; /* the caller may reuse `host` on return */
        err = clWaitForEvents(1, &written);
        clReleaseEvent(written);
    }
    if (err != CL_SUCCESS)
        return gpumat__fail_cl(ctx, err, "%s: %s(%zux%zu %s)",
                               download ? "matrix_download" : "matrix_upload", call, m->rows,
                               m->cols, gpumat__dtype_name(m->dtype));
    return GPUMAT_OK;
}

gpumat_status gpumat_matrix_upload(gpumat_matrix *m, const void *host)
{
    if (!m || !host)
        return gpumat__fail(m ? m->ctx : NULL, GPUMAT_ERR_INVALID_ARGUMENT,
                            "matrix_upload: %s is NULL", !m ? "m" : "host");
    gpumat_context *ctx = m->ctx;
    if (use_direct(ctx, host, m->bytes))
        return direct_transfer(m, (void *)host, false);
    pthread_mutex_lock(&ctx->lock);
    gpumat_status status = staged_transfer(ctx, m->buffer, (unsigned char *)host, m->bytes, false,
                                           "matrix_upload");
    pthread_mutex_unlock(&ctx->lock);
    return status;
}

gpumat_status gpumat_matrix_download(const gpumat_matrix *m, void *host)
{
    if (!m || !host)
        return gpumat__fail(m ? m->ctx : NULL, GPUMAT_ERR_INVALID_ARGUMENT,
                            "matrix_download: %s is NULL", !m ? "m" : "host");
    gpumat_context *ctx = m->ctx;
    if (use_direct(ctx, host, m->bytes))
        return direct_transfer(m, host, true);
    pthread_mutex_lock(&ctx->lock);
    gpumat_status status = staged_transfer(ctx, m->buffer, host, m->bytes, true,
                                           "matrix_download");
    pthread_mutex_unlock(&ctx->lock);
    return status;
}
