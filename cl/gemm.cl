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
 *   SMWG, SNWG, SMDIMC, SNDIMC, SKWG  the same for the "_small" kernels,
 *              which the host picks when the big tiles would leave compute
 *              units idle.
 *   MWG64, NWG64, MDIMC64, NDIMC64, KWG64  the big tile and depth for
 *              double (the small double tile uses KWG64 too).
 *   LBUF, LBUF64  local buffers per tile (1 or 2): 2 fills one while the
 *              other is read, with one barrier per K step instead of two.
 *   MSUB, NSUB  consecutive work-items (a warp when MSUB*NSUB is the SIMD
 *              width) cover an MSUB x NSUB patch of the work-item grid.
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
/* Doubles take twice the registers and local memory: their own big tile,
 * depth and buffering. */
#define GKWG KWG64
#define SGKWG KWG64
#define GLBUF LBUF64
#define BMWG MWG64
#define BNWG NWG64
#define BMDIMC MDIMC64
#define BNDIMC NDIMC64
#else
#define REAL4 float4
#define GKWG KWG
#define SGKWG SKWG
#define GLBUF LBUF
#define BMWG MWG
#define BNWG NWG
#define BMDIMC MDIMC
#define BNDIMC NDIMC
#endif

/* Local rows are padded by one vector: keeps 4-element alignment for the
 * vector reads while spreading the transposed stores of A over banks. */
#define LPAD 4

#define GEMM_UNROLL _Pragma("unroll")

/* The kernel body is a macro so that one source can hold two tile shapes:
 * register arrays need compile-time sizes.  Helpers are macros too, so that
 * the register arrays they fill never need an address (which would put them
 * in slow private memory on some compilers).
 *   QA, QB: 4-element pieces of the A and B tiles each work-item fetches. */
#define GEMM_QA(MW, MD, ND, KW) ((MW) * KW / (4 * (MD) * (ND)))

/* Element offsets of work-item tid's q-th 4-element piece of the A and B
 * tiles at K step k0 (A as stored: M x K, or K x M when transposed). */
#define GEMM_AOFF(MW, MD, ND, k0, q, KW)                                                \
    (trans_a ? (size_t)((k0) + (tid + (q) * MD * ND) / (MW / 4)) * lda + m0 +           \
                   (tid + (q) * MD * ND) % (MW / 4) * 4                                 \
             : (size_t)(m0 + (tid + (q) * MD * ND) / (KW / 4)) * lda + (k0) +           \
                   (tid + (q) * MD * ND) % (KW / 4) * 4)
#define GEMM_BOFF(NW, MD, ND, k0, q, KW)                                                \
    (trans_b ? (size_t)(n0 + (tid + (q) * MD * ND) / (KW / 4)) * ldb + (k0) +           \
                   (tid + (q) * MD * ND) % (KW / 4) * 4                                 \
             : (size_t)((k0) + (tid + (q) * MD * ND) / (NW / 4)) * ldb + n0 +           \
                   (tid + (q) * MD * ND) % (NW / 4) * 4)

/* Fetches the K step at k0 into pa/pb: vectors when the tile is whole,
 * else bounds-checked elements (zeros outside). */
