/* op_gemm.c - general matrix product and plain multiply, through the
 * context's GEMM backend. */
#include "gpumat_internal.h"

/* Sets the 11 arguments every cl/gemm.cl kernel starts with. */
static gpumat_status gemm_args(gpumat_context *ctx, cl_kernel kernel, const char *name,
                               const gpumat__gemm_call *g)
{
    bool f64 = g->dtype == GPUMAT_F64;
    /* Dimensions fit in int: gpumat_matrix_create caps them at INT_MAX. */
    cl_int M = (cl_int)g->m, N = (cl_int)g->n, K = (cl_int)g->k;
    cl_int lda = (cl_int)g->lda, ldb = (cl_int)g->ldb, ldc = (cl_int)g->ldc;
    cl_float alpha32 = (cl_float)g->alpha, beta32 = (cl_float)g->beta;
    cl_double alpha64 = g->alpha, beta64 = g->beta;
    size_t scalar = f64 ? sizeof(cl_double) : sizeof(cl_float);
    const void *alpha = f64 ? (const void *)&alpha64 : (const void *)&alpha32;
    const void *beta = f64 ? (const void *)&beta64 : (const void *)&beta32;

    return gpumat__set_args(ctx, kernel, name, 11, sizeof M, (const void *)&M, sizeof N,
                            (const void *)&N, sizeof K, (const void *)&K, scalar, alpha, scalar,
                            beta, sizeof(cl_mem), (const void *)&g->a, sizeof lda,
                            (const void *)&lda, sizeof(cl_mem), (const void *)&g->b, sizeof ldb,
                            (const void *)&ldb, sizeof(cl_mem), (const void *)&g->c, sizeof ldc,
                            (const void *)&ldc);
}

/* Runs kernel `name` of program `id` (both take cl/gemm.cl's arguments)
 * over the given grid. */
static gpumat_status launch_at(gpumat_context *ctx, const gpumat__gemm_call *g,
                               gpumat__program_id id, const char *name, const size_t *offset,
                               const size_t global[2], const size_t local[2])
{
    cl_kernel kernel;
    gpumat_status status = gpumat__kernel(ctx, id, g->dtype, name, &kernel);
    if (status == GPUMAT_OK)
        status = gemm_args(ctx, kernel, name, g);
    if (status == GPUMAT_OK)
        status = gpumat__launch_at(ctx, kernel, name, 2, offset, global, local);
    return status;
}

static gpumat_status launch(gpumat_context *ctx, const gpumat__gemm_call *g,
                            gpumat__program_id id, const char *name, const size_t global[2],
                            const size_t local[2])
{
    return launch_at(ctx, g, id, name, NULL, global, local);
}

/* The context's pack buffer `slot` (0 or 1), grown to at least `elements`
 * of dtype when smaller; *out is that buffer.  False, with nothing
 * recorded, when it cannot be allocated: every copy made there only speeds
 * a product up, which then runs on its operands in place instead. */
static bool pack_buffer(gpumat_context *ctx, gpumat_dtype dtype, int slot, size_t elements,
                        cl_mem *out)
{
    size_t bytes = elements * gpumat_dtype_size(dtype);
    if (ctx->gemm_pack_bytes[slot] < bytes) {
        if (ctx->gemm_pack[slot])
            clReleaseMemObject(ctx->gemm_pack[slot]);
        ctx->gemm_pack_bytes[slot] = 0;
        cl_int err;
        ctx->gemm_pack[slot] = clCreateBuffer(ctx->cl_ctx, CL_MEM_READ_WRITE, bytes, NULL, &err);
        if (err != CL_SUCCESS) {
            ctx->gemm_pack[slot] = NULL;
            return false;
        }
        ctx->gemm_pack_bytes[slot] = bytes;
    }
    *out = ctx->gemm_pack[slot];
    return true;
}

/* Packs the K x Q operand Y(k, q) = y[off + k*ld + q], or y[off + q*ld +
 * k] when `cols`, into panels of w columns (cl/gemm_cpu.cl, cpu_pack_rows
 * and cpu_pack_cols) in the context's pack buffer `slot`, which cpu_gemm
 * has already grown to hold them; *out is that buffer.  The queue is in
 * order, so the next call's packing waits for this call's product. */
static gpumat_status cpu_pack(gpumat_context *ctx, gpumat_dtype dtype, int slot, cl_mem y,
                              size_t off, size_t q, size_t k, size_t ld, bool cols, size_t w,
                              cl_mem *out)
{
    const char *name = cols ? "cpu_pack_cols" : "cpu_pack_rows";
    size_t panels = (q + w - 1) / w;
    cl_kernel kernel;
    gpumat_status status = gpumat__kernel(ctx, GPUMAT__PROGRAM_GEMM_CPU, dtype, name, &kernel);
    if (status != GPUMAT_OK)
        return status;
    *out = ctx->gemm_pack[slot];
    /* Rows: ~512 values of a row per work-item; columns: 16 values of k
     * (a cache line of floats) from each of w rows. */
    size_t group = cols ? 16 : (512 + w - 1) / w;
    cl_int Q = (cl_int)q, K = (cl_int)k, LD = (cl_int)ld, W = (cl_int)w, G = (cl_int)group;
    cl_ulong OFF = off;
    size_t local[2] = {64, 1};
    size_t global[2] = {cols ? gpumat__round_up((k + group - 1) / group, 64)
                             : gpumat__round_up(k, 64),
                        cols ? panels : (panels + group - 1) / group};
    status = gpumat__set_args(ctx, kernel, name, 8, sizeof Q, (const void *)&Q, sizeof K,
                              (const void *)&K, sizeof(cl_mem), (const void *)&y, sizeof LD,
                              (const void *)&LD, sizeof W, (const void *)&W, sizeof G,
                              (const void *)&G, sizeof(cl_mem), (const void *)out, sizeof OFF,
                              (const void *)&OFF);
    return status == GPUMAT_OK ? gpumat__launch(ctx, kernel, name, 2, global, local) : status;
}

