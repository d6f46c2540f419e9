/*
 * gpumat.h - the public interface of libgpumat, portable OpenCL matrix
 * operations for C.
 *
 * Every public name starts with gpumat_ or GPUMAT_.  Each function is
 * documented where it is declared.  The header is C11 and can be included
 * from C++.
 *
 * Conventions
 * - Every function that can fail returns a gpumat_status; GPUMAT_OK (0) is
 *   success.  On failure gpumat_last_error() gives a detailed message naming
 *   the argument, the shapes, the OpenCL error or the kernel build log.
 * - The library never prints, exits or aborts.  A failed call leaves every
 *   object it was given in its previous, usable state and leaks nothing.
 *   Calls that queue several commands get everything ready (arguments,
 *   buffers, kernels) before the first that writes an output; only a
 *   driver refusing a later command itself (an enqueue failing after the
 *   first went in: a GEMM in passes or split along k, softmax with the
 *   loss, a staged upload) can leave an output partly written.
 * - Matrices are dense and row-major: element (i, j) of an R x C matrix is
 *   at index i * C + j of its host array.
 *
 * Thread safety
 * - gpumat_device_*() and gpumat_context_create() may be called from any
 *   number of threads at once.
 * - A context and every matrix made from it may be used from several
 *   threads at once.  Each call reaches the context's in-order queue as a
 *   whole: its commands (kernels, copies, transfers, markers) are enqueued
 *   under the context's lock, so no other thread's command lands between
 *   them, and the device runs the calls of one context one after another,
 *   in the order they reached the queue.  The lock is not held while
 *   waiting for the device, except by gpumat_matrix_download() (a blocking
 *   read: other threads' calls on the context wait until it has the data)
 *   and by a large staged upload (several commands: they wait until its
 *   last chunk is enqueued).
 * - Two threads writing the same matrix at once, or one writing a matrix
 *   while another reads it, get one of the two orders, never a torn result;
 *   which order is up to the scheduler.  Synchronise yourself if it matters.
 * - Destroying an object while another thread still uses it is undefined.
 * - The message returned by gpumat_last_error() belongs to the calling
 *   thread and stays valid until that thread's next call into the library.
 *
 * Execution
 *   Operations are enqueued on the context's in-order queue and return
 *   without waiting for the device.  gpumat_matrix_download() and
 *   gpumat_finish() wait.  gpumat_matrix_upload() copies the host data
 *   before it returns, so the caller may reuse its buffer at once.
 */
#ifndef GPUMAT_H
#define GPUMAT_H

#include <stddef.h>
#include <stdint.h>

/* The interop functions speak OpenCL's types.  If the including program has
 * not chosen an OpenCL API version, take the headers' own default quietly. */
#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 300
#endif
#ifdef __APPLE__
#include <OpenCL/cl.h>
#else
#include <CL/cl.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Version                                                                  */
/* ------------------------------------------------------------------------ */

#define GPUMAT_VERSION_MAJOR 0
#define GPUMAT_VERSION_MINOR 1
#define GPUMAT_VERSION_PATCH 0
#define GPUMAT_VERSION_NUMBER \
    (GPUMAT_VERSION_MAJOR * 10000 + GPUMAT_VERSION_MINOR * 100 + GPUMAT_VERSION_PATCH)
#define GPUMAT_VERSION_STRING "0.1.0"

#if defined(_WIN32)
#  define GPUMAT_API
#elif defined(__GNUC__) && __GNUC__ >= 4
#  define GPUMAT_API __attribute__((visibility("default")))
#else
#  define GPUMAT_API
#endif

/** The version of the library actually linked: GPUMAT_VERSION_NUMBER of the
 *  build.  Compare with the macro to detect a header/library mismatch. */
GPUMAT_API unsigned gpumat_version_number(void);

/** The version of the library actually linked, as "MAJOR.MINOR.PATCH". */
GPUMAT_API const char *gpumat_version_string(void);

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

