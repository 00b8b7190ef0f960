/* Unit tests for webhook/jsonpatch.c: the RFC 6902 patch text builder. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "jsonpatch.h"
#include "webhook_limits.h"

/* Builds a path from NULL-terminated tokens. */
static void path(struct jsonpatch *p, ...)
{
        va_list ap;
        va_start(ap, p);
        jsonpatch_path_reset(p);
        for (const char *t; (t = va_arg(ap, const char *));)
                assert_int_equal(jsonpatch_path_token(p, t), 0);
        va_end(ap);
}

static cJSON *parse_patch(const struct jsonpatch *p)
{
        assert_non_null(p->text.data);
        assert_int_equal(strlen(p->text.data), p->text.len);
        const char *end = NULL;
        cJSON *v = cJSON_ParseWithLengthOpts(p->text.data, p->text.len + 1, &end, true);
        if (!v)
                fail_msg("the patch is not JSON: %.200s", p->text.data);
        assert_true(cJSON_IsArray(v));
        return v;
}

/* One operation of a parsed patch: exactly op, path and (when want_value is
 * not NULL) value, nothing else. */
static void assert_op(const cJSON *arr, int i, const char *op, const char *path_, const char *want_value)
{
        const cJSON *o = cJSON_GetArrayItem(arr, i);
        assert_non_null(o);
        assert_true(cJSON_IsObject(o));
        assert_int_equal(cJSON_GetArraySize(o), want_value ? 3 : 2);
        const cJSON *jop = cJSON_GetObjectItemCaseSensitive(o, "op");
        const cJSON *jpath = cJSON_GetObjectItemCaseSensitive(o, "path");
        assert_true(cJSON_IsString(jop));
        assert_true(cJSON_IsString(jpath));
        assert_string_equal(jop->valuestring, op);
        assert_string_equal(jpath->valuestring, path_);
        const cJSON *jv = cJSON_GetObjectItemCaseSensitive(o, "value");
        if (!want_value) {
                assert_null(jv);
                return;
        }
        assert_non_null(jv);
        cJSON *want = cJSON_Parse(want_value);
        assert_non_null(want);
        if (!cJSON_Compare(jv, want, true)) {
                char *got = cJSON_PrintUnformatted(jv);
                fail_msg("op %d: value %s, want %s", i, got, want_value);
        }
        cJSON_Delete(want);
}

static void test_empty_patch(void **state)
{
        struct jsonpatch p;
        jsonpatch_init(&p);
        assert_int_equal(p.n_ops, 0);
        assert_int_equal(jsonpatch_finish(&p), 0);
        assert_string_equal(p.text.data, "[]");
        assert_int_equal(p.text.len, 2);
        cJSON *v = parse_patch(&p);
        assert_int_equal(cJSON_GetArraySize(v), 0);
        cJSON_Delete(v);
        jsonpatch_free(&p);
        assert_null(p.text.data);
        assert_null(p.path.data);
        jsonpatch_free(&p);     /* twice */
}

static void test_op_with_value(void **state)
{
        struct jsonpatch p;
        jsonpatch_init(&p);
        path(&p, "metadata", "labels", NULL);
        assert_int_equal(jsonpatch_op(&p, "add", "{\"aadpodidbinding\":\"sparkaks\"}"), 0);
        assert_int_equal(p.n_ops, 1);
        assert_int_equal(jsonpatch_finish(&p), 0);
        assert_string_equal(p.text.data,
                "[{\"op\":\"add\",\"path\":\"/metadata/labels\",\"value\":{\"aadpodidbinding\":\"sparkaks\"}}]");
        jsonpatch_free(&p);
}

static void test_op_without_value(void **state)
{
        struct jsonpatch p;
        jsonpatch_init(&p);
        path(&p, "metadata", "labels", "aadpodidbinding", NULL);
        assert_int_equal(jsonpatch_op(&p, "remove", NULL), 0);
        assert_int_equal(jsonpatch_finish(&p), 0);
        assert_string_equal(p.text.data,
                "[{\"op\":\"remove\",\"path\":\"/metadata/labels/aadpodidbinding\"}]");
        cJSON *v = parse_patch(&p);
        assert_int_equal(cJSON_GetArraySize(v), 1);
        assert_op(v, 0, "remove", "/metadata/labels/aadpodidbinding", NULL);
        cJSON_Delete(v);
        jsonpatch_free(&p);
}

/* An operation on the document root: the path is "". */
static void test_root_path(void **state)
{
        struct jsonpatch p;
        jsonpatch_init(&p);
        assert_int_equal(jsonpatch_op(&p, "test", "{}"), 0);
        jsonpatch_path_reset(&p);
        assert_int_equal(jsonpatch_op(&p, "replace", "{\"a\":1}"), 0);
        assert_int_equal(jsonpatch_finish(&p), 0);
        assert_string_equal(p.text.data,
                "[{\"op\":\"test\",\"path\":\"\",\"value\":{}},{\"op\":\"replace\",\"path\":\"\",\"value\":{\"a\":1}}]");
        jsonpatch_free(&p);
}

