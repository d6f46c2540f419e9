/*
 * gpumat_internal.h - what the library's source files share with each other.
 * Nothing here is part of the public interface; internal names start with
 * gpumat__ (two underscores) and are not exported from the shared library.
 */
#ifndef GPUMAT_INTERNAL_H
#define GPUMAT_INTERNAL_H

/* The library itself is written against OpenCL 1.2 so that it runs on every
 * ICD loader and driver still in use. */
#define CL_TARGET_OPENCL_VERSION 120
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#include "gpumat.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>

#define GPUMAT__MESSAGE_SIZE 8192

#if defined(__GNUC__)
#  define GPUMAT__PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#  define GPUMAT__PRINTF(f, a)
#endif

/* ---- errors.c ---------------------------------------------------------- */

/* Records a failure for ctx (may be NULL) and for the calling thread, and
 * returns `status` so that callers can write `return gpumat__fail(...)`. */
gpumat_status gpumat__fail(gpumat_context *ctx, gpumat_status status,
                           const char *fmt, ...) GPUMAT__PRINTF(3, 4);

/* Records an OpenCL failure: "<what>: <CL_ERROR_NAME> (<code>)", and
 * returns gpumat__status_of_cl(err). */
gpumat_status gpumat__fail_cl(gpumat_context *ctx, cl_int err, const char *fmt,
                              ...) GPUMAT__PRINTF(3, 4);

/* The status for an OpenCL error: GPUMAT_ERR_OUT_OF_MEMORY for the
 * allocation errors, GPUMAT_ERR_OPENCL for the rest. */
gpumat_status gpumat__status_of_cl(cl_int err);

/* "CL_OUT_OF_RESOURCES" and friends; "CL_UNKNOWN_ERROR" for unknown codes. */
const char *gpumat__cl_error_name(cl_int err);

/* ---- device.c: discovery and ranking ------------------------------------ */

typedef struct gpumat__device {
    cl_platform_id platform;
    cl_device_id id;
    gpumat_device_info info;
} gpumat__device;

/* Every device of every platform that has devices, in the order of
 * gpumat_device_list().  *devices is malloc'd; free() it.  ctx for errors. */
gpumat_status gpumat__devices_enumerate(gpumat__device **devices, size_t *count);

/* The first failed query of those that choose a context's kernels and
 * element types (type, vendor, compute units, local memory, work-group
 * size, extensions), or err CL_SUCCESS. */
typedef struct gpumat__describe_failure {
    cl_int err;
    const char *query;
} gpumat__describe_failure;

/* Fills info from the OpenCL queries (platform_index/device_index left 0);
 * a listing takes what answers (failed NULL), a context needs *failed to
 * say CL_SUCCESS. */
void gpumat__device_describe(cl_platform_id platform, cl_device_id device,
                             gpumat_device_info *info, gpumat__describe_failure *failed);

/* Applies the options/environment/automatic rules to choose one device. */
gpumat_status gpumat__device_pick(const gpumat__device *devices, size_t count,
                                  const gpumat_options *options, size_t *index,
                                  char *reason, size_t reason_size);

/* ---- profile.c: per-vendor kernel parameters (the dispatch point) ------- */

