/* Unit tests for webhook/io/nscache.c through its public API, fed by a small
 * HTTPS listener the test starts (api_listener.h) that answers the list,
 * the watch and single reads as each test tells it: the first list and
 * readiness, what is kept of a namespace, watch events, re-listing after
 * 410 Gone, and on a miss: RFC 1123 names never asked for, answers (found
 * or not) kept, errors not kept, one read per name at a time, and the caps
 * on reads at once and a second. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "certs_fixture.h"
#include "api_listener.h"
#include "kube.h"
#include "nscache.h"
#include "policy.h"
#include "webhook_limits.h"

#define TOKEN "nscache-test"
#define PATH_NS "/api/v1/namespaces"
#define WAIT_MS 10000u
#define SEC_NS 1000000000ull

/* What the listener answers. */
static struct {
        int list_status;
        const char *list_pages[2];     /* a second page when the first has a continue token */
        bool hold_reads;               /* reads of /api/v1/namespaces/NAME wait for listener_release() */
} api;

static const char list_page[] =
        "{\"kind\":\"NamespaceList\",\"metadata\":{\"resourceVersion\":\"1234\"},\"items\":["
        "{\"metadata\":{\"name\":\"team-a\",\"resourceVersion\":\"10\",\"labels\":{\"team\":\"a\"},"
        "\"annotations\":{\"spark-identity.io/identity\":\"a-spark\","
        "\"kubectl.kubernetes.io/last-applied-configuration\":\"{}\"}}},"
        "{\"metadata\":{\"name\":\"team-b\",\"resourceVersion\":\"11\"}}]}";

static void answer(void *ctx, const struct listener_request *rq, struct listener_answer *ret)
{
        const char *t = rq->target;
        if (strncmp(t, PATH_NS "?watch=1", strlen(PATH_NS "?watch=1")) == 0) {
                *ret = (struct listener_answer){ .status = 200, .body = "", .stream = true };
        } else if (strncmp(t, PATH_NS "?limit=", strlen(PATH_NS "?limit=")) == 0) {
                bool second = strstr(t, "&continue=") != NULL;
                *ret = (struct listener_answer){ .status = api.list_status,
                                                 .body = api.list_pages[second && api.list_pages[1] ? 1 : 0] };
        } else if (strcmp(t, PATH_NS "/broken") == 0) {
                *ret = (struct listener_answer){ .status = 500,
                                                 .body = "{\"kind\":\"Status\",\"message\":\"etcd is sad\"}" };
        } else if (strncmp(t, PATH_NS "/late", strlen(PATH_NS "/late")) == 0 ||
                   strncmp(t, PATH_NS "/slow-", strlen(PATH_NS "/slow-")) == 0) {
                *ret = (struct listener_answer){
                        .status = 200,
                        .hold = api.hold_reads,
                        .body = "{\"metadata\":{\"name\":\"late\",\"labels\":{\"team\":\"late\"},"
                                "\"annotations\":{\"spark-identity.io/identity\":\"late-spark\",\"other\":\"x\"}}}"
                };
        } else {
                *ret = (struct listener_answer){ .status = 404,
                                                 .body = "{\"kind\":\"Status\",\"reason\":\"NotFound\"}" };
        }
}

struct nsfix {
        struct fixture *f;
        struct listener l;
        struct kube *k;
        struct nscache *c;
};

static int ns_setup(void **state)
{
        struct nsfix *nf = calloc(1, sizeof *nf);
        void *fs = NULL;
        if (!nf || setup(&fs) != 0)
                return -1;
        nf->f = fs;
        generate(nf->f);
        api.list_status = 200;
        api.list_pages[0] = list_page;
        api.list_pages[1] = NULL;
        api.hold_reads = false;
        listener_start(&nf->l, path_in(nf->f, "tls.crt"), path_in(nf->f, "tls.key"), answer, NULL);
        const char *kc = listener_kubeconfig(nf->f->dir, nf->l.port, path_in(nf->f, "ca.crt"), TOKEN);
        char err[256] = "";
        if (kube_from_kubeconfig(kc, &nf->k, err, sizeof err) != 0)
                fail_msg("kubeconfig: %s", err);
        *state = nf;
        return 0;
}

