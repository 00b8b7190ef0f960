/* The cluster's namespaces in memory: see include/io/nscache.h.
 *
 * The watcher thread owns the mutable state: a cJSON map from namespace
 * name to {labels, annotations}. After the list and after every watch event
 * it builds an immutable table (ns_table.h: sorted entries, their strings
 * in a pool of its own) and swaps it into the snapshot; readers look names
 * up in the table they acquired. */
#include "nscache.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "kube.h"
#include "ns_table.h"
#include "pool.h"
#include "snapshot.h"
#include "webhook_limits.h"
#include "err.h"

#define PATH_NAMESPACES "/api/v1/namespaces"
#define RV_MAX 128u
/* How often a sleeping watcher looks at the stop flag. */
#define STOP_POLL_MS 100u

/* The answer to a recent fetch: the namespace as kept ({"labels", "annotations"}
 * as JSON text, malloc'd) or that it does not exist. */
struct recent {
        char name[WH_NS_NAME_MAX + 1];
        uint64_t until_ns;              /* 0: empty */
        bool exists;
        char *kept_json;
};

struct nscache {
        const struct kube *kube;
        struct snapshot *table;         /* struct ns_table * (sorted), NULL before the first list */
        pthread_t thread;
        bool started;
        atomic_bool stop;
        atomic_bool ready;
        atomic_uint restarts;
        atomic_size_t size;
        pthread_mutex_t why_lock;       /* guards `why`; taken on errors and by readyz only */
        char why[256];
        /* The watcher's own state. */
        cJSON *state;                   /* name -> {"labels": {...}, "annotations": {...}} */
        char rv[RV_MAX];
        /* Misses: namespaces not in the table, fetched on demand. Guarded by
         * miss_lock; a fetch runs without it. */
        pthread_mutex_t miss_lock;
        pthread_cond_t miss_done;       /* a fetch ended */
        struct recent recent[WH_NS_RECENT_MAX];
        unsigned recent_next;           /* the slot to reuse next */
        char inflight[WH_NS_FETCH_INFLIGHT_MAX][WH_NS_NAME_MAX + 1];
        unsigned n_inflight;
        double tokens;                  /* fetches allowed now (token bucket) */
        uint64_t tokens_at_ns;
        atomic_ulong fetches, fetch_refused;
};

/* What one thread holds between nscache_lookup() and nscache_done(). */
static _Thread_local struct {
        struct nscache *c;
        unsigned token;
        bool held;
        struct pool pool;               /* a namespace fetched on a miss */
} tl;

static uint64_t now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void table_free(void *p)
{
        struct ns_table *t = p;
        if (!t)
                return;
        ns_table_free(t);
        free(t);
}

static void set_why(struct nscache *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_why(struct nscache *c, const char *fmt, ...)
{
        va_list ap;
        pthread_mutex_lock(&c->why_lock);
        va_start(ap, fmt);
        vsnprintf(c->why, sizeof c->why, fmt, ap);
        va_end(ap);
        pthread_mutex_unlock(&c->why_lock);
}

/* ---- namespaces as JSON ---- */

/* The part of a Namespace object we keep: {"labels": {...}, "annotations":
 * {spark-identity.io/...}}. NULL when out of memory. */
static cJSON *kept_part(const cJSON *ns)
{
        const cJSON *meta = cJSON_GetObjectItemCaseSensitive(ns, "metadata");
        const cJSON *labels = cJSON_GetObjectItemCaseSensitive(meta, "labels");
        const cJSON *annotations = cJSON_GetObjectItemCaseSensitive(meta, "annotations");
        cJSON *out = cJSON_CreateObject();
        cJSON *l = cJSON_AddObjectToObject(out, "labels");
        cJSON *a = cJSON_AddObjectToObject(out, "annotations");
        const cJSON *it;
        if (!l || !a) {
                cJSON_Delete(out);
                return NULL;
        }
        cJSON_ArrayForEach(it, labels)
                if (cJSON_IsString(it) && !cJSON_AddStringToObject(l, it->string, it->valuestring))
                        goto oom;
        cJSON_ArrayForEach(it, annotations)
                if (cJSON_IsString(it) &&
                    strncmp(it->string, POLICY_ANNOTATION_PREFIX, strlen(POLICY_ANNOTATION_PREFIX)) == 0 &&
                    !cJSON_AddStringToObject(a, it->string, it->valuestring))
                        goto oom;
        return out;
oom:
        cJSON_Delete(out);
        return NULL;
}

static const char *ns_name(const cJSON *ns)
{
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ns, "metadata"), "name");
        return cJSON_IsString(v) && *v->valuestring ? v->valuestring : NULL;
}

