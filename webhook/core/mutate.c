/* The admission decision for one pod: see include/core/mutate.h. */
#include "mutate.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

#define LABEL_ROLE "spark-role"
#define ENV_SUBMIT_OPTS "SPARK_SUBMIT_OPTS"
#define ENV_TOOL_OPTIONS "JAVA_TOOL_OPTIONS"
#define ENV_JAVA_HOME "JAVA_HOME"
#define ENV_JAVA_OPT_PREFIX CHANGE_JAVA_OPT_PREFIX
/* The largest SPARK_JAVA_OPT_ index we count from; past it we add nothing. */
#define JAVA_OPT_INDEX_MAX 1000000000ull
#define ENV_CLIENT_ID "AZURE_CLIENT_ID"
#define ENV_TENANT_ID "AZURE_TENANT_ID"
#define ENV_TOKEN_FILE "AZURE_FEDERATED_TOKEN_FILE"
#define ENV_AUTHORITY "AZURE_AUTHORITY_HOST"
#define N_WI_ENV 4u
#define SA_DEFAULT "default"
/* The warning about a Spark 3 image, and the characters of the image
 * reference it shows (its end), so that it fits in one warning. */
#define SPARK3_WARNING "image %s is Spark 3.x: its Hadoop 3.3 lacks WorkloadIdentityTokenProvider (Spark 4 has it)"
#define IMAGE_SHOWN_MAX (WH_MAX_WARNING_CHARS - (sizeof SPARK3_WARNING - 1 - 2))
/* The env entries we may add to one container: one per flag, JAVA_HOME, one
 * merged variable, the workload identity's. */
#define MAX_NEW_ENV (WH_MAX_RULE_FLAGS + 2u + N_WI_ENV)

static const char *const decision_names[DECISION_MAX] = { "unchanged", "mutated", "denied", "would-mutate" };
static const char *const role_names[POD_ROLE_MAX] = { "", "driver", "executor" };
static const char *const spark_container_names[] = {
        "spark-kubernetes-driver",
        "spark-kubernetes-executor",
        "executor",
};

const char *mutate_decision_name(enum decision d)
{
        return d < DECISION_MAX ? decision_names[d] : "?";
}

const char *mutate_role_name(enum pod_role r)
{
        return r < POD_ROLE_MAX ? role_names[r] : "?";
}

void mutation_init(struct mutation *m)
{
        memset(m, 0, offsetof(struct mutation, changes));   /* the changes are written as they are made */
        jsonpatch_init(&m->patch);
}

bool mutation_matters(const struct mutation *m)
{
        return m->role != POD_ROLE_NONE || m->identity_before || m->identity_after || m->grant_keys[0];
}

void mutation_free(struct mutation *m)
{
        jsonpatch_free(&m->patch);
        pool_free(&m->strings);
}

/* Removes the bytes of UTF-8 sequences that a bounded %.Ns or the end of
 * the buffer cut in two, so that the text stays valid UTF-8 where its parts
 * were (the pod's strings are copied as they came). */
static void utf8_mend(char *s)
{
        unsigned char *in = (unsigned char *)s, *out = (unsigned char *)s;
        while (*in) {
                unsigned char c = *in;
                size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
                size_t k = 1;
                while (n > 1 && k < n && (in[k] & 0xC0) == 0x80)
                        k++;
                if (n == 0 || k < n) {          /* a stray or cut sequence: drop what there is of it */
                        in += n == 0 ? 1 : k;
                        continue;
                }
                for (size_t i = 0; i < n; i++)
                        *out++ = *in++;
        }
        *out = '\0';
}

void mutation_warn(struct mutation *m, const char *fmt, ...)
{
        if (m->n_warnings >= WH_MAX_WARNINGS)
                return;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(m->warnings[m->n_warnings], WH_MAX_WARNING_CHARS + 1, fmt, ap);
        va_end(ap);
        utf8_mend(m->warnings[m->n_warnings++]);
}

void mutation_deny(struct mutation *m, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(m->message, sizeof m->message, fmt, ap);
        va_end(ap);
        utf8_mend(m->message);
        m->decision = DECISION_DENIED;
}

static const char *string_item(const cJSON *obj, const char *key)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
        return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const cJSON *pod_labels(const cJSON *pod)
{
        const cJSON *meta = cJSON_GetObjectItemCaseSensitive(pod, "metadata");
        const cJSON *labels = cJSON_GetObjectItemCaseSensitive(meta, "labels");
        return cJSON_IsObject(labels) ? labels : NULL;
}

enum pod_role mutate_pod_role(const cJSON *pod)
{
        const char *role = string_item(pod_labels(pod), LABEL_ROLE);
        if (!role)
                return POD_ROLE_NONE;
        if (strcmp(role, "driver") == 0)
                return POD_ROLE_DRIVER;
        if (strcmp(role, "executor") == 0)
                return POD_ROLE_EXECUTOR;
        return POD_ROLE_NONE;
}

static const cJSON *pod_containers(const cJSON *pod)
{
        const cJSON *spec = cJSON_GetObjectItemCaseSensitive(pod, "spec");
        const cJSON *cs = cJSON_GetObjectItemCaseSensitive(spec, "containers");
        return cJSON_IsArray(cs) ? cs : NULL;
}

/* Whether a container looks like the one Spark built: the entrypoint's
 * first argument is its role, and Spark always sets SPARK_APPLICATION_ID. */
