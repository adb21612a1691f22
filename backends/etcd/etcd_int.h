/*
 * Private header of the etcd backend: the handle, leases, locks, watches, and
 * the pure JSON layer (etcd_json.c: request builders and response parsers, no
 * I/O) that the unit test links directly.
 */
#ifndef VFILE_ETCD_INT_H
#define VFILE_ETCD_INT_H

#include <pthread.h>
#include <stdint.h>

#include "vfile/kv_util.h"

#define ETCD_MAX_TXN_OPS 128 /* etcd --max-txn-ops default */
#define ETCD_MIN_LEASE_TTL 2 /* ceil(1.5 x default election timeout) */

/* ---- handle ---- */
struct etcd_lease {
	struct vf_kv_lease base; /* first: handed out to callers */
	int64_t id;
	unsigned int flags;
	vf_kv_lease_lost_fn lost;
	void *arg;
	int64_t next_ms;     /* next automatic renewal */
	int64_t deadline_ms; /* the store drops the lease after this unless renewed */
	int is_lost;         /* loss detected (reported once) */
	int busy;            /* the keep-alive thread runs its lost callback */
	int revoked;         /* revoked from within its own lost callback */
	int retrying;        /* renewals are failing (logged once) */
	struct etcd_lease *next;
};

struct etcd_lock {
	struct vf_kv_lock base; /* first: key = waiter key, fence = its create_revision */
	int released;           /* deleted by a VF_OP_UNLOCK in a committed txn */
};

struct etcd_watch;
struct etcd_lockkey;
struct etcd_giveback;

struct etcd_kv {
	struct vf_kv base; /* first */
	struct vf_http *http;
	char *username;
	char *password;
	int timeout_ms;

	/* endpoints_file: re-read when it changes (checked at most once a second) */
	char *ep_file;
	pthread_mutex_t ep_mu;
	int64_t ep_checked_ms;
	struct timespec ep_mtime;
	long long ep_size, ep_ino;

	pthread_mutex_t auth_mu; /* token and its generation */
	char *token;
	unsigned long token_gen;

	pthread_mutex_t mu; /* leases, watches, keep-alive thread */
	pthread_cond_t cond;
	struct etcd_lease *leases;
	struct etcd_watch *watches;
	struct etcd_lockkey *lock_keys;  /* waiter keys held or awaited (etcd_lock.c) */
	struct etcd_giveback *givebacks; /* waiter keys still to delete (etcd_lock.c) */
	pthread_mutex_t pw_mu;           /* the lock-prefix watches (etcd_lock.c) */
	struct lock_pw *pws;
	pthread_t ka_thread;
	int ka_running;
	int ka_stop;
};

/* etcd.c: one unary RPC with the auth token, re-authentication once, error mapping.
 * On VF_OK *tree_r is the parsed 200 answer (free with yajl_tree_free). what names
 * the operation and key for messages ("put vols/a"). */
int etcd_rpc(struct etcd_kv *ek, const char *path, const char *body, size_t body_len,
             int idempotent, long timeout_ms, yajl_val *tree_r, const char *what,
             struct vf_err *err);
/* A streaming request with the auth token (on_data/cancel in req). *gen_r gets the token
 * generation used, for etcd_auth_invalidate(). */
int etcd_request(struct etcd_kv *ek, struct vf_http_req *req, struct vf_http_resp *resp,
                 unsigned long *gen_r, struct vf_err *err);
/* The token of generation gen was refused: drop it so the next call re-authenticates. */
void etcd_auth_invalidate(struct etcd_kv *ek, unsigned long gen);
/* Current store revision (header of a one-key range). */
int etcd_current_revision(struct etcd_kv *ek, const char *key, int64_t *rev_r, struct vf_err *err);

/* etcd_lease.c */
int etcd_lease_grant(struct vf_kv *kv, int ttl_s, unsigned int flags, vf_kv_lease_lost_fn lost,
                     void *arg, struct vf_kv_lease **lease_r, struct vf_err *err);
