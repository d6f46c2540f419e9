/* op_nn.c - the row-structured operations of cl/ml.cl: bias broadcast and
 * column sums, row gather, and the per-row reductions (softmax, argmax,
 * softmax cross-entropy). */
#include "op_ml.h"

/* A 2-D launch for the broadcast kernels: dimension 0 over `units` column
 * units (columns or 4-column vectors), dimension 1 over rows; the kernels
 * stride over whatever the grid does not cover. */
static void broadcast_grid(const gpumat_context *ctx, size_t rows, size_t units,
                           size_t global[2], size_t local[2])
{
    size_t wg = ctx->profile.elementwise_wg, lx = 1;
    while (lx < units && lx * 2 <= wg)
        lx *= 2;
    size_t ly = wg / lx, cap = gpumat__ml_max_items(ctx);
    size_t gx = gpumat__round_up(units, lx);
    if (gx > cap)
        gx = cap / lx * lx;
    size_t gy = gpumat__round_up(rows, ly), gy_cap = cap / gx / ly * ly;
    if (gy > gy_cap)
        gy = gy_cap > ly ? gy_cap : ly;
    global[0] = gx;
    global[1] = gy;
    local[0] = lx;
    local[1] = ly;
}

gpumat_status gpumat_add_row_vector(gpumat_matrix *c, const gpumat_matrix *a,
                                    const gpumat_matrix *v)
{
    const gpumat_matrix *operands[] = {c, a, v};
    const char *const names[] = {"c", "a", "v"};
    gpumat_status status = gpumat__check_operands("add_row_vector", 3, operands, names);
    if (status != GPUMAT_OK)
        return status;
    gpumat_context *ctx = c->ctx;
    if (v->rows != 1 || v->cols != a->cols || c->rows != a->rows || c->cols != a->cols)
        return gpumat__fail(ctx, GPUMAT_ERR_SHAPE,
                            "add_row_vector: a is %zux%zu, so v must be 1x%zu and c %zux%zu, but "
                            "v is %zux%zu and c is %zux%zu", a->rows, a->cols, a->cols, a->rows,
                            a->cols, v->rows, v->cols, c->rows, c->cols);
    cl_uint rows = (cl_uint)a->rows, cols = (cl_uint)a->cols;
    size_t global[2], local[2];
    broadcast_grid(ctx, rows, cols % 4 ? cols : cols / 4, global, local);
    cl_kernel kernel;
    pthread_mutex_lock(&ctx->lock);
    status = gpumat__kernel(ctx, GPUMAT__PROGRAM_ML, a->dtype, "add_row_vector", &kernel);
    if (status == GPUMAT_OK)
        status = gpumat__set_args(ctx, kernel, "add_row_vector", 5, GPUMAT__ARG(rows),
                                  GPUMAT__ARG(cols), GPUMAT__ARG(a->buffer),
                                  GPUMAT__ARG(v->buffer), GPUMAT__ARG(c->buffer));
    if (status == GPUMAT_OK)
        status = gpumat__launch(ctx, kernel, "add_row_vector", 2, global, local);
    pthread_mutex_unlock(&ctx->lock);
    return status;
}

