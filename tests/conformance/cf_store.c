/* Conformance (conformance.h): The store itself failing: paused, killed, answering as something
 * else (404), and authentication. Every case needs a harness server. */
#include <config.h>

#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "conformance.h"

/* ---- 9. the store stopped or killed ---- */
static void cf_expect_down(const char *k, const char *what)
{
	struct vf_err err = {0};
	struct vf_kv_pair p = {0};
	struct vf_kv_list l = {0};
	int64_t t0;
	int rc;

	t0 = vf_test_now_ms();
	rc = cf_ops->get(cf_kv, k, &p, &err);
	vf_kv_pair_clear(&p);
	cf_note("%s: get %s in %" PRId64 " ms", what, vf_strerror(rc), vf_test_now_ms() - t0);
	CU_ASSERT_EQUAL(rc, VF_EUNAVAIL);
	CU_ASSERT(vf_test_now_ms() - t0 <= cf_bound_ms());
	CU_ASSERT(err.msg[0] != '\0');

	t0 = vf_test_now_ms();
	rc = cf_ops->list(cf_kv, k, &l, &err);
	vf_kv_list_clear(&l);
	CU_ASSERT_EQUAL(rc, VF_EUNAVAIL);
	CU_ASSERT(vf_test_now_ms() - t0 <= cf_bound_ms());

	t0 = vf_test_now_ms();
	rc = cf_ops->put(cf_kv, k, "lost?", 5, NULL, NULL, &err);
	cf_note("put %s in %" PRId64 " ms", vf_strerror(rc), vf_test_now_ms() - t0);
	CU_ASSERT(rc == VF_EUNAVAIL || rc == VF_EUNCERTAIN);
	CU_ASSERT(vf_test_now_ms() - t0 <= cf_bound_ms());

	t0 = vf_test_now_ms();
	rc = cf_ops->cas(cf_kv, k, "cas?", 4, 1, NULL, NULL, &err);
	CU_ASSERT(rc == VF_EUNAVAIL || rc == VF_EUNCERTAIN);
	CU_ASSERT(vf_test_now_ms() - t0 <= cf_bound_ms());
}

/* After the store is back, the same handle works again (bounded poll). */
static void cf_expect_back(const char *k, const char *what)
{
	struct vf_err err = {0};
	int64_t t0 = vf_test_now_ms(), deadline = t0 + 15000 * cf_slow;
	int rc, tries = 0;

	do {
		tries++;
		rc = cf_ops->put(cf_kv, k, "back", 4, NULL, NULL, &err);
		if (rc != VF_OK)
			vf_test_sleep_ms(100);
	} while (rc != VF_OK && vf_test_now_ms() < deadline);
	CF_OK(rc);
	cf_note("%s: put ok after %d tries, %" PRId64 " ms", what, tries, vf_test_now_ms() - t0);
	{
		char v[64];

		CF_OK(cf_get_str(cf_kv, k, v, sizeof(v), NULL, &err));
		CU_ASSERT_STRING_EQUAL(v, "back");
	}
}

static void test_unavail_paused(void)
{
	struct vf_err err = {0};
	char k[256], kb[256];

	cf_case("unavail_paused", 120);
	cf_key(k, sizeof(k), "down", "paused");
	/* The writes tried while paused are uncertain: they may still land after the
	 * resume, so the check afterwards uses another key. */
	cf_key(kb, sizeof(kb), "down", "paused-back");
	CF_OK_FATAL(cf_ops->put(cf_kv, k, "before", 6, NULL, NULL, &err));
	CU_ASSERT_EQUAL_FATAL(vf_srv_pause(cf_srv), 0);
	cf_expect_down(k, "paused");
	CU_ASSERT_EQUAL(vf_srv_resume(cf_srv), 0);
	cf_expect_back(kb, "resumed");
}

static void test_unavail_killed(void)
{
	struct vf_err err = {0};
	char k[256], k2[256], v[64], why[512];

	cf_case("unavail_killed", 120);
	cf_key(k, sizeof(k), "down", "killed");
	cf_key(k2, sizeof(k2), "down", "kept");
	CF_OK_FATAL(cf_ops->put(cf_kv, k2, "kept", 4, NULL, NULL, &err));
	CU_ASSERT_EQUAL_FATAL(vf_srv_kill(cf_srv), 0);
	cf_expect_down(k, "killed");
	if (vf_srv_restart(cf_srv, why, sizeof(why)) != 0) {
		fprintf(stderr, "\nrestart: %s\n", why);
		CU_FAIL_FATAL("server restart");
	}
	cf_expect_back(k, "restarted");
	CF_OK(cf_get_str(cf_kv, k2, v, sizeof(v), NULL, &err));
	CU_ASSERT_STRING_EQUAL(v, "kept");
}

/* ---- 10. authentication ---- */
static void cf_expect_auth_fail(struct vf_kv *kv, const char *k, const char *secret,
                                const char *what)
{
	struct vf_err err = {0};
	struct vf_kv_pair p = {0};
	int rc;

	rc = kv->ops->get(kv, k, &p, &err);
	vf_kv_pair_clear(&p);
	cf_note("%s: get %s: %s", what, vf_strerror(rc), err.msg);
	CU_ASSERT_EQUAL(rc, VF_EAUTH);
	CU_ASSERT(err.msg[0] != '\0');
	CU_ASSERT(strstr(err.msg, secret) == NULL);
	memset(&err, 0, sizeof(err));
	rc = kv->ops->put(kv, k, "x", 1, NULL, NULL, &err);
	CU_ASSERT_EQUAL(rc, VF_EAUTH);
	CU_ASSERT(strstr(err.msg, secret) == NULL);
}

