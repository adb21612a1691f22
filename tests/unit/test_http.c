/*
 * Unit tests of the HTTP client's failover (src/common/http.c) against scripted local
 * servers (tests/harness: vf_fake_*): members that hang, answer late, drop the
 * connection after reading the request, answer 503, or die mid-stream. They pin
 * "nothing sent" (VF_EUNAVAIL) against "sent, no answer" (VF_EUNCERTAIN for
 * writes), and that one request's timeout bounds every endpoint it tries.
 *
 * Bounds: a test asserts an elapsed time only against the request's own budget
 * (what the code guarantees), plus HTTP_SLACK_MS for curl's timer and thread
 * wake-ups: a late answer exceeds it by a whole budget, not by milliseconds.
 */
#include <config.h>

#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <string.h>
#include <time.h>

#include "test_int.h"
#include "common_int.h"
#include "harness.h"

#define HTTP_SLACK_MS 700

struct http_fx {
	struct vf_fake *f[4];
	size_t n;
	struct vf_http *h;
};

/* Start one fake per route list entry (one route each) and a client over them, in
 * that order; extra_refused adds an endpoint on a port nobody listens on, first. */
static void fx_start(struct http_fx *fx, const struct vf_fake_route *r, size_t n, int extra_refused,
                     long timeout_ms)
{
	char why[256], *eps[5];
	struct vf_http_cfg cfg = {0};
	struct vf_err err = {0};
	size_t k = 0;

	memset(fx, 0, sizeof(*fx));
	if (extra_refused) {
		int port = vf_srv_free_port();

		CU_ASSERT_FATAL(port > 0);
		if (asprintf(&eps[k++], "http://127.0.0.1:%d", port) < 0)
			CU_FAIL_FATAL("out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		if (vf_fake_start(&r[i], 1, &fx->f[i], why, sizeof(why)) != 0) {
			fprintf(stderr, "fake server: %s\n", why);
			CU_FAIL_FATAL("cannot start a fake server");
		}
		if (asprintf(&eps[k++], "http://127.0.0.1:%d", vf_fake_port(fx->f[i])) < 0)
			CU_FAIL_FATAL("out of memory");
	}
	fx->n = n;
	cfg.endpoints = eps;
	cfg.nendpoints = k;
	cfg.timeout_ms = timeout_ms;
	cfg.connect_timeout_ms = 1000;
	CU_ASSERT_EQUAL_FATAL(vf_http_new(&cfg, &fx->h, &err), VF_OK);
	for (size_t i = 0; i < k; i++)
		free(eps[i]);
}

static void fx_stop(struct http_fx *fx)
{
	vf_http_free(&fx->h);
	for (size_t i = 0; i < fx->n; i++)
		vf_fake_stop(&fx->f[i]);
}

static int fx_do(struct http_fx *fx, const char *method, int idempotent, struct vf_http_resp *resp,
                 int64_t *ms_r, struct vf_err *err)
{
	struct vf_http_req req = {0};
	int64_t t0 = vf_now_ms();
	int rc;

	req.method = method;
	req.path = "/v3/kv/range";
	req.body = "{}";
	req.body_len = 2;
	req.idempotent = idempotent;
	rc = vf_http_do(fx->h, &req, resp, err);
	*ms_r = vf_now_ms() - t0;
	return rc;
}

/* #18.1: a read whose first members hang reaches a healthy one within its own
 * timeout (before: the timeout applied per endpoint, 2 x 3000 ms went by first). */
