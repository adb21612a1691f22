/*
 * Consul backend: the pure parse/build layer (consul_json.c, no I/O, linked
 * directly by tests/unit/test_consul.c) and the types the driver (consul.c)
 * shares with it.
 */
#ifndef VFILE_CONSUL_INT_H
#define VFILE_CONSUL_INT_H

#include "vfile/kv_util.h"

#define CONSUL_MAX_TXN_OPS 64 /* Consul up to 1.13 (128 from 1.14) */
/* What a caller may put in one txn (kv->max_txn_ops): a put may need two Consul
 * ops (a guard or an unlock of the session that held the key, then the write). */
#define CONSUL_TXN_OPS_ADVERTISED (CONSUL_MAX_TXN_OPS / 2)
#define CONSUL_MIN_TTL_S 10 /* session TTL must be 10 s .. 24 h */
#define CONSUL_MAX_TTL_S 86400

/* One KV operation of a /v1/txn body. */
enum consul_verb {
	CONSUL_SET = 1,
	CONSUL_DELETE,
	CONSUL_GET,
	CONSUL_GET_TREE,
	CONSUL_CHECK_INDEX,
	CONSUL_CHECK_NOT_EXISTS,
	CONSUL_CHECK_SESSION,
	CONSUL_LOCK,
	CONSUL_UNLOCK,
	CONSUL_CAS,
};
struct consul_txn_op {
	enum consul_verb verb;
	const char *key;
	const char *value; /* SET, CAS, LOCK, UNLOCK (may be NULL: empty) */
	size_t value_len;
	int64_t index;       /* CHECK_INDEX, CAS */
	const char *session; /* LOCK, UNLOCK, CHECK_SESSION */
};

/* How many results op produces in a committed txn: 0, 1, or -1 (get-tree: a
 * run of entries whose keys start with op->key). */
int consul_verb_nresults(enum consul_verb verb);
const char *consul_verb_name(enum consul_verb verb);

/* Set the verb of each op with is_read[i]: get-tree (absent keys read as not
 * found, no failure) when no later op's key starts with its key, so that its run
 * of results is unambiguous; else get (a missing key then fails the txn and the
 * driver retries with check-not-exists). */
void consul_choose_read_verbs(struct consul_txn_op *ops, size_t nops, const int *is_read);

/* Build the JSON body of PUT /v1/txn. */
int consul_txn_build(const struct consul_txn_op *ops, size_t nops, char **body_r, size_t *len_r,
                     struct vf_err *err);

/* A parsed entry of a KV answer (GET /v1/kv, txn Results[].KV). */
int consul_entry_parse(yajl_val v, struct vf_kv_pair *pair_r, struct vf_err *err);
/* GET /v1/kv/<key>: the array answer; the entry whose Key is key. VF_ENOTFOUND if none. */
int consul_get_parse(const char *body, size_t len, const char *key, struct vf_kv_pair *pair_r,
                     struct vf_err *err);
/* GET /v1/kv/<prefix>?recurse: the entries under prefix only, sorted by key. */
int consul_list_parse(const char *body, size_t len, const char *prefix, struct vf_kv_list *list_r,
                      struct vf_err *err);

/* The same answer parsed as it arrives (no tree, no copy of the body). Values
 * are decoded for every entry (ALL), none (NONE: value NULL), or only entries
 * that are not in old with the same ModifyIndex and CreateIndex (CHANGED: what
 * a watch diff turns into PUT events; old sorted by key, kept alive until
 * finish). feed latches the first error; finish returns it or the listing,
 * sorted by key. */
enum consul_values { CONSUL_VALUES_ALL, CONSUL_VALUES_NONE, CONSUL_VALUES_CHANGED };
struct consul_lparse;
int consul_lparse_new(const char *prefix, const struct vf_kv_list *old, enum consul_values values,
                      struct consul_lparse **p_r);
int consul_lparse_feed(struct consul_lparse *p, const char *data, size_t len);
int consul_lparse_finish(struct consul_lparse *p, struct vf_kv_list *list_r, struct vf_err *err);
void consul_lparse_free(struct consul_lparse *p);
/* The Session holding key (sid_r = "" when none). VF_ENOTFOUND if no entry. */
int consul_get_session_parse(const char *body, size_t len, const char *key, char *sid_r,
                             size_t sidsz, struct vf_err *err);
/* X-Consul-Index header value (NULL/garbage: 0). */
int64_t consul_index_parse(const char *hdr);

