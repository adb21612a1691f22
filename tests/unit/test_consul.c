/*
 * Unit tests of the Consul backend's parse/build layer (consul_json.c), fed
 * with responses saved from a Consul 1.8.7 dev agent (tests/data/consul/).
 * No server needed.
 */
#include <config.h>

#include <stdio.h>
#include <string.h>

#include "test_int.h"
#include "consul_int.h"

/* Read tests/data/consul/<name> into a NUL-terminated buffer. */
static char *tc_load(const char *name, size_t *len_r)
{
	const char *dir = getenv("VFILE_TEST_DATA");
	char path[1024];
	struct vf_buf b = {0};
	char chunk[4096];
	size_t n;
	FILE *f;

	if (dir == NULL || *dir == '\0') {
		const char *top = getenv("top_srcdir");
		snprintf(path, sizeof(path), "%s/tests/data/consul/%s", top ? top : ".", name);
	} else {
		snprintf(path, sizeof(path), "%s/consul/%s", dir, name);
	}
	f = fopen(path, "rb");
	if (f == NULL) {
		fprintf(stderr, "cannot open %s\n", path);
		return NULL;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		vf_buf_add(&b, chunk, n);
	fclose(f);
	if (b.data == NULL)
		vf_buf_add(&b, "", 0);
	*len_r = b.len;
	return b.data;
}

/* The X-Consul-Index value of a saved header dump. */
static int64_t tc_header_index(const char *name)
{
	size_t len;
	char *h = tc_load(name, &len), *p, *end;
	int64_t idx = -1;

	if (h == NULL)
		return -1;
	p = strcasestr(h, "X-Consul-Index:");
	if (p) {
		p += strlen("X-Consul-Index:");
		while (*p == ' ')
			p++;
		end = strpbrk(p, "\r\n");
		if (end)
			*end = '\0';
		idx = consul_index_parse(p);
	}
	free(h);
	return idx;
}

static void test_get_parse(void)
{
	struct vf_kv_pair p;
	struct vf_err err = {0};
	size_t len;
	char *body = tc_load("kv_get.json", &len);

	CU_ASSERT_PTR_NOT_NULL_FATAL(body);
	CU_ASSERT_EQUAL_FATAL(consul_get_parse(body, len, "rec/a", &p, &err), VF_OK);
	CU_ASSERT_STRING_EQUAL(p.key, "rec/a");
	CU_ASSERT_EQUAL(p.value_len, 2);
	CU_ASSERT_STRING_EQUAL(p.value, "v1");
	CU_ASSERT_EQUAL(p.mod_rev, 3109);
	CU_ASSERT_EQUAL(p.create_rev, 3109);
	vf_kv_pair_clear(&p);
	/* An answer for another key is not the key. */
	CU_ASSERT_EQUAL(consul_get_parse(body, len, "rec/ab", &p, &err), VF_ENOTFOUND);
	CU_ASSERT_PTR_NULL(p.key);
	CU_ASSERT_EQUAL(consul_get_parse("{", 1, "rec/a", &p, &err), VF_EPROTO);
	CU_ASSERT_EQUAL(consul_get_parse("{\"a\":1}", 7, "rec/a", &p, &err), VF_EPROTO);
	CU_ASSERT_EQUAL(
	        consul_get_parse("[{\"Key\":\"rec/a\",\"Value\":\"@@\"}]", 31, "rec/a", &p, &err),
	        VF_EPROTO);
	free(body);
}

static void test_list_parse(void)
{
	struct vf_kv_list l;
	struct vf_err err = {0};
	size_t len;
	char *body = tc_load("kv_list.json", &len);

	CU_ASSERT_PTR_NOT_NULL_FATAL(body);
	/* ?recurse on "rec/a" also returned rec/a/1, rec/a/2 and rec/ab. */
	CU_ASSERT_EQUAL_FATAL(consul_list_parse(body, len, "rec/a", &l, &err), VF_OK);
	CU_ASSERT_EQUAL_FATAL(l.count, 4);
	CU_ASSERT_STRING_EQUAL(l.items[0].key, "rec/a");
	CU_ASSERT_STRING_EQUAL(l.items[1].key, "rec/a/1");
	CU_ASSERT_STRING_EQUAL(l.items[1].value, "one");
	CU_ASSERT_STRING_EQUAL(l.items[2].key, "rec/a/2");
	CU_ASSERT_EQUAL(l.items[2].value_len, 0); /* "Value": null */
	CU_ASSERT_STRING_EQUAL(l.items[2].value, "");
	CU_ASSERT_STRING_EQUAL(l.items[3].key, "rec/ab");
	vf_kv_list_clear(&l);
	/* Only keys really under the prefix. */
	CU_ASSERT_EQUAL_FATAL(consul_list_parse(body, len, "rec/a/", &l, &err), VF_OK);
	CU_ASSERT_EQUAL(l.count, 2);
	for (size_t i = 0; i < l.count; i++)
		CU_ASSERT(strncmp(l.items[i].key, "rec/a/", 6) == 0);
	vf_kv_list_clear(&l);
	CU_ASSERT_EQUAL_FATAL(consul_list_parse(body, len, "zzz/", &l, &err), VF_OK);
	CU_ASSERT_EQUAL(l.count, 0);
	vf_kv_list_clear(&l);
	free(body);
	CU_ASSERT_EQUAL(consul_list_parse("nope", 4, "x", &l, &err), VF_EPROTO);
	CU_ASSERT_EQUAL(l.count, 0);
}

static void test_index_header(void)
{
	/* A 404 still carries the KV index. */
	CU_ASSERT_EQUAL(tc_header_index("kv_get_404_headers.txt"), 3112);
	CU_ASSERT_EQUAL(tc_header_index("kv_list_headers.txt"), 3112);
	CU_ASSERT_EQUAL(tc_header_index("watch_list_2_headers.txt"), 3116);
	CU_ASSERT_EQUAL(consul_index_parse(NULL), 0);
	CU_ASSERT_EQUAL(consul_index_parse("abc"), 0);
	CU_ASSERT_EQUAL(consul_index_parse("12x"), 0);
	CU_ASSERT_EQUAL(consul_index_parse("-5"), 0);
	CU_ASSERT_EQUAL(consul_index_parse("42"), 42);
}

static void test_txn_results(void)
{
	/* The ops exactly as sent to record txn_ok_mixed.json. */
	const char *sid = "session";
	struct consul_txn_op ops[] = {
	        {.verb = CONSUL_LOCK,
	         .key = "rec/lock/y",
	         .value = "h:1",
	         .value_len = 3,
	         .session = sid},
	        {.verb = CONSUL_GET_TREE, .key = "rec/a/1"},
	        {.verb = CONSUL_GET_TREE, .key = "rec/a/2"},
	        {.verb = CONSUL_CHECK_NOT_EXISTS, .key = "rec/none"},
	        {.verb = CONSUL_GET, .key = "rec/ab"},
	        {.verb = CONSUL_CHECK_SESSION, .key = "rec/lock/y", .session = sid},
	        {.verb = CONSUL_SET, .key = "rec/new", .value = "n", .value_len = 1},
	        {.verb = CONSUL_DELETE, .key = "rec/ab"},
	        {.verb = CONSUL_UNLOCK,
	         .key = "rec/lock/y",
	         .value = "h:1",
	         .value_len = 3,
	         .session = sid},
	};
	size_t n = sizeof(ops) / sizeof(ops[0]), len;
	struct vf_kv_result res[9];
	struct vf_err err = {0};
	int64_t rev;
	char *body = tc_load("txn_ok_mixed.json", &len);

	CU_ASSERT_PTR_NOT_NULL_FATAL(body);
	CU_ASSERT_EQUAL_FATAL(consul_txn_results_parse(body, len, ops, n, res, &rev, &err), VF_OK);
	CU_ASSERT_EQUAL(rev, 3130);
	CU_ASSERT(res[0].found);
	CU_ASSERT_EQUAL(res[0].pair.mod_rev, 3130); /* the lock's fence */
	CU_ASSERT(res[1].found);
	CU_ASSERT_STRING_EQUAL(res[1].pair.value, "uno");
	CU_ASSERT_EQUAL(res[1].pair.mod_rev, 3114);
	CU_ASSERT_FALSE(res[2].found); /* get-tree of a missing key: not found */
	CU_ASSERT_FALSE(res[3].found);
	CU_ASSERT(res[4].found);
	CU_ASSERT_STRING_EQUAL(res[4].pair.value, "x");
	CU_ASSERT(res[5].found);
	CU_ASSERT(res[6].found);
	CU_ASSERT_STRING_EQUAL(res[6].pair.key, "rec/new");
	CU_ASSERT_EQUAL(res[6].pair.mod_rev, 3119);
	CU_ASSERT_FALSE(res[7].found);
	CU_ASSERT(res[8].found);
	vf_kv_results_clear(res, n);
	/* Fewer results than the ops need: a protocol error, nothing leaked. */
	CU_ASSERT_EQUAL(consul_txn_results_parse("{\"Results\":[]}", 14, ops, n, res, &rev, &err),
	                VF_EPROTO);
	free(body);
}

static void test_choose_read_verbs(void)
{
	struct consul_txn_op ops[] = {
	        {.verb = CONSUL_LOCK, .key = "l/x"},
	        {.key = "v/a"},  /* v/ab follows: ambiguous run, plain get */
	        {.key = "v/ab"}, /* nothing after starts with v/ab: get-tree */
	        {.key = "v/c"},  /* itself again later: get */
	        {.verb = CONSUL_SET, .key = "v/c"},
	};
	int is_read[] = {0, 1, 1, 1, 0};

	consul_choose_read_verbs(ops, 5, is_read);
	CU_ASSERT_EQUAL(ops[0].verb, CONSUL_LOCK);
	CU_ASSERT_EQUAL(ops[1].verb, CONSUL_GET);
	CU_ASSERT_EQUAL(ops[2].verb, CONSUL_GET_TREE);
	CU_ASSERT_EQUAL(ops[3].verb, CONSUL_GET);
	CU_ASSERT_EQUAL(ops[4].verb, CONSUL_SET);
}

struct tc_fail {
	const char *file;
	size_t n;
	size_t op[2];
	enum consul_txn_fail kind[2];
};

static void test_txn_errors(void)
{
	static const struct tc_fail cases[] = {
	        {"txn_409_compare.json", 2, {0, 1}, {CONSUL_FAIL_COMPARE, CONSUL_FAIL_COMPARE}},
	        {"txn_409_missing.json", 1, {0}, {CONSUL_FAIL_MISSING}},
	        {"txn_409_lock_held.json", 2, {0, 1}, {CONSUL_FAIL_LOCK_HELD, CONSUL_FAIL_MISSING}},
	        {"txn_409_session_check.json", 1, {0}, {CONSUL_FAIL_SESSION}},
	        {"txn_409_invalid_session.json", 1, {0}, {CONSUL_FAIL_BAD_SESSION}},
	};
	struct vf_err err = {0};

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct consul_txn_error *e = NULL;
		size_t len, n = 0;
		char *body = tc_load(cases[c].file, &len);

		CU_ASSERT_PTR_NOT_NULL_FATAL(body);
		CU_ASSERT_EQUAL_FATAL(consul_txn_errors_parse(body, len, &e, &n, &err), VF_OK);
		CU_ASSERT_EQUAL(n, cases[c].n);
		for (size_t i = 0; i < n && i < cases[c].n; i++) {
			if (e[i].op_index != cases[c].op[i] || e[i].kind != cases[c].kind[i])
				fprintf(stderr, "%s: error %zu: op %zu kind %d (%s)\n",
				        cases[c].file, i, e[i].op_index, e[i].kind, e[i].what);
			CU_ASSERT_EQUAL(e[i].op_index, cases[c].op[i]);
			CU_ASSERT_EQUAL(e[i].kind, cases[c].kind[i]);
		}
		free(e);
		free(body);
	}
	{
		struct consul_txn_error *e = NULL;
		size_t n;

		CU_ASSERT_EQUAL(consul_txn_errors_parse("{\"Errors\":null}", 15, &e, &n, &err),
		                VF_EPROTO);
		CU_ASSERT_PTR_NULL(e);
	}
	CU_ASSERT_EQUAL(
	        consul_txn_fail_classify("failed to check session, key \"k\" doesn't exist"),
	        CONSUL_FAIL_SESSION);
	CU_ASSERT_EQUAL(consul_txn_fail_classify("failed to set key \"k\", index is stale"),
	                CONSUL_FAIL_COMPARE);
	CU_ASSERT_EQUAL(consul_txn_fail_classify("failed to unlock key \"k\", lock isn't held, or "
	                                         "is held by another session"),
	                CONSUL_FAIL_NOT_HELD);
	CU_ASSERT_EQUAL(consul_txn_fail_classify("Permission denied"), CONSUL_FAIL_DENIED);
	CU_ASSERT_EQUAL(consul_txn_fail_classify("something new"), CONSUL_FAIL_OTHER);
	/* Consul 1.8.7, a lock within the lock-delay of a session that ended: held,
	 * not an invalid request (issue 12 item 9) */
	CU_ASSERT_EQUAL(
	        consul_txn_fail_classify("failed to lock key \"a/.lock\" due to lock delay"),
	        CONSUL_FAIL_LOCK_DELAY);
}

