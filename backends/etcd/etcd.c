/*
 * etcd 3.4 backend over the JSON gateway: handle, configuration, auth, the unary
 * RPC helper and the KV slots (get, list, put, cas, del, cas_del, txn, compact).
 * Leases, locks and watches live in etcd_lease.c, etcd_lock.c (lock_many in
 * etcd_lock_many.c) and etcd_watch.c; JSON building and parsing in etcd_json.c.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <curl/curl.h>

#include "etcd_int.h"

#define ETCD_DEFAULT_ENDPOINT "http://127.0.0.1:2379"

static const struct vf_kv_ops etcd_ops;

/* ---- auth ---- */

/* Called with auth_mu held: get a token for username/password. */
static int etcd_authenticate(struct etcd_kv *ek, struct vf_err *err)
{
	struct vf_http_req req = {0};
	struct vf_http_resp resp;
	char *body = NULL;
	size_t len;
	yajl_val tree = NULL;
	const char *tok;
	int rc;

	rc = etcd_build_auth(ek->username, ek->password, &body, &len, err);
	if (rc != VF_OK)
		goto out;
	req.method = "POST";
	req.path = "/v3/auth/authenticate";
	req.body = body;
	req.body_len = len;
	req.idempotent = 1;
	rc = vf_http_do(ek->http, &req, &resp, err);
	if (rc != VF_OK) {
		vf_err_prefix(err, "authenticate as user '%s'", ek->username);
		goto out;
	}
	if (resp.status != 200) {
		char what[200];

		snprintf(what, sizeof(what), "authenticate as user '%s'", ek->username);
		rc = etcd_map_error(resp.status, resp.body.data, resp.body.len, 1, NULL, what, err);
		vf_http_resp_free(&resp);
		if (err && strstr(err->msg, "authentication is not enabled")) {
			/* A user name for an etcd without auth: go on without a token. */
			free(ek->token);
			ek->token = strdup("");
			ek->token_gen++;
			rc = ek->token ? VF_OK : vf_err_set(err, VF_ENOMEM, "out of memory");
		} else if (rc != VF_EUNAVAIL && rc != VF_ENOMEM) {
			rc = VF_EAUTH;
			if (err)
				err->code = VF_EAUTH;
		}
		goto out;
	}
	rc = vf_json_parse(resp.body.data ? resp.body.data : "", resp.body.len, &tree, err);
	vf_http_resp_free(&resp);
	if (rc != VF_OK)
		goto out;
	tok = vf_json_str(vf_json_get(tree, "token", NULL));
	if (tok == NULL || *tok == '\0') {
		rc = vf_err_set(err, VF_EPROTO, "authenticate as user '%s': etcd sent no token",
		                ek->username);
		goto out;
	}
	free(ek->token);
	ek->token = strdup(tok);
	if (ek->token == NULL) {
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
		goto out;
	}
	ek->token_gen++;
	vf_log(VF_LOG_DEBUG, "etcd: authenticated as user '%s'", ek->username);
out:
	yajl_tree_free(tree);
	free(body);
	return rc;
}

void etcd_auth_invalidate(struct etcd_kv *ek, unsigned long gen)
{
	pthread_mutex_lock(&ek->auth_mu);
	if (ek->token_gen == gen) {
		free(ek->token);
		ek->token = NULL;
	}
	pthread_mutex_unlock(&ek->auth_mu);
}

/* "Authorization: <token>" (no "Bearer", WIRE 1.1) into hdr, or "" without auth. */
static int etcd_auth_header(struct etcd_kv *ek, struct vf_buf *hdr, unsigned long *gen_r,
                            struct vf_err *err)
{
	int rc = VF_OK;

	*gen_r = 0;
	if (ek->username == NULL)
		return VF_OK;
	pthread_mutex_lock(&ek->auth_mu);
	if (ek->token == NULL)
		rc = etcd_authenticate(ek, err);
	if (rc == VF_OK) {
		*gen_r = ek->token_gen;
		if (*ek->token && vf_buf_printf(hdr, "Authorization: %s", ek->token) != VF_OK)
			rc = vf_err_set(err, VF_ENOMEM, "out of memory");
	}
	pthread_mutex_unlock(&ek->auth_mu);
	return rc;
}

