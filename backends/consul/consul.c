/*
 * Consul backend driver (consul.so) for Consul 1.8's HTTP API: KV, /v1/txn,
 * sessions as leases, session locks with check-session fencing, and a prefix
 * watch built from blocking queries plus a diff of listings (Consul keeps no
 * event history). Wire details: /work/shared/WIRE.md section 2.
 *
 * Mapping:
 *  - versions are ModifyIndex / CreateIndex; a list's revision is X-Consul-Index.
 *  - every write goes through /v1/txn (one round trip) because the plain KV PUT
 *    answers only true/false and we must return the new ModifyIndex.
 *  - a vf lease is up to two sessions with the same TTL: one with Behavior
 *    "release" (its id is the lease id; locks use it) and one with Behavior
 *    "delete", created on the first put attached to the lease, so that keys put
 *    with the lease vanish when it ends while locks are merely released.
 *  - a key put with a lease is "lock"ed by the delete session (txn verb "lock").
 *  - the lock called N is the key N, locked by the release session; its fence is
 *    the key's ModifyIndex after the acquisition (grows with every acquisition
 *    even if the key is deleted in between, unlike LockIndex); VF_CMP_LOCK_HELD
 *    is "check-session" on N, which fails once the lock is released or the
 *    session invalidated.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>

#include "consul_int.h"

struct consul_kv *consul_of(struct vf_kv *kv)
{
	return (struct consul_kv *)kv;
}

/* ---- HTTP ---- */

/* Before the first request is trusted: does the endpoint answer as Consul?
 * GET /v1/status/leader must answer 200 with a JSON string (the leader's
 * address, "" while there is none); a plain web server answers 404 or HTML. */
static int consul_verify(struct consul_kv *ck, struct vf_err *err)
{
	struct vf_http_resp resp = {0};
	struct vf_http_req req = {
	        .method = "GET",
	        .path = "/v1/status/leader",
	        .headers = ck->hdrs,
	        .idempotent = 1,
	};
	int verified, rc;

	pthread_mutex_lock(&ck->mu);
	verified = ck->verified;
	pthread_mutex_unlock(&ck->mu);
	if (verified)
		return VF_OK;
	rc = vf_http_do(ck->http, &req, &resp, err);
	if (rc != VF_OK)
		return rc;
	if (resp.status == 403 || resp.status == 401) {
		rc = consul_status_error(resp.status, resp.body.data, resp.body.len, 0,
		                         "GET /v1/status/leader", err);
	} else {
		const char *b = resp.body.data ? resp.body.data : "";
		size_t n = resp.body.len;

		while (n && (b[n - 1] == '\n' || b[n - 1] == '\r' || b[n - 1] == ' '))
			n--;
		if (resp.status != 200 || n < 2 || b[0] != '"' || b[n - 1] != '"')
			rc = vf_err_set(err, VF_EPROTO,
			                "endpoint #%d does not answer as a Consul agent (GET "
			                "/v1/status/leader: HTTP %ld, %s): check consul.endpoints",
			                resp.endpoint + 1, resp.status,
			                resp.status == 200 ? "not a JSON string" : "expected 200");
	}
	if (rc == VF_OK) {
		pthread_mutex_lock(&ck->mu);
		ck->verified = 1;
		pthread_mutex_unlock(&ck->mu);
	}
	vf_http_resp_free(&resp);
	return rc;
}

/* One request; *resp is filled when VF_OK (any HTTP status). */
int consul_http(struct consul_kv *ck, const char *method, const char *path, const char *body,
                size_t body_len, int idempotent, long timeout_ms, volatile int *cancel,
                struct vf_http_resp *resp, struct vf_err *err)
{
	struct vf_http_req req = {
	        .method = method,
	        .path = path,
	        .body = body,
	        .body_len = body_len,
	        .headers = ck->hdrs,
	        .timeout_ms = timeout_ms,
	        .idempotent = idempotent,
	        .want_header = "X-Consul-Index",
	        .cancel = cancel,
	        .failover = consul_failover_answer,
	};
	int rc = consul_verify(ck, err);

	if (rc != VF_OK) {
		memset(resp, 0, sizeof(*resp));
		return rc;
	}
	return vf_http_do(ck->http, &req, resp, err);
}

/* A 404 without X-Consul-Index (Consul sends it with every KV answer): the
 * endpoint is some other HTTP server, whose 404 must not read as "no key". */
