/*
 * test_cache.c - the persistent kernel cache: a miss writes an entry and the
 * next context loads it (results still checked against the CPU); damaged,
 * truncated, foreign, forged and garbage entries are silently recompiled
 * and rewritten; an uncreatable directory and GPUMAT_CACHE=off mean no
 * cache without any failure; the XDG_CACHE_HOME and HOME defaults; two
 * processes filling one cold cache at once.
 *
 * Every test points GPUMAT_CACHE_DIR at its own fresh directory before it
 * creates a context, so no test sees another's entries (or the user's).
 * The operations are tiny adds and transposes: what costs time is PoCL
 * compiling, and only programs whose entries are gone are compiled.
 *
 * The racing processes are this program re-executed (--race-child): an
 * OpenCL implementation cannot be used in a child forked after it started
 * its threads.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gpumat.h"
#include "test_util.h"

#define MSG_SIZE 1024
#define PATH_SIZE 4096
#define HEADER_SIZE 32 /* the entry layout is documented in lib/cache.c */

static char g_root[PATH_SIZE];
static unsigned g_dir_count;
static uint64_t g_stream = 1;

static const char *const g_env_names[] = {"GPUMAT_CACHE",   "GPUMAT_CACHE_DIR",
                                          "XDG_CACHE_HOME", "HOME",
                                          "GPUMAT_PROFILE", "GPUMAT_KERNEL_PARAMS"};
#define ENV_COUNT (sizeof g_env_names / sizeof g_env_names[0])
static tu_saved_env g_saved_env[ENV_COUNT];

/* ---- files ------------------------------------------------------------- */

/* snprintf into a PATH_SIZE buffer; a path that does not fit fails the
 * test instead of being cut short. */
static void pathf(char *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, PATH_SIZE, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && n < PATH_SIZE);
}

