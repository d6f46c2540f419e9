/*
 * test_gemm.c - gpumat_gemm (c = alpha op(a) op(b) + beta c) against a
 * double-precision CPU reference: all four transpose combinations, several
 * alpha/beta cases (beta == 0 over a NaN-poisoned c must not read it), F32
 * and F64, degenerate, prime, tile-edge and exact-multiple shapes, both
 * GEMM backends, and every shipped kernel profile of the native backend
 * (forced with GPUMAT_PROFILE), plus both tile shapes of the native kernel
 * (forced with GPUMAT_KERNEL_PARAMS=SMALLPCT=...), both ways of staging
 * the big tiles (ASYNC / ASYNC64 on and off), the big tiles with and
 * without stream-K (SKFILL: the last wave's tiles split along k), the cpu
 * profile's cl/gemm_cpu.cl kernels with and without packed operands
 * (CPACK, in passes over k: CKC) and its tiled kernels instead (CVW=0),
 * and the GPU profiles' transposed operand copies (PACKA, PACKB).
 * Also: shape, op, aliasing and operand errors, gpumat_multiply ==
 * gemm(N, N, 1, a, b, 0, c), and invalid GPUMAT_PROFILE /
 * GPUMAT_KERNEL_PARAMS values.  GPUMAT_TEST_SHARD picks a share of the
 * groups (tools/run-tests runs two shards side by side: on PoCL nearly all
 * the time is its single-threaded kernel compiler).
 *
 * Error bound: op(A)op(B) is computed with |fl - exact| <= gamma_k |A||B|
 * (test_util.h, tu_gemm_tolerance); scaling by alpha, beta and the final add
 * are at most two more roundings per element, so an element passes iff
 *     |out - ref| <= tu_gemm_tolerance(dtype, k + 2) * (|alpha||A||B| + |beta c|).
 * With alpha == 0 and beta == 0 the scale is 0: the result must be exactly 0.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpumat.h"
#include "test_util.h"

#define MSG_SIZE 1024

/* ---- groups: one context per backend / profile / parameter override ------- */

typedef struct gemm_group {
    const char *label;
    gpumat_gemm_backend backend;
    const char *profile; /* GPUMAT_PROFILE, or NULL: leave the environment alone */
    const char *params;  /* GPUMAT_KERNEL_PARAMS, or NULL */
    int full;            /* 1: the full shape set; 0: the representative set */
    unsigned shard;      /* tu_shard_selected(): groups that reuse one build share one */
    gpumat_context *ctx;
    gpumat_status create_status;
    char create_message[512];
} gemm_group;

