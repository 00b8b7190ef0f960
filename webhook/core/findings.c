/* How a stored pod stands against the policy: see include/core/findings.h.
 *
 * A pod with a rule is judged by mutate_pod() itself: the changes it would
 * make (change.h) are what the pod lacks (the label: a missing or wrong
 * identity; the Spark container's env: JVM settings; workload identity's
 * env, volume, mounts and service account). A pod without a
 * rule is asked the two questions mutate_pod() asks of such pods (may its
 * namespace claim this identity; are Spark pods refused without a rule),
 * each on its own so that both are reported and so that a policy whose
 * defaults say `audit` is judged like `enforce`. */
#include "findings.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "change.h"
#include "strs.h"

#define ENV_JAVA_HOME "JAVA_HOME"
#define ENV_SUBMIT_OPTS "SPARK_SUBMIT_OPTS"
#define ENV_TOOL_OPTIONS "JAVA_TOOL_OPTIONS"
#define ENV_JAVA_OPT_PREFIX CHANGE_JAVA_OPT_PREFIX
#define ENV_AZURE_PREFIX "AZURE_"
/* The env entries one finding speaks of: every flag, JAVA_HOME, a merged variable. */
#define MAX_ENV_CHANGES (WH_MAX_RULE_FLAGS + 2u)

static const char *const problem_names[FINDING_PROBLEM_MAX] = {
        "missing-identity",          "wrong-identity", "foreign-identity", "missing-jvm-settings", "no-policy",
        "missing-workload-identity", "too-large",
};
static const char *const verdict_names[VERDICT_MAX] = {
        "not-concerned", "compliant", "findings", "unknown", "off",
};

const char *finding_problem_name(enum finding_problem problem)
{
        return problem < FINDING_PROBLEM_MAX ? problem_names[problem] : "?";
}

const char *findings_verdict_name(enum pod_verdict verdict)
{
        return verdict < VERDICT_MAX ? verdict_names[verdict] : "?";
}

void findings_init(struct findings *f, size_t max)
{
        memset(f, 0, sizeof *f);
        f->max = max;
}

void findings_free(struct findings *f)
{
        if (!f)
                return;
        pool_free(&f->pool);
        free(f->items);
        free(f->namespaces);
        memset(f, 0, sizeof *f);
}

size_t findings_total(const struct findings *f)
{
        return f->n + f->not_kept;
}

void findings_totals(const struct findings *f, struct findings_namespace *ret_totals)
{
        memset(ret_totals, 0, sizeof *ret_totals);
        for (size_t i = 0; i < f->n_namespaces; i++) {
                const struct findings_namespace *ns = &f->namespaces[i];
                ret_totals->pods += ns->pods;
                ret_totals->spark_pods += ns->spark_pods;
                for (int v = 0; v < VERDICT_MAX; v++)
                        ret_totals->verdicts[v] += ns->verdicts[v];
                for (int k = 0; k < FINDING_PROBLEM_MAX; k++)
                        ret_totals->problems[k] += ns->problems[k];
        }
}

/* ---- the pod ---- */

static const char *string_item(const cJSON *obj, const char *key)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
        return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const cJSON *spark_env(const cJSON *pod, int *ret_container)
{
        int ci = mutate_find_spark_container(pod);
        const cJSON *cs = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(pod, "spec"), "containers");
        const cJSON *env = ci >= 0 ? cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cs, ci), "env") : NULL;
        *ret_container = ci;
        return cJSON_IsArray(env) ? env : NULL;
}

/* The entry that takes effect: the last of a name listed twice, as admission reads it. */
static const cJSON *env_entry(const cJSON *env, const char *name)
{
        const cJSON *e, *found = NULL;
        cJSON_ArrayForEach(e, env) {
                const char *n = string_item(e, "name");
                if (n && strcmp(n, name) == 0)
                        found = e;
        }
        return found;
}

/* ---- the namespaces' counts ---- */

/* The records are compared by str_cmp_ptr(), which reads their first member. */
static_assert(offsetof(struct findings_namespace, name) == 0, "a record begins with its name");

/* The record of `name`, made when first seen. NULL when out of memory. The
 * search is not bsearch(): a name not found is inserted where the search
 * ended, at `lo`. */