static bool runs_spark(const cJSON *c)
{
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(c, "args");
        const cJSON *first = cJSON_IsArray(args) ? args->child : NULL;
        if (cJSON_IsString(first) &&
            (strcmp(first->valuestring, "driver") == 0 || strcmp(first->valuestring, "executor") == 0))
                return true;
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(c, "env")) {
                const char *name = string_item(e, "name");
                if (name && strcmp(name, "SPARK_APPLICATION_ID") == 0)
                        return true;
        }
        return false;
}

int mutate_find_spark_container(const cJSON *pod)
{
        const cJSON *cs = pod_containers(pod);
        const cJSON *c;
        int i = 0, by_shape = -1;
        if (!cs || !cJSON_IsObject(cs->child))
                return -1;
        cJSON_ArrayForEach(c, cs) {
                const char *name = string_item(c, "name");
                for (size_t k = 0; name && k < sizeof spark_container_names / sizeof *spark_container_names; k++)
                        if (strcmp(name, spark_container_names[k]) == 0)
                                return i;
                if (by_shape < 0 && runs_spark(c))
                        by_shape = i;
                i++;
        }
        /* A pod template renamed it. Spark appends its container after the
         * template's others, so look for its shape before taking the first. */
        return by_shape >= 0 ? by_shape : 0;
}

/* ---- the identity a pod claims ---- */

/* Judges the claim of the label value m->identity_after by the claim rule
 * (policy.h): refused, warned about or allowed by the identity's
 * protection, whatever the claimer's own mode. Returns true when refused. */
static bool check_claim(const struct policy *p, const struct rule *r, const char *ns, struct mutation *m)
{
        const char *claimed = m->identity_after;
        if (!claimed)
                return false;
        struct policy_claim_verdict v = policy_judge_claim(p, r, claimed);
        if (v.claim == POLICY_CLAIM_ALLOWED)
                return false;
        if (v.claim == POLICY_CLAIM_WARN) {
                mutation_warn(m, "audit: identity %s is not allowed in namespace %s; the pod would be refused", claimed,
                              ns);
                return false;
        }
        char may[256] = "";
        size_t off = 0;
        for (size_t i = 0; r && i < r->n_allowed_identities && off < sizeof may; i++)
                off += (size_t)snprintf(may + off, sizeof may - off, "%s%s", i ? ", " : "", r->allowed_identities[i]);
        if (v.reason == POLICY_CLAIM_UNLISTED_DENY)
                mutation_deny(m,
                              "namespace %s may not use Azure identity \"%s\" (label %s): the policy names "
                              "it nowhere and refuses such identities (unlistedIdentities: deny)",
                              ns, claimed, CHANGE_IDENTITY_LABEL);
        else if (r)
                mutation_deny(m, "namespace %s may not use Azure identity \"%s\" (label %s); it may use: %s", ns,
                              claimed, CHANGE_IDENTITY_LABEL, may[0] ? may : "none");
        else if (v.listed && !v.listed->reserved)
                mutation_deny(m,
                              "namespace %s may not use Azure identity \"%s\" (label %s): the policy "
                              "gives it only to namespaces a grantor annotated with it",
                              ns, claimed, CHANGE_IDENTITY_LABEL);
        else
                mutation_deny(m,
                              "namespace %s may not use Azure identity \"%s\" (label %s): the policy "
                              "grants it to other namespaces only",
                              ns, claimed, CHANGE_IDENTITY_LABEL);
        return true;
}

/* ---- the changes ---- */

/* Appends a change: 0, or -E2BIG past WH_MAX_CHANGES. */
static int change_add(struct mutation *m, struct change c)
{
        if (m->n_changes == WH_MAX_CHANGES)
                return -E2BIG;
        m->changes[m->n_changes++] = c;
        return 0;
}

struct env_view {
        const cJSON *env;       /* the container's env array, or NULL */
        enum change_list list;  /* containers or initContainers */
        size_t container;       /* index in that list */
        const char *name;       /* the container's name, for messages */
};

/* The entry that takes effect: with a name listed twice, the kubelet
 * gives the container the last one. */
static const cJSON *env_find(const struct env_view *ev, const char *name, size_t *ret_index)
{
        const cJSON *e, *found = NULL;
        size_t i = 0;
        cJSON_ArrayForEach(e, ev->env) {
                const char *n = string_item(e, "name");
                if (n && strcmp(n, name) == 0) {
                        *ret_index = i;
                        found = e;
                }
                i++;
        }
        return found;
}

/* Env entries to add, kept aside so that they follow the changes to the
 * entries the container has, and so that a container without env gets one
 * "add" of them all. */
struct new_env {
        struct change items[MAX_NEW_ENV];
        size_t n;
};

static int new_env_add(struct new_env *ne, const char *name, const char *value)
{
        if (ne->n == MAX_NEW_ENV)
                return -E2BIG;
        ne->items[ne->n++] = (struct change){ .kind = CHANGE_ADD_ENV, .name = name, .value = value };
        return 0;
}

/* SPARK_JAVA_OPT_<n>=value */
static int new_env_add_java_opt(struct new_env *ne, unsigned n, const char *value)
{
        if (ne->n == MAX_NEW_ENV)
                return -E2BIG;
        ne->items[ne->n++] = (struct change){ .kind = CHANGE_ADD_JAVA_OPT, .index = n, .value = value };
        return 0;
}

/* A change to container ev. */
static struct change in_container(const struct env_view *ev, enum change_kind kind)
{
        return (struct change){
                .kind = kind, .list = ev->list, .container = (unsigned)ev->container, .container_name = ev->name
        };
}

