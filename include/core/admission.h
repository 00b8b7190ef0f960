/* One admission request from body bytes to response bytes: parse the
 * review, decide with the policy, write the answer. The server and the
 * `mutate` command both call this, so they answer alike.
 *
 * Pure: no I/O, no globals, no locks. What the decision needs from the
 * world (the namespace's labels and annotations) is read by the caller
 * before and handed in as data; how the parsed tree's memory comes back is
 * the caller's to say (admission_free(), admission_free_arena()). */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "mutate.h"
#include "policy.h"
#include "pool.h"
#include "review.h"

/* What the caller found out about the review's namespace before the
 * decision (the server reads it before taking the policy, so that no read
 * of the API runs inside the decision). */
enum ns_state {
        NS_NOT_READ,            /* nobody read it: nothing is known */
        NS_FOUND,               /* `info` holds its labels and annotations */
        NS_ABSENT,              /* there is no such namespace */
        NS_UNREADABLE,          /* it could not be read now: `error` says why */
};

struct ns_known {
        enum ns_state state;
        struct ns_info info;    /* NS_FOUND: points into the reader's memory, valid during the decision */
        char error[160];        /* NS_UNREADABLE, NS_NOT_READ: why */
};

/* Which webhook asked: the mutating one (POST /mutate) changes Spark pods
 * on CREATE; the validating one (POST /validate) runs after every mutating
 * webhook and only judges: the identity a pod claims, and namespace grant
 * keys. Both judge claims on pod CREATE and UPDATE and namespace changes. */
enum admission_path {
        ADMISSION_MUTATE,
        ADMISSION_VALIDATE,
};

struct admission {
        enum admission_path path;    /* set after admission_init(); MUTATE by default */
        int status;                  /* HTTP status of the answer */
        struct buf body;             /* the answer: an AdmissionReview, or a Status on errors */
        bool decided;                /* review and mutation below are filled */
        struct review review;
        struct mutation mutation;
        struct resolution resolution;   /* the namespace's rule */
        struct pool pool;            /* a rule made from annotations lives here */
        char lookup_error[160];      /* why the namespace could not be read */
        char error[256];             /* why, when status is not 200 */
};

/* Prepares an empty result; `max_response` bounds the answer's size. */
void admission_init(struct admission *a, size_t max_response);

/* The two halves of admission_handle(), for a caller that reads the
 * namespace in between. admission_parse(): 0 when the review parsed (then
 * admission_namespace() names the namespace to read, or NULL when the
 * decision needs none: not a pod, or a policy that names it); 1 when it did
 * not, and the answer (400/500) is in a->status and a->body; a negative
 * errno when even that answer could not be written. */
int admission_parse(struct admission *a, const char *body, size_t len);
const char *admission_namespace(const struct admission *a, const struct policy *p);

/* Decides on a parsed review with what is known of its namespace and
 * writes the answer. Returns 0, or a negative errno when even the error
 * body could not be written. */
int admission_decide(const struct policy *p, const struct ns_known *ns, struct admission *a);

/* Answers one AdmissionReview body: a pod CREATE on the mutating path gets
 * mutate_pod(); any other pod CREATE or UPDATE (subresources whose object is
 * the Pod included) gets mutate_claim(); a namespace CREATE or UPDATE gets
 * grants_judge(); anything else is allowed unchanged. On the validating path
 * the answer never carries a patch. `known` is what the caller knows of the
 * review's namespace, whichever it is (the `mutate` command: what its flags
 * say), used when the policy needs it; NULL: nothing is known of it. Always
 * fills a->status and a->body (400 with a Status for a body that is not a
 * review, 500 when memory or a bound ran out); returns 0, or a negative errno
 * when even the error body could not be written. */
int admission_handle(const struct policy *p, const struct ns_known *known, const char *body, size_t len,
                     struct admission *a);

/* Releases everything in the result. */
void admission_free(struct admission *a);

/* Releases everything but the parsed review's cJSON tree, which the caller
 * says is its arena's (arena.h: parsed inside the bracket, and arena_end()
 * follows and takes it back whole; deleting it node by node would only walk
 * it, 7% of an admission). Use admission_free() when in doubt. */
void admission_free_arena(struct admission *a);
