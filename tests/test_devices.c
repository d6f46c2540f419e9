/*
 * test_devices.c - device enumeration and choice: gpumat_device_list,
 * gpumat_device_choose, the GPUMAT_DEVICE / GPUMAT_PLATFORM environment
 * overrides (by index and by case-insensitive name substring), options
 * overriding the environment, bad values, and what a context reports about
 * its device (info, profile, build options, OpenCL objects).
 *
 * The Makefile also runs this program with POCL_DEVICES="pthread pthread";
 * the two-device tests run when gpumat_device_list reports at least two
 * devices and skip otherwise.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpumat.h"
#include "test_util.h"

#define MSG_SIZE 1024
#define NOT_NULL_SENTINEL ((void *)(uintptr_t)0x1)

static gpumat_device_info *g_devs;
static size_t g_count;
static tu_rng g_rng;

static int group_setup(void **state)
{
    (void)state;
    unsetenv("GPUMAT_DEVICE");
    unsetenv("GPUMAT_PLATFORM");
    size_t count = 0;
    gpumat_status s = gpumat_device_list(NULL, 0, &count);
    if (s != GPUMAT_OK || count == 0) {
        print_error("gpumat_device_list: %d, count %zu: %s\n", (int)s, count,
                    gpumat_last_error(NULL));
        return -1;
    }
    g_devs = calloc(count, sizeof *g_devs);
    if (!g_devs)
        return -1;
    size_t count2 = 0;
    s = gpumat_device_list(g_devs, count, &count2);
    if (s != GPUMAT_OK || count2 != count) {
        print_error("gpumat_device_list(full): %d, count %zu then %zu\n", (int)s, count,
                    count2);
        return -1;
    }
    g_count = count;
    print_message("%zu device(s):\n", g_count);
    for (size_t i = 0; i < g_count; ++i)
        print_message("  [%zu] platform %u \"%s\", device %u \"%s\" (%s, %s)\n", i,
                      g_devs[i].platform_index, g_devs[i].platform_name,
                      g_devs[i].device_index, g_devs[i].name,
                      gpumat_device_type_name(g_devs[i].type),
                      gpumat_vendor_name(g_devs[i].vendor));
    tu_rng_init(&g_rng, 3);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    free(g_devs);
    g_devs = NULL;
    unsetenv("GPUMAT_DEVICE");
    unsetenv("GPUMAT_PLATFORM");
    return 0;
}

/* Every test starts and ends without the variables. */
static int clear_env(void **state)
{
    (void)state;
    unsetenv("GPUMAT_DEVICE");
    unsetenv("GPUMAT_PLATFORM");
    return 0;
}

static int nul_terminated(const char *s, size_t size) { return memchr(s, '\0', size) != NULL; }

static int is_pocl(const gpumat_device_info *d)
{
    return tu_contains_ci(d->platform_name, "Portable Computing Language") ||
           tu_contains_ci(d->platform_name, "pocl");
}

/* Creates a context with the given choices; fails the test if that fails. */
static gpumat_context *create(const char *platform, const char *device,
                              gpumat_device_type type, const char *what)
{
    gpumat_options opt;
    gpumat_options_init(&opt);
    opt.platform = platform;
    opt.device = device;
    opt.device_type = type;
    gpumat_context *ctx = NOT_NULL_SENTINEL;
    gpumat_status s = gpumat_context_create(&ctx, &opt);
    if (s != GPUMAT_OK)
        fail_msg("%s: context_create -> %d (%s): %s", what, (int)s, gpumat_strerror(s),
                 gpumat_last_error(NULL));
    assert_non_null(ctx);
    return ctx;
}

static gpumat_device_info context_info(const gpumat_context *ctx)
{
    gpumat_device_info info;
    memset(&info, 0, sizeof info);
    TU_CHECK_OK(gpumat_context_device(ctx, &info));
    return info;
}