typedef enum gpumat_status {
    GPUMAT_OK = 0,
    /** A required pointer was NULL, or an argument is outside its range. */
    GPUMAT_ERR_INVALID_ARGUMENT = -1,
    /** Operand shapes do not fit the operation, or a dimension is zero. */
    GPUMAT_ERR_SHAPE = -2,
    /** Operands have different element types. */
    GPUMAT_ERR_DTYPE = -3,
    /** An output aliases an input where the operation forbids it. */
    GPUMAT_ERR_ALIASING = -4,
    /** Operands belong to different contexts. */
    GPUMAT_ERR_CONTEXT_MISMATCH = -5,
    /** rows * cols * element size does not fit in size_t. */
    GPUMAT_ERR_SIZE_OVERFLOW = -6,
    /** The host or the device ran out of memory. */
    GPUMAT_ERR_OUT_OF_MEMORY = -7,
    /** No OpenCL platform or device is present, or none matches the choice. */
    GPUMAT_ERR_NO_DEVICE = -8,
    /** The device lacks what the call needs (e.g. cl_khr_fp64 for F64), or
     *  an optional backend (CLBlast) is not installed. */
    GPUMAT_ERR_UNSUPPORTED = -9,
    /** An embedded kernel failed to compile; the message holds the log. */
    GPUMAT_ERR_BUILD = -10,
    /** Any other OpenCL failure; the message names the call and the error. */
    GPUMAT_ERR_OPENCL = -11,
    /** The CLBlast backend reported a failure. */
    GPUMAT_ERR_BACKEND = -12
} gpumat_status;

/** A short, static, human-readable description of a status code, e.g.
 *  "shape mismatch".  Never NULL, also for unknown codes. */
GPUMAT_API const char *gpumat_strerror(gpumat_status status);

typedef struct gpumat_context gpumat_context;

/** The detailed message of the last failure.
 *  ctx != NULL: the last failure of any call on that context or its
 *  matrices (from whichever thread failed last).
 *  ctx == NULL: the last failure of the calling thread, from any call,
 *  including gpumat_context_create() which has no context yet.
 *  Returns "" when there has been no failure.  The string is a copy owned by
 *  the calling thread and stays valid until its next call into the library. */
GPUMAT_API const char *gpumat_last_error(const gpumat_context *ctx);

/* ------------------------------------------------------------------------ */
/* Devices                                                                  */
/* ------------------------------------------------------------------------ */

typedef enum gpumat_device_type {
    GPUMAT_DEVICE_GPU = 1,
    GPUMAT_DEVICE_ACCELERATOR = 2,
    GPUMAT_DEVICE_CPU = 3,
    GPUMAT_DEVICE_OTHER = 4
} gpumat_device_type;

typedef enum gpumat_vendor {
    GPUMAT_VENDOR_OTHER = 0,
    GPUMAT_VENDOR_NVIDIA = 1,
    GPUMAT_VENDOR_AMD = 2,
    GPUMAT_VENDOR_INTEL = 3
} gpumat_vendor;

/** What libgpumat knows of one OpenCL device. */
typedef struct gpumat_device_info {
    unsigned platform_index;   /**< index among platforms that have devices */
    unsigned device_index;     /**< index within that platform */
    char platform_name[128];
    char name[128];
    char vendor_name[128];     /**< CL_DEVICE_VENDOR as reported */
    char driver_version[64];
    char opencl_version[64];   /**< CL_DEVICE_VERSION */
    gpumat_vendor vendor;
    gpumat_device_type type;
    unsigned compute_units;
    unsigned clock_mhz;
    uint64_t global_memory_bytes;
    uint64_t local_memory_bytes;
    size_t max_work_group_size;
    int has_fp64;              /**< cl_khr_fp64 (or cl_amd_fp64) present */
    int unified_memory;        /**< shares memory with the host */
} gpumat_device_info;

/** Lists every device of every OpenCL platform, in platform order.
 *  Platforms that report no device are skipped (their numbering does not
 *  count them).  Writes at most `capacity` entries to `out` (which may be
 *  NULL when capacity is 0) and the total number of devices to `*count`.
 *  Returns GPUMAT_ERR_NO_DEVICE if there is none at all, or the error of a
 *  driver that failed to list its devices when no platform listed any. */
GPUMAT_API gpumat_status gpumat_device_list(gpumat_device_info *out,
                                            size_t capacity, size_t *count);

typedef struct gpumat_options gpumat_options;

/** Names the device gpumat_context_create(options) would pick: its position
 *  in gpumat_device_list() order goes to `*index`, and a one-line reason
 *  (e.g. "GPU preferred over CPU; 132 compute units") to `reason` (at most
 *  reason_size bytes, NUL-terminated; reason may be NULL).  options may be
 *  NULL. */
GPUMAT_API gpumat_status gpumat_device_choose(const gpumat_options *options,
                                              size_t *index, char *reason,
                                              size_t reason_size);

/** A short name of a device type ("GPU", "CPU", ...). */
GPUMAT_API const char *gpumat_device_type_name(gpumat_device_type type);

/** A short name of a vendor ("NVIDIA", "AMD", "Intel", "other"). */
GPUMAT_API const char *gpumat_vendor_name(gpumat_vendor vendor);

