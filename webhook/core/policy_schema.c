/* Checking the policy's values against its schema: what a label value, a
 * GUID, a storage account or a JVM flag may be, the keys of a layer
 * (`defaults`, a namespace or selector entry), and a namespace's
 * annotations read as a layer; each problem reported at its LINE:COL. */
#include "policy_internal.h"

#include "err.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- error reporting ---- */

static void vfail(struct loader *l, const cJSON *node, bool at_key, const char *path, const char *fmt, va_list ap)
{
        if (++l->n_errors > POLICY_MAX_ERRORS)
                return;
        unsigned line = 0, col = 0;
        l->placed[l->n_errors - 1] = (struct placed_error){ .off = l->errors->len };
        if (node && ((at_key && doc_key_position(l->doc, node, &line, &col) == 0) ||
                     doc_position(l->doc, node, &line, &col) == 0)) {
                buf_printf(l->errors, "%u:%u: ", line, col);
                l->placed[l->n_errors - 1].line = line;
                l->placed[l->n_errors - 1].col = col;
        }
        if (path && *path)
                buf_printf(l->errors, "%s: ", path);
        char msg[512];
        vsnprintf(msg, sizeof msg, fmt, ap);
        buf_puts(l->errors, msg);
        buf_putc(l->errors, '\n');
}

/* A problem with a value, placed at the value. */
__attribute__((format(printf, 4, 5))) void policy_fail(struct loader *l, const cJSON *node, const char *path,
                                                       const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vfail(l, node, false, path, fmt, ap);
        va_end(ap);
}

/* A problem with a key (unknown, misplaced, malformed), placed at the key. */
__attribute__((format(printf, 4, 5))) void policy_fail_key(struct loader *l, const cJSON *node, const char *path,
                                                           const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vfail(l, node, true, path, fmt, ap);
        va_end(ap);
}

void policy_oom(struct loader *l)
{
        if (!l->oom)
                policy_fail(l, NULL, NULL, "out of memory");
        l->oom = true;
}

static unsigned char lower(char c)
{
        return (unsigned char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
}

static unsigned min3(unsigned a, unsigned b, unsigned c)
{
        unsigned m = a < b ? a : b;
        return m < c ? m : c;
}

/* The optimal string alignment distance of a and b, letters compared
 * without case; UINT_MAX when either is longer than WH_POLICY_SUGGEST_KEY_MAX. */
static unsigned key_distance(const char *a, const char *b)
{
        size_t la = strlen(a), lb = strlen(b);
        unsigned rows[3][WH_POLICY_SUGGEST_KEY_MAX + 1];
        if (la > WH_POLICY_SUGGEST_KEY_MAX || lb > WH_POLICY_SUGGEST_KEY_MAX)
                return UINT_MAX;
        unsigned *before = rows[0], *prev = rows[1], *cur = rows[2];
        for (size_t j = 0; j <= lb; j++)
                prev[j] = (unsigned)j;
        for (size_t i = 1; i <= la; i++) {
                cur[0] = (unsigned)i;
                for (size_t j = 1; j <= lb; j++) {
                        unsigned cost = lower(a[i - 1]) != lower(b[j - 1]);
                        cur[j] = min3(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost);
                        if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
                            lower(a[i - 2]) == lower(b[j - 1]) && before[j - 2] + 1 < cur[j])
                                cur[j] = before[j - 2] + 1;
                }
                unsigned *t = before;
                before = prev;
                prev = cur;
                cur = t;
        }
        return prev[lb];
}

const char *policy_key_suggest(const char *key, const char *const *keys, size_t n_keys)
{
        const char *best = NULL;
        unsigned best_d = UINT_MAX;
        for (size_t i = 0; i < n_keys; i++) {
                unsigned d = key_distance(key, keys[i]);
                if (d < best_d) {
                        best_d = d;
                        best = keys[i];
                }
        }
        return best && (size_t)best_d * 3 <= strlen(best) ? best : NULL;
}

