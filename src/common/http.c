/*
 * HTTP client for the backends: libcurl easy handles kept in a small pool (so
 * connections are reused across calls and threads), endpoint failover, and the
 * split between "nothing was sent" (VF_EUNAVAIL, safe to retry anywhere) and
 * "sent, no complete answer" (VF_EUNCERTAIN for writes).
 *
 * Failover within one request's deadline: the request's timeout bounds the whole
 * attempt across endpoints, not each endpoint. A read (idempotent) with several
 * endpoints left gives each try an equal share of what remains, so a member that
 * hangs (paused, or forwarding to a paused leader) costs 1/n of the budget and a
 * healthy member is still asked in time (a listing's share bounds the wait for
 * its first byte: once data flows it is not cut). Endpoints that failed (no
 * connection, no answer in time, an answer the caller's failover() refuses, a
 * stream that died) are marked bad and tried last, oldest failure first; one that
 * answers is good again and preferred.
 */
#include <config.h>

#include <string.h>
#include <strings.h>
#include <ctype.h>
#include <poll.h>
#include <time.h>

#include "common_int.h"

#define HTTP_POOL_MAX 16

#define HTTP_MIN_TRY_MS 200 /* a try shorter than this is not worth starting */

/* One list of endpoints with its failover state. vf_http_set_endpoints() swaps
 * in a new one while requests may still run on the old one: each request holds a
 * reference to the list it started with (refs, under vf_http.mu). */
struct http_eps {
	unsigned int refs;
	size_t n;
	char **v;
	size_t preferred;   /* endpoint that answered last */
	int64_t *bad_since; /* per endpoint: when it last failed (0: good) */
};

struct vf_http {
	struct vf_http_cfg cfg; /* cfg.endpoints unused: see eps */
	pthread_mutex_t mu;
	struct http_eps *eps;
	CURL *pool[HTTP_POOL_MAX];
	size_t npool;
};

struct http_xfer {
	const struct vf_http_req *req;
	struct vf_http_resp *resp;
	int oom;
	int got_data;     /* a stream delivered bytes to on_data */
	int64_t first_by; /* a stream's try: its first byte due by then (0: none) */
	int first_late;   /* ... and it was aborted for not sending it in time */
	struct vf_http *h;
	size_t ep;            /* the endpoint of the try */
	int64_t started;      /* when the try started */
	int demoted;          /* leave_if_demoted: aborted, another request found ep bad */
	struct http_eps *eps; /* the endpoint list of the request */
};

static char *http_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void http_eps_free(struct http_eps *e)
{
	if (e == NULL)
		return;
	vf_strv_free(e->v, e->n);
	free(e->bad_since);
	free(e);
}

static struct http_eps *http_eps_new(char *const *v, size_t n)
{
	struct http_eps *e = calloc(1, sizeof(*e));

	if (e == NULL)
		return NULL;
	e->refs = 1;
	e->v = calloc(n, sizeof(char *));
	e->bad_since = calloc(n, sizeof(int64_t));
	if (e->v == NULL || e->bad_since == NULL) {
		http_eps_free(e);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		/* Drop trailing slashes so that paths can start with one. */
		char *s = strdup(v[i]);

		if (s == NULL) {
			http_eps_free(e);
			return NULL;
		}
		for (size_t k = strlen(s); k > 0 && s[k - 1] == '/'; k--)
			s[k - 1] = '\0';
		e->v[e->n++] = s;
	}
	return e;
}

static struct http_eps *http_eps_get(struct vf_http *h)
{
	struct http_eps *e;

	pthread_mutex_lock(&h->mu);
	e = h->eps;
	e->refs++;
	pthread_mutex_unlock(&h->mu);
	return e;
}

static void http_eps_put(struct vf_http *h, struct http_eps *e)
{
	int last;

	pthread_mutex_lock(&h->mu);
	last = --e->refs == 0;
	pthread_mutex_unlock(&h->mu);
	if (last)
		http_eps_free(e);
}

