/*
 * HTTP client for the backends: libcurl easy handles kept in a small pool (so
 * connections are reused across calls and threads), endpoint failover, and the
 * split between "nothing was sent" (VF_EUNAVAIL, safe to retry anywhere) and
 * "sent, no complete answer" (VF_EUNCERTAIN for writes).
 */
#include <config.h>

#include <string.h>
#include <strings.h>
#include <ctype.h>

#include "common_int.h"

#define HTTP_POOL_MAX 16

struct vf_http {
	struct vf_http_cfg cfg;
	pthread_mutex_t mu;
	size_t preferred; /* endpoint that answered last */
	CURL *pool[HTTP_POOL_MAX];
	size_t npool;
};

struct http_xfer {
	const struct vf_http_req *req;
	struct vf_http_resp *resp;
	int oom;
};

static char *http_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

int vf_http_new(const struct vf_http_cfg *cfg, struct vf_http **h_r, struct vf_err *err)
{
	struct vf_http *h = calloc(1, sizeof(*h));

	*h_r = NULL;
	if (h == NULL || cfg->nendpoints == 0) {
		free(h);
		return vf_err_set(err, cfg->nendpoints ? VF_ENOMEM : VF_EINVAL,
		                  cfg->nendpoints ? "out of memory" : "no endpoints configured");
	}
	h->cfg = *cfg;
	h->cfg.endpoints = calloc(cfg->nendpoints, sizeof(char *));
	if (h->cfg.endpoints == NULL)
		goto oom;
	for (size_t i = 0; i < cfg->nendpoints; i++) {
		/* Drop trailing slashes so that paths can start with one. */
		char *e = strdup(cfg->endpoints[i]);
		if (e == NULL)
			goto oom;
		for (size_t n = strlen(e); n > 0 && e[n - 1] == '/'; n--)
			e[n - 1] = '\0';
		h->cfg.endpoints[i] = e;
	}
	h->cfg.cacert = http_strdup(cfg->cacert);
	h->cfg.cert = http_strdup(cfg->cert);
	h->cfg.key = http_strdup(cfg->key);
	if (h->cfg.connect_timeout_ms <= 0)
		h->cfg.connect_timeout_ms = 2000;
	if (h->cfg.timeout_ms <= 0)
		h->cfg.timeout_ms = 5000;
	pthread_mutex_init(&h->mu, NULL);
	*h_r = h;
	return VF_OK;
oom:
	vf_http_free(&h);
	return vf_err_set(err, VF_ENOMEM, "out of memory");
}

void vf_http_free(struct vf_http **hp)
{
	struct vf_http *h = *hp;

	if (h == NULL)
		return;
	for (size_t i = 0; i < h->npool; i++)
		curl_easy_cleanup(h->pool[i]);
	vf_strv_free(h->cfg.endpoints, h->cfg.nendpoints);
	free(h->cfg.cacert);
	free(h->cfg.cert);
	free(h->cfg.key);
	pthread_mutex_destroy(&h->mu);
	free(h);
	*hp = NULL;
}

static CURL *http_take(struct vf_http *h)
{
	CURL *c = NULL;

	pthread_mutex_lock(&h->mu);
	if (h->npool > 0)
		c = h->pool[--h->npool];
	pthread_mutex_unlock(&h->mu);
	if (c == NULL)
		c = curl_easy_init();
	else
		curl_easy_reset(c);
	return c;
}

static void http_give(struct vf_http *h, CURL *c)
{
	pthread_mutex_lock(&h->mu);
	if (h->npool < HTTP_POOL_MAX) {
		h->pool[h->npool++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&h->mu);
	if (c)
		curl_easy_cleanup(c);
}

static size_t http_write(char *p, size_t size, size_t n, void *arg)
{
	struct http_xfer *x = arg;

	n *= size;
	if (x->req->on_data)
		return x->req->on_data(p, n, x->req->arg);
	if (vf_buf_add(&x->resp->body, p, n) != VF_OK) {
		x->oom = 1;
		return 0;
	}
	return n;
}

static size_t http_header(char *p, size_t size, size_t n, void *arg)
{
	struct http_xfer *x = arg;
	const char *want = x->req->want_header;
	size_t wl;

	n *= size;
	if (want == NULL)
		return n;
	wl = strlen(want);
	if (n > wl + 1 && strncasecmp(p, want, wl) == 0 && p[wl] == ':') {
		const char *v = p + wl + 1;
		size_t vl = n - wl - 1;

		while (vl > 0 && isspace((unsigned char)*v))
			v++, vl--;
		while (vl > 0 && isspace((unsigned char)v[vl - 1]))
			vl--;
		free(x->resp->header);
		x->resp->header = strndup(v, vl);
	}
	return n;
}

static int http_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct http_xfer *x = arg;

	(void)dt, (void)dn, (void)ut, (void)un;
	return (x->req->cancel && *x->req->cancel) ? 1 : 0;
}