void policy_fail_unknown_key(struct loader *l, const cJSON *node, const char *path, bool quoted,
                             const char *const *keys, size_t n_keys, const char *has)
{
        const char *key = node && node->string ? node->string : "";
        const char *meant = policy_key_suggest(key, keys, n_keys);
        char named[WH_POLICY_SUGGEST_KEY_MAX + 8] = "", hint[WH_POLICY_SUGGEST_KEY_MAX + 24] = "";
        if (quoted)
                snprintf(named, sizeof named, " \"%.*s\"", (int)WH_POLICY_SUGGEST_KEY_MAX, key);
        if (meant)
                snprintf(hint, sizeof hint, ", did you mean %s?", meant);
        policy_fail_key(l, node, path, "unknown key%s%s (%s)", named, hint, has);
}

/* Orders placed errors: by line, by column, unplaced last, else as found. */
static int placed_cmp(const void *pa, const void *pb)
{
        const struct placed_error *a = pa, *b = pb;
        bool ua = a->line == 0, ub = b->line == 0;
        if (ua != ub)
                return ua ? 1 : -1;
        if (a->line != b->line)
                return a->line < b->line ? -1 : 1;
        if (a->col != b->col)
                return a->col < b->col ? -1 : 1;
        return a->off < b->off ? -1 : a->off > b->off;
}

void policy_sort_errors(struct loader *l)
{
        size_t n = l->n_errors < POLICY_MAX_ERRORS ? l->n_errors : POLICY_MAX_ERRORS;
        size_t end = l->errors->len, start = l->errors_start;
        if (n < 2 || end <= start)
                return;
        struct placed_error sorted[POLICY_MAX_ERRORS];
        memcpy(sorted, l->placed, n * sizeof *sorted);
        qsort(sorted, n, sizeof *sorted, placed_cmp);
        char *copy = malloc(end - start);
        if (!copy)
                return; /* found order, then: every line is still there */
        memcpy(copy, l->errors->data + start, end - start);
        size_t at = start;
        for (size_t i = 0; i < n; i++) {
                size_t from = sorted[i].off, to = end;
                for (size_t k = 0; k < n; k++) /* the next line's start, in the order written */
                        if (l->placed[k].off > from && l->placed[k].off < to)
                                to = l->placed[k].off;
                memcpy(l->errors->data + at, copy + (from - start), to - from);
                at += to - from;
        }
        free(copy);
}

/* Writes a place in the policy, like namespaces.team-a.java.options[0]; a
 * place too long for the buffer ends in "...". */
__attribute__((format(printf, 2, 3))) void policy_path_printf(char out[PATH_MAX_CHARS], const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(out, PATH_MAX_CHARS, fmt, ap);
        va_end(ap);
        if (n >= (int)PATH_MAX_CHARS)
                memcpy(out + PATH_MAX_CHARS - 4, "...", 4);
}

/* ---- value checks ---- */

static bool has_space(const char *s)
{
        for (; *s; s++)
                if (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\v' || *s == '\f')
                        return true;
        return false;
}

static bool is_alnum(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* A Kubernetes label value, non-empty: what aadpodidbinding may hold. */
bool policy_is_label_value(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n > 63 || !is_alnum(s[0]) || !is_alnum(s[n - 1]))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
                        return false;
        return true;
}

/* An RFC 1123 label: what a namespace name is. */
bool policy_is_dns_label(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n > 63)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && i > 0 && i < n - 1);
                if (!ok)
                        return false;
        }
        return true;
}

/* An RFC 1123 subdomain: what a service account name is. */
static bool is_dns_subdomain(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n > 253 || s[0] == '.' || s[0] == '-' || s[n - 1] == '.' || s[n - 1] == '-')
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
                        return false;
                if (c == '.' && (s[i + 1] == '.' || s[i + 1] == '-' || s[i - 1] == '-'))
                        return false;
        }
        return true;
}

/* An https URL with a host: what AZURE_AUTHORITY_HOST may be. */
static bool is_https_url(const char *s)
{
        static const char scheme[] = "https://";
        if (strncmp(s, scheme, sizeof scheme - 1) != 0)
                return false;
        const char *host = s + sizeof scheme - 1;
        return *host && *host != '/' && *host != ':';
}

static bool is_uuid(const char *s)
{
        if (strlen(s) != 36)
                return false;
        for (int i = 0; i < 36; i++) {
                char c = s[i];
                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (c != '-')
                                return false;
                } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
                        return false;
                }
        }
        return true;
}

/* ---- a managed identity's resource id ---- */

/* The next segment of a resource id: from `*s` (past its '/') to the next
 * '/' or the end. False when there is no '/' at `*s`. */
