/*
 * program.c - builds the embedded kernel programs for a context, lazily:
 * a program is compiled the first time one of its kernels is needed, once
 * per element type, with the context's profile parameters, or loaded from
 * the persistent kernel cache (cache.c) when an earlier process built it.
 */
#include "gpumat_internal.h"

#include <stdarg.h>
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
    [GPUMAT__PROGRAM_GEMM_SK_MID] = "gemm_sk_mid",
    [GPUMAT__PROGRAM_GEMM_KSPLIT] = "gemm_ksplit",
};

static bool stream_k_program(gpumat__program_id id)
{
    return id == GPUMAT__PROGRAM_GEMM_SK || id == GPUMAT__PROGRAM_GEMM_SK_MID;
}

/* Whether program id runs the split tile (mid_value). */
static bool split_tile_program(gpumat__program_id id)
{
    return id == GPUMAT__PROGRAM_GEMM_SK_MID || id == GPUMAT__PROGRAM_GEMM_KSPLIT;
}

/* The stream-K kernels are a program of their own, from cl/gemm.cl: they
 * tripled NVIDIA's build time of the gemm program (H100: 5.9 -> 16.1 s
 * cold), which every product would otherwise pay for shapes few use.  The
 * split tile's are one more, the same source with the big tile's macros
 * set to that tile (mid_value), and so are its split-K kernels. */
static const char *source_name(gpumat__program_id id)
{
    return stream_k_program(id) || id == GPUMAT__PROGRAM_GEMM_KSPLIT ? "gemm"
                                                                      : program_names[id];
}

typedef struct gpumat__tile {
    unsigned mwg, nwg, mdimc, ndimc;
} gpumat__tile;

/* The float tile (rows, columns, work-group) that a GEMM program's big
 * kernels take: the split tile's in its own program. */
static gpumat__tile float_tile(const gpumat__gemm_params *g, gpumat__program_id id)
{
    if (split_tile_program(id))
        return (gpumat__tile){g->mmwg, g->mnwg, g->mmdimc, g->mndimc};
    return (gpumat__tile){g->mwg, g->nwg, g->mdimc, g->ndimc};
}

/* The split tile's value for a big-tile macro of cl/gemm.cl, or 0 for any
 * other name. */