#define GEMM_FETCH(MW, NW, MD, ND, k0, KW)                                              \
    if (vec_a && (k0) + KW <= K) {                                                      \
        GEMM_UNROLL                                                                     \
        for (int q = 0; q < GEMM_QA(MW, MD, ND, KW); ++q)                               \
            pa[q] = *(__global const REAL4 *)(A + GEMM_AOFF(MW, MD, ND, k0, q, KW));    \
    } else {                                                                            \
        GEMM_UNROLL                                                                     \
        for (int q = 0; q < GEMM_QA(MW, MD, ND, KW); ++q) {                             \
            const int i = tid + q * MD * ND;                                            \
            const int r = trans_a ? (k0) + i / (MW / 4) : m0 + i / (KW / 4);            \
            const int c = trans_a ? m0 + i % (MW / 4) * 4 : (k0) + i % (KW / 4) * 4;    \
            const int rows = trans_a ? K : M, cols = trans_a ? M : K;                   \
            __global const REAL *p = A + (size_t)r * lda + c;                           \
            REAL t[4];                                                                  \
            GEMM_UNROLL                                                                 \
            for (int v = 0; v < 4; ++v)                                                 \
                t[v] = r < rows && c + v < cols ? p[v] : 0;                             \
            pa[q] = (REAL4)(t[0], t[1], t[2], t[3]);                                    \
        }                                                                               \
    }                                                                                   \
    if (vec_b && (k0) + KW <= K) {                                                      \
        GEMM_UNROLL                                                                     \
        for (int q = 0; q < GEMM_QA(NW, MD, ND, KW); ++q)                               \
            pb[q] = *(__global const REAL4 *)(B + GEMM_BOFF(NW, MD, ND, k0, q, KW));    \
    } else {                                                                            \
        GEMM_UNROLL                                                                     \
        for (int q = 0; q < GEMM_QA(NW, MD, ND, KW); ++q) {                             \
            const int i = tid + q * MD * ND;                                            \
            const int r = trans_b ? n0 + i / (KW / 4) : (k0) + i / (NW / 4);            \
            const int c = trans_b ? (k0) + i % (KW / 4) * 4 : n0 + i % (NW / 4) * 4;    \
            const int rows = trans_b ? N : K, cols = trans_b ? K : N;                   \
            __global const REAL *p = B + (size_t)r * ldb + c;                           \
            REAL t[4];                                                                  \
            GEMM_UNROLL                                                                 \
            for (int v = 0; v < 4; ++v)                                                 \
                t[v] = r < rows && c + v < cols ? p[v] : 0;                             \
            pb[q] = (REAL4)(t[0], t[1], t[2], t[3]);                                    \
        }                                                                               \
    }


/* Stores pa/pb into the local tiles at Al/Bl (A transposed: Al[k][m]). */
#define GEMM_STORE(MW, NW, MD, ND, Al, Bl, KW)                                          \
    GEMM_UNROLL                                                                         \
    for (int q = 0; q < GEMM_QA(MW, MD, ND, KW); ++q) {                                 \
        const int i = tid + q * MD * ND;                                                \
        if (trans_a) {                                                                  \
            *(__local REAL4 *)(Al + i / (MW / 4) * (MW + LPAD) + i % (MW / 4) * 4) =    \
                pa[q];                                                                  \
        } else {                                                                        \
            __local REAL *s = Al + i % (KW / 4) * 4 * (MW + LPAD) + i / (KW / 4);       \
            s[0] = pa[q].s0;                                                            \
            s[MW + LPAD] = pa[q].s1;                                                    \
            s[2 * (MW + LPAD)] = pa[q].s2;                                              \
            s[3 * (MW + LPAD)] = pa[q].s3;                                              \
        }                                                                               \
    }                                                                                   \
    GEMM_UNROLL                                                                         \
    for (int q = 0; q < GEMM_QA(NW, MD, ND, KW); ++q) {                                 \
        const int i = tid + q * MD * ND;                                                \
        if (trans_b) {                                                                  \
            __local REAL *s = Bl + i % (KW / 4) * 4 * (NW + LPAD) + i / (KW / 4);       \
            s[0] = pb[q].s0;                                                            \
            s[NW + LPAD] = pb[q].s1;                                                    \
            s[2 * (NW + LPAD)] = pb[q].s2;                                              \
            s[3 * (NW + LPAD)] = pb[q].s3;                                              \
        } else {                                                                        \
            *(__local REAL4 *)(Bl + i / (NW / 4) * (NW + LPAD) + i % (NW / 4) * 4) =    \
                pb[q];                                                                  \
        }                                                                               \
    }

