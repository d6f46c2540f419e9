/*
 * General matrix product C = alpha * op(A) * op(B) + beta * C for CPU
 * OpenCL drivers (PoCL and the like), row-major, op(X) = X or X^T read in
 * place; the same arguments as cl/gemm.cl's kernels.  Built only for
 * profiles with CVW > 0 (the library then never builds cl/gemm.cl's tiled
 * kernels for them).
 *
 * A CPU driver runs a work-group as a loop over its work-items, and local
 * memory is ordinary memory: the GPU kernel's local tiles and barriers only
 * add copies and split that loop.  Here every work-item reads A and B
 * straight from global memory (the caches do the tiling) and keeps a block
 * of C in vector registers for the whole K loop:
 *   - NN, TN and TT: "rows x vectors".  The block is CMR rows (p) by CNV
 *     vectors of CW elements (q) of C' = X Y, where Y is the operand that
 *     is contiguous along the vector: for NN and TN, C' = C, X = op(A),
 *     Y = B; for TT, C' = C^T = B A (A^T^T = A is contiguous along m).
 *     Per k: CNV vector loads of Y, CMR scalars of X broadcast, CMR*CNV
 *     vector FMAs (a 4 x 3 block of 8-float vectors fills 12 of AVX2's 16
 *     registers with accumulators).
 *   - NT: neither operand is contiguous along m or n, both along k: the
 *     block is CDM x CDN dot products, each accumulated as a CW-wide vector
 *     along k and summed across at the end.  Per CW values of k: CDM + CDN
 *     vector loads, CDM*CDN vector FMAs.
 *   - Large products (the host decides, profile parameters CPACK, CKC):
 *     B or B^T is first packed into panels of CNV*CW columns, and for TN
 *     and TT A^T into panels of CMR rows (cpu_pack_rows, cpu_pack_cols),
 *     so that every block reads one sequential stream per operand; NT
 *     then runs as NN and TT as TN (gemm_*_cpu_packed).  Reading B down its columns in place touches a
 *     new page and, with 4 KiB rows, the same cache sets every k: measured
 *     2-4x slower from 512^3 on (docs/gemm-notes.md).
 * Parameters (-D, from the profile): CVW the float vector width (double
 * uses CVW/2: the same register width), CMR, CNV, CDM, CDN as above, and
 * CWX x CWY the work-group (work-items along q or n, along p or m).
 *
 * Edges: rows of the block past the matrix read the last row (in bounds,
 * never stored); blocks whose vectors would cross the matrix's edge, and the
 * last K % CW values of the dot products, load element by element with the
 * index clamped or the value zeroed, so nothing outside A, B or C is read
 * or written, whatever M, N, K and leading dimensions.  With beta == 0, C
 * is only written, never read.
 */
#if defined(CVW) && CVW > 0
#ifdef GPUMAT_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
/* A literal: it is pasted into type and function names. */
#if CVW == 16
#define CW 8
#elif CVW == 8
#define CW 4
#else
#define CW 2
#endif
#else
#define CW CVW
#endif

#define CPU_CAT_(a, b) a##b
#define CPU_CAT(a, b) CPU_CAT_(a, b)
#define VEC CPU_CAT(REAL, CW)
#define VLOAD CPU_CAT(vload, CW)
#define VSTORE CPU_CAT(vstore, CW)
#define CPU_UNROLL _Pragma("unroll")

/* The sum of a vector's elements. */
#if CW == 16
#define CPU_HSUM16(v) CPU_HSUM8((v).lo + (v).hi)
#endif
#define CPU_HSUM8(v) CPU_HSUM4((v).lo + (v).hi)
#define CPU_HSUM4(v) CPU_HSUM2((v).lo + (v).hi)
#define CPU_HSUM2(v) ((v).s0 + (v).s1)
#define CPU_HSUM CPU_CAT(CPU_HSUM, CW)

/* Vector v of a CW-wide row piece starting at element q of row y (which
 * has nq elements): a plain load when the whole block is inside the row,
 * else elements with the index clamped to the row (the extra columns are
 * never stored). */