/* A new, empty directory for one test (not created: the library must). */
static void fresh_dir(char *out, const char *leaf)
{
    char base[PATH_SIZE];
    pathf(base, "%s/t%u", g_root, ++g_dir_count);
    assert_int_equal(mkdir(base, 0700), 0);
    pathf(out, "%s/%s", base, leaf);
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Counts directory entries: *entries those named "<prefix>-*.bin" (the
 * last one's path goes to `path`), *others whatever is not an entry of any
 * program (a temporary file left behind would be one). */
static void scan_dir(const char *dir_path, const char *prefix, int *entries, int *others,
                     char *path)
{
    *entries = 0;
    *others = 0;
    DIR *dir = opendir(dir_path);
    if (!dir)
        return;
    size_t plen = strlen(prefix);
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        size_t len = strlen(e->d_name);
        if (!strncmp(e->d_name, prefix, plen) && e->d_name[plen] == '-' && len > 4 &&
            !strcmp(e->d_name + len - 4, ".bin")) {
            ++*entries;
            if (path)
                pathf(path, "%s/%s", dir_path, e->d_name);
        } else if (!strchr(e->d_name, '-') || len <= 4 || strcmp(e->d_name + len - 4, ".bin")) {
            ++*others;
        }
    }
    closedir(dir);
}

/* The path of the only entry of `program` in dir; fails the test otherwise. */
static void entry_path(const char *dir, const char *program, char *path)
{
    int entries, others;
    scan_dir(dir, program, &entries, &others, path);
    if (entries != 1)
        fail_msg("%s: expected one '%s' entry, found %d", dir, program, entries);
}

static unsigned char *read_whole(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *data = malloc(n > 0 ? (size_t)n : 1);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return data;
}

static void write_whole(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        fail_msg("cannot write %s: %s", path, strerror(errno));
    assert_int_equal(fwrite(data, 1, size, f), size);
    assert_int_equal(fclose(f), 0);
}

static void use_cache_dir(const char *dir)
{
    unsetenv("GPUMAT_CACHE");
    setenv("GPUMAT_CACHE_DIR", dir, 1);
}

/* ---- operations -------------------------------------------------------- */

/* c = a + b (3 x 5) against the CPU, output poisoned first. */
static int check_add(gpumat_context *ctx, gpumat_dtype dtype, tu_rng *rng, char *msg)
{
    enum { R = 3, C = 5 };
    gpumat_matrix *a = NULL, *b = NULL, *c = NULL;
    double *ha = NULL, *hb = NULL, out[R * C], ref[R * C], scale[R * C];
    int ok = 0;
    gpumat_status s;
    if ((s = tu_random_matrix(ctx, rng, R, C, dtype, &a, &ha)) != GPUMAT_OK ||
        (s = tu_random_matrix(ctx, rng, R, C, dtype, &b, &hb)) != GPUMAT_OK ||
        (s = gpumat_matrix_create(ctx, R, C, dtype, &c)) != GPUMAT_OK ||
        (s = tu_poison(c)) != GPUMAT_OK || (s = gpumat_add(c, a, b)) != GPUMAT_OK ||
        (s = tu_download(c, out)) != GPUMAT_OK) {
        snprintf(msg, MSG_SIZE, "add: %s: %s", gpumat_strerror(s), gpumat_last_error(ctx));
    } else {
        tu_ref_add(ha, hb, ref, scale, R * C);
        ok = tu_compare("add 3x5", R, C, out, ref, scale, tu_add_tolerance(dtype), msg,
                        MSG_SIZE);
    }
    gpumat_matrix_destroy(a);
    gpumat_matrix_destroy(b);
    gpumat_matrix_destroy(c);
    free(ha);
    free(hb);
    return ok;
}

/* t = transpose(a) (4 x 3), exact. */
static int check_transpose(gpumat_context *ctx, tu_rng *rng, char *msg)
{
    enum { R = 4, C = 3 };
    gpumat_matrix *a = NULL, *t = NULL;
    double *ha = NULL, out[R * C], ref[R * C];
    int ok = 0;
    gpumat_status s;
    if ((s = tu_random_matrix(ctx, rng, R, C, GPUMAT_F32, &a, &ha)) != GPUMAT_OK ||
        (s = gpumat_matrix_create(ctx, C, R, GPUMAT_F32, &t)) != GPUMAT_OK ||
        (s = tu_poison(t)) != GPUMAT_OK || (s = gpumat_transpose(t, a)) != GPUMAT_OK ||
        (s = tu_download(t, out)) != GPUMAT_OK) {
        snprintf(msg, MSG_SIZE, "transpose: %s: %s", gpumat_strerror(s),
                 gpumat_last_error(ctx));
    } else {
        tu_ref_transpose(R, C, ha, ref);
        ok = tu_compare("transpose 4x3", C, R, out, ref, NULL, 0.0, msg, MSG_SIZE);
    }
    gpumat_matrix_destroy(a);
    gpumat_matrix_destroy(t);
    free(ha);
    return ok;
}

typedef struct run_result {
    gpumat_build_stats stats;
    int has_fp64;
} run_result;

enum { OP_ADD = 1, OP_TRANSPOSE = 2, OP_ADD_F64 = 4 };

/* A fresh context runs the chosen operations, each checked; the cache must
 * never leave an error behind on the context. */
static run_result run_ops(unsigned ops)
{
    run_result r;
    memset(&r, 0, sizeof r);
    gpumat_context *ctx = NULL;
    gpumat_status s = gpumat_context_create(&ctx, NULL);
    if (s != GPUMAT_OK)
        fail_msg("context_create: %s", gpumat_last_error(NULL));
    tu_rng rng;
    tu_rng_init(&rng, g_stream++);
    char msg[MSG_SIZE] = "";
    r.has_fp64 = tu_has_fp64(ctx);
    int ok = (!(ops & OP_ADD) || check_add(ctx, GPUMAT_F32, &rng, msg)) &&
             (!(ops & OP_TRANSPOSE) || check_transpose(ctx, &rng, msg)) &&
             (!(ops & OP_ADD_F64) || !r.has_fp64 || check_add(ctx, GPUMAT_F64, &rng, msg));
    const char *err = gpumat_last_error(ctx);
    int clean = err[0] == '\0';
    char err_copy[MSG_SIZE];
    snprintf(err_copy, sizeof err_copy, "%s", err);
    assert_int_equal(gpumat_context_build_stats(ctx, &r.stats), GPUMAT_OK);
    gpumat_context_destroy(ctx);
    if (!ok)
        fail_msg("%s", msg);
    if (!clean)
        fail_msg("the context recorded an error: %s", err_copy);
    assert_int_equal(r.stats.programs_built, r.stats.cache_hits + r.stats.cache_misses);
    assert_true(r.stats.build_seconds >= 0.0);
    return r;
}

static void expect_stats(run_result r, unsigned hits, unsigned misses)
{
    if (r.stats.cache_hits != hits || r.stats.cache_misses != misses)
        fail_msg("expected %u hit(s) and %u miss(es), got %u and %u", hits, misses,
                 r.stats.cache_hits, r.stats.cache_misses);
}

/* ---- tests ------------------------------------------------------------- */

static void test_stats_arguments(void **state)
{
    (void)state;
    gpumat_build_stats stats;
    assert_int_equal(gpumat_context_build_stats(NULL, &stats), GPUMAT_ERR_INVALID_ARGUMENT);
    gpumat_context *ctx = NULL;
    assert_int_equal(gpumat_context_create(&ctx, NULL), GPUMAT_OK);
    assert_int_equal(gpumat_context_build_stats(ctx, NULL), GPUMAT_ERR_INVALID_ARGUMENT);
    assert_int_equal(gpumat_context_build_stats(ctx, &stats), GPUMAT_OK);
    /* Programs are built lazily: nothing yet. */
    assert_int_equal(stats.programs_built, 0);
    assert_int_equal(stats.cache_hits + stats.cache_misses, 0);
    assert_true(stats.build_seconds == 0.0);
    gpumat_context_destroy(ctx);
}

/* gpumat_context_kernel_notes: errors name the argument; no program with
 * a device rewrite (none on a CPU device, and none before any build) gives
 * "", written over whatever buf held.  On NVIDIA GPUs (nvidia-gpu) the
 * float GEMM program's PTX passes may be noted once it is built (on sm_90
 * and newer, kept or not), and a short buf takes the note's start. */
static void test_kernel_notes(void **state)
{
    (void)state;
    char buf[64];
    assert_int_equal(gpumat_context_kernel_notes(NULL, buf, sizeof buf),
                     GPUMAT_ERR_INVALID_ARGUMENT);
    gpumat_context *ctx = NULL;
    assert_int_equal(gpumat_context_create(&ctx, NULL), GPUMAT_OK);
    assert_int_equal(gpumat_context_kernel_notes(ctx, NULL, sizeof buf),
                     GPUMAT_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(gpumat_last_error(ctx), "buf is NULL"));
    assert_int_equal(gpumat_context_kernel_notes(ctx, buf, 0), GPUMAT_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(gpumat_last_error(ctx), "size is 0"));
    memset(buf, 'x', sizeof buf);
    assert_int_equal(gpumat_context_kernel_notes(ctx, buf, sizeof buf), GPUMAT_OK);
    assert_string_equal(buf, "");
    /* After a float product: no rewrite applies on other devices. */
    gpumat_matrix *a = NULL, *c = NULL;
    float ones[4] = {1, 2, 3, 4};
    assert_int_equal(gpumat_matrix_create(ctx, 2, 2, GPUMAT_F32, &a), GPUMAT_OK);
    assert_int_equal(gpumat_matrix_create(ctx, 2, 2, GPUMAT_F32, &c), GPUMAT_OK);
    assert_int_equal(gpumat_matrix_upload(a, ones), GPUMAT_OK);
    assert_int_equal(gpumat_multiply(c, a, a), GPUMAT_OK);
    assert_int_equal(gpumat_finish(ctx), GPUMAT_OK);
    memset(buf, 'x', sizeof buf);
    assert_int_equal(gpumat_context_kernel_notes(ctx, buf, sizeof buf), GPUMAT_OK);
    if (strcmp(gpumat_context_profile(ctx), "nvidia-gpu") == 0 && buf[0]) {
        const char *start = "gemm f32: PTX passes ";
        assert_true(strlen(buf) > strlen(start));
        assert_memory_equal(buf, start, strlen(start));
        memset(buf, 'x', sizeof buf);
        assert_int_equal(gpumat_context_kernel_notes(ctx, buf, 5), GPUMAT_OK);
        assert_string_equal(buf, "gemm");
        assert_int_equal(buf[5], 'x');
    } else {
        assert_string_equal(buf, "");
    }
    gpumat_matrix_destroy(a);
    gpumat_matrix_destroy(c);
    gpumat_context_destroy(ctx);
}

static void test_miss_then_hit(void **state)
{
    (void)state;
    char dir[PATH_SIZE], path[PATH_SIZE];
    fresh_dir(dir, "a/b/cache"); /* missing parents too */
    use_cache_dir(dir);

    run_result r = run_ops(OP_ADD);
    expect_stats(r, 0, 1);
    assert_int_equal(r.stats.programs_built, 1);
    assert_true(r.stats.build_seconds > 0.0);

    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
    entry_path(dir, "elementwise", path);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 077, 0); /* private to the user */

    r = run_ops(OP_ADD);
    expect_stats(r, 1, 0);
    assert_true(r.stats.build_seconds >= 0.0);

    /* Another dtype is another program (its -D flags are in the key), while
     * the f32 one is still a hit. */
    r = run_ops(OP_ADD | OP_ADD_F64);
    if (r.has_fp64) {
        expect_stats(r, 1, 1);
        int entries, others;
        scan_dir(dir, "elementwise", &entries, &others, NULL);
        assert_int_equal(entries, 2);
        assert_int_equal(others, 0);
        expect_stats(run_ops(OP_ADD | OP_ADD_F64), 2, 0);
    }
}