static int tc_status(long status, const char *file_or_text, int is_file, int write)
{
	struct vf_err err = {0};
	size_t len = 0;
	char *body = is_file ? tc_load(file_or_text, &len) : NULL;
	const char *b = is_file ? body : file_or_text;
	int rc;

	if (!is_file && b)
		len = strlen(b);
	rc = consul_status_error(status, b, len, write, "vfile/k", &err);
	CU_ASSERT_EQUAL(err.code, rc);
	CU_ASSERT_EQUAL(err.http_status, status);
	CU_ASSERT(strstr(err.msg, "vfile/k") != NULL);
	CU_ASSERT(strchr(err.msg, '\n') == NULL);
	free(body);
	return rc;
}

static void test_status_errors(void)
{
	CU_ASSERT_EQUAL(tc_status(413, "txn_413.txt", 1, 1), VF_ELIMIT);
	CU_ASSERT_EQUAL(tc_status(400, "txn_400.txt", 1, 1), VF_EINVAL);
	CU_ASSERT_EQUAL(tc_status(404, "session_renew_404.txt", 1, 0), VF_ENOTFOUND);
	CU_ASSERT_EQUAL(tc_status(500, "session_ttl_500.txt", 1, 1), VF_EINVAL);
	CU_ASSERT_EQUAL(tc_status(403, "Permission denied", 0, 0), VF_EAUTH);
	CU_ASSERT_EQUAL(tc_status(403, "ACL not found", 0, 1), VF_EAUTH);
	CU_ASSERT_EQUAL(tc_status(500, "rpc error making call: ACL not found", 0, 1), VF_EAUTH);
	CU_ASSERT_EQUAL(tc_status(500, "invalid session \"0000\"", 0, 1), VF_ELEASE);
	CU_ASSERT_EQUAL(tc_status(500, "No cluster leader", 0, 1), VF_EUNAVAIL);
	CU_ASSERT_EQUAL(tc_status(500, "raft apply timed out", 0, 1), VF_EUNCERTAIN);
	CU_ASSERT_EQUAL(tc_status(500, "raft apply timed out", 0, 0), VF_EUNAVAIL);
	CU_ASSERT_EQUAL(tc_status(302, NULL, 0, 0), VF_EPROTO);
}

