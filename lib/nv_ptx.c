/*
 * nv_ptx.c - passes over NVIDIA's PTX of the big float GEMM tile
 * (cl/gemm.cl), applied by program.c to what NVIDIA's compiler built; the
 * program is then rebuilt from the edited PTX and kept only if it computes
 * bit-identical products (program.c).  Both passes are pure text.
 *
 * Why: NVIDIA's compiler schedules the K loop from the PTX its front end
 * writes, and no OpenCL C form of these two changes survives the front end:
 * semantically equal sources move the loop by -15..+2% (docs/gemm-notes.md,
 * rounds 4-7).  Made in the PTX, with everything else byte-identical, they
 * gain on the H100 (round 8).
 *
 * gpumat__ptx_defer_products: with one local buffer the K loop ends each
 * step with the last k's products, a barrier, the stores of the next step's
 * tiles and a second barrier.  Products of the last k issued after the
 * second barrier fill the group's wait for its first local reads.  For each
 * named kernel it finds the basic block with the most fma.rn.f32 (the K
 * loop's products), takes its last `count` products and moves them,
 * unchanged, to just after the first bar.sync of the block that follows.
 * It refuses (returns NULL) unless the move provably keeps the program's
 * meaning:
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
 *
 * gpumat__ptx_skew_rows: the NN kernel stores A transposed, four scalar
 * stores per piece into four consecutive rows (k) of the local tile As; the
 * 32 work-items of a warp cover 8 columns (m) x 4 chunks of 4 rows, and with
 * rows 132 floats apart chunks c and c + 2 land in the same banks: every
 * store takes two passes.  Rows from rows/2 on start `skew` bytes later (32:
 * 8 floats) and the chunks cover banks 0-7, 16-23, 8-15, 24-31.  The pass
 * widens the array, offsets the store addresses of the work-items whose
 * chunk is 2 or 3 (bit 1 of tid.x) and the K loop's reads of those rows.
 * It refuses unless As's address (one mov of it, or several: the stream-K
 * kernel takes it again where it uses it) reaches exactly `pieces` store
 * bases (kept across the loop), or 2 x `pieces` (the loop computes its
 * own), each used only by st.shared.f32 at row offsets 0-3, and one read
 * base, used only by the K loop's ld.shared.v4.f32, so that no access to
 * As is missed.
 *
 * gpumat__ptx_extra_column: a grid of whole tile rows cannot hold a number
 * of tiles that fills whole waves when the waves do not divide into rows
 * (H100, 4096^3: 264 groups a wave, 32 tiles a row).  With one more column
 * of groups, whose group y takes tile (number of group rows, y), R rows of
 * groups cover R tile rows and the first R tiles of the next: 24 rows of
 * 33 are the 792 tiles of three waves.  The extra column is named by the
 * launch's global offset along x (E: column E - 1), which no kernel reads
 * otherwise, so every launch without an offset keeps its tiles.  The front
 * end computes the group index from %ctaid and %envreg wherever it uses it
 * (before the K loop and again for the stores after it); each of those
 * triples' add becomes the remapped value, computed from the same
 * registers on the spot, so that nothing new stays live across the loop.
 * Written in the OpenCL C source, the same map moved ptxas's schedule of
 * the loop by -4% (its tile row became a vector register instead of a
 * uniform one); this form keeps the NN and TN loops instruction for
 * instruction and NT's but for register names (TT's changes, so program.c
 * leaves TT out).  It refuses any kernel that reads %ctaid.x/y or
 * %envreg0/1 otherwise.  %envreg3 is get_global_offset(0) and %envreg7
 * get_num_groups(1) in NVIDIA's PTX (its front end's own output), and
 * program.c checks the map on the device before keeping it.
 */
#include "gpumat_internal.h"

#include <stdarg.h>
#include <stdio.h>
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

/* The K loop's block: lines [*start, *end) between labels, the one of
 * kernel lines [first, last] with the most products; their count. */
static size_t loop_block(const text *t, size_t first, size_t last, size_t *start, size_t *end)
{
    size_t best = 0;
    for (size_t i = first; i <= last;) {
        size_t j = i + 1, fmas = is_fma(t, i);
        while (j <= last && !is_label(t, j))
            fmas += is_fma(t, j++);
        if (fmas > best) {
            best = fmas;
            *start = i;
            *end = j;
        }
        i = j;
    }
    return best;
}

