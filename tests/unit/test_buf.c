/* Unit tests for webhook/core/buf.c: the bounded buffer, JSON string escaping,
 * RFC 6901 reference tokens and base64. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "b64_decode.h"

#include <errno.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "buf.h"

/* A deterministic byte stream, so that a failure can be replayed. */
static uint32_t rng_state;

static uint32_t rng(void)
{
        rng_state = rng_state * 1103515245u + 12345u;
        return rng_state >> 8;
}

static void assert_content(const struct buf *b, const char *want, size_t n)
{
        assert_int_equal(b->len, n);
        assert_non_null(b->data);
        assert_memory_equal(b->data, want, n);
        assert_int_equal(b->data[n], '\0');
        assert_true(b->cap >= n + 1);
}

/* --- the buffer --------------------------------------------------------- */

static void test_init_allocates_nothing(void **state)
{
        struct buf b;
        memset(&b, 0x5a, sizeof b);
        buf_init(&b, 1234);
        assert_null(b.data);
        assert_int_equal(b.len, 0);
        assert_int_equal(b.cap, 0);
        assert_int_equal(b.max, 1234);
        buf_free(&b);
        assert_null(b.data);
}

static void test_free_is_safe_on_anything_freed(void **state)
{
        struct buf zero = { 0 };
        buf_free(&zero);
        buf_free(NULL);

        struct buf b;
        buf_init(&b, 100);
        assert_int_equal(buf_puts(&b, "abc"), 0);
        buf_free(&b);
        assert_null(b.data);
        assert_int_equal(b.len, 0);
        assert_int_equal(b.cap, 0);
        buf_free(&b);   /* twice */

        /* The buffer is usable again after buf_free(). */
        assert_int_equal(buf_puts(&b, "xyz"), 0);
        assert_content(&b, "xyz", 3);
        buf_free(&b);
}

static void test_append(void **state)
{
        struct buf b;
        buf_init(&b, 4096);

        assert_int_equal(buf_append(&b, "abc", 3), 0);
        assert_content(&b, "abc", 3);
        assert_int_equal(buf_append(&b, "defgh", 2), 0);   /* only n bytes */
        assert_content(&b, "abcde", 5);
        assert_int_equal(buf_append(&b, "\0x\0", 3), 0);   /* bytes, not a string */
        assert_content(&b, "abcde\0x\0", 8);
        assert_int_equal(buf_append(&b, NULL, 0), 0);
        assert_content(&b, "abcde\0x\0", 8);
        buf_free(&b);

        /* An empty append to a fresh buffer still leaves a NUL-terminated "". */
        buf_init(&b, 10);
        assert_int_equal(buf_append(&b, "", 0), 0);
        assert_content(&b, "", 0);
        buf_free(&b);
}

static void test_append_grows_past_the_first_allocation(void **state)
{
        struct buf b;
        char want[5000];
        buf_init(&b, sizeof want);

        for (size_t i = 0; i < sizeof want; i++) {
                want[i] = (char)('a' + i % 26);
                assert_int_equal(buf_putc(&b, want[i]), 0);
                assert_int_equal(b.len, i + 1);
                assert_int_equal(b.data[i + 1], '\0');
        }
        assert_content(&b, want, sizeof want);
        /* A bounded buffer never allocates more than its maximum and the NUL. */
        assert_true(b.cap <= b.max + 1);
        buf_free(&b);
}

static void test_puts_putc(void **state)
{
        struct buf b;
        buf_init(&b, 100);
        assert_int_equal(buf_puts(&b, "hello"), 0);
        assert_int_equal(buf_putc(&b, ','), 0);
        assert_int_equal(buf_putc(&b, ' '), 0);
        assert_int_equal(buf_puts(&b, ""), 0);
        assert_int_equal(buf_puts(&b, "world"), 0);
        assert_int_equal(buf_putc(&b, '\0'), 0);   /* a NUL byte is a byte */
        assert_int_equal(buf_putc(&b, '!'), 0);
        assert_content(&b, "hello, world\0!", 14);
        buf_free(&b);
}

