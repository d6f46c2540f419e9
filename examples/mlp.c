/*
 * mlp - trains a 784-256-128-10 ReLU network on Fashion-MNIST with
 * libgpumat: every tensor operation on the OpenCL device, the host only
 * loading data, initialising weights and printing.
 *
 *   mlp [--data DIR] [--epochs N] [--batch N] [--lr X] [--seed N]
 *       [--limit N] [--optimizer adam|momentum] [--momentum X] [--f64]
 *
 * DIR holds the gzip IDX files (default: where Debian's
 * dataset-fashion-mnist package puts them).  The run is deterministic for
 * a given seed on a given device.  examples/mlp_torch.py is the same
 * training in PyTorch, for comparison.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpumat.h"
#include "common/dataset.h"
#include "common/mlp_model.h"

static const char *const class_names[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot",
};

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void usage(FILE *to)
{
    fprintf(to,
            "usage: mlp [--data DIR] [--epochs N] [--batch N] [--lr X] [--seed N] [--limit N]\n"
            "           [--optimizer adam|momentum] [--momentum X] [--f64]\n"
            "  --data DIR     Fashion-MNIST gzip IDX files (default %s)\n"
            "  --epochs N     passes over the training set (default 10)\n"
            "  --batch N      mini-batch size (default 128)\n"
            "  --lr X         learning rate (default 0.001 for adam, 0.05 for momentum)\n"
            "  --seed N       weights and shuffling (default 1)\n"
            "  --limit N      train on the first N images only (default: all 60000)\n"
            "  --optimizer O  adam (default) or momentum (SGD with momentum)\n"
            "  --momentum X   momentum coefficient (default 0.9)\n"
            "  --f64          double precision (needs fp64 on the device)\n",
            DATASET_FASHION_MNIST_DIR);
}

/* Parses a whole-number option value; exits with a message on anything
 * else. */
static unsigned long long parse_count(const char *opt, const char *value, unsigned long long min)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = value ? strtoull(value, &end, 10) : 0;
    if (!value || errno || !end || *end || *value == '-' || v < min) {
        fprintf(stderr, "mlp: %s needs a whole number of at least %llu, got \"%s\"\n", opt, min,
                value ? value : "");
        exit(2);
    }
    return v;
}

static double parse_real(const char *opt, const char *value)
{
    char *end = NULL;
    errno = 0;
    double v = value ? strtod(value, &end) : 0;
    if (!value || errno || !end || *end || !(v > 0)) {
        fprintf(stderr, "mlp: %s needs a positive number, got \"%s\"\n", opt, value ? value : "");
        exit(2);
    }
    return v;
}

static int fail(const char *what, gpumat_status s, gpumat_context *ctx)
{
    fprintf(stderr, "mlp: %s: %s: %s\n", what, gpumat_strerror(s),
            gpumat_last_error(ctx));
    return 1;
}

static void print_confusion(const unsigned long *confusion)
{
    printf("\nconfusion matrix on the test set (rows: true class, columns: predicted)\n");
    printf("%-12s", "");
    for (int j = 0; j < 10; ++j)
        printf(" %5d", j);
    printf("   accuracy\n");
    for (int i = 0; i < 10; ++i) {
        unsigned long total = 0;
        for (int j = 0; j < 10; ++j)
            total += confusion[i * 10 + j];
        printf("%d %-10s", i, class_names[i]);
        for (int j = 0; j < 10; ++j)
            printf(" %5lu", confusion[i * 10 + j]);
        printf("   %6.2f%%\n", total ? 100.0 * confusion[i * 10 + i] / total : 0.0);
    }
}

