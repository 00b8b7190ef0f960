/* A Kubernetes List, one item at a time: see include/core/jsonlist.h.
 *
 * Only the top level is scanned here (keys, the "items" array's brackets
 * and commas); every value, an item included, is parsed by cJSON, which
 * stops at the end of the value and says where. */
#include "jsonlist.h"
#include "err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static size_t skip_ws(const char *t, size_t len, size_t i)
{
        while (i < len && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r'))
                i++;
        return i;
}

/* Parses the value at t[*i] and moves *i past it. */
static cJSON *parse_at(const char *t, size_t len, size_t *i, char *err, size_t errlen)
{
        const char *end = NULL;
        cJSON *v = *i < len ? cJSON_ParseWithLengthOpts(t + *i, len - *i, &end, false) : NULL;
        if (!v) {
                size_t at = end && end >= t + *i && end <= t + len ? (size_t)(end - t) : *i;
                err_set(err, errlen, "not valid JSON at byte %zu", at);
                return NULL;
        }
        *i = (size_t)(end - t);
        return v;
}

static int expected(const char *what, size_t at, char *err, size_t errlen)
{
        err_set(err, errlen, "expected %s at byte %zu", what, at);
        return -EINVAL;
}

/* The items array, from just past its '['. */
static int scan_items(const char *t, size_t len, size_t *i, int (*on_item)(void *ctx, const cJSON *item), void *ctx,
                      struct jsonlist_info *ret, char *err, size_t errlen)
{
        *i = skip_ws(t, len, *i);
        if (*i < len && t[*i] == ']') {
                (*i)++;
                return 0;
        }
        for (;;) {
                cJSON *item = parse_at(t, len, i, err, errlen);
                if (!item)
                        return -EINVAL;
                int r = on_item(ctx, item);
                cJSON_Delete(item);
                if (r)
                        return r;
                ret->n_items++;
                *i = skip_ws(t, len, *i);
                if (*i < len && t[*i] == ',') {
                        *i = skip_ws(t, len, *i + 1);
                        continue;
                }
                if (*i < len && t[*i] == ']') {
                        (*i)++;
                        return 0;
                }
                return expected("',' or ']' after an item", *i, err, errlen);
        }
}

int jsonlist_scan(const char *text, size_t len, int (*on_item)(void *ctx, const cJSON *item), void *ctx,
                  struct jsonlist_info *ret_info, char *err, size_t errlen)
{
        size_t i = 0;
        memset(ret_info, 0, sizeof *ret_info);
        if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
                i = 3;   /* a UTF-8 byte order mark, as some editors write */
        i = skip_ws(text, len, i);
        if (i >= len || text[i] != '{')
                return expected("a JSON object", i, err, errlen);
        i = skip_ws(text, len, i + 1);
        if (i < len && text[i] == '}') {
                i++;
                goto end;
        }
        for (;;) {
                cJSON *key = parse_at(text, len, &i, err, errlen);
                if (!key)
                        return -EINVAL;
                if (!cJSON_IsString(key)) {
                        cJSON_Delete(key);
                        return expected("a key", i, err, errlen);
                }
                bool items = strcmp(key->valuestring, "items") == 0;
                bool kind = strcmp(key->valuestring, "kind") == 0;
                bool metadata = strcmp(key->valuestring, "metadata") == 0;
                cJSON_Delete(key);
                i = skip_ws(text, len, i);
                if (i >= len || text[i] != ':')
                        return expected("':'", i, err, errlen);
                i = skip_ws(text, len, i + 1);
                int r = 0;
                if (items && i < len && text[i] == '[') {
                        i++;
                        ret_info->has_items = true;
                        r = scan_items(text, len, &i, on_item, ctx, ret_info, err, errlen);
                } else {
                        cJSON *v = parse_at(text, len, &i, err, errlen);
                        if (!v)
                                return -EINVAL;
                        const cJSON *cont = metadata ? cJSON_GetObjectItemCaseSensitive(v, "continue") : NULL;
                        if (kind && cJSON_IsString(v))
                                snprintf(ret_info->kind, sizeof ret_info->kind, "%s", v->valuestring);
                        if (cJSON_IsString(cont) && strlen(cont->valuestring) >= sizeof ret_info->continue_) {
                                err_set(err, errlen, "the list's continue token is longer than %u bytes",
                                        JSONLIST_CONTINUE_MAX - 1);
                                r = -E2BIG;
                        } else if (cJSON_IsString(cont)) {
                                snprintf(ret_info->continue_, sizeof ret_info->continue_, "%s", cont->valuestring);
                        }
                        cJSON_Delete(v);
                }
                if (r)
                        return r;
                i = skip_ws(text, len, i);
                if (i < len && text[i] == ',') {
                        i = skip_ws(text, len, i + 1);
                        continue;
                }
                if (i < len && text[i] == '}') {
                        i++;
                        break;
                }
                return expected("',' or '}'", i, err, errlen);
        }
end:
        i = skip_ws(text, len, i);
        if (i < len)
                return expected("the end of the document", i, err, errlen);
        return 0;
}

/* ---- a list cut short ---- */

/* The key at t[*i] and its ':', moving *i to the value; NULL when the text
 * ends (or is not a key) first. */
static cJSON *head_key(const char *t, size_t len, size_t *i)
{
        char err[64];
        *i = skip_ws(t, len, *i);
        cJSON *key = parse_at(t, len, i, err, sizeof err);
        if (key && !cJSON_IsString(key)) {
                cJSON_Delete(key);
                return NULL;
        }
        *i = key ? skip_ws(t, len, *i) : *i;
        if (key && (*i >= len || t[*i] != ':')) {
                cJSON_Delete(key);
                return NULL;
        }
        if (key)
                *i = skip_ws(t, len, *i + 1);
        return key;
}

/* Past the ',' after a member or an element: false at the end of the
 * object or array, or of the text. */
static bool head_next(const char *t, size_t len, size_t *i)
{
        *i = skip_ws(t, len, *i);
        if (*i < len && t[*i] == ',') {
                (*i)++;
                return true;
        }
        return false;
}

/* The members of the object at t[*i] that came whole, into a new object. */
static cJSON *head_object(const char *t, size_t len, size_t *i)
{
        char err[64];
        cJSON *obj = cJSON_CreateObject();
        if (!obj || *i >= len || t[*i] != '{')
                return obj;
        (*i)++;
        do {
                cJSON *key = head_key(t, len, i);
                cJSON *v = key ? parse_at(t, len, i, err, sizeof err) : NULL;
                if (v && !cJSON_AddItemToObject(obj, key->valuestring, v)) {
                        cJSON_Delete(v);
                        v = NULL;
                }
                cJSON_Delete(key);
                if (!v)
                        break;
        } while (head_next(t, len, i));
        return obj;
}

/* The item at t[*i] being cut: its metadata as far as it came. */
static cJSON *head_item_metadata(const char *t, size_t len, size_t *i)
{
        char err[64];
        if (*i >= len || t[*i] != '{')
                return NULL;
        (*i)++;
        do {
                cJSON *key = head_key(t, len, i);
                if (!key)
                        return NULL;
                bool metadata = strcmp(key->valuestring, "metadata") == 0;
                cJSON_Delete(key);
                if (metadata)
                        return head_object(t, len, i);
                cJSON *v = parse_at(t, len, i, err, sizeof err);
                if (!v)
                        return NULL;
                cJSON_Delete(v);
        } while (head_next(t, len, i));
        return NULL;
}

int jsonlist_scan_head(const char *text, size_t len, struct jsonlist_head *ret_head, cJSON **ret_cut_metadata)
{
        char err[64];
        size_t i = 0;
        memset(ret_head, 0, sizeof *ret_head);
        *ret_cut_metadata = NULL;
        if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
                i = 3;
        i = skip_ws(text, len, i);
        if (i >= len || text[i] != '{')
                return -EINVAL;
        i++;
        do {
                cJSON *key = head_key(text, len, &i);
                if (!key)
                        return 0;
                bool items = strcmp(key->valuestring, "items") == 0;
                bool kind = strcmp(key->valuestring, "kind") == 0;
                bool metadata = strcmp(key->valuestring, "metadata") == 0;
                cJSON_Delete(key);
                if (items && i < len && text[i] == '[') {
                        i++;
                        do {
                                i = skip_ws(text, len, i);
                                size_t at = i;
                                cJSON *item = parse_at(text, len, &i, err, sizeof err);
                                if (!item) {
                                        i = at;
                                        *ret_cut_metadata = head_item_metadata(text, len, &i);
                                        return 0;
                                }
                                cJSON_Delete(item);
                                ret_head->n_items++;
                        } while (head_next(text, len, &i));
                        if (i < len && text[i] == ']')
                                i++;
                        continue;
                }
                cJSON *v = parse_at(text, len, &i, err, sizeof err);
                if (!v)
                        return 0;
                /* NULL unless metadata.continue is a string. */
                const char *cont =
                        metadata ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(v, "continue")) : NULL;
                int r = 0;
                if (kind && cJSON_IsString(v))
                        snprintf(ret_head->kind, sizeof ret_head->kind, "%s", v->valuestring);
                if (metadata && cJSON_IsObject(v))
                        ret_head->has_metadata = true;
                if (cont && strlen(cont) >= sizeof ret_head->continue_)
                        r = -E2BIG;
                else if (cont)
                        snprintf(ret_head->continue_, sizeof ret_head->continue_, "%s", cont);
                cJSON_Delete(v);
                if (r)
                        return r;
        } while (head_next(text, len, &i));
        return 0;
}