/* Sets the value of the existing entry env[index], named `name`, which had `old`. */
static int op_set_env_value(struct mutation *m, const struct env_view *ev, size_t index, const char *name,
                            const char *value, const char *old)
{
        struct change c = in_container(ev, CHANGE_SET_ENV);
        c.index = (unsigned)index;
        c.name = name;
        c.value = value;
        c.old = old ? old : "";
        return change_add(m, c);
}

static int op_append_env(struct mutation *m, const struct env_view *ev, const struct new_env *ne)
{
        int r = 0;
        for (size_t i = 0; r == 0 && i < ne->n; i++) {
                struct change c = in_container(ev, ne->items[i].kind);
                c.place = cJSON_IsArray(ev->env) ? CHANGE_PLACE_ADD : CHANGE_PLACE_NEW;
                c.index = ne->items[i].index;
                c.name = ne->items[i].name;
                c.value = ne->items[i].value;
                r = change_add(m, c);
        }
        return r;
}

static bool has_token(const char *value, const char *token)
{
        size_t n = strlen(token);
        if (n == 0)
                return true;
        for (const char *s = value; (s = strstr(s, token)); s++) {
                bool starts = s == value || s[-1] == ' ' || s[-1] == '\t' || s[-1] == '\n';
                char after = s[n];
                bool ends = after == '\0' || after == ' ' || after == '\t' || after == '\n';
                if (starts && ends)
                        return true;
        }
        return false;
}

/* SPARK_SUBMIT_OPTS or JAVA_TOOL_OPTIONS: our flags first, then what the
 * pod had, so that a user's own flag wins. */
static int merge_flags_var(struct mutation *m, const struct rule *r, const struct env_view *ev, const char *name,
                           struct new_env *ne, bool *changed)
{
        size_t index;
        const cJSON *e = env_find(ev, name, &index);
        if (!e) {
                *changed = true;
                return r->n_flags ? new_env_add(ne, name, r->flags_joined) : 0;
        }
        if (cJSON_GetObjectItemCaseSensitive(e, "valueFrom")) {
                mutation_warn(m, "%s comes from valueFrom and was left alone: its JVM flags lack the policy's", name);
                return 0;
        }
        const char *old = string_item(e, "value");
        if (!old)
                old = "";
        struct buf v;
        buf_init(&v, WH_MAX_PATCH_BYTES);
        int rc = 0;
        for (size_t i = 0; rc == 0 && i < r->n_flags; i++)
                if (!has_token(old, r->flags[i]))
                        rc = buf_printf(&v, "%s%s", v.len ? " " : "", r->flags[i]);
        if (rc == 0 && v.len) {
                if (*old)
                        rc = buf_printf(&v, " %s", old);
                const char *merged = rc == 0 ? pool_strdup(&m->strings, v.data) : NULL;
                if (rc == 0 && !merged)
                        rc = -ENOMEM;
                if (rc == 0) {
                        *changed = true;
                        rc = op_set_env_value(m, ev, index, name, merged, old);
                }
        }
        buf_free(&v);
        return rc == -ENOBUFS ? -E2BIG : rc;
}

/* Parses the n of SPARK_JAVA_OPT_n; false for other names. */
static bool java_opt_index(const char *name, unsigned long long *ret)
{
        size_t plen = strlen(ENV_JAVA_OPT_PREFIX);
        if (strncmp(name, ENV_JAVA_OPT_PREFIX, plen) != 0 || !name[plen])
                return false;
        unsigned long long v = 0;
        for (const char *s = name + plen; *s; s++) {
                if (*s < '0' || *s > '9')
                        return false;
                if (v > JAVA_OPT_INDEX_MAX)
                        continue;   /* saturate: such an index is past what we count from */
                v = v * 10 + (unsigned long long)(*s - '0');
        }
        *ret = v;
        return true;
}

/* One SPARK_JAVA_OPT_n per flag the executor lacks, numbered past the
 * highest index already there, so no index is ever reused. */
static int add_java_opts(struct mutation *m, const struct rule *r, const struct env_view *ev, struct new_env *ne,
                         bool *changed)
{
        unsigned long long next = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, ev->env) {
                const char *name = string_item(e, "name");
                unsigned long long idx;
                if (name && java_opt_index(name, &idx) && idx + 1 > next)
                        next = idx + 1;
        }
        for (size_t i = 0; i < r->n_flags; i++) {
                bool present = false;
                cJSON_ArrayForEach(e, ev->env) {
                        const char *name = string_item(e, "name");
                        const char *value = string_item(e, "value");
                        unsigned long long idx;
                        if (name && value && java_opt_index(name, &idx) && strcmp(value, r->flags[i]) == 0) {
                                present = true;
                                break;
                        }
                }
                if (present)
                        continue;
                if (next > JAVA_OPT_INDEX_MAX) {
                        mutation_warn(m, "SPARK_JAVA_OPT_ indices are exhausted; JVM flags not added");
                        return 0;
                }
                int rc = new_env_add_java_opt(ne, (unsigned)next++, r->flags[i]);
                if (rc < 0)
                        return rc;
                *changed = true;
        }
        return 0;
}

