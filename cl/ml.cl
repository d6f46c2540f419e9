/*
 * Neural-network and element-wise kernels.  REAL is float or double (set by
 * the library through -DREAL=...); GPUMAT_FP64 is defined for double.  TS
 * and TR (the transpose tile of the device profile) size geam_t's tiles.
 *
 * Three shapes of kernel live here:
 * - element-wise: 4-wide vectors in a grid-stride loop, as in
 *   elementwise.cl; the launch is sized for the device, not the matrix, and
 *   the last n % 4 elements go to the first work-items.  Outputs may alias
 *   inputs because every element is read and then written by one work-item.
 * - broadcast over rows (add_row_vector, gather_rows): a 2-D grid-stride
 *   loop, dimension 0 over columns (or 4-column vectors when the row length
 *   allows it), dimension 1 over rows, so no work-item divides an index.
 * - row reductions (softmax_rows, argmax_rows, softmax_xent): one
 *   work-group per row at a time (a grid-stride loop over rows), its
 *   work-items striding over the columns, then a tree through the local
 *   scratch array passed by the host.  The tree handles any work-group size,
 *   so the host may clamp the size to what the compiled kernel allows.
 * The order of every sum depends only on the launch shape, so results are
 * reproducible run to run on one device.
 *
 * Only OpenCL C 1.2, and no double outside GPUMAT_FP64 builds: literals are
 * written as integers or cast to REAL.
 */
#ifdef GPUMAT_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#define REAL4 double4
#else
#define REAL4 float4
#endif

/* ---- element-wise ------------------------------------------------------- */

/* c = alpha a + beta b.  A zero coefficient leaves its operand unread, so
 * that gpumat_scale can pass any matrix there and NaN in an unread operand
 * does not leak into c (the convention of gemm's beta).  The products are
 * separate statements so that the compiler cannot contract them into one
 * fma: 1*a - 1*b must stay the correctly rounded a - b. */
__kernel void geam(const ulong n, const REAL alpha, __global const REAL *a, const REAL beta,
                   __global const REAL *b, __global REAL *c)
{
    const ulong vectors = n / 4;
    const ulong stride = get_global_size(0);
    for (ulong i = get_global_id(0); i < vectors; i += stride) {
        REAL4 r = (REAL4)(0);
        if (alpha != 0)
            r = alpha * vload4(i, a);
        if (beta != 0) {
            const REAL4 t = beta * vload4(i, b);
            r += t;
        }
        vstore4(r, i, c);
    }
    const ulong tail = vectors * 4 + get_global_id(0);
    if (tail < n) {
        REAL r = 0;
        if (alpha != 0)
            r = alpha * a[tail];
        if (beta != 0) {
            const REAL t = beta * b[tail];
            r += t;
        }
        c[tail] = r;
    }
}

/* c (rows x cols) = alpha op(a) + beta op(b) where at least one operand is
 * transposed.  A transposed operand is stored cols x rows; its TS x TS
 * block is read along the stored rows into local memory (coalesced) and
 * read back across, as in transpose.cl; an operand used as stored is read
 * directly.  The host refuses c aliasing a transposed operand. */
