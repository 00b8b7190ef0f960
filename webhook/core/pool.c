/* Grow-only memory pool: see include/core/pool.h. */
#include "pool.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* One chunk; a larger request gets a chunk of its own. */
#define POOL_CHUNK_BYTES 16384u

struct pool_chunk {
        struct pool_chunk *next;
        size_t used, cap;
        max_align_t data[];
};

void *pool_alloc(struct pool *p, size_t n)
{
        if (n > SIZE_MAX / 2)
                return NULL;
        n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
        struct pool_chunk *c = p->head;
        if (!c || c->cap - c->used < n) {
                size_t cap = n > POOL_CHUNK_BYTES ? n : POOL_CHUNK_BYTES;
                c = malloc(sizeof *c + cap);
                if (!c)
                        return NULL;
                c->cap = cap;
                c->used = 0;
                c->next = p->head;
                p->head = c;
        }
        assert(c->cap - c->used >= n);
        void *r = (char *)c->data + c->used;
        c->used += n;
        return r;
}

char *pool_strdup(struct pool *p, const char *s)
{
        if (!s)
                return NULL;
        size_t n = strlen(s) + 1;
        char *r = pool_alloc(p, n);
        if (r)
                memcpy(r, s, n);
        return r;
}

void pool_free(struct pool *p)
{
        for (struct pool_chunk *c = p->head, *next; c; c = next) {
                next = c->next;
                free(c);
        }
        p->head = NULL;
}
