/*
 * vfile/kv_util.h: the backend-support tier of libvfile, for the in-tree
 * backends (etcd.so, consul.so) and for a third-party backend module: errors,
 * logging, a growable buffer, base64, JSON over yajl trees, an HTTP client
 * over libcurl with endpoint failover and the unavailable/uncertain split,
 * config reads (libconfig) and secrets, key checks (kv.h "Keys"), the
 * monotonic clock and timed waits on it.
 *
 * A module links libvfile (pkg-config libvfile) and so shares the one copy of
 * the process-wide state behind these helpers (log level and target, curl's
 * global init) with the host. Every symbol declared here is exported by
 * libvfile.so (checked by tests/unit/exports.test); nothing else a module may
 * use is. The ABI of this tier follows the library's version (-version-info).
 */
#ifndef VFILE_KV_UTIL_H
#define VFILE_KV_UTIL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <time.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include <vfile/kv.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef VF_PRINTF
#define VF_PRINTF(a, b) __attribute__((format(printf, a, b)))
#endif

/* ---- errors ---- */
/* Set err (may be NULL) to code and a one-line message; returns code. */
int vf_err_set(struct vf_err *err, int code, const char *fmt, ...) VF_PRINTF(3, 4);
/* Prefix the message already in err with "what: ". Returns err->code. */
int vf_err_prefix(struct vf_err *err, const char *fmt, ...) VF_PRINTF(2, 3);
const char *vf_strerror(int code);

/* ---- logging ---- */
enum vf_log_level { VF_LOG_ERR = 0, VF_LOG_WARN, VF_LOG_INFO, VF_LOG_DEBUG };
void vf_log(int level, const char *fmt, ...) VF_PRINTF(2, 3);
void vf_log_set_level(int level);
int vf_log_get_level(void);
/* target: "stderr" or "syslog". */
int vf_log_set_target(const char *target, const char *ident);

/* ---- growable buffer ---- */
struct vf_buf {
	char *data; /* always NUL-terminated when non-NULL */
	size_t len;
	size_t cap;
};
int vf_buf_add(struct vf_buf *b, const void *p, size_t n);
int vf_buf_printf(struct vf_buf *b, const char *fmt, ...) VF_PRINTF(2, 3);
void vf_buf_free(struct vf_buf *b);

/* ---- base64 (standard alphabet, padded) ---- */
char *vf_b64_encode(const void *data, size_t len);
/* Decodes into a malloc'ed NUL-terminated buffer. VF_EPROTO on bad input. */
int vf_b64_decode(const char *in, char **out_r, size_t *len_r);

/* ---- JSON ---- */
/* yajl_tree_get with a path given as varargs, NULL-terminated. */
yajl_val vf_json_get(yajl_val root, ...);
/* An integer that may be a JSON number or string; absent (NULL) gives 0. */
int vf_json_int64(yajl_val v, int64_t *out);
/* A string value or NULL. */
const char *vf_json_str(yajl_val v);
/* Parse text (len bytes, need not be NUL-terminated) into a tree. */
int vf_json_parse(const char *text, size_t len, yajl_val *tree_r, struct vf_err *err);
/* Generator helpers: one call per token, errors latched in the generator. */
void vf_jgen_str(yajl_gen g, const char *s);
void vf_jgen_strn(yajl_gen g, const char *s, size_t n);
void vf_jgen_int(yajl_gen g, long long v);
/* A parsed (or built) tree as is; a value of no known type as null. */
void vf_jgen_tree(yajl_gen g, yajl_val v);
/* Take the generator's output as a malloc'ed string. */
int vf_jgen_finish(yajl_gen g, char **out_r, size_t *len_r, struct vf_err *err);

/* ---- HTTP ---- */
struct vf_http_cfg {
	char **endpoints; /* "http://127.0.0.1:2379", tried in order */
	size_t nendpoints;
	long connect_timeout_ms;
	long timeout_ms; /* per request, unless the request says otherwise */
	char *cacert;    /* TLS: CA bundle, client certificate and key (may be NULL) */
	char *cert;
	char *key;
	int tls_max; /* 0: libcurl's default; 12 or 13: only TLS 1.2 / 1.3 (tests) */
};
struct vf_http;

