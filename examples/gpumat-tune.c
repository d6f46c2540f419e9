/*
 * gpumat-tune - searches the native GEMM kernel's parameters on one device,
 * for float and then for double, compares the best with CLBlast per size
 * and element type, and writes the device's tuning file, which every later
 * libgpumat context on that device and driver reads.
 *
 *   gpumat-tune [--budget N] [--seconds S] [--sizes N,MxNxK,...] [--runs N]
 *               [--seed N] [--no-double] [--dry-run]
 *
 * The device is chosen as for any context (GPUMAT_PLATFORM, GPUMAT_DEVICE),
 * and so is the profile searched from (GPUMAT_PROFILE).
 * Which kernels are searched follows the device's shipped profile: the
 * tiled kernels of cl/gemm.cl (GPUs), or, where the profile runs
 * cl/gemm_cpu.cl (CVW > 0: CPU devices), that file's blocking (CVW, CMR,
 * CNV, CDM, CDN, CWX, CWY) and where packing and passes over k start
 * (CPACK, CKC), with the tiled kernels (CVW=0) as one more candidate.
 *
 * Float first.  Candidates: the shipped parameters of the device's profile
 * (on NVIDIA GPUs also without the library's passes over the compiled PTX,
 * NVTAIL=0, NVTAILSK=0, NVXCOL=0 and NVSKEW=0, and without the copy of A^T
 * that large NN products run on, PACKA=0) and, for GPUs, of every other
 * profile, a few fixed blockings, then --budget (default 24) random ones,
 * until --seconds (default 600; 0: no limit) have passed.  Then double
 * (unless --no-double, or the device has no fp64): the float winner with
 * each double blocking of the tiled kernels (MWG64, NWG64, KWG64, MDIMC64,
 * NDIMC64, LBUF64, ASYNC64, SKWG64, MSUB64 x NSUB64): the other profiles',
 * the winner's with one of them changed, a few fixed ones, then --budget/2
 * random ones, under its own --seconds; the CPU kernels have no double
 * blocking of their own, so there the winner alone is timed on double.
 * Each candidate is set through GPUMAT_KERNEL_PARAMS before a context is
 * created; the library refuses blockings the device cannot run, and those
 * are skipped.  Every candidate is checked against a double-precision CPU
 * reference before it is timed: all four transposition cases, float and
 * (where the device has it) double, alpha and beta not 0 or 1, on an
 * awkward 131x67x29 shape and one that runs the other kernel variant (the
 * small or big tile; the packed CPU kernels); and every product it is
 * timed on is checked too, on two elements of each 32 x 32 block of C and
 * its whole first and last rows and columns, so that the paths only large
 * products take (stream-K splits, packing, passes over k) are verified
 * with the candidate's own parameters.  Wrong ones are discarded.  The
 * survivors are timed on products of the search's type, NN at each size
 * (256, 512, 1024 on CPUs; 1024, 2048, 4096 otherwise; --sizes overrides),
 * TN, NT and TT at the middle one, and NN on an odd shape near the
 * smallest (1023x777x1539 from 1024) and a tall one of 64 columns
 * (8192x64x8192 from 2048), and ranked by the geometric mean of those
 * rates (so that a blocking good for square NN products alone does not
 * win; the small sizes' NN products prune the slow); the baseline and the best three
 * are timed again beside CLBlast (same type, same sizes), and each size
 * class of each type gets the faster backend ("backend" and "backend64"
 * lines).
 *
 * The file goes to the kernel cache directory ($GPUMAT_CACHE_DIR, else
 * $XDG_CACHE_HOME/gpumat, else ~/.cache/gpumat), written to a temporary
 * file and renamed; gpumat_context_tuning() of a new context then reports
 * "tuned: <path>".  Delete the file to go back to the shipped profile.
 */
#define _POSIX_C_SOURCE 200809L
#include <gpumat.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- parameters ----------------------------------------------------------- */

/* The GPUMAT_KERNEL_PARAMS names the search sets (lib/profile.c's table).
 * The ones from KWG64 on are newer: where the library's build options lack
 * one, it is left alone.  The float search (timing float products) varies
 * the float blocking and keeps the double-only one (MWG64 ... NDIMC64 and
 * LBUF64 on) as shipped, KWG64 changing only where the small tile (which
 * double shares) needs it; the double search then varies those on the
 * float winner. */
enum { MWG, NWG, KWG, MDIMC, NDIMC, SMWG, SNWG, SMDIMC, SNDIMC, SMALLPCT, KWG64, LBUF, MSUB, NSUB,
       MWG64, NWG64, MDIMC64, NDIMC64, NVOFF, CVW, CMR, CNV, CDM, CDN, CWX, CWY, CPACK, CKC, TILED,
       NOCOPY, LBUF64, ASYNC64, SKWG64, MSUB64, NSUB64, NOASYNC64, NPARAM,
       FIRST_OPTIONAL = KWG64 };
static const char *const param_names[NPARAM] = {
    "MWG",  "NWG",   "KWG",  "MDIMC", "NDIMC", "SMWG",  "SNWG",    "SMDIMC",  "SNDIMC",
    "SMALLPCT", "KWG64", "LBUF", "MSUB", "NSUB", "MWG64", "NWG64", "MDIMC64", "NDIMC64",
    "NVTAIL=0,NVTAILSK=0,NVXCOL=0,NVSKEW", "CVW", "CMR", "CNV", "CDM", "CDN", "CWX", "CWY",
    "CPACK", "CKC", "CVW", "PACKA", "LBUF64", "ASYNC64", "SKWG64", "MSUB64", "NSUB64",
    "ASYNC64"};

/* Flags, not values (their names above are spec_of's text for 1), and the
 * host-side parameters the build options do not show (0: the profile's).
 * NOASYNC64 turns the double direct-copy pipeline off where the profile
 * has it on (0 in ASYNC64 means "the profile's"). */
static int is_flag(int i) { return i == NVOFF || i == TILED || i == NOCOPY || i == NOASYNC64; }
static int not_in_options(int i) { return i == SMALLPCT || i == CPACK || i == CKC || is_flag(i); }

/* NVOFF: 1 sets NVTAIL, NVTAILSK, NVXCOL and NVSKEW to 0 (no passes
 * over NVIDIA's PTX, lib/nv_ptx.c), 0 leaves them to the profile.  They are
 * not in the build options, so the search cannot read their shipped values;
 * it tries the shipped parameters without them as one more candidate on
 * NVIDIA GPUs, where their gain depends on the driver's compiler. */

/* NOCOPY: 1 sets PACKA to 0: large NN products then run in place rather
 * than as TN on a copy of A^T (op_gemm.c).  The profile's PACKA is not in
 * the build options either, and whether the copy pays depends on the
 * device's balance of arithmetic and memory bandwidth (the H100 is the
 * only device it was measured on), so NVIDIA GPUs try the shipped
 * parameters without it too; the difference shows from n = 4000 on, i.e.
 * in the default sizes' 4096^3. */

/* SMALLPCT is not among the build options, so the tool cannot read the
 * profile's value; 0 leaves it to the profile (100 in every shipped one). */
#define DEFAULT_SMALLPCT 100u

typedef struct params {
    unsigned v[NPARAM];
} params;

#define MAX_SIZES 16
#define EXTRA_SLOTS 5 /* TN, NT, TT at the middle size; the odd and tall shapes */
#define MAX_CANDIDATES 256

typedef struct shape {
    size_t m, n, k;
} shape;

typedef enum outcome { UNTRIED, OK, PRUNED, UNFIT, WRONG, FAILED } outcome;

typedef struct candidate {
    params p;
    const char *origin; /* "shipped", a profile name, "fixed", "random" */
    outcome result;
    char why[160];
    /* Per call; 0 = not measured: NN at each size, then TN, NT and TT at
     * the middle size (slot_shape, slot_trans). */
    double seconds[MAX_SIZES + EXTRA_SLOTS];
    double score;              /* geometric mean GFLOP/s over all sizes */
} candidate;

typedef struct config {
    unsigned budget;
    double seconds;
    int runs;
    unsigned long long seed;
    int dry_run;
    int no_double;
    shape sizes[MAX_SIZES];
    size_t nsizes;
} config;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void spec_of(const params *p, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < NPARAM; ++i)
        if (p->v[i] && len < size)
            len += (size_t)snprintf(buf + len, size - len, "%s%s=%u", len ? "," : "",
                                    param_names[i], is_flag(i) ? 0 : p->v[i]);
}

/* "64x64x16/8x8 s32x32/8x8 L2 g1x8 p200": tile, small tile, LBUF, MSUB x
 * NSUB, SMALLPCT (each of the last three only when set); for the CPU
 * kernels "cpu v8 4x3 d3x4 w4x4 pk224 kc256": CVW, CMR x CNV, CDM x CDN,
 * CWX x CWY, CPACK and CKC (the last two only when set). */