/* ------------------------------------------------------------------------ */
/* Element types (of matrices, and of the products dispatch is asked about) */
/* ------------------------------------------------------------------------ */

typedef enum gpumat_dtype {
    GPUMAT_F32 = 1, /**< float */
    GPUMAT_F64 = 2  /**< double; needs a device with cl_khr_fp64 */
} gpumat_dtype;

/* ------------------------------------------------------------------------ */
/* Contexts                                                                 */
/* ------------------------------------------------------------------------ */

typedef enum gpumat_gemm_backend {
    /** GPUMAT_GEMM from the environment, else the library's choice, made
     *  per call by the product's size (see gpumat_context_tuning()). */
    GPUMAT_GEMM_AUTO = 0,
    /** libgpumat's own OpenCL kernels; always available. */
    GPUMAT_GEMM_NATIVE = 1,
    /** CLBlast, loaded at run time (libclblast.so.1); creating a context
     *  that forces it fails with GPUMAT_ERR_UNSUPPORTED if it is missing. */
    GPUMAT_GEMM_CLBLAST = 2
} gpumat_gemm_backend;

/** Choices for gpumat_context_create().  Initialise with
 *  gpumat_options_init() so that fields added later get their defaults.
 *
 *  Device choice: an explicit `platform`/`device` here wins over the
 *  environment variables GPUMAT_PLATFORM/GPUMAT_DEVICE, which win over the
 *  automatic choice.  Each is either a decimal index (platforms counted as
 *  in gpumat_device_list(); devices counted within the chosen platform, or
 *  across all platforms when no platform is given) or a case-insensitive
 *  substring of the platform/device name.  With neither, the library takes
 *  the best device: GPU over accelerator over CPU, then discrete over
 *  integrated, then compute units x clock, then memory. */
struct gpumat_options {
    const char *platform;              /**< NULL: environment, else automatic */
    const char *device;                /**< NULL: environment, else automatic */
    gpumat_device_type device_type;    /**< 0: any type; else only this type */
    gpumat_gemm_backend gemm_backend;  /**< GPUMAT_GEMM_AUTO by default */
};

/** Sets every field of *options to its default (automatic everything). */
GPUMAT_API void gpumat_options_init(gpumat_options *options);

/** Creates a context on one device, with its own OpenCL context and
 *  in-order command queue.  options may be NULL (automatic choice).
 *  On failure *ctx is set to NULL and gpumat_last_error(NULL) explains. */
GPUMAT_API gpumat_status gpumat_context_create(gpumat_context **ctx,
                                               const gpumat_options *options);

/** Creates a context that uses a cl_context and in-order cl_command_queue
 *  the caller owns (interop with other OpenCL code).  libgpumat retains both
 *  and releases its references in gpumat_context_destroy(); the caller keeps
 *  its own.  Only `gemm_backend` of options is used; options may be NULL.
 *  The queue must not be out-of-order. */
GPUMAT_API gpumat_status gpumat_context_wrap(gpumat_context **ctx,
                                             cl_context cl_ctx,
                                             cl_command_queue queue,
                                             const gpumat_options *options);

/** Waits for the context's queued work, then frees the context.  Every
 *  matrix of the context must be destroyed first; NULL is a no-op. */
GPUMAT_API void gpumat_context_destroy(gpumat_context *ctx);

/** Fills *info with the context's device. */
GPUMAT_API gpumat_status gpumat_context_device(const gpumat_context *ctx,
                                               gpumat_device_info *info);

/** The name of the kernel parameter set the context chose for its device
 *  ("nvidia-gpu", "amd-gpu", "intel-gpu", "generic-gpu", "cpu",
 *  "cpu-avx512"): the per-vendor dispatch point.  NULL if ctx is NULL. */
GPUMAT_API const char *gpumat_context_profile(const gpumat_context *ctx);

/** The OpenCL C build options the context passes to its kernels (the -D
 *  parameters of its profile; each program takes those its source reads).
 *  NULL if ctx is NULL. */
GPUMAT_API const char *gpumat_context_build_options(const gpumat_context *ctx);

/** The GEMM backend the context was told to use: GPUMAT_GEMM_NATIVE or
 *  GPUMAT_GEMM_CLBLAST when options.gemm_backend or GPUMAT_GEMM forced one,
 *  else GPUMAT_GEMM_AUTO: each gpumat_gemm() call then picks one by size
 *  (gpumat_context_gemm_backend_for() tells which).  AUTO also for NULL. */
GPUMAT_API gpumat_gemm_backend gpumat_context_gemm_backend(const gpumat_context *ctx);