static struct findings_namespace *namespace_get(struct findings *f, const char *name)
{
        if (f->last_namespace < f->n_namespaces && strcmp(f->namespaces[f->last_namespace].name, name) == 0)
                return &f->namespaces[f->last_namespace];
        size_t lo = 0, hi = f->n_namespaces;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = str_cmp_ptr(&name, &f->namespaces[mid]);
                if (c == 0) {
                        f->last_namespace = mid;
                        return &f->namespaces[mid];
                }
                if (c < 0)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        if (f->n_namespaces == f->cap_namespaces) {
                size_t cap = f->cap_namespaces ? f->cap_namespaces * 2 : 16;
                struct findings_namespace *t = realloc(f->namespaces, cap * sizeof *t);
                if (!t)
                        return NULL;
                f->namespaces = t;
                f->cap_namespaces = cap;
        }
        const char *copy = pool_strdup(&f->pool, name);
        if (!copy)
                return NULL;
        memmove(&f->namespaces[lo + 1], &f->namespaces[lo], (f->n_namespaces - lo) * sizeof *f->namespaces);
        f->namespaces[lo] = (struct findings_namespace){ .name = copy };
        f->n_namespaces++;
        f->last_namespace = lo;
        return &f->namespaces[lo];
}

/* ---- texts ---- */

/* Appends to a finding's text; past FINDING_TEXT_MAX the text ends in
 * "..." and the rest is dropped. 0 or -ENOMEM. */
__attribute__((format(printf, 2, 3))) static int text_add(struct buf *b, const char *fmt, ...)
{
        char small[512];
        char *s = small;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(small, sizeof small, fmt, ap);
        va_end(ap);
        if (n < 0)
                return -ENOMEM;
        if ((size_t)n >= sizeof small) {
                s = malloc((size_t)n + 1);
                if (!s)
                        return -ENOMEM;
                va_start(ap, fmt);
                vsnprintf(s, (size_t)n + 1, fmt, ap);
                va_end(ap);
        }
        int r = 0;
        size_t room = b->max - b->len;
        if (room >= (size_t)n) {
                r = buf_append(b, s, (size_t)n);
        } else if (room > 3 && (b->len < 3 || strcmp(b->data + b->len - 3, "...") != 0)) {
                r = buf_append(b, s, room - 3);
                if (r == 0)
                        r = buf_puts(b, "...");
        }
        if (s != small)
                free(s);
        return r == -ENOBUFS ? 0 : r;
}

/* ---- one pod's judgement ---- */

struct judge {
        const struct policy *p;
        const struct findings_context *fc;
        struct findings *f;
        struct findings_namespace *ns;
        const char *namespace_;
        const cJSON *pod;
        enum pod_role role;
        const char *claimed;            /* its aadpodidbinding, or NULL */
        const struct rule *rule;        /* the namespace's rule as resolved, or NULL */
        enum policy_mode mode;
        unsigned n_findings;
        /* Copies in the findings' pool, made at the pod's first finding. */
        const char *c_namespace, *c_pod, *c_uid, *c_phase, *c_app_id, *c_rule;
};

static int copy_pod_strings(struct judge *j)
{
        struct pool *pool = &j->f->pool;
        const cJSON *meta = cJSON_GetObjectItemCaseSensitive(j->pod, "metadata");
        const char *name = string_item(meta, "name");
        const char *uid = string_item(meta, "uid");
        const char *app_id = string_item(cJSON_GetObjectItemCaseSensitive(meta, "labels"), "spark-app-selector");
        const char *phase = string_item(cJSON_GetObjectItemCaseSensitive(j->pod, "status"), "phase");
        if (!name)
                name = string_item(meta, "generateName");
        j->c_namespace = j->ns->name;
        j->c_pod = pool_strdup(pool, name ? name : "");
        j->c_uid = pool_strdup(pool, uid);
        j->c_phase = pool_strdup(pool, phase);
        j->c_app_id = pool_strdup(pool, app_id);
        j->c_rule = j->rule ? pool_strdup(pool, j->rule->name) : NULL;
        if (!j->c_pod || (uid && !j->c_uid) || (phase && !j->c_phase) || (app_id && !j->c_app_id) ||
            (j->rule && !j->c_rule))
                return -ENOMEM;
        return 0;
}