/* cl/gemm_cpu.cl: one block of C per work-item, dimension 0 along the
 * block's vectors (n, or m for TT, whose blocks are of C^T), dimension 1
 * along its rows; NT's blocks are cdm x cdn dot products.  Products of at
 * least cpack^3 multiply-adds first pack the operand read along the
 * vectors (and TN's A^T) into panels, so that each block streams through
 * memory in order; smaller ones are not worth the extra passes. */
static gpumat_status cpu_gemm(gpumat_context *ctx, const gpumat__gemm_call *g)
{
    static const char *const names[2][2][2] = {
        {{"gemm_nn_cpu", "gemm_nt_cpu"}, {"gemm_tn_cpu", "gemm_tt_cpu"}},
        {{"gemm_nn_cpu_packed", "gemm_nn_cpu_packed"},
         {"gemm_tn_cpu_packed", "gemm_tn_cpu_packed"}}};
    const gpumat__gemm_params *p = &ctx->profile.gemm;
    size_t size = gpumat_dtype_size(g->dtype);
    size_t width = (g->dtype == GPUMAT_F64 ? p->cvw / 2 : p->cvw) * p->cnv;
    double cube = (double)p->cpack * p->cpack * p->cpack;
    /* Panel copies no larger than the device allows in one buffer (else
     * the operands are read in place); a bound for every case. */
    double pack_bytes = (double)((g->m > g->n ? g->m : g->n) + width + p->cmr) * g->k * size;
    bool packed = (double)g->m * g->n * g->k >= cube &&
                  (ctx->max_alloc_bytes == 0 || pack_bytes <= (double)ctx->max_alloc_bytes);

    /* Deep products run as passes over ckc values of k, each adding to C
     * (beta 1 after the first): a pass's panels then stay in the cache
     * (a 4096-deep panel of 24 floats is 384 KiB).  Every block reads all
     * of a pass's B panel, so passes halve in depth (to ckc/8 at least)
     * until it takes at most a quarter of the device's cache (PoCL, 2 cores
     * of a 32 MiB-L3 EPYC, dgemm 8192^3: 16 MiB panels at ckc 256 ran 130-149
     * GFLOP/s, 8 MiB at 128 191, while 4096^3's 8 MiB at 256 runs 200 and
     * at 128 190).  A pass reads its part of A and B from an element
     * offset (kernel arguments, not sub-buffers: nothing to allocate per
     * pass). */
    size_t kc = g->k;
    if (packed && p->ckc) {
        size_t ckc = p->ckc, panel_row = gpumat__round_up(g->n, width) * size;
        while (ctx->mem_cache_bytes && ckc / 2 >= p->ckc / 8 && ckc % 2 == 0 &&
               (uint64_t)ckc * panel_row > ctx->mem_cache_bytes / 4)
            ckc /= 2;
        if (ckc < g->k)
            kc = ckc;
    }
    /* What the passes need is had before the first writes C, so that a
     * failed call leaves C as it was: the program, and the pack buffers at
     * the first (largest) pass's size.  Without room for those the product
     * runs on its operands in place. */
    cl_kernel kernel = NULL;
    if (packed) {
        gpumat_status status = gpumat__kernel(ctx, GPUMAT__PROGRAM_GEMM_CPU, g->dtype,
                                              names[1][g->trans_a][g->trans_b], &kernel);
        if (status != GPUMAT_OK)
            return status;
        cl_mem unused;
        packed = pack_buffer(ctx, g->dtype, 0, gpumat__round_up(g->n, width) * kc, &unused) &&
                 (!g->trans_a ||
                  pack_buffer(ctx, g->dtype, 1, gpumat__round_up(g->m, p->cmr) * kc, &unused));
    }
    bool nt = !packed && !g->trans_a && g->trans_b, tt = !packed && g->trans_a && g->trans_b;
    size_t rows = nt ? p->cdm : p->cmr, cols = nt ? p->cdn : width;
    size_t P = tt ? g->n : g->m, Q = tt ? g->m : g->n;
    size_t local[2] = {p->cwx, p->cwy};
    size_t global[2] = {gpumat__round_up((Q + cols - 1) / cols, p->cwx),
                        gpumat__round_up((P + rows - 1) / rows, p->cwy)};
    const char *name = names[packed][g->trans_a][g->trans_b];
    if (!packed)
        return launch(ctx, g, GPUMAT__PROGRAM_GEMM_CPU, name, global, local);

    gpumat_status status = GPUMAT_OK;
    for (size_t k0 = 0; k0 < g->k && status == GPUMAT_OK; k0 += kc) {
        gpumat__gemm_call call = *g;
        call.k = kc < g->k - k0 ? kc : g->k - k0;
        call.beta = k0 ? 1.0 : g->beta;
        size_t a_off = g->trans_a ? k0 * g->lda : k0, b_off = g->trans_b ? k0 : k0 * g->ldb;
        /* B or B^T in panels of `width` columns; A^T (TN, TT) in panels of
         * cmr rows, else A read in place from a_off.  (TT packed this way
         * stores C in rows: in passes over k, the C^T form's scattered
         * stores, read back every pass, cost half its speed at 4096^3.) */
        status = cpu_pack(ctx, g->dtype, 0, g->b, b_off, g->n, call.k, g->ldb, g->trans_b,
                          width, &call.b);
        if (status == GPUMAT_OK && g->trans_a)
            status = cpu_pack(ctx, g->dtype, 1, g->a, a_off, g->m, call.k, g->lda, false, p->cmr,
                              &call.a);
        if (status == GPUMAT_OK)
            status = gemm_args(ctx, kernel, name, &call);
        cl_ulong aoff = g->trans_a ? 0 : a_off;
        if (status == GPUMAT_OK)
            status = gpumat__set_args_from(ctx, kernel, name, 11, 1, sizeof aoff,
                                           (const void *)&aoff);
        if (status == GPUMAT_OK)
            status = gpumat__launch(ctx, kernel, name, 2, global, local);
    }
    return status;
}