/** The backend gpumat_gemm() on ctx uses for a product of dtype of an
 *  m x k and a k x n operand (after transposition): the forced backend, or
 *  under AUTO the choice for that element type and size class from the
 *  device's tuning file or, without one, from the library's measurements
 *  for the context's profile.  AUTO never picks CLBlast when it cannot be
 *  loaded.  GPUMAT_GEMM_AUTO for a NULL ctx. */
GPUMAT_API gpumat_gemm_backend gpumat_context_gemm_backend_for(const gpumat_context *ctx,
                                                               gpumat_dtype dtype, size_t m,
                                                               size_t n, size_t k);

/* Tuning.  build/examples/gpumat-tune measures GEMM kernel parameters and
 * native-versus-CLBlast per size on a device and writes a tuning file for
 * it into the kernel cache directory (see "Kernel cache" below for how that
 * is found; GPUMAT_CACHE=off does not affect tuning files).  A context
 * reads its device's file when it is created, unless GPUMAT_KERNEL_PARAMS
 * is set (which then wins) or GPUMAT_TUNING is "off", "0", "no" or "false".
 * The file is keyed by the device name and driver version (a driver update
 * makes it stale); one that is unreadable, malformed, of another format
 * version, carries another key, or holds parameters the device cannot run
 * is ignored, never an error: the context then uses its shipped profile. */

/** What the context did about tuning, one line for people, e.g.
 *  "tuned: /home/u/.cache/gpumat/tuning-0123456789abcdef.txt",
 *  "shipped profile cpu (no tuning file /home/u/.cache/...)" or
 *  "ignored /path: key mismatch (device ..., file ...); using shipped
 *  profile cpu".  Owned by the context.  NULL if ctx is NULL. */
GPUMAT_API const char *gpumat_context_tuning(const gpumat_context *ctx);

/** The path of the context's device's tuning file (whether or not it
 *  exists), as resolved when the context was created; written to `path`
 *  (size bytes, NUL-terminated).  Fails with GPUMAT_ERR_UNSUPPORTED when no
 *  directory could be named, GPUMAT_ERR_INVALID_ARGUMENT when a pointer is
 *  NULL or size is too small. */
GPUMAT_API gpumat_status gpumat_context_tuning_path(const gpumat_context *ctx, char *path,
                                                    size_t size);

/** The OpenCL context and queue the context uses (borrowed: do not
 *  release them).  NULL if ctx is NULL. */
GPUMAT_API cl_context gpumat_context_cl_context(const gpumat_context *ctx);
GPUMAT_API cl_command_queue gpumat_context_cl_queue(const gpumat_context *ctx);

/** Waits until every operation enqueued on the context has finished; the
 *  status reports an error the device raised while running them. */
GPUMAT_API gpumat_status gpumat_finish(gpumat_context *ctx);

/* GEMM scratch.  To save allocating on every call, gpumat_gemm() and
 * gpumat_multiply() keep device buffers in the context: the operand
 * copies of large products (see gpumat_op) and the partial sums and tile
 * counters of products split along k.  They grow with the largest product
 * so far (on NVIDIA GPUs an 8192 x 8192 float product a * b keeps a
 * 256 MiB copy of a^T) and are otherwise released only by
 * gpumat_context_destroy(). */

/** Releases the context's GEMM scratch buffers; later products allocate
 *  them again as they need them (the first product after a trim pays for
 *  that).  The pinned transfer buffers, gpumat_host_alloc() memory and the
 *  compiled programs stay.  Does not wait for the device: OpenCL frees a
 *  released buffer only once the commands already enqueued on it have
 *  finished, so work still queued keeps what it uses, and that memory
 *  comes back when the work is done.  Takes the context's lock, like
 *  gpumat_gemm(), so other threads may run products on the context
 *  meanwhile.  Fails with GPUMAT_ERR_INVALID_ARGUMENT when ctx is NULL. */
GPUMAT_API gpumat_status gpumat_context_trim(gpumat_context *ctx);

/** Writes to *bytes how many bytes of GEMM scratch the context holds now:
 *  0 on a new context and after gpumat_context_trim().  Fails with
 *  GPUMAT_ERR_INVALID_ARGUMENT when ctx or bytes is NULL. */
GPUMAT_API gpumat_status gpumat_context_scratch_size(const gpumat_context *ctx, size_t *bytes);

/* ------------------------------------------------------------------------ */
/* Matrices                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct gpumat_matrix gpumat_matrix;

/** The size in bytes of one element of dtype, or 0 for an unknown dtype. */
GPUMAT_API size_t gpumat_dtype_size(gpumat_dtype dtype);

