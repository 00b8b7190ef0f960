/* AdmissionReview in and out: parses the API server's request
 * (admission.k8s.io/v1 and v1beta1) and writes the response, straight into a
 * buffer, without re-serializing the pod. Also the Kubernetes `Status` body
 * used for every HTTP error.
 *
 * Pure: no I/O, no globals. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

struct buf;
struct mutation;

struct review {
        cJSON *root;                 /* the parsed body; owned, freed by review_free() */
        const char *api_version;     /* the strings below point into root */
        const char *uid;
        const char *operation;       /* CREATE, UPDATE, DELETE, CONNECT */
        const char *namespace_;      /* request.namespace, NULL when absent */
        const char *name;            /* request.name, or the pod's name or generateName */
        const char *username;        /* request.userInfo.username */
        const cJSON *groups;         /* request.userInfo.groups, NULL when absent */
        bool dry_run;
        bool is_pod;                 /* core pods, and the object is the Pod: no subresource, or
                                        one whose object is the Pod (status, ephemeralcontainers,
                                        resize), which can change its labels too */
        bool is_namespace;           /* core namespaces, the object a Namespace (also status, finalize) */
        bool is_configmap;           /* core configmaps, no subresource */
        const char *subresource;     /* request.subResource, "" when none */
        const cJSON *object;         /* request.object, NULL when absent */
        const cJSON *old_object;     /* request.oldObject (UPDATE), NULL when absent */
};

/* Parses an AdmissionReview. 0 on success; -EINVAL with a message in `err`
 * for a body the API server would never send (400); -ENOMEM. On failure
 * nothing is kept. */
int review_parse(const char *body, size_t len, struct review *ret_review, char *err, size_t errlen);

/* What parsing `body` would take in memory, estimated from its structure
 * in one pass without parsing (a node per value: commas, brackets and
 * braces count them; its strings are at most the body): to refuse a review
 * that would pass a parse budget before spending the parse on it. */
size_t review_parse_cost(const char *body, size_t len);

/* Releases the parsed body. Safe on a zeroed review. */
void review_free(struct review *r);

/* Writes the response AdmissionReview for a decision to `out`: same
 * apiVersion, response.uid, allowed, patchType and base64 patch only when
 * something changes, warnings, auditAnnotations (identity, decision, rule,
 * policy-sha256) for pods that run Spark or claim an identity, and a 403
 * status with the message when refused. `m` may be NULL: allowed, nothing
 * to say. */
int review_respond(const struct review *r, const struct mutation *m, struct buf *out);

/* Writes the response AdmissionReview that refuses the request because
 * its object is invalid: same apiVersion and uid, allowed false, a status
 * 422 (reason Invalid, as the API server's own validation answers) with
 * `message`, which kubectl prints as it is. 0, or -ENOBUFS/-ENOMEM. */
int review_respond_invalid(const struct review *rv, const char *message, struct buf *out);

/* Writes a Kubernetes Status object (kind Status, status Failure) for an
 * HTTP error `code` with `message`, then a newline: the one writer of
 * Status bodies, for the server's HTTP errors (400, 404, 405, 413, 415,
 * 503) as for admission's (400, 413, 500, 503). `reason` is
 * metav1.StatusReason's name for the code: BadRequest, NotFound,
 * MethodNotAllowed, Timeout, Invalid (422), RequestEntityTooLarge, UnsupportedMediaType,
 * ServiceUnavailable; other codes take their class's, InternalError from
 * 500 up, BadRequest below. 0, or -ENOBUFS/-ENOMEM from `out` (then part of
 * the body may be written). */
int review_status_body(struct buf *out, int code, const char *message);
