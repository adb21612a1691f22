/* Conformance (conformance.h): lease_grant, lease_keepalive, lease_revoke: keys vanish with the
 * lease, keep-alive, loss reported at the local deadline while the store is unreachable. */
#include <config.h>

#include <time.h>
#include <unistd.h>

#include "conformance.h"

/* ---- 4. leases ---- */
static void test_lease_revoke(void)
{
	struct vf_err err = {0};
	struct vf_kv_lease *l = NULL;
	char k[256], v[64];
	int64_t took = 0;

	cf_case("lease_revoke", 30);
	if (cf_kv->min_lease_ttl_s > 1) {
		CF_RC(cf_ops->lease_grant(cf_kv, cf_kv->min_lease_ttl_s - 1, 0, NULL, NULL, &l,
		                          &err),
		      VF_EINVAL);
		CU_ASSERT_PTR_NULL(l);
	}
	CF_OK_FATAL(cf_ops->lease_grant(cf_kv, cf_kv->min_lease_ttl_s, 0, NULL, NULL, &l, &err));
	CU_ASSERT(l->ttl_s >= cf_kv->min_lease_ttl_s);
	CU_ASSERT(l->id[0] != '\0');
	cf_key(k, sizeof(k), "lease", "revoked");
	CF_OK(cf_ops->put(cf_kv, k, "x", 1, l, NULL, &err));
	CF_OK(cf_get_str(cf_kv, k, v, sizeof(v), NULL, &err));
	CF_OK(cf_ops->lease_revoke(cf_kv, &l, &err));
	CU_ASSERT_PTR_NULL(l);
	CU_ASSERT_EQUAL(cf_wait_get(cf_kv, k, VF_ENOTFOUND, 3000 * cf_slow, &took), VF_ENOTFOUND);
	cf_note("key gone %" PRId64 " ms after revoke", took);
}

static void test_lease_expiry_keepalive(void)
{
	struct vf_err err = {0};
	struct vf_kv_lease *manual = NULL, *kept = NULL;
	char k1[256], k2[256], v[64];
	int ttl = cf_kv->min_lease_ttl_s;
	int64_t t0, took = 0, until;

	cf_case("lease_expiry_keepalive", 6 * ttl + 30);
	CF_OK_FATAL(cf_ops->lease_grant(cf_kv, ttl, VF_LEASE_MANUAL, NULL, NULL, &manual, &err));
	CF_OK_FATAL(cf_ops->lease_grant(cf_kv, ttl, 0, NULL, NULL, &kept, &err));
	cf_key(k1, sizeof(k1), "lease", "expires");
	cf_key(k2, sizeof(k2), "lease", "kept");
	t0 = vf_test_now_ms();
	CF_OK(cf_ops->put(cf_kv, k1, "x", 1, manual, NULL, &err));
	CF_OK(cf_ops->put(cf_kv, k2, "y", 1, kept, NULL, &err));
	/* The manual lease's key vanishes within 2 x TTL (+ slack), not before ~TTL. */
	CU_ASSERT_EQUAL(
	        cf_wait_get(cf_kv, k1, VF_ENOTFOUND, (2 * ttl * 1000 + 3000) * cf_slow, &took),
	        VF_ENOTFOUND);
	took = vf_test_now_ms() - t0;
	cf_note("manual lease key (ttl %d s) gone after %" PRId64 " ms", ttl, took);
	CU_ASSERT(took >= ttl * 1000 * 8 / 10);
	CF_RC(cf_ops->lease_keepalive(cf_kv, manual, &err), VF_ELEASE);
	/* The kept-alive key outlives 2 x TTL. */
	until = t0 + 2 * ttl * 1000 + 1000;
	while (vf_test_now_ms() < until) {
		CF_OK(cf_get_str(cf_kv, k2, v, sizeof(v), NULL, &err));
		vf_test_sleep_ms(200);
	}
	CF_OK(cf_get_str(cf_kv, k2, v, sizeof(v), NULL, &err));
	CU_ASSERT_STRING_EQUAL(v, "y");
	CF_OK(cf_ops->lease_keepalive(cf_kv, kept, &err));
	cf_ops->lease_revoke(cf_kv, &manual, &err);
	CU_ASSERT_PTR_NULL(manual);
	CF_OK(cf_ops->lease_revoke(cf_kv, &kept, &err));
	CU_ASSERT_EQUAL(cf_wait_get(cf_kv, k2, VF_ENOTFOUND, 3000 * cf_slow, NULL), VF_ENOTFOUND);
}

struct cf_lost {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int64_t at;
	int entered, revoke_returned, done;
	char id_seen[64];
};

static void cf_lost_cb(struct vf_kv_lease *lease, void *arg)
{
	struct cf_lost *x = arg;
	struct timespec ts;

	pthread_mutex_lock(&x->mu);
	x->at = vf_test_now_ms();
	x->entered = 1;
	pthread_cond_broadcast(&x->cv);
	/* Give a revoke on another thread the time to run (bounded): it must wait. */
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 2;
	while (!x->revoke_returned)
		if (pthread_cond_timedwait(&x->cv, &x->mu, &ts) != 0)
			break;
	snprintf(x->id_seen, sizeof(x->id_seen), "%s", lease->id); /* the lease is alive */
	x->done = 1;
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
}

