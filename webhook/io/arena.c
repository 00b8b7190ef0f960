/* Per-thread bump allocator for cJSON: see include/io/arena.h. */
#include "arena.h"

#include <assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "budget.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* The first chunk of a thread. A request that needs more chains larger
 * chunks; arena_end() keeps the largest one up to ARENA_KEEP_MAX for the
 * next request and returns the rest to the system. */
#define ARENA_FIRST_CHUNK (64u * 1024u)
#define ARENA_KEEP_MAX (1u * 1024u * 1024u)
#define ARENA_ALIGN 16u

struct chunk {
        struct chunk *next;
        size_t used, cap;
        _Alignas(ARENA_ALIGN) unsigned char data[];
};

struct arena {
        struct chunk *head;     /* the chunk being filled; its `next` are older ones */
        struct chunk *first;    /* kept across brackets */
        size_t total;
        bool on;
        struct budget *budget;  /* the shared budget, or NULL */
        size_t limit;           /* bytes of new chunks allowed in this bracket; SIZE_MAX: no bound */
        size_t taken;           /* bytes of new chunks in this bracket (given back by arena_end) */
        enum arena_limit limited;
};

static _Thread_local struct arena tl;
static pthread_key_t first_key;         /* frees a thread's first chunk when it exits */
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void free_first(void *p)
{
        free(p);
}

static void make_key(void)
{
        pthread_key_create(&first_key, free_first);
}

static struct chunk *chunk_new(size_t cap)
{
        struct chunk *c = malloc(sizeof *c + cap);
        if (!c)
                return NULL;
        c->next = NULL;
        c->used = 0;
        c->cap = cap;
        POISON(c->data, cap);
        return c;
}

static bool owned(const void *p)
{
        for (const struct chunk *c = tl.head; c; c = c->next)
                if ((const unsigned char *)p >= c->data && (const unsigned char *)p < c->data + c->cap)
                        return true;
        return false;
}

static void *arena_malloc(size_t n)
{
        if (!tl.on)
                return malloc(n);
        size_t need = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
        struct chunk *c = tl.head;
        if (!c || c->cap - c->used < need) {
                size_t cap = c ? c->cap * 2 : ARENA_FIRST_CHUNK;
                if (cap < need)
                        cap = need;
                /* Within the bracket's bound: a smaller chunk if that fits, else fail. */
                if (cap > tl.limit - tl.taken)
                        cap = need <= tl.limit - tl.taken ? tl.limit - tl.taken : 0;
                if (!cap) {
                        tl.limited = ARENA_LIMIT_REQUEST;
                        return NULL;
                }
                if (tl.budget && !budget_take(tl.budget, cap, true)) {
                        tl.limited = ARENA_LIMIT_BUDGET;
                        return NULL;
                }
                struct chunk *fresh = chunk_new(cap);
                if (!fresh) {
                        if (tl.budget)
                                budget_give(tl.budget, cap);
                        tl.limited = ARENA_LIMIT_MEMORY;
                        return NULL;
                }
                tl.taken += cap;
                assert(tl.taken <= tl.limit);
                fresh->next = c;
                tl.head = c = fresh;
        }
        assert(c->cap - c->used >= need);
        void *p = c->data + c->used;
        c->used += need;
        tl.total += need;
        UNPOISON(p, n);
        return p;
}

static void arena_free(void *p)
{
        if (!p)
                return;
        if (tl.on && owned(p))
                return;   /* taken back all at once by arena_end() */
        free(p);
}

void arena_install(void)
{
        cJSON_Hooks hooks = { .malloc_fn = arena_malloc, .free_fn = arena_free };
        cJSON_InitHooks(&hooks);
}

void arena_begin(void)
{
        assert(!tl.on);         /* not nested: arena_end() first */
        if (!tl.first) {
                pthread_once(&key_once, make_key);
                tl.first = chunk_new(ARENA_FIRST_CHUNK);
                if (tl.first)
                        pthread_setspecific(first_key, tl.first);
        }
        tl.head = tl.first;
        tl.total = 0;
        tl.on = tl.first != NULL;   /* without memory, cJSON simply uses malloc */
        tl.budget = NULL;
        tl.limit = SIZE_MAX;
        tl.taken = 0;
        tl.limited = ARENA_LIMIT_NONE;
}

void arena_begin_bounded(struct budget *b, size_t limit)
{
        arena_begin();
        tl.budget = b;
        tl.limit = limit;
}

enum arena_limit arena_limited(void)
{
        return tl.limited;
}

void arena_end(void)
{
        assert(tl.taken <= tl.limit);
        /* The newest chunk is the largest: keep it if it is not too large. */
        struct chunk *keep = tl.head && tl.head->cap <= ARENA_KEEP_MAX ? tl.head : tl.first;
        struct chunk *c = tl.head;
        while (c) {
                struct chunk *next = c->next;
                if (c != keep)
                        free(c);
                c = next;
        }
        if (keep) {
                POISON(keep->data, keep->cap);
                keep->used = 0;
                keep->next = NULL;
                if (keep != tl.first)
                        pthread_setspecific(first_key, keep);
        }
        tl.first = tl.head = keep;
        tl.total = 0;
        tl.on = false;
        if (tl.budget)
                budget_give(tl.budget, tl.taken);
        tl.budget = NULL;
        tl.taken = 0;
}

size_t arena_used(void)
{
        return tl.total;
}

bool arena_owns(const void *p)
{
        return p && tl.on && owned(p);
}