static int add_finding(struct judge *j, enum finding_problem problem, const char *expected, const char *found)
{
        struct findings *f = j->f;
        j->n_findings++;
        j->ns->problems[problem]++;
        if (f->n >= f->max) {
                f->not_kept++;
                return 0;
        }
        if (!j->c_pod) {
                int r = copy_pod_strings(j);
                if (r < 0)
                        return r;
        }
        if (f->n == f->cap) {
                size_t cap = f->cap ? f->cap * 2 : 64;
                if (cap > f->max)
                        cap = f->max;
                struct finding *t = realloc(f->items, cap * sizeof *t);
                if (!t)
                        return -ENOMEM;
                f->items = t;
                f->cap = cap;
        }
        struct finding *it = &f->items[f->n];
        *it = (struct finding){
                .problem = problem,
                .namespace_ = j->c_namespace,
                .pod = j->c_pod,
                .uid = j->c_uid,
                .phase = j->c_phase,
                .role = j->role,
                .app_id = j->c_app_id,
                .rule = j->c_rule,
                .mode = j->mode,
                .expected = pool_strdup(&f->pool, expected),
                .found = pool_strdup(&f->pool, found),
        };
        if (!it->expected || !it->found)
                return -ENOMEM;
        f->n++;
        return 0;
}

/* The identities a rule lets its namespace claim, as "a, b". */
static int allowed_list(const struct rule *r, struct buf *out)
{
        int rc = 0;
        for (size_t i = 0; rc == 0 && i < r->n_allowed_identities; i++)
                rc = text_add(out, "%s%s", i ? ", " : "", r->allowed_identities[i]);
        return rc;
}

static int foreign_identity(struct judge *j)
{
        struct buf expected, found;
        buf_init(&expected, FINDING_TEXT_MAX);
        buf_init(&found, FINDING_TEXT_MAX);
        int rc = text_add(&found, CHANGE_IDENTITY_LABEL "=%s", j->claimed);
        if (rc == 0 && j->rule) {
                rc = text_add(&expected, "an identity namespace %s may use: ", j->namespace_);
                if (rc == 0)
                        rc = allowed_list(j->rule, &expected);
        } else if (rc == 0) {
                rc = text_add(&expected,
                              "an identity the policy does not grant to other namespaces "
                              "(namespace %s has no rule)",
                              j->namespace_);
        }
        if (rc == 0)
                rc = add_finding(j, FINDING_FOREIGN_IDENTITY, expected.data, found.data);
        buf_free(&expected);
        buf_free(&found);
        return rc;
}

/* One env entry admission would set or change in the Spark container. */
struct env_change {
        const char *name;       /* NULL for a SPARK_JAVA_OPT_<n> */
        const char *value;      /* what admission would set */
        const char *old;        /* what the pod has: NULL when unset */
        bool value_from;        /* the pod's entry comes from valueFrom: admission leaves it alone */
};

struct env_changes {
        struct env_change items[MAX_ENV_CHANGES];
        size_t n;
};

static int env_change_add(struct env_changes *ec, const char *name, const char *value, const char *old, bool value_from)
{
        if (ec->n == MAX_ENV_CHANGES)
                return -E2BIG;
        ec->items[ec->n++] = (struct env_change){ name, value, old, value_from };
        return 0;
}

/* A SPARK_JAVA_OPT_<n>: its number is admission's choice, so it goes without a name here. */
static bool is_java_opt(const char *name)
{
        return !name;
}

/* AZURE_CLIENT_ID and the other variables of workload identity. */
static bool is_azure_env(const char *name)
{
        return name && strncmp(name, ENV_AZURE_PREFIX, strlen(ENV_AZURE_PREFIX)) == 0;
}

static bool env_change_has(const struct env_changes *ec, const char *name)
{
        for (size_t i = 0; i < ec->n; i++)
                if (ec->items[i].name && strcmp(ec->items[i].name, name) == 0)
                        return true;
        return false;
}

/* JAVA_HOME and the flags variable when the pod takes them from valueFrom:
 * admission leaves them alone (and warns that the flags may be lacking), so
 * they never show in the patch. */