int etcd_lease_keepalive(struct vf_kv *kv, struct vf_kv_lease *lease, struct vf_err *err);
int etcd_lease_revoke(struct vf_kv *kv, struct vf_kv_lease **lease, struct vf_err *err);
void etcd_lease_shutdown(struct etcd_kv *ek); /* close(): stop the thread, free leases */
/* ek->mu held: make sure the keep-alive thread runs (it also retries give-backs)
 * and wake it. VF_OK or VF_ENOMEM (no thread). */
int etcd_ka_kick_locked(struct etcd_kv *ek);
int64_t etcd_lease_id(const struct vf_kv_lease *lease);

/* etcd_lock.c */
int etcd_lock(struct vf_kv *kv, struct vf_kv_lease *lease, const char *name, int timeout_ms,
              const char *const *reads, size_t nreads, struct vf_kv_result *reads_r,
              struct vf_kv_lock **lock_r, struct vf_err *err);
int etcd_unlock(struct vf_kv *kv, struct vf_kv_lock **lock, struct vf_err *err);
/* Note waiter key key as held or awaited by this handle: VF_EBUSY if it is already
 * (locks are not re-entrant), VF_ENOMEM. etcd_lock_unclaim forgets it. */
int etcd_lock_claim(struct etcd_kv *ek, const char *key);
void etcd_lock_unclaim(struct etcd_kv *ek, const char *key);
void etcd_lock_shutdown(struct etcd_kv *ek); /* close(): forget the waiter keys */
/* Waiter keys whose release failed (store unreachable) are deleted later by the
 * keep-alive thread, so that a key nobody waits on never becomes the owner. With
 * ek->mu held: run one due give-back within timeout_ms (returns 1; mu was dropped
 * meanwhile) or lower *wake_ms to the next one's time (returns 0). */
int etcd_lock_giveback_due(struct etcd_kv *ek, int64_t now, long timeout_ms, int64_t *wake_ms);
/* ek->mu held: forget the give-backs of lease lease_id (its keys went with it). */
void etcd_lock_giveback_drop(struct etcd_kv *ek, const char *lease_id);
void etcd_lock_pw_shutdown(struct etcd_kv *ek); /* close(), before the watches go */
/* Wait (watch, no polling) until key, seen with create_rev at revision after_rev, is
 * deleted (or replaced), or until deadline_ms (< 0: forever). VF_OK when deleted or
 * when the caller should look again, VF_ETIMEDOUT, or a store error. */
int etcd_wait_delete(struct etcd_kv *ek, const char *key, int64_t create_rev, int64_t after_rev,
                     int64_t deadline_ms, struct vf_err *err);

/* etcd_lock_many.c */
int etcd_lock_many(struct vf_kv *kv, struct vf_kv_lease *lease, const char *const *names, size_t n,
                   const struct vf_kv_cmp *cmps, size_t ncmp, struct vf_kv_lock **locks_r,
                   struct vf_err *err);

/* etcd_watch.c */
int etcd_watch_start(struct vf_kv *kv, const char *prefix, int64_t after_rev, vf_kv_watch_fn fn,
                     void *arg, struct vf_kv_watch **watch_r, struct vf_err *err);
void etcd_watch_stop(struct vf_kv *kv, struct vf_kv_watch **watch);
void etcd_watch_shutdown(struct etcd_kv *ek); /* close(): stop every watch */

/* ---- etcd_json.c: pure builders and parsers ---- */

/* Map a non-200 answer (or an unparseable one) to a vf_status with a one-line
 * message "what: etcd: <message>". *reauth_r (may be NULL) is set when the token
 * was refused and a fresh one may help. idempotent: whether the request was a read
 * (a server-side timeout on a write is VF_EUNCERTAIN). */
int etcd_map_error(long status, const char *body, size_t len, int idempotent, int *reauth_r,
                   const char *what, struct vf_err *err);

/* vf_http_req.failover for etcd: a 503/504 answer moves to the next member when it
 * is a read, or a write that etcd refused before proposing it ("no leader", "too
 * many requests"). A write that may have been proposed is not resent. */