/* The context's device is list entry `index`. */
static void expect_device(gpumat_context *ctx, size_t index, const char *what)
{
    gpumat_device_info info = context_info(ctx);
    const gpumat_device_info *want = &g_devs[index];
    if (info.platform_index != want->platform_index || info.device_index != want->device_index)
        fail_msg("%s: context on platform %u device %u (\"%s\"), expected list entry %zu: "
                 "platform %u device %u (\"%s\")",
                 what, info.platform_index, info.device_index, info.name, index,
                 want->platform_index, want->device_index, want->name);
    assert_string_equal(info.name, want->name);
    assert_string_equal(info.platform_name, want->platform_name);
}

/* The list entry of (platform, device), or fail. */
static size_t list_index(unsigned platform, unsigned device)
{
    for (size_t i = 0; i < g_count; ++i)
        if (g_devs[i].platform_index == platform && g_devs[i].device_index == device)
            return i;
    fail_msg("no list entry for platform %u device %u", platform, device);
    return 0;
}

static unsigned platform_count(void) { return g_devs[g_count - 1].platform_index + 1; }

/* The first list entry of a platform. */
static size_t first_of_platform(unsigned platform) { return list_index(platform, 0); }

/* ---- gpumat_device_list ------------------------------------------------------ */

static void test_list_count_query(void **state)
{
    (void)state;
    size_t count = 987654;
    TU_CHECK_OK(gpumat_device_list(NULL, 0, &count));
    assert_int_equal(count, g_count);
    assert_true(count >= 1);
    /* capacity 0 with a real array: nothing written. */
    gpumat_device_info probe;
    memset(&probe, 0xCD, sizeof probe);
    gpumat_device_info untouched;
    memset(&untouched, 0xCD, sizeof untouched);
    count = 0;
    TU_CHECK_OK(gpumat_device_list(&probe, 0, &count));
    assert_int_equal(count, g_count);
    assert_memory_equal(&probe, &untouched, sizeof probe);
}

static void test_list_entries(void **state)
{
    (void)state;
    /* Two spare entries past the end must stay untouched. */
    size_t cap = g_count + 2;
    gpumat_device_info *d = malloc(cap * sizeof *d);
    assert_non_null(d);
    memset(d, 0xCD, cap * sizeof *d);
    gpumat_device_info pattern;
    memset(&pattern, 0xCD, sizeof pattern);
    size_t count = 0;
    TU_CHECK_OK(gpumat_device_list(d, cap, &count));
    assert_int_equal(count, g_count);
    assert_memory_equal(&d[g_count], &pattern, sizeof pattern);
    assert_memory_equal(&d[g_count + 1], &pattern, sizeof pattern);

    for (size_t i = 0; i < count; ++i) {
        const gpumat_device_info *e = &d[i];
        assert_true(nul_terminated(e->name, sizeof e->name));
        assert_true(nul_terminated(e->platform_name, sizeof e->platform_name));
        assert_true(nul_terminated(e->vendor_name, sizeof e->vendor_name));
        assert_true(nul_terminated(e->driver_version, sizeof e->driver_version));
        assert_true(nul_terminated(e->opencl_version, sizeof e->opencl_version));
        if (!e->name[0] || !e->platform_name[0])
            fail_msg("device %zu has an empty name or platform name", i);
        if (strncmp(e->opencl_version, "OpenCL ", 7) != 0)
            fail_msg("device %zu: opencl_version \"%s\" is not CL_DEVICE_VERSION", i,
                     e->opencl_version);
        assert_true(e->type >= GPUMAT_DEVICE_GPU && e->type <= GPUMAT_DEVICE_OTHER);
        assert_true(e->vendor >= GPUMAT_VENDOR_OTHER && e->vendor <= GPUMAT_VENDOR_INTEL);
        assert_true(e->compute_units >= 1);
        assert_true(e->global_memory_bytes > 0);
        assert_true(e->max_work_group_size >= 1);
        assert_true(e->has_fp64 == 0 || e->has_fp64 == 1);
        /* Numbering: platforms from 0 without gaps, devices from 0 within each. */
        if (i == 0) {
            assert_int_equal(e->platform_index, 0);
            assert_int_equal(e->device_index, 0);
        } else {
            const gpumat_device_info *p = &d[i - 1];
            int same = e->platform_index == p->platform_index &&
                       e->device_index == p->device_index + 1;
            int next = e->platform_index == p->platform_index + 1 && e->device_index == 0;
            if (!same && !next)
                fail_msg("entry %zu is platform %u device %u after platform %u device %u", i,
                         e->platform_index, e->device_index, p->platform_index,
                         p->device_index);
            if (same)
                assert_string_equal(e->platform_name, p->platform_name);
        }
        if (is_pocl(e) && e->type != GPUMAT_DEVICE_CPU)
            fail_msg("PoCL device %zu \"%s\" has type %s, expected CPU", i, e->name,
                     gpumat_device_type_name(e->type));
        /* The same as in the first listing. */
        assert_string_equal(e->name, g_devs[i].name);
    }
    free(d);
}

