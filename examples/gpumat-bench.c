/*
 * gpumat-bench - times libgpumat against CLBlast and against the device's
 * copy bandwidth, side by side, on one device in one run.
 *
 *   gpumat-bench [--quick] [--sizes N,N,...]
 *                [--ops gemm,dgemm,gemm-t,dgemm-t,add,transpose,copy,transfer,start]
 *                (sgemm, sgemm-t: the same as gemm, gemm-t)
 *                [--runs N] [--csv FILE] [--peak-tflops F] [--peak-dp-tflops F]
 *                [--openblas | --no-openblas] [--no-clblast]
 *
 * Each figure is the median of --runs timed trials after a warm-up; a trial
 * enqueues enough repetitions to last >= 20 ms, then waits for the device
 * (gpumat_finish) before the clock is read.  GEMM shapes are M x N x K.
 * On a CPU device (or with --openblas) OpenBLAS's cblas_?gemm on the host is
 * timed beside each GEMM as the CPU reference.
 */
#define _POSIX_C_SOURCE 200809L
#include <gpumat.h>

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct shape {
    size_t m, n, k;
} shape;

typedef struct config {
    int runs;
    const char *csv_path;
    int quick;
    int openblas; /* also time OpenBLAS on the host (default: when the device is a CPU) */
    int no_clblast; /* native alone (quick experiments: CLBlast on a CPU takes minutes) */
    FILE *csv;
    double peak_sp, peak_dp; /* TFLOP/s; 0 = unknown */
    const char *ops;
    shape sizes[64];
    size_t nsizes;
    int sizes_given; /* --sizes: the transposed cases take these shapes too */
} config;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void die(const char *what, gpumat_status s, const gpumat_context *ctx)
{
    fprintf(stderr, "gpumat-bench: %s: %s\n  %s\n", what, gpumat_strerror(s),
            gpumat_last_error(ctx));
    exit(1);
}