static const char *ns_rv(const cJSON *obj)
{
        const cJSON *v =
                cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, "metadata"), "resourceVersion");
        return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Builds a table from the watcher's state and makes it current. 0, or a
 * negative errno with the reason in `err`. */
static int publish(struct nscache *c, char *err, size_t errlen)
{
        struct ns_table *t = malloc(sizeof *t);
        const cJSON *it;
        int r = 0;
        if (!t) {
                err_set(err, errlen, "out of memory");
                return -ENOMEM;
        }
        ns_table_init(t, WH_NS_TABLE_MAX);
        cJSON_ArrayForEach(it, c->state) {
                r = ns_table_add(t, it->string, cJSON_GetObjectItemCaseSensitive(it, "labels"),
                                 cJSON_GetObjectItemCaseSensitive(it, "annotations"));
                if (r < 0)
                        break;
        }
        if (r == -E2BIG)
                err_set(err, errlen, "more than %u namespaces", WH_NS_TABLE_MAX);
        else if (r < 0)
                err_set(err, errlen, "out of memory");
        if (r < 0) {
                table_free(t);
                return r;
        }
        ns_table_sort(t);
        atomic_store(&c->size, t->n);
        snapshot_swap(c->table, t);
        return 0;
}

/* ---- list and watch ---- */


/* The message of a Kubernetes Status body, for errors. */
static void status_message(const struct buf *body, long status, char *out, size_t outlen)
{
        cJSON *st = body->data ? cJSON_ParseWithLength(body->data, body->len) : NULL;
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(st, "message");
        snprintf(out, outlen, "HTTP %ld%s%s", status, cJSON_IsString(msg) ? ": " : "",
                 cJSON_IsString(msg) ? msg->valuestring : "");
        cJSON_Delete(st);
}

static int list_all(struct nscache *c, char *err, size_t errlen)
{
        cJSON *state = cJSON_CreateObject();
        struct buf path, body;
        char cont[4096] = "";
        int r = state ? 0 : -ENOMEM;
        buf_init(&path, 8192);
        buf_init(&body, WH_KUBE_MAX_RESPONSE_BYTES);
        while (r == 0) {
                long status = 0;
                buf_reset(&path);
                buf_reset(&body);
                r = buf_printf(&path, PATH_NAMESPACES "?limit=%u", WH_KUBE_LIST_PAGE);
                if (r == 0 && cont[0]) {
                        r = buf_puts(&path, "&continue=");
                        if (r == 0)
                                r = kube_put_query_value(&path, cont);
                }
                if (r == 0)
                        r = kube_get(c->kube, path.data, WH_KUBE_LIST_TIMEOUT_MS, &body, &status, err, errlen);
                if (r < 0)
                        break;
                if (status != 200) {
                        char msg[200];
                        status_message(&body, status, msg, sizeof msg);
                        err_set(err, errlen, "listing namespaces: %s", msg);
                        r = status == 410 ? -ESTALE : -EIO;
                        break;
                }
                cJSON *list = cJSON_ParseWithLength(body.data ? body.data : "", body.len);
                const cJSON *it;
                cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(list, "items")) {
                        const char *name = ns_name(it);
                        cJSON *kept = name ? kept_part(it) : NULL;
                        if (name && (!kept || !cJSON_AddItemToObject(state, name, kept))) {
                                cJSON_Delete(kept);
                                r = -ENOMEM;
                        }
                }
                const cJSON *meta = cJSON_GetObjectItemCaseSensitive(list, "metadata");
                const cJSON *next = cJSON_GetObjectItemCaseSensitive(meta, "continue");
                const cJSON *rv = cJSON_GetObjectItemCaseSensitive(meta, "resourceVersion");
                if (!list) {
                        err_set(err, errlen, "listing namespaces: the answer is not JSON");
                        r = -EIO;
                } else if (cJSON_IsString(next) && *next->valuestring) {
                        snprintf(cont, sizeof cont, "%s", next->valuestring);
                } else {
                        snprintf(c->rv, sizeof c->rv, "%s", cJSON_IsString(rv) ? rv->valuestring : "");
                        cJSON_Delete(list);
                        break;
                }
                cJSON_Delete(list);
        }
        buf_free(&path);
        buf_free(&body);
        if (r < 0) {
                cJSON_Delete(state);
                return r;
        }
        cJSON_Delete(c->state);
        c->state = state;
        return publish(c, err, errlen);
}

