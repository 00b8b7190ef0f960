/* Unit tests for webhook/core/doc.c: YAML and JSON text to a cJSON tree. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "doc.h"
#include "webhook_limits.h"

/* The example policy from the design, verbatim. Line and column numbers in
 * test_positions() refer to this text. */
static const char POLICY_YAML[] =
        "defaults:\n"
        "  mode: enforce            # enforce | audit | off\n"
        "  onConflict: override     # override | deny\n"
        "  java:\n"
        "    home: /opt/java/openjdk\n"
        "    options: [\"-Dio.netty.tryReflectionSetAccessible=true\"]\n"
        "  hadoop:\n"
        "    fs.azure.account.auth.type: OAuth\n"
        "    fs.azure.account.oauth.provider.type: org.apache.hadoop.fs.azurebfs.oauth2.MsiTokenProvider\n"
        "  jvmEnv: spark\n"
        "namespaces:\n"
        "  team-a: {identity: sparkaks, tenantId: 72f988bf-86f1-41af-91ab-2d7cd011db47, clientId: "
        "5f4c1b2a-8d3e-4f6a-9b7c-1d2e3f4a5b6c, allowedIdentities: [team-a-api]}\n"
        "  team-d: {identity: lake-spark, clientId: 0d7e5c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6, storageAccounts: [lakeprod, "
        "lakedev]}\n"
        "  team-c: {identity: c-spark, mode: audit, onConflict: deny}\n"
        "unmatched: allow\n";

/* The same policy as someone would write it in JSON. */
static const char POLICY_JSON[] =
        "{\n"
        "  \"defaults\": {\n"
        "    \"mode\": \"enforce\",\n"
        "    \"onConflict\": \"override\",\n"
        "    \"java\": {\n"
        "      \"home\": \"/opt/java/openjdk\",\n"
        "      \"options\": [\"-Dio.netty.tryReflectionSetAccessible=true\"]\n"
        "    },\n"
        "    \"hadoop\": {\n"
        "      \"fs.azure.account.auth.type\": \"OAuth\",\n"
        "      \"fs.azure.account.oauth.provider.type\": \"org.apache.hadoop.fs.azurebfs.oauth2.MsiTokenProvider\"\n"
        "    },\n"
        "    \"jvmEnv\": \"spark\"\n"
        "  },\n"
        "  \"namespaces\": {\n"
        "    \"team-a\": {\"identity\": \"sparkaks\", \"tenantId\": \"72f988bf-86f1-41af-91ab-2d7cd011db47\",\n"
        "               \"clientId\": \"5f4c1b2a-8d3e-4f6a-9b7c-1d2e3f4a5b6c\", \"allowedIdentities\": "
        "[\"team-a-api\"]},\n"
        "    \"team-d\": {\"identity\": \"lake-spark\", \"clientId\": \"0d7e5c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6\",\n"
        "               \"storageAccounts\": [\"lakeprod\", \"lakedev\"]},\n"
        "    \"team-c\": {\"identity\": \"c-spark\", \"mode\": \"audit\", \"onConflict\": \"deny\"}\n"
        "  },\n"
        "  \"unmatched\": \"allow\"\n"
        "}\n";

/* Stands in for *ret_doc so a test can see that a failure left it alone. */
static struct doc *const UNTOUCHED = (struct doc *)(uintptr_t)0x5a5a5a5a;

static struct doc *parse_ok_n(const char *text, size_t len)
{
        struct doc *d = NULL;
        char err[256] = "";
        int r = doc_parse(text, len, &d, err, sizeof(err));

        if (r != 0)
                fail_msg("doc_parse(\"%.60s\") = %d: %s", text ? text : "(null)", r, err);
        assert_non_null(d);
        assert_non_null(doc_root(d));
        return d;
}

static struct doc *parse_ok(const char *text)
{
        return parse_ok_n(text, strlen(text));
}

/* Parses text that must fail; returns the error and leaves the message in err. */
static int parse_fail_n(const char *text, size_t len, char *err, size_t errlen)
{
        struct doc *d = UNTOUCHED;
        int r = doc_parse(text, len, &d, err, errlen);

        assert_true(r < 0);
        assert_ptr_equal(d, UNTOUCHED);
        return r;
}

/* Expects `text` to fail with `want_ret` and exactly the message `want`. */
static void expect_error(const char *text, int want_ret, const char *want)
{
        char err[256];
        int r = parse_fail_n(text, strlen(text), err, sizeof(err));

        if (r != want_ret || strcmp(err, want) != 0)
                fail_msg("doc_parse(\"%.60s\") = %d \"%s\", want %d \"%s\"", text, r, err, want_ret, want);
}

/* Follows object keys from `node`; NULL ends the list. */
static const cJSON *at(const cJSON *node, ...)
{
        const char *key;
        va_list ap;

        va_start(ap, node);
        while (node && (key = va_arg(ap, const char *)))
                node = cJSON_GetObjectItemCaseSensitive(node, key);
        va_end(ap);
        return node;
}

static void assert_string_node(const cJSON *node, const char *want)
{
        assert_non_null(node);
        if (!cJSON_IsString(node))
                fail_msg("want string \"%s\", got type %d", want, node->type);
        assert_string_equal(node->valuestring, want);
}

static void assert_number_node(const cJSON *node, double want)
{
        assert_non_null(node);
        if (!cJSON_IsNumber(node))
                fail_msg("want number %g, got type %d", want, node->type);
        assert_true(node->valuedouble == want);
}

static void assert_place(const struct doc *d, const cJSON *node, unsigned line, unsigned col)
{
        unsigned got_line = 0, got_col = 0;

        assert_non_null(node);
        assert_int_equal(doc_position(d, node, &got_line, &got_col), 0);
        if (got_line != line || got_col != col)
                fail_msg("node at %u:%u, want %u:%u", got_line, got_col, line, col);
}

