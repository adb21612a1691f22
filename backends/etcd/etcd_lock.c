/*
 * Lease-locks on KV primitives (not /v3/lock/lock, see WIRE.md 1.6).
 *
 * Lock name N, lease L: the waiter key is "N/.lock/<L in hex>" (ETCD_LOCK_SEG: no
 * data key can be under it, kv.h), attached to L. The
 * owner is the waiter with the smallest create_revision; the fence is the
 * owner's create_revision (VF_CMP_LOCK_HELD compares CREATE(waiter) == fence).
 * A waiter that is not the owner waits for its predecessor (the greatest
 * create_revision below its own) to be deleted, then re-checks with one request
 * (which also reads the caller's keys under the fence): FIFO, no polling, no herd
 * of requests. Without reads, and when the check listed every waiter ahead (at
 * most ETCD_LOCK_AHEAD_MAX), it waits until all of those are gone and owns the
 * lock without the re-check. The DELETEs come from a watch of the lock's prefix
 * that the handle keeps open across waits (see "waiting on a watch kept per lock
 * prefix" below for why a watch per wait is slow).
 *
 * Locks are not re-entrant: locking N again through the same lease while this
 * handle holds or awaits it fails at once with VF_EBUSY (threads that contend for
 * one lock need a lease each). A waiter key found in the store that this handle
 * does not know (left by an attempt whose answer was lost) is adopted.
 *
 * lock_many (n names in one txn) is in etcd_lock_many.c.
 */
#include <config.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "etcd_int.h"

/* Delete key only if its create_revision is still fence. VF_ECONFLICT if not. */
static int lock_fenced_delete_within(struct etcd_kv *ek, const char *key, int64_t fence,
                                     long timeout_ms, struct vf_err *err)
{
	char what[300], *body = NULL;
	size_t len;
	yajl_val tree = NULL;
	int rc;

	snprintf(what, sizeof(what), "unlock %s", key);
	rc = etcd_build_cas_del(key, 0, fence, &body, &len, err);
	if (rc == VF_OK)
		rc = etcd_rpc(ek, "/v3/kv/txn", body, len, 0, timeout_ms, &tree, what, err);
	if (rc == VF_OK && !etcd_txn_succeeded(tree))
		rc = vf_err_set(err, VF_ECONFLICT, "%s: not held any more", what);
	yajl_tree_free(tree);
	free(body);
	return rc;
}

static int lock_fenced_delete(struct etcd_kv *ek, const char *key, int64_t fence,
                              struct vf_err *err)
{
	return lock_fenced_delete_within(ek, key, fence, 0, err);
}

/* Delete our waiter key whatever its fence (after a lost acquisition answer: the
 * key, if there, is ours and nobody else's; a new lock() cancels this first). */
static int lock_plain_delete_within(struct etcd_kv *ek, const char *key, long timeout_ms,
                                    struct vf_err *err)
{
	char what[300], *body = NULL;
	size_t len;
	yajl_val tree = NULL;
	int rc;

