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
 *              units idle (TTKWG, where defined: the float TT small and
 *              tiny kernels' depth instead of SKWG).
 *   TMWG, TNWG, TMDIMC, TNDIMC  0, or a third, smaller tile ("_tiny"
 *              kernels, depth SKWG for float and KWG64 for double) for
 *              products too small to give every compute unit a small tile.
 *   MWG64, NWG64, MDIMC64, NDIMC64, KWG64  the big tile and depth for
 *              double (the small and tiny double tiles use KWG64 too,
 *              or SKWG64 where it is defined).
 *   LBUF, LBUF64  local buffers per tile (1 or 2): 2 fills one while the
 *              other is read, with one barrier per K step instead of two.
 *   SLBUF      the same for the small float tile (LBUF serves the big and
 *              tiny ones; the small double tile uses LBUF64).
 *   MSUB, NSUB  consecutive work-items (a warp when MSUB*NSUB is the SIMD
 *              width) cover an MSUB x NSUB patch of the work-item grid
 *              (MSUB64, NSUB64, where defined: the double tiles' patch).
 *   GPUMAT_STREAM_K  (the library's "gemm_sk" program) only the
 *              stream-K kernels gemm_*_sk (below): the big tile,
 *              register-staged even where ASYNC / ASYNC64 make the plain
 *              kernels the direct-copy pipeline; without it every other
 *              kernel.
 *   ASYNC, ASYNC64  0, or the number of local buffers (2-4) of the big
 *              tile's direct-copy pipeline (float, double): global memory is
 *              copied straight into local tiles ASYNC-1 steps ahead, with one
 *              barrier per step.  Plain copies everywhere; with
 *              GPUMAT_NV_ASYNC (added by the library only for NVIDIA's own
 *              compiler on sm_80 or newer) they are cp.async instructions,
 *              which need no registers and let several steps be in flight.
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
#ifdef SKWG64
#define SGKWG SKWG64
#else
#define SGKWG KWG64
#endif
#define GLBUF LBUF64
#define SGLBUF LBUF64
#define GASYNC ASYNC64
#define BMWG MWG64
#define BNWG NWG64
#define BMDIMC MDIMC64
#define BNDIMC NDIMC64
#if defined(MSUB64) && defined(NSUB64)
#undef MSUB
#undef NSUB
#define MSUB MSUB64
#define NSUB NSUB64
#endif
#else
#define REAL4 float4
#define GKWG KWG
#define SGKWG SKWG
#define GLBUF LBUF
#define SGLBUF SLBUF
#define GASYNC ASYNC
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

/* Whole-tile fetches either add one k offset to an address computed
 * before the loop (ap, bp) or recompute the address from the indices each
 * step.  Same loads either way, but NVIDIA's compiler schedules the loop
 * differently; on the H100 (gemm-notes round 6) base pointers for B gain
 * 1% for NN, 2% for TT, and with A's too 1% for TN, while A's lose 6% for
 * NN and 3% for NT, and NT gains nothing from B's (its small tile loses
 * 2%).  So: B's for NN, TN, TT; A's for TN alone. */
#define GEMM_APTR (trans_a && !trans_b)
#define GEMM_BPTR (trans_a || !trans_b)

/* Fetches the K step at k0 into pa/pb: vectors when the tile is whole,
 * else bounds-checked elements (zeros outside). */
#define GEMM_FETCH(MW, NW, MD, ND, k0, KW)                                              \
    if (vec_a && (k0) + KW <= K) {                                                      \
        const size_t ka_off = trans_a ? (size_t)(k0) * lda : (size_t)(k0);              \
        GEMM_UNROLL                                                                     \
        for (int q = 0; q < GEMM_QA(MW, MD, ND, KW); ++q)                               \
            pa[q] = *(__global const REAL4 *)(GEMM_APTR ? ap[q] + ka_off :              \
                                              A + GEMM_AOFF(MW, MD, ND, k0, q, KW));    \
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
        const size_t kb_off = trans_b ? (size_t)(k0) : (size_t)(k0) * ldb;              \
        GEMM_UNROLL                                                                     \
        for (int q = 0; q < GEMM_QA(NW, MD, ND, KW); ++q)                               \
            pb[q] = *(__global const REAL4 *)(GEMM_BPTR ? bp[q] + kb_off :              \
                                              B + GEMM_BOFF(NW, MD, ND, k0, q, KW));    \
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

/* Multiplies the local tiles at Al/Bl into acc.  With REV 1 odd rows of
 * the products run backwards: a row change then keeps the last b, and
 * NVIDIA's compiler schedules the products better.  H100: gemm-notes round
 * 4 gave NN/TT +1.5-2.5% while TN and NT lost with it; since round 6's
 * fetch change TN and NT gain too (4096^3 +2.5% / +3%), so the big tile
 * uses REV in every case, the small and tiny tiles for NN and TT (not
 * remeasured).  Each acc[i][j] sees the same products in the same order
 * either way. */
#define GEMM_COMPUTE(MW, NW, MD, ND, Al, Bl, KW, REV)                                   \
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
            for (int jj = 0; jj < NW / ND; ++jj) {                                      \
                const int j = (REV) && (i & 1) ? NW / ND - 1 - jj : jj;                 \
                acc[i][j] = mad(a[i], b[j], acc[i][j]);                                 \
            }                                                                           \
    }

/* Work-item (tx, ty) of the MD x ND grid: sub-blocks of MSUB x NSUB
 * consecutive work-items (a warp or wavefront, when MSUB*NSUB is the SIMD
 * width) cover MSUB x NSUB patches, which narrows the set of local vectors
 * one SIMD instruction reads.  Plain row-major order when MSUB/NSUB do not
 * divide the grid. */
#define GEMM_SUB_OK(MD, ND) ((ND) % NSUB == 0 && (MD) % MSUB == 0)
#define GEMM_NS(MD, ND) (GEMM_SUB_OK(MD, ND) ? NSUB : (ND))
#define GEMM_MS(MD, ND) (GEMM_SUB_OK(MD, ND) ? MSUB : 1)

/* Row gm of this work-item's results, stored in 4-wide blocks (columns
 * n0 + j*4*ND + tx*4 ...): vectors when the tile is whole. */
#define GEMM_STORE_C4(MW, NW, MD, ND)                                                   \
    GEMM_UNROLL                                                                         \
    for (int j = 0; j < NW / ND / 4; ++j) {                                             \
        const int gn = n0 + j * 4 * ND + tx * 4;                                        \
        __global REAL *c = C + (size_t)gm * ldc + gn;                                   \
        REAL4 r = (REAL4)(acc[i][4 * j], acc[i][4 * j + 1], acc[i][4 * j + 2],          \
                          acc[i][4 * j + 3]) * alpha;                                   \
        if (whole) {                                                                    \
            if (beta != 0)                                                              \
                r += beta * *(__global REAL4 *)c;                                       \
            *(__global REAL4 *)c = r;                                                   \
        } else if (gm < M) {                                                            \
            const REAL rv[4] = {r.s0, r.s1, r.s2, r.s3};                                \
            GEMM_UNROLL                                                                 \
            for (int v = 0; v < 4; ++v)                                                 \
                if (gn + v < N)                                                         \
                    c[v] = beta == 0 ? rv[v] : rv[v] + beta * c[v];                     \
        }                                                                               \
    }

/* The start every tile body shares: this work-item's place (tx, ty) in the
 * MD x ND grid, the tile's origin (m0, n0) and zeroed accumulators. */
#define GEMM_PLACE(MD, ND)                                                              \
    const int tid = get_local_id(1) * ND + get_local_id(0);                             \
    const int ns = GEMM_NS(MD, ND), ms = GEMM_MS(MD, ND);                               \
    const int lane = tid % (ms * ns), sb = tid / (ms * ns);                             \
    const int tx = sb % (ND / ns) * ns + lane % ns;                                     \
    const int ty = sb / (ND / ns) * ms + lane / ns;
#define GEMM_ACC(MW, NW, MD, ND)                                                        \
    REAL acc[MW / MD][NW / ND];                                                         \
    GEMM_UNROLL                                                                         \
    for (int i = 0; i < MW / MD; ++i)                                                   \
        GEMM_UNROLL                                                                     \
        for (int j = 0; j < NW / ND; ++j)                                               \
            acc[i][j] = 0;
#define GEMM_TILE_START(MW, NW, MD, ND)                                                 \
    GEMM_PLACE(MD, ND)                                                                  \
    const int m0 = get_group_id(1) * MW, n0 = get_group_id(0) * NW;                     \
    GEMM_ACC(MW, NW, MD, ND)

/* Accumulates the K steps from KB up to KE (multiples of KW, or K) of the
 * tile at (m0, n0) into acc. */
#define GEMM_MAIN_LOOP(MW, NW, MD, ND, KW, REV, LB, KB, KE)                             \
    /* Whole tiles with rows aligned to 4 elements load as vectors. */                  \
    const int vec_a = (lda & 3) == 0 && m0 + MW <= M;                                   \
    const int vec_b = (ldb & 3) == 0 && n0 + NW <= N;                                   \
    REAL4 pa[GEMM_QA(MW, MD, ND, KW)], pb[GEMM_QA(NW, MD, ND, KW)];                     \
    /* Each piece's address at k = 0 (GEMM_FETCH). */                                   \
    __global const REAL *ap[GEMM_QA(MW, MD, ND, KW)], *bp[GEMM_QA(NW, MD, ND, KW)];     \
    GEMM_UNROLL                                                                         \
    for (int q = 0; q < GEMM_QA(MW, MD, ND, KW); ++q)                                   \
        ap[q] = A + GEMM_AOFF(MW, MD, ND, 0, q, KW);                                    \
    GEMM_UNROLL                                                                         \
    for (int q = 0; q < GEMM_QA(NW, MD, ND, KW); ++q)                                   \
        bp[q] = B + GEMM_BOFF(NW, MD, ND, 0, q, KW);                                    \
    GEMM_FETCH(MW, NW, MD, ND, KB, KW)                                                  \
    GEMM_STORE(MW, NW, MD, ND, As, Bs, KW)                                              \
    barrier(CLK_LOCAL_MEM_FENCE);                                                       \
    /* LB == 2: the next step's tiles go to the other buffer while this                 \
     * one is read, one barrier per step; 1: one buffer, two barriers. */               \
    int cur = 0;                                                                        \
    for (int k0 = KB; k0 < KE; k0 += KW) {                                              \
        const int more = k0 + KW < KE;                                                  \
        if (more) {                                                                     \
            GEMM_FETCH(MW, NW, MD, ND, k0 + KW, KW)                                     \
        }                                                                               \
        __local const REAL *Ac = As + cur * (KW * (MW + LPAD));                         \
        __local const REAL *Bc = Bs + cur * (KW * (NW + LPAD));                         \
        GEMM_COMPUTE(MW, NW, MD, ND, Ac, Bc, KW, REV)                                   \
        if ((LB) == 2) {                                                                \
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
    }

/* C = alpha * acc + beta * C for the tile at (m0, n0). */
#define GEMM_STORE_TILE(MW, NW, MD, ND)                                                 \
    const int whole = m0 + MW <= M && n0 + NW <= N && (ldc & 3) == 0;                   \
    GEMM_UNROLL                                                                         \
    for (int i = 0; i < MW / MD; ++i) {                                                 \
        const int gm = m0 + i / 4 * 4 * MD + ty * 4 + i % 4;                            \
        GEMM_STORE_C4(MW, NW, MD, ND)                                                   \
    }

#define GEMM_DEFINE(SUF, MW, NW, MD, ND, KW, REV, LB)                                   \
void gemm_tile_##SUF(const int M, const int N, const int K, const REAL alpha,           \
                     const REAL beta, __global const REAL *A, const int lda,            \
                     __global const REAL *B, const int ldb, __global REAL *C,           \
                     const int ldc, const int trans_a, const int trans_b,               \
                     __local REAL *As, __local REAL *Bs)                                \
{                                                                                       \
    GEMM_TILE_START(MW, NW, MD, ND)                                                     \
    GEMM_MAIN_LOOP(MW, NW, MD, ND, KW, REV, LB, 0, K)                                   \
                                                                                        \
    GEMM_STORE_TILE(MW, NW, MD, ND)                                                     \
}

/* One entry point per transpose case, so each compiles to a specialised
 * body with its own load order. */
#define GEMM_KERNEL(name, SUF, MW, NW, MD, ND, ta, tb, KW, LB)                          \
    __kernel __attribute__((reqd_work_group_size(ND, MD, 1)))                           \
    void name(const int M, const int N, const int K, const REAL alpha,                  \
              const REAL beta, __global const REAL *A, const int lda,                   \
              __global const REAL *B, const int ldb, __global REAL *C, const int ldc)   \
    {                                                                                   \
        __local REAL4 As[(LB) * KW * (MW + LPAD) / 4];                                  \
        __local REAL4 Bs[(LB) * KW * (NW + LPAD) / 4];                                  \
        gemm_tile_##SUF(M, N, K, alpha, beta, A, lda, B, ldb, C, ldc, ta, tb,           \
                        (__local REAL *)As, (__local REAL *)Bs);                        \
    }

/* ---- Stream-K (the big tile, register-staged) ------------------------------
 * A product whose T tiles do not fill whole waves of S groups (the
 * profile's SKG, or SKG64 for double, per compute unit) leaves most units
 * idle during its last wave (H100: 4096^3 runs 3.88 waves of 264 groups, 2%
 * slower per flop than 4224x4096x4096).
 * So the host runs the plain kernel on the whole rows of tiles that lie in
 * full waves, and these kernels on the tiles from `first` on (the last
 * wave's and the start of their row): S groups split those tiles' K steps
 * ("iterations", iters per tile) into equal runs of `per`, which may start
 * and end inside a tile.  A tile covered by several runs is finished by
 * whichever contributor arrives last: each writes its partial sums to its
 * own slot of W (two per group: the run's first tile and its last), counts
 * its steps into the tile's counter in F, and the one that completes the
 * count adds the slots up in the order of k, applies alpha and beta, and
 * resets the counter for the next call.  Nobody waits for another group, so
 * this needs no co-residency, and the sum is the same whichever contributor
 * comes last.  Iterations are numbered from tile `first`; group s runs
 * [s*per, min((s+1)*per, total)). */
#define GEMM_SK_SLOT(MW, NW, s, u)                                                      \
    (W + ((size_t)2 * (s) + ((u) != (int)((s) * per / iters))) * (MW * NW))

#define GEMM_DEFINE_SK(SUF, MW, NW, MD, ND, KW, REV, LB)                                \
void gemm_sk_##SUF(const int M, const int N, const int K, const REAL alpha,             \
                   const REAL beta, __global const REAL *A, const int lda,              \
                   __global const REAL *B, const int ldb, __global REAL *C,             \
                   const int ldc, const int trans_a, const int trans_b,                 \
                   const int tiles_n, const int iters, const int first, const long per, \
                   const long total, __global REAL *W, __global int *F,                 \
                   __local REAL *As, __local REAL *Bs, __local int *last)               \
{                                                                                       \
    GEMM_PLACE(MD, ND)                                                                  \
    const int me = get_group_id(0);                                                     \
    long it = me * per;                                                                 \
    const long end = min(it + per, total);                                              \
    while (it < end) {                                                                  \
        const int u = (int)(it / iters);                                                \
        const int kb = (int)(it - (long)u * iters);                                     \
        const int ke = (int)min((long)iters, kb + (end - it));                          \
        const int m0 = (first + u) / tiles_n * MW, n0 = (first + u) % tiles_n * NW;     \
        GEMM_ACC(MW, NW, MD, ND)                                                        \
        GEMM_MAIN_LOOP(MW, NW, MD, ND, KW, REV, LB, kb * KW, min(ke * KW, K))           \
        const int split = kb > 0 || ke < iters;                                         \
        if (split) {                                                                    \
            __global REAL *mine = GEMM_SK_SLOT(MW, NW, me, u);                          \
            GEMM_UNROLL                                                                 \
            for (int i = 0; i < MW / MD; ++i)                                           \
                GEMM_UNROLL                                                             \
                for (int j = 0; j < NW / ND; ++j)                                       \
                    mine[(i * (NW / ND) + j) * (MD * ND) + tid] = acc[i][j];            \
        }                                                                               \
        /* Every work-item's sums are out before the count says so.  The                \
         * barriers stay outside conditionals (PoCL compiles those slowly). */          \
        mem_fence(CLK_GLOBAL_MEM_FENCE);                                                \
        barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE);                            \
        if (tid == 0) {                                                                 \
            const int count = split ? atomic_add(F + u, ke - kb) + ke - kb : iters;     \
            *last = count == iters;                                                     \
            if (split && count == iters)                                                \
                F[u] = 0;                                                               \
        }                                                                               \
        barrier(CLK_LOCAL_MEM_FENCE);                                                   \
        const int done = *last;                                                         \
        if (split && done) {                                                            \
            mem_fence(CLK_GLOBAL_MEM_FENCE);                                            \
            const int s0 = (int)((long)u * iters / per);                                \
            const int s1 = (int)(((long)u * iters + iters - 1) / per);                  \
            for (int s = s0; s <= s1; ++s) {                                            \
                /* volatile: another unit wrote these during this launch. */            \
                __global volatile const REAL *p = GEMM_SK_SLOT(MW, NW, s, u);           \
                GEMM_UNROLL                                                             \
                for (int i = 0; i < MW / MD; ++i)                                       \
                    GEMM_UNROLL                                                         \
                    for (int j = 0; j < NW / ND; ++j) {                                 \
                        const REAL v = p[(i * (NW / ND) + j) * (MD * ND) + tid];        \
                        acc[i][j] = s == s0 ? v : acc[i][j] + v;                        \
                    }                                                                   \
            }                                                                           \
        }                                                                               \
        if (done) {                                                                     \
            GEMM_STORE_TILE(MW, NW, MD, ND)                                             \
        }                                                                               \
        it += ke - kb;                                                                  \
    }                                                                                   \
}

