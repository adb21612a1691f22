/* Conformance (conformance.h): lock, unlock, VF_CMP_LOCK_HELD / VF_CMP_LOCK_FREE, VF_OP_UNLOCK:
 * exclusion across handles, fences, try-lock and reads, a lock lost with its lease, the keys a lock
 * occupies. */
#include <config.h>

#include <time.h>
#include <unistd.h>

#include "conformance.h"

/* ---- 5. locks ---- */
#define CF_LOCK_THREADS 4
#define CF_LOCK_ROUNDS 250

/* One locker thread, with a handle and a lease of its own (locker 0 uses cf_kv). */
struct cf_locker {
	int idx;
	int done, errors;
	char msg[300];
};
static pthread_mutex_t cf_lk_mu = PTHREAD_MUTEX_INITIALIZER;
static int cf_lk_inside; /* holders right now: must never exceed 1 */
static int cf_lk_overlaps;
static int64_t cf_lk_fence; /* last fence seen */
static int cf_lk_fence_bad;

static void *cf_locker_main(void *arg)
{
	struct cf_locker *lk = arg;
	struct vf_err err = {0};
	struct vf_kv_lease *lease = NULL;
	struct vf_kv *kv = NULL;
	char name[256], ctr[256], buf[32];

	cf_key(name, sizeof(name), "lock", "excl");
	cf_key(ctr, sizeof(ctr), "lock", "counter");
	/* each locker its own handle, as each host has its own (cf_kv is one of them) */
	if (lk->idx == 0) {
		kv = cf_kv;
	} else if (cf_open_more(&kv, &err) != VF_OK) {
		lk->errors++;
		snprintf(lk->msg, sizeof(lk->msg), "open: %s", err.msg);
		return NULL;
	}
	if (kv->ops->lease_grant(kv, cf_lease_ttl(), 0, NULL, NULL, &lease, &err) != VF_OK) {
		lk->errors++;
		snprintf(lk->msg, sizeof(lk->msg), "lease_grant: %s", err.msg);
		if (kv != cf_kv)
			kv->ops->close(kv);
		return NULL;
	}
	for (int i = 0; i < CF_LOCK_ROUNDS; i++) {
		struct vf_kv_lock *lock = NULL;
		struct vf_kv_pair p = {0};
		long n = 0;
		int rc;

		rc = kv->ops->lock(kv, lease, name, 60000 * cf_slow, NULL, 0, NULL, &lock, &err);
		if (rc != VF_OK) {
			lk->errors++;
			snprintf(lk->msg, sizeof(lk->msg), "lock: %s", err.msg);
			break;
		}
		pthread_mutex_lock(&cf_lk_mu);
		if (++cf_lk_inside != 1)
			cf_lk_overlaps++;
		if (lock->fence <= cf_lk_fence)
			cf_lk_fence_bad++;
		cf_lk_fence = lock->fence;
		pthread_mutex_unlock(&cf_lk_mu);
		rc = kv->ops->get(kv, ctr, &p, &err);
		if (rc == VF_OK)
			n = strtol(p.value, NULL, 10);
		vf_kv_pair_clear(&p);
		if (rc == VF_OK || rc == VF_ENOTFOUND) {
			snprintf(buf, sizeof(buf), "%ld", n + 1);
			rc = kv->ops->put(kv, ctr, buf, strlen(buf), NULL, NULL, &err);
		}
		if (rc != VF_OK) {
			lk->errors++;
			snprintf(lk->msg, sizeof(lk->msg), "counter: %s", err.msg);
		}
		pthread_mutex_lock(&cf_lk_mu);
		cf_lk_inside--;
		pthread_mutex_unlock(&cf_lk_mu);
		if (kv->ops->unlock(kv, &lock, &err) != VF_OK) {
			lk->errors++;
			snprintf(lk->msg, sizeof(lk->msg), "unlock: %s", err.msg);
		}
		if (rc != VF_OK)
			break;
		lk->done++;
	}
	kv->ops->lease_revoke(kv, &lease, &err);
	if (kv != cf_kv)
		kv->ops->close(kv);
	return NULL;
}