/* Grows the context's buffer *buf to at least `bytes` (*have: its size). */
static gpumat_status sk_buffer(gpumat_context *ctx, cl_mem *buf, size_t *have, size_t bytes,
                               bool zeroed)
{
    if (*have >= bytes)
        return GPUMAT_OK;
    if (*buf)
        clReleaseMemObject(*buf);
    *have = 0;
    cl_int err;
    const char *call = "clCreateBuffer";
    *buf = clCreateBuffer(ctx->cl_ctx, CL_MEM_READ_WRITE, bytes, NULL, &err);
    if (err == CL_SUCCESS && zeroed) {
        const cl_int zero = 0;
        call = "clEnqueueFillBuffer";
        err = clEnqueueFillBuffer(ctx->queue, *buf, &zero, sizeof zero, 0, bytes, 0, NULL, NULL);
    }
    if (err != CL_SUCCESS) {
        if (*buf)
            clReleaseMemObject(*buf);
        *buf = NULL;
        return gpumat__fail_cl(ctx, err, "gemm: stream-K scratch buffer of %zu bytes: %s", bytes,
                               call);
    }
    *have = bytes;
    return GPUMAT_OK;
}

/* How many mwg x nwg tiles cover g's C. */
static size_t tile_count(const gpumat__gemm_call *g, unsigned mwg, unsigned nwg)
{
    return gpumat__round_up(g->m, mwg) / mwg * (gpumat__round_up(g->n, nwg) / nwg);
}

/* Whether `tiles` tiles of mwg x nwg are at least pct% C (the rest edge). */
static bool full_enough(const gpumat__gemm_call *g, size_t tiles, unsigned mwg, unsigned nwg,
                        double pct)
{
    return (double)g->m * g->n * 100 >= pct * tiles * mwg * nwg;
}

/* The big tile over `waves` groups that run at once, for a product whose
 * tiles (tile[] = {rows, columns, depth, work-group rows, work-group
 * columns}) leave the last wave partly idle: the plain kernel `name` takes
 * the whole rows of tiles that lie in full waves (or, with xrows > 0, the
 * full waves exactly: extra_column_rows), then the stream-K kernel
 * (cl/gemm.cl) splits the rest (the last wave's tiles and the start of
 * their row) along k over `waves` groups in equal runs of K steps.  Two
 * launches rather than one kernel doing both: NVIDIA's compiler schedules
 * the plain kernel's loop better (H100: a stream-K kernel that also ran the
 * whole tiles made 8192^3 4% slower, gemm-notes round 5), and those tiles
 * are most of the work.  sk_program: the stream-K program of the tile
 * (GPUMAT__PROGRAM_GEMM_SK_MID, the split tile's, only for products of
 * fewer tiles than a wave: no plain part). */
