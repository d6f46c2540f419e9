/*
 * tuning.c - measured per-device parameters (the file gpumat-tune writes)
 * and the choice of GEMM backend per call.
 *
 * A tuning file lives in the kernel cache directory (resolved as in
 * cache.c: $GPUMAT_CACHE_DIR, else $XDG_CACHE_HOME/gpumat, else
 * $HOME/.cache/gpumat) under the name "tuning-<fnv1a64(key)>.txt", where the
 * key is the two lines "device <name>\ndriver <driver version>\n" of the
 * device (gpumat_device_info's name and driver_version).  It is plain text:
 *
 *   gpumat-tuning 1                  format version, first line
 *   device <name>                    the key, compared exactly
 *   driver <driver version>
 *   params MWG=64,NWG=64,...         GPUMAT_KERNEL_PARAMS syntax (optional)
 *   backend <limit> native|clblast   float GEMM size classes (optional, ascending)
 *   backend64 <limit> native|clblast double GEMM size classes (optional, ascending)
 *
 * Blank lines and lines starting with '#' are skipped.  A "backend" line
 * covers products whose cube root of m*n*k is at most <limit> and above the
 * previous line's limit; the last line also covers everything larger.
 * Double products follow the "backend64" lines, or where a file has none
 * (files of gpumat-tune before it measured double), the "backend" ones.
 *
 * A file that cannot be read, has another format version, is malformed,
 * carries another device's key or parameters the library rejects (the
 * GPUMAT_KERNEL_PARAMS rules and the device's limits) is ignored: the
 * context then uses its shipped profile, and gpumat_context_tuning() says
 * why.  Nothing here ever makes context creation fail.
 */
#include "gpumat_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define FORMAT_VERSION 1u
#define MAX_FILE_SIZE (64u * 1024u)
#define LINE_SIZE 1024

/* ---- shipped dispatch tables -------------------------------------------- */

/* What AUTO dispatch does without a tuning file, per profile; profiles not
 * listed use the native kernels at every size.  Measured with
 * gpumat-bench (native and CLBlast on the same queue):
 * - nvidia-gpu: H100 80GB HBM3, CLBlast 1.5.3: the native kernels beat
 *   CLBlast at every benchmarked size (64 to 8192, odd shapes included).
 * - cpu: PoCL 3.1 on 2 AMD EPYC cores, CLBlast 1.5.3, gpumat-bench --quick
 *   --ops gemm: native 11.0/14.4/17.1/17.4/15.3/12.0 GFLOP/s against
 *   8.9/10.9/12.1/13.0/10.8/9.6 at 64, 128, 256, 512, 1000 and
 *   1023x777x1531: native everywhere.
 * - cpu-avx512: PoCL 3.1 on 2 cores of an AVX-512 EPYC, CLBlast 1.5.3,
 *   gpumat-bench --ops gemm,gemm-t,dgemm at every default size (64 to
 *   8192, odd shapes): native 4-28x CLBlast (docs/performance.md, PoCL). */
static const struct {
    const char *profile;
    unsigned count;
    gpumat__gemm_class classes[4];
} shipped[] = {
    {"nvidia-gpu", 1, {{0, GPUMAT_GEMM_NATIVE}}},
    {"cpu", 1, {{0, GPUMAT_GEMM_NATIVE}}},
    {"cpu-avx512", 1, {{0, GPUMAT_GEMM_NATIVE}}},
};

/* Both element types: every measurement above found the same backend for
 * float and double. */
static void use_shipped_classes(const char *profile, gpumat__tuning *t)
{
    for (int d = 0; d < 2; ++d) {
        t->class_count[d] = 1;
        t->classes[d][0].limit = 0;
        t->classes[d][0].backend = GPUMAT_GEMM_NATIVE;
        for (size_t i = 0; i < sizeof shipped / sizeof shipped[0]; ++i)
            if (!strcmp(shipped[i].profile, profile)) {
                t->class_count[d] = shipped[i].count;
                memcpy(t->classes[d], shipped[i].classes,
                       shipped[i].count * sizeof t->classes[d][0]);
            }
    }
}

/* ---- the file's place ---------------------------------------------------- */

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static uint64_t fnv1a(const char *s)
{
    uint64_t h = FNV_OFFSET;
    for (; *s; ++s) {
        h ^= (unsigned char)*s;
        h *= FNV_PRIME;
    }
    return h;
}

static bool env_set(const char *name, const char **value)
{
    *value = getenv(name);
    return *value && **value;
}

