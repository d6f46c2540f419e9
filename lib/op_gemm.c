/* op_gemm.c - general matrix product and plain multiply, through the
 * context's GEMM backend. */
#include "gpumat_internal.h"

gpumat_status gpumat__native_gemm(gpumat_context *ctx, const gpumat__gemm_call *g)
{
    static const char *const names[3][2][2] = {
        {{"gemm_nn", "gemm_nt"}, {"gemm_tn", "gemm_tt"}},
        {{"gemm_nn_small", "gemm_nt_small"}, {"gemm_tn_small", "gemm_tt_small"}},
        {{"gemm_nn_tiny", "gemm_nt_tiny"}, {"gemm_tn_tiny", "gemm_tt_tiny"}}};
    const gpumat__gemm_params *p = &ctx->profile.gemm;
    /* Big tiles reuse each loaded element more, but a product too small to
     * give every compute unit a big tile runs faster on more, smaller ones. */
    bool f64 = g->dtype == GPUMAT_F64;
    /* Doubles have their own big tile (twice the registers per element). */
    unsigned bmwg = f64 ? p->mwg64 : p->mwg, bnwg = f64 ? p->nwg64 : p->nwg;
    unsigned bmdimc = f64 ? p->mdimc64 : p->mdimc, bndimc = f64 ? p->ndimc64 : p->ndimc;
    size_t big_groups = gpumat__round_up(g->m, bmwg) / bmwg *
                        (gpumat__round_up(g->n, bnwg) / bnwg);
    size_t small_groups = gpumat__round_up(g->m, p->smwg) / p->smwg *
                          (gpumat__round_up(g->n, p->snwg) / p->snwg);
    size_t cus = ctx->info.compute_units;
    /* 0 big, 1 small, 2 tiny: the largest tile that still fills the device.
     * A tiny tile does less work per loaded element, so nvidia-gpu's
     * TINYPCT is half its SMALLPCT (H100: dgemm 8192x64x8192, 128 small
     * groups on 132 SMs, runs 11.3 TFLOP/s on small tiles, 8.2 on tiny). */
    int tile = 0;
    if (big_groups * 100 < cus * p->small_pct)
        tile = p->tmwg && small_groups * 100 < cus * p->tiny_pct ? 2 : 1;
    const char *name = names[tile][g->trans_a][g->trans_b];
    unsigned mwg = tile == 2 ? p->tmwg : tile ? p->smwg : bmwg;
    unsigned nwg = tile == 2 ? p->tnwg : tile ? p->snwg : bnwg;
    unsigned mdimc = tile == 2 ? p->tmdimc : tile ? p->smdimc : bmdimc;
    unsigned ndimc = tile == 2 ? p->tndimc : tile ? p->sndimc : bndimc;
    size_t local[2] = {ndimc, mdimc};
    size_t global[2] = {gpumat__round_up(g->n, nwg) / nwg * ndimc,
                        gpumat__round_up(g->m, mwg) / mwg * mdimc};
    /* Dimensions fit in int: gpumat_matrix_create caps them at INT_MAX. */
    cl_int M = (cl_int)g->m, N = (cl_int)g->n, K = (cl_int)g->k;
    cl_int lda = (cl_int)g->lda, ldb = (cl_int)g->ldb, ldc = (cl_int)g->ldc;
    cl_float alpha32 = (cl_float)g->alpha, beta32 = (cl_float)g->beta;
    cl_double alpha64 = g->alpha, beta64 = g->beta;
    size_t scalar = f64 ? sizeof(cl_double) : sizeof(cl_float);
    const void *alpha = f64 ? (const void *)&alpha64 : (const void *)&alpha32;
    const void *beta = f64 ? (const void *)&beta64 : (const void *)&beta32;

    cl_kernel kernel;
    gpumat_status status = gpumat__kernel(ctx, GPUMAT__PROGRAM_GEMM, g->dtype, name, &kernel);
    if (status == GPUMAT_OK)
        status = gpumat__set_args(ctx, kernel, name, 11,
                                  sizeof M, (const void *)&M, sizeof N, (const void *)&N,
                                  sizeof K, (const void *)&K, scalar, alpha, scalar, beta,
                                  sizeof(cl_mem), (const void *)&g->a, sizeof lda, (const void *)&lda,
                                  sizeof(cl_mem), (const void *)&g->b, sizeof ldb, (const void *)&ldb,
                                  sizeof(cl_mem), (const void *)&g->c, sizeof ldc, (const void *)&ldc);
    if (status == GPUMAT_OK)
        status = gpumat__launch(ctx, kernel, name, 2, global, local);
    return status;
}