#define CHECK(call, ctx)                                                                     \
    do {                                                                                     \
        gpumat_status s_ = (call);                                                           \
        if (s_ != GPUMAT_OK)                                                                 \
            die(#call, s_, ctx);                                                             \
    } while (0)

/* ---- OpenBLAS, the CPU reference when the device is a CPU (PoCL) -------- */

/* cblas_?gemm with CblasRowMajor = 101, CblasNoTrans = 111, CblasTrans = 112
 * and 32-bit integers (Debian's libopenblas0). */
typedef void (*cblas_sgemm_fn)(int, int, int, int, int, int, float, const float *, int,
                               const float *, int, float, float *, int);
typedef void (*cblas_dgemm_fn)(int, int, int, int, int, int, double, const double *, int,
                               const double *, int, double, double *, int);
static cblas_sgemm_fn openblas_sgemm;
static cblas_dgemm_fn openblas_dgemm;

static void load_openblas(void)
{
    void *h = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        h = dlopen("libopenblas.so", RTLD_NOW | RTLD_LOCAL);
    if (h) {
        void *f = dlsym(h, "cblas_sgemm"), *g = dlsym(h, "cblas_dgemm");
        memcpy(&openblas_sgemm, &f, sizeof f);
        memcpy(&openblas_dgemm, &g, sizeof g);
    }
}

typedef struct host_gemm_arg {
    int f64, ta, tb, m, n, k;
    void *a, *b, *c;
} host_gemm_arg;

static void run_openblas(void *p)
{
    const host_gemm_arg *g = p;
    int lda = g->ta ? g->m : g->k, ldb = g->tb ? g->k : g->n;
    int ta = g->ta ? 112 : 111, tb = g->tb ? 112 : 111;
    if (g->f64)
        openblas_dgemm(101, ta, tb, g->m, g->n, g->k, 1.0, g->a, lda, g->b, ldb, 0.0, g->c, g->n);
    else
        openblas_sgemm(101, ta, tb, g->m, g->n, g->k, 1.0f, g->a, lda, g->b, ldb, 0.0f, g->c, g->n);
}

/* ---- CLBlast's transpose, for comparison (loaded like the library does) -- */

typedef int (*omatcopy_fn)(int layout, int trans, size_t m, size_t n, float alpha, cl_mem a,
                           size_t a_off, size_t lda, cl_mem b, size_t b_off, size_t ldb,
                           cl_command_queue *queue, cl_event *event);
static omatcopy_fn clblast_somatcopy;

static void load_clblast(void)
{
    void *h = dlopen("libclblast.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        h = dlopen("libclblast.so", RTLD_NOW | RTLD_LOCAL);
    if (h) {
        void *f = dlsym(h, "CLBlastSomatcopy");
        memcpy(&clblast_somatcopy, &f, sizeof f);
    }
}

/* ---- timing --------------------------------------------------------------- */

typedef void (*op_fn)(void *arg);

/* Median seconds per call of fn over cfg->runs trials. */
static double time_op(const config *cfg, gpumat_context *ctx, op_fn fn, void *arg)
{
    fn(arg); /* warm-up: kernel build, first-touch allocation */
    if (ctx)
        CHECK(gpumat_finish(ctx), ctx);
    double t0 = now();
    fn(arg);
    if (ctx)
        CHECK(gpumat_finish(ctx), ctx);
    double once = now() - t0;
    int reps = once > 0.02 ? 1 : (int)(0.02 / (once > 1e-6 ? once : 1e-6)) + 1;
    if (reps > 1000)
        reps = 1000;
    double *t = malloc((size_t)cfg->runs * sizeof *t);
    for (int r = 0; r < cfg->runs; ++r) {
        t0 = now();
        for (int i = 0; i < reps; ++i)
            fn(arg);
        if (ctx)
            CHECK(gpumat_finish(ctx), ctx);
        t[r] = (now() - t0) / reps;
    }
    qsort(t, (size_t)cfg->runs, sizeof *t, cmp_double);
    double median = t[cfg->runs / 2];
    free(t);
    return median;
}

typedef struct gemm_arg {
    gpumat_op ta, tb;
    gpumat_matrix *a, *b, *c;
} gemm_arg;

static void run_gemm(void *p)
{
    gemm_arg *g = p;
    CHECK(gpumat_gemm(g->ta, g->tb, 1.0, g->a, g->b, 0.0, g->c), gpumat_matrix_context(g->c));
}

typedef struct pair_arg {
    gpumat_matrix *a, *b, *c;
    gpumat_context *ctx;
} pair_arg;

static void run_add(void *p)
{
    pair_arg *g = p;
    CHECK(gpumat_add(g->c, g->a, g->b), g->ctx);
}

static void run_transpose(void *p)
{
    pair_arg *g = p;
    CHECK(gpumat_transpose(g->c, g->a), g->ctx);
}

static void run_gpumat_copy(void *p)
{
    pair_arg *g = p;
    CHECK(gpumat_copy(g->c, g->a), g->ctx);
}

static void run_copy(void *p)
{
    pair_arg *g = p;
    size_t bytes = gpumat_matrix_rows(g->a) * gpumat_matrix_cols(g->a) *
                   gpumat_dtype_size(gpumat_matrix_dtype(g->a));
    cl_int err = clEnqueueCopyBuffer(gpumat_context_cl_queue(g->ctx), gpumat_matrix_cl_mem(g->a),
                                     gpumat_matrix_cl_mem(g->c), 0, 0, bytes, 0, NULL, NULL);
    if (err != CL_SUCCESS) {
        fprintf(stderr, "gpumat-bench: clEnqueueCopyBuffer: %d\n", err);
        exit(1);
    }
}

static void run_clblast_transpose(void *p)
{
    pair_arg *g = p;
    cl_command_queue q = gpumat_context_cl_queue(g->ctx);
    size_t r = gpumat_matrix_rows(g->a), c = gpumat_matrix_cols(g->a);
    int code = clblast_somatcopy(101, 112, r, c, 1.0f, gpumat_matrix_cl_mem(g->a), 0, c,
                                 gpumat_matrix_cl_mem(g->c), 0, r, &q, NULL);
    if (code != 0) {
        fprintf(stderr, "gpumat-bench: CLBlastSomatcopy: %d\n", code);
        exit(1);
    }
}

/* ---- data ------------------------------------------------------------------ */

static gpumat_matrix *random_matrix(gpumat_context *ctx, size_t rows, size_t cols,
                                    gpumat_dtype dtype, unsigned *seed)
{
    gpumat_matrix *m;
    CHECK(gpumat_matrix_create(ctx, rows, cols, dtype, &m), ctx);
    size_t n = rows * cols, es = gpumat_dtype_size(dtype);
    unsigned char *host = malloc(n * es);
    if (!host) {
        fprintf(stderr, "gpumat-bench: out of host memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; ++i) {
        *seed = *seed * 1664525u + 1013904223u;
        double v = (double)(*seed >> 8) / (double)(1u << 24) * 2 - 1;
        if (dtype == GPUMAT_F32)
            ((float *)host)[i] = (float)v;
        else
            ((double *)host)[i] = v;
    }
    CHECK(gpumat_matrix_upload(m, host), ctx);
    free(host);
    return m;
}

static void row(const config *cfg, const char *op, const char *shape_text, const char *impl,
                double seconds, double work, const char *unit, double peak)
{
    double rate = work / seconds / (unit[0] == 'T' ? 1e12 : 1e9);
    if (unit[0] == 'T' && rate < 1) { /* CPUs: GFLOP/s reads better */
        rate *= 1e3;
        peak *= 1e3;
        unit = "GFLOP/s";
    }
    char pct[32] = "", share[32] = "";
    if (peak > 0) {
        snprintf(pct, sizeof pct, "%5.1f%%", 100 * rate / peak);
        snprintf(share, sizeof share, "%.2f", 100 * rate / peak);
    }
    printf("%-10s %-20s %-8s %10.3f ms %9.2f %-7s %s\n", op, shape_text, impl, seconds * 1e3, rate,
           unit, pct);
    if (cfg->csv) /* pct_peak empty where the peak is unknown */
        fprintf(cfg->csv, "%s,%s,%s,%.6f,%.4f,%s,%s\n", op, shape_text, impl, seconds * 1e3, rate,
                unit, share);
    fflush(stdout);
}

/* ---- benchmarks -------------------------------------------------------------- */

typedef struct transfer_arg {
    gpumat_matrix *m;
    void *host;
    int down;
} transfer_arg;

static void run_transfer(void *p)
{
    transfer_arg *t = p;
    gpumat_context *ctx = gpumat_matrix_context(t->m);
    if (t->down)
        CHECK(gpumat_matrix_download(t->m, t->host), ctx);
    else
        CHECK(gpumat_matrix_upload(t->m, t->host), ctx);
}

/* Host <-> device rate for `bytes`, from ordinary malloc'd memory (through
 * the library's staging) and from gpumat_host_alloc() memory. */
typedef struct host_copy_arg {
    void *dst;
    const void *src;
    size_t bytes;
} host_copy_arg;

static void run_host_copy(void *p)
{
    const host_copy_arg *h = p;
    memcpy(h->dst, h->src, h->bytes);
}

static void bench_transfer(const config *cfg, gpumat_context *ctx, size_t bytes)
{
    char text[64];
    snprintf(text, sizeof text, "%zu MB", bytes >> 20);
    gpumat_matrix *m;
    CHECK(gpumat_matrix_create(ctx, 1, bytes / 4, GPUMAT_F32, &m), ctx);
    void *pageable = malloc(bytes), *pinned = NULL;
    if (!pageable) {
        fprintf(stderr, "gpumat-bench: out of host memory\n");
        exit(1);
    }
    memset(pageable, 1, bytes); /* touch every page: first-touch faults are not the bus */
    CHECK(gpumat_host_alloc(ctx, bytes, &pinned), ctx);
    memset(pinned, 1, bytes);
    /* One core's memcpy from pageable memory: the rate a driver's (or a
     * single-threaded) staging copy can reach at best. */
    host_copy_arg hc = {pinned, pageable, bytes};
    row(cfg, "memcpy", text, "1 thread", time_op(cfg, NULL, run_host_copy, &hc), (double)bytes,
        "GB/s", 0);
    const char *what[2] = {"upload", "download"};
    for (int down = 0; down < 2; ++down) {
        transfer_arg t = {m, pageable, down};
        row(cfg, what[down], text, "pageable", time_op(cfg, ctx, run_transfer, &t), (double)bytes,
            "GB/s", 0);
        t.host = pinned;
        row(cfg, what[down], text, "pinned", time_op(cfg, ctx, run_transfer, &t), (double)bytes,
            "GB/s", 0);
    }
    CHECK(gpumat_host_free(ctx, pinned), ctx);
    free(pageable);
    gpumat_matrix_destroy(m);
}

/* Context creation + the first 1000x1000 multiply, with the kernel cache
 * empty (cold) and filled (warm), each in a fresh process so that driver
 * start-up counts as it would for a user's program.  The cold run also
 * turns off the drivers' own compile caches (NVIDIA's, PoCL's), which
 * would otherwise hide the compile a first-time user waits for. */
static void bench_start(const config *cfg, const char *self)
{
    char dir[] = "/tmp/gpumat-bench-cache-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return;
    }
    /* The second warm run also finds the driver's own caches filled (the
     * cold run turned them off): the steady state of a program's start. */
    const char *phase[3] = {"cold cache", "warm cache", "warm, 2nd run"};
    for (int i = 0; i < 3; ++i) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "%sGPUMAT_CACHE_DIR='%s' '%s' --start-child",
                 i == 0 ? "CUDA_CACHE_DISABLE=1 POCL_KERNEL_CACHE=0 " : "", dir, self);
        FILE *p = popen(cmd, "r");
        double total = -1, ctx_ms = -1, build_ms = -1;
        if (p) {
            if (fscanf(p, "%lf %lf %lf", &total, &ctx_ms, &build_ms) != 3)
                total = -1;
            pclose(p);
        }
        printf("%-10s %-20s %-8s %10.3f ms  (context %.1f ms, kernel build/load %.1f ms)\n",
               "start", phase[i], "native", total, ctx_ms, build_ms);
        if (cfg->csv)
            fprintf(cfg->csv, "start,%s,native,%.3f,%.3f,ms\n", phase[i], total, build_ms);
    }
}