int consul_not_consul(const struct vf_http_resp *resp, struct vf_err *err)
{
	return vf_err_set(err, VF_EPROTO,
	                  "endpoint #%d answered HTTP 404 without X-Consul-Index: it is not a "
	                  "Consul agent (check consul.endpoints)",
	                  resp->endpoint + 1);
}

int consul_kv_path(struct vf_buf *b, const char *key, const char *query)
{
	int rc = vf_buf_add(b, "/v1/kv/", 7);

	if (rc == VF_OK)
		rc = consul_key_escape(b, key);
	if (rc == VF_OK && query && *query)
		rc = vf_buf_printf(b, "%s", query);
	return rc;
}

/* ---- values seen (VALUE_EQ without a read) ---- */

static void consul_seen_clear(struct consul_seen *e)
{
	free(e->key);
	free(e->value);
	memset(e, 0, sizeof(*e));
}

/* Remember that key had value at mod_rev (newer facts replace older ones). */
static void consul_seen_put(struct consul_kv *ck, const char *key, const char *value,
                            size_t value_len, int64_t mod_rev, const char *sid)
{
	struct consul_seen *e = NULL;
	char *k, *v;

	if (key == NULL || mod_rev <= 0 || value_len > CONSUL_SEEN_MAX_VALUE)
		return;
	pthread_mutex_lock(&ck->mu);
	for (size_t i = 0; i < CONSUL_SEEN_N && e == NULL; i++)
		if (ck->seen[i].key && strcmp(ck->seen[i].key, key) == 0)
			e = &ck->seen[i];
	if (e && e->mod_rev >= mod_rev) {
		pthread_mutex_unlock(&ck->mu);
		return;
	}
	if (e == NULL) {
		e = &ck->seen[ck->seen_next];
		ck->seen_next = (ck->seen_next + 1) % CONSUL_SEEN_N;
	}
	k = strdup(key);
	v = malloc(value_len + 1);
	consul_seen_clear(e);
	if (k && v) {
		memcpy(v, value ? value : "", value_len);
		v[value_len] = '\0';
		*e = (struct consul_seen){k, v, value_len, mod_rev, sid != NULL, ""};
		if (sid)
			snprintf(e->sid, sizeof(e->sid), "%s", sid);
	} else {
		free(k);
		free(v);
	}
	pthread_mutex_unlock(&ck->mu);
}

/* The ModifyIndex at which key was seen with exactly value, or 0. */
int64_t consul_seen_index(struct consul_kv *ck, const char *key, const char *value,
                          size_t value_len)
{
	int64_t idx = 0;

	pthread_mutex_lock(&ck->mu);
	for (size_t i = 0; i < CONSUL_SEEN_N; i++) {
		const struct consul_seen *e = &ck->seen[i];

		if (e->key && strcmp(e->key, key) == 0) {
			if (e->value_len == value_len &&
			    (value_len == 0 || memcmp(e->value, value, value_len) == 0))
				idx = e->mod_rev;
			break;
		}
	}
	pthread_mutex_unlock(&ck->mu);
	return idx;
}

/* Has this handle seen key lately (a guess that it exists)? */
int consul_seen_has(struct consul_kv *ck, const char *key)
{
	int has = 0;

	pthread_mutex_lock(&ck->mu);
	for (size_t i = 0; i < CONSUL_SEEN_N && !has; i++)
		has = ck->seen[i].key && strcmp(ck->seen[i].key, key) == 0;
	pthread_mutex_unlock(&ck->mu);
	return has;
}

/* The session that holds key after this handle's last write of it, if this
 * handle wrote it last as far as it knows (1), else 0. */
int consul_seen_sid(struct consul_kv *ck, const char *key, char *sid, size_t size)
{
	int known = 0;

	pthread_mutex_lock(&ck->mu);
	for (size_t i = 0; i < CONSUL_SEEN_N; i++)
		if (ck->seen[i].key && strcmp(ck->seen[i].key, key) == 0) {
			known = ck->seen[i].sid_known;
			snprintf(sid, size, "%s", ck->seen[i].sid);
			break;
		}
	pthread_mutex_unlock(&ck->mu);
	return known;
}

void consul_seen_forget(struct consul_kv *ck, const char *key)
{
	pthread_mutex_lock(&ck->mu);
	for (size_t i = 0; i < CONSUL_SEEN_N; i++)
		if (ck->seen[i].key && strcmp(ck->seen[i].key, key) == 0)
			consul_seen_clear(&ck->seen[i]);
	pthread_mutex_unlock(&ck->mu);
}

