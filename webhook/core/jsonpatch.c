/* RFC 6902 patch text builder: see include/core/jsonpatch.h. */
#include "jsonpatch.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>

#include "policy.h"
#include "webhook_limits.h"

/* The token volume, with its expiration; and its mount. */
#define TOKEN_VOLUME_FORMAT                                                                            \
        "{\"name\":\"" POLICY_WI_VOLUME "\",\"projected\":{\"sources\":"                               \
        "[{\"serviceAccountToken\":{\"audience\":\"" POLICY_WI_AUDIENCE "\",\"expirationSeconds\":%u," \
        "\"path\":\"" POLICY_WI_TOKEN_NAME "\"}}]}}"
#define TOKEN_MOUNT "{\"name\":\"" POLICY_WI_VOLUME "\",\"mountPath\":\"" POLICY_WI_MOUNT_PATH "\",\"readOnly\":true}"

void jsonpatch_init(struct jsonpatch *p)
{
        buf_init(&p->text, WH_MAX_PATCH_BYTES + 2);   /* room for the closing "]" */
        buf_init(&p->path, WH_MAX_PATCH_BYTES);
        buf_init(&p->value, WH_MAX_PATCH_BYTES);
        p->n_ops = 0;
}

void jsonpatch_free(struct jsonpatch *p)
{
        buf_free(&p->text);
        buf_free(&p->path);
        buf_free(&p->value);
        p->n_ops = 0;
}

void jsonpatch_path_reset(struct jsonpatch *p)
{
        buf_reset(&p->path);
}

int jsonpatch_path_token(struct jsonpatch *p, const char *token)
{
        return buf_put_pointer_token(&p->path, token);
}

int jsonpatch_path_index(struct jsonpatch *p, size_t index)
{
        return buf_printf(&p->path, "/%zu", index);
}

int jsonpatch_op(struct jsonpatch *p, const char *op, const char *value_json)
{
        assert(op);
        /* Not after jsonpatch_finish(): the text so far ends an operation. */
        assert(p->text.len == 0 || (p->text.len <= WH_MAX_PATCH_BYTES && p->text.data[p->text.len - 1] == '}'));
        if (p->n_ops >= WH_MAX_PATCH_OPS)
                return -E2BIG;
        size_t mark = p->text.len;
        int r = buf_puts(&p->text, p->n_ops ? ",{\"op\":" : "[{\"op\":");
        if (r == 0)
                r = buf_put_json_str(&p->text, op);
        if (r == 0)
                r = buf_puts(&p->text, ",\"path\":");
        if (r == 0)
                r = buf_put_json_strn(&p->text, p->path.data ? p->path.data : "", p->path.len);
        if (r == 0 && value_json) {
                r = buf_puts(&p->text, ",\"value\":");
                if (r == 0)
                        r = buf_puts(&p->text, value_json);
        }
        if (r == 0)
                r = buf_putc(&p->text, '}');
        if (r == 0 && p->text.len > WH_MAX_PATCH_BYTES)
                r = -ENOBUFS;
        if (r < 0) {
                assert(mark <= p->text.len);
                p->text.len = mark;     /* leave the patch as it was */
                if (p->text.data)
                        p->text.data[mark] = '\0';
                return r == -ENOBUFS ? -E2BIG : r;
        }
        p->n_ops++;
        return 0;
}

int jsonpatch_finish(struct jsonpatch *p)
{
        /* Every operation left room for the closing "]" (jsonpatch_init). */
        assert(p->text.len <= WH_MAX_PATCH_BYTES);
        assert(p->text.max >= WH_MAX_PATCH_BYTES + 2);
        if (p->n_ops == 0)
                return buf_puts(&p->text, "[]");
        return buf_putc(&p->text, ']');
}

/* {"name":..,"value":..} */
static int env_entry(struct buf *out, const struct change *c)
{
        int r = buf_puts(out, "{\"name\":");
        if (r == 0 && c->kind == CHANGE_ADD_JAVA_OPT)
                r = buf_printf(out, "\"" CHANGE_JAVA_OPT_PREFIX "%u\"", c->index);
        else if (r == 0)
                r = buf_put_json_str(out, c->name);
        if (r == 0)
                r = buf_puts(out, ",\"value\":");
        if (r == 0)
                r = buf_put_json_str(out, c->value);
        return r == 0 ? buf_putc(out, '}') : r;
}

