/* The `serve` command's handlers: an admission (parse, read the namespace,
 * decide, log the decision, answer), /readyz and /metrics. They run on the
 * server's worker threads; what they share with the main loop is in
 * struct serve (serve.h). */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admission.h"
#include "arena.h"
#include "configmap_policy.h"
#include "conntrack.h"
#include "decision_log.h"
#include "log.h"
#include "metrics.h"
#include "metrics_admission.h"
#include "serve.h"
#include "webhook_limits.h"

long long serve_micros_since(const struct timespec *t0)
{
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        return (t1.tv_sec - t0->tv_sec) * 1000000LL + (t1.tv_nsec - t0->tv_nsec) / 1000;
}

static void parse_limit_message(char *msg, size_t msglen, size_t len)
{
        snprintf(msg, msglen,
                 "the review would take more than %zu bytes to parse (%u times its %zu-byte "
                 "body, plus %u): refused",
                 (size_t)WH_PARSE_FACTOR * len + WH_PARSE_SLACK_BYTES, WH_PARSE_FACTOR, len, WH_PARSE_SLACK_BYTES);
}

/* Refuses a body whose shape says its parse would pass its bound. */
static void refuse_parse(int *ret_status, struct buf *out, size_t len)
{
        char msg[256];
        parse_limit_message(msg, sizeof msg, len);
        log_message(LOG_WARN, "request refused", msg);
        metrics_bad_request(413);
        *ret_status = 413;
        buf_reset(out);
        review_status_body(out, 413, msg);
}

/* A review the arena could not hold: say which bound, not "not JSON". */
static void parse_bounds(struct admission *a, size_t len, const struct budget *b)
{
        enum arena_limit why = arena_limited();
        if (why == ARENA_LIMIT_NONE || a->status == 200)
                return;
        int status = why == ARENA_LIMIT_REQUEST ? 413 : why == ARENA_LIMIT_BUDGET ? 503 : 500;
        char msg[256];
        if (why == ARENA_LIMIT_REQUEST)
                parse_limit_message(msg, sizeof msg, len);
        else if (why == ARENA_LIMIT_BUDGET)
                snprintf(msg, sizeof msg,
                         "the server's memory for requests in flight (--request-memory, "
                         "%zu MiB) is in use; try again",
                         b->limit >> 20);
        else
                snprintf(msg, sizeof msg, "out of memory while parsing the review");
        a->decided = false;
        a->status = status;
        snprintf(a->error, sizeof a->error, "%s", msg);
        buf_reset(&a->body);
        review_status_body(&a->body, status, msg);
}

/* Reads the review's namespace when the policy in force needs it, without
 * holding the policy while the API is asked; bounded by the request's
 * deadline. Returns whether nscache_done() must follow. */
static bool read_namespace(struct serve *sv, struct admission *a, uint64_t deadline_ns, struct ns_known *ret)
{
        unsigned token;
        const struct policy *p = snapshot_acquire(sv->policy, &token);
        const char *ns = p ? admission_namespace(a, p) : NULL;
        snapshot_release(sv->policy, token);
        if (!ns)
                return false;
        if (!sv->namespaces) {
                ret->state = NS_NOT_READ;
                snprintf(ret->error, sizeof ret->error, "the server has no Kubernetes API to read namespaces from");
                return false;
        }
        int r = nscache_lookup(sv->namespaces, ns, deadline_ns, &ret->info, ret->error, sizeof ret->error);
        ret->state = r == 0 ? NS_FOUND : r == -ENOENT ? NS_ABSENT : NS_UNREADABLE;
        return true;
}

/* The answer moves from the admission to the caller's `out`; the review
 * and the arena bracket end. */
static void admit_end(struct admission *a, int *ret_status, struct buf *out)
{
        *ret_status = a->status;
        buf_free(out);
        *out = a->body;                  /* the answer moves to the caller */
        buf_init(&a->body, 0);
        if (arena_owns(a->review.root))
                admission_free_arena(a);
        else
                admission_free(a);   /* the bracket had no memory: cJSON used malloc */
        arena_end();
}

/* Starts the arena bracket for a review of `len` bytes. False, with the
 * answer written, when the body's shape alone says its parse would pass
 * the bound: the parse may take WH_PARSE_FACTOR times the body, from the
 * shared budget, and is not spent on a body that would take more. */
