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
#include "review.h"

struct admission {
        int status;                  /* HTTP status of the answer */
        struct buf body;             /* the answer: an AdmissionReview, or a Status on errors */
        bool decided;                /* review and mutation below are filled */
        struct review review;
        struct mutation mutation;
        char error[256];             /* why, when status is not 200 */
};

/* Prepares an empty result; `max_response` bounds the answer's size. */
void admission_init(struct admission *a, size_t max_response);

/* Answers one AdmissionReview body. Always fills a->status and a->body
 * (400 with a Status for a body that is not a review, 500 when memory or a
 * bound ran out); returns 0, or a negative errno when even the error body
 * could not be written. */
int admission_handle(const struct policy *p, const char *body, size_t len, struct admission *a);

/* Releases everything in the result. */
void admission_free(struct admission *a);