static int value_from_entries(const struct rule *r, enum pod_role role, const cJSON *env, struct env_changes *ec)
{
        const char *var = r->jvm_env == POLICY_JVM_ENV_JAVA_TOOL_OPTIONS ? ENV_TOOL_OPTIONS
                          : role == POD_ROLE_DRIVER                      ? ENV_SUBMIT_OPTS
                                                                         : NULL;
        const char *names[2] = { r->java_home ? ENV_JAVA_HOME : NULL, var };
        const char *values[2] = { r->java_home, r->flags_joined };
        for (size_t i = 0; i < 2; i++) {
                const cJSON *e = names[i] ? env_entry(env, names[i]) : NULL;
                if (!e || !cJSON_GetObjectItemCaseSensitive(e, "valueFrom") || env_change_has(ec, names[i]))
                        continue;
                if (names[i] == var && r->n_flags == 0)
                        continue;
                int rc = env_change_add(ec, names[i], values[i], NULL, true);
                if (rc < 0)
                        return rc;
        }
        return 0;
}

static int jvm_settings(struct judge *j, const struct env_changes *ec)
{
        struct buf expected, found;
        int rc = 0;
        size_t n_opts = 0;
        if (ec->n == 0)
                return 0;
        buf_init(&expected, FINDING_TEXT_MAX);
        buf_init(&found, FINDING_TEXT_MAX);
        size_t n_jvm = 0;
        for (size_t i = 0; i < ec->n; i++)
                n_jvm += !is_azure_env(ec->items[i].name);
        if (n_jvm == 0)
                return 0;
        for (size_t i = 0; rc == 0 && i < ec->n; i++) {
                const struct env_change *c = &ec->items[i];
                if (is_azure_env(c->name))
                        continue;   /* workload identity's: said by workload_identity() */
                if (is_java_opt(c->name)) {
                        n_opts++;
                        continue;
                }
                const char *sep = expected.len ? "; " : "";
                rc = text_add(&expected, "%s%s=%s", sep, c->name, c->value);
                if (rc == 0 && c->value_from)
                        rc = text_add(&found, "%s%s from valueFrom (not checked; admission leaves it alone)", sep,
                                      c->name);
                else if (rc == 0 && c->old)
                        rc = text_add(&found, "%s%s=%s", sep, c->name, c->old);
                else if (rc == 0)
                        rc = text_add(&found, "%s%s unset", sep, c->name);
        }
        if (rc == 0 && n_opts) {
                /* Executors: one SPARK_JAVA_OPT_<n> per missing flag; the
                 * numbers are admission's choice, the flags are what matters. */
                rc = text_add(&expected, "%s" ENV_JAVA_OPT_PREFIX "<n> for each of:", expected.len ? "; " : "");
                for (size_t i = 0; rc == 0 && i < ec->n; i++)
                        if (is_java_opt(ec->items[i].name))
                                rc = text_add(&expected, " %s", ec->items[i].value);
                if (rc == 0)
                        rc = text_add(&found, "%sno " ENV_JAVA_OPT_PREFIX "<n> with %s", found.len ? "; " : "",
                                      n_opts == 1 ? "it" : "them");
        }
        if (rc == 0)
                rc = add_finding(j, FINDING_MISSING_JVM_SETTINGS, expected.data, found.data);
        buf_free(&expected);
        buf_free(&found);
        return rc;
}

/* What a workload-identity pod lacks, besides the Spark container's env. */
struct wi_gap {
        bool volume;            /* the token volume is missing or not as the rule wants it */
        bool account;           /* an executor runs as the default service account */
        unsigned mounts;        /* containers whose env or token mount admission would change */
        const char *refused;    /* admission would refuse the pod: why */
};