static gemm_group g_groups[] = {
    {"native", GPUMAT_GEMM_NATIVE, NULL, NULL, 1, 1, NULL, GPUMAT_OK, ""},
    {"clblast", GPUMAT_GEMM_CLBLAST, NULL, NULL, 1, 1, NULL, GPUMAT_OK, ""},
    {"native/nvidia-gpu", GPUMAT_GEMM_NATIVE, "nvidia-gpu", NULL, 0, 0, NULL, GPUMAT_OK, ""},
    {"native/amd-gpu", GPUMAT_GEMM_NATIVE, "amd-gpu", NULL, 0, 1, NULL, GPUMAT_OK, ""},
    {"native/intel-gpu", GPUMAT_GEMM_NATIVE, "intel-gpu", NULL, 0, 1, NULL, GPUMAT_OK, ""},
    {"native/generic-gpu", GPUMAT_GEMM_NATIVE, "generic-gpu", NULL, 0, 1, NULL, GPUMAT_OK, ""},
    {"native/cpu", GPUMAT_GEMM_NATIVE, "cpu", NULL, 0, 1, NULL, GPUMAT_OK, ""},
    /* 16-float vectors; correct on any CPU (narrower units split them). */
    {"native/cpu-avx512", GPUMAT_GEMM_NATIVE, "cpu-avx512", NULL, 0, 1, NULL, GPUMAT_OK, ""},
    /* The host picks the small-tile kernels when big tiles would leave
     * compute units idle (SMALLPCT), and the tiny ones when even small
     * tiles would (TINYPCT); force each kind on every shape.  Both are
     * host-side only: these groups reuse the nvidia-gpu build. */
    {"native/nvidia-gpu big tiles only (SMALLPCT=1,SKFILL=0,SKFILL64=0)", GPUMAT_GEMM_NATIVE,
     "nvidia-gpu", "SMALLPCT=1,SKFILL=0,SKFILL64=0", 0, 0, NULL, GPUMAT_OK, ""},
    /* Stream-K (host side too: SKFILL, SKFILL64) wherever the big tiles
     * leave the last wave partly idle: PoCL's 2 units give waves of 4
     * float groups (SKG 2) and 2 double ones (SKG64 1, its split part
     * register-staged beside the direct-copy plain kernel), so one-tile
     * shapes split k over up to 4 groups and larger ones run whole rows in
     * the plain kernel first. */
    {"native/nvidia-gpu stream-K (SKFILL=100,SKFILL64=100,SMALLPCT=1)", GPUMAT_GEMM_NATIVE,
     "nvidia-gpu", "SKFILL=100,SKFILL64=100,SMALLPCT=1", 0, 0, NULL, GPUMAT_OK, ""},
    /* SKMIN=0, SKGM=0 and SKGM64=0: products the host hands to the small
     * and tiny tiles stay there instead of going to the big tile with
     * stream-K or to the split tile. */
    {"native/nvidia-gpu small tiles (SMALLPCT=4096,TINYPCT=0,SKMIN=0,SKGM=0,SKGM64=0)",
     GPUMAT_GEMM_NATIVE, "nvidia-gpu", "SMALLPCT=4096,TINYPCT=0,SKMIN=0,SKGM=0,SKGM64=0", 0, 0,
     NULL, GPUMAT_OK, ""},
    {"native/nvidia-gpu tiny tiles (SMALLPCT=4096,TINYPCT=4096,SKMIN=0,SKGM=0,SKGM64=0)",
     GPUMAT_GEMM_NATIVE, "nvidia-gpu", "SMALLPCT=4096,TINYPCT=4096,SKMIN=0,SKGM=0,SKGM64=0", 0,
     0, NULL, GPUMAT_OK, ""},
    /* The small and tiny double tiles at other depths (SKWG64; nvidia-gpu
     * ships 16 against the big tile's KWG64 8): K steps of 8 and of 32
     * (one local buffer, so that it fits 48 KiB), partial last steps on
     * every shape whose k is not a multiple. */
    {"native/nvidia-gpu small tiles, double 8 deep (SKWG64=8,SMALLPCT=4096,TINYPCT=0,SKMIN=0,"
     "SKGM=0,SKGM64=0)",
     GPUMAT_GEMM_NATIVE, "nvidia-gpu",
     "SKWG64=8,SMALLPCT=4096,TINYPCT=0,SKMIN=0,SKGM=0,SKGM64=0", 0, 0, NULL, GPUMAT_OK, ""},
    {"native/nvidia-gpu tiny tiles, double 32 deep (SKWG64=32,LBUF64=1,SMALLPCT=4096,"
     "TINYPCT=4096,SKMIN=0,SKGM=0,SKGM64=0)",
     GPUMAT_GEMM_NATIVE, "nvidia-gpu",
     "SKWG64=32,LBUF64=1,SMALLPCT=4096,TINYPCT=4096,SKMIN=0,SKGM=0,SKGM64=0", 0, 0, NULL,
     GPUMAT_OK, ""},
    /* And the other way: with SKMIN=1 the products sent to the small
     * tiles run on the big tile split along k wherever op_gemm.c's edge
     * and fill conditions allow (one K step per stream-K group is enough),
     * from the first row of tiles or after those that fill whole waves;
     * SKSMALL=0, so that the small tiles' cost (which on two compute units
     * keeps the smallest products on them) takes none back; SKGM=0 and
     * SKGM64=0, so that the split tile (next group) takes none either. */
    {"native/nvidia-gpu stream-K for small products (SMALLPCT=4096,SKMIN=1,SKSMALL=0,SKGM=0,"
     "SKGM64=0)",
     GPUMAT_GEMM_NATIVE, "nvidia-gpu", "SMALLPCT=4096,SKMIN=1,SKSMALL=0,SKGM=0,SKGM64=0", 0, 0,
     NULL, GPUMAT_OK, ""},
    /* The split tile (nvidia-gpu: 64 x 64 of 8 x 8 work-items, 4 groups
     * per compute unit, so waves of 8 on PoCL's 2): with every product
     * handed to the small tiles and none to the big tile's split
     * (SKMIN=0), one K step per group enough (SKMINM=1) and no limit on
     * the small tiles' groups (MIDPCT, MIDPCT64), each product whose split
     * tiles are fewer than 8 and fill them to 75% runs all of it split
     * along k on them, float and double (among profile_shapes: 128^3 and
     * the last two). */
    {"native/nvidia-gpu split tile (SMALLPCT=4096,SKMIN=0,SKMINM=1,MIDPCT=4096,MIDPCT64=4096)",
     GPUMAT_GEMM_NATIVE, "nvidia-gpu",
     "SMALLPCT=4096,SKMIN=0,SKMINM=1,MIDPCT=4096,MIDPCT64=4096", 0, 0, NULL, GPUMAT_OK, ""},
    /* The same through split-K (SKSPLIT=1: wherever a tile would take
     * more than one run), over waves of 32 groups (SKGM, SKGM64 16 on
     * PoCL's 2 units), so that 128^3, 256x128x64 and the last two shapes
     * run as 4 to 10 slices a tile summed by gemm_ksum, and 257x255x129
     * and 300x383x40 (20 and 30 tiles: one slice each) still stream-K. */
    {"native/nvidia-gpu split-K on the split tile (SMALLPCT=4096,SKMIN=0,SKMINM=1,MIDPCT=4096,"
     "MIDPCT64=4096,SKGM=16,SKGM64=16,SKSPLIT=1)",
     GPUMAT_GEMM_NATIVE, "nvidia-gpu",
     "SMALLPCT=4096,SKMIN=0,SKMINM=1,MIDPCT=4096,MIDPCT64=4096,SKGM=16,SKGM64=16,SKSPLIT=1", 0,
     0, NULL, GPUMAT_OK, ""},
    /* The same against the tiny tiles, where half the fill will do
     * (127x129x255: 6 split tiles, 67% full). */
    {"native/nvidia-gpu split tile for tiny products (SMALLPCT=4096,TINYPCT=4096,SKMIN=0,"
     "SKMINM=1)",
     GPUMAT_GEMM_NATIVE, "nvidia-gpu", "SMALLPCT=4096,TINYPCT=4096,SKMIN=0,SKMINM=1", 0, 0, NULL,
     GPUMAT_OK, ""},
    /* Transposed copies of the operands (host side: PACKA, PACKB, with
     * every product on the big tile, most split): NN and NT copy A^T,
     * NT and TT copy B, so that float products all run as TN and double
     * NT as NN; the copies' buffers grow and are reused from shape to
     * shape. */
    {"native/nvidia-gpu operand copies (PACKA=1,PACKB=1,SMALLPCT=1,SKFILL=100,SKFILL64=100)",
     GPUMAT_GEMM_NATIVE, "nvidia-gpu", "PACKA=1,PACKB=1,SMALLPCT=1,SKFILL=100,SKFILL64=100", 0,
     0, NULL, GPUMAT_OK, ""},
    /* The cpu profile runs cl/gemm_cpu.cl: its direct and its packed
     * kernels forced on every shape (packed in passes of 64 values of k,
     * so that K up to 257 takes up to 5 passes, the last partial), and
     * cl/gemm.cl's tiles (CVW=0, big and, on the shapes that give 2
     * compute units too few big tiles, small). */
    {"native/cpu packed operands (CPACK=1,CKC=64)", GPUMAT_GEMM_NATIVE, "cpu", "CPACK=1,CKC=64",
     0, 1, NULL, GPUMAT_OK, ""},
    {"native/cpu direct operands (CPACK=4096)", GPUMAT_GEMM_NATIVE, "cpu", "CPACK=4096", 0, 1,
     NULL, GPUMAT_OK, ""},
    {"native/cpu-avx512 packed operands (CPACK=1,CKC=64)", GPUMAT_GEMM_NATIVE, "cpu-avx512",
     "CPACK=1,CKC=64", 0, 1, NULL, GPUMAT_OK, ""},
    {"native/cpu-avx512 direct operands (CPACK=4096)", GPUMAT_GEMM_NATIVE, "cpu-avx512",
     "CPACK=4096", 0, 1, NULL, GPUMAT_OK, ""},
    {"native/cpu tiled kernels (CVW=0)", GPUMAT_GEMM_NATIVE, "cpu", "CVW=0", 0, 1, NULL,
     GPUMAT_OK, ""},
    /* The big tiles' direct-copy pipeline (ASYNC, ASYNC64: portable plain
     * copies here; cp.async only under NVIDIA's compiler) at every stage
     * count, for float too (nvidia-gpu ships it for double only), and the
     * register-staged path it replaces for nvidia-gpu's doubles.  Depths
     * of 8 keep three and four buffers within an H100's 48 KiB, so that
     * the float cp.async path runs there too. */
    {"native/nvidia-gpu direct-copy pipeline (ASYNC=3,KWG=8,SMALLPCT=1)", GPUMAT_GEMM_NATIVE,
     "nvidia-gpu", "ASYNC=3,KWG=8,SMALLPCT=1", 0, 0, NULL, GPUMAT_OK, ""},
    {"native/nvidia-gpu register-staged double (ASYNC64=0,KWG64=16,LBUF64=1,SMALLPCT=1)",
     GPUMAT_GEMM_NATIVE, "nvidia-gpu", "ASYNC64=0,KWG64=16,LBUF64=1,SMALLPCT=1", 0, 0, NULL,
     GPUMAT_OK, ""},
    {"native/cpu direct-copy pipeline (CVW=0,ASYNC=4,ASYNC64=3,KWG64=8,SMALLPCT=1)",
     GPUMAT_GEMM_NATIVE, "cpu", "CVW=0,ASYNC=4,ASYNC64=3,KWG64=8,SMALLPCT=1", 0, 1, NULL,
     GPUMAT_OK, ""},
};
#define N_GROUPS (sizeof g_groups / sizeof g_groups[0])

