/* Prometheus metrics: see include/io/metrics.h and include/io/metrics_admission.h. */
#include "metrics.h"
#include "metrics_admission.h"

#include <stdatomic.h>
#include <stdio.h>

#define NS "spark_identity_webhook_"

/* Latency buckets, µs: 50 µs to 1 s. */
static const uint64_t bucket_us[] = { 50,    100,   250,   500,    1000,   2500,   5000,
                                      10000, 25000, 50000, 100000, 250000, 500000, 1000000 };
#define N_BUCKETS (sizeof bucket_us / sizeof bucket_us[0])

/* HTTP statuses counted as bad requests, and one slot for any other. */
static const int bad_statuses[] = { 400, 404, 405, 408, 413, 415, 500, 503 };
#define N_BAD (sizeof bad_statuses / sizeof bad_statuses[0])

static atomic_uint_fast64_t admissions[DECISION_MAX][POD_ROLE_MAX];
static atomic_uint_fast64_t latency_le[N_BUCKETS + 1];   /* last: +Inf */
static atomic_uint_fast64_t latency_sum_us;
static atomic_uint_fast64_t bad[N_BAD + 1];              /* last: other */
static atomic_uint_fast64_t policy_reloads[2];           /* [ok] */
static atomic_uint_fast64_t cert_reloads[2];

void metrics_admission(enum decision d, enum pod_role role, uint64_t micros)
{
        if (d < DECISION_MAX && role < POD_ROLE_MAX)
                atomic_fetch_add_explicit(&admissions[d][role], 1, memory_order_relaxed);
        size_t b = 0;
        while (b < N_BUCKETS && micros > bucket_us[b])
                b++;
        atomic_fetch_add_explicit(&latency_le[b], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&latency_sum_us, micros, memory_order_relaxed);
}

void metrics_bad_request(int status)
{
        size_t i = 0;
        while (i < N_BAD && bad_statuses[i] != status)
                i++;
        atomic_fetch_add_explicit(&bad[i], 1, memory_order_relaxed);
}

void metrics_policy_reload(bool ok)
{
        atomic_fetch_add_explicit(&policy_reloads[ok], 1, memory_order_relaxed);
}

void metrics_certificate_reload(bool ok)
{
        atomic_fetch_add_explicit(&cert_reloads[ok], 1, memory_order_relaxed);
}

static uint64_t get(atomic_uint_fast64_t *a)
{
        return atomic_load_explicit(a, memory_order_relaxed);
}

#define P(...)                                            \
        do {                                              \
                if (r == 0)                               \
                        r = buf_printf(out, __VA_ARGS__); \
        } while (0)

