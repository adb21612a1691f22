/* Unit tests of the volume manager over memkv: names and options, the mount /
 * unmount / remove protocol, round-trip budgets, the stop-vs-mount race, and a
 * manager dying after it won a start marker. Fault injection: test_volume_fault.c. */
#include <config.h>

#include <pthread.h>

#include "test_volume_util.h"
#include "metrics_int.h"

void vf_test_register_fault(void);

static void test_names(void)
{
	char longname[200];

	CU_ASSERT(vf_volume_name_valid("a"));
	CU_ASSERT(vf_volume_name_valid("Vol_1.data-x"));
	CU_ASSERT(!vf_volume_name_valid(""));
	CU_ASSERT(!vf_volume_name_valid("-a"));
	CU_ASSERT(!vf_volume_name_valid(".a"));
	CU_ASSERT(!vf_volume_name_valid("a/b"));
	CU_ASSERT(!vf_volume_name_valid("a b"));
	CU_ASSERT(!vf_volume_name_valid(NULL));
	memset(longname, 'x', 128);
	longname[128] = '\0';
	CU_ASSERT(vf_volume_name_valid(longname));
	longname[128] = 'x';
	longname[129] = '\0';
	CU_ASSERT(!vf_volume_name_valid(longname));
}

static void test_bad_input_touches_nothing(void)
{
	struct tcluster tc;
	struct vf_err e = {0};
	struct vf_opt bad[] = {{"colour", "red"}};
	struct vf_opt badmode[] = {{"mode", "rwx"}};
	struct vf_opt good[] = {{"size", "10G"}, {"mode", "ro"}, {"uid", "1000"}};
	const char *const *known = vf_volume_known_opts();
	struct vf_volume v;
	int h;

	tc_init(&tc);
	h = tc_add(&tc, "h1", 0);
	memkv_shim_reset(tc.n[h].shim);
	CU_ASSERT_EQUAL(vf_volume_create(tc.n[h].ctx, "a/b", NULL, 0, &e), VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "a/b"));
	CU_ASSERT_EQUAL(vf_volume_mount(tc.n[h].ctx, "../x", "c1", NULL, &e), VF_EINVAL);
	CU_ASSERT_EQUAL(vf_volume_remove(tc.n[h].ctx, "", &e), VF_EINVAL);
	CU_ASSERT_EQUAL(vf_volume_create(tc.n[h].ctx, "v", bad, 1, &e), VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "colour"));
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "fileserver"));
	CU_ASSERT_EQUAL(vf_volume_create(tc.n[h].ctx, "v", badmode, 1, &e), VF_EINVAL);
	CU_ASSERT_EQUAL(memkv_shim_total(tc.n[h].shim), 0); /* the store was not touched */
	CU_ASSERT_STRING_EQUAL(known[0], "size");
	CU_ASSERT_EQUAL(vf_volume_create(tc.n[h].ctx, "v", good, 3, &e), VF_OK);
	CU_ASSERT_EQUAL(vf_volume_create(tc.n[h].ctx, "v", NULL, 0, &e), VF_ECONFLICT);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "already exists"));
	CU_ASSERT_EQUAL_FATAL(vf_volume_get(tc.n[h].ctx, "v", &v, &e), VF_OK);
	CU_ASSERT_STRING_EQUAL(v.state, "Ready");
	CU_ASSERT_EQUAL(v.gref, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(v.info_json, "\"10G\""));
	vf_volume_clear(&v);
	CU_ASSERT_EQUAL(vf_volume_get(tc.n[h].ctx, "nope", &v, &e), VF_ENOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "nope"));
	CU_ASSERT_EQUAL(vf_volume_mount(tc.n[h].ctx, "nope", "c1", NULL, &e), VF_ENOTFOUND);
	tc_free(&tc);
}

static void test_mount_unmount_refcount(void)
{
	struct tcluster tc;
	struct vf_err e = {0};
	char *path = NULL, who[64];
	int m, h1, h2;

	tc_init(&tc);
	m = tc_add(&tc, "m1", 1);
	h1 = tc_add(&tc, "h1", 0);
	h2 = tc_add(&tc, "h2", 0);
	(void)m;
	CU_ASSERT_EQUAL_FATAL(vf_volume_create(tc.n[h1].ctx, "v", NULL, 0, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_volume_mount(tc.n[h1].ctx, "v", "c1", &path, &e), VF_OK);
	CU_ASSERT_STRING_EQUAL(path, "/nonexistent/vfile-test/v");
	free(path);
	CU_ASSERT(tc_state_is(&tc, "v", "Mounted"));
	CU_ASSERT_EQUAL(tc_num(&tc, "gref", "v"), 1);
	CU_ASSERT_STRING_EQUAL(testfs_server(tc.fs, "v", who, sizeof(who)), "m1");
	CU_ASSERT(testfs_mounted(tc.fs, "v", "h1"));
	/* a second container on the same host: still one global reference */
	CU_ASSERT_EQUAL(vf_volume_mount(tc.n[h1].ctx, "v", "c2", NULL, &e), VF_OK);
	CU_ASSERT_EQUAL(vf_volume_mount(tc.n[h1].ctx, "v", "c2", NULL, &e), VF_OK); /* repeat */
	CU_ASSERT_EQUAL(tc_num(&tc, "gref", "v"), 1);
	CU_ASSERT_EQUAL(vf_volume_mount(tc.n[h2].ctx, "v", "c3", NULL, &e), VF_OK);
	CU_ASSERT_EQUAL(tc_num(&tc, "gref", "v"), 2);
	CU_ASSERT_EQUAL(testfs_starts(tc.fs, "v"), 1);
	CU_ASSERT_EQUAL(vf_volume_remove(tc.n[h1].ctx, "v", &e), VF_EBUSY);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "h1"));
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "h2"));
	CU_ASSERT_EQUAL(vf_volume_unmount(tc.n[h1].ctx, "v", "c1", &e), VF_OK);
	CU_ASSERT_EQUAL(tc_num(&tc, "gref", "v"), 2);
	CU_ASSERT(testfs_mounted(tc.fs, "v", "h1"));
	CU_ASSERT_EQUAL(vf_volume_unmount(tc.n[h1].ctx, "v", "c2", &e), VF_OK);
	CU_ASSERT_EQUAL(vf_volume_unmount(tc.n[h1].ctx, "v", "c2", &e), VF_OK); /* repeat */
	CU_ASSERT_EQUAL(tc_num(&tc, "gref", "v"), 1);
	CU_ASSERT(!testfs_mounted(tc.fs, "v", "h1"));
	CU_ASSERT_EQUAL(testfs_nservers(tc.fs, "v"), 1);
	CU_ASSERT_EQUAL(vf_volume_unmount(tc.n[h2].ctx, "v", "c3", &e), VF_OK);
	CU_ASSERT_EQUAL(tc_num(&tc, "gref", "v"), 0);
	CU_ASSERT(tc_settled(&tc, "v", TC_WAIT_MS));
	CU_ASSERT(tc_state_is(&tc, "v", "Ready"));
	CU_ASSERT_EQUAL(vf_volume_remove(tc.n[h1].ctx, "v", &e), VF_OK);
	/* nothing of v is left; what remains are the hosts' liveness keys */
	CU_ASSERT_EQUAL(memkv_count(tc.st, "vfile/"), memkv_count(tc.st, "vfile/node/"));
	CU_ASSERT_EQUAL(memkv_count(tc.st, "vfile/node/"), 3);
	CU_ASSERT_EQUAL(vf_volume_remove(tc.n[h1].ctx, "v", &e), VF_ENOTFOUND);
	CU_ASSERT_EQUAL(testfs_violations(tc.fs), 0);
	tc_free(&tc);
}