/* A program's key holds only the parameters its source reads: changing
 * GEMM parameters must not rebuild the transpose program, while another
 * profile's transpose parameters must. */
static void test_key_holds_what_the_program_reads(void **state)
{
    (void)state;
    char dir[PATH_SIZE];
    fresh_dir(dir, "subset");
    use_cache_dir(dir);
    expect_stats(run_ops(OP_TRANSPOSE), 0, 1);

    /* Valid for every shipped profile (KWG 32 keeps whole pieces of
     * every big float tile, and fits 48 KiB): a GEMM depth and the
     * host-side tile choice, neither of which cl/transpose.cl reads. */
    setenv("GPUMAT_KERNEL_PARAMS", "KWG=32,SMALLPCT=50", 1);
    run_result r = run_ops(OP_TRANSPOSE);
    if (r.stats.cache_hits != 1 || r.stats.cache_misses != 0)
        fail_msg("GEMM parameters changed: expected the transpose program from the cache, got "
                 "%u hit(s) and %u miss(es)", r.stats.cache_hits, r.stats.cache_misses);
    unsetenv("GPUMAT_KERNEL_PARAMS");

    /* generic-gpu's transpose tiles differ from every other profile's. */
    gpumat_context *ctx = NULL;
    assert_int_equal(gpumat_context_create(&ctx, NULL), GPUMAT_OK);
    const char *other = strcmp(gpumat_context_profile(ctx), "generic-gpu") ? "generic-gpu" : "cpu";
    gpumat_context_destroy(ctx);
    setenv("GPUMAT_PROFILE", other, 1);
    r = run_ops(OP_TRANSPOSE);
    if (r.stats.cache_misses != 1)
        fail_msg("GPUMAT_PROFILE=%s: expected the transpose program rebuilt, got %u hit(s) and "
                 "%u miss(es)", other, r.stats.cache_hits, r.stats.cache_misses);
    unsetenv("GPUMAT_PROFILE");
}