static void test_printf_short(void **state)
{
        struct buf b;
        buf_init(&b, 1000);
        assert_int_equal(buf_printf(&b, "%d-%s-%zu", 42, "x", (size_t)7), 0);
        assert_content(&b, "42-x-7", 6);
        assert_int_equal(buf_printf(&b, "%s", ""), 0);
        assert_content(&b, "42-x-7", 6);
        assert_int_equal(buf_printf(&b, "|%05u|", 12u), 0);
        assert_content(&b, "42-x-7|00012|", 13);
        buf_free(&b);
}

/* Lengths around the 256-byte stack buffer buf_printf() tries first. */
static void test_printf_long(void **state)
{
        static const size_t lens[] = { 254, 255, 256, 257, 300, 1000, 4096, 70000 };
        char *s = malloc(70001);
        assert_non_null(s);
        for (size_t i = 0; i < 70000; i++)
                s[i] = (char)('A' + i % 23);

        for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
                size_t n = lens[k];
                struct buf b;
                buf_init(&b, 200000);
                assert_int_equal(buf_puts(&b, "pre:"), 0);
                assert_int_equal(buf_printf(&b, "%.*s#%d", (int)n, s, 9), 0);
                assert_int_equal(b.len, 4 + n + 2);
                assert_memory_equal(b.data, "pre:", 4);
                assert_memory_equal(b.data + 4, s, n);
                assert_memory_equal(b.data + 4 + n, "#9", 3);   /* with the NUL */
                assert_int_equal(buf_puts(&b, "!"), 0);
                assert_int_equal(b.data[b.len - 1], '!');
                assert_int_equal(b.data[b.len], '\0');
                buf_free(&b);
        }
        free(s);
}

/* The maximum is the largest len allowed: reaching it works, passing it
 * fails with -ENOBUFS and changes nothing. */
static void test_max_is_exact(void **state)
{
        struct buf b;
        buf_init(&b, 10);

        assert_int_equal(buf_puts(&b, "12345"), 0);
        assert_int_equal(buf_append(&b, "abcdef", 6), -ENOBUFS);
        assert_content(&b, "12345", 5);
        assert_int_equal(buf_puts(&b, "abcdef"), -ENOBUFS);
        assert_content(&b, "12345", 5);
        assert_int_equal(buf_printf(&b, "%s", "abcdef"), -ENOBUFS);
        assert_content(&b, "12345", 5);
        assert_int_equal(buf_append(&b, "abcde", 5), 0);
        assert_content(&b, "12345abcde", 10);
        assert_int_equal(b.len, b.max);

        assert_int_equal(buf_putc(&b, 'x'), -ENOBUFS);
        assert_int_equal(buf_puts(&b, "x"), -ENOBUFS);
        assert_int_equal(buf_append(&b, "x", 1), -ENOBUFS);
        assert_int_equal(buf_printf(&b, "x"), -ENOBUFS);
        assert_int_equal(buf_put_base64(&b, "x", 1), -ENOBUFS);
        assert_int_equal(buf_put_json_str(&b, ""), -ENOBUFS);
        assert_int_equal(buf_put_pointer_token(&b, ""), -ENOBUFS);
        assert_content(&b, "12345abcde", 10);
        assert_int_equal(buf_append(&b, "", 0), 0);   /* nothing more is still fine */
        assert_content(&b, "12345abcde", 10);
        assert_true(b.cap <= b.max + 1);
        buf_free(&b);

        /* The whole maximum in one append, into a fresh buffer. */
        buf_init(&b, 10);
        assert_int_equal(buf_append(&b, "0123456789X", 11), -ENOBUFS);
        assert_null(b.data);
        assert_int_equal(b.len, 0);
        assert_int_equal(buf_append(&b, "0123456789", 10), 0);
        assert_content(&b, "0123456789", 10);
        buf_free(&b);
}