gpumat_status gpumat_gather_rows(gpumat_matrix *dst, const gpumat_matrix *src,
                                 const gpumat_matrix *indices)
{
    const gpumat_matrix *operands[] = {dst, src, indices};
    const char *const names[] = {"dst", "src", "indices"};
    gpumat_status status = gpumat__check_operands("gather_rows", 3, operands, names);
    if (status != GPUMAT_OK)
        return status;
    gpumat_context *ctx = dst->ctx;
    if (indices->cols != 1 || dst->rows != indices->rows || dst->cols != src->cols)
        return gpumat__fail(ctx, GPUMAT_ERR_SHAPE,
                            "gather_rows: dst is %zux%zu, src %zux%zu and indices %zux%zu; indices "
                            "must be Mx1 and dst M x (src's %zu columns)", dst->rows, dst->cols,
                            src->rows, src->cols, indices->rows, indices->cols, src->cols);
    if (src->dtype == GPUMAT_F32 && src->rows > GPUMAT__F32_INDEX_LIMIT)
        return gpumat__fail(ctx, GPUMAT_ERR_SHAPE,
                            "gather_rows: src has %zu rows, but an f32 index vector addresses "
                            "at most %zu", src->rows, GPUMAT__F32_INDEX_LIMIT);
    if (dst == src || dst == indices)
        return gpumat__fail(ctx, GPUMAT_ERR_ALIASING,
                            "gather_rows: dst is the same matrix as %s; the gather is out of place",
                            dst == src ? "src" : "indices");
    cl_uint rows = (cl_uint)dst->rows, cols = (cl_uint)dst->cols, src_rows = (cl_uint)src->rows;
    size_t global[2], local[2];
    broadcast_grid(ctx, rows, cols % 4 ? cols : cols / 4, global, local);
    cl_kernel kernel;
    pthread_mutex_lock(&ctx->lock);
    status = gpumat__kernel(ctx, GPUMAT__PROGRAM_ML, dst->dtype, "gather_rows", &kernel);
    if (status == GPUMAT_OK)
        status = gpumat__set_args(ctx, kernel, "gather_rows", 6, GPUMAT__ARG(rows),
                                  GPUMAT__ARG(cols), GPUMAT__ARG(src_rows),
                                  GPUMAT__ARG(src->buffer), GPUMAT__ARG(indices->buffer),
                                  GPUMAT__ARG(dst->buffer));
    if (status == GPUMAT_OK)
        status = gpumat__launch(ctx, kernel, "gather_rows", 2, global, local);
    pthread_mutex_unlock(&ctx->lock);
    return status;
}

/* One sum_cols pass: column sums of row chunks of `rows` x `cols` at `in`,
 * one row of `out` per chunk.  The caller holds ctx->lock. */
static gpumat_status sum_cols_pass(gpumat_context *ctx, gpumat_dtype dtype, cl_kernel kernel,
                                   cl_uint rows, cl_uint cols, cl_uint chunk, size_t lx, size_t ly,
                                   cl_mem in, cl_mem out)
{
    size_t groups_y = (rows + chunk - 1) / chunk;
    size_t local[2] = {lx, ly};
    size_t global[2] = {gpumat__round_up(cols, lx), groups_y * ly};
    gpumat_status status = gpumat__set_args(
        ctx, kernel, "sum_cols", 6, GPUMAT__ARG(rows), GPUMAT__ARG(cols), GPUMAT__ARG(chunk),
        GPUMAT__ARG(in), GPUMAT__ARG(out), GPUMAT__LOCAL(lx * ly * gpumat_dtype_size(dtype)));
    return status == GPUMAT_OK ? gpumat__launch(ctx, kernel, "sum_cols", 2, global, local)
                               : status;
}

