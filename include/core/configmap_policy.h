/* The validating webhook of the server's own policy ConfigMap: a CREATE or
 * UPDATE whose policy key would not load is refused with the problems, as
 * `check-policy` prints them, so that a broken policy never reaches the
 * pods that mount it (where a reload would only refuse it and keep the old
 * one, in a log nobody reads at `kubectl apply` time).
 *
 * Pure: no I/O, no globals. The policy is loaded with policy_load() in the
 * caller's memory (the server's: inside its arena bracket, so the load is
 * bounded like a review's parse) and freed before the call returns. */
#pragma once
#include <stddef.h>

#include "buf.h"
#include "review.h"
#include "webhook_limits.h"

enum configmap_policy_verdict {
        CONFIGMAP_POLICY_IGNORED,   /* allowed: nothing to judge (`why` says what) */
        CONFIGMAP_POLICY_VALID,     /* allowed: the key's policy loads */
        CONFIGMAP_POLICY_INVALID,   /* refused, 422 Invalid, with `message` */
};

struct configmap_policy_result {
        enum configmap_policy_verdict verdict;
        const char *why;            /* IGNORED: a static phrase, for the log */
        /* INVALID: "KEY:LINE:COL: where: what" lines, bounded by
         * WH_POLICY_REFUSAL_MAX_CHARS; the first problems and then how many
         * more there are. */
        char message[WH_POLICY_REFUSAL_MAX_CHARS];
};

/* Judges a parsed review for the ConfigMap whose data key `key` (the
 * policy file's name in the directory the ConfigMap is mounted as, e.g.
 * policy.yaml) holds the policy, and writes the AdmissionReview answer to
 * `out`. Allowed: anything but a ConfigMap CREATE or UPDATE; a ConfigMap
 * without the key in `data`; an UPDATE that leaves the key's value as it
 * was; a policy that loads. Refused: a policy that does not. 0, or -ENOMEM
 * (the load ran out of memory: nothing is judged) or -ENOBUFS from `out`. */
int configmap_policy_judge(const struct review *rv, const char *key, struct configmap_policy_result *ret,
                           struct buf *out);

/* "ignored", "valid", "invalid": for logs. */
const char *configmap_policy_verdict_name(enum configmap_policy_verdict v);