static gpumat_status stream_k(gpumat_context *ctx, const gpumat__gemm_call *g,
                              gpumat__program_id sk_program, const char *name, size_t waves,
                              const unsigned tile[5], size_t xrows)
{
    static const char *const sk_names[2][2] = {{"gemm_nn_sk", "gemm_nt_sk"},
                                               {"gemm_tn_sk", "gemm_tt_sk"}};
    const char *sk_name = sk_names[g->trans_a][g->trans_b];
    size_t tiles_m = gpumat__round_up(g->m, tile[0]) / tile[0];
    size_t tiles_n = gpumat__round_up(g->n, tile[1]) / tile[1], tiles = tiles_m * tiles_n;
    size_t rows = (tiles - tiles % waves) / tiles_n;
    /* xrows: the full waves exactly, xrows tile rows and, from the grid's
     * extra column, the first xrows tiles of the next. */
    size_t first_tile = xrows ? xrows * (tiles_n + 1) : rows * tiles_n;
    size_t local[2] = {tile[4], tile[3]};
    /* The split part's scratch, kernel and arguments first: a failure
     * there must come before the plain part has written C. */
    cl_int n_tiles = (cl_int)tiles_n, first = (cl_int)first_tile;
    cl_int iters = (cl_int)((g->k + tile[2] - 1) / tile[2]);
    cl_long total = (cl_long)(tiles - first_tile) * iters;
    cl_long per = (total + (cl_long)waves - 1) / (cl_long)waves;
    size_t tile_bytes = (size_t)tile[0] * tile[1] * gpumat_dtype_size(g->dtype);
    gpumat_status status = sk_buffer(ctx, &ctx->gemm_sk_sums, &ctx->gemm_sk_sums_bytes,
                                     2 * waves * tile_bytes, false);
    if (status == GPUMAT_OK)
        status = sk_buffer(ctx, &ctx->gemm_sk_counts, &ctx->gemm_sk_counts_bytes,
                           (tiles - first_tile) * sizeof(cl_int), true);
    if (status != GPUMAT_OK)
        return status;
    cl_kernel kernel;
    status = gpumat__kernel(ctx, sk_program, g->dtype, sk_name, &kernel);
    if (status == GPUMAT_OK)
        status = gemm_args(ctx, kernel, sk_name, g);
    if (status == GPUMAT_OK)
        status = gpumat__set_args_from(ctx, kernel, sk_name, 11, 7, sizeof n_tiles,
                                       (const void *)&n_tiles, sizeof iters, (const void *)&iters,
                                       sizeof first, (const void *)&first, sizeof per,
                                       (const void *)&per, sizeof total, (const void *)&total,
                                       sizeof(cl_mem), (const void *)&ctx->gemm_sk_sums,
                                       sizeof(cl_mem), (const void *)&ctx->gemm_sk_counts);
    if (status == GPUMAT_OK && xrows) {
        size_t global[2] = {(tiles_n + 1) * tile[4], xrows * tile[3]};
        size_t offset[2] = {tiles_n + 1, 0};
        status = launch_at(ctx, g, GPUMAT__PROGRAM_GEMM, name, offset, global, local);
    } else if (status == GPUMAT_OK && rows) {
        gpumat__gemm_call top = *g;
        top.m = rows * tile[0];
        size_t global[2] = {tiles_n * tile[4], rows * tile[3]};
        status = launch(ctx, &top, GPUMAT__PROGRAM_GEMM, name, global, local);
    }
    size_t global[2] = {waves * tile[4], tile[3]};
    return status == GPUMAT_OK ? gpumat__launch(ctx, kernel, sk_name, 2, global, local) : status;
}

/* The product as `slices` runs of K steps on each tile of tile[] (see
 * stream_k), through cl/gemm.cl's split-K kernels: every run's partial
 * product goes to a slice of the scratch buffer of its own, then
 * gemm_ksum adds the slices up into C.  The slices share a tile's K
 * steps evenly, one or more each. */
static gpumat_status split_k(gpumat_context *ctx, const gpumat__gemm_call *g,
                             const unsigned tile[5], size_t slices)
{
    static const char *const names[2][2] = {{"gemm_nn_kpart", "gemm_nt_kpart"},
                                            {"gemm_tn_kpart", "gemm_tt_kpart"}};
    const char *name = names[g->trans_a][g->trans_b], *sum_name = "gemm_ksum";
    size_t tiles = tile_count(g, tile[0], tile[1]);
    size_t iters = (g->k + tile[2] - 1) / tile[2];
    cl_int n_tiles = (cl_int)(gpumat__round_up(g->n, tile[1]) / tile[1]);
    cl_int c_iters = (cl_int)iters;
    cl_int s = (cl_int)(slices < iters ? slices : iters);
    cl_int ldw = (cl_int)gpumat__round_up(g->n, 4);
    gpumat_status status =
        sk_buffer(ctx, &ctx->gemm_sk_sums, &ctx->gemm_sk_sums_bytes,
                  (size_t)s * g->m * (size_t)ldw * gpumat_dtype_size(g->dtype), false);
    cl_kernel part, sum;
    if (status == GPUMAT_OK)
        status = gpumat__kernel(ctx, GPUMAT__PROGRAM_GEMM_KSPLIT, g->dtype, name, &part);
    if (status == GPUMAT_OK)
        status = gpumat__kernel(ctx, GPUMAT__PROGRAM_GEMM_KSPLIT, g->dtype, sum_name, &sum);
    if (status == GPUMAT_OK)
        status = gemm_args(ctx, part, name, g);
    if (status == GPUMAT_OK)
        status = gpumat__set_args_from(ctx, part, name, 11, 5, sizeof n_tiles,
                                       (const void *)&n_tiles, sizeof c_iters,
                                       (const void *)&c_iters, sizeof s,
                                       (const void *)&s, sizeof(cl_mem),
                                       (const void *)&ctx->gemm_sk_sums, sizeof ldw,
                                       (const void *)&ldw);
    if (status == GPUMAT_OK)
        status = gemm_args(ctx, sum, sum_name, g);
    if (status == GPUMAT_OK)
        status = gpumat__set_args_from(ctx, sum, sum_name, 11, 3, sizeof s, (const void *)&s,
                                       sizeof(cl_mem), (const void *)&ctx->gemm_sk_sums,
                                       sizeof ldw, (const void *)&ldw);
    if (status != GPUMAT_OK)
        return status;
    size_t global[2] = {(size_t)s * tile[4], tiles * tile[3]}, local[2] = {tile[4], tile[3]};
    status = gpumat__launch(ctx, part, name, 2, global, local);
    /* 64 work-items a group along the rows of C, which any device takes. */
    size_t sum_global[2] = {gpumat__round_up(g->n, 64), g->m}, sum_local[2] = {64, 1};
    return status == GPUMAT_OK ? gpumat__launch(ctx, sum, sum_name, 2, sum_global, sum_local)
                               : status;
}