/* Remember what a committed txn read (found keys) and wrote (set verbs). */
void consul_seen_txn(struct consul_kv *ck, const struct consul_txn_op *ops, size_t nops,
                     const struct vf_kv_result *res)
{
	for (size_t i = 0; i < nops; i++) {
		if ((ops[i].verb == CONSUL_GET || ops[i].verb == CONSUL_GET_TREE) && res[i].found)
			consul_seen_put(ck, ops[i].key, res[i].pair.value, res[i].pair.value_len,
			                res[i].pair.mod_rev, NULL);
		else if ((ops[i].verb == CONSUL_SET || ops[i].verb == CONSUL_CAS ||
		          ops[i].verb == CONSUL_LOCK) &&
		         res[i].found)
			consul_seen_put(
			        ck, ops[i].key, ops[i].value, ops[i].value ? ops[i].value_len : 0,
			        res[i].pair.mod_rev,
			        ops[i].verb == CONSUL_LOCK && ops[i].session ? ops[i].session : "");
	}
}

/* ---- KV ---- */

int consul_get(struct vf_kv *kv, const char *key, struct vf_kv_pair *pair_r, struct vf_err *err)
{
	struct consul_kv *ck = consul_of(kv);
	struct vf_http_resp resp = {0};
	struct vf_buf path = {0};
	int rc;

	memset(pair_r, 0, sizeof(*pair_r));
	rc = vf_kv_key_check(key, VF_KEY, "get", err);
	if (rc != VF_OK)
		return rc;
	if (consul_kv_path(&path, key, ck->consistent ? "?consistent" : NULL) != VF_OK) {
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
		goto out;
	}
	rc = consul_http(ck, "GET", path.data, NULL, 0, 1, 0, NULL, &resp, err);
	if (rc != VF_OK)
		goto out;
	if (resp.status == 200) {
		rc = consul_get_parse(resp.body.data ? resp.body.data : "", resp.body.len, key,
		                      pair_r, err);
		if (rc == VF_OK)
			consul_seen_put(ck, key, pair_r->value, pair_r->value_len, pair_r->mod_rev,
			                NULL);
	} else if (resp.status == 404 && resp.header == NULL)
		rc = consul_not_consul(&resp, err);
	else if (resp.status == 404)
		rc = vf_err_set(err, VF_ENOTFOUND, "key %s not found", key);
	else
		rc = consul_status_error(resp.status, resp.body.data, resp.body.len, 0, key, err);
out:
	vf_http_resp_free(&resp);
	vf_buf_free(&path);
	return rc;
}

/* Streamed answer of a listing: fed to the parser as it arrives; the start of
 * the body is kept for the error message of a non-200 answer. */
struct consul_stream {
	struct consul_lparse *p;
	char head[256];
	size_t nhead;
};

static size_t consul_stream_data(const char *data, size_t n, void *arg)
{
	struct consul_stream *st = arg;
	size_t k = sizeof(st->head) - 1 - st->nhead;

	if (k > n)
		k = n;
	memcpy(st->head + st->nhead, data, k);
	st->nhead += k;
	st->head[st->nhead] = '\0';
	consul_lparse_feed(st->p, data, n); /* a parse error is latched, reported at the end */
	return n;
}

/* List prefix; with index > 0 a blocking query waiting up to wait_ms. The
 * answer is parsed as it arrives (no copy of the body, no JSON tree); values
 * as in consul_lparse_new (old: the previous listing for CONSUL_VALUES_CHANGED). */
int consul_list_ex(struct consul_kv *ck, const char *prefix, int64_t index, long wait_ms,
                   volatile int *cancel, const struct vf_kv_list *old, enum consul_values values,
                   struct vf_kv_list *list_r, struct vf_err *err)
{
	struct vf_http_resp resp = {0};
	struct vf_buf path = {0}, q = {0};
	struct consul_stream st = {0};
	struct vf_http_req req = {
	        .method = "GET",
	        .headers = ck->hdrs,
	        .idempotent = 1,
	        .want_header = "X-Consul-Index",
	        .on_data = consul_stream_data,
	        .arg = &st,
	        .cancel = cancel,
	};
	int rc;