/* Did any byte of the request leave? Decides unavailable vs uncertain. */
static int http_was_sent(CURL *c)
{
	long req_size = 0;

	curl_easy_getinfo(c, CURLINFO_REQUEST_SIZE, &req_size);
	return req_size > 0;
}

/* A cancellable request (a stream) runs in a private multi handle polled every
 * 20 ms, so that *cancel ends it within 20 ms: on an idle connection libcurl
 * calls the progress callback only about once a second, which made every
 * watch_stop() take up to 1 s. Other requests run with curl_easy_perform. */
static CURLcode http_perform(CURL *c, const struct vf_http_req *req)
{
	CURLM *m;
	CURLMsg *msg;
	CURLcode cc = CURLE_ABORTED_BY_CALLBACK;
	int running = 1, left;

	if (req->cancel == NULL || (m = curl_multi_init()) == NULL)
		return curl_easy_perform(c);
	if (curl_multi_add_handle(m, c) != CURLM_OK) {
		curl_multi_cleanup(m);
		return curl_easy_perform(c);
	}
	while (running && !*req->cancel) {
		if (curl_multi_perform(m, &running) != CURLM_OK) {
			cc = CURLE_FAILED_INIT;
			running = 0;
			break;
		}
		if (running && curl_multi_poll(m, NULL, 0, 20, NULL) != CURLM_OK) {
			cc = CURLE_FAILED_INIT;
			running = 0;
			break;
		}
	}
	if (!running)
		while ((msg = curl_multi_info_read(m, &left)) != NULL)
			if (msg->msg == CURLMSG_DONE && msg->easy_handle == c)
				cc = msg->data.result;
	curl_multi_remove_handle(m, c);
	curl_multi_cleanup(m);
	return cc;
}

int vf_http_do(struct vf_http *h, const struct vf_http_req *req, struct vf_http_resp *resp,
               struct vf_err *err)
{
	struct curl_slist *hdrs = NULL;
	char curl_msg[CURL_ERROR_SIZE];
	struct http_xfer x = {req, resp, 0};
	size_t start, n = h->cfg.nendpoints;
	int rc = VF_EUNAVAIL;
	CURL *c;

	memset(resp, 0, sizeof(*resp));
	resp->endpoint = -1;
	c = http_take(h);
	if (c == NULL)
		return vf_err_set(err, VF_ENOMEM, "could not create an HTTP handle");
	for (const char *const *p = req->headers; p && *p; p++)
		hdrs = curl_slist_append(hdrs, *p);
	if (req->body)
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	hdrs = curl_slist_append(hdrs, "Expect:");

	pthread_mutex_lock(&h->mu);
	start = h->preferred;
	pthread_mutex_unlock(&h->mu);

