/*
 * device.c - OpenCL device discovery, description and choice.
 *
 * Discovery walks every platform the ICD loader knows; description turns the
 * OpenCL queries into a gpumat_device_info without trusting drivers to answer
 * every query; the choice applies the rules documented at struct
 * gpumat_options in gpumat.h.
 */
#include "gpumat_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Not in every cl.h (it comes from cl_ext.h / the ICD extension), but the
 * ICD loader returns it when no vendor file is installed. */
#ifndef CL_PLATFORM_NOT_FOUND_KHR
#define CL_PLATFORM_NOT_FOUND_KHR -1001
#endif

#define NO_PLATFORM_HINT                                                            \
    "install an OpenCL driver (NVIDIA driver, ROCm, intel-opencl-icd) or "          \
    "pocl-opencl-icd for the CPU"

/* ------------------------------------------------------------------------ */
/* Small string helpers                                                     */
/* ------------------------------------------------------------------------ */

static bool contains_nocase(const char *haystack, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *h = haystack; *h; ++h) {
        size_t i = 0;
        while (i < n && h[i] &&
               tolower((unsigned char)h[i]) == tolower((unsigned char)needle[i]))
            ++i;
        if (i == n)
            return true;
    }
    return n == 0;
}

/* Extension lists are space-separated; "cl_khr_fp64" must not match
 * "cl_khr_fp64_something", so compare whole tokens. */
static bool has_word(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; *p;) {
        while (*p && isspace((unsigned char)*p))
            ++p;
        const char *start = p;
        while (*p && !isspace((unsigned char)*p))
            ++p;
        if ((size_t)(p - start) == n && memcmp(start, word, n) == 0)
            return true;
    }
    return false;
}

/* Copies src into dst (size > 0), dropping the surrounding blanks some
 * drivers pad names with, and cutting only at a UTF-8 character boundary so
 * that a truncated name is still valid text. */
static void copy_trimmed(char *dst, size_t size, const char *src)
{
    while (*src && isspace((unsigned char)*src))
        ++src;
    size_t len = strlen(src);
    while (len > 0 && isspace((unsigned char)src[len - 1]))
        --len;
    if (len >= size) {
        len = size - 1;
        while (len > 0 && ((unsigned char)src[len] & 0xC0) == 0x80)
            --len;
    }
    memcpy(dst, src, len);
    dst[len] = '\0';
}

/* Appends formatted text to buf (of size bytes), keeping it NUL-terminated
 * and silently dropping what does not fit: messages are best effort. */