static bool tuning_disabled_by_env(void)
{
    const char *v = getenv("GPUMAT_TUNING");
    return v && (!strcasecmp(v, "off") || !strcasecmp(v, "0") || !strcasecmp(v, "no") ||
                 !strcasecmp(v, "false"));
}

/* The tuning file's path for the device, or "" if no directory can be
 * named (the same rules as the kernel cache; GPUMAT_CACHE=off does not
 * matter here). */
static void tuning_path(const gpumat_device_info *info, char *path, size_t size)
{
    char key[sizeof info->name + sizeof info->driver_version + 32];
    snprintf(key, sizeof key, "device %s\ndriver %s\n", info->name, info->driver_version);
    const char *v;
    int n;
    if (env_set("GPUMAT_CACHE_DIR", &v))
        n = snprintf(path, size, "%s/tuning-%016llx.txt", v, (unsigned long long)fnv1a(key));
    else if (env_set("XDG_CACHE_HOME", &v) && v[0] == '/')
        n = snprintf(path, size, "%s/gpumat/tuning-%016llx.txt", v,
                     (unsigned long long)fnv1a(key));
    else if (env_set("HOME", &v))
        n = snprintf(path, size, "%s/.cache/gpumat/tuning-%016llx.txt", v,
                     (unsigned long long)fnv1a(key));
    else
        n = -1;
    if (n < 0 || (size_t)n >= size)
        path[0] = '\0';
}

/* ---- parsing --------------------------------------------------------------- */

typedef struct parsed {
    unsigned version;
    bool has_device, has_driver, has_params;
    char device[LINE_SIZE], driver[LINE_SIZE], params[LINE_SIZE];
    unsigned class_count[2]; /* "backend", "backend64" */
    gpumat__gemm_class classes[2][GPUMAT__TUNING_MAX_CLASSES];
} parsed;

typedef enum parse_result { PARSE_OK, PARSE_UNREADABLE, PARSE_VERSION, PARSE_MALFORMED } parse_result;

/* A word of `line` followed by a single space: the rest of the line. */
static const char *after(const char *line, const char *word)
{
    size_t len = strlen(word);
    return !strncmp(line, word, len) && line[len] == ' ' ? line + len + 1 : NULL;
}

static bool parse_backend(const char *text, gpumat__gemm_class *c)
{
    char *end;
    errno = 0;
    unsigned long limit = strtoul(text, &end, 10);
    if (end == text || *end != ' ' || errno || limit == 0 || limit > 1000000000ul ||
        text[0] < '0' || text[0] > '9')
        return false;
    c->limit = (unsigned)limit;
    if (!strcmp(end + 1, "native"))
        c->backend = GPUMAT_GEMM_NATIVE;
    else if (!strcmp(end + 1, "clblast"))
        c->backend = GPUMAT_GEMM_CLBLAST;
    else
        return false;
    return true;
}

/* Reads and checks the syntax of the file; on PARSE_MALFORMED `why` says
 * where, on PARSE_UNREADABLE what failed. */
