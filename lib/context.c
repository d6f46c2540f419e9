/*
 * context.c - contexts: the chosen device, its OpenCL context and in-order
 * queue, the kernel profile, the GEMM backend and the GEMM scratch they
 * keep.
 */
#include "gpumat_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

unsigned gpumat_version_number(void) { return GPUMAT_VERSION_NUMBER; }

const char *gpumat_version_string(void) { return GPUMAT_VERSION_STRING; }

void gpumat_options_init(gpumat_options *options)
{
    if (options)
        memset(options, 0, sizeof *options);
}

/* options first, then GPUMAT_GEMM; neither: AUTO, chosen per call. */
static gpumat_status resolve_gemm_backend(const gpumat_options *options,
                                          gpumat_gemm_backend *backend)
{
    gpumat_gemm_backend wanted = options ? options->gemm_backend : GPUMAT_GEMM_AUTO;
    const char *source = "options.gemm_backend";
    if (wanted == GPUMAT_GEMM_AUTO) {
        const char *env = getenv("GPUMAT_GEMM");
        source = "GPUMAT_GEMM";
        if (!env || !*env || !strcasecmp(env, "auto"))
            wanted = GPUMAT_GEMM_AUTO;
        else if (!strcasecmp(env, "native"))
            wanted = GPUMAT_GEMM_NATIVE;
        else if (!strcasecmp(env, "clblast"))
            wanted = GPUMAT_GEMM_CLBLAST;
        else
            return gpumat__fail(NULL, GPUMAT_ERR_INVALID_ARGUMENT,
                                "GPUMAT_GEMM=\"%s\" is not one of native, clblast, auto", env);
    } else if (wanted != GPUMAT_GEMM_NATIVE && wanted != GPUMAT_GEMM_CLBLAST) {
        return gpumat__fail(NULL, GPUMAT_ERR_INVALID_ARGUMENT,
                            "options.gemm_backend is %d, not a gpumat_gemm_backend", (int)wanted);
    }
    if (wanted == GPUMAT_GEMM_CLBLAST) {
        char why[512];
        if (!gpumat__clblast_available(why, sizeof why))
            return gpumat__fail(NULL, GPUMAT_ERR_UNSUPPORTED,
                                "%s asks for CLBlast, but it cannot be loaded: %s", source, why);
    }
    /* AUTO stays AUTO: gemm() then picks a backend per call by size class,
     * from the device's tuning file or the profile's measured table
     * (tuning.c). */
    *backend = wanted;
    return GPUMAT_OK;
}

/* Everything but the OpenCL objects, which the two constructors obtain. */
static gpumat_status context_alloc(gpumat_context **out, const gpumat_options *options)
{
    gpumat_gemm_backend backend;
    gpumat_status status = resolve_gemm_backend(options, &backend);
    if (status != GPUMAT_OK)
        return status;
    gpumat_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return gpumat__fail(NULL, GPUMAT_ERR_OUT_OF_MEMORY, "context_create: out of host memory");
    if (pthread_mutex_init(&ctx->lock, NULL) != 0) {
        free(ctx);
        return gpumat__fail(NULL, GPUMAT_ERR_OUT_OF_MEMORY, "context_create: pthread_mutex_init failed");
    }
    if (pthread_mutex_init(&ctx->error_lock, NULL) != 0) {
        pthread_mutex_destroy(&ctx->lock);
        free(ctx);
        return gpumat__fail(NULL, GPUMAT_ERR_OUT_OF_MEMORY, "context_create: pthread_mutex_init failed");
    }
    if (gpumat__staging_init(ctx) != GPUMAT_OK) {
        pthread_mutex_destroy(&ctx->lock);
        pthread_mutex_destroy(&ctx->error_lock);
        free(ctx);
        return GPUMAT_ERR_OUT_OF_MEMORY;
    }
    ctx->gemm_backend = backend;
    *out = ctx;
    return GPUMAT_OK;
}

/* Device facts and the profile, once ctx->device is known. */
static gpumat_status context_configure(gpumat_context *ctx, cl_platform_id platform)
{
    /* A context chosen on a device whose type, limits or extensions could
     * not be read would run the wrong kernels, or refuse double for a
     * wrong reason, for its whole life. */
    gpumat__describe_failure failed;
    gpumat__device_describe(platform, ctx->device, &ctx->info, &failed);
    if (failed.err != CL_SUCCESS)
        return gpumat__fail_cl(NULL, failed.err, "context: clGetDeviceInfo(%s) on %s",
                               failed.query, ctx->info.name[0] ? ctx->info.name : "the device");
    cl_ulong max_alloc = 0;
    if (clGetDeviceInfo(ctx->device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof max_alloc, &max_alloc,
                        NULL) == CL_SUCCESS)
        ctx->max_alloc_bytes = max_alloc;
    cl_ulong cache = 0;
    if (clGetDeviceInfo(ctx->device, CL_DEVICE_GLOBAL_MEM_CACHE_SIZE, sizeof cache, &cache,
                        NULL) == CL_SUCCESS)
        ctx->mem_cache_bytes = cache;
    gpumat_status status = gpumat__profile_choose(&ctx->info, &ctx->profile, &ctx->tuning);
    gpumat__profile_build_options(&ctx->profile, ctx->build_options, sizeof ctx->build_options);
    return status;
}

