/*
 * Unit tests of the etcd backend's JSON layer (backends/etcd/etcd_json.c), fed
 * with answers recorded from etcd 3.4.23 (tests/data/etcd). Needs no server: the
 * live smoke test of etcd.so is tests/integration/test_etcd_live.c.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include "test_int.h"
#include "etcd_int.h"
#include "vfile/vfile.h"

/* ---- helpers ---- */

static char *test_read(const char *name, size_t *len_r)
{
	const char *dir = getenv("VFILE_TEST_DATA");
	char path[1024];
	struct vf_buf b = {0};
	char chunk[4096];
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/etcd/%s", dir ? dir : "tests/data", name);
	f = fopen(path, "rb");
	if (f == NULL) {
		fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
		return NULL;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		vf_buf_add(&b, chunk, n);
	fclose(f);
	if (b.data == NULL)
		vf_buf_add(&b, "", 0);
	if (len_r)
		*len_r = b.len;
	return b.data;
}

static yajl_val test_tree(const char *name)
{
	size_t len;
	char *text = test_read(name, &len);
	yajl_val t = NULL;

	if (text)
		vf_json_parse(text, len, &t, NULL);
	free(text);
	return t;
}

/* ---- keys and builders ---- */

static void test_prefix_range(void)
{
	char *k, *e;
	size_t kl, el;

	CU_ASSERT_EQUAL_FATAL(etcd_prefix_range("vols/", &k, &kl, &e, &el), VF_OK);
	CU_ASSERT_EQUAL(kl, 5);
	CU_ASSERT_EQUAL(el, 5);
	CU_ASSERT(memcmp(e, "vols0", 5) == 0);
	free(k);
	free(e);
	CU_ASSERT_EQUAL_FATAL(etcd_prefix_range("a\xff\xff", &k, &kl, &e, &el), VF_OK);
	CU_ASSERT_EQUAL(kl, 3);
	CU_ASSERT_EQUAL(el, 1);
	CU_ASSERT_EQUAL(e[0], 'b');
	free(k);
	free(e);
	CU_ASSERT_EQUAL_FATAL(etcd_prefix_range("", &k, &kl, &e, &el), VF_OK);
	CU_ASSERT(kl == 1 && el == 1 && k[0] == '\0' && e[0] == '\0');
	free(k);
	free(e);
}

static void test_build_basic(void)
{
	char *body;
	size_t len;

	CU_ASSERT_EQUAL_FATAL(etcd_build_range("vols/a", 0, &body, &len, NULL), VF_OK);
	CU_ASSERT_STRING_EQUAL(body, "{\"key\":\"dm9scy9h\"}");
	CU_ASSERT_EQUAL(len, strlen(body));
	free(body);
	CU_ASSERT_EQUAL_FATAL(etcd_build_range("vols/", 1, &body, &len, NULL), VF_OK);
	CU_ASSERT_STRING_EQUAL(body, "{\"key\":\"dm9scy8=\",\"range_end\":\"dm9sczA=\"}");
	free(body);
	CU_ASSERT_EQUAL_FATAL(
	        etcd_build_put("vols/a", "v1", 2, 2324035606039680526LL, &body, &len, NULL), VF_OK);
	CU_ASSERT_STRING_EQUAL(body, "{\"key\":\"dm9scy9h\",\"value\":\"djE=\","
	                             "\"lease\":\"2324035606039680526\"}");
	free(body);
	CU_ASSERT_EQUAL_FATAL(etcd_build_put("k", "", 0, 0, &body, &len, NULL), VF_OK);
	CU_ASSERT_STRING_EQUAL(body, "{\"key\":\"aw==\",\"value\":\"\"}");
	free(body);
	CU_ASSERT_EQUAL_FATAL(etcd_build_lease_id(2324035606039680526LL, &body, &len, NULL), VF_OK);
	CU_ASSERT_STRING_EQUAL(body, "{\"ID\":\"2324035606039680526\"}");
	free(body);
	CU_ASSERT_EQUAL_FATAL(etcd_build_compact(7, &body, &len, NULL), VF_OK);
	CU_ASSERT_STRING_EQUAL(body, "{\"revision\":\"7\",\"physical\":true}");
	free(body);
	CU_ASSERT_EQUAL_FATAL(etcd_build_watch("w/", 2, "w0", 2, 11, &body, &len, NULL), VF_OK);
	CU_ASSERT_STRING_EQUAL(body, "{\"create_request\":{\"key\":\"dy8=\",\"range_end\":\"dzA=\","
	                             "\"start_revision\":\"11\"}}");
	free(body);
	CU_ASSERT_EQUAL_FATAL(etcd_build_watch("w/", 2, "w0", 2, 0, &body, &len, NULL), VF_OK);
	CU_ASSERT(strstr(body, "start_revision") == NULL);
	free(body);
}

static void test_build_cas(void)
{
	char *body;
	size_t len;

	CU_ASSERT_EQUAL_FATAL(etcd_build_cas("vols/a", "v2", 2, 0, 0, &body, &len, NULL), VF_OK);
	CU_ASSERT_STRING_EQUAL(
	        body,
	        "{\"compare\":[{\"target\":\"CREATE\",\"result\":\"EQUAL\",\"key\":\"dm9scy9h\","
	        "\"create_revision\":\"0\"}],\"success\":[{\"request_put\":{\"key\":"
	        "\"dm9scy9h\",\"value\":\"djI=\"}}],\"failure\":[{\"request_range\":{\"key\":"
	        "\"dm9scy9h\"}}]}");
	free(body);
	CU_ASSERT_EQUAL_FATAL(etcd_build_cas("vols/a", "v2", 2, 42, 0, &body, &len, NULL), VF_OK);
	CU_ASSERT(strstr(body, "\"target\":\"MOD\"") != NULL);
	CU_ASSERT(strstr(body, "\"mod_revision\":\"42\"") != NULL);
	free(body);
	CU_ASSERT_EQUAL_FATAL(etcd_build_cas_del("l/x", 0, 9, &body, &len, NULL), VF_OK);
	CU_ASSERT(strstr(body, "\"create_revision\":\"9\"") != NULL);
	CU_ASSERT(strstr(body, "request_delete_range") != NULL);
	free(body);
}

static void test_build_txn(void)
{
	struct vf_kv_lock lock = {"lock/a/1f", 17};
	struct vf_kv_lease lease = {"2040a212075ad60e", 5};
	struct vf_kv_cmp cmps[] = {
	        {VF_CMP_VALUE_EQ, "a", "x", 1, 0, NULL},
	        {VF_CMP_VERSION_EQ, "b", NULL, 0, 5, NULL},
	        {VF_CMP_VERSION_EQ, "c", NULL, 0, 0, NULL},
	        {VF_CMP_ABSENT, "d", NULL, 0, 0, NULL},
	        {VF_CMP_LOCK_HELD, NULL, NULL, 0, 0, &lock},
	};
	struct vf_kv_op ops[] = {
	        {VF_OP_PUT, "a", "y", 1, &lease, NULL},
	        {VF_OP_DELETE, "b", NULL, 0, NULL, NULL},
	        {VF_OP_GET, "c", NULL, 0, NULL, NULL},
	        {VF_OP_UNLOCK, NULL, NULL, 0, NULL, (struct vf_kv_lock *)&lock},
	};
	struct vf_err err = {0};
	char *body;
	size_t len;
	yajl_val t;

	CU_ASSERT_EQUAL_FATAL(etcd_build_txn(cmps, 5, ops, 4, 128, &body, &len, &err), VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_json_parse(body, len, &t, NULL), VF_OK);
	free(body);
	yajl_val c = vf_json_get(t, "compare", NULL), s = vf_json_get(t, "success", NULL);
	CU_ASSERT_FATAL(c && YAJL_IS_ARRAY(c) && c->u.array.len == 5);
	CU_ASSERT_FATAL(s && YAJL_IS_ARRAY(s) && s->u.array.len == 4);
	CU_ASSERT_STRING_EQUAL(vf_json_str(vf_json_get(c->u.array.values[0], "target", NULL)),
	                       "VALUE");
	CU_ASSERT_STRING_EQUAL(vf_json_str(vf_json_get(c->u.array.values[0], "value", NULL)),
	                       "eA==");
	CU_ASSERT_STRING_EQUAL(vf_json_str(vf_json_get(c->u.array.values[1], "target", NULL)),
	                       "MOD");
	CU_ASSERT_STRING_EQUAL(vf_json_str(vf_json_get(c->u.array.values[2], "target", NULL)),
	                       "CREATE");
	CU_ASSERT_STRING_EQUAL(
	        vf_json_str(vf_json_get(c->u.array.values[3], "create_revision", NULL)), "0");
	CU_ASSERT_STRING_EQUAL(vf_json_str(vf_json_get(c->u.array.values[4], "key", NULL)),
	                       "bG9jay9hLzFm");
	CU_ASSERT_STRING_EQUAL(
	        vf_json_str(vf_json_get(c->u.array.values[4], "create_revision", NULL)), "17");
	CU_ASSERT_STRING_EQUAL(
	        vf_json_str(vf_json_get(s->u.array.values[0], "request_put", "lease", NULL)),
	        "2324035606039680526");
	CU_ASSERT_PTR_NOT_NULL(vf_json_get(s->u.array.values[1], "request_delete_range", NULL));
	CU_ASSERT_PTR_NOT_NULL(vf_json_get(s->u.array.values[2], "request_range", NULL));
	CU_ASSERT_STRING_EQUAL(
	        vf_json_str(vf_json_get(s->u.array.values[3], "request_delete_range", "key", NULL)),
	        "bG9jay9hLzFm");
	CU_ASSERT_PTR_NULL(vf_json_get(t, "failure", NULL));
	yajl_tree_free(t);

	/* Over the limit: refused locally, nothing built. */
	CU_ASSERT_EQUAL(etcd_build_txn(cmps, 5, ops, 4, 8, &body, &len, &err), VF_ELIMIT);
	CU_ASSERT_PTR_NULL(body);
	CU_ASSERT(strstr(err.msg, "limit") != NULL);
	/* A bad op is refused. */
	struct vf_kv_op bad = {VF_OP_PUT, NULL, NULL, 0, NULL, NULL};
	CU_ASSERT_EQUAL(etcd_build_txn(NULL, 0, &bad, 1, 128, &body, &len, &err), VF_EINVAL);
}

static void test_build_lock(void)
{
	const char *reads[] = {"state/v"};
	char *body;
	size_t len;
	yajl_val t, s, f, owner;

	CU_ASSERT_EQUAL_FATAL(
	        etcd_build_lock_acquire("lock/a/1f", "lock/a/", 31, reads, 1, &body, &len, NULL),
	        VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_json_parse(body, len, &t, NULL), VF_OK);
	free(body);
	s = vf_json_get(t, "success", NULL);
	f = vf_json_get(t, "failure", NULL);
	CU_ASSERT_FATAL(s && f && s->u.array.len == 4 && f->u.array.len == 3);
	CU_ASSERT_STRING_EQUAL(
	        vf_json_str(vf_json_get(s->u.array.values[0], "request_put", "lease", NULL)), "31");
	owner = vf_json_get(s->u.array.values[2], "request_range", NULL);
	CU_ASSERT_STRING_EQUAL(vf_json_str(vf_json_get(owner, "range_end", NULL)), "bG9jay9hMA==");
	CU_ASSERT_STRING_EQUAL(vf_json_str(vf_json_get(owner, "sort_target", NULL)), "CREATE");
	CU_ASSERT_STRING_EQUAL(vf_json_str(vf_json_get(owner, "sort_order", NULL)), "ASCEND");
	CU_ASSERT_STRING_EQUAL(vf_json_str(vf_json_get(owner, "limit", NULL)), "1");
	yajl_tree_free(t);

	CU_ASSERT_EQUAL_FATAL(etcd_build_lock_pred("lock/a/1f", "lock/a/", 40, &body, &len, NULL),
	                      VF_OK);
	CU_ASSERT(strstr(body, "\"max_create_revision\":\"39\"") != NULL);
	CU_ASSERT(strstr(body, "\"sort_order\":\"DESCEND\"") != NULL);
	CU_ASSERT(strstr(body, "compare") == NULL);
	/* last: the waiters ahead (create_revision below ours), a bounded listing */
	CU_ASSERT(strstr(body, "\"limit\":\"16\",\"sort_order\":\"ASCEND\"") != NULL);
	free(body);
}

/* ---- parsers ---- */

static void test_parse_range(void)
{
	yajl_val t = test_tree("range_prefix.json");
	struct vf_kv_list l;
	struct vf_kv_pair p;

	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_EQUAL_FATAL(etcd_parse_range(t, t, &l, NULL), VF_OK);
	CU_ASSERT_EQUAL(l.revision, 4);
	CU_ASSERT_EQUAL_FATAL(l.count, 2);
	CU_ASSERT_STRING_EQUAL(l.items[0].key, "vols/a");
	CU_ASSERT_STRING_EQUAL(l.items[0].value, "v1");
	CU_ASSERT_EQUAL(l.items[0].value_len, 2);
	CU_ASSERT_EQUAL(l.items[0].mod_rev, 2);
	CU_ASSERT_EQUAL(l.items[0].create_rev, 2);
	/* An empty value is omitted by etcd: it reads as "". */
	CU_ASSERT_STRING_EQUAL(l.items[1].key, "vols/b");
	CU_ASSERT_STRING_EQUAL(l.items[1].value, "");
	CU_ASSERT_EQUAL(l.items[1].value_len, 0);
	CU_ASSERT_EQUAL(l.items[1].mod_rev, 3);
	vf_kv_list_clear(&l);
	yajl_tree_free(t);

	t = test_tree("range_missing.json");
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_EQUAL(etcd_parse_first(t, &p, NULL), VF_ENOTFOUND);
	CU_ASSERT_EQUAL(etcd_parse_range(t, t, &l, NULL), VF_OK);
	CU_ASSERT_EQUAL(l.count, 0);
	CU_ASSERT_EQUAL(l.revision, 1);
	yajl_tree_free(t);

	t = test_tree("range_one.json");
	CU_ASSERT_EQUAL_FATAL(etcd_parse_first(t, &p, NULL), VF_OK);
	CU_ASSERT_STRING_EQUAL(p.key, "vols/a");
	CU_ASSERT_EQUAL(p.mod_rev, 2);
	vf_kv_pair_clear(&p);
	yajl_tree_free(t);

	/* Omitted counters are zero. */
	t = test_tree("delete_none.json");
	int64_t deleted = -1;
	CU_ASSERT_EQUAL(vf_json_int64(vf_json_get(t, "deleted", NULL), &deleted), VF_OK);
	CU_ASSERT_EQUAL(deleted, 0);
	yajl_tree_free(t);
	t = test_tree("delete_one.json");
	CU_ASSERT_EQUAL(vf_json_int64(vf_json_get(t, "deleted", NULL), &deleted), VF_OK);
	CU_ASSERT_EQUAL(deleted, 1);
	yajl_tree_free(t);

	/* Malformed base64 is a protocol error, not a crash. */
	CU_ASSERT_EQUAL_FATAL(vf_json_parse("{\"kvs\":[{\"key\":\"@@@\"}]}", 23, &t, NULL), VF_OK);
	CU_ASSERT_EQUAL(etcd_parse_range(t, t, &l, NULL), VF_EPROTO);
	CU_ASSERT_PTR_NULL(l.items);
	yajl_tree_free(t);
}

static void test_parse_txn(void)
{
	yajl_val t = test_tree("txn_success.json");
	struct vf_kv_op ops[] = {
	        {VF_OP_PUT, "vols/c", "v3", 2, NULL, NULL},
	        {VF_OP_GET, "vols/a", NULL, 0, NULL, NULL},
	        {VF_OP_DELETE, "vols/b", NULL, 0, NULL, NULL},
	        {VF_OP_GET, "vols/nope", NULL, 0, NULL, NULL},
	};
	struct vf_kv_txn_result res;
	struct vf_kv_pair p;

	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT(etcd_txn_succeeded(t));
	CU_ASSERT_EQUAL_FATAL(etcd_parse_txn_results(t, ops, 4, &res, NULL), VF_OK);
	CU_ASSERT_EQUAL(res.revision, 5);
	CU_ASSERT_EQUAL_FATAL(res.count, 4);
	CU_ASSERT_EQUAL(res.results[0].pair.mod_rev, 5);
	CU_ASSERT(res.results[1].found);
	CU_ASSERT_STRING_EQUAL(res.results[1].pair.value, "v1");
	CU_ASSERT(res.results[2].found);
	CU_ASSERT(!res.results[3].found);
	vf_kv_txn_result_clear(&res);
	/* A result count that does not match the ops is a protocol error. */
	CU_ASSERT_EQUAL(etcd_parse_txn_results(t, ops, 3, &res, NULL), VF_EPROTO);
	yajl_tree_free(t);

	/* failure: "succeeded" absent; the failure branch read the current value */
	t = test_tree("txn_failure.json");
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT(!etcd_txn_succeeded(t));
	CU_ASSERT_EQUAL_FATAL(etcd_parse_first(etcd_txn_resp(t, 0, "response_range"), &p, NULL),
	                      VF_OK);
	CU_ASSERT_EQUAL(p.mod_rev, 2);
	vf_kv_pair_clear(&p);
	CU_ASSERT_PTR_NULL(etcd_txn_resp(t, 1, "response_range"));
	yajl_tree_free(t);
}

static void test_parse_lease(void)
{
	yajl_val t = test_tree("lease_grant.json");
	int64_t id = 0, ttl = 0;
	int gttl = 0;
	struct vf_err err = {0};

	CU_ASSERT_EQUAL_FATAL(etcd_parse_lease_grant(t, &id, &gttl, NULL), VF_OK);
	CU_ASSERT_EQUAL(id, 2324035606039680526LL);
	CU_ASSERT_EQUAL(gttl, 5);
	yajl_tree_free(t);
	t = test_tree("lease_keepalive.json");
	CU_ASSERT_EQUAL(etcd_parse_keepalive(t, &ttl, NULL), VF_OK);
	CU_ASSERT_EQUAL(ttl, 5);
	yajl_tree_free(t);
	t = test_tree("lease_keepalive_gone.json");
	CU_ASSERT_EQUAL(etcd_parse_keepalive(t, &ttl, &err), VF_ELEASE);
	CU_ASSERT(strstr(err.msg, "gone") != NULL);
	yajl_tree_free(t);
	const char *inband =
	        "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"transport "
	        "is closing\",\"http_status\":\"Service Unavailable\"}}";
	CU_ASSERT_EQUAL_FATAL(vf_json_parse(inband, strlen(inband), &t, NULL), VF_OK);
	CU_ASSERT_EQUAL(etcd_parse_keepalive(t, &ttl, &err), VF_EUNAVAIL);
	CU_ASSERT(strstr(err.msg, "transport is closing") != NULL);
	yajl_tree_free(t);
	t = test_tree("range_one.json"); /* no ID */
	CU_ASSERT_EQUAL(etcd_parse_lease_grant(t, &id, &gttl, NULL), VF_EPROTO);
	yajl_tree_free(t);
}

static void test_map_error_file(const char *file, long status, int idem, int want, int reauth)
{
	size_t len;
	char *body = test_read(file, &len);
	struct vf_err err = {0};
	int re = -1;

	CU_ASSERT_PTR_NOT_NULL_FATAL(body);
	CU_ASSERT_EQUAL(etcd_map_error(status, body, len, idem, &re, "put vols/a", &err), want);
	CU_ASSERT_EQUAL(err.code, want);
	CU_ASSERT_EQUAL(re, reauth);
	CU_ASSERT_EQUAL(err.http_status, status);
	CU_ASSERT(strncmp(err.msg, "put vols/a: etcd: ", 18) == 0);
	CU_ASSERT(strchr(err.msg, '\n') == NULL);
	if (want != err.code || re != reauth)
		fprintf(stderr, "%s: %s\n", file, err.msg);
	free(body);
}

static void test_map_errors(void)
{
	struct vf_err err = {0};

	test_map_error_file("error_lease_not_found.json", 404, 0, VF_ELEASE, 0);
	test_map_error_file("error_put_lease_gone.json", 404, 0, VF_ELEASE, 0);
	test_map_error_file("error_too_many_ops.json", 400, 0, VF_ELIMIT, 0);
	test_map_error_file("error_user_empty.json", 400, 1, VF_EAUTH, 0);
	test_map_error_file("error_auth_failed.json", 400, 1, VF_EAUTH, 0);
	test_map_error_file("error_invalid_token.json", 401, 1, VF_EAUTH, 1);
	test_map_error_file("error_future_rev.json", 400, 1, VF_EINVAL, 0);
	test_map_error_file("error_compacted.json", 400, 1, VF_EINVAL, 0);
	test_map_error_file("error_bad_json.json", 400, 1, VF_EINVAL, 0);
	/* Server-side timeouts: uncertain for writes, unavailable for reads. */
	const char *to = "{\"error\":\"etcdserver: request timed out\",\"message\":\"etcdserver: "
	                 "request timed out\",\"code\":14}";
	CU_ASSERT_EQUAL(etcd_map_error(503, to, strlen(to), 0, NULL, "put k", &err), VF_EUNCERTAIN);
	CU_ASSERT_EQUAL(etcd_map_error(503, to, strlen(to), 1, NULL, "get k", &err), VF_EUNAVAIL);
	/* Not JSON at all. */
	CU_ASSERT_EQUAL(etcd_map_error(400, "<html>", 6, 1, NULL, "get k", &err), VF_EPROTO);
	CU_ASSERT_EQUAL(etcd_map_error(502, "", 0, 1, NULL, "get k", &err), VF_EUNAVAIL);
	CU_ASSERT(strstr(err.msg, "get k") != NULL);
}

/* #12.9: unavailable after the write was proposed may still apply: uncertain for a
 * write; only what etcd refuses before proposing ("no leader", "too many requests")
 * is unavailable. Reads stay unavailable (they are retried elsewhere). */
static void test_map_errors_after_proposal(void)
{
	static const char *const uncertain[] = {
	        "{\"error\":\"etcdserver: leader changed\",\"message\":\"etcdserver: leader "
	        "changed\",\"code\":14}",
	        "{\"error\":\"etcdserver: server stopped\",\"message\":\"etcdserver: server "
	        "stopped\",\"code\":14}",
	        "{\"error\":\"etcdserver: request timed out, possibly due to previous leader "
	        "failure\",\"message\":\"etcdserver: request timed out, possibly due to "
	        "previous leader failure\",\"code\":14}",
	        "", /* a 5xx without etcd's body */
	};
	static const char *const unavailable[] = {
	        "{\"error\":\"etcdserver: no leader\",\"message\":\"etcdserver: no "
	        "leader\",\"code\":14}",
	        "{\"error\":\"etcdserver: too many requests\",\"message\":\"etcdserver: too "
	        "many requests\",\"code\":14}",
	        /* a learner of the embedded cluster (issue 15), as etcd 3.4.23 answers */
	        "{\"error\":\"etcdserver: rpc not supported for learner\",\"message\":"
	        "\"etcdserver: rpc not supported for learner\",\"code\":14}",
	};
	struct vf_err err = {0};

	for (size_t i = 0; i < sizeof(uncertain) / sizeof(uncertain[0]); i++) {
		long st = uncertain[i][0] ? 503 : 502;

		CU_ASSERT_EQUAL(etcd_map_error(st, uncertain[i], strlen(uncertain[i]), 0, NULL,
		                               "put k", &err),
		                VF_EUNCERTAIN);
		CU_ASSERT_EQUAL(etcd_map_error(st, uncertain[i], strlen(uncertain[i]), 1, NULL,
		                               "get k", &err),
		                VF_EUNAVAIL);
	}
	for (size_t i = 0; i < sizeof(unavailable) / sizeof(unavailable[0]); i++)
		CU_ASSERT_EQUAL(etcd_map_error(503, unavailable[i], strlen(unavailable[i]), 0, NULL,
		                               "put k", &err),
		                VF_EUNAVAIL);
	/* which answers move to the next member: reads on any 503/504, writes only
	 * when nothing was proposed */
	CU_ASSERT_EQUAL(etcd_failover_answer(503, uncertain[0], strlen(uncertain[0]), 1), 1);
	CU_ASSERT_EQUAL(etcd_failover_answer(503, uncertain[0], strlen(uncertain[0]), 0), 0);
	CU_ASSERT_EQUAL(etcd_failover_answer(503, uncertain[2], strlen(uncertain[2]), 0), 0);
	CU_ASSERT_EQUAL(etcd_failover_answer(503, unavailable[0], strlen(unavailable[0]), 0), 1);
	CU_ASSERT_EQUAL(etcd_failover_answer(503, unavailable[1], strlen(unavailable[1]), 0), 1);
	CU_ASSERT_EQUAL(etcd_failover_answer(503, unavailable[2], strlen(unavailable[2]), 0), 1);
	CU_ASSERT_EQUAL(etcd_failover_answer(504, "", 0, 1), 1);
	CU_ASSERT_EQUAL(etcd_failover_answer(400, unavailable[0], strlen(unavailable[0]), 1), 0);
	CU_ASSERT_EQUAL(etcd_failover_answer(200, "{}", 2, 1), 0);
}

/* ---- watch streams ---- */

struct test_events {
	struct vf_buf log; /* one line per event/message */
	int stop_after;    /* stop feeding after this many messages (0: never) */
	int nmsg;
};

static int test_on_msg(yajl_val msg, void *arg)
{
	struct test_events *te = arg;
	struct etcd_wmsg m;
	struct vf_err err = {0};

	te->nmsg++;
	if (etcd_parse_wmsg(msg, &m, &err) != VF_OK) {
		vf_buf_printf(&te->log, "bad:%s\n", err.msg);
		return VF_EPROTO;
	}
	vf_buf_printf(&te->log, "msg rev=%lld created=%d canceled=%d compact=%lld error=%d%s%s\n",
	              (long long)m.revision, m.created, m.canceled, (long long)m.compact_revision,
	              m.error, m.reason ? " reason=" : "", m.reason ? m.reason : "");
	for (size_t i = 0; m.events && i < m.events->u.array.len; i++) {
		struct vf_kv_event ev;
		char *k, *v;

		if (etcd_parse_event(m.events->u.array.values[i], &ev, &k, &v, &err) != VF_OK) {
			vf_buf_printf(&te->log, "badev:%s\n", err.msg);
			return VF_EPROTO;
		}
		vf_buf_printf(&te->log, "ev %s %s=%.*s mod=%lld create=%lld\n",
		              ev.type == VF_EV_PUT ? "PUT" : "DELETE", ev.key, (int)ev.value_len,
		              ev.value, (long long)ev.mod_rev, (long long)ev.create_rev);
		free(k);
		free(v);
	}
	if (te->stop_after && te->nmsg >= te->stop_after)
		return 1;
	return VF_OK;
}

static char *test_stream_log(const char *data, size_t len, size_t split)
{
	struct test_events te = {{0}, 0, 0};
	struct etcd_stream s = {{0}};

	CU_ASSERT_EQUAL(etcd_stream_feed(&s, data, split, test_on_msg, &te, NULL), VF_OK);
	CU_ASSERT_EQUAL(etcd_stream_feed(&s, data + split, len - split, test_on_msg, &te, NULL),
	                VF_OK);
	CU_ASSERT_EQUAL(s.buf.len, 0);
	etcd_stream_free(&s);
	return te.log.data;
}

static void test_watch_events(void)
{
	size_t len;
	char *data = test_read("watch_events.stream", &len);
	char *log;

	CU_ASSERT_PTR_NOT_NULL_FATAL(data);
	log = test_stream_log(data, len, len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(log);
	CU_ASSERT_STRING_EQUAL(log, "msg rev=6 created=1 canceled=0 compact=0 error=0\n"
	                            "msg rev=7 created=0 canceled=0 compact=0 error=0\n"
	                            "ev PUT w/a=1 mod=7 create=7\n"
	                            "msg rev=8 created=0 canceled=0 compact=0 error=0\n"
	                            "ev PUT w/b=2 mod=8 create=8\n"
	                            "ev PUT w/c= mod=8 create=8\n"
	                            "msg rev=9 created=0 canceled=0 compact=0 error=0\n"
	                            "ev DELETE w/a= mod=9 create=0\n");
	free(log);
	free(data);
}

static void test_watch_split_every_byte(void)
{
	const char *files[] = {"watch_events.stream", "watch_replay.stream",
	                       "watch_compacted.stream", "watch_inband_error.stream"};

	for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
		size_t len;
		char *data = test_read(files[f], &len), *whole;
		int same = 1;

		CU_ASSERT_PTR_NOT_NULL_FATAL(data);
		whole = test_stream_log(data, len, len);
		CU_ASSERT_PTR_NOT_NULL_FATAL(whole);
		for (size_t split = 0; split <= len; split++) {
			char *log = test_stream_log(data, len, split);

			if (log == NULL || strcmp(log, whole) != 0) {
				fprintf(stderr, "%s: split at %zu differs\n", files[f], split);
				same = 0;
			}
			free(log);
		}
		/* And byte by byte. */
		struct test_events te = {{0}, 0, 0};
		struct etcd_stream s = {{0}};
		for (size_t i = 0; i < len; i++)
			CU_ASSERT_EQUAL(etcd_stream_feed(&s, data + i, 1, test_on_msg, &te, NULL),
			                VF_OK);
		CU_ASSERT_STRING_EQUAL(te.log.data, whole);
		etcd_stream_free(&s);
		vf_buf_free(&te.log);
		CU_ASSERT(same);
		free(whole);
		free(data);
	}
}

static void test_watch_special(void)
{
	size_t len;
	char *data, *log;

	data = test_read("watch_compacted.stream", &len);
	log = test_stream_log(data, len, len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(log);
	CU_ASSERT(strstr(log, "msg rev=0 created=0 canceled=1 compact=10 error=0") != NULL);
	free(log);
	free(data);

	data = test_read("watch_inband_error.stream", &len);
	log = test_stream_log(data, len, len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(log);
	CU_ASSERT(strstr(log, "ev PUT w/a=1 mod=13 create=13\n") != NULL);
	CU_ASSERT(strstr(log, "error=1 reason=transport is closing") != NULL);
	free(log);
	free(data);

	data = test_read("watch_auth_cancel.stream", &len);
	log = test_stream_log(data, len, len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(log);
	CU_ASSERT(strstr(log, "created=1 canceled=1 compact=0 error=0 reason=") != NULL);
	CU_ASSERT(strstr(log, "user name is empty") != NULL);
	free(log);
	free(data);

	data = test_read("watch_replay.stream", &len);
	log = test_stream_log(data, len, len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(log);
	/* History replay: several revisions in one message, in order. */
	CU_ASSERT(strstr(log,
	                 "ev PUT w/a=1 mod=7 create=7\nev PUT w/b=2 mod=8 create=8\n"
	                 "ev PUT w/c= mod=8 create=8\nev DELETE w/a= mod=9 create=0\n") != NULL);
	free(log);
	free(data);

	/* The callback's non-zero result stops feeding at once. */
	struct test_events te = {{0}, 1, 0};
	struct etcd_stream s = {{0}};
	data = test_read("watch_events.stream", &len);
	CU_ASSERT_EQUAL(etcd_stream_feed(&s, data, len, test_on_msg, &te, NULL), 1);
	CU_ASSERT_EQUAL(te.nmsg, 1);
	etcd_stream_free(&s);
	vf_buf_free(&te.log);
	free(data);

	/* A garbage line is a protocol error. */
	struct etcd_stream s2 = {{0}};
	struct test_events te2 = {{0}, 0, 0};
	CU_ASSERT_EQUAL(etcd_stream_feed(&s2, "{\"result\":\n", 11, test_on_msg, &te2, NULL),
	                VF_EPROTO);
	etcd_stream_free(&s2);
	vf_buf_free(&te2.log);
}

/* ---- configuration (through the loader, no server) ---- */

static int cfg_open(const char *text, struct vf_backend **be, struct vf_kv **kv, struct vf_err *err)
{
	config_t cfg;
	int rc;

	*kv = NULL;
	if (*be == NULL && vf_backend_load("etcd", NULL, be, err) != VF_OK)
		return -100;
	config_init(&cfg);
	if (config_read_string(&cfg, text) != CONFIG_TRUE) {
		config_destroy(&cfg);
		return -101;
	}
	rc = vf_backend_open(*be, config_lookup(&cfg, "etcd"), kv, err);
	config_destroy(&cfg);
	return rc;
}

static void test_config(void)
{
	struct vf_backend *be = NULL;
	struct vf_kv *kv = NULL;
	struct vf_err err = {0};
	const struct vf_kv_ops *ops;
	struct vf_kv_pair p;

	CU_ASSERT_EQUAL_FATAL(vf_backend_load("etcd", NULL, &be, &err), VF_OK);
	ops = vf_backend_ops(be);
	CU_ASSERT_EQUAL(ops->caps,
	                VF_KV_CAP_WATCH_HISTORY | VF_KV_CAP_COMPACT | VF_KV_CAP_SHORT_LEASE);
	CU_ASSERT_EQUAL_FATAL(ops->open(NULL, &kv, &err), VF_OK);
	CU_ASSERT_EQUAL(kv->max_txn_ops, 128);
	CU_ASSERT_EQUAL(kv->min_lease_ttl_s, 2);
	CU_ASSERT_PTR_EQUAL(kv->ops, ops);
	ops->close(kv);

	CU_ASSERT_EQUAL(
	        cfg_open("etcd = {\n endpoints = \"http://127.0.0.1:1\";\n embedded = true;\n"
	                 " embedded_data_dir = \"/x\"; embedded_client_url = \"u\";\n"
	                 " embedded_peer_url = \"p\"; timeout_ms = 700;\n"
	                 " connect_timeout_ms = 300; };",
	                 &be, &kv, &err),
	        VF_OK);
	CU_ASSERT_FATAL(kv != NULL);
	/* Nothing listens there: unavailable, quickly, naming the key. */
	int64_t t0 = vf_now_ms();
	CU_ASSERT_EQUAL(ops->get(kv, "cfg/a", &p, &err), VF_EUNAVAIL);
	CU_ASSERT(vf_now_ms() - t0 < 2000);
	CU_ASSERT(strstr(err.msg, "cfg/a") != NULL);
	ops->close(kv);

	CU_ASSERT_EQUAL(
	        cfg_open("etcd = {\n endpoints = \"http://127.0.0.1:1\";\n endpoint = \"x\"; };",
	                 &be, &kv, &err),
	        VF_EINVAL);
	CU_ASSERT(strstr(err.msg, "line 3") != NULL);
	CU_ASSERT(strstr(err.msg, "etcd.endpoint'") != NULL);
	CU_ASSERT_EQUAL(cfg_open("etcd = { endpoints = 5; };", &be, &kv, &err), VF_EINVAL);
	CU_ASSERT(strstr(err.msg, "endpoints") != NULL);
	CU_ASSERT_EQUAL(cfg_open("etcd = { endpoints = [\"ftp://x\"]; };", &be, &kv, &err),
	                VF_EINVAL);
	CU_ASSERT_EQUAL(cfg_open("etcd = { timeout_ms = 0; };", &be, &kv, &err), VF_EINVAL);
	CU_ASSERT(strstr(err.msg, "timeout_ms") != NULL);
	CU_ASSERT_EQUAL(cfg_open("etcd = { password = \"s3cret\"; };", &be, &kv, &err), VF_EINVAL);
	CU_ASSERT(strstr(err.msg, "s3cret") == NULL);
	CU_ASSERT_EQUAL(cfg_open("etcd = { cert = \"/c\"; };", &be, &kv, &err), VF_EINVAL);

	/* Credentials never show up in messages. */
	CU_ASSERT_EQUAL(
	        cfg_open("etcd = { endpoints = [\"http://127.0.0.1:1\", \"http://127.0.0.1:2\"];"
	                 " username = \"root\"; password = \"s3cret\"; };",
	                 &be, &kv, &err),
	        VF_OK);
	CU_ASSERT_FATAL(kv != NULL);
	CU_ASSERT_EQUAL(ops->put(kv, "cfg/b", "1", 1, NULL, NULL, &err), VF_EUNAVAIL);
	CU_ASSERT(strstr(err.msg, "s3cret") == NULL);
	CU_ASSERT(strstr(err.msg, "cfg/b") != NULL);
	ops->close(kv);
	vf_backend_unload(&be);
}

void vf_test_register(void)
{
	CU_pSuite s = CU_add_suite("etcd_json", NULL, NULL);

	if (s == NULL)
		vf_test_abort("suite etcd_json");
	VF_ADD_TEST(s, test_prefix_range);
	VF_ADD_TEST(s, test_build_basic);
	VF_ADD_TEST(s, test_build_cas);
	VF_ADD_TEST(s, test_build_txn);
	VF_ADD_TEST(s, test_build_lock);
	VF_ADD_TEST(s, test_parse_range);
	VF_ADD_TEST(s, test_parse_txn);
	VF_ADD_TEST(s, test_parse_lease);
	VF_ADD_TEST(s, test_map_errors);
	VF_ADD_TEST(s, test_map_errors_after_proposal);
	VF_ADD_TEST(s, test_watch_events);
	VF_ADD_TEST(s, test_watch_split_every_byte);
	VF_ADD_TEST(s, test_watch_special);
	s = CU_add_suite("etcd_config", NULL, NULL);
	if (s == NULL)
		vf_test_abort("suite etcd_config");
	VF_ADD_TEST(s, test_config);
}