static void test_read_deadline_across_endpoints(void)
{
	const struct vf_fake_route r[] = {
	        {NULL, VF_FAKE_HANG, 0, 0, NULL},
	        {NULL, VF_FAKE_HANG, 0, 0, NULL},
	        {NULL, VF_FAKE_REPLY, 0, 200, "{\"ok\":1}"},
	};
	struct http_fx fx;
	struct vf_http_resp resp;
	struct vf_err err = {0};
	int64_t ms;

	fx_start(&fx, r, 3, 0, 3000);
	CU_ASSERT_EQUAL(fx_do(&fx, "POST", 1, &resp, &ms, &err), VF_OK);
	CU_ASSERT_EQUAL(resp.status, 200);
	CU_ASSERT_EQUAL(resp.endpoint, 2);
	CU_ASSERT(ms < 3000);
	printf("(healthy third member answered after %lld ms, budget 3000) ", (long long)ms);
	vf_http_resp_free(&resp);
	/* The members that hung are tried last now: the next read is immediate. */
	CU_ASSERT_EQUAL(fx_do(&fx, "POST", 1, &resp, &ms, &err), VF_OK);
	CU_ASSERT_EQUAL(resp.endpoint, 2);
	CU_ASSERT(ms < 1000);
	vf_http_resp_free(&resp);
	fx_stop(&fx);
}

/* Every member hangs: the request fails after its timeout, not n times it. */
static void test_all_hang_bounded(void)
{
	const struct vf_fake_route r[] = {
	        {NULL, VF_FAKE_HANG, 0, 0, NULL},
	        {NULL, VF_FAKE_HANG, 0, 0, NULL},
	        {NULL, VF_FAKE_HANG, 0, 0, NULL},
	};
	struct http_fx fx;
	struct vf_http_resp resp;
	struct vf_err err = {0};
	int64_t ms;

	fx_start(&fx, r, 3, 0, 1500);
	CU_ASSERT_EQUAL(fx_do(&fx, "POST", 1, &resp, &ms, &err), VF_EUNAVAIL);
	CU_ASSERT(ms < 1500 + HTTP_SLACK_MS);
	printf("(%lld ms: %s) ", (long long)ms, err.msg);
	/* a write to a member that hangs: sent, no answer, outcome unknown */
	CU_ASSERT_EQUAL(fx_do(&fx, "POST", 0, &resp, &ms, &err), VF_EUNCERTAIN);
	CU_ASSERT(ms < 1500 + HTTP_SLACK_MS);
	CU_ASSERT(strstr(err.msg, "outcome unknown") != NULL);
	fx_stop(&fx);
}

/* A write that timed out on a member is VF_EUNCERTAIN (it is not resent), and that
 * member is not asked first again (before: the next write hung on it too). */
static void test_write_timeout_demotes(void)
{
	const struct vf_fake_route r[] = {
	        {NULL, VF_FAKE_HANG, 0, 0, NULL},
	        {NULL, VF_FAKE_REPLY, 0, 200, "{\"ok\":1}"},
	};
	struct http_fx fx;
	struct vf_http_resp resp;
	struct vf_err err = {0};
	int64_t ms;

	fx_start(&fx, r, 2, 0, 1000);
	CU_ASSERT_EQUAL(fx_do(&fx, "POST", 0, &resp, &ms, &err), VF_EUNCERTAIN);
	CU_ASSERT_EQUAL(vf_fake_requests(fx.f[0]), 1);
	CU_ASSERT_EQUAL(vf_fake_requests(fx.f[1]), 0); /* not resent */
	CU_ASSERT_EQUAL(fx_do(&fx, "POST", 0, &resp, &ms, &err), VF_OK);
	CU_ASSERT_EQUAL(resp.endpoint, 1);
	CU_ASSERT_EQUAL(vf_fake_requests(fx.f[0]), 1);
	vf_http_resp_free(&resp);
	fx_stop(&fx);
}

/* Refused connection: nothing sent, the write moves on (VF_OK from the next);
 * a member that read the request and closed: a read moves on, a write is
 * uncertain. */