static gemm_group *g_current; /* the group main() is about to run */
static uint64_t g_stream = 1;

static void rng_for_test(tu_rng *rng) { tu_rng_init(rng, g_stream++); }

static int group_setup(void **state)
{
    gemm_group *g = g_current;
    tu_saved_env saved_profile, saved_params, saved_tuning;
    tu_env_save(&saved_profile, "GPUMAT_PROFILE");
    tu_env_save(&saved_params, "GPUMAT_KERNEL_PARAMS");
    tu_env_save(&saved_tuning, "GPUMAT_TUNING");
    /* A group that names a profile tests that profile as shipped, not as
     * a tuning file left on this machine by gpumat-tune would change it. */
    if (g->profile) {
        tu_env_set("GPUMAT_PROFILE", g->profile);
        tu_env_set("GPUMAT_TUNING", "off");
    }
    tu_env_set("GPUMAT_KERNEL_PARAMS", g->params);

    gpumat_options opt;
    gpumat_options_init(&opt);
    opt.gemm_backend = g->backend;
    g->ctx = (gpumat_context *)(uintptr_t)1; /* must be overwritten */
    g->create_status = gpumat_context_create(&g->ctx, &opt);
    tu_env_restore(&saved_profile);
    tu_env_restore(&saved_params);
    tu_env_restore(&saved_tuning);
    if (g->create_status != GPUMAT_OK) {
        snprintf(g->create_message, sizeof g->create_message, "%s", gpumat_last_error(NULL));
        if (g->ctx != NULL) {
            print_error("context_create failed (%d) but left *ctx non-NULL\n",
                        (int)g->create_status);
            return -1;
        }
        /* Parameters forced for coverage may exceed a small device's
         * limits (PoCL's are generous; an H100 has 48 KiB of local memory
         * per group): such a group is skipped there, see group_ctx(). */
        if (g->backend == GPUMAT_GEMM_NATIVE && !strstr(g->create_message, "does not fit")) {
            print_error("%s: context_create failed: %d (%s): %s\n", g->label,
                        (int)g->create_status, gpumat_strerror(g->create_status),
                        g->create_message);
            return -1;
        }
    } else if (g->profile && strcmp(gpumat_context_profile(g->ctx), g->profile) != 0) {
        print_error("GPUMAT_PROFILE=%s: the context reports profile %s\n", g->profile,
                    gpumat_context_profile(g->ctx));
        gpumat_context_destroy(g->ctx);
        g->ctx = NULL;
        return -1;
    }
    if (g->ctx)
        print_message("[ CONTEXT  ] %s: profile %s, build options \"%s\"\n", g->label,
                      gpumat_context_profile(g->ctx), gpumat_context_build_options(g->ctx));
    *state = g;
    return 0;
}

static int group_teardown(void **state)
{
    gemm_group *g = *state;
    if (g && g->ctx) {
        gpumat_status s = gpumat_finish(g->ctx);
        gpumat_context_destroy(g->ctx);
        g->ctx = NULL;
        if (s != GPUMAT_OK) {
            print_error("gpumat_finish at teardown: %d\n", (int)s);
            return -1;
        }
    }
    return 0;
}

/* The group's context, or skip() when CLBlast is not available or the
 * group's forced parameters do not fit this device. */
