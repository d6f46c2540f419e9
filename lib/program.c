/*
 * program.c - builds the embedded kernel programs for a context, lazily:
 * a program is compiled the first time one of its kernels is needed, once
 * per element type, with the context's profile parameters, or loaded from
 * the persistent kernel cache (cache.c) when an earlier process built it.
 */
#include "gpumat_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const program_names[GPUMAT__PROGRAM_COUNT] = {
    [GPUMAT__PROGRAM_ELEMENTWISE] = "elementwise",
    [GPUMAT__PROGRAM_TRANSPOSE] = "transpose",
    [GPUMAT__PROGRAM_GEMM] = "gemm",
    [GPUMAT__PROGRAM_ML] = "ml",
    [GPUMAT__PROGRAM_GEMM_CPU] = "gemm_cpu",
    [GPUMAT__PROGRAM_GEMM_SK] = "gemm_sk",
};

/* The stream-K kernels are a program of their own, from cl/gemm.cl: they
 * tripled NVIDIA's build time of the gemm program (H100: 5.9 -> 16.1 s
 * cold), which every product would otherwise pay for shapes few use. */
static const char *source_name(gpumat__program_id id)
{
    return id == GPUMAT__PROGRAM_GEMM_SK ? "gemm" : program_names[id];
}

static const char *embedded_text(const char *name)
{
    for (size_t i = 0; i < gpumat__embedded_source_count; ++i)
        if (strcmp(gpumat__embedded_sources[i].name, name) == 0)
            return gpumat__embedded_sources[i].text;
    return NULL;
}

static bool is_ident_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_';
}

/* Whether name (len characters) occurs in text as a whole identifier. */
static bool mentions(const char *text, const char *name, size_t len)
{
    for (const char *p = text; (p = strstr(p, name)) != NULL; ++p)
        if ((p == text || !is_ident_char(p[-1])) && !is_ident_char(p[len]))
            return true;
    return false;
}

/* The context's options, less every -DNAME=V that this program cannot
 * read: NAME absent from its source, or sizing the other element type's
 * GEMM tiles.  A parameter change then rebuilds (and re-caches) only the
 * programs that use it: a double-only GEMM override leaves the float
 * program, and every transpose and elementwise program, as they were. */
static void program_options(const char *all, const char *text, bool f64, char *out,
                            size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (const char *t = all; *t;) {
        while (*t == ' ')
            ++t;
        size_t n = strcspn(t, " ");
        if (n == 0)
            break;
        bool keep = true;
        if (strncmp(t, "-D", 2) == 0) {
            char name[64];
            size_t len = strcspn(t + 2, "= ");
            if (len < sizeof name) {
                memcpy(name, t + 2, len);
                name[len] = '\0';
                keep = !gpumat__profile_option_other_type(name, len, f64) &&
                       mentions(text, name, len);
            }
        }
        if (keep && used + n + 2 <= size) {
            if (used)
                out[used++] = ' ';
            memcpy(out + used, t, n);
            used += n;
            out[used] = '\0';
        }
        t += n;
    }
}

/* Reports a failed build with as much of the compiler's log as fits. */
static gpumat_status fail_build(gpumat_context *ctx, cl_program program, cl_int err,
                                const char *name, gpumat_dtype dtype, const char *options)
{
    size_t size = 0;
    char *log = NULL;
    if (clGetProgramBuildInfo(program, ctx->device, CL_PROGRAM_BUILD_LOG, 0, NULL,
                              &size) == CL_SUCCESS && size > 0) {
        log = malloc(size + 1);
        if (log && clGetProgramBuildInfo(program, ctx->device, CL_PROGRAM_BUILD_LOG, size,
                                         log, NULL) == CL_SUCCESS)
            log[size] = '\0';
        else if (log)
            log[0] = '\0';
    }
    gpumat_status status = gpumat__fail(
        ctx, err == CL_BUILD_PROGRAM_FAILURE || err == CL_INVALID_BUILD_OPTIONS
                 ? GPUMAT_ERR_BUILD : GPUMAT_ERR_OPENCL,
        "building kernel program '%s' (%s) for %s failed: %s (%d)\noptions: %s\nbuild log:\n%s",
        name, dtype == GPUMAT_F64 ? "f64" : "f32", ctx->info.name,
        gpumat__cl_error_name(err), (int)err, options, log ? log : "(none)");
    free(log);
    return status;
}