/* The GEMM kernel's blocking (see cl/gemm.cl for what each means). */
typedef struct gpumat__gemm_params {
    unsigned mwg, nwg, kwg;  /* work-group tile: rows of C, cols of C, depth */
    unsigned mdimc, ndimc;   /* work-group shape: threads along rows, cols   */
    /* The "_small" kernels' tile and shape (depth skwg), used when the
     * big tiles would give fewer than small_pct/100 work-groups per
     * compute unit. */
    unsigned smwg, snwg, smdimc, sndimc;
    unsigned small_pct;
    unsigned kwg64;          /* depth for double (kwg is for float)            */
    unsigned lbuf, lbuf64;   /* local tile buffers, 1 or 2 (float, double):
                              * 2 fills one while the other is read, one
                              * barrier per K step instead of two         */
    unsigned msub, nsub;     /* work-items of one SIMD group cover an
                              * msub x nsub patch of the mdimc x ndimc grid
                              * (msub 1, nsub ndimc: plain row-major)      */
    unsigned mwg64, nwg64, mdimc64, ndimc64; /* the big tile for double        */
    unsigned skwg;           /* depth of the "_small" float tiles (double's
                              * use kwg64)                                 */
    unsigned async, async64; /* 0, or the local buffers (2-4) of the big
                              * tile's direct-copy pipeline (float, double):
                              * global tiles copied straight into local
                              * memory async-1 steps ahead; cp.async on
                              * NVIDIA (see gpumat__profile_vendor_options) */
    /* 0, or the "_tiny" kernels' tile and shape (depth skwg, or kwg64 for
     * double), used when the small tiles would give fewer than
     * tiny_pct/100 work-groups per compute unit (host side only, like
     * small_pct: it changes no build). */
    unsigned tmwg, tnwg, tmdimc, tndimc;
    unsigned tiny_pct;
    unsigned slbuf;          /* local buffers of the small float tile (lbuf
                              * serves the big and tiny ones, lbuf64 every
                              * double tile) */
    /* cl/gemm_cpu.cl, the kernels for CPU drivers (no local memory, no
     * barriers), instead of cl/gemm.cl's tiles when cvw > 0: */
    unsigned cvw;            /* float vector width (double: cvw/2), or 0     */
    unsigned cmr, cnv;       /* NN/TN/TT block: rows x vectors of C          */
    unsigned cdm, cdn;       /* NT block: rows x columns of dot products     */
    unsigned cwx, cwy;       /* work-group: work-items along columns, rows   */
    unsigned cpack;          /* products of >= cpack^3 multiply-adds pack
                              * their operands into panels first          */
    unsigned ckc;            /* packed products run in passes of ckc values
                              * of k (0: one pass)                        */
    /* Stream-K (cl/gemm.cl): 0, or the float big tile's work-groups
     * that run at once per compute unit (S = skg * units); products whose
     * big tiles fill less than sk_fill% of their last wave of S split that
     * wave's tiles along k; skg64, sk_fill64: the same for the double big
     * tile.  The split part runs the register-staged form of the tile, also
     * where the plain kernels are the direct-copy pipeline.  sk_min: a
     * product too small to give every unit a big tile (small_pct) still
     * takes the big tile, all of it split along k, when each of the S
     * groups then gets at least sk_min K steps and the small tiles would
     * do worse (op_gemm.c; 0: never).  Host side. */
    unsigned skg, sk_fill, skg64, sk_fill64, sk_min;
    /* NVIDIA's own compiler on sm_90 or newer only: 0, or how many of the
     * last k's products of the float big tile's K loop move past the
     * step's second barrier in the compiled PTX; nv_skew: 0, or how many
     * bytes the second half of the NN kernel's transposed A tile moves up
     * there, which makes its stores conflict-free (nv_ptx.c, program.c). */
    unsigned nv_tail, nv_skew;
    /* nv_xcol: 1 to give the NN, NT and TN kernels, in the same PTX, the
     * extra-column tile index (gpumat__ptx_extra_column), with which the
     * stream-K path's plain part can run whole waves, and sk_fill_x: the
     * stream-K threshold (as sk_fill) for products that can (op_gemm.c);
     * nv_tail_sk: nv_tail for the stream-K NN kernel (nv_skew applies to
     * it too). */
    unsigned nv_xcol, sk_fill_x, nv_tail_sk;
    /* Transposed copies of an operand where a kernel that copies no tile
     * transposed into local memory gains more than the copy costs
     * (op_gemm.c; host side; 0: never): pack_a, float NN products on the
     * big tile with n >= pack_a and m*n*k >= pack_a^3 run as TN on a copy
     * of A^T; pack_b, NT and TT products (either dtype) with m >= pack_b
     * and m*n*k >= pack_b^3 run as NN and TN on a copy of B (a
     * materialised transpose of a transposed operand, which no shipped
     * profile makes). */
    unsigned pack_a, pack_b;
    /* 0, or the depth of the small and tiny double tiles' K step (else
     * KWG64, the big double tile's, whose direct-copy pipeline wants it
     * shallow while small products run a step's latency per step). */
    unsigned skwg64;
    /* 0, or the depth of the small and tiny float TT kernels (else SKWG:
     * on the H100 TT loses where the other cases gain from a deeper
     * small tile). */
    unsigned ttkwg;
    /* 0, or the float small tile's time per SKWG-deep K step, in percent
     * of the big tile's per KWG-deep step (each at the groups per compute
     * unit it runs), and sk_fix, the stream-K split's fixed cost in big
     * steps: a float product that sk_min would split whole stays on the
     * small tiles where they run at most two groups per compute unit and
     * cost less by these (op_gemm.c; host side). */
    unsigned sk_small, sk_fix;
    /* 0, or the double tiles' MSUB x NSUB patch (else MSUB, NSUB): which
     * work-items share a warp decides how many different local vectors
     * one read takes, and double's reads are twice as wide. */
    unsigned msub64, nsub64;
    /* The split tile (all four 0: none): a product whose big tiles would
     * not fill the device and whose tiles of this size number fewer than
     * a wave of skgm groups per compute unit (skgm64 for double; 0: not
     * for that type) runs all of it split along k on this tile, where the
     * small tiles would give a compute unit at most one group of the
     * whole depth and the big split wastes big tiles' edges.  Depth kwg
     * (kwg64 for double); its own program (GPUMAT__PROGRAM_GEMM_SK_MID:
     * cl/gemm.cl's stream-K kernels with the big tile's macros set to
     * this one).  Host side. */
    unsigned mmwg, mnwg, mmdimc, mndimc;
    unsigned skgm, skgm64;
    /* The split tile only where each of its groups gets sk_min_mid K
     * steps, and the small or tiny tiles would give fewer than
     * mid_pct/100 groups per compute unit (mid_pct64 for double). */
    unsigned sk_min_mid, mid_pct, mid_pct64;
    /* A product on the split tile whose tiles would each be cut into more
     * than sk_split runs is split along k into slices written apart and
     * summed by a kernel of their own (split-K, GPUMAT__PROGRAM_GEMM_KSPLIT)
     * instead of stream-K, whose last contributor adds the runs up alone;
     * 0: always stream-K.  Host side. */
    unsigned sk_split;
} gpumat__gemm_params;

