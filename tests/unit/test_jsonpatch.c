/* Unit tests for webhook/core/jsonpatch.c: the RFC 6902 patch text builder,
 * and the patch it writes from typed changes (change.h). */
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
#include "policy.h"
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
        assert_string_equal(
                p.text.data,
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
        assert_string_equal(p.text.data, "[{\"op\":\"remove\",\"path\":\"/metadata/labels/aadpodidbinding\"}]");
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
        assert_string_equal(p.text.data, "[{\"op\":\"test\",\"path\":\"\",\"value\":{}},{\"op\":\"replace\",\"path\":"
                                         "\"\",\"value\":{\"a\":1}}]");
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
        assert_op(v, 0, "add", "/spec/containers/0/env/-", "{\"name\":\"JAVA_HOME\",\"value\":\"/opt/java/openjdk\"}");
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
        assert_string_equal(p.text.data, "[{\"op\":\"remove\",\"path\":\"/one/two\"},"
                                         "{\"op\":\"remove\",\"path\":\"/three\"},"
                                         "{\"op\":\"remove\",\"path\":\"/three/four\"}]");
        jsonpatch_free(&p);
}

/* ---- from typed changes ---- */

#define VOLUME_3600                                                                                            \
        "{\"name\":\"" POLICY_WI_VOLUME "\",\"projected\":{\"sources\":[{\"serviceAccountToken\":"             \
        "{\"audience\":\"" POLICY_WI_AUDIENCE "\",\"expirationSeconds\":3600,\"path\":\"" POLICY_WI_TOKEN_NAME \
        "\"}}]}}"
#define MOUNT "{\"name\":\"" POLICY_WI_VOLUME "\",\"mountPath\":\"" POLICY_WI_MOUNT_PATH "\",\"readOnly\":true}"

/* The patch of `n` changes, byte for byte. */
static void assert_changes_text(const struct change *changes, size_t n, unsigned want_ops, const char *want)
{
        struct jsonpatch p;
        jsonpatch_init(&p);
        assert_int_equal(jsonpatch_changes(&p, changes, n), 0);
        assert_string_equal(p.text.data, want);
        assert_int_equal(p.n_ops, want_ops);
        cJSON_Delete(parse_patch(&p));
        jsonpatch_free(&p);
}