/* Every node of the tree has a place, and only nodes of this tree. */
static size_t assert_all_placed(const struct doc *d)
{
        const cJSON *stack[64];
        const cJSON *n = doc_root(d);
        size_t depth = 0, count = 0;
        unsigned line, col;

        while (n) {
                if (doc_position(d, n, &line, &col) != 0)
                        fail_msg("node %zu (key \"%s\") has no place", count, n->string ? n->string : "");
                assert_true(line >= 1 && col >= 1);
                count++;
                if (n->child) {
                        assert_true(depth < 64);
                        stack[depth++] = n;
                        n = n->child;
                        continue;
                }
                while (!n->next && depth > 0)
                        n = stack[--depth];
                n = n->next;
        }
        return count;
}

static void check_policy_tree(const cJSON *root)
{
        const cJSON *defaults, *java, *options, *hadoop, *namespaces, *team, *list;
        const char *order[] = { "team-a", "team-d", "team-c" };
        size_t i = 0;

        assert_true(cJSON_IsObject(root));
        assert_int_equal(cJSON_GetArraySize(root), 3);

        defaults = at(root, "defaults", NULL);
        assert_true(cJSON_IsObject(defaults));
        assert_int_equal(cJSON_GetArraySize(defaults), 5);
        assert_string_node(at(defaults, "mode", NULL), "enforce");
        assert_string_node(at(defaults, "onConflict", NULL), "override");
        assert_string_node(at(defaults, "jvmEnv", NULL), "spark");

        java = at(defaults, "java", NULL);
        assert_true(cJSON_IsObject(java));
        assert_string_node(at(java, "home", NULL), "/opt/java/openjdk");
        options = at(java, "options", NULL);
        assert_true(cJSON_IsArray(options));
        assert_int_equal(cJSON_GetArraySize(options), 1);
        assert_string_node(cJSON_GetArrayItem(options, 0), "-Dio.netty.tryReflectionSetAccessible=true");

        /* A key with dots is one key, not a path. */
        hadoop = at(defaults, "hadoop", NULL);
        assert_true(cJSON_IsObject(hadoop));
        assert_int_equal(cJSON_GetArraySize(hadoop), 2);
        assert_string_node(at(hadoop, "fs.azure.account.auth.type", NULL), "OAuth");
        assert_string_node(at(hadoop, "fs.azure.account.oauth.provider.type", NULL),
                           "org.apache.hadoop.fs.azurebfs.oauth2.MsiTokenProvider");
        assert_null(at(hadoop, "fs", NULL));

        namespaces = at(root, "namespaces", NULL);
        assert_true(cJSON_IsObject(namespaces));
        assert_int_equal(cJSON_GetArraySize(namespaces), 3);
        cJSON_ArrayForEach(team, namespaces) {
                assert_true(i < 3);
                assert_string_equal(team->string, order[i]);
                i++;
        }

        team = at(namespaces, "team-a", NULL);
        assert_int_equal(cJSON_GetArraySize(team), 4);
        assert_string_node(at(team, "identity", NULL), "sparkaks");
        assert_string_node(at(team, "tenantId", NULL), "72f988bf-86f1-41af-91ab-2d7cd011db47");
        assert_string_node(at(team, "clientId", NULL), "5f4c1b2a-8d3e-4f6a-9b7c-1d2e3f4a5b6c");
        list = at(team, "allowedIdentities", NULL);
        assert_true(cJSON_IsArray(list));
        assert_int_equal(cJSON_GetArraySize(list), 1);
        assert_string_node(cJSON_GetArrayItem(list, 0), "team-a-api");

        team = at(namespaces, "team-d", NULL);
        assert_int_equal(cJSON_GetArraySize(team), 3);
        assert_string_node(at(team, "identity", NULL), "lake-spark");
        /* Starts with a digit and has an 'e' in it: still a string. */
        assert_string_node(at(team, "clientId", NULL), "0d7e5c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6");
        list = at(team, "storageAccounts", NULL);
        assert_true(cJSON_IsArray(list));
        assert_int_equal(cJSON_GetArraySize(list), 2);
        assert_string_node(cJSON_GetArrayItem(list, 0), "lakeprod");
        assert_string_node(cJSON_GetArrayItem(list, 1), "lakedev");

        team = at(namespaces, "team-c", NULL);
        assert_int_equal(cJSON_GetArraySize(team), 3);
        assert_string_node(at(team, "identity", NULL), "c-spark");
        assert_string_node(at(team, "mode", NULL), "audit");
        assert_string_node(at(team, "onConflict", NULL), "deny");

        assert_string_node(at(root, "unmatched", NULL), "allow");
}

static void test_policy_yaml(void **state)
{
        struct doc *d = parse_ok(POLICY_YAML);

        (void)state;
        check_policy_tree(doc_root(d));
        doc_free(d);
}

static void test_policy_mode_off_is_a_string(void **state)
{
        const char *at_mode = strstr(POLICY_YAML, "mode: enforce");
        char text[sizeof(POLICY_YAML)];
        const cJSON *mode;
        struct doc *d;
        size_t head;

        (void)state;
        assert_non_null(at_mode);
        head = (size_t)(at_mode - POLICY_YAML);
        memcpy(text, POLICY_YAML, head);
        memcpy(text + head, "mode: off", 9);
        strcpy(text + head + 9, at_mode + strlen("mode: enforce"));
        d = parse_ok(text);
        mode = at(doc_root(d), "defaults", "mode", NULL);
        assert_string_node(mode, "off");
        doc_free(d);
}

static void test_policy_json_equals_yaml(void **state)
{
        struct doc *y = parse_ok(POLICY_YAML);
        struct doc *j = parse_ok(POLICY_JSON);
        cJSON *by_cjson = cJSON_Parse(POLICY_JSON);

        (void)state;
        check_policy_tree(doc_root(j));
        assert_true(cJSON_Compare(doc_root(y), doc_root(j), true));
        /* And cJSON's own reading of the JSON agrees with ours. */
        assert_non_null(by_cjson);
        assert_true(cJSON_Compare(by_cjson, doc_root(j), true));
        /* Positions work for JSON too: "team-c": {..., "mode": "audit" ... */
        assert_place(j, at(doc_root(j), "namespaces", "team-c", "mode", NULL), 20, 47);
        cJSON_Delete(by_cjson);
        doc_free(j);
        doc_free(y);
}

/* cJSON_Print() indents with tabs and puts no space after commas in arrays:
 * what we print, we must read back. */