static gpumat_context *group_ctx(void **state)
{
    gemm_group *g = *state;
    if (!g->ctx) {
        if (g->create_status == GPUMAT_ERR_UNSUPPORTED ||
            (g->create_status == GPUMAT_ERR_INVALID_ARGUMENT &&
             strstr(g->create_message, "does not fit"))) {
            print_message("[  SKIPPED ] %s unavailable here: %s\n", g->label,
                          g->create_message);
            skip();
        }
        fail_msg("context_create(%s) failed: %d (%s): %s", g->label, (int)g->create_status,
                 gpumat_strerror(g->create_status), g->create_message);
    }
    return g->ctx;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

static const char *op_name(gpumat_op op) { return op == GPUMAT_TRANS ? "T" : "N"; }

/* ---- one product ------------------------------------------------------------ */

typedef struct ab_case {
    double alpha, beta; /* beta == 0: c is poisoned with NaN before the call */
    const char *name;
} ab_case;

static const ab_case ab_cases[] = {
    {1.0, 0.0, "alpha=1 beta=0 (c NaN)"},
    {-0.75, 0.0, "alpha=-0.75 beta=0 (c NaN)"},
    {1.25, 0.5, "alpha=1.25 beta=0.5"},
    {0.0, 0.5, "alpha=0 beta=0.5"},
    {0.0, 0.0, "alpha=0 beta=0 (c NaN)"},
};
#define N_AB (sizeof ab_cases / sizeof ab_cases[0])
#define AB_FULL 2 /* the case that also checks the inputs are left unchanged */

/* ref = alpha op(a) op(b) + beta c0 and its error scale, in double. */
static void reference(gpumat_op op_a, gpumat_op op_b, size_t m, size_t n, size_t k,
                      const double *ha, const double *hb, double alpha, double beta,
                      const double *hc0, double *ref, double *scale)
{
    double *at = NULL, *bt = NULL;
    const double *ra = ha, *rb = hb;
    if (op_a == GPUMAT_TRANS) { /* a is stored k x m */
        at = xmalloc(m * k * sizeof *at);
        tu_ref_transpose(k, m, ha, at);
        ra = at;
    }
    if (op_b == GPUMAT_TRANS) { /* b is stored n x k */
        bt = xmalloc(k * n * sizeof *bt);
        tu_ref_transpose(n, k, hb, bt);
        rb = bt;
    }
    tu_ref_gemm(m, k, n, ra, rb, ref, scale);
    for (size_t i = 0; i < m * n; ++i) {
        double cterm = beta != 0.0 ? beta * hc0[i] : 0.0;
        ref[i] = alpha * ref[i] + cterm;
        scale[i] = fabs(alpha) * scale[i] + fabs(cterm);
    }
    free(at);
    free(bt);
}

static int same_exactly(const gpumat_matrix *m, const double *expected)
{
    size_t r = gpumat_matrix_rows(m), c = gpumat_matrix_cols(m);
    double *h = xmalloc(r * c * sizeof *h);
    char msg[MSG_SIZE];
    int ok = tu_download(m, h) == GPUMAT_OK &&
             tu_compare("input", r, c, h, expected, NULL, 0.0, msg, sizeof msg);
    free(h);
    return ok;
}

/* c (m x n) = alpha op_a(a) op_b(b) + beta c with op_a(a) m x k. */
static void run_gemm(gpumat_context *ctx, const char *label, tu_rng *rng, gpumat_dtype dt,
                     gpumat_op op_a, gpumat_op op_b, const ab_case *ab, size_t m, size_t n,
                     size_t k, int check_inputs)
{
    size_t ar = op_a == GPUMAT_TRANS ? k : m, ac = op_a == GPUMAT_TRANS ? m : k;
    size_t br = op_b == GPUMAT_TRANS ? n : k, bc = op_b == GPUMAT_TRANS ? k : n;
    gpumat_matrix *a, *b, *c;
    double *ha, *hb, *hc0 = NULL;
    TU_CHECK_OK(tu_random_matrix(ctx, rng, ar, ac, dt, &a, &ha));
    TU_CHECK_OK(tu_random_matrix(ctx, rng, br, bc, dt, &b, &hb));
    if (ab->beta != 0.0) {
        TU_CHECK_OK(tu_random_matrix(ctx, rng, m, n, dt, &c, &hc0));
    } else {
        TU_CHECK_OK(gpumat_matrix_create(ctx, m, n, dt, &c));
        TU_CHECK_OK(tu_poison(c));
    }
    char what[256], msg[MSG_SIZE];
    snprintf(what, sizeof what, "%s gemm(%s,%s) m=%zu n=%zu k=%zu %s %s", label,
             op_name(op_a), op_name(op_b), m, n, k, tu_dtype_name(dt), ab->name);

    gpumat_status s = gpumat_gemm(op_a, op_b, ab->alpha, a, b, ab->beta, c);
    if (s != GPUMAT_OK)
        fail_msg("%s -> %d (%s): %s", what, (int)s, gpumat_strerror(s),
                 gpumat_last_error(ctx));

    double *ref = xmalloc(m * n * sizeof *ref), *scale = xmalloc(m * n * sizeof *scale);
    double *out = xmalloc(m * n * sizeof *out);
    reference(op_a, op_b, m, n, k, ha, hb, ab->alpha, ab->beta, hc0, ref, scale);
    TU_CHECK_OK(tu_download(c, out));
    int ok = tu_compare(what, m, n, out, ref, scale, tu_gemm_tolerance(dt, k + 2), msg,
                        sizeof msg);
    if (ok && check_inputs) {
        if (!same_exactly(a, ha)) {
            ok = 0;
            snprintf(msg, sizeof msg, "%s: input a was modified", what);
        } else if (!same_exactly(b, hb)) {
            ok = 0;
            snprintf(msg, sizeof msg, "%s: input b was modified", what);
        }
    }
    gpumat_matrix_destroy(a);
    gpumat_matrix_destroy(b);
    gpumat_matrix_destroy(c);
    free(ha);
    free(hb);
    free(hc0);
    free(ref);
    free(scale);
    free(out);
    if (!ok)
        fail_msg("%s", msg);
}

static int f64_or_check_unsupported(gpumat_context *ctx)
{
    if (tu_has_fp64(ctx))
        return 1;
    gpumat_matrix *m = (gpumat_matrix *)(uintptr_t)1;
    assert_int_equal(gpumat_matrix_create(ctx, 4, 4, GPUMAT_F64, &m), GPUMAT_ERR_UNSUPPORTED);
    assert_null(m);
    print_message("device has no fp64: checked that F64 is GPUMAT_ERR_UNSUPPORTED\n");
    return 0;
}

/* ---- shape sets (M, N, K: c is M x N, the inner dimension is K) ------------- */

static const size_t full_shapes[][3] = {
    {1, 1, 1},     {1, 129, 67},  {129, 1, 67},   {67, 129, 1},   {1, 1, 300},
    {300, 1, 1},   {1, 300, 1},   {7, 13, 17},    {61, 67, 71},   {129, 65, 257},
    {64, 64, 64},  {128, 128, 128}, {64, 128, 256}, {256, 64, 128}, {127, 129, 255},
};

/* Around the big tiles of every profile (nvidia-gpu: 128x128, others 64x64
 * or 32x32) and their depth; for cl/gemm_cpu.cl (blocks of 4 rows by 24
 * floats or 12 doubles, NT's 3 x 4 dot products over 8 or 4 values of k):
 * fewer rows, columns and k than one block, exact multiples, and one past. */
static const size_t profile_shapes[][3] = {
    {1, 1, 1},       {1, 129, 67},     {127, 1, 255},   {129, 257, 1},
    {61, 67, 71},    {128, 128, 128},  {127, 129, 255}, {257, 255, 129},
    {256, 128, 64},  {129, 127, 9},    {33, 31, 257},   {3, 17, 7},
    {12, 48, 16},    {5, 25, 9},
    /* 3 x 3 big nvidia-gpu float tiles (5 x 3 double ones, 64 x 128): in
     * the stream-K group (waves of 4 on PoCL's 2 compute units, for both
     * types) the whole waves end inside a tile row, so the plain kernel
     * takes two rows (double: four) and stream-K splits the last. */
    {300, 383, 40},
    /* 2 x 2 and 3 x 1 tiles of nvidia-gpu's split tile (64 x 64), the
     * last ones partly filled, and k no multiple of a K step: the split
     * tile group runs these along k over waves of 8 groups. */
    {125, 120, 255}, {190, 60, 333},
};

/* Every op combination and every alpha/beta case on every shape. */
static void full_suite(void **state, gpumat_dtype dt)
{
    gemm_group *g = *state;
    gpumat_context *ctx = group_ctx(state);
    if (dt == GPUMAT_F64 && !f64_or_check_unsupported(ctx))
        return;
    tu_rng rng;
    rng_for_test(&rng);
    for (size_t s = 0; s < sizeof full_shapes / sizeof full_shapes[0]; ++s)
        for (int op = 0; op < 4; ++op)
            for (size_t ab = 0; ab < N_AB; ++ab)
                run_gemm(ctx, g->label, &rng, dt, (gpumat_op)(op >> 1), (gpumat_op)(op & 1),
                         &ab_cases[ab], full_shapes[s][0], full_shapes[s][1],
                         full_shapes[s][2], ab == AB_FULL);
}

static void test_full_f32(void **state) { full_suite(state, GPUMAT_F32); }
static void test_full_f64(void **state) { full_suite(state, GPUMAT_F64); }

/* 1023 x 777 x 65 (no dimension a multiple of any tile) for a few cases,
 * and 1000 x 1000 x 1000 in every op combination. */
static void test_large(void **state)
{
    gemm_group *g = *state;
    gpumat_context *ctx = group_ctx(state);
    tu_rng rng;
    rng_for_test(&rng);
    /* alpha != 0 in every case (with alpha == 0 the products are not read). */
    static const size_t large_ab[4] = {AB_FULL, 0, 1, AB_FULL};
    for (int op = 0; op < 4; ++op)
        run_gemm(ctx, g->label, &rng, GPUMAT_F32, (gpumat_op)(op >> 1), (gpumat_op)(op & 1),
                 &ab_cases[large_ab[op]], 1000, 1000, 1000, op == 0);
    run_gemm(ctx, g->label, &rng, GPUMAT_F32, GPUMAT_NO_TRANS, GPUMAT_NO_TRANS,
             &ab_cases[AB_FULL], 1023, 777, 65, 1);
    run_gemm(ctx, g->label, &rng, GPUMAT_F32, GPUMAT_TRANS, GPUMAT_TRANS, &ab_cases[1], 1023,
             777, 65, 0);
    run_gemm(ctx, g->label, &rng, GPUMAT_F32, GPUMAT_TRANS, GPUMAT_NO_TRANS, &ab_cases[0], 777,
             1023, 65, 0);
    if (tu_has_fp64(ctx))
        run_gemm(ctx, g->label, &rng, GPUMAT_F64, GPUMAT_NO_TRANS, GPUMAT_TRANS,
                 &ab_cases[AB_FULL], 1023, 777, 65, 0);
    /* Wide and deep: on CPU devices a pass over k of 256 (CKC) would pack
     * a 16 MiB float (32 MiB double) panel of B, over a quarter of any
     * cache under 64 MiB, so op_gemm.c runs shallower passes, and 600 is
     * no multiple of any of them. */
    run_gemm(ctx, g->label, &rng, GPUMAT_F32, GPUMAT_NO_TRANS, GPUMAT_NO_TRANS,
             &ab_cases[AB_FULL], 8, 16384, 600, 0);
    if (tu_has_fp64(ctx))
        run_gemm(ctx, g->label, &rng, GPUMAT_F64, GPUMAT_TRANS, GPUMAT_NO_TRANS,
                 &ab_cases[AB_FULL], 8, 16384, 600, 0);
    /* GPUs: several waves of big tiles and a partly filled last one, which
     * nvidia-gpu splits along k (on an H100, 2048 x 2688 is 336 float
     * tiles over waves of 264, with the extra-column layout for NN, TN
     * and NT; 1536^2 is 288 double tiles over waves of 264).  The shapes
     * above are sized for PoCL's two compute units, on which a GPU runs
     * the small tiles. */
    gpumat_device_info info;
    TU_CHECK_OK(gpumat_context_device(ctx, &info));
    if (info.compute_units >= 16) {
        for (int op = 0; op < 4; ++op)
            run_gemm(ctx, g->label, &rng, GPUMAT_F32, (gpumat_op)(op >> 1),
                     (gpumat_op)(op & 1), &ab_cases[op == 3 ? 0 : AB_FULL], 2048, 2688, 256, 0);
        if (tu_has_fp64(ctx))
            run_gemm(ctx, g->label, &rng, GPUMAT_F64, GPUMAT_NO_TRANS, GPUMAT_TRANS,
                     &ab_cases[AB_FULL], 1536, 1536, 512, 0);
    }
}

/* Every op combination on every representative shape; F32 gets every
 * alpha/beta case, F64 one case per (shape, op), rotating through them. */
static void profile_suite(void **state, gpumat_dtype dt)
{
    gemm_group *g = *state;
    gpumat_context *ctx = group_ctx(state);
    if (dt == GPUMAT_F64 && !f64_or_check_unsupported(ctx))
        return;
    tu_rng rng;
    rng_for_test(&rng);
    size_t rotate = 0;
    for (size_t s = 0; s < sizeof profile_shapes / sizeof profile_shapes[0]; ++s)
        for (int op = 0; op < 4; ++op, ++rotate)
            for (size_t ab = 0; ab < N_AB; ++ab) {
                if (dt == GPUMAT_F64 && ab != rotate % N_AB)
                    continue;
                run_gemm(ctx, g->label, &rng, dt, (gpumat_op)(op >> 1), (gpumat_op)(op & 1),
                         &ab_cases[ab], profile_shapes[s][0], profile_shapes[s][1],
                         profile_shapes[s][2], ab == AB_FULL);
            }
    /* 1000 x 1000 x 1000: past every profile's thresholds for packing,
     * passes over k and the big tiles, with beta != 0. */
    if (dt == GPUMAT_F32)
        run_gemm(ctx, g->label, &rng, dt, GPUMAT_NO_TRANS, GPUMAT_TRANS, &ab_cases[AB_FULL], 1000,
                 1000, 1000, 0);
}

static void test_profile_f32(void **state) { profile_suite(state, GPUMAT_F32); }
static void test_profile_f64(void **state) { profile_suite(state, GPUMAT_F64); }

/* The same c reused for products of different shapes' inputs, ops and
 * alpha/beta: nothing may be cached from the previous call. */
static void test_reuse_output(void **state)
{
    gemm_group *g = *state;
    gpumat_context *ctx = group_ctx(state);
    tu_rng rng;
    rng_for_test(&rng);
    enum { M = 33, N = 45 };
    static const size_t ks[] = {1, 64, 7, 129, 64};
    gpumat_matrix *c;
    TU_CHECK_OK(gpumat_matrix_create(ctx, M, N, GPUMAT_F32, &c));
    static double out[M * N], ref[M * N], scale[M * N], hc0[M * N];
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; ++i) {
        size_t k = ks[i];
        gpumat_op op_a = (gpumat_op)(i & 1), op_b = (gpumat_op)((i >> 1) & 1);
        const ab_case *ab = &ab_cases[i % N_AB];
        gpumat_matrix *a, *b;
        double *ha, *hb;
        TU_CHECK_OK(tu_random_matrix(ctx, &rng, op_a ? k : M, op_a ? M : k, GPUMAT_F32, &a, &ha));
        TU_CHECK_OK(tu_random_matrix(ctx, &rng, op_b ? N : k, op_b ? k : N, GPUMAT_F32, &b, &hb));
        /* c keeps the previous result when beta != 0: that is its input. */
        if (ab->beta == 0.0)
            TU_CHECK_OK(tu_poison(c));
        TU_CHECK_OK(tu_download(c, hc0));
        TU_CHECK_OK(gpumat_gemm(op_a, op_b, ab->alpha, a, b, ab->beta, c));
        TU_CHECK_OK(tu_download(c, out));
        reference(op_a, op_b, M, N, k, ha, hb, ab->alpha, ab->beta, hc0, ref, scale);
        char what[160], msg[MSG_SIZE];
        snprintf(what, sizeof what, "%s reused c, gemm(%s,%s) m=%d n=%d k=%zu %s", g->label,
                 op_name(op_a), op_name(op_b), M, N, k, ab->name);
        int ok = tu_compare(what, M, N, out, ref, scale, tu_gemm_tolerance(GPUMAT_F32, k + 2),
                            msg, sizeof msg);
        gpumat_matrix_destroy(a);
        gpumat_matrix_destroy(b);
        free(ha);
        free(hb);
        if (!ok) {
            gpumat_matrix_destroy(c);
            fail_msg("%s", msg);
        }
    }
    gpumat_matrix_destroy(c);
}

