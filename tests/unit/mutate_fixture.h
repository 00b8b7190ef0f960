/* What the unit tests of the admission decision share: a policy loaded
 * from text, a pod decided on in a namespace with no labels or annotations,
 * the patch parsed back, and a look for a warning. Include after cmocka.h;
 * the fixture owns the policy, the pod, the mutation and the parsed patch. */
#pragma once
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "mutate.h"
#include "policy.h"
#include "pool.h"

#include "fixture_files.h"

struct fixture {
        struct policy *policy;
        cJSON *pod;
        struct mutation m;
        cJSON *ops;     /* the patch, parsed; NULL when there is none or the pod is refused */
};

static inline struct fixture *fixture_new(const char *policy_text)
{
        struct fixture *f = calloc(1, sizeof *f);
        assert_non_null(f);
        f->policy = load_policy(policy_text);
        mutation_init(&f->m);
        return f;
}

/* Forgets the pod, its mutation and patch, so that the fixture decides anew. */
static inline void fixture_reset(struct fixture *f)
{
        cJSON_Delete(f->ops);
        cJSON_Delete(f->pod);
        f->ops = NULL;
        f->pod = NULL;
        mutation_free(&f->m);
        mutation_init(&f->m);
}

static inline int fixture_teardown(void **state)
{
        struct fixture *f = *state;
        fixture_reset(f);
        mutation_free(&f->m);
        policy_free(f->policy);
        free(f);
        return 0;
}

/* Decides as admission does, for a namespace with no labels or annotations. */
static inline int fixture_decide(const struct policy *p, const char *ns, const cJSON *pod, struct mutation *m)
{
        struct pool pool = POOL_INIT;
        struct resolution res;
        struct ns_info none = { 0 };
        int r = policy_resolve(p, ns, &none, &pool, &res);
        if (r == 0) {
                struct mutate_context mc = { .res = &res };
                r = mutate_pod(p, ns, &mc, pod, m);
        }
        pool_free(&pool);
        return r;
}

/* Decides on `pod` (the fixture takes it) in `ns` and parses the patch. */
static inline void fixture_run(struct fixture *f, const char *ns, cJSON *pod)
{
        f->pod = pod;
        assert_int_equal(fixture_decide(f->policy, ns, f->pod, &f->m), 0);
        if (f->m.patch.n_ops && f->m.decision != DECISION_DENIED) {   /* a refusal's patch is unfinished */
                f->ops = cJSON_Parse(f->m.patch.text.data);
                assert_non_null(f->ops);
                assert_int_equal(cJSON_GetArraySize(f->ops), (int)f->m.patch.n_ops);
        }
}

static inline bool has_warning(const struct mutation *m, const char *part)
{
        for (unsigned i = 0; i < m->n_warnings; i++)
                if (strstr(m->warnings[i], part))
                        return true;
        return false;
}
