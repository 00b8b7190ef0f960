/* Helpers shared by the fuzz targets: failing loudly, reading fixtures, a
 * strict RFC 8259 checker (cJSON accepts raw control characters inside
 * strings; the API server's decoder does not), strict base64, an RFC 6902
 * applier for the operations we emit, plain sockets, and one connection's
 * exchange with the server under test over a target's transport.
 *
 * Test code: every function is static, and a target uses the ones it needs. */
#pragma once
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cjson/cJSON.h>

#define FUZZ_UNUSED __attribute__((unused))

#ifndef FUZZ_SOURCE_ROOT
#error "build with -DFUZZ_SOURCE_ROOT=\"/path/to/the/repository\" (tests/fuzz/run.sh does)"
#endif

/* A broken invariant: say which, and abort so that libFuzzer keeps the input. */
FUZZ_UNUSED __attribute__((noreturn, format(printf, 1, 2))) static void fuzz_fail(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        fputs("\n==FUZZ INVARIANT== ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
        abort();
}

/* The whole file under the repository, NUL-terminated; exits when missing:
 * a target without its fixture is a broken build, not an input to keep. */
FUZZ_UNUSED static char *fuzz_read_source_file(const char *rel, size_t *ret_len)
{
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", FUZZ_SOURCE_ROOT, rel);
        FILE *f = fopen(path, "rb");
        if (!f) {
                fprintf(stderr, "fuzz: cannot open %s: %s\n", path, strerror(errno));
                exit(2);
        }
        size_t cap = 1 << 16, len = 0;
        char *s = malloc(cap);
        size_t n;
        while (s && (n = fread(s + len, 1, cap - len - 1, f)) > 0) {
                len += n;
                if (cap - len - 1 == 0) {
                        char *t = realloc(s, cap *= 2);
                        if (!t)
                                free(s);
                        s = t;
                }
        }
        fclose(f);
        if (!s) {
                fprintf(stderr, "fuzz: out of memory reading %s\n", path);
                exit(2);
        }
        s[len] = '\0';
        if (ret_len)
                *ret_len = len;
        return s;
}

/* ---- strict JSON (RFC 8259) ---- */

struct json_check {
        const unsigned char *p, *end;
        unsigned depth;
        const char *why;
        size_t at;
};

static bool jc_fail(struct json_check *c, const char *why, const unsigned char *start)
{
        if (!c->why) {
                c->why = why;
                c->at = (size_t)(c->p - start);
        }
        return false;
}

static void jc_ws(struct json_check *c)
{
        while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
                c->p++;
}

static bool jc_value(struct json_check *c, const unsigned char *start);

static bool jc_string(struct json_check *c, const unsigned char *start)
{
        if (c->p >= c->end || *c->p != '"')
                return jc_fail(c, "a string was expected", start);
        c->p++;
        while (c->p < c->end) {
                unsigned char ch = *c->p++;
                if (ch == '"')
                        return true;
                if (ch < 0x20)
                        return jc_fail(c, "a raw control character inside a string", start);
                if (ch != '\\')
                        continue;
                if (c->p >= c->end)
                        break;
                ch = *c->p++;
                if (ch == 'u') {
                        for (int i = 0; i < 4; i++, c->p++)
                                if (c->p >= c->end ||
                                    !((*c->p >= '0' && *c->p <= '9') || (*c->p >= 'a' && *c->p <= 'f') ||
                                      (*c->p >= 'A' && *c->p <= 'F')))
                                        return jc_fail(c, "a bad \\u escape", start);
                } else if (!strchr("\"\\/bfnrt", ch) || ch == '\0') {
                        return jc_fail(c, "a bad escape", start);
                }
        }
        return jc_fail(c, "an unterminated string", start);
}

static bool jc_digits(struct json_check *c)
{
        const unsigned char *s = c->p;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
                c->p++;
        return c->p > s;
}

static bool jc_number(struct json_check *c, const unsigned char *start)
{
        if (c->p < c->end && *c->p == '-')
                c->p++;
        if (c->p < c->end && *c->p == '0')
                c->p++;
        else if (!jc_digits(c))
                return jc_fail(c, "a bad number", start);
        if (c->p < c->end && *c->p == '.') {
                c->p++;
                if (!jc_digits(c))
                        return jc_fail(c, "a bad fraction", start);
        }
        if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
                c->p++;
                if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
                        c->p++;
                if (!jc_digits(c))
                        return jc_fail(c, "a bad exponent", start);
        }
        return true;
}

