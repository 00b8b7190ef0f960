/* Rendering the policy into the Azure identity objects it presupposes
 * (render identities), instead of writing them by hand per identity:
 *
 *   - for every `namespaces` rule with auth podIdentity, in its namespace:
 *     the aad-pod-identity AzureIdentity (aadpodidentity.k8s.io/v1, type 0:
 *     a user-assigned managed identity, spec.resourceID from the rule's
 *     resourceId, spec.clientID from its clientId, the annotation
 *     aadpodidentity.k8s.io/Behavior: namespaced) and its
 *     AzureIdentityBinding (spec.azureIdentity: the AzureIdentity's name,
 *     spec.selector: the rule's identity, which the webhook puts in the
 *     pods' aadpodidbinding label). Both are named after the identity,
 *     lowercased, with any character but a-z 0-9 - made '-' (the binding
 *     "<name>-binding");
 *   - for every `namespaces` rule with auth workloadIdentity: the
 *     ServiceAccount the rule names (serviceAccount), annotated
 *     azure.workload.identity/client-id and /tenant-id; and its federated
 *     identity credential on the managed identity of resourceId (subject
 *     system:serviceaccount:NS:SA, audience api://AzureADTokenExchange, the
 *     issuer given), as `az identity federated-credential create` commands
 *     (RENDER_IDENTITIES_SHELL) or azurerm_federated_identity_credential
 *     blocks (RENDER_IDENTITIES_TERRAFORM; azurerm 3.x and 4.x arguments:
 *     parent_id and resource_group_name), named "<NS>-<SA>" ('.' made '-').
 *
 * A `selectors` rule matches namespaces by their labels: which namespaces
 * those are is not in the policy, so its objects are not rendered; each
 * such rule is a warning (and a comment in YAML, shell and Terraform).
 * Rules from namespaces' annotations are not in the policy either.
 *
 * Pure: policy in, bytes out; no I/O, no globals. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

struct buf;
struct policy;

#define RENDER_IDENTITIES_COMMAND "spark-identity-webhook render identities"
#define RENDER_AAD_API_VERSION "aadpodidentity.k8s.io/v1"
#define RENDER_AAD_BEHAVIOR_ANNOTATION "aadpodidentity.k8s.io/Behavior"
#define RENDER_WI_CLIENT_ANNOTATION "azure.workload.identity/client-id"
#define RENDER_WI_TENANT_ANNOTATION "azure.workload.identity/tenant-id"

enum render_identities_format {
        RENDER_IDENTITIES_YAML,       /* Kubernetes objects, a YAML stream after a comment */
        RENDER_IDENTITIES_JSON,       /* Kubernetes objects, one v1 List */
        RENDER_IDENTITIES_TERRAFORM,  /* federated credentials as azurerm resources */
        RENDER_IDENTITIES_SHELL,      /* federated credentials as az commands, a sh script */
        RENDER_IDENTITIES_FORMAT_MAX,
};

/* "yaml", "json", "terraform", "shell"; NULL for a value out of range. */
const char *render_identities_format_name(enum render_identities_format f);

/* Whether `issuer` may be the federated credentials' issuer: an https URL
 * with a host, at most WH_MAX_POLICY_STRING bytes, without white space or
 * control characters. */
bool render_identities_issuer_valid(const char *issuer);

/* Appends the identity objects of `p` in `format` to `out`; `issuer` is the
 * cluster's OIDC issuer URL (required for Terraform and shell, unused
 * otherwise). Returns 0, with one line per warning in `notes` (a selector
 * rule not rendered); -EINVAL with one line per problem in `notes`, each
 * naming its rule ("namespaces.team-a: ..."), when a rule lacks what its
 * objects need (a podIdentity rule its resourceId or clientId; a
 * workloadIdentity rule its serviceAccount, or for Terraform and shell its
 * resourceId), or the issuer is missing or not valid; -ENOBUFS when `out`
 * reaches its maximum; -ENOMEM. On failure `out` may hold part of the output. */
int render_identities(const struct policy *p, enum render_identities_format format, const char *issuer, struct buf *out,
                      struct buf *notes);
