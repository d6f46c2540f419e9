/*
 * profile.c - the kernel parameters libgpumat uses on each kind of device.
 *
 * This is the per-vendor dispatch point: a context picks one profile when
 * it is created, and every kernel is compiled with that profile's -D
 * parameters.  The values are starting points sized to each architecture's
 * work-group limits and local memory; measured tuning replaces them.
 */
#include "gpumat_internal.h"

#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Each profile: name, GEMM parameters, TS, WG, then gpumat_transpose's
 * {TV, TVS, TVW, TMS, TMW, TMG, TMO} (gpumat_internal.h, cl/transpose.cl).
 * Measured on an H100 (2026-11, share of a same-size device copy):
 * 16-byte accesses on 64x64 float tiles of 512 work-items (32x32 of 256
 * for double) run at 98-101% of the copy where rows and columns are
 * multiples of 4 (element-wide accesses 87-89% for float); on odd shapes
 * (8191x4097) tiles skewed to 32-byte boundaries of t run at 94% for both
 * types, square tiles at 76-79%.  GPUs in general get the same kernels,
 * sized to their work-group limits; CPUs gain nothing from the skew. */
static const gpumat__profile profiles[] = {
    /* 132 SMs with 64K registers each.  Float: 128x128 tiles of 128
     * work-items (8x16 grid, 16x8 outputs each), one local buffer, warps
     * over 4x8 patches (docs/gemm-notes.md round 2; NVIDIA's compiler gives
     * ~230 registers, two groups per SM), depth 16 since the NN/TT product
     * order of round 4 (49.3 TFLOP/s at 8192, depth 8: 48.3-48.8).  Small
     * 64x64 tiles of 8x16 work-items at depth 16 when 128x128 would not give
     * every SM a group (two local buffers there: round 4, NT 1024 26.4 ->
     * 31.7, NN 1000 28.3 -> 29.6), and 32x32 tiles of 8x8 when even those would not
     * (round 4: sgemm 256^3 2.4 -> 3.7 TFLOP/s, 512^3 10.4 -> 15.6, dgemm
     * 256^3 1.3 -> 2.0).  Double: 128x128 of 16x16 work-items, depth 8, through
     * the two-buffer direct-copy pipeline (cp.async here; round 3: 20.1-20.2
     * TFLOP/s at 4096/8192 against 19.0-19.1 register-staged; the same
     * pipeline loses 2-8% for float, which stays register-staged); its
     * small and tiny tiles with two local buffers (round 4: 256^3 2.0 ->
     * 2.2, 1023x777x1531 9.4 -> 8.8).  Stream-K over waves of 2 float
     * groups per SM when the last wave is under 80% full (round 5: 3072^3
     * 36.8 -> 48.5, 5120^3 44.3 -> 49.0, 8192^3 49.2 -> 49.7; round 6,
     * after the fetch change: 73-76% full gain 1%, 4096^3's 88% loses 1.3%,
     * 2048^3's 97% 6%).  Doubles over waves of one group per SM (two since
     * round 15's smaller groups, below) when the last is under 60% full, the split part register-staged (round 7:
     * dgemm 3072^3 18.0 -> 20.2, 4097^3 16.5 -> 17.7; 76-94% full lose).
     * SKMIN 4: products too small for a wave of big tiles run split on
     * the big tile instead of the small ones where that pays (round 7:
     * sgemm 768^3 18.3 -> 23.8, dgemm 1024^3 14.2 -> 16.1; op_gemm.c).
     * NVTAIL 48: the last 48 products of each K step issued after the
     * step's second barrier, by a pass over NVIDIA's PTX (round 8: sgemm
     * 4096^3 49.0 -> 49.4, 8192^3 50.1 -> 50.7, TN/TT 4096^3 +1%).  NVSKEW
     * 32: NN's transposed stores of A made conflict-free there (round 8,
     * with NVTAIL: 4096^3 -> 49.7-50.0, 8192^3 -> 50.9-51.4).  NVXCOL 1:
     * NN/NT/TN take an extra-column tile index there, so that the stream-K
     * path's plain part runs whole waves where rows of tiles cannot (round
     * 9: 3968x4096x4096 48.6 -> 49.4); NVTAILSK 64: NVTAIL for the
     * stream-K NN kernel (NVSKEW skews it too), with which splitting pays
     * up to 90% full last waves where the plain part is whole waves
     * (SKFILLX 90; round 9: 4096^3 49.7 -> 50.1-50.2, 3968x4096^2 -> 50.1,
     * 8192^3 +0.5%).  PACKA 4000: NN products with n >= 4000 (and of
     * 4000^3 multiply-adds) copy A^T and run the TN loop, which stores no
     * tile transposed (round 12: 4096^3 50.0-50.2 -> 50.4-50.6, 6144^3
     * +1%, 4097^3 +3%; at n = 3072 the copy costs what TN gains).  SKWG64
     * 16: the small and tiny double tiles step 16 deep where the big one's
     * pipeline steps 8 (round 12: dgemm 128^3 0.44 -> 0.54 TFLOP/s, 256^3
     * 2.0 -> 2.57, 384^3 3.75 -> 4.07, NT 256^3 1.5 -> 2.57).  SKWG 32,
     * TTKWG 16: the small and tiny float tiles 32 deep but for TT, which
     * loses there (round 12: sgemm 512^3 16.2 -> 18.4, 8192x64x8192 24.2
     * -> 31.6, NT 640^3 18.5 -> 21.8; TN 640^3 21.4 -> 20.4).  SKSMALL
     * 37, SKFIX 5: shallow products that SKMIN would split stay on the
     * small tiles where those cost less by this model (round 13: sgemm
     * 1024^2 x 448 33 -> 29 us, 1000^2 x 300 31 -> 23, 1000^2 x 500 38 ->
     * 35; 768^3, 1000^3, 1024^3 still split).  MSUB64 8, NSUB64 4: the
     * double tiles' warps over 8 x 4 patches (round 14: dgemm 1000^3 14.4
     * -> 16.4, 8192^3 20.8 -> 21.9, NT 8192^3 19.8 -> 22.4, 4097^3 17.7 ->
     * 19.7, 8192x64x8192 14.1 -> 16.6; float keeps 4 x 8).  The double big
     * tile 64 x 128 of 8 x 16 work-items (8 x 8 doubles each, as before, in
     * groups of 128: two per SM, SKG64 2), which gpumat-tune's double
     * search led to (round 15: dgemm 4096^3 NN / TN / NT / TT 20.7 / 20.4
     * / 21.2 / 21.4 -> 22.2 / 23.0 / 22.5 / 22.4, 8192^3 TN 20.9 -> 23.4,
     * 2048^3 TN 20.0 -> 21.9; 1000^3 NN / TN 16.3 / 16.6 -> 15.8 / 15.8,
     * NT 1023x777x1531 14.6 -> 14.0).  The split tile 64 x 64 of 8 x 8
     * work-items, four groups per SM (SKGM, SKGM64 4), for products that
     * would run an SM at one small group or less, or on the tiny tiles,
     * for their whole depth (SKMINM 8, MIDPCT 101, MIDPCT64 4096; round
     * 16: sgemm 8192x64x8192 31.7 -> 40.6, 4096x64x4096 21.0 -> 33.8,
     * 333x300x7000 8.45 -> 22.7; dgemm 8192x64x8192 16.8 -> 19.5).
     * SKSPLIT 8: split tiles that a wave would cut into more runs each,
     * and big tiles that a whole split would, go to split-K, whose sum
     * every SM shares (round 17: sgemm 128x128x4096 1.6 -> 8.5,
     * 256x256x8192 19.5 -> 29, 2048x64x2048 17.5 -> 22.7; dgemm
     * 128x128x16384 3.6 -> 11.7). */
    {"nvidia-gpu", {128, 128, 16, 8, 16, 64, 64, 8, 16, 100, 8, 1, 2, 4, 8, 64, 128, 8, 16, 32,
                    0, 2, 32, 32, 8, 8, 50, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 80, 2, 60, 4, 48, 32, 1, 90, 64, 4000, 0, 16, 16, 37, 5,
                    8, 4, 64, 64, 8, 8, 4, 4, 8, 101, 4096, 8},
     32, 256, {16, 64, 512, 64, 512, 32, 1}},
    /* wavefronts of 64 and a 256 work-item default limit. */
    {"amd-gpu", {64, 64, 16, 16, 16, 32, 32, 8, 8, 100, 16, 1, 1, 1, 16, 64, 64, 16, 16, 16,
                 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
     32, 256, {16, 64, 256, 64, 256, 32, 1}},
    {"intel-gpu", {64, 64, 16, 16, 16, 32, 32, 8, 8, 100, 16, 1, 1, 1, 16, 64, 64, 16, 16, 16,
                   0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                   0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
     32, 256, {16, 64, 256, 64, 256, 32, 1}},
    /* Unknown GPUs may cap work-groups at 64 work-items. */
    {"generic-gpu", {32, 32, 16, 8, 8, 32, 32, 8, 8, 100, 16, 1, 1, 1, 8, 32, 32, 8, 8, 16,
                     0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                     0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
     16, 64, {16, 32, 64, 32, 64, 32, 1}},
    /* PoCL and other CPU drivers run a work-group as a loop over its
     * work-items, and their local memory is ordinary memory, so the tiled
     * kernels' copies and barriers only cost.  cl/gemm_cpu.cl instead
     * (CVW=8): each work-item keeps a 4 x 3 block of 8-float vectors (4 x
     * 24 floats, 4 x 12 doubles: 12 of AVX2's 16 registers) of C and reads
     * A and B from global memory; NT products take 3 x 4 dot products
     * along k; 4 x 4 work-items a group.  From 224^3 multiply-adds on, the
     * operand read along the vectors is first packed into panels (TN
     * and TT: A^T too), in passes of 256 values of k (fewer where a
     * pass's panel of B would fill over a quarter of the cache; round
     * 13).  docs/gemm-notes.md, "CPU (PoCL) kernel": 4-15x CLBlast on a
     * 2-core EPYC, 0.65-1x
     * OpenBLAS from 1000^3 on.  The tiled parameters stay for CVW=0. */
    {"cpu", {64, 64, 16, 8, 8, 32, 32, 8, 8, 100, 16, 1, 1, 1, 8, 64, 64, 8, 8, 16, 0, 0,
             0, 0, 0, 0, 0, 1, 8, 4, 3, 3, 4, 4, 4, 224, 256, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
             0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
     16, 64, {16, 32, 64, 32, 64, 4, 1}},
    /* The same on CPUs with 512-bit vector units (AVX-512), which PoCL
     * names in its device ("pthread-skylake-avx512", "cpu-znver4"):
     * 16-float vectors, 6 x 2 of them per work-item (12 of 32 registers),
     * NT as 2 x 4 dot products.  gemm-notes.md round 11, PoCL 3.1 on 2
     * cores of an AVX-512 EPYC: sgemm 256^3 / 1024^3 / 2048^3 117 / 124 /
     * 227 -> 342 / 384 / 394 GFLOP/s, dgemm 1024^3 111 -> 201, against
     * OpenBLAS 0.3.21 (AVX2 kernels there) 231 / 234 / 237 and 119. */
    {"cpu-avx512", {64, 64, 16, 8, 8, 32, 32, 8, 8, 100, 16, 1, 1, 1, 8, 64, 64, 8, 8, 16, 0, 0,
                    0, 0, 0, 0, 0, 1, 16, 6, 2, 2, 4, 4, 4, 224, 256, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                    0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
     16, 64, {16, 32, 64, 32, 64, 4, 1}},
};

static const gpumat__profile *find(const char *name)
{
    for (size_t i = 0; i < sizeof profiles / sizeof profiles[0]; ++i)
        if (profiles[i].name[0] == name[0] && !strcmp(profiles[i].name, name))
            return &profiles[i];
    return NULL;
}

/* cl/transpose.cl's rules: whole accesses per tile row, whole tile rows
 * per pass of the work-group, for float and for double (half of each),
 * and a skew step that divides the tile. */
static bool transpose_ok(const gpumat__transpose_params *t)
{
    return (t->tv == 4 || t->tv == 8 || t->tv == 16) && t->tvs % 8 == 0 && t->tms % 8 == 0 &&
           t->tvw % t->tvs == 0 && t->tmw % t->tms == 0 && t->tmg >= 4 && t->tmg <= 128 &&
           (t->tmg & (t->tmg - 1)) == 0 && t->tms % (t->tmg / 4) == 0 &&
           (t->tmo == 1 || t->tmo == 2);
}

/* Bytes of local memory of a transpose tile of side `side` (plus the skew
 * step's extra rows) for elements of `size` bytes. */
static uint64_t transpose_tile_bytes(unsigned side, unsigned skew_bytes, unsigned size)
{
    unsigned step = skew_bytes / size > 1 ? skew_bytes / size : 1;
    return (uint64_t)(side + step - 1) * (side + 1) * size;
}

static bool transpose_fits(const gpumat__profile *p, const gpumat_device_info *info)
{
    const gpumat__transpose_params *t = &p->transpose;
    uint64_t bytes[4] = {transpose_tile_bytes(t->tvs, 4, 4), transpose_tile_bytes(t->tvs / 2, 4, 8),
                         transpose_tile_bytes(t->tms, t->tmg, 4),
                         transpose_tile_bytes(t->tms / 2, t->tmg, 8)};
    for (int i = 0; i < 4; ++i)
        if (info->local_memory_bytes != 0 && bytes[i] > info->local_memory_bytes)
            return false;
    return t->tvw <= info->max_work_group_size && t->tmw <= info->max_work_group_size;
}

/* The small and tiny double tiles' depth: SKWG64, or KWG64 where it is 0. */
static unsigned small_kwg64(const gpumat__gemm_params *g)
{
    return g->skwg64 ? g->skwg64 : g->kwg64;
}

/* Elements of local memory the direct-copy pipeline takes: stages copies
 * of the KWG x (MWG+4) and KWG x (NWG+4) tiles. */
static uint64_t async_tiles(unsigned stages, unsigned mwg, unsigned nwg, unsigned kwg)
{
    return (uint64_t)stages * kwg * (mwg + nwg + 8);
}

static bool fits(const gpumat__profile *p, const gpumat_device_info *info)
{
    const gpumat__gemm_params *g = &p->gemm;
    size_t gemm_items = (size_t)g->mdimc * g->ndimc;
    size_t gemm64_items = (size_t)g->mdimc64 * g->ndimc64;
    size_t small_items = (size_t)g->smdimc * g->sndimc;
    size_t tiny_items = (size_t)g->tmdimc * g->tndimc;
    size_t mid_items = (size_t)g->mmdimc * g->mndimc;
    size_t transpose_items = (size_t)p->transpose_tile * gpumat__transpose_rows(p);
    /* LBUF copies of the KWG x (MWG+4) and KWG x (NWG+4) local tiles
     * (cl/gemm.cl pads each row by 4), for floats and for doubles; the
     * direct-copy pipeline's ASYNC copies of its own layouts instead, or
     * both where stream-K runs the register-staged tile beside it. */
    uint64_t staged32 = (uint64_t)g->lbuf * g->kwg * (g->mwg + g->nwg + 8);
    uint64_t big32 = g->async ? async_tiles(g->async, g->mwg, g->nwg, g->kwg) : staged32;
    if (g->skg && big32 < staged32)
        big32 = staged32;
    unsigned skwg32 = g->ttkwg > g->skwg ? g->ttkwg : g->skwg;
    uint64_t small32 = (uint64_t)g->slbuf * skwg32 * (g->smwg + g->snwg + 8);
    uint64_t tiny32 = (uint64_t)g->lbuf * skwg32 * (g->tmwg + g->tnwg + 8);
    if (small32 < tiny32)
        small32 = tiny32;
    uint64_t mid32 = (uint64_t)g->lbuf * g->kwg * (g->mmwg + g->mnwg + 8);
    if (small32 < mid32)
        small32 = mid32;
    uint64_t local32 = (big32 > small32 ? big32 : small32) * 4;
    uint64_t staged64 = (uint64_t)g->lbuf64 * g->kwg64 * (g->mwg64 + g->nwg64 + 8);
    uint64_t big64 =
        g->async64 ? async_tiles(g->async64, g->mwg64, g->nwg64, g->kwg64) : staged64;
    if (g->skg64 && big64 < staged64)
        big64 = staged64;
    uint64_t small64 = (uint64_t)g->lbuf64 * small_kwg64(g) * (g->smwg + g->snwg + 8);
    uint64_t tiny64 = (uint64_t)g->lbuf64 * small_kwg64(g) * (g->tmwg + g->tnwg + 8);
    if (small64 < tiny64)
        small64 = tiny64;
    uint64_t mid64 = (uint64_t)g->lbuf64 * g->kwg64 * (g->mmwg + g->mnwg + 8);
    if (small64 < mid64)
        small64 = mid64;
    uint64_t local64 = (big64 > small64 ? big64 : small64) * 8;
    uint64_t local = local32 > local64 ? local32 : local64;
    size_t cpu_items = g->cvw ? (size_t)g->cwx * g->cwy : 0;
    return info->max_work_group_size == 0 ||
           (gemm_items <= info->max_work_group_size && cpu_items <= info->max_work_group_size &&
            gemm64_items <= info->max_work_group_size &&
            small_items <= info->max_work_group_size &&
            tiny_items <= info->max_work_group_size && mid_items <= info->max_work_group_size &&
            transpose_items <= info->max_work_group_size && transpose_fits(p, info) &&
            p->elementwise_wg <= info->max_work_group_size &&
            (info->local_memory_bytes == 0 || local <= info->local_memory_bytes));
}

/* Whether a CPU device's name says its vector units are 512 bits wide.
 * PoCL names the device after the LLVM CPU it compiles for
 * ("pthread-skylake-avx512", "cpu-znver4", "pthread-sapphirerapids"); other
 * CPU drivers name the processor, which says nothing about it, and keep
 * `cpu` (GPUMAT_PROFILE=cpu-avx512 or a tuning file can change that). */
static bool names_avx512(const char *name)
{
    static const char *const hints[] = {"avx512",       "x86-64-v4",     "cascadelake",
                                        "cooperlake",   "cannonlake",    "icelake",
                                        "tigerlake",    "rocketlake",    "sapphirerapids",
                                        "emeraldrapids", "graniterapids", "diamondrapids",
                                        "znver4",       "znver5"};
    for (size_t i = 0; i < sizeof hints / sizeof hints[0]; ++i)
        if (strstr(name, hints[i]))
            return true;
    return false;
}

const gpumat__profile *gpumat__profile_for(const gpumat_device_info *info)
{
    const char *name = "generic-gpu";
    if (info->type == GPUMAT_DEVICE_CPU)
        name = names_avx512(info->name) ? "cpu-avx512" : "cpu";
    else if (info->vendor == GPUMAT_VENDOR_NVIDIA)
        name = "nvidia-gpu";
    else if (info->vendor == GPUMAT_VENDOR_AMD)
        name = "amd-gpu";
    else if (info->vendor == GPUMAT_VENDOR_INTEL)
        name = "intel-gpu";
    const gpumat__profile *p = find(name);
    /* A device smaller than its class expects gets the smallest profile. */
    return fits(p, info) ? p : find("generic-gpu");
}

void gpumat__profile_build_options(const gpumat__profile *p, char *buf, size_t size)
{
    snprintf(buf, size,
             "-cl-std=CL1.2 -DMWG=%u -DNWG=%u -DKWG=%u -DMDIMC=%u -DNDIMC=%u "
             "-DSMWG=%u -DSNWG=%u -DSMDIMC=%u -DSNDIMC=%u -DKWG64=%u -DLBUF=%u -DLBUF64=%u "
             "-DMSUB=%u -DNSUB=%u -DMWG64=%u -DNWG64=%u -DMDIMC64=%u -DNDIMC64=%u -DSKWG=%u "
             "-DASYNC=%u -DASYNC64=%u -DTMWG=%u -DTNWG=%u -DTMDIMC=%u -DTNDIMC=%u "
             "-DSLBUF=%u -DTS=%u -DTR=%u",
             p->gemm.mwg, p->gemm.nwg, p->gemm.kwg, p->gemm.mdimc, p->gemm.ndimc,
             p->gemm.smwg, p->gemm.snwg, p->gemm.smdimc, p->gemm.sndimc, p->gemm.kwg64,
             p->gemm.lbuf, p->gemm.lbuf64, p->gemm.msub, p->gemm.nsub, p->gemm.mwg64,
             p->gemm.nwg64, p->gemm.mdimc64, p->gemm.ndimc64, p->gemm.skwg,
             p->gemm.async, p->gemm.async64, p->gemm.tmwg, p->gemm.tnwg, p->gemm.tmdimc,
             p->gemm.tndimc, p->gemm.slbuf, p->transpose_tile, gpumat__transpose_rows(p));
    size_t used = strlen(buf);
    if (used < size)
        snprintf(buf + used, size - used, " -DTV=%u -DTVS=%u -DTVW=%u -DTMS=%u -DTMW=%u -DTMG=%u",
                 p->transpose.tv, p->transpose.tvs, p->transpose.tvw, p->transpose.tms,
                 p->transpose.tmw, p->transpose.tmg);
    /* Only profiles that set SKWG64, MSUB64 and NSUB64 or TTKWG, and only
     * those that use cl/gemm_cpu.cl, name those parameters, so that the
     * others' options (and compiled kernels) stay as they were. */
    used = strlen(buf);
    if (p->gemm.skwg64 && used < size)
        snprintf(buf + used, size - used, " -DSKWG64=%u", p->gemm.skwg64);
    used = strlen(buf);
    if (p->gemm.msub64 && p->gemm.nsub64 && used < size)
        snprintf(buf + used, size - used, " -DMSUB64=%u -DNSUB64=%u", p->gemm.msub64,
                 p->gemm.nsub64);
    used = strlen(buf);
    if (p->gemm.ttkwg && used < size)
        snprintf(buf + used, size - used, " -DTTKWG=%u", p->gemm.ttkwg);
    used = strlen(buf);
    if (p->gemm.cvw && used < size)
        snprintf(buf + used, size - used,
                 " -DCVW=%u -DCMR=%u -DCNV=%u -DCDM=%u -DCDN=%u -DCWX=%u -DCWY=%u", p->gemm.cvw,
                 p->gemm.cmr, p->gemm.cnv, p->gemm.cdm, p->gemm.cdn, p->gemm.cwx, p->gemm.cwy);
}

bool gpumat__profile_option_other_type(const char *name, size_t len, bool f64)
{
    /* cl/gemm.cl picks its big tile, depth, buffering and pipeline from
     * these by element type; everything else is shared or type-blind. */
    static const char *const float_only[] = {"MWG", "NWG", "KWG", "MDIMC", "NDIMC",
                                             "SKWG", "LBUF", "SLBUF", "ASYNC", "TTKWG"};
    static const char *const double_only[] = {"MWG64", "NWG64", "KWG64", "MDIMC64",
                                              "NDIMC64", "LBUF64", "ASYNC64", "SKWG64",
                                              "MSUB64",  "NSUB64"};
    const char *const *other = f64 ? float_only : double_only;
    size_t count = f64 ? sizeof float_only / sizeof float_only[0]
                       : sizeof double_only / sizeof double_only[0];
    for (size_t i = 0; i < count; ++i)
        if (strlen(other[i]) == len && strncmp(other[i], name, len) == 0)
            return true;
    return false;
}

void gpumat__profile_vendor_options(const gpumat__profile *p, unsigned nv_sm, bool f64,
                                    char *buf, size_t size)
{
    /* cp.async (global -> shared without registers) exists from sm_80 on;
     * older NVIDIA GPUs run the pipeline with plain copies.  (No register
     * cap here: driver 580 ignores -cl-nv-maxrregcount=N and rejects the
     * spelling with a space; docs/gemm-notes.md, round 3.) */
    snprintf(buf, size, "%s",
             nv_sm >= 80 && (f64 ? p->gemm.async64 : p->gemm.async) ? "-DGPUMAT_NV_ASYNC=1" : "");
}

size_t gpumat__profile_count(void) { return sizeof profiles / sizeof profiles[0]; }

const gpumat__profile *gpumat__profile_at(size_t i)
{
    return i < gpumat__profile_count() ? &profiles[i] : NULL;
}

/* The parameters GPUMAT_KERNEL_PARAMS may set, by their -D names. */
static const struct {
    const char *name;
    size_t offset;
} parameters[] = {
    {"MWG", offsetof(gpumat__profile, gemm.mwg)},
    {"NWG", offsetof(gpumat__profile, gemm.nwg)},
    {"KWG", offsetof(gpumat__profile, gemm.kwg)},
    {"MDIMC", offsetof(gpumat__profile, gemm.mdimc)},
    {"NDIMC", offsetof(gpumat__profile, gemm.ndimc)},
    {"SMWG", offsetof(gpumat__profile, gemm.smwg)},
    {"SNWG", offsetof(gpumat__profile, gemm.snwg)},
    {"SMDIMC", offsetof(gpumat__profile, gemm.smdimc)},
    {"SNDIMC", offsetof(gpumat__profile, gemm.sndimc)},
    {"SMALLPCT", offsetof(gpumat__profile, gemm.small_pct)},
    {"KWG64", offsetof(gpumat__profile, gemm.kwg64)},
    {"LBUF", offsetof(gpumat__profile, gemm.lbuf)},
    {"LBUF64", offsetof(gpumat__profile, gemm.lbuf64)},
    {"MSUB", offsetof(gpumat__profile, gemm.msub)},
    {"NSUB", offsetof(gpumat__profile, gemm.nsub)},
    {"MWG64", offsetof(gpumat__profile, gemm.mwg64)},
    {"NWG64", offsetof(gpumat__profile, gemm.nwg64)},
    {"MDIMC64", offsetof(gpumat__profile, gemm.mdimc64)},
    {"NDIMC64", offsetof(gpumat__profile, gemm.ndimc64)},
    {"SKWG", offsetof(gpumat__profile, gemm.skwg)},
    {"ASYNC", offsetof(gpumat__profile, gemm.async)},
    {"ASYNC64", offsetof(gpumat__profile, gemm.async64)},
    {"TMWG", offsetof(gpumat__profile, gemm.tmwg)},
    {"TNWG", offsetof(gpumat__profile, gemm.tnwg)},
    {"TMDIMC", offsetof(gpumat__profile, gemm.tmdimc)},
    {"TNDIMC", offsetof(gpumat__profile, gemm.tndimc)},
    {"TINYPCT", offsetof(gpumat__profile, gemm.tiny_pct)},
    {"SLBUF", offsetof(gpumat__profile, gemm.slbuf)},
    {"CVW", offsetof(gpumat__profile, gemm.cvw)},
    {"CMR", offsetof(gpumat__profile, gemm.cmr)},
    {"CNV", offsetof(gpumat__profile, gemm.cnv)},
    {"CDM", offsetof(gpumat__profile, gemm.cdm)},
    {"CDN", offsetof(gpumat__profile, gemm.cdn)},
    {"CWX", offsetof(gpumat__profile, gemm.cwx)},
    {"CWY", offsetof(gpumat__profile, gemm.cwy)},
    {"CPACK", offsetof(gpumat__profile, gemm.cpack)},
    {"CKC", offsetof(gpumat__profile, gemm.ckc)},
    {"SKG", offsetof(gpumat__profile, gemm.skg)},
    {"SKFILL", offsetof(gpumat__profile, gemm.sk_fill)},
    {"SKG64", offsetof(gpumat__profile, gemm.skg64)},
    {"SKFILL64", offsetof(gpumat__profile, gemm.sk_fill64)},
    {"SKMIN", offsetof(gpumat__profile, gemm.sk_min)},
    {"NVTAIL", offsetof(gpumat__profile, gemm.nv_tail)},
    {"NVSKEW", offsetof(gpumat__profile, gemm.nv_skew)},
    {"NVXCOL", offsetof(gpumat__profile, gemm.nv_xcol)},
    {"SKFILLX", offsetof(gpumat__profile, gemm.sk_fill_x)},
    {"NVTAILSK", offsetof(gpumat__profile, gemm.nv_tail_sk)},
    {"PACKA", offsetof(gpumat__profile, gemm.pack_a)},
    {"PACKB", offsetof(gpumat__profile, gemm.pack_b)},
    {"SKWG64", offsetof(gpumat__profile, gemm.skwg64)},
    {"TTKWG", offsetof(gpumat__profile, gemm.ttkwg)},
    {"SKSMALL", offsetof(gpumat__profile, gemm.sk_small)},
    {"SKFIX", offsetof(gpumat__profile, gemm.sk_fix)},
    {"MSUB64", offsetof(gpumat__profile, gemm.msub64)},
    {"NSUB64", offsetof(gpumat__profile, gemm.nsub64)},
    {"MMWG", offsetof(gpumat__profile, gemm.mmwg)},
    {"MNWG", offsetof(gpumat__profile, gemm.mnwg)},
    {"MMDIMC", offsetof(gpumat__profile, gemm.mmdimc)},
    {"MNDIMC", offsetof(gpumat__profile, gemm.mndimc)},
    {"SKGM", offsetof(gpumat__profile, gemm.skgm)},
    {"SKGM64", offsetof(gpumat__profile, gemm.skgm64)},
    {"SKMINM", offsetof(gpumat__profile, gemm.sk_min_mid)},
    {"MIDPCT", offsetof(gpumat__profile, gemm.mid_pct)},
    {"MIDPCT64", offsetof(gpumat__profile, gemm.mid_pct64)},
    {"SKSPLIT", offsetof(gpumat__profile, gemm.sk_split)},
    {"TS", offsetof(gpumat__profile, transpose_tile)},
    {"TV", offsetof(gpumat__profile, transpose.tv)},
    {"TVS", offsetof(gpumat__profile, transpose.tvs)},
    {"TVW", offsetof(gpumat__profile, transpose.tvw)},
    {"TMS", offsetof(gpumat__profile, transpose.tms)},
    {"TMW", offsetof(gpumat__profile, transpose.tmw)},
    {"TMG", offsetof(gpumat__profile, transpose.tmg)},
    {"TMO", offsetof(gpumat__profile, transpose.tmo)},
    {"WG", offsetof(gpumat__profile, elementwise_wg)},
};

/* The parameters for which 0 is a value: "off". */
static bool zero_means_off(size_t offset)
{
    return offset == offsetof(gpumat__profile, gemm.async) ||
           offset == offsetof(gpumat__profile, gemm.async64) ||
           offset == offsetof(gpumat__profile, gemm.tmwg) ||
           offset == offsetof(gpumat__profile, gemm.tnwg) ||
           offset == offsetof(gpumat__profile, gemm.tmdimc) ||
           offset == offsetof(gpumat__profile, gemm.tndimc) ||
           offset == offsetof(gpumat__profile, gemm.tiny_pct) ||
           offset == offsetof(gpumat__profile, gemm.cvw) ||
           offset == offsetof(gpumat__profile, gemm.ckc) ||
           offset == offsetof(gpumat__profile, gemm.skg) ||
           offset == offsetof(gpumat__profile, gemm.sk_fill) ||
           offset == offsetof(gpumat__profile, gemm.skg64) ||
           offset == offsetof(gpumat__profile, gemm.sk_fill64) ||
           offset == offsetof(gpumat__profile, gemm.sk_min) ||
           offset == offsetof(gpumat__profile, gemm.nv_tail) ||
           offset == offsetof(gpumat__profile, gemm.nv_skew) ||
           offset == offsetof(gpumat__profile, gemm.nv_xcol) ||
           offset == offsetof(gpumat__profile, gemm.sk_fill_x) ||
           offset == offsetof(gpumat__profile, gemm.nv_tail_sk) ||
           offset == offsetof(gpumat__profile, gemm.pack_a) ||
           offset == offsetof(gpumat__profile, gemm.pack_b) ||
           offset == offsetof(gpumat__profile, gemm.skwg64) ||
           offset == offsetof(gpumat__profile, gemm.ttkwg) ||
           offset == offsetof(gpumat__profile, gemm.sk_small) ||
           offset == offsetof(gpumat__profile, gemm.sk_fix) ||
           offset == offsetof(gpumat__profile, gemm.msub64) ||
           offset == offsetof(gpumat__profile, gemm.nsub64) ||
           offset == offsetof(gpumat__profile, gemm.mmwg) ||
           offset == offsetof(gpumat__profile, gemm.mnwg) ||
           offset == offsetof(gpumat__profile, gemm.mmdimc) ||
           offset == offsetof(gpumat__profile, gemm.mndimc) ||
           offset == offsetof(gpumat__profile, gemm.skgm) ||
           offset == offsetof(gpumat__profile, gemm.skgm64) ||
           offset == offsetof(gpumat__profile, gemm.sk_min_mid) ||
           offset == offsetof(gpumat__profile, gemm.mid_pct) ||
           offset == offsetof(gpumat__profile, gemm.mid_pct64) ||
           offset == offsetof(gpumat__profile, gemm.sk_split);
}

/* cl/gemm.cl reads local tiles as 4-wide vectors and has every work-item
 * fetch whole 4-element pieces of each tile. */
static bool tile_ok(unsigned mwg, unsigned nwg, unsigned kwg, unsigned mdimc, unsigned ndimc)
{
    unsigned threads = mdimc * ndimc;
    return mwg % (4 * mdimc) == 0 && nwg % (4 * ndimc) == 0 && kwg % 4 == 0 &&
           (mwg * kwg) % (4 * threads) == 0 && (nwg * kwg) % (4 * threads) == 0;
}

/* The direct-copy pipeline: 2 to 4 buffers, and a work-group that copies
 * whole columns of k when it transposes an operand on the way in. */
static bool async_ok(unsigned stages, unsigned kwg, unsigned mdimc, unsigned ndimc)
{
    return stages == 0 || (stages >= 2 && stages <= 4 && (mdimc * ndimc) % kwg == 0);
}

/* The tiny tile: off (all four 0), or whole pieces at both depths. */
static bool tiny_ok(const gpumat__gemm_params *g)
{
    if (!g->tmwg && !g->tnwg && !g->tmdimc && !g->tndimc)
        return true;
    return g->tmwg && g->tnwg && g->tmdimc && g->tndimc &&
           tile_ok(g->tmwg, g->tnwg, g->skwg, g->tmdimc, g->tndimc) &&
           (!g->ttkwg || tile_ok(g->tmwg, g->tnwg, g->ttkwg, g->tmdimc, g->tndimc)) &&
           tile_ok(g->tmwg, g->tnwg, small_kwg64(g), g->tmdimc, g->tndimc);
}

/* The split tile: off (all four 0), or whole pieces at the float and
 * the double depth (its kernels are the big tile's, resized). */
static bool mid_ok(const gpumat__gemm_params *g)
{
    if (!g->mmwg && !g->mnwg && !g->mmdimc && !g->mndimc)
        return true;
    return g->mmwg && g->mnwg && g->mmdimc && g->mndimc &&
           tile_ok(g->mmwg, g->mnwg, g->kwg, g->mmdimc, g->mndimc) &&
           tile_ok(g->mmwg, g->mnwg, g->kwg64, g->mmdimc, g->mndimc);
}

/* Stream-K's waves count the big tile's groups that run at once on a
 * compute unit (SKG, SKG64), which depends on the work-group's size: a
 * spec that changes the work-group but sets no count of its own keeps the
 * profile's work-items per compute unit (H100, gemm-notes round 15: the
 * double tile at 64 work-items kept at one group per SM ran 1023x777x1531
 * at 8.3 TFLOP/s, at four 15.5). */
static unsigned scaled_groups(unsigned groups, unsigned old_items, unsigned new_items)
{
    if (!groups || old_items == new_items || !new_items)
        return groups;
    unsigned scaled = (groups * old_items + new_items / 2) / new_items;
    return scaled ? scaled : 1;
}

static gpumat_status apply_overrides(gpumat__profile *p, const char *spec)
{
    const unsigned items = p->gemm.mdimc * p->gemm.ndimc;
    const unsigned items64 = p->gemm.mdimc64 * p->gemm.ndimc64;
    const unsigned items_mid = p->gemm.mmdimc * p->gemm.mndimc;
    bool set_skg = false, set_skg64 = false, set_skgm = false, set_skgm64 = false;
    const char *s = spec;
    while (*s) {
        size_t len = strcspn(s, "=,");
        if (s[len] != '=')
            return gpumat__fail(NULL, GPUMAT_ERR_INVALID_ARGUMENT,
                                "GPUMAT_KERNEL_PARAMS=\"%s\": expected NAME=VALUE at \"%s\"", spec, s);
        size_t i = 0;
        while (i < sizeof parameters / sizeof parameters[0] &&
               (strlen(parameters[i].name) != len || strncmp(parameters[i].name, s, len) != 0))
            ++i;
        char *end;
        unsigned long v = strtoul(s + len + 1, &end, 10);
        if (i == sizeof parameters / sizeof parameters[0] || end == s + len + 1 ||
            (*end && *end != ',') || (v == 0 && !zero_means_off(parameters[i].offset)) ||
            v > 4096)
            return gpumat__fail(NULL, GPUMAT_ERR_INVALID_ARGUMENT,
                                "GPUMAT_KERNEL_PARAMS=\"%s\": bad parameter at \"%s\"", spec, s);
        unsigned value = (unsigned)v;
        memcpy((char *)p + parameters[i].offset, &value, sizeof value);
        set_skg |= parameters[i].offset == offsetof(gpumat__profile, gemm.skg);
        set_skg64 |= parameters[i].offset == offsetof(gpumat__profile, gemm.skg64);
        set_skgm |= parameters[i].offset == offsetof(gpumat__profile, gemm.skgm);
        set_skgm64 |= parameters[i].offset == offsetof(gpumat__profile, gemm.skgm64);
        s = *end ? end + 1 : end;
    }
    if (!set_skg)
        p->gemm.skg = scaled_groups(p->gemm.skg, items, p->gemm.mdimc * p->gemm.ndimc);
    if (!set_skg64)
        p->gemm.skg64 = scaled_groups(p->gemm.skg64, items64, p->gemm.mdimc64 * p->gemm.ndimc64);
    if (!set_skgm)
        p->gemm.skgm = scaled_groups(p->gemm.skgm, items_mid, p->gemm.mmdimc * p->gemm.mndimc);
    if (!set_skgm64)
        p->gemm.skgm64 =
            scaled_groups(p->gemm.skgm64, items_mid, p->gemm.mmdimc * p->gemm.mndimc);
    const gpumat__gemm_params *g = &p->gemm;
    if (!tile_ok(g->mwg, g->nwg, g->kwg, g->mdimc, g->ndimc) ||
        !tile_ok(g->smwg, g->snwg, g->skwg, g->smdimc, g->sndimc) ||
        (g->ttkwg && !tile_ok(g->smwg, g->snwg, g->ttkwg, g->smdimc, g->sndimc)) ||
        !tile_ok(g->mwg64, g->nwg64, g->kwg64, g->mdimc64, g->ndimc64) || g->slbuf > 2 ||
        !tile_ok(g->smwg, g->snwg, small_kwg64(g), g->smdimc, g->sndimc) ||
        g->lbuf > 2 ||
        g->lbuf64 > 2 || !async_ok(g->async, g->kwg, g->mdimc, g->ndimc) ||
        !async_ok(g->async64, g->kwg64, g->mdimc64, g->ndimc64) || !tiny_ok(g) ||
        p->transpose_tile % 4)
        return gpumat__fail(NULL, GPUMAT_ERR_INVALID_ARGUMENT,
                            "GPUMAT_KERNEL_PARAMS=\"%s\": MWG must be a multiple of 4*MDIMC, NWG "
                            "of 4*NDIMC, KWG of 4, MWG*KWG and NWG*KWG of 4*MDIMC*NDIMC (the "
                            "same for SMWG, SNWG, SMDIMC, SNDIMC with SKWG and TTKWG, and with KWG64 "
                            "for MWG64, NWG64, MDIMC64, NDIMC64 and SKWG64 or KWG64 for the "
                            "small tile), LBUF, "
                            "SLBUF and LBUF64 1 or 2, ASYNC and ASYNC64 0 or 2 to 4 (when not 0, "
                            "MDIMC*NDIMC a multiple of KWG, MDIMC64*NDIMC64 of KWG64), TMWG, "
                            "TNWG, TMDIMC, TNDIMC all 0 or a tile as above with SKWG and with "
                            "KWG64, and TS a multiple of 4", spec);
    if (!mid_ok(g))
        return gpumat__fail(NULL, GPUMAT_ERR_INVALID_ARGUMENT,
                            "GPUMAT_KERNEL_PARAMS=\"%s\": MMWG, MNWG, MMDIMC, MNDIMC must all be "
                            "0 (no split tile) or a tile as MWG, NWG, MDIMC, NDIMC are, with KWG "
                            "and with KWG64", spec);
    if (!g->msub64 != !g->nsub64)
        return gpumat__fail(NULL, GPUMAT_ERR_INVALID_ARGUMENT,
                            "GPUMAT_KERNEL_PARAMS=\"%s\": MSUB64 and NSUB64 must both be 0 (the "
                            "double tiles take MSUB x NSUB) or both be set", spec);
    if (g->cvw && !((g->cvw == 4 || g->cvw == 8 || g->cvw == 16) && g->cmr && g->cmr <= 16 &&
                    g->cnv && g->cnv <= 16 && g->cdm && g->cdm <= 16 && g->cdn &&
                    g->cdn <= 16 && g->cwx && g->cwy))
        return gpumat__fail(NULL, GPUMAT_ERR_INVALID_ARGUMENT,
                            "GPUMAT_KERNEL_PARAMS=\"%s\": CVW must be 0 (the tiled kernels), 4, "
                            "8 or 16, and then CMR, CNV, CDM and CDN 1 to 16", spec);
    if (!transpose_ok(&p->transpose))
        return gpumat__fail(NULL, GPUMAT_ERR_INVALID_ARGUMENT,
                            "GPUMAT_KERNEL_PARAMS=\"%s\": TV must be 4, 8 or 16, TVS and TMS "
                            "multiples of 8 (TMS also of TMG/4), TVW a multiple of TVS and TMW "
                            "of TMS, TMG a power of two from 4 to 128, and TMO 1 or 2", spec);
    return GPUMAT_OK;
}

gpumat_status gpumat__profile_choose(const gpumat_device_info *info, gpumat__profile *out,
                                     gpumat__tuning *tuning)
{
    const gpumat__profile *p = gpumat__profile_for(info);
    const char *name = getenv("GPUMAT_PROFILE");
    if (name && *name) {
        p = find(name);
        if (!p) {
            char known[256] = "";
            for (size_t i = 0; i < gpumat__profile_count(); ++i)
                snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s",
                         i ? ", " : "", profiles[i].name);
            return gpumat__fail(NULL, GPUMAT_ERR_INVALID_ARGUMENT,
                                "GPUMAT_PROFILE=\"%s\" is not a profile (%s)", name, known);
        }
    }
    *out = *p;
    const char *spec = getenv("GPUMAT_KERNEL_PARAMS");
    gpumat_status status = spec && *spec ? apply_overrides(out, spec) : GPUMAT_OK;
    if (status == GPUMAT_OK && !fits(out, info))
        status = gpumat__fail(NULL, GPUMAT_ERR_INVALID_ARGUMENT,
                              "profile %s%s%s does not fit %s (work-group or local memory limit)",
                              out->name, spec && *spec ? " with GPUMAT_KERNEL_PARAMS=" : "",
                              spec && *spec ? spec : "", info->name);
    /* The device's tuning file (tuning.c), unless GPUMAT_KERNEL_PARAMS rules. */
    if (status == GPUMAT_OK && tuning)
        gpumat__tuning_apply(info, out, spec && *spec, apply_overrides, fits, tuning);
    return status;
}
