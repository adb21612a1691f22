/* Conformance (conformance.h): get, list, put, cas, del, cas_del: values, revisions, prefixes, the
 * lease binding of a write, and which keys are valid (kv.h "Keys"). */
#include <config.h>

#include <time.h>
#include <unistd.h>

#include "conformance.h"

/* ---- 1. get / put / delete / list ---- */
static void test_kv_basic(void)
{
	static const char *const names[] = {"p/a", "p/ab", "pa", "p0", "p/b/c"};
	struct vf_err err = {0};
	struct vf_kv_pair p = {0};
	struct vf_kv_list l = {0};
	char k[256], k2[256];
	int64_t r1 = 0, r2 = 0, rev[5] = {0};
	const char bin[] = {'a', '\0', 'b', '\xff', '\n'};

	cf_case("kv_basic", 30);
	for (size_t i = 0; i < 5; i++) {
		CF_OK(cf_ops->put(cf_kv, cf_key(k, sizeof(k), "basic", names[i]), names[i],
		                  strlen(names[i]), NULL, &rev[i], &err));
		CU_ASSERT(rev[i] > 0);
		if (i > 0)
			CU_ASSERT(rev[i] > rev[i - 1]);
	}
	/* A prefix list holds exactly the keys under it, sorted. */
	CF_OK_FATAL(cf_ops->list(cf_kv, cf_key(k, sizeof(k), "basic", "p/"), &l, &err));
	CU_ASSERT(l.revision >= rev[4]);
	CU_ASSERT_EQUAL_FATAL(l.count, 3);
	CU_ASSERT_STRING_EQUAL(l.items[0].key, cf_key(k, sizeof(k), "basic", "p/a"));
	CU_ASSERT_STRING_EQUAL(l.items[1].key, cf_key(k, sizeof(k), "basic", "p/ab"));
	CU_ASSERT_STRING_EQUAL(l.items[2].key, cf_key(k, sizeof(k), "basic", "p/b/c"));
	CU_ASSERT_STRING_EQUAL(l.items[1].value, "p/ab");
	CU_ASSERT_EQUAL(l.items[1].value_len, 4);
	CU_ASSERT_EQUAL(l.items[1].mod_rev, rev[1]);
	CU_ASSERT_EQUAL(l.items[1].create_rev, rev[1]);
	vf_kv_list_clear(&l);
	/* "p/a/" matches nothing: not "p/a", not "p/ab". An empty list is not an error. */
	CF_OK(cf_ops->list(cf_kv, cf_key(k, sizeof(k), "basic", "p/a/"), &l, &err));
	CU_ASSERT_EQUAL(l.count, 0);
	CU_ASSERT(l.revision > 0);
	vf_kv_list_clear(&l);
	CF_OK(cf_ops->list(cf_kv, cf_key(k, sizeof(k), "basic", "p"), &l, &err));
	CU_ASSERT_EQUAL(l.count, 5);
	for (size_t i = 1; i < l.count; i++)
		CU_ASSERT(strcmp(l.items[i - 1].key, l.items[i].key) < 0);
	vf_kv_list_clear(&l);

	/* put / get versions: create_rev stays, mod_rev grows. */
	cf_key(k, sizeof(k), "basic", "v");
	CF_OK(cf_ops->put(cf_kv, k, "one", 3, NULL, &r1, &err));
	CF_OK(cf_ops->put(cf_kv, k, "two", 3, NULL, &r2, &err));
	CU_ASSERT(r2 > r1);
	CF_OK_FATAL(cf_ops->get(cf_kv, k, &p, &err));
	CU_ASSERT_STRING_EQUAL(p.key, k);
	CU_ASSERT_STRING_EQUAL(p.value, "two");
	CU_ASSERT_EQUAL(p.value_len, 3);
	CU_ASSERT_EQUAL(p.mod_rev, r2);
	CU_ASSERT_EQUAL(p.create_rev, r1);
	vf_kv_pair_clear(&p);

	/* Missing keys. */
	CF_RC(cf_ops->get(cf_kv, cf_key(k2, sizeof(k2), "basic", "missing"), &p, &err),
	      VF_ENOTFOUND);
	CU_ASSERT(err.msg[0] != '\0');
	CF_RC(cf_ops->del(cf_kv, k2, &err), VF_ENOTFOUND);
	CF_OK(cf_ops->del(cf_kv, k, &err));
	CF_RC(cf_ops->get(cf_kv, k, &p, &err), VF_ENOTFOUND);
	CF_RC(cf_ops->del(cf_kv, k, &err), VF_ENOTFOUND);

	/* Binary value with an embedded NUL, and an empty value. */
	cf_key(k, sizeof(k), "basic", "bin");
	CF_OK(cf_ops->put(cf_kv, k, bin, sizeof(bin), NULL, NULL, &err));
	CF_OK_FATAL(cf_ops->get(cf_kv, k, &p, &err));
	CU_ASSERT_EQUAL_FATAL(p.value_len, sizeof(bin));
	CU_ASSERT(memcmp(p.value, bin, sizeof(bin)) == 0);
	CU_ASSERT_EQUAL(p.value[sizeof(bin)], '\0');
	vf_kv_pair_clear(&p);
	cf_key(k, sizeof(k), "basic", "empty");
	CF_OK(cf_ops->put(cf_kv, k, "", 0, NULL, NULL, &err));
	CF_OK_FATAL(cf_ops->get(cf_kv, k, &p, &err));
	CU_ASSERT_EQUAL(p.value_len, 0);
	CU_ASSERT_PTR_NOT_NULL(p.value);
	vf_kv_pair_clear(&p);

	/* kv.h "Sizes": a value of VF_KV_VALUE_PORTABLE bytes is accepted. */
	{
		char *big = malloc(VF_KV_VALUE_PORTABLE);

		CU_ASSERT_PTR_NOT_NULL_FATAL(big);
		for (size_t i = 0; i < VF_KV_VALUE_PORTABLE; i++)
			big[i] = (char)('a' + i % 26);
		cf_key(k, sizeof(k), "basic", "big");
		CF_OK(cf_ops->put(cf_kv, k, big, VF_KV_VALUE_PORTABLE, NULL, NULL, &err));
		CF_OK(cf_ops->get(cf_kv, k, &p, &err));
		CU_ASSERT_EQUAL(p.value_len, VF_KV_VALUE_PORTABLE);
		CU_ASSERT(p.value && memcmp(p.value, big, VF_KV_VALUE_PORTABLE) == 0);
		vf_kv_pair_clear(&p);
		free(big);
	}
	/* kv.h: err may be NULL; the status is still returned. */
	CU_ASSERT_EQUAL(cf_ops->get(cf_kv, k2, &p, NULL), VF_ENOTFOUND);
	CU_ASSERT_EQUAL(cf_ops->put(cf_kv, k2, "n", 1, NULL, NULL, NULL), VF_OK);
	CU_ASSERT_EQUAL(cf_ops->cas(cf_kv, k2, "m", 1, 0, NULL, NULL, NULL), VF_ECONFLICT);
	CU_ASSERT_EQUAL(cf_ops->get(cf_kv, "", &p, NULL), VF_EINVAL);
	CU_ASSERT_EQUAL(cf_ops->del(cf_kv, k2, NULL), VF_OK);
}

