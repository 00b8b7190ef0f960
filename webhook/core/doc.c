/* YAML or JSON text to a cJSON tree, with the place of every node.
 *
 * libyaml's event parser drives a small explicit stack (no recursion), so the
 * nesting bound is checked before anything deeper is built. Every node is
 * attached to the tree as soon as it is created, so a failure anywhere needs
 * only one cJSON_Delete() of the root. */
#include "doc.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <search.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "err.h"
#include "webhook_limits.h"

/* How much of a user's scalar, key or tag is quoted back in a message. Not a
 * resource bound: it only keeps messages short. */
#define SHOW_MAX 48u
#define SHOW_BUF (SHOW_MAX + 8u)   /* "!!", the text, "..." and the NUL */

/* The largest integer a double (and so cJSON) holds exactly. */
#define EXACT_INT_MAX 9007199254740992ull

#define CORE_TAG "tag:yaml.org,2002:"

struct pos {
        const cJSON *node;
        unsigned line, col;
        unsigned key_line, key_col;     /* a map member's key; 0 for others */
};

struct doc {
        cJSON *root;
        struct pos *pos;        /* one entry per node, in document (pre-)order */
        size_t npos, cap;
};

/* What a tag (or its absence) asks a node to be. */
enum kind {
        KIND_AUTO,              /* plain, untagged scalar: the core schema decides */
        KIND_STR,
        KIND_NULL,
        KIND_BOOL,
        KIND_INT,
        KIND_FLOAT,
        KIND_MAP,
        KIND_SEQ,
        KIND_UNSUPPORTED,       /* a tag:yaml.org,2002: type we do not handle */
        KIND_UNKNOWN,           /* a local or foreign tag */
};

struct anchor {
        char *name;             /* first: the tsearch() comparison reads it */
        bool scalar;
        /* Scalars keep their text and kind, so an alias may be a key too. */
        char *text;
        size_t len;
        enum kind kind;
        /* Collections point into the tree, which is only ever appended to. */
        const cJSON *node;
        size_t pos_first;       /* the subtree's first entry in doc->pos */
        size_t nodes;
        size_t bytes;
        unsigned height;
};

struct frame {
        cJSON *node;
        bool is_map;
        char *key;              /* map: a key whose value has not come yet */
        unsigned key_line, key_col;     /* ... and where it stands */
        void *keys;             /* map: tsearch() tree of the keys so far (char *) */
        char *anchor;           /* registered when the collection ends */
        size_t pos_first;
        size_t nodes_at_start;
        size_t bytes_at_start;
        unsigned child_height;  /* tallest child so far; a scalar is 0 */
};

struct parser {
        struct doc *doc;
        struct frame stack[WH_MAX_POLICY_DEPTH];
        size_t depth;
        void *anchors;          /* tsearch() tree of struct anchor */
        size_t nodes;           /* cJSON nodes built, alias copies included */
        size_t bytes;           /* key and string bytes built, copies included */
        size_t alias_bytes;     /* of those, bytes that aliases copied */
        locale_t c_locale;      /* for strtod_l(); made on the first float */
        const char *text;
        size_t len;
        unsigned end_line, end_col;     /* the place just past the text */
        char *err;
        size_t errlen;
};

/* "LINE:COL: message": err_set() with the place first. */
static void err_set_at(char *err, size_t errlen, unsigned line, unsigned col, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));

static void err_set_at(char *err, size_t errlen, unsigned line, unsigned col, const char *fmt, ...)
{
        va_list ap;

        err_set(err, errlen, "%u:%u: ", line, col);
        va_start(ap, fmt);
        err_vappend(err, errlen, fmt, ap);
        va_end(ap);
}

static size_t line_break_width(const char *text, size_t len, size_t i)
{
        const unsigned char *p = (const unsigned char *)text + i;
        size_t left = len - i;

        if (p[0] == '\n' || p[0] == '\r')
                return 1;
        /* NEL, LINE SEPARATOR and PARAGRAPH SEPARATOR, which libyaml counts too. */
        if (left >= 2 && p[0] == 0xC2 && p[1] == 0x85)
                return 2;
        if (left >= 3 && p[0] == 0xE2 && p[1] == 0x80 && (p[2] == 0xA8 || p[2] == 0xA9))
                return 3;
        return 0;
}

/* Line and column (1-based, in characters, as libyaml counts them) of a
 * byte offset, for errors that libyaml reports by offset only. */