static int set_java_home(struct mutation *m, const struct rule *r, const struct env_view *ev, struct new_env *ne,
                         bool *changed)
{
        size_t index;
        if (!r->java_home)
                return 0;
        const cJSON *e = env_find(ev, ENV_JAVA_HOME, &index);
        if (!e) {
                *changed = true;
                return new_env_add(ne, ENV_JAVA_HOME, r->java_home);
        }
        if (cJSON_GetObjectItemCaseSensitive(e, "valueFrom")) {
                mutation_warn(m, "JAVA_HOME comes from valueFrom and was left alone");
                return 0;
        }
        const char *old = string_item(e, "value");
        if (old && strcmp(old, r->java_home) == 0)
                return 0;
        mutation_warn(m, "JAVA_HOME %.40s replaced by %.40s", old ? old : "(empty)", r->java_home);
        *changed = true;
        return op_set_env_value(m, ev, index, ENV_JAVA_HOME, r->java_home, old);
}

static int set_label(struct mutation *m, const struct rule *r, const cJSON *pod)
{
        return change_add(m, (struct change){ .kind = CHANGE_SET_IDENTITY_LABEL,
                                              .place = !pod_labels(pod)     ? CHANGE_PLACE_NEW
                                                       : m->identity_before ? CHANGE_PLACE_REPLACE
                                                                            : CHANGE_PLACE_ADD,
                                              .value = r->identity,
                                              .old = m->identity_before });
}

/* The aadpodidbinding label of a Spark pod under pod identity: the
 * namespace's identity, after onConflict. 1 when the pod would be refused
 * (audit mode) and nothing else is worth saying. */
static int pod_identity_label(const struct rule *r, const char *ns, const cJSON *pod, struct mutation *m)
{
        bool audit = m->mode == POLICY_MODE_AUDIT;
        const char *before = m->identity_before;

        if (before && strcmp(before, r->identity) != 0) {
                if (r->on_conflict == POLICY_CONFLICT_DENY) {
                        if (audit) {
                                mutation_warn(m, "audit: identity %s conflicts with %s; the pod would be refused",
                                              before, r->identity);
                                return 1;   /* nothing else matters: enforce refuses it */
                        }
                        mutation_deny(m,
                                      "namespace %s may not use Azure identity \"%s\" for Spark pods (label "
                                      "%s); it may use: %s",
                                      ns, before, CHANGE_IDENTITY_LABEL, r->identity);
                        return 0;
                }
                if (!audit)
                        mutation_warn(m, "%s %s replaced by %s, the identity of namespace %s", CHANGE_IDENTITY_LABEL,
                                      before, r->identity, ns);
        }
        m->identity_after = r->identity;
        if (before && strcmp(before, r->identity) == 0)
                return 0;
        if (audit)
                mutation_warn(m, "audit: would set label %s=%s", CHANGE_IDENTITY_LABEL, r->identity);
        return set_label(m, r, pod);
}

/* ---- workload identity ---- */

/* Where an item goes in a list: over the one at `found` (SIZE_MAX: none),
 * appended to the list, or with the list when there is none. */
static enum change_place list_place(bool exists, size_t found)
{
        return found != SIZE_MAX ? CHANGE_PLACE_REPLACE : exists ? CHANGE_PLACE_ADD : CHANGE_PLACE_NEW;
}

/* A linear search, not str_sorted_has(): the lists (a rule's allowed
 * identities, its extraContainers) keep the policy's order, which explain,
 * check-policy and the messages show, and are short. */
static bool in_list(const char *const *items, size_t n, const char *s)
{
        for (size_t i = 0; s && i < n; i++)
                if (strcmp(items[i], s) == 0)
                        return true;
        return false;
}

/* A claimed aadpodidbinding under workload identity: none is added; one the
 * namespace may use stays, another goes (override) or refuses (deny). 1
 * when the pod would be refused (audit mode). */
static int workload_identity_label(const struct rule *r, const char *ns, struct mutation *m)
{
        bool audit = m->mode == POLICY_MODE_AUDIT;
        const char *before = m->identity_before;
        if (!before || in_list(r->allowed_identities, r->n_allowed_identities, before))
                return 0;
        if (r->on_conflict == POLICY_CONFLICT_DENY) {
                if (!audit) {
                        mutation_deny(m,
                                      "namespace %s uses Azure workload identity (client %s) and may not use Azure "
                                      "identity \"%s\" (label %s)",
                                      ns, r->client_id, before, CHANGE_IDENTITY_LABEL);
                        return 0;
                }
                mutation_warn(m, "audit: label %s=%s: namespace %s uses workload identity; the pod would be refused",
                              CHANGE_IDENTITY_LABEL, before, ns);
                return 1;
        }
        mutation_warn(m, "%slabel %s=%s %s: namespace %s uses workload identity", audit ? "audit: " : "",
                      CHANGE_IDENTITY_LABEL, before, audit ? "would be removed" : "removed", ns);
        m->identity_after = NULL;
        return change_add(m, (struct change){ .kind = CHANGE_REMOVE_IDENTITY_LABEL, .old = before });
}

/* The federated service account. The driver must run as it; an executor
 * with the default account (Spark was not told otherwise) is corrected or
 * refused, following onConflict. 1 when the pod would be refused (audit mode). */
