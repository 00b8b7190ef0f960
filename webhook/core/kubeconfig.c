/* kubeconfig merging and the exec credential protocol: see
 * include/core/kubeconfig.h. */
#include "kubeconfig.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

static const char *str(const cJSON *obj, const char *key)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
        return cJSON_IsString(v) && *v->valuestring ? v->valuestring : NULL;
}

/* The first entry named `name` in the lists `list` (clusters, users,
 * contexts) of the files, in order, and the index of its file. */
static const cJSON *first_entry(const struct kubeconfig_file *files, size_t n, const char *list, const char *name,
                                size_t *ret_file)
{
        for (size_t f = 0; f < n; f++) {
                const cJSON *it;
                cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(files[f].root, list)) {
                        const char *nm = str(it, "name");
                        if (nm && strcmp(nm, name) == 0) {
                                *ret_file = f;
                                return it;
                        }
                }
        }
        return NULL;
}

/* The inner map `inner` of the first entry named `name`, and its file. */
static bool find_named(const struct kubeconfig_file *files, size_t n, const char *list, const char *inner,
                       const char *name, const cJSON **ret_map, size_t *ret_file)
{
        const cJSON *it = first_entry(files, n, list, name, ret_file);
        if (!it)
                return false;
        *ret_map = cJSON_GetObjectItemCaseSensitive(it, inner);
        return true;
}

/* Appends " (contexts: a, b)" naming every context once, in merge order,
 * or " (no file defines a context)". */
static void append_contexts(const struct kubeconfig_file *files, size_t n, char *err, size_t errlen)
{
        size_t listed = 0, f_ignored;
        for (size_t f = 0; f < n; f++) {
                const cJSON *it;
                cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(files[f].root, "contexts")) {
                        const char *nm = str(it, "name");
                        if (nm && first_entry(files, n, "contexts", nm, &f_ignored) == it)
                                err_append(err, errlen, "%s%s", listed++ ? ", " : " (contexts: ", nm);
                }
        }
        err_append(err, errlen, "%s", listed ? ")" : " (no file defines a context)");
}

/* Names the files for a message: "F" or "F1, F2 and 1 more". */
static void append_files(const struct kubeconfig_file *files, size_t n, char *err, size_t errlen)
{
        for (size_t f = 0; f < n; f++)
                err_append(err, errlen, "%s%s", f == 0 ? "" : f + 1 == n ? " and " : ", ", files[f].path);
}

int kubeconfig_choose(const struct kubeconfig_file *files, size_t n, const char *context,
                      struct kubeconfig_choice *ret_choice, char *err, size_t errlen)
{
        const char *name = context;
        for (size_t f = 0; !name && f < n; f++)
                name = str(files[f].root, "current-context");
        if (!name) {
                err_set(err, errlen, "no current-context in ");
                append_files(files, n, err, errlen);
                err_append(err, errlen, ": give --context");
                append_contexts(files, n, err, errlen);
                return -EINVAL;
        }
        const cJSON *ctx = NULL, *cluster = NULL, *user = NULL;
        size_t ctx_file = 0, cluster_file = 0, user_file = 0;
        if (!find_named(files, n, "contexts", "context", name, &ctx, &ctx_file)) {
                err_set(err, errlen, "no context \"%s\"%s in ", name, context ? "" : " (the current-context)");
                append_files(files, n, err, errlen);
                append_contexts(files, n, err, errlen);
                return -EINVAL;
        }
        const char *cluster_name = str(ctx, "cluster"), *user_name = str(ctx, "user");
        if (!cluster_name || !find_named(files, n, "clusters", "cluster", cluster_name, &cluster, &cluster_file) ||
            !cJSON_IsObject(cluster)) {
                err_set(err, errlen, "%s: context \"%s\" names cluster \"%s\", which no file defines",
                        files[ctx_file].path, name, cluster_name ? cluster_name : "");
                return -EINVAL;
        }
        if (user_name && !find_named(files, n, "users", "user", user_name, &user, &user_file)) {
                err_set(err, errlen, "%s: context \"%s\" names user \"%s\", which no file defines",
                        files[ctx_file].path, name, user_name);
                return -EINVAL;
        }
        *ret_choice = (struct kubeconfig_choice){
                .context = name,
                .cluster = cluster,
                .user = cJSON_IsObject(user) ? user : NULL,
                .cluster_file = cluster_file,
                .user_file = user_file,
        };
        return 0;
}

/* ---- exec ---- */

/* An exec map's `args`: strings. */
static int exec_args(const cJSON *exec, struct kubeconfig_exec *x, char *err, size_t errlen)
{
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(exec, "args"), *a;
        if (!args || cJSON_IsNull(args))
                return 0;
        if (!cJSON_IsArray(args)) {
                err_set(err, errlen, "exec.args must be a list of strings");
                return -EINVAL;
        }
        cJSON_ArrayForEach(a, args) {
                if (!cJSON_IsString(a)) {
                        err_set(err, errlen, "exec.args must be a list of strings");
                        return -EINVAL;
                }
                if (x->n_args == WH_EXEC_MAX_ARGS) {
                        err_set(err, errlen, "exec.args: more than %u", WH_EXEC_MAX_ARGS);
                        return -EINVAL;
                }
                x->args[x->n_args++] = a->valuestring;
        }
        return 0;
}

