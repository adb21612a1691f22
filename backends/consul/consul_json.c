/*
 * Consul backend, pure layer: builds /v1/txn and session bodies and parses
 * Consul's answers (KV entries, txn results and errors, sessions), maps HTTP
 * statuses to vf codes, and diffs two listings into watch events. No I/O, so
 * the unit test feeds it saved responses from Consul 1.8.7.
 */
#include <config.h>

#include <ctype.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "consul_int.h"

static const char *const consul_verbs[] = {
        [CONSUL_SET] = "set",
        [CONSUL_DELETE] = "delete",
        [CONSUL_GET] = "get",
        [CONSUL_GET_TREE] = "get-tree",
        [CONSUL_CHECK_INDEX] = "check-index",
        [CONSUL_CHECK_NOT_EXISTS] = "check-not-exists",
        [CONSUL_CHECK_SESSION] = "check-session",
        [CONSUL_LOCK] = "lock",
        [CONSUL_UNLOCK] = "unlock",
        [CONSUL_CAS] = "cas",
};

const char *consul_verb_name(enum consul_verb verb)
{
	if ((size_t)verb >= sizeof(consul_verbs) / sizeof(consul_verbs[0]) || !consul_verbs[verb])
		return "?";
	return consul_verbs[verb];
}

/* From agent/consul/state/txn.go (1.8.7): every verb whose state function
 * returns an entry yields one result; deletes and check-not-exists none;
 * get-tree one per entry under the key. */
int consul_verb_nresults(enum consul_verb verb)
{
	switch (verb) {
	case CONSUL_DELETE:
	case CONSUL_CHECK_NOT_EXISTS:
		return 0;
	case CONSUL_GET_TREE:
		return -1;
	default:
		return 1;
	}
}

/* Pick get-tree for read op i when no later op's key starts with its key, so
 * that its run of results is unambiguous; else get (fails on a missing key,
 * then converted to check-not-exists and retried). Consul 1.8.7 has no
 * get-or-empty verb ("unknown KV verb", observed). */
void consul_choose_read_verbs(struct consul_txn_op *ops, size_t nops, const int *is_read)
{
	for (size_t i = 0; i < nops; i++) {
		size_t kl;

		if (!is_read[i])
			continue;
		kl = strlen(ops[i].key);
		ops[i].verb = CONSUL_GET_TREE;
		for (size_t j = i + 1; j < nops; j++)
			if (strncmp(ops[j].key, ops[i].key, kl) == 0)
				ops[i].verb = CONSUL_GET;
	}
}

