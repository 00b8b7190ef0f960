/* A small Kubernetes API client over libcurl: where the API server is and
 * how to authenticate (in-cluster service account, or a kubeconfig file),
 * a bounded GET, and a streamed GET for watches.
 *
 * Library-style: returns 0 or a negative errno, with a message in the
 * caller's `err`; never logs. A struct kube is read-only after it is made
 * and may be used from several threads at once (each call uses its own curl
 * handle), but for an exec plugin's credential, which exec_credential.h
 * keeps under its own lock. Call kube_global_init() once before any thread
 * starts. */
#pragma once
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

struct kube;

#define KUBE_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

/* libcurl's global setup. 0 or -EIO. */
int kube_global_init(void);

/* The in-cluster configuration: KUBERNETES_SERVICE_HOST and _PORT, the
 * service-account token and CA in `sa_dir` (KUBE_SA_DIR in a pod). The token
 * is read again at every connection, so a rotated token is picked up.
 * -ENOENT when not in a cluster (no KUBERNETES_SERVICE_HOST). */
int kube_in_cluster(const char *sa_dir, struct kube **ret_kube, char *err, size_t errlen);

/* The configuration of a kubeconfig's context, as kubectl reads it: `path`
 * alone, or with `path` NULL the files of $KUBECONFIG (':'-separated, merged
 * by kubeconfig.h's rules, missing ones skipped) else ~/.kube/config; the
 * context `context`, or with NULL the current-context. From it: the
 * cluster's server and CA (file or data), and the user's bearer token (token
 * or tokenFile), client certificate and key (file or data), or exec plugin
 * (exec_credential.h: run when a call first needs a credential, again when
 * it expires or the API server answers 401; a kube_get() that got 401 is
 * made again once with the new credential). auth-provider is refused with a
 * message, as is insecure-skip-tls-verify. -EINVAL, -ENOENT (no file) or
 * another negative errno, with a message naming the file. */
int kube_from_kubeconfig_context(const char *path, const char *context, struct kube **ret_kube, char *err,
                                 size_t errlen);

/* kube_from_kubeconfig_context(path, NULL, ...). */
int kube_from_kubeconfig(const char *path, struct kube **ret_kube, char *err, size_t errlen);

void kube_free(struct kube *k);

/* The API server's URL, for messages. */
const char *kube_server(const struct kube *k);

/* Appends `s` percent-encoded for a query value or a path segment (a
 * continue token, a namespace name). 0 or a negative errno. */
int kube_put_query_value(struct buf *b, const char *s);

/* GETs `path` (like "/api/v1/namespaces?limit=500") into `out`, bounded by
 * out's max, within `timeout_ms`. 0 with the HTTP status in *ret_status (any
 * status: the caller judges); a negative errno when no answer came, with
 * the reason in `err`. -E2BIG when the answer passed out's max: then
 * *ret_status is the status that came and `out` holds the answer's first
 * bytes (-E2BIG with *ret_status untouched: the path is too long). */
int kube_get(const struct kube *k, const char *path, unsigned timeout_ms, struct buf *out, long *ret_status, char *err,
             size_t errlen);

/* The body of a write request; the caller owns it. */
struct kube_body {
        const char *data;
        size_t len;                     /* at most WH_KUBE_MAX_REQUEST_BYTES */
        const char *content_type;       /* NULL: application/json */
};

/* A request with any method ("POST", "PUT", "DELETE", "PATCH", "GET") to
 * `path`, with `body` (NULL: none), bounded and timed as kube_get() is: the
 * answer into `out` within out's max, within `timeout_ms`. 0 with the HTTP
 * status in *ret_status (any status: the caller judges); a negative errno
 * when no answer came, with the reason in `err`; -E2BIG for a body past
 * WH_KUBE_MAX_REQUEST_BYTES (nothing sent) or an answer past out's max. */
int kube_request(const struct kube *k, const char *method, const char *path, const struct kube_body *body,
                 unsigned timeout_ms, struct buf *out, long *ret_status, char *err, size_t errlen);

/* GETs `path` and hands each line of the body to on_line() as it arrives
 * (a watch). Lines longer than WH_KUBE_MAX_EVENT_BYTES fail the call with
 * -E2BIG. Ends when the server ends the body, when on_line() returns
 * non-zero (that value is returned), or when *stop becomes true (-ECANCELED).
 * *ret_status is the HTTP status. */
int kube_stream(const struct kube *k, const char *path, int (*on_line)(void *ctx, const char *line, size_t len),
                void *ctx, const atomic_bool *stop, long *ret_status, char *err, size_t errlen);