/* ---- endpoints_file ---- */

/* Read the URLs of an endpoints file: one per line, '#' comments and blank lines
 * skipped, only http:// and https:// URLs kept. VF_ENOTFOUND when it holds none. */
static int etcd_ep_read(const char *path, char ***v_r, size_t *n_r, struct vf_err *err)
{
	FILE *f = fopen(path, "re");
	char line[1024], **v = NULL;
	size_t n = 0;

	*v_r = NULL;
	*n_r = 0;
	if (f == NULL)
		return vf_err_set(err, VF_ENOTFOUND, "cannot read %s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f) && n < 64) {
		char *s = line + strspn(line, " \t"), **nv;

		s[strcspn(s, " \t\r\n#")] = '\0';
		if (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0)
			continue;
		if ((nv = realloc(v, (n + 1) * sizeof(char *))) == NULL ||
		    (nv[n] = strdup(s)) == NULL) {
			if (nv)
				v = nv;
			vf_strv_free(v, n);
			fclose(f);
			return vf_err_set(err, VF_ENOMEM, "out of memory");
		}
		v = nv;
		n++;
	}
	fclose(f);
	if (n == 0) {
		free(v);
		return vf_err_set(err, VF_ENOTFOUND, "%s holds no http:// or https:// URL", path);
	}
	*v_r = v;
	*n_r = n;
	return VF_OK;
}

/* Take the endpoints file's list when the file changed (at most once a second). */
static void etcd_ep_refresh(struct etcd_kv *ek)
{
	struct stat st;
	struct vf_err err = {0};
	char **v = NULL;
	size_t n = 0;
	int64_t now = vf_now_ms();

	if (ek->ep_file == NULL)
		return;
	pthread_mutex_lock(&ek->ep_mu);
	if (now - ek->ep_checked_ms < 1000 || stat(ek->ep_file, &st) != 0 ||
	    (st.st_mtim.tv_sec == ek->ep_mtime.tv_sec &&
	     st.st_mtim.tv_nsec == ek->ep_mtime.tv_nsec && (long long)st.st_size == ek->ep_size &&
	     (long long)st.st_ino == ek->ep_ino)) {
		if (now - ek->ep_checked_ms >= 1000)
			ek->ep_checked_ms = now;
		pthread_mutex_unlock(&ek->ep_mu);
		return;
	}
	ek->ep_checked_ms = now;
	ek->ep_mtime = st.st_mtim;
	ek->ep_size = (long long)st.st_size;
	ek->ep_ino = (long long)st.st_ino;
	if (etcd_ep_read(ek->ep_file, &v, &n, &err) == VF_OK &&
	    vf_http_set_endpoints(ek->http, v, n, &err) == VF_OK)
		vf_log(VF_LOG_INFO, "etcd: endpoints from %s: %zu (first %s)", ek->ep_file, n,
		       v[0]);
	else
		vf_log(VF_LOG_WARN, "etcd: endpoints_file: %s (keeping the current endpoints)",
		       err.msg);
	pthread_mutex_unlock(&ek->ep_mu);
	vf_strv_free(v, n);
}

int etcd_request(struct etcd_kv *ek, struct vf_http_req *req, struct vf_http_resp *resp,
                 unsigned long *gen_r, struct vf_err *err)
{
	struct vf_buf hdr = {0};
	/* hasleader: a member without a leader refuses at once ("no leader") instead
	 * of timing out, and cancels our streams when it loses its leader. */
	const char *headers[3] = {"Grpc-Metadata-hasleader: true", NULL, NULL};
	struct vf_err lerr;
	int rc;

	if (err == NULL)
		err = &lerr;
	memset(resp, 0, sizeof(*resp));
	resp->endpoint = -1;
	etcd_ep_refresh(ek);
	rc = etcd_auth_header(ek, &hdr, gen_r, err);
	if (rc != VF_OK)
		goto out;
	headers[1] = hdr.data;
	req->headers = headers;
	req->method = "POST";
	if (req->on_data == NULL)
		req->failover = etcd_failover_answer;
	rc = vf_http_do(ek->http, req, resp, err);
	req->headers = NULL;
out:
	vf_buf_free(&hdr);
	return rc;
}