/* ---- 2. compare-and-swap ---- */
static void test_cas(void)
{
	struct vf_err err = {0};
	char k[256], nk[256], v[64];
	int64_t r1 = 0, r2 = 0, r3 = 0, got = 0, unused = 0;

	cf_case("cas", 30);
	cf_key(k, sizeof(k), "cas", "k");
	CF_OK(cf_ops->cas(cf_kv, k, "v1", 2, 0, NULL, &r1, &err));
	CU_ASSERT(r1 > 0);
	CF_RC(cf_ops->cas(cf_kv, k, "v2", 2, 0, NULL, &unused, &err), VF_ECONFLICT);
	CF_OK(cf_get_str(cf_kv, k, v, sizeof(v), &got, &err));
	CU_ASSERT_STRING_EQUAL(v, "v1");
	CU_ASSERT_EQUAL(got, r1);

	CF_OK(cf_ops->put(cf_kv, k, "v2", 2, NULL, &r2, &err));
	CU_ASSERT(r2 > r1);
	CF_RC(cf_ops->cas(cf_kv, k, "bad", 3, r1, NULL, NULL, &err), VF_ECONFLICT);
	CF_OK(cf_get_str(cf_kv, k, v, sizeof(v), &got, &err));
	CU_ASSERT_STRING_EQUAL(v, "v2");
	CU_ASSERT_EQUAL(got, r2);

	CF_OK(cf_ops->cas(cf_kv, k, "v3", 2, r2, NULL, &r3, &err));
	CU_ASSERT(r3 > r2);
	CF_OK(cf_get_str(cf_kv, k, v, sizeof(v), &got, &err));
	CU_ASSERT_STRING_EQUAL(v, "v3");
	CU_ASSERT_EQUAL(got, r3);

	/* An expected version on a missing key fails. */
	CF_RC(cf_ops->cas(cf_kv, cf_key(nk, sizeof(nk), "cas", "nokey"), "x", 1, r3, NULL, NULL,
	                  &err),
	      VF_ECONFLICT);
	CF_RC(cf_ops->get(cf_kv, nk, &(struct vf_kv_pair){0}, &err), VF_ENOTFOUND);

	/* cas_del: stale fails and keeps the key, fresh deletes it. */
	CF_RC(cf_ops->cas_del(cf_kv, k, r2, &err), VF_ECONFLICT);
	CF_OK(cf_get_str(cf_kv, k, v, sizeof(v), NULL, &err));
	CU_ASSERT_STRING_EQUAL(v, "v3");
	CF_OK(cf_ops->cas_del(cf_kv, k, r3, &err));
	CF_RC(cf_get_str(cf_kv, k, v, sizeof(v), NULL, &err), VF_ENOTFOUND);
	/* kv.h cas_del: an absent key fails an expected version > 0 (VF_ECONFLICT);
	 * expected version 0 ("must be absent") holds and deletes nothing:
	 * VF_ENOTFOUND; on a present key it fails (VF_ECONFLICT). */
	CF_RC(cf_ops->cas_del(cf_kv, k, r3, &err), VF_ECONFLICT);
	CF_RC(cf_ops->cas_del(cf_kv, k, 0, &err), VF_ENOTFOUND);
	CF_OK(cf_ops->put(cf_kv, k, "v4", 2, NULL, NULL, &err));
	CF_RC(cf_ops->cas_del(cf_kv, k, 0, &err), VF_ECONFLICT);
	CF_OK(cf_get_str(cf_kv, k, v, sizeof(v), NULL, &err));
	CU_ASSERT_STRING_EQUAL(v, "v4");
}