static bool next_segment(const char **s, const char **ret_seg, size_t *ret_len)
{
        if (**s != '/')
                return false;
        const char *seg = *s + 1, *end = strchr(seg, '/');
        *ret_len = end ? (size_t)(end - seg) : strlen(seg);
        *ret_seg = seg;
        *s = seg + *ret_len;
        return true;
}

static bool segment_is(const char *seg, size_t len, const char *word)
{
        return len == strlen(word) && strncasecmp(seg, word, len) == 0;
}

/* A resource group's name, as Azure allows it: 1 to 90 letters (Unicode
 * ones too), digits, '_', '-', '.', '(' and ')', not ending in '.'. */
static bool is_resource_group(const char *s, size_t n)
{
        if (n == 0 || n > WH_AZURE_RESOURCE_GROUP_MAX || s[n - 1] == '.')
                return false;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                if (!(is_alnum((char)c) || c >= 0x80 || c == '_' || c == '-' || c == '.' || c == '(' || c == ')'))
                        return false;
        }
        return true;
}

/* A user-assigned identity's name: 3 to 128 letters, digits, '-' and '_',
 * starting with a letter or digit. */
static bool is_identity_name(const char *s, size_t n)
{
        if (n < WH_AZURE_IDENTITY_NAME_MIN || n > WH_AZURE_IDENTITY_NAME_MAX || !is_alnum(s[0]))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_')
                        return false;
        return true;
}

int policy_resource_id_parse(const char *s, struct policy_resource_id *ret, char *why, size_t whylen)
{
        static const char *const fixed[] = {
                "subscriptions",          NULL, "resourceGroups", NULL, "providers", "Microsoft.ManagedIdentity",
                "userAssignedIdentities", NULL
        };
        const char *seg[8];
        size_t len[8], n = 0;
        while (n < 8 && next_segment(&s, &seg[n], &len[n]))
                n++;
        if (n < 8 || *s) {
                err_set(why, whylen, "it has %s than 8 segments", n < 8 ? "fewer" : "more");
                return -EINVAL;
        }
        for (size_t i = 0; i < 8; i++) {
                if (fixed[i] && !segment_is(seg[i], len[i], fixed[i])) {
                        err_set(why, whylen, "segment %zu is \"%.*s\", not %s", i + 1, (int)(len[i] > 64 ? 64 : len[i]),
                                seg[i], fixed[i]);
                        return -EINVAL;
                }
        }
        if (len[1] == 36) {
                memcpy(ret->subscription, seg[1], 36);
                ret->subscription[36] = '\0';
        }
        if (len[1] != 36 || !is_uuid(ret->subscription)) {
                err_set(why, whylen, "the subscription is not a GUID");
                return -EINVAL;
        }
        if (!is_resource_group(seg[3], len[3])) {
                err_set(why, whylen,
                        "the resource group is not 1 to %u letters, digits, '_', '-', '.', '(' and ')', not ending "
                        "in '.'",
                        WH_AZURE_RESOURCE_GROUP_MAX);
                return -EINVAL;
        }
        if (!is_identity_name(seg[7], len[7])) {
                err_set(why, whylen,
                        "the identity's name is not %u to %u letters, digits, '-' and '_', starting with a letter "
                        "or digit",
                        WH_AZURE_IDENTITY_NAME_MIN, WH_AZURE_IDENTITY_NAME_MAX);
                return -EINVAL;
        }
        memcpy(ret->resource_group, seg[3], len[3]);
        ret->resource_group[len[3]] = '\0';
        memcpy(ret->name, seg[7], len[7]);
        ret->name[len[7]] = '\0';
        return 0;
}

/* An Azure storage account name. */
static bool is_account_name(const char *s)
{
        size_t n = strlen(s);
        if (n < 3 || n > 24)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
                        return false;
        return true;
}

/* A hadoop property name: non-empty, without white space or '='. */
static bool is_hadoop_key(const char *s)
{
        return *s && !has_space(s) && !strchr(s, '=');
}

/* What keeps a string from being a word, checked in this order. */
enum word_fault { WORD_FAULT_NONE, WORD_FAULT_EMPTY, WORD_FAULT_LONG, WORD_FAULT_SPACE };