static void test_path_escaping(void **state)
{
        struct jsonpatch p;
        jsonpatch_init(&p);

        path(&p, "metadata", "annotations", "azure.workload.identity/client-id", NULL);
        assert_int_equal(jsonpatch_op(&p, "add", "\"5f4c\""), 0);
        path(&p, "metadata", "labels", "a~b", NULL);
        assert_int_equal(jsonpatch_op(&p, "add", "\"x\""), 0);
        path(&p, "metadata", "labels", "~1", NULL);
        assert_int_equal(jsonpatch_op(&p, "add", "\"y\""), 0);
        /* JSON escaping of the path string on top of pointer escaping. */
        path(&p, "metadata", "annotations", "q\"uote\\back\nnl", NULL);
        assert_int_equal(jsonpatch_op(&p, "add", "\"z\""), 0);
        path(&p, "metadata", "annotations", "", NULL);
        assert_int_equal(jsonpatch_op(&p, "add", "\"empty key\""), 0);
        assert_int_equal(jsonpatch_finish(&p), 0);

        assert_non_null(strstr(p.text.data, "\"path\":\"/metadata/annotations/azure.workload.identity~1client-id\""));
        assert_non_null(strstr(p.text.data, "\"path\":\"/metadata/labels/a~0b\""));
        assert_non_null(strstr(p.text.data, "\"path\":\"/metadata/labels/~01\""));
        assert_non_null(strstr(p.text.data, "\"path\":\"/metadata/annotations/q\\\"uote\\\\back\\nnl\""));

        cJSON *v = parse_patch(&p);
        assert_int_equal(cJSON_GetArraySize(v), 5);
        assert_op(v, 0, "add", "/metadata/annotations/azure.workload.identity~1client-id", "\"5f4c\"");
        assert_op(v, 1, "add", "/metadata/labels/a~0b", "\"x\"");
        assert_op(v, 2, "add", "/metadata/labels/~01", "\"y\"");
        assert_op(v, 3, "add", "/metadata/annotations/q\"uote\\back\nnl", "\"z\"");
        assert_op(v, 4, "add", "/metadata/annotations/", "\"empty key\"");
        cJSON_Delete(v);
        jsonpatch_free(&p);
}

static void test_path_index(void **state)
{
        struct jsonpatch p;
        jsonpatch_init(&p);
        path(&p, "spec", "containers", NULL);
        assert_int_equal(jsonpatch_path_index(&p, 0), 0);
        assert_int_equal(jsonpatch_path_token(&p, "env"), 0);
        assert_int_equal(jsonpatch_path_token(&p, "-"), 0);
        assert_int_equal(jsonpatch_op(&p, "add", "{\"name\":\"JAVA_HOME\",\"value\":\"/opt/java/openjdk\"}"), 0);
        path(&p, "spec", "containers", NULL);
        assert_int_equal(jsonpatch_path_index(&p, 12), 0);
        assert_int_equal(jsonpatch_path_token(&p, "env"), 0);
        assert_int_equal(jsonpatch_path_index(&p, 3), 0);
        assert_int_equal(jsonpatch_path_token(&p, "value"), 0);
        assert_int_equal(jsonpatch_op(&p, "replace", "\"-Dx=1\""), 0);
        assert_int_equal(jsonpatch_finish(&p), 0);

        cJSON *v = parse_patch(&p);
        assert_int_equal(cJSON_GetArraySize(v), 2);
        assert_op(v, 0, "add", "/spec/containers/0/env/-",
                  "{\"name\":\"JAVA_HOME\",\"value\":\"/opt/java/openjdk\"}");
        assert_op(v, 1, "replace", "/spec/containers/12/env/3/value", "\"-Dx=1\"");
        cJSON_Delete(v);
        jsonpatch_free(&p);
}

/* Many operations of every kind: a JSON array of objects with op, path and
 * value exactly, in order. */
