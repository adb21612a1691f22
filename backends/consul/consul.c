/*
 * Consul backend driver (consul.so) for Consul 1.8's HTTP API: KV, /v1/txn,
 * sessions as leases, session locks with check-session fencing, and a prefix
 * watch built from blocking queries plus a diff of listings (Consul keeps no
 * event history). Wire details: /work/shared/WIRE.md section 2.
 *
 * Mapping:
 *  - versions are ModifyIndex / CreateIndex; a list's revision is X-Consul-Index.
 *  - every write goes through /v1/txn (one round trip) because the plain KV PUT
 *    answers only true/false and we must return the new ModifyIndex.
 *  - a vf lease is up to two sessions with the same TTL: one with Behavior
 *    "release" (its id is the lease id; locks use it) and one with Behavior
 *    "delete", created on the first put attached to the lease, so that keys put
 *    with the lease vanish when it ends while locks are merely released.
 *  - a key put with a lease is "lock"ed by the delete session (txn verb "lock").
 *  - the lock called N is the key N, locked by the release session; its fence is
 *    the key's ModifyIndex after the acquisition (grows with every acquisition
 *    even if the key is deleted in between, unlike LockIndex); VF_CMP_LOCK_HELD
 *    is "check-session" on N, which fails once the lock is released or the
 *    session invalidated.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "consul_int.h"

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

static struct consul_kv *consul_of(struct vf_kv *kv)
{
	return (struct consul_kv *)kv;
}

/* ---- HTTP ---- */

/* Before the first request is trusted: does the endpoint answer as Consul?
 * GET /v1/status/leader must answer 200 with a JSON string (the leader's
 * address, "" while there is none); a plain web server answers 404 or HTML. */
static int consul_verify(struct consul_kv *ck, struct vf_err *err)
{
	struct vf_http_resp resp = {0};
	struct vf_http_req req = {
	        .method = "GET",
	        .path = "/v1/status/leader",
	        .headers = ck->hdrs,
	        .idempotent = 1,
	};
	int verified, rc;

	pthread_mutex_lock(&ck->mu);
	verified = ck->verified;
	pthread_mutex_unlock(&ck->mu);
	if (verified)
		return VF_OK;
	rc = vf_http_do(ck->http, &req, &resp, err);
	if (rc != VF_OK)
		return rc;
	if (resp.status == 403 || resp.status == 401) {
		rc = consul_status_error(resp.status, resp.body.data, resp.body.len, 0,
		                         "GET /v1/status/leader", err);
	} else {
		const char *b = resp.body.data ? resp.body.data : "";
		size_t n = resp.body.len;

		while (n && (b[n - 1] == '\n' || b[n - 1] == '\r' || b[n - 1] == ' '))
			n--;
		if (resp.status != 200 || n < 2 || b[0] != '"' || b[n - 1] != '"')
			rc = vf_err_set(err, VF_EPROTO,
			                "endpoint #%d does not answer as a Consul agent (GET "
			                "/v1/status/leader: HTTP %ld, %s): check consul.endpoints",
			                resp.endpoint + 1, resp.status,
			                resp.status == 200 ? "not a JSON string" : "expected 200");
	}
	if (rc == VF_OK) {
		pthread_mutex_lock(&ck->mu);
		ck->verified = 1;
		pthread_mutex_unlock(&ck->mu);
	}
	vf_http_resp_free(&resp);
	return rc;
}

/* One request; *resp is filled when VF_OK (any HTTP status). */
static int consul_http(struct consul_kv *ck, const char *method, const char *path, const char *body,
                       size_t body_len, int idempotent, long timeout_ms, volatile int *cancel,
                       struct vf_http_resp *resp, struct vf_err *err)
{
	struct vf_http_req req = {
	        .method = method,
	        .path = path,
	        .body = body,
	        .body_len = body_len,
	        .headers = ck->hdrs,
	        .timeout_ms = timeout_ms,
	        .idempotent = idempotent,
	        .want_header = "X-Consul-Index",
	        .cancel = cancel,
	        .failover = consul_failover_answer,
	};
	int rc = consul_verify(ck, err);

	if (rc != VF_OK) {
		memset(resp, 0, sizeof(*resp));
		return rc;
	}
	return vf_http_do(ck->http, &req, resp, err);
}

/* A 404 without X-Consul-Index (Consul sends it with every KV answer): the
 * endpoint is some other HTTP server, whose 404 must not read as "no key". */
static int consul_not_consul(const struct vf_http_resp *resp, struct vf_err *err)
{
	return vf_err_set(err, VF_EPROTO,
	                  "endpoint #%d answered HTTP 404 without X-Consul-Index: it is not a "
	                  "Consul agent (check consul.endpoints)",
	                  resp->endpoint + 1);
}

static int consul_kv_path(struct vf_buf *b, const char *key, const char *query)
{
	int rc = vf_buf_add(b, "/v1/kv/", 7);

	if (rc == VF_OK)
		rc = consul_key_escape(b, key);
	if (rc == VF_OK && query && *query)
		rc = vf_buf_printf(b, "%s", query);
	return rc;
}

/* ---- values seen (VALUE_EQ without a read) ---- */

static void consul_seen_clear(struct consul_seen *e)
{
	free(e->key);
	free(e->value);
	memset(e, 0, sizeof(*e));
}

/* Remember that key had value at mod_rev (newer facts replace older ones). */
static void consul_seen_put(struct consul_kv *ck, const char *key, const char *value,
                            size_t value_len, int64_t mod_rev, const char *sid)
{
	struct consul_seen *e = NULL;
	char *k, *v;

	if (key == NULL || mod_rev <= 0 || value_len > CONSUL_SEEN_MAX_VALUE)
		return;
	pthread_mutex_lock(&ck->mu);
	for (size_t i = 0; i < CONSUL_SEEN_N && e == NULL; i++)
		if (ck->seen[i].key && strcmp(ck->seen[i].key, key) == 0)
			e = &ck->seen[i];
	if (e && e->mod_rev >= mod_rev) {
		pthread_mutex_unlock(&ck->mu);
		return;
	}
	if (e == NULL) {
		e = &ck->seen[ck->seen_next];
		ck->seen_next = (ck->seen_next + 1) % CONSUL_SEEN_N;
	}
	k = strdup(key);
	v = malloc(value_len + 1);
	consul_seen_clear(e);
	if (k && v) {
		memcpy(v, value ? value : "", value_len);
		v[value_len] = '\0';
		*e = (struct consul_seen){k, v, value_len, mod_rev, sid != NULL, ""};
		if (sid)
			snprintf(e->sid, sizeof(e->sid), "%s", sid);
	} else {
		free(k);
		free(v);
	}
	pthread_mutex_unlock(&ck->mu);
}

/* The ModifyIndex at which key was seen with exactly value, or 0. */
static int64_t consul_seen_index(struct consul_kv *ck, const char *key, const char *value,
                                 size_t value_len)
{
	int64_t idx = 0;

	pthread_mutex_lock(&ck->mu);
	for (size_t i = 0; i < CONSUL_SEEN_N; i++) {
		const struct consul_seen *e = &ck->seen[i];

		if (e->key && strcmp(e->key, key) == 0) {
			if (e->value_len == value_len &&
			    (value_len == 0 || memcmp(e->value, value, value_len) == 0))
				idx = e->mod_rev;
			break;
		}
	}
	pthread_mutex_unlock(&ck->mu);
	return idx;
}

/* Has this handle seen key lately (a guess that it exists)? */
static int consul_seen_has(struct consul_kv *ck, const char *key)
{
	int has = 0;

	pthread_mutex_lock(&ck->mu);
	for (size_t i = 0; i < CONSUL_SEEN_N && !has; i++)
		has = ck->seen[i].key && strcmp(ck->seen[i].key, key) == 0;
	pthread_mutex_unlock(&ck->mu);
	return has;
}

/* The session that holds key after this handle's last write of it, if this
 * handle wrote it last as far as it knows (1), else 0. */
static int consul_seen_sid(struct consul_kv *ck, const char *key, char *sid, size_t size)
{
	int known = 0;

	pthread_mutex_lock(&ck->mu);
	for (size_t i = 0; i < CONSUL_SEEN_N; i++)
		if (ck->seen[i].key && strcmp(ck->seen[i].key, key) == 0) {
			known = ck->seen[i].sid_known;
			snprintf(sid, size, "%s", ck->seen[i].sid);
			break;
		}
	pthread_mutex_unlock(&ck->mu);
	return known;
}

static void consul_seen_forget(struct consul_kv *ck, const char *key)
{
	pthread_mutex_lock(&ck->mu);
	for (size_t i = 0; i < CONSUL_SEEN_N; i++)
		if (ck->seen[i].key && strcmp(ck->seen[i].key, key) == 0)
			consul_seen_clear(&ck->seen[i]);
	pthread_mutex_unlock(&ck->mu);
}

/* Remember what a committed txn read (found keys) and wrote (set verbs). */
static void consul_seen_txn(struct consul_kv *ck, const struct consul_txn_op *ops, size_t nops,
                            const struct vf_kv_result *res)
{
	for (size_t i = 0; i < nops; i++) {
		if ((ops[i].verb == CONSUL_GET || ops[i].verb == CONSUL_GET_TREE) && res[i].found)
			consul_seen_put(ck, ops[i].key, res[i].pair.value, res[i].pair.value_len,
			                res[i].pair.mod_rev, NULL);
		else if ((ops[i].verb == CONSUL_SET || ops[i].verb == CONSUL_CAS ||
		          ops[i].verb == CONSUL_LOCK) &&
		         res[i].found)
			consul_seen_put(
			        ck, ops[i].key, ops[i].value, ops[i].value ? ops[i].value_len : 0,
			        res[i].pair.mod_rev,
			        ops[i].verb == CONSUL_LOCK && ops[i].session ? ops[i].session : "");
	}
}

/* ---- transactions ---- */

#define CONSUL_ROLLED_BACK 1

/* Send a txn. VF_OK: committed, res[nops] filled (caller clears). CONSUL_ROLLED_BACK:
 * *errs_r holds the reasons (caller frees). Else a vf error. */
static int consul_txn_send_wire(struct consul_kv *ck, const struct consul_txn_op *ops, size_t nops,
                                struct vf_kv_result *res, int64_t *rev_r,
                                struct consul_txn_error **errs_r, size_t *nerrs_r,
                                struct vf_err *err)
{
	struct vf_http_resp resp = {0};
	char *body = NULL;
	size_t len;
	int rc, write = 0;

	*errs_r = NULL;
	*nerrs_r = 0;
	for (size_t i = 0; i < nops; i++)
		write |= ops[i].verb == CONSUL_SET || ops[i].verb == CONSUL_DELETE ||
		         ops[i].verb == CONSUL_LOCK || ops[i].verb == CONSUL_UNLOCK ||
		         ops[i].verb == CONSUL_CAS;
	rc = consul_txn_build(ops, nops, &body, &len, err);
	if (rc != VF_OK)
		goto out;
	rc = consul_http(ck, "PUT", ck->consistent && !write ? "/v1/txn?consistent" : "/v1/txn",
	                 body, len, !write, 0, NULL, &resp, err);
	if (rc != VF_OK)
		goto out;
	if (resp.status == 200) {
		rc = consul_txn_results_parse(resp.body.data ? resp.body.data : "", resp.body.len,
		                              ops, nops, res, rev_r, err);
	} else if (resp.status == 409) {
		rc = consul_txn_errors_parse(resp.body.data ? resp.body.data : "", resp.body.len,
		                             errs_r, nerrs_r, err);
		if (rc == VF_OK)
			rc = CONSUL_ROLLED_BACK;
	} else {
		rc = consul_status_error(resp.status, resp.body.data, resp.body.len, write,
		                         nops ? ops[0].key : "txn", err);
		if (rc == VF_ENOTFOUND)
			rc = vf_err_set(err, VF_EPROTO, "txn %s: HTTP 404", ops[0].key);
	}
out:
	vf_http_resp_free(&resp);
	free(body);
	return rc;
}

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

/* A first guess from this handle's own last write of key: the session it left
 * holding the key (the manager's claim rewritten "done" after a put with its
 * lease needs no refuted guess). */
static void consul_bind_hint(struct consul_kv *ck, struct consul_bind *b, const char *key)
{
	char sid[64];

	if (b->noguard || !consul_seen_sid(ck, key, sid, sizeof(sid)))
		return;
	if (sid[0] == '\0') {
		if (b->sid == NULL)
			b->mode = CB_FREE;
	} else if (b->sid == NULL) {
		b->mode = CB_HELD;
		snprintf(b->held, sizeof(b->held), "%s", sid);
	} else if (strcmp(sid, b->sid) != 0) {
		b->mode = CB_REBIND;
		snprintf(b->held, sizeof(b->held), "%s", sid);
	}
}

/* The Session holding key now ("" if none or absent). */
static int consul_key_session(struct consul_kv *ck, const char *key, char *sid, size_t size,
                              struct vf_err *err)
{
	struct vf_http_resp resp = {0};
	struct vf_buf path = {0};
	int rc;

