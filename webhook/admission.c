/* One admission request, body to body: see include/admission.h. */
#include "admission.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

void admission_init(struct admission *a, size_t max_response)
{
        memset(a, 0, sizeof *a);
        buf_init(&a->body, max_response);
        mutation_init(&a->mutation);
}

void admission_free(struct admission *a)
{
        buf_free(&a->body);
        mutation_free(&a->mutation);
        review_free(&a->review);
        a->decided = false;
}

static int fail(struct admission *a, int status, const char *message)
{
        a->status = status;
        if (message != a->error)
                snprintf(a->error, sizeof a->error, "%s", message);
        buf_reset(&a->body);
        return review_status_body(&a->body, status, a->error);
}

int admission_handle(const struct policy *p, const char *body, size_t len, struct admission *a)
{
        int r = review_parse(body, len, &a->review, a->error, sizeof a->error);
        if (r == -ENOMEM)
                return fail(a, 500, "out of memory");
        if (r < 0)
                return fail(a, 400, a->error);

        const struct review *rv = &a->review;
        bool create = rv->operation && strcmp(rv->operation, "CREATE") == 0;
        if (rv->is_pod && create) {
                r = mutate_pod(p, rv->namespace_, rv->object, &a->mutation);
                if (r == -E2BIG)
                        return fail(a, 500, "the patch for this pod would pass its size bounds");
                if (r < 0)
                        return fail(a, 500, "out of memory");
        }
        a->decided = true;
        a->status = 200;
        r = review_respond(rv, &a->mutation, &a->body);
        if (r < 0)
                return fail(a, 500, "the response would pass its size bound");
        return 0;
}