/* gpumat_multiply(c, a, b) is gemm(N, N, 1, a, b, 0, c): the same bits. */
static void test_multiply_is_gemm(void **state)
{
    gemm_group *g = *state;
    gpumat_context *ctx = group_ctx(state);
    tu_rng rng;
    rng_for_test(&rng);
    static const size_t shapes[][3] = {{1, 1, 1}, {61, 67, 71}, {128, 128, 128}, {129, 65, 257}};
    for (int d = 0; d < 2; ++d) {
        gpumat_dtype dt = d ? GPUMAT_F64 : GPUMAT_F32;
        if (dt == GPUMAT_F64 && !tu_has_fp64(ctx))
            continue;
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s) {
            size_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
            gpumat_matrix *a, *b, *c1, *c2;
            double *ha, *hb;
            TU_CHECK_OK(tu_random_matrix(ctx, &rng, m, k, dt, &a, &ha));
            TU_CHECK_OK(tu_random_matrix(ctx, &rng, k, n, dt, &b, &hb));
            TU_CHECK_OK(gpumat_matrix_create(ctx, m, n, dt, &c1));
            TU_CHECK_OK(gpumat_matrix_create(ctx, m, n, dt, &c2));
            TU_CHECK_OK(tu_poison(c1));
            TU_CHECK_OK(tu_poison(c2));
            TU_CHECK_OK(gpumat_multiply(c1, a, b));
            TU_CHECK_OK(gpumat_gemm(GPUMAT_NO_TRANS, GPUMAT_NO_TRANS, 1.0, a, b, 0.0, c2));
            double *o1 = xmalloc(m * n * sizeof *o1), *o2 = xmalloc(m * n * sizeof *o2);
            double *ref = xmalloc(m * n * sizeof *ref), *scale = xmalloc(m * n * sizeof *scale);
            TU_CHECK_OK(tu_download(c1, o1));
            TU_CHECK_OK(tu_download(c2, o2));
            tu_ref_gemm(m, k, n, ha, hb, ref, scale);
            char what[160], msg[MSG_SIZE];
            snprintf(what, sizeof what, "%s multiply %zux%zu * %zux%zu %s", g->label, m, k, k,
                     n, tu_dtype_name(dt));
            int ok = tu_compare(what, m, n, o1, ref, scale, tu_gemm_tolerance(dt, k), msg,
                                sizeof msg);
            if (ok) {
                snprintf(what, sizeof what,
                         "%s gemm(N,N,1,a,b,0,c) against multiply %zux%zu * %zux%zu %s",
                         g->label, m, k, k, n, tu_dtype_name(dt));
                ok = tu_compare(what, m, n, o2, o1, NULL, 0.0, msg, sizeof msg);
            }
            gpumat_matrix_destroy(a);
            gpumat_matrix_destroy(b);
            gpumat_matrix_destroy(c1);
            gpumat_matrix_destroy(c2);
            free(ha);
            free(hb);
            free(o1);
            free(o2);
            free(ref);
            free(scale);
            if (!ok)
                fail_msg("%s", msg);
        }
    }
}

