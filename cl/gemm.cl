/*
 * General matrix product C = alpha * op(A) * op(B) + beta * C, row-major,
 * with op(X) = X or X^T read in place.  op(A) is M x K, op(B) is K x N.
 *
 * Blocking (all -D parameters chosen per device by the library's profile):
 *   MWG x NWG  the tile of C one work-group computes
 *   KWG        the depth of the A and B tiles staged in local memory per step
 *   MDIMC x NDIMC  the work-group shape; each work-item accumulates
 *              (MWG/MDIMC) x (NWG/NDIMC) outputs in registers, in 4x4
 *              blocks strided by 4*MDIMC and 4*NDIMC, so that each local
 *              read is one 4-wide vector and neighbouring work-items read
 *              neighbouring vectors (no bank conflicts, coalesced stores).
 *   SMWG, SNWG, SMDIMC, SNDIMC  the same for the "_small" kernels, which
 *              the host picks when the big tiles would leave compute units
 *              idle.
 * A is staged transposed (As[k][m]) so that both operands are read along
 * the tile's M or N side.  The next K step's tiles are fetched into
 * registers while the current one is multiplied, so global latency hides
 * behind arithmetic.  Tiles wholly inside the matrices, with rows aligned
 * to 4 elements, are fetched with 4-wide vector loads; edge tiles use
 * bounds-checked scalar loads with zeros outside, so any M, N, K and any
 * lda works without a padding copy.
 * With beta == 0, C is only written, never read: NaNs in an uninitialised
 * C must not leak into the result.
 */
#ifdef GPUMAT_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#define REAL4 double4
#else
#define REAL4 float4
#endif

/* Local rows are padded by one vector: keeps 4-element alignment for the
 * vector reads while spreading the transposed stores of A over banks. */
#define LPAD 4

#define GEMM_UNROLL _Pragma("unroll")

/* The kernel body is a macro so that one source can hold two tile shapes:
 * register arrays need compile-time sizes. */
#define GEMM_DEFINE(SUF, MW, NW, MD, ND)                                                 \
void gemm_load_##SUF(const int M, const int N, const int K, const int k0,               \
                     __global const REAL *A, const int lda, __global const REAL *B,     \
                     const int ldb, const int trans_a, const int trans_b,               \
                     const int m0, const int n0, const int tid,                         \
                     REAL *pa, REAL *pb)                                                \
{                                                                                       \
    const int vec_a = (lda & 3) == 0 && m0 + MW <= M && k0 + KWG <= K;                  \
    const int vec_b = (ldb & 3) == 0 && n0 + NW <= N && k0 + KWG <= K;                  \
    GEMM_UNROLL                                                                         \
    for (int q = 0; q < MW * KWG / (4 * MD * ND); ++q) {                                \
        const int i = tid + q * MD * ND;                                                \
        /* Four consecutive elements along the operand's stored row. */                \
        const int r = trans_a ? k0 + i / (MW / 4) : m0 + i / (KWG / 4);                 \
        const int c = trans_a ? m0 + i % (MW / 4) * 4 : k0 + i % (KWG / 4) * 4;         \
        const int rows = trans_a ? K : M, cols = trans_a ? M : K;                       \
        __global const REAL *p = A + (size_t)r * lda + c;                               \
        if (vec_a) {                                                                    \
            const REAL4 v = *(__global const REAL4 *)p;                                 \
            pa[4 * q] = v.s0; pa[4 * q + 1] = v.s1;                                     \
            pa[4 * q + 2] = v.s2; pa[4 * q + 3] = v.s3;                                 \
        } else {                                                                        \
            GEMM_UNROLL                                                                 \
            for (int v = 0; v < 4; ++v)                                                 \
                pa[4 * q + v] = r < rows && c + v < cols ? p[v] : 0;                    \
        }                                                                               \
    }                                                                                   \
    GEMM_UNROLL                                                                         \
    for (int q = 0; q < NW * KWG / (4 * MD * ND); ++q) {                                \
        const int i = tid + q * MD * ND;                                                \
        const int r = trans_b ? n0 + i / (KWG / 4) : k0 + i / (NW / 4);                 \
        const int c = trans_b ? k0 + i % (KWG / 4) * 4 : n0 + i % (NW / 4) * 4;         \
        const int rows = trans_b ? N : K, cols = trans_b ? K : N;                       \
        __global const REAL *p = B + (size_t)r * ldb + c;                               \
        if (vec_b) {                                                                    \
            const REAL4 v = *(__global const REAL4 *)p;                                 \
            pb[4 * q] = v.s0; pb[4 * q + 1] = v.s1;                                     \
            pb[4 * q + 2] = v.s2; pb[4 * q + 3] = v.s3;                                 \
        } else {                                                                        \
            GEMM_UNROLL                                                                 \
            for (int v = 0; v < 4; ++v)                                                 \
                pb[4 * q + v] = r < rows && c + v < cols ? p[v] : 0;                    \
        }                                                                               \
    }                                                                                   \
}                                                                                       \
                                                                                        \