struct vf_http_req {
	const char *method; /* "GET", "POST", "PUT", "DELETE" */
	const char *path;   /* appended to the endpoint */
	const char *body;   /* may be NULL */
	size_t body_len;
	const char *const *headers; /* NULL-terminated "Name: value" list, may be NULL */
	long timeout_ms;            /* 0: the configured one; < 0: none (streams). Bounds
	                             * the whole request, every endpoint tried included */
	int idempotent;             /* a read: retried on the next endpoint after a lost answer */
	const char *want_header;    /* capture this response header into resp->header */
	/* Streaming: if set, body bytes go here instead of resp->body; return the
	 * number taken (anything else aborts). */
	size_t (*on_data)(const char *p, size_t n, void *arg);
	void *arg;
	volatile int *cancel; /* non-zero aborts the transfer (checked ~1/s and on data) */
	/* May be NULL. An answer for which it returns non-zero comes from a member
	 * that cannot serve (no leader, overloaded) and nothing was applied: the
	 * endpoint is marked bad and the next one asked (the last answer is returned
	 * as is). Not called for streams (on_data). */
	int (*failover)(long status, const char *body, size_t len, int idempotent);
	/* A streamed read (on_data) whose answer starts at once (a listing, not a
	 * watch): like other reads it shares the budget between endpoints, its share
	 * bounding the wait for its first byte (once data flows it is not cut). */
	int stream_split;
	/* A read that may wait long for its answer (a long poll): while no byte came,
	 * leave its endpoint as soon as another request marks that endpoint bad (it
	 * hangs or cannot serve) and ask the next one within the same timeout. */
	int leave_if_demoted;
};
struct vf_http_resp {
	long status;
	struct vf_buf body;
	char *header; /* value of want_header, or NULL */
	int endpoint; /* index of the endpoint that answered (or was tried last), -1 */
};

int vf_http_new(const struct vf_http_cfg *cfg, struct vf_http **h_r, struct vf_err *err);
void vf_http_free(struct vf_http **h);
/* VF_OK when an HTTP status was received (any status); VF_EUNAVAIL when no
 * endpoint could be reached (nothing sent); VF_EUNCERTAIN when a non-idempotent
 * request was sent and no complete answer came; VF_ETIMEDOUT never.
 * Endpoints are tried good ones first (the one that answered last first), then
 * those that failed, oldest failure first, all within the request's timeout; a
 * read's tries share what remains of it equally (a stream_split read's share
 * bounds the wait for its first byte, not the transfer). A stream that delivered data is
 * not retried on another endpoint (its caller resumes). */
int vf_http_do(struct vf_http *h, const struct vf_http_req *req, struct vf_http_resp *resp,
               struct vf_err *err);
/* Try endpoint ep last from now on, until it answers again (a stream on it died
 * or it said it cannot serve). */
void vf_http_demote(struct vf_http *h, int ep);
/* Replace the endpoint list (n > 0), e.g. when a store's membership changed.
 * Requests under way finish on the list they started with; an endpoint in both
 * lists keeps its failover state. Thread-safe. */
int vf_http_set_endpoints(struct vf_http *h, char *const *v, size_t n, struct vf_err *err);
void vf_http_resp_free(struct vf_http_resp *resp);
/* Free a string array of n entries. */
void vf_strv_free(char **v, size_t n);

/* ---- config helpers (libconfig) ---- */
/* Read an optional string / int / bool setting of group cfg (may be NULL).
 * A wrong type is VF_EINVAL naming file, line and setting. Strings are copied. */
int vf_cfg_str(const config_setting_t *cfg, const char *name, const char *def, char **out_r,
               struct vf_err *err);
int vf_cfg_int(const config_setting_t *cfg, const char *name, int def, int *out_r,
               struct vf_err *err);
int vf_cfg_bool(const config_setting_t *cfg, const char *name, int def, int *out_r,
                struct vf_err *err);
/* A string or a list/array of strings ("a" or ["a","b"]). */
int vf_cfg_strv(const config_setting_t *cfg, const char *name, const char *def, char ***out_r,
                size_t *n_r, struct vf_err *err);
