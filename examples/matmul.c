/*
 * matmul - the libgpumat demo: multiplies two random n x n float matrices
 * (n = 1000 unless given) on the best OpenCL device present, and reports
 * where the time went and how far the result is from a CPU reference.
 *
 *   matmul [n]
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <gpumat.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int check(gpumat_status status, const gpumat_context *ctx, const char *what)
{
    if (status == GPUMAT_OK)
        return 0;
    fprintf(stderr, "matmul: %s: %s\n  %s\n", what, gpumat_strerror(status),
            gpumat_last_error(ctx));
    return 1;
}

/* Largest |c - ref| over the largest |ref|: a scale-aware relative error. */
static double relative_error(const float *a, const float *b, const float *c, size_t n)
{
    double worst = 0, scale = 0;
    double *row = malloc(n * sizeof *row);
    if (!row)
        return INFINITY;
    for (size_t i = 0; i < n; ++i) {
        for (size_t j = 0; j < n; ++j)
            row[j] = 0;
        for (size_t k = 0; k < n; ++k) {
            double aik = a[i * n + k];
            for (size_t j = 0; j < n; ++j)
                row[j] += aik * b[k * n + j];
        }
        for (size_t j = 0; j < n; ++j) {
            double d = fabs(row[j] - c[i * n + j]);
            if (d > worst || d != d)
                worst = d != d ? INFINITY : d;
            if (fabs(row[j]) > scale)
                scale = fabs(row[j]);
        }
    }
    free(row);
    return worst / (scale > 0 ? scale : 1);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 1000;
    if (n == 0) {
        fprintf(stderr, "usage: matmul [n]\n");
        return 2;
    }
    unsigned seed = (unsigned)time(NULL);
    srand(seed);
    float *a = malloc(n * n * sizeof *a), *b = malloc(n * n * sizeof *b),
          *c = malloc(n * n * sizeof *c);
    if (!a || !b || !c) {
        fprintf(stderr, "matmul: out of host memory\n");
        return 1;
    }
    for (size_t i = 0; i < n * n; ++i) {
        a[i] = (float)rand() / (float)RAND_MAX * 2 - 1;
        b[i] = (float)rand() / (float)RAND_MAX * 2 - 1;
    }

    gpumat_context *ctx = NULL;
    gpumat_matrix *ma = NULL, *mb = NULL, *mc = NULL;
    double t0 = now();
    if (check(gpumat_context_create(&ctx, NULL), NULL, "creating a context"))
        return 1;
    double t_ctx = now() - t0;
    gpumat_device_info dev;
    gpumat_context_device(ctx, &dev);
    printf("device:   %s (%s, %s %s), profile %s, GEMM backend %s\n", dev.name, dev.platform_name,
           gpumat_vendor_name(dev.vendor), gpumat_device_type_name(dev.type),
           gpumat_context_profile(ctx),
           gpumat_context_gemm_backend_for(ctx, GPUMAT_F32, n, n, n) == GPUMAT_GEMM_CLBLAST ? "CLBlast"
                                                                                : "native");
    printf("problem:  %zu x %zu times %zu x %zu, float, seed %u\n", n, n, n, n, seed);

    int failed = check(gpumat_matrix_create(ctx, n, n, GPUMAT_F32, &ma), ctx, "matrix_create") ||
                 check(gpumat_matrix_create(ctx, n, n, GPUMAT_F32, &mb), ctx, "matrix_create") ||
                 check(gpumat_matrix_create(ctx, n, n, GPUMAT_F32, &mc), ctx, "matrix_create");
    double t_up = 0, t_first = 0, t_compute = 0, t_down = 0;
    const int runs = 5;
    if (!failed) {
        t0 = now();
        failed = check(gpumat_matrix_upload(ma, a), ctx, "upload") ||
                 check(gpumat_matrix_upload(mb, b), ctx, "upload") ||
                 check(gpumat_finish(ctx), ctx, "finish");
        t_up = now() - t0;
    }
    if (!failed) {
        /* The first call builds the kernel; time it apart from the rest. */
        t0 = now();
        failed = check(gpumat_multiply(mc, ma, mb), ctx, "multiply") ||
                 check(gpumat_finish(ctx), ctx, "finish");
        t_first = now() - t0;
    }
    for (int r = 0; r < runs && !failed; ++r) {
        t0 = now();
        failed = check(gpumat_multiply(mc, ma, mb), ctx, "multiply") ||
                 check(gpumat_finish(ctx), ctx, "finish");
        double t = now() - t0;
        if (r == 0 || t < t_compute)
            t_compute = t;
    }
    if (!failed) {
        t0 = now();
        failed = check(gpumat_matrix_download(mc, c), ctx, "download");
        t_down = now() - t0;
    }
    if (!failed) {
        double flops = 2.0 * (double)n * (double)n * (double)n;
        printf("context:  %8.2f ms (device discovery, OpenCL context and queue)\n", t_ctx * 1e3);
        printf("upload:   %8.2f ms (2 matrices, %.1f MB)\n", t_up * 1e3,
               2.0 * (double)(n * n * sizeof(float)) / 1e6);
        printf("first:    %8.2f ms (includes building the kernel)\n", t_first * 1e3);
        printf("compute:  %8.3f ms (best of %d), %.1f GFLOP/s\n", t_compute * 1e3, runs,
               flops / t_compute / 1e9);
        printf("download: %8.2f ms\n", t_down * 1e3);
        double err = relative_error(a, b, c, n);
        printf("max relative error vs CPU double reference: %.3g %s\n", err,
               err < 1e-5 ? "(ok)" : "(TOO LARGE)");
        failed = !(err < 1e-5);
    }
    gpumat_matrix_destroy(ma);
    gpumat_matrix_destroy(mb);
    gpumat_matrix_destroy(mc);
    gpumat_context_destroy(ctx);
    free(a);
    free(b);
    free(c);
    return failed ? 1 : 0;
}