	snprintf(what, sizeof(what), "give back %s", key);
	rc = etcd_build_delete(key, &body, &len, err);
	if (rc == VF_OK)
		rc = etcd_rpc(ek, "/v3/kv/deleterange", body, len, 0, timeout_ms, &tree, what, err);
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

/* ---- waiting on a watch kept per lock prefix ----
 *
 * A watch created for one wait is often registered by etcd as "unsynced": the
 * server takes its current revision, then registers the watcher; a write landing
 * in between (common under contention) leaves the watcher behind, and its events
 * then wait for etcd's 100 ms sync loop (traced: a predecessor's DELETE arriving
 * 50-70 ms late). So a handle keeps one watch per lock prefix it has waited on,
 * open across waits (synced once, it stays synced): at most LOCK_PW_MAX, the least
 * recently used idle one closed for a new one. Each remembers its last
 * LOCK_PW_RING events; a waiter looks there for its predecessor's DELETE (or a
 * new incarnation) after the revision it checked at, and when the ring or a
 * RESYNC may have lost such an event it checks again with a request. */
#define LOCK_PW_MAX 8
#define LOCK_PW_RING 64
#define LOCK_PW_RECHECK_MS 5000 /* a wait looks again (one request) after this long */

struct lock_pw_ev {
	char *key;
	int64_t rev, create_rev;
	int del;
};

struct lock_pw {
	char *prefix;
	struct vf_kv_watch *watch;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int64_t lost; /* events up to this revision may be missing */
	struct lock_pw_ev ring[LOCK_PW_RING];
	unsigned head, n; /* oldest entry, count */
	int refs;
	int64_t used;
	struct lock_pw *next;
};

static int lock_pw_cb(const struct vf_kv_event *ev, void *arg)
{
	struct lock_pw *pw = arg;

	pthread_mutex_lock(&pw->mu);
	if (ev->type == VF_EV_RESYNC) {
		pw->lost = ev->revision > pw->lost ? ev->revision : pw->lost;
	} else {
		struct lock_pw_ev *e;
		char *key = strdup(ev->key);

		if (pw->n == LOCK_PW_RING) { /* drop the oldest */
			e = &pw->ring[pw->head];
			if (e->rev > pw->lost)
				pw->lost = e->rev;
			free(e->key);
			pw->head = (pw->head + 1) % LOCK_PW_RING;
			pw->n--;
		}
		if (key == NULL) { /* out of memory: say this event may be missing */
			pw->lost = ev->mod_rev > pw->lost ? ev->mod_rev : pw->lost;
		} else {
			e = &pw->ring[(pw->head + pw->n) % LOCK_PW_RING];
			e->key = key;
			e->rev = ev->mod_rev;
			e->create_rev = ev->create_rev;
			e->del = ev->type == VF_EV_DELETE;
			pw->n++;
		}
	}
	pthread_cond_broadcast(&pw->cond);
	pthread_mutex_unlock(&pw->mu);
	return 0;
}

static void lock_pw_free(struct etcd_kv *ek, struct lock_pw *pw)
{
	etcd_watch_stop(&ek->base, &pw->watch);
	for (unsigned i = 0; i < pw->n; i++)
		free(pw->ring[(pw->head + i) % LOCK_PW_RING].key);
	pthread_mutex_destroy(&pw->mu);
	pthread_cond_destroy(&pw->cond);
	free(pw->prefix);
	free(pw);
}

/* The watch of prefix (a reference: lock_pw_put), started after after_rev if new;
 * NULL if none can be had (the caller waits the old way). */
static struct lock_pw *lock_pw_get(struct etcd_kv *ek, const char *prefix, int64_t after_rev)
{
	struct lock_pw *pw, *lru = NULL, **lrup = NULL, *evict = NULL;
	int count = 0;

	pthread_mutex_lock(&ek->pw_mu);
	for (struct lock_pw **p = &ek->pws; (pw = *p) != NULL; p = &pw->next) {
		if (strcmp(pw->prefix, prefix) == 0) {
			pw->refs++;
			pw->used = vf_now_ms();
			pthread_mutex_unlock(&ek->pw_mu);
			return pw;
		}
		count++;
		if (pw->refs == 0 && (lru == NULL || pw->used < lru->used))
			lru = pw, lrup = p;
	}
	if (count >= LOCK_PW_MAX) {
		if (lru == NULL) { /* all busy: wait the old way */
			pthread_mutex_unlock(&ek->pw_mu);
			return NULL;
		}
		*lrup = lru->next;
		evict = lru;
	}
	pthread_mutex_unlock(&ek->pw_mu);
	if (evict)
		lock_pw_free(ek, evict);