struct watch_ctx {
        struct nscache *c;
        char err[256];
};

/* One watch event line. Returns 0 to go on, -ESTALE to re-list, or another
 * negative errno. */
static int on_event(void *ud, const char *line, size_t len)
{
        struct watch_ctx *w = ud;
        struct nscache *c = w->c;
        cJSON *ev = cJSON_ParseWithLength(line, len);
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(ev, "type");
        const cJSON *obj = cJSON_GetObjectItemCaseSensitive(ev, "object");
        int r = 0;
        if (!cJSON_IsString(type) || !cJSON_IsObject(obj)) {
                snprintf(w->err, sizeof w->err, "a watch event is not an event");
                r = -EIO;
                goto out;
        }
        const char *t = type->valuestring;
        if (strcmp(t, "ERROR") == 0) {
                const cJSON *code = cJSON_GetObjectItemCaseSensitive(obj, "code");
                const cJSON *msg = cJSON_GetObjectItemCaseSensitive(obj, "message");
                snprintf(w->err, sizeof w->err, "watch ended: %s",
                         cJSON_IsString(msg) ? msg->valuestring : "error event");
                r = cJSON_IsNumber(code) && code->valueint == 410 ? -ESTALE : -EIO;
                goto out;
        }
        const char *rv = ns_rv(obj);
        if (rv && *rv)
                snprintf(c->rv, sizeof c->rv, "%s", rv);
        if (strcmp(t, "BOOKMARK") == 0)
                goto out;
        const char *name = ns_name(obj);
        if (!name)
                goto out;
        if (strcmp(t, "DELETED") == 0) {
                cJSON_DeleteItemFromObjectCaseSensitive(c->state, name);
        } else {
                cJSON *kept = kept_part(obj);
                if (!kept) {
                        r = -ENOMEM;
                        goto out;
                }
                if (cJSON_GetObjectItemCaseSensitive(c->state, name))
                        cJSON_ReplaceItemInObjectCaseSensitive(c->state, name, kept);
                else
                        cJSON_AddItemToObject(c->state, name, kept);
        }
        r = publish(c, w->err, sizeof w->err);
out:
        cJSON_Delete(ev);
        return r;
}

static int watch_once(struct nscache *c, char *err, size_t errlen)
{
        char path[512];
        struct watch_ctx w = { .c = c };
        long status = 0;
        snprintf(path, sizeof path,
                 PATH_NAMESPACES "?watch=1&allowWatchBookmarks=true&timeoutSeconds=%u"
                                 "&resourceVersion=%s",
                 WH_KUBE_WATCH_SECONDS, c->rv);
        int r = kube_stream(c->kube, path, on_event, &w, &c->stop, &status, err, errlen);
        if (r == -ESTALE || r == -EIO || r == -ENOMEM || r == -E2BIG) {
                if (w.err[0])
                        err_set(err, errlen, "%s", w.err);
                return r;
        }
        if (r < 0)
                return r;
        if (status == 410)
                return -ESTALE;
        if (status != 200) {
                err_set(err, errlen, "watching namespaces: HTTP %ld", status);
                return -EIO;
        }
        return 0;
}

static void pause_ms(struct nscache *c, unsigned ms)
{
        for (unsigned slept = 0; slept < ms && !atomic_load(&c->stop); slept += STOP_POLL_MS)
                nanosleep(&(struct timespec){ .tv_nsec = STOP_POLL_MS * 1000000L }, NULL);
}