static unsigned mid_value(const gpumat__gemm_params *g, const char *name)
{
    static const char *const names[] = {"MWG", "NWG", "MDIMC", "NDIMC"};
    const gpumat__tile t = float_tile(g, GPUMAT__PROGRAM_GEMM_SK_MID);
    const unsigned values[] = {t.mwg, t.nwg, t.mdimc, t.ndimc};
    for (size_t i = 0; i < 4; ++i) {
        size_t n = strlen(names[i]);
        if (!strncmp(name, names[i], n) && (!name[n] || !strcmp(name + n, "64")))
            return values[i];
    }
    return 0;
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
static void program_options(const char *all, const char *text, bool f64,
                            const gpumat__gemm_params *mid, char *out, size_t size)
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
        const char *emit = t; /* the token, or with the split tile's value */
        size_t emit_len = n;
        char resized[80];
        if (strncmp(t, "-D", 2) == 0) {
            char name[64];
            size_t len = strcspn(t + 2, "= ");
            if (len < sizeof name) {
                memcpy(name, t + 2, len);
                name[len] = '\0';
                keep = !gpumat__profile_option_other_type(name, len, f64) &&
                       mentions(text, name, len);
                unsigned value = mid ? mid_value(mid, name) : 0;
                if (value) {
                    snprintf(resized, sizeof resized, "-D%s=%u", name, value);
                    emit = resized;
                    emit_len = strlen(resized);
                }
            }
        }
        if (keep && used + emit_len + 2 <= size) {
            if (used)
                out[used++] = ' ';
            memcpy(out + used, emit, emit_len);
            used += emit_len;
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

/* The float GEMM program's big-tile kernels, which nv_ptx.c's passes edit
 * (the A-tile skew only in gemm_nn, the one NN kernel). */
static const char *const nv_kernels[] = {"gemm_nn", "gemm_nt", "gemm_tn", "gemm_tt"};

/* The kernels of the extra-column pass (nv_ptx.c): TT's loop changes its
 * schedule under it (ptxas 13.0 on the H100's PTX), the others keep theirs
 * instruction for instruction. */
static const char *const xcol_kernels[] = {"gemm_nn", "gemm_nt", "gemm_tn"};

/* Fills the first `bytes` of `out` with the byte `poison`, runs kernel
 * `name` of `program` with n_args arguments over the grid (offset along x
 * by `offset` work-items; 0: none) and reads `out` back into host; false on
 * any OpenCL error.  Callers poison their two runs differently, so that an
 * element neither writes still compares unequal.  Each step waits on the
 * previous one's event: a wrapped queue may be out of order. */
static bool run_and_read(gpumat_context *ctx, cl_program program, const char *name,
                         cl_uint n_args, const void *const *args, const size_t *sizes,
                         size_t offset, const size_t global[2], const size_t local[2], cl_mem out,
                         size_t bytes, unsigned char poison, void *host)
{
    cl_int err;
    cl_kernel kernel = clCreateKernel(program, name, &err);
    for (cl_uint i = 0; err == CL_SUCCESS && i < n_args; ++i)
        err = clSetKernelArg(kernel, i, sizes[i], args[i]);
    cl_event filled = NULL, done = NULL;
    const size_t origin[2] = {offset, 0};
    if (err == CL_SUCCESS)
        err = clEnqueueFillBuffer(ctx->queue, out, &poison, 1, 0, bytes, 0, NULL, &filled);
    if (err == CL_SUCCESS)
        err = clEnqueueNDRangeKernel(ctx->queue, kernel, 2, offset ? origin : NULL, global, local,
                                     1, &filled, &done);
    if (err == CL_SUCCESS)
        err = clEnqueueReadBuffer(ctx->queue, out, CL_TRUE, 0, bytes, host, 1, &done, NULL);
    if (filled)
        clReleaseEvent(filled);
    if (done)
        clReleaseEvent(done);
    if (kernel)
        clReleaseKernel(kernel);
    return err == CL_SUCCESS;
}

/* C (M x N, into host) = 1.5 op(A) op(B) by `name` (a big-tile kernel:
 * gemm_XY) of `program` over the grid, as run_and_read. */
static bool run_product(gpumat_context *ctx, cl_program program, const char *name, cl_int m,
                        cl_int n, cl_int k, const cl_mem buf[3], const size_t global[2],
                        const size_t local[2], size_t offset, unsigned char poison,
                        cl_float *host)
{
    const cl_int lda = name[5] == 't' ? m : k, ldb = name[6] == 't' ? k : n;
    const cl_float alpha = 1.5f, beta = 0;
    const void *args[11] = {&m, &n, &k, &alpha, &beta, &buf[0], &lda, &buf[1], &ldb, &buf[2], &n};
    const size_t sizes[11] = {sizeof m,    sizeof n,       sizeof k,   sizeof alpha,
                              sizeof beta, sizeof(cl_mem), sizeof lda, sizeof(cl_mem),
                              sizeof ldb,  sizeof(cl_mem), sizeof n};
    return run_and_read(ctx, program, name, 11, args, sizes, offset, global, local, buf[2],
                        (size_t)m * (size_t)n * sizeof(cl_float), poison, host);
}

/* x[0, n) = values in [-1, 1) from `seed`: the validation's operands,
 * the same on every run. */
static void fill_inputs(cl_float *x, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; ++i) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (cl_float)((int32_t)(seed >> 8) - (1 << 23)) / (cl_float)(1 << 23);
    }
}

/* Do programs a and b compute bit-identical products with every kernel of
 * nv_kernels?  The passes only move instructions and local addresses, so
 * any difference means one misread the PTX.  200^3: whole and edge tiles,
 * twelve whole K steps and an edge one.  With `xcol` (b has the extra-
 * column pass), also 300 x 200 x 200 by each of xcol_kernels on b over the
 * extra-column grid (2 rows of 3 groups, the third taking the third tile
 * row), against a over its plain grid. */