/* The long path of buf_printf() reserves directly: it must keep the bound too. */
static void test_max_printf_long_path(void **state)
{
        char s[600];
        memset(s, 'q', sizeof s);
        struct buf b;

        buf_init(&b, 500);
        assert_int_equal(buf_puts(&b, "ab"), 0);
        assert_int_equal(buf_printf(&b, "%.*s", 499, s), -ENOBUFS);
        assert_content(&b, "ab", 2);
        assert_int_equal(buf_printf(&b, "%.*s", 498, s), 0);
        assert_int_equal(b.len, 500);
        assert_memory_equal(b.data + 2, s, 498);
        assert_int_equal(b.data[500], '\0');
        assert_true(b.cap <= b.max + 1);
        buf_free(&b);
}

static void test_max_zero(void **state)
{
        struct buf b;
        buf_init(&b, 0);
        assert_int_equal(buf_putc(&b, 'a'), -ENOBUFS);
        assert_int_equal(buf_append(&b, "", 0), 0);
        assert_content(&b, "", 0);
        buf_free(&b);
}

/* Runs `fn` in a child process, so that a crash (or an AddressSanitizer
 * report) fails this test instead of ending every test in the file. */
static void run_in_child(void (*fn)(void), const char *what)
{
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                fn();
                _exit(0);
        }
        int st = 0;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                fail_msg("%s: the child %s %d", what, WIFEXITED(st) ? "exited with" : "was killed by signal",
                         WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
}

static void child_size_max(void)
{
        struct buf b;
        buf_init(&b, SIZE_MAX);         /* "no bound" */
        if (buf_puts(&b, "hello") != 0 || buf_puts(&b, ", world") != 0)
                _exit(2);
        if (b.len != 12 || b.cap < 13 || strcmp(b.data, "hello, world") != 0)
                _exit(3);
        for (int i = 0; i < 1000; i++)
                if (buf_puts(&b, "0123456789") != 0)
                        _exit(4);
        if (b.len != 10012 || b.cap < 10013)
                _exit(5);
        buf_free(&b);
}

/* A maximum of SIZE_MAX must behave as "no bound", not overflow max + 1. */
static void test_max_size_max(void **state)
{
        run_in_child(child_size_max, "buf_init(SIZE_MAX) then appends");
}

static void test_reset(void **state)
{
        struct buf b;
        buf_init(&b, 100);
        buf_reset(&b);                  /* nothing allocated yet */
        assert_null(b.data);
        assert_int_equal(b.len, 0);

        assert_int_equal(buf_puts(&b, "some text"), 0);
        char *before = b.data;
        size_t cap = b.cap;
        buf_reset(&b);
        assert_int_equal(b.len, 0);
        assert_ptr_equal(b.data, before);       /* the allocation is kept */
        assert_int_equal(b.cap, cap);
        assert_string_equal(b.data, "");
        assert_int_equal(buf_puts(&b, "new"), 0);
        assert_content(&b, "new", 3);

        /* After a reset the whole maximum is available again. */
        buf_reset(&b);
        char full[100];
        memset(full, 'z', sizeof full);
        assert_int_equal(buf_append(&b, full, 100), 0);
        assert_int_equal(buf_putc(&b, 'z'), -ENOBUFS);
        buf_free(&b);
}

/* After buf_grow(n), appends of up to n bytes do not move the bytes. */
static void test_grow(void **state)
{
        struct buf b;
        buf_init(&b, 10000);
        assert_int_equal(buf_grow(&b, 5000), 0);
        assert_non_null(b.data);
        assert_int_equal(b.len, 0);
        assert_true(b.cap >= 5001);
        /* Empty, and still a string (the ASan build fills new memory, so
         * a missing NUL shows there). */
        assert_string_equal(b.data, "");
        char *data = b.data;
        for (int i = 0; i < 500; i++)
                assert_int_equal(buf_puts(&b, "0123456789"), 0);
        assert_ptr_equal(b.data, data);
        assert_int_equal(b.len, 5000);
        assert_int_equal(b.data[5000], '\0');

        /* Past the maximum: -ENOBUFS, and the content stays. */
        assert_int_equal(buf_grow(&b, 5001), -ENOBUFS);
        assert_int_equal(b.len, 5000);
        assert_memory_equal(b.data + 4990, "0123456789", 11);
        assert_int_equal(buf_grow(&b, 5000), 0);
        assert_true(b.cap <= b.max + 1);
        buf_free(&b);
}