static void *watcher(void *arg)
{
        struct nscache *c = arg;
        unsigned backoff = WH_KUBE_BACKOFF_MIN_MS;
        char err[256];
        bool listed = false;
        unsigned seed = (unsigned)time(NULL);

        while (!atomic_load(&c->stop)) {
                int r;
                if (!listed) {
                        r = list_all(c, err, sizeof err);
                        if (r == 0) {
                                listed = true;
                                atomic_store(&c->ready, true);
                                backoff = WH_KUBE_BACKOFF_MIN_MS;
                                continue;
                        }
                } else {
                        r = watch_once(c, err, sizeof err);
                        if (r == 0)
                                continue;   /* the server ended the watch: watch again from c->rv */
                        if (r == -ESTALE) {
                                listed = false;   /* 410 Gone: the version is too old, list again */
                                atomic_fetch_add(&c->restarts, 1);
                                continue;
                        }
                }
                if (atomic_load(&c->stop))
                        break;
                atomic_fetch_add(&c->restarts, 1);
                set_why(c, "%s", err);
                pause_ms(c, backoff + (unsigned)rand_r(&seed) % (backoff / 2 + 1));
                backoff = backoff * 2 > WH_KUBE_BACKOFF_MAX_MS ? WH_KUBE_BACKOFF_MAX_MS : backoff * 2;
        }
        return NULL;
}

int nscache_start(const struct kube *k, struct nscache **ret_cache)
{
        struct nscache *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->kube = k;
        pthread_mutex_init(&c->why_lock, NULL);
        pthread_mutex_init(&c->miss_lock, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&c->miss_done, &ca);
        pthread_condattr_destroy(&ca);
        c->tokens = WH_NS_FETCH_PER_SECOND;
        c->tokens_at_ns = now_ns();
        snprintf(c->why, sizeof c->why, "the first list of namespaces has not completed");
        c->table = snapshot_new(NULL, table_free);
        c->state = cJSON_CreateObject();
        if (!c->table || !c->state || pthread_create(&c->thread, NULL, watcher, c) != 0) {
                nscache_stop(c);
                return -ENOMEM;
        }
        c->started = true;
        *ret_cache = c;
        return 0;
}

void nscache_stop(struct nscache *c)
{
        if (!c)
                return;
        atomic_store(&c->stop, true);
        if (c->started)
                pthread_join(c->thread, NULL);
        snapshot_free(c->table);
        cJSON_Delete(c->state);
        pthread_mutex_destroy(&c->why_lock);
        pthread_mutex_destroy(&c->miss_lock);
        pthread_cond_destroy(&c->miss_done);
        for (unsigned i = 0; i < WH_NS_RECENT_MAX; i++)
                free(c->recent[i].kept_json);
        free(c);
}

bool nscache_ready(struct nscache *c, char *why, size_t whylen)
{
        if (atomic_load(&c->ready))
                return true;
        pthread_mutex_lock(&c->why_lock);
        snprintf(why, whylen, "%s", c->why);
        pthread_mutex_unlock(&c->why_lock);
        return false;
}

/* A namespace name: an RFC 1123 label. Anything else cannot exist, so it
 * is never asked for. */
/* One GET of a namespace not in the table, bounded by `timeout_ms`. 0 and
 * its kept part as JSON text in *ret_json (malloc'd); -ENOENT; another
 * negative errno with the reason. */
static int fetch(struct nscache *c, const char *name, unsigned timeout_ms, char **ret_json, char *err, size_t errlen)
{
        struct buf path, body;
        long status = 0;
        int r;
        buf_init(&path, 512);
        buf_init(&body, WH_KUBE_MAX_RESPONSE_BYTES);
        r = buf_puts(&path, PATH_NAMESPACES "/");
        if (r == 0)
                r = kube_put_query_value(&path, name);
        atomic_fetch_add(&c->fetches, 1);
        if (r == 0)
                r = kube_get(c->kube, path.data, timeout_ms, &body, &status, err, errlen);
        if (r == 0 && status == 404) {
                r = -ENOENT;
        } else if (r == 0 && status != 200) {
                char msg[200];
                status_message(&body, status, msg, sizeof msg);
                err_set(err, errlen, "reading namespace %s: %s", name, msg);
                r = -EIO;
        } else if (r == 0) {
                cJSON *ns = cJSON_ParseWithLength(body.data ? body.data : "", body.len);
                cJSON *kept = ns ? kept_part(ns) : NULL;
                char *text = kept ? cJSON_PrintUnformatted(kept) : NULL;
                /* Out of the request's arena: it outlives the request. */
                *ret_json = text ? strdup(text) : NULL;
                r = *ret_json ? 0 : -ENOMEM;
                if (!ns)
                        err_set(err, errlen, "reading namespace %s: the answer is not JSON", name);
                if (text)
                        cJSON_free(text);
                cJSON_Delete(kept);
                cJSON_Delete(ns);
        }
        buf_free(&path);
        buf_free(&body);
        return r;
}

