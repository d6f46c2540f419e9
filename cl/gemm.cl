/*
 * General matrix product C = alpha * op(A) * op(B) + beta * C, row-major,
 * with op(X) = X or X^T read in place.  op(A) is M x K, op(B) is K x N.
 *
 * Blocking (all -D parameters chosen per device by the library's profile):
 *   MWG x NWG  the tile of C one work-group computes
 *   KWG        the depth of the A and B tiles staged in local memory per step
 *   MDIMC x NDIMC  the work-group shape; each work-item accumulates
 *              MWI x NWI = (MWG/MDIMC) x (NWG/NDIMC) outputs in registers,
 *              strided by MDIMC and NDIMC so that neighbouring work-items
 *              touch neighbouring columns (coalesced stores, conflict-free
 *              local reads).
 * Edge tiles are loaded with zeros outside the matrices and stored with
 * bounds checks, so any M, N, K works without a padding copy.
 * With beta == 0, C is only written, never read: NaNs in an uninitialised
 * C must not leak into the result.
 */
#ifdef GPUMAT_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif

#define MWI (MWG / MDIMC)
#define NWI (NWG / NDIMC)
#define THREADS (MDIMC * NDIMC)

void gemm_tile(const int M, const int N, const int K, const REAL alpha,
                      const REAL beta, __global const REAL *A, const int lda,
                      __global const REAL *B, const int ldb, __global REAL *C,
                      const int ldc, const int trans_a, const int trans_b,
                      __local REAL (*Als)[MWG + 1], __local REAL (*Bls)[NWG + 1])
{
    const int tx = get_local_id(0), ty = get_local_id(1);
    const int tid = ty * NDIMC + tx;
    const int m0 = get_group_id(1) * MWG, n0 = get_group_id(0) * NWG;

    REAL acc[MWI][NWI];
#pragma unroll
    for (int i = 0; i < MWI; ++i)
#pragma unroll
        for (int j = 0; j < NWI; ++j)
            acc[i][j] = 0;

    for (int k0 = 0; k0 < K; k0 += KWG) {
        /* Walk each tile along the operand's contiguous dimension so that
         * consecutive work-items read consecutive addresses. */
        for (int i = tid; i < MWG * KWG; i += THREADS) {
            const int mm = trans_a ? i % MWG : i / KWG;
            const int kk = trans_a ? i / MWG : i % KWG;
            const int gm = m0 + mm, gk = k0 + kk;
            REAL v = 0;
            if (gm < M && gk < K)
                v = trans_a ? A[(size_t)gk * lda + gm] : A[(size_t)gm * lda + gk];
            Als[kk][mm] = v;
        }
        for (int i = tid; i < KWG * NWG; i += THREADS) {
            const int kk = trans_b ? i % KWG : i / NWG;
            const int nn = trans_b ? i / KWG : i % NWG;
            const int gk = k0 + kk, gn = n0 + nn;
            REAL v = 0;
            if (gk < K && gn < N)
                v = trans_b ? B[(size_t)gn * ldb + gk] : B[(size_t)gk * ldb + gn];
            Bls[kk][nn] = v;
        }
        barrier(CLK_LOCAL_MEM_FENCE);

#pragma unroll
        for (int kk = 0; kk < KWG; ++kk) {
            REAL a[MWI], b[NWI];
#pragma unroll
            for (int i = 0; i < MWI; ++i)
                a[i] = Als[kk][ty + i * MDIMC];
#pragma unroll
            for (int j = 0; j < NWI; ++j)
                b[j] = Bls[kk][tx + j * NDIMC];
#pragma unroll
            for (int i = 0; i < MWI; ++i)
#pragma unroll
                for (int j = 0; j < NWI; ++j)
                    acc[i][j] = mad(a[i], b[j], acc[i][j]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }

#pragma unroll
    for (int i = 0; i < MWI; ++i) {
        const int gm = m0 + ty + i * MDIMC;
        if (gm >= M)
            continue;
#pragma unroll
        for (int j = 0; j < NWI; ++j) {
            const int gn = n0 + tx + j * NDIMC;
            if (gn < N) {
                __global REAL *c = C + (size_t)gm * ldc + gn;
                *c = beta == 0 ? alpha * acc[i][j] : alpha * acc[i][j] + beta * *c;
            }
        }
    }
}

/* One entry point per transpose case, so each compiles to a specialised
 * body with its own load order. */
#define GEMM_KERNEL(name, ta, tb)                                                    \
    __kernel __attribute__((reqd_work_group_size(NDIMC, MDIMC, 1)))                  \
    void name(const int M, const int N, const int K, const REAL alpha,               \
              const REAL beta, __global const REAL *A, const int lda,                \
              __global const REAL *B, const int ldb, __global REAL *C, const int ldc) \
    {                                                                                \
        __local REAL Als[KWG][MWG + 1];                                              \
        __local REAL Bls[KWG][NWG + 1];                                              \
        gemm_tile(M, N, K, alpha, beta, A, lda, B, ldb, C, ldc, ta, tb, Als, Bls);   \
    }

GEMM_KERNEL(gemm_nn, 0, 0)
GEMM_KERNEL(gemm_nt, 0, 1)
GEMM_KERNEL(gemm_tn, 1, 0)
GEMM_KERNEL(gemm_tt, 1, 1)