static void test_steal(void **state)
{
        struct buf b;
        buf_init(&b, 100);
        assert_int_equal(buf_puts(&b, "taken"), 0);
        char *s = buf_steal(&b);
        assert_non_null(s);
        assert_string_equal(s, "taken");
        assert_null(b.data);
        assert_int_equal(b.len, 0);
        assert_int_equal(b.cap, 0);
        free(s);

        /* The buffer works again after a steal, with the same maximum. */
        assert_int_equal(buf_puts(&b, "again"), 0);
        assert_content(&b, "again", 5);
        assert_int_equal(b.max, 100);
        buf_free(&b);

        /* A reset buffer yields "". */
        buf_init(&b, 100);
        assert_int_equal(buf_puts(&b, "xxxxxxxx"), 0);
        buf_reset(&b);
        s = buf_steal(&b);
        assert_non_null(s);
        assert_string_equal(s, "");
        free(s);
}

/* A buffer that never held anything yields an allocated "" too. Several
 * maxima, so that the allocations come in different sizes (and are fresh,
 * filled by M_PERTURB in main(), or by AddressSanitizer's malloc). */
static void test_steal_empty(void **state)
{
        static const size_t maxima[] = { 0, 1, 77, 100, 1000, 3000, 100000 };
        for (size_t i = 0; i < sizeof maxima / sizeof maxima[0]; i++) {
                struct buf b;
                buf_init(&b, maxima[i]);
                char *s = buf_steal(&b);
                assert_non_null(s);
                if (s[0] != '\0')
                        fail_msg("buf_steal() of a fresh buffer (max %zu) returned 0x%02x, not \"\"", maxima[i],
                                 (unsigned char)s[0]);
                assert_null(b.data);
                assert_int_equal(b.len, 0);
                free(s);

                /* And after buf_free(), the same. */
                buf_init(&b, maxima[i]);
                if (maxima[i] >= 3) {
                        assert_int_equal(buf_puts(&b, "abc"), 0);
                }
                buf_free(&b);
                s = buf_steal(&b);
                assert_non_null(s);
                if (s[0] != '\0')
                        fail_msg("buf_steal() after buf_free() (max %zu) returned 0x%02x, not \"\"", maxima[i],
                                 (unsigned char)s[0]);
                free(s);
        }
}

/* --- JSON strings ------------------------------------------------------- */

static char *json_of(const char *s, size_t n)
{
        struct buf b;
        buf_init(&b, 1u << 20);
        assert_int_equal(buf_put_json_strn(&b, s, n), 0);
        char *out = buf_steal(&b);
        assert_non_null(out);
        return out;
}

static void assert_json_escapes_to(const char *s, const char *want)
{
        char *got = json_of(s, strlen(s));
        assert_string_equal(got, want);
        free(got);
}

static void test_json_escapes(void **state)
{
        assert_json_escapes_to("", "\"\"");
        assert_json_escapes_to("plain", "\"plain\"");
        assert_json_escapes_to("a\"b", "\"a\\\"b\"");
        assert_json_escapes_to("\"", "\"\\\"\"");
        assert_json_escapes_to("back\\slash", "\"back\\\\slash\"");
        assert_json_escapes_to("\\\"", "\"\\\\\\\"\"");
        assert_json_escapes_to("\n", "\"\\n\"");
        assert_json_escapes_to("\t", "\"\\t\"");
        assert_json_escapes_to("\b", "\"\\b\"");
        assert_json_escapes_to("\f", "\"\\f\"");
        assert_json_escapes_to("\r", "\"\\r\"");
        assert_json_escapes_to("\x01", "\"\\u0001\"");
        assert_json_escapes_to("\x1f", "\"\\u001f\"");
        assert_json_escapes_to("\x0b", "\"\\u000b\"");
        assert_json_escapes_to("\x10", "\"\\u0010\"");
        assert_json_escapes_to("x\x01y\x1fz", "\"x\\u0001y\\u001fz\"");
        assert_json_escapes_to("line1\nline2\r\n\ttab", "\"line1\\nline2\\r\\n\\ttab\"");
        /* Needs no escape in JSON, so it gets none. */
        assert_json_escapes_to("/", "\"/\"");
        assert_json_escapes_to("\x7f", "\"\x7f\"");
        assert_json_escapes_to(" ~'<>&", "\" ~'<>&\"");
        /* UTF-8 passes through as it is. */
        assert_json_escapes_to("caf\xc3\xa9", "\"caf\xc3\xa9\"");
        assert_json_escapes_to("\xe2\x82\xac \xf0\x9f\x98\x80", "\"\xe2\x82\xac \xf0\x9f\x98\x80\"");
        assert_json_escapes_to("\xe6\x97\xa5\xe6\x9c\xac", "\"\xe6\x97\xa5\xe6\x9c\xac\"");
}