gpumat_status gpumat_sum_cols(gpumat_matrix *v, const gpumat_matrix *a)
{
    const gpumat_matrix *operands[] = {v, a};
    const char *const names[] = {"v", "a"};
    gpumat_status status = gpumat__check_operands("sum_cols", 2, operands, names);
    if (status != GPUMAT_OK)
        return status;
    gpumat_context *ctx = v->ctx;
    if (v->rows != 1 || v->cols != a->cols)
        return gpumat__fail(ctx, GPUMAT_ERR_SHAPE,
                            "sum_cols: a is %zux%zu, so v must be 1x%zu, but v is %zux%zu",
                            a->rows, a->cols, a->cols, v->rows, v->cols);
    if (v == a)
        return gpumat__fail(ctx, GPUMAT_ERR_ALIASING,
                            "sum_cols: v and a are the same matrix; the sum is out of place");

    cl_uint rows = (cl_uint)a->rows, cols = (cl_uint)a->cols;
    cl_kernel kernel;
    cl_mem partial = NULL;
    pthread_mutex_lock(&ctx->lock);
    status = gpumat__kernel(ctx, GPUMAT__PROGRAM_ML, a->dtype, "sum_cols", &kernel);
    size_t limit = 0;
    if (status == GPUMAT_OK)
        status = gpumat__ml_local_size(ctx, kernel, "sum_cols", ctx->profile.elementwise_wg,
                                       &limit);
    if (status == GPUMAT_OK) {
        /* Up to 32 adjacent columns per work-group (coalesced rows), the
         * rest of the group over rows. */
        size_t lx = 1;
        while (lx < cols && lx * 2 <= 32 && lx * 2 <= limit)
            lx *= 2;
        size_t ly = limit / lx;
        /* Tall matrices are cut into row chunks, one work-group row each,
         * so that enough work-groups run; a second pass adds the chunks'
         * partial sums. */
        size_t groups_x = (cols + lx - 1) / lx;
        size_t units = ctx->info.compute_units ? ctx->info.compute_units : 16;
        size_t target = units * 8 / groups_x;
        size_t groups_y = (rows + ly * 16 - 1) / (ly * 16);
        if (groups_y > target)
            groups_y = target > 1 ? target : 1;
        cl_uint chunk = (cl_uint)((rows + groups_y - 1) / groups_y);
        groups_y = (rows + chunk - 1) / chunk;
        if (groups_y == 1) {
            status = sum_cols_pass(ctx, a->dtype, kernel, rows, cols, chunk, lx, ly, a->buffer,
                                   v->buffer);
        } else {
            status = gpumat__temp_buffer(ctx, "sum_cols", a->dtype, groups_y * cols, &partial);
            if (status == GPUMAT_OK)
                status = sum_cols_pass(ctx, a->dtype, kernel, rows, cols, chunk, lx, ly,
                                       a->buffer, partial);
            cl_uint prow = (cl_uint)groups_y;
            if (status == GPUMAT_OK)
                status = sum_cols_pass(ctx, a->dtype, kernel, prow, cols, prow, lx, ly, partial,
                                       v->buffer);
        }
    }
    pthread_mutex_unlock(&ctx->lock);
    if (partial)
        clReleaseMemObject(partial);
    return status;
}

/* The launch of a one-work-group-per-row kernel: the group no wider than
 * the row (narrow rows waste no work-items) nor than the compiled kernel
 * allows, and no more groups than fill the device, as the kernels stride
 * over rows.  The caller holds ctx->lock. */
static gpumat_status row_grid(gpumat_context *ctx, cl_kernel kernel, const char *name,
                              size_t rows, size_t cols, size_t *global, size_t *local)
{
    size_t want = cols < ctx->profile.elementwise_wg ? cols : ctx->profile.elementwise_wg;
    gpumat_status status = gpumat__ml_local_size(ctx, kernel, name, want, local);
    if (status != GPUMAT_OK)
        return status;
    size_t groups = gpumat__ml_max_items(ctx) / *local;
    if (groups > rows)
        groups = rows;
    *global = (groups ? groups : 1) * *local;
    return GPUMAT_OK;
}

gpumat_status gpumat_softmax_rows(gpumat_matrix *c, const gpumat_matrix *a)
{
    const gpumat_matrix *operands[] = {c, a};
    const char *const names[] = {"c", "a"};
    gpumat_status status = gpumat__check_operands("softmax_rows", 2, operands, names);
    if (status != GPUMAT_OK)
        return status;
    gpumat_context *ctx = c->ctx;
    if (c->rows != a->rows || c->cols != a->cols)
        return gpumat__fail(ctx, GPUMAT_ERR_SHAPE,
                            "softmax_rows: c is %zux%zu but a is %zux%zu; they must have the same "
                            "shape", c->rows, c->cols, a->rows, a->cols);
    cl_uint rows = (cl_uint)a->rows, cols = (cl_uint)a->cols;
    size_t global, local;
    cl_kernel kernel;
    pthread_mutex_lock(&ctx->lock);
    status = gpumat__kernel(ctx, GPUMAT__PROGRAM_ML, a->dtype, "softmax_rows", &kernel);
    if (status == GPUMAT_OK)
        status = row_grid(ctx, kernel, "softmax_rows", rows, cols, &global, &local);
    if (status == GPUMAT_OK)
        status = gpumat__set_args(ctx, kernel, "softmax_rows", 5, GPUMAT__ARG(rows),
                                  GPUMAT__ARG(cols), GPUMAT__ARG(a->buffer),
                                  GPUMAT__ARG(c->buffer),
                                  GPUMAT__LOCAL(local * gpumat_dtype_size(a->dtype)));
    if (status == GPUMAT_OK)
        status = gpumat__launch(ctx, kernel, "softmax_rows", 1, &global, &local);
    pthread_mutex_unlock(&ctx->lock);
    return status;
}