static void test_list_partial(void **state)
{
    (void)state;
    gpumat_device_info d[2];
    memset(d, 0xCD, sizeof d);
    gpumat_device_info pattern;
    memset(&pattern, 0xCD, sizeof pattern);
    size_t count = 0;
    TU_CHECK_OK(gpumat_device_list(d, 1, &count));
    assert_int_equal(count, g_count); /* the total, not the number written */
    assert_string_equal(d[0].name, g_devs[0].name);
    assert_int_equal(d[0].platform_index, g_devs[0].platform_index);
    assert_int_equal(d[0].device_index, g_devs[0].device_index);
    assert_memory_equal(&d[1], &pattern, sizeof pattern);
}

static void test_type_and_vendor_names(void **state)
{
    (void)state;
    assert_string_equal(gpumat_device_type_name(GPUMAT_DEVICE_GPU), "GPU");
    assert_string_equal(gpumat_device_type_name(GPUMAT_DEVICE_CPU), "CPU");
    const char *acc = gpumat_device_type_name(GPUMAT_DEVICE_ACCELERATOR);
    const char *other = gpumat_device_type_name(GPUMAT_DEVICE_OTHER);
    assert_non_null(acc);
    assert_non_null(other);
    assert_true(acc[0] && other[0]);
    assert_string_not_equal(acc, other);
    assert_string_not_equal(acc, "GPU");
    assert_string_not_equal(other, "CPU");
    assert_string_equal(gpumat_vendor_name(GPUMAT_VENDOR_NVIDIA), "NVIDIA");
    assert_string_equal(gpumat_vendor_name(GPUMAT_VENDOR_AMD), "AMD");
    assert_string_equal(gpumat_vendor_name(GPUMAT_VENDOR_INTEL), "Intel");
    assert_string_equal(gpumat_vendor_name(GPUMAT_VENDOR_OTHER), "other");
}

/* ---- automatic choice ----------------------------------------------------------- */

static int type_rank(gpumat_device_type t)
{
    switch (t) {
    case GPUMAT_DEVICE_GPU: return 0;
    case GPUMAT_DEVICE_ACCELERATOR: return 1;
    case GPUMAT_DEVICE_CPU: return 2;
    default: return 3;
    }
}

static void test_choose(void **state)
{
    (void)state;
    size_t index = 999999;
    char reason[256];
    memset(reason, 'x', sizeof reason);
    TU_CHECK_OK(gpumat_device_choose(NULL, &index, reason, sizeof reason));
    assert_true(index < g_count);
    assert_true(nul_terminated(reason, sizeof reason));
    assert_true(reason[0] != '\0');
    print_message("chose [%zu] \"%s\": %s\n", index, g_devs[index].name, reason);

    /* No device of a better type exists (GPU > accelerator > CPU). */
    for (size_t i = 0; i < g_count; ++i)
        if (type_rank(g_devs[i].type) < type_rank(g_devs[index].type))
            fail_msg("chose %s device %zu although %s device %zu exists",
                     gpumat_device_type_name(g_devs[index].type), index,
                     gpumat_device_type_name(g_devs[i].type), i);

    /* The same with default options, without a reason, and with a short one. */
    gpumat_options opt;
    gpumat_options_init(&opt);
    size_t index2 = 999999;
    TU_CHECK_OK(gpumat_device_choose(&opt, &index2, NULL, 0));
    assert_int_equal(index2, index);
    char shortr[8];
    memset(shortr, 'x', sizeof shortr);
    TU_CHECK_OK(gpumat_device_choose(NULL, &index2, shortr, sizeof shortr));
    assert_int_equal(index2, index);
    assert_true(nul_terminated(shortr, sizeof shortr));
    assert_true(strlen(shortr) < sizeof shortr);
    assert_memory_equal(shortr, reason, strlen(shortr));

    /* context_create(NULL) takes exactly that device. */
    gpumat_context *ctx = NOT_NULL_SENTINEL;
    TU_CHECK_OK(gpumat_context_create(&ctx, NULL));
    expect_device(ctx, index, "context_create(NULL)");
    gpumat_context_destroy(ctx);
}

