/* Tests of the server harness itself: the 3-member etcd cluster (leader kill and
 * restart), pause/resume, the TCP proxy, cleanup. Talks to the servers with a
 * raw HTTP request of its own so that it depends on no backend driver. */
#include <config.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "test_int.h"
#include "harness.h"

/* GET path on 127.0.0.1:port with a receive timeout; the HTTP status or -1. */
static int th_get(int port, const char *path, int timeout_ms)
{
	struct sockaddr_in a;
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	char buf[512];
	int fd = socket(AF_INET, SOCK_STREAM, 0), st = -1;
	ssize_t n;

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)port);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
		n = snprintf(buf, sizeof(buf),
		             "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
		if (send(fd, buf, (size_t)n, MSG_NOSIGNAL) == n &&
		    (n = recv(fd, buf, 511, 0)) > 0) {
			buf[n] = '\0';
			if (sscanf(buf, "HTTP/%*d.%*d %d", &st) != 1)
				st = -1;
		}
	}
	close(fd);
	return st;
}

static void test_etcd_cluster(void)
{
	struct vf_srv *srv = NULL;
	struct vf_srv_opts o = {.members = 3};
	char why[512], dir[4096];
	int leader, next = -1;
	int64_t t0;
	struct stat st;

	if (vf_srv_start(VF_SRV_ETCD, &o, &srv, why, sizeof(why)) != 0)
		vf_test_unavailable(why);
	CU_ASSERT_EQUAL(srv->nmembers, 3);
	CU_ASSERT_STRING_EQUAL(vf_srv_backend_name(srv), "etcd");
	CU_ASSERT(strstr(vf_srv_config(srv), "timeout_ms = 2000;") != NULL);
	for (int i = 0; i < 3; i++) {
		char ep[64];

		snprintf(ep, sizeof(ep), "\"http://127.0.0.1:%d\"", srv->m[i].client_port);
		CU_ASSERT(strstr(vf_srv_config(srv), ep) != NULL);
		CU_ASSERT_EQUAL(th_get(srv->m[i].client_port, "/health", 2000), 200);
	}
	CU_ASSERT_PTR_NULL(vf_srv_auth_config(srv, 1));
	leader = vf_srv_leader(srv);
	CU_ASSERT_FATAL(leader >= 0 && leader < 3);

	/* The leader dies: another member leads within a bound. */
	CU_ASSERT_EQUAL(vf_srv_member_kill(srv, leader), 0);
	CU_ASSERT_EQUAL(srv->m[leader].pid, 0);
	t0 = vf_test_now_ms();
	while ((next = vf_srv_leader(srv)) < 0 && vf_test_now_ms() - t0 < 15000)
		vf_test_sleep_ms(50);
	printf("new leader %d after %lld ms; ", next, (long long)(vf_test_now_ms() - t0));
	CU_ASSERT(next >= 0 && next != leader);
	CU_ASSERT_EQUAL(th_get(srv->m[leader].client_port, "/health", 1000), -1);
	/* It comes back with its data, on its ports. */
	CU_ASSERT_EQUAL(vf_srv_member_restart(srv, leader, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL(th_get(srv->m[leader].client_port, "/health", 2000), 200);

	snprintf(dir, sizeof(dir), "%s", srv->dir);
	CU_ASSERT_EQUAL(stat(dir, &st), 0);
	vf_srv_stop(&srv);
	CU_ASSERT_PTR_NULL(srv);
	CU_ASSERT_NOT_EQUAL(stat(dir, &st), 0); /* data dir removed */
}

static void test_pause_proxy(void)
{
	struct vf_srv *srv = NULL;
	struct vf_proxy *px = NULL;
	char why[512];
	int port;
	pid_t pid;
	int64_t t0;

	if (vf_srv_start(VF_SRV_ETCD, NULL, &srv, why, sizeof(why)) != 0)
		vf_test_unavailable(why);
	port = srv->m[0].client_port;
	pid = srv->m[0].pid;
	CU_ASSERT_EQUAL(vf_srv_pause(srv), 0);
	t0 = vf_test_now_ms();
	CU_ASSERT_EQUAL(th_get(port, "/health", 500), -1); /* no answer while stopped */
	CU_ASSERT(vf_test_now_ms() - t0 < 2000);
	CU_ASSERT_EQUAL(vf_srv_resume(srv), 0);
	CU_ASSERT_EQUAL(th_get(port, "/health", 2000), 200);

	CU_ASSERT_EQUAL_FATAL(vf_proxy_start(port, &px, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL(th_get(vf_proxy_port(px), "/health", 2000), 200);
	vf_proxy_cut(px);
	CU_ASSERT_EQUAL(th_get(vf_proxy_port(px), "/health", 2000), -1);
	vf_proxy_restore(px);
	CU_ASSERT_EQUAL(th_get(vf_proxy_port(px), "/health", 2000), 200);
	CU_ASSERT(vf_proxy_accepted(px) >= 3);
	vf_proxy_stop(&px);
	CU_ASSERT_PTR_NULL(px);

	/* Killed keeps the data; restart comes back on the same port. */
	CU_ASSERT_EQUAL(vf_srv_kill(srv), 0);
	CU_ASSERT_EQUAL(kill(pid, 0), -1);
	CU_ASSERT_EQUAL(th_get(port, "/health", 500), -1);
	CU_ASSERT_EQUAL(vf_srv_restart(srv, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL(srv->m[0].client_port, port);
	CU_ASSERT_EQUAL(th_get(port, "/health", 2000), 200);
	vf_srv_stop(&srv);
}

/* A black hole answers nothing and resets nothing: the client waits out its own
 * timeout; a restore lets requests through again. */
static void test_proxy_blackhole(void)
{
	struct vf_srv *srv = NULL;
	struct vf_proxy *px = NULL;
	char why[512];
	int64_t t0;

	if (vf_srv_start(VF_SRV_ETCD, NULL, &srv, why, sizeof(why)) != 0)
		vf_test_unavailable(why);
	CU_ASSERT_EQUAL_FATAL(vf_proxy_start(srv->m[0].client_port, &px, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL(th_get(vf_proxy_port(px), "/health", 2000), 200);
	vf_proxy_blackhole(px);
	t0 = vf_test_now_ms();
	CU_ASSERT_EQUAL(th_get(vf_proxy_port(px), "/health", 1000), -1);
	CU_ASSERT(vf_test_now_ms() - t0 >= 900); /* silence until the client gives up */
	vf_proxy_restore(px);
	CU_ASSERT_EQUAL(th_get(vf_proxy_port(px), "/health", 2000), 200);
	vf_proxy_stop(&px);
	vf_srv_stop(&srv);
}

/* Member i cut off its peers: it loses its leader (etcd /health is 503 without a
 * leader) while it keeps answering; the others keep quorum; healed, it is healthy
 * again. Bounds: the harness's election timeout is 500 ms. */
static void test_etcd_partition(void)
{
	struct vf_srv *srv = NULL;
	struct vf_srv_opts o = {.members = 3, .peer_proxies = 1};
	char why[512];
	int i, st = 0, other;
	int64_t t0;

	if (vf_srv_start(VF_SRV_ETCD, &o, &srv, why, sizeof(why)) != 0)
		vf_test_unavailable(why);
	i = vf_srv_leader(srv);
	CU_ASSERT_FATAL(i >= 0);
	i = (i + 1) % 3; /* a follower */
	other = (i + 1) % 3;
	CU_ASSERT_EQUAL_FATAL(vf_srv_partition(srv, i, 1, why, sizeof(why)), 0);
	t0 = vf_test_now_ms();
	while ((st = th_get(srv->m[i].client_port, "/health", 2000)) == 200 &&
	       vf_test_now_ms() - t0 < 10000)
		vf_test_sleep_ms(100);
	printf("partitioned member: /health %d after %lld ms; ", st,
	       (long long)(vf_test_now_ms() - t0));
	CU_ASSERT(st > 0 && st != 200); /* answers, unhealthy */
	CU_ASSERT_EQUAL(th_get(srv->m[other].client_port, "/health", 2000), 200);
	CU_ASSERT_EQUAL(vf_srv_partition(srv, i, 0, why, sizeof(why)), 0);
	t0 = vf_test_now_ms();
	while ((st = th_get(srv->m[i].client_port, "/health", 2000)) != 200 &&
	       vf_test_now_ms() - t0 < 10000)
		vf_test_sleep_ms(100);
	CU_ASSERT_EQUAL(st, 200);
	vf_srv_stop(&srv);
}

/* Three Consul server agents: a leader, another after the leader's death, and the
 * dead one back with its data. */
static void test_consul_cluster(void)
{
	struct vf_srv *srv = NULL;
	struct vf_srv_opts o = {.members = 3};
	char why[512];
	int leader, next = -1;
	int64_t t0;

	if (vf_srv_start(VF_SRV_CONSUL, &o, &srv, why, sizeof(why)) != 0)
		vf_test_unavailable(why);
	CU_ASSERT_EQUAL(srv->nmembers, 3);
	leader = vf_srv_leader(srv);
	CU_ASSERT_FATAL(leader >= 0 && leader < 3);
	CU_ASSERT_EQUAL(vf_srv_member_kill(srv, leader), 0);
	t0 = vf_test_now_ms();
	while ((next = vf_srv_leader(srv)) < 0 && vf_test_now_ms() - t0 < 30000)
		vf_test_sleep_ms(100);
	printf("consul: new leader %d after %lld ms; ", next, (long long)(vf_test_now_ms() - t0));
	CU_ASSERT(next >= 0 && next != leader);
	CU_ASSERT_EQUAL(vf_srv_member_restart(srv, leader, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL(th_get(srv->m[leader].client_port, "/v1/status/leader", 2000), 200);
	vf_srv_stop(&srv);
}

static void test_missing_binary(void)
{
	struct vf_srv *srv = NULL;
	char why[512] = "";
	const char *old = getenv("CONSUL");
	char *save = old ? strdup(old) : NULL;

	setenv("CONSUL", "/nonexistent/consul", 1);
	CU_ASSERT_EQUAL(vf_srv_start(VF_SRV_CONSUL, NULL, &srv, why, sizeof(why)), -1);
	CU_ASSERT_PTR_NULL(srv);
	CU_ASSERT(strstr(why, "/nonexistent/consul") != NULL);
	if (save) {
		setenv("CONSUL", save, 1);
		free(save);
	} else {
		unsetenv("CONSUL");
	}
}

void vf_test_register(void)
{
	CU_pSuite s = CU_add_suite("harness", NULL, NULL);

	if (s == NULL)
		vf_test_abort("harness");
	VF_ADD_TEST(s, test_missing_binary);
	VF_ADD_TEST(s, test_pause_proxy);
	VF_ADD_TEST(s, test_etcd_cluster);
	VF_ADD_TEST(s, test_proxy_blackhole);
	VF_ADD_TEST(s, test_etcd_partition);
	VF_ADD_TEST(s, test_consul_cluster);
}
