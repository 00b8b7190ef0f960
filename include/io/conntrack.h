/* Deadlines and room for the server's connections, whatever a client
 * trickles: each connection has an absolute deadline for its TLS handshake
 * and request headers, then one for its body; bytes that trickle in do not
 * extend them. At the connection limit, a new connection makes room: the
 * oldest connection still in its handshake or headers gives way first, then
 * the longest-idle keep-alive one; one with a request in flight never does.
 *
 * A connection is closed by shutdown() of its socket, which the HTTP
 * library then sees as the peer going away; the socket stays the
 * library's. The library reports a connection closed before it closes the
 * socket, and both paths take the table's lock, so a socket number is never
 * shut down after it was reused.
 *
 * Ownership: conntrack_new() makes the table and a reaper thread;
 * conntrack_free() stops the thread and frees it. Thread safe. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

struct conntrack;
struct conn;

struct conntrack_options {
        unsigned limit;               /* connections served at once */
        unsigned header_timeout_ms;   /* accept to the end of the request headers */
        unsigned body_timeout_ms;     /* headers to the end of the body, at most */
        unsigned idle_timeout_ms;     /* a keep-alive connection between requests */
        /* Called by the reaper after each pass with the connections closed
         * since the last call; may be NULL. */
        void (*tick)(void *ctx, unsigned closed);
        void *tick_ctx;
};

/* Counters, for metrics. */
struct conntrack_stats {
        uint64_t header_timeouts;     /* closed: handshake or headers too slow */
        uint64_t body_timeouts;       /* closed: body too slow */
        uint64_t idle_timeouts;       /* closed: idle past the keep-alive time and the header deadline */
        uint64_t evicted;             /* closed to make room for a new connection */
        uint64_t refused;             /* new connections refused: no room could be made */
        unsigned open;
};

/* 0 and *ret_table, or -ENOMEM / -errno (the reaper thread could not start). */
int conntrack_new(const struct conntrack_options *opt, struct conntrack **ret_table);
void conntrack_free(struct conntrack *t);

/* A new connection is about to be accepted: true when there is room (made,
 * if need be, by closing another), false to refuse it. */
bool conntrack_admit(struct conntrack *t);

/* The connection on socket `fd` began (before its handshake). NULL when
 * the table is full or out of memory: the connection then has no deadline
 * but the library's idle timeout. */
struct conn *conntrack_started(struct conntrack *t, int fd);

/* Its request headers are in: the body must end by `deadline_ns`
 * (CLOCK_MONOTONIC), at most body_timeout_ms from now. */
void conntrack_request(struct conntrack *t, struct conn *c, uint64_t deadline_ns);

/* Its request was answered: it is an idle keep-alive connection now. */
void conntrack_done(struct conntrack *t, struct conn *c);

/* It closed. */
void conntrack_closed(struct conntrack *t, struct conn *c);

void conntrack_stats(struct conntrack *t, struct conntrack_stats *ret_stats);

/* One pass of the reaper at time `now_ns`, as its thread does every
 * WH_REAPER_INTERVAL_MS (for tests). */
void conntrack_reap(struct conntrack *t, uint64_t now_ns);