int vf_http_set_endpoints(struct vf_http *h, char *const *v, size_t n, struct vf_err *err)
{
	struct http_eps *e, *old;

	if (n == 0)
		return vf_err_set(err, VF_EINVAL, "no endpoints given");
	if ((e = http_eps_new(v, n)) == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	pthread_mutex_lock(&h->mu);
	old = h->eps;
	/* An endpoint kept keeps its failover state; the preferred one stays preferred. */
	for (size_t i = 0; i < e->n; i++)
		for (size_t j = 0; old && j < old->n; j++)
			if (strcmp(e->v[i], old->v[j]) == 0) {
				e->bad_since[i] = old->bad_since[j];
				if (j == old->preferred)
					e->preferred = i;
			}
	h->eps = e;
	pthread_mutex_unlock(&h->mu);
	if (old)
		http_eps_put(h, old);
	return VF_OK;
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
	h->cfg.endpoints = NULL;
	h->cfg.nendpoints = 0;
	pthread_mutex_init(&h->mu, NULL);
	if ((h->eps = http_eps_new(cfg->endpoints, cfg->nendpoints)) == NULL)
		goto oom;
	h->cfg.cacert = http_strdup(cfg->cacert);
	h->cfg.cert = http_strdup(cfg->cert);
	h->cfg.key = http_strdup(cfg->key);
	if (h->cfg.connect_timeout_ms <= 0)
		h->cfg.connect_timeout_ms = 2000;
	if (h->cfg.timeout_ms <= 0)
		h->cfg.timeout_ms = 5000;
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
	http_eps_free(h->eps);
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
	if (x->req->on_data) {
		x->got_data = 1;
		return x->req->on_data(p, n, x->req->arg);
	}
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

static int64_t http_now_ms(void);

/* Has another request marked ep bad since the try started? */
static int http_demoted_since(struct vf_http *h, struct http_eps *e, size_t ep, int64_t since)
{
	int64_t bad;

	pthread_mutex_lock(&h->mu);
	bad = e->bad_since[ep];
	pthread_mutex_unlock(&h->mu);
	return bad != 0 && bad >= since;
}

static int http_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct http_xfer *x = arg;

	(void)dt, (void)dn, (void)ut, (void)un;
	if (x->req->cancel && *x->req->cancel)
		return 1;
	if (x->first_by && !x->got_data && http_now_ms() >= x->first_by) {
		x->first_late = 1;
		return 1;
	}
	if (x->req->leave_if_demoted && !x->got_data && x->h &&
	    http_demoted_since(x->h, x->eps, x->ep, x->started)) {
		x->demoted = 1;
		return 1;
	}
	return 0;
}

/* Did any byte of the request leave? Decides unavailable vs uncertain. */
static int http_was_sent(CURL *c)
{
	long req_size = 0;

	curl_easy_getinfo(c, CURLINFO_REQUEST_SIZE, &req_size);
	return req_size > 0;
}

/* Did a transfer fail on a TLS connection it opened itself, before any byte of
 * an answer, the way a refused TLS 1.3 handshake fails? */
static int http_tls_failed_early(CURL *c, CURLcode cc, const char *endpoint)
{
	long fresh = 0, got = 0;

	if (strncasecmp(endpoint, "https://", 8) != 0 ||
	    (cc != CURLE_SEND_ERROR && cc != CURLE_RECV_ERROR && cc != CURLE_GOT_NOTHING))
		return 0;
	curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &fresh);
	curl_easy_getinfo(c, CURLINFO_HEADER_SIZE, &got);
	return fresh > 0 && got == 0;
}

/* A cancellable request (a stream) runs in a private multi handle polled every
 * 20 ms, so that *cancel ends it within 20 ms: on an idle connection libcurl
 * calls the progress callback only about once a second, which made every
 * watch_stop() take up to 1 s. So does a stream whose first byte is due by a
 * deadline (x->first_by), or one that leaves an endpoint other requests find
 * failing (leave_if_demoted). Other requests run with curl_easy_perform. */
