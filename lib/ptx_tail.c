/*
 * ptx_tail.c - a scheduling pass over NVIDIA's PTX of the big float GEMM tile.
 *
 * Why: with one local buffer the K loop of cl/gemm.cl ends each step with the
 * last k's products, a barrier, the stores of the next step's tiles and a
 * second barrier.  Between the barriers a work-group does no arithmetic, and
 * right after the second one it waits for its first local reads.  Products of
 * the last k that are issued after the second barrier fill that wait.  No
 * OpenCL C form of that order survives NVIDIA's compiler (its front end and
 * ptxas move the products back into the store phase, where they cost 3-6%);
 * moving them in the PTX the front end wrote does survive ptxas, and gains
 * 1% on the H100 (docs/gemm-notes.md, round 8).
 *
 * The pass is a pure text rewrite: for each named kernel it finds the basic
 * block with the most fma.rn.f32 (the K loop's products), takes its last
 * `count` products and moves them, unchanged, to just after the first
 * bar.sync of the block that follows.  It refuses (returns NULL) unless the
 * move provably keeps the program's meaning:
 *   - the moved lines are `count` consecutive fma.rn.f32 lines ending the
 *     products of the block;
 *   - after them the block holds a bar.sync and no branch other than to the
 *     label that follows it (the join of the store / no-store paths);
 *   - no other branch anywhere in the kernel targets that label, so every
 *     path from the products to the insertion point passes the moved lines
 *     exactly once;
 *   - from the label to its first bar.sync there is no branch or label;
 *   - no register a moved product reads or writes appears in any line it is
 *     moved past (so nothing in between reads a result early or redefines an
 *     operand).
 * Arithmetic moves past barriers freely: it touches no memory.
 */
#include "gpumat_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct line {
    size_t start, end; /* [start, end): the line without its '\n' */
} line;

typedef struct text {
    const char *p;
    line *lines;
    size_t count;
} text;

static bool split_lines(const char *p, size_t len, text *t)
{
    size_t n = 1;
    for (size_t i = 0; i < len; ++i)
        n += p[i] == '\n';
    t->p = p;
    t->count = 0;
    t->lines = malloc(n * sizeof *t->lines);
    if (!t->lines)
        return false;
    size_t start = 0;
    for (size_t i = 0; i <= len; ++i)
        if (i == len || p[i] == '\n') {
            t->lines[t->count++] = (line){start, i};
            start = i + 1;
        }
    return true;
}

/* The line without leading blanks, and its length. */
static const char *trimmed(const text *t, size_t i, size_t *len)
{
    size_t s = t->lines[i].start, e = t->lines[i].end;
    while (s < e && (t->p[s] == ' ' || t->p[s] == '\t'))
        ++s;
    while (e > s && (t->p[e - 1] == ' ' || t->p[e - 1] == '\t' || t->p[e - 1] == '\r'))
        --e;
    *len = e - s;
    return t->p + s;
}

static bool starts(const text *t, size_t i, const char *prefix)
{
    size_t len;
    const char *s = trimmed(t, i, &len);
    size_t n = strlen(prefix);
    return len >= n && memcmp(s, prefix, n) == 0;
}

/* "$NAME:" */
static bool is_label(const text *t, size_t i)
{
    size_t len;
    const char *s = trimmed(t, i, &len);
    return len >= 2 && s[0] == '$' && s[len - 1] == ':';
}

static bool is_fma(const text *t, size_t i) { return starts(t, i, "fma.rn.f32"); }

/* The target of a (possibly predicated) bra/bra.uni, or NULL. */
static const char *branch_target(const text *t, size_t i, size_t *len)
{
    size_t n;
    const char *s = trimmed(t, i, &n), *end = s + n;
    if (n && s[0] == '@') { /* guard predicate */
        while (s < end && *s != ' ' && *s != '\t')
            ++s;
        while (s < end && (*s == ' ' || *s == '\t'))
            ++s;
    }
    if ((size_t)(end - s) < 3 || memcmp(s, "bra", 3) != 0)
        return NULL;
    while (s < end && *s != ' ' && *s != '\t')
        ++s;
    while (s < end && (*s == ' ' || *s == '\t'))
        ++s;
    const char *target = s;
    while (s < end && *s != ';')
        ++s;
    *len = (size_t)(s - target);
    return *len ? target : NULL;
}

/* Does the line leave straight-line code: a label, a branch, a call, a
 * return or an exit? */
static bool ends_straight_line(const text *t, size_t i)
{
    size_t len;
    return is_label(t, i) || branch_target(t, i, &len) || starts(t, i, "ret") ||
           starts(t, i, "call") || starts(t, i, "exit");
}

/* Does register token reg (e.g. "%f12") occur in line i as a whole token? */
static bool mentions(const text *t, size_t i, const char *reg, size_t reg_len)
{
    const char *s = t->p + t->lines[i].start, *end = t->p + t->lines[i].end;
    for (const char *q = s; q + reg_len <= end; ++q) {
        if (memcmp(q, reg, reg_len) != 0)
            continue;
        const char after = q + reg_len < end ? q[reg_len] : ' ';
        if (!(after >= '0' && after <= '9') && !(after >= 'a' && after <= 'z'))
            return true;
    }
    return false;
}

