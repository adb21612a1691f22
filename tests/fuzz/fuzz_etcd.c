/*
 * libFuzzer target: the etcd backend's parse layer (backends/etcd/etcd_json.c).
 * The first byte picks the mode:
 *   0: a watch stream (line-delimited JSON), fed in chunks whose sizes come from
 *      the second byte, every message through etcd_parse_wmsg/etcd_parse_event as
 *      the watch thread does;
 *   1: a unary answer: error mapping, then range / txn / lease parsers;
 *   2: a non-200 answer with the HTTP status taken from the next two bytes.
 */
#include <config.h>

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "etcd_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check_err(int rc, const struct vf_err *err)
{
	if (rc != VF_OK)
		assert(strchr(err->msg, '\n') == NULL);
}

static int fuzz_wmsg(yajl_val msg, void *arg)
{
	struct etcd_wmsg m;
	struct vf_err err = {0};
	int rc = etcd_parse_wmsg(msg, &m, &err);

	(void)arg;
	fuzz_check_err(rc, &err);
	if (rc != VF_OK || m.events == NULL || !YAJL_IS_ARRAY(m.events))
		return 0;
	for (size_t i = 0; i < m.events->u.array.len; i++) {
		struct vf_kv_event ev;
		char *key = NULL, *val = NULL;

		memset(&ev, 0, sizeof(ev));
		rc = etcd_parse_event(m.events->u.array.values[i], &ev, &key, &val, &err);
		fuzz_check_err(rc, &err);
		if (rc == VF_OK) {
			assert(ev.key != NULL);
			/* touch every byte: ASan reports a short buffer */
			if (ev.value_len > 0)
				assert(ev.value != NULL && memchr(ev.value, 0, ev.value_len + 1));
		}
		free(key);
		free(val);
	}
	return 0;
}

static void fuzz_stream(const uint8_t *data, size_t size)
{
	struct etcd_stream s;
	struct vf_err err = {0};
	size_t chunk, off = 0;

	if (size < 1)
		return;
	chunk = (size_t)data[0] + 1;
	data++, size--;
	memset(&s, 0, sizeof(s));
	while (off < size) {
		size_t n = size - off < chunk ? size - off : chunk;
		int rc = etcd_stream_feed(&s, (const char *)data + off, n, fuzz_wmsg, NULL, &err);

		fuzz_check_err(rc, &err);
		if (rc != VF_OK)
			break;
		off += n;
	}
	etcd_stream_free(&s);
}

static void fuzz_unary(const uint8_t *data, size_t size)
{
	struct vf_err err = {0};
	yajl_val tree = NULL;
	struct vf_kv_list l = {0};
	struct vf_kv_pair p = {0};
	struct vf_kv_txn_result res = {0};
	struct vf_kv_op ops[3] = {
	        {.kind = VF_OP_GET, .key = "a"},
	        {.kind = VF_OP_PUT, .key = "b", .value = "x", .value_len = 1},
	        {.kind = VF_OP_DELETE, .key = "c"},
	};
	int64_t id = 0, ttl64 = 0;
	int ttl = 0, reauth = 0, rc;

	rc = etcd_map_error(200, (const char *)data, size, 1, &reauth, "fuzz", &err);
	fuzz_check_err(rc, &err);
	if (vf_json_parse((const char *)data, size, &tree, &err) != VF_OK)
		return;
	(void)etcd_header_revision(tree);
	(void)etcd_txn_succeeded(tree);
	rc = etcd_parse_range(tree, tree, &l, &err);
	fuzz_check_err(rc, &err);
	vf_kv_list_clear(&l);
	rc = etcd_parse_first(tree, &p, &err);
	fuzz_check_err(rc, &err);
	vf_kv_pair_clear(&p);
	for (size_t i = 0; i < 3; i++) {
		yajl_val r = etcd_txn_resp(tree, i, "response_range");

		if (r != NULL) {
			rc = etcd_parse_range(r, tree, &l, &err);
			fuzz_check_err(rc, &err);
			vf_kv_list_clear(&l);
		}
	}
	rc = etcd_parse_txn_results(tree, ops, 3, &res, &err);
	fuzz_check_err(rc, &err);
	if (rc == VF_OK)
		vf_kv_txn_result_clear(&res);
	rc = etcd_parse_lease_grant(tree, &id, &ttl, &err);
	fuzz_check_err(rc, &err);
	rc = etcd_parse_keepalive(tree, &ttl64, &err);
	fuzz_check_err(rc, &err);
	yajl_tree_free(tree);
}

static void fuzz_error(const uint8_t *data, size_t size)
{
	struct vf_err err = {0};
	int reauth = 0, rc;
	long status;

	if (size < 2)
		return;
	status = 100 + (data[0] << 8 | data[1]) % 500;
	rc = etcd_map_error(status, (const char *)data + 2, size - 2, data[0] & 1, &reauth,
	                    "fuzz key", &err);
	assert(rc != VF_OK || status == 200);
	fuzz_check_err(rc, &err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		fuzz_stream(data + 1, size - 1);
		break;
	case 1:
		fuzz_unary(data + 1, size - 1);
		break;
	default:
		fuzz_error(data + 1, size - 1);
		break;
	}
	return 0;
}