static int workload_identity_sa(const struct rule *r, const char *ns, const cJSON *pod, struct mutation *m)
{
        bool audit = m->mode == POLICY_MODE_AUDIT;
        const cJSON *spec = cJSON_GetObjectItemCaseSensitive(pod, "spec");
        const char *name = string_item(spec, "serviceAccountName");
        const char *old = string_item(spec, "serviceAccount");   /* deprecated, kept in step */
        const char *sa = name && *name ? name : old && *old ? old : SA_DEFAULT;
        const char *want = r->service_account;
        bool driver = m->role == POD_ROLE_DRIVER;

        if (!want || strcmp(sa, want) == 0 || !cJSON_IsObject(spec))
                return 0;   /* (a pod without a spec is the API server's to refuse) */
        if (driver || strcmp(sa, SA_DEFAULT) != 0 || r->on_conflict == POLICY_CONFLICT_DENY) {
                const char *conf = driver ? "driver" : "executor";
                if (audit) {
                        mutation_warn(m, "audit: service account %.63s is not %.63s; the pod would be refused", sa,
                                      want);
                        return 1;
                }
                mutation_deny(m,
                              "namespace %s uses Azure workload identity federated with service account "
                              "\"%s\", and this %s runs as \"%s\": submit with --conf "
                              "spark.kubernetes.authenticate.%s.serviceAccountName=%s%s",
                              ns, want, conf, sa, conf, want,
                              driver ? "" : " (or leave it unset: executors then use the driver's)");
                return 0;
        }
        mutation_warn(m, "%sserviceAccountName %s %s %s, the service account of namespace %s's workload identity",
                      audit ? "audit: " : "", sa, audit ? "would be replaced by" : "replaced by", want, ns);
        int rc = change_add(m, (struct change){ .kind = CHANGE_SET_SERVICE_ACCOUNT, .value = want, .old = name });
        if (rc == 0 && old)
                rc = change_add(
                        m, (struct change){ .kind = CHANGE_SET_DEPRECATED_SERVICE_ACCOUNT, .value = want, .old = old });
        return rc;
}

/* The AZURE_* variables of one container, collected into `ne` or set in
 * place. A different client or tenant is another identity: onConflict. */
static int workload_identity_env(struct mutation *m, const struct rule *r, const struct env_view *ev,
                                 struct new_env *ne, bool *changed)
{
        const struct {
                const char *name, *value;
                bool identity;
        } want[N_WI_ENV] = {
                { ENV_CLIENT_ID, r->client_id, true },
                { ENV_TENANT_ID, r->tenant_id, true },
                { ENV_TOKEN_FILE, POLICY_WI_TOKEN_FILE, false },
                { ENV_AUTHORITY, r->authority_host, false },
        };
        bool audit = m->mode == POLICY_MODE_AUDIT;
        for (size_t i = 0; i < N_WI_ENV; i++) {
                size_t index;
                int rc;
                const cJSON *e = env_find(ev, want[i].name, &index);
                if (!e) {
                        *changed = true;
                        if ((rc = new_env_add(ne, want[i].name, want[i].value)) < 0)
                                return rc;
                        continue;
                }
                if (cJSON_GetObjectItemCaseSensitive(e, "valueFrom")) {
                        mutation_warn(m, "%s of container %.63s comes from valueFrom and was left alone", want[i].name,
                                      ev->name);
                        continue;
                }
                const char *old = string_item(e, "value");
                if (old && strcmp(old, want[i].value) == 0)
                        continue;
                if (want[i].identity && r->on_conflict == POLICY_CONFLICT_DENY) {
                        if (!audit) {
                                mutation_deny(m, "container %s sets %s=%s, and its namespace's workload identity is %s",
                                              ev->name, want[i].name, old ? old : "", want[i].value);
                                return 0;
                        }
                        mutation_warn(m,
                                      "audit: %s=%.40s in container %.63s is another identity; the pod "
                                      "would be refused",
                                      want[i].name, old ? old : "", ev->name);
                        continue;
                }
                if (!audit && want[i].identity)   /* a GUID each: both fit in a warning */
                        mutation_warn(m, "%s %.40s replaced by %s", want[i].name, old && *old ? old : "(empty)",
                                      want[i].value);
                else if (!audit)
                        mutation_warn(m, "%s %.60s replaced by the policy's", want[i].name,
                                      old && *old ? old : "(empty)");
                *changed = true;
                if ((rc = op_set_env_value(m, ev, index, want[i].name, want[i].value, old)) < 0)
                        return rc;
        }
        return 0;
}

/* The token's mount in one container: added, or corrected when our volume
 * is mounted otherwise. A mount of another volume at our path cannot be
 * undone here: refused. */
static int workload_identity_mount(struct mutation *m, const cJSON *c, const struct env_view *ev, bool *changed)
{
        const cJSON *mounts = cJSON_GetObjectItemCaseSensitive(c, "volumeMounts");
        const cJSON *vm;
        size_t i = 0;
        bool found = false;
        cJSON_ArrayForEach(vm, (cJSON_IsArray(mounts) ? mounts : NULL)) {
                const char *name = string_item(vm, "name"), *path = string_item(vm, "mountPath");
                if (name && strcmp(name, POLICY_WI_VOLUME) == 0) {
                        found = true;
                        break;
                }
                if (path && strcmp(path, POLICY_WI_MOUNT_PATH) == 0) {
                        if (m->mode == POLICY_MODE_AUDIT)
                                mutation_warn(m,
                                              "audit: container %.63s mounts %.63s at " POLICY_WI_MOUNT_PATH
                                              "; the pod would be refused",
                                              ev->name, name ? name : "?");
                        else
                                mutation_deny(m,
                                              "container %s mounts volume %s at %s, where the workload identity "
                                              "token goes",
                                              ev->name, name ? name : "?", POLICY_WI_MOUNT_PATH);
                        return 0;
                }
                i++;
        }
        if (found) {
                const char *path = string_item(vm, "mountPath");
                const cJSON *ro = cJSON_GetObjectItemCaseSensitive(vm, "readOnly");
                bool same = path && strcmp(path, POLICY_WI_MOUNT_PATH) == 0 && cJSON_IsTrue(ro) &&
                            !cJSON_GetObjectItemCaseSensitive(vm, "subPath") &&
                            !cJSON_GetObjectItemCaseSensitive(vm, "subPathExpr");
                if (same)
                        return 0;
        }
        *changed = true;
        struct change mount = in_container(ev, CHANGE_TOKEN_MOUNT);
        mount.place = list_place(cJSON_IsArray(mounts), found ? i : SIZE_MAX);
        mount.index = (unsigned)i;
        return change_add(m, mount);
}

