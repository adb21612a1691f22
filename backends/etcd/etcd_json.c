/*
 * etcd 3.4 gRPC-gateway JSON: request builders and response parsers, no I/O.
 * Rules (WIRE.md 1.1): bytes are base64, int64 are strings (we send strings
 * too), fields with default values are omitted (absent = zero), errors are
 * {"error","message","code"} with the gRPC code, streams are one JSON message
 * per line.
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "etcd_int.h"

/* ---- errors ---- */

static int json_has(const char *msg, const char *needle)
{
	return msg && strstr(msg, needle) != NULL;
}

/* Errors etcd returns before a request reaches raft: nothing was applied. */
static int etcd_not_proposed(const char *msg)
{
	/* a learner (embedded cluster, issue 15) refuses before proposing anything */
	return json_has(msg, "no leader") || json_has(msg, "too many requests") ||
	       json_has(msg, "not supported for learner");
}

int etcd_failover_answer(long status, const char *body, size_t len, int idempotent)
{
	yajl_val tree = NULL;
	const char *msg = NULL;
	int rc;

	if (status != 503 && status != 504)
		return 0;
	if (idempotent)
		return 1;
	if (body && len > 0 && vf_json_parse(body, len, &tree, NULL) == VF_OK) {
		msg = vf_json_str(vf_json_get(tree, "message", NULL));
		if (msg == NULL)
			msg = vf_json_str(vf_json_get(tree, "error", NULL));
	}
	rc = msg && etcd_not_proposed(msg);
	yajl_tree_free(tree);
	return rc;
}

int etcd_map_error(long status, const char *body, size_t len, int idempotent, int *reauth_r,
                   const char *what, struct vf_err *err)
{
	yajl_val tree = NULL;
	const char *msg = NULL;
	int64_t code = -1;
	int rc;

	if (reauth_r)
		*reauth_r = 0;
	if (body && len > 0 && vf_json_parse(body, len, &tree, NULL) == VF_OK) {
		msg = vf_json_str(vf_json_get(tree, "message", NULL));
		if (msg == NULL)
			msg = vf_json_str(vf_json_get(tree, "error", NULL));
		if (msg == NULL) /* in-band stream error */
			msg = vf_json_str(vf_json_get(tree, "error", "message", NULL));
		if (vf_json_get(tree, "code", NULL) &&
		    vf_json_int64(vf_json_get(tree, "code", NULL), &code) != VF_OK)
			code = -1;
		if (code < 0 && vf_json_get(tree, "error", "grpc_code", NULL))
			vf_json_int64(vf_json_get(tree, "error", "grpc_code", NULL), &code);
	}
	if (msg == NULL) {
		/* A write that met a 5xx without etcd's error body may have been
		 * forwarded and applied: only a read is safely "unavailable". */
		rc = status >= 500 ? (idempotent ? VF_EUNAVAIL : VF_EUNCERTAIN) : VF_EPROTO;
		vf_err_set(err, rc, "%s: etcd: unexpected answer (HTTP %ld)", what, status);
		goto out;
	}
	if (code == 16 || json_has(msg, "invalid auth token") ||
	    json_has(msg, "revision of auth store is old") || json_has(msg, "auth revision")) {
		rc = VF_EAUTH;
		if (reauth_r)
			*reauth_r = 1;
	} else if (json_has(msg, "authentication failed") || json_has(msg, "user name is empty") ||
	           json_has(msg, "permission denied") || json_has(msg, "not capable") ||
	           code == 7 || status == 401 || status == 403)
		rc = VF_EAUTH;
	else if (json_has(msg, "lease not found"))
		rc = VF_ELEASE;
	else if (json_has(msg, "too many operations") || json_has(msg, "too large") ||
	         json_has(msg, "duplicate key") || json_has(msg, "space exceeded") || code == 8)
		rc = VF_ELIMIT;
	else if (json_has(msg, "timed out") || code == 4 || status == 504)
		rc = idempotent ? VF_EUNAVAIL : VF_EUNCERTAIN;
	else if (code == 14 || status == 503 || json_has(msg, "no leader") ||
	         json_has(msg, "leader changed") || json_has(msg, "not started"))
		/* Unavailable after the write was proposed ("leader changed", "server
		 * stopped", ...) may still apply: uncertain, unless etcd refused it
		 * before proposing. */
		rc = idempotent || etcd_not_proposed(msg) ? VF_EUNAVAIL : VF_EUNCERTAIN;
	else if (code == 5 || status == 404)
		rc = VF_ENOTFOUND;
	else if (code == 3 || code == 9 || code == 11 || status == 400)
		rc = VF_EINVAL;
	else
		rc = VF_EPROTO;
	vf_err_set(err, rc, "%s: etcd: %s (HTTP %ld)", what, msg, status);
out:
	if (err)
		err->http_status = status;
	yajl_tree_free(tree);
	return rc;
}