static int start_child(void)
{
    enum { N = 1000 };
    float *host = malloc((size_t)N * N * sizeof *host);
    if (!host)
        return 1;
    for (size_t i = 0; i < (size_t)N * N; ++i)
        host[i] = (float)((i * 7919u) % 2001u) / 1000.0f - 1.0f;
    /* Timed: what a program pays from start to its first product. */
    double t0 = now();
    gpumat_context *ctx;
    gpumat_matrix *a, *b, *c;
    CHECK(gpumat_context_create(&ctx, NULL), NULL);
    double t_ctx = now();
    CHECK(gpumat_matrix_create(ctx, N, N, GPUMAT_F32, &a), ctx);
    CHECK(gpumat_matrix_create(ctx, N, N, GPUMAT_F32, &b), ctx);
    CHECK(gpumat_matrix_create(ctx, N, N, GPUMAT_F32, &c), ctx);
    CHECK(gpumat_matrix_upload(a, host), ctx);
    CHECK(gpumat_matrix_upload(b, host), ctx);
    CHECK(gpumat_multiply(c, a, b), ctx);
    CHECK(gpumat_finish(ctx), ctx);
    double t1 = now();
    gpumat_build_stats st;
    CHECK(gpumat_context_build_stats(ctx, &st), ctx);
    printf("%.3f %.3f %.3f\n", (t1 - t0) * 1e3, (t_ctx - t0) * 1e3, st.build_seconds * 1e3);
    gpumat_matrix_destroy(a);
    gpumat_matrix_destroy(b);
    gpumat_matrix_destroy(c);
    gpumat_context_destroy(ctx);
    free(host);
    return 0;
}

