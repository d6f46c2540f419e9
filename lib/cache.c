/*
 * cache.c - the persistent kernel cache: program binaries saved on disk so
 * that a later process skips the OpenCL C compiler.
 *
 * Every failure here is silent and only costs speed: the caller compiles
 * from source whenever a load does not produce a built program, and a
 * failed store leaves the cache as it was.  Nothing here records an error on
 * the context, because a cache problem is not a failure of the operation.
 *
 * Entry file "<dir>/<program>-<fnv1a64(key) in hex>.bin", all integers
 * little-endian:
 *
 *   0  magic "GPUMATKC"
 *   8  u32  format version (ENTRY_VERSION)
 *  12  u32  key length K
 *  16  u64  binary length N
 *  24  u64  FNV-1a 64 of bytes [0, 24), the key and the binary
 *  32  K bytes of key text, then N bytes of program binary; nothing after.
 *
 * The file name's hash only spreads the entries; the full key stored inside
 * is what decides a hit, so a hash collision costs a compile, never a wrong
 * program.
 */
#include "gpumat_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ENTRY_MAGIC "GPUMATKC"
#define ENTRY_VERSION 1u
#define HEADER_SIZE 32
/* Bounds that no real entry reaches; they keep a garbage length field from
 * turning into a huge allocation. */
#define MAX_KEY_SIZE (1u << 20)
#define MAX_BINARY_SIZE ((uint64_t)1 << 30)

/* ---- hashing and little-endian fields ------------------------------------ */

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static uint64_t fnv1a(uint64_t h, const void *data, size_t size)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < size; ++i) {
        h ^= p[i];
        h *= FNV_PRIME;
    }
    return h;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; ++i)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; ++i)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint64_t entry_checksum(const unsigned char *header, const char *key, size_t key_len,
                               const unsigned char *binary, size_t binary_len)
{
    uint64_t h = fnv1a(FNV_OFFSET, header, 24);
    h = fnv1a(h, key, key_len);
    return fnv1a(h, binary, binary_len);
}

/* ---- the key ------------------------------------------------------------ */

typedef struct strbuf {
    char *data;
    size_t len, cap;
    bool failed;
} strbuf;

static void sb_append(strbuf *sb, const char *s, size_t n)
{
    if (sb->failed)
        return;
    if (sb->len + n + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 1024;
        while (cap < sb->len + n + 1)
            cap *= 2;
        char *data = realloc(sb->data, cap);
        if (!data) {
            sb->failed = true;
            return;
        }
        sb->data = data;
        sb->cap = cap;
    }
    memcpy(sb->data + sb->len, s, n);
    sb->len += n;
    sb->data[sb->len] = '\0';
}

static void sb_line(strbuf *sb, const char *label, const char *value)
{
    sb_append(sb, label, strlen(label));
    sb_append(sb, ": ", 2);
    sb_append(sb, value, strlen(value));
    sb_append(sb, "\n", 1);
}

/* The key takes whole strings straight from OpenCL rather than the
 * fixed-size copies in gpumat_device_info, which may be truncated: two
 * drivers differing only past the cut must not share entries. */
static void sb_cl_info(strbuf *sb, const char *label, cl_platform_id platform,
                       cl_device_id device, cl_uint param)
{
    size_t size = 0;
    cl_int err = platform ? clGetPlatformInfo(platform, param, 0, NULL, &size)
                          : clGetDeviceInfo(device, param, 0, NULL, &size);
    char *value = err == CL_SUCCESS ? malloc(size + 1) : NULL;
    if (value)
        err = platform ? clGetPlatformInfo(platform, param, size, value, NULL)
                       : clGetDeviceInfo(device, param, size, value, NULL);
    if (!value || err != CL_SUCCESS) {
        sb->failed = true;
    } else {
        value[size] = '\0';
        sb_line(sb, label, value);
    }
    free(value);
}

/* ---- the directory ------------------------------------------------------- */

/* mkdir -p: every missing component is created 0700, since entries may
 * reveal which hardware and software a user runs. */
