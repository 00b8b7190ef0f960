/* The decision log's line (decision_log.h). */
#include <stdio.h>

#include <cjson/cJSON.h>

#include "decision_log.h"
#include "log.h"
#include "review.h"

const char *decision_log_kind_key(enum change_kind kind)
{
        /* No default: a new kind of change does not compile (-Wswitch,
         * -Werror) until the log names it. */
        switch (kind) {
        case CHANGE_SET_IDENTITY_LABEL: return "setIdentityLabel";
        case CHANGE_REMOVE_IDENTITY_LABEL: return "removeIdentityLabel";
        case CHANGE_SET_SERVICE_ACCOUNT: return "setServiceAccountName";
        case CHANGE_SET_DEPRECATED_SERVICE_ACCOUNT: return "setServiceAccount";
        case CHANGE_SET_ENV: return "setEnv";
        case CHANGE_ADD_ENV: return "addEnv";
        case CHANGE_ADD_JAVA_OPT: return "addJavaOpt";
        case CHANGE_TOKEN_VOLUME: return "addTokenVolume";
        case CHANGE_TOKEN_MOUNT: return "addTokenMount";
        case CHANGE_KIND_MAX: break;
        }
        return NULL;
}

int decision_log_kinds(const struct mutation *m, struct buf *out)
{
        size_t count[CHANGE_KIND_MAX] = { 0 };
        for (size_t i = 0; i < m->n_changes; i++)
                if (decision_log_kind_key(m->changes[i].kind))
                        count[m->changes[i].kind]++;
        int r = buf_putc(out, '{');
        bool first = true;
        for (unsigned k = 0; r == 0 && k < CHANGE_KIND_MAX; k++) {
                if (!count[k])
                        continue;
                r = buf_printf(out, "%s\"%s\":%zu", first ? "" : ",", decision_log_kind_key((enum change_kind)k),
                               count[k]);
                first = false;
        }
        return r == 0 ? buf_putc(out, '}') : r;
}

static void log_groups(struct log_line *l, const cJSON *groups)
{
        if (!groups)
                return;
        struct buf g;
        const cJSON *it;
        buf_init(&g, WH_LOG_LINE_MAX);
        buf_putc(&g, '[');
        cJSON_ArrayForEach(it, groups)
                if (cJSON_IsString(it)) {
                        if (g.len > 1)
                                buf_putc(&g, ',');
                        buf_put_json_str(&g, it->valuestring);
                }
        if (buf_putc(&g, ']') == 0)
                log_raw(l, "groups", g.data);
        buf_free(&g);
}

static void log_warnings(struct log_line *l, const struct mutation *m)
{
        if (!m->n_warnings)
                return;
        struct buf w;
        buf_init(&w, WH_LOG_LINE_MAX);
        buf_putc(&w, '[');
        for (unsigned i = 0; i < m->n_warnings; i++) {
                if (i)
                        buf_putc(&w, ',');
                buf_put_json_str(&w, m->warnings[i]);
        }
        if (buf_putc(&w, ']') == 0)
                log_raw(l, "warnings", w.data);
        buf_free(&w);
}

/* What changed (or would, in audit mode), counted by kind: bounded whatever
 * the pod, and written before the patch, which a large pod may push out of
 * the line. A refusal's changes stop part way: none are counted. */
static void log_change_kinds(struct log_line *l, const struct mutation *m)
{
        if ((m->decision != DECISION_MUTATED && m->decision != DECISION_WOULD_MUTATE) || !m->n_changes)
                return;
        struct buf k;
        buf_init(&k, WH_LOG_LINE_MAX);
        if (decision_log_kinds(m, &k) == 0)
                log_raw(l, "changeKinds", k.data);
        buf_free(&k);
}

/* One line per admission decision: who asked for what, which rule and
 * policy applied, what we did and said. Nothing secret is in it: the policy
 * holds none, and no token or file content is logged. */
void decision_log_write(const struct admission *a, long long micros)
{
        const struct review *rv = &a->review;
        const struct mutation *m = &a->mutation;
        struct log_line l;
        log_begin_audit(&l, m->decision == DECISION_DENIED ? LOG_WARN : LOG_INFO, "admission");
        log_str(&l, "uid", rv->uid);
        log_str(&l, "namespace", rv->namespace_);
        log_str(&l, rv->is_pod ? "pod" : "object", rv->name);
        if (rv->is_namespace)
                log_str(&l, "resource", "namespaces");
        if (rv->subresource && *rv->subresource)
                log_str(&l, "subResource", rv->subresource);
        log_str(&l, "webhook", a->path == ADMISSION_VALIDATE ? "validate" : "mutate");
        log_str(&l, "operation", rv->operation);
        log_bool(&l, "dryRun", rv->dry_run);
        if (m->role != POD_ROLE_NONE)
                log_str(&l, "role", mutate_role_name(m->role));
        log_str(&l, "appId", m->app_id);
        log_str(&l, "appName", m->app_name);
        log_str(&l, "user", rv->username);
        log_groups(&l, rv->groups);
        if (m->rule)
                log_str(&l, "rule", m->rule->name);
        else
                log_raw(&l, "rule", "null"); /* present: no rule, as audit -o json says it */
        log_str(&l, "policySha256", m->policy_sha256);
        log_str(&l, "mode", policy_mode_name(m->mode));
        log_str(&l, "decision", mutate_decision_name(m->decision));
        log_str(&l, "identityBefore", m->identity_before);
        log_str(&l, "identity", m->identity_after);
        if (m->auth == POLICY_AUTH_WORKLOAD_IDENTITY) {
                log_str(&l, "auth", policy_auth_name(m->auth));
                log_str(&l, "clientId", m->client_id);
                log_str(&l, "serviceAccount", m->service_account);
        }
        log_int(&l, "changes", m->patch.n_ops);
        log_change_kinds(&l, m);
        if (m->patch.n_ops && m->patch.text.data)
                log_raw(&l, "patch", m->patch.text.data);
        log_warnings(&l, m);
        if (m->grant_keys[0])
                log_str(&l, "grantKeys", m->grant_keys);
        if (m->decision == DECISION_DENIED)
                log_str(&l, "reason", m->message);
        if (a->resolution.unknown)
                log_str(&l, "namespaceUnreadable", a->lookup_error);
        if (a->resolution.problem[0])
                log_str(&l, "annotationProblem", a->resolution.problem);
        log_int(&l, "micros", micros);
        log_end(&l);
}