static void test_policy_cjson_round_trip(void **state)
{
        struct doc *y = parse_ok(POLICY_YAML);
        char *pretty = cJSON_Print(doc_root(y));
        char *compact = cJSON_PrintUnformatted(doc_root(y));
        struct doc *p, *c;

        (void)state;
        assert_non_null(pretty);
        assert_non_null(compact);
        assert_non_null(strchr(pretty, '\t'));
        p = parse_ok(pretty);
        c = parse_ok(compact);
        assert_true(cJSON_Compare(doc_root(y), doc_root(p), true));
        assert_true(cJSON_Compare(doc_root(y), doc_root(c), true));
        doc_free(c);
        doc_free(p);
        free(compact);
        free(pretty);
        doc_free(y);
}

static void test_positions(void **state)
{
        struct doc *d = parse_ok(POLICY_YAML);
        const cJSON *root = doc_root(d);
        cJSON *stranger = cJSON_CreateNull();
        unsigned line = 777, col = 888;

        (void)state;
        assert_place(d, root, 1, 1);
        assert_place(d, at(root, "defaults", "mode", NULL), 2, 9);
        assert_place(d, at(root, "defaults", "java", "options", NULL), 6, 14);
        assert_place(d, cJSON_GetArrayItem(at(root, "defaults", "java", "options", NULL), 0), 6, 15);
        assert_place(d, at(root, "defaults", "hadoop", "fs.azure.account.auth.type", NULL), 8, 33);
        assert_place(d, at(root, "namespaces", "team-a", NULL), 12, 11);
        assert_place(d, at(root, "namespaces", "team-c", "mode", NULL), 14, 37);
        assert_place(d, cJSON_GetArrayItem(at(root, "namespaces", "team-d", "storageAccounts", NULL), 1), 13, 110);
        assert_place(d, at(root, "unmatched", NULL), 15, 12);
        /* root 1, defaults 6, java 3, hadoop 2, namespaces 1, team-a 6,
         * team-d 6, team-c 4, unmatched 1. */
        assert_int_equal(assert_all_placed(d), 30);

        /* A node of another tree is unknown, and nothing is written. */
        assert_non_null(stranger);
        assert_int_equal(doc_position(d, stranger, &line, &col), -ENOENT);
        assert_int_equal(line, 777);
        assert_int_equal(col, 888);
        assert_int_equal(doc_position(d, NULL, &line, &col), -ENOENT);
        assert_int_equal(doc_position(NULL, root, &line, &col), -ENOENT);
        assert_int_equal(line, 777);
        cJSON_Delete(stranger);
        doc_free(d);
}

/* Columns count characters, not bytes. */
/* Where a member's key stands: what "unknown key" errors point at. */
static void test_key_positions(void **state)
{
        struct doc *d = parse_ok(POLICY_YAML);
        const cJSON *root = doc_root(d);
        unsigned line = 777, col = 888;

        (void)state;
        assert_int_equal(doc_key_position(d, at(root, "defaults", "mode", NULL), &line, &col), 0);
        assert_int_equal(line, 2);
        assert_int_equal(col, 3);
        assert_int_equal(doc_key_position(d, at(root, "namespaces", "team-c", "mode", NULL), &line, &col), 0);
        assert_int_equal(line, 14);
        assert_int_equal(col, 31);
        assert_int_equal(doc_key_position(d, at(root, "unmatched", NULL), &line, &col), 0);
        assert_int_equal(line, 15);
        assert_int_equal(col, 1);
        /* The root and list items have no key; nothing is written. */
        line = col = 0;
        assert_int_equal(doc_key_position(d, root, &line, &col), -ENOENT);
        assert_int_equal(
                doc_key_position(d, cJSON_GetArrayItem(at(root, "defaults", "java", "options", NULL), 0), &line, &col),
                -ENOENT);
        assert_int_equal(line, 0);
        assert_int_equal(doc_key_position(NULL, root, &line, &col), -ENOENT);
        doc_free(d);

        /* An alias's copy keeps the keys of what it copied. */
        d = parse_ok("base: &b\n  k: 1\nother: *b\n");
        assert_int_equal(doc_key_position(d, at(doc_root(d), "other", NULL), &line, &col), 0);
        assert_int_equal(line, 3);
        assert_int_equal(col, 1);
        assert_int_equal(doc_key_position(d, at(doc_root(d), "other", "k", NULL), &line, &col), 0);
        assert_int_equal(line, 2);
        assert_int_equal(col, 3);
        doc_free(d);
}

static void test_positions_count_characters(void **state)
{
        struct doc *d = parse_ok("{\"\xc3\xa9t\xc3\xa9\": [1, \"\xe2\x82\xac\", 2]}");
        const cJSON *list = at(doc_root(d), "\xc3\xa9t\xc3\xa9", NULL);

        (void)state;
        assert_place(d, list, 1, 9);
        assert_place(d, cJSON_GetArrayItem(list, 2), 1, 18);
        doc_free(d);
}

enum want_type { W_NULL, W_TRUE, W_FALSE, W_NUMBER, W_STRING };

struct typing_case {
        const char *value;      /* as written after "v: " */
        enum want_type type;
        double number;
        const char *string;
};

static void check_typing(const struct typing_case *cases, size_t n)
{
        size_t i;

        for (i = 0; i < n; i++) {
                const struct typing_case *c = &cases[i];
                char text[128];
                const cJSON *v;
                struct doc *d;
                bool ok;

                snprintf(text, sizeof(text), "v: %s\n", c->value);
                d = parse_ok(text);
                v = at(doc_root(d), "v", NULL);
                assert_non_null(v);
                switch (c->type) {
                case W_NULL: ok = cJSON_IsNull(v); break;
                case W_TRUE: ok = cJSON_IsTrue(v); break;
                case W_FALSE: ok = cJSON_IsFalse(v); break;
                case W_NUMBER: ok = cJSON_IsNumber(v) && v->valuedouble == c->number; break;
                default: ok = cJSON_IsString(v) && strcmp(v->valuestring, c->string) == 0; break;
                }
                if (!ok)
                        fail_msg("\"v: %s\" gave type %d (want %d)", c->value, v->type, (int)c->type);
                doc_free(d);
        }
}

