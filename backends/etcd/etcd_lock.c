/*
 * Lease-locks on KV primitives (not /v3/lock/lock, see WIRE.md 1.6).
 *
 * Lock name N, lease L: the waiter key is "N/<L in hex>", attached to L. The
 * owner is the waiter with the smallest create_revision; the fence is the
 * owner's create_revision (VF_CMP_LOCK_HELD compares CREATE(waiter) == fence).
 * A waiter that is not the owner watches only its predecessor (the greatest
 * create_revision below its own) for a DELETE, then re-checks: FIFO, no polling,
 * no herd.
 *
 * Locks are not re-entrant: locking N again through the same lease while this
 * handle holds or awaits it fails at once with VF_EBUSY (threads that contend for
 * one lock need a lease each). A waiter key found in the store that this handle
 * does not know (left by an attempt whose answer was lost) is adopted.
 *
 * lock_many takes n names in one txn: per name "no key under N/" (a VERSION == 0
 * compare over the prefix range), plus the caller's compares; on success every
 * waiter key is put in that txn, so all share its revision as create_revision and
 * fence, and each is then an ordinary lock (unlock, VF_OP_UNLOCK, waiters queue
 * behind it). On failure the same request reads the first key under each N/:
 * one there is VF_EBUSY, none is VF_ECONFLICT.
 */
#include <config.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "etcd_int.h"

/* Delete key only if its create_revision is still fence. VF_ECONFLICT if not. */
static int lock_fenced_delete(struct etcd_kv *ek, const char *key, int64_t fence,
                              struct vf_err *err)
{
	char what[300], *body = NULL;
	size_t len;
	yajl_val tree = NULL;
	int rc;

	snprintf(what, sizeof(what), "unlock %s", key);
	rc = etcd_build_cas_del(key, 0, fence, &body, &len, err);
	if (rc == VF_OK)
		rc = etcd_rpc(ek, "/v3/kv/txn", body, len, 0, 0, &tree, what, err);
	if (rc == VF_OK && !etcd_txn_succeeded(tree))
		rc = vf_err_set(err, VF_ECONFLICT, "%s: not held any more", what);
	yajl_tree_free(tree);
	free(body);
	return rc;
}

/* Fill reads_r from responses[first..first+nreads) of tree. */
static int lock_fill_reads(yajl_val tree, size_t first, size_t nreads, struct vf_kv_result *reads_r,
                           struct vf_err *err)
{
	for (size_t i = 0; i < nreads; i++) {
		int rc = etcd_parse_first(etcd_txn_resp(tree, first + i, "response_range"),
		                          &reads_r[i].pair, err);

		reads_r[i].found = rc == VF_OK;
		if (rc != VF_OK && rc != VF_ENOTFOUND) {
			vf_kv_results_clear(reads_r, nreads);
			return rc;
		}
	}
	return VF_OK;
}

/* ---- waiting for a key's deletion ---- */

struct lock_wd {
	struct etcd_stream stream;
	struct etcd_kv *ek;
	const char *key;
	int64_t create_rev; /* the incarnation of key we wait for */
	int64_t after_rev;  /* key was seen at this revision */
	int deleted;        /* saw the DELETE */
	int recheck;        /* the watch was cancelled (compaction): look again */
	int failed;         /* in-band error or unexpected cancel */
	struct vf_err err;
};

/* The watch starts at its creation revision (so etcd serves it from the synced
 * group, at once; one that starts in the past waits for the 100 ms sync loop).
 * If the store moved on since key was seen, look at it once to cover the gap:
 * gone, or a new incarnation, is a delete; present, any later delete is ours.
 * A failed look fails the wait (the caller retries with its backoff). */