static void append(char *buf, size_t size, const char *fmt, ...) GPUMAT__PRINTF(3, 4);
static void append(char *buf, size_t size, const char *fmt, ...)
{
    size_t used = strlen(buf);
    if (used + 1 >= size)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + used, size - used, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------------ */
/* Queries                                                                  */
/* ------------------------------------------------------------------------ */

/* String queries return malloc'd, NUL-terminated text, or NULL on any
 * failure; drivers have been seen to omit the terminator, so add one. */
static char *platform_string(cl_platform_id platform, cl_platform_info param)
{
    size_t size = 0;
    if (clGetPlatformInfo(platform, param, 0, NULL, &size) != CL_SUCCESS)
        return NULL;
    char *s = calloc(size + 1, 1);
    if (!s)
        return NULL;
    if (clGetPlatformInfo(platform, param, size, s, NULL) != CL_SUCCESS) {
        free(s);
        return NULL;
    }
    return s;
}

/* The string, or NULL with *err (if given) saying why. */
static char *device_string(cl_device_id device, cl_device_info param, cl_int *err)
{
    size_t size = 0;
    cl_int e = clGetDeviceInfo(device, param, 0, NULL, &size);
    char *s = e == CL_SUCCESS ? calloc(size + 1, 1) : NULL;
    if (e == CL_SUCCESS && !s)
        e = CL_OUT_OF_HOST_MEMORY;
    if (s && (e = clGetDeviceInfo(device, param, size, s, NULL)) != CL_SUCCESS) {
        free(s);
        s = NULL;
    }
    if (err)
        *err = e;
    return s;
}

static void device_string_into(cl_device_id device, cl_device_info param, char *dst,
                               size_t size)
{
    char *s = device_string(device, param, NULL);
    if (s) {
        copy_trimmed(dst, size, s);
        free(s);
    }
}

/* A scalar query that leaves *value untouched unless the driver answered
 * with exactly the expected size; the driver's error, or CL_INVALID_VALUE
 * for an answer of another size. */
static cl_int device_scalar(cl_device_id device, cl_device_info param, void *value, size_t size)
{
    unsigned char tmp[sizeof(cl_ulong)];
    size_t got = 0;
    if (size > sizeof tmp)
        return CL_INVALID_VALUE;
    cl_int err = clGetDeviceInfo(device, param, size, tmp, &got);
    if (err == CL_SUCCESS && got != size)
        err = CL_INVALID_VALUE;
    if (err == CL_SUCCESS)
        memcpy(value, tmp, size);
    return err;
}

/* Keeps the first failed query of those that choose the kernels. */
static void note_failure(gpumat__describe_failure *failed, cl_int err, const char *query)
{
    if (failed && err != CL_SUCCESS && failed->err == CL_SUCCESS) {
        failed->err = err;
        failed->query = query;
    }
}

static gpumat_vendor vendor_from_name(const char *vendor_name)
{
    if (contains_nocase(vendor_name, "nvidia"))
        return GPUMAT_VENDOR_NVIDIA;
    if (contains_nocase(vendor_name, "advanced micro") || contains_nocase(vendor_name, "amd"))
        return GPUMAT_VENDOR_AMD;
    if (contains_nocase(vendor_name, "intel"))
        return GPUMAT_VENDOR_INTEL;
    return GPUMAT_VENDOR_OTHER;
}

static gpumat_vendor vendor_of(cl_uint vendor_id, const char *vendor_name, bool is_cpu)
{
    /* PoCL reports 0x8086 (+ device number) for every CPU device, AMD ones
     * included, while its vendor name is the CPUID string ("AuthenticAMD",
     * "GenuineIntel"); for CPUs the name is the better witness. */
    if (is_cpu) {
        gpumat_vendor v = vendor_from_name(vendor_name);
        if (v != GPUMAT_VENDOR_OTHER)
            return v;
    }
    switch (vendor_id) {
    case 0x10DE: return GPUMAT_VENDOR_NVIDIA;
    case 0x1002:
    case 0x1022: return GPUMAT_VENDOR_AMD;
    case 0x8086: return GPUMAT_VENDOR_INTEL;
    default: break;
    }
    /* Some drivers (Apple, ARM, PoCL's other devices) report no PCI id. */
    return vendor_from_name(vendor_name);
}

void gpumat__device_describe(cl_platform_id platform, cl_device_id device,
                             gpumat_device_info *info, gpumat__describe_failure *failed)
{
    memset(info, 0, sizeof *info);
    if (failed) {
        failed->err = CL_SUCCESS;
        failed->query = NULL;
    }

    char *platform_name = platform_string(platform, CL_PLATFORM_NAME);
    if (platform_name) {
        copy_trimmed(info->platform_name, sizeof info->platform_name, platform_name);
        free(platform_name);
    }
    device_string_into(device, CL_DEVICE_NAME, info->name, sizeof info->name);
    device_string_into(device, CL_DEVICE_VENDOR, info->vendor_name, sizeof info->vendor_name);
    device_string_into(device, CL_DRIVER_VERSION, info->driver_version,
                       sizeof info->driver_version);
    device_string_into(device, CL_DEVICE_VERSION, info->opencl_version,
                       sizeof info->opencl_version);

    /* A device whose type cannot be read is still usable; rank it last
     * rather than leave a value that is no gpumat_device_type. */
    cl_device_type type = 0;
    note_failure(failed, device_scalar(device, CL_DEVICE_TYPE, &type, sizeof type),
                 "CL_DEVICE_TYPE");
    if (type & CL_DEVICE_TYPE_GPU)
        info->type = GPUMAT_DEVICE_GPU;
    else if (type & CL_DEVICE_TYPE_ACCELERATOR)
        info->type = GPUMAT_DEVICE_ACCELERATOR;
    else if (type & CL_DEVICE_TYPE_CPU)
        info->type = GPUMAT_DEVICE_CPU;
    else
        info->type = GPUMAT_DEVICE_OTHER;

    cl_uint vendor_id = 0;
    note_failure(failed, device_scalar(device, CL_DEVICE_VENDOR_ID, &vendor_id, sizeof vendor_id),
                 "CL_DEVICE_VENDOR_ID");
    info->vendor = vendor_of(vendor_id, info->vendor_name, info->type == GPUMAT_DEVICE_CPU);

    cl_uint units = 0, clock = 0;
    cl_ulong global = 0, local = 0;
    size_t work_group = 0;
    cl_bool unified = CL_FALSE;
    note_failure(failed, device_scalar(device, CL_DEVICE_MAX_COMPUTE_UNITS, &units, sizeof units),
                 "CL_DEVICE_MAX_COMPUTE_UNITS");
    device_scalar(device, CL_DEVICE_MAX_CLOCK_FREQUENCY, &clock, sizeof clock);
    device_scalar(device, CL_DEVICE_GLOBAL_MEM_SIZE, &global, sizeof global);
    note_failure(failed, device_scalar(device, CL_DEVICE_LOCAL_MEM_SIZE, &local, sizeof local),
                 "CL_DEVICE_LOCAL_MEM_SIZE");
    note_failure(failed,
                 device_scalar(device, CL_DEVICE_MAX_WORK_GROUP_SIZE, &work_group,
                               sizeof work_group),
                 "CL_DEVICE_MAX_WORK_GROUP_SIZE");
    device_scalar(device, CL_DEVICE_HOST_UNIFIED_MEMORY, &unified, sizeof unified);
    info->compute_units = units;
    info->clock_mhz = clock;
    info->global_memory_bytes = global;
    info->local_memory_bytes = local;
    info->max_work_group_size = work_group;
    info->unified_memory = unified != CL_FALSE;

    cl_int err;
    char *extensions = device_string(device, CL_DEVICE_EXTENSIONS, &err);
    note_failure(failed, err, "CL_DEVICE_EXTENSIONS");
    if (extensions) {
        info->has_fp64 = has_word(extensions, "cl_khr_fp64") ||
                         has_word(extensions, "cl_amd_fp64");
        free(extensions);
    }
}

/* ------------------------------------------------------------------------ */
/* Enumeration                                                              */
/* ------------------------------------------------------------------------ */

static gpumat_status fail_device_ids(cl_platform_id platform, cl_int err)
{
    char *name = platform_string(platform, CL_PLATFORM_NAME);
    gpumat_status status = gpumat__fail_cl(NULL, err, "clGetDeviceIDs on platform \"%s\"",
                                           name ? name : "?");
    free(name);
    return status;
}

/* Adds the devices of one platform to *list; a platform without devices
 * (e.g. an installed Intel runtime on a machine with no Intel GPU) adds
 * nothing and is not an error.  Nor is a platform whose driver fails to
 * list its devices: one broken driver must not hide the working ones; its
 * failure stays in the thread's last-error message, and *failed keeps the
 * first such error (for a machine where no platform lists a device). */
static gpumat_status add_platform_devices(cl_platform_id platform, unsigned platform_index,
                                          gpumat__device **list, size_t *count,
                                          bool *added, cl_int *failed)
{
    *added = false;
    cl_uint n = 0;
    cl_int err = clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 0, NULL, &n);
    if (err == CL_DEVICE_NOT_FOUND || (err == CL_SUCCESS && n == 0))
        return GPUMAT_OK;
    if (err != CL_SUCCESS) {
        fail_device_ids(platform, err);
        if (*failed == CL_SUCCESS)
            *failed = err;
        return GPUMAT_OK;
    }

    cl_device_id *ids = malloc(n * sizeof *ids);
    if (!ids)
        return gpumat__fail(NULL, GPUMAT_ERR_OUT_OF_MEMORY, "device enumeration: out of host memory");
    /* The device count may change between the two calls (hot-plug, a
     * driver that loses a device); trust only what the second call says. */
    cl_uint got = 0;
    err = clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, n, ids, &got);
    if (err == CL_DEVICE_NOT_FOUND || (err == CL_SUCCESS && got == 0)) {
        free(ids);
        return GPUMAT_OK;
    }
    if (err != CL_SUCCESS) {
        free(ids);
        fail_device_ids(platform, err);
        if (*failed == CL_SUCCESS)
            *failed = err;
        return GPUMAT_OK;
    }
    if (got > n)
        got = n;

    gpumat__device *grown = realloc(*list, (*count + got) * sizeof *grown);
    if (!grown) {
        free(ids);
        return gpumat__fail(NULL, GPUMAT_ERR_OUT_OF_MEMORY, "device enumeration: out of host memory");
    }
    *list = grown;
    for (cl_uint i = 0; i < got; ++i) {
        gpumat__device *d = &grown[*count + i];
        d->platform = platform;
        d->id = ids[i];
        gpumat__device_describe(platform, ids[i], &d->info, NULL);
        d->info.platform_index = platform_index;
        d->info.device_index = i;
    }
    *count += got;
    *added = true;
    free(ids);
    return GPUMAT_OK;
}

