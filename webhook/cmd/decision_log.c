/* The decision log's line (decision_log.h). */
#include <cjson/cJSON.h>

#include "decision_log.h"
#include "log.h"
#include "review.h"

static void log_groups(struct log_line *l, const cJSON *groups)
{
        if (!groups)
                return;
        struct buf g;
        const cJSON *it;
        buf_init(&g, 64u * 1024u);
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
        buf_init(&w, 64u * 1024u);
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

/* One line per admission decision: who asked for what, which rule and
 * policy applied, what we did and said. Nothing secret is in it: the policy
 * holds none, and no token or file content is logged. */
void log_decision(const struct admission *a, long long micros)
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
                log_str(&l, "role", pod_role_name(m->role));
        log_str(&l, "appId", m->app_id);
        log_str(&l, "appName", m->app_name);
        log_str(&l, "user", rv->username);
        log_groups(&l, rv->groups);
        log_str(&l, "rule", m->rule ? m->rule->name : NULL);
        log_str(&l, "policySha256", m->policy_sha256);
        log_str(&l, "mode", policy_mode_name(m->mode));
        log_str(&l, "decision", decision_name(m->decision));
        log_str(&l, "identityBefore", m->identity_before);
        log_str(&l, "identity", m->identity_after);
        if (m->auth == POLICY_AUTH_WORKLOAD_IDENTITY) {
                log_str(&l, "auth", policy_auth_name(m->auth));
                log_str(&l, "clientId", m->client_id);
                log_str(&l, "serviceAccount", m->service_account);
        }
        log_int(&l, "changes", m->patch.n_ops);
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
