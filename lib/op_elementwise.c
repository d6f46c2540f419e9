/* op_elementwise.c - element-wise operations of cl/ml.cl: the geam family
 * (geam, sub, scale, axpy), hadamard, relu and its gradient, and the Adam
 * step. */
#include "op_ml.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

gpumat_status gpumat__ml_same_shape(const char *op, size_t count,
                                    const gpumat_matrix *const *operands,
                                    const char *const *names)
{
    size_t i = 1;
    while (i < count && operands[i]->rows == operands[0]->rows &&
           operands[i]->cols == operands[0]->cols)
        ++i;
    if (i == count)
        return GPUMAT_OK;
    char shapes[512] = "";
    size_t used = 0;
    for (size_t k = 0; k < count && used < sizeof shapes; ++k) {
        int w = snprintf(shapes + used, sizeof shapes - used, "%s%s is %zux%zu", k ? ", " : "",
                         names[k], operands[k]->rows, operands[k]->cols);
        used += w > 0 ? (size_t)w : 0;
    }
    return gpumat__fail(operands[0]->ctx, GPUMAT_ERR_SHAPE,
                        "%s: %s; all must have the same shape", op, shapes);
}

/* Checks operands and shapes shared by the plain element-wise kernels. */
static gpumat_status check_same(const char *op, size_t count, const gpumat_matrix *const *operands,
                                const char *const *names)
{
    gpumat_status status = gpumat__check_operands(op, count, operands, names);
    return status == GPUMAT_OK ? gpumat__ml_same_shape(op, count, operands, names) : status;
}

static bool valid_op(gpumat_op op) { return op == GPUMAT_NO_TRANS || op == GPUMAT_TRANS; }

/* The one implementation behind gpumat_geam, sub, scale and axpy; `fn` and
 * the operand names make their messages speak of the caller's own
 * arguments. */
static gpumat_status geam(const char *fn, const char *const names[3], gpumat_op op_a,
                          double alpha, const gpumat_matrix *a, gpumat_op op_b, double beta,
                          const gpumat_matrix *b, gpumat_matrix *c)
{
    const gpumat_matrix *operands[] = {c, a, b};
    const char *const check_names[] = {names[2], names[0], names[1]};
    gpumat_status status = gpumat__check_operands(fn, 3, operands, check_names);
    if (status != GPUMAT_OK)
        return status;
    gpumat_context *ctx = c->ctx;
    if (!valid_op(op_a) || !valid_op(op_b))
        return gpumat__fail(ctx, GPUMAT_ERR_INVALID_ARGUMENT,
                            "%s: op_a is %d and op_b is %d; each must be GPUMAT_NO_TRANS or "
                            "GPUMAT_TRANS", fn, (int)op_a, (int)op_b);
    bool ta = op_a == GPUMAT_TRANS, tb = op_b == GPUMAT_TRANS;
    size_t ar = ta ? a->cols : a->rows, ac = ta ? a->rows : a->cols;
    size_t br = tb ? b->cols : b->rows, bc = tb ? b->rows : b->cols;
    if (ar != c->rows || ac != c->cols || br != c->rows || bc != c->cols) {
        /* scale and axpy pass one matrix twice: name each only once. */
        char shapes[256];
        int w = snprintf(shapes, sizeof shapes, "%s is %zux%zu, %s%s is %zux%zu", names[2],
                         c->rows, c->cols, ta ? "transposed " : "", names[0], ar, ac);
        if (strcmp(names[1], names[0]) && strcmp(names[1], names[2]) && w > 0 &&
            (size_t)w < sizeof shapes)
            snprintf(shapes + w, sizeof shapes - (size_t)w, ", %s%s is %zux%zu",
                     tb ? "transposed " : "", names[1], br, bc);
        return gpumat__fail(ctx, GPUMAT_ERR_SHAPE, "%s: %s; they must have the same shape", fn,
                            shapes);
    }
    if ((ta && c == a) || (tb && c == b))
        return gpumat__fail(ctx, GPUMAT_ERR_ALIASING,
                            "%s: %s is the same matrix as the transposed %s; only an operand "
                            "used as stored may be overwritten in place", fn, names[2],
                            ta && c == a ? names[0] : names[1]);

    /* A vector and its transpose share one memory layout. */
    if (a->rows == 1 || a->cols == 1)
        ta = false;
    if (b->rows == 1 || b->cols == 1)
        tb = false;
    gpumat__real ra = gpumat__real_of(a->dtype, alpha), rb = gpumat__real_of(a->dtype, beta);
    cl_kernel kernel;
    pthread_mutex_lock(&ctx->lock);
    if (!ta && !tb) {
        cl_ulong n = (cl_ulong)c->rows * c->cols;
        size_t global = gpumat__ml_grid(ctx, n), wg = ctx->profile.elementwise_wg;
        status = gpumat__kernel(ctx, GPUMAT__PROGRAM_ML, a->dtype, "geam", &kernel);
        if (status == GPUMAT_OK)
            status = gpumat__set_args(ctx, kernel, "geam", 6, GPUMAT__ARG(n),
                                      GPUMAT__REAL_ARG(ra), GPUMAT__ARG(a->buffer),
                                      GPUMAT__REAL_ARG(rb), GPUMAT__ARG(b->buffer),
                                      GPUMAT__ARG(c->buffer));
        if (status == GPUMAT_OK)
            status = gpumat__launch(ctx, kernel, "geam", 1, &global, &wg);
    } else {
        cl_uint rows = (cl_uint)c->rows, cols = (cl_uint)c->cols, fa = ta, fb = tb;
        size_t ts = ctx->profile.transpose_tile, tr = gpumat__transpose_rows(&ctx->profile);
        size_t local[2] = {ts, tr};
        size_t global[2] = {gpumat__round_up(cols, ts), gpumat__round_up(rows, ts) / ts * tr};
        status = gpumat__kernel(ctx, GPUMAT__PROGRAM_ML, a->dtype, "geam_t", &kernel);
        if (status == GPUMAT_OK)
            status = gpumat__set_args(ctx, kernel, "geam_t", 9, GPUMAT__ARG(rows),
                                      GPUMAT__ARG(cols), GPUMAT__REAL_ARG(ra),
                                      GPUMAT__ARG(a->buffer), GPUMAT__ARG(fa),
                                      GPUMAT__REAL_ARG(rb), GPUMAT__ARG(b->buffer),
                                      GPUMAT__ARG(fb), GPUMAT__ARG(c->buffer));
        if (status == GPUMAT_OK)
            status = gpumat__launch(ctx, kernel, "geam_t", 2, global, local);
    }
    pthread_mutex_unlock(&ctx->lock);
    return status;
}