static void test_json_strn_is_bounded_by_n(void **state)
{
        char *got = json_of("abcdef", 3);
        assert_string_equal(got, "\"abc\"");
        free(got);

        /* A NUL inside the n bytes is a control character like the others. */
        got = json_of("a\0b", 3);
        assert_string_equal(got, "\"a\\u0000b\"");
        free(got);

        got = json_of("", 0);
        assert_string_equal(got, "\"\"");
        free(got);

        /* Appends after what is already there. */
        struct buf b;
        buf_init(&b, 100);
        assert_int_equal(buf_puts(&b, "{\"k\":"), 0);
        assert_int_equal(buf_put_json_str(&b, "v\""), 0);
        assert_int_equal(buf_putc(&b, '}'), 0);
        assert_string_equal(b.data, "{\"k\":\"v\\\"\"}");
        buf_free(&b);
}

/* An escaped string goes in whole or not at all: it fits when its escaped
 * form (quotes included) fits exactly, and a refused one leaves the buffer
 * as it was. */
static void test_json_str_fits_exactly_or_not_at_all(void **state)
{
        /* "a\"\u0001" is 2 + 1 + 2 + 6 = 11 bytes. */
        struct buf b;
        buf_init(&b, 13);
        assert_int_equal(buf_puts(&b, "xy"), 0);
        assert_int_equal(buf_put_json_strn(&b, "a\"\001", 3), 0);
        assert_content(&b, "xy\"a\\\"\\u0001\"", 13);
        buf_free(&b);

        buf_init(&b, 12);
        assert_int_equal(buf_puts(&b, "xy"), 0);
        assert_int_equal(buf_put_json_strn(&b, "a\"\001", 3), -ENOBUFS);
        assert_content(&b, "xy", 2);
        assert_int_equal(buf_put_json_strn(&b, "abcdefgh", 8), 0);   /* 10 bytes: still fits */
        assert_content(&b, "xy\"abcdefgh\"", 12);
        buf_free(&b);
}

/* The escape the JSON text must carry for one byte. */
static void reference_escape(struct buf *want, unsigned char c)
{
        switch (c) {
        case '"': buf_puts(want, "\\\""); return;
        case '\\': buf_puts(want, "\\\\"); return;
        case '\n': buf_puts(want, "\\n"); return;
        case '\r': buf_puts(want, "\\r"); return;
        case '\t': buf_puts(want, "\\t"); return;
        case '\b': buf_puts(want, "\\b"); return;
        case '\f': buf_puts(want, "\\f"); return;
        default:
                if (c < 0x20)
                        buf_printf(want, "\\u%04x", c);
                else
                        buf_putc(want, (char)c);
        }
}

/* Parses JSON text that must be one string and returns its bytes. */
static void assert_parses_back(const char *json, const char *s, size_t n)
{
        cJSON *v = cJSON_Parse(json);
        if (!v)
                fail_msg("cJSON could not parse %s", json);
        assert_true(cJSON_IsString(v));
        assert_int_equal(strlen(v->valuestring), n);
        assert_memory_equal(v->valuestring, s, n);
        cJSON_Delete(v);
}

/* Every byte from 1 to 255 in one string. Bytes 0x80..0xff are not valid
 * UTF-8 on their own, and pass through as bytes: compare bytes. */