gpumat_status gpumat__devices_enumerate(gpumat__device **devices, size_t *count)
{
    *devices = NULL;
    *count = 0;

    cl_uint num_platforms = 0;
    cl_int err = clGetPlatformIDs(0, NULL, &num_platforms);
    if (err == CL_PLATFORM_NOT_FOUND_KHR || (err == CL_SUCCESS && num_platforms == 0))
        return gpumat__fail(NULL, GPUMAT_ERR_NO_DEVICE,
                            "no OpenCL platform found: " NO_PLATFORM_HINT);
    if (err != CL_SUCCESS)
        return gpumat__fail_cl(NULL, err, "clGetPlatformIDs");

    cl_platform_id *platforms = malloc(num_platforms * sizeof *platforms);
    if (!platforms)
        return gpumat__fail(NULL, GPUMAT_ERR_OUT_OF_MEMORY, "device enumeration: out of host memory");
    cl_uint got = 0;
    err = clGetPlatformIDs(num_platforms, platforms, &got);
    if (err != CL_SUCCESS) {
        free(platforms);
        if (err == CL_PLATFORM_NOT_FOUND_KHR)
            return gpumat__fail(NULL, GPUMAT_ERR_NO_DEVICE,
                                "no OpenCL platform found: " NO_PLATFORM_HINT);
        return gpumat__fail_cl(NULL, err, "clGetPlatformIDs");
    }
    if (got > num_platforms)
        got = num_platforms;

    gpumat__device *list = NULL;
    size_t n = 0;
    unsigned platform_index = 0;
    gpumat_status status = GPUMAT_OK;
    cl_int failed = CL_SUCCESS;
    char first_failure[GPUMAT__MESSAGE_SIZE / 2] = "";
    for (cl_uint p = 0; p < got && status == GPUMAT_OK; ++p) {
        bool added = false;
        cl_int before = failed;
        status = add_platform_devices(platforms[p], platform_index, &list, &n, &added, &failed);
        if (before == CL_SUCCESS && failed != CL_SUCCESS)
            snprintf(first_failure, sizeof first_failure, "%s", gpumat_last_error(NULL));
        if (added)
            ++platform_index;
    }

    if (status == GPUMAT_OK && n == 0 && failed != CL_SUCCESS) {
        /* A driver that failed to list its devices is not "no device". */
        status = gpumat__fail(NULL, gpumat__status_of_cl(failed),
                              "no OpenCL device could be listed: %s", first_failure);
    } else if (status == GPUMAT_OK && n == 0) {
        /* Name the platforms that are there: "installed but no device"
         * usually means a driver for hardware this machine lacks. */
        char names[1024] = "";
        for (cl_uint p = 0; p < got; ++p) {
            char *name = platform_string(platforms[p], CL_PLATFORM_NAME);
            append(names, sizeof names, "%s%s", p ? ", " : "", name ? name : "?");
            free(name);
        }
        status = gpumat__fail(NULL, GPUMAT_ERR_NO_DEVICE,
                              "no OpenCL device found: the installed platforms (%s) report "
                              "none; " NO_PLATFORM_HINT,
                              names);
    }
    free(platforms);
    if (status != GPUMAT_OK) {
        free(list);
        return status;
    }
    *devices = list;
    *count = n;
    return GPUMAT_OK;
}

