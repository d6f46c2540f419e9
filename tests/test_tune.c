/*
 * test_tune.c - examples/gpumat-tune end to end on the present device: a
 * short search checks its candidates, writes the device's tuning file into
 * GPUMAT_CACHE_DIR, and a new context loads it ("tuned: <path>") and
 * computes right products with it, built with the file's parameters;
 * the double search on the tiled kernels (a GPU profile) adds the double
 * blocking and "backend64" lines; with the tool's results spoilt
 * (GPUMAT_TUNE_CORRUPT, its test hook), either all of them, only those of
 * the products candidates are timed on, or only the timed double ones,
 * every candidate (of that search) is discarded as wrong, the tool fails
 * and writes nothing.
 *
 * The tool is the one built beside this test (<dir>/../examples), which
 * the Makefile builds first.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "gpumat.h"
#include "test_util.h"

#define PATH_SIZE 4400
#define OUT_SIZE 65536

static char g_root[PATH_SIZE];
static char g_tool[PATH_SIZE];
static unsigned g_dir_count;
static tu_saved_env g_saved_cache_dir, g_saved_tuning, g_saved_params, g_saved_profile;

/* A fresh directory, made the cache directory. */
static void fresh_cache_dir(char *out)
{
    int n = snprintf(out, PATH_SIZE, "%s/t%u", g_root, ++g_dir_count);
    assert_true(n > 0 && n < PATH_SIZE);
    assert_int_equal(mkdir(out, 0700), 0);
    setenv("GPUMAT_CACHE_DIR", out, 1);
}

/* Runs the tool with `args`; its output (stdout and stderr) in out.  Under
 * the sanitizers (make check-asan) the tool's own leak report is off: the
 * first build of a candidate's kernels in a cold PoCL cache leaves LLVM's
 * allocations behind, which would fail the run, and the library's leaks
 * are the other tests' business. */
static int run_tool(const char *corrupt, const char *args, char *out, size_t size)
{
    char cmd[PATH_SIZE + 512];
    snprintf(cmd, sizeof cmd,
             "%s%s ASAN_OPTIONS=\"${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0\" '%s' %s 2>&1",
             corrupt ? "GPUMAT_TUNE_CORRUPT=" : "", corrupt ? corrupt : "", g_tool, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t len = 0, got;
    while (len + 1 < size && (got = fread(out + len, 1, size - 1 - len, p)) > 0)
        len += got;
    out[len] = '\0';
    int status = pclose(p);
    /* Whole: print_message() truncates long text. */
    printf("$ %s\n%s", cmd, out);
    fflush(stdout);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The number of tuning files in dir. */
static int tuning_files(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int count = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        count += strncmp(e->d_name, "tuning-", 7) == 0 && strstr(e->d_name, ".tmp") == NULL;
    closedir(d);
    return count;
}

/* c = alpha op(a) op(b) + beta c against the double reference. */
static void check_gemm(gpumat_context *ctx, gpumat_dtype dtype, size_t m, size_t n, size_t k,
                       int ta, int tb)
{
    tu_rng rng;
    tu_rng_init(&rng, 17 + m + 3 * n + 5 * k + 7 * (size_t)ta + 11 * (size_t)tb);
    char msg[1024];
    if (!tu_check_gemm_typed(ctx, &rng, dtype, m, n, k, ta, tb, 1.5, -0.25, msg, sizeof msg))
        fail_msg("%s", msg);
}

/* Every parameter of the file's params line that is a build option
 * ("-DNAME=") is in `options` with the file's value; host-side ones
 * (CPACK, CKC, SMALLPCT) are not build options. */
static void expect_params_used(const char *path, const char *options)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[2048], *params = NULL;
    while (!params && fgets(line, sizeof line, f))
        if (strncmp(line, "params ", 7) == 0)
            params = line + 7;
    fclose(f);
    assert_non_null(params);
    params[strcspn(params, "\n")] = '\0';
    int checked = 0;
    for (char *tok = strtok(params, ","); tok; tok = strtok(NULL, ",")) {
        char *eq = strchr(tok, '=');
        assert_non_null(eq);
        char name[64], want[96];
        snprintf(name, sizeof name, "-D%.*s=", (int)(eq - tok), tok);
        if (!strstr(options, name))
            continue;
        snprintf(want, sizeof want, "-D%s ", tok);
        size_t n = strlen(want) - 1; /* the last option has no space after it */
        const char *at = strstr(options, want);
        if (!at) {
            size_t len = strlen(options);
            at = len >= n && strncmp(options + len - n, want, n) == 0 ? options : NULL;
        }
        if (!at)
            fail_msg("the file's %s is not in the build options \"%s\"", tok, options);
        ++checked;
    }
    assert_true(checked > 0);
}

/* The file has a line starting with `prefix`. */
static int file_has_line(const char *path, const char *prefix)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[2048];
    int found = 0;
    while (!found && fgets(line, sizeof line, f))
        found = strncmp(line, prefix, strlen(prefix)) == 0;
    fclose(f);
    return found;
}