void gemm_tile_##SUF(const int M, const int N, const int K, const REAL alpha,           \
                     const REAL beta, __global const REAL *A, const int lda,            \
                     __global const REAL *B, const int ldb, __global REAL *C,           \
                     const int ldc, const int trans_a, const int trans_b,               \
                     __local REAL *As, __local REAL *Bs)                                \
{                                                                                       \
    const int tx = get_local_id(0), ty = get_local_id(1);                               \
    const int tid = ty * ND + tx;                                                       \
    const int m0 = get_group_id(1) * MW, n0 = get_group_id(0) * NW;                     \
    REAL acc[MW / MD][NW / ND];                                                         \
    GEMM_UNROLL                                                                         \
    for (int i = 0; i < MW / MD; ++i)                                                   \
        GEMM_UNROLL                                                                     \
        for (int j = 0; j < NW / ND; ++j)                                               \
            acc[i][j] = 0;                                                              \
    REAL pa[MW * KWG / (MD * ND)], pb[NW * KWG / (MD * ND)];                            \
    gemm_load_##SUF(M, N, K, 0, A, lda, B, ldb, trans_a, trans_b, m0, n0, tid, pa, pb); \
                                                                                        \
    for (int k0 = 0; k0 < K; k0 += KWG) {                                               \
        GEMM_UNROLL                                                                     \
        for (int q = 0; q < MW * KWG / (4 * MD * ND); ++q) {                            \
            const int i = tid + q * MD * ND;                                            \
            if (trans_a) {                                                              \
                const int kk = i / (MW / 4), mm = i % (MW / 4) * 4;                     \
                GEMM_UNROLL                                                             \
                for (int v = 0; v < 4; ++v)                                             \
                    As[kk * (MW + LPAD) + mm + v] = pa[4 * q + v];                      \
            } else {                                                                    \
                const int mm = i / (KWG / 4), kk = i % (KWG / 4) * 4;                   \
                GEMM_UNROLL                                                             \
                for (int v = 0; v < 4; ++v)                                             \
                    As[(kk + v) * (MW + LPAD) + mm] = pa[4 * q + v];                    \
            }                                                                           \
        }                                                                               \
        GEMM_UNROLL                                                                     \
        for (int q = 0; q < NW * KWG / (4 * MD * ND); ++q) {                            \
            const int i = tid + q * MD * ND;                                            \
            if (trans_b) {                                                              \
                const int nn = i / (KWG / 4), kk = i % (KWG / 4) * 4;                   \
                GEMM_UNROLL                                                             \
                for (int v = 0; v < 4; ++v)                                             \
                    Bs[(kk + v) * (NW + LPAD) + nn] = pb[4 * q + v];                    \
            } else {                                                                    \
                const int kk = i / (NW / 4), nn = i % (NW / 4) * 4;                     \
                GEMM_UNROLL                                                             \
                for (int v = 0; v < 4; ++v)                                             \
                    Bs[kk * (NW + LPAD) + nn + v] = pb[4 * q + v];                      \
            }                                                                           \
        }                                                                               \
        barrier(CLK_LOCAL_MEM_FENCE);                                                   \
        if (k0 + KWG < K)                                                               \
            gemm_load_##SUF(M, N, K, k0 + KWG, A, lda, B, ldb, trans_a, trans_b, m0,    \
                            n0, tid, pa, pb);                                           \
        GEMM_UNROLL                                                                     \
        for (int kk = 0; kk < KWG; ++kk) {                                              \
            REAL a[MW / MD], b[NW / ND];                                                \
            GEMM_UNROLL                                                                 \
            for (int i = 0; i < MW / MD / 4; ++i) {                                     \
                const REAL4 v = *(__local const REAL4 *)                                \
                    (As + kk * (MW + LPAD) + i * 4 * MD + ty * 4);                      \
                a[4 * i] = v.s0; a[4 * i + 1] = v.s1;                                   \
                a[4 * i + 2] = v.s2; a[4 * i + 3] = v.s3;                               \
            }                                                                           \
            GEMM_UNROLL                                                                 \
            for (int j = 0; j < NW / ND / 4; ++j) {                                     \
                const REAL4 v = *(__local const REAL4 *)                                \
                    (Bs + kk * (NW + LPAD) + j * 4 * ND + tx * 4);                      \
                b[4 * j] = v.s0; b[4 * j + 1] = v.s1;                                   \
                b[4 * j + 2] = v.s2; b[4 * j + 3] = v.s3;                               \
            }                                                                           \
            GEMM_UNROLL                                                                 \
            for (int i = 0; i < MW / MD; ++i)                                           \
                GEMM_UNROLL                                                             \
                for (int j = 0; j < NW / ND; ++j)                                       \
                    acc[i][j] = mad(a[i], b[j], acc[i][j]);                             \
        }                                                                               \
        barrier(CLK_LOCAL_MEM_FENCE);                                                   \
    }                                                                                   \
                                                                                        \
    const int whole = m0 + MW <= M && n0 + NW <= N && (ldc & 3) == 0;                   \
    GEMM_UNROLL                                                                         \
    for (int i = 0; i < MW / MD; ++i) {                                                 \
        const int gm = m0 + i / 4 * 4 * MD + ty * 4 + i % 4;                            \
        GEMM_UNROLL                                                                     \
        for (int j = 0; j < NW / ND / 4; ++j) {                                         \
            const int gn = n0 + j * 4 * ND + tx * 4;                                    \
            __global REAL *c = C + (size_t)gm * ldc + gn;                               \
            REAL4 r = (REAL4)(acc[i][4 * j], acc[i][4 * j + 1], acc[i][4 * j + 2],      \
                              acc[i][4 * j + 3]) * alpha;                               \
            if (whole) {                                                                \
                if (beta != 0)                                                          \
                    r += beta * *(__global REAL4 *)c;                                   \
                *(__global REAL4 *)c = r;                                               \
            } else if (gm < M) {                                                        \
                const REAL rv[4] = {r.s0, r.s1, r.s2, r.s3};                            \
                GEMM_UNROLL                                                             \
                for (int v = 0; v < 4; ++v)                                             \
                    if (gn + v < N)                                                     \
                        c[v] = beta == 0 ? rv[v] : rv[v] + beta * c[v];                 \
            }                                                                           \
        }                                                                               \
    }                                                                                   \
}