static void test_lease_lost_unreachable(void)
{
	struct vf_err err = {0};
	struct vf_kv *pkv = NULL;
	struct vf_proxy *px = NULL;
	struct vf_kv_lease *l = NULL;
	struct cf_lost x = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	char why[512], cfg[256], id[64], k[256];
	int ttl = cf_lease_ttl(), done_at_return, restored = 0;
	int64_t t_cut, due, hard;

	cf_case("lease_lost_unreachable", 4 * cf_lease_ttl() + 60);
	if (vf_proxy_start(cf_srv->m[0].client_port, &px, why, sizeof(why)) != 0) {
		fprintf(stderr, "\nproxy: %s\n", why);
		CU_FAIL_FATAL("proxy");
	}
	snprintf(cfg, sizeof(cfg), "endpoints = [\"http://127.0.0.1:%d\"]; timeout_ms = %d;",
	         vf_proxy_port(px), cf_timeout_ms);
	CF_OK_FATAL(cf_open(cfg, &pkv, &err));
	CF_OK_FATAL(pkv->ops->lease_grant(pkv, ttl, 0, cf_lost_cb, &x, &l, &err));
	snprintf(id, sizeof(id), "%s", l->id);
	ttl = l->ttl_s;
	cf_key(k, sizeof(k), "lost", "leased");
	CF_OK_FATAL(pkv->ops->put(pkv, k, "x", 1, l, NULL, &err));
	t_cut = vf_test_now_ms();
	vf_proxy_cut(px);
	/* The last confirmed renewal began before the cut: the loss is due by
	 * t_cut + TTL; allow one request timeout (a renewal under way) on top. */
	due = t_cut + (int64_t)ttl * 1000 + cf_bound_ms();
	/* A driver that misses the deadline still learns of the loss once the
	 * store has ended the lease (its key is gone) and the link is back: that
	 * path runs the callback too, for the revoke race below. */
	hard = t_cut + 3 * (int64_t)ttl * 1000 + 15000 * cf_slow;
	pthread_mutex_lock(&x.mu);
	while (!x.entered && vf_test_now_ms() < hard) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 200 * 1000000L;
		if (ts.tv_nsec >= 1000000000L)
			ts.tv_sec++, ts.tv_nsec -= 1000000000L;
		pthread_cond_timedwait(&x.cv, &x.mu, &ts);
		if (!x.entered && !restored && vf_test_now_ms() > due) {
			struct vf_kv_pair p = {0};
			int rc;

			pthread_mutex_unlock(&x.mu);
			rc = cf_ops->get(cf_kv, k, &p, &err);
			vf_kv_pair_clear(&p);
			if (rc == VF_ENOTFOUND) {
				vf_proxy_restore(px);
				restored = 1;
			}
			pthread_mutex_lock(&x.mu);
		}
	}
	pthread_mutex_unlock(&x.mu);
	if (!x.entered || x.at > due)
		fprintf(stderr,
		        "\nlease %s (TTL %d s): loss %s %" PRId64
		        " ms after the store became unreachable (due within %" PRId64 " ms)\n",
		        id, ttl, x.entered ? "reported" : "not reported",
		        (x.entered ? x.at : vf_test_now_ms()) - t_cut, due - t_cut);
	CU_ASSERT_FATAL(x.entered);
	cf_note("TTL %d s: loss reported %" PRId64 " ms after the cut", ttl, x.at - t_cut);
	CU_ASSERT(x.at <= due);
	/* not before a renewal could have failed: at least TTL/2 after the cut
	 * (renewals run every TTL/2), less a margin */
	CU_ASSERT(x.at - t_cut >= (int64_t)ttl * 500 - 1000);
	/* revoke while the callback runs: it must wait for it (item 8 of issue
	 * 12: it freed the lease the callback was still using) */
	pkv->ops->lease_revoke(pkv, &l, &err); /* maybe unreachable: any status, but freed */
	pthread_mutex_lock(&x.mu);
	done_at_return = x.done;
	x.revoke_returned = 1;
	pthread_cond_broadcast(&x.cv);
	while (!x.done)
		pthread_cond_wait(&x.cv, &x.mu); /* bounded by the callback's 2 s */
	pthread_mutex_unlock(&x.mu);
	CU_ASSERT_EQUAL(done_at_return, 1);
	CU_ASSERT_STRING_EQUAL(x.id_seen, id);
	vf_proxy_restore(px);
	pkv->ops->close(pkv);
	vf_proxy_stop(&px);
}

/* Minimal HTTP server answering 404 to everything (a wrong port). */

void cf_register_lease(CU_pSuite s)
{
	CF_ADD(s, test_lease_revoke, NULL);
	CF_ADD(s, test_lease_expiry_keepalive, CF_NEEDS(lease_keepalive));
	CF_ADD(s, test_lease_lost_unreachable, cf_no_server());
}