	vf_err_set(err, VF_EUNAVAIL, "no endpoint tried");
	for (size_t i = 0; i < n; i++) {
		size_t ep = (start + i) % n;
		struct vf_buf url = {0};
		long timeout = req->timeout_ms ? req->timeout_ms : h->cfg.timeout_ms;
		CURLcode cc;

		if (vf_buf_printf(&url, "%s%s", h->cfg.endpoints[ep], req->path) != VF_OK) {
			rc = vf_err_set(err, VF_ENOMEM, "out of memory");
			break;
		}
		curl_easy_reset(c);
		vf_buf_free(&resp->body);
		curl_easy_setopt(c, CURLOPT_URL, url.data);
		curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
		if (strcmp(req->method, "GET") == 0)
			curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
		else {
			curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body ? req->body : "");
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
			                 (curl_off_t)(req->body ? req->body_len : 0));
		}
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, h->cfg.connect_timeout_ms);
		if (timeout > 0)
			curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout);
		curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
		curl_easy_setopt(c, CURLOPT_TCP_KEEPIDLE, 10L);
		curl_easy_setopt(c, CURLOPT_TCP_KEEPINTVL, 5L);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_write);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
		curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, http_header);
		curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
		curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_msg);
		if (req->cancel) {
			curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
			curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, http_progress);
			curl_easy_setopt(c, CURLOPT_XFERINFODATA, &x);
		}
		if (h->cfg.cacert)
			curl_easy_setopt(c, CURLOPT_CAINFO, h->cfg.cacert);
		if (h->cfg.cert)
			curl_easy_setopt(c, CURLOPT_SSLCERT, h->cfg.cert);
		if (h->cfg.key)
			curl_easy_setopt(c, CURLOPT_SSLKEY, h->cfg.key);
		curl_msg[0] = '\0';
		cc = http_perform(c, req);
		if (cc == CURLE_OK) {
			curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
			resp->endpoint = (int)ep;
			pthread_mutex_lock(&h->mu);
			h->preferred = ep;
			pthread_mutex_unlock(&h->mu);
			rc = VF_OK;
			vf_buf_free(&url);
			break;
		}
		if (x.oom) {
			rc = vf_err_set(err, VF_ENOMEM, "out of memory reading %s", url.data);
			vf_buf_free(&url);
			break;
		}
		if (cc == CURLE_ABORTED_BY_CALLBACK || cc == CURLE_WRITE_ERROR) {
			rc = vf_err_set(err, VF_EUNCERTAIN, "%s %s: cancelled", req->method,
			                url.data);
			vf_buf_free(&url);
			break;
		}
		if (cc == CURLE_SSL_CACERT || cc == CURLE_PEER_FAILED_VERIFICATION ||
		    cc == CURLE_SSL_CERTPROBLEM || cc == CURLE_SSL_CONNECT_ERROR) {
			rc = vf_err_set(err, VF_EAUTH, "%s: TLS: %s", url.data,
			                curl_msg[0] ? curl_msg : curl_easy_strerror(cc));
			vf_buf_free(&url);
			continue; /* another endpoint may have a good certificate */
		}
		/* TLS 1.3: the server checks the client certificate after the client's
		 * side of the handshake; its refusal arrives as an alert on the first
		 * read. The request was never processed: an auth error, not an
		 * uncertain outcome. */
		if ((cc == CURLE_RECV_ERROR || cc == CURLE_SEND_ERROR) &&
		    strstr(curl_msg, "alert") &&
		    (strstr(curl_msg, "certificate") || strstr(curl_msg, "unknown ca"))) {
			rc = vf_err_set(err, VF_EAUTH,
			                "%s: TLS: the server refused the client certificate (%s)",
			                url.data, curl_msg);
			vf_buf_free(&url);
			continue;
		}
		if (http_was_sent(c) && !req->idempotent) {
			rc = vf_err_set(err, VF_EUNCERTAIN,
			                "%s %s: no answer (%s): outcome unknown", req->method,
			                url.data, curl_msg[0] ? curl_msg : curl_easy_strerror(cc));
			vf_buf_free(&url);
			break;
		}
		/* curl keeps the first message of a transfer, which may be a side note
		 * ("getpeername() failed ..."): name the error itself too. */
		rc = vf_err_set(err, VF_EUNAVAIL, "%s %s: %s%s%s%s", req->method, url.data,
		                curl_easy_strerror(cc), curl_msg[0] ? " (" : "", curl_msg,
		                curl_msg[0] ? ")" : "");
		vf_buf_free(&url);
	}
	curl_slist_free_all(hdrs);
	http_give(h, c);
	if (rc != VF_OK)
		vf_buf_free(&resp->body);
	return rc;
}

void vf_http_resp_free(struct vf_http_resp *resp)
{
	vf_buf_free(&resp->body);
	free(resp->header);
	resp->header = NULL;
}