int consul_txn_build(const struct consul_txn_op *ops, size_t nops, char **body_r, size_t *len_r,
                     struct vf_err *err)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	int rc = VF_OK;

	*body_r = NULL;
	if (g == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	yajl_gen_array_open(g);
	for (size_t i = 0; i < nops && rc == VF_OK; i++) {
		const struct consul_txn_op *op = &ops[i];

		yajl_gen_map_open(g);
		vf_jgen_str(g, "KV");
		yajl_gen_map_open(g);
		vf_jgen_str(g, "Verb");
		vf_jgen_str(g, consul_verb_name(op->verb));
		vf_jgen_str(g, "Key");
		vf_jgen_str(g, op->key);
		if (op->verb == CONSUL_SET || op->verb == CONSUL_CAS || op->verb == CONSUL_LOCK ||
		    op->verb == CONSUL_UNLOCK) {
			char *v = vf_b64_encode(op->value ? op->value : "",
			                        op->value ? op->value_len : 0);
			if (v == NULL) {
				rc = vf_err_set(err, VF_ENOMEM, "out of memory");
				break;
			}
			vf_jgen_str(g, "Value");
			vf_jgen_str(g, v);
			free(v);
		}
		if (op->verb == CONSUL_CHECK_INDEX || op->verb == CONSUL_CAS) {
			vf_jgen_str(g, "Index");
			vf_jgen_int(g, op->index);
		}
		if (op->session && (op->verb == CONSUL_LOCK || op->verb == CONSUL_UNLOCK ||
		                    op->verb == CONSUL_CHECK_SESSION)) {
			vf_jgen_str(g, "Session");
			vf_jgen_str(g, op->session);
		}
		yajl_gen_map_close(g);
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
	if (rc == VF_OK)
		rc = vf_jgen_finish(g, body_r, len_r, err);
	yajl_gen_free(g);
	return rc;
}

int consul_entry_parse(yajl_val v, struct vf_kv_pair *pair_r, struct vf_err *err)
{
	const char *key = vf_json_str(vf_json_get(v, "Key", NULL));
	yajl_val val = vf_json_get(v, "Value", NULL);
	int rc;

	memset(pair_r, 0, sizeof(*pair_r));
	if (key == NULL || !YAJL_IS_OBJECT(v))
		return vf_err_set(err, VF_EPROTO, "Consul KV entry without a Key");
	if (vf_json_int64(vf_json_get(v, "ModifyIndex", NULL), &pair_r->mod_rev) != VF_OK ||
	    vf_json_int64(vf_json_get(v, "CreateIndex", NULL), &pair_r->create_rev) != VF_OK)
		return vf_err_set(err, VF_EPROTO, "Consul KV entry %s: bad index", key);
	pair_r->key = strdup(key);
	if (pair_r->key == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	if (val == NULL || YAJL_IS_NULL(val)) {
		pair_r->value = strdup("");
		rc = pair_r->value ? VF_OK : VF_ENOMEM;
	} else if (YAJL_IS_STRING(val)) {
		rc = vf_b64_decode(YAJL_GET_STRING(val), &pair_r->value, &pair_r->value_len);
	} else {
		rc = VF_EPROTO;
	}
	if (rc != VF_OK) {
		vf_kv_pair_clear(pair_r);
		return vf_err_set(err, rc, "Consul KV entry %s: %s value", key,
		                  rc == VF_ENOMEM ? "out of memory for" : "bad base64");
	}
	return VF_OK;
}

int consul_get_parse(const char *body, size_t len, const char *key, struct vf_kv_pair *pair_r,
                     struct vf_err *err)
{
	yajl_val t;
	int rc = vf_json_parse(body, len, &t, err);

	memset(pair_r, 0, sizeof(*pair_r));
	if (rc != VF_OK)
		return vf_err_prefix(err, "GET %s", key);
	rc = vf_err_set(err, VF_ENOTFOUND, "key %s not found", key);
	if (!YAJL_IS_ARRAY(t)) {
		rc = vf_err_set(err, VF_EPROTO, "GET %s: answer is not an array", key);
		goto out;
	}
	for (size_t i = 0; i < t->u.array.len; i++) {
		const char *k = vf_json_str(vf_json_get(t->u.array.values[i], "Key", NULL));

		if (k && strcmp(k, key) == 0) {
			rc = consul_entry_parse(t->u.array.values[i], pair_r, err);
			break;
		}
	}
out:
	yajl_tree_free(t);
	return rc;
}

int consul_get_session_parse(const char *body, size_t len, const char *key, char *sid_r,
                             size_t sidsz, struct vf_err *err)
{
	yajl_val t;
	int rc = vf_json_parse(body, len, &t, err);

	sid_r[0] = '\0';
	if (rc != VF_OK)
		return vf_err_prefix(err, "GET %s", key);
	rc = vf_err_set(err, VF_ENOTFOUND, "key %s not found", key);
	for (size_t i = 0; YAJL_IS_ARRAY(t) && i < t->u.array.len; i++) {
		yajl_val e = t->u.array.values[i];
		const char *k = vf_json_str(vf_json_get(e, "Key", NULL));
		const char *s = vf_json_str(vf_json_get(e, "Session", NULL));

		if (k && strcmp(k, key) == 0) {
			snprintf(sid_r, sidsz, "%s", s ? s : "");
			rc = VF_OK;
			break;
		}
	}
	yajl_tree_free(t);
	return rc;
}

static int consul_pair_cmp(const void *a, const void *b)
{
	return strcmp(((const struct vf_kv_pair *)a)->key, ((const struct vf_kv_pair *)b)->key);
}

/*
 * Incremental parser of a GET /v1/kv/<prefix>?recurse answer: yajl callbacks
 * build the listing entry by entry (no tree, no copy of the body), keeping only
 * Key, ModifyIndex, CreateIndex and, when wanted, the decoded Value.
 */
enum consul_lp_field { LP_OTHER, LP_KEY, LP_VALUE, LP_MOD, LP_CREATE };

struct consul_lparse {
	yajl_handle h;
	char *prefix;
	size_t plen;
	const struct vf_kv_list *old; /* CONSUL_VALUES_CHANGED: compared with this */
	enum consul_values values;
	int depth, seen_array;
	struct vf_kv_list l;
	size_t cap;
	/* the entry being read */
	enum consul_lp_field field;
	char *key, *b64;
	int64_t mod, create;
	int have_mod, have_create, bad_index;
	/* first error, latched */
	int rc;
	struct vf_err err;
};

static void consul_lp_entry_reset(struct consul_lparse *p)
{
	free(p->key);
	free(p->b64);
	p->key = p->b64 = NULL;
	p->mod = p->create = 0;
	p->have_mod = p->have_create = p->bad_index = 0;
	p->field = LP_OTHER;
}

static int consul_lp_fail(struct consul_lparse *p, int rc, const char *msg, const char *key)
{
	if (p->rc == VF_OK) {
		size_t n;

		p->rc = rc;
		if (key)
			vf_err_set(&p->err, rc, "Consul KV entry %s: %s", key, msg);
		else
			vf_err_set(&p->err, rc, "%s", msg);
		/* one line: yajl's messages end in a newline */
		n = strcspn(p->err.msg, "\r\n");
		while (n > 0 && p->err.msg[n - 1] == ' ')
			n--;
		p->err.msg[n] = '\0';
	}
	return 0;
}

/* The value of old's entry for key unchanged (same indexes)? */
static int consul_lp_unchanged(const struct consul_lparse *p, const char *key, int64_t mod,
                               int64_t create)
{
	size_t lo = 0, hi = p->old ? p->old->count : 0;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(p->old->items[mid].key, key);

		if (c == 0)
			return p->old->items[mid].mod_rev == mod &&
			       p->old->items[mid].create_rev == create;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

static int consul_lp_entry_end(struct consul_lparse *p)
{
	struct vf_kv_pair *e;
	int keep;

	if (p->key == NULL) { /* not a KV entry: skipped, as consul_list_parse always did */
		consul_lp_entry_reset(p);
		return 1;
	}
	if (!p->have_mod || !p->have_create || p->bad_index)
		return consul_lp_fail(p, VF_EPROTO, "bad index", p->key);
	if (strncmp(p->key, p->prefix, p->plen) != 0) {
		consul_lp_entry_reset(p);
		return 1;
	}
	if (p->l.count == p->cap) {
		size_t nc = p->cap ? p->cap * 2 : 64;
		struct vf_kv_pair *ni = realloc(p->l.items, nc * sizeof(*ni));

		if (ni == NULL)
			return consul_lp_fail(p, VF_ENOMEM, "out of memory", NULL);
		p->l.items = ni;
		p->cap = nc;
	}
	keep = p->values == CONSUL_VALUES_ALL ||
	       (p->values == CONSUL_VALUES_CHANGED &&
	        !consul_lp_unchanged(p, p->key, p->mod, p->create));
	e = &p->l.items[p->l.count];
	memset(e, 0, sizeof(*e));
	if (keep) {
		int rc = p->b64 ? vf_b64_decode(p->b64, &e->value, &e->value_len)
		                : ((e->value = strdup("")) ? VF_OK : VF_ENOMEM);

		if (rc != VF_OK)
			return consul_lp_fail(p, rc,
			                      rc == VF_ENOMEM ? "out of memory for value"
			                                      : "bad base64 value",
			                      p->key);
	}
	e->key = p->key;
	p->key = NULL;
	e->mod_rev = p->mod;
	e->create_rev = p->create;
	p->l.count++;
	consul_lp_entry_reset(p);
	return 1;
}

static int consul_lp_null(void *ctx)
{
	struct consul_lparse *p = ctx;

	if (p->depth < 1)
		return consul_lp_fail(p, VF_EPROTO, "answer is not an array", NULL);
	if (p->depth == 2 && (p->field == LP_MOD || p->field == LP_CREATE))
		p->bad_index = 1;
	return 1;
}

static int consul_lp_bool(void *ctx, int v)
{
	(void)v;
	return consul_lp_null(ctx);
}

static int consul_lp_int(void *ctx, long long v)
{
	struct consul_lparse *p = ctx;

	if (p->depth < 1)
		return consul_lp_fail(p, VF_EPROTO, "answer is not an array", NULL);
	if (p->depth == 2 && p->field == LP_MOD)
		p->mod = v, p->have_mod = 1;
	else if (p->depth == 2 && p->field == LP_CREATE)
		p->create = v, p->have_create = 1;
	return 1;
}

static int consul_lp_double(void *ctx, double v)
{
	(void)v;
	return consul_lp_null(ctx);
}

static int consul_lp_string(void *ctx, const unsigned char *s, size_t n)
{
	struct consul_lparse *p = ctx;
	char **dst;

	if (p->depth < 1)
		return consul_lp_fail(p, VF_EPROTO, "answer is not an array", NULL);
	if (p->depth != 2)
		return 1;
	if (p->field == LP_MOD || p->field == LP_CREATE)
		p->bad_index = 1;
	if (p->field != LP_KEY && p->field != LP_VALUE)
		return 1;
	dst = p->field == LP_KEY ? &p->key : &p->b64;
	free(*dst);
	*dst = strndup((const char *)s, n);
	if (*dst == NULL)
		return consul_lp_fail(p, VF_ENOMEM, "out of memory", NULL);
	return 1;
}

static int consul_lp_map_key(void *ctx, const unsigned char *s, size_t n)
{
	struct consul_lparse *p = ctx;

	if (p->depth != 2)
		return 1;
#define LP_IS(name) (n == sizeof(name) - 1 && memcmp(s, name, n) == 0)
	p->field = LP_IS("Key")           ? LP_KEY
	           : LP_IS("Value")       ? LP_VALUE
	           : LP_IS("ModifyIndex") ? LP_MOD
	           : LP_IS("CreateIndex") ? LP_CREATE
	                                  : LP_OTHER;
#undef LP_IS
	return 1;
}

static int consul_lp_start_map(void *ctx)
{
	struct consul_lparse *p = ctx;

	if (p->depth < 1)
		return consul_lp_fail(p, VF_EPROTO, "answer is not an array", NULL);
	if (++p->depth == 2)
		consul_lp_entry_reset(p);
	return 1;
}

static int consul_lp_end_map(void *ctx)
{
	struct consul_lparse *p = ctx;

	if (p->depth-- == 2)
		return consul_lp_entry_end(p);
	return 1;
}

static int consul_lp_start_array(void *ctx)
{
	struct consul_lparse *p = ctx;

	if (p->depth == 0) {
		if (p->seen_array)
			return consul_lp_fail(p, VF_EPROTO, "answer is not an array", NULL);
		p->seen_array = 1;
	} else if (p->depth == 1) {
		return consul_lp_fail(p, VF_EPROTO, "answer holds an array, not an entry", NULL);
	}
	p->depth++;
	return 1;
}

static int consul_lp_end_array(void *ctx)
{
	struct consul_lparse *p = ctx;

	p->depth--;
	return 1;
}

static const yajl_callbacks consul_lp_callbacks = {
        .yajl_null = consul_lp_null,
        .yajl_boolean = consul_lp_bool,
        .yajl_integer = consul_lp_int,
        .yajl_double = consul_lp_double,
        .yajl_string = consul_lp_string,
        .yajl_start_map = consul_lp_start_map,
        .yajl_map_key = consul_lp_map_key,
        .yajl_end_map = consul_lp_end_map,
        .yajl_start_array = consul_lp_start_array,
        .yajl_end_array = consul_lp_end_array,
};

int consul_lparse_new(const char *prefix, const struct vf_kv_list *old, enum consul_values values,
                      struct consul_lparse **p_r)
{
	struct consul_lparse *p = calloc(1, sizeof(*p));

	*p_r = NULL;
	if (p == NULL || (p->prefix = strdup(prefix ? prefix : "")) == NULL) {
		free(p);
		return VF_ENOMEM;
	}
	p->h = yajl_alloc(&consul_lp_callbacks, NULL, p);
	if (p->h == NULL) {
		free(p->prefix);
		free(p);
		return VF_ENOMEM;
	}
	p->plen = strlen(p->prefix);
	p->old = old;
	p->values = values;
	*p_r = p;
	return VF_OK;
}

int consul_lparse_feed(struct consul_lparse *p, const char *data, size_t len)
{
	if (p->rc != VF_OK)
		return p->rc;
	if (yajl_parse(p->h, (const unsigned char *)data, len) != yajl_status_ok &&
	    p->rc == VF_OK) {
		unsigned char *m = yajl_get_error(p->h, 0, (const unsigned char *)data, len);

		consul_lp_fail(p, VF_EPROTO, m ? (const char *)m : "bad JSON", NULL);
		if (m)
			yajl_free_error(p->h, m);
	}
	return p->rc;
}

static int consul_lp_sorted(const struct vf_kv_list *l)
{
	for (size_t i = 1; i < l->count; i++)
		if (strcmp(l->items[i - 1].key, l->items[i].key) > 0)
			return 0;
	return 1;
}

int consul_lparse_finish(struct consul_lparse *p, struct vf_kv_list *list_r, struct vf_err *err)
{
	memset(list_r, 0, sizeof(*list_r));
	if (p->rc == VF_OK && yajl_complete_parse(p->h) != yajl_status_ok && p->rc == VF_OK) {
		unsigned char *m = yajl_get_error(p->h, 0, NULL, 0);

		consul_lp_fail(p, VF_EPROTO, m ? (const char *)m : "bad JSON", NULL);
		if (m)
			yajl_free_error(p->h, m);
	}
	if (p->rc == VF_OK && (!p->seen_array || p->depth != 0))
		consul_lp_fail(p, VF_EPROTO, "answer is not an array", NULL);
	if (p->rc != VF_OK) {
		if (err)
			*err = p->err;
		return p->rc;
	}
	if (!consul_lp_sorted(&p->l))
		qsort(p->l.items, p->l.count, sizeof(*p->l.items), consul_pair_cmp);
	if (p->l.count == 0) {
		free(p->l.items);
		p->l.items = NULL;
	} else if (p->l.count < p->cap) {
		struct vf_kv_pair *ni = realloc(p->l.items, p->l.count * sizeof(*ni));

		if (ni)
			p->l.items = ni;
	}
	*list_r = p->l;
	memset(&p->l, 0, sizeof(p->l));
	p->cap = 0;
	return VF_OK;
}

void consul_lparse_free(struct consul_lparse *p)
{
	if (p == NULL)
		return;
	yajl_free(p->h);
	consul_lp_entry_reset(p);
	vf_kv_list_clear(&p->l);
	free(p->prefix);
	free(p);
}

int consul_list_parse(const char *body, size_t len, const char *prefix, struct vf_kv_list *list_r,
                      struct vf_err *err)
{
	struct consul_lparse *p;
	int rc;

	memset(list_r, 0, sizeof(*list_r));
	if (consul_lparse_new(prefix, NULL, CONSUL_VALUES_ALL, &p) != VF_OK)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	consul_lparse_feed(p, body, len);
	rc = consul_lparse_finish(p, list_r, err);
	consul_lparse_free(p);
	if (rc != VF_OK)
		return vf_err_prefix(err, "list %s", prefix);
	return VF_OK;
}

int64_t consul_index_parse(const char *hdr)
{
	char *end;
	long long v;

	if (hdr == NULL || !isdigit((unsigned char)*hdr))
		return 0;
	v = strtoll(hdr, &end, 10);
	return *end == '\0' && v > 0 ? v : 0;
}

int consul_txn_results_parse(const char *body, size_t len, const struct consul_txn_op *ops,
                             size_t nops, struct vf_kv_result *res, int64_t *revision_r,
                             struct vf_err *err)
{
	yajl_val t, arr;
	size_t r = 0, nres;
	int rc;

	*revision_r = 0;
	for (size_t i = 0; i < nops; i++)
		memset(&res[i], 0, sizeof(res[i]));
	rc = vf_json_parse(body, len, &t, err);
	if (rc != VF_OK)
		return vf_err_prefix(err, "txn answer");
	arr = vf_json_get(t, "Results", NULL);
	nres = (arr && YAJL_IS_ARRAY(arr)) ? arr->u.array.len : 0;
	for (size_t i = 0; i < nops && rc == VF_OK; i++) {
		int want = consul_verb_nresults(ops[i].verb);
		size_t klen = strlen(ops[i].key);

		for (int taken = 0; want < 0 || taken < want; taken++) {
			yajl_val kv =
			        r < nres ? vf_json_get(arr->u.array.values[r], "KV", NULL) : NULL;
			const char *k = vf_json_str(vf_json_get(kv, "Key", NULL));
			struct vf_kv_pair p;

			if (want < 0 && (k == NULL || strncmp(k, ops[i].key, klen) != 0))
				break; /* end of this get-tree's run */
			if (k == NULL) {
				rc = vf_err_set(err, VF_EPROTO,
				                "txn answer: no result for op %zu (%s %s)", i,
				                consul_verb_name(ops[i].verb), ops[i].key);
				break;
			}
			r++;
			if (want < 0 && strcmp(k, ops[i].key) != 0)
				continue; /* a key below the one we asked for */
			rc = consul_entry_parse(kv, &p, err);
			if (rc != VF_OK)
				break;
			if (p.mod_rev > *revision_r)
				*revision_r = p.mod_rev;
			vf_kv_pair_clear(&res[i].pair);
			res[i].pair = p;
			res[i].found = 1;
		}
	}
	if (rc != VF_OK)
		vf_kv_results_clear(res, nops);
	yajl_tree_free(t);
	return rc;
}

enum consul_txn_fail consul_txn_fail_classify(const char *what)
{
	static const struct {
		const char *text;
		enum consul_txn_fail kind;
	} map[] = {
	        {"due to lock delay", CONSUL_FAIL_LOCK_DELAY},
	        {"invalid session", CONSUL_FAIL_BAD_SESSION},
	        {"failed session check", CONSUL_FAIL_SESSION},
	        {"lock is already held", CONSUL_FAIL_LOCK_HELD},
	        {"lock isn't held", CONSUL_FAIL_NOT_HELD},
	        {"failed to check session", CONSUL_FAIL_SESSION},
	        {"failed to check index", CONSUL_FAIL_COMPARE},
	        {"failed index check", CONSUL_FAIL_COMPARE},
	        {"index is stale", CONSUL_FAIL_COMPARE},
	        {"\" exists", CONSUL_FAIL_COMPARE},
	        {"doesn't exist", CONSUL_FAIL_MISSING},
	        {"ermission denied", CONSUL_FAIL_DENIED},
	        {"ACL not found", CONSUL_FAIL_DENIED},
	};

	if (what == NULL)
		return CONSUL_FAIL_OTHER;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strstr(what, map[i].text))
			return map[i].kind;
	return CONSUL_FAIL_OTHER;
}

int consul_txn_errors_parse(const char *body, size_t len, struct consul_txn_error **errs_r,
                            size_t *n_r, struct vf_err *err)
{
	yajl_val t, arr;
	int rc;

	*errs_r = NULL;
	*n_r = 0;
	rc = vf_json_parse(body, len, &t, err);
	if (rc != VF_OK)
		return vf_err_prefix(err, "txn error answer");
	arr = vf_json_get(t, "Errors", NULL);
	if (arr == NULL || !YAJL_IS_ARRAY(arr) || arr->u.array.len == 0) {
		rc = vf_err_set(err, VF_EPROTO, "txn rolled back without an error list");
		goto out;
	}
	*errs_r = calloc(arr->u.array.len, sizeof(**errs_r));
	if (*errs_r == NULL) {
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < arr->u.array.len; i++) {
		struct consul_txn_error *e = &(*errs_r)[i];
		const char *what = vf_json_str(vf_json_get(arr->u.array.values[i], "What", NULL));
		int64_t idx;

		if (vf_json_int64(vf_json_get(arr->u.array.values[i], "OpIndex", NULL), &idx) !=
		            VF_OK ||
		    idx < 0) {
			free(*errs_r);
			*errs_r = NULL;
			rc = vf_err_set(err, VF_EPROTO, "txn error without a valid OpIndex");
			goto out;
		}
		e->op_index = (size_t)idx;
		snprintf(e->what, sizeof(e->what), "%s", what ? what : "unknown error");
		e->kind = consul_txn_fail_classify(what);
	}
	*n_r = arr->u.array.len;
out:
	yajl_tree_free(t);
	return rc;
}

static int consul_body_has(const char *body, size_t len, const char *text)
{
	size_t tl = strlen(text);

	for (size_t i = 0; body && i + tl <= len; i++)
		if (memcmp(body + i, text, tl) == 0)
			return 1;
	return 0;
}

int consul_status_error(long status, const char *body, size_t len, int write, const char *what,
                        struct vf_err *err)
{
	char text[120];
	size_t n = 0;
	int rc;

	/* First line of the body, for the message (Consul answers plain text). */
	for (; body && n < len && n < sizeof(text) - 1 && body[n] != '\n'; n++)
		text[n] = isprint((unsigned char)body[n]) ? body[n] : ' ';
	text[n] = '\0';
	if (status == 403 || consul_body_has(body, len, "ACL not found") ||
	    consul_body_has(body, len, "ermission denied"))
		rc = vf_err_set(err, VF_EAUTH,
		                "%s: Consul refused the request (ACL: %s): check the token", what,
		                n ? text : "permission denied");
	else if (status == 404)
		rc = vf_err_set(err, VF_ENOTFOUND, "%s: not found", what);
	else if (status == 413)
		rc = vf_err_set(err, VF_ELIMIT, "%s: %s", what, n ? text : "request too large");
	else if (consul_body_has(body, len, "Invalid Session TTL"))
		rc = vf_err_set(err, VF_EINVAL, "%s: %s", what, text);
	else if (consul_body_has(body, len, "invalid session") ||
	         consul_body_has(body, len, "Invalid session"))
		rc = vf_err_set(err, VF_ELEASE, "%s: %s", what, text);
	else if (status == 400)
		rc = vf_err_set(err, VF_EINVAL, "%s: Consul refused the request: %s", what, text);
	else if (status == 429 || consul_body_has(body, len, "No cluster leader") ||
	         consul_body_has(body, len, "No path to datacenter"))
		rc = vf_err_set(err, VF_EUNAVAIL, "%s: Consul unavailable (HTTP %ld): %s", what,
		                status, text);
	else if (status >= 500)
		rc = vf_err_set(err, write ? VF_EUNCERTAIN : VF_EUNAVAIL,
		                "%s: Consul error (HTTP %ld): %s", what, status, text);
	else
		rc = vf_err_set(err, VF_EPROTO, "%s: unexpected HTTP %ld: %s", what, status, text);
	if (err)
		err->http_status = status;
	return rc;
}

int consul_session_body(const char *name, int ttl_s, const char *behavior, int lock_delay_ms,
                        const char *node, char **body_r, size_t *len_r, struct vf_err *err)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	char buf[32];
	int rc;

	*body_r = NULL;
	if (g == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	yajl_gen_map_open(g);
	vf_jgen_str(g, "Name");
	vf_jgen_str(g, name);
	vf_jgen_str(g, "TTL");
	snprintf(buf, sizeof(buf), "%ds", ttl_s);
	vf_jgen_str(g, buf);
	vf_jgen_str(g, "Behavior");
	vf_jgen_str(g, behavior);
	vf_jgen_str(g, "LockDelay");
	snprintf(buf, sizeof(buf), "%dms", lock_delay_ms);
	vf_jgen_str(g, buf);
	/* No serfHealth check: the TTL is the liveness signal (see WIRE.md 2.3). */
	vf_jgen_str(g, "NodeChecks");
	yajl_gen_array_open(g);
	yajl_gen_array_close(g);
	/* A node of our own: not the agent's, whose failure (as the other servers
	 * see it) would end the session whatever its checks (consul_session_node) */
	if (node && *node) {
		vf_jgen_str(g, "Node");
		vf_jgen_str(g, node);
	}
	yajl_gen_map_close(g);
	rc = vf_jgen_finish(g, body_r, len_r, err);
	yajl_gen_free(g);
	return rc;
}

int consul_node_register_body(const char *node, char **body_r, size_t *len_r, struct vf_err *err)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	int rc;

	*body_r = NULL;
	if (g == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	yajl_gen_map_open(g);
	vf_jgen_str(g, "Node");
	vf_jgen_str(g, node);
	/* the catalog wants an address; nothing connects to this node */
	vf_jgen_str(g, "Address");
	vf_jgen_str(g, "127.0.0.1");
	vf_jgen_str(g, "NodeMeta");
	yajl_gen_map_open(g);
	vf_jgen_str(g, "vfile");
	vf_jgen_str(g, "session-node");
	yajl_gen_map_close(g);
	yajl_gen_map_close(g);
	rc = vf_jgen_finish(g, body_r, len_r, err);
	yajl_gen_free(g);
	return rc;
}

int consul_failover_answer(long status, const char *body, size_t len, int idempotent)
{
	/* refused before the request reached raft: nothing was applied, any
	 * request may go to the next server */
	if (status == 429 ||
	    (status >= 500 && (consul_body_has(body, len, "No cluster leader") ||
	                       consul_body_has(body, len, "No path to datacenter"))))
		return 1;
	/* "Missing node registration" is an answer about the request, not the
	 * server: another server gives the same */
	if (consul_body_has(body, len, "Missing node registration"))
		return 0;
	return idempotent && status >= 500;
}

int consul_session_create_parse(const char *body, size_t len, char *id, size_t idsz,
                                struct vf_err *err)
{
	yajl_val t;
	const char *s;
	int rc = vf_json_parse(body, len, &t, err);

	if (rc != VF_OK)
		return vf_err_prefix(err, "session create");
	s = vf_json_str(vf_json_get(t, "ID", NULL));
	if (s == NULL || *s == '\0' || strlen(s) >= idsz)
		rc = vf_err_set(err, VF_EPROTO, "session create: answer without a valid ID");
	else
		snprintf(id, idsz, "%s", s);
	yajl_tree_free(t);
	return rc;
}

int consul_duration_s(const char *s, int *out_r)
{
	double total = 0;

	*out_r = 0;
	if (s == NULL || *s == '\0')
		return VF_EPROTO;
	while (*s) {
		char *end;
		double v = strtod(s, &end);

		if (end == s)
			return VF_EPROTO;
		s = end;
		if (strncmp(s, "ms", 2) == 0)
			v /= 1000, s += 2;
		else if (strncmp(s, "us", 2) == 0 || strncmp(s, "ns", 2) == 0)
			v = 0, s += 2;
		else if (*s == 'h')
			v *= 3600, s++;
		else if (*s == 'm')
			v *= 60, s++;
		else if (*s == 's')
			s++;
		else
			return VF_EPROTO;
		total += v;
	}
	/* "1e30s", "nans", "-5s": out of range, not a TTL (and (int) of them is UB). */
	if (!(total >= 0 && total <= INT_MAX))
		return VF_EPROTO;
	*out_r = (int)total;
	return VF_OK;
}

int consul_session_ttl_parse(const char *body, size_t len, int *ttl_s_r, struct vf_err *err)
{
	yajl_val t;
	int rc = vf_json_parse(body, len, &t, err);

	*ttl_s_r = 0;
	if (rc != VF_OK)
		return vf_err_prefix(err, "session answer");
	if (t == NULL || YAJL_IS_NULL(t) || (YAJL_IS_ARRAY(t) && t->u.array.len == 0)) {
		rc = vf_err_set(err, VF_ENOTFOUND, "session not found");
	} else if (!YAJL_IS_ARRAY(t)) {
		rc = vf_err_set(err, VF_EPROTO, "session answer is not an array");
	} else if (consul_duration_s(vf_json_str(vf_json_get(t->u.array.values[0], "TTL", NULL)),
	                             ttl_s_r) != VF_OK) {
		rc = vf_err_set(err, VF_EPROTO, "session answer without a valid TTL");
	}
	yajl_tree_free(t);
	return rc;
}

int consul_key_escape(struct vf_buf *b, const char *key)
{
	for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
		int rc;

		if (isalnum(*p) || *p == '/' || *p == '-' || *p == '.' || *p == '_' || *p == '~')
			rc = vf_buf_add(b, p, 1);
		else
			rc = vf_buf_printf(b, "%%%02X", *p);
		if (rc != VF_OK)
			return rc;
	}
	if (b->data == NULL)
		return vf_buf_add(b, "", 0);
	return VF_OK;
}

static int consul_event_cmp(const void *a, const void *b)
{
	const struct consul_event *x = a, *y = b;

	if (x->type != y->type)
		return x->type == VF_EV_PUT ? -1 : 1;
	if (x->mod_rev != y->mod_rev)
		return x->mod_rev < y->mod_rev ? -1 : 1;
	return strcmp(x->pair->key, y->pair->key);
}

int consul_list_diff(const struct vf_kv_list *old_l, const struct vf_kv_list *new_l,
                     struct consul_event **ev_r, size_t *n_r)
{
	size_t i = 0, j = 0, n = 0;
	struct consul_event *ev;

	*ev_r = NULL;
	*n_r = 0;
	ev = calloc(old_l->count + new_l->count + 1, sizeof(*ev));
	if (ev == NULL)
		return VF_ENOMEM;
	while (i < old_l->count || j < new_l->count) {
		int c = i >= old_l->count   ? 1
		        : j >= new_l->count ? -1
		                            : strcmp(old_l->items[i].key, new_l->items[j].key);

		if (c < 0) { /* gone */
			ev[n++] = (struct consul_event){VF_EV_DELETE, &old_l->items[i],
			                                new_l->revision};
			i++;
		} else if (c > 0) { /* new */
			ev[n++] = (struct consul_event){VF_EV_PUT, &new_l->items[j],
			                                new_l->items[j].mod_rev};
			j++;
		} else {
			if (old_l->items[i].mod_rev != new_l->items[j].mod_rev ||
			    old_l->items[i].create_rev != new_l->items[j].create_rev)
				ev[n++] = (struct consul_event){VF_EV_PUT, &new_l->items[j],
				                                new_l->items[j].mod_rev};
			i++, j++;
		}
	}
	qsort(ev, n, sizeof(*ev), consul_event_cmp);
	*ev_r = ev;
	*n_r = n;
	return VF_OK;
}

int64_t consul_next_index(int64_t prev, int64_t got, int *reset_r)
{
	*reset_r = 0;
	if (got < prev) { /* went backwards: snapshot restore, tombstone reap, new agent */
		*reset_r = 1;
		return 0;
	}
	return got < 1 ? 1 : got;
}
