/* The decision log: one JSON line per admission decision (README, "For
 * auditors"), written by the `serve` command's admission handler.
 *
 * Ownership: nothing is kept; log_decision() reads the admission during the
 * call. */
#pragma once
#include "admission.h"

/* Writes the decision line of a decided admission, which took `micros`. */
void log_decision(const struct admission *a, long long micros);