/* The GEMM scratch a context keeps between calls (op_gemm.c, and the
 * fields' comment in gpumat_internal.h): the two pack buffers (operand
 * copies) and stream-K's partial sums and tile counters.  The two
 * functions below name the same four buffers; the caller holds ctx->lock,
 * or is the context's last user. */
static size_t gemm_scratch_bytes(const gpumat_context *ctx)
{
    return ctx->gemm_pack_bytes[0] + ctx->gemm_pack_bytes[1] + ctx->gemm_sk_sums_bytes +
           ctx->gemm_sk_counts_bytes;
}

static void release_scratch(cl_mem *buffer, size_t *bytes)
{
    if (*buffer)
        clReleaseMemObject(*buffer);
    *buffer = NULL;
    *bytes = 0;
}

/* OpenCL frees each buffer only once the commands already enqueued on it
 * have finished, so nothing here waits.  The next product that needs one
 * creates it afresh: pack_buffer(), and sk_buffer(), which fills a new
 * counter buffer with zeros. */
static void gemm_scratch_release(gpumat_context *ctx)
{
    release_scratch(&ctx->gemm_pack[0], &ctx->gemm_pack_bytes[0]);
    release_scratch(&ctx->gemm_pack[1], &ctx->gemm_pack_bytes[1]);
    release_scratch(&ctx->gemm_sk_sums, &ctx->gemm_sk_sums_bytes);
    release_scratch(&ctx->gemm_sk_counts, &ctx->gemm_sk_counts_bytes);
}

static void context_free(gpumat_context *ctx)
{
    gpumat__staging_release(ctx);
    gpumat__programs_release(ctx);
    gemm_scratch_release(ctx);
    if (ctx->gemm_backend == GPUMAT_GEMM_CLBLAST || ctx->clblast_used)
        gpumat__clblast_release();
    if (ctx->queue)
        clReleaseCommandQueue(ctx->queue);
    if (ctx->cl_ctx)
        clReleaseContext(ctx->cl_ctx);
    pthread_mutex_destroy(&ctx->lock);
    pthread_mutex_destroy(&ctx->error_lock);
    free(ctx);
}

gpumat_status gpumat_context_create(gpumat_context **out, const gpumat_options *options)
{
    if (!out)
        return gpumat__fail(NULL, GPUMAT_ERR_INVALID_ARGUMENT, "context_create: ctx is NULL");
    *out = NULL;

    gpumat__device *devices = NULL;
    size_t count = 0, index = 0;
    gpumat_status status = gpumat__devices_enumerate(&devices, &count);
    if (status == GPUMAT_OK)
        status = gpumat__device_pick(devices, count, options, &index, NULL, 0);
    gpumat_context *ctx = NULL;
    if (status == GPUMAT_OK)
        status = context_alloc(&ctx, options);
    if (status != GPUMAT_OK) {
        free(devices);
        return status;
    }

    const gpumat__device *chosen = &devices[index];
    ctx->device = chosen->id;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)chosen->platform, 0};
    cl_int err;
    ctx->cl_ctx = clCreateContext(props, 1, &ctx->device, NULL, NULL, &err);
    if (err != CL_SUCCESS) {
        status = gpumat__fail_cl(NULL, err, "clCreateContext on %s", chosen->info.name);
    } else {
        ctx->queue = clCreateCommandQueue(ctx->cl_ctx, ctx->device, 0, &err);
        if (err != CL_SUCCESS)
            status = gpumat__fail_cl(NULL, err, "clCreateCommandQueue on %s", chosen->info.name);
    }
    if (status != GPUMAT_OK) {
        free(devices);
        context_free(ctx);
        return status;
    }
    status = context_configure(ctx, chosen->platform);
    if (status != GPUMAT_OK) {
        free(devices);
        context_free(ctx);
        return status;
    }
    /* Keep the enumeration's numbering, which describe() cannot know. */
    ctx->info.platform_index = chosen->info.platform_index;
    ctx->info.device_index = chosen->info.device_index;
    free(devices);
    *out = ctx;
    return GPUMAT_OK;
}

