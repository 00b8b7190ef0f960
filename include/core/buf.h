/* A growable byte buffer that is created with a maximum and fails cleanly
 * when an append would pass it. The bytes are always NUL-terminated.
 *
 * Ownership: the struct owns `data`; buf_free() releases it, buf_steal()
 * hands it to the caller (who then free()s it). */
#pragma once
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

struct buf {
        char *data;      /* NULL until the first append */
        size_t len;      /* bytes in use, not counting the NUL */
        size_t cap;      /* bytes allocated */
        size_t max;      /* largest len allowed */
};

/* Prepares an empty buffer that may hold up to `max` bytes. Allocates nothing. */
void buf_init(struct buf *b, size_t max);

/* Releases the bytes; safe on a zeroed or already freed buffer. */
void buf_free(struct buf *b);

/* Empties the buffer and keeps its allocation. */
void buf_reset(struct buf *b);

/* Makes room for `n` more bytes so that appends up to them allocate
 * nothing. 0, -ENOBUFS past the maximum, -ENOMEM. */
int buf_grow(struct buf *b, size_t n);

/* The capacity the buffer would have after appending `n` bytes (its
 * capacity now when they fit), or 0 when the maximum would be passed. */
size_t buf_cap_after(const struct buf *b, size_t n);

/* Append bytes. 0, -ENOBUFS when the maximum would be passed (nothing is
 * appended), -ENOMEM. */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_puts(struct buf *b, const char *s);
int buf_putc(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* Appends `s` as a JSON string: quotes, escapes and all. `n` bytes, or up to
 * the NUL with buf_put_json_str(). */
int buf_put_json_strn(struct buf *b, const char *s, size_t n);
int buf_put_json_str(struct buf *b, const char *s);

/* Appends `s` as one RFC 6901 reference token (`~` as `~0`, `/` as `~1`),
 * preceded by `/`. */
int buf_put_pointer_token(struct buf *b, const char *s);

/* Appends the standard base64 encoding of `n` bytes. */
int buf_put_base64(struct buf *b, const void *p, size_t n);

/* Returns the bytes (never NULL: an empty buffer yields an allocated "") and
 * leaves the buffer empty. The caller frees. NULL on allocation failure. */
char *buf_steal(struct buf *b);