/* Every register token of line i must be absent from lines [from, to). */
static bool registers_absent(const text *t, size_t i, size_t from, size_t to)
{
    const char *s = t->p + t->lines[i].start, *end = t->p + t->lines[i].end;
    while (s < end) {
        if (*s != '%') {
            ++s;
            continue;
        }
        const char *r = s++;
        while (s < end && ((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')))
            ++s;
        for (size_t j = from; j < to; ++j)
            if (mentions(t, j, r, (size_t)(s - r)))
                return false;
    }
    return true;
}

/* [first, last] lines of kernel `name`, or false. */
static bool find_kernel(const text *t, const char *name, size_t *first, size_t *last)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < t->count; ++i) {
        size_t len;
        const char *s = trimmed(t, i, &len);
        if (len >= 8 + n && memcmp(s, ".entry ", 7) == 0 && memcmp(s + 7, name, n) == 0 &&
            s[7 + n] == '(') {
            size_t j = i + 1;
            while (j < t->count && !starts(t, j, ".entry ") && !starts(t, j, ".metadata_section"))
                ++j;
            *first = i;
            *last = j - 1;
            return true;
        }
    }
    return false;
}

/* The rewrite of one kernel as three cut points: lines [a, b) (the products)
 * move to after line c.  false when the kernel does not have the expected
 * shape. */
static bool plan(const text *t, size_t first, size_t last, unsigned count, size_t *a, size_t *b,
                 size_t *c)
{
    /* The block (label to label) with the most products. */
    size_t best_start = 0, best_end = 0, best_fma = 0;
    for (size_t i = first; i <= last;) {
        size_t j = i + 1, fmas = is_fma(t, i);
        while (j <= last && !is_label(t, j))
            fmas += is_fma(t, j++);
        if (fmas > best_fma) {
            best_fma = fmas;
            best_start = i;
            best_end = j;
        }
        i = j;
    }
    if (best_fma < 2u * count || best_end > last)
        return false;
    size_t lastf = best_end;
    while (lastf > best_start && !is_fma(t, lastf - 1))
        --lastf;
    size_t from = lastf - count; /* first moved line */
    for (size_t i = from; i < lastf; ++i)
        if (!is_fma(t, i))
            return false;

    /* After the products: a barrier, and branches only to the join label. */
    size_t join_len, tlen;
    const char *join = trimmed(t, best_end, &join_len);
    --join_len; /* without ':' */
    bool barrier = false;
    for (size_t i = lastf; i < best_end; ++i) {
        const char *target = branch_target(t, i, &tlen);
        if (target && (tlen != join_len || memcmp(target, join, join_len) != 0))
            return false;
        if (starts(t, i, "ret") || starts(t, i, "call") || starts(t, i, "exit") ||
            is_fma(t, i))
            return false;
        barrier |= starts(t, i, "bar.sync");
    }
    if (!barrier)
        return false;
    /* No way into the join but from that block. */
    for (size_t i = first; i <= last; ++i) {
        const char *target = branch_target(t, i, &tlen);
        if (target && tlen == join_len && memcmp(target, join, join_len) == 0 &&
            (i < lastf || i >= best_end))
            return false;
    }
    /* The join's first barrier, with nothing in between that leaves. */
    size_t ins = best_end + 1;
    while (ins <= last && !starts(t, ins, "bar.sync")) {
        if (ends_straight_line(t, ins))
            return false;
        ++ins;
    }
    if (ins > last)
        return false;
    for (size_t i = from; i < lastf; ++i)
        if (!registers_absent(t, i, lastf, ins + 1))
            return false;
    *a = from;
    *b = lastf;
    *c = ins;
    return true;
}

char *gpumat__ptx_defer_products(const char *ptx, size_t len, const char *const *kernels,
                                 size_t n_kernels, unsigned count, size_t *out_len,
                                 unsigned *rewritten)
{
    *rewritten = 0;
    if (count == 0 || len == 0)
        return NULL;
    char *cur = malloc(len);
    char *next = malloc(len);
    if (!cur || !next) {
        free(cur);
        free(next);
        return NULL;
    }
    memcpy(cur, ptx, len);
    for (size_t k = 0; k < n_kernels; ++k) {
        text t;
        if (!split_lines(cur, len, &t))
            break;
        size_t first, last, a, b, c;
        if (find_kernel(&t, kernels[k], &first, &last) && plan(&t, first, last, count, &a, &b, &c) &&
            t.lines[c].end < len) {
            /* Bytes: [0, A) [B, C) [A, B) [C, len) with A, B, C line starts. */
            size_t A = t.lines[a].start, B = t.lines[b].start, C = t.lines[c].end + 1;
            memcpy(next, cur, A);
            memcpy(next + A, cur + B, C - B);
            memcpy(next + A + (C - B), cur + A, B - A);
            memcpy(next + C, cur + C, len - C);
            char *swap = cur;
            cur = next;
            next = swap;
            ++*rewritten;
        }
        free(t.lines);
    }
    free(next);
    if (*rewritten == 0) {
        free(cur);
        return NULL;
    }
    *out_len = len;
    return cur;
}