/* Whether a volume is our token volume as the rule wants it; what the API
 * server defaults (defaultMode) does not count. */
static bool token_volume_matches(const cJSON *v, const struct rule *r)
{
        const cJSON *projected = cJSON_GetObjectItemCaseSensitive(v, "projected");
        const cJSON *sources = cJSON_GetObjectItemCaseSensitive(projected, "sources");
        if (cJSON_GetArraySize(v) != 2 || !cJSON_IsArray(sources) || cJSON_GetArraySize(sources) != 1)
                return false;
        const cJSON *src = sources->child;
        const cJSON *tok = cJSON_GetObjectItemCaseSensitive(src, "serviceAccountToken");
        const cJSON *exp = cJSON_GetObjectItemCaseSensitive(tok, "expirationSeconds");
        const char *aud = string_item(tok, "audience"), *path = string_item(tok, "path");
        return cJSON_GetArraySize(src) == 1 && cJSON_GetArraySize(tok) == 3 && cJSON_IsNumber(exp) &&
               exp->valuedouble == (double)r->token_expiration_s && aud && strcmp(aud, POLICY_WI_AUDIENCE) == 0 &&
               path && strcmp(path, POLICY_WI_TOKEN_NAME) == 0;
}

/* The projected service-account token volume. */
static int workload_identity_volume(const struct rule *r, const cJSON *pod, struct mutation *m)
{
        const cJSON *spec = cJSON_GetObjectItemCaseSensitive(pod, "spec");
        const cJSON *volumes = cJSON_GetObjectItemCaseSensitive(spec, "volumes");
        const cJSON *v;
        size_t i = 0;
        bool found = false;
        cJSON_ArrayForEach(v, (cJSON_IsArray(volumes) ? volumes : NULL)) {
                const char *name = string_item(v, "name");
                if (name && strcmp(name, POLICY_WI_VOLUME) == 0) {
                        found = true;
                        break;
                }
                i++;
        }
        if (found && token_volume_matches(v, r))
                return 0;
        if (m->mode == POLICY_MODE_AUDIT)
                mutation_warn(m, "audit: would %s volume " POLICY_WI_VOLUME " (the projected service-account token)",
                              found ? "replace" : "add");
        return change_add(m, (struct change){ .kind = CHANGE_TOKEN_VOLUME,
                                              .place = list_place(cJSON_IsArray(volumes), found ? i : SIZE_MAX),
                                              .index = (unsigned)i,
                                              .expiration_s = r->token_expiration_s });
}

/* An image reference from its last path component on: "spark:3.5.1" of
 * "registry:5000/apache/spark:3.5.1". */
static const char *image_tag(const char *image)
{
        const char *slash = strrchr(image, '/');
        return slash ? slash + 1 : image;
}

/* The end of an image reference, short enough for a warning. */
static const char *image_tail(const char *image)
{
        size_t n = strlen(image);
        return n > IMAGE_SHOWN_MAX ? image + n - IMAGE_SHOWN_MAX : image;
}

/* Whether an image's tag says Spark 3.x ("apache/spark:3.5.1",
 * "spark-py:v3.4.0-...", before any @digest). */
static bool image_is_spark3(const char *image)
{
        const char *tag = NULL;
        for (const char *s = image_tag(image); *s && *s != '@'; s++)
                if (*s == ':')
                        tag = s + 1;
        if (!tag)
                return false;
        if (*tag == 'v')
                tag++;
        return tag[0] == '3' && tag[1] == '.' && tag[2] >= '0' && tag[2] <= '9';
}

/* Env and mount of a container that runs Spark code, besides the Spark container. */
static int workload_identity_container(struct mutation *m, const struct rule *r, const cJSON *c, enum change_list list,
                                       size_t index)
{
        const cJSON *env = cJSON_GetObjectItemCaseSensitive(c, "env");
        struct env_view ev = {
                .env = cJSON_IsArray(env) ? env : NULL, .list = list, .container = index, .name = string_item(c, "name")
        };
        struct new_env ne;
        bool changed = false;
        ne.n = 0;
        int rc = workload_identity_env(m, r, &ev, &ne, &changed);
        if (rc == 0 && m->decision != DECISION_DENIED)
                rc = op_append_env(m, &ev, &ne);
        if (rc == 0 && m->decision != DECISION_DENIED)
                rc = workload_identity_mount(m, c, &ev, &changed);
        if (rc == 0 && changed && m->mode == POLICY_MODE_AUDIT)
                mutation_warn(m, "audit: would add the workload identity's env and token mount to container %.63s",
                              ev.name);
        return rc;
}

/* The lists extra containers are looked for in, in this order. */
static const enum change_list container_lists[] = { CHANGE_INIT_CONTAINERS, CHANGE_CONTAINERS };