/* gpumat_transpose()'s kernels (cl/transpose.cl).  Sides and work-items
 * count float elements; double uses half of each. */
typedef struct gpumat__transpose_params {
    unsigned tv;        /* TV: bytes per global access of transpose_v (4, 8, 16) */
    unsigned tvs, tvw;  /* TVS, TVW: transpose_v's tile side and work-items */
    unsigned tms, tmw;  /* TMS, TMW: transpose_m's (other shapes) tile side and work-items */
    unsigned tmg;       /* TMG: transpose_m starts each run it writes to a row of t
                         * on a TMG-byte boundary (4: plain square tiles) */
    unsigned tmo;       /* TMO: transpose_m's group order: 1 along a's rows, 2 down
                         * its columns */
} gpumat__transpose_params;

typedef struct gpumat__profile {
    const char *name;
    gpumat__gemm_params gemm;
    unsigned transpose_tile;   /* side of geam's square transpose tile */
    unsigned elementwise_wg;   /* work-group size of element-wise kernels */
    gpumat__transpose_params transpose;
} gpumat__profile;

/* Rows of work-items in geam's transpose work-group: each walks TS/TR rows. */
static inline unsigned gpumat__transpose_rows(const gpumat__profile *p)
{
    return p->transpose_tile / 4;
}

/* The profile for a device: chosen by vendor and type. */
const gpumat__profile *gpumat__profile_for(const gpumat_device_info *info);