/* A new context loads the directory's tuning file, builds with its
 * parameters, and computes right products of both types with them. */
static void expect_loaded_and_right(void)
{
    gpumat_context *ctx = NULL;
    TU_CHECK_OK(gpumat_context_create(&ctx, NULL));
    char path[PATH_SIZE], expect[PATH_SIZE + 16];
    TU_CHECK_OK(gpumat_context_tuning_path(ctx, path, sizeof path));
    snprintf(expect, sizeof expect, "tuned: %s", path);
    print_message("context: %s\n", gpumat_context_tuning(ctx));
    assert_true(strncmp(gpumat_context_tuning(ctx), expect, strlen(expect)) == 0);
    expect_params_used(path, gpumat_context_build_options(ctx));
    check_gemm(ctx, GPUMAT_F32, 37, 41, 29, 0, 0);
    check_gemm(ctx, GPUMAT_F32, 131, 67, 29, 1, 1);
    if (tu_has_fp64(ctx)) {
        /* Double's own size classes, measured. */
        assert_true(file_has_line(path, "backend64 "));
        check_gemm(ctx, GPUMAT_F64, 37, 41, 29, 0, 1);
        check_gemm(ctx, GPUMAT_F64, 131, 67, 29, 1, 0);
    }
    gpumat_context_destroy(ctx);
}

/* ---- tests ----------------------------------------------------------------- */

/* A search limited to the shipped parameters and what fits in a few
 * seconds: every candidate it tried passed its checks, the file is
 * written, and a new context uses it. */
static void test_writes_a_file_a_context_loads(void **state)
{
    (void)state;
    char dir[PATH_SIZE];
    fresh_cache_dir(dir);
    static char out[OUT_SIZE];
    int rc = run_tool(NULL, "--budget 0 --seconds 3 --sizes 40,72 --runs 1", out, sizeof out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, " 0 wrong"));
    assert_non_null(strstr(out, "\nwrote "));
    assert_int_equal(tuning_files(dir), 1);
    expect_loaded_and_right();
}

/* The tiled kernels' double search (a GPU profile, which PoCL runs too):
 * the double blocking joins the file's parameters. */
static void test_double_search_on_tiled_kernels(void **state)
{
    (void)state;
    char dir[PATH_SIZE];
    fresh_cache_dir(dir);
    setenv("GPUMAT_PROFILE", "generic-gpu", 1);
    static char out[OUT_SIZE];
    int rc = run_tool(NULL, "--budget 0 --seconds 1 --sizes 40 --runs 1", out, sizeof out);
    assert_int_equal(rc, 0);
    gpumat_context *probe = NULL;
    TU_CHECK_OK(gpumat_context_create(&probe, NULL));
    int fp64 = tu_has_fp64(probe);
    gpumat_context_destroy(probe);
    if (fp64) {
        assert_non_null(strstr(out, "\ndouble: the float winner"));
        assert_non_null(strstr(out, "best double: d"));
    }
    assert_int_equal(tuning_files(dir), 1);
    expect_loaded_and_right();
    unsetenv("GPUMAT_PROFILE");
}

/* Wrong products fail every candidate: the tool says so, exits with an
 * error, and writes nothing.  `corrupt` "all": the hook spoils every
 * product (the checks before timing catch it); "timed": only the
 * products candidates are timed on (the checks of those catch it). */
static void expect_all_wrong(const char *corrupt, const char *reason)
{
    char dir[PATH_SIZE];
    fresh_cache_dir(dir);
    static char out[OUT_SIZE];
    int rc = run_tool(corrupt, "--budget 0 --seconds 1 --sizes 40 --runs 1", out, sizeof out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "WRONG"));
    assert_non_null(strstr(out, reason));
    assert_non_null(strstr(out, " 0 correct"));
    assert_non_null(strstr(out, "no candidate passed the checks; nothing written"));
    assert_int_equal(tuning_files(dir), 0);
}