static void test_plain_scalar_typing(void **state)
{
        static const struct typing_case cases[] = {
                { "~", W_NULL, 0, NULL },
                { "null", W_NULL, 0, NULL },
                { "Null", W_NULL, 0, NULL },
                { "NULL", W_NULL, 0, NULL },
                { "", W_NULL, 0, NULL },
                { "true", W_TRUE, 0, NULL },
                { "True", W_TRUE, 0, NULL },
                { "TRUE", W_TRUE, 0, NULL },
                { "false", W_FALSE, 0, NULL },
                { "False", W_FALSE, 0, NULL },
                { "FALSE", W_FALSE, 0, NULL },
                /* YAML 1.1 booleans and nulls are strings in the core schema. */
                { "off", W_STRING, 0, "off" },
                { "on", W_STRING, 0, "on" },
                { "yes", W_STRING, 0, "yes" },
                { "no", W_STRING, 0, "no" },
                { "y", W_STRING, 0, "y" },
                { "n", W_STRING, 0, "n" },
                { "tRUE", W_STRING, 0, "tRUE" },
                { "nULL", W_STRING, 0, "nULL" },
                { "none", W_STRING, 0, "none" },
                /* Integers. */
                { "0", W_NUMBER, 0, NULL },
                { "42", W_NUMBER, 42, NULL },
                { "-17", W_NUMBER, -17, NULL },
                { "+42", W_NUMBER, 42, NULL },
                { "007", W_NUMBER, 7, NULL },
                { "0o17", W_NUMBER, 15, NULL },
                { "0x1F", W_NUMBER, 31, NULL },
                { "0xff", W_NUMBER, 255, NULL },
                { "9007199254740992", W_NUMBER, 9007199254740992.0, NULL },
                /* Floats. */
                { "2.5", W_NUMBER, 2.5, NULL },
                { "-0.5", W_NUMBER, -0.5, NULL },
                { "+12.5", W_NUMBER, 12.5, NULL },
                { "1e3", W_NUMBER, 1000, NULL },
                { "1E-2", W_NUMBER, 0.01, NULL },
                { "6.02e+23", W_NUMBER, 6.02e+23, NULL },
                { ".5", W_NUMBER, 0.5, NULL },
                { "1.", W_NUMBER, 1, NULL },
                { "-1.5e-3", W_NUMBER, -1.5e-3, NULL },
                /* Not numbers in the core schema. */
                { "1_000", W_STRING, 0, "1_000" },
                { "0b101", W_STRING, 0, "0b101" },
                { "12:30", W_STRING, 0, "12:30" },
                { "0x", W_STRING, 0, "0x" },
                { "0o8", W_STRING, 0, "0o8" },
                { "-0x1F", W_STRING, 0, "-0x1F" },
                { "1.2.3", W_STRING, 0, "1.2.3" },
                { "1e", W_STRING, 0, "1e" },
                { "e3", W_STRING, 0, "e3" },
                { ".", W_STRING, 0, "." },
                { "+", W_STRING, 0, "+" },
                { "2024-01-01", W_STRING, 0, "2024-01-01" },
                { "1 2", W_STRING, 0, "1 2" },
                { "infinity", W_STRING, 0, "infinity" },
                { "nan", W_STRING, 0, "nan" },
                { "/opt/java/openjdk", W_STRING, 0, "/opt/java/openjdk" },
        };

        (void)state;
        check_typing(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_quoted_and_tagged_scalars(void **state)
{
        static const struct typing_case cases[] = {
                { "'true'", W_STRING, 0, "true" },
                { "\"true\"", W_STRING, 0, "true" },
                { "'null'", W_STRING, 0, "null" },
                { "''", W_STRING, 0, "" },
                { "\"\"", W_STRING, 0, "" },
                { "\"123\"", W_STRING, 0, "123" },
                { "'0x1F'", W_STRING, 0, "0x1F" },
                { "'it''s'", W_STRING, 0, "it's" },
                { "\"tab\\there\"", W_STRING, 0, "tab\there" },
                { "|\n  true", W_STRING, 0, "true\n" },
                { ">-\n  42", W_STRING, 0, "42" },
                { "!!str 123", W_STRING, 0, "123" },
                { "!!str true", W_STRING, 0, "true" },
                { "!!str null", W_STRING, 0, "null" },
                { "!!str", W_STRING, 0, "" },
                { "! 42", W_STRING, 0, "42" },
                { "!!int 12", W_NUMBER, 12, NULL },
                { "!!int \"12\"", W_NUMBER, 12, NULL },
                { "!!float 3", W_NUMBER, 3, NULL },
                { "!!float '2.5'", W_NUMBER, 2.5, NULL },
                { "!!bool \"false\"", W_FALSE, 0, NULL },
                { "!!null ''", W_NULL, 0, NULL },
                { "<tagged-looking>", W_STRING, 0, "<tagged-looking>" },
        };

        (void)state;
        check_typing(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_tag_errors(void **state)
{
        (void)state;
        expect_error("v: !foo x\n", -EINVAL, "1:4: unknown tag !foo");
        expect_error("v: !local {a: 1}\n", -EINVAL, "1:4: unknown tag !local");
        expect_error("v: !!binary aGk=\n", -EINVAL, "1:4: unsupported tag !!binary");
        expect_error("v: !!int abc\n", -EINVAL, "1:4: \"abc\" is not a valid !!int");
        expect_error("v: !!bool yes\n", -EINVAL, "1:4: \"yes\" is not a valid !!bool");
        expect_error("v: !!null 0\n", -EINVAL, "1:4: \"0\" is not a valid !!null");
        expect_error("v: !!float x1\n", -EINVAL, "1:4: \"x1\" is not a valid !!float");
        expect_error("v: !!map [1]\n", -EINVAL, "1:4: tag !!map on a sequence");
        expect_error("v: !!seq {a: 1}\n", -EINVAL, "1:4: tag !!seq on a mapping");
        expect_error("v: !!map x\n", -EINVAL, "1:4: tag !!map on a scalar");
        expect_error("!foo k: v\n", -EINVAL, "1:1: unknown tag !foo");
}

static void test_numbers_json_cannot_hold(void **state)
{
        (void)state;
        expect_error("v: .inf\n", -EINVAL, "1:4: .inf cannot be represented in JSON");
        expect_error("v: -.Inf\n", -EINVAL, "1:4: -.Inf cannot be represented in JSON");
        expect_error("v: .NaN\n", -EINVAL, "1:4: .NaN cannot be represented in JSON");
        expect_error("v: 1e999\n", -EINVAL, "1:4: number 1e999 is out of range");
        expect_error("v: 9007199254740993\n", -EINVAL, "1:4: integer 9007199254740993 is too large (more than 2^53)");
        expect_error("v: -99999999999999999999\n", -EINVAL,
                     "1:4: integer -99999999999999999999 is too large (more than 2^53)");
        expect_error("v: 0xFFFFFFFFFFFFFFFFFF\n", -EINVAL,
                     "1:4: integer 0xFFFFFFFFFFFFFFFFFF is too large (more than 2^53)");
}

static void test_json_values_and_escapes(void **state)
{
        static const char *const texts[] = {
                "{\"a\": [1, 2.5, true, null, \"x\\u00e9\"]}",
                "{\"s\": \"q\\\"b\\\\s\\/n\\nt\\tu\\u0041\\u20ac\\b\\f\\r\", \"e\": \"\", \"o\": {}, \"l\": [],"
                " \"n\": -0.5e-3, \"i\": -12, \"big\": 1E+2}",
                "{\"a\":1,\"b\":[true,false],\"c\":{\"d\":null}}",
                "[\n\t{\"k\" :\t\"v\"} ,\n\t[ ]\n]",
                "{\"t\": \"true\", \"n\": \"1\", \"z\": \"null\", \"o\": \"off\", \"u\": \"\xc3\xa9\xe2\x82\xac\"}",
                "\"just a string\"",
                "-3.25",
                "[]",
        };
        size_t i;

        (void)state;
        for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
                struct doc *d = parse_ok(texts[i]);
                cJSON *want = cJSON_Parse(texts[i]);

                assert_non_null(want);
                if (!cJSON_Compare(want, doc_root(d), true)) {
                        char *got = cJSON_PrintUnformatted(doc_root(d));

                        fail_msg("%s read as %s", texts[i], got ? got : "?");
                }
                cJSON_Delete(want);
                doc_free(d);
        }
}

static void test_json_details(void **state)
{
        struct doc *d = parse_ok("{\"a\": [1, 2.5, true, null, \"x\\u00e9\"], \"q\": \"true\"}");
        const cJSON *a = at(doc_root(d), "a", NULL);

        (void)state;
        assert_int_equal(cJSON_GetArraySize(a), 5);
        assert_number_node(cJSON_GetArrayItem(a, 0), 1);
        assert_number_node(cJSON_GetArrayItem(a, 1), 2.5);
        assert_true(cJSON_IsTrue(cJSON_GetArrayItem(a, 2)));
        assert_true(cJSON_IsNull(cJSON_GetArrayItem(a, 3)));
        assert_string_node(cJSON_GetArrayItem(a, 4), "x\xc3\xa9");
        assert_string_node(at(doc_root(d), "q", NULL), "true");
        doc_free(d);
}

static void test_duplicate_keys(void **state)
{
        struct doc *d;

        (void)state;
        expect_error("a: 1\nb: 2\na: 3\n", -EINVAL, "3:1: duplicate key \"a\"");
        expect_error("{x: 1, x: 2}", -EINVAL, "1:8: duplicate key \"x\"");
        expect_error("m:\n  k: 1\n  k: 2\n", -EINVAL, "3:3: duplicate key \"k\"");
        expect_error("{\"a\": 1, \"a\": 2}", -EINVAL, "1:10: duplicate key \"a\"");
        /* Quoting does not make a key different. */
        expect_error("a: 1\n\"a\": 2\n", -EINVAL, "2:1: duplicate key \"a\"");
        /* A duplicate whose value is a whole mapping. */
        expect_error("team-a: {identity: x}\nteam-a:\n  identity: y\n", -EINVAL, "2:1: duplicate key \"team-a\"");

        /* The same key in different mappings, and keys equal only as numbers, are fine. */
        d = parse_ok("a: {k: 1}\nb: {k: 2}\n1: x\n01: y\n");
        assert_number_node(at(doc_root(d), "a", "k", NULL), 1);
        assert_number_node(at(doc_root(d), "b", "k", NULL), 2);
        assert_string_node(at(doc_root(d), "1", NULL), "x");
        assert_string_node(at(doc_root(d), "01", NULL), "y");
        doc_free(d);
}

static void test_keys_are_strings(void **state)
{
        struct doc *d = parse_ok("1: a\ntrue: b\nnull: c\n~: d\n2.5: e\n\"<<\": f\n");
        const cJSON *root = doc_root(d);

        (void)state;
        assert_int_equal(cJSON_GetArraySize(root), 6);
        assert_string_node(at(root, "1", NULL), "a");
        assert_string_node(at(root, "true", NULL), "b");
        assert_string_node(at(root, "null", NULL), "c");
        assert_string_node(at(root, "~", NULL), "d");
        assert_string_node(at(root, "2.5", NULL), "e");
        assert_string_node(at(root, "<<", NULL), "f");
        doc_free(d);
}

static void test_non_scalar_keys(void **state)
{
        (void)state;
        expect_error("{[a]: b}", -EINVAL, "1:2: mapping keys must be scalars");
        expect_error("? {a: 1}\n: b\n", -EINVAL, "1:3: mapping keys must be scalars");
        expect_error("a: &x [1]\n*x : 2\n", -EINVAL, "2:1: mapping keys must be scalars");
}

static void test_merge_keys_rejected(void **state)
{
        (void)state;
        expect_error("base: &b {a: 1}\nother:\n  <<: *b\n", -EINVAL, "3:3: merge keys (<<) are not supported");
}

static void test_syntax_errors(void **state)
{
        char err[256];

        (void)state;
        expect_error("a: b: c\n", -EINVAL, "1:5: mapping values are not allowed in this context");
        expect_error("a: 1\nb: [1\nc: 2\n", -EINVAL,
                     "3:2: did not find expected ',' or ']' (while parsing a flow sequence at 2:4)");
        expect_error("a:\n  b: 1\n c: 2\n", -EINVAL,
                     "3:2: did not find expected key (while parsing a block mapping at 1:1)");
        /* At the end of a text with no final line break. */
        expect_error("{\"a\": 1,", -EINVAL,
                     "1:9: did not find expected node content (while parsing a flow node at 1:9)");
        expect_error("{\"\xc3\xa9\": 1,", -EINVAL,
                     "1:9: did not find expected node content (while parsing a flow node at 1:9)");
        /* Invalid UTF-8: reported by byte offset, shown as line and column. */
        expect_error("a: 1\nb: \"\xff\"\n", -EINVAL, "2:5: invalid leading UTF-8 octet (#FF)");
        /* Tabs cannot indent YAML. */
        assert_int_equal(parse_fail_n("\ta: 1\n", 6, err, sizeof(err)), -EINVAL);
        assert_true(strncmp(err, "1:1: ", 5) == 0);
        /* JSON's UTF-16 surrogate pairs are a known libyaml limitation. */
        assert_int_equal(parse_fail_n("\"\\ud83d\\ude00\"", 14, err, sizeof(err)), -EINVAL);
        assert_true(strncmp(err, "1:", 2) == 0);
}

static void test_empty_input(void **state)
{
        static const char *const empties[] = { "", "   \n\n", "# only a comment\n", "\n# a\n# b" };
        char err[256];
        struct doc *d;
        size_t i;

        (void)state;
        for (i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
                assert_int_equal(parse_fail_n(empties[i], strlen(empties[i]), err, sizeof(err)), -EINVAL);
                assert_non_null(strstr(err, ": empty document"));
        }
        assert_int_equal(parse_fail_n(NULL, 0, err, sizeof(err)), -EINVAL);
        assert_string_equal(err, "1:1: empty document");

        /* An explicit document with nothing in it is a null, not empty input. */
        d = parse_ok("---\n");
        assert_true(cJSON_IsNull(doc_root(d)));
        doc_free(d);
}

static void test_one_document_only(void **state)
{
        struct doc *d;

        (void)state;
        expect_error("a: 1\n---\nb: 2\n", -EINVAL, "2:1: more than one document");
        expect_error("--- a\n--- b\n", -EINVAL, "2:1: more than one document");
        expect_error("a: 1\n...\n---\n", -EINVAL, "3:1: more than one document");

        /* Markers around a single document are fine. */
        d = parse_ok("%YAML 1.2\n---\na: 1\n...\n# the end\n");
        assert_number_node(at(doc_root(d), "a", NULL), 1);
        doc_free(d);
}

static void test_depth_bound(void **state)
{
        char text[256], want[64];
        const cJSON *n;
        struct doc *d;
        unsigned i, levels;
        size_t len = 0;

        (void)state;
        /* Flow: WH_MAX_POLICY_DEPTH levels of [ ] are fine, one more is not. */
        for (i = 0; i < WH_MAX_POLICY_DEPTH; i++)
                text[len++] = '[';
        text[len++] = '1';
        for (i = 0; i < WH_MAX_POLICY_DEPTH; i++)
                text[len++] = ']';
        text[len] = '\0';
        d = parse_ok(text);
        for (n = doc_root(d), levels = 0; cJSON_IsArray(n); n = n->child)
                levels++;
        assert_int_equal(levels, WH_MAX_POLICY_DEPTH);
        assert_number_node(n, 1);
        doc_free(d);

        len = 0;
        for (i = 0; i < WH_MAX_POLICY_DEPTH + 1; i++)
                text[len++] = '[';
        for (i = 0; i < WH_MAX_POLICY_DEPTH + 1; i++)
                text[len++] = ']';
        text[len] = '\0';
        snprintf(want, sizeof(want), "1:%u: nesting deeper than %u levels", WH_MAX_POLICY_DEPTH + 1,
                 WH_MAX_POLICY_DEPTH);
        expect_error(text, -EINVAL, want);

        /* `levels` block mappings: key i on line i+1, indented 2*i, and the
         * innermost mapping holds "leaf". */
        for (levels = WH_MAX_POLICY_DEPTH; levels <= WH_MAX_POLICY_DEPTH + 1; levels++) {
                char block[1024];

                len = 0;
                for (i = 0; i + 1 < levels; i++)
                        len += (size_t)snprintf(block + len, sizeof(block) - len, "%*sk%u:\n", (int)(2 * i), "", i);
                snprintf(block + len, sizeof(block) - len, "%*sleaf: 1\n", (int)(2 * (levels - 1)), "");
                if (levels == WH_MAX_POLICY_DEPTH) {
                        d = parse_ok(block);
                        n = doc_root(d);
                        for (i = 0; i + 1 < levels; i++) {
                                char key[16];

                                snprintf(key, sizeof(key), "k%u", i);
                                n = at(n, key, NULL);
                        }
                        assert_number_node(at(n, "leaf", NULL), 1);
                        doc_free(d);
                } else {
                        /* The mapping that holds "leaf" starts at line 17, column 33. */
                        snprintf(want, sizeof(want), "%u:%u: nesting deeper than %u levels", levels,
                                 2 * (levels - 1) + 1, WH_MAX_POLICY_DEPTH);
                        expect_error(block, -EINVAL, want);
                }
        }
}

static void test_depth_bound_through_aliases(void **state)
{
        struct doc *d;

        (void)state;
        /* The anchored list is 10 levels tall; an alias to it at depth 6 makes 16. */
        d = parse_ok("a: &x [[[[[[[[[[1]]]]]]]]]]\nb: [[[[[*x]]]]]\n");
        assert_true(cJSON_Compare(at(doc_root(d), "a", NULL),
                                  doc_root(d)->child->next->child->child->child->child->child, true));
        doc_free(d);
        /* At depth 7 it would make 17. */
        expect_error("a: &x [[[[[[[[[[1]]]]]]]]]]\nb: [[[[[[*x]]]]]]\n", -EINVAL,
                     "2:10: nesting deeper than 16 levels");
}

static void test_aliases(void **state)
{
        struct doc *d;
        const cJSON *root, *base, *copy;

        (void)state;
        d = parse_ok("base: &b {x: 1, y: [a, b]}\ncopy: *b\n");
        root = doc_root(d);
        base = at(root, "base", NULL);
        copy = at(root, "copy", NULL);
        assert_non_null(base);
        assert_non_null(copy);
        assert_ptr_not_equal(base, copy);
        assert_true(cJSON_Compare(base, copy, true));
        assert_ptr_not_equal(at(base, "y", NULL), at(copy, "y", NULL));
        /* The copy's root is where the alias is; what is inside it, where it was written. */
        assert_place(d, copy, 2, 7);
        assert_place(d, at(copy, "x", NULL), 1, 14);
        assert_place(d, cJSON_GetArrayItem(at(copy, "y", NULL), 1), 1, 24);
        assert_place(d, cJSON_GetArrayItem(at(base, "y", NULL), 1), 1, 24);
        assert_int_equal(assert_all_placed(d), 11);
        doc_free(d);

        /* Copies of copies. */
        d = parse_ok("a: &a {k: [1, {m: x}]}\nb: &b [*a, *a]\nc: [*b, *b]\n");
        assert_true(cJSON_Compare(cJSON_GetArrayItem(cJSON_GetArrayItem(at(doc_root(d), "c", NULL), 1), 0),
                                  at(doc_root(d), "a", NULL), true));
        assert_place(d, at(cJSON_GetArrayItem(cJSON_GetArrayItem(at(doc_root(d), "c", NULL), 1), 0), "k", NULL), 1, 11);
        /* root, a (5 nodes), b (1 + 2 * 5), c (1 + 2 * 11) */
        assert_int_equal(assert_all_placed(d), 1 + 5 + 11 + 23);
        doc_free(d);

        /* Scalar aliases keep their type; aliases can be keys; a key's anchor can be a value. */
        d = parse_ok("n: &n 12\nm: *n\ns: &s \"12\"\nt: *s\nk: &name team-a\n*name : 1\n&kk key: 2\nv: *kk\n");
        root = doc_root(d);
        assert_number_node(at(root, "m", NULL), 12);
        assert_string_node(at(root, "t", NULL), "12");
        assert_number_node(at(root, "team-a", NULL), 1);
        assert_number_node(at(root, "key", NULL), 2);
        assert_string_node(at(root, "v", NULL), "key");
        assert_place(d, at(root, "m", NULL), 2, 4);
        doc_free(d);

        /* A later anchor of the same name wins. */
        d = parse_ok("a: &x 1\nb: &x [2]\nc: *x\n");
        assert_true(cJSON_IsArray(at(doc_root(d), "c", NULL)));
        assert_number_node(cJSON_GetArrayItem(at(doc_root(d), "c", NULL), 0), 2);
        doc_free(d);

        /* An alias key duplicating a key is caught like any other. */
        expect_error("k: &a x\nx: 1\n*a : 2\n", -EINVAL, "3:1: duplicate key \"x\"");
        expect_error("a: *nope\n", -EINVAL, "1:4: unknown anchor *nope");
        expect_error("a: &x [1, *x]\n", -EINVAL, "1:11: alias *x refers to a node that contains it");
}

static char *billion_laughs(void)
{
        static const char names[] = "abcdefghi";
        size_t cap = 4096, len = 0;
        char *text = malloc(cap);
        unsigned i, j;

        assert_non_null(text);
        len += (size_t)snprintf(text + len, cap - len, "a: &a [\"lol\"");
        for (j = 1; j < 9; j++)
                len += (size_t)snprintf(text + len, cap - len, ", \"lol\"");
        len += (size_t)snprintf(text + len, cap - len, "]\n");
        for (i = 1; i < 9; i++) {
                len += (size_t)snprintf(text + len, cap - len, "%c: &%c [*%c", names[i], names[i], names[i - 1]);
                for (j = 1; j < 9; j++)
                        len += (size_t)snprintf(text + len, cap - len, ", *%c", names[i - 1]);
                len += (size_t)snprintf(text + len, cap - len, "]\n");
        }
        assert_true(len < cap);
        return text;
}

static double seconds_since(const struct timespec *t0)
{
        struct timespec t1;

        clock_gettime(CLOCK_MONOTONIC, &t1);
        return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void test_billion_laughs(void **state)
{
        char *text = billion_laughs();
        char err[256], want[64];
        struct timespec t0;
        int r;

        (void)state;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        r = parse_fail_n(text, strlen(text), err, sizeof(err));
        assert_int_equal(r, -E2BIG);
        /* f (9^5 lols) is the first level over the bound. */
        snprintf(want, sizeof(want), ": more than %u nodes", WH_MAX_POLICY_NODES);
        assert_true(strncmp(err, "6:", 2) == 0);
        assert_non_null(strstr(err, want));
        /* Refused before the copies are made, not after building them. */
        assert_true(seconds_since(&t0) < 2.0);
        free(text);
}

/* "[0, 0, ..., 0]" with `items` items. */
static char *flat_list(size_t items)
{
        char *text = malloc(3 * items + 3);
        size_t len = 0, i;

        assert_non_null(text);
        text[len++] = '[';
        for (i = 0; i < items; i++) {
                if (i)
                        text[len++] = ',';
                text[len++] = '0';
        }
        text[len++] = ']';
        text[len] = '\0';
        return text;
}

static void test_node_bound_without_aliases(void **state)
{
        /* The root counts: this many items fill the bound exactly. */
        char *text = flat_list(WH_MAX_POLICY_NODES - 1);
        char err[256];
        struct doc *d;

        (void)state;
        d = parse_ok(text);
        assert_int_equal(cJSON_GetArraySize(doc_root(d)), WH_MAX_POLICY_NODES - 1);
        doc_free(d);
        free(text);

        text = flat_list(WH_MAX_POLICY_NODES);
        assert_int_equal(parse_fail_n(text, strlen(text), err, sizeof(err)), -E2BIG);
        assert_non_null(strstr(err, "more than"));
        free(text);
}

/* Few nodes but long strings: the copies are bounded by bytes too. */
static void test_alias_byte_bound(void **state)
{
        const size_t str_len = 128u * 1024u;
        const size_t aliases = WH_MAX_POLICY_BYTES / str_len + 1;
        char *text = malloc(str_len + 16 + aliases * 5);
        char err[256], want[80];
        size_t len = 0, i;

        (void)state;
        assert_non_null(text);
        len += (size_t)sprintf(text, "a: &s ");
        memset(text + len, 'x', str_len);
        len += str_len;
        len += (size_t)sprintf(text + len, "\nb: [*s");
        for (i = 1; i < aliases; i++)
                len += (size_t)sprintf(text + len, ",*s");
        len += (size_t)sprintf(text + len, "]\n");
        assert_int_equal(parse_fail_n(text, len, err, sizeof(err)), -E2BIG);
        snprintf(want, sizeof(want), ": aliases expand to more than %u bytes", WH_MAX_POLICY_BYTES);
        assert_non_null(strstr(err, want));

        /* The same through a mapping that holds the string. */
        memcpy(text, "a: &m {k: ", 10);
        len = 10;
        memset(text + len, 'x', str_len);
        len += str_len;
        len += (size_t)sprintf(text + len, "}\nb: [*m");
        for (i = 1; i < aliases; i++)
                len += (size_t)sprintf(text + len, ",*m");
        len += (size_t)sprintf(text + len, "]\n");
        assert_int_equal(parse_fail_n(text, len, err, sizeof(err)), -E2BIG);
        assert_non_null(strstr(err, want));
        free(text);
}

static void test_nul_bytes(void **state)
{
        static const char raw1[] = "a: b\0c\n";
        static const char raw2[] = "a: 1\nbb\0\n";
        char err[256];

        (void)state;
        assert_int_equal(parse_fail_n(raw1, sizeof(raw1) - 1, err, sizeof(err)), -EINVAL);
        assert_string_equal(err, "1:5: NUL byte in the document");
        assert_int_equal(parse_fail_n(raw2, sizeof(raw2) - 1, err, sizeof(err)), -EINVAL);
        assert_string_equal(err, "2:3: NUL byte in the document");
        /* Escapes that make a NUL would silently cut a cJSON string. */
        expect_error("a: \"x\\0y\"\n", -EINVAL, "1:4: NUL character in a scalar");
        expect_error("a: \"\\x00\"\n", -EINVAL, "1:4: NUL character in a scalar");
        expect_error("{\"a\": \"\\u0000\"}", -EINVAL, "1:7: NUL character in a scalar");
        expect_error("\"k\\0\": 1\n", -EINVAL, "1:1: NUL character in a scalar");
}

static void test_text_need_not_be_terminated(void **state)
{
        /* No NUL after the last byte: ASan catches any read past it. */
        char *text = malloc(4);
        struct doc *d;

        (void)state;
        assert_non_null(text);
        memcpy(text, "a: 1", 4);
        d = parse_ok_n(text, 4);
        assert_number_node(at(doc_root(d), "a", NULL), 1);
        doc_free(d);
        /* And the length, not a NUL, says where the text ends. */
        d = parse_ok_n("a: 1garbage: [", 4);
        assert_number_node(at(doc_root(d), "a", NULL), 1);
        doc_free(d);
        free(text);
}

static void test_arguments_and_error_buffer(void **state)
{
        struct doc *d = UNTOUCHED;
        char small[8];

        (void)state;
        assert_int_equal(doc_parse("a: 1", 4, NULL, small, sizeof(small)), -EINVAL);
        assert_int_equal(doc_parse(NULL, 3, &d, small, sizeof(small)), -EINVAL);
        assert_ptr_equal(d, UNTOUCHED);

        /* A short buffer gets a truncated, terminated message. */
        memset(small, 'Z', sizeof(small));
        assert_int_equal(parse_fail_n("a: b: c\n", 8, small, sizeof(small)), -EINVAL);
        assert_string_equal(small, "1:5: ma");
        /* No buffer at all is fine too. */
        assert_int_equal(parse_fail_n("a: b: c\n", 8, NULL, 0), -EINVAL);
        assert_int_equal(parse_fail_n("{x: 1, x: 2}", 12, NULL, 0), -EINVAL);
}

static void test_scalar_root_and_null_safety(void **state)
{
        struct doc *d = parse_ok("plain text\n");

        (void)state;
        assert_string_node(doc_root(d), "plain text");
        assert_place(d, doc_root(d), 1, 1);
        doc_free(d);
        assert_null(doc_root(NULL));
        doc_free(NULL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_policy_yaml),
                cmocka_unit_test(test_policy_mode_off_is_a_string),
                cmocka_unit_test(test_policy_json_equals_yaml),
                cmocka_unit_test(test_policy_cjson_round_trip),
                cmocka_unit_test(test_positions),
                cmocka_unit_test(test_key_positions),
                cmocka_unit_test(test_positions_count_characters),
                cmocka_unit_test(test_plain_scalar_typing),
                cmocka_unit_test(test_quoted_and_tagged_scalars),
                cmocka_unit_test(test_tag_errors),
                cmocka_unit_test(test_numbers_json_cannot_hold),
                cmocka_unit_test(test_json_values_and_escapes),
                cmocka_unit_test(test_json_details),
                cmocka_unit_test(test_duplicate_keys),
                cmocka_unit_test(test_keys_are_strings),
                cmocka_unit_test(test_non_scalar_keys),
                cmocka_unit_test(test_merge_keys_rejected),
                cmocka_unit_test(test_syntax_errors),
                cmocka_unit_test(test_empty_input),
                cmocka_unit_test(test_one_document_only),
                cmocka_unit_test(test_depth_bound),
                cmocka_unit_test(test_depth_bound_through_aliases),
                cmocka_unit_test(test_aliases),
                cmocka_unit_test(test_billion_laughs),
                cmocka_unit_test(test_node_bound_without_aliases),
                cmocka_unit_test(test_alias_byte_bound),
                cmocka_unit_test(test_nul_bytes),
                cmocka_unit_test(test_text_need_not_be_terminated),
                cmocka_unit_test(test_arguments_and_error_buffer),
                cmocka_unit_test(test_scalar_root_and_null_safety),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
