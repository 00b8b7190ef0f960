/* Unit tests for webhook/io/snapshot.c: the lock-free read snapshot and its
 * grace period. Run them under the address sanitizer too (build-asan/): a
 * reader that touches a freed object is then a heap-use-after-free report. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "snapshot.h"

#define MAGIC_LIVE 0x5eed5eedu
#define MAGIC_DEAD 0xdeadu

struct obj {
        _Atomic unsigned magic;
        unsigned id;
};

/* What obj_free() saw. Reset by each test. */
static atomic_uint frees;
static atomic_uint double_frees;
static atomic_uint last_freed_id;
static atomic_uchar *freed_ids;         /* one flag per id, when a test tracks them */
static unsigned n_freed_ids;

static struct obj *obj_new(unsigned id)
{
        struct obj *o = malloc(sizeof *o);
        assert_non_null(o);
        atomic_init(&o->magic, MAGIC_LIVE);
        o->id = id;
        return o;
}

/* Poisons the object before it goes, so that a reader still holding it sees
 * a dead magic (or, under ASan, touches freed memory). */
static void obj_free(void *p)
{
        struct obj *o = p;
        if (atomic_exchange(&o->magic, MAGIC_DEAD) != MAGIC_LIVE)
                atomic_fetch_add(&double_frees, 1);
        atomic_store(&last_freed_id, o->id);
        if (freed_ids && o->id < n_freed_ids && atomic_exchange(&freed_ids[o->id], 1))
                atomic_fetch_add(&double_frees, 1);
        atomic_fetch_add(&frees, 1);
        free(o);
}

static int reset_counters(void **state)
{
        atomic_store(&frees, 0);
        atomic_store(&double_frees, 0);
        atomic_store(&last_freed_id, ~0u);
        freed_ids = NULL;
        n_freed_ids = 0;
        return 0;
}

static void test_acquire_returns_initial(void **state)
{
        struct obj *a = obj_new(1);
        struct snapshot *s = snapshot_new(a, obj_free);
        assert_non_null(s);

        unsigned tok = 99;
        struct obj *got = snapshot_acquire(s, &tok);
        assert_ptr_equal(got, a);
        assert_true(tok == 0 || tok == 1);
        assert_int_equal(atomic_load(&got->magic), MAGIC_LIVE);
        /* Readers nest and overlap. */
        unsigned tok2;
        assert_ptr_equal(snapshot_acquire(s, &tok2), a);
        snapshot_release(s, tok2);
        snapshot_release(s, tok);
        assert_int_equal(atomic_load(&frees), 0);

        snapshot_free(s);
        assert_int_equal(atomic_load(&frees), 1);
        assert_int_equal(atomic_load(&last_freed_id), 1);
        assert_int_equal(atomic_load(&double_frees), 0);
}

static void test_swap_frees_old_once(void **state)
{
        struct snapshot *s = snapshot_new(obj_new(1), obj_free);
        assert_non_null(s);
        unsigned tok;

        snapshot_swap(s, obj_new(2));
        assert_int_equal(atomic_load(&frees), 1);
        assert_int_equal(atomic_load(&last_freed_id), 1);
        struct obj *got = snapshot_acquire(s, &tok);
        assert_non_null(got);
        assert_int_equal(got->id, 2);
        assert_int_equal(atomic_load(&got->magic), MAGIC_LIVE);
        snapshot_release(s, tok);

        for (unsigned id = 3; id <= 10; id++) {
                snapshot_swap(s, obj_new(id));
                assert_int_equal(atomic_load(&frees), id - 1);
                assert_int_equal(atomic_load(&last_freed_id), id - 1);
                got = snapshot_acquire(s, &tok);
                assert_int_equal(got->id, id);
                snapshot_release(s, tok);
        }
        assert_int_equal(atomic_load(&double_frees), 0);

        snapshot_free(s);
        assert_int_equal(atomic_load(&frees), 10);
        assert_int_equal(atomic_load(&last_freed_id), 10);
        assert_int_equal(atomic_load(&double_frees), 0);
}