/* ---- errors ----------------------------------------------------------------- */

/* Expects `status` and a message on ctx that contains every needle. */
static void expect_error(gpumat_context *ctx, const char *call, gpumat_status got,
                         gpumat_status want, const char *n1, const char *n2, const char *n3)
{
    char msg[MSG_SIZE];
    snprintf(msg, sizeof msg, "%s", gpumat_last_error(ctx));
    if (got != want)
        fail_msg("%s -> %d (%s), expected %d (%s); message: %s", call, (int)got,
                 gpumat_strerror(got), (int)want, gpumat_strerror(want), msg);
    const char *needles[] = {n1, n2, n3};
    for (int i = 0; i < 3; ++i)
        if (needles[i] && !tu_contains_ci(msg, needles[i]))
            fail_msg("%s: message \"%s\" does not mention \"%s\"", call, msg, needles[i]);
    /* The thread's own message is the same failure. */
    if (strcmp(gpumat_last_error(NULL), msg) != 0)
        fail_msg("%s: gpumat_last_error(NULL) \"%s\" differs from the context's \"%s\"", call,
                 gpumat_last_error(NULL), msg);
}

#define EXPECT_ERR(ctx, call, want, n1, n2, n3) expect_error(ctx, #call, (call), want, n1, n2, n3)