static void test_json_all_bytes(void **state)
{
        char all[255];
        for (int i = 0; i < 255; i++)
                all[i] = (char)(i + 1);

        struct buf want;
        buf_init(&want, 4096);
        buf_putc(&want, '"');
        for (int i = 0; i < 255; i++)
                reference_escape(&want, (unsigned char)all[i]);
        buf_putc(&want, '"');

        char *got = json_of(all, sizeof all);
        assert_int_equal(strlen(got), want.len);
        assert_memory_equal(got, want.data, want.len);
        /* cJSON does not check UTF-8, so it gives back the same bytes. */
        assert_parses_back(got, all, sizeof all);
        free(got);
        buf_free(&want);

        /* Each byte alone, and between other characters. */
        for (int c = 1; c < 256; c++) {
                char one[4] = { 'a', (char)c, 'z', '\0' };
                struct buf w;
                buf_init(&w, 64);
                buf_puts(&w, "\"a");
                reference_escape(&w, (unsigned char)c);
                buf_puts(&w, "z\"");
                got = json_of(one, 3);
                assert_string_equal(got, w.data);
                if (c < 0x80)
                        assert_parses_back(got, one, 3);
                free(got);
                buf_free(&w);
        }

        /* The ASCII part 1..127 is valid UTF-8: a cJSON round trip. */
        got = json_of(all, 127);
        assert_parses_back(got, all, 127);
        free(got);
}

static size_t put_utf8(char *o, uint32_t cp)
{
        if (cp < 0x80) {
                o[0] = (char)cp;
                return 1;
        }
        if (cp < 0x800) {
                o[0] = (char)(0xc0 | cp >> 6);
                o[1] = (char)(0x80 | (cp & 63));
                return 2;
        }
        if (cp < 0x10000) {
                o[0] = (char)(0xe0 | cp >> 12);
                o[1] = (char)(0x80 | ((cp >> 6) & 63));
                o[2] = (char)(0x80 | (cp & 63));
                return 3;
        }
        o[0] = (char)(0xf0 | cp >> 18);
        o[1] = (char)(0x80 | ((cp >> 12) & 63));
        o[2] = (char)(0x80 | ((cp >> 6) & 63));
        o[3] = (char)(0x80 | (cp & 63));
        return 4;
}

/* Many valid UTF-8 strings, heavy on the characters that need escapes:
 * the output parses back to the very same string. */
static void test_json_round_trip_many(void **state)
{
        static const char *const fixed[] = {
                "",
                " ",
                "\"\"",
                "\\\\",
                "\\\"\\",
                "}\"]",
                "\\u0041",
                "\\n",
                "-Dspark.driver.extraJavaOptions=\"-Dx=1 -Dy='2'\"",
                "C:\\Program Files\\Java",
                "tab\there",
                "nl\nthere\r\n",
                "{\"json\":[\"inside\",1]}",
                "\x01\x02\x03\x1e\x1f\x20",
                "\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf",
                "emoji \xf0\x9f\x9a\x80 in \"quotes\"",
        };
        for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
                char *got = json_of(fixed[i], strlen(fixed[i]));
                assert_parses_back(got, fixed[i], strlen(fixed[i]));
                free(got);
        }

        static const uint32_t specials[] = { '"', '\\', '\n', '\r', '\t', '\b', '\f', 1, 0x1f, '/', 0x7f };
        rng_state = 20240601u;
        char s[1024];
        for (int round = 0; round < 2000; round++) {
                size_t n = 0, count = rng() % 60;
                for (size_t k = 0; k < count; k++) {
                        uint32_t cp, pick = rng() % 8;
                        if (pick < 3)
                                cp = specials[rng() % (sizeof specials / sizeof specials[0])];
                        else if (pick < 5)
                                cp = 1 + rng() % 0x7f;
                        else if (pick < 6)
                                cp = 0x80 + rng() % (0x800 - 0x80);
                        else if (pick < 7)
                                do
                                        cp = 0x800 + rng() % (0x10000 - 0x800);
                                while (cp >= 0xd800 && cp <= 0xdfff);
                        else
                                cp = 0x10000 + rng() % (0x110000 - 0x10000);
                        n += put_utf8(s + n, cp);
                }
                s[n] = '\0';
                char *got = json_of(s, n);
                assert_parses_back(got, s, n);
                free(got);
        }
}

