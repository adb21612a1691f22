/* Unit tests of vfilectl migrate (src/ctl/migrate.c) between two in-process stores
 * (memkv): what is copied and what is not, the prefix rewrite, transactions
 * within a small max_txn_ops, the Mounted and existing-volume refusals. */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_int.h"
#include "common_int.h"
#include "ctl_int.h"
#include "memkv.h"

struct mt {
	struct memkv_store *a, *b;
	struct vf_kv *src, *dst;
	char *out, *err;
	size_t outlen, errlen;
};

static void mt_put(struct vf_kv *kv, const char *key, const char *value)
{
	CU_ASSERT_EQUAL_FATAL(kv->ops->put(kv, key, value, strlen(value), NULL, NULL, NULL), VF_OK);
}

static void mt_setup(struct mt *t)
{
	char k[64];

	memset(t, 0, sizeof(*t));
	CU_ASSERT_EQUAL_FATAL(memkv_store_new(&t->a), VF_OK);
	CU_ASSERT_EQUAL_FATAL(memkv_store_new(&t->b), VF_OK);
	CU_ASSERT_EQUAL_FATAL(memkv_open(t->a, &t->src, NULL), VF_OK);
	CU_ASSERT_EQUAL_FATAL(memkv_open(t->b, &t->dst, NULL), VF_OK);
	t->dst->max_txn_ops = 4; /* force several transactions per volume */
	/* v1: Ready, used, 10 clients (copied), a live claim and server (not copied) */
	mt_put(t->src, "p/state/v1", "Ready");
	mt_put(t->src, "p/gref/v1", "0");
	mt_put(t->src, "p/info/v1", "{\"name\":\"v1\",\"options\":{\"size\":\"1G\"}}");
	mt_put(t->src, "p/start_trigger/v1", "3");
	mt_put(t->src, "p/start_marker/v1", "3");
	mt_put(t->src, "p/start_claim/v1", "m1 7f00aa 3");
	mt_put(t->src, "p/stop_claim/v1", "done 2");
	mt_put(t->src, "p/server/v1", "m1 7f00aa");
	mt_put(t->src, "p/lock/gref/v1", "x");
	/* a daemon's liveness key: bound to its lease, not copied */
	mt_put(t->src, "p/node/m1", "{\"role\":\"manager\"}");
	for (int i = 0; i < 10; i++) {
		snprintf(k, sizeof(k), "p/client/v1/node%d", i);
		mt_put(t->src, k, "{\"addr\":\"h\",\"ids\":[\"a\"]}");
	}
	/* v2: Mounted; a key of no volume; keys of a volume without state */
	mt_put(t->src, "p/state/v2", "Mounted");
	mt_put(t->src, "p/gref/v2", "1");
	mt_put(t->src, "p/other", "?");
	mt_put(t->src, "p/gref/ghost", "0");
	/* outside the prefix: never read */
	mt_put(t->src, "q/state/v3", "Ready");
}

static void mt_teardown(struct mt *t)
{
	t->src->ops->close(t->src);
	t->dst->ops->close(t->dst);
	memkv_store_free(&t->a);
	memkv_store_free(&t->b);
	free(t->out);
	free(t->err);
}

static int mt_run(struct mt *t, int force, int overwrite, int json)
{
	struct ctl_migrate_opts o = {force, overwrite, json};
	FILE *out, *err;
	int rc;

	free(t->out);
	free(t->err);
	t->out = t->err = NULL;
	out = open_memstream(&t->out, &t->outlen);
	err = open_memstream(&t->err, &t->errlen);
	CU_ASSERT_PTR_NOT_NULL_FATAL(out);
	CU_ASSERT_PTR_NOT_NULL_FATAL(err);
	rc = ctl_migrate_kv(t->src, "p/", t->dst, "n/", &o, out, err);
	fclose(out);
	fclose(err);
	return rc;
}

static int mt_value_is(struct memkv_store *st, const char *key, const char *want)
{
	char *v = memkv_value(st, key);
	int ok = (v == NULL && want == NULL) || (v && want && strcmp(v, want) == 0);

	if (!ok)
		fprintf(stderr, "\n  %s: '%s', want '%s'\n", key, v ? v : "(absent)",
		        want ? want : "(absent)");
	free(v);
	return ok;
}

static void test_migrate_refused_while_mounted(void)
{
	struct mt t;

	mt_setup(&t);
	CU_ASSERT_EQUAL(mt_run(&t, 0, 0, 0), CTL_EXIT_FAIL);
	CU_ASSERT_PTR_NOT_NULL(strstr(t.err, "1 volume(s) Mounted: v2"));
	CU_ASSERT_EQUAL(memkv_count(t.b, ""), 0);
	mt_teardown(&t);
}