	memset(list_r, 0, sizeof(*list_r));
	rc = vf_buf_printf(&q, "?recurse%s", ck->consistent ? "&consistent" : "");
	if (rc == VF_OK && index > 0) {
		rc = vf_buf_printf(&q, "&index=%" PRId64 "&wait=%ldms", index, wait_ms);
		/* Consul adds up to wait/16 of jitter. */
		req.timeout_ms = wait_ms + wait_ms / 16 + ck->timeout_ms;
		/* a server that hangs says nothing to a blocking query for its whole
		 * wait: leave it once other requests find it failing */
		req.leave_if_demoted = 1;
	} else {
		/* a plain listing answers at once: a server that hangs costs its
		 * share of the timeout, not all of it */
		req.stream_split = 1;
	}
	if (rc == VF_OK)
		rc = consul_kv_path(&path, prefix, q.data);
	if (rc != VF_OK) {
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
		goto out;
	}
	req.path = path.data;
	rc = consul_verify(ck, err);
	if (rc != VF_OK)
		goto out;
	/* After a lost answer vf_http asks the next endpoint, and the parser has
	 * then seen part of one answer and all of another: that cannot parse,
	 * so a 200 answer that does not parse is asked for once more. */
	for (int attempt = 0; attempt < 2; attempt++) {
		consul_lparse_free(st.p);
		vf_http_resp_free(&resp);
		st.p = NULL;
		st.nhead = 0;
		st.head[0] = '\0';
		if (consul_lparse_new(prefix, old, values, &st.p) != VF_OK) {
			rc = vf_err_set(err, VF_ENOMEM, "out of memory");
			goto out;
		}
		rc = vf_http_do(ck->http, &req, &resp, err);
		if (rc != VF_OK)
			goto out;
		if (resp.status != 200)
			break;
		rc = consul_lparse_finish(st.p, list_r, err);
		if (rc == VF_OK)
			break;
		vf_err_prefix(err, "list %s", prefix);
		if (rc != VF_EPROTO || (cancel && *cancel))
			goto out;
	}
	if (rc != VF_OK)
		goto out;
	if (resp.status == 404 && resp.header == NULL)
		rc = consul_not_consul(&resp, err);
	else if (resp.status != 200 && resp.status != 404) /* 404: nothing under prefix */
		rc = consul_status_error(resp.status, st.head, st.nhead, 0,
		                         *prefix ? prefix : "(all keys)", err);
	/* a stream gets no failover() from vf_http: a server that cannot serve
	 * (no leader, overloaded) is asked last from now on */
	if (rc != VF_OK && consul_failover_answer(resp.status, st.head, st.nhead, 1))
		vf_http_demote(ck->http, resp.endpoint);
	list_r->revision = consul_index_parse(resp.header);
out:
	consul_lparse_free(st.p);
	vf_http_resp_free(&resp);
	vf_buf_free(&path);
	vf_buf_free(&q);
	return rc;
}

static int consul_list(struct vf_kv *kv, const char *prefix, struct vf_kv_list *list_r,
                       struct vf_err *err)
{
	int rc = vf_kv_key_check(prefix, VF_KEY_PREFIX, "list", err);

	if (rc != VF_OK) {
		memset(list_r, 0, sizeof(*list_r));
		return rc;
	}
	return consul_list_ex(consul_of(kv), prefix, 0, 0, NULL, NULL, CONSUL_VALUES_ALL, list_r,
	                      err);
}

/* put / cas: [compare?] + set (or lock by the lease's delete session). */
static int consul_write(struct consul_kv *ck, const char *key, const char *value, size_t value_len,
                        int cas, int64_t expect, struct vf_kv_lease *lease, int64_t *mod_rev_r,
                        struct vf_err *err)
{
	struct consul_txn_op ops[2];
	struct vf_kv_result res[2];
	struct consul_bind binds[2] = {{0}};
	struct consul_txn_error *errs = NULL;
	char sid[64] = "";
	size_t n = 0, nerrs;
	int rc;

