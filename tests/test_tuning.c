/*
 * test_tuning.c - the per-device tuning file (lib/tuning.c) and AUTO GEMM
 * dispatch: a valid file's parameters are used and products stay right; a
 * malformed file, one of another format version or another device's key,
 * and parameters the library rejects or the device cannot run are ignored
 * with a note and never fail context creation (nor touch the thread's last
 * error); GPUMAT_TUNING=off and GPUMAT_KERNEL_PARAMS win over the file;
 * backend lines send a size class to CLBlast, backend64 lines a double
 * one (without them double follows float); the directory follows the
 * kernel cache's rules.
 *
 * Every test points GPUMAT_CACHE_DIR at its own fresh directory.  Which
 * backend ran a product is observed through gpumat_context_build_stats():
 * the native GEMM builds libgpumat's gemm program, CLBlast builds none of
 * ours.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpumat.h"
#include "test_util.h"

#define MSG_SIZE 1024
#define PATH_SIZE 4400

static char g_root[PATH_SIZE];
static unsigned g_dir_count;
static uint64_t g_stream = 1;

static const char *const g_env_names[] = {"GPUMAT_CACHE",  "GPUMAT_CACHE_DIR", "XDG_CACHE_HOME",
                                          "HOME",          "GPUMAT_TUNING",    "GPUMAT_KERNEL_PARAMS",
                                          "GPUMAT_GEMM",   "GPUMAT_PROFILE"};
#define ENV_COUNT (sizeof g_env_names / sizeof g_env_names[0])
static tu_saved_env g_saved_env[ENV_COUNT];

/* Differs from every shipped profile in each GEMM parameter it sets. */
#define TUNED_PARAMS "MWG=32,NWG=64,KWG=8,MDIMC=4,NDIMC=8,SMWG=16,SNWG=32,SMDIMC=4,SNDIMC=4,SMALLPCT=200"
/* The same for cl/gemm_cpu.cl (profile cpu: CVW=8 CMR=4 CNV=3 CDM=3 CDN=4
 * CWX=4 CWY=4 CPACK=224; cpu-avx512: CVW=16 CMR=6 CNV=2 CDM=2, the rest
 * as cpu). */
#define TUNED_CPU_PARAMS "CVW=4,CMR=2,CNV=5,CDM=1,CDN=3,CWX=2,CWY=8,CPACK=100"

/* ---- files and environment ----------------------------------------------- */

static void pathf(char *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, PATH_SIZE, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && n < PATH_SIZE);
}