#define GEMM_KERNEL_SK(name, SUF, MW, NW, MD, ND, ta, tb, KW, LB)                       \
    __kernel __attribute__((reqd_work_group_size(ND, MD, 1)))                           \
    void name(const int M, const int N, const int K, const REAL alpha,                  \
              const REAL beta, __global const REAL *A, const int lda,                   \
              __global const REAL *B, const int ldb, __global REAL *C, const int ldc,   \
              const int tiles_n, const int iters, const int first, const long per,      \
              const long total, __global REAL *W, __global int *F)                      \
    {                                                                                   \
        __local REAL4 As[(LB) * KW * (MW + LPAD) / 4];                                  \
        __local REAL4 Bs[(LB) * KW * (NW + LPAD) / 4];                                  \
        __local int last;                                                               \
        gemm_sk_##SUF(M, N, K, alpha, beta, A, lda, B, ldb, C, ldc, ta, tb, tiles_n,    \
                      iters, first, per, total, W, F, (__local REAL *)As,                  \
                      (__local REAL *)Bs, &last);                                       \
    }

/* ---- The direct-copy pipeline (ASYNC / ASYNC64 >= 2) ----------------------
 * Global tiles go straight into local memory, ST-1 K steps ahead, with one
 * barrier per step and no staging registers, into tiles As[k][m],
 * Bs[k][n] laid out and read as by GEMM_COMPUTE.  Operands whose global
 * rows run along m or n (A^T, B) are copied row to row in 4-element pieces.
 * A copy cannot transpose a piece, so operands whose rows run along k (A,
 * B^T) are transposed on the way in, one element per copy, consecutive
 * work-items taking consecutive k so that a SIMD group reads whole segments
 * and writes 32 different banks.  That needs the work-group size to be a
 * multiple of the depth (profile.c checks), so that a work-item's elements
 * share one k and lie MD*ND/KW rows apart.  (Keeping A and B^T in their own
 * layout, Xs[m][k] read 4 k at a time, was measured too and lost:
 * docs/gemm-notes.md, round 3.) */
