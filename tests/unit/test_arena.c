/* The per-thread cJSON arena: allocations inside the bracket come from it
 * and are reused, allocations outside it are ordinary, and threads that end
 * leave nothing behind (LeakSanitizer checks that in the ASan build). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "arena.h"

static const char review[] = "{\"kind\":\"AdmissionReview\",\"request\":{\"uid\":\"u\",\"object\":{\"metadata\":"
                             "{\"labels\":{\"spark-role\":\"driver\"}},\"spec\":{\"containers\":[{\"name\":\"c\"}]}}}}";

static void test_inside_bracket_uses_arena(void **state)
{
        arena_begin();
        cJSON *a = cJSON_Parse(review);
        assert_non_null(a);
        size_t used = arena_used();
        assert_true(used > 0);
        const char *uid = cJSON_GetObjectItem(cJSON_GetObjectItem(a, "request"), "uid")->valuestring;
        assert_string_equal(uid, "u");
        const void *first_node = a;
        cJSON_Delete(a);
        assert_int_equal(arena_used(), used);   /* frees cost nothing inside */
        arena_end();

        /* The next bracket reuses the same memory. */
        arena_begin();
        assert_int_equal(arena_used(), 0);
        cJSON *b = cJSON_Parse(review);
        assert_ptr_equal(b, first_node);
        cJSON_Delete(b);
        arena_end();
}

static void test_outside_bracket_is_malloc(void **state)
{
        cJSON *a = cJSON_Parse(review);
        assert_non_null(a);
        assert_int_equal(arena_used(), 0);
        arena_begin();
        /* A tree made outside may be freed inside: it goes back to free(). */
        cJSON_Delete(a);
        assert_int_equal(arena_used(), 0);
        arena_end();
}

static void test_large_documents_chain_chunks(void **state)
{
        /* About 4 MiB of nodes: past the kept size, so chunks are chained and
         * returned at the end. */
        size_t n = 200000;
        char *text = malloc(n * 4 + 8);
        char *p = text;
        *p++ = '[';
        for (size_t i = 0; i < n; i++) {
                memcpy(p, i ? ",\"x\"" : "\"x\"", i ? 4 : 3);
                p += i ? 4 : 3;
        }
        *p++ = ']';
        *p = '\0';
        for (int round = 0; round < 3; round++) {
                arena_begin();
                cJSON *a = cJSON_Parse(text);
                assert_non_null(a);
                assert_int_equal(cJSON_GetArraySize(a), (int)n);
                assert_true(arena_used() > n * sizeof(cJSON));
                cJSON_Delete(a);
                arena_end();
        }
        free(text);
}

static void *worker(void *arg)
{
        int *ok = arg;
        for (int i = 0; i < 100; i++) {
                arena_begin();
                cJSON *a = cJSON_Parse(review);
                *ok += a != NULL && arena_used() > 0;
                cJSON_Delete(a);
                arena_end();
        }
        return NULL;
}

static void test_threads_have_their_own(void **state)
{
        pthread_t t[4];
        int ok[4] = { 0 };
        for (int i = 0; i < 4; i++)
                assert_int_equal(pthread_create(&t[i], NULL, worker, &ok[i]), 0);
        for (int i = 0; i < 4; i++) {
                pthread_join(t[i], NULL);
                assert_int_equal(ok[i], 100);
        }
}

int main(void)
{
        arena_install();
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_inside_bracket_uses_arena),
                cmocka_unit_test(test_outside_bracket_is_malloc),
                cmocka_unit_test(test_large_documents_chain_chunks),
                cmocka_unit_test(test_threads_have_their_own),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
