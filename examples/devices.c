/*
 * devices - lists every OpenCL platform and device libgpumat sees and marks
 * with "*" the one it would pick (GPUMAT_PLATFORM / GPUMAT_DEVICE apply).
 *
 *   devices
 */
#include <gpumat.h>

#include <stdio.h>
#include <stdlib.h>

static int fail(gpumat_status status, const char *what)
{
    fprintf(stderr, "devices: %s: %s\n  %s\n", what, gpumat_strerror(status),
            gpumat_last_error(NULL));
    return 1;
}

int main(void)
{
    size_t count = 0;
    gpumat_status status = gpumat_device_list(NULL, 0, &count);
    if (status != GPUMAT_OK)
        return fail(status, "listing devices");
    gpumat_device_info *devs = calloc(count, sizeof *devs);
    if (!devs) {
        fprintf(stderr, "devices: out of host memory\n");
        return 1;
    }
    /* Devices can come and go between the two calls; show no more than
     * the room we made. */
    size_t capacity = count;
    status = gpumat_device_list(devs, capacity, &count);
    if (count > capacity)
        count = capacity;
    size_t chosen = 0;
    char reason[256];
    if (status == GPUMAT_OK)
        status = gpumat_device_choose(NULL, &chosen, reason, sizeof reason);
    if (status != GPUMAT_OK) {
        free(devs);
        return fail(status, "choosing a device");
    }

    unsigned platform = (unsigned)-1;
    for (size_t i = 0; i < count; ++i) {
        const gpumat_device_info *d = &devs[i];
        if (d->platform_index != platform) {
            platform = d->platform_index;
            printf("platform %u: %s\n", platform, d->platform_name);
        }
        printf("%c %zu (device %u): %s\n", i == chosen ? '*' : ' ', i, d->device_index,
               d->name);
        printf("      vendor %s (%s), %s, %u compute units, %u MHz, %llu MiB, fp64 %s\n",
               gpumat_vendor_name(d->vendor), d->vendor_name, gpumat_device_type_name(d->type),
               d->compute_units, d->clock_mhz,
               (unsigned long long)(d->global_memory_bytes >> 20), d->has_fp64 ? "yes" : "no");
        printf("      %s, driver %s\n", d->opencl_version, d->driver_version);
    }
    printf("\n* = libgpumat's choice: %s\n", reason);
    free(devs);
    return 0;
}