#define GEMM_UPTO4(x) ((x) < 0 ? 0 : (x) > 4 ? 4 : (x))

#ifdef GPUMAT_NV_ASYNC
/* NVIDIA's OpenCL compiler takes GNU "asm"; clang in OpenCL mode only the
 * reserved spelling (how the PTX here is checked without that driver). */
#ifdef __clang__
#define GEMM_ASM __asm__ volatile
#else
#define GEMM_ASM asm volatile
#endif
/* The 32-bit shared-window address of a local pointer, which cp.async
 * takes.  A local pointer converted to an integer is that address with
 * LLVM's NVPTX back end; should a compiler hand out a generic address
 * instead, isspacep.shared recognises it and cvta converts it. */
uint gemm_smem(__local const REAL *p)
{
    uint r;
    GEMM_ASM("{ .reg .pred q; .reg .u64 t;\n\t"
             "isspacep.shared q, %1;\n\t"
             "@q cvta.to.shared.u64 t, %1;\n\t"
             "@!q mov.u64 t, %1;\n\t"
             "cvt.u32.u64 %0, t; }"
             : "=r"(r) : "l"((ulong)p));
    return r;
}
#define GEMM_SMEM(p) gemm_smem(p)
/* 16 bytes from g (bytes of them read, the rest zero) to the shared address
 * sa, bypassing L1: each piece is read once per work-group. */