static void short_of(const params *p, char *buf, size_t size)
{
    const unsigned *v = p->v;
    if (v[CVW]) {
        int n = snprintf(buf, size, "cpu v%u %ux%u d%ux%u w%ux%u", v[CVW], v[CMR], v[CNV], v[CDM],
                         v[CDN], v[CWX], v[CWY]);
        if (v[CPACK] && n > 0 && (size_t)n < size)
            n += snprintf(buf + n, size - (size_t)n, " pk%u", v[CPACK]);
        if (v[CKC] && n > 0 && (size_t)n < size)
            snprintf(buf + n, size - (size_t)n, " kc%u", v[CKC]);
        return;
    }
    int n = snprintf(buf, size, "%ux%ux%u/%ux%u s%ux%u/%ux%u", v[MWG], v[NWG], v[KWG], v[MDIMC],
                     v[NDIMC], v[SMWG], v[SNWG], v[SMDIMC], v[SNDIMC]);
    if (v[LBUF] && n > 0 && (size_t)n < size)
        n += snprintf(buf + n, size - (size_t)n, " L%u", v[LBUF]);
    if (v[MSUB] && v[NSUB] && n > 0 && (size_t)n < size)
        n += snprintf(buf + n, size - (size_t)n, " g%ux%u", v[MSUB], v[NSUB]);
    if (v[SMALLPCT] && n > 0 && (size_t)n < size)
        n += snprintf(buf + n, size - (size_t)n, " p%u", v[SMALLPCT]);
    if (v[NVOFF] && n > 0 && (size_t)n < size)
        n += snprintf(buf + n, size - (size_t)n, " nv0");
    if (v[TILED] && n > 0 && (size_t)n < size)
        n += snprintf(buf + n, size - (size_t)n, " tiled");
    if (v[NOCOPY] && n > 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, " nocopy");
}

/* The double blocking: "d128x128x8/16x16 L2 a2 k16 g8x4": tile / work-group,
 * LBUF64, ASYNC64 (a0: off), SKWG64 and MSUB64 x NSUB64 (each when set). */
static void short64_of(const params *p, char *buf, size_t size)
{
    const unsigned *v = p->v;
    if (v[CVW]) { /* the CPU kernels: no double blocking of their own */
        short_of(p, buf, size);
        return;
    }
    int n = snprintf(buf, size, "d%ux%ux%u/%ux%u", v[MWG64], v[NWG64], v[KWG64], v[MDIMC64],
                     v[NDIMC64]);
    if (v[LBUF64] && n > 0 && (size_t)n < size)
        n += snprintf(buf + n, size - (size_t)n, " L%u", v[LBUF64]);
    if ((v[ASYNC64] || v[NOASYNC64]) && n > 0 && (size_t)n < size)
        n += snprintf(buf + n, size - (size_t)n, " a%u", v[NOASYNC64] ? 0 : v[ASYNC64]);
    if (v[SKWG64] && n > 0 && (size_t)n < size)
        n += snprintf(buf + n, size - (size_t)n, " k%u", v[SKWG64]);
    if (v[MSUB64] && v[NSUB64] && n > 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, " g%ux%u", v[MSUB64], v[NSUB64]);
}

static int same_params(const params *a, const params *b)
{
    return memcmp(a->v, b->v, sizeof a->v) == 0;
}

/* The rules of lib/profile.c (cl/gemm.cl reads 4-wide vectors and every
 * work-item loads whole 4-element pieces); the library checks them again. */
static int tile_ok(unsigned mwg, unsigned nwg, unsigned kwg, unsigned mdimc, unsigned ndimc)
{
    unsigned threads = mdimc * ndimc;
    return mwg % (4 * mdimc) == 0 && nwg % (4 * ndimc) == 0 && kwg % 4 == 0 &&
           (mwg * kwg) % (4 * threads) == 0 && (nwg * kwg) % (4 * threads) == 0;
}

static int plausible(const params *p, size_t max_wg)
{
    const unsigned *v = p->v;
    unsigned per_item = (v[MWG] / v[MDIMC]) * (v[NWG] / v[NDIMC]);
    return tile_ok(v[MWG], v[NWG], v[KWG], v[MDIMC], v[NDIMC]) &&
           tile_ok(v[SMWG], v[SNWG], v[KWG], v[SMDIMC], v[SNDIMC]) &&
           (!v[KWG64] || tile_ok(v[SMWG], v[SNWG], v[KWG64], v[SMDIMC], v[SNDIMC])) &&
           (max_wg == 0 || ((size_t)v[MDIMC] * v[NDIMC] <= max_wg &&
                            (size_t)v[SMDIMC] * v[SNDIMC] <= max_wg)) &&
           per_item >= 1 && per_item <= 128;
}

/* cl/gemm_cpu.cl's blocking (the library checks it again): vector widths
 * it has, and accumulator blocks that can stay in a CPU's vector registers
 * (32 with AVX-512; more would spill in every step). */
static int cpu_plausible(const params *p, size_t max_wg)
{
    const unsigned *v = p->v;
    return (v[CVW] == 4 || v[CVW] == 8 || v[CVW] == 16) && v[CMR] >= 1 && v[CNV] >= 1 &&
           v[CMR] * v[CNV] <= 28 && v[CDM] >= 1 && v[CDN] >= 1 && v[CDM] * v[CDN] <= 28 &&
           v[CWX] >= 1 && v[CWY] >= 1 &&
           (max_wg == 0 || (size_t)v[CWX] * v[CWY] <= max_wg);
}

/* Reads "-DMWG=64 ..." of gpumat_context_build_options(); the optional
 * parameters stay 0 when the library does not have them. */
static int params_from_options(const char *options, params *p)
{
    memset(p, 0, sizeof *p);
    for (int i = 0; i < NPARAM; ++i) {
        if (not_in_options(i))
            continue;
        char key[32];
        snprintf(key, sizeof key, "-D%s=", param_names[i]);
        const char *at = strstr(options, key);
        if (!at && i < FIRST_OPTIONAL)
            return 0;
        if (at)
            p->v[i] = (unsigned)strtoul(at + strlen(key), NULL, 10);
    }
    return 1;
}

/* Fills the optional parameters of a fixed or random candidate p (those it
 * left 0) from the shipped ones, adjusted to p's blocking. */
static void complete(params *p, const params *shipped)
{
    unsigned *v = p->v;
    const unsigned *s = shipped->v;
    for (int i = MWG64; i <= NDIMC64; ++i)
        v[i] = s[i];
    /* KWG64 serves the double tile (shipped, or MWG.. when the library has
     * no separate one) and the small tile: the shipped depth if both take
     * it, else the nearest that does. */
    if (s[KWG64] && !v[KWG64]) {
        static const unsigned depths[] = {0, 16, 8, 32, 4};
        unsigned mw = s[MWG64] ? s[MWG64] : v[MWG], nw = s[NWG64] ? s[NWG64] : v[NWG];
        unsigned md = s[MDIMC64] ? s[MDIMC64] : v[MDIMC], nd = s[NDIMC64] ? s[NDIMC64] : v[NDIMC];
        v[KWG64] = s[KWG64];
        for (size_t i = 0; i < sizeof depths / sizeof depths[0]; ++i) {
            unsigned k = depths[i] ? depths[i] : s[KWG64];
            if (tile_ok(mw, nw, k, md, nd) && tile_ok(v[SMWG], v[SNWG], k, v[SMDIMC], v[SNDIMC])) {
                v[KWG64] = k;
                break;
            }
        }
    }
    if (s[LBUF] && !v[LBUF])
        v[LBUF] = s[LBUF];
    if (s[MSUB] && s[NSUB] && (!v[MSUB] || !v[NSUB])) {
        int fit = v[MDIMC] % s[MSUB] == 0 && v[NDIMC] % s[NSUB] == 0;
        v[MSUB] = fit ? s[MSUB] : 1;
        v[NSUB] = fit ? s[NSUB] : v[NDIMC];
    }
    if (!s[LBUF])
        v[LBUF] = 0;
    if (!s[MSUB] || !s[NSUB])
        v[MSUB] = v[NSUB] = 0;
    if (!s[KWG64])
        v[KWG64] = 0;
}

/* ---- random numbers (splitmix64) ---------------------------------------- */

static unsigned long long rng_state;

