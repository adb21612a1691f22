/* Conformance (conformance.h): lock_many: a batch try-lock with compares, all or nothing. */
#include <config.h>

#include <time.h>
#include <unistd.h>

#include "conformance.h"

/* ---- 6b. lock_many: a batch try-lock with compares, all or nothing ---- */
#define CF_LM_N 3

/* CF_LM_N lock names for case cas, into bufs, pointed to by names. */
static void cf_lm_names(const char *cas, char bufs[][256], const char **names)
{
	for (int i = 0; i < CF_LM_N; i++) {
		char n[32];

		snprintf(n, sizeof(n), "n%d", i);
		names[i] = cf_key(bufs[i], sizeof(bufs[i]), cas, n);
	}
}

/* The slot is required: a backend without it fails these cases (not a skip). */
static int cf_lm_have(void)
{
	if (cf_ops->lock_many == NULL)
		fprintf(stderr, "\n%s: lock_many is NULL\n", cf_name);
	CU_ASSERT_PTR_NOT_NULL(cf_ops->lock_many);
	return cf_ops->lock_many != NULL;
}

/* A try lock() of name through lease: want (VF_OK: it is free; released again). */
static void cf_lm_try(struct vf_kv_lease *lease, const char *name, int want, int timeout_ms)
{
	struct vf_err err = {0};
	struct vf_kv_lock *l = NULL;
	int rc = cf_ops->lock(cf_kv, lease, name, timeout_ms, NULL, 0, NULL, &l, &err);

	if (rc != want)
		fprintf(stderr, "\nlock %s: %d (%s), want %d: %s\n", name, rc, vf_strerror(rc),
		        want, err.msg);
	CU_ASSERT_EQUAL(rc, want);
	if (l)
		CF_OK(cf_ops->unlock(cf_kv, &l, &err));
}

static void cf_lm_unlock_all(struct vf_kv_lock **locks, size_t n)
{
	struct vf_err err = {0};

	for (size_t i = 0; i < n; i++)
		if (locks[i])
			CF_OK(cf_ops->unlock(cf_kv, &locks[i], &err));
}