static parse_result parse_file(const char *path, parsed *p, char *why, size_t why_size)
{
    memset(p, 0, sizeof *p);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(why, why_size, "%s", errno == ENOENT ? "" : "cannot be opened");
        return PARSE_UNREADABLE;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > MAX_FILE_SIZE) {
        fclose(f);
        snprintf(why, why_size, "not a regular file of at most %u bytes", MAX_FILE_SIZE);
        return PARSE_UNREADABLE;
    }
    char line[LINE_SIZE];
    unsigned number = 0;
    bool seen_header = false;
    parse_result result = PARSE_OK;
    while (result == PARSE_OK && fgets(line, sizeof line, f)) {
        ++number;
        size_t len = strlen(line);
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        else if (!feof(f)) {
            snprintf(why, why_size, "line %u: longer than %d bytes", number, LINE_SIZE - 2);
            result = PARSE_MALFORMED;
            break;
        }
        if (len > 0 && line[len - 1] == '\r')
            line[--len] = '\0';
        if (line[0] == '#' || strspn(line, " \t") == len)
            continue;
        const char *v;
        if (!seen_header) {
            seen_header = true;
            char *end = NULL;
            unsigned long version = 0;
            if ((v = after(line, "gpumat-tuning")) != NULL && *v >= '0' && *v <= '9')
                version = strtoul(v, &end, 10);
            if (!end || *end != '\0') {
                snprintf(why, why_size, "line %u: expected \"gpumat-tuning %u\"", number,
                         FORMAT_VERSION);
                result = PARSE_MALFORMED;
            } else if (version != FORMAT_VERSION) {
                p->version = version > 1000000u ? 1000000u : (unsigned)version;
                result = PARSE_VERSION;
            } else {
                p->version = (unsigned)version;
            }
            continue;
        }
        const char *what = NULL, *key;
        char what_buf[80] = "";
        if ((v = after(line, "device")) != NULL) {
            if (p->has_device)
                what = "a second device line";
            p->has_device = true;
            snprintf(p->device, sizeof p->device, "%s", v);
        } else if ((v = after(line, "driver")) != NULL) {
            if (p->has_driver)
                what = "a second driver line";
            p->has_driver = true;
            snprintf(p->driver, sizeof p->driver, "%s", v);
        } else if ((v = after(line, "params")) != NULL) {
            if (p->has_params)
                what = "a second params line";
            else if (!*v)
                what = "empty params";
            p->has_params = true;
            snprintf(p->params, sizeof p->params, "%s", v);
        } else if ((v = after(line, key = "backend")) != NULL ||
                   (v = after(line, key = "backend64")) != NULL) {
            int d = key[strlen("backend")] != '\0'; /* 0 float, 1 double */
            unsigned *count = &p->class_count[d];
            gpumat__gemm_class c;
            if (!parse_backend(v, &c))
                snprintf(what_buf, sizeof what_buf,
                         "expected \"%s <limit> native|clblast\" with a limit > 0", key);
            else if (*count == GPUMAT__TUNING_MAX_CLASSES)
                snprintf(what_buf, sizeof what_buf, "too many %s lines", key);
            else if (*count > 0 && c.limit <= p->classes[d][*count - 1].limit)
                snprintf(what_buf, sizeof what_buf, "%s limits must increase", key);
            else
                p->classes[d][(*count)++] = c;
            if (what_buf[0])
                what = what_buf;
        } else {
            what = "unknown line (expected device, driver, params, backend or backend64)";
        }
        if (what) {
            snprintf(why, why_size, "line %u: %s", number, what);
            result = PARSE_MALFORMED;
        }
    }
    if (result == PARSE_OK && ferror(f)) {
        snprintf(why, why_size, "read error");
        result = PARSE_UNREADABLE;
    }
    fclose(f);
    if (result != PARSE_OK)
        return result;
    if (!seen_header)
        snprintf(why, why_size, "empty file");
    else if (!p->has_device || !p->has_driver)
        snprintf(why, why_size, "no %s line", !p->has_device ? "device" : "driver");
    else if (!p->has_params && p->class_count[0] == 0 && p->class_count[1] == 0)
        snprintf(why, why_size, "neither a params nor a backend line");
    else
        return PARSE_OK;
    return PARSE_MALFORMED;
}

/* ---- loading ----------------------------------------------------------------- */

/* Appends to the note, truncating quietly. */
GPUMAT__PRINTF(2, 3)
static void note(gpumat__tuning *t, const char *fmt, ...)
{
    size_t len = strlen(t->note);
    if (len + 1 >= sizeof t->note)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->note + len, sizeof t->note - len, fmt, ap);
    va_end(ap);
}