static void test_auth(void)
{
	struct vf_srv *srv = NULL;
	struct vf_srv_opts o = {.auth = 1, .timeout_ms = cf_timeout_ms};
	struct vf_err err = {0};
	struct vf_kv *good = NULL, *bad = NULL, *none = NULL;
	char why[512], k[256], v[64];
	const char *badcfg, *wrong;

	cf_case("auth", 120);
	if (vf_srv_start(cf_srv->kind, &o, &srv, why, sizeof(why)) != 0) {
		fprintf(stderr, "\nauth server: %s\n", why);
		CU_FAIL_FATAL("cannot start a server with auth");
	}
	cf_key(k, sizeof(k), "auth", "k");
	CF_OK_FATAL(cf_open(vf_srv_auth_config(srv, 1), &good, &err));
	CF_OK_FATAL(cf_open(vf_srv_auth_config(srv, 0), &bad, &err));
	CF_OK_FATAL(cf_open(vf_srv_config(srv), &none, &err));

	CF_OK(good->ops->put(good, k, "ok", 2, NULL, NULL, &err));
	CF_OK(cf_get_str(good, k, v, sizeof(v), NULL, &err));
	CU_ASSERT_STRING_EQUAL(v, "ok");

	/* The wrong secret as written in the bad config, to check messages for it. */
	badcfg = vf_srv_auth_config(srv, 0);
	wrong = strrchr(badcfg, '=');
	{
		char secret[128] = "";

		if (wrong)
			sscanf(wrong, "= \"%127[^\"]\"", secret);
		CU_ASSERT(secret[0] != '\0');
		cf_expect_auth_fail(bad, k, vf_srv_secret(srv), "wrong secret");
		if (secret[0]) {
			struct vf_err e2 = {0};

			bad->ops->get(bad, k, &(struct vf_kv_pair){0}, &e2);
			CU_ASSERT(strstr(e2.msg, secret) == NULL);
		}
	}
	cf_expect_auth_fail(none, k, vf_srv_secret(srv), "no credentials");
	/* The right credentials still work after the failures. */
	CF_OK(cf_get_str(good, k, v, sizeof(v), NULL, &err));
	CU_ASSERT_STRING_EQUAL(v, "ok");
	good->ops->close(good);
	bad->ops->close(bad);
	none->ops->close(none);
	vf_srv_stop(&srv);
}

struct cf_http404 {
	int fd, port, stop;
	pthread_t th;
};

static void *cf_http404_main(void *arg)
{
	struct cf_http404 *s = arg;

	while (!s->stop) {
		int c = accept(s->fd, NULL, NULL);
		char buf[4096];
		static const char resp[] =
		        "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
		        "Content-Length: 9\r\nConnection: close\r\n\r\nnot here\n";

		if (c < 0)
			continue;
		(void)!read(c, buf, sizeof(buf));
		(void)!write(c, resp, sizeof(resp) - 1);
		close(c);
	}
	return NULL;
}

/* kv.h: an endpoint that does not answer as the store does is refused. */
static void test_not_the_store(void)
{
	struct vf_err err = {0};
	struct cf_http404 s = {0};
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t al = sizeof(a);
	struct vf_kv *bkv = NULL;
	struct vf_kv_pair p = {0};
	struct vf_kv_list l = {0};
	char cfg[256], k[256];
	int rc, one = 1;

	cf_case("not_the_store", 60);
	s.fd = socket(AF_INET, SOCK_STREAM, 0);
	CU_ASSERT_FATAL(s.fd >= 0);
	setsockopt(s.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CU_ASSERT_FATAL(bind(s.fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	CU_ASSERT_FATAL(listen(s.fd, 16) == 0);
	getsockname(s.fd, (struct sockaddr *)&a, &al);
	s.port = ntohs(a.sin_port);
	CU_ASSERT_FATAL(pthread_create(&s.th, NULL, cf_http404_main, &s) == 0);
	snprintf(cfg, sizeof(cfg), "endpoints = [\"http://127.0.0.1:%d\"]; timeout_ms = %d;",
	         s.port, cf_timeout_ms);
	CF_OK_FATAL(cf_open(cfg, &bkv, &err));
	cf_key(k, sizeof(k), "notstore", "k");
	rc = bkv->ops->get(bkv, k, &p, &err);
	vf_kv_pair_clear(&p);
	cf_note("get from a 404 server: %s: %s", vf_strerror(rc), err.msg);
	CU_ASSERT_EQUAL(rc, VF_EPROTO);
	rc = bkv->ops->list(bkv, k, &l, &err);
	vf_kv_list_clear(&l);
	CU_ASSERT_EQUAL(rc, VF_EPROTO);
	rc = bkv->ops->put(bkv, k, "x", 1, NULL, NULL, &err);
	CU_ASSERT(rc != VF_OK && rc != VF_ENOTFOUND);
	bkv->ops->close(bkv);
	s.stop = 1;
	shutdown(s.fd, SHUT_RDWR);
	close(s.fd);
	pthread_join(s.th, NULL);
}

void cf_register_store(CU_pSuite s)
{
	CF_ADD(s, test_unavail_paused, cf_no_server());
	CF_ADD(s, test_unavail_killed, cf_no_server());
	CF_ADD(s, test_auth, cf_no_server());
	CF_ADD(s, test_not_the_store, cf_no_server());
}