static void test_refused_and_dropped(void)
{
	const struct vf_fake_route r[] = {
	        {NULL, VF_FAKE_DROP, 0, 0, NULL},
	        {NULL, VF_FAKE_REPLY, 0, 200, "{\"ok\":1}"},
	};
	struct http_fx fx;
	struct vf_http_resp resp;
	struct vf_err err = {0};
	int64_t ms;

	fx_start(&fx, &r[1], 1, 1, 2000); /* [refused, good] */
	CU_ASSERT_EQUAL(fx_do(&fx, "POST", 0, &resp, &ms, &err), VF_OK);
	CU_ASSERT_EQUAL(resp.endpoint, 1);
	vf_http_resp_free(&resp);
	fx_stop(&fx);

	fx_start(&fx, r, 2, 0, 2000); /* [drop, good] */
	CU_ASSERT_EQUAL(fx_do(&fx, "POST", 1, &resp, &ms, &err), VF_OK);
	CU_ASSERT_EQUAL(resp.endpoint, 1);
	vf_http_resp_free(&resp);
	fx_stop(&fx);

	fx_start(&fx, r, 1, 0, 2000); /* [drop] */
	CU_ASSERT_EQUAL(fx_do(&fx, "POST", 0, &resp, &ms, &err), VF_EUNCERTAIN);
	CU_ASSERT_EQUAL(fx_do(&fx, "POST", 1, &resp, &ms, &err), VF_EUNAVAIL);
	fx_stop(&fx);
}

/* A member that accepts and closes before reading a byte: the client cannot
 * tell it from one that read the request and died, so a write there is
 * VF_EUNCERTAIN and is not resent to the next member; a read moves on to it. */
static void test_accept_then_close(void)
{
	const struct vf_fake_route r[] = {
	        {NULL, VF_FAKE_CLOSE, 0, 0, NULL},
	        {NULL, VF_FAKE_REPLY, 0, 200, "{\"ok\":1}"},
	};
	struct http_fx fx;
	struct vf_http_resp resp;
	struct vf_err err = {0};
	int64_t ms;
	int rc;

	fx_start(&fx, r, 2, 0, 2000); /* [close, good] */
	CU_ASSERT_EQUAL(fx_do(&fx, "POST", 1, &resp, &ms, &err), VF_OK);
	CU_ASSERT_EQUAL(resp.endpoint, 1);
	CU_ASSERT(ms < 2000 + HTTP_SLACK_MS);
	vf_http_resp_free(&resp);
	fx_stop(&fx);

	fx_start(&fx, r, 1, 0, 2000); /* [close] */
	rc = fx_do(&fx, "POST", 0, &resp, &ms, &err);
	if (rc != VF_EUNCERTAIN)
		fprintf(stderr, "\nwrite to a member that closed at accept: %s: %s\n",
		        vf_strerror(rc), err.msg);
	CU_ASSERT_EQUAL(rc, VF_EUNCERTAIN);
	CU_ASSERT(err.msg[0] != '\0');
	CU_ASSERT_EQUAL(fx_do(&fx, "POST", 1, &resp, &ms, &err), VF_EUNAVAIL);
	CU_ASSERT(ms < 2000 + HTTP_SLACK_MS);
	fx_stop(&fx);
}

/* An answer later than the budget: a read is unavailable, a write uncertain. */
static void test_late_answer(void)
{
	const struct vf_fake_route r[] = {{NULL, VF_FAKE_REPLY, 3000, 200, "{}"}};
	struct http_fx fx;
	struct vf_http_resp resp;
	struct vf_err err = {0};
	int64_t ms;

	fx_start(&fx, r, 1, 0, 1000);
	CU_ASSERT_EQUAL(fx_do(&fx, "POST", 1, &resp, &ms, &err), VF_EUNAVAIL);
	CU_ASSERT(ms < 1000 + HTTP_SLACK_MS);
	CU_ASSERT_EQUAL(fx_do(&fx, "POST", 0, &resp, &ms, &err), VF_EUNCERTAIN);
	CU_ASSERT(ms < 1000 + HTTP_SLACK_MS);
	fx_stop(&fx);
}

static int fail_on_503(long status, const char *body, size_t len, int idempotent)
{
	(void)len;
	return status == 503 && (idempotent || (body && strstr(body, "no leader")));
}

/* #12.6: a member answering 503 ("no leader") is left for the next one when the
 * caller says so; a write's 503 that the caller does not clear is returned. */