/* Refuse settings of group cfg not named in known (NULL-terminated). */
int vf_cfg_known(const config_setting_t *cfg, const char *const *known, struct vf_err *err);
/* "file:line: " for messages about setting s (empty when unknown). */
void vf_cfg_where(const config_setting_t *s, char *buf, size_t size);
/* A secret of group cfg (named group in messages), first found of:
 *   1. setting name (inline);
 *   2. setting name_file: an absolute path, or a name without '/' read from
 *      $CREDENTIALS_DIRECTORY (systemd LoadCredential=); giving both 1 and 2 is an
 *      error;
 *   3. the credential cred in $CREDENTIALS_DIRECTORY, when it exists (cred may be
 *      NULL);
 *   4. the environment variable env (may be NULL), when set and not empty;
 *   5. the file named by the environment variable env_file (may be NULL).
 * A file holds one line (trailing newlines dropped; empty is an error). *out_r is
 * NULL when none gives one. Messages name settings and files, never the secret;
 * the caller clears the secret (memset) before freeing it. */
int vf_cfg_secret(const config_setting_t *cfg, const char *group, const char *name,
                  const char *cred, const char *env, const char *env_file, char **out_r,
                  struct vf_err *err);
/* file as vf_cfg_secret reads it: a name without '/' in $CREDENTIALS_DIRECTORY. */
int vf_cfg_secret_path(const char *file, char *buf, size_t size);
/* getenv(name), or NULL when unset or empty. */
const char *vf_env(const char *name);

/* ---- KV keys (kv.h: "Keys") ---- */
enum vf_key_kind {
	VF_KEY = 0,    /* a key: get, put, cas, del, txn compares and ops */
	VF_KEY_PREFIX, /* a list or watch prefix: may be empty, may end in '/' */
	VF_KEY_LOCK,   /* a lock name (the lock occupies "<name>/.lock/...") */
};
/* VF_OK if key is one kv.h allows for kind, else VF_EINVAL with a message that
 * names the key (escaped, cut if long), what is wrong, and what (the caller's
 * operation, e.g. "put"). Used by every slot of every driver, and by memkv. */
int vf_kv_key_check(const char *key, enum vf_key_kind kind, const char *what, struct vf_err *err);
/* Every key of a txn (compares: VF_KEY, or VF_KEY_LOCK for VF_CMP_LOCK_FREE;
 * ops but VF_OP_UNLOCK: VF_KEY), and no key written (PUT, DELETE) twice. */
int vf_kv_txn_keys_check(const struct vf_kv_cmp *cmps, size_t ncmp, const struct vf_kv_op *ops,
                         size_t nops, struct vf_err *err);

/* The pair of key in l (a listing sorted by key, as kv.h requires), or NULL. */
const struct vf_kv_pair *vf_kv_list_find(const struct vf_kv_list *l, const char *key);

/* ---- time ---- */
int64_t vf_now_ms(void); /* CLOCK_MONOTONIC in ms */

/* ---- timed waits ----
 * Every condition variable waited on with a bound is initialised by
 * vf_cond_init, which puts its timed waits on CLOCK_MONOTONIC (the clock of
 * vf_now_ms), and waited on with vf_cond_wait_until or vf_cond_wait_ms: a
 * wall-clock step (NTP, an operator's date -s) neither stretches nor cuts a wait. */
void vf_cond_init(pthread_cond_t *cv);
/* The absolute CLOCK_MONOTONIC time of deadline_ms (a vf_now_ms value). */
void vf_deadline_ts(int64_t deadline_ms, struct timespec *ts);
/* Wait on cv (mu held, cv from vf_cond_init) until signalled or until vf_now_ms
 * reaches deadline_ms. Returns 0 when woken (maybe spuriously: re-check the
 * condition) or ETIMEDOUT. */
int vf_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_ms);
/* The same for at most ms from now (ms <= 0: no wait, ETIMEDOUT). */
int vf_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ms);

#ifdef __cplusplus
}
#endif

#endif /* VFILE_KV_UTIL_H */