/* ------------------------------------------------------------------------ */
/* Choice                                                                   */
/* ------------------------------------------------------------------------ */

/* Where a choice came from, for messages: an option or an environment
 * variable, with its value. */
typedef struct selector {
    const char *value;  /* NULL: not given */
    const char *label;  /* "GPUMAT_DEVICE" or "options->device" */
    const char *origin; /* "environment" or "options" */
} selector;

static selector selector_get(const char *option, const char *option_label,
                             const char *env_name)
{
    selector s = {NULL, option_label, "options"};
    if (option && option[0]) {
        s.value = option;
        return s;
    }
    const char *env = getenv(env_name);
    if (env && env[0]) {
        s.value = env;
        s.label = env_name;
        s.origin = "environment";
    }
    return s;
}

/* A decimal index, or false if the text is anything else (then it is a
 * name to match). */
static bool parse_index(const char *s, size_t *out)
{
    size_t v = 0;
    if (!*s)
        return false;
    for (; *s; ++s) {
        if (!isdigit((unsigned char)*s))
            return false;
        size_t digit = (size_t)(*s - '0');
        if (v > (SIZE_MAX - digit) / 10)
            v = SIZE_MAX; /* saturate: certainly out of range */
        else
            v = v * 10 + digit;
    }
    *out = v;
    return true;
}

