/*
 * lds_probe - how fast a GPU serves one warp's 16-byte local-memory reads,
 * by the pattern of addresses its 32 work-items read (docs/gemm-notes.md,
 * round 14).  The double GEMM tiles read A's and B's local tiles in 16-byte
 * pieces whose addresses follow the work-items' place in a warp (MSUB x
 * NSUB patches, 4-element runs); their speed differed by 5-13% with the
 * same instructions, so this times each such pattern alone.
 *
 * Each pattern is a map from lane (0-31) to a 16-byte slot; every
 * work-item reads its slot, plus multiples of 512 bytes (which keep the
 * banks), from volatile local memory in 8 independent streams, and the
 * figure is warp-wide reads per SM per clock at the clock given.
 *
 *   cc -O2 tools/lds_probe.c -o lds_probe -lOpenCL && ./lds_probe [CUS [MHZ]]
 */
#define _POSIX_C_SOURCE 200809L
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <stdio.h>
#include <stdlib.h>

static const char *source =
    "__kernel __attribute__((reqd_work_group_size(256, 1, 1)))\n"
    "void probe(__global ulong *out, __global const int *slot, const int iters)\n"
    "{\n"
    "    __local ulong2 tile[2048];\n"
    "    volatile __local ulong2 *v = tile;\n"
    "    const int lid = get_local_id(0);\n"
    "    for (int i = lid; i < 2048; i += 256)\n"
    "        tile[i] = (ulong2)(i, 3 * i);\n"
    "    barrier(CLK_LOCAL_MEM_FENCE);\n"
    "    const int base = slot[lid & 31] + (lid >> 5) * 32;\n"
    "    ulong x0 = 0, x1 = 0, x2 = 0, x3 = 0, x4 = 0, x5 = 0, x6 = 0, x7 = 0;\n"
    "    for (int i = 0; i < iters; ++i) {\n"
    "        ulong2 a = v[base], b = v[base + 256], c = v[base + 512], d = v[base + 768];\n"
    "        ulong2 e = v[base + 1024], f = v[base + 1280], g = v[base + 1536];\n"
    "        ulong2 h = v[base + 1792];\n"
    "        x0 ^= a.x + a.y; x1 ^= b.x + b.y; x2 ^= c.x + c.y; x3 ^= d.x + d.y;\n"
    "        x4 ^= e.x + e.y; x5 ^= f.x + f.y; x6 ^= g.x + g.y; x7 ^= h.x + h.y;\n"
    "    }\n"
    "    out[get_global_id(0)] = x0 ^ x1 ^ x2 ^ x3 ^ x4 ^ x5 ^ x6 ^ x7;\n"
    "}\n";

/* Slots (16-byte units) by lane.  "ty" and "tx" name the GEMM places: a
 * warp over an 8 x 4 patch has ty = lane / 4, tx = lane % 4; over 4 x 8,
 * ty = lane / 8, tx = lane % 8.  A run of 4 doubles is 2 slots, of 2 one. */
static int slot_of(int pattern, int lane)
{
    switch (pattern) {
    case 0: return 0;
    case 1: return lane;
    case 2: return lane % 16;
    case 3: return lane % 8;
    case 4: return lane / 4;
    case 5: return lane % 8 * 2;
    case 6: return lane / 4 * 2;
    case 7: return lane % 4 * 2;
    case 8: return lane / 8 * 2;
    case 9: return lane % 16 * 2;
    case 10: return lane / 16 * 2;
    case 11: return lane % 4;
    case 12: return lane / 8;
    default: return lane % 8 * 4;
    }
}

static const char *const names[] = {
    "all one slot (broadcast)",
    "32 slots, consecutive",
    "16 consecutive, each twice (lane % 16)",
    "8 consecutive, each 4 times (lane % 8): 4x8 pairs, B",
    "8 consecutive, runs of 4 lanes (lane / 4): 8x4 pairs, A",
    "8 slots 32 B apart (lane % 8 * 2): 4x8 fours, B",
    "8 slots 32 B apart, runs of 4 lanes (lane / 4 * 2): 8x4 fours, A",
    "4 slots 32 B apart (lane % 4 * 2): 8x4 fours, B",
    "4 slots 32 B apart, runs of 8 (lane / 8 * 2): 4x8 fours, A",
    "16 slots 32 B apart (lane % 16 * 2)",
    "2 slots 32 B apart, runs of 16 (lane / 16 * 2)",
    "4 consecutive (lane % 4): 8x4 pairs, B",
    "4 consecutive, runs of 8 (lane / 8): 4x8 pairs, A",
    "8 slots 64 B apart (lane % 8 * 4)",
};