#define CPU_YLOAD(y, q, v, whole)                                                      \
    ((whole) ? VLOAD(v, (y) + (q)) : cpu_yclamp((y), (q) + (v) * CW, nq))

VEC cpu_yclamp(__global const REAL *y, const int q, const int nq)
{
    REAL t[CW];
    CPU_UNROLL
    for (int e = 0; e < CW; ++e)
        t[e] = y[min(q + e, nq - 1)];
    return VLOAD(0, t);
}

/* The K loop of the rows x vectors block, with Y loads as `whole` says
 * (a compile-time constant at each use, so each gets its own loop). */
#define CPU_RV_LOOP(whole)                                                             \
    for (int k = 0; k < K; ++k) {                                                      \
        VEC b[CNV];                                                                    \
        CPU_UNROLL                                                                     \
        for (int v = 0; v < CNV; ++v)                                                  \
            b[v] = CPU_YLOAD(y, yq, v, whole);                                         \
        CPU_UNROLL                                                                     \
        for (int i = 0; i < CMR; ++i) {                                                \
            const VEC a = (VEC)(x[i][(size_t)k * xk]);                                 \
            CPU_UNROLL                                                                 \
            for (int v = 0; v < CNV; ++v)                                              \
                acc[i][v] = fma(a, b[v], acc[i][v]);                                   \
        }                                                                              \
        y += yk;                                                                       \
    }

/* C' (P x Q) = X Y + ..., X(p, k) = X[p*XP + k*XK], Y(k, q) = Y[k*YK + q],
 * C'(p, q) = C[p*CP + q*CQ]: one CMR x (CNV*CW) block per work-item.
 * Packed operands (cpu_pack_rows/_cols): with PY, Y is the block's panel, K rows
 * of CNV*CW values, zero past Q; with PX, X is the block's panel of
 * K x CMR values (XP 1, XK CMR), zero past P. */
#define CPU_RV_BODY(P, Q, X, XP, XK, Y, YK, CP, CQ, PX, PY)                            \
    const int p0 = get_global_id(1) * CMR, q0 = get_global_id(0) * (CNV * CW);         \
    if (p0 >= P || q0 >= Q)                                                            \
        return;                                                                        \
    /* For CPU_RV_LOOP (constants stay constants once inlined). */                     \
    const int nq = Q, xk = XK, yk = YK, yq = PY ? 0 : q0;                              \
    __global const REAL *x[CMR];                                                       \
    CPU_UNROLL                                                                         \
    for (int i = 0; i < CMR; ++i)                                                      \
        x[i] = PX ? X + get_global_id(1) * (size_t)K * CMR + i                         \
                  : X + (size_t)min(p0 + i, P - 1) * XP;                               \
    __global const REAL *y = PY ? Y + get_global_id(0) * (size_t)K * (CNV * CW) : Y;   \
    VEC acc[CMR][CNV];                                                                 \
    CPU_UNROLL                                                                         \
    for (int i = 0; i < CMR; ++i)                                                      \
        CPU_UNROLL                                                                     \
        for (int v = 0; v < CNV; ++v)                                                  \
            acc[i][v] = 0;                                                             \
    const int whole = q0 + CNV * CW <= Q;                                              \
    if (PY || whole) {                                                                 \
        CPU_RV_LOOP(1)                                                                 \
    } else {                                                                           \
        CPU_RV_LOOP(0)                                                                 \
    }                                                                                  \
    CPU_UNROLL                                                                         \
    for (int i = 0; i < CMR; ++i) {                                                    \
        if (p0 + i < P) {                                                              \
            __global REAL *c = C + (size_t)(p0 + i) * CP;                              \
            CPU_UNROLL                                                                 \
            for (int v = 0; v < CNV; ++v) {                                            \
                const VEC r = alpha * acc[i][v];                                       \
                const int q = q0 + v * CW;                                             \
                if (CQ == 1 && whole) {                                                \
                    VSTORE(beta == 0 ? r : r + beta * VLOAD(0, c + q), 0, c + q);      \
                } else {                                                               \
                    REAL t[CW];                                                        \
                    VSTORE(r, 0, t);                                                   \
                    CPU_UNROLL                                                         \
                    for (int e = 0; e < CW; ++e) {                                     \
                        __global REAL *ce = c + (size_t)(q + e) * CQ;                  \
                        if (q + e < Q)                                                 \
                            *ce = beta == 0 ? t[e] : t[e] + beta * *ce;                \
                    }                                                                  \
                }                                                                      \
            }                                                                          \
        }                                                                              \
    }