static void test_lock_exclusion(void)
{
	struct cf_locker lk[CF_LOCK_THREADS];
	pthread_t th[CF_LOCK_THREADS];
	struct vf_err err = {0};
	char ctr[256], v[64];
	int64_t t0 = vf_test_now_ms();

	cf_case("lock_exclusion", 600);
	for (int i = 0; i < CF_LOCK_THREADS; i++) {
		lk[i] = (struct cf_locker){.idx = i};
		CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, cf_locker_main, &lk[i]), 0);
	}
	for (int i = 0; i < CF_LOCK_THREADS; i++) {
		pthread_join(th[i], NULL);
		if (lk[i].errors)
			fprintf(stderr, "\nlocker %d: %d errors, last: %s\n", i, lk[i].errors,
			        lk[i].msg);
		CU_ASSERT_EQUAL(lk[i].errors, 0);
		CU_ASSERT_EQUAL(lk[i].done, CF_LOCK_ROUNDS);
	}
	cf_note("%d x %d locked increments in %" PRId64 " ms", CF_LOCK_THREADS, CF_LOCK_ROUNDS,
	        vf_test_now_ms() - t0);
	CU_ASSERT_EQUAL(cf_lk_overlaps, 0);
	CU_ASSERT_EQUAL(cf_lk_fence_bad, 0);
	CF_OK(cf_get_str(cf_kv, cf_key(ctr, sizeof(ctr), "lock", "counter"), v, sizeof(v), NULL,
	                 &err));
	CU_ASSERT_EQUAL(strtol(v, NULL, 10), CF_LOCK_THREADS * CF_LOCK_ROUNDS);
}