/* Warms an entry of elementwise (f32) in a fresh dir and returns its path
 * and contents. */
static unsigned char *warm_entry(char *dir, char *path, size_t *size)
{
    use_cache_dir(dir);
    expect_stats(run_ops(OP_ADD), 0, 1);
    entry_path(dir, "elementwise", path);
    return read_whole(path, size);
}

/* The damaged entry is compiled around, then rewritten so that the next
 * context hits. */
static void expect_recovery(const char *dir, const char *what)
{
    run_result r = run_ops(OP_ADD);
    if (r.stats.cache_hits != 0 || r.stats.cache_misses != 1)
        fail_msg("%s: expected a miss, got %u hit(s) %u miss(es)", what, r.stats.cache_hits,
                 r.stats.cache_misses);
    r = run_ops(OP_ADD);
    if (r.stats.cache_hits != 1)
        fail_msg("%s: the entry was not rewritten (no hit afterwards)", what);
    int entries, others;
    scan_dir(dir, "elementwise", &entries, &others, NULL);
    assert_int_equal(entries, 1);
    assert_int_equal(others, 0);
}

static void test_corrupted_entry(void **state)
{
    (void)state;
    char dir[PATH_SIZE], path[PATH_SIZE];
    fresh_dir(dir, "cache");
    size_t size;
    unsigned char *good = warm_entry(dir, path, &size);
    assert_true(size > HEADER_SIZE + 64);

    /* The magic, the version, both lengths, the checksum, the key, the
     * middle of the binary and its last byte. */
    const size_t offsets[] = {0, 8, 12, 16, 24, HEADER_SIZE + 3, size / 2, size - 1};
    for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; ++i) {
        unsigned char *bad = malloc(size);
        assert_non_null(bad);
        memcpy(bad, good, size);
        for (size_t j = offsets[i]; j < offsets[i] + 4 && j < size; ++j)
            bad[j] ^= 0x5a;
        write_whole(path, bad, size);
        free(bad);
        char what[64];
        snprintf(what, sizeof what, "bytes flipped at offset %zu of %zu", offsets[i], size);
        expect_recovery(dir, what);
    }
    free(good);
}