gpumat_status gpumat_argmax_rows(gpumat_matrix *indices, const gpumat_matrix *a)
{
    const gpumat_matrix *operands[] = {indices, a};
    const char *const names[] = {"indices", "a"};
    gpumat_status status = gpumat__check_operands("argmax_rows", 2, operands, names);
    if (status != GPUMAT_OK)
        return status;
    gpumat_context *ctx = a->ctx;
    if (indices->rows != a->rows || indices->cols != 1)
        return gpumat__fail(ctx, GPUMAT_ERR_SHAPE,
                            "argmax_rows: a is %zux%zu, so indices must be %zux1, but it is "
                            "%zux%zu", a->rows, a->cols, a->rows, indices->rows, indices->cols);
    if (a->dtype == GPUMAT_F32 && a->cols > GPUMAT__F32_INDEX_LIMIT)
        return gpumat__fail(ctx, GPUMAT_ERR_SHAPE,
                            "argmax_rows: a has %zu columns, but an f32 index vector holds "
                            "column numbers only up to %zu exactly", a->cols,
                            GPUMAT__F32_INDEX_LIMIT);
    if (indices == a)
        return gpumat__fail(ctx, GPUMAT_ERR_ALIASING,
                            "argmax_rows: indices and a are the same matrix");
    cl_uint rows = (cl_uint)a->rows, cols = (cl_uint)a->cols;
    size_t global, local;
    cl_kernel kernel;
    pthread_mutex_lock(&ctx->lock);
    status = gpumat__kernel(ctx, GPUMAT__PROGRAM_ML, a->dtype, "argmax_rows", &kernel);
    if (status == GPUMAT_OK)
        status = row_grid(ctx, kernel, "argmax_rows", rows, cols, &global, &local);
    if (status == GPUMAT_OK)
        status = gpumat__set_args(ctx, kernel, "argmax_rows", 6, GPUMAT__ARG(rows),
                                  GPUMAT__ARG(cols), GPUMAT__ARG(a->buffer),
                                  GPUMAT__ARG(indices->buffer),
                                  GPUMAT__LOCAL(local * gpumat_dtype_size(a->dtype)),
                                  GPUMAT__LOCAL(local * sizeof(cl_uint)));
    if (status == GPUMAT_OK)
        status = gpumat__launch(ctx, kernel, "argmax_rows", 1, &global, &local);
    pthread_mutex_unlock(&ctx->lock);
    return status;
}

