/*
 * errors.c - status codes, OpenCL error names and the last-error messages.
 *
 * Every failure is recorded twice: on the context it concerns (when there is
 * one) and on the calling thread, so that gpumat_last_error(NULL) explains a
 * failed gpumat_context_create() and a thread can always read its own last
 * failure.
 */
#include "gpumat_internal.h"

#include <stdio.h>
#include <string.h>

static _Thread_local char thread_last_error[GPUMAT__MESSAGE_SIZE];
/* What gpumat_last_error() returns: a private copy, so that another thread
 * recording a failure on the same context cannot change it under the
 * caller. */
static _Thread_local char thread_returned_error[GPUMAT__MESSAGE_SIZE];

const char *gpumat_strerror(gpumat_status status)
{
    switch (status) {
    case GPUMAT_OK: return "success";
    case GPUMAT_ERR_INVALID_ARGUMENT: return "invalid argument";
    case GPUMAT_ERR_SHAPE: return "shape mismatch";
    case GPUMAT_ERR_DTYPE: return "element type mismatch";
    case GPUMAT_ERR_ALIASING: return "output aliases an input";
    case GPUMAT_ERR_CONTEXT_MISMATCH: return "operands belong to different contexts";
    case GPUMAT_ERR_SIZE_OVERFLOW: return "size overflows";
    case GPUMAT_ERR_OUT_OF_MEMORY: return "out of memory";
    case GPUMAT_ERR_NO_DEVICE: return "no suitable OpenCL device";
    case GPUMAT_ERR_UNSUPPORTED: return "not supported by this device or installation";
    case GPUMAT_ERR_BUILD: return "kernel build failed";
    case GPUMAT_ERR_OPENCL: return "OpenCL error";
    case GPUMAT_ERR_BACKEND: return "GEMM backend error";
    }
    return "unknown status";
}

const char *gpumat__cl_error_name(cl_int err)
{
    switch (err) {
#define NAME(e) case e: return #e
    NAME(CL_SUCCESS);
    NAME(CL_DEVICE_NOT_FOUND);
    NAME(CL_DEVICE_NOT_AVAILABLE);
    NAME(CL_COMPILER_NOT_AVAILABLE);
    NAME(CL_MEM_OBJECT_ALLOCATION_FAILURE);
    NAME(CL_OUT_OF_RESOURCES);
    NAME(CL_OUT_OF_HOST_MEMORY);
    NAME(CL_PROFILING_INFO_NOT_AVAILABLE);
    NAME(CL_MEM_COPY_OVERLAP);
    NAME(CL_IMAGE_FORMAT_MISMATCH);
    NAME(CL_IMAGE_FORMAT_NOT_SUPPORTED);
    NAME(CL_BUILD_PROGRAM_FAILURE);
    NAME(CL_MAP_FAILURE);
    NAME(CL_MISALIGNED_SUB_BUFFER_OFFSET);
    NAME(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST);
    NAME(CL_COMPILE_PROGRAM_FAILURE);
    NAME(CL_LINKER_NOT_AVAILABLE);
    NAME(CL_LINK_PROGRAM_FAILURE);
    NAME(CL_DEVICE_PARTITION_FAILED);
    NAME(CL_KERNEL_ARG_INFO_NOT_AVAILABLE);
    NAME(CL_INVALID_VALUE);
    NAME(CL_INVALID_DEVICE_TYPE);
    NAME(CL_INVALID_PLATFORM);
    NAME(CL_INVALID_DEVICE);
    NAME(CL_INVALID_CONTEXT);
    NAME(CL_INVALID_QUEUE_PROPERTIES);
    NAME(CL_INVALID_COMMAND_QUEUE);
    NAME(CL_INVALID_HOST_PTR);
    NAME(CL_INVALID_MEM_OBJECT);
    NAME(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR);
    NAME(CL_INVALID_IMAGE_SIZE);
    NAME(CL_INVALID_SAMPLER);
    NAME(CL_INVALID_BINARY);
    NAME(CL_INVALID_BUILD_OPTIONS);
    NAME(CL_INVALID_PROGRAM);
    NAME(CL_INVALID_PROGRAM_EXECUTABLE);
    NAME(CL_INVALID_KERNEL_NAME);
    NAME(CL_INVALID_KERNEL_DEFINITION);
    NAME(CL_INVALID_KERNEL);
    NAME(CL_INVALID_ARG_INDEX);
    NAME(CL_INVALID_ARG_VALUE);
    NAME(CL_INVALID_ARG_SIZE);
    NAME(CL_INVALID_KERNEL_ARGS);
    NAME(CL_INVALID_WORK_DIMENSION);
    NAME(CL_INVALID_WORK_GROUP_SIZE);
    NAME(CL_INVALID_WORK_ITEM_SIZE);
    NAME(CL_INVALID_GLOBAL_OFFSET);
    NAME(CL_INVALID_EVENT_WAIT_LIST);
    NAME(CL_INVALID_EVENT);
    NAME(CL_INVALID_OPERATION);
    NAME(CL_INVALID_GL_OBJECT);
    NAME(CL_INVALID_BUFFER_SIZE);
    NAME(CL_INVALID_MIP_LEVEL);
    NAME(CL_INVALID_GLOBAL_WORK_SIZE);
    NAME(CL_INVALID_PROPERTY);
    NAME(CL_INVALID_IMAGE_DESCRIPTOR);
    NAME(CL_INVALID_COMPILER_OPTIONS);
    NAME(CL_INVALID_LINKER_OPTIONS);
    NAME(CL_INVALID_DEVICE_PARTITION_COUNT);
#undef NAME
    case -1001: return "CL_PLATFORM_NOT_FOUND_KHR";
    }
    return "CL_UNKNOWN_ERROR";
}

static void record(gpumat_context *ctx, const char *message)
{
    snprintf(thread_last_error, sizeof thread_last_error, "%s", message);
    if (ctx) {
        pthread_mutex_lock(&ctx->error_lock);
        snprintf(ctx->last_error, sizeof ctx->last_error, "%s", message);
        pthread_mutex_unlock(&ctx->error_lock);
    }
}

gpumat_status gpumat__fail(gpumat_context *ctx, gpumat_status status, const char *fmt, ...)
{
    char message[GPUMAT__MESSAGE_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    record(ctx, message);
    return status;
}

gpumat_status gpumat__fail_cl(gpumat_context *ctx, cl_int err, const char *fmt, ...)
{
    char what[GPUMAT__MESSAGE_SIZE / 2];
    char message[GPUMAT__MESSAGE_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(message, sizeof message, "%s: %s (%d)", what, gpumat__cl_error_name(err), (int)err);
    record(ctx, message);
    return gpumat__status_of_cl(err);
}

gpumat_status gpumat__status_of_cl(cl_int err)
{
    if (err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_OUT_OF_HOST_MEMORY ||
        err == CL_INVALID_BUFFER_SIZE)
        return GPUMAT_ERR_OUT_OF_MEMORY;
    return GPUMAT_ERR_OPENCL;
}

const char *gpumat_last_error(const gpumat_context *ctx)
{
    if (!ctx)
        return thread_last_error;
    gpumat_context *mutable_ctx = (gpumat_context *)ctx;
    pthread_mutex_lock(&mutable_ctx->error_lock);
    memcpy(thread_returned_error, ctx->last_error, sizeof thread_returned_error);
    pthread_mutex_unlock(&mutable_ctx->error_lock);
    return thread_returned_error;
}
