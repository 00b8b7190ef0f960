/* Builds an RFC 6902 JSON Patch as text, with RFC 6901 escaping of path
 * tokens: from a list of typed changes (change.h), the way admission does,
 * or one operation at a time. Never from the pod: only what changes is
 * written, in the fewest operations. Bounded: at most WH_MAX_PATCH_OPS
 * operations and WH_MAX_PATCH_BYTES bytes.
 *
 * Ownership: the struct owns its text; jsonpatch_free() releases it. The
 * changes stay the caller's. */
#pragma once
#include <stddef.h>

#include "buf.h"
#include "change.h"

struct jsonpatch {
        struct buf text;        /* "[op,op" while building; "[...]" after jsonpatch_finish() */
        unsigned n_ops;
        struct buf path;        /* scratch for the path being built */
        struct buf value;       /* scratch for the value of a change */
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

/* Appends the operations of `n` changes, in their order, and closes the
 * array: labels, service accounts, env entries (the entries of a container
 * without env as one "add" of the whole list), the token volume and its
 * mounts, each where the change says (change.h). 0, -E2BIG past the bounds,
 * -ENOMEM. */
int jsonpatch_changes(struct jsonpatch *p, const struct change *changes, size_t n);

/* Writes the JSON of the item one change adds or sets (a label's or env
 * entry's value as a JSON string, an env entry, the volume, the mount;
 * "null" for a removal) to `out`. 0, -ENOBUFS past out's maximum, -ENOMEM. */
int jsonpatch_change_item(struct buf *out, const struct change *c);