/* ---- what a context reports ------------------------------------------------------- */

static void test_context_reports(void **state)
{
    (void)state;
    gpumat_context *ctx = create(NULL, NULL, 0, "default context");
    gpumat_device_info info = context_info(ctx);
    assert_true(info.name[0] != '\0');

    const char *profile = gpumat_context_profile(ctx);
    assert_non_null(profile);
    static const char *known[] = {"nvidia-gpu", "amd-gpu", "intel-gpu", "generic-gpu", "cpu",
                                  "cpu-avx512"};
    int found = 0;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; ++i)
        found |= strcmp(profile, known[i]) == 0;
    if (!found)
        fail_msg("unknown profile \"%s\"", profile);
    /* CPUs get the CPU kernels, 16 floats wide where PoCL names AVX-512
     * (by more names than this one: tests/test_profile.c). */
    if (info.type == GPUMAT_DEVICE_CPU)
        assert_true(strncmp(profile, "cpu", 3) == 0);
    if (info.type == GPUMAT_DEVICE_CPU && strstr(info.name, "avx512"))
        assert_string_equal(profile, "cpu-avx512");
    if (info.type == GPUMAT_DEVICE_GPU)
        assert_true(strncmp(profile, "cpu", 3) != 0);

    const char *opts = gpumat_context_build_options(ctx);
    assert_non_null(opts);
    assert_true(opts[0] != '\0');
    print_message("profile \"%s\", build options \"%s\"\n", profile, opts);

    gpumat_gemm_backend be = gpumat_context_gemm_backend(ctx);
    assert_true(be == GPUMAT_GEMM_AUTO || be == GPUMAT_GEMM_NATIVE || be == GPUMAT_GEMM_CLBLAST);

    /* The OpenCL objects: an in-order queue on the reported device. */
    cl_context clctx = gpumat_context_cl_context(ctx);
    cl_command_queue q = gpumat_context_cl_queue(ctx);
    assert_non_null(clctx);
    assert_non_null(q);
    cl_context qctx = NULL;
    assert_int_equal(clGetCommandQueueInfo(q, CL_QUEUE_CONTEXT, sizeof qctx, &qctx, NULL),
                     CL_SUCCESS);
    assert_ptr_equal(qctx, clctx);
    cl_command_queue_properties props = 0;
    assert_int_equal(
        clGetCommandQueueInfo(q, CL_QUEUE_PROPERTIES, sizeof props, &props, NULL), CL_SUCCESS);
    assert_true((props & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE) == 0);
    cl_device_id dev = NULL;
    assert_int_equal(clGetCommandQueueInfo(q, CL_QUEUE_DEVICE, sizeof dev, &dev, NULL),
                     CL_SUCCESS);
    char dname[256] = "";
    assert_int_equal(clGetDeviceInfo(dev, CL_DEVICE_NAME, sizeof dname, dname, NULL),
                     CL_SUCCESS);
    /* The info's name may be truncated to its 128 bytes. */
    assert_memory_equal(info.name, dname, strlen(info.name));

    gpumat_context_destroy(ctx);
}

/* ---- device_type filter --------------------------------------------------------- */