static enum word_fault word_fault(const char *s)
{
        if (!*s)
                return WORD_FAULT_EMPTY;
        if (strlen(s) > WH_MAX_POLICY_STRING)
                return WORD_FAULT_LONG;
        return has_space(s) ? WORD_FAULT_SPACE : WORD_FAULT_NONE;
}

bool policy_value_valid(enum policy_value kind, const char *s)
{
        if (!s)
                return false;
        switch (kind) {
        case POLICY_VALUE_WORD: return word_fault(s) == WORD_FAULT_NONE;
        case POLICY_VALUE_JVM_OPTION: return word_fault(s) == WORD_FAULT_NONE && s[0] == '-';
        case POLICY_VALUE_JAVA_HOME: return word_fault(s) == WORD_FAULT_NONE && s[0] == '/';
        case POLICY_VALUE_LABEL_VALUE: return policy_is_label_value(s);
        case POLICY_VALUE_LABEL_KEY: return policy_is_label_key(s);
        case POLICY_VALUE_DNS_LABEL: return policy_is_dns_label(s);
        case POLICY_VALUE_GUID: return is_uuid(s);
        case POLICY_VALUE_STORAGE_ACCOUNT: return is_account_name(s);
        case POLICY_VALUE_SERVICE_ACCOUNT: return is_dns_subdomain(s);
        case POLICY_VALUE_HTTPS_URL: return is_https_url(s);
        case POLICY_VALUE_HADOOP_KEY: return is_hadoop_key(s);
        case POLICY_VALUE_RESOURCE_ID: {
                struct policy_resource_id id;
                char why[8];
                return word_fault(s) == WORD_FAULT_NONE && policy_resource_id_parse(s, &id, why, sizeof why) == 0;
        }
        case POLICY_VALUE_MAX: break;
        }
        return false;
}

/* A string value: present, a string, short, and without white space. */
static const char *want_word(struct loader *l, const cJSON *v, const char *path)
{
        if (!cJSON_IsString(v)) {
                policy_fail(l, v, path, "must be a string");
                return NULL;
        }
        const char *s = v->valuestring;
        switch (word_fault(s)) {
        case WORD_FAULT_NONE: return s;
        case WORD_FAULT_EMPTY: policy_fail(l, v, path, "must not be empty"); break;
        case WORD_FAULT_LONG: policy_fail(l, v, path, "longer than %u characters", WH_MAX_POLICY_STRING); break;
        case WORD_FAULT_SPACE:
                policy_fail(l, v, path, "must be one word without white space (JVM flags are split on it): \"%s\"", s);
                break;
        }
        return NULL;
}

int policy_want_enum(struct loader *l, const cJSON *v, const char *path, const char *const *names, int n)
{
        if (cJSON_IsString(v))
                for (int i = 0; i < n; i++)
                        if (strcmp(v->valuestring, names[i]) == 0)
                                return i;
        char choices[128] = "";
        for (int i = 0; i < n; i++) {
                strncat(choices, names[i], sizeof choices - strlen(choices) - 1);
                if (i + 1 < n)
                        strncat(choices, " | ", sizeof choices - strlen(choices) - 1);
        }
        policy_fail(l, v, path, "must be one of %s", choices);
        return -1;
}

static const char *const mode_names[POLICY_MODE_MAX] = { "enforce", "audit", "off" };
static const char *const conflict_names[POLICY_CONFLICT_MAX] = { "override", "deny" };
static const char *const jvm_env_names[POLICY_JVM_ENV_MAX] = { "spark", "JAVA_TOOL_OPTIONS" };
static const char *const auth_names[POLICY_AUTH_MAX] = { "podIdentity", "workloadIdentity" };

const char *policy_auth_name(enum policy_auth a)
{
        return a < POLICY_AUTH_MAX ? auth_names[a] : "?";
}

const char *policy_mode_name(enum policy_mode m)
{
        return m < POLICY_MODE_MAX ? mode_names[m] : "?";
}

const char *policy_conflict_name(enum policy_conflict c)
{
        return c < POLICY_CONFLICT_MAX ? conflict_names[c] : "?";
}

const char *policy_jvm_env_name(enum policy_jvm_env e)
{
        return e < POLICY_JVM_ENV_MAX ? jvm_env_names[e] : "?";
}

bool policy_want_bool(struct loader *l, const cJSON *v, const char *path)
{
        if (!cJSON_IsBool(v))
                policy_fail(l, v, path, "must be true or false");
        return cJSON_IsTrue(v);
}

