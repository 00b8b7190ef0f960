/* The changes admission makes to a pod, typed: what mutate_pod() decides,
 * what jsonpatch_changes() turns into RFC 6902 operations, and what
 * findings and `explain` describe. Every consumer switches on the kind with
 * no `default:`, so that a new kind fails to compile (-Wswitch, -Werror)
 * until each of them says what it means.
 *
 * Ownership: a change owns nothing. Its strings point into the pod (which
 * the caller of mutate_pod() owns), into the policy, or into the mutation's
 * own pool (mutate.h); they live as long as those do. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

/* The label that names a pod's Azure identity (aad-pod-identity). */
#define CHANGE_IDENTITY_LABEL "aadpodidbinding"
/* The executor's JVM flags go into numbered variables, SPARK_JAVA_OPT_<n>. */
#define CHANGE_JAVA_OPT_PREFIX "SPARK_JAVA_OPT_"

enum change_kind {
        CHANGE_SET_IDENTITY_LABEL,      /* label aadpodidbinding=value (old: the label it replaces, or NULL) */
        CHANGE_REMOVE_IDENTITY_LABEL,   /* label aadpodidbinding removed (old: its value) */
        CHANGE_SET_SERVICE_ACCOUNT,     /* spec.serviceAccountName=value (old: what it was, or NULL) */
        CHANGE_SET_DEPRECATED_SERVICE_ACCOUNT,  /* spec.serviceAccount=value, kept in step with the above */
        CHANGE_SET_ENV,                 /* env[index] of a container, named `name`, gets value (old:
                                           its value before, "" when it had none) */
        CHANGE_ADD_ENV,                 /* a new env entry name=value in a container */
        CHANGE_ADD_JAVA_OPT,            /* a new env entry SPARK_JAVA_OPT_<index>=value in a container */
        CHANGE_TOKEN_VOLUME,            /* the projected service-account token volume, its token valid
                                           expiration_s seconds */
        CHANGE_TOKEN_MOUNT,             /* the token volume's read-only mount in a container */
        CHANGE_KIND_MAX,
};

/* Where the change goes, for what the pod has there. */
enum change_place {
        CHANGE_PLACE_ADD,       /* a new member, or appended to a list the pod has */
        CHANGE_PLACE_NEW,       /* the pod lacks what holds it (labels, env, volumes, volumeMounts):
                                   added with it. The env entries of one container without env, one
                                   after the other in the list, share one operation */
        CHANGE_PLACE_REPLACE,   /* replaces what the pod has (the item at `index` of a list) */
};

/* The list a container is in. */
enum change_list {
        CHANGE_CONTAINERS,
        CHANGE_INIT_CONTAINERS,
        CHANGE_LIST_MAX,
};

struct change {
        enum change_kind kind;
        enum change_place place;
        enum change_list list;          /* env and mount changes: the container's list */
        unsigned container;             /* env and mount changes: its index in that list */
        unsigned index;                 /* SET_ENV: the entry; a REPLACE in a list: the item;
                                           ADD_JAVA_OPT: the <n> of the name */
        unsigned expiration_s;          /* TOKEN_VOLUME */
        const char *container_name;     /* env and mount changes: the container's name, or NULL */
        const char *name;               /* SET_ENV, ADD_ENV: the variable */
        const char *value;              /* what is set; NULL for a removal, the volume and the mount */
        const char *old;                /* what the pod had (see the kinds) */
};

/* Whether `c` targets a container (env and mount changes). */
static inline bool change_in_container(const struct change *c)
{
        switch (c->kind) {
        case CHANGE_SET_ENV:
        case CHANGE_ADD_ENV:
        case CHANGE_ADD_JAVA_OPT:
        case CHANGE_TOKEN_MOUNT: return true;
        case CHANGE_SET_IDENTITY_LABEL:
        case CHANGE_REMOVE_IDENTITY_LABEL:
        case CHANGE_SET_SERVICE_ACCOUNT:
        case CHANGE_SET_DEPRECATED_SERVICE_ACCOUNT:
        case CHANGE_TOKEN_VOLUME:
        case CHANGE_KIND_MAX: break;
        }
        return false;
}

/* Whether `c` adds an env entry to a container that has no env list. */
static inline bool change_in_new_env(const struct change *c)
{
        return (c->kind == CHANGE_ADD_ENV || c->kind == CHANGE_ADD_JAVA_OPT) && c->place == CHANGE_PLACE_NEW;
}

/* Whether `c` begins a patch operation of its own: false only for an env
 * entry that joins the entry before it, `prev` (NULL for the first change),
 * in the new env list of the same container. */
static inline bool change_starts_op(const struct change *prev, const struct change *c)
{
        return !(prev && change_in_new_env(prev) && change_in_new_env(c) && prev->list == c->list &&
                 prev->container == c->container);
}

/* "containers", "initContainers"; "?" out of range. */
static inline const char *change_list_name(enum change_list list)
{
        return list == CHANGE_CONTAINERS ? "containers" : list == CHANGE_INIT_CONTAINERS ? "initContainers" : "?";
}