/* --- RFC 6901 reference tokens ------------------------------------------ */

static void assert_token(const char *token, const char *want)
{
        struct buf b;
        buf_init(&b, 1000);
        assert_int_equal(buf_put_pointer_token(&b, token), 0);
        assert_string_equal(b.data, want);
        buf_free(&b);
}

/* RFC 6901 section 4: ~1 to / first, then ~0 to ~. */
static char *unescape_token(const char *t)
{
        size_t n = strlen(t);
        char *o = malloc(n + 1), *p = o;
        assert_non_null(o);
        for (size_t i = 0; i < n; i++) {
                if (t[i] == '~') {
                        assert_true(i + 1 < n);
                        assert_true(t[i + 1] == '0' || t[i + 1] == '1');
                        *p++ = t[i + 1] == '0' ? '~' : '/';
                        i++;
                } else {
                        assert_true(t[i] != '/');
                        *p++ = t[i];
                }
        }
        *p = '\0';
        return o;
}

static void test_pointer_tokens(void **state)
{
        assert_token("metadata", "/metadata");
        assert_token("", "/");
        assert_token("~", "/~0");
        assert_token("/", "/~1");
        assert_token("a~b/c", "/a~0b~1c");
        assert_token("~1", "/~01");
        assert_token("~0", "/~00");
        assert_token("~~//", "/~0~0~1~1");
        assert_token("/~", "/~1~0");
        assert_token("azure.workload.identity/use", "/azure.workload.identity~1use");
        /* Nothing else is touched: JSON escaping comes later, in the patch. */
        assert_token("a\"b\\c d", "/a\"b\\c d");
        assert_token("caf\xc3\xa9", "/caf\xc3\xa9");

        struct buf b;
        buf_init(&b, 1000);
        assert_int_equal(buf_put_pointer_token(&b, "metadata"), 0);
        assert_int_equal(buf_put_pointer_token(&b, "annotations"), 0);
        assert_int_equal(buf_put_pointer_token(&b, "a/b~c"), 0);
        assert_string_equal(b.data, "/metadata/annotations/a~1b~0c");
        buf_free(&b);
}

static void test_pointer_token_round_trip(void **state)
{
        static const char *const tokens[] = {
                "",    "~",    "/",      "~0",   "~1",    "~01",
                "~10", "//~~", "a/~1/b", "~/~/", "plain", "spark.kubernetes.driver/pod~name",
        };
        for (size_t i = 0; i < sizeof tokens / sizeof tokens[0]; i++) {
                struct buf b;
                buf_init(&b, 1000);
                assert_int_equal(buf_put_pointer_token(&b, tokens[i]), 0);
                assert_int_equal(b.data[0], '/');
                char *back = unescape_token(b.data + 1);
                assert_string_equal(back, tokens[i]);
                free(back);
                buf_free(&b);
        }
}

static void test_pointer_token_bound(void **state)
{
        struct buf b;
        buf_init(&b, 4);
        assert_int_equal(buf_put_pointer_token(&b, "ab~"), -ENOBUFS);   /* needs 5 */
        buf_reset(&b);
        assert_int_equal(buf_put_pointer_token(&b, "a~"), 0);           /* needs 4 */
        assert_string_equal(b.data, "/a~0");
        buf_free(&b);
}

/* --- base64 ------------------------------------------------------------- */

static void assert_base64(const char *in, const char *want)
{
        struct buf b;
        buf_init(&b, 1000);
        assert_int_equal(buf_put_base64(&b, in, strlen(in)), 0);
        assert_content(&b, want, strlen(want));
        buf_free(&b);
}

