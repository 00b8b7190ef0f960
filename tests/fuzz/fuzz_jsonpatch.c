/* fuzz_jsonpatch: builds JSON Patches from arbitrary tokens and values with
 * jsonpatch_* (RFC 6901 escaping through buf_put_pointer_token, values
 * through buf_put_json_str), and checks the text against what was asked.
 *
 * The input is a program: fields separated by NUL bytes, each a command
 * byte and a string S (the rest of the field):
 *   cmd % 5 == 0  append S as a path token
 *   cmd % 5 == 1  append an index (S's decimal digits, else S's length)
 *   cmd % 5 == 2  emit an operation, op name by (cmd / 5) % 5 from
 *                 add, replace, test, remove (no value) or S itself; the
 *                 value is S as a JSON string
 *   cmd % 5 == 3  reset the path
 *   cmd % 5 == 4  emit "add" with the value ["token", ...] (the path's
 *                 tokens as a JSON array of strings)
 *
 * Invariants:
 *   - jsonpatch_op() returns 0 or -E2BIG (past WH_MAX_PATCH_OPS operations
 *     or WH_MAX_PATCH_BYTES), and -E2BIG leaves the patch as it was;
 *   - the finished text is strict JSON (RFC 8259: no raw control
 *     characters), parses with cJSON to an array of exactly the operations
 *     emitted, each with its op, its value, and a path that unescapes
 *     (~1 -> /, ~0 -> ~) to exactly the tokens given;
 *   - buf_put_json_strn() of the whole input (NULs included) is strict JSON
 *     that cJSON reads back to the input, up to its first NUL;
 *   - buf_put_base64() of the whole input decodes back to it. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "jsonpatch.h"
#include "webhook_limits.h"

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_TOKENS 4096u
#define MAX_OPS (WH_MAX_PATCH_OPS + 1u)

struct expected_op {
        const char *op;
        char **tokens;          /* a copy of the path's tokens */
        size_t n_tokens;
        const char *value;      /* a JSON string's content; NULL: none, or the token array */
        bool token_array;       /* the value is the tokens as strings */
};

struct program {
        char *path[MAX_TOKENS];         /* the tokens of the current path */
        size_t n_path;
        struct expected_op ops[MAX_OPS];
        size_t n_ops;
        char **owned;                   /* index tokens made here, freed at the end */
        size_t n_owned;
};

static char **copy_tokens(char *const *t, size_t n)
{
        char **c = malloc((n ? n : 1) * sizeof *c);
        if (!c)
                fuzz_fail("out of memory");
        for (size_t i = 0; i < n; i++)
                if (!(c[i] = strdup(t[i])))
                        fuzz_fail("out of memory");
        return c;
}

static void emit(struct jsonpatch *jp, struct program *pg, const char *op, const char *value_json, const char *value,
                 bool token_array)
{
        size_t len = jp->text.len;
        unsigned n = jp->n_ops;
        int r = jsonpatch_op(jp, op, value_json);
        if (r == -E2BIG) {
                if (jp->text.len != len || jp->n_ops != n || (jp->text.data && jp->text.data[len] != '\0'))
                        fuzz_fail("a refused operation changed the patch");
                if (n < WH_MAX_PATCH_OPS && len < WH_MAX_PATCH_BYTES / 2)
                        fuzz_fail("-E2BIG at %u operations and %zu bytes", n, len);
                return;
        }
        if (r != 0)
                fuzz_fail("jsonpatch_op returned %d", r);
        if (jp->n_ops != n + 1 || jp->n_ops > WH_MAX_PATCH_OPS || jp->text.len > WH_MAX_PATCH_BYTES)
                fuzz_fail("%u operations, %zu bytes after an accepted operation", jp->n_ops, jp->text.len);
        pg->ops[pg->n_ops++] = (struct expected_op){
                .op = op,
                .tokens = copy_tokens(pg->path, pg->n_path),
                .n_tokens = pg->n_path,
                .value = value,
                .token_array = token_array,
        };
}