/** Creates a rows x cols matrix of dtype in device memory; its contents are
 *  undefined until written.  Fails with GPUMAT_ERR_SHAPE for a zero
 *  dimension, GPUMAT_ERR_SIZE_OVERFLOW when the byte count does not fit,
 *  GPUMAT_ERR_UNSUPPORTED for F64 on a device without fp64.  On failure
 *  *m is set to NULL. */
GPUMAT_API gpumat_status gpumat_matrix_create(gpumat_context *ctx, size_t rows,
                                              size_t cols, gpumat_dtype dtype,
                                              gpumat_matrix **m);

/** Frees a matrix (after work already queued on it); NULL is a no-op. */
GPUMAT_API void gpumat_matrix_destroy(gpumat_matrix *m);

/** Copies rows*cols contiguous elements of the matrix's dtype from host
 *  memory to the matrix.  Returns once `host` may be reused (the transfer
 *  itself may still be in flight; later operations are ordered after it).
 *  Large transfers from ordinary (pageable) memory go through pinned
 *  staging buffers in chunks, copied by several threads so that the copy
 *  into staging keeps pace with the DMA; memory from gpumat_host_alloc()
 *  is transferred directly.  The one exception to "a failed call leaves
 *  its objects as they were": a staged upload that fails part way may
 *  leave some of m's chunks written (m stays usable; upload again). */
GPUMAT_API gpumat_status gpumat_matrix_upload(gpumat_matrix *m, const void *host);

/** Waits for the work queued on the matrix, then copies its rows*cols
 *  elements to host memory.  Holds the context's lock until then, so that
 *  no other thread's command lands inside it (see Thread safety). */
GPUMAT_API gpumat_status gpumat_matrix_download(const gpumat_matrix *m, void *host);

/** Allocates `bytes` of page-locked (pinned) host memory through the
 *  context's OpenCL driver (a CL_MEM_ALLOC_HOST_PTR buffer kept mapped).
 *  Uploads from and downloads to it run at the full DMA rate of the bus.
 *  Free it with gpumat_host_free() on the same context, before destroying
 *  the context.  On failure *ptr is NULL. */
GPUMAT_API gpumat_status gpumat_host_alloc(gpumat_context *ctx, size_t bytes, void **ptr);

/** Frees memory from gpumat_host_alloc(); NULL is a no-op. */
GPUMAT_API gpumat_status gpumat_host_free(gpumat_context *ctx, void *ptr);

/** Shape and element type; 0 for a NULL matrix. */
GPUMAT_API size_t gpumat_matrix_rows(const gpumat_matrix *m);
GPUMAT_API size_t gpumat_matrix_cols(const gpumat_matrix *m);
GPUMAT_API gpumat_dtype gpumat_matrix_dtype(const gpumat_matrix *m);

/** The context a matrix belongs to; NULL for a NULL matrix. */
GPUMAT_API gpumat_context *gpumat_matrix_context(const gpumat_matrix *m);

/** The OpenCL buffer behind the matrix (borrowed: do not release it).  It
 *  holds rows*cols elements, row-major, from offset 0.  NULL for NULL. */
GPUMAT_API cl_mem gpumat_matrix_cl_mem(const gpumat_matrix *m);

/* ------------------------------------------------------------------------ */
/* Operations                                                               */
/* ------------------------------------------------------------------------ */
/* All operands must come from the same context and have the same dtype.
 * Outputs must already exist with the result's shape; they are never
 * resized. */

/** c = a + b, element-wise.  a, b and c must have the same shape.  c may be
 *  a or b (in place). */
GPUMAT_API gpumat_status gpumat_add(gpumat_matrix *c, const gpumat_matrix *a,
                                    const gpumat_matrix *b);

/** c = a * b (matrix product): a is M x K, b is K x N, c is M x N.  c must
 *  not be a or b (GPUMAT_ERR_ALIASING).  The same as
 *  gpumat_gemm(GPUMAT_NO_TRANS, GPUMAT_NO_TRANS, 1, a, b, 0, c). */
GPUMAT_API gpumat_status gpumat_multiply(gpumat_matrix *c, const gpumat_matrix *a,
                                         const gpumat_matrix *b);

