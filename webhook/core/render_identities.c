/* Rendering the policy's identity objects: see include/core/render_identities.h.
 *
 * The Kubernetes objects are one cJSON tree written by render.c's YAML and
 * JSON writers; the federated credentials are written here, as a sh script
 * or Terraform, with every value quoted for its language. */
#include "render_identities.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "change.h"
#include "policy.h"
#include "render.h"
#include "webhook_limits.h"

#define COMPONENT "identities"
#define AAD_TYPE_USER_ASSIGNED 0
#define BINDING_SUFFIX "-binding"

const char *render_identities_format_name(enum render_identities_format f)
{
        static const char *const names[RENDER_IDENTITIES_FORMAT_MAX] = { "yaml", "json", "terraform", "shell" };
        return (unsigned)f < RENDER_IDENTITIES_FORMAT_MAX ? names[f] : NULL;
}

bool render_identities_issuer_valid(const char *issuer)
{
        if (!policy_value_valid(POLICY_VALUE_WORD, issuer) || !policy_value_valid(POLICY_VALUE_HTTPS_URL, issuer))
                return false;
        for (const char *s = issuer; *s; s++)
                if ((unsigned char)*s < 0x20 || *s == 0x7f)
                        return false;
        return true;
}

/* ---- what each rule makes ---- */

/* One rule of `namespaces` with what its objects need. */
struct identity_rule {
        const struct rule *rule;
        const char *ns;                     /* the namespace: the rule's name */
        char object[64];                    /* pod identity: the AzureIdentity's name */
        char credential[WH_AZURE_FIC_NAME_MAX + 1];   /* workload identity: the credential's name */
        struct policy_resource_id id;       /* parsed resourceId; valid when rule->resource_id */
};

/* The AzureIdentity's name for `identity` (a label value, so at most 63
 * characters, alphanumeric at both ends): lowercased, any character but
 * a-z 0-9 - made '-'. */
static void object_name(const char *identity, char out[64])
{
        size_t i = 0;
        for (; identity[i] && i < 63; i++) {
                char c = identity[i];
                if (c >= 'A' && c <= 'Z')
                        c = (char)(c - 'A' + 'a');
                out[i] = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ? c : '-';
        }
        out[i] = '\0';
}

__attribute__((format(printf, 3, 4))) static void note(struct buf *notes, int *n, const char *fmt, ...);

