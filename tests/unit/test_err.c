/* Unit tests for webhook/core/err.c: messages set and appended into the
 * caller's buffer, cut at its size and always terminated, and nothing done
 * to a NULL or empty buffer. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "err.h"

static void test_set_formats(void **state)
{
        char err[64];

        (void)state;
        err_set(err, sizeof(err), "%s is %d", "x", 42);
        assert_string_equal(err, "x is 42");
        err_set(err, sizeof(err), "%s", "replaced");
        assert_string_equal(err, "replaced");
}

static void test_set_cuts_and_terminates(void **state)
{
        char err[8];

        (void)state;
        memset(err, 'z', sizeof(err));
        err_set(err, sizeof(err), "%s", "0123456789");
        assert_string_equal(err, "0123456");
        err_set(err, 1, "%s", "abc");
        assert_string_equal(err, "");
}

static void test_null_and_empty_buffers_are_left_alone(void **state)
{
        char err[4] = "abc";

        (void)state;
        err_set(NULL, 16, "%s", "x");
        err_append(NULL, 16, "%s", "x");
        err_set(err, 0, "%s", "x");
        err_append(err, 0, "%s", "x");
        assert_string_equal(err, "abc");
}

static void test_append_adds_to_the_message(void **state)
{
        char err[64];

        (void)state;
        err_set(err, sizeof(err), "%u:%u: ", 3u, 7u);
        err_append(err, sizeof(err), "%s", "bad value");
        assert_string_equal(err, "3:7: bad value");
        err[0] = '\0';
        err_append(err, sizeof(err), "from %s", "empty");
        assert_string_equal(err, "from empty");
}

static void test_append_cuts_and_stops_when_full(void **state)
{
        char err[8];

        (void)state;
        err_set(err, sizeof(err), "%s", "abcd");
        err_append(err, sizeof(err), "%s", "efghij");
        assert_string_equal(err, "abcdefg");
        err_append(err, sizeof(err), "%s", "more");
        assert_string_equal(err, "abcdefg");
        /* No NUL within errlen: nothing is written past it. */
        memset(err, 'z', sizeof(err));
        err_append(err, 4, "%s", "x");
        assert_memory_equal(err, "zzzzzzzz", sizeof(err));
}

static void va_helper(char *err, size_t errlen, int append, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void va_helper(char *err, size_t errlen, int append, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        if (append)
                err_vappend(err, errlen, fmt, ap);
        else
                err_vset(err, errlen, fmt, ap);
        va_end(ap);
}

static void test_va_list_forms(void **state)
{
        char err[32];

        (void)state;
        va_helper(err, sizeof(err), 0, "%s-%d", "a", 1);
        va_helper(err, sizeof(err), 1, "+%s", "b");
        assert_string_equal(err, "a-1+b");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_set_formats),
                cmocka_unit_test(test_set_cuts_and_terminates),
                cmocka_unit_test(test_null_and_empty_buffers_are_left_alone),
                cmocka_unit_test(test_append_adds_to_the_message),
                cmocka_unit_test(test_append_cuts_and_stops_when_full),
                cmocka_unit_test(test_va_list_forms),
        };
        return cmocka_run_group_tests_name("err", tests, NULL, NULL);
}