/* The rewrite of one kernel as three cut points: lines [a, b) (the products)
 * move to after line c.  false when the kernel does not have the expected
 * shape. */
static bool plan(const text *t, size_t first, size_t last, unsigned count, size_t *a, size_t *b,
                 size_t *c)
{
    size_t best_start = 0, best_end = 0;
    size_t best_fma = loop_block(t, first, last, &best_start, &best_end);
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

/* Appends n bytes, or printf-formatted text, to buf[*at, cap); false when
 * they do not fit (with room for a final byte). */
static bool append(char *buf, size_t cap, size_t *at, const char *bytes, size_t n)
{
    if (n >= cap - *at)
        return false;
    memcpy(buf + *at, bytes, n);
    *at += n;
    return true;
}

static bool appendf(char *buf, size_t cap, size_t *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf + *at, cap - *at, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= cap - *at)
        return false;
    *at += (size_t)w;
    return true;
}

/* Is no token starting with one of the `n` prefixes (a pass's register
 * names) in lines [first, last]? */
static bool names_free(const text *t, size_t first, size_t last, const char *const *prefixes,
                       size_t n)
{
    for (size_t i = first; i <= last; ++i) {
        const char *s = t->p + t->lines[i].start, *end = t->p + t->lines[i].end;
        for (const char *q = s; q < end; ++q)
            for (size_t k = 0; k < n; ++k) {
                size_t pl = strlen(prefixes[k]);
                if ((size_t)(end - q) >= pl && memcmp(q, prefixes[k], pl) == 0)
                    return false;
            }
    }
    return true;
}

/* The kernel's last declaration line (.reg, .shared, .local) in [first,
 * last]: a pass's own declarations and setup go after it. */
static size_t last_declaration(const text *t, size_t first, size_t last)
{
    size_t decl_end = first;
    for (size_t i = first; i <= last; ++i)
        if (starts(t, i, ".reg") || starts(t, i, ".shared") || starts(t, i, ".local"))
            decl_end = i;
    return decl_end;
}

/* ---- gpumat__ptx_skew_rows ------------------------------------------------ */