/* The admission decisions (metrics_admission.h) and their latency histogram. */
static int render_admissions(struct buf *out)
{
        int r = 0;
        P("# HELP " NS "admission_requests_total Admission decisions, by decision and Spark role.\n"
          "# TYPE " NS "admission_requests_total counter\n");
        for (int d = 0; d < DECISION_MAX; d++)
                for (int role = 0; role < POD_ROLE_MAX; role++)
                        P(NS "admission_requests_total{decision=\"%s\",role=\"%s\"} %llu\n",
                          mutate_decision_name((enum decision)d), role ? mutate_role_name((enum pod_role)role) : "none",
                          (unsigned long long)get(&admissions[d][role]));

        P("# HELP " NS "admission_duration_seconds Time from a review's body to its answer.\n"
          "# TYPE " NS "admission_duration_seconds histogram\n");
        uint64_t cumulative = 0;
        for (size_t b = 0; b < N_BUCKETS; b++) {
                cumulative += get(&latency_le[b]);
                P(NS "admission_duration_seconds_bucket{le=\"%g\"} %llu\n", (double)bucket_us[b] / 1e6,
                  (unsigned long long)cumulative);
        }
        cumulative += get(&latency_le[N_BUCKETS]);
        P(NS "admission_duration_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cumulative);
        P(NS "admission_duration_seconds_sum %.6f\n", (double)get(&latency_sum_us) / 1e6);
        P(NS "admission_duration_seconds_count %llu\n", (unsigned long long)cumulative);
        return r;
}

int metrics_render(const struct metrics_state *st, struct buf *out)
{
        int r = 0;
        P("# HELP " NS "build_info The version of the server.\n# TYPE " NS "build_info gauge\n");
        P(NS "build_info{version=\"%s\"} 1\n", WH_VERSION);

        if (r == 0)
                r = render_admissions(out);

        P("# HELP " NS "bad_requests_total Requests answered with an HTTP error, by status.\n"
          "# TYPE " NS "bad_requests_total counter\n");
        for (size_t i = 0; i < N_BAD; i++)
                P(NS "bad_requests_total{code=\"%d\"} %llu\n", bad_statuses[i], (unsigned long long)get(&bad[i]));
        P(NS "bad_requests_total{code=\"other\"} %llu\n", (unsigned long long)get(&bad[N_BAD]));

        P("# HELP " NS "policy_reloads_total Policy reloads, applied or refused.\n"
          "# TYPE " NS "policy_reloads_total counter\n");
        P(NS "policy_reloads_total{result=\"ok\"} %llu\n", (unsigned long long)get(&policy_reloads[1]));
        P(NS "policy_reloads_total{result=\"failed\"} %llu\n", (unsigned long long)get(&policy_reloads[0]));
        P("# HELP " NS "policy_reload_failing Whether the last policy reload was refused (the old policy "
          "keeps serving).\n# TYPE " NS "policy_reload_failing gauge\n");
        P(NS "policy_reload_failing %d\n", st->policy_reload_failing ? 1 : 0);
        P("# HELP " NS "policy_last_reload_success_timestamp_seconds When a policy last loaded: at the start, "
          "or a reload that applied it or found it unchanged.\n"
          "# TYPE " NS "policy_last_reload_success_timestamp_seconds gauge\n");
        P(NS "policy_last_reload_success_timestamp_seconds %lld\n", (long long)st->policy_loaded_at);
        P("# HELP " NS "certificate_reloads_total Serving certificate reloads, applied or refused.\n"
          "# TYPE " NS "certificate_reloads_total counter\n");
        P(NS "certificate_reloads_total{result=\"ok\"} %llu\n", (unsigned long long)get(&cert_reloads[1]));
        P(NS "certificate_reloads_total{result=\"failed\"} %llu\n", (unsigned long long)get(&cert_reloads[0]));

        P("# HELP " NS "policy_info The policy in force.\n# TYPE " NS "policy_info gauge\n");
        P(NS "policy_info{sha256=\"%s\"} 1\n", st->policy_sha256 ? st->policy_sha256 : "");
        P("# HELP " NS "certificate_expiry_timestamp_seconds When the serving certificate expires.\n"
          "# TYPE " NS "certificate_expiry_timestamp_seconds gauge\n");
        P(NS "certificate_expiry_timestamp_seconds %lld\n", (long long)st->cert_not_after);
        P("# HELP " NS "open_connections Connections open on the HTTPS port.\n"
          "# TYPE " NS "open_connections gauge\n");
        P(NS "open_connections %llu\n", (unsigned long long)st->open_connections);
        P("# HELP " NS "connections_closed_total Connections the server closed: a handshake and headers, a "
          "body, or a keep-alive past its absolute deadline, or evicted to make room at the limit.\n"
          "# TYPE " NS "connections_closed_total counter\n");
        P(NS "connections_closed_total{reason=\"header-timeout\"} %llu\n",
          (unsigned long long)st->closed_header_timeout);
        P(NS "connections_closed_total{reason=\"body-timeout\"} %llu\n", (unsigned long long)st->closed_body_timeout);
        P(NS "connections_closed_total{reason=\"idle-timeout\"} %llu\n", (unsigned long long)st->closed_idle_timeout);
        P(NS "connections_closed_total{reason=\"evicted\"} %llu\n", (unsigned long long)st->closed_evicted);
        P("# HELP " NS "connections_refused_total New connections refused: no room could be made.\n"
          "# TYPE " NS "connections_refused_total counter\n");
        P(NS "connections_refused_total %llu\n", (unsigned long long)st->connections_refused);
        P("# HELP " NS "request_memory_bytes Memory the bodies and parses of requests in flight hold.\n"
          "# TYPE " NS "request_memory_bytes gauge\n");
        P(NS "request_memory_bytes %llu\n", (unsigned long long)st->request_memory_bytes);
        P("# HELP " NS "request_memory_limit_bytes Their budget (--request-memory).\n"
          "# TYPE " NS "request_memory_limit_bytes gauge\n");
        P(NS "request_memory_limit_bytes %llu\n", (unsigned long long)st->request_memory_limit_bytes);
        P("# HELP " NS "request_memory_refused_total Requests refused because the budget was in use.\n"
          "# TYPE " NS "request_memory_refused_total counter\n");
        P(NS "request_memory_refused_total %llu\n", (unsigned long long)st->request_memory_refused);
        if (st->namespaces_watched) {
                P("# HELP " NS "namespace_cache_size Namespaces held in the cache.\n"
                  "# TYPE " NS "namespace_cache_size gauge\n");
                P(NS "namespace_cache_size %llu\n", (unsigned long long)st->namespaces);
                P("# HELP " NS
                  "namespace_watch_restarts_total Namespace watches restarted after an error or 410 Gone.\n"
                  "# TYPE " NS "namespace_watch_restarts_total counter\n");
                P(NS "namespace_watch_restarts_total %llu\n", (unsigned long long)st->watch_restarts);
                P("# HELP " NS "namespace_reads_total Reads of namespaces missing from the cache: made, or "
                  "refused by the caps (4 at once, 10 a second).\n"
                  "# TYPE " NS "namespace_reads_total counter\n");
                P(NS "namespace_reads_total{result=\"made\"} %llu\n", (unsigned long long)st->namespace_reads);
                P(NS "namespace_reads_total{result=\"refused\"} %llu\n",
                  (unsigned long long)st->namespace_reads_refused);
        }
#undef P
        return r;
}