/* The first container at or after (*list, *index) that the rule names in
 * extraContainers, the Spark container (spec.containers[spark]) aside;
 * NULL past the last. Moves the cursor to it. */
static const cJSON *next_extra_container(const struct rule *r, const cJSON *pod, int spark, size_t *list, size_t *index)
{
        const cJSON *spec = cJSON_GetObjectItemCaseSensitive(pod, "spec");
        for (; r->n_extra_containers && *list < 2; (*list)++, *index = 0) {
                const cJSON *cs = cJSON_GetObjectItemCaseSensitive(spec, change_list_name(container_lists[*list]));
                const cJSON *c = cJSON_IsArray(cs) ? cJSON_GetArrayItem(cs, (int)*index) : NULL;
                for (; c; c = c->next, (*index)++)
                        if (!(*list == 1 && (int)*index == spark) && cJSON_IsObject(c) &&
                            in_list(r->extra_containers, r->n_extra_containers, string_item(c, "name")))
                                return c;
        }
        return NULL;
}

/* The init containers and sidecars the rule names. */
static int workload_identity_extra(const struct rule *r, const cJSON *pod, int spark, struct mutation *m)
{
        size_t list = 0, index = 0;
        for (const cJSON *c; (c = next_extra_container(r, pod, spark, &list, &index)); index++) {
                int rc = workload_identity_container(m, r, c, container_lists[list], index);
                if (rc < 0 || m->decision == DECISION_DENIED)
                        return rc;
        }
        return 0;
}

/* The Spark pod of a namespace with a rule, in enforce or audit mode. */
static int mutate_spark_pod(const struct rule *r, const char *ns, const cJSON *pod, struct mutation *m)
{
        bool audit = m->mode == POLICY_MODE_AUDIT;
        bool wi = r->auth == POLICY_AUTH_WORKLOAD_IDENTITY;
        int rc;

        if (wi) {
                rc = workload_identity_sa(r, ns, pod, m);
                if (rc == 0 && m->decision != DECISION_DENIED)
                        rc = workload_identity_label(r, ns, m);
        } else {
                rc = pod_identity_label(r, ns, pod, m);
        }
        if (rc != 0 || m->decision == DECISION_DENIED)
                return rc < 0 ? rc : 0;

        int ci = mutate_find_spark_container(pod);
        size_t list = 0, index = 0;
        if (wi && (ci >= 0 || next_extra_container(r, pod, ci, &list, &index))) {
                rc = workload_identity_volume(r, pod, m);
                if (rc < 0)
                        return rc;
        }
        if (ci < 0)
                return wi ? workload_identity_extra(r, pod, ci, m) : 0;
        const cJSON *container = cJSON_GetArrayItem(pod_containers(pod), ci);
        const cJSON *env = cJSON_GetObjectItemCaseSensitive(container, "env");
        struct env_view ev = { .env = cJSON_IsArray(env) ? env : NULL,
                               .list = CHANGE_CONTAINERS,
                               .container = (size_t)ci,
                               .name = string_item(container, "name") };
        struct new_env ne;
        bool home = false, flags = false, azure = false;
        const char *var = NULL;
        ne.n = 0;
        if (!ev.name)
                ev.name = "?";

        rc = set_java_home(m, r, &ev, &ne, &home);
        if (rc == 0 && r->jvm_env == POLICY_JVM_ENV_JAVA_TOOL_OPTIONS) {
                var = ENV_TOOL_OPTIONS;
                rc = merge_flags_var(m, r, &ev, var, &ne, &flags);
        } else if (rc == 0 && m->role == POD_ROLE_DRIVER) {
                var = ENV_SUBMIT_OPTS;
                rc = merge_flags_var(m, r, &ev, var, &ne, &flags);
        } else if (rc == 0) {
                var = ENV_JAVA_OPT_PREFIX "n";
                rc = add_java_opts(m, r, &ev, &ne, &flags);
        }
        if (rc == 0 && wi)
                rc = workload_identity_env(m, r, &ev, &ne, &azure);
        if (rc == 0 && m->decision != DECISION_DENIED)
                rc = op_append_env(m, &ev, &ne);
        if (rc == 0 && wi && m->decision != DECISION_DENIED)
                rc = workload_identity_mount(m, container, &ev, &azure);
        if (rc < 0 || m->decision == DECISION_DENIED)
                return rc;
        if (audit && home)
                mutation_warn(m, "audit: would set JAVA_HOME=%s", r->java_home);
        if (audit && flags)
                mutation_warn(m, "audit: would add the policy's JVM flags to %s", var);
        if (audit && azure)
                mutation_warn(m, "audit: would add the workload identity's env and token mount to container %.63s",
                              ev.name);
        const char *image = string_item(container, "image");
        if (wi && image && image_is_spark3(image))
                mutation_warn(m, SPARK3_WARNING, image_tail(image));
        return wi ? workload_identity_extra(r, pod, ci, m) : 0;
}

/* The namespace's rule is not known: it could not be read, or its
 * annotations do not make a rule. Pods for which that matters are refused
 * or let through with a warning, and the message says why. A pod that
 * claims an identity is judged even when the default mode is off. */
