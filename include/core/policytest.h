/* Declarative tests of a policy, the way `kyverno test` and `gator verify`
 * test theirs: a test file names a policy and lists cases (a namespace, a
 * pod, an operation, and what admission is expected to answer); each case
 * is run through the same admission the server runs, the mutating webhook
 * then the validating one, and what it answered is compared with what the
 * case expects.
 *
 * policytest.c reads a test file; policytest_run.c runs one case.
 *
 * Pure: no I/O, no globals. The files a test file names (its policy, its
 * pods) are read by the caller and handed in as text.
 *
 * Ownership: a `struct ptest_file` owns its parsed document and every
 * string and node its cases point to; ptest_file_free() releases them. A
 * `struct ptest_result` owns its strings; ptest_result_free() releases them. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "policy.h"
#include "pool.h"

/* What the case expects; each part is checked only when the case says it. */
struct ptest_expect {
        int allowed;                    /* 1, 0; -1: not said */
        const char *message;            /* the refusal's message contains it; NULL: not said */
        const char *identity;           /* aadpodidbinding after admission, "none" for no label; NULL */
        const struct kv *env;           /* the Spark container's env after admission: name and value,
                                           value NULL for "not set" */
        size_t n_env;
        bool has_warnings;              /* `warnings` was given (an empty list: no warning at all) */
        const char *const *warnings;    /* each is contained in some warning */
        size_t n_warnings;
        int patched;                    /* 1, 0: the mutating webhook answered with a patch; -1 */
};

/* One case: a pod (`pod` or `pod_file`) created or updated in a namespace;
 * or, with no pod, a change to the namespace itself (its grant keys: who
 * may add, change or remove them), `namespace_` with its labels and
 * annotations as the object, `old_*` as it was for an UPDATE. Strings and
 * nodes point into the file's document or pool. */
struct ptest_case {
        const char *name;
        unsigned line, col;             /* where the case starts in the test file */
        const char *namespace_;
        const struct kv *labels, *annotations;
        size_t n_labels, n_annotations;
        bool namespace_case;            /* no pod: the namespace is what changes */
        const struct kv *old_labels, *old_annotations;   /* oldNamespace: for an UPDATE of it */
        size_t n_old_labels, n_old_annotations;
        const char *operation;          /* "CREATE" or "UPDATE" */
        const cJSON *pod;               /* inline, or NULL when pod_file names it */
        const char *pod_file;           /* as written: relative to the test file */
        const cJSON *old_pod;           /* UPDATE: inline, or NULL when old_pod_file names it */
        const char *old_pod_file;
        const char *username;           /* userInfo; NULL: the default user */
        const char *const *groups;
        size_t n_groups;
        struct ptest_expect expect;
};

struct ptest_file {
        struct doc *doc;
        struct pool pool;
        const char *policy_file;        /* `policy: PATH`, as written; NULL when inline */
        char *policy_text;              /* an inline policy: the test file's text with everything
                                           else blanked, so that a problem's LINE:COL is the test
                                           file's own (or the policy as JSON when it shares a line
                                           with another key; policy_text_is_json says so) */
        size_t policy_len;
        bool policy_text_is_json;
        unsigned policy_line, policy_col;   /* where `policy`'s value starts */
        struct ptest_case *cases;
        size_t n_cases;
};

/* Parses a test file (YAML or JSON). 0 and *ret_file (free with
 * ptest_file_free()); or -EINVAL (-ENOMEM, -E2BIG) with one line per problem
 * appended to `errors`, shaped "LINE:COL: where: message\n" like
 * policy_load()'s (policy_errors_prefix() puts the file name in front).
 * Unknown keys are problems, as in a policy. */
int ptest_file_parse(const char *text, size_t len, struct ptest_file **ret_file, struct buf *errors);

/* Releases a test file. NULL is fine. */
void ptest_file_free(struct ptest_file *f);

/* A pod file's text (YAML or JSON): a Pod, or an AdmissionReview whose
 * request.object is taken (so that a captured review serves as it is). 0
 * and *ret_root (the whole parsed tree: cJSON_Delete() it) and *ret_pod
 * (the pod, inside it); or -EINVAL/-ENOMEM with a message in `err`. */
int ptest_pod_parse(const char *text, size_t len, cJSON **ret_root, const cJSON **ret_pod, char *err, size_t errlen);

/* One difference between what was expected and what admission answered. */
struct ptest_diff {
        const char *what;               /* allowed, message, identity, env.NAME, warnings, patched */
        const char *want;
        const char *got;
};

struct ptest_result {
        bool pass;
        bool allowed;                   /* what admission answered: both webhooks together */
        bool patched;                   /* the mutating webhook sent a patch */
        const char *message;            /* the refusal's message; "" when allowed */
        const char *identity;           /* aadpodidbinding after admission; NULL: none */
        const char *const *warnings;    /* both webhooks', each once, in order */
        size_t n_warnings;
        struct ptest_diff *diffs;
        size_t n_diffs;
        cJSON *pod_after;               /* the pod after the patch; owned */
        struct pool pool;               /* the strings above */
};

/* Runs one case with policy `p` on `pod` (and `old_pod` for an UPDATE: the
 * case's own, or the ones its files hold; both NULL for a namespace case,
 * whose review carries the namespace): an AdmissionReview is built as
 * the API server would send it, answered by admission_handle() on the
 * mutating path, its patch (if any) applied, and the patched pod answered on
 * the validating path, as the API server calls the two webhooks. Then every
 * expectation is checked. 0 and *ret (free with ptest_result_free()); or
 * -EINVAL with a message in `err` when admission could not answer the review
 * (what the server would answer with HTTP 400 or 500), -ENOMEM. */
int ptest_run(const struct policy *p, const struct ptest_case *c, const cJSON *pod, const cJSON *old_pod,
              struct ptest_result *ret, char *err, size_t errlen);

/* Releases a result. A zeroed one is fine. */
void ptest_result_free(struct ptest_result *r);

/* Applies an RFC 6902 patch (add, replace, remove: the operations
 * jsonpatch.h writes) to `doc` in place. 0, or -EINVAL with a message in
 * `err` for an operation that does not apply, -ENOMEM. */
int ptest_patch_apply(cJSON *doc, const char *patch, size_t len, char *err, size_t errlen);
