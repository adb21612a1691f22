/* Unit tests of src/lib/metrics.c: counters, histograms, the exposition text, the
 * counting store shim (over a fake backend) and the HTTP listener. */
#include <config.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <curl/curl.h>

#include "test_int.h"
#include "common_int.h"
#include "config_int.h"
#include "metrics_int.h"

static char *mt_render(void)
{
	char *text = NULL;
	size_t len = 0;

	CU_ASSERT_EQUAL_FATAL(vf_metrics_render(&text, &len, NULL), VF_OK);
	CU_ASSERT_EQUAL(strlen(text), len);
	return text;
}

/* 1 if text has the line exactly. */
static int mt_has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; (p = strstr(p, line)) != NULL; p += n)
		if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
			return 1;
	return 0;
}

static void test_metrics_counters(void)
{
	char *t;

	vf_metrics_reset();
	vf_metrics_inc(VF_M_MOUNTS);
	vf_metrics_inc(VF_M_MOUNTS);
	vf_metrics_inc(VF_M_MOUNT_ERRORS);
	vf_metrics_inc(VF_M_RECONCILE_RUNS);
	vf_metrics_inc(VF_M_NCOUNTERS); /* out of range: ignored */
	CU_ASSERT_EQUAL(vf_metrics_get(VF_M_MOUNTS), 2);
	t = mt_render();
	CU_ASSERT_TRUE(mt_has_line(t, "# TYPE vfile_mounts_total counter"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_mounts_total{result=\"ok\"} 2"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_mounts_total{result=\"error\"} 1"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_unmounts_total{result=\"ok\"} 0"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_reconcile_runs_total 1"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_watch_resyncs_total 0"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_build_info{version=\"" PACKAGE_VERSION "\"} 1"));
	free(t);
}

static void test_metrics_histogram(void)
{
	char *t;

	vf_metrics_reset();
	vf_metrics_observe_ms(VF_H_MOUNT, 3);      /* le 0.005 */
	vf_metrics_observe_ms(VF_H_MOUNT, 700);    /* le 1 */
	vf_metrics_observe_ms(VF_H_MOUNT, 100000); /* only +Inf */
	vf_metrics_observe_ms(VF_H_MOUNT, -5);     /* clamped to 0: le 0.001 */
	CU_ASSERT_EQUAL(vf_metrics_hist_count(VF_H_MOUNT), 4);
	t = mt_render();
	CU_ASSERT_TRUE(mt_has_line(t, "# TYPE vfile_mount_duration_seconds histogram"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_mount_duration_seconds_bucket{le=\"0.001\"} 1"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_mount_duration_seconds_bucket{le=\"0.005\"} 2"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_mount_duration_seconds_bucket{le=\"0.5\"} 2"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_mount_duration_seconds_bucket{le=\"1\"} 3"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_mount_duration_seconds_bucket{le=\"60\"} 3"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_mount_duration_seconds_bucket{le=\"+Inf\"} 4"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_mount_duration_seconds_count 4"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_mount_duration_seconds_sum 100.703"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_lock_wait_seconds_count 0"));
	free(t);
}

static void test_metrics_kv_errors(void)
{
	char *t;

	vf_metrics_reset();
	vf_metrics_kv_error("txn", VF_EUNAVAIL);
	vf_metrics_kv_error("txn", VF_EUNAVAIL);
	vf_metrics_kv_error("txn", VF_ECONFLICT);
	vf_metrics_kv_error("get", VF_ENOTFOUND); /* not an error */
	vf_metrics_kv_error("get", VF_OK);
	vf_metrics_kv_error("frobnicate", -99); /* unknown slot and kind */
	t = mt_render();
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_kv_errors_total{op=\"txn\",kind=\"unavail\"} 2"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_kv_errors_total{op=\"txn\",kind=\"conflict\"} 1"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_kv_errors_total{op=\"other\",kind=\"other\"} 1"));
	CU_ASSERT_PTR_NULL(strstr(t, "notfound"));
	/* a lost race is counted when it happens, not listed before */
	CU_ASSERT_PTR_NULL(strstr(t, "op=\"get\",kind=\"conflict\""));
	/* the store failing: every slot's series exists from the start, at 0 */
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_kv_errors_total{op=\"get\",kind=\"unavail\"} 0"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_kv_errors_total{op=\"lock\",kind=\"timedout\"} 0"));
	CU_ASSERT_TRUE(
	        mt_has_line(t, "vfile_kv_errors_total{op=\"lease_keepalive\",kind=\"lease\"} 0"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_kv_errors_total{op=\"txn\",kind=\"uncertain\"} 0"));
	free(t);
}

/* Gauges: every family present from the start (0), then what was set. */
static void test_metrics_gauges(void)
{
	char *t;

	vf_metrics_reset();
	t = mt_render();
	CU_ASSERT_TRUE(mt_has_line(t, "# TYPE vfile_volumes gauge"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_volumes{state=\"Ready\"} 0"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_volumes{state=\"Mounted\"} 0"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_servers_running 0"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_local_mounts 0"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_lease_held 0"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_store_up 0"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_last_reconcile_timestamp_seconds 0"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_evictions_total 0"));
	free(t);
	vf_metrics_gauge_set(VF_G_VOLUMES_READY, 3);
	vf_metrics_gauge_set(VF_G_VOLUMES_MOUNTED, 2);
	vf_metrics_gauge_set(VF_G_SERVERS, 2);
	vf_metrics_gauge_set(VF_G_LOCAL_MOUNTS, 1);
	vf_metrics_gauge_set(VF_G_LEASE_HELD, 1);
	vf_metrics_gauge_set(VF_G_STORE_UP, 1);
	vf_metrics_gauge_set(VF_G_LAST_RECONCILE, 1700000000);
	vf_metrics_gauge_set(VF_G_NGAUGES, 5); /* out of range: ignored */
	vf_metrics_add(VF_M_EVICTIONS, 4);
	t = mt_render();
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_volumes{state=\"Ready\"} 3"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_volumes{state=\"Mounted\"} 2"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_servers_running 2"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_local_mounts 1"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_lease_held 1"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_store_up 1"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_last_reconcile_timestamp_seconds 1700000000"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_evictions_total 4"));
	free(t);
	vf_metrics_reset();
}

/* ---- a fake backend for the shim ---- */
struct fake_kv {
	struct vf_kv base;
	int closed;
};
static int fake_closed;

static void fake_close(struct vf_kv *kv)
{
	fake_closed++;
	free(kv);
}
static int fake_get(struct vf_kv *kv, const char *key, struct vf_kv_pair *pair_r,
                    struct vf_err *err)
{
	if (strcmp(key, "down") == 0)
		return vf_err_set(err, VF_EUNAVAIL, "store down");
	return vf_err_set(err, VF_ENOTFOUND, "%s: not found", key);
}
static int fake_lock(struct vf_kv *kv, struct vf_kv_lease *lease, const char *name, int timeout_ms,
                     const char *const *reads, size_t nreads, struct vf_kv_result *reads_r,
                     struct vf_kv_lock **lock_r, struct vf_err *err)
{
	usleep(30 * 1000);
	return vf_err_set(err, VF_ETIMEDOUT, "lock %s: timed out", name);
}
struct fake_watch {
	int stopped;
};
static int fake_watch_start(struct vf_kv *kv, const char *prefix, int64_t after_rev,
                            vf_kv_watch_fn fn, void *arg, struct vf_kv_watch **watch_r,
                            struct vf_err *err)
{
	struct vf_kv_event ev = {.type = VF_EV_RESYNC, .key = "", .revision = 7};
	struct vf_kv_event put = {.type = VF_EV_PUT, .key = "a", .value = "1", .value_len = 1};

	fn(&ev, arg);
	fn(&put, arg);
	*watch_r = (struct vf_kv_watch *)calloc(1, sizeof(struct fake_watch));
	return *watch_r ? VF_OK : VF_ENOMEM;
}
static void fake_watch_stop(struct vf_kv *kv, struct vf_kv_watch **watch)
{
	free(*watch);
	*watch = NULL;
}
static const struct vf_kv_ops fake_ops = {
        .abi_version = VF_KV_ABI_VERSION,
        .name = "fake",
        .caps = VF_KV_CAP_COMPACT,
        .close = fake_close,
        .get = fake_get,
        .lock = fake_lock,
        .watch_start = fake_watch_start,
        .watch_stop = fake_watch_stop,
};

static int shim_events;
static int shim_cb(const struct vf_kv_event *ev, void *arg)
{
	CU_ASSERT_PTR_EQUAL(arg, &shim_events);
	shim_events++;
	return 0;
}

static void test_metrics_kv_shim(void)
{
	struct fake_kv *f = calloc(1, sizeof(*f));
	struct vf_kv *kv = NULL;
	struct vf_kv_pair p = {0};
	struct vf_kv_lock *lk = NULL;
	struct vf_kv_watch *w = NULL;
	struct vf_err err = {0};
	char *t;

	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	f->base.ops = &fake_ops;
	f->base.max_txn_ops = 64;
	f->base.min_lease_ttl_s = 10;
	vf_metrics_reset();
	fake_closed = 0;
	CU_ASSERT_EQUAL_FATAL(vf_metrics_kv_wrap(&f->base, &kv, &err), VF_OK);
	CU_ASSERT_EQUAL(kv->max_txn_ops, 64);
	CU_ASSERT_EQUAL(kv->min_lease_ttl_s, 10);
	CU_ASSERT_STRING_EQUAL(kv->ops->name, "fake");
	CU_ASSERT_EQUAL(kv->ops->caps, VF_KV_CAP_COMPACT);
	/* slots the backend lacks stay NULL (callers turn them into VF_ENOTSUP) */
	CU_ASSERT_PTR_NULL(kv->ops->txn);
	CU_ASSERT_PTR_NULL(kv->ops->compact);
	CU_ASSERT_PTR_NULL(kv->ops->open);
	CU_ASSERT_PTR_NOT_NULL(kv->ops->get);

	CU_ASSERT_EQUAL(kv->ops->get(kv, "down", &p, &err), VF_EUNAVAIL);
	CU_ASSERT_STRING_EQUAL(err.msg, "store down");
	CU_ASSERT_EQUAL(vf_metrics_gauge_get(VF_G_STORE_UP), 0);
	CU_ASSERT_EQUAL(kv->ops->get(kv, "x", &p, &err), VF_ENOTFOUND);
	CU_ASSERT_EQUAL(vf_metrics_gauge_get(VF_G_STORE_UP), 1); /* an answer: up */
	CU_ASSERT_EQUAL(kv->ops->lock(kv, NULL, "l", 10, NULL, 0, NULL, &lk, &err), VF_ETIMEDOUT);
	CU_ASSERT_EQUAL(vf_metrics_hist_count(VF_H_LOCK_WAIT), 1);
	shim_events = 0;
	CU_ASSERT_EQUAL(kv->ops->watch_start(kv, "p/", 0, shim_cb, &shim_events, &w, &err), VF_OK);
	CU_ASSERT_EQUAL(shim_events, 2); /* both events forwarded */
	CU_ASSERT_EQUAL(vf_metrics_get(VF_M_WATCH_RESYNCS), 1);
	kv->ops->watch_stop(kv, &w);
	CU_ASSERT_PTR_NULL(w);

	t = mt_render();
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_kv_errors_total{op=\"get\",kind=\"unavail\"} 1"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_kv_errors_total{op=\"lock\",kind=\"timedout\"} 1"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_lock_wait_seconds_count 1"));
	/* 30 ms: above the 25 ms bucket */
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_lock_wait_seconds_bucket{le=\"0.025\"} 0"));
	CU_ASSERT_TRUE(mt_has_line(t, "vfile_watch_resyncs_total 1"));
	free(t);
	kv->ops->close(kv);
	CU_ASSERT_EQUAL(fake_closed, 1);
}

static void test_metrics_listen_parse(void)
{
	struct vf_err err = {0};

	CU_ASSERT_EQUAL(vf_metrics_listen_valid("127.0.0.1:9105", &err), VF_OK);
	CU_ASSERT_EQUAL(vf_metrics_listen_valid("0.0.0.0:0", &err), VF_OK);
	CU_ASSERT_EQUAL(vf_metrics_listen_valid("[::1]:9105", &err), VF_OK);
	CU_ASSERT_EQUAL(vf_metrics_listen_valid("127.0.0.1", &err), VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "HOST:PORT"));
	CU_ASSERT_EQUAL(vf_metrics_listen_valid("127.0.0.1:99999", &err), VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "bad port"));
	CU_ASSERT_EQUAL(vf_metrics_listen_valid("localhost:9105", &err), VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "not an IPv4 address"));
	CU_ASSERT_EQUAL(vf_metrics_listen_valid("::1:9105", &err), VF_EINVAL);
	CU_ASSERT_EQUAL(vf_metrics_listen_valid("[::1:9105", &err), VF_EINVAL);
	CU_ASSERT_EQUAL(vf_metrics_listen_valid("", &err), VF_EINVAL);
}

static size_t mt_sink(char *p, size_t size, size_t n, void *arg)
{
	return vf_buf_add(arg, p, size * n) == VF_OK ? size * n : 0;
}

static long mt_get(int port, const char *path, struct vf_buf *body, char *ctype, size_t ctsize)
{
	char url[128];
	char *ct = NULL;
	long status = 0;
	CURL *c = curl_easy_init();

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, mt_sink);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
	if (curl_easy_perform(c) == CURLE_OK) {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		if (ctype && curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
			snprintf(ctype, ctsize, "%s", ct);
	}
	curl_easy_cleanup(c);
	return status;
}

static void test_metrics_server(void)
{
	struct vf_metrics_server *srv = NULL, *srv2 = NULL;
	struct vf_buf b = {0};
	struct vf_err err = {0};
	char ctype[128] = "", addr[64];
	int port;

	vf_metrics_reset();
	CU_ASSERT_EQUAL_FATAL(vf_metrics_server_start("127.0.0.1:0", &srv, &err), VF_OK);
	port = vf_metrics_server_port(srv);
	CU_ASSERT_TRUE(port > 0);
	vf_metrics_inc(VF_M_UNMOUNTS);
	CU_ASSERT_EQUAL(mt_get(port, "/metrics", &b, ctype, sizeof(ctype)), 200);
	CU_ASSERT_PTR_NOT_NULL(strstr(ctype, "text/plain; version=0.0.4"));
	CU_ASSERT_TRUE(b.data && mt_has_line(b.data, "vfile_unmounts_total{result=\"ok\"} 1"));
	vf_buf_free(&b);
	CU_ASSERT_EQUAL(mt_get(port, "/nope", &b, NULL, 0), 404);
	vf_buf_free(&b);
	/* the port is taken: a second listener is refused with a message */
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	CU_ASSERT_EQUAL(vf_metrics_server_start(addr, &srv2, &err), VF_EINVAL);
	CU_ASSERT_PTR_NULL(srv2);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "cannot listen"));
	vf_metrics_server_stop(&srv);
	CU_ASSERT_PTR_NULL(srv);
	/* stopped: nothing answers any more */
	CU_ASSERT_EQUAL(mt_get(port, "/metrics", &b, NULL, 0), 0);
	vf_buf_free(&b);
}

static int mt_health_fn(void *arg, struct vf_err *err)
{
	int *down = arg;

	return *down ? vf_err_set(err, VF_EUNAVAIL, "store unreachable (test)") : VF_OK;
}

/* GET /healthz: 200 "ok" when the lease is held and the store answered, else
 * 503 naming why; a daemon's own check (vf_metrics_health_set) decides when set. */
static void test_metrics_healthz(void)
{
	struct vf_metrics_server *srv = NULL;
	struct vf_buf b = {0};
	struct vf_err err = {0};
	int port, down = 1;

	vf_metrics_reset();
	CU_ASSERT_EQUAL_FATAL(vf_metrics_server_start("127.0.0.1:0", &srv, &err), VF_OK);
	port = vf_metrics_server_port(srv);
	CU_ASSERT_EQUAL(mt_get(port, "/healthz", &b, NULL, 0), 503);
	CU_ASSERT_TRUE(b.data && strstr(b.data, "no lease held"));
	vf_buf_free(&b);
	vf_metrics_gauge_set(VF_G_LEASE_HELD, 1);
	CU_ASSERT_EQUAL(mt_get(port, "/healthz", &b, NULL, 0), 503);
	CU_ASSERT_TRUE(b.data && strstr(b.data, "store"));
	vf_buf_free(&b);
	vf_metrics_gauge_set(VF_G_STORE_UP, 1);
	CU_ASSERT_EQUAL(mt_get(port, "/healthz", &b, NULL, 0), 200);
	CU_ASSERT_TRUE(b.data && strcmp(b.data, "ok\n") == 0);
	vf_buf_free(&b);
	vf_metrics_health_set(mt_health_fn, &down);
	CU_ASSERT_EQUAL(mt_get(port, "/healthz", &b, NULL, 0), 503);
	CU_ASSERT_TRUE(b.data && strstr(b.data, "unhealthy: store unreachable (test)"));
	vf_buf_free(&b);
	down = 0;
	CU_ASSERT_EQUAL(mt_get(port, "/healthz", &b, NULL, 0), 200);
	vf_buf_free(&b);
	vf_metrics_health_set(NULL, NULL);
	vf_metrics_server_stop(&srv);
	vf_metrics_reset();
}

/* #19.2: slow clients trickling a byte at a time held every connection slot (the
 * idle timeout restarts with each byte): scrapes failed for as long as they lasted. */
#define MT_SLOW 100
struct mt_slow {
	int fd[MT_SLOW];
	int closed[MT_SLOW];
	int nclosed;
	int stop;
	pthread_mutex_t mu;
};

static void *mt_trickle(void *arg)
{
	struct mt_slow *s = arg;

	for (;;) {
		pthread_mutex_lock(&s->mu);
		int stop = s->stop;
		pthread_mutex_unlock(&s->mu);
		if (stop)
			break;
		for (int i = 0; i < MT_SLOW; i++) {
			struct pollfd p = {.fd = s->fd[i], .events = POLLIN};
			char c;

			if (s->closed[i])
				continue;
			if ((poll(&p, 1, 0) > 0 && read(s->fd[i], &c, 1) <= 0) ||
			    send(s->fd[i], "a", 1, MSG_NOSIGNAL) != 1) {
				pthread_mutex_lock(&s->mu);
				s->closed[i] = 1;
				s->nclosed++;
				pthread_mutex_unlock(&s->mu);
			}
		}
		usleep(500 * 1000);
	}
	return NULL;
}

static void test_metrics_slow_clients(void)
{
	struct vf_metrics_server *srv = NULL;
	struct mt_slow s = {.stop = 0};
	struct sockaddr_in sa = {.sin_family = AF_INET};
	struct vf_err err = {0};
	struct vf_buf b = {0};
	pthread_t thr;
	int port, n;

	pthread_mutex_init(&s.mu, NULL);
	CU_ASSERT_EQUAL_FATAL(vf_metrics_server_start("127.0.0.1:0", &srv, &err), VF_OK);
	port = vf_metrics_server_port(srv);
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int i = 0; i < MT_SLOW; i++) {
		s.fd[i] = socket(AF_INET, SOCK_STREAM, 0);
		CU_ASSERT_FATAL(s.fd[i] >= 0);
		CU_ASSERT_EQUAL(connect(s.fd[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
		CU_ASSERT_EQUAL(send(s.fd[i], "GET /metrics HTTP/1.1\r\nX: ", 27, MSG_NOSIGNAL),
		                27);
	}
	CU_ASSERT_EQUAL_FATAL(pthread_create(&thr, NULL, mt_trickle, &s), 0);
	/* scrapes still get through while they trickle */
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL(mt_get(port, "/metrics", &b, NULL, 0), 200);
		vf_buf_free(&b);
	}
	/* and every slow client is closed: within the request deadline (or evicted
	 * sooner); give up at the deadline plus MHD's idle timeout, which a trickle
	 * never reaches */
	int64_t until = vf_now_ms() + VF_METRICS_REQUEST_MS + 10000;
	do {
		pthread_mutex_lock(&s.mu);
		n = s.nclosed;
		pthread_mutex_unlock(&s.mu);
		if (n < MT_SLOW)
			usleep(100 * 1000);
	} while (n < MT_SLOW && vf_now_ms() < until);
	CU_ASSERT_EQUAL(n, MT_SLOW);
	pthread_mutex_lock(&s.mu);
	s.stop = 1;
	pthread_mutex_unlock(&s.mu);
	pthread_join(thr, NULL);
	for (int i = 0; i < MT_SLOW; i++)
		close(s.fd[i]);
	CU_ASSERT_EQUAL(mt_get(port, "/metrics", &b, NULL, 0), 200);
	vf_buf_free(&b);
	vf_metrics_server_stop(&srv);
	pthread_mutex_destroy(&s.mu);
}

static void test_metrics_config(void)
{
	struct vf_conf *c = NULL;
	struct vf_err err = {0};

	CU_ASSERT_EQUAL_FATAL(vf_conf_load_string("backend = \"etcd\";\n"
	                                          "metrics_listen = \"127.0.0.1:9105\";\n",
	                                          "m.conf", &c, &err),
	                      VF_OK);
	CU_ASSERT_STRING_EQUAL(c->metrics_listen, "127.0.0.1:9105");
	vf_conf_free(&c);
	CU_ASSERT_EQUAL_FATAL(vf_conf_load_string("backend = \"etcd\";\n", "m.conf", &c, &err),
	                      VF_OK);
	CU_ASSERT_PTR_NULL(c->metrics_listen);
	vf_conf_free(&c);
	CU_ASSERT_EQUAL(vf_conf_load_string("backend = \"etcd\";\nmetrics_listen = \"9105\";\n",
	                                    "m.conf", &c, &err),
	                VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "m.conf:2: setting 'metrics_listen'"));
	CU_ASSERT_EQUAL(vf_conf_load_string("backend = \"etcd\";\nmetrics_listen = 9105;\n",
	                                    "m.conf", &c, &err),
	                VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "metrics_listen"));
}

void vf_test_register_metrics(void);
void vf_test_register_metrics(void)
{
	CU_pSuite s = CU_add_suite("metrics", NULL, NULL);

	if (s == NULL)
		vf_test_abort("metrics suite");
	VF_ADD_TEST(s, test_metrics_counters);
	VF_ADD_TEST(s, test_metrics_histogram);
	VF_ADD_TEST(s, test_metrics_kv_errors);
	VF_ADD_TEST(s, test_metrics_gauges);
	VF_ADD_TEST(s, test_metrics_healthz);
	VF_ADD_TEST(s, test_metrics_kv_shim);
	VF_ADD_TEST(s, test_metrics_listen_parse);
	VF_ADD_TEST(s, test_metrics_server);
	VF_ADD_TEST(s, test_metrics_slow_clients);
	VF_ADD_TEST(s, test_metrics_config);
}
