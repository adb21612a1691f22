/*
 * A live smoke test of etcd.so through the loader against an etcd the harness
 * starts (skipped when etcd cannot start, failed under CI): the driver's own
 * behaviour the conformance suite cannot see from outside (the re-lock message,
 * adopting a waiter key written raw, past the driver's key check). Moved out of
 * unit_etcd so that its parser tests need no server.
 */
#include <config.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_int.h"
#include "harness.h"
#include "etcd_int.h"
#include "vfile/vfile.h"

static struct vf_srv *live_srv;
static char live_url[64];

struct live_watch {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct vf_buf log;
	int n;
};

static int live_watch_cb(const struct vf_kv_event *ev, void *arg)
{
	struct live_watch *lw = arg;

	pthread_mutex_lock(&lw->mu);
	vf_buf_printf(&lw->log, "%s %s=%.*s\n", ev->type == VF_EV_PUT ? "PUT" : "DEL", ev->key,
	              (int)ev->value_len, ev->value);
	lw->n++;
	pthread_cond_broadcast(&lw->cond);
	pthread_mutex_unlock(&lw->mu);
	return 0;
}

/* A put straight to etcd's HTTP API, past the driver's key check: a waiter key
 * left behind by an acquisition whose answer was lost. */
static int live_raw_put(const char *key, int64_t lease)
{
	char *ep = live_url, *body = NULL;
	struct vf_http_cfg hc = {.endpoints = &ep, .nendpoints = 1, .timeout_ms = 3000};
	struct vf_http *h = NULL;
	struct vf_http_resp resp = {0};
	struct vf_err err = {0};
	size_t len;
	int rc = etcd_build_put(key, "", 0, lease, &body, &len, &err);

	if (rc == VF_OK)
		rc = vf_http_new(&hc, &h, &err);
	if (rc == VF_OK) {
		struct vf_http_req req = {
		        .method = "POST", .path = "/v3/kv/put", .body = body, .body_len = len};

		rc = vf_http_do(h, &req, &resp, &err);
		if (rc == VF_OK && resp.status != 200)
			rc = VF_EPROTO;
	}
	if (rc != VF_OK)
		fprintf(stderr, "raw put %s: %s (HTTP %ld)\n", key, err.msg, resp.status);
	vf_http_resp_free(&resp);
	vf_http_free(&h);
	free(body);
	return rc;
}