static int workload_identity(struct judge *j, const struct rule *r, const struct env_changes *ec,
                             const struct wi_gap *g)
{
        bool env = false;
        for (size_t i = 0; i < ec->n; i++)
                env = env || is_azure_env(ec->items[i].name);
        if (!env && !g->volume && !g->account && !g->mounts && !g->refused)
                return 0;
        const cJSON *spec = cJSON_GetObjectItemCaseSensitive(j->pod, "spec");
        const char *sa = string_item(spec, "serviceAccountName");
        struct buf expected, found;
        buf_init(&expected, FINDING_TEXT_MAX);
        buf_init(&found, FINDING_TEXT_MAX);
        int rc = text_add(&expected,
                          "workload identity of client %s: AZURE_* env, volume " POLICY_WI_VOLUME
                          " mounted at " POLICY_WI_MOUNT_PATH,
                          r->client_id);
        if (rc == 0 && r->service_account)
                rc = text_add(&expected, ", serviceAccountName=%s", r->service_account);
        for (size_t i = 0; rc == 0 && i < ec->n; i++) {
                const struct env_change *c = &ec->items[i];
                const char *sep = found.len ? "; " : "";
                if (!is_azure_env(c->name))
                        continue;
                if (c->value_from)
                        rc = text_add(&found, "%s%s from valueFrom", sep, c->name);
                else if (c->old)
                        rc = text_add(&found, "%s%s=%s", sep, c->name, c->old);
                else
                        rc = text_add(&found, "%s%s unset", sep, c->name);
        }
        if (rc == 0 && g->volume)
                rc = text_add(&found, "%sno volume " POLICY_WI_VOLUME " as the policy has it", found.len ? "; " : "");
        if (rc == 0 && g->mounts)
                rc = text_add(&found, "%s%u container%s without the env or the token mount", found.len ? "; " : "",
                              g->mounts, g->mounts == 1 ? "" : "s");
        if (rc == 0 && g->account)
                rc = text_add(&found, "%sserviceAccountName=%s", found.len ? "; " : "", sa && *sa ? sa : "default");
        if (rc == 0 && g->refused)
                rc = text_add(&found, "%sadmission would refuse it: %s", found.len ? "; " : "", g->refused);
        if (rc == 0)
                rc = add_finding(j, FINDING_MISSING_WORKLOAD_IDENTITY, expected.data, found.data);
        buf_free(&expected);
        buf_free(&found);
        return rc;
}

/* Whether a change is to the Spark container, spec.containers[ci]. */
static bool in_spark_container(const struct change *c, int ci)
{
        return ci >= 0 && c->list == CHANGE_CONTAINERS && c->container == (unsigned)ci;
}

/* The identity label, the env, and workload identity's volume, mounts and
 * service account, from the changes admission would make. */
static int classify_changes(struct judge *j, const struct rule *r, const struct mutation *m)
{
        int ci;
        const cJSON *env = spark_env(j->pod, &ci);
        struct env_changes *ec = calloc(1, sizeof *ec);
        bool label = false;
        struct wi_gap gap = { .refused = m->decision == DECISION_DENIED ? m->message : NULL };
        int rc = 0;
        if (!ec)
                return -ENOMEM;
        /* A refusal stops part way: its changes say nothing. */
        size_t n = m->decision == DECISION_MUTATED ? m->n_changes : 0;
        for (size_t i = 0; rc == 0 && i < n; i++) {
                const struct change *c = &m->changes[i];
                switch (c->kind) {
                case CHANGE_SET_IDENTITY_LABEL: label = true; break;
                case CHANGE_REMOVE_IDENTITY_LABEL:
                        break;  /* workload identity only removes a claim: foreign-identity says it */
                case CHANGE_SET_ENV:
                        if (in_spark_container(c, ci))
                                rc = env_change_add(ec, c->name, c->value, c->old, false);
                        else
                                gap.mounts++;
                        break;
                case CHANGE_ADD_ENV:
                case CHANGE_ADD_JAVA_OPT:
                        if (in_spark_container(c, ci))
                                rc = env_change_add(ec, c->kind == CHANGE_ADD_ENV ? c->name : NULL, c->value, NULL,
                                                    false);
                        else if (change_starts_op(i ? &m->changes[i - 1] : NULL, c))
                                gap.mounts++;   /* a container without env gets one list */
                        break;
                case CHANGE_TOKEN_VOLUME: gap.volume = true; break;
                case CHANGE_SET_SERVICE_ACCOUNT: gap.account = true; break;
                case CHANGE_SET_DEPRECATED_SERVICE_ACCOUNT: break;  /* the twin of serviceAccountName */
                case CHANGE_TOKEN_MOUNT: gap.mounts++; break;
                case CHANGE_KIND_MAX: break;
                }
        }
        if (rc == 0)
                rc = value_from_entries(r, j->role, env, ec);

        if (rc == 0 && label) {
                char expected[WH_MAX_POLICY_STRING + 32], found[WH_MAX_POLICY_STRING + 32];
                snprintf(expected, sizeof expected, CHANGE_IDENTITY_LABEL "=%s", r->identity);
                if (j->claimed)
                        snprintf(found, sizeof found, CHANGE_IDENTITY_LABEL "=%s", j->claimed);
                else
                        snprintf(found, sizeof found, "no " CHANGE_IDENTITY_LABEL " label");
                rc = add_finding(j, j->claimed ? FINDING_WRONG_IDENTITY : FINDING_MISSING_IDENTITY, expected, found);
        }
        if (rc == 0)
                rc = jvm_settings(j, ec);
        if (rc == 0 && r->auth == POLICY_AUTH_WORKLOAD_IDENTITY)
                rc = workload_identity(j, r, ec, &gap);
        free(ec);
        return rc;
}

