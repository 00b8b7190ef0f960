/* Rendering the policy for the API server: see include/core/render.h.
 *
 * The objects are built as one cJSON tree and written out as YAML or JSON
 * by the small emitters at the end, so that both formats say the same. */
#include "render.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "change.h"
#include "policy.h"
#include "pool.h"
#include "webhook_limits.h"
#include "err.h"

#define ANN(k) POLICY_ANNOTATION_PREFIX k
/* A GUID for the probes of what defaults give a rule made from annotations. */
#define PROBE_GUID "00000000-0000-4000-8000-000000000000"
/* Past this, the namespace's rule is cut short in the refusal message (the
 * API server drops a message of more than 5 KiB). */
#define MAY_USE_MESSAGE_CHARS "240"
/* What no selector index reaches (there are at most WH_MAX_POLICY_NAMESPACES). */
#define NO_SELECTOR 1000000000u

const char *render_format_name(enum render_format f)
{
        static const char *const names[RENDER_FORMAT_MAX] = { "yaml", "json" };
        return (unsigned)f < RENDER_FORMAT_MAX ? names[f] : NULL;
}

/* ---- CEL text ---- */

int render_cel_string(struct buf *b, const char *s)
{
        static const char hex[] = "0123456789abcdef";
        int r = buf_putc(b, '\'');
        for (; r == 0 && *s; s++) {
                unsigned char c = (unsigned char)*s;
                if (c == '\\' || c == '\'' || c == '"') {
                        char esc[2] = { '\\', (char)c };
                        r = buf_append(b, esc, 2);
                } else if (c < 0x20 || c == 0x7f) {
                        char esc[4] = { '\\', 'x', hex[c >> 4], hex[c & 15] };
                        r = buf_append(b, esc, 4);
                } else {
                        r = buf_putc(b, (char)c);
                }
        }
        return r ? r : buf_putc(b, '\'');
}

/* "'KEY' in variables.nsLabels" */
static int cel_has_label(struct buf *b, const char *key)
{
        int r = buf_putc(b, '(');
        if (r == 0)
                r = render_cel_string(b, key);
        return r ? r : buf_puts(b, " in variables.nsLabels)");
}

/* One requirement of a label selector, Kubernetes semantics. */
static int cel_requirement(struct buf *b, const struct policy_label_req *q)
{
        int r = 0;
        switch (q->op) {
        case POLICY_LABEL_IN:
        case POLICY_LABEL_NOT_IN:
                /* A missing label is in no set, so NotIn holds for it. */
                r = buf_puts(b, q->op == POLICY_LABEL_NOT_IN ? "!(" : "(");
                if (r == 0)
                        r = cel_has_label(b, q->key);
                if (r == 0)
                        r = buf_puts(b, " && variables.nsLabels[");
                if (r == 0)
                        r = render_cel_string(b, q->key);
                if (r == 0)
                        r = buf_puts(b, "] in [");
                for (size_t i = 0; r == 0 && i < q->n_values; i++) {
                        if (i)
                                r = buf_puts(b, ", ");
                        if (r == 0)
                                r = render_cel_string(b, q->values[i]);
                }
                return r ? r : buf_puts(b, "])");
        case POLICY_LABEL_EXISTS: return cel_has_label(b, q->key);
        case POLICY_LABEL_DOES_NOT_EXIST: r = buf_putc(b, '!'); return r ? r : cel_has_label(b, q->key);
        default: return -EINVAL;
        }
}

/* Whether selector `index` matches the namespace: its requirements joined
 * by &&, `true` for none; a comment names the selector. */
static int cel_selector(struct buf *b, const struct policy *p, size_t index)
{
        size_t n = 0;
        const struct policy_label_req *reqs = policy_selector_requirements(p, index, &n);
        int r = 0;
        for (size_t i = 0; r == 0 && i < n; i++) {
                if (i)
                        r = buf_puts(b, " && ");
                if (r == 0)
                        r = cel_requirement(b, &reqs[i]);
        }
        if (r == 0 && n == 0)
                r = buf_puts(b, "true");
        /* The rule's name ("selector NAME") as a line comment, when it is
         * plain text: a comment ends at the line. */
        const struct rule *rule = policy_selector_at(p, index);
        bool plain = rule && rule->name;
        for (const char *s = plain ? rule->name : ""; plain && *s; s++)
                plain = (unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f;
        if (r == 0)
                r = buf_printf(b, ",  // sel.%zu%s%s\n", index, plain ? ": " : "", plain ? rule->name : "");
        return r;
}

/* ---- the ConfigMap's data ---- */

struct data {
        cJSON *map;
        size_t bytes;          /* keys and values, as the API server counts them */
        char *err;
        size_t errlen;
};

/* A ConfigMap key: [-._a-zA-Z0-9]+, at most 253, neither "." nor "..*". */
static bool configmap_key(const char *k)
{
        size_t n = strlen(k);
        if (n == 0 || n > 253 || strcmp(k, ".") == 0 || strncmp(k, "..", 2) == 0)
                return false;
        for (; *k; k++)
                if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9') || *k == '-' ||
                      *k == '.' || *k == '_'))
                        return false;
        return true;
}

static int data_put(struct data *d, const char *prefix, const char *name, const char *value)
{
        char key[300];
        int n = snprintf(key, sizeof key, "%s%s", prefix, name);
        if (n < 0 || (size_t)n >= sizeof key || !configmap_key(key)) {
                snprintf(d->err, d->errlen,
                         "\"%s%.200s\" cannot be a ConfigMap key (at most 253 of "
                         "-._a-zA-Z0-9)",
                         prefix, name);
                return -EINVAL;
        }
        d->bytes += strlen(key) + strlen(value);
        if (d->bytes > RENDER_MAX_PARAMS_BYTES) {
                snprintf(d->err, d->errlen,
                         "the policy's data passes the %u bytes a ConfigMap may "
                         "hold; split the policy or move namespaces to selectors",
                         RENDER_MAX_PARAMS_BYTES);
                return -EINVAL;
        }
        return cJSON_AddStringToObject(d->map, key, value) ? 0 : -ENOMEM;
}