/* The profile a context uses: gpumat__profile_for(), unless GPUMAT_PROFILE
 * names another shipped profile; then GPUMAT_KERNEL_PARAMS
 * ("MWG=128,NWG=64,...") overrides single parameters (for tuning and
 * tests).  A bad value fails with GPUMAT_ERR_INVALID_ARGUMENT.  Without
 * GPUMAT_KERNEL_PARAMS, the device's tuning file (tuning.c) overrides them
 * when it is valid; *tuning (may be NULL) receives what happened and the
 * GEMM dispatch table.  The tuning file never makes this fail. */
typedef struct gpumat__tuning gpumat__tuning;
gpumat_status gpumat__profile_choose(const gpumat_device_info *info, gpumat__profile *out,
                                     gpumat__tuning *tuning);

/* Every shipped profile, for tools and tests that go through them all. */
size_t gpumat__profile_count(void);
const gpumat__profile *gpumat__profile_at(size_t i);

/* Writes the profile's OpenCL build options ("-D..." list) into buf. */
void gpumat__profile_build_options(const gpumat__profile *p, char *buf, size_t size);

/* Whether the -D parameter name[0..len) sizes only the other element
 * type's GEMM kernels (KWG64 for a float program, KWG for a double one), so
 * that a program built for one type can leave it out. */
bool gpumat__profile_option_other_type(const char *name, size_t len, bool f64);

/* Writes the build options that only NVIDIA's own OpenCL compiler takes
 * (GPUMAT_NV_ASYNC, which turns on cl/gemm.cl's inline PTX) for the float
 * (f64 false) or double program into buf, or "" when nv_sm is 0 or the
 * profile needs none.  nv_sm is the device's compute capability
 * times 10 when that compiler builds for it (cl_nv_compiler_options and
 * cl_nv_device_attribute_query), else 0.  Kept out of
 * gpumat__profile_build_options so that portable builds of a profile
 * (tools/check-portability, PoCL under GPUMAT_PROFILE) never see them. */
void gpumat__profile_vendor_options(const gpumat__profile *p, unsigned nv_sm, bool f64,
                                    char *buf, size_t size);

/* ---- tuning.c: measured parameters and per-call GEMM dispatch ----------- */

#define GPUMAT__TUNING_MAX_CLASSES 16
#define GPUMAT__TUNING_PATH_SIZE (4096 + 64)
#define GPUMAT__TUNING_NOTE_SIZE (GPUMAT__TUNING_PATH_SIZE + 1024)

/* Products with cbrt(m*n*k) <= limit (and above the previous class's
 * limit) use `backend` under AUTO dispatch; the last class takes every
 * larger product too. */
typedef struct gpumat__gemm_class {
    unsigned limit;
    gpumat_gemm_backend backend;
} gpumat__gemm_class;

struct gpumat__tuning {
    char path[GPUMAT__TUNING_PATH_SIZE];  /* the device's tuning file; "" if none */
    char note[GPUMAT__TUNING_NOTE_SIZE];  /* gpumat_context_tuning() */
    /* AUTO's size classes per element type: [0] float, [1] double. */
    unsigned class_count[2];
    gpumat__gemm_class classes[2][GPUMAT__TUNING_MAX_CLASSES];
};

/* profile.c's own checks, handed to tuning.c so that a file's parameters
 * pass exactly the GPUMAT_KERNEL_PARAMS rules and the device's limits. */
typedef gpumat_status (*gpumat__params_apply_fn)(gpumat__profile *p, const char *spec);
typedef bool (*gpumat__params_fit_fn)(const gpumat__profile *p, const gpumat_device_info *info);

/* Fills *tuning for a device whose profile is *profile and applies the
 * tuning file's parameters to *profile when the file is valid (not when
 * params_from_env: GPUMAT_KERNEL_PARAMS wins and the file is not read).
 * Never fails and leaves the thread's last error as it was. */
void gpumat__tuning_apply(const gpumat_device_info *info, gpumat__profile *profile,
                          bool params_from_env, gpumat__params_apply_fn apply,
                          gpumat__params_fit_fn fit, gpumat__tuning *tuning);

/* The backend gpumat_gemm() uses on ctx for an m x k by k x n product of
 * dtype: the forced one, or under AUTO the size class's (native when
 * CLBlast is missing).  No lock needed: it reads only what creation fixed. */
