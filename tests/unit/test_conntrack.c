/* Unit tests for webhook/io/conntrack.c: absolute deadlines, and who gives way
 * at the limit. Connections are socketpairs: a shut down one reads EOF on
 * its other end. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <poll.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conntrack.h"

struct pair {
        int ours, peer;
        struct conn *c;
};

static uint64_t now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void open_pair(struct conntrack *t, struct pair *p)
{
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        p->ours = sv[0];
        p->peer = sv[1];
        p->c = conntrack_started(t, p->ours);
        assert_non_null(p->c);
}

/* Whether our side was shut down: the peer reads EOF at once. */
static bool shut(const struct pair *p)
{
        struct pollfd pfd = { .fd = p->peer, .events = POLLIN };
        if (poll(&pfd, 1, 0) != 1)
                return false;
        char b;
        return read(p->peer, &b, 1) == 0;
}

static void close_pair(struct conntrack *t, struct pair *p)
{
        conntrack_closed(t, p->c);
        close(p->ours);
        close(p->peer);
}

static struct conntrack *make(unsigned limit)
{
        struct conntrack_options o = {
                .limit = limit, .header_timeout_ms = 1000, .body_timeout_ms = 2000, .idle_timeout_ms = 3000
        };
        struct conntrack *t;
        assert_int_equal(conntrack_new(&o, &t), 0);
        return t;
}

static void test_deadlines_are_absolute(void **state)
{
        struct conntrack *t = make(8);
        struct pair h, b, i;
        open_pair(t, &h);
        open_pair(t, &b);
        open_pair(t, &i);
        uint64_t t0 = now_ns();
        conntrack_request(t, b.c, 0);                       /* body: 2 s from now */
        conntrack_request(t, i.c, 0);
        conntrack_done(t, i.c);                             /* idle: 3 s + 1 s */
        conntrack_reap(t, t0 + 900000000ull);
        assert_false(shut(&h) || shut(&b) || shut(&i));
        conntrack_reap(t, t0 + 1100000000ull);              /* headers past 1 s */
        assert_true(shut(&h));
        assert_false(shut(&b) || shut(&i));
        conntrack_reap(t, t0 + 2100000000ull);
        assert_true(shut(&b));
        assert_false(shut(&i));
        conntrack_reap(t, t0 + 4100000000ull);
        assert_true(shut(&i));
        struct conntrack_stats st;
        conntrack_stats(t, &st);
        assert_int_equal(st.header_timeouts, 1);
        assert_int_equal(st.body_timeouts, 1);
        assert_int_equal(st.idle_timeouts, 1);
        assert_int_equal(st.open, 3);
        close_pair(t, &h);
        close_pair(t, &b);
        close_pair(t, &i);
        conntrack_stats(t, &st);
        assert_int_equal(st.open, 0);
        conntrack_free(t);
}

/* The API server's ?timeout= shortens the body's deadline, never lengthens it. */
static void test_request_deadline_is_the_smaller(void **state)
{
        struct conntrack *t = make(8);
        struct pair a, b;
        open_pair(t, &a);
        open_pair(t, &b);
        uint64_t t0 = now_ns();
        conntrack_request(t, a.c, t0 + 500000000ull);
        conntrack_request(t, b.c, t0 + 60000000000ull);
        conntrack_reap(t, t0 + 600000000ull);
        assert_true(shut(&a));
        assert_false(shut(&b));
        conntrack_reap(t, t0 + 2100000000ull);
        assert_true(shut(&b));
        close_pair(t, &a);
        close_pair(t, &b);
        conntrack_free(t);
}

/* At the limit: the oldest in its headers goes first, then the longest
 * idle; one with a request in flight never does. */
static void test_who_gives_way(void **state)
{
        struct conntrack *t = make(3);
        struct pair idle, busy, headers, newer;
        open_pair(t, &idle);
        conntrack_request(t, idle.c, 0);
        conntrack_done(t, idle.c);
        open_pair(t, &busy);
        conntrack_request(t, busy.c, 0);
        open_pair(t, &headers);
        assert_true(conntrack_admit(t));                    /* full: the one in its headers goes */
        assert_true(shut(&headers));
        assert_false(shut(&idle) || shut(&busy));
        open_pair(t, &newer);                               /* the new one arrives */
        close_pair(t, &headers);                            /* the library reports the closed one */
        conntrack_request(t, newer.c, 0);                   /* and it has a request in flight */
        assert_true(conntrack_admit(t));                    /* full again: the idle one goes */
        assert_true(shut(&idle));
        assert_false(shut(&busy) || shut(&newer));
        struct pair extra;
        open_pair(t, &extra);
        conntrack_request(t, extra.c, 0);
        close_pair(t, &idle);
        /* Everyone busy: nobody gives way, the new connection is refused. */
        assert_false(conntrack_admit(t));
        struct conntrack_stats st;
        conntrack_stats(t, &st);
        assert_int_equal(st.evicted, 2);
        assert_int_equal(st.refused, 1);
        close_pair(t, &busy);
        close_pair(t, &newer);
        close_pair(t, &extra);
        conntrack_free(t);
}

/* The reaper thread does it on its own. */
static void test_reaper_thread(void **state)
{
        struct conntrack_options o = {
                .limit = 4, .header_timeout_ms = 100, .body_timeout_ms = 100, .idle_timeout_ms = 100
        };
        struct conntrack *t;
        assert_int_equal(conntrack_new(&o, &t), 0);
        struct pair p;
        open_pair(t, &p);
        struct pollfd pfd = { .fd = p.peer, .events = POLLIN };
        assert_int_equal(poll(&pfd, 1, 2000), 1);
        assert_true(shut(&p));
        close_pair(t, &p);
        conntrack_free(t);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_deadlines_are_absolute),
                cmocka_unit_test(test_request_deadline_is_the_smaller),
                cmocka_unit_test(test_who_gives_way),
                cmocka_unit_test(test_reaper_thread),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
