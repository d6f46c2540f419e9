/*
 * test_mlp.c - trains a small network on a subset of the real Fashion-MNIST
 * data through the same model and loader as examples/mlp.c
 * (examples/common/), and requires it to learn: the loss must fall well
 * below its starting value and test accuracy must beat chance (10%) by a
 * wide margin.  Also checks that training is deterministic for a seed.
 *
 * Needs Debian's dataset-fashion-mnist package (make check installs it).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "gpumat.h"
#include "test_util.h"
#include "../examples/common/dataset.h"
#include "../examples/common/mlp_model.h"

/* 100 batches of 64 per epoch; 3 epochs are 300 steps. */
enum { TRAIN_IMAGES = 6400, TEST_IMAGES = 2000, BATCH = 64, EPOCHS = 3 };

static gpumat_context *g_ctx;
static mlp_data g_train, g_test;

static int setup(void **state)
{
    (void)state;
    char err[4200];
    dataset train, test;
    if (dataset_load(DATASET_FASHION_MNIST_DIR, "train", &train, err, sizeof err) != 0 ||
        dataset_load(DATASET_FASHION_MNIST_DIR, "t10k", &test, err, sizeof err) != 0) {
        print_error("Fashion-MNIST is not installed: %s\n"
                    "install it with:  apt-get install dataset-fashion-mnist\n", err);
        return -1;
    }
    gpumat_status s = gpumat_context_create(&g_ctx, NULL);
    if (s == GPUMAT_OK)
        s = mlp_data_upload(g_ctx, &train, TRAIN_IMAGES, GPUMAT_F32, &g_train);
    if (s == GPUMAT_OK)
        s = mlp_data_upload(g_ctx, &test, TEST_IMAGES, GPUMAT_F32, &g_test);
    dataset_free(&train);
    dataset_free(&test);
    if (s != GPUMAT_OK) {
        print_error("setup: %s: %s\n", gpumat_strerror(s), gpumat_last_error(NULL));
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mlp_data_free(&g_train);
    mlp_data_free(&g_test);
    gpumat_context_destroy(g_ctx);
    return 0;
}

static void small_options(mlp_options *o, mlp_optimizer optimizer)
{
    mlp_options_default(o);
    static const size_t widths[] = {784, 64, 32, 10};
    memcpy(o->widths, widths, sizeof widths);
    o->layers = 3;
    o->batch = BATCH;
    o->optimizer = optimizer;
    o->lr = optimizer == MLP_ADAM ? 2e-3 : 0.05;
    o->seed = tu_seed();
}

static void train_and_check(mlp_optimizer optimizer)
{
    mlp_options o;
    small_options(&o, optimizer);
    mlp *net;
    TU_CHECK_OK(mlp_create(g_ctx, &o, &net));
    mlp_stats start, tr, te;
    TU_CHECK_OK(mlp_evaluate(net, &g_train, &start, NULL));
    for (unsigned e = 1; e <= EPOCHS; ++e) {
        TU_CHECK_OK(mlp_train_epoch(net, &g_train, e, &tr));
        print_message("  %s epoch %u: loss %.4f, train accuracy %.1f%%\n",
                      optimizer == MLP_ADAM ? "adam" : "momentum", e, tr.loss,
                      100.0 * tr.correct / tr.seen);
    }
    TU_CHECK_OK(mlp_evaluate(net, &g_test, &te, NULL));
    mlp_destroy(net);
    double accuracy = (double)te.correct / te.seen;
    print_message("  loss %.4f at the start, %.4f after %d steps; test accuracy %.1f%%\n",
                  start.loss, tr.loss, EPOCHS * TRAIN_IMAGES / BATCH, 100 * accuracy);
    /* Untrained, the loss is near log(10) = 2.3; learning takes it far
     * below half of that. */
    if (!(tr.loss < 0.4 * start.loss))
        fail_msg("the loss fell only from %.4f to %.4f", start.loss, tr.loss);
    if (!(accuracy > 0.6))
        fail_msg("test accuracy %.1f%% is not far above chance (10%%)", 100 * accuracy);
}

static void test_train_adam(void **state)
{
    (void)state;
    train_and_check(MLP_ADAM);
}

static void test_train_momentum(void **state)
{
    (void)state;
    train_and_check(MLP_MOMENTUM);
}

/* The same seed on the same device gives bit-identical training. */
static void test_deterministic(void **state)
{
    (void)state;
    mlp_options o;
    small_options(&o, MLP_ADAM);
    mlp_stats a[2], b[2];
    for (int run = 0; run < 2; ++run) {
        mlp *net;
        TU_CHECK_OK(mlp_create(g_ctx, &o, &net));
        TU_CHECK_OK(mlp_train_epoch(net, &g_train, 1, &a[run]));
        TU_CHECK_OK(mlp_evaluate(net, &g_test, &b[run], NULL));
        mlp_destroy(net);
    }
    if (a[0].loss != a[1].loss || a[0].correct != a[1].correct || b[0].loss != b[1].loss ||
        b[0].correct != b[1].correct)
        fail_msg("two runs with seed %llu differ: train loss %.17g / %.17g, test loss %.17g / "
                 "%.17g", (unsigned long long)o.seed, a[0].loss, a[1].loss, b[0].loss, b[1].loss);
}

int main(void)
{
    tu_init("test_mlp");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_adam),
        cmocka_unit_test(test_train_momentum),
        cmocka_unit_test(test_deterministic),
    };
    return cmocka_run_group_tests_name("MLP training on Fashion-MNIST", tests, setup, teardown);
}