gpumat_status gpumat_geam(gpumat_op op_a, double alpha, const gpumat_matrix *a, gpumat_op op_b,
                          double beta, const gpumat_matrix *b, gpumat_matrix *c)
{
    static const char *const names[] = {"a", "b", "c"};
    return geam("geam", names, op_a, alpha, a, op_b, beta, b, c);
}

gpumat_status gpumat_sub(gpumat_matrix *c, const gpumat_matrix *a, const gpumat_matrix *b)
{
    static const char *const names[] = {"a", "b", "c"};
    return geam("sub", names, GPUMAT_NO_TRANS, 1.0, a, GPUMAT_NO_TRANS, -1.0, b, c);
}

gpumat_status gpumat_scale(gpumat_matrix *c, double alpha, const gpumat_matrix *a)
{
    /* beta = 0: the kernel never reads the second operand, so a stands in. */
    static const char *const names[] = {"a", "a", "c"};
    return geam("scale", names, GPUMAT_NO_TRANS, alpha, a, GPUMAT_NO_TRANS, 0.0, a, c);
}

gpumat_status gpumat_axpy(double alpha, const gpumat_matrix *a, gpumat_matrix *b)
{
    static const char *const names[] = {"a", "b", "b"};
    return geam("axpy", names, GPUMAT_NO_TRANS, alpha, a, GPUMAT_NO_TRANS, 1.0, b, b);
}

/* The kernels of one output and one or two same-shape inputs, called
 * kernel(n, inputs..., output); operands[0] is the output. */
static gpumat_status pointwise(const char *name, size_t count, const gpumat_matrix *const *operands,
                               const char *const *names)
{
    gpumat_status status = check_same(name, count, operands, names);
    if (status != GPUMAT_OK)
        return status;
    const gpumat_matrix *out = operands[0], *in1 = operands[1], *in2 = operands[count - 1];
    gpumat_context *ctx = out->ctx;
    cl_ulong n = (cl_ulong)out->rows * out->cols;
    size_t global = gpumat__ml_grid(ctx, n), wg = ctx->profile.elementwise_wg;
    cl_kernel kernel;
    pthread_mutex_lock(&ctx->lock);
    status = gpumat__kernel(ctx, GPUMAT__PROGRAM_ML, out->dtype, name, &kernel);
    if (status == GPUMAT_OK)
        status = count == 3 ? gpumat__set_args(ctx, kernel, name, 4, GPUMAT__ARG(n),
                                               GPUMAT__ARG(in1->buffer), GPUMAT__ARG(in2->buffer),
                                               GPUMAT__ARG(out->buffer))
                            : gpumat__set_args(ctx, kernel, name, 3, GPUMAT__ARG(n),
                                               GPUMAT__ARG(in1->buffer), GPUMAT__ARG(out->buffer));
    if (status == GPUMAT_OK)
        status = gpumat__launch(ctx, kernel, name, 1, &global, &wg);
    pthread_mutex_unlock(&ctx->lock);
    return status;
}