static void test_swap_to_null(void **state)
{
        struct snapshot *s = snapshot_new(obj_new(1), obj_free);
        assert_non_null(s);
        unsigned tok;

        snapshot_swap(s, NULL);
        assert_int_equal(atomic_load(&frees), 1);
        assert_null(snapshot_acquire(s, &tok));
        snapshot_release(s, tok);

        snapshot_swap(s, NULL);         /* nothing to free */
        assert_int_equal(atomic_load(&frees), 1);

        snapshot_swap(s, obj_new(2));
        assert_int_equal(atomic_load(&frees), 1);
        struct obj *got = snapshot_acquire(s, &tok);
        assert_non_null(got);
        assert_int_equal(got->id, 2);
        snapshot_release(s, tok);

        snapshot_swap(s, NULL);
        assert_int_equal(atomic_load(&frees), 2);
        snapshot_free(s);               /* NULL current: nothing more */
        assert_int_equal(atomic_load(&frees), 2);
        assert_int_equal(atomic_load(&double_frees), 0);
}

static void test_initial_null(void **state)
{
        struct snapshot *s = snapshot_new(NULL, obj_free);
        assert_non_null(s);
        unsigned tok;
        assert_null(snapshot_acquire(s, &tok));
        snapshot_release(s, tok);
        snapshot_free(s);
        assert_int_equal(atomic_load(&frees), 0);
}

static void test_free_null(void **state)
{
        snapshot_free(NULL);
}

/* Without a free function the objects stay the caller's. */
static void test_no_free_fn(void **state)
{
        struct obj a = { .magic = MAGIC_LIVE, .id = 1 }, b = { .magic = MAGIC_LIVE, .id = 2 };
        struct snapshot *s = snapshot_new(&a, NULL);
        assert_non_null(s);
        snapshot_swap(s, &b);
        unsigned tok;
        assert_ptr_equal(snapshot_acquire(s, &tok), &b);
        snapshot_release(s, tok);
        snapshot_free(s);
        assert_int_equal(atomic_load(&a.magic), MAGIC_LIVE);
        assert_int_equal(atomic_load(&b.magic), MAGIC_LIVE);
}

/* --- the grace period --------------------------------------------------- */

struct holder {
        struct snapshot *s;
        atomic_int stage;       /* 1: holding; 2: told to release; 3: released */
        unsigned seen_id;
        unsigned magic_at_release;
};

static void *hold_then_release(void *arg)
{
        struct holder *h = arg;
        unsigned tok;
        struct obj *o = snapshot_acquire(h->s, &tok);
        h->seen_id = o->id;
        atomic_store(&h->stage, 1);
        while (atomic_load(&h->stage) != 2)
                sched_yield();
        h->magic_at_release = atomic_load(&o->magic);
        snapshot_release(h->s, tok);
        atomic_store(&h->stage, 3);
        return NULL;
}

struct swapper {
        struct snapshot *s;
        void *next;
        atomic_bool done;
};

static void *do_swap(void *arg)
{
        struct swapper *w = arg;
        snapshot_swap(w->s, w->next);
        atomic_store(&w->done, true);
        return NULL;
}

static void sleep_ms(long ms)
{
        nanosleep(&(struct timespec){ .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L }, NULL);
}

/* A swap waits for a reader that holds the old object, and frees it only
 * after the release. */