static int type_rank(gpumat_device_type type)
{
    switch (type) {
    case GPUMAT_DEVICE_GPU: return 0;
    case GPUMAT_DEVICE_ACCELERATOR: return 1;
    case GPUMAT_DEVICE_CPU: return 2;
    default: return 3;
    }
}

/* True if a should be preferred over b by the automatic ranking. */
static bool better(const gpumat_device_info *a, const gpumat_device_info *b)
{
    int ta = type_rank(a->type), tb = type_rank(b->type);
    if (ta != tb)
        return ta < tb;
    bool da = !a->unified_memory, db = !b->unified_memory;
    if (da != db)
        return da;
    uint64_t pa = (uint64_t)a->compute_units * a->clock_mhz;
    uint64_t pb = (uint64_t)b->compute_units * b->clock_mhz;
    if (pa != pb)
        return pa > pb;
    return a->global_memory_bytes > b->global_memory_bytes;
}

static void list_platforms(char *buf, size_t size, const gpumat__device *devices, size_t count)
{
    append(buf, size, "platforms:");
    for (size_t i = 0; i < count; ++i)
        if (i == 0 || devices[i].info.platform_index != devices[i - 1].info.platform_index)
            append(buf, size, "%s %u: %s", i ? ";" : "", devices[i].info.platform_index,
                   devices[i].info.platform_name);
}

/* Lists the candidate devices numbered as a device index counts them. */
static void list_devices(char *buf, size_t size, const gpumat__device *devices,
                         const size_t *candidates, size_t n)
{
    append(buf, size, "devices:");
    for (size_t i = 0; i < n; ++i) {
        const gpumat_device_info *d = &devices[candidates[i]].info;
        append(buf, size, "%s %zu: %s (%s, %s)", i ? ";" : "", i, d->name, d->platform_name,
               gpumat_device_type_name(d->type));
    }
    if (n == 0)
        append(buf, size, " none");
}

static void set_reason(char *reason, size_t reason_size, const char *text)
{
    if (reason && reason_size > 0)
        copy_trimmed(reason, reason_size, text);
}