int etcd_rpc(struct etcd_kv *ek, const char *path, const char *body, size_t body_len,
             int idempotent, long timeout_ms, yajl_val *tree_r, const char *what,
             struct vf_err *err)
{
	struct vf_err lerr;
	int rc = VF_OK;

	*tree_r = NULL;
	if (err == NULL)
		err = &lerr;
	for (int attempt = 0; attempt < 2; attempt++) {
		struct vf_http_req req = {0};
		struct vf_http_resp resp;
		unsigned long gen = 0;
		int reauth = 0;

		req.path = path;
		req.body = body;
		req.body_len = body_len;
		req.idempotent = idempotent;
		req.timeout_ms = timeout_ms;
		rc = etcd_request(ek, &req, &resp, &gen, err);
		if (rc != VF_OK) {
			vf_err_prefix(err, "%s", what);
			return rc;
		}
		if (resp.status == 200) {
			rc = vf_json_parse(resp.body.data ? resp.body.data : "", resp.body.len,
			                   tree_r, err);
			if (rc != VF_OK)
				vf_err_prefix(err, "%s", what);
			vf_http_resp_free(&resp);
			return rc;
		}
		rc = etcd_map_error(resp.status, resp.body.data, resp.body.len, idempotent, &reauth,
		                    what, err);
		vf_http_resp_free(&resp);
		if (!(reauth && ek->username && attempt == 0))
			break;
		vf_log(VF_LOG_INFO, "etcd: %s: auth token refused, re-authenticating", what);
		etcd_auth_invalidate(ek, gen);
	}
	return rc;
}

int etcd_current_revision(struct etcd_kv *ek, const char *key, int64_t *rev_r, struct vf_err *err)
{
	char *body = NULL;
	size_t len;
	yajl_val tree = NULL;
	int rc;

	*rev_r = 0;
	rc = etcd_build_range(key, 0, &body, &len, err);
	if (rc == VF_OK)
		rc = etcd_rpc(ek, "/v3/kv/range", body, len, 1, 0, &tree, "read revision", err);
	if (rc == VF_OK) {
		*rev_r = etcd_header_revision(tree);
		if (*rev_r <= 0)
			rc = vf_err_set(err, VF_EPROTO, "read revision: etcd sent no revision");
	}
	yajl_tree_free(tree);
	free(body);
	return rc;
}

/* ---- open / close ---- */

static const char *const etcd_known[] = {"endpoints",
                                         "timeout_ms",
                                         "connect_timeout_ms",
                                         "username",
                                         "password",
                                         "password_file",
                                         "cacert",
                                         "cert",
                                         "key",
                                         "embedded",
                                         "embedded_data_dir",
                                         "embedded_client_url",
                                         "embedded_peer_url",
                                         "endpoints_file",
                                         NULL};

static int etcd_cfg_positive(const config_setting_t *cfg, const char *name, int def, int *out_r,
                             struct vf_err *err)
{
	int rc = vf_cfg_int(cfg, name, def, out_r, err);
	char where[256];

	if (rc != VF_OK || *out_r > 0)
		return rc;
	vf_cfg_where(cfg ? config_setting_get_member(cfg, name) : NULL, where, sizeof(where));
	return vf_err_set(err, VF_EINVAL, "%ssetting 'etcd.%s' must be a positive number of ms",
	                  where, name);
}

/* ETCDCTL_ENDPOINTS ("a,b", etcdctl's form: a URL or HOST:PORT) as URLs. */
static int etcd_env_endpoints(const char *env, int tls, char ***v_r, size_t *n_r,
                              struct vf_err *err)
{
	char *copy = strdup(env), *save = NULL;
	char **v = calloc(strlen(env) / 2 + 2, sizeof(char *));
	size_t n = 0;
	int rc = VF_OK;