/* The register of "[%rdX]" / "[%rdX+N]" in line i, and N. */
static bool address(const text *t, size_t i, const char **reg, size_t *reg_len, long *offset)
{
    const char *s = t->p + t->lines[i].start, *end = t->p + t->lines[i].end;
    const char *open = memchr(s, '[', (size_t)(end - s));
    if (!open || open + 2 >= end || open[1] != '%')
        return false;
    const char *r = open + 1, *q = r + 1;
    while (q < end && ((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9')))
        ++q;
    *reg = r;
    *reg_len = (size_t)(q - r);
    *offset = 0;
    if (q < end && *q == '+') {
        char *after;
        *offset = strtol(q + 1, &after, 10);
        q = after;
    }
    return q < end && *q == ']';
}

/* The first operand of line i (after the opcode), as a register token. */
static bool first_operand(const text *t, size_t i, const char **reg, size_t *reg_len)
{
    size_t n;
    const char *s = trimmed(t, i, &n), *end = s + n;
    while (s < end && *s != ' ' && *s != '\t')
        ++s;
    while (s < end && (*s == ' ' || *s == '\t'))
        ++s;
    const char *r = s;
    while (s < end && *s != ',' && *s != ';')
        ++s;
    *reg = r;
    *reg_len = (size_t)(s - r);
    return *reg_len > 1 && r[0] == '%';
}

/* What happens to one line of the kernel (at most one edit each: a read,
 * a store base's definition or the declaration). */
typedef struct edit_line {
    char text[160];  /* replacement, or "" to keep */
    char after[128]; /* inserted after it, or "" */
} edit_line;

#define SKEW_MAX_BASES 16
#define SKEW_MAX_MOVS 4

char *gpumat__ptx_skew_rows(const char *ptx, size_t len, const char *kernel, const char *array,
                            unsigned rows, unsigned row_bytes, unsigned pieces, unsigned skew,
                            size_t *out_len)
{
    if (!skew || skew % 16 || rows < 2 || rows % 2 || pieces == 0 || pieces > SKEW_MAX_BASES ||
        len == 0)
        return NULL;
    text t;
    if (!split_lines(ptx, len, &t))
        return NULL;
    char *result = NULL;
    edit_line *edits = NULL;
    size_t first, last;
    char symbol[128];
    snprintf(symbol, sizeof symbol, "%s_$_%s", kernel, array);
    size_t sym_len = strlen(symbol);
    if (!find_kernel(&t, kernel, &first, &last) || last - first + 1 > 1000000)
        goto done;
    edits = calloc(last - first + 1, sizeof *edits); /* by line - first */
    if (!edits)
        goto done;
    static const char *const ours[] = {"%rsk", "%rdsk"};
    if (!names_free(&t, first, last, ours, 2))
        goto done;

    /* The declaration, with the size rows x row_bytes; the movs of its
     * address (the front end may take it again where it uses it). */
    size_t decl = 0, mov[SKEW_MAX_MOVS], n_decl = 0, n_mov = 0;
    for (size_t i = first; i <= last; ++i) {
        const char *s = t.p + t.lines[i].start, *end = t.p + t.lines[i].end;
        for (const char *q = s; q + sym_len <= end; ++q)
            if (memcmp(q, symbol, sym_len) == 0) {
                if (starts(&t, i, ".shared"))
                    decl = i, ++n_decl;
                else if (starts(&t, i, "mov.u64") && n_mov < SKEW_MAX_MOVS)
                    mov[n_mov++] = i;
                else
                    goto done;
                break;
            }
    }
    if (n_decl != 1 || n_mov == 0)
        goto done;
    char want[192];
    snprintf(want, sizeof want, "%s[%u];", symbol, rows * row_bytes);
    {
        size_t n;
        const char *s = trimmed(&t, decl, &n);
        size_t wl = strlen(want);
        if (n < wl || memcmp(s + n - wl, want, wl) != 0)
            goto done;
    }
    /* Every use of each address register: "add.s64 X, base, Y" (either
     * order); each X a store base or the read base. */
    size_t s_blk = 0, e_blk = 0;
    if (!loop_block(&t, first, last, &s_blk, &e_blk))
        goto done;
    unsigned stores = 0, reads = 0;
    for (size_t m = 0; m < n_mov; ++m) {
        const char *base;
        size_t base_len;
        if (!first_operand(&t, mov[m], &base, &base_len) || base_len >= 32)
            goto done;
        char base_reg[32];
        memcpy(base_reg, base, base_len);
        base_reg[base_len] = '\0';
        for (size_t i = first; i <= last; ++i) {
            if (i == mov[m] || !mentions(&t, i, base_reg, base_len))
                continue;
            const char *x;
            size_t xl;
            if (!starts(&t, i, "add.s64") || !first_operand(&t, i, &x, &xl) || xl >= 32 ||
                (xl == base_len && memcmp(x, base_reg, xl) == 0))
                goto done;
            char derived[32];
            memcpy(derived, x, xl);
            derived[xl] = '\0';
            /* Its other lines: all stores at rows 0-3 of a piece, or all reads
             * in the K loop's block. */
            unsigned n_st = 0, n_ld = 0;
            for (size_t j = first; j <= last; ++j) {
                if (j == i || !mentions(&t, j, derived, xl))
                    continue;
                const char *r;
                size_t rl;
                long off;
                if (!address(&t, j, &r, &rl, &off) || rl != xl || memcmp(r, derived, xl) != 0)
                    goto done;
                if (starts(&t, j, "st.shared.f32") && off >= 0 && off % row_bytes == 0 &&
                    off / row_bytes < 4) {
                    ++n_st;
                } else if (starts(&t, j, "ld.shared.v4.f32") && j > s_blk && j < e_blk &&
                           off >= 0 &&
                           off < (long)(rows * row_bytes)) {
                    ++n_ld;
                    if (off >= (long)(rows / 2 * row_bytes)) {
                        edit_line *ed = &edits[j - first];
                        /* "...[%rdX+OFF]..." with OFF + skew */
                        const char *s = t.p + t.lines[j].start, *end = t.p + t.lines[j].end;
                        const char *open = memchr(s, '[', (size_t)(end - s));
                        const char *close = memchr(open, ']', (size_t)(end - open));
                        int w = snprintf(ed->text, sizeof ed->text, "%.*s[%s+%ld]%.*s",
                                         (int)(open - s), s, derived, off + (long)skew,
                                         (int)(end - close - 1), close + 1);
                        if (w < 0 || (size_t)w >= sizeof ed->text)
                            goto done;
                    }
                } else {
                    goto done;
                }
            }
            if (n_st && !n_ld) {
                ++stores;
                edit_line *ed = &edits[i - first];
                snprintf(ed->after, sizeof ed->after, "\tadd.s64 \t%s, %s, %%rdsk0;", derived,
                         derived);
            } else if (n_ld && !n_st) {
                ++reads;
            } else {
                goto done;
            }
        }
    }
    if ((stores != pieces && stores != 2 * pieces) || reads != 1)
        goto done;

    /* The skew, computed after the declarations: (tid.x & 2) * skew / 2. */
    size_t decl_end = last_declaration(&t, first, last);
    {
        edit_line *ed = &edits[decl - first];
        char size[192];
        snprintf(size, sizeof size, "%s[%u];", symbol, rows * row_bytes + skew);
        size_t n;
        const char *s = trimmed(&t, decl, &n);
        int w = snprintf(ed->text, sizeof ed->text, "\t%.*s%s", (int)(n - strlen(want)), s, size);
        if (w < 0 || (size_t)w >= sizeof ed->text)
            goto done;
    }

    /* Assemble: every line, edited, plus the insertions. */
    size_t cap = len + (last - first + 1) * sizeof *edits + 512, at = 0;
    result = malloc(cap);
    if (!result)
        goto done;
    for (size_t i = 0; i < t.count; ++i) {
        const edit_line *ed = i >= first && i <= last ? &edits[i - first] : NULL;
        /* Lines are copied as bytes: NVIDIA's binary ends in NULs. */
        const char *from = ed && ed->text[0] ? ed->text : t.p + t.lines[i].start;
        size_t n = ed && ed->text[0] ? strlen(ed->text) : t.lines[i].end - t.lines[i].start;
        if (!append(result, cap, &at, from, n) ||
            (ed && ed->after[0] && !appendf(result, cap, &at, "\n%s", ed->after)) ||
            (i == decl_end &&
             !appendf(result, cap, &at,
                      "\n\t.reg .b32 \t%%rsk<3>;\n\t.reg .b64 \t%%rdsk<1>;\n"
                      "\tmov.u32 \t%%rsk0, %%tid.x;\n\tand.b32 \t%%rsk1, %%rsk0, 2;\n"
                      "\tmul.lo.u32 \t%%rsk2, %%rsk1, %u;\n\tcvt.u64.u32 \t%%rdsk0, %%rsk2;",
                      skew / 2)) ||
            (i + 1 < t.count && !append(result, cap, &at, "\n", 1)))
            goto fail;
    }
    *out_len = at;
    goto done;
fail:
    free(result);
    result = NULL;
done:
    free(edits);
    free(t.lines);
    return result;
}

/* ---- gpumat__ptx_extra_column ---------------------------------------------- */

/* Line i as "OP A, B;" or "OP A, B, C;": the number of operands (2 or 3),
 * or 0 when it is neither or too long. */
static int operands(const text *t, size_t i, char op[24], char a[32], char b[32], char c[32])
{
    size_t n;
    const char *s = trimmed(t, i, &n);
    char buf[160];
    if (n == 0 || n >= sizeof buf)
        return 0;
    memcpy(buf, s, n);
    buf[n] = '\0';
    int got = sscanf(buf, "%23s %31[^,], %31[^,;], %31[^;];", op, a, b, c);
    return got == 4 ? 3 : got == 3 && buf[n - 1] == ';' ? 2 : 0;
}

/* Is register r mentioned in [first, last] outside lines i .. i+2? */
static bool used_elsewhere(const text *t, size_t first, size_t last, size_t i, const char *r)
{
    size_t rl = strlen(r);
    for (size_t j = first; j <= last; ++j)
        if ((j < i || j > i + 2) && mentions(t, j, r, rl))
            return true;
    return false;
}

/* The group index along d (0: x, 1: y) as NVIDIA's front end writes it:
 * "mov.u32 A, %ctaid.D; mov.b32 B, %envregD; add.s32 C, B, A;" (either
 * order in the add), A and B used nowhere else; C out. */
static bool group_id_at(const text *t, size_t first, size_t last, size_t i, int d, char c[32])
{
    char op[24], a[32], b[32], e[32], x[32], y[32], want[16];
    if (i + 2 > last || operands(t, i, op, a, b, x) != 2 || strcmp(op, "mov.u32") != 0)
        return false;
    snprintf(want, sizeof want, "%%ctaid.%c", d ? 'y' : 'x');
    if (strcmp(b, want) != 0 || operands(t, i + 1, op, e, b, x) != 2 ||
        strcmp(op, "mov.b32") != 0)
        return false;
    snprintf(want, sizeof want, "%%envreg%d", d);
    if (strcmp(b, want) != 0 || operands(t, i + 2, op, c, x, y) != 3 ||
        strcmp(op, "add.s32") != 0 ||
        !((strcmp(x, a) == 0 && strcmp(y, e) == 0) || (strcmp(x, e) == 0 && strcmp(y, a) == 0)))
        return false;
    return !used_elsewhere(t, first, last, i, a) && !used_elsewhere(t, first, last, i, e);
}

#define XCOL_MAX_SITES 16

char *gpumat__ptx_extra_column(const char *ptx, size_t len, const char *const *kernels,
                               size_t n_kernels, size_t *out_len, unsigned *rewritten)
{
    *rewritten = 0;
    if (len == 0 || n_kernels == 0)
        return NULL;
    char *cur = malloc(len);
    if (!cur)
        return NULL;
    memcpy(cur, ptx, len);
    size_t cur_len = len;
    for (size_t k = 0; k < n_kernels; ++k) {
        text t;
        if (!split_lines(cur, cur_len, &t))
            break;
        size_t first = 0, last = 0, n_sites = 0;
        struct {
            size_t line; /* the triple's add */
            char dst[32];
            int d;
        } sites[XCOL_MAX_SITES];
        unsigned found[2] = {0, 0};
        static const char *const ours[] = {"%rxc", "%pxc"};
        bool ok =
            find_kernel(&t, kernels[k], &first, &last) && names_free(&t, first, last, ours, 2);
        /* Every mention of the group index registers is one of the triples. */
        for (size_t i = first; ok && i <= last; ++i) {
            static const char *const ids[] = {"%ctaid.x", "%ctaid.y", "%envreg0", "%envreg1"};
            bool id = false;
            for (size_t r = 0; r < sizeof ids / sizeof ids[0]; ++r)
                id |= mentions(&t, i, ids[r], strlen(ids[r]));
            if (!id)
                continue;
            int d = n_sites == XCOL_MAX_SITES                         ? -1
                    : group_id_at(&t, first, last, i, 0, sites[n_sites].dst) ? 0
                    : group_id_at(&t, first, last, i, 1, sites[n_sites].dst) ? 1
                                                                           : -1;
            if (d < 0) {
                ok = false;
                break;
            }
            sites[n_sites].line = i + 2;
            sites[n_sites++].d = d;
            ++found[d];
            i += 2;
        }
        char *next = NULL;
        size_t decl_end = first, at = 0;
        if (!ok || !found[0] || !found[1])
            goto next_kernel;
        decl_end = last_declaration(&t, first, last);
        /* Each triple's add becomes the remapped index, computed from the
         * group registers where the front end computed the plain one (so
         * nothing new stays live across the K loop): E = get_global_offset(0)
         * (%envreg3), and a group in column x = E - 1 takes tile (number of
         * group rows (%envreg7), y); every other group keeps (y, x). */
        size_t cap = cur_len + n_sites * 640 + 128;
        next = malloc(cap);
        if (!next)
            goto next_kernel;
        for (size_t i = 0; i < t.count; ++i) {
            size_t site = n_sites;
            for (size_t j = 0; i >= first && i <= last && j < n_sites; ++j)
                if (sites[j].line == i)
                    site = j;
            bool ok_line;
            if (site < n_sites) {
                unsigned r = 6 * (unsigned)site, p = (unsigned)site;
                const bool y = sites[site].d == 1;
                ok_line = appendf(
                    next, cap, &at,
                    "\tmov.u32 \t%%rxc%u, %%ctaid.x;\n\tmov.b32 \t%%rxc%u, %%envreg0;\n"
                    "\tadd.s32 \t%%rxc%u, %%rxc%u, %%rxc%u;\n"
                    "\tmov.u32 \t%%rxc%u, %%ctaid.y;\n\tmov.b32 \t%%rxc%u, %%envreg1;\n"
                    "\tadd.s32 \t%%rxc%u, %%rxc%u, %%rxc%u;\n"
                    "\tmov.b32 \t%%rxc%u, %%envreg3;\n\tmov.b32 \t%%rxc%u, %%envreg7;\n"
                    "\tadd.s32 \t%%rxc%u, %%rxc%u, 1;\n"
                    "\tsetp.eq.s32 \t%%pxc%u, %%rxc%u, %%rxc%u;\n"
                    "\tselp.b32 \t%s, %%rxc%u, %%rxc%u, %%pxc%u;",
                    r, r + 5, r, r + 5, r, r + 1, r + 4, r + 1, r + 4, r + 1, r + 2, r + 3, r + 5,
                    r, p, r + 5, r + 2, sites[site].dst, y ? r + 3 : r + 1, y ? r + 1 : r, p);
            } else {
                ok_line = append(next, cap, &at, t.p + t.lines[i].start,
                                 t.lines[i].end - t.lines[i].start);
            }
            if (!ok_line ||
                (i == decl_end &&
                 !appendf(next, cap, &at, "\n\t.reg .b32 \t%%rxc<%u>;\n\t.reg .pred \t%%pxc<%u>;",
                          6 * (unsigned)n_sites, (unsigned)n_sites)) ||
                (i + 1 < t.count && !append(next, cap, &at, "\n", 1)))
                goto fail;
        }
        free(cur);
        cur = next;
        cur_len = at;
        ++*rewritten;
        goto next_kernel;
    fail:
        free(next);
    next_kernel:
        free(t.lines);
    }
    if (*rewritten == 0) {
        free(cur);
        return NULL;
    }
    *out_len = cur_len;
    return cur;
}

/* Takes a pass's output `next` (NULL: the pass did not apply) as the
 * current text, freeing the one before unless it is the caller's input. */
static bool take(char **cur, size_t *cur_len, const char *input, char *next, size_t next_len)
{
    if (!next)
        return false;
    if (*cur != input)
        free(*cur);
    *cur = next;
    *cur_len = next_len;
    return true;
}

char *gpumat__ptx_passes(const char *ptx, size_t len, const gpumat__ptx_plan *plan,
                         size_t *out_len, unsigned *applied)
{
    /* Each pass's length is read in a statement of its own, after the
     * pass: an argument list leaves the order of reads unspecified. */
    char *cur = (char *)ptx, *next;
    size_t cur_len = len, next_len = 0;
    unsigned rewritten = 0;
    *applied = 0;
    if (plan->tail) {
        next = gpumat__ptx_defer_products(cur, cur_len, plan->tail_kernels, plan->n_tail_kernels,
                                          plan->tail, &next_len, &rewritten);
        if (take(&cur, &cur_len, ptx, next, next_len))
            *applied |= GPUMAT__PTX_TAIL;
    }
    if (plan->skew) {
        next = gpumat__ptx_skew_rows(cur, cur_len, plan->skew_kernel, plan->skew_array,
                                     plan->skew_rows, plan->skew_row_bytes, plan->skew_pieces,
                                     plan->skew, &next_len);
        if (take(&cur, &cur_len, ptx, next, next_len))
            *applied |= GPUMAT__PTX_SKEW;
    }
    if (plan->n_xcol_kernels) {
        next = gpumat__ptx_extra_column(cur, cur_len, plan->xcol_kernels, plan->n_xcol_kernels,
                                        &next_len, &rewritten);
        /* All or none: the host launches the extra column per program. */
        if (next && rewritten != plan->n_xcol_kernels) {
            free(next);
            next = NULL;
        }
        if (take(&cur, &cur_len, ptx, next, next_len))
            *applied |= GPUMAT__PTX_XCOL;
    }
    if (cur == ptx)
        return NULL;
    *out_len = cur_len;
    return cur;
}