static bool admit_begin(struct serve *sv, const char *body, size_t len, int *ret_status, struct buf *out)
{
        size_t parse_limit = (size_t)WH_PARSE_FACTOR * len + WH_PARSE_SLACK_BYTES;
        if (review_parse_cost(body, len) > parse_limit) {
                refuse_parse(ret_status, out, len);
                return false;
        }
        arena_begin_bounded(&sv->memory, parse_limit);
        return true;
}

/* The decision line of a review of the policy ConfigMap. */
static void log_policy_verdict(const struct admission *a, const struct configmap_policy_result *res, long long micros)
{
        struct log_line l;
        bool refused = res->verdict == CONFIGMAP_POLICY_INVALID;
        log_begin(&l, refused ? LOG_WARN : LOG_INFO, "policy ConfigMap judged");
        log_str(&l, "uid", a->review.uid);
        log_str(&l, "operation", a->review.operation);
        log_str(&l, "namespace", a->review.namespace_);
        log_str(&l, "name", a->review.name);
        log_str(&l, "user", a->review.username);
        log_str(&l, "verdict", configmap_policy_verdict_name(res->verdict));
        log_bool(&l, "allowed", !refused);
        log_str(&l, "why", res->why);
        log_str(&l, "message", refused ? res->message : NULL);
        log_bool(&l, "dryRun", a->review.dry_run);
        log_int(&l, "micros", micros);
        log_end(&l);
}

/* POST /validate-policy: may the policy ConfigMap be written? The policy it
 * carries is loaded inside the review's arena bracket, so that its parse is
 * bounded (and budgeted) like the review's: a policy past the bound is
 * answered 413, and the webhook's failurePolicy Ignore lets it through to
 * the reload, which still refuses it if it does not load. */
static void admit_policy(struct serve *sv, struct admission *a, const char *body, size_t len, int *ret_status,
                         struct buf *out, const struct timespec *t0)
{
        if (!admit_begin(sv, body, len, ret_status, out))
                return;
        admission_init(a, out->max);
        struct configmap_policy_result res;
        if (admission_parse(a, body, len) == 0) {
                int r = configmap_policy_judge(&a->review, sv->policy_key, &res, &a->body);
                if (r < 0 || arena_limited() != ARENA_LIMIT_NONE) {
                        a->status = 500;
                        snprintf(a->error, sizeof a->error, "%s",
                                 r == -ENOBUFS ? "the answer would pass its size bound"
                                               : "out of memory while loading the policy");
                        buf_reset(&a->body);
                        review_status_body(&a->body, 500, a->error);
                } else
                        a->status = 200;
        }
        parse_bounds(a, len, &sv->memory);
        if (a->status == 200)
                log_policy_verdict(a, &res, serve_micros_since(t0));
        else {
                log_message(LOG_WARN, "request refused", a->error);
                metrics_bad_request(a->status);
        }
        admit_end(a, ret_status, out);
}

static void admit_in(struct serve *sv, struct admission *a, enum server_path path, const char *body, size_t len,
                     uint64_t deadline_ns, int *ret_status, struct buf *out, const struct timespec *t0)
{
        unsigned token;

        if (!admit_begin(sv, body, len, ret_status, out))
                return;
        admission_init(a, out->max);
        a->path = path == SERVER_PATH_VALIDATE ? ADMISSION_VALIDATE : ADMISSION_MUTATE;
        struct ns_known known = { .state = NS_NOT_READ };
        bool read = false;
        if (admission_parse(a, body, len) == 0)
                read = read_namespace(sv, a, deadline_ns, &known);
        const struct policy *p = snapshot_acquire(sv->policy, &token);
        if (!a->status)
                admission_decide(p, &known, a);
        if (read)
                nscache_done(sv->namespaces);
        parse_bounds(a, len, &sv->memory);
        long long micros = serve_micros_since(t0);
        if (a->decided) {
                decision_log_write(a, micros);
                metrics_admission(a->mutation.decision, a->mutation.role, (uint64_t)micros);
        } else {
                log_message(LOG_WARN, "request refused", a->error);
                metrics_bad_request(a->status);
        }
        snapshot_release(sv->policy, token);
        admit_end(a, ret_status, out);
}

/* The admission lives on the heap: it has room for WH_MAX_CHANGES typed
 * changes (about 86 KiB) of which a request writes a few. On the stack,
 * stack-clash protection would probe, and so make resident, every page of
 * it in every worker thread. */
