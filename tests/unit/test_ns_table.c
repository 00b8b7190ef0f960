/* The namespace table: what an entry keeps (every string label, only the
 * spark-identity.io/ annotations), lookups before and after sorting, the
 * bound, names added twice, and an entry filled outside a table. */
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

#include "ns_table.h"

static const char *value_of(const struct kv *kv, size_t n, const char *key)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp(kv[i].key, key) == 0)
                        return kv[i].value;
        return NULL;
}

/* Adds the namespace whose metadata is `meta_json`. */
static int add(struct ns_table *t, const char *name, const char *meta_json)
{
        cJSON *meta = cJSON_Parse(meta_json);
        assert_non_null(meta);
        int r = ns_table_add(t, name, cJSON_GetObjectItemCaseSensitive(meta, "labels"),
                             cJSON_GetObjectItemCaseSensitive(meta, "annotations"));
        cJSON_Delete(meta);
        return r;
}

static void test_keeps_labels_and_our_annotations(void **state)
{
        struct ns_table t;
        ns_table_init(&t, 16);
        assert_int_equal(add(&t, "spark",
                             "{\"labels\":{\"team\":\"data\",\"n\":7,\"tier\":\"gold\"},"
                             "\"annotations\":{\"spark-identity.io/identity\":\"sparkaks\","
                             "\"other.io/x\":\"y\",\"spark-identity.io/mode\":\"audit\","
                             "\"spark-identity.io/bad\":false,\"spark-identity.iox\":\"no\"}}"),
                         0);
        ns_table_sort(&t);
        /* The source is gone: the entry holds copies. */
        const struct ns_entry *e = ns_table_find(&t, "spark");
        assert_non_null(e);
        assert_string_equal(e->name, "spark");
        assert_int_equal(e->info.n_labels, 2);
        assert_string_equal(value_of(e->info.labels, e->info.n_labels, "team"), "data");
        assert_string_equal(value_of(e->info.labels, e->info.n_labels, "tier"), "gold");
        assert_null(value_of(e->info.labels, e->info.n_labels, "n"));
        assert_int_equal(e->info.n_annotations, 2);
        assert_string_equal(value_of(e->info.annotations, e->info.n_annotations, "spark-identity.io/identity"),
                            "sparkaks");
        assert_string_equal(value_of(e->info.annotations, e->info.n_annotations, "spark-identity.io/mode"), "audit");
        ns_table_free(&t);
}

static void test_no_maps(void **state)
{
        struct ns_table t;
        ns_table_init(&t, 16);
        assert_int_equal(ns_table_add(&t, "bare", NULL, NULL), 0);
        assert_int_equal(add(&t, "empty", "{\"labels\":{},\"annotations\":{}}"), 0);
        ns_table_sort(&t);
        for (int i = 0; i < 2; i++) {
                const struct ns_entry *e = ns_table_find(&t, i ? "empty" : "bare");
                assert_non_null(e);
                assert_int_equal(e->info.n_labels, 0);
                assert_int_equal(e->info.n_annotations, 0);
                assert_non_null(e->info.labels);
                assert_non_null(e->info.annotations);
        }
        ns_table_free(&t);
}

static void test_sorted_lookup(void **state)
{
        static const char *const names[] = { "kube-system", "default", "spark-b", "spark", "a", "zz", "spark-a" };
        const size_t n = sizeof names / sizeof names[0];
        struct ns_table t;
        ns_table_init(&t, 1000);
        assert_null(ns_table_find(&t, "default"));      /* empty */
        /* Enough to grow the array more than once. */
        for (size_t i = 0; i < 200; i++) {
                char name[32];
                snprintf(name, sizeof name, "ns-%03zu", 199 - i);
                assert_int_equal(ns_table_add(&t, name, NULL, NULL), 0);
        }
        for (size_t i = 0; i < n; i++) {
                char meta[128];
                snprintf(meta, sizeof meta, "{\"labels\":{\"i\":\"%zu\"}}", i);
                assert_int_equal(add(&t, names[i], meta), 0);
        }
        assert_int_equal(t.n, 200 + n);
        assert_null(ns_table_find(&t, "default"));      /* not sorted yet */
        ns_table_sort(&t);
        for (size_t i = 1; i < t.n; i++)
                assert_true(strcmp(t.v[i - 1].name, t.v[i].name) < 0);
        for (size_t i = 0; i < n; i++) {
                char want[16];
                snprintf(want, sizeof want, "%zu", i);
                const struct ns_entry *e = ns_table_find(&t, names[i]);
                assert_non_null(e);
                assert_string_equal(e->name, names[i]);
                assert_string_equal(value_of(e->info.labels, e->info.n_labels, "i"), want);
        }
        assert_non_null(ns_table_find(&t, "ns-000"));
        assert_non_null(ns_table_find(&t, "ns-199"));
        assert_null(ns_table_find(&t, "ns-200"));
        assert_null(ns_table_find(&t, "spar"));
        assert_null(ns_table_find(&t, ""));
        assert_null(ns_table_find(&t, NULL));
        /* Adding unsorts it until the next sort. */
        assert_int_equal(ns_table_add(&t, "b", NULL, NULL), 0);
        assert_null(ns_table_find(&t, "b"));
        ns_table_sort(&t);
        assert_non_null(ns_table_find(&t, "b"));
        assert_non_null(ns_table_find(&t, "spark"));
        ns_table_free(&t);
        assert_int_equal(t.n, 0);
        assert_null(ns_table_find(&t, "spark"));
        /* Usable again after free, with the same bound. */
        assert_int_equal(t.max, 1000);
        assert_int_equal(ns_table_add(&t, "again", NULL, NULL), 0);
        ns_table_sort(&t);
        assert_non_null(ns_table_find(&t, "again"));
        ns_table_free(&t);
}

