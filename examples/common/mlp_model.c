/*
 * mlp_model.c - see mlp_model.h.
 *
 * Layer l computes z_l = in_l W_l + b_l (W_l is fan_in x fan_out, so a
 * batch is one product) and, below the top layer, a_l = relu(z_l).  The
 * backward pass keeps one gradient buffer per layer, dz_l, and turns the
 * gradient of a_l into that of z_l in place with gpumat_relu_backward.
 */
#include "mlp_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The matrices of one batch size: the training batch, and the odd-sized
 * last batch of an evaluation. */
typedef struct workspace {
    size_t rows;
    gpumat_matrix *x, *y;                 /* the gathered batch and its labels */
    gpumat_matrix *z[MLP_MAX_LAYERS];     /* pre-activations; the last are the logits */
    gpumat_matrix *a[MLP_MAX_LAYERS];     /* relu(z), below the top layer */
    gpumat_matrix *dz[MLP_MAX_LAYERS];    /* d loss / d z; training only */
    gpumat_matrix *loss, *pred;           /* 1 x 1 and rows x 1 */
} workspace;

struct mlp {
    gpumat_context *ctx;
    mlp_options o;
    gpumat_matrix *w[MLP_MAX_LAYERS], *b[MLP_MAX_LAYERS];
    gpumat_matrix *dw[MLP_MAX_LAYERS], *db[MLP_MAX_LAYERS];
    /* Adam's two moments, or momentum's velocity in m. */
    gpumat_matrix *mw[MLP_MAX_LAYERS], *mb[MLP_MAX_LAYERS];
    gpumat_matrix *vw[MLP_MAX_LAYERS], *vb[MLP_MAX_LAYERS];
    uint64_t step;
    workspace train, tail;
    /* One index vector per training batch, rewritten each epoch, so that a
     * whole epoch is queued with no upload (which would wait) between its
     * batches. */
    gpumat_matrix **batch_idx;
    size_t batch_idx_count;
};

void mlp_options_default(mlp_options *o)
{
    memset(o, 0, sizeof *o);
    static const size_t widths[] = {784, 256, 128, 10};
    memcpy(o->widths, widths, sizeof widths);
    o->layers = 3;
    o->batch = 128;
    o->optimizer = MLP_ADAM;
    o->lr = 1e-3;
    o->momentum = 0.9;
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->eps = 1e-8;
    o->seed = 1;
    o->dtype = GPUMAT_F32;
}

/* ---- host helpers ----------------------------------------------------------- */

/* splitmix64: a tiny, well-mixed generator, so that weights and batches
 * depend on the seed alone. */
static uint64_t next_u64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in (0, 1]: never 0, so that log() in Box-Muller is finite. */
static double next_unit(uint64_t *state)
{
    return ((double)(next_u64(state) >> 11) + 1.0) * 0x1.0p-53;
}