	sid[0] = '\0';
	if (consul_kv_path(&path, key, NULL) != VF_OK) {
		vf_buf_free(&path);
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	}
	rc = consul_http(ck, "GET", path.data, NULL, 0, 1, 0, NULL, &resp, err);
	if (rc == VF_OK && resp.status == 200) {
		rc = consul_get_session_parse(resp.body.data ? resp.body.data : "", resp.body.len,
		                              key, sid, size, err);
		if (rc == VF_ENOTFOUND)
			rc = VF_OK;
	} else if (rc == VF_OK && resp.status == 404 && resp.header == NULL) {
		rc = consul_not_consul(&resp, err);
	} else if (rc == VF_OK && resp.status != 404) {
		rc = consul_status_error(resp.status, resp.body.data, resp.body.len, 0, key, err);
	}
	vf_http_resp_free(&resp);
	vf_buf_free(&path);
	return rc;
}

/* The session named in a failed check-session answer: ... current session "S" != "" */
static int consul_what_session(const char *what, char *sid, size_t size)
{
	const char *p = strstr(what, "current session \"");
	const char *q;

	if (p == NULL)
		return 0;
	p += strlen("current session \"");
	q = strchr(p, '"');
	if (q == NULL || q == p || (size_t)(q - p) >= size)
		return 0;
	memcpy(sid, p, (size_t)(q - p));
	sid[q - p] = '\0';
	return 1;
}

/* Send ops (binds may be NULL: as they are), expanding bound puts as above and
 * resending while only the guesses of their modes failed. Results and errors
 * are reported at the caller's op indexes. */
static int consul_txn_send(struct consul_kv *ck, const struct consul_txn_op *ops, size_t nops,
                           struct consul_bind *binds, struct vf_kv_result *res, int64_t *rev_r,
                           struct consul_txn_error **errs_r, size_t *nerrs_r, struct vf_err *err)
{
	struct consul_txn_op *w = NULL;
	struct vf_kv_result *wres = NULL;
	size_t *owner = NULL, *back = NULL, nw = 0;
	int rc = VF_OK;

	if (binds == NULL)
		return consul_txn_send_wire(ck, ops, nops, res, rev_r, errs_r, nerrs_r, err);
	*errs_r = NULL;
	*nerrs_r = 0;
	w = calloc(2 * nops + 1, sizeof(*w));
	wres = calloc(2 * nops + 1, sizeof(*wres));
	owner = calloc(2 * nops + 1, sizeof(*owner));
	back = calloc(nops + 1, sizeof(*back));
	if (!w || !wres || !owner || !back) {
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
		goto out;
	}
	for (int attempt = 0;; attempt++) {
		struct consul_txn_error *werrs = NULL;
		size_t nwerrs = 0, nkeep = 0;
		int again = 0, foreign = 0;

		if (attempt == CONSUL_BIND_TRIES) {
			rc = vf_err_set(err, VF_ECONFLICT,
			                "%s: the key's session kept changing under the write",
			                nops ? ops[0].key : "txn");
			goto out;
		}
		nw = 0;
		for (size_t i = 0; i < nops; i++) {
			struct consul_bind *b = &binds[i];
			struct consul_txn_op fin = ops[i];

			if (b->put && b->mode == CB_FREE)
				owner[nw] = i,
				w[nw++] = (struct consul_txn_op){.verb = CONSUL_CHECK_SESSION,
				                                 .key = ops[i].key,
				                                 .session = ""};
			else if (b->put && b->mode == CB_ABSENT && !b->noguard)
				owner[nw] = i,
				w[nw++] = (struct consul_txn_op){.verb = CONSUL_CHECK_NOT_EXISTS,
				                                 .key = ops[i].key};
			else if (b->put && b->mode == CB_REBIND)
				owner[nw] = i,
				w[nw++] = (struct consul_txn_op){.verb = CONSUL_UNLOCK,
				                                 .key = ops[i].key,
				                                 .value = ops[i].value,
				                                 .value_len = ops[i].value_len,
				                                 .session = b->held};
			if (b->put && b->mode == CB_HELD) {
				fin.verb = CONSUL_UNLOCK;
				fin.session = b->held;
			} else if (b->put && b->sid) {
				fin.verb = CONSUL_LOCK;
				fin.session = b->sid;
			} else if (b->put) {
				fin.verb = CONSUL_SET;
				fin.session = NULL;
			}
			back[i] = nw;
			owner[nw] = i;
			w[nw++] = fin;
		}
		if (nw > CONSUL_MAX_TXN_OPS) {
			rc = vf_err_set(
			        err, VF_ELIMIT,
			        "txn %s: %zu ops with the guards of its puts exceed Consul's "
			        "limit of %d",
			        nops ? ops[0].key : "", nw, CONSUL_MAX_TXN_OPS);
			goto out;
		}
		memset(wres, 0, (2 * nops + 1) * sizeof(*wres));
		rc = consul_txn_send_wire(ck, w, nw, wres, rev_r, &werrs, &nwerrs, err);
		if (rc == VF_OK) {
			for (size_t i = 0; i < nops; i++) {
				res[i] = wres[back[i]];
				memset(&wres[back[i]], 0, sizeof(wres[0]));
			}
			vf_kv_results_clear(wres, nw);
			goto out;
		}
		if (rc != CONSUL_ROLLED_BACK)
			goto out;
		/* Which failures are wrong guesses of a put's mode? */
		for (size_t k = 0; k < nwerrs; k++) {
			struct consul_txn_error *e = &werrs[k];
			size_t i = e->op_index < nw ? owner[e->op_index] : nops;
			struct consul_bind *b = i < nops ? &binds[i] : NULL;
			int fin = i < nops && back[i] == e->op_index;
			char sid[64];

			if (b == NULL || !b->put) {
				foreign = 1;
			} else if (!fin && b->mode == CB_FREE) {
				if (strstr(e->what, "doesn't exist"))
					b->mode = CB_ABSENT, again = 1;
				else if (consul_what_session(e->what, sid, sizeof(sid)))
					snprintf(b->held, sizeof(b->held), "%s", sid),
					        b->mode = b->sid ? CB_REBIND : CB_HELD, again = 1;
				else
					foreign = 1;
			} else if (!fin && b->mode == CB_ABSENT && e->kind == CONSUL_FAIL_COMPARE) {
				b->mode = CB_FREE, again = 1;
			} else if ((b->mode == CB_HELD || (!fin && b->mode == CB_REBIND)) &&
			           e->kind == CONSUL_FAIL_NOT_HELD) {
				b->mode = b->sid ? CB_LOCK : CB_FREE, again = 1;
			} else if (fin && b->sid && e->kind == CONSUL_FAIL_LOCK_HELD) {
				rc = consul_key_session(ck, ops[i].key, sid, sizeof(sid), err);
				if (rc != VF_OK) {
					free(werrs);
					goto out;
				}
				if (sid[0] && strcmp(sid, b->sid) != 0) {
					snprintf(b->held, sizeof(b->held), "%s", sid);
					b->mode = CB_REBIND;
				} else {
					b->mode = CB_LOCK;
				}
				again = 1;
			} else {
				foreign = 1;
			}
		}
		if (!foreign && again) {
			vf_log(VF_LOG_DEBUG,
			       "consul: txn %s: a put's binding was guessed wrong (%s): resent",
			       ops[0].key, werrs[0].what);
			free(werrs);
			continue;
		}
		/* A real failure: report it at the caller's op indexes (the caller's own
		 * ops fail the same way whatever the guards said). */
		for (size_t k = 0; k < nwerrs; k++) {
			size_t i = werrs[k].op_index < nw ? owner[werrs[k].op_index] : nops;

			if (i < nops && binds[i].put && back[i] != werrs[k].op_index)
				continue; /* a guard */
			werrs[nkeep] = werrs[k];
			werrs[nkeep].op_index = i < nops ? i : 0;
			nkeep++;
		}
		if (nkeep == 0) { /* only guards failed, and not as guessed */
			werrs[0].op_index = owner[werrs[0].op_index];
			nkeep = 1;
		}
		*errs_r = werrs;
		*nerrs_r = nkeep;
		rc = CONSUL_ROLLED_BACK;
		goto out;
	}
out:
	free(w);
	free(wres);
	free(owner);
	free(back);
	return rc;
}

/* The vf code of a rolled-back txn, ignoring errors at ops where ignore[i] is set. */
static int consul_txn_fail_rc(const struct consul_txn_op *ops, const struct consul_txn_error *e,
                              size_t n, struct vf_err *err)
{
	const struct consul_txn_error *pick = NULL;
	int rank = -1;

	for (size_t i = 0; i < n; i++) {
		int r = e[i].kind == CONSUL_FAIL_BAD_SESSION ? 4
		        : e[i].kind == CONSUL_FAIL_DENIED    ? 3
		        : e[i].kind == CONSUL_FAIL_OTHER     ? 2
		                                             : 1;
		if (r > rank)
			rank = r, pick = &e[i];
	}
	if (pick == NULL)
		return vf_err_set(err, VF_EPROTO, "txn rolled back without a reason");
	const char *key = ops[pick->op_index].key;
	switch (pick->kind) {
	case CONSUL_FAIL_BAD_SESSION:
		return vf_err_set(err, VF_ELEASE, "%s: lease is gone (%s)", key, pick->what);
	case CONSUL_FAIL_DENIED:
		return vf_err_set(err, VF_EAUTH, "%s: Consul ACL refused it (%s): check the token",
		                  key, pick->what);
	case CONSUL_FAIL_OTHER:
		return vf_err_set(err, VF_EINVAL, "%s: Consul refused the txn: %s", key,
		                  pick->what);
	case CONSUL_FAIL_LOCK_HELD:
		return vf_err_set(err, VF_ECONFLICT, "%s: held by another lease", key);
	case CONSUL_FAIL_LOCK_DELAY:
		return vf_err_set(err, VF_EBUSY,
		                  "%s: refused for Consul's lock-delay after the session that held "
		                  "it ended; retry later",
		                  key);
	case CONSUL_FAIL_NOT_HELD:
	case CONSUL_FAIL_SESSION:
		return vf_err_set(err, VF_ECONFLICT, "%s: lock no longer held: %s", key,
		                  pick->what);
	default:
		return vf_err_set(err, VF_ECONFLICT, "%s: compare failed: %s", key, pick->what);
	}
}

/* Run ops, flipping reads of missing keys to check-not-exists (and back when
 * they exist again) until the txn commits or fails for another reason. Each
 * attempt is atomic on its own, so the committed one is a consistent read. */
static int consul_txn_run(struct consul_kv *ck, struct consul_txn_op *ops, size_t nops,
                          const int *is_read, struct consul_bind *binds, struct vf_kv_result *res,
                          int64_t *rev_r, struct consul_txn_error **errs_r, size_t *nerrs_r,
                          struct vf_err *err)
{
	int rc = VF_OK;

	for (int attempt = 0; attempt < CONSUL_TXN_RETRIES; attempt++) {
		int flip = 1;

		rc = consul_txn_send(ck, ops, nops, binds, res, rev_r, errs_r, nerrs_r, err);
		if (rc != CONSUL_ROLLED_BACK)
			return rc;
		for (size_t i = 0; i < *nerrs_r && flip; i++) {
			const struct consul_txn_error *e = &(*errs_r)[i];

			flip = e->op_index < nops && is_read[e->op_index] &&
			       ((e->kind == CONSUL_FAIL_MISSING &&
			         ops[e->op_index].verb == CONSUL_GET) ||
			        (e->kind == CONSUL_FAIL_COMPARE &&
			         ops[e->op_index].verb == CONSUL_CHECK_NOT_EXISTS));
		}
		if (!flip)
			return rc;
		for (size_t i = 0; i < *nerrs_r; i++) {
			struct consul_txn_op *op = &ops[(*errs_r)[i].op_index];

			op->verb = op->verb == CONSUL_GET ? CONSUL_CHECK_NOT_EXISTS : CONSUL_GET;
		}
		free(*errs_r);
		*errs_r = NULL;
		*nerrs_r = 0;
	}
	return vf_err_set(err, VF_ECONFLICT, "%s: reads kept changing under the txn",
	                  nops ? ops[0].key : "txn");
}

/* A txn whose outcome is all the caller needs; res may be NULL when no op
 * yields something the caller keeps. */
static int consul_txn_simple(struct consul_kv *ck, struct consul_txn_op *ops, size_t nops,
                             struct consul_bind *binds, struct vf_kv_result *res,
                             struct consul_txn_error **errs_r, size_t *nerrs_r, struct vf_err *err)
{
	struct vf_kv_result local[4];
	int is_read[4] = {0};
	int64_t rev;
	int rc;

	rc = consul_txn_run(ck, ops, nops, is_read, binds, res ? res : local, &rev, errs_r, nerrs_r,
	                    err);
	if (rc == VF_OK && res == NULL)
		vf_kv_results_clear(local, nops);
	return rc;
}

/* ---- KV ---- */

static int consul_get(struct vf_kv *kv, const char *key, struct vf_kv_pair *pair_r,
                      struct vf_err *err)
{
	struct consul_kv *ck = consul_of(kv);
	struct vf_http_resp resp = {0};
	struct vf_buf path = {0};
	int rc;