static CURLcode http_perform(CURL *c, const struct vf_http_req *req, const struct http_xfer *x)
{
	CURLM *m;
	CURLMsg *msg;
	CURLcode cc = CURLE_ABORTED_BY_CALLBACK;
	int running = 1, left;

	if ((req->cancel == NULL && x->first_by == 0 && !req->leave_if_demoted) ||
	    (m = curl_multi_init()) == NULL)
		return curl_easy_perform(c);
	if (curl_multi_add_handle(m, c) != CURLM_OK) {
		curl_multi_cleanup(m);
		return curl_easy_perform(c);
	}
	while (running && !(req->cancel && *req->cancel)) {
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

static void http_tls_opts(const struct vf_http *h, CURL *c)
{
	if (h->cfg.cacert)
		curl_easy_setopt(c, CURLOPT_CAINFO, h->cfg.cacert);
	if (h->cfg.cert)
		curl_easy_setopt(c, CURLOPT_SSLCERT, h->cfg.cert);
	if (h->cfg.key)
		curl_easy_setopt(c, CURLOPT_SSLKEY, h->cfg.key);
	if (h->cfg.tls_max == 12)
		curl_easy_setopt(c, CURLOPT_SSLVERSION,
		                 (long)(CURL_SSLVERSION_TLSv1_2 | CURL_SSLVERSION_MAX_TLSv1_2));
	else if (h->cfg.tls_max == 13)
		curl_easy_setopt(c, CURLOPT_SSLVERSION,
		                 (long)(CURL_SSLVERSION_TLSv1_3 | CURL_SSLVERSION_MAX_TLSv1_3));
}

static int64_t http_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Did the server refuse this client's TLS handshake? With TLS 1.3 the server
 * checks the client certificate after the client has finished its side of the
 * handshake, so a refusal reaches the client as an alert, a close or a reset
 * that fails the first write or read on a connection that looked established;
 * the alert itself is often lost to the reset. A connection refused that way
 * carried no request the server processed; but one closed for another reason (a
 * server killed mid-request) may have. So ask: open a new connection, send
 * nothing, and see how the server treats the handshake alone. A server that
 * accepted it waits for a request (after a TLS 1.3 session ticket, which it sends
 * only once it accepted the certificate); one that refused it sends an alert
 * and closes at once. Writes "why". */
static int http_tls_refused(const struct vf_http *h, const char *endpoint, long budget_ms,
                            char *why, size_t why_size)
{
	char msg[CURL_ERROR_SIZE];
	curl_socket_t fd = CURL_SOCKET_BAD;
	int64_t end = http_now_ms() + budget_ms;
	int refused = 0;
	CURLcode cc;
	CURL *p = curl_easy_init();

	if (p == NULL)
		return 0;
	msg[0] = '\0';
	curl_easy_setopt(p, CURLOPT_URL, endpoint);
	curl_easy_setopt(p, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(p, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(p, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(p, CURLOPT_CONNECTTIMEOUT_MS, budget_ms);
	curl_easy_setopt(p, CURLOPT_ERRORBUFFER, msg);
	http_tls_opts(h, p);
	cc = curl_easy_perform(p);
	if (cc == CURLE_SSL_CERTPROBLEM || cc == CURLE_SSL_CONNECT_ERROR) {
		refused = 1; /* TLS 1.2: the refusal comes within the handshake */
	} else if (cc == CURLE_OK && curl_easy_getinfo(p, CURLINFO_ACTIVESOCKET, &fd) == CURLE_OK &&
	           fd != CURL_SOCKET_BAD) {
		for (int64_t left; (left = end - http_now_ms()) > 0;) {
			struct pollfd pfd = {.fd = fd, .events = POLLIN};
			char buf[256];
			size_t n = 0;

			if (poll(&pfd, 1, (int)left) <= 0)
				break; /* silence: it waits for a request */
			cc = curl_easy_recv(p, buf, sizeof(buf), &n);
			if (cc == CURLE_AGAIN)
				break; /* a post-handshake message: accepted */
			if (cc == CURLE_OK && n > 0)
				break; /* it spoke first: not a refusal */
			refused = 1;   /* an alert, a close or a reset, unasked */
			if (!strstr(msg, "alert"))
				snprintf(msg, sizeof(msg),
				         "it closed a new connection right after "
				         "the handshake, before any request");
			break;
		}
	}
	if (refused)
		snprintf(why, why_size, "%s", msg[0] ? msg : curl_easy_strerror(cc));
	curl_easy_cleanup(p);
	return refused;
}

/* The order to try endpoints in: good ones from the preferred one on, then the
 * bad ones, the one that failed longest ago first. */
static void http_order(struct vf_http *h, struct http_eps *e, size_t *order)
{
	size_t n = e->n, k = 0, nbad;

	pthread_mutex_lock(&h->mu);
	for (size_t i = 0; i < n; i++) {
		size_t ep = (e->preferred + i) % n;

		if (e->bad_since[ep] == 0)
			order[k++] = ep;
	}
	nbad = k;
	for (size_t i = 0; i < n; i++)
		if (e->bad_since[i] != 0) {
			size_t j = k++;

			while (j > nbad && e->bad_since[order[j - 1]] > e->bad_since[i]) {
				order[j] = order[j - 1];
				j--;
			}
			order[j] = i;
		}
	pthread_mutex_unlock(&h->mu);
}

/* Called with h->mu held. */
static void http_mark_locked(struct http_eps *e, size_t ep, int good)
{
	if (good) {
		e->bad_since[ep] = 0;
		e->preferred = ep;
	} else if (e->bad_since[ep] == 0) {
		int64_t now = http_now_ms();

		e->bad_since[ep] = now > 0 ? now : 1;
	}
}

static void http_mark(struct vf_http *h, struct http_eps *e, size_t ep, int good)
{
	pthread_mutex_lock(&h->mu);
	http_mark_locked(e, ep, good);
	pthread_mutex_unlock(&h->mu);
}

void vf_http_demote(struct vf_http *h, int ep)
{
	if (h == NULL || ep < 0)
		return;
	/* ep indexes the list of the request that reported it; after a swap the
	 * index may name another endpoint, which then is only tried later. */
	pthread_mutex_lock(&h->mu);
	if ((size_t)ep < h->eps->n)
		http_mark_locked(h->eps, (size_t)ep, 0);
	pthread_mutex_unlock(&h->mu);
}

/* One request across its tries (vf_http_do). */
struct http_call {
	struct vf_http *h;
	const struct vf_http_req *req;
	struct vf_http_resp *resp;
	struct vf_err *err;
	struct http_eps *eps; /* the endpoint list the request started with */
	CURL *c;
	struct curl_slist *hdrs;
	long budget;      /* the timeout of the whole request, ms (0: none) */
	int64_t deadline; /* ... as a point in time (0: none) */
	int split;        /* the budget is shared between endpoints */
	size_t tried;     /* endpoints asked so far */
	int rc;           /* the outcome so far */
	struct http_xfer x;
	char curl_msg[CURL_ERROR_SIZE];
};

/* One try: an endpoint and the limits it is asked under. */
struct http_try {
	size_t i;     /* its place in the order of endpoints */
	size_t ep;    /* the endpoint */
	long timeout; /* CURLOPT_TIMEOUT_MS (0: none) */
	long ctimeout;
	long share; /* a stream's wait for its first byte (0: not bounded) */
	struct vf_buf url;
};

/* What the outcome of a try leads to. */
enum http_then {
	HTTP_UNDECIDED, /* not the case a classifying step looks for */
	HTTP_STOP,      /* the request is over: call->rc is its result */
	HTTP_NEXT,      /* ask the next endpoint (call->rc: this one's error) */
};

static void http_call_init(struct http_call *k, struct vf_http *h, const struct vf_http_req *req,
                           struct vf_http_resp *resp, struct vf_err *err)
{
	memset(k, 0, sizeof(*k));
	k->h = h;
	k->req = req;
	k->resp = resp;
	k->err = err;
	k->eps = http_eps_get(h);
	k->budget = req->timeout_ms ? req->timeout_ms : h->cfg.timeout_ms;
	k->deadline = k->budget > 0 ? http_now_ms() + k->budget : 0;
	/* Share the budget between endpoints only for reads expected to answer within
	 * the store's timeout (not long polls, whose answer may come at the end). A
	 * streamed read that asked for it (a Consul listing) is not cut once its data
	 * flows: its share bounds the wait for its first byte, the budget the rest. */
	k->split = req->idempotent && (req->on_data == NULL || req->stream_split) &&
	           k->budget > 0 && k->budget <= h->cfg.timeout_ms;
	k->rc = VF_EUNAVAIL;
	k->x.req = req;
	k->x.resp = resp;
	k->x.h = h;
}

/* The headers of every try: the caller's, a JSON content type for a body, and
 * no "Expect: 100-continue". */
static struct curl_slist *http_headers(const struct vf_http_req *req)
{
	struct curl_slist *hdrs = NULL;

	for (const char *const *p = req->headers; p && *p; p++)
		hdrs = curl_slist_append(hdrs, *p);
	if (req->body)
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	return curl_slist_append(hdrs, "Expect:");
}

/* The limits of try t from what is left of the deadline (see the top of the
 * file); 0 if too little is left to start it. */
static int http_try_limits(struct http_call *k, struct http_try *t)
{
	size_t n = k->eps->n;
	int64_t left;

	t->timeout = k->budget;
	t->ctimeout = k->h->cfg.connect_timeout_ms;
	t->share = 0;
	if (k->deadline == 0)
		return 1;
	left = k->deadline - http_now_ms();
	if (left <= 0 || (k->tried > 0 && left < HTTP_MIN_TRY_MS))
		return 0;
	t->timeout = k->split ? (long)(left / (int64_t)(n - t->i)) : (long)left;
	if (t->timeout < HTTP_MIN_TRY_MS)
		t->timeout = left < HTTP_MIN_TRY_MS ? (long)left : HTTP_MIN_TRY_MS;
	if (t->ctimeout > t->timeout)
		t->ctimeout = t->timeout;
	k->x.first_by = 0;
	if (k->split && k->req->on_data && t->i + 1 < n) {
		t->share = t->timeout;
		k->x.first_by = http_now_ms() + t->share;
		t->timeout = (long)left;
	}
	return 1;
}

/* Set up the handle for try t, from a clean state (the answer of an earlier try
 * dropped). */
static void http_try_setopt(struct http_call *k, struct http_try *t)
{
	const struct vf_http_req *req = k->req;
	CURL *c = k->c;

	k->resp->endpoint = (int)t->ep;
	curl_easy_reset(c);
	vf_buf_free(&k->resp->body);
	free(k->resp->header);
	k->resp->header = NULL;
	k->resp->status = 0;
	k->x.got_data = 0;
	curl_easy_setopt(c, CURLOPT_URL, t->url.data);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	/* HTTP/1.1 even where TLS could negotiate HTTP/2: a request whose
	 * sending failed was then never processed (see http_failed). */
	curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
	if (strcmp(req->method, "GET") == 0)
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	else {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body ? req->body : "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
		                 (curl_off_t)(req->body ? req->body_len : 0));
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, k->hdrs);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, t->ctimeout);
	if (t->timeout > 0)
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, t->timeout);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPIDLE, 10L);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPINTVL, 5L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &k->x);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, http_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &k->x);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, k->curl_msg);
	if (req->cancel || k->x.first_by || req->leave_if_demoted) {
		curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, http_progress);
		curl_easy_setopt(c, CURLOPT_XFERINFODATA, &k->x);
	}
	http_tls_opts(k->h, c);
}

