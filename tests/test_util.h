/*
 * test_util.h - helpers shared by the libgpumat test programs: the seed,
 * a small deterministic random generator, host<->device copies through
 * double, double-precision CPU references and the comparisons with sound
 * error bounds.
 *
 * None of these functions calls cmocka's assertions, so they may be used
 * from any thread; they report problems through their return values and a
 * message buffer.
 */
#ifndef GPUMAT_TEST_UTIL_H
#define GPUMAT_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "gpumat.h"

/* ---- seed and random numbers ------------------------------------------- */

/* Reads GPUMAT_TEST_SEED or takes time ^ pid, prints "seed: N" and
 * remembers it.  Call once at the start of main(). */
uint64_t tu_init(const char *program);

/* The seed tu_init() chose. */
uint64_t tu_seed(void);

/* Whether this process runs the part of a test program that was given
 * to shard `shard`: GPUMAT_TEST_SHARD="I/N" (tools/run-tests runs N
 * processes side by side) selects the parts with shard % N == I; unset, it
 * selects everything.  A malformed value ends the program (status 2). */
int tu_shard_selected(unsigned shard);

/* Seconds on a monotonic clock, for reporting how long a part took. */
double tu_now(void);

typedef struct tu_rng {
    uint64_t state;
} tu_rng;

/* A generator seeded from the program seed and a stream number (so that
 * every test and every thread has its own reproducible stream). */
void tu_rng_init(tu_rng *rng, uint64_t stream);

uint64_t tu_rng_next(tu_rng *rng);

/* Uniform in [-1, 1], never exactly 0 (and never smaller in magnitude than
 * 2^-20, so that no value is a denormal or a zero after rounding). */
double tu_rng_uniform(tu_rng *rng);

/* ---- host data --------------------------------------------------------- */

/* n random values, each exactly representable in dtype (rounded to float
 * for GPUMAT_F32).  Returns NULL if out of memory. */
double *tu_random_host(tu_rng *rng, size_t n, gpumat_dtype dtype);

/* malloc of n doubles filled with NaN (NULL if out of memory). */
double *tu_nan_host(size_t n);

/* Uploads n = rows*cols doubles converted to the matrix's dtype. */
gpumat_status tu_upload(gpumat_matrix *m, const double *host);

/* Downloads the matrix and widens it to double (NaN stays NaN). */
gpumat_status tu_download(const gpumat_matrix *m, double *host);

/* Uploads NaN to every element: an element an operation fails to write
 * stays NaN and fails every comparison below. */
gpumat_status tu_poison(gpumat_matrix *m);

/* Creates a rows x cols matrix and fills it with fresh random values;
 * *host receives them (free() it).  On failure nothing is left allocated. */
gpumat_status tu_random_matrix(gpumat_context *ctx, tu_rng *rng, size_t rows,
                               size_t cols, gpumat_dtype dtype, gpumat_matrix **m,
                               double **host);

/* ---- references (double precision) ------------------------------------- */

/* c = a + b and scale = |a| + |b|, n elements. */
void tu_ref_add(const double *a, const double *b, double *c, double *scale, size_t n);

/* c = a * b (a: m x k, b: k x n, row-major) in double precision, and
 * scale = |a| * |b| (the sum of |a_ik b_kj| for each element). */
void tu_ref_gemm(size_t m, size_t k, size_t n, const double *a, const double *b,
                 double *c, double *scale);

/* t = transpose(a), a: rows x cols. */
void tu_ref_transpose(size_t rows, size_t cols, const double *a, double *t);

/* ---- error bounds ------------------------------------------------------ */

/* The unit roundoff of dtype: 2^-24 for F32, 2^-53 for F64. */
double tu_unit_roundoff(gpumat_dtype dtype);

/* The bound on |out - ref| / (|a| + |b|) for an element-wise add.  The
 * device's result is fl(a + b) with a and b exactly representable, so
 * |fl(a+b) - (a+b)| <= u |a+b| <= u (|a| + |b|); the double reference is
 * exact for F32 and within 2^-53 for F64.  We allow 2u, which still catches
 * every wrong element (an error is then of the size of |a| or |b|). */
double tu_add_tolerance(gpumat_dtype dtype);

/* The bound on |out - ref| / (|a||b|)_ij for a matrix product with inner
 * dimension k.  Whatever order or tree the kernel sums the k products in,
 * and whether it uses fma or not, each term meets at most k roundings, so
 * the classical bound is |fl(AB) - AB| <= gamma_k |A||B| with
 * gamma_k = k u / (1 - k u) (Higham, Accuracy and Stability, 3.5).  We add
 * the double reference's own error (gamma_k with u = 2^-53) and allow a
 * factor 2 of slack for a kernel that rounds an extra time when it stores
 * partial sums.  For F32 this is about 1.2e-7 * k: 1.2e-4 at k = 1000,
 * tighter than the common 1e-5*sqrt(k) heuristic for every k we use; for
 * F64 about 2.2e-16 * k.  A wrong, missing or duplicated term (error of
 * order |a_ik b_kj|, mean 1/4 against a scale of about k/4) exceeds it by
 * a wide margin for every k we test. */
double tu_gemm_tolerance(gpumat_dtype dtype, size_t k);

/* Compares out against ref: element i passes iff
 *     |out[i] - ref[i]| <= tol * scale[i]
 * (scale NULL: exact comparison, out[i] == ref[i]).  NaN or infinity in out
 * fails.  Returns 1 if every element passes, else 0 and writes a message
 * naming `what`, the worst element (row, col), observed and expected value
 * and the number of failing elements to msg. */