static void test_wrong_products_are_discarded(void **state)
{
    (void)state;
    /* The first check a candidate meets: float 131x67x29, every element. */
    expect_all_wrong("all", "f32 131x67x29 NN: 1 wrong");
}

static void test_wrong_timed_products_are_discarded(void **state)
{
    (void)state;
    /* Sampled: its first row, (0, 0) among it. */
    expect_all_wrong("timed", "f32 40x40x40 NN: 1 checked wrong");
}

/* The two shapes beside the squares are timed and checked too: one wrong
 * product of either (and no other) discards every candidate.  From
 * --sizes 40: odd 39x39x63, tall 160x64x160. */
static void test_odd_and_tall_products_are_checked(void **state)
{
    (void)state;
    static char out[OUT_SIZE];
    assert_int_equal(run_tool(NULL, "--budget 0 --seconds 1 --sizes 40 --runs 1 --dry-run", out,
                              sizeof out),
                     0);
    assert_non_null(strstr(out, "odd: NN 39x39x63, tall: NN 160x64x160"));
    assert_non_null(strstr(out, "\nodd / tall "));
    expect_all_wrong("timed:39x39x63", "f32 39x39x63 NN: 1 checked wrong");
    expect_all_wrong("timed:160x64x160", "f32 160x64x160 NN: 1 checked wrong");
}

/* Wrong timed double products (the float search passes): the double
 * search discards every candidate, and nothing is written either. */
static void test_wrong_double_products_are_discarded(void **state)
{
    (void)state;
    char dir[PATH_SIZE];
    fresh_cache_dir(dir);
    gpumat_context *probe = NULL;
    TU_CHECK_OK(gpumat_context_create(&probe, NULL));
    int fp64 = tu_has_fp64(probe);
    gpumat_context_destroy(probe);
    if (!fp64) {
        print_message("[  SKIPPED ] the device has no fp64\n");
        skip();
    }
    static char out[OUT_SIZE];
    int rc = run_tool("timed-f64", "--budget 0 --seconds 1 --sizes 40 --runs 1", out, sizeof out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "best float: "));
    assert_non_null(strstr(out, "f64 40x40x40 NN: 1 checked wrong"));
    assert_non_null(strstr(out, "double: no candidate passed the checks; nothing written"));
    assert_int_equal(tuning_files(dir), 0);
}

/* ---- main -------------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    tu_env_save(&g_saved_cache_dir, "GPUMAT_CACHE_DIR");
    tu_env_save(&g_saved_tuning, "GPUMAT_TUNING");
    tu_env_save(&g_saved_params, "GPUMAT_KERNEL_PARAMS");
    tu_env_save(&g_saved_profile, "GPUMAT_PROFILE");
    unsetenv("GPUMAT_TUNING");
    unsetenv("GPUMAT_KERNEL_PARAMS");
    unsetenv("GPUMAT_PROFILE");
    return tu_scratch_dir(g_root, sizeof g_root, "gpumat-test-tune");
}

static int group_teardown(void **state)
{
    (void)state;
    tu_remove_tree(g_root);
    tu_env_restore(&g_saved_cache_dir);
    tu_env_restore(&g_saved_tuning);
    tu_env_restore(&g_saved_params);
    tu_env_restore(&g_saved_profile);
    return 0;
}

int main(int argc, char **argv)
{
    tu_init("test_tune");
    /* build/tests/test_tune -> build/examples/gpumat-tune */
    const char *slash = strrchr(argv[0], '/');
    int dir_len = slash ? (int)(slash - argv[0]) : 1;
    snprintf(g_tool, sizeof g_tool, "%.*s/../examples/gpumat-tune", dir_len,
             slash ? argv[0] : ".");
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writes_a_file_a_context_loads),
        cmocka_unit_test(test_wrong_products_are_discarded),
        cmocka_unit_test(test_wrong_timed_products_are_discarded),
        cmocka_unit_test(test_odd_and_tall_products_are_checked),
        cmocka_unit_test(test_double_search_on_tiled_kernels),
        cmocka_unit_test(test_wrong_double_products_are_discarded),
    };
    return cmocka_run_group_tests_name("tune", tests, group_setup, group_teardown);
}
