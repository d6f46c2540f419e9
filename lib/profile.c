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

static const gpumat__profile profiles[] = {
    /* 132 SMs with 64K registers each.  Float: 128x128 tiles of 128
     * work-items (8x16 grid, 16x8 outputs each), depth 8, one local buffer,
     * warps over 4x8 patches (docs/gemm-notes.md round 2: 47.5-48 TFLOP/s;
     * NVIDIA's compiler gives ~230 registers, two groups per SM).  Small
     * 64x64 tiles of 8x16 work-items at depth 16 when 128x128 would not give
     * every SM a group.  Double: 128x128 of 16x16 work-items, depth 16. */
    {"nvidia-gpu", {128, 128, 8, 8, 16, 64, 64, 8, 16, 100, 16, 1, 1, 4, 8, 128, 128, 16, 16, 16},
     32, 256},
    /* wavefronts of 64 and a 256 work-item default limit. */
    {"amd-gpu", {64, 64, 16, 16, 16, 32, 32, 8, 8, 100, 16, 1, 1, 1, 16, 64, 64, 16, 16, 16},
     32, 256},
    {"intel-gpu", {64, 64, 16, 16, 16, 32, 32, 8, 8, 100, 16, 1, 1, 1, 16, 64, 64, 16, 16, 16},
     32, 256},
    /* Unknown GPUs may cap work-groups at 64 work-items. */
    {"generic-gpu", {32, 32, 16, 8, 8, 32, 32, 8, 8, 100, 16, 1, 1, 1, 8, 32, 32, 8, 8, 16},
     16, 64},
    /* PoCL and other CPU drivers run a work-group as a loop: small groups
     * with larger per-item blocks keep the loop body vectorisable. */
    {"cpu", {64, 64, 16, 8, 8, 32, 32, 8, 8, 100, 16, 1, 1, 1, 8, 64, 64, 8, 8, 16},
     16, 64},
};

static const gpumat__profile *find(const char *name)
{
    for (size_t i = 0; i < sizeof profiles / sizeof profiles[0]; ++i)
        if (profiles[i].name[0] == name[0] && !strcmp(profiles[i].name, name))
            return &profiles[i];
    return NULL;
}

static bool fits(const gpumat__profile *p, const gpumat_device_info *info)
{
    const gpumat__gemm_params *g = &p->gemm;
    size_t gemm_items = (size_t)g->mdimc * g->ndimc;
    size_t gemm64_items = (size_t)g->mdimc64 * g->ndimc64;
    size_t small_items = (size_t)g->smdimc * g->sndimc;
    size_t transpose_items = (size_t)p->transpose_tile * gpumat__transpose_rows(p);
    /* LBUF copies of the KWG x (MWG+4) and KWG x (NWG+4) local tiles
     * (cl/gemm.cl pads each row by 4), for floats and for doubles. */
    uint64_t big32 = (uint64_t)g->kwg * (g->mwg + g->nwg + 8);
    uint64_t small32 = (uint64_t)g->skwg * (g->smwg + g->snwg + 8);
    uint64_t local32 = (uint64_t)g->lbuf * (big32 > small32 ? big32 : small32) * 4;
    unsigned widest64 = g->mwg64 + g->nwg64 > g->smwg + g->snwg ? g->mwg64 + g->nwg64
                                                                : g->smwg + g->snwg;
    uint64_t local64 = (uint64_t)g->lbuf64 * g->kwg64 * (widest64 + 8) * 8;
    uint64_t local = local32 > local64 ? local32 : local64;
    return info->max_work_group_size == 0 ||
           (gemm_items <= info->max_work_group_size &&
            gemm64_items <= info->max_work_group_size &&
            small_items <= info->max_work_group_size &&
            transpose_items <= info->max_work_group_size &&
            p->elementwise_wg <= info->max_work_group_size &&
            (info->local_memory_bytes == 0 || local <= info->local_memory_bytes));
}

const gpumat__profile *gpumat__profile_for(const gpumat_device_info *info)
{
    const char *name = "generic-gpu";
    if (info->type == GPUMAT_DEVICE_CPU)
        name = "cpu";
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
             "-DTS=%u -DTR=%u",
             p->gemm.mwg, p->gemm.nwg, p->gemm.kwg, p->gemm.mdimc, p->gemm.ndimc,
             p->gemm.smwg, p->gemm.snwg, p->gemm.smdimc, p->gemm.sndimc, p->gemm.kwg64,
             p->gemm.lbuf, p->gemm.lbuf64, p->gemm.msub, p->gemm.nsub, p->gemm.mwg64,
             p->gemm.nwg64, p->gemm.mdimc64, p->gemm.ndimc64, p->gemm.skwg,
             p->transpose_tile, gpumat__transpose_rows(p));
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
    {"TS", offsetof(gpumat__profile, transpose_tile)},
    {"WG", offsetof(gpumat__profile, elementwise_wg)},
};

/* cl/gemm.cl reads local tiles as 4-wide vectors and has every work-item
 * fetch whole 4-element pieces of each tile. */
static bool tile_ok(unsigned mwg, unsigned nwg, unsigned kwg, unsigned mdimc, unsigned ndimc)
{
    unsigned threads = mdimc * ndimc;
    return mwg % (4 * mdimc) == 0 && nwg % (4 * ndimc) == 0 && kwg % 4 == 0 &&
           (mwg * kwg) % (4 * threads) == 0 && (nwg * kwg) % (4 * threads) == 0;
}

static gpumat_status apply_overrides(gpumat__profile *p, const char *spec)
{
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
            (*end && *end != ',') || v == 0 || v > 4096)
            return gpumat__fail(NULL, GPUMAT_ERR_INVALID_ARGUMENT,
                                "GPUMAT_KERNEL_PARAMS=\"%s\": bad parameter at \"%s\"", spec, s);
        unsigned value = (unsigned)v;
        memcpy((char *)p + parameters[i].offset, &value, sizeof value);
        s = *end ? end + 1 : end;
    }
    const gpumat__gemm_params *g = &p->gemm;
    if (!tile_ok(g->mwg, g->nwg, g->kwg, g->mdimc, g->ndimc) ||
        !tile_ok(g->smwg, g->snwg, g->skwg, g->smdimc, g->sndimc) ||
        !tile_ok(g->mwg64, g->nwg64, g->kwg64, g->mdimc64, g->ndimc64) ||
        !tile_ok(g->smwg, g->snwg, g->kwg64, g->smdimc, g->sndimc) || g->lbuf > 2 ||
        g->lbuf64 > 2 || p->transpose_tile % 4)
        return gpumat__fail(NULL, GPUMAT_ERR_INVALID_ARGUMENT,
                            "GPUMAT_KERNEL_PARAMS=\"%s\": MWG must be a multiple of 4*MDIMC, NWG "
                            "of 4*NDIMC, KWG of 4, MWG*KWG and NWG*KWG of 4*MDIMC*NDIMC (the "
                            "same for SMWG, SNWG, SMDIMC, SNDIMC with SKWG, and with KWG64 "
                            "for MWG64, NWG64, MDIMC64, NDIMC64 and the small tile), LBUF and "
                            "LBUF64 1 or 2, and TS a multiple of 4", spec);
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
