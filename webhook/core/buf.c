/* Bounded growable buffer: see include/core/buf.h. */
#include "buf.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BUF_MIN_ALLOC 256u

void buf_init(struct buf *b, size_t max)
{
        *b = (struct buf){ .max = max };
}

void buf_free(struct buf *b)
{
        if (!b)
                return;
        free(b->data);
        b->data = NULL;
        b->len = b->cap = 0;
}

void buf_reset(struct buf *b)
{
        b->len = 0;
        if (b->data)
                b->data[0] = '\0';
}

size_t buf_cap_after(const struct buf *b, size_t n)
{
        if (n > b->max - b->len || n >= SIZE_MAX - b->len)
                return 0;
        size_t need = b->len + n + 1;
        if (need <= b->cap)
                return b->cap;
        size_t cap = b->cap ? b->cap : BUF_MIN_ALLOC;
        while (cap < need)
                cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        if (b->max < SIZE_MAX && cap > b->max + 1)
                cap = b->max + 1;
        return cap;
}

/* Makes room for `n` more bytes plus the NUL. */
static int buf_reserve(struct buf *b, size_t n)
{
        size_t cap = buf_cap_after(b, n);
        if (!cap)
                return -ENOBUFS;
        if (cap == b->cap)
                return 0;
        assert(cap > b->len + n);       /* room for the NUL too */
        char *p = realloc(b->data, cap);
        if (!p)
                return -ENOMEM;
        b->data = p;
        b->cap = cap;
        return 0;
}

int buf_grow(struct buf *b, size_t n)
{
        int r = buf_reserve(b, n);
        if (r == 0)
                b->data[b->len] = '\0';   /* a first allocation holds "" too */
        return r;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
        int r = buf_reserve(b, n);
        if (r < 0)
                return r;
        assert(b->data && b->cap - b->len > n);
        if (n)
                memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
        return 0;
}

int buf_puts(struct buf *b, const char *s)
{
        return buf_append(b, s, strlen(s));
}

int buf_putc(struct buf *b, char c)
{
        return buf_append(b, &c, 1);
}

int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
        va_list again;
        va_copy(again, ap);
        char small[256];
        int n = vsnprintf(small, sizeof small, fmt, ap);
        int r = 0;
        if (n < 0)
                r = -EINVAL;
        else if ((size_t)n < sizeof small)
                r = buf_append(b, small, (size_t)n);
        else if ((r = buf_reserve(b, (size_t)n)) == 0) {
                int m = vsnprintf(b->data + b->len, (size_t)n + 1, fmt, again);
                assert(m == n);         /* the same format and arguments */
                (void)m;
                b->len += (size_t)n;
        }
        va_end(again);
        return r;
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int r = buf_vprintf(b, fmt, ap);
        va_end(ap);
        return r;
}

/* The bytes a JSON string needs for each byte beyond itself: 1 for the
 * escapes with a letter, 5 for the other control bytes (\u00XX), 0 for the
 * rest (UTF-8 and everything else goes as it is). */
static const unsigned char json_extra[256] = {
        /* 0x00 - 0x1f: \b \t \n \f \r have a letter, the others \u00XX */
        5, 5, 5, 5, 5, 5, 5, 5, 1, 1, 1, 5, 1, 1, 5, 5,         5,
        5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, ['"'] = 1, ['\\'] = 1,
};
/* Two passes: the exact length first, so that the string is written in one
 * reservation (or refused whole when it does not fit), then the bytes,
 * straight into the buffer. A string without escapes is one memcpy. */
int buf_put_json_strn(struct buf *b, const char *s, size_t n)
{
        static const char hex[] = "0123456789abcdef";
        size_t extra = 0;
        for (size_t i = 0; i < n; i++)
                extra += json_extra[(unsigned char)s[i]];
        if (n > SIZE_MAX / 2 - extra)
                return -ENOBUFS;
        size_t total = n + extra + 2;
        int r = buf_reserve(b, total);
        if (r < 0)
                return r;
        char *o = b->data + b->len;
        *o++ = '"';
        if (!extra) {
                if (n)
                        memcpy(o, s, n);
                o += n;
        } else {
                for (size_t i = 0; i < n; i++) {
                        unsigned char c = (unsigned char)s[i];
                        if (!json_extra[c]) {
                                *o++ = (char)c;
                                continue;
                        }
                        *o++ = '\\';
                        switch (c) {
                        case '"': *o++ = '"'; break;
                        case '\\': *o++ = '\\'; break;
                        case '\n': *o++ = 'n'; break;
                        case '\r': *o++ = 'r'; break;
                        case '\t': *o++ = 't'; break;
                        case '\b': *o++ = 'b'; break;
                        case '\f': *o++ = 'f'; break;
                        default:
                                memcpy(o, "u00", 3);
                                o[3] = hex[c >> 4];
                                o[4] = hex[c & 15];
                                o += 5;
                        }
                }
        }
        *o++ = '"';
        assert((size_t)(o - (b->data + b->len)) == total);
        b->len += total;
        b->data[b->len] = '\0';
        return 0;
}

int buf_put_json_str(struct buf *b, const char *s)
{
        return buf_put_json_strn(b, s, strlen(s));
}

int buf_put_pointer_token(struct buf *b, const char *s)
{
        int r = buf_putc(b, '/');
        for (; r == 0 && *s; s++) {
                if (*s == '~')
                        r = buf_append(b, "~0", 2);
                else if (*s == '/')
                        r = buf_append(b, "~1", 2);
                else
                        r = buf_putc(b, *s);
        }
        return r;
}

int buf_put_base64(struct buf *b, const void *p, size_t n)
{
        static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const unsigned char *in = p;
        size_t out_len = (n + 2) / 3 * 4;
        int r = buf_reserve(b, out_len);
        if (r < 0)
                return r;
        char *o = b->data + b->len;
        size_t i = 0;
        for (; i + 3 <= n; i += 3) {
                unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
                *o++ = tab[v >> 18];
                *o++ = tab[(v >> 12) & 63];
                *o++ = tab[(v >> 6) & 63];
                *o++ = tab[v & 63];
        }
        if (i < n) {
                unsigned v = (unsigned)in[i] << 16;
                if (i + 1 < n)
                        v |= (unsigned)in[i + 1] << 8;
                *o++ = tab[v >> 18];
                *o++ = tab[(v >> 12) & 63];
                *o++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
                *o++ = '=';
        }
        assert((size_t)(o - (b->data + b->len)) == out_len);
        b->len += out_len;
        b->data[b->len] = '\0';
        return 0;
}

char *buf_steal(struct buf *b)
{
        if (!b->data) {
                if (buf_reserve(b, 0) < 0)
                        return NULL;
                b->data[0] = '\0';
        }
        char *p = b->data;
        b->data = NULL;
        b->len = b->cap = 0;
        return p;
}
