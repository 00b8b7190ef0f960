/* Builds an RFC 6902 JSON Patch as text, one operation at a time, with
 * RFC 6901 escaping of path tokens. Bounded: at most WH_MAX_PATCH_OPS
 * operations and WH_MAX_PATCH_BYTES bytes.
 *
 * Ownership: the struct owns its text; jsonpatch_free() releases it. */
#pragma once
#include <stddef.h>

#include "buf.h"

struct jsonpatch {
        struct buf text;        /* "[op,op" while building; "[...]" after jsonpatch_finish() */
        unsigned n_ops;
        struct buf path;        /* scratch for the path being built */
};

void jsonpatch_init(struct jsonpatch *p);
void jsonpatch_free(struct jsonpatch *p);

/* Starts a path from the document root; then append tokens. */
void jsonpatch_path_reset(struct jsonpatch *p);
int jsonpatch_path_token(struct jsonpatch *p, const char *token);
int jsonpatch_path_index(struct jsonpatch *p, size_t index);

/* Appends {"op": op, "path": <the path built>, "value": value_json}.
 * `value_json` is JSON text, inserted as it is; NULL for "remove".
 * 0, -E2BIG past the bounds, -ENOMEM. */
int jsonpatch_op(struct jsonpatch *p, const char *op, const char *value_json);

/* Closes the array. The text is then p->text.data, p->text.len bytes. */
int jsonpatch_finish(struct jsonpatch *p);