	memset(pair_r, 0, sizeof(*pair_r));
	rc = vf_kv_key_check(key, VF_KEY, "get", err);
	if (rc != VF_OK)
		return rc;
	if (consul_kv_path(&path, key, ck->consistent ? "?consistent" : NULL) != VF_OK) {
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
		goto out;
	}
	rc = consul_http(ck, "GET", path.data, NULL, 0, 1, 0, NULL, &resp, err);
	if (rc != VF_OK)
		goto out;
	if (resp.status == 200) {
		rc = consul_get_parse(resp.body.data ? resp.body.data : "", resp.body.len, key,
		                      pair_r, err);
		if (rc == VF_OK)
			consul_seen_put(ck, key, pair_r->value, pair_r->value_len, pair_r->mod_rev,
			                NULL);
	} else if (resp.status == 404 && resp.header == NULL)
		rc = consul_not_consul(&resp, err);
	else if (resp.status == 404)
		rc = vf_err_set(err, VF_ENOTFOUND, "key %s not found", key);
	else
		rc = consul_status_error(resp.status, resp.body.data, resp.body.len, 0, key, err);
out:
	vf_http_resp_free(&resp);
	vf_buf_free(&path);
	return rc;
}

/* Streamed answer of a listing: fed to the parser as it arrives; the start of
 * the body is kept for the error message of a non-200 answer. */
struct consul_stream {
	struct consul_lparse *p;
	char head[256];
	size_t nhead;
};

static size_t consul_stream_data(const char *data, size_t n, void *arg)
{
	struct consul_stream *st = arg;
	size_t k = sizeof(st->head) - 1 - st->nhead;

	if (k > n)
		k = n;
	memcpy(st->head + st->nhead, data, k);
	st->nhead += k;
	st->head[st->nhead] = '\0';
	consul_lparse_feed(st->p, data, n); /* a parse error is latched, reported at the end */
	return n;
}

/* List prefix; with index > 0 a blocking query waiting up to wait_ms. The
 * answer is parsed as it arrives (no copy of the body, no JSON tree); values
 * as in consul_lparse_new (old: the previous listing for CONSUL_VALUES_CHANGED). */
static int consul_list_ex(struct consul_kv *ck, const char *prefix, int64_t index, long wait_ms,
                          volatile int *cancel, const struct vf_kv_list *old,
                          enum consul_values values, struct vf_kv_list *list_r, struct vf_err *err)
{
	struct vf_http_resp resp = {0};
	struct vf_buf path = {0}, q = {0};
	struct consul_stream st = {0};
	struct vf_http_req req = {
	        .method = "GET",
	        .headers = ck->hdrs,
	        .idempotent = 1,
	        .want_header = "X-Consul-Index",
	        .on_data = consul_stream_data,
	        .arg = &st,
	        .cancel = cancel,
	};
	int rc;

	memset(list_r, 0, sizeof(*list_r));
	rc = vf_buf_printf(&q, "?recurse%s", ck->consistent ? "&consistent" : "");
	if (rc == VF_OK && index > 0) {
		rc = vf_buf_printf(&q, "&index=%" PRId64 "&wait=%ldms", index, wait_ms);
		/* Consul adds up to wait/16 of jitter. */
		req.timeout_ms = wait_ms + wait_ms / 16 + ck->timeout_ms;
		/* a server that hangs says nothing to a blocking query for its whole
		 * wait: leave it once other requests find it failing */
		req.leave_if_demoted = 1;
	} else {
		/* a plain listing answers at once: a server that hangs costs its
		 * share of the timeout, not all of it */
		req.stream_split = 1;
	}
	if (rc == VF_OK)
		rc = consul_kv_path(&path, prefix, q.data);
	if (rc != VF_OK) {
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
		goto out;
	}
	req.path = path.data;
	rc = consul_verify(ck, err);
	if (rc != VF_OK)
		goto out;
	/* After a lost answer vf_http asks the next endpoint, and the parser has
	 * then seen part of one answer and all of another: that cannot parse,
	 * so a 200 answer that does not parse is asked for once more. */
	for (int attempt = 0; attempt < 2; attempt++) {
		consul_lparse_free(st.p);
		vf_http_resp_free(&resp);
		st.p = NULL;
		st.nhead = 0;
		st.head[0] = '\0';
		if (consul_lparse_new(prefix, old, values, &st.p) != VF_OK) {
			rc = vf_err_set(err, VF_ENOMEM, "out of memory");
			goto out;
		}
		rc = vf_http_do(ck->http, &req, &resp, err);
		if (rc != VF_OK)
			goto out;
		if (resp.status != 200)
			break;
		rc = consul_lparse_finish(st.p, list_r, err);
		if (rc == VF_OK)
			break;
		vf_err_prefix(err, "list %s", prefix);
		if (rc != VF_EPROTO || (cancel && *cancel))
			goto out;
	}
	if (rc != VF_OK)
		goto out;
	if (resp.status == 404 && resp.header == NULL)
		rc = consul_not_consul(&resp, err);
	else if (resp.status != 200 && resp.status != 404) /* 404: nothing under prefix */
		rc = consul_status_error(resp.status, st.head, st.nhead, 0,
		                         *prefix ? prefix : "(all keys)", err);
	/* a stream gets no failover() from vf_http: a server that cannot serve
	 * (no leader, overloaded) is asked last from now on */
	if (rc != VF_OK && consul_failover_answer(resp.status, st.head, st.nhead, 1))
		vf_http_demote(ck->http, resp.endpoint);
	list_r->revision = consul_index_parse(resp.header);
out:
	consul_lparse_free(st.p);
	vf_http_resp_free(&resp);
	vf_buf_free(&path);
	vf_buf_free(&q);
	return rc;
}

static int consul_list(struct vf_kv *kv, const char *prefix, struct vf_kv_list *list_r,
                       struct vf_err *err)
{
	int rc = vf_kv_key_check(prefix, VF_KEY_PREFIX, "list", err);

	if (rc != VF_OK) {
		memset(list_r, 0, sizeof(*list_r));
		return rc;
	}
	return consul_list_ex(consul_of(kv), prefix, 0, 0, NULL, NULL, CONSUL_VALUES_ALL, list_r,
	                      err);
}

static int consul_lease_del_session(struct consul_kv *ck, struct consul_lease *cl, char *sid,
                                    struct vf_err *err);

/* put / cas: [compare?] + set (or lock by the lease's delete session). */
static int consul_write(struct consul_kv *ck, const char *key, const char *value, size_t value_len,
                        int cas, int64_t expect, struct vf_kv_lease *lease, int64_t *mod_rev_r,
                        struct vf_err *err)
{
	struct consul_txn_op ops[2];
	struct vf_kv_result res[2];
	struct consul_bind binds[2] = {{0}};
	struct consul_txn_error *errs = NULL;
	char sid[64] = "";
	size_t n = 0, nerrs;
	int rc;

	rc = vf_kv_key_check(key, VF_KEY, cas ? "cas" : "put", err);
	if (rc != VF_OK)
		return rc;
	if (lease) {
		rc = consul_lease_del_session(ck, (struct consul_lease *)lease, sid, err);
		if (rc != VF_OK)
			return vf_err_prefix(err, "put %s", key);
	}
	if (cas)
		ops[n++] = (struct consul_txn_op){.verb = expect ? CONSUL_CHECK_INDEX
		                                                 : CONSUL_CHECK_NOT_EXISTS,
		                                  .key = key,
		                                  .index = expect};
	binds[n] = (struct consul_bind){.put = 1,
	                                .sid = lease ? sid : NULL,
	                                .mode = lease ? CB_LOCK
	                                        : (cas && !expect) || !consul_seen_has(ck, key)
	                                                ? CB_ABSENT
	                                                : CB_FREE,
	                                .noguard = cas && !expect};
	consul_bind_hint(ck, &binds[n], key);
	ops[n++] = (struct consul_txn_op){.verb = lease ? CONSUL_LOCK : CONSUL_SET,
	                                  .key = key,
	                                  .value = value,
	                                  .value_len = value_len,
	                                  .session = lease ? sid : NULL};
	rc = consul_txn_simple(ck, ops, n, binds, res, &errs, &nerrs, err);
	if (rc == VF_OK) {
		consul_seen_put(ck, key, value, value ? value_len : 0, res[n - 1].pair.mod_rev,
		                lease ? sid : "");
		if (mod_rev_r)
			*mod_rev_r = res[n - 1].pair.mod_rev;
		vf_kv_results_clear(res, n);
	} else if (rc == CONSUL_ROLLED_BACK) {
		rc = consul_txn_fail_rc(ops, errs, nerrs, err);
	}
	free(errs);
	return rc;
}

static int consul_put(struct vf_kv *kv, const char *key, const char *value, size_t value_len,
                      struct vf_kv_lease *lease, int64_t *mod_rev_r, struct vf_err *err)
{
	return consul_write(consul_of(kv), key, value, value_len, 0, 0, lease, mod_rev_r, err);
}

static int consul_cas(struct vf_kv *kv, const char *key, const char *value, size_t value_len,
                      int64_t expect, struct vf_kv_lease *lease, int64_t *mod_rev_r,
                      struct vf_err *err)
{
	return consul_write(consul_of(kv), key, value, value_len, 1, expect, lease, mod_rev_r, err);
}

/* del: [get, delete] in one txn, so a missing key is VF_ENOTFOUND (Consul's DELETE
 * says true for missing keys). cas_del: [check-index, delete] (delete-cas says
 * true for a missing key). */
static int consul_delete(struct consul_kv *ck, const char *key, int cas, int64_t expect,
                         struct vf_err *err)
{
	struct consul_txn_op ops[2];
	struct consul_txn_error *errs = NULL;
	size_t n = 0, nerrs;
	int rc;

	rc = vf_kv_key_check(key, VF_KEY, cas ? "cas_del" : "del", err);
	if (rc != VF_OK)
		return rc;
	if (!cas)
		ops[n++] = (struct consul_txn_op){.verb = CONSUL_GET, .key = key};
	else
		ops[n++] = (struct consul_txn_op){.verb = expect ? CONSUL_CHECK_INDEX
		                                                 : CONSUL_CHECK_NOT_EXISTS,
		                                  .key = key,
		                                  .index = expect};
	if (!cas || expect)
		ops[n++] = (struct consul_txn_op){.verb = CONSUL_DELETE, .key = key};
	rc = consul_txn_simple(ck, ops, n, NULL, NULL, &errs, &nerrs, err);
	if (rc == VF_OK)
		consul_seen_forget(ck, key);
	/* kv.h: cas_del(key, 0) of an absent key deleted nothing: VF_ENOTFOUND, as etcd */
	if (rc == VF_OK && cas && expect == 0)
		rc = vf_err_set(err, VF_ENOTFOUND, "cas_del %s: no such key", key);
	if (rc == CONSUL_ROLLED_BACK) {
		if (!cas && nerrs && errs[0].kind == CONSUL_FAIL_MISSING)
			rc = vf_err_set(err, VF_ENOTFOUND, "key %s not found", key);
		else
			rc = consul_txn_fail_rc(ops, errs, nerrs, err);
	}
	free(errs);
	return rc;
}

static int consul_del(struct vf_kv *kv, const char *key, struct vf_err *err)
{
	return consul_delete(consul_of(kv), key, 0, 0, err);
}

static int consul_cas_del(struct vf_kv *kv, const char *key, int64_t expect, struct vf_err *err)
{
	return consul_delete(consul_of(kv), key, 1, expect, err);
}

/* VF_CMP_VALUE_EQ: Consul has no value compare. Read the key, compare the value
 * here, and guard the txn with check-index on the ModifyIndex read: atomic,
 * since the index changes with any write. Costs one extra round trip per
 * VALUE_EQ compare, unless the value was seen (consul_cmps_ops). */
static int consul_value_eq_index(struct consul_kv *ck, const struct vf_kv_cmp *c, int64_t *index_r,
                                 struct vf_err *err)
{
	struct vf_kv_pair p;
	int rc = consul_get(&ck->base, c->key, &p, err);

	if (rc == VF_ENOTFOUND)
		return vf_err_set(err, VF_ECONFLICT, "%s: compare failed: key absent", c->key);
	if (rc != VF_OK)
		return rc;
	if (p.value_len != c->value_len ||
	    (c->value_len && memcmp(p.value, c->value, c->value_len)))
		rc = vf_err_set(err, VF_ECONFLICT, "%s: compare failed: value differs", c->key);
	*index_r = p.mod_rev;
	vf_kv_pair_clear(&p);
	return rc;
}

/* The store key of the lock called name: "name/.lock" (kv.h), malloc'ed. */
static char *consul_lock_key(const char *name)
{
	char *k = NULL;

	if (name == NULL || asprintf(&k, "%s/.lock", name) < 0)
		return NULL;
	return k;
}

/* Does a compare of the txn require the key of put vops[i] absent, with no
 * earlier op writing it (so the put needs no guard: an absent key has no
 * session)? */
static int consul_txn_put_absent(const struct vf_kv_cmp *cmps, size_t ncmp,
                                 const struct vf_kv_op *vops, size_t i)
{
	const char *key = vops[i].key;
	int absent = 0;

	for (size_t j = 0; j < ncmp && !absent; j++)
		absent = cmps[j].key && strcmp(cmps[j].key, key) == 0 &&
		         (cmps[j].kind == VF_CMP_ABSENT ||
		          (cmps[j].kind == VF_CMP_VERSION_EQ && cmps[j].mod_rev == 0));
	for (size_t j = 0; j < i && absent; j++)
		if (vops[j].key && strcmp(vops[j].key, key) == 0)
			absent = 0;
	return absent;
}

/* Translate the caller's compares into ops[0..ncmp): check-index /
 * check-not-exists / check-session. VALUE_EQ: check-index at the index where
 * this handle last saw the key with that value (guessed[i] = 1), else one read
 * here (see above). */