/* R for the extra-column layout of a product of tiles_m x tiles_n float big
 * tiles over waves of `waves` groups: R whole tile rows and the first R
 * tiles of row R (the plain grid's extra column, nv_ptx.c) make up the
 * full waves exactly, where a part of whole rows would leave some of its
 * own last wave idle (H100, 4096^3: 24 rows are 768 tiles, 2.91 waves;
 * 24 rows and 24 tiles are 3).  0 when no R does, or the plain kernel
 * (`name`, built here if need be) lacks the extra column. */
static size_t extra_column_rows(gpumat_context *ctx, const gpumat__gemm_call *g,
                                const char *name, size_t tiles_m, size_t tiles_n, size_t waves)
{
    size_t full = tiles_m * tiles_n / waves * waves;
    if (g->dtype != GPUMAT_F32 || (g->trans_a && g->trans_b) || full == 0 ||
        full % (tiles_n + 1) != 0)
        return 0;
    size_t r = full / (tiles_n + 1);
    cl_kernel kernel;
    if (r > tiles_n || r >= tiles_m ||
        gpumat__kernel(ctx, GPUMAT__PROGRAM_GEMM, g->dtype, name, &kernel) != GPUMAT_OK)
        return 0;
    return ctx->programs[GPUMAT__PROGRAM_GEMM][0].extra_column ? r : 0;
}

/* Whether pack buffer `slot` can hold `bytes`: within the device's
 * single-buffer limit, and both pack buffers together (this one grown if
 * need be) within an eighth of its memory. */
static bool pack_fits(const gpumat_context *ctx, int slot, double bytes)
{
    double mine = (double)ctx->gemm_pack_bytes[slot];
    double total = (bytes > mine ? bytes : mine) + (double)ctx->gemm_pack_bytes[!slot];
    return (!ctx->max_alloc_bytes || bytes <= (double)ctx->max_alloc_bytes) &&
           (!ctx->info.global_memory_bytes || 8 * total <= (double)ctx->info.global_memory_bytes);
}

/* *dst = src transposed (src: a dense rows x cols matrix of dtype), in
 * the context's pack buffer `slot`; *made false, and *dst and nothing
 * else touched, when that buffer cannot be had. */
static gpumat_status copy_transposed(gpumat_context *ctx, gpumat_dtype dtype, int slot,
                                     size_t rows, size_t cols, cl_mem src, cl_mem *dst,
                                     bool *made)
{
    *made = pack_buffer(ctx, dtype, slot, rows * cols, dst);
    return *made ? gpumat__transpose_buffer(ctx, dtype, rows, cols, src, *dst) : GPUMAT_OK;
}

/* A big-tile product g as the same product with an operand copied into
 * the layout whose kernel is faster (pack_a, pack_b: gemm-notes round
 * 12).  NVIDIA's TN loop copies neither tile transposed into local memory
 * and runs 2-6% faster than NN, NT and TT there; a transposed copy costs
 * about 1.9% of a 4096^3 product and less of larger ones.  The copies
 * live in the context's pack buffers (slot 0 A^T, slot 1 B), kept between
 * calls; a copy that would not fit (pack_fits), or whose buffer the device
 * cannot allocate now, is not made.  *out is g, or the rewritten product. */
static gpumat_status pack_operands(gpumat_context *ctx, const gpumat__gemm_call *g,
                                   gpumat__gemm_call *out)
{
    const gpumat__gemm_params *p = &ctx->profile.gemm;
    size_t size = gpumat_dtype_size(g->dtype);
    /* A copy's share of the time falls as 1/n (A) or 1/m (B); shallow
     * products, whose loops gain little from TN's, also need the volume
     * of a pack_a^3 (pack_b^3) product. */
    double volume = (double)g->m * g->n * g->k;
    gpumat_status status = GPUMAT_OK;
    *out = *g;
    if (p->pack_b && g->trans_b && g->m >= p->pack_b &&
        volume >= (double)p->pack_b * p->pack_b * p->pack_b &&
        pack_fits(ctx, 1, (double)g->k * g->n * size)) {
        bool made;
        status = copy_transposed(ctx, g->dtype, 1, g->n, g->k, g->b, &out->b, &made);
        if (made) {
            out->trans_b = false;
            out->ldb = g->n;
        }
    }
    if (status == GPUMAT_OK && p->pack_a && g->dtype == GPUMAT_F32 && !g->trans_a &&
        !out->trans_b && g->n >= p->pack_a &&
        volume >= (double)p->pack_a * p->pack_a * p->pack_a &&
        pack_fits(ctx, 0, (double)g->m * g->k * size)) {
        bool made;
        status = copy_transposed(ctx, g->dtype, 0, g->m, g->k, g->a, &out->a, &made);
        if (made) {
            out->trans_a = true;
            out->lda = g->m;
        }
    }
    return status;
}