static void test_truncated_entry(void **state)
{
    (void)state;
    char dir[PATH_SIZE], path[PATH_SIZE];
    fresh_dir(dir, "cache");
    size_t size;
    unsigned char *good = warm_entry(dir, path, &size);

    const size_t lengths[] = {0, 7, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 10, size / 2,
                              size - 1};
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; ++i) {
        write_whole(path, good, lengths[i]);
        char what[64];
        snprintf(what, sizeof what, "truncated to %zu of %zu bytes", lengths[i], size);
        expect_recovery(dir, what);
    }
    /* One byte too many is as wrong as one too few. */
    unsigned char *longer = malloc(size + 1);
    assert_non_null(longer);
    memcpy(longer, good, size);
    longer[size] = 0;
    write_whole(path, longer, size + 1);
    free(longer);
    expect_recovery(dir, "one byte appended");
    free(good);
}

static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static void test_foreign_entry(void **state)
{
    (void)state;
    char dir[PATH_SIZE], add_path[PATH_SIZE], tr_path[PATH_SIZE];
    fresh_dir(dir, "cache");
    use_cache_dir(dir);
    expect_stats(run_ops(OP_ADD | OP_TRANSPOSE), 0, 2);
    entry_path(dir, "elementwise", add_path);
    entry_path(dir, "transpose", tr_path);

    /* A whole, valid entry of another program under the add's name. */
    size_t size;
    unsigned char *tr = read_whole(tr_path, &size);
    write_whole(add_path, tr, size);
    free(tr);
    run_result r = run_ops(OP_ADD | OP_TRANSPOSE);
    expect_stats(r, 1, 1); /* transpose hit, add rebuilt */
    expect_stats(run_ops(OP_ADD), 1, 0);

    /* A forged entry: a key of the same length that differs in one
     * character (another libgpumat version), with a correct checksum.  Only
     * comparing the whole key can reject it. */
    unsigned char *e = read_whole(add_path, &size);
    uint32_t key_len = (uint32_t)e[12] | (uint32_t)e[13] << 8 | (uint32_t)e[14] << 16 |
                       (uint32_t)e[15] << 24;
    assert_true(HEADER_SIZE + (size_t)key_len < size);
    const char *needle = "libgpumat: ";
    unsigned char *key = e + HEADER_SIZE, *at = NULL;
    for (size_t i = 0; i + strlen(needle) < key_len; ++i)
        if (!memcmp(key + i, needle, strlen(needle)))
            at = key + i + strlen(needle);
    assert_non_null(at);
    *at = *at == '9' ? '8' : '9';
    uint64_t sum = fnv1a(0xcbf29ce484222325ull, e, 24);
    sum = fnv1a(sum, e + HEADER_SIZE, size - HEADER_SIZE);
    for (int i = 0; i < 8; ++i)
        e[24 + i] = (unsigned char)(sum >> (8 * i));
    write_whole(add_path, e, size);
    free(e);
    expect_recovery(dir, "forged key");
}