/* "<mode> <id>..." */
static int rule_text(struct buf *b, enum policy_mode mode, const char *const *ids, size_t n)
{
        buf_reset(b);
        int r = buf_puts(b, policy_mode_name(mode));
        for (size_t i = 0; r == 0 && i < n; i++)
                r = buf_printf(b, " %s", ids[i]);
        return r;
}

/* Whether the annotations make a rule for a namespace without an entry;
 * *ret_auth its auth. 1, 0, or -ENOMEM. */
static int annotations_make_rule(const struct policy *p, const struct kv *ann, size_t n, enum policy_auth *ret_auth)
{
        struct pool pool = POOL_INIT;
        struct resolution res;
        struct ns_info info = { .annotations = ann, .n_annotations = n };
        int r = policy_resolve(p, "", &info, &pool, &res);
        if (r == 0 && res.rule && ret_auth)
                *ret_auth = res.rule->auth;
        r = r < 0 ? r : res.rule != NULL;
        pool_free(&pool);
        return r;
}

/* What `defaults` give a rule made from annotations, found by asking
 * policy_resolve() about made-up namespaces: the auth of one without a
 * spark-identity.io/auth annotation, and what a workloadIdentity one must
 * carry itself. */
static int annotation_defaults(const struct policy *p, enum policy_auth *ret_auth, struct buf *ret_needs)
{
        enum policy_auth auth = POLICY_AUTH_POD_IDENTITY;
        int r = 0;
        buf_reset(ret_needs);
        if (!policy_reads_annotations(p))
                return buf_puts(ret_needs, "");
        /* The auth matters only for a rule with an identity annotation, which
         * must name a delegable identity: without one, no such rule exists. */
        for (size_t i = 0; i < policy_identity_count(p); i++) {
                const struct policy_identity *id = policy_identity_at(p, i);
                if (!id->delegable || id->reserved)
                        continue;
                const struct kv ann[] = { { ANN("identity"), id->identity },
                                          { ANN("client-id"), PROBE_GUID },
                                          { ANN("tenant-id"), PROBE_GUID } };
                r = annotations_make_rule(p, ann, sizeof ann / sizeof *ann, &auth);
                if (r < 0)
                        return r;
                break;
        }
        const struct kv wi_tenant[] = { { ANN("auth"), "workloadIdentity" }, { ANN("tenant-id"), PROBE_GUID } };
        const struct kv wi_client[] = { { ANN("auth"), "workloadIdentity" }, { ANN("client-id"), PROBE_GUID } };
        int has_client = annotations_make_rule(p, wi_tenant, 2, NULL);
        int has_tenant = annotations_make_rule(p, wi_client, 2, NULL);
        if (has_client < 0 || has_tenant < 0)
                return -ENOMEM;
        r = buf_printf(ret_needs, "%s%s%s", has_tenant ? "" : "tenant-id", !has_tenant && !has_client ? " " : "",
                       has_client ? "" : "client-id");
        *ret_auth = auth;
        return r;
}

/* The data of the namespace-grants policy, written whether or not the
 * policy reads namespaces: a namespace-grants policy left in the cluster
 * from an earlier rendering then reads `grants: "false"` and judges
 * nothing, instead of failing on missing keys.
 *
 * Lists are one item a line. policy_load() refuses a grantor that is empty
 * or holds a control character, so no user or group name, however odd
 * (spaces, commas, quotes, "group:" inside), can hold a line break or be
 * mistaken for two; label keys are label keys. No value becomes CEL text,
 * so nothing in them is ever evaluated. */
static int grants_data(const struct policy *p, struct data *d, struct buf *t)
{
        int r = data_put(d, "", "grants", policy_uses_namespaces(p) ? "true" : "false");
        buf_reset(t);
        for (size_t i = 0; r == 0 && i < policy_grantor_count(p); i++)
                r = buf_printf(t, "%s%s", i ? "\n" : "", policy_grantor_at(p, i));
        if (r == 0)
                r = data_put(d, "", "grantors", t->data ? t->data : "");
        buf_reset(t);
        for (size_t i = 0; r == 0 && i < policy_grant_label_count(p); i++)
                r = buf_printf(t, "%s%s", i ? "\n" : "", policy_grant_label_at(p, i));
        if (r == 0)
                r = data_put(d, "", "grantlabels", t->data ? t->data : "");
        return r;
}

static int params_data(const struct policy *p, struct data *d)
{
        struct buf t;
        enum policy_auth auth = POLICY_AUTH_POD_IDENTITY;
        size_t n_defaults = 0;
        const char *const *defaults = policy_default_allowed_identities(p, &n_defaults);
        int r;

        buf_init(&t, RENDER_MAX_PARAMS_BYTES);
        r = annotation_defaults(p, &auth, &t);
        if (r == 0)
                r = data_put(d, "", "annotations", policy_reads_annotations(p) ? "true" : "false");
        if (r == 0)
                r = data_put(d, "", "annotations.auth", policy_auth_name(auth));
        if (r == 0)
                r = data_put(d, "", "annotations.needs", t.data ? t.data : "");
        if (r == 0)
                r = rule_text(&t, policy_default_mode(p), defaults, n_defaults);
        if (r == 0)
                r = data_put(d, "", "defaults", t.data);
        if (r == 0)
                r = data_put(d, "", "unlisted", policy_unlisted_deny(p) ? "deny" : "allow");
        for (size_t i = 0; r == 0 && i < policy_rule_count(p); i++) {
                const struct rule *rule = policy_rule_at(p, i);
                r = rule_text(&t, rule->mode, rule->allowed_identities, rule->n_allowed_identities);
                if (r == 0)
                        r = data_put(d, "ns.", rule->name, t.data);
        }
        for (size_t i = 0; r == 0 && i < policy_selector_count(p); i++) {
                const struct rule *rule = policy_selector_at(p, i);
                char index[24];
                snprintf(index, sizeof index, "%zu", i);
                r = rule_text(&t, rule->mode, rule->allowed_identities, rule->n_allowed_identities);
                if (r == 0)
                        r = data_put(d, "sel.", index, t.data);
        }
        for (size_t i = 0; r == 0 && i < policy_identity_count(p); i++) {
                const struct policy_identity *id = policy_identity_at(p, i);
                r = data_put(d, "owner.", id->identity, policy_mode_name(id->protection));
        }
        for (size_t i = 0; r == 0 && i < policy_identity_count(p); i++) {
                const struct policy_identity *id = policy_identity_at(p, i);
                if (id->delegable && !id->reserved)
                        r = data_put(d, "delegable.", id->identity, "true");
        }
        if (r == 0)
                r = grants_data(p, d, &t);
        if (r == -ENOBUFS) {
                snprintf(d->err, d->errlen, "a rule of the policy passes the %u bytes a ConfigMap may hold",
                         RENDER_MAX_PARAMS_BYTES);
                r = -EINVAL;
        }
        buf_free(&t);
        return r;
}

