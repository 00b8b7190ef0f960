/* Reads a YAML or JSON document (JSON through the same libyaml parser) into a
 * cJSON tree, and remembers where each node starts so that callers can point
 * at the line and column of an error.
 *
 * Scalars follow the YAML 1.2 core schema, so `off`, `yes` and `no` stay
 * strings: plain `null`, `Null`, `NULL`, `~` and empty are null; plain
 * `true`/`True`/`TRUE`/`false`/... are booleans; plain integers and floats are
 * numbers; everything else, and every quoted scalar, is a string. Mapping keys
 * must be scalars and are kept as strings; a duplicate key is an error.
 * Aliases are expanded, bounded by WH_MAX_POLICY_NODES; nesting is bounded by
 * WH_MAX_POLICY_DEPTH. Exactly one document is allowed; an empty input is an
 * error.
 *
 * Pure: no I/O, no globals. */
#pragma once
#include <stddef.h>
#include <cjson/cJSON.h>

struct doc;   /* owns the cJSON tree and the position table */

/* Parses `len` bytes of `text` (need not be NUL-terminated). On success
 * writes a new document to *ret_doc (free with doc_free()) and returns 0. On
 * error returns -EINVAL (or -ENOMEM, -E2BIG for the node bound) and writes a
 * message with its place to `err`, shaped "LINE:COL: message" (1-based). */
int doc_parse(const char *text, size_t len, struct doc **ret_doc, char *err, size_t errlen);

/* The root node. Owned by the document; valid until doc_free(). */
const cJSON *doc_root(const struct doc *d);

/* Where `node` (a node of this document) starts, 1-based. Returns 0, or
 * -ENOENT when the node is not known (then nothing is written). */
int doc_position(const struct doc *d, const cJSON *node, unsigned *ret_line, unsigned *ret_col);

/* Where the key of `node` starts, when `node` is the value of a mapping
 * member (a copy made by an alias has the key of what it copied). 0, or
 * -ENOENT for a node that is not a member value (then nothing is written). */
int doc_key_position(const struct doc *d, const cJSON *node, unsigned *ret_line, unsigned *ret_col);

/* Releases the document and its tree. NULL is fine. */
void doc_free(struct doc *d);