static int ns_teardown(void **state)
{
        struct nsfix *nf = *state;
        nscache_stop(nf->c);
        kube_free(nf->k);
        listener_stop(&nf->l);
        void *fs = nf->f;
        int r = teardown(&fs);
        free(nf);
        return r;
}

static uint64_t now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * SEC_NS + (uint64_t)ts.tv_nsec;
}

static void start(struct nsfix *nf)
{
        assert_int_equal(nscache_start(nf->k, &nf->c), 0);
}

static void wait_ready(struct nsfix *nf)
{
        char why[256];
        for (unsigned waited = 0; !nscache_ready(nf->c, why, sizeof why); waited += 10) {
                if (waited > WAIT_MS)
                        fail_msg("not ready: %s", why);
                listener_sleep_ms(10);
        }
}

static void wait_size(struct nsfix *nf, size_t want)
{
        for (unsigned waited = 0; nscache_size(nf->c) != want; waited += 10) {
                if (waited > WAIT_MS)
                        fail_msg("size %zu, want %zu", nscache_size(nf->c), want);
                listener_sleep_ms(10);
        }
}

static const char *kv_get(const struct kv *kv, size_t n, const char *key)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp(kv[i].key, key) == 0)
                        return kv[i].value;
        return NULL;
}

/* Looks `name` up with `timeout_ms` left; the label `team` (or NULL) in *ret_team. */
static int lookup(struct nsfix *nf, const char *name, unsigned timeout_ms, char *team, size_t teamlen, char *err,
                  size_t errlen)
{
        struct ns_info info = { 0 };
        err[0] = '\0';
        int r = nscache_lookup(nf->c, name, now_ns() + (uint64_t)timeout_ms * 1000000ull, &info, err, errlen);
        if (team) {
                const char *v = r == 0 ? kv_get(info.labels, info.n_labels, "team") : NULL;
                snprintf(team, teamlen, "%s", v ? v : "");
        }
        nscache_done(nf->c);
        return r;
}

static unsigned reads_of(struct nsfix *nf, const char *name)
{
        char prefix[128];
        snprintf(prefix, sizeof prefix, PATH_NS "/%s", name);
        unsigned n = 0;
        pthread_mutex_lock(&nf->l.lock);
        for (unsigned i = 0; i < nf->l.n_requests && i < LISTENER_LOG_MAX; i++)
                n += strcmp(nf->l.log[i].target, prefix) == 0;
        pthread_mutex_unlock(&nf->l.lock);
        return n;
}

/* ---- list and watch ---- */

static void test_list_then_lookup_without_reads(void **state)
{
        struct nsfix *nf = *state;
        start(nf);
        wait_ready(nf);
        assert_int_equal(nscache_size(nf->c), 2);

        struct ns_info info = { 0 };
        char err[256] = "";
        assert_int_equal(nscache_lookup(nf->c, "team-a", now_ns() + SEC_NS, &info, err, sizeof err), 0);
        assert_int_equal(info.n_labels, 1);
        assert_string_equal(kv_get(info.labels, info.n_labels, "team"), "a");
        /* Only the spark-identity.io/ annotations are kept. */
        assert_int_equal(info.n_annotations, 1);
        assert_string_equal(kv_get(info.annotations, info.n_annotations, "spark-identity.io/identity"), "a-spark");
        nscache_done(nf->c);
        assert_int_equal(nscache_lookup(nf->c, "team-b", now_ns() + SEC_NS, &info, err, sizeof err), 0);
        assert_int_equal(info.n_labels, 0);
        assert_int_equal(info.n_annotations, 0);
        nscache_done(nf->c);

        unsigned long fetches = 9, refused = 9;
        nscache_fetch_stats(nf->c, &fetches, &refused);
        assert_int_equal(fetches, 0);
        assert_int_equal(refused, 0);
        assert_int_equal(listener_count(&nf->l, PATH_NS "/"), 0);

        /* The list's shape, then a watch from its resourceVersion. */
        char want[128];
        xsnprintf(want, PATH_NS "?limit=%u", WH_KUBE_LIST_PAGE);
        assert_string_equal(listener_request_at(&nf->l, 0).target, want);
        assert_string_equal(listener_request_at(&nf->l, 0).authorization, "Bearer " TOKEN);
        listener_wait_for(&nf->l, &nf->l.n_streams, 1);
        struct listener_request watch = listener_request_at(&nf->l, 1);
        assert_contains(watch.target, PATH_NS "?watch=1&allowWatchBookmarks=true");
        assert_contains(watch.target, "&resourceVersion=1234");
        assert_int_equal(nscache_restarts(nf->c), 0);
}