	pw = calloc(1, sizeof(*pw));
	if (pw == NULL || (pw->prefix = strdup(prefix)) == NULL) {
		free(pw);
		return NULL;
	}
	pthread_mutex_init(&pw->mu, NULL);
	vf_cond_init(&pw->cond);
	pw->refs = 1;
	pw->used = vf_now_ms();
	pw->lost = after_rev; /* it sees what comes after after_rev, not before */
	if (etcd_watch_start(&ek->base, prefix, after_rev, lock_pw_cb, pw, &pw->watch, NULL) !=
	    VF_OK) {
		lock_pw_free(ek, pw);
		return NULL;
	}
	pthread_mutex_lock(&ek->pw_mu);
	for (struct lock_pw *o = ek->pws; o; o = o->next)
		if (strcmp(o->prefix, prefix) == 0) { /* another thread was quicker */
			o->refs++;
			pthread_mutex_unlock(&ek->pw_mu);
			lock_pw_free(ek, pw);
			return o;
		}
	pw->next = ek->pws;
	ek->pws = pw;
	pthread_mutex_unlock(&ek->pw_mu);
	return pw;
}

static void lock_pw_put(struct etcd_kv *ek, struct lock_pw *pw)
{
	pthread_mutex_lock(&ek->pw_mu);
	pw->refs--;
	pthread_mutex_unlock(&ek->pw_mu);
}

void etcd_lock_pw_shutdown(struct etcd_kv *ek)
{
	pthread_mutex_lock(&ek->pw_mu);
	struct lock_pw *pw = ek->pws;

	ek->pws = NULL;
	pthread_mutex_unlock(&ek->pw_mu);
	while (pw) {
		struct lock_pw *next = pw->next;

		lock_pw_free(ek, pw);
		pw = next;
	}
}

/* Has the waiter key k (created at create_rev) gone in an event after after_rev
 * (deleted, or put again: a new incarnation)? Under pw->mu. */
static int lock_pw_went(const struct lock_pw *pw, const char *k, int64_t create_rev,
                        int64_t after_rev)
{
	for (unsigned i = 0; i < pw->n; i++) {
		const struct lock_pw_ev *e = &pw->ring[(pw->head + i) % LOCK_PW_RING];

		if (e->rev > after_rev && strcmp(e->key, k) == 0 &&
		    (e->del || e->create_rev != create_rev))
			return 1;
	}
	return 0;
}

/* Wait until key (created at create_rev, seen at after_rev) is deleted or
 * re-created, or until self (our waiter key) is: VF_OK, and the caller looks
 * again. With ahead (the n waiters before us at after_rev, all of them, key
 * among them), wait until every one of them went instead: then *gone_r = 1
 * (nothing before us any more, nothing of self seen, no event lost). VF_ETIMEDOUT
 * at deadline_ms (< 0: none). */
static int lock_wait_pred(struct etcd_kv *ek, const char *prefix, const char *key,
                          int64_t create_rev, const struct vf_kv_list *ahead, const char *self,
                          int64_t after_rev, int64_t deadline_ms, int *gone_r, struct vf_err *err)
{
	struct lock_pw *pw = lock_pw_get(ek, prefix, after_rev);
	int64_t slice_end = vf_now_ms() + LOCK_PW_RECHECK_MS;
	int rc = VF_OK, done = 0;

	*gone_r = 0;
	if (pw == NULL)
		return etcd_wait_delete(ek, key, create_rev, after_rev, deadline_ms, err);
	pthread_mutex_lock(&pw->mu);
	while (!done) {
		if (pw->lost > after_rev)
			break; /* an event after after_rev may be missing: look again */
		int pred_went = lock_pw_went(pw, key, create_rev, after_rev), self_seen = 0,
		    all_went = ahead != NULL;

		for (unsigned i = 0; i < pw->n; i++) {
			const struct lock_pw_ev *e = &pw->ring[(pw->head + i) % LOCK_PW_RING];

			if (e->rev > after_rev && strcmp(e->key, self) == 0)
				self_seen = 1; /* our lease ended? the check says */
		}
		for (size_t i = 0; ahead && i < ahead->count && all_went; i++)
			all_went = lock_pw_went(pw, ahead->items[i].key, ahead->items[i].create_rev,
			                        after_rev);
		/* with ahead: the predecessor going is enough to look again (it may
		 * be the last one), all of them going makes us the owner */
		done = (ahead ? all_went : pred_went) || self_seen;
		*gone_r = all_went && !self_seen;
		if (done)
			break;
		int64_t now = vf_now_ms(), until = now + LOCK_PW_RECHECK_MS;

		if (deadline_ms >= 0 && now >= deadline_ms) {
			rc = vf_err_set(err, VF_ETIMEDOUT, "wait for %s: timed out", key);
			break;
		}
		if (now >= slice_end)
			break; /* a look now and then, in case the store went away */
		if (deadline_ms >= 0 && deadline_ms < until)
			until = deadline_ms;
		if (slice_end < until)
			until = slice_end;
		vf_cond_wait_until(&pw->cond, &pw->mu, until);
	}
	pthread_mutex_unlock(&pw->mu);
	lock_pw_put(ek, pw);
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

int etcd_lock_claim(struct etcd_kv *ek, const char *key)
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

void etcd_lock_unclaim(struct etcd_kv *ek, const char *key)
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

/* ---- give-backs: waiter keys to delete once the store answers ---- */

struct etcd_giveback {
	char *key;
	int64_t fence;
	int64_t next_ms;
	int backoff_ms;
	int running; /* the keep-alive thread is deleting it */
	int dropped; /* its lease ended or a lock() adopted it meanwhile */
	struct etcd_giveback *next;
};

#define GIVEBACK_MIN_MS 250
#define GIVEBACK_MAX_MS 2000

static void giveback_free(struct etcd_giveback *g)
{
	free(g->key);
	free(g);
}

/* The release of key (fence) failed for a reason that may pass: keep trying in
 * the background. A lock with no waiter behind it but this key would otherwise
 * be owned by nobody until the lease ends, which a live daemon never lets happen. */
static void lock_giveback_later(struct etcd_kv *ek, const char *key, int64_t fence, const char *why)
{
	struct etcd_giveback *g;

	pthread_mutex_lock(&ek->mu);
	for (g = ek->givebacks; g; g = g->next)
		if (strcmp(g->key, key) == 0 && !g->dropped)
			break;
	if (g == NULL && (g = calloc(1, sizeof(*g))) != NULL) {
		if ((g->key = strdup(key)) == NULL) {
			free(g);
			g = NULL;
		} else {
			g->next = ek->givebacks;
			ek->givebacks = g;
		}
	}
	if (g) {
		g->fence = fence;
		g->backoff_ms = GIVEBACK_MIN_MS;
		g->next_ms = vf_now_ms() + GIVEBACK_MIN_MS;
		if (etcd_ka_kick_locked(ek) != VF_OK)
			g = NULL;
	}
	pthread_mutex_unlock(&ek->mu);
	vf_log(VF_LOG_WARN, "etcd: waiter key %s left behind (%s)%s", key, why,
	       g ? ": giving it back in the background" : "; out of memory, not retried");
}

/* lock() of key again: it adopts the key instead (after a running attempt ends). */
static void lock_giveback_cancel(struct etcd_kv *ek, const char *key)
{
	pthread_mutex_lock(&ek->mu);
	for (;;) {
		struct etcd_giveback **p, *g = NULL;

		for (p = &ek->givebacks; *p; p = &(*p)->next)
			if (strcmp((*p)->key, key) == 0) {
				g = *p;
				break;
			}
		if (g == NULL)
			break;
		if (g->running) { /* the thread frees it once its attempt ends */
			g->dropped = 1;
			pthread_cond_wait(&ek->cond, &ek->mu);
			continue;
		}
		*p = g->next;
		giveback_free(g);
	}
	pthread_mutex_unlock(&ek->mu);
}

int etcd_lock_giveback_due(struct etcd_kv *ek, int64_t now, long timeout_ms, int64_t *wake_ms)
{
	struct etcd_giveback *g, **p;
	struct vf_err err = {0};
	char *key;
	int64_t fence;
	int rc;

	for (g = ek->givebacks; g; g = g->next) {
		if (g->running || g->dropped)
			continue;
		if (g->next_ms <= now)
			break;
		if (g->next_ms < *wake_ms)
			*wake_ms = g->next_ms;
	}
	if (g == NULL)
		return 0;
	g->running = 1;
	key = g->key;
	fence = g->fence;
	pthread_mutex_unlock(&ek->mu);
	rc = fence ? lock_fenced_delete_within(ek, key, fence, timeout_ms, &err)
	           : lock_plain_delete_within(ek, key, timeout_ms, &err);
	pthread_mutex_lock(&ek->mu);
	g->running = 0;
	if (rc == VF_OK || rc == VF_ECONFLICT || rc == VF_ENOTFOUND || g->dropped) {
		if (!g->dropped)
			vf_log(VF_LOG_INFO, "etcd: %s given back%s", g->key,
			       rc == VF_OK ? "" : " (already gone)");
		for (p = &ek->givebacks; *p; p = &(*p)->next)
			if (*p == g) {
				*p = g->next;
				break;
			}
		giveback_free(g);
	} else {
		vf_log(VF_LOG_DEBUG, "etcd: release of %s failed again: %s", g->key, err.msg);
		g->next_ms = vf_now_ms() + g->backoff_ms;
		g->backoff_ms =
		        g->backoff_ms * 2 > GIVEBACK_MAX_MS ? GIVEBACK_MAX_MS : g->backoff_ms * 2;
	}
	pthread_cond_broadcast(&ek->cond);
	return 1;
}

void etcd_lock_giveback_drop(struct etcd_kv *ek, const char *lease_id)
{
	size_t n = strlen(lease_id);

	for (struct etcd_giveback **p = &ek->givebacks; *p;) {
		struct etcd_giveback *g = *p;
		size_t kl = strlen(g->key);

		if (kl > n && g->key[kl - n - 1] == '/' && strcmp(g->key + kl - n, lease_id) == 0) {
			if (g->running) {
				g->dropped = 1;
			} else {
				*p = g->next;
				giveback_free(g);
				continue;
			}
		}
		p = &g->next;
	}
}

void etcd_lock_shutdown(struct etcd_kv *ek)
{
	while (ek->givebacks) {
		struct etcd_giveback *g = ek->givebacks;

		ek->givebacks = g->next;
		giveback_free(g);
	}
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

/* Sleep *backoff_ms, then double it (at most 2 s) for the next retry. */
static void lock_backoff(int64_t *backoff_ms)
{
	lock_sleep_ms(*backoff_ms);
	*backoff_ms = *backoff_ms * 2 > 2000 ? 2000 : *backoff_ms * 2;
}

/* One lock() call: what its steps share. */
struct lock_try {
	struct etcd_kv *ek;
	struct vf_kv_lease *lease;
	const char *const *reads;
	size_t nreads;
	int timeout_ms;
	int64_t deadline;        /* < 0: none */
	struct vf_buf prefix;    /* "N/.lock/" */
	struct vf_buf waiter;    /* "N/.lock/<lease>" */
	struct vf_kv_pair me;    /* our waiter key: its create_revision is the fence */
	struct vf_kv_pair owner; /* the first waiter when we enqueued */
	char what[300];
	char *body;
	size_t len;
	yajl_val tree; /* the last answer */
	int first;     /* our key's index in the acquisition's answer (0: adopted) */
	int ours;      /* our waiter key is queued: give it back if we fail */
};

/* lock()'s arguments: a lease, a name, and reads that fit in its txn. */
static int lock_args_check(const struct vf_kv *kv, const struct vf_kv_lease *lease,
                           const char *name, const char *const *reads, size_t nreads,
                           const struct vf_kv_result *reads_r, struct vf_err *err)
{
	int rc;

	if (lease == NULL || name == NULL || *name == '\0' || (nreads && (!reads || !reads_r)))
		return vf_err_set(err, VF_EINVAL, "lock %s: needs a lease and a name",
		                  name ? name : "(null)");
	if (nreads + 3 > kv->max_txn_ops)
		return vf_err_set(err, VF_ELIMIT, "lock %s: %zu reads exceed etcd's txn limit",
		                  name, nreads);
	if ((rc = vf_kv_key_check(name, VF_KEY_LOCK, "lock", err)) != VF_OK)
		return rc;
	for (size_t i = 0; i < nreads; i++)
		if ((rc = vf_kv_key_check(reads[i], VF_KEY, "lock read", err)) != VF_OK)
			return rc;
	return VF_OK;
}

/* One round trip: enqueue (if not there yet), read our key, the owner, the reads. */
static int lock_enqueue(struct lock_try *t, struct vf_err *err)
{
	int rc;

	rc = etcd_build_lock_acquire(t->waiter.data, t->prefix.data, etcd_lease_id(t->lease),
	                             t->reads, t->nreads, &t->body, &t->len, err);
	if (rc == VF_OK)
		rc = etcd_rpc(t->ek, "/v3/kv/txn", t->body, t->len, 0, 0, &t->tree, t->what, err);
	/* The answer was lost: our waiter key may be queued. A retry adopts it; if
	 * none comes, it must not own the lock for nobody: give it back (any fence). */
	if (rc == VF_EUNCERTAIN)
		lock_giveback_later(t->ek, t->waiter.data, 0, err ? err->msg : "outcome unknown");
	if (rc != VF_OK)
		return rc;
	/* Success: we enqueued. Failure: our waiter key was already there, left by an
	 * attempt that failed half-way (an uncertain write): adopt it. */
	t->first = etcd_txn_succeeded(t->tree) ? 1 : 0;
	t->ours = 1;
	if (etcd_parse_first(etcd_txn_resp(t->tree, t->first, "response_range"), &t->me, err) !=
	            VF_OK ||
	    etcd_parse_first(etcd_txn_resp(t->tree, t->first + 1, "response_range"), &t->owner,
	                     err) != VF_OK)
		return vf_err_set(err, VF_EPROTO, "%s: etcd did not return the waiter keys",
		                  t->what);
	if (!t->first)
		vf_log(VF_LOG_INFO,
		       "etcd: %s: adopting the waiter key %s left by an earlier attempt", t->what,
		       t->waiter.data);
	return VF_OK;
}

/* One snapshot: still queued? a predecessor? and the reads, which are the state
 * under the fence when there is no predecessor. */
static int lock_check(struct lock_try *t, struct vf_err *err)
{
	int rc;

	yajl_tree_free(t->tree);
	t->tree = NULL;
	free(t->body);
	rc = etcd_build_lock_check(t->waiter.data, t->prefix.data, t->me.create_rev, t->reads,
	                           t->nreads, &t->body, &t->len, err);
	if (rc == VF_OK)
		rc = etcd_rpc(t->ek, "/v3/kv/txn", t->body, t->len, 1, 0, &t->tree, t->what, err);
	if (rc == VF_OK)
		rc = etcd_header_revision(t->tree) > 0
		             ? VF_OK
		             : vf_err_set(err, VF_EPROTO, "%s: no revision", t->what);
	return rc;
}

/* lock_check, its store errors retried until the deadline (waiting forever: until
 * the store has been unreachable for the lease's TTL, which it cannot survive).
 * *backoff_ms is the next pause, back to 100 ms once the store answered. */
static int lock_look(struct lock_try *t, int64_t *backoff_ms, struct vf_err *err)
{
	int64_t failing_since = 0;

	for (;;) {
		int rc = lock_check(t, err);
		int64_t now;

		if (rc == VF_OK)
			*backoff_ms = 100;
		if (rc == VF_OK || !lock_transient(rc))
			return rc;
		now = vf_now_ms();
		if (failing_since == 0)
			failing_since = now;
		if ((t->deadline >= 0 && now + *backoff_ms >= t->deadline) ||
		    (t->deadline < 0 && now - failing_since > t->lease->ttl_s * 1000LL)) {
			if (t->deadline >= 0)
				rc = vf_err_set(err, VF_ETIMEDOUT, "%s: timed out after %d ms (%s)",
				                t->what, t->timeout_ms, err ? err->msg : "");
			return rc;
		}
		vf_log(VF_LOG_DEBUG, "etcd: %s: retrying: %s", t->what, err ? err->msg : "");
		lock_backoff(backoff_ms);
	}
}

/* Is our waiter key in the check's answer the one we queued? If not, our lease
 * ended: VF_ELEASE, and nothing of ours is left to give back. */
static int lock_still_queued(struct lock_try *t, struct vf_err *err)
{
	struct vf_kv_pair self = {0};
	int same = etcd_parse_first(etcd_txn_resp(t->tree, 0, "response_range"), &self, NULL) ==
	                   VF_OK &&
	           self.create_rev == t->me.create_rev;

	vf_kv_pair_clear(&self);
	if (same)
		return VF_OK;
	t->ours = 0;
	return vf_err_set(err, VF_ELEASE, "%s: our waiter key vanished (lease %s ended)", t->what,
	                  t->lease->id);
}

/* The waiters ahead of us in the check's answer (a check without reads), if it
 * lists all of them and there is one: 1, ahead_r filled (the caller clears it). */
static int lock_ahead(yajl_val tree, struct vf_kv_list *ahead_r)
{
	yajl_val ar = etcd_txn_resp(tree, 2, "response_range");
	yajl_val more = vf_json_get(ar, "more", NULL);

	return ar && !(more && YAJL_IS_TRUE(more)) &&
	       etcd_parse_range(ar, tree, ahead_r, NULL) == VF_OK && ahead_r->count > 0;
}

/* We are not the owner: wait for our predecessor to go, then look again (it may
 * have had one), until none is left. Store errors are retried (lock_look). On
 * VF_OK, t->tree is the answer that made us the owner. */
static int lock_wait_turn(struct lock_try *t, struct vf_err *err)
{
	int64_t backoff = 100;

	for (;;) {
		struct vf_kv_pair pred = {0};
		struct vf_kv_list ahead = {0};
		int gone = 0, have_ahead = 0, rc;

		rc = lock_look(t, &backoff, err);
		if (rc == VF_OK)
			rc = lock_still_queued(t, err);
		if (rc != VF_OK)
			return rc;
		if (etcd_parse_first(etcd_txn_resp(t->tree, 1, "response_range"), &pred, NULL) !=
		    VF_OK)
			return VF_OK; /* no predecessor: we own it */
		/* Without reads to take under the fence, the waiters ahead of us (all of
		 * them, when there are few) are enough: once every one went, nobody is
		 * before us (later waiters have larger create revisions) and the lock is
		 * ours without another look (a lease that ended meanwhile still fails
		 * every fenced write). */
		if (t->nreads == 0)
			have_ahead = lock_ahead(t->tree, &ahead);
		rc = lock_wait_pred(t->ek, t->prefix.data, pred.key, pred.create_rev,
		                    have_ahead ? &ahead : NULL, t->waiter.data,
		                    etcd_header_revision(t->tree), t->deadline, &gone, err);
		vf_kv_pair_clear(&pred);
		vf_kv_list_clear(&ahead);
		if (rc == VF_OK && gone && have_ahead)
			return VF_OK;
		if (rc == VF_ETIMEDOUT)
			vf_err_set(err, rc, "%s: timed out after %d ms", t->what, t->timeout_ms);
		if (rc != VF_OK && !lock_transient(rc))
			return rc;
		/* Deleted, or the stream failed: look again (errors retried there). */
		if (rc != VF_OK)
			lock_backoff(&backoff);
	}
}

/* The end of a lock() call, taken or not: give our place back if we still have
 * it (if that fails, the lease would drop it, but only when it ends: meanwhile
 * it would own the lock once the waiters ahead went), and free the rest. */
static void lock_try_end(struct lock_try *t, int claimed)
{
	if (t->ours && t->me.create_rev) {
		struct vf_err gerr = {0};
		int grc = lock_fenced_delete(t->ek, t->waiter.data, t->me.create_rev, &gerr);

		if (grc != VF_OK && grc != VF_ECONFLICT)
			lock_giveback_later(t->ek, t->waiter.data, t->me.create_rev, gerr.msg);
	}
	if (claimed)
		etcd_lock_unclaim(t->ek, t->waiter.data);
	vf_kv_pair_clear(&t->me);
	vf_kv_pair_clear(&t->owner);
	yajl_tree_free(t->tree);
	free(t->body);
	vf_buf_free(&t->prefix);
	vf_buf_free(&t->waiter);
}

int etcd_lock(struct vf_kv *kv, struct vf_kv_lease *lease, const char *name, int timeout_ms,
              const char *const *reads, size_t nreads, struct vf_kv_result *reads_r,
              struct vf_kv_lock **lock_r, struct vf_err *err)
{
	struct etcd_kv *ek = (struct etcd_kv *)kv;
	struct etcd_lock *lk = NULL;
	struct lock_try t = {.ek = ek,
	                     .lease = lease,
	                     .reads = reads,
	                     .nreads = nreads,
	                     .timeout_ms = timeout_ms,
	                     .deadline = timeout_ms > 0 ? vf_now_ms() + timeout_ms : -1,
	                     .first = 1};
	int rc, waited = 0, claimed = 0;

	*lock_r = NULL;
	if (nreads && reads_r)
		memset(reads_r, 0, nreads * sizeof(*reads_r));
	rc = lock_args_check(kv, lease, name, reads, nreads, reads_r, err);
	if (rc != VF_OK)
		return rc;
	snprintf(t.what, sizeof(t.what), "lock %s", name);
	if (vf_buf_printf(&t.prefix, "%s" ETCD_LOCK_SEG, name) != VF_OK ||
	    vf_buf_printf(&t.waiter, "%s" ETCD_LOCK_SEG "%s", name, lease->id) != VF_OK) {
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
		goto out;
	}
	lock_giveback_cancel(ek, t.waiter.data);
	rc = etcd_lock_claim(ek, t.waiter.data);
	if (rc != VF_OK) {
		vf_err_set(
		        err, rc,
		        "%s: already held or awaited through lease %s (locks are not re-entrant)",
		        t.what, lease->id);
		goto out;
	}
	claimed = 1;
	rc = lock_enqueue(&t, err);
	if (rc != VF_OK)
		goto out;
	if (t.owner.create_rev != t.me.create_rev) {
		if (timeout_ms == 0) {
			rc = vf_err_set(err, VF_EBUSY, "%s: held by %s", t.what, t.owner.key);
			goto out;
		}
		rc = lock_wait_turn(&t, err);
		if (rc != VF_OK)
			goto out;
		waited = 1;
	}
	/* The reads came with the answer that made us the owner: the acquisition or,
	 * after waiting, the last check (same snapshot as "no predecessor"). */
	if (nreads)
		rc = lock_fill_reads(t.tree, waited ? 2 : t.first + 2, nreads, reads_r, err);
	if (rc != VF_OK)
		goto out;
	lk = calloc(1, sizeof(*lk));
	if (lk == NULL) {
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
		goto out;
	}
	lk->base.key = t.waiter.data;
	lk->base.fence = t.me.create_rev;
	t.waiter.data = NULL;
	*lock_r = &lk->base;
	t.ours = 0;
	claimed = 0; /* until unlock() */
out:
	lock_try_end(&t, claimed);
	if (rc != VF_OK && nreads && reads_r)
		vf_kv_results_clear(reads_r, nreads);
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
		else if (rc != VF_OK && rc != VF_ENOMEM)
			lock_giveback_later(ek, lk->base.key, lk->base.fence,
			                    err ? err->msg : vf_strerror(rc));
	}
	etcd_lock_unclaim(ek, lk->base.key);
	free(lk->base.key);
	free(lk);
	return rc;
}