static void test_503_failover(void)
{
	const struct vf_fake_route r[] = {
	        {NULL, VF_FAKE_REPLY, 0, 503,
	         "{\"error\":\"etcdserver: no leader\",\"message\":\"etcdserver: no leader\","
	         "\"code\":14}"},
	        {NULL, VF_FAKE_REPLY, 0, 503,
	         "{\"error\":\"etcdserver: request timed out\",\"message\":\"etcdserver: request "
	         "timed out\",\"code\":14}"},
	        {NULL, VF_FAKE_REPLY, 0, 200, "{\"ok\":1}"},
	};
	struct vf_fake_route r2[] = {r[1], r[2]};
	struct http_fx fx;
	struct vf_http_req req = {0};
	struct vf_http_resp resp;
	struct vf_err err = {0};

	fx_start(&fx, (const struct vf_fake_route[]){r[0], r[2]}, 2, 0, 2000);
	req.method = "POST";
	req.path = "/v3/kv/put";
	req.body = "{}";
	req.body_len = 2;
	req.failover = fail_on_503;
	CU_ASSERT_EQUAL(vf_http_do(fx.h, &req, &resp, &err), VF_OK);
	CU_ASSERT_EQUAL(resp.status, 200);
	CU_ASSERT_EQUAL(resp.endpoint, 1);
	vf_http_resp_free(&resp);
	/* the member without a leader is asked last from now on */
	CU_ASSERT_EQUAL(vf_http_do(fx.h, &req, &resp, &err), VF_OK);
	CU_ASSERT_EQUAL(vf_fake_requests(fx.f[0]), 1);
	vf_http_resp_free(&resp);
	fx_stop(&fx);

	/* "request timed out" on a write: it may apply; not resent, 503 returned */
	fx_start(&fx, r2, 2, 0, 2000);
	CU_ASSERT_EQUAL(vf_http_do(fx.h, &req, &resp, &err), VF_OK);
	CU_ASSERT_EQUAL(resp.status, 503);
	CU_ASSERT_EQUAL(vf_fake_requests(fx.f[1]), 0);
	vf_http_resp_free(&resp);
	/* the same answer to a read moves on */
	req.idempotent = 1;
	CU_ASSERT_EQUAL(vf_http_do(fx.h, &req, &resp, &err), VF_OK);
	CU_ASSERT_EQUAL(resp.status, 200);
	vf_http_resp_free(&resp);
	fx_stop(&fx);
}

static size_t collect(const char *p, size_t n, void *arg)
{
	return vf_buf_add(arg, p, n) == VF_OK ? n : 0;
}

/* #12.5: a stream that died after delivering data is not replayed on the next
 * member (before: the next member's stream was appended to the dead one's partial
 * line, from the old start revision). */
static void test_stream_not_replayed(void)
{
	const struct vf_fake_route r[] = {
	        {NULL, VF_FAKE_TRUNCATE, 0, 200, "{\"line\":1}\n{\"par"},
	        {NULL, VF_FAKE_REPLY, 0, 200, "{\"line\":2}\n"},
	};
	struct http_fx fx;
	struct vf_http_req req = {0};
	struct vf_http_resp resp;
	struct vf_buf got = {0};
	struct vf_err err = {0};
	volatile int cancel = 0;

	fx_start(&fx, r, 2, 0, 2000);
	req.method = "POST";
	req.path = "/v3/watch";
	req.body = "{}";
	req.body_len = 2;
	req.idempotent = 1;
	req.timeout_ms = -1;
	req.on_data = collect;
	req.arg = &got;
	req.cancel = &cancel;
	CU_ASSERT_EQUAL(vf_http_do(fx.h, &req, &resp, &err), VF_EUNAVAIL);
	CU_ASSERT_EQUAL(resp.endpoint, 0);
	CU_ASSERT_EQUAL(vf_fake_requests(fx.f[1]), 0);
	CU_ASSERT(got.data && strcmp(got.data, "{\"line\":1}\n{\"par") == 0);
	vf_buf_free(&got);
	/* the caller demotes the member its stream died on: the next goes elsewhere */
	vf_http_demote(fx.h, resp.endpoint);
	CU_ASSERT_EQUAL(vf_http_do(fx.h, &req, &resp, &err), VF_OK);
	CU_ASSERT_EQUAL(resp.endpoint, 1);
	CU_ASSERT(got.data && strcmp(got.data, "{\"line\":2}\n") == 0);
	vf_buf_free(&got);
	vf_http_resp_free(&resp);
	fx_stop(&fx);
}