static bool same_products(gpumat_context *ctx, cl_program a, cl_program b, bool xcol)
{
    enum { S = 200, XM = 300 };
    const gpumat__gemm_params *g = &ctx->profile.gemm;
    const size_t count = (size_t)XM * S, bytes = count * sizeof(cl_float);
    cl_float *host = malloc(4 * bytes); /* A, B, then C from a and from b */
    if (!host)
        return false;
    fill_inputs(host, 2 * count, 12345);
    cl_int err = CL_SUCCESS;
    cl_mem buf[3] = {NULL, NULL, NULL};
    for (int i = 0; i < 3 && err == CL_SUCCESS; ++i)
        buf[i] = clCreateBuffer(ctx->cl_ctx,
                                i < 2 ? CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR : CL_MEM_READ_WRITE,
                                bytes, i < 2 ? host + i * count : NULL, &err);
    const size_t local[2] = {g->ndimc, g->mdimc};
    const size_t tn = (S + g->nwg - 1) / g->nwg, tm = (S + g->mwg - 1) / g->mwg;
    const size_t global[2] = {tn * g->ndimc, tm * g->mdimc};
    /* XM rows: one tile row more than S when the tiles are 128 high. */
    const size_t xm_tiles = (XM + g->mwg - 1) / g->mwg;
    const size_t x_plain[2] = {tn * g->ndimc, xm_tiles * g->mdimc};
    const size_t x_extra[2] = {(tn + 1) * g->ndimc, (xm_tiles - 1) * g->mdimc};
    cl_float *ca = host + 2 * count, *cb = host + 3 * count;
    bool same = err == CL_SUCCESS;
    for (size_t k = 0; same && k < sizeof nv_kernels / sizeof nv_kernels[0]; ++k)
        same = run_product(ctx, a, nv_kernels[k], S, S, S, buf, global, local, 0, 0xff, ca) &&
               run_product(ctx, b, nv_kernels[k], S, S, S, buf, global, local, 0, 0xfe, cb) &&
               memcmp(ca, cb, (size_t)S * S * sizeof(cl_float)) == 0;
    /* The extra column covers the last tile row only when it has no more
     * tiles than there are rows above it. */
    xcol = xcol && xm_tiles >= 2 && tn <= xm_tiles - 1;
    for (size_t k = 0; same && xcol && k < sizeof xcol_kernels / sizeof xcol_kernels[0]; ++k)
        same = run_product(ctx, a, xcol_kernels[k], XM, S, S, buf, x_plain, local, 0, 0xff,
                           ca) &&
               run_product(ctx, b, xcol_kernels[k], XM, S, S, buf, x_extra, local, tn + 1, 0xfe,
                           cb) &&
               memcmp(ca, cb, bytes) == 0;
    for (int i = 0; i < 3; ++i)
        if (buf[i])
            clReleaseMemObject(buf[i]);
    free(host);
    return same;
}

/* Do the stream-K programs a and b compute bit-identical products with
 * gemm_nn_sk?  200^3 (2 x 2 tiles of 13 K steps) over 3 groups: runs of 18
 * steps that start and end inside tiles, every tile finished by a group
 * that adds up partial sums. */
