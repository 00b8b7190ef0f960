/* One admission request from body bytes to response bytes: parse the
 * review, decide with the policy, write the answer. The server and the
 * `mutate` command both call this, so they answer alike.
 *
 * Pure: no I/O, no globals, no locks. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "mutate.h"
#include "policy.h"
#include "pool.h"
#include "review.h"

/* Where the namespaces' labels and annotations come from: the server's
 * cache of the cluster, or what the `mutate` command was told. */
struct ns_source {
        void *ctx;
        /* Fills *ret for namespace `name`; what it points to stays valid until
         * done(). 0; -ENOENT when there is no such namespace; another negative
         * errno when it cannot be known now, with the reason in `err`. */
        int (*lookup)(void *ctx, const char *name, struct ns_info *ret, char *err, size_t errlen);
        void (*done)(void *ctx);
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

/* Answers one AdmissionReview body: a pod CREATE on the mutating path gets
 * mutate_pod(); any other pod CREATE or UPDATE (subresources whose object is
 * the Pod included) gets mutate_claim(); a namespace CREATE or UPDATE gets
 * grants_judge(); anything else is allowed unchanged. On the validating path
 * the answer never carries a patch. `src` tells about namespaces when the
 * policy needs them (NULL: nothing is known of them). Always fills a->status
 * and a->body (400 with a Status for a body that is not a review, 500 when
 * memory or a bound ran out); returns 0, or a negative errno when even the
 * error body could not be written. */
int admission_handle(const struct policy *p, const struct ns_source *src, const char *body,
                     size_t len, struct admission *a);

/* Releases everything in the result. Inside an arena bracket (arena.h) the
 * parsed review is left to arena_end(), which takes it back whole. */
void admission_free(struct admission *a);