/* Whether the pod carries an identity its namespace may not carry: the
 * claim rule (policy.h) would refuse it or warn about it. */
static bool claim_foreign(const struct judge *j, const struct rule *r)
{
        return j->claimed && policy_judge_claim(j->p, r, j->claimed).claim != POLICY_CLAIM_ALLOWED;
}

/* A pod of a namespace with a rule: mutate_pod() under the same rule in
 * enforce mode with onConflict override, so that it says every change. */
static int judge_with_rule(struct judge *j)
{
        struct rule judged = *j->rule;
        judged.mode = POLICY_MODE_ENFORCE;
        judged.on_conflict = POLICY_CONFLICT_OVERRIDE;
        struct resolution res = { .rule = &judged };
        struct mutate_context mc = { .res = &res };
        struct mutation m;
        mutation_init(&m);
        int rc = mutate_pod(j->p, j->namespace_, &mc, j->pod, &m);
        if (rc == 0 && j->role == POD_ROLE_NONE) {
                /* The only finding on a pod that is not Spark's: its claim. */
                if (claim_foreign(j, &judged))
                        rc = foreign_identity(j);
        } else if (rc == 0) {
                /* Admission replaces a Spark pod's other identity without
                 * asking whether it was allowed; the pod holds it now, so say so. */
                if (claim_foreign(j, &judged))
                        rc = foreign_identity(j);
                if (rc == 0)
                        rc = classify_changes(j, &judged, &m);
        }
        mutation_free(&m);
        return rc;
}

/* A pod of a namespace without a rule. */
static int judge_without_rule(struct judge *j, const struct resolution *res)
{
        int rc = 0;
        if (res->problem[0]) {
                char expected[128];
                snprintf(expected, sizeof expected,
                         "a valid rule from the " POLICY_ANNOTATION_PREFIX " annotations of namespace %s",
                         j->namespace_);
                return add_finding(j, FINDING_NO_POLICY, expected, res->problem);
        }
        if (claim_foreign(j, NULL))
                rc = foreign_identity(j);
        if (rc == 0 && j->role != POD_ROLE_NONE && policy_unmatched_deny(j->p)) {
                char expected[128];
                snprintf(expected, sizeof expected,
                         "a rule for namespace %s (unmatched: deny refuses Spark "
                         "pods elsewhere)",
                         j->namespace_);
                rc = add_finding(j, FINDING_NO_POLICY, expected, "no rule");
        }
        return rc;
}