struct set_eps_arg {
	struct vf_http *h;
	char *eps[1];
};

static void *set_eps_thread(void *arg)
{
	struct set_eps_arg *a = arg;
	struct timespec ts = {0, 200000000L};

	nanosleep(&ts, NULL);
	vf_http_set_endpoints(a->h, a->eps, 1, NULL);
	return NULL;
}

/* Issue 15: vf_http_set_endpoints swaps the list (an embedded cluster's member list
 * changed): the next request goes to the new list; an endpoint in both keeps its
 * place; a request under way finishes on the list it started with. */
static void test_set_endpoints(void)
{
	const struct vf_fake_route r[] = {
	        {NULL, VF_FAKE_REPLY, 0, 200, "{\"member\":0}"},
	        {NULL, VF_FAKE_REPLY, 600, 200, "{\"member\":1}"},
	};
	struct http_fx fx;
	struct vf_http_resp resp;
	struct vf_err err = {0};
	char *eps[2];
	int64_t ms;
	pthread_t t;

	fx_start(&fx, r, 2, 1, 3000); /* endpoint 0 refuses: the list is [dead, f0, f1] */
	CU_ASSERT_EQUAL(asprintf(&eps[0], "http://127.0.0.1:%d", vf_fake_port(fx.f[1])) > 0, 1);
	CU_ASSERT_EQUAL(asprintf(&eps[1], "http://127.0.0.1:%d/", vf_fake_port(fx.f[0])) > 0, 1);
	CU_ASSERT_EQUAL(vf_http_set_endpoints(fx.h, eps, 0, &err), VF_EINVAL);
	/* [f1, f0]: f1 first */
	CU_ASSERT_EQUAL(vf_http_set_endpoints(fx.h, eps, 2, &err), VF_OK);
	CU_ASSERT_EQUAL(fx_do(&fx, "POST", 1, &resp, &ms, &err), VF_OK);
	CU_ASSERT_EQUAL(resp.endpoint, 0);
	CU_ASSERT(resp.body.data && strstr(resp.body.data, "\"member\":1"));
	vf_http_resp_free(&resp);
	CU_ASSERT_EQUAL(vf_fake_requests(fx.f[0]), 0);
	/* a request to the slow f1 under way while the list becomes [f0] alone */
	struct set_eps_arg a = {fx.h, {eps[1]}};

	CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, set_eps_thread, &a), 0);
	CU_ASSERT_EQUAL(fx_do(&fx, "POST", 1, &resp, &ms, &err), VF_OK);
	CU_ASSERT(resp.body.data && strstr(resp.body.data, "\"member\":1"));
	vf_http_resp_free(&resp);
	pthread_join(t, NULL);
	CU_ASSERT_EQUAL(fx_do(&fx, "POST", 1, &resp, &ms, &err), VF_OK);
	CU_ASSERT_EQUAL(resp.endpoint, 0);
	CU_ASSERT(resp.body.data && strstr(resp.body.data, "\"member\":0"));
	vf_http_resp_free(&resp);
	CU_ASSERT_EQUAL(vf_fake_requests(fx.f[0]), 1);
	free(eps[0]);
	free(eps[1]);
	fx_stop(&fx);
}

/* A streamed read (a Consul listing) whose first member hangs reaches the next
 * within its own timeout: the first try's share bounds the wait for its first
 * byte (before: a stream was not split, the hung member took the whole budget
 * and the read failed with "1 of 3 endpoints tried"). */