static void test_parses_as_array_of_ops(void **state)
{
        static const struct {
                const char *op, *token, *value;
        } ops[] = {
                { "add", "a", "1" },
                { "add", "b", "\"two\"" },
                { "remove", "c", NULL },
                { "replace", "d", "[1,2,{\"x\":null}]" },
                { "add", "e", "true" },
                { "add", "f", "null" },
                { "test", "g", "{\"nested\":{\"deep\":[\"\\\"quoted\\\"\"]}}" },
                { "copy", "h", NULL },
                { "move", "i/j", NULL },
                { "add", "k", "-1.5e3" },
        };
        const size_t n = sizeof ops / sizeof ops[0];
        struct jsonpatch p;
        jsonpatch_init(&p);
        for (size_t i = 0; i < n; i++) {
                path(&p, "spec", ops[i].token, NULL);
                assert_int_equal(jsonpatch_op(&p, ops[i].op, ops[i].value), 0);
                assert_int_equal(p.n_ops, i + 1);
        }
        assert_int_equal(jsonpatch_finish(&p), 0);
        assert_int_equal(p.text.data[0], '[');
        assert_int_equal(p.text.data[p.text.len - 1], ']');

        cJSON *v = parse_patch(&p);
        assert_int_equal(cJSON_GetArraySize(v), (int)n);
        for (size_t i = 0; i < n; i++) {
                char want_path[64];
                struct buf tok;
                buf_init(&tok, 64);
                assert_int_equal(buf_put_pointer_token(&tok, ops[i].token), 0);
                snprintf(want_path, sizeof want_path, "/spec%s", tok.data);
                buf_free(&tok);
                assert_op(v, (int)i, ops[i].op, want_path, ops[i].value);
        }
        cJSON_Delete(v);
        jsonpatch_free(&p);
}

/* WH_MAX_PATCH_OPS operations fit; one more is -E2BIG and changes nothing. */
static void test_op_bound(void **state)
{
        struct jsonpatch p;
        jsonpatch_init(&p);
        for (unsigned i = 0; i < WH_MAX_PATCH_OPS; i++) {
                jsonpatch_path_reset(&p);
                assert_int_equal(jsonpatch_path_token(&p, "spec"), 0);
                assert_int_equal(jsonpatch_path_index(&p, i), 0);
                int r = jsonpatch_op(&p, "add", "0");
                if (r != 0)
                        fail_msg("operation %u of %u: %d", i + 1, WH_MAX_PATCH_OPS, r);
        }
        assert_int_equal(p.n_ops, WH_MAX_PATCH_OPS);

        size_t len = p.text.len;
        char *before = strdup(p.text.data);
        assert_non_null(before);
        assert_int_equal(jsonpatch_op(&p, "add", "0"), -E2BIG);
        assert_int_equal(jsonpatch_op(&p, "remove", NULL), -E2BIG);
        assert_int_equal(p.n_ops, WH_MAX_PATCH_OPS);
        assert_int_equal(p.text.len, len);
        assert_string_equal(p.text.data, before);
        free(before);

        assert_int_equal(jsonpatch_finish(&p), 0);
        cJSON *v = parse_patch(&p);
        assert_int_equal(cJSON_GetArraySize(v), (int)WH_MAX_PATCH_OPS);
        assert_op(v, 0, "add", "/spec/0", "0");
        char last[32];
        snprintf(last, sizeof last, "/spec/%u", WH_MAX_PATCH_OPS - 1);
        assert_op(v, (int)WH_MAX_PATCH_OPS - 1, "add", last, "0");
        cJSON_Delete(v);
        jsonpatch_free(&p);
}

/* A JSON string value of exactly `n` bytes of text. */
static char *string_value(size_t n)
{
        assert_true(n >= 2);
        char *s = malloc(n + 1);
        assert_non_null(s);
        s[0] = '"';
        memset(s + 1, 'v', n - 2);
        s[n - 1] = '"';
        s[n] = '\0';
        return s;
}

/* A huge value is -E2BIG, leaves the text as it was, and later small
 * operations still work. */
static void test_byte_bound(void **state)
{
        struct jsonpatch p;
        jsonpatch_init(&p);
        char *huge = string_value(WH_MAX_PATCH_BYTES + 100);

        /* As the first operation. */
        path(&p, "metadata", "annotations", "big", NULL);
        assert_int_equal(jsonpatch_op(&p, "add", huge), -E2BIG);
        assert_int_equal(p.n_ops, 0);
        assert_int_equal(p.text.len, 0);
        assert_true(!p.text.data || p.text.data[0] == '\0');

        /* After one operation. */
        path(&p, "metadata", "labels", "x", NULL);
        assert_int_equal(jsonpatch_op(&p, "add", "\"1\""), 0);
        size_t len = p.text.len;
        char *before = strdup(p.text.data);
        assert_non_null(before);
        path(&p, "metadata", "annotations", "big", NULL);
        assert_int_equal(jsonpatch_op(&p, "add", huge), -E2BIG);
        assert_int_equal(p.n_ops, 1);
        assert_int_equal(p.text.len, len);
        assert_string_equal(p.text.data, before);
        free(before);

        /* A value that alone is under the bound, but not with the text before it. */
        free(huge);
        huge = string_value(WH_MAX_PATCH_BYTES - len - 10);
        assert_int_equal(jsonpatch_op(&p, "add", huge), -E2BIG);
        assert_int_equal(p.text.len, len);
        assert_int_equal(p.n_ops, 1);

        path(&p, "metadata", "labels", "y", NULL);
        assert_int_equal(jsonpatch_op(&p, "add", "\"2\""), 0);
        path(&p, "metadata", "labels", "z", NULL);
        assert_int_equal(jsonpatch_op(&p, "remove", NULL), 0);
        assert_int_equal(jsonpatch_finish(&p), 0);

        cJSON *v = parse_patch(&p);
        assert_int_equal(cJSON_GetArraySize(v), 3);
        assert_op(v, 0, "add", "/metadata/labels/x", "\"1\"");
        assert_op(v, 1, "add", "/metadata/labels/y", "\"2\"");
        assert_op(v, 2, "remove", "/metadata/labels/z", NULL);
        cJSON_Delete(v);
        free(huge);
        jsonpatch_free(&p);
}

