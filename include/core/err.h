/* The one way a function hands an error message back to its caller: into a
 * caller-owned `char *err` of `errlen` bytes, always NUL-terminated, cut at
 * `errlen` (never overrun), and a no-op when `err` is NULL or `errlen` is 0.
 * The caller owns the buffer; nothing here allocates, logs or exits. */
#pragma once
#include <stdarg.h>
#include <stddef.h>

/* Writes the formatted message into err, replacing what was there. */
void err_set(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void err_vset(char *err, size_t errlen, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));

/* Appends the formatted text to the message already in err (err must hold a
 * string, as err_set() leaves it), cut like err_set(). Nothing is appended
 * once err is full, nor when err holds no NUL within its errlen bytes. */
void err_append(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void err_vappend(char *err, size_t errlen, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));
