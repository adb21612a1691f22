/* Unit tests of the cluster marker (src/conf/cluster.c) over memkv: the first manager
 * founds the cluster, later ones need the marker, init writes it, another
 * cluster's marker is refused. */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster_int.h"
#include "common_int.h"
#include "memkv.h"
#include "test_int.h"

static char cl_dir[256];

static int cl_init(void)
{
	snprintf(cl_dir, sizeof(cl_dir), "/tmp/vfile-unit-cluster.XXXXXX");
	return mkdtemp(cl_dir) == NULL;
}

static int cl_cleanup(void)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", cl_dir);
	return system(cmd) == 0 ? 0 : 1;
}

/* The marker of export root name ("" if none). */
static void cl_marker(const char *name, char *buf, size_t size)
{
	char path[600];
	FILE *f;
	size_t n = 0;

	snprintf(path, sizeof(path), "%s/%s/" VF_CLUSTER_MARKER, cl_dir, name);
	buf[0] = '\0';
	if ((f = fopen(path, "r")) == NULL)
		return;
	n = fread(buf, 1, size - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
}

static void cl_write(const char *name, const char *text)
{
	char path[600];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", cl_dir, name);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/" VF_CLUSTER_MARKER, cl_dir, name);
	f = fopen(path, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs(text, f);
	fclose(f);
}

/* vf_cluster_check of export root name; the id and what into buffers. */
static int cl_check(struct vf_kv *kv, const char *prefix, const char *name,
                    enum vf_cluster_mode mode, char *id, const char **what, struct vf_err *err)
{
	char root[600], *got = NULL;
	int rc;

	snprintf(root, sizeof(root), "%s/%s", cl_dir, name);
	memset(err, 0, sizeof(*err));
	id[0] = '\0';
	rc = vf_cluster_check(kv, prefix, root, mode, &got, what, err);
	if (rc == VF_OK) {
		CU_ASSERT_PTR_NOT_NULL_FATAL(got);
		snprintf(id, 128, "%s", got);
		free(got);
	} else {
		CU_ASSERT_PTR_NULL(got);
	}
	return rc;
}

static void test_cluster_marker(void)
{
	struct memkv_store *st = NULL;
	struct vf_kv *kv = NULL;
	struct vf_err err;
	char id[128], id2[128], mark[256], *v;
	const char *what;

	CU_ASSERT_EQUAL_FATAL(memkv_store_new(&st), VF_OK);
	CU_ASSERT_EQUAL_FATAL(memkv_open(st, &kv, &err), VF_OK);

	/* the first manager: an export_root that does not exist yet founds the cluster */
	CU_ASSERT_EQUAL(cl_check(kv, "p/", "a/export", VF_CLUSTER_START, id, &what, &err), VF_OK);
	CU_ASSERT_STRING_EQUAL(what, "created");
	CU_ASSERT_EQUAL(strlen(id), 32);
	cl_marker("a/export", mark, sizeof(mark));
	CU_ASSERT_STRING_EQUAL(mark, id);
	v = memkv_value(st, "p/" VF_CLUSTER_KEY);
	CU_ASSERT_PTR_NOT_NULL(v);
	CU_ASSERT_STRING_EQUAL(v ? v : "", id);
	free(v);

	/* a manager on the same (shared) export_root */
	CU_ASSERT_EQUAL(cl_check(kv, "p/", "a/export", VF_CLUSTER_START, id2, &what, &err), VF_OK);
	CU_ASSERT_STRING_EQUAL(what, "matches");
	CU_ASSERT_STRING_EQUAL(id2, id);

	/* a manager with a local, empty export_root: refused, nothing written */
	CU_ASSERT_EQUAL(cl_check(kv, "p/", "b", VF_CLUSTER_START, id2, &what, &err), VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "holds no cluster marker"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, id));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "vfilectl init"));
	cl_marker("b", mark, sizeof(mark));
	CU_ASSERT_STRING_EQUAL(mark, "");

	/* another cluster's marker: refused, by start and by init */
	cl_write("c", "0123456789abcdef\n");
	CU_ASSERT_EQUAL(cl_check(kv, "p/", "c", VF_CLUSTER_START, id2, &what, &err), VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "belongs to another cluster"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "0123456789abcdef"));
	CU_ASSERT_EQUAL(cl_check(kv, "p/", "c", VF_CLUSTER_INIT, id2, &what, &err), VF_EINVAL);
	cl_marker("c", mark, sizeof(mark));
	CU_ASSERT_STRING_EQUAL(mark, "0123456789abcdef");

	/* init writes the store's id into an export_root without a marker */
	CU_ASSERT_EQUAL(cl_check(kv, "p/", "b", VF_CLUSTER_INIT, id2, &what, &err), VF_OK);
	CU_ASSERT_STRING_EQUAL(what, "written");
	CU_ASSERT_STRING_EQUAL(id2, id);
	cl_marker("b", mark, sizeof(mark));
	CU_ASSERT_STRING_EQUAL(mark, id);
	CU_ASSERT_EQUAL(cl_check(kv, "p/", "b", VF_CLUSTER_START, id2, &what, &err), VF_OK);
	CU_ASSERT_STRING_EQUAL(what, "matches");
	CU_ASSERT_EQUAL(cl_check(kv, "p/", "b", VF_CLUSTER_INIT, id2, &what, &err), VF_OK);
	CU_ASSERT_STRING_EQUAL(what, "matches");

	/* a store without a cluster (another prefix) adopts an existing marker */
	CU_ASSERT_EQUAL(cl_check(kv, "q/", "c", VF_CLUSTER_START, id2, &what, &err), VF_OK);
	CU_ASSERT_STRING_EQUAL(what, "adopted");
	CU_ASSERT_STRING_EQUAL(id2, "0123456789abcdef");
	v = memkv_value(st, "q/" VF_CLUSTER_KEY);
	CU_ASSERT_STRING_EQUAL(v ? v : "", "0123456789abcdef");
	free(v);

	/* a marker that holds no id */
	cl_write("d", "not an id!\n");
	CU_ASSERT_EQUAL(cl_check(kv, "p/", "d", VF_CLUSTER_START, id2, &what, &err), VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "does not hold a cluster id"));

	kv->ops->close(kv);
	memkv_store_free(&st);
}