	*v_r = NULL;
	*n_r = 0;
	if (copy == NULL || v == NULL) {
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
		goto out;
	}
	for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
		int r = strstr(t, "://") ? asprintf(&v[n], "%s", t)
		                         : asprintf(&v[n], "%s://%s", tls ? "https" : "http", t);

		if (r < 0) {
			v[n] = NULL;
			rc = vf_err_set(err, VF_ENOMEM, "out of memory");
			goto out;
		}
		n++;
	}
	if (n == 0)
		rc = vf_err_set(err, VF_EINVAL, "$ETCDCTL_ENDPOINTS names no endpoint");
out:
	free(copy);
	if (rc != VF_OK) {
		vf_strv_free(v, n);
		return rc;
	}
	*v_r = v;
	*n_r = n;
	return VF_OK;
}

/* username: the setting, else $ETCDCTL_USER ("user" or "user:password", etcdctl's
 * form). The password: vf_cfg_secret (password, password_file, the credential
 * etcd-password, $ETCDCTL_PASSWORD), else the one in $ETCDCTL_USER when the user
 * came from there. */
static int etcd_cfg_auth(const config_setting_t *cfg, struct etcd_kv *ek, struct vf_err *err)
{
	const char *env_user = vf_env("ETCDCTL_USER");
	int rc = vf_cfg_str(cfg, "username", NULL, &ek->username, err);

	if (rc != VF_OK)
		return rc;
	if (ek->username == NULL && env_user) {
		const char *colon = strchr(env_user, ':');

		ek->username =
		        colon ? strndup(env_user, (size_t)(colon - env_user)) : strdup(env_user);
		if (ek->username == NULL)
			return vf_err_set(err, VF_ENOMEM, "out of memory");
		if (colon && (ek->password = strdup(colon + 1)) == NULL)
			return vf_err_set(err, VF_ENOMEM, "out of memory");
	}
	if (ek->password == NULL)
		rc = vf_cfg_secret(cfg, "etcd", "password", "etcd-password", "ETCDCTL_PASSWORD",
		                   NULL, &ek->password, err);
	return rc;
}

static void etcd_free(struct etcd_kv *ek)
{
	vf_http_free(&ek->http);
	free(ek->username);
	if (ek->password)
		memset(ek->password, 0, strlen(ek->password));
	free(ek->password);
	free(ek->token);
	free(ek->ep_file);
	pthread_mutex_destroy(&ek->ep_mu);
	pthread_mutex_destroy(&ek->auth_mu);
	pthread_mutex_destroy(&ek->mu);
	pthread_mutex_destroy(&ek->pw_mu);
	pthread_cond_destroy(&ek->cond);
	free(ek);
}

