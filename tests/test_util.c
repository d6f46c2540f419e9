/*
 * test_util.c - see test_util.h.
 */
#include "test_util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static uint64_t g_seed;

uint64_t tu_init(const char *program)
{
    const char *env = getenv("GPUMAT_TEST_SEED");
    uint64_t seed = 0;
    int from_env = 0;
    if (env && *env) {
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(env, &end, 0);
        if (errno == 0 && end && *end == '\0') {
            seed = (uint64_t)v;
            from_env = 1;
        } else {
            fprintf(stderr, "%s: ignoring unparsable GPUMAT_TEST_SEED=\"%s\"\n",
                    program ? program : "test", env);
        }
    }
    if (!from_env)
        seed = ((uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16)) & 0xffffffffffffull;
    g_seed = seed;
    printf("%s: seed: %" PRIu64 "  (reproduce with GPUMAT_TEST_SEED=%" PRIu64 ")\n",
           program ? program : "test", seed, seed);
    fflush(stdout);
    return seed;
}

uint64_t tu_seed(void) { return g_seed; }

/* splitmix64: good enough statistically and trivially reproducible. */
uint64_t tu_rng_next(tu_rng *rng)
{
    uint64_t z = (rng->state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void tu_rng_init(tu_rng *rng, uint64_t stream)
{
    rng->state = g_seed ^ (stream * 0xd1342543de82ef95ull + 0x2545f4914f6cdd1dull);
    (void)tu_rng_next(rng);
}

double tu_rng_uniform(tu_rng *rng)
{
    for (;;) {
        double x = (double)(tu_rng_next(rng) >> 11) * 0x1.0p-53; /* [0, 1) */
        x = 2.0 * x - 1.0;                                      /* [-1, 1) */
        if (fabs(x) >= 0x1.0p-20)
            return x;
    }
}

double *tu_random_host(tu_rng *rng, size_t n, gpumat_dtype dtype)
{
    double *h = malloc((n ? n : 1) * sizeof *h);
    if (!h)
        return NULL;
    for (size_t i = 0; i < n; ++i) {
        double x = tu_rng_uniform(rng);
        h[i] = dtype == GPUMAT_F32 ? (double)(float)x : x;
    }
    return h;
}

double *tu_nan_host(size_t n)
{
    double *h = malloc((n ? n : 1) * sizeof *h);
    if (!h)
        return NULL;
    for (size_t i = 0; i < n; ++i)
        h[i] = NAN;
    return h;
}

gpumat_status tu_upload(gpumat_matrix *m, const double *host)
{
    if (!m || !host)
        return gpumat_matrix_upload(m, host); /* let the library say it */
    size_t n = gpumat_matrix_rows(m) * gpumat_matrix_cols(m);
    if (gpumat_matrix_dtype(m) == GPUMAT_F64)
        return gpumat_matrix_upload(m, host);
    float *f = malloc((n ? n : 1) * sizeof *f);
    if (!f)
        return GPUMAT_ERR_OUT_OF_MEMORY;
    for (size_t i = 0; i < n; ++i)
        f[i] = (float)host[i];
    gpumat_status s = gpumat_matrix_upload(m, f);
    free(f);
    return s;
}

gpumat_status tu_download(const gpumat_matrix *m, double *host)
{
    if (!m || !host)
        return gpumat_matrix_download(m, host);
    size_t n = gpumat_matrix_rows(m) * gpumat_matrix_cols(m);
    if (gpumat_matrix_dtype(m) == GPUMAT_F64)
        return gpumat_matrix_download(m, host);
    float *f = malloc((n ? n : 1) * sizeof *f);
    if (!f)
        return GPUMAT_ERR_OUT_OF_MEMORY;
    for (size_t i = 0; i < n; ++i)
        f[i] = NAN;
    gpumat_status s = gpumat_matrix_download(m, f);
    for (size_t i = 0; i < n; ++i)
        host[i] = (double)f[i];
    free(f);
    return s;
}

gpumat_status tu_poison(gpumat_matrix *m)
{
    size_t n = gpumat_matrix_rows(m) * gpumat_matrix_cols(m);
    double *h = tu_nan_host(n);
    if (!h)
        return GPUMAT_ERR_OUT_OF_MEMORY;
    gpumat_status s = tu_upload(m, h);
    free(h);
    return s;
}

gpumat_status tu_random_matrix(gpumat_context *ctx, tu_rng *rng, size_t rows, size_t cols,
                               gpumat_dtype dtype, gpumat_matrix **m, double **host)
{
    *m = NULL;
    *host = NULL;
    gpumat_status s = gpumat_matrix_create(ctx, rows, cols, dtype, m);
    if (s != GPUMAT_OK)
        return s;
    double *h = tu_random_host(rng, rows * cols, dtype);
    if (!h) {
        gpumat_matrix_destroy(*m);
        *m = NULL;
        return GPUMAT_ERR_OUT_OF_MEMORY;
    }
    s = tu_upload(*m, h);
    if (s != GPUMAT_OK) {
        free(h);
        gpumat_matrix_destroy(*m);
        *m = NULL;
        return s;
    }
    *host = h;
    return GPUMAT_OK;
}

void tu_ref_add(const double *a, const double *b, double *c, double *scale, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        c[i] = a[i] + b[i];
        if (scale)
            scale[i] = fabs(a[i]) + fabs(b[i]);
    }
}

void tu_ref_gemm(size_t m, size_t k, size_t n, const double *a, const double *b, double *c,
                 double *scale)
{
    for (size_t i = 0; i < m; ++i) {
        double *ci = c + i * n;
        double *si = scale ? scale + i * n : NULL;
        for (size_t j = 0; j < n; ++j) {
            ci[j] = 0.0;
            if (si)
                si[j] = 0.0;
        }
        for (size_t p = 0; p < k; ++p) {
            double aip = a[i * k + p];
            double abs_aip = fabs(aip);
            const double *bp = b + p * n;
            for (size_t j = 0; j < n; ++j)
                ci[j] += aip * bp[j];
            if (si)
                for (size_t j = 0; j < n; ++j)
                    si[j] += abs_aip * fabs(bp[j]);
        }
    }
}

void tu_ref_transpose(size_t rows, size_t cols, const double *a, double *t)
{
    for (size_t i = 0; i < rows; ++i)
        for (size_t j = 0; j < cols; ++j)
            t[j * rows + i] = a[i * cols + j];
}

double tu_unit_roundoff(gpumat_dtype dtype)
{
    return dtype == GPUMAT_F64 ? 0x1.0p-53 : 0x1.0p-24;
}

double tu_add_tolerance(gpumat_dtype dtype)
{
    return 2.0 * tu_unit_roundoff(dtype);
}

static double gamma_k(double u, size_t k)
{
    double ku = (double)k * u;
    return ku / (1.0 - ku);
}

double tu_gemm_tolerance(gpumat_dtype dtype, size_t k)
{
    return 2.0 * (gamma_k(tu_unit_roundoff(dtype), k) + gamma_k(0x1.0p-53, k));
}

int tu_compare(const char *what, size_t rows, size_t cols, const double *out, const double *ref,
               const double *scale, double tol, char *msg, size_t msg_size)
{
    size_t n = rows * cols, bad = 0, worst = 0;
    double worst_ratio = -1.0;
    int worst_nonfinite = 0;
    for (size_t i = 0; i < n; ++i) {
        double err = fabs(out[i] - ref[i]);
        double bound = scale ? tol * scale[i] : 0.0;
        /* Written so that NaN (in out or err) fails: !(x <= y) is true. */
        int ok = isfinite(out[i]) && (scale ? err <= bound : out[i] == ref[i]);
        if (!ok) {
            double ratio = isfinite(err) ? (bound > 0 ? err / bound : err) : INFINITY;
            int nonfinite = !isfinite(out[i]);
            /* Report a non-finite element first, else the largest excess. */
            if (bad == 0 || (nonfinite && !worst_nonfinite) ||
                (nonfinite == worst_nonfinite && ratio > worst_ratio)) {
                worst = i;
                worst_ratio = ratio;
                worst_nonfinite = nonfinite;
            }
            ++bad;
        }
    }
    if (bad == 0)
        return 1;
    if (msg && msg_size) {
        snprintf(msg, msg_size,
                 "%s: %zu of %zu elements wrong; worst at (%zu, %zu): got %.17g, expected "
                 "%.17g, |diff| %.3g, allowed %.3g",
                 what, bad, n, cols ? worst / cols : 0, cols ? worst % cols : 0, out[worst],
                 ref[worst], fabs(out[worst] - ref[worst]),
                 scale ? tol * scale[worst] : 0.0);
    }
    return 0;
}

const char *tu_dtype_name(gpumat_dtype dtype)
{
    switch (dtype) {
    case GPUMAT_F32: return "f32";
    case GPUMAT_F64: return "f64";
    }
    return "?";
}

const char *tu_backend_name(gpumat_gemm_backend backend)
{
    switch (backend) {
    case GPUMAT_GEMM_AUTO: return "auto";
    case GPUMAT_GEMM_NATIVE: return "native";
    case GPUMAT_GEMM_CLBLAST: return "clblast";
    }
    return "?";
}

int tu_scratch_dir(char *path, size_t size, const char *prefix)
{
    const char *tmp = getenv("TMPDIR");
    int n = snprintf(path, size, "%s/%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", prefix);
    if (n < 0 || (size_t)n >= size || !mkdtemp(path)) {
        fprintf(stderr, "cannot make a scratch directory %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

void tu_remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (!S_ISDIR(st.st_mode)) {
        unlink(path);
        return;
    }
    chmod(path, 0700);
    DIR *dir = opendir(path);
    if (dir) {
        struct dirent *e;
        while ((e = readdir(dir)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            size_t len = strlen(path) + strlen(e->d_name) + 2;
            char *child = malloc(len);
            if (child) {
                snprintf(child, len, "%s/%s", path, e->d_name);
                tu_remove_tree(child);
                free(child);
            }
        }
        closedir(dir);
    }
    rmdir(path);
}

int tu_group_context_create(gpumat_context **ctx, int native)
{
    gpumat_options opt;
    gpumat_options_init(&opt);
    if (native)
        opt.gemm_backend = GPUMAT_GEMM_NATIVE;
    gpumat_status s = gpumat_context_create(ctx, &opt);
    if (s != GPUMAT_OK) {
        fprintf(stderr, "context_create: %d (%s): %s\n", (int)s, gpumat_strerror(s),
                gpumat_last_error(NULL));
        return -1;
    }
    return 0;
}

int tu_group_context_destroy(gpumat_context **ctx)
{
    gpumat_status s = gpumat_finish(*ctx);
    gpumat_context_destroy(*ctx);
    *ctx = NULL;
    if (s != GPUMAT_OK) {
        fprintf(stderr, "gpumat_finish at teardown: %d (%s): %s\n", (int)s, gpumat_strerror(s),
                gpumat_last_error(NULL));
        return -1;
    }
    return 0;
}

int tu_has_fp64(const gpumat_context *ctx)
{
    gpumat_device_info info;
    memset(&info, 0, sizeof info);
    if (gpumat_context_device(ctx, &info) != GPUMAT_OK)
        return 0;
    return info.has_fp64 != 0;
}

int tu_contains_ci(const char *haystack, const char *needle)
{
    if (!haystack || !needle)
        return 0;
    size_t hn = strlen(haystack), nn = strlen(needle);
    if (nn == 0)
        return 1;
    for (size_t i = 0; i + nn <= hn; ++i) {
        size_t j = 0;
        while (j < nn && tolower((unsigned char)haystack[i + j]) ==
                             tolower((unsigned char)needle[j]))
            ++j;
        if (j == nn)
            return 1;
    }
    return 0;
}

int tu_shard_selected(unsigned shard)
{
    const char *env = getenv("GPUMAT_TEST_SHARD");
    if (!env || !*env)
        return 1;
    unsigned i = 0, n = 0;
    char extra;
    if (sscanf(env, "%u/%u%c", &i, &n, &extra) != 2 || n == 0 || i >= n) {
        fprintf(stderr, "GPUMAT_TEST_SHARD=\"%s\": expected I/N with I < N\n", env);
        exit(2);
    }
    return shard % n == i;
}

double tu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void tu_env_save(tu_saved_env *saved, const char *name)
{
    const char *v = getenv(name);
    saved->name = name;
    saved->value = v ? strdup(v) : NULL;
}

void tu_env_restore(tu_saved_env *saved)
{
    tu_env_set(saved->name, saved->value);
    free(saved->value);
    saved->value = NULL;
}

void tu_env_set(const char *name, const char *value)
{
    if (value)
        setenv(name, value, 1);
    else
        unsetenv(name);
}

int tu_context_works(gpumat_context *ctx, gpumat_dtype dtype, tu_rng *rng, char *msg,
                     size_t msg_size)
{
    enum { M = 5, K = 7, N = 3 };
    gpumat_matrix *a = NULL, *b = NULL, *c = NULL, *d = NULL, *p = NULL, *t = NULL;
    double *ha = NULL, *hb = NULL, *hc = NULL;
    double out[M * N], ref[M * N], scale[M * N];
    double sum[M * K], sum_scale[M * K], sum_out[M * K];
    double tref[N * M], tout[N * M];
    int ok = 0;
    gpumat_status s;
    const char *step = "create";

    if ((s = tu_random_matrix(ctx, rng, M, K, dtype, &a, &ha)) != GPUMAT_OK ||
        (s = tu_random_matrix(ctx, rng, M, K, dtype, &b, &hb)) != GPUMAT_OK ||
        (s = tu_random_matrix(ctx, rng, K, N, dtype, &c, &hc)) != GPUMAT_OK ||
        (s = gpumat_matrix_create(ctx, M, K, dtype, &d)) != GPUMAT_OK ||
        (s = gpumat_matrix_create(ctx, M, N, dtype, &p)) != GPUMAT_OK ||
        (s = gpumat_matrix_create(ctx, N, M, dtype, &t)) != GPUMAT_OK)
        goto fail;

    /* d = a + b */
    step = "add";
    if ((s = tu_poison(d)) != GPUMAT_OK || (s = gpumat_add(d, a, b)) != GPUMAT_OK ||
        (s = tu_download(d, sum_out)) != GPUMAT_OK)
        goto fail;
    tu_ref_add(ha, hb, sum, sum_scale, M * K);
    if (!tu_compare("add 5x7 (context check)", M, K, sum_out, sum, sum_scale,
                    tu_add_tolerance(dtype), msg, msg_size))
        goto done;

    /* p = a * c */
    step = "multiply";
    if ((s = tu_poison(p)) != GPUMAT_OK || (s = gpumat_multiply(p, a, c)) != GPUMAT_OK ||
        (s = tu_download(p, out)) != GPUMAT_OK)
        goto fail;
    tu_ref_gemm(M, K, N, ha, hc, ref, scale);
    if (!tu_compare("multiply 5x7x3 (context check)", M, N, out, ref, scale,
                    tu_gemm_tolerance(dtype, K), msg, msg_size))
        goto done;

    /* t = transpose(p) */
    step = "transpose";
    if ((s = tu_poison(t)) != GPUMAT_OK || (s = gpumat_transpose(t, p)) != GPUMAT_OK ||
        (s = tu_download(t, tout)) != GPUMAT_OK)
        goto fail;
    tu_ref_transpose(M, N, out, tref);
    if (!tu_compare("transpose 5x3 (context check)", N, M, tout, tref, NULL, 0.0, msg,
                    msg_size))
        goto done;
    ok = 1;
    goto done;

fail:
    if (msg && msg_size)
        snprintf(msg, msg_size, "context check: %s failed with %d (%s): %s", step, (int)s,
                 gpumat_strerror(s), gpumat_last_error(NULL));
done:
    gpumat_matrix_destroy(a);
    gpumat_matrix_destroy(b);
    gpumat_matrix_destroy(c);
    gpumat_matrix_destroy(d);
    gpumat_matrix_destroy(p);
    gpumat_matrix_destroy(t);
    free(ha);
    free(hb);
    free(hc);
    return ok;
}

gpumat_status tu_gemm_prepare_typed(gpumat_context *ctx, tu_rng *rng, gpumat_dtype dtype,
                                    size_t m, size_t n, size_t k, int ta, int tb, double alpha,
                                    double beta, tu_gemm_case *g)
{
    *g = (tu_gemm_case){.ctx = ctx, .dtype = dtype, .m = m, .n = n, .k = k, .ta = ta, .tb = tb,
                        .alpha = alpha, .beta = beta};
    gpumat_status s = tu_random_matrix(ctx, rng, ta ? k : m, ta ? m : k, dtype, &g->a, &g->ha);
    if (s == GPUMAT_OK)
        s = tu_random_matrix(ctx, rng, tb ? n : k, tb ? k : n, dtype, &g->b, &g->hb);
    if (s == GPUMAT_OK && beta != 0)
        s = tu_random_matrix(ctx, rng, m, n, dtype, &g->c, &g->hc);
    else if (s == GPUMAT_OK && (s = gpumat_matrix_create(ctx, m, n, dtype, &g->c)) == GPUMAT_OK)
        s = tu_poison(g->c);
    return s;
}

gpumat_status tu_gemm_prepare(gpumat_context *ctx, tu_rng *rng, size_t m, size_t n, size_t k,
                              int ta, int tb, double alpha, double beta, tu_gemm_case *g)
{
    return tu_gemm_prepare_typed(ctx, rng, GPUMAT_F32, m, n, k, ta, tb, alpha, beta, g);
}

gpumat_status tu_gemm_run(tu_gemm_case *g)
{
    return gpumat_gemm(g->ta ? GPUMAT_TRANS : GPUMAT_NO_TRANS,
                       g->tb ? GPUMAT_TRANS : GPUMAT_NO_TRANS, g->alpha, g->a, g->b, g->beta,
                       g->c);
}

void tu_gemm_free(tu_gemm_case *g)
{
    gpumat_matrix_destroy(g->a);
    gpumat_matrix_destroy(g->b);
    gpumat_matrix_destroy(g->c);
    free(g->ha);
    free(g->hb);
    free(g->hc);
}

int tu_gemm_check(tu_gemm_case *g, gpumat_status s, char *msg, size_t msg_size)
{
    size_t m = g->m, n = g->n, k = g->k;
    int ta = g->ta, tb = g->tb;
    double alpha = g->alpha, beta = g->beta;
    int ok = 0;
    /* calloc: GCC cannot tell that the transpose or copy below fills them. */
    double *opa = calloc(m * k, sizeof *opa), *opb = calloc(k * n, sizeof *opb);
    double *out = malloc(m * n * sizeof *out), *ref = malloc(m * n * sizeof *ref);
    double *scale = malloc(m * n * sizeof *scale);
    if (s == GPUMAT_OK && !(opa && opb && out && ref && scale))
        s = GPUMAT_ERR_OUT_OF_MEMORY;
    if (s == GPUMAT_OK)
        s = tu_download(g->c, out);
    char what[96];
    snprintf(what, sizeof what, "gemm %c%c %zux%zux%zu %s alpha=%g beta=%g", ta ? 'T' : 'N',
             tb ? 'T' : 'N', m, n, k, tu_dtype_name(g->dtype), alpha, beta);
    if (s != GPUMAT_OK) {
        snprintf(msg, msg_size, "%s: %s: %s", what, gpumat_strerror(s),
                 gpumat_last_error(g->ctx));
    } else {
        if (ta)
            tu_ref_transpose(k, m, g->ha, opa);
        else
            memcpy(opa, g->ha, m * k * sizeof *opa);
        if (tb)
            tu_ref_transpose(n, k, g->hb, opb);
        else
            memcpy(opb, g->hb, k * n * sizeof *opb);
        tu_ref_gemm(m, k, n, opa, opb, ref, scale);
        for (size_t i = 0; i < m * n; ++i) {
            double cterm = beta != 0 ? beta * g->hc[i] : 0;
            ref[i] = alpha * ref[i] + cterm;
            scale[i] = fabs(alpha) * scale[i] + fabs(cterm);
        }
        ok = tu_compare(what, m, n, out, ref, scale, tu_gemm_tolerance(g->dtype, k + 2), msg,
                        msg_size);
    }
    tu_gemm_free(g);
    free(opa);
    free(opb);
    free(out);
    free(ref);
    free(scale);
    return ok;
}

int tu_check_gemm_typed(gpumat_context *ctx, tu_rng *rng, gpumat_dtype dtype, size_t m,
                        size_t n, size_t k, int ta, int tb, double alpha, double beta, char *msg,
                        size_t msg_size)
{
    tu_gemm_case g;
    gpumat_status s =
        tu_gemm_prepare_typed(ctx, rng, dtype, m, n, k, ta, tb, alpha, beta, &g);
    if (s == GPUMAT_OK)
        s = tu_gemm_run(&g);
    return tu_gemm_check(&g, s, msg, msg_size);
}

int tu_check_gemm(gpumat_context *ctx, tu_rng *rng, size_t m, size_t n, size_t k, int ta,
                  int tb, double alpha, double beta, char *msg, size_t msg_size)
{
    return tu_check_gemm_typed(ctx, rng, GPUMAT_F32, m, n, k, ta, tb, alpha, beta, msg, msg_size);
}