static void test_lock_try_and_reads(void)
{
	struct vf_err err = {0};
	struct vf_kv_lease *la = NULL, *lb = NULL;
	struct vf_kv_lock *a = NULL, *b = NULL;
	struct vf_kv_result rr[2] = {{0}};
	char name[256], r1[256], r2[256], x[256], v[64];
	const char *reads[2] = {r1, r2};
	int64_t t0, rr1 = 0, took, fa;

	cf_case("lock_try_and_reads", 60);
	cf_key(name, sizeof(name), "lock", "try");
	cf_key(r1, sizeof(r1), "lock", "read1");
	cf_key(r2, sizeof(r2), "lock", "read2-missing");
	cf_key(x, sizeof(x), "lock", "fenced");
	CF_OK_FATAL(cf_ops->put(cf_kv, r1, "seen", 4, NULL, &rr1, &err));
	CF_OK_FATAL(cf_ops->lease_grant(cf_kv, cf_lease_ttl(), 0, NULL, NULL, &la, &err));
	CF_OK_FATAL(cf_ops->lease_grant(cf_kv, cf_lease_ttl(), 0, NULL, NULL, &lb, &err));

	/* Acquire with reads: the values come back with the acquisition. */
	CF_OK_FATAL(cf_ops->lock(cf_kv, la, name, 10000 * cf_slow, reads, 2, rr, &a, &err));
	CU_ASSERT(a->fence > 0);
	CU_ASSERT_PTR_NOT_NULL(a->key);
	CU_ASSERT_EQUAL(rr[0].found, 1);
	CU_ASSERT_EQUAL(rr[0].pair.value_len, 4);
	if (rr[0].pair.value)
		CU_ASSERT_STRING_EQUAL(rr[0].pair.value, "seen");
	CU_ASSERT_EQUAL(rr[0].pair.mod_rev, rr1);
	CU_ASSERT_EQUAL(rr[1].found, 0);
	vf_kv_results_clear(rr, 2);

	/* Held: a try fails fast with VF_EBUSY, a bounded wait times out. */
	t0 = vf_test_now_ms();
	CF_RC(cf_ops->lock(cf_kv, lb, name, 0, NULL, 0, NULL, &b, &err), VF_EBUSY);
	took = vf_test_now_ms() - t0;
	CU_ASSERT_PTR_NULL(b);
	CU_ASSERT(took < 1000 * cf_slow);
	t0 = vf_test_now_ms();
	CF_RC(cf_ops->lock(cf_kv, lb, name, 700, NULL, 0, NULL, &b, &err), VF_ETIMEDOUT);
	cf_note("try-lock on a held lock %" PRId64 " ms, 700 ms wait ran %" PRId64 " ms", took,
	        vf_test_now_ms() - t0);
	CU_ASSERT(vf_test_now_ms() - t0 >= 650);
	CU_ASSERT(vf_test_now_ms() - t0 < 700 + 2000 * cf_slow);
	CU_ASSERT_PTR_NULL(b);

	/* The fence of a held lock guards a txn. */
	{
		struct vf_kv_cmp cmp = {.kind = VF_CMP_LOCK_HELD, .lock = a};
		struct vf_kv_op op = {.kind = VF_OP_PUT, .key = x, .value = "a", .value_len = 1};

		CF_OK(cf_ops->txn(cf_kv, &cmp, 1, &op, 1, NULL, &err));
		CF_OK(cf_get_str(cf_kv, x, v, sizeof(v), NULL, &err));
		CU_ASSERT_STRING_EQUAL(v, "a");
	}
	fa = a->fence;
	CF_OK(cf_ops->unlock(cf_kv, &a, &err));
	CU_ASSERT_PTR_NULL(a);
	/* Released: the try now succeeds, with a larger fence. */
	CF_OK(cf_ops->lock(cf_kv, lb, name, 0, NULL, 0, NULL, &b, &err));
	CU_ASSERT_PTR_NOT_NULL(b);
	if (b) {
		if (b->fence <= fa)
			fprintf(stderr,
			        "\nfence after re-acquisition %" PRId64 ", before %" PRId64 "\n",
			        b->fence, fa);
		CU_ASSERT(b->fence > fa);
		CF_OK(cf_ops->unlock(cf_kv, &b, &err));
	}
	CF_OK(cf_ops->lease_revoke(cf_kv, &la, &err));
	CF_OK(cf_ops->lease_revoke(cf_kv, &lb, &err));
}

/* VF_CMP_LOCK_FREE: a txn guarded by "nobody holds this lock" (lock elision). */
static void cf_free_txn(const char *name, const char *x, const char *val, int want)
{
	struct vf_err err = {0};
	struct vf_kv_cmp cmp = {.kind = VF_CMP_LOCK_FREE, .key = name};
	struct vf_kv_op op = {.kind = VF_OP_PUT, .key = x, .value = val, .value_len = strlen(val)};
	char v[64] = "";

	CF_RC(cf_ops->txn(cf_kv, &cmp, 1, &op, 1, NULL, &err), want);
	CF_OK(cf_get_str(cf_kv, x, v, sizeof(v), NULL, &err));
	if (want == VF_OK) {
		CU_ASSERT_STRING_EQUAL(v, val);
	} else {
		CU_ASSERT_STRING_NOT_EQUAL(v, val);
	}
}