static void test_live_smoke(void)
{
	struct vf_backend *be = NULL;
	const struct vf_kv_ops *ops;
	struct vf_kv *kv = NULL;
	struct vf_err err = {0};
	config_t cfg;
	char text[256];
	struct vf_kv_pair p;
	struct vf_kv_list l;
	struct vf_kv_lease *lease = NULL;
	struct vf_kv_lock *lk = NULL;
	struct vf_kv_watch *w = NULL;
	struct live_watch lw = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0};
	int64_t rev = 0, rev2 = 0;
	int rc = -1;

	CU_ASSERT_EQUAL_FATAL(vf_backend_load("etcd", NULL, &be, &err), VF_OK);
	ops = vf_backend_ops(be);
	CU_ASSERT_STRING_EQUAL(ops->name, "etcd");
	config_init(&cfg);
	snprintf(text, sizeof(text), "etcd = { %s };", vf_srv_config(live_srv));
	CU_ASSERT_FATAL(config_read_string(&cfg, text) == CONFIG_TRUE);
	CU_ASSERT_EQUAL_FATAL(vf_backend_open(be, config_lookup(&cfg, "etcd"), &kv, &err), VF_OK);
	CU_ASSERT_EQUAL(kv->max_txn_ops, 128);
	/* Wait (bounded) until etcd answers. */
	for (int64_t end = vf_now_ms() + 15000; vf_now_ms() < end;) {
		rc = ops->get(kv, "smoke/none", &p, &err);
		if (rc == VF_ENOTFOUND)
			break;
		vf_test_sleep_ms(100);
	}
	CU_ASSERT_EQUAL_FATAL(rc, VF_ENOTFOUND);

	CU_ASSERT_EQUAL(ops->watch_start(kv, "smoke/", 0, live_watch_cb, &lw, &w, &err), VF_OK);
	CU_ASSERT_EQUAL(ops->put(kv, "smoke/a", "1", 1, NULL, &rev, &err), VF_OK);
	CU_ASSERT_EQUAL(ops->put(kv, "smokex", "1", 1, NULL, NULL, &err), VF_OK);
	CU_ASSERT_EQUAL(ops->cas(kv, "smoke/b", "2", 1, 0, NULL, &rev2, &err), VF_OK);
	CU_ASSERT_EQUAL(ops->cas(kv, "smoke/b", "3", 1, 0, NULL, NULL, &err), VF_ECONFLICT);
	CU_ASSERT(strstr(err.msg, "smoke/b") != NULL);
	CU_ASSERT_EQUAL(ops->get(kv, "smoke/a", &p, &err), VF_OK);
	CU_ASSERT_EQUAL(p.mod_rev, rev);
	vf_kv_pair_clear(&p);
	CU_ASSERT_EQUAL(ops->list(kv, "smoke/", &l, &err), VF_OK);
	CU_ASSERT_EQUAL(l.count, 2);
	CU_ASSERT(l.revision >= rev2);
	vf_kv_list_clear(&l);
	CU_ASSERT_EQUAL(ops->del(kv, "smoke/a", &err), VF_OK);
	CU_ASSERT_EQUAL(ops->del(kv, "smoke/a", &err), VF_ENOTFOUND);

	CU_ASSERT_EQUAL(ops->lease_grant(kv, 1, 0, NULL, NULL, &lease, &err), VF_EINVAL);
	CU_ASSERT_EQUAL_FATAL(ops->lease_grant(kv, 5, 0, NULL, NULL, &lease, &err), VF_OK);
	const char *reads[] = {"smoke/b"};
	struct vf_kv_result rr[1];
	CU_ASSERT_EQUAL(ops->lock(kv, lease, "smoke-lock/x", 0, reads, 1, rr, &lk, &err), VF_OK);
	CU_ASSERT(rr[0].found && strcmp(rr[0].pair.value, "2") == 0);
	vf_kv_results_clear(rr, 1);
	struct vf_kv_lock *lk2 = NULL;
	CU_ASSERT_EQUAL(ops->lock(kv, lease, "smoke-lock/x", 0, NULL, 0, NULL, &lk2, &err),
	                VF_EBUSY);
	CU_ASSERT(strstr(err.msg, "re-entrant") != NULL);
	CU_ASSERT_EQUAL(ops->unlock(kv, &lk, &err), VF_OK);
	CU_ASSERT_PTR_NULL(lk);
	/* A waiter key left by an attempt whose answer was lost is adopted. */
	char wk[128];
	snprintf(wk, sizeof(wk), "smoke-lock/y/.lock/%s", lease->id);
	/* (the API refuses '.' segments, kv.h ABI 4: written here raw) */
	CU_ASSERT_EQUAL(live_raw_put(wk, strtoll(lease->id, NULL, 16)), VF_OK);
	rc = ops->lock(kv, lease, "smoke-lock/y", 0, NULL, 0, NULL, &lk, &err);
	if (rc != VF_OK)
		fprintf(stderr, "adopt: %s\n", err.msg);
	CU_ASSERT_EQUAL(rc, VF_OK);
	CU_ASSERT_FATAL(lk != NULL);
	CU_ASSERT_STRING_EQUAL(lk->key, wk);
	CU_ASSERT_EQUAL(ops->unlock(kv, &lk, &err), VF_OK);
	/* the waiter key is gone (a list: get refuses its '.' segment) */
	CU_ASSERT_EQUAL(ops->list(kv, "smoke-lock/y/", &l, &err), VF_OK);
	CU_ASSERT_EQUAL(l.count, 0);
	vf_kv_list_clear(&l);
	CU_ASSERT_EQUAL(ops->lease_revoke(kv, &lease, &err), VF_OK);

	/* Both watch events (and no event of smokex) arrive, bounded wait. */
	pthread_mutex_lock(&lw.mu);
	for (int64_t end = vf_now_ms() + 20000; lw.n < 3 && vf_now_ms() < end;) {
		pthread_mutex_unlock(&lw.mu);
		vf_test_sleep_ms(10);
		pthread_mutex_lock(&lw.mu);
	}
	CU_ASSERT_STRING_EQUAL(lw.log.data ? lw.log.data : "",
	                       "PUT smoke/a=1\nPUT smoke/b=2\nDEL smoke/a=\n");
	pthread_mutex_unlock(&lw.mu);
	ops->watch_stop(kv, &w);
	CU_ASSERT_PTR_NULL(w);
	vf_buf_free(&lw.log);

	ops->close(kv);
	config_destroy(&cfg);
	vf_backend_unload(&be);
}

static void live_cleanup(void)
{
	vf_srv_stop(&live_srv);
}

void vf_test_register(void)
{
	const char *dir = getenv("VFILE_BACKEND_DIR");
	struct vf_srv_opts o = {.timeout_ms = 3000};
	char why[512], path[1024];
	CU_pSuite s;

	snprintf(path, sizeof(path), "%s/etcd.so", dir && *dir ? dir : ".libs");
	if (access(path, R_OK) != 0) {
		printf("SKIP: backend module %s was not built\n", path);
		exit(77);
	}
	if (vf_srv_start(VF_SRV_ETCD, &o, &live_srv, why, sizeof(why)) != 0)
		vf_test_unavailable(why);
	atexit(live_cleanup);
	snprintf(live_url, sizeof(live_url), "http://127.0.0.1:%d", live_srv->m[0].client_port);
	vf_test_dog_start(vf_srv_kill_all);
	vf_test_dog_case("etcd_live_smoke", 120000);
	s = CU_add_suite("etcd_live", NULL, NULL);
	if (s == NULL)
		vf_test_abort("suite etcd_live");
	VF_ADD_TEST(s, test_live_smoke);
}