	rc = vf_kv_key_check(key, VF_KEY, cas ? "cas" : "put", err);
	if (rc != VF_OK)
		return rc;
	if (lease) {
		rc = consul_lease_del_session(ck, (struct consul_lease *)lease, sid, err);
		if (rc != VF_OK)
			return vf_err_prefix(err, "put %s", key);
	}
	if (cas)
		ops[n++] = (struct consul_txn_op){.verb = expect ? CONSUL_CHECK_INDEX
		                                                 : CONSUL_CHECK_NOT_EXISTS,
		                                  .key = key,
		                                  .index = expect};
	binds[n] = (struct consul_bind){.put = 1,
	                                .sid = lease ? sid : NULL,
	                                .mode = lease ? CB_LOCK
	                                        : (cas && !expect) || !consul_seen_has(ck, key)
	                                                ? CB_ABSENT
	                                                : CB_FREE,
	                                .noguard = cas && !expect};
	consul_bind_hint(ck, &binds[n], key);
	ops[n++] = (struct consul_txn_op){.verb = lease ? CONSUL_LOCK : CONSUL_SET,
	                                  .key = key,
	                                  .value = value,
	                                  .value_len = value_len,
	                                  .session = lease ? sid : NULL};
	rc = consul_txn_simple(ck, ops, n, binds, res, &errs, &nerrs, err);
	if (rc == VF_OK) {
		consul_seen_put(ck, key, value, value ? value_len : 0, res[n - 1].pair.mod_rev,
		                lease ? sid : "");
		if (mod_rev_r)
			*mod_rev_r = res[n - 1].pair.mod_rev;
		vf_kv_results_clear(res, n);
	} else if (rc == CONSUL_ROLLED_BACK) {
		rc = consul_txn_fail_rc(ops, errs, nerrs, err);
	}
	free(errs);
	return rc;
}

static int consul_put(struct vf_kv *kv, const char *key, const char *value, size_t value_len,
                      struct vf_kv_lease *lease, int64_t *mod_rev_r, struct vf_err *err)
{
	return consul_write(consul_of(kv), key, value, value_len, 0, 0, lease, mod_rev_r, err);
}

static int consul_cas(struct vf_kv *kv, const char *key, const char *value, size_t value_len,
                      int64_t expect, struct vf_kv_lease *lease, int64_t *mod_rev_r,
                      struct vf_err *err)
{
	return consul_write(consul_of(kv), key, value, value_len, 1, expect, lease, mod_rev_r, err);
}

/* del: [get, delete] in one txn, so a missing key is VF_ENOTFOUND (Consul's DELETE
 * says true for missing keys). cas_del: [check-index, delete] (delete-cas says
 * true for a missing key). */
static int consul_delete(struct consul_kv *ck, const char *key, int cas, int64_t expect,
                         struct vf_err *err)
{
	struct consul_txn_op ops[2];
	struct consul_txn_error *errs = NULL;
	size_t n = 0, nerrs;
	int rc;

	rc = vf_kv_key_check(key, VF_KEY, cas ? "cas_del" : "del", err);
	if (rc != VF_OK)
		return rc;
	if (!cas)
		ops[n++] = (struct consul_txn_op){.verb = CONSUL_GET, .key = key};
	else
		ops[n++] = (struct consul_txn_op){.verb = expect ? CONSUL_CHECK_INDEX
		                                                 : CONSUL_CHECK_NOT_EXISTS,
		                                  .key = key,
		                                  .index = expect};
	if (!cas || expect)
		ops[n++] = (struct consul_txn_op){.verb = CONSUL_DELETE, .key = key};
	rc = consul_txn_simple(ck, ops, n, NULL, NULL, &errs, &nerrs, err);
	if (rc == VF_OK)
		consul_seen_forget(ck, key);
	/* kv.h: cas_del(key, 0) of an absent key deleted nothing: VF_ENOTFOUND, as etcd */
	if (rc == VF_OK && cas && expect == 0)
		rc = vf_err_set(err, VF_ENOTFOUND, "cas_del %s: no such key", key);
	if (rc == CONSUL_ROLLED_BACK) {
		if (!cas && nerrs && errs[0].kind == CONSUL_FAIL_MISSING)
			rc = vf_err_set(err, VF_ENOTFOUND, "key %s not found", key);
		else
			rc = consul_txn_fail_rc(ops, errs, nerrs, err);
	}
	free(errs);
	return rc;
}

static int consul_del(struct vf_kv *kv, const char *key, struct vf_err *err)
{
	return consul_delete(consul_of(kv), key, 0, 0, err);
}

static int consul_cas_del(struct vf_kv *kv, const char *key, int64_t expect, struct vf_err *err)
{
	return consul_delete(consul_of(kv), key, 1, expect, err);
}

/* ---- open / close ---- */

static const char *const consul_known[] = {
        "endpoints",     "token",        "token_file",   "timeout_ms",  "connect_timeout_ms",
        "cacert",        "cert",         "key",          "consistency", "lock_delay_ms",
        "session_ttl_s", "watch_wait_s", "session_node", NULL,
};