static void test_lock_free_txn(void)
{
	struct vf_err err = {0};
	struct vf_kv_lease *la = NULL, *lb = NULL;
	struct vf_kv_lock *a = NULL;
	char name[256], x[256];

	cf_case("lock_free_txn", 60);
	cf_key(name, sizeof(name), "lockfree", "lk");
	cf_key(x, sizeof(x), "lockfree", "x");
	CF_OK_FATAL(cf_ops->put(cf_kv, x, "start", 5, NULL, NULL, &err));
	CF_OK_FATAL(cf_ops->lease_grant(cf_kv, cf_lease_ttl(), 0, NULL, NULL, &la, &err));
	CF_OK_FATAL(cf_ops->lease_grant(cf_kv, cf_lease_ttl(), 0, NULL, NULL, &lb, &err));

	/* used once and released: free */
	CF_OK_FATAL(cf_ops->lock(cf_kv, la, name, 10000 * cf_slow, NULL, 0, NULL, &a, &err));
	CF_OK(cf_ops->unlock(cf_kv, &a, &err));
	cf_free_txn(name, x, "free1", VF_OK);

	/* held (by this handle, through either lease): the txn writes nothing */
	CF_OK_FATAL(cf_ops->lock(cf_kv, la, name, 10000 * cf_slow, NULL, 0, NULL, &a, &err));
	cf_free_txn(name, x, "held", VF_ECONFLICT);
	/* released by a txn (VF_OP_UNLOCK): free again */
	{
		struct vf_kv_op op = {.kind = VF_OP_UNLOCK, .lock = a};

		CF_OK(cf_ops->txn(cf_kv, NULL, 0, &op, 1, NULL, &err));
		CF_OK(cf_ops->unlock(cf_kv, &a, &err));
	}
	cf_free_txn(name, x, "free2", VF_OK);

	/* held by a lease that is then revoked: free once the lease is gone */
	CF_OK_FATAL(cf_ops->lock(cf_kv, lb, name, 10000 * cf_slow, NULL, 0, NULL, &a, &err));
	cf_free_txn(name, x, "held-b", VF_ECONFLICT);
	CF_OK(cf_ops->lease_revoke(cf_kv, &lb, &err));
	cf_free_txn(name, x, "free3", VF_OK);
	if (a)
		cf_ops->unlock(cf_kv, &a, &err); /* released with its lease */

	/* free, but another compare fails: all or nothing */
	{
		struct vf_kv_cmp cmp[] = {
		        {.kind = VF_CMP_LOCK_FREE, .key = name},
		        {.kind = VF_CMP_VALUE_EQ, .key = x, .value = "no", .value_len = 2}};
		struct vf_kv_op op = {.kind = VF_OP_PUT, .key = x, .value = "both", .value_len = 4};
		char v[64] = "";

		CF_RC(cf_ops->txn(cf_kv, cmp, 2, &op, 1, NULL, &err), VF_ECONFLICT);
		CF_OK(cf_get_str(cf_kv, x, v, sizeof(v), NULL, &err));
		CU_ASSERT_STRING_EQUAL(v, "free3");
	}
	CF_OK(cf_ops->lease_revoke(cf_kv, &la, &err));
}

