/* The Consul driver's transactions: the wire txn, the lease binding of a put,
 * compares (check-index guesses and their re-reads) and the txn slot. */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "consul_int.h"

/* ---- transactions ---- */

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

/* ---- the lease binding of a put (consul_int.h) ---- */

/* A first guess from this handle's own last write of key: the session it left
 * holding the key (the manager's claim rewritten "done" after a put with its
 * lease needs no refuted guess). */
void consul_bind_hint(struct consul_kv *ck, struct consul_bind *b, const char *key)
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

/* One attempt of consul_txn_send on the wire: the caller's ops with the guards
 * of their bound puts. */
struct consul_wire {
	struct consul_txn_op *w;   /* 2 * nops + 1 of them */
	struct vf_kv_result *wres; /* their results, as many */
	size_t *owner;             /* w[j] is for the caller's op owner[j] */
	size_t *back;              /* the caller's op i is sent as w[back[i]] */
	size_t nw;
};

/* The guard that the guess of bound put op's mode needs before it (FREE: no
 * session; ABSENT: no key, unless a compare says so; REBIND: released from the
 * holder): 1 and *g, else 0. */
static int consul_bind_guard(const struct consul_bind *b, const struct consul_txn_op *op,
                             struct consul_txn_op *g)
{
	if (b->put && b->mode == CB_FREE)
		*g = (struct consul_txn_op){
		        .verb = CONSUL_CHECK_SESSION, .key = op->key, .session = ""};
	else if (b->put && b->mode == CB_ABSENT && !b->noguard)
		*g = (struct consul_txn_op){.verb = CONSUL_CHECK_NOT_EXISTS, .key = op->key};
	else if (b->put && b->mode == CB_REBIND)
		*g = (struct consul_txn_op){.verb = CONSUL_UNLOCK,
		                            .key = op->key,
		                            .value = op->value,
		                            .value_len = op->value_len,
		                            .session = b->held};
	else
		return 0;
	return 1;
}

/* op as sent for its binding b: a bound put is an unlock from the holder (HELD),
 * a lock by its lease's session, or a set; any other op as it is. */
static struct consul_txn_op consul_bind_put(const struct consul_bind *b,
                                            const struct consul_txn_op *op)
{
	struct consul_txn_op fin = *op;

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
	return fin;
}

/* Fill wi for the binds' current guesses: each op, after its guard if any. */
static void consul_wire_expand(struct consul_wire *wi, const struct consul_txn_op *ops, size_t nops,
                               const struct consul_bind *binds)
{
	size_t nw = 0;

	for (size_t i = 0; i < nops; i++) {
		if (consul_bind_guard(&binds[i], &ops[i], &wi->w[nw]))
			wi->owner[nw++] = i;
		wi->back[i] = nw;
		wi->owner[nw] = i;
		wi->w[nw++] = consul_bind_put(&binds[i], &ops[i]);
	}
	wi->nw = nw;
}

/* The attempt rolled back: for each failure that refutes a put's guess (at its
 * guard or at the put), take the mode the answer tells (a failed lock: one read
 * of the key's session). *resend_r = 1 when every failure was such a refuted
 * guess. VF_OK, or that read's error. */
