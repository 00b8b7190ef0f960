/* Rendering the policy into what other components enforce.
 *
 * The admission policy (render_admission_policy()): three Kubernetes objects
 * that make the kube-apiserver itself judge the claim rule of policy.h, also
 * while the webhook is down, and two more for the grant keys of namespaces:
 *   - the parameter ConfigMap RENDER_PARAMS_NAME in the webhook's namespace,
 *     whose `data` carries the policy's data (see below);
 *   - the ValidatingAdmissionPolicy RENDER_POLICY_NAME: pods CREATE and
 *     UPDATE (pods, pods/status) whose aadpodidbinding label is added or
 *     changed are judged in CEL against the ConfigMap; the selectors of the
 *     policy are code, generated into its `variables`;
 *   - its binding (same name): validationActions Deny, the ConfigMap as
 *     paramRef (parameterNotFoundAction: Deny), every namespace but
 *     kube-system and the webhook's own;
 *   - when the policy reads namespaces (policy_uses_namespaces()), the
 *     ValidatingAdmissionPolicy RENDER_GRANTS_POLICY_NAME: namespace CREATE
 *     and UPDATE (namespaces, namespaces/status, namespaces/finalize) that
 *     add, change or remove a grant key are refused unless the user or one
 *     of its groups is a grantor, as grants_judge() decides and words it;
 *     and its binding (same name, same ConfigMap, Deny), for every
 *     namespace, as the namespace-grants webhook has no namespaceSelector.
 *
 * The ConfigMap's data, every value a string:
 *   annotations        "true" | "false": namespaceAnnotations
 *   annotations.auth   the auth of a rule made from annotations without
 *                      spark-identity.io/auth (defaults.auth)
 *   annotations.needs  what a workloadIdentity rule made from annotations must
 *                      carry itself because defaults lack it: "", "tenant-id",
 *                      "client-id" or "tenant-id client-id"
 *   defaults           "<mode> <id>...": defaults.mode, defaults.allowedIdentities
 *   unlisted           "allow" | "deny": unlistedIdentities
 *   ns.<name>          "<mode> <id>...": the entry of namespace <name>, its
 *                      identity first, then its allowedIdentities
 *   sel.<i>            the same for selectors[i] (file order, from 0)
 *   owner.<id>         the protection of a listed identity: enforce | audit | off
 *   delegable.<id>     "true" for each identity annotations may give
 *   grants             "true" | "false": whether namespace changes of grant
 *                      keys are judged (the policy reads namespaces); written
 *                      either way, so that a namespace-grants policy left from
 *                      an earlier rendering judges nothing
 *   grantors           the grantors as written, one a line ("alice",
 *                      "group:platform-admins"); "" for none. A grantor holds
 *                      no control character (policy_load() refuses it), so a
 *                      line break never splits one, whatever else a user
 *                      name holds (spaces, commas, quotes)
 *   grantlabels        the label keys the selectors read, one a line, sorted
 *
 * Pure: policy in, bytes out; no I/O, no globals. */
#pragma once
#include <stddef.h>

struct buf;
struct policy;

#define RENDER_POLICY_NAME "identity-claims.spark-identity.io"
#define RENDER_GRANTS_POLICY_NAME "namespace-grants.spark-identity.io"
#define RENDER_PARAMS_NAME "spark-identity-claims"
#define RENDER_NAMESPACE_DEFAULT "spark-identity-system"
#define RENDER_COMMAND "spark-identity-webhook render admission-policy"

enum render_format {
        RENDER_YAML,    /* a multi-document YAML stream, after a comment that says where it came from */
        RENDER_JSON,    /* one JSON List */
        RENDER_FORMAT_MAX,
};

/* "yaml", "json"; NULL for a value out of range. */
const char *render_format_name(enum render_format f);

/* Appends the admission policy of `p` to `out`: the objects above, the
 * ConfigMap in `namespace_` (the webhook's, also left out of the binding).
 * Returns 0; -EINVAL with a message in `err` when the policy cannot be
 * rendered (a ConfigMap key would not be valid, or the data would pass
 * RENDER_MAX_PARAMS_BYTES); -ENOBUFS when `out` reaches its maximum;
 * -ENOMEM. On failure `out` may hold part of the output. */
int render_admission_policy(const struct policy *p, const char *namespace_, enum render_format format, struct buf *out,
                            char *err, size_t errlen);

/* The writers both renderings share (render_identities.h too): each item
 * of the JSON array `items` as a YAML document ("---", then the object as a
 * block mapping; strings quoted where YAML 1.1 or 1.2 would read them as
 * something else); `v` as indented JSON and a newline. 0, -ENOBUFS, -ENOMEM. */
struct cJSON;
int render_write_yaml(struct buf *out, const struct cJSON *items);
int render_write_json(struct buf *out, const struct cJSON *v);

/* Appends `s` as a CEL string literal in single quotes: \ ' " and control
 * characters escaped (\xHH), other bytes as they are. */
int render_cel_string(struct buf *b, const char *s);