/* A 200 txn answer mapped onto the ops that were sent: res[i] for op i is filled
 * for GET/GET_TREE (found + pair: the entry whose key is exactly op->key) and for
 * SET/LOCK/UNLOCK/CAS/CHECK_* (pair.key, mod_rev, create_rev; found = 1).
 * *revision_r = the largest ModifyIndex seen. */
int consul_txn_results_parse(const char *body, size_t len, const struct consul_txn_op *ops,
                             size_t nops, struct vf_kv_result *res, int64_t *revision_r,
                             struct vf_err *err);

/* The errors of a 409 txn answer. */
enum consul_txn_fail {
	CONSUL_FAIL_OTHER = 0,
	CONSUL_FAIL_MISSING,     /* get: key doesn't exist */
	CONSUL_FAIL_COMPARE,     /* check-index, check-not-exists, cas, delete-cas */
	CONSUL_FAIL_SESSION,     /* check-session failed (lock lost or released) */
	CONSUL_FAIL_LOCK_HELD,   /* lock: held by another session */
	CONSUL_FAIL_NOT_HELD,    /* unlock: not held by this session */
	CONSUL_FAIL_BAD_SESSION, /* invalid session (gone) */
	CONSUL_FAIL_DENIED,      /* ACL */
	CONSUL_FAIL_LOCK_DELAY,  /* lock: refused for the lock-delay after a session ended */
};
struct consul_txn_error {
	size_t op_index;
	enum consul_txn_fail kind;
	char what[VF_KV_KEY_MAX + 256]; /* room for a key and the session that holds it */
};
int consul_txn_errors_parse(const char *body, size_t len, struct consul_txn_error **errs_r,
                            size_t *n_r, struct vf_err *err);
enum consul_txn_fail consul_txn_fail_classify(const char *what);

/* Map a non-2xx HTTP answer to a vf status with a one-line message naming what. */
int consul_status_error(long status, const char *body, size_t len, int write, const char *what,
                        struct vf_err *err);

/* vf_http_req.failover for Consul: an answer that says the server could not
 * serve (no leader, 429 too many requests) moves any request to the next
 * server; another 5xx moves a read (idempotent). */
int consul_failover_answer(long status, const char *body, size_t len, int idempotent);

/* Sessions. node: the catalog node the session is bound to (NULL or "": the
 * agent's own). No checks in either case: the TTL alone governs. */
int consul_session_body(const char *name, int ttl_s, const char *behavior, int lock_delay_ms,
                        const char *node, char **body_r, size_t *len_r, struct vf_err *err);
/* PUT /v1/catalog/register body of the node sessions are bound to. */
int consul_node_register_body(const char *node, char **body_r, size_t *len_r, struct vf_err *err);
/* {"ID":"..."} → id (size idsz). */
int consul_session_create_parse(const char *body, size_t len, char *id, size_t idsz,
                                struct vf_err *err);
/* renew/info answer: [ {..., "TTL":"15s"} ] → ttl in seconds; VF_ENOTFOUND on []. */
int consul_session_ttl_parse(const char *body, size_t len, int *ttl_s_r, struct vf_err *err);
/* "15s", "1m30s", "500ms" → whole seconds (rounded down, at least 0). */
int consul_duration_s(const char *s, int *out_r);

/* Escape a key for a URL path: every byte but [A-Za-z0-9._~/-] as %XX. */
int consul_key_escape(struct vf_buf *b, const char *key);

/* Watch: events that take listing old to listing new (both sorted by key).
 * Returns them in index order (PUT by ModifyIndex, then DELETEs at new->revision). */
struct consul_event {
	enum vf_kv_event_type type;
	const struct vf_kv_pair *pair; /* PUT: into new; DELETE: into old */
	int64_t mod_rev;
};
int consul_list_diff(const struct vf_kv_list *old_l, const struct vf_kv_list *new_l,
                     struct consul_event **ev_r, size_t *n_r);

/* Blocking-query index rules (Consul docs, features/blocking): given the index
 * we asked with and the one returned, the next index to ask with; *reset_r = 1
 * when the index went backwards (history gone: the caller emits RESYNC). */
int64_t consul_next_index(int64_t prev, int64_t got, int *reset_r);

/* ---- the driver's own state and the functions its files share (consul.c,
 * consul_txn.c, consul_session.c, consul_lock.c, consul_watch.c) ---- */

/* consul_txn_run and friends: the txn rolled back (failures in errs). */
#define CONSUL_ROLLED_BACK 1