static void test_swap_waits_for_reader(void **state)
{
        struct snapshot *s = snapshot_new(obj_new(1), obj_free);
        assert_non_null(s);
        struct holder h = { .s = s };
        pthread_t reader, writer;
        assert_int_equal(pthread_create(&reader, NULL, hold_then_release, &h), 0);
        while (atomic_load(&h.stage) != 1)
                sched_yield();
        assert_int_equal(h.seen_id, 1);

        struct swapper w = { .s = s, .next = obj_new(2) };
        assert_int_equal(pthread_create(&writer, NULL, do_swap, &w), 0);

        /* The new object is visible at once, the old one is not freed. */
        unsigned tok;
        struct obj *cur;
        do {
                cur = snapshot_acquire(s, &tok);
                unsigned id = cur->id;
                snapshot_release(s, tok);
                if (id == 2)
                        break;
                sched_yield();
        } while (true);
        sleep_ms(100);
        bool swap_returned_early = atomic_load(&w.done);
        unsigned frees_early = atomic_load(&frees);

        /* Both threads end before any assertion: a failure must not leave
         * them running on this stack frame. */
        atomic_store(&h.stage, 2);
        assert_int_equal(pthread_join(reader, NULL), 0);
        assert_int_equal(pthread_join(writer, NULL), 0);
        assert_false(swap_returned_early);
        assert_int_equal(frees_early, 0);
        assert_int_equal(h.magic_at_release, MAGIC_LIVE);
        assert_true(atomic_load(&w.done));
        assert_int_equal(atomic_load(&frees), 1);
        assert_int_equal(atomic_load(&last_freed_id), 1);

        snapshot_free(s);
        assert_int_equal(atomic_load(&frees), 2);
        assert_int_equal(atomic_load(&double_frees), 0);
}

/* --- readers against a writer ------------------------------------------- */

#define N_READERS 4
#define N_SWAPS 2000u

/* How the readers behave. Each shape exposes a different kind of bug. */
enum shape {
        /* Readers hold the object in turn briefly and long, and the writer
         * swaps as soon as any reader has read again: a writer that frees
         * too early meets a reader still holding. */
        SHAPE_HOLD,
        /* Readers hold briefly and yield between reads, and the writer swaps
         * only after every reader has read again: the writer then often
         * finds no reader counted and goes straight through its grace
         * period, which exposes a reader that takes the pointer before it
         * counts itself. */
        SHAPE_BRIEF,
};

struct reader {
        pthread_t thread;
        struct snapshot *s;
        enum shape shape;
        atomic_bool *stop;
        atomic_ulong acquired;          /* read by the writer as progress */
        unsigned long bad_magic;        /* held an object that was freed */
        unsigned long went_back;        /* saw an older object after a newer one */
        unsigned long null_seen;
};

static void *reader_loop(void *arg)
{
        struct reader *r = arg;
        unsigned last = 0;
        unsigned long n = 0;
        while (!atomic_load_explicit(r->stop, memory_order_relaxed)) {
                unsigned tok;
                struct obj *o = snapshot_acquire(r->s, &tok);
                if (!o) {
                        r->null_seen++;
                        snapshot_release(r->s, tok);
                        continue;
                }
                /* Look at it a while, as a request would. */
                int hold = r->shape == SHAPE_HOLD && (n & 1) ? 4000 : 16;
                for (int k = 0; k < hold; k++)
                        if (atomic_load_explicit(&o->magic, memory_order_relaxed) != MAGIC_LIVE)
                                r->bad_magic++;
                unsigned id = o->id;
                if (atomic_load(&o->magic) != MAGIC_LIVE)
                        r->bad_magic++;
                snapshot_release(r->s, tok);
                if (id < last)
                        r->went_back++;
                last = id;
                n++;
                atomic_store_explicit(&r->acquired, n, memory_order_relaxed);
                /* Let the CPU go outside the hold: a reader preempted while
                 * holding would stall the writer for a whole time slice. */
                if (r->shape == SHAPE_HOLD || (n & 3) == 0)
                        sched_yield();
        }
        return NULL;
}

/* Waits until every reader (with !every, any reader) has read again since
 * `seen`, then notes where they are. */
static void wait_for_readers(struct reader *readers, unsigned long *seen, bool every)
{
        for (;;) {
                int moved = 0;
                for (int i = 0; i < N_READERS; i++)
                        if (atomic_load_explicit(&readers[i].acquired, memory_order_relaxed) != seen[i])
                                moved++;
                if (moved == N_READERS || (!every && moved))
                        break;
                sched_yield();
        }
        for (int i = 0; i < N_READERS; i++)
                seen[i] = atomic_load_explicit(&readers[i].acquired, memory_order_relaxed);
}

/* Four readers loop acquire, read, release while the main thread swaps
 * N_SWAPS times. No reader may ever hold a freed object, every old object is
 * freed exactly once, and a reader never goes back to an older object. */