static int etcd_open(const config_setting_t *cfg, struct vf_kv **kv_r, struct vf_err *err)
{
	struct vf_http_cfg hc = {0};
	struct etcd_kv *ek;
	int timeout = 0, ctimeout = 0, rc;

	*kv_r = NULL;
	ek = calloc(1, sizeof(*ek));
	if (ek == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	pthread_mutex_init(&ek->auth_mu, NULL);
	pthread_mutex_init(&ek->ep_mu, NULL);
	pthread_mutex_init(&ek->mu, NULL);
	pthread_mutex_init(&ek->pw_mu, NULL);
	vf_cond_init(&ek->cond);
	/* Where the config is silent, etcdctl's environment (ETCDCTL_*) applies. */
	if ((rc = vf_cfg_known(cfg, etcd_known, err)) != VF_OK ||
	    (rc = etcd_cfg_positive(cfg, "timeout_ms", 5000, &timeout, err)) != VF_OK ||
	    (rc = etcd_cfg_positive(cfg, "connect_timeout_ms", 2000, &ctimeout, err)) != VF_OK ||
	    (rc = etcd_cfg_auth(cfg, ek, err)) != VF_OK ||
	    (rc = vf_cfg_str(cfg, "cacert", vf_env("ETCDCTL_CACERT"), &hc.cacert, err)) != VF_OK ||
	    (rc = vf_cfg_str(cfg, "cert", vf_env("ETCDCTL_CERT"), &hc.cert, err)) != VF_OK ||
	    (rc = vf_cfg_str(cfg, "key", vf_env("ETCDCTL_KEY"), &hc.key, err)) != VF_OK ||
	    (rc = vf_cfg_str(cfg, "endpoints_file", NULL, &ek->ep_file, err)) != VF_OK)
		goto out;
	if ((cfg == NULL || config_setting_get_member(cfg, "endpoints") == NULL) &&
	    vf_env("ETCDCTL_ENDPOINTS"))
		rc = etcd_env_endpoints(vf_env("ETCDCTL_ENDPOINTS"), hc.cacert || hc.cert,
		                        &hc.endpoints, &hc.nendpoints, err);
	else
		rc = vf_cfg_strv(cfg, "endpoints", ETCD_DEFAULT_ENDPOINT, &hc.endpoints,
		                 &hc.nendpoints, err);
	if (rc != VF_OK)
		goto out;
	if (ek->ep_file && ek->ep_file[0] == '\0') {
		free(ek->ep_file);
		ek->ep_file = NULL;
	}
	if (ek->ep_file) {
		/* The file, when it holds URLs, wins over 'endpoints' (the seed list). */
		char **fv = NULL;
		size_t fn = 0;
		struct vf_err ferr = {0};

		if (etcd_ep_read(ek->ep_file, &fv, &fn, &ferr) == VF_OK) {
			vf_strv_free(hc.endpoints, hc.nendpoints);
			hc.endpoints = fv;
			hc.nendpoints = fn;
		}
	}
	if (hc.nendpoints == 0) {
		rc = vf_err_set(err, VF_EINVAL, "setting 'etcd.endpoints' is an empty list");
		goto out;
	}
	for (size_t i = 0; i < hc.nendpoints; i++)
		if (strncmp(hc.endpoints[i], "http://", 7) != 0 &&
		    strncmp(hc.endpoints[i], "https://", 8) != 0) {
			char where[256];

			vf_cfg_where(cfg ? config_setting_get_member(cfg, "endpoints") : NULL,
			             where, sizeof(where));
			rc = vf_err_set(err, VF_EINVAL,
			                "%ssetting 'etcd.endpoints': '%s' is not an http:// or "
			                "https:// URL",
			                where, hc.endpoints[i]);
			goto out;
		}
	if (ek->username && *ek->username == '\0') {
		free(ek->username);
		ek->username = NULL;
	}
	if (ek->password && ek->username == NULL) {
		rc = vf_err_set(err, VF_EINVAL,
		                "the etcd password (setting 'etcd.password' or "
		                "'etcd.password_file', the credential etcd-password or "
		                "$ETCDCTL_PASSWORD) needs 'etcd.username' or $ETCDCTL_USER");
		goto out;
	}
	if ((hc.cert == NULL) != (hc.key == NULL)) {
		rc = vf_err_set(err, VF_EINVAL,
		                "settings 'etcd.cert' and 'etcd.key' must be given together");
		goto out;
	}
	hc.timeout_ms = timeout;
	hc.connect_timeout_ms = ctimeout;
	ek->timeout_ms = timeout;
	rc = vf_http_new(&hc, &ek->http, err);
	if (rc != VF_OK)
		goto out;
	ek->base.ops = &etcd_ops;
	ek->base.max_txn_ops = ETCD_MAX_TXN_OPS;
	ek->base.min_lease_ttl_s = ETCD_MIN_LEASE_TTL;
	*kv_r = &ek->base;
	ek = NULL;
out:
	vf_strv_free(hc.endpoints, hc.nendpoints);
	free(hc.cacert);
	free(hc.cert);
	free(hc.key);
	if (ek)
		etcd_free(ek);
	return rc;
}

static void etcd_close(struct vf_kv *kv)
{
	struct etcd_kv *ek = (struct etcd_kv *)kv;

	if (ek == NULL)
		return;
	etcd_lock_pw_shutdown(ek);
	etcd_watch_shutdown(ek);
	etcd_lease_shutdown(ek);
	etcd_lock_shutdown(ek);
	etcd_free(ek);
}

/* ---- KV ---- */

static int etcd_get(struct vf_kv *kv, const char *key, struct vf_kv_pair *pair_r,
                    struct vf_err *err)
{
	struct etcd_kv *ek = (struct etcd_kv *)kv;
	char what[300], *body = NULL;
	size_t len;
	yajl_val tree = NULL;
	int rc;

	memset(pair_r, 0, sizeof(*pair_r));
	if ((rc = vf_kv_key_check(key, VF_KEY, "get", err)) != VF_OK)
		return rc;
	snprintf(what, sizeof(what), "get %s", key);
	rc = etcd_build_range(key, 0, &body, &len, err);
	if (rc == VF_OK)
		rc = etcd_rpc(ek, "/v3/kv/range", body, len, 1, 0, &tree, what, err);
	if (rc == VF_OK) {
		rc = etcd_parse_first(tree, pair_r, err);
		if (rc == VF_ENOTFOUND)
			vf_err_set(err, rc, "get %s: no such key", key);
		else if (rc != VF_OK)
			vf_err_prefix(err, "%s", what);
	}
	yajl_tree_free(tree);
	free(body);
	return rc;
}

static int etcd_list(struct vf_kv *kv, const char *prefix, struct vf_kv_list *list_r,
                     struct vf_err *err)
{
	struct etcd_kv *ek = (struct etcd_kv *)kv;
	char what[300], *body = NULL;
	size_t len;
	yajl_val tree = NULL;
	int rc;

	memset(list_r, 0, sizeof(*list_r));
	if ((rc = vf_kv_key_check(prefix, VF_KEY_PREFIX, "list", err)) != VF_OK)
		return rc;
	snprintf(what, sizeof(what), "list %s", prefix);
	rc = etcd_build_range(prefix, 1, &body, &len, err);
	if (rc == VF_OK)
		rc = etcd_rpc(ek, "/v3/kv/range", body, len, 1, 0, &tree, what, err);
	if (rc == VF_OK && (rc = etcd_parse_range(tree, tree, list_r, err)) != VF_OK)
		vf_err_prefix(err, "%s", what);
	yajl_tree_free(tree);
	free(body);
	return rc;
}

static int etcd_put(struct vf_kv *kv, const char *key, const char *value, size_t value_len,
                    struct vf_kv_lease *lease, int64_t *mod_rev_r, struct vf_err *err)
{
	struct etcd_kv *ek = (struct etcd_kv *)kv;
	char what[300], *body = NULL;
	size_t len;
	yajl_val tree = NULL;
	int rc;

	if (mod_rev_r)
		*mod_rev_r = 0;
	if ((rc = vf_kv_key_check(key, VF_KEY, "put", err)) != VF_OK)
		return rc;
	snprintf(what, sizeof(what), "put %s", key);
	rc = etcd_build_put(key, value, value_len, lease ? etcd_lease_id(lease) : 0, &body, &len,
	                    err);
	if (rc == VF_OK)
		rc = etcd_rpc(ek, "/v3/kv/put", body, len, 0, 0, &tree, what, err);
	if (rc == VF_OK && mod_rev_r)
		*mod_rev_r = etcd_header_revision(tree);
	yajl_tree_free(tree);
	free(body);
	return rc;
}

static int etcd_cas(struct vf_kv *kv, const char *key, const char *value, size_t value_len,
                    int64_t expect, struct vf_kv_lease *lease, int64_t *mod_rev_r,
                    struct vf_err *err)
{
	struct etcd_kv *ek = (struct etcd_kv *)kv;
	char what[300], *body = NULL;
	size_t len;
	yajl_val tree = NULL;
	int rc;

	if (mod_rev_r)
		*mod_rev_r = 0;
	if ((rc = vf_kv_key_check(key, VF_KEY, "cas", err)) != VF_OK)
		return rc;
	snprintf(what, sizeof(what), "cas %s", key);
	rc = etcd_build_cas(key, value, value_len, expect, lease ? etcd_lease_id(lease) : 0, &body,
	                    &len, err);
	if (rc == VF_OK)
		rc = etcd_rpc(ek, "/v3/kv/txn", body, len, 0, 0, &tree, what, err);
	if (rc != VF_OK)
		goto out;
	if (etcd_txn_succeeded(tree)) {
		if (mod_rev_r)
			*mod_rev_r = etcd_header_revision(tree);
	} else {
		struct vf_kv_pair cur;

		if (etcd_parse_first(etcd_txn_resp(tree, 0, "response_range"), &cur, NULL) ==
		    VF_OK) {
			rc = vf_err_set(err, VF_ECONFLICT,
			                "cas %s: expected version %lld, found %lld", key,
			                (long long)expect, (long long)cur.mod_rev);
			vf_kv_pair_clear(&cur);
		} else
			rc = vf_err_set(err, VF_ECONFLICT,
			                "cas %s: expected version %lld, the key does not exist",
			                key, (long long)expect);
	}
out:
	yajl_tree_free(tree);
	free(body);
	return rc;
}

static int etcd_del(struct vf_kv *kv, const char *key, struct vf_err *err)
{
	struct etcd_kv *ek = (struct etcd_kv *)kv;
	char what[300], *body = NULL;
	size_t len;
	yajl_val tree = NULL;
	int64_t deleted = 0;
	int rc;

	if ((rc = vf_kv_key_check(key, VF_KEY, "del", err)) != VF_OK)
		return rc;
	snprintf(what, sizeof(what), "delete %s", key);
	rc = etcd_build_delete(key, &body, &len, err);
	if (rc == VF_OK)
		rc = etcd_rpc(ek, "/v3/kv/deleterange", body, len, 0, 0, &tree, what, err);
	if (rc == VF_OK) {
		if (vf_json_int64(vf_json_get(tree, "deleted", NULL), &deleted) != VF_OK)
			rc = vf_err_set(err, VF_EPROTO, "%s: malformed answer", what);
		else if (deleted == 0)
			rc = vf_err_set(err, VF_ENOTFOUND, "%s: no such key", what);
	}
	yajl_tree_free(tree);
	free(body);
	return rc;
}

static int etcd_cas_del(struct vf_kv *kv, const char *key, int64_t expect, struct vf_err *err)
{
	struct etcd_kv *ek = (struct etcd_kv *)kv;
	char what[300], *body = NULL;
	size_t len;
	yajl_val tree = NULL;
	int64_t deleted = 0;
	int rc;

	if ((rc = vf_kv_key_check(key, VF_KEY, "cas_del", err)) != VF_OK)
		return rc;
	snprintf(what, sizeof(what), "cas_del %s", key);
	rc = etcd_build_cas_del(key, expect, 0, &body, &len, err);
	if (rc == VF_OK)
		rc = etcd_rpc(ek, "/v3/kv/txn", body, len, 0, 0, &tree, what, err);
	if (rc != VF_OK)
		goto out;
	if (!etcd_txn_succeeded(tree)) {
		struct vf_kv_pair cur;

		if (etcd_parse_first(etcd_txn_resp(tree, 0, "response_range"), &cur, NULL) ==
		    VF_OK) {
			rc = vf_err_set(err, VF_ECONFLICT, "%s: expected version %lld, found %lld",
			                what, (long long)expect, (long long)cur.mod_rev);
			vf_kv_pair_clear(&cur);
		} else
			rc = vf_err_set(err, VF_ECONFLICT, "%s: the key does not exist", what);
		goto out;
	}
	vf_json_int64(vf_json_get(etcd_txn_resp(tree, 0, "response_delete_range"), "deleted", NULL),
	              &deleted);
	if (deleted == 0)
		rc = vf_err_set(err, VF_ENOTFOUND, "%s: no such key", what);
out:
	yajl_tree_free(tree);
	free(body);
	return rc;
}

static int etcd_txn(struct vf_kv *kv, const struct vf_kv_cmp *cmps, size_t ncmp,
                    const struct vf_kv_op *ops, size_t nops, struct vf_kv_txn_result *res_r,
                    struct vf_err *err)
{
	struct etcd_kv *ek = (struct etcd_kv *)kv;
	char what[300], *body = NULL;
	const char *first = NULL;
	size_t len;
	yajl_val tree = NULL;
	int rc;

	if (res_r)
		memset(res_r, 0, sizeof(*res_r));
	if ((rc = vf_kv_txn_keys_check(cmps, ncmp, ops, nops, err)) != VF_OK)
		return rc;
	if (nops > 0)
		first = ops[0].kind == VF_OP_UNLOCK && ops[0].lock ? ops[0].lock->key : ops[0].key;
	else if (ncmp > 0)
		first = cmps[0].kind == VF_CMP_LOCK_HELD && cmps[0].lock ? cmps[0].lock->key
		                                                         : cmps[0].key;
	snprintf(what, sizeof(what), "txn on %s%s", first ? first : "nothing",
	         ncmp + nops > 1 ? " and others" : "");
	rc = etcd_build_txn(cmps, ncmp, ops, nops, kv->max_txn_ops, &body, &len, err);
	if (rc != VF_OK)
		goto out;
	rc = etcd_rpc(ek, "/v3/kv/txn", body, len, 0, 0, &tree, what, err);
	if (rc != VF_OK)
		goto out;
	if (ncmp > 0 && !etcd_txn_succeeded(tree)) {
		rc = vf_err_set(err, VF_ECONFLICT, "%s: a compare failed, nothing was written",
		                what);
		goto out;
	}
	for (size_t i = 0; i < nops; i++)
		if (ops[i].kind == VF_OP_UNLOCK)
			((struct etcd_lock *)ops[i].lock)->released = 1;
	if (res_r && (rc = etcd_parse_txn_results(tree, ops, nops, res_r, err)) != VF_OK)
		vf_err_prefix(err, "%s (committed)", what);
out:
	yajl_tree_free(tree);
	free(body);
	return rc;
}

static int etcd_compact(struct vf_kv *kv, int64_t revision, struct vf_err *err)
{
	struct etcd_kv *ek = (struct etcd_kv *)kv;
	char what[64], *body = NULL;
	size_t len;
	yajl_val tree = NULL;
	struct vf_err lerr;
	int rc;

	if (err == NULL)
		err = &lerr;
	snprintf(what, sizeof(what), "compact to revision %lld", (long long)revision);
	rc = etcd_build_compact(revision, &body, &len, err);
	if (rc == VF_OK)
		rc = etcd_rpc(ek, "/v3/kv/compaction", body, len, 1, 0, &tree, what, err);
	/* Already compacted at or past revision: the wanted state holds. */
	if (rc == VF_EINVAL && err && strstr(err->msg, "has been compacted"))
		rc = VF_OK;
	yajl_tree_free(tree);
	free(body);
	return rc;
}

static int etcd_global_init(struct vf_err *err)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return vf_err_set(err, VF_ENOMEM, "curl_global_init failed");
	return VF_OK;
}

static void etcd_global_fini(void)
{
	curl_global_cleanup();
}

static const struct vf_kv_ops etcd_ops = {
        .abi_version = VF_KV_ABI_VERSION,
        .name = "etcd",
        .caps = VF_KV_CAP_WATCH_HISTORY | VF_KV_CAP_COMPACT | VF_KV_CAP_SHORT_LEASE,
        .global_init = etcd_global_init,
        .global_fini = etcd_global_fini,
        .open = etcd_open,
        .close = etcd_close,
        .get = etcd_get,
        .list = etcd_list,
        .put = etcd_put,
        .cas = etcd_cas,
        .del = etcd_del,
        .cas_del = etcd_cas_del,
        .txn = etcd_txn,
        .lease_grant = etcd_lease_grant,
        .lease_keepalive = etcd_lease_keepalive,
        .lease_revoke = etcd_lease_revoke,
        .lock = etcd_lock,
        .unlock = etcd_unlock,
        .watch_start = etcd_watch_start,
        .watch_stop = etcd_watch_stop,
        .compact = etcd_compact,
        .lock_many = etcd_lock_many,
};

const struct vf_kv_ops *vf_backend_entry(void)
{
	return &etcd_ops;
}
