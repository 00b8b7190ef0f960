/* AdmissionReview parsing and response writing: see include/core/review.h. */
#include "review.h"

#include <errno.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "mutate.h"
#include "err.h"

#define API_V1 "admission.k8s.io/v1"
#define API_V1BETA1 "admission.k8s.io/v1beta1"

static const char *string_item(const cJSON *obj, const char *key)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
        return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Whether a {group, version, resource} names a core resource. */
static bool is_core(const cJSON *resource, const char *name)
{
        const cJSON *group = cJSON_GetObjectItemCaseSensitive(resource, "group");
        const char *res = string_item(resource, "resource");
        bool core = !group || (cJSON_IsString(group) && !*group->valuestring);
        return resource && core && res && strcmp(res, name) == 0;
}

/* Whether the request's object is the resource itself (kind `kind`), as it
 * is without a subresource and for status-like subresources; binding,
 * eviction and the CONNECT ones carry other objects. */
static bool object_is(const cJSON *object, const char *sub, const char *kind)
{
        const char *k = string_item(object, "kind");
        return !*sub || (k && strcmp(k, kind) == 0);
}

int review_parse(const char *body, size_t len, struct review *ret_review, char *err, size_t errlen)
{
        const char *end = NULL;
        cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, false);
        int r = -EINVAL;

        if (!root) {
                size_t at = end && end >= body ? (size_t)(end - body) : 0;
                err_set(err, errlen, "the body is not JSON (error near byte %zu)", at);
                return -EINVAL;
        }
        for (const char *p = end; p && p < body + len; p++) {
                if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
                        err_set(err, errlen,
                                "the body is not JSON (unexpected data after the "
                                "document at byte %zu)",
                                (size_t)(p - body));
                        cJSON_Delete(root);
                        return -EINVAL;
                }
        }
        struct review rv = { .root = root };
        const char *kind = string_item(root, "kind");
        rv.api_version = string_item(root, "apiVersion");
        if (!cJSON_IsObject(root) || !kind || strcmp(kind, "AdmissionReview") != 0) {
                err_set(err, errlen, "the body is not an AdmissionReview (kind must be AdmissionReview)");
                goto out;
        }
        if (!rv.api_version || (strcmp(rv.api_version, API_V1) != 0 && strcmp(rv.api_version, API_V1BETA1) != 0)) {
                err_set(err, errlen, "unsupported AdmissionReview apiVersion (want %s or %s)", API_V1, API_V1BETA1);
                goto out;
        }
        const cJSON *req = cJSON_GetObjectItemCaseSensitive(root, "request");
        if (!cJSON_IsObject(req)) {
                err_set(err, errlen, "the AdmissionReview has no request");
                goto out;
        }
        rv.uid = string_item(req, "uid");
        if (!rv.uid || !*rv.uid) {
                err_set(err, errlen, "the AdmissionReview request has no uid");
                goto out;
        }
        rv.operation = string_item(req, "operation");
        rv.namespace_ = string_item(req, "namespace");
        rv.name = string_item(req, "name");
        const cJSON *user = cJSON_GetObjectItemCaseSensitive(req, "userInfo");
        rv.username = string_item(user, "username");
        const cJSON *groups = cJSON_GetObjectItemCaseSensitive(user, "groups");
        rv.groups = cJSON_IsArray(groups) ? groups : NULL;
        rv.dry_run = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "dryRun"));
        const char *sub = string_item(req, "subResource");
        const cJSON *resource = cJSON_GetObjectItemCaseSensitive(req, "resource");
        const cJSON *obj = cJSON_GetObjectItemCaseSensitive(req, "object");
        const cJSON *old = cJSON_GetObjectItemCaseSensitive(req, "oldObject");
        rv.subresource = sub ? sub : "";
        rv.object = cJSON_IsObject(obj) ? obj : NULL;
        rv.old_object = cJSON_IsObject(old) ? old : NULL;
        rv.is_pod = is_core(resource, "pods") && object_is(rv.object, rv.subresource, "Pod");
        rv.is_namespace = is_core(resource, "namespaces") && object_is(rv.object, rv.subresource, "Namespace");
        rv.is_configmap = is_core(resource, "configmaps") && !*rv.subresource;
        bool create = rv.operation && strcmp(rv.operation, "CREATE") == 0;
        bool update = rv.operation && strcmp(rv.operation, "UPDATE") == 0;
        if ((rv.is_pod || rv.is_namespace) && (create || update) && !rv.object) {
                err_set(err, errlen, "the %s %s request has no object", rv.is_pod ? "pod" : "namespace", rv.operation);
                goto out;
        }
        if (!rv.name && rv.object) {
                const cJSON *meta = cJSON_GetObjectItemCaseSensitive(rv.object, "metadata");
                rv.name = string_item(meta, "name");
                if (!rv.name)
                        rv.name = string_item(meta, "generateName");
        }
        *ret_review = rv;
        return 0;
out:
        cJSON_Delete(root);
        return r;
}

/* 0x80 in each byte of `x` that is 0, 0 in every other byte (exact: no
 * borrow crosses bytes, unlike the shorter haszero trick). */
static inline uint64_t zero_bytes(uint64_t x)
{
        const uint64_t low7 = 0x7f7f7f7f7f7f7f7full;
        return ~(((x & low7) + low7) | x | low7);
}

/* How many of the 8 bytes at `p` are ',', '[' or '{': each is compared
 * to the three at once, a word at a time, since this runs over every byte
 * of every review before it is parsed. */
static inline size_t openers8(const char *p)
{
        const uint64_t ones = 0x0101010101010101ull;
        uint64_t x;
        memcpy(&x, p, sizeof x);
        uint64_t m = zero_bytes(x ^ (ones * ',')) | zero_bytes(x ^ (ones * '[')) | zero_bytes(x ^ (ones * '{'));
        return (size_t)(((m >> 7) * ones) >> 56);   /* the 0x01s summed into the top byte */
}

