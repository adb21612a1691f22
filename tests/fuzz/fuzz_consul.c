/*
 * libFuzzer target: the Consul backend's parse layer (backends/consul/consul_json.c).
 * The first byte picks the parser; the rest is the answer body (for the watch
 * diff: two listings separated by a NUL byte).
 */
#include <config.h>

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "consul_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check_err(int rc, const struct vf_err *err)
{
	if (rc != VF_OK)
		assert(strchr(err->msg, '\n') == NULL);
}

static void fuzz_list_sorted(const struct vf_kv_list *l, const char *prefix)
{
	for (size_t i = 0; i < l->count; i++) {
		assert(strncmp(l->items[i].key, prefix, strlen(prefix)) == 0);
		if (i > 0)
			assert(strcmp(l->items[i - 1].key, l->items[i].key) <= 0);
	}
}

static void fuzz_diff(const char *body, size_t len)
{
	const char *sep = memchr(body, '\0', len);
	struct vf_kv_list a = {0}, b = {0};
	struct consul_event *ev = NULL;
	struct vf_err err = {0};
	size_t n = 0, alen = sep ? (size_t)(sep - body) : len;

	if (consul_list_parse(body, alen, "w/", &a, &err) != VF_OK)
		return;
	if (sep == NULL || consul_list_parse(sep + 1, len - alen - 1, "w/", &b, &err) != VF_OK)
		goto out;
	if (consul_list_diff(&a, &b, &ev, &n) == VF_OK) {
		for (size_t i = 0; i < n; i++)
			assert(ev[i].pair != NULL && ev[i].pair->key != NULL);
		free(ev);
	}
out:
	vf_kv_list_clear(&a);
	vf_kv_list_clear(&b);
}

static void fuzz_txn(const char *body, size_t len)
{
	const struct consul_txn_op ops[] = {
	        {.verb = CONSUL_GET, .key = "k/a"},
	        {.verb = CONSUL_GET_TREE, .key = "k/b"},
	        {.verb = CONSUL_SET, .key = "k/c", .value = "v", .value_len = 1},
	        {.verb = CONSUL_CHECK_INDEX, .key = "k/d", .index = 3},
	        {.verb = CONSUL_LOCK, .key = "k/e", .session = "s"},
	        {.verb = CONSUL_DELETE, .key = "k/f"},
	};
	const size_t nops = sizeof(ops) / sizeof(ops[0]);
	struct vf_kv_result res[sizeof(ops) / sizeof(ops[0])];
	struct consul_txn_error *errs = NULL;
	struct vf_err err = {0};
	int64_t rev = 0;
	size_t n = 0;
	int rc;

	memset(res, 0, sizeof(res));
	rc = consul_txn_results_parse(body, len, ops, nops, res, &rev, &err);
	fuzz_check_err(rc, &err);
	vf_kv_results_clear(res, nops);
	rc = consul_txn_errors_parse(body, len, &errs, &n, &err);
	fuzz_check_err(rc, &err);
	if (rc == VF_OK) {
		for (size_t i = 0; i < n; i++)
			assert(memchr(errs[i].what, '\0', sizeof(errs[i].what)) != NULL);
		free(errs);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vf_err err = {0};
	struct vf_kv_pair p = {0};
	struct vf_kv_list l = {0};
	const char *body;
	char *nul = NULL, sid[128], id[128];
	size_t len;
	int rc, ttl = 0;

	if (size < 1)
		return 0;
	body = (const char *)data + 1;
	len = size - 1;
	switch (data[0] % 9) {
	case 0:
		rc = consul_get_parse(body, len, "k/a", &p, &err);
		fuzz_check_err(rc, &err);
		if (rc == VF_OK)
			assert(strcmp(p.key, "k/a") == 0);
		vf_kv_pair_clear(&p);
		break;
	case 1:
		rc = consul_list_parse(body, len, "k/", &l, &err);
		fuzz_check_err(rc, &err);
		if (rc == VF_OK)
			fuzz_list_sorted(&l, "k/");
		vf_kv_list_clear(&l);
		break;
	case 2:
		rc = consul_get_session_parse(body, len, "k/a", sid, sizeof(sid), &err);
		fuzz_check_err(rc, &err);
		if (rc == VF_OK)
			assert(memchr(sid, '\0', sizeof(sid)) != NULL);
		break;
	case 3:
		fuzz_txn(body, len);
		break;
	case 4:
		rc = consul_session_create_parse(body, len, id, sizeof(id), &err);
		fuzz_check_err(rc, &err);
		rc = consul_session_ttl_parse(body, len, &ttl, &err);
		fuzz_check_err(rc, &err);
		break;
	case 5:
		if (len < 2)
			break;
		rc = consul_status_error(
		        100 + ((unsigned char)body[0] << 8 | (unsigned char)body[1]) % 500,
		        body + 2, len - 2, body[0] & 1, "fuzz key", &err);
		fuzz_check_err(rc, &err);
		break;
	case 6:
		/* header values and durations are NUL-terminated strings */
		nul = strndup(body, len);
		if (nul == NULL)
			break;
		(void)consul_index_parse(nul);
		(void)consul_duration_s(nul, &ttl);
		(void)consul_txn_fail_classify(nul);
		free(nul);
		break;
	case 7:
		fuzz_diff(body, len);
		break;
	default: {
		int reset = 0;
		int64_t a = 0, b = 0;

		if (len >= 16) {
			memcpy(&a, body, 8);
			memcpy(&b, body + 8, 8);
		}
		(void)consul_next_index(a, b, &reset);
		break;
	}
	}
	return 0;
}