static void test_errors(void **state)
{
    gpumat_context *ctx = group_ctx(state);
    tu_rng rng;
    rng_for_test(&rng);
    gpumat_matrix *a34, *b56, *b46, *c36, *c35, *sq, *sq2, *csq;
    double *h34, *h56, *h46, *hsq, *hsq2, *hc36, *hcsq;
    TU_CHECK_OK(tu_random_matrix(ctx, &rng, 3, 4, GPUMAT_F32, &a34, &h34));
    TU_CHECK_OK(tu_random_matrix(ctx, &rng, 5, 6, GPUMAT_F32, &b56, &h56));
    TU_CHECK_OK(tu_random_matrix(ctx, &rng, 4, 6, GPUMAT_F32, &b46, &h46));
    TU_CHECK_OK(tu_random_matrix(ctx, &rng, 3, 6, GPUMAT_F32, &c36, &hc36));
    TU_CHECK_OK(gpumat_matrix_create(ctx, 3, 5, GPUMAT_F32, &c35));
    TU_CHECK_OK(tu_random_matrix(ctx, &rng, 4, 4, GPUMAT_F32, &sq, &hsq));
    TU_CHECK_OK(tu_random_matrix(ctx, &rng, 4, 4, GPUMAT_F32, &sq2, &hsq2));
    TU_CHECK_OK(tu_random_matrix(ctx, &rng, 4, 4, GPUMAT_F32, &csq, &hcsq));
    const gpumat_op N = GPUMAT_NO_TRANS, T = GPUMAT_TRANS;

    /* Inner dimensions: a 3x4 times b 5x6. */
    EXPECT_ERR(ctx, gpumat_gemm(N, N, 1.0, a34, b56, 0.0, c36), GPUMAT_ERR_SHAPE, "3x4", "5x6",
               NULL);
    /* op(a) = a^T is 4x3 against b 4x6: inner 3 vs 4. */
    EXPECT_ERR(ctx, gpumat_gemm(T, N, 1.0, a34, b46, 0.0, c36), GPUMAT_ERR_SHAPE, "transposed",
               "4x3", "4x6");
    /* a 3x4 times b^T (6x5): inner 4 vs 6. */
    EXPECT_ERR(ctx, gpumat_gemm(N, T, 1.0, a34, b56, 0.0, c36), GPUMAT_ERR_SHAPE, "transposed",
               "3x4", "6x5");
    /* Both transposed: a^T 4x3, b^T 6x4. */
    EXPECT_ERR(ctx, gpumat_gemm(T, T, 1.0, a34, b46, 0.0, c36), GPUMAT_ERR_SHAPE, "transposed",
               "4x3", "6x4");
    /* c of the wrong shape: the product is 3x6, c is 3x5. */
    EXPECT_ERR(ctx, gpumat_gemm(N, N, 1.0, a34, b46, 0.0, c35), GPUMAT_ERR_SHAPE, "3x6", "3x5",
               NULL);
    EXPECT_ERR(ctx, gpumat_multiply(c35, a34, b46), GPUMAT_ERR_SHAPE, "3x6", "3x5", NULL);
    EXPECT_ERR(ctx, gpumat_multiply(c36, a34, b56), GPUMAT_ERR_SHAPE, "3x4", "5x6", NULL);

    /* Bad op values. */
    EXPECT_ERR(ctx, gpumat_gemm((gpumat_op)2, N, 1.0, sq, sq2, 0.0, csq),
               GPUMAT_ERR_INVALID_ARGUMENT, "op_a", NULL, NULL);
    EXPECT_ERR(ctx, gpumat_gemm(N, (gpumat_op)-1, 1.0, sq, sq2, 0.0, csq),
               GPUMAT_ERR_INVALID_ARGUMENT, "op_b", NULL, NULL);
    EXPECT_ERR(ctx, gpumat_gemm((gpumat_op)7, (gpumat_op)7, 1.0, sq, sq2, 0.0, csq),
               GPUMAT_ERR_INVALID_ARGUMENT, NULL, NULL, NULL);

    /* Aliasing, with every op combination and both alpha/beta kinds. */
    for (int op = 0; op < 4; ++op) {
        gpumat_op oa = (gpumat_op)(op >> 1), ob = (gpumat_op)(op & 1);
        EXPECT_ERR(ctx, gpumat_gemm(oa, ob, 1.0, sq, sq2, 0.0, sq), GPUMAT_ERR_ALIASING, NULL,
                   NULL, NULL);
        EXPECT_ERR(ctx, gpumat_gemm(oa, ob, 1.25, sq, sq2, 0.5, sq2), GPUMAT_ERR_ALIASING,
                   NULL, NULL, NULL);
        EXPECT_ERR(ctx, gpumat_gemm(oa, ob, 1.0, sq, sq, 0.0, sq), GPUMAT_ERR_ALIASING, NULL,
                   NULL, NULL);
    }
    EXPECT_ERR(ctx, gpumat_multiply(sq, sq, sq2), GPUMAT_ERR_ALIASING, NULL, NULL, NULL);
    EXPECT_ERR(ctx, gpumat_multiply(sq2, sq, sq2), GPUMAT_ERR_ALIASING, NULL, NULL, NULL);

    /* NULL operands. */
    EXPECT_ERR(ctx, gpumat_gemm(N, N, 1.0, NULL, sq2, 0.0, csq), GPUMAT_ERR_INVALID_ARGUMENT,
               NULL, NULL, NULL);
    EXPECT_ERR(ctx, gpumat_gemm(N, N, 1.0, sq, NULL, 0.0, csq), GPUMAT_ERR_INVALID_ARGUMENT,
               NULL, NULL, NULL);
    EXPECT_ERR(ctx, gpumat_gemm(N, N, 1.0, sq, sq2, 0.0, NULL), GPUMAT_ERR_INVALID_ARGUMENT,
               NULL, NULL, NULL);

    /* A dtype mismatch. */
    if (tu_has_fp64(ctx)) {
        gpumat_matrix *d;
        TU_CHECK_OK(gpumat_matrix_create(ctx, 4, 4, GPUMAT_F64, &d));
        EXPECT_ERR(ctx, gpumat_gemm(N, N, 1.0, sq, d, 0.0, csq), GPUMAT_ERR_DTYPE, NULL, NULL,
                   NULL);
        EXPECT_ERR(ctx, gpumat_gemm(T, T, 1.0, sq, sq2, 0.5, d), GPUMAT_ERR_DTYPE, NULL, NULL,
                   NULL);
        gpumat_matrix_destroy(d);
    }

    /* A context mismatch. */
    gpumat_context *other;
    gpumat_options opt;
    gpumat_options_init(&opt);
    opt.gemm_backend = GPUMAT_GEMM_NATIVE;
    TU_CHECK_OK(gpumat_context_create(&other, &opt));
    gpumat_matrix *o;
    TU_CHECK_OK(gpumat_matrix_create(other, 4, 4, GPUMAT_F32, &o));
    EXPECT_ERR(ctx, gpumat_gemm(N, N, 1.0, sq, o, 0.0, csq), GPUMAT_ERR_CONTEXT_MISMATCH, NULL,
               NULL, NULL);
    gpumat_matrix_destroy(o);
    gpumat_context_destroy(other);

    /* No failed call touched anything. */
    assert_true(same_exactly(c36, hc36));
    assert_true(same_exactly(csq, hcsq));
    assert_true(same_exactly(sq, hsq));
    assert_true(same_exactly(sq2, hsq2));
    assert_true(same_exactly(a34, h34));

    /* The context still works after all that. */
    char msg[MSG_SIZE];
    if (!tu_context_works(ctx, GPUMAT_F32, &rng, msg, sizeof msg))
        fail_msg("after the errors: %s", msg);
    const ab_case *ab = &ab_cases[AB_FULL];
    run_gemm(ctx, "after errors", &rng, GPUMAT_F32, T, N, ab, 3, 6, 4, 1);

    gpumat_matrix *ms[] = {a34, b56, b46, c36, c35, sq, sq2, csq};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; ++i)
        gpumat_matrix_destroy(ms[i]);
    double *hs[] = {h34, h56, h46, hsq, hsq2, hc36, hcsq};
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; ++i)
        free(hs[i]);
}

/* ---- GPUMAT_PROFILE / GPUMAT_KERNEL_PARAMS values that are not valid -------- */

static tu_saved_env g_saved_profile, g_saved_params;

static int env_setup(void **state)
{
    (void)state;
    tu_env_save(&g_saved_profile, "GPUMAT_PROFILE");
    tu_env_save(&g_saved_params, "GPUMAT_KERNEL_PARAMS");
    return 0;
}

static int env_teardown(void **state)
{
    (void)state;
    tu_env_restore(&g_saved_profile);
    tu_env_restore(&g_saved_params);
    return 0;
}

static void expect_create_fails(const char *profile, const char *params, const char *needle)
{
    tu_env_set("GPUMAT_PROFILE", profile);
    tu_env_set("GPUMAT_KERNEL_PARAMS", params);
    gpumat_options opt;
    gpumat_options_init(&opt);
    opt.gemm_backend = GPUMAT_GEMM_NATIVE;
    gpumat_context *ctx = (gpumat_context *)(uintptr_t)1;
    gpumat_status s = gpumat_context_create(&ctx, &opt);
    unsetenv("GPUMAT_PROFILE");
    unsetenv("GPUMAT_KERNEL_PARAMS");
    if (s == GPUMAT_OK) {
        gpumat_context_destroy(ctx);
        fail_msg("GPUMAT_PROFILE=%s GPUMAT_KERNEL_PARAMS=%s: context_create succeeded",
                 profile ? profile : "(unset)", params ? params : "(unset)");
    }
    assert_null(ctx);
    if (s != GPUMAT_ERR_INVALID_ARGUMENT)
        fail_msg("GPUMAT_PROFILE=%s GPUMAT_KERNEL_PARAMS=%s: %d (%s), expected "
                 "GPUMAT_ERR_INVALID_ARGUMENT: %s",
                 profile ? profile : "(unset)", params ? params : "(unset)", (int)s,
                 gpumat_strerror(s), gpumat_last_error(NULL));
    if (!tu_contains_ci(gpumat_last_error(NULL), needle))
        fail_msg("message \"%s\" does not mention \"%s\"", gpumat_last_error(NULL), needle);
}