int tu_compare(const char *what, size_t rows, size_t cols, const double *out,
               const double *ref, const double *scale, double tol, char *msg,
               size_t msg_size);

/* One checked product c = alpha op(a) op(b) + beta c (m x n x k, F32, or
 * dtype for the _typed forms), in three steps so that a test can enqueue
 * it where it needs to:
 * tu_gemm_prepare uploads fresh random operands and c (NaN-poisoned when
 * beta == 0); tu_gemm_run enqueues gpumat_gemm; tu_gemm_check downloads c,
 * compares it with the double reference (s: the status so far, reported
 * instead when not GPUMAT_OK) and frees the case either way, returning 1
 * if right, else 0 with a message naming the case in msg. */
typedef struct tu_gemm_case {
    gpumat_context *ctx;
    gpumat_dtype dtype;
    size_t m, n, k;
    int ta, tb;
    double alpha, beta;
    gpumat_matrix *a, *b, *c;
    double *ha, *hb, *hc;
} tu_gemm_case;
gpumat_status tu_gemm_prepare(gpumat_context *ctx, tu_rng *rng, size_t m, size_t n, size_t k,
                              int ta, int tb, double alpha, double beta, tu_gemm_case *g);
gpumat_status tu_gemm_prepare_typed(gpumat_context *ctx, tu_rng *rng, gpumat_dtype dtype,
                                    size_t m, size_t n, size_t k, int ta, int tb, double alpha,
                                    double beta, tu_gemm_case *g);
gpumat_status tu_gemm_run(tu_gemm_case *g);
/* Frees a prepared case's matrices and host copies (tu_gemm_check does). */
void tu_gemm_free(tu_gemm_case *g);
int tu_gemm_check(tu_gemm_case *g, gpumat_status s, char *msg, size_t msg_size);

/* The three steps at once on ctx. */
int tu_check_gemm(gpumat_context *ctx, tu_rng *rng, size_t m, size_t n, size_t k, int ta,
                  int tb, double alpha, double beta, char *msg, size_t msg_size);
int tu_check_gemm_typed(gpumat_context *ctx, tu_rng *rng, gpumat_dtype dtype, size_t m,
                        size_t n, size_t k, int ta, int tb, double alpha, double beta, char *msg,
                        size_t msg_size);

/* ---- convenience ------------------------------------------------------- */

const char *tu_dtype_name(gpumat_dtype dtype);
const char *tu_backend_name(gpumat_gemm_backend backend);

/* 1 if the context's device reports fp64. */
int tu_has_fp64(const gpumat_context *ctx);

/* Case-insensitive substring search. */
int tu_contains_ci(const char *haystack, const char *needle);

/* Saves and restores an environment variable (setenv/unsetenv). */
typedef struct tu_saved_env {
    const char *name;
    char *value; /* NULL if it was unset */
} tu_saved_env;
void tu_env_save(tu_saved_env *saved, const char *name);
void tu_env_restore(tu_saved_env *saved);

/* Sets an environment variable, or unsets it when value is NULL. */
void tu_env_set(const char *name, const char *value);

/* Runs a + b, a * b and transpose on small fresh matrices of ctx and checks
 * the results; returns 1 if all are right (msg explains otherwise).  Used
 * to show that a context still works (after an error, on another device). */
int tu_context_works(gpumat_context *ctx, gpumat_dtype dtype, tu_rng *rng, char *msg,
                     size_t msg_size);

/* Fail the running cmocka test with the call, its status (or OpenCL error)
 * and the library's last error message.  Need <cmocka.h>. */
#define TU_CHECK_OK(call)                                                               \
    do {                                                                                \
        gpumat_status s_ = (call);                                                      \
        if (s_ != GPUMAT_OK)                                                            \
            fail_msg("%s -> %d (%s): %s", #call, (int)s_, gpumat_strerror(s_),          \
                     gpumat_last_error(NULL));                                          \
    } while (0)

#define TU_CHECK_CL(call)                                                               \
    do {                                                                                \
        cl_int e_ = (call);                                                             \
        if (e_ != CL_SUCCESS)                                                           \
            fail_msg("%s -> OpenCL error %d", #call, (int)e_);                          \
    } while (0)

/* While an OpenCL user event holds the context's queue back a test must
 * not fail (the teardown would wait for ever): this records the first
 * failed call, its status and the last error in problem (problem_size
 * bytes) instead; the test fails with it once the event is set.  Needs
 * <stdio.h>. */
#define TU_GATED_OK(problem, problem_size, call)                                        \
    do {                                                                                \
        gpumat_status s_ = (call);                                                      \
        if (s_ != GPUMAT_OK && !(problem)[0])                                           \
            snprintf((problem), (problem_size), "%s -> %d (%s): %s", #call, (int)s_,    \
                     gpumat_strerror(s_), gpumat_last_error(NULL));                     \
    } while (0)

/* A new empty directory under $TMPDIR (else /tmp) named prefix-XXXXXX, its
 * path to `path` (size bytes); -1 with a message on stderr on failure. */
int tu_scratch_dir(char *path, size_t size, const char *prefix);

/* Removes a file or a directory tree (making directories writable first:
 * tests make some read-only). */
void tu_remove_tree(const char *path);

/* cmocka group setup and teardown around one shared context: creates it on
 * the automatic device (with the native GEMM backend if `native`), printing
 * the error and returning -1 on failure; the teardown waits for its work,
 * destroys it and returns -1 if that wait failed. */
int tu_group_context_create(gpumat_context **ctx, int native);
int tu_group_context_destroy(gpumat_context **ctx);

#endif /* GPUMAT_TEST_UTIL_H */