#define GEMM_CP16(sa, g, bytes)                                                        \
    GEMM_ASM("cp.async.cg.shared.global [%0], [%1], 16, %2;"                           \
             :: "r"(sa), "l"(g), "r"(bytes) : "memory")
/* One element (bytes 0: a zero), through L1, where its neighbours, copied
 * by the next instructions, then are. */
#ifdef GPUMAT_FP64
#define GEMM_CP1(sa, g, bytes)                                                         \
    GEMM_ASM("cp.async.ca.shared.global [%0], [%1], 8, %2;"                            \
             :: "r"(sa), "l"(g), "r"(bytes) : "memory")
#else
#define GEMM_CP1(sa, g, bytes)                                                         \
    GEMM_ASM("cp.async.ca.shared.global [%0], [%1], 4, %2;"                            \
             :: "r"(sa), "l"(g), "r"(bytes) : "memory")
#endif
#define GEMM_COMMIT() GEMM_ASM("cp.async.commit_group;" ::: "memory")
/* Waits until at most ST-2 groups are pending; the count is part of the
 * instruction, spelled out per stage count (ST is a plain number). */
#define GEMM_WAIT_2 GEMM_ASM("cp.async.wait_group 0;" ::: "memory")
#define GEMM_WAIT_3 GEMM_ASM("cp.async.wait_group 1;" ::: "memory")
#define GEMM_WAIT_4 GEMM_ASM("cp.async.wait_group 2;" ::: "memory")
#define GEMM_WAIT_(st) GEMM_WAIT_##st
#define GEMM_WAIT(st) GEMM_WAIT_(st)
/* A 4-element piece into L/S (a local base and its shared address) at
 * element offset off: from g when whole (n == 4, aligned), else n elements
 * of it and zeros (bytes 0 read from base, a valid address). */
#define GEMM_PUT4(L, S, off, g)                                                        \
    do {                                                                               \
        const uint sa_ = (S) + (uint)(off) * (uint)sizeof(REAL);                       \
        GEMM_UNROLL                                                                    \
        for (int h_ = 0; h_ < (int)sizeof(REAL) / 4; ++h_)                             \
            GEMM_CP16(sa_ + 16 * h_, (g) + h_ * 16 / (int)sizeof(REAL), 16);           \
    } while (0)
#define GEMM_PUT(L, S, off, g, base, n, al)                                            \
    do {                                                                               \
        const uint sa_ = (S) + (uint)(off) * (uint)sizeof(REAL);                       \
        if (al) {                                                                      \
            GEMM_UNROLL                                                                \
            for (int h_ = 0; h_ < (int)sizeof(REAL) / 4; ++h_) {                       \
                const int e_ = h_ * 16 / (int)sizeof(REAL);                            \
                const int c_ = (n) - e_ < 0 ? 0 : (n) - e_ > 16 / (int)sizeof(REAL)    \
                             ? 16 / (int)sizeof(REAL) : (n) - e_;                      \
                GEMM_CP16(sa_ + 16 * h_, c_ ? (g) + e_ : (base), c_ * (int)sizeof(REAL)); \
            }                                                                          \
        } else {                                                                       \
            GEMM_UNROLL                                                                \
            for (int v_ = 0; v_ < 4; ++v_)                                             \
                GEMM_CP1(sa_ + v_ * (uint)sizeof(REAL), v_ < (n) ? (g) + v_ : (base),  \
                         v_ < (n) ? (int)sizeof(REAL) : 0);                            \
        }                                                                              \
    } while (0)
