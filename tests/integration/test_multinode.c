/*
 * Issue 4, test groups 2-4 against a real store ($VFILE_INTEG_BACKEND: etcd or
 * consul): managers and hosts are threads of this process, each with its own
 * backend handle, context and lease; the file server is the in-process test
 * server (tests/memkv/testfs.h), which counts starts and flags two servers for
 * one volume at any time.
 *  2. 3 managers, 4 hosts, 200 random concurrent mount / unmount / remove
 *     operations over 10 volumes; invariants at quiescence.
 *  3. stop vs mount, both interleavings, made deterministic with failpoints.
 *  4. a manager dies right after claiming a start marker (its lease is killed in
 *     the store); another manager completes the start, the mount succeeds.
 */
#include <config.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "integ.h"
#include "volume_int.h"
#include "testfs.h"

#define MN_MAX 8
#define MN_VOLS 10

struct mn_node {
	char name[32];
	struct vf_kv *kv;
	struct vf_ctx *ctx;
	struct testfs_node fsn;
};

struct mn_cluster {
	char prefix[64];
	struct testfs *fs;
	struct mn_node n[MN_MAX];
	int nn, op_timeout_ms, reconcile_ms;
};

static void mn_init(struct mn_cluster *c)
{
	memset(c, 0, sizeof(*c));
	ig_prefix(c->prefix, sizeof(c->prefix));
	c->fs = testfs_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c->fs);
	/* Consul sessions: TTL >= 10 s, renewals and waits are slower */
	c->op_timeout_ms = (ig.kind == VF_SRV_CONSUL ? 20000 : 10000) * ig.slow;
	c->reconcile_ms = 1000;
}

static int mn_add(struct mn_cluster *c, const char *name, int manager)
{
	struct mn_node *n = &c->n[c->nn];
	struct vf_ctx_cfg cfg = {0};
	struct vf_err e = {0};

	snprintf(n->name, sizeof(n->name), "%s", name);
	if (ig_open(vf_srv_config(ig.srv), &n->kv, &e) != VF_OK) {
		fprintf(stderr, "\nopen %s: %s\n", name, e.msg);
		CU_FAIL_FATAL("cannot open a backend handle");
	}
	testfs_node_init(&n->fsn, c->fs, name);
	cfg.node_id = name;
	cfg.node_addr = "127.0.0.1";
	cfg.prefix = c->prefix;
	cfg.mount_root = "/nonexistent/vfile-integ";
	cfg.manager = manager;
	cfg.lease_ttl_s = ig.ttl_s;
	cfg.op_timeout_ms = c->op_timeout_ms;
	cfg.reconcile_ms = c->reconcile_ms;
	cfg.fs = &testfs_ops;
	cfg.fs_arg = &n->fsn;
	if (vf_ctx_new(n->kv, &cfg, &n->ctx, &e) != VF_OK ||
	    (manager && vf_ctx_start_manager(n->ctx, &e) != VF_OK)) {
		fprintf(stderr, "\nnode %s: %s\n", name, e.msg);
		CU_FAIL_FATAL("cannot start a node");
	}
	return c->nn++;
}

static void mn_free(struct mn_cluster *c)
{
	vf_failpoint_clear_all();
	for (int i = 0; i < c->nn; i++)
		vf_ctx_free(&c->n[i].ctx);
	for (int i = 0; i < c->nn; i++)
		if (c->n[i].kv)
			c->n[i].kv->ops->close(c->n[i].kv);
	testfs_free(&c->fs);
}

/* ---- the probe over testfs ---- */
struct mn_probe {
	struct mn_cluster *c;
	int host; /* the node probing mounts */
	int (*believe)[MN_VOLS];
	int nhosts, first_host;
	const char *const *vols;
};

static int mn_vol_index(const struct mn_probe *p, const char *vol)
{
	for (int v = 0; v < MN_VOLS && p->vols[v]; v++)
		if (strcmp(p->vols[v], vol) == 0)
			return v;
	return -1;
}

static int mn_nservers(void *arg, const char *vol)
{
	return testfs_nservers(((struct mn_probe *)arg)->c->fs, vol);
}

static int mn_believers(void *arg, const char *vol)
{
	struct mn_probe *p = arg;
	int v = mn_vol_index(p, vol), n = 0;

	for (int h = 0; v >= 0 && p->believe && h < p->nhosts; h++)
		n += p->believe[h][v] != 0;
	return n;
}