int main(int argc, char **argv)
{
    const char *dir = DATASET_FASHION_MNIST_DIR;
    unsigned epochs = 10;
    size_t limit = 0;
    int lr_given = 0;
    mlp_options o;
    mlp_options_default(&o);
    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--f64")) {
            o.dtype = GPUMAT_F64;
            continue;
        } else if (!strcmp(a, "--data") && v) {
            dir = v;
        } else if (!strcmp(a, "--epochs")) {
            epochs = (unsigned)parse_count(a, v, 1);
        } else if (!strcmp(a, "--batch")) {
            o.batch = (size_t)parse_count(a, v, 1);
        } else if (!strcmp(a, "--lr")) {
            o.lr = parse_real(a, v);
            lr_given = 1;
        } else if (!strcmp(a, "--seed")) {
            o.seed = parse_count(a, v, 0);
        } else if (!strcmp(a, "--limit")) {
            limit = (size_t)parse_count(a, v, 1);
        } else if (!strcmp(a, "--momentum")) {
            o.momentum = parse_real(a, v);
        } else if (!strcmp(a, "--optimizer") && v && !strcmp(v, "adam")) {
            o.optimizer = MLP_ADAM;
        } else if (!strcmp(a, "--optimizer") && v && !strcmp(v, "momentum")) {
            o.optimizer = MLP_MOMENTUM;
        } else {
            fprintf(stderr, "mlp: unknown or incomplete option \"%s\"\n", a);
            usage(stderr);
            return 2;
        }
        ++i;
    }
    if (o.optimizer == MLP_MOMENTUM && !lr_given)
        o.lr = 0.05;

    char err[4200];
    dataset train_set, test_set;
    if (dataset_load(dir, "train", &train_set, err, sizeof err) != 0 ||
        dataset_load(dir, "t10k", &test_set, err, sizeof err) != 0) {
        fprintf(stderr, "mlp: %s\n(on Debian/Ubuntu: apt-get install dataset-fashion-mnist, or "
                        "pass --data DIR)\n", err);
        return 1;
    }
    if (train_set.rows * train_set.cols != o.widths[0] ||
        test_set.rows * test_set.cols != o.widths[0]) {
        fprintf(stderr, "mlp: images are %zux%zu, the network expects %zu pixels\n",
                train_set.rows, train_set.cols, o.widths[0]);
        return 1;
    }
    size_t train_count = limit && limit < train_set.count ? limit : train_set.count;
    if (train_count < o.batch) {
        fprintf(stderr, "mlp: %zu training images do not fill one batch of %zu\n", train_count,
                o.batch);
        return 2;
    }

    gpumat_context *ctx;
    gpumat_status s = gpumat_context_create(&ctx, NULL);
    if (s != GPUMAT_OK)
        return fail("context_create", s, NULL);
    gpumat_device_info info;
    gpumat_context_device(ctx, &info);
    printf("device: %s (%s, %s)\n", info.name, info.platform_name,
           gpumat_device_type_name(info.type));
    char optimizer[64];
    if (o.optimizer == MLP_ADAM)
        snprintf(optimizer, sizeof optimizer, "Adam (lr %g)", o.lr);
    else
        snprintf(optimizer, sizeof optimizer, "SGD (lr %g, momentum %g)", o.lr, o.momentum);
    printf("network: 784-256-128-10 ReLU, softmax cross-entropy, %s, batch %zu, seed %" PRIu64
           ", %s\n", optimizer, o.batch, o.seed, o.dtype == GPUMAT_F64 ? "f64" : "f32");

    mlp_data train = {0}, test = {0};
    mlp *net = NULL;
    unsigned long confusion[100];
    int rc = 0;
    s = mlp_data_upload(ctx, &train_set, train_count, o.dtype, &train);
    if (s == GPUMAT_OK)
        s = mlp_data_upload(ctx, &test_set, 0, o.dtype, &test);
    if (s == GPUMAT_OK)
        s = mlp_create(ctx, &o, &net);
    dataset_free(&train_set);
    dataset_free(&test_set);
    if (s != GPUMAT_OK) {
        rc = fail("setting up", s, ctx);
        goto out;
    }
    printf("data: %zu training images (full batches of %zu: %zu per epoch), %zu test images\n\n",
           train.count, o.batch, train.count / o.batch * o.batch, test.count);

    double train_seconds = 0;
    for (unsigned e = 1; e <= epochs; ++e) {
        gpumat_build_stats before, after;
        gpumat_context_build_stats(ctx, &before);
        mlp_stats tr, te;
        double t0 = now_seconds();
        s = mlp_train_epoch(net, &train, e, &tr);
        double t1 = now_seconds();
        if (s == GPUMAT_OK)
            s = mlp_evaluate(net, &test, &te, e == epochs ? confusion : NULL);
        double t2 = now_seconds();
        if (s != GPUMAT_OK) {
            rc = fail("training", s, ctx);
            goto out;
        }
        gpumat_context_build_stats(ctx, &after);
        /* The first epoch also pays for kernel builds and first-touch
         * allocations; the mean leaves it out when there are others. */
        if (e > 1 || epochs == 1)
            train_seconds += t1 - t0;
        printf("epoch %2u/%u  loss %.4f  train acc %6.2f%%  test acc %6.2f%%  (test loss %.4f)  "
               "time %.3f s  %.0f images/s  eval %.3f s\n",
               e, epochs, tr.loss, 100.0 * tr.correct / tr.seen, 100.0 * te.correct / te.seen,
               te.loss, t1 - t0, tr.seen / (t1 - t0), t2 - t1);
        if (after.programs_built > before.programs_built)
            printf("           (includes %.3f s of kernel builds: %u programs, %u from the "
                   "kernel cache)\n", after.build_seconds - before.build_seconds,
                   after.programs_built - before.programs_built,
                   after.cache_hits - before.cache_hits);
        fflush(stdout);
        if (e == epochs) {
            print_confusion(confusion);
            unsigned timed = epochs > 1 ? epochs - 1 : 1;
            printf("\nfinal test accuracy %.2f%%; mean training time %.3f s per epoch "
                   "(%.0f images/s)%s\n", 100.0 * te.correct / te.seen, train_seconds / timed,
                   tr.seen * timed / train_seconds, epochs > 1 ? ", epoch 1 excluded" : "");
        }
    }

out:
    mlp_destroy(net);
    mlp_data_free(&train);
    mlp_data_free(&test);
    gpumat_context_destroy(ctx);
    return rc;
}