static int consul_cmps_ops(struct consul_kv *ck, const struct vf_kv_cmp *cmps, size_t ncmp,
                           struct consul_txn_op *ops, int *guessed, char **lkeys,
                           struct vf_err *err)
{
	int rc = VF_OK;

	for (size_t i = 0; i < ncmp && rc == VF_OK; i++) {
		const struct vf_kv_cmp *c = &cmps[i];
		struct consul_txn_op *op = &ops[i];
		const struct consul_lock *lk = (const struct consul_lock *)c->lock;

		op->key = c->key;
		switch (c->kind) {
		case VF_CMP_VALUE_EQ:
			op->verb = CONSUL_CHECK_INDEX;
			guessed[i] = 0;
			if (c->key)
				op->index = consul_seen_index(ck, c->key, c->value, c->value_len);
			if (op->index > 0)
				guessed[i] = 1;
			else if (c->key)
				rc = consul_value_eq_index(ck, c, &op->index, err);
			break;
		case VF_CMP_VERSION_EQ:
			op->verb = c->mod_rev ? CONSUL_CHECK_INDEX : CONSUL_CHECK_NOT_EXISTS;
			op->index = c->mod_rev;
			break;
		case VF_CMP_ABSENT:
			op->verb = CONSUL_CHECK_NOT_EXISTS;
			break;
		case VF_CMP_LOCK_HELD:
			if (lk == NULL) {
				rc = vf_err_set(err, VF_EINVAL, "txn: lock compare without a lock");
				break;
			}
			op->verb = CONSUL_CHECK_SESSION;
			op->key = lk->base.key;
			op->session = lk->sid;
			if (lk->released)
				rc = vf_err_set(err, VF_ECONFLICT, "%s: lock already released",
				                lk->base.key);
			break;
		case VF_CMP_LOCK_FREE:
			/* the lock key exists and no session holds it (check-session with
			 * the empty session; an absent key fails: it was never locked,
			 * so the caller takes the lock the usual way once) */
			op->verb = CONSUL_CHECK_SESSION;
			op->session = "";
			op->key = lkeys[i] = consul_lock_key(c->key);
			if (c->key && op->key == NULL)
				rc = vf_err_set(err, VF_ENOMEM, "out of memory");
			break;
		default:
			rc = vf_err_set(err, VF_EINVAL, "txn: unknown compare kind %d", c->kind);
		}
		if (rc == VF_OK && op->key == NULL)
			rc = vf_err_set(err, VF_EINVAL, "txn: compare %zu without a key", i);
	}
	return rc;
}

/* A rolled-back txn whose failures are all check-index ops guessed from values
 * seen, or reads of keys that appeared or vanished (is_read, flipped here as
 * consul_txn_run does), with at least one guess: forget the guesses, read
 * those keys (consul_value_eq_index) and return VF_OK to send again;
 * CONSUL_ROLLED_BACK when some other op failed (the caller maps errs); else the
 * read's error (VF_ECONFLICT: the value differs). */
static int consul_cmps_reguess(struct consul_kv *ck, const struct vf_kv_cmp *cmps, size_t ncmp,
                               struct consul_txn_op *ops, size_t nops, const int *is_read,
                               int *guessed, const struct consul_txn_error *errs, size_t nerrs,
                               struct vf_err *err)
{
	int rc = VF_OK, any = 0;

	for (size_t i = 0; i < nerrs; i++) {
		size_t j = errs[i].op_index;

		if (j >= nops)
			return CONSUL_ROLLED_BACK;
		if (j < ncmp && guessed[j] &&
		    (errs[i].kind == CONSUL_FAIL_COMPARE || errs[i].kind == CONSUL_FAIL_MISSING))
			any = 1;
		else if (!(is_read[j] &&
		           ((errs[i].kind == CONSUL_FAIL_MISSING && ops[j].verb == CONSUL_GET) ||
		            (errs[i].kind == CONSUL_FAIL_COMPARE &&
		             ops[j].verb == CONSUL_CHECK_NOT_EXISTS))))
			return CONSUL_ROLLED_BACK;
	}
	if (!any)
		return CONSUL_ROLLED_BACK;
	for (size_t i = 0; i < nerrs && rc == VF_OK; i++) {
		size_t j = errs[i].op_index;

		if (is_read[j]) {
			ops[j].verb =
			        ops[j].verb == CONSUL_GET ? CONSUL_CHECK_NOT_EXISTS : CONSUL_GET;
		} else if (guessed[j]) {
			guessed[j] = 0;
			consul_seen_forget(ck, cmps[j].key);
			rc = consul_value_eq_index(ck, &cmps[j], &ops[j].index, err);
		}
	}
	return rc;
}

/* Run a txn whose compares came from consul_cmps_ops; while it rolls back only
 * on check-index guesses (consul_cmps_reguess), re-read those keys and run it
 * again. Returns VF_OK, CONSUL_ROLLED_BACK with the failures in *errs_r (the
 * caller frees them), or an error. */
static int consul_txn_run_reguess(struct consul_kv *ck, const struct vf_kv_cmp *cmps, size_t ncmp,
                                  struct consul_txn_op *ops, size_t nops, const int *is_read,
                                  struct consul_bind *binds, int *guessed, struct vf_kv_result *res,
                                  int64_t *rev_r, struct consul_txn_error **errs_r, size_t *nerrs_r,
                                  struct vf_err *err)
{
	for (;;) {
		int rc, rg;

		rc = consul_txn_run(ck, ops, nops, is_read, binds, res, rev_r, errs_r, nerrs_r,
		                    err);
		if (rc != CONSUL_ROLLED_BACK)
			return rc;
		rg = consul_cmps_reguess(ck, cmps, ncmp, ops, nops, is_read, guessed, *errs_r,
		                         *nerrs_r, err);
		if (rg == CONSUL_ROLLED_BACK)
			return rc;
		free(*errs_r);
		*errs_r = NULL;
		*nerrs_r = 0;
		if (rg != VF_OK)
			return rg;
	}
}

static int consul_txn(struct vf_kv *kv, const struct vf_kv_cmp *cmps, size_t ncmp,
                      const struct vf_kv_op *vops, size_t nops, struct vf_kv_txn_result *res_r,
                      struct vf_err *err)
{
	struct consul_kv *ck = consul_of(kv);
	size_t n = ncmp + nops, nerrs = 0;
	struct consul_txn_op *ops = NULL;
	struct vf_kv_result *res = NULL;
	struct consul_txn_error *errs = NULL;
	char(*sids)[64] = NULL;
	char **lkeys = NULL;
	struct consul_bind *binds = NULL;
	int *is_read = NULL, *guessed = NULL;
	int64_t rev = 0;
	int rc = VF_OK;

	if (res_r)
		memset(res_r, 0, sizeof(*res_r));
	if (n > CONSUL_TXN_OPS_ADVERTISED)
		return vf_err_set(
		        err, VF_ELIMIT,
		        "txn of %zu compares and ops exceeds the Consul driver's limit of "
		        "%d (Consul's %d, a put may take two)",
		        n, CONSUL_TXN_OPS_ADVERTISED, CONSUL_MAX_TXN_OPS);
	if (n == 0)
		return VF_OK;
	rc = vf_kv_txn_keys_check(cmps, ncmp, vops, nops, err);
	if (rc != VF_OK)
		return rc;
	lkeys = calloc(ncmp + 1, sizeof(*lkeys));
	binds = calloc(n, sizeof(*binds));
	ops = calloc(n, sizeof(*ops));
	res = calloc(n, sizeof(*res));
	is_read = calloc(n, sizeof(*is_read));
	guessed = calloc(n, sizeof(*guessed));
	sids = calloc(n, sizeof(*sids));
	if (!ops || !res || !is_read || !guessed || !sids || !lkeys || !binds) {
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
		goto out;
	}
	rc = consul_cmps_ops(ck, cmps, ncmp, ops, guessed, lkeys, err);
	for (size_t i = 0; i < nops && rc == VF_OK; i++) {
		const struct vf_kv_op *o = &vops[i];
		struct consul_txn_op *op = &ops[ncmp + i];
		const struct consul_lock *lk = (const struct consul_lock *)o->lock;

		op->key = o->key;
		switch (o->kind) {
		case VF_OP_PUT:
			op->verb = o->lease ? CONSUL_LOCK : CONSUL_SET;
			op->value = o->value;
			op->value_len = o->value_len;
			if (o->lease) {
				rc = consul_lease_del_session(ck, (struct consul_lease *)o->lease,
				                              sids[ncmp + i], err);
				op->session = sids[ncmp + i];
			}
			binds[ncmp + i] =
			        (struct consul_bind){.put = 1,
			                             .sid = o->lease ? sids[ncmp + i] : NULL,
			                             .mode = o->lease ? CB_LOCK : CB_FREE};
			if (!o->lease && consul_txn_put_absent(cmps, ncmp, vops, i)) {
				binds[ncmp + i].mode = CB_ABSENT;
				binds[ncmp + i].noguard = 1;
			} else if (!o->lease && o->key && !consul_seen_has(ck, o->key)) {
				binds[ncmp + i].mode = CB_ABSENT;
			}
			if (o->key)
				consul_bind_hint(ck, &binds[ncmp + i], o->key);
			break;
		case VF_OP_DELETE:
			op->verb = CONSUL_DELETE;
			break;
		case VF_OP_GET:
			is_read[ncmp + i] = 1;
			break;
		case VF_OP_UNLOCK:
			if (lk == NULL) {
				rc = vf_err_set(err, VF_EINVAL, "txn: unlock without a lock");
				break;
			}
			op->verb = CONSUL_UNLOCK;
			op->key = lk->base.key;
			op->session = lk->sid;
			op->value = ck->holder;
			op->value_len = strlen(ck->holder);
			break;
		default:
			rc = vf_err_set(err, VF_EINVAL, "txn: unknown op kind %d", o->kind);
		}
		if (rc == VF_OK && op->key == NULL)
			rc = vf_err_set(err, VF_EINVAL, "txn: op %zu without a key", i);
	}
	if (rc != VF_OK)
		goto out;
	consul_choose_read_verbs(ops, n, is_read);
	rc = consul_txn_run_reguess(ck, cmps, ncmp, ops, n, is_read, binds, guessed, res, &rev,
	                            &errs, &nerrs, err);
	if (rc == CONSUL_ROLLED_BACK) {
		rc = consul_txn_fail_rc(ops, errs, nerrs, err);
		goto out;
	}
	if (rc != VF_OK)
		goto out;
	consul_seen_txn(ck, ops, n, res);
	for (size_t i = 0; i < nops; i++)
		if (vops[i].kind == VF_OP_UNLOCK)
			((struct consul_lock *)vops[i].lock)->released = 1;
	if (res_r) {
		res_r->results = calloc(nops ? nops : 1, sizeof(*res_r->results));
		if (res_r->results == NULL) {
			rc = vf_err_set(err, VF_ENOMEM, "out of memory");
			goto out;
		}
		for (size_t i = 0; i < nops; i++) {
			res_r->results[i] = res[ncmp + i];
			memset(&res[ncmp + i], 0, sizeof(res[0]));
			if (vops[i].kind != VF_OP_GET && vops[i].kind != VF_OP_PUT) {
				vf_kv_pair_clear(&res_r->results[i].pair);
				res_r->results[i].found = 0;
			}
		}
		res_r->count = nops;
		res_r->revision = rev;
	}
out:
	if (res)
		vf_kv_results_clear(res, n);
	free(res);
	free(ops);
	free(is_read);
	free(guessed);
	free(sids);
	free(errs);
	for (size_t i = 0; lkeys && i < ncmp; i++)
		free(lkeys[i]);
	free(lkeys);
	free(binds);
	return rc;
}

/* ---- sessions (leases) ---- */

/* The node new sessions are bound to, into node ("": the agent's own).
 *
 * A session is bound to a catalog node, by default the node of the agent that
 * created it. When the other servers mark that node failed (its agent stopped,
 * paused or cut off), Consul ends every session bound to it, whatever the
 * session's checks, although the servers that hold quorum still answer and the
 * session is renewed through them. So sessions go to a node of their own
 * (consul.session_node, registered here once per handle through the catalog,
 * without checks: no agent runs it, no serf failure ends it, and the leader's
 * reconciliation leaves nodes without a serfHealth check alone): the TTL alone
 * decides. A token refused the registration (ACL: it needs node "<name>"
 * { policy = "write" }) falls back to the agent's node, with a warning. */