static void test_list_pages(void **state)
{
        struct nsfix *nf = *state;
        api.list_pages[0] = "{\"metadata\":{\"continue\":\"tok en/=\"},\"items\":["
                            "{\"metadata\":{\"name\":\"page-one\"}}]}";
        api.list_pages[1] = "{\"metadata\":{\"resourceVersion\":\"77\"},\"items\":["
                            "{\"metadata\":{\"name\":\"page-two\",\"labels\":{\"team\":\"two\"}}}]}";
        start(nf);
        wait_ready(nf);
        assert_int_equal(nscache_size(nf->c), 2);
        char team[32], err[256];
        assert_int_equal(lookup(nf, "page-one", 1000, team, sizeof team, err, sizeof err), 0);
        assert_int_equal(lookup(nf, "page-two", 1000, team, sizeof team, err, sizeof err), 0);
        assert_string_equal(team, "two");
        char want[128];
        xsnprintf(want, PATH_NS "?limit=%u&continue=tok%%20en%%2F%%3D", WH_KUBE_LIST_PAGE);
        assert_string_equal(listener_request_at(&nf->l, 1).target, want);
        listener_wait_for(&nf->l, &nf->l.n_streams, 1);
        struct listener_request watch = listener_request_at(&nf->l, 2);
        assert_contains(watch.target, "&resourceVersion=77");
}

/* A list refused: not ready, and why says what the API server said; a
 * lookup still reads the one namespace. */
static void test_not_ready_says_why(void **state)
{
        struct nsfix *nf = *state;
        api.list_status = 403;
        api.list_pages[0] = "{\"kind\":\"Status\",\"message\":\"namespaces is forbidden\"}";
        start(nf);
        char why[256] = "";
        assert_false(nscache_ready(nf->c, why, sizeof why));
        for (unsigned waited = 0; nscache_restarts(nf->c) == 0; waited += 10) {
                if (waited > WAIT_MS)
                        fail_msg("no failed list");
                listener_sleep_ms(10);
        }
        assert_false(nscache_ready(nf->c, why, sizeof why));
        assert_contains(why, "listing namespaces: HTTP 403: namespaces is forbidden");
        assert_int_equal(nscache_size(nf->c), 0);

        char team[32], err[256];
        assert_int_equal(lookup(nf, "late", 2000, team, sizeof team, err, sizeof err), 0);
        assert_string_equal(team, "late");
        assert_int_equal(lookup(nf, "nowhere", 2000, NULL, 0, err, sizeof err), -ENOENT);
}

static void push_event(struct nsfix *nf, const char *type, const char *name, const char *team, const char *rv)
{
        char line[512];
        xsnprintf(line,
                  "{\"type\":\"%s\",\"object\":{\"kind\":\"Namespace\",\"metadata\":{\"name\":\"%s\","
                  "\"resourceVersion\":\"%s\",\"labels\":{\"team\":\"%s\"}}}}",
                  type, name, rv, team);
        listener_push(&nf->l, line);
}

