/* A memory budget shared by every request in flight: the bytes of request
 * bodies and of parsed reviews together, so that the server's memory is
 * bounded by its configuration (--request-memory), never by what clients
 * send. Large takers (a body past WH_BODY_SMALL_BYTES, any parse beyond a
 * thread's kept arena chunk) may not take the last WH_BUDGET_RESERVE_PART of
 * it: that part stays for the small reviews the API server sends, so that a
 * flood of huge bodies cannot starve them.
 *
 * Thread safe (atomics); no locks, no I/O. The caller owns the struct. */
#pragma once
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct budget {
        size_t limit;              /* bytes in all */
        size_t large_limit;        /* what large takers may hold together */
        atomic_size_t used;
        atomic_ulong refused;      /* takes refused, for metrics */
};

/* Prepares a budget of `limit` bytes. */
void budget_init(struct budget *b, size_t limit);

/* Takes `n` bytes, or refuses (false) when that would pass the limit, or
 * for a large taker the part large takers may hold. */
bool budget_take(struct budget *b, size_t n, bool large);

/* Gives back `n` bytes taken before. */
void budget_give(struct budget *b, size_t n);

size_t budget_used(const struct budget *b);