static void offset_place(const char *text, size_t len, size_t off, unsigned *ret_line, unsigned *ret_col)
{
        unsigned line = 1, col = 1;
        size_t i = 0;

        while (i < off && i < len) {
                size_t w = line_break_width(text, len, i);

                if (w > 0) {
                        /* CR LF is one break. */
                        if (text[i] == '\r' && i + 1 < len && text[i + 1] == '\n')
                                w = 2;
                        line++;
                        col = 1;
                        i += w;
                        continue;
                }
                if (((unsigned char)text[i] & 0xC0) != 0x80)
                        col++;
                i++;
        }
        *ret_line = line;
        *ret_col = col;
}

/* 1-based place of a libyaml mark. libyaml ends a text that has no final
 * line break with a line break of its own, so a mark at the very end would
 * point past the text: clamp it to the end. */
static void mark_place(const struct parser *ps, yaml_mark_t mark, unsigned *ret_line, unsigned *ret_col)
{
        unsigned line = (unsigned)mark.line + 1, col = (unsigned)mark.column + 1;

        if (line > ps->end_line || (line == ps->end_line && col > ps->end_col)) {
                line = ps->end_line;
                col = ps->end_col;
        }
        *ret_line = line;
        *ret_col = col;
}

static int fail(struct parser *ps, int ret, yaml_mark_t mark, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static int fail(struct parser *ps, int ret, yaml_mark_t mark, const char *fmt, ...)
{
        unsigned line, col;
        char msg[256];
        va_list ap;

        mark_place(ps, mark, &line, &col);
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        err_set_at(ps->err, ps->errlen, line, col, "%s", msg);
        return ret;
}

/* A printable, shortened copy of user text for a message: control bytes
 * become '?', and a cut never splits a UTF-8 sequence. Writes at most
 * SHOW_MAX + 4 bytes to `out`. */
static const char *show(char *out, const char *s, size_t n)
{
        size_t cut = n, i;

        if (cut > SHOW_MAX) {
                cut = SHOW_MAX;
                while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
                        cut--;
        }
        for (i = 0; i < cut; i++) {
                unsigned char c = (unsigned char)s[i];
                out[i] = (c < 0x20 || c == 0x7F) ? '?' : (char)c;
        }
        if (cut < n) {
                memcpy(out + i, "...", 3);
                i += 3;
        }
        out[i] = '\0';
        return out;
}

/* "!!int" for core tags, the tag itself otherwise. `out` holds SHOW_BUF. */
static const char *show_tag(char *out, const char *tag)
{
        size_t plen = strlen(CORE_TAG);

        if (strncmp(tag, CORE_TAG, plen) == 0) {
                out[0] = '!';
                out[1] = '!';
                show(out + 2, tag + plen, strlen(tag + plen));
                return out;
        }
        return show(out, tag, strlen(tag));
}

static bool text_is(const char *s, size_t n, const char *lit)
{
        return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

static enum kind tag_kind(const char *tag, bool plain)
{
        static const struct {
                const char *name;
                enum kind kind;
        } core[] = {
                { "str", KIND_STR },     { "null", KIND_NULL }, { "bool", KIND_BOOL }, { "int", KIND_INT },
                { "float", KIND_FLOAT }, { "map", KIND_MAP },   { "seq", KIND_SEQ },
        };
        size_t plen = strlen(CORE_TAG), i;

        if (!tag)
                return plain ? KIND_AUTO : KIND_STR;
        /* The non-specific tag "!" means "not resolved": a string, or just a
         * mapping or sequence. */
        if (strcmp(tag, "!") == 0)
                return KIND_STR;
        if (strncmp(tag, CORE_TAG, plen) != 0)
                return KIND_UNKNOWN;
        for (i = 0; i < sizeof(core) / sizeof(core[0]); i++)
                if (strcmp(tag + plen, core[i].name) == 0)
                        return core[i].kind;
        return KIND_UNSUPPORTED;
}

static int check_tag(struct parser *ps, const char *tag, enum kind kind, enum kind want, yaml_mark_t mark)
{
        char shown[SHOW_BUF];

        if (kind == KIND_UNKNOWN)
                return fail(ps, -EINVAL, mark, "unknown tag %s", show_tag(shown, tag));
        if (kind == KIND_UNSUPPORTED)
                return fail(ps, -EINVAL, mark, "unsupported tag %s", show_tag(shown, tag));
        if (want == KIND_MAP || want == KIND_SEQ) {
                /* "!" (KIND_STR) on a collection is just non-specific. */
                if (tag && kind != want && kind != KIND_STR)
                        return fail(ps, -EINVAL, mark, "tag %s on a %s", show_tag(shown, tag),
                                    want == KIND_MAP ? "mapping" : "sequence");
                return 0;
        }
        if (kind == KIND_MAP || kind == KIND_SEQ)
                return fail(ps, -EINVAL, mark, "tag %s on a scalar", show_tag(shown, tag));
        return 0;
}

static bool match_null(const char *s, size_t n)
{
        return n == 0 || text_is(s, n, "~") || text_is(s, n, "null") || text_is(s, n, "Null") || text_is(s, n, "NULL");
}

static bool match_bool(const char *s, size_t n, bool *ret)
{
        if (text_is(s, n, "true") || text_is(s, n, "True") || text_is(s, n, "TRUE")) {
                *ret = true;
                return true;
        }
        if (text_is(s, n, "false") || text_is(s, n, "False") || text_is(s, n, "FALSE")) {
                *ret = false;
                return true;
        }
        return false;
}

static int digit_value(char c, unsigned base)
{
        int v;

        if (c >= '0' && c <= '9')
                v = c - '0';
        else if (c >= 'a' && c <= 'f')
                v = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
                v = c - 'A' + 10;
        else
                return -1;
        return (unsigned)v < base ? v : -1;
}

/* Core schema integers: [-+]?[0-9]+, 0o[0-7]+, 0x[0-9a-fA-F]+. 0, -EINVAL
 * when `s` is not one, -ERANGE when a double cannot hold it exactly. */
static int match_int(const char *s, size_t n, double *ret)
{
        unsigned base = 10;
        bool neg = false, big = false;
        uint64_t v = 0;
        size_t i = 0;

        if (n > 2 && s[0] == '0' && (s[1] == 'o' || s[1] == 'x')) {
                base = s[1] == 'o' ? 8 : 16;
                i = 2;
        } else if (n > 0 && (s[0] == '-' || s[0] == '+')) {
                neg = s[0] == '-';
                i = 1;
        }
        if (i == n)
                return -EINVAL;
        for (; i < n; i++) {
                int d = digit_value(s[i], base);

                if (d < 0)
                        return -EINVAL;
                if (v > (EXACT_INT_MAX - (unsigned)d) / base)
                        big = true;             /* keep going: it may not be an integer at all */
                else
                        v = v * base + (unsigned)d;
        }
        if (big)
                return -ERANGE;
        *ret = v == 0 ? 0.0 : neg ? -(double)v : (double)v;
        return 0;
}

static size_t count_digits(const char *s, size_t n, size_t i)
{
        size_t start = i;

        while (i < n && s[i] >= '0' && s[i] <= '9')
                i++;
        return i - start;
}

/* Core schema floats. `s` is NUL-terminated at `n`. 0, -EINVAL when `s` is
 * not one, -ERANGE when it overflows, -EDOM for .inf and .nan, -ENOMEM. */
static int match_float(struct parser *ps, const char *s, size_t n, double *ret)
{
        size_t i = 0, int_digits, frac_digits = 0;
        char *end;
        double v;

        if (n > 0 && (s[0] == '-' || s[0] == '+'))
                i = 1;
        if (text_is(s + i, n - i, ".inf") || text_is(s + i, n - i, ".Inf") || text_is(s + i, n - i, ".INF"))
                return -EDOM;
        if (text_is(s, n, ".nan") || text_is(s, n, ".NaN") || text_is(s, n, ".NAN"))
                return -EDOM;
        int_digits = count_digits(s, n, i);
        i += int_digits;
        if (i < n && s[i] == '.') {
                i++;
                frac_digits = count_digits(s, n, i);
                i += frac_digits;
        }
        if (int_digits == 0 && frac_digits == 0)
                return -EINVAL;
        if (i < n && (s[i] == 'e' || s[i] == 'E')) {
                size_t exp_digits;

                i++;
                if (i < n && (s[i] == '-' || s[i] == '+'))
                        i++;
                exp_digits = count_digits(s, n, i);
                if (exp_digits == 0)
                        return -EINVAL;
                i += exp_digits;
        }
        if (i != n)
                return -EINVAL;

        if (ps->c_locale == (locale_t)0) {
                ps->c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
                if (ps->c_locale == (locale_t)0)
                        return -ENOMEM;
        }
        v = strtod_l(s, &end, ps->c_locale);
        if (end != s + n)
                return -EINVAL;
        if (!isfinite(v))
                return -ERANGE;
        *ret = v;
        return 0;
}

/* Builds the node for a scalar. On success *ret_node is new and the caller's. */
static int resolve(struct parser *ps, const char *s, size_t n, enum kind kind, yaml_mark_t mark, cJSON **ret_node)
{
        static const char *const tag_names[] = {
                [KIND_NULL] = "!!null",
                [KIND_BOOL] = "!!bool",
                [KIND_INT] = "!!int",
                [KIND_FLOAT] = "!!float",
        };
        char shown[SHOW_BUF];
        cJSON *node = NULL;
        double num = 0;
        bool b = false;
        int r;

        if (kind == KIND_STR)
                goto string;

        if ((kind == KIND_AUTO || kind == KIND_NULL) && match_null(s, n)) {
                node = cJSON_CreateNull();
                goto out;
        }
        if ((kind == KIND_AUTO || kind == KIND_BOOL) && match_bool(s, n, &b)) {
                node = cJSON_CreateBool(b);
                goto out;
        }
        if (kind == KIND_AUTO || kind == KIND_INT) {
                r = match_int(s, n, &num);
                if (r == 0) {
                        node = cJSON_CreateNumber(num);
                        goto out;
                }
                if (r == -ERANGE)
                        return fail(ps, -EINVAL, mark, "integer %s is too large (more than 2^53)", show(shown, s, n));
        }
        if (kind == KIND_AUTO || kind == KIND_FLOAT) {
                r = match_float(ps, s, n, &num);
                if (r == 0) {
                        node = cJSON_CreateNumber(num);
                        goto out;
                }
                if (r == -ENOMEM)
                        return fail(ps, -ENOMEM, mark, "out of memory");
                if (r == -ERANGE)
                        return fail(ps, -EINVAL, mark, "number %s is out of range", show(shown, s, n));
                if (r == -EDOM)
                        return fail(ps, -EINVAL, mark, "%s cannot be represented in JSON", show(shown, s, n));
        }
        if (kind != KIND_AUTO)
                return fail(ps, -EINVAL, mark, "\"%s\" is not a valid %s", show(shown, s, n), tag_names[kind]);

string:
        node = cJSON_CreateString(s);
        if (node)
                ps->bytes += n;
out:
        if (!node)
                return fail(ps, -ENOMEM, mark, "out of memory");
        *ret_node = node;
        return 0;
}

/* gcc 12's -fanalyzer reports the grown table as leaking when this returns,
 * on a path where an alias is the document's root: the table is d->pos,
 * which doc_free() frees; gcc 13 does not report it. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wanalyzer-malloc-leak"
#endif
static int pos_add(struct doc *d, const cJSON *node, unsigned line, unsigned col, unsigned key_line, unsigned key_col)
{
        if (d->npos == d->cap) {
                size_t cap = d->cap ? d->cap * 2 : 64;
                struct pos *p;

                p = reallocarray(d->pos, cap, sizeof(*p));
                if (!p)
                        return -ENOMEM;
                d->pos = p;
                d->cap = cap;
        }
        d->pos[d->npos++] =
                (struct pos){ .node = node, .line = line, .col = col, .key_line = key_line, .key_col = key_col };
        return 0;
}
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic pop
#endif

static int key_cmp(const void *a, const void *b)
{
        return strcmp(a, b);
}

static int anchor_cmp(const void *a, const void *b)
{
        return strcmp(((const struct anchor *)a)->name, ((const struct anchor *)b)->name);
}

static void anchor_free(void *p)
{
        struct anchor *a = p;

        free(a->name);
        free(a->text);
        free(a);
}

static struct frame *top(struct parser *ps)
{
        return ps->depth ? &ps->stack[ps->depth - 1] : NULL;
}

static bool expecting_key(struct parser *ps)
{
        struct frame *f = top(ps);

        return f && f->is_map && !f->key;
}

static void frame_clear(struct frame *f)
{
        free(f->key);
        free(f->anchor);
        tdestroy(f->keys, free);
        *f = (struct frame){ 0 };
}

/* Counts one more node, failing before it is built when the bound is hit. */
static int count_nodes(struct parser *ps, size_t n, yaml_mark_t mark)
{
        if (n > WH_MAX_POLICY_NODES - ps->nodes)
                return fail(ps, -E2BIG, mark, "more than %u nodes", WH_MAX_POLICY_NODES);
        ps->nodes += n;
        return 0;
}

static int count_alias_bytes(struct parser *ps, size_t n, yaml_mark_t mark)
{
        if (n > WH_MAX_POLICY_BYTES - ps->alias_bytes)
                return fail(ps, -E2BIG, mark, "aliases expand to more than %u bytes", WH_MAX_POLICY_BYTES);
        ps->alias_bytes += n;
        return 0;
}

/* Hangs a new node under the open collection (or makes it the root) and
 * records where it starts. The node belongs to the tree afterwards, even on
 * failure. */
static int attach(struct parser *ps, cJSON *node, yaml_mark_t mark)
{
        struct frame *f = top(ps);
        unsigned line, col, key_line = 0, key_col = 0;

        if (!f) {
                ps->doc->root = node;
        } else if (!f->is_map) {
                if (!cJSON_AddItemToArray(f->node, node)) {
                        cJSON_Delete(node);
                        return fail(ps, -ENOMEM, mark, "out of memory");
                }
        } else {
                if (!cJSON_AddItemToObject(f->node, f->key, node)) {
                        cJSON_Delete(node);
                        return fail(ps, -ENOMEM, mark, "out of memory");
                }
                /* The tree of keys takes our copy of the key. */
                if (!tsearch(f->key, &f->keys, key_cmp))
                        return fail(ps, -ENOMEM, mark, "out of memory");
                f->key = NULL;
                key_line = f->key_line;
                key_col = f->key_col;
        }
        mark_place(ps, mark, &line, &col);
        if (pos_add(ps->doc, node, line, col, key_line, key_col) < 0)
                return fail(ps, -ENOMEM, mark, "out of memory");
        return 0;
}

static void note_child_height(struct parser *ps, unsigned height)
{
        struct frame *f = top(ps);

        if (f && height > f->child_height)
                f->child_height = height;
}

/* `s` is NUL-terminated at `n` and has no NUL before it. */
static int take_key(struct parser *ps, const char *s, size_t n, yaml_mark_t mark)
{
        struct frame *f = top(ps);
        char shown[SHOW_BUF];

        if (tfind(s, &f->keys, key_cmp))
                return fail(ps, -EINVAL, mark, "duplicate key \"%s\"", show(shown, s, n));
        f->key = strndup(s, n);
        if (!f->key)
                return fail(ps, -ENOMEM, mark, "out of memory");
        mark_place(ps, mark, &f->key_line, &f->key_col);
        ps->bytes += n;
        return 0;
}

static struct anchor *anchor_find(struct parser *ps, const char *name)
{
        struct anchor key = { .name = (char *)name };
        void **found = tfind(&key, &ps->anchors, anchor_cmp);

        return found ? *found : NULL;
}

/* Returns the anchor named `name`, emptied for new contents: a later
 * definition of a name replaces the earlier one. */
static int anchor_define(struct parser *ps, const char *name, yaml_mark_t mark, struct anchor **ret)
{
        struct anchor *a = anchor_find(ps, name);
        void **slot;

        if (a) {
                free(a->text);
                *a = (struct anchor){ .name = a->name };
                *ret = a;
                return 0;
        }
        a = calloc(1, sizeof(*a));
        if (!a)
                return fail(ps, -ENOMEM, mark, "out of memory");
        a->name = strdup(name);
        if (!a->name)
                goto nomem;
        slot = tsearch(a, &ps->anchors, anchor_cmp);
        if (!slot)
                goto nomem;
        *ret = a;
        return 0;
nomem:
        anchor_free(a);
        return fail(ps, -ENOMEM, mark, "out of memory");
}

static int on_scalar(struct parser *ps, const yaml_event_t *ev)
{
        const char *s = (const char *)ev->data.scalar.value;
        const char *tag = (const char *)ev->data.scalar.tag;
        size_t n = ev->data.scalar.length;
        bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        enum kind kind = tag_kind(tag, plain);
        yaml_mark_t mark = ev->start_mark;
        struct anchor *a;
        cJSON *node;
        int r;

        r = check_tag(ps, tag, kind, KIND_AUTO, mark);
        if (r < 0)
                return r;
        /* "\0" and "\x00" escapes: cJSON strings end at the first NUL. */
        if (memchr(s, '\0', n))
                return fail(ps, -EINVAL, mark, "NUL character in a scalar");

        if (expecting_key(ps)) {
                if (plain && !tag && text_is(s, n, "<<"))
                        return fail(ps, -EINVAL, mark, "merge keys (<<) are not supported");
                r = take_key(ps, s, n, mark);
        } else {
                r = count_nodes(ps, 1, mark);
                if (r < 0)
                        return r;
                r = resolve(ps, s, n, kind, mark, &node);
                if (r < 0)
                        return r;
                r = attach(ps, node, mark);
        }
        if (r < 0 || !ev->data.scalar.anchor)
                return r;

        r = anchor_define(ps, (const char *)ev->data.scalar.anchor, mark, &a);
        if (r < 0)
                return r;
        a->scalar = true;
        a->kind = kind;
        a->len = n;
        a->nodes = 1;
        a->bytes = n;
        a->text = strndup(s, n);
        if (!a->text)
                return fail(ps, -ENOMEM, mark, "out of memory");
        return 0;
}

static int on_start(struct parser *ps, const yaml_event_t *ev, bool is_map)
{
        const char *tag = (const char *)(is_map ? ev->data.mapping_start.tag : ev->data.sequence_start.tag);
        const char *anchor = (const char *)(is_map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor);
        yaml_mark_t mark = ev->start_mark;
        size_t nodes_at_start = ps->nodes, pos_first = ps->doc->npos;
        struct frame *f;
        char *name = NULL;
        cJSON *node;
        int r;

        r = check_tag(ps, tag, tag_kind(tag, false), is_map ? KIND_MAP : KIND_SEQ, mark);
        if (r < 0)
                return r;
        if (expecting_key(ps))
                return fail(ps, -EINVAL, mark, "mapping keys must be scalars");
        if (ps->depth >= WH_MAX_POLICY_DEPTH)
                return fail(ps, -EINVAL, mark, "nesting deeper than %u levels", WH_MAX_POLICY_DEPTH);
        r = count_nodes(ps, 1, mark);
        if (r < 0)
                return r;
        if (anchor) {
                name = strdup(anchor);
                if (!name)
                        return fail(ps, -ENOMEM, mark, "out of memory");
        }
        node = is_map ? cJSON_CreateObject() : cJSON_CreateArray();
        if (!node) {
                free(name);
                return fail(ps, -ENOMEM, mark, "out of memory");
        }
        r = attach(ps, node, mark);
        if (r < 0) {
                free(name);
                return r;
        }
        f = &ps->stack[ps->depth++];
        *f = (struct frame){
                .node = node,
                .is_map = is_map,
                .anchor = name,
                .pos_first = pos_first,
                .nodes_at_start = nodes_at_start,
                .bytes_at_start = ps->bytes,
        };
        return 0;
}

static int on_end(struct parser *ps, const yaml_event_t *ev)
{
        struct frame *f = &ps->stack[--ps->depth];
        unsigned height = f->child_height + 1;
        struct anchor *a;
        int r = 0;

        note_child_height(ps, height);
        if (f->anchor) {
                r = anchor_define(ps, f->anchor, ev->start_mark, &a);
                if (r == 0) {
                        a->node = f->node;
                        a->pos_first = f->pos_first;
                        a->nodes = ps->nodes - f->nodes_at_start;
                        a->bytes = ps->bytes - f->bytes_at_start;
                        a->height = height;
                }
        }
        frame_clear(f);
        return r;
}

/* Gives the nodes under `copy` (a duplicate of the subtree whose entries
 * start at `first`) the places of the nodes they were copied from. Both
 * trees have the same shape and the table is in pre-order, so the i-th node
 * of a pre-order walk of the copy matches entry first + i. */
static int record_copy(struct parser *ps, const cJSON *copy, size_t first, yaml_mark_t mark)
{
        const cJSON *stack[WH_MAX_POLICY_DEPTH];
        const cJSON *n = copy->child;
        size_t depth = 0, i = first + 1;

        while (n) {
                struct pos src = ps->doc->pos[i++];

                if (pos_add(ps->doc, n, src.line, src.col, src.key_line, src.key_col) < 0)
                        return fail(ps, -ENOMEM, mark, "out of memory");
                if (n->child) {
                        if (depth == WH_MAX_POLICY_DEPTH)
                                return fail(ps, -EINVAL, mark, "nesting deeper than %u levels", WH_MAX_POLICY_DEPTH);
                        stack[depth++] = n;
                        n = n->child;
                        continue;
                }
                while (!n->next && depth > 0)
                        n = stack[--depth];
                n = n->next;
        }
        return 0;
}

static bool anchor_is_open(struct parser *ps, const char *name)
{
        size_t i;

        for (i = 0; i < ps->depth; i++)
                if (ps->stack[i].anchor && strcmp(ps->stack[i].anchor, name) == 0)
                        return true;
        return false;
}

static int on_alias(struct parser *ps, const yaml_event_t *ev)
{
        const char *name = (const char *)ev->data.alias.anchor;
        yaml_mark_t mark = ev->start_mark;
        char shown[SHOW_BUF];
        struct anchor *a;
        cJSON *node;
        int r;

        a = anchor_find(ps, name);
        if (!a) {
                if (anchor_is_open(ps, name))
                        return fail(ps, -EINVAL, mark, "alias *%s refers to a node that contains it",
                                    show(shown, name, strlen(name)));
                return fail(ps, -EINVAL, mark, "unknown anchor *%s", show(shown, name, strlen(name)));
        }

        if (expecting_key(ps)) {
                if (!a->scalar)
                        return fail(ps, -EINVAL, mark, "mapping keys must be scalars");
                r = count_alias_bytes(ps, a->len, mark);
                if (r < 0)
                        return r;
                return take_key(ps, a->text, a->len, mark);
        }

        if (a->scalar) {
                r = count_nodes(ps, 1, mark);
                if (r < 0)
                        return r;
                r = count_alias_bytes(ps, a->len, mark);
                if (r < 0)
                        return r;
                r = resolve(ps, a->text, a->len, a->kind, mark, &node);
                if (r < 0)
                        return r;
                return attach(ps, node, mark);
        }

        /* Every bound is checked before the copy is made, so a small document
         * of nested aliases cannot make us build a huge tree first. */
        if (ps->depth + a->height > WH_MAX_POLICY_DEPTH)
                return fail(ps, -EINVAL, mark, "nesting deeper than %u levels", WH_MAX_POLICY_DEPTH);
        r = count_nodes(ps, a->nodes, mark);
        if (r < 0)
                return r;
        r = count_alias_bytes(ps, a->bytes, mark);
        if (r < 0)
                return r;
        node = cJSON_Duplicate(a->node, true);
        if (!node)
                return fail(ps, -ENOMEM, mark, "out of memory");
        ps->bytes += a->bytes;
        r = attach(ps, node, mark);
        if (r < 0)
                return r;
        note_child_height(ps, a->height);
        return record_copy(ps, node, a->pos_first, mark);
}

static int parser_failure(struct parser *ps, const yaml_parser_t *yp)
{
        const char *problem = yp->problem ? yp->problem : "cannot parse the document";
        unsigned line, col;

        switch (yp->error) {
        case YAML_MEMORY_ERROR: return fail(ps, -ENOMEM, yp->mark, "out of memory");
        case YAML_READER_ERROR:
                offset_place(ps->text, ps->len, yp->problem_offset, &line, &col);
                if (yp->problem_value != -1)
                        err_set_at(ps->err, ps->errlen, line, col, "%s (#%X)", problem, (unsigned)yp->problem_value);
                else
                        err_set_at(ps->err, ps->errlen, line, col, "%s", problem);
                return -EINVAL;
        case YAML_SCANNER_ERROR:
        case YAML_PARSER_ERROR:
                if (!yp->context)
                        return fail(ps, -EINVAL, yp->problem_mark, "%s", problem);
                mark_place(ps, yp->context_mark, &line, &col);
                return fail(ps, -EINVAL, yp->problem_mark, "%s (%s at %u:%u)", problem, yp->context, line, col);
        default: return fail(ps, -EINVAL, yp->mark, "%s", problem);
        }
}

static void parser_clear(struct parser *ps)
{
        while (ps->depth > 0)
                frame_clear(&ps->stack[--ps->depth]);
        tdestroy(ps->anchors, anchor_free);
        ps->anchors = NULL;
        if (ps->c_locale != (locale_t)0)
                freelocale(ps->c_locale);
        ps->c_locale = (locale_t)0;
        doc_free(ps->doc);
        ps->doc = NULL;
}

/* Reads the events of the one document into ps->doc, to the end of the
 * stream. 0, or the first failure with ps->err set. */
static int parse_events(struct parser *ps, yaml_parser_t *yp)
{
        bool seen_document = false, done = false;
        yaml_event_t ev;
        int ret = 0;

        while (!done) {
                if (!yaml_parser_parse(yp, &ev))
                        return parser_failure(ps, yp);
                ret = 0;
                switch (ev.type) {
                case YAML_DOCUMENT_START_EVENT:
                        if (seen_document)
                                ret = fail(ps, -EINVAL, ev.start_mark, "more than one document");
                        seen_document = true;
                        break;
                case YAML_STREAM_END_EVENT:
                        if (!seen_document)
                                ret = fail(ps, -EINVAL, ev.start_mark, "empty document");
                        done = true;
                        break;
                case YAML_ALIAS_EVENT: ret = on_alias(ps, &ev); break;
                case YAML_SCALAR_EVENT: ret = on_scalar(ps, &ev); break;
                case YAML_SEQUENCE_START_EVENT: ret = on_start(ps, &ev, false); break;
                case YAML_MAPPING_START_EVENT: ret = on_start(ps, &ev, true); break;
                case YAML_SEQUENCE_END_EVENT:
                case YAML_MAPPING_END_EVENT: ret = on_end(ps, &ev); break;
                default: break;
                }
                yaml_event_delete(&ev);
                if (ret < 0)
                        return ret;
        }
        return 0;
}

int doc_parse(const char *text, size_t len, struct doc **ret_doc, char *err, size_t errlen)
{
        struct parser ps = { .err = err, .errlen = errlen };
        bool parser_ready = false;
        yaml_parser_t yp;
        const char *nul;
        unsigned line, col;
        int ret;

        if (err && errlen > 0)
                err[0] = '\0';
        if (!ret_doc || (!text && len > 0)) {
                err_set_at(err, errlen, 1, 1, "invalid arguments");
                return -EINVAL;
        }
        if (!text)
                text = "";
        ps.text = text;
        ps.len = len;
        offset_place(text, len, len, &ps.end_line, &ps.end_col);
        nul = memchr(text, '\0', len);
        if (nul) {
                offset_place(text, len, (size_t)(nul - text), &line, &col);
                err_set_at(err, errlen, line, col, "NUL byte in the document");
                return -EINVAL;
        }

        ps.doc = calloc(1, sizeof(*ps.doc));
        if (!ps.doc) {
                err_set_at(err, errlen, 1, 1, "out of memory");
                return -ENOMEM;
        }
        if (!yaml_parser_initialize(&yp)) {
                err_set_at(err, errlen, 1, 1, "out of memory");
                ret = -ENOMEM;
                goto out;
        }
        parser_ready = true;
        yaml_parser_set_input_string(&yp, (const unsigned char *)text, len);
        yaml_parser_set_encoding(&yp, YAML_UTF8_ENCODING);

        ret = parse_events(&ps, &yp);
        if (ret < 0)
                goto out;

        *ret_doc = ps.doc;
        ps.doc = NULL;
        ret = 0;
out:
        parser_clear(&ps);
        if (parser_ready)
                yaml_parser_delete(&yp);
        return ret;
}

const cJSON *doc_root(const struct doc *d)
{
        return d ? d->root : NULL;
}

int doc_position(const struct doc *d, const cJSON *node, unsigned *ret_line, unsigned *ret_col)
{
        size_t i;

        if (!d || !node)
                return -ENOENT;
        for (i = 0; i < d->npos; i++) {
                if (d->pos[i].node != node)
                        continue;
                if (ret_line)
                        *ret_line = d->pos[i].line;
                if (ret_col)
                        *ret_col = d->pos[i].col;
                return 0;
        }
        return -ENOENT;
}

int doc_key_position(const struct doc *d, const cJSON *node, unsigned *ret_line, unsigned *ret_col)
{
        if (!d || !node)
                return -ENOENT;
        for (size_t i = 0; i < d->npos; i++) {
                if (d->pos[i].node != node)
                        continue;
                if (!d->pos[i].key_line)
                        return -ENOENT;
                if (ret_line)
                        *ret_line = d->pos[i].key_line;
                if (ret_col)
                        *ret_col = d->pos[i].key_col;
                return 0;
        }
        return -ENOENT;
}

void doc_free(struct doc *d)
{
        if (!d)
                return;
        cJSON_Delete(d->root);
        free(d->pos);
        free(d);
}