static int lock_wd_gap(struct lock_wd *wd)
{
	struct vf_kv_pair p;
	char what[300], *body = NULL;
	size_t len;
	yajl_val tree = NULL;
	int rc;

	snprintf(what, sizeof(what), "wait for %s", wd->key);
	rc = etcd_build_range(wd->key, 0, &body, &len, &wd->err);
	if (rc == VF_OK)
		rc = etcd_rpc(wd->ek, "/v3/kv/range", body, len, 1, 0, &tree, what, &wd->err);
	if (rc == VF_OK) {
		rc = etcd_parse_first(tree, &p, &wd->err);
		if (rc == VF_ENOTFOUND || (rc == VF_OK && p.create_rev != wd->create_rev))
			wd->deleted = 1;
		if (rc == VF_OK)
			vf_kv_pair_clear(&p);
		else if (rc != VF_ENOTFOUND)
			vf_err_prefix(&wd->err, "%s", what);
	}
	if (rc != VF_OK && rc != VF_ENOTFOUND)
		wd->failed = 1;
	yajl_tree_free(tree);
	free(body);
	return wd->deleted || wd->failed;
}

static int lock_wd_msg(yajl_val msg, void *arg)
{
	struct lock_wd *wd = arg;
	struct etcd_wmsg m;

	if (etcd_parse_wmsg(msg, &m, &wd->err) != VF_OK) {
		wd->failed = 1;
		return 1;
	}
	if (m.error || (m.canceled && m.compact_revision == 0)) {
		vf_err_set(&wd->err, m.error ? VF_EUNAVAIL : VF_EPROTO, "wait for %s: watch: %s",
		           wd->key, m.reason ? m.reason : "cancelled");
		if (m.reason && (strstr(m.reason, "auth") || strstr(m.reason, "user name")))
			wd->err.code = VF_EAUTH;
		wd->failed = 1;
		return 1;
	}
	if (m.canceled) {
		wd->recheck = 1;
		return 1;
	}
	if (m.created && (m.revision == 0 || m.revision > wd->after_rev) && lock_wd_gap(wd))
		return 1;
	for (size_t i = 0; m.events && i < m.events->u.array.len; i++) {
		const char *type =
		        vf_json_str(vf_json_get(m.events->u.array.values[i], "type", NULL));

		if (type && strcmp(type, "DELETE") == 0) {
			wd->deleted = 1;
			return 1;
		}
	}
	return VF_OK;
}

static size_t lock_wd_data(const char *p, size_t n, void *arg)
{
	struct lock_wd *wd = arg;

	if (wd->deleted || wd->recheck || wd->failed)
		return 0;
	if (etcd_stream_feed(&wd->stream, p, n, lock_wd_msg, wd, &wd->err) != VF_OK)
		return 0;
	return n;
}

int etcd_wait_delete(struct etcd_kv *ek, const char *key, int64_t create_rev, int64_t after_rev,
                     int64_t deadline_ms, struct vf_err *err)
{
	char *body = NULL;
	size_t len;
	int rc, reauthed = 0;

	rc = etcd_build_watch(key, strlen(key), NULL, 0, 0, &body, &len, err);
	while (rc == VF_OK) {
		struct lock_wd wd = {{{0}}, ek, key, create_rev, after_rev, 0, 0, 0, {0}};
		struct vf_http_req req = {0};
		struct vf_http_resp resp;
		unsigned long gen = 0;
		int64_t now = vf_now_ms();
		int reauth = 0;

		if (deadline_ms >= 0 && now >= deadline_ms) {
			rc = vf_err_set(err, VF_ETIMEDOUT, "wait for %s: timed out", key);
			break;
		}
		req.path = "/v3/watch";
		req.body = body;
		req.body_len = len;
		req.idempotent = 1;
		req.timeout_ms = deadline_ms >= 0 ? (long)(deadline_ms - now) : -1;
		req.on_data = lock_wd_data;
		req.arg = &wd;
		rc = etcd_request(ek, &req, &resp, &gen, err);
		if (wd.deleted || wd.recheck) {
			rc = VF_OK;
		} else if (wd.failed) {
			rc = vf_err_set(err, wd.err.code ? wd.err.code : VF_EPROTO, "%s",
			                wd.err.msg);
			if (rc == VF_EAUTH && ek->username && !reauthed) {
				etcd_auth_invalidate(ek, gen);
				reauthed = 1;
				rc = VF_OK;
				etcd_stream_free(&wd.stream);
				vf_http_resp_free(&resp);
				continue;
			}
		} else if (rc == VF_OK && resp.status != 200) {
			char what[300];

			snprintf(what, sizeof(what), "wait for %s", key);
			rc = etcd_map_error(resp.status, wd.stream.buf.data, wd.stream.buf.len, 1,
			                    &reauth, what, err);
			if (reauth && ek->username && !reauthed) {
				etcd_auth_invalidate(ek, gen);
				reauthed = 1;
				rc = VF_OK;
				etcd_stream_free(&wd.stream);
				vf_http_resp_free(&resp);
				continue;
			}
		} else if (deadline_ms >= 0 && vf_now_ms() >= deadline_ms) {
			rc = vf_err_set(err, VF_ETIMEDOUT, "wait for %s: timed out", key);
		} else if (rc == VF_OK) {
			/* The stream ended without news: watch again. */
			etcd_stream_free(&wd.stream);
			vf_http_resp_free(&resp);
			continue;
		}
		etcd_stream_free(&wd.stream);
		vf_http_resp_free(&resp);
		break;
	}
	free(body);
	return rc;
}