static int consul_wire_reguess(struct consul_kv *ck, const struct consul_wire *wi,
                               const struct consul_txn_op *ops, size_t nops,
                               struct consul_bind *binds, const struct consul_txn_error *werrs,
                               size_t nwerrs, int *resend_r, struct vf_err *err)
{
	int again = 0, foreign = 0, rc;

	*resend_r = 0;
	for (size_t k = 0; k < nwerrs; k++) {
		const struct consul_txn_error *e = &werrs[k];
		size_t i = e->op_index < wi->nw ? wi->owner[e->op_index] : nops;
		struct consul_bind *b = i < nops ? &binds[i] : NULL;
		int fin = i < nops && wi->back[i] == e->op_index;
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
			if (rc != VF_OK)
				return rc;
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
	*resend_r = !foreign && again;
	return VF_OK;
}

/* A real failure: keep the errors at the caller's ops, moved to their indexes
 * (the caller's own ops fail the same way whatever the guards said), or the
 * first one if only guards failed, and not as guessed. Returns how many. */
static size_t consul_wire_errors(const struct consul_wire *wi, const struct consul_bind *binds,
                                 size_t nops, struct consul_txn_error *werrs, size_t nwerrs)
{
	size_t nkeep = 0;

	for (size_t k = 0; k < nwerrs; k++) {
		size_t i = werrs[k].op_index < wi->nw ? wi->owner[werrs[k].op_index] : nops;

		if (i < nops && binds[i].put && wi->back[i] != werrs[k].op_index)
			continue; /* a guard */
		werrs[nkeep] = werrs[k];
		werrs[nkeep].op_index = i < nops ? i : 0;
		nkeep++;
	}
	if (nkeep == 0) { /* only guards failed, and not as guessed */
		werrs[0].op_index = wi->owner[werrs[0].op_index];
		nkeep = 1;
	}
	return nkeep;
}

/* Send ops (binds may be NULL: as they are), expanding bound puts as above and
 * resending while only the guesses of their modes failed. Results and errors
 * are reported at the caller's op indexes. */
static int consul_txn_send(struct consul_kv *ck, const struct consul_txn_op *ops, size_t nops,
                           struct consul_bind *binds, struct vf_kv_result *res, int64_t *rev_r,
                           struct consul_txn_error **errs_r, size_t *nerrs_r, struct vf_err *err)
{
	struct consul_wire wi = {0};
	int rc = VF_OK;

	if (binds == NULL)
		return consul_txn_send_wire(ck, ops, nops, res, rev_r, errs_r, nerrs_r, err);
	*errs_r = NULL;
	*nerrs_r = 0;
	wi.w = calloc(2 * nops + 1, sizeof(*wi.w));
	wi.wres = calloc(2 * nops + 1, sizeof(*wi.wres));
	wi.owner = calloc(2 * nops + 1, sizeof(*wi.owner));
	wi.back = calloc(nops + 1, sizeof(*wi.back));
	if (!wi.w || !wi.wres || !wi.owner || !wi.back) {
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
		goto out;
	}
	for (int attempt = 0;; attempt++) {
		struct consul_txn_error *werrs = NULL;
		size_t nwerrs = 0;
		int again = 0;

		if (attempt == CONSUL_BIND_TRIES) {
			rc = vf_err_set(err, VF_ECONFLICT,
			                "%s: the key's session kept changing under the write",
			                nops ? ops[0].key : "txn");
			goto out;
		}
		consul_wire_expand(&wi, ops, nops, binds);
		if (wi.nw > CONSUL_MAX_TXN_OPS) {
			rc = vf_err_set(
			        err, VF_ELIMIT,
			        "txn %s: %zu ops with the guards of its puts exceed Consul's "
			        "limit of %d",
			        nops ? ops[0].key : "", wi.nw, CONSUL_MAX_TXN_OPS);
			goto out;
		}
		memset(wi.wres, 0, (2 * nops + 1) * sizeof(*wi.wres));
		rc = consul_txn_send_wire(ck, wi.w, wi.nw, wi.wres, rev_r, &werrs, &nwerrs, err);
		if (rc == VF_OK) {
			for (size_t i = 0; i < nops; i++) {
				res[i] = wi.wres[wi.back[i]];
				memset(&wi.wres[wi.back[i]], 0, sizeof(wi.wres[0]));
			}
			vf_kv_results_clear(wi.wres, wi.nw);
			goto out;
		}
		if (rc != CONSUL_ROLLED_BACK)
			goto out;
		/* Which failures are wrong guesses of a put's mode? */
		rc = consul_wire_reguess(ck, &wi, ops, nops, binds, werrs, nwerrs, &again, err);
		if (rc != VF_OK) {
			free(werrs);
			goto out;
		}
		if (again) {
			vf_log(VF_LOG_DEBUG,
			       "consul: txn %s: a put's binding was guessed wrong (%s): resent",
			       ops[0].key, werrs[0].what);
			free(werrs);
			continue;
		}
		*nerrs_r = consul_wire_errors(&wi, binds, nops, werrs, nwerrs);
		*errs_r = werrs;
		rc = CONSUL_ROLLED_BACK;
		goto out;
	}
out:
	free(wi.w);
	free(wi.wres);
	free(wi.owner);
	free(wi.back);
	return rc;
}

/* The vf code of a rolled-back txn, ignoring errors at ops where ignore[i] is set. */
int consul_txn_fail_rc(const struct consul_txn_op *ops, const struct consul_txn_error *e, size_t n,
                       struct vf_err *err)
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
int consul_txn_run(struct consul_kv *ck, struct consul_txn_op *ops, size_t nops, const int *is_read,
                   struct consul_bind *binds, struct vf_kv_result *res, int64_t *rev_r,
                   struct consul_txn_error **errs_r, size_t *nerrs_r, struct vf_err *err)
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
int consul_txn_simple(struct consul_kv *ck, struct consul_txn_op *ops, size_t nops,
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
char *consul_lock_key(const char *name)
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
int consul_cmps_ops(struct consul_kv *ck, const struct vf_kv_cmp *cmps, size_t ncmp,
                    struct consul_txn_op *ops, int *guessed, char **lkeys, struct vf_err *err)
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
int consul_txn_run_reguess(struct consul_kv *ck, const struct vf_kv_cmp *cmps, size_t ncmp,
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

/* A caller's put vops[i] as op: a set, or a lock by its lease's delete session
 * (copied to sid), and b, the first guess of its binding (see "the lease binding
 * of a put" in consul_int.h). */
static int consul_put_op(struct consul_kv *ck, const struct vf_kv_cmp *cmps, size_t ncmp,
                         const struct vf_kv_op *vops, size_t i, struct consul_txn_op *op,
                         struct consul_bind *b, char *sid, struct vf_err *err)
{
	const struct vf_kv_op *o = &vops[i];
	int rc = VF_OK;

	op->verb = o->lease ? CONSUL_LOCK : CONSUL_SET;
	op->value = o->value;
	op->value_len = o->value_len;
	if (o->lease) {
		rc = consul_lease_del_session(ck, (struct consul_lease *)o->lease, sid, err);
		op->session = sid;
	}
	*b = (struct consul_bind){
	        .put = 1, .sid = o->lease ? sid : NULL, .mode = o->lease ? CB_LOCK : CB_FREE};
	if (!o->lease && consul_txn_put_absent(cmps, ncmp, vops, i)) {
		b->mode = CB_ABSENT;
		b->noguard = 1;
	} else if (!o->lease && o->key && !consul_seen_has(ck, o->key)) {
		b->mode = CB_ABSENT;
	}
	if (o->key)
		consul_bind_hint(ck, b, o->key);
	return rc;
}

/* Translate the caller's ops into ops[0..nops) (the txn's, after its compares):
 * puts (consul_put_op: binds, sids), deletes, reads (is_read) and unlocks. */
static int consul_vops_ops(struct consul_kv *ck, const struct vf_kv_cmp *cmps, size_t ncmp,
                           const struct vf_kv_op *vops, size_t nops, struct consul_txn_op *ops,
                           struct consul_bind *binds, int *is_read, char (*sids)[64],
                           struct vf_err *err)
{
	int rc = VF_OK;

	for (size_t i = 0; i < nops && rc == VF_OK; i++) {
		const struct vf_kv_op *o = &vops[i];
		struct consul_txn_op *op = &ops[i];
		const struct consul_lock *lk = (const struct consul_lock *)o->lock;

		op->key = o->key;
		switch (o->kind) {
		case VF_OP_PUT:
			rc = consul_put_op(ck, cmps, ncmp, vops, i, op, &binds[i], sids[i], err);
			break;
		case VF_OP_DELETE:
			op->verb = CONSUL_DELETE;
			break;
		case VF_OP_GET:
			is_read[i] = 1;
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
	return rc;
}

/* Move the results of the caller's ops (res, after the compares') to res_r:
 * reads and puts keep theirs, the other ops report nothing found. */
static int consul_txn_results(const struct vf_kv_op *vops, size_t nops, struct vf_kv_result *res,
                              int64_t rev, struct vf_kv_txn_result *res_r, struct vf_err *err)
{
	res_r->results = calloc(nops ? nops : 1, sizeof(*res_r->results));
	if (res_r->results == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	for (size_t i = 0; i < nops; i++) {
		res_r->results[i] = res[i];
		memset(&res[i], 0, sizeof(res[0]));
		if (vops[i].kind != VF_OP_GET && vops[i].kind != VF_OP_PUT) {
			vf_kv_pair_clear(&res_r->results[i].pair);
			res_r->results[i].found = 0;
		}
	}
	res_r->count = nops;
	res_r->revision = rev;
	return VF_OK;
}

int consul_txn(struct vf_kv *kv, const struct vf_kv_cmp *cmps, size_t ncmp,
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
	if (rc == VF_OK)
		rc = consul_vops_ops(ck, cmps, ncmp, vops, nops, ops + ncmp, binds + ncmp,
		                     is_read + ncmp, sids + ncmp, err);
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
	if (res_r)
		rc = consul_txn_results(vops, nops, res + ncmp, rev, res_r, err);
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