static void test_prefix_families(void)
{
	struct tcluster tc;
	struct vf_err e = {0};
	struct vf_volume v, *vols = NULL;
	size_t n = 0;
	int h;

	tc_init(&tc);
	tc_add(&tc, "m1", 1);
	h = tc_add(&tc, "h1", 0);
	CU_ASSERT_EQUAL_FATAL(vf_volume_create(tc.n[h].ctx, "a", NULL, 0, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_volume_create(tc.n[h].ctx, "ab", NULL, 0, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_volume_create(tc.n[h].ctx, "a-b", NULL, 0, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_volume_mount(tc.n[h].ctx, "ab", "c1", NULL, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_volume_get(tc.n[h].ctx, "a", &v, &e), VF_OK);
	CU_ASSERT_EQUAL(v.nclients, 0);
	vf_volume_clear(&v);
	/* "a" is not busy because of "ab" */
	CU_ASSERT_EQUAL(vf_volume_remove(tc.n[h].ctx, "a", &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_volume_list(tc.n[h].ctx, &vols, &n, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(n, 2); /* no phantom volumes from locks, claims, servers */
	CU_ASSERT_STRING_EQUAL(vols[0].name, "a-b");
	CU_ASSERT_EQUAL(vols[0].nclients, 0);
	CU_ASSERT_STRING_EQUAL(vols[1].name, "ab");
	CU_ASSERT_EQUAL_FATAL(vols[1].nclients, 1);
	CU_ASSERT_STRING_EQUAL(vols[1].clients[0], "h1");
	CU_ASSERT_STRING_EQUAL(vols[1].state, "Mounted");
	for (size_t i = 0; i < n; i++)
		vf_volume_clear(&vols[i]);
	free(vols);
	CU_ASSERT_EQUAL(vf_volume_unmount(tc.n[h].ctx, "ab", "c1", &e), VF_OK);
	CU_ASSERT(tc_settled(&tc, "ab", TC_WAIT_MS));
	tc_free(&tc);
}

/* 5. Warm mount and unmount round trips, counted by the shim. */
static size_t tc_trips(struct memkv_shim *s)
{
	/* unlock() after a txn whose UNLOCK op released the lock only frees */
	return memkv_shim_total(s) - memkv_shim_count(s, MEMKV_UNLOCK);
}

#define TC_TRIPS(h, op, locks, txns, total)                                                        \
	do {                                                                                       \
		memkv_shim_reset(tc.n[h].shim);                                                    \
		CU_ASSERT_EQUAL_FATAL(op, VF_OK);                                                  \
		CU_ASSERT_EQUAL(memkv_shim_count(tc.n[h].shim, MEMKV_LOCK), locks);                \
		CU_ASSERT_EQUAL(memkv_shim_count(tc.n[h].shim, MEMKV_TXN), txns);                  \
		CU_ASSERT_EQUAL(tc_trips(tc.n[h].shim), total);                                    \
	} while (0)

static void test_round_trips(void)
{
	struct tcluster tc;
	struct vf_err e = {0};
	int h1, h2, h3;

	tc_init(&tc);
	tc_add(&tc, "m1", 1);
	h1 = tc_add(&tc, "h1", 0);
	h2 = tc_add(&tc, "h2", 0);
	h3 = tc_add(&tc, "h3", 0);
	CU_ASSERT_EQUAL_FATAL(vf_volume_create(tc.n[h1].ctx, "v", NULL, 0, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_volume_mount(tc.n[h1].ctx, "v", "c1", NULL, &e), VF_OK);
	/* h2 knows nothing of v: lock (+reads) and one txn (+unlock op) */
	TC_TRIPS(h2, vf_volume_mount(tc.n[h2].ctx, "v", "c2", NULL, &e), 1, 1, 2);
	/* from then on h2 knows the versions it wrote: one txn each (lock elision) */
	TC_TRIPS(h2, vf_volume_unmount(tc.n[h2].ctx, "v", "c2", &e), 0, 1, 1);
	TC_TRIPS(h2, vf_volume_mount(tc.n[h2].ctx, "v", "c2", NULL, &e), 0, 1, 1);
	TC_TRIPS(h2, vf_volume_unmount(tc.n[h2].ctx, "v", "c2", &e), 0, 1, 1);
	CU_ASSERT(tc_consistent(&tc, "v") && tc_num(&tc, "gref", "v") == 1);
	/* another host moved gref: h2's guess fails, the locked way follows (3) */
	TC_TRIPS(h3, vf_volume_mount(tc.n[h3].ctx, "v", "c3", NULL, &e), 1, 1, 2);
	TC_TRIPS(h2, vf_volume_mount(tc.n[h2].ctx, "v", "c2", NULL, &e), 1, 2, 3);
	CU_ASSERT(tc_consistent(&tc, "v") && tc_num(&tc, "gref", "v") == 3);
	/* after a failed guess: locked (2) until gref was seen quiet, then 1 again */
	TC_TRIPS(h2, vf_volume_unmount(tc.n[h2].ctx, "v", "c2", &e), 1, 1, 2);
	TC_TRIPS(h2, vf_volume_mount(tc.n[h2].ctx, "v", "c2", NULL, &e), 0, 1, 1);
	TC_TRIPS(h2, vf_volume_unmount(tc.n[h2].ctx, "v", "c2", &e), 0, 1, 1);
	/* a held gref lock is never elided around: the guess fails, the mount waits */
	{
		struct vf_kv_lease *l = NULL;
		struct vf_kv_lock *lk = NULL;
		struct vf_kv *kv = tc.n[h3].ctx->kv;

		CU_ASSERT_EQUAL_FATAL(kv->ops->lease_grant(kv, 30, 0, NULL, NULL, &l, &e), VF_OK);
		CU_ASSERT_EQUAL_FATAL(
		        kv->ops->lock(kv, l, "vfile/lock/gref/v", 1000, NULL, 0, NULL, &lk, &e),
		        VF_OK);
		tc.n[h2].ctx->op_timeout_ms = 300;
		memkv_shim_reset(tc.n[h2].shim);
		CU_ASSERT_EQUAL(vf_volume_mount(tc.n[h2].ctx, "v", "c2", NULL, &e), VF_ETIMEDOUT);
		CU_ASSERT_EQUAL(memkv_shim_count(tc.n[h2].shim, MEMKV_TXN), 1);
		CU_ASSERT(tc_consistent(&tc, "v") && tc_num(&tc, "gref", "v") == 2);
		kv->ops->unlock(kv, &lk, &e);
		kv->ops->lease_revoke(kv, &l, &e);
		tc.n[h2].ctx->op_timeout_ms = 10000;
	}
	CU_ASSERT_EQUAL(vf_volume_unmount(tc.n[h3].ctx, "v", "c3", &e), VF_OK);
	/* the last unmount (server stop requested) is 2 */
	TC_TRIPS(h1, vf_volume_unmount(tc.n[h1].ctx, "v", "c1", &e), 1, 1, 2);
	CU_ASSERT(tc_settled(&tc, "v", TC_WAIT_MS));
	tc_free(&tc);
}

/* ---- 3. stop vs mount ---- */
struct gate {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int reached, go, armed;
	pthread_t th; /* the thread held at the gate */
	int done;     /* gate_done_fp: that thread's handler has finished */
};

static int gate_fp(const char *name, const char *vol, void *arg)
{
	struct gate *g = arg;

	pthread_mutex_lock(&g->mu);
	if (g->armed) {
		g->armed = 0;
		g->reached = 1;
		g->th = pthread_self();
		pthread_cond_broadcast(&g->cv);
		int64_t end = vf_now_ms() + TC_WAIT_MS;

		while (!g->go && vf_now_ms() < end) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&g->cv, &g->mu, &ts);
		}
	}
	pthread_mutex_unlock(&g->mu);
	return 0;
}

static int gate_wait(struct gate *g, int ms)
{
	int64_t end = vf_now_ms() + ms;
	int r;

	pthread_mutex_lock(&g->mu);
	while (!g->reached && vf_now_ms() < end) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&g->cv, &g->mu, &ts);
	}
	r = g->reached;
	pthread_mutex_unlock(&g->mu);
	return r;
}

/* On a "...done" failpoint: the handler held at the gate has finished. */
static int gate_done_fp(const char *name, const char *vol, void *arg)
{
	struct gate *g = arg;

	(void)name, (void)vol;
	pthread_mutex_lock(&g->mu);
	if (g->reached && pthread_equal(g->th, pthread_self())) {
		g->done = 1;
		pthread_cond_broadcast(&g->cv);
	}
	pthread_mutex_unlock(&g->mu);
	return 0;
}

/* Wait (at most ms) until the held handler has finished; 1 if it did. */
static int gate_done_wait(struct gate *g, int ms)
{
	int64_t end = vf_now_ms() + ms;
	int r;

	pthread_mutex_lock(&g->mu);
	while (!g->done && vf_now_ms() < end) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&g->cv, &g->mu, &ts);
	}
	r = g->done;
	pthread_mutex_unlock(&g->mu);
	return r;
}

static void gate_open(struct gate *g)
{
	pthread_mutex_lock(&g->mu);
	g->go = 1;
	pthread_cond_broadcast(&g->cv);
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

/* The stop read gref == 0 and is paused before its txn; a mount lands. */
static void test_stop_vs_mount_stop_paused(void)
{
	struct tcluster tc;
	struct gate g = {
	        .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .armed = 1};
	struct vf_err e = {0};
	int h1, h2;

	tc_init(&tc);
	tc_add(&tc, "m1", 1);
	h1 = tc_add(&tc, "h1", 0);
	h2 = tc_add(&tc, "h2", 0);
	CU_ASSERT_EQUAL_FATAL(vf_volume_create(tc.n[h1].ctx, "v", NULL, 0, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_volume_mount(tc.n[h1].ctx, "v", "c1", NULL, &e), VF_OK);
	vf_failpoint_set("mgr.stop_after_read", gate_fp, &g);
	vf_failpoint_set("mgr.stop_done", gate_done_fp, &g);
	CU_ASSERT_EQUAL_FATAL(vf_volume_unmount(tc.n[h1].ctx, "v", "c1", &e), VF_OK);
	CU_ASSERT_FATAL(gate_wait(&g, TC_WAIT_MS)); /* the stop handler read gref == 0 */
	/* a warm mount in between: state is still Mounted */
	CU_ASSERT_EQUAL(vf_volume_mount(tc.n[h2].ctx, "v", "c2", NULL, &e), VF_OK);
	gate_open(&g);
	/* the stop's txn fails on the gref version: the server keeps running. Once
	 * the held stop handler has finished, a (wrong) stop would have landed. */
	CU_ASSERT(gate_done_wait(&g, TC_WAIT_MS));
	CU_ASSERT(tc_settled(&tc, "v", TC_WAIT_MS));
	CU_ASSERT(tc_state_is(&tc, "v", "Mounted"));
	CU_ASSERT_EQUAL(tc_num(&tc, "gref", "v"), 1);
	CU_ASSERT_EQUAL(testfs_nservers(tc.fs, "v"), 1);
	CU_ASSERT(testfs_mounted(tc.fs, "v", "h2"));
	CU_ASSERT_EQUAL(testfs_violations(tc.fs), 0);
	tc_free(&tc);
}

/* The mount is paused after mounting locally; the stop completes; the mount's
 * gref+1 fails on state==Mounted, undoes, retries and ends mounted. */
static void test_stop_vs_mount_mount_paused(void)
{
	struct tcluster tc;
	struct gate g = {
	        .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .armed = 0};
	struct mount_arg a = {0};
	struct vf_err e = {0};
	pthread_t thr;
	int h1, h2;

	tc_init(&tc);
	tc_add(&tc, "m1", 1);
	h1 = tc_add(&tc, "h1", 0);
	h2 = tc_add(&tc, "h2", 0);
	CU_ASSERT_EQUAL_FATAL(vf_volume_create(tc.n[h1].ctx, "v", NULL, 0, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_volume_mount(tc.n[h1].ctx, "v", "c1", NULL, &e), VF_OK);
	/* pause the stop so the state is still Mounted when h2 reads it */
	struct gate gs = {
	        .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .armed = 1};

	vf_failpoint_set("mgr.stop_after_read", gate_fp, &gs);
	CU_ASSERT_EQUAL_FATAL(vf_volume_unmount(tc.n[h1].ctx, "v", "c1", &e), VF_OK);
	CU_ASSERT_FATAL(gate_wait(&gs, TC_WAIT_MS));
	g.armed = 1;
	vf_failpoint_set("vol.mount_before_txn", gate_fp, &g);
	a.ctx = tc.n[h2].ctx;
	a.vol = "v";
	a.id = "c2";
	CU_ASSERT_EQUAL_FATAL(pthread_create(&thr, NULL, mount_thread, &a), 0);
	CU_ASSERT_FATAL(gate_wait(&g, TC_WAIT_MS)); /* h2 mounted locally, txn not sent */
	gate_open(&gs);                             /* the stop flips the state to Ready */
	{
		int64_t end = vf_now_ms() + TC_WAIT_MS;

		while (!tc_state_is(&tc, "v", "Ready") && vf_now_ms() < end)
			vf_test_sleep_ms(10);
	}
	CU_ASSERT(tc_state_is(&tc, "v", "Ready"));
	gate_open(&g);
	pthread_join(thr, NULL);
	CU_ASSERT_EQUAL(a.rc, VF_OK);
	if (a.rc != VF_OK)
		fprintf(stderr, "mount: %s\n", a.e.msg);
	CU_ASSERT(tc_state_is(&tc, "v", "Mounted"));
	CU_ASSERT_EQUAL(tc_num(&tc, "gref", "v"), 1);
	CU_ASSERT(tc_settled(&tc, "v", TC_WAIT_MS));
	CU_ASSERT_EQUAL(testfs_nservers(tc.fs, "v"), 1);
	CU_ASSERT(testfs_mounted(tc.fs, "v", "h2"));
	CU_ASSERT_EQUAL(testfs_starts(tc.fs, "v"), 2);
	CU_ASSERT_EQUAL(testfs_violations(tc.fs), 0);
	tc_free(&tc);
}

/* ---- 4. a manager dies right after winning the start marker ---- */
struct kill_arg {
	struct tcluster *tc;
	int killed;
	char who[64];
};

static int kill_fp(const char *name, const char *vol, void *arg)
{
	struct kill_arg *k = arg;
	char key[300], *claim, lease[64] = "";

	if (k->killed)
		return 0;
	snprintf(key, sizeof(key), "vfile/start_claim/%s", vol);
	claim = memkv_value(k->tc->st, key);
	if (claim == NULL || sscanf(claim, "%63s %63s", k->who, lease) != 2) {
		free(claim);
		return 0;
	}
	free(claim);
	k->killed = 1;
	memkv_lease_kill(k->tc->st, lease); /* its claim and locks go with it */
	return 1;                           /* and the handler stops right here */
}

static void test_manager_dies_after_claim(void)
{
	struct tcluster tc;
	struct kill_arg k = {0};
	struct vf_err e = {0};
	int64_t t0, took;
	int h;

	tc_init(&tc);
	tc.reconcile_ms = 200;
	tc_add(&tc, "m1", 1);
	tc_add(&tc, "m2", 1);
	h = tc_add(&tc, "h1", 0);
	k.tc = &tc;
	vf_failpoint_set("mgr.after_claim_start", kill_fp, &k);
	CU_ASSERT_EQUAL_FATAL(vf_volume_create(tc.n[h].ctx, "v", NULL, 0, &e), VF_OK);
	t0 = vf_now_ms();
	CU_ASSERT_EQUAL(vf_volume_mount(tc.n[h].ctx, "v", "c1", NULL, &e), VF_OK);
	took = vf_now_ms() - t0;
	CU_ASSERT(k.killed);
	/* lease TTL (1 s) + one reconcile period, with slack for a loaded machine */
	CU_ASSERT(took <= (1000 + tc.reconcile_ms + 1500) * tc_slow());
	CU_ASSERT(tc_state_is(&tc, "v", "Mounted"));
	CU_ASSERT_EQUAL(testfs_nservers(tc.fs, "v"), 1);
	CU_ASSERT_EQUAL(testfs_starts(tc.fs, "v"), 1);
	CU_ASSERT_EQUAL(tc_num(&tc, "gref", "v"), 1);
	CU_ASSERT_EQUAL(vf_volume_unmount(tc.n[h].ctx, "v", "c1", &e), VF_OK);
	CU_ASSERT(tc_settled(&tc, "v", TC_WAIT_MS));
	CU_ASSERT_EQUAL(testfs_violations(tc.fs), 0);
	tc_free(&tc);
}

/* A manager whose lease ends while it serves: its server stops, another
 * manager (or itself, with a new lease) restarts it for the hosts. */
static void test_serving_manager_lease_lost(void)
{
	struct tcluster tc;
	struct vf_err e = {0};
	char who[64] = "", *sv, lease[64] = "", node[64];
	int h, ok = 0;

	tc_init(&tc);
	tc_add(&tc, "m1", 1);
	tc_add(&tc, "m2", 1);
	h = tc_add(&tc, "h1", 0);
	CU_ASSERT_EQUAL_FATAL(vf_volume_create(tc.n[h].ctx, "v", NULL, 0, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_volume_mount(tc.n[h].ctx, "v", "c1", NULL, &e), VF_OK);
	sv = memkv_value(tc.st, "vfile/server/v");
	CU_ASSERT_FATAL(sv != NULL && sscanf(sv, "%63s %63s", node, lease) == 2);
	free(sv);
	testfs_node_crash(tc.fs, node); /* the process died with its server */
	CU_ASSERT_EQUAL(memkv_lease_kill(tc.st, lease), VF_OK);
	for (int64_t end = vf_now_ms() + TC_WAIT_MS; vf_now_ms() < end && !ok;) {
		sv = memkv_value(tc.st, "vfile/server/v");
		ok = sv != NULL && testfs_server(tc.fs, "v", who, sizeof(who)) != NULL;
		free(sv);
		if (!ok)
			vf_test_sleep_ms(20);
	}
	CU_ASSERT(ok);
	CU_ASSERT_EQUAL(testfs_nservers(tc.fs, "v"), 1);
	CU_ASSERT(tc_state_is(&tc, "v", "Mounted"));
	CU_ASSERT_EQUAL(vf_volume_unmount(tc.n[h].ctx, "v", "c1", &e), VF_OK);
	CU_ASSERT(tc_settled(&tc, "v", TC_WAIT_MS));
	CU_ASSERT_EQUAL(testfs_violations(tc.fs), 0);
	tc_free(&tc);
}

/* A manager that loses its lease while serving many volumes restarts them in
 * batches (lock_many: one request per batch of state locks), not one lock per
 * volume; a volume whose state lock another node holds sends its batch back to
 * single restarts, and is restarted once the lock is free. One server each,
 * refcounts untouched. */
#define RB_N 30
/* Is vol restarted: server/<vol> names node with a lease other than old, and
 * exactly one server runs? */
static int rb_restarted(struct tcluster *tc, const char *vol, const char *node, const char *old)
{
	char k[600], *sv;
	int ok;

	snprintf(k, sizeof(k), "vfile/server/%s", vol);
	sv = memkv_value(tc->st, k);
	ok = sv && strncmp(sv, node, strlen(node)) == 0 && sv[strlen(node)] == ' ' &&
	     strstr(sv, old) == NULL && testfs_nservers(tc->fs, vol) == 1;
	free(sv);
	return ok;
}

/* Has the manager closed the start claim of vol ("done N")? A mount returns
 * once the volume is Mounted; the claim is closed just after. */
static int rb_claim_done(struct tcluster *tc, const char *vol)
{
	char k[600], *v;
	int ok;

	snprintf(k, sizeof(k), "vfile/start_claim/%s", vol);
	v = memkv_value(tc->st, k);
	ok = v && strncmp(v, "done ", 5) == 0;
	free(v);
	return ok;
}

/* n volumes "<pfx>NN" created and mounted on host h, each started by the
 * manager; returns once every start claim is closed (else the lease's end
 * makes a claim look orphaned and a start job races the restarts), with the
 * lease of their server record in lease (64 bytes). */
static void rb_setup(struct tcluster *tc, int h, const char *pfx, char (*vol)[16], int n,
                     char *lease)
{
	struct vf_err e = {0};
	char k[64], node[64], *sv;
	int done = 0;

	for (int i = 0; i < n; i++) {
		snprintf(vol[i], 16, "%s%02d", pfx, i);
		CU_ASSERT_EQUAL_FATAL(vf_volume_create(tc->n[h].ctx, vol[i], NULL, 0, &e), VF_OK);
		CU_ASSERT_EQUAL_FATAL(vf_volume_mount(tc->n[h].ctx, vol[i], "c1", NULL, &e), VF_OK);
	}
	snprintf(k, sizeof(k), "vfile/server/%s", vol[0]);
	sv = memkv_value(tc->st, k);
	CU_ASSERT_FATAL(sv != NULL && sscanf(sv, "%63s %63s", node, lease) == 2);
	free(sv);
	for (int64_t end = vf_now_ms() + TC_WAIT_MS; vf_now_ms() < end && done < n;) {
		done = 0;
		for (int i = 0; i < n; i++)
			done += rb_claim_done(tc, vol[i]);
		if (done < n)
			vf_test_sleep_ms(10);
	}
	CU_ASSERT_EQUAL_FATAL(done, n);
}

static void test_restart_batched(void)
{
	struct tcluster tc;
	struct vf_err e = {0};
	struct vf_kv *okv = NULL;
	struct vf_kv_lease *ol = NULL;
	struct vf_kv_lock *olk = NULL;
	char vol[RB_N][16], *sv, lease[64] = "";
	int h, m, served = 0;
	unsigned nmany, nlock;
	int64_t t0;

	tc_init(&tc);
	m = tc_add(&tc, "m1", 1);
	h = tc_add(&tc, "h1", 0);
	rb_setup(&tc, h, "b", vol, RB_N, lease);
	/* another node holds the state lock of b07 */
	CU_ASSERT_EQUAL_FATAL(memkv_open(tc.st, &okv, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(okv->ops->lease_grant(okv, 5, 0, NULL, NULL, &ol, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(
	        okv->ops->lock(okv, ol, "vfile/lock/state/b07", 0, NULL, 0, NULL, &olk, &e), VF_OK);
	memkv_shim_reset(tc.n[m].shim);
	t0 = vf_now_ms();
	testfs_node_crash(tc.fs, "m1"); /* its servers died with its lease */
	CU_ASSERT_EQUAL(memkv_lease_kill(tc.st, lease), VF_OK);
	/* restarted and recorded (a server runs before its record is written) */
	for (int64_t end = vf_now_ms() + TC_WAIT_MS; vf_now_ms() < end && served < RB_N - 1;) {
		served = 0;
		for (int i = 0; i < RB_N; i++)
			served += i != 7 && rb_restarted(&tc, vol[i], "m1", lease);
		if (served < RB_N - 1)
			vf_test_sleep_ms(20);
	}
	CU_ASSERT_EQUAL(served, RB_N - 1);
	CU_ASSERT_EQUAL(testfs_nservers(tc.fs, "b07"), 0); /* its lock is held */
	nmany = memkv_shim_count(tc.n[m].shim, MEMKV_LOCK_MANY);
	nlock = memkv_shim_count(tc.n[m].shim, MEMKV_LOCK);
	fprintf(stderr, "  restart of %d volumes: %u lock_many, %u single lock calls\n", RB_N,
	        nmany, nlock);
	CU_ASSERT(nmany >= 2); /* batches, not one by one */
	/* What the manager guarantees: the batch holding b07 goes back as single
	 * restarts (K of them), and each reconcile pass since the kill tries b07
	 * once more (a pass never batches a volume a queued or running batch has,
	 * nor one whose job ended after the pass listed it). Passes start at most
	 * once per reconcile period, plus one for the lease's return. */
	CU_ASSERT(nlock <= (unsigned)(tc.n[m].kv->max_txn_ops / 5) + 2 +
	                           (unsigned)((vf_now_ms() - t0) / tc.reconcile_ms + 1));
	CU_ASSERT_EQUAL(okv->ops->unlock(okv, &olk, &e), VF_OK);
	served = 0;
	for (int64_t end = vf_now_ms() + TC_WAIT_MS; vf_now_ms() < end && !served;) {
		served = rb_restarted(&tc, "b07", "m1", lease);
		if (!served)
			vf_test_sleep_ms(20);
	}
	CU_ASSERT(served);
	for (int i = 0; i < RB_N; i++) {
		char k[600];

		snprintf(k, sizeof(k), "vfile/server/%s", vol[i]);
		sv = memkv_value(tc.st, k);
		CU_ASSERT(sv != NULL && strncmp(sv, "m1 ", 3) == 0 && strstr(sv, lease) == NULL);
		free(sv);
		CU_ASSERT_EQUAL(testfs_nservers(tc.fs, vol[i]), 1);
		CU_ASSERT(tc_state_is(&tc, vol[i], "Mounted"));
		CU_ASSERT_EQUAL(tc_num(&tc, "gref", vol[i]), 1);
		CU_ASSERT(tc_consistent(&tc, vol[i]));
	}
	CU_ASSERT_EQUAL(testfs_violations(tc.fs), 0);
	CU_ASSERT_EQUAL(okv->ops->lease_revoke(okv, &ol, &e), VF_OK);
	okv->ops->close(okv);
	tc_free(&tc);
}

/* A reconcile pass that lists the store, then sees its lease lost and the
 * manager resume under a new one before it looks at the volumes (the CI failure
 * of test_restart_batched under ASan: 23 single lock calls where the bound was
 * 16): its lists name this node (old lease) as the server of volumes the loss
 * stopped. Those must not be queued as single restarts; the pass that the
 * lease's return asks for restarts them in batches. */
struct stale_pass {
	struct tcluster *tc;
	char lease[64];
	int armed, back, killed;
};

static int stale_back_fp(const char *name, const char *vol, void *arg)
{
	struct stale_pass *sp = arg;

	(void)name, (void)vol;
	__atomic_store_n(&sp->back, 1, __ATOMIC_SEQ_CST);
	return 0;
}

/* The first pass after arming: kill the lease, wait (bounded) for the
 * manager to come back under a new one, then let the pass go on. */
static int stale_listed_fp(const char *name, const char *vol, void *arg)
{
	struct stale_pass *sp = arg;

	(void)name, (void)vol;
	if (!__atomic_exchange_n(&sp->armed, 0, __ATOMIC_SEQ_CST))
		return 0;
	if (memkv_lease_kill(sp->tc->st, sp->lease) != VF_OK)
		return 0;
	for (int64_t end = vf_now_ms() + TC_WAIT_MS; vf_now_ms() < end;) {
		if (__atomic_load_n(&sp->back, __ATOMIC_SEQ_CST)) {
			__atomic_store_n(&sp->killed, 1, __ATOMIC_SEQ_CST);
			break;
		}
		vf_test_sleep_ms(10);
	}
	return 0;
}

#define SP_N 10
/* After a race of a pass with the lease's end: the n volumes restarted in a
 * batch, not one by one (one single restart each before the fixes; a margin
 * for a pass that lists while the batch is under way), one server each,
 * refcounts untouched. */
static void sp_check_batched(struct tcluster *tc, int m, char (*vol)[16], int n, const char *what)
{
	unsigned nmany = memkv_shim_count(tc->n[m].shim, MEMKV_LOCK_MANY);
	unsigned nlock = memkv_shim_count(tc->n[m].shim, MEMKV_LOCK);

	fprintf(stderr, "  restart after %s: %u lock_many, %u single lock calls\n", what, nmany,
	        nlock);
	CU_ASSERT(nmany >= 1);
	CU_ASSERT(nlock < (unsigned)n / 2);
	for (int i = 0; i < n; i++) {
		CU_ASSERT_EQUAL(testfs_nservers(tc->fs, vol[i]), 1);
		CU_ASSERT(tc_state_is(tc, vol[i], "Mounted"));
		CU_ASSERT_EQUAL(tc_num(tc, "gref", vol[i]), 1);
		CU_ASSERT(tc_consistent(tc, vol[i]));
	}
	CU_ASSERT_EQUAL(testfs_violations(tc->fs), 0);
}

static void test_restart_stale_pass(void)
{
	struct tcluster tc;
	struct stale_pass sp = {0};
	char vol[SP_N][16];
	int h, m, n = 0;

	tc_init(&tc);
	sp.tc = &tc;
	m = tc_add(&tc, "m1", 1);
	h = tc_add(&tc, "h1", 0);
	rb_setup(&tc, h, "s", vol, SP_N, sp.lease);
	memkv_shim_reset(tc.n[m].shim);
	vf_failpoint_set("mgr.lease_back", stale_back_fp, &sp);
	vf_failpoint_set("mgr.pass_listed", stale_listed_fp, &sp);
	__atomic_store_n(&sp.armed, 1, __ATOMIC_SEQ_CST);
	n = 0;
	for (int64_t end = vf_now_ms() + 2 * TC_WAIT_MS; vf_now_ms() < end && n < SP_N;) {
		n = 0;
		for (int i = 0; i < SP_N; i++)
			n += rb_restarted(&tc, vol[i], "m1", sp.lease);
		if (n < SP_N)
			vf_test_sleep_ms(20);
	}
	CU_ASSERT_FATAL(__atomic_load_n(&sp.killed, __ATOMIC_SEQ_CST)); /* the pass saw it */
	CU_ASSERT_EQUAL(n, SP_N);
	sp_check_batched(&tc, m, vol, SP_N, "a stale pass");
	tc_free(&tc);
}

/* The same race without the lease loss being noticed first (check-stress,
 * test_restart_batched: 42 single lock calls): a pass lists the store, then the
 * server records go (as when the lease ends) and the check jobs their DELETE
 * events queue stop the servers, all before the pass looks at the volumes. Its
 * lists still name this process as the server of volumes it no longer serves:
 * no single restart may be queued from them; the next pass lists again and
 * restarts them in a batch. */
struct unserved_pass {
	struct tcluster *tc;
	char (*vol)[16];
	int n, armed, stopped;
};

static int unserved_listed_fp(const char *name, const char *vol, void *arg)
{
	struct unserved_pass *up = arg;
	struct vf_kv *okv = NULL;
	struct vf_err e = {0};
	int left = up->n;

	(void)name, (void)vol;
	if (!__atomic_exchange_n(&up->armed, 0, __ATOMIC_SEQ_CST))
		return 0;
	if (memkv_open(up->tc->st, &okv, &e) != VF_OK)
		return 0;
	for (int i = 0; i < up->n; i++) {
		char k[600];

		snprintf(k, sizeof(k), "vfile/server/%s", up->vol[i]);
		okv->ops->del(okv, k, &e);
	}
	okv->ops->close(okv);
	/* bounded: every check job has stopped its server */
	for (int64_t end = vf_now_ms() + TC_WAIT_MS; vf_now_ms() < end && left;) {
		left = 0;
		for (int i = 0; i < up->n; i++)
			left += testfs_nservers(up->tc->fs, up->vol[i]) != 0;
		if (left)
			vf_test_sleep_ms(10);
	}
	__atomic_store_n(&up->stopped, left == 0, __ATOMIC_SEQ_CST);
	return 0;
}

static void test_restart_unserved_pass(void)
{
	struct tcluster tc;
	struct unserved_pass up = {0};
	char vol[SP_N][16], lease[64], want[200];
	int h, m, n = 0;

	tc_init(&tc);
	up.tc = &tc;
	up.vol = vol;
	up.n = SP_N;
	m = tc_add(&tc, "m1", 1);
	h = tc_add(&tc, "h1", 0);
	rb_setup(&tc, h, "u", vol, SP_N, lease);
	snprintf(want, sizeof(want), "m1 %s", lease);
	memkv_shim_reset(tc.n[m].shim);
	vf_failpoint_set("mgr.pass_listed", unserved_listed_fp, &up);
	__atomic_store_n(&up.armed, 1, __ATOMIC_SEQ_CST);
	for (int64_t end = vf_now_ms() + 2 * TC_WAIT_MS; vf_now_ms() < end && n < SP_N;) {
		n = 0;
		for (int i = 0; i < SP_N && __atomic_load_n(&up.stopped, __ATOMIC_SEQ_CST); i++) {
			char k[600], *sv;

			snprintf(k, sizeof(k), "vfile/server/%s", vol[i]);
			sv = memkv_value(tc.st, k);
			n += sv && strcmp(sv, want) == 0 && testfs_nservers(tc.fs, vol[i]) == 1;
			free(sv);
		}
		if (n < SP_N)
			vf_test_sleep_ms(20);
	}
	CU_ASSERT_FATAL(__atomic_load_n(&up.stopped, __ATOMIC_SEQ_CST)); /* the race was made */
	CU_ASSERT_EQUAL(n, SP_N);
	sp_check_batched(&tc, m, vol, SP_N, "an unserving check");
	tc_free(&tc);
}

/* A restart batch a worker took just before the lease was found lost is
 * dropped: its volumes must not stay marked as being restarted by a batch
 * (they were never restarted again: the CI failure of test_restart_batched
 * under valgrind, 20 of 30 volumes without a server for 40 s). */
static int drop_batch_fp(const char *name, const char *vol, void *arg)
{
	int *n = arg;

	(void)name, (void)vol;
	return __atomic_fetch_add(n, 1, __ATOMIC_SEQ_CST) == 0; /* the first only */
}

/* node/<name> in the store names role ("manager"/"worker"). */
static int tc_node_role_is(struct tcluster *tc, const char *name, const char *role)
{
	char k[300], want[64];
	char *v;
	int r;

	snprintf(k, sizeof(k), "vfile/node/%s", name);
	snprintf(want, sizeof(want), "\"role\":\"%s\"", role);
	v = memkv_value(tc->st, k);
	r = v && strstr(v, want) != NULL;
	free(v);
	return r;
}

/* v served by node `who` (testfs and server/v), one server, consistent. */
static int tc_served_by(struct tcluster *tc, const char *vol, const char *who)
{
	char k[300], cur[64];
	char *sv;
	int r;

	snprintf(k, sizeof(k), "vfile/server/%s", vol);
	sv = memkv_value(tc->st, k);
	r = sv && strncmp(sv, who, strlen(who)) == 0 && sv[strlen(who)] == ' ' &&
	    testfs_nservers(tc->fs, vol) == 1 &&
	    strcmp(testfs_server(tc->fs, vol, cur, sizeof(cur)), who) == 0 &&
	    tc_state_is(tc, vol, "Mounted") && tc_consistent(tc, vol);
	free(sv);
	return r;
}

static int tc_wait_served_by(struct tcluster *tc, const char *vol, const char *who)
{
	for (int64_t end = vf_now_ms() + TC_WAIT_MS; vf_now_ms() < end;) {
		if (tc_served_by(tc, vol, who))
			return 1;
		vf_test_sleep_ms(20);
	}
	return 0;
}

/* A manager demoted at runtime (vf_ctx_stop_manager): its servers stop at once,
 * its lease is dropped and another manager serves its volumes; the hosts' mounts
 * and ids stay. Promoted again (vf_ctx_start_manager), it serves volumes again. */
static void test_demote_promote(void)
{
	struct tcluster tc;
	struct vf_ctx_status st;
	struct vf_err e = {0};
	char who[64], lease0[64];
	int m1, m2, h, s, o;

	tc_init(&tc);
	m1 = tc_add(&tc, "m1", 1);
	m2 = tc_add(&tc, "m2", 1);
	h = tc_add(&tc, "h1", 0);
	CU_ASSERT_EQUAL_FATAL(vf_volume_create(tc.n[h].ctx, "v", NULL, 0, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_volume_mount(tc.n[h].ctx, "v", "c1", NULL, &e), VF_OK);
	CU_ASSERT_FATAL(tc_settled(&tc, "v", TC_WAIT_MS));
	testfs_server(tc.fs, "v", who, sizeof(who));
	s = strcmp(who, "m1") == 0 ? m1 : m2;
	o = s == m1 ? m2 : m1;
	CU_ASSERT(tc_node_role_is(&tc, tc.n[s].name, "manager"));
	vf_ctx_status(tc.n[s].ctx, &st);
	snprintf(lease0, sizeof(lease0), "%s", st.lease_id);

	vf_ctx_stop_manager(tc.n[s].ctx);
	/* its own server is stopped before the call returns */
	CU_ASSERT_EQUAL(testfs_nservers(tc.fs, "v"), 0);
	vf_ctx_status(tc.n[s].ctx, &st);
	CU_ASSERT_EQUAL(st.manager, 0);
	CU_ASSERT_EQUAL(st.servers, 0);
	CU_ASSERT(tc_wait_served_by(&tc, "v", tc.n[o].name));
	CU_ASSERT_EQUAL(tc_num(&tc, "gref", "v"), 1);
	CU_ASSERT(testfs_mounted(tc.fs, "v", "h1"));
	vf_ctx_status(tc.n[s].ctx, &st);
	CU_ASSERT_STRING_NOT_EQUAL(st.lease_id, lease0); /* dropped, a new one */
	CU_ASSERT(tc_node_role_is(&tc, tc.n[s].name, "worker"));

	/* promoted again; then the other one is demoted: v comes back */
	CU_ASSERT_EQUAL_FATAL(vf_ctx_start_manager(tc.n[s].ctx, &e), VF_OK);
	vf_ctx_status(tc.n[s].ctx, &st);
	CU_ASSERT_EQUAL(st.manager, 1);
	CU_ASSERT(tc_node_role_is(&tc, tc.n[s].name, "manager"));
	vf_ctx_stop_manager(tc.n[o].ctx);
	CU_ASSERT(tc_wait_served_by(&tc, "v", tc.n[s].name));

	/* a worker's stop is a no-op: its lease stays */
	vf_ctx_status(tc.n[h].ctx, &st);
	snprintf(lease0, sizeof(lease0), "%s", st.lease_id);
	vf_ctx_stop_manager(tc.n[h].ctx);
	vf_ctx_status(tc.n[h].ctx, &st);
	CU_ASSERT_STRING_EQUAL(st.lease_id, lease0);

	CU_ASSERT_EQUAL(vf_volume_unmount(tc.n[h].ctx, "v", "c1", &e), VF_OK);
	CU_ASSERT(tc_settled(&tc, "v", TC_WAIT_MS));
	CU_ASSERT_EQUAL(testfs_violations(tc.fs), 0);
	tc_free(&tc);
}

static int used_only_b(void *arg, const char *vol)
{
	(void)arg;
	return strcmp(vol, "b") == 0;
}

/* Start-up check against the containers (vf_vol_release_unused): every id of a
 * volume no container uses is released through the unmount path (gref exact,
 * unmounted), those of a used volume are kept, other hosts' ids untouched. */
static void test_release_unused(void)
{
	struct tcluster tc;
	struct vf_err e = {0};
	size_t n = 99;
	int h1, h2;

	tc_init(&tc);
	(void)tc_add(&tc, "m1", 1);
	h1 = tc_add(&tc, "h1", 0);
	h2 = tc_add(&tc, "h2", 0);
	CU_ASSERT_EQUAL_FATAL(vf_volume_create(tc.n[h1].ctx, "a", NULL, 0, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_volume_create(tc.n[h1].ctx, "b", NULL, 0, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_volume_mount(tc.n[h1].ctx, "a", "x1", NULL, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_volume_mount(tc.n[h1].ctx, "a", "x2", NULL, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_volume_mount(tc.n[h1].ctx, "b", "y1", NULL, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_volume_mount(tc.n[h2].ctx, "a", "z1", NULL, &e), VF_OK);
	CU_ASSERT_EQUAL(tc_num(&tc, "gref", "a"), 2);

	CU_ASSERT_EQUAL(vf_vol_release_unused(tc.n[h1].ctx, used_only_b, NULL, &n, &e), VF_OK);
	CU_ASSERT_EQUAL(n, 2);                        /* x1, x2 */
	CU_ASSERT_EQUAL(tc_num(&tc, "gref", "a"), 1); /* h2's stays */
	CU_ASSERT(!testfs_mounted(tc.fs, "a", "h1"));
	CU_ASSERT(testfs_mounted(tc.fs, "a", "h2"));
	CU_ASSERT(tc_consistent(&tc, "a"));
	CU_ASSERT_EQUAL(tc_num(&tc, "gref", "b"), 1);
	CU_ASSERT(testfs_mounted(tc.fs, "b", "h1"));
	CU_ASSERT_PTR_NULL(memkv_value(tc.st, "vfile/client/a/h1"));
	/* again: nothing left to release */
	CU_ASSERT_EQUAL(vf_vol_release_unused(tc.n[h1].ctx, used_only_b, NULL, &n, &e), VF_OK);
	CU_ASSERT_EQUAL(n, 0);
	/* the store down: an error, nothing released */
	memkv_shim_fail(tc.n[h1].shim, MEMKV_LIST, 1, MEMKV_FAULT_UNAVAIL, 0);
	CU_ASSERT_NOT_EQUAL(vf_vol_release_unused(tc.n[h1].ctx, used_only_b, NULL, &n, &e), VF_OK);
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "h1"));
	memkv_shim_clear(tc.n[h1].shim);

	CU_ASSERT_EQUAL(vf_volume_unmount(tc.n[h1].ctx, "b", "y1", &e), VF_OK);
	CU_ASSERT_EQUAL(vf_volume_unmount(tc.n[h2].ctx, "a", "z1", &e), VF_OK);
	CU_ASSERT(tc_settled(&tc, "a", TC_WAIT_MS));
	CU_ASSERT(tc_settled(&tc, "b", TC_WAIT_MS));
	tc_free(&tc);
}

static void test_restart_batch_dropped(void)
{
	struct tcluster tc;
	struct vf_err e = {0};
	char vol[8][16], *sv, lease[64] = "", node[64];
	int h, served = 0, dropped = 0;

	tc_init(&tc);
	tc_add(&tc, "m1", 1);
	h = tc_add(&tc, "h1", 0);
	for (int i = 0; i < 8; i++) {
		snprintf(vol[i], sizeof(vol[i]), "d%02d", i);
		CU_ASSERT_EQUAL_FATAL(vf_volume_create(tc.n[h].ctx, vol[i], NULL, 0, &e), VF_OK);
		CU_ASSERT_EQUAL_FATAL(vf_volume_mount(tc.n[h].ctx, vol[i], "c1", NULL, &e), VF_OK);
	}
	for (int64_t end = vf_now_ms() + TC_WAIT_MS; vf_now_ms() < end && served < 8;) {
		served = 0;
		for (int i = 0; i < 8; i++)
			served += rb_claim_done(&tc, vol[i]);
		if (served < 8)
			vf_test_sleep_ms(10);
	}
	CU_ASSERT_EQUAL_FATAL(served, 8);
	sv = memkv_value(tc.st, "vfile/server/d00");
	CU_ASSERT_FATAL(sv != NULL && sscanf(sv, "%63s %63s", node, lease) == 2);
	free(sv);
	vf_failpoint_set("mgr.batch_taken_suspended", drop_batch_fp, &dropped);
	testfs_node_crash(tc.fs, "m1");
	CU_ASSERT_EQUAL(memkv_lease_kill(tc.st, lease), VF_OK);
	served = 0;
	for (int64_t end = vf_now_ms() + TC_WAIT_MS; vf_now_ms() < end && served < 8;) {
		served = 0;
		for (int i = 0; i < 8; i++)
			served += rb_restarted(&tc, vol[i], "m1", lease);
		if (served < 8)
			vf_test_sleep_ms(20);
	}
	vf_failpoint_clear_all();
	CU_ASSERT(__atomic_load_n(&dropped, __ATOMIC_SEQ_CST) >= 1); /* a batch was dropped */
	CU_ASSERT_EQUAL(served, 8);
	for (int i = 0; i < 8; i++) {
		CU_ASSERT(tc_state_is(&tc, vol[i], "Mounted"));
		CU_ASSERT_EQUAL(tc_num(&tc, "gref", vol[i]), 1);
		CU_ASSERT(tc_consistent(&tc, vol[i]));
	}
	CU_ASSERT_EQUAL(testfs_violations(tc.fs), 0);
	tc_free(&tc);
}

/* Many hosts and two managers in threads over memkv: quiescent invariants. */
struct rnd_arg {
	struct vf_ctx *ctx;
	const char *node;
	unsigned seed;
	int mounted[4];
	int fails;
};

static void *rnd_thread(void *arg)
{
	struct rnd_arg *a = arg;
	static const char *const vols[] = {"v0", "v1", "v2", "v3"};

	for (int i = 0; i < 25; i++) {
		int v = (int)(rand_r(&a->seed) % 4);
		struct vf_err e = {0};
		char id[32];

		snprintf(id, sizeof(id), "%s-c", a->node);
		if (!a->mounted[v]) {
			if (vf_volume_mount(a->ctx, vols[v], id, NULL, &e) == VF_OK)
				a->mounted[v] = 1;
			else {
				a->fails++;
				fprintf(stderr, "mount %s: %s\n", vols[v], e.msg);
			}
		} else {
			if (vf_volume_unmount(a->ctx, vols[v], id, &e) == VF_OK)
				a->mounted[v] = 0;
			else {
				a->fails++;
				fprintf(stderr, "unmount %s: %s\n", vols[v], e.msg);
			}
		}
	}
	return NULL;
}

static void test_concurrent_memkv(void)
{
	struct tcluster tc;
	struct rnd_arg a[4];
	pthread_t thr[4];
	struct vf_err e = {0};
	static const char *const vols[] = {"v0", "v1", "v2", "v3"};

	tc_init(&tc);
	tc_add(&tc, "m1", 1);
	tc_add(&tc, "m2", 1);
	for (int i = 0; i < 4; i++) {
		char name[16];

		snprintf(name, sizeof(name), "h%d", i);
		tc_add(&tc, name, 0);
	}
	for (int v = 0; v < 4; v++)
		CU_ASSERT_EQUAL_FATAL(vf_volume_create(tc.n[2].ctx, vols[v], NULL, 0, &e), VF_OK);
	for (int i = 0; i < 4; i++) {
		memset(&a[i], 0, sizeof(a[i]));
		a[i].ctx = tc.n[2 + i].ctx;
		a[i].node = tc.n[2 + i].name;
		a[i].seed = 1234u + (unsigned)i;
		pthread_create(&thr[i], NULL, rnd_thread, &a[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(thr[i], NULL);
		CU_ASSERT_EQUAL(a[i].fails, 0);
	}
	for (int v = 0; v < 4; v++) {
		int hosts = 0;

		for (int i = 0; i < 4; i++) {
			hosts += a[i].mounted[v];
			CU_ASSERT_EQUAL(a[i].mounted[v], testfs_mounted(tc.fs, vols[v], a[i].node));
		}
		CU_ASSERT(tc_settled(&tc, vols[v], TC_WAIT_MS));
		CU_ASSERT_EQUAL(tc_clients(&tc, vols[v]), (size_t)hosts);
		CU_ASSERT(testfs_starts(tc.fs, vols[v]) >= (hosts > 0));
	}
	CU_ASSERT_EQUAL(testfs_violations(tc.fs), 0);
	tc_free(&tc);
}

/* A RESYNC (compaction) makes the managers reconcile: a trigger written while
 * no watch saw it is still acted on. */
static void test_reconcile_missed_trigger(void)
{
	struct tcluster tc;
	struct vf_err e = {0};
	int h;

	tc_init(&tc);
	tc.reconcile_ms = 300;
	h = tc_add(&tc, "h1", 0);
	CU_ASSERT_EQUAL_FATAL(vf_volume_create(tc.n[h].ctx, "v", NULL, 0, &e), VF_OK);
	/* a host bumped the trigger while no manager ran */
	CU_ASSERT_EQUAL(
	        tc.n[h].kv->ops->put(tc.n[h].kv, "vfile/start_trigger/v", "1", 1, NULL, NULL, &e),
	        VF_OK);
	tc_add(&tc, "m1", 1); /* its first reconcile pass acts on it */
	{
		int64_t end = vf_now_ms() + TC_WAIT_MS;

		while (!tc_state_is(&tc, "v", "Mounted") && vf_now_ms() < end)
			vf_test_sleep_ms(10);
	}
	CU_ASSERT(tc_state_is(&tc, "v", "Mounted"));
	CU_ASSERT_EQUAL(tc_num(&tc, "start_marker", "v"), 1);
	/* nobody mounts it: the idle rule asks for a stop after two passes */
	CU_ASSERT(tc_settled(&tc, "v", TC_WAIT_MS));
	CU_ASSERT(tc_state_is(&tc, "v", "Ready"));
	tc_free(&tc);
}

/* A lock whose answer was lost but which landed leaves the store lock held by
 * the host's lease: another host must not wait for that lease to end. The
 * lease thread takes and releases it (h1's lock() call #1 applied, reported
 * uncertain; h2's mount then succeeds well within its timeout). */
static void test_lock_left_by_lost_answer(void)
{
	struct tcluster tc;
	struct vf_err e = {0};
	int64_t t0, took;
	int h1, h2, rc;

	tc_init(&tc);
	tc.op_timeout_ms = 3000 * tc_slow();
	tc_add(&tc, "m1", 1);
	h1 = tc_add(&tc, "h1", 0);
	h2 = tc_add(&tc, "h2", 0);
	CU_ASSERT_EQUAL_FATAL(vf_volume_create(tc.n[h1].ctx, "v", NULL, 0, &e), VF_OK);
	memkv_shim_fail(tc.n[h1].shim, MEMKV_LOCK, 1, MEMKV_FAULT_UNCERTAIN_APPLIED, 1);
	rc = vf_volume_mount(tc.n[h1].ctx, "v", "a", NULL, &e);
	CU_ASSERT_NOT_EQUAL(rc, VF_OK);
	CU_ASSERT(memkv_shim_fired(tc.n[h1].shim));
	/* h1 now holds lock/gref/v without knowing (every further lock() of h1
	 * fails, so its sweep cannot release it yet): another lease cannot take it */
	{
		struct vf_kv_lease *l2 = vf_ctx_lease_get(tc.n[h2].ctx);
		struct vf_kv_lock *lk = NULL;

		CU_ASSERT_EQUAL(tc.n[h2].kv->ops->lock(tc.n[h2].kv, l2, "vfile/lock/gref/v", 0,
		                                       NULL, 0, NULL, &lk, &e),
		                VF_EBUSY);
		if (lk)
			tc.n[h2].kv->ops->unlock(tc.n[h2].kv, &lk, NULL);
		vf_ctx_lease_put(tc.n[h2].ctx);
	}
	memkv_shim_clear(tc.n[h1].shim);
	t0 = vf_now_ms();
	rc = vf_volume_mount(tc.n[h2].ctx, "v", "b", NULL, &e);
	took = vf_now_ms() - t0;
	if (rc != VF_OK)
		fprintf(stderr, "h2 mount: %s\n", e.msg);
	CU_ASSERT_EQUAL(rc, VF_OK);
	CU_ASSERT(took < 2000 * tc_slow()); /* the sweep runs every 0.5 s; the op timeout is 3 s */
	CU_ASSERT_EQUAL(vf_vol_dirty_count(tc.n[h1].ctx), 0);
	CU_ASSERT_EQUAL(vf_volume_unmount(tc.n[h2].ctx, "v", "b", &e), VF_OK);
	CU_ASSERT(tc_settled(&tc, "v", TC_WAIT_MS));
	tc_free(&tc);
}

/* A server key (and start claim) written by this manager under an EARLIER lease
 * of its own, which the store still keeps (a revoke that did not reach it):
 * after re-granting, the manager treats them as dead at once instead of
 * waiting for the old lease's TTL. Simulated by writing them with a second,
 * live lease of the same handle. */
static void test_stale_own_server_record(void)
{
	struct tcluster tc;
	struct vf_err e = {0};
	struct vf_kv_lease *old = NULL;
	char val[160];
	int m, h, ok = 0;

	tc_init(&tc);
	m = tc_add(&tc, "m1", 1);
	h = tc_add(&tc, "h1", 0);
	CU_ASSERT_EQUAL_FATAL(vf_volume_create(tc.n[h].ctx, "v", NULL, 0, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(
	        tc.n[m].base->ops->lease_grant(tc.n[m].base, 5, 0, NULL, NULL, &old, &e), VF_OK);
	/* Mounted, served by "m1 <old lease>", one host attached */
	snprintf(val, sizeof(val), "m1 %s", old->id);
	CU_ASSERT_EQUAL(tc.n[m].base->ops->put(tc.n[m].base, "vfile/server/v", val, strlen(val),
	                                       old, NULL, &e),
	                VF_OK);
	CU_ASSERT_EQUAL(
	        tc.n[m].base->ops->put(tc.n[m].base, "vfile/state/v", "Mounted", 7, NULL, NULL, &e),
	        VF_OK);
	CU_ASSERT_EQUAL(
	        tc.n[m].base->ops->put(tc.n[m].base, "vfile/gref/v", "1", 1, NULL, NULL, &e),
	        VF_OK);
	CU_ASSERT_EQUAL(tc.n[m].base->ops->put(tc.n[m].base, "vfile/client/v/h0",
	                                       "{\"addr\":\"x\",\"ids\":[\"c\"]}", 24, NULL, NULL,
	                                       &e),
	                VF_OK);
	/* the reconciler restarts it under the current lease (no server ran) */
	for (int64_t end = vf_now_ms() + TC_WAIT_MS; vf_now_ms() < end && !ok;) {
		char *sv = memkv_value(tc.st, "vfile/server/v");

		ok = sv && strcmp(sv, val) != 0 && testfs_nservers(tc.fs, "v") == 1;
		free(sv);
		if (!ok)
			vf_test_sleep_ms(20);
	}
	CU_ASSERT(ok);
	CU_ASSERT_EQUAL(testfs_violations(tc.fs), 0);
	tc.n[m].base->ops->lease_revoke(tc.n[m].base, &old, NULL);
	tc_free(&tc);
}

/* Remove while the serving manager's stop is still under way, then create and
 * mount again: the other manager must not start a second server while the old
 * one runs. m1 serves v; its stop handler is held right after its claim (so
 * m1 cannot take any other job of v, and m2 is the one to claim the new
 * start); v is removed, created and mounted again meanwhile. */
static pthread_mutex_t hold_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cv = PTHREAD_COND_INITIALIZER;
static int hold_on, hold_hit;

static int hold_fp(const char *name, const char *vol, void *arg)
{
	int64_t end = vf_now_ms() + TC_WAIT_MS;

	(void)name, (void)vol, (void)arg;
	pthread_mutex_lock(&hold_mu);
	hold_hit++;
	pthread_cond_broadcast(&hold_cv);
	while (hold_on && vf_now_ms() < end) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 20000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&hold_cv, &hold_mu, &ts);
	}
	pthread_mutex_unlock(&hold_mu);
	return 0;
}

static int start_claims; /* under hold_mu */

static int start_claim_fp(const char *name, const char *vol, void *arg)
{
	(void)name, (void)arg;
	pthread_mutex_lock(&hold_mu);
	if (strcmp(vol, "v") == 0)
		start_claims++;
	pthread_mutex_unlock(&hold_mu);
	return 0;
}

struct rc_mount_arg {
	struct vf_ctx *ctx;
	int rc;
	char msg[256];
};

static void *rc_mount_thread(void *arg)
{
	struct rc_mount_arg *a = arg;
	struct vf_err e = {0};

	a->rc = vf_volume_mount(a->ctx, "v", "c2", NULL, &e);
	snprintf(a->msg, sizeof(a->msg), "%s", e.msg);
	return NULL;
}

static void test_remove_recreate_while_stopping(void)
{
	struct tcluster tc;
	struct vf_err e = {0};
	struct rc_mount_arg ma = {0};
	pthread_t thr;
	int h, m2, hit = 0;

	tc_init(&tc);
	tc.op_timeout_ms = 4000 * tc_slow();
	tc_add(&tc, "m1", 1);
	h = tc_add(&tc, "h1", 0);
	CU_ASSERT_EQUAL_FATAL(vf_volume_create(tc.n[h].ctx, "v", NULL, 0, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_volume_mount(tc.n[h].ctx, "v", "c1", NULL, &e), VF_OK);
	CU_ASSERT_EQUAL(testfs_nservers(tc.fs, "v"), 1);
	m2 = tc_add(&tc, "m2", 1);
	hold_on = 1;
	hold_hit = 0;
	vf_failpoint_set("mgr.after_claim_stop", hold_fp, NULL);
	CU_ASSERT_EQUAL(vf_volume_unmount(tc.n[h].ctx, "v", "c1", &e), VF_OK);
	pthread_mutex_lock(&hold_mu);
	for (int64_t end = vf_now_ms() + TC_WAIT_MS; !hold_hit && vf_now_ms() < end;) {
		pthread_mutex_unlock(&hold_mu);
		vf_test_sleep_ms(10);
		pthread_mutex_lock(&hold_mu);
	}
	hit = hold_hit;
	pthread_mutex_unlock(&hold_mu);
	CU_ASSERT_FATAL(hit > 0); /* m1 claimed the stop and is held: its server runs */
	CU_ASSERT_EQUAL(testfs_nservers(tc.fs, "v"), 1);
	CU_ASSERT_EQUAL(vf_volume_remove(tc.n[h].ctx, "v", &e), VF_OK);
	CU_ASSERT_EQUAL(vf_volume_create(tc.n[h].ctx, "v", NULL, 0, &e), VF_OK);
	ma.ctx = tc.n[h].ctx;
	start_claims = 0;
	vf_failpoint_set("mgr.after_claim_start", start_claim_fp, NULL);
	pthread_create(&thr, NULL, rc_mount_thread, &ma);
	/* m2 claims the start (m1 is held in v's stop) */
	pthread_mutex_lock(&hold_mu);
	for (int64_t end = vf_now_ms() + TC_WAIT_MS; !start_claims && vf_now_ms() < end;) {
		pthread_mutex_unlock(&hold_mu);
		vf_test_sleep_ms(10);
		pthread_mutex_lock(&hold_mu);
	}
	hit = start_claims;
	pthread_mutex_unlock(&hold_mu);
	CU_ASSERT(hit > 0);
	CU_ASSERT_EQUAL(testfs_violations(tc.fs), 0);
	pthread_mutex_lock(&hold_mu);
	hold_on = 0;
	pthread_cond_broadcast(&hold_cv);
	pthread_mutex_unlock(&hold_mu);
	pthread_join(thr, NULL);
	if (ma.rc != VF_OK)
		fprintf(stderr, "mount after re-create: %s\n", ma.msg);
	CU_ASSERT_EQUAL(ma.rc, VF_OK);
	CU_ASSERT_EQUAL(testfs_nservers(tc.fs, "v"), 1);
	CU_ASSERT_EQUAL(testfs_violations(tc.fs), 0);
	vf_failpoint_clear_all();
	CU_ASSERT_EQUAL(vf_volume_unmount(tc.n[h].ctx, "v", "c2", &e), VF_OK);
	CU_ASSERT(tc_settled(&tc, "v", TC_WAIT_MS));
	(void)m2;
	tc_free(&tc);
}

/* ---- the stop-claim race (doc/protocol.pml STOP_CLAIM_RACE) ----
 * Manager A claims a stop while server/<vol> is empty and is held; manager B
 * then starts the volume and records its server. A must not flip the volume
 * to Ready (B's server would keep running: a later start would run a second
 * one); B takes the stop over. */
static pthread_mutex_t race_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t race_cv = PTHREAD_COND_INITIALIZER;
static int race_hold, race_hits, race_check_hold;

static int race_wait(int *flag)
{
	int64_t end = vf_now_ms() + TC_WAIT_MS;

	while (*flag && vf_now_ms() < end) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 20 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&race_cv, &race_mu, &ts);
	}
	return 0;
}

/* holds the first stop claimant only */
static int race_claim_fp(const char *name, const char *vol, void *arg)
{
	(void)name;
	(void)arg;
	if (strcmp(vol, "v") != 0)
		return 0;
	pthread_mutex_lock(&race_mu);
	if (race_hits++ == 0)
		race_wait(&race_hold);
	pthread_mutex_unlock(&race_mu);
	return 0;
}

/* skips the check (the stop of a server whose key went) while race_check_hold.
 * It must not block: a check queued by a reconcile pass that listed server/
 * before B's start recorded it would hold B's worker slot for the volume, and
 * B's stop handler, queued behind it, could never run. */
static int race_check_fp(const char *name, const char *vol, void *arg)
{
	int skip;

	(void)name;
	(void)arg;
	(void)vol;
	pthread_mutex_lock(&race_mu);
	skip = race_check_hold;
	pthread_mutex_unlock(&race_mu);
	return skip;
}

static int race_value_starts(struct tcluster *tc, const char *key, const char *pre)
{
	char *v = memkv_value(tc->st, key);
	int r = v && strncmp(v, pre, strlen(pre)) == 0;

	free(v);
	return r;
}

static void test_stop_claim_race(void)
{
	struct tcluster tc;
	struct vf_err e = {0};
	struct vf_kv *kv;
	char a[8] = "", b[8] = "";
	int h, ok = 0;

	tc_init(&tc);
	tc_add(&tc, "m1", 1);
	tc_add(&tc, "m2", 1);
	h = tc_add(&tc, "h1", 0);
	kv = tc.n[h].base;
	CU_ASSERT_EQUAL_FATAL(vf_volume_create(tc.n[h].ctx, "v", NULL, 0, &e), VF_OK);
	race_hold = 1;
	race_hits = 0;
	race_check_hold = 0;
	vf_failpoint_set("mgr.after_claim_stop", race_claim_fp, NULL);
	vf_failpoint_set("mgr.check", race_check_fp, NULL);
	/* Mounted, its server gone (no server key), a stop asked */
	{
		struct vf_kv_op o[] = {{.kind = VF_OP_PUT,
		                        .key = "vfile/state/v",
		                        .value = "Mounted",
		                        .value_len = 7},
		                       {.kind = VF_OP_PUT,
		                        .key = "vfile/stop_trigger/v",
		                        .value = "1",
		                        .value_len = 1}};

		CU_ASSERT_EQUAL_FATAL(kv->ops->txn(kv, NULL, 0, o, 2, NULL, &e), VF_OK);
	}
	for (int64_t end = vf_now_ms() + TC_WAIT_MS; vf_now_ms() < end && !a[0];
	     vf_test_sleep_ms(10)) {
		pthread_mutex_lock(&race_mu);
		ok = race_hits > 0;
		pthread_mutex_unlock(&race_mu);
		if (ok && race_value_starts(&tc, "vfile/stop_claim/v", "m1 "))
			snprintf(a, sizeof(a), "m1"), snprintf(b, sizeof(b), "m2");
		else if (ok && race_value_starts(&tc, "vfile/stop_claim/v", "m2 "))
			snprintf(a, sizeof(a), "m2"), snprintf(b, sizeof(b), "m1");
	}
	CU_ASSERT_FATAL(a[0] != '\0'); /* A claimed the stop (server/v empty) and is held */
	/* B starts the volume meanwhile (A is busy with v) */
	CU_ASSERT_EQUAL_FATAL(kv->ops->put(kv, "vfile/start_trigger/v", "1", 1, NULL, NULL, &e),
	                      VF_OK);
	ok = 0;
	for (int64_t end = vf_now_ms() + TC_WAIT_MS; vf_now_ms() < end && !ok; vf_test_sleep_ms(10))
		ok = race_value_starts(&tc, "vfile/server/v", b);
	CU_ASSERT_FATAL(ok);
	CU_ASSERT_EQUAL(testfs_nservers(tc.fs, "v"), 1);
	/* release A; B's stop of a server whose key went is held: only a stop
	 * under the state lock (B's own stop handler) may take the server down */
	pthread_mutex_lock(&race_mu);
	race_check_hold = 1;
	race_hold = 0;
	pthread_cond_broadcast(&race_cv);
	pthread_mutex_unlock(&race_mu);
	ok = 0;
	for (int64_t end = vf_now_ms() + TC_WAIT_MS; vf_now_ms() < end && !ok; vf_test_sleep_ms(10))
		ok = tc_state_is(&tc, "v", "Ready") && testfs_nservers(tc.fs, "v") == 0;
	CU_ASSERT(ok); /* B took the orphaned stop over and stopped its server */
	CU_ASSERT(!tc_state_is(&tc, "v", "Ready") || testfs_nservers(tc.fs, "v") == 0);
	CU_ASSERT(race_value_starts(&tc, "vfile/stop_claim/v", "done 1"));
	/* the next start runs exactly one server */
	CU_ASSERT_EQUAL(vf_volume_mount(tc.n[h].ctx, "v", "c1", NULL, &e), VF_OK);
	CU_ASSERT_EQUAL(testfs_nservers(tc.fs, "v"), 1);
	CU_ASSERT_EQUAL(testfs_violations(tc.fs), 0);
	pthread_mutex_lock(&race_mu);
	race_check_hold = 0;
	pthread_cond_broadcast(&race_cv);
	pthread_mutex_unlock(&race_mu);
	vf_failpoint_clear_all();
	CU_ASSERT_EQUAL(vf_volume_unmount(tc.n[h].ctx, "v", "c1", &e), VF_OK);
	CU_ASSERT(tc_settled(&tc, "v", TC_WAIT_MS));
	CU_ASSERT_EQUAL(testfs_violations(tc.fs), 0);
	tc_free(&tc);
}

/* A daemon crashed and its file server (sshd) kept running; meanwhile another
 * manager serves the volume. The restarted daemon stops its leftover server;
 * the one server/<vol> names keeps running. */
static void test_leftover_server_after_crash(void)
{
	struct tcluster tc;
	struct vf_err e = {0};
	char who[64];
	int h, ok = 0;

	tc_init(&tc);
	tc_add(&tc, "m1", 1);
	h = tc_add(&tc, "h1", 0);
	CU_ASSERT_EQUAL_FATAL(vf_volume_create(tc.n[h].ctx, "v", NULL, 0, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_volume_create(tc.n[h].ctx, "w", NULL, 0, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_volume_mount(tc.n[h].ctx, "v", "c1", NULL, &e), VF_OK);
	CU_ASSERT(race_value_starts(&tc, "vfile/server/v", "m1 "));
	/* m2's daemon crashed leaving a server of v (and one of w, which nobody
	 * serves: not ours to judge here) */
	CU_ASSERT_EQUAL_FATAL(testfs_leftover(tc.fs, "v", "m2"), VF_OK);
	CU_ASSERT_EQUAL_FATAL(testfs_leftover(tc.fs, "w", "m2"), VF_OK);
	CU_ASSERT_EQUAL(testfs_nservers(tc.fs, "v"), 2);
	tc_add(&tc, "m2", 1); /* the restarted daemon */
	for (int64_t end = vf_now_ms() + TC_WAIT_MS; vf_now_ms() < end && !ok; vf_test_sleep_ms(10))
		ok = testfs_nservers(tc.fs, "v") == 1;
	CU_ASSERT(ok);
	CU_ASSERT_STRING_EQUAL(testfs_server(tc.fs, "v", who, sizeof(who)) ? who : "", "m1");
	CU_ASSERT(testfs_mounted(tc.fs, "v", "h1"));
	CU_ASSERT(race_value_starts(&tc, "vfile/server/v", "m1 "));
	/* w: no server/ key, so no other manager serves it: left alone */
	CU_ASSERT_EQUAL(testfs_nservers(tc.fs, "w"), 1);
	CU_ASSERT_EQUAL(vf_volume_unmount(tc.n[h].ctx, "v", "c1", &e), VF_OK);
	CU_ASSERT(tc_settled(&tc, "v", TC_WAIT_MS));
	CU_ASSERT_EQUAL(testfs_violations(tc.fs), 0);
	tc_free(&tc);
}

/* vf_ctx_status: lease, manager, open watches, served volumes */
static void test_ctx_status(void)
{
	struct tcluster tc;
	struct vf_err e = {0};
	struct vf_ctx_status st;
	struct rc_mount_arg ma = {0};
	pthread_t thr;
	int m, h, ok = 0;

	tc_init(&tc);
	m = tc_add(&tc, "m1", 1);
	h = tc_add(&tc, "h1", 0);
	CU_ASSERT_EQUAL(vf_ctx_status(NULL, &st), VF_EINVAL);
	CU_ASSERT_EQUAL_FATAL(vf_ctx_status(tc.n[h].ctx, &st), VF_OK);
	CU_ASSERT(st.lease_id[0] != '\0');
	CU_ASSERT_EQUAL(st.lease_ttl_s, 1);
	CU_ASSERT_EQUAL(st.manager, 0);
	CU_ASSERT_EQUAL(st.watchers, 0);
	CU_ASSERT_EQUAL(st.servers, 0);
	CU_ASSERT_EQUAL_FATAL(vf_ctx_status(tc.n[m].ctx, &st), VF_OK);
	CU_ASSERT_EQUAL(st.manager, 1);
	CU_ASSERT_EQUAL(st.watchers, 3); /* start_trigger/, stop_trigger/, server/ */
	CU_ASSERT_EQUAL(st.servers, 0);
	CU_ASSERT_EQUAL_FATAL(vf_volume_create(tc.n[h].ctx, "v", NULL, 0, &e), VF_OK);
	/* a cold mount waits on a watch while the start is held */
	race_hold = 1;
	race_hits = 0;
	vf_failpoint_set("mgr.after_claim_start", race_claim_fp, NULL);
	ma.ctx = tc.n[h].ctx;
	CU_ASSERT_EQUAL_FATAL(pthread_create(&thr, NULL, rc_mount_thread, &ma), 0);
	for (int64_t end = vf_now_ms() + TC_WAIT_MS; vf_now_ms() < end && !ok;
	     vf_test_sleep_ms(10)) {
		pthread_mutex_lock(&race_mu);
		ok = race_hits > 0;
		pthread_mutex_unlock(&race_mu);
		ok = ok && vf_ctx_status(tc.n[h].ctx, &st) == VF_OK && st.watchers == 1;
	}
	CU_ASSERT(ok); /* the host's mount watches state/v */
	pthread_mutex_lock(&race_mu);
	race_hold = 0;
	pthread_cond_broadcast(&race_cv);
	pthread_mutex_unlock(&race_mu);
	pthread_join(thr, NULL);
	CU_ASSERT_EQUAL(ma.rc, VF_OK);
	vf_failpoint_clear_all();
	CU_ASSERT_EQUAL_FATAL(vf_ctx_status(tc.n[h].ctx, &st), VF_OK);
	CU_ASSERT_EQUAL(st.watchers, 0);
	CU_ASSERT_EQUAL(st.servers, 0);
	CU_ASSERT_EQUAL_FATAL(vf_ctx_status(tc.n[m].ctx, &st), VF_OK);
	CU_ASSERT_EQUAL(st.servers, 1);
	CU_ASSERT_EQUAL(st.watchers, 3);
	CU_ASSERT_EQUAL(vf_volume_unmount(tc.n[h].ctx, "v", "c2", &e), VF_OK);
	CU_ASSERT(tc_settled(&tc, "v", TC_WAIT_MS));
	ok = 0;
	for (int64_t end = vf_now_ms() + TC_WAIT_MS; vf_now_ms() < end && !ok; vf_test_sleep_ms(10))
		ok = vf_ctx_status(tc.n[m].ctx, &st) == VF_OK && st.servers == 0;
	CU_ASSERT(ok);
	tc_free(&tc);
}

/* Create of an existing volume (issue 14, item 6): the same options succeed, in
 * any order; other options are refused naming each difference; an uncertain
 * answer is resolved by reading the volume back. */
static void test_create_idempotent(void)
{
	struct tcluster tc;
	struct vf_err e = {0};
	struct vf_opt a[] = {{"size", "10G"}, {"uid", "1000"}};
	struct vf_opt a2[] = {{"uid", "1000"}, {"size", "10G"}};
	struct vf_opt b[] = {{"size", "20G"}, {"uid", "1000"}};
	struct vf_opt c[] = {{"size", "10G"}};
	struct vf_opt d[] = {{"size", "10G"}, {"uid", "1000"}, {"mode", "ro"}};
	int h;

	tc_init(&tc);
	h = tc_add(&tc, "h1", 0);
	CU_ASSERT_EQUAL_FATAL(vf_volume_create(tc.n[h].ctx, "v", a, 2, &e), VF_OK);
	CU_ASSERT_EQUAL(vf_volume_create(tc.n[h].ctx, "v", a, 2, &e), VF_OK);
	CU_ASSERT_EQUAL(vf_volume_create(tc.n[h].ctx, "v", a2, 2, &e), VF_OK);
	CU_ASSERT_EQUAL(vf_volume_create(tc.n[h].ctx, "v", b, 2, &e), VF_ECONFLICT);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "size=20G (existing volume: 10G)"));
	CU_ASSERT_PTR_NULL(strstr(e.msg, "uid"));
	CU_ASSERT_EQUAL(vf_volume_create(tc.n[h].ctx, "v", c, 1, &e), VF_ECONFLICT);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "uid not given (existing volume: uid=1000)"));
	CU_ASSERT_EQUAL(vf_volume_create(tc.n[h].ctx, "v", d, 3, &e), VF_ECONFLICT);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "mode=ro (existing volume: not set)"));
	CU_ASSERT_EQUAL(vf_volume_create(tc.n[h].ctx, "v", NULL, 0, &e), VF_ECONFLICT);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "size not given"));
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "uid not given"));
	/* the refused creates changed nothing */
	{
		char *info = memkv_value(tc.st, "vfile/info/v");

		CU_ASSERT(info && strstr(info, "\"10G\"") && !strstr(info, "20G"));
		free(info);
	}
	/* the create's answer lost: applied (read back: ours) or not (created again) */
	memkv_shim_fail(tc.n[h].shim, MEMKV_TXN, 1, MEMKV_FAULT_UNCERTAIN_APPLIED, 0);
	CU_ASSERT_EQUAL(vf_volume_create(tc.n[h].ctx, "w1", a, 2, &e), VF_OK);
	memkv_shim_fail(tc.n[h].shim, MEMKV_TXN, 1, MEMKV_FAULT_UNCERTAIN_NOT_APPLIED, 0);
	CU_ASSERT_EQUAL(vf_volume_create(tc.n[h].ctx, "w2", a, 2, &e), VF_OK);
	memkv_shim_clear(tc.n[h].shim);
	CU_ASSERT(tc_state_is(&tc, "w1", "Ready"));
	CU_ASSERT(tc_state_is(&tc, "w2", "Ready"));
	tc_free(&tc);
}

struct create_race {
	struct vf_ctx *ctx;
	const char *vol;
	const struct vf_opt *opts;
	size_t nopts;
	pthread_barrier_t *bar;
	int rc;
	char msg[256];
};

static void *create_race_run(void *arg)
{
	struct create_race *r = arg;
	struct vf_err e = {0};

	pthread_barrier_wait(r->bar);
	r->rc = vf_volume_create(r->ctx, r->vol, r->opts, r->nopts, &e);
	snprintf(r->msg, sizeof(r->msg), "%s", e.msg);
	return NULL;
}

/* Swarm tasks on several hosts racing to create one volume: with the same
 * options every one succeeds and one volume exists; with two option sets the
 * volume gets one of them and every create of the other is refused. */
static void test_create_race(void)
{
	enum { NT = 8, ROUNDS = 20 };
	struct tcluster tc;
	struct vf_opt a[] = {{"size", "1G"}}, b[] = {{"size", "2G"}};
	struct create_race r[NT];
	pthread_t th[NT];
	pthread_barrier_t bar;
	int nodes[4];

	tc_init(&tc);
	for (int i = 0; i < 4; i++) {
		char nm[8];

		snprintf(nm, sizeof(nm), "h%d", i);
		nodes[i] = tc_add(&tc, nm, 0);
	}
	for (int round = 0; round < ROUNDS; round++) {
		char vol[32];
		int mixed = round % 2, ok = 0, conflict = 0, ok_a = 0;

		snprintf(vol, sizeof(vol), "race%d", round);
		pthread_barrier_init(&bar, NULL, NT);
		for (int i = 0; i < NT; i++) {
			int use_b = mixed && i % 2;

			r[i] = (struct create_race){.ctx = tc.n[nodes[i % 4]].ctx,
			                            .vol = vol,
			                            .opts = use_b ? b : a,
			                            .nopts = 1,
			                            .bar = &bar};
			CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, create_race_run, &r[i]),
			                      0);
		}
		for (int i = 0; i < NT; i++) {
			pthread_join(th[i], NULL);
			ok += r[i].rc == VF_OK;
			conflict += r[i].rc == VF_ECONFLICT;
			ok_a += r[i].rc == VF_OK && r[i].opts == a;
			if (r[i].rc == VF_ECONFLICT)
				CU_ASSERT_PTR_NOT_NULL(strstr(r[i].msg, "size="));
		}
		pthread_barrier_destroy(&bar);
		CU_ASSERT(tc_state_is(&tc, vol, "Ready"));
		if (!mixed) {
			CU_ASSERT_EQUAL(ok, NT);
		} else {
			/* the winner's set: all its creates succeed, all others refused */
			CU_ASSERT_EQUAL(ok, NT / 2);
			CU_ASSERT_EQUAL(conflict, NT / 2);
			CU_ASSERT(ok_a == 0 || ok_a == NT / 2);
		}
	}
	tc_free(&tc);
}

/* A host gone for good (its daemon's context freed without unmounting: the lease
 * ends, its client keys stay): listed as not alive; evict of a live host is
 * refused unless forced; evict of the dead one releases exactly its ids and
 * references; the last unmount then stops the server and remove works. */
static int tc_node_alive(struct tcluster *tc, const char *node)
{
	char k[300];
	char *v;

	snprintf(k, sizeof(k), "vfile/node/%s", node);
	v = memkv_value(tc->st, k);
	free(v);
	return v != NULL;
}

static void test_evict_dead_host(void)
{
	struct tcluster tc;
	struct vf_err e = {0};
	struct vf_node *nodes = NULL;
	struct vf_evicted *ev = NULL;
	size_t n = 0;
	int m, h1, h2;

	tc_init(&tc);
	m = tc_add(&tc, "m1", 1);
	h1 = tc_add(&tc, "h1", 0);
	h2 = tc_add(&tc, "h2", 0);
	CU_ASSERT(tc_node_alive(&tc, "m1") && tc_node_alive(&tc, "h1"));
	{
		char *v = memkv_value(tc.st, "vfile/node/m1");

		CU_ASSERT(v && strstr(v, "\"role\":\"manager\"") && strstr(v, "\"started\":"));
		free(v);
	}
	CU_ASSERT_EQUAL_FATAL(vf_volume_create(tc.n[h1].ctx, "v", NULL, 0, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_volume_create(tc.n[h1].ctx, "w", NULL, 0, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_volume_mount(tc.n[h1].ctx, "v", "c1", NULL, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_volume_mount(tc.n[h1].ctx, "v", "c2", NULL, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_volume_mount(tc.n[h1].ctx, "w", "c4", NULL, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_volume_mount(tc.n[h2].ctx, "v", "c3", NULL, &e), VF_OK);
	CU_ASSERT_EQUAL(tc_num(&tc, "gref", "v"), 2);
	/* live: refused, nothing written */
	CU_ASSERT_EQUAL(vf_node_evict(tc.n[m].ctx, "h1", NULL, 0, &ev, &n, &e), VF_EBUSY);
	CU_ASSERT_PTR_NOT_NULL(strstr(e.msg, "alive"));
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT_EQUAL(tc_num(&tc, "gref", "v"), 2);
	CU_ASSERT_EQUAL(vf_node_evict(tc.n[m].ctx, "m1", NULL, 1, &ev, &n, &e), VF_EINVAL);
	/* h1 dies for good: its lease ends, its records stay */
	vf_ctx_free(&tc.n[h1].ctx);
	CU_ASSERT(!tc_node_alive(&tc, "h1"));
	CU_ASSERT(tc_state_is(&tc, "v", "Mounted"));
	CU_ASSERT_EQUAL(tc_num(&tc, "gref", "v"), 2);
	CU_ASSERT_EQUAL_FATAL(vf_node_list(tc.n[m].ctx, &nodes, &n, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(n, 3);
	CU_ASSERT_STRING_EQUAL(nodes[0].name, "h1");
	CU_ASSERT_EQUAL(nodes[0].alive, 0);
	CU_ASSERT_EQUAL(nodes[0].nvols, 2);
	CU_ASSERT_STRING_EQUAL(nodes[1].name, "h2");
	CU_ASSERT_EQUAL(nodes[1].alive, 1);
	CU_ASSERT_STRING_EQUAL(nodes[1].role, "worker");
	CU_ASSERT_EQUAL(nodes[1].nvols, 1);
	CU_ASSERT_STRING_EQUAL(nodes[2].name, "m1");
	CU_ASSERT_STRING_EQUAL(nodes[2].role, "manager");
	CU_ASSERT_EQUAL(nodes[2].nvols, 0);
	vf_nodes_free(&nodes, n);
	/* evict of one volume, then of the rest */
	CU_ASSERT_EQUAL_FATAL(vf_node_evict(tc.n[h2].ctx, "h1", "v", 0, &ev, &n, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	CU_ASSERT_STRING_EQUAL(ev[0].vol, "v");
	CU_ASSERT_EQUAL(ev[0].nids, 2);
	CU_ASSERT_EQUAL(ev[0].gref_before, 2);
	CU_ASSERT_EQUAL(ev[0].gref_after, 1);
	vf_evicted_free(&ev, n);
	CU_ASSERT_EQUAL(tc_num(&tc, "gref", "v"), 1);
	CU_ASSERT(tc_consistent(&tc, "v"));
	CU_ASSERT_EQUAL(tc_num(&tc, "gref", "w"), 1);
	CU_ASSERT_EQUAL_FATAL(vf_node_evict(tc.n[m].ctx, "h1", NULL, 0, &ev, &n, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	CU_ASSERT_STRING_EQUAL(ev[0].vol, "w");
	CU_ASSERT_STRING_EQUAL(ev[0].ids[0], "c4");
	vf_evicted_free(&ev, n);
	/* w had no other host: its server is stopped (the evict bumped stop_trigger) */
	CU_ASSERT_EQUAL(tc_num(&tc, "gref", "w"), 0);
	CU_ASSERT(tc_settled(&tc, "w", TC_WAIT_MS));
	CU_ASSERT(tc_state_is(&tc, "w", "Ready"));
	/* nothing more to release */
	CU_ASSERT_EQUAL(vf_node_evict(tc.n[m].ctx, "h1", NULL, 0, &ev, &n, &e), VF_OK);
	CU_ASSERT_EQUAL(n, 0);
	/* the last unmount stops v's server; remove works */
	CU_ASSERT_EQUAL(vf_volume_unmount(tc.n[h2].ctx, "v", "c3", &e), VF_OK);
	CU_ASSERT(tc_settled(&tc, "v", TC_WAIT_MS));
	CU_ASSERT(tc_state_is(&tc, "v", "Ready"));
	CU_ASSERT_EQUAL(vf_volume_remove(tc.n[h2].ctx, "v", &e), VF_OK);
	CU_ASSERT_EQUAL(vf_volume_remove(tc.n[h2].ctx, "w", &e), VF_OK);
	/* forced: a live host's records go too */
	CU_ASSERT_EQUAL_FATAL(vf_volume_create(tc.n[h2].ctx, "x", NULL, 0, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_volume_mount(tc.n[h2].ctx, "x", "c5", NULL, &e), VF_OK);
	CU_ASSERT_EQUAL(vf_node_evict(tc.n[m].ctx, "h2", "x", 1, &ev, &n, &e), VF_OK);
	CU_ASSERT_EQUAL(n, 1);
	vf_evicted_free(&ev, n);
	CU_ASSERT_EQUAL(tc_num(&tc, "gref", "x"), 0);
	CU_ASSERT(tc_consistent(&tc, "x"));
	/* the evicted live host's unmount of its id still answers ok */
	CU_ASSERT_EQUAL(vf_volume_unmount(tc.n[h2].ctx, "x", "c5", &e), VF_OK);
	CU_ASSERT(tc_settled(&tc, "x", TC_WAIT_MS));
	CU_ASSERT_EQUAL(testfs_violations(tc.fs), 0);
	tc_free(&tc);
}

/* A host that comes back between evict's liveness check and its txn is not
 * evicted: the txn compares node/<node> absent. The hook puts the key when evict
 * lists client/ (after its first check). */
struct evict_back {
	struct vf_kv *kv;
};

static void evict_back_hook(const char *prefix, int after, void *arg)
{
	struct evict_back *b = arg;

	if (!after && strcmp(prefix, "vfile/client/") == 0)
		b->kv->ops->put(b->kv, "vfile/node/h1", "{}", 2, NULL, NULL, NULL);
}

static void test_evict_host_back(void)
{
	struct tcluster tc;
	struct vf_err e = {0};
	struct vf_evicted *ev = NULL;
	struct evict_back b;
	size_t n = 0;
	int m, h1;

	tc_init(&tc);
	m = tc_add(&tc, "m1", 1);
	h1 = tc_add(&tc, "h1", 0);
	CU_ASSERT_EQUAL_FATAL(vf_volume_create(tc.n[h1].ctx, "v", NULL, 0, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_volume_mount(tc.n[h1].ctx, "v", "c1", NULL, &e), VF_OK);
	vf_ctx_free(&tc.n[h1].ctx);
	b.kv = tc.n[h1].base;
	memkv_shim_list_hook(tc.n[m].shim, evict_back_hook, &b);
	CU_ASSERT_EQUAL(vf_node_evict(tc.n[m].ctx, "h1", NULL, 0, &ev, &n, &e), VF_EBUSY);
	memkv_shim_list_hook(tc.n[m].shim, NULL, NULL);
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT_EQUAL(tc_num(&tc, "gref", "v"), 1);
	CU_ASSERT_EQUAL(tc_clients(&tc, "v"), 1);
	tc_free(&tc);
}

/* evict_after_s: a manager evicts a host whose lease has been gone that long,
 * not before, and never a live host. */
static void test_evict_auto(void)
{
	struct tcluster tc;
	struct vf_err e = {0};
	int64_t t0, took = -1;
	int h1, h2;

	tc_init(&tc);
	tc.evict_after_s = 2;
	tc_add(&tc, "m1", 1);
	h1 = tc_add(&tc, "h1", 0);
	h2 = tc_add(&tc, "h2", 0);
	CU_ASSERT_EQUAL_FATAL(vf_volume_create(tc.n[h1].ctx, "v", NULL, 0, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_volume_mount(tc.n[h1].ctx, "v", "c1", NULL, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_volume_mount(tc.n[h2].ctx, "v", "c2", NULL, &e), VF_OK);
	vf_ctx_free(&tc.n[h1].ctx);
	t0 = vf_now_ms();
	for (int64_t end = t0 + TC_WAIT_MS; vf_now_ms() < end; vf_test_sleep_ms(20))
		if (tc_clients(&tc, "v") == 1 && tc_num(&tc, "gref", "v") == 1) {
			took = vf_now_ms() - t0;
			break;
		}
	CU_ASSERT(took >= 0);
	CU_ASSERT(took >= 1900); /* the grace (2 s) was waited */
	CU_ASSERT(tc_consistent(&tc, "v"));
	CU_ASSERT(tc_node_alive(&tc, "h2"));
	{
		char *c = memkv_value(tc.st, "vfile/client/v/h2");

		CU_ASSERT_PTR_NOT_NULL(c); /* the live host is kept */
		free(c);
	}
	CU_ASSERT(tc_state_is(&tc, "v", "Mounted"));
	CU_ASSERT_EQUAL(vf_volume_unmount(tc.n[h2].ctx, "v", "c2", &e), VF_OK);
	CU_ASSERT(tc_settled(&tc, "v", TC_WAIT_MS));
	tc_free(&tc);
}

/* The gauges the volume manager keeps (issue 14, item 5): lease held, local
 * mounts, servers running, volumes by state and the last reconcile time. */
static int tc_gauge_is(enum vf_metric_gauge g, int64_t v)
{
	for (int64_t end = vf_now_ms() + TC_WAIT_MS; vf_now_ms() < end; vf_test_sleep_ms(10))
		if (vf_metrics_gauge_get(g) == v)
			return 1;
	fprintf(stderr, "gauge %d is %lld, not %lld\n", (int)g, (long long)vf_metrics_gauge_get(g),
	        (long long)v);
	return 0;
}

static void test_gauges(void)
{
	struct tcluster tc;
	struct vf_err e = {0};
	int64_t t0 = (int64_t)time(NULL);
	int h;

	vf_metrics_reset();
	tc_init(&tc);
	tc_add(&tc, "m1", 1);
	h = tc_add(&tc, "h1", 0);
	CU_ASSERT_EQUAL(vf_metrics_gauge_get(VF_G_LEASE_HELD), 1);
	CU_ASSERT_EQUAL_FATAL(vf_volume_create(tc.n[h].ctx, "v", NULL, 0, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_volume_create(tc.n[h].ctx, "w", NULL, 0, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_volume_mount(tc.n[h].ctx, "v", "c1", NULL, &e), VF_OK);
	CU_ASSERT_EQUAL(vf_metrics_gauge_get(VF_G_LOCAL_MOUNTS), 1);
	CU_ASSERT(tc_gauge_is(VF_G_SERVERS, 1));
	CU_ASSERT(tc_gauge_is(VF_G_VOLUMES_MOUNTED, 1));
	CU_ASSERT(tc_gauge_is(VF_G_VOLUMES_READY, 1));
	CU_ASSERT(vf_metrics_gauge_get(VF_G_LAST_RECONCILE) >= t0);
	CU_ASSERT_EQUAL(vf_volume_unmount(tc.n[h].ctx, "v", "c1", &e), VF_OK);
	CU_ASSERT_EQUAL(vf_metrics_gauge_get(VF_G_LOCAL_MOUNTS), 0);
	CU_ASSERT(tc_gauge_is(VF_G_SERVERS, 0));
	CU_ASSERT(tc_gauge_is(VF_G_VOLUMES_READY, 2));
	CU_ASSERT(tc_gauge_is(VF_G_VOLUMES_MOUNTED, 0));
	tc_free(&tc);
	CU_ASSERT_EQUAL(vf_metrics_gauge_get(VF_G_LEASE_HELD), 0);
	vf_metrics_reset();
}

void vf_test_register(void)
{
	CU_pSuite s = CU_add_suite("volume", NULL, NULL);

	if (s == NULL)
		vf_test_abort("suite volume");
	VF_ADD_TEST(s, test_names);
	VF_ADD_TEST(s, test_bad_input_touches_nothing);
	VF_ADD_TEST(s, test_create_idempotent);
	VF_ADD_TEST(s, test_create_race);
	VF_ADD_TEST(s, test_evict_dead_host);
	VF_ADD_TEST(s, test_evict_host_back);
	VF_ADD_TEST(s, test_evict_auto);
	VF_ADD_TEST(s, test_gauges);
	VF_ADD_TEST(s, test_mount_unmount_refcount);
	VF_ADD_TEST(s, test_prefix_families);
	VF_ADD_TEST(s, test_round_trips);
	VF_ADD_TEST(s, test_stop_vs_mount_stop_paused);
	VF_ADD_TEST(s, test_stop_vs_mount_mount_paused);
	VF_ADD_TEST(s, test_manager_dies_after_claim);
	VF_ADD_TEST(s, test_serving_manager_lease_lost);
	VF_ADD_TEST(s, test_restart_batched);
	VF_ADD_TEST(s, test_restart_stale_pass);
	VF_ADD_TEST(s, test_restart_unserved_pass);
	VF_ADD_TEST(s, test_restart_batch_dropped);
	VF_ADD_TEST(s, test_demote_promote);
	VF_ADD_TEST(s, test_release_unused);
	VF_ADD_TEST(s, test_concurrent_memkv);
	VF_ADD_TEST(s, test_reconcile_missed_trigger);
	VF_ADD_TEST(s, test_lock_left_by_lost_answer);
	VF_ADD_TEST(s, test_stale_own_server_record);
	VF_ADD_TEST(s, test_remove_recreate_while_stopping);
	VF_ADD_TEST(s, test_stop_claim_race);
	VF_ADD_TEST(s, test_leftover_server_after_crash);
	VF_ADD_TEST(s, test_ctx_status);
	vf_test_register_fault();
}
