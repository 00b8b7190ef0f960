/* The memory budget of requests in flight: see include/io/budget.h. */
#include "budget.h"

#include <assert.h>

#include "webhook_limits.h"

void budget_init(struct budget *b, size_t limit)
{
        b->limit = limit;
        b->large_limit = limit - limit / WH_BUDGET_RESERVE_PART;
        assert(b->large_limit <= b->limit);
        atomic_init(&b->used, 0);
        atomic_init(&b->refused, 0);
}

bool budget_take(struct budget *b, size_t n, bool large)
{
        size_t cap = large ? b->large_limit : b->limit;
        size_t used = atomic_load_explicit(&b->used, memory_order_relaxed);
        do {
                if (n > cap || used > cap - n) {
                        atomic_fetch_add_explicit(&b->refused, 1, memory_order_relaxed);
                        return false;
                }
        } while (!atomic_compare_exchange_weak_explicit(&b->used, &used, used + n, memory_order_relaxed,
                                                        memory_order_relaxed));
        return true;
}

void budget_give(struct budget *b, size_t n)
{
        size_t was = atomic_fetch_sub_explicit(&b->used, n, memory_order_relaxed);
        assert(was >= n);       /* given back only what was taken */
        (void)was;
}

size_t budget_used(const struct budget *b)
{
        return atomic_load_explicit(&((struct budget *)b)->used, memory_order_relaxed);
}
