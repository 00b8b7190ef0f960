/* A grow-only memory pool: many small allocations, one release. The policy
 * keeps all its strings and tables in one; a request that builds a rule
 * from namespace annotations uses a short-lived one.
 *
 * Ownership: the pool owns everything it hands out; pool_free() releases it
 * all. Not thread safe: one owner at a time. */
#pragma once
#include <stddef.h>

struct pool_chunk;

struct pool {
        struct pool_chunk *head;
};

#define POOL_INIT { NULL }

/* `n` bytes aligned for any type, or NULL when out of memory. */
void *pool_alloc(struct pool *p, size_t n);

/* A copy of `s` (NULL gives NULL without failing), or NULL when out of memory. */
char *pool_strdup(struct pool *p, const char *s);

/* Releases everything; the pool is empty and usable again. */
void pool_free(struct pool *p);