/* ---- lock / unlock ---- */

/* The waiter keys this handle holds or awaits: a second lock of the same name
 * through the same lease is refused at once (locks are not re-entrant), and a
 * waiter key found in the store but not here is a leftover of an attempt that
 * failed half-way, which we adopt instead of refusing. */
struct etcd_lockkey {
	char *key;
	struct etcd_lockkey *next;
};

static int lock_claim(struct etcd_kv *ek, const char *key)
{
	struct etcd_lockkey *k;
	int rc = VF_OK;

	pthread_mutex_lock(&ek->mu);
	for (k = ek->lock_keys; k; k = k->next)
		if (strcmp(k->key, key) == 0)
			break;
	if (k)
		rc = VF_EBUSY;
	else if ((k = calloc(1, sizeof(*k))) == NULL || (k->key = strdup(key)) == NULL) {
		free(k);
		rc = VF_ENOMEM;
	} else {
		k->next = ek->lock_keys;
		ek->lock_keys = k;
	}
	pthread_mutex_unlock(&ek->mu);
	return rc;
}

static void lock_unclaim(struct etcd_kv *ek, const char *key)
{
	pthread_mutex_lock(&ek->mu);
	for (struct etcd_lockkey **p = &ek->lock_keys; *p; p = &(*p)->next)
		if (strcmp((*p)->key, key) == 0) {
			struct etcd_lockkey *k = *p;

			*p = k->next;
			free(k->key);
			free(k);
			break;
		}
	pthread_mutex_unlock(&ek->mu);
}

void etcd_lock_shutdown(struct etcd_kv *ek)
{
	while (ek->lock_keys) {
		struct etcd_lockkey *k = ek->lock_keys;

		ek->lock_keys = k->next;
		free(k->key);
		free(k);
	}
}

/* A store error worth retrying while we wait in the queue. */
static int lock_transient(int rc)
{
	return rc == VF_EUNAVAIL || rc == VF_EUNCERTAIN || rc == VF_EPROTO;
}

static void lock_sleep_ms(int64_t ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0)
		;
}

int etcd_lock(struct vf_kv *kv, struct vf_kv_lease *lease, const char *name, int timeout_ms,
              const char *const *reads, size_t nreads, struct vf_kv_result *reads_r,
              struct vf_kv_lock **lock_r, struct vf_err *err)
{
	struct etcd_kv *ek = (struct etcd_kv *)kv;
	struct etcd_lock *lk = NULL;
	struct vf_buf prefix = {0}, waiter = {0};
	struct vf_kv_pair me = {0}, owner = {0};
	char what[300], *body = NULL;
	size_t len;
	yajl_val tree = NULL;
	int64_t deadline = timeout_ms > 0 ? vf_now_ms() + timeout_ms : -1;
	int rc, ours = 0, waited = 0, claimed = 0, first = 1;