/* One element: *g when ok, else zero. */
#define GEMM_PUT1(L, S, off, g, base, ok)                                              \
    GEMM_CP1((S) + (uint)(off) * (uint)sizeof(REAL), (ok) ? (g) : (base),              \
             (ok) ? (int)sizeof(REAL) : 0)
#else
/* Portable: plain copies, complete when issued. */
#define GEMM_SMEM(p) 0u
#define GEMM_COMMIT() ((void)0)
#define GEMM_WAIT(st) ((void)0)
#define GEMM_PUT4(L, S, off, g)                                                        \
    (*(__local REAL4 *)((L) + (off)) = *(__global const REAL4 *)(g))
#define GEMM_PUT(L, S, off, g, base, n, al)                                            \
    do {                                                                               \
        REAL t_[4];                                                                    \
        GEMM_UNROLL                                                                    \
        for (int v_ = 0; v_ < 4; ++v_)                                                 \
            t_[v_] = v_ < (n) ? (g)[v_] : 0;                                           \
        *(__local REAL4 *)((L) + (off)) = (REAL4)(t_[0], t_[1], t_[2], t_[3]);         \
    } while (0)
#define GEMM_PUT1(L, S, off, g, base, ok) ((L)[off] = (ok) ? *(g) : 0)
#endif

/* Elements of one buffer of a W-wide tile. */
#define GEMM_XTILE(W, KW) ((KW) * ((W) + LPAD))

/* This work-item's 4-element pieces of A^T and B (ga/gb where they start in
 * global memory, moved on one step per issue; la/lb where they go in a
 * buffer) and first element of A and B^T (gai/gbi, lai/lbi). */
#define GEMM_ASYNC_SETUP(MW, NW, MD, ND, KW)                                           \
    const int al_a = (lda & 3) == 0, al_b = (ldb & 3) == 0;                             \
    const size_t step_a = (size_t)KW * lda, step_b = (size_t)KW * ldb;                  \
    __global const REAL *ga[GEMM_QA(MW, MD, ND, KW)], *gb[GEMM_QA(NW, MD, ND, KW)];     \
    int la[GEMM_QA(MW, MD, ND, KW)], lb[GEMM_QA(NW, MD, ND, KW)];                       \
    __global const REAL *gai = A + (size_t)(m0 + tid / KW) * lda + tid % KW;            \
    __global const REAL *gbi = B + (size_t)(n0 + tid / KW) * ldb + tid % KW;            \
    const int lai = tid % KW * (MW + LPAD) + tid / KW;                                  \
    const int lbi = tid % KW * (NW + LPAD) + tid / KW;                                  \
    GEMM_UNROLL                                                                         \
    for (int q = 0; q < GEMM_QA(MW, MD, ND, KW); ++q) {                                 \
        const int i = tid + q * MD * ND;                                                \
        ga[q] = A + (size_t)(i / (MW / 4)) * lda + m0 + i % (MW / 4) * 4;               \
        la[q] = i / (MW / 4) * (MW + LPAD) + i % (MW / 4) * 4;                          \
    }                                                                                   \
    GEMM_UNROLL                                                                         \
    for (int q = 0; q < GEMM_QA(NW, MD, ND, KW); ++q) {                                 \
        const int i = tid + q * MD * ND;                                                \
        gb[q] = B + (size_t)(i / (NW / 4)) * ldb + n0 + i % (NW / 4) * 4;               \
        lb[q] = i / (NW / 4) * (NW + LPAD) + i % (NW / 4) * 4;                          \
    }

/* Copies one operand's part of the K step at k0 into the local tile Xd
 * (shared address sXd): W columns of m or n starting at x0 (X rows of them
 * exist), ld its row length; kout: its rows run along m or n.  gp/lp: this
 * work-item's pieces (kout) or first element (else), moved on one step. */
#define GEMM_ISSUE_X(X, W, KW, T, kout, Xd, sXd, gp, lp, gx, lx, ld, step, whole, al,   \
                     rows, x0, k0)                                                      \
    if (kout) {                                                                         \
        if ((whole) && (al) && (k0) + KW <= K) {                                        \
            GEMM_UNROLL                                                                 \
            for (int q = 0; q < (W) * KW / (4 * (T)); ++q)                              \
                GEMM_PUT4(Xd, sXd, lp[q], gp[q]);                                       \
        } else {                                                                        \
            GEMM_UNROLL                                                                 \
            for (int q = 0; q < (W) * KW / (4 * (T)); ++q) {                            \
                const int i_ = tid + q * (T);                                           \
                const int n_ = (k0) + i_ / ((W) / 4) < K                                \
                                   ? GEMM_UPTO4((rows) - (x0) - i_ % ((W) / 4) * 4) : 0; \
                GEMM_PUT(Xd, sXd, lp[q], gp[q], X, n_, al);                             \
            }                                                                           \
        }                                                                               \
        GEMM_UNROLL                                                                     \
        for (int q = 0; q < (W) * KW / (4 * (T)); ++q)                                  \
            gp[q] += (step);                                                            \
    } else {                                                                            \
        if ((whole) && (k0) + KW <= K) {                                                \
            GEMM_UNROLL                                                                 \
            for (int e = 0; e < (W) * KW / (T); ++e)                                    \
                GEMM_PUT1(Xd, sXd, lx + e * ((T) / KW), gx + e * (size_t)((T) / KW) * (ld), \
                          X, 1);                                                        \
        } else {                                                                        \
            const int kok_ = (k0) + tid % KW < K;                                       \
            GEMM_UNROLL                                                                 \
            for (int e = 0; e < (W) * KW / (T); ++e)                                    \
                GEMM_PUT1(Xd, sXd, lx + e * ((T) / KW), gx + e * (size_t)((T) / KW) * (ld), \
                          X, kok_ && (x0) + tid / KW + e * ((T) / KW) < (rows));        \
        }                                                                               \
        gx += KW;                                                                       \
    }

