/* Connection deadlines and room: see include/io/conntrack.h. */
#include "conntrack.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "webhook_limits.h"

enum phase {
        PHASE_FREE,
        PHASE_HEADERS,     /* handshake and request headers */
        PHASE_BODY,        /* a request in flight */
        PHASE_IDLE,        /* keep-alive, between requests */
        PHASE_CLOSING,     /* shut down by us; the library has not reported it closed yet */
};

struct conn {
        int fd;
        enum phase phase;
        uint64_t since_ns;       /* when the phase began */
        uint64_t deadline_ns;    /* when the phase must be over */
        unsigned next_free;
};

struct conntrack {
        struct conntrack_options opt;
        pthread_mutex_t lock;
        pthread_cond_t wake;
        pthread_t reaper;
        bool stop;
        struct conn *slots;
        unsigned n_slots, free_head, open, closing;
        unsigned closed_since_tick;
        struct conntrack_stats stats;
};

#define NO_SLOT UINT32_MAX

static uint64_t now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t ms_ns(unsigned ms)
{
        return (uint64_t)ms * 1000000ull;
}

/* Closes a connection: the library sees its peer gone. Under the lock. */
static void close_conn(struct conntrack *t, struct conn *c, uint64_t *counter)
{
        assert(c->phase != PHASE_FREE && c->phase != PHASE_CLOSING);
        shutdown(c->fd, SHUT_RDWR);
        c->phase = PHASE_CLOSING;
        t->closing++;
        (*counter)++;
}

void conntrack_reap(struct conntrack *t, uint64_t now)
{
        pthread_mutex_lock(&t->lock);
        for (unsigned i = 0; i < t->n_slots; i++) {
                struct conn *c = &t->slots[i];
                if (c->phase == PHASE_FREE || c->phase == PHASE_CLOSING || now <= c->deadline_ns)
                        continue;
                close_conn(t, c,
                           c->phase == PHASE_HEADERS ? &t->stats.header_timeouts
                           : c->phase == PHASE_BODY  ? &t->stats.body_timeouts
                                                     : &t->stats.idle_timeouts);
        }
        pthread_mutex_unlock(&t->lock);
}

static void *reaper(void *arg)
{
        struct conntrack *t = arg;
        pthread_mutex_lock(&t->lock);
        while (!t->stop) {
                struct timespec until;
                clock_gettime(CLOCK_MONOTONIC, &until);
                until.tv_nsec += (long)WH_REAPER_INTERVAL_MS * 1000000L;
                if (until.tv_nsec >= 1000000000L) {
                        until.tv_sec++;
                        until.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&t->wake, &t->lock, &until);
                if (t->stop)
                        break;
                pthread_mutex_unlock(&t->lock);
                conntrack_reap(t, now_ns());
                if (t->opt.tick) {
                        pthread_mutex_lock(&t->lock);
                        unsigned closed = t->closed_since_tick;
                        t->closed_since_tick = 0;
                        pthread_mutex_unlock(&t->lock);
                        t->opt.tick(t->opt.tick_ctx, closed);
                }
                pthread_mutex_lock(&t->lock);
        }
        pthread_mutex_unlock(&t->lock);
        return NULL;
}

int conntrack_new(const struct conntrack_options *opt, struct conntrack **ret_table)
{
        struct conntrack *t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        t->opt = *opt;
        /* Room for the connections served, and for those being shut down. */
        t->n_slots = opt->limit + opt->limit / 4 + 16;
        t->slots = calloc(t->n_slots, sizeof *t->slots);
        if (!t->slots) {
                free(t);
                return -ENOMEM;
        }
        for (unsigned i = 0; i < t->n_slots; i++)
                t->slots[i].next_free = i + 1 < t->n_slots ? i + 1 : NO_SLOT;
        t->free_head = 0;
        pthread_mutex_init(&t->lock, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&t->wake, &ca);
        pthread_condattr_destroy(&ca);
        int r = pthread_create(&t->reaper, NULL, reaper, t);
        if (r != 0) {
                pthread_cond_destroy(&t->wake);
                pthread_mutex_destroy(&t->lock);
                free(t->slots);
                free(t);
                return -r;
        }
        *ret_table = t;
        return 0;
}