/* Whether a float product's small tiles (`groups` of them, `k` deep) run
 * faster than the big tile split along k whole, `split_steps` K steps for
 * each stream-K group: the small tiles cost their rounds of groups per
 * compute unit times their K steps, each sk_small% of a big step; the split
 * costs its steps plus sk_fix, its fixed part (launch, each group's first
 * fetch, the partial sums, the last contributor's fixup).  Weighed only
 * where the small tiles run at most two groups per compute unit: at more,
 * the H100 ran them slower than this predicts (gemm-notes round 13: 512
 * groups, -13 to -25%).  H100: sgemm 1024^2 x 384 / 512 and 1000^2 x 500
 * gain 8-17% on the small tiles, while 768^3, 1000^3 and 1024^3 stay
 * split. */
static bool small_beats_split(const gpumat__gemm_params *p, size_t groups, size_t cus,
                              size_t k, size_t split_steps)
{
    size_t rounds = (groups + cus - 1) / cus;
    if (!p->sk_small || rounds > 2)
        return false;
    size_t small_steps = (k + p->skwg - 1) / p->skwg;
    return (double)rounds * (double)small_steps * p->sk_small <
           100.0 * ((double)p->sk_fix + (double)split_steps);
}

/* How the split tile runs a product (split_tile_way). */
typedef enum split_tile_way {
    SPLIT_TILE_NONE,     /* not at all: the product keeps its way */
    SPLIT_TILE_STREAM_K, /* stream_k() over a wave of groups */
    SPLIT_TILE_SPLIT_K   /* split_k() over a number of slices per tile */
} split_tile_way;

/* Whether a product that would run plain on the small tiles (or, tiny,
 * the tiny ones) in `groups` groups runs faster all of it split along k
 * on the split tile (tile[] and *count, the groups of stream_k's wave or
 * split_k's slices, set then): where the small tiles would give a compute
 * unit fewer than mid_pct/100 groups of the whole depth (the tiny tiles,
 * with less work per loaded element, always), the split tiles number
 * fewer than a wave of skgm groups per compute unit, each group still
 * gets sk_min_mid K steps and the tiles' edges waste at most 25% (the
 * alternatives run a compute unit at a quarter of its warps or less:
 * 333x300x7000, split tiles 81% full, ran 8.4 TFLOP/s, split 22.7).
 * H100, gemm-notes round 16 (TFLOP/s, NN): sgemm 8192x64x8192 31.7 ->
 * 40.6, 4096x64x4096 21.0 -> 33.8, 300x300x8000 15.6 -> 23.0; dgemm
 * 8192x64x8192 16.8 -> 19.5, 4096x64x4096 10.0 -> 16.6; with the split
 * tile, shallow products (a group's run too short: float 640^3 -6%,
 * 1024^2 x 448 -15%) and those the small float tiles give two groups per
 * SM (1024^3 -16%) lost, and keep their way.  Tiles that a wave would cut
 * into more than sk_split runs each go to split-K, whose sum all compute
 * units share, where stream-K's last contributor adds every run alone.
 * split_k_only: the product would otherwise run the big tile's whole
 * split, which the split tile's stream-K does not beat. */
static split_tile_way split_tile_pays(const gpumat__gemm_params *p, const gpumat__gemm_call *g,
                                      bool tiny, bool split_k_only, size_t groups, size_t cus,
                                      unsigned tile[5], size_t *count)
{
    bool f64 = g->dtype == GPUMAT_F64;
    unsigned skgm = f64 ? p->skgm64 : p->skgm, mid_pct = f64 ? p->mid_pct64 : p->mid_pct;
    if (!skgm || !p->mmwg || !p->sk_min_mid || g->k == 0 ||
        (!tiny && groups * 100 >= cus * mid_pct))
        return SPLIT_TILE_NONE;
    size_t tiles = tile_count(g, p->mmwg, p->mnwg), waves = cus * skgm;
    unsigned depth = f64 ? p->kwg64 : p->kwg;
    size_t steps = (g->k + depth - 1) / depth;
    /* Against the tiny tiles, half the fill and half the run suffice:
     * 200x200x8000 runs its 49 tiny groups at 3.4 TFLOP/s. */
    double fill = tiny ? 50.0 : 75.0;
    size_t least = tiny ? (p->sk_min_mid + 1) / 2 : p->sk_min_mid;
    if (tiles >= waves || !full_enough(g, tiles, p->mmwg, p->mnwg, fill))
        return SPLIT_TILE_NONE;
    tile[0] = p->mmwg;
    tile[1] = p->mnwg;
    tile[2] = depth;
    tile[3] = p->mmdimc;
    tile[4] = p->mndimc;
    /* Split-K: as many slices a tile as a wave holds, each sk_min_mid
     * steps deep or more (shallower slices lost to the tiny tiles: float
     * 256x256x600 in slices of 4 steps, 5.5 -> 3.6 TFLOP/s), in more
     * groups than the small or tiny tiles would run. */
    size_t deep = steps / p->sk_min_mid;
    size_t slices = waves / tiles < deep ? waves / tiles : deep;
    if (p->sk_split && slices > p->sk_split && tiles * slices > groups) {
        *count = slices;
        return SPLIT_TILE_SPLIT_K;
    }
    *count = waves;
    return !split_k_only && tiles * steps / waves >= least ? SPLIT_TILE_STREAM_K
                                                           : SPLIT_TILE_NONE;
}