static void test_garbage_file(void **state)
{
    (void)state;
    char dir[PATH_SIZE], path[PATH_SIZE];
    fresh_dir(dir, "cache");
    size_t size;
    unsigned char *good = warm_entry(dir, path, &size);
    free(good);

    tu_rng rng;
    tu_rng_init(&rng, g_stream++);
    unsigned char junk[4096];
    for (size_t i = 0; i < sizeof junk; ++i)
        junk[i] = (unsigned char)tu_rng_next(&rng);
    write_whole(path, junk, sizeof junk);
    expect_recovery(dir, "random bytes");

    /* The right magic, then garbage (lengths that claim far too much). */
    memcpy(junk, "GPUMATKC", 8);
    memset(junk + 8, 0xff, 24);
    write_whole(path, junk, sizeof junk);
    expect_recovery(dir, "magic followed by garbage");

    /* A directory where the entry should be: cannot be read nor replaced,
     * and still nothing fails. */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(mkdir(path, 0700), 0);
    expect_stats(run_ops(OP_ADD), 0, 1);
    expect_stats(run_ops(OP_ADD), 0, 1);
    int entries, others;
    scan_dir(dir, "elementwise", &entries, &others, NULL);
    assert_int_equal(entries, 1);
    assert_int_equal(others, 0); /* no temporary file left behind */
}

static void test_unusable_dir(void **state)
{
    (void)state;
    /* Below a regular file: no one, root included, can create it. */
    char base[PATH_SIZE], file[PATH_SIZE], dir[PATH_SIZE];
    fresh_dir(base, "");
    pathf(file, "%sfile", base);
    write_whole(file, "x", 1);
    pathf(dir, "%s/sub/cache", file);
    use_cache_dir(dir);
    expect_stats(run_ops(OP_ADD), 0, 1);
    expect_stats(run_ops(OP_ADD | OP_TRANSPOSE), 0, 2);

    /* The cache directory is itself a regular file. */
    use_cache_dir(file);
    expect_stats(run_ops(OP_ADD), 0, 1);
    size_t size;
    unsigned char *data = read_whole(file, &size);
    assert_int_equal(size, 1);
    free(data);

    /* A read-only directory (meaningful only where permissions bind). */
    if (geteuid() != 0) {
        char ro[PATH_SIZE];
        pathf(ro, "%sro", base);
        assert_int_equal(mkdir(ro, 0500), 0);
        use_cache_dir(ro);
        expect_stats(run_ops(OP_ADD), 0, 1);
        int entries, others;
        scan_dir(ro, "elementwise", &entries, &others, NULL);
        assert_int_equal(entries + others, 0);
    }
}