/* Refuse value of setting name unless lo <= v <= hi, naming file:line:setting. */
static int consul_cfg_range(const config_setting_t *cfg, const char *name, int v, int lo, int hi,
                            const char *why, struct vf_err *err)
{
	char where[256] = "";

	if (v >= lo && v <= hi)
		return VF_OK;
	vf_cfg_where(cfg ? config_setting_get_member(cfg, name) : NULL, where, sizeof(where));
	return vf_err_set(err, VF_EINVAL, "%ssetting 'consul.%s' = %d is out of range (%d..%d%s%s)",
	                  where, name, v, lo, hi, why ? ": " : "", why ? why : "");
}

/* What consul_open reads from its config group before the handle takes it. */
struct consul_cfg {
	struct vf_http_cfg hc;
	char *token, *consistency, *addr, *snode;
	int timeout_ms, connect_ms;
};

/* Read the settings (and the consul CLI's environment where the config is
 * silent) into c and ck. */
static int consul_cfg_read(const config_setting_t *cfg, struct consul_kv *ck, struct consul_cfg *c,
                           struct vf_err *err)
{
	const char *env_addr = getenv("CONSUL_HTTP_ADDR");
	int rc;

	if (env_addr && *env_addr && strstr(env_addr, "://") == NULL) {
		const char *ssl = getenv("CONSUL_HTTP_SSL");
		int tls = ssl && (strcmp(ssl, "true") == 0 || strcmp(ssl, "1") == 0);

		if (asprintf(&c->addr, "%s://%s", tls ? "https" : "http", env_addr) < 0) {
			c->addr = NULL;
			return vf_err_set(err, VF_ENOMEM, "out of memory");
		}
	}
	if ((rc = vf_cfg_strv(cfg, "endpoints",
	                      c->addr                   ? c->addr
	                      : (env_addr && *env_addr) ? env_addr
	                                                : CONSUL_DEFAULT_ADDR,
	                      &c->hc.endpoints, &c->hc.nendpoints, err)) != VF_OK ||
	    /* token, token_file, the credential consul-token, then the consul CLI's
	     * environment; the same for TLS where the config is silent */
	    (rc = vf_cfg_secret(cfg, "consul", "token", "consul-token", "CONSUL_HTTP_TOKEN",
	                        "CONSUL_HTTP_TOKEN_FILE", &c->token, err)) != VF_OK ||
	    (rc = vf_cfg_int(cfg, "timeout_ms", 5000, &c->timeout_ms, err)) != VF_OK ||
	    (rc = vf_cfg_int(cfg, "connect_timeout_ms", 2000, &c->connect_ms, err)) != VF_OK ||
	    (rc = vf_cfg_str(cfg, "cacert", vf_env("CONSUL_CACERT"), &c->hc.cacert, err)) !=
	            VF_OK ||
	    (rc = vf_cfg_str(cfg, "cert", vf_env("CONSUL_CLIENT_CERT"), &c->hc.cert, err)) !=
	            VF_OK ||
	    (rc = vf_cfg_str(cfg, "key", vf_env("CONSUL_CLIENT_KEY"), &c->hc.key, err)) != VF_OK ||
	    (rc = vf_cfg_str(cfg, "consistency", "default", &c->consistency, err)) != VF_OK ||
	    (rc = vf_cfg_int(cfg, "lock_delay_ms", 0, &ck->lock_delay_ms, err)) != VF_OK ||
	    (rc = vf_cfg_int(cfg, "session_ttl_s", 0, &ck->session_ttl_s, err)) != VF_OK ||
	    (rc = vf_cfg_int(cfg, "watch_wait_s", 60, &ck->watch_wait_s, err)) != VF_OK ||
	    (rc = vf_cfg_str(cfg, "session_node", CONSUL_SESSION_NODE, &c->snode, err)) != VF_OK)
		return rc;
	return VF_OK;
}

/* consul.session_node: a node name ("": the agent's node), kept in ck unless "". */
static int consul_cfg_session_node(const config_setting_t *cfg, struct consul_kv *ck,
                                   struct consul_cfg *c, struct vf_err *err)
{
	const char *snode = c->snode;