	*lock_r = NULL;
	if (nreads && reads_r)
		memset(reads_r, 0, nreads * sizeof(*reads_r));
	if (lease == NULL || name == NULL || *name == '\0' || (nreads && (!reads || !reads_r)))
		return vf_err_set(err, VF_EINVAL, "lock %s: needs a lease and a name",
		                  name ? name : "(null)");
	if (nreads + 3 > kv->max_txn_ops)
		return vf_err_set(err, VF_ELIMIT, "lock %s: %zu reads exceed etcd's txn limit",
		                  name, nreads);
	snprintf(what, sizeof(what), "lock %s", name);
	if (vf_buf_printf(&prefix, "%s/", name) != VF_OK ||
	    vf_buf_printf(&waiter, "%s/%s", name, lease->id) != VF_OK) {
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
		goto out;
	}
	rc = lock_claim(ek, waiter.data);
	if (rc != VF_OK) {
		vf_err_set(
		        err, rc,
		        "%s: already held or awaited through lease %s (locks are not re-entrant)",
		        what, lease->id);
		goto out;
	}
	claimed = 1;

	/* One round trip: enqueue (if not there yet), read our key, the owner, the reads. */
	rc = etcd_build_lock_acquire(waiter.data, prefix.data, etcd_lease_id(lease), reads, nreads,
	                             &body, &len, err);
	if (rc == VF_OK)
		rc = etcd_rpc(ek, "/v3/kv/txn", body, len, 0, 0, &tree, what, err);
	if (rc != VF_OK)
		goto out;
	/* Success: we enqueued. Failure: our waiter key was already there, left by an
	 * attempt that failed half-way (an uncertain write): adopt it. */
	first = etcd_txn_succeeded(tree) ? 1 : 0;
	ours = 1;
	if (etcd_parse_first(etcd_txn_resp(tree, first, "response_range"), &me, err) != VF_OK ||
	    etcd_parse_first(etcd_txn_resp(tree, first + 1, "response_range"), &owner, err) !=
	            VF_OK) {
		rc = vf_err_set(err, VF_EPROTO, "%s: etcd did not return the waiter keys", what);
		goto out;
	}
	if (!first)
		vf_log(VF_LOG_INFO,
		       "etcd: %s: adopting the waiter key %s left by an earlier attempt", what,
		       waiter.data);
	if (owner.create_rev != me.create_rev) {
		int64_t rev = etcd_header_revision(tree);

		if (timeout_ms == 0) {
			rc = vf_err_set(err, VF_EBUSY, "%s: held by %s", what, owner.key);
			goto out;
		}
		/* Wait for our predecessor to go, then look again (it may have had one).
		 * Store errors are retried until the deadline (waiting forever: until the
		 * store has been unreachable for the lease's TTL, which it cannot survive). */
		int64_t backoff = 100, failing_since = 0;

		for (;;) {
			struct vf_kv_pair pred = {0}, self = {0};

			yajl_tree_free(tree);
			tree = NULL;
			free(body);
			/* One snapshot: still queued? a predecessor? and the reads, which
			 * are the state under the fence when there is no predecessor. */
			rc = etcd_build_lock_check(waiter.data, prefix.data, me.create_rev, reads,
			                           nreads, &body, &len, err);
			if (rc == VF_OK)
				rc = etcd_rpc(ek, "/v3/kv/txn", body, len, 1, 0, &tree, what, err);
			if (rc == VF_OK)
				rc = etcd_header_revision(tree) > 0
				             ? VF_OK
				             : vf_err_set(err, VF_EPROTO, "%s: no revision", what);
			if (rc != VF_OK && lock_transient(rc)) {
				int64_t now = vf_now_ms();

				if (failing_since == 0)
					failing_since = now;
				if ((deadline >= 0 && now + backoff >= deadline) ||
				    (deadline < 0 && now - failing_since > lease->ttl_s * 1000LL)) {
					if (deadline >= 0)
						rc = vf_err_set(err, VF_ETIMEDOUT,
						                "%s: timed out after %d ms (%s)",
						                what, timeout_ms,
						                err ? err->msg : "");
					goto out;
				}
				vf_log(VF_LOG_DEBUG, "etcd: %s: retrying: %s", what,
				       err ? err->msg : "");
				lock_sleep_ms(backoff);
				backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
				continue;
			}
			if (rc != VF_OK)
				goto out;
			failing_since = 0;
			backoff = 100;
			rev = etcd_header_revision(tree);
			if (etcd_parse_first(etcd_txn_resp(tree, 0, "response_range"), &self,
			                     NULL) != VF_OK ||
			    self.create_rev != me.create_rev) {
				vf_kv_pair_clear(&self);
				ours = 0;
				rc = vf_err_set(err, VF_ELEASE,
				                "%s: our waiter key vanished (lease %s ended)",
				                what, lease->id);
				goto out;
			}
			vf_kv_pair_clear(&self);
			if (etcd_parse_first(etcd_txn_resp(tree, 1, "response_range"), &pred,
			                     NULL) != VF_OK)
				break; /* no predecessor: we own it */
			rc = etcd_wait_delete(ek, pred.key, pred.create_rev, rev, deadline, err);
			vf_kv_pair_clear(&pred);
			if (rc == VF_ETIMEDOUT)
				vf_err_set(err, rc, "%s: timed out after %d ms", what, timeout_ms);
			if (rc != VF_OK && !lock_transient(rc))
				goto out;
			/* Deleted, or the stream failed: look again (errors retried above). */
			if (rc != VF_OK) {
				lock_sleep_ms(backoff);
				backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
			}
		}
		waited = 1;
	}
	/* The reads came with the answer that made us the owner: the acquisition or,
	 * after waiting, the last check (same snapshot as "no predecessor"). */
	if (nreads)
		rc = lock_fill_reads(tree, waited ? 2 : first + 2, nreads, reads_r, err);
	if (rc != VF_OK)
		goto out;
	lk = calloc(1, sizeof(*lk));
	if (lk == NULL) {
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
		goto out;
	}
	lk->base.key = waiter.data;
	lk->base.fence = me.create_rev;
	waiter.data = NULL;
	*lock_r = &lk->base;
	ours = 0;
	claimed = 0; /* until unlock() */
out:
	if (ours && me.create_rev) /* give our place back; the lease would drop it anyway */
		lock_fenced_delete(ek, waiter.data, me.create_rev, NULL);
	if (claimed)
		lock_unclaim(ek, waiter.data);
	if (rc != VF_OK && nreads && reads_r)
		vf_kv_results_clear(reads_r, nreads);
	vf_kv_pair_clear(&me);
	vf_kv_pair_clear(&owner);
	yajl_tree_free(tree);
	free(body);
	vf_buf_free(&prefix);
	vf_buf_free(&waiter);
	return rc;
}