static void test_lock_many_basic(void)
{
	struct vf_err err = {0};
	struct vf_kv_lease *la = NULL, *lb = NULL;
	struct vf_kv_lock *locks[CF_LM_N] = {0}, *again[1] = {0};
	char bufs[CF_LM_N][256], st[256], srv[256], v[64];
	const char *names[CF_LM_N];
	int64_t st_rev = 0, t0;

	cf_case("lock_many_basic", 60);
	if (!cf_lm_have())
		return;
	cf_lm_names("lockmany-basic", bufs, names);
	cf_key(st, sizeof(st), "lockmany-basic", "state");
	cf_key(srv, sizeof(srv), "lockmany-basic", "server");
	CF_OK_FATAL(cf_ops->put(cf_kv, st, "stopped", 7, NULL, &st_rev, &err));
	CF_OK_FATAL(cf_ops->lease_grant(cf_kv, cf_lease_ttl(), 0, NULL, NULL, &la, &err));
	CF_OK_FATAL(cf_ops->lease_grant(cf_kv, cf_lease_ttl(), 0, NULL, NULL, &lb, &err));

	/* All free, compares hold: every lock taken, in one call. */
	{
		struct vf_kv_cmp cmps[] = {
		        {.kind = VF_CMP_VERSION_EQ, .key = st, .mod_rev = st_rev},
		        {.kind = VF_CMP_ABSENT, .key = srv}};

		t0 = vf_test_now_ms();
		CF_OK_FATAL(cf_ops->lock_many(cf_kv, la, names, CF_LM_N, cmps, 2, locks, &err));
		cf_note("lock_many of %d names + 2 compares: %" PRId64 " ms", CF_LM_N,
		        vf_test_now_ms() - t0);
	}
	for (int i = 0; i < CF_LM_N; i++) {
		CU_ASSERT_PTR_NOT_NULL_FATAL(locks[i]);
		CU_ASSERT_PTR_NOT_NULL(locks[i]->key);
		CU_ASSERT(locks[i]->fence > 0);
	}
	/* Held: another lease's try-lock and lock_many are VF_EBUSY ... */
	for (int i = 0; i < CF_LM_N; i++)
		cf_lm_try(lb, names[i], VF_EBUSY, 0);
	CF_RC(cf_ops->lock_many(cf_kv, lb, &names[1], 1, NULL, 0, again, &err), VF_EBUSY);
	CU_ASSERT_PTR_NULL(again[0]);
	/* ... and so is this handle asking again through the same lease. */
	CF_RC(cf_ops->lock_many(cf_kv, la, &names[2], 1, NULL, 0, again, &err), VF_EBUSY);
	CU_ASSERT_PTR_NULL(again[0]);
	{
		struct vf_kv_lock *l = NULL;

		CF_RC(cf_ops->lock(cf_kv, la, names[0], 0, NULL, 0, NULL, &l, &err), VF_EBUSY);
		CU_ASSERT_PTR_NULL(l);
	}

	/* The fences guard one txn that writes and releases them all. */
	{
		struct vf_kv_cmp cmps[CF_LM_N];
		struct vf_kv_op ops[CF_LM_N + 2];

		memset(cmps, 0, sizeof(cmps));
		memset(ops, 0, sizeof(ops));
		for (int i = 0; i < CF_LM_N; i++) {
			cmps[i] = (struct vf_kv_cmp){.kind = VF_CMP_LOCK_HELD, .lock = locks[i]};
			ops[2 + i] = (struct vf_kv_op){.kind = VF_OP_UNLOCK, .lock = locks[i]};
		}
		ops[0] = (struct vf_kv_op){
		        .kind = VF_OP_PUT, .key = st, .value = "running", .value_len = 7};
		ops[1] = (struct vf_kv_op){
		        .kind = VF_OP_PUT, .key = srv, .value = "node1", .value_len = 5};
		CF_OK(cf_ops->txn(cf_kv, cmps, CF_LM_N, ops, CF_LM_N + 2, NULL, &err));
		CF_OK(cf_get_str(cf_kv, st, v, sizeof(v), NULL, &err));
		CU_ASSERT_STRING_EQUAL(v, "running");
		CF_OK(cf_get_str(cf_kv, srv, v, sizeof(v), NULL, &err));
		CU_ASSERT_STRING_EQUAL(v, "node1");
	}
	/* Released by the txn: free for another lease at once; unlock() just frees. */
	for (int i = 0; i < CF_LM_N; i++)
		cf_lm_try(lb, names[i], VF_OK, 0);
	cf_lm_unlock_all(locks, CF_LM_N);
	for (int i = 0; i < CF_LM_N; i++)
		CU_ASSERT_PTR_NULL(locks[i]);

	/* Taken again: fences grow; unlock() one by one releases each. */
	CF_OK_FATAL(cf_ops->lock_many(cf_kv, la, names, CF_LM_N, NULL, 0, locks, &err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(locks[0]);
	cf_lm_unlock_all(locks, CF_LM_N);
	for (int i = 0; i < CF_LM_N; i++)
		cf_lm_try(lb, names[i], VF_OK, 0);
	CF_OK(cf_ops->lease_revoke(cf_kv, &la, &err));
	CF_OK(cf_ops->lease_revoke(cf_kv, &lb, &err));
}

static void test_lock_many_refused(void)
{
	struct vf_err err = {0};
	struct vf_kv_lease *la = NULL, *lb = NULL, *lc = NULL;
	struct vf_kv_lock *locks[CF_LM_N] = {0}, *held = NULL;
	char bufs[CF_LM_N][256], st[256], srv[256];
	const char *names[CF_LM_N];
	int64_t st_rev = 0;

	cf_case("lock_many_refused", 60);
	if (!cf_lm_have())
		return;
	cf_lm_names("lockmany-refused", bufs, names);
	cf_key(st, sizeof(st), "lockmany-refused", "state");
	cf_key(srv, sizeof(srv), "lockmany-refused", "server");
	CF_OK_FATAL(cf_ops->put(cf_kv, st, "stopped", 7, NULL, &st_rev, &err));
	CF_OK_FATAL(cf_ops->lease_grant(cf_kv, cf_lease_ttl(), 0, NULL, NULL, &la, &err));
	CF_OK_FATAL(cf_ops->lease_grant(cf_kv, cf_lease_ttl(), 0, NULL, NULL, &lb, &err));
	CF_OK_FATAL(cf_ops->lease_grant(cf_kv, cf_lease_ttl(), 0, NULL, NULL, &lc, &err));

	/* One name held by another lease: VF_EBUSY, and none of the others is taken. */
	CF_OK_FATAL(cf_ops->lock(cf_kv, lb, names[1], 0, NULL, 0, NULL, &held, &err));
	{
		struct vf_kv_cmp cmps[] = {
		        {.kind = VF_CMP_VERSION_EQ, .key = st, .mod_rev = st_rev}};

		CF_RC(cf_ops->lock_many(cf_kv, la, names, CF_LM_N, cmps, 1, locks, &err), VF_EBUSY);
	}
	for (int i = 0; i < CF_LM_N; i++)
		CU_ASSERT_PTR_NULL(locks[i]);
	cf_lm_try(lc, names[0], VF_OK, 0);
	cf_lm_try(lc, names[2], VF_OK, 0);
	cf_lm_try(lc, names[1], VF_EBUSY, 0);
	CF_OK(cf_ops->unlock(cf_kv, &held, &err));

	/* All free but a compare fails: VF_ECONFLICT, nothing taken. */
	{
		struct vf_kv_cmp stale[] = {
		        {.kind = VF_CMP_VERSION_EQ, .key = st, .mod_rev = st_rev + 1000}};
		struct vf_kv_cmp present[] = {{.kind = VF_CMP_ABSENT, .key = st}};
		struct vf_kv_cmp value[] = {
		        {.kind = VF_CMP_ABSENT, .key = srv},
		        {.kind = VF_CMP_VALUE_EQ, .key = st, .value = "running", .value_len = 7}};

		CF_RC(cf_ops->lock_many(cf_kv, la, names, CF_LM_N, stale, 1, locks, &err),
		      VF_ECONFLICT);
		CF_RC(cf_ops->lock_many(cf_kv, la, names, CF_LM_N, present, 1, locks, &err),
		      VF_ECONFLICT);
		CF_RC(cf_ops->lock_many(cf_kv, la, names, CF_LM_N, value, 2, locks, &err),
		      VF_ECONFLICT);
	}
	for (int i = 0; i < CF_LM_N; i++) {
		CU_ASSERT_PTR_NULL(locks[i]);
		cf_lm_try(lc, names[i], VF_OK, 0);
	}
	/* The refusals left nothing claimed in this handle: the same lease takes them all. */
	CF_OK(cf_ops->lock_many(cf_kv, la, names, CF_LM_N, NULL, 0, locks, &err));
	cf_lm_unlock_all(locks, CF_LM_N);

	/* n + ncmp > max_txn_ops: VF_ELIMIT before anything is sent; exactly the limit
	 * works. */
	{
		unsigned int max = cf_kv->max_txn_ops;
		char(*kb)[256] = calloc(max, sizeof(*kb));
		const char **many = calloc(max, sizeof(*many));
		struct vf_kv_lock **ml = calloc(max, sizeof(*ml));
		struct vf_kv_cmp cmp = {.kind = VF_CMP_ABSENT, .key = srv};

		CU_ASSERT_PTR_NOT_NULL_FATAL(kb);
		CU_ASSERT_PTR_NOT_NULL_FATAL(many);
		CU_ASSERT_PTR_NOT_NULL_FATAL(ml);
		for (unsigned int i = 0; i < max; i++) {
			char n[32];

			snprintf(n, sizeof(n), "big%u", i);
			many[i] = cf_key(kb[i], sizeof(kb[i]), "lockmany-refused", n);
		}
		CF_RC(cf_ops->lock_many(cf_kv, la, many, max, &cmp, 1, ml, &err), VF_ELIMIT);
		for (unsigned int i = 0; i < max; i++)
			CU_ASSERT_PTR_NULL(ml[i]);
		cf_lm_try(lc, many[0], VF_OK, 0);
		CF_OK(cf_ops->lock_many(cf_kv, la, many, max - 1, &cmp, 1, ml, &err));
		for (unsigned int i = 0; i + 1 < max; i++)
			CU_ASSERT_PTR_NOT_NULL(ml[i]);
		cf_lm_try(lc, many[max - 2], VF_EBUSY, 0);
		cf_lm_unlock_all(ml, max - 1);
		cf_lm_try(lc, many[max - 2], VF_OK, 0);
		free(ml);
		free(many);
		free(kb);
	}
	CF_OK(cf_ops->lease_revoke(cf_kv, &la, &err));
	CF_OK(cf_ops->lease_revoke(cf_kv, &lb, &err));
	CF_OK(cf_ops->lease_revoke(cf_kv, &lc, &err));
}

static void test_lock_many_waiter_and_revoke(void)
{
	struct vf_err err = {0};
	struct vf_kv_lease *la = NULL, *lb = NULL, *lc = NULL;
	struct vf_kv_lock *locks[CF_LM_N] = {0};
	struct cf_waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	char bufs[CF_LM_N][256], x[256];
	const char *names[CF_LM_N];
	int64_t deadline, t_unlock, fence0;
	int returned_early;
	pthread_t th;

	cf_case("lock_many_waiter_and_revoke", 90);
	if (!cf_lm_have())
		return;
	cf_lm_names("lockmany-wait", bufs, names);
	cf_key(x, sizeof(x), "lockmany-wait", "fenced");
	CF_OK_FATAL(cf_ops->lease_grant(cf_kv, cf_lease_ttl(), 0, NULL, NULL, &la, &err));
	CF_OK_FATAL(cf_ops->lease_grant(cf_kv, cf_lease_ttl(), 0, NULL, NULL, &lb, &err));
	CF_OK_FATAL(cf_ops->lease_grant(cf_kv, cf_lease_ttl(), 0, NULL, NULL, &lc, &err));
	CF_OK_FATAL(cf_ops->lock_many(cf_kv, la, names, CF_LM_N, NULL, 0, locks, &err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(locks[0]);
	fence0 = locks[0]->fence;

	/* A blocking lock() queues behind a lock_many lock and gets it after unlock;
	 * its read is the state at its acquisition (after the holder's fenced write),
	 * not at its enqueueing. */
	w.lease = lb;
	w.name = names[0];
	w.read = x;
	CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, cf_waiter_main, &w), 0);
	pthread_mutex_lock(&w.mu);
	while (!w.started)
		pthread_cond_wait(&w.cv, &w.mu);
	pthread_mutex_unlock(&w.mu);
	deadline = vf_test_now_ms() + 500;
	pthread_mutex_lock(&w.mu);
	while (!w.returned && vf_test_now_ms() < deadline) {
		pthread_mutex_unlock(&w.mu);
		vf_test_sleep_ms(20);
		pthread_mutex_lock(&w.mu);
	}
	returned_early = w.returned;
	pthread_mutex_unlock(&w.mu);
	CU_ASSERT_EQUAL(returned_early, 0);
	/* Held (and awaited): a batch through a third lease is refused. */
	{
		struct vf_kv_lock *one[1] = {0};

		CF_RC(cf_ops->lock_many(cf_kv, lc, names, 1, NULL, 0, one, &err), VF_EBUSY);
		CU_ASSERT_PTR_NULL(one[0]);
	}
	{
		struct vf_kv_cmp cmp = {.kind = VF_CMP_LOCK_HELD, .lock = locks[0]};
		struct vf_kv_op op = {.kind = VF_OP_PUT, .key = x, .value = "held", .value_len = 4};

		CF_OK(cf_ops->txn(cf_kv, &cmp, 1, &op, 1, NULL, &err));
	}
	t_unlock = vf_test_now_ms();
	CF_OK(cf_ops->unlock(cf_kv, &locks[0], &err));
	pthread_mutex_lock(&w.mu);
	while (!w.returned)
		pthread_cond_wait(&w.cv, &w.mu); /* bounded by the waiter's own timeout */
	pthread_mutex_unlock(&w.mu);
	pthread_join(th, NULL);
	if (w.rc != VF_OK)
		fprintf(stderr, "\nwaiter: %s\n", w.msg);
	CU_ASSERT_EQUAL(w.rc, VF_OK);
	cf_note("waiter behind a lock_many lock acquired %" PRId64 " ms after unlock",
	        w.at - t_unlock);
	CU_ASSERT(w.at - t_unlock < 5000 * cf_slow);
	CU_ASSERT_PTR_NOT_NULL_FATAL(w.lock);
	CU_ASSERT(w.lock->fence > fence0);
	CU_ASSERT_EQUAL(w.rr.found, 1);
	if (w.rr.found && w.rr.pair.value)
		CU_ASSERT_STRING_EQUAL(w.rr.pair.value, "held");
	vf_kv_results_clear(&w.rr, 1);
	CF_OK(cf_ops->unlock(cf_kv, &w.lock, &err));
	/* The other two are still held by la. */
	cf_lm_try(lc, names[1], VF_EBUSY, 0);
	cf_lm_try(lc, names[2], VF_EBUSY, 0);

	/* The lease's revocation releases them all; their fences stop guarding. */
	CF_OK(cf_ops->lease_revoke(cf_kv, &la, &err));
	for (int i = 1; i < CF_LM_N; i++)
		cf_lm_try(lc, names[i], VF_OK, 5000 * cf_slow);
	{
		struct vf_kv_cmp cmp = {.kind = VF_CMP_LOCK_HELD, .lock = locks[1]};
		struct vf_kv_op op = {.kind = VF_OP_PUT, .key = x, .value = "a", .value_len = 1};

		CF_RC(cf_ops->txn(cf_kv, &cmp, 1, &op, 1, NULL, &err), VF_ECONFLICT);
		CF_OK(cf_get_str(cf_kv, x, bufs[0], sizeof(bufs[0]), NULL, &err));
		CU_ASSERT_STRING_EQUAL(bufs[0], "held");
	}
	for (int i = 1; i < CF_LM_N; i++) {
		cf_ops->unlock(cf_kv, &locks[i], &err); /* lost: any status, but it is freed */
		CU_ASSERT_PTR_NULL(locks[i]);
	}
	CF_OK(cf_ops->lease_revoke(cf_kv, &lb, &err));
	CF_OK(cf_ops->lease_revoke(cf_kv, &lc, &err));
}

void cf_register_lock_many(CU_pSuite s)
{
	CF_ADD(s, test_lock_many_basic, CF_NEEDS(lock_many));
	CF_ADD(s, test_lock_many_refused, CF_NEEDS(lock_many));
	CF_ADD(s, test_lock_many_waiter_and_revoke, CF_NEEDS(lock_many));
}