static void test_bounded(void **state)
{
        struct ns_table t;
        ns_table_init(&t, 3);
        assert_int_equal(ns_table_add(&t, "a", NULL, NULL), 0);
        assert_int_equal(ns_table_add(&t, "b", NULL, NULL), 0);
        assert_int_equal(ns_table_add(&t, "c", NULL, NULL), 0);
        assert_int_equal(ns_table_add(&t, "d", NULL, NULL), -E2BIG);
        assert_int_equal(t.n, 3);
        assert_true(t.cap <= 3);
        ns_table_sort(&t);
        assert_non_null(ns_table_find(&t, "c"));
        assert_null(ns_table_find(&t, "d"));
        ns_table_free(&t);

        ns_table_init(&t, 0);
        assert_int_equal(ns_table_add(&t, "a", NULL, NULL), -E2BIG);
        ns_table_free(&t);
}

/* A name added twice is kept twice; a lookup finds one of them. */
static void test_twice(void **state)
{
        struct ns_table t;
        ns_table_init(&t, 16);
        assert_int_equal(add(&t, "x", "{\"labels\":{\"v\":\"1\"}}"), 0);
        assert_int_equal(add(&t, "x", "{\"labels\":{\"v\":\"2\"}}"), 0);
        ns_table_sort(&t);
        assert_int_equal(t.n, 2);
        const struct ns_entry *e = ns_table_find(&t, "x");
        assert_non_null(e);
        const char *v = value_of(e->info.labels, e->info.n_labels, "v");
        assert_true(strcmp(v, "1") == 0 || strcmp(v, "2") == 0);
        ns_table_free(&t);
}

static void test_entry_fill(void **state)
{
        struct pool pool = POOL_INIT;
        struct ns_entry e;
        cJSON *meta = cJSON_Parse("{\"labels\":{\"team\":\"data\"},"
                                  "\"annotations\":{\"spark-identity.io/identity\":\"id\",\"x\":\"y\"}}");
        assert_non_null(meta);
        assert_int_equal(ns_table_entry_fill(&pool, "one", cJSON_GetObjectItemCaseSensitive(meta, "labels"),
                                             cJSON_GetObjectItemCaseSensitive(meta, "annotations"), &e),
                         0);
        cJSON_Delete(meta);
        assert_string_equal(e.name, "one");
        assert_int_equal(e.info.n_labels, 1);
        assert_string_equal(e.info.labels[0].key, "team");
        assert_string_equal(e.info.labels[0].value, "data");
        assert_int_equal(e.info.n_annotations, 1);
        assert_string_equal(e.info.annotations[0].key, "spark-identity.io/identity");
        assert_string_equal(e.info.annotations[0].value, "id");
        pool_free(&pool);
}

static void test_name_valid(void **state)
{
        (void)state;
        assert_true(ns_table_name_valid("a"));
        assert_true(ns_table_name_valid("team-a"));
        assert_true(ns_table_name_valid("0abc9"));
        char longest[64];
        memset(longest, 'x', 63);
        longest[63] = '\0';
        assert_true(ns_table_name_valid(longest));
        char too_long[65];
        memset(too_long, 'x', 64);
        too_long[64] = '\0';
        assert_false(ns_table_name_valid(too_long));
        assert_false(ns_table_name_valid(""));
        assert_false(ns_table_name_valid("-a"));
        assert_false(ns_table_name_valid("a-"));
        assert_false(ns_table_name_valid("Team"));
        assert_false(ns_table_name_valid("a.b"));
        assert_false(ns_table_name_valid("a_b"));
        assert_false(ns_table_name_valid("a b"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_keeps_labels_and_our_annotations),
                cmocka_unit_test(test_no_maps),
                cmocka_unit_test(test_sorted_lookup),
                cmocka_unit_test(test_bounded),
                cmocka_unit_test(test_twice),
                cmocka_unit_test(test_entry_fill),
                cmocka_unit_test(test_name_valid),
        };
        return cmocka_run_group_tests_name("ns_table", tests, NULL, NULL);
}