static void test_bad_profile(void **state)
{
    (void)state;
    expect_create_fails("bogus", NULL, "GPUMAT_PROFILE");
    expect_create_fails("nvidia", NULL, "GPUMAT_PROFILE");
    expect_create_fails("cpu ", NULL, "GPUMAT_PROFILE");
    expect_create_fails("nvidia-gpu-extra", NULL, "GPUMAT_PROFILE");
}

static void test_bad_kernel_params(void **state)
{
    (void)state;
    expect_create_fails(NULL, "MWG=33", "GPUMAT_KERNEL_PARAMS");
    expect_create_fails("nvidia-gpu", "MWG=33", "GPUMAT_KERNEL_PARAMS");
    expect_create_fails(NULL, "NOSUCH=4", "GPUMAT_KERNEL_PARAMS");
    expect_create_fails(NULL, "MWG=0", "GPUMAT_KERNEL_PARAMS");
    expect_create_fails(NULL, "MWG", "GPUMAT_KERNEL_PARAMS");
    expect_create_fails(NULL, "KWG=6", "GPUMAT_KERNEL_PARAMS");
    /* The direct-copy pipeline: 0 (off) or 2-4 buffers, and a work-group
     * that is a whole number of k columns (128 work-items, depth 24). */
    expect_create_fails(NULL, "ASYNC=1", "GPUMAT_KERNEL_PARAMS");
    expect_create_fails(NULL, "ASYNC64=5", "GPUMAT_KERNEL_PARAMS");
    expect_create_fails("nvidia-gpu", "ASYNC=2,KWG=24", "GPUMAT_KERNEL_PARAMS");
    /* The double tiles' own warp patch: both 0 (MSUB x NSUB) or both set. */
    expect_create_fails("cpu", "MSUB64=4", "NSUB64");
    expect_create_fails("nvidia-gpu", "NSUB64=0", "MSUB64");
    /* The tiny tile: all four 0 (off), or a tile that works at both
     * depths (TMWG=36 is not a multiple of 4*TMDIMC). */
    expect_create_fails("nvidia-gpu", "TNWG=0", "GPUMAT_KERNEL_PARAMS");
    expect_create_fails("nvidia-gpu", "TMWG=36", "GPUMAT_KERNEL_PARAMS");
    expect_create_fails("cpu", "TMWG=32", "GPUMAT_KERNEL_PARAMS");
    /* The split tile: all four 0 (none), or a tile as the big one is
     * (MMWG=36 is not a multiple of 4*MMDIMC). */
    expect_create_fails("nvidia-gpu", "MNDIMC=0", "MMWG");
    expect_create_fails("nvidia-gpu", "MMWG=36", "MMWG");
    expect_create_fails("cpu", "MMWG=64", "MMWG");
    /* cl/gemm_cpu.cl: vectors of 4, 8 or 16 floats, blocks of 1-16. */
    expect_create_fails("cpu", "CVW=6", "GPUMAT_KERNEL_PARAMS");
    expect_create_fails("cpu", "CMR=17", "GPUMAT_KERNEL_PARAMS");
    expect_create_fails("cpu", "CDN=0", "GPUMAT_KERNEL_PARAMS");
}

/* After the failures, with the variables unset again, contexts work. */
static void test_env_recovers(void **state)
{
    (void)state;
    unsetenv("GPUMAT_PROFILE");
    unsetenv("GPUMAT_KERNEL_PARAMS");
    gpumat_options opt;
    gpumat_options_init(&opt);
    opt.gemm_backend = GPUMAT_GEMM_NATIVE;
    gpumat_context *ctx;
    TU_CHECK_OK(gpumat_context_create(&ctx, &opt));
    tu_rng rng;
    rng_for_test(&rng);
    char msg[MSG_SIZE];
    int ok = tu_context_works(ctx, GPUMAT_F32, &rng, msg, sizeof msg);
    gpumat_context_destroy(ctx);
    if (!ok)
        fail_msg("%s", msg);
}

int main(void)
{
    tu_init("test_gemm");

    const struct CMUnitTest full_tests[] = {
        cmocka_unit_test(test_full_f32),
        cmocka_unit_test(test_full_f64),
        cmocka_unit_test(test_large),
        cmocka_unit_test(test_reuse_output),
        cmocka_unit_test(test_multiply_is_gemm),
    };
    const struct CMUnitTest error_tests[] = {
        cmocka_unit_test(test_errors),
    };
    const struct CMUnitTest profile_tests[] = {
        cmocka_unit_test(test_profile_f32),
        cmocka_unit_test(test_profile_f64),
    };
    const struct CMUnitTest env_tests[] = {
        cmocka_unit_test(test_bad_profile),
        cmocka_unit_test(test_bad_kernel_params),
        cmocka_unit_test(test_env_recovers),
    };

    /* The groups that run on one build share a shard (tools/run-tests
     * runs two side by side): the nvidia-gpu ones in 0, the rest in 1. */
    int failed = 0;
    char name[160];
    for (size_t i = 0; i < N_GROUPS; ++i) {
        if (!tu_shard_selected(g_groups[i].shard))
            continue;
        g_current = &g_groups[i];
        /* Inputs depend on the seed and the group, not on which groups
         * ran before in this process. */
        g_stream = 1 + 1000 * (uint64_t)i;
        double start = tu_now();
        snprintf(name, sizeof name, "gemm (%s)", g_groups[i].label);
        if (g_groups[i].full)
            failed += cmocka_run_group_tests_name(name, full_tests, group_setup, group_teardown);
        else
            failed += cmocka_run_group_tests_name(name, profile_tests, group_setup,
                                                  group_teardown);
        if (i == 0) {
            failed += cmocka_run_group_tests_name("gemm errors (native)", error_tests,
                                                  group_setup, group_teardown);
        }
        print_message("[   TIME   ] gemm (%s): %.0f s\n", g_groups[i].label, tu_now() - start);
    }
    if (tu_shard_selected(0)) {
        g_stream = 1 + 1000 * (uint64_t)N_GROUPS;
        failed += cmocka_run_group_tests_name("GPUMAT_PROFILE / GPUMAT_KERNEL_PARAMS",
                                              env_tests, env_setup, env_teardown);
    }
    return failed ? 1 : 0;
}
