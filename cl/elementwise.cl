/*
 * Element-wise kernels.  REAL is float or double (set by the library through
 * -DREAL=...); GPUMAT_FP64 is defined for double.
 *
 * Each work-item handles 4-wide vectors in a grid-stride loop, so the launch
 * size is chosen for the device rather than for the matrix; the last n % 4
 * elements are taken by the first work-items.  c may alias a or b: every
 * element is read before it is written by the same work-item.
 */
#ifdef GPUMAT_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif

__kernel void add(const ulong n, __global const REAL *a, __global const REAL *b,
                  __global REAL *c)
{
    const ulong vectors = n / 4;
    const ulong stride = get_global_size(0);
    for (ulong i = get_global_id(0); i < vectors; i += stride)
        vstore4(vload4(i, a) + vload4(i, b), i, c);
    const ulong tail = vectors * 4 + get_global_id(0);
    if (tail < n)
        c[tail] = a[tail] + b[tail];
}