static int consul_session_node(struct consul_kv *ck, char *node, size_t size, struct vf_err *err)
{
	struct vf_http_resp resp = {0};
	char *body = NULL;
	size_t len;
	int state, rc;

	node[0] = '\0';
	if (ck->session_node == NULL)
		return VF_OK;
	pthread_mutex_lock(&ck->mu);
	state = ck->snode;
	pthread_mutex_unlock(&ck->mu);
	if (state < 0)
		return VF_OK;
	if (state == 0) {
		rc = consul_node_register_body(ck->session_node, &body, &len, err);
		/* idempotent: registering the same node again changes nothing */
		if (rc == VF_OK)
			rc = consul_http(ck, "PUT", "/v1/catalog/register", body, len, 1, 0, NULL,
			                 &resp, err);
		if (rc == VF_OK && resp.status == 403) {
			struct vf_err e = {0};

			consul_status_error(resp.status, resp.body.data, resp.body.len, 1,
			                    "catalog register", &e);
			vf_log(VF_LOG_WARN,
			       "consul: cannot register the session node \"%s\" (%s): sessions are "
			       "bound to the agent's node instead, and end when the servers mark "
			       "it failed; grant the token node \"%s\" { policy = \"write\" }",
			       ck->session_node, e.msg, ck->session_node);
			state = -1;
		} else if (rc == VF_OK && resp.status != 200) {
			rc = consul_status_error(resp.status, resp.body.data, resp.body.len, 1,
			                         "catalog register", err);
		} else if (rc == VF_OK) {
			state = 1;
		}
		vf_http_resp_free(&resp);
		free(body);
		if (rc != VF_OK)
			return vf_err_prefix(err, "session node %s", ck->session_node);
		pthread_mutex_lock(&ck->mu);
		if (ck->snode >= 0)
			ck->snode = state;
		state = ck->snode;
		pthread_mutex_unlock(&ck->mu);
	}
	if (state > 0)
		snprintf(node, size, "%s", ck->session_node);
	return VF_OK;
}

/* Forget the session node's state: register it again (1: it vanished from the
 * catalog) or give it up (-1: the token may not bind sessions to it). */
static void consul_session_node_reset(struct consul_kv *ck, int state)
{
	pthread_mutex_lock(&ck->mu);
	if (ck->snode >= 0)
		ck->snode = state;
	pthread_mutex_unlock(&ck->mu);
}

static int consul_session_create(struct consul_kv *ck, int ttl_s, const char *behavior, char *id,
                                 size_t idsz, struct vf_err *err)
{
	struct vf_http_resp resp = {0};
	char name[192], node[128], *body = NULL;
	size_t len;
	unsigned long seq;
	int rc;

	pthread_mutex_lock(&ck->mu);
	seq = ++ck->seq;
	pthread_mutex_unlock(&ck->mu);
	snprintf(name, sizeof(name), "vfile-%s-%s-%lu", ck->holder, behavior, seq);
	for (int attempt = 0;; attempt++) {
		rc = consul_session_node(ck, node, sizeof(node), err);
		if (rc != VF_OK)
			goto out;
		rc = consul_session_body(name, ttl_s, behavior, ck->lock_delay_ms, node, &body,
		                         &len, err);
		if (rc != VF_OK)
			goto out;
		rc = consul_http(ck, "PUT", "/v1/session/create", body, len, 0, 0, NULL, &resp,
		                 err);
		free(body);
		body = NULL;
		if (rc != VF_OK)
			goto out;
		if (resp.status == 200 || node[0] == '\0' || attempt > 0)
			break;
		if (resp.status == 403) {
			vf_log(VF_LOG_WARN,
			       "consul: a session on node \"%s\" was refused (ACL: the token needs "
			       "session \"%s\" { policy = \"write\" }): sessions are bound to the "
			       "agent's node instead, and end when the servers mark it failed",
			       node, node);
			consul_session_node_reset(ck, -1);
		} else if (resp.body.data &&
		           memmem(resp.body.data, resp.body.len, "Missing node registration",
		                  strlen("Missing node registration"))) {
			/* someone removed the node from the catalog: register it again */
			consul_session_node_reset(ck, 0);
		} else {
			break;
		}
		vf_http_resp_free(&resp);
	}
	if (resp.status == 200)
		rc = consul_session_create_parse(resp.body.data ? resp.body.data : "",
		                                 resp.body.len, id, idsz, err);
	else
		rc = consul_status_error(resp.status, resp.body.data, resp.body.len, 1,
		                         "session create", err);
out:
	vf_http_resp_free(&resp);
	free(body);
	return rc;
}

static int consul_session_destroy(struct consul_kv *ck, const char *id, struct vf_err *err)
{
	struct vf_http_resp resp = {0};
	char path[128];
	int rc;

	snprintf(path, sizeof(path), "/v1/session/destroy/%s", id);
	rc = consul_http(ck, "PUT", path, NULL, 0, 1, 0, NULL, &resp, err);
	if (rc == VF_OK && resp.status != 200)
		rc = consul_status_error(resp.status, resp.body.data, resp.body.len, 1, path, err);
	vf_http_resp_free(&resp);
	return rc;
}

/* VF_ELEASE when the session is gone; *ttl_r = the TTL Consul answered. */
static int consul_session_renew(struct consul_kv *ck, const char *id, int64_t left_ms, int *ttl_r,
                                struct vf_err *err)
{
	struct vf_http_resp resp = {0};
	char path[128];
	long tmo = 0; /* the handle's timeout */
	int rc;

	if (left_ms < ck->timeout_ms)
		tmo = left_ms > 100 ? (long)left_ms : 100;
	snprintf(path, sizeof(path), "/v1/session/renew/%s", id);
	rc = consul_http(ck, "PUT", path, NULL, 0, 1, tmo, NULL, &resp, err);
	if (rc != VF_OK)
		goto out;
	if (resp.status == 200)
		rc = consul_session_ttl_parse(resp.body.data ? resp.body.data : "", resp.body.len,
		                              ttl_r, err);
	else
		rc = consul_status_error(resp.status, resp.body.data, resp.body.len, 0,
		                         "session renew", err);
	if (rc == VF_ENOTFOUND)
		rc = vf_err_set(err, VF_ELEASE, "lease %s is gone (session expired or destroyed)",
		                id);
out:
	vf_http_resp_free(&resp);
	return rc;
}

static int consul_lease_del_session(struct consul_kv *ck, struct consul_lease *cl, char *sid,
                                    struct vf_err *err)
{
	char id[64];
	int rc;

	pthread_mutex_lock(&ck->mu);
	snprintf(sid, 64, "%s", cl->del_id);
	pthread_mutex_unlock(&ck->mu);
	if (*sid)
		return VF_OK;
	rc = consul_session_create(ck, cl->base.ttl_s, "delete", id, sizeof(id), err);
	if (rc != VF_OK)
		return rc;
	pthread_mutex_lock(&ck->mu);
	if (cl->del_id[0] == '\0') {
		snprintf(cl->del_id, sizeof(cl->del_id), "%s", id);
		id[0] = '\0';
	}
	snprintf(sid, 64, "%s", cl->del_id);
	pthread_mutex_unlock(&ck->mu);
	if (id[0]) /* lost a race with another thread: drop ours */
		consul_session_destroy(ck, id, NULL);
	return VF_OK;
}

/* Renew both sessions of a lease, each request bounded by left_ms (> 0) and
 * the handle's timeout. */
static int consul_lease_renew(struct consul_kv *ck, struct consul_lease *cl, int64_t left_ms,
                              int *ttl_r, struct vf_err *err)
{
	char del_id[64];
	int ttl2 = 0, rc;
	int64_t t0 = vf_now_ms();

	pthread_mutex_lock(&ck->mu);
	snprintf(del_id, sizeof(del_id), "%s", cl->del_id);
	pthread_mutex_unlock(&ck->mu);
	rc = consul_session_renew(ck, cl->base.id, left_ms, ttl_r, err);
	if (rc == VF_OK && del_id[0])
		rc = consul_session_renew(ck, del_id, left_ms - (vf_now_ms() - t0), &ttl2, err);
	if (rc == VF_OK && ttl2 && ttl2 < *ttl_r)
		*ttl_r = ttl2;
	return rc;
}

static void *consul_keepalive_main(void *arg)
{
	struct consul_kv *ck = arg;

	pthread_mutex_lock(&ck->mu);
	while (!ck->ka_stop) {
		struct consul_lease *due = NULL;
		int64_t now = vf_now_ms(), next = now + 60000;

		for (struct consul_lease *l = ck->leases; l; l = l->next) {
			if (l->gone || (l->flags & VF_LEASE_MANUAL))
				continue;
			if (l->next_ms <= now) {
				due = l;
				break;
			}
			if (l->next_ms < next)
				next = l->next_ms;
		}
		if (due == NULL) {
			vf_cond_wait_until(&ck->cv, &ck->mu, next);
			continue;
		}
		due->busy = 1;
		pthread_mutex_unlock(&ck->mu);

		struct vf_err e = {0};
		int64_t started = vf_now_ms();
		int64_t deadline = due->confirmed_ms + (int64_t)due->base.ttl_s * 1000;
		int ttl = 0, rc = consul_lease_renew(ck, due, deadline - started, &ttl, &e);

		pthread_mutex_lock(&ck->mu);
		if (rc == VF_OK) {
			if (ttl > 0)
				due->base.ttl_s = ttl;
			due->confirmed_ms = started;
			due->next_ms = vf_now_ms() + (int64_t)due->base.ttl_s * 500;
		} else if (rc != VF_ELEASE && vf_now_ms() >= deadline) {
			/* kv.h: the store may have ended it by now: report it lost. */
			char last[128];

			snprintf(last, sizeof(last), "%.120s", e.msg);
			vf_err_set(&e, VF_ELEASE,
			           "no renewal confirmed for its TTL of %d s (last error: %s)",
			           due->base.ttl_s, last);
			rc = VF_ELEASE;
		}
		if (rc == VF_ELEASE) {
			vf_kv_lease_lost_fn fn = due->lost;
			void *fa = due->arg;
			char id[64], other[64];

			due->gone = 1;
			snprintf(id, sizeof(id), "%s", due->base.id);
			snprintf(other, sizeof(other), "%s", due->del_id);
			pthread_mutex_unlock(&ck->mu);
			vf_log(VF_LOG_WARN, "consul: lease %s lost: %s", id, e.msg);
			/* busy stays set while fn runs: lease_revoke() from another thread
			 * waits, from fn itself it leaves the free to us. fn first: the
			 * store may be unreachable, and the loss is due now. */
			if (fn)
				fn(&due->base, fa);
			/* Make the loss whole: end both sessions (if the store still
			 * has them). */
			consul_session_destroy(ck, id, NULL);
			if (other[0])
				consul_session_destroy(ck, other, NULL);
			pthread_mutex_lock(&ck->mu);
			due->busy = 0;
			if (due->revoked)
				free(due);
			pthread_cond_broadcast(&ck->cv);
			continue;
		}
		due->busy = 0;
		if (rc != VF_OK) {
			int64_t retry = vf_now_ms() + 1000;

			vf_log(VF_LOG_WARN, "consul: lease %s: renewal failed, retrying: %s",
			       due->base.id, e.msg);
			due->next_ms = retry < deadline ? retry : deadline;
		}
		pthread_cond_broadcast(&ck->cv);
	}
	pthread_mutex_unlock(&ck->mu);
	return NULL;
}

static int consul_lease_grant(struct vf_kv *kv, int ttl_s, unsigned int flags,
                              vf_kv_lease_lost_fn lost, void *arg, struct vf_kv_lease **lease_r,
                              struct vf_err *err)
{
	struct consul_kv *ck = consul_of(kv);
	struct consul_lease *cl;
	int64_t t_grant;
	int rc;