gpumat_gemm_backend gpumat__gemm_choose(const gpumat_context *ctx, gpumat_dtype dtype, size_t m,
                                        size_t n, size_t k);

/* ---- program.c: embedded kernels, lazily built ------------------------- */

typedef enum gpumat__program_id {
    GPUMAT__PROGRAM_ELEMENTWISE = 0,
    GPUMAT__PROGRAM_TRANSPOSE,
    GPUMAT__PROGRAM_GEMM,
    GPUMAT__PROGRAM_ML,
    GPUMAT__PROGRAM_GEMM_CPU,
    GPUMAT__PROGRAM_GEMM_SK, /* cl/gemm.cl's stream-K kernels, built on first use */
    GPUMAT__PROGRAM_GEMM_SK_MID, /* the same on the split tile (mmwg, ...) */
    GPUMAT__PROGRAM_GEMM_KSPLIT, /* cl/gemm.cl's split-K kernels, on the split tile */
    GPUMAT__PROGRAM_COUNT
} gpumat__program_id;

/* The embedded source of each cl/<name>.cl, generated at build time. */
typedef struct gpumat__embedded_source {
    const char *name;   /* file name without .cl */
    const char *text;
} gpumat__embedded_source;
extern const gpumat__embedded_source gpumat__embedded_sources[];
extern const size_t gpumat__embedded_source_count;

/* Returns the kernel `kernel_name` of program `id` built for dtype, building
 * the program on first use.  The caller holds ctx->lock.  The kernel object
 * is owned by the context. */
gpumat_status gpumat__kernel(gpumat_context *ctx, gpumat__program_id id,
                             gpumat_dtype dtype, const char *kernel_name,
                             cl_kernel *kernel);

/* Releases every program and kernel of the context. */
void gpumat__programs_release(gpumat_context *ctx);

/* ---- transfer.c: host <-> device copies ---------------------------------- */

/* Staged transfers move GPUMAT__STAGING_CHUNK bytes per DMA.  Up to
 * GPUMAT__STAGING_MAX_WORKERS threads copy between the caller's memory and
 * the pinned areas at once (one core's memcpy is slower than the bus), each
 * with two areas of its own so that its copy overlaps its last DMA. */
#define GPUMAT__STAGING_CHUNK ((size_t)4 << 20)
#define GPUMAT__STAGING_MAX_WORKERS 8

/* One pinned host allocation: a CL_MEM_ALLOC_HOST_PTR buffer kept mapped. */
typedef struct gpumat__pinned {
    cl_mem buffer;
    unsigned char *host;
    size_t bytes;
    struct gpumat__pinned *next;
} gpumat__pinned;

typedef struct gpumat__staging {
    /* The areas are used under the context's lock (a staged transfer holds
     * it throughout); this lock guards only `user`. */
    pthread_mutex_t lock;
    gpumat__pinned *areas[2 * GPUMAT__STAGING_MAX_WORKERS]; /* created on demand */
    cl_event pending[2 * GPUMAT__STAGING_MAX_WORKERS];      /* last DMA on each area */
    gpumat__pinned *user;          /* gpumat_host_alloc() allocations */
    int forced;                    /* GPUMAT_TRANSFER: 0 auto, 1 direct, 2 staged */
    unsigned workers;              /* copy threads per staged transfer */
} gpumat__staging;

gpumat_status gpumat__staging_init(gpumat_context *ctx);
void gpumat__staging_release(gpumat_context *ctx);

/* ---- context.c ----------------------------------------------------------- */

#define GPUMAT__MAX_KERNELS 16
#define GPUMAT__CACHE_DIR_SIZE 4096

typedef struct gpumat__kernel_slot {
    const char *name;
    cl_kernel kernel;
} gpumat__kernel_slot;

typedef struct gpumat__program_slot {
    cl_program program;
    gpumat__kernel_slot kernels[GPUMAT__MAX_KERNELS];
    /* The float GEMM program's NN, NT and TN big-tile kernels take the
     * extra-column tile index (nv_ptx.c, program.c, op_gemm.c). */
    bool extra_column;
} gpumat__program_slot;