/* A huge first operation leaves a patch that still finishes as "[]". */
static void test_byte_bound_then_empty_finish(void **state)
{
        struct jsonpatch p;
        jsonpatch_init(&p);
        char *huge = string_value(2 * WH_MAX_PATCH_BYTES);
        path(&p, "a", NULL);
        assert_int_equal(jsonpatch_op(&p, "add", huge), -E2BIG);
        assert_int_equal(jsonpatch_finish(&p), 0);
        assert_string_equal(p.text.data, "[]");
        free(huge);
        jsonpatch_free(&p);
}

/* The bound is exact: an operation that brings the text to exactly
 * WH_MAX_PATCH_BYTES bytes fits (and the patch still closes), one byte more
 * does not. */
static void test_byte_bound_is_exact(void **state)
{
        struct jsonpatch p;

        /* The size of the operation around its value. */
        jsonpatch_init(&p);
        path(&p, "a", NULL);
        assert_int_equal(jsonpatch_op(&p, "add", "0"), 0);
        size_t overhead = p.text.len - 1;
        jsonpatch_free(&p);

        char *fits = string_value(WH_MAX_PATCH_BYTES - overhead);
        char *over = string_value(WH_MAX_PATCH_BYTES - overhead + 1);

        jsonpatch_init(&p);
        path(&p, "a", NULL);
        assert_int_equal(jsonpatch_op(&p, "add", over), -E2BIG);
        assert_int_equal(p.text.len, 0);
        assert_int_equal(jsonpatch_op(&p, "add", fits), 0);
        assert_int_equal(p.text.len, WH_MAX_PATCH_BYTES);
        /* Full: nothing else fits, not even a tiny operation. */
        assert_int_equal(jsonpatch_op(&p, "remove", NULL), -E2BIG);
        assert_int_equal(p.text.len, WH_MAX_PATCH_BYTES);
        assert_int_equal(p.n_ops, 1);
        assert_int_equal(jsonpatch_finish(&p), 0);
        assert_int_equal(p.text.len, WH_MAX_PATCH_BYTES + 1);
        cJSON *v = parse_patch(&p);
        assert_int_equal(cJSON_GetArraySize(v), 1);
        cJSON_Delete(v);
        jsonpatch_free(&p);
        free(fits);
        free(over);
}

/* A path reset starts a new path; the patch holds the path as it was then. */
static void test_path_reset(void **state)
{
        struct jsonpatch p;
        jsonpatch_init(&p);
        path(&p, "one", "two", NULL);
        assert_int_equal(jsonpatch_op(&p, "remove", NULL), 0);
        jsonpatch_path_reset(&p);
        assert_int_equal(jsonpatch_path_token(&p, "three"), 0);
        assert_int_equal(jsonpatch_op(&p, "remove", NULL), 0);
        /* Without a reset, tokens add up. */
        assert_int_equal(jsonpatch_path_token(&p, "four"), 0);
        assert_int_equal(jsonpatch_op(&p, "remove", NULL), 0);
        assert_int_equal(jsonpatch_finish(&p), 0);
        assert_string_equal(p.text.data,
                "[{\"op\":\"remove\",\"path\":\"/one/two\"},"
                "{\"op\":\"remove\",\"path\":\"/three\"},"
                "{\"op\":\"remove\",\"path\":\"/three/four\"}]");
        jsonpatch_free(&p);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_empty_patch),
                cmocka_unit_test(test_op_with_value),
                cmocka_unit_test(test_op_without_value),
                cmocka_unit_test(test_root_path),
                cmocka_unit_test(test_path_escaping),
                cmocka_unit_test(test_path_index),
                cmocka_unit_test(test_parses_as_array_of_ops),
                cmocka_unit_test(test_op_bound),
                cmocka_unit_test(test_byte_bound),
                cmocka_unit_test(test_byte_bound_then_empty_finish),
                cmocka_unit_test(test_byte_bound_is_exact),
                cmocka_unit_test(test_path_reset),
        };
        return cmocka_run_group_tests_name("jsonpatch", tests, NULL, NULL);
}