/* A fresh directory for one test, made the cache directory. */
static void fresh_cache_dir(char *out)
{
    pathf(out, "%s/t%u", g_root, ++g_dir_count);
    assert_int_equal(mkdir(out, 0700), 0);
    setenv("GPUMAT_CACHE_DIR", out, 1);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        fail_msg("cannot write %s: %s", path, strerror(errno));
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

static gpumat_context *create(gpumat_gemm_backend backend)
{
    gpumat_options o;
    gpumat_options_init(&o);
    o.gemm_backend = backend;
    gpumat_context *ctx = NULL;
    TU_CHECK_OK(gpumat_context_create(&ctx, &o));
    return ctx;
}

/* The device's key and the tuning file's path under the current
 * environment, from a throw-away context. */
typedef struct device_key {
    gpumat_device_info info;
    char path[PATH_SIZE];
    char shipped_options[512]; /* build options without any tuning */
    char profile[64];
} device_key;

static void device_key_get(device_key *k)
{
    setenv("GPUMAT_TUNING", "off", 1);
    gpumat_context *ctx = create(GPUMAT_GEMM_AUTO);
    unsetenv("GPUMAT_TUNING");
    TU_CHECK_OK(gpumat_context_device(ctx, &k->info));
    TU_CHECK_OK(gpumat_context_tuning_path(ctx, k->path, sizeof k->path));
    snprintf(k->shipped_options, sizeof k->shipped_options, "%s",
             gpumat_context_build_options(ctx));
    snprintf(k->profile, sizeof k->profile, "%s", gpumat_context_profile(ctx));
    gpumat_context_destroy(ctx);
}

/* A tuning file: the header and key, then `body`. */
static void write_tuning(const device_key *k, const char *version_line, const char *driver,
                         const char *body)
{
    char text[4096];
    snprintf(text, sizeof text, "# a test's tuning file\n%s\ndevice %s\ndriver %s\n%s",
             version_line, k->info.name, driver ? driver : k->info.driver_version, body);
    write_text(k->path, text);
}

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ---- products ------------------------------------------------------------- */

/* c = op(a) op(b) (m x n x k) against the double reference. */
static void check_gemm(gpumat_context *ctx, size_t m, size_t n, size_t k, int ta, int tb)
{
    tu_rng rng;
    tu_rng_init(&rng, g_stream++);
    char msg[MSG_SIZE];
    if (!tu_check_gemm(ctx, &rng, m, n, k, ta, tb, 1.0, 0.0, msg, sizeof msg))
        fail_msg("%s", msg);
}

/* c = a b (m x n x k) in double against the reference. */
static void check_gemm64(gpumat_context *ctx, size_t m, size_t n, size_t k)
{
    tu_rng rng;
    tu_rng_init(&rng, g_stream++);
    char msg[MSG_SIZE];
    if (!tu_check_gemm_typed(ctx, &rng, GPUMAT_F64, m, n, k, 0, 0, 1.0, 0.0, msg, sizeof msg))
        fail_msg("%s", msg);
}

static unsigned programs_built(const gpumat_context *ctx)
{
    gpumat_build_stats stats;
    TU_CHECK_OK(gpumat_context_build_stats(ctx, &stats));
    return stats.programs_built;
}

/* ---- tests ----------------------------------------------------------------- */

static void test_arguments(void **state)
{
    (void)state;
    char dir[PATH_SIZE], path[PATH_SIZE];
    fresh_cache_dir(dir);
    assert_null(gpumat_context_tuning(NULL));
    assert_int_equal(gpumat_context_gemm_backend_for(NULL, GPUMAT_F32, 1, 1, 1), GPUMAT_GEMM_AUTO);
    assert_int_equal(gpumat_context_tuning_path(NULL, path, sizeof path),
                     GPUMAT_ERR_INVALID_ARGUMENT);
    gpumat_context *ctx = create(GPUMAT_GEMM_AUTO);
    assert_int_equal(gpumat_context_tuning_path(ctx, NULL, 10), GPUMAT_ERR_INVALID_ARGUMENT);
    assert_int_equal(gpumat_context_tuning_path(ctx, path, 8), GPUMAT_ERR_INVALID_ARGUMENT);
    TU_CHECK_OK(gpumat_context_tuning_path(ctx, path, sizeof path));
    gpumat_context_destroy(ctx);
}

/* No file: the shipped profile, a note naming where the file would be, and
 * AUTO reported as such (dispatch is per call). */
static void test_no_file(void **state)
{
    (void)state;
    char dir[PATH_SIZE], path[PATH_SIZE], prefix[PATH_SIZE];
    fresh_cache_dir(dir);
    gpumat_context *ctx = create(GPUMAT_GEMM_AUTO);
    TU_CHECK_OK(gpumat_context_tuning_path(ctx, path, sizeof path));
    pathf(prefix, "%s/tuning-", dir);
    assert_true(starts_with(path, prefix));
    const char *note = gpumat_context_tuning(ctx);
    print_message("note: %s\n", note);
    assert_true(starts_with(note, "shipped profile "));
    assert_non_null(strstr(note, gpumat_context_profile(ctx)));
    assert_non_null(strstr(note, path));
    assert_int_equal(gpumat_context_gemm_backend(ctx), GPUMAT_GEMM_AUTO);
    /* The shipped tables pick the native kernels on every measured profile. */
    assert_int_equal(gpumat_context_gemm_backend_for(ctx, GPUMAT_F32, 64, 64, 64), GPUMAT_GEMM_NATIVE);
    assert_int_equal(gpumat_context_gemm_backend_for(ctx, GPUMAT_F32, 4096, 4096, 4096), GPUMAT_GEMM_NATIVE);
    gpumat_context_destroy(ctx);
}

/* A valid file: its parameters are compiled in, and products of awkward
 * shapes (both kernel variants, all transposition cases) are right. */
static void test_valid_file(void **state)
{
    (void)state;
    char dir[PATH_SIZE], tuned[PATH_SIZE];
    fresh_cache_dir(dir);
    device_key k;
    device_key_get(&k);
    /* Where the profile runs cl/gemm_cpu.cl (PoCL), its parameters too, or
     * the file would change nothing the products below run. */
    const int cpu_kernels = strstr(k.shipped_options, "-DCVW=") != NULL;
    write_tuning(&k, "gpumat-tuning 1", NULL,
                 cpu_kernels ? "params " TUNED_PARAMS "," TUNED_CPU_PARAMS "\n"
                             : "params " TUNED_PARAMS "\n");

    char saved_error[MSG_SIZE];
    snprintf(saved_error, sizeof saved_error, "%s", gpumat_last_error(NULL));
    gpumat_context *ctx = create(GPUMAT_GEMM_AUTO);
    const char *note = gpumat_context_tuning(ctx);
    print_message("note: %s\n", note);
    pathf(tuned, "tuned: %s", k.path);
    assert_true(starts_with(note, tuned));
    static const char *const expect[] = {"-DMWG=32 ", "-DNWG=64 ", "-DKWG=8 ", "-DMDIMC=4 ",
                                         "-DNDIMC=8 ", "-DSMWG=16 ", "-DSNWG=32 ",
                                         "-DSMDIMC=4 ", "-DSNDIMC=4 "};
    static const char *const expect_cpu[] = {"-DCVW=4 ", "-DCMR=2 ", "-DCNV=5 ", "-DCDM=1 ",
                                             "-DCDN=3 ", "-DCWX=2 ", "-DCWY=8"};
    const char *options = gpumat_context_build_options(ctx);
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; ++i)
        if (!strstr(options, expect[i]))
            fail_msg("build options \"%s\" lack \"%s\"", options, expect[i]);
    for (size_t i = 0; cpu_kernels && i < sizeof expect_cpu / sizeof expect_cpu[0]; ++i)
        if (!strstr(options, expect_cpu[i]))
            fail_msg("build options \"%s\" lack \"%s\"", options, expect_cpu[i]);
    assert_string_equal(gpumat_last_error(NULL), saved_error);
    if (cpu_kernels) /* past CPACK=100: packed panels */
        for (int t = 0; t < 4; ++t)
            check_gemm(ctx, 150, 141, 130, t & 1, t >> 1);

    for (int t = 0; t < 4; ++t)
        check_gemm(ctx, 131, 67, 29, t & 1, t >> 1); /* 10 big tiles: big kernel */
    check_gemm(ctx, 29, 37, 19, 0, 0);                /* one tile: small kernel */
    check_gemm(ctx, 29, 37, 19, 1, 1);
    gpumat_context_destroy(ctx);
}