static void test_session(void)
{
	struct vf_err err = {0};
	char id[64], *body, *gen;
	size_t len, glen;
	int ttl;
	yajl_val t;

	body = tc_load("session_create.json", &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(body);
	CU_ASSERT_EQUAL(consul_session_create_parse(body, len, id, sizeof(id), &err), VF_OK);
	CU_ASSERT_EQUAL(strlen(id), 36);
	CU_ASSERT_EQUAL(consul_session_create_parse(body, len, id, 8, &err), VF_EPROTO);
	free(body);

	body = tc_load("session_renew.json", &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(body);
	CU_ASSERT_EQUAL(consul_session_ttl_parse(body, len, &ttl, &err), VF_OK);
	CU_ASSERT_EQUAL(ttl, 10);
	free(body);
	body = tc_load("session_info_empty.json", &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(body);
	CU_ASSERT_EQUAL(consul_session_ttl_parse(body, len, &ttl, &err), VF_ENOTFOUND);
	free(body);

	CU_ASSERT_EQUAL(consul_duration_s("1m30s", &ttl), VF_OK);
	CU_ASSERT_EQUAL(ttl, 90);
	CU_ASSERT_EQUAL(consul_duration_s("20s", &ttl), VF_OK);
	CU_ASSERT_EQUAL(ttl, 20);
	CU_ASSERT_EQUAL(consul_duration_s("1h", &ttl), VF_OK);
	CU_ASSERT_EQUAL(ttl, 3600);
	CU_ASSERT_EQUAL(consul_duration_s("1500ms", &ttl), VF_OK);
	CU_ASSERT_EQUAL(ttl, 1);
	CU_ASSERT_EQUAL(consul_duration_s("15", &ttl), VF_EPROTO);
	CU_ASSERT_EQUAL(consul_duration_s("", &ttl), VF_EPROTO);

	CU_ASSERT_EQUAL_FATAL(
	        consul_session_body("vfile-h-1", 15, "delete", 0, NULL, &gen, &glen, &err), VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_json_parse(gen, glen, &t, &err), VF_OK);
	CU_ASSERT_STRING_EQUAL(vf_json_str(vf_json_get(t, "TTL", NULL)), "15s");
	CU_ASSERT_STRING_EQUAL(vf_json_str(vf_json_get(t, "Behavior", NULL)), "delete");
	CU_ASSERT_STRING_EQUAL(vf_json_str(vf_json_get(t, "LockDelay", NULL)), "0ms");
	CU_ASSERT_STRING_EQUAL(vf_json_str(vf_json_get(t, "Name", NULL)), "vfile-h-1");
	{
		yajl_val c = vf_json_get(t, "NodeChecks", NULL);
		CU_ASSERT(c != NULL && YAJL_IS_ARRAY(c) && c->u.array.len == 0);
	}
	CU_ASSERT_PTR_NULL(vf_json_get(t, "Node", NULL)); /* the agent's node */
	yajl_tree_free(t);
	free(gen);

	/* bound to a node of its own, still without checks */
	CU_ASSERT_EQUAL_FATAL(consul_session_body("vfile-h-2", 10, "release", 0, "vfile-sessions",
	                                          &gen, &glen, &err),
	                      VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_json_parse(gen, glen, &t, &err), VF_OK);
	CU_ASSERT_STRING_EQUAL(vf_json_str(vf_json_get(t, "Node", NULL)), "vfile-sessions");
	{
		yajl_val c = vf_json_get(t, "NodeChecks", NULL);
		CU_ASSERT(c != NULL && YAJL_IS_ARRAY(c) && c->u.array.len == 0);
	}
	yajl_tree_free(t);
	free(gen);
	CU_ASSERT_EQUAL_FATAL(consul_node_register_body("vfile-sessions", &gen, &glen, &err),
	                      VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_json_parse(gen, glen, &t, &err), VF_OK);
	CU_ASSERT_STRING_EQUAL(vf_json_str(vf_json_get(t, "Node", NULL)), "vfile-sessions");
	CU_ASSERT_PTR_NOT_NULL(vf_json_str(vf_json_get(t, "Address", NULL)));
	CU_ASSERT_PTR_NULL(vf_json_get(t, "Checks", NULL)); /* no serfHealth: never reaped */
	yajl_tree_free(t);
	free(gen);
}

/* Which answers move a request to the next server (saved Consul 1.8.7 texts). */
static void test_failover_answer(void)
{
	static const char nl[] = "No cluster leader";
	static const char rpc[] = "rpc error making call: EOF";
	static const char miss[] = "Missing node registration";

	/* no leader, too many requests: nothing applied, writes move too */
	CU_ASSERT(consul_failover_answer(500, nl, strlen(nl), 0));
	CU_ASSERT(consul_failover_answer(500, nl, strlen(nl), 1));
	CU_ASSERT(consul_failover_answer(429, "", 0, 0));
	/* another 5xx: reads only (a write may have been applied) */
	CU_ASSERT(consul_failover_answer(500, rpc, strlen(rpc), 1));
	CU_ASSERT(!consul_failover_answer(500, rpc, strlen(rpc), 0));
	CU_ASSERT(consul_failover_answer(503, "", 0, 1));
	/* answers about the request, not the server */
	CU_ASSERT(!consul_failover_answer(500, miss, strlen(miss), 0));
	CU_ASSERT(!consul_failover_answer(500, miss, strlen(miss), 1));
	CU_ASSERT(!consul_failover_answer(403, "Permission denied", 17, 1));
	CU_ASSERT(!consul_failover_answer(404, "", 0, 1));
	CU_ASSERT(!consul_failover_answer(409, "", 0, 0));
	CU_ASSERT(!consul_failover_answer(200, "", 0, 1));
}

static void test_txn_build(void)
{
	struct consul_txn_op ops[] = {
	        {.verb = CONSUL_CHECK_INDEX, .key = "a", .index = 7},
	        {.verb = CONSUL_CHECK_NOT_EXISTS, .key = "b"},
	        {.verb = CONSUL_CHECK_SESSION, .key = "l", .session = "S1"},
	        {.verb = CONSUL_SET, .key = "a", .value = "v1", .value_len = 2},
	        {.verb = CONSUL_LOCK, .key = "e", .value = "x", .value_len = 1, .session = "S2"},
	        {.verb = CONSUL_DELETE, .key = "c"},
	        {.verb = CONSUL_GET, .key = "d"},
	        {.verb = CONSUL_GET_TREE, .key = "d2"},
	        {.verb = CONSUL_UNLOCK, .key = "l", .value = NULL, .session = "S1"},
	        {.verb = CONSUL_CAS, .key = "f", .value = "", .value_len = 0, .index = 0},
	};
	static const char *verbs[] = {
	        "check-index", "check-not-exists", "check-session", "set", "lock", "delete",
	        "get",         "get-tree",         "unlock",        "cas"};
	size_t n = sizeof(ops) / sizeof(ops[0]), len;
	struct vf_err err = {0};
	char *body;
	yajl_val t;

	CU_ASSERT_EQUAL_FATAL(consul_txn_build(ops, n, &body, &len, &err), VF_OK);
	CU_ASSERT_EQUAL_FATAL(vf_json_parse(body, len, &t, &err), VF_OK);
	CU_ASSERT_FATAL(YAJL_IS_ARRAY(t) && t->u.array.len == n);
	for (size_t i = 0; i < n; i++) {
		yajl_val kv = vf_json_get(t->u.array.values[i], "KV", NULL);
		const char *verb = vf_json_str(vf_json_get(kv, "Verb", NULL));

		CU_ASSERT_PTR_NOT_NULL_FATAL(verb);
		CU_ASSERT_STRING_EQUAL(verb, verbs[i]);
		CU_ASSERT_STRING_EQUAL(vf_json_str(vf_json_get(kv, "Key", NULL)), ops[i].key);
	}
	{
		int64_t idx;
		yajl_val kv0 = vf_json_get(t->u.array.values[0], "KV", NULL);
		yajl_val kv3 = vf_json_get(t->u.array.values[3], "KV", NULL);
		yajl_val kv4 = vf_json_get(t->u.array.values[4], "KV", NULL);
		yajl_val kv8 = vf_json_get(t->u.array.values[8], "KV", NULL);
		yajl_val kv9 = vf_json_get(t->u.array.values[9], "KV", NULL);

		CU_ASSERT_EQUAL(vf_json_int64(vf_json_get(kv0, "Index", NULL), &idx), VF_OK);
		CU_ASSERT_EQUAL(idx, 7);
		CU_ASSERT_PTR_NULL(vf_json_get(kv0, "Value", NULL));
		CU_ASSERT_STRING_EQUAL(vf_json_str(vf_json_get(kv3, "Value", NULL)), "djE=");
		CU_ASSERT_PTR_NULL(vf_json_get(kv3, "Session", NULL));
		CU_ASSERT_STRING_EQUAL(vf_json_str(vf_json_get(kv4, "Session", NULL)), "S2");
		CU_ASSERT_STRING_EQUAL(vf_json_str(vf_json_get(kv8, "Value", NULL)), "");
		CU_ASSERT_STRING_EQUAL(vf_json_str(vf_json_get(kv8, "Session", NULL)), "S1");
		CU_ASSERT_PTR_NOT_NULL(vf_json_get(kv9, "Index", NULL)); /* cas 0: create only */
	}
	yajl_tree_free(t);
	free(body);
}

static int tc_list(const char *file, const char *prefix, int64_t rev, struct vf_kv_list *l)
{
	struct vf_err err = {0};
	size_t len;
	char *body = tc_load(file, &len);
	int rc;

	if (body == NULL)
		return VF_EINVAL;
	rc = consul_list_parse(body, len, prefix, l, &err);
	l->revision = rev;
	free(body);
	return rc;
}

static void test_watch_diff(void)
{
	struct vf_kv_list empty = {0}, l1, l2;
	struct consul_event *ev;
	size_t n;

	/* Revisions are the X-Consul-Index headers saved with each listing. */
	CU_ASSERT_EQUAL_FATAL(tc_list("watch_list_1.json", "rec/a/",
	                              tc_header_index("watch_list_1_headers.txt"), &l1),
	                      VF_OK);
	CU_ASSERT_EQUAL_FATAL(tc_list("watch_list_2.json", "rec/a/",
	                              tc_header_index("watch_list_2_headers.txt"), &l2),
	                      VF_OK);
	CU_ASSERT_EQUAL(l1.revision, 3112);
	CU_ASSERT_EQUAL(l2.revision, 3116);

	/* From nothing: every key is a PUT, in index order. */
	CU_ASSERT_EQUAL_FATAL(consul_list_diff(&empty, &l1, &ev, &n), VF_OK);
	CU_ASSERT_EQUAL_FATAL(n, 2);
	CU_ASSERT_EQUAL(ev[0].type, VF_EV_PUT);
	CU_ASSERT_STRING_EQUAL(ev[0].pair->key, "rec/a/1");
	CU_ASSERT_EQUAL(ev[0].mod_rev, 3111);
	CU_ASSERT_STRING_EQUAL(ev[1].pair->key, "rec/a/2");
	free(ev);

	/* rec/a/1 rewritten (3114), rec/a/2 deleted, rec/a/3 created (3116). */
	CU_ASSERT_EQUAL_FATAL(consul_list_diff(&l1, &l2, &ev, &n), VF_OK);
	CU_ASSERT_EQUAL_FATAL(n, 3);
	CU_ASSERT_EQUAL(ev[0].type, VF_EV_PUT);
	CU_ASSERT_STRING_EQUAL(ev[0].pair->key, "rec/a/1");
	CU_ASSERT_STRING_EQUAL(ev[0].pair->value, "uno");
	CU_ASSERT_EQUAL(ev[0].mod_rev, 3114);
	CU_ASSERT_EQUAL(ev[1].type, VF_EV_PUT);
	CU_ASSERT_STRING_EQUAL(ev[1].pair->key, "rec/a/3");
	CU_ASSERT_EQUAL(ev[1].mod_rev, 3116);
	CU_ASSERT_EQUAL(ev[2].type, VF_EV_DELETE);
	CU_ASSERT_STRING_EQUAL(ev[2].pair->key, "rec/a/2");
	CU_ASSERT_EQUAL(ev[2].mod_rev, 3116); /* the index of the listing that lost it */
	free(ev);

	/* Nothing changed: no event (a blocking return is no guarantee of change). */
	CU_ASSERT_EQUAL_FATAL(consul_list_diff(&l2, &l2, &ev, &n), VF_OK);
	CU_ASSERT_EQUAL(n, 0);
	free(ev);

	/* Everything gone. */
	empty.revision = 3120;
	CU_ASSERT_EQUAL_FATAL(consul_list_diff(&l2, &empty, &ev, &n), VF_OK);
	CU_ASSERT_EQUAL(n, 2);
	for (size_t i = 0; i < n; i++) {
		CU_ASSERT_EQUAL(ev[i].type, VF_EV_DELETE);
		CU_ASSERT_EQUAL(ev[i].mod_rev, 3120);
	}
	free(ev);
	vf_kv_list_clear(&l1);
	vf_kv_list_clear(&l2);
}

static void test_next_index(void)
{
	int reset;

	CU_ASSERT_EQUAL(consul_next_index(0, 3112, &reset), 3112);
	CU_ASSERT_EQUAL(reset, 0);
	CU_ASSERT_EQUAL(consul_next_index(3112, 3116, &reset), 3116);
	CU_ASSERT_EQUAL(reset, 0);
	CU_ASSERT_EQUAL(consul_next_index(3116, 3116, &reset), 3116);
	CU_ASSERT_EQUAL(reset, 0);
	/* Backwards (snapshot restore, tombstone reap): reset to 0, RESYNC. */
	CU_ASSERT_EQUAL(consul_next_index(3116, 12, &reset), 0);
	CU_ASSERT_EQUAL(reset, 1);
	/* Never block with an index below 1. */
	CU_ASSERT_EQUAL(consul_next_index(0, 0, &reset), 1);
	CU_ASSERT_EQUAL(reset, 0);
}

static void test_key_escape(void)
{
	struct vf_buf b = {0};

	CU_ASSERT_EQUAL(consul_key_escape(&b, "vfile/state/vol-1_a.b~"), VF_OK);
	CU_ASSERT_STRING_EQUAL(b.data, "vfile/state/vol-1_a.b~");
	vf_buf_free(&b);
	CU_ASSERT_EQUAL(consul_key_escape(&b, "a b/c%?#&"), VF_OK);
	CU_ASSERT_STRING_EQUAL(b.data, "a%20b/c%25%3F%23%26");
	vf_buf_free(&b);
	CU_ASSERT_EQUAL(consul_key_escape(&b, ""), VF_OK);
	CU_ASSERT_STRING_EQUAL(b.data, "");
	vf_buf_free(&b);
}

static void test_verbs(void)
{
	CU_ASSERT_EQUAL(consul_verb_nresults(CONSUL_DELETE), 0);
	CU_ASSERT_EQUAL(consul_verb_nresults(CONSUL_CHECK_NOT_EXISTS), 0);
	CU_ASSERT_EQUAL(consul_verb_nresults(CONSUL_GET_TREE), -1);
	CU_ASSERT_EQUAL(consul_verb_nresults(CONSUL_CHECK_SESSION), 1);
	CU_ASSERT_EQUAL(consul_verb_nresults(CONSUL_SET), 1);
	CU_ASSERT_STRING_EQUAL(consul_verb_name(CONSUL_CHECK_NOT_EXISTS), "check-not-exists");
	CU_ASSERT_STRING_EQUAL(consul_verb_name((enum consul_verb)99), "?");
}

void vf_test_register(void)
{
	CU_pSuite s = CU_add_suite("consul_json", NULL, NULL);

	if (s == NULL)
		vf_test_abort("suite consul_json");
	VF_ADD_TEST(s, test_get_parse);
	VF_ADD_TEST(s, test_list_parse);
	VF_ADD_TEST(s, test_index_header);
	VF_ADD_TEST(s, test_txn_results);
	VF_ADD_TEST(s, test_choose_read_verbs);
	VF_ADD_TEST(s, test_txn_errors);
	VF_ADD_TEST(s, test_status_errors);
	VF_ADD_TEST(s, test_session);
	VF_ADD_TEST(s, test_failover_answer);
	VF_ADD_TEST(s, test_txn_build);
	VF_ADD_TEST(s, test_watch_diff);
	VF_ADD_TEST(s, test_next_index);
	VF_ADD_TEST(s, test_key_escape);
	VF_ADD_TEST(s, test_verbs);
}