/* A store that answers the first get "absent", as it was when a manager that
 * loses the race to found the cluster read it: get and cas reach memkv. */
struct cl_liar {
	struct vf_kv base;
	struct vf_kv *inner;
	int lies;
};
static struct vf_kv_ops cl_liar_ops;

static int cl_liar_get(struct vf_kv *kv, const char *key, struct vf_kv_pair *p, struct vf_err *err)
{
	struct cl_liar *l = (struct cl_liar *)kv;

	if (l->lies > 0) {
		l->lies--;
		return vf_err_set(err, VF_ENOTFOUND, "%s: not found", key);
	}
	return l->inner->ops->get(l->inner, key, p, err);
}

static int cl_liar_cas(struct vf_kv *kv, const char *key, const char *value, size_t len,
                       int64_t expect, struct vf_kv_lease *lease, int64_t *rev_r,
                       struct vf_err *err)
{
	struct cl_liar *l = (struct cl_liar *)kv;

	return l->inner->ops->cas(l->inner, key, value, len, expect, lease, rev_r, err);
}

/* Two managers founding the cluster at once on separate local disks: one wins,
 * the other is refused and leaves no marker of its own behind. */
static void test_cluster_race(void)
{
	struct memkv_store *st = NULL;
	struct vf_kv *kv = NULL;
	struct cl_liar liar = {0};
	struct vf_err err;
	char id[128], id2[128], mark[256];
	const char *what;

	CU_ASSERT_EQUAL_FATAL(memkv_store_new(&st), VF_OK);
	CU_ASSERT_EQUAL_FATAL(memkv_open(st, &kv, &err), VF_OK);
	cl_liar_ops = *kv->ops;
	cl_liar_ops.get = cl_liar_get;
	cl_liar_ops.cas = cl_liar_cas;
	liar.base = *kv;
	liar.base.ops = &cl_liar_ops;
	liar.inner = kv;
	CU_ASSERT_EQUAL(cl_check(kv, "r/", "win", VF_CLUSTER_START, id, &what, &err), VF_OK);
	CU_ASSERT_STRING_EQUAL(what, "created");
	liar.lies = 1;
	CU_ASSERT_EQUAL(cl_check(&liar.base, "r/", "lose", VF_CLUSTER_START, id2, &what, &err),
	                VF_EINVAL);
	CU_ASSERT_EQUAL(liar.lies, 0); /* it did read "absent" and tried to found it */
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "holds no cluster marker"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, id));
	cl_marker("lose", mark, sizeof(mark));
	CU_ASSERT_STRING_EQUAL(mark, "");
	/* the loser on the winner's (shared) export_root: the marker appeared, so it
	 * takes it */
	liar.lies = 1;
	CU_ASSERT_EQUAL(cl_check(&liar.base, "r/", "win", VF_CLUSTER_START, id2, &what, &err),
	                VF_OK);
	CU_ASSERT_STRING_EQUAL(id2, id);
	kv->ops->close(kv);
	memkv_store_free(&st);
}

void vf_test_register_cluster(void);
void vf_test_register_cluster(void)
{
	CU_pSuite s = CU_add_suite("cluster", cl_init, cl_cleanup);

	VF_ADD_TEST(s, test_cluster_marker);
	VF_ADD_TEST(s, test_cluster_race);
}
