/*
 * The embedded cluster's membership calls, through the etcd v3 JSON gateway of
 * any member that answers (src/common/http.c: failover across the client URLs given):
 * POST /v3/cluster/member/list, /add (isLearner), /promote, /remove; and
 * GET /health of each member on its own client URL.
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedded_int.h"

struct vfe_client {
	struct vf_http *http;
};

/* A member that cannot serve the call: a learner ("rpc not supported for
 * learner"), one without a leader, or an overloaded one. Ask the next. */
static int vfe_failover(long status, const char *body, size_t len, int idempotent)
{
	(void)len;
	(void)idempotent;
	if (status == 200 || body == NULL)
		return status >= 500;
	return strstr(body, "not supported for learner") != NULL ||
	       strstr(body, "no leader") != NULL || strstr(body, "leader changed") != NULL ||
	       strstr(body, "too many requests") != NULL;
}

int vfe_client_new(char *const *urls, size_t n, const struct vfe_tls *tls, long timeout_ms,
                   struct vfe_client **c_r, struct vf_err *err)
{
	struct vf_http_cfg hc = {0};
	struct vfe_client *c = calloc(1, sizeof(*c));
	int rc;

	*c_r = NULL;
	if (c == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	hc.endpoints = (char **)urls;
	hc.nendpoints = n;
	hc.timeout_ms = timeout_ms;
	hc.connect_timeout_ms = timeout_ms < 1000 ? timeout_ms : 1000;
	if (tls) {
		hc.cacert = (char *)tls->cacert;
		hc.cert = (char *)tls->cert;
		hc.key = (char *)tls->key;
	}
	if ((rc = vf_http_new(&hc, &c->http, err)) != VF_OK) {
		free(c);
		return rc;
	}
	*c_r = c;
	return VF_OK;
}

void vfe_client_free(struct vfe_client **cp)
{
	if (cp == NULL || *cp == NULL)
		return;
	vf_http_free(&(*cp)->http);
	free(*cp);
	*cp = NULL;
}

/* POST path with body; on HTTP 200 the answer in resp_r (caller frees). An error
 * answer becomes a message naming what and etcd's own words. */
static int vfe_call(struct vfe_client *c, const char *path, const char *body, int idempotent,
                    const char *what, struct vf_buf *resp_r, struct vf_err *err)
{
	struct vf_http_req req = {0};
	struct vf_http_resp resp;
	yajl_val t = NULL;
	int rc;

	memset(resp_r, 0, sizeof(*resp_r));
	req.method = "POST";
	req.path = path;
	req.body = body;
	req.body_len = strlen(body);
	req.idempotent = idempotent;
	req.failover = vfe_failover;
	rc = vf_http_do(c->http, &req, &resp, err);
	if (rc != VF_OK)
		return vf_err_prefix(err, "%s", what);
	if (resp.status == 200) {
		*resp_r = resp.body;
		free(resp.header);
		return VF_OK;
	}
	const char *msg = NULL;

	if (resp.body.data && vf_json_parse(resp.body.data, resp.body.len, &t, NULL) == VF_OK)
		msg = vf_json_str(vf_json_get(t, "error", NULL));
	rc = vf_err_set(err,
	                resp.status >= 500 && !(msg && strstr(msg, "unhealthy")) ? VF_EUNAVAIL
	                                                                         : VF_ECONFLICT,
	                "%s: etcd answered HTTP %ld: %s", what, resp.status,
	                msg ? msg : (resp.body.data ? resp.body.data : ""));
	yajl_tree_free(t);
	vf_http_resp_free(&resp);
	return rc;
}

int vfe_member_list(struct vfe_client *c, struct vfe_list *list_r, struct vf_err *err)
{
	struct vf_buf b;
	int rc;

	memset(list_r, 0, sizeof(*list_r));
	rc = vfe_call(c, "/v3/cluster/member/list", "{}", 1, "member list", &b, err);
	if (rc == VF_OK)
		rc = vfe_list_parse(b.data ? b.data : "", b.len, list_r, err);
	vf_buf_free(&b);
	return rc;
}

int vfe_member_add_learner(struct vfe_client *c, const char *peer_url, uint64_t *id_r,
                           struct vfe_list *list_r, struct vf_err *err)
{
	struct vf_buf body = {0}, b;
	yajl_val t = NULL;
	char what[300];
	int rc;

	*id_r = 0;
	memset(list_r, 0, sizeof(*list_r));
	snprintf(what, sizeof(what), "add learner %s", peer_url);
	if (vf_buf_printf(&body, "{\"peerURLs\":[\"%s\"],\"isLearner\":true}", peer_url) != VF_OK)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	rc = vfe_call(c, "/v3/cluster/member/add", body.data, 0, what, &b, err);
	if (rc == VF_OK)
		rc = vfe_list_parse(b.data ? b.data : "", b.len, list_r, err);
	if (rc == VF_OK && vf_json_parse(b.data, b.len, &t, NULL) == VF_OK) {
		const char *id = vf_json_str(vf_json_get(t, "member", "ID", NULL));

		*id_r = id ? strtoull(id, NULL, 10) : 0;
	}
	yajl_tree_free(t);
	vf_buf_free(&b);
	vf_buf_free(&body);
	return rc;
}

static int vfe_by_id(struct vfe_client *c, const char *path, const char *verb, uint64_t id,
                     struct vf_err *err)
{
	char body[64], what[96];
	struct vf_buf b;
	int rc;

	snprintf(body, sizeof(body), "{\"ID\":\"%llu\"}", (unsigned long long)id);
	snprintf(what, sizeof(what), "%s member %llx", verb, (unsigned long long)id);
	rc = vfe_call(c, path, body, 0, what, &b, err);
	vf_buf_free(&b);
	return rc;
}

int vfe_member_promote(struct vfe_client *c, uint64_t id, struct vf_err *err)
{
	return vfe_by_id(c, "/v3/cluster/member/promote", "promote", id, err);
}

int vfe_member_remove(struct vfe_client *c, uint64_t id, struct vf_err *err)
{
	return vfe_by_id(c, "/v3/cluster/member/remove", "remove", id, err);
}

void vfe_member_probe(struct vfe_list *l, const struct vfe_tls *tls, long timeout_ms)
{
	for (size_t i = 0; i < l->n; i++) {
		struct vfe_member *m = &l->m[i];
		struct vfe_client *c = NULL;
		struct vf_http_req req = {0};
		struct vf_http_resp resp;

		m->healthy = 0;
		if (m->nclient == 0 ||
		    vfe_client_new(&m->client_urls[0], 1, tls, timeout_ms, &c, NULL) != VF_OK)
			continue;
		req.method = "GET";
		req.path = "/health";
		req.idempotent = 1;
		if (vf_http_do(c->http, &req, &resp, NULL) == VF_OK) {
			m->healthy = resp.status == 200 && resp.body.data &&
			             strstr(resp.body.data, "\"true\"") != NULL;
			vf_http_resp_free(&resp);
		}
		vfe_client_free(&c);
	}
}