/* The automatic part of the reason: what made the winner win. */
static void describe_automatic(char *buf, size_t size, const gpumat__device *devices,
                               const size_t *candidates, size_t n, size_t best)
{
    const gpumat_device_info *w = &devices[best].info;
    append(buf, size, "automatic: ");
    if (n == 1) {
        append(buf, size, "the only candidate, %s", gpumat_device_type_name(w->type));
    } else {
        bool beaten[5] = {false, false, false, false, false};
        for (size_t i = 0; i < n; ++i) {
            int t = type_rank(devices[candidates[i]].info.type);
            if (t > type_rank(w->type))
                beaten[t] = true;
        }
        append(buf, size, "%s", gpumat_device_type_name(w->type));
        const char *sep = " preferred over ";
        static const gpumat_device_type by_rank[] = {GPUMAT_DEVICE_GPU,
                                                     GPUMAT_DEVICE_ACCELERATOR,
                                                     GPUMAT_DEVICE_CPU, GPUMAT_DEVICE_OTHER};
        for (int t = 0; t < 4; ++t) {
            if (beaten[t]) {
                append(buf, size, "%s%s", sep, gpumat_device_type_name(by_rank[t]));
                sep = "/";
            }
        }
    }
    /* Host-shared memory is the norm for CPUs; only say it for the rest. */
    if (w->type == GPUMAT_DEVICE_GPU || w->type == GPUMAT_DEVICE_ACCELERATOR)
        append(buf, size, "; %s", w->unified_memory ? "integrated" : "discrete");
    append(buf, size, "; %u compute units x %u MHz", w->compute_units, w->clock_mhz);
    append(buf, size, "; %llu MiB",
           (unsigned long long)(w->global_memory_bytes / (1024 * 1024)));
}

gpumat_status gpumat__device_pick(const gpumat__device *devices, size_t count,
                                  const gpumat_options *options, size_t *index,
                                  char *reason, size_t reason_size)
{
    set_reason(reason, reason_size, "");
    if (!devices || count == 0)
        return gpumat__fail(NULL, GPUMAT_ERR_NO_DEVICE, "no OpenCL device to choose from");

    selector plat = selector_get(options ? options->platform : NULL, "options->platform",
                                 "GPUMAT_PLATFORM");
    selector dev = selector_get(options ? options->device : NULL, "options->device",
                                "GPUMAT_DEVICE");
    gpumat_device_type want = options ? options->device_type : (gpumat_device_type)0;

    size_t *cand = malloc(count * sizeof *cand);
    if (!cand)
        return gpumat__fail(NULL, GPUMAT_ERR_OUT_OF_MEMORY, "device choice: out of host memory");
    char msg[GPUMAT__MESSAGE_SIZE / 2] = "";
    char why[512] = "";
    gpumat_status status = GPUMAT_OK;
    size_t n = 0;

    /* Platform: an index names one platform; a name may match several
     * (e.g. Intel's CPU and GPU runtimes), and then all of them stay. */
    if (plat.value) {
        size_t want_index = 0;
        bool by_index = parse_index(plat.value, &want_index);
        for (size_t i = 0; i < count; ++i) {
            const gpumat_device_info *d = &devices[i].info;
            if (by_index ? d->platform_index == want_index
                         : contains_nocase(d->platform_name, plat.value))
                cand[n++] = i;
        }
        if (n == 0) {
            snprintf(msg, sizeof msg, "%s=\"%s\" %s; ", plat.label, plat.value,
                     by_index ? "is out of range" : "matches no platform");
            list_platforms(msg, sizeof msg, devices, count);
            status = GPUMAT_ERR_NO_DEVICE;
        } else {
            append(why, sizeof why, "%s=\"%s\" (%s)", plat.label, plat.value, plat.origin);
        }
    } else {
        for (size_t i = 0; i < count; ++i)
            cand[n++] = i;
    }

    /* Device: counted among what the platform choice left, so that an
     * index within a chosen platform matches gpumat_device_info's
     * device_index, and one without a platform the list position. */
    if (status == GPUMAT_OK && dev.value) {
        size_t want_index = 0;
        if (parse_index(dev.value, &want_index)) {
            if (want_index >= n) {
                snprintf(msg, sizeof msg, "%s=\"%s\" is out of range (%zu device%s%s); ",
                         dev.label, dev.value, n, n == 1 ? "" : "s",
                         plat.value ? " on the chosen platform" : "");
                list_devices(msg, sizeof msg, devices, cand, n);
                status = GPUMAT_ERR_NO_DEVICE;
            } else {
                cand[0] = cand[want_index];
                n = 1;
            }
        } else {
            size_t kept = 0;
            for (size_t i = 0; i < n; ++i)
                if (contains_nocase(devices[cand[i]].info.name, dev.value))
                    cand[kept++] = cand[i];
            if (kept == 0) {
                snprintf(msg, sizeof msg, "%s=\"%s\" matches no device%s; ", dev.label,
                         dev.value, plat.value ? " on the chosen platform" : "");
                list_devices(msg, sizeof msg, devices, cand, n);
                status = GPUMAT_ERR_NO_DEVICE;
            }
            n = kept;
        }
        if (status == GPUMAT_OK)
            append(why, sizeof why, "%s%s=\"%s\" (%s)", why[0] ? ", " : "", dev.label,
                   dev.value, dev.origin);
    }

    if (status == GPUMAT_OK && want != 0) {
        size_t kept = 0;
        for (size_t i = 0; i < n; ++i)
            if (devices[cand[i]].info.type == want)
                cand[kept++] = cand[i];
        if (kept == 0) {
            snprintf(msg, sizeof msg, "options->device_type=%s matches no device%s; ",
                     gpumat_device_type_name(want),
                     plat.value || dev.value ? " of those chosen" : "");
            list_devices(msg, sizeof msg, devices, cand, n);
            status = GPUMAT_ERR_NO_DEVICE;
        }
        n = kept;
    }

    if (status != GPUMAT_OK) {
        free(cand);
        return gpumat__fail(NULL, status, "%s", msg);
    }

    size_t best = cand[0];
    for (size_t i = 1; i < n; ++i)
        if (better(&devices[cand[i]].info, &devices[best].info))
            best = cand[i];
    /* An explicit choice that leaves one device needs no ranking story. */
    if (!why[0] || n > 1) {
        if (why[0])
            append(why, sizeof why, "; ");
        describe_automatic(why + strlen(why), sizeof why - strlen(why), devices, cand, n, best);
    }
    free(cand);
    set_reason(reason, reason_size, why);
    *index = best;
    return GPUMAT_OK;
}