	*lease_r = NULL;
	if (ttl_s <= 0 && ck->session_ttl_s > 0)
		ttl_s = ck->session_ttl_s;
	if (ttl_s < CONSUL_MIN_TTL_S || ttl_s > CONSUL_MAX_TTL_S)
		return vf_err_set(
		        err, VF_EINVAL,
		        "lease TTL %d s refused: Consul session TTLs must be between %d s "
		        "(minimum) and %d s",
		        ttl_s, CONSUL_MIN_TTL_S, CONSUL_MAX_TTL_S);
	cl = calloc(1, sizeof(*cl));
	if (cl == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	t_grant = vf_now_ms();
	rc = consul_session_create(ck, ttl_s, "release", cl->base.id, sizeof(cl->base.id), err);
	if (rc != VF_OK) {
		free(cl);
		return vf_err_prefix(err, "lease grant");
	}
	cl->base.ttl_s = ttl_s;
	cl->flags = flags;
	cl->lost = lost;
	cl->arg = arg;
	cl->next_ms = vf_now_ms() + (int64_t)ttl_s * 500;
	cl->confirmed_ms = t_grant;
	pthread_mutex_lock(&ck->mu);
	cl->next = ck->leases;
	ck->leases = cl;
	if (!(flags & VF_LEASE_MANUAL) && !ck->ka_started) {
		if (pthread_create(&ck->ka_thread, NULL, consul_keepalive_main, ck) == 0)
			ck->ka_started = 1;
		else
			rc = vf_err_set(err, VF_ENOMEM, "cannot start the keep-alive thread");
	}
	pthread_cond_broadcast(&ck->cv);
	pthread_mutex_unlock(&ck->mu);
	if (rc != VF_OK) {
		struct vf_kv_lease *l = &cl->base;
		kv->ops->lease_revoke(kv, &l, NULL);
		return rc;
	}
	*lease_r = &cl->base;
	return VF_OK;
}

static int consul_lease_keepalive(struct vf_kv *kv, struct vf_kv_lease *lease, struct vf_err *err)
{
	struct consul_kv *ck = consul_of(kv);
	struct consul_lease *cl = (struct consul_lease *)lease;
	int64_t started = vf_now_ms();
	int ttl = 0, rc = consul_lease_renew(ck, cl, ck->timeout_ms, &ttl, err);

	pthread_mutex_lock(&ck->mu);
	if (rc == VF_OK) {
		if (ttl > 0)
			cl->base.ttl_s = ttl;
		cl->confirmed_ms = started;
		cl->next_ms = vf_now_ms() + (int64_t)cl->base.ttl_s * 500;
	}
	pthread_mutex_unlock(&ck->mu);
	return rc;
}

static int consul_lease_revoke(struct vf_kv *kv, struct vf_kv_lease **lease, struct vf_err *err)
{
	struct consul_kv *ck = consul_of(kv);
	struct consul_lease *cl = (struct consul_lease *)*lease;
	int rc = VF_OK;

	if (cl == NULL)
		return VF_OK;
	*lease = NULL;
	pthread_mutex_lock(&ck->mu);
	/* The keep-alive thread renews it or runs its lost callback: wait, unless
	 * this is that thread (revoke from the callback): it frees cl after. */
	while (cl->busy && !(ck->ka_started && pthread_equal(ck->ka_thread, pthread_self())))
		pthread_cond_wait(&ck->cv, &ck->mu);
	if (cl->busy)
		cl->revoked = 1;
	for (struct consul_lease **pp = &ck->leases; *pp; pp = &(*pp)->next)
		if (*pp == cl) {
			*pp = cl->next;
			break;
		}
	pthread_mutex_unlock(&ck->mu);
	/* Delete session first: its keys vanish before the locks are released. */
	if (cl->del_id[0])
		rc = consul_session_destroy(ck, cl->del_id, err);
	int rc2 = consul_session_destroy(ck, cl->base.id, rc == VF_OK ? err : NULL);
	if (rc == VF_OK)
		rc = rc2;
	if (rc != VF_OK)
		vf_err_prefix(err, "revoke lease %s", cl->base.id);
	pthread_mutex_lock(&ck->mu);
	if (!cl->revoked)
		free(cl);
	pthread_mutex_unlock(&ck->mu);
	return rc;
}

/* ---- locks ---- */

/* In-process exclusion: Consul lets a session re-acquire a lock it holds, so a
 * second lock of a name through the same lease is refused here (VF_EBUSY).
 * name is the lock key, what the lock name for messages. */
static int consul_held_take(struct consul_kv *ck, const char *name, const char *sid,
                            const char *what, struct vf_err *err)
{
	struct consul_held *h = NULL;
	int rc = VF_OK;

	pthread_mutex_lock(&ck->mu);
	for (;;) {
		for (h = ck->held; h; h = h->next)
			if (strcmp(h->name, name) == 0 && strcmp(h->sid, sid) == 0)
				break;
		if (h == NULL)
			break;
		/* kv.h: a lease holds a name at most once; waiting here would wait
		 * on ourselves (the holder may be this very thread). */
		rc = vf_err_set(err, VF_EBUSY, "lock %s is already held or awaited by this lease",
		                what);
		break;
	}
	if (rc == VF_OK) {
		h = calloc(1, sizeof(*h));
		if (h == NULL || (h->name = strdup(name)) == NULL) {
			free(h);
			rc = vf_err_set(err, VF_ENOMEM, "out of memory");
		} else {
			snprintf(h->sid, sizeof(h->sid), "%s", sid);
			h->next = ck->held;
			ck->held = h;
		}
	}
	pthread_mutex_unlock(&ck->mu);
	return rc;
}

static void consul_held_drop(struct consul_kv *ck, const char *name, const char *sid)
{
	pthread_mutex_lock(&ck->mu);
	for (struct consul_held **pp = &ck->held; *pp; pp = &(*pp)->next) {
		struct consul_held *h = *pp;

		if (strcmp(h->name, name) == 0 && strcmp(h->sid, sid) == 0) {
			*pp = h->next;
			free(h->name);
			free(h);
			break;
		}
	}
	pthread_cond_broadcast(&ck->lock_cv);
	pthread_mutex_unlock(&ck->mu);
}

/* Block (Consul blocking query, no polling) until the lock key has no Session
 * or the deadline passes. */
static int consul_lock_wait(struct consul_kv *ck, const char *key, const char *name,
                            int64_t deadline, int64_t *index, struct vf_err *err)
{
	struct vf_http_resp resp = {0};
	struct vf_buf path = {0};
	char sid[64];
	int rc;

	for (;;) {
		long wait_ms = 60000, timeout;
		int reset;

		if (deadline >= 0) {
			int64_t left = deadline - vf_now_ms();
			if (left <= 0) {
				rc = vf_err_set(err, VF_ETIMEDOUT, "lock %s: timed out waiting",
				                name);
				break;
			}
			if (left < wait_ms)
				wait_ms = (long)left;
		}
		timeout = wait_ms + wait_ms / 16 + ck->timeout_ms;
		vf_buf_free(&path);
		rc = consul_kv_path(&path, key, NULL);
		if (rc == VF_OK && *index > 0)
			rc = vf_buf_printf(&path, "?index=%" PRId64 "&wait=%ldms", *index, wait_ms);
		if (rc != VF_OK) {
			rc = vf_err_set(err, VF_ENOMEM, "out of memory");
			break;
		}
		rc = consul_http(ck, "GET", path.data, NULL, 0, 1, *index > 0 ? timeout : 0, NULL,
		                 &resp, err);
		if (rc != VF_OK)
			break;
		if (resp.status == 404 && resp.header == NULL) {
			rc = consul_not_consul(&resp, err);
			break;
		}
		if (resp.status == 404) {
			rc = VF_OK;
			break;
		}
		if (resp.status != 200) {
			rc = consul_status_error(resp.status, resp.body.data, resp.body.len, 0,
			                         name, err);
			break;
		}
		rc = consul_get_session_parse(resp.body.data ? resp.body.data : "", resp.body.len,
		                              key, sid, sizeof(sid), err);
		if (rc == VF_ENOTFOUND || (rc == VF_OK && sid[0] == '\0')) {
			rc = VF_OK;
			break;
		}
		if (rc != VF_OK)
			break;
		*index = consul_next_index(*index, consul_index_parse(resp.header), &reset);
		vf_http_resp_free(&resp);
	}
	vf_http_resp_free(&resp);
	vf_buf_free(&path);
	return rc;
}

/* Wait a step of a lock-delay (Consul gives no event for its end): 50 ms,
 * doubling up to 1 s, never past the deadline. */
static int consul_lock_delay_wait(struct consul_kv *ck, const char *name, int64_t deadline,
                                  int64_t *step, struct vf_err *err)
{
	struct timespec ts;
	int64_t ms;

	(void)ck;
	*step = *step ? *step * 2 : 50;
	if (*step > 1000)
		*step = 1000;
	ms = *step;
	if (deadline >= 0) {
		int64_t left = deadline - vf_now_ms();

		if (left <= 0)
			return vf_err_set(err, VF_ETIMEDOUT,
			                  "lock %s: timed out waiting (Consul's lock-delay)", name);
		if (ms > left)
			ms = left;
	}
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000;
	nanosleep(&ts, NULL);
	return VF_OK;
}

/*
 * Acquire: one txn [lock N by the lease's release session, read each key]. If
 * the lock is held, block on the lock key with a blocking query until its
 * Session is gone, then retry the txn.
 *
 * Fairness, honestly: Consul has no lock queue. Every waiter blocks on the key
 * and all of them wake when it is released (the herd is bounded by the number
 * of waiters: one txn each, one wins, the others block again); the order of
 * acquisition among waiters of different processes is not FIFO. Waiters in
 * this process sharing one lease queue on a condition variable instead.
 */
static int consul_lock(struct vf_kv *kv, struct vf_kv_lease *lease, const char *name,
                       int timeout_ms, const char *const *reads, size_t nreads,
                       struct vf_kv_result *reads_r, struct vf_kv_lock **lock_r, struct vf_err *err)
{
	struct consul_kv *ck = consul_of(kv);
	struct consul_txn_op *ops = NULL;
	struct vf_kv_result *res = NULL;
	struct consul_txn_error *errs = NULL;
	struct consul_lock *lk = NULL;
	int *is_read = NULL;
	int64_t deadline, index = 0, rev, delay_step = 0;
	size_t n = nreads + 1, nerrs = 0;
	int rc, held = 0;

	*lock_r = NULL;
	for (size_t i = 0; i < nreads && reads_r; i++)
		memset(&reads_r[i], 0, sizeof(reads_r[i]));
	if (lease == NULL)
		return vf_err_set(err, VF_EINVAL, "lock %s: a lease is required",
		                  name ? name : "(null)");
	rc = vf_kv_key_check(name, VF_KEY_LOCK, "lock", err);
	for (size_t i = 0; i < nreads && rc == VF_OK; i++)
		rc = vf_kv_key_check(reads[i], VF_KEY, "lock read", err);
	if (rc != VF_OK)
		return rc;
	if (n > CONSUL_TXN_OPS_ADVERTISED)
		return vf_err_set(err, VF_ELIMIT, "lock %s: %zu reads exceed the txn limit of %d",
		                  name, nreads, CONSUL_TXN_OPS_ADVERTISED);
	deadline = timeout_ms > 0 ? vf_now_ms() + timeout_ms : timeout_ms < 0 ? -1 : 0;
	lk = calloc(1, sizeof(*lk));
	if (lk == NULL || (lk->base.key = consul_lock_key(name)) == NULL) {
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
		goto out;
	}
	rc = consul_held_take(ck, lk->base.key, lease->id, name, err);
	if (rc != VF_OK)
		goto out;
	held = 1;
	ops = calloc(n, sizeof(*ops));
	res = calloc(n, sizeof(*res));
	is_read = calloc(n, sizeof(*is_read));
	if (!ops || !res || !is_read) {
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
		goto out;
	}
	snprintf(lk->sid, sizeof(lk->sid), "%s", lease->id);
	ops[0] = (struct consul_txn_op){.verb = CONSUL_LOCK,
	                                .key = lk->base.key,
	                                .value = ck->holder,
	                                .value_len = strlen(ck->holder),
	                                .session = lk->sid};
	for (size_t i = 0; i < nreads; i++) {
		ops[i + 1].key = reads[i];
		is_read[i + 1] = 1;
	}
	consul_choose_read_verbs(ops, n, is_read);
	for (;;) {
		rc = consul_txn_run(ck, ops, n, is_read, NULL, res, &rev, &errs, &nerrs, err);
		if (rc == VF_OK)
			break;
		if (rc != CONSUL_ROLLED_BACK)
			goto out;
		int only_held = 1, delayed = 0;
		for (size_t i = 0; i < nerrs; i++) {
			delayed |= errs[i].kind == CONSUL_FAIL_LOCK_DELAY;
			only_held &=
			        errs[i].op_index == 0 && (errs[i].kind == CONSUL_FAIL_LOCK_HELD ||
			                                  errs[i].kind == CONSUL_FAIL_LOCK_DELAY);
		}
		if (!only_held) {
			rc = consul_txn_fail_rc(ops, errs, nerrs, err);
			if (rc == VF_ELEASE)
				vf_err_set(err, VF_ELEASE, "lock %s: lease %s is gone", name,
				           lease->id);
			goto out;
		}
		free(errs);
		errs = NULL;
		if (timeout_ms == 0) {
			rc = vf_err_set(err, VF_EBUSY,
			                delayed ? "lock %s is held (Consul's lock-delay after its "
			                          "holder's session ended)"
			                        : "lock %s is held by another lease",
			                name);
			goto out;
		}
		if (delayed) /* no event ends a lock-delay: wait it out in steps */
			rc = consul_lock_delay_wait(ck, name, deadline, &delay_step, err);
		else
			rc = consul_lock_wait(ck, lk->base.key, name, deadline, &index, err);
		if (rc != VF_OK)
			goto out;
	}
	consul_seen_txn(ck, ops, n, res);
	lk->base.fence = res[0].pair.mod_rev;
	for (size_t i = 0; i < nreads && reads_r; i++) {
		reads_r[i] = res[i + 1];
		memset(&res[i + 1], 0, sizeof(res[0]));
	}
	*lock_r = &lk->base;
	lk = NULL;
	held = 0;
out:
	if (held)
		consul_held_drop(ck, lk->base.key, lease->id);
	if (res)
		vf_kv_results_clear(res, n);
	if (lk)
		free(lk->base.key);
	free(lk);
	free(res);
	free(ops);
	free(is_read);
	free(errs);
	return rc;
}

/*
 * Try-lock n names in one txn: [the caller's compares..., lock N1 .. lock Nn by
 * the lease's release session]. Consul evaluates every op of a txn and lists
 * every failure, so a name held by another session (VF_EBUSY) is told from a
 * failed compare (VF_ECONFLICT) whatever the order; compares come first so that
 * they see the store as it was before the locks. Names this handle holds or
 * awaits are VF_EBUSY before any request (Consul would let the session take
 * them again).
 */
static int consul_lock_many(struct vf_kv *kv, struct vf_kv_lease *lease, const char *const *names,
                            size_t n, const struct vf_kv_cmp *cmps, size_t ncmp,
                            struct vf_kv_lock **locks_r, struct vf_err *err)
{
	struct consul_kv *ck = consul_of(kv);
	struct consul_txn_op *ops = NULL;
	struct vf_kv_result *res = NULL;
	struct consul_txn_error *errs = NULL;
	struct consul_lock **lks = NULL;
	char **lkeys = NULL;
	int *is_read = NULL, *guessed = NULL;
	size_t nops = ncmp + n, nerrs = 0, taken = 0;
	int64_t rev;
	int rc = VF_OK;