static gpumat_status compile(gpumat_context *ctx, const char *name, const char *text,
                             gpumat_dtype dtype, const char *options, cl_program *out)
{
    cl_int err;
    cl_program program = clCreateProgramWithSource(ctx->cl_ctx, 1, &text, NULL, &err);
    if (err != CL_SUCCESS)
        return gpumat__fail_cl(ctx, err, "clCreateProgramWithSource(%s)", name);
    err = clBuildProgram(program, 1, &ctx->device, options, NULL, NULL);
    if (err != CL_SUCCESS) {
        gpumat_status status = fail_build(ctx, program, err, name, dtype, options);
        clReleaseProgram(program);
        return status;
    }
    *out = program;
    return GPUMAT_OK;
}

#ifndef CL_DEVICE_COMPUTE_CAPABILITY_MAJOR_NV
#define CL_DEVICE_COMPUTE_CAPABILITY_MAJOR_NV 0x4000
#define CL_DEVICE_COMPUTE_CAPABILITY_MINOR_NV 0x4001
#endif

/* The device's compute capability times 10 when NVIDIA's own compiler
 * builds for it, else 0: only that compiler takes -cl-nv-* options
 * (cl_nv_compiler_options) and inline PTX; other drivers for NVIDIA GPUs
 * (PoCL's CUDA back end, say) get the portable build. */
static unsigned nv_sm(const gpumat_context *ctx)
{
    if (ctx->info.vendor != GPUMAT_VENDOR_NVIDIA || ctx->info.type != GPUMAT_DEVICE_GPU)
        return 0;
    size_t size = 0;
    if (clGetDeviceInfo(ctx->device, CL_DEVICE_EXTENSIONS, 0, NULL, &size) != CL_SUCCESS ||
        size == 0)
        return 0;
    char *ext = malloc(size + 1);
    bool nv = ext && clGetDeviceInfo(ctx->device, CL_DEVICE_EXTENSIONS, size, ext, NULL) ==
                         CL_SUCCESS;
    if (nv) {
        ext[size] = '\0';
        nv = strstr(ext, "cl_nv_compiler_options") && strstr(ext, "cl_nv_device_attribute_query");
    }
    free(ext);
    cl_uint major = 0, minor = 0;
    if (!nv ||
        clGetDeviceInfo(ctx->device, CL_DEVICE_COMPUTE_CAPABILITY_MAJOR_NV, sizeof major, &major,
                        NULL) != CL_SUCCESS ||
        clGetDeviceInfo(ctx->device, CL_DEVICE_COMPUTE_CAPABILITY_MINOR_NV, sizeof minor, &minor,
                        NULL) != CL_SUCCESS)
        return 0;
    return major * 10 + (minor < 10 ? minor : 9);
}

/* The float GEMM program's big-tile kernels, rewritten by ptx_tail.c. */
static const char *const deferred_kernels[] = {"gemm_nn", "gemm_nt", "gemm_tn", "gemm_tt"};

/* The program rebuilt from its PTX after ptx_tail.c's pass, or the program
 * itself when the pass does not apply or any step fails: the pass only
 * reschedules, so the original is always a correct fallback. */
static cl_program defer_products(gpumat_context *ctx, cl_program program, const char *options,
                                 unsigned count)
{
    size_t len = 0, out_len = 0;
    unsigned rewritten = 0;
    unsigned char *ptx = gpumat__program_binary(ctx, program, &len);
    char *text = ptx ? gpumat__ptx_defer_products((const char *)ptx, len, deferred_kernels,
                                                  sizeof deferred_kernels /
                                                      sizeof deferred_kernels[0],
                                                  count, &out_len, &rewritten)
                     : NULL;
    free(ptx);
    if (!text)
        return program;
    cl_program rebuilt =
        gpumat__program_from_binary(ctx, (const unsigned char *)text, out_len, options);
    free(text);
    if (!rebuilt)
        return program;
    clReleaseProgram(program);
    return rebuilt;
}

/* The persistent cache first; the compiler when it has nothing usable, and
 * then the result goes back into the cache. */