/* Files that must be ignored, each with the note's telling part. */
static void test_ignored_files(void **state)
{
    (void)state;
    char dir[PATH_SIZE];
    fresh_cache_dir(dir);
    device_key k;
    device_key_get(&k);

    /* Work-groups larger than the device allows: valid syntax, unfit. */
    unsigned d = 8;
    while ((size_t)d * d <= k.info.max_work_group_size && d < 1024)
        d *= 2;
    char unfit[256];
    snprintf(unfit, sizeof unfit, "params MWG=%u,NWG=%u,KWG=%u,KWG64=%u,MDIMC=%u,NDIMC=%u\n",
             4 * d, 4 * d, d, d, d, d);

    static const struct {
        const char *version, *driver, *body, *expect;
    } cases[] = {
        {"gpumat-tuning 1", NULL, "params " TUNED_PARAMS "\nfrobnicate 3\n", "malformed (line 6"},
        {"gpumat-tuning 1", NULL, "", "malformed (neither a params nor a backend line"},
        {"gpumat-tuning 1", NULL, "backend 100 cuBLAS\n", "malformed (line 5"},
        {"gpumat-tuning 1", NULL, "backend 200 native\nbackend 100 clblast\n",
         "backend limits must increase"},
        {"gpumat-tuning 1", NULL, "backend64 100 cuBLAS\n", "malformed (line 5: expected \"backend64"},
        {"gpumat-tuning 1", NULL, "backend 100 native\nbackend64 200 native\nbackend64 100 clblast\n",
         "backend64 limits must increase"},
        {"gpumat-tuning 1", NULL, "backend64\n", "line 5: unknown line"},
        {"gpumat-tuning 1", NULL, "params " TUNED_PARAMS "\nparams MWG=64\n",
         "a second params line"},
        {"gpumat tuning", NULL, "params " TUNED_PARAMS "\n", "malformed (line 2"},
        {"gpumat-tuning 1", NULL, "params MWG=30\n", "params rejected"},
        {"gpumat-tuning 1", NULL, "params MWG=64,FOO=1\n", "params rejected"},
        {"gpumat-tuning 1", NULL, NULL, "do not fit"},
        /* Stale: another format version, another driver. */
        {"gpumat-tuning 0", NULL, "params " TUNED_PARAMS "\n", "format version 0"},
        {"gpumat-tuning 2", NULL, "whatever version 2 says\n", "format version 2"},
        {"gpumat-tuning 1", "0.0-older-driver", "params " TUNED_PARAMS "\n", "key mismatch"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        write_tuning(&k, cases[i].version, cases[i].driver, cases[i].body ? cases[i].body : unfit);
        char saved_error[MSG_SIZE], ignored[PATH_SIZE];
        snprintf(saved_error, sizeof saved_error, "%s", gpumat_last_error(NULL));
        gpumat_context *ctx = create(GPUMAT_GEMM_AUTO);
        const char *note = gpumat_context_tuning(ctx);
        print_message("case %zu: %s\n", i, note);
        pathf(ignored, "ignored %s: ", k.path);
        if (!starts_with(note, ignored) || !strstr(note, cases[i].expect) ||
            !strstr(note, "using shipped profile"))
            fail_msg("case %zu: note \"%s\", expected \"%s...%s\"", i, note, ignored,
                     cases[i].expect);
        assert_string_equal(gpumat_context_build_options(ctx), k.shipped_options);
        assert_string_equal(gpumat_last_error(NULL), saved_error);
        gpumat_context_destroy(ctx);
    }
    /* The key's text is in the note, both sides. */
    gpumat_context *ctx = create(GPUMAT_GEMM_AUTO);
    assert_non_null(strstr(gpumat_context_tuning(ctx), "0.0-older-driver"));
    assert_non_null(strstr(gpumat_context_tuning(ctx), k.info.driver_version));
    gpumat_context_destroy(ctx);
}

/* GPUMAT_TUNING=off and GPUMAT_KERNEL_PARAMS both keep the file out. */
static void test_env_wins(void **state)
{
    (void)state;
    char dir[PATH_SIZE];
    fresh_cache_dir(dir);
    device_key k;
    device_key_get(&k);
    write_tuning(&k, "gpumat-tuning 1", NULL, "params " TUNED_PARAMS "\n");

    static const char *const off[] = {"off", "OFF", "0", "no", "false"};
    for (size_t i = 0; i < sizeof off / sizeof off[0]; ++i) {
        setenv("GPUMAT_TUNING", off[i], 1);
        gpumat_context *ctx = create(GPUMAT_GEMM_AUTO);
        const char *note = gpumat_context_tuning(ctx);
        if (!starts_with(note, "shipped profile ") || !strstr(note, "GPUMAT_TUNING=off"))
            fail_msg("GPUMAT_TUNING=%s: note \"%s\"", off[i], note);
        assert_string_equal(gpumat_context_build_options(ctx), k.shipped_options);
        gpumat_context_destroy(ctx);
    }
    setenv("GPUMAT_TUNING", "on", 1);
    gpumat_context *ctx = create(GPUMAT_GEMM_AUTO);
    assert_true(starts_with(gpumat_context_tuning(ctx), "tuned: "));
    gpumat_context_destroy(ctx);
    unsetenv("GPUMAT_TUNING");

    setenv("GPUMAT_KERNEL_PARAMS", "KWG=32", 1);
    ctx = create(GPUMAT_GEMM_AUTO);
    unsetenv("GPUMAT_KERNEL_PARAMS");
    print_message("note: %s\n", gpumat_context_tuning(ctx));
    assert_non_null(strstr(gpumat_context_tuning(ctx), "GPUMAT_KERNEL_PARAMS"));
    assert_non_null(strstr(gpumat_context_build_options(ctx), "-DKWG=32"));
    assert_null(strstr(gpumat_context_build_options(ctx), "-DMWG=32 -DNWG=64"));
    gpumat_context_destroy(ctx);
}

/* backend lines: a size class sent to CLBlast runs there under AUTO (and
 * builds none of libgpumat's programs); the next class runs natively;
 * forcing a backend overrides the file. */
static void test_dispatch(void **state)
{
    (void)state;
    char dir[PATH_SIZE];
    fresh_cache_dir(dir);
    device_key k;
    device_key_get(&k);
    write_tuning(&k, "gpumat-tuning 1", NULL, "backend 100 clblast\nbackend 200 native\n");

    gpumat_context *ctx = create(GPUMAT_GEMM_AUTO);
    assert_true(starts_with(gpumat_context_tuning(ctx), "tuned: "));
    assert_int_equal(gpumat_context_gemm_backend(ctx), GPUMAT_GEMM_AUTO);
    /* No params line: the shipped parameters. */
    assert_string_equal(gpumat_context_build_options(ctx), k.shipped_options);
    gpumat_gemm_backend small = gpumat_context_gemm_backend_for(ctx, GPUMAT_F32, 100, 100, 100);
    /* No backend64 lines: double goes where float goes. */
    assert_int_equal(gpumat_context_gemm_backend_for(ctx, GPUMAT_F64, 100, 100, 100), small);
    assert_int_equal(gpumat_context_gemm_backend_for(ctx, GPUMAT_F64, 101, 100, 100),
                     GPUMAT_GEMM_NATIVE);
    assert_int_equal(gpumat_context_gemm_backend_for(ctx, GPUMAT_F32, 101, 100, 100), GPUMAT_GEMM_NATIVE);
    assert_int_equal(gpumat_context_gemm_backend_for(ctx, GPUMAT_F32, 150, 150, 150), GPUMAT_GEMM_NATIVE);
    assert_int_equal(gpumat_context_gemm_backend_for(ctx, GPUMAT_F32, 8192, 8192, 8192), GPUMAT_GEMM_NATIVE);
    if (small == GPUMAT_GEMM_NATIVE) {
        /* Only when CLBlast cannot be loaded. */
        gpumat_options o;
        gpumat_options_init(&o);
        o.gemm_backend = GPUMAT_GEMM_CLBLAST;
        gpumat_context *blas = NULL;
        assert_int_equal(gpumat_context_create(&blas, &o), GPUMAT_ERR_UNSUPPORTED);
        gpumat_context_destroy(ctx);
        print_message("[  SKIPPED ] CLBlast unavailable: %s\n", gpumat_last_error(NULL));
        skip();
    }
    assert_int_equal(small, GPUMAT_GEMM_CLBLAST);
    assert_int_equal(gpumat_context_gemm_backend_for(ctx, GPUMAT_F32, 1, 1, 1), GPUMAT_GEMM_CLBLAST);

    assert_int_equal(programs_built(ctx), 0);
    check_gemm(ctx, 67, 45, 31, 0, 0); /* cbrt(93465) = 45: CLBlast */
    check_gemm(ctx, 67, 45, 31, 1, 0);
    assert_int_equal(programs_built(ctx), 0);
    check_gemm(ctx, 131, 67, 129, 0, 1); /* cbrt(1132233) = 104: native */
    assert_int_equal(programs_built(ctx), 1);
    gpumat_context_destroy(ctx);

    /* Forced backends ignore the classes. */
    ctx = create(GPUMAT_GEMM_NATIVE);
    assert_int_equal(gpumat_context_gemm_backend(ctx), GPUMAT_GEMM_NATIVE);
    assert_int_equal(gpumat_context_gemm_backend_for(ctx, GPUMAT_F32, 64, 64, 64), GPUMAT_GEMM_NATIVE);
    gpumat_context_destroy(ctx);
    setenv("GPUMAT_GEMM", "native", 1);
    ctx = create(GPUMAT_GEMM_AUTO);
    unsetenv("GPUMAT_GEMM");
    assert_int_equal(gpumat_context_gemm_backend(ctx), GPUMAT_GEMM_NATIVE);
    assert_int_equal(gpumat_context_gemm_backend_for(ctx, GPUMAT_F32, 64, 64, 64), GPUMAT_GEMM_NATIVE);
    gpumat_context_destroy(ctx);
    ctx = create(GPUMAT_GEMM_CLBLAST);
    assert_int_equal(gpumat_context_gemm_backend_for(ctx, GPUMAT_F32, 8192, 8192, 8192), GPUMAT_GEMM_CLBLAST);
    gpumat_context_destroy(ctx);
}

/* backend64 lines: double's own size classes, beside float's. */
static void test_dispatch_per_type(void **state)
{
    (void)state;
    char dir[PATH_SIZE];
    fresh_cache_dir(dir);
    device_key k;
    device_key_get(&k);
    if (!k.info.has_fp64) {
        print_message("[  SKIPPED ] the device has no fp64\n");
        skip();
    }
    write_tuning(&k, "gpumat-tuning 1", NULL,
                 "backend 100 clblast\nbackend 200 native\n"
                 "backend64 100 native\nbackend64 200 clblast\n");
    gpumat_context *ctx = create(GPUMAT_GEMM_AUTO);
    assert_true(starts_with(gpumat_context_tuning(ctx), "tuned: "));
    if (gpumat_context_gemm_backend_for(ctx, GPUMAT_F32, 100, 100, 100) != GPUMAT_GEMM_CLBLAST) {
        gpumat_context_destroy(ctx);
        print_message("[  SKIPPED ] CLBlast unavailable\n");
        skip();
    }
    assert_int_equal(gpumat_context_gemm_backend_for(ctx, GPUMAT_F32, 8192, 8192, 8192),
                     GPUMAT_GEMM_NATIVE);
    assert_int_equal(gpumat_context_gemm_backend_for(ctx, GPUMAT_F64, 100, 100, 100),
                     GPUMAT_GEMM_NATIVE);
    assert_int_equal(gpumat_context_gemm_backend_for(ctx, GPUMAT_F64, 101, 100, 100),
                     GPUMAT_GEMM_CLBLAST);
    assert_int_equal(gpumat_context_gemm_backend_for(ctx, GPUMAT_F64, 8192, 8192, 8192),
                     GPUMAT_GEMM_CLBLAST);

    assert_int_equal(programs_built(ctx), 0);
    check_gemm(ctx, 67, 45, 31, 0, 0); /* float, cbrt 45: CLBlast */
    assert_int_equal(programs_built(ctx), 0);
    check_gemm64(ctx, 131, 67, 129); /* double, cbrt 104: CLBlast */
    assert_int_equal(programs_built(ctx), 0);
    check_gemm64(ctx, 67, 45, 31); /* double, cbrt 45: native */
    assert_int_equal(programs_built(ctx), 1);
    gpumat_context_destroy(ctx);
}

/* Without GPUMAT_CACHE_DIR: $XDG_CACHE_HOME/gpumat, else ~/.cache/gpumat;
 * GPUMAT_CACHE=off does not matter. */
static void test_default_dirs(void **state)
{
    (void)state;
    char dir[PATH_SIZE], path[PATH_SIZE], prefix[PATH_SIZE];
    fresh_cache_dir(dir);
    unsetenv("GPUMAT_CACHE_DIR");
    setenv("GPUMAT_CACHE", "off", 1);
    setenv("XDG_CACHE_HOME", dir, 1);
    gpumat_context *ctx = create(GPUMAT_GEMM_AUTO);
    TU_CHECK_OK(gpumat_context_tuning_path(ctx, path, sizeof path));
    gpumat_context_destroy(ctx);
    pathf(prefix, "%s/gpumat/tuning-", dir);
    assert_true(starts_with(path, prefix));

    unsetenv("XDG_CACHE_HOME");
    setenv("HOME", dir, 1);
    ctx = create(GPUMAT_GEMM_AUTO);
    TU_CHECK_OK(gpumat_context_tuning_path(ctx, path, sizeof path));
    gpumat_context_destroy(ctx);
    pathf(prefix, "%s/.cache/gpumat/tuning-", dir);
    assert_true(starts_with(path, prefix));

    unsetenv("HOME");
    ctx = create(GPUMAT_GEMM_AUTO);
    assert_int_equal(gpumat_context_tuning_path(ctx, path, sizeof path), GPUMAT_ERR_UNSUPPORTED);
    assert_true(starts_with(gpumat_context_tuning(ctx), "shipped profile "));
    gpumat_context_destroy(ctx);
}

/* ---- main -------------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    for (size_t i = 0; i < ENV_COUNT; ++i)
        tu_env_save(&g_saved_env[i], g_env_names[i]);
    return tu_scratch_dir(g_root, sizeof g_root, "gpumat-test-tuning");
}

static int group_teardown(void **state)
{
    (void)state;
    tu_remove_tree(g_root);
    for (size_t i = 0; i < ENV_COUNT; ++i)
        tu_env_restore(&g_saved_env[i]);
    return 0;
}

/* Each test starts from the user's environment less the variables that
 * steer tuning and dispatch. */
static int test_setup(void **state)
{
    (void)state;
    for (size_t i = 0; i < ENV_COUNT; ++i) {
        if (g_saved_env[i].value && i < 4)
            setenv(g_env_names[i], g_saved_env[i].value, 1);
        else
            unsetenv(g_env_names[i]);
    }
    return 0;
}

int main(int argc, char **argv)
{
    tu_init("test_tuning");
    if (argc > 1) /* a test name pattern, e.g. "test_dispatch" */
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_arguments, test_setup),
        cmocka_unit_test_setup(test_no_file, test_setup),
        cmocka_unit_test_setup(test_valid_file, test_setup),
        cmocka_unit_test_setup(test_ignored_files, test_setup),
        cmocka_unit_test_setup(test_env_wins, test_setup),
        cmocka_unit_test_setup(test_dispatch, test_setup),
        cmocka_unit_test_setup(test_dispatch_per_type, test_setup),
        cmocka_unit_test_setup(test_default_dirs, test_setup),
    };
    return cmocka_run_group_tests_name("tuning", tests, group_setup, group_teardown);
}