/* Multiplies the local tiles at Al/Bl into acc. */
#define GEMM_COMPUTE(MW, NW, MD, ND, Al, Bl, KW)                                        \
    GEMM_UNROLL                                                                         \
    for (int kk = 0; kk < KW; ++kk) {                                                   \
        REAL a[MW / MD], b[NW / ND];                                                    \
        GEMM_UNROLL                                                                     \
        for (int i = 0; i < MW / MD / 4; ++i) {                                         \
            const REAL4 v = *(__local const REAL4 *)                                    \
                (Al + kk * (MW + LPAD) + i * 4 * MD + ty * 4);                          \
            a[4 * i] = v.s0; a[4 * i + 1] = v.s1;                                       \
            a[4 * i + 2] = v.s2; a[4 * i + 3] = v.s3;                                   \
        }                                                                               \
        GEMM_UNROLL                                                                     \
        for (int j = 0; j < NW / ND / 4; ++j) {                                         \
            const REAL4 v = *(__local const REAL4 *)                                    \
                (Bl + kk * (NW + LPAD) + j * 4 * ND + tx * 4);                          \
            b[4 * j] = v.s0; b[4 * j + 1] = v.s1;                                       \
            b[4 * j + 2] = v.s2; b[4 * j + 3] = v.s3;                                   \
        }                                                                               \
        GEMM_UNROLL                                                                     \
        for (int i = 0; i < MW / MD; ++i)                                               \
            GEMM_UNROLL                                                                 \
            for (int j = 0; j < NW / ND; ++j)                                           \
                acc[i][j] = mad(a[i], b[j], acc[i][j]);                                 \
    }

/* Work-item (tx, ty) of the MD x ND grid: sub-blocks of MSUB x NSUB
 * consecutive work-items (a warp or wavefront, when MSUB*NSUB is the SIMD
 * width) cover MSUB x NSUB patches, which narrows the set of local vectors
 * one SIMD instruction reads.  Plain row-major order when MSUB/NSUB do not
 * divide the grid. */
#define GEMM_SUB_OK(MD, ND) ((ND) % NSUB == 0 && (MD) % MSUB == 0)
#define GEMM_NS(MD, ND) (GEMM_SUB_OK(MD, ND) ? NSUB : (ND))
#define GEMM_MS(MD, ND) (GEMM_SUB_OK(MD, ND) ? MSUB : 1)