gpumat_status gpumat_softmax_cross_entropy(gpumat_matrix *loss, gpumat_matrix *dlogits,
                                           const gpumat_matrix *logits,
                                           const gpumat_matrix *labels)
{
    static const char *const fn = "softmax_cross_entropy";
    /* The optional outputs join the operand check only when present. */
    const gpumat_matrix *operands[4] = {logits, labels};
    const char *names[4] = {"logits", "labels"};
    size_t count = 2;
    if (loss) {
        operands[count] = loss;
        names[count++] = "loss";
    }
    if (dlogits) {
        operands[count] = dlogits;
        names[count++] = "dlogits";
    }
    gpumat_status status = gpumat__check_operands(fn, count, operands, names);
    if (status != GPUMAT_OK)
        return status;
    gpumat_context *ctx = logits->ctx;
    if (!loss && !dlogits)
        return gpumat__fail(ctx, GPUMAT_ERR_INVALID_ARGUMENT,
                            "%s: loss and dlogits are both NULL; ask for at least one", fn);
    size_t m = logits->rows, k = logits->cols;
    if (labels->rows != m || labels->cols != 1)
        return gpumat__fail(ctx, GPUMAT_ERR_SHAPE,
                            "%s: logits is %zux%zu, so labels must be %zux1, but it is %zux%zu",
                            fn, m, k, m, labels->rows, labels->cols);
    if (dlogits && (dlogits->rows != m || dlogits->cols != k))
        return gpumat__fail(ctx, GPUMAT_ERR_SHAPE,
                            "%s: logits is %zux%zu, so dlogits must be too, but it is %zux%zu", fn,
                            m, k, dlogits->rows, dlogits->cols);
    if (loss && (loss->rows != 1 || loss->cols != 1))
        return gpumat__fail(ctx, GPUMAT_ERR_SHAPE, "%s: loss must be 1x1, but it is %zux%zu", fn,
                            loss->rows, loss->cols);
    if (logits->dtype == GPUMAT_F32 && k > GPUMAT__F32_INDEX_LIMIT)
        return gpumat__fail(ctx, GPUMAT_ERR_SHAPE,
                            "%s: logits has %zu classes, but f32 labels name classes only up "
                            "to %zu exactly", fn, k, GPUMAT__F32_INDEX_LIMIT);
    if (loss && (loss == logits || loss == labels || loss == dlogits))
        return gpumat__fail(ctx, GPUMAT_ERR_ALIASING, "%s: loss is the same matrix as %s", fn,
                            loss == logits ? "logits" : loss == labels ? "labels" : "dlogits");
    if (dlogits && dlogits == labels)
        return gpumat__fail(ctx, GPUMAT_ERR_ALIASING,
                            "%s: dlogits is the same matrix as labels", fn);

    cl_uint rows = (cl_uint)m, cols = (cl_uint)k;
    gpumat__real inv_rows = gpumat__real_of(logits->dtype, 1.0 / (double)m);
    cl_mem grad = dlogits ? dlogits->buffer : NULL, row_loss = NULL;
    size_t global, local, elem = gpumat_dtype_size(logits->dtype);
    size_t mean_local = 0;
    cl_kernel kernel, mean = NULL;
    pthread_mutex_lock(&ctx->lock);
    /* The rows' losses are reduced to their mean by a second, single
     * work-group kernel, so the result does not depend on timing.  It is
     * set up first: once the first kernel has written dlogits (which may
     * be logits itself), nothing but the last launch may fail. */
    status = loss ? gpumat__temp_buffer(ctx, fn, logits->dtype, m, &row_loss) : GPUMAT_OK;
    if (status == GPUMAT_OK && loss)
        status = gpumat__kernel(ctx, GPUMAT__PROGRAM_ML, logits->dtype, "sum_scaled", &mean);
    if (status == GPUMAT_OK && loss)
        status = gpumat__ml_local_size(ctx, mean, "sum_scaled", ctx->profile.elementwise_wg,
                                       &mean_local);
    if (status == GPUMAT_OK && loss)
        status = gpumat__set_args(ctx, mean, "sum_scaled", 5, GPUMAT__ARG(rows),
                                  GPUMAT__ARG(row_loss), GPUMAT__REAL_ARG(inv_rows),
                                  GPUMAT__ARG(loss->buffer), GPUMAT__LOCAL(mean_local * elem));
    if (status == GPUMAT_OK)
        status = gpumat__kernel(ctx, GPUMAT__PROGRAM_ML, logits->dtype, "softmax_xent", &kernel);
    if (status == GPUMAT_OK)
        status = row_grid(ctx, kernel, "softmax_xent", rows, cols, &global, &local);
    if (status == GPUMAT_OK)
        status = gpumat__set_args(ctx, kernel, "softmax_xent", 8, GPUMAT__ARG(rows),
                                  GPUMAT__ARG(cols), GPUMAT__ARG(logits->buffer),
                                  GPUMAT__ARG(labels->buffer), GPUMAT__REAL_ARG(inv_rows),
                                  GPUMAT__ARG(grad), GPUMAT__ARG(row_loss),
                                  GPUMAT__LOCAL(local * elem));
    if (status == GPUMAT_OK)
        status = gpumat__launch(ctx, kernel, "softmax_xent", 1, &global, &local);
    if (status == GPUMAT_OK && loss)
        status = gpumat__launch(ctx, mean, "sum_scaled", 1, &mean_local, &mean_local);
    pthread_mutex_unlock(&ctx->lock);
    if (row_loss)
        clReleaseMemObject(row_loss);
    return status;
}
