/* A per-thread bump allocator behind cJSON's allocation hooks, for the
 * admission path: parsing a review makes hundreds of small nodes, and
 * freeing them one by one costs as much as making them. Between
 * arena_begin() and arena_end() on a thread, cJSON's allocations on that
 * thread come from the thread's arena and its frees cost nothing; arena_end()
 * takes everything back at once. Elsewhere (other threads, or outside the
 * bracket) cJSON uses malloc and free as usual.
 *
 * Ownership: every cJSON tree made inside the bracket must be deleted (or
 * simply dropped) before arena_end(); nothing made inside may outlive it.
 * Under AddressSanitizer the returned memory is poisoned, so a use after
 * arena_end() is caught. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

/* Routes cJSON's allocations through the arena hooks. Call once at start,
 * before any thread uses cJSON. */
void arena_install(void);

struct budget;

/* Starts and ends the bracket on the calling thread. Not nested. */
void arena_begin(void);
void arena_end(void);

/* Starts the bracket with bounds: what the arena takes beyond the chunk a
 * thread keeps may be at most `limit` bytes, and is taken from `b` (a large
 * taker, budget.h) and given back by arena_end(). An allocation past either
 * bound fails (cJSON then fails cleanly), and arena_limited() says which.
 * `b` may be NULL (no shared budget). */
void arena_begin_bounded(struct budget *b, size_t limit);

enum arena_limit {
        ARENA_LIMIT_NONE,
        ARENA_LIMIT_REQUEST,    /* the bracket's own `limit` */
        ARENA_LIMIT_BUDGET,     /* the shared budget is in use by others */
        ARENA_LIMIT_MEMORY,     /* malloc failed */
};

/* Whether an allocation failed in this bracket, and why. */
enum arena_limit arena_limited(void);

/* The bytes handed out by this thread's arena since arena_begin(); 0 outside the bracket. */
size_t arena_used(void);

/* Whether `p` is memory this thread's arena handed out in the current
 * bracket: a tree there may be dropped instead of deleted, since
 * arena_end() takes it back whole. False outside the bracket and for NULL. */
bool arena_owns(const void *p);