/* ---- the policy's CEL ---- */

/* CEL written as CEL, one clause a line: clang-format leaves it. */
/* clang-format off */

/* The label that the request adds or changes; ordinary updates of a pod
 * are never evaluated. */
static const char MATCH_LABEL_CHANGED[] =
        "has(object.metadata.labels) && '" CHANGE_IDENTITY_LABEL "' in object.metadata.labels &&\n"
        "(oldObject == null || !has(oldObject.metadata.labels) ||\n"
        " !('" CHANGE_IDENTITY_LABEL "' in oldObject.metadata.labels) ||\n"
        " oldObject.metadata.labels['" CHANGE_IDENTITY_LABEL "'] != object.metadata.labels['" CHANGE_IDENTITY_LABEL "'])";

/* A rule made from annotations, "<mode> <id>..." as in the ConfigMap, or
 * '' when they make none (which refuses what their namespace claims as if
 * it had no rule): policy_resolve() in CEL. */
static const char ANNOTATION_RULE[] =
        "(!('" ANN("auth") "' in variables.nsAnnotations) ||\n"
        "  variables.nsAnnotations['" ANN("auth") "'] in ['podIdentity', 'workloadIdentity']) &&\n"
        "(!('" ANN("service-account") "' in variables.nsAnnotations) ||\n"
        "  (variables.nsAnnotations['" ANN("service-account") "'].size() <= 253 &&\n"
        "   variables.nsAnnotations['" ANN("service-account") "'].matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'))) &&\n"
        "(!('" ANN("identity") "' in variables.nsAnnotations) ||\n"
        "  ('delegable.' + variables.nsAnnotations['" ANN("identity") "']) in params.data) &&\n"
        "(!('" ANN("client-id") "' in variables.nsAnnotations) ||\n"
        "  variables.nsAnnotations['" ANN("client-id") "'].matches('^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$')) &&\n"
        "(!('" ANN("tenant-id") "' in variables.nsAnnotations) ||\n"
        "  variables.nsAnnotations['" ANN("tenant-id") "'].matches('^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$')) &&\n"
        "(!('" ANN("mode") "' in variables.nsAnnotations) ||\n"
        "  variables.nsAnnotations['" ANN("mode") "'] in ['enforce', 'audit', 'off']) &&\n"
        "(('" ANN("auth") "' in variables.nsAnnotations ? variables.nsAnnotations['" ANN("auth") "']\n"
        "   : params.data['annotations.auth']) == 'workloadIdentity'\n"
        "  ? params.data['annotations.needs'].split(' ').all(k, k == '' || ('" POLICY_ANNOTATION_PREFIX "' + k) in variables.nsAnnotations)\n"
        "  : '" ANN("identity") "' in variables.nsAnnotations && !('" ANN("service-account") "' in variables.nsAnnotations))\n"
        "? ('" ANN("mode") "' in variables.nsAnnotations ? variables.nsAnnotations['" ANN("mode") "']\n"
        "   : params.data['defaults'].split(' ')[0]) +\n"
        "  ('" ANN("identity") "' in variables.nsAnnotations ? ' ' + variables.nsAnnotations['" ANN("identity") "'] : '') +\n"
        "  params.data['defaults'].substring(params.data['defaults'].split(' ')[0].size())\n"
        ": ''";
/* clang-format on */

struct variable {
        const char *name;
        const char *expression;
};

/* Before the selectors. */
static const struct variable VARIABLES_HEAD[] = {
        { "identity", "object.metadata.labels['" CHANGE_IDENTITY_LABEL "']" },
        { "nsLabels", "has(namespaceObject.metadata.labels) ? namespaceObject.metadata.labels : {}" },
        { "nsAnnotations", "has(namespaceObject.metadata.annotations) ? namespaceObject.metadata.annotations : {}" },
        /* 1. the namespace's entry by name */
        { "named", "('ns.' + request.namespace) in params.data ? params.data['ns.' + request.namespace] : ''" },
        /* 2. its annotations, when the policy reads them */
        { "byAnnotations",
          "variables.named == '' && params.data['annotations'] == 'true' &&\n"
          "('" ANN("identity") "' in variables.nsAnnotations || '" ANN("auth") "' in variables.nsAnnotations)" },
        { "annotationRule", ANNOTATION_RULE },
};

/* After the selectors (variables.selector: the first that matches, or -1). */
static const struct variable VARIABLES_TAIL[] = {
        /* The namespace's rule: "<mode> <id>...", '' for none. */
        { "rule", "variables.named != '' ? variables.named\n"
                  ": variables.byAnnotations ? variables.annotationRule\n"
                  ": variables.selector >= 0 ? params.data['sel.' + string(variables.selector)]\n"
                  ": ''" },
        { "granted", "variables.rule != '' && (variables.rule + ' ').contains(' ' + variables.identity + ' ')" },
        /* A listed identity's protection, '' for an unlisted one. */
        { "protection",
          "('owner.' + variables.identity) in params.data ? params.data['owner.' + variables.identity] : ''" },
        { "allowed", "variables.granted ||\n"
                     "(variables.protection != '' ? variables.protection != 'enforce'\n"
                     " : params.data['unlisted'] != 'deny' && variables.rule.split(' ')[0] != 'enforce')" },
        { "mayUse", "variables.rule.indexOf(' ') < 0 ? 'none'\n"
                    ": variables.rule.substring(variables.rule.indexOf(' ') + 1).replace(' ', ', ')" },
};