/* ---- keys ---- */

int etcd_prefix_range(const char *prefix, char **key_r, size_t *klen_r, char **end_r,
                      size_t *elen_r)
{
	size_t n = strlen(prefix), e = n;

	*key_r = *end_r = NULL;
	while (e > 0 && (unsigned char)prefix[e - 1] == 0xff)
		e--;
	if (e == 0) { /* everything: key "\0", range_end "\0" */
		*key_r = calloc(1, 2);
		*end_r = calloc(1, 2);
		*klen_r = *elen_r = 1;
	} else {
		*key_r = strdup(prefix);
		*end_r = strndup(prefix, e);
		*klen_r = n;
		*elen_r = e;
		if (*end_r)
			(*end_r)[e - 1] = (char)((unsigned char)(*end_r)[e - 1] + 1);
	}
	if (*key_r == NULL || *end_r == NULL) {
		free(*key_r);
		free(*end_r);
		*key_r = *end_r = NULL;
		return VF_ENOMEM;
	}
	return VF_OK;
}

/* ---- generator ---- */

yajl_gen etcd_gen_new(void)
{
	yajl_gen g = yajl_gen_alloc(NULL);

	if (g)
		yajl_gen_map_open(g);
	return g;
}

void etcd_gen_bytes(yajl_gen g, const char *name, const char *data, size_t len)
{
	char *b = vf_b64_encode(data, len);

	vf_jgen_str(g, name);
	if (b)
		vf_jgen_str(g, b);
	else
		yajl_gen_null(g); /* out of memory: etcd refuses the request */
	free(b);
}

void etcd_gen_i64(yajl_gen g, const char *name, int64_t v)
{
	char s[32];

	snprintf(s, sizeof(s), "%" PRId64, v);
	vf_jgen_str(g, name);
	vf_jgen_str(g, s);
}

void etcd_gen_range(yajl_gen g, const char *key, size_t klen, const char *end, size_t elen,
                    const struct etcd_range_opt *o)
{
	yajl_gen_map_open(g);
	etcd_gen_bytes(g, "key", key, klen);
	if (end)
		etcd_gen_bytes(g, "range_end", end, elen);
	if (o && o->limit)
		etcd_gen_i64(g, "limit", o->limit);
	if (o && o->sort_order) {
		vf_jgen_str(g, "sort_order");
		vf_jgen_str(g, o->sort_order);
	}
	if (o && o->sort_target) {
		vf_jgen_str(g, "sort_target");
		vf_jgen_str(g, o->sort_target);
	}
	if (o && o->max_create_revision)
		etcd_gen_i64(g, "max_create_revision", o->max_create_revision);
	if (o && o->count_only) {
		vf_jgen_str(g, "count_only");
		yajl_gen_bool(g, 1);
	}
	yajl_gen_map_close(g);
}

void etcd_gen_put(yajl_gen g, const char *key, const char *value, size_t vlen, int64_t lease)
{
	yajl_gen_map_open(g);
	etcd_gen_bytes(g, "key", key, strlen(key));
	etcd_gen_bytes(g, "value", value ? value : "", value ? vlen : 0);
	if (lease)
		etcd_gen_i64(g, "lease", lease);
	yajl_gen_map_close(g);
}

void etcd_gen_delete(yajl_gen g, const char *key)
{
	yajl_gen_map_open(g);
	etcd_gen_bytes(g, "key", key, strlen(key));
	yajl_gen_map_close(g);
}

static void json_gen_op(yajl_gen g, const char *kind)
{
	yajl_gen_map_open(g);
	vf_jgen_str(g, kind);
}

void etcd_gen_cmp_rev(yajl_gen g, const char *target, const char *key, int64_t v)
{
	const char *field = strcmp(target, "MOD") == 0      ? "mod_revision"
	                    : strcmp(target, "CREATE") == 0 ? "create_revision"
	                                                    : "version";

	yajl_gen_map_open(g);
	vf_jgen_str(g, "target");
	vf_jgen_str(g, target);
	vf_jgen_str(g, "result");
	vf_jgen_str(g, "EQUAL");
	etcd_gen_bytes(g, "key", key, strlen(key));
	etcd_gen_i64(g, field, v);
	yajl_gen_map_close(g);
}

void etcd_gen_cmp_value(yajl_gen g, const char *key, const char *value, size_t vlen)
{
	yajl_gen_map_open(g);
	vf_jgen_str(g, "target");
	vf_jgen_str(g, "VALUE");
	vf_jgen_str(g, "result");
	vf_jgen_str(g, "EQUAL");
	etcd_gen_bytes(g, "key", key, strlen(key));
	etcd_gen_bytes(g, "value", value ? value : "", value ? vlen : 0);
	yajl_gen_map_close(g);
}