/* ---- 6. a lock lost with its lease; UNLOCK in a txn ---- */
void *cf_waiter_main(void *arg)
{
	struct cf_waiter *w = arg;
	struct vf_err err = {0};
	struct vf_kv_lock *lock = NULL;
	int rc;

	pthread_mutex_lock(&w->mu);
	w->started = 1;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	rc = cf_ops->lock(cf_kv, w->lease, w->name, 30000 * cf_slow, w->read ? &w->read : NULL,
	                  w->read ? 1 : 0, w->read ? &w->rr : NULL, &lock, &err);
	pthread_mutex_lock(&w->mu);
	w->rc = rc;
	w->lock = lock;
	w->at = vf_test_now_ms();
	snprintf(w->msg, sizeof(w->msg), "%s", err.msg);
	w->returned = 1;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

static void test_lock_lease_loss(void)
{
	struct vf_err err = {0};
	struct vf_kv_lease *la = NULL, *lb = NULL, *lc = NULL;
	struct vf_kv_lock *a = NULL, *c = NULL;
	struct cf_waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	char name[256], x[256], v[64];
	pthread_t th;
	int64_t t_revoke, deadline;
	int returned_early;

	cf_case("lock_lease_loss", 90);
	cf_key(name, sizeof(name), "lock", "lost");
	cf_key(x, sizeof(x), "lock", "lost-data");
	CF_OK_FATAL(cf_ops->lease_grant(cf_kv, cf_lease_ttl(), 0, NULL, NULL, &la, &err));
	CF_OK_FATAL(cf_ops->lease_grant(cf_kv, cf_lease_ttl(), 0, NULL, NULL, &lb, &err));
	CF_OK_FATAL(cf_ops->lease_grant(cf_kv, cf_lease_ttl(), 0, NULL, NULL, &lc, &err));
	CF_OK_FATAL(cf_ops->lock(cf_kv, la, name, 10000 * cf_slow, NULL, 0, NULL, &a, &err));

	w.lease = lb;
	w.name = name;
	CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, cf_waiter_main, &w), 0);
	pthread_mutex_lock(&w.mu);
	while (!w.started)
		pthread_cond_wait(&w.cv, &w.mu);
	pthread_mutex_unlock(&w.mu);
	/* While A holds it, the waiter must stay blocked (checked for 500 ms). */
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
	CF_RC(cf_ops->lock(cf_kv, lc, name, 0, NULL, 0, NULL, &c, &err), VF_EBUSY);

	/* A's lease goes: the lock is lost and the waiter gets it, bounded. */
	t_revoke = vf_test_now_ms();
	CF_OK(cf_ops->lease_revoke(cf_kv, &la, &err));
	pthread_mutex_lock(&w.mu);
	while (!w.returned)
		pthread_cond_wait(&w.cv, &w.mu); /* bounded by the waiter's own timeout */
	pthread_mutex_unlock(&w.mu);
	pthread_join(th, NULL);
	if (w.rc != VF_OK)
		fprintf(stderr, "\nwaiter: %s\n", w.msg);
	CU_ASSERT_EQUAL(w.rc, VF_OK);
	cf_note("waiter acquired %" PRId64 " ms after the holder's lease was revoked",
	        w.at - t_revoke);
	CU_ASSERT(w.at - t_revoke < 5000 * cf_slow);
	CU_ASSERT_PTR_NOT_NULL_FATAL(w.lock);
	CU_ASSERT(w.lock->fence > a->fence);

	/* A write fenced by A's lost lock fails and lands nothing. */
	{
		struct vf_kv_cmp cmp = {.kind = VF_CMP_LOCK_HELD, .lock = a};
		struct vf_kv_op op = {.kind = VF_OP_PUT, .key = x, .value = "a", .value_len = 1};

		CF_RC(cf_ops->txn(cf_kv, &cmp, 1, &op, 1, NULL, &err), VF_ECONFLICT);
		CF_RC(cf_get_str(cf_kv, x, v, sizeof(v), NULL, &err), VF_ENOTFOUND);
	}
	cf_ops->unlock(cf_kv, &a, &err); /* lost: any status, but it is freed */
	CU_ASSERT_PTR_NULL(a);

	/* UNLOCK inside a fenced txn releases B's lock together with the write. */
	{
		struct vf_kv_cmp cmp = {.kind = VF_CMP_LOCK_HELD, .lock = w.lock};
		struct vf_kv_op ops[] = {
		        {.kind = VF_OP_PUT, .key = x, .value = "b", .value_len = 1},
		        {.kind = VF_OP_UNLOCK, .lock = w.lock}};

		CF_OK(cf_ops->txn(cf_kv, &cmp, 1, ops, 2, NULL, &err));
		CF_OK(cf_get_str(cf_kv, x, v, sizeof(v), NULL, &err));
		CU_ASSERT_STRING_EQUAL(v, "b");
	}
	CF_OK(cf_ops->lock(cf_kv, lc, name, 0, NULL, 0, NULL, &c, &err));
	CF_OK(cf_ops->unlock(cf_kv, &w.lock, &err)); /* already released: just freed */
	CU_ASSERT_PTR_NULL(w.lock);
	if (c) {
		struct vf_kv_cmp cmp = {.kind = VF_CMP_LOCK_HELD, .lock = c};
		struct vf_kv_op op = {.kind = VF_OP_PUT, .key = x, .value = "c", .value_len = 1};

		/* B's late unlock must not have released C's lock. */
		CF_OK(cf_ops->txn(cf_kv, &cmp, 1, &op, 1, NULL, &err));
		CF_OK(cf_ops->unlock(cf_kv, &c, &err));
	}
	CF_OK(cf_ops->lease_revoke(cf_kv, &lb, &err));
	CF_OK(cf_ops->lease_revoke(cf_kv, &lc, &err));
}