int etcd_unlock(struct vf_kv *kv, struct vf_kv_lock **lock, struct vf_err *err)
{
	struct etcd_kv *ek = (struct etcd_kv *)kv;
	struct etcd_lock *lk;
	int rc = VF_OK;

	if (lock == NULL || *lock == NULL)
		return VF_OK;
	lk = (struct etcd_lock *)*lock;
	*lock = NULL;
	if (!lk->released) {
		rc = lock_fenced_delete(ek, lk->base.key, lk->base.fence, err);
		if (rc == VF_ECONFLICT) /* released by its lease ending: nothing to do */
			rc = VF_OK;
	}
	lock_unclaim(ek, lk->base.key);
	free(lk->base.key);
	free(lk);
	return rc;
}

/* ---- lock_many ---- */

/* Free the n strings of v and v. */
static void lock_strv_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

int etcd_lock_many(struct vf_kv *kv, struct vf_kv_lease *lease, const char *const *names, size_t n,
                   const struct vf_kv_cmp *cmps, size_t ncmp, struct vf_kv_lock **locks_r,
                   struct vf_err *err)
{
	struct etcd_kv *ek = (struct etcd_kv *)kv;
	struct etcd_lock **lks = NULL;
	char **waiters = NULL, **prefixes = NULL, what[300], *body = NULL;
	size_t len, claimed = 0;
	yajl_val tree = NULL, a;
	int64_t rev;
	int rc = VF_OK;