/* ---- 11. issue 12: lease binding of a put, keys, lock keys, lease loss ---- */

/* get(k) == val (VF_OK) */
void cf_expect_val(const char *k, const char *val, const char *what)
{
	struct vf_err err = {0};
	char v[64] = "";
	int rc = cf_get_str(cf_kv, k, v, sizeof(v), NULL, &err);

	if (rc != VF_OK || strcmp(v, val) != 0)
		fprintf(stderr, "\n%s: get %s = %s \"%s\", want \"%s\" %s\n", what, k,
		        vf_strerror(rc), v, val, rc != VF_OK ? err.msg : "");
	CU_ASSERT_EQUAL(rc, VF_OK);
	CU_ASSERT_STRING_EQUAL(v, val);
}

/* kv.h "Lease binding": a write without a lease unbinds the key, a write with
 * lease B rebinds a key held by lease A. Revoke makes the binding visible at
 * once (the store deletes a lease's keys in the revoke request itself). */
static void test_put_lease_binding(void)
{
	struct vf_err err = {0};
	struct vf_kv_lease *la = NULL, *lb = NULL;
	struct vf_kv_pair p = {0};
	char k1[256], k2[256], k3[256], k4[256], k5[256], k6[256];
	int64_t c1 = 0, r = 0;

	cf_case("put_lease_binding", 60);
	cf_key(k1, sizeof(k1), "bind", "put-unbound");
	cf_key(k2, sizeof(k2), "bind", "put-rebound");
	cf_key(k3, sizeof(k3), "bind", "cas-unbound");
	cf_key(k4, sizeof(k4), "bind", "txn-unbound");
	cf_key(k5, sizeof(k5), "bind", "txn-rebound");
	cf_key(k6, sizeof(k6), "bind", "cas-rebound");
	CF_OK_FATAL(cf_ops->lease_grant(cf_kv, cf_lease_ttl(), 0, NULL, NULL, &la, &err));
	CF_OK_FATAL(cf_ops->lease_grant(cf_kv, cf_lease_ttl(), 0, NULL, NULL, &lb, &err));

	/* put without a lease over a key of lease A: unbound, create_rev kept */
	CF_OK(cf_ops->put(cf_kv, k1, "a", 1, la, &c1, &err));
	CF_OK(cf_ops->put(cf_kv, k1, "plain", 5, NULL, &r, &err));
	CU_ASSERT(r > c1);
	/* put with lease B over a key of lease A: succeeds, bound to B */
	CF_OK(cf_ops->put(cf_kv, k2, "a", 1, la, NULL, &err));
	CF_OK(cf_ops->put(cf_kv, k2, "b", 1, lb, NULL, &err));
	/* cas without a lease, and with lease B, over keys of lease A */
	CF_OK(cf_ops->put(cf_kv, k3, "a", 1, la, &r, &err));
	CF_OK(cf_ops->cas(cf_kv, k3, "cas", 3, r, NULL, NULL, &err));
	CF_OK(cf_ops->put(cf_kv, k6, "a", 1, la, &r, &err));
	CF_OK(cf_ops->cas(cf_kv, k6, "casb", 4, r, lb, NULL, &err));
	/* txn puts, one without a lease, one with lease B, over keys of lease A */
	CF_OK(cf_ops->put(cf_kv, k4, "a", 1, la, NULL, &err));
	CF_OK(cf_ops->put(cf_kv, k5, "a", 1, la, NULL, &err));
	{
		struct vf_kv_op ops[] = {
		        {.kind = VF_OP_PUT, .key = k4, .value = "txn", .value_len = 3},
		        {.kind = VF_OP_PUT,
		         .key = k5,
		         .value = "txnb",
		         .value_len = 4,
		         .lease = lb}};

		CF_OK(cf_ops->txn(cf_kv, NULL, 0, ops, 2, NULL, &err));
	}
	/* A ends: nothing of the above may go with it. */
	CF_OK(cf_ops->lease_revoke(cf_kv, &la, &err));
	cf_expect_val(k1, "plain", "put without a lease after lease A ended");
	cf_expect_val(k2, "b", "put with lease B after lease A ended");
	cf_expect_val(k3, "cas", "cas without a lease after lease A ended");
	cf_expect_val(k6, "casb", "cas with lease B after lease A ended");
	cf_expect_val(k4, "txn", "txn put without a lease after lease A ended");
	cf_expect_val(k5, "txnb", "txn put with lease B after lease A ended");
	if (cf_ops->get(cf_kv, k1, &p, &err) == VF_OK)
		CU_ASSERT_EQUAL(p.create_rev, c1); /* the key was not re-created */
	vf_kv_pair_clear(&p);
	/* B ends: its keys go, the unbound ones stay. */
	CF_OK(cf_ops->lease_revoke(cf_kv, &lb, &err));
	CF_RC(cf_get_str(cf_kv, k2, (char[8]){0}, 8, NULL, &err), VF_ENOTFOUND);
	CF_RC(cf_get_str(cf_kv, k5, (char[8]){0}, 8, NULL, &err), VF_ENOTFOUND);
	CF_RC(cf_get_str(cf_kv, k6, (char[8]){0}, 8, NULL, &err), VF_ENOTFOUND);
	cf_expect_val(k1, "plain", "unbound key after lease B ended");
	cf_expect_val(k4, "txn", "unbound txn key after lease B ended");
	/* A later write through another lease's lock-like claim works (the
	 * manager's "done" claim: put with a lease, then without, then with another). */
	CF_OK_FATAL(cf_ops->lease_grant(cf_kv, cf_lease_ttl(), 0, NULL, NULL, &la, &err));
	CF_OK(cf_ops->put(cf_kv, k1, "claim-a", 7, la, NULL, &err));
	CF_OK(cf_ops->put(cf_kv, k1, "done", 4, NULL, NULL, &err));
	CF_OK(cf_ops->lease_revoke(cf_kv, &la, &err));
	cf_expect_val(k1, "done", "claim released by a plain put");
}