static const char MESSAGE[] =
        "'namespace ' + request.namespace + ' may not use Azure identity \"' + variables.identity +\n"
        "'\" (label " CHANGE_IDENTITY_LABEL "): ' +\n"
        "(variables.protection != '' ? 'the policy reserves it to other namespaces'\n"
        " : params.data['unlisted'] == 'deny'\n"
        " ? 'the policy names it nowhere and refuses such identities (unlistedIdentities: deny)'\n"
        " : 'it is not in the rule of the namespace, which enforces') +\n"
        "(variables.rule == '' ? ''\n"
        " : variables.mayUse.size() > " MAY_USE_MESSAGE_CHARS " ? '; it may use: ' +\n"
        "   variables.mayUse.substring(0, " MAY_USE_MESSAGE_CHARS ") + '...'\n"
        " : '; it may use: ' + variables.mayUse) +\n"
        "(variables.byAnnotations && variables.annotationRule == ''\n"
        " ? ' (its " POLICY_ANNOTATION_PREFIX " annotations make no rule)' : '')";

/* ---- the namespace-grants policy's CEL: grants_judge() (grants.c) ---- */

/* The message cuts what it names where grants.c does (%.100s, a 256-byte
 * key list, a 160-byte grantor list, a WH_MAX_MESSAGE_CHARS message); CEL
 * counts characters where C counts bytes, which differs only past ASCII. */
#define GRANTS_USER_CHARS "100"
#define GRANTS_KEYS_CHARS "255"
#define GRANTS_GRANTORS_CHARS "159"
#define GRANTS_MESSAGE_CHARS "511"
/* policy.c's prefix of a group among the grantors, and its length. */
#define GRANTOR_GROUP "group:"
#define GRANTOR_GROUP_CHARS "6"
_Static_assert(sizeof GRANTOR_GROUP - 1 == 6, "GRANTOR_GROUP_CHARS is the length of GRANTOR_GROUP");

static const struct variable GRANTS_VARIABLES[] = {
        { "newAnnotations", "has(object.metadata.annotations) ? object.metadata.annotations : {}" },
        { "oldAnnotations",
          "oldObject != null && has(oldObject.metadata.annotations) ? oldObject.metadata.annotations : {}" },
        { "newLabels", "has(object.metadata.labels) ? object.metadata.labels : {}" },
        { "oldLabels", "oldObject != null && has(oldObject.metadata.labels) ? oldObject.metadata.labels : {}" },
        /* One item a line; '' (no item) is never a label key or a grantor. */
        { "grantLabels", "params.data['grantlabels'].split('\\n').filter(k, k != '')" },
        { "grantors", "params.data['grantors'].split('\\n').filter(g, g != '')" },
        /* The grant keys the request adds, changes or removes, as the
         * webhook names them: every spark-identity.io/ annotation, and each
         * label a selector reads. */
        { "changed",
          "variables.newAnnotations.filter(k, k.startsWith('" POLICY_ANNOTATION_PREFIX "') &&\n"
          "  (!(k in variables.oldAnnotations) || variables.oldAnnotations[k] != variables.newAnnotations[k]))\n"
          "  .map(k, 'annotation ' + k) +\n"
          "variables.oldAnnotations.filter(k, k.startsWith('" POLICY_ANNOTATION_PREFIX "') &&\n"
          "  !(k in variables.newAnnotations)).map(k, 'annotation ' + k) +\n"
          "variables.newLabels.filter(k, k in variables.grantLabels &&\n"
          "  (!(k in variables.oldLabels) || variables.oldLabels[k] != variables.newLabels[k]))\n"
          "  .map(k, 'label ' + k) +\n"
          "variables.oldLabels.filter(k, k in variables.grantLabels &&\n"
          "  !(k in variables.newLabels)).map(k, 'label ' + k)" },
        { "grantor",
          "variables.grantors.exists(g, g.startsWith('" GRANTOR_GROUP "')\n"
          "  ? has(request.userInfo.groups) && g.substring(" GRANTOR_GROUP_CHARS ") in request.userInfo.groups\n"
          "  : has(request.userInfo.username) && g == request.userInfo.username)" },
        { "allowed", "params.data['grants'] != 'true' || variables.changed.size() == 0 || variables.grantor" },
        /* The refusal, as grants_judge() words it (before the cut). */
        { "message",
          "'user ' + (!has(request.userInfo.username) ? '(unknown)'\n"
          "  : request.userInfo.username.size() > " GRANTS_USER_CHARS "\n"
          "  ? request.userInfo.username.substring(0, " GRANTS_USER_CHARS ") : request.userInfo.username) +\n"
          "' may not set grant keys of namespace ' + object.metadata.name + ' (' +\n"
          "(variables.changed.join(', ').size() > " GRANTS_KEYS_CHARS "\n"
          "  ? variables.changed.join(', ').substring(0, " GRANTS_KEYS_CHARS ") : variables.changed.join(', ')) +\n"
          "'): they decide which Azure identity its pods may use, and only the policy\\'s grantors may ' +\n"
          "'change them (' +\n"
          "(variables.grantors.size() == 0 ? 'none: the policy\\'s grantors list is empty'\n"
          "  : variables.grantors.join(', ').size() > " GRANTS_GRANTORS_CHARS "\n"
          "  ? variables.grantors.join(', ').substring(0, " GRANTS_GRANTORS_CHARS
          ") : variables.grantors.join(', ')) +\n"
          "')'" },
};

static const char GRANTS_MESSAGE[] = "variables.message.size() > " GRANTS_MESSAGE_CHARS
                                     " ? variables.message.substring(0, " GRANTS_MESSAGE_CHARS ")\n"
                                     ": variables.message";

static cJSON *variable(const char *name, const char *expression)
{
        cJSON *v = cJSON_CreateObject();
        if (v && (!cJSON_AddStringToObject(v, "name", name) || !cJSON_AddStringToObject(v, "expression", expression))) {
                cJSON_Delete(v);
                return NULL;
        }
        return v;
}

static int add_variable(cJSON *list, const char *name, const char *expression)
{
        cJSON *v = variable(name, expression);
        return v && cJSON_AddItemToArray(list, v) ? 0 : -ENOMEM;
}

