/*
 * Out-of-place transpose through a square local-memory tile.
 *
 * TS (tile side) and TR (rows of work-items; TS % TR == 0) come from the
 * device profile.  A work-group reads a TS x TS tile of `a` along its rows
 * (coalesced) and writes it to `t` along t's rows (coalesced too); the extra
 * column in the tile keeps the column-wise reads free of bank conflicts.
 */
#ifdef GPUMAT_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif

__kernel __attribute__((reqd_work_group_size(TS, TR, 1)))
void transpose(const uint rows, const uint cols, __global const REAL *a,
               __global REAL *t)
{
    __local REAL tile[TS][TS + 1];
    const uint lx = get_local_id(0), ly = get_local_id(1);
    const uint col0 = get_group_id(0) * TS; /* first column of a in this tile */
    const uint row0 = get_group_id(1) * TS; /* first row of a in this tile */

    for (uint j = ly; j < TS; j += TR) {
        const uint r = row0 + j, c = col0 + lx;
        if (r < rows && c < cols)
            tile[j][lx] = a[(ulong)r * cols + c];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint j = ly; j < TS; j += TR) {
        const uint r = col0 + j, c = row0 + lx; /* row and column of t */
        if (r < cols && c < rows)
            t[(ulong)r * rows + c] = tile[lx][j];
    }
}