/* ---- layers: `defaults` and each rule entry, checked on their own ---- */

enum word_kind { WORD_ANY, WORD_FLAG, WORD_IDENTITY, WORD_ACCOUNT, WORD_CONTAINER };

static void want_words(struct loader *l, const cJSON *v, const char *path, enum word_kind kind, struct words *ret)
{
        char ipath[PATH_MAX_CHARS];
        ret->set = true;
        if (!cJSON_IsArray(v)) {
                policy_fail(l, v, path, "must be a list");
                return;
        }
        int i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, v) {
                policy_path_printf(ipath, "%s[%d]", path, i++);
                if (ret->n == WH_MAX_RULE_LIST_ITEMS) {
                        policy_fail(l, it, ipath, "more than %u items", WH_MAX_RULE_LIST_ITEMS);
                        return;
                }
                const char *s = want_word(l, it, ipath);
                if (!s)
                        continue;
                if (kind == WORD_FLAG && s[0] != '-') {
                        policy_fail(l, it, ipath, "a JVM option starts with '-': \"%s\"", s);
                        continue;
                }
                if (kind == WORD_IDENTITY && !policy_is_label_value(s)) {
                        policy_fail(l, it, ipath,
                                    "\"%s\" is not a valid label value (at most 63 of "
                                    "A-Z a-z 0-9 - _ ., starting and ending alphanumeric)",
                                    s);
                        continue;
                }
                if (kind == WORD_CONTAINER && !policy_is_dns_label(s)) {
                        policy_fail(l, it, ipath,
                                    "\"%s\" is not a container name (lowercase letters, "
                                    "digits and '-', at most 63)",
                                    s);
                        continue;
                }
                if (kind == WORD_ACCOUNT && !is_account_name(s)) {
                        policy_fail(l, it, ipath,
                                    "\"%s\" is not a storage account name (3 to 24 "
                                    "lowercase letters and digits)",
                                    s);
                        continue;
                }
                ret->items[ret->n++] = s;
        }
}

static const char *want_uuid(struct loader *l, const cJSON *v, const char *path)
{
        const char *s = want_word(l, v, path);
        if (s && !is_uuid(s)) {
                policy_fail(l, v, path, "\"%s\" is not a GUID like 72f988bf-86f1-41af-91ab-2d7cd011db47", s);
                return NULL;
        }
        return s;
}

#define RESOURCE_ID_SHAPE \
        "/subscriptions/GUID/resourceGroups/RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/NAME"

static const char *want_resource_id(struct loader *l, const cJSON *v, const char *path)
{
        struct policy_resource_id id;
        char why[160];
        const char *s = want_word(l, v, path);
        if (s && policy_resource_id_parse(s, &id, why, sizeof why) < 0) {
                policy_fail(l, v, path,
                            "\"%.300s\" is not a user-assigned managed identity's resource id (" RESOURCE_ID_SHAPE
                            "): %s",
                            s, why);
                return NULL;
        }
        return s;
}

/* A scalar hadoop value as text; numbers and booleans print as YAML wrote them. */
static const char *scalar_text(struct loader *l, const cJSON *v)
{
        if (cJSON_IsString(v))
                return v->valuestring;
        if (cJSON_IsBool(v))
                return cJSON_IsTrue(v) ? "true" : "false";
        char num[64];
        double d = v->valuedouble;
        if (d > -1e15 && d < 1e15 && d == (double)(long long)d)   /* range first: the cast must fit */
                snprintf(num, sizeof num, "%lld", (long long)d);
        else
                snprintf(num, sizeof num, "%.17g", d);
        const char *s = pool_strdup(&l->p->pool, num);
        if (!s)
                policy_oom(l);
        return s;
}

