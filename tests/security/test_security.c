/*
 * Security tests against real servers the test starts itself:
 *  - etcd over TLS with client-certificate authentication (certificates made
 *    with openssl by mkcerts.sh): works with cacert/cert/key; a missing client
 *    certificate, a client certificate from another CA, or a wrong CA fail with a
 *    clear VF_EAUTH / VF_EUNAVAIL message;
 *  - Consul over its HTTPS port (verify_incoming_https) with ACLs (default deny)
 *    and a token limited to "vfile/": works inside the prefix, VF_EAUTH outside,
 *    with a wrong token and without one;
 *  - etcd with auth and a user whose role is limited to "vfile/": works inside,
 *    VF_EAUTH outside and with a wrong password;
 *  - vfiled: refuses a config holding a secret that others can read, and creates
 *    its plugin socket mode 0660 with the configured group;
 *  - no password, token or private key in any message, server log or vfiled log
 *    (every secret is also listed for tests/security/secrets.test).
 * The sftp confinement (sftp only, cluster key only, inside the volume) is tested
 * by tests/fs/test_sftp.c.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_int.h"
#include "harness.h"
#include "common_int.h"
#include "vfile/vfile.h"

#define SEC_PREFIX "vfile/"

static char sec_dir[256];      /* temp dir: certificates, configs, logs */
static char sec_certs[320];    /* sec_dir/certs */
static char *sec_key_lines[8]; /* a body line of every private key */
static size_t sec_nkey_lines;
static struct vf_srv *sec_srv; /* the server of the current suite */
static struct vf_backend *sec_be;
static pid_t sec_vfiled_pid;

/* ---- helpers ---- */

/* Remember a secret for tests/security/secrets.test (next to the harness's list). */
static void sec_note_secret(const char *secret)
{
	const char *top = getenv("top_builddir");
	char path[4200];
	FILE *f;

	if (top == NULL || *top == '\0')
		return;
	snprintf(path, sizeof(path), "%s/tests/security/secrets.list", top);
	f = fopen(path, "a");
	if (f == NULL)
		return;
	fprintf(f, "%s\n", secret);
	fclose(f);
}

static char *sec_read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	struct vf_buf b = {0};
	char chunk[8192];
	size_t n;

	if (f == NULL)
		return NULL;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (vf_buf_add(&b, chunk, n) != VF_OK)
			break;
	fclose(f);
	if (b.data == NULL)
		return strdup("");
	return b.data;
}

/* 1 if text holds any known secret or private-key material; names it in which. */
static int sec_has_secret(const char *text, const char *extra, const char **which)
{
	if (text == NULL)
		return 0;
	if (strstr(text, "PRIVATE KEY")) {
		*which = "a PEM private key";
		return 1;
	}
	for (size_t i = 0; i < sec_nkey_lines; i++)
		if (strstr(text, sec_key_lines[i])) {
			*which = "private key material";
			return 1;
		}
	if (sec_srv) {
		const char *cands[] = {sec_srv->user_secret, sec_srv->admin_secret};

		for (size_t i = 0; i < 2; i++)
			if (cands[i][0] && strstr(text, cands[i])) {
				*which = i ? "the admin secret" : "the user secret";
				return 1;
			}
	}
	if (extra && *extra && strstr(text, extra)) {
		*which = "a test secret";
		return 1;
	}
	return 0;
}

#define SEC_NO_SECRET(text, extra)                                                                 \
	do {                                                                                       \
		const char *which_ = NULL;                                                         \
		int has_ = sec_has_secret((text), (extra), &which_);                               \
		if (has_)                                                                          \
			fprintf(stderr, "\n%s:%d: %s shows %s\n", __FILE__, __LINE__, #text,       \
			        which_);                                                           \
		CU_ASSERT_FALSE(has_);                                                             \
	} while (0)

