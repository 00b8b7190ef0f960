/* Comparing strings: see include/core/strs.h. */
#include "strs.h"

#include <stdlib.h>
#include <string.h>

int str_cmp0(const char *a, const char *b)
{
        return strcmp(a ? a : "", b ? b : "");
}

int str_cmp_ptr(const void *a, const void *b)
{
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

bool str_sorted_has(const char *const *v, size_t n, const char *s)
{
        return n && s && bsearch(&s, v, n, sizeof *v, str_cmp_ptr);
}