/* An answer came, with any HTTP status. */
static enum http_then http_answered(struct http_call *k, struct http_try *t)
{
	const struct vf_http_req *req = k->req;
	struct vf_http_resp *resp = k->resp;

	curl_easy_getinfo(k->c, CURLINFO_RESPONSE_CODE, &resp->status);
	/* An answer from a member that cannot serve (the caller says:
	 * no leader, overloaded...): ask the next one while there is one. */
	if (req->failover && req->on_data == NULL && t->i + 1 < k->eps->n &&
	    req->failover(resp->status, resp->body.data, resp->body.len, req->idempotent)) {
		http_mark(k->h, k->eps, t->ep, 0);
		k->rc = vf_err_set(k->err, VF_EUNAVAIL, "%s %s: HTTP %ld: %.120s", req->method,
		                   t->url.data, resp->status,
		                   resp->body.data ? resp->body.data : "");
		if (k->err)
			k->err->http_status = resp->status;
		return HTTP_NEXT;
	}
	http_mark(k->h, k->eps, t->ep, 1);
	k->rc = VF_OK;
	return HTTP_STOP;
}

/* The transfer was cut on this side: out of memory, or aborted by a callback. */
static enum http_then http_aborted(struct http_call *k, struct http_try *t, CURLcode cc)
{
	const struct vf_http_req *req = k->req;