struct gpumat_context {
    cl_context cl_ctx;
    cl_command_queue queue;
    cl_device_id device;
    gpumat_device_info info;
    gpumat__profile profile;   /* a copy: overrides may change it */
    char build_options[512];
    gpumat_gemm_backend gemm_backend; /* forced, or AUTO: per call (tuning.c) */
    gpumat__tuning tuning;     /* the tuning file's outcome, AUTO's size classes */
    bool clblast_used;         /* an AUTO call ran CLBlast (guarded by lock) */
    uint64_t max_alloc_bytes;  /* CL_DEVICE_MAX_MEM_ALLOC_SIZE */
    uint64_t mem_cache_bytes;  /* CL_DEVICE_GLOBAL_MEM_CACHE_SIZE (0: unknown) */

    /* Held by every call while it enqueues: kernel arguments are per
     * kernel object, so set-arg + enqueue must not interleave between
     * threads, and the commands of one call (a staged transfer's chunks,
     * a product's passes) must reach the queue with no other thread's
     * command between them. */
    pthread_mutex_t lock;
    gpumat__program_slot programs[GPUMAT__PROGRAM_COUNT][2]; /* [id][dtype-1] */

    /* The last failure on this context, guarded by error_lock (separate so
     * that a failure can be recorded with or without `lock` held). */
    pthread_mutex_t error_lock;
    char last_error[GPUMAT__MESSAGE_SIZE];

    /* The kernel cache (cache.c) and build statistics, guarded by `lock`.
     * The directory is resolved when the first program is built, so that
     * contexts that never build cost no file system access. */
    bool cache_resolved;
    char cache_dir[GPUMAT__CACHE_DIR_SIZE]; /* "" once resolved: no cache */
    gpumat_build_stats build_stats;
    /* gpumat_context_kernel_notes: one line per program whose binary was
     * meant to be rewritten (program.c), also guarded by `lock`. */
    char kernel_notes[512];

    gpumat__staging staging;

    /* The operand copies (op_gemm.c: cl/gemm_cpu.cl's packed panels, the
     * GPU kernels' transposed copies), kept between calls and guarded by
     * `lock`: a fresh buffer per call costs a page fault per page on first
     * touch, which on a VM took longer than packing. */
    cl_mem gemm_pack[2];
    size_t gemm_pack_bytes[2];
    /* Stream-K's partial sums and per-tile counters (op_gemm.c), kept
     * between calls and guarded by `lock`; a new counter buffer is filled
     * with zeros and each call leaves the counters at zero.  These and the
     * pack buffers are the GEMM scratch that gpumat_context_trim()
     * releases (context.c: every buffer NULL, every size 0). */
    cl_mem gemm_sk_sums, gemm_sk_counts;
    size_t gemm_sk_sums_bytes, gemm_sk_counts_bytes;
};

/* ---- cache.c: the persistent kernel cache ------------------------------- */

/* Where one program's entry lives and the full key it must carry. */
typedef struct gpumat__cache_entry {
    char *path;
    char *key;
    size_t key_len;
} gpumat__cache_entry;

/* Resolves the cache directory on first use (GPUMAT_CACHE, GPUMAT_CACHE_DIR,
 * XDG_CACHE_HOME, HOME) and fills *entry for the program built from
 * `source` with `options` on ctx's device.  false: no cache for this build
 * (disabled, no usable directory, or a failed query); nothing to free. */
bool gpumat__cache_entry_init(gpumat_context *ctx, const char *program_name,
                              const char *source, const char *options,
                              gpumat__cache_entry *entry);
void gpumat__cache_entry_free(gpumat__cache_entry *entry);

/* A program built from the entry's binary, or NULL for any problem at all
 * (missing, foreign, corrupt, rejected by the driver).  Never records an
 * error on ctx. */
cl_program gpumat__cache_load(gpumat_context *ctx, const gpumat__cache_entry *entry,
                              const char *options);

/* Saves the built program's binary as the entry, atomically; failures are
 * ignored. */