	if (locks_r && n)
		memset(locks_r, 0, n * sizeof(*locks_r));
	if (lease == NULL || names == NULL || n == 0 || locks_r == NULL || (ncmp && cmps == NULL))
		return vf_err_set(err, VF_EINVAL, "lock_many: needs a lease and at least one name");
	snprintf(what, sizeof(what), "lock_many %s%s", names[0] ? names[0] : "(null)",
	         n > 1 ? " and others" : "");
	if (n + ncmp > kv->max_txn_ops)
		return vf_err_set(err, VF_ELIMIT,
		                  "%s: %zu names + %zu compares exceed etcd's txn limit of %u",
		                  what, n, ncmp, kv->max_txn_ops);
	for (size_t i = 0; i < n; i++) {
		if (names[i] == NULL || *names[i] == '\0')
			return vf_err_set(err, VF_EINVAL, "%s: name %zu is empty", what, i);
		for (size_t j = 0; j < i; j++)
			if (strcmp(names[i], names[j]) == 0)
				return vf_err_set(err, VF_EINVAL, "%s: %s is named twice", what,
				                  names[i]);
	}
	waiters = calloc(n, sizeof(*waiters));
	prefixes = calloc(n, sizeof(*prefixes));
	lks = calloc(n, sizeof(*lks));
	if (waiters == NULL || prefixes == NULL || lks == NULL) {
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
		goto out;
	}
	/* Everything that can run out of memory is allocated before the request. */
	for (size_t i = 0; i < n; i++) {
		struct vf_buf w = {0}, p = {0};

		if (vf_buf_printf(&w, "%s/%s", names[i], lease->id) != VF_OK ||
		    vf_buf_printf(&p, "%s/", names[i]) != VF_OK ||
		    (lks[i] = calloc(1, sizeof(*lks[i]))) == NULL) {
			vf_buf_free(&w);
			vf_buf_free(&p);
			rc = vf_err_set(err, VF_ENOMEM, "out of memory");
			goto out;
		}
		waiters[i] = w.data;
		prefixes[i] = p.data;
	}
	for (; claimed < n; claimed++) {
		rc = lock_claim(ek, waiters[claimed]);
		if (rc != VF_OK) {
			vf_err_set(err, rc,
			           "%s: %s already held or awaited through lease %s (locks are not "
			           "re-entrant)",
			           what, names[claimed], lease->id);
			goto out;
		}
	}

	/* One round trip: every lock prefix empty and every compare true, then enqueue
	 * (and so own) all; else read the first key under each prefix to say why. */
	rc = etcd_build_lock_many((const char *const *)waiters, (const char *const *)prefixes, n,
	                          etcd_lease_id(lease), cmps, ncmp, kv->max_txn_ops, &body, &len,
	                          err);
	if (rc == VF_OK)
		rc = etcd_rpc(ek, "/v3/kv/txn", body, len, 0, 0, &tree, what, err);
	if (rc != VF_OK)
		goto out;
	if (!etcd_txn_succeeded(tree)) {
		a = vf_json_get(tree, "responses", NULL);
		if (a == NULL || !YAJL_IS_ARRAY(a) || a->u.array.len != n) {
			rc = vf_err_set(err, VF_EPROTO, "%s: etcd did not return the lock owners",
			                what);
			goto out;
		}
		for (size_t i = 0; i < n; i++) {
			struct vf_kv_pair holder;

			if (etcd_parse_first(etcd_txn_resp(tree, i, "response_range"), &holder,
			                     NULL) != VF_OK)
				continue;
			rc = vf_err_set(err, VF_EBUSY, "%s: %s is held or awaited (%s)", what,
			                names[i], holder.key);
			vf_kv_pair_clear(&holder);
			goto out;
		}
		rc = vf_err_set(err, VF_ECONFLICT, "%s: a compare failed, no lock was taken", what);
		goto out;
	}
	/* Every waiter key was created by this txn: its revision is each lock's fence. */
	rev = etcd_header_revision(tree);
	if (rev <= 0) {
		rc = vf_err_set(err, VF_EPROTO, "%s: etcd sent no revision for the locks", what);
		goto out; /* the keys stay under the lease, as after a lost answer */
	}
	for (size_t i = 0; i < n; i++) {
		lks[i]->base.key = waiters[i];
		lks[i]->base.fence = rev;
		waiters[i] = NULL;
		locks_r[i] = &lks[i]->base;
		lks[i] = NULL;
	}
	claimed = 0; /* until unlock() */
out:
	for (size_t i = 0; i < claimed; i++)
		lock_unclaim(ek, waiters[i]);
	for (size_t i = 0; lks && i < n; i++)
		free(lks[i]);
	free(lks);
	lock_strv_free(waiters, n);
	lock_strv_free(prefixes, n);
	yajl_tree_free(tree);
	free(body);
	return rc;
}