/* variables.selector, the index of the first selector that matches the
 * namespace's labels or -1, as one list per RENDER_MAX_CEL_CHARS (the
 * API server parses at most 100,000 characters in an expression). */
static int selector_variables(const struct policy *p, cJSON *list, char *err, size_t errlen)
{
        size_t n = policy_selector_count(p), first = 0, chunks = 0;
        struct buf e, one, all;
        int r = 0;

        if (n == 0)
                return add_variable(list, "selector", "-1");
        buf_init(&e, RENDER_MAX_CEL_CHARS);
        buf_init(&one, RENDER_MAX_CEL_CHARS);
        buf_init(&all, RENDER_MAX_CEL_CHARS);
        while (r == 0 && first < n) {
                size_t i = first;
                buf_reset(&e);
                r = buf_puts(&e, "[\n");
                while (r == 0 && i < n) {
                        buf_reset(&one);
                        r = cel_selector(&one, p, i);
                        if (r == -ENOBUFS || (r == 0 && e.len + one.len + 32 > RENDER_MAX_CEL_CHARS)) {
                                if (i == first) {
                                        err_set(err, errlen,
                                                "selectors[%zu] makes a CEL expression longer "
                                                "than %u characters",
                                                i, RENDER_MAX_CEL_CHARS);
                                        r = -EINVAL;
                                } else {
                                        r = 0;
                                }
                                break;
                        }
                        if (r == 0)
                                r = buf_append(&e, one.data, one.len);
                        i++;
                }
                if (r == 0)
                        r = buf_puts(&e, "].indexOf(true)");
                if (r == 0) {
                        char name[32];
                        snprintf(name, sizeof name, "selector%zu", chunks);
                        r = add_variable(list, name, e.data);
                }
                /* First match over the lists: the smallest index found. */
                if (r == 0)
                        r = buf_printf(&all, "%s  variables.selector%zu < 0 ? %u : %zu + variables.selector%zu",
                                       chunks ? ",\n" : "[\n", chunks, NO_SELECTOR, first, chunks);
                chunks++;
                first = i;
        }
        if (r == 0 && chunks == 1)
                r = add_variable(list, "selector", "variables.selector0");
        else if (r == 0) {
                r = buf_printf(&all, "\n].min()");
                if (r == 0)
                        r = add_variable(list, "selectorFirst", all.data);
                if (r == 0) {
                        char expr[96];
                        snprintf(expr, sizeof expr, "variables.selectorFirst >= %u ? -1 : variables.selectorFirst",
                                 NO_SELECTOR);
                        r = add_variable(list, "selector", expr);
                }
        }
        if (r == -ENOBUFS) {
                err_set(err, errlen, "the selectors make more than %u characters of CEL", RENDER_MAX_CEL_CHARS);
                r = -EINVAL;
        }
        buf_free(&e);
        buf_free(&one);
        buf_free(&all);
        return r;
}

/* ---- the objects ---- */

static cJSON *metadata(const char *name, const char *namespace_, const char *sha256)
{
        cJSON *md = cJSON_CreateObject(), *labels, *ann;
        if (!md || !cJSON_AddStringToObject(md, "name", name) ||
            (namespace_ && !cJSON_AddStringToObject(md, "namespace", namespace_)) ||
            !(labels = cJSON_AddObjectToObject(md, "labels")) ||
            !cJSON_AddStringToObject(labels, "app.kubernetes.io/name", "spark-identity-webhook") ||
            !cJSON_AddStringToObject(labels, "app.kubernetes.io/component", "admission-policy") ||
            !(ann = cJSON_AddObjectToObject(md, "annotations")) ||
            !cJSON_AddStringToObject(ann, "spark-identity.io/generated-by", RENDER_COMMAND) ||
            !cJSON_AddStringToObject(ann, "spark-identity.io/policy-sha256", sha256)) {
                cJSON_Delete(md);
                return NULL;
        }
        return md;
}

static cJSON *object(const char *api_version, const char *kind, cJSON *md)
{
        cJSON *o = cJSON_CreateObject();
        if (!o || !md || !cJSON_AddStringToObject(o, "apiVersion", api_version) ||
            !cJSON_AddStringToObject(o, "kind", kind) || !cJSON_AddItemToObject(o, "metadata", md)) {
                cJSON_Delete(md);
                cJSON_Delete(o);
                return NULL;
        }
        return o;
}

static cJSON *strings(const char *const *s, int n)
{
        return cJSON_CreateStringArray(s, n);
}

static int add(cJSON *to, const char *key, cJSON *item)
{
        if (!item)
                return -ENOMEM;
        if (!cJSON_AddItemToObject(to, key, item)) {
                cJSON_Delete(item);
                return -ENOMEM;
        }
        return 0;
}

static int params_object(const struct policy *p, const char *ns, cJSON *items, char *err, size_t errlen)
{
        cJSON *cm = object("v1", "ConfigMap", metadata(RENDER_PARAMS_NAME, ns, policy_sha256(p)));
        struct data d = { .err = err, .errlen = errlen };
        int r;
        if (!cm)
                return -ENOMEM;
        cJSON_AddItemToArray(items, cm);
        d.map = cJSON_AddObjectToObject(cm, "data");
        if (!d.map)
                return -ENOMEM;
        r = params_data(p, &d);
        return r;
}

/* What the two admission policies share: a ValidatingAdmissionPolicy named
 * `name`, failurePolicy Fail, the parameter ConfigMap as paramKind, and one
 * resource rule (core v1, CREATE and UPDATE, `resources` at `scope`).
 * Appends it to `items`; *ret_spec is its spec, for the caller's
 * matchConditions and variables, then policy_validation(). */