/* The recent answer for `name`, if still fresh. Under miss_lock. */
static struct recent *recent_find(struct nscache *c, const char *name, uint64_t now)
{
        for (unsigned i = 0; i < WH_NS_RECENT_MAX; i++) {
                struct recent *e = &c->recent[i];
                if (e->until_ns > now && strcmp(e->name, name) == 0)
                        return e;
        }
        return NULL;
}

/* Remembers an answer for a few seconds (the watch keeps the table true
 * meanwhile). Under miss_lock; takes `json`. */
static void recent_put(struct nscache *c, const char *name, bool exists, char *json, uint64_t now)
{
        struct recent *e = recent_find(c, name, now);
        if (!e) {
                e = &c->recent[c->recent_next];
                c->recent_next = (c->recent_next + 1) % WH_NS_RECENT_MAX;
        }
        free(e->kept_json);
        snprintf(e->name, sizeof e->name, "%s", name);
        e->exists = exists;
        e->kept_json = json;
        e->until_ns = now + (uint64_t)WH_NS_RECENT_TTL_MS * 1000000ull;
}

static bool inflight_has(const struct nscache *c, const char *name)
{
        for (unsigned i = 0; i < c->n_inflight; i++)
                if (strcmp(c->inflight[i], name) == 0)
                        return true;
        return false;
}

static void inflight_remove(struct nscache *c, const char *name)
{
        for (unsigned i = 0; i < c->n_inflight; i++)
                if (strcmp(c->inflight[i], name) == 0) {
                        memmove(c->inflight[i], c->inflight[c->n_inflight - 1], sizeof c->inflight[i]);
                        c->n_inflight--;
                        return;
                }
}

/* A token of the fetch budget (WH_NS_FETCH_PER_SECOND, refilled over time). Under miss_lock. */
static bool take_token(struct nscache *c, uint64_t now)
{
        double per_ns = (double)WH_NS_FETCH_PER_SECOND / 1e9;
        c->tokens += (double)(now - c->tokens_at_ns) * per_ns;
        if (c->tokens > (double)WH_NS_FETCH_PER_SECOND)
                c->tokens = (double)WH_NS_FETCH_PER_SECOND;
        c->tokens_at_ns = now;
        if (c->tokens < 1.0)
                return false;
        c->tokens -= 1.0;
        return true;
}

/* A recent answer as what the caller reads: parsed into the thread's pool. */
static int from_recent(const struct recent *e, const char *name, struct ns_info *ret)
{
        if (!e->exists)
                return -ENOENT;
        cJSON *kept = cJSON_Parse(e->kept_json);
        struct ns_entry *ne = pool_alloc(&tl.pool, sizeof *ne);
        int r = kept && ne ? ns_table_entry_fill(&tl.pool, name, cJSON_GetObjectItemCaseSensitive(kept, "labels"),
                                                 cJSON_GetObjectItemCaseSensitive(kept, "annotations"), ne)
                           : -ENOMEM;
        if (r == 0)
                *ret = ne->info;
        cJSON_Delete(kept);
        return r;
}

static void timed_wait(pthread_cond_t *cond, pthread_mutex_t *lock, uint64_t until_ns)
{
        struct timespec ts = { .tv_sec = (time_t)(until_ns / 1000000000ull),
                               .tv_nsec = (long)(until_ns % 1000000000ull) };
        pthread_cond_timedwait(cond, lock, &ts);
}

