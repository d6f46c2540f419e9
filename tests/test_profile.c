/*
 * test_profile.c - which shipped kernel profile a device gets
 * (gpumat__profile_for, lib/profile.c), on synthetic device descriptions:
 * by type and vendor, and the smallest profile for a device below its
 * class's work-group or local memory limits.  The library can only see one
 * device here (PoCL), so every other class is described, not probed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "gpumat_internal.h"
#include "test_util.h"

/* A device of the given class with ample limits (a current discrete GPU or
 * a multi-core CPU). */
static gpumat_device_info device(gpumat_device_type type, gpumat_vendor vendor, const char *name)
{
    gpumat_device_info d;
    memset(&d, 0, sizeof d);
    snprintf(d.name, sizeof d.name, "%s", name);
    d.type = type;
    d.vendor = vendor;
    d.compute_units = 64;
    d.clock_mhz = 1500;
    d.global_memory_bytes = (uint64_t)16 << 30;
    d.local_memory_bytes = 64 * 1024;
    d.max_work_group_size = 1024;
    d.has_fp64 = 1;
    return d;
}

static const char *profile_of(const gpumat_device_info *d)
{
    const gpumat__profile *p = gpumat__profile_for(d);
    assert_non_null(p);
    return p->name;
}

static void test_by_vendor_and_type(void **state)
{
    (void)state;
    static const struct {
        gpumat_device_type type;
        gpumat_vendor vendor;
        const char *name, *profile;
    } cases[] = {
        {GPUMAT_DEVICE_GPU, GPUMAT_VENDOR_NVIDIA, "NVIDIA H100 80GB HBM3", "nvidia-gpu"},
        {GPUMAT_DEVICE_GPU, GPUMAT_VENDOR_AMD, "gfx90a:sramecc+:xnack-", "amd-gpu"},
        {GPUMAT_DEVICE_GPU, GPUMAT_VENDOR_INTEL, "Intel(R) Data Center GPU Max 1550", "intel-gpu"},
        {GPUMAT_DEVICE_GPU, GPUMAT_VENDOR_OTHER, "Mali-G78", "generic-gpu"},
        {GPUMAT_DEVICE_ACCELERATOR, GPUMAT_VENDOR_OTHER, "some accelerator", "generic-gpu"},
        /* CPUs take the CPU kernels whoever made them or the driver; 16-wide
         * vectors where PoCL's device name says AVX-512. */
        {GPUMAT_DEVICE_CPU, GPUMAT_VENDOR_OTHER, "pthread-znver3", "cpu"},
        {GPUMAT_DEVICE_CPU, GPUMAT_VENDOR_OTHER, "pthread-haswell-AMD EPYC", "cpu"},
        {GPUMAT_DEVICE_CPU, GPUMAT_VENDOR_INTEL, "Intel(R) Xeon(R) Platinum", "cpu"},
        {GPUMAT_DEVICE_CPU, GPUMAT_VENDOR_AMD, "AMD EPYC", "cpu"},
        {GPUMAT_DEVICE_CPU, GPUMAT_VENDOR_OTHER, "pthread-skylake-avx512-AMD EPYC", "cpu-avx512"},
        {GPUMAT_DEVICE_CPU, GPUMAT_VENDOR_OTHER, "cpu-znver4-AMD EPYC 9654", "cpu-avx512"},
        {GPUMAT_DEVICE_CPU, GPUMAT_VENDOR_INTEL, "pthread-sapphirerapids", "cpu-avx512"},
        {GPUMAT_DEVICE_CPU, GPUMAT_VENDOR_INTEL, "pthread-icelake-server", "cpu-avx512"},
        /* A GPU is never given CPU kernels, whatever its name. */
        {GPUMAT_DEVICE_GPU, GPUMAT_VENDOR_OTHER, "avx512 emulator", "generic-gpu"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        gpumat_device_info d = device(cases[i].type, cases[i].vendor, cases[i].name);
        const char *got = profile_of(&d);
        print_message("%-36s -> %s\n", cases[i].name, got);
        assert_string_equal(got, cases[i].profile);
    }
}

/* The vendors' profiles fit the limits their GPUs report (not only the
 * ample ones above): an H100 through NVIDIA's driver (48 KiB of local
 * memory, 1024 work-items), AMD's ROCm (64 KiB, 256), Intel's (64 KiB,
 * 512 on some parts). */
static void test_reported_limits(void **state)
{
    (void)state;
    gpumat_device_info d = device(GPUMAT_DEVICE_GPU, GPUMAT_VENDOR_NVIDIA, "NVIDIA H100 80GB HBM3");
    d.compute_units = 132;
    d.local_memory_bytes = 48 * 1024;
    d.max_work_group_size = 1024;
    assert_string_equal(profile_of(&d), "nvidia-gpu");
    d = device(GPUMAT_DEVICE_GPU, GPUMAT_VENDOR_AMD, "gfx942:sramecc+:xnack-");
    d.local_memory_bytes = 64 * 1024;
    d.max_work_group_size = 256;
    assert_string_equal(profile_of(&d), "amd-gpu");
    d = device(GPUMAT_DEVICE_GPU, GPUMAT_VENDOR_INTEL, "Intel(R) Arc(TM) A770 Graphics");
    d.local_memory_bytes = 64 * 1024;
    d.max_work_group_size = 512;
    assert_string_equal(profile_of(&d), "intel-gpu");
}

/* A GPU whose work-groups or local memory are smaller than its vendor's
 * profile needs gets generic-gpu (64 work-items), which every device that
 * can run OpenCL 1.2 kernels of this size fits. */
static void test_small_devices(void **state)
{
    (void)state;
    gpumat_device_info d = device(GPUMAT_DEVICE_GPU, GPUMAT_VENDOR_NVIDIA, "small");
    d.max_work_group_size = 64;
    assert_string_equal(profile_of(&d), "generic-gpu");
    d = device(GPUMAT_DEVICE_GPU, GPUMAT_VENDOR_NVIDIA, "little local memory");
    d.local_memory_bytes = 16 * 1024;
    assert_string_equal(profile_of(&d), "generic-gpu");
    d = device(GPUMAT_DEVICE_GPU, GPUMAT_VENDOR_AMD, "small");
    d.max_work_group_size = 64;
    assert_string_equal(profile_of(&d), "generic-gpu");
    /* generic-gpu itself fits 64 work-items and 16 KiB. */
    d = device(GPUMAT_DEVICE_GPU, GPUMAT_VENDOR_OTHER, "tiny");
    d.max_work_group_size = 64;
    d.local_memory_bytes = 16 * 1024;
    assert_string_equal(profile_of(&d), "generic-gpu");
}

/* nvidia-gpu on a synthetic H100 with GPUMAT_KERNEL_PARAMS=spec. */
static gpumat__profile nvidia_with(const char *spec)
{
    gpumat_device_info d = device(GPUMAT_DEVICE_GPU, GPUMAT_VENDOR_NVIDIA, "NVIDIA H100");
    tu_saved_env profile, params;
    tu_env_save(&profile, "GPUMAT_PROFILE");
    tu_env_save(&params, "GPUMAT_KERNEL_PARAMS");
    unsetenv("GPUMAT_PROFILE");
    tu_env_set("GPUMAT_KERNEL_PARAMS", spec);
    gpumat__profile p;
    gpumat_status s = gpumat__profile_choose(&d, &p, NULL);
    tu_env_restore(&profile);
    tu_env_restore(&params);
    if (s != GPUMAT_OK)
        fail_msg("GPUMAT_KERNEL_PARAMS=%s: %s", spec ? spec : "(unset)", gpumat_last_error(NULL));
    assert_string_equal(p.name, "nvidia-gpu");
    return p;
}

/* A work-group of another size keeps stream-K's work-items per compute
 * unit (SKG, SKG64 scaled), unless the spec sets the count itself. */
static void test_stream_k_groups_follow_the_work_group(void **state)
{
    (void)state;
    gpumat__profile shipped = nvidia_with(NULL);
    unsigned items = shipped.gemm.mdimc * shipped.gemm.ndimc;
    unsigned items64 = shipped.gemm.mdimc64 * shipped.gemm.ndimc64;
    assert_true(shipped.gemm.skg > 0 && shipped.gemm.skg64 > 0);
    /* Double: 8 x 8 work-items. */
    gpumat__profile p = nvidia_with("MWG64=64,NWG64=64,MDIMC64=8,NDIMC64=8");
    assert_int_equal(p.gemm.skg64, shipped.gemm.skg64 * items64 / 64);
    assert_int_equal(p.gemm.skg, shipped.gemm.skg);
    /* Float: 16 x 16; never below one group. */
    p = nvidia_with("MWG=128,NWG=128,MDIMC=16,NDIMC=16,MSUB=1,NSUB=16");
    unsigned expect = (shipped.gemm.skg * items + 128) / 256;
    assert_int_equal(p.gemm.skg, expect ? expect : 1);
    assert_int_equal(p.gemm.skg64, shipped.gemm.skg64);
    /* Set explicitly: kept. */
    p = nvidia_with("MWG64=64,NWG64=64,MDIMC64=8,NDIMC64=8,SKG64=3");
    assert_int_equal(p.gemm.skg64, 3);
    p = nvidia_with("SKG64=0,MDIMC64=8,NDIMC64=8,MWG64=64,NWG64=64");
    assert_int_equal(p.gemm.skg64, 0);
    /* The same work-group: unchanged. */
    p = nvidia_with("KWG64=16,ASYNC64=0");
    assert_int_equal(p.gemm.skg64, shipped.gemm.skg64);
    /* The split tile's groups (both types) follow its work-group. */
    unsigned items_mid = shipped.gemm.mmdimc * shipped.gemm.mndimc;
    assert_true(shipped.gemm.skgm > 0 && shipped.gemm.skgm64 > 0 && items_mid == 64);
    p = nvidia_with("MMDIMC=8,MNDIMC=16");
    assert_int_equal(p.gemm.skgm, shipped.gemm.skgm * items_mid / 128);
    assert_int_equal(p.gemm.skgm64, shipped.gemm.skgm64 * items_mid / 128);
    assert_int_equal(p.gemm.skg, shipped.gemm.skg);
    p = nvidia_with("MMDIMC=8,MNDIMC=16,SKGM=3");
    assert_int_equal(p.gemm.skgm, 3);
    assert_int_equal(p.gemm.skgm64, shipped.gemm.skgm64 * items_mid / 128);
}

/* Every shipped profile by name, with distinct names. */
static void test_every_profile_listed(void **state)
{
    (void)state;
    size_t n = gpumat__profile_count();
    assert_true(n >= 5);
    for (size_t i = 0; i < n; ++i) {
        assert_non_null(gpumat__profile_at(i));
        for (size_t j = 0; j < i; ++j)
            assert_string_not_equal(gpumat__profile_at(i)->name, gpumat__profile_at(j)->name);
    }
    assert_null(gpumat__profile_at(n));
}

int main(void)
{
    tu_init("test_profile");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_by_vendor_and_type),
        cmocka_unit_test(test_reported_limits),
        cmocka_unit_test(test_small_devices),
        cmocka_unit_test(test_every_profile_listed),
        cmocka_unit_test(test_stream_k_groups_follow_the_work_group),
    };
    return cmocka_run_group_tests_name("profile", tests, NULL, NULL);
}