static bool make_dirs(char *path)
{
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        path[--len] = '\0';
    for (char *p = path + 1; ; ++p) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        int rc = mkdir(path, 0700);
        int err = errno;
        *p = saved;
        if (rc != 0 && err != EEXIST)
            return false;
        if (saved == '\0')
            break;
    }
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool env_set(const char *name, const char **value)
{
    *value = getenv(name);
    return *value && **value;
}

static bool cache_disabled_by_env(void)
{
    const char *v = getenv("GPUMAT_CACHE");
    return v && (!strcasecmp(v, "off") || !strcasecmp(v, "0") || !strcasecmp(v, "no") ||
                 !strcasecmp(v, "false"));
}

/* Fills ctx->cache_dir once per context; an empty cache_dir means no cache. */
static void resolve_dir(gpumat_context *ctx)
{
    if (ctx->cache_resolved)
        return;
    ctx->cache_resolved = true;
    ctx->cache_dir[0] = '\0';
    if (cache_disabled_by_env())
        return;

    char path[sizeof ctx->cache_dir];
    const char *v;
    int n;
    if (env_set("GPUMAT_CACHE_DIR", &v))
        n = snprintf(path, sizeof path, "%s", v);
    else if (env_set("XDG_CACHE_HOME", &v) && v[0] == '/') /* the XDG spec ignores relative */
        n = snprintf(path, sizeof path, "%s/gpumat", v);
    else if (env_set("HOME", &v))
        n = snprintf(path, sizeof path, "%s/.cache/gpumat", v);
    else
        return;
    /* Leave room for "/<program>-<hash>.bin.tmp.XXXXXX". */
    if (n < 0 || (size_t)n + 64 >= sizeof path)
        return;
    if (make_dirs(path))
        memcpy(ctx->cache_dir, path, sizeof path);
}

/* ---- entries ------------------------------------------------------------ */

bool gpumat__cache_entry_init(gpumat_context *ctx, const char *program_name,
                              const char *source, const char *options,
                              gpumat__cache_entry *entry)
{
    memset(entry, 0, sizeof *entry);
    resolve_dir(ctx);
    if (!ctx->cache_dir[0])
        return false;

    cl_platform_id platform = NULL;
    if (clGetDeviceInfo(ctx->device, CL_DEVICE_PLATFORM, sizeof platform, &platform, NULL) !=
        CL_SUCCESS)
        return false;

    strbuf key = {0};
    char line[64];
    sb_line(&key, "gpumat-kernel-cache", "1");
    sb_cl_info(&key, "platform", platform, NULL, CL_PLATFORM_NAME);
    sb_cl_info(&key, "platform-version", platform, NULL, CL_PLATFORM_VERSION);
    sb_cl_info(&key, "device", NULL, ctx->device, CL_DEVICE_NAME);
    sb_cl_info(&key, "vendor", NULL, ctx->device, CL_DEVICE_VENDOR);
    sb_cl_info(&key, "driver", NULL, ctx->device, CL_DRIVER_VERSION);
    sb_cl_info(&key, "device-version", NULL, ctx->device, CL_DEVICE_VERSION);
    sb_line(&key, "libgpumat", GPUMAT_VERSION_STRING);
    sb_line(&key, "program", program_name);
    size_t source_len = strlen(source);
    snprintf(line, sizeof line, "%016llx %zu",
             (unsigned long long)fnv1a(FNV_OFFSET, source, source_len), source_len);
    sb_line(&key, "source-fnv1a64-length", line);
    sb_line(&key, "options", options);
    if (key.failed || key.len > MAX_KEY_SIZE) {
        free(key.data);
        return false;
    }

    size_t path_size = strlen(ctx->cache_dir) + strlen(program_name) + 64;
    char *path = malloc(path_size);
    if (!path) {
        free(key.data);
        return false;
    }
    snprintf(path, path_size, "%s/%s-%016llx.bin", ctx->cache_dir, program_name,
             (unsigned long long)fnv1a(FNV_OFFSET, key.data, key.len));
    entry->path = path;
    entry->key = key.data;
    entry->key_len = key.len;
    return true;
}

