/* Reading a Kubernetes List one item at a time: items in order, kind and
 * continue token, a single object, and every malformed input. */
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

#include "buf.h"
#include "jsonlist.h"

struct seen {
        char names[16][64];
        size_t n;
        int stop_at;            /* return -ECANCELED at this item (1-based); 0: never */
};

static int on_item(void *ctx, const cJSON *item)
{
        struct seen *s = ctx;
        const cJSON *name = cJSON_GetObjectItem(cJSON_GetObjectItem(item, "metadata"), "name");
        if (s->n < 16)
                snprintf(s->names[s->n], sizeof s->names[0], "%s", cJSON_IsString(name) ? name->valuestring : "?");
        s->n++;
        return s->stop_at && (int)s->n == s->stop_at ? -ECANCELED : 0;
}

static int scan(const char *text, struct seen *s, struct jsonlist_info *info, char *err)
{
        memset(s, 0, sizeof *s);
        return jsonlist_scan(text, strlen(text), on_item, s, info, err, 256);
}

static void test_list(void **state)
{
        struct seen s;
        struct jsonlist_info info;
        char err[256];
        /* As the API server answers a page: kind, metadata with continue, items. */
        const char *page = "{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"42\","
                           "\"continue\":\"eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6NDJ9\",\"remainingItemCount\":3},"
                           "\"items\":[{\"metadata\":{\"name\":\"a\",\"labels\":{\"x\":\"[]{},\"}}},\n"
                           "  {\"metadata\":{\"name\":\"b\"}} , {\"metadata\":{\"name\":\"c\"}}]}\n";
        assert_int_equal(scan(page, &s, &info, err), 0);
        assert_int_equal(s.n, 3);
        assert_string_equal(s.names[0], "a");
        assert_string_equal(s.names[2], "c");
        assert_true(info.has_items);
        assert_int_equal(info.n_items, 3);
        assert_string_equal(info.kind, "PodList");
        assert_string_equal(info.continue_, "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6NDJ9");

        /* As kubectl prints: items before kind, no continue. */
        const char *kubectl =
                "\xEF\xBB\xBF{\n  \"apiVersion\": \"v1\",\n  \"items\": [\n    {\"metadata\": {\"name\": \"p\"}}\n"
                "  ],\n  \"kind\": \"List\",\n  \"metadata\": {\"resourceVersion\": \"\"}\n}\n";
        assert_int_equal(scan(kubectl, &s, &info, err), 0);
        assert_int_equal(s.n, 1);
        assert_string_equal(info.kind, "List");
        assert_string_equal(info.continue_, "");

        /* Empty lists. */
        assert_int_equal(scan("{\"kind\":\"List\",\"items\":[ ]}", &s, &info, err), 0);
        assert_true(info.has_items);
        assert_int_equal(s.n, 0);
        assert_int_equal(scan("{\"kind\":\"PodList\",\"items\":null}", &s, &info, err), 0);
        assert_false(info.has_items);
        assert_string_equal(info.kind, "PodList");
        assert_int_equal(scan("{}", &s, &info, err), 0);
        assert_false(info.has_items);
}

static void test_single_object(void **state)
{
        struct seen s;
        struct jsonlist_info info;
        char err[256];
        assert_int_equal(scan("{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"x\"},\"spec\":{}}", &s,
                              &info, err),
                         0);
        assert_false(info.has_items);
        assert_int_equal(s.n, 0);
        assert_string_equal(info.kind, "Pod");
}

static void test_on_item_stops(void **state)
{
        struct seen s;
        struct jsonlist_info info;
        char err[256];
        memset(&s, 0, sizeof s);
        s.stop_at = 2;
        const char *t = "{\"items\":[{\"metadata\":{\"name\":\"a\"}},{\"metadata\":{\"name\":\"b\"}},{}]}";
        assert_int_equal(jsonlist_scan(t, strlen(t), on_item, &s, &info, err, sizeof err), -ECANCELED);
        assert_int_equal(s.n, 2);
}