int etcd_failover_answer(long status, const char *body, size_t len, int idempotent);

/* Range end of a prefix: prefix with trailing 0xff dropped and the last byte +1;
 * for "" (or all 0xff) both key and end are "\0". Returns malloc'ed bytes. */
int etcd_prefix_range(const char *prefix, char **key_r, size_t *klen_r, char **end_r,
                      size_t *elen_r);

/* The lock check lists at most this many waiters ahead of the caller. */
#define ETCD_LOCK_AHEAD_MAX 16
/* The waiter keys of lock N are "N" ETCD_LOCK_SEG "<lease>" (kv.h: lock keys). */
#define ETCD_LOCK_SEG "/.lock/"

struct etcd_range_opt {
	int64_t limit;
	const char *sort_order;  /* "ASCEND", "DESCEND" or NULL */
	const char *sort_target; /* "KEY", "CREATE", "MOD" or NULL */
	int64_t max_create_revision;
	int count_only;
};

/* Low-level generator pieces (each writes one JSON object). */
yajl_gen etcd_gen_new(void);
void etcd_gen_bytes(yajl_gen g, const char *name, const char *data, size_t len);
void etcd_gen_i64(yajl_gen g, const char *name, int64_t v);
void etcd_gen_range(yajl_gen g, const char *key, size_t klen, const char *end, size_t elen,
                    const struct etcd_range_opt *o);
void etcd_gen_put(yajl_gen g, const char *key, const char *value, size_t vlen, int64_t lease);
void etcd_gen_delete(yajl_gen g, const char *key);
/* A Compare: target "VERSION", "CREATE", "MOD", "VALUE"; result "EQUAL"... */
void etcd_gen_cmp_rev(yajl_gen g, const char *target, const char *key, int64_t v);
void etcd_gen_cmp_value(yajl_gen g, const char *key, const char *value, size_t vlen);
/* Finish g into *body_r and free g. */
int etcd_gen_done(yajl_gen g, char **body_r, size_t *len_r, struct vf_err *err);

int etcd_build_range(const char *key, int prefix, char **body_r, size_t *len_r, struct vf_err *err);
int etcd_build_put(const char *key, const char *value, size_t vlen, int64_t lease, char **body_r,
                   size_t *len_r, struct vf_err *err);
int etcd_build_delete(const char *key, char **body_r, size_t *len_r, struct vf_err *err);
/* cas: compare MOD == expect (CREATE == 0 when expect is 0), put; failure reads key. */
int etcd_build_cas(const char *key, const char *value, size_t vlen, int64_t expect, int64_t lease,
                   char **body_r, size_t *len_r, struct vf_err *err);
/* cas_del (fence 0) or fenced delete (create_rev != 0: compare CREATE == create_rev). */
int etcd_build_cas_del(const char *key, int64_t mod_rev, int64_t create_rev, char **body_r,
                       size_t *len_r, struct vf_err *err);
/* The generic txn. VF_ELIMIT if ncmp + nops > max_ops, VF_EINVAL on a bad op. */
int etcd_build_txn(const struct vf_kv_cmp *cmps, size_t ncmp, const struct vf_kv_op *ops,
                   size_t nops, size_t max_ops, char **body_r, size_t *len_r, struct vf_err *err);
/* Lock acquisition: compare CREATE(waiter)==0; success [put waiter (lease), range waiter,
 * range owner, reads...]; failure [range waiter, range owner, reads...]. */
int etcd_build_lock_acquire(const char *waiter, const char *prefix, int64_t lease,
                            const char *const *reads, size_t nreads, char **body_r, size_t *len_r,
                            struct vf_err *err);
/* [range waiter, range predecessor (create < my_rev, greatest), reads...] in one
 * snapshot: without a predecessor the waiter owns the lock and the reads are the
 * state under its fence. etcd_build_lock_pred: the same without reads. */
int etcd_build_lock_check(const char *waiter, const char *prefix, int64_t my_rev,
                          const char *const *reads, size_t nreads, char **body_r, size_t *len_r,
                          struct vf_err *err);