static void check_hadoop_map(struct loader *l, const cJSON *map, const char *path, struct layer *ret)
{
        char kpath[PATH_MAX_CHARS];
        if (!cJSON_IsObject(map)) {
                policy_fail(l, map, path, "must be a map of hadoop property to value");
                return;
        }
        const cJSON *it;
        cJSON_ArrayForEach(it, map) {
                policy_path_printf(kpath, "%s.%s", path, it->string);
                if (ret->n_hadoop == WH_MAX_RULE_HADOOP_KEYS) {
                        policy_fail(l, it, kpath, "more than %u hadoop properties", WH_MAX_RULE_HADOOP_KEYS);
                        return;
                }
                if (!is_hadoop_key(it->string)) {
                        policy_fail_key(l, it, kpath, "a hadoop property name has no white space or '='");
                        continue;
                }
                if (strlen(it->string) > WH_MAX_POLICY_STRING) {
                        policy_fail_key(l, it, kpath, "a hadoop property name is at most %u characters",
                                        WH_MAX_POLICY_STRING);
                        continue;
                }
                if (strcmp(it->string, KEY_TOKEN_FILE) == 0) {
                        policy_fail_key(l, it, kpath,
                                        "auth: workloadIdentity sets this to the token it mounts "
                                        "(%s); it is not set under hadoop",
                                        POLICY_WI_TOKEN_FILE);
                        continue;
                }
                if (strcmp(it->string, KEY_TENANT) == 0 || strcmp(it->string, KEY_CLIENT) == 0) {
                        policy_fail_key(l, it, kpath, "set this through %s, not under hadoop",
                                        strcmp(it->string, KEY_TENANT) == 0 ? "tenantId" : "clientId");
                        continue;
                }
                const char *value = NULL;   /* null: remove the key set below */
                if (cJSON_IsBool(it) || cJSON_IsNumber(it))
                        value = scalar_text(l, it);
                else if (!cJSON_IsNull(it) && !(value = want_word(l, it, kpath)))
                        continue;
                ret->hadoop[ret->n_hadoop++] = (struct hadoop_prop){ it->string, value };
        }
}

static void check_java(struct loader *l, const cJSON *java, const char *path, struct layer *ret)
{
        char kpath[PATH_MAX_CHARS];
        if (!cJSON_IsObject(java)) {
                policy_fail(l, java, path, "must be a map with home and options");
                return;
        }
        const cJSON *it;
        cJSON_ArrayForEach(it, java) {
                policy_path_printf(kpath, "%s.%s", path, it->string);
                if (strcmp(it->string, "home") == 0) {
                        ret->java_home_set = true;
                        if (cJSON_IsNull(it))
                                continue;  /* an entry may unset the default */
                        const char *s = want_word(l, it, kpath);
                        if (s && s[0] != '/')
                                policy_fail(l, it, kpath, "must be an absolute path");
                        else
                                ret->java_home = s;
                } else if (strcmp(it->string, "options") == 0) {
                        want_words(l, it, kpath, WORD_FLAG, &ret->java_options);
                } else {
                        static const char *const java_keys[] = { "home", "options" };
                        policy_fail_unknown_key(l, it, kpath, false, java_keys, 2, "java has home and options");
                }
        }
}

/* The keys of workload identity: false when `k` is none of them. */
static bool check_workload_identity_key(struct loader *l, const cJSON *it, const char *k, const char *kpath,
                                        struct layer *ret)
{
        if (strcmp(k, "serviceAccount") == 0) {
                const char *s = want_word(l, it, kpath);
                if (s && !is_dns_subdomain(s))
                        policy_fail(l, it, kpath,
                                    "\"%s\" is not a service account name (lowercase "
                                    "letters, digits, '-' and '.', at most 253)",
                                    s);
                else
                        ret->service_account = s;
        } else if (strcmp(k, "authorityHost") == 0) {
                const char *s = want_word(l, it, kpath);
                if (s && !is_https_url(s))
                        policy_fail(l, it, kpath, "\"%s\" is not an https URL like %s", s, POLICY_WI_AUTHORITY_DEFAULT);
                else
                        ret->authority_host = s;
        } else if (strcmp(k, "tokenExpirationSeconds") == 0) {
                double d = cJSON_IsNumber(it) ? it->valuedouble : -1;
                if (d < POLICY_WI_TOKEN_EXPIRATION_MIN || d > POLICY_WI_TOKEN_EXPIRATION_MAX || d != (double)(long)d)
                        policy_fail(l, it, kpath, "must be a whole number of seconds from %u to %u",
                                    POLICY_WI_TOKEN_EXPIRATION_MIN, POLICY_WI_TOKEN_EXPIRATION_MAX);
                else
                        ret->token_expiration = (long)d;
        } else if (strcmp(k, "extraContainers") == 0) {
                want_words(l, it, kpath, WORD_CONTAINER, &ret->extra_containers);
        } else {
                return false;
        }
        return true;
}