/** Whether gpumat_gemm() uses an operand as stored or transposed.  A
 *  transposed operand is read in place: no transposed copy of the matrix
 *  is made.  (Large products may copy an operand into the order the
 *  kernels read fastest: on CPU devices panels of either operand, as CPU
 *  BLAS libraries do; on NVIDIA GPUs, float products a * b from n = 4000
 *  on, a^T.  Such copies stay in buffers the context keeps between calls
 *  (a GPU's together at most an eighth of its memory; a CPU's panels cover
 *  at most 256 values of k at a time) until gpumat_context_trim() or
 *  gpumat_context_destroy(); where the device cannot allocate them, the
 *  product reads its operands in place instead.) */
typedef enum gpumat_op {
    GPUMAT_NO_TRANS = 0, /**< op(X) = X */
    GPUMAT_TRANS = 1     /**< op(X) = X^T, read in place */
} gpumat_op;

/** c = alpha * op_a(a) * op_b(b) + beta * c (general matrix product).
 *  op_a(a) must be M x K, op_b(b) K x N and c M x N.  With beta == 0, c is
 *  only written (NaN or garbage in c does not matter); otherwise it is read.
 *  For F32, alpha and beta are rounded to float.  c must not be a or b
 *  (GPUMAT_ERR_ALIASING). */
GPUMAT_API gpumat_status gpumat_gemm(gpumat_op op_a, gpumat_op op_b, double alpha,
                                     const gpumat_matrix *a, const gpumat_matrix *b,
                                     double beta, gpumat_matrix *c);

/** dst = src (device-to-device copy); same shape and dtype.  dst == src
 *  is allowed and does nothing.  Runs at the device's copy bandwidth: the
 *  reference the element-wise kernels are measured against. */
GPUMAT_API gpumat_status gpumat_copy(gpumat_matrix *dst, const gpumat_matrix *src);

/** t = transpose(a): a is R x C, t is C x R.  t must not be a. */
GPUMAT_API gpumat_status gpumat_transpose(gpumat_matrix *t, const gpumat_matrix *a);

/* ------------------------------------------------------------------------ */
/* Kernel cache                                                             */
/* ------------------------------------------------------------------------ */
/* A context compiles each of its kernel programs (per element type) the
 * first time an operation needs it.  Compiled programs are kept on disk and
 * reused by later processes on the same device and driver, so that only the
 * first run pays for the OpenCL C compiler.
 *
 * Environment, read when a context builds its first program:
 *   GPUMAT_CACHE      "off", "0", "no" or "false" (any case) disables the
 *                     cache: nothing is read or written.
 *   GPUMAT_CACHE_DIR  the cache directory.  Without it,
 *                     $XDG_CACHE_HOME/gpumat (if XDG_CACHE_HOME is an
 *                     absolute path), else $HOME/.cache/gpumat.
 * Missing directories are created with mode 0700.
 *
 * An entry is used only if it was built for the same platform and version,
 * device, vendor, driver version, device OpenCL version, libgpumat version,
 * kernel source and build options; it carries a checksum.  Any entry that
 * is missing, damaged, foreign or rejected by the driver is silently
 * replaced by a fresh compile, and an unusable directory just means no
 * cache: the cache never makes an operation fail.  Several processes may
 * share a directory at once (entries are written to a temporary file and
 * renamed into place).  Deleting the directory is always safe. */

/** Counters of the programs a context has made ready so far. */
typedef struct gpumat_build_stats {
    unsigned programs_built; /**< programs made ready: cache_hits + cache_misses */
    unsigned cache_hits;     /**< loaded from the kernel cache */
    unsigned cache_misses;   /**< compiled from source (cache off, no usable
                                  entry, or an entry the driver rejected) */
    double build_seconds;    /**< wall time spent getting those programs ready:
                                  reading, compiling and writing the cache */
} gpumat_build_stats;

/** Fills *stats with the context's build counters (for benchmarks: the
 *  one-time cost of the first operations).  Programs are built lazily, so
 *  the counters grow as operations first run. */
GPUMAT_API gpumat_status gpumat_context_build_stats(const gpumat_context *ctx,
                                                    gpumat_build_stats *stats);

/** What the context did to its programs beyond compiling them, for people
 *  and benchmark logs: one line per program built so far that a
 *  device-specific rewrite applies to, e.g. on sm_90 NVIDIA GPUs
 *  "gemm f32: PTX passes tail, skew, extra column" (docs/gemm-notes.md,
 *  rounds 8-9) or "gemm f32: PTX passes not kept (the edited PTX did not
 *  build)".  A rewrite is kept only when the rewritten program's products
 *  are bit-identical to the original's, so a "not kept" line costs speed,
 *  never correctness.  Copied into buf (size bytes, NUL-terminated,
 *  truncated to fit); "" when no program so far has such a rewrite.  Fails
 *  with GPUMAT_ERR_INVALID_ARGUMENT when ctx or buf is NULL or size is 0. */