int etcd_build_lock_pred(const char *waiter, const char *prefix, int64_t my_rev, char **body_r,
                         size_t *len_r, struct vf_err *err);
/* Batch try-lock: compares [no key under prefixes[i]..., cmps...]; success [put
 * waiters[i] (lease)...]; failure [first key under prefixes[i]...]. VF_ELIMIT if
 * n + ncmp > max_ops, VF_EINVAL on a bad compare. */
int etcd_build_lock_many(const char *const *waiters, const char *const *prefixes, size_t n,
                         int64_t lease, const struct vf_kv_cmp *cmps, size_t ncmp, size_t max_ops,
                         char **body_r, size_t *len_r, struct vf_err *err);
int etcd_build_watch(const char *key, size_t klen, const char *end, size_t elen, int64_t start_rev,
                     char **body_r, size_t *len_r, struct vf_err *err);
int etcd_build_lease_grant(int ttl, char **body_r, size_t *len_r, struct vf_err *err);
int etcd_build_lease_id(int64_t id, char **body_r, size_t *len_r, struct vf_err *err);
int etcd_build_auth(const char *name, const char *password, char **body_r, size_t *len_r,
                    struct vf_err *err);
int etcd_build_compact(int64_t rev, char **body_r, size_t *len_r, struct vf_err *err);

/* Parsers. */
int64_t etcd_header_revision(yajl_val tree);
int etcd_txn_succeeded(yajl_val tree);
/* responses[i].<kind> ("response_range", "response_put", "response_delete_range"). */
yajl_val etcd_txn_resp(yajl_val tree, size_t i, const char *kind);
int etcd_parse_kv(yajl_val kv, struct vf_kv_pair *p, struct vf_err *err);
/* kvs of a RangeResponse into l (revision = header revision of tree, may be NULL). */
int etcd_parse_range(yajl_val range, yajl_val tree, struct vf_kv_list *l, struct vf_err *err);
/* First kv of a RangeResponse: VF_OK + pair, or VF_ENOTFOUND. */
int etcd_parse_first(yajl_val range, struct vf_kv_pair *p, struct vf_err *err);
/* Results of a committed generic txn, one per op. */
int etcd_parse_txn_results(yajl_val tree, const struct vf_kv_op *ops, size_t nops,
                           struct vf_kv_txn_result *res, struct vf_err *err);
int etcd_parse_lease_grant(yajl_val tree, int64_t *id_r, int *ttl_r, struct vf_err *err);
/* A keepalive answer ({"result":...} or bare): VF_ELEASE when TTL is absent. */
int etcd_parse_keepalive(yajl_val tree, int64_t *ttl_r, struct vf_err *err);

/* Streams: line-delimited JSON messages, split anywhere. */
struct etcd_stream {
	struct vf_buf buf;
};
typedef int (*etcd_msg_fn)(yajl_val msg, void *arg);
/* Feed n bytes; fn is called for every complete line (its tree is freed after).
 * Returns VF_OK, fn's non-zero result (feeding stops), or VF_EPROTO. */
int etcd_stream_feed(struct etcd_stream *s, const char *p, size_t n, etcd_msg_fn fn, void *arg,
                     struct vf_err *err);
void etcd_stream_free(struct etcd_stream *s);

struct etcd_wmsg {
	int error;          /* in-band {"error":{...}} or a unary error body */
	const char *reason; /* error message or cancel_reason (may be NULL) */
	int created;
	int canceled;
	int64_t compact_revision;
	int64_t revision; /* header revision (0 if absent) */
	int64_t watch_id;
	yajl_val events; /* array or NULL */
};
int etcd_parse_wmsg(yajl_val msg, struct etcd_wmsg *m, struct vf_err *err);
/* Event i of m->events; key and value are malloc'ed into *key_r / *val_r. */
int etcd_parse_event(yajl_val ev, struct vf_kv_event *e, char **key_r, char **val_r,
                     struct vf_err *err);

#endif /* VFILE_ETCD_INT_H */