/* Starts the copies of the K step at k0 into local buffer st. */
#define GEMM_ISSUE(MW, NW, MD, ND, KW, st, k0)                                         \
    {                                                                                  \
        __local REAL *Ad_ = As + (st) * ata, *Bd_ = Bs + (st) * btb;                   \
        const uint sAd_ = sA + (uint)((st) * ata) * (uint)sizeof(REAL);                \
        const uint sBd_ = sB + (uint)((st) * btb) * (uint)sizeof(REAL);                \
        GEMM_ISSUE_X(A, MW, KW, MD * ND, trans_a, Ad_, sAd_, ga, la, gai, lai, lda,     \
                     step_a, m0 + MW <= M, al_a, M, m0, k0)                             \
        GEMM_ISSUE_X(B, NW, KW, MD * ND, !trans_b, Bd_, sBd_, gb, lb, gbi, lbi, ldb,    \
                     step_b, n0 + NW <= N, al_b, N, n0, k0)                             \
    }

/* One k's vectors of A and B (as GEMM_COMPUTE reads them) into fa/fb, and
 * their products into acc. */
#define GEMM_FRAG(MW, NW, MD, ND, Al, Bl, kk, fa, fb)                                  \
    GEMM_UNROLL                                                                        \
    for (int i = 0; i < MW / MD / 4; ++i) {                                            \
        const REAL4 v = *(__local const REAL4 *)                                       \
            ((Al) + (kk) * (MW + LPAD) + i * 4 * MD + ty * 4);                         \
        fa[4 * i] = v.s0; fa[4 * i + 1] = v.s1;                                        \
        fa[4 * i + 2] = v.s2; fa[4 * i + 3] = v.s3;                                    \
    }                                                                                  \
    GEMM_UNROLL                                                                        \
    for (int j = 0; j < NW / ND / 4; ++j) {                                            \
        const REAL4 v = *(__local const REAL4 *)                                       \
            ((Bl) + (kk) * (NW + LPAD) + j * 4 * ND + tx * 4);                         \
        fb[4 * j] = v.s0; fb[4 * j + 1] = v.s1;                                        \
        fb[4 * j + 2] = v.s2; fb[4 * j + 3] = v.s3;                                    \
    }
#define GEMM_FMA(MW, NW, MD, ND, fa, fb)                                               \
    GEMM_UNROLL                                                                        \
    for (int i = 0; i < MW / MD; ++i)                                                  \
        GEMM_UNROLL                                                                    \
        for (int j = 0; j < NW / ND; ++j)                                              \
            acc[i][j] = mad(fa[i], fb[j], acc[i][j]);

/* The vectors of k+1 are read while k's products are formed (fa0/fb0 for
 * even k, fa1/fb1 for odd).  The barrier sits after
 * the last k's reads and before its products: those hide the first reads
 * of the next step, and the buffer just read (all work-items are past its
 * last reads) is refilled with step t+ST right after it.  KW is even. */
#define GEMM_ASYNC_LOOP(MW, NW, MD, ND, KW, ST)                                        \
    REAL fa0[MW / MD], fb0[NW / ND], fa1[MW / MD], fb1[NW / ND];                       \
    if (nk > 0) {                                                                      \
        GEMM_WAIT(ST);                                                                 \
        barrier(CLK_LOCAL_MEM_FENCE);                                                  \
        GEMM_FRAG(MW, NW, MD, ND, As, Bs, 0, fa0, fb0)                                 \
    }                                                                                  \
    int cs = 0;                                                                        \
    for (int t = 0; t < nk; ++t) {                                                     \
        __local const REAL *Ac = As + cs * ata, *Bc = Bs + cs * btb;                   \
        GEMM_UNROLL                                                                    \
        for (int kk = 0; kk < KW; kk += 2) {                                           \
            GEMM_FRAG(MW, NW, MD, ND, Ac, Bc, kk + 1, fa1, fb1)                        \
            GEMM_FMA(MW, NW, MD, ND, fa0, fb0)                                         \
            if (kk + 2 < KW) {                                                         \
                GEMM_FRAG(MW, NW, MD, ND, Ac, Bc, kk + 2, fa0, fb0)                    \
                GEMM_FMA(MW, NW, MD, ND, fa1, fb1)                                     \
            }                                                                          \
        }                                                                              \
        const int cn = cs == ST - 1 ? 0 : cs + 1;                                      \
        if (t + 1 < nk) {                                                              \
            GEMM_WAIT(ST);                                                             \
            barrier(CLK_LOCAL_MEM_FENCE);                                              \
            if (t + ST < nk)                                                           \
                GEMM_ISSUE(MW, NW, MD, ND, KW, cs, (t + ST) * KW)                      \
            GEMM_COMMIT();                                                             \
            GEMM_FRAG(MW, NW, MD, ND, As + cn * ata, Bs + cn * btb, 0, fa0, fb0)       \
        }                                                                              \
        GEMM_FMA(MW, NW, MD, ND, fa1, fb1)                                             \
        cs = cn;                                                                       \
    }

/* The pipeline: steps 0..ST-1 start before the loop (every buffer is free
 * then); GEMM_ASYNC_LOOP keeps ST-1 steps in flight ahead of the one being
 * multiplied, with one barrier and one commit per step, empty or not, so
 * that "ST-2 groups may be pending" always means "the next step has
 * landed" (at the first wait, the next two). */