int findings_check_pod(const struct policy *p, const char *namespace_, const struct findings_context *fc,
                       const cJSON *pod, struct findings *f, enum pod_verdict *ret_verdict)
{
        static const struct findings_context nothing_known = { 0 };
        const cJSON *meta = cJSON_GetObjectItemCaseSensitive(pod, "metadata");
        if (!cJSON_IsObject(pod))
                return -EINVAL;
        if (!namespace_)
                namespace_ = string_item(meta, "namespace");
        if (!namespace_ || !*namespace_)
                return -EINVAL;
        if (!fc)
                fc = &nothing_known;

        struct pool rule_pool = POOL_INIT;      /* a rule made from annotations */
        struct resolution *res = calloc(1, sizeof *res);
        if (!res)
                return -ENOMEM;
        int rc = policy_resolve(p, namespace_, fc->info, &rule_pool, res);
        struct judge j = {
                .p = p,
                .fc = fc,
                .f = f,
                .namespace_ = namespace_,
                .pod = pod,
                .role = mutate_pod_role(pod),
                .claimed = string_item(cJSON_GetObjectItemCaseSensitive(meta, "labels"), CHANGE_IDENTITY_LABEL),
                .rule = res->rule,
                .mode = res->rule ? res->rule->mode : policy_default_mode(p),
        };
        if (rc < 0)
                goto out;
        if (!(j.ns = namespace_get(f, namespace_))) {
                rc = -ENOMEM;
                goto out;
        }

        struct findings_namespace *ns = j.ns;
        if (ns->pods == 0) {
                /* Every pod of a namespace resolves alike: record it once. */
                ns->mode = j.mode;
                if (j.rule && !(ns->rule = pool_strdup(&f->pool, j.rule->name))) {
                        rc = -ENOMEM;
                        goto out;
                }
        }
        ns->pods++;
        if (j.role != POD_ROLE_NONE)
                ns->spark_pods++;

        enum pod_verdict verdict;
        if (j.role == POD_ROLE_NONE && !j.claimed)
                verdict = VERDICT_NOT_CONCERNED;
        else if (!j.rule && res->unknown)
                verdict = VERDICT_UNKNOWN;
        else if (j.mode == POLICY_MODE_OFF && !claim_foreign(&j, j.rule))
                verdict = VERDICT_OFF;
        else if (j.mode == POLICY_MODE_OFF) {
                /* Off governs what its own pods get, not what they may claim. */
                rc = foreign_identity(&j);
                if (rc < 0)
                        goto out;
                verdict = VERDICT_FINDINGS;
        } else {
                rc = j.rule ? judge_with_rule(&j) : judge_without_rule(&j, res);
                if (rc < 0)
                        goto out;
                verdict = j.n_findings ? VERDICT_FINDINGS : VERDICT_COMPLIANT;
        }
        ns->verdicts[verdict]++;
        if (ret_verdict)
                *ret_verdict = verdict;
out:
        pool_free(&rule_pool);
        free(res);
        return rc;
}

/* gcc 12's -fanalyzer reports f->items, grown by add_finding(), as leaking
 * when this function returns: on that path it has lost what it knew of `j`
 * (it takes j.c_pod, set to NULL above, as set). The buffer lives on in *f,
 * which findings_free() frees; gcc 13 does not report it. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wanalyzer-malloc-leak"
#endif
int findings_add_too_large(const struct policy *p, const char *namespace_, const struct findings_context *fc,
                           const cJSON *metadata, size_t bound, struct findings *f)
{
        static const struct findings_context nothing_known = { 0 };
        if (!namespace_)
                namespace_ = string_item(metadata, "namespace");
        if (!namespace_ || !*namespace_)
                return -EINVAL;
        if (!fc)
                fc = &nothing_known;
        /* What came of the pod, as a pod: its metadata. */
        cJSON *pod = cJSON_CreateObject();
        cJSON *meta = cJSON_IsObject(metadata) ? cJSON_Duplicate(metadata, true) : cJSON_CreateObject();
        if (!pod || !meta || !cJSON_AddItemToObject(pod, "metadata", meta)) {
                cJSON_Delete(pod);
                cJSON_Delete(meta);
                return -ENOMEM;
        }
        struct pool rule_pool = POOL_INIT;
        struct resolution *res = calloc(1, sizeof *res);
        int rc = res ? policy_resolve(p, namespace_, fc->info, &rule_pool, res) : -ENOMEM;
        struct judge j = {
                .p = p,
                .fc = fc,
                .f = f,
                .namespace_ = namespace_,
                .pod = pod,
                .role = mutate_pod_role(pod),
                .rule = res ? res->rule : NULL,
                .mode = res && res->rule ? res->rule->mode : policy_default_mode(p),
        };
        if (rc == 0 && !(j.ns = namespace_get(f, namespace_)))
                rc = -ENOMEM;
        if (rc == 0) {
                if (j.ns->pods == 0) {
                        j.ns->mode = j.mode;
                        if (j.rule && !(j.ns->rule = pool_strdup(&f->pool, j.rule->name)))
                                rc = -ENOMEM;
                }
        }
        if (rc == 0) {
                char expected[160], found[160];
                snprintf(expected, sizeof expected,
                         "a pod the audit can read: at most %zu bytes as the API "
                         "server sends it",
                         bound);
                snprintf(found, sizeof found, "more than %zu bytes (not judged)", bound);
                j.ns->pods++;
                if (j.role != POD_ROLE_NONE)
                        j.ns->spark_pods++;
                j.ns->verdicts[VERDICT_FINDINGS]++;
                rc = add_finding(&j, FINDING_TOO_LARGE, expected, found);
        }
        pool_free(&rule_pool);
        free(res);
        cJSON_Delete(pod);
        return rc;
}
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic pop
#endif