static void note(struct buf *notes, int *n, const char *fmt, ...)
{
        char line[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(line, sizeof line, fmt, ap);
        va_end(ap);
        (*n)++;
        buf_printf(notes, "%s\n", line);
}

/* Fills `ir` for rule `r`, reporting in `notes` (counted in *n_problems)
 * whatever it lacks for `format`. */
static void check_rule(const struct rule *r, enum render_identities_format format, struct identity_rule *ir,
                       struct buf *notes, int *n_problems)
{
        bool federate = format == RENDER_IDENTITIES_TERRAFORM || format == RENDER_IDENTITIES_SHELL;
        char why[160];
        *ir = (struct identity_rule){ .rule = r, .ns = r->name };
        if (r->resource_id && policy_resource_id_parse(r->resource_id, &ir->id, why, sizeof why) < 0)
                note(notes, n_problems, "namespaces.%s.resourceId: %s", r->name, why);   /* loaded: not reached */
        if (r->auth == POLICY_AUTH_POD_IDENTITY) {
                object_name(r->identity, ir->object);
                if (federate)
                        return;   /* nothing of it to federate */
                if (!r->resource_id)
                        note(notes, n_problems,
                             "namespaces.%s: resourceId is not set (in the rule or in defaults): the AzureIdentity "
                             "of identity %s needs the managed identity's resource id (az identity show -g RG -n "
                             "NAME --query id)",
                             r->name, r->identity);
                if (!r->client_id)
                        note(notes, n_problems,
                             "namespaces.%s: clientId is not set (in the rule or in defaults): the AzureIdentity of "
                             "identity %s needs the managed identity's client id",
                             r->name, r->identity);
                return;
        }
        if (!r->service_account) {
                note(notes, n_problems,
                     "namespaces.%s: serviceAccount is not set (in the rule or in defaults): the ServiceAccount to "
                     "annotate and the federated credential's subject need its name",
                     r->name);
                return;
        }
        int len = snprintf(ir->credential, sizeof ir->credential, "%s-%s", r->name, r->service_account);
        if (len < 0 || (size_t)len >= sizeof ir->credential)
                note(notes, n_problems,
                     "namespaces.%s: the federated credential's name %s-%s would be longer than the %u characters "
                     "Azure allows; choose a shorter serviceAccount",
                     r->name, r->name, r->service_account, WH_AZURE_FIC_NAME_MAX);
        for (char *c = ir->credential; *c; c++)
                if (*c == '.')
                        *c = '-';
        if (federate && !r->resource_id)
                note(notes, n_problems,
                     "namespaces.%s: resourceId is not set (in the rule or in defaults): the federated credential "
                     "is made on the managed identity it names (its resource group and name)",
                     r->name);
}

/* ---- Kubernetes objects ---- */

static int add_string(cJSON *o, const char *key, const char *value)
{
        return cJSON_AddStringToObject(o, key, value) ? 0 : -ENOMEM;
}

/* An object's apiVersion, kind and metadata; NULL when out of memory. The
 * annotations are returned in *ret_ann for more. */
static cJSON *object(cJSON *items, const struct policy *p, const char *api_version, const char *kind, const char *name,
                     const char *ns, cJSON **ret_ann)
{
        cJSON *o = cJSON_CreateObject(), *md, *labels;
        if (!o)
                return NULL;
        cJSON_AddItemToArray(items, o);
        if (add_string(o, "apiVersion", api_version) || add_string(o, "kind", kind) ||
            !(md = cJSON_AddObjectToObject(o, "metadata")) || add_string(md, "name", name) ||
            add_string(md, "namespace", ns) || !(labels = cJSON_AddObjectToObject(md, "labels")) ||
            add_string(labels, "app.kubernetes.io/name", "spark-identity-webhook") ||
            add_string(labels, "app.kubernetes.io/component", COMPONENT) ||
            !(*ret_ann = cJSON_AddObjectToObject(md, "annotations")) ||
            add_string(*ret_ann, POLICY_ANNOTATION_PREFIX "generated-by", RENDER_IDENTITIES_COMMAND) ||
            add_string(*ret_ann, POLICY_ANNOTATION_PREFIX "policy-sha256", policy_sha256(p)))
                return NULL;
        return o;
}

static int pod_identity_objects(cJSON *items, const struct policy *p, const struct identity_rule *ir)
{
        const struct rule *r = ir->rule;
        char binding[sizeof ir->object + sizeof BINDING_SUFFIX];
        cJSON *ann, *spec;
        cJSON *o = object(items, p, RENDER_AAD_API_VERSION, "AzureIdentity", ir->object, ir->ns, &ann);
        if (!o || add_string(ann, RENDER_AAD_BEHAVIOR_ANNOTATION, "namespaced") ||
            !(spec = cJSON_AddObjectToObject(o, "spec")) ||
            !cJSON_AddNumberToObject(spec, "type", AAD_TYPE_USER_ASSIGNED) ||
            add_string(spec, "resourceID", r->resource_id) || add_string(spec, "clientID", r->client_id))
                return -ENOMEM;
        snprintf(binding, sizeof binding, "%s" BINDING_SUFFIX, ir->object);
        o = object(items, p, RENDER_AAD_API_VERSION, "AzureIdentityBinding", binding, ir->ns, &ann);
        if (!o || !(spec = cJSON_AddObjectToObject(o, "spec")) || add_string(spec, "azureIdentity", ir->object) ||
            add_string(spec, "selector", r->identity))
                return -ENOMEM;
        return 0;
}

static int service_account_object(cJSON *items, const struct policy *p, const struct identity_rule *ir)
{
        const struct rule *r = ir->rule;
        cJSON *ann;
        cJSON *o = object(items, p, "v1", "ServiceAccount", r->service_account, ir->ns, &ann);
        if (!o || add_string(ann, RENDER_WI_CLIENT_ANNOTATION, r->client_id) ||
            add_string(ann, RENDER_WI_TENANT_ANNOTATION, r->tenant_id))
                return -ENOMEM;
        return 0;
}

/* ---- federated credentials ---- */

/* `s` as one sh word: as it is when it holds only characters no shell
 * treats specially, else in single quotes (a ' inside as '\''). */
static int shell_word(struct buf *b, const char *s)
{
        bool plain = *s != '\0';
        for (const char *c = s; *c && plain; c++)
                plain = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                        strchr("-_./:@%+=,", *c);
        if (plain)
                return buf_puts(b, s);
        int r = buf_putc(b, '\'');
        for (; r == 0 && *s; s++)
                r = *s == '\'' ? buf_puts(b, "'\\''") : buf_putc(b, *s);
        return r ? r : buf_putc(b, '\'');
}

/* `s` as a Terraform (HCL) quoted string: \ and " escaped, ${ and %{ not
 * read as templates, control characters as \uNNNN. */
static int hcl_string(struct buf *b, const char *s)
{
        int r = buf_putc(b, '"');
        for (; r == 0 && *s; s++) {
                unsigned char c = (unsigned char)*s;
                if (c == '"' || c == '\\')
                        r = buf_printf(b, "\\%c", c);
                else if ((c == '$' || c == '%') && s[1] == '{')
                        r = buf_printf(b, "%c%c", c, c);
                else if (c < 0x20 || c == 0x7f)
                        r = buf_printf(b, "\\u%04x", c);
                else
                        r = buf_putc(b, (char)c);
        }
        return r ? r : buf_putc(b, '"');
}

static int shell_credential(struct buf *b, const struct identity_rule *ir, const char *issuer)
{
        const struct rule *r = ir->rule;
        const char *const args[][2] = {
                { "--name", ir->credential },
                { "--identity-name", ir->id.name },
                { "--resource-group", ir->id.resource_group },
                { "--subscription", ir->id.subscription },
                { "--issuer", issuer },
                { "--subject", NULL },
                { "--audience", POLICY_WI_AUDIENCE },
        };
        char subject[2 * WH_MAX_POLICY_STRING];
        snprintf(subject, sizeof subject, "system:serviceaccount:%s:%s", ir->ns, r->service_account);
        int rc = buf_printf(b, "\n# namespaces.%s: ServiceAccount %s\naz identity federated-credential create", ir->ns,
                            r->service_account);
        for (size_t i = 0; rc == 0 && i < sizeof args / sizeof *args; i++) {
                rc = buf_printf(b, " \\\n    %s ", args[i][0]);
                if (rc == 0)
                        rc = shell_word(b, args[i][1] ? args[i][1] : subject);
        }
        return rc ? rc : buf_putc(b, '\n');
}

static int terraform_credential(struct buf *b, const struct identity_rule *ir, const char *issuer)
{
        const struct rule *r = ir->rule;
        char label[sizeof ir->credential + 2], subject[2 * WH_MAX_POLICY_STRING];
        /* "<ns>_<sa>", '.' made '-': unique, as a namespace holds no '_' and
         * one rule names one service account; a label starts with a letter
         * or '_'. */
        snprintf(label, sizeof label, "%s%s_%s", ir->ns[0] >= '0' && ir->ns[0] <= '9' ? "_" : "", ir->ns,
                 r->service_account);
        for (char *c = label; *c; c++)
                if (*c == '.')
                        *c = '-';
        snprintf(subject, sizeof subject, "system:serviceaccount:%s:%s", ir->ns, r->service_account);
        const char *const args[][2] = {
                { "name               ", ir->credential }, { "resource_group_name", ir->id.resource_group },
                { "parent_id          ", r->resource_id }, { "issuer             ", issuer },
                { "subject            ", subject },
        };
        int rc = buf_printf(b,
                            "\n# namespaces.%s: ServiceAccount %s\n"
                            "resource \"azurerm_federated_identity_credential\" \"%s\" {\n",
                            ir->ns, r->service_account, label);
        for (size_t i = 0; rc == 0 && i < sizeof args / sizeof *args; i++) {
                rc = buf_printf(b, "  %s = ", args[i][0]);
                if (rc == 0)
                        rc = hcl_string(b, args[i][1]);
                if (rc == 0)
                        rc = buf_putc(b, '\n');
                if (rc == 0 && i == 2)
                        rc = buf_puts(b, "  audience            = [\"" POLICY_WI_AUDIENCE "\"]\n");
        }
        return rc ? rc : buf_puts(b, "}\n");
}

/* ---- the whole output ---- */

/* Whether selector rule `r` would have objects in `format`. */
static bool selector_left_out(const struct rule *r, enum render_identities_format format)
{
        return r->auth == POLICY_AUTH_WORKLOAD_IDENTITY ||
               (format != RENDER_IDENTITIES_TERRAFORM && format != RENDER_IDENTITIES_SHELL);
}

/* The comment lines in front: what this is, where it came from, and which
 * rules it leaves out. */
static int header(struct buf *b, const struct policy *p, enum render_identities_format format, const char *issuer)
{
        bool federate = format != RENDER_IDENTITIES_YAML;
        int r = buf_puts(
                b, federate
                           ? "# The federated identity credentials of the policy's workload-identity rules: one per\n"
                             "# namespace and ServiceAccount, on the managed identity of the rule's resourceId, for\n"
                             "# the cluster's OIDC issuer.\n"
                           : "# The Azure identity objects of the policy: per pod-identity rule, the aad-pod-identity\n"
                             "# AzureIdentity (namespaced) and AzureIdentityBinding in its namespace; per\n"
                             "# workload-identity rule, the ServiceAccount its Spark pods run as, annotated with the\n"
                             "# client and tenant id (the federated credentials: -o shell or -o terraform).\n");
        if (r == 0 && format == RENDER_IDENTITIES_TERRAFORM)
                r = buf_puts(b,
                             "# For the azurerm provider 3.x and 4.x (parent_id, resource_group_name; azurerm 5 calls\n"
                             "# parent_id user_assigned_identity_id and drops resource_group_name).\n");
        if (r == 0)
                r = buf_printf(b,
                               "# Generated by `" RENDER_IDENTITIES_COMMAND "%s%s%s%s`\n"
                               "# from the policy with sha256 %s.\n"
                               "# Render it again whenever the policy changes.\n",
                               format ? " -o " : "", format ? render_identities_format_name(format) : "",
                               federate ? " --oidc-issuer " : "", federate ? issuer : "", policy_sha256(p));
        for (size_t i = 0; r == 0 && i < policy_selector_count(p); i++)
                if (selector_left_out(policy_selector_at(p, i), format))
                        r = buf_printf(
                                b,
                                "# Not rendered: %s matches namespaces by their labels, which the policy does not\n"
                                "#   know; make its objects in each namespace it matches.\n",
                                policy_selector_at(p, i)->name);
        if (r == 0 && policy_reads_annotations(p))
                r = buf_puts(b, "# Not rendered: rules that namespaces' spark-identity.io/ annotations give.\n");
        return r;
}

static int write_objects(struct buf *out, const struct policy *p, enum render_identities_format format,
                         const struct identity_rule *irs, size_t n)
{
        cJSON *list = cJSON_CreateObject(), *items = NULL;
        int r = -ENOMEM;
        if (!list || !cJSON_AddStringToObject(list, "apiVersion", "v1") ||
            !cJSON_AddStringToObject(list, "kind", "List") || !(items = cJSON_AddArrayToObject(list, "items")))
                goto out;
        r = 0;
        for (size_t i = 0; r == 0 && i < n; i++)
                r = irs[i].rule->auth == POLICY_AUTH_POD_IDENTITY ? pod_identity_objects(items, p, &irs[i])
                                                                  : service_account_object(items, p, &irs[i]);
        if (r == 0 && format == RENDER_IDENTITIES_JSON)
                r = render_write_json(out, list);
        else if (r == 0)
                r = render_write_yaml(out, items);
out:
        cJSON_Delete(list);
        return r;
}

static int write_credentials(struct buf *out, enum render_identities_format format, const char *issuer,
                             const struct identity_rule *irs, size_t n)
{
        int r = 0;
        size_t written = 0;
        if (format == RENDER_IDENTITIES_SHELL)
                r = buf_puts(out, "set -eu\n");
        for (size_t i = 0; r == 0 && i < n; i++) {
                if (irs[i].rule->auth != POLICY_AUTH_WORKLOAD_IDENTITY)
                        continue;
                r = format == RENDER_IDENTITIES_SHELL ? shell_credential(out, &irs[i], issuer)
                                                      : terraform_credential(out, &irs[i], issuer);
                written++;
        }
        if (r == 0 && written == 0)
                r = buf_puts(out, "\n# The policy has no workload-identity rule by namespace: nothing to federate.\n");
        return r;
}

int render_identities(const struct policy *p, enum render_identities_format format, const char *issuer, struct buf *out,
                      struct buf *notes)
{
        bool federate = format == RENDER_IDENTITIES_TERRAFORM || format == RENDER_IDENTITIES_SHELL;
        size_t n = policy_rule_count(p);
        struct identity_rule *irs = calloc(n ? n : 1, sizeof *irs);
        int problems = 0, warnings = 0, r = 0;
        if (!irs)
                return -ENOMEM;
        if (federate && !issuer)
                note(notes, &problems, "the federated credentials need the cluster's OIDC issuer (--oidc-issuer URL)");
        else if (federate && !render_identities_issuer_valid(issuer))
                note(notes, &problems, "the OIDC issuer \"%.300s\" is not an https URL with a host", issuer);
        for (size_t i = 0; i < n; i++)
                check_rule(policy_rule_at(p, i), format, &irs[i], notes, &problems);
        if (problems) {
                r = -EINVAL;
                goto out;
        }
        for (size_t i = 0; i < policy_selector_count(p); i++)
                if (selector_left_out(policy_selector_at(p, i), format))
                        note(notes, &warnings,
                             "%s matches namespaces by their labels, which the policy does not know: its objects are "
                             "not "
                             "rendered; make them in each namespace it matches",
                             policy_selector_at(p, i)->name);
        if (format == RENDER_IDENTITIES_SHELL)
                r = buf_puts(out, "#!/bin/sh\n");
        if (r == 0 && format != RENDER_IDENTITIES_JSON)
                r = header(out, p, format, issuer);
        if (r == 0)
                r = federate ? write_credentials(out, format, issuer, irs, n) : write_objects(out, p, format, irs, n);
out:
        free(irs);
        return r;
}