static void test_lock_keys_apart(void)
{
	struct vf_err err = {0};
	struct vf_kv_lease *la = NULL;
	struct vf_kv_lock *a = NULL;
	char name[256], sub[256];
	int64_t rn = 0, rs = 0;

	cf_case("lock_keys_apart", 60);
	cf_key(name, sizeof(name), "apart", "vol");
	cf_key(sub, sizeof(sub), "apart", "vol/data");
	CF_OK_FATAL(cf_ops->put(cf_kv, name, "datum", 5, NULL, &rn, &err));
	CF_OK_FATAL(cf_ops->put(cf_kv, sub, "below", 5, NULL, &rs, &err));
	CF_OK_FATAL(cf_ops->lease_grant(cf_kv, cf_lease_ttl(), 0, NULL, NULL, &la, &err));
	/* a try: a key under "N/" is no holder */
	CF_OK(cf_ops->lock(cf_kv, la, name, 0, NULL, 0, NULL, &a, &err));
	if (a) {
		CU_ASSERT(strcmp(a->key, name) != 0);
		CU_ASSERT(strcmp(a->key, sub) != 0);
	}
	cf_expect_val(name, "datum", "data key N while N is locked");
	cf_expect_val(sub, "below", "data key N/x while N is locked");
	{
		int64_t m = 0;

		CF_OK(cf_get_str(cf_kv, name, (char[8]){0}, 8, &m, &err));
		CU_ASSERT_EQUAL(m, rn);
	}
	if (a)
		CF_OK(cf_ops->unlock(cf_kv, &a, &err));
	cf_expect_val(name, "datum", "data key N after unlock");
	cf_expect_val(sub, "below", "data key N/x after unlock");
	CF_OK(cf_ops->lease_revoke(cf_kv, &la, &err));
	cf_expect_val(name, "datum", "data key N after the lock's lease ended");
}

/* kv.h: a second lock of a name through the same lease is VF_EBUSY at once,
 * whatever the timeout (it must not wait on itself). */
static void test_lock_relock_same_lease(void)
{
	struct vf_err err = {0};
	struct vf_kv_lease *la = NULL;
	struct vf_kv_lock *a = NULL, *b = NULL;
	char name[256];
	int64_t t0;

	cf_case("lock_relock_same_lease", 60);
	cf_key(name, sizeof(name), "relock", "n");
	CF_OK_FATAL(cf_ops->lease_grant(cf_kv, cf_lease_ttl(), 0, NULL, NULL, &la, &err));
	CF_OK_FATAL(cf_ops->lock(cf_kv, la, name, 10000 * cf_slow, NULL, 0, NULL, &a, &err));
	CF_RC(cf_ops->lock(cf_kv, la, name, 0, NULL, 0, NULL, &b, &err), VF_EBUSY);
	t0 = vf_test_now_ms();
	CF_RC(cf_ops->lock(cf_kv, la, name, 3000, NULL, 0, NULL, &b, &err), VF_EBUSY);
	cf_note("re-lock with the same lease, 3 s timeout: VF_EBUSY in %" PRId64 " ms",
	        vf_test_now_ms() - t0);
	CU_ASSERT(vf_test_now_ms() - t0 < 1000 * cf_slow);
	CU_ASSERT_PTR_NULL(b);
	CF_OK(cf_ops->unlock(cf_kv, &a, &err));
	CF_OK(cf_ops->lock(cf_kv, la, name, 0, NULL, 0, NULL, &b, &err));
	if (b)
		CF_OK(cf_ops->unlock(cf_kv, &b, &err));
	CF_OK(cf_ops->lease_revoke(cf_kv, &la, &err));
}