#define SEC_RC(expr, want)                                                                         \
	do {                                                                                       \
		int rc_ = (expr);                                                                  \
		if (rc_ != (want))                                                                 \
			fprintf(stderr, "\n%s:%d: %s = %d (%s), want %d: %s\n", __FILE__,          \
			        __LINE__, #expr, rc_, vf_strerror(rc_), (want), err.msg);          \
		CU_ASSERT_EQUAL(rc_, (want));                                                      \
	} while (0)
#define SEC_OK(expr) SEC_RC(expr, VF_OK)

/* The member logs of the current server hold no secret. */
static void sec_check_server_logs(void)
{
	char path[4200];

	if (sec_srv == NULL)
		return;
	for (int i = 0; i < sec_srv->nmembers; i++) {
		char *log = sec_read_file(vf_srv_log(sec_srv, i, path, sizeof(path)));

		CU_ASSERT_PTR_NOT_NULL(log);
		SEC_NO_SECRET(log, NULL);
		free(log);
	}
}

static int sec_run(const char *cmd)
{
	int st = system(cmd);

	return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Open a handle of the loaded backend from "<settings>" for its group. */
static int sec_open(const char *settings, struct vf_kv **kv_r, struct vf_err *err)
{
	const char *group = vf_srv_backend_name(sec_srv);
	config_t cfg;
	char *text = NULL;
	int rc;

	*kv_r = NULL;
	config_init(&cfg);
	if (asprintf(&text, "%s = { %s };", group, settings) < 0) {
		config_destroy(&cfg);
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	}
	if (config_read_string(&cfg, text) != CONFIG_TRUE)
		rc = vf_err_set(err, VF_EINVAL, "bad config snippet: %s", config_error_text(&cfg));
	else
		rc = vf_backend_open(sec_be, config_lookup(&cfg, group), kv_r, err);
	config_destroy(&cfg);
	free(text);
	return rc;
}

static void sec_close(struct vf_kv **kv)
{
	if (*kv)
		(*kv)->ops->close(*kv);
	*kv = NULL;
}

/* settings = srv config + extra, in buf. */
static const char *sec_settings(char *buf, size_t size, const char *base, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static const char *sec_settings(char *buf, size_t size, const char *base, const char *fmt, ...)
{
	va_list ap;
	size_t n = (size_t)snprintf(buf, size, "%s ", base);

	va_start(ap, fmt);
	if (n < size)
		vsnprintf(buf + n, size - n, fmt, ap);
	va_end(ap);
	return buf;
}

static const char *sec_cert(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s.pem", sec_certs, name);
	return buf;
}

/* TLS settings: cacert, and (if client) cert + key of the named client. */
static const char *sec_tls(char *buf, size_t size, const char *ca, const char *client)
{
	int n = snprintf(buf, size, "connect_timeout_ms = 15000; cacert = \"%s/%s.pem\";",
	                 sec_certs, ca);

	if (client && n > 0 && (size_t)n < size)
		snprintf(buf + n, size - (size_t)n,
		         " cert = \"%s/%s.pem\"; key = \"%s/%s-key.pem\";", sec_certs, client,
		         sec_certs, client);
	return buf;
}

/* The work a volume manager does, inside the prefix: put, get, list, cas, txn,
 * lease, lock, watch. Every step must succeed. */
static int sec_watch_cb(const struct vf_kv_event *ev, void *arg)
{
	volatile int *got = arg;

	if (ev->type == VF_EV_PUT && strcmp(ev->key, SEC_PREFIX "sec/w") == 0)
		*got = 1;
	return 0;
}

static void sec_exercise(struct vf_kv *kv)
{
	const struct vf_kv_ops *o = kv->ops;
	struct vf_err err = {0};
	struct vf_kv_pair p = {0};
	struct vf_kv_list l = {0};
	struct vf_kv_lease *lease = NULL;
	struct vf_kv_lock *lock = NULL;
	struct vf_kv_watch *w = NULL;
	volatile int got = 0;
	int64_t rev = 0;
	int ttl = kv->min_lease_ttl_s > 10 ? kv->min_lease_ttl_s : 10;

	SEC_OK(o->put(kv, SEC_PREFIX "sec/a", "1", 1, NULL, &rev, &err));
	SEC_OK(o->get(kv, SEC_PREFIX "sec/a", &p, &err));
	CU_ASSERT(p.value && strcmp(p.value, "1") == 0);
	SEC_OK(o->cas(kv, SEC_PREFIX "sec/a", "2", 1, p.mod_rev, NULL, NULL, &err));
	vf_kv_pair_clear(&p);
	SEC_OK(o->list(kv, SEC_PREFIX "sec/", &l, &err));
	CU_ASSERT(l.count >= 1);
	vf_kv_list_clear(&l);
	SEC_OK(o->lease_grant(kv, ttl, 0, NULL, NULL, &lease, &err));
	if (lease) {
		SEC_OK(o->lock(kv, lease, SEC_PREFIX "lock/sec", 5000, NULL, 0, NULL, &lock, &err));
		if (lock) {
			struct vf_kv_cmp c = {.kind = VF_CMP_LOCK_HELD, .lock = lock};
			struct vf_kv_op op = {.kind = VF_OP_PUT,
			                      .key = SEC_PREFIX "sec/b",
			                      .value = "x",
			                      .value_len = 1};

			SEC_OK(o->txn(kv, &c, 1, &op, 1, NULL, &err));
			SEC_OK(o->unlock(kv, &lock, &err));
		}
		SEC_OK(o->lease_revoke(kv, &lease, &err));
	}
	SEC_OK(o->watch_start(kv, SEC_PREFIX "sec/", 0, sec_watch_cb, (void *)&got, &w, &err));
	if (w) {
		/* Consul's watch starts with a listing: put until the event arrives. */
		for (int64_t end = vf_test_now_ms() + 15000; !got && vf_test_now_ms() < end;) {
			SEC_OK(o->put(kv, SEC_PREFIX "sec/w", "w", 1, NULL, NULL, &err));
			for (int i = 0; i < 20 && !got; i++)
				vf_test_sleep_ms(50);
		}
		CU_ASSERT(got);
		o->watch_stop(kv, &w);
	}
	SEC_OK(o->del(kv, SEC_PREFIX "sec/a", &err));
}

/* A refused request: want one of the codes, a one-line message naming the cause,
 * and no secret in it. */
static void sec_refused(int rc, const struct vf_err *err, int want1, int want2, const char *word)
{
	if (rc != want1 && rc != want2)
		fprintf(stderr, "\nrefused with %d (%s), want %s or %s: %s\n", rc, vf_strerror(rc),
		        vf_strerror(want1), vf_strerror(want2), err->msg);
	CU_ASSERT(rc == want1 || rc == want2);
	CU_ASSERT(err->msg[0] != '\0');
	CU_ASSERT(strchr(err->msg, '\n') == NULL);
	if (word && strcasestr(err->msg, word) == NULL) {
		fprintf(stderr, "\nmessage does not mention '%s': %s\n", word, err->msg);
		CU_FAIL("message does not name the cause");
	}
	SEC_NO_SECRET(err->msg, NULL);
	printf("\n    refused (%s): %s ", vf_strerror(rc), err->msg);
}

/* ---- setup ---- */

static void sec_load_key_lines(void)
{
	static const char *keys[] = {"ca-key", "server-key", "client-key", "other-ca-key",
	                             "other-client-key"};

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char path[400], *text, *nl;

		snprintf(path, sizeof(path), "%s/%s.pem", sec_certs, keys[i]);
		text = sec_read_file(path);
		/* the first base64 line after the BEGIN line */
		nl = text ? strchr(text, '\n') : NULL;
		if (nl && strchr(nl + 1, '\n')) {
			*strchr(nl + 1, '\n') = '\0';
			sec_key_lines[sec_nkey_lines] = strdup(nl + 1);
			if (sec_key_lines[sec_nkey_lines]) {
				sec_note_secret(sec_key_lines[sec_nkey_lines]);
				sec_nkey_lines++;
			}
		}
		free(text);
	}
}

static int sec_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	remove(path);
	return 0;
}

static void sec_rm_tree(const char *dir)
{
	if (dir[0])
		nftw(dir, sec_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void sec_vfiled_kill(void)
{
	if (sec_vfiled_pid > 0) {
		kill(-sec_vfiled_pid, SIGKILL);
		waitpid(sec_vfiled_pid, NULL, 0);
		sec_vfiled_pid = 0;
	}
}

static void sec_atexit(void)
{
	sec_vfiled_kill();
	vf_srv_stop(&sec_srv);
	vf_backend_unload(&sec_be);
	for (size_t i = 0; i < sec_nkey_lines; i++)
		free(sec_key_lines[i]);
	sec_nkey_lines = 0;
	if (getenv("VFILE_KEEP") == NULL)
		sec_rm_tree(sec_dir);
}

static void sec_setup(void)
{
	const char *src = getenv("top_srcdir");
	const char *tmp = getenv("TMPDIR");
	char cmd[1200];

	snprintf(sec_dir, sizeof(sec_dir), "%s/vfile-sec-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(sec_dir) == NULL)
		vf_test_unavailable("mkdtemp failed");
	atexit(sec_atexit);
	snprintf(sec_certs, sizeof(sec_certs), "%s/certs", sec_dir);
	if (mkdir(sec_certs, 0700) != 0)
		vf_test_unavailable("cannot make the certificate dir");
	snprintf(cmd, sizeof(cmd), "sh '%s/tests/security/mkcerts.sh' '%s'", src ? src : ".",
	         sec_certs);
	if (sec_run(cmd) != 0)
		vf_test_unavailable("openssl could not make the test certificates (mkcerts.sh)");
	sec_load_key_lines();
	/* Everything the backends log goes into this program's log, which is scanned. */
	vf_log_set_level(VF_LOG_DEBUG);
}

static int sec_start(int kind, const struct vf_srv_opts *opts_in)
{
	struct vf_srv_opts opts = *opts_in;
	char why[600];

	/* Generous request timeouts: TLS handshakes are slow under valgrind. */
	opts.timeout_ms = 15000;
	if (vf_srv_start(kind, &opts, &sec_srv, why, sizeof(why)) != 0) {
		char msg[700];

		snprintf(msg, sizeof(msg), "cannot start the server: %s", why);
		vf_test_unavailable(msg);
	}
	sec_note_secret(sec_srv->user_secret);
	sec_note_secret(sec_srv->admin_secret);
	{
		struct vf_err err = {0};

		if (vf_backend_load(vf_srv_backend_name(sec_srv), NULL, &sec_be, &err) != VF_OK) {
			fprintf(stderr, "cannot load the backend: %s\n", err.msg);
			return -1;
		}
	}
	return 0;
}

/* Last test of every suite (CUnit asserts only inside tests). */
static void test_server_logs(void)
{
	sec_check_server_logs();
}

static int sec_stop(void)
{
	vf_srv_stop(&sec_srv);
	vf_backend_unload(&sec_be);
	return 0;
}

/* ---- etcd over TLS ---- */

static int etcd_tls_init(void)
{
	char cert[400], key[400], ca[400];
	struct vf_srv_opts o = {0};

	o.tls_cert = sec_cert(cert, sizeof(cert), "server");
	snprintf(key, sizeof(key), "%s/server-key.pem", sec_certs);
	o.tls_key = key;
	o.tls_ca = sec_cert(ca, sizeof(ca), "ca");
	o.tls_client_auth = 1;
	return sec_start(VF_SRV_ETCD, &o);
}

static void test_etcd_tls_ok(void)
{
	char s[2048], t[1024];
	struct vf_err err = {0};
	struct vf_kv *kv = NULL;

	CU_ASSERT(strstr(vf_srv_config(sec_srv), "https://") != NULL);
	SEC_OK(sec_open(sec_settings(s, sizeof(s), vf_srv_config(sec_srv), "%s",
	                             sec_tls(t, sizeof(t), "ca", "client")),
	                &kv, &err));
	if (kv)
		sec_exercise(kv);
	sec_close(&kv);
}

static void sec_expect_refused(const char *tls, int want1, int want2, const char *word)
{
	char s[2048];
	struct vf_err err = {0};
	struct vf_kv *kv = NULL;
	struct vf_kv_pair p = {0};
	int rc;

	SEC_OK(sec_open(sec_settings(s, sizeof(s), vf_srv_config(sec_srv), "%s", tls), &kv, &err));
	if (kv == NULL)
		return;
	rc = kv->ops->get(kv, SEC_PREFIX "sec/a", &p, &err);
	sec_refused(rc, &err, want1, want2, word);
	vf_kv_pair_clear(&p);
	memset(&err, 0, sizeof(err));
	rc = kv->ops->put(kv, SEC_PREFIX "sec/a", "x", 1, NULL, NULL, &err);
	sec_refused(rc, &err, want1, want2, word);
	sec_close(&kv);
}

static void test_etcd_tls_no_client_cert(void)
{
	char t[1024];

	/* The server wants a certificate: the handshake fails, nothing is applied. */
	sec_expect_refused(sec_tls(t, sizeof(t), "ca", NULL), VF_EAUTH, VF_EAUTH, "certificate");
}

static void test_etcd_tls_other_client_ca(void)
{
	char t[1024];

	sec_expect_refused(sec_tls(t, sizeof(t), "ca", "other-client"), VF_EAUTH, VF_EAUTH,
	                   "certificate");
}

static size_t sec_drop(const char *p, size_t n, void *arg)
{
	(void)p, (void)arg;
	return n;
}

/* A refused client certificate is VF_EAUTH naming the certificate on every path
 * (reads, writes, streams) and both TLS versions, every time, never "outcome
 * unknown": the server processed nothing. A refused connection is closed, so
 * each request opens a new one and races the server's refusal (with TLS 1.3 it
 * comes after the client's side of the handshake) against its first write. */
static void sec_http_refused(int tls_max, const char *client)
{
	static const char body[] = "{\"key\":\"dmZpbGUvc2VjL2E=\",\"value\":\"eA==\"}";
	char url[64], ca[400], cert[400], key[400];
	char *ep[1] = {url};
	struct vf_http_cfg hc = {.endpoints = ep, .nendpoints = 1, .timeout_ms = 15000};
	struct vf_http *h = NULL;
	struct vf_err err = {0};
	int auth = 0, tries = 0;

	snprintf(url, sizeof(url), "https://127.0.0.1:%d", sec_srv->m[0].client_port);
	hc.connect_timeout_ms = 15000;
	hc.cacert = (char *)sec_cert(ca, sizeof(ca), "ca");
	if (client) {
		hc.cert = (char *)sec_cert(cert, sizeof(cert), client);
		snprintf(key, sizeof(key), "%s/%s-key.pem", sec_certs, client);
		hc.key = key;
	}
	hc.tls_max = tls_max;
	SEC_OK(vf_http_new(&hc, &h, &err));
	if (h == NULL)
		return;
	for (int i = 0; i < 24; i++) {
		volatile int cancel = 0;
		struct vf_http_req rq = {.method = "POST",
		                         .path = i % 3 == 1 ? "/v3/kv/range" : "/v3/kv/put",
		                         .body = body,
		                         .body_len = sizeof(body) - 1,
		                         .idempotent = i % 3 == 1};
		struct vf_http_resp resp;
		int rc;

		if (i % 3 == 2) { /* a stream: the watch and lock-wait path */
			rq.path = "/v3/watch";
			rq.timeout_ms = -1;
			rq.on_data = sec_drop;
			rq.cancel = &cancel;
		}
		memset(&err, 0, sizeof(err));
		rc = vf_http_do(h, &rq, &resp, &err);
		tries++;
		if (rc == VF_EAUTH && strcasestr(err.msg, "certificate"))
			auth++;
		else
			fprintf(stderr,
			        "\nTLS 1.%d, %s, request %d: %s (%s), want %s naming the "
			        "certificate\n",
			        tls_max % 10, client ? client : "no client certificate", i,
			        vf_strerror(rc), err.msg, vf_strerror(VF_EAUTH));
		SEC_NO_SECRET(err.msg, NULL);
		if (rc == VF_OK)
			vf_http_resp_free(&resp);
	}
	CU_ASSERT_EQUAL(auth, tries);
	printf("\n    TLS 1.%d, %s: %d/%d refused as %s ", tls_max % 10,
	       client ? client : "no client certificate", auth, tries, vf_strerror(VF_EAUTH));
	vf_http_free(&h);
}

static void test_etcd_tls12_refused_every_time(void)
{
	sec_http_refused(12, NULL);
	sec_http_refused(12, "other-client");
}

static void test_etcd_tls13_refused_every_time(void)
{
	sec_http_refused(13, NULL);
	sec_http_refused(13, "other-client");
}

/* The right certificate over either version: the probe a failure may run never
 * turns a working connection into a refusal. */
static void test_etcd_tls_versions_ok(void)
{
	static const char body[] = "{\"key\":\"dmZpbGUvc2VjL3Y=\",\"value\":\"eA==\"}";
	char url[64], ca[400], cert[400], key[400];
	char *ep[1] = {url};
	struct vf_http_cfg hc = {.endpoints = ep, .nendpoints = 1, .timeout_ms = 15000};

	snprintf(url, sizeof(url), "https://127.0.0.1:%d", sec_srv->m[0].client_port);
	hc.connect_timeout_ms = 15000;
	hc.cacert = (char *)sec_cert(ca, sizeof(ca), "ca");
	hc.cert = (char *)sec_cert(cert, sizeof(cert), "client");
	snprintf(key, sizeof(key), "%s/client-key.pem", sec_certs);
	hc.key = key;
	for (int v = 12; v <= 13; v++) {
		struct vf_http *h = NULL;
		struct vf_err err = {0};
		struct vf_http_resp resp;
		struct vf_http_req rq = {.method = "POST",
		                         .path = "/v3/kv/put",
		                         .body = body,
		                         .body_len = sizeof(body) - 1};

		hc.tls_max = v;
		SEC_OK(vf_http_new(&hc, &h, &err));
		if (h == NULL)
			continue;
		int rc = vf_http_do(h, &rq, &resp, &err);

		SEC_RC(rc, VF_OK);
		if (rc == VF_OK) {
			CU_ASSERT_EQUAL(resp.status, 200);
			vf_http_resp_free(&resp);
		}
		vf_http_free(&h);
	}
}

static void test_etcd_tls_wrong_ca(void)
{
	char t[1024];

	/* The client does not trust the server's certificate. */
	sec_expect_refused(sec_tls(t, sizeof(t), "other-ca", "client"), VF_EAUTH, VF_EAUTH, "TLS");
}

/* ---- Consul over HTTPS with ACLs ---- */

static int consul_init(void)
{
	char cert[400], key[400], ca[400];
	struct vf_srv_opts o = {0};

	o.auth = 1;
	o.acl_prefix = SEC_PREFIX;
	o.tls_cert = sec_cert(cert, sizeof(cert), "server");
	snprintf(key, sizeof(key), "%s/server-key.pem", sec_certs);
	o.tls_key = key;
	o.tls_ca = sec_cert(ca, sizeof(ca), "ca");
	o.tls_client_auth = 1;
	return sec_start(VF_SRV_CONSUL, &o);
}

/* Write secret to sec_dir/name (mode 0600, with a newline); its path into buf. */
static const char *sec_secret_file(char *buf, size_t size, const char *name, const char *secret)
{
	FILE *f;

	snprintf(buf, size, "%s/%s", sec_dir, name);
	f = fopen(buf, "w");
	CU_ASSERT_PTR_NOT_NULL(f);
	if (f) {
		fchmod(fileno(f), 0600);
		fprintf(f, "%s\n", secret);
		fclose(f);
	}
	return buf;
}

static void test_etcd_auth_password_file(void)
{
	char s[2048], path[600];
	struct vf_err err = {0};
	struct vf_kv *kv = NULL;

	/* password_file = an absolute path */
	sec_secret_file(path, sizeof(path), "etcd-password", vf_srv_secret(sec_srv));
	SEC_OK(sec_open(sec_settings(s, sizeof(s), vf_srv_config(sec_srv),
	                             "username = \"vfile\"; password_file = \"%s\";", path),
	                &kv, &err));
	if (kv)
		sec_exercise(kv);
	sec_close(&kv);
	/* a systemd credential: password_file names it, or the default name */
	setenv("CREDENTIALS_DIRECTORY", sec_dir, 1);
	SEC_OK(sec_open(sec_settings(s, sizeof(s), vf_srv_config(sec_srv),
	                             "username = \"vfile\"; password_file = \"etcd-password\";"),
	                &kv, &err));
	if (kv)
		sec_exercise(kv);
	sec_close(&kv);
	SEC_OK(sec_open(sec_settings(s, sizeof(s), vf_srv_config(sec_srv), "username = \"vfile\";"),
	                &kv, &err));
	if (kv)
		sec_exercise(kv);
	sec_close(&kv);
	unsetenv("CREDENTIALS_DIRECTORY");
}

static void test_etcd_auth_env(void)
{
	char user[300];
	struct vf_err err = {0};
	struct vf_kv *kv = NULL;

	/* etcdctl's ETCDCTL_USER=user:password, the config naming only endpoints */
	snprintf(user, sizeof(user), "vfile:%s", vf_srv_secret(sec_srv));
	setenv("ETCDCTL_USER", user, 1);
	SEC_OK(sec_open(vf_srv_config(sec_srv), &kv, &err));
	if (kv)
		sec_exercise(kv);
	sec_close(&kv);
	/* ETCDCTL_USER and ETCDCTL_PASSWORD */
	setenv("ETCDCTL_USER", "vfile", 1);
	setenv("ETCDCTL_PASSWORD", vf_srv_secret(sec_srv), 1);
	SEC_OK(sec_open(vf_srv_config(sec_srv), &kv, &err));
	if (kv)
		sec_exercise(kv);
	sec_close(&kv);
	unsetenv("ETCDCTL_USER");
	unsetenv("ETCDCTL_PASSWORD");
}

/* sec_exercise again on Consul: its watch diffs listings, so the watched key must
 * be new (an earlier exercise left it with the same value). */
static void sec_exercise_fresh(struct vf_kv *kv)
{
	struct vf_err err = {0};
	int rc = kv->ops->del(kv, SEC_PREFIX "sec/w", &err);

	CU_ASSERT(rc == VF_OK || rc == VF_ENOTFOUND);
	sec_exercise(kv);
}

static void test_consul_token_file(void)
{
	char s[2048], t[1024], path[600];
	struct vf_err err = {0};
	struct vf_kv *kv = NULL;

	sec_secret_file(path, sizeof(path), "consul-token", vf_srv_secret(sec_srv));
	SEC_OK(sec_open(sec_settings(s, sizeof(s), vf_srv_config(sec_srv),
	                             "token_file = \"%s\"; %s", path,
	                             sec_tls(t, sizeof(t), "ca", "client")),
	                &kv, &err));
	if (kv)
		sec_exercise_fresh(kv);
	sec_close(&kv);
	/* the consul CLI's CONSUL_HTTP_TOKEN_FILE, and the TLS files from CONSUL_CACERT,
	 * CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY: the config names only the endpoint */
	setenv("CONSUL_HTTP_TOKEN_FILE", path, 1);
	snprintf(path, sizeof(path), "%s/ca.pem", sec_certs);
	setenv("CONSUL_CACERT", path, 1);
	snprintf(path, sizeof(path), "%s/client.pem", sec_certs);
	setenv("CONSUL_CLIENT_CERT", path, 1);
	snprintf(path, sizeof(path), "%s/client-key.pem", sec_certs);
	setenv("CONSUL_CLIENT_KEY", path, 1);
	SEC_OK(sec_open(
	        sec_settings(s, sizeof(s), vf_srv_config(sec_srv), "connect_timeout_ms = 15000;"),
	        &kv, &err));
	if (kv)
		sec_exercise_fresh(kv);
	sec_close(&kv);
	unsetenv("CONSUL_HTTP_TOKEN_FILE");
	unsetenv("CONSUL_CACERT");
	unsetenv("CONSUL_CLIENT_CERT");
	unsetenv("CONSUL_CLIENT_KEY");
}

static void test_consul_tls_acl_ok(void)
{
	char s[2048], t[1024];
	struct vf_err err = {0};
	struct vf_kv *kv = NULL;

	CU_ASSERT(strstr(vf_srv_auth_config(sec_srv, 1), "https://") != NULL);
	SEC_OK(sec_open(sec_settings(s, sizeof(s), vf_srv_auth_config(sec_srv, 1), "%s",
	                             sec_tls(t, sizeof(t), "ca", "client")),
	                &kv, &err));
	if (kv)
		sec_exercise(kv);
	sec_close(&kv);
}

/* A token that may not write the session node (consul.session_node names a node
 * the policy does not grant): sessions fall back to the agent's node, with a
 * warning, and everything works as before. */
static void test_consul_session_node_refused(void)
{
	char s[2048], t[1024];
	struct vf_err err = {0};
	struct vf_kv *kv = NULL;

	SEC_OK(sec_open(sec_settings(s, sizeof(s), vf_srv_auth_config(sec_srv, 1),
	                             "%s session_node = \"vfile-not-granted\";",
	                             sec_tls(t, sizeof(t), "ca", "client")),
	                &kv, &err));
	if (kv) {
		/* sec_exercise's watch waits for a change of sec/w: an earlier
		 * exercise left it with the value it puts (Consul then sends no event) */
		kv->ops->del(kv, SEC_PREFIX "sec/w", &err);
		sec_exercise(kv);
	}
	sec_close(&kv);
}

/* Keys outside the prefix: refused with VF_EAUTH, for reads and writes. */
static void sec_outside_prefix(const char *settings)
{
	struct vf_err err = {0};
	struct vf_kv *kv = NULL;
	struct vf_kv_pair p = {0};
	int rc;

	SEC_OK(sec_open(settings, &kv, &err));
	if (kv == NULL)
		return;
	rc = kv->ops->put(kv, "other/x", "x", 1, NULL, NULL, &err);
	sec_refused(rc, &err, VF_EAUTH, VF_EAUTH, NULL);
	memset(&err, 0, sizeof(err));
	rc = kv->ops->get(kv, "other/x", &p, &err);
	sec_refused(rc, &err, VF_EAUTH, VF_EAUTH, NULL);
	vf_kv_pair_clear(&p);
	memset(&err, 0, sizeof(err));
	rc = kv->ops->del(kv, "other/x", &err);
	sec_refused(rc, &err, VF_EAUTH, VF_EAUTH, NULL);
	/* the prefix still works on the same handle */
	memset(&err, 0, sizeof(err));
	SEC_OK(kv->ops->put(kv, SEC_PREFIX "sec/in", "1", 1, NULL, NULL, &err));
	sec_close(&kv);
}

static void test_consul_outside_prefix(void)
{
	char s[2048], t[1024];

	sec_outside_prefix(sec_settings(s, sizeof(s), vf_srv_auth_config(sec_srv, 1), "%s",
	                                sec_tls(t, sizeof(t), "ca", "client")));
}

static void test_consul_wrong_token(void)
{
	char s[2048], t[1024];
	struct vf_err err = {0};
	struct vf_kv *kv = NULL;
	struct vf_kv_pair p = {0};
	int rc;

	SEC_OK(sec_open(sec_settings(s, sizeof(s), vf_srv_auth_config(sec_srv, 0), "%s",
	                             sec_tls(t, sizeof(t), "ca", "client")),
	                &kv, &err));
	if (kv == NULL)
		return;
	rc = kv->ops->get(kv, SEC_PREFIX "sec/a", &p, &err);
	sec_refused(rc, &err, VF_EAUTH, VF_EAUTH, NULL);
	/* the wrong token is a secret too */
	CU_ASSERT(strstr(err.msg, strrchr(vf_srv_auth_config(sec_srv, 0), '=') + 3) == NULL);
	vf_kv_pair_clear(&p);
	sec_close(&kv);
}

static void test_consul_no_token(void)
{
	char t[1024];

	/* default deny: anonymous requests are refused */
	unsetenv("CONSUL_HTTP_TOKEN");
	sec_expect_refused(sec_tls(t, sizeof(t), "ca", "client"), VF_EAUTH, VF_EAUTH, NULL);
}

static void test_consul_no_client_cert(void)
{
	char s[2048], t[1024];
	struct vf_err err = {0};
	struct vf_kv *kv = NULL;
	struct vf_kv_pair p = {0};
	int rc;

	/* sec_expect_refused would add the plain config: use the token config */
	SEC_OK(sec_open(sec_settings(s, sizeof(s), vf_srv_auth_config(sec_srv, 1), "%s",
	                             sec_tls(t, sizeof(t), "ca", NULL)),
	                &kv, &err));
	if (kv == NULL)
		return;
	rc = kv->ops->get(kv, SEC_PREFIX "sec/a", &p, &err);
	sec_refused(rc, &err, VF_EAUTH, VF_EUNAVAIL, NULL);
	vf_kv_pair_clear(&p);
	sec_close(&kv);
}

/* ---- etcd with auth ---- */

static int etcd_auth_init(void)
{
	struct vf_srv_opts o = {0};

	o.auth = 1;
	o.acl_prefix = SEC_PREFIX;
	return sec_start(VF_SRV_ETCD, &o);
}

static void test_etcd_auth_ok(void)
{
	struct vf_err err = {0};
	struct vf_kv *kv = NULL;

	SEC_OK(sec_open(vf_srv_auth_config(sec_srv, 1), &kv, &err));
	if (kv)
		sec_exercise(kv);
	sec_close(&kv);
}

static void test_etcd_auth_outside_prefix(void)
{
	sec_outside_prefix(vf_srv_auth_config(sec_srv, 1));
}

static void test_etcd_auth_wrong_password(void)
{
	struct vf_err err = {0};
	struct vf_kv *kv = NULL;
	struct vf_kv_pair p = {0};
	const char *bad = vf_srv_auth_config(sec_srv, 0);
	char wrong[100] = "";
	const char *q = strstr(bad, "password = \"");
	int rc;

	if (q)
		sscanf(q + 12, "%99[^\"]", wrong);
	CU_ASSERT(wrong[0] != '\0');
	sec_note_secret(wrong);
	SEC_OK(sec_open(bad, &kv, &err));
	if (kv == NULL)
		return;
	rc = kv->ops->get(kv, SEC_PREFIX "sec/a", &p, &err);
	sec_refused(rc, &err, VF_EAUTH, VF_EAUTH, "vfile");
	CU_ASSERT(strstr(err.msg, wrong) == NULL);
	vf_kv_pair_clear(&p);
	sec_close(&kv);
}

static void test_etcd_auth_no_user(void)
{
	struct vf_err err = {0};
	struct vf_kv *kv = NULL;
	struct vf_kv_pair p = {0};
	int rc;

	SEC_OK(sec_open(vf_srv_config(sec_srv), &kv, &err));
	if (kv == NULL)
		return;
	rc = kv->ops->get(kv, SEC_PREFIX "sec/a", &p, &err);
	sec_refused(rc, &err, VF_EAUTH, VF_EAUTH, NULL);
	vf_kv_pair_clear(&p);
	sec_close(&kv);
}

/* ---- vfiled: config permissions and the plugin socket ---- */

static int vfiled_init(void)
{
	struct vf_srv_opts o = {0};

	o.auth = 1;
	o.acl_prefix = SEC_PREFIX;
	return sec_start(VF_SRV_ETCD, &o);
}

static const char *sec_vfiled_bin(char *buf, size_t size)
{
	const char *top = getenv("top_builddir");

	snprintf(buf, size, "%s/vfiled", top && *top ? top : ".");
	return buf;
}

/* Write sec_dir/<name>.conf with mode; extra settings appended. */
static const char *sec_write_conf(char *path, size_t size, const char *name, mode_t mode,
                                  const char *store, const char *extra)
{
	const char *bdir = getenv("VFILE_BACKEND_DIR");
	FILE *f;

	snprintf(path, size, "%s/%s.conf", sec_dir, name);
	f = fopen(path, "w");
	if (f == NULL)
		return path;
	fprintf(f,
	        "node_id = \"%s\";\nrole = \"worker\";\nbackend = \"etcd\";\n"
	        "backend_dir = \"%s\";\nprefix = \"" SEC_PREFIX "\";\n"
	        "plugin_socket = \"%s/%s/plugin.sock\";\nmount_root = \"%s/%s/mnt\";\n"
	        "state_dir = \"%s/%s/state\";\nlog_level = \"debug\";\n"
	        "etcd = { %s };\nfileserver = { driver = \"none\"; };\n%s\n",
	        name, bdir ? bdir : ".", sec_dir, name, sec_dir, name, sec_dir, name, store,
	        extra ? extra : "");
	fclose(f);
	chmod(path, mode);
	return path;
}

/* Run vfiled with args; its output into sec_dir/<name>.log; returns the exit status
 * (bounded: 60 s, then killed: -1). */
static int sec_vfiled_run(const char *name, const char *conf, const char *arg, char **out_r)
{
	char bin[4200], log[600];
	pid_t pid;
	int st = 0;
	int64_t end = vf_test_now_ms() + 60000;

	snprintf(log, sizeof(log), "%s/%s.log", sec_dir, name);
	pid = fork();
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);

		setpgid(0, 0);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(sec_vfiled_bin(bin, sizeof(bin)), "vfiled", "-c", conf, arg, (char *)NULL);
		_exit(127);
	}
	if (pid < 0)
		return -1;
	while (waitpid(pid, &st, WNOHANG) == 0) {
		if (vf_test_now_ms() > end) {
			kill(-pid, SIGKILL);
			waitpid(pid, &st, 0);
			return -1;
		}
		vf_test_sleep_ms(20);
	}
	if (out_r)
		*out_r = sec_read_file(log);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void test_vfiled_refuses_readable_secret(void)
{
	char conf[600], store[1200], bin[4200];
	char *out = NULL;
	int st;

	if (access(sec_vfiled_bin(bin, sizeof(bin)), X_OK) != 0) {
		CU_FAIL("vfiled was not built");
		return;
	}
	/* the password is the right one: only the mode is wrong */
	snprintf(store, sizeof(store), "%s", vf_srv_auth_config(sec_srv, 1));
	sec_write_conf(conf, sizeof(conf), "perm644", 0644, store, NULL);
	st = sec_vfiled_run("perm644", conf, "--check-config", &out);
	printf("\n    mode 0644: exit %d: %s", st, out ? out : "");
	CU_ASSERT(st != 0 && st != -1);
	CU_ASSERT(out && strstr(out, "readable by others") != NULL);
	CU_ASSERT(out && strstr(out, conf) != NULL);
	SEC_NO_SECRET(out, NULL);
	free(out);
	out = NULL;

	/* group-readable is allowed (0640: root:vfile), others are not */
	chmod(conf, 0640);
	st = sec_vfiled_run("perm640", conf, "--check-config", &out);
	printf("\n    mode 0640: exit %d: %s", st, out ? out : "");
	CU_ASSERT(out && strstr(out, "readable by others") == NULL);
	CU_ASSERT_EQUAL(st, 0);
	SEC_NO_SECRET(out, NULL);
	free(out);
	out = NULL;

	/* no secret in it: a world-readable config is fine */
	sec_write_conf(conf, sizeof(conf), "nosecret", 0644, vf_srv_config(sec_srv), NULL);
	st = sec_vfiled_run("nosecret", conf, "--check-config", &out);
	CU_ASSERT(out && strstr(out, "readable by others") == NULL);
	CU_ASSERT_EQUAL(st, 0);
	free(out);
}

/* A group to give the socket other than our own (so that chown is visible). */
static const char *sec_pick_group(gid_t *gid_r)
{
	static const char *names[] = {"docker", "nogroup", "daemon", "users", "adm"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct group *g = getgrnam(names[i]);

		if (g && g->gr_gid != getegid()) {
			*gid_r = g->gr_gid;
			return names[i];
		}
	}
	*gid_r = getegid();
	return NULL;
}

static void test_vfiled_socket_mode_group(void)
{
	char conf[600], store[1200], bin[4200], sock[600], log[600], extra[200];
	const char *gname;
	gid_t gid;
	struct stat st;
	int ok = 0, status = 0;
	pid_t pid;
	char *out;

	gname = sec_pick_group(&gid);
	snprintf(extra, sizeof(extra), "socket_group = \"%s\";", gname ? gname : "root");
	snprintf(store, sizeof(store), "%s", vf_srv_auth_config(sec_srv, 1));
	sec_write_conf(conf, sizeof(conf), "sock", 0600, store, gname ? extra : NULL);
	snprintf(sock, sizeof(sock), "%s/sock/plugin.sock", sec_dir);
	snprintf(log, sizeof(log), "%s/sock", sec_dir);
	mkdir(log, 0755);
	snprintf(log, sizeof(log), "%s/sock.log", sec_dir);
	pid = fork();
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);

		setpgid(0, 0);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(sec_vfiled_bin(bin, sizeof(bin)), "vfiled", "-c", conf, (char *)NULL);
		_exit(127);
	}
	CU_ASSERT_FATAL(pid > 0);
	sec_vfiled_pid = pid;
	for (int64_t end = vf_test_now_ms() + 30000; vf_test_now_ms() < end;) {
		if (stat(sock, &st) == 0 && S_ISSOCK(st.st_mode)) {
			ok = 1;
			break;
		}
		if (waitpid(pid, &status, WNOHANG) == pid) {
			sec_vfiled_pid = 0;
			break;
		}
		vf_test_sleep_ms(50);
	}
	CU_ASSERT(ok);
	if (ok) {
		printf("\n    socket mode %04o gid %d (want 0660, %d %s)", st.st_mode & 07777,
		       (int)st.st_gid, (int)gid, gname ? gname : "own group");
		CU_ASSERT_EQUAL(st.st_mode & 07777, 0660);
		CU_ASSERT_EQUAL(st.st_gid, gid);
	}
	if (sec_vfiled_pid > 0) {
		kill(pid, SIGTERM);
		for (int64_t end = vf_test_now_ms() + 30000; vf_test_now_ms() < end;) {
			if (waitpid(pid, &status, WNOHANG) == pid) {
				sec_vfiled_pid = 0;
				break;
			}
			vf_test_sleep_ms(50);
		}
		CU_ASSERT_EQUAL(sec_vfiled_pid, 0); /* it exits on SIGTERM */
		sec_vfiled_kill();
	}
	/* its debug log holds no password */
	out = sec_read_file(log);
	CU_ASSERT_PTR_NOT_NULL(out);
	if (!ok && out)
		fprintf(stderr, "\nvfiled log:\n%s\n", out);
	SEC_NO_SECRET(out, NULL);
	free(out);
}

void vf_test_register(void)
{
	CU_pSuite s;

	sec_setup();
	s = CU_add_suite("etcd_tls", etcd_tls_init, sec_stop);
	if (s == NULL)
		vf_test_abort("suite etcd_tls");
	VF_ADD_TEST(s, test_etcd_tls_ok);
	VF_ADD_TEST(s, test_etcd_tls_no_client_cert);
	VF_ADD_TEST(s, test_etcd_tls_other_client_ca);
	VF_ADD_TEST(s, test_etcd_tls_wrong_ca);
	VF_ADD_TEST(s, test_etcd_tls_versions_ok);
	VF_ADD_TEST(s, test_etcd_tls12_refused_every_time);
	VF_ADD_TEST(s, test_etcd_tls13_refused_every_time);
	VF_ADD_TEST(s, test_server_logs);

	s = CU_add_suite("consul_tls_acl", consul_init, sec_stop);
	if (s == NULL)
		vf_test_abort("suite consul_tls_acl");
	VF_ADD_TEST(s, test_consul_tls_acl_ok);
	VF_ADD_TEST(s, test_consul_token_file);
	VF_ADD_TEST(s, test_consul_session_node_refused);
	VF_ADD_TEST(s, test_consul_outside_prefix);
	VF_ADD_TEST(s, test_consul_wrong_token);
	VF_ADD_TEST(s, test_consul_no_token);
	VF_ADD_TEST(s, test_consul_no_client_cert);
	VF_ADD_TEST(s, test_server_logs);

	s = CU_add_suite("etcd_auth", etcd_auth_init, sec_stop);
	if (s == NULL)
		vf_test_abort("suite etcd_auth");
	VF_ADD_TEST(s, test_etcd_auth_ok);
	VF_ADD_TEST(s, test_etcd_auth_password_file);
	VF_ADD_TEST(s, test_etcd_auth_env);
	VF_ADD_TEST(s, test_etcd_auth_outside_prefix);
	VF_ADD_TEST(s, test_etcd_auth_wrong_password);
	VF_ADD_TEST(s, test_etcd_auth_no_user);
	VF_ADD_TEST(s, test_server_logs);

	s = CU_add_suite("vfiled", vfiled_init, sec_stop);
	if (s == NULL)
		vf_test_abort("suite vfiled");
	VF_ADD_TEST(s, test_vfiled_refuses_readable_secret);
	VF_ADD_TEST(s, test_vfiled_socket_mode_group);
	VF_ADD_TEST(s, test_server_logs);
}