gpumat_status gpumat__native_gemm(gpumat_context *ctx, const gpumat__gemm_call *g)
{
    if (ctx->profile.gemm.cvw)
        return cpu_gemm(ctx, g);
    static const char *const names[3][2][2] = {
        {{"gemm_nn", "gemm_nt"}, {"gemm_tn", "gemm_tt"}},
        {{"gemm_nn_small", "gemm_nt_small"}, {"gemm_tn_small", "gemm_tt_small"}},
        {{"gemm_nn_tiny", "gemm_nt_tiny"}, {"gemm_tn_tiny", "gemm_tt_tiny"}}};
    const gpumat__gemm_params *p = &ctx->profile.gemm;
    /* Big tiles reuse each loaded element more, but a product too small to
     * give every compute unit a big tile runs faster on more, smaller ones. */
    bool f64 = g->dtype == GPUMAT_F64;
    /* Doubles have their own big tile (twice the registers per element). */
    unsigned bmwg = f64 ? p->mwg64 : p->mwg, bnwg = f64 ? p->nwg64 : p->nwg;
    unsigned bmdimc = f64 ? p->mdimc64 : p->mdimc, bndimc = f64 ? p->ndimc64 : p->ndimc;
    size_t big_groups = tile_count(g, bmwg, bnwg);
    size_t small_groups = tile_count(g, p->smwg, p->snwg);
    /* A driver that did not say how many compute units it has (0) is taken
     * to have one: the dispatch below divides by it. */
    size_t cus = ctx->info.compute_units ? ctx->info.compute_units : 1;
    /* 0 big, 1 small, 2 tiny: the largest tile that still fills the device.
     * A tiny tile does less work per loaded element, so nvidia-gpu's
     * TINYPCT is half its SMALLPCT (H100: dgemm 8192x64x8192, 128 small
     * groups on 132 SMs, runs 11.3 TFLOP/s on small tiles, 8.2 on tiny). */
    int tile = 0;
    if (big_groups * 100 < cus * p->small_pct)
        tile = p->tmwg && small_groups * 100 < cus * p->tiny_pct ? 2 : 1;
    gpumat__gemm_call packed;
    if (tile == 0) {
        gpumat_status status = pack_operands(ctx, g, &packed);
        if (status != GPUMAT_OK)
            return status;
        g = &packed;
    }
    const char *name = names[tile][g->trans_a][g->trans_b];
    unsigned mwg = tile == 2 ? p->tmwg : tile ? p->smwg : bmwg;
    unsigned nwg = tile == 2 ? p->tnwg : tile ? p->snwg : bnwg;
    unsigned mdimc = tile == 2 ? p->tmdimc : tile ? p->smdimc : bmdimc;
    unsigned ndimc = tile == 2 ? p->tndimc : tile ? p->sndimc : bndimc;
    /* Stream-K: the big tiles' last wave split along k (tail), or a
     * product handed to the small or tiny tiles on the big tile with all
     * of it split (whole), when each of the S groups still gets SKMIN K
     * steps and the small tiles would either give some compute unit a
     * second group while the big ones waste at most 15% on edges, or fill
     * under 80% of the compute units on a long k (2 SKMIN steps).  H100,
     * gemm-notes round 7: sgemm 768^3 18.4 -> 23.7 TFLOP/s, 1023x777x1531 21.4 -> 26.0,
     * 300x300x8000 6.3 -> 15.0; dgemm 1024^3 14.1 -> 16.0; while 704^3
     * (16% edge waste, 121 small groups) and 8192x64x8192 (half of every
     * big tile wasted) keep their small tiles, or go to the split tile
     * (split_tile_pays). */
    size_t groups = tile_count(g, mwg, nwg);
    unsigned skg = f64 ? p->skg64 : p->skg, sk_fill = f64 ? p->sk_fill64 : p->sk_fill;
    bool tail = false, whole = false, edges_ok = false;
    size_t waves = cus * skg, xrows = 0;
    const unsigned big[5] = {bmwg, bnwg, f64 ? p->kwg64 : p->kwg, bmdimc, bndimc};
    if (g->k > 0 && skg) {
        size_t rest = big_groups % waves;
        size_t steps = (g->k + big[2] - 1) / big[2], per_group = big_groups * steps / waves;
        edges_ok = full_enough(g, big_groups, bmwg, bnwg, 85.0);
        /* The split's plain part in whole waves where it can; then the
         * split pays up to a fuller last wave (sk_fill_x; H100, gemm-notes
         * round 9: 3968x4096x4096 +1.7-1.9%, 4096^3 +0.9%). */
        xrows = tile == 0 && rest
                    ? extra_column_rows(ctx, g, names[0][g->trans_a][g->trans_b],
                                        gpumat__round_up(g->m, bmwg) / bmwg,
                                        gpumat__round_up(g->n, bnwg) / bnwg, waves)
                    : 0;
        tail = tile == 0 && rest &&
               rest * 100 < waves * (xrows && p->sk_fill_x ? p->sk_fill_x : sk_fill);
        whole = tile != 0 && rest && p->sk_min &&
                ((groups > cus && edges_ok && per_group >= p->sk_min) ||
                 (groups * 100 < cus * 80 && per_group >= 2 * (size_t)p->sk_min)) &&
                !(tile == 1 && !f64 &&
                  small_beats_split(p, groups, cus, g->k,
                                    (big_groups * steps + waves - 1) / waves));
    }
    /* The split tile instead of the small or tiny tiles, or of a whole
     * split on big tiles that waste over 15% on edges (H100: 300x300x8000,
     * big tiles 73% full), or, through split-K only, of a whole split
     * that would cut each big tile into more than SKSPLIT runs for
     * stream-K's last contributor to add up alone (H100: dgemm
     * 128x128x16384, two big tiles of 132 runs, 3.6 TFLOP/s, split-K
     * 11.7; dgemm 512x512x8192 ran 1.5% slower on the split tile's
     * stream-K than on the big tile's). */
    unsigned mid[5];
    size_t mid_count;
    bool big_split = whole && edges_ok;
    bool many_runs = big_split && p->sk_split && big_groups * p->sk_split < waves;
    split_tile_way way = tile != 0 && (!big_split || many_runs)
                             ? split_tile_pays(p, g, tile == 2, big_split, groups, cus, mid,
                                               &mid_count)
                             : SPLIT_TILE_NONE;
    if (way == SPLIT_TILE_SPLIT_K)
        return split_k(ctx, g, mid, mid_count);
    if (way == SPLIT_TILE_STREAM_K)
        return stream_k(ctx, g, GPUMAT__PROGRAM_GEMM_SK_MID, names[0][g->trans_a][g->trans_b],
                        mid_count, mid, 0);
    if (tail || whole)
        return stream_k(ctx, g, GPUMAT__PROGRAM_GEMM_SK, names[0][g->trans_a][g->trans_b], waves,
                        big, tail ? xrows : 0);
    size_t local[2] = {ndimc, mdimc};
    size_t global[2] = {gpumat__round_up(g->n, nwg) / nwg * ndimc,
                        gpumat__round_up(g->m, mwg) / mwg * mdimc};
    return launch(ctx, g, GPUMAT__PROGRAM_GEMM, name, global, local);
}