/* The keys of a rule that `defaults` may set too (`identity` only in an
 * entry): false when `k` is none of them. */
static bool check_rule_key(struct loader *l, const cJSON *it, const char *k, const char *kpath, enum layer_kind kind,
                           struct layer *ret)
{
        if (strcmp(k, "identity") == 0) {
                if (kind == LAYER_DEFAULTS) {
                        policy_fail_key(l, it, kpath,
                                        "an identity belongs to a namespace or selector "
                                        "entry, not to defaults");
                        return true;
                }
                const char *s = want_word(l, it, kpath);
                if (s && !policy_is_label_value(s))
                        policy_fail(l, it, kpath,
                                    "\"%s\" is not a valid label value (at most 63 "
                                    "of A-Z a-z 0-9 - _ ., starting and ending alphanumeric)",
                                    s);
                else
                        ret->identity = s;
        } else if (strcmp(k, "tenantId") == 0) {
                ret->tenant_id = want_uuid(l, it, kpath);
        } else if (strcmp(k, "clientId") == 0) {
                ret->client_id = want_uuid(l, it, kpath);
        } else if (strcmp(k, "resourceId") == 0) {
                ret->resource_id = want_resource_id(l, it, kpath);
        } else if (strcmp(k, "mode") == 0) {
                ret->mode = policy_want_enum(l, it, kpath, mode_names, POLICY_MODE_MAX);
        } else if (strcmp(k, "onConflict") == 0) {
                ret->on_conflict = policy_want_enum(l, it, kpath, conflict_names, POLICY_CONFLICT_MAX);
        } else if (strcmp(k, "jvmEnv") == 0) {
                ret->jvm_env = policy_want_enum(l, it, kpath, jvm_env_names, POLICY_JVM_ENV_MAX);
        } else if (strcmp(k, "java") == 0) {
                check_java(l, it, kpath, ret);
        } else if (strcmp(k, "hadoop") == 0) {
                check_hadoop_map(l, it, kpath, ret);
        } else if (strcmp(k, "storageAccounts") == 0) {
                want_words(l, it, kpath, WORD_ACCOUNT, &ret->storage_accounts);
        } else if (strcmp(k, "allowedIdentities") == 0) {
                want_words(l, it, kpath, WORD_IDENTITY, &ret->allowed_identities);
        } else if (strcmp(k, "auth") == 0) {
                ret->auth = policy_want_enum(l, it, kpath, auth_names, POLICY_AUTH_MAX);
        } else {
                return check_workload_identity_key(l, it, k, kpath, ret);
        }
        return true;
}

/* A key no layer of `kind` has, with the key meant when one is close. */
static void fail_unknown_rule_key(struct loader *l, const cJSON *it, const char *kpath, enum layer_kind kind)
{
        static const char *const what[] = { "defaults section", "namespace entry", "selector entry" };
        /* The selector's own two first, then every rule key. */
        static const char *const keys[] = { "name",
                                            "namespaceSelector",
                                            "identity",
                                            "tenantId",
                                            "clientId",
                                            "resourceId",
                                            "allowedIdentities",
                                            "storageAccounts",
                                            "mode",
                                            "onConflict",
                                            "java",
                                            "hadoop",
                                            "jvmEnv",
                                            "auth",
                                            "serviceAccount",
                                            "authorityHost",
                                            "tokenExpirationSeconds",
                                            "extraContainers" };
        size_t first = kind == LAYER_SELECTOR ? 0 : 2;
        char has[512];
        size_t off = (size_t)snprintf(has, sizeof has, "a %s has ", what[kind]);
        for (size_t i = first; i < sizeof keys / sizeof *keys && off < sizeof has; i++)
                off += (size_t)snprintf(has + off, sizeof has - off, "%s%s", i > first ? ", " : "", keys[i]);
        policy_fail_unknown_key(l, it, kpath, false, keys + first, sizeof keys / sizeof *keys - first, has);
}

void policy_check_layer(struct loader *l, const cJSON *map, const char *path, enum layer_kind kind, struct layer *ret,
                        struct selector_rule *sel, const char **ret_name)
{
        char kpath[PATH_MAX_CHARS];