static int policy_skeleton(const struct policy *p, const char *name, const char *const *resources, size_t n_resources,
                           const char *scope, cJSON *items, cJSON **ret_spec)
{
        static const char *const ops[] = { "CREATE", "UPDATE" };
        static const char *const core[] = { "" }, *const v1[] = { "v1" };
        cJSON *vap = object("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy",
                            metadata(name, NULL, policy_sha256(p)));
        cJSON *spec, *o, *list;

        if (!vap)
                return -ENOMEM;
        cJSON_AddItemToArray(items, vap);
        if (!(spec = cJSON_AddObjectToObject(vap, "spec")) || !cJSON_AddStringToObject(spec, "failurePolicy", "Fail") ||
            !(o = cJSON_AddObjectToObject(spec, "paramKind")) || !cJSON_AddStringToObject(o, "apiVersion", "v1") ||
            !cJSON_AddStringToObject(o, "kind", "ConfigMap") ||
            !(o = cJSON_AddObjectToObject(spec, "matchConstraints")) ||
            !(list = cJSON_AddArrayToObject(o, "resourceRules")) || !(o = cJSON_CreateObject()) ||
            !cJSON_AddItemToArray(list, o))
                return -ENOMEM;
        if (add(o, "apiGroups", strings(core, 1)) || add(o, "apiVersions", strings(v1, 1)) ||
            add(o, "operations", strings(ops, 2)) || add(o, "resources", strings(resources, n_resources)) ||
            !cJSON_AddStringToObject(o, "scope", scope))
                return -ENOMEM;
        *ret_spec = spec;
        return 0;
}

/* The one validation of both policies: variables.allowed, Forbidden. */
static int policy_validation(cJSON *spec, const char *message_expression, const char *message)
{
        cJSON *list, *o;
        if (!(list = cJSON_AddArrayToObject(spec, "validations")) || !(o = cJSON_CreateObject()) ||
            !cJSON_AddItemToArray(list, o) || !cJSON_AddStringToObject(o, "expression", "variables.allowed") ||
            !cJSON_AddStringToObject(o, "messageExpression", message_expression) ||
            !cJSON_AddStringToObject(o, "message", message) || !cJSON_AddStringToObject(o, "reason", "Forbidden"))
                return -ENOMEM;
        return 0;
}

static int policy_object(const struct policy *p, cJSON *items, char *err, size_t errlen)
{
        static const char *const resources[] = { "pods", "pods/status" };
        cJSON *spec, *o, *list;
        int r = policy_skeleton(p, RENDER_POLICY_NAME, resources, 2, "Namespaced", items, &spec);
        if (r < 0)
                return r;
        if (!(list = cJSON_AddArrayToObject(spec, "matchConditions")) || !(o = cJSON_CreateObject()) ||
            !cJSON_AddItemToArray(list, o) || !cJSON_AddStringToObject(o, "name", "identity-label-added-or-changed") ||
            !cJSON_AddStringToObject(o, "expression", MATCH_LABEL_CHANGED))
                return -ENOMEM;

        if (!(list = cJSON_AddArrayToObject(spec, "variables")))
                return -ENOMEM;
        for (size_t i = 0; r == 0 && i < sizeof VARIABLES_HEAD / sizeof *VARIABLES_HEAD; i++)
                r = add_variable(list, VARIABLES_HEAD[i].name, VARIABLES_HEAD[i].expression);
        if (r == 0)
                r = selector_variables(p, list, err, errlen);
        for (size_t i = 0; r == 0 && i < sizeof VARIABLES_TAIL / sizeof *VARIABLES_TAIL; i++)
                r = add_variable(list, VARIABLES_TAIL[i].name, VARIABLES_TAIL[i].expression);
        return r < 0 ? r
                     : policy_validation(spec, MESSAGE,
                                         "the pod's " CHANGE_IDENTITY_LABEL " label claims an "
                                         "Azure identity its namespace may not use");
}

/* A binding of policy `name` to the ConfigMap in `ns`: Deny, and Deny when
 * the ConfigMap is missing. With `exclude`, every namespace but kube-system
 * and `ns`; without, everything the policy matches. */
static int binding_object(const struct policy *p, const char *name, const char *ns, bool exclude, cJSON *items)
{
        static const char *const deny[] = { "Deny" };
        const char *excluded[] = { "kube-system", ns };
        cJSON *b = object("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding",
                          metadata(name, NULL, policy_sha256(p)));
        cJSON *spec, *o, *sel, *list, *req;
        if (!b)
                return -ENOMEM;
        cJSON_AddItemToArray(items, b);
        if (!(spec = cJSON_AddObjectToObject(b, "spec")) || !cJSON_AddStringToObject(spec, "policyName", name) ||
            !(o = cJSON_AddObjectToObject(spec, "paramRef")) ||
            !cJSON_AddStringToObject(o, "name", RENDER_PARAMS_NAME) || !cJSON_AddStringToObject(o, "namespace", ns) ||
            !cJSON_AddStringToObject(o, "parameterNotFoundAction", "Deny") ||
            add(spec, "validationActions", strings(deny, 1)))
                return -ENOMEM;
        if (!exclude)
                return 0;
        if (!(o = cJSON_AddObjectToObject(spec, "matchResources")) ||
            !(sel = cJSON_AddObjectToObject(o, "namespaceSelector")) ||
            !(list = cJSON_AddArrayToObject(sel, "matchExpressions")) || !(req = cJSON_CreateObject()) ||
            !cJSON_AddItemToArray(list, req) || !cJSON_AddStringToObject(req, "key", "kubernetes.io/metadata.name") ||
            !cJSON_AddStringToObject(req, "operator", "NotIn") ||
            add(req, "values", strings(excluded, strcmp(ns, "kube-system") == 0 ? 1 : 2)))
                return -ENOMEM;
        return 0;
}

/* The namespace-grants policy: namespace CREATE and UPDATE, also through
 * the subresources whose strategies keep metadata changes (status,
 * finalize), judged as grants_judge() judges them. */
static int grants_policy_object(const struct policy *p, cJSON *items)
{
        static const char *const resources[] = { "namespaces", "namespaces/status", "namespaces/finalize" };
        cJSON *spec, *list;
        int r = policy_skeleton(p, RENDER_GRANTS_POLICY_NAME, resources, 3, "Cluster", items, &spec);
        if (r < 0)
                return r;
        if (!(list = cJSON_AddArrayToObject(spec, "variables")))
                return -ENOMEM;
        for (size_t i = 0; r == 0 && i < sizeof GRANTS_VARIABLES / sizeof *GRANTS_VARIABLES; i++)
                r = add_variable(list, GRANTS_VARIABLES[i].name, GRANTS_VARIABLES[i].expression);
        return r < 0 ? r
                     : policy_validation(spec, GRANTS_MESSAGE,
                                         "only the policy's grantors may add, change "
                                         "or remove grant keys of a namespace (" POLICY_ANNOTATION_PREFIX
                                         " annotations, labels its selectors read)");
}