#define GEMM_DEFINE_ASYNC(SUF, MW, NW, MD, ND, KW, ST, TA, TB)                         \
void gemm_tile_##SUF(const int M, const int N, const int K, const REAL alpha,           \
                     const REAL beta, __global const REAL *A, const int lda,            \
                     __global const REAL *B, const int ldb, __global REAL *C,           \
                     const int ldc, __local REAL *As, __local REAL *Bs)                 \
{                                                                                       \
    const int trans_a = TA, trans_b = TB;                                               \
    GEMM_TILE_START(MW, NW, MD, ND)                                                     \
    const int ata = GEMM_XTILE(MW, KW), btb = GEMM_XTILE(NW, KW);                       \
    const uint sA = GEMM_SMEM(As), sB = GEMM_SMEM(Bs);                                  \
    GEMM_ASYNC_SETUP(MW, NW, MD, ND, KW)                                                \
    const int nk = (K + KW - 1) / KW;                                                   \
    /* Not unrolled: with the copies inlined here too, Intel's compiler */              \
    /* (ocloc, pvc and dg2) crashes at 2 and 4 buffers. */                              \
    _Pragma("unroll 1")                                                                 \
    for (int s = 0; s < ST; ++s) {                                                      \
        if (s < nk)                                                                     \
            GEMM_ISSUE(MW, NW, MD, ND, KW, s, s * KW)                                   \
        GEMM_COMMIT();                                                                  \
    }                                                                                   \
    GEMM_ASYNC_LOOP(MW, NW, MD, ND, KW, ST)                                             \
                                                                                        \
    const int whole = m0 + MW <= M && n0 + NW <= N && (ldc & 3) == 0;                   \
    GEMM_UNROLL                                                                         \
    for (int i = 0; i < MW / MD; ++i) {                                                 \
        const int gm = m0 + i / 4 * 4 * MD + ty * 4 + i % 4;                            \
        GEMM_STORE_C4(MW, NW, MD, ND)                                                   \
    }                                                                                   \
}

/* Each transpose case gets its own copy of the body (its copies differ),
 * not a shared function that a compiler might leave un-inlined with the
 * cases as run-time branches. */
#define GEMM_KERNEL_ASYNC(name, MW, NW, MD, ND, ta, tb, KW, ST)                         \
    GEMM_DEFINE_ASYNC(name##_tile, MW, NW, MD, ND, KW, ST, ta, tb)                      \
    __kernel __attribute__((reqd_work_group_size(ND, MD, 1)))                           \
    void name(const int M, const int N, const int K, const REAL alpha,                  \
              const REAL beta, __global const REAL *A, const int lda,                   \
              __global const REAL *B, const int ldb, __global REAL *C, const int ldc)   \
    {                                                                                   \
        __local REAL4 As[(ST) * GEMM_XTILE(MW, KW) / 4];                                \
        __local REAL4 Bs[(ST) * GEMM_XTILE(NW, KW) / 4];                                \
        gemm_tile_##name##_tile(M, N, K, alpha, beta, A, lda, B, ldb, C, ldc,           \
                                (__local REAL *)As, (__local REAL *)Bs);                \
    }

/* ---- Split-K with a separate sum (the split tile) -------------------------
 * Stream-K's last contributor adds up every other contributor's partial
 * tile alone, one slot after another, so a tile cut into many runs waits
 * on that one work-group (H100: 128x128x4096 over 64 runs a tile, 2.5
 * TFLOP/s; over 33, 4.0).  Here group (s, u) multiplies tile u over its
 * share of the K steps and stores the partial product, without alpha or
 * beta, as slice s of W (the kernel's C is not written): an M x ldw
 * row-major matrix per slice (ldw a multiple of 4, so that whole tiles
 * store as vectors); then
 * gemm_ksum, one work-item an element, adds the slices in the order of k
 * and applies alpha and beta, with every compute unit taking part.  The
 * S slices share a tile's iters K steps as evenly as they can: with S at
 * most iters, every slice gets one or more. */
#define GEMM_DEFINE_KPART(SUF, MW, NW, MD, ND, KW, REV, LB)                             \
void gemm_kpart_##SUF(const int M, const int N, const int K,                            \
                      __global const REAL *A, const int lda, __global const REAL *B,    \
                      const int ldb, __global REAL *C, const int ldc, const int trans_a, \
                      const int trans_b, const int tiles_n, const int iters,            \
                      const int S, __local REAL *As, __local REAL *Bs)                  \
{                                                                                       \
    GEMM_PLACE(MD, ND)                                                                  \
    const int u = get_group_id(1), s = get_group_id(0);                                 \
    const int kb = (int)((long)s * iters / S), ke = (int)((long)(s + 1) * iters / S);   \
    const int m0 = u / tiles_n * MW, n0 = u % tiles_n * NW;                             \
    const REAL alpha = 1, beta = 0;                                                     \
    GEMM_ACC(MW, NW, MD, ND)                                                            \
    GEMM_MAIN_LOOP(MW, NW, MD, ND, KW, REV, LB, kb * KW, min(ke * KW, K))               \
    GEMM_STORE_TILE(MW, NW, MD, ND)                                                     \
}

#define GEMM_KERNEL_KPART(name, SUF, MW, NW, MD, ND, ta, tb, KW, LB)                    \
    __kernel __attribute__((reqd_work_group_size(ND, MD, 1)))                           \
    void name(const int M, const int N, const int K, const REAL alpha,                  \
              const REAL beta, __global const REAL *A, const int lda,                   \
              __global const REAL *B, const int ldb, __global REAL *C, const int ldc,   \
              const int tiles_n, const int iters, const int S, __global REAL *W,        \
              const int ldw)                                                            \
    {                                                                                   \
        __local REAL4 As[(LB) * KW * (MW + LPAD) / 4];                                  \
        __local REAL4 Bs[(LB) * KW * (NW + LPAD) / 4];                                  \
        gemm_kpart_##SUF(M, N, K, A, lda, B, ldb,                                       \
                         W + (size_t)get_group_id(0) * M * ldw, ldw, ta, tb, tiles_n,   \
                         iters, S, (__local REAL *)As, (__local REAL *)Bs);             \
    }

/* The four transpose cases of a big-tile kernel kind: gemm_nn_SUF and the
 * rest, made by KERNEL (GEMM_KERNEL_SK, GEMM_KERNEL_KPART). */