void conntrack_free(struct conntrack *t)
{
        if (!t)
                return;
        pthread_mutex_lock(&t->lock);
        t->stop = true;
        pthread_cond_signal(&t->wake);
        pthread_mutex_unlock(&t->lock);
        pthread_join(t->reaper, NULL);
        pthread_cond_destroy(&t->wake);
        pthread_mutex_destroy(&t->lock);
        free(t->slots);
        free(t);
}

/* The connection to give way: the oldest in its handshake or headers, else
 * the longest idle; never one with a request in flight. */
static struct conn *victim(struct conntrack *t)
{
        struct conn *best = NULL;
        for (unsigned i = 0; i < t->n_slots; i++) {
                struct conn *c = &t->slots[i];
                if (c->phase != PHASE_HEADERS && c->phase != PHASE_IDLE)
                        continue;
                if (!best || (c->phase == PHASE_HEADERS && best->phase == PHASE_IDLE) ||
                    (c->phase == best->phase && c->since_ns < best->since_ns))
                        best = c;
        }
        return best;
}

bool conntrack_admit(struct conntrack *t)
{
        pthread_mutex_lock(&t->lock);
        bool ok = true;
        assert(t->closing <= t->open && t->open <= t->n_slots);
        if (t->open - t->closing >= t->opt.limit) {
                struct conn *v = t->closing < t->n_slots - t->opt.limit ? victim(t) : NULL;
                if (v)
                        close_conn(t, v, &t->stats.evicted);
                else {
                        t->stats.refused++;
                        ok = false;
                }
        }
        pthread_mutex_unlock(&t->lock);
        return ok;
}

struct conn *conntrack_started(struct conntrack *t, int fd)
{
        pthread_mutex_lock(&t->lock);
        struct conn *c = NULL;
        if (t->free_head != NO_SLOT) {
                c = &t->slots[t->free_head];
                assert(c->phase == PHASE_FREE);
                t->free_head = c->next_free;
                uint64_t now = now_ns();
                *c = (struct conn){ .fd = fd,
                                    .phase = PHASE_HEADERS,
                                    .since_ns = now,
                                    .deadline_ns = now + ms_ns(t->opt.header_timeout_ms) };
                t->open++;
        }
        pthread_mutex_unlock(&t->lock);
        return c;
}

void conntrack_request(struct conntrack *t, struct conn *c, uint64_t deadline_ns)
{
        if (!c)
                return;
        pthread_mutex_lock(&t->lock);
        assert(c->phase != PHASE_FREE);         /* not after conntrack_closed() */
        if (c->phase != PHASE_CLOSING) {
                uint64_t now = now_ns(), cap = now + ms_ns(t->opt.body_timeout_ms);
                c->phase = PHASE_BODY;
                c->since_ns = now;
                c->deadline_ns = deadline_ns && deadline_ns < cap ? deadline_ns : cap;
        }
        pthread_mutex_unlock(&t->lock);
}

void conntrack_done(struct conntrack *t, struct conn *c)
{
        if (!c)
                return;
        pthread_mutex_lock(&t->lock);
        assert(c->phase != PHASE_FREE);         /* not after conntrack_closed() */
        if (c->phase != PHASE_CLOSING) {
                uint64_t now = now_ns();
                c->phase = PHASE_IDLE;
                c->since_ns = now;
                /* Idle, then the next request's headers: both bounded. */
                c->deadline_ns = now + ms_ns(t->opt.idle_timeout_ms) + ms_ns(t->opt.header_timeout_ms);
        }
        pthread_mutex_unlock(&t->lock);
}

void conntrack_closed(struct conntrack *t, struct conn *c)
{
        if (!c)
                return;
        pthread_mutex_lock(&t->lock);
        assert(c >= t->slots && c < t->slots + t->n_slots);
        assert(c->phase != PHASE_FREE && t->open > 0);     /* closed once */
        assert(c->phase != PHASE_CLOSING || t->closing > 0);
        if (c->phase == PHASE_CLOSING)
                t->closing--;
        c->phase = PHASE_FREE;
        c->fd = -1;
        c->next_free = t->free_head;
        t->free_head = (unsigned)(c - t->slots);
        t->open--;
        t->closed_since_tick++;
        pthread_mutex_unlock(&t->lock);
}

void conntrack_stats(struct conntrack *t, struct conntrack_stats *ret_stats)
{
        pthread_mutex_lock(&t->lock);
        *ret_stats = t->stats;
        ret_stats->open = t->open;
        pthread_mutex_unlock(&t->lock);
}