/* ---- YAML and JSON ---- */

static int indent_by(struct buf *b, int n)
{
        int r = 0;
        while (r == 0 && n-- > 0)
                r = buf_putc(b, ' ');
        return r;
}

/* Whether `s` reads back as the same string without quotes, in YAML 1.1
 * and 1.2 alike: letters first, then letters, digits, - . _ / and inner
 * spaces, and not a word either reads as a boolean or null. */
static bool yaml_plain(const char *s)
{
        static const char *const words[] = { "true", "false", "yes", "no", "on", "off", "y", "n", "null" };
        size_t n = strlen(s);
        if (n == 0 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')) || s[n - 1] == ' ')
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                      c == '.' || c == '_' || c == '/' || c == ' '))
                        return false;
        }
        for (size_t i = 0; i < sizeof words / sizeof *words; i++)
                if (strcasecmp(s, words[i]) == 0)
                        return false;
        return true;
}

/* Whether `s` can be a literal block scalar (|-): several lines of
 * printable text, none ending in a blank, the first not indented. */
static bool yaml_block(const char *s)
{
        if (!strchr(s, '\n') || s[0] == ' ' || s[0] == '\n')
                return false;
        for (const char *c = s; *c; c++) {
                if (((unsigned char)*c < 0x20 && *c != '\n') || *c == 0x7f)
                        return false;
                if (*c == ' ' && (c[1] == '\n' || c[1] == '\0'))
                        return false;
        }
        return s[strlen(s) - 1] != '\n';
}

static int yaml_quoted(struct buf *b, const char *s)
{
        static const char hex[] = "0123456789abcdef";
        int r = buf_putc(b, '"');
        for (; r == 0 && *s; s++) {
                unsigned char c = (unsigned char)*s;
                if (c == '"' || c == '\\') {
                        char esc[2] = { '\\', (char)c };
                        r = buf_append(b, esc, 2);
                } else if (c == '\n') {
                        r = buf_puts(b, "\\n");
                } else if (c < 0x20 || c == 0x7f) {
                        char esc[4] = { '\\', 'x', hex[c >> 4], hex[c & 15] };
                        r = buf_append(b, esc, 4);
                } else {
                        r = buf_putc(b, (char)c);
                }
        }
        return r ? r : buf_putc(b, '"');
}

/* A scalar after "key:" or "- " (the separating space included); a block
 * scalar's lines go at `indent`. */
static int yaml_scalar(struct buf *b, const cJSON *v, int indent)
{
        if (cJSON_IsString(v)) {
                const char *s = v->valuestring;
                if (yaml_block(s)) {
                        int r = buf_puts(b, " |-\n");
                        while (r == 0 && *s) {
                                const char *nl = strchr(s, '\n');
                                size_t n = nl ? (size_t)(nl - s) : strlen(s);
                                if (n)
                                        r = indent_by(b, indent);
                                if (r == 0)
                                        r = buf_append(b, s, n);
                                if (r == 0)
                                        r = buf_putc(b, '\n');
                                s += n + (nl ? 1 : 0);
                        }
                        return r;
                }
                int r = buf_putc(b, ' ');
                if (r == 0)
                        r = yaml_plain(s) ? buf_puts(b, s) : yaml_quoted(b, s);
                return r ? r : buf_putc(b, '\n');
        }
        if (cJSON_IsBool(v))
                return buf_puts(b, cJSON_IsTrue(v) ? " true\n" : " false\n");
        if (cJSON_IsNumber(v))
                return buf_printf(b, " %.17g\n", v->valuedouble);
        if (cJSON_IsObject(v))
                return buf_puts(b, " {}\n");
        if (cJSON_IsArray(v))
                return buf_puts(b, " []\n");
        return buf_puts(b, " null\n");
}

static bool empty(const cJSON *v)
{
        return (!cJSON_IsObject(v) && !cJSON_IsArray(v)) || !v->child;
}

/* A short list of one-line scalars, written [a, b]. */
static bool yaml_flow(const cJSON *list)
{
        size_t n = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, list) {
                if (!cJSON_IsString(it) || strchr(it->valuestring, '\n'))
                        return false;
                n += strlen(it->valuestring) + 4;
        }
        return n <= 72;
}

static int yaml_mapping(struct buf *b, const cJSON *map, int indent, bool first_inline);

static int yaml_sequence(struct buf *b, const cJSON *list, int indent)
{
        int r = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, list) {
                r = indent_by(b, indent);
                if (r == 0)
                        r = buf_putc(b, '-');
                if (r == 0 && cJSON_IsObject(it) && !empty(it)) {
                        r = buf_putc(b, ' ');
                        if (r == 0)
                                r = yaml_mapping(b, it, indent + 2, true);
                } else if (r == 0 && cJSON_IsArray(it) && !empty(it)) {
                        r = buf_putc(b, '\n');
                        if (r == 0)
                                r = yaml_sequence(b, it, indent + 2);
                } else if (r == 0) {
                        r = yaml_scalar(b, it, indent + 2);
                }
                if (r)
                        return r;
        }
        return r;
}

static int yaml_mapping(struct buf *b, const cJSON *map, int indent, bool first_inline)
{
        int r = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, map) {
                if (it != map->child || !first_inline)
                        r = indent_by(b, indent);
                if (r == 0)
                        r = yaml_plain(it->string) ? buf_puts(b, it->string) : yaml_quoted(b, it->string);
                if (r == 0)
                        r = buf_putc(b, ':');
                if (r == 0 && cJSON_IsObject(it) && !empty(it)) {
                        r = buf_putc(b, '\n');
                        if (r == 0)
                                r = yaml_mapping(b, it, indent + 2, false);
                } else if (r == 0 && cJSON_IsArray(it) && !empty(it) && yaml_flow(it)) {
                        const cJSON *s;
                        r = buf_puts(b, " [");
                        cJSON_ArrayForEach(s, it) {
                                if (r == 0 && s != it->child)
                                        r = buf_puts(b, ", ");
                                if (r == 0)
                                        r = yaml_plain(s->valuestring) ? buf_puts(b, s->valuestring)
                                                                       : yaml_quoted(b, s->valuestring);
                        }
                        if (r == 0)
                                r = buf_puts(b, "]\n");
                } else if (r == 0 && cJSON_IsArray(it) && !empty(it)) {
                        r = buf_putc(b, '\n');
                        if (r == 0)
                                r = yaml_sequence(b, it, indent);
                } else if (r == 0) {
                        r = yaml_scalar(b, it, indent + 2);
                }
                if (r)
                        return r;
        }
        return r;
}