static int mn_mount(void *arg, const char *vol, char *msg, size_t size)
{
	struct mn_probe *p = arg;
	struct vf_err e = {0};
	int rc = vf_volume_mount(p->c->n[p->host].ctx, vol, "probe", NULL, &e);

	snprintf(msg, size, "%s", e.msg);
	if (rc == VF_OK && !testfs_mounted(p->c->fs, vol, p->c->n[p->host].name)) {
		snprintf(msg, size, "mount succeeded but %s is not mounted on %s", vol,
		         p->c->n[p->host].name);
		rc = VF_EPROTO;
	}
	return rc;
}

static int mn_unmount(void *arg, const char *vol, char *msg, size_t size)
{
	struct mn_probe *p = arg;
	struct vf_err e = {0};
	int rc = vf_volume_unmount(p->c->n[p->host].ctx, vol, "probe", &e);

	snprintf(msg, size, "%s", e.msg);
	return rc;
}

static struct ig_probe mn_probe_of(struct mn_probe *p)
{
	struct ig_probe ip = {mn_nservers, mn_believers, mn_mount, mn_unmount, p};

	return ip;
}

/* ---- counting state transitions with a watch ---- */
struct mn_trans {
	pthread_mutex_t mu;
	char pre[128];
	int to_mounted[MN_VOLS];
	const char *const *vols;
};

static int mn_trans_cb(const struct vf_kv_event *ev, void *arg)
{
	struct mn_trans *t = arg;
	size_t pl = strlen(t->pre);

	if (ev->type != VF_EV_PUT || strncmp(ev->key, t->pre, pl) != 0)
		return 0;
	if (ev->value_len != 7 || memcmp(ev->value, "Mounted", 7) != 0)
		return 0;
	pthread_mutex_lock(&t->mu);
	for (int v = 0; v < MN_VOLS; v++)
		if (strcmp(ev->key + pl, t->vols[v]) == 0)
			t->to_mounted[v]++;
	pthread_mutex_unlock(&t->mu);
	return 0;
}

/* ---- 2. random concurrent operations ---- */
static const char *const mn_vols[MN_VOLS] = {"v0", "v1", "v2", "v3", "v4",
                                             "v5", "v6", "v7", "v8", "v9"};

struct mn_host {
	struct mn_cluster *c;
	int node;
	unsigned seed;
	int nops;
	int *believe; /* [MN_VOLS] */
	int fails, removes, refused, gone;
	int64_t max_ms;
	char worst[200];
};

static void mn_took(struct mn_host *h, int64_t t0, const char *what, const char *vol)
{
	int64_t d = vf_now_ms() - t0;

	if (d > h->max_ms) {
		h->max_ms = d;
		snprintf(h->worst, sizeof(h->worst), "%s %s", what, vol);
	}
}

static void *mn_host_main(void *arg)
{
	struct mn_host *h = arg;
	struct vf_ctx *ctx = h->c->n[h->node].ctx;
	char id[48];

	snprintf(id, sizeof(id), "%s-c", h->c->n[h->node].name);
	for (int i = 0; i < h->nops; i++) {
		int v = (int)(rand_r(&h->seed) % MN_VOLS), r = (int)(rand_r(&h->seed) % 100);
		const char *vol = mn_vols[v];
		struct vf_err e = {0};
		int64_t t0 = vf_now_ms();
		int rc;

		if (h->believe[v]) {
			rc = vf_volume_unmount(ctx, vol, id, &e);
			mn_took(h, t0, "unmount", vol);
			if (rc == VF_OK)
				h->believe[v] = 0;
		} else if (r < 30) {
			rc = vf_volume_remove(ctx, vol, &e);
			mn_took(h, t0, "remove", vol);
			if (rc == VF_OK) {
				h->removes++;
				rc = vf_volume_create(ctx, vol, NULL, 0, &e);
				if (rc == VF_ECONFLICT)
					rc = VF_OK; /* another host re-created it first */
			} else if (rc == VF_EBUSY || rc == VF_ENOTFOUND) {
				if (getenv("VFILE_INTEG_VERBOSE"))
					fprintf(stderr, "remove refused: %s\n", e.msg);
				h->refused++;
				rc = VF_OK;
			}
		} else {
			rc = vf_volume_mount(ctx, vol, id, NULL, &e);
			mn_took(h, t0, "mount", vol);
			if (rc == VF_OK)
				h->believe[v] = 1;
			else if (rc == VF_ENOTFOUND) {
				h->gone++; /* removed, not re-created yet */
				rc = VF_OK;
			}
		}
		if (rc != VF_OK) {
			h->fails++;
			fprintf(stderr, "\n%s: op %d on %s: %s (%s)\n", h->c->n[h->node].name, i,
			        vol, e.msg, vf_strerror(rc));
		}
	}
	return NULL;
}