static double next_normal(uint64_t *state)
{
    double u = next_unit(state), v = next_unit(state);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* Uploads n values given as doubles, converted to the matrix's dtype. */
static gpumat_status upload_values(gpumat_matrix *m, const double *values, size_t n)
{
    if (gpumat_matrix_dtype(m) == GPUMAT_F64)
        return gpumat_matrix_upload(m, values);
    float *f = malloc(n * sizeof *f);
    if (!f)
        return GPUMAT_ERR_OUT_OF_MEMORY;
    for (size_t i = 0; i < n; ++i)
        f[i] = (float)values[i];
    gpumat_status s = gpumat_matrix_upload(m, f);
    free(f);
    return s;
}

static gpumat_status upload_fill(gpumat_matrix *m, double value)
{
    size_t n = gpumat_matrix_rows(m) * gpumat_matrix_cols(m);
    double *h = malloc(n * sizeof *h);
    if (!h)
        return GPUMAT_ERR_OUT_OF_MEMORY;
    for (size_t i = 0; i < n; ++i)
        h[i] = value;
    gpumat_status s = upload_values(m, h, n);
    free(h);
    return s;
}

/* Element i of a downloaded buffer of dtype, as a double. */
static double host_value(gpumat_dtype dtype, const void *buf, size_t i)
{
    return dtype == GPUMAT_F64 ? ((const double *)buf)[i] : (double)((const float *)buf)[i];
}

/* ---- data ------------------------------------------------------------------- */

gpumat_status mlp_data_upload(gpumat_context *ctx, const dataset *set, size_t limit,
                              gpumat_dtype dtype, mlp_data *data)
{
    memset(data, 0, sizeof *data);
    size_t count = limit && limit < set->count ? limit : set->count;
    size_t pixels = set->rows * set->cols;
    size_t elem = gpumat_dtype_size(dtype);
    if (count == 0 || pixels == 0 || elem == 0)
        return GPUMAT_ERR_INVALID_ARGUMENT;
    gpumat_status s = gpumat_matrix_create(ctx, count, pixels, dtype, &data->x);
    if (s == GPUMAT_OK)
        s = gpumat_matrix_create(ctx, count, 1, dtype, &data->y);
    void *host = NULL;
    data->labels = malloc(count);
    if (s == GPUMAT_OK && (!data->labels || !(host = malloc(count * pixels * elem))))
        s = GPUMAT_ERR_OUT_OF_MEMORY;
    if (s == GPUMAT_OK) {
        for (size_t i = 0; i < count * pixels; ++i) {
            double v = set->images[i] / 255.0;
            if (dtype == GPUMAT_F64)
                ((double *)host)[i] = v;
            else
                ((float *)host)[i] = (float)v;
        }
        s = gpumat_matrix_upload(data->x, host);
    }
    if (s == GPUMAT_OK) {
        for (size_t i = 0; i < count; ++i) {
            data->labels[i] = set->labels[i];
            if (dtype == GPUMAT_F64)
                ((double *)host)[i] = set->labels[i];
            else
                ((float *)host)[i] = set->labels[i];
        }
        s = gpumat_matrix_upload(data->y, host);
    }
    free(host);
    if (s != GPUMAT_OK)
        mlp_data_free(data);
    else
        data->count = count;
    return s;
}

void mlp_data_free(mlp_data *data)
{
    gpumat_matrix_destroy(data->x);
    gpumat_matrix_destroy(data->y);
    free(data->labels);
    memset(data, 0, sizeof *data);
}

/* ---- network ------------------------------------------------------------------ */

static void workspace_free(workspace *ws)
{
    gpumat_matrix_destroy(ws->x);
    gpumat_matrix_destroy(ws->y);
    for (size_t l = 0; l < MLP_MAX_LAYERS; ++l) {
        gpumat_matrix_destroy(ws->z[l]);
        gpumat_matrix_destroy(ws->a[l]);
        gpumat_matrix_destroy(ws->dz[l]);
    }
    gpumat_matrix_destroy(ws->loss);
    gpumat_matrix_destroy(ws->pred);
    memset(ws, 0, sizeof *ws);
}

static gpumat_status workspace_init(mlp *net, workspace *ws, size_t rows, int training)
{
    const mlp_options *o = &net->o;
    gpumat_context *ctx = net->ctx;
    gpumat_dtype dt = o->dtype;
    workspace_free(ws);
    ws->rows = rows;
    gpumat_status s = gpumat_matrix_create(ctx, rows, o->widths[0], dt, &ws->x);
    if (s == GPUMAT_OK)
        s = gpumat_matrix_create(ctx, rows, 1, dt, &ws->y);
    if (s == GPUMAT_OK)
        s = gpumat_matrix_create(ctx, 1, 1, dt, &ws->loss);
    if (s == GPUMAT_OK)
        s = gpumat_matrix_create(ctx, rows, 1, dt, &ws->pred);
    for (size_t l = 0; l < o->layers && s == GPUMAT_OK; ++l) {
        size_t width = o->widths[l + 1];
        s = gpumat_matrix_create(ctx, rows, width, dt, &ws->z[l]);
        if (s == GPUMAT_OK && l + 1 < o->layers)
            s = gpumat_matrix_create(ctx, rows, width, dt, &ws->a[l]);
        if (s == GPUMAT_OK && training)
            s = gpumat_matrix_create(ctx, rows, width, dt, &ws->dz[l]);
    }
    if (s != GPUMAT_OK)
        workspace_free(ws);
    return s;
}

void mlp_destroy(mlp *net)
{
    if (!net)
        return;
    for (size_t l = 0; l < MLP_MAX_LAYERS; ++l) {
        gpumat_matrix_destroy(net->w[l]);
        gpumat_matrix_destroy(net->b[l]);
        gpumat_matrix_destroy(net->dw[l]);
        gpumat_matrix_destroy(net->db[l]);
        gpumat_matrix_destroy(net->mw[l]);
        gpumat_matrix_destroy(net->mb[l]);
        gpumat_matrix_destroy(net->vw[l]);
        gpumat_matrix_destroy(net->vb[l]);
    }
    workspace_free(&net->train);
    workspace_free(&net->tail);
    for (size_t i = 0; i < net->batch_idx_count; ++i)
        gpumat_matrix_destroy(net->batch_idx[i]);
    free(net->batch_idx);
    free(net);
}

/* He initialisation: N(0, 2 / fan_in) weights keep the variance of ReLU
 * activations steady from layer to layer; biases start at zero. */
static gpumat_status init_layer(mlp *net, size_t l, uint64_t *rng)
{
    size_t fan_in = net->o.widths[l], fan_out = net->o.widths[l + 1];
    double *w = malloc(fan_in * fan_out * sizeof *w);
    if (!w)
        return GPUMAT_ERR_OUT_OF_MEMORY;
    double sd = sqrt(2.0 / (double)fan_in);
    for (size_t i = 0; i < fan_in * fan_out; ++i)
        w[i] = sd * next_normal(rng);
    gpumat_status s = upload_values(net->w[l], w, fan_in * fan_out);
    free(w);
    if (s == GPUMAT_OK)
        s = upload_fill(net->b[l], 0.0);
    if (s == GPUMAT_OK)
        s = upload_fill(net->mw[l], 0.0);
    if (s == GPUMAT_OK)
        s = upload_fill(net->mb[l], 0.0);
    if (s == GPUMAT_OK && net->vw[l])
        s = upload_fill(net->vw[l], 0.0);
    if (s == GPUMAT_OK && net->vb[l])
        s = upload_fill(net->vb[l], 0.0);
    return s;
}

gpumat_status mlp_create(gpumat_context *ctx, const mlp_options *o, mlp **out)
{
    *out = NULL;
    if (o->layers < 1 || o->layers > MLP_MAX_LAYERS || o->batch < 1)
        return GPUMAT_ERR_INVALID_ARGUMENT;
    for (size_t l = 0; l <= o->layers; ++l)
        if (o->widths[l] < 1)
            return GPUMAT_ERR_INVALID_ARGUMENT;
    mlp *net = calloc(1, sizeof *net);
    if (!net)
        return GPUMAT_ERR_OUT_OF_MEMORY;
    net->ctx = ctx;
    net->o = *o;
    gpumat_dtype dt = o->dtype;
    gpumat_status s = GPUMAT_OK;
    for (size_t l = 0; l < o->layers && s == GPUMAT_OK; ++l) {
        size_t in = o->widths[l], outw = o->widths[l + 1];
        gpumat_matrix **m[] = {&net->w[l], &net->dw[l], &net->mw[l], &net->vw[l]};
        gpumat_matrix **v[] = {&net->b[l], &net->db[l], &net->mb[l], &net->vb[l]};
        size_t kinds = o->optimizer == MLP_ADAM ? 4 : 3;
        for (size_t k = 0; k < kinds && s == GPUMAT_OK; ++k) {
            s = gpumat_matrix_create(ctx, in, outw, dt, m[k]);
            if (s == GPUMAT_OK)
                s = gpumat_matrix_create(ctx, 1, outw, dt, v[k]);
        }
    }
    uint64_t rng = o->seed ^ 0x6a09e667f3bcc908ull;
    for (size_t l = 0; l < o->layers && s == GPUMAT_OK; ++l)
        s = init_layer(net, l, &rng);
    if (s == GPUMAT_OK)
        s = workspace_init(net, &net->train, o->batch, 1);
    if (s != GPUMAT_OK) {
        mlp_destroy(net);
        return s;
    }
    *out = net;
    return GPUMAT_OK;
}

/* Queues the forward pass of ws->x up to the logits ws->z[top]. */
static gpumat_status forward(mlp *net, workspace *ws)
{
    gpumat_status s = GPUMAT_OK;
    for (size_t l = 0; l < net->o.layers && s == GPUMAT_OK; ++l) {
        const gpumat_matrix *in = l == 0 ? ws->x : ws->a[l - 1];
        s = gpumat_gemm(GPUMAT_NO_TRANS, GPUMAT_NO_TRANS, 1.0, in, net->w[l], 0.0, ws->z[l]);
        if (s == GPUMAT_OK)
            s = gpumat_add_row_vector(ws->z[l], ws->z[l], net->b[l]);
        if (s == GPUMAT_OK && l + 1 < net->o.layers)
            s = gpumat_relu(ws->a[l], ws->z[l]);
    }
    return s;
}

/* Queues the backward pass from ws->dz[top] (set by the loss): the
 * gradients of every weight and bias. */
static gpumat_status backward(mlp *net, workspace *ws)
{
    gpumat_status s = GPUMAT_OK;
    for (size_t l = net->o.layers; l-- > 0 && s == GPUMAT_OK;) {
        const gpumat_matrix *in = l == 0 ? ws->x : ws->a[l - 1];
        s = gpumat_gemm(GPUMAT_TRANS, GPUMAT_NO_TRANS, 1.0, in, ws->dz[l], 0.0, net->dw[l]);
        if (s == GPUMAT_OK)
            s = gpumat_sum_cols(net->db[l], ws->dz[l]);
        if (s == GPUMAT_OK && l > 0)
            s = gpumat_gemm(GPUMAT_NO_TRANS, GPUMAT_TRANS, 1.0, ws->dz[l], net->w[l], 0.0,
                            ws->dz[l - 1]);
        if (s == GPUMAT_OK && l > 0)
            s = gpumat_relu_backward(ws->dz[l - 1], ws->dz[l - 1], ws->z[l - 1]);
    }
    return s;
}

static gpumat_status update_one(mlp *net, gpumat_matrix *p, const gpumat_matrix *g,
                                gpumat_matrix *m, gpumat_matrix *v)
{
    const mlp_options *o = &net->o;
    if (o->optimizer == MLP_ADAM)
        return gpumat_adam_update(p, g, m, v, o->lr, o->beta1, o->beta2, o->eps, net->step);
    gpumat_status s = gpumat_geam(GPUMAT_NO_TRANS, o->momentum, m, GPUMAT_NO_TRANS, 1.0, g, m);
    return s == GPUMAT_OK ? gpumat_axpy(-o->lr, m, p) : s;
}

static gpumat_status update(mlp *net)
{
    net->step++;
    gpumat_status s = GPUMAT_OK;
    for (size_t l = 0; l < net->o.layers && s == GPUMAT_OK; ++l) {
        s = update_one(net, net->w[l], net->dw[l], net->mw[l], net->vw[l]);
        if (s == GPUMAT_OK)
            s = update_one(net, net->b[l], net->db[l], net->mb[l], net->vb[l]);
    }
    return s;
}

/* Makes `count` index vectors of `rows` rows available in net->batch_idx. */
static gpumat_status ensure_batch_idx(mlp *net, size_t count, size_t rows)
{
    if (net->batch_idx_count >= count &&
        (count == 0 || gpumat_matrix_rows(net->batch_idx[0]) == rows))
        return GPUMAT_OK;
    for (size_t i = 0; i < net->batch_idx_count; ++i)
        gpumat_matrix_destroy(net->batch_idx[i]);
    free(net->batch_idx);
    net->batch_idx_count = 0;
    net->batch_idx = calloc(count ? count : 1, sizeof *net->batch_idx);
    if (!net->batch_idx)
        return GPUMAT_ERR_OUT_OF_MEMORY;
    gpumat_status s = GPUMAT_OK;
    for (; net->batch_idx_count < count && s == GPUMAT_OK; ++net->batch_idx_count)
        s = gpumat_matrix_create(net->ctx, rows, 1, net->o.dtype,
                                 &net->batch_idx[net->batch_idx_count]);
    if (s != GPUMAT_OK && net->batch_idx_count > 0)
        net->batch_idx_count--; /* the failed create left NULL */
    return s;
}

/* Host buffers the per-batch results are read back into, asynchronously. */
typedef struct readback {
    void *loss; /* one value per batch */
    void *pred; /* one per image */
} readback;

static gpumat_status readback_alloc(readback *r, size_t batches, size_t images, size_t elem)
{
    r->loss = malloc((batches ? batches : 1) * elem);
    r->pred = malloc((images ? images : 1) * elem);
    return r->loss && r->pred ? GPUMAT_OK : GPUMAT_ERR_OUT_OF_MEMORY;
}

static void readback_free(readback *r)
{
    free(r->loss);
    free(r->pred);
}

gpumat_status mlp_train_epoch(mlp *net, const mlp_data *data, unsigned epoch, mlp_stats *stats)
{
    memset(stats, 0, sizeof *stats);
    size_t B = net->o.batch, batches = data->count / B;
    if (batches == 0)
        return GPUMAT_ERR_INVALID_ARGUMENT;
    gpumat_dtype dt = net->o.dtype;
    size_t elem = gpumat_dtype_size(dt);

    /* A fresh order each epoch, the same for a given seed and epoch. */
    size_t *perm = malloc(data->count * sizeof *perm);
    double *idx = malloc(B * sizeof *idx);
    readback rb;
    gpumat_status s = readback_alloc(&rb, batches, batches * B, elem);
    if (!perm || !idx)
        s = GPUMAT_ERR_OUT_OF_MEMORY;
    if (s == GPUMAT_OK) {
        uint64_t rng = net->o.seed * 0x9e3779b97f4a7c15ull + epoch + 1;
        for (size_t i = 0; i < data->count; ++i)
            perm[i] = i;
        for (size_t i = data->count; i > 1; --i) {
            size_t j = (size_t)(next_u64(&rng) % i), t = perm[i - 1];
            perm[i - 1] = perm[j];
            perm[j] = t;
        }
        s = ensure_batch_idx(net, batches, B);
    }
    for (size_t b = 0; b < batches && s == GPUMAT_OK; ++b) {
        for (size_t i = 0; i < B; ++i)
            idx[i] = (double)perm[b * B + i];
        s = upload_values(net->batch_idx[b], idx, B);
    }

    workspace *ws = &net->train;
    size_t top = net->o.layers - 1;
    for (size_t b = 0; b < batches && s == GPUMAT_OK; ++b) {
        s = gpumat_gather_rows(ws->x, data->x, net->batch_idx[b]);
        if (s == GPUMAT_OK)
            s = gpumat_gather_rows(ws->y, data->y, net->batch_idx[b]);
        if (s == GPUMAT_OK)
            s = forward(net, ws);
        if (s == GPUMAT_OK)
            s = gpumat_argmax_rows(ws->pred, ws->z[top]);
        if (s == GPUMAT_OK)
            s = gpumat_softmax_cross_entropy(ws->loss, ws->dz[top], ws->z[top], ws->y);
        if (s == GPUMAT_OK)
            s = gpumat_matrix_download_async(ws->loss, (char *)rb.loss + b * elem, NULL);
        if (s == GPUMAT_OK)
            s = gpumat_matrix_download_async(ws->pred, (char *)rb.pred + b * B * elem, NULL);
        if (s == GPUMAT_OK)
            s = backward(net, ws);
        if (s == GPUMAT_OK)
            s = update(net);
    }
    /* Also on failure: the queued reads must land before rb is freed. */
    gpumat_status fin = gpumat_finish(net->ctx);
    if (s == GPUMAT_OK)
        s = fin;
    if (s == GPUMAT_OK) {
        double loss = 0;
        for (size_t b = 0; b < batches; ++b) {
            loss += host_value(dt, rb.loss, b);
            for (size_t i = 0; i < B; ++i)
                stats->correct += host_value(dt, rb.pred, b * B + i) ==
                                  (double)data->labels[perm[b * B + i]];
        }
        stats->loss = loss / (double)batches;
        stats->seen = batches * B;
    }
    readback_free(&rb);
    free(perm);
    free(idx);
    return s;
}

gpumat_status mlp_evaluate(mlp *net, const mlp_data *data, mlp_stats *stats,
                           unsigned long *confusion)
{
    memset(stats, 0, sizeof *stats);
    size_t classes = net->o.widths[net->o.layers];
    if (confusion)
        memset(confusion, 0, classes * classes * sizeof *confusion);
    size_t B = net->o.batch, full = data->count / B, rest = data->count % B;
    size_t batches = full + (rest > 0);
    gpumat_dtype dt = net->o.dtype;
    size_t elem = gpumat_dtype_size(dt);

    gpumat_matrix **idx_m = calloc(batches, sizeof *idx_m);
    double *idx = malloc(B * sizeof *idx);
    readback rb;
    gpumat_status s = readback_alloc(&rb, batches, data->count, elem);
    if (!idx_m || !idx)
        s = GPUMAT_ERR_OUT_OF_MEMORY;
    if (s == GPUMAT_OK && rest && net->tail.rows != rest)
        s = workspace_init(net, &net->tail, rest, 0);
    for (size_t b = 0; b < batches && s == GPUMAT_OK; ++b) {
        size_t rows = b < full ? B : rest;
        for (size_t i = 0; i < rows; ++i)
            idx[i] = (double)(b * B + i);
        s = gpumat_matrix_create(net->ctx, rows, 1, dt, &idx_m[b]);
        if (s == GPUMAT_OK)
            s = upload_values(idx_m[b], idx, rows);
    }

    size_t top = net->o.layers - 1;
    for (size_t b = 0; b < batches && s == GPUMAT_OK; ++b) {
        workspace *ws = b < full ? &net->train : &net->tail;
        s = gpumat_gather_rows(ws->x, data->x, idx_m[b]);
        if (s == GPUMAT_OK)
            s = gpumat_gather_rows(ws->y, data->y, idx_m[b]);
        if (s == GPUMAT_OK)
            s = forward(net, ws);
        if (s == GPUMAT_OK)
            s = gpumat_argmax_rows(ws->pred, ws->z[top]);
        if (s == GPUMAT_OK)
            s = gpumat_softmax_cross_entropy(ws->loss, NULL, ws->z[top], ws->y);
        if (s == GPUMAT_OK)
            s = gpumat_matrix_download_async(ws->loss, (char *)rb.loss + b * elem, NULL);
        if (s == GPUMAT_OK)
            s = gpumat_matrix_download_async(ws->pred, (char *)rb.pred + b * B * elem, NULL);
    }
    gpumat_status fin = gpumat_finish(net->ctx);
    if (s == GPUMAT_OK)
        s = fin;
    if (s == GPUMAT_OK) {
        double loss = 0;
        for (size_t b = 0; b < batches; ++b)
            loss += host_value(dt, rb.loss, b) * (double)(b < full ? B : rest);
        for (size_t i = 0; i < data->count; ++i) {
            double p = host_value(dt, rb.pred, i);
            size_t truth = data->labels[i];
            stats->correct += p == (double)truth;
            if (confusion && truth < classes && p >= 0 && p < (double)classes)
                confusion[truth * classes + (size_t)p]++;
        }
        stats->loss = loss / (double)data->count;
        stats->seen = data->count;
    }
    for (size_t b = 0; idx_m && b < batches; ++b)
        gpumat_matrix_destroy(idx_m[b]);
    free(idx_m);
    free(idx);
    readback_free(&rb);
    return s;
}