static void test_migrate_force_copies(void)
{
	struct mt t;
	char k[64];

	mt_setup(&t);
	CU_ASSERT_EQUAL_FATAL(mt_run(&t, 1, 0, 0), CTL_EXIT_OK);
	CU_ASSERT_PTR_NOT_NULL(strstr(t.out, "migrated 2 volume(s), 18 keys, verified"));
	CU_ASSERT_PTR_NOT_NULL(strstr(t.out, "not copied: 1 lock key(s), 3 lease-bound key(s)"));
	CU_ASSERT_PTR_NOT_NULL(strstr(t.out, "2 key(s) of no volume"));
	CU_ASSERT_PTR_NULL(memkv_value(t.b, "n/node/m1"));
	/* copied under the new prefix */
	CU_ASSERT_TRUE(mt_value_is(t.b, "n/state/v1", "Ready"));
	CU_ASSERT_TRUE(
	        mt_value_is(t.b, "n/info/v1", "{\"name\":\"v1\",\"options\":{\"size\":\"1G\"}}"));
	CU_ASSERT_TRUE(mt_value_is(t.b, "n/start_marker/v1", "3"));
	CU_ASSERT_TRUE(mt_value_is(t.b, "n/stop_claim/v1", "done 2"));
	for (int i = 0; i < 10; i++) {
		snprintf(k, sizeof(k), "n/client/v1/node%d", i);
		CU_ASSERT_TRUE(mt_value_is(t.b, k, "{\"addr\":\"h\",\"ids\":[\"a\"]}"));
	}
	CU_ASSERT_TRUE(mt_value_is(t.b, "n/state/v2", "Mounted"));
	CU_ASSERT_TRUE(mt_value_is(t.b, "n/gref/v2", "1"));
	/* not copied */
	CU_ASSERT_TRUE(mt_value_is(t.b, "n/start_claim/v1", NULL));
	CU_ASSERT_TRUE(mt_value_is(t.b, "n/server/v1", NULL));
	CU_ASSERT_EQUAL(memkv_count(t.b, "n/lock/"), 0);
	CU_ASSERT_TRUE(mt_value_is(t.b, "n/other", NULL));
	CU_ASSERT_TRUE(mt_value_is(t.b, "n/gref/ghost", NULL));
	CU_ASSERT_EQUAL(memkv_count(t.b, "q/"), 0);
	CU_ASSERT_EQUAL(memkv_count(t.b, ""), 18);
	/* the source is untouched */
	CU_ASSERT_EQUAL(memkv_count(t.a, "p/"), 24);
	mt_teardown(&t);
}

static void test_migrate_existing_and_overwrite(void)
{
	struct mt t;

	mt_setup(&t);
	/* v1 already on the target, with a client the source does not have */
	mt_put(t.dst, "n/state/v1", "Mounted");
	mt_put(t.dst, "n/client/v1/stale", "{}");
	mt_put(t.dst, "n/lock/state/v1", "held"); /* a lock key: left alone */
	CU_ASSERT_EQUAL(mt_run(&t, 1, 0, 0), CTL_EXIT_FAIL);
	CU_ASSERT_PTR_NOT_NULL(strstr(t.err, "1 volume(s) already on the target: v1"));
	CU_ASSERT_PTR_NOT_NULL(strstr(t.err, "nothing was written"));
	CU_ASSERT_EQUAL(memkv_count(t.b, ""), 3);
	CU_ASSERT_TRUE(mt_value_is(t.b, "n/state/v2", NULL));

	CU_ASSERT_EQUAL_FATAL(mt_run(&t, 1, 1, 1), CTL_EXIT_OK);
	CU_ASSERT_PTR_NOT_NULL(strstr(t.out, "\"Volumes\": 2, \"Keys\": 18, \"Verified\": true"));
	CU_ASSERT_PTR_NOT_NULL(strstr(t.out, "\"Replaced\": 1"));
	CU_ASSERT_TRUE(mt_value_is(t.b, "n/state/v1", "Ready"));
	CU_ASSERT_TRUE(mt_value_is(t.b, "n/client/v1/stale", NULL));
	CU_ASSERT_TRUE(mt_value_is(t.b, "n/lock/state/v1", "held"));
	CU_ASSERT_EQUAL(memkv_count(t.b, ""), 19);
	mt_teardown(&t);
}

static void test_migrate_empty(void)
{
	struct mt t;

	mt_setup(&t);
	/* nothing under this prefix: nothing to do, still a success */
	struct ctl_migrate_opts o = {0, 0, 0};
	FILE *out = open_memstream(&t.out, &t.outlen), *err = open_memstream(&t.err, &t.errlen);

	CU_ASSERT_EQUAL(ctl_migrate_kv(t.src, "none/", t.dst, "n/", &o, out, err), CTL_EXIT_OK);
	fclose(out);
	fclose(err);
	CU_ASSERT_PTR_NOT_NULL(strstr(t.out, "migrated 0 volume(s), 0 keys"));
	CU_ASSERT_EQUAL(memkv_count(t.b, ""), 0);
	mt_teardown(&t);
}

void vf_test_register_migrate(void);
void vf_test_register_migrate(void)
{
	CU_pSuite s = CU_add_suite("migrate", NULL, NULL);

	if (s == NULL)
		vf_test_abort("suite migrate");
	VF_ADD_TEST(s, test_migrate_refused_while_mounted);
	VF_ADD_TEST(s, test_migrate_force_copies);
	VF_ADD_TEST(s, test_migrate_existing_and_overwrite);
	VF_ADD_TEST(s, test_migrate_empty);
}