static void test_device_type_filter(void **state)
{
    (void)state;
    static const gpumat_device_type types[] = {GPUMAT_DEVICE_GPU, GPUMAT_DEVICE_ACCELERATOR,
                                               GPUMAT_DEVICE_CPU};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; ++t) {
        int present = 0;
        for (size_t i = 0; i < g_count; ++i)
            present |= g_devs[i].type == types[t];
        gpumat_options opt;
        gpumat_options_init(&opt);
        opt.device_type = types[t];
        gpumat_context *ctx = NOT_NULL_SENTINEL;
        gpumat_status s = gpumat_context_create(&ctx, &opt);
        if (present) {
            if (s != GPUMAT_OK)
                fail_msg("device_type %s: %d: %s", gpumat_device_type_name(types[t]), (int)s,
                         gpumat_last_error(NULL));
            assert_int_equal(context_info(ctx).type, types[t]);
            gpumat_context_destroy(ctx);
        } else {
            if (s != GPUMAT_ERR_NO_DEVICE)
                fail_msg("device_type %s (none present): %d (%s), expected NO_DEVICE",
                         gpumat_device_type_name(types[t]), (int)s, gpumat_strerror(s));
            assert_null(ctx);
            size_t index;
            assert_int_equal(gpumat_device_choose(&opt, &index, NULL, 0),
                             GPUMAT_ERR_NO_DEVICE);
        }
    }
}

/* ---- environment overrides --------------------------------------------------------- */

/* The same text with every letter's case flipped. */
static void flip_case(const char *in, char *out, size_t size)
{
    size_t i = 0;
    for (; in[i] && i + 1 < size; ++i) {
        char c = in[i];
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        else if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        out[i] = c;
    }
    out[i] = '\0';
}

/* A case-flipped piece of `name` without surrounding blanks: the middle
 * part if it is long enough, else all of it. */
static void name_piece(const char *name, char *out, size_t size)
{
    char piece[128];
    size_t n = strlen(name);
    size_t start = n > 8 ? 2 : 0, len = n > 8 ? n - 4 : n;
    if (len >= sizeof piece)
        len = sizeof piece - 1;
    memcpy(piece, name + start, len);
    piece[len] = '\0';
    /* Trim blanks: PoCL device names may contain several spaces. */
    char *p = piece;
    while (*p == ' ')
        ++p;
    size_t l = strlen(p);
    while (l > 0 && p[l - 1] == ' ')
        p[--l] = '\0';
    flip_case(p, out, size);
}

static void test_env_device_index(void **state)
{
    (void)state;
    for (size_t i = 0; i < g_count && i < 3; ++i) {
        char v[32], what[96];
        snprintf(v, sizeof v, "%zu", i);
        setenv("GPUMAT_DEVICE", v, 1);
        snprintf(what, sizeof what, "GPUMAT_DEVICE=%s", v);
        size_t index = 999;
        TU_CHECK_OK(gpumat_device_choose(NULL, &index, NULL, 0));
        assert_int_equal(index, i);
        gpumat_context *ctx = create(NULL, NULL, 0, what);
        expect_device(ctx, i, what);
        gpumat_context_destroy(ctx);
    }
    unsetenv("GPUMAT_DEVICE");
}

static void test_env_device_name(void **state)
{
    (void)state;
    /* Each distinct name (at most 3), as a case-flipped substring. */
    for (size_t i = 0; i < g_count && i < 3; ++i) {
        char piece[128], what[200];
        name_piece(g_devs[i].name, piece, sizeof piece);
        setenv("GPUMAT_DEVICE", piece, 1);
        snprintf(what, sizeof what, "GPUMAT_DEVICE=\"%s\"", piece);
        gpumat_context *ctx = create(NULL, NULL, 0, what);
        gpumat_device_info info = context_info(ctx);
        gpumat_context_destroy(ctx);
        if (!tu_contains_ci(info.name, piece))
            fail_msg("%s chose \"%s\"", what, info.name);
        /* Where the name is unique, that very device. */
        int unique = 1;
        for (size_t j = 0; j < g_count; ++j)
            if (j != i && tu_contains_ci(g_devs[j].name, piece))
                unique = 0;
        if (unique && (info.platform_index != g_devs[i].platform_index ||
                       info.device_index != g_devs[i].device_index))
            fail_msg("%s chose platform %u device %u, expected %u/%u", what,
                     info.platform_index, info.device_index, g_devs[i].platform_index,
                     g_devs[i].device_index);
    }
    unsetenv("GPUMAT_DEVICE");
}

