/* Prometheus metrics of the server: counters and a latency histogram kept in
 * atomics, so that requests never wait on a lock and a scrape formats them
 * without stopping anyone. This header is what any layer may count (HTTP
 * errors, reloads) and the scrape; the admission decisions, which speak of
 * Spark, are counted through metrics_admission.h.
 *
 * Process-wide (one server per process). */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"

/* A request answered with an HTTP error (400, 404, 405, 413, 415, 500...). */
void metrics_bad_request(int status);

/* A policy or certificate reload that was applied or refused. */
void metrics_policy_reload(bool ok);
void metrics_certificate_reload(bool ok);

/* What a scrape reports besides the counters. */
struct metrics_state {
        const char *policy_sha256;     /* in force */
        time_t cert_not_after;
        bool namespaces_watched;       /* the two below mean something */
        uint64_t namespaces;           /* in the cache */
        uint64_t watch_restarts;
        uint64_t namespace_reads, namespace_reads_refused;   /* of missing namespaces (nscache.h) */
        /* Connections (conntrack.h) and the request memory (budget.h). */
        uint64_t open_connections;
        uint64_t closed_header_timeout, closed_body_timeout, closed_idle_timeout, closed_evicted;
        uint64_t connections_refused;
        uint64_t request_memory_bytes, request_memory_limit_bytes, request_memory_refused;
        /* The policy's reloads: the last one refused (the old policy serves),
         * and when a policy last loaded. */
        bool policy_reload_failing;
        time_t policy_loaded_at;
};

/* Writes the Prometheus text format (version 0.0.4). 0 or -ENOBUFS/-ENOMEM. */
int metrics_render(const struct metrics_state *st, struct buf *out);
