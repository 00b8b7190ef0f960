/* One admission request, body to body: see include/core/admission.h. */
#include "admission.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "grants.h"

void admission_init(struct admission *a, size_t max_response)
{
        /* All but the mutation, which mutation_init() prepares without
         * writing its WH_MAX_CHANGES changes: zeroing them would cost every
         * request more than deciding does. */
        size_t mutation_at = offsetof(struct admission, mutation), after = mutation_at + sizeof a->mutation;
        memset(a, 0, mutation_at);
        memset((char *)a + after, 0, sizeof *a - after);
        buf_init(&a->body, max_response);
        mutation_init(&a->mutation);
}

void admission_free(struct admission *a)
{
        buf_free(&a->body);
        mutation_free(&a->mutation);
        review_free(&a->review);
        pool_free(&a->pool);
        a->decided = false;
}

void admission_free_arena(struct admission *a)
{
        a->review.root = NULL;   /* the arena's: arena_end() takes it back */
        admission_free(a);
}

/* Finds the namespace's rule from what the caller read of it (when the
 * policy needs it for this one). */
static int resolve(const struct policy *p, const struct ns_known *known, const char *ns, struct admission *a)
{
        if (!policy_needs_namespace(p, ns))
                return policy_resolve(p, ns, NULL, &a->pool, &a->resolution);
        static const struct ns_info none = { 0 };
        switch (known ? known->state : NS_NOT_READ) {
        case NS_FOUND: return policy_resolve(p, ns, &known->info, &a->pool, &a->resolution);
        case NS_ABSENT: return policy_resolve(p, ns, &none, &a->pool, &a->resolution); /* no labels, no annotations */
        case NS_UNREADABLE: snprintf(a->lookup_error, sizeof a->lookup_error, "%s", known->error); break;
        case NS_NOT_READ:
        default:
                snprintf(a->lookup_error, sizeof a->lookup_error, "%s",
                         known && known->error[0] ? known->error : "the server has no namespace source");
                break;
        }
        return policy_resolve(p, ns, NULL, &a->pool, &a->resolution);
}

static int fail(struct admission *a, int status, const char *message)
{
        a->status = status;
        if (message != a->error)
                snprintf(a->error, sizeof a->error, "%s", message);
        buf_reset(&a->body);
        return review_status_body(&a->body, status, a->error);
}

/* The requesting user's groups as strings, for grants_judge(). */
static int user_of(const struct review *rv, struct pool *pool, struct grants_user *ret)
{
        size_t n = (size_t)cJSON_GetArraySize(rv->groups);
        const char **groups = pool_alloc(pool, (n ? n : 1) * sizeof *groups);
        if (!groups)
                return -ENOMEM;
        size_t k = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, rv->groups)
                if (cJSON_IsString(it))
                        groups[k++] = it->valuestring;
        *ret = (struct grants_user){ .name = rv->username, .groups = groups, .n_groups = k };
        return 0;
}

static int decide(const struct policy *p, const struct ns_known *known, struct admission *a)
{
        const struct review *rv = &a->review;
        bool create = rv->operation && strcmp(rv->operation, "CREATE") == 0;
        bool update = rv->operation && strcmp(rv->operation, "UPDATE") == 0;
        if (!create && !update)
                return 0;
        if (rv->is_namespace) {
                struct grants_user user;
                int r = user_of(rv, &a->pool, &user);
                return r < 0 ? r
                             : grants_judge(p, &user, update ? rv->old_object : NULL, rv->object, &a->pool,
                                            &a->mutation);
        }
        if (!rv->is_pod)
                return 0;
        if (resolve(p, known, rv->namespace_, a) < 0)
                return -ENOMEM;
        struct mutate_context mc = { .res = &a->resolution, .lookup_error = a->lookup_error };
        if (a->path == ADMISSION_MUTATE && create && !*rv->subresource)
                return mutate_pod(p, rv->namespace_, &mc, rv->object, &a->mutation);
        return mutate_claim(p, rv->namespace_, &mc, update ? rv->old_object : NULL, rv->object, &a->mutation);
}

int admission_parse(struct admission *a, const char *body, size_t len)
{
        int r = review_parse(body, len, &a->review, a->error, sizeof a->error);
        if (r == 0)
                return 0;
        r = r == -ENOMEM ? fail(a, 500, "out of memory") : fail(a, 400, a->error);
        return r < 0 ? r : 1;
}

const char *admission_namespace(const struct admission *a, const struct policy *p)
{
        const struct review *rv = &a->review;
        if (!rv->is_pod || !rv->namespace_ || !policy_needs_namespace(p, rv->namespace_))
                return NULL;
        return rv->namespace_;
}

int admission_decide(const struct policy *p, const struct ns_known *known, struct admission *a)
{
        a->mutation.policy_sha256 = policy_sha256(p);
        int r = decide(p, known, a);
        if (r == -E2BIG)
                return fail(a, 500, "the patch for this pod would pass its size bounds");
        if (r < 0)
                return fail(a, 500, "out of memory");
        a->decided = true;
        a->status = 200;
        r = review_respond(&a->review, &a->mutation, &a->body);
        if (r < 0)
                return fail(a, 500, "the response would pass its size bound");
        return 0;
}

int admission_handle(const struct policy *p, const struct ns_known *known, const char *body, size_t len,
                     struct admission *a)
{
        int r = admission_parse(a, body, len);
        if (r != 0)
                return r < 0 ? r : 0; /* answered with 400 or 500 */
        /* What is known applies only where the namespace would have been read. */
        return admission_decide(p, admission_namespace(a, p) ? known : NULL, a);
}