        *ret = (struct layer)LAYER_INIT(path);
        if (!cJSON_IsObject(map)) {
                policy_fail(l, map, path,
                            kind == LAYER_DEFAULTS ? "must be a map" : "must be a map with at least identity");
                return;
        }
        const cJSON *it;
        cJSON_ArrayForEach(it, map) {
                const char *k = it->string;
                policy_path_printf(kpath, "%s.%s", path, k);
                if (check_rule_key(l, it, k, kpath, kind, ret))
                        continue;
                if (kind == LAYER_SELECTOR && strcmp(k, "namespaceSelector") == 0) {
                        policy_check_selector(l, it, kpath, sel);
                } else if (kind == LAYER_SELECTOR && strcmp(k, "name") == 0) {
                        *ret_name = want_word(l, it, kpath);
                } else {
                        fail_unknown_rule_key(l, it, kpath, kind);
                }
        }
        int auth = ret->auth >= 0 ? ret->auth : l->defaults_auth;
        if (kind != LAYER_DEFAULTS && auth != POLICY_AUTH_WORKLOAD_IDENTITY && !ret->identity &&
            !cJSON_GetObjectItemCaseSensitive(map, "identity"))
                policy_fail_key(l, map, path,
                                "identity is required (the aadpodidbinding label; with "
                                "auth: workloadIdentity it is optional)");
        if (kind == LAYER_SELECTOR && !cJSON_GetObjectItemCaseSensitive(map, "namespaceSelector"))
                policy_fail_key(l, map, path, "namespaceSelector is required (use {} to match every namespace)");
}

/* ---- a namespace's annotations, as a layer ---- */

const char *policy_annotation_of(const struct ns_info *ns, const char *key)
{
        for (size_t i = 0; ns && i < ns->n_annotations; i++)
                if (strcmp(ns->annotations[i].key, key) == 0)
                        return ns->annotations[i].value;
        return NULL;
}

/* The layer a namespace's annotations make; false (and a reason) when they
 * do not make a valid one. */
bool policy_annotation_layer(const struct ns_info *ns, struct layer *ret, char *why, size_t whylen)
{
        static const char *const modes[POLICY_MODE_MAX] = { "enforce", "audit", "off" };
        const char *identity = policy_annotation_of(ns, ANNOTATION_IDENTITY);
        const char *client = policy_annotation_of(ns, ANNOTATION_CLIENT);
        const char *tenant = policy_annotation_of(ns, ANNOTATION_TENANT);
        const char *mode = policy_annotation_of(ns, ANNOTATION_MODE);
        const char *auth = policy_annotation_of(ns, ANNOTATION_AUTH);
        const char *sa = policy_annotation_of(ns, ANNOTATION_SERVICE_ACCOUNT);

        *ret = (struct layer)LAYER_INIT("annotations");
        if (auth) {
                for (int i = 0; i < POLICY_AUTH_MAX; i++)
                        if (strcmp(auth, auth_names[i]) == 0)
                                ret->auth = i;
                if (ret->auth < 0) {
                        snprintf(why, whylen, ANNOTATION_AUTH " \"%.40s\" is not podIdentity or workloadIdentity",
                                 auth);
                        return false;
                }
        }
        if (sa && !is_dns_subdomain(sa)) {
                snprintf(why, whylen, ANNOTATION_SERVICE_ACCOUNT " \"%.63s\" is not a service account name", sa);
                return false;
        }
        ret->service_account = sa;
        if (identity && !policy_is_label_value(identity)) {
                snprintf(why, whylen, ANNOTATION_IDENTITY " \"%.63s\" is not a valid label value", identity);
                return false;
        }
        if (client && !is_uuid(client)) {
                snprintf(why, whylen, ANNOTATION_CLIENT " \"%.40s\" is not a GUID", client);
                return false;
        }
        if (tenant && !is_uuid(tenant)) {
                snprintf(why, whylen, ANNOTATION_TENANT " \"%.40s\" is not a GUID", tenant);
                return false;
        }
        if (mode) {
                for (int i = 0; i < POLICY_MODE_MAX; i++)
                        if (strcmp(mode, modes[i]) == 0)
                                ret->mode = i;
                if (ret->mode < 0) {
                        snprintf(why, whylen, ANNOTATION_MODE " \"%.20s\" is not enforce, audit or off", mode);
                        return false;
                }
        }
        ret->identity = identity;
        ret->client_id = client;
        ret->tenant_id = tenant;
        return true;
}