void serve_admit(void *ctx, enum server_path path, const char *body, size_t len, uint64_t deadline_ns, int *ret_status,
                 struct buf *out)
{
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        struct admission *a = malloc(sizeof *a);
        if (!a) {
                log_message(LOG_WARN, "request refused", "out of memory for the admission");
                metrics_bad_request(500);
                *ret_status = 500;
                buf_reset(out);
                review_status_body(out, 500, "out of memory for the admission");
                return;
        }
        if (path == SERVER_PATH_VALIDATE_POLICY)
                admit_policy(ctx, a, body, len, ret_status, out, &t0);
        else
                admit_in(ctx, a, path, body, len, deadline_ns, ret_status, out, &t0);
        free(a);
}

bool serve_ready(void *ctx, struct buf *out)
{
        struct serve *sv = ctx;
        time_t not_after = (time_t)atomic_load(&sv->cert_not_after);
        time_t now = time(NULL);
        unsigned token;
        const struct policy *p = snapshot_acquire(sv->policy, &token);
        char ns_why[256] = "";
        bool ns_ok = !sv->namespaces || nscache_ready(sv->namespaces, ns_why, sizeof ns_why);
        bool ok = p && now < not_after && !atomic_load(&sv->stopping) && ns_ok;
        char when[32];
        struct tm tm;
        gmtime_r(&not_after, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        buf_printf(out,
                   "{\"status\":\"%s\",\"policySha256\":\"%s\",\"certificateNotAfter\":\"%s\","
                   "\"certificateDaysLeft\":%lld",
                   ok ? "ready" : "not ready", p ? policy_sha256(p) : "", when, (long long)(not_after - now) / 86400);
        if (sv->namespaces)
                buf_printf(out, ",\"namespaces\":%zu", nscache_size(sv->namespaces));
        /* A refused reload leaves the server ready on the old policy; the
         * body says so, with the first problem. */
        pthread_mutex_lock(&sv->reload_lock);
        bool failing = atomic_load(&sv->reload_failing);
        buf_printf(out, ",\"policyReloadFailing\":%s", failing ? "true" : "false");
        if (failing) {
                buf_puts(out, ",\"policyRefused\":");
                buf_put_json_str(out, sv->reload_refused);
        }
        pthread_mutex_unlock(&sv->reload_lock);
        if (!ok) {
                buf_puts(out, ",\"reason\":");
                if (atomic_load(&sv->stopping))
                        buf_put_json_str(out, "shutting down");
                else if (!p)
                        buf_put_json_str(out, "no policy loaded");
                else if (now >= not_after)
                        buf_put_json_str(out, "the serving certificate has expired");
                else {
                        char msg[300];
                        snprintf(msg, sizeof msg, "namespaces not listed yet: %s", ns_why);
                        buf_put_json_str(out, msg);
                }
        }
        buf_puts(out, "}\n");
        snapshot_release(sv->policy, token);
        return ok;
}

void serve_render_metrics(void *ctx, struct buf *out)
{
        struct serve *sv = ctx;
        unsigned token;
        const struct policy *p = snapshot_acquire(sv->policy, &token);
        struct metrics_state st = {
                .policy_sha256 = p ? policy_sha256(p) : NULL,
                .cert_not_after = (time_t)atomic_load(&sv->cert_not_after),
                .namespaces_watched = sv->namespaces != NULL,
                .namespaces = sv->namespaces ? nscache_size(sv->namespaces) : 0,
                .watch_restarts = sv->namespaces ? nscache_restarts(sv->namespaces) : 0,
                .request_memory_bytes = budget_used(&sv->memory),
                .request_memory_limit_bytes = sv->memory.limit,
                .request_memory_refused = atomic_load(&sv->memory.refused),
                .policy_reload_failing = atomic_load(&sv->reload_failing),
                .policy_loaded_at = (time_t)atomic_load(&sv->policy_loaded_at),
        };
        if (sv->namespaces) {
                unsigned long made, refused;
                nscache_fetch_stats(sv->namespaces, &made, &refused);
                st.namespace_reads = made;
                st.namespace_reads_refused = refused;
        }
        struct conntrack_stats cs = { 0 };
        struct server *server = __atomic_load_n(&sv->server, __ATOMIC_ACQUIRE);   /* set once it serves */
        if (server)
                server_connection_stats(server, &cs);
        st.open_connections = cs.open;
        st.closed_header_timeout = cs.header_timeouts;
        st.closed_body_timeout = cs.body_timeouts;
        st.closed_idle_timeout = cs.idle_timeouts;
        st.closed_evicted = cs.evicted;
        st.connections_refused = cs.refused;
        metrics_render(&st, out);   /* the policy stays held while its sha256 is written */
        snapshot_release(sv->policy, token);
}