	if (snode && (strlen(snode) > 100 ||
	              strspn(snode, "abcdefghijklmnopqrstuvwxyz"
	                            "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != strlen(snode))) {
		char where[256] = "";

		vf_cfg_where(cfg ? config_setting_get_member(cfg, "session_node") : NULL, where,
		             sizeof(where));
		return vf_err_set(
		        err, VF_EINVAL,
		        "%ssetting 'consul.session_node': \"%.100s\" is not a node name "
		        "(letters, digits, '-', '_', '.'; at most 100; \"\": the agent's node)",
		        where, snode);
	}
	if (snode && *snode) {
		ck->session_node = c->snode;
		c->snode = NULL;
	}
	return VF_OK;
}

/* consul.consistency: "default" or "consistent" (reads with ?consistent). */
static int consul_cfg_consistency(const config_setting_t *cfg, struct consul_kv *ck,
                                  const char *consistency, struct vf_err *err)
{
	char where[256] = "";

	if (strcmp(consistency, "default") == 0) {
		ck->consistent = 0;
		return VF_OK;
	}
	if (strcmp(consistency, "consistent") == 0) {
		ck->consistent = 1;
		return VF_OK;
	}
	vf_cfg_where(config_setting_get_member(cfg, "consistency"), where, sizeof(where));
	return vf_err_set(err, VF_EINVAL,
	                  "%ssetting 'consul.consistency' must be \"default\" or "
	                  "\"consistent\", not \"%s\"",
	                  where, consistency);
}

/* consul.endpoints: http:// or https:// URLs. */
static int consul_cfg_endpoints(const config_setting_t *cfg, const struct vf_http_cfg *hc,
                                struct vf_err *err)
{
	for (size_t i = 0; i < hc->nendpoints; i++)
		if (strncmp(hc->endpoints[i], "http://", 7) &&
		    strncmp(hc->endpoints[i], "https://", 8)) {
			char where[256] = "";

			vf_cfg_where(cfg ? config_setting_get_member(cfg, "endpoints") : NULL,
			             where, sizeof(where));
			return vf_err_set(err, VF_EINVAL,
			                  "%ssetting 'consul.endpoints': '%s' is not an http:// or "
			                  "https:// URL",
			                  where, hc->endpoints[i]);
		}
	return VF_OK;
}

/* Refuse settings out of their ranges or not of their forms. */
static int consul_cfg_check(const config_setting_t *cfg, struct consul_kv *ck, struct consul_cfg *c,
                            struct vf_err *err)
{
	int rc;

	if ((rc = consul_cfg_session_node(cfg, ck, c, err)) != VF_OK)
		return rc;
	if ((rc = consul_cfg_range(cfg, "timeout_ms", c->timeout_ms, 1, 3600000, NULL, err)) ||
	    (rc = consul_cfg_range(cfg, "connect_timeout_ms", c->connect_ms, 1, 3600000, NULL,
	                           err)) ||
	    (rc = consul_cfg_range(cfg, "lock_delay_ms", ck->lock_delay_ms, 0, 60000,
	                           "Consul's LockDelay is at most 60 s", err)) ||
	    (rc = consul_cfg_range(cfg, "watch_wait_s", ck->watch_wait_s, 1, 300,
	                           "blocking queries wait at most 5 minutes", err)))
		return rc;
	if (ck->session_ttl_s != 0 &&
	    (rc = consul_cfg_range(cfg, "session_ttl_s", ck->session_ttl_s, CONSUL_MIN_TTL_S,
	                           CONSUL_MAX_TTL_S, "Consul's minimum session TTL is 10 s", err)))
		return rc;
	if ((rc = consul_cfg_consistency(cfg, ck, c->consistency, err)) != VF_OK)
		return rc;
	return consul_cfg_endpoints(cfg, &c->hc, err);
}

/* The HTTP client and the token header of ck. */
static int consul_open_http(struct consul_kv *ck, struct consul_cfg *c, struct vf_err *err)
{
	int rc;

	c->hc.timeout_ms = c->timeout_ms;
	c->hc.connect_timeout_ms = c->connect_ms;
	ck->timeout_ms = c->timeout_ms;
	rc = vf_http_new(&c->hc, &ck->http, err);
	if (rc != VF_OK)
		return rc;
	if (c->token && *c->token) {
		if (asprintf(&ck->token_hdr, "X-Consul-Token: %s", c->token) < 0) {
			ck->token_hdr = NULL;
			return vf_err_set(err, VF_ENOMEM, "out of memory");
		}
		ck->hdrs[0] = ck->token_hdr;
	}
	return VF_OK;
}

/* Free what consul_open read and the handle did not take (the token wiped). */
static void consul_cfg_free(struct consul_cfg *c)
{
	free(c->snode);
	if (c->token) {
		memset(c->token, 0, strlen(c->token));
		free(c->token);
	}
	free(c->consistency);
	free(c->addr);
	vf_strv_free(c->hc.endpoints, c->hc.nendpoints);
	free(c->hc.cacert);
	free(c->hc.cert);
	free(c->hc.key);
}

static int consul_open(const config_setting_t *cfg, struct vf_kv **kv_r, struct vf_err *err)
{
	struct consul_kv *ck = NULL;
	struct consul_cfg c = {0};
	char host[64] = "host";
	int rc;

	*kv_r = NULL;
	rc = vf_cfg_known(cfg, consul_known, err);
	if (rc != VF_OK)
		return rc;
	ck = calloc(1, sizeof(*ck));
	if (ck == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	rc = consul_cfg_read(cfg, ck, &c, err);
	if (rc == VF_OK)
		rc = consul_cfg_check(cfg, ck, &c, err);
	if (rc == VF_OK)
		rc = consul_open_http(ck, &c, err);
	if (rc != VF_OK)
		goto fail;
	gethostname(host, sizeof(host) - 1);
	snprintf(ck->holder, sizeof(ck->holder), "%s:%ld", host, (long)getpid());
	pthread_mutex_init(&ck->mu, NULL);
	vf_cond_init(&ck->cv);
	vf_cond_init(&ck->lock_cv);
	ck->base.ops = vf_backend_entry();
	ck->base.max_txn_ops = CONSUL_TXN_OPS_ADVERTISED;
	ck->base.min_lease_ttl_s = CONSUL_MIN_TTL_S;
	*kv_r = &ck->base;
	rc = VF_OK;
	goto out;
fail:
	vf_http_free(&ck->http);
	free(ck->token_hdr);
	free(ck->session_node);
	free(ck);
out:
	consul_cfg_free(&c);
	return rc;
}

static void consul_close(struct vf_kv *kv)
{
	struct consul_kv *ck = consul_of(kv);

	if (ck == NULL)
		return;
	pthread_mutex_lock(&ck->mu);
	ck->ka_stop = 1;
	pthread_cond_broadcast(&ck->cv);
	pthread_mutex_unlock(&ck->mu);
	if (ck->ka_started)
		pthread_join(ck->ka_thread, NULL);
	/* Leases are not revoked: they expire by TTL. Free what the caller did not. */
	while (ck->leases) {
		struct consul_lease *l = ck->leases;

		ck->leases = l->next;
		free(l);
	}
	for (size_t i = 0; i < CONSUL_SEEN_N; i++)
		consul_seen_clear(&ck->seen[i]);
	while (ck->held) {
		struct consul_held *h = ck->held;

		ck->held = h->next;
		free(h->name);
		free(h);
	}
	vf_http_free(&ck->http);
	if (ck->token_hdr) {
		memset(ck->token_hdr, 0, strlen(ck->token_hdr));
		free(ck->token_hdr);
	}
	free(ck->session_node);
	pthread_cond_destroy(&ck->cv);
	pthread_cond_destroy(&ck->lock_cv);
	pthread_mutex_destroy(&ck->mu);
	free(ck);
}

static int consul_global_init(struct vf_err *err)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return vf_err_set(err, VF_ENOMEM, "curl_global_init failed");
	return VF_OK;
}

static void consul_global_fini(void)
{
	curl_global_cleanup();
}

static const struct vf_kv_ops consul_ops = {
        .abi_version = VF_KV_ABI_VERSION,
        .name = "consul",
        .caps = 0, /* no watch history, no compaction, no leases under 10 s */
        .global_init = consul_global_init,
        .global_fini = consul_global_fini,
        .open = consul_open,
        .close = consul_close,
        .get = consul_get,
        .list = consul_list,
        .put = consul_put,
        .cas = consul_cas,
        .del = consul_del,
        .cas_del = consul_cas_del,
        .txn = consul_txn,
        .lease_grant = consul_lease_grant,
        .lease_keepalive = consul_lease_keepalive,
        .lease_revoke = consul_lease_revoke,
        .lock = consul_lock,
        .unlock = consul_unlock,
        .watch_start = consul_watch_start,
        .watch_stop = consul_watch_stop,
        .compact = NULL,
        .lock_many = consul_lock_many,
};

const struct vf_kv_ops *vf_backend_entry(void)
{
	return &consul_ops;
}