void gpumat__cache_store(gpumat_context *ctx, const gpumat__cache_entry *entry,
                         cl_program program);

/* A program built from a binary for ctx's device, or NULL for any
 * problem (rejected binary, failed build); records no error. */
cl_program gpumat__program_from_binary(gpumat_context *ctx, const unsigned char *binary,
                                       size_t size, const char *options);

/* This device's binary of a built program (malloc'd, *size bytes), or NULL. */
unsigned char *gpumat__program_binary(gpumat_context *ctx, cl_program program, size_t *size);

/* ---- nv_ptx.c: passes over NVIDIA's PTX ------------------------------------ */

/* In each kernel of `kernels` found in the PTX text ptx[0, len), moves the
 * last `count` products (fma.rn.f32) of the K loop's block to after the
 * barrier that opens the block's join, where they overlap the wait for the
 * next step's first local reads.  Returns the rewritten text (malloc'd,
 * *out_len bytes) with *rewritten kernels changed, or NULL when no kernel
 * has the shape that makes the move safe (nv_ptx.c says which).  Pure
 * text; used only on what NVIDIA's compiler built (program.c). */
char *gpumat__ptx_defer_products(const char *ptx, size_t len, const char *const *kernels,
                                 size_t n_kernels, unsigned count, size_t *out_len,
                                 unsigned *rewritten);

/* In kernel `kernel`, moves rows rows/2 .. rows-1 of its local array
 * `array` (rows x row_bytes, written by `pieces` store bases of four rows
 * each, or twice that many where the loop computes its own) `skew` bytes
 * up: the array grows, the stores of work-items whose
 * chunk of rows is 2 or 3 (bit 1 of tid.x) and the K loop's reads of those
 * rows move with them, so that a warp's transposed stores hit every bank
 * once.  Returns the new text (malloc'd, *out_len bytes) or NULL when the
 * kernel does not have exactly that shape (nv_ptx.c says how it checks). */
char *gpumat__ptx_skew_rows(const char *ptx, size_t len, const char *kernel, const char *array,
                            unsigned rows, unsigned row_bytes, unsigned pieces, unsigned skew,
                            size_t *out_len);

/* In each kernel of `kernels`, makes the group index (x, y) that NVIDIA's
 * front end reads from %ctaid and %envreg depend on the launch's global
 * offset E along x (get_global_offset(0)): groups in column E - 1 take
 * tile row (number of group rows), tile column y; every other group, and
 * every group of a launch without an offset, keeps (x, y).  A grid one
 * column wider than the tile columns, of R rows, with offset columns + 1,
 * covers R whole tile rows and the first R tiles of the next: op_gemm.c's
 * stream-K path runs whole waves that way.  Returns the new text
 * (malloc'd, *out_len bytes, *rewritten kernels changed) or NULL when no
 * kernel reads its group index only in that form (nv_ptx.c). */
char *gpumat__ptx_extra_column(const char *ptx, size_t len, const char *const *kernels,
                               size_t n_kernels, size_t *out_len, unsigned *rewritten);

/* The passes program.c runs over one program's PTX, in this order; a
 * zero count or an empty kernel list leaves a pass out. */
typedef struct gpumat__ptx_plan {
    unsigned tail; /* gpumat__ptx_defer_products */
    const char *const *tail_kernels;
    size_t n_tail_kernels;
    unsigned skew; /* gpumat__ptx_skew_rows */
    const char *skew_kernel, *skew_array;
    unsigned skew_rows, skew_row_bytes, skew_pieces;
    const char *const *xcol_kernels; /* gpumat__ptx_extra_column, all or none */
    size_t n_xcol_kernels;
} gpumat__ptx_plan;

/* Bits of gpumat__ptx_passes's *applied. */
enum { GPUMAT__PTX_TAIL = 1u, GPUMAT__PTX_SKEW = 2u, GPUMAT__PTX_XCOL = 4u };

/* Runs the plan's passes over ptx[0, len), each on the previous one's
 * output.  Returns the new text (malloc'd, *out_len bytes) with *applied
 * the passes that changed it, or NULL (*applied 0) when none did. */