static void check_patch(const struct jsonpatch *jp, const struct program *pg)
{
        const char *why;
        size_t at;
        if (!jp->text.data || strlen(jp->text.data) != jp->text.len)
                fuzz_fail("the patch text is not NUL-terminated at its length");
        if (!json_strict(jp->text.data, jp->text.len, &why, &at))
                fuzz_fail("the patch is not JSON: %s at byte %zu: %.300s", why, at,
                          jp->text.data + (at > 40 ? at - 40 : 0));
        cJSON *arr = cJSON_ParseWithLength(jp->text.data, jp->text.len);
        if (!cJSON_IsArray(arr) || (size_t)cJSON_GetArraySize(arr) != pg->n_ops || jp->n_ops != pg->n_ops)
                fuzz_fail("the patch has %d operations; %zu were emitted", cJSON_GetArraySize(arr), pg->n_ops);
        size_t i = 0;
        const cJSON *o;
        cJSON_ArrayForEach(o, arr) {
                const struct expected_op *e = &pg->ops[i];
                const cJSON *op = cJSON_GetObjectItemCaseSensitive(o, "op");
                const cJSON *path = cJSON_GetObjectItemCaseSensitive(o, "path");
                const cJSON *value = cJSON_GetObjectItemCaseSensitive(o, "value");
                if (!cJSON_IsString(op) || strcmp(op->valuestring, e->op) != 0)
                        fuzz_fail("operation %zu: op is not \"%s\"", i, e->op);
                if (!cJSON_IsString(path))
                        fuzz_fail("operation %zu: no path", i);
                if (cJSON_GetArraySize(o) != (e->value || e->token_array ? 3 : 2))
                        fuzz_fail("operation %zu has %d members", i, cJSON_GetArraySize(o));
                char **tok;
                size_t n;
                if (pointer_split(path->valuestring, &tok, &n) < 0)
                        fuzz_fail("operation %zu: \"%s\" is not a JSON pointer", i, path->valuestring);
                if (n != e->n_tokens)
                        fuzz_fail("operation %zu: %zu tokens in the path, %zu given", i, n, e->n_tokens);
                for (size_t k = 0; k < n; k++)
                        if (strcmp(tok[k], e->tokens[k]) != 0)
                                fuzz_fail("operation %zu: token %zu unescapes to \"%s\", not \"%s\"", i, k, tok[k],
                                          e->tokens[k]);
                pointer_tokens_free(tok, n);
                if (e->value && (!cJSON_IsString(value) || strcmp(value->valuestring, e->value) != 0))
                        fuzz_fail("operation %zu: the value does not read back", i);
                if (e->token_array) {
                        if (!cJSON_IsArray(value) || (size_t)cJSON_GetArraySize(value) != e->n_tokens)
                                fuzz_fail("operation %zu: the token array does not read back", i);
                        size_t k = 0;
                        const cJSON *s;
                        cJSON_ArrayForEach(s, value)
                                if (!cJSON_IsString(s) || strcmp(s->valuestring, e->tokens[k++]) != 0)
                                        fuzz_fail("operation %zu: token %zu of the value does not read back", i, k - 1);
                }
                i++;
        }
        cJSON_Delete(arr);
}

