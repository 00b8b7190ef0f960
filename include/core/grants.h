/* Namespace changes that touch grant keys: what gives a namespace its rule
 * besides its name (policy.h: any spark-identity.io/ annotation, and the
 * label keys that selectors read). Only the policy's grantors may add,
 * change or remove one; whoever may create or edit a namespace otherwise
 * could give it any identity.
 *
 * Pure: the namespace objects (cJSON trees owned by the caller) and the
 * requesting user in, a decision out. No I/O, no globals, no locks. */
#pragma once
#include <stddef.h>

#include <cjson/cJSON.h>

#include "mutate.h"
#include "policy.h"

struct grants_user {
        const char *name;                 /* request.userInfo.username; may be NULL */
        const char *const *groups;        /* its groups */
        size_t n_groups;
};

/* Judges a namespace CREATE (`old_ns` NULL) or UPDATE of `ns`. Allowed
 * unchanged when the policy reads no namespaces, when no grant key changes,
 * or when the user is a grantor; refused otherwise, the message naming the
 * keys and the grantors. A grantor's change whose annotations make no rule
 * is allowed with a warning that says why (its Spark pods will be refused).
 * Fills m (freshly initialized): decision, message, warnings, and
 * identity_before/after from the spark-identity.io/identity annotation.
 * `pool` holds what the warning's rule check needs; the caller frees it.
 * Returns 0, or -ENOMEM. */
int grants_judge(const struct policy *p, const struct grants_user *user, const cJSON *old_ns, const cJSON *ns,
                 struct pool *pool, struct mutation *m);