static const char *op_name(gpumat_op op) { return op == GPUMAT_TRANS ? "transposed " : ""; }

static gpumat_status gemm(const char *fn, gpumat_op op_a, gpumat_op op_b, double alpha,
                          const gpumat_matrix *a, const gpumat_matrix *b, double beta,
                          gpumat_matrix *c)
{
    const gpumat_matrix *operands[] = {c, a, b};
    const char *const names[] = {"c", "a", "b"};
    gpumat_status status = gpumat__check_operands(fn, 3, operands, names);
    if (status != GPUMAT_OK)
        return status;
    gpumat_context *ctx = c->ctx;
    if ((op_a != GPUMAT_NO_TRANS && op_a != GPUMAT_TRANS) ||
        (op_b != GPUMAT_NO_TRANS && op_b != GPUMAT_TRANS))
        return gpumat__fail(ctx, GPUMAT_ERR_INVALID_ARGUMENT,
                            "%s: op_a is %d and op_b is %d; each must be GPUMAT_NO_TRANS or "
                            "GPUMAT_TRANS", fn, (int)op_a, (int)op_b);
    if (c == a || c == b)
        return gpumat__fail(ctx, GPUMAT_ERR_ALIASING,
                            "%s: c is the same matrix as %s; the product is out of place", fn,
                            c == a ? "a" : "b");
    bool ta = op_a == GPUMAT_TRANS, tb = op_b == GPUMAT_TRANS;
    size_t m = ta ? a->cols : a->rows, ka = ta ? a->rows : a->cols;
    size_t kb = tb ? b->cols : b->rows, n = tb ? b->rows : b->cols;
    if (ka != kb)
        return gpumat__fail(ctx, GPUMAT_ERR_SHAPE,
                            "%s: %sa is %zux%zu but %sb is %zux%zu (the inner dimensions %zu and "
                            "%zu differ)", fn, op_name(op_a), m, ka, op_name(op_b), kb, n, ka, kb);
    if (c->rows != m || c->cols != n)
        return gpumat__fail(ctx, GPUMAT_ERR_SHAPE,
                            "%s: the product of %sa (%zux%zu) and %sb (%zux%zu) is %zux%zu, but c "
                            "is %zux%zu", fn, op_name(op_a), m, ka, op_name(op_b), kb, n, m, n,
                            c->rows, c->cols);

    gpumat__gemm_call call = {
        .dtype = a->dtype, .trans_a = ta, .trans_b = tb, .m = m, .n = n, .k = ka,
        .alpha = alpha, .beta = beta, .a = a->buffer, .b = b->buffer, .c = c->buffer,
        .lda = a->cols, .ldb = b->cols, .ldc = c->cols,
    };
    /* The forced backend, or AUTO's choice for this size (tuning.c). */
    gpumat_gemm_backend backend = gpumat__gemm_choose(ctx, a->dtype, m, n, ka);
    pthread_mutex_lock(&ctx->lock);
    if (backend == GPUMAT_GEMM_CLBLAST) {
        ctx->clblast_used = true;
        status = gpumat__clblast_gemm(ctx, &call);
    } else {
        status = gpumat__native_gemm(ctx, &call);
    }
    pthread_mutex_unlock(&ctx->lock);
    return status;
}

gpumat_status gpumat_gemm(gpumat_op op_a, gpumat_op op_b, double alpha, const gpumat_matrix *a,
                          const gpumat_matrix *b, double beta, gpumat_matrix *c)
{
    return gemm("gemm", op_a, op_b, alpha, a, b, beta, c);
}

gpumat_status gpumat_multiply(gpumat_matrix *c, const gpumat_matrix *a, const gpumat_matrix *b)
{
    return gemm("multiply", GPUMAT_NO_TRANS, GPUMAT_NO_TRANS, 1.0, a, b, 0.0, c);
}