static int json_value(struct buf *b, const cJSON *v, int indent)
{
        bool obj = cJSON_IsObject(v);
        int r = 0;
        if (cJSON_IsString(v))
                return buf_put_json_str(b, v->valuestring);
        if (cJSON_IsBool(v))
                return buf_puts(b, cJSON_IsTrue(v) ? "true" : "false");
        if (cJSON_IsNumber(v))
                return buf_printf(b, "%.17g", v->valuedouble);
        if (!obj && !cJSON_IsArray(v))
                return buf_puts(b, "null");
        if (empty(v))
                return buf_puts(b, obj ? "{}" : "[]");
        r = buf_puts(b, obj ? "{\n" : "[\n");
        const cJSON *it;
        cJSON_ArrayForEach(it, v) {
                if (r == 0)
                        r = indent_by(b, indent + 4);
                if (r == 0 && obj) {
                        r = buf_put_json_str(b, it->string);
                        if (r == 0)
                                r = buf_puts(b, ": ");
                }
                if (r == 0)
                        r = json_value(b, it, indent + 4);
                if (r == 0)
                        r = buf_puts(b, it->next ? ",\n" : "\n");
        }
        if (r == 0)
                r = indent_by(b, indent);
        return r ? r : buf_puts(b, obj ? "}" : "]");
}

int render_write_yaml(struct buf *out, const cJSON *items)
{
        int r = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, items) {
                if (r == 0)
                        r = buf_puts(out, "---\n");
                if (r == 0)
                        r = yaml_mapping(out, it, 0, false);
        }
        return r;
}

int render_write_json(struct buf *out, const cJSON *v)
{
        int r = json_value(out, v, 0);
        return r ? r : buf_putc(out, '\n');
}

static int header(struct buf *b, const struct policy *p, const char *ns)
{
        int r = buf_puts(b, "# The second line of defence of spark-identity-webhook: a ValidatingAdmissionPolicy,\n"
                            "# its binding and its parameter ConfigMap, with which the kube-apiserver itself refuses\n"
                            "# pods whose " CHANGE_IDENTITY_LABEL
                            " label claims an Azure identity their namespace may not\n"
                            "# carry, also while the webhook is down.\n"
                            "#\n");
        if (r == 0 && policy_uses_namespaces(p))
                r = buf_puts(b, "# And a second ValidatingAdmissionPolicy (" RENDER_GRANTS_POLICY_NAME ") with its\n"
                                "# binding, with which it refuses a namespace CREATE or UPDATE that adds, changes or\n"
                                "# removes a grant key (any " POLICY_ANNOTATION_PREFIX
                                " annotation, a label the selectors\n"
                                "# read) unless the user, or one of its groups, is one of the policy's grantors.\n"
                                "#\n");
        else if (r == 0)
                r = buf_puts(b, "# The policy reads no namespace labels or annotations (no selectors, no\n"
                                "# namespaceAnnotations): it has no grant keys, so namespace changes are not judged\n"
                                "# and no " RENDER_GRANTS_POLICY_NAME " policy is printed (one left from an\n"
                                "# earlier rendering reads grants: \"false\" below and judges nothing; delete it with\n"
                                "# kubectl delete validatingadmissionpolicy,validatingadmissionpolicybinding \\\n"
                                "#   " RENDER_GRANTS_POLICY_NAME ").\n"
                                "#\n");
        return r ? r
                 : buf_printf(b,
                              "# Generated by `" RENDER_COMMAND "%s%s` from the policy\n"
                              "# with sha256 %s.\n"
                              "# Do not edit: render it again whenever the policy changes (make render), or the API\n"
                              "# server goes on judging claims by the old policy.\n",
                              strcmp(ns, RENDER_NAMESPACE_DEFAULT) ? " --namespace " : "",
                              strcmp(ns, RENDER_NAMESPACE_DEFAULT) ? ns : "", policy_sha256(p));
}

int render_admission_policy(const struct policy *p, const char *ns, enum render_format format, struct buf *out,
                            char *err, size_t errlen)
{
        cJSON *list = cJSON_CreateObject(), *items;
        int r;

        err_set(err, errlen, "out of memory");
        if (!list || !cJSON_AddStringToObject(list, "apiVersion", "v1") ||
            !cJSON_AddStringToObject(list, "kind", "List") || !(items = cJSON_AddArrayToObject(list, "items"))) {
                r = -ENOMEM;
                goto out;
        }
        /* The ConfigMap first: applied in this order, the binding never
         * points at parameters that are not there yet. */
        r = params_object(p, ns, items, err, errlen);
        if (r == 0)
                r = policy_object(p, items, err, errlen);
        if (r == 0)
                r = binding_object(p, RENDER_POLICY_NAME, ns, true, items);
        /* Namespaces are judged as the namespace-grants webhook judges them:
         * all of them, kube-system and the webhook's own too. */
        if (r == 0 && policy_uses_namespaces(p))
                r = grants_policy_object(p, items);
        if (r == 0 && policy_uses_namespaces(p))
                r = binding_object(p, RENDER_GRANTS_POLICY_NAME, ns, false, items);
        if (r < 0)
                goto out;

        if (format == RENDER_JSON) {
                r = render_write_json(out, list);
        } else {
                r = header(out, p, ns);
                if (r == 0)
                        r = render_write_yaml(out, items);
        }
        if (r == -ENOBUFS)
                err_set(err, errlen, "the output passes %zu bytes", out->max);
out:
        cJSON_Delete(list);
        return r;
}