static void test_watch_events_and_gone(void **state)
{
        struct nsfix *nf = *state;
        start(nf);
        wait_ready(nf);
        listener_wait_for(&nf->l, &nf->l.n_streams, 1);
        char team[32], err[256];

        push_event(nf, "ADDED", "fresh", "new", "20");
        wait_size(nf, 3);
        assert_int_equal(lookup(nf, "fresh", 1000, team, sizeof team, err, sizeof err), 0);
        assert_string_equal(team, "new");

        push_event(nf, "MODIFIED", "team-a", "changed", "21");
        for (unsigned waited = 0;; waited += 10) {
                assert_int_equal(lookup(nf, "team-a", 1000, team, sizeof team, err, sizeof err), 0);
                if (strcmp(team, "changed") == 0)
                        break;
                if (waited > WAIT_MS)
                        fail_msg("team-a still has team=%s", team);
                listener_sleep_ms(10);
        }
        listener_push(&nf->l, "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"22\"}}}");
        push_event(nf, "DELETED", "fresh", "new", "23");
        wait_size(nf, 2);
        assert_int_equal(listener_count(&nf->l, PATH_NS "/"), 0);
        /* Gone from the table: a lookup reads it now. */
        assert_int_equal(lookup(nf, "fresh", 2000, NULL, 0, err, sizeof err), -ENOENT);
        assert_int_equal(reads_of(nf, "fresh"), 1);

        /* 410 Gone: list again. */
        assert_int_equal(listener_count(&nf->l, PATH_NS "?limit="), 1);
        listener_push(&nf->l, "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,"
                              "\"message\":\"too old resource version\"}}");
        for (unsigned waited = 0; listener_count(&nf->l, PATH_NS "?limit=") < 2; waited += 10) {
                if (waited > WAIT_MS)
                        fail_msg("no second list");
                listener_sleep_ms(10);
        }
        assert_true(nscache_restarts(nf->c) >= 1);
        wait_size(nf, 2);
        /* The list is the truth again: team-a as listed. */
        for (unsigned waited = 0;; waited += 10) {
                assert_int_equal(lookup(nf, "team-a", 1000, team, sizeof team, err, sizeof err), 0);
                if (strcmp(team, "a") == 0)
                        break;
                if (waited > WAIT_MS)
                        fail_msg("team-a has team=%s after the re-list", team);
                listener_sleep_ms(10);
        }
        /* A watch again, from the new list's version. */
        for (unsigned waited = 0; listener_count(&nf->l, PATH_NS "?watch=1") < 2; waited += 10) {
                if (waited > WAIT_MS)
                        fail_msg("no second watch");
                listener_sleep_ms(10);
        }
}

/* ---- misses ---- */

static void test_names_that_cannot_exist_are_never_asked_for(void **state)
{
        struct nsfix *nf = *state;
        start(nf);
        wait_ready(nf);
        char long_name[WH_NS_NAME_MAX + 2];
        memset(long_name, 'a', sizeof long_name - 1);
        long_name[sizeof long_name - 1] = '\0';   /* WH_NS_NAME_MAX + 1 characters */
        const char *bad[] = { "",       "Team-a", "team_a", "-team", "team-",  "team.a",
                              "team/a", "team a", "..",     "%2e",   long_name };
        char err[256];
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
                if (lookup(nf, bad[i], 1000, NULL, 0, err, sizeof err) != -ENOENT)
                        fail_msg("\"%s\" not refused", bad[i]);
        assert_int_equal(listener_count(&nf->l, PATH_NS "/"), 0);
        unsigned long fetches, refused;
        nscache_fetch_stats(nf->c, &fetches, &refused);
        assert_int_equal(fetches, 0);
        assert_int_equal(refused, 0);

        /* The longest name that can exist is asked for. */
        long_name[WH_NS_NAME_MAX] = '\0';
        assert_int_equal(lookup(nf, long_name, 2000, NULL, 0, err, sizeof err), -ENOENT);
        assert_int_equal(reads_of(nf, long_name), 1);
        assert_int_equal(lookup(nf, "9lives", 2000, NULL, 0, err, sizeof err), -ENOENT);
        assert_int_equal(reads_of(nf, "9lives"), 1);
}