/* The whole input as one JSON string, and as base64. */
static void check_strings(const uint8_t *data, size_t size)
{
        struct buf b;
        const char *why;
        size_t at;
        buf_init(&b, 8 * size + 16);
        if (buf_put_json_strn(&b, (const char *)data, size) != 0)
                fuzz_fail("buf_put_json_strn failed within its bound");
        if (!json_strict(b.data, b.len, &why, &at))
                fuzz_fail("buf_put_json_strn wrote no JSON string: %s at byte %zu", why, at);
        cJSON *v = cJSON_ParseWithLength(b.data, b.len);
        size_t prefix = strnlen((const char *)data, size);
        if (!cJSON_IsString(v) || strlen(v->valuestring) != prefix || memcmp(v->valuestring, data, prefix) != 0)
                fuzz_fail("buf_put_json_strn does not read back");
        cJSON_Delete(v);

        buf_reset(&b);
        if (buf_put_base64(&b, data, size) != 0)
                fuzz_fail("buf_put_base64 failed within its bound");
        size_t n;
        char *back = b64_decode_strict(b.data ? b.data : "", b.len, &n);
        if (!back || n != size || memcmp(back, data, size) != 0)
                fuzz_fail("buf_put_base64 does not decode back");
        free(back);
        buf_free(&b);

        /* Too small a buffer: refused whole, nothing appended. */
        buf_init(&b, size ? size - 1 : 0);
        if (buf_put_base64(&b, data, size) != (size ? -ENOBUFS : 0) || b.len != 0)
                fuzz_fail("buf_put_base64 past the bound");
        buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const char *const op_names[] = { "add", "replace", "test", "remove" };
        char *copy = malloc(size + 1);
        struct program *pg = calloc(1, sizeof *pg);
        if (!copy || !pg)
                fuzz_fail("out of memory");
        memcpy(copy, data, size);
        copy[size] = '\0';

        struct jsonpatch jp;
        jsonpatch_init(&jp);
        jsonpatch_path_reset(&jp);
        struct buf value;
        buf_init(&value, WH_MAX_PATCH_BYTES);

        for (char *f = copy; f < copy + size; f += strlen(f) + 1) {
                if (!*f)
                        continue;
                unsigned char cmd = (unsigned char)f[0];
                char *s = f + 1;
                char num[32];
                int r = 0;
                buf_reset(&value);
                switch (cmd % 5) {
                case 0:
                case 1:
                        if (pg->n_path == MAX_TOKENS)
                                break;
                        if (cmd % 5 == 0) {
                                r = jsonpatch_path_token(&jp, s);
                                pg->path[pg->n_path++] = s;
                        } else {
                                size_t idx = *s >= '0' && *s <= '9' ? (size_t)strtoull(s, NULL, 10) : strlen(s);
                                snprintf(num, sizeof num, "%zu", idx);
                                r = jsonpatch_path_index(&jp, idx);
                                char *t = strdup(num);
                                char **o = realloc(pg->owned, (pg->n_owned + 1) * sizeof *o);
                                if (!t || !o)
                                        fuzz_fail("out of memory");
                                pg->owned = o;
                                pg->owned[pg->n_owned++] = t;
                                pg->path[pg->n_path++] = t;
                        }
                        if (r != 0)
                                fuzz_fail("a path of %zu tokens refused (%d)", pg->n_path, r);
                        break;
                case 2: {
                        unsigned which = (cmd / 5) % 5;
                        const char *op = which < 4 ? op_names[which] : s;
                        bool with_value = which != 3;
                        if (with_value && buf_put_json_str(&value, s) != 0)
                                fuzz_fail("buf_put_json_str refused %zu bytes", strlen(s));
                        emit(&jp, pg, op, with_value ? value.data : NULL, with_value ? s : NULL, false);
                        break;
                }
                case 3:
                        jsonpatch_path_reset(&jp);
                        pg->n_path = 0;
                        break;
                case 4:
                        r = buf_putc(&value, '[');
                        for (size_t k = 0; r == 0 && k < pg->n_path; k++) {
                                if (k)
                                        r = buf_putc(&value, ',');
                                if (r == 0)
                                        r = buf_put_json_str(&value, pg->path[k]);
                        }
                        if (r == 0)
                                r = buf_putc(&value, ']');
                        if (r == 0)
                                emit(&jp, pg, "add", value.data, NULL, true);
                        else if (r != -ENOBUFS)
                                fuzz_fail("building a token array: %d", r);
                        break;
                }
        }
        if (jsonpatch_finish(&jp) != 0)
                fuzz_fail("jsonpatch_finish failed");
        check_patch(&jp, pg);
        check_strings(data, size);

        for (size_t i = 0; i < pg->n_ops; i++)
                pointer_tokens_free(pg->ops[i].tokens, pg->ops[i].n_tokens);
        pointer_tokens_free(pg->owned, pg->n_owned);
        buf_free(&value);
        jsonpatch_free(&jp);
        free(pg);
        free(copy);
        return 0;
}
