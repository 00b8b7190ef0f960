/* A strict standard base64 decoder for the tests, independent of the one
 * under test: whole quads, '=' only at the end. Include after cmocka.h. */
#pragma once
#include <stddef.h>

static inline int b64_value(char c)
{
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

/* A strict decoder: whole quads, '=' only at the end. Returns the length. */
static inline size_t test_b64_decode(const char *s, size_t n, unsigned char *out)
{
        assert_int_equal(n % 4, 0);
        size_t o = 0;
        for (size_t i = 0; i < n; i += 4) {
                int v[4], pad = 0;
                for (int k = 0; k < 4; k++) {
                        if (s[i + k] == '=') {
                                assert_true(i + 4 == n && k >= 2);
                                pad++;
                                v[k] = 0;
                        } else {
                                assert_int_equal(pad, 0);
                                v[k] = b64_value(s[i + k]);
                                assert_true(v[k] >= 0);
                        }
                }
                unsigned w = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 | (unsigned)v[3];
                out[o++] = (unsigned char)(w >> 16);
                if (pad < 2)
                        out[o++] = (unsigned char)(w >> 8);
                if (pad < 1)
                        out[o++] = (unsigned char)w;
        }
        return o;
}