static bool same_sk_products(gpumat_context *ctx, const gpumat__tile *t, cl_program a,
                             cl_program b)
{
    enum { S = 200, GROUPS = 3 };
    const gpumat__gemm_params *g = &ctx->profile.gemm;
    const size_t count = (size_t)S * S, bytes = count * sizeof(cl_float);
    const cl_int tiles_n = (S + (cl_int)t->nwg - 1) / (cl_int)t->nwg;
    const cl_int tiles = tiles_n * ((S + (cl_int)t->mwg - 1) / (cl_int)t->mwg);
    const cl_int iters = (S + (cl_int)g->kwg - 1) / (cl_int)g->kwg, first = 0;
    const cl_long total = (cl_long)tiles * iters, per = (total + GROUPS - 1) / GROUPS;
    cl_float *host = calloc(4 * count, sizeof(cl_float)); /* A, B, C from a, from b */
    cl_int *zeros = calloc((size_t)tiles, sizeof(cl_int));
    bool same = host && zeros;
    if (same)
        fill_inputs(host, 2 * count, 54321);
    cl_int err = CL_SUCCESS;
    cl_mem buf[5] = {NULL, NULL, NULL, NULL, NULL}; /* A, B, C, W, F */
    const size_t sizes[5] = {bytes, bytes, bytes,
                             2 * GROUPS * (size_t)t->mwg * t->nwg * sizeof(cl_float),
                             (size_t)tiles * sizeof(cl_int)};
    for (int i = 0; same && i < 5 && err == CL_SUCCESS; ++i)
        buf[i] = clCreateBuffer(ctx->cl_ctx,
                                i < 2 || i == 4 ? CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR
                                                : CL_MEM_READ_WRITE,
                                sizes[i], i < 2 ? (void *)(host + i * count)
                                          : i == 4 ? (void *)zeros : NULL, &err);
    const size_t local[2] = {t->ndimc, t->mdimc}, global[2] = {GROUPS * t->ndimc, t->mdimc};
    const cl_int n = S;
    const cl_float alpha = 1.5f, beta = 0;
    const void *args[18] = {&n,      &n,     &n,    &alpha, &beta,  &buf[0], &n,     &buf[1],
                            &n,      &buf[2], &n,   &tiles_n, &iters, &first, &per, &total,
                            &buf[3], &buf[4]};
    const size_t arg_sizes[18] = {
        sizeof n,      sizeof n,     sizeof n,     sizeof alpha, sizeof beta, sizeof(cl_mem),
        sizeof n,      sizeof(cl_mem), sizeof n,   sizeof(cl_mem), sizeof n,  sizeof tiles_n,
        sizeof iters,  sizeof first, sizeof per,   sizeof total, sizeof(cl_mem), sizeof(cl_mem)};
    for (int side = 0; same && err == CL_SUCCESS && side < 2; ++side)
        same = run_and_read(ctx, side ? b : a, "gemm_nn_sk", 18, args, arg_sizes, 0, global,
                            local, buf[2], bytes, side ? 0xfe : 0xff, host + (2 + side) * count);
    same = same && err == CL_SUCCESS && memcmp(host + 2 * count, host + 3 * count, bytes) == 0;
    for (int i = 0; i < 5; ++i)
        if (buf[i])
            clReleaseMemObject(buf[i]);
    free(host);
    free(zeros);
    return same;
}

/* The line nv_passes puts first in a program's PTX: which passes the
 * kept program has, so that a cached program says so too. */
#define PASSES_MARK "// libgpumat PTX passes: "

/* The program rebuilt from its PTX after nv_ptx.c's passes (tail: products
 * moved, skew: bytes the NN kernel's second half of A moves, xcol: the
 * extra-column tile index in xcol_kernels), or the program itself when no
 * pass applies, the rebuild fails or the products differ in any bit: the
 * original is always a correct fallback.  `why` gets the reason when the
 * original is kept. */
static cl_program nv_passes(gpumat_context *ctx, gpumat__program_id id, cl_program program,
                            const char *options, unsigned tail, unsigned skew, bool xcol,
                            char *why, size_t why_size)
{
    const gpumat__gemm_params *g = &ctx->profile.gemm;
    const bool sk = stream_k_program(id);
    const gpumat__tile t = float_tile(g, id);
    /* The stream-K program: NN's kernel only (round 9; the others' small
     * products lost with round 8's count). */
    static const char *const sk_kernels[] = {"gemm_nn_sk"};
    const gpumat__ptx_plan plan = {
        .tail = tail,
        .tail_kernels = sk ? sk_kernels : nv_kernels,
        .n_tail_kernels = sk ? 1 : sizeof nv_kernels / sizeof nv_kernels[0],
        .skew = skew,
        .skew_kernel = sk ? "gemm_nn_sk" : "gemm_nn",
        .skew_array = "As",
        .skew_rows = g->kwg,
        .skew_row_bytes = (t.mwg + 4) * (unsigned)sizeof(cl_float),
        .skew_pieces = t.mwg * g->kwg / (4 * t.mdimc * t.ndimc),
        .xcol_kernels = xcol_kernels,
        .n_xcol_kernels = xcol ? sizeof xcol_kernels / sizeof xcol_kernels[0] : 0,
    };
    size_t len = 0, out_len = 0;
    unsigned applied = 0;
    unsigned char *ptx = gpumat__program_binary(ctx, program, &len);
    char *text = ptx ? gpumat__ptx_passes((const char *)ptx, len, &plan, &out_len, &applied)
                     : NULL;
    if (!text) {
        snprintf(why, why_size, "%s", ptx ? "no pass matched the PTX" : "no PTX to edit");
        free(ptx);
        return program;
    }
    free(ptx);
    /* The applied passes by name, in the order of their bits. */
    static const char *const pass_names[] = {"tail", "skew", "extra column"};
    char mark[96] = PASSES_MARK;
    size_t n = strlen(mark);
    for (unsigned b = 0; b < sizeof pass_names / sizeof pass_names[0]; ++b)
        if (applied & 1u << b)
            n += (size_t)snprintf(mark + n, sizeof mark - n, "%s%s",
                                  n > strlen(PASSES_MARK) ? ", " : "", pass_names[b]);
    n += (size_t)snprintf(mark + n, sizeof mark - n, "\n");
    char *marked = malloc(n + out_len);
    if (marked) {
        memcpy(marked, mark, n);
        memcpy(marked + n, text, out_len);
    }
    free(text);
    cl_program rebuilt =
        marked ? gpumat__program_from_binary(ctx, (const unsigned char *)marked,
                                             n + out_len, options)
               : NULL;
    free(marked);
    if (!rebuilt) {
        snprintf(why, why_size, "the edited PTX did not build");
        return program;
    }
    if (!(sk ? same_sk_products(ctx, &t, program, rebuilt)
             : same_products(ctx, program, rebuilt, applied & GPUMAT__PTX_XCOL))) {
        clReleaseProgram(rebuilt);
        snprintf(why, why_size, "the edited program's products differed");
        return program;
    }
    clReleaseProgram(program);
    return rebuilt;
}