static void test_env_platform(void **state)
{
    (void)state;
    unsigned np = platform_count();
    for (unsigned p = 0; p < np && p < 3; ++p) {
        size_t first = first_of_platform(p);
        char v[32], what[200];
        /* by index */
        snprintf(v, sizeof v, "%u", p);
        setenv("GPUMAT_PLATFORM", v, 1);
        snprintf(what, sizeof what, "GPUMAT_PLATFORM=%s", v);
        gpumat_context *ctx = create(NULL, NULL, 0, what);
        gpumat_device_info info = context_info(ctx);
        gpumat_context_destroy(ctx);
        if (info.platform_index != p)
            fail_msg("%s chose platform %u", what, info.platform_index);
        size_t index = 999;
        TU_CHECK_OK(gpumat_device_choose(NULL, &index, NULL, 0));
        assert_int_equal(g_devs[index].platform_index, p);

        /* with a device index counted within the platform */
        setenv("GPUMAT_DEVICE", "0", 1);
        ctx = create(NULL, NULL, 0, "GPUMAT_PLATFORM=p, GPUMAT_DEVICE=0");
        expect_device(ctx, first, "GPUMAT_PLATFORM=p, GPUMAT_DEVICE=0");
        gpumat_context_destroy(ctx);
        unsetenv("GPUMAT_DEVICE");

        /* by case-flipped name substring */
        char piece[128];
        name_piece(g_devs[first].platform_name, piece, sizeof piece);
        setenv("GPUMAT_PLATFORM", piece, 1);
        snprintf(what, sizeof what, "GPUMAT_PLATFORM=\"%s\"", piece);
        ctx = create(NULL, NULL, 0, what);
        info = context_info(ctx);
        gpumat_context_destroy(ctx);
        if (!tu_contains_ci(info.platform_name, piece))
            fail_msg("%s chose platform \"%s\"", what, info.platform_name);
    }
    unsetenv("GPUMAT_PLATFORM");
}

/* ---- options win over the environment --------------------------------------------------- */

static void test_options_override_env(void **state)
{
    (void)state;
    setenv("GPUMAT_DEVICE", "no-such-device-in-env", 1);
    setenv("GPUMAT_PLATFORM", "no-such-platform-in-env", 1);
    gpumat_context *ctx = create("0", "0", 0, "options 0/0 over bad environment");
    expect_device(ctx, 0, "options platform 0 device 0");
    gpumat_context_destroy(ctx);
    gpumat_options opt;
    gpumat_options_init(&opt);
    opt.platform = "0";
    opt.device = "0";
    size_t index = 999;
    TU_CHECK_OK(gpumat_device_choose(&opt, &index, NULL, 0));
    assert_int_equal(index, 0);
    unsetenv("GPUMAT_PLATFORM");

    /* options.device alone (no platform anywhere): counted across platforms. */
    size_t last = g_count - 1;
    char v[32];
    snprintf(v, sizeof v, "%zu", last);
    setenv("GPUMAT_DEVICE", "0", 1);
    ctx = create(NULL, v, 0, "options.device=last over GPUMAT_DEVICE=0");
    expect_device(ctx, last, "options.device=last over GPUMAT_DEVICE=0");
    gpumat_context_destroy(ctx);

    /* options.device by name over an environment index. */
    char piece[128];
    name_piece(g_devs[0].name, piece, sizeof piece);
    setenv("GPUMAT_DEVICE", "99999", 1);
    ctx = create(NULL, piece, 0, "options.device=name over GPUMAT_DEVICE=99999");
    gpumat_device_info info = context_info(ctx);
    gpumat_context_destroy(ctx);
    assert_true(tu_contains_ci(info.name, piece));
    unsetenv("GPUMAT_DEVICE");
}

/* ---- bad values -------------------------------------------------------------------------- */