static const char *op_name(gpumat_op op) { return op == GPUMAT_TRANS ? "transposed " : ""; }

static gpumat_status gemm(const char *fn, gpumat_op op_a, gpumat_op op_b, double alpha,
                          const gpumat_matrix *a, const gpumat_matrix *b, double beta,
                          gpumat_matrix *c)
{
    const gpumat_matrix *operands[] = {c, a, b};
    const char *const names[] = {"c", "a", "b"};
    gpumat_status status = gpumat__check_operands(fn, 3, operands, names);
    if (status != GPUMAT_OK)
        return status;
    gpumat_context *ctx = c->ctx;
    if ((op_a != GPUMAT_NO_TRANS && op_a != GPUMAT_TRANS) ||
        (op_b != GPUMAT_NO_TRANS && op_b != GPUMAT_TRANS))
        return gpumat__fail(ctx, GPUMAT_ERR_INVALID_ARGUMENT,
                            "%s: op_a is %d and op_b is %d; each must be GPUMAT_NO_TRANS or "
                            "GPUMAT_TRANS", fn, (int)op_a, (int)op_b);
    if (c == a || c == b)
        return gpumat__fail(ctx, GPUMAT_ERR_ALIASING,
                            "%s: c is the same matrix as %s; the product is out of place", fn,
                            c == a ? "a" : "b");
    bool ta = op_a == GPUMAT_TRANS, tb = op_b == GPUMAT_TRANS;
    size_t m = ta ? a->cols : a->rows, ka = ta ? a->rows : a->cols;
    size_t kb = tb ? b->cols : b->rows, n = tb ? b->rows : b->cols;
    if (ka != kb)
        return gpumat__fail(ctx, GPUMAT_ERR_SHAPE,
                            "%s: %sa is %zux%zu but %sb is %zux%zu (the inner dimensions %zu and "
                            "%zu differ)", fn, op_name(op_a), m, ka, op_name(op_b), kb, n, ka, kb);
    if (c->rows != m || c->cols != n)
        return gpumat__fail(ctx, GPUMAT_ERR_SHAPE,
                            "%s: the product of %sa (%zux%zu) and %sb (%zux%zu) is %zux%zu, but c "
                            "is %zux%zu", fn, op_name(op_a), m, ka, op_name(op_b), kb, n, m, n,
                            c->rows, c->cols);

    gpumat__gemm_call call = {
        .dtype = a->dtype, .trans_a = ta, .trans_b = tb, .m = m, .n = n, .k = ka,
        .alpha = alpha, .beta = beta, .a = a->buffer, .b = b->buffer, .c = c->buffer,
        .lda = a->cols, .ldb = b->cols, .ldc = c->cols,
    };
    /* The forced backend, or AUTO's choice for this size (tuning.c). */
    gpumat_gemm_backend backend = gpumat__gemm_choose(ctx, m, n, ka);
    pthread_mutex_lock(&ctx->lock);
    if (backend == GPUMAT_GEMM_CLBLAST) {
        ctx->clblast_used = true;
        status = gpumat__clblast_gemm(ctx, &call);
    } else {
        status = gpumat__native_gemm(ctx, &call);
    }
    pthread_mutex_unlock(&ctx->lock);
    return status;
}

gpumat_status gpumat_gemm(gpumat_op op_a, gpumat_op op_b, double alpha, const gpumat_matrix *a,
                          const gpumat_matrix *b, double beta, gpumat_matrix *c)
{
    return gemm("gemm", op_a, op_b, alpha, a, b, beta, c);
}

gpumat_status gpumat_multiply(gpumat_matrix *c, const gpumat_matrix *a, const gpumat_matrix *b)
{
    return gemm("multiply", GPUMAT_NO_TRANS, GPUMAT_NO_TRANS, 1.0, a, b, 0.0, c);
}