static void test_malformed(void **state)
{
        static const struct {
                const char *text;
                const char *err;
        } cases[] = {
                { "", "expected a JSON object at byte 0" },
                { "[]", "expected a JSON object at byte 0" },
                { "  nope", "expected a JSON object at byte 2" },
                { "{\"items\":[{\"a\":1},", "not valid JSON at byte 18" },
                { "{\"items\":[{\"a\":1} {\"b\":2}]}", "expected ',' or ']' after an item at byte 18" },
                { "{\"items\":[{\"a\":1]}", "not valid JSON at byte 16" },
                { "{\"kind\" \"List\"}", "expected ':' at byte 8" },
                { "{\"kind\":\"List\" \"x\":1}", "expected ',' or '}' at byte 15" },
                { "{1:2}", "expected a key at byte 2" },
                { "{\"kind\":\"List\"} trailing", "expected the end of the document at byte 16" },
                { "{\"kind\":", "not valid JSON at byte 8" },
        };
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
                struct seen s;
                struct jsonlist_info info;
                char err[256] = "";
                int r = scan(cases[i].text, &s, &info, err);
                if (r != -EINVAL || strcmp(err, cases[i].err) != 0)
                        fail_msg("case %zu (%s): %d \"%s\", want \"%s\"", i, cases[i].text, r, err, cases[i].err);
        }
}

/* A continue token longer than kept is an error, not a silent truncation
 * (which would list the same page again, or skip pages). */
static void test_continue_too_long(void **state)
{
        struct buf b;
        struct seen s;
        struct jsonlist_info info;
        char err[256];
        buf_init(&b, 1 << 20);
        assert_int_equal(buf_puts(&b, "{\"metadata\":{\"continue\":\""), 0);
        for (unsigned i = 0; i < JSONLIST_CONTINUE_MAX; i++)
                assert_int_equal(buf_putc(&b, 'x'), 0);
        assert_int_equal(buf_puts(&b, "\"},\"items\":[]}"), 0);
        memset(&s, 0, sizeof s);
        assert_int_equal(jsonlist_scan(b.data, b.len, on_item, &s, &info, err, sizeof err), -E2BIG);
        assert_non_null(strstr(err, "continue token"));
        buf_free(&b);
}

/* The text need not end in a NUL (the audit command maps files). */
static void test_not_nul_terminated(void **state)
{
        const char full[] = "{\"items\":[{\"metadata\":{\"name\":\"a\"}}]}XXXX";
        struct seen s;
        struct jsonlist_info info;
        char err[256];
        memset(&s, 0, sizeof s);
        assert_int_equal(jsonlist_scan(full, strlen(full) - 4, on_item, &s, &info, err, sizeof err), 0);
        assert_int_equal(s.n, 1);
        /* Cut inside an item. */
        assert_int_equal(jsonlist_scan(full, 20, on_item, &s, &info, err, sizeof err), -EINVAL);
}

static void test_many_items(void **state)
{
        struct buf b;
        struct seen s;
        struct jsonlist_info info;
        char err[256];
        buf_init(&b, 1 << 24);
        assert_int_equal(buf_puts(&b, "{\"kind\":\"List\",\"items\":["), 0);
        for (int i = 0; i < 5000; i++)
                assert_int_equal(buf_printf(&b, "%s{\"metadata\":{\"name\":\"pod-%d\"}}", i ? "," : "", i), 0);
        assert_int_equal(buf_puts(&b, "]}"), 0);
        memset(&s, 0, sizeof s);
        assert_int_equal(jsonlist_scan(b.data, b.len, on_item, &s, &info, err, sizeof err), 0);
        assert_int_equal(s.n, 5000);
        assert_int_equal(info.n_items, 5000);
        assert_string_equal(s.names[15], "pod-15");
        buf_free(&b);
}