/* kv.h "Keys": the same keys are refused by every slot of every backend, with
 * VF_EINVAL and the key named; unusual but valid keys round-trip exactly. */
static void test_keys(void)
{
	static const char *const bad[] = {"",           "/lead",   "a//b",      "a/./b", "a/../b",
	                                  "a/.hidden",  "trail/",  "tab\tx",    "nl\nx", "\xff\xfe",
	                                  "ov\xc0\xaf", "del\x7f", "c1\xc2\x85"};
	struct vf_err err = {0};
	struct vf_kv_lease *l = NULL;
	char k[700], good[256], base[128];
	int64_t r = 0;

	cf_case("keys", 60);
	CF_OK_FATAL(cf_ops->lease_grant(cf_kv, cf_lease_ttl(), 0, NULL, NULL, &l, &err));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]) + 1; i++) {
		struct vf_kv_pair p = {0};
		struct vf_kv_list li = {0};
		struct vf_kv_lock *lk = NULL;
		struct vf_kv_watch *wh = NULL;
		const char *b = i < sizeof(bad) / sizeof(bad[0]) ? bad[i] : "(long)";
		int slash = b[0] == '\0';
		struct cf_watch w;

		if (i < sizeof(bad) / sizeof(bad[0])) {
			/* under the run's prefix, except the empty and the '/' ones */
			if (slash || bad[i][0] == '/')
				snprintf(k, sizeof(k), "%s", bad[i]);
			else
				snprintf(k, sizeof(k), "%sbad/%s", cf_prefix, bad[i]);
		} else { /* too long */
			memset(k, 'x', VF_KV_KEY_MAX + 1);
			k[VF_KV_KEY_MAX + 1] = '\0';
		}
		err.msg[0] = '\0';
		CF_RC(cf_ops->put(cf_kv, k, "x", 1, NULL, NULL, &err), VF_EINVAL);
		CU_ASSERT(strstr(err.msg, "key") != NULL);
		CF_RC(cf_ops->put(cf_kv, k, "x", 1, l, NULL, &err), VF_EINVAL);
		CF_RC(cf_ops->get(cf_kv, k, &p, &err), VF_EINVAL);
		vf_kv_pair_clear(&p);
		CF_RC(cf_ops->cas(cf_kv, k, "x", 1, 0, NULL, NULL, &err), VF_EINVAL);
		CF_RC(cf_ops->del(cf_kv, k, &err), VF_EINVAL);
		CF_RC(cf_ops->cas_del(cf_kv, k, 1, &err), VF_EINVAL);
		{
			struct vf_kv_cmp c = {.kind = VF_CMP_ABSENT, .key = k};
			struct vf_kv_op o = {
			        .kind = VF_OP_PUT, .key = k, .value = "x", .value_len = 1};
			struct vf_kv_op g = {.kind = VF_OP_GET, .key = k};
			char ok[256];

			cf_key(ok, sizeof(ok), "bad", "fine");
			struct vf_kv_op okop = {.kind = VF_OP_GET, .key = ok};
			struct vf_kv_cmp okc = {.kind = VF_CMP_ABSENT, .key = ok};

			CF_RC(cf_ops->txn(cf_kv, &c, 1, &okop, 1, NULL, &err), VF_EINVAL);
			CF_RC(cf_ops->txn(cf_kv, &okc, 1, &o, 1, NULL, &err), VF_EINVAL);
			CF_RC(cf_ops->txn(cf_kv, NULL, 0, &g, 1, NULL, &err), VF_EINVAL);
		}
		CF_RC(cf_ops->lock(cf_kv, l, k, 0, NULL, 0, NULL, &lk, &err), VF_EINVAL);
		CU_ASSERT_PTR_NULL(lk);
		if (cf_ops->lock_many) {
			const char *names[1] = {k};

			CF_RC(cf_ops->lock_many(cf_kv, l, names, 1, NULL, 0, &lk, &err), VF_EINVAL);
		}
		if (!slash && strcmp(b, "trail/") != 0) { /* "" and "x/" are valid prefixes */
			CF_RC(cf_ops->list(cf_kv, k, &li, &err), VF_EINVAL);
			vf_kv_list_clear(&li);
			cf_watch_init(&w, k);
			CF_RC(cf_ops->watch_start(cf_kv, k, 0, cf_watch_cb, &w, &wh, &err),
			      VF_EINVAL);
			CU_ASSERT_PTR_NULL(wh);
			if (wh)
				cf_ops->watch_stop(cf_kv, &wh);
			cf_watch_fini(&w);
		}
		/* the message names the key (escaped: no raw control byte in it) */
		for (const char *m = err.msg; *m; m++)
			CU_ASSERT((unsigned char)*m >= 0x20);
	}
	/* The message shows the key, escaped. */
	snprintf(k, sizeof(k), "%sbad/tab\tx", cf_prefix);
	CF_RC(cf_ops->put(cf_kv, k, "x", 1, NULL, NULL, &err), VF_EINVAL);
	CU_ASSERT(strstr(err.msg, "tab\\x09x") != NULL);
	/* Valid keys with characters URLs and shells care about round-trip. */
	cf_key(base, sizeof(base), "oddkeys", "");
	cf_key(good, sizeof(good), "oddkeys", "sp ace/%41?#&+=;~é漢/x.y");
	CF_OK(cf_ops->put(cf_kv, good, "odd", 3, NULL, &r, &err));
	cf_expect_val(good, "odd", "odd key");
	{
		struct vf_kv_list li = {0};

		CF_OK(cf_ops->list(cf_kv, base, &li, &err));
		CU_ASSERT_EQUAL(li.count, 1);
		if (li.count == 1)
			CU_ASSERT_STRING_EQUAL(li.items[0].key, good);
		vf_kv_list_clear(&li);
	}
	CF_OK(cf_ops->lease_revoke(cf_kv, &l, &err));
}

/* kv.h "The keys a lock occupies": a lock named N neither waits on keys under
 * "N/" nor overwrites a data key N. */

void cf_register_kv(CU_pSuite s)
{
	CF_ADD(s, test_kv_basic, CF_NEEDS(del));
	CF_ADD(s, test_cas, CF_NEEDS(cas_del));
	CF_ADD(s, test_put_lease_binding, NULL);
	CF_ADD(s, test_keys,
	       CF_EITHER(CF_NEEDS(del), CF_EITHER(CF_NEEDS(cas_del), CF_NEEDS(lock_many))));
}