	for (size_t i = 0; i < n && locks_r; i++)
		locks_r[i] = NULL;
	if (lease == NULL || (n && (names == NULL || locks_r == NULL)) || (ncmp && cmps == NULL))
		return vf_err_set(err, VF_EINVAL,
		                  "lock_many: a lease, names and locks are required");
	for (size_t i = 0; i < n; i++)
		if ((rc = vf_kv_key_check(names[i], VF_KEY_LOCK, "lock_many", err)) != VF_OK)
			return rc;
	if ((rc = vf_kv_txn_keys_check(cmps, ncmp, NULL, 0, err)) != VF_OK)
		return rc;
	if (nops > CONSUL_TXN_OPS_ADVERTISED)
		return vf_err_set(err, VF_ELIMIT,
		                  "lock_many %s: %zu names and %zu compares exceed the txn "
		                  "limit of %d",
		                  n ? names[0] : "", n, ncmp, CONSUL_TXN_OPS_ADVERTISED);
	if (nops == 0)
		return VF_OK;
	ops = calloc(nops, sizeof(*ops));
	res = calloc(nops, sizeof(*res));
	is_read = calloc(nops, sizeof(*is_read));
	guessed = calloc(nops, sizeof(*guessed));
	lks = calloc(n ? n : 1, sizeof(*lks));
	lkeys = calloc(ncmp + 1, sizeof(*lkeys));
	if (!ops || !res || !is_read || !guessed || !lks || !lkeys) {
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n && rc == VF_OK; i++) {
		lks[i] = calloc(1, sizeof(*lks[i]));
		if (lks[i] == NULL || (lks[i]->base.key = consul_lock_key(names[i])) == NULL) {
			rc = vf_err_set(err, VF_ENOMEM, "out of memory");
			break;
		}
		snprintf(lks[i]->sid, sizeof(lks[i]->sid), "%s", lease->id);
	}
	/* In-process exclusion (also catches a name listed twice). */
	for (; taken < n && rc == VF_OK; taken++) {
		rc = consul_held_take(ck, lks[taken]->base.key, lease->id, names[taken], err);
		if (rc != VF_OK)
			break;
	}
	if (rc == VF_OK)
		rc = consul_cmps_ops(ck, cmps, ncmp, ops, guessed, lkeys, err);
	if (rc != VF_OK)
		goto out;
	for (size_t i = 0; i < n; i++)
		ops[ncmp + i] = (struct consul_txn_op){.verb = CONSUL_LOCK,
		                                       .key = lks[i]->base.key,
		                                       .value = ck->holder,
		                                       .value_len = strlen(ck->holder),
		                                       .session = lks[i]->sid};
	rc = consul_txn_run_reguess(ck, cmps, ncmp, ops, nops, is_read, NULL, guessed, res, &rev,
	                            &errs, &nerrs, err);
	if (rc == CONSUL_ROLLED_BACK) {
		const struct consul_txn_error *busy = NULL;
		int other = 0;

		for (size_t i = 0; i < nerrs; i++) {
			if (errs[i].kind == CONSUL_FAIL_BAD_SESSION ||
			    errs[i].kind == CONSUL_FAIL_DENIED || errs[i].kind == CONSUL_FAIL_OTHER)
				other = 1;
			else if ((errs[i].kind == CONSUL_FAIL_LOCK_HELD ||
			          errs[i].kind == CONSUL_FAIL_LOCK_DELAY) &&
			         errs[i].op_index >= ncmp && errs[i].op_index < nops &&
			         busy == NULL)
				busy = &errs[i];
		}
		if (busy && !other) {
			rc = vf_err_set(err, VF_EBUSY,
			                busy->kind == CONSUL_FAIL_LOCK_DELAY
			                        ? "lock %s is held (Consul's lock-delay after its "
			                          "holder's session ended)"
			                        : "lock %s is held by another lease",
			                names[busy->op_index - ncmp]);
		} else {
			rc = consul_txn_fail_rc(ops, errs, nerrs, err);
			if (rc == VF_ELEASE)
				vf_err_set(err, VF_ELEASE, "lock_many %s: lease %s is gone",
				           n ? names[0] : ops[0].key, lease->id);
		}
		goto out;
	}
	if (rc != VF_OK)
		goto out;
	consul_seen_txn(ck, ops, nops, res);
	for (size_t i = 0; i < n; i++) {
		lks[i]->base.fence = res[ncmp + i].pair.mod_rev;
		locks_r[i] = &lks[i]->base;
		lks[i] = NULL;
	}
	taken = 0;
out:
	for (size_t i = 0; i < taken; i++)
		consul_held_drop(ck, lks[i]->base.key, lease->id);
	for (size_t i = 0; lkeys && i < ncmp; i++)
		free(lkeys[i]);
	free(lkeys);
	for (size_t i = 0; lks && i < n; i++)
		if (lks[i]) {
			free(lks[i]->base.key);
			free(lks[i]);
		}
	if (res)
		vf_kv_results_clear(res, nops);
	free(lks);
	free(res);
	free(ops);
	free(is_read);
	free(guessed);
	free(errs);
	return rc;
}

static int consul_unlock(struct vf_kv *kv, struct vf_kv_lock **lock, struct vf_err *err)
{
	struct consul_kv *ck = consul_of(kv);
	struct consul_lock *lk = (struct consul_lock *)*lock;
	struct consul_txn_error *errs = NULL;
	size_t nerrs = 0;
	int rc = VF_OK;

	if (lk == NULL)
		return VF_OK;
	*lock = NULL;
	if (!lk->released) {
		struct consul_txn_op op = {.verb = CONSUL_UNLOCK,
		                           .key = lk->base.key,
		                           .value = ck->holder,
		                           .value_len = strlen(ck->holder),
		                           .session = lk->sid};

		rc = consul_txn_simple(ck, &op, 1, NULL, NULL, &errs, &nerrs, err);
		if (rc == CONSUL_ROLLED_BACK) {
			/* Not held any more (lease gone or lock lost): nothing to release. */
			rc = consul_txn_fail_rc(&op, errs, nerrs, err);
			if (rc == VF_ECONFLICT || rc == VF_ELEASE)
				rc = VF_OK;
		}
	}
	consul_held_drop(ck, lk->base.key, lk->sid);
	free(errs);
	free(lk->base.key);
	free(lk);
	return rc;
}

/* ---- watch ---- */

/* Wait up to ms, or until the watch is cancelled. Returns non-zero if cancelled. */
static int consul_watch_pause(struct consul_watch *w, int64_t ms)
{
	int64_t until = vf_now_ms() + ms;
	int cancelled;

	pthread_mutex_lock(&w->mu);
	if (!w->cancel)
		vf_cond_wait_until(&w->cv, &w->mu, until);
	cancelled = w->cancel;
	pthread_mutex_unlock(&w->mu);
	return cancelled;
}

/* A watch keeps only keys and indexes of its last listing: the diff needs no
 * more (DELETE events carry no value; PUTs take the new listing's). */
static void consul_list_drop_values(struct vf_kv_list *l)
{
	for (size_t i = 0; i < l->count; i++) {
		free(l->items[i].value);
		l->items[i].value = NULL;
		l->items[i].value_len = 0;
	}
}

static int consul_watch_emit(struct consul_watch *w, const struct vf_kv_list *old_l,
                             const struct vf_kv_list *new_l, size_t *nev_r)
{
	struct consul_event *ev = NULL;
	size_t n = 0;
	int stop = 0;

	*nev_r = 0;
	if (consul_list_diff(old_l, new_l, &ev, &n) != VF_OK)
		return 0;
	for (size_t i = 0; i < n && !stop && !w->cancel; i++) {
		struct vf_kv_event e = {.type = ev[i].type, .key = ev[i].pair->key};

		if (ev[i].type == VF_EV_PUT) {
			e.value = ev[i].pair->value;
			e.value_len = ev[i].pair->value_len;
			e.mod_rev = ev[i].pair->mod_rev;
			e.create_rev = ev[i].pair->create_rev;
			e.revision = ev[i].pair->mod_rev;
		} else {
			e.value = "";
			e.mod_rev = new_l->revision;
			e.revision = new_l->revision;
		}
		stop = w->fn(&e, w->arg);
	}
	free(ev);
	*nev_r = n;
	return stop;
}

/* The KV store's head index: X-Consul-Index of a read of a key that never
 * exists (a '.' segment: refused as a data key), which Consul answers with the
 * index of the KV table (writes and deletes). */
static int consul_kv_head(struct consul_kv *ck, int64_t *head_r, struct vf_err *err)
{
	struct vf_http_resp resp = {0};
	int rc;

	*head_r = 0;
	rc = consul_http(ck, "GET", "/v1/kv/.vfile/head", NULL, 0, 1, 0, NULL, &resp, err);
	if (rc == VF_OK && resp.status != 404 && resp.status != 200)
		rc = consul_status_error(resp.status, resp.body.data, resp.body.len, 0,
		                         "KV head index", err);
	else if (rc == VF_OK && resp.header == NULL)
		rc = vf_err_set(err, VF_EPROTO,
		                "endpoint answered HTTP %ld without X-Consul-Index: not Consul?",
		                resp.status);
	if (rc == VF_OK)
		*head_r = consul_index_parse(resp.header);
	vf_http_resp_free(&resp);
	return rc;
}

/*
 * The loop: blocking query on the prefix from the last index; diff the new
 * listing against the previous one (PUT for new or changed ModifyIndex, DELETE
 * for keys gone). Index rules from Consul's docs: index backwards → reset to 0
 * and RESYNC; never below 1; token bucket (burst 2, 1/s) against returns that
 * changed nothing. After an error: back off, then re-list and diff against the
 * last listing (no gap, no duplicate for the key state).
 */
static void *consul_watch_main(void *arg)
{
	struct consul_watch *w = arg;
	struct consul_kv *ck = w->ck;
	double tokens = 2;
	int64_t last_refill = vf_now_ms(), backoff = 0;
	int stop = 0, failing = 0;

	if (w->check_head > 0) {
		/* A head below after_rev is a restored or reset store (kv.h). If the
		 * head cannot be read, RESYNC too: re-listing is always safe. */
		struct vf_err e = {0};
		int64_t head = 0;
		int hrc = consul_kv_head(ck, &head, &e);

		if (hrc != VF_OK)
			vf_log(VF_LOG_INFO,
			       "consul: watch %s: resumed after index %" PRId64
			       " but the store's index cannot be read (%s): resync",
			       w->prefix, w->check_head, e.msg);
		else if (head < w->check_head)
			vf_log(VF_LOG_INFO,
			       "consul: watch %s: resumed after index %" PRId64
			       " but the store is at %" PRId64 " (reset or restored): resync",
			       w->prefix, w->check_head, head);
		if (hrc != VF_OK || head < w->check_head)
			w->resync_first = 1;
	}
	if (w->resync_first) {
		struct vf_kv_event e = {.type = VF_EV_RESYNC,
		                        .key = w->prefix,
		                        .value = "",
		                        .revision = w->last.revision};
		stop = w->fn(&e, w->arg);
	}
	while (!stop && !w->cancel) {
		struct vf_kv_list nl;
		struct vf_err e = {0};
		size_t nev = 0;
		int reset, rc;

		rc = consul_list_ex(ck, w->prefix, w->index, (long)ck->watch_wait_s * 1000,
		                    &w->cancel, &w->last, CONSUL_VALUES_CHANGED, &nl, &e);
		if (w->cancel) {
			vf_kv_list_clear(&nl);
			break;
		}
		if (rc != VF_OK) {
			if (!failing)
				vf_log(VF_LOG_WARN, "consul: watch %s: %s; retrying", w->prefix,
				       e.msg);
			failing = 1;
			backoff = backoff ? backoff * 2 : 200;
			if (backoff > 5000)
				backoff = 5000;
			w->index = 0; /* re-list at once when back */
			if (consul_watch_pause(w, backoff))
				break;
			continue;
		}
		if (failing)
			vf_log(VF_LOG_INFO, "consul: watch %s: store reachable again", w->prefix);
		failing = 0;
		backoff = 0;
		/* The docs' reset rule compares with the index asked with; after a
		 * re-list (index 0) compare with the last listing instead. */
		consul_next_index(w->last.revision, nl.revision, &reset);
		if (reset) {
			struct vf_kv_event re = {.type = VF_EV_RESYNC,
			                         .key = w->prefix,
			                         .value = "",
			                         .revision = nl.revision};

			vf_log(VF_LOG_INFO,
			       "consul: watch %s: index went back from %" PRId64 " to %" PRId64
			       ": resync",
			       w->prefix, w->last.revision, nl.revision);
			vf_kv_list_clear(&w->last);
			consul_list_drop_values(&nl);
			w->last = nl;
			w->index = 0;
			stop = w->fn(&re, w->arg);
			continue;
		}
		stop = consul_watch_emit(w, &w->last, &nl, &nev);
		vf_kv_list_clear(&w->last);
		consul_list_drop_values(&nl);
		w->last = nl;
		w->index = nl.revision < 1 ? 1 : nl.revision;
		if (nev == 0 && !stop) {
			int64_t now = vf_now_ms();

			tokens += (double)(now - last_refill) / 1000.0;
			last_refill = now;
			if (tokens > 2)
				tokens = 2;
			if (tokens < 1 && consul_watch_pause(w, (int64_t)((1 - tokens) * 1000)))
				break;
			if (tokens < 1) {
				tokens = 1;
				last_refill = vf_now_ms();
			}
			tokens -= 1;
		}
	}
	return NULL;
}

static int consul_watch_start(struct vf_kv *kv, const char *prefix, int64_t after_rev,
                              vf_kv_watch_fn fn, void *arg, struct vf_kv_watch **watch_r,
                              struct vf_err *err)
{
	struct consul_kv *ck = consul_of(kv);
	struct consul_watch *w;
	int rc;

