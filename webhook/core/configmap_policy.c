/* The policy ConfigMap's validating webhook: see include/core/configmap_policy.h. */
#include "configmap_policy.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "policy.h"

/* The value of `key` in an object's `data`, or NULL. Values are strings
 * (the API server refuses others before any webhook is called). */
static const cJSON *data_value(const cJSON *object, const char *key)
{
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(object, "data");
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(data, key);
        return cJSON_IsString(v) ? v : NULL;
}

/* The problem lines, "KEY:" in front of each, cut at whole lines to fit
 * the message, then how many were left out. */
static void refusal_message(const char *key, const char *problems, char *out, size_t outlen)
{
        size_t off = 0, left_out = 0;
        const char *line = problems;
        /* Room for the last line: "... and N more problems ..." */
        const size_t tail = 96;
        out[0] = '\0';
        while (*line) {
                const char *nl = strchr(line, '\n');
                size_t n = nl ? (size_t)(nl - line) : strlen(line);
                if (left_out || off + n + 1 + tail >= outlen)
                        left_out++;
                else {
                        memcpy(out + off, line, n);
                        off += n;
                        out[off++] = '\n';
                        out[off] = '\0';
                }
                line += n + (nl ? 1 : 0);
        }
        if (left_out)
                snprintf(out + off, outlen - off, "%s: ... and %zu more lines (check-policy prints them all)\n", key,
                         left_out);
        off = strlen(out);
        if (off && out[off - 1] == '\n')
                out[off - 1] = '\0';   /* kubectl ends the message with its own newline */
}

/* Loads the text; INVALID with the lines when it does not load. */
static int judge_text(const char *key, const char *text, size_t len, struct configmap_policy_result *ret)
{
        struct buf raw, lines;
        struct policy *p = NULL;
        buf_init(&raw, WH_POLICY_ERRORS_MAX_BYTES);
        buf_init(&lines, WH_POLICY_ERRORS_MAX_BYTES + WH_POLICY_ERRORS_MAX_BYTES / 4u);
        int r = policy_load(text, len, &p, &raw);
        policy_free(p);
        if (r == 0)
                ret->verdict = CONFIGMAP_POLICY_VALID;
        else if (r != -ENOMEM) {   /* out of memory is not the policy's fault: no verdict */
                ret->verdict = CONFIGMAP_POLICY_INVALID;
                /* A full `lines` keeps what fits: the message holds less. */
                policy_errors_prefix(&lines, key, raw.data ? raw.data : "");
                if (!lines.len)
                        buf_printf(&lines, "%s: the policy does not load\n", key);
                refusal_message(key, lines.data ? lines.data : "", ret->message, sizeof ret->message);
                r = 0;
        }
        buf_free(&raw);
        buf_free(&lines);
        return r;
}

/* What the review comes to, before the answer is written. */
static int judge(const struct review *rv, const char *key, struct configmap_policy_result *ret)
{
        bool create = rv->operation && strcmp(rv->operation, "CREATE") == 0;
        bool update = rv->operation && strcmp(rv->operation, "UPDATE") == 0;
        ret->verdict = CONFIGMAP_POLICY_IGNORED;
        /* Other kinds never carry the policy. A DELETE changes nothing that
         * serves: the server keeps the policy it loaded when the file goes
         * away (nothing is loaded in its place). */
        if (!rv->is_configmap || !rv->object) {
                ret->why = "not a ConfigMap";
                return 0;
        }
        if (!create && !update) {
                ret->why = "neither CREATE nor UPDATE";
                return 0;
        }
        /* Without the key there is no policy to judge: the server finds no
         * file to load and keeps the one in force. (binaryData is not read:
         * the mounted file would be its decoded bytes, which the server's
         * reload still judges.) */
        const cJSON *v = data_value(rv->object, key);
        if (!v) {
                ret->why = "no policy key in data";
                return 0;
        }
        /* An UPDATE that leaves the policy as it was cannot make it worse;
         * refusing it would block labels, annotations or finalizers on a
         * ConfigMap stored while the webhook was down. */
        const cJSON *old = update && rv->old_object ? data_value(rv->old_object, key) : NULL;
        if (old && strcmp(old->valuestring, v->valuestring) == 0) {
                ret->why = "the policy is unchanged";
                return 0;
        }
        return judge_text(key, v->valuestring, strlen(v->valuestring), ret);
}

int configmap_policy_judge(const struct review *rv, const char *key, struct configmap_policy_result *ret,
                           struct buf *out)
{
        ret->why = NULL;
        ret->message[0] = '\0';
        int r = judge(rv, key, ret);
        if (r < 0)
                return r;
        if (ret->verdict == CONFIGMAP_POLICY_INVALID)
                return review_respond_invalid(rv, ret->message, out);
        return review_respond(rv, NULL, out);
}

const char *configmap_policy_verdict_name(enum configmap_policy_verdict v)
{
        switch (v) {
        case CONFIGMAP_POLICY_IGNORED: return "ignored";
        case CONFIGMAP_POLICY_VALID: return "valid";
        case CONFIGMAP_POLICY_INVALID: return "invalid";
        }
        return "unknown";
}