static void expect_no_device(const char *platform, const char *device, const char *env_platform,
                             const char *env_device, const char *needle)
{
    if (env_platform)
        setenv("GPUMAT_PLATFORM", env_platform, 1);
    else
        unsetenv("GPUMAT_PLATFORM");
    if (env_device)
        setenv("GPUMAT_DEVICE", env_device, 1);
    else
        unsetenv("GPUMAT_DEVICE");
    char what[256];
    snprintf(what, sizeof what, "options platform=%s device=%s, env platform=%s device=%s",
             platform ? platform : "-", device ? device : "-",
             env_platform ? env_platform : "-", env_device ? env_device : "-");
    gpumat_options opt;
    gpumat_options_init(&opt);
    opt.platform = platform;
    opt.device = device;

    gpumat_context *ctx = NOT_NULL_SENTINEL;
    gpumat_status s = gpumat_context_create(&ctx, &opt);
    char msg[MSG_SIZE];
    snprintf(msg, sizeof msg, "%s", gpumat_last_error(NULL));
    if (s == GPUMAT_OK)
        gpumat_context_destroy(ctx);
    if (s != GPUMAT_ERR_NO_DEVICE)
        fail_msg("%s: context_create -> %d (%s), expected GPUMAT_ERR_NO_DEVICE: %s", what,
                 (int)s, gpumat_strerror(s), msg);
    if (ctx != NULL)
        fail_msg("%s: failed context_create left *ctx non-NULL", what);
    if (!strstr(msg, needle))
        fail_msg("%s: message \"%s\" does not name \"%s\"", what, msg, needle);

    size_t index = 12345;
    s = gpumat_device_choose(&opt, &index, NULL, 0);
    snprintf(msg, sizeof msg, "%s", gpumat_last_error(NULL));
    if (s != GPUMAT_ERR_NO_DEVICE)
        fail_msg("%s: device_choose -> %d (%s), expected GPUMAT_ERR_NO_DEVICE", what, (int)s,
                 gpumat_strerror(s));
    if (!strstr(msg, needle))
        fail_msg("%s: device_choose message \"%s\" does not name \"%s\"", what, msg, needle);
    unsetenv("GPUMAT_PLATFORM");
    unsetenv("GPUMAT_DEVICE");
}

static void test_bad_values(void **state)
{
    (void)state;
    char dev_oor[32], plat_oor[32];
    snprintf(dev_oor, sizeof dev_oor, "%zu", g_count + 5);
    snprintf(plat_oor, sizeof plat_oor, "%u", platform_count() + 3);

    expect_no_device(NULL, "no-such-device-xyz", NULL, NULL, "no-such-device-xyz");
    expect_no_device(NULL, dev_oor, NULL, NULL, dev_oor);
    expect_no_device("no-such-platform-xyz", NULL, NULL, NULL, "no-such-platform-xyz");
    expect_no_device(plat_oor, NULL, NULL, NULL, plat_oor);
    expect_no_device(NULL, NULL, NULL, "no-such-device-env", "no-such-device-env");
    expect_no_device(NULL, NULL, NULL, dev_oor, dev_oor);
    expect_no_device(NULL, NULL, "no-such-platform-env", NULL, "no-such-platform-env");
    expect_no_device(NULL, NULL, plat_oor, NULL, plat_oor);
    /* A valid platform with a device index beyond that platform's devices. */
    char within[32];
    unsigned p0_devices = 0;
    for (size_t i = 0; i < g_count; ++i)
        p0_devices += g_devs[i].platform_index == 0;
    snprintf(within, sizeof within, "%u", p0_devices);
    expect_no_device("0", within, NULL, NULL, within);
    /* A good environment does not rescue a bad option. */
    expect_no_device(NULL, "no-such-device-opt", NULL, "0", "no-such-device-opt");

    /* Afterwards everything still works. */
    gpumat_context *ctx = create(NULL, NULL, 0, "after bad values");
    char msg[MSG_SIZE];
    int ok = tu_context_works(ctx, GPUMAT_F32, &g_rng, msg, sizeof msg);
    gpumat_context_destroy(ctx);
    if (!ok)
        fail_msg("%s", msg);
}

/* ---- two devices ----------------------------------------------------------------------- */

static void need_two(void)
{
    if (g_count < 2) {
        print_message("[  SKIPPED ] only %zu device; run with POCL_DEVICES=\"pthread "
                      "pthread\" for the two-device tests\n",
                      g_count);
        skip();
    }
}