__kernel __attribute__((reqd_work_group_size(TS, TR, 1)))
void geam_t(const uint rows, const uint cols, const REAL alpha, __global const REAL *a,
            const uint trans_a, const REAL beta, __global const REAL *b, const uint trans_b,
            __global REAL *c)
{
    __local REAL tile_a[TS][TS + 1];
    __local REAL tile_b[TS][TS + 1];
    const uint lx = get_local_id(0), ly = get_local_id(1);
    const uint col0 = get_group_id(0) * TS, row0 = get_group_id(1) * TS;

    /* Stored element (col0 + j, row0 + lx) of a transposed operand is
     * element (row0 + lx, col0 + j) of op(x). */
    for (uint j = ly; j < TS; j += TR) {
        const uint sr = col0 + j, sc = row0 + lx;
        if (sr < cols && sc < rows) {
            if (trans_a && alpha != 0)
                tile_a[j][lx] = a[(ulong)sr * rows + sc];
            if (trans_b && beta != 0)
                tile_b[j][lx] = b[(ulong)sr * rows + sc];
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint j = ly; j < TS; j += TR) {
        const uint r = row0 + j, k = col0 + lx;
        if (r < rows && k < cols) {
            const ulong at = (ulong)r * cols + k;
            REAL v = 0;
            if (alpha != 0)
                v = alpha * (trans_a ? tile_a[lx][j] : a[at]);
            if (beta != 0) {
                const REAL t = beta * (trans_b ? tile_b[lx][j] : b[at]);
                v += t;
            }
            c[at] = v;
        }
    }
}

__kernel void hadamard(const ulong n, __global const REAL *a, __global const REAL *b,
                       __global REAL *c)
{
    const ulong vectors = n / 4;
    const ulong stride = get_global_size(0);
    for (ulong i = get_global_id(0); i < vectors; i += stride)
        vstore4(vload4(i, a) * vload4(i, b), i, c);
    const ulong tail = vectors * 4 + get_global_id(0);
    if (tail < n)
        c[tail] = a[tail] * b[tail];
}

/* max(a, 0) written as "negative -> 0" so that NaN passes through (a NaN
 * activation should surface, not be silently zeroed). */
__kernel void relu(const ulong n, __global const REAL *a, __global REAL *c)
{
    const ulong vectors = n / 4;
    const ulong stride = get_global_size(0);
    for (ulong i = get_global_id(0); i < vectors; i += stride) {
        const REAL4 x = vload4(i, a);
        vstore4(select(x, (REAL4)(0), x < (REAL4)(0)), i, c);
    }
    const ulong tail = vectors * 4 + get_global_id(0);
    if (tail < n)
        c[tail] = a[tail] < 0 ? (REAL)0 : a[tail];
}

/* dx = dy where x > 0, else 0: the subgradient 0 at x == 0, as in the
 * common frameworks. */
__kernel void relu_backward(const ulong n, __global const REAL *dy, __global const REAL *x,
                            __global REAL *dx)
{
    const ulong vectors = n / 4;
    const ulong stride = get_global_size(0);
    for (ulong i = get_global_id(0); i < vectors; i += stride) {
        const REAL4 g = vload4(i, dy);
        vstore4(select((REAL4)(0), g, vload4(i, x) > (REAL4)(0)), i, dx);
    }
    const ulong tail = vectors * 4 + get_global_id(0);
    if (tail < n)
        dx[tail] = x[tail] > 0 ? dy[tail] : (REAL)0;
}

/* One Adam step, fused so that the parameter, gradient and both moments
 * are each read once and written once.  The host folds the bias
 * corrections into lr_t and eps_t (see op_elementwise.c). */
__kernel void adam(const ulong n, const REAL lr_t, const REAL beta1, const REAL one_minus_beta1,
                   const REAL beta2, const REAL one_minus_beta2, const REAL eps_t,
                   __global REAL *p, __global const REAL *g, __global REAL *m, __global REAL *v)
{
    const ulong vectors = n / 4;
    const ulong stride = get_global_size(0);
    for (ulong i = get_global_id(0); i < vectors; i += stride) {
        const REAL4 gi = vload4(i, g);
        const REAL4 mi = beta1 * vload4(i, m) + one_minus_beta1 * gi;
        const REAL4 vi = beta2 * vload4(i, v) + one_minus_beta2 * (gi * gi);
        vstore4(mi, i, m);
        vstore4(vi, i, v);
        vstore4(vload4(i, p) - lr_t * (mi / (sqrt(vi) + eps_t)), i, p);
    }
    const ulong tail = vectors * 4 + get_global_id(0);
    if (tail < n) {
        const REAL gi = g[tail];
        const REAL mi = beta1 * m[tail] + one_minus_beta1 * gi;
        const REAL vi = beta2 * v[tail] + one_minus_beta2 * (gi * gi);
        m[tail] = mi;
        v[tail] = vi;
        p[tail] -= lr_t * (mi / (sqrt(vi) + eps_t));
    }
}

/* ---- broadcast over rows -------------------------------------------------- */

/* c[r][k] = a[r][k] + v[k].  With cols % 4 == 0 each work-item takes
 * 4-column vectors (which then never straddle two rows). */
__kernel void add_row_vector(const uint rows, const uint cols, __global const REAL *a,
                             __global const REAL *v, __global REAL *c)
{
    const uint sx = get_global_size(0), sy = get_global_size(1);
    if (cols % 4 == 0) {
        const uint vecs = cols / 4;
        for (uint k = get_global_id(0); k < vecs; k += sx) {
            const REAL4 b = vload4(k, v);
            for (uint r = get_global_id(1); r < rows; r += sy) {
                const ulong at = (ulong)r * vecs + k;
                vstore4(vload4(at, a) + b, at, c);
            }
        }
    } else {
        for (uint k = get_global_id(0); k < cols; k += sx) {
            const REAL b = v[k];
            for (uint r = get_global_id(1); r < rows; r += sy) {
                const ulong at = (ulong)r * cols + k;
                c[at] = a[at] + b;
            }
        }
    }
}

/* An index held in a REAL: valid when it is an integer in [0, limit).  NaN
 * fails every comparison and so is invalid too.  The bound is compared as
 * an integer because (REAL)limit may round up for a float. */
bool index_ok(const REAL x, const uint limit)
{
    return x >= 0 && x < (REAL)4294967296.0f && x == floor(x) && (uint)x < limit;
}

/* dst[r] = src[idx[r]], a whole row each; a row whose index is invalid is
 * filled with NaN so that the mistake shows. */
__kernel void gather_rows(const uint rows, const uint cols, const uint src_rows,
                          __global const REAL *src, __global const REAL *idx,
                          __global REAL *dst)
{
    const uint sx = get_global_size(0), sy = get_global_size(1);
    const REAL nan_value = (REAL)NAN;
    for (uint r = get_global_id(1); r < rows; r += sy) {
        const REAL x = idx[r];
        const bool ok = index_ok(x, src_rows);
        const ulong from = ok ? (ulong)x : 0;
        if (cols % 4 == 0) {
            const uint vecs = cols / 4;
            for (uint k = get_global_id(0); k < vecs; k += sx)
                vstore4(ok ? vload4(from * vecs + k, src) : (REAL4)(nan_value),
                        (ulong)r * vecs + k, dst);
        } else {
            for (uint k = get_global_id(0); k < cols; k += sx)
                dst[(ulong)r * cols + k] = ok ? src[from * cols + k] : nan_value;
        }
    }
}

/* ---- work-group reductions ------------------------------------------------ */

/* The tree halves the live length each round (rounding up), so it works
 * for any work-group size, not only powers of two.  Every work-item of the
 * group must call these (they contain barriers); all get the result.  The
 * last barrier lets the caller reuse the scratch at once.  (Plain
 * functions, not `inline`: OpenCL C follows C99, where an inline definition
 * alone gives the linker nothing if the compiler declines to inline.) */
REAL group_max(__local REAL *s, const REAL x)
{
    const uint lid = get_local_id(0);
    uint n = get_local_size(0);
    s[lid] = x;
    barrier(CLK_LOCAL_MEM_FENCE);
    while (n > 1) {
        const uint upper = (n + 1) / 2;
        if (lid < n - upper)
            s[lid] = fmax(s[lid], s[lid + upper]);
        barrier(CLK_LOCAL_MEM_FENCE);
        n = upper;
    }
    const REAL r = s[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}

REAL group_sum(__local REAL *s, const REAL x)
{
    const uint lid = get_local_id(0);
    uint n = get_local_size(0);
    s[lid] = x;
    barrier(CLK_LOCAL_MEM_FENCE);
    while (n > 1) {
        const uint upper = (n + 1) / 2;
        if (lid < n - upper)
            s[lid] += s[lid + upper];
        barrier(CLK_LOCAL_MEM_FENCE);
        n = upper;
    }
    const REAL r = s[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}

/* c = softmax of each row of a, shifted by the row maximum so that exp()
 * cannot overflow.  fmax skips NaN, but a NaN still reaches every output
 * of its row through the sum.  c may be a: each element is read for the maximum and
 * the sum before the barriers inside group_sum, then read and written by
 * the same work-item. */
__kernel void softmax_rows(const uint rows, const uint cols, __global const REAL *a,
                           __global REAL *c, __local REAL *scratch)
{
    const uint lid = get_local_id(0), ls = get_local_size(0);
    for (uint r = get_group_id(0); r < rows; r += get_num_groups(0)) {
        __global const REAL *x = a + (ulong)r * cols;
        REAL m = -INFINITY;
        for (uint k = lid; k < cols; k += ls)
            m = fmax(m, x[k]);
        m = group_max(scratch, m);
        REAL s = 0;
        for (uint k = lid; k < cols; k += ls)
            s += exp(x[k] - m);
        s = group_sum(scratch, s);
        __global REAL *y = c + (ulong)r * cols;
        for (uint k = lid; k < cols; k += ls)
            y[k] = exp(x[k] - m) / s;
    }
}

/* idx[r] = the column of the largest element of row r: the first one on
 * ties, and the first NaN if the row has any (NumPy's rule). */
bool argmax_better(const REAL v, const uint i, const REAL best, const uint best_i)
{
    if (isnan(v) || isnan(best)) {
        if (isnan(v) && isnan(best))
            return i < best_i;
        return isnan(v);
    }
    return v > best || (v == best && i < best_i);
}

__kernel void argmax_rows(const uint rows, const uint cols, __global const REAL *a,
                          __global REAL *idx, __local REAL *sval, __local uint *sidx)
{
    const uint lid = get_local_id(0), ls = get_local_size(0);
    for (uint r = get_group_id(0); r < rows; r += get_num_groups(0)) {
        __global const REAL *x = a + (ulong)r * cols;
        /* Work-items with no column hold index `cols`, which loses to any
         * real column. */
        REAL best = -INFINITY;
        uint best_i = cols;
        for (uint k = lid; k < cols; k += ls)
            if (best_i == cols || argmax_better(x[k], k, best, best_i)) {
                best = x[k];
                best_i = k;
            }
        sval[lid] = best;
        sidx[lid] = best_i;
        barrier(CLK_LOCAL_MEM_FENCE);
        uint n = ls;
        while (n > 1) {
            const uint upper = (n + 1) / 2;
            if (lid < n - upper && sidx[lid + upper] != cols &&
                (sidx[lid] == cols ||
                 argmax_better(sval[lid + upper], sidx[lid + upper], sval[lid], sidx[lid]))) {
                sval[lid] = sval[lid + upper];
                sidx[lid] = sidx[lid + upper];
            }
            barrier(CLK_LOCAL_MEM_FENCE);
            n = upper;
        }
        if (lid == 0)
            idx[r] = (REAL)sidx[0];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

/* For each row r with class labels[r] = y: the loss log(sum_k exp(z_k)) -
 * z_y to row_loss[r] and (softmax(z) - onehot(y)) * inv_rows to dlogits,
 * either output skipped when its buffer is NULL.  An invalid label makes the
 * row's loss and gradient NaN.  dlogits may be logits: z_y is read before
 * the barriers of the reductions, and every other element is read and
 * written by one work-item. */
__kernel void softmax_xent(const uint rows, const uint cols, __global const REAL *logits,
                           __global const REAL *labels, const REAL inv_rows,
                           __global REAL *dlogits, __global REAL *row_loss,
                           __local REAL *scratch)
{
    const uint lid = get_local_id(0), ls = get_local_size(0);
    const REAL nan_value = (REAL)NAN;
    for (uint r = get_group_id(0); r < rows; r += get_num_groups(0)) {
        __global const REAL *z = logits + (ulong)r * cols;
        const REAL label = labels[r];
        const bool ok = index_ok(label, cols);
        const uint y = ok ? (uint)label : 0;
        const REAL zy = z[y];
        REAL m = -INFINITY;
        for (uint k = lid; k < cols; k += ls)
            m = fmax(m, z[k]);
        m = group_max(scratch, m);
        REAL s = 0;
        for (uint k = lid; k < cols; k += ls)
            s += exp(z[k] - m);
        s = group_sum(scratch, s);
        if (dlogits) {
            __global REAL *d = dlogits + (ulong)r * cols;
            for (uint k = lid; k < cols; k += ls) {
                const REAL p = exp(z[k] - m) / s;
                d[k] = ok ? (k == y ? p - 1 : p) * inv_rows : nan_value;
            }
        }
        if (row_loss && lid == 0)
            row_loss[r] = ok ? log(s) - (zy - m) : nan_value;
    }
}

/* out[0] = (x[0] + ... + x[n-1]) * scale, by a single work-group. */
__kernel void sum_scaled(const uint n, __global const REAL *x, const REAL scale,
                         __global REAL *out, __local REAL *scratch)
{
    REAL s = 0;
    for (uint i = get_local_id(0); i < n; i += get_local_size(0))
        s += x[i];
    s = group_sum(scratch, s);
    if (get_local_id(0) == 0)
        out[0] = s * scale;
}

/* Column sums of rows [gy * chunk, (gy + 1) * chunk) of a into row gy of
 * out.  The work-group is lx columns by ly rows (local size (lx, ly));
 * work-items of one local row read adjacent columns (coalesced), then the
 * ly partial sums of each column meet in scratch (lx * ly elements).  With
 * one row chunk, out is the result; with several, the host runs the kernel
 * again over the partial sums, so no atomics are needed and the order of
 * the additions is fixed. */
__kernel void sum_cols(const uint rows, const uint cols, const uint chunk,
                       __global const REAL *a, __global REAL *out, __local REAL *scratch)
{
    const uint lx = get_local_id(0), ly = get_local_id(1);
    const uint nx = get_local_size(0), ny = get_local_size(1);
    const uint k = get_group_id(0) * nx + lx;
    const uint first = get_group_id(1) * chunk;
    const uint last = min(rows, first + chunk);
    REAL s = 0;
    if (k < cols)
        for (uint r = first + ly; r < last; r += ny)
            s += a[(ulong)r * cols + k];
    scratch[ly * nx + lx] = s;
    barrier(CLK_LOCAL_MEM_FENCE);
    uint n = ny;
    while (n > 1) {
        const uint upper = (n + 1) / 2;
        if (ly < n - upper)
            scratch[ly * nx + lx] += scratch[(ly + upper) * nx + lx];
        barrier(CLK_LOCAL_MEM_FENCE);
        n = upper;
    }
    if (ly == 0 && k < cols)
        out[(ulong)get_group_id(1) * cols + k] = scratch[lx];
}
