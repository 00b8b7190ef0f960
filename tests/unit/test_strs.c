/* Comparing strings: NULL as "", the comparator qsort() and bsearch() use
 * over arrays of strings and over structs keyed by their first member, and
 * membership in a sorted array. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "strs.h"

static int sign(int v)
{
        return (v > 0) - (v < 0);
}

static void test_cmp0(void **state)
{
        assert_int_equal(str_cmp0(NULL, NULL), 0);
        assert_int_equal(str_cmp0(NULL, ""), 0);
        assert_int_equal(str_cmp0("", NULL), 0);
        assert_int_equal(sign(str_cmp0(NULL, "a")), -1);
        assert_int_equal(sign(str_cmp0("a", NULL)), 1);
        assert_int_equal(sign(str_cmp0("a", "b")), -1);
        assert_int_equal(sign(str_cmp0("b", "a")), 1);
        assert_int_equal(sign(str_cmp0("ab", "a")), 1);
        assert_int_equal(str_cmp0("same", "same"), 0);
        /* Bytes compare unsigned, as strcmp() does: UTF-8 sorts after ASCII. */
        assert_int_equal(sign(str_cmp0("\xc3\xa9", "z")), 1);
}

static void test_sort_strings(void **state)
{
        const char *v[] = { "kube-system", "default", "spark", "a", "spark-b", "" };
        const char *want[] = { "", "a", "default", "kube-system", "spark", "spark-b" };
        qsort(v, 6, sizeof *v, str_cmp_ptr);
        for (size_t i = 0; i < 6; i++)
                assert_string_equal(v[i], want[i]);
        const char *key = "spark";
        const char *const *hit = bsearch(&key, v, 6, sizeof *v, str_cmp_ptr);
        assert_non_null(hit);
        assert_ptr_equal(hit, &v[4]);
}

/* Structs keyed by their first member sort by it. */
static void test_sort_keyed_structs(void **state)
{
        struct item {
                const char *name;
                int value;
        } v[] = { { "c", 3 }, { "a", 1 }, { "b", 2 } };
        qsort(v, 3, sizeof *v, str_cmp_ptr);
        for (int i = 0; i < 3; i++)
                assert_int_equal(v[i].value, i + 1);
        struct item key = { .name = "b" };
        const struct item *hit = bsearch(&key, v, 3, sizeof *v, str_cmp_ptr);
        assert_non_null(hit);
        assert_int_equal(hit->value, 2);
}

static void test_sorted_has(void **state)
{
        const char *const v[] = { "app", "team", "tier" };
        assert_true(str_sorted_has(v, 3, "app"));
        assert_true(str_sorted_has(v, 3, "team"));
        assert_true(str_sorted_has(v, 3, "tier"));
        assert_false(str_sorted_has(v, 3, "tea"));
        assert_false(str_sorted_has(v, 3, ""));
        assert_false(str_sorted_has(v, 3, "zzz"));
        assert_false(str_sorted_has(v, 3, NULL));
        assert_false(str_sorted_has(v, 0, "app"));
        assert_false(str_sorted_has(NULL, 0, "app"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cmp0),
                cmocka_unit_test(test_sort_strings),
                cmocka_unit_test(test_sort_keyed_structs),
                cmocka_unit_test(test_sorted_has),
        };
        return cmocka_run_group_tests_name("strs", tests, NULL, NULL);
}
