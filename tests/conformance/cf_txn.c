/* Conformance (conformance.h): txn: compares, ops, all or nothing, max_txn_ops. */
#include <config.h>

#include <time.h>
#include <unistd.h>

#include "conformance.h"

/* ---- 3. transactions ---- */
static void test_txn(void)
{
	struct vf_err err = {0};
	struct vf_kv_txn_result res = {0};
	char a[256], b[256], c[256], d[256], miss[256], v[64];
	int64_t ra = 0, rb = 0;

	cf_case("txn", 60);
	cf_key(a, sizeof(a), "txn", "a");
	cf_key(b, sizeof(b), "txn", "b");
	cf_key(c, sizeof(c), "txn", "c");
	cf_key(d, sizeof(d), "txn", "d");
	cf_key(miss, sizeof(miss), "txn", "missing");
	CF_OK_FATAL(cf_ops->put(cf_kv, a, "1", 1, NULL, &ra, &err));

	/* VALUE_EQ + ABSENT hold: three puts commit together. */
	{
		struct vf_kv_cmp cmps[] = {
		        {.kind = VF_CMP_VALUE_EQ, .key = a, .value = "1", .value_len = 1},
		        {.kind = VF_CMP_ABSENT, .key = b}};
		struct vf_kv_op ops[] = {
		        {.kind = VF_OP_PUT, .key = a, .value = "2", .value_len = 1},
		        {.kind = VF_OP_PUT, .key = b, .value = "x", .value_len = 1},
		        {.kind = VF_OP_PUT, .key = c, .value = "y", .value_len = 1}};

		CF_OK_FATAL(cf_ops->txn(cf_kv, cmps, 2, ops, 3, &res, &err));
		CU_ASSERT_EQUAL_FATAL(res.count, 3);
		CU_ASSERT(res.revision > ra);
		for (size_t i = 0; i < 3; i++)
			CU_ASSERT(res.results[i].pair.mod_rev > ra);
		rb = res.results[1].pair.mod_rev;
		vf_kv_txn_result_clear(&res);
	}
	/* One failing compare among holding ones: nothing is written. */
	{
		struct vf_kv_cmp cmps[] = {
		        {.kind = VF_CMP_VALUE_EQ, .key = a, .value = "2", .value_len = 1},
		        {.kind = VF_CMP_VERSION_EQ, .key = b, .mod_rev = rb + 1000}};
		struct vf_kv_op ops[] = {
		        {.kind = VF_OP_PUT, .key = a, .value = "3", .value_len = 1},
		        {.kind = VF_OP_PUT, .key = b, .value = "z", .value_len = 1},
		        {.kind = VF_OP_PUT, .key = d, .value = "w", .value_len = 1}};

		CF_RC(cf_ops->txn(cf_kv, cmps, 2, ops, 3, &res, &err), VF_ECONFLICT);
		vf_kv_txn_result_clear(&res);
		CF_OK(cf_get_str(cf_kv, a, v, sizeof(v), NULL, &err));
		CU_ASSERT_STRING_EQUAL(v, "2");
		CF_OK(cf_get_str(cf_kv, b, v, sizeof(v), NULL, &err));
		CU_ASSERT_STRING_EQUAL(v, "x");
		CF_RC(cf_get_str(cf_kv, d, v, sizeof(v), NULL, &err), VF_ENOTFOUND);
	}
	/* ABSENT on an existing key fails; VALUE_EQ on a missing key fails. */
	{
		struct vf_kv_cmp cmp1 = {.kind = VF_CMP_ABSENT, .key = c};
		struct vf_kv_cmp cmp2 = {
		        .kind = VF_CMP_VALUE_EQ, .key = miss, .value = "", .value_len = 0};
		struct vf_kv_op op = {.kind = VF_OP_PUT, .key = d, .value = "w", .value_len = 1};

		CF_RC(cf_ops->txn(cf_kv, &cmp1, 1, &op, 1, NULL, &err), VF_ECONFLICT);
		CF_RC(cf_ops->txn(cf_kv, &cmp2, 1, &op, 1, NULL, &err), VF_ECONFLICT);
		CF_RC(cf_get_str(cf_kv, d, v, sizeof(v), NULL, &err), VF_ENOTFOUND);
	}
	/* VERSION_EQ holds; GET ops return values (absent: found = 0); DELETE applies. */
	{
		struct vf_kv_cmp cmps[] = {{.kind = VF_CMP_VERSION_EQ, .key = b, .mod_rev = rb},
		                           {.kind = VF_CMP_VERSION_EQ, .key = d, .mod_rev = 0}};
		struct vf_kv_op ops[] = {
		        {.kind = VF_OP_GET, .key = a},
		        {.kind = VF_OP_GET, .key = miss},
		        {.kind = VF_OP_PUT, .key = b, .value = "z", .value_len = 1},
		        {.kind = VF_OP_DELETE, .key = c}};

		CF_OK_FATAL(cf_ops->txn(cf_kv, cmps, 2, ops, 4, &res, &err));
		CU_ASSERT_EQUAL_FATAL(res.count, 4);
		CU_ASSERT_EQUAL(res.results[0].found, 1);
		CU_ASSERT_PTR_NOT_NULL_FATAL(res.results[0].pair.value);
		CU_ASSERT_STRING_EQUAL(res.results[0].pair.value, "2");
		CU_ASSERT_EQUAL(res.results[0].pair.value_len, 1);
		CU_ASSERT_EQUAL(res.results[0].pair.mod_rev, rb);
		CU_ASSERT_EQUAL(res.results[1].found, 0);
		CU_ASSERT(res.results[2].pair.mod_rev > rb);
		vf_kv_txn_result_clear(&res);
		CF_OK(cf_get_str(cf_kv, b, v, sizeof(v), NULL, &err));
		CU_ASSERT_STRING_EQUAL(v, "z");
		CF_RC(cf_get_str(cf_kv, c, v, sizeof(v), NULL, &err), VF_ENOTFOUND);
	}
	/* kv.h: a txn writes a key at most once: two writes are VF_EINVAL, nothing
	 * applied (etcd refuses them; Consul would apply both in order). */
	{
		struct vf_kv_op ops[] = {
		        {.kind = VF_OP_PUT, .key = d, .value = "1", .value_len = 1},
		        {.kind = VF_OP_PUT, .key = a, .value = "9", .value_len = 1},
		        {.kind = VF_OP_DELETE, .key = d}};

		CF_RC(cf_ops->txn(cf_kv, NULL, 0, ops, 3, NULL, &err), VF_EINVAL);
		CU_ASSERT(strstr(err.msg, "twice") != NULL);
		CF_RC(cf_get_str(cf_kv, d, v, sizeof(v), NULL, &err), VF_ENOTFOUND);
		CF_OK(cf_get_str(cf_kv, a, v, sizeof(v), NULL, &err));
		CU_ASSERT_STRING_EQUAL(v, "2");
	}
	/* The limit: max_txn_ops ops commit, one more is VF_ELIMIT and writes nothing. */
	{
		size_t n = cf_kv->max_txn_ops + 1;
		struct vf_kv_op *ops = calloc(n, sizeof(*ops));
		char(*keys)[128] = calloc(n, sizeof(*keys));
		struct vf_kv_list l = {0};
		char lim[256];

		CU_ASSERT_FATAL(cf_kv->max_txn_ops >= 4);
		CU_ASSERT_PTR_NOT_NULL_FATAL(ops);
		CU_ASSERT_PTR_NOT_NULL_FATAL(keys);
		for (size_t i = 0; i < n; i++) {
			snprintf(keys[i], sizeof(keys[i]), "%stxnlim/big/%04zu", cf_prefix, i);
			ops[i] = (struct vf_kv_op){
			        .kind = VF_OP_PUT, .key = keys[i], .value = "v", .value_len = 1};
		}
		CF_RC(cf_ops->txn(cf_kv, NULL, 0, ops, n, NULL, &err), VF_ELIMIT);
		CU_ASSERT(err.msg[0] != '\0');
		CF_OK(cf_ops->list(cf_kv, cf_key(lim, sizeof(lim), "txnlim", "big/"), &l, &err));
		CU_ASSERT_EQUAL(l.count, 0);
		vf_kv_list_clear(&l);
		CF_OK(cf_ops->txn(cf_kv, NULL, 0, ops, n - 1, NULL, &err));
		CF_OK(cf_ops->list(cf_kv, cf_key(lim, sizeof(lim), "txnlim", "big/"), &l, &err));
		CU_ASSERT_EQUAL(l.count, n - 1);
		vf_kv_list_clear(&l);
		cf_note("max_txn_ops %u", cf_kv->max_txn_ops);
		free(ops);
		free(keys);
	}
}

void cf_register_txn(CU_pSuite s)
{
	CF_ADD(s, test_txn, NULL);
}
