/* Lock-free read snapshot: see include/io/snapshot.h.
 *
 * A reader adds itself to the counter of the current epoch before it loads
 * the pointer and removes itself when done. The writer swaps the pointer,
 * then twice flips the epoch and waits for the counter of the epoch it left
 * to reach zero. A reader that could have loaded the old pointer counted
 * itself before the swap, in one of the two counters, so after both waits
 * nobody holds the old object. */
#include "snapshot.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

/* How long the writer sleeps between looks at a reader counter. */
#define SNAPSHOT_WAIT_NS 50000L

struct snapshot {
        _Atomic(void *) current;
        atomic_uint epoch;
        atomic_ulong readers[2];
        pthread_mutex_t writer;
        void (*free_fn)(void *);
};

struct snapshot *snapshot_new(void *initial, void (*free_fn)(void *))
{
        struct snapshot *s = calloc(1, sizeof *s);
        if (!s)
                return NULL;
        atomic_init(&s->current, initial);
        atomic_init(&s->epoch, 0);
        atomic_init(&s->readers[0], 0);
        atomic_init(&s->readers[1], 0);
        pthread_mutex_init(&s->writer, NULL);
        s->free_fn = free_fn;
        return s;
}

void *snapshot_acquire(struct snapshot *s, unsigned *ret_token)
{
        unsigned e = atomic_load(&s->epoch) & 1u;
        atomic_fetch_add(&s->readers[e], 1);
        *ret_token = e;
        return atomic_load(&s->current);
}

void snapshot_release(struct snapshot *s, unsigned token)
{
        assert(token <= 1u);    /* as snapshot_acquire() gave it */
        unsigned long was = atomic_fetch_sub(&s->readers[token & 1u], 1);
        assert(was > 0);        /* released once per acquire */
        (void)was;
}

void snapshot_swap(struct snapshot *s, void *next)
{
        pthread_mutex_lock(&s->writer);
        void *old = atomic_exchange(&s->current, next);
        assert(!old || old != next);    /* else it would free what it just put in */
        for (int phase = 0; phase < 2; phase++) {
                unsigned e = atomic_load(&s->epoch) & 1u;
                atomic_store(&s->epoch, e ^ 1u);
                while (atomic_load(&s->readers[e]) != 0)
                        nanosleep(&(struct timespec){ .tv_nsec = SNAPSHOT_WAIT_NS }, NULL);
        }
        pthread_mutex_unlock(&s->writer);
        if (old && s->free_fn)
                s->free_fn(old);
}

void snapshot_free(struct snapshot *s)
{
        if (!s)
                return;
        /* No reader may hold it any more. */
        assert(atomic_load(&s->readers[0]) == 0 && atomic_load(&s->readers[1]) == 0);
        void *cur = atomic_load(&s->current);
        if (cur && s->free_fn)
                s->free_fn(cur);
        pthread_mutex_destroy(&s->writer);
        free(s);
}