/* Each kind, in each place it can go: exactly the bytes admission sends. */
static void test_each_change_kind(void **state)
{
        static const struct {
                struct change c;
                const char *op;         /* the one operation it makes */
        } cases[] = {
                { { .kind = CHANGE_SET_IDENTITY_LABEL, .place = CHANGE_PLACE_NEW, .value = "sparkaks" },
                  "{\"op\":\"add\",\"path\":\"/metadata/labels\",\"value\":{\"aadpodidbinding\":\"sparkaks\"}}" },
                { { .kind = CHANGE_SET_IDENTITY_LABEL, .place = CHANGE_PLACE_ADD, .value = "sparkaks" },
                  "{\"op\":\"add\",\"path\":\"/metadata/labels/aadpodidbinding\",\"value\":\"sparkaks\"}" },
                { { .kind = CHANGE_SET_IDENTITY_LABEL,
                    .place = CHANGE_PLACE_REPLACE,
                    .value = "sparkaks",
                    .old = "other" },
                  "{\"op\":\"replace\",\"path\":\"/metadata/labels/aadpodidbinding\",\"value\":\"sparkaks\"}" },
                { { .kind = CHANGE_REMOVE_IDENTITY_LABEL, .old = "other" },
                  "{\"op\":\"remove\",\"path\":\"/metadata/labels/aadpodidbinding\"}" },
                { { .kind = CHANGE_SET_SERVICE_ACCOUNT, .value = "spark-wi", .old = "default" },
                  "{\"op\":\"add\",\"path\":\"/spec/serviceAccountName\",\"value\":\"spark-wi\"}" },
                { { .kind = CHANGE_SET_DEPRECATED_SERVICE_ACCOUNT, .value = "spark-wi", .old = "default" },
                  "{\"op\":\"add\",\"path\":\"/spec/serviceAccount\",\"value\":\"spark-wi\"}" },
                { { .kind = CHANGE_SET_ENV,
                    .list = CHANGE_INIT_CONTAINERS,
                    .container = 2,
                    .index = 7,
                    .name = "JAVA_HOME",
                    .value = "C:\\j \"x\"",
                    .old = "" },
                  "{\"op\":\"add\",\"path\":\"/spec/initContainers/2/env/7/value\",\"value\":\"C:\\\\j \\\"x\\\"\"}" },
                { { .kind = CHANGE_ADD_ENV, .place = CHANGE_PLACE_ADD, .container = 1, .name = "A/B~C", .value = "v" },
                  "{\"op\":\"add\",\"path\":\"/spec/containers/1/env/-\",\"value\":{\"name\":\"A/"
                  "B~C\",\"value\":\"v\"}}" },
                { { .kind = CHANGE_ADD_ENV, .place = CHANGE_PLACE_NEW, .container = 0, .name = "A", .value = "v" },
                  "{\"op\":\"add\",\"path\":\"/spec/containers/0/env\",\"value\":[{\"name\":\"A\",\"value\":\"v\"}]}" },
                { { .kind = CHANGE_ADD_JAVA_OPT,
                    .place = CHANGE_PLACE_ADD,
                    .container = 0,
                    .index = 12,
                    .value = "-Dx=1" },
                  "{\"op\":\"add\",\"path\":\"/spec/containers/0/env/-\",\"value\":"
                  "{\"name\":\"SPARK_JAVA_OPT_12\",\"value\":\"-Dx=1\"}}" },
                { { .kind = CHANGE_ADD_JAVA_OPT,
                    .place = CHANGE_PLACE_NEW,
                    .container = 0,
                    .index = 0,
                    .value = "-Dx=1" },
                  "{\"op\":\"add\",\"path\":\"/spec/containers/0/env\",\"value\":"
                  "[{\"name\":\"SPARK_JAVA_OPT_0\",\"value\":\"-Dx=1\"}]}" },
                { { .kind = CHANGE_TOKEN_VOLUME, .place = CHANGE_PLACE_NEW, .expiration_s = 3600 },
                  "{\"op\":\"add\",\"path\":\"/spec/volumes\",\"value\":[" VOLUME_3600 "]}" },
                { { .kind = CHANGE_TOKEN_VOLUME, .place = CHANGE_PLACE_ADD, .expiration_s = 3600 },
                  "{\"op\":\"add\",\"path\":\"/spec/volumes/-\",\"value\":" VOLUME_3600 "}" },
                { { .kind = CHANGE_TOKEN_VOLUME, .place = CHANGE_PLACE_REPLACE, .index = 3, .expiration_s = 3600 },
                  "{\"op\":\"replace\",\"path\":\"/spec/volumes/3\",\"value\":" VOLUME_3600 "}" },
                { { .kind = CHANGE_TOKEN_MOUNT,
                    .place = CHANGE_PLACE_NEW,
                    .list = CHANGE_INIT_CONTAINERS,
                    .container = 1 },
                  "{\"op\":\"add\",\"path\":\"/spec/initContainers/1/volumeMounts\",\"value\":[" MOUNT "]}" },
                { { .kind = CHANGE_TOKEN_MOUNT, .place = CHANGE_PLACE_ADD, .container = 0 },
                  "{\"op\":\"add\",\"path\":\"/spec/containers/0/volumeMounts/-\",\"value\":" MOUNT "}" },
                { { .kind = CHANGE_TOKEN_MOUNT, .place = CHANGE_PLACE_REPLACE, .container = 4, .index = 2 },
                  "{\"op\":\"replace\",\"path\":\"/spec/containers/4/volumeMounts/2\",\"value\":" MOUNT "}" },
        };
        bool seen[CHANGE_KIND_MAX] = { false };
        (void)state;
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
                char want[1024];
                snprintf(want, sizeof want, "[%s]", cases[i].op);
                assert_changes_text(&cases[i].c, 1, 1, want);
                seen[cases[i].c.kind] = true;
        }
        for (int k = 0; k < CHANGE_KIND_MAX; k++)
                if (!seen[k])
                        fail_msg("no case for change kind %d", k);
}

/* The env entries added to a container without env share one "add" of the
 * whole list, entry by entry in order; another container's, or entries
 * appended to a list that exists, are operations of their own. */
