/*
 * dataset.c - see dataset.h.  IDX: a big-endian magic number whose low byte
 * is the number of dimensions and whose second-lowest is the element type
 * (0x08: unsigned byte), then each dimension as a big-endian 32-bit count,
 * then the elements.
 */
#include "dataset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Reads exactly n bytes; gzread takes an unsigned count, so big reads go in
 * pieces. */
static int read_all(gzFile f, void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n > 0) {
        unsigned piece = n > (1u << 30) ? 1u << 30 : (unsigned)n;
        int got = gzread(f, p, piece);
        if (got <= 0)
            return -1;
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

/* Opens an IDX file of unsigned bytes with `dims` dimensions and reads
 * its shape; the file is left at the first element. */
static gzFile open_idx(const char *path, unsigned dims, uint32_t *shape, char *err,
                       size_t err_size)
{
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f) {
        snprintf(err, err_size, "%s: cannot open: %s", path,
                 errno ? strerror(errno) : "out of memory");
        return NULL;
    }
    unsigned char header[4 + 4 * 3];
    if (read_all(f, header, 4 + 4 * (size_t)dims) != 0) {
        snprintf(err, err_size, "%s: truncated or not gzip-compressed IDX", path);
        gzclose(f);
        return NULL;
    }
    if (header[0] != 0 || header[1] != 0 || header[2] != 0x08 || header[3] != dims) {
        snprintf(err, err_size,
                 "%s: magic %02x%02x%02x%02x is not an IDX file of unsigned bytes with %u "
                 "dimensions", path, header[0], header[1], header[2], header[3], dims);
        gzclose(f);
        return NULL;
    }
    for (unsigned i = 0; i < dims; ++i) {
        const unsigned char *b = header + 4 + 4 * i;
        shape[i] = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    }
    return f;
}

int dataset_load(const char *dir, const char *prefix, dataset *set, char *err, size_t err_size)
{
    memset(set, 0, sizeof *set);
    char path[4096];
    uint32_t ishape[3], lshape[1];

    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    gzFile f = open_idx(path, 3, ishape, err, err_size);
    if (!f)
        return -1;
    size_t bytes = (size_t)ishape[0] * ishape[1] * ishape[2];
    set->images = malloc(bytes ? bytes : 1);
    if (!set->images || read_all(f, set->images, bytes) != 0) {
        snprintf(err, err_size, "%s: %s", path,
                 set->images ? "fewer pixels than the header announces" : "out of memory");
        gzclose(f);
        dataset_free(set);
        return -1;
    }
    gzclose(f);

    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    f = open_idx(path, 1, lshape, err, err_size);
    if (!f) {
        dataset_free(set);
        return -1;
    }
    if (lshape[0] != ishape[0]) {
        snprintf(err, err_size, "%s: %u labels for %u images", path, (unsigned)lshape[0],
                 (unsigned)ishape[0]);
        gzclose(f);
        dataset_free(set);
        return -1;
    }
    set->labels = malloc(lshape[0] ? lshape[0] : 1);
    if (!set->labels || read_all(f, set->labels, lshape[0]) != 0) {
        snprintf(err, err_size, "%s: %s", path,
                 set->labels ? "fewer labels than the header announces" : "out of memory");
        gzclose(f);
        dataset_free(set);
        return -1;
    }
    gzclose(f);
    set->count = ishape[0];
    set->rows = ishape[1];
    set->cols = ishape[2];
    return 0;
}

void dataset_free(dataset *set)
{
    free(set->images);
    free(set->labels);
    memset(set, 0, sizeof *set);
}