/* An exec map's `env`: a list of {name, value}. */
static int exec_env(const cJSON *exec, struct kubeconfig_exec *x, char *err, size_t errlen)
{
        const cJSON *env = cJSON_GetObjectItemCaseSensitive(exec, "env"), *e;
        if (!env || cJSON_IsNull(env))
                return 0;
        if (!cJSON_IsArray(env)) {
                err_set(err, errlen, "exec.env must be a list of {name, value}");
                return -EINVAL;
        }
        cJSON_ArrayForEach(e, env) {
                const char *name = str(e, "name");
                const cJSON *value = cJSON_GetObjectItemCaseSensitive(e, "value");
                if (!name || strchr(name, '=') || !cJSON_IsString(value)) {
                        err_set(err, errlen, "exec.env: each entry needs a name (without '=') and a string value");
                        return -EINVAL;
                }
                if (x->n_env == WH_EXEC_MAX_ENV) {
                        err_set(err, errlen, "exec.env: more than %u", WH_EXEC_MAX_ENV);
                        return -EINVAL;
                }
                x->env_names[x->n_env] = name;
                x->env_values[x->n_env++] = value->valuestring;
        }
        return 0;
}

int kubeconfig_exec_parse(const cJSON *exec, struct kubeconfig_exec *ret, char *err, size_t errlen)
{
        struct kubeconfig_exec x = { 0 };
        if (!cJSON_IsObject(exec)) {
                err_set(err, errlen, "exec must be a map");
                return -EINVAL;
        }
        x.api_version = str(exec, "apiVersion");
        if (!x.api_version ||
            (strcmp(x.api_version, KUBECONFIG_EXEC_V1) != 0 && strcmp(x.api_version, KUBECONFIG_EXEC_V1BETA1) != 0)) {
                err_set(err, errlen,
                        "exec.apiVersion must be " KUBECONFIG_EXEC_V1 " or " KUBECONFIG_EXEC_V1BETA1
                        " (client.authentication.k8s.io/v1alpha1 is gone from Kubernetes)");
                return -EINVAL;
        }
        x.command = str(exec, "command");
        if (!x.command) {
                err_set(err, errlen, "exec.command is missing");
                return -EINVAL;
        }
        const char *mode = str(exec, "interactiveMode");
        if (mode && strcmp(mode, "Always") == 0) {
                err_set(err, errlen,
                        "exec.interactiveMode Always: the plugin wants a terminal, and this command never gives "
                        "it one; log in first (for kubelogin: 'kubelogin convert-kubeconfig -l azurecli' after "
                        "'az login'), or use a non-interactive login");
                return -EINVAL;
        }
        if (mode && strcmp(mode, "Never") != 0 && strcmp(mode, "IfAvailable") != 0) {
                err_set(err, errlen, "exec.interactiveMode must be Never, IfAvailable or Always, not \"%s\"", mode);
                return -EINVAL;
        }
        int r = exec_args(exec, &x, err, errlen);
        if (r == 0)
                r = exec_env(exec, &x, err, errlen);
        if (r < 0)
                return r;
        x.install_hint = str(exec, "installHint");
        x.provide_cluster_info = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(exec, "provideClusterInfo"));
        *ret = x;
        return 0;
}

int kubeconfig_exec_request(const struct kubeconfig_exec *x, const char *server, const char *ca_b64, struct buf *out)
{
        int r = buf_puts(out, "{\"apiVersion\":");
        if (r == 0)
                r = buf_put_json_str(out, x->api_version);
        if (r == 0)
                r = buf_puts(out, ",\"kind\":\"ExecCredential\",\"spec\":{");
        if (r == 0 && x->provide_cluster_info) {
                r = buf_puts(out, "\"cluster\":{\"server\":");
                if (r == 0)
                        r = buf_put_json_str(out, server);
                if (r == 0 && ca_b64 && *ca_b64) {
                        r = buf_puts(out, ",\"certificate-authority-data\":");
                        if (r == 0)
                                r = buf_put_json_str(out, ca_b64);
                }
                if (r == 0)
                        r = buf_puts(out, "},");
        }
        if (r == 0)
                r = buf_puts(out, "\"interactive\":false}}");
        return r;
}

/* ---- the answer ---- */

static long long days_from_civil(long long y, unsigned m, unsigned d)
{
        /* Howard Hinnant's days_from_civil: days since 1970-01-01. */
        y -= m <= 2;
        long long era = (y >= 0 ? y : y - 399) / 400;
        unsigned yoe = (unsigned)(y - era * 400);
        unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + (long long)doe - 719468;
}

/* `n` digits at *s as a number, advancing *s; -1 when they are not digits. */
static int digits(const char **s, unsigned n)
{
        int v = 0;
        for (unsigned i = 0; i < n; i++, (*s)++) {
                if (**s < '0' || **s > '9')
                        return -1;
                v = v * 10 + (**s - '0');
        }
        return v;
}