#define GEMM_BIG_CASES(KERNEL, SUF)                                                     \
    KERNEL(gemm_nn_##SUF, big, BMWG, BNWG, BMDIMC, BNDIMC, 0, 0, GKWG, GLBUF)           \
    KERNEL(gemm_nt_##SUF, big, BMWG, BNWG, BMDIMC, BNDIMC, 0, 1, GKWG, GLBUF)           \
    KERNEL(gemm_tn_##SUF, big, BMWG, BNWG, BMDIMC, BNDIMC, 1, 0, GKWG, GLBUF)           \
    KERNEL(gemm_tt_##SUF, big, BMWG, BNWG, BMDIMC, BNDIMC, 1, 1, GKWG, GLBUF)

/* -DGPUMAT_SPLIT_K (the library's "gemm_ksplit" program): the split-K
 * kernels alone; -DGPUMAT_STREAM_K ("gemm_sk"): the stream-K kernels
 * alone; without either everything else. */
#if defined(GPUMAT_SPLIT_K)
GEMM_DEFINE_KPART(big, BMWG, BNWG, BMDIMC, BNDIMC, GKWG, 1, GLBUF)
GEMM_BIG_CASES(GEMM_KERNEL_KPART, kpart)

/* C = alpha * (the sum of the S slices of W) + beta * C; C is not read
 * where beta is 0, so that whatever it held (NaN) does not matter.  The
 * arguments start as every kernel's here (K, A and B unused). */
__kernel void gemm_ksum(const int M, const int N, const int K, const REAL alpha,
                        const REAL beta, __global const REAL *A, const int lda,
                        __global const REAL *B, const int ldb, __global REAL *C,
                        const int ldc, const int S, __global const REAL *W, const int ldw)
{
    const int n = get_global_id(0), m = get_global_id(1);
    if (m >= M || n >= N)
        return;
    const size_t slice = (size_t)M * ldw;
    __global const REAL *w = W + (size_t)m * ldw + n;
    REAL sum = w[0];
    for (int s = 1; s < S; ++s)
        sum += w[s * slice];
    __global REAL *c = C + (size_t)m * ldc + n;
    *c = beta == 0 ? alpha * sum : alpha * sum + beta * *c;
}
#elif defined(GPUMAT_STREAM_K)
GEMM_DEFINE_SK(big, BMWG, BNWG, BMDIMC, BNDIMC, GKWG, 1, GLBUF)
GEMM_BIG_CASES(GEMM_KERNEL_SK, sk)
#else
#if GASYNC >= 2
#define GEMM_KERNEL_BIG(name, ta, tb, SUF)                                              \
    GEMM_KERNEL_ASYNC(name, BMWG, BNWG, BMDIMC, BNDIMC, ta, tb, GKWG, GASYNC)
#else
/* Every case of the big tile runs the products in REV order (round 6, see
 * GEMM_COMPUTE). */
GEMM_DEFINE(big, BMWG, BNWG, BMDIMC, BNDIMC, GKWG, 1, GLBUF)
#define GEMM_KERNEL_BIG(name, ta, tb, SUF)                                              \
    GEMM_KERNEL(name, SUF, BMWG, BNWG, BMDIMC, BNDIMC, ta, tb, GKWG, GLBUF)
#endif
GEMM_DEFINE(small, SMWG, SNWG, SMDIMC, SNDIMC, SGKWG, 0, SGLBUF)
GEMM_DEFINE(small_alike, SMWG, SNWG, SMDIMC, SNDIMC, SGKWG, 1, SGLBUF)

GEMM_KERNEL_BIG(gemm_nn, 0, 0, big)
GEMM_KERNEL_BIG(gemm_nt, 0, 1, big)
GEMM_KERNEL_BIG(gemm_tn, 1, 0, big)
GEMM_KERNEL_BIG(gemm_tt, 1, 1, big)
GEMM_KERNEL(gemm_nn_small, small_alike, SMWG, SNWG, SMDIMC, SNDIMC, 0, 0, SGKWG, SGLBUF)
GEMM_KERNEL(gemm_nt_small, small, SMWG, SNWG, SMDIMC, SNDIMC, 0, 1, SGKWG, SGLBUF)
GEMM_KERNEL(gemm_tn_small, small, SMWG, SNWG, SMDIMC, SNDIMC, 1, 0, SGKWG, SGLBUF)
/* TT at its own depth where TTKWG says (float: deeper small tiles gain
 * in the other cases and lose in this one on the H100). */
#if defined(TTKWG) && !defined(GPUMAT_FP64)
GEMM_DEFINE(small_tt, SMWG, SNWG, SMDIMC, SNDIMC, TTKWG, 1, SGLBUF)
GEMM_KERNEL(gemm_tt_small, small_tt, SMWG, SNWG, SMDIMC, SNDIMC, 1, 1, TTKWG, SGLBUF)
#else
GEMM_KERNEL(gemm_tt_small, small_alike, SMWG, SNWG, SMDIMC, SNDIMC, 1, 1, SGKWG, SGLBUF)
#endif

#if TMWG > 0
GEMM_DEFINE(tiny, TMWG, TNWG, TMDIMC, TNDIMC, SGKWG, 0, GLBUF)
GEMM_DEFINE(tiny_alike, TMWG, TNWG, TMDIMC, TNDIMC, SGKWG, 1, GLBUF)
GEMM_KERNEL(gemm_nn_tiny, tiny_alike, TMWG, TNWG, TMDIMC, TNDIMC, 0, 0, SGKWG, GLBUF)
GEMM_KERNEL(gemm_nt_tiny, tiny, TMWG, TNWG, TMDIMC, TNDIMC, 0, 1, SGKWG, GLBUF)
GEMM_KERNEL(gemm_tn_tiny, tiny, TMWG, TNWG, TMDIMC, TNDIMC, 1, 0, SGKWG, GLBUF)
#if defined(TTKWG) && !defined(GPUMAT_FP64)
GEMM_DEFINE(tiny_tt, TMWG, TNWG, TMDIMC, TNDIMC, TTKWG, 1, GLBUF)
GEMM_KERNEL(gemm_tt_tiny, tiny_tt, TMWG, TNWG, TMDIMC, TNDIMC, 1, 1, TTKWG, GLBUF)
#else
GEMM_KERNEL(gemm_tt_tiny, tiny_alike, TMWG, TNWG, TMDIMC, TNDIMC, 1, 1, SGKWG, GLBUF)
#endif
#endif
#endif /* GPUMAT_SPLIT_K, GPUMAT_STREAM_K */
