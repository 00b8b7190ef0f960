/* The decision log: one JSON line per admission decision (README, "For
 * auditors"), written by the `serve` command's admission handler.
 *
 * Ownership: nothing is kept. decision_log_write() reads the admission during the
 * call; decision_log_kinds() appends to the caller's buffer. */
#pragma once
#include "admission.h"
#include "buf.h"
#include "change.h"
#include "mutate.h"

/* Writes the decision line of a decided admission, which took `micros`. */
void decision_log_write(const struct admission *a, long long micros);

/* The line's key for a kind of change, e.g. "addEnv"; NULL for
 * CHANGE_KIND_MAX and values out of range. */
const char *decision_log_kind_key(enum change_kind kind);

/* Appends the changes of `m` counted by kind, as a JSON object in the order
 * of enum change_kind with only the kinds present, e.g.
 * {"setIdentityLabel":1,"addEnv":2}: at most CHANGE_KIND_MAX keys, however
 * many changes. 0, or -ENOBUFS/-ENOMEM when `out` could not hold it. */
int decision_log_kinds(const struct mutation *m, struct buf *out);