int jsonpatch_change_item(struct buf *out, const struct change *c)
{
        switch (c->kind) {
        case CHANGE_SET_IDENTITY_LABEL:
        case CHANGE_SET_SERVICE_ACCOUNT:
        case CHANGE_SET_DEPRECATED_SERVICE_ACCOUNT:
        case CHANGE_SET_ENV: return buf_put_json_str(out, c->value);
        case CHANGE_REMOVE_IDENTITY_LABEL: return buf_puts(out, "null");
        case CHANGE_ADD_ENV:
        case CHANGE_ADD_JAVA_OPT: return env_entry(out, c);
        case CHANGE_TOKEN_VOLUME: return buf_printf(out, TOKEN_VOLUME_FORMAT, c->expiration_s);
        case CHANGE_TOKEN_MOUNT: return buf_puts(out, TOKEN_MOUNT);
        case CHANGE_KIND_MAX: break;
        }
        return -EINVAL;
}

/* The path of a container's member: /spec/<list>/<container>/<member>. */
static int path_container(struct jsonpatch *p, const struct change *c, const char *member)
{
        jsonpatch_path_reset(p);
        int r = jsonpatch_path_token(p, "spec");
        if (r == 0)
                r = jsonpatch_path_token(p, change_list_name(c->list));
        if (r == 0)
                r = jsonpatch_path_index(p, c->container);
        return r == 0 ? jsonpatch_path_token(p, member) : r;
}

static int path2(struct jsonpatch *p, const char *a, const char *b)
{
        jsonpatch_path_reset(p);
        int r = jsonpatch_path_token(p, a);
        return r == 0 ? jsonpatch_path_token(p, b) : r;
}

/* With the path of a list built and the value written (in brackets for
 * CHANGE_PLACE_NEW): the item at c->index replaced, appended, or the list
 * added holding it (never an item under a list that does not exist). */
static int op_in_list(struct jsonpatch *p, const struct change *c)
{
        int r = 0;
        switch (c->place) {
        case CHANGE_PLACE_REPLACE:
                r = jsonpatch_path_index(p, c->index);
                return r == 0 ? jsonpatch_op(p, "replace", p->value.data) : r;
        case CHANGE_PLACE_ADD: r = jsonpatch_path_token(p, "-"); break;
        case CHANGE_PLACE_NEW: break;
        }
        return r == 0 ? jsonpatch_op(p, "add", p->value.data) : r;
}

/* The item of a change to a list, as op_in_list() wants it. */
static int list_item(struct buf *out, const struct change *c)
{
        bool whole = c->place == CHANGE_PLACE_NEW;
        int r = whole ? buf_putc(out, '[') : 0;
        if (r == 0)
                r = jsonpatch_change_item(out, c);
        return r == 0 && whole ? buf_putc(out, ']') : r;
}

/* The operation of an identity label change: the label set (in a new
 * labels map, or added or replaced in the one there) or removed. */
static int identity_label_op(struct jsonpatch *p, const struct change *c)
{
        int r;
        if (c->kind == CHANGE_REMOVE_IDENTITY_LABEL) {
                r = path2(p, "metadata", "labels");
                if (r == 0)
                        r = jsonpatch_path_token(p, CHANGE_IDENTITY_LABEL);
                return r == 0 ? jsonpatch_op(p, "remove", NULL) : r;
        }
        if (c->place == CHANGE_PLACE_NEW) {
                r = path2(p, "metadata", "labels");
                if (r == 0)
                        r = buf_puts(&p->value, "{\"" CHANGE_IDENTITY_LABEL "\":");
                if (r == 0)
                        r = jsonpatch_change_item(&p->value, c);
                if (r == 0)
                        r = buf_putc(&p->value, '}');
                return r == 0 ? jsonpatch_op(p, "add", p->value.data) : r;
        }
        r = path2(p, "metadata", "labels");
        if (r == 0)
                r = jsonpatch_path_token(p, CHANGE_IDENTITY_LABEL);
        if (r == 0)
                r = jsonpatch_change_item(&p->value, c);
        return r == 0 ? jsonpatch_op(p, c->place == CHANGE_PLACE_REPLACE ? "replace" : "add", p->value.data) : r;
}