	if (k->x.oom) {
		k->rc = vf_err_set(k->err, VF_ENOMEM, "out of memory reading %s", t->url.data);
		return HTTP_STOP;
	}
	if (cc == CURLE_ABORTED_BY_CALLBACK && k->x.demoted) {
		/* a read that waits (a long poll): its member was found hanging or
		 * refusing by another request meanwhile; ask the next one */
		k->rc = vf_err_set(k->err, VF_EUNAVAIL,
		                   "%s %s: left: the endpoint failed another request", req->method,
		                   t->url.data);
		return HTTP_NEXT;
	}
	if (cc == CURLE_ABORTED_BY_CALLBACK && k->x.first_late) {
		/* a read: nothing changed, the next endpoint may answer */
		http_mark(k->h, k->eps, t->ep, 0);
		k->rc = vf_err_set(k->err, VF_EUNAVAIL, "%s %s: no answer within %ld ms",
		                   req->method, t->url.data, t->share);
		return HTTP_NEXT;
	}
	if (cc == CURLE_ABORTED_BY_CALLBACK || cc == CURLE_WRITE_ERROR) {
		k->rc = vf_err_set(k->err, VF_EUNCERTAIN, "%s %s: cancelled", req->method,
		                   t->url.data);
		return HTTP_STOP;
	}
	return HTTP_UNDECIDED;
}