static void test_two_devices_env_index(void **state)
{
    (void)state;
    need_two();
    setenv("GPUMAT_DEVICE", "1", 1);
    size_t index = 999;
    TU_CHECK_OK(gpumat_device_choose(NULL, &index, NULL, 0));
    assert_int_equal(index, 1);
    gpumat_context *ctx = create(NULL, NULL, 0, "GPUMAT_DEVICE=1");
    gpumat_device_info info = context_info(ctx);
    gpumat_context_destroy(ctx);
    unsetenv("GPUMAT_DEVICE");
    if (info.platform_index != g_devs[1].platform_index ||
        info.device_index != g_devs[1].device_index)
        fail_msg("GPUMAT_DEVICE=1: platform %u device %u, expected platform %u device %u",
                 info.platform_index, info.device_index, g_devs[1].platform_index,
                 g_devs[1].device_index);
}

static void test_two_devices_compute(void **state)
{
    (void)state;
    need_two();
    gpumat_context *ctx[2];
    for (int i = 0; i < 2; ++i) {
        char v[16], what[64];
        snprintf(v, sizeof v, "%d", i);
        snprintf(what, sizeof what, "options.device=%d", i);
        ctx[i] = create(NULL, v, 0, what);
        expect_device(ctx[i], (size_t)i, what);
    }
    /* Both at work at once: queue on both, then check both. */
    char msg[MSG_SIZE];
    for (int i = 0; i < 2; ++i) {
        if (!tu_context_works(ctx[i], GPUMAT_F32, &g_rng, msg, sizeof msg))
            fail_msg("device %d: %s", i, msg);
        if (tu_has_fp64(ctx[i]) && !tu_context_works(ctx[i], GPUMAT_F64, &g_rng, msg, sizeof msg))
            fail_msg("device %d (f64): %s", i, msg);
    }
    enum { M = 65, K = 127, N = 33 };
    gpumat_matrix *a[2], *b[2], *c[2];
    double *ha[2], *hb[2];
    for (int i = 0; i < 2; ++i) {
        TU_CHECK_OK(tu_random_matrix(ctx[i], &g_rng, M, K, GPUMAT_F32, &a[i], &ha[i]));
        TU_CHECK_OK(tu_random_matrix(ctx[i], &g_rng, K, N, GPUMAT_F32, &b[i], &hb[i]));
        TU_CHECK_OK(gpumat_matrix_create(ctx[i], M, N, GPUMAT_F32, &c[i]));
        TU_CHECK_OK(tu_poison(c[i]));
    }
    for (int i = 0; i < 2; ++i)
        TU_CHECK_OK(gpumat_multiply(c[i], a[i], b[i]));
    /* Operands of the two devices' contexts cannot be mixed. */
    assert_int_equal(gpumat_multiply(c[0], a[0], b[1]), GPUMAT_ERR_CONTEXT_MISMATCH);
    static double out[M * N], ref[M * N], scale[M * N];
    for (int i = 0; i < 2; ++i) {
        TU_CHECK_OK(tu_download(c[i], out));
        tu_ref_gemm(M, K, N, ha[i], hb[i], ref, scale);
        char what[64];
        snprintf(what, sizeof what, "device %d: multiply 65x127x33 f32", i);
        if (!tu_compare(what, M, N, out, ref, scale, tu_gemm_tolerance(GPUMAT_F32, K), msg,
                        sizeof msg))
            fail_msg("%s", msg);
    }
    for (int i = 0; i < 2; ++i) {
        gpumat_matrix_destroy(a[i]);
        gpumat_matrix_destroy(b[i]);
        gpumat_matrix_destroy(c[i]);
        free(ha[i]);
        free(hb[i]);
        gpumat_context_destroy(ctx[i]);
    }
}

int main(void)
{
    tu_init("test_devices");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_list_count_query, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_list_entries, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_list_partial, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_type_and_vendor_names, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_choose, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_context_reports, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_device_type_filter, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_env_device_index, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_env_device_name, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_env_platform, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_options_override_env, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_bad_values, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_two_devices_env_index, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_two_devices_compute, clear_env, clear_env),
    };
    return cmocka_run_group_tests_name("devices", tests, group_setup, group_teardown);
}