GPUMAT_API gpumat_status gpumat_context_kernel_notes(const gpumat_context *ctx, char *buf,
                                                     size_t size);

/* ------------------------------------------------------------------------ */
/* Neural-network and element-wise operations                               */
/* ------------------------------------------------------------------------ */
/* What training a network needs besides gpumat_gemm(): linear combinations,
 * activations and their gradients, bias broadcasts and their adjoint,
 * softmax with the cross-entropy loss, and an optimiser step.  The rules of
 * "Operations" above hold: one context, one dtype, outputs created with the
 * result's shape, every call asynchronous.  Scalars are passed as double
 * and rounded to float for F32.  Each function says which outputs may be
 * the same matrix as an input; any other sharing is GPUMAT_ERR_ALIASING.
 *
 * Index vectors.  Class labels, argmax results and row indices are M x 1
 * matrices of the data's own dtype holding whole numbers 0, 1, 2, ...
 * (exact in F32 up to 2^24).  Keeping them ordinary matrices keeps a whole
 * training step on the device, with no host round trip.  Because an
 * operation returns before the device has read its operands, a bad index
 * (negative, fractional, NaN, or too large) cannot be reported by the call:
 * instead the outputs that depend on it become NaN, which any later check
 * of the loss or the results will see. */

/** c = alpha * op_a(a) + beta * op_b(b), element-wise (BLAS-like geam).
 *  op_a(a), op_b(b) and c must all have c's shape.  A zero coefficient
 *  leaves its operand unread (NaN there does not reach c), though it must
 *  still have the right shape.  c may be a when op_a is GPUMAT_NO_TRANS and
 *  b when op_b is GPUMAT_NO_TRANS; c aliasing a transposed operand is
 *  GPUMAT_ERR_ALIASING.  a and b may be the same matrix. */
GPUMAT_API gpumat_status gpumat_geam(gpumat_op op_a, double alpha, const gpumat_matrix *a,
                                     gpumat_op op_b, double beta, const gpumat_matrix *b,
                                     gpumat_matrix *c);

/** c = a - b, element-wise (correctly rounded); same shapes.  c may be a
 *  or b. */
GPUMAT_API gpumat_status gpumat_sub(gpumat_matrix *c, const gpumat_matrix *a,
                                    const gpumat_matrix *b);

/** c = alpha * a; same shapes.  c may be a. */
GPUMAT_API gpumat_status gpumat_scale(gpumat_matrix *c, double alpha, const gpumat_matrix *a);

/** b = b + alpha * a (BLAS axpy); same shapes.  a may be b.  With
 *  gpumat_scale this gives SGD and momentum updates. */
GPUMAT_API gpumat_status gpumat_axpy(double alpha, const gpumat_matrix *a, gpumat_matrix *b);

/** c = a .* b, the element-wise (Hadamard) product; same shapes.  c may be
 *  a or b. */
GPUMAT_API gpumat_status gpumat_hadamard(gpumat_matrix *c, const gpumat_matrix *a,
                                         const gpumat_matrix *b);

/** c[i][j] = a[i][j] + v[j]: adds the 1 x N row vector v to every row of
 *  the M x N matrix a (a layer's bias).  c is M x N and may be a. */
GPUMAT_API gpumat_status gpumat_add_row_vector(gpumat_matrix *c, const gpumat_matrix *a,
                                               const gpumat_matrix *v);

/** v[j] = sum over i of a[i][j]: the column sums of the M x N matrix a into
 *  the 1 x N matrix v (a bias gradient; the adjoint of
 *  gpumat_add_row_vector).  v must not be a. */
GPUMAT_API gpumat_status gpumat_sum_cols(gpumat_matrix *v, const gpumat_matrix *a);

/** c = max(a, 0), element-wise; same shapes.  NaN stays NaN.  c may be
 *  a. */
GPUMAT_API gpumat_status gpumat_relu(gpumat_matrix *c, const gpumat_matrix *a);

/** dx = dy where x > 0, else 0: the gradient through gpumat_relu, given
 *  the gradient dy of its output and its input x (the derivative at 0 is
 *  taken as 0).  All three have one shape; dx may be dy or x. */
GPUMAT_API gpumat_status gpumat_relu_backward(gpumat_matrix *dx, const gpumat_matrix *dy,
                                              const gpumat_matrix *x);

/** c = softmax of each row of a: c[i][j] = exp(a[i][j]) / sum_k
 *  exp(a[i][k]), computed with the row maximum subtracted so that large
 *  inputs do not overflow.  Any row length, including 1.  c has a's shape
 *  and may be a. */