/* ---- the lease binding of a put (kv.h: "Lease binding of a key") ----
 *
 * Consul's "set" keeps the session that holds the key, and "lock" by another
 * session fails. So each put of a txn is sent as one of (K the key, v the
 * value, D the delete session of the put's lease, S the session holding K):
 *   no lease:  FREE    [check-session K "", set K v]
 *              ABSENT  [check-not-exists K, set K v] (the guard left out when a
 *                      compare of the caller already requires K absent)
 *              HELD    [unlock K S v]  (clears the session, keeps CreateIndex)
 *   lease:     LOCK    [lock K D v]    (absent, free or already D's)
 *              REBIND  [unlock K S v, lock K D v]
 * A guess that the store refutes only rolls the txn back; the answer tells the
 * right mode (check-session names the session that holds the key; a failed
 * lock is followed by one read of K's session) and the txn is sent again, so
 * the binding changes in the same atomic request as the value. */
enum consul_bmode { CB_FREE = 1, CB_ABSENT, CB_HELD, CB_LOCK, CB_REBIND };
struct consul_bind {
	int put;         /* op is a caller's put (else sent as is) */
	const char *sid; /* the lease's delete session, NULL: no lease */
	enum consul_bmode mode;
	int noguard; /* ABSENT without the guard */
	char held[64];
};
#define CONSUL_BIND_TRIES 8

#define CONSUL_DEFAULT_ADDR "http://127.0.0.1:8500"
#define CONSUL_SESSION_NODE "vfile-sessions" /* default consul.session_node */
#define CONSUL_TXN_RETRIES 8                 /* get <-> check-not-exists conversions per call */

#define CONSUL_SEEN_N 64          /* remembered (key, ModifyIndex, value) facts */
#define CONSUL_SEEN_MAX_VALUE 256 /* longer values are not remembered */

struct consul_held; /* a lock name held by this handle (in-process exclusion) */

/* "key had value at ModifyIndex mod_rev": true for good once read (an index is
 * the raft index of one write), so VALUE_EQ can become check-index without a
 * read when the value was seen; a stale guess only fails the check-index. */
struct consul_seen {
	char *key;
	char *value;
	size_t value_len;
	int64_t mod_rev;
	int sid_known; /* this handle wrote it: sid is the session holding it ("": none) */
	char sid[64];
};

struct consul_kv {
	struct vf_kv base;
	struct vf_http *http;
	char *token_hdr; /* "X-Consul-Token: ..." (never logged) or NULL */
	const char *hdrs[2];
	int consistent;
	int lock_delay_ms;
	int session_ttl_s;
	int watch_wait_s;
	long timeout_ms;
	char holder[128];   /* value written into lock keys: host:pid */
	char *session_node; /* catalog node sessions are bound to, NULL: the agent's */

	pthread_mutex_t mu;
	pthread_cond_t cv;      /* keep-alive thread wake-up, lease busy flags */
	pthread_cond_t lock_cv; /* in-process lock hand-off */
	struct consul_lease *leases;
	struct consul_held *held;
	struct consul_seen seen[CONSUL_SEEN_N]; /* under mu; a ring */
	size_t seen_next;
	pthread_t ka_thread;
	int ka_started;
	int ka_stop;
	unsigned long seq;
	int verified; /* an endpoint answered /v1/status/leader as Consul does (under mu) */
	int snode;    /* session_node (under mu): 0 not registered yet, 1 registered,
	               * -1 refused (ACL): sessions go to the agent's node */
};

struct consul_lease {
	struct vf_kv_lease base; /* base.id = the release session */
	char del_id[64];         /* the delete session, "" until first needed */
	unsigned int flags;
	vf_kv_lease_lost_fn lost;
	void *arg;
	int64_t next_ms;      /* next renewal (monotonic ms) */
	int64_t confirmed_ms; /* start of the last renewal (or grant) the store confirmed */
	int busy;             /* the keep-alive thread renews it or runs its lost callback */
	int revoked;          /* revoked from its own lost callback: freed after it */
	int gone;             /* found gone: lost reported */
	struct consul_lease *next;
};

struct consul_lock {
	struct vf_kv_lock base; /* base.key = the lock name = the Consul key */
	char sid[64];
	int released; /* by a VF_OP_UNLOCK in a txn */
};

struct consul_held {
	char *name;
	char sid[64];
	struct consul_held *next;
};

struct consul_watch {
	struct consul_kv *ck;
	char *prefix;
	vf_kv_watch_fn fn;
	void *arg;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	volatile int cancel;
	int resync_first;
	int64_t check_head; /* > 0: RESYNC first unless the KV head reached it */
	struct vf_kv_list last;
	int64_t index;
};