static void bench_gemm(const config *cfg, gpumat_context *nat, gpumat_context *blas,
                       gpumat_dtype dtype, gpumat_op ta, gpumat_op tb, shape s)
{
    unsigned seed = 12345;
    char text[64];
    const char *op = dtype == GPUMAT_F64 ? "dgemm" : "sgemm";
    char opname[16];
    snprintf(opname, sizeof opname, "%s-%c%c", op, ta ? 'T' : 'N', tb ? 'T' : 'N');
    snprintf(text, sizeof text, "%zux%zux%zu", s.m, s.n, s.k);
    double flops = 2.0 * (double)s.m * (double)s.n * (double)s.k;
    double peak = dtype == GPUMAT_F64 ? cfg->peak_dp : cfg->peak_sp;
    gpumat_context *ctxs[2] = {nat, blas};
    const char *names[2] = {"native", "clblast"};
    for (int i = 0; i < 2; ++i) {
        if (!ctxs[i])
            continue;
        gemm_arg g = {ta, tb, NULL, NULL, NULL};
        g.a = ta ? random_matrix(ctxs[i], s.k, s.m, dtype, &seed)
                 : random_matrix(ctxs[i], s.m, s.k, dtype, &seed);
        g.b = tb ? random_matrix(ctxs[i], s.n, s.k, dtype, &seed)
                 : random_matrix(ctxs[i], s.k, s.n, dtype, &seed);
        CHECK(gpumat_matrix_create(ctxs[i], s.m, s.n, dtype, &g.c), ctxs[i]);
        double t = time_op(cfg, ctxs[i], run_gemm, &g);
        row(cfg, opname, text, names[i], t, flops, "TFLOP/s", peak);
        gpumat_matrix_destroy(g.a);
        gpumat_matrix_destroy(g.b);
        gpumat_matrix_destroy(g.c);
    }
    if (cfg->openblas && openblas_sgemm && openblas_dgemm && s.m <= 8192 && s.n <= 8192 &&
        s.k <= 8192) {
        size_t es = dtype == GPUMAT_F64 ? sizeof(double) : sizeof(float);
        host_gemm_arg h = {dtype == GPUMAT_F64, ta != GPUMAT_NO_TRANS, tb != GPUMAT_NO_TRANS,
                           (int)s.m, (int)s.n, (int)s.k, NULL, NULL, NULL};
        h.a = malloc(s.m * s.k * es);
        h.b = malloc(s.k * s.n * es);
        h.c = malloc(s.m * s.n * es);
        if (h.a && h.b && h.c) {
            for (size_t i = 0; i < s.m * s.k * es; ++i)
                ((unsigned char *)h.a)[i] = 0x3c; /* finite, nonzero: no denormal slow paths */
            for (size_t i = 0; i < s.k * s.n * es; ++i)
                ((unsigned char *)h.b)[i] = 0x3c;
            row(cfg, opname, text, "openblas", time_op(cfg, NULL, run_openblas, &h), flops,
                "TFLOP/s", 0);
        }
        free(h.a);
        free(h.b);
        free(h.c);
    }
}