/* The passes line of the program's binary (after PASSES_MARK, to the end
 * of the line) into note[size]; false when there is none. */
static bool passes_note(gpumat_context *ctx, cl_program program, char *note, size_t size)
{
    const size_t n = strlen(PASSES_MARK);
    size_t len = 0;
    unsigned char *bin = gpumat__program_binary(ctx, program, &len);
    bool found = bin && len > n && memcmp(bin, PASSES_MARK, n) == 0;
    if (found) {
        size_t e = n;
        while (e < len && bin[e] != '\n' && e - n + 1 < size)
            ++e;
        memcpy(note, bin + n, e - n);
        note[e - n] = '\0';
    }
    free(bin);
    return found;
}

/* Adds "<program> <dtype>: PTX passes <fmt...>" to the context's kernel
 * notes. */
static void add_kernel_note(gpumat_context *ctx, gpumat__program_id id, gpumat_dtype dtype,
                            const char *fmt, ...) GPUMAT__PRINTF(4, 5);
static void add_kernel_note(gpumat_context *ctx, gpumat__program_id id, gpumat_dtype dtype,
                            const char *fmt, ...)
{
    char *notes = ctx->kernel_notes;
    size_t at = strlen(notes), size = sizeof ctx->kernel_notes;
    int w = snprintf(notes + at, size - at, "%s%s %s: PTX passes ", at ? "\n" : "",
                     program_names[id], dtype == GPUMAT_F64 ? "f64" : "f32");
    if (w < 0 || (size_t)w >= size - at)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(notes + at + (size_t)w, size - at - (size_t)w, fmt, ap);
    va_end(ap);
}

/* The persistent cache first; the compiler when it has nothing usable, and
 * then the result goes back into the cache. */
