/* What the `serve` command's HTTPS handlers share with its main loop: the
 * state (struct serve) and the handlers the server calls from its worker
 * threads (webhook/cmd/serve_admit.c).
 *
 * Ownership: struct serve owns its policy snapshot and its namespace cache;
 * cmd_serve() makes and releases them. The paths point into argv. The
 * handlers own nothing past their call: an answer goes into the caller's
 * buffer. */
#pragma once
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "budget.h"
#include "buf.h"
#include "nscache.h"
#include "server.h"
#include "snapshot.h"
#include "webhook_limits.h"

struct serve {
        struct snapshot *policy;        /* const struct policy * */
        struct nscache *namespaces;     /* NULL without a Kubernetes API to read */
        const char *policy_path;
        const char *policy_key;         /* the policy file's name in its directory: the policy
                                           ConfigMap's data key (POST /validate-policy) */
        struct stat policy_stat;        /* of the file last loaded, to notice changes */
        struct server *server;
        const char *cert_path, *key_path;
        struct stat cert_stat, key_stat; /* of the pair last loaded */
        atomic_llong cert_not_after;    /* time_t */
        atomic_bool stopping;
        struct budget memory;           /* bodies and parses of requests in flight */
        /* The policy's reloads, for /readyz and /metrics: whether the last
         * one was refused (the old policy keeps serving) and why (its first
         * problem), and when a policy last loaded (at the start, or a reload
         * that applied it or found it unchanged). The main loop writes them. */
        atomic_bool reload_failing;
        atomic_llong policy_loaded_at;  /* time_t */
        pthread_mutex_t reload_lock;    /* guards reload_refused */
        char reload_refused[WH_POLICY_REFUSED_LINE_MAX_CHARS];
};

/* The server_handler callbacks; `ctx` is a struct serve. */
void serve_admit(void *ctx, enum server_path path, const char *body, size_t len, uint64_t deadline_ns, int *ret_status,
                 struct buf *out);
bool serve_ready(void *ctx, struct buf *out);
void serve_render_metrics(void *ctx, struct buf *out);

/* Microseconds on CLOCK_MONOTONIC since `t0`. */
long long serve_micros_since(const struct timespec *t0);