static gpumat_status build(gpumat_context *ctx, gpumat__program_id id, gpumat_dtype dtype,
                           cl_program *out)
{
    const char *name = program_names[id];
    const char *text = embedded_text(source_name(id));
    if (!text)
        return gpumat__fail(ctx, GPUMAT_ERR_BUILD, "kernel source '%s' is not embedded", name);

    /* The profile's portable options, then those only NVIDIA's compiler
     * takes (empty elsewhere), then the element type. */
    char vendor[128], own[sizeof ctx->build_options];
    char options[sizeof own + sizeof vendor + 96];
    unsigned sm = nv_sm(ctx);
    gpumat__profile_vendor_options(&ctx->profile, sm, dtype == GPUMAT_F64, vendor,
                                   sizeof vendor);
    program_options(ctx->build_options, text, dtype == GPUMAT_F64, own, sizeof own);
    /* ptx_tail.c's pass: measured on sm_90 only.  Its count joins the
     * options (the source ignores the macro) so that cached binaries with
     * and without it never mix. */
    unsigned tail = id == GPUMAT__PROGRAM_GEMM && dtype == GPUMAT_F32 && sm >= 90
                        ? ctx->profile.gemm.nv_tail
                        : 0;
    char tail_option[40] = "";
    if (tail)
        snprintf(tail_option, sizeof tail_option, " -DGPUMAT_NV_TAIL=%u", tail);
    snprintf(options, sizeof options, "%s%s%s %s%s%s", own, vendor[0] ? " " : "",
             vendor, dtype == GPUMAT_F64 ? "-DREAL=double -DGPUMAT_FP64" : "-DREAL=float",
             id == GPUMAT__PROGRAM_GEMM_SK ? " -DGPUMAT_STREAM_K" : "", tail_option);

    double start = gpumat__now_seconds();
    gpumat__cache_entry entry;
    bool cached = gpumat__cache_entry_init(ctx, name, text, options, &entry);
    cl_program program = cached ? gpumat__cache_load(ctx, &entry, options) : NULL;
    gpumat_status status = GPUMAT_OK;
    if (program) {
        ctx->build_stats.cache_hits++;
    } else {
        status = compile(ctx, name, text, dtype, options, &program);
        if (status == GPUMAT_OK && tail)
            program = defer_products(ctx, program, options, tail);
        if (status == GPUMAT_OK) {
            ctx->build_stats.cache_misses++;
            if (cached)
                gpumat__cache_store(ctx, &entry, program);
        }
    }
    if (cached)
        gpumat__cache_entry_free(&entry);
    if (status == GPUMAT_OK) {
        ctx->build_stats.programs_built++;
        ctx->build_stats.build_seconds += gpumat__now_seconds() - start;
        *out = program;
    }
    return status;
}

gpumat_status gpumat__kernel(gpumat_context *ctx, gpumat__program_id id, gpumat_dtype dtype,
                             const char *kernel_name, cl_kernel *kernel)
{
    gpumat__program_slot *slot = &ctx->programs[id][dtype == GPUMAT_F64];
    if (!slot->program) {
        gpumat_status status = build(ctx, id, dtype, &slot->program);
        if (status != GPUMAT_OK)
            return status;
    }
    for (size_t i = 0; i < GPUMAT__MAX_KERNELS; ++i) {
        gpumat__kernel_slot *k = &slot->kernels[i];
        if (k->name && strcmp(k->name, kernel_name) == 0) {
            *kernel = k->kernel;
            return GPUMAT_OK;
        }
        if (!k->name) {
            cl_int err;
            k->kernel = clCreateKernel(slot->program, kernel_name, &err);
            if (err != CL_SUCCESS)
                return gpumat__fail_cl(ctx, err, "clCreateKernel(%s)", kernel_name);
            /* kernel names are string literals of the library */
            k->name = kernel_name;
            *kernel = k->kernel;
            return GPUMAT_OK;
        }
    }
    return gpumat__fail(ctx, GPUMAT_ERR_OPENCL, "too many kernels in program '%s'",
                        program_names[id]);
}

void gpumat__programs_release(gpumat_context *ctx)
{
    for (int id = 0; id < GPUMAT__PROGRAM_COUNT; ++id)
        for (int d = 0; d < 2; ++d) {
            gpumat__program_slot *slot = &ctx->programs[id][d];
            for (size_t i = 0; i < GPUMAT__MAX_KERNELS && slot->kernels[i].name; ++i)
                clReleaseKernel(slot->kernels[i].kernel);
            if (slot->program)
                clReleaseProgram(slot->program);
            memset(slot, 0, sizeof *slot);
        }
}
