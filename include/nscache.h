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

#include "policy.h"

struct kube;
struct nscache;

/* Starts the watcher thread. 0 or a negative errno. */
int nscache_start(const struct kube *k, struct nscache **ret);

/* Stops the thread and frees everything. NULL is fine. */
void nscache_stop(struct nscache *c);

/* Whether the first list has completed. When not, writes why to `why`. */
bool nscache_ready(struct nscache *c, char *why, size_t whylen);

/* What is known of namespace `name`, valid until nscache_done() on the same
 * thread (which must follow every lookup). 0; -ENOENT when the namespace
 * does not exist; another negative errno when it cannot be known now, with
 * the reason in `err`. */
int nscache_lookup(struct nscache *c, const char *name, struct ns_info *ret, char *err, size_t errlen);
void nscache_done(struct nscache *c);

/* For metrics and logs: namespaces held, watches restarted, lists done. */
size_t nscache_size(struct nscache *c);
unsigned nscache_restarts(const struct nscache *c);