static void test_cache_off(void **state)
{
    (void)state;
    const char *const values[] = {"off", "0", "no", "FALSE", "Off"};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; ++i) {
        char dir[PATH_SIZE];
        fresh_dir(dir, "cache");
        use_cache_dir(dir);
        setenv("GPUMAT_CACHE", values[i], 1);
        expect_stats(run_ops(OP_ADD), 0, 1);
        if (exists(dir))
            fail_msg("GPUMAT_CACHE=%s created %s", values[i], dir);
    }

    /* Off also means a warm entry is not read. */
    char dir[PATH_SIZE], path[PATH_SIZE];
    fresh_dir(dir, "cache");
    size_t size;
    free(warm_entry(dir, path, &size));
    setenv("GPUMAT_CACHE", "off", 1);
    expect_stats(run_ops(OP_ADD), 0, 1);
    /* Any other value leaves it on. */
    setenv("GPUMAT_CACHE", "on", 1);
    expect_stats(run_ops(OP_ADD), 1, 0);
    unsetenv("GPUMAT_CACHE");
}

static void test_default_dirs(void **state)
{
    (void)state;
    char base[PATH_SIZE], xdg[PATH_SIZE], home[PATH_SIZE], dir[PATH_SIZE];
    fresh_dir(base, "");
    unsetenv("GPUMAT_CACHE");
    unsetenv("GPUMAT_CACHE_DIR");

    pathf(xdg, "%sxdg", base);
    pathf(home, "%shome", base);
    setenv("XDG_CACHE_HOME", xdg, 1);
    setenv("HOME", home, 1);
    expect_stats(run_ops(OP_ADD), 0, 1);
    pathf(dir, "%s/gpumat", xdg);
    char path[PATH_SIZE];
    entry_path(dir, "elementwise", path);
    assert_false(exists(home));
    expect_stats(run_ops(OP_ADD), 1, 0);

    /* A relative XDG_CACHE_HOME is ignored, as the XDG spec says. */
    setenv("XDG_CACHE_HOME", "relative/cache", 1);
    expect_stats(run_ops(OP_ADD), 0, 1);
    pathf(dir, "%s/.cache/gpumat", home);
    entry_path(dir, "elementwise", path);
    assert_false(exists("relative"));

    unsetenv("XDG_CACHE_HOME");
    expect_stats(run_ops(OP_ADD), 1, 0);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);

    /* GPUMAT_CACHE_DIR wins over both. */
    char own[PATH_SIZE];
    pathf(own, "%sown", base);
    setenv("XDG_CACHE_HOME", xdg, 1);
    setenv("GPUMAT_CACHE_DIR", own, 1);
    expect_stats(run_ops(OP_ADD), 0, 1);
    entry_path(own, "elementwise", path);
}

/* The child of test_two_processes: waits until the parent releases both
 * children at once, then builds into the shared cold cache. */
static int race_child(int fd)
{
    char c;
    while (read(fd, &c, 1) > 0)
        ;
    close(fd);
    gpumat_context *ctx = NULL;
    if (gpumat_context_create(&ctx, NULL) != GPUMAT_OK) {
        fprintf(stderr, "race child: context_create: %s\n", gpumat_last_error(NULL));
        return 1;
    }
    tu_rng rng;
    tu_rng_init(&rng, (uint64_t)getpid());
    char msg[MSG_SIZE] = "";
    int ok = check_add(ctx, GPUMAT_F32, &rng, msg) && check_transpose(ctx, &rng, msg);
    gpumat_build_stats stats;
    gpumat_context_build_stats(ctx, &stats);
    gpumat_context_destroy(ctx);
    if (!ok) {
        fprintf(stderr, "race child: %s\n", msg);
        return 1;
    }
    if (stats.programs_built != 2) {
        fprintf(stderr, "race child: built %u programs, expected 2\n", stats.programs_built);
        return 1;
    }
    return 0;
}