static void bench_memory(const config *cfg, gpumat_context *ctx, const char *op, size_t rows,
                         size_t cols)
{
    unsigned seed = 777;
    char text[64];
    snprintf(text, sizeof text, "%zux%zu", rows, cols);
    pair_arg g = {NULL, NULL, NULL, ctx};
    g.a = random_matrix(ctx, rows, cols, GPUMAT_F32, &seed);
    double bytes = (double)rows * (double)cols * 4;
    if (!strcmp(op, "add")) {
        g.b = random_matrix(ctx, rows, cols, GPUMAT_F32, &seed);
        CHECK(gpumat_matrix_create(ctx, rows, cols, GPUMAT_F32, &g.c), ctx);
        row(cfg, "add", text, "native", time_op(cfg, ctx, run_add, &g), 3 * bytes, "GB/s", 0);
    } else if (!strcmp(op, "copy")) {
        CHECK(gpumat_matrix_create(ctx, rows, cols, GPUMAT_F32, &g.c), ctx);
        row(cfg, "copy", text, "native", time_op(cfg, ctx, run_gpumat_copy, &g), 2 * bytes,
            "GB/s", 0);
        row(cfg, "copy", text, "opencl", time_op(cfg, ctx, run_copy, &g), 2 * bytes, "GB/s", 0);
    } else {
        CHECK(gpumat_matrix_create(ctx, cols, rows, GPUMAT_F32, &g.c), ctx);
        row(cfg, "transpose", text, "native", time_op(cfg, ctx, run_transpose, &g), 2 * bytes,
            "GB/s", 0);
        if (clblast_somatcopy)
            row(cfg, "transpose", text, "clblast", time_op(cfg, ctx, run_clblast_transpose, &g),
                2 * bytes, "GB/s", 0);
    }
    gpumat_matrix_destroy(g.a);
    gpumat_matrix_destroy(g.b);
    gpumat_matrix_destroy(g.c);
}