#define CHECK(x)                                                                           \
    do {                                                                                   \
        cl_int e_ = (x);                                                                   \
        if (e_ != CL_SUCCESS) {                                                            \
            fprintf(stderr, "lds_probe: %s: error %d\n", #x, (int)e_);                     \
            return 1;                                                                      \
        }                                                                                  \
    } while (0)

int main(int argc, char **argv)
{
    cl_platform_id platform;
    cl_device_id device;
    cl_int err;
    CHECK(clGetPlatformIDs(1, &platform, NULL));
    CHECK(clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 1, &device, NULL));
    cl_uint units = 0, mhz = 0;
    CHECK(clGetDeviceInfo(device, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof units, &units, NULL));
    CHECK(clGetDeviceInfo(device, CL_DEVICE_MAX_CLOCK_FREQUENCY, sizeof mhz, &mhz, NULL));
    if (argc > 1)
        units = (cl_uint)atoi(argv[1]);
    if (argc > 2)
        mhz = (cl_uint)atoi(argv[2]);
    cl_context ctx = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
    CHECK(err);
    cl_command_queue q = clCreateCommandQueue(ctx, device, CL_QUEUE_PROFILING_ENABLE, &err);
    CHECK(err);
    cl_program prog = clCreateProgramWithSource(ctx, 1, &source, NULL, &err);
    CHECK(err);
    CHECK(clBuildProgram(prog, 1, &device, "", NULL, NULL));
    cl_kernel k = clCreateKernel(prog, "probe", &err);
    CHECK(err);
    const size_t groups = (size_t)units * 4, local = 256, global = groups * local;
    const int iters = 4096;
    cl_mem out = clCreateBuffer(ctx, CL_MEM_WRITE_ONLY, global * sizeof(cl_ulong), NULL, &err);
    CHECK(err);
    cl_mem slots = clCreateBuffer(ctx, CL_MEM_READ_ONLY, 32 * sizeof(cl_int), NULL, &err);
    CHECK(err);
    CHECK(clSetKernelArg(k, 0, sizeof out, &out));
    CHECK(clSetKernelArg(k, 1, sizeof slots, &slots));
    CHECK(clSetKernelArg(k, 2, sizeof iters, &iters));
    printf("%u compute units at %u MHz; warp-wide 16-byte reads per unit per clock\n", units,
           mhz);
    for (int p = 0; p < (int)(sizeof names / sizeof names[0]); ++p) {
        cl_int s[32];
        for (int lane = 0; lane < 32; ++lane)
            s[lane] = slot_of(p, lane);
        CHECK(clEnqueueWriteBuffer(q, slots, CL_TRUE, 0, sizeof s, s, 0, NULL, NULL));
        double best = 0;
        for (int r = 0; r < 4; ++r) { /* the first is a warm-up */
            cl_event ev;
            CHECK(clEnqueueNDRangeKernel(q, k, 1, NULL, &global, &local, 0, NULL, &ev));
            CHECK(clWaitForEvents(1, &ev));
            cl_ulong t0, t1;
            CHECK(clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_START, sizeof t0, &t0, NULL));
            CHECK(clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL));
            clReleaseEvent(ev);
            double reads = (double)global / 32 * iters * 8;
            double rate = reads / units / ((double)(t1 - t0) * 1e-9 * mhz * 1e6);
            if (r > 0 && rate > best)
                best = rate;
        }
        printf("%5.3f  %2d  %s\n", best, p, names[p]);
    }
    clReleaseMemObject(out);
    clReleaseMemObject(slots);
    clReleaseKernel(k);
    clReleaseProgram(prog);
    clReleaseCommandQueue(q);
    clReleaseContext(ctx);
    return 0;
}
