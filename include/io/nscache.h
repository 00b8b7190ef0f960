/* The cluster's namespaces, kept in memory: one thread lists them, then
 * watches for changes (re-listing after 410 Gone, reconnecting with
 * backoff), and publishes each new state as an immutable snapshot. Requests
 * read the snapshot without locks and without calling the API; a namespace
 * not in it yet is fetched once with a short timeout.
 *
 * Only labels and the spark-identity.io/ annotations are kept.
 *
 * Ownership: the cache borrows the struct kube, which must outlive it. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"

struct kube;
struct nscache;

/* Starts the watcher thread. 0 or a negative errno. */
int nscache_start(const struct kube *k, struct nscache **ret_cache);

/* Stops the thread and frees everything. NULL is fine. */
void nscache_stop(struct nscache *c);

/* Whether the first list has completed. When not, writes why to `why`. */
bool nscache_ready(struct nscache *c, char *why, size_t whylen);

/* What is known of namespace `name`, valid until nscache_done() on the same
 * thread (which must follow every lookup). 0; -ENOENT when the namespace
 * does not exist (or cannot: a name that is not an RFC 1123 label is never
 * asked for); another negative errno when it cannot be known now, with the
 * reason in `err`.
 *
 * A namespace not in the cache is read from the API so that callers cannot
 * drive reads: the answer (found or not) is kept WH_NS_RECENT_TTL_MS, one
 * read per name runs at a time (others wait for its answer), at most
 * WH_NS_FETCH_INFLIGHT_MAX at once and WH_NS_FETCH_PER_SECOND a second
 * (-EAGAIN past them), each bounded by `deadline_ns` (CLOCK_MONOTONIC: the
 * API server's ?timeout=) and WH_KUBE_LOOKUP_TIMEOUT_MS. */
int nscache_lookup(struct nscache *c, const char *name, uint64_t deadline_ns, struct ns_info *ret_info, char *err,
                   size_t errlen);
void nscache_done(struct nscache *c);

/* Reads of missing namespaces made, and refused by the caps. */
void nscache_fetch_stats(const struct nscache *c, unsigned long *ret_fetches, unsigned long *ret_refused);

/* For metrics and logs: namespaces held, watches restarted, lists done. */
size_t nscache_size(struct nscache *c);
unsigned nscache_restarts(const struct nscache *c);