/* consul.c */
int consul_get(struct vf_kv *kv, const char *key, struct vf_kv_pair *pair_r, struct vf_err *err);
int consul_http(struct consul_kv *ck, const char *method, const char *path, const char *body,
                size_t body_len, int idempotent, long timeout_ms, volatile int *cancel,
                struct vf_http_resp *resp, struct vf_err *err);
int consul_kv_path(struct vf_buf *b, const char *key, const char *query);
int consul_list_ex(struct consul_kv *ck, const char *prefix, int64_t index, long wait_ms,
                   volatile int *cancel, const struct vf_kv_list *old, enum consul_values values,
                   struct vf_kv_list *list_r, struct vf_err *err);
int consul_not_consul(const struct vf_http_resp *resp, struct vf_err *err);
struct consul_kv *consul_of(struct vf_kv *kv);
void consul_seen_forget(struct consul_kv *ck, const char *key);
int consul_seen_has(struct consul_kv *ck, const char *key);
int64_t consul_seen_index(struct consul_kv *ck, const char *key, const char *value,
                          size_t value_len);
int consul_seen_sid(struct consul_kv *ck, const char *key, char *sid, size_t size);
void consul_seen_txn(struct consul_kv *ck, const struct consul_txn_op *ops, size_t nops,
                     const struct vf_kv_result *res);

/* consul_txn.c */
void consul_bind_hint(struct consul_kv *ck, struct consul_bind *b, const char *key);
int consul_cmps_ops(struct consul_kv *ck, const struct vf_kv_cmp *cmps, size_t ncmp,
                    struct consul_txn_op *ops, int *guessed, char **lkeys, struct vf_err *err);
char *consul_lock_key(const char *name);
int consul_txn(struct vf_kv *kv, const struct vf_kv_cmp *cmps, size_t ncmp,
               const struct vf_kv_op *vops, size_t nops, struct vf_kv_txn_result *res_r,
               struct vf_err *err);
int consul_txn_fail_rc(const struct consul_txn_op *ops, const struct consul_txn_error *e, size_t n,
                       struct vf_err *err);
int consul_txn_run(struct consul_kv *ck, struct consul_txn_op *ops, size_t nops, const int *is_read,
                   struct consul_bind *binds, struct vf_kv_result *res, int64_t *rev_r,
                   struct consul_txn_error **errs_r, size_t *nerrs_r, struct vf_err *err);
int consul_txn_run_reguess(struct consul_kv *ck, const struct vf_kv_cmp *cmps, size_t ncmp,
                           struct consul_txn_op *ops, size_t nops, const int *is_read,
                           struct consul_bind *binds, int *guessed, struct vf_kv_result *res,
                           int64_t *rev_r, struct consul_txn_error **errs_r, size_t *nerrs_r,
                           struct vf_err *err);
int consul_txn_simple(struct consul_kv *ck, struct consul_txn_op *ops, size_t nops,
                      struct consul_bind *binds, struct vf_kv_result *res,
                      struct consul_txn_error **errs_r, size_t *nerrs_r, struct vf_err *err);

/* consul_session.c */
int consul_lease_del_session(struct consul_kv *ck, struct consul_lease *cl, char *sid,
                             struct vf_err *err);
int consul_lease_grant(struct vf_kv *kv, int ttl_s, unsigned int flags, vf_kv_lease_lost_fn lost,
                       void *arg, struct vf_kv_lease **lease_r, struct vf_err *err);
int consul_lease_keepalive(struct vf_kv *kv, struct vf_kv_lease *lease, struct vf_err *err);
int consul_lease_revoke(struct vf_kv *kv, struct vf_kv_lease **lease, struct vf_err *err);

/* consul_lock.c */
int consul_lock(struct vf_kv *kv, struct vf_kv_lease *lease, const char *name, int timeout_ms,
                const char *const *reads, size_t nreads, struct vf_kv_result *reads_r,
                struct vf_kv_lock **lock_r, struct vf_err *err);
int consul_lock_many(struct vf_kv *kv, struct vf_kv_lease *lease, const char *const *names,
                     size_t n, const struct vf_kv_cmp *cmps, size_t ncmp,
                     struct vf_kv_lock **locks_r, struct vf_err *err);
int consul_unlock(struct vf_kv *kv, struct vf_kv_lock **lock, struct vf_err *err);

/* consul_watch.c */
int consul_watch_start(struct vf_kv *kv, const char *prefix, int64_t after_rev, vf_kv_watch_fn fn,
                       void *arg, struct vf_kv_watch **watch_r, struct vf_err *err);
void consul_watch_stop(struct vf_kv *kv, struct vf_kv_watch **watch);

#endif /* VFILE_CONSUL_INT_H */