int etcd_gen_done(yajl_gen g, char **body_r, size_t *len_r, struct vf_err *err)
{
	int rc;

	*body_r = NULL;
	if (g == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory building an etcd request");
	yajl_gen_map_close(g);
	rc = vf_jgen_finish(g, body_r, len_r, err);
	yajl_gen_free(g);
	return rc;
}

/* Range of one key or a prefix as a RangeRequest object. */
static void json_gen_key_range(yajl_gen g, const char *key, int prefix,
                               const struct etcd_range_opt *o)
{
	char *k = NULL, *e = NULL;
	size_t kl = 0, el = 0;

	if (!prefix) {
		etcd_gen_range(g, key, strlen(key), NULL, 0, o);
		return;
	}
	if (etcd_prefix_range(key, &k, &kl, &e, &el) != VF_OK) {
		yajl_gen_null(g);
		return;
	}
	etcd_gen_range(g, k, kl, e, el, o);
	free(k);
	free(e);
}

/* {"request_range": <range>} */
static void json_gen_range_op(yajl_gen g, const char *key, int prefix,
                              const struct etcd_range_opt *o)
{
	json_gen_op(g, "request_range");
	json_gen_key_range(g, key, prefix, o);
	yajl_gen_map_close(g);
}

/* The owner of a lock: the waiter under prefix with the smallest create_revision. */
static const struct etcd_range_opt json_owner_opt = {1, "ASCEND", "CREATE", 0, 0};

static void json_gen_owner_op(yajl_gen g, const char *prefix)
{
	json_gen_range_op(g, prefix, 1, &json_owner_opt);
}

/* ---- builders ---- */

/* Body = the single object written by gen(g, ...) with its outer braces: we
 * generate into an already opened map, so unwrap by building fields directly. */
int etcd_build_range(const char *key, int prefix, char **body_r, size_t *len_r, struct vf_err *err)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	int rc;

	*body_r = NULL;
	if (g == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory building an etcd request");
	json_gen_key_range(g, key, prefix, NULL);
	rc = vf_jgen_finish(g, body_r, len_r, err);
	yajl_gen_free(g);
	return rc;
}

int etcd_build_put(const char *key, const char *value, size_t vlen, int64_t lease, char **body_r,
                   size_t *len_r, struct vf_err *err)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	int rc;

	*body_r = NULL;
	if (g == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory building an etcd request");
	etcd_gen_put(g, key, value, vlen, lease);
	rc = vf_jgen_finish(g, body_r, len_r, err);
	yajl_gen_free(g);
	return rc;
}

int etcd_build_delete(const char *key, char **body_r, size_t *len_r, struct vf_err *err)
{
	yajl_gen g = etcd_gen_new();

	if (g)
		etcd_gen_bytes(g, "key", key, strlen(key));
	return etcd_gen_done(g, body_r, len_r, err);
}

int etcd_build_cas(const char *key, const char *value, size_t vlen, int64_t expect, int64_t lease,
                   char **body_r, size_t *len_r, struct vf_err *err)
{
	yajl_gen g = etcd_gen_new();

	if (g == NULL)
		return etcd_gen_done(g, body_r, len_r, err);
	vf_jgen_str(g, "compare");
	yajl_gen_array_open(g);
	if (expect == 0)
		etcd_gen_cmp_rev(g, "CREATE", key, 0);
	else
		etcd_gen_cmp_rev(g, "MOD", key, expect);
	yajl_gen_array_close(g);
	vf_jgen_str(g, "success");
	yajl_gen_array_open(g);
	json_gen_op(g, "request_put");
	etcd_gen_put(g, key, value, vlen, lease);
	yajl_gen_map_close(g);
	yajl_gen_array_close(g);
	vf_jgen_str(g, "failure");
	yajl_gen_array_open(g);
	json_gen_range_op(g, key, 0, NULL);
	yajl_gen_array_close(g);
	return etcd_gen_done(g, body_r, len_r, err);
}

int etcd_build_cas_del(const char *key, int64_t mod_rev, int64_t create_rev, char **body_r,
                       size_t *len_r, struct vf_err *err)
{
	yajl_gen g = etcd_gen_new();

	if (g == NULL)
		return etcd_gen_done(g, body_r, len_r, err);
	vf_jgen_str(g, "compare");
	yajl_gen_array_open(g);
	if (create_rev)
		etcd_gen_cmp_rev(g, "CREATE", key, create_rev);
	else
		etcd_gen_cmp_rev(g, "MOD", key, mod_rev);
	yajl_gen_array_close(g);
	vf_jgen_str(g, "success");
	yajl_gen_array_open(g);
	json_gen_op(g, "request_delete_range");
	etcd_gen_delete(g, key);
	yajl_gen_map_close(g);
	yajl_gen_array_close(g);
	vf_jgen_str(g, "failure");
	yajl_gen_array_open(g);
	json_gen_range_op(g, key, 0, NULL);
	yajl_gen_array_close(g);
	return etcd_gen_done(g, body_r, len_r, err);
}

/* VF_EINVAL unless every compare of a generic txn is well formed. */
static int json_check_cmps(const struct vf_kv_cmp *cmps, size_t ncmp, const char *what,
                           struct vf_err *err)
{
	for (size_t i = 0; i < ncmp; i++) {
		const struct vf_kv_cmp *c = &cmps[i];
		int lock = c->kind == VF_CMP_LOCK_HELD;

		if ((lock && (c->lock == NULL || c->lock->key == NULL)) ||
		    (!lock && c->key == NULL) || c->kind < VF_CMP_VALUE_EQ ||
		    c->kind > VF_CMP_LOCK_FREE)
			return vf_err_set(err, VF_EINVAL, "%s: compare %zu is invalid (kind %d)",
			                  what, i, (int)c->kind);
	}
	return VF_OK;
}

static void json_gen_cmp_empty(yajl_gen g, const char *prefix);

/* The caller's compares as etcd Compare objects, into an open array. */
static void json_gen_cmps(yajl_gen g, const struct vf_kv_cmp *cmps, size_t ncmp)
{
	for (size_t i = 0; i < ncmp; i++) {
		const struct vf_kv_cmp *c = &cmps[i];

		switch (c->kind) {
		case VF_CMP_VALUE_EQ:
			etcd_gen_cmp_value(g, c->key, c->value, c->value_len);
			break;
		case VF_CMP_VERSION_EQ:
			if (c->mod_rev == 0)
				etcd_gen_cmp_rev(g, "CREATE", c->key, 0);
			else
				etcd_gen_cmp_rev(g, "MOD", c->key, c->mod_rev);
			break;
		case VF_CMP_ABSENT:
			etcd_gen_cmp_rev(g, "CREATE", c->key, 0);
			break;
		case VF_CMP_LOCK_HELD:
			etcd_gen_cmp_rev(g, "CREATE", c->lock->key, c->lock->fence);
			break;
		case VF_CMP_LOCK_FREE: {
			/* no waiter key at all under "<name>/.lock/" (see etcd_lock.c) */
			size_t n = strlen(c->key), m = strlen(ETCD_LOCK_SEG);
			char *pfx = malloc(n + m + 1);

			if (pfx == NULL) {
				yajl_gen_null(g); /* out of memory: etcd refuses the request */
				break;
			}
			memcpy(pfx, c->key, n);
			memcpy(pfx + n, ETCD_LOCK_SEG, m + 1);
			json_gen_cmp_empty(g, pfx);
			free(pfx);
			break;
		}
		}
	}
}

int etcd_build_txn(const struct vf_kv_cmp *cmps, size_t ncmp, const struct vf_kv_op *ops,
                   size_t nops, size_t max_ops, char **body_r, size_t *len_r, struct vf_err *err)
{
	yajl_gen g;
	int rc;

	*body_r = NULL;
	if (ncmp + nops > max_ops)
		return vf_err_set(err, VF_ELIMIT,
		                  "txn: %zu compares + %zu operations exceed etcd's limit of %zu",
		                  ncmp, nops, max_ops);
	if ((rc = json_check_cmps(cmps, ncmp, "txn", err)) != VF_OK)
		return rc;
	for (size_t i = 0; i < nops; i++) {
		const struct vf_kv_op *o = &ops[i];
		int lock = o->kind == VF_OP_UNLOCK;

		if ((lock && (o->lock == NULL || o->lock->key == NULL)) ||
		    (!lock && o->key == NULL) || o->kind < VF_OP_PUT || o->kind > VF_OP_UNLOCK)
			return vf_err_set(err, VF_EINVAL, "txn: operation %zu is invalid (kind %d)",
			                  i, (int)o->kind);
	}
	g = etcd_gen_new();
	if (g == NULL)
		return etcd_gen_done(g, body_r, len_r, err);
	if (ncmp) {
		vf_jgen_str(g, "compare");
		yajl_gen_array_open(g);
		json_gen_cmps(g, cmps, ncmp);
		yajl_gen_array_close(g);
	}
	if (nops) {
		vf_jgen_str(g, "success");
		yajl_gen_array_open(g);
		for (size_t i = 0; i < nops; i++) {
			const struct vf_kv_op *o = &ops[i];

			switch (o->kind) {
			case VF_OP_PUT:
				json_gen_op(g, "request_put");
				etcd_gen_put(g, o->key, o->value, o->value_len,
				             o->lease ? (int64_t)strtoull(o->lease->id, NULL, 16)
				                      : 0);
				break;
			case VF_OP_DELETE:
				json_gen_op(g, "request_delete_range");
				etcd_gen_delete(g, o->key);
				break;
			case VF_OP_GET:
				json_gen_op(g, "request_range");
				etcd_gen_range(g, o->key, strlen(o->key), NULL, 0, NULL);
				break;
			case VF_OP_UNLOCK:
				json_gen_op(g, "request_delete_range");
				etcd_gen_delete(g, o->lock->key);
				break;
			}
			yajl_gen_map_close(g);
		}
		yajl_gen_array_close(g);
	}
	return etcd_gen_done(g, body_r, len_r, err);
}

static void json_gen_reads(yajl_gen g, const char *const *reads, size_t nreads)
{
	for (size_t i = 0; i < nreads; i++)
		json_gen_range_op(g, reads[i], 0, NULL);
}

int etcd_build_lock_acquire(const char *waiter, const char *prefix, int64_t lease,
                            const char *const *reads, size_t nreads, char **body_r, size_t *len_r,
                            struct vf_err *err)
{
	yajl_gen g = etcd_gen_new();

	if (g == NULL)
		return etcd_gen_done(g, body_r, len_r, err);
	vf_jgen_str(g, "compare");
	yajl_gen_array_open(g);
	etcd_gen_cmp_rev(g, "CREATE", waiter, 0);
	yajl_gen_array_close(g);
	vf_jgen_str(g, "success");
	yajl_gen_array_open(g);
	json_gen_op(g, "request_put");
	etcd_gen_put(g, waiter, "", 0, lease);
	yajl_gen_map_close(g);
	json_gen_range_op(g, waiter, 0, NULL);
	json_gen_owner_op(g, prefix);
	json_gen_reads(g, reads, nreads);
	yajl_gen_array_close(g);
	vf_jgen_str(g, "failure");
	yajl_gen_array_open(g);
	json_gen_range_op(g, waiter, 0, NULL);
	json_gen_owner_op(g, prefix);
	json_gen_reads(g, reads, nreads);
	yajl_gen_array_close(g);
	return etcd_gen_done(g, body_r, len_r, err);
}

int etcd_build_lock_check(const char *waiter, const char *prefix, int64_t my_rev,
                          const char *const *reads, size_t nreads, char **body_r, size_t *len_r,
                          struct vf_err *err)
{
	struct etcd_range_opt pred = {1, "DESCEND", "CREATE", my_rev - 1, 0};
	yajl_gen g = etcd_gen_new();

	if (g == NULL)
		return etcd_gen_done(g, body_r, len_r, err);
	vf_jgen_str(g, "success");
	yajl_gen_array_open(g);
	json_gen_range_op(g, waiter, 0, NULL);
	json_gen_range_op(g, prefix, 1, &pred);
	json_gen_reads(g, reads, nreads);
	if (nreads == 0) { /* responses[2]: the waiters ahead of us (a few), see etcd_lock.c */
		struct etcd_range_opt ahead = {ETCD_LOCK_AHEAD_MAX, "ASCEND", "CREATE", my_rev - 1,
		                               0};

		json_gen_range_op(g, prefix, 1, &ahead);
	}
	yajl_gen_array_close(g);
	return etcd_gen_done(g, body_r, len_r, err);
}

int etcd_build_lock_pred(const char *waiter, const char *prefix, int64_t my_rev, char **body_r,
                         size_t *len_r, struct vf_err *err)
{
	return etcd_build_lock_check(waiter, prefix, my_rev, NULL, 0, body_r, len_r, err);
}

/* Compare "no key at all under prefix": VERSION == 0 over [prefix, prefix end). etcd
 * applies a ranged compare to every key in the range and to an absent key (version 0)
 * when the range is empty, so it holds exactly when nothing is there. */
static void json_gen_cmp_empty(yajl_gen g, const char *prefix)
{
	char *k = NULL, *e = NULL;
	size_t kl = 0, el = 0;

	if (etcd_prefix_range(prefix, &k, &kl, &e, &el) != VF_OK) {
		yajl_gen_null(g); /* out of memory: etcd refuses the request */
		return;
	}
	yajl_gen_map_open(g);
	vf_jgen_str(g, "target");
	vf_jgen_str(g, "VERSION");
	vf_jgen_str(g, "result");
	vf_jgen_str(g, "EQUAL");
	etcd_gen_bytes(g, "key", k, kl);
	etcd_gen_bytes(g, "range_end", e, el);
	etcd_gen_i64(g, "version", 0);
	yajl_gen_map_close(g);
	free(k);
	free(e);
}

int etcd_build_lock_many(const char *const *waiters, const char *const *prefixes, size_t n,
                         int64_t lease, const struct vf_kv_cmp *cmps, size_t ncmp, size_t max_ops,
                         char **body_r, size_t *len_r, struct vf_err *err)
{
	static const struct etcd_range_opt first = {1, NULL, NULL, 0, 0};
	yajl_gen g;
	int rc;

	*body_r = NULL;
	if (n + ncmp > max_ops)
		return vf_err_set(err, VF_ELIMIT,
		                  "lock_many: %zu names + %zu compares exceed etcd's limit of %zu",
		                  n, ncmp, max_ops);
	if ((rc = json_check_cmps(cmps, ncmp, "lock_many", err)) != VF_OK)
		return rc;
	g = etcd_gen_new();
	if (g == NULL)
		return etcd_gen_done(g, body_r, len_r, err);
	vf_jgen_str(g, "compare");
	yajl_gen_array_open(g);
	for (size_t i = 0; i < n; i++)
		json_gen_cmp_empty(g, prefixes[i]);
	json_gen_cmps(g, cmps, ncmp);
	yajl_gen_array_close(g);
	vf_jgen_str(g, "success");
	yajl_gen_array_open(g);
	for (size_t i = 0; i < n; i++) {
		json_gen_op(g, "request_put");
		etcd_gen_put(g, waiters[i], "", 0, lease);
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
	vf_jgen_str(g, "failure");
	yajl_gen_array_open(g);
	for (size_t i = 0; i < n; i++)
		json_gen_range_op(g, prefixes[i], 1, &first);
	yajl_gen_array_close(g);
	return etcd_gen_done(g, body_r, len_r, err);
}

int etcd_build_watch(const char *key, size_t klen, const char *end, size_t elen, int64_t start_rev,
                     char **body_r, size_t *len_r, struct vf_err *err)
{
	yajl_gen g = etcd_gen_new();

	if (g == NULL)
		return etcd_gen_done(g, body_r, len_r, err);
	vf_jgen_str(g, "create_request");
	yajl_gen_map_open(g);
	etcd_gen_bytes(g, "key", key, klen);
	if (end)
		etcd_gen_bytes(g, "range_end", end, elen);
	if (start_rev > 0)
		etcd_gen_i64(g, "start_revision", start_rev);
	yajl_gen_map_close(g);
	return etcd_gen_done(g, body_r, len_r, err);
}

int etcd_build_lease_grant(int ttl, char **body_r, size_t *len_r, struct vf_err *err)
{
	yajl_gen g = etcd_gen_new();

	if (g)
		etcd_gen_i64(g, "TTL", ttl);
	return etcd_gen_done(g, body_r, len_r, err);
}

int etcd_build_lease_id(int64_t id, char **body_r, size_t *len_r, struct vf_err *err)
{
	yajl_gen g = etcd_gen_new();

	if (g)
		etcd_gen_i64(g, "ID", id);
	return etcd_gen_done(g, body_r, len_r, err);
}

int etcd_build_auth(const char *name, const char *password, char **body_r, size_t *len_r,
                    struct vf_err *err)
{
	yajl_gen g = etcd_gen_new();

	if (g) {
		vf_jgen_str(g, "name");
		vf_jgen_str(g, name);
		vf_jgen_str(g, "password");
		vf_jgen_str(g, password ? password : "");
	}
	return etcd_gen_done(g, body_r, len_r, err);
}

int etcd_build_compact(int64_t rev, char **body_r, size_t *len_r, struct vf_err *err)
{
	yajl_gen g = etcd_gen_new();

	if (g) {
		etcd_gen_i64(g, "revision", rev);
		vf_jgen_str(g, "physical");
		yajl_gen_bool(g, 1);
	}
	return etcd_gen_done(g, body_r, len_r, err);
}

/* ---- parsers ---- */

int64_t etcd_header_revision(yajl_val tree)
{
	int64_t rev = 0;

	if (vf_json_int64(vf_json_get(tree, "header", "revision", NULL), &rev) != VF_OK)
		rev = 0;
	return rev;
}

int etcd_txn_succeeded(yajl_val tree)
{
	yajl_val v = vf_json_get(tree, "succeeded", NULL);

	return v != NULL && YAJL_IS_TRUE(v);
}

yajl_val etcd_txn_resp(yajl_val tree, size_t i, const char *kind)
{
	yajl_val a = vf_json_get(tree, "responses", NULL);

	if (a == NULL || !YAJL_IS_ARRAY(a) || i >= a->u.array.len)
		return NULL;
	return vf_json_get(a->u.array.values[i], kind, NULL);
}

static int json_b64(yajl_val v, char **out_r, size_t *len_r)
{
	const char *s = vf_json_str(v);

	if (v != NULL && s == NULL) {
		*out_r = NULL;
		return VF_EPROTO;
	}
	return vf_b64_decode(s ? s : "", out_r, len_r);
}

int etcd_parse_kv(yajl_val kv, struct vf_kv_pair *p, struct vf_err *err)
{
	size_t klen = 0;

	memset(p, 0, sizeof(*p));
	if (kv == NULL || !YAJL_IS_OBJECT(kv))
		return vf_err_set(err, VF_EPROTO, "etcd: key-value is not an object");
	if (json_b64(vf_json_get(kv, "key", NULL), &p->key, &klen) != VF_OK ||
	    json_b64(vf_json_get(kv, "value", NULL), &p->value, &p->value_len) != VF_OK ||
	    vf_json_int64(vf_json_get(kv, "mod_revision", NULL), &p->mod_rev) != VF_OK ||
	    vf_json_int64(vf_json_get(kv, "create_revision", NULL), &p->create_rev) != VF_OK) {
		vf_kv_pair_clear(p);
		return vf_err_set(err, VF_EPROTO, "etcd: malformed key-value");
	}
	return VF_OK;
}

int etcd_parse_range(yajl_val range, yajl_val tree, struct vf_kv_list *l, struct vf_err *err)
{
	yajl_val kvs = vf_json_get(range, "kvs", NULL);
	size_t n;

	memset(l, 0, sizeof(*l));
	l->revision = etcd_header_revision(tree ? tree : range);
	if (kvs == NULL)
		return VF_OK;
	if (!YAJL_IS_ARRAY(kvs))
		return vf_err_set(err, VF_EPROTO, "etcd: kvs is not an array");
	n = kvs->u.array.len;
	if (n == 0)
		return VF_OK;
	l->items = calloc(n, sizeof(*l->items));
	if (l->items == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		int rc = etcd_parse_kv(kvs->u.array.values[i], &l->items[i], err);

		if (rc != VF_OK) {
			vf_kv_list_clear(l);
			return rc;
		}
		l->count++;
	}
	return VF_OK;
}

int etcd_parse_first(yajl_val range, struct vf_kv_pair *p, struct vf_err *err)
{
	yajl_val kvs = vf_json_get(range, "kvs", NULL);

	memset(p, 0, sizeof(*p));
	if (kvs == NULL || !YAJL_IS_ARRAY(kvs) || kvs->u.array.len == 0)
		return VF_ENOTFOUND;
	return etcd_parse_kv(kvs->u.array.values[0], p, err);
}

int etcd_parse_txn_results(yajl_val tree, const struct vf_kv_op *ops, size_t nops,
                           struct vf_kv_txn_result *res, struct vf_err *err)
{
	yajl_val a = vf_json_get(tree, "responses", NULL);
	int64_t rev = etcd_header_revision(tree);
	int rc = VF_OK;

	memset(res, 0, sizeof(*res));
	res->revision = rev;
	if (nops == 0)
		return VF_OK;
	if (a == NULL || !YAJL_IS_ARRAY(a) || a->u.array.len != nops)
		return vf_err_set(err, VF_EPROTO,
		                  "txn: etcd answered %zu results for %zu operations",
		                  (a && YAJL_IS_ARRAY(a)) ? a->u.array.len : 0, nops);
	res->results = calloc(nops, sizeof(*res->results));
	if (res->results == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	res->count = nops;
	for (size_t i = 0; i < nops && rc == VF_OK; i++) {
		struct vf_kv_result *r = &res->results[i];
		const char *key = ops[i].kind == VF_OP_UNLOCK ? ops[i].lock->key : ops[i].key;
		int64_t deleted = 0;

		switch (ops[i].kind) {
		case VF_OP_GET:
			rc = etcd_parse_first(etcd_txn_resp(tree, i, "response_range"), &r->pair,
			                      err);
			r->found = rc == VF_OK;
			if (rc == VF_ENOTFOUND)
				rc = VF_OK;
			break;
		case VF_OP_PUT:
			r->found = 1;
			r->pair.mod_rev = rev;
			if ((r->pair.key = strdup(key)) == NULL)
				rc = vf_err_set(err, VF_ENOMEM, "out of memory");
			break;
		case VF_OP_DELETE:
		case VF_OP_UNLOCK:
			vf_json_int64(vf_json_get(etcd_txn_resp(tree, i, "response_delete_range"),
			                          "deleted", NULL),
			              &deleted);
			r->found = deleted > 0;
			r->pair.mod_rev = rev;
			break;
		}
	}
	if (rc != VF_OK)
		vf_kv_txn_result_clear(res);
	return rc;
}

int etcd_parse_lease_grant(yajl_val tree, int64_t *id_r, int *ttl_r, struct vf_err *err)
{
	int64_t id = 0, ttl = 0;

	if (vf_json_int64(vf_json_get(tree, "ID", NULL), &id) != VF_OK ||
	    vf_json_int64(vf_json_get(tree, "TTL", NULL), &ttl) != VF_OK || id == 0 || ttl <= 0)
		return vf_err_set(err, VF_EPROTO, "lease grant: etcd answered no lease ID or TTL");
	*id_r = id;
	*ttl_r = (int)ttl;
	return VF_OK;
}

int etcd_parse_keepalive(yajl_val tree, int64_t *ttl_r, struct vf_err *err)
{
	yajl_val r = vf_json_get(tree, "result", NULL);
	int64_t ttl = 0;

	*ttl_r = 0;
	if (r == NULL)
		r = tree;
	if (vf_json_get(tree, "error", NULL)) { /* in-band stream error */
		const char *msg = vf_json_str(vf_json_get(tree, "error", "message", NULL));

		return vf_err_set(err, VF_EUNAVAIL, "lease keepalive: etcd: %s",
		                  msg ? msg : "stream error");
	}
	if (!YAJL_IS_OBJECT(r) || vf_json_int64(vf_json_get(r, "TTL", NULL), &ttl) != VF_OK)
		return vf_err_set(err, VF_EPROTO, "lease keepalive: malformed answer");
	if (ttl <= 0)
		return vf_err_set(err, VF_ELEASE, "lease keepalive: the lease is gone");
	*ttl_r = ttl;
	return VF_OK;
}

/* ---- streams ---- */

int etcd_stream_feed(struct etcd_stream *s, const char *p, size_t n, etcd_msg_fn fn, void *arg,
                     struct vf_err *err)
{
	size_t start = 0;
	int rc = VF_OK;

	if (n > 0 && vf_buf_add(&s->buf, p, n) != VF_OK)
		return vf_err_set(err, VF_ENOMEM, "out of memory reading an etcd stream");
	for (size_t i = 0; i < s->buf.len && rc == VF_OK; i++) {
		yajl_val msg;
		size_t len = i - start;

		if (s->buf.data[i] != '\n')
			continue;
		while (len > 0 && (s->buf.data[start + len - 1] == '\r' ||
		                   s->buf.data[start + len - 1] == ' '))
			len--;
		if (len > 0) {
			rc = vf_json_parse(s->buf.data + start, len, &msg, err);
			if (rc == VF_OK) {
				rc = fn(msg, arg);
				yajl_tree_free(msg);
			}
		}
		start = i + 1;
	}
	if (start > 0) {
		memmove(s->buf.data, s->buf.data + start, s->buf.len - start);
		s->buf.len -= start;
		s->buf.data[s->buf.len] = '\0';
	}
	return rc;
}

void etcd_stream_free(struct etcd_stream *s)
{
	vf_buf_free(&s->buf);
}

int etcd_parse_wmsg(yajl_val msg, struct etcd_wmsg *m, struct vf_err *err)
{
	yajl_val r = vf_json_get(msg, "result", NULL), e = vf_json_get(msg, "error", NULL), v;

	memset(m, 0, sizeof(*m));
	if (e != NULL) {
		m->error = 1;
		m->reason = vf_json_str(e);
		if (m->reason == NULL)
			m->reason = vf_json_str(vf_json_get(e, "message", NULL));
		if (m->reason == NULL)
			m->reason = "stream error";
		return VF_OK;
	}
	if (r == NULL || !YAJL_IS_OBJECT(r))
		return vf_err_set(err, VF_EPROTO, "watch: message without result");
	m->revision = etcd_header_revision(r);
	m->created = (v = vf_json_get(r, "created", NULL)) != NULL && YAJL_IS_TRUE(v);
	m->canceled = (v = vf_json_get(r, "canceled", NULL)) != NULL && YAJL_IS_TRUE(v);
	m->reason = vf_json_str(vf_json_get(r, "cancel_reason", NULL));
	if (vf_json_int64(vf_json_get(r, "compact_revision", NULL), &m->compact_revision) !=
	            VF_OK ||
	    vf_json_int64(vf_json_get(r, "watch_id", NULL), &m->watch_id) != VF_OK)
		return vf_err_set(err, VF_EPROTO, "watch: malformed message");
	m->events = vf_json_get(r, "events", NULL);
	if (m->events && !YAJL_IS_ARRAY(m->events))
		return vf_err_set(err, VF_EPROTO, "watch: events is not an array");
	return VF_OK;
}

int etcd_parse_event(yajl_val ev, struct vf_kv_event *e, char **key_r, char **val_r,
                     struct vf_err *err)
{
	const char *type = vf_json_str(vf_json_get(ev, "type", NULL));
	struct vf_kv_pair p;
	int rc;

	memset(e, 0, sizeof(*e));
	*key_r = *val_r = NULL;
	rc = etcd_parse_kv(vf_json_get(ev, "kv", NULL), &p, err);
	if (rc != VF_OK)
		return rc;
	if (type == NULL || strcmp(type, "PUT") == 0)
		e->type = VF_EV_PUT;
	else if (strcmp(type, "DELETE") == 0)
		e->type = VF_EV_DELETE;
	else {
		vf_kv_pair_clear(&p);
		return vf_err_set(err, VF_EPROTO, "watch: unknown event type %s", type);
	}
	e->key = *key_r = p.key;
	e->value = *val_r = p.value;
	e->value_len = e->type == VF_EV_DELETE ? 0 : p.value_len;
	e->mod_rev = p.mod_rev;
	e->create_rev = p.create_rev;
	e->revision = p.mod_rev;
	return VF_OK;
}