void gpumat__tuning_apply(const gpumat_device_info *info, gpumat__profile *profile,
                          bool params_from_env, gpumat__params_apply_fn apply,
                          gpumat__params_fit_fn fit, gpumat__tuning *t)
{
    t->note[0] = '\0';
    tuning_path(info, t->path, sizeof t->path);
    use_shipped_classes(profile->name, t);
    if (params_from_env) {
        note(t, "profile %s with GPUMAT_KERNEL_PARAMS (tuning file not read)", profile->name);
        return;
    }
    if (tuning_disabled_by_env()) {
        note(t, "shipped profile %s (GPUMAT_TUNING=off)", profile->name);
        return;
    }
    if (!t->path[0]) {
        note(t, "shipped profile %s (no cache directory to hold a tuning file)", profile->name);
        return;
    }

    parsed *p = malloc(sizeof *p);
    if (!p) {
        note(t, "shipped profile %s (out of host memory reading the tuning file)", profile->name);
        return;
    }
    char why[LINE_SIZE + 128] = "";
    switch (parse_file(t->path, p, why, sizeof why)) {
    case PARSE_UNREADABLE:
        if (!why[0])
            note(t, "shipped profile %s (no tuning file %s)", profile->name, t->path);
        else
            note(t, "ignored %s: %s; using shipped profile %s", t->path, why, profile->name);
        free(p);
        return;
    case PARSE_VERSION:
        note(t, "ignored %s: format version %u, this library reads %u; using shipped profile %s",
             t->path, p->version, FORMAT_VERSION, profile->name);
        free(p);
        return;
    case PARSE_MALFORMED:
        note(t, "ignored %s: malformed (%s); using shipped profile %s", t->path, why,
             profile->name);
        free(p);
        return;
    case PARSE_OK:
        break;
    }
    if (strcmp(p->device, info->name) != 0 || strcmp(p->driver, info->driver_version) != 0) {
        note(t, "ignored %s: key mismatch (device \"%s\" driver \"%s\", file \"%s\" driver "
             "\"%s\"); using shipped profile %s", t->path, info->name, info->driver_version,
             p->device, p->driver, profile->name);
        free(p);
        return;
    }
    if (p->has_params) {
        /* The GPUMAT_KERNEL_PARAMS rules; their failure message would land
         * in the thread's last error, which a successful context creation
         * must leave as it was. */
        char saved[GPUMAT__MESSAGE_SIZE];
        snprintf(saved, sizeof saved, "%s", gpumat_last_error(NULL));
        gpumat__profile tuned = *profile;
        gpumat_status status = apply(&tuned, p->params);
        if (status != GPUMAT_OK)
            note(t, "ignored %s: params rejected (%s); using shipped profile %s", t->path,
                 gpumat_last_error(NULL), profile->name);
        else if (!fit(&tuned, info))
            note(t, "ignored %s: params %s do not fit %s (work-group or local memory limit); "
                 "using shipped profile %s", t->path, p->params, info->name, profile->name);
        gpumat__fail(NULL, GPUMAT_OK, "%s", saved);
        if (t->note[0]) {
            free(p);
            return;
        }
        *profile = tuned;
    }
    /* Double without lines of its own follows float's. */
    for (int d = 0; d < 2; ++d) {
        int from = p->class_count[d] > 0 ? d : 0;
        if (p->class_count[from] > 0) {
            t->class_count[d] = p->class_count[from];
            memcpy(t->classes[d], p->classes[from],
                   p->class_count[from] * sizeof t->classes[d][0]);
        }
    }
    note(t, "tuned: %s", t->path);
    free(p);
}

/* ---- dispatch ------------------------------------------------------------------ */

gpumat_gemm_backend gpumat__gemm_choose(const gpumat_context *ctx, gpumat_dtype dtype, size_t m,
                                        size_t n, size_t k)
{
    if (ctx->gemm_backend != GPUMAT_GEMM_AUTO)
        return ctx->gemm_backend;
    int d = dtype == GPUMAT_F64;
    unsigned count = ctx->tuning.class_count[d];
    const gpumat__gemm_class *classes = ctx->tuning.classes[d];
    if (count == 0)
        return GPUMAT_GEMM_NATIVE;
    /* The class whose limit L is the first with m*n*k <= L^3. */
    double volume = (double)m * (double)n * (double)k;
    unsigned i = 0;
    while (i + 1 < count &&
           volume > (double)classes[i].limit * classes[i].limit * classes[i].limit)
        ++i;
    gpumat_gemm_backend b = classes[i].backend;
    if (b == GPUMAT_GEMM_CLBLAST && !gpumat__clblast_available(NULL, 0))
        b = GPUMAT_GEMM_NATIVE;
    return b;
}

/* ---- public -------------------------------------------------------------------- */

const char *gpumat_context_tuning(const gpumat_context *ctx)
{
    return ctx ? ctx->tuning.note : NULL;
}

gpumat_status gpumat_context_tuning_path(const gpumat_context *ctx, char *path, size_t size)
{
    if (!ctx || !path || size == 0)
        return gpumat__fail((gpumat_context *)ctx, GPUMAT_ERR_INVALID_ARGUMENT,
                            "context_tuning_path: %s", !ctx ? "ctx is NULL"
                                                      : !path ? "path is NULL" : "size is 0");
    if (!ctx->tuning.path[0])
        return gpumat__fail((gpumat_context *)ctx, GPUMAT_ERR_UNSUPPORTED,
                            "context_tuning_path: no cache directory (GPUMAT_CACHE_DIR, "
                            "XDG_CACHE_HOME and HOME are all unset or too long)");
    size_t len = strlen(ctx->tuning.path);
    if (len >= size)
        return gpumat__fail((gpumat_context *)ctx, GPUMAT_ERR_INVALID_ARGUMENT,
                            "context_tuning_path: the path needs %zu bytes, size is %zu", len + 1,
                            size);
    memcpy(path, ctx->tuning.path, len + 1);
    return GPUMAT_OK;
}

gpumat_gemm_backend gpumat_context_gemm_backend_for(const gpumat_context *ctx, gpumat_dtype dtype,
                                                    size_t m, size_t n, size_t k)
{
    return ctx ? gpumat__gemm_choose(ctx, dtype, m, n, k) : GPUMAT_GEMM_AUTO;
}