static void test_changes_share_new_env_list(void **state)
{
        const struct change c[] = {
                { .kind = CHANGE_SET_IDENTITY_LABEL, .place = CHANGE_PLACE_ADD, .value = "id" },
                { .kind = CHANGE_ADD_ENV, .place = CHANGE_PLACE_NEW, .container = 0, .name = "A", .value = "1" },
                { .kind = CHANGE_ADD_JAVA_OPT, .place = CHANGE_PLACE_NEW, .container = 0, .index = 0, .value = "-Da" },
                { .kind = CHANGE_ADD_ENV, .place = CHANGE_PLACE_NEW, .container = 0, .name = "B", .value = "2" },
                { .kind = CHANGE_TOKEN_MOUNT, .place = CHANGE_PLACE_NEW, .container = 0 },
                { .kind = CHANGE_ADD_ENV,
                  .place = CHANGE_PLACE_NEW,
                  .list = CHANGE_INIT_CONTAINERS,
                  .container = 0,
                  .name = "C",
                  .value = "3" },
                { .kind = CHANGE_ADD_ENV,
                  .place = CHANGE_PLACE_NEW,
                  .list = CHANGE_CONTAINERS,
                  .container = 0,
                  .name = "D",
                  .value = "4" },
                { .kind = CHANGE_ADD_ENV, .place = CHANGE_PLACE_ADD, .container = 1, .name = "E", .value = "5" },
                { .kind = CHANGE_ADD_ENV, .place = CHANGE_PLACE_ADD, .container = 1, .name = "F", .value = "6" },
        };
        (void)state;
        assert_changes_text(
                c, sizeof c / sizeof *c, 7,
                "[{\"op\":\"add\",\"path\":\"/metadata/labels/aadpodidbinding\",\"value\":\"id\"},"
                "{\"op\":\"add\",\"path\":\"/spec/containers/0/env\",\"value\":[{\"name\":\"A\",\"value\":\"1\"},"
                "{\"name\":\"SPARK_JAVA_OPT_0\",\"value\":\"-Da\"},{\"name\":\"B\",\"value\":\"2\"}]},"
                "{\"op\":\"add\",\"path\":\"/spec/containers/0/volumeMounts\",\"value\":[" MOUNT "]},"
                "{\"op\":\"add\",\"path\":\"/spec/initContainers/0/env\",\"value\":[{\"name\":\"C\",\"value\":\"3\"}]},"
                "{\"op\":\"add\",\"path\":\"/spec/containers/0/env\",\"value\":[{\"name\":\"D\",\"value\":\"4\"}]},"
                "{\"op\":\"add\",\"path\":\"/spec/containers/1/env/-\",\"value\":{\"name\":\"E\",\"value\":\"5\"}},"
                "{\"op\":\"add\",\"path\":\"/spec/containers/1/env/-\",\"value\":{\"name\":\"F\",\"value\":\"6\"}}]");
        assert_false(change_starts_op(&c[1], &c[2]));
        assert_true(change_starts_op(&c[4], &c[5]));
        assert_true(change_starts_op(&c[5], &c[6]));
        assert_true(change_starts_op(&c[7], &c[8]));
        assert_true(change_starts_op(NULL, &c[1]));
}

/* No changes: an empty patch. More operations than WH_MAX_PATCH_OPS, or
 * more bytes than WH_MAX_PATCH_BYTES: -E2BIG. */
static void test_changes_bounds(void **state)
{
        (void)state;
        assert_changes_text(NULL, 0, 0, "[]");

        size_t n = WH_MAX_PATCH_OPS + 1;
        struct change *c = calloc(n, sizeof *c);
        assert_non_null(c);
        for (size_t i = 0; i < n; i++)
                c[i] = (struct change){ .kind = CHANGE_REMOVE_IDENTITY_LABEL };
        struct jsonpatch p;
        jsonpatch_init(&p);
        assert_int_equal(jsonpatch_changes(&p, c, n - 1), 0);
        assert_int_equal(p.n_ops, WH_MAX_PATCH_OPS);
        jsonpatch_free(&p);
        jsonpatch_init(&p);
        assert_int_equal(jsonpatch_changes(&p, c, n), -E2BIG);
        jsonpatch_free(&p);

        char *huge = malloc(WH_MAX_PATCH_BYTES + 1);
        assert_non_null(huge);
        memset(huge, 'x', WH_MAX_PATCH_BYTES);
        huge[WH_MAX_PATCH_BYTES] = '\0';
        c[0] = (struct change){ .kind = CHANGE_ADD_ENV, .place = CHANGE_PLACE_NEW, .name = "A", .value = huge };
        jsonpatch_init(&p);
        assert_int_equal(jsonpatch_changes(&p, c, 1), -E2BIG);
        jsonpatch_free(&p);
        free(huge);
        free(c);
}

/* The item of each kind on its own, as explain prints it. */
static void test_change_item(void **state)
{
        struct buf b;
        (void)state;
        buf_init(&b, 4096);
        assert_int_equal(
                jsonpatch_change_item(&b, &(struct change){ .kind = CHANGE_TOKEN_VOLUME, .expiration_s = 3600 }), 0);
        assert_string_equal(b.data, VOLUME_3600);
        buf_reset(&b);
        assert_int_equal(jsonpatch_change_item(&b, &(struct change){ .kind = CHANGE_TOKEN_MOUNT }), 0);
        assert_string_equal(b.data, MOUNT);
        buf_reset(&b);
        assert_int_equal(jsonpatch_change_item(&b, &(struct change){ .kind = CHANGE_SET_ENV, .value = "a\"b" }), 0);
        assert_string_equal(b.data, "\"a\\\"b\"");
        buf_reset(&b);
        assert_int_equal(jsonpatch_change_item(&b, &(struct change){ .kind = CHANGE_REMOVE_IDENTITY_LABEL }), 0);
        assert_string_equal(b.data, "null");
        buf_reset(&b);
        assert_int_equal(jsonpatch_change_item(&b, &(struct change){ .kind = CHANGE_KIND_MAX }), -EINVAL);
        buf_free(&b);
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
                cmocka_unit_test(test_each_change_kind),
                cmocka_unit_test(test_changes_share_new_env_list),
                cmocka_unit_test(test_changes_bounds),
                cmocka_unit_test(test_change_item),
        };
        return cmocka_run_group_tests_name("jsonpatch", tests, NULL, NULL);
}