	*watch_r = NULL;
	if (fn == NULL)
		return vf_err_set(err, VF_EINVAL, "watch: a callback is required");
	rc = vf_kv_key_check(prefix, VF_KEY_PREFIX, "watch", err);
	if (rc != VF_OK)
		return rc;
	w = calloc(1, sizeof(*w));
	if (w == NULL || (w->prefix = strdup(prefix)) == NULL) {
		free(w);
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	}
	w->ck = ck;
	w->fn = fn;
	w->arg = arg;
	pthread_mutex_init(&w->mu, NULL);
	vf_cond_init(&w->cv);
	/* The baseline listing: events are what changes after it. Consul has no
	 * history: if the prefix already moved past after_rev, the caller re-lists. */
	rc = consul_list_ex(ck, prefix, 0, 0, NULL, NULL, CONSUL_VALUES_NONE, &w->last, err);
	if (rc != VF_OK) {
		vf_err_prefix(err, "watch %s", prefix);
		goto fail;
	}
	w->index = w->last.revision < 1 ? 1 : w->last.revision;
	w->resync_first = after_rev > 0 && w->last.revision > after_rev;
	/* The prefix's index may lag the store's; the KV head may not: the watch
	 * thread reads it first (off the caller's path), see consul_watch_main. */
	w->check_head = after_rev > 0 && w->last.revision < after_rev ? after_rev : 0;
	if (pthread_create(&w->thread, NULL, consul_watch_main, w) != 0) {
		rc = vf_err_set(err, VF_ENOMEM, "watch %s: cannot start a thread", prefix);
		goto fail;
	}
	*watch_r = (struct vf_kv_watch *)w;
	return VF_OK;
fail:
	vf_kv_list_clear(&w->last);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w->prefix);
	free(w);
	return rc;
}

static void consul_watch_stop(struct vf_kv *kv, struct vf_kv_watch **watch)
{
	struct consul_watch *w = (struct consul_watch *)*watch;

	if (w == NULL)
		return;
	*watch = NULL;
	pthread_mutex_lock(&w->mu);
	w->cancel = 1;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	vf_kv_list_clear(&w->last);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w->prefix);
	free(w);
}

/* ---- open / close ---- */

static const char *const consul_known[] = {
        "endpoints",     "token",        "token_file",   "timeout_ms",  "connect_timeout_ms",
        "cacert",        "cert",         "key",          "consistency", "lock_delay_ms",
        "session_ttl_s", "watch_wait_s", "session_node", NULL,
};

/* Refuse value of setting name unless lo <= v <= hi, naming file:line:setting. */
static int consul_cfg_range(const config_setting_t *cfg, const char *name, int v, int lo, int hi,
                            const char *why, struct vf_err *err)
{
	char where[256] = "";

	if (v >= lo && v <= hi)
		return VF_OK;
	vf_cfg_where(cfg ? config_setting_get_member(cfg, name) : NULL, where, sizeof(where));
	return vf_err_set(err, VF_EINVAL, "%ssetting 'consul.%s' = %d is out of range (%d..%d%s%s)",
	                  where, name, v, lo, hi, why ? ": " : "", why ? why : "");
}

static int consul_open(const config_setting_t *cfg, struct vf_kv **kv_r, struct vf_err *err)
{
	struct consul_kv *ck = NULL;
	struct vf_http_cfg hc = {0};
	char *token = NULL, *consistency = NULL, *addr = NULL, *snode = NULL;
	const char *env_addr = getenv("CONSUL_HTTP_ADDR");
	int timeout_ms, connect_ms, rc;
	char host[64] = "host";

	*kv_r = NULL;
	rc = vf_cfg_known(cfg, consul_known, err);
	if (rc != VF_OK)
		return rc;
	ck = calloc(1, sizeof(*ck));
	if (ck == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	if (env_addr && *env_addr && strstr(env_addr, "://") == NULL) {
		const char *ssl = getenv("CONSUL_HTTP_SSL");
		int tls = ssl && (strcmp(ssl, "true") == 0 || strcmp(ssl, "1") == 0);

		if (asprintf(&addr, "%s://%s", tls ? "https" : "http", env_addr) < 0) {
			addr = NULL;
			rc = vf_err_set(err, VF_ENOMEM, "out of memory");
			goto fail;
		}
	}
	if ((rc = vf_cfg_strv(cfg, "endpoints",
	                      addr                      ? addr
	                      : (env_addr && *env_addr) ? env_addr
	                                                : CONSUL_DEFAULT_ADDR,
	                      &hc.endpoints, &hc.nendpoints, err)) != VF_OK ||
	    /* token, token_file, the credential consul-token, then the consul CLI's
	     * environment; the same for TLS where the config is silent */
	    (rc = vf_cfg_secret(cfg, "consul", "token", "consul-token", "CONSUL_HTTP_TOKEN",
	                        "CONSUL_HTTP_TOKEN_FILE", &token, err)) != VF_OK ||
	    (rc = vf_cfg_int(cfg, "timeout_ms", 5000, &timeout_ms, err)) != VF_OK ||
	    (rc = vf_cfg_int(cfg, "connect_timeout_ms", 2000, &connect_ms, err)) != VF_OK ||
	    (rc = vf_cfg_str(cfg, "cacert", vf_env("CONSUL_CACERT"), &hc.cacert, err)) != VF_OK ||
	    (rc = vf_cfg_str(cfg, "cert", vf_env("CONSUL_CLIENT_CERT"), &hc.cert, err)) != VF_OK ||
	    (rc = vf_cfg_str(cfg, "key", vf_env("CONSUL_CLIENT_KEY"), &hc.key, err)) != VF_OK ||
	    (rc = vf_cfg_str(cfg, "consistency", "default", &consistency, err)) != VF_OK ||
	    (rc = vf_cfg_int(cfg, "lock_delay_ms", 0, &ck->lock_delay_ms, err)) != VF_OK ||
	    (rc = vf_cfg_int(cfg, "session_ttl_s", 0, &ck->session_ttl_s, err)) != VF_OK ||
	    (rc = vf_cfg_int(cfg, "watch_wait_s", 60, &ck->watch_wait_s, err)) != VF_OK ||
	    (rc = vf_cfg_str(cfg, "session_node", CONSUL_SESSION_NODE, &snode, err)) != VF_OK)
		goto fail;
	if (snode && (strlen(snode) > 100 ||
	              strspn(snode, "abcdefghijklmnopqrstuvwxyz"
	                            "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != strlen(snode))) {
		char where[256] = "";

		vf_cfg_where(cfg ? config_setting_get_member(cfg, "session_node") : NULL, where,
		             sizeof(where));
		rc = vf_err_set(
		        err, VF_EINVAL,
		        "%ssetting 'consul.session_node': \"%.100s\" is not a node name "
		        "(letters, digits, '-', '_', '.'; at most 100; \"\": the agent's node)",
		        where, snode);
		goto fail;
	}
	if (snode && *snode) {
		ck->session_node = snode;
		snode = NULL;
	}
	if ((rc = consul_cfg_range(cfg, "timeout_ms", timeout_ms, 1, 3600000, NULL, err)) ||
	    (rc = consul_cfg_range(cfg, "connect_timeout_ms", connect_ms, 1, 3600000, NULL, err)) ||
	    (rc = consul_cfg_range(cfg, "lock_delay_ms", ck->lock_delay_ms, 0, 60000,
	                           "Consul's LockDelay is at most 60 s", err)) ||
	    (rc = consul_cfg_range(cfg, "watch_wait_s", ck->watch_wait_s, 1, 300,
	                           "blocking queries wait at most 5 minutes", err)))
		goto fail;
	if (ck->session_ttl_s != 0 &&
	    (rc = consul_cfg_range(cfg, "session_ttl_s", ck->session_ttl_s, CONSUL_MIN_TTL_S,
	                           CONSUL_MAX_TTL_S, "Consul's minimum session TTL is 10 s", err)))
		goto fail;
	if (strcmp(consistency, "default") == 0) {
		ck->consistent = 0;
	} else if (strcmp(consistency, "consistent") == 0) {
		ck->consistent = 1;
	} else {
		char where[256] = "";

		vf_cfg_where(config_setting_get_member(cfg, "consistency"), where, sizeof(where));
		rc = vf_err_set(err, VF_EINVAL,
		                "%ssetting 'consul.consistency' must be \"default\" or "
		                "\"consistent\", not \"%s\"",
		                where, consistency);
		goto fail;
	}
	for (size_t i = 0; i < hc.nendpoints; i++)
		if (strncmp(hc.endpoints[i], "http://", 7) &&
		    strncmp(hc.endpoints[i], "https://", 8)) {
			char where[256] = "";

			vf_cfg_where(cfg ? config_setting_get_member(cfg, "endpoints") : NULL,
			             where, sizeof(where));
			rc = vf_err_set(err, VF_EINVAL,
			                "%ssetting 'consul.endpoints': '%s' is not an http:// or "
			                "https:// URL",
			                where, hc.endpoints[i]);
			goto fail;
		}
	hc.timeout_ms = timeout_ms;
	hc.connect_timeout_ms = connect_ms;
	ck->timeout_ms = timeout_ms;
	rc = vf_http_new(&hc, &ck->http, err);
	if (rc != VF_OK)
		goto fail;
	if (token && *token) {
		if (asprintf(&ck->token_hdr, "X-Consul-Token: %s", token) < 0) {
			ck->token_hdr = NULL;
			rc = vf_err_set(err, VF_ENOMEM, "out of memory");
			goto fail;
		}
		ck->hdrs[0] = ck->token_hdr;
	}
	gethostname(host, sizeof(host) - 1);
	snprintf(ck->holder, sizeof(ck->holder), "%s:%ld", host, (long)getpid());
	pthread_mutex_init(&ck->mu, NULL);
	vf_cond_init(&ck->cv);
	vf_cond_init(&ck->lock_cv);
	ck->base.ops = vf_backend_entry();
	ck->base.max_txn_ops = CONSUL_TXN_OPS_ADVERTISED;
	ck->base.min_lease_ttl_s = CONSUL_MIN_TTL_S;
	*kv_r = &ck->base;
	rc = VF_OK;
	goto out;
fail:
	if (ck) {
		vf_http_free(&ck->http);
		free(ck->token_hdr);
		free(ck->session_node);
		free(ck);
	}
out:
	free(snode);
	if (token) {
		memset(token, 0, strlen(token));
		free(token);
	}
	free(consistency);
	free(addr);
	vf_strv_free(hc.endpoints, hc.nendpoints);
	free(hc.cacert);
	free(hc.cert);
	free(hc.key);
	return rc;
}

static void consul_close(struct vf_kv *kv)
{
	struct consul_kv *ck = consul_of(kv);

	if (ck == NULL)
		return;
	pthread_mutex_lock(&ck->mu);
	ck->ka_stop = 1;
	pthread_cond_broadcast(&ck->cv);
	pthread_mutex_unlock(&ck->mu);
	if (ck->ka_started)
		pthread_join(ck->ka_thread, NULL);
	/* Leases are not revoked: they expire by TTL. Free what the caller did not. */
	while (ck->leases) {
		struct consul_lease *l = ck->leases;

		ck->leases = l->next;
		free(l);
	}
	for (size_t i = 0; i < CONSUL_SEEN_N; i++)
		consul_seen_clear(&ck->seen[i]);
	while (ck->held) {
		struct consul_held *h = ck->held;

		ck->held = h->next;
		free(h->name);
		free(h);
	}
	vf_http_free(&ck->http);
	if (ck->token_hdr) {
		memset(ck->token_hdr, 0, strlen(ck->token_hdr));
		free(ck->token_hdr);
	}
	free(ck->session_node);
	pthread_cond_destroy(&ck->cv);
	pthread_cond_destroy(&ck->lock_cv);
	pthread_mutex_destroy(&ck->mu);
	free(ck);
}

static int consul_global_init(struct vf_err *err)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return vf_err_set(err, VF_ENOMEM, "curl_global_init failed");
	return VF_OK;
}

static void consul_global_fini(void)
{
	curl_global_cleanup();
}

static const struct vf_kv_ops consul_ops = {
        .abi_version = VF_KV_ABI_VERSION,
        .name = "consul",
        .caps = 0, /* no watch history, no compaction, no leases under 10 s */
        .global_init = consul_global_init,
        .global_fini = consul_global_fini,
        .open = consul_open,
        .close = consul_close,
        .get = consul_get,
        .list = consul_list,
        .put = consul_put,
        .cas = consul_cas,
        .del = consul_del,
        .cas_del = consul_cas_del,
        .txn = consul_txn,
        .lease_grant = consul_lease_grant,
        .lease_keepalive = consul_lease_keepalive,
        .lease_revoke = consul_lease_revoke,
        .lock = consul_lock,
        .unlock = consul_unlock,
        .watch_start = consul_watch_start,
        .watch_stop = consul_watch_stop,
        .compact = NULL,
        .lock_many = consul_lock_many,
};

const struct vf_kv_ops *vf_backend_entry(void)
{
	return &consul_ops;
}