/* The operation of an env entry added at changes[i] (CHANGE_ADD_ENV,
 * CHANGE_ADD_JAVA_OPT), and of the entries that join it; *ret_next is the
 * first change after them. */
static int add_env_op(struct jsonpatch *p, const struct change *changes, size_t n, size_t i, size_t *ret_next)
{
        const struct change *c = &changes[i];
        int r = path_container(p, c, "env");
        if (r == 0 && c->place == CHANGE_PLACE_NEW) {
                /* The container has no env: one "add" of the whole list. */
                r = buf_putc(&p->value, '[');
                for (size_t k = i; r == 0 && k < n && (k == i || !change_starts_op(&changes[k - 1], &changes[k]));
                     k++) {
                        if (k > i)
                                r = buf_putc(&p->value, ',');
                        if (r == 0)
                                r = env_entry(&p->value, &changes[k]);
                        *ret_next = k + 1;
                }
                if (r == 0)
                        r = buf_putc(&p->value, ']');
                return r == 0 ? jsonpatch_op(p, "add", p->value.data) : r;
        }
        if (r == 0)
                r = jsonpatch_path_token(p, "-");
        if (r == 0)
                r = env_entry(&p->value, c);
        return r == 0 ? jsonpatch_op(p, "add", p->value.data) : r;
}

/* The operation of changes[i], and of the env entries that join it; *ret_next
 * is the first change after them. */
static int change_op(struct jsonpatch *p, const struct change *changes, size_t n, size_t i, size_t *ret_next)
{
        const struct change *c = &changes[i];
        int r;
        *ret_next = i + 1;
        buf_reset(&p->value);
        switch (c->kind) {
        case CHANGE_SET_IDENTITY_LABEL:
        case CHANGE_REMOVE_IDENTITY_LABEL: return identity_label_op(p, c);
        case CHANGE_SET_SERVICE_ACCOUNT:
        case CHANGE_SET_DEPRECATED_SERVICE_ACCOUNT:
                r = path2(p, "spec", c->kind == CHANGE_SET_SERVICE_ACCOUNT ? "serviceAccountName" : "serviceAccount");
                if (r == 0)
                        r = jsonpatch_change_item(&p->value, c);
                return r == 0 ? jsonpatch_op(p, "add", p->value.data) : r;
        case CHANGE_SET_ENV:
                /* "add" replaces a member that exists and creates one that
                 * does not, so an entry without `value` works too. */
                r = path_container(p, c, "env");
                if (r == 0)
                        r = jsonpatch_path_index(p, c->index);
                if (r == 0)
                        r = jsonpatch_path_token(p, "value");
                if (r == 0)
                        r = jsonpatch_change_item(&p->value, c);
                return r == 0 ? jsonpatch_op(p, "add", p->value.data) : r;
        case CHANGE_ADD_ENV:
        case CHANGE_ADD_JAVA_OPT: return add_env_op(p, changes, n, i, ret_next);
        case CHANGE_TOKEN_VOLUME:
                r = path2(p, "spec", "volumes");
                if (r == 0)
                        r = list_item(&p->value, c);
                return r == 0 ? op_in_list(p, c) : r;
        case CHANGE_TOKEN_MOUNT:
                r = path_container(p, c, "volumeMounts");
                if (r == 0)
                        r = list_item(&p->value, c);
                return r == 0 ? op_in_list(p, c) : r;
        case CHANGE_KIND_MAX: break;
        }
        return -EINVAL;
}

int jsonpatch_changes(struct jsonpatch *p, const struct change *changes, size_t n)
{
        for (size_t i = 0; i < n;) {
                int r = change_op(p, changes, n, i, &i);
                if (r < 0)
                        return r == -ENOBUFS ? -E2BIG : r;
        }
        return jsonpatch_finish(p);
}
