/* The Consul driver's locks: in-process exclusion, waiting for a holder or
 * a lock-delay, lock, lock_many and unlock. */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "consul_int.h"

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
int consul_lock(struct vf_kv *kv, struct vf_kv_lease *lease, const char *name, int timeout_ms,
                const char *const *reads, size_t nreads, struct vf_kv_result *reads_r,
                struct vf_kv_lock **lock_r, struct vf_err *err)
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

/* lock_many()'s arguments: a lease, names and locks_r, the compares, all in one
 * txn. */
static int consul_lock_many_check(const struct vf_kv_lease *lease, const char *const *names,
                                  size_t n, const struct vf_kv_cmp *cmps, size_t ncmp,
                                  struct vf_kv_lock *const *locks_r, struct vf_err *err)
{
	int rc;

	if (lease == NULL || (n && (names == NULL || locks_r == NULL)) || (ncmp && cmps == NULL))
		return vf_err_set(err, VF_EINVAL,
		                  "lock_many: a lease, names and locks are required");
	for (size_t i = 0; i < n; i++)
		if ((rc = vf_kv_key_check(names[i], VF_KEY_LOCK, "lock_many", err)) != VF_OK)
			return rc;
	if ((rc = vf_kv_txn_keys_check(cmps, ncmp, NULL, 0, err)) != VF_OK)
		return rc;
	if (ncmp + n > CONSUL_TXN_OPS_ADVERTISED)
		return vf_err_set(err, VF_ELIMIT,
		                  "lock_many %s: %zu names and %zu compares exceed the txn "
		                  "limit of %d",
		                  n ? names[0] : "", n, ncmp, CONSUL_TXN_OPS_ADVERTISED);
	return VF_OK;
}

/* A handle for each name (its lock key, the lease's session), each taken in this
 * process (which also catches a name listed twice): lks[0..*taken_r) are. */
static int consul_lock_many_take(struct consul_kv *ck, const struct vf_kv_lease *lease,
                                 const char *const *names, size_t n, struct consul_lock **lks,
                                 size_t *taken_r, struct vf_err *err)
{
	int rc = VF_OK;

	for (size_t i = 0; i < n && rc == VF_OK; i++) {
		lks[i] = calloc(1, sizeof(*lks[i]));
		if (lks[i] == NULL || (lks[i]->base.key = consul_lock_key(names[i])) == NULL) {
			rc = vf_err_set(err, VF_ENOMEM, "out of memory");
			break;
		}
		snprintf(lks[i]->sid, sizeof(lks[i]->sid), "%s", lease->id);
	}
	for (; *taken_r < n && rc == VF_OK; (*taken_r)++) {
		rc = consul_held_take(ck, lks[*taken_r]->base.key, lease->id, names[*taken_r], err);
		if (rc != VF_OK)
			break;
	}
	return rc;
}

/* The txn rolled back: a lock held by another session or in its lock-delay is
 * VF_EBUSY (unless the lease is gone, or Consul refused the txn), else the
 * failure as any txn's. */
static int consul_lock_many_refused(const struct consul_txn_op *ops, size_t ncmp, size_t nops,
                                    const struct consul_txn_error *errs, size_t nerrs,
                                    const char *const *names, size_t n,
                                    const struct vf_kv_lease *lease, struct vf_err *err)
{
	const struct consul_txn_error *busy = NULL;
	int other = 0, rc;

	for (size_t i = 0; i < nerrs; i++) {
		if (errs[i].kind == CONSUL_FAIL_BAD_SESSION || errs[i].kind == CONSUL_FAIL_DENIED ||
		    errs[i].kind == CONSUL_FAIL_OTHER)
			other = 1;
		else if ((errs[i].kind == CONSUL_FAIL_LOCK_HELD ||
		          errs[i].kind == CONSUL_FAIL_LOCK_DELAY) &&
		         errs[i].op_index >= ncmp && errs[i].op_index < nops && busy == NULL)
			busy = &errs[i];
	}
	if (busy && !other)
		return vf_err_set(err, VF_EBUSY,
		                  busy->kind == CONSUL_FAIL_LOCK_DELAY
		                          ? "lock %s is held (Consul's lock-delay after its "
		                            "holder's session ended)"
		                          : "lock %s is held by another lease",
		                  names[busy->op_index - ncmp]);
	rc = consul_txn_fail_rc(ops, errs, nerrs, err);
	if (rc == VF_ELEASE)
		vf_err_set(err, VF_ELEASE, "lock_many %s: lease %s is gone",
		           n ? names[0] : ops[0].key, lease->id);
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
int consul_lock_many(struct vf_kv *kv, struct vf_kv_lease *lease, const char *const *names,
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
	rc = consul_lock_many_check(lease, names, n, cmps, ncmp, locks_r, err);
	if (rc != VF_OK)
		return rc;
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
	rc = consul_lock_many_take(ck, lease, names, n, lks, &taken, err);
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
		rc = consul_lock_many_refused(ops, ncmp, nops, errs, nerrs, names, n, lease, err);
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

int consul_unlock(struct vf_kv *kv, struct vf_kv_lock **lock, struct vf_err *err)
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
