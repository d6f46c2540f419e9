/*
 * dataset.h - reads labelled image sets stored as gzip-compressed IDX files
 * (the MNIST / Fashion-MNIST format): DIR/PREFIX-images-idx3-ubyte.gz and
 * DIR/PREFIX-labels-idx1-ubyte.gz, e.g. PREFIX "train" or "t10k".
 * Shared by examples/mlp.c and tests/test_mlp.c.
 */
#ifndef GPUMAT_EXAMPLES_DATASET_H
#define GPUMAT_EXAMPLES_DATASET_H

#include <stddef.h>
#include <stdint.h>

/* Where Debian's dataset-fashion-mnist package installs the files. */
#define DATASET_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

typedef struct dataset {
    size_t count;     /* number of images (and labels) */
    size_t rows, cols; /* pixels per image: rows x cols */
    uint8_t *images;  /* count * rows * cols bytes, image after image, row-major */
    uint8_t *labels;  /* count class numbers */
} dataset;

/* Loads DIR/PREFIX-{images-idx3,labels-idx1}-ubyte.gz into *set.  Returns 0
 * on success; otherwise -1 with a message naming the file and the problem
 * in err (and *set left empty). */
int dataset_load(const char *dir, const char *prefix, dataset *set, char *err, size_t err_size);

/* Frees what dataset_load allocated; a zeroed or freed set is a no-op. */
void dataset_free(dataset *set);

#endif /* GPUMAT_EXAMPLES_DATASET_H */