#define GEMM_DEFINE(SUF, MW, NW, MD, ND, KW)                                            \
void gemm_tile_##SUF(const int M, const int N, const int K, const REAL alpha,           \
                     const REAL beta, __global const REAL *A, const int lda,            \
                     __global const REAL *B, const int ldb, __global REAL *C,           \
                     const int ldc, const int trans_a, const int trans_b,               \
                     __local REAL *As, __local REAL *Bs)                                \
{                                                                                       \
    const int tid = get_local_id(1) * ND + get_local_id(0);                             \
    const int ns = GEMM_NS(MD, ND), ms = GEMM_MS(MD, ND);                               \
    const int lane = tid % (ms * ns), sb = tid / (ms * ns);                             \
    const int tx = sb % (ND / ns) * ns + lane % ns;                                     \
    const int ty = sb / (ND / ns) * ms + lane / ns;                                     \
    const int m0 = get_group_id(1) * MW, n0 = get_group_id(0) * NW;                     \
    REAL acc[MW / MD][NW / ND];                                                         \
    GEMM_UNROLL                                                                         \
    for (int i = 0; i < MW / MD; ++i)                                                   \
        GEMM_UNROLL                                                                     \
        for (int j = 0; j < NW / ND; ++j)                                               \
            acc[i][j] = 0;                                                              \
    /* Whole tiles with rows aligned to 4 elements load as vectors. */                  \
    const int vec_a = (lda & 3) == 0 && m0 + MW <= M;                                   \
    const int vec_b = (ldb & 3) == 0 && n0 + NW <= N;                                   \
    REAL4 pa[GEMM_QA(MW, MD, ND, KW)], pb[GEMM_QA(NW, MD, ND, KW)];                     \
    GEMM_FETCH(MW, NW, MD, ND, 0, KW)                                                   \
    GEMM_STORE(MW, NW, MD, ND, As, Bs, KW)                                              \
    barrier(CLK_LOCAL_MEM_FENCE);                                                       \
    /* GLBUF == 2: the next step's tiles go to the other buffer while this              \
     * one is read, one barrier per step; 1: one buffer, two barriers. */               \
    int cur = 0;                                                                        \
    for (int k0 = 0; k0 < K; k0 += KW) {                                                \
        const int more = k0 + KW < K;                                                   \
        if (more) {                                                                     \
            GEMM_FETCH(MW, NW, MD, ND, k0 + KW, KW)                                     \
        }                                                                               \
        __local const REAL *Ac = As + cur * (KW * (MW + LPAD));                         \
        __local const REAL *Bc = Bs + cur * (KW * (NW + LPAD));                         \
        GEMM_COMPUTE(MW, NW, MD, ND, Ac, Bc, KW)                                        \
        if (GLBUF == 2) {                                                               \
            cur ^= 1;                                                                   \
        } else {                                                                        \
            barrier(CLK_LOCAL_MEM_FENCE);                                               \
        }                                                                               \
        if (more) {                                                                     \
            __local REAL *An = As + cur * (KW * (MW + LPAD));                           \
            __local REAL *Bn = Bs + cur * (KW * (NW + LPAD));                           \
            GEMM_STORE(MW, NW, MD, ND, An, Bn, KW)                                      \
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
#define GEMM_KERNEL(name, SUF, MW, NW, MD, ND, ta, tb, KW)                              \
    __kernel __attribute__((reqd_work_group_size(ND, MD, 1)))                           \
    void name(const int M, const int N, const int K, const REAL alpha,                  \
              const REAL beta, __global const REAL *A, const int lda,                   \
              __global const REAL *B, const int ldb, __global REAL *C, const int ldc)   \
    {                                                                                   \
        __local REAL4 As[GLBUF * KW * (MW + LPAD) / 4];                                 \
        __local REAL4 Bs[GLBUF * KW * (NW + LPAD) / 4];                                 \
        gemm_tile_##SUF(M, N, K, alpha, beta, A, lda, B, ldb, C, ldc, ta, tb,           \
                        (__local REAL *)As, (__local REAL *)Bs);                        \
    }

GEMM_DEFINE(big, BMWG, BNWG, BMDIMC, BNDIMC, GKWG)
GEMM_DEFINE(small, SMWG, SNWG, SMDIMC, SNDIMC, SGKWG)

GEMM_KERNEL(gemm_nn, big, BMWG, BNWG, BMDIMC, BNDIMC, 0, 0, GKWG)
GEMM_KERNEL(gemm_nt, big, BMWG, BNWG, BMDIMC, BNDIMC, 0, 1, GKWG)
GEMM_KERNEL(gemm_tn, big, BMWG, BNWG, BMDIMC, BNDIMC, 1, 0, GKWG)
GEMM_KERNEL(gemm_tt, big, BMWG, BNWG, BMDIMC, BNDIMC, 1, 1, GKWG)
GEMM_KERNEL(gemm_nn_small, small, SMWG, SNWG, SMDIMC, SNDIMC, 0, 0, SGKWG)
GEMM_KERNEL(gemm_nt_small, small, SMWG, SNWG, SMDIMC, SNDIMC, 0, 1, SGKWG)
GEMM_KERNEL(gemm_tn_small, small, SMWG, SNWG, SMDIMC, SNDIMC, 1, 0, SGKWG)
GEMM_KERNEL(gemm_tt_small, small, SMWG, SNWG, SMDIMC, SNDIMC, 1, 1, SGKWG)