gpumat_status gpumat_hadamard(gpumat_matrix *c, const gpumat_matrix *a, const gpumat_matrix *b)
{
    const gpumat_matrix *operands[] = {c, a, b};
    const char *const names[] = {"c", "a", "b"};
    return pointwise("hadamard", 3, operands, names);
}

gpumat_status gpumat_relu(gpumat_matrix *c, const gpumat_matrix *a)
{
    const gpumat_matrix *operands[] = {c, a};
    const char *const names[] = {"c", "a"};
    return pointwise("relu", 2, operands, names);
}

gpumat_status gpumat_relu_backward(gpumat_matrix *dx, const gpumat_matrix *dy,
                                   const gpumat_matrix *x)
{
    const gpumat_matrix *operands[] = {dx, dy, x};
    const char *const names[] = {"dx", "dy", "x"};
    return pointwise("relu_backward", 3, operands, names);
}

gpumat_status gpumat_adam_update(gpumat_matrix *param, const gpumat_matrix *grad,
                                 gpumat_matrix *m, gpumat_matrix *v, double lr, double beta1,
                                 double beta2, double eps, uint64_t step)
{
    const gpumat_matrix *operands[] = {param, grad, m, v};
    const char *const names[] = {"param", "grad", "m", "v"};
    gpumat_status status = check_same("adam_update", 4, operands, names);
    if (status != GPUMAT_OK)
        return status;
    gpumat_context *ctx = param->ctx;
    for (size_t i = 0; i < 4; ++i)
        for (size_t k = i + 1; k < 4; ++k)
            if (operands[i] == operands[k])
                return gpumat__fail(ctx, GPUMAT_ERR_ALIASING,
                                    "adam_update: %s and %s are the same matrix; param, grad, m "
                                    "and v must be four different matrices", names[i], names[k]);
    /* Written so that NaN fails every test. */
    if (!(isfinite(lr) && beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1 && eps > 0 &&
          isfinite(eps) && step >= 1))
        return gpumat__fail(ctx, GPUMAT_ERR_INVALID_ARGUMENT,
                            "adam_update: lr %g, beta1 %g, beta2 %g, eps %g, step %llu; lr must "
                            "be finite, beta1 and beta2 in [0, 1), eps positive and finite, "
                            "step at least 1", lr, beta1, beta2, eps, (unsigned long long)step);

    /* lr (m / bc1) / (sqrt(v / bc2) + eps) = lr_t m / (sqrt(v) + eps_t) with
     * lr_t = lr sqrt(bc2) / bc1 and eps_t = eps sqrt(bc2): the corrections
     * are computed here once, in double, instead of per element. */
    double bc1 = 1.0 - pow(beta1, (double)step), bc2 = 1.0 - pow(beta2, (double)step);
    gpumat_dtype dt = param->dtype;
    gpumat__real lr_t = gpumat__real_of(dt, lr * sqrt(bc2) / bc1);
    gpumat__real eps_t = gpumat__real_of(dt, eps * sqrt(bc2));
    gpumat__real b1 = gpumat__real_of(dt, beta1), c1 = gpumat__real_of(dt, 1.0 - beta1);
    gpumat__real b2 = gpumat__real_of(dt, beta2), c2 = gpumat__real_of(dt, 1.0 - beta2);
    cl_ulong n = (cl_ulong)param->rows * param->cols;
    size_t global = gpumat__ml_grid(ctx, n), wg = ctx->profile.elementwise_wg;
    cl_kernel kernel;
    pthread_mutex_lock(&ctx->lock);
    status = gpumat__kernel(ctx, GPUMAT__PROGRAM_ML, dt, "adam", &kernel);
    if (status == GPUMAT_OK)
        status = gpumat__set_args(ctx, kernel, "adam", 11, GPUMAT__ARG(n), GPUMAT__REAL_ARG(lr_t),
                                  GPUMAT__REAL_ARG(b1), GPUMAT__REAL_ARG(c1), GPUMAT__REAL_ARG(b2),
                                  GPUMAT__REAL_ARG(c2), GPUMAT__REAL_ARG(eps_t),
                                  GPUMAT__ARG(param->buffer), GPUMAT__ARG(grad->buffer),
                                  GPUMAT__ARG(m->buffer), GPUMAT__ARG(v->buffer));
    if (status == GPUMAT_OK)
        status = gpumat__launch(ctx, kernel, "adam", 1, &global, &wg);
    pthread_mutex_unlock(&ctx->lock);
    return status;
}