static bool jc_literal(struct json_check *c, const char *lit, const unsigned char *start)
{
        size_t n = strlen(lit);
        if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0)
                return jc_fail(c, "an unexpected character", start);
        c->p += n;
        return true;
}

static bool jc_value(struct json_check *c, const unsigned char *start)
{
        jc_ws(c);
        if (c->p >= c->end)
                return jc_fail(c, "a value was expected", start);
        if (++c->depth > 512)
                return jc_fail(c, "nested too deep", start);
        bool ok = true;
        unsigned char ch = *c->p;
        if (ch == '{' || ch == '[') {
                unsigned char close = ch == '{' ? '}' : ']';
                c->p++;
                jc_ws(c);
                if (c->p < c->end && *c->p == close) {
                        c->p++;
                } else {
                        for (;;) {
                                if (ch == '{') {
                                        jc_ws(c);
                                        if (!jc_string(c, start))
                                                return false;
                                        jc_ws(c);
                                        if (c->p >= c->end || *c->p != ':')
                                                return jc_fail(c, "':' was expected", start);
                                        c->p++;
                                }
                                if (!jc_value(c, start))
                                        return false;
                                jc_ws(c);
                                if (c->p < c->end && *c->p == ',') {
                                        c->p++;
                                        continue;
                                }
                                if (c->p < c->end && *c->p == close) {
                                        c->p++;
                                        break;
                                }
                                return jc_fail(c, "',' or a closing bracket was expected", start);
                        }
                }
        } else if (ch == '"') {
                ok = jc_string(c, start);
        } else if (ch == '-' || (ch >= '0' && ch <= '9')) {
                ok = jc_number(c, start);
        } else if (ch == 't') {
                ok = jc_literal(c, "true", start);
        } else if (ch == 'f') {
                ok = jc_literal(c, "false", start);
        } else {
                ok = jc_literal(c, "null", start);
        }
        c->depth--;
        return ok;
}

/* Whether `len` bytes are exactly one JSON text (white space around it
 * allowed). On failure *ret_why says what and *ret_at where. */
FUZZ_UNUSED static bool json_strict(const char *text, size_t len, const char **ret_why, size_t *ret_at)
{
        const unsigned char *start = (const unsigned char *)text;
        struct json_check c = { .p = start, .end = start + len };
        bool ok = jc_value(&c, start);
        if (ok) {
                jc_ws(&c);
                if (c.p != c.end)
                        ok = jc_fail(&c, "data after the JSON text", start);
        }
        if (!ok) {
                *ret_why = c.why ? c.why : "?";
                *ret_at = c.at;
        }
        return ok;
}