static void test_base64_rfc4648(void **state)
{
        assert_base64("", "");
        assert_base64("f", "Zg==");
        assert_base64("fo", "Zm8=");
        assert_base64("foo", "Zm9v");
        assert_base64("foob", "Zm9vYg==");
        assert_base64("fooba", "Zm9vYmE=");
        assert_base64("foobar", "Zm9vYmFy");
        /* The two last characters of the alphabet. */
        assert_base64("\xfb\xff\xbf", "+/+/");
        assert_base64("\xff\xff\xff", "////");

        struct buf b;
        buf_init(&b, 1000);
        assert_int_equal(buf_puts(&b, "patch:"), 0);
        assert_int_equal(buf_put_base64(&b, "foob", 4), 0);
        assert_int_equal(buf_putc(&b, '.'), 0);
        assert_string_equal(b.data, "patch:Zm9vYg==.");
        buf_free(&b);
}


static void test_base64_binary_round_trip(void **state)
{
        unsigned char in[1024], back[1024], ossl[1100];
        rng_state = 99u;

        for (size_t n = 0; n <= 300; n++) {
                for (size_t i = 0; i < n; i++)
                        in[i] = (unsigned char)(n == 256 ? i : rng());
                struct buf b;
                buf_init(&b, 2000);
                assert_int_equal(buf_put_base64(&b, in, n), 0);
                assert_int_equal(b.len, (n + 2) / 3 * 4);
                assert_int_equal(b.data[b.len], '\0');

                size_t got = test_b64_decode(b.data, b.len, back);
                assert_int_equal(got, n);
                assert_memory_equal(back, in, n);

                /* And OpenSSL agrees. It returns whole triples, padding included. */
                int m = EVP_DecodeBlock(ossl, (const unsigned char *)b.data, (int)b.len);
                assert_true(m >= 0);
                size_t pad = b.len && b.data[b.len - 1] == '=' ? (b.data[b.len - 2] == '=' ? 2 : 1) : 0;
                assert_int_equal((size_t)m - pad, n);
                assert_memory_equal(ossl, in, n);
                buf_free(&b);
        }
}

/* The output is reserved in one piece: exactly fitting works, a byte short fails clean. */
static void test_base64_bound(void **state)
{
        struct buf b;
        buf_init(&b, 6);
        assert_int_equal(buf_puts(&b, "ab"), 0);
        assert_int_equal(buf_put_base64(&b, "fooba", 5), -ENOBUFS);    /* needs 8 */
        assert_content(&b, "ab", 2);
        assert_int_equal(buf_put_base64(&b, "foo", 3), 0);             /* needs 4 */
        assert_content(&b, "abZm9v", 6);
        buf_free(&b);
}

int main(void)
{
        /* Fresh heap memory is filled with a non-zero byte, so that a read of
         * bytes nobody wrote shows up (AddressSanitizer fills it anyway). */
        mallopt(M_PERTURB, 0x5a);

        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_init_allocates_nothing),
                cmocka_unit_test(test_free_is_safe_on_anything_freed),
                cmocka_unit_test(test_append),
                cmocka_unit_test(test_append_grows_past_the_first_allocation),
                cmocka_unit_test(test_puts_putc),
                cmocka_unit_test(test_printf_short),
                cmocka_unit_test(test_printf_long),
                cmocka_unit_test(test_max_is_exact),
                cmocka_unit_test(test_max_printf_long_path),
                cmocka_unit_test(test_max_zero),
                cmocka_unit_test(test_max_size_max),
                cmocka_unit_test(test_reset),
                cmocka_unit_test(test_grow),
                cmocka_unit_test(test_steal),
                cmocka_unit_test(test_steal_empty),
                cmocka_unit_test(test_json_escapes),
                cmocka_unit_test(test_json_strn_is_bounded_by_n),
                cmocka_unit_test(test_json_str_fits_exactly_or_not_at_all),
                cmocka_unit_test(test_json_all_bytes),
                cmocka_unit_test(test_json_round_trip_many),
                cmocka_unit_test(test_pointer_tokens),
                cmocka_unit_test(test_pointer_token_round_trip),
                cmocka_unit_test(test_pointer_token_bound),
                cmocka_unit_test(test_base64_rfc4648),
                cmocka_unit_test(test_base64_binary_round_trip),
                cmocka_unit_test(test_base64_bound),
        };
        return cmocka_run_group_tests_name("buf", tests, NULL, NULL);
}
