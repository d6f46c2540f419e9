/*
 * Out-of-place transpose through a local-memory tile, t = transpose(a) with
 * a rows x cols, both row-major.
 *
 * Two kernels, one program; the host picks per shape (lib/op_transpose.c):
 *
 *   transpose_v  rows and cols are multiples of the access width: each
 *                work-item reads and writes TV bytes at a time (float4 /
 *                double2 for TV=16), TVS x TVS tiles of TVW work-items.
 *   transpose_m  any other shape: element-wide reads, TMS x TMS tiles of
 *                TMW work-items.  With TMG > the element size, the run of
 *                t's row c that a tile writes starts where t's row c meets
 *                a TMG-byte boundary: the tile covers rows
 *                [row0 - s, row0 - s + TMS) of a in column c, s = (c * rows)
 *                % (TMG / size), instead of a square.  Every TMG-byte piece
 *                of t (a 32-byte memory sector for TMG=32) is then written
 *                by one store instruction, never half by one tile and half
 *                by the next; it reads up to TMG/size - 1 rows above the
 *                square, into the tile's top.
 *
 * Sizes are in elements of float; double uses half the tile side and half
 * the work-items (the same bytes per tile row).  A work-group is NT
 * work-items in one dimension; work-item i reads VR elements at column
 * (i % (T/VR)) * VR of tile row i / (T/VR) (and the rows NT*VR/T further
 * on), then writes VW elements of a t row the same way.  The tile's rows
 * are T + 1 long, so the column-wise local reads are free of bank
 * conflicts.  Group (g0, g1) is tile (g0, g1) along (cols, rows), or
 * (g1, g0) when `swap` is set (the host's choice of order).
 */
#ifdef GPUMAT_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#define TP_SIZE 8
#define TP_VS (TVS / 2)
#define TP_VW (TVW / 2)
#define TP_MS (TMS / 2)
#define TP_MW (TMW / 2)
#define REAL2 double2
#define REAL4 double4
#else
#define TP_SIZE 4
#define TP_VS TVS
#define TP_VW TVW
#define TP_MS TMS
#define TP_MW TMW
#define REAL2 float2
#define REAL4 float4
#endif
/* Elements per access, per skew step, per store of the skewed kernel. */
#define TP_VEC (TV / TP_SIZE > 1 ? TV / TP_SIZE : 1)
#define TP_G (TMG / TP_SIZE > 1 ? TMG / TP_SIZE : 1)
#define TP_MVEC (TP_VEC < TP_G ? TP_VEC : TP_G)

/* Tile side T, NT work-items, VR-wide reads, VW-wide writes, skew step G
 * (1: none).  Loops run a constant number of times so that the compiler
 * unrolls them and every load of a work-item is in flight at once. */