char *gpumat__ptx_passes(const char *ptx, size_t len, const gpumat__ptx_plan *plan,
                         size_t *out_len, unsigned *applied);

/* A monotonic clock for the build statistics. */
double gpumat__now_seconds(void);

/* ---- matrix.c ------------------------------------------------------------ */

struct gpumat_matrix {
    gpumat_context *ctx;
    cl_mem buffer;
    size_t rows, cols;
    gpumat_dtype dtype;
    size_t bytes;
};

/* "f32", "f64" or "unknown", for messages. */
const char *gpumat__dtype_name(gpumat_dtype dtype);

/* The context to report a failure to, given operands that may be NULL. */
gpumat_context *gpumat__context_of(const gpumat_matrix *a, const gpumat_matrix *b,
                                   const gpumat_matrix *c);

/* Checks that none of the `count` operands is NULL, all share one context
 * and one dtype.  names[i] names operand i in messages ("c", "a", ...). */
gpumat_status gpumat__check_operands(const char *op, size_t count,
                                     const gpumat_matrix *const *operands,
                                     const char *const *names);

/* Sets kernel arguments from a list of (size, pointer) pairs and reports
 * the first failure. */
gpumat_status gpumat__set_args(gpumat_context *ctx, cl_kernel kernel,
                               const char *kernel_name, unsigned count, ...);
/* The same for arguments first, first + 1, ... */
gpumat_status gpumat__set_args_from(gpumat_context *ctx, cl_kernel kernel,
                                    const char *kernel_name, unsigned first, unsigned count, ...);

/* A scratch buffer of `elements` of dtype, for results between two kernels
 * of one call.  The caller releases it right after enqueueing its last
 * use: OpenCL frees it only once those commands have finished. */
gpumat_status gpumat__temp_buffer(gpumat_context *ctx, const char *op, gpumat_dtype dtype,
                                  size_t elements, cl_mem *out);

/* Enqueues a kernel over a 1-, 2-dimensional range and reports failure. */
gpumat_status gpumat__launch(gpumat_context *ctx, cl_kernel kernel,
                             const char *kernel_name, cl_uint dims,
                             const size_t *global, const size_t *local);
/* The same with a global offset (NULL: none). */
gpumat_status gpumat__launch_at(gpumat_context *ctx, cl_kernel kernel, const char *kernel_name,
                                cl_uint dims, const size_t *offset, const size_t *global,
                                const size_t *local);

/* Rounds x up to a multiple of m (m > 0). */
static inline size_t gpumat__round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

/* ---- clblast.c: optional backend loaded at run time --------------------- */

/* Loads CLBlast once per process; false (with why filled) if missing. */
bool gpumat__clblast_available(char *why, size_t why_size);

/* A checked GEMM call: C = alpha*op(A)*op(B) + beta*C, row-major, op(A)
 * is m x k, op(B) is k x n; lda/ldb/ldc are the stored row lengths. */
typedef struct gpumat__gemm_call {
    gpumat_dtype dtype;
    bool trans_a, trans_b;
    size_t m, n, k;
    double alpha, beta;
    cl_mem a, b, c;
    size_t lda, ldb, ldc;
} gpumat__gemm_call;

/* Drops CLBlast's cached programs (and its references to contexts). */
void gpumat__clblast_release(void);

/* The two backends; the caller holds ctx->lock. */
gpumat_status gpumat__clblast_gemm(gpumat_context *ctx, const gpumat__gemm_call *call);
gpumat_status gpumat__native_gemm(gpumat_context *ctx, const gpumat__gemm_call *call);

/* ---- op_transpose.c ------------------------------------------------------ */

/* Enqueues dst = transpose(src) for a dense rows x cols src of dtype (dst:
 * cols x rows); the caller holds ctx->lock. */
gpumat_status gpumat__transpose_buffer(gpumat_context *ctx, gpumat_dtype dtype, size_t rows,
                                       size_t cols, cl_mem src, cl_mem dst);

#endif /* GPUMAT_INTERNAL_H */