/* Whether the bytes are well-formed UTF-8 (no overlongs, no surrogates). */
FUZZ_UNUSED static bool utf8_valid(const char *s, size_t n)
{
        const unsigned char *p = (const unsigned char *)s, *end = p + n;
        while (p < end) {
                unsigned char c = *p++;
                if (c < 0x80)
                        continue;
                int more;
                uint32_t cp;
                if (c >= 0xc2 && c <= 0xdf) {
                        more = 1;
                        cp = c & 0x1f;
                } else if (c >= 0xe0 && c <= 0xef) {
                        more = 2;
                        cp = c & 0x0f;
                } else if (c >= 0xf0 && c <= 0xf4) {
                        more = 3;
                        cp = c & 0x07;
                } else {
                        return false;
                }
                if (end - p < more)
                        return false;
                for (int i = 0; i < more; i++) {
                        if ((p[i] & 0xc0) != 0x80)
                                return false;
                        cp = cp << 6 | (p[i] & 0x3f);
                }
                p += more;
                if ((more == 2 && cp < 0x800) || (more == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
                    (cp >= 0xd800 && cp <= 0xdfff))
                        return false;
        }
        return true;
}

/* ---- base64, strict: padded, standard alphabet ---- */

/* Decodes into a new NUL-terminated buffer; NULL when `s` is not base64. */
FUZZ_UNUSED static char *b64_decode_strict(const char *s, size_t n, size_t *ret_len)
{
        if (n % 4)
                return NULL;
        char *out = malloc(n / 4 * 3 + 1);
        if (!out)
                return NULL;
        size_t o = 0;
        for (size_t i = 0; i < n; i += 4) {
                uint32_t v = 0;
                int pad = 0;
                for (int k = 0; k < 4; k++) {
                        char c = s[i + k];
                        int d;
                        if (c >= 'A' && c <= 'Z')
                                d = c - 'A';
                        else if (c >= 'a' && c <= 'z')
                                d = c - 'a' + 26;
                        else if (c >= '0' && c <= '9')
                                d = c - '0' + 52;
                        else if (c == '+')
                                d = 62;
                        else if (c == '/')
                                d = 63;
                        else if (c == '=' && i + 4 == n && k >= 2 && (k == 3 || s[i + 3] == '='))
                                d = 0, pad++;
                        else
                                goto bad;
                        if (pad && c != '=')
                                goto bad;
                        v = v << 6 | (uint32_t)d;
                }
                out[o++] = (char)(v >> 16);
                if (pad < 2)
                        out[o++] = (char)(v >> 8);
                if (pad < 1)
                        out[o++] = (char)v;
        }
        out[o] = '\0';
        *ret_len = o;
        return out;
bad:
        free(out);
        return NULL;
}

/* ---- JSON Pointer (RFC 6901) and the JSON Patch operations we emit ---- */

/* Splits a pointer into unescaped tokens, each malloc'd. -1 when the pointer
 * is not "" or "/..." or has a '~' not followed by 0 or 1. */
FUZZ_UNUSED static int pointer_split(const char *ptr, char ***ret_tokens, size_t *ret_n)
{
        size_t n = 0, cap = 8;
        char **t = malloc(cap * sizeof *t);
        if (!t)
                return -1;
        if (*ptr && *ptr != '/')
                goto bad;
        while (*ptr == '/') {
                const char *s = ++ptr;
                size_t len = strcspn(s, "/");
                char *tok = malloc(len + 1), *o = tok;
                if (!tok)
                        goto bad;
                for (size_t i = 0; i < len; i++) {
                        if (s[i] != '~') {
                                *o++ = s[i];
                                continue;
                        }
                        if (i + 1 < len && s[i + 1] == '0')
                                *o++ = '~';
                        else if (i + 1 < len && s[i + 1] == '1')
                                *o++ = '/';
                        else {
                                free(tok);
                                goto bad;
                        }
                        i++;
                }
                *o = '\0';
                if (n == cap) {
                        char **nt = realloc(t, (cap *= 2) * sizeof *t);
                        if (!nt) {
                                free(tok);
                                goto bad;
                        }
                        t = nt;
                }
                t[n++] = tok;
                ptr = s + len;
        }
        *ret_tokens = t;
        *ret_n = n;
        return 0;
bad:
        for (size_t i = 0; i < n; i++)
                free(t[i]);
        free(t);
        return -1;
}

FUZZ_UNUSED static void pointer_tokens_free(char **t, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(t[i]);
        free(t);
}

/* An array index token: "0" or digits without a leading zero. */
static bool array_index(const char *tok, int size, bool allow_end, int *ret)
{
        if (allow_end && strcmp(tok, "-") == 0) {
                *ret = size;
                return true;
        }
        if (!*tok || (tok[0] == '0' && tok[1]) || strlen(tok) > 9)
                return false;
        for (const char *s = tok; *s; s++)
                if (*s < '0' || *s > '9')
                        return false;
        int i = atoi(tok);
        if (i > size || (!allow_end && i == size))
                return false;
        *ret = i;
        return true;
}

/* Applies one add, replace or remove to `doc` in place, RFC 6902 rules.
 * false with the reason in `why` when the operation does not apply. */
static bool patch_apply_op(cJSON *doc, const char *op, const char *path, const cJSON *value, char *why, size_t whylen)
{
        char **tok = NULL;
        size_t n = 0;
        bool ok = false;
        if (pointer_split(path, &tok, &n) < 0) {
                snprintf(why, whylen, "%s: not a JSON pointer", path);
                return false;
        }
        if (n == 0) {
                snprintf(why, whylen, "an operation on the whole document");
                goto out;
        }
        cJSON *parent = doc;
        for (size_t i = 0; i + 1 < n; i++) {
                cJSON *next = NULL;
                int idx;
                if (cJSON_IsObject(parent))
                        next = cJSON_GetObjectItemCaseSensitive(parent, tok[i]);
                else if (cJSON_IsArray(parent) && array_index(tok[i], cJSON_GetArraySize(parent), false, &idx))
                        next = cJSON_GetArrayItem(parent, idx);
                if (!next) {
                        snprintf(why, whylen, "%s: token %zu (%.40s) does not exist", path, i, tok[i]);
                        goto out;
                }
                parent = next;
        }
        const char *last = tok[n - 1];
        bool add = strcmp(op, "add") == 0, replace = strcmp(op, "replace") == 0, remove = strcmp(op, "remove") == 0;
        if (!add && !replace && !remove) {
                snprintf(why, whylen, "op %.20s is not one we emit", op);
                goto out;
        }
        if ((add || replace) && !value) {
                snprintf(why, whylen, "%s %s without a value", op, path);
                goto out;
        }
        if (cJSON_IsObject(parent)) {
                bool exists = cJSON_GetObjectItemCaseSensitive(parent, last) != NULL;
                if ((replace || remove) && !exists) {
                        snprintf(why, whylen, "%s %s: no such member", op, path);
                        goto out;
                }
                if (remove) {
                        cJSON_DeleteItemFromObjectCaseSensitive(parent, last);
                } else {
                        cJSON *v = cJSON_Duplicate(value, true);
                        if (!v)
                                fuzz_fail("out of memory applying a patch");
                        if (exists)
                                cJSON_ReplaceItemInObjectCaseSensitive(parent, last, v);
                        else
                                cJSON_AddItemToObject(parent, last, v);
                }
        } else if (cJSON_IsArray(parent)) {
                int size = cJSON_GetArraySize(parent), idx;
                if (!array_index(last, size, add, &idx)) {
                        snprintf(why, whylen, "%s %s: not an index of an array of %d", op, path, size);
                        goto out;
                }
                if (remove) {
                        cJSON_DeleteItemFromArray(parent, idx);
                } else {
                        cJSON *v = cJSON_Duplicate(value, true);
                        if (!v)
                                fuzz_fail("out of memory applying a patch");
                        if (replace)
                                cJSON_ReplaceItemInArray(parent, idx, v);
                        else if (idx == size)
                                cJSON_AddItemToArray(parent, v);
                        else
                                cJSON_InsertItemInArray(parent, idx, v);
                }
        } else {
                snprintf(why, whylen, "%s %s: the parent is neither object nor array", op, path);
                goto out;
        }
        ok = true;
out:
        pointer_tokens_free(tok, n);
        return ok;
}

/* Applies a parsed patch (an array of operations) to `doc` in place. */
FUZZ_UNUSED static bool patch_apply(cJSON *doc, const cJSON *patch, char *why, size_t whylen)
{
        const cJSON *o;
        int i = 0;
        cJSON_ArrayForEach(o, patch) {
                const cJSON *op = cJSON_GetObjectItemCaseSensitive(o, "op");
                const cJSON *path = cJSON_GetObjectItemCaseSensitive(o, "path");
                if (!cJSON_IsString(op) || !cJSON_IsString(path)) {
                        snprintf(why, whylen, "operation %d has no op or path", i);
                        return false;
                }
                if (!patch_apply_op(doc, op->valuestring, path->valuestring,
                                    cJSON_GetObjectItemCaseSensitive(o, "value"), why, whylen))
                        return false;
                i++;
        }
        return true;
}

/* Whether some object in the tree has two members with the same name. */
FUZZ_UNUSED static bool json_has_duplicate_keys(const cJSON *v)
{
        for (const cJSON *a = v ? v->child : NULL; a; a = a->next) {
                if (cJSON_IsObject(v))
                        for (const cJSON *b = a->next; b; b = b->next)
                                if (a->string && b->string && strcmp(a->string, b->string) == 0)
                                        return true;
                if (json_has_duplicate_keys(a))
                        return true;
        }
        return false;
}

/* ---- HTTP over plain sockets ---- */

/* Content-Length as the seeds write it: a request head that contains
 * "Content-Length: *" gets the real length of what follows "\r\n\r\n", so
 * that a mutated body still arrives whole. Returns a new buffer (free()). */
FUZZ_UNUSED static unsigned char *http_fix_length(const uint8_t *data, size_t size, size_t *ret_size)
{
        static const char marker[] = "Content-Length: *";
        const uint8_t *head_end = memmem(data, size, "\r\n\r\n", 4);
        const uint8_t *m = head_end ? memmem(data, (size_t)(head_end - data), marker, sizeof marker - 1) : NULL;
        unsigned char *out = malloc(size + 24);
        if (!out)
                fuzz_fail("out of memory");
        if (!m) {
                memcpy(out, data, size);
                *ret_size = size;
                return out;
        }
        size_t body = size - (size_t)(head_end + 4 - data);
        size_t pre = (size_t)(m - data) + sizeof marker - 2;   /* up to "Content-Length: " */
        int n = snprintf((char *)out + pre, 24, "%zu", body);
        memcpy(out, data, pre);
        memmove(out + pre + (size_t)n, data + pre + 1, size - pre - 1);
        *ret_size = size - 1 + (size_t)n;
        return out;
}

/* Sent after every input on the same connection: a last request that asks
 * the server to close. libmicrohttpd (epoll, edge-triggered) does not notice
 * a client's half-close that arrives with a request it then answers with
 * keep-alive: it waits for the idle timeout. After this request it closes
 * at once, unless the input left it inside a body that swallows it, or in
 * a state where it waits for more (then the harness gives up after a short
 * silence and resets the connection). */
FUZZ_UNUSED static const char http_last_request[] = "GET /healthz HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n";

FUZZ_UNUSED static int tcp_connect(unsigned port)
{
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                fuzz_fail("socket: %s", strerror(errno));
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
                return fd;
        int err = errno;
        if (err == EINTR) {
                /* libFuzzer's SIGALRM: the connection goes on without us */
                struct pollfd pfd = { .fd = fd, .events = POLLOUT };
                socklen_t len = sizeof err;
                int r;
                do
                        r = poll(&pfd, 1, 10000);
                while (r < 0 && errno == EINTR);
                if (r == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0)
                        return fd;
                if (r == 0)
                        err = ETIMEDOUT;
        }
        fuzz_fail("the server on port %u refuses connections: %s", port, strerror(err));
}

static long long fuzz_now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Sends what the peer takes; stops quietly when it closes. */
FUZZ_UNUSED static void tcp_send_all(int fd, const void *p, size_t n)
{
        const char *s = p;
        while (n) {
                ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        return;   /* the server refused and closed: fine */
                s += w;
                n -= (size_t)w;
        }
}

/* Waits at most `timeout_ms` for bytes: how many were read (at most `cap`),
 * 0 when the peer closed (or reset after a refusal), -EINTR to be asked
 * again, -ETIMEDOUT when nothing came. */
FUZZ_UNUSED static ssize_t tcp_recv_some(int fd, char *buf, size_t cap, int timeout_ms)
{
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int r = poll(&pfd, 1, timeout_ms);
        if (r < 0 && errno == EINTR)
                return -EINTR;
        if (r == 0)
                return -ETIMEDOUT;
        ssize_t n = recv(fd, buf, cap, 0);
        if (n < 0 && errno == EINTR)
                return -EINTR;
        return n < 0 ? 0 : n;
}

/* Closes with a reset, so that the server drops the connection at once
 * instead of keeping it until its idle timeout. */
FUZZ_UNUSED static void tcp_abort(int fd)
{
        struct linger lg = { .l_onoff = 1, .l_linger = 0 };
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(fd);
}

/* The status code of an HTTP/1.x response that starts `s`, or -1. */
FUZZ_UNUSED static int http_status(const char *s, size_t n)
{
        if (n < 12 || (memcmp(s, "HTTP/1.1 ", 9) != 0 && memcmp(s, "HTTP/1.0 ", 9) != 0))
                return -1;
        int code = 0;
        for (int i = 9; i < 12; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -1;
                code = code * 10 + (s[i] - '0');
        }
        return code;
}

/* ---- one connection's exchange with the server under test ---- */

#define FUZZ_ANSWER_TIMEOUT_MS 2000   /* the server keeps sending: give up */
#define FUZZ_SILENCE_MS 250           /* the server waits for more: give up */
#define FUZZ_HEALTH_TIMEOUT_MS 10000

/* How a target talks to its server: plain TCP (fuzz_http) or TLS
 * (fuzz_https). */
struct fuzz_transport {
        /* A new connection; the target fails loudly when it cannot make one. */
        void *(*open)(void);
        /* Sends what the peer takes; stops quietly when it closed. */
        void (*send_all)(void *conn, const void *p, size_t n);
        /* Ends our side (a half-close, or close_notify). */
        void (*shut_write)(void *conn);
        /* As tcp_recv_some(). */
        ssize_t (*recv_some)(void *conn, char *buf, size_t cap, int timeout_ms);
        /* Ends the connection: closed when the peer closed, else reset. */
        void (*close)(void *conn, bool peer_closed);
};

/* On a new connection: sends `req` (then http_last_request when `last`),
 * ends our side, and reads the answer until the server closes, keeping the
 * first cap - 1 bytes in `out`, NUL-terminated. False when it has not closed
 * after `timeout_ms`, or stays silent for `silence_ms`: then the connection
 * is reset. */
FUZZ_UNUSED static bool fuzz_exchange(const struct fuzz_transport *t, const void *req, size_t n, bool last, char *out,
                                      size_t cap, size_t *ret_len, int silence_ms, int timeout_ms)
{
        void *conn = t->open();
        t->send_all(conn, req, n);
        if (last)
                t->send_all(conn, http_last_request, sizeof http_last_request - 1);
        t->shut_write(conn);

        size_t len = 0;
        bool closed = false;
        long long deadline = fuzz_now_ms() + timeout_ms;
        for (;;) {
                long long ms = deadline - fuzz_now_ms();
                if (ms <= 0)
                        break;
                char tmp[4096];
                ssize_t got = t->recv_some(conn, tmp, sizeof tmp, (int)(ms < silence_ms ? ms : silence_ms));
                if (got == -EINTR)
                        continue;
                if (got == -ETIMEDOUT)
                        break;
                if (got <= 0) {
                        closed = true;
                        break;
                }
                size_t keep = (size_t)got < cap - 1 - len ? (size_t)got : cap - 1 - len;
                memcpy(out + len, tmp, keep);
                len += keep;
        }
        t->close(conn, closed);
        out[len] = '\0';
        *ret_len = len;
        return closed;
}

/* GET /healthz on a new connection must get 200 within
 * FUZZ_HEALTH_TIMEOUT_MS; `after` says when, for the failure. */
FUZZ_UNUSED static void fuzz_check_health(const struct fuzz_transport *t, char *answer, size_t cap, const char *after)
{
        static const char health[] = "GET /healthz HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n";
        size_t len;
        if (!fuzz_exchange(t, health, sizeof health - 1, false, answer, cap, &len, FUZZ_HEALTH_TIMEOUT_MS,
                           FUZZ_HEALTH_TIMEOUT_MS))
                fuzz_fail("GET /healthz %s: no answer within %d ms", after, FUZZ_HEALTH_TIMEOUT_MS);
        if (http_status(answer, len) != 200 || !strstr(answer, "{\"status\":\"ok\"}"))
                fuzz_fail("GET /healthz %s: %.300s", after, answer);
}
