/*
 * cl_start_probe - how long a fresh process waits for the OpenCL driver
 * before libgpumat could do anything: clGetPlatformIDs, clGetDeviceIDs,
 * clCreateContext, clCreateCommandQueue and a first 4-byte write, each
 * timed.  The floor under gpumat-bench's "start" rows (docs/performance.md).
 *
 *   cc -O2 tools/cl_start_probe.c -o cl_start_probe -lOpenCL && ./cl_start_probe
 */
#define _POSIX_C_SOURCE 200809L
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <stdio.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

int main(void)
{
    double t0 = now_ms();
    cl_platform_id platform;
    cl_uint n = 0;
    if (clGetPlatformIDs(1, &platform, &n) != CL_SUCCESS || n == 0) {
        fprintf(stderr, "cl_start_probe: no OpenCL platform\n");
        return 1;
    }
    double t1 = now_ms();
    cl_device_id device;
    if (clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 1, &device, &n) != CL_SUCCESS || n == 0) {
        fprintf(stderr, "cl_start_probe: no device on the first platform\n");
        return 1;
    }
    double t2 = now_ms();
    cl_int err;
    cl_context ctx = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
    if (err != CL_SUCCESS) {
        fprintf(stderr, "cl_start_probe: clCreateContext: %d\n", err);
        return 1;
    }
    double t3 = now_ms();
    cl_command_queue queue = clCreateCommandQueue(ctx, device, 0, &err);
    double t4 = now_ms();
    float x = 1;
    cl_mem buf = clCreateBuffer(ctx, CL_MEM_READ_WRITE, sizeof x, NULL, &err);
    if (err == CL_SUCCESS)
        err = clEnqueueWriteBuffer(queue, buf, CL_TRUE, 0, sizeof x, &x, 0, NULL, NULL);
    double t5 = now_ms();
    printf("platforms %.1f ms, devices %.1f ms, context %.1f ms, queue %.1f ms, "
           "first write %.1f ms: total %.1f ms%s\n",
           t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t5 - t0,
           err == CL_SUCCESS ? "" : " (the write failed)");
    clReleaseMemObject(buf);
    clReleaseCommandQueue(queue);
    clReleaseContext(ctx);
    return 0;
}