/* TLS 1.3: the server checks the client certificate after the client's side of
 * the handshake; its refusal arrives as an alert on the first read, or as a close
 * that fails the first write. Either way the request was never processed: an auth
 * error, not an uncertain outcome. The alert names it; otherwise ask the server
 * (http_tls_refused). Writes "why". */
static int http_tls13_refused(struct http_call *k, struct http_try *t, CURLcode cc, char *why,
                              size_t why_size)
{
	const char *msg = k->curl_msg;
	long tls_budget = k->h->cfg.connect_timeout_ms;

	if (!http_tls_failed_early(k->c, cc, k->eps->v[t->ep]))
		return 0;
	if (strstr(msg, "alert") && (strstr(msg, "certificate") || strstr(msg, "unknown ca"))) {
		snprintf(why, why_size, "%s", msg);
		return 1;
	}
	if (t->timeout > 0 && t->timeout < tls_budget)
		tls_budget = t->timeout;
	return http_tls_refused(k->h, k->eps->v[t->ep], tls_budget, why, why_size);
}

/* The TLS handshake failed on the certificates: another endpoint may have a good
 * one. */
static enum http_then http_tls_auth(struct http_call *k, struct http_try *t, CURLcode cc)
{
	char why[CURL_ERROR_SIZE];

	if (cc == CURLE_SSL_CACERT || cc == CURLE_PEER_FAILED_VERIFICATION ||
	    cc == CURLE_SSL_CERTPROBLEM || cc == CURLE_SSL_CONNECT_ERROR) {
		k->rc = vf_err_set(k->err, VF_EAUTH, "%s: TLS: %s", t->url.data,
		                   k->curl_msg[0] ? k->curl_msg : curl_easy_strerror(cc));
		return HTTP_NEXT;
	}
	if (http_tls13_refused(k, t, cc, why, sizeof(why))) {
		k->rc = vf_err_set(k->err, VF_EAUTH,
		                   "%s: TLS: the server refused the client certificate (%s)",
		                   t->url.data, why);
		return HTTP_NEXT;
	}
	return HTTP_UNDECIDED;
}

/* No answer: a write that may have left is uncertain; anything else did not
 * reach the store. */
static enum http_then http_failed(struct http_call *k, struct http_try *t, CURLcode cc)
{
	const struct vf_http_req *req = k->req;
	const char *msg = k->curl_msg;