void gpumat__cache_entry_free(gpumat__cache_entry *entry)
{
    free(entry->path);
    free(entry->key);
    memset(entry, 0, sizeof *entry);
}

static bool read_all(int fd, unsigned char *buf, size_t size)
{
    while (size > 0) {
        ssize_t n = read(fd, buf, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        buf += n;
        size -= (size_t)n;
    }
    return true;
}

static bool write_all(int fd, const void *data, size_t size)
{
    const unsigned char *p = data;
    while (size > 0) {
        ssize_t n = write(fd, p, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        size -= (size_t)n;
    }
    return true;
}

/* The whole entry file, if it is exactly a valid entry for this key. */
static unsigned char *read_entry(const gpumat__cache_entry *entry, size_t *binary_len)
{
    int fd = open(entry->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    unsigned char *data = NULL;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < HEADER_SIZE ||
        (uint64_t)st.st_size > HEADER_SIZE + MAX_KEY_SIZE + MAX_BINARY_SIZE)
        goto fail;
    size_t size = (size_t)st.st_size;
    data = malloc(size);
    if (!data || !read_all(fd, data, size))
        goto fail;
    /* A file that grew since fstat is being rewritten in place by something
     * that is not us; do not trust it. */
    unsigned char extra;
    if (read(fd, &extra, 1) != 0)
        goto fail;

    uint32_t version = get_u32(data + 8), key_len = get_u32(data + 12);
    uint64_t bin_len = get_u64(data + 16);
    if (memcmp(data, ENTRY_MAGIC, 8) != 0 || version != ENTRY_VERSION ||
        key_len != entry->key_len || bin_len == 0 || bin_len > MAX_BINARY_SIZE ||
        HEADER_SIZE + (uint64_t)key_len + bin_len != (uint64_t)size ||
        memcmp(data + HEADER_SIZE, entry->key, key_len) != 0)
        goto fail;
    const unsigned char *binary = data + HEADER_SIZE + key_len;
    if (get_u64(data + 24) != entry_checksum(data, (const char *)data + HEADER_SIZE, key_len,
                                             binary, (size_t)bin_len))
        goto fail;
    close(fd);
    *binary_len = (size_t)bin_len;
    return data;
fail:
    free(data);
    close(fd);
    return NULL;
}

cl_program gpumat__cache_load(gpumat_context *ctx, const gpumat__cache_entry *entry,
                              const char *options)
{
    size_t binary_len = 0;
    unsigned char *data = read_entry(entry, &binary_len);
    if (!data)
        return NULL;
    cl_program program =
        gpumat__program_from_binary(ctx, data + HEADER_SIZE + entry->key_len, binary_len, options);
    free(data);
    return program;
}

cl_program gpumat__program_from_binary(gpumat_context *ctx, const unsigned char *binary,
                                       size_t size, const char *options)
{
    cl_int binary_status = CL_INVALID_BINARY, err;
    cl_program program = clCreateProgramWithBinary(ctx->cl_ctx, 1, &ctx->device, &size,
                                                   &binary, &binary_status, &err);
    if (err != CL_SUCCESS || binary_status != CL_SUCCESS) {
        if (program)
            clReleaseProgram(program);
        return NULL;
    }
    /* Binaries still need a build (the spec requires it; drivers that keep
     * an intermediate form finish compiling here). */
    if (clBuildProgram(program, 1, &ctx->device, options, NULL, NULL) != CL_SUCCESS) {
        clReleaseProgram(program);
        return NULL;
    }
    return program;
}

/* This device's binary of the program, malloc'd; NULL if there is none.
 * A wrapped cl_context may hold several devices, and the binary arrays have
 * one slot per device of the program. */
unsigned char *gpumat__program_binary(gpumat_context *ctx, cl_program program, size_t *size)
{
    cl_uint count = 0;
    if (clGetProgramInfo(program, CL_PROGRAM_NUM_DEVICES, sizeof count, &count, NULL) !=
            CL_SUCCESS || count == 0)
        return NULL;
    cl_device_id *devices = calloc(count, sizeof *devices);
    size_t *sizes = calloc(count, sizeof *sizes);
    unsigned char **binaries = calloc(count, sizeof *binaries);
    unsigned char *result = NULL;
    cl_uint mine = count;
    if (!devices || !sizes || !binaries ||
        clGetProgramInfo(program, CL_PROGRAM_DEVICES, count * sizeof *devices, devices, NULL) !=
            CL_SUCCESS ||
        clGetProgramInfo(program, CL_PROGRAM_BINARY_SIZES, count * sizeof *sizes, sizes, NULL) !=
            CL_SUCCESS)
        goto done;
    for (cl_uint i = 0; i < count; ++i)
        if (devices[i] == ctx->device)
            mine = i;
    if (mine == count || sizes[mine] == 0 || sizes[mine] > MAX_BINARY_SIZE)
        goto done;
    /* Every device with a binary gets a buffer: OpenCL 1.1 drivers may not
     * honour NULL as "skip this device". */
    bool ok = true;
    for (cl_uint i = 0; i < count && ok; ++i)
        if (sizes[i] > 0)
            ok = (binaries[i] = malloc(sizes[i])) != NULL;
    if (ok && clGetProgramInfo(program, CL_PROGRAM_BINARIES, count * sizeof *binaries, binaries,
                               NULL) == CL_SUCCESS) {
        result = binaries[mine];
        binaries[mine] = NULL;
        *size = sizes[mine];
    }
done:
    if (binaries)
        for (cl_uint i = 0; i < count; ++i)
            free(binaries[i]);
    free(binaries);
    free(sizes);
    free(devices);
    return result;
}

void gpumat__cache_store(gpumat_context *ctx, const gpumat__cache_entry *entry,
                         cl_program program)
{
    size_t binary_len = 0;
    unsigned char *binary = gpumat__program_binary(ctx, program, &binary_len);
    if (!binary)
        return;

    unsigned char header[HEADER_SIZE];
    memcpy(header, ENTRY_MAGIC, 8);
    put_u32(header + 8, ENTRY_VERSION);
    put_u32(header + 12, (uint32_t)entry->key_len);
    put_u64(header + 16, binary_len);
    put_u64(header + 24, entry_checksum(header, entry->key, entry->key_len, binary, binary_len));

    /* A private temporary file renamed over the entry: readers in other
     * processes see the old entry or the new one, never a partial write, and
     * concurrent writers of the same key simply replace each other's equal
     * result.  No fsync: a file torn by a crash fails the checksum and is
     * recompiled, which is all the cache promises. */
    size_t tmp_size = strlen(entry->path) + 16;
    char *tmp = malloc(tmp_size);
    if (!tmp) {
        free(binary);
        return;
    }
    snprintf(tmp, tmp_size, "%s.tmp.XXXXXX", entry->path);
    int fd = mkstemp(tmp);
    if (fd >= 0) {
        bool ok = write_all(fd, header, sizeof header) &&
                  write_all(fd, entry->key, entry->key_len) &&
                  write_all(fd, binary, binary_len);
        ok = close(fd) == 0 && ok;
        if (!ok || rename(tmp, entry->path) != 0)
            unlink(tmp);
    }
    free(tmp);
    free(binary);
}

/* ---- statistics ------------------------------------------------------------ */

double gpumat__now_seconds(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0.0;
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

gpumat_status gpumat_context_build_stats(const gpumat_context *ctx, gpumat_build_stats *stats)
{
    if (!ctx || !stats)
        return gpumat__fail((gpumat_context *)ctx, GPUMAT_ERR_INVALID_ARGUMENT,
                            "context_build_stats: %s is NULL", !ctx ? "ctx" : "stats");
    /* The counters change under the context's lock while programs build. */
    gpumat_context *c = (gpumat_context *)ctx;
    pthread_mutex_lock(&c->lock);
    *stats = c->build_stats;
    pthread_mutex_unlock(&c->lock);
    return GPUMAT_OK;
}