GPUMAT_API gpumat_status gpumat_softmax_rows(gpumat_matrix *c, const gpumat_matrix *a);

/** indices[i] = the column of the largest element of row i of the M x N
 *  matrix a, into the M x 1 index vector `indices` (see "Index vectors"):
 *  the first such column on ties, and the first NaN if the row holds one.
 *  Download indices to read the predictions on the host.  For F32, N must
 *  be at most 2^24 (GPUMAT_ERR_SHAPE otherwise) so that every column
 *  number is exact.  indices must not be a. */
GPUMAT_API gpumat_status gpumat_argmax_rows(gpumat_matrix *indices, const gpumat_matrix *a);

/** Softmax cross-entropy of a batch, forward and backward in one pass.
 *  logits is M x K (one row of class scores per example) and labels the
 *  M x 1 index vector of the true classes (see "Index vectors").
 *  loss (1 x 1) receives the mean over the M rows of
 *  log(sum_k exp(logits[i][k])) - logits[i][labels[i]], and dlogits (M x K)
 *  its gradient with respect to logits, (softmax(logits) - onehot(labels))
 *  / M.  Either output may be NULL (not computed), not both.  dlogits may
 *  be logits (in place); loss must be none of the other operands, and
 *  labels must not be dlogits.  A bad label makes that row of dlogits, and
 *  the loss, NaN.  For F32, K must be at most 2^24. */
GPUMAT_API gpumat_status gpumat_softmax_cross_entropy(gpumat_matrix *loss, gpumat_matrix *dlogits,
                                                      const gpumat_matrix *logits,
                                                      const gpumat_matrix *labels);

/** dst row i = src row indices[i]: picks M rows of the R x N matrix src
 *  (a shuffled mini-batch, an embedding lookup).  dst is M x N, indices the
 *  M x 1 index vector of rows of src (see "Index vectors"; rows may repeat);
 *  a bad index fills its row of dst with NaN.  dst must be neither src nor
 *  indices. */
GPUMAT_API gpumat_status gpumat_gather_rows(gpumat_matrix *dst, const gpumat_matrix *src,
                                            const gpumat_matrix *indices);

/** One Adam step (Kingma and Ba) on a parameter matrix, in place:
 *      m     = beta1 m + (1 - beta1) grad
 *      v     = beta2 v + (1 - beta2) grad^2
 *      param = param - lr (m / (1 - beta1^step)) / (sqrt(v / (1 - beta2^step)) + eps)
 *  the same update as PyTorch's torch.optim.Adam.  param, grad and the
 *  moment estimates m and v (start them at zero) have one shape and must
 *  be four different matrices.  step counts the updates so far including
 *  this one, from 1.  lr must be finite, beta1 and beta2 in [0, 1), eps
 *  positive and finite; otherwise GPUMAT_ERR_INVALID_ARGUMENT. */
GPUMAT_API gpumat_status gpumat_adam_update(gpumat_matrix *param, const gpumat_matrix *grad,
                                            gpumat_matrix *m, gpumat_matrix *v, double lr,
                                            double beta1, double beta2, double eps,
                                            uint64_t step);

/* ------------------------------------------------------------------------ */
/* Asynchronous execution and events                                        */
/* ------------------------------------------------------------------------ */
/* Operations return once enqueued.  Because the context's queue is
 * in-order, "the completion of an operation" is the completion of
 * everything enqueued on the context up to it.  These functions connect
 * that order to OpenCL events of the caller (or of other libraries). */

/** Makes every operation enqueued on ctx after this call wait until the
 *  `count` events have completed (events from the same cl_context; they
 *  may come from other queues or libraries).  count == 0 is a no-op. */
GPUMAT_API gpumat_status gpumat_wait_events(gpumat_context *ctx, size_t count,
                                            const cl_event *events);

/** Returns in *event a new OpenCL event that completes when every operation
 *  enqueued on ctx so far has completed.  The caller owns it
 *  (clReleaseEvent). */
GPUMAT_API gpumat_status gpumat_record_event(gpumat_context *ctx, cl_event *event);

/** Starts copying the matrix to host memory and returns at once; *event
 *  (caller-owned) completes when `host` holds the data.  `host` must stay
 *  valid and untouched until then.  event may be NULL, in which case only
 *  gpumat_finish() tells when the copy is done. */
GPUMAT_API gpumat_status gpumat_matrix_download_async(const gpumat_matrix *m, void *host,
                                                      cl_event *event);

#ifdef __cplusplus
}
#endif

#endif /* GPUMAT_H */