#define CPU_ARGS                                                                       \
    const int M, const int N, const int K, const REAL alpha, const REAL beta,          \
        __global const REAL *A, const int lda, __global const REAL *B, const int ldb,  \
        __global REAL *C, const int ldc
#define CPU_KERNEL __kernel __attribute__((reqd_work_group_size(CWX, CWY, 1))) void

CPU_KERNEL gemm_nn_cpu(CPU_ARGS) { CPU_RV_BODY(M, N, A, lda, 1, B, ldb, ldc, 1, 0, 0) }

CPU_KERNEL gemm_tn_cpu(CPU_ARGS) { CPU_RV_BODY(M, N, A, 1, lda, B, ldb, ldc, 1, 0, 0) }

/* C^T = B A: p runs over n (B's rows, contiguous along k), q over m. */
CPU_KERNEL gemm_tt_cpu(CPU_ARGS) { CPU_RV_BODY(N, M, B, ldb, 1, A, lda, 1, ldc, 0, 0) }

/* The same on packed operands (packed first by the host, see below):
 * B (NN) or B^T (NT) packed, A as it is from element aoff on (the host's
 * passes over k start there); A^T and B (TN) or B^T (TT) packed.  The
 * lda/ldb of a packed operand are not used. */
CPU_KERNEL gemm_nn_cpu_packed(CPU_ARGS, const ulong aoff)
{
    __global const REAL *Ap = A + aoff;
    CPU_RV_BODY(M, N, Ap, lda, 1, B, CNV * CW, ldc, 1, 0, 1)
}

CPU_KERNEL gemm_tn_cpu_packed(CPU_ARGS, const ulong aoff)
{
    (void)aoff;
    CPU_RV_BODY(M, N, A, 1, CMR, B, CNV * CW, ldc, 1, 1, 1)
}

/* The packing kernels: the K x Q operand Y(k, q) (stored from element
 * off of Y on) into panels of W columns, each K rows of W values, zero
 * past Q: Yp[(b*K + k)*W + w] = Y(k, b*W + w).  A GEMM block then reads its panel as one sequential
 * stream, whatever the operand's layout and leading dimension (rows 4 KiB
 * apart all fall in the same cache sets, and each is another page).  Each
 * reads Y along its rows: one work-item per row of a panel read rows 4 KiB
 * apart with 1-2 cache misses per 24 values, and packing took as long as
 * the product.
 *
 * cpu_pack_rows, Y(k, q) = Y[k*ld + q]: work-item (k, g) packs row k of
 * panels g*G ... g*G+G-1, G*W consecutive values of one row; its
 * neighbours in the work-group write the next rows of the same panels. */
__kernel void cpu_pack_rows(const int Q, const int K, __global const REAL *Y, const int ld,
                            const int W, const int G, __global REAL *Yp, const ulong off)
{
    Y += off;
    const int k = get_global_id(0), b0 = get_global_id(1) * G;
    if (k >= K)
        return;
    __global const REAL *y = Y + (size_t)k * ld;
    const int bn = min(b0 + G, (Q + W - 1) / W);
    /* Whole panels copy without a bound per value. */
    const int whole = min(bn, Q / W);
    for (int b = b0; b < whole; ++b) {
        __global REAL *out = Yp + ((size_t)b * K + k) * W;
        for (int w = 0; w < W; ++w)
            out[w] = y[b * W + w];
    }
    for (int b = max(b0, whole); b < bn; ++b) {
        __global REAL *out = Yp + ((size_t)b * K + k) * W;
        for (int w = 0; w < W; ++w)
            out[w] = b * W + w < Q ? y[b * W + w] : 0;
    }
}

