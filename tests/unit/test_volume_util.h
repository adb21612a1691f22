/* A small cluster over one memkv store for the volume-manager tests. */
#ifndef VFILE_TEST_VOLUME_UTIL_H
#define VFILE_TEST_VOLUME_UTIL_H

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>

#include "test_int.h"
#include "volume_int.h"
#include "memkv.h"
#include "testfs.h"

#define TC_MAX 8

/* tests/memkv/shim.c: fn(prefix, after, arg) around every list() of the shim */
void memkv_shim_list_hook(struct memkv_shim *s, void (*fn)(const char *, int, void *), void *arg);
/* tests/memkv/shim.c: a second fault rule (once), besides memkv_shim_fail's */
void memkv_shim_fail_also(struct memkv_shim *s, int slot, unsigned nth, int mode);

struct tnode {
	char name[32];
	struct vf_kv *base; /* memkv handle */
	struct vf_kv *kv;   /* shim over base: what the context uses */
	struct memkv_shim *shim;
	struct vf_ctx *ctx;
	struct testfs_node fsn;
};

struct tcluster {
	struct memkv_store *st;
	struct testfs *fs;
	struct tnode n[TC_MAX];
	int nn;
	int op_timeout_ms, reconcile_ms;
	int evict_after_s;    /* managers added from then on */
	char mount_root[256]; /* empty: a path that does not exist; else <root>/<node> */
};

/* How much slower than native the code runs: 5 under valgrind (the memcheck
 * preload, or VFILE_VALGRIND=1), else 1. Scales the bounds that measure a
 * latency the code promises (op timeouts, "took at most"), never a wait. */
static inline int tc_slow(void)
{
	const char *vg = getenv("VFILE_VALGRIND"), *pre = getenv("LD_PRELOAD");

	return (vg && strcmp(vg, "1") == 0) || (pre && strstr(pre, "vgpreload")) ? 5 : 1;
}

/* The test file server's mounts are the hosts' "mount table". */
static inline int tc_probe(void *fs_arg, const char *vol, const char *path)
{
	struct testfs_node *n = fs_arg;

	(void)path;
	return testfs_mounted(n->fs, vol, n->node);
}

static inline void tc_init(struct tcluster *tc)
{
	memset(tc, 0, sizeof(*tc));
	CU_ASSERT_EQUAL_FATAL(memkv_store_new(&tc->st), VF_OK);
	tc->fs = testfs_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(tc->fs);
	tc->op_timeout_ms = 4000 * tc_slow();
	tc->reconcile_ms = 100;
	vf_vol_mount_probe_set(tc_probe);
}

/* Add a node (manager or host); returns its index. */
static inline int tc_add(struct tcluster *tc, const char *name, int manager)
{
	struct tnode *n = &tc->n[tc->nn];
	struct vf_ctx_cfg cfg = {0};
	struct vf_err e = {0};

	snprintf(n->name, sizeof(n->name), "%s", name);
	CU_ASSERT_EQUAL_FATAL(memkv_open(tc->st, &n->base, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(memkv_fault_new(n->base, &n->kv, &n->shim), VF_OK);
	testfs_node_init(&n->fsn, tc->fs, name);
	cfg.node_id = name;
	cfg.node_addr = "127.0.0.1";
	char root[300];

	if (tc->mount_root[0]) {
		snprintf(root, sizeof(root), "%s/%s", tc->mount_root, name);
		mkdir(root, 0755);
	} else {
		snprintf(root, sizeof(root), "/nonexistent/vfile-test");
	}
	cfg.mount_root = root;
	cfg.manager = manager;
	cfg.lease_ttl_s = 1;
	cfg.op_timeout_ms = tc->op_timeout_ms;
	cfg.reconcile_ms = tc->reconcile_ms;
	cfg.evict_after_s = tc->evict_after_s;
	cfg.fs = &testfs_ops;
	cfg.fs_arg = &n->fsn;
	CU_ASSERT_EQUAL_FATAL(vf_ctx_new(n->kv, &cfg, &n->ctx, &e), VF_OK);
	if (manager)
		CU_ASSERT_EQUAL_FATAL(vf_ctx_start_manager(n->ctx, &e), VF_OK);
	return tc->nn++;
}

static inline void tc_free(struct tcluster *tc)
{
	vf_failpoint_clear_all();
	for (int i = 0; i < tc->nn; i++) {
		memkv_shim_clear(tc->n[i].shim);
		vf_ctx_free(&tc->n[i].ctx);
	}
	for (int i = 0; i < tc->nn; i++) {
		tc->n[i].kv->ops->close(tc->n[i].kv);
		tc->n[i].base->ops->close(tc->n[i].base);
	}
	memkv_store_free(&tc->st);
	testfs_free(&tc->fs);
}

static inline int64_t tc_num(struct tcluster *tc, const char *fam, const char *vol)
{
	char k[300];
	char *v;
	int64_t n;

	snprintf(k, sizeof(k), "vfile/%s/%s", fam, vol);
	v = memkv_value(tc->st, k);
	n = v ? strtoll(v, NULL, 10) : -1;
	free(v);
	return n;
}

static inline int tc_state_is(struct tcluster *tc, const char *vol, const char *state)
{
	char k[300];
	char *v;
	int r;

	snprintf(k, sizeof(k), "vfile/state/%s", vol);
	v = memkv_value(tc->st, k);
	r = v && strcmp(v, state) == 0;
	free(v);
	return r;
}

static inline size_t tc_clients(struct tcluster *tc, const char *vol)
{
	char k[300];

	snprintf(k, sizeof(k), "vfile/client/%s/", vol);
	return memkv_count(tc->st, k);
}

/* gref == number of client keys (absent gref counts as 0). */
static inline int tc_consistent(struct tcluster *tc, const char *vol)
{
	int64_t g = tc_num(tc, "gref", vol);

	return (g < 0 ? 0 : g) == (int64_t)tc_clients(tc, vol);
}

/* The bound of a wait for something that must happen (a server started or
 * stopped, a takeover, a restart): long, since it costs nothing when the
 * condition comes, and the code's own latency (reconcile passes of 100 ms, lease
 * retries of 0.5 s) is a small part of it on a busy machine or under valgrind.
 * Waits that check something does NOT happen use bounds of their own. */
#define TC_WAIT_MS 20000

/* Poll with a deadline until "a server runs iff gref > 0" holds (stops are async). */
static inline int tc_settled(struct tcluster *tc, const char *vol, int timeout_ms)
{
	int64_t end = vf_now_ms() + timeout_ms;

	for (;;) {
		int64_t g = tc_num(tc, "gref", vol);
		int ns = testfs_nservers(tc->fs, vol);

		if (ns == (g > 0 ? 1 : 0) && tc_consistent(tc, vol) &&
		    (g > 0 ? tc_state_is(tc, vol, "Mounted") : 1))
			return 1;
		if (vf_now_ms() > end) {
			fprintf(stderr, "settle %s: gref %lld servers %d clients %zu\n", vol,
			        (long long)g, ns, tc_clients(tc, vol));
			return 0;
		}
		vf_test_sleep_ms(10);
	}
}

#endif