static int listed(const char *list, const char *op)
{
    size_t len = strlen(op);
    for (const char *p = list; (p = strstr(p, op)) != NULL; p += len)
        if ((p == list || p[-1] == ',') && (p[len] == ',' || p[len] == '\0'))
            return 1;
    return 0;
}

/* "sgemm" and "sgemm-t", the names the float rows print, stand for
 * "gemm" and "gemm-t". */
static int wants(const config *cfg, const char *op)
{
    if (listed(cfg->ops, op))
        return 1;
    return (!strcmp(op, "gemm") && listed(cfg->ops, "sgemm")) ||
           (!strcmp(op, "gemm-t") && listed(cfg->ops, "sgemm-t"));
}

#define KNOWN_OPS "gemm,sgemm,dgemm,gemm-t,sgemm-t,dgemm-t,add,transpose,copy,transfer,start"

/* The first name in --ops that is no op, or NULL: an unknown name would
 * otherwise time nothing and look like a result. */
static const char *unknown_op(const char *ops, char *buf, size_t size)
{
    for (const char *p = ops; *p;) {
        size_t len = strcspn(p, ",");
        snprintf(buf, size, "%.*s", (int)len, p);
        if (len == 0 || len >= size || !listed(KNOWN_OPS, buf))
            return buf;
        p += len + (p[len] == ',');
    }
    return NULL;
}

static void parse_sizes(config *cfg, const char *text)
{
    cfg->nsizes = 0;
    while (*text && cfg->nsizes < 64) {
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
        text = *end ? end + 1 : end;
    }
}

/* Datasheet peaks (FP32 / FP64 SIMT, TFLOP/s, boost clock) of cards we
 * know, by the first fragment of the device name that matches (NVIDIA's
 * names: "NVIDIA H100 PCIe", "NVIDIA A100-SXM4-80GB"): the PCIe and NVL
 * boards of a chip run fewer SMs or lower clocks than its SXM one.  AMD's
 * OpenCL names the chip (gfx942 is MI300X and MI300A), so none is listed.
 * --peak-tflops / --peak-dp-tflops override; unknown devices print no
 * share of peak. */
static void guess_peak(config *cfg, const gpumat_device_info *d)
{
    static const struct {
        const char *name;
        double sp, dp;
    } cards[] = {
        {"H100 PCIe", 51.2, 25.6}, {"H100 NVL", 60.0, 30.0}, {"H100", 67.0, 33.5},
        {"H200 NVL", 60.0, 30.0},  {"H200", 67.0, 33.5},     {"A100-", 19.5, 9.7},
        {"A100 ", 19.5, 9.7},      {"A800-", 19.5, 9.7},     {"A800 ", 19.5, 9.7},
        {"L40S", 91.6, 1.4},
    };
    for (size_t i = 0; i < sizeof cards / sizeof cards[0]; ++i)
        if (strstr(d->name, cards[i].name)) {
            if (cfg->peak_sp <= 0)
                cfg->peak_sp = cards[i].sp;
            if (cfg->peak_dp <= 0)
                cfg->peak_dp = cards[i].dp;
            return;
        }
}