static unsigned long long rng_next(void)
{
    unsigned long long z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static unsigned pick(const unsigned *values, size_t count)
{
    return values[rng_next() % count];
}

static float rng_float(void)
{
    return (float)((double)(rng_next() >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* ---- checking one context's products -------------------------------------- */

/* A rows x cols matrix of random values (floats, so that both element
 * types hold them exactly); the host copy, in double, in *host. */
static gpumat_status random_matrix(gpumat_context *ctx, gpumat_dtype dtype, size_t rows,
                                   size_t cols, gpumat_matrix **m, double **host)
{
    *m = NULL;
    size_t count = rows * cols;
    *host = malloc(count * sizeof **host);
    void *upload = malloc(count * gpumat_dtype_size(dtype));
    gpumat_status s = *host && upload ? GPUMAT_OK : GPUMAT_ERR_OUT_OF_MEMORY;
    for (size_t i = 0; s == GPUMAT_OK && i < count; ++i) {
        float x = rng_float();
        (*host)[i] = x;
        if (dtype == GPUMAT_F64)
            ((double *)upload)[i] = x;
        else
            ((float *)upload)[i] = x;
    }
    if (s == GPUMAT_OK)
        s = gpumat_matrix_create(ctx, rows, cols, dtype, m);
    if (s == GPUMAT_OK)
        s = gpumat_matrix_upload(*m, upload);
    free(upload);
    if (s != GPUMAT_OK) {
        gpumat_matrix_destroy(*m);
        *m = NULL;
        free(*host);
        *host = NULL;
    }
    return s;
}

/* The test hook GPUMAT_TUNE_CORRUPT (tests/test_tune.c): "timed" spoils
 * the products candidates are timed on, "timed-f64" the double ones among
 * them, "timed:MxNxK" the timed ones of that shape, any other value every
 * product, as a wrong kernel would: element (0, 0), which every check
 * reads.  `timed`: 0 for a check's product, else the timed product's type;
 * s: its shape. */
static int corrupts(int timed, shape s)
{
    const char *v = getenv("GPUMAT_TUNE_CORRUPT");
    if (!v)
        return 0;
    if (!strcmp(v, "timed-f64"))
        return timed == GPUMAT_F64;
    if (!strncmp(v, "timed:", 6)) {
        char mine[80];
        snprintf(mine, sizeof mine, "timed:%zux%zux%zu", s.m, s.n, s.k);
        return timed && !strcmp(v, mine);
    }
    return timed || strcmp(v, "timed") != 0;
}

/* c's contents as doubles (a new array), or NULL with the status in *st;
 * `spoil`: the test hook's change. */
static double *download(gpumat_matrix *c, gpumat_dtype dtype, size_t count, int spoil,
                        gpumat_status *st)
{
    double *out = malloc(count * sizeof *out);
    void *raw = dtype == GPUMAT_F64 ? (void *)out : malloc(count * sizeof(float));
    *st = out && raw ? gpumat_matrix_download(c, raw) : GPUMAT_ERR_OUT_OF_MEMORY;
    if (*st == GPUMAT_OK && dtype == GPUMAT_F32)
        for (size_t i = count; i-- > 0;)
            out[i] = ((float *)raw)[i];
    if (raw != out)
        free(raw);
    if (*st == GPUMAT_OK && spoil)
        out[0] = 2 * out[0] + 1;
    if (*st != GPUMAT_OK) {
        free(out);
        out = NULL;
    }
    return out;
}

/* One product's operands and result on the host, for checking elements. */
typedef struct product {
    shape s;
    int ta, tb;
    gpumat_dtype dtype;
    double alpha, beta;
    const double *a, *b, *c0, *out; /* c0: C before the call (unused when beta == 0) */
    size_t bad, wi, wj;
    double worst, got, want;
} product;

/* Checks element (i, j) against double arithmetic: each element sums k
 * products with at most k roundings: |error| <= k u sum|a||b| (+ the beta
 * term's rounding), and 4x that is the bound.  It is a worst case, growing
 * like k^2 while a product term is at most 1: for k up to a few hundred a
 * single lost or doubled term exceeds it, but at k = 4096 one element can
 * lose a term (or a 16-deep step) within it.  Kernel faults are caught by
 * their number: a wrong tile, row, column or step changes every element it
 * touches, and the checks read thousands. */
static void check_element(product *p, size_t i, size_t j)
{
    const shape s = p->s;
    const double u = p->dtype == GPUMAT_F64 ? 1.0 / 9007199254740992.0 : 1.0 / 16777216.0;
    double sum = 0, scale = 0;
    for (size_t q = 0; q < s.k; ++q) {
        double x = p->ta ? p->a[q * s.m + i] : p->a[i * s.k + q];
        double y = p->tb ? p->b[j * s.k + q] : p->b[q * s.n + j];
        sum += x * y;
        scale += fabs(x * y);
    }
    double c0 = p->beta != 0 ? p->c0[i * s.n + j] : 0;
    double ref = p->alpha * sum + p->beta * c0;
    double tol = 4.0 * (double)(s.k + 2) * u * (fabs(p->alpha) * scale + fabs(p->beta * c0));
    double err = fabs(p->out[i * s.n + j] - ref);
    if (!(err <= tol)) { /* NaN fails too */
        ++p->bad;
        if (!(err <= p->worst)) {
            p->worst = err;
            p->wi = i;
            p->wj = j;
            p->got = p->out[i * s.n + j];
            p->want = ref;
        }
    }
}

/* Every element, or (sampled) the first and last rows and columns and two
 * random elements of each 32 x 32 block: every tile of every kernel, and
 * every edge, gets checked at the cost of a few k-long dot products per
 * block.  Returns 1 if right, else 0 with `why`. */
static int check_elements(product *p, int sampled, char *why, size_t size)
{
    const shape s = p->s;
    if (!sampled) {
        for (size_t i = 0; i < s.m; ++i)
            for (size_t j = 0; j < s.n; ++j)
                check_element(p, i, j);
    } else {
        /* The edges, each element once. */
        for (size_t j = 0; j < s.n; ++j) {
            check_element(p, 0, j);
            if (s.m > 1)
                check_element(p, s.m - 1, j);
        }
        for (size_t i = 1; i + 1 < s.m; ++i) {
            check_element(p, i, 0);
            if (s.n > 1)
                check_element(p, i, s.n - 1);
        }
        for (size_t i0 = 0; i0 < s.m; i0 += 32)
            for (size_t j0 = 0; j0 < s.n; j0 += 32)
                for (int r = 0; r < 2; ++r) {
                    size_t bi = s.m - i0 < 32 ? s.m - i0 : 32, bj = s.n - j0 < 32 ? s.n - j0 : 32;
                    size_t i = i0 + rng_next() % bi;
                    check_element(p, i, j0 + rng_next() % bj);
                }
    }
    if (p->bad)
        snprintf(why, size, "%s %zux%zux%zu %c%c: %zu%s wrong, e.g. (%zu,%zu) = %g, expected %g",
                 p->dtype == GPUMAT_F64 ? "f64" : "f32", s.m, s.n, s.k, p->ta ? 'T' : 'N',
                 p->tb ? 'T' : 'N', p->bad, sampled ? " checked" : "", p->wi, p->wj, p->got,
                 p->want);
    return p->bad == 0;
}

/* c = alpha*op(a)*op(b) + beta*c on m x n x k, every element against
 * double arithmetic on the CPU.  Returns 1 if right, 0 if wrong, -1 if a
 * call failed; `why` says which. */
static int check_product(gpumat_context *ctx, gpumat_dtype dtype, shape s, int ta, int tb,
                         char *why, size_t size)
{
    const double alpha = 0.75, beta = -0.5;
    gpumat_matrix *a = NULL, *b = NULL, *c = NULL;
    double *ha = NULL, *hb = NULL, *hc = NULL, *out = NULL;
    int result = -1;
    gpumat_status st = random_matrix(ctx, dtype, ta ? s.k : s.m, ta ? s.m : s.k, &a, &ha);
    if (st == GPUMAT_OK)
        st = random_matrix(ctx, dtype, tb ? s.n : s.k, tb ? s.k : s.n, &b, &hb);
    if (st == GPUMAT_OK)
        st = random_matrix(ctx, dtype, s.m, s.n, &c, &hc);
    if (st == GPUMAT_OK)
        st = gpumat_gemm(ta ? GPUMAT_TRANS : GPUMAT_NO_TRANS, tb ? GPUMAT_TRANS : GPUMAT_NO_TRANS,
                         alpha, a, b, beta, c);
    if (st == GPUMAT_OK)
        out = download(c, dtype, s.m * s.n, corrupts(0, s), &st);
    if (st != GPUMAT_OK) {
        snprintf(why, size, "%s %zux%zux%zu %c%c: %s", dtype == GPUMAT_F64 ? "f64" : "f32", s.m,
                 s.n, s.k, ta ? 'T' : 'N', tb ? 'T' : 'N', gpumat_last_error(ctx));
    } else {
        product p = {.s = s, .ta = ta, .tb = tb, .dtype = dtype, .alpha = alpha, .beta = beta,
                     .a = ha, .b = hb, .c0 = hc, .out = out};
        result = check_elements(&p, 0, why, size);
    }
    gpumat_matrix_destroy(a);
    gpumat_matrix_destroy(b);
    gpumat_matrix_destroy(c);
    free(ha);
    free(hb);
    free(hc);
    free(out);
    return result;
}

/* Whether libgpumat's native GEMM takes its small-tile kernel for an m x n
 * product (lib/op_gemm.c's rule, restated so that both kernels get
 * checked; if it ever differs, the checks still cover whatever runs). */
static int uses_small(const params *p, unsigned compute_units, size_t m, size_t n)
{
    unsigned pct = p->v[SMALLPCT] ? p->v[SMALLPCT] : DEFAULT_SMALLPCT;
    size_t groups = (m + p->v[MWG] - 1) / p->v[MWG] * ((n + p->v[NWG] - 1) / p->v[NWG]);
    return groups * 100 < (size_t)compute_units * pct;
}

/* The shipped CPU profiles' CPACK and CKC (host-side, so not in the build
 * options; keep equal to lib/profile.c's cpu and cpu-avx512): where a
 * candidate leaves them 0, the packed check shape is chosen for these. */
#define DEFAULT_CPACK 224u
#define DEFAULT_CKC 256u

/* Checks all four transposition cases, in float and (where the device has
 * it) double, on 131x67x29 and on a shape that runs the other kernel
 * variant, when there is one: the big or the small tile, or the CPU
 * kernels' packed panels in more than one pass over k. */
static int verify(gpumat_context *ctx, const params *p, const gpumat_device_info *dev, char *why,
                  size_t size)
{
    shape shapes[2] = {{131, 67, 29}, {0, 0, 0}};
    unsigned compute_units = dev->compute_units;
    if (p->v[CVW]) {
        size_t cp = p->v[CPACK] ? p->v[CPACK] : DEFAULT_CPACK;
        size_t kc = p->v[CKC] ? p->v[CKC] : DEFAULT_CKC;
        shapes[1] = (shape){cp + 7, cp - 5, (cp + 11 > kc + 19 ? cp + 11 : kc + 19)};
    } else if (uses_small(p, compute_units, 131, 67)) {
        /* Enough big tiles, with ragged edges. */
        size_t need = (size_t)compute_units * (p->v[SMALLPCT] ? p->v[SMALLPCT] : DEFAULT_SMALLPCT) /
                          100 + 1;
        size_t side = 1;
        while (side * side < need)
            ++side;
        shape big = {side * p->v[MWG] - 3, side * p->v[NWG] - 5, 37};
        if (big.m <= 8192 && big.n <= 8192 && !uses_small(p, compute_units, big.m, big.n))
            shapes[1] = big;
    } else {
        shape small = {p->v[MWG] > 4 ? p->v[MWG] - 3 : 1, p->v[NWG] > 6 ? p->v[NWG] - 5 : 1, 37};
        if (uses_small(p, compute_units, small.m, small.n))
            shapes[1] = small;
    }
    for (int d = 0; d < (dev->has_fp64 ? 2 : 1); ++d)
        for (int i = 0; i < 2; ++i) {
            if (!shapes[i].m)
                continue;
            for (int t = 0; t < 4; ++t) {
                int r = check_product(ctx, d ? GPUMAT_F64 : GPUMAT_F32, shapes[i], t & 1, t >> 1,
                                      why, size);
                if (r != 1)
                    return r;
            }
        }
    return 1;
}

/* ---- timing ----------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* c = op(a) op(b): trans bit 0 transposes a, bit 1 b. */
static gpumat_status product_of(int trans, const gpumat_matrix *a, const gpumat_matrix *b,
                                gpumat_matrix *c)
{
    return gpumat_gemm(trans & 1 ? GPUMAT_TRANS : GPUMAT_NO_TRANS,
                       trans & 2 ? GPUMAT_TRANS : GPUMAT_NO_TRANS, 1.0, a, b, 0.0, c);
}

/* Median seconds per product of dtype and shape s on ctx (trans as in
 * product_of: 0 NN, 1 TN, 2 NT, 3 TT); 0 with `why` on failure.  With
 * `wrong`, the timed product itself is checked too (on samples of every
 * 32 x 32 block, check_elements) and *wrong set when it is wrong; NULL:
 * already checked at this size, timing only. */
static double time_gemm(gpumat_context *ctx, gpumat_dtype dtype, shape s, int trans, int runs,
                        int *wrong, char *why, size_t size)
{
    gpumat_matrix *a = NULL, *b = NULL, *c = NULL;
    double *ha = NULL, *hb = NULL, *out = NULL;
    double result = 0;
    int bad = 0, ta = trans & 1, tb = trans >> 1;
    gpumat_status st = random_matrix(ctx, dtype, ta ? s.k : s.m, ta ? s.m : s.k, &a, &ha);
    if (st == GPUMAT_OK)
        st = random_matrix(ctx, dtype, tb ? s.n : s.k, tb ? s.k : s.n, &b, &hb);
    if (st == GPUMAT_OK)
        st = gpumat_matrix_create(ctx, s.m, s.n, dtype, &c);
    /* Warm-up (first-use costs), then a trial that sizes the repetitions so
     * that each timed run lasts >= 50 ms. */
    double t0 = now();
    if (st == GPUMAT_OK)
        st = product_of(trans, a, b, c);
    if (st == GPUMAT_OK)
        st = gpumat_finish(ctx);
    t0 = now();
    if (st == GPUMAT_OK)
        st = product_of(trans, a, b, c);
    if (st == GPUMAT_OK)
        st = gpumat_finish(ctx);
    double once = now() - t0;
    int reps = once >= 0.05 ? 1 : (int)(0.05 / (once > 1e-6 ? once : 1e-6)) + 1;
    if (reps > 1000)
        reps = 1000;
    double t[16];
    if (runs > 16)
        runs = 16;
    for (int r = 0; r < runs && st == GPUMAT_OK; ++r) {
        t0 = now();
        for (int i = 0; i < reps && st == GPUMAT_OK; ++i)
            st = product_of(trans, a, b, c);
        if (st == GPUMAT_OK)
            st = gpumat_finish(ctx);
        t[r] = (now() - t0) / reps;
    }
    if (st == GPUMAT_OK && wrong)
        out = download(c, dtype, s.m * s.n, corrupts(dtype, s), &st);
    if (st == GPUMAT_OK && wrong) {
        product p = {.s = s, .ta = ta, .tb = tb, .dtype = dtype, .alpha = 1, .a = ha, .b = hb,
                     .out = out};
        bad = !check_elements(&p, 1, why, size);
    }
    if (wrong)
        *wrong = bad;
    if (st == GPUMAT_OK && !bad) {
        qsort(t, (size_t)runs, sizeof t[0], cmp_double);
        result = t[runs / 2];
    } else if (st != GPUMAT_OK) {
        snprintf(why, size, "timing %zux%zux%zu %c%c: %s", s.m, s.n, s.k, ta ? 'T' : 'N',
                 tb ? 'T' : 'N', gpumat_last_error(ctx));
    }
    gpumat_matrix_destroy(a);
    gpumat_matrix_destroy(b);
    gpumat_matrix_destroy(c);
    free(ha);
    free(hb);
    free(out);
    return result;
}

static double gflops(shape s, double seconds)
{
    return seconds > 0 ? 2.0 * (double)s.m * (double)s.n * (double)s.k / seconds * 1e-9 : 0;
}

/* What a candidate is timed on: NN at every size, then the transposed
 * cases (which have kernels of their own) at the middle size, so that a
 * blocking good for NN alone does not win, then two NN shapes unlike the
 * squares: an odd one near the smallest size (no side a multiple of any
 * tile; partial waves, which stream-K splits) and a tall one of 64
 * columns (the small tiles, a split along k).  Session 15 found a double
 * blocking that won on squares and ran the odd benchmark shape at half
 * speed. */
static size_t slots(const config *cfg) { return cfg->nsizes + EXTRA_SLOTS; }

static int slot_trans(const config *cfg, size_t i)
{
    return i < cfg->nsizes || i >= cfg->nsizes + 3 ? 0 : (int)(i - cfg->nsizes) + 1;
}

static shape slot_shape(const config *cfg, size_t i)
{
    shape mid = cfg->sizes[(cfg->nsizes - 1) / 2], low = cfg->sizes[0];
    if (i < cfg->nsizes)
        return cfg->sizes[i];
    if (i < cfg->nsizes + 3)
        return mid;
    if (i == cfg->nsizes + 3) /* 1023 x 777 x 1539 from 1024^3 */
        return (shape){low.m > 1 ? low.m - 1 : 1, low.n * 3 / 4 + 9, low.k * 3 / 2 + 3};
    return (shape){4 * mid.m, 64, 4 * mid.k}; /* 8192 x 64 x 8192 from 2048^3 */
}

/* A slot's column heading: the size, the case at the middle size, or
 * which of the two other shapes (print_shapes names them). */
static void slot_label(const config *cfg, size_t i, char *buf, size_t size)
{
    static const char *const cases[4] = {"", "TN@", "NT@", "TT@"};
    shape sh = slot_shape(cfg, i);
    if (i >= cfg->nsizes + 3)
        snprintf(buf, size, "%s", i == cfg->nsizes + 3 ? "odd" : "tall");
    else if (sh.m == sh.n && sh.n == sh.k)
        snprintf(buf, size, "%s%zu", cases[slot_trans(cfg, i)], sh.m);
    else
        snprintf(buf, size, "%s%zux%zux%zu", cases[slot_trans(cfg, i)], sh.m, sh.n, sh.k);
}

/* ---- one candidate ------------------------------------------------------------ */

static gpumat_status create(gpumat_context **ctx, gpumat_gemm_backend backend)
{
    gpumat_options o;
    gpumat_options_init(&o);
    o.gemm_backend = backend;
    return gpumat_context_create(ctx, &o);
}

/* best[i]: the fastest verified time so far at size i, for pruning;
 * products of dtype are timed. */
static void evaluate(const config *cfg, candidate *c, const gpumat_device_info *dev,
                     gpumat_dtype dtype, const double *best)
{
    char spec[512];
    spec_of(&c->p, spec, sizeof spec);
    setenv("GPUMAT_KERNEL_PARAMS", spec, 1);
    gpumat_context *ctx = NULL;
    gpumat_status st = create(&ctx, GPUMAT_GEMM_NATIVE);
    unsetenv("GPUMAT_KERNEL_PARAMS");
    if (st != GPUMAT_OK) {
        c->result = st == GPUMAT_ERR_INVALID_ARGUMENT ? UNFIT : FAILED;
        snprintf(c->why, sizeof c->why, "%s", gpumat_last_error(NULL));
        return;
    }
    int v = verify(ctx, &c->p, dev, c->why, sizeof c->why);
    if (v != 1) {
        c->result = v == 0 ? WRONG : FAILED;
        gpumat_context_destroy(ctx);
        return;
    }
    c->result = OK;
    double log_sum = 0;
    for (size_t i = 0; i < slots(cfg); ++i) {
        int wrong;
        c->seconds[i] = time_gemm(ctx, dtype, slot_shape(cfg, i), slot_trans(cfg, i), cfg->runs,
                                  &wrong, c->why, sizeof c->why);
        if (c->seconds[i] <= 0) {
            c->result = wrong ? WRONG : FAILED;
            break;
        }
        log_sum += log(gflops(slot_shape(cfg, i), c->seconds[i]));
        /* Far behind the best at this size: not worth the larger ones.  Not
         * judged on the smallest size alone: its products take microseconds
         * and read ±30% on a busy machine. */
        if (best && i > 0 && best[i] > 0 && c->seconds[i] > 2.0 * best[i] &&
            i + 1 < cfg->nsizes) {
            c->result = PRUNED;
            snprintf(c->why, sizeof c->why, "under half the best rate at %zux%zux%zu",
                     cfg->sizes[i].m, cfg->sizes[i].n, cfg->sizes[i].k);
            break;
        }
    }
    if (c->result == OK)
        c->score = exp(log_sum / (double)slots(cfg));
    gpumat_context_destroy(ctx);
}

/* ---- output ------------------------------------------------------------------- */

static const char *outcome_name(outcome o)
{
    switch (o) {
    case OK: return "ok";
    case PRUNED: return "slow";
    case UNFIT: return "unfit";
    case WRONG: return "WRONG";
    case FAILED: return "failed";
    case UNTRIED: break;
    }
    return "-";
}

/* dbl: the double search's columns (the double blocking). */
static void print_header(const config *cfg, int dbl)
{
    printf("%-3s %-11s %-40s %-6s", "#", "origin",
           dbl ? "MWG64xNWG64xKWG64/MDIMC64xNDIMC64 L a k g" : "MWGxNWGxKWG/MDIMCxNDIMC s<small> L g p",
           "check");
    for (size_t i = 0; i < slots(cfg); ++i) {
        char t[48];
        slot_label(cfg, i, t, sizeof t);
        printf(" %9s", t);
    }
    printf(" %9s  (GFLOP/s)\n", "geomean");
}

static void print_row(const config *cfg, size_t index, const candidate *c, int dbl)
{
    char text[64];
    if (dbl)
        short64_of(&c->p, text, sizeof text);
    else
        short_of(&c->p, text, sizeof text);
    printf("%-3zu %-11s %-40s %-6s", index, c->origin, text, outcome_name(c->result));
    for (size_t i = 0; i < slots(cfg); ++i) {
        if (c->seconds[i] > 0)
            printf(" %9.1f", gflops(slot_shape(cfg, i), c->seconds[i]));
        else
            printf(" %9s", "-");
    }
    if (c->result == OK)
        printf(" %9.1f", c->score);
    else
        printf(" %9s", "-");
    if (c->result != OK && c->why[0]) {
        /* The first line of the reason is enough for a table. */
        char why[sizeof c->why];
        snprintf(why, sizeof why, "%s", c->why);
        why[strcspn(why, "\n")] = '\0';
        printf("  %s", why);
    }
    printf("\n");
    fflush(stdout);
}

/* mkdir -p with mode 0700, like the library's cache. */
static int make_dirs(const char *dir)
{
    char path[4200];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return -1;
    for (char *p = path + 1;; ++p) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = saved;
        if (!saved)
            break;
    }
    return 0;
}

static int write_file(const char *path, const char *text)
{
    char dir[4200], tmp[4300];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (make_dirs(dir) != 0) {
            fprintf(stderr, "gpumat-tune: cannot create %s: %s\n", dir, strerror(errno));
            return -1;
        }
    }
    snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        fprintf(stderr, "gpumat-tune: cannot create %s: %s\n", tmp, strerror(errno));
        return -1;
    }
    FILE *f = fdopen(fd, "w");
    int ok = f && fputs(text, f) >= 0;
    ok = (f ? fclose(f) == 0 : close(fd) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        fprintf(stderr, "gpumat-tune: cannot write %s: %s\n", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* Appends to a fixed buffer. */
static void appendf(char *buf, size_t size, const char *fmt, ...)
{
    size_t len = strlen(buf);
    if (len + 1 >= size)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, size - len, fmt, ap);
    va_end(ap);
}

/* ---- main ----------------------------------------------------------------------- */

static void parse_sizes(config *cfg, const char *text)
{
    cfg->nsizes = 0;
    while (*text && cfg->nsizes < MAX_SIZES) {
        char *end;
        shape s = {0, 0, 0};
        s.m = strtoul(text, &end, 10);
        s.n = s.k = s.m;
        if (*end == 'x') {
            s.n = strtoul(end + 1, &end, 10);
            s.k = s.n;
            if (*end == 'x')
                s.k = strtoul(end + 1, &end, 10);
        }
        if (s.m && s.n && s.k)
            cfg->sizes[cfg->nsizes++] = s;
        if (*end && *end != ',')
            break;
        text = *end ? end + 1 : end;
    }
}

static double cube_root(shape s)
{
    return cbrt((double)s.m * (double)s.n * (double)s.k);
}

static int cmp_shape(const void *a, const void *b)
{
    double x = cube_root(*(const shape *)a), y = cube_root(*(const shape *)b);
    return (x > y) - (x < y);
}

static int usage(void)
{
    fprintf(stderr, "usage: gpumat-tune [--budget N] [--seconds S] [--sizes N,MxNxK,...] "
                    "[--runs N] [--seed N] [--no-double] [--dry-run]\n");
    return 2;
}

static void add(candidate *list, size_t *count, const params *p, const char *origin)
{
    for (size_t i = 0; i < *count; ++i)
        if (same_params(&list[i].p, p))
            return;
    if (*count < MAX_CANDIDATES) {
        memset(&list[*count], 0, sizeof list[*count]);
        list[*count].p = *p;
        list[*count].origin = origin;
        ++*count;
    }
}

/* The build options of `profile` on this device, read through
 * GPUMAT_PROFILE (whose own value, the profile every candidate runs on,
 * is put back); 0 if the profile cannot run here. */
static int profile_params(const char *profile, params *p)
{
    const char *own = getenv("GPUMAT_PROFILE");
    char saved[64];
    snprintf(saved, sizeof saved, "%s", own ? own : "");
    setenv("GPUMAT_PROFILE", profile, 1);
    gpumat_context *ctx = NULL;
    int ok = create(&ctx, GPUMAT_GEMM_NATIVE) == GPUMAT_OK &&
             params_from_options(gpumat_context_build_options(ctx), p);
    gpumat_context_destroy(ctx);
    if (own)
        setenv("GPUMAT_PROFILE", saved, 1);
    else
        unsetenv("GPUMAT_PROFILE");
    return ok;
}

/* The GPU shortlist's rest: every other profile's float blocking (read
 * through GPUMAT_PROFILE; those that do not fit are skipped), then a few
 * fixed blockings. */
static void gpu_shortlist(candidate *list, size_t *count, const params *shipped,
                          const char *own_profile, size_t max_wg)
{
    static const char *const profiles[] = {"nvidia-gpu", "amd-gpu", "intel-gpu", "generic-gpu",
                                           "cpu"};
    for (size_t i = 0; i < sizeof profiles / sizeof profiles[0]; ++i) {
        params p;
        /* Not the device's own: "shipped" is that one (its copy here,
         * with the double-only values left 0, would not compare equal
         * and would be timed twice). */
        if (strcmp(profiles[i], own_profile) != 0 && profile_params(profiles[i], &p)) {
            /* Only its float blocking: the double one stays this device's. */
            for (int k = KWG64; k < NPARAM; ++k)
                if (k != LBUF && k != MSUB && k != NSUB)
                    p.v[k] = 0;
            complete(&p, shipped);
            add(list, count, &p, profiles[i]);
        }
    }
    static const unsigned fixed[][9] = {
        {32, 32, 8, 8, 8, 32, 32, 8, 8},      {64, 64, 8, 8, 8, 32, 32, 8, 8},
        {64, 64, 32, 8, 8, 32, 32, 8, 8},     {128, 64, 16, 16, 8, 64, 32, 8, 8},
        {128, 128, 16, 16, 16, 64, 64, 8, 8}, {64, 64, 16, 16, 8, 32, 32, 8, 8},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; ++i) {
        params p = {{0}};
        memcpy(p.v, fixed[i], sizeof fixed[i]);
        complete(&p, shipped);
        if (plausible(&p, max_wg))
            add(list, count, &p, "fixed");
    }
}

/* A random tiled-kernel candidate: values each parameter may take. */
static params random_gpu(const params *shipped)
{
    static const unsigned wg[] = {16, 32, 64, 128}, kwg[] = {4, 8, 16, 32},
                          dimc[] = {4, 8, 16, 32}, swg[] = {16, 32, 64}, sdimc[] = {4, 8, 16},
                          pct[] = {0, 50, 200, 400}, lbuf[] = {1, 2}, sub[] = {1, 2, 4, 8, 16};
    static const struct {
        const unsigned *values;
        size_t count;
    } space[NSUB + 1] = {{wg, 4},   {wg, 4},   {kwg, 4},   {dimc, 4},  {dimc, 4},
                         {swg, 3},  {swg, 3},  {sdimc, 3}, {sdimc, 3}, {pct, 4},
                         {NULL, 0}, {lbuf, 2}, {sub, 5},   {sub, 5}};
    params p = {{0}};
    for (int k = 0; k <= NSUB; ++k)
        if (space[k].count)
            p.v[k] = pick(space[k].values, space[k].count);
    /* MSUB x NSUB must tile the work-group (else it means row-major). */
    if (p.v[MDIMC] % p.v[MSUB] || p.v[NDIMC] % p.v[NSUB]) {
        p.v[MSUB] = 1;
        p.v[NSUB] = p.v[NDIMC];
    }
    complete(&p, shipped);
    return p;
}

/* CPU kernels (cl/gemm_cpu.cl): the shipped blocking with the given
 * CVW, CMR, CNV, CDM, CDN, CWX, CWY, CPACK and CKC (0: the profile's). */
static params cpu_params(const params *shipped, const unsigned *c)
{
    params p = *shipped;
    for (int k = CVW; k <= CKC; ++k)
        p.v[k] = c[k - CVW];
    return p;
}

/* The CPU shortlist's rest: the tiled kernels (CVW=0) with the shipped
 * tile, and fixed blockings of the CPU kernels: wider vectors (AVX-512),
 * taller or wider register blocks, larger work-groups, and packing and
 * passes over k starting elsewhere. */
static void cpu_shortlist(candidate *list, size_t *count, const params *shipped, size_t max_wg)
{
    params tiled = *shipped;
    for (int k = CVW; k <= CKC; ++k)
        tiled.v[k] = 0;
    tiled.v[TILED] = 1;
    add(list, count, &tiled, "tiled");
    /* The two CPU profiles' blockings first (one of them is the shipped
     * candidate already), then the others. */
    static const unsigned fixed[][9] = {
        {8, 4, 3, 3, 4, 4, 4, 0, 0},    {16, 6, 2, 2, 4, 4, 4, 0, 0},   {16, 4, 2, 3, 4, 4, 4, 0, 0},
        {8, 6, 2, 3, 4, 4, 4, 0, 0},    {8, 4, 4, 4, 4, 4, 4, 0, 0},
        {8, 4, 3, 3, 4, 8, 4, 0, 0},    {8, 4, 3, 3, 4, 4, 8, 0, 0},
        {8, 4, 3, 3, 4, 4, 4, 128, 0},  {8, 4, 3, 3, 4, 4, 4, 0, 512},
        {16, 4, 2, 3, 4, 4, 4, 0, 512},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; ++i) {
        params p = cpu_params(shipped, fixed[i]);
        if (cpu_plausible(&p, max_wg))
            add(list, count, &p, "fixed");
    }
}

/* A random CPU-kernel candidate. */
static params random_cpu(const params *shipped)
{
    static const unsigned cvw[] = {4, 8, 16}, rows[] = {1, 2, 3, 4, 5, 6, 8},
                          vecs[] = {1, 2, 3, 4}, dots[] = {1, 2, 3, 4, 6}, wg[] = {1, 2, 4, 8},
                          pack[] = {96, 160, 224, 320}, kc[] = {128, 256, 512, 1024};
    /* One pick per statement: the order of an initializer list's
     * evaluations is unspecified, and a seed must give the same list. */
    unsigned c[9];
    c[0] = pick(cvw, 3);
    c[1] = pick(rows, 7);
    c[2] = pick(vecs, 4);
    c[3] = pick(dots, 5);
    c[4] = pick(dots, 5);
    c[5] = pick(wg, 4);
    c[6] = pick(wg, 4);
    c[7] = pick(pack, 4);
    c[8] = pick(kc, 4);
    return cpu_params(shipped, c);
}

/* ---- double blockings ------------------------------------------------------- */

/* cl/gemm.cl's double tile: whole 4-element pieces, the device's work-group
 * limit, and at most 64 doubles of C per work-item (8 x 8 already takes
 * 128 of a GPU's ~255 registers).  The library checks again, with the
 * local memory and the pipeline's rules. */
static int plausible64(const params *p, size_t max_wg)
{
    const unsigned *v = p->v;
    unsigned per_item = (v[MWG64] / v[MDIMC64]) * (v[NWG64] / v[NDIMC64]);
    return tile_ok(v[MWG64], v[NWG64], v[KWG64], v[MDIMC64], v[NDIMC64]) &&
           (max_wg == 0 || (size_t)v[MDIMC64] * v[NDIMC64] <= max_wg) && per_item >= 1 &&
           per_item <= 64;
}

/* The double blocking's fields, in with_double's order; 0 keeps base's. */
enum { D_MWG, D_NWG, D_KWG, D_MDIMC, D_NDIMC, D_LBUF, D_ASYNC, D_SKWG, D_MSUB, D_NSUB, D_COUNT };

/* base with the double blocking d (0: base's value; d[D_ASYNC] 1: the
 * pipeline off).  A warp patch that does not tile the work-group becomes
 * row-major (1 x NDIMC64). */
static params with_double(const params *base, const unsigned *d)
{
    static const int index[D_COUNT] = {MWG64, NWG64, KWG64, MDIMC64, NDIMC64,
                                       LBUF64, ASYNC64, SKWG64, MSUB64, NSUB64};
    params p = *base;
    unsigned *v = p.v;
    for (int i = 0; i < D_COUNT; ++i)
        if (d[i])
            v[index[i]] = d[i];
    if (d[D_ASYNC] == 1) {
        v[ASYNC64] = 0;
        v[NOASYNC64] = base->v[ASYNC64] != 0;
    } else if (d[D_ASYNC]) {
        v[NOASYNC64] = 0;
    }
    if (v[MSUB64] && v[NSUB64] && (v[MDIMC64] % v[MSUB64] || v[NDIMC64] % v[NSUB64])) {
        v[MSUB64] = 1;
        v[NSUB64] = v[NDIMC64];
    }
    return p;
}

/* The double shortlist after the float winner itself: the other profiles'
 * double blockings, the winner's with one thing changed (buffers, the
 * pipeline, depth), and a few fixed ones. */
static void double_shortlist(candidate *list, size_t *count, const params *base, size_t max_wg)
{
    static const char *const profiles[] = {"nvidia-gpu", "amd-gpu", "intel-gpu", "generic-gpu"};
    for (size_t i = 0; i < sizeof profiles / sizeof profiles[0]; ++i) {
        params q;
        if (profile_params(profiles[i], &q)) {
            unsigned d[D_COUNT] = {q.v[MWG64], q.v[NWG64], q.v[KWG64], q.v[MDIMC64],
                                   q.v[NDIMC64], q.v[LBUF64], q.v[ASYNC64] ? q.v[ASYNC64] : 1,
                                   q.v[SKWG64], q.v[MSUB64], q.v[NSUB64]};
            params p = with_double(base, d);
            if (plausible64(&p, max_wg))
                add(list, count, &p, profiles[i]);
        }
    }
    static const unsigned fixed[][D_COUNT] = {
        /* the winner's with one change */
        {0, 0, 0, 0, 0, 1, 0, 0, 0, 0},  {0, 0, 0, 0, 0, 2, 0, 0, 0, 0},
        {0, 0, 0, 0, 0, 0, 1, 0, 0, 0},  {0, 0, 0, 0, 0, 0, 2, 0, 0, 0},
        {0, 0, 0, 0, 0, 0, 3, 0, 0, 0},  {0, 0, 8, 0, 0, 0, 0, 0, 0, 0},
        {0, 0, 16, 0, 0, 0, 0, 0, 0, 0},  {0, 0, 0, 0, 0, 0, 0, 0, 8, 4},
        {0, 0, 0, 0, 0, 0, 0, 0, 4, 8},
        /* tiles: 8 x 8, 8 x 4, 4 x 8, 4 x 4 and 8 x 8 of 64 work-items */
        {128, 128, 16, 16, 16, 0, 0, 0, 0, 0}, {128, 64, 8, 16, 16, 0, 0, 0, 0, 0},
        {64, 128, 8, 16, 16, 0, 0, 0, 0, 0},   {64, 64, 16, 16, 16, 0, 0, 0, 0, 0},
        {64, 64, 8, 8, 8, 0, 0, 0, 0, 0},      {32, 32, 16, 8, 8, 0, 0, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; ++i) {
        params p = with_double(base, fixed[i]);
        if (plausible64(&p, max_wg))
            add(list, count, &p, "fixed");
    }
}

/* A random double blocking on the float winner. */
static params random_double(const params *base)
{
    static const unsigned wg[] = {32, 64, 128}, kwg[] = {8, 16, 32}, dimc[] = {8, 16, 32},
                          lbuf[] = {1, 2}, async[] = {1, 2, 3}, skwg[] = {8, 16, 32},
                          sub[] = {1, 2, 4, 8, 16};
    unsigned d[D_COUNT]; /* one pick per statement, as in random_cpu */
    d[D_MWG] = pick(wg, 3);
    d[D_NWG] = pick(wg, 3);
    d[D_KWG] = pick(kwg, 3);
    d[D_MDIMC] = pick(dimc, 3);
    d[D_NDIMC] = pick(dimc, 3);
    d[D_LBUF] = pick(lbuf, 2);
    d[D_ASYNC] = pick(async, 3);
    d[D_SKWG] = pick(skwg, 3);
    d[D_MSUB] = pick(sub, 5);
    d[D_NSUB] = pick(sub, 5);
    return with_double(base, d);
}

/* ---- one element type's search -------------------------------------------------- */

typedef struct phase {
    gpumat_dtype dtype;
    candidate *list;          /* list[0]: the baseline */
    size_t count, shortlist;  /* candidates; those before the random ones */
    size_t evaluated, ok;     /* tried; correct among them */
    double clblast[MAX_SIZES]; /* CLBlast's confirmed time per size; 0: none */
    char clblast_why[256];
    const candidate *win;
    char failure[96];
} phase;

/* Tries the candidates (the baseline always, the rest until the time
 * limit), then times the baseline, the best three and CLBlast again side
 * by side and picks the winner.  0 with ph->failure when none is left. */
static int search_and_confirm(const config *cfg, const gpumat_device_info *dev, phase *ph)
{
    const int dbl = ph->dtype == GPUMAT_F64;
    candidate *list = ph->list;
    double start = now();
    double best[MAX_SIZES + EXTRA_SLOTS] = {0};
    print_header(cfg, dbl);
    for (size_t i = 0; i < ph->count; ++i) {
        if (i > 0 && cfg->seconds > 0 && now() - start > cfg->seconds) {
            printf("(time limit reached: %zu of %zu candidates left untried)\n", ph->count - i,
                   ph->count);
            break;
        }
        if (i == ph->shortlist && i > 0)
            printf("--- random search\n");
        evaluate(cfg, &list[i], dev, ph->dtype, best);
        ++ph->evaluated;
        if (list[i].result == OK)
            for (size_t s = 0; s < slots(cfg); ++s)
                if (best[s] == 0 || list[i].seconds[s] < best[s])
                    best[s] = list[i].seconds[s];
        print_row(cfg, i, &list[i], dbl);
    }
    size_t wrong = 0;
    for (size_t i = 0; i < ph->evaluated; ++i) {
        ph->ok += list[i].result == OK || list[i].result == PRUNED;
        wrong += list[i].result == WRONG;
    }
    printf("\n%zu candidates tried: %zu correct, %zu wrong (discarded)\n", ph->evaluated, ph->ok,
           wrong);

    /* Confirmation: the baseline, the best three and CLBlast are timed
     * again, side by side per size, twice, each keeping its fastest time:
     * a change of load during the search (a shared machine, clock
     * changes) then favours none of them. */
    enum { FINALISTS = 4, ROUNDS = 2 };
    candidate *final[FINALISTS] = {NULL};
    gpumat_context *final_ctx[FINALISTS + 1] = {NULL};
    size_t nfinal = 0;
    if (list[0].result == OK)
        final[nfinal++] = &list[0];
    while (nfinal < FINALISTS) {
        candidate *next = NULL;
        for (size_t i = 1; i < ph->evaluated; ++i) {
            int taken = 0;
            for (size_t f = 0; f < nfinal; ++f)
                taken |= final[f] == &list[i];
            if (!taken && list[i].result == OK && (!next || list[i].score > next->score))
                next = &list[i];
        }
        if (!next)
            break;
        final[nfinal++] = next;
    }
    if (nfinal == 0) {
        snprintf(ph->failure, sizeof ph->failure, "no candidate passed the checks");
        return 0;
    }
    for (size_t f = 0; f < nfinal; ++f) {
        char fspec[512];
        spec_of(&final[f]->p, fspec, sizeof fspec);
        setenv("GPUMAT_KERNEL_PARAMS", fspec, 1);
        if (create(&final_ctx[f], GPUMAT_GEMM_NATIVE) != GPUMAT_OK)
            final_ctx[f] = NULL;
        unsetenv("GPUMAT_KERNEL_PARAMS");
        memset(final[f]->seconds, 0, sizeof final[f]->seconds);
    }
    gpumat_context *blas = NULL;
    if (create(&blas, GPUMAT_GEMM_CLBLAST) != GPUMAT_OK) {
        snprintf(ph->clblast_why, sizeof ph->clblast_why, "unavailable: %s",
                 gpumat_last_error(NULL));
        blas = NULL;
    } else {
        shape s = {131, 67, 29};
        int v = check_product(blas, ph->dtype, s, 0, 0, ph->clblast_why, sizeof ph->clblast_why);
        if (v == 1)
            v = check_product(blas, ph->dtype, s, 1, 0, ph->clblast_why,
                              sizeof ph->clblast_why);
        if (v != 1) {
            gpumat_context_destroy(blas);
            blas = NULL;
        }
    }
    final_ctx[nfinal] = blas;
    char why[256];
    for (int r = 0; r < ROUNDS; ++r)
        for (size_t i = 0; i < slots(cfg); ++i)
            for (size_t f = 0; f <= nfinal; ++f) {
                /* CLBlast only for the size classes (NN). */
                if (!final_ctx[f] || (f == nfinal && i >= cfg->nsizes))
                    continue;
                /* The finalists' products at these sizes passed the search's
                 * checks; CLBlast's large ones are checked here (a wrong one
                 * takes it out of the running, as a failure does). */
                int clblast_wrong;
                double t = time_gemm(final_ctx[f], ph->dtype, slot_shape(cfg, i),
                                     slot_trans(cfg, i), cfg->runs,
                                     f < nfinal ? NULL : &clblast_wrong, why, sizeof why);
                double *keep = f < nfinal ? &final[f]->seconds[i] : &ph->clblast[i];
                if (t <= 0) { /* a failure now: out of the running */
                    fprintf(stderr, "gpumat-tune: %s\n", why);
                    gpumat_context_destroy(final_ctx[f]);
                    final_ctx[f] = NULL;
                    if (f < nfinal)
                        final[f]->result = FAILED;
                    else
                        memset(ph->clblast, 0, sizeof ph->clblast);
                } else if (*keep == 0 || t < *keep) {
                    *keep = t;
                }
            }
    for (size_t f = 0; f <= nfinal; ++f)
        gpumat_context_destroy(final_ctx[f]);

    const candidate *win = NULL;
    printf("\nconfirmed (fastest of %d interleaved rounds):\n", ROUNDS);
    print_header(cfg, dbl);
    for (size_t f = 0; f < nfinal; ++f) {
        candidate *c = final[f];
        double log_sum = 0;
        for (size_t i = 0; c->result == OK && i < slots(cfg); ++i)
            log_sum += log(gflops(slot_shape(cfg, i), c->seconds[i]));
        c->score = c->result == OK ? exp(log_sum / (double)slots(cfg)) : 0;
        print_row(cfg, (size_t)(c - list), c, dbl);
        if (c->result == OK && (!win || c->score > win->score))
            win = c;
    }
    if (!win) {
        snprintf(ph->failure, sizeof ph->failure, "every finalist failed");
        return 0;
    }
    /* Within 3% of the baseline is noise: keep that. */
    if (win != &list[0] && list[0].result == OK && win->score < 1.03 * list[0].score) {
        printf("(the best is within 3%% of the %s parameters: keeping those)\n",
               list[0].origin);
        win = &list[0];
    }
    ph->win = win;
    return 1;
}

/* Prints the winner against the baseline and CLBlast per size, and appends
 * the size classes ("<keyword> <limit> native|clblast") to body. */
static void report(const config *cfg, const phase *ph, const char *keyword, char *body,
                   size_t size)
{
    const candidate *win = ph->win, *base = &ph->list[0];
    char wtext[64];
    if (ph->dtype == GPUMAT_F64)
        short64_of(&win->p, wtext, sizeof wtext);
    else
        short_of(&win->p, wtext, sizeof wtext);
    printf("\nbest %s: %s (%s), %.1f GFLOP/s geometric mean against %.1f %s\n\n",
           ph->dtype == GPUMAT_F64 ? "double" : "float", wtext, win->origin, win->score,
           base->result == OK ? base->score : 0.0, base->origin);
    printf("%-16s %10s %10s %10s  %s\n", "size", base->origin, "tuned", "clblast", "AUTO uses");
    for (size_t i = 0; i < cfg->nsizes; ++i) {
        shape s = cfg->sizes[i];
        /* CLBlast must win clearly: the native kernels are always there. */
        int use_clblast = ph->clblast[i] > 0 && ph->clblast[i] < 0.97 * win->seconds[i];
        unsigned limit = i + 1 < cfg->nsizes
                             ? (unsigned)sqrt(cube_root(s) * cube_root(cfg->sizes[i + 1]))
                             : (unsigned)ceil(cube_root(s));
        char t[48], c[16];
        snprintf(t, sizeof t, "%zux%zux%zu", s.m, s.n, s.k);
        snprintf(c, sizeof c, ph->clblast[i] > 0 ? "%.1f" : "-", gflops(s, ph->clblast[i]));
        printf("%-16s %10.1f %10.1f %10s  %s\n", t,
               base->result == OK ? gflops(s, base->seconds[i]) : 0.0,
               gflops(s, win->seconds[i]), c, use_clblast ? "clblast" : "native");
        appendf(body, size, "%s %u %s\n", keyword, limit, use_clblast ? "clblast" : "native");
    }
    shape mid = slot_shape(cfg, cfg->nsizes);
    printf("%-16s", "TN / NT / TT");
    for (int w = 0; w < 2; ++w) {
        const candidate *c = w ? win : base;
        printf(" %s %.1f / %.1f / %.1f", w ? "tuned" : base->origin,
               gflops(mid, c->seconds[cfg->nsizes]), gflops(mid, c->seconds[cfg->nsizes + 1]),
               gflops(mid, c->seconds[cfg->nsizes + 2]));
    }
    printf("  (at %zux%zux%zu)\n", mid.m, mid.n, mid.k);
    printf("%-16s", "odd / tall");
    for (int w = 0; w < 2; ++w) {
        const candidate *c = w ? win : base;
        printf(" %s %.1f / %.1f", w ? "tuned" : base->origin,
               gflops(slot_shape(cfg, cfg->nsizes + 3), c->seconds[cfg->nsizes + 3]),
               gflops(slot_shape(cfg, cfg->nsizes + 4), c->seconds[cfg->nsizes + 4]));
    }
    printf("  (NN)\n");
    if (ph->clblast_why[0])
        printf("CLBlast: %s\n", ph->clblast_why);
}

int main(int argc, char **argv)
{
    config cfg = {.budget = 24, .seconds = 600, .runs = 3, .seed = 1};
    const char *sizes = NULL;
    for (int i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--budget") && i + 1 < argc)
            cfg.budget = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            cfg.seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--sizes") && i + 1 < argc)
            sizes = argv[++i];
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            cfg.runs = atoi(argv[++i]) > 0 ? atoi(argv[i]) : 1;
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            cfg.seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--dry-run"))
            cfg.dry_run = 1;
        else if (!strcmp(argv[i], "--no-double"))
            cfg.no_double = 1;
        else
            return usage();
    }
    rng_state = cfg.seed;

    /* The search sets GPUMAT_KERNEL_PARAMS itself, and the baseline is the
     * shipped profile, not an older tuning file. */
    if (getenv("GPUMAT_KERNEL_PARAMS"))
        fprintf(stderr, "gpumat-tune: ignoring GPUMAT_KERNEL_PARAMS=%s\n",
                getenv("GPUMAT_KERNEL_PARAMS"));
    unsetenv("GPUMAT_KERNEL_PARAMS");
    setenv("GPUMAT_TUNING", "off", 1);

    gpumat_context *base = NULL;
    gpumat_status st = create(&base, GPUMAT_GEMM_NATIVE);
    if (st != GPUMAT_OK) {
        fprintf(stderr, "gpumat-tune: no context: %s\n", gpumat_last_error(NULL));
        return 1;
    }
    gpumat_device_info dev;
    gpumat_context_device(base, &dev);
    char path[4200] = "";
    if (gpumat_context_tuning_path(base, path, sizeof path) != GPUMAT_OK && !cfg.dry_run) {
        fprintf(stderr, "gpumat-tune: %s\n", gpumat_last_error(base));
        gpumat_context_destroy(base);
        return 1;
    }
    char profile[64];
    snprintf(profile, sizeof profile, "%s", gpumat_context_profile(base));
    params shipped;
    if (!params_from_options(gpumat_context_build_options(base), &shipped)) {
        fprintf(stderr, "gpumat-tune: cannot read the parameters from \"%s\"\n",
                gpumat_context_build_options(base));
        gpumat_context_destroy(base);
        return 1;
    }
    gpumat_context_destroy(base);
    if (strchr(dev.name, '\n') || strchr(dev.driver_version, '\n')) {
        fprintf(stderr, "gpumat-tune: the device name or driver version has a line break\n");
        return 1;
    }

    if (!sizes)
        sizes = dev.type == GPUMAT_DEVICE_CPU ? "256,512,1024" : "1024,2048,4096";
    parse_sizes(&cfg, sizes);
    if (cfg.nsizes == 0)
        return usage();
    qsort(cfg.sizes, cfg.nsizes, sizeof cfg.sizes[0], cmp_shape);

    printf("device:  %s | %s | driver %s | %u compute units\n", dev.name, dev.platform_name,
           dev.driver_version, dev.compute_units);
    if (cfg.seconds > 0)
        printf("profile: %s; seed %llu; %u random candidates; time limit %.0f s\n", profile,
               cfg.seed, cfg.budget, cfg.seconds);
    else
        printf("profile: %s; seed %llu; %u random candidates; no time limit\n", profile,
               cfg.seed, cfg.budget);
    const int cpu_kernels = shipped.v[CVW] != 0;
    if (cpu_kernels)
        printf("columns: cpu: cl/gemm_cpu.cl with vector width CVW, CMRxCNV rows x vectors, "
               "d: CDMxCDN dot products, w: work-group CWXxCWY, pk: CPACK, kc: CKC; tiled: "
               "cl/gemm.cl (CVW=0)\n");
    else
        printf("columns: tile MWGxNWGxKWG / work-group MDIMCxNDIMC, s: small tile / work-group, "
               "L: LBUF, g: MSUBxNSUB, p: SMALLPCT, nv0: NVTAIL=0,NVTAILSK=0,NVXCOL=0,NVSKEW=0, "
               "nocopy: PACKA=0\n");
    shape odd = slot_shape(&cfg, cfg.nsizes + 3), tall = slot_shape(&cfg, cfg.nsizes + 4);
    printf("shapes:  NN at each size; TN, NT, TT at the middle one; odd: NN %zux%zux%zu, "
           "tall: NN %zux%zux%zu\n",
           odd.m, odd.n, odd.k, tall.m, tall.n, tall.k);
    printf("file:    %s%s\n\n", path[0] ? path : "(none)", cfg.dry_run ? " (dry run: not written)" : "");

    /* The float shortlist: shipped parameters of this profile and of the
     * others (read through GPUMAT_PROFILE; those that do not fit are
     * skipped), then a few fixed blockings, then random ones. */
    static candidate list[MAX_CANDIDATES], list64[MAX_CANDIDATES];
    phase ph = {.dtype = GPUMAT_F32, .list = list};
    add(list, &ph.count, &shipped, "shipped");
    if (dev.vendor == GPUMAT_VENDOR_NVIDIA && dev.type == GPUMAT_DEVICE_GPU) {
        params untailed = shipped;
        untailed.v[NVOFF] = 1;
        add(list, &ph.count, &untailed, "no PTX pass");
        params uncopied = shipped;
        uncopied.v[NOCOPY] = 1;
        add(list, &ph.count, &uncopied, "no copy");
    }
    if (cpu_kernels)
        cpu_shortlist(list, &ph.count, &shipped, dev.max_work_group_size);
    else
        gpu_shortlist(list, &ph.count, &shipped, profile, dev.max_work_group_size);
    ph.shortlist = ph.count;
    for (unsigned drawn = 0, tries = 0; drawn < cfg.budget && tries < 100000; ++tries) {
        params p = cpu_kernels ? random_cpu(&shipped) : random_gpu(&shipped);
        size_t before = ph.count;
        if (cpu_kernels ? cpu_plausible(&p, dev.max_work_group_size)
                        : plausible(&p, dev.max_work_group_size))
            add(list, &ph.count, &p, "random");
        if (ph.count > before)
            ++drawn;
    }
    if (!search_and_confirm(&cfg, &dev, &ph)) {
        fprintf(stderr, "gpumat-tune: %s; nothing written\n", ph.failure);
        return 1;
    }
    char body[8192] = "";
    report(&cfg, &ph, "backend", body, sizeof body);
    const candidate *final = ph.win;

    /* Double: the float winner's parameters with other double blockings
     * (GPU tiled kernels; the CPU kernels have no blocking of their own
     * for double), timed on double products and against CLBlast's. */
    phase ph64 = {.dtype = GPUMAT_F64, .list = list64};
    if (dev.has_fp64 && !cfg.no_double) {
        /* The baseline: the winner with the profile's double-only values
         * spelt out (the same kernels; its row then shows them). */
        params base64 = ph.win->p;
        static const int double_only[] = {LBUF64, ASYNC64, SKWG64, MSUB64, NSUB64};
        for (size_t i = 0; i < sizeof double_only / sizeof double_only[0]; ++i)
            if (!base64.v[double_only[i]])
                base64.v[double_only[i]] = shipped.v[double_only[i]];
        add(list64, &ph64.count, &base64, ph.win == &list[0] ? "shipped" : "float best");
        if (!cpu_kernels && !ph.win->p.v[TILED]) {
            double_shortlist(list64, &ph64.count, &base64, dev.max_work_group_size);
            ph64.shortlist = ph64.count;
            for (unsigned drawn = 0, tries = 0; drawn < cfg.budget / 2 && tries < 100000;
                 ++tries) {
                params p = random_double(&base64);
                size_t before = ph64.count;
                if (plausible64(&p, dev.max_work_group_size))
                    add(list64, &ph64.count, &p, "random");
                if (ph64.count > before)
                    ++drawn;
            }
        } else {
            ph64.shortlist = ph64.count;
        }
        printf("\ndouble: the float winner with each double blocking (columns: tile "
               "MWG64xNWG64xKWG64 / work-group MDIMC64xNDIMC64, L: LBUF64, a: ASYNC64, k: SKWG64, "
               "g: MSUB64xNSUB64)\n");
        if (!search_and_confirm(&cfg, &dev, &ph64)) {
            fprintf(stderr, "gpumat-tune: double: %s; nothing written\n", ph64.failure);
            return 1;
        }
        report(&cfg, &ph64, "backend64", body, sizeof body);
        final = ph64.win;
    }

    char spec[512];
    spec_of(&final->p, spec, sizeof spec);
    char text[16384];
    time_t t = time(NULL);
    struct tm tm;
    char date[32] = "";
    if (gmtime_r(&t, &tm))
        strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", &tm);
    snprintf(text, sizeof text, "# written by gpumat-tune (libgpumat %s) on %s, seed %llu\n",
             gpumat_version_string(), date, cfg.seed);
    const phase *phases[2] = {&ph, &ph64};
    for (int d = 0; d < 2; ++d) {
        const phase *f = phases[d];
        if (!f->win)
            continue;
        appendf(text, sizeof text,
                "# %s: best of %zu correct candidates; GFLOP/s tuned / shipped / clblast:\n",
                d ? "double" : "float", f->ok);
        for (size_t i = 0; i < cfg.nsizes; ++i)
            appendf(text, sizeof text, "#   %zux%zux%zu: %.1f / %.1f / %.1f\n", cfg.sizes[i].m,
                    cfg.sizes[i].n, cfg.sizes[i].k, gflops(cfg.sizes[i], f->win->seconds[i]),
                    gflops(cfg.sizes[i], f->list[0].seconds[i]),
                    gflops(cfg.sizes[i], f->clblast[i]));
        for (size_t i = cfg.nsizes; i < slots(&cfg); ++i) {
            static const char *const cases[4] = {"NN", "TN", "NT", "TT"};
            shape sh = slot_shape(&cfg, i);
            appendf(text, sizeof text, "#   %s %zux%zux%zu: %.1f / %.1f\n",
                    cases[slot_trans(&cfg, i)], sh.m, sh.n, sh.k, gflops(sh, f->win->seconds[i]),
                    gflops(sh, f->list[0].seconds[i]));
        }
    }
    appendf(text, sizeof text, "gpumat-tuning 1\ndevice %s\ndriver %s\nparams %s\n%s", dev.name,
            dev.driver_version, spec, body);

    if (cfg.dry_run) {
        printf("\n(dry run) would write %s:\n%s", path[0] ? path : "(no path)", text);
        return 0;
    }
    if (write_file(path, text) != 0)
        return 1;
    printf("\nwrote %s\n", path);

    /* What a fresh context makes of it. */
    unsetenv("GPUMAT_TUNING");
    gpumat_context *ctx = NULL;
    if (create(&ctx, GPUMAT_GEMM_AUTO) == GPUMAT_OK) {
        printf("a new context: %s\n", gpumat_context_tuning(ctx));
        gpumat_context_destroy(ctx);
    }
    return 0;
}