/* cpu_pack_cols, Y(k, q) = Y[q*ld + k] (rows of the stored matrix run
 * along k): work-item (t, b) packs rows k = t*G ... t*G+G-1 of panel b,
 * G*W values written in order, read as G consecutive values of each of W
 * rows; its neighbours in the work-group take the next G values of the
 * same rows. */
__kernel void cpu_pack_cols(const int Q, const int K, __global const REAL *Y, const int ld,
                            const int W, const int G, __global REAL *Yp, const ulong off)
{
    Y += off;
    const int k0 = get_global_id(0) * G, b = get_global_id(1);
    if (k0 >= K)
        return;
    const int kn = min(G, K - k0);
    __global REAL *out = Yp + ((size_t)b * K + k0) * W;
    for (int w = 0; w < W; ++w) {
        const int q = b * W + w;
        __global const REAL *y = Y + (size_t)min(q, Q - 1) * ld + k0;
        for (int kk = 0; kk < kn; ++kk)
            out[kk * W + w] = q < Q ? y[kk] : 0;
    }
}

/* Vector of CW values of k from k0 on in row r: zero past K. */
VEC cpu_ktail(__global const REAL *r, const int k0, const int K)
{
    REAL t[CW];
    CPU_UNROLL
    for (int e = 0; e < CW; ++e)
        t[e] = k0 + e < K ? r[k0 + e] : 0;
    return VLOAD(0, t);
}

#define CPU_DOT_STEP(LOAD)                                                             \
    {                                                                                  \
        VEC a[CDM];                                                                    \
        CPU_UNROLL                                                                     \
        for (int i = 0; i < CDM; ++i)                                                  \
            a[i] = LOAD(ra[i]);                                                        \
        CPU_UNROLL                                                                     \
        for (int j = 0; j < CDN; ++j) {                                                \
            const VEC b = LOAD(rb[j]);                                                 \
            CPU_UNROLL                                                                 \
            for (int i = 0; i < CDM; ++i)                                              \
                acc[i][j] = fma(a[i], b, acc[i][j]);                                   \
        }                                                                              \
    }
#define CPU_KLOAD(r) VLOAD(0, (r) + k)
#define CPU_KTAIL(r) cpu_ktail((r), k, K)

/* C = A B^T: CDM x CDN dot products of rows of A and rows of B. */
CPU_KERNEL gemm_nt_cpu(CPU_ARGS)
{
    const int m0 = get_global_id(1) * CDM, n0 = get_global_id(0) * CDN;
    if (m0 >= M || n0 >= N)
        return;
    __global const REAL *ra[CDM], *rb[CDN];
    CPU_UNROLL
    for (int i = 0; i < CDM; ++i)
        ra[i] = A + (size_t)min(m0 + i, M - 1) * lda;
    CPU_UNROLL
    for (int j = 0; j < CDN; ++j)
        rb[j] = B + (size_t)min(n0 + j, N - 1) * ldb;
    VEC acc[CDM][CDN];
    CPU_UNROLL
    for (int i = 0; i < CDM; ++i)
        CPU_UNROLL
        for (int j = 0; j < CDN; ++j)
            acc[i][j] = 0;
    int k = 0;
    for (; k + CW <= K; k += CW)
        CPU_DOT_STEP(CPU_KLOAD)
    if (k < K)
        CPU_DOT_STEP(CPU_KTAIL)
    CPU_UNROLL
    for (int i = 0; i < CDM; ++i) {
        if (m0 + i < M) {
            __global REAL *c = C + (size_t)(m0 + i) * ldc;
            CPU_UNROLL
            for (int j = 0; j < CDN; ++j) {
                const REAL r = alpha * CPU_HSUM(acc[i][j]);
                if (n0 + j < N)
                    c[n0 + j] = beta == 0 ? r : r + beta * c[n0 + j];
            }
        }
    }
}
#endif