/* A page cut at every byte: what its head says is what came whole. */
static void test_head_of_a_cut_page(void **state)
{
        (void)state;
        static const char page[] =
                "{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"42\","
                "\"continue\":\"tok+/=\",\"remainingItemCount\":3},"
                "\"items\":[{\"metadata\":{\"name\":\"big\",\"namespace\":\"team-a\",\"uid\":\"u-1\","
                "\"labels\":{\"spark-role\":\"driver\"}},\"spec\":{\"containers\":[{\"env\":["
                "{\"name\":\"X\",\"value\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}]}]}}]}";
        const size_t n = sizeof page - 1;
        const char *list_meta_end = strstr(page, "},\"items\"") + 1;
        const char *name_end = strstr(page, "\"big\"") + 5, *ns_end = strstr(page, "\"team-a\"") + 8;
        const char *labels_end = strstr(page, "\"driver\"}") + 9, *meta_end = strstr(page, "},\"spec\"") + 1;
        const char *item_end = page + n - 2;
        for (size_t cut = 0; cut <= n; cut++) {
                struct jsonlist_head h;
                cJSON *md = NULL;
                int r = jsonlist_scan_head(page, cut, &h, &md);
                if (cut == 0) {
                        assert_int_equal(r, -EINVAL);
                        assert_null(md);
                        continue;
                }
                assert_int_equal(r, 0);
                bool meta_whole = page + cut >= list_meta_end;
                assert_int_equal(h.has_metadata, meta_whole);
                assert_string_equal(h.continue_, meta_whole ? "tok+/=" : "");
                if (page + cut >= strstr(page, "\"apiVersion\""))
                        assert_string_equal(h.kind, "PodList");
                const cJSON *name = cJSON_GetObjectItem(md, "name");
                const cJSON *ns = cJSON_GetObjectItem(md, "namespace");
                const cJSON *labels = cJSON_GetObjectItem(md, "labels");
                if (page + cut >= item_end) {
                        /* The item came whole: nothing was cut in it. */
                        assert_null(md);
                        assert_int_equal(h.n_items, 1);
                        continue;
                }
                assert_int_equal(h.n_items, 0);
                assert_int_equal(cJSON_IsString(name), page + cut >= name_end);
                assert_int_equal(cJSON_IsString(ns), page + cut >= ns_end);
                assert_int_equal(cJSON_IsObject(labels), page + cut >= labels_end);
                if (page + cut >= meta_end)
                        assert_non_null(md);
                if (name)
                        assert_string_equal(name->valuestring, "big");
                cJSON_Delete(md);
        }

        /* Items before the one cut are counted; a second item cut in its
         * metadata is the one described. */
        static const char two[] = "{\"metadata\":{},\"items\":[{\"metadata\":{\"name\":\"a\"}},"
                                  "{\"metadata\":{\"name\":\"b\",\"labels\":{\"x\":\"y";
        struct jsonlist_head h;
        cJSON *md = NULL;
        assert_int_equal(jsonlist_scan_head(two, sizeof two - 1, &h, &md), 0);
        assert_true(h.has_metadata);
        assert_string_equal(h.continue_, "");
        assert_int_equal(h.n_items, 1);
        assert_string_equal(cJSON_GetObjectItem(md, "name")->valuestring, "b");
        assert_null(cJSON_GetObjectItem(md, "labels"));
        cJSON_Delete(md);

        /* Items before metadata (not the API server's order): the token is not known. */
        static const char late[] = "{\"items\":[{\"metadata\":{\"name\":\"a\"},\"spec\":{\"x\":\"yyyy";
        assert_int_equal(jsonlist_scan_head(late, sizeof late - 1, &h, &md), 0);
        assert_false(h.has_metadata);
        assert_string_equal(cJSON_GetObjectItem(md, "name")->valuestring, "a");
        cJSON_Delete(md);

        /* Not a list; a token past the bound. */
        assert_int_equal(jsonlist_scan_head("[1,2", 4, &h, &md), -EINVAL);
        struct buf b;
        buf_init(&b, 1 << 16);
        assert_int_equal(buf_puts(&b, "{\"metadata\":{\"continue\":\""), 0);
        for (unsigned i = 0; i < JSONLIST_CONTINUE_MAX; i++)
                assert_int_equal(buf_putc(&b, 'x'), 0);
        assert_int_equal(buf_puts(&b, "\"},\"items\":[{\"metadata\":{\"name\":\"a"), 0);
        assert_int_equal(jsonlist_scan_head(b.data, b.len, &h, &md), -E2BIG);
        assert_null(md);
        buf_free(&b);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_list),
                cmocka_unit_test(test_single_object),
                cmocka_unit_test(test_on_item_stops),
                cmocka_unit_test(test_malformed),
                cmocka_unit_test(test_continue_too_long),
                cmocka_unit_test(test_not_nul_terminated),
                cmocka_unit_test(test_many_items),
                cmocka_unit_test(test_head_of_a_cut_page),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