#define TP_KERNEL(NAME, T, NT, VR, VW, G)                                                   \
    __kernel __attribute__((reqd_work_group_size(NT, 1, 1))) void NAME(                    \
        const uint rows, const uint cols, __global const REAL *a, __global REAL *t,        \
        const uint swap)                                                                    \
    {                                                                                        \
        __local REAL tile[((T) + (G) - 1) * ((T) + 1)];                                    \
        const uint id = get_local_id(0);                                                    \
        const uint bx = swap ? get_group_id(1) : get_group_id(0);                          \
        const uint by = swap ? get_group_id(0) : get_group_id(1);                          \
        const uint col0 = bx * (T), row0 = by * (T);                                        \
        /* Tile row j holds a's row row0 + j - (G - 1), columns col0 ... */                 \
        {                                                                                    \
            const uint vx = id % ((T) / (VR)), jj = id / ((T) / (VR));                     \
            const uint c = col0 + vx * (VR);                                                \
            for (uint i = 0; i < ((T) + (G) - 1 + (NT) * (VR) / (T) - 1) / ((NT) * (VR) / (T)); \
                 ++i) {                                                                      \
                const uint j = jj + i * ((NT) * (VR) / (T));                               \
                const uint r = row0 + j - ((G) - 1);                                        \
                if (j >= (T) + (G) - 1 || row0 + j < (G) - 1 || r >= rows)                 \
                    continue;                                                                \
                const ulong ar = (ulong)r * cols;                                           \
                if ((G) > 1) {                                                              \
                    /* only what this group writes (see the write below) */                 \
                    for (uint v = 0; v < (VR); ++v) {                                       \
                        const uint s = (((c + v) % (G)) * (rows % (G))) % (G);             \
                        if (c + v < cols && j + s >= (G) - 1 && j + s < (T) + (G) - 1)     \
                            tile[j * ((T) + 1) + vx * (VR) + v] = a[ar + c + v];           \
                    }                                                                        \
                } else if ((VR) == 4 && c + 4 <= cols) {                                    \
                    const REAL4 x = ((__global const REAL4 *)a)[(ar + c) / 4];             \
                    tile[j * ((T) + 1) + vx * 4 + 0] = x.s0;                                \
                    tile[j * ((T) + 1) + vx * 4 + 1] = x.s1;                                \
                    tile[j * ((T) + 1) + vx * 4 + 2] = x.s2;                                \
                    tile[j * ((T) + 1) + vx * 4 + 3] = x.s3;                                \
                } else if ((VR) == 2 && c + 2 <= cols) {                                    \
                    const REAL2 x = ((__global const REAL2 *)a)[(ar + c) / 2];             \
                    tile[j * ((T) + 1) + vx * 2 + 0] = x.s0;                                \
                    tile[j * ((T) + 1) + vx * 2 + 1] = x.s1;                                \
                } else {                                                                     \
                    for (uint v = 0; v < (VR); ++v)                                         \
                        if (c + v < cols)                                                    \
                            tile[j * ((T) + 1) + vx * (VR) + v] = a[ar + c + v];           \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
        barrier(CLK_LOCAL_MEM_FENCE);                                                        \
        /* t's row c = col0 + j, elements q - s ... with q = row0 + vx * VW */             \
        {                                                                                    \
            const uint vx = id % ((T) / (VW)), jj = id / ((T) / (VW));                     \
            const uint q = row0 + vx * (VW);                                                \
            for (uint i = 0; i < ((T) + (NT) * (VW) / (T) - 1) / ((NT) * (VW) / (T)); ++i) { \
                const uint j = jj + i * ((NT) * (VW) / (T));                               \
                const uint c = col0 + j;                                                    \
                if (j >= (T) || c >= cols)                                                  \
                    continue;                                                                \
                const uint s = (G) > 1 ? ((c % (G)) * (rows % (G))) % (G) : 0;             \
                const uint k = vx * (VW) + (G) - 1 - s; /* tile row of element q - s */     \
                const ulong at = (ulong)c * rows + q - s;                                   \
                if ((VW) == 4 && q >= s && q - s + 4 <= rows) {                             \
                    REAL4 x;                                                                 \
                    x.s0 = tile[(k + 0) * ((T) + 1) + j];                                   \
                    x.s1 = tile[(k + 1) * ((T) + 1) + j];                                   \
                    x.s2 = tile[(k + 2) * ((T) + 1) + j];                                   \
                    x.s3 = tile[(k + 3) * ((T) + 1) + j];                                   \
                    ((__global REAL4 *)t)[at / 4] = x;                                      \
                } else if ((VW) == 2 && q >= s && q - s + 2 <= rows) {                      \
                    REAL2 x;                                                                 \
                    x.s0 = tile[(k + 0) * ((T) + 1) + j];                                   \
                    x.s1 = tile[(k + 1) * ((T) + 1) + j];                                   \
                    ((__global REAL2 *)t)[at / 2] = x;                                      \
                } else {                                                                     \
                    for (uint v = 0; v < (VW); ++v)                                         \
                        if (q + v >= s && q + v - s < rows)                                 \
                            t[at + v] = tile[(k + v) * ((T) + 1) + j];                      \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
    }

TP_KERNEL(transpose_v, TP_VS, TP_VW, TP_VEC, TP_VEC, 1)
TP_KERNEL(transpose_m, TP_MS, TP_MW, 1, TP_MVEC, TP_G)