static void test_stream_first_byte_failover(void)
{
	const struct vf_fake_route r[] = {
	        {NULL, VF_FAKE_HANG, 0, 0, NULL},
	        {NULL, VF_FAKE_REPLY, 0, 200, "[{\"Key\":\"a\"}]"},
	        {NULL, VF_FAKE_REPLY, 0, 200, "[{\"Key\":\"a\"}]"},
	};
	struct http_fx fx;
	struct vf_http_req req = {0};
	struct vf_http_resp resp;
	struct vf_buf got = {0};
	struct vf_err err = {0};
	int64_t t0, ms;

	fx_start(&fx, r, 3, 0, 3000);
	req.method = "GET";
	req.path = "/v1/kv/p/?recurse";
	req.idempotent = 1;
	req.on_data = collect;
	req.arg = &got;
	req.stream_split = 1;
	t0 = vf_now_ms();
	CU_ASSERT_EQUAL(vf_http_do(fx.h, &req, &resp, &err), VF_OK);
	ms = vf_now_ms() - t0;
	CU_ASSERT_EQUAL(resp.status, 200);
	CU_ASSERT_EQUAL(resp.endpoint, 1);
	CU_ASSERT(got.data && strcmp(got.data, "[{\"Key\":\"a\"}]") == 0);
	/* its share: 3000 / 3 ms, and the answer */
	CU_ASSERT(ms < 1000 + HTTP_SLACK_MS);
	printf("(second member answered the stream after %lld ms, budget 3000) ", (long long)ms);
	vf_buf_free(&got);
	vf_http_resp_free(&resp);
	fx_stop(&fx);
}

struct demote_arg {
	struct vf_http *h;
	int ep, after_ms;
};

static void *demote_main(void *arg)
{
	struct demote_arg *d = arg;
	struct timespec ts = {d->after_ms / 1000, (long)(d->after_ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
	vf_http_demote(d->h, d->ep);
	return NULL;
}

/* A long poll (a Consul blocking query) on a member that hangs hears nothing for
 * its whole wait; once another request marks that member bad, it leaves it and
 * asks the next one (before: it waited out its timeout there, 65 s for a watch
 * through a black-holed Consul server). */
static void test_long_poll_leaves_demoted(void)
{
	const struct vf_fake_route r[] = {
	        {NULL, VF_FAKE_HANG, 0, 0, NULL},
	        {NULL, VF_FAKE_REPLY, 0, 200, "[]"},
	};
	struct http_fx fx;
	struct vf_http_req req = {0};
	struct vf_http_resp resp;
	struct vf_buf got = {0};
	struct vf_err err = {0};
	struct demote_arg d;
	volatile int cancel = 0;
	pthread_t th;
	int64_t t0, ms;

	fx_start(&fx, r, 2, 0, 2000);
	req.method = "GET";
	req.path = "/v1/kv/p/?recurse&index=5&wait=60000ms";
	req.idempotent = 1;
	req.timeout_ms = 8000; /* above the configured 2000: a long poll, not split */
	req.on_data = collect;
	req.arg = &got;
	req.cancel = &cancel;
	req.leave_if_demoted = 1;
	d = (struct demote_arg){fx.h, 0, 500};
	CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, demote_main, &d), 0);
	t0 = vf_now_ms();
	CU_ASSERT_EQUAL(vf_http_do(fx.h, &req, &resp, &err), VF_OK);
	ms = vf_now_ms() - t0;
	pthread_join(th, NULL);
	CU_ASSERT_EQUAL(resp.status, 200);
	CU_ASSERT_EQUAL(resp.endpoint, 1);
	CU_ASSERT(ms >= 500 && ms < 500 + HTTP_SLACK_MS);
	printf("(left the hung member %lld ms after the start, demoted at 500) ", (long long)ms);
	vf_buf_free(&got);
	vf_http_resp_free(&resp);
	fx_stop(&fx);
}

void vf_test_register(void)
{
	CU_pSuite s = CU_add_suite("http", NULL, NULL);

	if (s == NULL)
		vf_test_abort("http");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	VF_ADD_TEST(s, test_read_deadline_across_endpoints);
	VF_ADD_TEST(s, test_all_hang_bounded);
	VF_ADD_TEST(s, test_write_timeout_demotes);
	VF_ADD_TEST(s, test_refused_and_dropped);
	VF_ADD_TEST(s, test_late_answer);
	VF_ADD_TEST(s, test_accept_then_close);
	VF_ADD_TEST(s, test_503_failover);
	VF_ADD_TEST(s, test_stream_not_replayed);
	VF_ADD_TEST(s, test_set_endpoints);
	VF_ADD_TEST(s, test_stream_first_byte_failover);
	VF_ADD_TEST(s, test_long_poll_leaves_demoted);
}