static void unknown_rule(const struct policy *p, const char *ns, const struct mutate_context *mc, struct mutation *m)
{
        const struct resolution *res = mc->res;
        bool audit = m->mode == POLICY_MODE_AUDIT;
        if (res->unknown) {
                const char *why = mc->lookup_error ? mc->lookup_error : "no namespace source";
                if (!policy_lookup_deny(p))
                        mutation_warn(m, "namespace %s could not be read (%.60s); allowed unchanged", ns, why);
                else if (audit && !m->identity_after)
                        mutation_warn(m, "audit: namespace %s could not be read (%.60s); the pod would be refused", ns,
                                      why);
                else
                        mutation_deny(m,
                                      "namespace %s could not be read (%s), and the policy refuses its Spark "
                                      "and identity-claiming pods then (onLookupFailure: deny)",
                                      ns, why);
                return;
        }
        /* Annotations that make no rule grant nothing: a claim is judged as in
         * a namespace without a rule, and Spark pods get no identity. */
        if (m->identity_after && check_claim(p, NULL, ns, m)) {
                size_t n = strlen(m->message);
                snprintf(m->message + n, sizeof m->message - n, " (its annotations make no rule: %s)", res->problem);
                utf8_mend(m->message);
                return;
        }
        if (m->role == POD_ROLE_NONE || m->mode == POLICY_MODE_OFF)
                return;
        if (audit)
                mutation_warn(m, "audit: namespace %s's annotations make no rule: %.60s", ns, res->problem);
        else
                mutation_deny(m, "namespace %s's spark-identity.io annotations do not make a valid rule: %s", ns,
                              res->problem);
}

/* What every decision starts from. */
static void decision_begin(const struct policy *p, const struct mutate_context *mc, const cJSON *pod,
                           struct mutation *m)
{
        const struct rule *r = mc->res->rule;
        m->rule = r;
        m->role = mutate_pod_role(pod);
        m->mode = r ? r->mode : policy_default_mode(p);
        m->identity_before = string_item(pod_labels(pod), CHANGE_IDENTITY_LABEL);
        m->app_id = string_item(pod_labels(pod), "spark-app-selector");
        m->app_name = string_item(pod_labels(pod), "spark-app-name");
        m->policy_sha256 = policy_sha256(p);
        m->identity_after = m->identity_before;
        m->decision = DECISION_UNCHANGED;
        m->auth = r ? r->auth : POLICY_AUTH_POD_IDENTITY;
        if (m->auth == POLICY_AUTH_WORKLOAD_IDENTITY) {
                const cJSON *spec = cJSON_GetObjectItemCaseSensitive(pod, "spec");
                const char *sa = string_item(spec, "serviceAccountName");
                m->client_id = r->client_id;
                m->service_account = sa && *sa ? sa : SA_DEFAULT;
        }
}

int mutate_pod(const struct policy *p, const char *ns, const struct mutate_context *mc, const cJSON *pod,
               struct mutation *m)
{
        const struct rule *r = mc->res->rule;
        int rc = 0;

        decision_begin(p, mc, pod, m);
        if (!ns)
                ns = "";
        bool spark = m->role != POD_ROLE_NONE;
        if (!r && (spark || m->identity_before) && (mc->res->unknown || mc->res->problem[0])) {
                if (m->mode != POLICY_MODE_OFF || m->identity_before)
                        unknown_rule(p, ns, mc, m);
                return 0;
        }
        /* A Spark pod of an enforcing rule carries what we set (or is
         * refused); every other pod keeps its label, so its claim is judged. */
        if (!(spark && r && m->mode == POLICY_MODE_ENFORCE) && check_claim(p, r, ns, m))
                return 0;
        if (m->mode == POLICY_MODE_OFF)
                return 0;
        if (!spark || !r) {
                if (spark && policy_unmatched_deny(p)) {
                        if (m->mode == POLICY_MODE_AUDIT)
                                mutation_warn(m,
                                              "audit: namespace %s has no Spark identity in the policy; "
                                              "the pod would be refused",
                                              ns);
                        else
                                mutation_deny(m,
                                              "namespace %s has no Spark identity in the policy, and the "
                                              "policy refuses Spark pods elsewhere (unmatched: deny)",
                                              ns);
                }
                return 0;
        }

        rc = mutate_spark_pod(r, ns, pod, m);
        if (rc < 0 || m->decision == DECISION_DENIED)
                return rc;
        if (m->n_changes) {
                m->decision = m->mode == POLICY_MODE_AUDIT ? DECISION_WOULD_MUTATE : DECISION_MUTATED;
                rc = jsonpatch_changes(&m->patch, m->changes, m->n_changes);
        }
        if (m->decision != DECISION_MUTATED)
                m->identity_after = m->identity_before;
        else if (m->auth == POLICY_AUTH_WORKLOAD_IDENTITY && r->service_account)
                m->service_account = r->service_account;   /* the driver's already was; executors' now are */
        return rc;
}

int mutate_claim(const struct policy *p, const char *ns, const struct mutate_context *mc, const cJSON *old_pod,
                 const cJSON *pod, struct mutation *m)
{
        decision_begin(p, mc, pod, m);
        if (!ns)
                ns = "";
        if (old_pod)
                m->identity_before = string_item(pod_labels(old_pod), CHANGE_IDENTITY_LABEL);
        const char *before = m->identity_before, *after = m->identity_after;
        /* Removed, or left as it was: allowed whatever the policy says now,
         * so that finalizers and garbage collection never get stuck. */
        if (!after || (old_pod && before && strcmp(before, after) == 0))
                return 0;
        if (!mc->res->rule && (mc->res->unknown || mc->res->problem[0])) {
                unknown_rule(p, ns, mc, m);
                return 0;
        }
        check_claim(p, mc->res->rule, ns, m);
        return 0;
}