static void test_concurrent(void)
{
	struct mn_cluster c;
	struct mn_host hosts[4];
	int believe[4][MN_VOLS];
	pthread_t thr[4];
	struct mn_trans tr = {.mu = PTHREAD_MUTEX_INITIALIZER, .vols = mn_vols};
	struct vf_kv_watch *w = NULL;
	struct vf_err e = {0};
	struct mn_probe pr;
	struct ig_probe ip;
	int64_t t0, bound_ms, worst = 0;
	int fails = 0, removes = 0, refused = 0, gone = 0;

	ig_case("concurrent_200", 150);
	mn_init(&c);
	memset(believe, 0, sizeof(believe));
	snprintf(tr.pre, sizeof(tr.pre), "%sstate/", c.prefix);
	CU_ASSERT_EQUAL_FATAL(ig.kv->ops->watch_start(ig.kv, tr.pre, 0, mn_trans_cb, &tr, &w, &e),
	                      VF_OK);
	for (int i = 0; i < 3; i++) {
		char name[16];

		snprintf(name, sizeof(name), "m%d", i);
		mn_add(&c, name, 1);
	}
	for (int i = 0; i < 4; i++) {
		char name[16];

		snprintf(name, sizeof(name), "h%d", i);
		mn_add(&c, name, 0);
	}
	for (int v = 0; v < MN_VOLS; v++)
		CU_ASSERT_EQUAL_FATAL(vf_volume_create(c.n[3].ctx, mn_vols[v], NULL, 0, &e), VF_OK);
	t0 = vf_now_ms();
	for (int i = 0; i < 4; i++) {
		memset(&hosts[i], 0, sizeof(hosts[i]));
		hosts[i].c = &c;
		hosts[i].node = 3 + i;
		hosts[i].seed = 4242u + (unsigned)i * 7u;
		hosts[i].nops = 50;
		hosts[i].believe = believe[i];
		CU_ASSERT_EQUAL_FATAL(pthread_create(&thr[i], NULL, mn_host_main, &hosts[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(thr[i], NULL);
		fails += hosts[i].fails;
		removes += hosts[i].removes;
		refused += hosts[i].refused;
		gone += hosts[i].gone;
		if (hosts[i].max_ms > worst) {
			worst = hosts[i].max_ms;
			fprintf(stderr, "slowest so far: %s %s %" PRId64 " ms\n",
			        c.n[hosts[i].node].name, hosts[i].worst, worst);
		}
	}
	ig_note("200 concurrent ops (3 managers, 4 hosts, 10 volumes): %" PRId64
	        " ms in all, slowest op %" PRId64 " ms, %d removes done, %d refused, %d mounts "
	        "of a removed volume",
	        vf_now_ms() - t0, worst, removes, refused, gone);
	CU_ASSERT_EQUAL(fails, 0);
	/* no operation waited longer than its timeout (plus one request's worth) */
	bound_ms = c.op_timeout_ms + 2L * ig.req_timeout_ms * ig.slow;
	CU_ASSERT(worst <= bound_ms);
	pr = (struct mn_probe){&c, 3, believe, 4, 3, mn_vols};
	ip = mn_probe_of(&pr);
	for (int v = 0; v < MN_VOLS; v++) {
		char who[64];

		/* quiescent first, then check what each host believes against testfs */
		CU_ASSERT(ig_settled(&ip, c.prefix, mn_vols[v], 8000));
		for (int h = 0; h < 4; h++)
			CU_ASSERT_EQUAL(believe[h][v],
			                testfs_mounted(c.fs, mn_vols[v], c.n[3 + h].name));
		if (ig_num(c.prefix, "gref", mn_vols[v]) > 0) {
			CU_ASSERT_PTR_NOT_NULL(testfs_server(c.fs, mn_vols[v], who, sizeof(who)));
		}
	}
	ig.kv->ops->watch_stop(ig.kv, &w);
	/* every 0->1 transition started exactly one server: every start is followed by
	 * its own state=Mounted write (etcd's watch sees each; Consul's may merge) */
	for (int v = 0; v < MN_VOLS; v++) {
		int starts = testfs_starts(c.fs, mn_vols[v]);

		if (ig.kind == VF_SRV_ETCD) {
			CU_ASSERT_EQUAL(starts, tr.to_mounted[v]);
		} else {
			CU_ASSERT(starts >= tr.to_mounted[v]);
		}
		if (starts != tr.to_mounted[v])
			fprintf(stderr, "%s: %d starts, %d transitions to Mounted seen\n",
			        mn_vols[v], starts, tr.to_mounted[v]);
	}
	CU_ASSERT_EQUAL(testfs_violations(c.fs), 0);
	/* not wedged: a probe mount/unmount on every volume */
	for (int v = 0; v < MN_VOLS; v++)
		CU_ASSERT(ig_invariants(&ip, c.prefix, mn_vols[v], 8000));
	CU_ASSERT_EQUAL(testfs_violations(c.fs), 0);
	mn_free(&c);
	ig_case("", 0);
}

/* ---- 3. stop vs mount ---- */
struct gate {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int reached, go, armed;
};
#define GATE_INIT(armed)                                                                           \
	{                                                                                          \
		PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, armed                   \
	}

static int gate_fp(const char *name, const char *vol, void *arg)
{
	struct gate *g = arg;

	pthread_mutex_lock(&g->mu);
	if (g->armed) {
		int64_t end = vf_now_ms() + 20000;

		g->armed = 0;
		g->reached = 1;
		pthread_cond_broadcast(&g->cv);
		while (!g->go && vf_now_ms() < end) {
			pthread_mutex_unlock(&g->mu);
			vf_test_sleep_ms(10);
			pthread_mutex_lock(&g->mu);
		}
	}
	pthread_mutex_unlock(&g->mu);
	return 0;
}

static int gate_wait(struct gate *g, int ms)
{
	int64_t end = vf_now_ms() + (int64_t)ms * ig.slow;
	int r;

	for (;;) {
		pthread_mutex_lock(&g->mu);
		r = g->reached;
		pthread_mutex_unlock(&g->mu);
		if (r || vf_now_ms() > end)
			return r;
		vf_test_sleep_ms(10);
	}
}

static void gate_open(struct gate *g)
{
	pthread_mutex_lock(&g->mu);
	g->go = 1;
	pthread_mutex_unlock(&g->mu);
}

struct mount_arg {
	struct vf_ctx *ctx;
	const char *vol, *id;
	int rc;
	struct vf_err e;
};

static void *mount_thread(void *arg)
{
	struct mount_arg *a = arg;

	a->rc = vf_volume_mount(a->ctx, a->vol, a->id, NULL, &a->e);
	return NULL;
}

static int mn_state_is(const char *prefix, const char *vol, const char *want)
{
	char *s = ig_value(prefix, "state", vol);
	int r = s && strcmp(s, want) == 0;

	free(s);
	return r;
}

static int mn_wait_state(const char *prefix, const char *vol, const char *want, int ms)
{
	int64_t end = vf_now_ms() + (int64_t)ms * ig.slow;

	while (!mn_state_is(prefix, vol, want) && vf_now_ms() < end)
		vf_test_sleep_ms(20);
	return mn_state_is(prefix, vol, want);
}

static const char *const mn_one[MN_VOLS] = {"v"};

/* The stop read gref == 0 and waits before its txn; a warm mount lands meanwhile:
 * the stop's txn fails on the gref version and the server keeps running. */
static void test_stop_vs_mount_stop_paused(void)
{
	struct mn_cluster c;
	struct gate g = GATE_INIT(1);
	struct vf_err e = {0};
	int believe[3][MN_VOLS] = {{0}};
	struct mn_probe pr;
	struct ig_probe ip;

	ig_case("stop_vs_mount_stop_paused", 60);
	mn_init(&c);
	mn_add(&c, "m1", 1);
	mn_add(&c, "h1", 0);
	mn_add(&c, "h2", 0);
	CU_ASSERT_EQUAL_FATAL(vf_volume_create(c.n[1].ctx, "v", NULL, 0, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_volume_mount(c.n[1].ctx, "v", "c1", NULL, &e), VF_OK);
	vf_failpoint_set("mgr.stop_after_read", gate_fp, &g);
	CU_ASSERT_EQUAL_FATAL(vf_volume_unmount(c.n[1].ctx, "v", "c1", &e), VF_OK);
	CU_ASSERT_FATAL(gate_wait(&g, 10000));
	CU_ASSERT_EQUAL(vf_volume_mount(c.n[2].ctx, "v", "c2", NULL, &e), VF_OK);
	believe[1][0] = 1;
	gate_open(&g);
	pr = (struct mn_probe){&c, 1, believe, 2, 1, mn_one};
	ip = mn_probe_of(&pr);
	CU_ASSERT(ig_settled(&ip, c.prefix, "v", 5000));
	vf_test_sleep_ms(500); /* a wrong stop landing late would show now */
	CU_ASSERT(mn_state_is(c.prefix, "v", "Mounted"));
	CU_ASSERT_EQUAL(ig_num(c.prefix, "gref", "v"), 1);
	CU_ASSERT_EQUAL(testfs_nservers(c.fs, "v"), 1);
	CU_ASSERT(testfs_mounted(c.fs, "v", "h2"));
	CU_ASSERT(ig_invariants(&ip, c.prefix, "v", 5000));
	CU_ASSERT_EQUAL(vf_volume_unmount(c.n[2].ctx, "v", "c2", &e), VF_OK);
	believe[1][0] = 0;
	CU_ASSERT(ig_settled(&ip, c.prefix, "v", 5000));
	CU_ASSERT_EQUAL(testfs_violations(c.fs), 0);
	mn_free(&c);
	ig_case("", 0);
}

/* The mount mounted locally and waits before its gref+1; the stop completes; the
 * mount's txn fails on state == Mounted, undoes, retries and ends mounted. */
static void test_stop_vs_mount_mount_paused(void)
{
	struct mn_cluster c;
	struct gate gs = GATE_INIT(1), g = GATE_INIT(0);
	struct mount_arg a = {0};
	struct vf_err e = {0};
	int believe[3][MN_VOLS] = {{0}};
	struct mn_probe pr;
	struct ig_probe ip;
	pthread_t thr;

	ig_case("stop_vs_mount_mount_paused", 60);
	mn_init(&c);
	mn_add(&c, "m1", 1);
	mn_add(&c, "h1", 0);
	mn_add(&c, "h2", 0);
	CU_ASSERT_EQUAL_FATAL(vf_volume_create(c.n[1].ctx, "v", NULL, 0, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_volume_mount(c.n[1].ctx, "v", "c1", NULL, &e), VF_OK);
	vf_failpoint_set("mgr.stop_after_read", gate_fp, &gs);
	CU_ASSERT_EQUAL_FATAL(vf_volume_unmount(c.n[1].ctx, "v", "c1", &e), VF_OK);
	CU_ASSERT_FATAL(gate_wait(&gs, 10000));
	g.armed = 1;
	vf_failpoint_set("vol.mount_before_txn", gate_fp, &g);
	a.ctx = c.n[2].ctx;
	a.vol = "v";
	a.id = "c2";
	CU_ASSERT_EQUAL_FATAL(pthread_create(&thr, NULL, mount_thread, &a), 0);
	CU_ASSERT_FATAL(gate_wait(&g, 10000));
	gate_open(&gs);
	CU_ASSERT(mn_wait_state(c.prefix, "v", "Ready", 5000));
	gate_open(&g);
	pthread_join(thr, NULL);
	CU_ASSERT_EQUAL(a.rc, VF_OK);
	if (a.rc != VF_OK)
		fprintf(stderr, "\nmount: %s\n", a.e.msg);
	else
		believe[1][0] = 1;
	pr = (struct mn_probe){&c, 1, believe, 2, 1, mn_one};
	ip = mn_probe_of(&pr);
	CU_ASSERT(ig_settled(&ip, c.prefix, "v", 5000));
	CU_ASSERT(mn_state_is(c.prefix, "v", "Mounted"));
	CU_ASSERT(testfs_mounted(c.fs, "v", "h2"));
	CU_ASSERT_EQUAL(testfs_starts(c.fs, "v"), 2);
	CU_ASSERT(ig_invariants(&ip, c.prefix, "v", 5000));
	CU_ASSERT_EQUAL(vf_volume_unmount(c.n[2].ctx, "v", "c2", &e), VF_OK);
	believe[1][0] = 0;
	CU_ASSERT(ig_settled(&ip, c.prefix, "v", 5000));
	CU_ASSERT_EQUAL(testfs_violations(c.fs), 0);
	mn_free(&c);
	ig_case("", 0);
}

/* ---- 4. a manager dies right after claiming the start marker ---- */
struct kill_arg {
	const char *prefix;
	int killed;
	char who[64], why[256];
};

static int kill_fp(const char *name, const char *vol, void *arg)
{
	struct kill_arg *k = arg;
	char *claim, lease[64] = "";

	if (k->killed)
		return 0;
	claim = ig_value(k->prefix, "start_claim", vol);
	if (claim == NULL || sscanf(claim, "%63s %63s", k->who, lease) != 2) {
		free(claim);
		return 0;
	}
	free(claim);
	k->killed = 1;
	/* the lease ends in the store as if its process had died */
	if (ig_lease_kill(lease, k->why, sizeof(k->why)) != VF_OK)
		k->killed = -1;
	return 1; /* and the handler stops right here, holding the claim */
}

static void test_manager_dies_after_claim(void)
{
	struct mn_cluster c;
	struct kill_arg k = {0};
	struct vf_err e = {0};
	int believe[3][MN_VOLS] = {{0}};
	struct mn_probe pr;
	struct ig_probe ip;
	int64_t t0, took, bound;

	ig_case("manager_dies_after_claim", 90);
	mn_init(&c);
	k.prefix = c.prefix;
	mn_add(&c, "m1", 1);
	mn_add(&c, "m2", 1);
	mn_add(&c, "h1", 0);
	vf_failpoint_set("mgr.after_claim_start", kill_fp, &k);
	CU_ASSERT_EQUAL_FATAL(vf_volume_create(c.n[2].ctx, "v", NULL, 0, &e), VF_OK);
	t0 = vf_now_ms();
	CU_ASSERT_EQUAL(vf_volume_mount(c.n[2].ctx, "v", "c1", NULL, &e), VF_OK);
	took = vf_now_ms() - t0;
	if (k.killed < 0)
		fprintf(stderr, "\n%s\n", k.why);
	CU_ASSERT_EQUAL(k.killed, 1);
	believe[0][0] = 1;
	/* TTL + one reconcile period (+ Consul's up-to-2x TTL and renew interval) */
	bound = (ig.kind == VF_SRV_CONSUL ? 2 * ig.ttl_s : ig.ttl_s) * 1000L + c.reconcile_ms +
	        3000;
	ig_note("manager killed after claiming the start (claimant %s): mount done in %" PRId64
	        " ms (bound %" PRId64 " ms)",
	        k.who, took, bound);
	CU_ASSERT(took <= bound * ig.slow);
	CU_ASSERT(mn_state_is(c.prefix, "v", "Mounted"));
	CU_ASSERT_EQUAL(testfs_nservers(c.fs, "v"), 1);
	CU_ASSERT_EQUAL(testfs_starts(c.fs, "v"), 1);
	pr = (struct mn_probe){&c, 2, believe, 1, 2, mn_one};
	ip = mn_probe_of(&pr);
	CU_ASSERT(ig_invariants(&ip, c.prefix, "v", 5000));
	CU_ASSERT_EQUAL(vf_volume_unmount(c.n[2].ctx, "v", "c1", &e), VF_OK);
	believe[0][0] = 0;
	CU_ASSERT(ig_settled(&ip, c.prefix, "v", 5000));
	CU_ASSERT_EQUAL(testfs_violations(c.fs), 0);
	mn_free(&c);
	ig_case("", 0);
}

void vf_test_register(void)
{
	CU_pSuite s;
	char name[64];

	ig_setup("integ_multinode", 0);
	snprintf(name, sizeof(name), "multinode-%s", ig.backend);
	s = CU_add_suite(name, NULL, NULL);
	if (s == NULL)
		vf_test_abort(name);
	VF_ADD_TEST(s, test_concurrent);
	VF_ADD_TEST(s, test_stop_vs_mount_stop_paused);
	VF_ADD_TEST(s, test_stop_vs_mount_mount_paused);
	VF_ADD_TEST(s, test_manager_dies_after_claim);
}