gpumat_status gpumat_context_wrap(gpumat_context **out, cl_context cl_ctx, cl_command_queue queue,
                                  const gpumat_options *options)
{
    if (!out)
        return gpumat__fail(NULL, GPUMAT_ERR_INVALID_ARGUMENT, "context_wrap: ctx is NULL");
    *out = NULL;
    if (!cl_ctx || !queue)
        return gpumat__fail(NULL, GPUMAT_ERR_INVALID_ARGUMENT, "context_wrap: %s is NULL",
                            !cl_ctx ? "cl_ctx" : "queue");

    cl_context queue_ctx = NULL;
    cl_device_id device = NULL;
    cl_command_queue_properties props = 0;
    cl_int err = clGetCommandQueueInfo(queue, CL_QUEUE_CONTEXT, sizeof queue_ctx, &queue_ctx, NULL);
    if (err == CL_SUCCESS)
        err = clGetCommandQueueInfo(queue, CL_QUEUE_DEVICE, sizeof device, &device, NULL);
    if (err == CL_SUCCESS)
        err = clGetCommandQueueInfo(queue, CL_QUEUE_PROPERTIES, sizeof props, &props, NULL);
    if (err != CL_SUCCESS)
        return gpumat__fail_cl(NULL, err, "context_wrap: clGetCommandQueueInfo(queue)");
    if (queue_ctx != cl_ctx)
        return gpumat__fail(NULL, GPUMAT_ERR_INVALID_ARGUMENT,
                            "context_wrap: queue belongs to a different cl_context than cl_ctx");
    if (props & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE)
        return gpumat__fail(NULL, GPUMAT_ERR_INVALID_ARGUMENT,
                            "context_wrap: queue is out-of-order; libgpumat needs an in-order queue");
    cl_platform_id platform = NULL;
    err = clGetDeviceInfo(device, CL_DEVICE_PLATFORM, sizeof platform, &platform, NULL);
    if (err != CL_SUCCESS)
        return gpumat__fail_cl(NULL, err, "context_wrap: clGetDeviceInfo(CL_DEVICE_PLATFORM)");

    gpumat_context *ctx = NULL;
    gpumat_status status = context_alloc(&ctx, options);
    if (status != GPUMAT_OK)
        return status;
    clRetainContext(cl_ctx);
    clRetainCommandQueue(queue);
    ctx->cl_ctx = cl_ctx;
    ctx->queue = queue;
    ctx->device = device;
    status = context_configure(ctx, platform);
    if (status != GPUMAT_OK) {
        context_free(ctx);
        return status;
    }
    *out = ctx;
    return GPUMAT_OK;
}

void gpumat_context_destroy(gpumat_context *ctx)
{
    if (!ctx)
        return;
    clFinish(ctx->queue);
    context_free(ctx);
}

gpumat_status gpumat_context_device(const gpumat_context *ctx, gpumat_device_info *info)
{
    if (!ctx || !info)
        return gpumat__fail((gpumat_context *)ctx, GPUMAT_ERR_INVALID_ARGUMENT,
                            "context_device: %s is NULL", !ctx ? "ctx" : "info");
    *info = ctx->info;
    return GPUMAT_OK;
}

const char *gpumat_context_profile(const gpumat_context *ctx)
{
    return ctx ? ctx->profile.name : NULL;
}

const char *gpumat_context_build_options(const gpumat_context *ctx)
{
    return ctx ? ctx->build_options : NULL;
}

gpumat_gemm_backend gpumat_context_gemm_backend(const gpumat_context *ctx)
{
    return ctx ? ctx->gemm_backend : GPUMAT_GEMM_AUTO;
}

cl_context gpumat_context_cl_context(const gpumat_context *ctx) { return ctx ? ctx->cl_ctx : NULL; }

cl_command_queue gpumat_context_cl_queue(const gpumat_context *ctx) { return ctx ? ctx->queue : NULL; }

gpumat_status gpumat_finish(gpumat_context *ctx)
{
    if (!ctx)
        return gpumat__fail(NULL, GPUMAT_ERR_INVALID_ARGUMENT, "finish: ctx is NULL");
    /* OpenCL calls other than clSetKernelArg are thread-safe: no lock. */
    cl_int err = clFinish(ctx->queue);
    return err == CL_SUCCESS ? GPUMAT_OK : gpumat__fail_cl(ctx, err, "finish: clFinish");
}

gpumat_status gpumat_context_trim(gpumat_context *ctx)
{
    if (!ctx)
        return gpumat__fail(NULL, GPUMAT_ERR_INVALID_ARGUMENT, "context_trim: ctx is NULL");
    /* Under the lock that gemm() holds while it grows and uses them. */
    pthread_mutex_lock(&ctx->lock);
    gemm_scratch_release(ctx);
    pthread_mutex_unlock(&ctx->lock);
    return GPUMAT_OK;
}

gpumat_status gpumat_context_scratch_size(const gpumat_context *ctx, size_t *bytes)
{
    if (!ctx || !bytes)
        return gpumat__fail((gpumat_context *)ctx, GPUMAT_ERR_INVALID_ARGUMENT,
                            "context_scratch_size: %s is NULL", !ctx ? "ctx" : "bytes");
    /* The buffers grow and go under the context's lock. */
    gpumat_context *c = (gpumat_context *)ctx;
    pthread_mutex_lock(&c->lock);
    *bytes = gemm_scratch_bytes(c);
    pthread_mutex_unlock(&c->lock);
    return GPUMAT_OK;
}