static void race(enum shape shape)
{
        atomic_uchar flags[N_SWAPS + 1];
        for (unsigned i = 0; i <= N_SWAPS; i++)
                atomic_init(&flags[i], 0);
        freed_ids = flags;
        n_freed_ids = N_SWAPS + 1;

        struct snapshot *s = snapshot_new(obj_new(0), obj_free);
        assert_non_null(s);
        atomic_bool stop;
        atomic_init(&stop, false);
        struct reader readers[N_READERS];
        memset(readers, 0, sizeof readers);
        for (int i = 0; i < N_READERS; i++) {
                readers[i].s = s;
                readers[i].shape = shape;
                readers[i].stop = &stop;
                atomic_init(&readers[i].acquired, 0);
                assert_int_equal(pthread_create(&readers[i].thread, NULL, reader_loop, &readers[i]), 0);
        }

        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        unsigned first_wrong_count = 0, frees_then = 0;
        unsigned long seen[N_READERS] = { 0 };
        wait_for_readers(readers, seen, true);          /* all of them are running */
        for (unsigned id = 1; id <= N_SWAPS; id++) {
                /* Readers read between two swaps, from the first to the last. */
                wait_for_readers(readers, seen, shape == SHAPE_BRIEF);
                snapshot_swap(s, obj_new(id));
                /* The writer's own view: the old object is gone, once. */
                if (!first_wrong_count && atomic_load(&frees) != id) {
                        first_wrong_count = id;
                        frees_then = atomic_load(&frees);
                }
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);

        /* The readers end before any assertion: they use this stack frame. */
        atomic_store(&stop, true);
        for (int i = 0; i < N_READERS; i++)
                assert_int_equal(pthread_join(readers[i].thread, NULL), 0);
        if (first_wrong_count)
                fail_msg("after swap %u: %u frees", first_wrong_count, frees_then);
        unsigned long total = 0;
        for (int i = 0; i < N_READERS; i++) {
                struct reader *r = &readers[i];
                if (r->bad_magic || r->went_back || r->null_seen)
                        fail_msg("reader %d: %lu looks at freed objects, %lu steps back, %lu NULLs in %lu reads", i,
                                 r->bad_magic, r->went_back, r->null_seen, atomic_load(&r->acquired));
                total += atomic_load(&r->acquired);
        }
        assert_int_equal(atomic_load(&frees), N_SWAPS);
        assert_int_equal(atomic_load(&double_frees), 0);
        for (unsigned i = 0; i < N_SWAPS; i++)
                assert_int_equal(atomic_load(&flags[i]), 1);
        assert_int_equal(atomic_load(&flags[N_SWAPS]), 0);     /* still current */
        print_message("# %u swaps in %.3f s, %lu reads\n", N_SWAPS,
                      (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, total);

        unsigned tok;
        struct obj *cur = snapshot_acquire(s, &tok);
        assert_int_equal(cur->id, N_SWAPS);
        snapshot_release(s, tok);
        snapshot_free(s);
        assert_int_equal(atomic_load(&frees), N_SWAPS + 1);
        assert_int_equal(atomic_load(&flags[N_SWAPS]), 1);
        assert_int_equal(atomic_load(&double_frees), 0);
        freed_ids = NULL;
}

static void test_readers_holding_against_swaps(void **state)
{
        race(SHAPE_HOLD);
}

static void test_brief_readers_against_swaps(void **state)
{
        race(SHAPE_BRIEF);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup(test_acquire_returns_initial, reset_counters),
                cmocka_unit_test_setup(test_swap_frees_old_once, reset_counters),
                cmocka_unit_test_setup(test_swap_to_null, reset_counters),
                cmocka_unit_test_setup(test_initial_null, reset_counters),
                cmocka_unit_test_setup(test_free_null, reset_counters),
                cmocka_unit_test_setup(test_no_free_fn, reset_counters),
                cmocka_unit_test_setup(test_swap_waits_for_reader, reset_counters),
                cmocka_unit_test_setup(test_readers_holding_against_swaps, reset_counters),
                cmocka_unit_test_setup(test_brief_readers_against_swaps, reset_counters),
        };
        return cmocka_run_group_tests_name("snapshot", tests, NULL, NULL);
}