size_t review_parse_cost(const char *body, size_t len)
{
        size_t values = 1, i = 0;
        for (; i + 8 <= len; i += 8)
                values += openers8(body + i);
        for (; i < len; i++) {
                char c = body[i];
                values += c == ',' || c == '[' || c == '{';
        }
        /* Each value a node, each member's key a small string of its own. */
        return values * (sizeof(cJSON) + 2 * sizeof(void *)) + len;
}

void review_free(struct review *r)
{
        cJSON_Delete(r->root);
        r->root = NULL;
}

/* Every answer's start: the review's apiVersion and uid, up to "allowed". */
static int response_head(const struct review *rv, struct buf *out)
{
        int r = buf_puts(out, "{\"apiVersion\":");
        if (r == 0)
                r = buf_put_json_str(out, rv->api_version);
        if (r == 0)
                r = buf_puts(out, ",\"kind\":\"AdmissionReview\",\"response\":{\"uid\":");
        if (r == 0)
                r = buf_put_json_str(out, rv->uid);
        return r;
}

int review_respond(const struct review *rv, const struct mutation *m, struct buf *out)
{
        bool denied = m && m->decision == DECISION_DENIED;
        bool patch = m && m->decision == DECISION_MUTATED && m->patch.n_ops;
        int r = response_head(rv, out);
        if (r == 0)
                r = buf_puts(out, denied ? ",\"allowed\":false" : ",\"allowed\":true");
        if (r == 0 && patch) {
                r = buf_puts(out, ",\"patchType\":\"JSONPatch\",\"patch\":\"");
                if (r == 0)
                        r = buf_put_base64(out, m->patch.text.data, m->patch.text.len);
                if (r == 0)
                        r = buf_putc(out, '"');
        }
        if (r == 0 && m && m->n_warnings) {
                r = buf_puts(out, ",\"warnings\":[");
                for (unsigned i = 0; r == 0 && i < m->n_warnings; i++) {
                        if (i)
                                r = buf_putc(out, ',');
                        if (r == 0)
                                r = buf_put_json_str(out, m->warnings[i]);
                }
                if (r == 0)
                        r = buf_putc(out, ']');
        }
        /* For the API server's audit log; it prefixes each key with the
         * webhook's name, so keys have no '/' and stay short. */
        if (r == 0 && m && mutation_matters(m)) {
                r = buf_puts(out, ",\"auditAnnotations\":{\"identity\":");
                if (r == 0)
                        r = buf_put_json_str(out, m->identity_after ? m->identity_after : "");
                if (r == 0)
                        r = buf_puts(out, ",\"decision\":");
                if (r == 0)
                        r = buf_put_json_str(out, mutate_decision_name(m->decision));
                if (r == 0)
                        r = buf_puts(out, ",\"rule\":");
                if (r == 0)
                        r = buf_put_json_str(out, m->rule ? m->rule->name : POLICY_NO_RULE);
                if (r == 0 && m->auth == POLICY_AUTH_WORKLOAD_IDENTITY) {
                        r = buf_puts(out, ",\"auth\":\"workloadIdentity\",\"client-id\":");
                        if (r == 0)
                                r = buf_put_json_str(out, m->client_id ? m->client_id : "");
                        if (r == 0)
                                r = buf_puts(out, ",\"service-account\":");
                        if (r == 0)
                                r = buf_put_json_str(out, m->service_account ? m->service_account : "");
                }
                if (r == 0)
                        r = buf_puts(out, ",\"policy-sha256\":");
                if (r == 0)
                        r = buf_put_json_str(out, m->policy_sha256 ? m->policy_sha256 : "");
                if (r == 0)
                        r = buf_putc(out, '}');
        }
        if (r == 0 && denied) {
                r = buf_puts(out, ",\"status\":{\"metadata\":{},\"status\":\"Failure\","
                                  "\"reason\":\"Forbidden\",\"code\":403,\"message\":");
                if (r == 0)
                        r = buf_put_json_str(out, m->message);
                if (r == 0)
                        r = buf_putc(out, '}');
        }
        if (r == 0)
                r = buf_puts(out, "}}");
        return r;
}

int review_respond_invalid(const struct review *rv, const char *message, struct buf *out)
{
        int r = response_head(rv, out);
        if (r == 0)
                r = buf_puts(out, ",\"allowed\":false,\"status\":{\"metadata\":{},\"status\":\"Failure\","
                                  "\"reason\":\"Invalid\",\"code\":422,\"message\":");
        if (r == 0)
                r = buf_put_json_str(out, message);
        if (r == 0)
                r = buf_puts(out, "}}}");
        return r;
}

static const char *status_reason(int code)
{
        switch (code) {
        case 400: return "BadRequest";
        case 404: return "NotFound";
        case 405: return "MethodNotAllowed";
        case 408: return "Timeout";
        case 413: return "RequestEntityTooLarge";
        case 415: return "UnsupportedMediaType";
        case 422: return "Invalid";
        case 503: return "ServiceUnavailable";
        default: return code >= 500 ? "InternalError" : "BadRequest";
        }
}

int review_status_body(struct buf *out, int code, const char *message)
{
        int r = buf_printf(out,
                           "{\"apiVersion\":\"v1\",\"kind\":\"Status\",\"metadata\":{},"
                           "\"status\":\"Failure\",\"code\":%d,\"reason\":\"%s\",\"message\":",
                           code, status_reason(code));
        if (r == 0)
                r = buf_put_json_str(out, message);
        if (r == 0)
                r = buf_puts(out, "}\n");
        return r;
}