int main(int argc, char **argv)
{
    config cfg = {.runs = 7, .ops = "gemm,dgemm,gemm-t,dgemm-t,add,transpose,copy,transfer,start"};
    const char *sizes = "64,128,256,512,1000,1024,2048,4096,8192,1023x777x1531,4097,8192x64x8192,"
                        "64x8192x64,256x256x16384";
    if (argc == 2 && !strcmp(argv[1], "--start-child"))
        return start_child();
    for (int i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--quick")) {
            cfg.quick = 1;
            sizes = "64,128,256,512,1000,1023x777x1531";
            cfg.runs = 3;
        } else if (!strcmp(argv[i], "--sizes") && i + 1 < argc) {
            sizes = argv[++i];
            cfg.sizes_given = 1;
        }
        else if (!strcmp(argv[i], "--ops") && i + 1 < argc)
            cfg.ops = argv[++i];
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            cfg.runs = atoi(argv[++i]) > 0 ? atoi(argv[i]) : 1;
        else if (!strcmp(argv[i], "--csv") && i + 1 < argc) {
            /* The last --csv wins (make bench passes one before the user's):
             * the earlier file, which holds only the header, goes. */
            if (cfg.csv) {
                fclose(cfg.csv);
                remove(cfg.csv_path);
            }
            cfg.csv_path = argv[i + 1];
            cfg.csv = fopen(argv[++i], "w");
            if (!cfg.csv) {
                perror(argv[i]);
                return 1;
            }
            fprintf(cfg.csv, "op,shape,impl,ms,rate,unit,pct_peak\n");
        } else if (!strcmp(argv[i], "--peak-tflops") && i + 1 < argc)
            cfg.peak_sp = atof(argv[++i]);
        else if (!strcmp(argv[i], "--peak-dp-tflops") && i + 1 < argc)
            cfg.peak_dp = atof(argv[++i]);
        else if (!strcmp(argv[i], "--openblas"))
            cfg.openblas = 1;
        else if (!strcmp(argv[i], "--no-openblas"))
            cfg.openblas = -1;
        else if (!strcmp(argv[i], "--no-clblast"))
            cfg.no_clblast = 1;
        else {
            fprintf(stderr, "usage: gpumat-bench [--quick] [--sizes N,MxNxK,...] [--ops LIST] "
                            "[--runs N] [--csv FILE] [--peak-tflops F] [--peak-dp-tflops F]\n"
                            "                    [--openblas | --no-openblas] [--no-clblast]\n");
            return 2;
        }
    }
    char bad[32];
    if (unknown_op(cfg.ops, bad, sizeof bad)) {
        fprintf(stderr, "gpumat-bench: --ops: unknown op \"%s\" (known: %s)\n", bad, KNOWN_OPS);
        return 2;
    }
    parse_sizes(&cfg, sizes);
    if (cfg.nsizes == 0) {
        fprintf(stderr, "gpumat-bench: --sizes: no size in \"%s\" (N or MxNxK, comma-separated)\n",
                sizes);
        return 2;
    }
    load_clblast();

    gpumat_options o;
    gpumat_options_init(&o);
    o.gemm_backend = GPUMAT_GEMM_NATIVE;
    gpumat_context *nat = NULL, *blas = NULL;
    CHECK(gpumat_context_create(&nat, &o), NULL);
    o.gemm_backend = GPUMAT_GEMM_CLBLAST;
    /* CLBlast runs on the very same OpenCL context and queue. */
    if (cfg.no_clblast)
        blas = NULL;
    else if (gpumat_context_wrap(&blas, gpumat_context_cl_context(nat),
                                 gpumat_context_cl_queue(nat), &o) != GPUMAT_OK)
        fprintf(stderr, "gpumat-bench: no CLBlast comparison: %s\n", gpumat_last_error(NULL));
    gpumat_device_info d;
    gpumat_context_device(nat, &d);
    guess_peak(&cfg, &d);
    /* On a CPU device, OpenBLAS on the same cores is the reference to beat. */
    if (cfg.openblas == 0)
        cfg.openblas = d.type == GPUMAT_DEVICE_CPU;
    cfg.openblas = cfg.openblas > 0;
    if (cfg.openblas)
        load_openblas();
    if (cfg.openblas && !openblas_sgemm)
        fprintf(stderr, "gpumat-bench: no OpenBLAS comparison: libopenblas.so.0 not found "
                        "(apt-get install libopenblas0)\n");
    printf("device: %s | %s | driver %s | profile %s\n", d.name, d.platform_name,
           d.driver_version, gpumat_context_profile(nat));
    printf("peak: FP32 %.1f TFLOP/s, FP64 %.1f TFLOP/s (0 = unknown); median of %d runs\n\n",
           cfg.peak_sp, cfg.peak_dp, cfg.runs);
    printf("%-10s %-20s %-8s %13s %9s %-7s %s\n", "op", "shape", "impl", "time", "rate", "unit",
           "of peak");

    for (size_t i = 0; i < cfg.nsizes; ++i)
        if (wants(&cfg, "gemm"))
            bench_gemm(&cfg, nat, blas, GPUMAT_F32, GPUMAT_NO_TRANS, GPUMAT_NO_TRANS, cfg.sizes[i]);
    /* The transposed cases: three shapes unless --sizes names others. */
    static const shape t[] = {{1024, 1024, 1024}, {4096, 4096, 4096}, {1023, 777, 1531}};
    static const shape quick_t[] = {{256, 256, 256}};
    const shape *tshapes = cfg.sizes_given ? cfg.sizes : cfg.quick ? quick_t : t;
    size_t ntshapes = cfg.sizes_given ? cfg.nsizes : cfg.quick ? 1 : 3;
    for (int f64 = 0; f64 < 2; ++f64)
        if (wants(&cfg, f64 ? "dgemm-t" : "gemm-t") && (!f64 || d.has_fp64))
            for (size_t i = 0; i < ntshapes; ++i)
                for (int c = 1; c < 4; ++c)
                    bench_gemm(&cfg, nat, blas, f64 ? GPUMAT_F64 : GPUMAT_F32,
                               c & 1 ? GPUMAT_TRANS : GPUMAT_NO_TRANS,
                               c & 2 ? GPUMAT_TRANS : GPUMAT_NO_TRANS, tshapes[i]);
    if (wants(&cfg, "dgemm") && d.has_fp64)
        for (size_t i = 0; i < cfg.nsizes; ++i)
            if (!cfg.quick || cfg.sizes[i].m <= 512)
                bench_gemm(&cfg, nat, blas, GPUMAT_F64, GPUMAT_NO_TRANS, GPUMAT_NO_TRANS,
                           cfg.sizes[i]);
    size_t mem[][2] = {{4096, 4096}, {8192, 8192}, {8191, 4097}, {1, 16777216}, {16777216, 1}};
    size_t quick_mem[][2] = {{1024, 1024}, {1023, 777}};
    size_t nmem = cfg.quick ? 2 : 5;
    const char *mem_ops[] = {"copy", "add", "transpose"};
    for (size_t o2 = 0; o2 < 3; ++o2)
        if (wants(&cfg, mem_ops[o2]))
            for (size_t i = 0; i < nmem; ++i) {
                size_t *rc = cfg.quick ? quick_mem[i] : mem[i];
                bench_memory(&cfg, nat, mem_ops[o2], rc[0], rc[1]);
            }
    if (wants(&cfg, "transfer"))
        bench_transfer(&cfg, nat, cfg.quick ? (size_t)64 << 20 : (size_t)256 << 20);
    if (wants(&cfg, "start"))
        bench_start(&cfg, argv[0]);
    /* Device-specific rewrites of the kernels just timed: a rewrite that
     * stopped being kept shows here, not only as a slower table. */
    char notes[512];
    CHECK(gpumat_context_kernel_notes(nat, notes, sizeof notes), nat);
    if (notes[0])
        printf("\nkernels:\n%s\n", notes);
    gpumat_context_destroy(blas);
    gpumat_context_destroy(nat);
    if (cfg.csv) {
        fclose(cfg.csv);
        printf("\nCSV: %s\n", cfg.csv_path);
    }
    return 0;
}
