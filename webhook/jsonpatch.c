/* RFC 6902 patch text builder: see include/jsonpatch.h. */
#include "jsonpatch.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>

#include "webhook_limits.h"

void jsonpatch_init(struct jsonpatch *p)
{
        buf_init(&p->text, WH_MAX_PATCH_BYTES + 2);   /* room for the closing "]" */
        buf_init(&p->path, WH_MAX_PATCH_BYTES);
        p->n_ops = 0;
}

void jsonpatch_free(struct jsonpatch *p)
{
        buf_free(&p->text);
        buf_free(&p->path);
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
