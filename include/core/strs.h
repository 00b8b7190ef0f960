/* Comparing strings: the one comparator behind every sorted array of
 * strings (the policy's grant labels, the namespace table) and every order
 * by a string (audit findings). Pure: no I/O, no globals.
 *
 * Ownership: nothing is kept; the strings are the caller's. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

/* strcmp(), with NULL as "" (a finding without a pod name sorts first). */
int str_cmp0(const char *a, const char *b);

/* For qsort() and bsearch(): compares two elements that each begin with a
 * `const char *` (an array of strings, or of structs whose first member is
 * their key), by strcmp(). */
int str_cmp_ptr(const void *a, const void *b);

/* Whether `s` is one of the `n` strings of `v`, sorted by str_cmp_ptr(). */
bool str_sorted_has(const char *const *v, size_t n, const char *s);