static void test_two_processes(void **state)
{
    (void)state;
    char dir[PATH_SIZE];
    fresh_dir(dir, "cache");
    use_cache_dir(dir);

    int fds[2];
    assert_int_equal(pipe(fds), 0);
    /* Everything the children need exists before fork(): between fork and
     * exec only async-signal-safe calls are allowed. */
    char fd_arg[16], seed_arg[32];
    snprintf(fd_arg, sizeof fd_arg, "%d", fds[0]);
    snprintf(seed_arg, sizeof seed_arg, "%" PRIu64, tu_seed());
    char *const argv[] = {"test_cache", "--race-child", fd_arg, seed_arg, NULL};
    pid_t pids[2];
    for (int i = 0; i < 2; ++i) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            close(fds[1]);
            execv("/proc/self/exe", argv);
            _exit(127);
        }
    }
    close(fds[0]);
    close(fds[1]); /* both children start now */
    for (int i = 0; i < 2; ++i) {
        int status = 0;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fail_msg("race child %d failed (wait status 0x%x)", i, (unsigned)status);
    }
    int entries, others;
    scan_dir(dir, "elementwise", &entries, &others, NULL);
    assert_int_equal(entries, 1);
    scan_dir(dir, "transpose", &entries, &others, NULL);
    assert_int_equal(entries, 1);
    assert_int_equal(others, 0); /* no temporary file left behind */
    expect_stats(run_ops(OP_ADD | OP_TRANSPOSE), 2, 0);
}

/* ---- main -------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    for (size_t i = 0; i < ENV_COUNT; ++i)
        tu_env_save(&g_saved_env[i], g_env_names[i]);
    return tu_scratch_dir(g_root, sizeof g_root, "gpumat-test-cache");
}

static int group_teardown(void **state)
{
    (void)state;
    tu_remove_tree(g_root);
    for (size_t i = 0; i < ENV_COUNT; ++i)
        tu_env_restore(&g_saved_env[i]);
    return 0;
}

/* Each test starts from the user's environment (tests change HOME etc.). */
static int test_setup(void **state)
{
    (void)state;
    for (size_t i = 0; i < ENV_COUNT; ++i) {
        if (g_saved_env[i].value)
            setenv(g_env_names[i], g_saved_env[i].value, 1);
        else
            unsetenv(g_env_names[i]);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "--race-child")) {
        setenv("GPUMAT_TEST_SEED", argv[3], 1);
        tu_init("test_cache (race child)");
        return race_child(atoi(argv[2]));
    }
    tu_init("test_cache");

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_stats_arguments, test_setup),
        cmocka_unit_test_setup(test_kernel_notes, test_setup),
        cmocka_unit_test_setup(test_miss_then_hit, test_setup),
        cmocka_unit_test_setup(test_key_holds_what_the_program_reads, test_setup),
        cmocka_unit_test_setup(test_corrupted_entry, test_setup),
        cmocka_unit_test_setup(test_truncated_entry, test_setup),
        cmocka_unit_test_setup(test_foreign_entry, test_setup),
        cmocka_unit_test_setup(test_garbage_file, test_setup),
        cmocka_unit_test_setup(test_unusable_dir, test_setup),
        cmocka_unit_test_setup(test_cache_off, test_setup),
        cmocka_unit_test_setup(test_default_dirs, test_setup),
        cmocka_unit_test_setup(test_two_processes, test_setup),
    };
    return cmocka_run_group_tests_name("kernel cache", tests, group_setup, group_teardown);
}