/* A missing namespace's answer, found or not, is kept: one read. */
static void test_answers_are_kept(void **state)
{
        struct nsfix *nf = *state;
        start(nf);
        wait_ready(nf);
        char team[32], err[256];
        for (int i = 0; i < 3; i++)
                assert_int_equal(lookup(nf, "ghost", 2000, NULL, 0, err, sizeof err), -ENOENT);
        assert_int_equal(reads_of(nf, "ghost"), 1);
        for (int i = 0; i < 3; i++) {
                assert_int_equal(lookup(nf, "late", 2000, team, sizeof team, err, sizeof err), 0);
                assert_string_equal(team, "late");
        }
        assert_int_equal(reads_of(nf, "late"), 1);
        /* What is kept of a read namespace is what the list keeps. */
        struct ns_info info = { 0 };
        assert_int_equal(nscache_lookup(nf->c, "late", now_ns() + SEC_NS, &info, err, sizeof err), 0);
        assert_int_equal(info.n_annotations, 1);
        assert_string_equal(kv_get(info.annotations, info.n_annotations, "spark-identity.io/identity"), "late-spark");
        nscache_done(nf->c);
        unsigned long fetches, refused;
        nscache_fetch_stats(nf->c, &fetches, &refused);
        assert_int_equal(fetches, 2);
        assert_int_equal(refused, 0);
        assert_int_equal(nscache_size(nf->c), 2);   /* the table is the watch's alone */
}

/* An error is not kept: the next lookup reads again, and says why. */
static void test_errors_are_not_kept(void **state)
{
        struct nsfix *nf = *state;
        start(nf);
        wait_ready(nf);
        char err[256];
        assert_int_equal(lookup(nf, "broken", 2000, NULL, 0, err, sizeof err), -EIO);
        assert_string_equal(err, "reading namespace broken: HTTP 500: etcd is sad");
        assert_int_equal(lookup(nf, "broken", 2000, NULL, 0, err, sizeof err), -EIO);
        assert_int_equal(reads_of(nf, "broken"), 2);
}

/* A lookup whose time has run out makes no read; past
 * WH_NS_FETCH_PER_SECOND of them within a second, lookups are refused. */
static void test_reads_a_second_are_capped(void **state)
{
        struct nsfix *nf = *state;
        start(nf);
        wait_ready(nf);
        char err[256], name[32];
        unsigned timed_out = 0, capped = 0;
        uint64_t past = now_ns() - 1;
        for (unsigned i = 0; i < 3 * WH_NS_FETCH_PER_SECOND && !capped; i++) {
                struct ns_info info;
                xsnprintf(name, "missing-%u", i);
                int r = nscache_lookup(nf->c, name, past, &info, err, sizeof err);
                nscache_done(nf->c);
                if (r == -ETIMEDOUT) {
                        timed_out++;
                        assert_contains(err, "the request's time ran out");
                } else if (r == -EAGAIN) {
                        capped++;
                        char want[128];
                        xsnprintf(want, "reads of the API are capped (%u at once, %u a second)",
                                  WH_NS_FETCH_INFLIGHT_MAX, WH_NS_FETCH_PER_SECOND);
                        assert_contains(err, want);
                } else {
                        fail_msg("%s: %d", name, r);
                }
        }
        assert_true(timed_out >= WH_NS_FETCH_PER_SECOND);
        assert_int_equal(capped, 1);
        unsigned long fetches, refused;
        nscache_fetch_stats(nf->c, &fetches, &refused);
        assert_int_equal(fetches, 0);
        assert_int_equal(refused, 1);
        assert_int_equal(listener_count(&nf->l, PATH_NS "/"), 0);
}

struct looker {
        struct nsfix *nf;
        char name[32];
        unsigned timeout_ms;
        int r;
        char team[32];
        char err[256];
        pthread_t t;
};