/* Whether *s starts with `c` (or, for a letter, its lower case); advances
 * past it if so, never past the string's end. */
static bool take(const char **s, char c)
{
        if (**s && (**s == c || (c >= 'A' && c <= 'Z' && **s == c - 'A' + 'a'))) {
                (*s)++;
                return true;
        }
        return false;
}

int kubeconfig_rfc3339(const char *s, long long *ret_seconds)
{
        static const unsigned char mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
        int y = digits(&s, 4);
        int mo = y >= 0 && take(&s, '-') ? digits(&s, 2) : -1;
        int d = mo >= 0 && take(&s, '-') ? digits(&s, 2) : -1;
        int h = d >= 0 && take(&s, 'T') ? digits(&s, 2) : -1;
        int mi = h >= 0 && take(&s, ':') ? digits(&s, 2) : -1;
        int sec = mi >= 0 && take(&s, ':') ? digits(&s, 2) : -1;
        if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h < 0 || h > 23 || mi < 0 || mi > 59 ||
            sec < 0 || sec > 60)
                return -EINVAL;
        if (take(&s, '.')) {
                const char *frac = s;
                while (*s >= '0' && *s <= '9')
                        s++;
                if (s == frac)
                        return -EINVAL;
        }
        long long offset = 0;
        if (*s == '+' || *s == '-') {
                int sign = *s++ == '-' ? -1 : 1;
                int oh = digits(&s, 2), om = oh >= 0 && take(&s, ':') ? digits(&s, 2) : -1;
                if (oh < 0 || oh > 23 || om < 0 || om > 59)
                        return -EINVAL;
                offset = sign * (oh * 3600LL + om * 60LL);
        } else if (!take(&s, 'Z')) {
                return -EINVAL;
        }
        if (*s)
                return -EINVAL;
        *ret_seconds = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600LL + mi * 60LL + sec - offset;
        return 0;
}

static void wipe_free(char *s)
{
        if (s) {
                explicit_bzero(s, strlen(s));
                free(s);
        }
}

void kubeconfig_exec_answer_free(struct kubeconfig_exec_answer *a)
{
        if (!a)
                return;
        wipe_free(a->token);
        wipe_free(a->cert);
        wipe_free(a->key);
        *a = (struct kubeconfig_exec_answer){ 0 };
}

/* A copy of status.KEY when it is a non-empty string; *ok false on ENOMEM. */
static char *dup_status(const cJSON *status, const char *key, bool *ok)
{
        const char *v = str(status, key);
        char *d = v ? strdup(v) : NULL;
        if (v && !d)
                *ok = false;
        return d;
}

/* Long: the answer's checks, one after the other, each with its message. */
int kubeconfig_exec_answer(const char *text, size_t len, const char *api_version, struct kubeconfig_exec_answer *ret,
                           char *err, size_t errlen)
{
        struct kubeconfig_exec_answer a = { 0 };
        const char *end = NULL;
        cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
        int r = -EINVAL;
        if (!cJSON_IsObject(root)) {
                err_set(err, errlen, "its output is not a JSON ExecCredential");
                goto out;
        }
        const char *av = str(root, "apiVersion"), *kind = str(root, "kind");
        if (!kind || strcmp(kind, "ExecCredential") != 0 || !av || strcmp(av, api_version) != 0) {
                err_set(err, errlen, "it answered %s %s, not the ExecCredential %s it was asked for",
                        kind ? kind : "(no kind)", av ? av : "(no apiVersion)", api_version);
                goto out;
        }
        const cJSON *status = cJSON_GetObjectItemCaseSensitive(root, "status");
        bool ok = true;
        a.token = dup_status(status, "token", &ok);
        a.cert = dup_status(status, "clientCertificateData", &ok);
        a.key = dup_status(status, "clientKeyData", &ok);
        if (!ok) {
                r = -ENOMEM;
                goto out;
        }
        if (!!a.cert != !!a.key) {
                err_set(err, errlen, "its ExecCredential has %s without %s",
                        a.cert ? "clientCertificateData" : "clientKeyData",
                        a.cert ? "clientKeyData" : "clientCertificateData");
                goto out;
        }
        if (!a.token && !a.cert) {
                err_set(err, errlen,
                        "its ExecCredential has neither status.token nor status.clientCertificateData "
                        "and clientKeyData");
                goto out;
        }
        const cJSON *exp = cJSON_GetObjectItemCaseSensitive(status, "expirationTimestamp");
        if (exp && !cJSON_IsNull(exp)) {
                if (!cJSON_IsString(exp) || kubeconfig_rfc3339(exp->valuestring, &a.expiry) < 0) {
                        err_set(err, errlen, "its status.expirationTimestamp is not an RFC 3339 time");
                        goto out;
                }
                a.expires = true;
        }
        *ret = a;
        a = (struct kubeconfig_exec_answer){ 0 };
        r = 0;
out:
        kubeconfig_exec_answer_free(&a);
        cJSON_Delete(root);
        return r;
}