	if (http_was_sent(k->c) && !req->idempotent) {
		k->rc = vf_err_set(k->err, VF_EUNCERTAIN, "%s %s: no answer (%s): outcome unknown",
		                   req->method, t->url.data, msg[0] ? msg : curl_easy_strerror(cc));
		return HTTP_STOP;
	}
	/* curl keeps the first message of a transfer, which may be a side note
	 * ("getpeername() failed ..."): name the error itself too. */
	k->rc = vf_err_set(k->err, VF_EUNAVAIL, "%s %s: %s%s%s%s", req->method, t->url.data,
	                   curl_easy_strerror(cc), msg[0] ? " (" : "", msg, msg[0] ? ")" : "");
	/* A stream that delivered data is not replayed on the next endpoint:
	 * its caller resumes from what it saw and drops the partial data. */
	return k->x.got_data ? HTTP_STOP : HTTP_NEXT;
}

/* Classify the outcome of try t: its result in k->rc, and whether to go on. */
static enum http_then http_outcome(struct http_call *k, struct http_try *t, CURLcode cc)
{
	enum http_then then;

	if (cc == CURLE_OK)
		return http_answered(k, t);
	if ((then = http_aborted(k, t, cc)) != HTTP_UNDECIDED)
		return then;
	http_mark(k->h, k->eps, t->ep, 0);
	if ((then = http_tls_auth(k, t, cc)) != HTTP_UNDECIDED)
		return then;
	return http_failed(k, t, cc);
}

/* Ask the endpoints in order until one answers, the deadline passes, or an
 * outcome ends the request. */
static void http_tries(struct http_call *k, const size_t *order)
{
	size_t n = k->eps->n;
	int timed_out = 0;

	vf_err_set(k->err, VF_EUNAVAIL, "no endpoint tried");
	for (size_t i = 0; i < n; i++) {
		struct http_try t = {.i = i, .ep = order[i]};
		enum http_then then;

		if (!http_try_limits(k, &t)) {
			timed_out = 1;
			break;
		}
		k->x.first_late = 0;
		k->x.demoted = 0;
		k->x.ep = t.ep;
		k->x.eps = k->eps;
		k->x.started = http_now_ms();
		if (vf_buf_printf(&t.url, "%s%s", k->eps->v[t.ep], k->req->path) != VF_OK) {
			k->rc = vf_err_set(k->err, VF_ENOMEM, "out of memory");
			vf_buf_free(&t.url);
			break;
		}
		k->tried++;
		http_try_setopt(k, &t);
		k->curl_msg[0] = '\0';
		then = http_outcome(k, &t, http_perform(k->c, k->req, &k->x));
		vf_buf_free(&t.url);
		if (then == HTTP_STOP)
			break;
	}
	if (k->rc != VF_OK && timed_out && k->err && k->tried < n)
		vf_err_prefix(k->err, "no answer within %ld ms (%zu of %zu endpoints tried)",
		              k->budget, k->tried, n);
}

int vf_http_do(struct vf_http *h, const struct vf_http_req *req, struct vf_http_resp *resp,
               struct vf_err *err)
{
	struct http_call k;
	size_t *order;

	http_call_init(&k, h, req, resp, err);
	memset(resp, 0, sizeof(*resp));
	resp->endpoint = -1;
	order = calloc(k.eps->n, sizeof(*order));
	k.c = order ? http_take(h) : NULL;
	if (k.c == NULL) {
		free(order);
		http_eps_put(h, k.eps);
		return vf_err_set(err, VF_ENOMEM, "could not create an HTTP handle");
	}
	k.hdrs = http_headers(req);
	http_order(h, k.eps, order);
	http_tries(&k, order);
	curl_slist_free_all(k.hdrs);
	http_give(h, k.c);
	free(order);
	http_eps_put(h, k.eps);
	if (k.rc != VF_OK) {
		vf_buf_free(&resp->body);
		free(resp->header);
		resp->header = NULL;
	}
	return k.rc;
}

void vf_http_resp_free(struct vf_http_resp *resp)
{
	vf_buf_free(&resp->body);
	free(resp->header);
	resp->header = NULL;
}