static void *look(void *arg)
{
        struct looker *lk = arg;
        lk->r = lookup(lk->nf, lk->name, lk->timeout_ms, lk->team, sizeof lk->team, lk->err, sizeof lk->err);
        return NULL;
}

static void look_start(struct looker *lk, struct nsfix *nf, const char *name, unsigned timeout_ms)
{
        *lk = (struct looker){ .nf = nf, .timeout_ms = timeout_ms, .r = 1 };
        snprintf(lk->name, sizeof lk->name, "%s", name);
        assert_int_equal(pthread_create(&lk->t, NULL, look, lk), 0);
}

/* At most WH_NS_FETCH_INFLIGHT_MAX reads run at once; a lookup of a name
 * being read waits for that read instead of making another, until its own
 * time runs out. */
static void test_inflight_cap_and_single_flight(void **state)
{
        struct nsfix *nf = *state;
        api.hold_reads = true;
        start(nf);
        wait_ready(nf);
        struct looker readers[WH_NS_FETCH_INFLIGHT_MAX], waiters[2], impatient;
        for (unsigned i = 0; i < WH_NS_FETCH_INFLIGHT_MAX; i++) {
                char name[32];
                xsnprintf(name, "slow-%u", i);
                look_start(&readers[i], nf, name, 8000);
        }
        listener_wait_for(&nf->l, &nf->l.n_held, WH_NS_FETCH_INFLIGHT_MAX);

        /* Another name: refused at once, nothing sent. */
        char err[256];
        unsigned before = listener_requests(&nf->l);
        assert_int_equal(lookup(nf, "slow-other", 8000, NULL, 0, err, sizeof err), -EAGAIN);
        assert_contains(err, "capped");
        assert_int_equal(listener_requests(&nf->l), before);

        /* The same name: they wait for the read in flight. */
        look_start(&waiters[0], nf, "slow-0", 8000);
        look_start(&waiters[1], nf, "slow-0", 8000);
        look_start(&impatient, nf, "slow-1", 200);
        pthread_join(impatient.t, NULL);
        assert_int_equal(impatient.r, -ETIMEDOUT);
        assert_contains(impatient.err, "namespace slow-1 is being read; the request's time ran out");
        assert_int_equal(waiters[0].r, 1);   /* still waiting */
        assert_int_equal(waiters[1].r, 1);
        assert_int_equal(reads_of(nf, "slow-0"), 1);
        assert_int_equal(reads_of(nf, "slow-1"), 1);

        listener_release(&nf->l);
        for (unsigned i = 0; i < WH_NS_FETCH_INFLIGHT_MAX; i++) {
                pthread_join(readers[i].t, NULL);
                assert_int_equal(readers[i].r, 0);
                assert_string_equal(readers[i].team, "late");
        }
        for (unsigned i = 0; i < 2; i++) {
                pthread_join(waiters[i].t, NULL);
                assert_int_equal(waiters[i].r, 0);
                assert_string_equal(waiters[i].team, "late");
        }
        assert_int_equal(reads_of(nf, "slow-0"), 1);
        unsigned long fetches, refused;
        nscache_fetch_stats(nf->c, &fetches, &refused);
        assert_int_equal(fetches, WH_NS_FETCH_INFLIGHT_MAX);
        assert_int_equal(refused, 1);
}

int main(void)
{
        assert_int_equal(kube_global_init(), 0);
#define T(fn) cmocka_unit_test_setup_teardown(fn, ns_setup, ns_teardown)
        const struct CMUnitTest tests[] = {
                T(test_list_then_lookup_without_reads),
                T(test_list_pages),
                T(test_not_ready_says_why),
                T(test_watch_events_and_gone),
                T(test_names_that_cannot_exist_are_never_asked_for),
                T(test_answers_are_kept),
                T(test_errors_are_not_kept),
                T(test_reads_a_second_are_capped),
                T(test_inflight_cap_and_single_flight),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
