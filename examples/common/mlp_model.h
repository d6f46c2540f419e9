/*
 * mlp_model.h - a fully connected ReLU network trained with softmax
 * cross-entropy, entirely through libgpumat: shared by examples/mlp.c and
 * tests/test_mlp.c.
 *
 * The host initialises the weights (He initialisation from the seed),
 * shuffles, and reads back one loss per batch and the predicted classes;
 * every tensor operation (forward, backward, optimiser, batch selection)
 * runs on the device, queued without waiting: the host waits once per
 * epoch.
 */
#ifndef GPUMAT_EXAMPLES_MLP_MODEL_H
#define GPUMAT_EXAMPLES_MLP_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "gpumat.h"
#include "dataset.h"

#define MLP_MAX_LAYERS 8

typedef enum mlp_optimizer {
    MLP_ADAM = 0,     /* gpumat_adam_update */
    MLP_MOMENTUM = 1  /* SGD with (heavy-ball) momentum: v = mu v + g; w -= lr v */
} mlp_optimizer;

typedef struct mlp_options {
    size_t widths[MLP_MAX_LAYERS + 1]; /* input, hidden..., classes */
    size_t layers;                     /* weight layers: widths has layers + 1 entries */
    size_t batch;
    mlp_optimizer optimizer;
    double lr;
    double momentum;             /* MLP_MOMENTUM */
    double beta1, beta2, eps;    /* MLP_ADAM */
    uint64_t seed;               /* weights and shuffling */
    gpumat_dtype dtype;
} mlp_options;

/* 784-256-128-10, batch 128, Adam (lr 1e-3, betas 0.9/0.999, eps 1e-8),
 * seed 1, F32. */
void mlp_options_default(mlp_options *o);

/* A data set on the device: x holds the images as count x (rows*cols)
 * pixels scaled to [0, 1], y the labels as a count x 1 index vector. */
typedef struct mlp_data {
    gpumat_matrix *x, *y;
    size_t count;
    uint8_t *labels; /* host copy of the labels, for accuracy */
} mlp_data;

/* Uploads the first min(limit, set->count) images of set (limit 0: all). */
gpumat_status mlp_data_upload(gpumat_context *ctx, const dataset *set, size_t limit,
                              gpumat_dtype dtype, mlp_data *data);
void mlp_data_free(mlp_data *data);

typedef struct mlp mlp;

gpumat_status mlp_create(gpumat_context *ctx, const mlp_options *o, mlp **net);
void mlp_destroy(mlp *net);

typedef struct mlp_stats {
    double loss;      /* mean cross-entropy over the images seen */
    size_t correct;   /* images whose predicted class was right */
    size_t seen;      /* images used */
} mlp_stats;

/* One pass over data in a fresh shuffled order (from the seed and the
 * epoch number), in full batches only: the count % batch images left over
 * are a different few each epoch.  Loss and accuracy are those of each
 * batch before its update (the usual "running" figures). */
gpumat_status mlp_train_epoch(mlp *net, const mlp_data *data, unsigned epoch, mlp_stats *stats);

/* Loss and accuracy of the current weights on every image of data, in
 * order.  confusion (classes x classes, row = true class, column =
 * predicted; may be NULL) is zeroed and filled. */
gpumat_status mlp_evaluate(mlp *net, const mlp_data *data, mlp_stats *stats,
                           unsigned long *confusion);

#endif /* GPUMAT_EXAMPLES_MLP_MODEL_H */