/* A namespace not in the table: a recent answer, or the answer of a fetch
 * already running for it, or one fetch of our own within the caps. */
static int miss(struct nscache *c, const char *name, uint64_t deadline_ns, struct ns_info *ret, char *err,
                size_t errlen)
{
        pthread_mutex_lock(&c->miss_lock);
        for (;;) {
                uint64_t now = now_ns();
                const struct recent *e = recent_find(c, name, now);
                if (e) {
                        int r = from_recent(e, name, ret);
                        pthread_mutex_unlock(&c->miss_lock);
                        return r;
                }
                if (!inflight_has(c, name))
                        break;
                if (now >= deadline_ns) {
                        pthread_mutex_unlock(&c->miss_lock);
                        err_set(err, errlen, "namespace %s is being read; the request's time ran out", name);
                        return -ETIMEDOUT;
                }
                timed_wait(&c->miss_done, &c->miss_lock, deadline_ns);
        }
        uint64_t now = now_ns();
        if (c->n_inflight >= WH_NS_FETCH_INFLIGHT_MAX || !take_token(c, now)) {
                pthread_mutex_unlock(&c->miss_lock);
                atomic_fetch_add(&c->fetch_refused, 1);
                err_set(err, errlen,
                        "namespace %s is not in the cache, and reads of the API are capped "
                        "(%u at once, %u a second)",
                        name, WH_NS_FETCH_INFLIGHT_MAX, WH_NS_FETCH_PER_SECOND);
                return -EAGAIN;
        }
        snprintf(c->inflight[c->n_inflight++], sizeof c->inflight[0], "%s", name);
        pthread_mutex_unlock(&c->miss_lock);

        uint64_t left_ms = deadline_ns > now ? (deadline_ns - now) / 1000000ull : 0;
        unsigned timeout_ms = left_ms < WH_KUBE_LOOKUP_TIMEOUT_MS ? (unsigned)left_ms : WH_KUBE_LOOKUP_TIMEOUT_MS;
        char *json = NULL;
        int r = timeout_ms ? fetch(c, name, timeout_ms, &json, err, errlen) : -ETIMEDOUT;
        if (r == -ETIMEDOUT && !timeout_ms)
                err_set(err, errlen, "namespace %s: the request's time ran out before it could be read", name);

        pthread_mutex_lock(&c->miss_lock);
        inflight_remove(c, name);
        if (r == 0 || r == -ENOENT)
                recent_put(c, name, r == 0, json, now_ns());
        else
                free(json);
        const struct recent *e = r == 0 ? recent_find(c, name, now_ns()) : NULL;
        if (e)
                r = from_recent(e, name, ret);
        pthread_cond_broadcast(&c->miss_done);
        pthread_mutex_unlock(&c->miss_lock);
        return r;
}

int nscache_lookup(struct nscache *c, const char *name, uint64_t deadline_ns, struct ns_info *ret_info, char *err,
                   size_t errlen)
{
        tl.c = c;
        if (!ns_table_name_valid(name))
                return -ENOENT;   /* no namespace can have it: nothing to ask */
        const struct ns_table *t = snapshot_acquire(c->table, &tl.token);
        tl.held = true;
        const struct ns_entry *e = t ? ns_table_find(t, name) : NULL;
        if (e) {
                *ret_info = e->info;
                return 0;
        }
        /* Not known yet (just created, or before the first list): ask the
         * API, without holding the table while the call runs. */
        snapshot_release(c->table, tl.token);
        tl.held = false;
        return miss(c, name, deadline_ns, ret_info, err, errlen);
}

void nscache_fetch_stats(const struct nscache *c, unsigned long *ret_fetches, unsigned long *ret_refused)
{
        *ret_fetches = atomic_load(&((struct nscache *)c)->fetches);
        *ret_refused = atomic_load(&((struct nscache *)c)->fetch_refused);
}

void nscache_done(struct nscache *c)
{
        if (tl.held && tl.c == c)
                snapshot_release(c->table, tl.token);
        tl.held = false;
        pool_free(&tl.pool);
}

size_t nscache_size(struct nscache *c)
{
        return atomic_load(&c->size);
}

unsigned nscache_restarts(const struct nscache *c)
{
        return atomic_load(&c->restarts);
}