/* ------------------------------------------------------------------------ */
/* Public API                                                               */
/* ------------------------------------------------------------------------ */

GPUMAT_API gpumat_status gpumat_device_list(gpumat_device_info *out, size_t capacity,
                                            size_t *count)
{
    if (!count)
        return gpumat__fail(NULL, GPUMAT_ERR_INVALID_ARGUMENT, "device_list: count is NULL");
    *count = 0;
    if (!out && capacity > 0)
        return gpumat__fail(NULL, GPUMAT_ERR_INVALID_ARGUMENT,
                            "device_list: out is NULL but capacity is %zu", capacity);
    gpumat__device *devices = NULL;
    size_t n = 0;
    gpumat_status status = gpumat__devices_enumerate(&devices, &n);
    if (status != GPUMAT_OK)
        return status;
    for (size_t i = 0; i < n && i < capacity; ++i)
        out[i] = devices[i].info;
    free(devices);
    *count = n;
    return GPUMAT_OK;
}

GPUMAT_API gpumat_status gpumat_device_choose(const gpumat_options *options, size_t *index,
                                              char *reason, size_t reason_size)
{
    set_reason(reason, reason_size, "");
    if (!index)
        return gpumat__fail(NULL, GPUMAT_ERR_INVALID_ARGUMENT, "device_choose: index is NULL");
    gpumat__device *devices = NULL;
    size_t n = 0;
    gpumat_status status = gpumat__devices_enumerate(&devices, &n);
    if (status == GPUMAT_OK)
        status = gpumat__device_pick(devices, n, options, index, reason, reason_size);
    free(devices);
    return status;
}

GPUMAT_API const char *gpumat_device_type_name(gpumat_device_type type)
{
    switch (type) {
    case GPUMAT_DEVICE_GPU: return "GPU";
    case GPUMAT_DEVICE_ACCELERATOR: return "accelerator";
    case GPUMAT_DEVICE_CPU: return "CPU";
    case GPUMAT_DEVICE_OTHER: return "other";
    }
    /* 0 is options->device_type's "any type". */
    return type == 0 ? "any" : "unknown";
}

GPUMAT_API const char *gpumat_vendor_name(gpumat_vendor vendor)
{
    switch (vendor) {
    case GPUMAT_VENDOR_NVIDIA: return "NVIDIA";
    case GPUMAT_VENDOR_AMD: return "AMD";
    case GPUMAT_VENDOR_INTEL: return "Intel";
    case GPUMAT_VENDOR_OTHER: return "other";
    }
    return "other";
}