/* One entry point per transpose case, so each compiles to a specialised
 * body with its own load order. */
#define GEMM_KERNEL(name, SUF, MW, NW, MD, ND, ta, tb)                                  \
    __kernel __attribute__((reqd_work_group_size(ND, MD, 1)))                           \
    void name(const int M, const int N, const int K, const REAL alpha,                  \
              const REAL beta, __global const REAL *A, const int lda,                   \
              __global const REAL *B, const int ldb, __global REAL *C, const int ldc)   \
    {                                                                                   \
        __local REAL4 As[KWG * (MW + LPAD) / 4];                                        \
        __local REAL4 Bs[KWG * (NW + LPAD) / 4];                                        \
        gemm_tile_##SUF(M, N, K, alpha, beta, A, lda, B, ldb, C, ldc, ta, tb,           \
                        (__local REAL *)As, (__local REAL *)Bs);                        \
    }

GEMM_DEFINE(big, MWG, NWG, MDIMC, NDIMC)
GEMM_DEFINE(small, SMWG, SNWG, SMDIMC, SNDIMC)

GEMM_KERNEL(gemm_nn, big, MWG, NWG, MDIMC, NDIMC, 0, 0)
GEMM_KERNEL(gemm_nt, big, MWG, NWG, MDIMC, NDIMC, 0, 1)
GEMM_KERNEL(gemm_tn, big, MWG, NWG, MDIMC, NDIMC, 1, 0)
GEMM_KERNEL(gemm_tt, big, MWG, NWG, MDIMC, NDIMC, 1, 1)
GEMM_KERNEL(gemm_nn_small, small, SMWG, SNWG, SMDIMC, SNDIMC, 0, 0)
GEMM_KERNEL(gemm_nt_small, small, SMWG, SNWG, SMDIMC, SNDIMC, 0, 1)
GEMM_KERNEL(gemm_tn_small, small, SMWG, SNWG, SMDIMC, SNDIMC, 1, 0)
GEMM_KERNEL(gemm_tt_small, small, SMWG, SNWG, SMDIMC, SNDIMC, 1, 1)