/* A lock the store refuses for a while after its holder's lease ended (Consul's
 * lock-delay, set here to 2 s on Consul) is held: try-lock VF_EBUSY (never
 * VF_EINVAL), and a bounded lock waits it out. */
static void test_lock_after_holder_lost(void)
{
	struct vf_err err = {0};
	struct vf_kv *dkv = NULL;
	struct vf_kv_lease *la = NULL, *lb = NULL;
	struct vf_kv_lock *a = NULL, *b = NULL;
	char name[256], cfg[512];
	int64_t t0;
	int rc;

	cf_case("lock_after_holder_lost", 60);
	if (cf_srv) {
		snprintf(cfg, sizeof(cfg), "%s%s", vf_srv_config(cf_srv),
		         strcmp(cf_name, "consul") == 0 ? " lock_delay_ms = 2000;" : "");
		CF_OK_FATAL(cf_open(cfg, &dkv, &err));
	} else {
		CF_OK_FATAL(cf_open_more(&dkv, &err));
	}
	cf_key(name, sizeof(name), "delay", "n");
	CF_OK_FATAL(dkv->ops->lease_grant(dkv, cf_lease_ttl(), 0, NULL, NULL, &la, &err));
	CF_OK_FATAL(dkv->ops->lease_grant(dkv, cf_lease_ttl(), 0, NULL, NULL, &lb, &err));
	CF_OK_FATAL(dkv->ops->lock(dkv, la, name, 10000 * cf_slow, NULL, 0, NULL, &a, &err));
	t0 = vf_test_now_ms();
	CF_OK(dkv->ops->lease_revoke(dkv, &la, &err));
	rc = dkv->ops->lock(dkv, lb, name, 0, NULL, 0, NULL, &b, &err);
	if (rc != VF_OK && rc != VF_EBUSY)
		fprintf(stderr, "\ntry-lock after the holder's lease ended: %s: %s\n",
		        vf_strerror(rc), err.msg);
	CU_ASSERT(rc == VF_OK || rc == VF_EBUSY);
	if (rc == VF_EBUSY) {
		CF_OK(dkv->ops->lock(dkv, lb, name, 20000 * cf_slow, NULL, 0, NULL, &b, &err));
		cf_note("try-lock VF_EBUSY; the bounded lock got it %" PRId64
		        " ms after the holder's lease ended",
		        vf_test_now_ms() - t0);
	}
	CU_ASSERT_PTR_NOT_NULL(b);
	if (b)
		CF_OK(dkv->ops->unlock(dkv, &b, &err));
	dkv->ops->unlock(dkv, &a, &err); /* lost: freed */
	CF_OK(dkv->ops->lease_revoke(dkv, &lb, &err));
	dkv->ops->close(dkv);
}

/* kv.h: a watch started after a revision the store has not reached (a restored
 * or reset store) begins with VF_EV_RESYNC, then delivers events. */

void cf_register_lock(CU_pSuite s)
{
	CF_ADD(s, test_lock_try_and_reads, NULL);
	CF_ADD(s, test_lock_free_txn, NULL);
	CF_ADD(s, test_lock_lease_loss, NULL);
	CF_ADD(s, test_lock_exclusion, NULL);
	CF_ADD(s, test_lock_keys_apart, NULL);
	CF_ADD(s, test_lock_relock_same_lease, NULL);
	CF_ADD(s, test_lock_after_holder_lost, NULL);
}