static gpumat_status build(gpumat_context *ctx, gpumat__program_id id, gpumat_dtype dtype,
                           gpumat__program_slot *slot)
{
    const char *name = program_names[id];
    const char *text = embedded_text(source_name(id));
    if (!text)
        return gpumat__fail(ctx, GPUMAT_ERR_BUILD, "kernel source '%s' is not embedded", name);

    /* The profile's portable options, then those only NVIDIA's compiler
     * takes (empty elsewhere), then the element type. */
    char vendor[128], own[sizeof ctx->build_options], nv_option[96] = "";
    char options[sizeof own + sizeof vendor + sizeof nv_option + 64];
    unsigned sm = nv_sm(ctx);
    gpumat__profile_vendor_options(&ctx->profile, sm, dtype == GPUMAT_F64, vendor,
                                   sizeof vendor);
    program_options(ctx->build_options, text, dtype == GPUMAT_F64,
                    split_tile_program(id) ? &ctx->profile.gemm : NULL, own,
                    sizeof own);
    /* nv_ptx.c's passes: measured on sm_90 only, for the register-staged
     * big float tile with one local buffer.  The skew assumes its store map
     * (16 rows in four chunks, the chunk in bit 1 of tid.x): depth 16 and a
     * work-group width that is a multiple of 4.  Their parameters join the
     * options (the source ignores the macros) so that cached binaries with
     * and without them never mix. */
    const gpumat__gemm_params *g = &ctx->profile.gemm;
    const bool sk = stream_k_program(id);
    /* The split tile's stream-K program as the big tile's (H100, gemm-notes
     * round 16: NN 8192x64x8192 34.5 -> 40.8 TFLOP/s with them). */
    bool nv_tile = (id == GPUMAT__PROGRAM_GEMM || sk) && dtype == GPUMAT_F32 && sm >= 90 &&
                   g->async < 2 && g->lbuf == 1;
    unsigned tail = nv_tile ? (sk ? g->nv_tail_sk : g->nv_tail) : 0;
    unsigned skew =
        nv_tile && g->kwg == 16 && float_tile(g, id).ndimc % 4 == 0 ? g->nv_skew : 0;
    bool xcol = nv_tile && !sk && g->nv_xcol;
    if (tail || skew || xcol)
        snprintf(nv_option, sizeof nv_option,
                 " -DGPUMAT_NV_TAIL=%u -DGPUMAT_NV_SKEW=%u -DGPUMAT_NV_XCOL=%d", tail, skew, xcol);
    snprintf(options, sizeof options, "%s%s%s %s%s%s", own, vendor[0] ? " " : "",
             vendor, dtype == GPUMAT_F64 ? "-DREAL=double -DGPUMAT_FP64" : "-DREAL=float",
             stream_k_program(id)                ? " -DGPUMAT_STREAM_K"
             : id == GPUMAT__PROGRAM_GEMM_KSPLIT ? " -DGPUMAT_SPLIT_K"
                                                  : "",
             nv_option);

    double start = gpumat__now_seconds();
    char why[96] = ""; /* why nv_passes kept the original program */
    gpumat__cache_entry entry;
    bool cached = gpumat__cache_entry_init(ctx, name, text, options, &entry);
    cl_program program = cached ? gpumat__cache_load(ctx, &entry, options) : NULL;
    gpumat_status status = GPUMAT_OK;
    if (program) {
        ctx->build_stats.cache_hits++;
    } else {
        status = compile(ctx, name, text, dtype, options, &program);
        if (status == GPUMAT_OK && nv_option[0])
            program = nv_passes(ctx, id, program, options, tail, skew, xcol, why, sizeof why);
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
        slot->program = program;
        /* Built now or loaded: the binary's first line says which passes
         * it holds. */
        char note[96] = "";
        if (nv_option[0] && passes_note(ctx, program, note, sizeof note)) {
            slot->extra_column = xcol && strstr(note, "extra column");
            add_kernel_note(ctx, id, dtype, "%s", note);
        } else if (nv_option[0]) {
            add_kernel_note(ctx, id, dtype, "not kept (%s)",
                            why[0] ? why : "cached from a build that did not keep them");
        }
    }
    return status;
}

gpumat_status gpumat__kernel(gpumat_context *ctx, gpumat__program_id id, gpumat_dtype dtype,
                             const char *kernel_name, cl_kernel *kernel)
{
    gpumat__program_slot *slot = &ctx->programs[id][dtype == GPUMAT_F64];
    if (!slot->program) {
        gpumat_status status = build(ctx, id, dtype, slot);
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

gpumat_status gpumat_context_kernel_notes(const gpumat_context *ctx, char *buf, size_t size)
{
    if (!ctx || !buf || size == 0)
        return gpumat__fail((gpumat_context *)ctx, GPUMAT_ERR_INVALID_ARGUMENT,
                            "context_kernel_notes: %s", !ctx   ? "ctx is NULL"
                                                        : !buf ? "buf is NULL"
                                                               : "size is 0");
    /* Programs build, and add their notes, under the context's lock. */
    gpumat_context *c = (gpumat_context *)ctx;
    pthread_mutex_lock(&c->lock);
    snprintf(buf, size, "%s", c->kernel_notes);
    pthread_mutex_unlock(&c->lock);
    return GPUMAT_OK;
}
